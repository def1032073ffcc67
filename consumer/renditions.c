/* renditions.c -- follow the Redis hash of renditions; load each chain on the pool. */
#include "renditions.h"
#include "link.h"
#include "log.h"
#include "names.h"
#include "requeue_lua.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A rendition that could not be loaded is tried again this often (a plugin dropped in). */
#define RENDITIONS_RETRY_MS 10000

/* Sets HB_RENDITIONS and HB_RENDITIONS_FAILED on the heartbeat hash only while it exists: it
 * expires with the worker, and must not come back without its TTL. */
static const char BEAT_LUA[] = "if redis.call('EXISTS', KEYS[1]) == 1 then\n"
                               "  redis.call('HSET', KEYS[1], '" HB_RENDITIONS
                               "', ARGV[1], '" HB_RENDITIONS_FAILED "', ARGV[2])\n"
                               "end\n"
                               "return 0\n";

struct renditions {
    struct event_base *base;
    const struct settings *s;
    struct pool *pool;
    loader_counter_fn counter;
    void *arg;
    struct link *link;
    struct event *poll;
    struct renditions_set *cur;
    char k_hash[SET_KEY_MAX], k_beat[SET_KEY_MAX];
    char k_reprocess[SET_KEY_MAX], k_queued[SET_KEY_MAX], k_stats[SET_KEY_MAX];
    int asking, loading, freeing;
    int loaded; /* the hash has been read and loaded once: a name it lacks is unknown */
    int reload; /* SIGHUP: every chain loaded anew at the next poll (a new .so in the folder) */
    long since_retry_ms, poll_ms;
    /* Reads of the hash, numbered as sent: `applied` is the number of the last one whose set is
     * current, `again` asks for another as soon as the one under way is done (renditions_ask). */
    unsigned long asked, asking_seq, applied;
    int again;
};

/* One load on the pool: the wanted (name, spec) pairs, chains reused from `from` when their spec
 * is the same and loaded. */
struct renditions_load {
    struct renditions *rs;
    struct renditions_set *from, *next;
    int fresh;         /* load every chain, reuse none */
    unsigned long seq; /* the read of the hash it comes from */
};

static struct renditions_set *set_new(int n)
{
    struct renditions_set *set = calloc(1, sizeof(*set));
    if (set == NULL)
        return NULL;
    set->r = calloc((size_t)n + 1, sizeof(*set->r));
    if (set->r == NULL) {
        free(set);
        return NULL;
    }
    set->refs = 1;
    return set;
}

void renditions_set_unref(struct renditions_set *set)
{
    if (set == NULL || --set->refs > 0)
        return;
    for (int i = 0; i < set->n; i++) {
        transforms_unref(set->r[i].xf);
        free(set->r[i].spec);
    }
    free(set->r);
    free(set);
}

struct renditions_set *renditions_current(struct renditions *rs)
{
    rs->cur->refs++;
    return rs->cur;
}

const struct rendition *renditions_find(const struct renditions_set *set, const char *name)
{
    for (int i = 0; set && i < set->n; i++)
        if (strcmp(set->r[i].name, name) == 0)
            return &set->r[i];
    return NULL;
}

int renditions_failed(struct renditions *rs, char *buf, size_t len)
{
    int n = 0;
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < rs->cur->n; i++) {
        const struct rendition *r = &rs->cur->r[i];
        if (r->xf)
            continue;
        int k = snprintf(buf + used, len - used, "%s%s: %s", n ? "; " : "", r->name, r->error);
        if (k > 0 && (size_t)k < len - used)
            used += (size_t)k;
        n++;
    }
    return n;
}

/* The pool side: build each chain that is new or could not be loaded before. transforms_ref on
 * a reused generation waits for the loop (refs are loop-thread only): marked here, done there. */
static void load_work(void *arg)
{
    struct renditions_load *ld = arg;
    struct renditions *rs = ld->rs;
    for (int i = 0; i < ld->next->n; i++) {
        struct rendition *r = &ld->next->r[i];
        const struct rendition *old = renditions_find(ld->from, r->name);
        if (old && old->xf && strcmp(old->spec, r->spec) == 0 && !ld->fresh)
            continue; /* reused on the loop */
        r->xf = transforms_load(rs->s->plugin_path, r->spec, rs->counter, rs->arg, r->error,
                                sizeof(r->error));
    }
}

