/* reprocess.c -- one reprocess entry's life in a worker:
 *
 *   delivered --> CHECK (pool: renditions[original/name] by _id, and the original's document)
 *       |            \--recorded with today's chain: DONE (reprocessed, nothing written)
 *       \--poison (delivered more than max_attempts times): CHECK, then DONE (dead letter)
 *   CHECK --> READ (the original from the raw store, raw_get_start) --> WORK (pool: decode,
 *   chain, encode, store_put_rendition) --> DONE
 *
 * A rendition no longer in the hash (removed since) is a dead letter, unknown_rendition.
 * A rendition this worker cannot load (a plugin it lacks) is not failed: the entry is held
 * for PASS_MS, then handed back to the stream (a copy queued and this one acked, in one script),
 * for a worker that can; it counts nothing. After a hand-back the worker reads no reprocess entry
 * for PASS_MS, so the copies go to the workers that can rather than bouncing back here.
 * MongoDB or the raw store failing is an outage, not the entry's fault: tried again with a
 * backoff, leased meanwhile, never failed. Permanent failures (the original missing from the raw
 * store or MongoDB, a picture the chain refuses) are dead letters, `reprocess_failed:<reason>`.
 * Every outcome is acked with its counters by the stream's FINISH script, which also releases
 * the (original, rendition) pair from the queued set, so `pixflow reprocess` may queue it again
 * later. Loop thread, but for the pool parts. */
#include "reprocess.h"
#include "clock.h"
#include "counters.h"
#include "log.h"
#include "names.h"
#include "process.h"
#include "link.h"
#include "stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How long an entry of a rendition this worker cannot load waits before going back. */
#define PASS_MS  5000
#define FRESH_MS 50 /* how often a name missing from the set looks for a fresh read of the hash */
/* Backoff of a try that failed for MongoDB or the raw store: from 200 ms, doubling, capped. */
#define RETRY_MAX_MS 5000

/* Hands an entry back: a copy queued, this one acked, in one step. ARGV: group, id, fields. */
static const char PASS_LUA[] = "if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 1 then\n"
                               "  redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))\n"
                               "end\n"
                               "return 0\n";

enum rp_state { R_CHECK, R_READ, R_WORK, R_WAIT, R_DONE };

struct rp_entry {
    struct reprocess *rp;
    enum rp_state state;
    char id[STREAM_ID_MAX];
    char original[65];
    char name[RENDITION_NAME_MAX + 1];
    char release[65 + RENDITION_NAME_MAX + 2]; /* <original>/<name> */
    long long deliveries;
    int poison, tries, abandoned, in_pool;
    int found, current, replace; /* CHECK: its rendition recorded, with today's chain */
    unsigned long fresh_seq;     /* the read of the hash that judges a name the set lacks */
    struct store_original orig;
    int orig_found;
    struct renditions_set *set;
    const struct rendition *r;
    struct raw_get *get;
    unsigned char *bytes;
    size_t len;
    struct process_out out;
    enum process_status pstatus;
    enum store_outcome stored;
    int rc;
    struct counters *events;
    struct event *timer;
    char reason[64], error[256], attempts[16];
    struct outcome oc;
    struct rp_entry *next;
};

struct reprocess {
    struct reprocess_env env;
    struct stream *st;
    struct link *link;
    struct rp_entry *live, *done, *flight;
    int held, ndone, stopping;
    long long lag, pending;
    struct event *tick, *lease, *reclaim, *trim, *group;
    struct timespec last_flush;
    struct timespec passed; /* the last hand-back: no read for PASS_MS after it */
    char k_stream[SET_KEY_MAX];
};

static void rp_check(struct rp_entry *e);

static void rp_unlink(struct rp_entry **head, struct rp_entry *e)
{
    for (struct rp_entry **p = head; *p; p = &(*p)->next)
        if (*p == e) {
            *p = e->next;
            e->next = NULL;
            return;
        }
}

static void rp_entry_free(struct rp_entry *e)
{
    if (e->get)
        raw_get_cancel(e->get);
    if (e->timer)
        event_free(e->timer);
    free(e->bytes);
    process_out_free(&e->out);
    renditions_set_unref(e->set);
    counters_free(e->events);
    free(e);
}

static void rp_count(struct rp_entry *e, const char *name, long long delta)
{
    counters_add(e->events, name, delta);
    metrics_count(e->rp->env.metrics, name, delta);
}

