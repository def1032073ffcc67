/* worker.c -- the life of a stream entry inside one worker (SPEC §5).
 *
 *   delivered --first delivery--> ACCEPT (SADD) --new--> FETCH --ok--> WORK (pool) --> DONE
 *       |                             \--duplicate: acked by the script, gone
 *       \--redelivered--> LOOKUP (pool: is the URL stored already?) --no--> FETCH
 *   FETCH/WORK transient failure: WAIT (backoff + jitter) then again; permanent: DONE (dead letter)
 *   DONE entries are acked in batches by one script that also counts them (stream.c).
 *
 * Everything here runs on the loop thread except the two pool functions, lookup_work and
 * work_run, which touch only their own entry while the loop leaves it alone. */
#include "worker.h"
#include "counters.h"
#include "link.h"
#include "transforms.h"
#include "http.h"
#include "images.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "store.h"
#include "stream.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum entry_state { E_ACCEPT, E_LOOKUP, E_FETCH, E_WAIT, E_WORK, E_DONE };

struct entry {
    struct worker *w;
    enum entry_state state;
    char id[STREAM_ID_MAX];
    char *raw_url; /* the field as pushed, for dead letters */
    char *source, *line;
    struct url url;
    int redelivered, attempts, abandoned;
    int accepted; /* its SADD to the dedup set returned 1: a first delivery of a new URL */
    long long deliveries;
    struct timespec born;
    struct fetch *fetch;
    struct fetch_result *res;
    struct transforms *xf; /* the chain generation of its CPU stage, held until it is done */
    struct event *timer;
    /* filled by the pool functions */
    int processed, observed;
    struct process_out out;
    enum process_status pstatus;
    int store_rc;
    enum store_outcome stored;
    int found; /* store_find_url: 0, STORE_FOUND_SOURCE or STORE_FOUND_ALIAS */
    char owner[STORE_OWNER_MAX];
    char reason[64], error[256];
    double store_s; /* time of the last store_put */
    /* the ack batch */
    struct outcome oc;
    char attempts_text[16];
    struct entry *prev, *next; /* live list, or done/flight list once DONE */
};

struct worker {
    const struct settings *s;
    const struct worker_options *o;
    struct event_base *base;
    struct stream *st;
    struct fetch_engine *fe;
    struct pool *pool;
    struct store *store;
    struct transforms *xf; /* the current chain generation (SIGHUP loads a new one) */
    /* Plugins count from pool threads: their counters meet here, and the loop takes them. */
    pthread_mutex_t plugin_lock;
    struct counters *plugin_counters;
    struct entry live;           /* sentinel of entries not yet DONE */
    struct entry *done, *flight; /* DONE entries waiting for / in the ack script */
    int ndone, nflight;
    int held; /* delivered and not acked */
    long long processed;
    struct counters *events, *events_flight;
    int stopping, abandoning, exit_code;
    struct timespec stop_began, last_flush, idle_since;
    struct metrics metrics; /* this process's figures, for /metrics */
    struct http *http;
    struct images *images;
    int mongo_up, pinging, ping_rc;
    long long group_lag, group_pending; /* from Redis, refreshed with the MongoDB ping */
    double started_at;
    int idle;
    struct event *tick, *sigterm, *sigint, *sighup, *beat, *reclaim, *trim, *idle_ev, *ping;
};

static void entry_fetch(struct entry *e);
static void plugin_counter(void *arg, const char *name, long long delta);
static void entry_lookup(struct entry *e);

/* --- time --- */

static double seconds_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) + (now.tv_nsec - t->tv_nsec) / 1e9;
}

static long ms_since(const struct timespec *t)
{
    return (long)(seconds_since(t) * 1000);
}

