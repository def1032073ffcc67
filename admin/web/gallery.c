/* gallery.c -- /api/images: the stored pictures newest first, one page at a time;
 * /api/images/<id>: one picture's metadata, its kept original (`originals`) and every URL that
 * produced it (the `sources` documents naming it, SPEC §6); /api/images/<id>.png: the PNG
 * itself; /api/originals/<sha256>: the downloaded original, read back from the raw store.
 *
 * Pages are skip/limit over inserted_at descending: simple, and every server speaking the
 * MongoDB protocol sorts it; the cost grows with the page number (FerretDB v1 sorts in memory),
 * which a console paging by hand does not feel. The PNG is served as stored and the browser
 * shrinks it into a thumbnail: content-addressed, so it is cached for good by its ETag. */
#include "web.h"

#include "image.h"

#include "names.h"
#include "requeue.h"
#include "transforms.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAGE_DEF    24
#define PAGE_MAX    200
#define SOURCES_MAX 1000
#define SUMMARY_SKIP                                                                               \
    {                                                                                              \
        DOC_IMAGE, DOC_ORIGIN, DOC_TRANSFORMS, DOC_GRIDFS_ID, NULL                                 \
    }

int gallery_is_id(const char *s)
{
    return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

static void gallery_date(struct json *j, int64_t ms)
{
    char buf[64];
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof(buf) - n, ".%03dZ", (int)(ms % 1000 + 1000) % 1000);
    json_str(j, buf);
}

static void gallery_value(struct json *j, bson_iter_t *it);

/* The fields (or elements) left in it, but those named in skip and binary data. */
static void gallery_fields(struct json *j, bson_iter_t *it, int array, const char *const *skip)
{
    while (bson_iter_next(it)) {
        const char *key = bson_iter_key(it);
        int skipped = BSON_ITER_HOLDS_BINARY(it);
        for (int i = 0; skip && skip[i]; i++)
            skipped |= strcmp(skip[i], key) == 0;
        if (skipped)
            continue;
        if (!array)
            json_key(j, key);
        gallery_value(j, it);
    }
}

static void gallery_children(struct json *j, bson_iter_t *it, int array)
{
    bson_iter_t child;
    if (!bson_iter_recurse(it, &child)) {
        json_null(j);
        return;
    }
    if (array)
        json_array(j);
    else
        json_object(j);
    gallery_fields(j, &child, array, NULL);
    json_end(j);
}

static void gallery_value(struct json *j, bson_iter_t *it)
{
    uint32_t len;
    const char *s;
    char oid[25];
    switch (bson_iter_type(it)) {
    case BSON_TYPE_UTF8:
        s = bson_iter_utf8(it, &len);
        json_strn(j, s, len);
        break;
    case BSON_TYPE_INT32:
        json_int(j, bson_iter_int32(it));
        break;
    case BSON_TYPE_INT64:
        json_int(j, bson_iter_int64(it));
        break;
    case BSON_TYPE_DOUBLE:
        json_double(j, bson_iter_double(it));
        break;
    case BSON_TYPE_BOOL:
        json_bool(j, bson_iter_bool(it));
        break;
    case BSON_TYPE_DATE_TIME:
        gallery_date(j, bson_iter_date_time(it));
        break;
    case BSON_TYPE_OID:
        bson_oid_to_string(bson_iter_oid(it), oid);
        json_str(j, oid);
        break;
    case BSON_TYPE_DOCUMENT:
        gallery_children(j, it, 0);
        break;
    case BSON_TYPE_ARRAY:
        gallery_children(j, it, 1);
        break;
    default:
        json_null(j);
        break;
    }
}

void gallery_bson(struct json *j, const bson_t *doc, const char *const *skip)
{
    bson_iter_t it;
    json_object(j);
    if (bson_iter_init(&it, doc))
        gallery_fields(j, &it, 0, skip);
    json_end(j);
}

static long gallery_long(const char *query, const char *name, long def, long max)
{
    char *v = web_param(query, name), *end = NULL;
    long n = v ? strtol(v, &end, 10) : def;
    if (v && (end == v || *end != '\0'))
        n = -1;
    free(v);
    return n < 0 || n > max ? -1 : n;
}

