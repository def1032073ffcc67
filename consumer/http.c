/* http.c -- /healthz, /readyz, /metrics on the worker's own loop.
 *
 * The listener faces whatever can reach it, so it is guarded: /metrics and /images need the
 * bearer token when one is set (compared in constant time); /healthz and /readyz stay open for
 * probes. Connections are capped, and each must send a whole request head within the header
 * timeout: evhttp's own timeout restarts on every byte, so a client trickling one byte at a time
 * would hold a connection for ever. libevent 2.1 has no connection cap nor connection-open hook,
 * so the listener makes each connection's bufferevent itself (evhttp_set_bevcb), keeps a
 * reference to it and sweeps the list on a timer: a bufferevent evhttp has freed has no
 * callbacks any more; a live one past its deadline is shut down, which evhttp sees as EOF.
 *
 * /healthz answers from the loop thread, so an answer proves the loop turns: a worker stuck in a
 * blocking call (which must never happen) fails its liveness probe. /readyz asks the worker
 * (Redis links up, group there, MongoDB answered its last ping, chain loaded). /images is handed
 * to the worker, which reads MongoDB off the loop (images.c). */
#include "http.h"

#include "config.h"
#include "log.h"

#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

struct http_conn {
    struct http *h;
    struct bufferevent *bev; /* referenced by us too, so it outlives evhttp's free */
    int64_t deadline_ms;     /* monotonic; the request head must be in by then */
    int busy;                /* a request is being answered: no head is awaited */
    int refuse;              /* over the cap: shut at once */
    LIST_ENTRY(http_conn) link;
};

struct http {
    struct event_base *base;
    struct evhttp *srv;
    struct evhttp_bound_socket *sock;
    struct event *sweep;
    struct http_hooks hooks;
    void *arg;
    char token[HTTP_TOKEN_MAX + 1];
    size_t token_len;
    long max_conns, header_ms;
    int nconns;
    long long refused, timed_out;
    LIST_HEAD(, http_conn) conns;
};

static int64_t http_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- connections: cap and header deadline ---- */

static int http_conn_alive(const struct http_conn *c)
{
    bufferevent_data_cb rcb = NULL;
    bufferevent_getcb(c->bev, &rcb, NULL, NULL, NULL);
    return rcb != NULL;
}

static void http_conn_shut(struct http_conn *c)
{
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
}

static void http_conn_drop(struct http_conn *c)
{
    LIST_REMOVE(c, link);
    c->h->nconns--;
    bufferevent_decref(c->bev);
    free(c);
}

/* Forgets the connections evhttp has closed, so the count is that of open ones. */
static void http_forget_closed(struct http *h)
{
    struct http_conn *c = LIST_FIRST(&h->conns), *next;
    for (; c != NULL; c = next) {
        next = LIST_NEXT(c, link);
        if (!http_conn_alive(c))
            http_conn_drop(c);
    }
}

static void http_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct http *h = arg;
    int64_t now = http_now_ms();
    struct http_conn *c = LIST_FIRST(&h->conns), *next;
    (void)fd;
    (void)what;
    for (; c != NULL; c = next) {
        next = LIST_NEXT(c, link);
        if (!http_conn_alive(c)) {
            http_conn_drop(c);
        } else if (c->refuse || (!c->busy && now >= c->deadline_ms)) {
            if (!c->refuse)
                h->timed_out++;
            http_conn_shut(c);
            c->refuse = 0;
            c->deadline_ms = INT64_MAX; /* shut once; dropped when evhttp has freed it */
        }
    }
}

/* evhttp asks for each accepted connection's bufferevent; the fd is set on it afterwards. */
static struct bufferevent *http_new_bev(struct event_base *base, void *arg)
{
    struct http *h = arg;
    /* Without BEV_OPT_CLOSE_ON_FREE evhttp closes the socket itself when it frees the connection,
     * so our reference keeps only the struct, never an open socket. */
    struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);
    http_forget_closed(h);
    struct http_conn *c = bev ? calloc(1, sizeof(*c)) : NULL;
    if (c == NULL)
        return bev; /* untracked but working; out of memory is not the client's fault */
    c->h = h;
    c->bev = bev;
    c->deadline_ms = http_now_ms() + h->header_ms;
    bufferevent_incref(bev);
    LIST_INSERT_HEAD(&h->conns, c, link);
    if (++h->nconns > h->max_conns) {
        c->refuse = 1;
        if (h->refused++ == 0)
            log_warn("event=http_connections_full max=%ld note=\"refusing more\"", h->max_conns);
        event_active(h->sweep, EV_TIMEOUT, 0); /* shut it once evhttp has set the fd */
    }
    return bev;
}

static struct http_conn *http_conn_of(struct http *h, struct evhttp_request *req)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evhttp_request_get_connection(req));
    struct http_conn *c;
    for (c = LIST_FIRST(&h->conns); c != NULL; c = LIST_NEXT(c, link))
        if (c->bev == bev)
            return c;
    return NULL;
}

/* The answer is sent: the next request head on this connection must come in time too. */
static void http_on_complete(struct evhttp_request *req, void *arg)
{
    struct http_conn *c = arg;
    (void)req;
    c->busy = 0;
    c->deadline_ms = http_now_ms() + c->h->header_ms;
}

/* ---- the token ---- */

/* Constant time in the token's content: every byte of the longer length is compared. */
static int http_token_equal(const char *given, size_t glen, const char *want, size_t wlen)
{
    unsigned char diff = glen != wlen;
    size_t n = glen > wlen ? glen : wlen;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)((i < glen ? given[i] : 0) ^ (i < wlen ? want[i] : 0));
    return diff == 0;
}

