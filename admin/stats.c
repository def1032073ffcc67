/* stats.c -- pixflow stats: the counters, and what only Redis itself knows right now.
 *
 * A snapshot is the <prefix>stats hash plus the stream's state (XLEN, the group's lag and pending
 * count from XINFO GROUPS, XPENDING per consumer and its oldest entry), the dead-letter stream's
 * length, and the workers' heartbeat hashes (SCAN <prefix>worker:*). --watch takes one per
 * interval and shows rates from the difference of two; on a terminal it redraws one screen in
 * place (cursor home, each line cleared to its end, so nothing flickers), otherwise it prints
 * one line (or one JSON object) per interval, for logs and pipes. Redis failing in --watch is
 * shown and retried at the next interval, not fatal. */
#include "admin.h"
#include "human.h"
#include "json.h"
#include "rdb.h"

#include "rconn.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define CMD           "stats"
#define WORKERS_MAX   4096
#define ANSI_HOME     "\033[H"
#define ANSI_EOL      "\033[K"
#define ANSI_EOS      "\033[J"
#define ANSI_HIDE_CUR "\033[?25l"
#define ANSI_SHOW_CUR "\033[?25h"

static const char synopsis[] =
    "pixflow stats [--watch [--interval TIME] [--count N]] [--json]\n\n"
    "Counters of <prefix>stats (SPEC §7), and from Redis itself: stream length, backlog (the\n"
    "group's lag: entries no worker has read yet), pending entries (read, not yet acked) per\n"
    "consumer and the age of the oldest, dead letters (by reason, from the failed:<reason> and\n"
    "invalid:<reason> counters; and how many <prefix>dead holds now), and the live workers from\n"
    "their heartbeats. --watch refreshes every --interval with rates per second: a screen redrawn\n"
    "in place on a terminal, one line per refresh otherwise (one JSON object with --json).\n"
    "Exit: 0 done, 1 Redis failed, 2 bad usage";

static struct {
    int watch, json;
    long interval_ms, count;
} opt;

static const struct cfg_option own_options[] = {
    {"watch", NULL, cfg_switch, &opt.watch, "", .flags = CFG_NOARG,
     .help = "refresh until interrupted, with rates per second"},
    {"interval", NULL, cfg_millis, &opt.interval_ms, "1s", 100, 3600000, .meta = "TIME",
     .help = "--watch: time between refreshes"},
    {"count", NULL, cfg_long, &opt.count, "0", 0, 0, .meta = "N",
     .help = "--watch: stop after N refreshes; 0: never"},
    {"json", NULL, cfg_switch, &opt.json, "", .flags = CFG_NOARG,
     .help = "one JSON object (per refresh)"},
    {NULL},
};

/* The main counters, in the order people read them; others follow by name. */
static const char *const main_counters[] = {
    "ingest_lines", "ingest_queued", "ingest_duplicates", "ingest_invalid", "received",
    "stored",       "aliased",       "duplicates",        "invalid",        "failed",
    "retries",      "reclaimed",     "bytes_in",          "bytes_out",      NULL,
};

struct snap_worker {
    char *name; /* after <prefix>worker: */
    redisReply *hash;
    long long ttl;
};

struct snap {
    long long now_ms;
    redisReply *stats; /* HGETALL */
    long long length;  /* XLEN; 0 when the stream does not exist */
    int has_group;
    long long backlog;  /* lag; -1 unknown */
    long long pending;  /* of the group */
    redisReply *xpend;  /* XPENDING summary: [count, min, max, [[consumer, n]...]] */
    redisReply *oldest; /* XPENDING - + 1: [[id, consumer, idle, deliveries]] */
    long long dead;
    struct snap_worker *workers;
    size_t nworkers;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    stop = sig;
}

