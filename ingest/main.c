/* main.c -- pixflow-ingest: catalogs (files, stdin, --follow, --watch) into the Redis stream.
 *
 * Exit status: 0 when the run went through (invalid lines are not an error; --follow and
 * --watch end on SIGINT/SIGTERM with 0), 2 for bad usage, 1 when Redis is unreachable or gives
 * up mid-way or an input cannot be read (then stderr says how far it got), 128+N when signal N
 * interrupted a finite run. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "feed.h"
#include "follow.h"
#include "push.h"
#include "reader.h"
#include "rejects.h"
#include "report.h"
#include "seen.h"
#include "settings.h"
#include "watch.h"

#define PROG       "pixflow-ingest"
#define READ_BUF   (1u << 20)
#define EXIT_USAGE 2

static const char synopsis[] = PROG
    " [options] [FILE...]\n\n"
    "Validates and normalizes each catalog line (SPEC §4), drops the duplicates it can see, and\n"
    "XADDs the rest to <prefix>urls with fields url, source, line. Reads stdin when no FILE is\n"
    "given or FILE is '-'. Exit: 0 done, 1 Redis or input failure (stderr says how far it got),\n"
    "2 bad usage";

static volatile sig_atomic_t stop_signal;

static struct {
    const char *rejects, *watch, *source, *resume;
    int follow, json;
    long batch, max_backlog, retries, timeout_ms, dedup, poll_ms;
} opt;

static const struct cfg_option own_options[] = {
    {"rejects", NULL, cfg_string, &opt.rejects, "", .meta = "FILE",
     .help = "write each invalid line there: LINE<TAB>REASON<TAB>escaped line"},
    {"follow", NULL, cfg_switch, &opt.follow, "", .flags = CFG_NOARG,
     .help = "keep reading the FILEs as they grow, across rotation and truncation (tail -F)"},
    {"watch", NULL, cfg_string, &opt.watch, "", .meta = "DIR",
     .help = "ingest every file present in or dropped into DIR, then move it to DIR/.done/"},
    {"json", NULL, cfg_switch, &opt.json, "", .flags = CFG_NOARG,
     .help = "print the final summary as one JSON object"},
    {"batch", "PIXFLOW_INGEST_BATCH", cfg_long, &opt.batch, "1000", 1, 10000, .meta = "N",
     .help = "lines per pipelined round trip"},
    {"max-backlog", "PIXFLOW_INGEST_MAX_BACKLOG", cfg_long, &opt.max_backlog, "0", 0, 0,
     .meta = "N", .help = "wait while the group's lag (XLEN without a group) exceeds N; 0: off"},
    {"source", NULL, cfg_string, &opt.source, "", .meta = "NAME",
     .help = "the entries' source field (default: the file name, or stdin)"},
    {"resume", NULL, cfg_string, &opt.resume, "", .meta = "SOURCE:LINE",
     .help = "go on after a failed run: skip the inputs before SOURCE and its lines up to LINE"},
    {"retries", "PIXFLOW_INGEST_RETRIES", cfg_long, &opt.retries, "5", 0, 100, .meta = "N",
     .help = "reconnect/resend attempts per round, with exponential backoff from 100ms"},
    {"redis-timeout", "PIXFLOW_INGEST_REDIS_TIMEOUT", cfg_millis, &opt.timeout_ms, "10s", 1,
     3600000, .meta = "TIME", .help = "Redis connect and command timeout"},
    {"dedup-memory", "PIXFLOW_INGEST_DEDUP_MEMORY", cfg_bytes, &opt.dedup, "256M", 0, 0,
     .meta = "BYTES",
     .help = "cap of the in-memory dedup set (16 B a URL, 10M URLs = 256M); past it, repeats are "
             "left to Redis; 0: off"},
    {"poll", NULL, cfg_millis, &opt.poll_ms, "250ms", 10, 60000, .meta = "TIME",
     .help = "--follow: how often to look for growth, rotation or truncation"},
    {NULL},
};

static void on_signal(int sig)
{
    stop_signal = sig;
}

/* One line naming the flag or operand at fault; returns the usage exit status. */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", PROG);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_USAGE;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct input {
    const char *path;   /* "-" for stdin */
    const char *source; /* the stream's source field */
    unsigned long skip_to;
};

