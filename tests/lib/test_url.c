/* test_url.c -- SPEC §4 through url_parse: every reason, the boundaries, the normal form. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "url.h"

static struct url_hosts hosts;

static int setup(void **state)
{
    char err[128];
    return url_hosts_parse("picsum.photos, fastly.picsum.photos", &hosts, err, sizeof(err));
}

/* url_parse on a string; the normal form lands in *u. */
static enum url_reason parse(const char *line, struct url *u)
{
    return url_parse(line, strlen(line), &hosts, u);
}

static void expect_norm(const char *line, const char *norm)
{
    struct url u;
    enum url_reason r = parse(line, &u);
    if (r != URL_OK)
        fail_msg("'%s' rejected as %s", line, url_reason_name(r));
    assert_string_equal(u.norm, norm);
}

static void expect_reason(const char *line, enum url_reason want)
{
    struct url u;
    enum url_reason r = parse(line, &u);
    if (r != want)
        fail_msg("'%s': got %s, want %s", line, url_reason_name(r), url_reason_name(want));
}

static void test_valid_forms(void **state)
{
    struct url u;
    assert_int_equal(parse("https://picsum.photos/200/300", &u), URL_OK);
    assert_string_equal(u.norm, "https://picsum.photos/200/300");
    assert_int_equal(u.width, 200);
    assert_int_equal(u.height, 300);
    assert_int_equal(u.https, 1);
    assert_int_equal(u.port, 0);
    assert_string_equal(u.host, "picsum.photos");

    assert_int_equal(parse("http://fastly.picsum.photos/64", &u), URL_OK);
    assert_string_equal(u.norm, "http://fastly.picsum.photos/64");
    assert_int_equal(u.width, 64);
    assert_int_equal(u.height, 64); /* /W is a square */
    assert_int_equal(u.https, 0);

    expect_norm("https://picsum.photos/200/300.jpg", "https://picsum.photos/200/300.jpg");
    expect_norm("https://picsum.photos/200.jpg", "https://picsum.photos/200.jpg");
    expect_norm("https://picsum.photos/200/300.JPG", "https://picsum.photos/200/300.jpg");
}

static void test_normal_form(void **state)
{
    /* scheme and host case */
    expect_norm("HTTPS://PICSUM.PHOTOS/200/300", "https://picsum.photos/200/300");
    expect_norm("HtTp://Picsum.Photos/10/20", "http://picsum.photos/10/20");
    /* trailing slash */
    expect_norm("https://picsum.photos/200/300/", "https://picsum.photos/200/300");
    expect_norm("https://picsum.photos/200/", "https://picsum.photos/200");
    /* default ports dropped, others kept */
    expect_norm("https://picsum.photos:443/200/300", "https://picsum.photos/200/300");
    expect_norm("http://picsum.photos:80/200/300", "http://picsum.photos/200/300");
    expect_norm("https://picsum.photos:80/200/300", "https://picsum.photos:80/200/300");
    expect_norm("http://picsum.photos:8080/1/1", "http://picsum.photos:8080/1/1");
    expect_norm("https://picsum.photos:0443/1/1", "https://picsum.photos/1/1");
    expect_norm("https://picsum.photos:/1/1", "https://picsum.photos/1/1");
    /* fragments dropped, queries kept as they are */
    expect_norm("https://picsum.photos/200/300#top", "https://picsum.photos/200/300");
    expect_norm("https://picsum.photos/200/300?grayscale&blur=2",
                "https://picsum.photos/200/300?grayscale&blur=2");
    expect_norm("https://picsum.photos/200/300?B=1&a=2#x", "https://picsum.photos/200/300?B=1&a=2");
    expect_norm("https://picsum.photos/200/300?", "https://picsum.photos/200/300");
    expect_norm("https://picsum.photos/200/300/?x=1", "https://picsum.photos/200/300?x=1");
    /* leading zeros in sizes */
    expect_norm("https://picsum.photos/0200/0300", "https://picsum.photos/200/300");
    expect_norm("https://picsum.photos/00000001", "https://picsum.photos/1");
    /* whitespace and CR around */
    expect_norm("  https://picsum.photos/200/300\t\r", "https://picsum.photos/200/300");
    expect_norm("https://picsum.photos/200/300\r\n", "https://picsum.photos/200/300");
    expect_norm("\xef\xbb\xbfhttps://picsum.photos/5/5", "https://picsum.photos/5/5");
    /* percent-encoded unreserved characters are decoded */
    expect_norm("https://picsum.photos/%32%30%30/300", "https://picsum.photos/200/300");
    expect_norm("https://picsum.photos/200/300%2Ejpg", "https://picsum.photos/200/300.jpg");
}