static struct timeval tv_ms(long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

/* --- entries --- */

static void live_remove(struct entry *e)
{
    if (e->prev) {
        e->prev->next = e->next;
        e->next->prev = e->prev;
        e->prev = e->next = NULL;
    }
}

static void entry_free(struct entry *e)
{
    if (e->fetch)
        fetch_cancel(e->fetch);
    if (e->res)
        fetch_result_free(e->res);
    if (e->timer)
        event_free(e->timer);
    process_out_free(&e->out);
    transforms_unref(e->xf);
    free(e->raw_url);
    free(e->source);
    free(e->line);
    free(e);
}

/* An entry leaves this worker without an ack of ours: a duplicate the script acked, or one
 * abandoned at shutdown (it stays pending; another worker will reclaim it). */
static void entry_release(struct entry *e)
{
    live_remove(e);
    e->w->held--;
    entry_free(e);
}

static void entry_timer(struct entry *e, long ms, event_callback_fn fn)
{
    if (e->timer == NULL)
        e->timer = evtimer_new(e->w->base, fn, e);
    struct timeval tv = tv_ms(ms);
    evtimer_add(e->timer, &tv);
}

static void outcome_counter(struct outcome *oc, const char *fmt, const char *arg)
{
    if (oc->ncounters < OUTCOME_COUNTERS_MAX)
        snprintf(oc->counters[oc->ncounters++], COUNTER_NAME_MAX, fmt, arg);
}

static void outcome_field(struct outcome *oc, const char *name, const char *value)
{
    if (value == NULL || oc->nfields + 2 > OUTCOME_FIELDS_MAX)
        return;
    oc->fields[oc->nfields] = name;
    oc->lens[oc->nfields++] = strlen(name);
    oc->fields[oc->nfields] = value;
    oc->lens[oc->nfields++] = strlen(value);
}

/* Seconds since the entry was added to the stream: its id starts with that time in ms. */
static double entry_age_s(const struct entry *e)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    double added_ms = strtod(e->id, NULL);
    return (now.tv_sec * 1000.0 + now.tv_nsec / 1e6 - added_ms) / 1000.0;
}

/* An event counter: to Redis with the next ack batch, and to this process's /metrics. */
static void worker_count(struct worker *w, const char *name, long long delta)
{
    counters_add(w->events, name, delta);
    metrics_count(&w->metrics, name, delta);
}

/* The entry's outcome is durable (stored, aliased, or about to be dead-lettered by the ack
 * script): queue it for the next ack batch. `counter` is the SPEC §7 outcome counter. */
static void entry_done(struct entry *e, const char *counter, const char *reason, const char *err)
{
    struct worker *w = e->w;
    struct outcome *oc = &e->oc;
    memset(oc, 0, sizeof(*oc));
    snprintf(oc->id, sizeof(oc->id), "%s", e->id);
    outcome_counter(oc, "%s", "received");
    outcome_counter(oc, "%s", counter);
    int dead = strcmp(counter, "failed") == 0 || strcmp(counter, "invalid") == 0;
    if (dead) {
        if (reason != e->reason) /* the pool stage leaves its own there */
            snprintf(e->reason, sizeof(e->reason), "%s", reason);
        if (err != e->error)
            snprintf(e->error, sizeof(e->error), "%s", err ? err : "");
        snprintf(e->attempts_text, sizeof(e->attempts_text), "%d", e->attempts);
        outcome_counter(oc, strcmp(counter, "failed") == 0 ? "failed:%s" : "invalid:%s", e->reason);
        outcome_field(oc, "url", e->raw_url ? e->raw_url : "");
        outcome_field(oc, "reason", e->reason);
        outcome_field(oc, "error", e->error);
        outcome_field(oc, "attempts", e->attempts_text);
        outcome_field(oc, "entry", e->id);
        outcome_field(oc, "consumer", w->s->consumer);
        outcome_field(oc, "source", e->source);
        outcome_field(oc, "line", e->line);
        log_info("event=dead_letter entry=%s url=\"%.200s\" reason=%s attempts=%d error=\"%s\"",
                 e->id, e->raw_url ? e->raw_url : "", e->reason, e->attempts, e->error);
    }
    for (int i = 0; i < oc->ncounters; i++)
        metrics_count(&w->metrics, oc->counters[i], 1);
    if (strcmp(counter, "stored") == 0 || strcmp(counter, "aliased") == 0)
        metrics_observe(&w->metrics, STAGE_END_TO_END, entry_age_s(e));
    if (e->res) {
        fetch_result_free(e->res);
        e->res = NULL;
    }
    process_out_free(&e->out);
    transforms_unref(e->xf);
    e->xf = NULL;
    e->state = E_DONE;
    live_remove(e);
    e->next = w->done;
    w->done = e;
    w->ndone++;
}

