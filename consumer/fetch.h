/* fetch.h -- the consumer's download engine: libcurl multi_socket driven by a libevent loop.
 *
 * One engine per event loop; hundreds of transfers in flight on it, none ever blocking the loop
 * (curl's threaded resolver, non-blocking sockets, no curl_easy_perform). Every transfer ends in
 * exactly one call of its done function with a classified result, unless it is cancelled first.
 * Redirects are followed by the engine itself, each hop re-checked against the allowed hosts,
 * and every address is checked after DNS (netguard.h) before a socket is even opened. */
#ifndef PIXFLOW_FETCH_H
#define PIXFLOW_FETCH_H

#include <stddef.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "settings.h"

struct fetch_engine; /* one per loop: the CURLM, its timer and one event per socket */
struct fetch;        /* one transfer, from fetch_start until done is called or fetch_cancel */

struct fetch_limits {
    long max_bytes;          /* body cap: refused early from Content-Length, and aborted in the
                                write callback once more arrives; "too_large" (permanent) */
    long connect_timeout_ms; /* per connection attempt (TCP + TLS handshake) */
    long total_timeout_ms;   /* whole transfer, every redirect hop included; "timeout" */
    int max_redirects;       /* hops followed at most; one more is "too_many_redirects" */
    long low_speed_bytes;    /* a body slower than this many bytes per second ... */
    long low_speed_secs;     /* ... for this many seconds is aborted as "timeout"; 0 = never */
    long idle_connections;   /* idle connections kept for reuse; 0: curl's default, 4 per
                                transfer still running, which closes most of them whenever
                                a wave of transfers ends */
    long memory;             /* bytes all bodies of the engine may hold at once, arriving or
                                delivered and not yet freed; 0 = no budget, else >= max_bytes */
};

/* SPEC §5.4: transient failures are retried with backoff, permanent ones dead-lettered. */
enum fetch_class { FETCH_OK, FETCH_TRANSIENT, FETCH_PERMANENT };

#define FETCH_REASON_MAX 32

struct fetch_result {
    enum fetch_class cls;
    /* Stable short code for counters and dead letters ("ok" on success).
     * Transient: "http_5xx", "http_429", "http_408", "timeout", "connect", "dns", "tls",
     *            "truncated", "network", "internal".
     * Permanent: "http_NNN" (other 3xx without Location, and other 4xx, e.g. "http_404"),
     *            "not_image_type", "empty_body", "too_large", "redirect_host", "redirect_scheme",
     *            "too_many_redirects", "blocked_address", "protocol" (a reply curl cannot
     *            read), "bad_url" (curl refused the URL), and for a URL refused before any
     *            connection the url.h reason ("bad_host", "bad_scheme", "userinfo", ...). */
    char reason[FETCH_REASON_MAX];
    char error[256];     /* human detail: curl's error buffer, the refused address, ... */
    long http_code;      /* status of the last hop; 0 when it got no response */
    long retry_after_ms; /* Retry-After of the last response (delta-seconds or HTTP-date, capped
                            at 24 h), -1 when absent */
    char final_url[URL_MAX + 1]; /* the URL of the last hop requested */
    char content_type[128];      /* Content-Type of the last response, "" when none */
    unsigned char *body;         /* FETCH_OK only (NULL otherwise); owned by the result */
    size_t len;
    double total_ms;   /* fetch_start to completion, every hop included */
    double connect_ms; /* last hop: until the TCP connection was up (0 for a reused one) */
    double ttfb_ms;    /* last hop: until the first response byte */
    int redirects;     /* hops followed */
    int connections;   /* new connections opened, all hops: 0 when every hop reused one */
    int host_waits;    /* hops that waited for their host (the gate) */
    double host_wait_ms; /* time they waited, all hops together (no fetch timeout runs then) */

    /* Private: the part of the engine's byte budget the body holds, given back when the body is
     * freed (fetch_result_drop_body, fetch_result_free). Once delivered, engine is set only
     * while the body is listed in the engine's holders, which forgets them if it is freed
     * first. */
    struct fetch_engine *engine;
    size_t budget;
    int listed;
    struct fetch_result *hprev, *hnext;
};

/* Politeness (hosts.h): the gate is asked before each hop is sent (each redirect hop is a request
 * to its own host) and told how the hop ended. A hop its host answered with 429 waits for the
 * gate again and is sent again, without failing the fetch: waiting for a host is no attempt. */
