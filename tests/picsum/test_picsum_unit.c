/* test_picsum_unit.c -- unit tests for the image server's pure parts: path routing, query and
 * fault parsing, counters, the picture cache, and the pictures themselves; and for slow.c's
 * trickled replies, over loopback sockets. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

#include "cache.h"
#include "counter.h"
#include "fault.h"
#include "image.h"
#include "query.h"
#include "route.h"
#include "slow.h"
#include "stats.h"

/* ---- route ---- */

static void expect_route(const char *path, enum route_kind kind, int w, int h)
{
    struct route r;

    assert_int_equal(route_parse(path, &r), kind);
    assert_int_equal(r.kind, kind);
    if (kind == ROUTE_RANDOM || kind == ROUTE_IMAGE) {
        assert_int_equal(r.width, w);
        assert_int_equal(r.height, h);
    }
}

static void test_route_sizes(void **state)
{
    (void)state;
    expect_route("/200/300", ROUTE_RANDOM, 200, 300);
    expect_route("/200/300.jpg", ROUTE_RANDOM, 200, 300);
    expect_route("/200/300/", ROUTE_RANDOM, 200, 300);
    expect_route("/200", ROUTE_RANDOM, 200, 200);
    expect_route("/200.jpg", ROUTE_RANDOM, 200, 200);
    expect_route("/1/1", ROUTE_RANDOM, 1, 1);
    expect_route("/5000/5000", ROUTE_RANDOM, 5000, 5000);
    expect_route("/0/10", ROUTE_BAD_SIZE, 0, 0);
    expect_route("/6000/10", ROUTE_BAD_SIZE, 0, 0);
    expect_route("/10/5001", ROUTE_BAD_SIZE, 0, 0);
    expect_route("/-5/10", ROUTE_BAD_SIZE, 0, 0);
    expect_route("/200/abc", ROUTE_BAD_SIZE, 0, 0);
    expect_route("/200/3.5", ROUTE_BAD_SIZE, 0, 0);
    expect_route("/200/300.png", ROUTE_BAD_SIZE, 0, 0);
    expect_route("/99999999999999999999999/1", ROUTE_BAD_SIZE, 0, 0);
}

static void test_route_other(void **state)
{
    struct route r;

    (void)state;
    expect_route("/abc", ROUTE_NOT_FOUND, 0, 0);
    expect_route("/", ROUTE_NOT_FOUND, 0, 0);
    expect_route("", ROUTE_NOT_FOUND, 0, 0);
    expect_route("200/300", ROUTE_NOT_FOUND, 0, 0);
    expect_route("/200/300/400", ROUTE_NOT_FOUND, 0, 0);
    expect_route("/200//300", ROUTE_NOT_FOUND, 0, 0);
    expect_route("/__control/stats", ROUTE_CONTROL_STATS, 0, 0);
    expect_route("/__control/reset", ROUTE_CONTROL_RESET, 0, 0);
    expect_route("/__control/fault", ROUTE_CONTROL_FAULT, 0, 0);
    expect_route("/__control/nope", ROUTE_NOT_FOUND, 0, 0);

    expect_route("/id/237/200/300.jpg", ROUTE_IMAGE, 200, 300);
    assert_int_equal(route_parse("/id/237/200/300", &r), ROUTE_IMAGE);
    assert_int_equal(r.id, 237);
    expect_route("/id/0/64", ROUTE_IMAGE, 64, 64);
    expect_route("/id/1084/1/1.jpg", ROUTE_IMAGE, 1, 1);
    expect_route("/id/1085/10/10", ROUTE_NOT_FOUND, 0, 0);
    expect_route("/id/x/10/10", ROUTE_NOT_FOUND, 0, 0);
    expect_route("/id/5", ROUTE_NOT_FOUND, 0, 0);
    expect_route("/id/5/0/10", ROUTE_BAD_SIZE, 0, 0);
    expect_route("/id/5/10/9000.jpg", ROUTE_BAD_SIZE, 0, 0);
}

