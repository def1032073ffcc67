/* images.c -- /images: parse the request on the loop, read MongoDB on the pool, reply on the loop.
 *
 * The reads have their own small pool: they are client-driven, so queued behind decoding they
 * would wait for minutes, and a burst of them would delay images in flight. IMAGES_THREADS
 * bounds what the listener can take from MongoDB and the CPU at once.
 *
 * A client may hang up while its read runs: the connection's close callback marks the request
 * gone, and the reply is then dropped instead of written to a freed request. */
#include "images.h"
#include "image.h"
#include "names.h"
#include "transforms.h"
#include "log.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMAGES_PAGE_DEFAULT 20

struct images {
    struct pool *pool;
    struct store *store;
    const struct url_hosts *hosts;
};

enum images_what { IMG_PNG, IMG_JSON, IMG_SOURCE, IMG_LIST };

struct images_req {
    struct images *im;
    struct evhttp_request *req;
    int gone;
    enum images_what what;
    char id[65], after[65];
    char rendition[RENDITION_NAME_MAX + 1]; /* "" or "default": the URL's own picture */
    struct url url;
    int limit;
    /* results, from the pool */
    int rc, found;
    char *json;
    unsigned char *png;
    size_t png_len;
    char err[256];
};

struct images *images_new(struct event_base *base, struct store *store,
                          const struct url_hosts *hosts, char *err, size_t errlen)
{
    struct images *im = calloc(1, sizeof(*im));
    if (im == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    im->pool = pool_new(base, IMAGES_THREADS, err, errlen);
    if (im->pool == NULL) {
        free(im);
        return NULL;
    }
    im->store = store;
    im->hosts = hosts;
    return im;
}

void images_free(struct images *im)
{
    if (im == NULL)
        return;
    pool_free(im->pool); /* delivers the reads still running: they reply or drop */
    free(im);
}

static void images_reply(struct evhttp_request *req, int code, const char *reason, const char *type,
                         const void *body, size_t len)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evbuffer_add(b, body, len);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
    evhttp_send_reply(req, code, reason, b);
    evbuffer_free(b);
}

static void images_error(struct evhttp_request *req, int code, const char *reason,
                         const char *message)
{
    char body[512];
    int n = snprintf(body, sizeof(body), "%s\n", message);
    images_reply(req, code, reason, "text/plain", body, (size_t)(n < 0 ? 0 : n));
}

static int images_is_id(const char *s, size_t len)
{
    if (len != 64)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
            return 0;
    return 1;
}

/* ?rendition=NAME: the image of renditions[<the URL's original>/NAME] instead (SPEC §6). */
static void images_rendition(struct images_req *r)
{
    char origin[65] = "";
    struct store_rendition sr;
    struct store *st = r->im->store;
    r->rc = store_find_origin(st, r->url.norm, &r->found, origin, r->err, sizeof(r->err));
    if (r->rc < 0 || !r->found || !origin[0]) {
        r->found = 0;
        return;
    }
    r->rc = store_find_rendition(st, origin, r->rendition, NULL, 0, &sr, r->err, sizeof(r->err));
    r->found = r->rc == 0 && sr.found;
    if (r->found)
        memcpy(r->id, sr.image, sizeof(sr.image));
}

static void images_read(void *arg)
{
    struct images_req *r = arg;
    struct store *st = r->im->store;
    switch (r->what) {
    case IMG_PNG:
        r->rc = store_get(st, r->id, &r->found, NULL, &r->png, &r->png_len, r->err, sizeof(r->err));
        break;
    case IMG_JSON:
        r->rc = store_get(st, r->id, &r->found, &r->json, NULL, NULL, r->err, sizeof(r->err));
        break;
    case IMG_SOURCE:
        r->rc = store_find_url(st, r->url.norm, r->id, NULL, &r->found, r->err, sizeof(r->err));
        if (r->rc == 0 && r->found && r->rendition[0])
            images_rendition(r);
        if (r->rc == 0 && r->found)
            r->rc = store_get(st, r->id, &r->found, &r->json, NULL, NULL, r->err, sizeof(r->err));
        break;
    case IMG_LIST:
        r->rc = store_list(st, r->after, r->limit, &r->json, r->err, sizeof(r->err));
        r->found = 1;
        break;
    }
}

static void images_on_close(struct evhttp_connection *conn, void *arg)
{
    struct images_req *r = arg;
    r->gone = 1;
}

