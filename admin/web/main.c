/* main.c -- pixflow-web: the console's server: settings, the listener, routing, replies.
 *
 * Every page is static (HTML, CSS, JS compiled in from admin/web/static by the build) and reads
 * its data from /api/..., so scripts use the same JSON as the pages. Without PIXFLOW_WEB_TOKEN
 * the server only listens on loopback, and then also refuses requests whose Host header names
 * anything else: a page elsewhere cannot rebind a DNS name to 127.0.0.1 and read the console. */
#include "web.h"

#include "admin.h"
#include "listen.h"
#include "names.h"
#include "rconn.h"
#include "store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define PROG      "pixflow-web"
#define BODY_MAX  65536
#define JSON_TYPE "application/json; charset=utf-8"

/* What the build embeds from admin/web/static (assets.c, generated). */
struct web_asset {
    const char *path, *type;
    const unsigned char *data;
    size_t len;
};
extern const struct web_asset web_assets[];
extern const size_t web_nassets;

static const char synopsis[] =
    "pixflow-web [--listen HOST:PORT] (also: pixflow web)\n\n"
    "The console: a web page to watch the pipeline (counters and rates, backlog, pending work,\n"
    "workers, dead letters, a throughput chart), list and replay dead letters, follow one URL\n"
    "through the system, and browse the stored pictures; the JSON behind every page is under\n"
    "/api/. With PIXFLOW_WEB_TOKEN set every request needs it (Authorization: Bearer TOKEN, or\n"
    "the login form's cookie); without it the console listens on loopback only.\n"
    "Exit: 0 stopped by a signal, 1 a server or the listener failed, 2 bad usage";

static struct web web;
static struct event_base *base;

static const struct cfg_option own_options[] = {
    {"listen", "PIXFLOW_WEB_LISTEN", cfg_hostport, &web.listen, "127.0.0.1:8090",
     .meta = "HOST:PORT", .help = "where to serve (port 0: any free port, printed at start)"},
    {"token", "PIXFLOW_WEB_TOKEN", cfg_string, &web.token, "", .meta = "TOKEN",
     .help = "the secret every request must carry; required to listen beyond loopback"},
    {NULL},
};

/* ---- replies ---- */

int web_out_open(struct web_out *o)
{
    memset(o, 0, sizeof(*o));
    o->f = open_memstream(&o->buf, &o->len);
    if (o->f == NULL)
        return -1;
    json_init(&o->j, o->f);
    return 0;
}

void web_send(struct evhttp_request *req, int code, const char *type, const void *data, size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    struct evbuffer *b = evbuffer_new();
    evhttp_add_header(h, "Content-Type", type);
    if (b == NULL || evbuffer_add(b, data, len) < 0) {
        evhttp_send_error(req, 500, "out of memory");
    } else {
        static const char *const reasons[][2] = {
            {"200", "OK"},           {"303", "See Other"},
            {"304", "Not Modified"}, {"400", "Bad Request"},
            {"401", "Unauthorized"}, {"403", "Forbidden"},
            {"404", "Not Found"},    {"405", "Method Not Allowed"},
            {"413", "Too Large"},    {"500", "Internal Server Error"},
            {"502", "Bad Gateway"},
        };
        const char *reason = "Status";
        char num[8];
        snprintf(num, sizeof(num), "%d", code);
        for (size_t i = 0; i < sizeof(reasons) / sizeof(*reasons); i++)
            if (strcmp(reasons[i][0], num) == 0)
                reason = reasons[i][1];
        evhttp_send_reply(req, code, reason, b);
    }
    if (b)
        evbuffer_free(b);
}

void web_out_send(struct evhttp_request *req, struct web_out *o, int code)
{
    if (o->f == NULL || fclose(o->f) != 0) {
        free(o->buf);
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
    web_send(req, code, JSON_TYPE, o->buf, o->len);
    free(o->buf);
    memset(o, 0, sizeof(*o));
}

void web_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct web_out o;
    if (web_out_open(&o) < 0) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    json_object(&o.j);
    json_kv_str(&o.j, "error", msg);
    json_end(&o.j);
    web_out_send(req, &o, code);
}