static void test_route_parse_size(void **state)
{
    int v = -1;

    (void)state;
    assert_int_equal(route_parse_size("42", 2, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(route_parse_size("4200", 2, &v), 0); /* only len bytes count */
    assert_int_equal(v, 42);
    assert_int_equal(route_parse_size("", 0, &v), -1);
    assert_int_equal(route_parse_size("0", 1, &v), -1);
    assert_int_equal(route_parse_size("5001", 4, &v), -1);
    assert_int_equal(route_parse_size("+5", 2, &v), -1);
}

/* ---- query ---- */

static void test_query_tokens(void **state)
{
    const char *cursor = "a=1&&b=%41+c&flag&k%3D=v%3d";
    struct query_param p;

    (void)state;
    assert_int_equal(query_next(&cursor, &p), 1);
    assert_string_equal(p.key, "a");
    assert_string_equal(p.value, "1");
    assert_int_equal(p.rawlen, 3);
    assert_int_equal(query_next(&cursor, &p), 1);
    assert_string_equal(p.key, "b");
    assert_string_equal(p.value, "A c");
    assert_int_equal(query_next(&cursor, &p), 1);
    assert_string_equal(p.key, "flag");
    assert_false(p.has_value);
    assert_int_equal(query_next(&cursor, &p), 1);
    assert_string_equal(p.key, "k=");
    assert_string_equal(p.value, "v=");
    assert_int_equal(query_next(&cursor, &p), 0);

    cursor = NULL;
    assert_int_equal(query_next(&cursor, &p), 0);
    cursor = "x=%00";
    assert_int_equal(query_next(&cursor, &p), -1);
}

static void test_query_decode_and_append(void **state)
{
    char out[8], buf[16] = "";

    (void)state;
    assert_int_equal(query_decode("%zz%4", 5, out, sizeof(out)), 0);
    assert_string_equal(out, "%zz%4");
    assert_int_equal(query_decode("12345678", 8, out, sizeof(out)), -1);
    assert_int_equal(query_append(buf, sizeof(buf), "a=1", 3), 0);
    assert_int_equal(query_append(buf, sizeof(buf), "grayscale", 9), 0);
    assert_string_equal(buf, "a=1&grayscale");
    assert_int_equal(query_append(buf, sizeof(buf), "toolong", 7), -1);
    assert_string_equal(buf, "a=1&grayscale");
}

/* ---- fault ---- */

static void test_fault_query(void **state)
{
    struct fault f;
    char kept[256], err[128];

    (void)state;
    assert_int_equal(fault_parse_query("grayscale&fault=429&retry_after=5&times=2&blur=2", &f, kept,
                                       sizeof(kept), err, sizeof(err)),
                     0);
    assert_int_equal(f.kind, FAULT_429);
    assert_int_equal(f.retry_after, 5);
    assert_int_equal(f.times, 2);
    assert_string_equal(kept, "grayscale&blur=2");

    assert_int_equal(fault_parse_query(NULL, &f, kept, sizeof(kept), err, sizeof(err)), 0);
    assert_int_equal(f.kind, FAULT_NONE);
    assert_int_equal(f.times, FAULT_TIMES_UNLIMITED);
    assert_string_equal(kept, "");

    assert_int_equal(
        fault_parse_query("fault=slow&delay_ms=250", &f, kept, sizeof(kept), err, sizeof(err)), 0);
    assert_int_equal(f.kind, FAULT_SLOW);
    assert_int_equal(f.delay_ms, 250);
    assert_int_equal(f.bytes_per_s, 0);

    assert_int_equal(
        fault_parse_query("fault=slow&bytes_per_s=1&x=2", &f, kept, sizeof(kept), err, sizeof(err)),
        0);
    assert_int_equal(f.kind, FAULT_SLOW);
    assert_int_equal(f.bytes_per_s, 1);
    assert_string_equal(kept, "x=2");
    assert_int_equal(fault_parse_query("fault=slow&bytes_per_s=100000000", &f, kept, sizeof(kept),
                                       err, sizeof(err)),
                     0);
    assert_int_equal(f.bytes_per_s, FAULT_BYTES_PER_S_MAX);

    assert_int_equal(fault_parse_query("fault=redirect&to=http%3A%2F%2F10.0.0.1%2Fx", &f, kept,
                                       sizeof(kept), err, sizeof(err)),
                     0);
    assert_int_equal(f.kind, FAULT_REDIRECT);
    assert_string_equal(f.to, "http://10.0.0.1/x");

    assert_int_equal(
        fault_parse_query("fault=loop&hop=7", &f, kept, sizeof(kept), err, sizeof(err)), 0);
    assert_int_equal(f.kind, FAULT_LOOP);
    assert_int_equal(f.hop, 7);
}

static void test_fault_query_errors(void **state)
{
    static const char *const bad[] = {
        "fault=nope",
        "fault=redirect",
        "fault=slow&delay_ms=-1",
        "fault=slow&delay_ms=x",
        "fault=429&retry_after=1.5",
        "fault=500&times=",
        "fault=redirect&to=http%3A%2F%2Fa%0d%0aX:1",
        "fault=slow&delay_ms=999999",
        "fault=slow&bytes_per_s=0",
        "fault=slow&bytes_per_s=-1",
        "fault=slow&bytes_per_s=",
        "fault=slow&bytes_per_s",
        "fault=slow&bytes_per_s=1.5",
        "fault=slow&bytes_per_s=1k",
        "fault=slow&bytes_per_s=100000001",
        "fault=slow&bytes_per_s=99999999999999999999",
        "fault=slow&delay_ms=500&bytes_per_s=1",
        "fault=slow&bytes_per_s=1&delay_ms=500",
    };
    struct fault f;
    char kept[256], err[128];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(fault_parse_query(bad[i], &f, kept, sizeof(kept), err, sizeof(err)), -1);
        assert_true(err[0] != '\0');
    }
}

static void test_fault_carry(void **state)
{
    struct fault f;
    char kept[64], err[64], out[64];

    (void)state;
    assert_int_equal(
        fault_parse_query("fault=slow&delay_ms=300", &f, kept, sizeof(kept), err, sizeof(err)), 0);
    assert_int_equal(fault_carry(&f, out, sizeof(out)), 0);
    assert_string_equal(out, "fault=slow&delay_ms=300");
    assert_int_equal(
        fault_parse_query("fault=slow&bytes_per_s=7", &f, kept, sizeof(kept), err, sizeof(err)), 0);
    assert_int_equal(fault_carry(&f, out, sizeof(out)), 0);
    assert_string_equal(out, "fault=slow&bytes_per_s=7");
    /* what the picture hop parses back is the same fault */
    assert_int_equal(fault_parse_query(out, &f, kept, sizeof(kept), err, sizeof(err)), 0);
    assert_int_equal(f.kind, FAULT_SLOW);
    assert_int_equal(f.bytes_per_s, 7);
    assert_string_equal(kept, "");
    f.kind = FAULT_TRUNCATE;
    assert_int_equal(fault_carry(&f, out, sizeof(out)), 0);
    assert_string_equal(out, "fault=truncate");
    f.kind = FAULT_500;
    assert_int_equal(fault_carry(&f, out, sizeof(out)), 0);
    assert_string_equal(out, "");
    f.kind = FAULT_BOMB;
    assert_int_equal(fault_carry(&f, out, 4), -1);

    assert_false(fault_on_body(FAULT_NONE));
    assert_false(fault_on_body(FAULT_429));
    assert_false(fault_on_body(FAULT_LOOP));
    assert_true(fault_on_body(FAULT_GARBAGE));
    assert_true(fault_on_body(FAULT_NOTIMAGE));
}

static void test_fault_rates(void **state)
{
    struct fault_rates rates;
    enum fault_kind k;
    double rate;
    char err[128];
    uint64_t rng = 42;
    int fired = 0;

    (void)state;
    assert_int_equal(fault_parse_rate("500=0.25", &k, &rate, err, sizeof(err)), 0);
    assert_int_equal(k, FAULT_500);
    assert_true(rate == 0.25);
    assert_int_equal(fault_parse_rate("truncate=1", &k, &rate, err, sizeof(err)), 0);
    assert_int_equal(k, FAULT_TRUNCATE);
    assert_int_equal(fault_parse_rate("500=1.5", &k, &rate, err, sizeof(err)), -1);
    assert_int_equal(fault_parse_rate("500=", &k, &rate, err, sizeof(err)), -1);
    assert_int_equal(fault_parse_rate("500", &k, &rate, err, sizeof(err)), -1);
    assert_int_equal(fault_parse_rate("nope=0.1", &k, &rate, err, sizeof(err)), -1);
    assert_int_equal(fault_parse_rate("redirect=0.1", &k, &rate, err, sizeof(err)), -1);
    assert_int_equal(fault_parse_rate("500=nan", &k, &rate, err, sizeof(err)), -1);

    fault_rates_init(&rates);
    assert_int_equal(fault_draw(&rates, 0, &rng), FAULT_NONE);
    rates.rate[FAULT_503] = 1.0;
    rates.rate[FAULT_GARBAGE] = 1.0;
    assert_int_equal(fault_draw(&rates, 0, &rng), FAULT_503);
    assert_int_equal(fault_draw(&rates, 1, &rng), FAULT_GARBAGE);
    fault_rates_init(&rates);
    rates.rate[FAULT_500] = 0.5;
    for (int i = 0; i < 1000; i++)
        fired += fault_draw(&rates, 0, &rng) == FAULT_500;
    assert_in_range(fired, 400, 600);
}

/* ---- counter ---- */

struct sum {
    long total;
    int keys;
};

static void sum_entry(const char *key, long n, void *arg)
{
    struct sum *s = arg;

    (void)key;
    s->total += n;
    s->keys++;
}

static void test_counter(void **state)
{
    struct counter_map *m = counter_new(500);
    char key[32];
    struct sum s = {0, 0};

    (void)state;
    assert_non_null(m);
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof(key), "/k/%d", i);
        assert_int_equal(counter_incr(m, key), 1);
    }
    assert_int_equal(counter_incr(m, "/k/7"), 2);
    assert_int_equal(counter_get(m, "/k/7"), 2);
    assert_int_equal(counter_get(m, "/absent"), 0);
    assert_int_equal(counter_incr(m, "/one-too-many"), -1);
    assert_int_equal(counter_count(m), 500);
    counter_each(m, sum_entry, &s);
    assert_int_equal(s.keys, 500);
    assert_int_equal(s.total, 501);
    counter_reset(m);
    assert_int_equal(counter_count(m), 0);
    assert_int_equal(counter_incr(m, "/k/7"), 1);
    counter_free(m);
}

