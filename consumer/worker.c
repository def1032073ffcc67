/* worker.c -- the life of a stream entry inside one worker (SPEC §5).
 *
 *   delivered --first delivery--> ACCEPT (SADD) --new--> FETCH --ok--> WORK (pool) --> DONE
 *       |                             \--duplicate: acked by the script, gone
 *       \--redelivered--> LOOKUP (pool: is the URL stored already?) --no--> FETCH
 *   WORK = the CPU stage, then with a raw store KEEP (the original written there, SPEC §5.9),
 *   then MARK and the store: nothing reaches MongoDB, and nothing is acked, before its
 *   original is durable. The body is held, inside the download memory, until KEEP is done.
 *   FETCH/WORK transient failure: WAIT (backoff + jitter) then again; permanent: DONE (dead letter)
 *   store or lookup failure (MongoDB away), or the raw store failing: WAIT while the deadline
 *   allows, then PARK until a ping of what failed answers again; an outage never fails an entry
 *   nor costs it a delivery
 *   DONE entries are acked in batches by one script that also counts them (stream.c).
 *
 * Every try after a transient failure, whatever the stage, is one more attempt. Each entry
 * carries its own counters (outcome and events: bytes, retries, transforms), written by the ack
 * script only when the ack is ours, so they are counted once whatever crashed.
 *
 * The lease keeps what this worker holds from being reclaimed while it lives (stream_lease on a
 * period well below --reclaim-idle): a delivery count grows only when a worker really lost an
 * entry. An id already held here is never started a second time.
 *
 * Everything here runs on the loop thread except the two pool functions, lookup_work and
 * work_run, which touch only their own entry while the loop leaves it alone. */
#include "worker.h"
#include "clock.h"
#include "counters.h"
#include "link.h"
#include "transforms.h"
#include "hosts.h"
#include "http.h"
#include "images.h"
#include "log.h"
#include "metrics.h"
#include "names.h"
#include "pool.h"
#include "raw.h"
#include "renditions.h"
#include "reprocess.h"
#include "store.h"
#include "stream.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum entry_state { E_ACCEPT, E_LOOKUP, E_FETCH, E_WAIT, E_PARK, E_WORK, E_KEEP, E_MARK, E_DONE };

/* What a parked entry waits for. */
enum park_on { PARK_MONGO, PARK_RAW };

/* After the drain deadline, how long acks may still take (Redis down: they stay pending). */
#define STOP_FLUSH_GRACE_MS 3000
/* Then how long pool threads may take to finish their task before the process ends anyway. */
#define STOP_POOL_WAIT_MS 1000
/* MongoDB pings: this often normally, every second while entries are parked on it. */
#define PING_EVERY_MS 5000
/* The renditions hash is read this often: a change applies within that. */
#define RENDITIONS_POLL_MS 2000
/* A store's start could not be recorded (Redis away): tried again this often. */
#define MARK_RETRY_MS 1000

struct entry {
    struct worker *w;
    enum entry_state state;
    char id[STREAM_ID_MAX];
    char *raw_url; /* the field as pushed, for dead letters */
    char *source, *line;
    struct url url;
    int redelivered, attempts;
    int abandoned; /* left to another worker while a callback of ours is pending (a zombie) */
    int rounds;    /* times it left PARK with MongoDB answering pings (bounded by max_attempts) */
    event_callback_fn resume;       /* what PARK goes back to: the store, lookup or keep */
    enum park_on park_on;
    struct counters *events;        /* its counters, written with its ack */
    struct counters *plugin_events; /* from the chain, on the pool thread, moved on the loop */
    int accepted; /* its SADD to the dedup set returned 1: a first delivery of a new URL */
    int poison;   /* delivered more than max_attempts times: dead-lettered unless already stored */
    int marked;   /* its store's start is recorded in the storing hash (stream_mark) */
    int maybe_written; /* an earlier try may have written to MongoDB: the store looks first */
    int kept;          /* its original is durable in the raw store (or there is none) */
    struct raw_put *put;
    long long deliveries;
    struct timespec born;
    struct fetch *fetch;
    struct fetch_result *res;
    struct transforms *xf; /* the chain generation of its CPU stage, held until it is done */
    struct renditions_set *rset; /* the other renditions of that stage, held likewise */
    struct process_out *routs;   /* their pictures: routs[i] of rset->r[i] (png NULL: none) */
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
    char raw[RAW_LOCATION_MAX]; /* where its original is kept */
    /* the ack batch */
    struct outcome oc;
    char attempts_text[16];
    struct entry *prev, *next; /* live or zombie list, or done/flight list once DONE */
};

struct worker {
    const struct settings *s;
    const struct worker_options *o;
    struct event_base *base;
    struct stream *st;
    struct fetch_engine *fe;
    struct hosts *hosts; /* politeness: the fetch engine's gate */
    struct pool *pool;
    struct store *store;
    struct raw_store *raw; /* NULL: originals are not kept */
    struct transforms *xf; /* the current chain generation (SIGHUP loads a new one) */
    struct renditions *rends; /* the other renditions, followed from Redis */
    struct reprocess *rp;     /* the reprocess stream's lane */
    int reloading;         /* a generation is being loaded on the pool; 2: SIGHUP came again */
    struct entry live;     /* sentinel of entries not yet DONE */
    struct entry zombies;  /* sentinel of abandoned entries a callback will free */
    struct entry *done, *flight; /* DONE entries waiting for / in the ack script */
    int ndone, nflight, nparked, nparked_raw;
    int held; /* delivered and not acked */
    long long processed;
    int stopping, abandoning;
    struct timespec stop_began, last_flush, idle_since, last_ping, reclaim_after;
    long lease_ms;
    struct metrics metrics; /* this process's figures, for /metrics */
    struct http *http;
    struct images *images;
    int mongo_up, pinging, ping_rc;
    int raw_up, raw_rc; /* the raw store's last check (raw_up 1 when none is configured) */
    int ping_raw;       /* this ping checks the raw store too (decided on the loop thread) */
    long long group_lag, group_pending; /* from Redis, refreshed with the MongoDB ping */
    double started_at;
    int idle;
    struct event *tick, *sigterm, *sigint, *sighup, *beat, *reclaim, *trim, *idle_ev, *ping;
    struct event *lease;
};

/* The entry whose CPU stage runs on this pool thread: the chain's counters are its own. */
static __thread struct entry *work_entry;