void web_out_fail(struct evhttp_request *req, struct web_out *o, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (o->f)
        fclose(o->f);
    free(o->buf);
    memset(o, 0, sizeof(*o));
    web_error(req, code, "%s", msg);
}

static void web_asset(struct evhttp_request *req, const char *path)
{
    for (size_t i = 0; i < web_nassets; i++) {
        if (strcmp(web_assets[i].path, path) != 0)
            continue;
        evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-cache");
        web_send(req, 200, web_assets[i].type, web_assets[i].data, web_assets[i].len);
        return;
    }
    web_error(req, 404, "no such page: %s", path);
}

static void web_redirect(struct evhttp_request *req, const char *to)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Location", to);
    web_send(req, 303, "text/plain; charset=utf-8", "", 0);
}

/* ---- shared connections and request pieces ---- */

redisContext *web_redis(struct web *w, char *err, size_t errlen)
{
    if (w->r && w->r->err) {
        redisFree(w->r);
        w->r = NULL;
    }
    if (w->r == NULL)
        w->r = rconn_open(&w->s.redis, w->timeout_ms, err, errlen);
    return w->r;
}

void web_redis_check(struct web *w)
{
    if (w->r && w->r->err) {
        redisFree(w->r);
        w->r = NULL;
    }
}

char *web_param(const char *query, const char *name)
{
    struct evkeyvalq kv;
    TAILQ_INIT(&kv);
    if (query == NULL || evhttp_parse_query_str(query, &kv) < 0) {
        evhttp_clear_headers(&kv);
        return NULL;
    }
    const char *v = evhttp_find_header(&kv, name);
    char *out = v ? strdup(v) : NULL;
    evhttp_clear_headers(&kv);
    return out;
}

char *web_body(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > BODY_MAX)
        return NULL;
    char *body = malloc(len + 1);
    if (body == NULL)
        return NULL;
    evbuffer_copyout(in, body, len);
    body[len] = '\0';
    return body;
}

/* ---- the listener ---- */

/* Without a token: the Host header must name a loopback host (DNS rebinding). */
static int web_host_ok(struct evhttp_request *req)
{
    return web.token[0] ||
           listen_host_ok(evhttp_find_header(evhttp_request_get_input_headers(req), "Host"));
}

static void web_session(struct evhttp_request *req, const char *sid)
{
    struct web_out o;
    char csrf[65];
    auth_csrf(&web, sid, csrf);
    if (web_out_open(&o) < 0) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    json_object(&o.j);
    json_key(&o.j, "token_required");
    json_bool(&o.j, web.token[0] != '\0');
    json_kv_str(&o.j, "csrf", sid[0] ? csrf : NULL);
    json_kv_str(&o.j, "prefix", web.s.prefix);
    json_kv_str(&o.j, "group", web.s.group);
    json_kv_str(&o.j, "version", PIXFLOW_VERSION);
    json_end(&o.j);
    web_out_send(req, &o, 200);
}

/* A POST that changes something: its form, and the session's CSRF token unless the Bearer token
 * came with it, before `handle` runs. */
static void web_post(struct evhttp_request *req, enum evhttp_cmd_type method, const char *sid,
                     int bearer, const char *what,
                     void (*handle)(struct web *, struct evhttp_request *, const char *))
{
    if (method != EVHTTP_REQ_POST) {
        web_error(req, 405, "%s is a POST", what);
        return;
    }
    char *form = web_body(req);
    if (form == NULL)
        web_error(req, 413, "request body too large");
    else if (!auth_csrf_ok(&web, req, sid, bearer, form))
        web_error(req, 403, "missing or wrong CSRF token (X-CSRF-Token, from /api/session)");
    else
        handle(&web, req, form);
    free(form);
}

