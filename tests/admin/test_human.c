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

static char *table_text(const struct human_table *t, int *rc)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    assert_non_null(mem);
    *rc = human_table_print(t, mem);
    fclose(mem);
    return text;
}

/* The column where `needle` starts on the line holding it, in characters. */
static long column_of(const char *text, const char *needle)
{
    const char *hit = strstr(text, needle), *line = hit;
    assert_non_null(hit);
    while (line > text && line[-1] != '\n')
        line--;
    long col = 0;
    for (const char *p = line; p < hit; p++)
        col += ((unsigned char)*p & 0xc0) != 0x80;
    return col;
}

/* Names longer than any fixed width (the counter that used to push its number one column to
 * the right), multi-byte and hostile ones: the numbers still end in one column. */
static void test_table_long_names(void **state)
{
    struct human_table *t = human_table_new("lrr", 2);
    assert_non_null(t);
    assert_int_equal(human_table_row(t, (const char *[]){"counters", "total", NULL}, NULL), 0);
    assert_int_equal(human_table_row(t, (const char *[]){"  ingest_lines", "1000000", ""}, NULL),
                     0);
    assert_int_equal(
        human_table_row(t, (const char *[]){"    ingest_invalid:bad_scheme", "3", "0.5/s"}, NULL),
        0);
    assert_int_equal(human_table_text(t, "\n%s", "stream"), 0);
    assert_int_equal(
        human_table_row(t, (const char *[]){"  failed:d\xc3\xa9j\xc3\xa0_vu", "22", NULL}, NULL),
        0);
    assert_int_equal(
        human_table_row(t, (const char *[]){"  bad\x1b[2Jname\xff", "4", NULL}, "note \x07 after"),
        0);
    int rc;
    char *text = table_text(t, &rc);
    assert_int_equal(rc, 0);
    /* Every number ends where the header's "total" ends. */
    long end = column_of(text, "total") + 5;
    assert_int_equal(column_of(text, "1000000") + 7, end);
    assert_int_equal(column_of(text, "3  0.5/s") + 1, end);
    assert_int_equal(column_of(text, "22") + 2, end);
    assert_int_equal(column_of(text, "4  note") + 1, end);
    assert_int_equal(column_of(text, "0.5/s"), end + 2);
    assert_non_null(strstr(text, "\nstream\n"));
    assert_non_null(strstr(text, "  bad?[2Jname?  ")); /* shown, never sent to the terminal */
    assert_non_null(strstr(text, "note ? after\n"));
    assert_null(strstr(text, " \n")); /* no row ends in blanks */
    free(text);
    human_table_free(t);
}

/* A name over HUMAN_CELL_MAX characters is cut, so it cannot widen its column without bound. */
static void test_table_cut(void **state)
{
    char longname[300];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    struct human_table *t = human_table_new("lr", 1);
    assert_non_null(t);
    human_table_row(t, (const char *[]){longname, "1"}, NULL);
    human_table_row(t, (const char *[]){"short", "22"}, NULL);
    int rc;
    char *text = table_text(t, &rc);
    assert_int_equal(rc, 0);
    char want[HUMAN_CELL_MAX + 8];
    memset(want, 'x', HUMAN_CELL_MAX - 3);
    snprintf(want + HUMAN_CELL_MAX - 3, sizeof(want) - (HUMAN_CELL_MAX - 3), "...  1\n");
    assert_memory_equal(text, want, strlen(want));
    assert_int_equal(column_of(text, "22"), HUMAN_CELL_MAX + 1);
    free(text);
    human_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_since_dates),
        cmocka_unit_test(test_since_durations),
        cmocka_unit_test(test_since_refused),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_print),
        cmocka_unit_test(test_table_long_names),
        cmocka_unit_test(test_table_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