/* Transient failure: again after a backoff, unless attempts or time are used up. */
static void entry_retry(struct entry *e, const char *reason, const char *err, long retry_after_ms,
                        event_callback_fn again)
{
    struct worker *w = e->w;
    const struct worker_options *o = w->o;
    long age = ms_since(&e->born);
    int doublings = e->attempts < 1 ? 0 : e->attempts > 11 ? 10 : e->attempts - 1;
    long delay = o->retry_base_ms << doublings;
    if (delay > o->retry_max_ms || delay <= 0)
        delay = o->retry_max_ms;
    delay = delay / 2 + random() % (delay / 2 + 1); /* jitter: spread the herd */
    if (retry_after_ms > delay)
        delay = retry_after_ms;
    if (e->attempts >= o->max_attempts || age + delay > o->entry_deadline_ms) {
        entry_done(e, "failed", reason, err);
        return;
    }
    worker_count(w, "retries", 1);
    log_debug("event=retry entry=%s url=%s reason=%s attempt=%d delay_ms=%ld", e->id, e->url.norm,
              reason, e->attempts, delay);
    e->state = E_WAIT;
    entry_timer(e, delay, again);
}

/* --- the CPU and store stage, on a pool thread --- */

static void work_run(void *arg)
{
    struct entry *e = arg;
    struct worker *w = e->w;
    if (!e->processed) {
        e->pstatus = process_run(e->xf->chain, &w->o->process, e->res->body, e->res->len, &e->out,
                                 e->reason, sizeof(e->reason), e->error, sizeof(e->error));
        if (e->pstatus != PROCESS_OK)
            return;
        e->processed = 1;
    }
    struct store_doc d;
    memset(&d, 0, sizeof(d));
    d.sha256 = e->out.sha256;
    d.image_b64 = e->out.b64;
    d.image_b64_len = e->out.b64_len;
    d.image = e->out.png;
    d.image_len = e->out.png_len;
    d.format = "png";
    d.width = e->out.width;
    d.height = e->out.height;
    d.channels = e->out.channels;
    d.source = e->url.norm;
    d.origin.final_url = e->res->final_url;
    d.origin.content_type = e->res->content_type;
    d.origin.sha256 = e->out.origin_sha256;
    d.origin.bytes = e->res->len;
    d.origin.width = e->out.origin_width;
    d.origin.height = e->out.origin_height;
    d.transforms = e->xf->lineage;
    d.ntransforms = e->xf->nlineage;
    d.stream_id = e->id;
    d.consumer = w->s->consumer;
    d.attempts = e->attempts;
    d.first_delivery = e->accepted;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    e->store_rc = store_put(w->store, &d, &e->stored, e->error, sizeof(e->error));
    e->store_s = seconds_since(&t1);
}

static void work_again(evutil_socket_t fd, short what, void *arg);

static void work_done(void *arg)
{
    struct entry *e = arg;
    struct worker *w = e->w;
    if (e->abandoned) {
        entry_free(e);
        return;
    }
    if (e->processed && !e->observed) { /* once, not again for a store retry */
        const struct process_timing *t = &e->out.timing;
        metrics_observe(&w->metrics, STAGE_DECODE, t->decode_us / 1e6);
        metrics_observe(&w->metrics, STAGE_TRANSFORM, t->transform_us / 1e6);
        metrics_observe(&w->metrics, STAGE_ENCODE, t->encode_us / 1e6);
        metrics_observe(&w->metrics, STAGE_DIGEST, t->digest_us / 1e6);
        e->observed = 1;
    }
    if (e->pstatus == PROCESS_PERMANENT) {
        entry_done(e, "failed", e->reason, e->error);
    } else if (e->pstatus == PROCESS_TRANSIENT) {
        entry_retry(e, e->reason, e->error, -1, work_again);
    } else if (e->store_rc == STORE_ERR_PERMANENT) {
        entry_done(e, "failed", "store_rejected", e->error);
    } else if (e->store_rc < 0) {
        /* MongoDB is down or failing: keep the entry (and its image) and try again; this is
         * not the picture's fault, so it costs no attempt. */
        log_warn("event=store_failed entry=%s error=\"%s\"", e->id, e->error);
        e->state = E_WAIT;
        entry_timer(e, w->o->retry_max_ms / 4 + random() % 1000, work_again);
    } else {
        worker_count(w, "bytes_out", (long long)e->out.png_len);
        metrics_observe(&w->metrics, STAGE_STORE, e->store_s);
        switch (e->stored) {
        case STORE_INSERTED:
            entry_done(e, "stored", NULL, NULL);
            break;
        case STORE_ALIASED:
            entry_done(e, "aliased", NULL, NULL);
            break;
        case STORE_ALREADY:
            entry_done(e, "duplicates", NULL, NULL);
            break;
        }
    }
}

