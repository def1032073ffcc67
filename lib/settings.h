/* settings.h -- the settings every pixflow program shares (SPEC §2), parsed and checked once. */
#ifndef PIXFLOW_SETTINGS_H
#define PIXFLOW_SETTINGS_H

#include "config.h"
#include "hostlimits.h"
#include "log.h"
#include "url.h"

#define SET_KEY_MAX        512
#define SET_CONNECT_TO_MAX 16

#define SET_SENTINELS_MAX 8

struct redis_node {
    char host[256];
    int port;
};

struct redis_target {
    char host[256]; /* redis://; with sentinels, the primary is asked for (lib/sentinel.h) */
    int port;
    char user[128]; /* Redis 6 ACL user, empty for the default user */
    char password[256];
    int db;
    char master[128]; /* redis-sentinel://: the primary's name, and its sentinels */
    int nsentinels;
    struct redis_node sentinels[SET_SENTINELS_MAX];
};

/* The raw store (SPEC §5.9): PIXFLOW_RAW_URL, PIXFLOW_S3_* and AWS_*, checked (store/raw.h). */
enum raw_kind { RAW_NONE, RAW_S3, RAW_FILE };

struct raw_config {
    enum raw_kind kind;
    char bucket[64];  /* S3: 3..63 characters, [a-z0-9.-] */
    char prefix[256]; /* S3 and file: [a-z0-9/._-], no leading, trailing or double '/'; may be "" */
    char dir[1024];   /* file: absolute directory, no trailing '/' */
    const char *endpoint;      /* S3: e.g. http://127.0.0.1:7070; "": AWS's for the region */
    const char *region;        /* S3: signing region, "us-east-1" by default */
    const char *access_key;    /* S3 credentials; "" sends unsigned requests */
    const char *secret_key;
    const char *session_token; /* "" when none */
    const char *ca_file;       /* extra CA bundle for an HTTPS endpoint, or NULL */
};

struct connect_to {
    char host[URL_HOST_MAX + 1]; /* as the URL names it, lowercase */
    int port;
    char to_host[256]; /* where traffic really goes */
    int to_port;
};

struct settings {
    struct redis_target redis;
    const char *redis_url;
    long redis_wait_replicas; /* PIXFLOW_REDIS_WAIT_REPLICAS (with SET_WAIT) */
    const char *mongo_uri;
    const char *prefix;
    const char *group;
    const char *consumer;
    const char *transforms;
    const char *plugin_path;
    struct url_hosts allowed;
    int connect_to_count;
    struct connect_to connect_to[SET_CONNECT_TO_MAX];
    const char *ca_file;
    struct raw_config raw; /* kind RAW_NONE unless PIXFLOW_RAW_URL is set */
    struct host_limits host_limits; /* PIXFLOW_HOST_LIMITS (with SET_FETCH) */
    const char *http_token; /* bearer token for /images and /metrics; empty: not required */
    long http_max_conns;
    long http_header_ms;
    enum log_level log_level;
    int log_json;
    char consumer_default[300];
};

/* Which shared settings a program takes. */
enum {
    SET_REDIS = 1 << 0,    /* --redis-url, --prefix */
    SET_MONGO = 1 << 1,    /* --mongo-uri */
    SET_GROUP = 1 << 2,    /* --group */
    SET_PLUGINS = 1 << 3,  /* --transforms, --plugin-path */
    SET_FETCH = 1 << 4,    /* --allowed-hosts, --connect-to, --ca-file */
    SET_HOSTS = 1 << 5,    /* --allowed-hosts alone (URL validation without fetching) */
    SET_CONSUMER = 1 << 6, /* --consumer */
    SET_HTTP = 1 << 7,     /* --http-token, --http-max-connections, --http-header-timeout */
    SET_RAW = 1 << 8,      /* --raw-url, --s3-endpoint, --s3-region, AWS_* credentials */
    SET_WAIT = 1 << 9,     /* --redis-wait-replicas: writes that WAIT for replicas */
};

#define SET_OPTIONS_MAX 32

/* Fill `out` (room for SET_OPTIONS_MAX entries) with the shared options selected by `which`,
 * bound to `s`; returns how many. Programs append their own after them. */
int settings_options(struct settings *s, unsigned which, struct cfg_option *out);

/* Builds a table of shared + own options, parses, starts logging. Returns what cfg_parse does;
 * on -1 the message is already printed as one line. */
int settings_load(struct settings *s, unsigned which, const struct cfg_option *own,
                  const char *prog, const char *synopsis, int argc, char **argv, int *first_arg);

/* "<prefix><name>", e.g. "pixflow:urls". */
const char *settings_key(const struct settings *s, const char *name, char *buf, size_t len);

/* A node as logs name it: "host:port", "[v6]:port". Returns dst. */
const char *settings_node_shown(const struct redis_node *n, char *dst, size_t cap);

/* Where t leads, as logs name it (never its credentials): "host:port", or with sentinels
 * "redis-sentinel://host:port,.../db#MASTER", which fits SET_REDIS_SHOWN_MAX bytes. Returns
 * dst. */
#define SET_REDIS_SHOWN_MAX (SET_SENTINELS_MAX * 270 + 160)
const char *settings_redis_shown(const struct redis_target *t, char *dst, size_t cap);

/* The connect-to entry that redirects host:port, or NULL. */
const struct connect_to *settings_connect_to(const struct settings *s, const char *host, int port);

#endif