void gallery_list(struct web *w, struct evhttp_request *req)
{
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    long limit = gallery_long(q, "limit", PAGE_DEF, PAGE_MAX);
    long offset = gallery_long(q, "offset", 0, 100000000);
    if (limit <= 0 || offset < 0) {
        web_error(req, 400, "limit: 1..%d, offset: 0 or more", PAGE_MAX);
        return;
    }
    bson_t filter = BSON_INITIALIZER;
    bson_t *opts = BCON_NEW("projection", "{", DOC_IMAGE, BCON_INT32(0), "}", "sort", "{",
                            DOC_INSERTED_AT, BCON_INT32(-1), DOC_ID, BCON_INT32(-1), "}", "skip",
                            BCON_INT64(offset), "limit", BCON_INT64(limit));
    bson_error_t e;
    int64_t total = mongoc_collection_count_documents(w->m->images, &filter, NULL, NULL, NULL, &e);
    mongoc_cursor_t *cur =
        total < 0 ? NULL : mongoc_collection_find_with_opts(w->m->images, &filter, opts, NULL);
    struct web_out o;
    const bson_t *doc;
    static const char *const skip[] = SUMMARY_SKIP;
    if (cur == NULL || web_out_open(&o) < 0) {
        if (cur == NULL)
            web_error(req, 502, "mongo: %s", e.message);
        else
            web_error(req, 500, "out of memory");
        goto done;
    }
    json_object(&o.j);
    json_key(&o.j, "images");
    json_array(&o.j);
    while (mongoc_cursor_next(cur, &doc))
        gallery_bson(&o.j, doc, skip);
    if (mongoc_cursor_error(cur, &e)) {
        web_out_fail(req, &o, 502, "mongo: %s", e.message);
        goto done;
    }
    json_end(&o.j);
    json_kv_int(&o.j, "offset", offset);
    json_kv_int(&o.j, "limit", limit);
    json_kv_int(&o.j, "total", total);
    json_end(&o.j);
    web_out_send(req, &o, 200);
done:
    if (cur)
        mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(&filter);
}

/* The `sources` documents that name image id, as [{url, role, stream_id, consumer,
 * inserted_at}]. -1 with e. */
static int gallery_sources(struct web *w, struct json *j, const char *id, bson_error_t *e)
{
    bson_t *filter = BCON_NEW(SRC_IMAGE, BCON_UTF8(id));
    bson_t *opts = BCON_NEW("sort", "{", DOC_INSERTED_AT, BCON_INT32(1), "}", "limit",
                            BCON_INT64(SOURCES_MAX));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(w->sources, filter, opts, NULL);
    const bson_t *doc;
    json_array(j);
    while (mongoc_cursor_next(cur, &doc))
        gallery_bson(j, doc, NULL);
    json_end(j);
    int rc = mongoc_cursor_error(cur, e) ? -1 : 0;
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(filter);
    return rc;
}

static void gallery_png(struct web *w, struct evhttp_request *req, const bson_t *doc,
                        const char *id)
{
    char err[512], etag[80];
    unsigned char *png = NULL;
    size_t len = 0;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    const char *inm = evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");
    snprintf(etag, sizeof(etag), "\"%s\"", id);
    if (inm && strcmp(inm, etag) == 0) {
        evhttp_add_header(h, "ETag", etag);
        evhttp_send_reply(req, 304, "Not Modified", NULL);
        return;
    }
    if (stored_png(w->m->db, &w->m->bucket, doc, &png, &len, err, sizeof(err)) != STORED_OK) {
        web_error(req, 502, "%s: %s", id, err);
        free(png);
        return;
    }
    evhttp_add_header(h, "ETag", etag);
    evhttp_add_header(h, "Cache-Control", "private, max-age=86400");
    web_send(req, 200, image_mime(png, len), png, len);
    free(png);
}

/* The `originals` document of the image's download, with where the console serves it, or null
 * when it was not kept. -1 with e. */
