/* serve.c -- request handling for the image server: picsum's redirect and picture routes, the
 * injected faults, and the /__control endpoints.
 * Everything runs on the loop thread. Generating a picture that is not cached is CPU-bound and
 * holds the loop for its duration (about 50 ms at 1920x1080, under a second at 5000x5000): a
 * test server can afford that, and the cache makes repeats free. Slow bodies trickle out on
 * timers (slow.c), never by sleeping. */
#include "serve.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "cache.h"
#include "counter.h"
#include "hostcount.h"
#include "image.h"
#include "query.h"
#include "rng.h"
#include "route.h"
#include "slow.h"
#include "stats.h"

#define SERVE_HOST         "fastly.picsum.photos"
#define SERVE_KEPT_MAX     4096
#define SERVE_LOCATION_MAX 8192
#define SERVE_KEYS_MAX     100000 /* distinct paths (and fault URLs) remembered */
#define SERVE_BOMB_SIZE    60000
#define SERVE_GARBAGE_MIN  1024
#define SERVE_GARBAGE_MAX  (1024 * 1024)
#define SERVE_LISTENERS    2

struct serve_listener {
    struct serve *s;
    const char *scheme;
};

struct serve {
    struct serve_config cfg;
    struct serve_listener listeners[SERVE_LISTENERS];
    int nlisteners;
    struct cache *cache;
    struct stats *stats;
    struct hostcount *hosts; /* requests at once per Host */
    struct counter_map *budgets; /* requests seen per exact URL that carries times=N */
    struct slow_set *slow;
    uint64_t rng;
    unsigned char *bomb;
    size_t bomb_len;
};

/* One request being answered. */
struct serve_req {
    struct serve *s;
    struct evhttp_request *req;
    const char *scheme;
    const char *path;
    const char *query; /* NULL when absent */
    struct route route;
    struct fault fault;
    int uncounted;             /* control requests stay out of the statistics they report */
    char kept[SERVE_KEPT_MAX]; /* the query without its fault parameters, raw */
};

/* ---- replies ---- */

static int serve_is_head(const struct serve_req *r)
{
    return evhttp_request_get_command(r->req) == EVHTTP_REQ_HEAD;
}

static void serve_account(struct serve_req *r, int code, size_t bytes)
{
    if (!r->uncounted)
        stats_reply(r->s->stats, code, r->fault.kind);
    if (r->s->cfg.verbose)
        fprintf(stderr, "picsum: scheme=%s method=%s uri=%s status=%d bytes=%zu fault=%s\n",
                r->scheme, serve_is_head(r) ? "HEAD" : "GET", evhttp_request_get_uri(r->req), code,
                bytes, fault_name(r->fault.kind));
}

static void serve_header(struct serve_req *r, const char *key, const char *value)
{
    evhttp_add_header(evhttp_request_get_output_headers(r->req), key, value);
}

/* Send code and body (may be NULL). Content-Length is the body's unless already set. */
static void serve_reply(struct serve_req *r, int code, const char *reason, struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    size_t len = body != NULL ? evbuffer_get_length(body) : 0;

    if (evhttp_find_header(h, "Content-Length") == NULL) {
        char n[32];

        snprintf(n, sizeof(n), "%zu", len);
        evhttp_add_header(h, "Content-Length", n);
    }
    serve_account(r, code, len);
    if (body != NULL && serve_is_head(r))
        evbuffer_drain(body, len);
    evhttp_send_reply(r->req, code, reason, body);
}

static void serve_text(struct serve_req *r, int code, const char *reason, const char *type,
                       const char *text)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL || evbuffer_add(b, text, strlen(text)) < 0) {
        evbuffer_free(b);
        evhttp_send_error(r->req, 500, NULL);
        return;
    }
    serve_header(r, "Content-Type", type);
    serve_reply(r, code, reason, b);
    evbuffer_free(b);
}

static void serve_plain(struct serve_req *r, int code, const char *reason, const char *text)
{
    serve_text(r, code, reason, "text/plain; charset=utf-8", text);
}

