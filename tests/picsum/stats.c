/* stats.c -- request, status and fault counters of the image server, and their JSON. */
#include "stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counter.h"

struct stats {
    size_t max_keys;
    unsigned long requests;
    unsigned long faults[FAULT_KIND_MAX];
    struct counter_map *by_path;
    struct counter_map *by_status;
};

struct stats *stats_new(size_t max_keys)
{
    struct stats *st = calloc(1, sizeof(*st));

    if (st == NULL)
        return NULL;
    st->max_keys = max_keys;
    st->by_path = counter_new(max_keys + 1); /* + "(other)" */
    st->by_status = counter_new(max_keys);
    if (st->by_path == NULL || st->by_status == NULL) {
        stats_free(st);
        return NULL;
    }
    return st;
}

void stats_free(struct stats *st)
{
    if (st == NULL)
        return;
    counter_free(st->by_path);
    counter_free(st->by_status);
    free(st);
}

void stats_reset(struct stats *st)
{
    st->requests = 0;
    memset(st->faults, 0, sizeof(st->faults));
    counter_reset(st->by_path);
    counter_reset(st->by_status);
}

void stats_request(struct stats *st, const char *path)
{
    st->requests++;
    if (counter_get(st->by_path, path) == 0 && counter_count(st->by_path) >= st->max_keys)
        path = "(other)";
    counter_incr(st->by_path, path);
}

void stats_reply(struct stats *st, int code, enum fault_kind fault)
{
    char key[16];

    snprintf(key, sizeof(key), "%d", code);
    counter_incr(st->by_status, key);
    if (fault > FAULT_NONE && fault < FAULT_KIND_MAX)
        st->faults[fault]++;
}

void stats_json_string(const char *s, struct evbuffer *out)
{
    evbuffer_add(out, "\"", 1);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        /* Paths are raw request bytes: escape anything that is not plain ASCII. */
        if (c == '"' || c == '\\')
            evbuffer_add_printf(out, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            evbuffer_add_printf(out, "\\u%04x", c);
        else
            evbuffer_add(out, s, 1);
    }
    evbuffer_add(out, "\"", 1);
}

struct stats_json_map {
    struct evbuffer *out;
    int first;
};

static void stats_json_entry(const char *key, long n, void *arg)
{
    struct stats_json_map *m = arg;

    if (!m->first)
        evbuffer_add(m->out, ", ", 2);
    m->first = 0;
    stats_json_string(key, m->out);
    evbuffer_add_printf(m->out, ": %ld", n);
}

static void stats_json_counters(const char *name, const struct counter_map *m, struct evbuffer *out)
{
    struct stats_json_map jm = {out, 1};

    evbuffer_add_printf(out, ", \"%s\": {", name);
    counter_each(m, stats_json_entry, &jm);
    evbuffer_add(out, "}", 1);
}

void stats_json_rates(const struct fault_rates *rates, struct evbuffer *out)
{
    int first = 1;

    evbuffer_add(out, "{", 1);
    for (int k = FAULT_NONE + 1; k < FAULT_KIND_MAX; k++) {
        if (rates->rate[k] <= 0.0)
            continue;
        evbuffer_add_printf(out, "%s\"%s\": %g", first ? "" : ", ", fault_name(k), rates->rate[k]);
        first = 0;
    }
    evbuffer_add(out, "}", 1);
}

void stats_json(const struct stats *st, const struct fault_rates *rates,
                const struct cache_stats *cache, size_t trickling, const struct hostcount *hosts,
                struct evbuffer *out)
{
    int first = 1;

    evbuffer_add_printf(out, "{\"requests\": %lu", st->requests);
    stats_json_counters("by_path", st->by_path, out);
    stats_json_counters("by_status", st->by_status, out);
    evbuffer_add_printf(out, ", \"faults\": {");
    for (int k = FAULT_NONE + 1; k < FAULT_KIND_MAX; k++) {
        if (st->faults[k] == 0)
            continue;
        evbuffer_add_printf(out, "%s\"%s\": %lu", first ? "" : ", ", fault_name(k), st->faults[k]);
        first = 0;
    }
    evbuffer_add_printf(out, "}, \"rates\": ");
    stats_json_rates(rates, out);
    evbuffer_add_printf(out,
                        ", \"cache\": {\"entries\": %zu, \"bytes\": %zu, \"max_bytes\": %zu, "
                        "\"hits\": %lu, \"misses\": %lu}, \"trickling\": %zu, \"hosts\": ",
                        cache->entries, cache->bytes, cache->max_bytes, cache->hits, cache->misses,
                        trickling);
    if (hosts != NULL)
        hostcount_json(hosts, out);
    else
        evbuffer_add(out, "{}", 2);
    evbuffer_add(out, "}", 1);
}
