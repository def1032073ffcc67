/* web.h -- pixflow-web, the operator's console: what its handlers share.
 *
 * One libevent loop serves the pages and their JSON. The console is read-mostly and serves a few
 * operators, so each request runs its Redis and MongoDB calls in turn on the loop, blocking, each
 * bounded by --timeout: a server that hangs stalls the console for that long, never forever.
 * That is why it is its own program: the CLI `pixflow` links neither libevent nor libcurl. */
#ifndef PIXFLOW_WEB_H
#define PIXFLOW_WEB_H

#include <event2/http.h>
#include <hiredis/hiredis.h>
#include <stdio.h>

#include "json.h"
#include "mdb.h"
#include "raw.h"
#include "settings.h"

#define WEB_SECRET_MAX 64
#define WEB_SAMPLES    150 /* the throughput chart: 5 minutes at WEB_SAMPLE_MS */
#define WEB_SAMPLE_MS  2000

/* One reading of <prefix>stats for the chart and the rates. */
struct web_sample {
    long long ms;      /* wall clock */
    redisReply *stats; /* HGETALL, owned */
};

struct web {
    struct settings s;
    long timeout_ms;
    const char *listen;
    const char *token;                    /* PIXFLOW_WEB_TOKEN; "" when none */
    unsigned char secret[WEB_SECRET_MAX]; /* HMAC key of cookies and CSRF tokens */
    size_t secret_len;
    redisContext *r; /* NULL until first use and after a broken link */
    struct mdb *m;
    mongoc_collection_t *sources;
    struct raw_store *raw; /* where originals are kept; NULL: PIXFLOW_RAW_URL unset */
    struct web_sample samples[WEB_SAMPLES];
    int nsamples, next_sample; /* a ring: next_sample is where the next one goes */
    char k_stream[SET_KEY_MAX], k_dead[SET_KEY_MAX], k_seen[SET_KEY_MAX], k_stats[SET_KEY_MAX];
};

/* A JSON reply being written into memory. */
struct web_out {
    FILE *f;
    char *buf;
    size_t len;
    struct json j;
};

/* ---- main.c: replies and shared connections ---- */
/* Sends len bytes of data as `type` with `code`. */
void web_send(struct evhttp_request *req, int code, const char *type, const void *data, size_t len);
int web_out_open(struct web_out *o);
/* Sends the JSON written to o with `code`, and frees o. */
void web_out_send(struct evhttp_request *req, struct web_out *o, int code);
/* Drops what o holds and answers {"error": "..."} with `code` instead. */
void web_out_fail(struct evhttp_request *req, struct web_out *o, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* {"error": "..."} with `code`. */
void web_error(struct evhttp_request *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The Redis link, reconnected when it broke; NULL with err. */
redisContext *web_redis(struct web *w, char *err, size_t errlen);
/* Forgets the link after a failed command so the next request reconnects. */
void web_redis_check(struct web *w);
/* The value of query parameter `name` of the request (or of a form body), malloc'd; NULL when
 * absent. */
char *web_param(const char *query, const char *name);
/* The request's body as a C string (malloc'd, forms are small: NULL past 64 KiB). */
char *web_body(struct evhttp_request *req);

/* ---- auth.c: the token, the session cookie, CSRF ---- */
#define AUTH_SID_MAX 160
/* The secret: the token when there is one, random bytes otherwise. -1 with err. */
int auth_init(struct web *w, char *err, size_t errlen);
/* 1 when the request may go on: the Bearer token, or a valid session cookie (whose id goes to
 * sid, "" when none), or no token configured. A valid cookie is set when there is none, so a
 * browser always has a session to bind its CSRF token to. `bearer` tells how it got in. */
int auth_check(struct web *w, struct evhttp_request *req, char sid[AUTH_SID_MAX], int *bearer);
/* The CSRF token of session sid (hex, 65 bytes). */
void auth_csrf(const struct web *w, const char *sid, char out[65]);
/* 1 when a POST carries the CSRF token of its session (header X-CSRF-Token or field csrf of
 * the form body `form`), or came in with the Bearer token. */
int auth_csrf_ok(const struct web *w, struct evhttp_request *req, const char *sid, int bearer,
                 const char *form);
/* POST /login (form field token): the cookie and 303 to /, or 303 back to /login?failed=1. */
void auth_login(struct web *w, struct evhttp_request *req);
/* GET /logout: the cookie cleared, 303 to /login. */
void auth_logout(struct web *w, struct evhttp_request *req);

/* ---- overview.c ---- */
void overview_sample(struct web *w);
void overview_free(struct web *w);
void overview_get(struct web *w, struct evhttp_request *req);

/* ---- letters.c ---- */
/* Called for each entry [id, [field, value...]] of a stream; 0 goes on, 1 stops, -1 fails. */
typedef int web_walk_fn(struct web *w, const redisReply *entry, void *arg, char *err,
                        size_t errlen);
/* Every entry of stream `key`, newest first, page by page, at most WEB_WALK_MAX; -1 with err. */
#define WEB_WALK_MAX 200000
int web_walk(struct web *w, const char *key, web_walk_fn *fn, void *arg, char *err, size_t errlen);
/* The string reply v is exactly s. */
int web_is(const redisReply *v, const char *s);
/* "key": the string v, or null. */
void json_kv_reply(struct json *j, const char *key, const redisReply *v);
void letters_get(struct web *w, struct evhttp_request *req);
void letters_replay(struct web *w, struct evhttp_request *req, const char *form);

/* ---- search.c ---- */
void search_get(struct web *w, struct evhttp_request *req);

/* ---- gallery.c ---- */
void gallery_list(struct web *w, struct evhttp_request *req);
/* /api/images/<id> (metadata and the URLs that produced it) or /api/images/<id>.png */
void gallery_image(struct web *w, struct evhttp_request *req, const char *rest);
/* POST /api/reprocess: form original=SHA256&rendition=NAME (+ CSRF), queued once (requeue.h). */
void gallery_reprocess(struct web *w, struct evhttp_request *req, const char *form);
/* /api/originals/<sha256>: the downloaded original, from the raw store. */
void gallery_original(struct web *w, struct evhttp_request *req, const char *rest);
/* A BSON document as a JSON object through j (dates as ISO 8601 text, binary data left out),
 * without the fields named in `skip` (NULL-terminated; may be NULL). */
void gallery_bson(struct json *j, const bson_t *doc, const char *const *skip);
/* 1 when s is an image id: 64 lowercase hex digits. */
int gallery_is_id(const char *s);

#endif
