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

/* redis://[[user]:password@]host[:port][/db] */
static int settings_redis(const struct cfg_option *o, const char *text, char *err, size_t errlen)
{
    struct redis_target *t = o->value;
    char shown[512]; /* text as errors quote it: without its password */
    redact_url(shown, sizeof(shown), text);
    memset(t, 0, sizeof(*t));
    t->port = 6379;
    if (strncmp(text, "redis://", 8) != 0) {
        snprintf(err, errlen, "'%s' is not a redis:// URL", shown);
        return -1;
    }
    const char *p = text + 8, *at = strrchr(p, '@');
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
    const char *hend;
    if (*p == '[') {
        hend = strchr(p, ']');
        if (hend == NULL) {
            snprintf(err, errlen, "unterminated IPv6 address");
            return -1;
        }
        p++;
    } else {
        hend = p + strcspn(p, ":/");
    }
    if (hend == p || (size_t)(hend - p) >= sizeof(t->host)) {
        snprintf(err, errlen, "missing or overlong host in '%s'", shown);
        return -1;
    }
    memcpy(t->host, p, (size_t)(hend - p));
    if (*hend == ']')
        hend++;
    char *end;
    if (*hend == ':') {
        long port = strtol(hend + 1, &end, 10);
        if (end == hend + 1 || port < 1 || port > 65535 || (*end && *end != '/')) {
            snprintf(err, errlen, "bad port in '%s'", shown);
            return -1;
        }
        t->port = (int)port;
        hend = end;
    }
    if (*hend == '/' && hend[1]) {
        long db = strtol(hend + 1, &end, 10);
        if (end == hend + 1 || *end || db < 0 || db > 65535) {
            snprintf(err, errlen, "bad database number in '%s'", shown);
            return -1;
        }
        t->db = (int)db;
    } else if (*hend && strcmp(hend, "/") != 0) {
        snprintf(err, errlen, "unexpected '%s' in '%s'", hend, shown);
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
    OPT("log-level", "PIXFLOW_LOG_LEVEL", cfg_loglevel, &s->log_level, "info", .meta = "LEVEL",
        .help = "debug, info, warn or error");
    OPT("log-format", "PIXFLOW_LOG_FORMAT", settings_logfmt, &s->log_json, "text", .meta = "FORMAT",
        .help = "text (key=value) or json");
#undef OPT
    return n;
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

const struct connect_to *settings_connect_to(const struct settings *s, const char *host, int port)
{
    for (int i = 0; i < s->connect_to_count; i++)
        if (s->connect_to[i].port == port && strcasecmp(s->connect_to[i].host, host) == 0)
            return &s->connect_to[i];
    return NULL;
}
