/* search.c -- /api/search?url=U: where one URL is in the pipeline, and what happened to it.
 *
 * The URL is normalized as ingest and the workers do (lib/url.c); an invalid one is reported with
 * the reason ingest rejects it for. Ingest records rejected lines nowhere per URL (only the
 * ingest_invalid:<reason> counters, and --rejects FILE), so "invalid" is what the rules say, not
 * a record that the URL was seen. Then, from the most final to the least: its `sources` document
 * (stored as the source of an image, or an alias of one: SPEC §6, a read by _id), its stream
 * entries (pending at which worker, or not read yet), its dead letters, and the dedup set.
 * Limit: the stream and the dead letters are scanned, O(entries) up to WEB_WALK_MAX each; the
 * stream is trimmed below the oldest pending entry, so it holds recent work only. */
#include "web.h"

#include "names.h"
#include "rconn.h"
#include "rdb.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MATCHES_MAX 32
#define EVENTS_MAX  (4 * MATCHES_MAX + 4)
#define DETAIL_MAX  1200

struct event {
    long long ms;
    const char *what; /* queued, delivered, dead, stored, aliased, image */
    char detail[DETAIL_MAX];
};

struct search {
    const char *query;
    const char *norm; /* NULL when invalid */
    struct json *j;
    int stream_hits, pending, unread, dead_hits;
    char last_delivered[64];
    struct event events[EVENTS_MAX];
    int nevents;
    struct url u;
};

static struct event *search_event(struct search *s, long long ms, const char *what)
{
    if (s->nevents == EVENTS_MAX)
        return NULL;
    struct event *e = &s->events[s->nevents++];
    e->ms = ms;
    e->what = what;
    e->detail[0] = '\0';
    return e;
}

static const char *search_str(const redisReply *v, const char *def)
{
    return v && v->type == REDIS_REPLY_STRING ? v->str : def;
}

/* An entry's URL is this one: the very text, or the same normalized form. */
static int search_match(struct web *w, struct search *s, const redisReply *url)
{
    if (url == NULL || url->type != REDIS_REPLY_STRING)
        return 0;
    if (strlen(s->query) == url->len && memcmp(url->str, s->query, url->len) == 0)
        return 1;
    return s->norm && url_parse(url->str, url->len, &w->s.allowed, &s->u) == URL_OK &&
           strcmp(s->u.norm, s->norm) == 0;
}

/* a < b for stream ids "<ms>-<seq>". */
static int search_id_after(const char *a, const char *b)
{
    unsigned long long am = strtoull(a, NULL, 10), bm = strtoull(b, NULL, 10);
    const char *ad = strchr(a, '-'), *bd = strchr(b, '-');
    if (am != bm)
        return am > bm;
    return (ad ? strtoull(ad + 1, NULL, 10) : 0) > (bd ? strtoull(bd + 1, NULL, 10) : 0);
}

/* The group's last-delivered-id: entries after it were never read. */
static void search_group(struct web *w, struct search *s)
{
    char err[256];
    const char *argv[] = {"XINFO", "GROUPS", w->k_stream};
    redisReply *r = rconn_command(w->r, 3, argv, NULL, err, sizeof(err));
    s->last_delivered[0] = '\0';
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *g = r->element[i];
        if (web_is(rdb_field(g, "name"), w->s.group))
            snprintf(s->last_delivered, sizeof(s->last_delivered), "%s",
                     search_str(rdb_field(g, "last-delivered-id"), ""));
    }
    if (r)
        freeReplyObject(r);
    web_redis_check(w);
}

/* Is entry e ([id, fields]) of a walk about this URL? 1 with its id, fields and time; 0 when it
 * is another URL's; -1 once `hits` reached MATCHES_MAX (the walk stops there). */