static void web_on_request(struct evhttp_request *req, void *arg)
{
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    int get = method == EVHTTP_REQ_GET || method == EVHTTP_REQ_HEAD;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "X-Frame-Options", "DENY");
    evhttp_add_header(h, "Referrer-Policy", "no-referrer");
    evhttp_add_header(h, "Content-Security-Policy",
                      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                      "connect-src 'self'; form-action 'self'; frame-ancestors 'none'");
    if (path == NULL)
        path = "/";
    if (!web_host_ok(req)) {
        web_error(req, 403, "Host header names no loopback host");
        return;
    }
    /* What the login page needs comes without a session. */
    if (strcmp(path, "/login") == 0) {
        if (method == EVHTTP_REQ_POST)
            auth_login(&web, req);
        else
            web_asset(req, "/login.html");
        return;
    }
    if (strcmp(path, "/style.css") == 0 || strcmp(path, "/login.js") == 0) {
        web_asset(req, path);
        return;
    }
    char sid[AUTH_SID_MAX];
    int bearer = 0;
    int api = strncmp(path, "/api/", 5) == 0;
    if (!auth_check(&web, req, sid, &bearer)) {
        if (api)
            web_error(req, 401, "this console needs its token: Authorization: Bearer TOKEN");
        else
            web_redirect(req, "/login");
        return;
    }
    if (strcmp(path, "/logout") == 0) {
        auth_logout(&web, req);
        return;
    }
    if (strcmp(path, "/api/reprocess") == 0) {
        web_post(req, method, sid, bearer, "queueing a rendition", gallery_reprocess);
        return;
    }
    if (strcmp(path, "/api/dead/replay") == 0) {
        web_post(req, method, sid, bearer, "replay", letters_replay);
        return;
    }
    if (!get) {
        web_error(req, 405, "%s takes GET", path);
        return;
    }
    if (strcmp(path, "/api/session") == 0)
        web_session(req, sid);
    else if (strcmp(path, "/api/overview") == 0)
        overview_get(&web, req);
    else if (strcmp(path, "/api/dead") == 0)
        letters_get(&web, req);
    else if (strcmp(path, "/api/search") == 0)
        search_get(&web, req);
    else if (strcmp(path, "/api/images") == 0)
        gallery_list(&web, req);
    else if (strncmp(path, "/api/images/", 12) == 0)
        gallery_image(&web, req, path + 12);
    else if (strncmp(path, "/api/originals/", 15) == 0)
        gallery_original(&web, req, path + 15);
    else if (api)
        web_error(req, 404, "no such API: %s", path);
    else if (strcmp(path, "/") == 0)
        web_asset(req, "/index.html");
    else
        web_asset(req, path);
}

static void web_on_tick(evutil_socket_t fd, short what, void *arg)
{
    overview_sample(&web);
}

static void web_on_signal(evutil_socket_t sig, short what, void *arg)
{
    event_base_loopexit(base, NULL);
}

