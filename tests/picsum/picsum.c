/* picsum.c -- pixflow-picsum: a local stand-in for picsum.photos over HTTP and HTTPS, for the
 * demo, the integration tests and the benchmarks (which have no internet). Command line, listeners,
 * TLS hookup, ready file and signals live here; request handling is in serve.c. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ssl.h>

#include "fault.h"
#include "serve.h"
#include "tls.h"

#define PICSUM_PROG             "pixflow-picsum"
#define PICSUM_DEFAULT_CACHE_MB 256
#define PICSUM_HTTP_TIMEOUT_S   60
#define PICSUM_MAX_HEADERS      (64 * 1024)
#define PICSUM_MAX_BODY         (64 * 1024)

struct picsum_opts {
    const char *listen;
    int http_port;
    int https_port;
    const char *state_dir;
    const char *ready_file;
    int have_seed;
    const char *files_dir; /* --files */
    struct serve_config cfg;
};

static void picsum_usage(FILE *f)
{
    fprintf(
        f, "usage: " PICSUM_PROG " [--listen ADDR] [--http-port P] [--https-port P]\n"
           "       [--state-dir DIR] [--ready-file FILE] [--seed N] [--deterministic]\n"
           "       [--cache-mb N] [--fault KIND=RATE]... [--files DIR] [--verbose]\n"
           "A local picsum.photos: GET /W/H redirects to /id/N/W/H.jpg (a progressive JPEG).\n"
           "Ports 0 (the default) are picked free and written to the ready file with the CA path.\n"
           "Fault kinds: 500 502 503 429 404 loop truncate slow garbage bomb notimage.\n"
           "Per request: ?fault=KIND [retry_after=S] [times=N] [to=URL (redirect)], and for slow\n"
           "  delay_ms=MS (the body over MS, at most 60000) or bytes_per_s=N (N bytes a second,\n"
           "  however long that takes).\n"
           "--files DIR: the picture of /W/H is file number W of DIR, in name order.\n");
}

static int picsum_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (s[0] == '\0' || errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int picsum_bad_value(const char *opt, const char *value, const char *why)
{
    fprintf(stderr, PICSUM_PROG ": invalid value '%s' for --%s: %s\n", value, opt, why);
    return -1;
}

enum {
    OPT_LISTEN = 256,
    OPT_HTTP_PORT,
    OPT_HTTPS_PORT,
    OPT_STATE_DIR,
    OPT_READY_FILE,
    OPT_SEED,
    OPT_DETERMINISTIC,
    OPT_CACHE_MB,
    OPT_FAULT,
    OPT_FILES,
    OPT_VERBOSE,
    OPT_HELP,
};

static const struct option picsum_options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"http-port", required_argument, NULL, OPT_HTTP_PORT},
    {"https-port", required_argument, NULL, OPT_HTTPS_PORT},
    {"state-dir", required_argument, NULL, OPT_STATE_DIR},
    {"ready-file", required_argument, NULL, OPT_READY_FILE},
    {"seed", required_argument, NULL, OPT_SEED},
    {"deterministic", no_argument, NULL, OPT_DETERMINISTIC},
    {"cache-mb", required_argument, NULL, OPT_CACHE_MB},
    {"fault", required_argument, NULL, OPT_FAULT},
    {"files", required_argument, NULL, OPT_FILES},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* One option; -1 after printing one line naming it. */
static int picsum_apply_opt(struct picsum_opts *o, int c, const char *name, const char *arg)
{
    char err[256];
    long v;

    switch (c) {
    case OPT_LISTEN:
        o->listen = arg;
        return 0;
    case OPT_HTTP_PORT:
    case OPT_HTTPS_PORT:
        if (picsum_parse_long(arg, 0, 65535, &v) < 0)
            return picsum_bad_value(name, arg, "expected a port 0..65535");
        *(c == OPT_HTTP_PORT ? &o->http_port : &o->https_port) = (int)v;
        return 0;
    case OPT_STATE_DIR:
        o->state_dir = arg;
        return 0;
    case OPT_READY_FILE:
        o->ready_file = arg;
        return 0;
    case OPT_SEED: {
        char *end;

        errno = 0;
        o->cfg.seed = strtoull(arg, &end, 0);
        if (arg[0] == '\0' || arg[0] == '-' || errno != 0 || *end != '\0')
            return picsum_bad_value(name, arg, "expected an unsigned integer");
        o->have_seed = 1;
        return 0;
    }
    case OPT_DETERMINISTIC:
        o->cfg.deterministic = 1;
        return 0;
    case OPT_CACHE_MB:
        if (picsum_parse_long(arg, 0, 1L << 20, &v) < 0)
            return picsum_bad_value(name, arg, "expected megabytes 0..1048576");
        o->cfg.cache_bytes = (size_t)v << 20;
        return 0;
    case OPT_FAULT: {
        enum fault_kind kind;
        double rate;

        if (fault_parse_rate(arg, &kind, &rate, err, sizeof(err)) < 0)
            return picsum_bad_value(name, arg, err);
        o->cfg.rates.rate[kind] = rate;
        return 0;
    }
    case OPT_FILES:
        o->files_dir = arg;
        return 0;
    case OPT_VERBOSE:
        o->cfg.verbose = 1;
        return 0;
    default:
        return -1;
    }
}

