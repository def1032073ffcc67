/* letters.c -- /api/dead: the dead letters, newest first, filtered by reason, with the count of
 * each reason present; POST /api/dead/replay: one letter, or every letter of a reason, back into
 * the stream through replay.h's script, the very one `pixflow dead --replay` runs.
 *
 * Both walk <prefix>dead page by page. Limit: a listing reads every letter (up to WEB_WALK_MAX) to
 * count the reasons, so it costs O(letters), fine for the thousands a console shows. */
#include "web.h"

#include "names.h"
#include "rconn.h"
#include "rdb.h"
#include "replay.h"

#include <stdlib.h>
#include <string.h>

#define LIST_MAX    1000
#define LIST_DEF    100
#define REASONS_MAX 256

struct web_walk {
    struct web *w;
    web_walk_fn *fn;
    void *arg;
};

static int web_walk_one(const redisReply *entry, void *arg, char *err, size_t errlen)
{
    struct web_walk *k = arg;
    return k->fn(k->w, entry, k->arg, err, errlen);
}

int web_walk(struct web *w, const char *key, web_walk_fn *fn, void *arg, char *err, size_t errlen)
{
    struct web_walk k = {w, fn, arg};
    redisContext *c = web_redis(w, err, errlen);
    if (c == NULL)
        return -1;
    if (rdb_walk(c, key, 1, WEB_WALK_MAX, web_walk_one, &k, err, errlen) < 0) {
        web_redis_check(w);
        return -1;
    }
    return 0;
}

int web_is(const redisReply *v, const char *s)
{
    return v && v->type == REDIS_REPLY_STRING && strlen(s) == v->len &&
           memcmp(v->str, s, v->len) == 0;
}

void json_kv_reply(struct json *j, const char *key, const redisReply *v)
{
    json_key(j, key);
    if (v && v->type == REDIS_REPLY_STRING)
        json_strn(j, v->str, v->len);
    else
        json_null(j);
}

/* ---- the listing ---- */

struct listing {
    const char *reason; /* NULL: all */
    long limit, shown, matched, total;
    struct json *j; /* the "letters" array being written */
    struct {
        char *name;
        long n;
    } reasons[REASONS_MAX];
    int nreasons;
};

static void listing_count(struct listing *l, const redisReply *reason)
{
    const char *name = reason && reason->type == REDIS_REPLY_STRING ? reason->str : "";
    for (int i = 0; i < l->nreasons; i++)
        if (strcmp(l->reasons[i].name, name) == 0) {
            l->reasons[i].n++;
            return;
        }
    if (l->nreasons == REASONS_MAX)
        return;
    l->reasons[l->nreasons].name = strdup(name);
    if (l->reasons[l->nreasons].name)
        l->reasons[l->nreasons++].n = 1;
}

static int listing_one(struct web *w, const redisReply *e, void *arg, char *err, size_t errlen)
{
    struct listing *l = arg;
    const redisReply *f = e->element[1], *reason = rdb_field(f, DEAD_REASON);
    long long attempts;
    l->total++;
    listing_count(l, reason);
    if (l->reason && !web_is(reason, l->reason))
        return 0;
    if (l->matched++ >= l->limit)
        return 0;
    struct json *j = l->j;
    json_object(j);
    json_kv_str(j, "id", e->element[0]->str);
    json_kv_reply(j, "reason", reason);
    json_key(j, "attempts");
    if (rdb_ll(rdb_field(f, DEAD_ATTEMPTS), &attempts) == 0)
        json_int(j, attempts);
    else
        json_null(j);
    json_kv_reply(j, "url", rdb_field(f, FIELD_URL));
    json_kv_reply(j, "error", rdb_field(f, DEAD_ERROR));
    json_kv_reply(j, "entry", rdb_field(f, DEAD_ENTRY));
    json_kv_reply(j, "consumer", rdb_field(f, DEAD_CONSUMER));
    json_kv_reply(j, "source", rdb_field(f, FIELD_SOURCE));
    json_kv_reply(j, "line", rdb_field(f, FIELD_LINE));
    json_end(j);
    l->shown++;
    return 0;
}