static void test_sizes(void **state)
{
    expect_norm("https://picsum.photos/1/1", "https://picsum.photos/1/1");
    expect_norm("https://picsum.photos/5000/5000", "https://picsum.photos/5000/5000");
    expect_norm("https://picsum.photos/5000", "https://picsum.photos/5000");
    expect_reason("https://picsum.photos/0/300", URL_BAD_SIZE);
    expect_reason("https://picsum.photos/300/0", URL_BAD_SIZE);
    expect_reason("https://picsum.photos/0", URL_BAD_SIZE);
    expect_reason("https://picsum.photos/5001/300", URL_BAD_SIZE);
    expect_reason("https://picsum.photos/300/5001", URL_BAD_SIZE);
    expect_reason("https://picsum.photos/5001", URL_BAD_SIZE);
    expect_reason("https://picsum.photos/99999999999999999999/1", URL_BAD_SIZE);
    expect_reason("https://picsum.photos/000/1", URL_BAD_SIZE);
}

static void test_bad_path(void **state)
{
    static const char *const bad[] = {
        "https://picsum.photos",
        "https://picsum.photos/",
        "https://picsum.photos?x=1",
        "https://picsum.photos/abc/300",
        "https://picsum.photos/200/abc",
        "https://picsum.photos/200/300/400",
        "https://picsum.photos//200/300",
        "https://picsum.photos/200//300",
        "https://picsum.photos/200/300//",
        "https://picsum.photos/-1/300",
        "https://picsum.photos/+1/300",
        "https://picsum.photos/2e3/300",
        "https://picsum.photos/200/300.png",
        "https://picsum.photos/200/300.jpeg",
        "https://picsum.photos/id/1/200/300",
        "https://picsum.photos/200%2F300", /* an encoded '/' is not a separator */
        "https://picsum.photos/200/30%",   /* broken escape */
        "https://picsum.photos/200/3%0",
        "https://picsum.photos/200/%zz",
        NULL,
    };
    for (int i = 0; bad[i]; i++)
        expect_reason(bad[i], URL_BAD_PATH);
}

static void test_bad_scheme(void **state)
{
    expect_reason("ftp://picsum.photos/200/300", URL_BAD_SCHEME);
    expect_reason("picsum.photos/200/300", URL_BAD_SCHEME);
    expect_reason("//picsum.photos/200/300", URL_BAD_SCHEME);
    expect_reason("https:/picsum.photos/200/300", URL_BAD_SCHEME);
    expect_reason("https:picsum.photos/200/300", URL_BAD_SCHEME);
    expect_reason("httpss://picsum.photos/200/300", URL_BAD_SCHEME);
    expect_reason("file:///etc/passwd", URL_BAD_SCHEME);
    expect_reason("garbage", URL_BAD_SCHEME);
    expect_reason("://picsum.photos/1/1", URL_BAD_SCHEME);
}

static void test_userinfo(void **state)
{
    expect_reason("https://user:pass@picsum.photos/200/300", URL_HAS_USERINFO);
    expect_reason("https://user@picsum.photos/200/300", URL_HAS_USERINFO);
    expect_reason("https://@picsum.photos/200/300", URL_HAS_USERINFO);
    expect_reason("https://picsum.photos@evil.example/200/300", URL_HAS_USERINFO);
    /* '@' after the authority is a query or path character, not user-info */
    expect_norm("https://picsum.photos/200/300?mail=a@b", "https://picsum.photos/200/300?mail=a@b");
}

static void test_bad_host(void **state)
{
    expect_reason("https://example.com/200/300", URL_BAD_HOST);
    expect_reason("https://picsum.photos.evil.com/200/300", URL_BAD_HOST);
    expect_reason("https://evilpicsum.photos/200/300", URL_BAD_HOST);
    expect_reason("https:///200/300", URL_BAD_HOST);
    expect_reason("https://127.0.0.1/200/300", URL_BAD_HOST);
    expect_reason("https://[::1]/200/300", URL_BAD_HOST);
    expect_reason("https://[2001:db8::1]:443/200/300", URL_BAD_HOST);
    expect_reason("https://picsum.photos./200/300", URL_BAD_HOST);
    expect_reason("https://picsum..photos/200/300", URL_BAD_HOST);
    expect_reason("https://pic%73um.photos/200/300", URL_BAD_HOST);
}

