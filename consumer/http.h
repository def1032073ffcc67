/* http.h -- the worker's small HTTP listener (evhttp, on the worker's loop): /healthz, /readyz
 * and /metrics for Kubernetes and Prometheus, /images for reading stored pictures. Off unless
 * --http ADDR:PORT is given. */
#ifndef PIXFLOW_HTTP_H
#define PIXFLOW_HTTP_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "settings.h"

struct http_hooks {
    /* 1 when ready to take work; otherwise 0 with what is missing in `why`. */
    int (*ready)(void *arg, char *why, size_t len);
    void (*metrics)(void *arg, struct evbuffer *out);
    /* Answers /images and /images/... (may answer later, from the loop); NULL: not served. */
    void (*images)(void *arg, struct evhttp_request *req);
};

#define HTTP_TOKEN_MAX 512

/* addr is "HOST:PORT" (cfg_split_hostport; port 0: any free port); the token, connection cap and header timeout come from s
 * (SET_HTTP). NULL with err when it cannot listen. */
struct http *http_new(struct event_base *base, const char *addr, const struct settings *s,
                      const struct http_hooks *hooks, void *arg, char *err, size_t errlen);
int http_port(const struct http *h); /* the port bound */
void http_free(struct http *h);

#endif