/* ---- cache ---- */

static unsigned char *blob(size_t len, int fill)
{
    unsigned char *b = malloc(len);

    assert_non_null(b);
    memset(b, fill, len);
    return b;
}

static void test_cache_lru(void **state)
{
    struct cache *c = cache_new(300);
    const unsigned char *data;
    struct cache_stats st;
    unsigned char *big;
    size_t len;

    (void)state;
    assert_non_null(c);
    assert_int_equal(cache_put(c, 1, blob(100, 1), 100), 0);
    assert_int_equal(cache_put(c, 2, blob(100, 2), 100), 0);
    assert_int_equal(cache_put(c, 3, blob(100, 3), 100), 0);
    assert_int_equal(cache_get(c, 1, &data, &len), 0); /* 1 is now the most recent */
    assert_int_equal(len, 100);
    assert_int_equal(data[0], 1);
    assert_int_equal(cache_put(c, 4, blob(100, 4), 100), 0); /* evicts 2 */
    assert_int_equal(cache_get(c, 2, &data, &len), -1);
    assert_int_equal(cache_get(c, 1, &data, &len), 0);
    assert_int_equal(cache_get(c, 3, &data, &len), 0);
    assert_int_equal(cache_get(c, 4, &data, &len), 0);
    assert_int_equal(cache_put(c, 3, blob(50, 9), 50), 0); /* replace */
    assert_int_equal(cache_get(c, 3, &data, &len), 0);
    assert_int_equal(len, 50);
    assert_int_equal(data[0], 9);

    big = blob(301, 0);
    assert_int_equal(cache_put(c, 5, big, 301), -1); /* not taken */
    free(big);
    cache_get_stats(c, &st);
    assert_int_equal(st.entries, 3);
    assert_int_equal(st.bytes, 250);
    assert_int_equal(st.misses, 1);
    cache_free(c);
}