static void snap_free(struct snap *s)
{
    if (s == NULL)
        return;
    if (s->stats)
        freeReplyObject(s->stats);
    if (s->xpend)
        freeReplyObject(s->xpend);
    if (s->oldest)
        freeReplyObject(s->oldest);
    for (size_t i = 0; i < s->nworkers; i++) {
        free(s->workers[i].name);
        if (s->workers[i].hash)
            freeReplyObject(s->workers[i].hash);
    }
    free(s->workers);
    free(s);
}

static long long snap_counter(const struct snap *s, const char *name)
{
    long long v = 0;
    if (s == NULL || rdb_ll(rdb_field(s->stats, name), &v) < 0)
        return 0;
    return v;
}

static int snap_is_main(const char *name)
{
    for (int i = 0; main_counters[i]; i++)
        if (strcmp(main_counters[i], name) == 0)
            return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_worker(const void *a, const void *b)
{
    return strcmp(((const struct snap_worker *)a)->name, ((const struct snap_worker *)b)->name);
}

/* SCAN <prefix>worker:* into a sorted, de-duplicated list of names (SCAN may repeat keys). */
static int snap_scan_workers(redisContext *c, const struct settings *st, struct snap *s, char *err,
                             size_t errlen)
{
    char prefix[SET_KEY_MAX], pattern[2 * SET_KEY_MAX + 4], cursor[32] = "0";
    settings_key(st, "worker:", prefix, sizeof(prefix));
    if (rdb_glob_escape(prefix, pattern, sizeof(pattern) - 2) < 0) {
        snprintf(err, errlen, "prefix too long");
        return -1;
    }
    strcat(pattern, "*");
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = -1;
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "500"};
        redisReply *r = rdb_command(c, err, errlen, 6, argv, NULL);
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
        for (size_t i = 0; i < keys->elements && n < WORKERS_MAX; i++) {
            if (keys->element[i]->type != REDIS_REPLY_STRING)
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                char **more = realloc(names, cap * sizeof(*names));
                if (more == NULL) {
                    freeReplyObject(r);
                    goto done;
                }
                names = more;
            }
            names[n] = strdup(keys->element[i]->str);
            if (names[n] == NULL) {
                freeReplyObject(r);
                goto done;
            }
            n++;
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    if (n > 1)
        qsort(names, n, sizeof(*names), cmp_str);
    s->workers = calloc(n ? n : 1, sizeof(*s->workers));
    if (s->workers == NULL)
        goto done;
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(names[i], names[i - 1]) == 0)
            continue;
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

/* HGETALL and TTL of every heartbeat, pipelined: one round trip for all the workers. */
static int snap_read_workers(redisContext *c, const struct settings *st, struct snap *s, char *err,
                             size_t errlen)
{
    char key[SET_KEY_MAX * 2];
    for (size_t i = 0; i < s->nworkers; i++) {
        snprintf(key, sizeof(key), "%sworker:%s", st->prefix, s->workers[i].name);
        const char *hgetall[] = {"HGETALL", key}, *ttl[] = {"TTL", key};
        redisAppendCommandArgv(c, 2, hgetall, NULL);
        redisAppendCommandArgv(c, 2, ttl, NULL);
    }
    for (size_t i = 0; i < s->nworkers; i++) {
        redisReply *h = NULL, *t = NULL;
        if (redisGetReply(c, (void **)&h) != REDIS_OK ||
            redisGetReply(c, (void **)&t) != REDIS_OK) {
            snprintf(err, errlen, "redis HGETALL: %s", c->errstr);
            if (h)
                freeReplyObject(h);
            return -1;
        }
        if (h->type == REDIS_REPLY_ARRAY)
            s->workers[i].hash = h;
        else
            freeReplyObject(h);
        s->workers[i].ttl = t->type == REDIS_REPLY_INTEGER ? t->integer : -1;
        freeReplyObject(t);
    }
    /* Keep only those still alive: a heartbeat may expire between SCAN and HGETALL. */
    size_t live = 0;
    for (size_t i = 0; i < s->nworkers; i++) {
        if (s->workers[i].hash && s->workers[i].hash->elements > 0) {
            s->workers[live++] = s->workers[i];
            continue;
        }
        free(s->workers[i].name);
        if (s->workers[i].hash)
            freeReplyObject(s->workers[i].hash);
    }
    s->nworkers = live;
    if (s->nworkers > 1)
        qsort(s->workers, s->nworkers, sizeof(*s->workers), cmp_worker);
    return 0;
}

