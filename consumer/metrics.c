/* metrics.c -- counters and histograms in the Prometheus text format (version 0.0.4).
 *
 * Counter names of SPEC §7 become metric families: "stored" is pixflow_stored_total,
 * "failed:http_404" is pixflow_failed_reason_total{reason="http_404"}, "transform:gray:usec" is
 * pixflow_transform_seconds_total{transform="gray"}. Families are written in a fixed order, each
 * with its HELP and TYPE once, as the format requires. */
#include "metrics.h"
#include "names.h"
#include "process.h"

#include <stdio.h>
#include <string.h>

static const double bucket_le[METRIC_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                 0.5,   1,      2.5,   5,    10,    30,   60};
static const char *const stage_names[STAGE_COUNT] = {
    "download", "decode", "transform", "encode", "digest", "raw", "store", "end_to_end"};

/* Plain counters: name in pixflow:stats, then its help. */
static const char *const plain[][2] = {
    {"received", "Entries this worker finished (any outcome)."},
    {"stored", "Pictures stored as a new document."},
    {"aliased", "Pictures identical to a stored one, recorded as an alias."},
    {"duplicates", "Entries whose URL was already taken."},
    {"invalid", "Entries that are not a valid picture URL (dead-lettered)."},
    {"failed", "Entries dead-lettered after a download or processing failure."},
    {"retries", "Retries scheduled after a transient failure."},
    {"reclaimed", "Entries taken over from a silent worker."},
    {"bytes_in", "Bytes downloaded."},
    {"bytes_out", "PNG bytes stored."},
    {"raw_put", "Originals written to the raw store."},
    {"raw_bytes", "Bytes of the originals written to the raw store."},
    {"raw_existing", "Originals the raw store already had (nothing written)."},
};

int metrics_init(struct metrics *m)
{
    memset(m, 0, sizeof(*m));
    m->totals = counters_new();
    return m->totals ? 0 : -1;
}

void metrics_count(struct metrics *m, const char *name, long long delta)
{
    counters_add(m->totals, name, delta);
}

void metrics_observe(struct metrics *m, enum metric_stage s, double seconds)
{
    struct histogram *h = &m->stage[s];
    for (int i = 0; i < METRIC_BUCKETS; i++) {
        if (seconds <= bucket_le[i]) {
            h->buckets[i]++;
            break;
        }
    }
    h->count++;
    h->sum += seconds;
}

void metrics_observe_cpu(struct metrics *m, const struct process_timing *t)
{
    metrics_observe(m, STAGE_DECODE, t->decode_us / 1e6);
    metrics_observe(m, STAGE_TRANSFORM, t->transform_us / 1e6);
    metrics_observe(m, STAGE_ENCODE, t->encode_us / 1e6);
    metrics_observe(m, STAGE_DIGEST, t->digest_us / 1e6);
}

static void family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Every counter named prefix<label>[suffix], as metric{key="label"}. Label values here are
 * reason codes and plugin names ([a-z0-9_-]), so no escaping is needed; others are skipped. */
static void labelled(struct evbuffer *out, const struct counters *c, const char *metric,
                     const char *help, const char *prefix, const char *suffix, const char *key,
                     double scale)
{
    size_t plen = strlen(prefix), slen = strlen(suffix);
    int header = 0;
    for (int i = 0; i < counters_count(c); i++) {
        const char *n = counters_name(c, i);
        size_t len = strlen(n);
        if (strncmp(n, prefix, plen) != 0 || len <= plen + slen ||
            strcmp(n + len - slen, suffix) != 0)
            continue;
        const char *label = n + plen;
        size_t llen = len - plen - slen;
        if (strcspn(label, "\"\\\n:") < llen)
            continue;
        if (!header)
            family(out, metric, "counter", help), header = 1;
        evbuffer_add_printf(out, "%s{%s=\"%.*s\"} %.17g\n", metric, key, (int)llen, label,
                            (double)counters_value(c, i) * scale);
    }
}

static long long total(const struct counters *c, const char *name)
{
    for (int i = 0; i < counters_count(c); i++)
        if (strcmp(counters_name(c, i), name) == 0)
            return counters_value(c, i);
    return 0;
}