static void serve_redirect(struct serve_req *r, const char *location)
{
    serve_header(r, "Location", location);
    serve_header(r, "Cache-Control", "no-cache");
    serve_plain(r, 302, "Found", "");
}

/* ---- faults on the wire ---- */

static void serve_status_fault(struct serve_req *r)
{
    char ra[16];

    snprintf(ra, sizeof(ra), "%d", r->fault.retry_after);
    switch (r->fault.kind) {
    case FAULT_429:
        serve_header(r, "Retry-After", ra);
        serve_plain(r, 429, "Too Many Requests", "Too Many Requests\n");
        break;
    case FAULT_503:
        serve_header(r, "Retry-After", ra);
        serve_plain(r, 503, "Service Unavailable", "Service Unavailable\n");
        break;
    case FAULT_502:
        serve_plain(r, 502, "Bad Gateway", "Bad Gateway\n");
        break;
    case FAULT_404:
        serve_plain(r, 404, "Not Found", "Not Found\n");
        break;
    default:
        serve_plain(r, 500, "Internal Server Error", "Internal Server Error\n");
        break;
    }
}

static int serve_is_status_fault(enum fault_kind k)
{
    return k == FAULT_500 || k == FAULT_502 || k == FAULT_503 || k == FAULT_429 || k == FAULT_404;
}

/* Each hop of a loop points at the same path with the next hop number, forever. */
static void serve_loop(struct serve_req *r)
{
    char loc[SERVE_LOCATION_MAX];

    snprintf(loc, sizeof(loc), "%s://%s%s?%s%sfault=loop&hop=%d", r->scheme, SERVE_HOST, r->path,
             r->kept, r->kept[0] ? "&" : "", r->fault.hop + 1);
    serve_redirect(r, loc);
}

/* Parse the fault parameters of the request; on a bad one answer 400 and return -1. */
static int serve_parse_fault(struct serve_req *r)
{
    char err[256];

    if (fault_parse_query(r->query, &r->fault, r->kept, sizeof(r->kept), err, sizeof(err)) == 0)
        return 0;
    r->fault.kind = FAULT_NONE;
    serve_plain(r, 400, "Bad Request", err);
    return -1;
}

/* times=N: the fault holds for the first N requests of this exact URL (path and query). A URL
 * the budget table has no room for behaves normally. */
static void serve_budget(struct serve_req *r)
{
    size_t len;
    char *key;
    long n;

    if (r->fault.kind == FAULT_NONE || r->fault.times == FAULT_TIMES_UNLIMITED)
        return;
    len = strlen(r->path) + 1 + (r->query != NULL ? strlen(r->query) : 0) + 1;
    key = malloc(len);
    if (key == NULL) {
        r->fault.kind = FAULT_NONE;
        return;
    }
    snprintf(key, len, "%s?%s", r->path, r->query != NULL ? r->query : "");
    n = counter_incr(r->s->budgets, key);
    free(key);
    if (n < 0 || n > r->fault.times)
        r->fault.kind = FAULT_NONE;
}

/* No fault asked for in the URL: maybe one of the global rates fires. */
static void serve_draw(struct serve_req *r, int body)
{
    const struct fault_rates *rates = &r->s->cfg.rates;

    if (r->fault.kind != FAULT_NONE)
        return;
    r->fault.kind = fault_draw(rates, body, &r->s->rng);
    r->fault.retry_after = rates->retry_after;
    r->fault.delay_ms = rates->delay_ms;
}

/* ---- the /W/H hop ---- */

static int serve_pick_id(struct serve_req *r)
{
    char buf[64];
    uint64_t h;

    if (!r->s->cfg.deterministic)
        return (int)(rng_next(&r->s->rng) % ROUTE_IMAGE_COUNT);
    snprintf(buf, sizeof(buf), "%d/%d?", r->route.width, r->route.height);
    h = rng_fnv1a(RNG_FNV_INIT, buf, strlen(buf));
    h = rng_fnv1a(h, r->kept, strlen(r->kept));
    return (int)(rng_mix64(h) % ROUTE_IMAGE_COUNT);
}