static int gallery_kept(struct web *w, struct json *j, const bson_t *image, bson_error_t *e)
{
    bson_iter_t root, it;
    const char *sha = NULL;
    bson_t *doc = NULL;
    if (bson_iter_init(&root, image) &&
        bson_iter_find_descendant(&root, DOC_ORIGIN "." DOC_SHA256, &it) &&
        BSON_ITER_HOLDS_UTF8(&it))
        sha = bson_iter_utf8(&it, NULL);
    if (sha && gallery_is_id(sha) && stored_find_id(w->m->originals, sha, NULL, &doc, e) < 0)
        return -1;
    if (doc == NULL) {
        json_null(j);
        return 0;
    }
    char href[96];
    snprintf(href, sizeof(href), "/api/originals/%s", sha);
    json_object(j);
    json_key(j, "document");
    gallery_bson(j, doc, NULL);
    json_kv_str(j, "href", w->raw ? href : "");
    json_end(j);
    bson_destroy(doc);
    return 0;
}

/* "renditions": the `renditions` documents of the picture's original, and "defined": every
 * rendition by name with its chain (`default` and <prefix>renditions), for the picture page and
 * its reprocess button. -1 with e. */
static int gallery_renditions(struct web *w, struct json *j, const bson_t *image, bson_error_t *e)
{
    bson_iter_t root, it;
    const char *sha = NULL;
    if (bson_iter_init(&root, image) &&
        bson_iter_find_descendant(&root, DOC_ORIGIN "." DOC_SHA256, &it) &&
        BSON_ITER_HOLDS_UTF8(&it))
        sha = bson_iter_utf8(&it, NULL);
    json_key(j, COLL_RENDITIONS);
    json_array(j);
    if (sha && gallery_is_id(sha)) {
        mongoc_collection_t *coll = mongoc_database_get_collection(w->m->db, COLL_RENDITIONS);
        bson_t *filter = BCON_NEW(REND_ORIGINAL, BCON_UTF8(sha));
        mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
        const bson_t *doc;
        while (mongoc_cursor_next(cur, &doc))
            gallery_bson(j, doc, NULL);
        int failed = mongoc_cursor_error(cur, e);
        mongoc_cursor_destroy(cur);
        bson_destroy(filter);
        mongoc_collection_destroy(coll);
        if (failed)
            return -1;
    }
    json_end(j);
    char err[256], key[SET_KEY_MAX];
    redisContext *c = web_redis(w, err, sizeof(err));
    redisReply *r = NULL;
    if (c) {
        settings_key(&w->s, KEY_RENDITIONS, key, sizeof(key));
        r = redisCommand(c, "HGETALL %s", key);
    }
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        web_redis_check(w);
        if (r)
            freeReplyObject(r);
        bson_set_error(e, 0, 0, "redis: %s", c ? c->errstr : err);
        return -1;
    }
    json_key(j, "defined");
    json_object(j);
    json_kv_str(j, REND_DEFAULT, w->s.transforms);
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        json_kv_str(j, r->element[i]->str, r->element[i + 1]->str);
    json_end(j);
    freeReplyObject(r);
    return 0;
}

void gallery_reprocess(struct web *w, struct evhttp_request *req, const char *form)
{
    char *original = web_param(form, FIELD_ORIGINAL), *name = web_param(form, FIELD_RENDITION);
    char err[512];
    if (original == NULL || name == NULL || !gallery_is_id(original) || !rendition_name_ok(name)) {
        web_error(req, 400, "want original (64 hex digits) and rendition (a name, not default)");
        goto done;
    }
    if (w->raw == NULL) {
        web_error(req, 409, "originals are not kept here (PIXFLOW_RAW_URL is not set)");
        goto done;
    }
    redisContext *c = web_redis(w, err, sizeof(err));
    const char *ids[] = {original};
    redisReply *q = c ? requeue_run(c, &w->s, name, ids, 1, err, sizeof(err)) : NULL;
    if (q == NULL) {
        web_redis_check(w);
        web_error(req, 502, "%s", err);
        goto done;
    }
    struct web_out o;
    if (web_out_open(&o) == 0) {
        json_object(&o.j);
        json_kv_str(&o.j, FIELD_ORIGINAL, original);
        json_kv_str(&o.j, FIELD_RENDITION, name);
        json_key(&o.j, "queued");
        json_bool(&o.j, q->elements == 1);
        json_end(&o.j);
        web_out_send(req, &o, 200);
    } else {
        web_error(req, 500, "out of memory");
    }
    freeReplyObject(q);
done:
    free(original);
    free(name);
}

