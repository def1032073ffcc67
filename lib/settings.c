/* settings.c -- SPEC §2: the PIXFLOW_* settings, their defaults and their checks. */
#include "settings.h"
#include "redact.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#ifndef PIXFLOW_PLUGIN_DIR
#define PIXFLOW_PLUGIN_DIR "/usr/local/lib/pixflow/plugins"
#endif

/* host[:port] (an IPv6 host in brackets) up to one of `stops` or the end; *rest after it.
 * -1: a bad host, -2: a bad port. */
static int settings_hostport(const char *p, const char *stops, char *host, size_t hostlen,
                             int *port, const char **rest)
{
    const char *hend;
    if (*p == '[') {
        hend = strchr(p, ']');
        if (hend == NULL)
            return -1;
        p++;
    } else {
        hend = p + strcspn(p, stops);
        const char *colon = memchr(p, ':', (size_t)(hend - p));
        if (colon)
            hend = colon;
    }
    if (hend == p || (size_t)(hend - p) >= hostlen)
        return -1;
    memcpy(host, p, (size_t)(hend - p));
    host[hend - p] = '\0';
    if (*hend == ']')
        hend++;
    if (*hend == ':') {
        char *end;
        long n = strtol(hend + 1, &end, 10);
        if (end == hend + 1 || n < 1 || n > 65535 || (*end && !strchr(stops, *end)))
            return -2;
        *port = (int)n;
        hend = end;
    }
    if (*hend && !strchr(stops, *hend))
        return -1;
    *rest = hend;
    return 0;
}

/* redis://[[user]:password@]host[:port][/db]
 * redis-sentinel://[[user]:password@]host[:port][,host[:port]...][/db]#MASTER (sentinels' port
 * 26379 by default; the credentials are the primary's, as in Lettuce's form) */
static int settings_redis(const struct cfg_option *o, const char *text, char *err, size_t errlen)
{
    struct redis_target *t = o->value;
    char shown[512]; /* text as errors quote it: without its password */
    redact_url(shown, sizeof(shown), text);
    memset(t, 0, sizeof(*t));
    t->port = 6379;
    const char *p;
    int sentinel = strncmp(text, "redis-sentinel://", 17) == 0;
    if (sentinel) {
        p = text + 17;
    } else if (strncmp(text, "redis://", 8) == 0) {
        p = text + 8;
    } else {
        snprintf(err, errlen, "'%s' is neither a redis:// nor a redis-sentinel:// URL", shown);
        return -1;
    }
    const char *hash = sentinel ? strrchr(p, '#') : NULL, *at = strrchr(p, '@');
    if (hash && at > hash)
        at = NULL;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon == NULL || (size_t)(colon - p) >= sizeof(t->user) ||
            (size_t)(at - colon - 1) >= sizeof(t->password)) {
            snprintf(err, errlen, "credentials must be [user]:password@");
            return -1;
        }
        memcpy(t->user, p, (size_t)(colon - p));
        memcpy(t->password, colon + 1, (size_t)(at - colon - 1));
        p = at + 1;
    }
    const char *hend = p;
    if (sentinel) {
        if (hash == NULL || hash[1] == '\0' || strlen(hash + 1) >= sizeof(t->master)) {
            snprintf(err, errlen, "'%s' must end with #MASTER, the name the sentinels know", shown);
            return -1;
        }
        snprintf(t->master, sizeof(t->master), "%s", hash + 1);
        do {
            if (t->nsentinels == SET_SENTINELS_MAX) {
                snprintf(err, errlen, "more than %d sentinels in '%s'", SET_SENTINELS_MAX, shown);
                return -1;
            }
            struct redis_node *n = &t->sentinels[t->nsentinels++];
            n->port = 26379;
            if (settings_hostport(p, ",/#", n->host, sizeof(n->host), &n->port, &hend) < 0) {
                snprintf(err, errlen, "bad sentinel address in '%s'", shown);
                return -1;
            }
            p = hend + 1;
        } while (*hend == ',');
    } else {
        int rc = settings_hostport(p, "/", t->host, sizeof(t->host), &t->port, &hend);
        if (rc < 0) {
            snprintf(err, errlen, "%s in '%s'", rc == -2 ? "bad port" : "missing or bad host",
                     shown);
            return -1;
        }
    }
    char *end;
    const char *stop = sentinel ? hash : hend + strlen(hend);
    if (*hend == '/' && hend + 1 < stop) {
        long db = strtol(hend + 1, &end, 10);
        if (end == hend + 1 || end != stop || db < 0 || db > 65535) {
            snprintf(err, errlen, "bad database number in '%s'", shown);
            return -1;
        }
        t->db = (int)db;
    } else if (hend != stop && !(*hend == '/' && hend + 1 == stop)) {
        snprintf(err, errlen, "unexpected '%.*s' in '%s'", (int)(stop - hend), hend, shown);
        return -1;
    }
    return 0;
}