static void serve_random(struct serve_req *r)
{
    char loc[SERVE_LOCATION_MAX], carry[64];
    uint64_t key;
    int id;

    if (serve_parse_fault(r) < 0)
        return;
    serve_budget(r);
    serve_draw(r, 0);
    if (serve_is_status_fault(r->fault.kind)) {
        serve_status_fault(r);
        return;
    }
    if (r->fault.kind == FAULT_LOOP) {
        serve_loop(r);
        return;
    }
    if (r->fault.kind == FAULT_REDIRECT) {
        serve_redirect(r, r->fault.to);
        return;
    }
    /* A picture fault is not served here: it rides the redirect to the picture hop. */
    if (fault_carry(&r->fault, carry, sizeof(carry)) < 0)
        carry[0] = '\0';
    r->fault.kind = FAULT_NONE;
    id = serve_pick_id(r);
    key = ((uint64_t)id << 32) ^ ((uint64_t)r->route.width << 16) ^ (uint64_t)r->route.height;
    snprintf(loc, sizeof(loc), "%s://%s/id/%d/%d/%d.jpg?hmac=%016" PRIx64 "%016" PRIx64 "%s%s%s%s",
             r->scheme, SERVE_HOST, id, r->route.width, r->route.height, rng_mix64(key),
             rng_mix64(~key), r->kept[0] ? "&" : "", r->kept, carry[0] ? "&" : "", carry);
    serve_redirect(r, loc);
}

/* ---- the /id/N/W/H hop ---- */

static int serve_has_param(const char *query, const char *key)
{
    const char *cursor = query;
    struct query_param p;

    while (query_next(&cursor, &p) > 0)
        if (strcmp(p.key, key) == 0)
            return 1;
    return 0;
}

/* The encoded picture for the route, from the cache or freshly made. NULL on failure. */
static struct evbuffer *serve_picture(struct serve_req *r, int flags)
{
    const struct route *rt = &r->route;
    uint64_t key = ((uint64_t)rt->id << 27) | ((uint64_t)rt->width << 14) |
                   ((uint64_t)rt->height << 1) | (uint64_t)(flags & IMAGE_GRAYSCALE);
    struct evbuffer *b = evbuffer_new();
    const unsigned char *cached;
    unsigned char *data;
    size_t len;
    char err[256];

    if (b == NULL)
        return NULL;
    if (r->s->cfg.files != NULL) {
        if (files_get(r->s->cfg.files, rt->width, &cached, &len) < 0 ||
            evbuffer_add(b, cached, len) < 0)
            goto err;
        return b;
    }
    if (cache_get(r->s->cache, key, &cached, &len) == 0) {
        if (evbuffer_add(b, cached, len) < 0)
            goto err;
        return b;
    }
    if (image_jpeg(rt->id, rt->width, rt->height, flags, &data, &len, err, sizeof(err)) < 0) {
        fprintf(stderr, "picsum: error=image id=%d width=%d height=%d detail=\"%s\"\n", rt->id,
                rt->width, rt->height, err);
        goto err;
    }
    if (evbuffer_add(b, data, len) < 0) {
        free(data);
        goto err;
    }
    if (cache_put(r->s->cache, key, data, len) < 0)
        free(data);
    return b;
err:
    evbuffer_free(b);
    return NULL;
}

static void serve_image_headers(struct serve_req *r, size_t len)
{
    char n[32];

    serve_header(r, "Content-Type", "image/jpeg");
    snprintf(n, sizeof(n), "%d", r->route.id);
    serve_header(r, "Picsum-ID", n);
    serve_header(r, "Cache-Control", "public, max-age=2592000");
    snprintf(n, sizeof(n), "%zu", len);
    serve_header(r, "Content-Length", n);
}