/* ---- stats ---- */

static void test_stats_json(void **state)
{
    struct stats *st = stats_new(2);
    struct fault_rates rates;
    struct cache_stats cs = {3, 4, 5, 6, 7};
    struct evbuffer *out = evbuffer_new();
    char *json;
    size_t len;

    (void)state;
    assert_non_null(st);
    fault_rates_init(&rates);
    rates.rate[FAULT_503] = 0.5;
    stats_request(st, "/200/300");
    stats_request(st, "/200/300");
    stats_request(st, "/a\"b");
    stats_request(st, "/third"); /* past the key cap */
    stats_reply(st, 302, FAULT_NONE);
    stats_reply(st, 503, FAULT_503);
    stats_json(st, &rates, &cs, 9, NULL, out);
    len = evbuffer_get_length(out);
    json = calloc(1, len + 1);
    assert_non_null(json);
    evbuffer_copyout(out, json, len);
    assert_non_null(strstr(json, "\"requests\": 4"));
    assert_non_null(strstr(json, "\"/200/300\": 2"));
    assert_non_null(strstr(json, "\"/a\\\"b\": 1"));
    assert_null(strstr(json, "/third"));
    assert_non_null(strstr(json, "\"(other)\": 1"));
    assert_non_null(strstr(json, "\"faults\": {\"503\": 1}"));
    assert_non_null(strstr(json, "\"rates\": {\"503\": 0.5}"));
    assert_non_null(strstr(json, "\"hits\": 3"));
    assert_non_null(strstr(json, "\"trickling\": 9, \"hosts\": {}}"));
    free(json);
    evbuffer_free(out);
    stats_free(st);
}