void letters_get(struct web *w, struct evhttp_request *req)
{
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    char *reason = web_param(q, "reason"), *limit = web_param(q, "limit"), err[1024];
    struct listing l = {0};
    struct web_out o;
    l.reason = reason && *reason ? reason : NULL;
    l.limit = limit ? strtol(limit, NULL, 10) : LIST_DEF;
    if (l.limit <= 0 || l.limit > LIST_MAX)
        l.limit = LIST_DEF;
    if (web_out_open(&o) < 0) {
        web_error(req, 500, "out of memory");
        goto done;
    }
    l.j = &o.j;
    json_object(&o.j);
    json_key(&o.j, "letters");
    json_array(&o.j);
    if (web_walk(w, w->k_dead, listing_one, &l, err, sizeof(err)) < 0) {
        web_out_fail(req, &o, 502, "%s", err);
        goto done;
    }
    json_end(&o.j);
    json_kv_str(&o.j, "reason", l.reason);
    json_kv_int(&o.j, "total", l.total);
    json_kv_int(&o.j, "matching", l.matched);
    json_kv_int(&o.j, "shown", l.shown);
    json_key(&o.j, "reasons");
    json_object(&o.j);
    for (int i = 0; i < l.nreasons; i++)
        json_kv_int(&o.j, l.reasons[i].name, l.reasons[i].n);
    json_end(&o.j);
    json_end(&o.j);
    web_out_send(req, &o, 200);
done:
    for (int i = 0; i < l.nreasons; i++)
        free(l.reasons[i].name);
    free(reason);
    free(limit);
}

/* ---- replay ---- */

struct replay {
    const char *id, *reason; /* exactly one is set */
    long replayed, skipped;
    struct json *j; /* the "results" array */
};

/* One letter through the shared script; its outcome appended to r->j. */
static int replay_one(struct web *w, const redisReply *e, void *arg, char *err, size_t errlen)
{
    struct replay *rp = arg;
    const char *id = e->element[0]->str;
    const redisReply *f = e->element[1], *url = rdb_field(f, FIELD_URL);
    if (rp->id ? strcmp(id, rp->id) != 0 : !web_is(rdb_field(f, DEAD_REASON), rp->reason))
        return 0;
    const char *keys[] = {w->k_dead, w->k_seen, w->k_stream, w->k_stats};
    redisReply *r = replay_run(w->r, keys, id, url, err, errlen);
    if (r == NULL) {
        web_redis_check(w);
        return -1;
    }
    int done = r->type == REDIS_REPLY_STRING && r->len > 0;
    json_object(rp->j);
    json_kv_str(rp->j, "id", id);
    json_kv_reply(rp->j, "url", url);
    json_kv_str(rp->j, "replayed_as", done ? r->str : NULL);
    if (!done)
        json_kv_str(rp->j, "skipped",
                    r->type == REDIS_REPLY_NIL ? "replayed already" : "no url field");
    json_end(rp->j);
    if (done)
        rp->replayed++;
    else
        rp->skipped++;
    freeReplyObject(r);
    return rp->id ? 1 : 0;
}

/* One letter is read by its id; a reason needs the whole walk. */
static int replay_walk(struct web *w, struct replay *rp, char *err, size_t errlen)
{
    if (rp->id == NULL)
        return web_walk(w, w->k_dead, replay_one, rp, err, errlen);
    redisContext *c = web_redis(w, err, errlen);
    if (c == NULL)
        return -1;
    const char *argv[] = {"XRANGE", w->k_dead, rp->id, rp->id};
    redisReply *r = rconn_command(c, 4, argv, NULL, err, errlen);
    if (r == NULL) {
        web_redis_check(w);
        return -1;
    }
    int rc = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2)
        rc = replay_one(w, r->element[0], rp, err, errlen);
    freeReplyObject(r);
    return rc < 0 ? -1 : 0;
}

void letters_replay(struct web *w, struct evhttp_request *req, const char *form)
{
    char *id = web_param(form, "id"), *reason = web_param(form, "reason"), err[1024];
    struct replay rp = {0};
    struct web_out o = {0};
    if ((id && *id) == (reason && *reason)) {
        web_error(req, 400, "give either id (one letter) or reason (all letters of it)");
        goto done;
    }
    rp.id = id && *id ? id : NULL;
    if (rp.id && (strspn(rp.id, "0123456789-") != strlen(rp.id) || strchr(rp.id, '-') == NULL)) {
        web_error(req, 400, "id: not a stream id");
        goto done;
    }
    rp.reason = rp.id ? NULL : reason;
    if (web_out_open(&o) < 0) {
        web_error(req, 500, "out of memory");
        goto done;
    }
    rp.j = &o.j;
    json_object(&o.j);
    json_key(&o.j, "results");
    json_array(&o.j);
    if (replay_walk(w, &rp, err, sizeof(err)) < 0) {
        web_out_fail(req, &o, 502, "%s", err);
        goto done;
    }
    json_end(&o.j);
    json_kv_int(&o.j, "replayed", rp.replayed);
    json_kv_int(&o.j, "skipped", rp.skipped);
    json_end(&o.j);
    web_out_send(req, &o, rp.id && rp.replayed + rp.skipped == 0 ? 404 : 200);
done:
    free(id);
    free(reason);
}