static void rp_field(struct outcome *oc, const char *name, const char *value)
{
    if (value == NULL || oc->nfields + 2 > OUTCOME_FIELDS_MAX)
        return;
    oc->fields[oc->nfields] = name;
    oc->lens[oc->nfields++] = strlen(name);
    oc->fields[oc->nfields] = value;
    oc->lens[oc->nfields++] = strlen(value);
}

/* The outcome is durable (or a dead letter to write): queued for the next ack batch. */
static void rp_done(struct rp_entry *e, const char *reason, const char *err)
{
    struct reprocess *rp = e->rp;
    struct outcome *oc = &e->oc;
    memset(oc, 0, sizeof(*oc));
    snprintf(oc->id, sizeof(oc->id), "%s", e->id);
    oc->counters = e->events;
    oc->release = e->release[0] ? e->release : NULL;
    if (reason == NULL) {
        rp_count(e, C_REPROCESSED, 1);
    } else {
        char name[COUNTER_NAME_MAX];
        if (reason != e->reason)
            snprintf(e->reason, sizeof(e->reason), "%s", reason);
        if (err != e->error)
            snprintf(e->error, sizeof(e->error), "%s", err ? err : "");
        snprintf(e->attempts, sizeof(e->attempts), "%lld", e->deliveries);
        rp_count(e, C_REPROCESS_FAILED, 1);
        snprintf(name, sizeof(name), "%.16s:%.46s", C_REPROCESS_FAILED, e->reason);
        rp_count(e, name, 1);
        rp_field(oc, FIELD_URL, e->orig_found ? e->orig.source : "");
        rp_field(oc, DEAD_REASON, e->reason);
        rp_field(oc, DEAD_ERROR, e->error);
        rp_field(oc, DEAD_ATTEMPTS, e->attempts);
        rp_field(oc, DEAD_ENTRY, e->id);
        rp_field(oc, DEAD_CONSUMER, rp->env.s->consumer);
        rp_field(oc, FIELD_ORIGINAL, e->original);
        rp_field(oc, FIELD_RENDITION, e->name);
        log_info("event=dead_letter stream=reprocess entry=%s original=%s rendition=%s "
                 "reason=%s error=\"%s\"",
                 e->id, e->original, e->name, e->reason, e->error);
    }
    free(e->bytes);
    e->bytes = NULL;
    process_out_free(&e->out);
    e->state = R_DONE;
    rp_unlink(&rp->live, e);
    e->next = rp->done;
    rp->done = e;
    rp->ndone++;
}

static void rp_timer(struct rp_entry *e, long ms, event_callback_fn fn)
{
    if (e->timer == NULL)
        e->timer = evtimer_new(e->rp->env.base, fn, e);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(e->timer, &tv);
}

static void rp_again(evutil_socket_t fd, short what, void *arg)
{
    rp_check(arg);
}

/* MongoDB or the raw store failed: not the entry's fault; again after a backoff, from CHECK. */
static void rp_retry(struct rp_entry *e, const char *what)
{
    long delay = 200L << (e->tries < 5 ? e->tries : 5);
    delay = delay > RETRY_MAX_MS ? RETRY_MAX_MS : delay;
    e->tries++;
    rp_count(e, C_RETRIES, 1);
    log_warn("event=reprocess_retry entry=%s what=%s error=\"%s\" delay_ms=%ld", e->id, what,
             e->error, delay);
    e->state = R_WAIT;
    rp_timer(e, delay, rp_again);
}

/* --- pool parts --- */

static void check_work(void *arg)
{
    struct rp_entry *e = arg;
    struct reprocess *rp = e->rp;
    struct store_rendition sr;
    const struct transforms *xf = e->r && e->r->xf ? e->r->xf : NULL;
    e->rc = store_find_rendition(rp->env.store, e->original, e->name, xf ? xf->lineage : NULL,
                                 xf ? xf->nlineage : 0, &sr, e->error, sizeof(e->error));
    if (e->rc == 0) {
        e->found = sr.found;
        e->current = sr.current;
        e->rc = store_find_original(rp->env.store, e->original, &e->orig_found, &e->orig, e->error,
                                    sizeof(e->error));
    }
}