/* ---- image ---- */

/* Frame header of a JPEG: marker (0xC0..0xC2) and dimensions. -1 if none before the scan. */
static int jpeg_sof(const unsigned char *b, size_t len, int *marker, int *w, int *h, int *comps)
{
    size_t i = 2;

    if (len < 4 || b[0] != 0xff || b[1] != 0xd8)
        return -1;
    while (i + 4 <= len && b[i] == 0xff) {
        int m = b[i + 1];
        size_t seglen = ((size_t)b[i + 2] << 8) | b[i + 3];

        if (m == 0xc0 || m == 0xc1 || m == 0xc2) {
            if (i + 10 > len)
                return -1;
            *marker = m;
            *h = (b[i + 5] << 8) | b[i + 6];
            *w = (b[i + 7] << 8) | b[i + 8];
            *comps = b[i + 9];
            return 0;
        }
        if (m == 0xda)
            return -1;
        i += 2 + seglen;
    }
    return -1;
}

static void check_picture(int id, int w, int h, int flags)
{
    unsigned char *jpg = NULL, *px;
    size_t len = 0;
    char err[128];
    int marker, sw, sh, comps, dw, dh, dc;
    double sum = 0, sum2 = 0;
    size_t n;

    assert_int_equal(image_jpeg(id, w, h, flags, &jpg, &len, err, sizeof(err)), 0);
    assert_int_equal(jpeg_sof(jpg, len, &marker, &sw, &sh, &comps), 0);
    assert_int_equal(marker, 0xc2); /* progressive */
    assert_int_equal(sw, w);
    assert_int_equal(sh, h);
    assert_int_equal(comps, flags & IMAGE_GRAYSCALE ? 1 : 3);

    px = stbi_load_from_memory(jpg, (int)len, &dw, &dh, &dc, 0);
    assert_non_null(px);
    assert_int_equal(dw, w);
    assert_int_equal(dh, h);
    n = (size_t)dw * dh * dc;
    for (size_t i = 0; i < n; i++) {
        sum += px[i];
        sum2 += (double)px[i] * px[i];
    }
    if (n > 1000) /* not flat: a real spread of values */
        assert_true(sum2 / n - (sum / n) * (sum / n) > 100.0);
    stbi_image_free(px);
    free(jpg);
}

