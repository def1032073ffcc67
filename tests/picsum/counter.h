/* counter.h -- string-keyed counters (request paths, statuses, per-URL fault budgets). */
#ifndef PICSUM_COUNTER_H
#define PICSUM_COUNTER_H

#include <stddef.h>

struct counter_map;

/* A map holding at most max_keys keys; new keys past that are refused. */
struct counter_map *counter_new(size_t max_keys);
void counter_free(struct counter_map *m);

/* Add one to key and return the new count, or -1 if the key is new and the map is full. */
long counter_incr(struct counter_map *m, const char *key);
long counter_get(const struct counter_map *m, const char *key);
size_t counter_count(const struct counter_map *m);
void counter_reset(struct counter_map *m);

/* Visit every key in no particular order. */
void counter_each(const struct counter_map *m, void (*fn)(const char *key, long n, void *arg),
                  void *arg);

#endif
