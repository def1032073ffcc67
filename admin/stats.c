/* stats.c -- pixflow stats: the counters, and what only Redis itself knows right now, rendered
 * as text or JSON from one snapshot (snap.c reads Redis into plain structs).
 *
 * --watch takes a snapshot per interval and shows rates from the difference of two; on a
 * terminal it redraws one screen in
 * place (cursor home, each line cleared to its end, so nothing flickers), otherwise it prints
 * one line (or one JSON object) per interval, for logs and pipes. Redis failing in --watch is
 * shown and retried at the next interval, not fatal. */
#include "admin.h"
#include "human.h"
#include "json.h"
#include "names.h"
#include "rconn.h"
#include "snap.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define CMD           "stats"
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
    "invalid:<reason> counters; and how many <prefix>dead holds now), the live workers from\n"
    "their heartbeats, and each source host the fleet shares (requests at once, concurrency,\n"
    "rate, pause, circuit). --watch refreshes every --interval with rates per second: a screen "
    "redrawn\n"
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
    C_INGEST_LINES, C_INGEST_QUEUED, C_INGEST_DUPLICATES, C_INGEST_INVALID,
    C_RECEIVED,     C_STORED,        C_ALIASED,           C_DUPLICATES,
    C_INVALID,      C_FAILED,        C_RETRIES,           C_RECLAIMED,
    C_HOST_WAITS,   C_BYTES_IN,      C_BYTES_OUT,         NULL,
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    stop = sig;
}

/* The raw store's counters, shown in a section of their own. */
static const char *const raw_counters[] = {C_RAW_PUT, C_RAW_BYTES, C_RAW_EXISTING, C_RAW_USEC, NULL};

static int stats_in(const char *const *list, const char *name)
{
    for (int i = 0; list[i]; i++)
        if (strcmp(list[i], name) == 0)
            return 1;
    return 0;
}


static int stats_has_prefix(const char *name, const char *prefix)
{
    return strncmp(name, prefix, strlen(prefix)) == 0;
}