static void serve_bytes(struct serve_req *r, const unsigned char *data, size_t len)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL || evbuffer_add(b, data, len) < 0) {
        evbuffer_free(b);
        evhttp_send_error(r->req, 500, NULL);
        return;
    }
    serve_image_headers(r, len);
    serve_reply(r, 200, "OK", b);
    evbuffer_free(b);
}

static void serve_garbage(struct serve_req *r)
{
    size_t len = (size_t)r->route.width * r->route.height / 8;
    unsigned char *buf;

    if (len < SERVE_GARBAGE_MIN)
        len = SERVE_GARBAGE_MIN;
    if (len > SERVE_GARBAGE_MAX)
        len = SERVE_GARBAGE_MAX;
    buf = malloc(len);
    if (buf == NULL) {
        evhttp_send_error(r->req, 500, NULL);
        return;
    }
    for (size_t i = 0; i < len; i += 8) {
        uint64_t v = rng_next(&r->s->rng);
        size_t n = len - i < 8 ? len - i : 8;

        memcpy(buf + i, &v, n);
    }
    buf[0] = 0x00; /* never a JPEG (FF D8) or PNG signature */
    serve_bytes(r, buf, len);
    free(buf);
}

/* Headers promise the whole body; half of it goes out, then the connection closes. */
static void serve_truncated(struct serve_req *r, struct evbuffer *body)
{
    struct evbuffer *half = evbuffer_new();

    if (half == NULL) {
        evhttp_send_error(r->req, 500, NULL);
        return;
    }
    evbuffer_remove_buffer(body, half, evbuffer_get_length(body) / 2);
    serve_header(r, "Connection", "close");
    serve_reply(r, 200, "OK", half);
    evbuffer_free(half);
}

/* Headers now, the body over delay_ms or at bytes_per_s. Takes body. */
static void serve_slow(struct serve_req *r, struct evbuffer *body)
{
    size_t len = evbuffer_get_length(body);
    int rc = r->fault.bytes_per_s > 0
                 ? slow_start_rate(r->s->slow, r->req, 200, "OK", body, r->fault.bytes_per_s)
                 : slow_start(r->s->slow, r->req, 200, "OK", body, r->fault.delay_ms);

    if (rc < 0) {
        serve_reply(r, 200, "OK", body); /* out of memory: at least answer */
        evbuffer_free(body);
        return;
    }
    serve_account(r, 200, len);
}

static void serve_image(struct serve_req *r)
{
    struct evbuffer *body;

    if (serve_parse_fault(r) < 0)
        return;
    serve_budget(r);
    serve_draw(r, 1);
    if (serve_is_status_fault(r->fault.kind)) {
        serve_status_fault(r);
        return;
    }
    switch (r->fault.kind) {
    case FAULT_LOOP:
        serve_loop(r);
        return;
    case FAULT_REDIRECT:
        serve_redirect(r, r->fault.to);
        return;
    case FAULT_NOTIMAGE:
        serve_text(r, 200, "OK", "text/html; charset=utf-8",
                   "<!doctype html>\n<html><head><title>Oops</title></head>"
                   "<body><h1>This is not a picture</h1></body></html>\n");
        return;
    case FAULT_GARBAGE:
        serve_garbage(r);
        return;
    case FAULT_BOMB:
        serve_bytes(r, r->s->bomb, r->s->bomb_len);
        return;
    default:
        break;
    }
    body = serve_picture(r, serve_has_param(r->kept, "grayscale") ? IMAGE_GRAYSCALE : 0);
    if (body == NULL) {
        r->fault.kind = FAULT_NONE;
        serve_plain(r, 500, "Internal Server Error", "Internal Server Error\n");
        return;
    }
    serve_image_headers(r, evbuffer_get_length(body));
    if (r->fault.kind == FAULT_TRUNCATE) {
        serve_truncated(r, body);
    } else if (r->fault.kind == FAULT_SLOW && !serve_is_head(r)) {
        serve_slow(r, body);
        return;
    } else {
        serve_reply(r, 200, "OK", body);
    }
    evbuffer_free(body);
}

/* ---- /__control ---- */