/* The group's lag and pending count; the stream or the group may not exist yet. */
static int snap_group(redisContext *c, const struct settings *st, const char *stream,
                      struct snap *s, char *err, size_t errlen)
{
    s->backlog = s->length; /* no group yet: its first worker starts from entry 0 */
    const char *argv[] = {"XINFO", "GROUPS", stream};
    redisReply *r = redisCommandArgv(c, 3, argv, NULL);
    if (r == NULL) {
        snprintf(err, errlen, "redis XINFO: %s", c->errstr);
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        int missing = strstr(r->str, "no such key") != NULL;
        if (!missing)
            snprintf(err, errlen, "redis XINFO: %s", r->str);
        freeReplyObject(r);
        return missing ? 0 : -1;
    }
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *g = r->element[i], *name = rdb_field(g, "name");
        if (name == NULL || name->type != REDIS_REPLY_STRING || strcmp(name->str, st->group) != 0)
            continue;
        s->has_group = 1;
        if (rdb_ll(rdb_field(g, "lag"), &s->backlog) < 0)
            s->backlog = -1; /* Redis cannot tell after entries were deleted */
        rdb_ll(rdb_field(g, "pending"), &s->pending);
    }
    freeReplyObject(r);
    return 0;
}

static struct snap *snap_take(redisContext *c, const struct settings *st, char *err, size_t errlen)
{
    char stream[SET_KEY_MAX], stats[SET_KEY_MAX], dead[SET_KEY_MAX];
    settings_key(st, "urls", stream, sizeof(stream));
    settings_key(st, "stats", stats, sizeof(stats));
    settings_key(st, "dead", dead, sizeof(dead));
    struct snap *s = calloc(1, sizeof(*s));
    redisReply *r = NULL;
    err[0] = '\0';
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    const char *time_argv[] = {"TIME"};
    r = rdb_command(c, err, errlen, 1, time_argv, NULL);
    if (r == NULL)
        goto err;
    long long sec = 0, usec = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        rdb_ll(r->element[0], &sec);
        rdb_ll(r->element[1], &usec);
    }
    s->now_ms = sec * 1000 + usec / 1000;
    freeReplyObject(r);

    const char *hgetall[] = {"HGETALL", stats};
    s->stats = rdb_command(c, err, errlen, 2, hgetall, NULL);
    const char *xlen[] = {"XLEN", stream}, *xlen_dead[] = {"XLEN", dead};
    if (s->stats == NULL || (r = rdb_command(c, err, errlen, 2, xlen, NULL)) == NULL)
        goto err;
    rdb_ll(r, &s->length);
    freeReplyObject(r);
    if ((r = rdb_command(c, err, errlen, 2, xlen_dead, NULL)) == NULL)
        goto err;
    rdb_ll(r, &s->dead);
    freeReplyObject(r);
    if (snap_group(c, st, stream, s, err, errlen) < 0)
        goto err;
    if (s->has_group) {
        const char *summary[] = {"XPENDING", stream, st->group};
        const char *first[] = {"XPENDING", stream, st->group, "-", "+", "1"};
        s->xpend = rdb_command(c, err, errlen, 3, summary, NULL);
        if (s->xpend == NULL || (s->oldest = rdb_command(c, err, errlen, 6, first, NULL)) == NULL)
            goto err;
    }
    if (snap_scan_workers(c, st, s, err, errlen) < 0 ||
        snap_read_workers(c, st, s, err, errlen) < 0)
        goto err;
    return s;
