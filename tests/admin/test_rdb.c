/* test_rdb.c -- admin/rdb.c: flat field/value replies, numbers as Redis sends them, stream ids,
 * and SCAN patterns that match a prefix literally. Replies are built by hand, as hiredis would. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "rdb.h"

static redisReply str(const char *s)
{
    redisReply r = {.type = REDIS_REPLY_STRING, .str = (char *)s, .len = strlen(s)};
    return r;
}

static void test_field(void **state)
{
    redisReply k1 = str("name"), v1 = str("pixflow"), k2 = str("lag"),
               v2 = {.type = REDIS_REPLY_NIL}, k3 = str("pending"),
               v3 = {.type = REDIS_REPLY_INTEGER, .integer = 7};
    redisReply *elems[] = {&k1, &v1, &k2, &v2, &k3, &v3};
    redisReply flat = {.type = REDIS_REPLY_ARRAY, .elements = 6, .element = elems};
    assert_ptr_equal(rdb_field(&flat, "name"), &v1);
    assert_ptr_equal(rdb_field(&flat, "lag"), &v2);
    assert_ptr_equal(rdb_field(&flat, "pending"), &v3);
    assert_null(rdb_field(&flat, "pixflow")); /* a value is not a field */
    assert_null(rdb_field(&flat, "nam"));
    assert_null(rdb_field(NULL, "name"));
    flat.elements = 5; /* an odd tail is ignored, never read past */
    assert_null(rdb_field(&flat, "pending"));
    redisReply not_array = str("name");
    assert_null(rdb_field(&not_array, "name"));
}

static void test_ll(void **state)
{
    long long v = 0;
    redisReply i = {.type = REDIS_REPLY_INTEGER, .integer = -3};
    assert_int_equal(rdb_ll(&i, &v), 0);
    assert_int_equal(v, -3);
    redisReply s = str("123456789012");
    assert_int_equal(rdb_ll(&s, &v), 0);
    assert_int_equal(v, 123456789012LL);
    static const char *const bad[] = {"", "12a", "1.5", " 1", "99999999999999999999999"};
    for (size_t k = 0; k < sizeof(bad) / sizeof(*bad); k++) {
        redisReply b = str(bad[k]);
        v = 5;
        assert_int_equal(rdb_ll(&b, &v), -1);
        assert_int_equal(v, 5);
    }
    redisReply nil = {.type = REDIS_REPLY_NIL};
    assert_int_equal(rdb_ll(&nil, &v), -1);
    assert_int_equal(rdb_ll(NULL, &v), -1);
}

static void test_id_ms(void **state)
{
    long long ms = 0;
    assert_int_equal(rdb_id_ms("1714566615000-0", &ms), 0);
    assert_int_equal(ms, 1714566615000LL);
    assert_int_equal(rdb_id_ms("42", &ms), 0);
    assert_int_equal(ms, 42);
    assert_int_equal(rdb_id_ms("-1", &ms), -1);
    assert_int_equal(rdb_id_ms("abc-0", &ms), -1);
    assert_int_equal(rdb_id_ms("12x-0", &ms), -1);
    assert_int_equal(rdb_id_ms("", &ms), -1);
    assert_int_equal(rdb_id_ms(NULL, &ms), -1);
}

static void test_glob_escape(void **state)
{
    char out[64];
    assert_int_equal(rdb_glob_escape("pixflow:worker:", out, sizeof(out)), 0);
    assert_string_equal(out, "pixflow:worker:");
    assert_int_equal(rdb_glob_escape("a*b?c[d]e\\f", out, sizeof(out)), 0);
    assert_string_equal(out, "a\\*b\\?c\\[d\\]e\\\\f");
    assert_int_equal(rdb_glob_escape("", out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(rdb_glob_escape("abcd", out, 5), 0); /* exactly fits */
    assert_string_equal(out, "abcd");
    assert_int_equal(rdb_glob_escape("abcde", out, 5), -1);
    assert_int_equal(rdb_glob_escape("abc*", out, 5), -1); /* the escape needs a byte more */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_field),
        cmocka_unit_test(test_ll),
        cmocka_unit_test(test_id_ms),
        cmocka_unit_test(test_glob_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