/* The operands as inputs, --resume applied; -1 after printing a usage error. */
static int inputs_build(int argc, char **argv, int first, struct input **out, int *n)
{
    static char *dash[] = {"-"};
    char **ops = argv + first;
    int count = argc - first;
    if (count == 0 && !opt.watch[0]) {
        ops = dash;
        count = 1;
    }
    struct input *in = calloc((size_t)count + 1, sizeof(*in));
    if (in == NULL) {
        usage_error("out of memory");
        return -1;
    }
    for (int i = 0; i < count; i++) {
        int is_stdin = strcmp(ops[i], "-") == 0;
        in[i].path = ops[i];
        in[i].source = opt.source[0] ? opt.source : is_stdin ? "stdin" : ops[i];
        if (opt.follow && is_stdin) {
            usage_error("--follow: needs FILE operands (stdin cannot be followed)");
            goto err;
        }
        if (opt.follow || is_stdin)
            continue; /* a followed file may not exist yet */
        struct stat sb;
        const char *why = NULL;
        if (stat(ops[i], &sb) < 0 || access(ops[i], R_OK) < 0)
            why = strerror(errno);
        else if (S_ISDIR(sb.st_mode))
            why = "is a directory";
        if (why) {
            usage_error("%s: %s", ops[i], why);
            goto err;
        }
    }
    if (opt.resume[0]) {
        const char *colon = strrchr(opt.resume, ':');
        char *end = NULL;
        unsigned long line = colon ? strtoul(colon + 1, &end, 10) : 0;
        if (colon == NULL || colon == opt.resume || end == colon + 1 || *end) {
            usage_error("--resume: '%s' is not SOURCE:LINE", opt.resume);
            goto err;
        }
        size_t slen = (size_t)(colon - opt.resume);
        int at = -1;
        for (int i = 0; i < count && at < 0; i++)
            if (strlen(in[i].source) == slen && strncmp(in[i].source, opt.resume, slen) == 0)
                at = i;
        if (at < 0) {
            usage_error("--resume: '%.*s' is none of the inputs' sources", (int)slen, opt.resume);
            goto err;
        }
        /* The inputs before it were fully acknowledged by the failed run. */
        memmove(in, in + at, sizeof(*in) * (size_t)(count - at));
        count -= at;
        in[0].skip_to = line;
    }
    *out = in;
    *n = count;
    return 0;
err:
    free(in);
    return -1;
}

static int check_usage(int nops)
{
    if (opt.follow && opt.watch[0])
        return usage_error("--watch: cannot be combined with --follow");
    if (opt.watch[0]) {
        struct stat sb;
        if (nops > 0)
            return usage_error("--watch: takes no FILE operands");
        if (opt.resume[0])
            return usage_error(
                "--resume: not with --watch (a file a failed run was reading is read again whole)");
        if (stat(opt.watch, &sb) < 0 || !S_ISDIR(sb.st_mode))
            return usage_error("--watch: '%s' is not a directory", opt.watch);
    }
    if (opt.follow && nops == 0)
        return usage_error("--follow: needs FILE operands (stdin cannot be followed)");
    if (opt.dedup > 0 && opt.dedup < (long)SEEN_MIN_BYTES)
        return usage_error("--dedup-memory: must be 0 (off) or at least 1M");
    return 0;
}

/* Plain files and stdin, one after the other. */
static int run_files(struct feed *f, struct push *p, struct reader *r, const struct input *in,
                     int n, char *err, size_t errlen)
{
    int rc = FEED_EOF;
    for (int i = 0; i < n && rc == FEED_EOF; i++) {
        int fd =
            strcmp(in[i].path, "-") == 0 ? STDIN_FILENO : open(in[i].path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            snprintf(err, errlen, "%s: %s", in[i].path, strerror(errno));
            return FEED_READ_ERROR;
        }
        reader_attach(r, fd, 0);
        rc = feed_run(f, r, in[i].source, in[i].skip_to, err, errlen);
        if (rc == FEED_READ_ERROR) {
            char why[CFG_ERR_MAX];
            snprintf(why, sizeof(why), "%s", err);
            snprintf(err, errlen, "%s: line %lu: %s", in[i].path, reader_number(r) + 1, why);
        }
        if (fd != STDIN_FILENO)
            close(fd);
    }
    return rc;
}

/* Every input through the feed, then everything read handed over: also after a read error or
 * a stop request. Returns a feed_status. */
static int run_inputs(struct feed *f, struct push *p, struct reader *r, const struct input *in,
                      int nin, struct watch_stats *ws, char *err, size_t errlen)
{
    int rc;
    if (opt.watch[0]) {
        rc = watch_run(f, p, r, opt.watch, opt.source[0] ? opt.source : NULL, &stop_signal, ws, err,
                       errlen);
    } else if (opt.follow) {
        struct follow_file *ff = calloc((size_t)nin, sizeof(*ff));
        if (ff == NULL) {
            snprintf(err, errlen, "out of memory");
            return FEED_FAILED;
        }
        for (int i = 0; i < nin; i++)
            ff[i] = (struct follow_file){in[i].path, in[i].source, in[i].skip_to};
        rc = follow_run(f, p, ff, nin, opt.poll_ms, &stop_signal, err, errlen);
        free(ff);
    } else {
        rc = run_files(f, p, r, in, nin, err, errlen);
    }
    if (rc == FEED_FAILED)
        return rc;
    char ferr[1024];
    int prc = push_flush(p, ferr, sizeof(ferr));
    if (prc == PUSH_FAILED) {
        snprintf(err, errlen, "%s", ferr);
        return FEED_FAILED;
    }
    return prc == PUSH_STOPPED ? FEED_STOPPED : rc;
}

