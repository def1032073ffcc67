/* test_resp.c -- RESP formatting matches what hiredis itself sends for the same arguments. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"

static void test_same_bytes_as_hiredis(void **state)
{
    const char url[] = "https://picsum.photos/200/300";
    const char bin[] = "a\0b\r\n";
    const char *argv[] = {"XADD", "p:urls", "*", "url", url, "source", "", "line", "1234567", bin};
    size_t lens[] = {4, 6, 1, 3, sizeof(url) - 1, 6, 0, 4, 7, sizeof(bin) - 1};
    char *want = NULL;
    int wlen = redisFormatCommandArgv(&want, 10, argv, lens);
    assert_true(wlen > 0);

    struct resp b;
    resp_init(&b);
    resp_begin(&b, 10);
    resp_arg(&b, "XADD", 4);
    resp_arg_str(&b, "p:urls");
    resp_arg(&b, "*", 1);
    resp_arg(&b, "url", 3);
    resp_arg(&b, url, sizeof(url) - 1);
    resp_arg_str(&b, "source");
    resp_arg_str(&b, "");
    resp_arg(&b, "line", 4);
    resp_arg_ulong(&b, 1234567);
    resp_arg(&b, bin, sizeof(bin) - 1);
    assert_false(b.failed);
    assert_int_equal(b.len, wlen);
    assert_memory_equal(b.data, want, (size_t)wlen);
    free(want);

    /* a second command appends; clear starts over without freeing */
    size_t first = b.len;
    resp_begin(&b, 2);
    resp_arg_str(&b, "XLEN");
    resp_arg_long(&b, -42);
    assert_int_equal(b.len - first, strlen("*2\r\n$4\r\nXLEN\r\n$3\r\n-42\r\n"));
    assert_memory_equal(b.data + first, "*2\r\n$4\r\nXLEN\r\n$3\r\n-42\r\n", b.len - first);
    resp_clear(&b);
    assert_int_equal(b.len, 0);
    resp_arg_ulong(&b, 0);
    assert_memory_equal(b.data, "$1\r\n0\r\n", 7);
    resp_free(&b);
}

static void test_grows(void **state)
{
    struct resp b;
    resp_init(&b);
    static char big[100000];
    memset(big, 'x', sizeof(big));
    for (int i = 0; i < 50; i++)
        resp_arg(&b, big, sizeof(big));
    assert_false(b.failed);
    assert_int_equal(b.len, 50 * (sizeof(big) + strlen("$100000\r\n\r\n")));
    resp_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bytes_as_hiredis),
        cmocka_unit_test(test_grows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