static void test_bad_port(void **state)
{
    expect_reason("https://picsum.photos:0/200/300", URL_BAD_PORT);
    expect_reason("https://picsum.photos:65536/200/300", URL_BAD_PORT);
    expect_reason("https://picsum.photos:99999/200/300", URL_BAD_PORT);
    expect_reason("https://picsum.photos:123456/200/300", URL_BAD_PORT);
    expect_reason("https://picsum.photos:http/200/300", URL_BAD_PORT);
    expect_reason("https://picsum.photos:-1/200/300", URL_BAD_PORT);
    expect_reason("https://picsum.photos:443:443/200/300", URL_BAD_PORT);
    expect_norm("https://picsum.photos:65535/1/1", "https://picsum.photos:65535/1/1");
    expect_norm("https://picsum.photos:1/1/1", "https://picsum.photos:1/1/1");
}

static void test_chars_and_encoding(void **state)
{
    struct url u;
    /* NUL is not text */
    const char nul[] = "https://picsum.photos/200\0/300";
    assert_int_equal(url_parse(nul, sizeof(nul) - 1, &hosts, &u), URL_NOT_UTF8);
    assert_int_equal(url_parse("\0", 1, &hosts, &u), URL_NOT_UTF8);
    /* invalid UTF-8: stray continuation, truncated sequence, overlong, surrogate, > U+10FFFF */
    expect_reason("https://picsum.photos/200/300\x80", URL_NOT_UTF8);
    expect_reason("https://picsum.photos/\xc3", URL_NOT_UTF8);
    expect_reason("https://picsum.photos/\xc0\xaf", URL_NOT_UTF8);
    expect_reason("https://picsum.photos/\xed\xa0\x80", URL_NOT_UTF8);
    expect_reason("https://picsum.photos/\xf4\x90\x80\x80", URL_NOT_UTF8);
    expect_reason("\xff\xfe", URL_NOT_UTF8);
    /* valid UTF-8 that URLs never hold raw */
    expect_reason("https://picsum.photos/200/300?q=\xc3\xa9", URL_BAD_CHAR);
    expect_reason("https://pic\xc2\xa0sum.photos/1/1", URL_BAD_CHAR);
    /* spaces and controls inside */
    expect_reason("https://picsum.photos/200 /300", URL_BAD_CHAR);
    expect_reason("https://picsum.photos/200/300\r?x", URL_BAD_CHAR);
    expect_reason("https://picsum.photos/200/300\x1b", URL_BAD_CHAR);
    expect_reason("https://picsum.photos/200/\"300\"", URL_BAD_CHAR);
    expect_reason("https://picsum.photos/<200>/300", URL_BAD_CHAR);
    expect_reason("https://picsum.photos\\200\\300", URL_BAD_CHAR);
}

static void test_empty(void **state)
{
    struct url u;
    assert_int_equal(url_parse("", 0, &hosts, &u), URL_EMPTY);
    expect_reason(" ", URL_EMPTY);
    expect_reason("\r", URL_EMPTY);
    expect_reason(" \t\r\n\v\f", URL_EMPTY);
    expect_reason("\xef\xbb\xbf", URL_EMPTY);
}

/* Lines of exactly n bytes: a valid URL padded in its query. */
static char *url_of_length(size_t n)
{
    const char *head = "https://picsum.photos/1/1?p=";
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, 'a', n);
    memcpy(s, head, strlen(head) < n ? strlen(head) : n);
    s[n] = '\0';
    return s;
}