static int http_authorized(const struct http *h, struct evhttp_request *req)
{
    if (h->token_len == 0)
        return 1;
    const char *a = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (a == NULL || strncasecmp(a, "Bearer ", 7) != 0)
        return 0;
    a += 7;
    while (*a == ' ')
        a++;
    size_t n = strlen(a);
    while (n > 0 && a[n - 1] == ' ')
        n--;
    return http_token_equal(a, n, h->token, h->token_len);
}

static void http_reply(struct evhttp_request *req, int code, const char *type,
                       struct evbuffer *body)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
    evhttp_send_reply(req, code,
                      code == 200   ? "OK"
                      : code == 401 ? "Unauthorized"
                      : code == 404 ? "Not Found"
                      : code == 405 ? "Method Not Allowed"
                                    : "Service Unavailable",
                      body);
}

static void http_on_request(struct evhttp_request *req, void *arg)
{
    struct http *h = arg;
    struct http_conn *c = http_conn_of(h, req);
    if (c != NULL) {
        c->busy = 1;
        evhttp_request_set_on_complete_cb(req, http_on_complete, c);
    }
    struct evbuffer *body = evbuffer_new();
    if (body == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    int guarded = path && (strcmp(path, "/metrics") == 0 || strncmp(path, "/images", 7) == 0);
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        evbuffer_add_printf(body, "GET only\n");
        http_reply(req, 405, "text/plain", body);
    } else if (guarded && !http_authorized(h, req)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Bearer realm=\"pixflow\"");
        evbuffer_add_printf(body, "a bearer token is required\n");
        http_reply(req, 401, "text/plain", body);
    } else if (path && strcmp(path, "/healthz") == 0) {
        evbuffer_add_printf(body, "ok\n");
        http_reply(req, 200, "text/plain", body);
    } else if (path && strcmp(path, "/readyz") == 0) {
        char why[256] = "";
        int ready = h->hooks.ready(h->arg, why, sizeof(why));
        evbuffer_add_printf(body, "%s\n", ready ? "ready" : why);
        http_reply(req, ready ? 200 : 503, "text/plain", body);
    } else if (path && strcmp(path, "/metrics") == 0) {
        h->hooks.metrics(h->arg, body);
        http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", body);
    } else if (path && h->hooks.images && strncmp(path, "/images", 7) == 0 &&
               (path[7] == '\0' || path[7] == '/')) {
        h->hooks.images(h->arg, req); /* it replies, now or when MongoDB has answered */
    } else {
        evbuffer_add_printf(body, "not found: /healthz, /readyz, /metrics and /images are "
                                  "served here\n");
        http_reply(req, 404, "text/plain", body);
    }
    evbuffer_free(body);
}

struct http *http_new(struct event_base *base, const char *addr, const struct settings *s,
                      const struct http_hooks *hooks, void *arg, char *err, size_t errlen)
{
    char host[CFG_HOST_MAX];
    int port;
    if (cfg_split_hostport(addr, host, &port, err, errlen) < 0)
        return NULL;
    size_t tlen = s->http_token ? strlen(s->http_token) : 0;
    if (tlen > HTTP_TOKEN_MAX) {
        snprintf(err, errlen, "--http-token: longer than %d characters", HTTP_TOKEN_MAX);
        return NULL;
    }

    struct http *h = calloc(1, sizeof(*h));
    if (h == NULL || (h->srv = evhttp_new(base)) == NULL ||
        (h->sweep = event_new(base, -1, EV_PERSIST, http_sweep, h)) == NULL) {
        snprintf(err, errlen, "--http: out of memory");
        if (h && h->srv)
            evhttp_free(h->srv);
        free(h);
        return NULL;
    }
    LIST_INIT(&h->conns);
    h->base = base;
    h->hooks = *hooks;
    h->arg = arg;
    memcpy(h->token, s->http_token ? s->http_token : "", tlen);
    h->token_len = tlen;
    h->max_conns = s->http_max_conns > 0 ? s->http_max_conns : 64;
    h->header_ms = s->http_header_ms > 0 ? s->http_header_ms : 5000;
    long tick = h->header_ms / 4 < 50 ? 50 : h->header_ms / 4 > 1000 ? 1000 : h->header_ms / 4;
    struct timeval tv = {tick / 1000, (tick % 1000) * 1000};
    event_add(h->sweep, &tv);
    evhttp_set_bevcb(h->srv, http_new_bev, h);
    evhttp_set_allowed_methods(h->srv, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
    evhttp_set_timeout(h->srv, 10);
    evhttp_set_max_headers_size(h->srv, 16384);
    evhttp_set_max_body_size(h->srv, 0);
    evhttp_set_gencb(h->srv, http_on_request, h);
    h->sock = evhttp_bind_socket_with_handle(h->srv, host, (ev_uint16_t)port);
    if (h->sock == NULL) {
        snprintf(err, errlen, "--http: cannot listen on %s", addr);
        http_free(h);
        return NULL;
    }
    return h;
}

int http_port(const struct http *h)
{
    struct sockaddr_storage ss;
    ev_socklen_t len = sizeof(ss);
    evutil_socket_t fd = evhttp_bound_socket_get_fd(h->sock);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

void http_free(struct http *h)
{
    if (h == NULL)
        return;
    evhttp_free(h->srv); /* frees every connection: our references are the last ones */
    while (!LIST_EMPTY(&h->conns))
        http_conn_drop(LIST_FIRST(&h->conns));
    if (h->sweep)
        event_free(h->sweep);
    free(h);
}