static void work_work(void *arg)
{
    struct rp_entry *e = arg;
    struct reprocess *rp = e->rp;
    const struct transforms *xf = e->r->xf;
    e->pstatus = process_run(xf->chain, &rp->env.o->process, e->bytes, e->len, &e->out, e->reason,
                             sizeof(e->reason), e->error, sizeof(e->error));
    if (e->pstatus != PROCESS_OK)
        return;
    struct store_doc d;
    memset(&d, 0, sizeof(d));
    process_out_doc(&e->out, &d);
    d.source = e->orig.source;
    d.origin.content_type = e->orig.content_type;
    d.origin.sha256 = e->original;
    d.origin.bytes = e->len;
    d.origin.width = e->out.origin_width;
    d.origin.height = e->out.origin_height;
    d.origin.orientation = e->out.orientation;
    d.origin.format = e->out.origin_format;
    d.transforms = xf->lineage;
    d.ntransforms = xf->nlineage;
    d.rendition = e->name;
    d.stream_id = e->id;
    d.consumer = rp->env.s->consumer;
    d.attempts = (int)e->deliveries;
    e->rc =
        store_put_rendition(rp->env.store, &d, e->replace, &e->stored, e->error, sizeof(e->error));
}

/* --- loop parts --- */

static int rp_reap(struct rp_entry *e)
{
    e->in_pool = 0;
    if (!e->abandoned)
        return 0;
    rp_entry_free(e);
    return 1;
}

static void work_done(void *arg)
{
    struct rp_entry *e = arg;
    if (rp_reap(e))
        return;
    free(e->bytes);
    e->bytes = NULL;
    if (e->pstatus != PROCESS_TRANSIENT) /* the picture was processed, well or not */
        metrics_observe_cpu(e->rp->env.metrics, &e->out.timing);
    if (e->pstatus != PROCESS_OK) {
        rp_done(e, e->reason, e->error);
    } else if (e->rc == STORE_ERR_PERMANENT) {
        rp_done(e, "store_rejected", e->error);
    } else if (e->rc < 0) {
        process_out_free(&e->out);
        rp_retry(e, "store");
    } else {
        rp_count(e, C_BYTES_OUT, (long long)e->out.png_len);
        rp_done(e, NULL, NULL);
    }
}

static void on_read(const struct raw_result *r, unsigned char *bytes, size_t len, void *arg)
{
    struct rp_entry *e = arg;
    e->get = NULL;
    metrics_observe(e->rp->env.metrics, STAGE_RAW, r->ms / 1000.0);
    if (r->status == RAW_PERMANENT) {
        rp_done(e, r->reason, r->error);
        return;
    }
    if (r->status != RAW_OK) {
        snprintf(e->error, sizeof(e->error), "raw store: %.31s: %.200s", r->reason, r->error);
        rp_retry(e, "raw_store");
        return;
    }
    e->bytes = bytes;
    e->len = len;
    rp_count(e, C_BYTES_IN, (long long)len);
    e->state = R_WORK;
    e->in_pool = 1;
    pool_submit(e->rp->env.pool, work_work, work_done, e);
}

static void rp_pass_now(evutil_socket_t fd, short what, void *arg);

/* Waiting for a fresh read of the renditions hash (check_done): checked again once it is in. */
static void rp_fresh_now(evutil_socket_t fd, short what, void *arg)
{
    struct rp_entry *e = arg;
    if (renditions_fresh(e->rp->env.rends, e->fresh_seq))
        rp_check(e);
    else
        rp_timer(e, FRESH_MS, rp_fresh_now);
}