enum fetch_hop_end {
    FETCH_HOP_ANSWERED, /* a response came, with its status */
    FETCH_HOP_FAILED,   /* connect, DNS, TLS or network error */
    FETCH_HOP_TIMEOUT,
    FETCH_HOP_LOCAL, /* stopped here before the host was involved (a refused address) */
};
struct fetch_gate {
    /* A ticket, then go(f, waited) on the loop (never inside ask) once the hop may go; NULL: go
     * now without a ticket. */
    void *(*ask)(void *ctx, const char *url, void (*go)(void *f, int waited), void *f);
    void (*done)(void *ticket, enum fetch_hop_end end, long http_code, long retry_after_ms,
                 double ms);
    void (*drop)(void *ticket); /* the fetch is cancelled with its ticket */
    void *ctx;
};

/* Called on the loop thread, never from inside fetch_start or fetch_cancel. The callee owns
 * res (release with fetch_result_free); the struct fetch is already gone when this runs. It
 * may start and cancel other fetches, but must not free the engine. */
typedef void fetch_done_fn(struct fetch_result *res, void *arg);

/* `s` (allowed hosts, connect_to, ca_file) must outlive the engine. Host names among the
 * connect-to targets are resolved here, once, to learn the addresses exempt from netguard: call
 * it before the loop runs. NULL with a message in err on failure. */
struct fetch_engine *fetch_engine_new(struct event_base *base, const struct settings *s,
                                      const struct fetch_limits *lim, char *err, size_t errlen);

/* Start downloading `url` (absolute http/https URL, at most URL_MAX bytes). A URL refused before
 * any connection still completes through done, on a later loop iteration. NULL only when out of
 * memory (done is then never called).
 *
 * With a byte budget (fetch_limits.memory), a fetch is sent only when its body would fit (by
 * estimate) beside the bodies held and those already sent for; otherwise it waits, first come
 * first served, and its fetch-timeout starts when it is sent. A body takes its Content-Length
 * (max_bytes when it announces none) from the budget at its first byte and gives it back when it
 * is freed; one that does not fit then is stopped and sent again later. */
struct fetch *fetch_start(struct fetch_engine *e, const char *url, fetch_done_fn *done, void *arg);

/* Abort a transfer in flight and free it; done is not called afterwards. */
void fetch_cancel(struct fetch *f);

/* Transfers started and neither done nor cancelled. */
int fetch_active(const struct fetch_engine *e);

/* Free the body of a delivered result and give its bytes back to the budget, keeping the rest
 * (len, final_url, ...): for a caller done with the bytes but not with the result. */
void fetch_result_drop_body(struct fetch_result *r);

/* On the loop thread (before or after the engine is freed). */
void fetch_result_free(struct fetch_result *r);

/* The byte budget now: bytes held by bodies, the estimates of bodies sent for and not arrived,
 * fetches not yet sent for want of room, and transfers stopped at their first byte and queued
 * again so far (their length did not fit). */
struct fetch_budget_state {
    size_t held;
    size_t pending;
    int queued;
    long requeued;
};
void fetch_budget_state(const struct fetch_engine *e, struct fetch_budget_state *st);

/* Put every later hop through the gate (copied). Fetches already started are not. */
void fetch_engine_gate(struct fetch_engine *e, const struct fetch_gate *g);

/* Cancels whatever is still in flight (no done calls), then frees everything. */
void fetch_engine_free(struct fetch_engine *e);

/* Transfers of other modules on the engine's multi (the raw store's S3 requests): the caller
 * sets `easy` up (CURLOPT_PRIVATE is the engine's) and keeps owning it. done runs on the loop
 * thread once curl is finished with it, the handle already off the multi; it may add the same
 * handle again. 0, or -1 when out of memory or curl refuses (done is then never called). These
 * transfers share the engine's connections but neither its byte budget nor fetch_active. */
int fetch_engine_add(struct fetch_engine *e, CURL *easy,
                     void (*done)(CURL *easy, CURLcode rc, void *arg), void *arg);

/* Takes a handle given to fetch_engine_add and not yet done off the multi; done is not called.
 * fetch_engine_free does this for those left. */
void fetch_engine_remove(struct fetch_engine *e, CURL *easy);

#endif