err:
    snap_free(s);
    return NULL;
}

/* The oldest pending entry: [id, consumer, idle, deliveries], or NULL. */
static const redisReply *snap_oldest(const struct snap *s)
{
    const redisReply *o = s->oldest;
    if (o == NULL || o->type != REDIS_REPLY_ARRAY || o->elements == 0)
        return NULL;
    o = o->element[0];
    if (o->type != REDIS_REPLY_ARRAY || o->elements < 4 ||
        o->element[0]->type != REDIS_REPLY_STRING)
        return NULL;
    return o;
}

/* Pending entries of one consumer, from the XPENDING summary. */
static long long snap_pending_of(const struct snap *s, const char *name)
{
    const redisReply *x = s->xpend;
    if (x == NULL || x->type != REDIS_REPLY_ARRAY || x->elements < 4 ||
        x->element[3]->type != REDIS_REPLY_ARRAY)
        return 0;
    for (size_t i = 0; i < x->element[3]->elements; i++) {
        const redisReply *c = x->element[3]->element[i];
        long long n = 0;
        if (c->type == REDIS_REPLY_ARRAY && c->elements == 2 &&
            c->element[0]->type == REDIS_REPLY_STRING && strcmp(c->element[0]->str, name) == 0 &&
            rdb_ll(c->element[1], &n) == 0)
            return n;
    }
    return 0;
}

static int snap_has_worker(const struct snap *s, const char *name)
{
    for (size_t i = 0; i < s->nworkers; i++)
        if (strcmp(s->workers[i].name, name) == 0)
            return 1;
    return 0;
}

/* Per second between two snapshots; NAN without a previous one. */
static double snap_rate(const struct snap *s, const struct snap *prev, const char *name)
{
    if (prev == NULL || s->now_ms <= prev->now_ms)
        return NAN;
    return (double)(snap_counter(s, name) - snap_counter(prev, name)) * 1000.0 /
           (double)(s->now_ms - prev->now_ms);
}