/* The CPU stage runs with the chain generation current when it starts, kept until the end. */
static void entry_work(struct entry *e)
{
    if (e->xf == NULL)
        e->xf = transforms_ref(e->w->xf);
    e->state = E_WORK;
    pool_submit(e->w->pool, work_run, work_done, e);
}

static void work_again(evutil_socket_t fd, short what, void *arg)
{
    struct entry *e = arg;
    if (!e->processed && e->res == NULL) {
        entry_fetch(e); /* the download itself must be redone */
        return;
    }
    entry_work(e);
}

/* --- download --- */

static void on_fetched(struct fetch_result *res, void *arg)
{
    struct entry *e = arg;
    struct worker *w = e->w;
    e->fetch = NULL;
    worker_count(w, "bytes_in", (long long)res->len);
    metrics_observe(&w->metrics, STAGE_DOWNLOAD, res->total_ms / 1000.0);
    if (res->cls == FETCH_OK) {
        e->res = res;
        entry_work(e);
        return;
    }
    char reason[FETCH_REASON_MAX], err[256];
    snprintf(reason, sizeof(reason), "%s", res->reason);
    snprintf(err, sizeof(err), "%s", res->error);
    long retry_after = res->retry_after_ms;
    int transient = res->cls == FETCH_TRANSIENT;
    fetch_result_free(res);
    if (transient)
        entry_retry(e, reason, err, retry_after, work_again);
    else
        entry_done(e, "failed", reason, err);
}

static void entry_fetch(struct entry *e)
{
    e->attempts++;
    e->state = E_FETCH;
    e->fetch = fetch_start(e->w->fe, e->url.norm, on_fetched, e);
    if (e->fetch == NULL)
        entry_retry(e, "out_of_memory", "cannot start a download", -1, work_again);
}

/* --- redelivery: was this URL stored by an earlier attempt? --- */

static void lookup_work(void *arg)
{
    struct entry *e = arg;
    char id[65];
    e->store_rc = store_find_url(e->w->store, e->url.norm, id, e->owner, &e->found, e->error,
                                 sizeof(e->error));
}

static void lookup_again(evutil_socket_t fd, short what, void *arg)
{
    entry_lookup(arg);
}

static void lookup_done(void *arg)
{
    struct entry *e = arg;
    if (e->abandoned) {
        entry_free(e);
        return;
    }
    if (e->store_rc < 0) {
        log_warn("event=lookup_failed entry=%s error=\"%s\"", e->id, e->error);
        e->state = E_WAIT;
        entry_timer(e, e->w->o->retry_max_ms / 4 + random() % 1000, lookup_again);
        return;
    }
    if (e->found == 0)
        entry_fetch(e);
    else if (strcmp(e->owner, e->id) != 0) /* another entry of the same URL got there first */
        entry_done(e, "duplicates", NULL, NULL);
    else /* this entry stored it, then its worker died before the ack */
        entry_done(e, e->found == STORE_FOUND_SOURCE ? "stored" : "aliased", NULL, NULL);
}

static void entry_lookup(struct entry *e)
{
    e->state = E_LOOKUP;
    pool_submit(e->w->pool, lookup_work, lookup_done, e);
}

/* --- delivery --- */