static void check_done(void *arg)
{
    struct rp_entry *e = arg;
    struct reprocess *rp = e->rp;
    if (rp_reap(e))
        return;
    if (e->rc < 0) {
        rp_retry(e, "mongo");
        return;
    }
    if (e->found && e->current) {
        rp_done(e, NULL, NULL); /* another worker, or an earlier delivery, made it */
        return;
    }
    if (e->poison) {
        char why[96];
        snprintf(why, sizeof(why), "delivered %lld times", e->deliveries);
        rp_done(e, "poison", why);
        return;
    }
    if (!e->orig_found) {
        rp_done(e, "original_unknown", "no `originals` document for this sha256");
        return;
    }
    if (e->r == NULL && renditions_loaded(rp->env.rends)) {
        /* The set it began with may be older than the hash (a worker that just started). */
        struct renditions_set *now = renditions_current(rp->env.rends);
        int known = renditions_find(now, e->name) != NULL;
        renditions_set_unref(now);
        if (known) {
            rp_check(e);
            return;
        }
        /* A rendition added just before `pixflow reprocess` queued this may not be polled yet:
         * only a read of the hash made after this entry came may call it unknown. */
        if (e->fresh_seq == 0)
            e->fresh_seq = renditions_ask(rp->env.rends);
        if (!renditions_fresh(rp->env.rends, e->fresh_seq)) {
            e->state = R_WAIT;
            rp_timer(e, FRESH_MS, rp_fresh_now);
            return;
        }
        rp_done(e, "unknown_rendition", "no such rendition (removed since it was queued?)");
        return;
    }
    if (e->r == NULL || e->r->xf == NULL) {
        /* It cannot be made here (yet): give it back to the stream after a while. */
        log_warn("event=reprocess_pass entry=%s rendition=%s error=\"%s\" delay_ms=%d", e->id,
                 e->name, e->r ? e->r->error : "unknown rendition here", PASS_MS);
        e->state = R_WAIT;
        rp_timer(e, PASS_MS, rp_pass_now);
        return;
    }
    e->replace = e->found; /* recorded with another chain: --stale */
    e->state = R_READ;
    e->get = raw_get_start(rp->env.raw, e->original, on_read, e);
    if (e->get == NULL) {
        snprintf(e->error, sizeof(e->error), "raw store: cannot start a read");
        rp_retry(e, "raw_store");
    }
}

/* Each try looks again at what is recorded, with the renditions known now. */
static void rp_check(struct rp_entry *e)
{
    renditions_set_unref(e->set);
    e->set = renditions_current(e->rp->env.rends);
    e->r = renditions_find(e->set, e->name);
    e->state = R_CHECK;
    e->in_pool = 1;
    pool_submit(e->rp->env.pool, check_work, check_done, e);
}

static void on_passed(struct link *l, redisReply *r, void *arg)
{
    struct rp_entry *e = arg;
    if (rp_reap(e))
        return;
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        rp_timer(e, PASS_MS, rp_pass_now); /* Redis away: try again later */
        return;
    }
    e->rp->held--;
    rp_unlink(&e->rp->live, e);
    clock_gettime(CLOCK_MONOTONIC, &e->rp->passed);
    rp_entry_free(e);
}

static void rp_pass_now(evutil_socket_t fd, short what, void *arg)
{
    struct rp_entry *e = arg;
    struct reprocess *rp = e->rp;
    struct renditions_set *now = renditions_current(rp->env.rends);
    const struct rendition *rn = renditions_find(now, e->name);
    int can = rn && rn->xf;
    renditions_set_unref(now);
    if (can) { /* loaded meanwhile (a plugin dropped in, a load that was still running) */
        rp_check(e);
        return;
    }
    const char *argv[] = {"EVAL", PASS_LUA,       "1",         rp->k_stream,    rp->env.s->group,
                          e->id,  FIELD_ORIGINAL, e->original, FIELD_RENDITION, e->name};
    e->state = R_WAIT;
    if (link_command(rp->link, on_passed, e, 10, argv, NULL) < 0)
        rp_timer(e, PASS_MS, rp_pass_now);
    else
        e->in_pool = 1; /* a reply is awaited: a drop leaves the entry to on_passed */
}

/* --- delivery --- */