static int search_hit(struct web *w, struct search *s, const redisReply *e, int *hits,
                      const char **id, const redisReply **f, long long *ms)
{
    *id = e->element[0]->str;
    *f = e->element[1];
    *ms = 0;
    if (!search_match(w, s, rdb_field(*f, FIELD_URL)))
        return 0;
    if ((*hits)++ >= MATCHES_MAX)
        return -1;
    rdb_id_ms(*id, ms);
    return 1;
}

static int search_stream_one(struct web *w, const redisReply *e, void *arg, char *err,
                             size_t errlen)
{
    struct search *s = arg;
    const char *id;
    const redisReply *f;
    long long ms;
    int hit = search_hit(w, s, e, &s->stream_hits, &id, &f, &ms);
    if (hit <= 0)
        return hit < 0;
    struct json *j = s->j;
    json_object(j);
    json_kv_str(j, "id", id);
    json_kv_reply(j, "url", rdb_field(f, FIELD_URL));
    json_kv_reply(j, "source", rdb_field(f, FIELD_SOURCE));
    json_kv_reply(j, "line", rdb_field(f, FIELD_LINE));
    json_kv_reply(j, "replay_of", rdb_field(f, FIELD_REPLAY_OF));
    struct event *ev = search_event(s, ms, "queued");
    if (ev)
        snprintf(ev->detail, sizeof(ev->detail), "entry %s%s%.600s%s%.20s%s%.40s%s", id,
                 rdb_field(f, FIELD_SOURCE) ? " from " : "",
                 search_str(rdb_field(f, FIELD_SOURCE), ""), rdb_field(f, FIELD_LINE) ? ":" : "",
                 search_str(rdb_field(f, FIELD_LINE), ""),
                 rdb_field(f, FIELD_REPLAY_OF) ? " (a replayed dead letter, " : "",
                 search_str(rdb_field(f, FIELD_REPLAY_OF), ""),
                 rdb_field(f, FIELD_REPLAY_OF) ? ")" : "");

    const char *argv[] = {"XPENDING", w->k_stream, w->s.group, id, id, "1"};
    redisReply *p = rconn_command(w->r, 6, argv, NULL, err, errlen);
    const redisReply *row =
        p && p->type == REDIS_REPLY_ARRAY && p->elements == 1 ? p->element[0] : NULL;
    json_key(j, "state");
    if (row && row->type == REDIS_REPLY_ARRAY && row->elements == 4) {
        long long idle = 0, deliveries = 0;
        rdb_ll(row->element[2], &idle);
        rdb_ll(row->element[3], &deliveries);
        json_str(j, "pending");
        json_kv_str(j, "consumer", search_str(row->element[1], NULL));
        json_kv_int(j, "idle_ms", idle);
        json_kv_int(j, "deliveries", deliveries);
        s->pending++;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ev =
            search_event(s, (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - idle, "delivered");
        if (ev)
            snprintf(ev->detail, sizeof(ev->detail),
                     "pending at %.200s (delivered %lld time%s, last %.1f s ago)",
                     search_str(row->element[1], "?"), deliveries, deliveries == 1 ? "" : "s",
                     (double)idle / 1000.0);
    } else if (s->last_delivered[0] == '\0' || search_id_after(id, s->last_delivered)) {
        json_str(j, "unread");
        s->unread++;
    } else {
        json_str(j, "acked");
    }
    json_end(j);
    if (p)
        freeReplyObject(p);
    else
        web_redis_check(w); /* NOGROUP before the first worker: not an error here */
    return w->r ? 0 : -1;
}

static int search_dead_one(struct web *w, const redisReply *e, void *arg, char *err, size_t errlen)
{
    struct search *s = arg;
    const char *id;
    const redisReply *f;
    long long ms;
    int hit = search_hit(w, s, e, &s->dead_hits, &id, &f, &ms);
    if (hit <= 0)
        return hit < 0;
    json_object(s->j);
    json_kv_str(s->j, "id", id);
    json_kv_reply(s->j, "reason", rdb_field(f, DEAD_REASON));
    json_kv_reply(s->j, "attempts", rdb_field(f, DEAD_ATTEMPTS));
    json_kv_reply(s->j, "error", rdb_field(f, DEAD_ERROR));
    json_kv_reply(s->j, "entry", rdb_field(f, DEAD_ENTRY));
    json_kv_reply(s->j, "consumer", rdb_field(f, DEAD_CONSUMER));
    json_end(s->j);
    struct event *ev = search_event(s, ms, "dead");
    if (ev)
        snprintf(
            ev->detail, sizeof(ev->detail), "dead letter %s: %.100s after %.20s attempt(s): %.900s",
            id, search_str(rdb_field(f, DEAD_REASON), "?"),
            search_str(rdb_field(f, DEAD_ATTEMPTS), "?"), search_str(rdb_field(f, DEAD_ERROR), ""));
    return 0;
}

static const char *search_doc_str(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
        return bson_iter_utf8(&it, NULL);
    return NULL;
}

static long long search_doc_ms(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_DATE_TIME(&it))
        return bson_iter_date_time(&it);
    return 0;
}