static int settings_mongo(const struct cfg_option *o, const char *text, char *err, size_t errlen)
{
    if (strncmp(text, "mongodb://", 10) != 0 && strncmp(text, "mongodb+srv://", 14) != 0) {
        char shown[512];
        snprintf(err, errlen, "'%s' is not a mongodb:// URI",
                 redact_url(shown, sizeof(shown), text));
        return -1;
    }
    *(const char **)o->value = text;
    return 0;
}

static int settings_name(const struct cfg_option *o, const char *text, char *err, size_t errlen)
{
    for (const char *p = text; *p; p++) {
        if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p)) {
            snprintf(err, errlen, "must not contain spaces or control characters");
            return -1;
        }
    }
    if (strlen(text) > 200) {
        snprintf(err, errlen, "longer than 200 characters");
        return -1;
    }
    if (*text == '\0' && o->min) {
        snprintf(err, errlen, "must not be empty");
        return -1;
    }
    *(const char **)o->value = text;
    return 0;
}

static int settings_hosts(const struct cfg_option *o, const char *text, char *err, size_t errlen)
{
    return url_hosts_parse(text, o->value, err, errlen);
}

static int settings_port(const char *p, size_t len, int *out)
{
    int v = 0;
    if (len == 0 || len > 5)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)p[i]))
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *out = v;
    return 0;
}

/* HOST:PORT:CONNECT-HOST:CONNECT-PORT[,...] as curl's --connect-to, all four parts required. */
static int settings_connect(const struct cfg_option *o, const char *text, char *err, size_t errlen)
{
    struct settings *s = o->value;
    const char *list = text, *item;
    size_t len;
    s->connect_to_count = 0;
    while (cfg_next_item(&list, &item, &len)) {
        const char *f[4], *end = item + len;
        size_t flen[4];
        const char *p = item;
        int k;
        for (k = 0; k < 4 && p <= end; k++) {
            const char *c = (k < 3) ? memchr(p, ':', (size_t)(end - p)) : NULL;
            f[k] = p;
            flen[k] = (size_t)((c ? c : end) - p);
            p = (c ? c : end) + 1;
        }
        if (s->connect_to_count == SET_CONNECT_TO_MAX) {
            snprintf(err, errlen, "more than %d entries", SET_CONNECT_TO_MAX);
            return -1;
        }
        struct connect_to *ct = &s->connect_to[s->connect_to_count];
        if (k < 4 || p <= end || flen[0] == 0 || flen[0] > URL_HOST_MAX || flen[2] == 0 ||
            flen[2] >= sizeof(ct->to_host) || settings_port(f[1], flen[1], &ct->port) < 0 ||
            settings_port(f[3], flen[3], &ct->to_port) < 0) {
            snprintf(err, errlen, "'%.*s' is not HOST:PORT:CONNECT-HOST:CONNECT-PORT",
                     (int)(len > 100 ? 100 : len), item);
            return -1;
        }
        for (size_t i = 0; i < flen[0]; i++)
            ct->host[i] = (char)tolower((unsigned char)f[0][i]);
        ct->host[flen[0]] = '\0';
        memcpy(ct->to_host, f[2], flen[2]);
        ct->to_host[flen[2]] = '\0';
        s->connect_to_count++;
    }
    return 0;
}