static int rp_hex64(const char *s)
{
    return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

static void on_entry(void *arg, const char *id, void *const *fields, size_t nfields,
                     const struct stream_delivery *d)
{
    struct reprocess *rp = arg;
    for (struct rp_entry *lists[] = {rp->live, rp->done, rp->flight}, **l = lists; l < lists + 3;
         l++)
        for (struct rp_entry *e = *l; e; e = e->next)
            if (strcmp(e->id, id) == 0)
                return; /* held here already */
    struct rp_entry *e = calloc(1, sizeof(*e));
    if (e == NULL || (e->events = counters_new()) == NULL) {
        free(e);
        return; /* stays pending: reclaimed later */
    }
    e->rp = rp;
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->deliveries = d->deliveries;
    e->next = rp->live;
    rp->live = e;
    rp->held++;
    if (d->redelivered && d->deliveries > 1)
        rp_count(e, C_RECLAIMED, 1);
    for (size_t i = 0; fields && i + 1 < nfields; i += 2) {
        const redisReply *k = fields[i], *v = fields[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(k->str, FIELD_ORIGINAL) == 0)
            snprintf(e->original, sizeof(e->original), "%.64s", v->str);
        else if (strcmp(k->str, FIELD_RENDITION) == 0 && v->len <= RENDITION_NAME_MAX)
            snprintf(e->name, sizeof(e->name), "%s", v->str);
    }
    if (fields == NULL) {
        rp_done(e, "deleted", "the entry was deleted from the stream");
        return;
    }
    if (!rp_hex64(e->original) || !rendition_name_ok(e->name)) {
        rp_done(e, "bad_entry", "an entry needs original (64 hex digits) and rendition (a name)");
        return;
    }
    snprintf(e->release, sizeof(e->release), "%s/%s", e->original, e->name);
    e->poison = d->deliveries > rp->env.o->max_attempts;
    rp_check(e);
}

/* --- acks, leases, reclaims --- */

static void rp_flush(struct reprocess *rp)
{
    if (stream_flushing(rp->st) || rp->ndone == 0)
        return;
    const struct outcome **list = calloc((size_t)rp->ndone + 1, sizeof(*list));
    if (list == NULL)
        return;
    int n = 0;
    for (struct rp_entry *e = rp->done; e; e = e->next)
        list[n++] = &e->oc;
    if (stream_flush(rp->st, list, n) == 0) {
        rp->flight = rp->done;
        rp->done = NULL;
        rp->ndone = 0;
    }
    free(list);
    clock_gettime(CLOCK_MONOTONIC, &rp->last_flush);
}

static void on_flushed(void *arg, int ok, long long acked)
{
    struct reprocess *rp = arg;
    for (struct rp_entry *e = rp->flight, *next; e; e = next) {
        next = e->next;
        if (ok) {
            rp->held--;
            rp_entry_free(e);
        } else { /* given again: an ack the lost run made is not counted twice */
            e->next = rp->done;
            rp->done = e;
            rp->ndone++;
        }
    }
    rp->flight = NULL;
}

/* Dropped without an ack: it stays pending for another worker. */
static void rp_drop(struct reprocess *rp, struct rp_entry *e)
{
    rp_unlink(&rp->live, e);
    rp->held--;
    if (e->in_pool)
        e->abandoned = 1; /* its pool callback frees it */
    else
        rp_entry_free(e);
}

static void on_lost(void *arg, const char *id)
{
    struct reprocess *rp = arg;
    for (struct rp_entry *e = rp->live; e; e = e->next)
        if (strcmp(e->id, id) == 0) {
            log_warn("event=lease_lost stream=reprocess entry=%s", id);
            rp_drop(rp, e);
            return;
        }
}

static void on_lease(evutil_socket_t fd, short what, void *arg)
{
    struct reprocess *rp = arg;
    if (rp->held == 0)
        return;
    const char **ids = calloc((size_t)rp->held + 1, sizeof(*ids));
    if (ids == NULL)
        return;
    int n = 0;
    for (struct rp_entry *lists[] = {rp->live, rp->done, rp->flight}, **l = lists; l < lists + 3;
         l++)
        for (struct rp_entry *e = *l; e && n < rp->held; e = e->next)
            ids[n++] = e->id;
    stream_lease(rp->st, ids, n);
    free(ids);
}

static int rp_cap(const struct reprocess *rp)
{
    long half = rp->env.o->max_inflight / 2;
    return half > 0 ? (int)half : 1;
}

static void on_reclaim(evutil_socket_t fd, short what, void *arg)
{
    struct reprocess *rp = arg;
    if (!rp->stopping)
        stream_reclaim(rp->st, rp_cap(rp) - rp->held);
}

static void on_trim(evutil_socket_t fd, short what, void *arg)
{
    stream_trim(((struct reprocess *)arg)->st);
}

/* The backlog and pending count, for the worker's --exit-when-idle. */
static void on_group_tick(evutil_socket_t fd, short what, void *arg)
{
    stream_group_info(((struct reprocess *)arg)->st);
}

static void on_group(void *arg, long long lag, long long pending)
{
    struct reprocess *rp = arg;
    rp->lag = lag;
    rp->pending = pending;
}

static void on_link_state(struct link *l, int up, void *arg)
{
}

static void on_stream_link(void *arg, int up)
{
    if (up)
        on_lease(-1, 0, arg);
}

/* --- the worker's side --- */

void reprocess_tick(struct reprocess *rp, int slots)
{
    if (rp->ndone >= 256 || clock_ms_since(&rp->last_flush) >= rp->env.o->flush_ms)
        rp_flush(rp);
    int room = rp_cap(rp) - rp->held;
    int quiet = (rp->passed.tv_sec || rp->passed.tv_nsec) && clock_ms_since(&rp->passed) < PASS_MS;
    if (!rp->stopping && !quiet)
        stream_read(rp->st, room < slots ? room : slots);
}

int reprocess_held(const struct reprocess *rp)
{
    return rp ? rp->held + (stream_flushing(rp->st) ? 1 : 0) : 0;
}

int reprocess_idle(const struct reprocess *rp)
{
    return rp == NULL || (rp->held == 0 && rp->lag == 0 && rp->pending == 0);
}

void reprocess_stop(struct reprocess *rp)
{
    if (rp)
        rp->stopping = 1;
}

void reprocess_abandon(struct reprocess *rp)
{
    if (rp == NULL)
        return;
    rp->stopping = 1;
    while (rp->live)
        rp_drop(rp, rp->live);
}

struct reprocess *reprocess_new(const struct reprocess_env *env)
{
    struct reprocess *rp = calloc(1, sizeof(*rp));
    if (rp == NULL)
        return NULL;
    rp->env = *env;
    rp->lag = -1;
    const struct worker_options *o = env->o;
    settings_key(env->s, KEY_REPROCESS, rp->k_stream, sizeof(rp->k_stream));
    struct stream_options so = {o->block_ms,   o->reclaim_idle_ms,    o->redis_timeout_ms,
                                KEY_REPROCESS, KEY_REPROCESS_STORING, KEY_REPROCESS_QUEUED};
    struct stream_hooks hooks = {.entry = on_entry,
                                 .flushed = on_flushed,
                                 .link = on_stream_link,
                                 .group = on_group,
                                 .lost = on_lost};
    rp->st = stream_new(env->base, env->s, &so, &hooks, rp);
    rp->link =
        link_new(env->base, &env->s->redis, "hand_back", o->redis_timeout_ms, on_link_state, rp);
    struct timeval lease = {env->lease_ms / 1000, (env->lease_ms % 1000) * 1000};
    struct timeval reclaim = {o->reclaim_every_ms / 1000, (o->reclaim_every_ms % 1000) * 1000};
    struct timeval trim = {o->trim_every_ms / 1000, (o->trim_every_ms % 1000) * 1000};
    rp->lease = event_new(env->base, -1, EV_PERSIST, on_lease, rp);
    rp->reclaim = event_new(env->base, -1, EV_PERSIST, on_reclaim, rp);
    rp->trim = event_new(env->base, -1, EV_PERSIST, on_trim, rp);
    rp->group = event_new(env->base, -1, EV_PERSIST, on_group_tick, rp);
    if (rp->st == NULL || rp->link == NULL || rp->lease == NULL || rp->reclaim == NULL ||
        rp->trim == NULL || rp->group == NULL) {
        reprocess_free(rp);
        return NULL;
    }
    event_add(rp->lease, &lease);
    event_add(rp->reclaim, &reclaim);
    event_add(rp->trim, &trim);
    struct timeval half = {0, 500000};
    event_add(rp->group, &half);
    clock_gettime(CLOCK_MONOTONIC, &rp->last_flush);
    return rp;
}

void reprocess_free(struct reprocess *rp)
{
    if (rp == NULL)
        return;
    reprocess_abandon(rp);
    stream_free(rp->st); /* its callbacks get NULL: pass replies among them */
    link_free(rp->link);
    for (struct rp_entry *lists[] = {rp->done, rp->flight}, **l = lists; l < lists + 2; l++)
        for (struct rp_entry *e = *l, *next; e; e = next) {
            next = e->next;
            rp_entry_free(e);
        }
    struct event *evs[] = {rp->lease, rp->reclaim, rp->trim, rp->group};
    for (size_t i = 0; i < 4; i++)
        if (evs[i])
            event_free(evs[i]);
    free(rp);
}