void metrics_render(const struct metrics *m, const struct metrics_gauges *g, struct evbuffer *out)
{
    const struct counters *c = m->totals;
    char metric[96];

    family(out, "pixflow_build_info", "gauge", "pixflow version running.");
    evbuffer_add_printf(out, "pixflow_build_info{version=\"%s\"} 1\n", PIXFLOW_VERSION);
    family(out, "pixflow_start_time_seconds", "gauge", "Start of this worker, Unix time.");
    evbuffer_add_printf(out, "pixflow_start_time_seconds %.3f\n", g->started_at);

    const struct {
        const char *name, *help;
        int value;
    } gauges[] = {
        {"pixflow_in_flight", "Entries held: read and not yet acked.", g->in_flight},
        {"pixflow_pool_busy", "Tasks submitted to the thread pool and not done.", g->pool_busy},
        {"pixflow_pool_threads", "Threads of the pool.", g->pool_threads},
        {"pixflow_downloads_active", "Downloads in progress.", g->downloads},
        {"pixflow_downloads_waiting", "Downloads waiting for room in the download memory.",
         g->downloads_waiting},
        {"pixflow_redis_up", "1 when the Redis links are up and the group exists.", g->redis_up},
        {"pixflow_mongo_up", "1 when the last MongoDB ping answered.", g->mongo_up},
        {"pixflow_raw_up", "1 when the raw store answered its last check (-1: none configured).",
         g->raw_up},
    };
    for (size_t i = 0; i < sizeof(gauges) / sizeof(*gauges); i++) {
        family(out, gauges[i].name, "gauge", gauges[i].help);
        evbuffer_add_printf(out, "%s %d\n", gauges[i].name, gauges[i].value);
    }

    family(out, "pixflow_download_bytes", "gauge",
           "Bytes of the download memory held by bodies, arriving or not yet decoded.");
    evbuffer_add_printf(out, "pixflow_download_bytes %lld\n", g->download_bytes);
    family(out, "pixflow_stream_lag", "gauge",
           "Entries of the stream the group has not read yet (whole group; -1: unknown).");
    evbuffer_add_printf(out, "pixflow_stream_lag %lld\n", g->group_lag);
    family(out, "pixflow_stream_pending", "gauge",
           "Entries the group has read and not acked (whole group).");
    evbuffer_add_printf(out, "pixflow_stream_pending %lld\n", g->group_pending);

    for (size_t i = 0; i < sizeof(plain) / sizeof(*plain); i++) {
        snprintf(metric, sizeof(metric), "pixflow_%s_total", plain[i][0]);
        family(out, metric, "counter", plain[i][1]);
        evbuffer_add_printf(out, "%s %lld\n", metric, total(c, plain[i][0]));
    }
    labelled(out, c, "pixflow_failed_reason_total", "Dead-lettered entries by reason.",
             C_FAILED ":", "", "reason", 1);
    labelled(out, c, "pixflow_invalid_reason_total", "Invalid entries by reason.", C_INVALID ":",
             "", "reason", 1);
    labelled(out, c, "pixflow_transform_ok_total", "Pictures a transform handled.", C_TRANSFORM,
             ":" C_T_OK, "transform", 1);
    labelled(out, c, "pixflow_transform_failed_total", "Pictures a transform refused.", C_TRANSFORM,
             ":" C_T_FAILED, "transform", 1);
    labelled(out, c, "pixflow_transform_seconds_total", "Time spent in each transform.",
             C_TRANSFORM, ":" C_T_USEC, "transform", 1e-6);

    family(out, "pixflow_stage_seconds", "histogram",
           "Time per picture in each stage; end_to_end runs from XADD to the durable outcome.");
    for (int s = 0; s < STAGE_COUNT; s++) {
        const struct histogram *h = &m->stage[s];
        unsigned long long cumulative = 0;
        for (int i = 0; i < METRIC_BUCKETS; i++) {
            cumulative += h->buckets[i];
            evbuffer_add_printf(out, "pixflow_stage_seconds_bucket{stage=\"%s\",le=\"%g\"} %llu\n",
                                stage_names[s], bucket_le[i], cumulative);
        }
        evbuffer_add_printf(out, "pixflow_stage_seconds_bucket{stage=\"%s\",le=\"+Inf\"} %llu\n",
                            stage_names[s], h->count);
        evbuffer_add_printf(out, "pixflow_stage_seconds_sum{stage=\"%s\"} %.6f\n", stage_names[s],
                            h->sum);
        evbuffer_add_printf(out, "pixflow_stage_seconds_count{stage=\"%s\"} %llu\n", stage_names[s],
                            h->count);
    }
}

void metrics_free(struct metrics *m)
{
    counters_free(m->totals);
    m->totals = NULL;
}
