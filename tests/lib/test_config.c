/* test_config.c -- lib/config.c and lib/settings.c: defaults < environment < flags, units,
 * one error line naming the variable or flag, --help, Redis URLs, connect-to lists. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "settings.h"

static const char *const env_names[] = {
    "PIXFLOW_REDIS_URL",
    "PIXFLOW_MONGO_URI",
    "PIXFLOW_PREFIX",
    "PIXFLOW_GROUP",
    "PIXFLOW_CONSUMER",
    "PIXFLOW_TRANSFORMS",
    "PIXFLOW_PLUGIN_PATH",
    "PIXFLOW_ALLOWED_HOSTS",
    "PIXFLOW_CONNECT_TO",
    "PIXFLOW_CA_FILE",
    "PIXFLOW_LOG_LEVEL",
    "PIXFLOW_LOG_FORMAT",
    "PIXFLOW_REDIS_WAIT_REPLICAS",
    "TEST_COUNT",
    NULL,
};

static int clean_env(void **state)
{
    for (int i = 0; env_names[i]; i++)
        unsetenv(env_names[i]);
    return 0;
}

/* Run settings_load on a NULL-terminated argv with fd 1 or 2 captured into `out`. */
static int load_captured(struct settings *s, unsigned which, const struct cfg_option *own,
                         char **argv, int *first, int fd, char *out, size_t outlen)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    char path[] = "/tmp/test_config_XXXXXX";
    int tmp = mkstemp(path);
    assert_true(tmp >= 0);
    unlink(path);
    fflush(fd == 1 ? stdout : stderr);
    int saved = dup(fd);
    dup2(tmp, fd);
    memset(s, 0, sizeof(*s));
    int rc = settings_load(s, which, own, "prog", "prog [options]", argc, argv, first);
    fflush(fd == 1 ? stdout : stderr);
    dup2(saved, fd);
    close(saved);
    ssize_t n = pread(tmp, out, outlen - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    close(tmp);
    return rc;
}

static int load(struct settings *s, unsigned which, char **argv, int *first, char *errout,
                size_t errlen)
{
    return load_captured(s, which, NULL, argv, first, 2, errout, errlen);
}

static void test_defaults(void **state)
{
    struct settings s;
    char out[1024];
    int first;
    char *argv[] = {"prog", NULL};
    assert_int_equal(
        load(&s, SET_REDIS | SET_GROUP | SET_CONSUMER | SET_HOSTS, argv, &first, out, sizeof(out)),
        0);
    assert_int_equal(first, 1);
    assert_string_equal(s.redis.host, "127.0.0.1");
    assert_int_equal(s.redis.port, 6379);
    assert_int_equal(s.redis.db, 0);
    assert_string_equal(s.prefix, "pixflow:");
    assert_string_equal(s.group, "pixflow");
    assert_int_equal(s.allowed.count, 2);
    assert_string_equal(s.allowed.name[0], "picsum.photos");
    assert_string_equal(s.allowed.name[1], "fastly.picsum.photos");
    /* <hostname>-<pid> when no consumer name is given */
    char pid[32];
    snprintf(pid, sizeof(pid), "-%ld", (long)getpid());
    assert_non_null(strstr(s.consumer, pid));
    char key[SET_KEY_MAX];
    assert_string_equal(settings_key(&s, "urls", key, sizeof(key)), "pixflow:urls");
}

static void test_env_then_flags(void **state)
{
    struct settings s;
    char out[1024];
    int first;
    setenv("PIXFLOW_PREFIX", "fromenv:", 1);
    setenv("PIXFLOW_GROUP", "envgroup", 1);
    char *argv[] = {"prog", "--prefix", "fromflag:", "file.txt", NULL};
    assert_int_equal(load(&s, SET_REDIS | SET_GROUP, argv, &first, out, sizeof(out)), 0);
    assert_string_equal(s.prefix, "fromflag:"); /* the flag wins over the variable */
    assert_string_equal(s.group, "envgroup");   /* the variable wins over the default */
    assert_int_equal(first, 3);
    char *argv2[] = {"prog", "--group=flaggroup", NULL};
    assert_int_equal(load(&s, SET_REDIS | SET_GROUP, argv2, &first, out, sizeof(out)), 0);
    assert_string_equal(s.group, "flaggroup");
    assert_string_equal(s.prefix, "fromenv:");
}

