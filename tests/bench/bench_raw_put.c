/* bench_raw_put.c -- the raw store's asynchronous writes as the worker drives them: S3 requests on
 * a fetch engine's curl multi, file writes on a pool, one libevent loop.
 *
 *   bench_raw_put --s3 [--count N] [--bytes B] [--inflight K]    PIXFLOW_S3_ENDPOINT, AWS_*,
 *                                                             bucket pixflow, prefix bench
 *   bench_raw_put --dir DIR [--count N] [--bytes B] [--inflight K] [--threads T]
 *
 * (tests/bench/bench_raw.py measures what keeping originals costs the whole pipeline; this one
 * measures the store alone.)
 *
 * Writes N new objects of B random bytes, at most K at once, then the same N again (each then
 * a refused conditional PUT and a HEAD, or a stat: "existed"). Prints objects/s, MB/s and per-write
 * latency. A benchmark prints figures; it asserts nothing. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "digest.h"
#include "fetch.h"
#include "log.h"
#include "pool.h"
#include "raw.h"

struct bench {
    struct event_base *base;
    struct raw_store *r;
    unsigned char **bytes;
    char (*sha)[DIGEST_HEX_LEN + 1];
    size_t len;
    int count, inflight, next, running, done, existed, failed;
    double *ms;
    char first_error[300];
};

static double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench_add(void *ctx, CURL *easy, void (*done)(CURL *, CURLcode, void *), void *arg)
{
    return fetch_engine_add(ctx, easy, done, arg);
}

static void bench_cancel(void *ctx, CURL *easy)
{
    fetch_engine_remove(ctx, easy);
}

static int bench_offload(void *ctx, void (*work)(void *), void (*done)(void *), void *arg)
{
    pool_submit(ctx, work, done, arg);
    return 0;
}

static void bench_start_more(struct bench *b);

static void bench_done(const struct raw_result *res, void *arg)
{
    struct bench *b = arg;
    b->ms[b->done++] = res->ms;
    b->running--;
    b->existed += res->status == RAW_OK && res->existed;
    if (res->status != RAW_OK && b->failed++ == 0)
        snprintf(b->first_error, sizeof(b->first_error), "%s: %s", res->reason, res->error);
    bench_start_more(b);
    if (b->done == b->count)
        event_base_loopbreak(b->base);
}

static void bench_start_more(struct bench *b)
{
    while (b->running < b->inflight && b->next < b->count) {
        int i = b->next++;
        if (raw_put_start(b->r, b->sha[i], b->bytes[i], b->len, "application/octet-stream",
                          bench_done, b) == NULL) {
            fprintf(stderr, "bench_raw_put: raw_put_start failed\n");
            exit(1);
        }
        b->running++;
    }
}

static int bench_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void bench_pass(struct bench *b, const char *what)
{
    b->next = b->done = b->existed = b->failed = 0;
    b->first_error[0] = '\0';
    double t0 = bench_now();
    bench_start_more(b);
    event_base_dispatch(b->base);
    double s = bench_now() - t0;
    qsort(b->ms, (size_t)b->count, sizeof(double), bench_cmp);
    printf("%-8s %6d writes of %zu bytes, %d at once: %8.1f writes/s %8.2f MB/s   latency "
           "p50 %.1f ms p99 %.1f ms   existed %d failed %d\n",
           what, b->count, b->len, b->inflight, b->count / s, b->count * (double)b->len / s / 1e6,
           b->ms[b->count / 2], b->ms[b->count * 99 / 100], b->existed, b->failed);
    if (b->failed)
        printf("         first failure: %s\n", b->first_error);
}

static const char *bench_env(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

int main(int argc, char **argv)
{
    struct bench b = {.count = 500, .len = 100 * 1000, .inflight = 16};
    const char *dir = NULL;
    int s3 = 0, threads = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--s3") == 0)
            s3 = 1;
        else if (strcmp(a, "--dir") == 0 && v && ++i)
            dir = v;
        else if (strcmp(a, "--count") == 0 && v && ++i)
            b.count = atoi(v);
        else if (strcmp(a, "--bytes") == 0 && v && ++i)
            b.len = (size_t)atol(v);
        else if (strcmp(a, "--inflight") == 0 && v && ++i)
            b.inflight = atoi(v);
        else if (strcmp(a, "--threads") == 0 && v && ++i)
            threads = atoi(v);
        else {
            fprintf(stderr, "usage: bench_raw_put --s3 | --dir DIR [--count N] [--bytes B] "
                            "[--inflight K] [--threads T]\n");
            return 2;
        }
    }
    if (s3 == !!dir || b.count < 1 || b.len < 1 || b.inflight < 1 || threads < 1) {
        fprintf(stderr, "bench_raw_put: give --s3 or --dir DIR, and positive counts\n");
        return 2;
    }
    log_init("bench_raw_put", LL_WARN, 0);

    struct raw_config c = {.kind = s3 ? RAW_S3 : RAW_FILE};
    snprintf(c.prefix, sizeof(c.prefix), "bench");
    if (s3) {
        snprintf(c.bucket, sizeof(c.bucket), "pixflow");
        c.endpoint = bench_env("PIXFLOW_S3_ENDPOINT", "");
        c.region = bench_env("PIXFLOW_S3_REGION", "us-east-1");
        c.access_key = bench_env("AWS_ACCESS_KEY_ID", "");
        c.secret_key = bench_env("AWS_SECRET_ACCESS_KEY", "");
        c.session_token = bench_env("AWS_SESSION_TOKEN", "");
    } else {
        snprintf(c.dir, sizeof(c.dir), "%s", dir);
    }

    char err[300];
    struct settings st;
    memset(&st, 0, sizeof(st));
    struct fetch_limits lim = {.max_bytes = 1 << 20, .total_timeout_ms = 60000};
    b.base = event_base_new();
    struct fetch_engine *e = b.base ? fetch_engine_new(b.base, &st, &lim, err, sizeof(err)) : NULL;
    struct pool *pool = e ? pool_new(b.base, threads, err, sizeof(err)) : NULL;
    if (pool == NULL) {
        fprintf(stderr, "bench_raw_put: %s\n", err);
        return 1;
    }
    struct raw_loop loop = {.base = b.base,
                            .add = bench_add,
                            .cancel = bench_cancel,
                            .ctx = e,
                            .offload = bench_offload,
                            .offload_ctx = pool};
    b.r = raw_new(&c, &loop, err, sizeof(err));
    if (b.r == NULL || raw_check(b.r, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench_raw_put: %s\n", err);
        return 1;
    }

    /* Random bytes, so that every run writes new objects. */
    uint64_t x = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull | 1;
    b.bytes = calloc((size_t)b.count, sizeof(*b.bytes));
    b.sha = calloc((size_t)b.count, sizeof(*b.sha));
    b.ms = calloc((size_t)b.count, sizeof(*b.ms));
    for (int i = 0; i < b.count; i++) {
        b.bytes[i] = malloc(b.len);
        for (size_t k = 0; k < b.len; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.bytes[i][k] = (unsigned char)x;
        }
        digest_sha256_hex(b.bytes[i], b.len, b.sha[i], err, sizeof(err));
    }
    printf("bench_raw_put: %s\n", raw_describe(b.r));
    bench_pass(&b, "new");
    bench_pass(&b, "existed");

    raw_free(b.r);
    pool_free(pool);
    fetch_engine_free(e);
    event_base_free(b.base);
    for (int i = 0; i < b.count; i++)
        free(b.bytes[i]);
    free(b.bytes);
    free(b.sha);
    free(b.ms);
    return 0;
}