static const char *snap_time(long long ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

/* Milliseconds since a heartbeat's timestamp field, -1 when absent or unreadable. */
static long long snap_ago(const struct snap *s, const redisReply *hash, const char *field)
{
    const redisReply *v = rdb_field(hash, field);
    long long at;
    char err[8];
    if (v == NULL || v->type != REDIS_REPLY_STRING || human_since(v->str, 0, &at, err, 0) < 0)
        return -1;
    return s->now_ms - at;
}

static const char *worker_str(const struct snap_worker *w, const char *field)
{
    const redisReply *v = rdb_field(w->hash, field);
    return v && v->type == REDIS_REPLY_STRING ? v->str : "-";
}

/* ---- JSON ---- */

static void render_json(FILE *out, const struct settings *st, const struct snap *s,
                        const struct snap *prev)
{
    struct json j;
    char buf[64];
    json_init(&j, out);
    json_object(&j);
    json_kv_str(&j, "time", snap_time(s->now_ms, buf, sizeof(buf)));
    json_kv_str(&j, "prefix", st->prefix);
    json_kv_str(&j, "group", st->group);
    json_key(&j, "counters");
    json_object(&j);
    for (size_t i = 0; s->stats && i + 1 < s->stats->elements; i += 2) {
        long long v;
        if (rdb_ll(s->stats->element[i + 1], &v) == 0)
            json_kv_int(&j, s->stats->element[i]->str, v);
    }
    json_end(&j);
    if (prev) {
        json_key(&j, "rates");
        json_object(&j);
        for (size_t i = 0; s->stats && i + 1 < s->stats->elements; i += 2) {
            json_key(&j, s->stats->element[i]->str);
            json_double(&j, snap_rate(s, prev, s->stats->element[i]->str));
        }
        json_end(&j);
    }
    json_key(&j, "stream");
    json_object(&j);
    json_kv_int(&j, "length", s->length);
    json_key(&j, "group_exists");
    json_bool(&j, s->has_group);
    json_key(&j, "backlog");
    if (s->backlog >= 0)
        json_int(&j, s->backlog);
    else
        json_null(&j);
    json_kv_int(&j, "pending", s->pending);
    json_key(&j, "oldest_pending");
    const redisReply *o = snap_oldest(s);
    if (o) {
        long long ms = 0, idle = 0, deliveries = 0;
        json_object(&j);
        json_kv_str(&j, "id", o->element[0]->str);
        json_kv_str(&j, "consumer", o->element[1]->str);
        rdb_id_ms(o->element[0]->str, &ms);
        rdb_ll(o->element[2], &idle);
        rdb_ll(o->element[3], &deliveries);
        json_kv_int(&j, "age_ms", s->now_ms - ms);
        json_kv_int(&j, "idle_ms", idle);
        json_kv_int(&j, "deliveries", deliveries);
        json_end(&j);
    } else {
        json_null(&j);
    }
    json_key(&j, "pending_by_consumer");
    json_object(&j);
    const redisReply *x = s->xpend;
    if (x && x->type == REDIS_REPLY_ARRAY && x->elements >= 4 &&
        x->element[3]->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < x->element[3]->elements; i++) {
            const redisReply *c = x->element[3]->element[i];
            long long n = 0;
            if (c->type == REDIS_REPLY_ARRAY && c->elements == 2 && rdb_ll(c->element[1], &n) == 0)
                json_kv_int(&j, c->element[0]->str, n);
        }
    }
    json_end(&j);
    json_end(&j);

    json_key(&j, "dead");
    json_object(&j);
    json_kv_int(&j, "letters", s->dead);
    json_key(&j, "by_reason");
    json_object(&j);
    for (size_t i = 0; s->stats && i + 1 < s->stats->elements; i += 2) {
        const char *name = s->stats->element[i]->str;
        long long v;
        if ((strncmp(name, "failed:", 7) == 0 || strncmp(name, "invalid:", 8) == 0) &&
            rdb_ll(s->stats->element[i + 1], &v) == 0)
            json_kv_int(&j, name, v);
    }
    json_end(&j);
    json_end(&j);

    json_key(&j, "workers");
    json_array(&j);
    for (size_t i = 0; i < s->nworkers; i++) {
        const struct snap_worker *w = &s->workers[i];
        long long v;
        json_object(&j);
        json_kv_str(&j, "name", w->name);
        static const char *const fields[] = {"group", "version", "started_at", "last_seen"};
        for (size_t f = 0; f < sizeof(fields) / sizeof(*fields); f++) {
            const redisReply *val = rdb_field(w->hash, fields[f]);
            json_key(&j, fields[f]);
            if (val && val->type == REDIS_REPLY_STRING)
                json_strn(&j, val->str, val->len);
            else
                json_null(&j);
        }
        static const char *const nums[] = {"in_flight", "processed"};
        for (size_t f = 0; f < sizeof(nums) / sizeof(*nums); f++) {
            json_key(&j, nums[f]);
            if (rdb_ll(rdb_field(w->hash, nums[f]), &v) == 0)
                json_int(&j, v);
            else
                json_null(&j);
        }
        json_kv_int(&j, "pending", snap_pending_of(s, w->name));
        json_kv_int(&j, "ttl_s", w->ttl);
        json_end(&j);
    }
    json_end(&j);
    json_end(&j);
}

/* ---- text ---- */