/* 0 to run, 1 for --help, -1 on a bad command line (one line printed). */
static int picsum_parse_args(int argc, char **argv, struct picsum_opts *o)
{
    int c, idx;

    memset(o, 0, sizeof(*o));
    o->listen = "127.0.0.1";
    o->state_dir = ".";
    o->cfg.cache_bytes = (size_t)PICSUM_DEFAULT_CACHE_MB << 20;
    fault_rates_init(&o->cfg.rates);
    opterr = 0;
    for (;;) {
        c = getopt_long(argc, argv, ":h", picsum_options, &idx);
        if (c == -1)
            break;
        if (c == 'h' || c == OPT_HELP)
            return 1;
        if (c == '?') {
            fprintf(stderr, PICSUM_PROG ": unknown option '%s'\n", argv[optind - 1]);
            return -1;
        }
        if (c == ':') {
            fprintf(stderr, PICSUM_PROG ": option '%s' needs a value\n", argv[optind - 1]);
            return -1;
        }
        if (picsum_apply_opt(o, c, picsum_options[idx].name, optarg) < 0)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, PICSUM_PROG ": unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!o->have_seed)
        o->cfg.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    return 0;
}

static struct bufferevent *picsum_tls_bev(struct event_base *base, void *arg)
{
    SSL *ssl = SSL_new(arg);
    struct bufferevent *bev;

    if (ssl == NULL)
        return NULL;
    bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL)
        return NULL;
    /* Clients that drop the connection without close_notify are normal here. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* Bind http to addr:port and return the port actually bound, or -1. */
static int picsum_bind(struct evhttp *http, const char *addr, int port)
{
    struct evhttp_bound_socket *bound =
        evhttp_bind_socket_with_handle(http, addr, (ev_uint16_t)port);
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (bound == NULL)
        return -1;
    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Write the ready file through a temporary file and rename, so readers never see half. */
static int picsum_write_ready(const char *path, int http_port, int https_port, const char *ca)
{
    char tmp[PATH_MAX];
    FILE *f;
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());

    if (n < 0 || (size_t)n >= sizeof(tmp))
        return -1;
    f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "http=%d\nhttps=%d\nca=%s\n", http_port, https_port, ca);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void picsum_limit(struct evhttp *http)
{
    evhttp_set_timeout(http, PICSUM_HTTP_TIMEOUT_S);
    evhttp_set_max_headers_size(http, PICSUM_MAX_HEADERS);
    evhttp_set_max_body_size(http, PICSUM_MAX_BODY);
}

static void picsum_on_signal(evutil_socket_t sig, short what, void *arg)
{
    event_base_loopexit(arg, NULL);
}

struct picsum {
    struct event_base *base;
    SSL_CTX *ssl_ctx;
    struct serve *serve;
    struct evhttp *http;
    struct evhttp *https;
    struct event *sigterm;
    struct event *sigint;
    struct files *files;
};

static void picsum_free(struct picsum *p)
{
    /* serve first: it ends slow replies on connections the evhttp objects still own */
    serve_free(p->serve);
    if (p->http != NULL)
        evhttp_free(p->http);
    if (p->https != NULL)
        evhttp_free(p->https);
    if (p->sigterm != NULL)
        event_free(p->sigterm);
    if (p->sigint != NULL)
        event_free(p->sigint);
    SSL_CTX_free(p->ssl_ctx);
    files_free(p->files);
    if (p->base != NULL)
        event_base_free(p->base);
}

static int picsum_run(const struct picsum_opts *o)
{
    struct picsum p = {0};
    char dir[PATH_MAX], ca[PATH_MAX + 16], err[512];
    int http_port, https_port, rc = 1;

    if (mkdir(o->state_dir, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, PICSUM_PROG ": state dir %s: %s\n", o->state_dir, strerror(errno));
        return 1;
    }
    if (realpath(o->state_dir, dir) == NULL) {
        fprintf(stderr, PICSUM_PROG ": state dir %s: %s\n", o->state_dir, strerror(errno));
        return 1;
    }
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    p.base = event_base_new();
    if (p.base == NULL) {
        fprintf(stderr, PICSUM_PROG ": cannot create event base\n");
        goto out;
    }
    p.ssl_ctx = tls_ctx_new(ca, err, sizeof(err));
    if (p.ssl_ctx == NULL) {
        fprintf(stderr, PICSUM_PROG ": tls: %s\n", err);
        goto out;
    }
    struct serve_config cfg = o->cfg;
    if (o->files_dir != NULL) {
        p.files = files_load(o->files_dir, err, sizeof(err));
        if (p.files == NULL) {
            fprintf(stderr, PICSUM_PROG ": --files: %s\n", err);
            goto out;
        }
        cfg.files = p.files;
    }
    p.serve = serve_new(p.base, &cfg, err, sizeof(err));
    p.http = evhttp_new(p.base);
    p.https = evhttp_new(p.base);
    if (p.serve == NULL || p.http == NULL || p.https == NULL) {
        fprintf(stderr, PICSUM_PROG ": cannot set up the server: %s\n",
                p.serve == NULL ? err : "out of memory");
        goto out;
    }
    evhttp_set_bevcb(p.https, picsum_tls_bev, p.ssl_ctx);
    picsum_limit(p.http);
    picsum_limit(p.https);
    serve_attach(p.serve, p.http, "http");
    serve_attach(p.serve, p.https, "https");
    http_port = picsum_bind(p.http, o->listen, o->http_port);
    https_port = http_port < 0 ? -1 : picsum_bind(p.https, o->listen, o->https_port);
    if (http_port < 0 || https_port < 0) {
        fprintf(stderr, PICSUM_PROG ": cannot listen on %s port %d: %s\n", o->listen,
                http_port < 0 ? o->http_port : o->https_port, strerror(errno));
        goto out;
    }
    p.sigterm = evsignal_new(p.base, SIGTERM, picsum_on_signal, p.base);
    p.sigint = evsignal_new(p.base, SIGINT, picsum_on_signal, p.base);
    if (p.sigterm == NULL || p.sigint == NULL || event_add(p.sigterm, NULL) < 0 ||
        event_add(p.sigint, NULL) < 0) {
        fprintf(stderr, PICSUM_PROG ": cannot install signal handlers\n");
        goto out;
    }
    if (o->ready_file != NULL && picsum_write_ready(o->ready_file, http_port, https_port, ca) < 0) {
        fprintf(stderr, PICSUM_PROG ": cannot write ready file %s: %s\n", o->ready_file,
                strerror(errno));
        goto out;
    }
    fprintf(stderr,
            "picsum: listening addr=%s http=%d https=%d ca=%s seed=%llu deterministic=%d "
            "cache_mb=%zu pid=%ld\n",
            o->listen, http_port, https_port, ca, (unsigned long long)o->cfg.seed,
            o->cfg.deterministic, o->cfg.cache_bytes >> 20, (long)getpid());
    if (event_base_dispatch(p.base) < 0) {
        fprintf(stderr, PICSUM_PROG ": event loop failed\n");
        goto out;
    }
    fprintf(stderr, "picsum: stopped\n");
    rc = 0;
out:
    picsum_free(&p);
    return rc;
}

int main(int argc, char **argv)
{
    struct picsum_opts o;
    int rc = picsum_parse_args(argc, argv, &o);

    if (rc != 0) {
        if (rc > 0)
            picsum_usage(stdout);
        return rc > 0 ? 0 : 2;
    }
    /* A client closing mid-reply must not kill the server (OpenSSL writes with write(2)). */
    signal(SIGPIPE, SIG_IGN);
    rc = picsum_run(&o);
    libevent_global_shutdown();
    return rc;
}