/* The port actually bound (--listen HOST:0). */
static int web_bound_port(struct evhttp_bound_socket *sock)
{
    struct sockaddr_storage ss;
    ev_socklen_t len = sizeof(ss);
    if (getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static int web_run(void)
{
    char host[CFG_HOST_MAX], err[1024];
    int port, rc = ADMIN_FAIL;
    struct evhttp *http = NULL;
    struct event *tick = NULL, *sigint = NULL, *sigterm = NULL;
    if (cfg_split_hostport(web.listen, host, &port, err, sizeof(err)) < 0)
        return admin_fail("web", ADMIN_USAGE, "--listen: %s", err);
    if (!web.token[0] && !listen_loopback(host))
        return admin_fail("web", ADMIN_USAGE,
                          "--listen %s: not a loopback address; set PIXFLOW_WEB_TOKEN to serve "
                          "beyond this machine",
                          web.listen);
    if (auth_init(&web, err, sizeof(err)) < 0)
        return admin_fail("web", ADMIN_FAIL, "%s", err);
    web.m = mdb_new(web.s.mongo_uri, web.timeout_ms, err, sizeof(err));
    if (web.m == NULL)
        return admin_fail("web", ADMIN_FAIL, "%s", err);
    web.sources = mongoc_database_get_collection(web.m->db, COLL_SOURCES);
    if (web.s.raw.kind != RAW_NONE) {
        web.raw = raw_new(&web.s.raw, NULL, err, sizeof(err));
        if (web.raw == NULL)
            return admin_fail("web", ADMIN_FAIL, "raw store: %s", err);
    }
    settings_key(&web.s, KEY_STREAM, web.k_stream, sizeof(web.k_stream));
    settings_key(&web.s, KEY_DEAD, web.k_dead, sizeof(web.k_dead));
    settings_key(&web.s, KEY_SEEN, web.k_seen, sizeof(web.k_seen));
    settings_key(&web.s, KEY_STATS, web.k_stats, sizeof(web.k_stats));

    base = event_base_new();
    http = base ? evhttp_new(base) : NULL;
    if (http == NULL) {
        admin_fail("web", ADMIN_FAIL, "out of memory");
        goto done;
    }
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
    evhttp_set_timeout(http, 30);
    evhttp_set_max_headers_size(http, 16384);
    evhttp_set_max_body_size(http, BODY_MAX);
    evhttp_set_gencb(http, web_on_request, NULL);
    struct evhttp_bound_socket *sock =
        evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port);
    if (sock == NULL) {
        admin_fail("web", ADMIN_FAIL, "--listen %s: cannot listen there: %s", web.listen,
                   strerror(errno));
        goto done;
    }
    struct timeval every = {WEB_SAMPLE_MS / 1000, (WEB_SAMPLE_MS % 1000) * 1000};
    tick = event_new(base, -1, EV_PERSIST, web_on_tick, NULL);
    sigint = evsignal_new(base, SIGINT, web_on_signal, NULL);
    sigterm = evsignal_new(base, SIGTERM, web_on_signal, NULL);
    if (tick == NULL || sigint == NULL || sigterm == NULL || event_add(tick, &every) < 0 ||
        event_add(sigint, NULL) < 0 || event_add(sigterm, NULL) < 0) {
        admin_fail("web", ADMIN_FAIL, "cannot set up the event loop");
        goto done;
    }
    signal(SIGPIPE, SIG_IGN);
    overview_sample(&web);
    int bound = web_bound_port(sock);
    printf("%s: listening on http://%s%s%s:%d/%s\n", PROG, strchr(host, ':') ? "[" : "", host,
           strchr(host, ':') ? "]" : "", bound, web.token[0] ? " (token required)" : "");
    fflush(stdout);
    event_base_dispatch(base);
    rc = ADMIN_OK;
done:
    if (tick)
        event_free(tick);
    if (sigint)
        event_free(sigint);
    if (sigterm)
        event_free(sigterm);
    if (http)
        evhttp_free(http);
    if (base)
        event_base_free(base);
    overview_free(&web);
    if (web.r)
        redisFree(web.r);
    if (web.sources)
        mongoc_collection_destroy(web.sources);
    mdb_free(web.m);
    raw_free(web.raw);
    return rc;
}

int main(int argc, char **argv)
{
    struct admin_common common;
    char **ops;
    int nops, status;
    argv[0] = "web";
    /* SET_PLUGINS: PIXFLOW_TRANSFORMS is the `default` rendition the picture page shows. */
    if (admin_settings(&web.s,
                       SET_REDIS | SET_MONGO | SET_GROUP | SET_HOSTS | SET_RAW | SET_PLUGINS,
                       own_options, &common, "web", synopsis, argc, argv, &ops, &nops, &status) < 0)
        return status;
    if (nops > 0) {
        admin_done();
        return admin_fail("web", ADMIN_USAGE, "%s: unexpected operand (try --help)", ops[0]);
    }
    web.timeout_ms = common.timeout_ms;
    store_global_init();
    int rc = web_run();
    store_global_cleanup();
    admin_done();
    return rc;
}