static void beat(struct renditions *rs)
{
    char names[1024] = "", failed[2048];
    size_t used = 0;
    for (int i = 0; i < rs->cur->n; i++) {
        if (rs->cur->r[i].xf == NULL)
            continue;
        int k = snprintf(names + used, sizeof(names) - used, "%s%s", used ? "," : "",
                         rs->cur->r[i].name);
        if (k > 0 && (size_t)k < sizeof(names) - used)
            used += (size_t)k;
    }
    renditions_failed(rs, failed, sizeof(failed));
    const char *argv[] = {"EVAL", BEAT_LUA, "1", rs->k_beat, names, failed};
    link_command(rs->link, NULL, NULL, 6, argv, NULL);
}

static void ask_again(struct renditions *rs);

static void load_done(void *arg)
{
    struct renditions_load *ld = arg;
    struct renditions *rs = ld->rs;
    rs->loading = 0;
    if (rs->freeing) { /* the pool ends before the worker frees us: nothing to swap into */
        renditions_set_unref(ld->next);
        renditions_set_unref(ld->from);
        free(ld);
        return;
    }
    for (int i = 0; i < ld->next->n; i++) {
        struct rendition *r = &ld->next->r[i];
        const struct rendition *old = renditions_find(ld->from, r->name);
        if (r->xf == NULL && !ld->fresh && old && old->xf && strcmp(old->spec, r->spec) == 0)
            r->xf = transforms_ref(old->xf);
        if (r->xf == NULL)
            log_error("event=rendition_unavailable rendition=%s chain=\"%s\" error=\"%s\" "
                      "note=\"its work is left to workers that can load it\"",
                      r->name, r->spec, r->error);
        else if (old == NULL || old->xf != r->xf)
            log_info("event=rendition_loaded rendition=%s chain=\"%s\"", r->name, r->spec);
    }
    for (int i = 0; ld->from && i < ld->from->n; i++)
        if (renditions_find(ld->next, ld->from->r[i].name) == NULL)
            log_info("event=rendition_removed rendition=%s", ld->from->r[i].name);
    renditions_set_unref(ld->from);
    renditions_set_unref(rs->cur);
    rs->cur = ld->next;
    rs->loaded = 1;
    rs->applied = ld->seq;
    free(ld);
    beat(rs);
    ask_again(rs);
}

/* Whether the hash (flat name, chain pairs) differs from the current set. */
static int hash_changed(const struct renditions_set *cur, const redisReply *r)
{
    int n = 0;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
            !rendition_name_ok(k->str))
            continue;
        const struct rendition *old = renditions_find(cur, k->str);
        if (old == NULL || strcmp(old->spec, v->str) != 0)
            return 1;
        n++;
    }
    return n != cur->n;
}

static void on_hash(struct link *l, redisReply *r, void *arg)
{
    struct renditions *rs = arg;
    rs->asking = 0;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || rs->loading)
        return;
    int failed = 0;
    for (int i = 0; i < rs->cur->n; i++)
        failed += rs->cur->r[i].xf == NULL;
    int retry = failed && rs->since_retry_ms >= RENDITIONS_RETRY_MS;
    if (!hash_changed(rs->cur, r) && !retry && !rs->reload) {
        rs->loaded = 1;
        rs->applied = rs->asking_seq;
        beat(rs);
        ask_again(rs);
        return;
    }
    rs->since_retry_ms = 0;
    struct renditions_load *ld = calloc(1, sizeof(*ld));
    struct renditions_set *next = set_new((int)(r->elements / 2));
    if (ld == NULL || next == NULL) {
        free(ld);
        renditions_set_unref(next);
        return;
    }
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (!rendition_name_ok(k->str)) {
            log_warn("event=rendition_ignored name=\"%.80s\" note=\"not a rendition name\"",
                     k->str);
            continue;
        }
        struct rendition *nr = &next->r[next->n];
        snprintf(nr->name, sizeof(nr->name), "%s", k->str);
        nr->spec = strdup(v->str);
        if (nr->spec == NULL)
            continue;
        next->n++;
    }
    ld->rs = rs;
    ld->seq = rs->asking_seq;
    ld->fresh = rs->reload;
    rs->reload = 0;
    ld->from = renditions_current(rs);
    ld->next = next;
    rs->loading = 1;
    pool_submit(rs->pool, load_work, load_done, ld);
}

