/* overview.c -- /api/overview: the snapshot `pixflow stats --json` prints, rates per second, and
 * the counters of the last minutes for the throughput chart.
 *
 * A timer reads <prefix>stats every WEB_SAMPLE_MS into a ring, so the chart has its history
 * the moment a page opens, and rates come from two readings ~10 s apart rather than from
 * whenever the page happened to poll. */
#include "web.h"

#include "admin.h"
#include "names.h"
#include "rconn.h"
#include "rdb.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RATE_SPAN 5 /* samples between the two readings of a rate */

/* The counters the chart draws, in its order. */
static const char *const series[] = {C_STORED, C_ALIASED, C_FAILED, C_DUPLICATES, C_RECEIVED};

static long long overview_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The i-th sample, oldest first. */
static const struct web_sample *overview_at(const struct web *w, int i)
{
    return &w->samples[(w->next_sample - w->nsamples + i + 2 * WEB_SAMPLES) % WEB_SAMPLES];
}

static long long overview_counter(const redisReply *stats, const char *name)
{
    long long v = 0;
    if (rdb_ll(rdb_field(stats, name), &v) < 0)
        return 0;
    return v;
}

void overview_sample(struct web *w)
{
    char err[512];
    redisContext *c = web_redis(w, err, sizeof(err));
    if (c == NULL)
        return; /* a gap in the chart; the overview itself shows the error */
    const char *argv[] = {"HGETALL", w->k_stats};
    redisReply *r = rconn_command(c, 2, argv, NULL, err, sizeof(err));
    if (r == NULL) {
        web_redis_check(w);
        return;
    }
    struct web_sample *s = &w->samples[w->next_sample];
    if (s->stats)
        freeReplyObject(s->stats);
    s->stats = r;
    s->ms = overview_now_ms();
    w->next_sample = (w->next_sample + 1) % WEB_SAMPLES;
    if (w->nsamples < WEB_SAMPLES)
        w->nsamples++;
}

void overview_free(struct web *w)
{
    for (int i = 0; i < WEB_SAMPLES; i++)
        if (w->samples[i].stats)
            freeReplyObject(w->samples[i].stats);
    memset(w->samples, 0, sizeof(w->samples));
    w->nsamples = w->next_sample = 0;
}

static void overview_rates(const struct web *w, struct json *j)
{
    json_key(j, "rates");
    json_object(j);
    if (w->nsamples >= 2) {
        const struct web_sample *now = overview_at(w, w->nsamples - 1);
        int back = w->nsamples - 1 - RATE_SPAN;
        const struct web_sample *then = overview_at(w, back > 0 ? back : 0);
        double secs = (double)(now->ms - then->ms) / 1000.0;
        for (size_t i = 0; secs > 0 && i + 1 < now->stats->elements; i += 2) {
            const char *name = now->stats->element[i]->str;
            json_key(j, name);
            json_double(j, (double)(overview_counter(now->stats, name) -
                                    overview_counter(then->stats, name)) /
                               secs);
        }
    }
    json_end(j);
}

static void overview_history(const struct web *w, struct json *j)
{
    json_key(j, "history");
    json_object(j);
    json_kv_int(j, "interval_ms", WEB_SAMPLE_MS);
    json_key(j, "series");
    json_array(j);
    for (size_t i = 0; i < sizeof(series) / sizeof(*series); i++)
        json_str(j, series[i]);
    json_end(j);
    json_key(j, "points"); /* [time_ms, the series' counters...] */
    json_array(j);
    for (int i = 0; i < w->nsamples; i++) {
        const struct web_sample *s = overview_at(w, i);
        json_array(j);
        json_int(j, s->ms);
        for (size_t k = 0; k < sizeof(series) / sizeof(*series); k++)
            json_int(j, overview_counter(s->stats, series[k]));
        json_end(j);
    }
    json_end(j);
    json_end(j);
}

void overview_get(struct web *w, struct evhttp_request *req)
{
    char err[1024], *snap = NULL;
    size_t len = 0;
    redisContext *c = web_redis(w, err, sizeof(err));
    if (c == NULL) {
        web_error(req, 502, "%s", err);
        return;
    }
    FILE *f = open_memstream(&snap, &len);
    if (f == NULL) {
        web_error(req, 500, "out of memory");
        return;
    }
    int rc = stats_json(f, c, &w->s, err, sizeof(err));
    fclose(f);
    if (rc < 0) {
        web_redis_check(w);
        free(snap);
        web_error(req, 502, "%s", err);
        return;
    }
    struct web_out o;
    if (web_out_open(&o) < 0) {
        free(snap);
        web_error(req, 500, "out of memory");
        return;
    }
    json_object(&o.j);
    json_key(&o.j, "stats");
    json_raw(&o.j, snap);
    overview_rates(w, &o.j);
    overview_history(w, &o.j);
    json_end(&o.j);
    free(snap);
    web_out_send(req, &o, 200);
}
