/* cache.h -- least-recently-used cache of encoded pictures, bounded by total bytes. */
#ifndef PICSUM_CACHE_H
#define PICSUM_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct cache;

struct cache_stats {
    unsigned long hits;
    unsigned long misses;
    size_t entries;
    size_t bytes;
    size_t max_bytes;
};

struct cache *cache_new(size_t max_bytes);
void cache_free(struct cache *c);

/* Look key up; on a hit *data stays valid until the next cache_put or cache_free. 0 hit, -1 miss.
 */
int cache_get(struct cache *c, uint64_t key, const unsigned char **data, size_t *len);

/* Take ownership of data (malloc'd) under key, evicting the least recently used entries.
 * -1, ownership not taken, when the blob alone exceeds the budget or memory is short. */
int cache_put(struct cache *c, uint64_t key, unsigned char *data, size_t len);

void cache_get_stats(const struct cache *c, struct cache_stats *out);

#endif