static void serve_json_reply(struct serve_req *r, int code, const char *reason, struct evbuffer *b)
{
    evbuffer_add(b, "\n", 1);
    serve_header(r, "Content-Type", "application/json");
    serve_header(r, "Cache-Control", "no-store");
    serve_reply(r, code, reason, b);
}

static void serve_control_stats(struct serve_req *r, struct evbuffer *b)
{
    struct serve *s = r->s;
    struct cache_stats cs;

    cache_get_stats(s->cache, &cs);
    stats_json(s->stats, &s->cfg.rates, &cs, slow_count(s->slow), s->hosts, b);
    serve_json_reply(r, 200, "OK", b);
}

static void serve_control_reset(struct serve_req *r, struct evbuffer *b)
{
    struct serve *s = r->s;

    stats_reset(s->stats);
    hostcount_reset(s->hosts);
    counter_reset(s->budgets);
    evbuffer_add_printf(b, "{\"reset\": true}");
    serve_json_reply(r, 200, "OK", b);
}

/* kind=K&rate=R[&delay_ms=D][&retry_after=S]; kind=all&rate=0 clears every rate. */
static int serve_control_fault_apply(struct serve_req *r, char *err, size_t errlen)
{
    struct fault_rates next = r->s->cfg.rates;
    const char *cursor = r->query;
    struct query_param p;
    enum fault_kind kind = FAULT_NONE;
    int all = 0, have_rate = 0, rc;
    double rate = 0.0;
    char *end;
    long v;

    for (;;) {
        rc = query_next(&cursor, &p);
        if (rc <= 0)
            break;
        if (strcmp(p.key, "kind") == 0) {
            all = strcmp(p.value, "all") == 0;
            if (!all && (fault_kind_parse(p.value, &kind) < 0 || kind == FAULT_REDIRECT)) {
                snprintf(err, errlen, "unknown or unsupported kind");
                return -1;
            }
        } else if (strcmp(p.key, "rate") == 0) {
            if (fault_rate_parse(p.value, &rate) < 0) {
                snprintf(err, errlen, "rate must be a number in 0..1");
                return -1;
            }
            have_rate = 1;
        } else if (strcmp(p.key, "delay_ms") == 0 || strcmp(p.key, "retry_after") == 0) {
            int delay = p.key[0] == 'd';

            v = strtol(p.value, &end, 10);
            if (p.value[0] == '\0' || *end != '\0' || v < 0 ||
                v > (delay ? FAULT_DELAY_MAX_MS : 86400)) {
                snprintf(err, errlen, "invalid %s", p.key);
                return -1;
            }
            if (delay)
                next.delay_ms = (int)v;
            else
                next.retry_after = (int)v;
        }
    }
    if (rc < 0) {
        snprintf(err, errlen, "malformed query");
        return -1;
    }
    if ((all || kind != FAULT_NONE) && !have_rate) {
        snprintf(err, errlen, "missing rate");
        return -1;
    }
    if (all && rate != 0.0) {
        snprintf(err, errlen, "kind=all only takes rate=0");
        return -1;
    }
    if (all)
        memset(next.rate, 0, sizeof(next.rate));
    else if (kind != FAULT_NONE)
        next.rate[kind] = rate;
    r->s->cfg.rates = next;
    return 0;
}

static void serve_control_fault(struct serve_req *r, struct evbuffer *b)
{
    char err[128];

    if (serve_control_fault_apply(r, err, sizeof(err)) < 0) {
        evbuffer_add_printf(b, "{\"error\": ");
        stats_json_string(err, b);
        evbuffer_add_printf(b, "}");
        serve_json_reply(r, 400, "Bad Request", b);
        return;
    }
    evbuffer_add_printf(b, "{\"rates\": ");
    stats_json_rates(&r->s->cfg.rates, b);
    evbuffer_add_printf(b, ", \"delay_ms\": %d, \"retry_after\": %d}", r->s->cfg.rates.delay_ms,
                        r->s->cfg.rates.retry_after);
    serve_json_reply(r, 200, "OK", b);
}