static void test_image_dimensions(void **state)
{
    (void)state;
    check_picture(0, 1, 1, 0);
    check_picture(1, 7, 3, 0);
    check_picture(237, 200, 300, 0);
    check_picture(1084, 640, 480, 0);
    check_picture(42, 333, 17, IMAGE_GRAYSCALE);
}

static void test_image_deterministic(void **state)
{
    unsigned char *a, *b, *c;
    size_t alen, blen, clen;
    char err[128];

    (void)state;
    assert_int_equal(image_jpeg(5, 120, 90, 0, &a, &alen, err, sizeof(err)), 0);
    assert_int_equal(image_jpeg(5, 120, 90, 0, &b, &blen, err, sizeof(err)), 0);
    assert_int_equal(image_jpeg(6, 120, 90, 0, &c, &clen, err, sizeof(err)), 0);
    assert_int_equal(alen, blen);
    assert_memory_equal(a, b, alen);
    assert_true(alen != clen || memcmp(a, c, alen) != 0);
    free(a);
    free(b);
    free(c);
    assert_int_equal(image_jpeg(5, 0, 90, 0, &a, &alen, err, sizeof(err)), -1);
    assert_int_equal(image_jpeg(5, 90, 70000, 0, &a, &alen, err, sizeof(err)), -1);
}

static void test_image_bomb(void **state)
{
    unsigned char *b;
    size_t len;
    char err[128];
    int marker, w, h, comps;

    (void)state;
    assert_int_equal(image_bomb(60000, 50000, &b, &len, err, sizeof(err)), 0);
    assert_true(len < 1024);
    assert_int_equal(jpeg_sof(b, len, &marker, &w, &h, &comps), 0);
    assert_int_equal(w, 60000);
    assert_int_equal(h, 50000);
    free(b);
    assert_int_equal(image_bomb(70000, 10, &b, &len, err, sizeof(err)), -1);
}

/* ---- slow: trickled replies, over loopback ---- */

#define TRICKLE_RATE    4 /* bytes a second */
#define TRICKLE_BIG     1000
#define TRICKLE_SMALL   (2 * TRICKLE_RATE) /* sent whole at the second tick */
#define TRICKLE_CLIENTS 16

struct trickle_server {
    struct event_base *base;
    struct evhttp *http;
    struct slow_set *slow;
};

struct trickle_client {
    int fd;
    char buf[4096];
    size_t len;
    int eof;
};

static void trickle_request(struct evhttp_request *req, void *arg)
{
    struct trickle_server *ts = arg;
    size_t len = strcmp(evhttp_request_get_uri(req), "/small") == 0 ? TRICKLE_SMALL : TRICKLE_BIG;
    struct evbuffer *body = evbuffer_new();
    char data[TRICKLE_BIG], n[32];

    memset(data, 'x', len);
    if (body == NULL || evbuffer_add(body, data, len) < 0) {
        evbuffer_free(body);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    snprintf(n, sizeof(n), "%zu", len);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Length", n);
    if (slow_start_rate(ts->slow, req, 200, "OK", body, TRICKLE_RATE) < 0) {
        evbuffer_free(body);
        evhttp_send_error(req, 500, NULL);
    }
}

static double trickle_now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Run the server's loop for ms. */
static void trickle_run(struct trickle_server *ts, long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    event_base_loopexit(ts->base, &tv);
    event_base_dispatch(ts->base);
}

/* Run the loop until count replies trickle, for at most 5 s. */
static void trickle_until(struct trickle_server *ts, size_t count)
{
    for (int i = 0; i < 50 && slow_count(ts->slow) != count; i++)
        trickle_run(ts, 100);
    assert_int_equal(slow_count(ts->slow), count);
}

static void trickle_connect(struct trickle_client *c, int port, const char *path)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    char req[128];
    int n;

    memset(c, 0, sizeof(*c));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path);
    assert_int_equal(send(c->fd, req, (size_t)n, 0), n);
}