static void test_errors_name_their_source(void **state)
{
    struct settings s;
    char out[1024];
    int first;
    char *plain[] = {"prog", NULL};

    setenv("PIXFLOW_REDIS_URL", "http://x", 1);
    assert_int_equal(load(&s, SET_REDIS, plain, &first, out, sizeof(out)), -1);
    assert_non_null(strstr(out, "PIXFLOW_REDIS_URL"));
    assert_non_null(strstr(out, "http://x"));
    assert_int_equal(strchr(out, '\n') - out, (long)strlen(out) - 1); /* one line */
    unsetenv("PIXFLOW_REDIS_URL");

    char *flag[] = {"prog", "--redis-url", "redis://h:99999", NULL};
    assert_int_equal(load(&s, SET_REDIS, flag, &first, out, sizeof(out)), -1);
    assert_non_null(strstr(out, "--redis-url"));
    assert_non_null(strstr(out, "bad port"));

    /* the flag is checked even when a valid variable is set, and the message names the flag */
    setenv("PIXFLOW_LOG_LEVEL", "debug", 1);
    char *lvl[] = {"prog", "--log-level", "loud", NULL};
    assert_int_equal(load(&s, SET_REDIS, lvl, &first, out, sizeof(out)), -1);
    assert_non_null(strstr(out, "--log-level: 'loud' is not a log level"));
    setenv("PIXFLOW_LOG_LEVEL", "loud", 1);
    assert_int_equal(load(&s, SET_REDIS, plain, &first, out, sizeof(out)), -1);
    assert_non_null(strstr(out, "PIXFLOW_LOG_LEVEL: 'loud'"));
    unsetenv("PIXFLOW_LOG_LEVEL");

    char *unknown[] = {"prog", "--no-such-flag", NULL};
    assert_int_equal(load(&s, SET_REDIS, unknown, &first, out, sizeof(out)), -1);
    assert_non_null(strstr(out, "--no-such-flag: unknown option"));
    char *shortopt[] = {"prog", "-x", NULL};
    assert_int_equal(load(&s, SET_REDIS, shortopt, &first, out, sizeof(out)), -1);
    assert_non_null(strstr(out, "-x: unknown option"));
    char *noval[] = {"prog", "--prefix", NULL};
    assert_int_equal(load(&s, SET_REDIS, noval, &first, out, sizeof(out)), -1);
    assert_non_null(strstr(out, "--prefix: needs a value"));
    char *spaced[] = {"prog", "--group", "a b", NULL};
    assert_int_equal(load(&s, SET_GROUP, spaced, &first, out, sizeof(out)), -1);
    assert_non_null(strstr(out, "--group: must not contain spaces"));
    char *empty[] = {"prog", "--group=", NULL};
    assert_int_equal(load(&s, SET_GROUP, empty, &first, out, sizeof(out)), -1);
    assert_non_null(strstr(out, "--group: must not be empty"));
    char *mongo[] = {"prog", "--mongo-uri", "postgres://x", NULL};
    assert_int_equal(load(&s, SET_MONGO, mongo, &first, out, sizeof(out)), -1);
    assert_non_null(strstr(out, "--mongo-uri"));
    char *ca[] = {"prog", "--ca-file", "/nonexistent/ca.pem", NULL};
    assert_int_equal(load(&s, SET_FETCH, ca, &first, out, sizeof(out)), -1);
    assert_non_null(strstr(out, "--ca-file: cannot read '/nonexistent/ca.pem'"));
    char *hosts[] = {"prog", "--allowed-hosts", "picsum.photos,not a host!", NULL};
    assert_int_equal(load(&s, SET_HOSTS, hosts, &first, out, sizeof(out)), -1);
    assert_non_null(strstr(out, "--allowed-hosts"));
}

static long count_value;
static int verbose_value;
static const struct cfg_option own[] = {
    {"count", "TEST_COUNT", cfg_long, &count_value, "3", 1, 10, .meta = "N", .help = "how many"},
    {"verbose", NULL, cfg_switch, &verbose_value, "", .flags = CFG_NOARG, .help = "talk more"},
    {NULL},
};