static void serve_control(struct serve_req *r)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        evhttp_send_error(r->req, 500, NULL);
        return;
    }
    if (r->route.kind == ROUTE_CONTROL_STATS)
        serve_control_stats(r, b);
    else if (r->route.kind == ROUTE_CONTROL_RESET)
        serve_control_reset(r, b);
    else
        serve_control_fault(r, b);
    evbuffer_free(b);
}

/* ---- dispatch ---- */

/* A reply is all sent, or its client left: the request no longer counts as in flight. */
static void serve_request_ended(struct evhttp_request *req, void *arg)
{
    struct serve *s = arg;

    hostcount_end(s->hosts, req);
}

static void serve_left(void *arg, struct evhttp_request *req)
{
    serve_request_ended(req, arg);
}

static void serve_request(struct evhttp_request *req, void *arg)
{
    struct serve_listener *l = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    struct serve_req *r = calloc(1, sizeof(*r));

    if (r == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    r->s = l->s;
    r->req = req;
    r->scheme = l->scheme;
    r->path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    r->query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
    if (r->path == NULL || r->path[0] == '\0')
        r->path = "/";
    route_parse(r->path, &r->route);
    if (r->route.kind != ROUTE_CONTROL_STATS && r->route.kind != ROUTE_CONTROL_RESET &&
        r->route.kind != ROUTE_CONTROL_FAULT) {
        hostcount_begin(r->s->hosts, req);
        evhttp_request_set_on_complete_cb(req, serve_request_ended, r->s);
    }
    switch (r->route.kind) {
    case ROUTE_CONTROL_STATS:
    case ROUTE_CONTROL_RESET:
    case ROUTE_CONTROL_FAULT:
        r->uncounted = 1;
        serve_control(r);
        break;
    case ROUTE_RANDOM:
        stats_request(r->s->stats, r->path);
        serve_random(r);
        break;
    case ROUTE_IMAGE:
        stats_request(r->s->stats, r->path);
        serve_image(r);
        break;
    case ROUTE_BAD_SIZE:
        stats_request(r->s->stats, r->path);
        serve_plain(r, 400, "Bad Request", "Invalid size");
        break;
    default:
        stats_request(r->s->stats, r->path);
        serve_plain(r, 404, "Not Found", "Not Found\n");
        break;
    }
    free(r);
}

/* ---- lifetime ---- */

struct serve *serve_new(struct event_base *base, const struct serve_config *cfg, char *err,
                        size_t errlen)
{
    struct serve *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->rng = cfg->seed;
    s->cache = cache_new(cfg->cache_bytes);
    s->stats = stats_new(SERVE_KEYS_MAX);
    s->budgets = counter_new(SERVE_KEYS_MAX);
    s->slow = slow_new(base);
    s->hosts = hostcount_new();
    if (s->cache == NULL || s->stats == NULL || s->budgets == NULL || s->slow == NULL ||
        s->hosts == NULL) {
        snprintf(err, errlen, "out of memory");
        goto err;
    }
    slow_on_left(s->slow, serve_left, s);
    if (image_bomb(SERVE_BOMB_SIZE, SERVE_BOMB_SIZE, &s->bomb, &s->bomb_len, err, errlen) < 0)
        goto err;
    return s;
err:
    serve_free(s);
    return NULL;
}

void serve_free(struct serve *s)
{
    if (s == NULL)
        return;
    slow_free(s->slow);
    hostcount_free(s->hosts);
    cache_free(s->cache);
    stats_free(s->stats);
    counter_free(s->budgets);
    free(s->bomb);
    free(s);
}

int serve_attach(struct serve *s, struct evhttp *http, const char *scheme)
{
    struct serve_listener *l;

    if (s->nlisteners == SERVE_LISTENERS)
        return -1;
    l = &s->listeners[s->nlisteners++];
    l->s = s;
    l->scheme = scheme;
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_gencb(http, serve_request, l);
    return 0;
}