static void on_accepted(void *arg, void *token, int verdict)
{
    struct entry *e = token;
    if (e->abandoned) {
        entry_free(e);
        return;
    }
    if (verdict == 1) {
        e->accepted = 1;
        entry_fetch(e);
    } else if (verdict == 0) { /* duplicate: acked and counted by the script */
        metrics_count(&e->w->metrics, "received", 1);
        metrics_count(&e->w->metrics, "duplicates", 1);
        entry_release(e);
    } else
        entry_lookup(e); /* unknown whether SADD ran: behave as for a redelivery */
}

static char *field_dup(const redisReply *r)
{
    char *s = malloc(r->len + 1);
    if (s) {
        memcpy(s, r->str, r->len);
        s[r->len] = '\0';
    }
    return s;
}

static void on_entry(void *arg, const char *id, void *const *fields, size_t nfields,
                     int redelivered, long long deliveries)
{
    struct worker *w = arg;
    struct entry *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return; /* stays pending: reclaimed later */
    e->w = w;
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->redelivered = redelivered;
    e->deliveries = deliveries;
    e->attempts = deliveries > 1 ? (int)(deliveries - 1) : 0;
    clock_gettime(CLOCK_MONOTONIC, &e->born);
    e->next = w->live.next;
    e->prev = &w->live;
    w->live.next->prev = e;
    w->live.next = e;
    w->held++;
    if (redelivered)
        worker_count(w, "reclaimed", deliveries > 1 ? 1 : 0);

    const redisReply *url = NULL;
    for (size_t i = 0; fields && i + 1 < nfields; i += 2) {
        const redisReply *k = fields[i], *v = fields[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(k->str, "url") == 0)
            url = v;
        else if (strcmp(k->str, "source") == 0 && e->source == NULL)
            e->source = field_dup(v);
        else if (strcmp(k->str, "line") == 0 && e->line == NULL)
            e->line = field_dup(v);
    }
    if (fields == NULL) {
        entry_done(e, "invalid", "deleted", "the entry was deleted from the stream");
        return;
    }
    if (url == NULL) {
        entry_done(e, "invalid", "missing_url", "the entry has no url field");
        return;
    }
    e->raw_url = field_dup(url);
    enum url_reason r = url_parse(url->str, url->len, &w->s->allowed, &e->url);
    if (r != URL_OK) {
        entry_done(e, "invalid", url_reason_name(r), "not a valid picture URL");
        return;
    }
    if (deliveries > w->o->max_attempts) {
        char why[96];
        snprintf(why, sizeof(why), "delivered %lld times", deliveries);
        entry_done(e, "failed", "poison", why);
        return;
    }
    if (redelivered) {
        entry_lookup(e);
        return;
    }
    e->state = E_ACCEPT;
    if (stream_accept(w->st, e->id, e->url.norm, e) < 0)
        entry_lookup(e);
}

/* --- acks --- */

static void plugin_counter(void *arg, const char *name, long long delta)
{
    struct worker *w = arg;
    pthread_mutex_lock(&w->plugin_lock);
    counters_add(w->plugin_counters, name, delta);
    pthread_mutex_unlock(&w->plugin_lock);
}

static void worker_flush(struct worker *w)
{
    pthread_mutex_lock(&w->plugin_lock);
    for (int i = 0; i < counters_count(w->plugin_counters); i++)
        worker_count(w, counters_name(w->plugin_counters, i),
                     counters_value(w->plugin_counters, i));
    counters_clear(w->plugin_counters);
    pthread_mutex_unlock(&w->plugin_lock);
    if (stream_flushing(w->st) || (w->ndone == 0 && counters_count(w->events) == 0))
        return;
    const struct outcome **list = calloc((size_t)w->ndone + 1, sizeof(*list));
    if (list == NULL)
        return;
    int n = 0;
    for (struct entry *e = w->done; e; e = e->next)
        list[n++] = &e->oc;
    counters_merge(w->events_flight, w->events);
    if (stream_flush(w->st, list, n, w->events_flight) == 0) {
        w->flight = w->done;
        w->nflight = w->ndone;
        w->done = NULL;
        w->ndone = 0;
    } else {
        counters_merge(w->events, w->events_flight);
    }
    free(list);
    clock_gettime(CLOCK_MONOTONIC, &w->last_flush);
}