static void entry_fetch(struct entry *e);
static void plugin_counter(void *arg, const char *name, long long delta);
static void entry_lookup(struct entry *e);
static void worker_ping(struct worker *w);

/* --- time --- */

static double seconds_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) + (now.tv_nsec - t->tv_nsec) / 1e9;
}

static void add_ms(struct timespec *t, long ms)
{
    t->tv_sec += ms / 1000;
    t->tv_nsec += (ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

static void after_ms(struct timespec *t, long ms)
{
    clock_gettime(CLOCK_MONOTONIC, t);
    add_ms(t, ms);
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

static void list_insert(struct entry *head, struct entry *e)
{
    e->next = head->next;
    e->prev = head;
    head->next->prev = e;
    head->next = e;
}

/* Parked entries, all and those waiting for the raw store. */
static void worker_parked(struct worker *w, const struct entry *e, int delta)
{
    w->nparked += delta;
    if (e->park_on == PARK_RAW)
        w->nparked_raw += delta;
}

static void entry_renditions_free(struct entry *e)
{
    for (int i = 0; e->routs && i < e->rset->n; i++)
        process_out_free(&e->routs[i]);
    free(e->routs);
    e->routs = NULL;
    renditions_set_unref(e->rset);
    e->rset = NULL;
}

static void entry_free(struct entry *e)
{
    if (e->fetch)
        fetch_cancel(e->fetch);
    if (e->put)
        raw_put_cancel(e->put);
    if (e->res)
        fetch_result_free(e->res);
    if (e->timer)
        event_free(e->timer);
    process_out_free(&e->out);
    transforms_unref(e->xf);
    entry_renditions_free(e);
    counters_free(e->events);
    counters_free(e->plugin_events);
    free(e->raw_url);
    free(e->source);
    free(e->line);
    free(e);
}

/* An entry leaves this worker without an ack of ours: a duplicate the script acked. */
static void entry_release(struct entry *e)
{
    live_remove(e);
    e->w->held--;
    entry_free(e);
}

/* An entry is given up without an ack (stop past the drain deadline, or its lease was lost): it
 * stays pending for another worker. One waiting for a reply or a pool task becomes a zombie,
 * still known here (never started again) until that callback frees it. */
static void entry_drop(struct entry *e)
{
    struct worker *w = e->w;
    live_remove(e);
    w->held--;
    if (e->state == E_PARK)
        worker_parked(w, e, -1);
    if (e->state == E_ACCEPT || e->state == E_LOOKUP || e->state == E_WORK || e->state == E_MARK) {
        e->abandoned = 1;
        list_insert(&w->zombies, e);
    } else {
        entry_free(e);
    }
}

/* The callback of a zombie: it is done with. */
static int entry_reap(struct entry *e)
{
    if (!e->abandoned)
        return 0;
    live_remove(e);
    entry_free(e);
    return 1;
}

static struct entry *list_find(struct entry *head, const char *id)
{
    for (struct entry *e = head->next; e != head; e = e->next)
        if (strcmp(e->id, id) == 0)
            return e;
    return NULL;
}

/* Whether this worker holds the id in any state, zombies included. */
static int worker_holds(struct worker *w, const char *id)
{
    if (list_find(&w->live, id) || list_find(&w->zombies, id))
        return 1;
    for (struct entry *lists[] = {w->done, w->flight}, **l = lists; l < lists + 2; l++)
        for (struct entry *e = *l; e; e = e->next)
            if (strcmp(e->id, id) == 0)
                return 1;
    return 0;
}

static void entry_timer(struct entry *e, long ms, event_callback_fn fn)
{
    if (e->timer == NULL)
        e->timer = evtimer_new(e->w->base, fn, e);
    struct timeval tv = tv_ms(ms);
    evtimer_add(e->timer, &tv);
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

/* A counter of the entry: to Redis with its ack, and to this process's /metrics now. */
static void entry_count(struct entry *e, const char *name, long long delta)
{
    counters_add(e->events, name, delta);
    metrics_count(&e->w->metrics, name, delta);
}

/* The entry's outcome is durable (stored, aliased, or about to be dead-lettered by the ack
 * script): queue it for the next ack batch. `counter` is the SPEC §7 outcome counter. */
static void entry_done(struct entry *e, const char *counter, const char *reason, const char *err)
{
    struct worker *w = e->w;
    struct outcome *oc = &e->oc;
    memset(oc, 0, sizeof(*oc));
    snprintf(oc->id, sizeof(oc->id), "%s", e->id);
    oc->counters = e->events;
    entry_count(e, C_RECEIVED, 1);
    entry_count(e, counter, 1);
    int failed = strcmp(counter, C_FAILED) == 0;
    if (failed || strcmp(counter, C_INVALID) == 0) {
        if (reason != e->reason) /* the pool stage leaves its own there */
            snprintf(e->reason, sizeof(e->reason), "%s", reason);
        if (err != e->error)
            snprintf(e->error, sizeof(e->error), "%s", err ? err : "");
        snprintf(e->attempts_text, sizeof(e->attempts_text), "%d", e->attempts);
        char name[COUNTER_NAME_MAX];
        snprintf(name, sizeof(name), "%.16s:%.46s", counter, e->reason);
        entry_count(e, name, 1);
        /* The URL it was accepted under (normalized), so a replay needs no URL rules of its
         * own; the field as pushed only when it never was a valid URL. */
        const char *url = e->url.norm[0] ? e->url.norm : e->raw_url ? e->raw_url : "";
        outcome_field(oc, FIELD_URL, url);
        outcome_field(oc, DEAD_REASON, e->reason);
        outcome_field(oc, DEAD_ERROR, e->error);
        outcome_field(oc, DEAD_ATTEMPTS, e->attempts_text);
        outcome_field(oc, DEAD_ENTRY, e->id);
        outcome_field(oc, DEAD_CONSUMER, w->s->consumer);
        outcome_field(oc, FIELD_SOURCE, e->source);
        outcome_field(oc, FIELD_LINE, e->line);
        log_info("event=dead_letter entry=%s url=\"%.200s\" reason=%s attempts=%d error=\"%s\"",
                 e->id, url, e->reason, e->attempts, e->error);
    }
    if (strcmp(counter, C_STORED) == 0 || strcmp(counter, C_ALIASED) == 0)
        metrics_observe(&w->metrics, STAGE_END_TO_END, entry_age_s(e));
    if (e->res) {
        fetch_result_free(e->res);
        e->res = NULL;
    }
    process_out_free(&e->out);
    transforms_unref(e->xf);
    e->xf = NULL;
    entry_renditions_free(e);
    if (e->state == E_PARK)
        worker_parked(w, e, -1);
    e->state = E_DONE;
    live_remove(e);
    e->next = w->done;
    w->done = e;
    w->ndone++;
}

/* The backoff before try number attempts + 1: exponential, capped, with jitter. */
static long retry_delay(const struct entry *e, long retry_after_ms)
{
    const struct worker_options *o = e->w->o;
    int doublings = e->attempts < 1 ? 0 : e->attempts > 11 ? 10 : e->attempts - 1;
    long delay = o->retry_base_ms << doublings;
    if (delay > o->retry_max_ms || delay <= 0)
        delay = o->retry_max_ms;
    delay = delay / 2 + random() % (delay / 2 + 1); /* jitter: spread the herd */
    return retry_after_ms > delay ? retry_after_ms : delay;
}

static void entry_wait(struct entry *e, const char *reason, long delay, event_callback_fn again)
{
    entry_count(e, C_RETRIES, 1);
    log_debug("event=retry entry=%s url=%s reason=%s attempt=%d delay_ms=%ld", e->id, e->url.norm,
              reason, e->attempts, delay);
    e->state = E_WAIT;
    entry_timer(e, delay, again);
}

/* Transient failure of the entry's own work (download, CPU stage): again after a backoff,
 * unless attempts or time are used up, then dead-lettered. */
static void entry_retry(struct entry *e, const char *reason, const char *err, long retry_after_ms,
                        event_callback_fn again)
{
    const struct worker_options *o = e->w->o;
    long delay = retry_delay(e, retry_after_ms);
    if (e->attempts >= o->max_attempts || clock_ms_since(&e->born) + delay > o->entry_deadline_ms) {
        entry_done(e, C_FAILED, reason, err);
        return;
    }
    entry_wait(e, reason, delay, again);
}

/* MongoDB failed the store or the lookup, or the raw store the original: not the picture's
 * fault. Each try counts as an attempt; within the deadline it is tried again after a backoff,
 * past it the entry is parked (leased, no timer) until a ping of what failed answers: an outage
 * of any length neither fails an entry nor lets it be reclaimed, and costs one ping a second,
 * not one try per entry. */
static void entry_park_retry(struct entry *e, enum park_on on, const char *event,
                             event_callback_fn again)
{
    struct worker *w = e->w;
    log_warn("event=%s entry=%s attempt=%d error=\"%s\"", event, e->id, e->attempts, e->error);
    long delay = retry_delay(e, -1);
    if (clock_ms_since(&e->born) + delay <= w->o->entry_deadline_ms) {
        e->attempts++;
        entry_wait(e, event, delay, again);
        return;
    }
    log_info("event=parked entry=%s note=\"until %s answers\"", e->id,
             on == PARK_RAW ? "the raw store" : "MongoDB");
    e->state = E_PARK;
    e->resume = again;
    e->park_on = on;
    worker_parked(w, e, 1);
}

static void entry_store_retry(struct entry *e, const char *event, event_callback_fn again)
{
    entry_park_retry(e, PARK_MONGO, event, again);
}

/* A ping answered: the entries parked on what answered try again, with a fresh deadline. One
 * that has come out of PARK max_attempts times, each while that answered, fails for good: that
 * is not an outage. */
static void worker_unpark(struct worker *w, enum park_on on)
{
    for (struct entry *e = w->live.next, *next; e != &w->live; e = next) {
        next = e->next;
        if (e->state != E_PARK || e->park_on != on)
            continue;
        worker_parked(w, e, -1);
        e->state = E_WAIT; /* out of PARK, whatever comes next */
        if (++e->rounds > w->o->max_attempts) {
            entry_done(e, C_FAILED, on == PARK_RAW ? "raw_failed" : "store_failed", e->error);
            continue;
        }
        clock_gettime(CLOCK_MONOTONIC, &e->born);
        e->attempts++;
        entry_count(e, C_RETRIES, 1);
        e->resume(-1, 0, e);
    }
}

/* --- the CPU and store stage, on a pool thread --- */

/* One decode for the default chain and every other rendition this worker can load (SPEC §6);
 * one it cannot is left to `pixflow reprocess` on a worker that can. */
static enum process_status work_process(struct entry *e)
{
    struct worker *w = e->w;
    int n = e->rset ? e->rset->n : 0, k = 1;
    const struct chain **chains = calloc((size_t)n + 1, sizeof(*chains));
    struct process_out *outs = calloc((size_t)n + 1, sizeof(*outs));
    free(e->routs); /* a try before this one (out of memory) */
    e->routs = calloc((size_t)n + 1, sizeof(*e->routs));
    if (chains == NULL || outs == NULL || e->routs == NULL) {
        free(chains);
        free(outs);
        snprintf(e->reason, sizeof(e->reason), "out_of_memory");
        snprintf(e->error, sizeof(e->error), "renditions: out of memory");
        return PROCESS_PERMANENT;
    }
    chains[0] = e->xf->chain;
    for (int i = 0; i < n; i++)
        if (e->rset->r[i].xf)
            chains[k++] = e->rset->r[i].xf->chain;
    enum process_status st =
        process_run_all(chains, k, &w->o->process, e->res->body, e->res->len, outs, e->reason,
                        sizeof(e->reason), e->error, sizeof(e->error));
    e->out = outs[0];
    for (int i = 0, j = 1; st == PROCESS_OK && i < n; i++)
        if (e->rset->r[i].xf)
            e->routs[i] = outs[j++];
    free(chains);
    free(outs);
    return st;
}

/* After the URL's own put: the other renditions of its original, each exactly once. */
static int work_store_renditions(struct entry *e, const struct store_doc *url_doc)
{
    for (int i = 0; e->rset && i < e->rset->n; i++) {
        const struct rendition *r = &e->rset->r[i];
        const struct process_out *o = &e->routs[i];
        if (o->png == NULL)
            continue;
        struct store_doc d = *url_doc;
        process_out_doc(o, &d);
        d.transforms = r->xf->lineage;
        d.ntransforms = r->xf->nlineage;
        d.rendition = r->name;
        enum store_outcome out;
        int rc = store_put_rendition(e->w->store, &d, 0, &out, e->error, sizeof(e->error));
        if (rc < 0)
            return rc;
        if (out == STORE_INSERTED)
            counters_add(e->plugin_events, C_RENDITIONS, 1); /* moved to its counters on the loop */
    }
    return 0;
}

static void work_run(void *arg)
{
    struct entry *e = arg;
    struct worker *w = e->w;
    if (!e->processed) {
        work_entry = e; /* the chain's counters are this entry's */
        e->pstatus = work_process(e);
        work_entry = NULL;
        if (e->pstatus != PROCESS_OK)
            return;
        e->processed = 1;
    }
    if (!e->marked)
        return; /* the loop records that the store begins, then submits the store */
    struct store_doc d;
    memset(&d, 0, sizeof(d));
    process_out_doc(&e->out, &d);
    d.source = e->url.norm;
    d.origin.final_url = e->res->final_url;
    d.origin.content_type = e->res->content_type;
    d.origin.sha256 = e->out.origin_sha256;
    d.origin.bytes = e->res->len;
    d.origin.width = e->out.origin_width;
    d.origin.height = e->out.origin_height;
    d.origin.orientation = e->out.orientation;
    d.origin.format = e->out.origin_format;
    d.raw = w->raw ? e->raw : NULL;
    d.transforms = e->xf->lineage;
    d.ntransforms = e->xf->nlineage;
    d.stream_id = e->id;
    d.consumer = w->s->consumer;
    d.attempts = e->attempts;
    d.first_delivery = e->accepted;
    d.maybe_written = e->maybe_written;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    e->store_rc = store_put(w->store, &d, &e->stored, e->error, sizeof(e->error));
    if (e->store_rc == 0 && e->stored != STORE_ALREADY)
        e->store_rc = work_store_renditions(e, &d);
    e->store_s = seconds_since(&t1);
}

static void work_again(evutil_socket_t fd, short what, void *arg);
static void entry_mark(struct entry *e);
static void entry_keep(struct entry *e);

static void work_done(void *arg)
{
    struct entry *e = arg;
    struct worker *w = e->w;
    if (entry_reap(e))
        return;
    for (int i = 0; i < counters_count(e->plugin_events); i++)
        entry_count(e, counters_name(e->plugin_events, i), counters_value(e->plugin_events, i));
    counters_clear(e->plugin_events);
    /* The store needs only the result's metadata; the raw store, the bytes until they are kept. */
    if (e->processed && e->res->body && (w->raw == NULL || e->kept))
        fetch_result_drop_body(e->res);
    if (e->processed && !e->observed) { /* once, not again for a store retry */
        metrics_observe_cpu(&w->metrics, &e->out.timing);
        e->observed = 1;
    }
    if (e->pstatus == PROCESS_PERMANENT) {
        entry_done(e, C_FAILED, e->reason, e->error);
    } else if (e->pstatus == PROCESS_TRANSIENT) {
        entry_retry(e, e->reason, e->error, -1, work_again);
    } else if (w->raw && !e->kept) {
        entry_keep(e);
    } else if (!e->marked) {
        entry_mark(e);
    } else if (e->store_rc == STORE_ERR_PERMANENT) {
        entry_done(e, C_FAILED, "store_rejected", e->error);
    } else if (e->store_rc < 0) {
        e->accepted = 0; /* the failed write may have happened: the retry reads first */
        e->maybe_written = 1;
        entry_store_retry(e, "store_failed", work_again);
    } else {
        entry_count(e, C_BYTES_OUT, (long long)e->out.png_len);
        metrics_observe(&w->metrics, STAGE_STORE, e->store_s);
        if (w->raw && e->stored != STORE_ALREADY) /* renditions it cannot make here */
            renditions_queue_missing(w->rends, e->rset, e->out.origin_sha256);
        switch (e->stored) {
        case STORE_INSERTED:
            entry_done(e, C_STORED, NULL, NULL);
            break;
        case STORE_ALIASED:
            entry_done(e, C_ALIASED, NULL, NULL);
            break;
        case STORE_ALREADY:
            entry_done(e, C_DUPLICATES, NULL, NULL);
            break;
        }
    }
}

static void entry_work(struct entry *e);

/* --- the original, kept before anything is stored (SPEC §5.9) --- */

static void keep_again(evutil_socket_t fd, short what, void *arg)
{
    entry_keep(arg);
}

static void on_kept(const struct raw_result *r, void *arg)
{
    struct entry *e = arg;
    struct worker *w = e->w;
    e->put = NULL;
    if (r->status != RAW_OK) {
        /* The raw store's fault, not the picture's, even when it says "permanent" (a full
         * disk, credentials revoked): the entry waits for it, as for MongoDB, and is never
         * acked without its original. */
        snprintf(e->error, sizeof(e->error), "raw store: %.31s: %.200s", r->reason, r->error);
        if (w->raw_up)
            log_warn("event=raw_store_down error=\"%s\"", e->error);
        w->raw_up = 0; /* pings check it from now on, and /readyz says so */
        entry_park_retry(e, PARK_RAW, "raw_failed", keep_again);
        return;
    }
    e->kept = 1;
    if (r->existed) {
        entry_count(e, C_RAW_EXISTING, 1);
    } else {
        entry_count(e, C_RAW_PUT, 1);
        entry_count(e, C_RAW_BYTES, (long long)e->res->len);
    }
    entry_count(e, C_RAW_USEC, (long long)(r->ms * 1000));
    metrics_observe(&w->metrics, STAGE_RAW, r->ms / 1000.0);
    raw_location(w->raw, e->out.origin_sha256, e->raw, sizeof(e->raw));
    fetch_result_drop_body(e->res); /* its bytes are the raw store's now */
    entry_mark(e);
}

/* After the CPU stage (which hashed the download), before the store: the downloaded bytes go to
 * the raw store under their SHA-256, written once (raw_put_start looks first). */
static void entry_keep(struct entry *e)
{
    e->state = E_KEEP;
    e->put = raw_put_start(e->w->raw, e->out.origin_sha256, e->res->body, e->res->len,
                           e->res->content_type, on_kept, e);
    if (e->put == NULL) {
        snprintf(e->error, sizeof(e->error), "raw store: cannot start a write: out of memory");
        entry_park_retry(e, PARK_RAW, "raw_failed", keep_again);
    }
}

/* Between the CPU stage and the store: record that the store begins (stream_mark), so that a
 * redelivery after a crash looks in MongoDB for what this try may have written, and only then. */
static void entry_mark(struct entry *e)
{
    e->state = E_MARK;
    if (stream_mark(e->w->st, e->id, e) < 0) {
        e->state = E_WAIT;
        entry_timer(e, MARK_RETRY_MS, work_again);
    }
}

static void on_marked(void *arg, void *token, int ok)
{
    struct entry *e = token;
    if (entry_reap(e))
        return;
    if (!ok) { /* Redis is away, and the ack could not happen either: again soon, no attempt */
        e->state = E_WAIT;
        entry_timer(e, MARK_RETRY_MS, work_again);
        return;
    }
    e->marked = 1;
    entry_work(e);
}

/* The CPU stage runs with the chain generation current when it starts, kept until the end. */
static void entry_work(struct entry *e)
{
    if (e->xf == NULL) {
        e->xf = transforms_ref(e->w->xf);
        e->rset = renditions_current(e->w->rends);
    }
    e->state = E_WORK;
    /* A store goes ahead of the pictures waiting for their CPU stage: what began ends first,
     * which keeps few entries between their mark and their ack, the ones a crash makes costly. */
    if (e->processed && e->marked)
        pool_submit_first(e->w->pool, work_run, work_done, e);
    else
        pool_submit(e->w->pool, work_run, work_done, e);
}

static void work_again(evutil_socket_t fd, short what, void *arg)
{
    struct entry *e = arg;
    if (!e->processed && e->res == NULL) {
        entry_fetch(e); /* the download itself must be redone */
        return;
    }
    if (!e->processed)
        e->attempts++; /* the CPU stage again (out_of_memory): an attempt like a download */
    entry_work(e);
}

/* --- download --- */

static void on_fetched(struct fetch_result *res, void *arg)
{
    struct entry *e = arg;
    struct worker *w = e->w;
    e->fetch = NULL;
    entry_count(e, C_BYTES_IN, (long long)res->len);
    metrics_observe(&w->metrics, STAGE_DOWNLOAD, res->total_ms / 1000.0);
    if (res->host_waits) {
        /* Waiting for a host is not the entry's time: its deadline moves on by as much. */
        entry_count(e, C_HOST_WAITS, res->host_waits);
        add_ms(&e->born, (long)res->host_wait_ms);
    }
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
        entry_done(e, C_FAILED, reason, err);
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
    if (entry_reap(e))
        return;
    if (e->store_rc < 0) {
        entry_store_retry(e, "lookup_failed", lookup_again);
        return;
    }
    if (e->found == 0 && e->poison) {
        char why[96];
        snprintf(why, sizeof(why), "delivered %lld times", e->deliveries);
        entry_done(e, C_FAILED, "poison", why);
    } else if (e->found == 0)
        entry_fetch(e);
    else if (strcmp(e->owner, e->id) != 0) /* another entry of the same URL got there first */
        entry_done(e, C_DUPLICATES, NULL, NULL);
    else /* this entry stored it, then its worker died before the ack */
        entry_done(e, e->found == STORE_FOUND_SOURCE ? C_STORED : C_ALIASED, NULL, NULL);
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
    if (entry_reap(e))
        return;
    if (verdict == 1) {
        e->accepted = 1;
        entry_fetch(e);
    } else if (verdict == 0) { /* duplicate: acked and counted by the script */
        metrics_count(&e->w->metrics, C_RECEIVED, 1);
        metrics_count(&e->w->metrics, C_DUPLICATES, 1);
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
                     const struct stream_delivery *d)
{
    struct worker *w = arg;
    int redelivered = d->redelivered;
    long long deliveries = d->deliveries;
    if (worker_holds(w, id)) { /* reclaimed or re-read while in flight here: no second copy */
        log_debug("event=already_held entry=%s deliveries=%lld", id, deliveries);
        return;
    }
    struct entry *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return; /* stays pending: reclaimed later */
    e->events = counters_new();
    e->plugin_events = counters_new();
    if (e->events == NULL || e->plugin_events == NULL) {
        entry_free(e);
        return;
    }
    e->w = w;
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->redelivered = redelivered;
    e->deliveries = deliveries;
    e->maybe_written = d->storing;
    e->attempts = deliveries > 1 ? (int)(deliveries - 1) : 0;
    clock_gettime(CLOCK_MONOTONIC, &e->born);
    list_insert(&w->live, e);
    w->held++;
    if (redelivered && deliveries > 1)
        entry_count(e, C_RECLAIMED, 1);

    const redisReply *url = NULL;
    for (size_t i = 0; fields && i + 1 < nfields; i += 2) {
        const redisReply *k = fields[i], *v = fields[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(k->str, FIELD_URL) == 0)
            url = v;
        else if (strcmp(k->str, FIELD_SOURCE) == 0 && e->source == NULL)
            e->source = field_dup(v);
        else if (strcmp(k->str, FIELD_LINE) == 0 && e->line == NULL)
            e->line = field_dup(v);
    }
    if (fields == NULL) {
        entry_done(e, C_INVALID, "deleted", "the entry was deleted from the stream");
        return;
    }
    if (url == NULL) {
        entry_done(e, C_INVALID, "missing_url", "the entry has no url field");
        return;
    }
    e->raw_url = field_dup(url);
    enum url_reason r = url_parse(url->str, url->len, &w->s->allowed, &e->url);
    if (r != URL_OK) {
        e->url.norm[0] = '\0'; /* the dead letter keeps the field as pushed */
        entry_done(e, C_INVALID, url_reason_name(r), "not a valid picture URL");
        return;
    }
    if (deliveries > w->o->max_attempts) {
        /* No download nor decode; but an earlier delivery may have stored it before its worker
         * died, and then it counts as that outcome, or `stored` would miss a document. */
        e->poison = 1;
        entry_lookup(e);
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

/* From a pool thread, inside process_run: the counter belongs to the entry being processed
 * there and goes to Redis with its ack. Outside an entry (a plugin counting in its init) there
 * is no ack to carry it: only its picture's counters are kept. */
static void plugin_counter(void *arg, const char *name, long long delta)
{
    (void)arg;
    if (work_entry)
        counters_add(work_entry->plugin_events, name, delta);
}

static void worker_flush(struct worker *w)
{
    if (stream_flushing(w->st) || w->ndone == 0)
        return;
    const struct outcome **list = calloc((size_t)w->ndone + 1, sizeof(*list));
    if (list == NULL)
        return;
    int n = 0;
    for (struct entry *e = w->done; e; e = e->next)
        list[n++] = &e->oc;
    if (stream_flush(w->st, list, n) == 0) {
        w->flight = w->done;
        w->nflight = w->ndone;
        w->done = NULL;
        w->ndone = 0;
    }
    free(list);
    clock_gettime(CLOCK_MONOTONIC, &w->last_flush);
}

static void on_flushed(void *arg, int ok, long long acked)
{
    struct worker *w = arg;
    struct entry *e = w->flight, *next;
    if (!ok) {
        /* Give the batch again: an entry the lost run acked is not ours to count any more,
         * so nothing is counted twice. */
        while (e) {
            next = e->next;
            e->next = w->done;
            w->done = e;
            w->ndone++;
            e = next;
        }
    } else {
        for (; e; e = next) {
            next = e->next;
            w->held--;
            entry_free(e);
        }
        w->processed += acked;
    }
    w->flight = NULL;
    w->nflight = 0;
}

/* --- leases --- */

static void on_lease(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    if (w->held == 0)
        return;
    const char **ids = calloc((size_t)w->held, sizeof(*ids));
    if (ids == NULL)
        return;
    int n = 0;
    for (struct entry *e = w->live.next; e != &w->live && n < w->held; e = e->next)
        ids[n++] = e->id;
    for (struct entry *lists[] = {w->done, w->flight}, **l = lists; l < lists + 2; l++)
        for (struct entry *e = *l; e && n < w->held; e = e->next)
            ids[n++] = e->id;
    stream_lease(w->st, ids, n);
    free(ids);
}

/* Someone else has the entry now (or it is gone): stop working on it. Its outcome, if already
 * DONE, still goes to the ack script, which counts it only if the ack is ours. */
static void on_lost(void *arg, const char *id)
{
    struct worker *w = arg;
    struct entry *e = list_find(&w->live, id);
    if (e == NULL)
        return;
    log_warn("event=lease_lost entry=%s note=\"no longer pending here: dropped\"", id);
    entry_drop(e);
}

/* --- the loop's timers --- */

static void worker_stop(struct worker *w, const char *why)
{
    if (w->stopping)
        return;
    w->stopping = 1;
    reprocess_stop(w->rp);
    clock_gettime(CLOCK_MONOTONIC, &w->stop_began);
    log_info("event=stopping reason=%s in_flight=%d drain_timeout_ms=%ld", why, w->held,
             w->o->drain_timeout_ms);
}

/* At a stop, before worker_abandon: the entries no pool task may be storing right now are handed
 * back (stream_hand_back), so a rolling update leaves no work waiting --reclaim-idle. One in its
 * CPU or store stage keeps its lease until it lapses: another worker starting it at once could
 * race a MongoDB write still going on here. */
static void worker_hand_back(struct worker *w)
{
    const char **ids = calloc((size_t)w->held + 1, sizeof(*ids));
    if (ids == NULL)
        return; /* they are reclaimed when their lease lapses */
    int n = 0;
    for (struct entry *e = w->live.next; e != &w->live && n < w->held; e = e->next)
        if (e->state != E_WORK)
            ids[n++] = e->id;
    stream_hand_back(w->st, ids, n);
    if (n)
        log_info("event=handed_back entries=%d", n);
    free(ids);
}

/* Past the drain deadline: what is still in flight stays pending in Redis, for another worker. */
static void worker_abandon(struct worker *w)
{
    int n = 0;
    w->abandoning = 1;
    reprocess_abandon(w->rp);
    while (w->live.next != &w->live) {
        entry_drop(w->live.next);
        n++;
    }
    if (n)
        log_warn("event=abandoned entries=%d note=\"left pending for another worker\"", n);
}

/* Entries held in all, those parked waiting for their host included, at most this many times
 * --max-inflight: a parked entry holds its stream entry, its URL and a transfer not yet sent. */
#define HELD_PER_SLOT 4

/* --max-inflight bounds the work: entries held, less those parked waiting for their host
 * (hosts.h), which hold no connection and no body. So a host that makes its requests wait
 * holds back only those, not the worker's other hosts. */
static int worker_room(void *arg)
{
    struct worker *w = arg;
    long busy = w->held + reprocess_held(w->rp) - hosts_parked(w->hosts);
    return (int)(w->o->max_inflight - busy);
}

/* New entries: room for work, and within what may be held. */
static int worker_slots(struct worker *w)
{
    long room = worker_room(w);
    long held = w->o->max_inflight * HELD_PER_SLOT - w->held - reprocess_held(w->rp);
    return (int)(room < held ? room : held);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    if (w->ndone >= 256 || clock_ms_since(&w->last_flush) >= w->o->flush_ms)
        worker_flush(w);
    hosts_resume(w->hosts); /* what waited for its host takes the room before new entries */
    if (!w->stopping) {
        if (!renditions_loaded(w->rends))
            return; /* every new URL gets every rendition: none is read before they are known */
        int slots = worker_slots(w);
        stream_read(w->st, slots);
        if (w->rp) /* at most half the slots (reprocess.c): live URLs keep the rest */
            reprocess_tick(w->rp, slots);
        return;
    }
    if (w->rp)
        reprocess_tick(w->rp, 0); /* its acks */
    long stopping_ms = clock_ms_since(&w->stop_began);
    /* Parked entries wait for MongoDB, which may take any time: waiting for them is no drain. */
    int all_parked = w->nparked > 0 && w->held == w->nparked + w->ndone + w->nflight;
    if (!w->abandoning && (stopping_ms >= w->o->drain_timeout_ms || all_parked)) {
        worker_hand_back(w);
        worker_abandon(w);
    }
    if (w->held == 0 && !stream_flushing(w->st) && !stream_handing_back(w->st) &&
        reprocess_held(w->rp) == 0) {
        event_base_loopbreak(w->base);
    } else if (w->abandoning && stopping_ms >= w->o->drain_timeout_ms + STOP_FLUSH_GRACE_MS) {
        /* Their outcomes are durable in MongoDB: whoever gets them next finds them there. */
        log_warn("event=exit_unflushed entries=%d note=\"Redis unreachable; they stay pending\"",
                 w->ndone + w->nflight);
        event_base_loopbreak(w->base);
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    worker_stop(arg, sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* SIGHUP: rescan the plugin folder and rebuild the chain (PIXFLOW_TRANSFORMS, or the file it
 * names with "@FILE"). Reading plugin files and running their init may block, so the new
 * generation is loaded on the pool and only swapped in on the loop. Entries already in their CPU
 * stage finish with the chain they began with. A SIGHUP during a load runs one more after it. */
struct reload {
    struct worker *w;
    struct transforms *next;
    char err[512];
};

static void reload_work(void *arg)
{
    struct reload *r = arg;
    r->next = transforms_load(r->w->s->plugin_path, r->w->s->transforms, plugin_counter, r->w,
                              r->err, sizeof(r->err));
}

static void on_reload(evutil_socket_t sig, short what, void *arg);

static void reload_done(void *arg)
{
    struct reload *r = arg;
    struct worker *w = r->w;
    int again = w->reloading == 2 && !w->stopping;
    w->reloading = 0;
    if (r->next == NULL) {
        log_error("event=reload_failed error=\"%s\" note=\"keeping transforms=%s\"", r->err,
                  w->xf->spec);
    } else {
        log_info("event=reloaded transforms=%s plugins=%zu was=%s", r->next->spec,
                 loader_count(r->next->loader), w->xf->spec);
        transforms_unref(w->xf);
        w->xf = r->next;
    }
    free(r);
    if (again)
        on_reload(SIGHUP, 0, w);
}

static void on_reload(evutil_socket_t sig, short what, void *arg)
{
    struct worker *w = arg;
    if (sig == SIGHUP && w->rends)
        renditions_reload(w->rends);
    if (w->reloading) {
        w->reloading = 2;
        return;
    }
    struct reload *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        log_error("event=reload_failed error=\"out of memory\" note=\"keeping transforms=%s\"",
                  w->xf->spec);
        return;
    }
    r->w = w;
    w->reloading = 1;
    pool_submit(w->pool, reload_work, reload_done, r);
}

static void on_reclaim(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int early = now.tv_sec < w->reclaim_after.tv_sec ||
                (now.tv_sec == w->reclaim_after.tv_sec && now.tv_nsec < w->reclaim_after.tv_nsec);
    if (!w->stopping && !early)
        stream_reclaim(w->st, worker_slots(w));
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

/* Back from a Redis outage every pending entry looks idle: each worker renews its own leases
 * first and reclaims only after two lease periods, so the others have renewed theirs too. */
static void on_link(void *arg, int up)
{
    struct worker *w = arg;
    if (!up)
        return;
    on_lease(-1, 0, w);
    after_ms(&w->reclaim_after, 2 * w->lease_ms);
    if (w->ndone)
        worker_flush(w);
}

/* --- readiness and metrics --- */

static void ping_work(void *arg)
{
    struct worker *w = arg;
    char err[256];
    w->ping_rc = store_ping(w->store, err, sizeof(err));
    if (w->ping_raw) {
        w->raw_rc = raw_check(w->raw, err, sizeof(err));
        if (w->raw_rc < 0)
            log_debug("event=raw_check_failed error=\"%s\"", err);
    }
}

static void ping_done(void *arg)
{
    struct worker *w = arg;
    w->pinging = 0;
    if (w->abandoning)
        return; /* dropped at stop: it may not have run */
    if (w->mongo_up != (w->ping_rc == 0))
        log_info("event=mongo_%s", w->ping_rc == 0 ? "up" : "down");
    w->mongo_up = w->ping_rc == 0;
    if (w->mongo_up && w->nparked > w->nparked_raw)
        worker_unpark(w, PARK_MONGO);
    if (w->ping_raw) {
        if (w->raw_up != (w->raw_rc == 0))
            log_info("event=raw_store_%s", w->raw_rc == 0 ? "up" : "down");
        w->raw_up = w->raw_rc == 0;
        if (w->raw_up && w->nparked_raw)
            worker_unpark(w, PARK_RAW);
    }
}

static void worker_ping(struct worker *w)
{
    clock_gettime(CLOCK_MONOTONIC, &w->last_ping);
    stream_group_info(w->st);
    if (!w->pinging) {
        w->pinging = 1;
        /* The raw store only while it is down or entries wait for it: a HEAD of the bucket per
         * ping would be a request every few seconds for nothing. */
        w->ping_raw = w->raw && (w->nparked_raw || !w->raw_up);
        pool_submit(w->pool, ping_work, ping_done, w);
    }
}

static void on_group(void *arg, long long lag, long long pending)
{
    struct worker *w = arg;
    w->group_lag = lag;
    w->group_pending = pending;
    if (w->o->exit_when_idle_ms <= 0)
        return;
    if (lag != 0 || pending != 0 || w->held || !reprocess_idle(w->rp)) {
        w->idle = 0;
    } else if (!w->idle) {
        w->idle = 1;
        clock_gettime(CLOCK_MONOTONIC, &w->idle_since);
    } else if (clock_ms_since(&w->idle_since) >= w->o->exit_when_idle_ms) {
        worker_stop(w, "idle");
    }
}

/* Every second: a ping when entries are parked on MongoDB, else every PING_EVERY_MS. */
static void on_ping(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    if (w->nparked || clock_ms_since(&w->last_ping) >= PING_EVERY_MS)
        worker_ping(w);
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
    else if (!w->raw_up)
        snprintf(why, len, "raw store: the last write or check failed");
    else if (w->rends && renditions_failed(w->rends, why + 12, len > 12 ? len - 12 : 0))
        memcpy(why, "renditions: ", 12); /* their work is left to workers that can */
    else
        return 1;
    return 0;
}

static void worker_metrics(void *arg, struct evbuffer *out)
{
    struct worker *w = arg;
    struct fetch_budget_state fb;
    fetch_budget_state(w->fe, &fb);
    struct metrics_gauges g = {
        .in_flight = w->held,
        .pool_busy = pool_busy(w->pool),
        .pool_threads = pool_threads(w->pool),
        .downloads = fetch_active(w->fe),
        .downloads_waiting = fb.queued,
        .download_bytes = (long long)fb.held,
        .redis_up = stream_ready(w->st),
        .mongo_up = w->mongo_up,
        .raw_up = w->raw ? w->raw_up : -1,
        .started_at = w->started_at,
        .group_lag = w->group_lag,
        .group_pending = w->group_pending,
    };
    metrics_render(&w->metrics, &g, out);
    hosts_metrics(w->hosts, out);
}

static void worker_images(void *arg, struct evhttp_request *req)
{
    struct worker *w = arg;
    images_handle(w->images, req);
}

/* The raw store's asynchronous path: S3 requests on the fetch engine's curl multi, file writes
 * on the pool. */
static int worker_offload(void *ctx, void (*work)(void *), void (*done)(void *), void *arg)
{
    /* Ahead of the pictures waiting for their CPU stage, like a store that began: the write
     * holds a copy of its bytes until it runs. */
    pool_submit_first(ctx, work, done, arg);
    return 0;
}

static int worker_raw_add(void *ctx, CURL *easy, void (*done)(CURL *, CURLcode, void *), void *arg)
{
    return fetch_engine_add(ctx, easy, done, arg);
}

static void worker_raw_cancel(void *ctx, CURL *easy)
{
    fetch_engine_remove(ctx, easy);
}

/* At start, before the loop runs: a raw store that cannot be written stops the worker here with
 * one line, rather than parking every entry. */
static int worker_raw_open(struct worker *w, char *err, size_t errlen)
{
    struct raw_loop loop = {.base = w->base,
                            .add = worker_raw_add,
                            .cancel = worker_raw_cancel,
                            .ctx = w->fe,
                            .offload = worker_offload,
                            .offload_ctx = w->pool};
    w->raw = raw_new(&w->s->raw, &loop, err, errlen);
    if (w->raw == NULL || raw_check(w->raw, err, errlen) < 0)
        return -1;
    log_info("event=raw_store location=%s", raw_describe(w->raw));
    return 0;
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
    w->http = NULL;
    pool_free(w->pool);
    images_free(w->images); /* runs the done callbacks of finished tasks: they free their entries */
    reprocess_free(w->rp);
    renditions_free(w->rends);
    stream_free(w->st);     /* hands NULL to waiting callbacks: abandoned entries are freed */
    for (struct entry *lists[] = {w->done, w->flight}, **l = lists; l < lists + 2; l++) {
        for (struct entry *e = *l, *next; e; e = next) {
            next = e->next;
            entry_free(e);
        }
    }
    while (w->zombies.next != &w->zombies) /* every callback has run by now */
        entry_reap(w->zombies.next);
    raw_free(w->raw);         /* its writes were cancelled with their entries */
    fetch_engine_free(w->fe); /* then: it drops the tickets of its fetches */
    hosts_free(w->hosts);
    transforms_unref(w->xf);
    store_free(w->store);
    metrics_free(&w->metrics);
    struct event *evs[] = {w->tick,    w->sigterm, w->sigint,  w->sighup, w->beat,
                           w->reclaim, w->trim,    w->idle_ev, w->ping,   w->lease};
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
    w->zombies.next = w->zombies.prev = &w->zombies;
    w->started_at = (double)time(NULL);
    w->group_lag = -1;
    w->base = event_base_new();
    clock_gettime(CLOCK_MONOTONIC, &w->last_flush);
    /* Well below --reclaim-idle: a few lost lease replies in a row still leave time. */
    w->lease_ms = o->reclaim_idle_ms / 4 > 100 ? o->reclaim_idle_ms / 4 : 100;
    if (w->base == NULL || metrics_init(&w->metrics) < 0) {
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
    if (s->host_limits.off) { /* no gate: every request goes at once */
        log_warn("event=host_limits_off note=\"no request rate or concurrency limit per host\"");
    } else {
        w->hosts = hosts_new(w->base, s, o->fetch.total_timeout_ms, o->redis_timeout_ms, err,
                             sizeof(err));
        if (w->hosts == NULL)
            goto fail;
        struct fetch_gate gate;
        hosts_gate(w->hosts, &gate);
        fetch_engine_gate(w->fe, &gate);
        hosts_room(w->hosts, worker_room, w);
    }
    /* Pool threads wait for their picture's memory here rather than overdraw it. */
    process_budget_init((size_t)o->process.decode_memory);
    w->pool = pool_new(w->base, (int)o->threads, err, sizeof(err));
    if (w->pool == NULL)
        goto fail;
    w->raw_up = 1;
    if (s->raw.kind != RAW_NONE && worker_raw_open(w, err, sizeof(err)) < 0)
        goto fail;
    w->rends = renditions_new(w->base, s, w->pool, plugin_counter, w, RENDITIONS_POLL_MS);
    if (w->rends == NULL) {
        snprintf(err, sizeof(err), "out of memory");
        goto fail;
    }
    if (w->raw) { /* without originals there is nothing to reprocess */
        struct reprocess_env env = {w->base, s,        o,           w->pool,    w->store,
                                    w->raw,  w->rends, &w->metrics, w->lease_ms};
        w->rp = reprocess_new(&env);
        if (w->rp == NULL) {
            snprintf(err, sizeof(err), "cannot set up the reprocess stream");
            goto fail;
        }
    }
    struct stream_options so = {o->block_ms, o->reclaim_idle_ms, o->redis_timeout_ms, NULL, NULL,
                                NULL};
    struct stream_hooks hooks = {.entry = on_entry,
                                 .accepted = on_accepted,
                                 .marked = on_marked,
                                 .flushed = on_flushed,
                                 .link = on_link,
                                 .group = on_group,
                                 .lost = on_lost};
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
    w->lease = worker_every(w, w->lease_ms, on_lease);
    w->ping = worker_every(w, 1000, on_ping);
    worker_ping(w);
    if (o->http_addr && *o->http_addr) {
        w->images = images_new(w->base, w->store, &s->allowed, err, sizeof(err));
        if (w->images == NULL)
            goto fail;
        struct http_hooks hh = {worker_ready, worker_metrics, worker_images};
        w->http = http_new(w->base, o->http_addr, s, &hh, w, err, sizeof(err));
        if (w->http == NULL)
            goto fail;
        log_info("event=http_listening addr=%s port=%d", o->http_addr, http_port(w->http));
    }

    char redis[SET_REDIS_SHOWN_MAX];
    log_info("event=start consumer=%s group=%s redis=%s stream=%surls transforms=%s threads=%ld "
             "max_inflight=%ld",
             s->consumer, s->group, settings_redis_shown(&s->redis, redis, sizeof(redis)),
             s->prefix, w->xf->spec, o->threads, o->max_inflight);
    event_base_dispatch(w->base);
    worker_abandon(w);
    http_free(w->http);
    w->http = NULL;
    int stuck = pool_stop(w->pool, STOP_POOL_WAIT_MS);
    log_info("event=stopped processed=%lld", w->processed);
    if (stuck) {
        /* A thread in a decode that never ends, or in a call to a server that never answers:
         * nothing it uses may be freed, and it cannot be interrupted. What it held stays
         * pending; the acks that could be written are written. */
        log_warn("event=exit_with_stuck_threads threads=%d", stuck);
        fflush(NULL);
        _exit(0);
    }
    worker_free(w);
    return 0;
fail:
    log_error("event=start_failed error=\"%s\"", err);
    fprintf(stderr, "pixflow-consumer: %s\n", err);
    worker_free(w);
    return 1;
}
