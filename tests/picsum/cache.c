/* cache.c -- LRU of encoded pictures: a chained hash on the 64-bit key for lookup plus a doubly
 * linked list for recency. Blobs are copied out by the caller, so eviction never races a reply. */
#include "cache.h"

#include <stdlib.h>

#include "rng.h"

struct cache_entry {
    uint64_t key;
    unsigned char *data;
    size_t len;
    struct cache_entry *hnext;       /* hash chain */
    struct cache_entry *prev, *next; /* recency list, head = most recent */
};

struct cache {
    struct cache_entry **buckets;
    size_t nbuckets; /* power of two */
    struct cache_entry *head, *tail;
    size_t entries;
    size_t bytes;
    size_t max_bytes;
    unsigned long hits, misses;
};

/* One bucket per 4 KiB of budget (small pictures are a few KiB), within these bounds. */
#define CACHE_BUCKETS_MIN 64
#define CACHE_BUCKETS_MAX (1u << 20)

struct cache *cache_new(size_t max_bytes)
{
    struct cache *c = calloc(1, sizeof(*c));
    size_t n = CACHE_BUCKETS_MIN;

    if (c == NULL)
        return NULL;
    while (n < CACHE_BUCKETS_MAX && n < max_bytes / 4096)
        n *= 2;
    c->buckets = calloc(n, sizeof(*c->buckets));
    if (c->buckets == NULL) {
        free(c);
        return NULL;
    }
    c->nbuckets = n;
    c->max_bytes = max_bytes;
    return c;
}

void cache_free(struct cache *c)
{
    if (c == NULL)
        return;
    for (struct cache_entry *e = c->head, *next; e != NULL; e = next) {
        next = e->next;
        free(e->data);
        free(e);
    }
    free(c->buckets);
    free(c);
}

static struct cache_entry **cache_slot(struct cache *c, uint64_t key)
{
    return &c->buckets[rng_mix64(key) & (c->nbuckets - 1)];
}

static void cache_unlink(struct cache *c, struct cache_entry *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void cache_push_front(struct cache *c, struct cache_entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head != NULL)
        c->head->prev = e;
    c->head = e;
    if (c->tail == NULL)
        c->tail = e;
}

static void cache_remove(struct cache *c, struct cache_entry *e)
{
    struct cache_entry **pp = cache_slot(c, e->key);

    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    cache_unlink(c, e);
    c->entries--;
    c->bytes -= e->len;
    free(e->data);
    free(e);
}

static struct cache_entry *cache_find(struct cache *c, uint64_t key)
{
    struct cache_entry *e = *cache_slot(c, key);

    while (e != NULL && e->key != key)
        e = e->hnext;
    return e;
}

int cache_get(struct cache *c, uint64_t key, const unsigned char **data, size_t *len)
{
    struct cache_entry *e = cache_find(c, key);

    if (e == NULL) {
        c->misses++;
        return -1;
    }
    c->hits++;
    cache_unlink(c, e);
    cache_push_front(c, e);
    *data = e->data;
    *len = e->len;
    return 0;
}

int cache_put(struct cache *c, uint64_t key, unsigned char *data, size_t len)
{
    struct cache_entry *e;

    if (len > c->max_bytes)
        return -1;
    e = cache_find(c, key);
    if (e != NULL)
        cache_remove(c, e);
    while (c->bytes + len > c->max_bytes && c->tail != NULL)
        cache_remove(c, c->tail);
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return -1;
    e->key = key;
    e->data = data;
    e->len = len;

    struct cache_entry **slot = cache_slot(c, key);

    e->hnext = *slot;
    *slot = e;
    cache_push_front(c, e);
    c->entries++;
    c->bytes += len;
    return 0;
}

void cache_get_stats(const struct cache *c, struct cache_stats *out)
{
    out->hits = c->hits;
    out->misses = c->misses;
    out->entries = c->entries;
    out->bytes = c->bytes;
    out->max_bytes = c->max_bytes;
}
