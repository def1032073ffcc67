/* counter.c -- a chained hash table of string -> long that grows by doubling. Capped by key
 * count so a client walking random URLs cannot grow it without bound. */
#include "counter.h"

#include <stdlib.h>
#include <string.h>

#include "rng.h"

struct counter_entry {
    struct counter_entry *next;
    long n;
    char key[]; /* NUL-terminated */
};

struct counter_map {
    struct counter_entry **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
    size_t max_keys;
};

#define COUNTER_INITIAL_BUCKETS 64

struct counter_map *counter_new(size_t max_keys)
{
    struct counter_map *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return NULL;
    m->buckets = calloc(COUNTER_INITIAL_BUCKETS, sizeof(*m->buckets));
    if (m->buckets == NULL) {
        free(m);
        return NULL;
    }
    m->nbuckets = COUNTER_INITIAL_BUCKETS;
    m->max_keys = max_keys;
    return m;
}

static void counter_clear(struct counter_map *m)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct counter_entry *e = m->buckets[i];

        while (e != NULL) {
            struct counter_entry *next = e->next;

            free(e);
            e = next;
        }
        m->buckets[i] = NULL;
    }
    m->count = 0;
}

void counter_free(struct counter_map *m)
{
    if (m == NULL)
        return;
    counter_clear(m);
    free(m->buckets);
    free(m);
}

void counter_reset(struct counter_map *m)
{
    counter_clear(m);
}

static size_t counter_slot(const struct counter_map *m, const char *key)
{
    return rng_mix64(rng_fnv1a(RNG_FNV_INIT, key, strlen(key))) & (m->nbuckets - 1);
}

static struct counter_entry *counter_find(const struct counter_map *m, const char *key)
{
    struct counter_entry *e = m->buckets[counter_slot(m, key)];

    while (e != NULL && strcmp(e->key, key) != 0)
        e = e->next;
    return e;
}

/* Double the bucket array; on allocation failure keep the old one (longer chains, still correct).
 */
static void counter_grow(struct counter_map *m)
{
    size_t old_n = m->nbuckets;
    struct counter_entry **old = m->buckets;
    struct counter_entry **nb = calloc(old_n * 2, sizeof(*nb));

    if (nb == NULL)
        return;
    m->buckets = nb;
    m->nbuckets = old_n * 2;
    for (size_t i = 0; i < old_n; i++) {
        struct counter_entry *e = old[i];

        while (e != NULL) {
            struct counter_entry *next = e->next;
            size_t slot = counter_slot(m, e->key);

            e->next = nb[slot];
            nb[slot] = e;
            e = next;
        }
    }
    free(old);
}

long counter_incr(struct counter_map *m, const char *key)
{
    struct counter_entry *e = counter_find(m, key);

    if (e != NULL)
        return ++e->n;
    if (m->count >= m->max_keys)
        return -1;

    size_t len = strlen(key);

    e = malloc(sizeof(*e) + len + 1);
    if (e == NULL)
        return -1;
    memcpy(e->key, key, len + 1);
    e->n = 1;
    if (m->count + 1 > m->nbuckets)
        counter_grow(m);

    size_t slot = counter_slot(m, key);

    e->next = m->buckets[slot];
    m->buckets[slot] = e;
    m->count++;
    return 1;
}

long counter_get(const struct counter_map *m, const char *key)
{
    const struct counter_entry *e = counter_find(m, key);

    return e != NULL ? e->n : 0;
}

size_t counter_count(const struct counter_map *m)
{
    return m->count;
}

void counter_each(const struct counter_map *m, void (*fn)(const char *key, long n, void *arg),
                  void *arg)
{
    for (size_t i = 0; i < m->nbuckets; i++)
        for (const struct counter_entry *e = m->buckets[i]; e != NULL; e = e->next)
            fn(e->key, e->n, arg);
}