static void test_help_and_own_options(void **state)
{
    struct settings s;
    char out[4096];
    int first;
    char *help[] = {"prog", "--count", "5", "--help", NULL};
    assert_int_equal(load_captured(&s, SET_REDIS, own, help, &first, 1, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "usage: prog [options]"));
    assert_non_null(strstr(out, "--redis-url URL"));
    assert_non_null(strstr(out, "[PIXFLOW_REDIS_URL]"));
    assert_non_null(strstr(out, "--count N"));
    assert_non_null(strstr(out, "[TEST_COUNT] (default: 3)"));
    assert_non_null(strstr(out, "--verbose "));
    char *h[] = {"prog", "-h", NULL};
    assert_int_equal(load_captured(&s, SET_REDIS, own, h, &first, 1, out, sizeof(out)), 1);

    char *args[] = {"prog", "--verbose", "--count=7", "--", "--not-an-option", NULL};
    assert_int_equal(load_captured(&s, SET_REDIS, own, args, &first, 2, out, sizeof(out)), 0);
    assert_int_equal(count_value, 7);
    assert_int_equal(verbose_value, 1);
    assert_int_equal(first, 4); /* "--" ends the options */

    char *dash[] = {"prog", "-", "--verbose", NULL};
    assert_int_equal(load_captured(&s, SET_REDIS, own, dash, &first, 2, out, sizeof(out)), 0);
    assert_int_equal(first, 1); /* "-" is an operand (stdin) */
    assert_int_equal(verbose_value, 0);

    setenv("TEST_COUNT", "11", 1);
    char *plain[] = {"prog", NULL};
    assert_int_equal(load_captured(&s, SET_REDIS, own, plain, &first, 2, out, sizeof(out)), -1);
    assert_non_null(strstr(out, "TEST_COUNT: '11' is out of range (1..10)"));
    unsetenv("TEST_COUNT");
    char *zero[] = {"prog", "--count", "0", NULL};
    assert_int_equal(load_captured(&s, SET_REDIS, own, zero, &first, 2, out, sizeof(out)), -1);
    assert_non_null(strstr(out, "--count: '0' is out of range (1..10)"));
}

static void test_units(void **state)
{
    long v;
    char err[CFG_ERR_MAX];
    struct cfg_option ms = {.name = "t", .parse = cfg_millis, .value = &v};
    static const struct {
        const char *text;
        long want;
    } times[] = {{"250ms", 250}, {"30s", 30000}, {"5m", 300000}, {"1h", 3600000},
                 {"2", 2000},    {"0", 0},       {"10MS", 10}};
    for (size_t i = 0; i < sizeof(times) / sizeof(*times); i++) {
        assert_int_equal(cfg_millis(&ms, times[i].text, err, sizeof(err)), 0);
        assert_int_equal(v, times[i].want);
    }
    assert_int_equal(cfg_millis(&ms, "5x", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "unknown unit"));
    assert_int_equal(cfg_millis(&ms, "1.5s", err, sizeof(err)), -1);
    assert_int_equal(cfg_millis(&ms, "s", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not a number"));
    assert_int_equal(cfg_millis(&ms, " 5s", err, sizeof(err)), -1);
    assert_int_equal(cfg_millis(&ms, "", err, sizeof(err)), -1);

    struct cfg_option bytes = {.name = "b", .parse = cfg_bytes, .value = &v, .min = 1};
    static const struct {
        const char *text;
        long want;
    } sizes[] = {{"512", 512},  {"64k", 65536},    {"50M", 50L << 20}, {"1G", 1L << 30},
                 {"2kb", 2048}, {"3MB", 3L << 20}, {"7b", 7}};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++) {
        assert_int_equal(cfg_bytes(&bytes, sizes[i].text, err, sizeof(err)), 0);
        assert_int_equal(v, sizes[i].want);
    }
    assert_int_equal(cfg_bytes(&bytes, "1T", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "unknown unit"));
    /* no upper bound (max 0): the message states the lower one, not "(1..0)" */
    assert_int_equal(cfg_bytes(&bytes, "0", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "at least 1"));
    assert_int_equal(cfg_bytes(&bytes, "-5", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "out of range"));
    /* overflow is an error, not a wrap-around */
    assert_int_equal(cfg_bytes(&bytes, "99999999999G", err, sizeof(err)), -1);
    assert_int_equal(cfg_bytes(&bytes, "99999999999999999999999", err, sizeof(err)), -1);

    int sw = -1;
    struct cfg_option swo = {.name = "s", .parse = cfg_switch, .value = &sw};
    const char *yes[] = {"1", "true", "YES", "on"}, *no[] = {"0", "false", "No", "off", ""};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(cfg_switch(&swo, yes[i], err, sizeof(err)), 0);
        assert_int_equal(sw, 1);
    }
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(cfg_switch(&swo, no[i], err, sizeof(err)), 0);
        assert_int_equal(sw, 0);
    }
    assert_int_equal(cfg_switch(&swo, "maybe", err, sizeof(err)), -1);
}