static void render_counter(FILE *out, const struct snap *s, const struct snap *prev,
                           const char *name, int indent)
{
    long long v = snap_counter(s, name);
    double rate = snap_rate(s, prev, name);
    char buf[32], rbuf[32];
    int bytes = strncmp(name, "bytes_", 6) == 0;
    if (bytes)
        human_bytes((double)v, buf, sizeof(buf));
    else
        snprintf(buf, sizeof(buf), "%lld", v);
    fprintf(out, "%*s%-*s %14s", indent, "", 28 - indent, name, buf);
    if (!isnan(rate) && bytes && rate >= 0)
        fprintf(out, " %12s/s", human_bytes(rate, rbuf, sizeof(rbuf)));
    else if (!isnan(rate))
        fprintf(out, " %12.1f/s", rate);
    fputc('\n', out);
}

/* Every counter whose name starts with `prefix`, indented under its total. */
static void render_family(FILE *out, const struct snap *s, const struct snap *prev,
                          const char *prefix)
{
    size_t plen = strlen(prefix);
    for (size_t i = 0; s->stats && i + 1 < s->stats->elements; i += 2)
        if (strncmp(s->stats->element[i]->str, prefix, plen) == 0)
            render_counter(out, s, prev, s->stats->element[i]->str, 4);
}

static void render_transforms(FILE *out, const struct snap *s)
{
    int header = 0;
    for (size_t i = 0; s->stats && i + 1 < s->stats->elements; i += 2) {
        const char *name = s->stats->element[i]->str, *end;
        if (strncmp(name, "transform:", 10) != 0 || (end = strrchr(name, ':')) == name + 9 ||
            strcmp(end, ":ok") != 0)
            continue;
        char base[256];
        snprintf(base, sizeof(base), "%.*s", (int)(end - name), name);
        char key[300];
        long long ok = snap_counter(s, name), failed, usec;
        snprintf(key, sizeof(key), "%s:failed", base);
        failed = snap_counter(s, key);
        snprintf(key, sizeof(key), "%s:usec", base);
        usec = snap_counter(s, key);
        if (!header++)
            fprintf(out, "\ntransforms\n");
        fprintf(out, "  %-26s ok %lld  failed %lld  avg %.2f ms\n", base + 10, ok, failed,
                ok + failed ? (double)usec / 1000.0 / (double)(ok + failed) : 0.0);
    }
}

