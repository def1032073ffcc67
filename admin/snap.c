/* snap.c -- a snapshot of the pipeline from Redis, parsed once into plain structs (snap.h).
 *
 * TIME, HGETALL <prefix>stats, the group's backlog (BACKLOG_LUA, the definition every program
 * shares), XPENDING summary and oldest entry, XLEN <prefix>dead, then SCAN <prefix>worker:* and
 * the heartbeats pipelined (HGETALL + TTL each), then SMEMBERS <prefix>hosts and each host's state
 * and live leases pipelined. Replies are freed as soon as they are read. */
#include "snap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "human.h"
#include "names.h"
#include "rconn.h"
#include "rdb.h"

#define SNAP_WORKERS_MAX 4096
#define SNAP_HOSTS_MAX   256

/* Grows *arr (of elem-byte items, *cap of them) to hold n + 1; -1 when out of memory. */
static int snap_grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? 2 * *cap : 16;
    void *more = realloc(*arr, ncap * elem);
    if (more == NULL)
        return -1;
    *arr = more;
    *cap = ncap;
    return 0;
}

static char *snap_strdup(const redisReply *v)
{
    if (v == NULL || v->type != REDIS_REPLY_STRING)
        return NULL;
    return strndup(v->str, v->len);
}

static long long snap_ll(const redisReply *v)
{
    long long n;
    return rdb_ll(v, &n) == 0 ? n : -1;
}

static int snap_cmp_counter(const void *a, const void *b)
{
    return strcmp(((const struct snap_counter *)a)->name, ((const struct snap_counter *)b)->name);
}

static int snap_cmp_worker(const void *a, const void *b)
{
    return strcmp(((const struct snap_worker *)a)->name, ((const struct snap_worker *)b)->name);
}

static int snap_cmp_host(const void *a, const void *b)
{
    return strcmp(((const struct snap_host *)a)->name, ((const struct snap_host *)b)->name);
}

static int snap_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void snap_worker_clear(struct snap_worker *w)
{
    free(w->name);
    free(w->group);
    free(w->version);
    free(w->started_at);
    free(w->last_seen);
}

void snap_free(struct snap *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->ncounters; i++)
        free(s->counters[i].name);
    free(s->counters);
    if (s->oldest) {
        free(s->oldest->id);
        free(s->oldest->consumer);
        free(s->oldest);
    }
    for (size_t i = 0; i < s->nconsumers; i++)
        free(s->consumers[i].name);
    free(s->consumers);
    for (size_t i = 0; i < s->nworkers; i++)
        snap_worker_clear(&s->workers[i]);
    free(s->workers);
    for (size_t i = 0; i < s->nhosts; i++)
        free(s->hosts[i].name);
    free(s->hosts);
    free(s);
}

/* Every numeric field of the counters hash, sorted by name. */
static int snap_read_counters(struct snap *s, const redisReply *h)
{
    size_t cap = 0;
    for (size_t i = 0; h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2) {
        long long v;
        if (h->element[i]->type != REDIS_REPLY_STRING || rdb_ll(h->element[i + 1], &v) < 0)
            continue;
        if (snap_grow((void **)&s->counters, &cap, s->ncounters, sizeof(*s->counters)) < 0)
            return -1;
        s->counters[s->ncounters].name = strdup(h->element[i]->str);
        if (s->counters[s->ncounters].name == NULL)
            return -1;
        s->counters[s->ncounters++].value = v;
    }
    if (s->ncounters > 1)
        qsort(s->counters, s->ncounters, sizeof(*s->counters), snap_cmp_counter);
    return 0;
}

/* XPENDING's summary [count, min, max, [[consumer, n]...]]. */
static int snap_read_consumers(struct snap *s, const redisReply *x)
{
    size_t cap = 0;
    if (x->type != REDIS_REPLY_ARRAY || x->elements < 4 || x->element[3]->type != REDIS_REPLY_ARRAY)
        return 0;
    for (size_t i = 0; i < x->element[3]->elements; i++) {
        const redisReply *c = x->element[3]->element[i];
        if (c->type != REDIS_REPLY_ARRAY || c->elements != 2 ||
            c->element[0]->type != REDIS_REPLY_STRING)
            continue;
        if (snap_grow((void **)&s->consumers, &cap, s->nconsumers, sizeof(*s->consumers)) < 0)
            return -1;
        s->consumers[s->nconsumers].name = strdup(c->element[0]->str);
        if (s->consumers[s->nconsumers].name == NULL)
            return -1;
        s->consumers[s->nconsumers++].pending = snap_ll(c->element[1]);
    }
    return 0;
}