/* settings' --redis-url parser through the option table */
static int redis_url(struct settings *s, const char *text, char *err, size_t errlen)
{
    struct cfg_option opts[SET_OPTIONS_MAX + 1];
    int n = settings_options(s, SET_REDIS, opts);
    for (int i = 0; i < n; i++)
        if (strcmp(opts[i].name, "redis-url") == 0)
            return opts[i].parse(&opts[i], text, err, errlen);
    fail_msg("no redis-url option");
    return -1;
}

static void test_redis_urls(void **state)
{
    struct settings s;
    char err[CFG_ERR_MAX], shown[SET_REDIS_SHOWN_MAX];
    memset(&s, 0, sizeof(s));
    assert_int_equal(redis_url(&s, "redis://cache.example", err, sizeof(err)), 0);
    assert_string_equal(s.redis.host, "cache.example");
    assert_int_equal(s.redis.port, 6379);
    assert_int_equal(s.redis.db, 0);
    assert_string_equal(s.redis.password, "");

    assert_int_equal(redis_url(&s, "redis://h:6380/3", err, sizeof(err)), 0);
    assert_string_equal(s.redis.host, "h");
    assert_int_equal(s.redis.port, 6380);
    assert_int_equal(s.redis.db, 3);

    assert_int_equal(redis_url(&s, "redis://:s3cret@h/", err, sizeof(err)), 0);
    assert_string_equal(s.redis.user, "");
    assert_string_equal(s.redis.password, "s3cret");
    assert_int_equal(s.redis.db, 0);

    assert_int_equal(redis_url(&s, "redis://alice:p:w@d@10.0.0.5:7000/15", err, sizeof(err)), 0);
    assert_string_equal(s.redis.user, "alice");
    assert_string_equal(s.redis.password, "p:w@d");
    assert_string_equal(s.redis.host, "10.0.0.5");
    assert_int_equal(s.redis.port, 7000);
    assert_int_equal(s.redis.db, 15);

    assert_int_equal(redis_url(&s, "redis://[::1]:6390/2", err, sizeof(err)), 0);
    assert_string_equal(settings_redis_shown(&s.redis, shown, sizeof(shown)), "[::1]:6390");
    assert_string_equal(s.redis.host, "::1");
    assert_int_equal(s.redis.port, 6390);
    assert_int_equal(s.redis.db, 2);

    assert_int_equal(
        redis_url(&s, "redis-sentinel://u:p#w@s1:26380,[::1],s3/2#main", err, sizeof(err)), 0);
    assert_string_equal(s.redis.user, "u");
    assert_string_equal(s.redis.password, "p#w");
    assert_int_equal(s.redis.nsentinels, 3);
    assert_string_equal(s.redis.sentinels[0].host, "s1");
    assert_int_equal(s.redis.sentinels[0].port, 26380);
    assert_string_equal(s.redis.sentinels[1].host, "::1");
    assert_int_equal(s.redis.sentinels[1].port, 26379);
    assert_string_equal(s.redis.sentinels[2].host, "s3");
    assert_int_equal(s.redis.db, 2);
    assert_string_equal(s.redis.master, "main");
    /* As logs name it: the sentinels, never the credentials. */
    assert_string_equal(settings_redis_shown(&s.redis, shown, sizeof(shown)),
                        "redis-sentinel://s1:26380,[::1]:26379,s3:26379/2#main");
    assert_string_equal(settings_node_shown(&s.redis.sentinels[1], shown, sizeof(shown)),
                        "[::1]:26379");
    assert_string_equal(settings_redis_shown(&s.redis, shown, 20), "redis-sentinel://s1");

    assert_int_equal(redis_url(&s, "redis-sentinel://127.0.0.1:5000#mymaster", err, sizeof(err)),
                     0);
    assert_int_equal(s.redis.nsentinels, 1);
    assert_int_equal(s.redis.sentinels[0].port, 5000);
    assert_int_equal(s.redis.db, 0);
    assert_string_equal(s.redis.password, "");
    assert_string_equal(s.redis.master, "mymaster");

    assert_int_equal(redis_url(&s, "redis://h:6380/3", err, sizeof(err)), 0);
    assert_int_equal(s.redis.nsentinels, 0); /* a plain URL again: no sentinel left over */

    static const char *const bad[] = {
        "redis-sentinel://h:26379",
        "redis-sentinel://h:26379/0#",
        "redis-sentinel://#m",
        "redis-sentinel://h,#m",
        "redis-sentinel://h:0#m",
        "redis-sentinel://h/x#m",
        "redis-sentinel://a,b,c,d,e,f,g,h,i#m",
        "http://h",
        "redis://",
        "redis://:6379",
        "redis://h:0",
        "redis://h:65536",
        "redis://h:12ab",
        "redis://h:",
        "redis://h/x",
        "redis://h/-1",
        "redis://h/1/2",
        "redis://pw@h",
        "redis://[::1",
        "redis://[]:6379",
        "rediss://h",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        err[0] = '\0';
        if (redis_url(&s, bad[i], err, sizeof(err)) == 0)
            fail_msg("'%s' accepted", bad[i]);
        assert_true(err[0] != '\0');
    }
}