/* Read what has arrived, without waiting. */
static void trickle_drain(struct trickle_client *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, MSG_DONTWAIT);

        if (n > 0) {
            c->len += (size_t)n;
            continue;
        }
        if (n == 0)
            c->eof = 1;
        else
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNRESET);
        break;
    }
    c->buf[c->len] = '\0';
}

/* Body bytes received so far; the headers must be complete and promise want bytes. */
static size_t trickle_body(const struct trickle_client *c, size_t want)
{
    const char *end = strstr(c->buf, "\r\n\r\n");
    char cl[64];

    assert_non_null(end);
    snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", want);
    assert_non_null(strstr(c->buf, cl));
    return c->len - (size_t)(end + 4 - c->buf);
}

/* At bytes_per_s the body goes out that fast and no faster, a small one is finished, a client
 * that leaves frees its reply, and slow_free ends the replies still going. */
static void test_slow_rate(void **state)
{
    struct trickle_server ts;
    struct evhttp_bound_socket *bound;
    struct sockaddr_in sa;
    socklen_t salen = sizeof(sa);
    struct trickle_client big[TRICKLE_CLIENTS], small;
    double started, elapsed;

    (void)state;
    ts.base = event_base_new();
    assert_non_null(ts.base);
    ts.http = evhttp_new(ts.base);
    ts.slow = slow_new(ts.base);
    assert_non_null(ts.http);
    assert_non_null(ts.slow);
    evhttp_set_gencb(ts.http, trickle_request, &ts);
    bound = evhttp_bind_socket_with_handle(ts.http, "127.0.0.1", 0);
    assert_non_null(bound);
    assert_int_equal(getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&sa, &salen),
                     0);

    started = trickle_now();
    for (int i = 0; i < TRICKLE_CLIENTS; i++)
        trickle_connect(&big[i], ntohs(sa.sin_port), "/");
    trickle_connect(&small, ntohs(sa.sin_port), "/small");
    trickle_until(&ts, TRICKLE_CLIENTS + 1);
    trickle_run(&ts, 2500);
    trickle_until(&ts, TRICKLE_CLIENTS); /* the small one is done */
    elapsed = trickle_now() - started;

    trickle_drain(&small);
    assert_int_equal(trickle_body(&small, TRICKLE_SMALL), TRICKLE_SMALL);
    for (int i = 0; i < TRICKLE_CLIENTS; i++) {
        size_t got;

        trickle_drain(&big[i]);
        got = trickle_body(&big[i], TRICKLE_BIG);
        assert_false(big[i].eof);
        assert_true(got >= TRICKLE_RATE);
        assert_true(got <= (size_t)elapsed * TRICKLE_RATE);
        assert_true(got % TRICKLE_RATE == 0);
    }

    /* half the clients leave: their replies go within a few ticks */
    for (int i = 0; i < TRICKLE_CLIENTS; i += 2)
        close(big[i].fd);
    trickle_until(&ts, TRICKLE_CLIENTS / 2);

    /* the rest are still trickling when the server goes away */
    slow_free(ts.slow);
    evhttp_free(ts.http);
    event_base_free(ts.base);
    for (int i = 1; i < TRICKLE_CLIENTS; i += 2) {
        trickle_drain(&big[i]);
        assert_true(big[i].eof);
        assert_true(trickle_body(&big[i], TRICKLE_BIG) < TRICKLE_BIG);
        close(big[i].fd);
    }
    close(small.fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_sizes),
        cmocka_unit_test(test_route_other),
        cmocka_unit_test(test_route_parse_size),
        cmocka_unit_test(test_query_tokens),
        cmocka_unit_test(test_query_decode_and_append),
        cmocka_unit_test(test_fault_query),
        cmocka_unit_test(test_fault_query_errors),
        cmocka_unit_test(test_fault_carry),
        cmocka_unit_test(test_fault_rates),
        cmocka_unit_test(test_counter),
        cmocka_unit_test(test_cache_lru),
        cmocka_unit_test(test_stats_json),
        cmocka_unit_test(test_slow_rate),
        cmocka_unit_test(test_image_dimensions),
        cmocka_unit_test(test_image_deterministic),
        cmocka_unit_test(test_image_bomb),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
