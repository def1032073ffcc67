/* http.c -- /healthz, /readyz, /metrics on the worker's own loop.
 *
 * /healthz answers from the loop thread, so an answer proves the loop turns: a worker stuck in a
 * blocking call (which must never happen) fails its liveness probe. /readyz asks the worker
 * (Redis links up, group there, MongoDB answered its last ping, chain loaded). /images is handed
 * to the worker, which reads MongoDB off the loop (images.c). */
#include "http.h"

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct http {
    struct evhttp *srv;
    struct evhttp_bound_socket *sock;
    struct http_hooks hooks;
    void *arg;
};

static void http_reply(struct evhttp_request *req, int code, const char *type,
                       struct evbuffer *body)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
    evhttp_send_reply(req, code,
                      code == 200   ? "OK"
                      : code == 404 ? "Not Found"
                      : code == 405 ? "Method Not Allowed"
                                    : "Service Unavailable",
                      body);
}

static void http_on_request(struct evhttp_request *req, void *arg)
{
    struct http *h = arg;
    struct evbuffer *body = evbuffer_new();
    if (body == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        evbuffer_add_printf(body, "GET only\n");
        http_reply(req, 405, "text/plain", body);
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

int http_parse_addr(const char *addr, char host[HTTP_HOST_MAX], int *port, char *err, size_t errlen)
{
    const char *colon = strrchr(addr, ':');
    char *end;
    long p = colon ? strtol(colon + 1, &end, 10) : -1;
    if (colon == NULL || colon == addr || (size_t)(colon - addr) >= HTTP_HOST_MAX ||
        end == colon + 1 || *end || p < 0 || p > 65535) {
        snprintf(err, errlen, "'%s' is not HOST:PORT", addr);
        return -1;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    *port = (int)p;
    return 0;
}

struct http *http_new(struct event_base *base, const char *addr, const struct http_hooks *hooks,
                      void *arg, char *err, size_t errlen)
{
    char host[HTTP_HOST_MAX];
    int port;
    if (http_parse_addr(addr, host, &port, err, errlen) < 0)
        return NULL;

    struct http *h = calloc(1, sizeof(*h));
    if (h == NULL || (h->srv = evhttp_new(base)) == NULL) {
        snprintf(err, errlen, "--http: out of memory");
        free(h);
        return NULL;
    }
    h->hooks = *hooks;
    h->arg = arg;
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
    evhttp_free(h->srv);
    free(h);
}