static void test_connect_to(void **state)
{
    struct settings s;
    char out[1024];
    int first;
    setenv("PIXFLOW_CONNECT_TO",
           "Picsum.Photos:443:127.0.0.1:8443, fastly.picsum.photos:80:localhost:8080", 1);
    char *plain[] = {"prog", NULL};
    assert_int_equal(load(&s, SET_FETCH, plain, &first, out, sizeof(out)), 0);
    assert_int_equal(s.connect_to_count, 2);
    assert_string_equal(s.connect_to[0].host, "picsum.photos");
    assert_int_equal(s.connect_to[0].port, 443);
    assert_string_equal(s.connect_to[0].to_host, "127.0.0.1");
    assert_int_equal(s.connect_to[0].to_port, 8443);
    assert_string_equal(s.connect_to[1].to_host, "localhost");
    const struct connect_to *ct = settings_connect_to(&s, "PICSUM.photos", 443);
    assert_non_null(ct);
    assert_int_equal(ct->to_port, 8443);
    assert_null(settings_connect_to(&s, "picsum.photos", 80));
    assert_null(settings_connect_to(&s, "other.example", 443));

    static const char *const bad[] = {
        "picsum.photos:443:127.0.0.1",
        "picsum.photos:443:127.0.0.1:8443:9",
        ":443:127.0.0.1:8443",
        "picsum.photos:443::8443",
        "picsum.photos:0:127.0.0.1:8443",
        "picsum.photos:443:127.0.0.1:65536",
        "picsum.photos:x:127.0.0.1:8443",
        "picsum.photos:443:127.0.0.1:",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        setenv("PIXFLOW_CONNECT_TO", bad[i], 1);
        if (load(&s, SET_FETCH, plain, &first, out, sizeof(out)) != -1)
            fail_msg("'%s' accepted", bad[i]);
        assert_non_null(strstr(out, "PIXFLOW_CONNECT_TO"));
        assert_non_null(strstr(out, "HOST:PORT:CONNECT-HOST:CONNECT-PORT"));
    }

    /* One entry more than the table holds: refused before anything is written past it. */
    char many[2048] = "";
    for (int i = 0; i <= SET_CONNECT_TO_MAX; i++) {
        char one[64];
        snprintf(one, sizeof(one), "%sh%d.example:443:127.0.0.1:%d", i ? "," : "", i, 1000 + i);
        strcat(many, one);
    }
    setenv("PIXFLOW_CONNECT_TO", many, 1);
    assert_int_equal(load(&s, SET_FETCH, plain, &first, out, sizeof(out)), -1);
    assert_non_null(strstr(out, "more than 16 entries"));
    unsetenv("PIXFLOW_CONNECT_TO");
}