static void test_lengths(void **state)
{
    struct url u;
    for (size_t n = 1; n < 5; n++) {
        char *s = url_of_length(n);
        assert_int_equal(url_parse(s, n, &hosts, &u), URL_BAD_SCHEME);
        free(s);
    }
    char *s = url_of_length(URL_MAX);
    assert_int_equal(url_parse(s, URL_MAX, &hosts, &u), URL_OK);
    assert_int_equal(strlen(u.norm), URL_MAX);
    assert_memory_equal(u.norm, s, URL_MAX);
    free(s);

    s = url_of_length(URL_MAX + 1);
    assert_int_equal(url_parse(s, URL_MAX + 1, &hosts, &u), URL_TOO_LONG);
    free(s);
    /* what counts is the length once trimmed: CR and spaces around do not make it too long */
    s = url_of_length(URL_MAX + 3);
    s[0] = ' ';
    memcpy(s + 1, "https://picsum.photos/1/1?p=", 28);
    s[URL_MAX + 1] = '\r';
    s[URL_MAX + 2] = ' ';
    assert_int_equal(url_parse(s, URL_MAX + 3, &hosts, &u), URL_OK);
    free(s);

    size_t big = 1 << 20;
    s = url_of_length(big);
    assert_int_equal(url_parse(s, big, &hosts, &u), URL_TOO_LONG);
    free(s);
}

static void test_check_hop(void **state)
{
    assert_int_equal(
        url_check_hop("https://fastly.picsum.photos/id/237/200/300.jpg?hmac=abc", &hosts), URL_OK);
    assert_int_equal(url_check_hop("http://picsum.photos/anything/at/all", &hosts), URL_OK);
    assert_int_equal(url_check_hop("HTTPS://FASTLY.PICSUM.PHOTOS:443/x", &hosts), URL_OK);
    assert_int_equal(url_check_hop("https://evil.example/id/1/200/300.jpg", &hosts), URL_BAD_HOST);
    assert_int_equal(url_check_hop("https://127.0.0.1/x", &hosts), URL_BAD_HOST);
    assert_int_equal(url_check_hop("https://[::1]/x", &hosts), URL_BAD_HOST);
    assert_int_equal(url_check_hop("ftp://picsum.photos/x", &hosts), URL_BAD_SCHEME);
    assert_int_equal(url_check_hop("file:///etc/passwd", &hosts), URL_BAD_SCHEME);
    assert_int_equal(url_check_hop("/id/1/200/300.jpg", &hosts), URL_BAD_SCHEME);
    assert_int_equal(url_check_hop("https://a:b@picsum.photos/x", &hosts), URL_HAS_USERINFO);
    assert_int_equal(url_check_hop("https://picsum.photos:0/x", &hosts), URL_BAD_PORT);
    assert_int_equal(url_check_hop("https://picsum.photos/x y", &hosts), URL_BAD_CHAR);
    char *s = url_of_length(URL_MAX + 1);
    assert_int_equal(url_check_hop(s, &hosts), URL_TOO_LONG);
    free(s);
}

static void test_hosts_parse(void **state)
{
    struct url_hosts h;
    char err[128];
    assert_int_equal(url_hosts_parse("A.Example, b.example,\tc.example,,", &h, err, sizeof(err)),
                     0);
    assert_int_equal(h.count, 3);
    assert_string_equal(h.name[0], "a.example");
    assert_string_equal(h.name[2], "c.example");
    assert_true(url_host_allowed(&h, "B.EXAMPLE", 9));
    assert_false(url_host_allowed(&h, "b.example.org", 13));
    assert_int_equal(url_hosts_parse("", &h, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no host"));
    assert_int_equal(url_hosts_parse("good.example,bad_host!", &h, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "bad_host!"));
    assert_int_equal(url_hosts_parse("10.0.0.1", &h, err, sizeof(err)), -1);
}

static void test_reason_names(void **state)
{
    static const char *const names[] = {"ok",       "empty",      "too_long", "not_utf8",
                                        "bad_char", "bad_scheme", "userinfo", "bad_host",
                                        "bad_port", "bad_path",   "bad_size"};
    for (int r = 0; r < URL_REASON_COUNT; r++)
        assert_string_equal(url_reason_name((enum url_reason)r), names[r]);
    assert_string_equal(url_reason_name(URL_REASON_COUNT), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_forms),
        cmocka_unit_test(test_normal_form),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_bad_path),
        cmocka_unit_test(test_bad_scheme),
        cmocka_unit_test(test_userinfo),
        cmocka_unit_test(test_bad_host),
        cmocka_unit_test(test_bad_port),
        cmocka_unit_test(test_chars_and_encoding),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_check_hop),
        cmocka_unit_test(test_hosts_parse),
        cmocka_unit_test(test_reason_names),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