/* XPENDING - + 1: [[id, consumer, idle, deliveries]]. */
static int snap_read_oldest(struct snap *s, const redisReply *o)
{
    long long ms = 0;
    if (o->type != REDIS_REPLY_ARRAY || o->elements == 0)
        return 0;
    o = o->element[0];
    if (o->type != REDIS_REPLY_ARRAY || o->elements < 4 ||
        o->element[0]->type != REDIS_REPLY_STRING || o->element[1]->type != REDIS_REPLY_STRING)
        return 0;
    s->oldest = calloc(1, sizeof(*s->oldest));
    if (s->oldest == NULL)
        return -1;
    s->oldest->id = strdup(o->element[0]->str);
    s->oldest->consumer = strdup(o->element[1]->str);
    if (s->oldest->id == NULL || s->oldest->consumer == NULL)
        return -1;
    rdb_id_ms(o->element[0]->str, &ms);
    s->oldest->age_ms = s->now_ms - ms;
    s->oldest->idle_ms = snap_ll(o->element[2]);
    s->oldest->deliveries = snap_ll(o->element[3]);
    return 0;
}

/* SCAN <prefix>worker:* into a sorted list of names without repeats (SCAN may repeat keys). */
static int snap_scan_workers(redisContext *c, const struct settings *st, struct snap *s, char *err,
                             size_t errlen)
{
    char prefix[SET_KEY_MAX], pattern[2 * SET_KEY_MAX + 4], cursor[32] = "0";
    char **names = NULL;
    size_t n = 0, cap = 0, wcap = 0;
    int rc = -1;

    settings_key(st, KEY_WORKER, prefix, sizeof(prefix));
    if (rdb_glob_escape(prefix, pattern, sizeof(pattern) - 2) < 0) {
        snprintf(err, errlen, "prefix too long");
        return -1;
    }
    strcat(pattern, "*");
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "500"};
        redisReply *r = rconn_command(c, 6, argv, NULL, err, errlen);
        if (r == NULL)
            goto done;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            snprintf(err, errlen, "redis SCAN: unexpected reply");
            freeReplyObject(r);
            goto done;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str ? r->element[0]->str : "0");
        const redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements && n < SNAP_WORKERS_MAX; i++) {
            if (keys->element[i]->type != REDIS_REPLY_STRING)
                continue;
            if (snap_grow((void **)&names, &cap, n, sizeof(*names)) < 0 ||
                (names[n] = strdup(keys->element[i]->str)) == NULL) {
                freeReplyObject(r);
                goto done;
            }
            n++;
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    if (n > 1)
        qsort(names, n, sizeof(*names), snap_cmp_str);
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(names[i], names[i - 1]) == 0)
            continue;
        if (snap_grow((void **)&s->workers, &wcap, s->nworkers, sizeof(*s->workers)) < 0)
            goto done;
        memset(&s->workers[s->nworkers], 0, sizeof(*s->workers));
        s->workers[s->nworkers].name = strdup(names[i] + plen);
        if (s->workers[s->nworkers].name == NULL)
            goto done;
        s->nworkers++;
    }
    rc = 0;
done:
    if (rc < 0 && err[0] == '\0')
        snprintf(err, errlen, "out of memory");
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

static long long snap_pending_of(const struct snap *s, const char *name)
{
    for (size_t i = 0; i < s->nconsumers; i++)
        if (strcmp(s->consumers[i].name, name) == 0)
            return s->consumers[i].pending;
    return 0;
}

/* One heartbeat hash into w; 0 when it has expired since the SCAN (an empty hash). */
static int snap_read_heartbeat(struct snap_worker *w, const redisReply *h)
{
    if (h->type != REDIS_REPLY_ARRAY || h->elements == 0)
        return 0;
    w->group = snap_strdup(rdb_field(h, HB_GROUP));
    w->version = snap_strdup(rdb_field(h, HB_VERSION));
    w->started_at = snap_strdup(rdb_field(h, HB_STARTED_AT));
    w->last_seen = snap_strdup(rdb_field(h, HB_LAST_SEEN));
    w->in_flight = snap_ll(rdb_field(h, HB_IN_FLIGHT));
    w->processed = snap_ll(rdb_field(h, HB_PROCESSED));
    return 1;
}

/* HGETALL and TTL of every heartbeat, pipelined: one round trip for all the workers. Keeps only
 * those still alive: a heartbeat may expire between SCAN and HGETALL. */
