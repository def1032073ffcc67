/* counters.c -- a small name -> value table. Linear search: a worker has a few dozen counter
 * names (outcomes, reasons, transforms) and touches them a few times per image.
 *
 * Names are stored whole, whatever their length: a name cut to a fixed size would never match
 * itself again and each add would make a new row (transform:<plugin>:<counter> names are long).
 * Distinct names are capped too, so a source of ever-new names cannot grow the table (and
 * /metrics) without bound: past COUNTERS_MAX the add is dropped and counted. */
#include "counters.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

struct counter {
    char *name;
    long long value;
};

struct counters {
    struct counter *items;
    int count, cap;
    long long dropped;
};

struct counters *counters_new(void)
{
    return calloc(1, sizeof(struct counters));
}

static struct counter *counters_find(struct counters *c, const char *name)
{
    for (int i = 0; i < c->count; i++)
        if (strcmp(c->items[i].name, name) == 0)
            return &c->items[i];
    return NULL;
}

int counters_add(struct counters *c, const char *name, long long delta)
{
    struct counter *it = counters_find(c, name);
    if (it != NULL) {
        it->value += delta;
        return 0;
    }
    if (c->count >= COUNTERS_MAX) {
        if (c->dropped++ == 0)
            log_warn("event=counters_full max=%d dropped=%s note=\"new counter names are not "
                     "counted from now on\"",
                     COUNTERS_MAX, name);
        return -1;
    }
    if (c->count == c->cap) {
        int cap = c->cap ? c->cap * 2 : 32;
        struct counter *items = realloc(c->items, sizeof(*items) * (size_t)cap);
        if (items == NULL)
            return -1; /* a lost statistic is better than a lost image */
        c->items = items;
        c->cap = cap;
    }
    char *copy = strdup(name);
    if (copy == NULL)
        return -1;
    it = &c->items[c->count++];
    it->name = copy;
    it->value = delta;
    return 0;
}

int counters_count(const struct counters *c)
{
    return c->count;
}

const char *counters_name(const struct counters *c, int i)
{
    return c->items[i].name;
}

long long counters_value(const struct counters *c, int i)
{
    return c->items[i].value;
}

long long counters_dropped(const struct counters *c)
{
    return c->dropped;
}

void counters_merge(struct counters *to, struct counters *from)
{
    for (int i = 0; i < from->count; i++)
        counters_add(to, from->items[i].name, from->items[i].value);
    counters_clear(from);
}

void counters_clear(struct counters *c)
{
    for (int i = 0; i < c->count; i++)
        free(c->items[i].name);
    c->count = 0;
}

void counters_free(struct counters *c)
{
    if (c == NULL)
        return;
    counters_clear(c);
    free(c->items);
    free(c);
}
