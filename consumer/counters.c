/* counters.c -- a small name -> value table. Linear search: a worker has a few dozen counter
 * names (outcomes, reasons, transforms) and touches them a few times per image. */
#include "counters.h"

#include <stdlib.h>
#include <string.h>

struct counter {
    char name[COUNTER_NAME_MAX];
    long long value;
};

struct counters {
    struct counter *items;
    int count, cap;
};

struct counters *counters_new(void)
{
    return calloc(1, sizeof(struct counters));
}

void counters_add(struct counters *c, const char *name, long long delta)
{
    for (int i = 0; i < c->count; i++) {
        if (strcmp(c->items[i].name, name) == 0) {
            c->items[i].value += delta;
            return;
        }
    }
    if (c->count == c->cap) {
        int cap = c->cap ? c->cap * 2 : 32;
        struct counter *items = realloc(c->items, sizeof(*items) * (size_t)cap);
        if (items == NULL)
            return; /* a lost statistic is better than a lost image */
        c->items = items;
        c->cap = cap;
    }
    struct counter *it = &c->items[c->count++];
    strncpy(it->name, name, sizeof(it->name) - 1);
    it->name[sizeof(it->name) - 1] = '\0';
    it->value = delta;
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

void counters_merge(struct counters *to, struct counters *from)
{
    for (int i = 0; i < from->count; i++)
        counters_add(to, from->items[i].name, from->items[i].value);
    counters_clear(from);
}

void counters_clear(struct counters *c)
{
    c->count = 0;
}

void counters_free(struct counters *c)
{
    if (c == NULL)
        return;
    free(c->items);
    free(c);
}