static int snap_read_workers(redisContext *c, const struct settings *st, struct snap *s, char *err,
                             size_t errlen)
{
    char key[SET_KEY_MAX * 2];
    size_t live = 0;
    int rc = 0;

    for (size_t i = 0; i < s->nworkers; i++) {
        snprintf(key, sizeof(key), "%s%s%s", st->prefix, KEY_WORKER, s->workers[i].name);
        const char *hgetall[] = {"HGETALL", key}, *ttl[] = {"TTL", key};
        redisAppendCommandArgv(c, 2, hgetall, NULL);
        redisAppendCommandArgv(c, 2, ttl, NULL);
    }
    for (size_t i = 0; i < s->nworkers; i++) {
        struct snap_worker *w = &s->workers[i];
        redisReply *h = NULL, *t = NULL;
        int alive = 0;
        if (rc == 0 && (redisGetReply(c, (void **)&h) != REDIS_OK ||
                        redisGetReply(c, (void **)&t) != REDIS_OK)) {
            snprintf(err, errlen, "redis HGETALL: %s", c->errstr);
            rc = -1;
        }
        if (rc == 0) {
            alive = snap_read_heartbeat(w, h);
            w->ttl_s = t->type == REDIS_REPLY_INTEGER ? t->integer : -1;
            w->pending = snap_pending_of(s, w->name);
        }
        if (h)
            freeReplyObject(h);
        if (t)
            freeReplyObject(t);
        if (alive)
            s->workers[live++] = *w;
        else
            snap_worker_clear(w);
    }
    s->nworkers = live;
    if (s->nworkers > 1)
        qsort(s->workers, s->nworkers, sizeof(*s->workers), snap_cmp_worker);
    return rc;
}

static double snap_num(const redisReply *v)
{
    return v && v->type == REDIS_REPLY_STRING ? strtod(v->str, NULL) : 0;
}

/* Milliseconds from now to a time of Redis's clock, 0 when past. */
static long long snap_left(const struct snap *s, double at_ms)
{
    return at_ms > (double)s->now_ms ? (long long)(at_ms - (double)s->now_ms) : 0;
}

/* The hosts the fleet has asked for, each with its state hash and live leases, pipelined. */
static int snap_read_hosts(redisContext *c, const struct settings *st, struct snap *s, char *err,
                           size_t errlen)
{
    char key[SET_KEY_MAX], now[32];
    settings_key(st, KEY_HOSTS, key, sizeof(key));
    const char *smembers[] = {"SMEMBERS", key};
    redisReply *names = rconn_command(c, 2, smembers, NULL, err, errlen);
    if (names == NULL)
        return -1;
    size_t n = names->type == REDIS_REPLY_ARRAY ? names->elements : 0;
    if (n > SNAP_HOSTS_MAX)
        n = SNAP_HOSTS_MAX;
    s->hosts = calloc(n ? n : 1, sizeof(*s->hosts));
    if (s->hosts == NULL) {
        freeReplyObject(names);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(now, sizeof(now), "%lld", s->now_ms);
    for (size_t i = 0; i < n; i++) {
        char state[SET_KEY_MAX * 2], leases[SET_KEY_MAX * 2];
        const char *name = names->element[i]->str ? names->element[i]->str : "";
        snprintf(state, sizeof(state), "%s" KEY_HOST "%s" KEY_HOST_STATE, st->prefix, name);
        snprintf(leases, sizeof(leases), "%s" KEY_HOST "%s" KEY_HOST_LEASES, st->prefix, name);
        const char *hgetall[] = {"HGETALL", state}, *zcount[] = {"ZCOUNT", leases, now, "+inf"};
        redisAppendCommandArgv(c, 2, hgetall, NULL);
        redisAppendCommandArgv(c, 4, zcount, NULL);
        s->hosts[i].name = strdup(name);
    }
    freeReplyObject(names);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct snap_host *h = &s->hosts[i];
        redisReply *hr = NULL, *zr = NULL;
        if (rc == 0 && (redisGetReply(c, (void **)&hr) != REDIS_OK ||
                        redisGetReply(c, (void **)&zr) != REDIS_OK)) {
            snprintf(err, errlen, "redis HGETALL: %s", c->errstr);
            rc = -1;
        }
        if (rc == 0 && h->name == NULL) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
        }
        if (rc == 0) {
            h->in_flight = zr->type == REDIS_REPLY_INTEGER ? zr->integer : 0;
            h->concurrency = (long long)snap_num(rdb_field(hr, HOST_LIMIT));
            h->max_inflight = (long long)snap_num(rdb_field(hr, HOST_INFLIGHT));
            h->rate = snap_num(rdb_field(hr, HOST_RATE));
            h->pause_ms = snap_left(s, snap_num(rdb_field(hr, HOST_PAUSE_UNTIL)));
            h->circuit = (int)snap_num(rdb_field(hr, HOST_CIRCUIT));
            h->open_ms =
                h->circuit == 1 ? snap_left(s, snap_num(rdb_field(hr, HOST_OPEN_UNTIL))) : 0;
            h->fails = (long long)snap_num(rdb_field(hr, HOST_FAILS));
            h->waits = (long long)snap_num(rdb_field(hr, HOST_WAITS));
        }
        if (hr)
            freeReplyObject(hr);
        if (zr)
            freeReplyObject(zr);
        s->nhosts++;
    }
    if (s->nhosts > 1)
        qsort(s->hosts, s->nhosts, sizeof(*s->hosts), snap_cmp_host);
    return rc;
}