static int settings_host_limits(const struct cfg_option *o, const char *text, char *err,
                                size_t errlen)
{
    return host_limits_parse(text, o->value, err, errlen);
}

static int settings_file(const struct cfg_option *o, const char *text, char *err, size_t errlen)
{
    if (*text && access(text, R_OK) != 0) {
        snprintf(err, errlen, "cannot read '%s'", text);
        return -1;
    }
    *(const char **)o->value = *text ? text : NULL;
    return 0;
}

/* A bearer token is a secret: short ones can be guessed, and the characters are those of RFC 6750
 * token68 so it travels in a header as is. */
static int settings_token(const struct cfg_option *o, const char *text, char *err, size_t errlen)
{
    size_t n = strlen(text);
    if (n > 0 && (n < 16 || n > 512)) {
        snprintf(err, errlen, "must be 16 to 512 characters (or empty: no token)");
        return -1;
    }
    if (strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=") !=
        n) {
        snprintf(err, errlen, "may hold only letters, digits and -._~+/=");
        return -1;
    }
    *(const char **)o->value = text;
    return 0;
}

/* A name made of the characters in `allowed`, with no empty, "." or ".." segment between '/':
 * what an S3 key prefix or a folder below the raw directory may be, so that keys need no
 * URI-encoding (libcurl 7.88 signs the path as it is sent). */
