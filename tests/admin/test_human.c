/* test_human.c -- admin/human.c: --since dates and durations, sizes and ages as printed, and
 * stored strings made harmless for a terminal. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "human.h"

static long long since(const char *text, long long now)
{
    long long out = -12345;
    char err[256];
    assert_int_equal(human_since(text, now, &out, err, sizeof(err)), 0);
    return out;
}

static void test_since_dates(void **state)
{
    assert_int_equal(since("1970-01-01", 0), 0);
    assert_int_equal(since("2024-05-01", 0), 1714521600000LL);
    assert_int_equal(since("2024-05-01T12:30", 0), 1714566600000LL);
    assert_int_equal(since("2024-05-01T12:30:15Z", 0), 1714566615000LL);
    assert_int_equal(since("2024-05-01 12:30:15", 0), 1714566615000LL);
    assert_int_equal(since("2024-02-29", 0), 1709164800000LL); /* leap day */
    assert_int_equal(since("2000-03-01", 0), 951868800000LL);  /* 2000 is a leap year */
    assert_int_equal(since("2100-03-01", 0), 4107542400000LL); /* 2100 is not */
}

static void test_since_durations(void **state)
{
    long long now = 1714566615000LL;
    assert_int_equal(since("30s", now), now - 30000);
    assert_int_equal(since("15m", now), now - 900000);
    assert_int_equal(since("24h", now), now - 86400000LL);
    assert_int_equal(since("7d", now), now - 7 * 86400000LL);
    assert_int_equal(since("0s", now), now);
}

static void test_since_refused(void **state)
{
    static const char *const bad[] = {
        "",
        "yesterday",
        "2024-5-1",
        "2024-13-01",
        "2024-02-30",
        "2023-02-29",
        "2024-05-01T",
        "2024-05-01T25:00",
        "2024-05-01T12:60",
        "2024-05-01T12:30:61",
        "2024-05-01+02:00",
        "1969-12-31",
        "10",
        "10x",
        "-5m",
        "5 m",
        "1h30m",
        "99999999999999d",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        long long out = 7;
        char err[256] = "";
        if (human_since(bad[i], 1000000, &out, err, sizeof(err)) != -1)
            fail_msg("'%s' was accepted as %lld", bad[i], out);
        assert_non_null(strstr(err, "neither a UTC date"));
        assert_int_equal(out, 7);
    }
}

static void test_duration(void **state)
{
    char buf[32];
    assert_string_equal(human_duration(-1, buf, sizeof(buf)), "-");
    assert_string_equal(human_duration(0, buf, sizeof(buf)), "0ms");
    assert_string_equal(human_duration(999, buf, sizeof(buf)), "999ms");
    assert_string_equal(human_duration(12500, buf, sizeof(buf)), "12s");
    assert_string_equal(human_duration(185000, buf, sizeof(buf)), "3m05s");
    assert_string_equal(human_duration(7800000, buf, sizeof(buf)), "2h10m");
    assert_string_equal(human_duration(3 * 86400000LL + 4 * 3600000LL, buf, sizeof(buf)), "3d04h");
}

static void test_bytes(void **state)
{
    char buf[32];
    assert_string_equal(human_bytes(0, buf, sizeof(buf)), "0 B");
    assert_string_equal(human_bytes(1023, buf, sizeof(buf)), "1023 B");
    assert_string_equal(human_bytes(1536, buf, sizeof(buf)), "1.5 KiB");
    assert_string_equal(human_bytes(20.0 * 1024 * 1024, buf, sizeof(buf)), "20.0 MiB");
    assert_string_equal(human_bytes(3.25 * 1024 * 1024 * 1024, buf, sizeof(buf)), "3.2 GiB");
}

static char *printed(const char *s, size_t len, size_t width, size_t *written)
{
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    assert_non_null(f);
    *written = human_print(f, s, len, width);
    fclose(f);
    assert_int_equal(*written, n);
    return text;
}

static void test_print(void **state)
{
    size_t n;
    char *t = printed("https://x/\033[2J\r\n\x7f!", 18, 0, &n);
    assert_string_equal(t, "https://x/?[2J??"
                           "?!"); /* split: "??!" is a trigraph */
    free(t);
    t = printed("abcdefghij", 10, 6, &n);
    assert_string_equal(t, "abc...");
    free(t);
    t = printed("abcdef", 6, 6, &n); /* fits: not cut */
    assert_string_equal(t, "abcdef");
    free(t);
    t = printed("abcdef", 6, 2, &n); /* too narrow for dots */
    assert_string_equal(t, "ab");
    free(t);
    t = printed("ab\xc3\xa9\xc3\xa9zzzz", 10, 6, &n); /* never half of "é" */
    assert_string_equal(t, "ab...");
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_since_dates),   cmocka_unit_test(test_since_durations),
        cmocka_unit_test(test_since_refused), cmocka_unit_test(test_duration),
        cmocka_unit_test(test_bytes),         cmocka_unit_test(test_print),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