static void images_done(void *arg)
{
    struct images_req *r = arg;
    struct evhttp_request *req = r->req;
    if (!r->gone) {
        evhttp_connection_set_closecb(evhttp_request_get_connection(req), NULL, NULL);
        struct evkeyvalq *out = evhttp_request_get_output_headers(req);
        if (r->rc < 0) {
            log_warn("event=images_failed error=\"%s\"", r->err);
            images_error(req, 503, "Service Unavailable", "MongoDB did not answer");
        } else if (!r->found) {
            images_error(req, 404, "Not Found", "no such image");
        } else if (r->what == IMG_PNG) {
            char etag[70];
            snprintf(etag, sizeof(etag), "\"%s\"", r->id);
            evhttp_add_header(out, "ETag", etag);
            evhttp_add_header(out, "Cache-Control", "public, max-age=31536000, immutable");
            images_reply(req, 200, "OK", image_mime(r->png, r->png_len), r->png, r->png_len);
        } else {
            images_reply(req, 200, "OK", "application/json", r->json, strlen(r->json));
        }
    }
    free(r->json);
    free(r->png);
    free(r);
}

/* Parses the request into r; 0, or -1 after answering 400/404/304 itself. */
static int images_parse(struct images *im, struct evhttp_request *req, struct images_req *r)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = evhttp_uri_get_path(uri), *query = evhttp_uri_get_query(uri);
    if (strcmp(path, "/images") == 0 || strcmp(path, "/images/") == 0) {
        struct evkeyvalq q;
        TAILQ_INIT(&q);
        if (query && evhttp_parse_query_str(query, &q) < 0) {
            images_error(req, 400, "Bad Request", "malformed query");
            return -1;
        }
        const char *source = evhttp_find_header(&q, "source");
        const char *after = evhttp_find_header(&q, "after");
        const char *limit = evhttp_find_header(&q, "limit");
        const char *rendition = evhttp_find_header(&q, "rendition");
        int rc = 0;
        char *end = NULL;
        long n = limit ? strtol(limit, &end, 10) : IMAGES_PAGE_DEFAULT;
        if (source) {
            enum url_reason why = url_parse(source, strlen(source), im->hosts, &r->url);
            if (why != URL_OK) {
                char msg[128];
                snprintf(msg, sizeof(msg), "source is not a valid picture URL: %s",
                         url_reason_name(why));
                images_error(req, 400, "Bad Request", msg);
                rc = -1;
            }
            r->what = IMG_SOURCE;
            if (rc == 0 && rendition && strcmp(rendition, REND_DEFAULT) != 0) {
                if (!rendition_name_ok(rendition)) {
                    images_error(req, 400, "Bad Request", "rendition is not a rendition name");
                    rc = -1;
                } else {
                    snprintf(r->rendition, sizeof(r->rendition), "%s", rendition);
                }
            }
        } else if ((limit && (*end || n < 1 || n > IMAGES_PAGE_MAX)) ||
                   (after && !images_is_id(after, strlen(after)))) {
            images_error(req, 400, "Bad Request", "limit must be 1..100 and after an image id");
            rc = -1;
        } else {
            r->what = IMG_LIST;
            r->limit = (int)n;
            snprintf(r->after, sizeof(r->after), "%s", after ? after : "");
        }
        evhttp_clear_headers(&q);
        return rc;
    }
    if (strncmp(path, "/images/", 8) != 0) {
        images_error(req, 404, "Not Found", "not found");
        return -1;
    }
    const char *id = path + 8;
    size_t len = strlen(id);
    r->what = IMG_PNG;
    if (len > 5 && strcmp(id + len - 5, ".json") == 0) {
        r->what = IMG_JSON;
        len -= 5;
    }
    if (!images_is_id(id, len)) {
        images_error(req, 400, "Bad Request", "an image id is 64 lowercase hex digits");
        return -1;
    }
    memcpy(r->id, id, len);
    r->id[len] = '\0';
    /* Content-addressed: the same id is always the same bytes. */
    const char *inm = evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");
    if (r->what == IMG_PNG && inm && strstr(inm, r->id)) {
        images_reply(req, 304, "Not Modified", "image/png", "", 0);
        return -1;
    }
    return 0;
}

void images_handle(struct images *im, struct evhttp_request *req)
{
    struct images_req *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    r->im = im;
    r->req = req;
    if (images_parse(im, req, r) < 0) {
        free(r);
        return;
    }
    evhttp_connection_set_closecb(evhttp_request_get_connection(req), images_on_close, r);
    pool_submit(im->pool, images_read, images_done, r);
}