/* One document by _id from coll, without field `drop` (NULL: whole); *out NULL when there is
 * none. */
static int search_find(mongoc_collection_t *coll, const char *id, const char *drop, bson_t **out,
                       bson_error_t *e)
{
    bson_t *filter = BCON_NEW(DOC_ID, BCON_UTF8(id));
    bson_t *opts = drop ? BCON_NEW("projection", "{", drop, BCON_INT32(0), "}") : NULL;
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
    const bson_t *doc;
    *out = NULL;
    if (mongoc_cursor_next(cur, &doc))
        *out = bson_copy(doc);
    int rc = mongoc_cursor_error(cur, e) ? -1 : 0;
    mongoc_cursor_destroy(cur);
    if (opts)
        bson_destroy(opts);
    bson_destroy(filter);
    return rc;
}

/* "stored"/"aliased" with the sources document and its image; 0 when the URL has none. */
static int search_stored(struct web *w, struct search *s, const char **status, bson_error_t *e)
{
    bson_t *src = NULL, *img = NULL;
    static const char *const skip[] = {DOC_ORIGIN, DOC_TRANSFORMS, DOC_GRIDFS_ID, NULL};
    if (search_find(w->sources, s->norm, NULL, &src, e) < 0)
        return -1;
    json_key(s->j, "stored");
    if (src == NULL) {
        json_null(s->j);
        return 0;
    }
    gallery_bson(s->j, src, NULL);
    const char *image = search_doc_str(src, SRC_IMAGE), *role = search_doc_str(src, SRC_ROLE);
    int alias = role && strcmp(role, ROLE_ALIAS) == 0;
    *status = alias ? "aliased" : "stored";
    const char *entry = search_doc_str(src, DOC_STREAM_ID);
    const char *consumer = search_doc_str(src, DOC_CONSUMER);
    struct event *ev = search_event(s, search_doc_ms(src, DOC_INSERTED_AT), *status);
    if (ev)
        snprintf(ev->detail, sizeof(ev->detail), "%s image %.64s by entry %.60s (%.200s)",
                 alias ? "an alias of" : "stored as", image ? image : "?", entry ? entry : "?",
                 consumer ? consumer : "?");
    json_key(s->j, "image");
    if (image && search_find(w->m->images, image, DOC_IMAGE, &img, e) < 0) {
        bson_destroy(src);
        return -1;
    }
    if (img) {
        gallery_bson(s->j, img, skip);
        const char *first = search_doc_str(img, DOC_SOURCE);
        if (alias && (ev = search_event(s, search_doc_ms(img, DOC_INSERTED_AT), "image")))
            snprintf(ev->detail, sizeof(ev->detail), "image %.64s first stored from %.1000s", image,
                     first ? first : "?");
        bson_destroy(img);
    } else {
        json_null(s->j);
    }
    bson_destroy(src);
    return 1;
}

