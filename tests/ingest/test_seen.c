/* test_seen.c -- the in-memory dedup set: exact answers, SipHash-128 vectors, the memory cap. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "seen.h"

/* The reference implementation's vectors_sip128: key 00..0f, message 00..n-1. */
static const uint8_t sip128_vectors[3][16] = {
    {0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6, 0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55, 0x02,
     0x93},
    {0xda, 0x87, 0xc1, 0xd8, 0x6b, 0x99, 0xaf, 0x44, 0x34, 0x76, 0x59, 0x11, 0x9b, 0x22, 0xfc,
     0x45},
    {0x81, 0x77, 0x22, 0x8d, 0xa4, 0xa4, 0x5d, 0xc7, 0xfc, 0xa3, 0x8b, 0xde, 0xf6, 0x0a, 0xff,
     0xe4},
};

static void test_siphash_vectors(void **state)
{
    uint8_t key[16], msg[16];
    for (int i = 0; i < 16; i++)
        key[i] = msg[i] = (uint8_t)i;
    for (size_t n = 0; n < 3; n++) {
        uint64_t out[2];
        uint8_t bytes[16];
        seen_siphash128(key, msg, n, out);
        for (int i = 0; i < 8; i++) {
            bytes[i] = (uint8_t)(out[0] >> (8 * i));
            bytes[8 + i] = (uint8_t)(out[1] >> (8 * i));
        }
        assert_memory_equal(bytes, sip128_vectors[n], 16);
    }
    /* every length of the tail path differs, and one flipped bit changes the result */
    uint64_t a[2], b[2];
    uint8_t buf[32] = {0};
    for (size_t n = 0; n < 32; n++) {
        seen_siphash128(key, buf, n, a);
        seen_siphash128(key, buf, n + 1, b);
        assert_false(a[0] == b[0] && a[1] == b[1]);
    }
    seen_siphash128(key, "https://picsum.photos/200/300", 29, a);
    seen_siphash128(key, "https://picsum.photos/200/301", 29, b);
    assert_false(a[0] == b[0] || a[1] == b[1]);
}

static size_t url_key(char *buf, size_t cap, unsigned long i)
{
    return (size_t)snprintf(buf, cap, "https://picsum.photos/%lu/%lu?n=%lu", i % 5000 + 1,
                            i / 5000 % 5000 + 1, i);
}

static void test_exact_answers(void **state)
{
    char err[128], key[96];
    struct seen *s = seen_new(64u << 20, err, sizeof(err));
    assert_non_null(s);
    size_t start = seen_bytes(s);
    enum { N = 200000 };
    for (unsigned long i = 0; i < N; i++) {
        size_t n = url_key(key, sizeof(key), i);
        if (seen_add(s, key, n) != 0)
            fail_msg("new key %lu taken for a repeat", i);
    }
    assert_int_equal(seen_count(s), N);
    assert_true(seen_bytes(s) > start); /* it grew */
    for (unsigned long i = 0; i < N; i++) {
        size_t n = url_key(key, sizeof(key), i);
        if (seen_add(s, key, n) != 1)
            fail_msg("repeat of key %lu not caught", i);
    }
    assert_int_equal(seen_count(s), N);
    /* binary keys, the empty key, keys that differ only by length */
    assert_int_equal(seen_add(s, "", 0), 0);
    assert_int_equal(seen_add(s, "", 0), 1);
    assert_int_equal(seen_add(s, "a\0b", 3), 0);
    assert_int_equal(seen_add(s, "a\0c", 3), 0);
    assert_int_equal(seen_add(s, "a\0", 2), 0);
    assert_int_equal(seen_add(s, "a\0b", 3), 1);
    assert_false(seen_full(s));
    seen_free(s);
}

/* The documented cost: 16 bytes a slot, at most 3/4 full, power-of-two tables. */
static void test_memory_figure(void **state)
{
    char err[128], key[96];
    struct seen *s = seen_new(256u << 20, err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(seen_bytes(s), 256u << 10); /* 256 KiB to start */
    for (unsigned long i = 0; i < 1000000; i++)
        seen_add(s, key, url_key(key, sizeof(key), i));
    assert_int_equal(seen_count(s), 1000000);
    assert_int_equal(seen_bytes(s), 32u << 20); /* 1M URLs: 32 MiB */
    seen_free(s);
}

static void test_cap_degrades_safely(void **state)
{
    char err[128], key[96];
    struct seen *s = seen_new(SEEN_MIN_BYTES, err, sizeof(err));
    assert_non_null(s);
    enum { N = 100000 }; /* far more than 1 MiB of slots holds */
    for (unsigned long i = 0; i < N; i++) {
        size_t n = url_key(key, sizeof(key), i);
        if (seen_add(s, key, n) != 0)
            fail_msg("new key %lu taken for a repeat once full", i);
    }
    assert_true(seen_full(s));
    assert_true(seen_bytes(s) <= SEEN_MIN_BYTES);
    size_t kept = seen_count(s);
    assert_true(kept > 0 && kept < N);
    /* what it holds it still catches; what it could not hold is never called a repeat */
    unsigned long caught = 0;
    for (unsigned long i = 0; i < N; i++)
        caught += (unsigned long)seen_add(s, key, url_key(key, sizeof(key), i));
    assert_int_equal(caught, kept);
    assert_int_equal(seen_count(s), kept);
    seen_free(s);
}

static void test_off_and_limits(void **state)
{
    char err[128];
    struct seen *s = seen_new(0, err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(seen_add(s, "x", 1), 0);
    assert_int_equal(seen_add(s, "x", 1), 0); /* off: every URL goes to Redis */
    assert_int_equal(seen_bytes(s), 0);
    seen_free(s);
    assert_null(seen_new(SEEN_MIN_BYTES - 1, err, sizeof(err)));
    assert_non_null(strstr(err, "minimum"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_siphash_vectors), cmocka_unit_test(test_exact_answers),
        cmocka_unit_test(test_memory_figure),   cmocka_unit_test(test_cap_degrades_safely),
        cmocka_unit_test(test_off_and_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