static void render_text(FILE *out, const struct settings *st, const struct snap *s,
                        const struct snap *prev)
{
    char buf[64], b2[32], b3[32];
    fprintf(out, "pixflow stats  prefix %s  group %s  %s\n\n", st->prefix, st->group,
            snap_time(s->now_ms, buf, sizeof(buf)));
    fprintf(out, "%-28s %14s%s\n", "counters", "total", prev ? "           rate" : "");
    for (int i = 0; main_counters[i]; i++) {
        render_counter(out, s, prev, main_counters[i], 2);
        if (strcmp(main_counters[i], "ingest_invalid") == 0)
            render_family(out, s, prev, "ingest_invalid:");
    }
    /* Counters this version does not know by name (verify_moved, replayed, ...). */
    for (size_t i = 0; s->stats && i + 1 < s->stats->elements; i += 2) {
        const char *name = s->stats->element[i]->str;
        if (!snap_is_main(name) && strchr(name, ':') == NULL)
            render_counter(out, s, prev, name, 2);
    }

    fprintf(out, "\nstream\n  %-26s %14lld\n", "length", s->length);
    if (s->backlog >= 0)
        fprintf(out, "  %-26s %14lld%s\n", "backlog (not yet read)", s->backlog,
                s->has_group ? "" : "   (no consumer group yet)");
    else
        fprintf(out, "  %-26s %14s\n", "backlog (not yet read)", "unknown");
    fprintf(out, "  %-26s %14lld\n", "pending (read, not acked)", s->pending);
    const redisReply *o = snap_oldest(s);
    if (o) {
        long long ms = 0, idle = 0, deliveries = 0;
        rdb_id_ms(o->element[0]->str, &ms);
        rdb_ll(o->element[2], &idle);
        rdb_ll(o->element[3], &deliveries);
        fprintf(out, "  %-26s %14s   %s by %s, idle %s, delivered %lld time%s\n", "oldest pending",
                human_duration(s->now_ms - ms, b2, sizeof(b2)), o->element[0]->str,
                o->element[1]->str, human_duration(idle, b3, sizeof(b3)), deliveries,
                deliveries == 1 ? "" : "s");
    }

    long long failed = snap_counter(s, "failed"), invalid = snap_counter(s, "invalid");
    fprintf(out, "\ndead letters %lld now in %sdead (%lld failed + %lld invalid ever)\n", s->dead,
            st->prefix, failed, invalid);
    render_family(out, s, prev, "failed:");
    render_family(out, s, prev, "invalid:");

    fprintf(out, "\nworkers %zu live\n", s->nworkers);
    if (s->nworkers)
        fprintf(out, "  %-24s %-10s %9s %10s %8s %10s %10s %s\n", "NAME", "GROUP", "IN_FLIGHT",
                "PROCESSED", "PENDING", "LAST_SEEN", "UP", "VERSION");
    for (size_t i = 0; i < s->nworkers; i++) {
        const struct snap_worker *w = &s->workers[i];
        char seen[32], up[32];
        fprintf(out, "  ");
        size_t n = human_print(out, w->name, strlen(w->name), 24);
        fprintf(out, "%*s %-10s %9s %10s %8lld %10s %10s %s\n", n < 24 ? (int)(24 - n) : 0, "",
                worker_str(w, "group"), worker_str(w, "in_flight"), worker_str(w, "processed"),
                snap_pending_of(s, w->name),
                human_duration(snap_ago(s, w->hash, "last_seen"), seen, sizeof(seen)),
                human_duration(snap_ago(s, w->hash, "started_at"), up, sizeof(up)),
                worker_str(w, "version"));
    }
    /* Entries held by consumers without a heartbeat: dead workers, to be reclaimed. */
    const redisReply *x = s->xpend;
    if (x && x->type == REDIS_REPLY_ARRAY && x->elements >= 4 &&
        x->element[3]->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < x->element[3]->elements; i++) {
            const redisReply *c = x->element[3]->element[i];
            if (c->type != REDIS_REPLY_ARRAY || c->elements != 2 ||
                snap_has_worker(s, c->element[0]->str))
                continue;
            fprintf(out, "  ");
            human_print(out, c->element[0]->str, c->element[0]->len, 24);
            fprintf(out, "  no heartbeat, %s pending (reclaimed once idle)\n", c->element[1]->str);
        }
    }
    render_transforms(out, s);
}

/* One line per refresh, for logs and pipes. */
static void render_line(FILE *out, const struct snap *s, const struct snap *prev)
{
    static const char *const shown[] = {"ingest_queued", "received", "stored", "aliased",
                                        "duplicates",    "invalid",  "failed", NULL};
    char buf[64];
    fprintf(out, "%s", snap_time(s->now_ms, buf, sizeof(buf)));
    for (int i = 0; shown[i]; i++) {
        double rate = snap_rate(s, prev, shown[i]);
        fprintf(out, " %s=%lld", shown[i], snap_counter(s, shown[i]));
        if (!isnan(rate))
            fprintf(out, "(%.1f/s)", rate);
    }
    fprintf(out, " backlog=");
    if (s->backlog >= 0)
        fprintf(out, "%lld", s->backlog);
    else
        fprintf(out, "?");
    fprintf(out, " pending=%lld dead=%lld workers=%zu\n", s->pending, s->dead, s->nworkers);
    fflush(out);
}

/* The screen: rendered into memory, then written with each line cleared to its end and cut to
 * the terminal's height, so a redraw overwrites the previous one in place. */
