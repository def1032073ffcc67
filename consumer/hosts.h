/* hosts.h -- politeness (SPEC §5.8): the requests the whole fleet sends each source host, shared
 * through Redis in one script call per request.
 *
 * Before each request (each redirect hop is a request to its own host) the fetch engine asks;
 * the answer comes later, on the loop, through the go function. A request that waited for a
 * host's rate, its requests at once, a pause (429/503) or an open circuit says so to go. When the
 * request ends, hosts_done gives its slot back and tells how the host answered, which drives the
 * pause, the circuit breaker and the adaptive concurrency of every worker.
 *
 * Without Redis, a worker keeps its own share of each limit (the limit divided by the workers
 * last seen asking), never no limit. */
#ifndef PIXFLOW_HOSTS_H
#define PIXFLOW_HOSTS_H

#include <event2/buffer.h>
#include <event2/event.h>

#include "fetch.h"
#include "settings.h"

struct hosts;
struct host_ticket;

/* How a request ended, as far as its host is concerned. */
enum host_outcome {
    HOST_NEUTRAL = 0, /* it never reached the host (refused here): only the slot comes back */
    HOST_OK = 1,      /* the host answered (2xx, 3xx, 4xx other than 429) */
    HOST_BUSY = 2,    /* 429: pause the host */
    HOST_DOWN = 3,    /* 503: pause the host, and a failure */
    HOST_FAILED = 4,  /* other 5xx, connect, DNS, TLS, network error: a failure */
    HOST_SLOW = 5,    /* timeout: a failure, and concurrency comes down */
};

/* Circuit states, as the script keeps them. */
enum { HOST_CLOSED = 0, HOST_OPEN = 1, HOST_HALF_OPEN = 2 };

/* Called on the loop, never inside hosts_ask: the request may start. waited: it waited for the
 * host (limit, pause, circuit), not only for Redis to answer. */
typedef void hosts_go_fn(void *arg, int waited);

/* A request holds its slot for at most the fetch timeout plus this margin: the slots of a worker
 * killed with them come back after that. */
#define HOSTS_LEASE_MARGIN_MS 5000
/* An ask unanswered for this long (or redis_timeout_ms if shorter) is decided alone. */
#define HOSTS_ASK_TIMEOUT_MS 2000

struct hosts *hosts_new(struct event_base *base, const struct settings *s, long fetch_timeout_ms,
                        long redis_timeout_ms, char *err, size_t errlen);
void hosts_free(struct hosts *hs);

/* Ask to send a request to the host of `url`. NULL when out of memory or the URL names no host:
 * the caller then goes without asking. */
struct host_ticket *hosts_ask(struct hosts *hs, const char *url, hosts_go_fn *go, void *arg);
/* The request ended; the ticket is freed. */
void hosts_done(struct host_ticket *t, enum host_outcome o, long retry_after_ms, double ms);
/* The request is abandoned (waiting, or in flight); the ticket is freed. */
void hosts_drop(struct host_ticket *t);

/* The fetch engine's gate (fetch_engine_gate) on these hosts. */
void hosts_gate(struct hosts *hs, struct fetch_gate *g);

/* Requests waiting for their host, all hosts together. */
int hosts_waiting(const struct hosts *hs);

/* Work and waiting apart. A request its host made wait (rate, requests at once, pause, circuit)
 * is parked: it holds no connection and no body, so it is no work of the worker's. Before it
 * asks again it takes room, which room(arg) tells (requests the worker may take on now, <= 0:
 * none); without room its host is starved until hosts_resume. Without a room function parked
 * requests go on whenever their host allows. */
void hosts_room(struct hosts *hs, int (*room)(void *arg), void *arg);
/* Requests parked now, all hosts (0 for NULL). */
int hosts_parked(const struct hosts *hs);
/* Room may have come: starved hosts ask again, as far as room allows. The worker calls it
 * before it reads new work, so that what waited goes first. */
void hosts_resume(struct hosts *hs);

/* What a worker shows of one host (/metrics). */
struct host_view {
    const char *host;
    long long waits;    /* requests that waited */
    long long requests; /* requests let through */
    int waiting;        /* waiting now */
    int mine;           /* this worker's requests to it in flight */
    int limit;          /* requests at once now (adaptive), fleet-wide */
    double rate;        /* the configured rate */
    long pause_ms;      /* pause left, as last heard */
    int circuit;        /* HOST_CLOSED, HOST_OPEN, HOST_HALF_OPEN */
    int local;          /* deciding alone: Redis is unreachable */
};
/* Calls fn for each host seen so far. */
void hosts_each(const struct hosts *hs, void (*fn)(void *arg, const struct host_view *v),
                void *arg);

/* Script calls sent and requests let through since the start (coordination cost). */
void hosts_calls(const struct hosts *hs, long long *calls, long long *requests);

/* Each host's figures in the Prometheus text format, for /metrics. */
void hosts_metrics(const struct hosts *hs, struct evbuffer *out);

#endif
