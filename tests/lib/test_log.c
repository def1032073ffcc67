/* test_log.c -- log lines: one record per line whatever the values hold, JSON built from the
 * fields (not re-split text), credentials masked, long values cut without breaking the line. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../lib/log.c"

static char out[LOG_VALUE_MAX * 4];

/* The line log_msg would write, without the timestamp and program (the fields only). */
__attribute__((format(printf, 2, 3))) static const char *fmt_line(int json, const char *fmt, ...)
{
    va_list ap;
    log_json = json;
    log_prog = "t";
    va_start(ap, fmt);
    size_t n = log_format(out, sizeof(out), LL_INFO, fmt, &ap);
    va_end(ap);
    assert_true(n > 0 && n < sizeof(out));
    assert_int_equal(out[n - 1], '\n');
    out[n - 1] = '\0';
    assert_null(strchr(out, '\n')); /* one record, one line */
    if (json)
        return out;
    const char *p = strstr(out, " info t ");
    assert_non_null(p);
    return p + 8;
}

static const char *json_fields(const char *line)
{
    const char *p = strstr(line, "\"prog\":\"t\"");
    assert_non_null(p);
    return p + 10;
}

static void test_plain_fields(void **state)
{
    assert_string_equal(fmt_line(0, "event=start n=%d x=%s", 3, "abc"), "event=start n=3 x=abc");
    assert_string_equal(json_fields(fmt_line(1, "event=start n=%d x=%s", 3, "abc")),
                        ",\"event\":\"start\",\"n\":\"3\",\"x\":\"abc\"}");
}

static void test_newline_cannot_forge_a_line(void **state)
{
    const char *url = "http://h/a\n2026-01-01T00:00:00.000Z error t event=forged";
    assert_string_equal(fmt_line(0, "event=dead url=%s reason=%s", url, "http_404"),
                        "event=dead url=\"http://h/a\\n2026-01-01T00:00:00.000Z error t "
                        "event=forged\" reason=http_404");
    assert_string_equal(json_fields(fmt_line(1, "event=dead url=%s", url)),
                        ",\"event\":\"dead\",\"url\":\"http://h/a\\n2026-01-01T00:00:00.000Z "
                        "error t event=forged\"}");
    fmt_line(0, "event=x v=%s", "a\r\x1b[2Jb\x7f");
    assert_non_null(strstr(out, "v=\"a\\r\\x1b[2Jb\\x7f\""));
}

static void test_bytes_that_are_not_utf8_are_escaped(void **state)
{
    assert_string_equal(
        json_fields(fmt_line(1, "event=x v=%s", "caf\xc3\xa9 \xff\xc3(\xed\xa0\x80")),
        ",\"event\":\"x\",\"v\":\"caf\xc3\xa9 \\u00ff\\u00c3(\\u00ed\\u00a0\\u0080\"}");
    assert_string_equal(fmt_line(0, "event=x v=%s", "\xffok"), "event=x v=\"\\xffok\"");
    assert_string_equal(fmt_line(0, "event=x v=%s", "\xf5\x80\x80\x80"),
                        "event=x v=\"\\xf5\\x80\\x80\\x80\"");
}

static void test_value_with_quotes_and_keys_stays_whole(void **state)
{
    const char *v = "he said \"hi\" key=\"x\" and left";
    /* The caller's quotes in the format are not doubled: quoting is the logger's. */
    assert_string_equal(fmt_line(0, "event=e error=\"%s\" n=%d", v, 7),
                        "event=e error=\"he said \\\"hi\\\" key=\\\"x\\\" and left\" n=7");
    assert_string_equal(json_fields(fmt_line(1, "event=e error=\"%s\" n=%d", v, 7)),
                        ",\"event\":\"e\",\"error\":\"he said \\\"hi\\\" key=\\\"x\\\" and left\","
                        "\"n\":\"7\"}");
}

static void test_quoted_literal_holding_a_key(void **state)
{
    assert_string_equal(fmt_line(0,
                                 "event=reload_failed error=\"%s\" note=\"keeping transforms=%s\"",
                                 "bad", "grayscale"),
                        "event=reload_failed error=bad note=\"keeping transforms=grayscale\"");
    assert_string_equal(json_fields(fmt_line(1, "event=x note=\"a b=%d\" n=%d", 1, 2)),
                        ",\"event\":\"x\",\"note\":\"a b=1\",\"n\":\"2\"}");
}

static void test_values_with_literals_and_every_type(void **state)
{
    assert_string_equal(
        fmt_line(0, "event=mongo_%s redis=%s:%d stream=%surls", "up", "h", 6379, "p:"),
        "event=mongo_up redis=h:6379 stream=p:urls");
    assert_string_equal(fmt_line(0, "a=%zu b=%lld c=%ld d=%.1f e=%c f=%5.2s g=%% h=%*d i=%lu",
                                 (size_t)5, -9LL, 10L, 2.25, 'q', "xyz", 4, 7, 11UL),
                        "a=5 b=-9 c=10 d=2.2 e=q f=\"   xy\" g=% h=\"   7\" i=11");
    assert_string_equal(fmt_line(0, "event=x url=\"%.5s\"", "abcdefgh"), "event=x url=abcde");
    assert_string_equal(fmt_line(0, "event=x e=%s", ""), "event=x e=\"\"");
    assert_string_equal(fmt_line(0, "event=x e=%s", (char *)NULL), "event=x e=(null)");
    /* text with no key of its own is the message */
    assert_string_equal(fmt_line(0, "plain words %d", 3), "msg=\"plain words 3\"");
}

static void test_credentials_masked(void **state)
{
    assert_string_equal(fmt_line(0, "event=x error=\"bad '%s'\"", "redis://:s3cret@h:1/x"),
                        "event=x error=\"bad 'redis://:***@h:1/x'\"");
    fmt_line(1, "event=x uri=%s", "mongodb://user:pa55@db1,db2/pixflow");
    assert_null(strstr(out, "pa55"));
    assert_non_null(strstr(out, "mongodb://user:***@db1,db2/pixflow"));
}

static void test_long_values_cut_line_stays_valid(void **state)
{
    char big[5000];
    memset(big, '"', sizeof(big) - 1); /* every byte doubles when escaped */
    big[sizeof(big) - 1] = '\0';
    fmt_line(1, "event=x a=%s b=%s c=%s d=%s e=%s", big, big, big, big, big);
    size_t n = strlen(out);
    assert_true(n < sizeof(out));
    assert_int_equal(out[n - 1], '}');
    assert_non_null(strstr(out, "...\""));
    fmt_line(0, "event=x a=%s b=%s c=%s d=%s e=%s", big, big, big, big, big);
    assert_non_null(strstr(out, "..."));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_fields),
        cmocka_unit_test(test_newline_cannot_forge_a_line),
        cmocka_unit_test(test_value_with_quotes_and_keys_stays_whole),
        cmocka_unit_test(test_bytes_that_are_not_utf8_are_escaped),
        cmocka_unit_test(test_quoted_literal_holding_a_key),
        cmocka_unit_test(test_values_with_literals_and_every_type),
        cmocka_unit_test(test_credentials_masked),
        cmocka_unit_test(test_long_values_cut_line_stays_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