static void render_screen(const struct settings *st, const struct snap *s, const struct snap *prev,
                          const char *error)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (mem == NULL)
        return;
    if (s)
        render_text(mem, st, s, prev);
    if (error)
        fprintf(mem, "\nredis: %s (retrying)\n", error);
    fprintf(mem, "\nevery %.1fs, Ctrl-C quits\n", (double)opt.interval_ms / 1000.0);
    fclose(mem);

    struct winsize ws;
    int rows = ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 1 ? ws.ws_row - 1 : 1000;
    fputs(ANSI_HOME, stdout);
    const char *p = text;
    for (int row = 0; row < rows && p < text + len; row++) {
        const char *nl = memchr(p, '\n', (size_t)(text + len - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
        fwrite(p, 1, n, stdout);
        fputs(ANSI_EOL "\n", stdout);
        p += n + (nl ? 1 : 0);
    }
    fputs(ANSI_EOS, stdout);
    fflush(stdout);
    free(text);
}

static void stats_sleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (!stop && nanosleep(&ts, &ts) != 0)
        ;
}

static int stats_watch(const struct settings *st, const struct admin_common *c)
{
    int tty = isatty(STDOUT_FILENO) && !opt.json;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (tty)
        fputs(ANSI_HIDE_CUR "\033[2J", stdout);
    redisContext *r = NULL;
    struct snap *prev = NULL;
    char err[512];
    for (long n = 0; !stop && (opt.count == 0 || n < opt.count); n++) {
        if (n > 0)
            stats_sleep(opt.interval_ms);
        if (stop)
            break;
        struct snap *s = NULL;
        if (r == NULL)
            r = rconn_open(&st->redis, c->timeout_ms, err, sizeof(err));
        if (r)
            s = snap_take(r, st, err, sizeof(err));
        if (s == NULL && r && r->err) { /* the link is broken: reconnect next time */
            redisFree(r);
            r = NULL;
        }
        if (tty)
            render_screen(st, s ? s : prev, s ? prev : NULL, s ? NULL : err);
        else if (s && opt.json)
            render_json(stdout, st, s, prev);
        else if (s)
            render_line(stdout, s, prev);
        else
            admin_fail(CMD, ADMIN_FAIL, "%s (retrying)", err);
        if (s) {
            snap_free(prev);
            prev = s;
        }
    }
    if (tty)
        fputs(ANSI_SHOW_CUR, stdout);
    fflush(stdout);
    snap_free(prev);
    if (r)
        redisFree(r);
    return ADMIN_OK;
}

int stats_json(FILE *out, redisContext *c, const struct settings *st, char *err, size_t errlen)
{
    struct snap *s = snap_take(c, st, err, errlen);
    if (s == NULL)
        return -1;
    render_json(out, st, s, NULL);
    snap_free(s);
    return 0;
}

int stats_main(int argc, char **argv)
{
    struct settings st;
    struct admin_common c;
    char **ops, err[512];
    int nops, status;
    if (admin_settings(&st, SET_REDIS | SET_GROUP, own_options, &c, CMD, synopsis, argc, argv, &ops,
                       &nops, &status) < 0)
        return status;
    if (nops > 0)
        return admin_fail(CMD, ADMIN_USAGE, "%s: unexpected operand (try --help)", ops[0]);
    if (!opt.watch && (opt.count || opt.interval_ms != 1000))
        return admin_fail(CMD, ADMIN_USAGE, "--%s: only with --watch",
                          opt.count ? "count" : "interval");
    if (opt.watch)
        return stats_watch(&st, &c);
    redisContext *r = admin_redis(&st, &c, CMD);
    if (r == NULL)
        return ADMIN_FAIL;
    struct snap *s = snap_take(r, &st, err, sizeof(err));
    redisFree(r);
    if (s == NULL)
        return admin_fail(CMD, ADMIN_FAIL, "%s", err);
    if (opt.json)
        render_json(stdout, &st, s, NULL);
    else
        render_text(stdout, &st, s, NULL);
    fflush(stdout);
    snap_free(s);
    return ADMIN_OK;
}
