/* metrics.h -- this worker's own figures for /metrics: cumulative counters and per-stage latency
 * histograms, rendered in the Prometheus text format. Loop thread only.
 *
 * Redis's pixflow:stats holds the fleet's exact totals; these are per process, for rates, latency
 * and alerting (Prometheus sums them across workers). */
#ifndef PIXFLOW_METRICS_H
#define PIXFLOW_METRICS_H

#include <event2/buffer.h>

#include "counters.h"

enum metric_stage {
    STAGE_DOWNLOAD,   /* fetch_start to the whole body, redirects included */
    STAGE_DECODE,     /* header checks and decoding */
    STAGE_TRANSFORM,  /* the chain */
    STAGE_ENCODE,     /* PNG */
    STAGE_DIGEST,     /* SHA-256 and base64 */
    STAGE_RAW,        /* the original kept in the raw store (HEAD, then PUT if missing) */
    STAGE_STORE,      /* MongoDB */
    STAGE_END_TO_END, /* XADD (the entry id's time) to the outcome being durable */
    STAGE_COUNT
};

#define METRIC_BUCKETS 15

struct histogram {
    unsigned long long buckets[METRIC_BUCKETS]; /* cumulative at render time, not here */
    unsigned long long count;
    double sum;
};

struct metrics {
    struct counters *totals; /* SPEC §7 names: received, stored, failed:<reason>, ... */
    struct histogram stage[STAGE_COUNT];
};

/* Gauges read when rendering. */
struct metrics_gauges {
    int in_flight, pool_busy, pool_threads, downloads, redis_up, mongo_up;
    int raw_up; /* -1: no raw store */
    int downloads_waiting;    /* paused or not yet sent: the download memory is full */
    long long download_bytes; /* bytes of the download memory held by bodies */
    double started_at;        /* Unix time */
    long long group_lag,
        group_pending; /* the whole group's, as Redis counts them; lag -1: unknown */
};

int metrics_init(struct metrics *m);
void metrics_count(struct metrics *m, const char *name, long long delta);
void metrics_observe(struct metrics *m, enum metric_stage s, double seconds);
struct process_timing;
/* The CPU stage's parts (decode, transform, encode, digest) of one picture. */
void metrics_observe_cpu(struct metrics *m, const struct process_timing *t);
void metrics_render(const struct metrics *m, const struct metrics_gauges *g, struct evbuffer *out);
void metrics_free(struct metrics *m);

#endif