static const char *stats_time(long long ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

static void json_kv_str_or_null(struct json *j, const char *key, const char *v)
{
    json_key(j, key);
    if (v)
        json_str(j, v);
    else
        json_null(j);
}

static void json_kv_int_or_null(struct json *j, const char *key, long long v)
{
    json_key(j, key);
    if (v >= 0)
        json_int(j, v);
    else
        json_null(j);
}

/* ---- JSON ---- */

static void render_json(FILE *out, const struct settings *st, const struct snap *s,
                        const struct snap *prev)
{
    struct json j;
    char buf[64];
    json_init(&j, out);
    json_object(&j);
    json_kv_str(&j, "time", stats_time(s->now_ms, buf, sizeof(buf)));
    json_kv_str(&j, "prefix", st->prefix);
    json_kv_str(&j, "group", st->group);
    json_key(&j, "counters");
    json_object(&j);
    for (size_t i = 0; i < s->ncounters; i++)
        json_kv_int(&j, s->counters[i].name, s->counters[i].value);
    json_end(&j);
    if (prev) {
        json_key(&j, "rates");
        json_object(&j);
        for (size_t i = 0; i < s->ncounters; i++) {
            json_key(&j, s->counters[i].name);
            json_double(&j, snap_rate(s, prev, s->counters[i].name));
        }
        json_end(&j);
    }
    json_key(&j, "stream");
    json_object(&j);
    json_kv_int(&j, "length", s->group.length);
    json_key(&j, "group_exists");
    json_bool(&j, s->group.has_group);
    json_kv_int_or_null(&j, "backlog", s->group.backlog);
    json_kv_int(&j, "pending", s->group.pending);
    json_key(&j, "oldest_pending");
    if (s->oldest) {
        json_object(&j);
        json_kv_str(&j, "id", s->oldest->id);
        json_kv_str(&j, "consumer", s->oldest->consumer);
        json_kv_int(&j, "age_ms", s->oldest->age_ms);
        json_kv_int(&j, "idle_ms", s->oldest->idle_ms);
        json_kv_int(&j, "deliveries", s->oldest->deliveries);
        json_end(&j);
    } else {
        json_null(&j);
    }
    json_key(&j, "pending_by_consumer");
    json_object(&j);
    for (size_t i = 0; i < s->nconsumers; i++)
        json_kv_int(&j, s->consumers[i].name, s->consumers[i].pending);
    json_end(&j);
    json_end(&j);

    json_key(&j, "dead");
    json_object(&j);
    json_kv_int(&j, "letters", s->dead);
    json_key(&j, "by_reason");
    json_object(&j);
    for (size_t i = 0; i < s->ncounters; i++) {
        const char *name = s->counters[i].name;
        if (stats_has_prefix(name, C_FAILED ":") || stats_has_prefix(name, C_INVALID ":"))
            json_kv_int(&j, name, s->counters[i].value);
    }
    json_end(&j);
    json_end(&j);

    json_key(&j, "workers");
    json_array(&j);
    for (size_t i = 0; i < s->nworkers; i++) {
        const struct snap_worker *w = &s->workers[i];
        json_object(&j);
        json_kv_str(&j, "name", w->name);
        json_kv_str_or_null(&j, HB_GROUP, w->group);
        json_kv_str_or_null(&j, HB_VERSION, w->version);
        json_kv_str_or_null(&j, HB_STARTED_AT, w->started_at);
        json_kv_str_or_null(&j, HB_LAST_SEEN, w->last_seen);
        json_kv_int_or_null(&j, HB_IN_FLIGHT, w->in_flight);
        json_kv_int_or_null(&j, HB_PROCESSED, w->processed);
        json_kv_int(&j, "pending", w->pending);
        json_kv_int(&j, "ttl_s", w->ttl_s);
        json_end(&j);
    }
    json_end(&j);

    json_key(&j, "hosts");
    json_array(&j);
    for (size_t i = 0; i < s->nhosts; i++) {
        const struct snap_host *h = &s->hosts[i];
        json_object(&j);
        json_kv_str(&j, "host", h->name);
        json_kv_int(&j, "in_flight", h->in_flight);
        json_kv_int(&j, "concurrency", h->concurrency);
        json_kv_int(&j, "max_inflight", h->max_inflight);
        json_key(&j, "rate");
        json_double(&j, h->rate);
        json_kv_int(&j, "pause_ms", h->pause_ms);
        json_kv_str(&j, "circuit", snap_circuit_name(h->circuit));
        json_kv_int(&j, "open_ms", h->open_ms);
        json_kv_int(&j, "fails", h->fails);
        json_kv_int(&j, "waits", h->waits);
        json_end(&j);
    }
    json_end(&j);
    json_end(&j);
}

/* ---- text ----
 *
 * Counters, the stream and the dead letters share one table (name, total, rate), so their
 * numbers line up whatever the longest name; workers and transforms are tables of their own.
 * Every name comes from Redis (a reason, a transform, a worker's name): human_table_* shows it
 * harmlessly and measures it before any column is drawn. */

static void render_counter(struct human_table *t, const struct snap *s, const struct snap *prev,
                           const char *name, int indent)
{
    long long v = snap_counter(s, name);
    double rate = snap_rate(s, prev, name);
    char label[1024], buf[32], rbuf[48] = "";
    int bytes = stats_has_prefix(name, "bytes_") || strcmp(name, C_RAW_BYTES) == 0;
    snprintf(label, sizeof(label), "%*s%s", indent, "", name); /* longer: cut anyway */
    if (bytes)
        human_bytes((double)v, buf, sizeof(buf));
    else
        snprintf(buf, sizeof(buf), "%lld", v);
    if (!isnan(rate) && bytes && rate >= 0) {
        human_bytes(rate, rbuf, sizeof(rbuf) - 2);
        strcat(rbuf, "/s");
    } else if (!isnan(rate)) {
        snprintf(rbuf, sizeof(rbuf), "%.1f/s", rate);
    }
    human_table_row(t, (const char *[]){label, buf, rbuf}, NULL);
}

/* Every counter whose name starts with `prefix`, indented under its total. */
static void render_family(struct human_table *t, const struct snap *s, const struct snap *prev,
                          const char *prefix)
{
    for (size_t i = 0; i < s->ncounters; i++)
        if (stats_has_prefix(s->counters[i].name, prefix))
            render_counter(t, s, prev, s->counters[i].name, 4);
}

static void render_transforms(FILE *out, const struct snap *s)
{
    struct human_table *t = human_table_new("lrrr", 2);
    size_t plen = strlen(C_TRANSFORM);
    if (t == NULL)
        return;
    human_table_text(t, "\ntransforms");
    human_table_row(t, (const char *[]){"  NAME", "OK", "FAILED", "AVG"}, NULL);
    int any = 0;
    for (size_t i = 0; i < s->ncounters; i++) {
        const char *name = s->counters[i].name, *end;
        if (!stats_has_prefix(name, C_TRANSFORM) || (end = strrchr(name, ':')) == name + plen - 1 ||
            strcmp(end, ":" C_T_OK) != 0)
            continue;
        char base[256], label[256], key[300], ok[24], failed[24], avg[32];
        snprintf(base, sizeof(base), "%.*s", (int)(end - name), name);
        snprintf(label, sizeof(label), "  %s", base + plen);
        long long nok = s->counters[i].value, nfailed, usec;
        snprintf(key, sizeof(key), "%s:" C_T_FAILED, base);
        nfailed = snap_counter(s, key);
        snprintf(key, sizeof(key), "%s:" C_T_USEC, base);
        usec = snap_counter(s, key);
        snprintf(ok, sizeof(ok), "%lld", nok);
        snprintf(failed, sizeof(failed), "%lld", nfailed);
        snprintf(avg, sizeof(avg), "%.2f ms",
                 nok + nfailed ? (double)usec / 1000.0 / (double)(nok + nfailed) : 0.0);
        human_table_row(t, (const char *[]){label, ok, failed, avg}, NULL);
        any = 1;
    }
    if (any && human_table_print(t, out) < 0)
        fprintf(out, "  (out of memory: some transforms are missing)\n");
    human_table_free(t);
}

/* Originals kept (SPEC §5.9): written, already there, and the mean time a keep took (a HEAD, then
 * the PUT when the object was missing), when any was counted. */
static void render_raw(struct human_table *t, const struct snap *s, const struct snap *prev)
{
    long long kept = snap_counter(s, C_RAW_PUT) + snap_counter(s, C_RAW_EXISTING);
    char avg[32];
    if (kept == 0)
        return;
    human_table_text(t, "\nraw store (originals)");
    render_counter(t, s, prev, C_RAW_PUT, 2);
    render_counter(t, s, prev, C_RAW_BYTES, 2);
    render_counter(t, s, prev, C_RAW_EXISTING, 2);
    snprintf(avg, sizeof(avg), "%.2f ms", (double)snap_counter(s, C_RAW_USEC) / 1000.0 / kept);
    human_table_row(t, (const char *[]){"  time per original", avg, NULL}, NULL);
}

static void render_stream(struct human_table *t, const struct snap *s)
{
    char n[32], b2[32], b3[32], note[600];
    human_table_text(t, "\nstream");
    snprintf(n, sizeof(n), "%lld", s->group.length);
    human_table_row(t, (const char *[]){"  length", n, NULL}, NULL);
    if (s->group.backlog >= 0)
        snprintf(n, sizeof(n), "%lld", s->group.backlog);
    human_table_row(
        t,
        (const char *[]){"  backlog (not yet read)", s->group.backlog >= 0 ? n : "unknown", NULL},
        s->group.has_group ? NULL : " (no consumer group yet)");
    snprintf(n, sizeof(n), "%lld", s->group.pending);
    human_table_row(t, (const char *[]){"  pending (read, not acked)", n, NULL}, NULL);
    if (s->oldest) {
        snprintf(note, sizeof(note), " %s by %s, idle %s, delivered %lld time%s", s->oldest->id,
                 s->oldest->consumer, human_duration(s->oldest->idle_ms, b3, sizeof(b3)),
                 s->oldest->deliveries, s->oldest->deliveries == 1 ? "" : "s");
        human_table_row(t,
                        (const char *[]){"  oldest pending",
                                         human_duration(s->oldest->age_ms, b2, sizeof(b2)), NULL},
                        note);
    }
}

static const char *or_dash(const char *v)
{
    return v ? v : "-";
}

static const char *num_or_dash(long long v, char *buf, size_t len)
{
    if (v < 0)
        return "-";
    snprintf(buf, len, "%lld", v);
    return buf;
}

static void render_workers(FILE *out, const struct snap *s)
{
    fprintf(out, "\nworkers %zu live\n", s->nworkers);
    struct human_table *t = human_table_new("llrrrrrl", 2);
    if (t == NULL)
        return;
    if (s->nworkers)
        human_table_row(t,
                        (const char *[]){"  NAME", "GROUP", "IN_FLIGHT", "PROCESSED", "PENDING",
                                         "LAST_SEEN", "UP", "VERSION"},
                        NULL);
    for (size_t i = 0; i < s->nworkers; i++) {
        const struct snap_worker *w = &s->workers[i];
        char name[1024], seen[32], up[32], inf[24], done[24], pending[24];
        snprintf(name, sizeof(name), "  %s", w->name);
        snprintf(pending, sizeof(pending), "%lld", w->pending);
        human_table_row(
            t,
            (const char *[]){name, or_dash(w->group), num_or_dash(w->in_flight, inf, sizeof(inf)),
                             num_or_dash(w->processed, done, sizeof(done)), pending,
                             human_duration(snap_ago(s, w->last_seen), seen, sizeof(seen)),
                             human_duration(snap_ago(s, w->started_at), up, sizeof(up)),
                             or_dash(w->version)},
            NULL);
    }
    /* Entries held by consumers without a heartbeat: dead workers, to be reclaimed. */
    for (size_t i = 0; i < s->nconsumers; i++) {
        const struct snap_consumer *c = &s->consumers[i];
        char name[1024], note[96];
        if (snap_has_worker(s, c->name))
            continue;
        snprintf(name, sizeof(name), "  %s", c->name);
        snprintf(note, sizeof(note), "no heartbeat, %lld pending (reclaimed once idle)",
                 c->pending);
        human_table_row(t, (const char *[]){name, NULL, NULL, NULL, NULL, NULL, NULL, NULL}, note);
    }
    if (human_table_print(t, out) < 0)
        fprintf(out, "  (out of memory: some workers are missing)\n");
    human_table_free(t);
}

/* Politeness (SPEC §5.8): each source host's slots taken fleet-wide, its concurrency against its
 * cap, its rate, and what holds it back now. */
static void render_hosts(FILE *out, const struct snap *s)
{
    if (s->nhosts == 0)
        return;
    fprintf(out, "\nhosts (requests: %lld waited for their host)\n", snap_counter(s, C_HOST_WAITS));
    fprintf(out, "  %-28s %9s %11s %8s %10s %10s %s\n", "HOST", "IN_FLIGHT", "CONCURRENCY",
            "RATE/S", "WAITS", "PAUSE", "CIRCUIT");
    for (size_t i = 0; i < s->nhosts; i++) {
        const struct snap_host *h = &s->hosts[i];
        char pause[32], open[32], cap[32];
        snprintf(cap, sizeof(cap), "%lld/%lld", h->concurrency, h->max_inflight);
        fprintf(out, "  ");
        size_t n = human_print(out, h->name, strlen(h->name), 28);
        fprintf(out, "%*s %9lld %11s %8.6g %10lld %10s %s", n < 28 ? (int)(28 - n) : 0, "",
                h->in_flight, cap, h->rate, h->waits,
                h->pause_ms ? human_duration(h->pause_ms, pause, sizeof(pause)) : "-",
                snap_circuit_name(h->circuit));
        if (h->circuit == 1)
            fprintf(out, " (%s left)", human_duration(h->open_ms, open, sizeof(open)));
        if (h->fails)
            fprintf(out, ", %lld failure%s in a row", h->fails, h->fails == 1 ? "" : "s");
        fputc('\n', out);
    }
}

static void render_text(FILE *out, const struct settings *st, const struct snap *s,
                        const struct snap *prev)
{
    char buf[64];
    fprintf(out, "pixflow stats  prefix %s  group %s  %s\n\n", st->prefix, st->group,
            stats_time(s->now_ms, buf, sizeof(buf)));
    struct human_table *t = human_table_new("lrr", 2);
    if (t == NULL) {
        fprintf(out, "out of memory\n");
        return;
    }
    human_table_row(t, (const char *[]){"counters", "total", prev ? "rate" : NULL}, NULL);
    for (int i = 0; main_counters[i]; i++) {
        render_counter(t, s, prev, main_counters[i], 2);
        if (strcmp(main_counters[i], C_INGEST_INVALID) == 0)
            render_family(t, s, prev, C_INGEST_INVALID ":");
    }
    /* Counters this version does not know by name (verify_moved, replayed, ...). */
    for (size_t i = 0; i < s->ncounters; i++) {
        const char *name = s->counters[i].name;
        if (!stats_in(main_counters, name) && !stats_in(raw_counters, name) && strchr(name, ':') == NULL)
            render_counter(t, s, prev, name, 2);
    }
    render_raw(t, s, prev);
    render_stream(t, s);
    human_table_text(t, "\ndead letters %lld now in %s%s (%lld failed + %lld invalid ever)",
                     s->dead, st->prefix, KEY_DEAD, snap_counter(s, C_FAILED),
                     snap_counter(s, C_INVALID));
    render_family(t, s, prev, C_FAILED ":");
    render_family(t, s, prev, C_INVALID ":");
    if (human_table_print(t, out) < 0)
        fprintf(out, "(out of memory: some counters are missing)\n");
    human_table_free(t);
    render_workers(out, s);
    render_hosts(out, s);
    render_transforms(out, s);
}

/* One line per refresh, for logs and pipes. */
static void render_line(FILE *out, const struct snap *s, const struct snap *prev)
{
    static const char *const shown[] = {C_INGEST_QUEUED, C_RECEIVED, C_STORED, C_ALIASED,
                                        C_DUPLICATES,    C_INVALID,  C_FAILED, NULL};
    char buf[64];
    fprintf(out, "%s", stats_time(s->now_ms, buf, sizeof(buf)));
    for (int i = 0; shown[i]; i++) {
        double rate = snap_rate(s, prev, shown[i]);
        fprintf(out, " %s=%lld", shown[i], snap_counter(s, shown[i]));
        if (!isnan(rate))
            fprintf(out, "(%.1f/s)", rate);
    }
    fprintf(out, " backlog=");
    if (s->group.backlog >= 0)
        fprintf(out, "%lld", s->group.backlog);
    else
        fprintf(out, "?");
    fprintf(out, " pending=%lld dead=%lld workers=%zu\n", s->group.pending, s->dead, s->nworkers);
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