/* The summary on stdout; after a failure or an interruption, how far it got on stderr. */
static void report_end(int status, const struct push *p, const struct seen *seen,
                       const struct watch_stats *ws, double elapsed, int ran, long wait_replicas)
{
    static const struct batch_counts none;
    static const struct push_mark nowhere;
    const struct push_mark *acked = p ? push_acked(p) : &nowhere;
    struct report rep = {
        .status = status == 0   ? "ok"
                  : status == 1 ? "failed"
                                : "interrupted",
        .counts = p ? push_totals(p) : &none,
        .acked = acked,
        .elapsed_s = elapsed,
        .watch = opt.watch[0] != 0,
        .files_done = ws->done,
        .files_failed = ws->failed,
        .dedup_bytes = seen ? seen_bytes(seen) : 0,
        .dedup_full = seen ? seen_full(seen) : 0,
    };
    report_summary(stdout, &rep, opt.json);
    log_info("event=done status=%s queued=%lu", rep.status, rep.counts->queued);
    if (status != 0)
        report_how_far(stderr, PROG, acked, p && status == 1 ? push_window(p) : 0,
                       opt.watch[0] && ran ? opt.watch : NULL);
    if (status == 1 && p && wait_replicas)
        fprintf(stderr,
                "%s: acknowledged means on %ld replicas (PIXFLOW_REDIS_WAIT_REPLICAS); the batch "
                "after the mark may be in Redis, counted, without them: a rerun queues and counts "
                "it again, and the consumer's SADD drops the repeated URLs\n",
                PROG, wait_replicas);
}

int main(int argc, char **argv)
{
    static struct settings s;
    int first = 0, status = 0;
    int rc = settings_load(&s, SET_REDIS | SET_WAIT | SET_HOSTS | SET_GROUP, own_options, PROG,
                           synopsis, argc, argv, &first);
    if (rc == 1)
        return 0;
    if (rc < 0)
        return EXIT_USAGE;
    if (check_usage(argc - first))
        return EXIT_USAGE;
    struct input *in = NULL;
    int nin = 0;
    if (inputs_build(argc, argv, first, &in, &nin) < 0)
        return EXIT_USAGE;

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: a blocked read returns and sees the request */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[1024] = "";
    double t0 = now_s();
    struct seen *seen = NULL;
    struct rejects *rej = NULL;
    struct reader *r = NULL;
    struct push *p = NULL;
    struct feed *f = NULL;
    struct watch_stats ws = {0, 0};
    int ran = 0; /* inputs were opened: in --watch mode a file may be left half-read */

    seen = seen_new((size_t)opt.dedup, err, sizeof(err));
    r = reader_new(READ_BUF, URL_MAX + 1, err, sizeof(err));
    if (seen == NULL || r == NULL)
        goto fail;
    if (opt.rejects[0]) {
        rej = rejects_new(opt.rejects, nin > 1 || opt.watch[0], err, sizeof(err));
        if (rej == NULL)
            goto fail;
    }
    struct push_options po = {.redis = &s.redis,
                              .prefix = s.prefix,
                              .group = s.group,
                              .timeout_ms = opt.timeout_ms,
                              .retries = (int)opt.retries,
                              .max_backlog = opt.max_backlog,
                              .batch_size = (size_t)opt.batch,
                              .wait_replicas = s.redis_wait_replicas,
                              .stop = &stop_signal};
    p = push_new(&po, err, sizeof(err));
    if (p == NULL)
        goto fail;
    if (opt.resume[0])
        push_set_acked(p, in[0].source, in[0].skip_to);
    struct feed_options fo = {&s.allowed, opt.dedup ? seen : NULL, rej, p, &stop_signal};
    f = feed_new(&fo, err, sizeof(err));
    if (f == NULL)
        goto fail;
    log_info("event=start redis=%s prefix=%s inputs=%d mode=%s smismember=%d multi=%d "
             "wait_replicas=%ld",
             push_addr(p), s.prefix, nin,
             opt.watch[0] ? "watch"
             : opt.follow ? "follow"
                          : "files",
             push_has_smismember(p), push_has_multi(p), s.redis_wait_replicas);

    ran = 1;
    rc = run_inputs(f, p, r, in, nin, &ws, err, sizeof(err));
    if (rc == FEED_FAILED || rc == FEED_READ_ERROR)
        goto fail;
    push_end(p);
    if (rc == FEED_STOPPED && !opt.watch[0] && !opt.follow)
        status = 128 + stop_signal;
    goto done;

fail:
    status = 1;
    fprintf(stderr, "%s: %s\n", PROG, err);
done:
    if (rej && rejects_close(rej, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", PROG, err);
        if (status == 0)
            status = 1;
    }
    report_end(status, p, seen, &ws, now_s() - t0, ran, s.redis_wait_replicas);
    feed_free(f);
    push_free(p);
    reader_free(r);
    seen_free(seen);
    free(in);
    return status;
}