void gallery_original(struct web *w, struct evhttp_request *req, const char *rest)
{
    char err[512], type[RAW_TYPE_MAX] = "", etag[80];
    unsigned char *bytes = NULL;
    size_t len = 0;
    int found = 0;
    if (!gallery_is_id(rest)) {
        web_error(req, 400, "not an original's id (64 lowercase hex digits)");
        return;
    }
    if (w->raw == NULL) {
        web_error(req, 404, "originals are not kept here (PIXFLOW_RAW_URL is not set)");
        return;
    }
    if (raw_get(w->raw, rest, &found, &bytes, &len, type, err, sizeof(err)) < 0) {
        web_error(req, 502, "raw store: %s", err);
        return;
    }
    if (!found) {
        web_error(req, 404, "no original %s in %s", rest, raw_describe(w->raw));
        return;
    }
    /* Content-addressed: its name is its ETag, cached for good. A stored type is sent as
     * given only when it names an image; the bytes came from the web. */
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    snprintf(etag, sizeof(etag), "\"%s\"", rest);
    evhttp_add_header(h, "ETag", etag);
    evhttp_add_header(h, "Cache-Control", "private, max-age=86400");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    web_send(req, 200, strncmp(type, "image/", 6) == 0 ? type : "application/octet-stream", bytes,
             len);
    free(bytes);
}

void gallery_image(struct web *w, struct evhttp_request *req, const char *rest)
{
    char id[65];
    size_t n = strlen(rest);
    int png = n == 68 && strcmp(rest + 64, ".png") == 0;
    if (!(n == 64 || png)) {
        web_error(req, 400, "not an image id (64 hex digits, optionally .png)");
        return;
    }
    memcpy(id, rest, 64);
    id[64] = '\0';
    if (!gallery_is_id(id)) {
        web_error(req, 400, "not an image id (64 lowercase hex digits)");
        return;
    }
    bson_t *filter = BCON_NEW(DOC_ID, BCON_UTF8(id));
    bson_t *opts = png ? NULL : BCON_NEW("projection", "{", DOC_IMAGE, BCON_INT32(0), "}");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(w->m->images, filter, opts, NULL);
    const bson_t *doc;
    bson_error_t e;
    struct web_out o;
    if (!mongoc_cursor_next(cur, &doc)) {
        if (mongoc_cursor_error(cur, &e))
            web_error(req, 502, "mongo: %s", e.message);
        else
            web_error(req, 404, "no stored image %s", id);
        goto done;
    }
    if (png) {
        gallery_png(w, req, doc, id);
        goto done;
    }
    if (web_out_open(&o) < 0) {
        web_error(req, 500, "out of memory");
        goto done;
    }
    json_object(&o.j);
    json_key(&o.j, "image");
    gallery_bson(&o.j, doc, NULL);
    json_key(&o.j, "original");
    if (gallery_kept(w, &o.j, doc, &e) < 0) {
        web_out_fail(req, &o, 502, "mongo: %s", e.message);
        goto done;
    }
    json_key(&o.j, "sources");
    if (gallery_sources(w, &o.j, id, &e) < 0) {
        web_out_fail(req, &o, 502, "mongo: %s", e.message);
        goto done;
    }
    if (gallery_renditions(w, &o.j, doc, &e) < 0) {
        web_out_fail(req, &o, 502, "%s", e.message);
        goto done;
    }
    json_end(&o.j);
    web_out_send(req, &o, 200);
done:
    mongoc_cursor_destroy(cur);
    if (opts)
        bson_destroy(opts);
    bson_destroy(filter);
}