/* One read of the hash, unless one is under way (or the link down: it asks when back up). */
static void ask(struct renditions *rs)
{
    if (rs->asking || rs->loading || !link_up(rs->link))
        return;
    const char *argv[] = {"HGETALL", rs->k_hash};
    if (link_command(rs->link, on_hash, rs, 2, argv, NULL) == 0) {
        rs->asking = 1;
        rs->asking_seq = ++rs->asked;
    }
}

static void ask_again(struct renditions *rs)
{
    if (rs->again) {
        rs->again = 0;
        ask(rs);
    }
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    struct renditions *rs = arg;
    rs->since_retry_ms += rs->poll_ms;
    ask(rs);
}

unsigned long renditions_ask(struct renditions *rs)
{
    if (!rs->asking && !rs->loading) {
        ask(rs);
        if (rs->asking)
            return rs->asked;
    }
    rs->again = 1; /* the read under way may have begun before the question */
    return rs->asked + 1;
}

int renditions_fresh(const struct renditions *rs, unsigned long seq)
{
    return rs->applied >= seq;
}

static void on_queued(struct link *l, redisReply *r, void *arg)
{
    if (r && r->type == REDIS_REPLY_ERROR)
        log_warn("event=rendition_queue_failed error=\"%s\"", r->str);
}

void renditions_queue_missing(struct renditions *rs, const struct renditions_set *set,
                              const char *original)
{
    for (int i = 0; set && i < set->n; i++) {
        if (set->r[i].xf)
            continue;
        const char *argv[] = {"EVAL",       REQUEUE_LUA,     "3",          rs->k_reprocess,
                              rs->k_queued, rs->k_stats,     set->r[i].name, original};
        if (link_command(rs->link, on_queued, rs, 8, argv, NULL) == 0)
            log_info("event=rendition_queued rendition=%s original=%s note=\"cannot be made "
                     "here: queued for a worker that can\"",
                     set->r[i].name, original);
    }
}

int renditions_loaded(const struct renditions *rs)
{
    return rs->loaded;
}

void renditions_reload(struct renditions *rs)
{
    rs->reload = 1;
    on_poll(-1, 0, rs);
}

static void on_link(struct link *l, int up, void *arg)
{
    if (up)
        on_poll(-1, 0, arg);
}

struct renditions *renditions_new(struct event_base *base, const struct settings *s,
                                  struct pool *pool, loader_counter_fn counter, void *arg,
                                  long poll_ms)
{
    struct renditions *rs = calloc(1, sizeof(*rs));
    if (rs == NULL)
        return NULL;
    rs->base = base;
    rs->s = s;
    rs->pool = pool;
    rs->counter = counter;
    rs->arg = arg;
    rs->poll_ms = poll_ms;
    settings_key(s, KEY_RENDITIONS, rs->k_hash, sizeof(rs->k_hash));
    settings_key(s, KEY_REPROCESS, rs->k_reprocess, sizeof(rs->k_reprocess));
    settings_key(s, KEY_REPROCESS_QUEUED, rs->k_queued, sizeof(rs->k_queued));
    settings_key(s, KEY_STATS, rs->k_stats, sizeof(rs->k_stats));
    char name[SET_KEY_MAX];
    snprintf(name, sizeof(name), KEY_WORKER "%s", s->consumer);
    settings_key(s, name, rs->k_beat, sizeof(rs->k_beat));
    rs->cur = set_new(0);
    struct timeval tv = {poll_ms / 1000, (poll_ms % 1000) * 1000};
    rs->poll = event_new(base, -1, EV_PERSIST, on_poll, rs);
    rs->link = link_new(base, &s->redis, "rendition_set", 5000, on_link, rs);
    if (rs->cur == NULL || rs->poll == NULL || rs->link == NULL) {
        renditions_free(rs);
        return NULL;
    }
    event_add(rs->poll, &tv);
    return rs;
}

void renditions_free(struct renditions *rs)
{
    if (rs == NULL)
        return;
    rs->freeing = 1;
    if (rs->poll)
        event_free(rs->poll);
    link_free(rs->link);
    renditions_set_unref(rs->cur);
    free(rs);
}