static int settings_raw_path(const char *what, const char *p, size_t n, char *out, size_t outlen,
                             char *err, size_t errlen)
{
    static const char allowed[] = "abcdefghijklmnopqrstuvwxyz0123456789/._-";
    if (n >= outlen) {
        snprintf(err, errlen, "%s is longer than %zu characters", what, outlen - 1);
        return -1;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    if (strspn(out, allowed) != n) {
        snprintf(err, errlen, "%s '%s' may hold only a-z, 0-9 and / . _ -", what, out);
        return -1;
    }
    for (const char *seg = out; *seg;) {
        size_t len = strcspn(seg, "/");
        if (len == 0 || (len == 1 && seg[0] == '.') || (len == 2 && strncmp(seg, "..", 2) == 0)) {
            snprintf(err, errlen, "%s '%s' has an empty, '.' or '..' part", what, out);
            return -1;
        }
        seg += len;
        if (*seg == '/' && *++seg == '\0') {
            snprintf(err, errlen, "%s '%s' ends with '/'", what, out);
            return -1;
        }
    }
    return 0;
}

/* PIXFLOW_RAW_URL: s3://BUCKET[/PREFIX] or file:///DIR (SPEC §2); "" keeps no originals. */
static int settings_raw_url(const struct cfg_option *o, const char *text, char *err, size_t errlen)
{
    struct raw_config *c = o->value;
    c->kind = RAW_NONE;
    c->bucket[0] = c->prefix[0] = c->dir[0] = '\0';
    if (*text == '\0')
        return 0;
    if (strncmp(text, "s3://", 5) == 0) {
        const char *b = text + 5;
        size_t n = strcspn(b, "/");
        if (n < 3 || n > 63 || strspn(b, "abcdefghijklmnopqrstuvwxyz0123456789.-") < n ||
            b[0] == '.' || b[0] == '-' || b[n - 1] == '.' || b[n - 1] == '-') {
            snprintf(err, errlen, "'%.*s' is not an S3 bucket name (3 to 63 of a-z 0-9 . -)",
                     (int)(n > 100 ? 100 : n), b);
            return -1;
        }
        memcpy(c->bucket, b, n);
        c->bucket[n] = '\0';
        const char *prefix = b[n] == '/' ? b + n + 1 : b + n;
        if (*prefix && settings_raw_path("the prefix", prefix, strlen(prefix), c->prefix,
                                         sizeof(c->prefix), err, errlen) < 0)
            return -1;
        c->kind = RAW_S3;
        return 0;
    }
    if (strncmp(text, "file://", 7) == 0) {
        const char *d = text + 7;
        size_t n = strlen(d);
        while (n > 1 && d[n - 1] == '/')
            n--;
        if (*d != '/' || n >= sizeof(c->dir)) {
            snprintf(err, errlen, "'%s' is not file:///ABSOLUTE/DIR", text);
            return -1;
        }
        memcpy(c->dir, d, n);
        c->dir[n] = '\0';
        c->kind = RAW_FILE;
        return 0;
    }
    snprintf(err, errlen, "'%.100s' is neither s3://BUCKET[/PREFIX] nor file:///DIR", text);
    return -1;
}

static int settings_endpoint(const struct cfg_option *o, const char *text, char *err, size_t errlen)
{
    if (*text && strncmp(text, "http://", 7) != 0 && strncmp(text, "https://", 8) != 0) {
        snprintf(err, errlen, "'%.100s' is not an http:// or https:// URL", text);
        return -1;
    }
    if (*text && (strchr(text, '?') || strchr(text, '#') || strchr(text, '@'))) {
        snprintf(err, errlen, "'%.100s' must be scheme://host[:port][/path] alone", text);
        return -1;
    }
    *(const char **)o->value = text;
    return 0;
}

static int settings_region(const struct cfg_option *o, const char *text, char *err, size_t errlen)
{
    size_t n = strlen(text);
    if (n == 0 || n > 64 || strspn(text, "abcdefghijklmnopqrstuvwxyz0123456789-") != n) {
        snprintf(err, errlen, "'%.100s' is not a region name (a-z, 0-9 and -)", text);
        return -1;
    }
    *(const char **)o->value = text;
    return 0;
}

static int settings_logfmt(const struct cfg_option *o, const char *text, char *err, size_t errlen)
{
    if (strcmp(text, "text") == 0 || strcmp(text, "json") == 0) {
        *(int *)o->value = strcmp(text, "json") == 0;
        return 0;
    }
    snprintf(err, errlen, "'%s' is not a log format (text, json)", text);
    return -1;
}

int settings_options(struct settings *s, unsigned which, struct cfg_option *out)
{
    int n = 0;
#define OPT(...)                                                                                   \
    out[n++] = (struct cfg_option)                                                                 \
    {                                                                                              \
        __VA_ARGS__                                                                                \
    }
    if (which & SET_REDIS) {
        OPT("redis-url", "PIXFLOW_REDIS_URL", settings_redis, &s->redis, "redis://127.0.0.1:6379/0",
            .meta = "URL", .help = "Redis server");
        OPT("prefix", "PIXFLOW_PREFIX", settings_name, &s->prefix, "pixflow:", .meta = "TEXT",
            .help = "prefix of every Redis key");
    }
    if (which & SET_WAIT)
        OPT("redis-wait-replicas", "PIXFLOW_REDIS_WAIT_REPLICAS", cfg_long, &s->redis_wait_replicas,
            "0", 0, 100, .meta = "N",
            .help = "a write counts as done once N replicas have it (WAIT); 0: at once");
    if (which & SET_MONGO)
        OPT("mongo-uri", "PIXFLOW_MONGO_URI", settings_mongo, &s->mongo_uri,
            "mongodb://127.0.0.1:27017/pixflow", .meta = "URI",
            .help = "MongoDB; the database is the URI's path");
    if (which & SET_GROUP)
        OPT("group", "PIXFLOW_GROUP", settings_name, &s->group, "pixflow", .min = 1, .meta = "NAME",
            .help = "consumer group");
    if (which & SET_CONSUMER)
        OPT("consumer", "PIXFLOW_CONSUMER", settings_name, &s->consumer, "", .meta = "NAME",
            .help = "this worker's consumer name (default: <hostname>-<pid>)");
    if (which & SET_PLUGINS) {
        OPT("transforms", "PIXFLOW_TRANSFORMS", cfg_string, &s->transforms, "grayscale",
            .meta = "CHAIN", .help = "transform chain, e.g. grayscale,resize:width=320");
        OPT("plugin-path", "PIXFLOW_PLUGIN_PATH", cfg_string, &s->plugin_path, PIXFLOW_PLUGIN_DIR,
            .meta = "DIR", .help = "folder of transform plugins (*.so)");
    }
    if (which & (SET_FETCH | SET_HOSTS))
        OPT("allowed-hosts", "PIXFLOW_ALLOWED_HOSTS", settings_hosts, &s->allowed,
            "picsum.photos,fastly.picsum.photos", .meta = "LIST",
            .help = "hosts a URL (and each redirect) may name");
    if (which & SET_FETCH) {
        OPT("connect-to", "PIXFLOW_CONNECT_TO", settings_connect, s, "", .meta = "LIST",
            .help = "HOST:PORT:CONNECT-HOST:CONNECT-PORT[,...] send a host's traffic elsewhere");
        OPT("ca-file", "PIXFLOW_CA_FILE", settings_file, &s->ca_file, "", .meta = "FILE",
            .help = "extra CA bundle for HTTPS");
    }
    /* Politeness (SPEC §5.8): what the whole fleet may send each host. */
    if (which & SET_FETCH)
        OPT("host-limits", "PIXFLOW_HOST_LIMITS", settings_host_limits, &s->host_limits,
            HOST_LIMITS_DEFAULT, .meta = "LIMITS",
            .help = "HOST:rate=R,burst=B,inflight=N;... per host for the whole fleet, * for any "
                    "other");
    if (which & SET_HTTP) {
        OPT("http-token", "PIXFLOW_HTTP_TOKEN", settings_token, &s->http_token, "", .meta = "TOKEN",
            .help = "bearer token /images and /metrics require (none when empty)");
        OPT("http-max-connections", "PIXFLOW_HTTP_MAX_CONNECTIONS", cfg_long, &s->http_max_conns,
            "64", 1, 100000, .meta = "N", .help = "connections the HTTP listener holds at once");
        OPT("http-header-timeout", NULL, cfg_millis, &s->http_header_ms, "5s", 100, 600000,
            .meta = "TIME", .help = "time a client has to send a whole request head");
    }
    if (which & SET_RAW) {
        OPT("raw-url", "PIXFLOW_RAW_URL", settings_raw_url, &s->raw, "", .meta = "URL",
            .help =
                "where originals are kept: s3://BUCKET[/PREFIX] or file:///DIR (none if empty)");
        OPT("s3-endpoint", "PIXFLOW_S3_ENDPOINT", settings_endpoint, &s->raw.endpoint, "",
            .meta = "URL", .help = "S3 endpoint, path-style (AWS's for the region if empty)");
        OPT("s3-region", "PIXFLOW_S3_REGION", settings_region, &s->raw.region, "us-east-1",
            .meta = "NAME", .help = "S3 signing region");
        OPT("aws-access-key-id", "AWS_ACCESS_KEY_ID", cfg_string, &s->raw.access_key, "",
            .meta = "KEY", .help = "S3 access key");
        OPT("aws-secret-access-key", "AWS_SECRET_ACCESS_KEY", cfg_string, &s->raw.secret_key, "",
            .meta = "KEY", .help = "S3 secret key");
        OPT("aws-session-token", "AWS_SESSION_TOKEN", cfg_string, &s->raw.session_token, "",
            .meta = "TOKEN", .help = "S3 session token (temporary credentials)");
    }
    OPT("log-level", "PIXFLOW_LOG_LEVEL", cfg_loglevel, &s->log_level, "info", .meta = "LEVEL",
        .help = "debug, info, warn or error");
    OPT("log-format", "PIXFLOW_LOG_FORMAT", settings_logfmt, &s->log_json, "text", .meta = "FORMAT",
        .help = "text (key=value) or json");
#undef OPT
    return n;
}

/* What only the options together can tell; one line naming the variable. */
static int settings_raw_check(struct settings *s, const char *prog)
{
    struct raw_config *c = &s->raw;
    c->ca_file = s->ca_file;
    if (c->kind != RAW_S3)
        return 0;
    if ((*c->access_key == '\0') != (*c->secret_key == '\0')) {
        fprintf(stderr, "%s: %s is set without %s\n", prog,
                *c->access_key ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                *c->access_key ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
        return -1;
    }
    return 0;
}

int settings_load(struct settings *s, unsigned which, const struct cfg_option *own,
                  const char *prog, const char *synopsis, int argc, char **argv, int *first_arg)
{
    struct cfg_option opts[SET_OPTIONS_MAX + 64];
    int n = settings_options(s, which, opts), own_n = 0;
    while (own && own[own_n].name)
        own_n++;
    if (n + own_n >= (int)(sizeof(opts) / sizeof(*opts))) {
        fprintf(stderr, "%s: too many options\n", prog);
        return -1;
    }
    if (own_n)
        memcpy(opts + n, own, sizeof(*own) * (size_t)own_n);
    memset(&opts[n + own_n], 0, sizeof(*opts));

    char err[CFG_ERR_MAX];
    int r = cfg_parse(opts, argc, argv, first_arg, err, sizeof(err));
    if (r == 1) {
        cfg_usage(stdout, synopsis, opts);
        return 1;
    }
    if (r < 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return -1;
    }
    if ((which & SET_RAW) && settings_raw_check(s, prog) < 0)
        return -1;
    if ((which & SET_CONSUMER) && (s->consumer == NULL || *s->consumer == '\0')) {
        char host[256] = "host";
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        snprintf(s->consumer_default, sizeof(s->consumer_default), "%s-%ld", host, (long)getpid());
        s->consumer = s->consumer_default;
    }
    log_init(prog, s->log_level, s->log_json);
    return 0;
}

const char *settings_key(const struct settings *s, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s", s->prefix, name);
    return buf;
}

/* host:port at dst + *used, an IPv6 address in brackets; *used grows by what was written. */
static void settings_hostport_shown(const char *host, int port, char *dst, size_t cap, size_t *used)
{
    const char *open = strchr(host, ':') ? "[" : "", *close = *open ? "]" : "";
    if (*used < cap)
        *used += (size_t)snprintf(dst + *used, cap - *used, "%s%s%s:%d", open, host, close, port);
}

const char *settings_node_shown(const struct redis_node *n, char *dst, size_t cap)
{
    size_t used = 0;
    settings_hostport_shown(n->host, n->port, dst, cap, &used);
    return dst;
}

const char *settings_redis_shown(const struct redis_target *t, char *dst, size_t cap)
{
    size_t used = 0;
    if (t->nsentinels == 0) {
        settings_hostport_shown(t->host, t->port, dst, cap, &used);
        return dst;
    }
    used = (size_t)snprintf(dst, cap, "redis-sentinel://");
    for (int i = 0; i < t->nsentinels; i++) {
        if (i && used < cap)
            used += (size_t)snprintf(dst + used, cap - used, ",");
        settings_hostport_shown(t->sentinels[i].host, t->sentinels[i].port, dst, cap, &used);
    }
    if (used < cap)
        snprintf(dst + used, cap - used, "/%d#%s", t->db, t->master);
    return dst;
}

const struct connect_to *settings_connect_to(const struct settings *s, const char *host, int port)
{
    for (int i = 0; i < s->connect_to_count; i++)
        if (s->connect_to[i].port == port && strcasecmp(s->connect_to[i].host, host) == 0)
            return &s->connect_to[i];
    return NULL;
}