static void test_next_item(void **state)
{
    const char *list = " a , ,b\t,c d,, ", *item;
    size_t len;
    assert_int_equal(cfg_next_item(&list, &item, &len), 1);
    assert_int_equal(len, 1);
    assert_memory_equal(item, "a", 1);
    assert_int_equal(cfg_next_item(&list, &item, &len), 1);
    assert_memory_equal(item, "b", len);
    assert_int_equal(cfg_next_item(&list, &item, &len), 1);
    assert_int_equal(len, 3);
    assert_memory_equal(item, "c d", 3);
    assert_int_equal(cfg_next_item(&list, &item, &len), 0);
}

static void test_split_hostport(void **state)
{
    char host[CFG_HOST_MAX], err[256];
    int port = -1;
    assert_int_equal(cfg_split_hostport("127.0.0.1:8090", host, &port, err, sizeof(err)), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8090);
    assert_int_equal(cfg_split_hostport("[::1]:0", host, &port, err, sizeof(err)), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 0);
    const char *bad[] = {"8090", ":8090", "host:", "host:65536", "host:-1", "host:80x", "", NULL};
    for (int i = 0; bad[i]; i++) {
        err[0] = '\0';
        assert_int_equal(cfg_split_hostport(bad[i], host, &port, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "HOST:PORT"));
    }
}

/* PIXFLOW_REDIS_WAIT_REPLICAS: 0 by default, a count of replicas, a bad one named in one line */
static void test_wait_replicas(void **state)
{
    struct settings s;
    char out[1024];
    int first;
    char *plain[] = {"prog", NULL};
    assert_int_equal(load(&s, SET_REDIS | SET_WAIT, plain, &first, out, sizeof(out)), 0);
    assert_int_equal(s.redis_wait_replicas, 0);
    setenv("PIXFLOW_REDIS_WAIT_REPLICAS", "2", 1);
    assert_int_equal(load(&s, SET_REDIS | SET_WAIT, plain, &first, out, sizeof(out)), 0);
    assert_int_equal(s.redis_wait_replicas, 2);
    char *flag[] = {"prog", "--redis-wait-replicas", "1", NULL};
    assert_int_equal(load(&s, SET_REDIS | SET_WAIT, flag, &first, out, sizeof(out)), 0);
    assert_int_equal(s.redis_wait_replicas, 1); /* the flag wins */
    const char *bad[] = {"-1", "two", "1.5", "101", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        setenv("PIXFLOW_REDIS_WAIT_REPLICAS", bad[i], 1);
        assert_int_equal(load(&s, SET_REDIS | SET_WAIT, plain, &first, out, sizeof(out)), -1);
        assert_non_null(strstr(out, "PIXFLOW_REDIS_WAIT_REPLICAS"));
        assert_int_equal(strchr(out, '\n') - out, (long)strlen(out) - 1); /* one line */
    }
    unsetenv("PIXFLOW_REDIS_WAIT_REPLICAS");
    /* a program that does not wait takes no such option */
    assert_int_equal(load(&s, SET_REDIS, flag, &first, out, sizeof(out)), -1);
    assert_non_null(strstr(out, "redis-wait-replicas"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_hostport),
        cmocka_unit_test_setup(test_defaults, clean_env),
        cmocka_unit_test_setup(test_env_then_flags, clean_env),
        cmocka_unit_test_setup(test_errors_name_their_source, clean_env),
        cmocka_unit_test_setup(test_help_and_own_options, clean_env),
        cmocka_unit_test_setup(test_units, clean_env),
        cmocka_unit_test_setup(test_redis_urls, clean_env),
        cmocka_unit_test_setup(test_wait_replicas, clean_env),
        cmocka_unit_test_setup(test_connect_to, clean_env),
        cmocka_unit_test_setup(test_next_item, clean_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