static int search_cmp(const void *a, const void *b)
{
    const struct event *x = a, *y = b;
    return x->ms < y->ms ? -1 : x->ms > y->ms;
}

static void search_timeline(struct search *s)
{
    qsort(s->events, (size_t)s->nevents, sizeof(*s->events), search_cmp);
    json_key(s->j, "timeline");
    json_array(s->j);
    for (int i = 0; i < s->nevents; i++) {
        json_object(s->j);
        json_key(s->j, "time");
        if (s->events[i].ms > 0)
            json_int(s->j, s->events[i].ms);
        else
            json_null(s->j);
        json_kv_str(s->j, "event", s->events[i].what);
        json_kv_str(s->j, "detail", s->events[i].detail);
        json_end(s->j);
    }
    json_end(s->j);
}

/* The most final state wins: stored, then work in progress, then failure. */
static const char *search_status(const struct search *s, const char *stored, int seen)
{
    if (stored)
        return stored;
    if (s->pending)
        return "pending";
    if (s->unread)
        return "queued";
    if (s->dead_hits)
        return "dead";
    if (s->norm == NULL)
        return "invalid";
    return seen ? "seen" : "not_seen";
}

static int search_run(struct web *w, struct search *s, char *err, size_t errlen)
{
    const char *status = NULL;
    bson_error_t e;
    int rc;
    json_key(s->j, "valid");
    json_bool(s->j, s->norm != NULL);
    json_kv_str(s->j, "normalized", s->norm);
    if (s->norm) {
        rc = search_stored(w, s, &status, &e);
        if (rc < 0) {
            snprintf(err, errlen, "mongo: %s", e.message);
            return -1;
        }
    }
    if (web_redis(w, err, errlen) == NULL)
        return -1;
    search_group(w, s);
    json_key(s->j, "stream");
    json_array(s->j);
    if (web_walk(w, w->k_stream, search_stream_one, s, err, errlen) < 0)
        return -1;
    json_end(s->j);
    json_key(s->j, "dead");
    json_array(s->j);
    if (web_walk(w, w->k_dead, search_dead_one, s, err, errlen) < 0)
        return -1;
    json_end(s->j);
    long long seen = 0;
    if (s->norm) {
        const char *argv[] = {"SISMEMBER", w->k_seen, s->norm};
        redisReply *r = rconn_command(w->r, 3, argv, NULL, err, errlen);
        if (r == NULL) {
            web_redis_check(w);
            return -1;
        }
        rdb_ll(r, &seen);
        freeReplyObject(r);
    }
    json_key(s->j, "seen");
    json_bool(s->j, seen == 1);
    json_kv_str(s->j, "status", search_status(s, status, seen == 1));
    search_timeline(s);
    return 0;
}

void search_get(struct web *w, struct evhttp_request *req)
{
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    char *query = web_param(q, "url"), err[1024];
    struct search *s = calloc(1, sizeof(*s));
    struct web_out o;
    if (query == NULL || query[0] == '\0') {
        web_error(req, 400, "which URL? give ?url=...");
        goto done;
    }
    if (s == NULL || web_out_open(&o) < 0) {
        web_error(req, 500, "out of memory");
        goto done;
    }
    s->query = query;
    s->j = &o.j;
    enum url_reason why = url_parse(query, strlen(query), &w->s.allowed, &s->u);
    static char norm[URL_MAX + 1];
    if (why == URL_OK) {
        memcpy(norm, s->u.norm, sizeof(norm));
        s->norm = norm;
    }
    json_object(&o.j);
    json_kv_str(&o.j, "query", query);
    json_kv_str(&o.j, "invalid_reason", why == URL_OK ? NULL : url_reason_name(why));
    if (search_run(w, s, err, sizeof(err)) < 0) {
        web_out_fail(req, &o, 502, "%s", err);
        goto done;
    }
    json_end(&o.j);
    web_out_send(req, &o, 200);
done:
    free(s);
    free(query);
}