const char *snap_circuit_name(int circuit)
{
    return circuit == 1 ? "open" : circuit == 2 ? "half-open" : "closed";
}

/* Runs one command and hands its reply to read(); -1 with err on failure. */
static int snap_ask(redisContext *c, int argc, const char **argv, struct snap *s,
                    int (*read)(struct snap *, const redisReply *), char *err, size_t errlen)
{
    redisReply *r = rconn_command(c, argc, argv, NULL, err, errlen);
    if (r == NULL)
        return -1;
    int rc = read(s, r);
    freeReplyObject(r);
    if (rc < 0)
        snprintf(err, errlen, "out of memory");
    return rc;
}

static int snap_read_time(struct snap *s, const redisReply *r)
{
    long long sec = 0, usec = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        rdb_ll(r->element[0], &sec);
        rdb_ll(r->element[1], &usec);
    }
    s->now_ms = sec * 1000 + usec / 1000;
    return 0;
}

static int snap_read_dead(struct snap *s, const redisReply *r)
{
    s->dead = snap_ll(r);
    return 0;
}

static int snap_read_group(struct snap *s, const redisReply *r)
{
    if (backlog_parse(r, &s->group) < 0)
        s->group = (struct backlog){-1, 0, 0, 0};
    return 0;
}

struct snap *snap_take(redisContext *c, const struct settings *st, char *err, size_t errlen)
{
    char stream[SET_KEY_MAX], stats[SET_KEY_MAX], dead[SET_KEY_MAX];
    struct snap *s = calloc(1, sizeof(*s));

    err[0] = '\0';
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    settings_key(st, KEY_STREAM, stream, sizeof(stream));
    settings_key(st, KEY_STATS, stats, sizeof(stats));
    settings_key(st, KEY_DEAD, dead, sizeof(dead));
    const char *time_argv[] = {"TIME"};
    const char *hgetall[] = {"HGETALL", stats};
    const char *xlen_dead[] = {"XLEN", dead};
    const char *group[] = {"EVAL", BACKLOG_LUA, "1", stream, st->group};
    if (snap_ask(c, 1, time_argv, s, snap_read_time, err, errlen) < 0 ||
        snap_ask(c, 2, hgetall, s, snap_read_counters, err, errlen) < 0 ||
        snap_ask(c, 2, xlen_dead, s, snap_read_dead, err, errlen) < 0 ||
        snap_ask(c, 5, group, s, snap_read_group, err, errlen) < 0)
        goto err;
    if (s->group.has_group) {
        const char *summary[] = {"XPENDING", stream, st->group};
        const char *first[] = {"XPENDING", stream, st->group, "-", "+", "1"};
        if (snap_ask(c, 3, summary, s, snap_read_consumers, err, errlen) < 0 ||
            snap_ask(c, 6, first, s, snap_read_oldest, err, errlen) < 0)
            goto err;
    }
    if (snap_scan_workers(c, st, s, err, errlen) < 0 ||
        snap_read_workers(c, st, s, err, errlen) < 0 || snap_read_hosts(c, st, s, err, errlen) < 0)
        goto err;
    return s;
err:
    snap_free(s);
    return NULL;
}

long long snap_counter(const struct snap *s, const char *name)
{
    struct snap_counter key = {(char *)name, 0}, *c;
    if (s == NULL || s->ncounters == 0)
        return 0;
    c = bsearch(&key, s->counters, s->ncounters, sizeof(*s->counters), snap_cmp_counter);
    return c ? c->value : 0;
}

double snap_rate(const struct snap *s, const struct snap *prev, const char *name)
{
    if (prev == NULL || s->now_ms <= prev->now_ms)
        return NAN;
    return (double)(snap_counter(s, name) - snap_counter(prev, name)) * 1000.0 /
           (double)(s->now_ms - prev->now_ms);
}

int snap_has_worker(const struct snap *s, const char *name)
{
    for (size_t i = 0; i < s->nworkers; i++)
        if (strcmp(s->workers[i].name, name) == 0)
            return 1;
    return 0;
}

long long snap_ago(const struct snap *s, const char *when)
{
    long long at;
    char err[8];
    if (when == NULL || human_since(when, 0, &at, err, 0) < 0)
        return -1;
    return s->now_ms - at;
}
