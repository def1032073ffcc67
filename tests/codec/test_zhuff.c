/* test_zhuff.c -- Huffman-only zlib streams: every kind of input inflates back exactly through
 * zlib (which checks the Adler-32 too), within zhuff_bound; runs and noise take the paths they
 * should (runs shrink to almost nothing, noise is stored). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "zhuff.h"

/* Compresses in, checks the bound and zlib's inflate of the result; returns the stream's size. */
static size_t round_trip(const unsigned char *in, size_t len)
{
    size_t bound = zhuff_bound(len), zlen;
    unsigned char *z = malloc(bound), *back = malloc(len + 1);
    uLongf back_len = (uLongf)len + 1;

    assert_non_null(z);
    assert_non_null(back);
    zlen = zhuff_compress(in, len, z);
    assert_true(zlen > 6 && zlen <= bound);
    assert_int_equal(uncompress(back, &back_len, z, (uLong)zlen), Z_OK);
    assert_int_equal(back_len, len);
    assert_memory_equal(back, in, len);
    free(back);
    free(z);
    return zlen;
}

static uint32_t next(uint32_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 17, *s ^= *s << 5;
    return *s;
}

static void test_empty_and_tiny(void **unused)
{
    unsigned char one = 7, two[2] = {0, 255};

    round_trip(&one, 0);
    round_trip(&one, 1);
    round_trip(two, 2);
}

/* Residual-like bytes (small values around 0, as filtered photographs give) shrink; noise is
 * stored, never grown beyond the bound. */
static void test_residuals_shrink_noise_is_stored(void **unused)
{
    size_t n = 200000;
    unsigned char *buf = malloc(n);
    uint32_t s = 12345;

    assert_non_null(buf);
    for (size_t i = 0; i < n; i++) {
        int v = (int)(next(&s) % 9) - 4 + (int)(next(&s) % 3) - 1;
        buf[i] = (unsigned char)v;
    }
    assert_true(round_trip(buf, n) < n / 2);
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)next(&s);
    assert_true(round_trip(buf, n) <= n + n / 32768 * 6 + 16);
    free(buf);
}

/* Runs of every length from 1 to past two blocks, at every offset modulo 8, between literals:
 * each run splits into matches of 3..258 bytes that leave no 1- or 2-byte tail. */
static void test_runs_of_every_length(void **unused)
{
    size_t n = 0, cap = 1 << 22;
    unsigned char *buf = malloc(cap);
    uint32_t s = 99;

    assert_non_null(buf);
    for (size_t run = 1; run < 600; run++) {
        for (size_t k = next(&s) % 8; k > 0; k--)
            buf[n++] = (unsigned char)next(&s);
        memset(buf + n, (int)(run & 0xff), run);
        n += run;
    }
    memset(buf + n, 0, 70000); /* one run across two block boundaries */
    n += 70000;
    for (size_t run = 255; run < 270; run++) {
        buf[n++] = 1;
        memset(buf + n, 2, run);
        n += run;
    }
    assert_true(n < cap);
    round_trip(buf, n);
    free(buf);
}

/* A flat megabyte is a few hundred bytes: the runs are matches, not a bit per byte. */
static void test_flat_is_tiny(void **unused)
{
    size_t n = 1 << 20;
    unsigned char *buf = calloc(1, n);

    assert_non_null(buf);
    assert_true(round_trip(buf, n) < 2000);
    buf[0] = 9; /* the first byte has nothing before it to repeat */
    assert_true(round_trip(buf, n) < 2000);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_and_tiny),
        cmocka_unit_test(test_residuals_shrink_noise_is_stored),
        cmocka_unit_test(test_runs_of_every_length),
        cmocka_unit_test(test_flat_is_tiny),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