static void on_flushed(void *arg, int ok, long long acked)
{
    struct worker *w = arg;
    struct entry *e = w->flight, *next;
    if (!ok) { /* give the batch again: the script is safe to run twice */
        while (e) {
            next = e->next;
            e->next = w->done;
            w->done = e;
            w->ndone++;
            e = next;
        }
        counters_merge(w->events, w->events_flight);
    } else {
        for (; e; e = next) {
            next = e->next;
            w->held--;
            entry_free(e);
        }
        counters_clear(w->events_flight);
        w->processed += acked;
    }
    w->flight = NULL;
    w->nflight = 0;
}

/* --- the loop's timers --- */

static void worker_stop(struct worker *w, const char *why)
{
    if (w->stopping)
        return;
    w->stopping = 1;
    clock_gettime(CLOCK_MONOTONIC, &w->stop_began);
    log_info("event=stopping reason=%s in_flight=%d drain_timeout_ms=%ld", why, w->held,
             w->o->drain_timeout_ms);
}

/* Past the drain deadline: what is still in flight stays pending in Redis, for another worker. */
static void worker_abandon(struct worker *w)
{
    int n = 0;
    w->abandoning = 1;
    while (w->live.next != &w->live) {
        struct entry *e = w->live.next;
        live_remove(e);
        w->held--;
        n++;
        if (e->state == E_ACCEPT || e->state == E_LOOKUP || e->state == E_WORK)
            e->abandoned = 1; /* its callback frees it */
        else
            entry_free(e);
    }
    if (n)
        log_warn("event=abandoned entries=%d note=\"left pending for another worker\"", n);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    if (w->ndone >= 256 || ms_since(&w->last_flush) >= w->o->flush_ms)
        worker_flush(w);
    if (!w->stopping) {
        stream_read(w->st, (int)(w->o->max_inflight - w->held));
        return;
    }
    long stopping_ms = ms_since(&w->stop_began);
    if (!w->abandoning && stopping_ms >= w->o->drain_timeout_ms)
        worker_abandon(w);
    if (w->held == 0 && !stream_flushing(w->st) && counters_count(w->events) == 0)
        event_base_loopbreak(w->base);
    else if (w->abandoning && stopping_ms >= w->o->drain_timeout_ms + 5000) {
        log_error("event=exit_unflushed entries=%d note=\"Redis unreachable; they stay pending\"",
                  w->ndone + w->nflight);
        w->exit_code = 1;
        event_base_loopbreak(w->base);
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    worker_stop(arg, sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* SIGHUP: rescan the plugin folder and rebuild the chain (PIXFLOW_TRANSFORMS, or the file it
 * names with "@FILE"). Entries already in their CPU stage finish with the chain they began with. */
static void on_reload(evutil_socket_t sig, short what, void *arg)
{
    struct worker *w = arg;
    char err[512];
    struct transforms *next =
        transforms_load(w->s->plugin_path, w->s->transforms, plugin_counter, w, err, sizeof(err));
    if (next == NULL) {
        log_error("event=reload_failed error=\"%s\" note=\"keeping transforms=%s\"", err,
                  w->xf->spec);
        return;
    }
    log_info("event=reloaded transforms=%s plugins=%zu was=%s", next->spec,
             loader_count(next->loader), w->xf->spec);
    transforms_unref(w->xf);
    w->xf = next;
}

static void on_reclaim(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    if (!w->stopping)
        stream_reclaim(w->st, (int)(w->o->max_inflight - w->held));
}

static void on_trim(evutil_socket_t fd, short what, void *arg)
{
    stream_trim(((struct worker *)arg)->st);
}

static void on_beat(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    stream_heartbeat(w->st, w->held, w->processed, (w->o->heartbeat_ms * 3 + 999) / 1000);
}

static void on_idle_tick(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    if (w->held == 0 && !w->stopping)
        stream_group_info(w->st); /* on_group decides */
    else
        w->idle = 0;
}

static void on_link(void *arg, int up)
{
    struct worker *w = arg;
    if (up && w->ndone)
        worker_flush(w);
}

/* --- readiness and metrics --- */

static void ping_work(void *arg)
{
    struct worker *w = arg;
    char err[256];
    w->ping_rc = store_ping(w->store, err, sizeof(err));
}

static void ping_done(void *arg)
{
    struct worker *w = arg;
    w->pinging = 0;
    if (w->mongo_up != (w->ping_rc == 0))
        log_info("event=mongo_%s", w->ping_rc == 0 ? "up" : "down");
    w->mongo_up = w->ping_rc == 0;
}

static void on_group(void *arg, long long lag, long long pending)
{
    struct worker *w = arg;
    w->group_lag = lag;
    w->group_pending = pending;
    if (w->o->exit_when_idle_ms <= 0)
        return;
    if (lag != 0 || pending != 0 || w->held) {
        w->idle = 0;
    } else if (!w->idle) {
        w->idle = 1;
        clock_gettime(CLOCK_MONOTONIC, &w->idle_since);
    } else if (ms_since(&w->idle_since) >= w->o->exit_when_idle_ms) {
        worker_stop(w, "idle");
    }
}

static void on_ping(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    stream_group_info(w->st);
    if (!w->pinging) {
        w->pinging = 1;
        pool_submit(w->pool, ping_work, ping_done, w);
    }
}

static int worker_ready(void *arg, char *why, size_t len)
{
    struct worker *w = arg;
    if (w->stopping)
        snprintf(why, len, "stopping");
    else if (!stream_ready(w->st))
        snprintf(why, len, "Redis: not connected or no consumer group yet");
    else if (!w->mongo_up)
        snprintf(why, len, "MongoDB: the last ping failed");
    else
        return 1;
    return 0;
}

static void worker_metrics(void *arg, struct evbuffer *out)
{
    struct worker *w = arg;
    struct metrics_gauges g = {
        .in_flight = w->held,
        .pool_busy = pool_busy(w->pool),
        .pool_threads = pool_threads(w->pool),
        .downloads = fetch_active(w->fe),
        .redis_up = stream_ready(w->st),
        .mongo_up = w->mongo_up,
        .started_at = w->started_at,
        .group_lag = w->group_lag,
        .group_pending = w->group_pending,
    };
    metrics_render(&w->metrics, &g, out);
}

static void worker_images(void *arg, struct evhttp_request *req)
{
    struct worker *w = arg;
    images_handle(w->images, req);
}

static struct event *worker_every(struct worker *w, long ms, event_callback_fn fn)
{
    struct event *ev = event_new(w->base, -1, EV_PERSIST, fn, w);
    struct timeval tv = tv_ms(ms);
    if (ev)
        event_add(ev, &tv);
    return ev;
}

static void worker_free(struct worker *w)
{
    /* Whatever is left is abandoned: stays pending, reclaimed by another worker. */
    worker_abandon(w);
    http_free(w->http); /* /images reads still running are dropped when they end */
    pool_free(w->pool);
    images_free(w->images); /* runs the done callbacks of finished tasks: they free their entries */
    stream_free(w->st);     /* hands NULL to waiting callbacks: abandoned entries are freed */
    for (struct entry *lists[] = {w->done, w->flight}, **l = lists; l < lists + 2; l++) {
        for (struct entry *e = *l, *next; e; e = next) {
            next = e->next;
            entry_free(e);
        }
    }
    fetch_engine_free(w->fe);
    transforms_unref(w->xf);
    store_free(w->store);
    counters_free(w->events);
    counters_free(w->events_flight);
    counters_free(w->plugin_counters);
    metrics_free(&w->metrics);
    pthread_mutex_destroy(&w->plugin_lock);
    struct event *evs[] = {w->tick,    w->sigterm, w->sigint,  w->sighup, w->beat,
                           w->reclaim, w->trim,    w->idle_ev, w->ping};
    for (size_t i = 0; i < sizeof(evs) / sizeof(*evs); i++)
        if (evs[i])
            event_free(evs[i]);
    if (w->base)
        event_base_free(w->base);
    free(w);
}

int worker_run(const struct settings *s, const struct worker_options *o)
{
    char err[512];
    struct worker *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return 1;
    w->s = s;
    w->o = o;
    w->live.next = w->live.prev = &w->live;
    w->events = counters_new();
    w->events_flight = counters_new();
    w->started_at = (double)time(NULL);
    w->group_lag = -1;
    w->plugin_counters = counters_new();
    pthread_mutex_init(&w->plugin_lock, NULL);
    w->base = event_base_new();
    clock_gettime(CLOCK_MONOTONIC, &w->last_flush);
    if (w->events == NULL || w->events_flight == NULL || w->plugin_counters == NULL ||
        w->base == NULL || metrics_init(&w->metrics) < 0) {
        snprintf(err, sizeof(err), "out of memory");
        goto fail;
    }

    w->xf = transforms_load(s->plugin_path, s->transforms, plugin_counter, w, err, sizeof(err));
    if (w->xf == NULL)
        goto fail;
    w->store = store_new(s->mongo_uri, err, sizeof(err));
    if (w->store == NULL)
        goto fail;
    if (store_prepare(w->store, err, sizeof(err)) < 0)
        log_warn("event=store_prepare_failed error=\"%s\" note=\"retried on first use\"", err);
    w->fe = fetch_engine_new(w->base, s, &o->fetch, err, sizeof(err));
    if (w->fe == NULL)
        goto fail;
    /* Pool threads wait for their picture's memory here rather than overdraw it. */
    process_budget_init((size_t)o->process.decode_memory);
    w->pool = pool_new(w->base, (int)o->threads, err, sizeof(err));
    if (w->pool == NULL)
        goto fail;
    struct stream_options so = {o->block_ms, o->reclaim_idle_ms, o->redis_timeout_ms};
    struct stream_hooks hooks = {on_entry, on_accepted, on_flushed, on_link, on_group};
    w->st = stream_new(w->base, s, &so, &hooks, w);
    if (w->st == NULL) {
        snprintf(err, sizeof(err), "cannot set up the Redis links");
        goto fail;
    }
    signal(SIGPIPE, SIG_IGN);
    w->sigterm = evsignal_new(w->base, SIGTERM, on_signal, w);
    w->sigint = evsignal_new(w->base, SIGINT, on_signal, w);
    evsignal_add(w->sigterm, NULL);
    evsignal_add(w->sigint, NULL);
    w->sighup = evsignal_new(w->base, SIGHUP, on_reload, w);
    evsignal_add(w->sighup, NULL);
    w->tick = worker_every(w, 20, on_tick);
    w->beat = worker_every(w, o->heartbeat_ms, on_beat);
    w->reclaim = worker_every(w, o->reclaim_every_ms, on_reclaim);
    w->trim = worker_every(w, o->trim_every_ms, on_trim);
    if (o->exit_when_idle_ms > 0)
        w->idle_ev = worker_every(w, 250, on_idle_tick);
    w->ping = worker_every(w, 5000, on_ping);
    on_ping(-1, 0, w);
    if (o->http_addr && *o->http_addr) {
        w->images = images_new(w->pool, w->store, &s->allowed);
        if (w->images == NULL) {
            snprintf(err, sizeof(err), "out of memory");
            goto fail;
        }
        struct http_hooks hh = {worker_ready, worker_metrics, worker_images};
        w->http = http_new(w->base, o->http_addr, &hh, w, err, sizeof(err));
        if (w->http == NULL)
            goto fail;
        log_info("event=http_listening addr=%s port=%d", o->http_addr, http_port(w->http));
    }

    log_info("event=start consumer=%s group=%s stream=%surls transforms=%s threads=%ld "
             "max_inflight=%ld",
             s->consumer, s->group, s->prefix, w->xf->spec, o->threads, o->max_inflight);
    event_base_dispatch(w->base);
    int code = w->exit_code;
    log_info("event=stopped processed=%lld", w->processed);
    worker_free(w);
    return code;
fail:
    log_error("event=start_failed error=\"%s\"", err);
    fprintf(stderr, "pixflow-consumer: %s\n", err);
    worker_free(w);
    return 1;
}
