/* test_listen.c -- the console's listener rules: loopback only, Host headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "listen.h"

static void test_loopback(void **state)
{
    assert_true(listen_loopback("127.0.0.1"));
    assert_true(listen_loopback("127.8.9.10"));
    assert_true(listen_loopback("::1"));
    assert_true(listen_loopback("localhost"));
    assert_false(listen_loopback("0.0.0.0"));
    assert_false(listen_loopback("::"));
    assert_false(listen_loopback("10.0.0.1"));
    assert_false(listen_loopback("128.0.0.1"));
    assert_false(listen_loopback("::ffff:127.0.0.1")); /* mapped: not what IN6 loopback means */
    assert_false(listen_loopback("no-such-host.invalid"));
}

static void test_host_header(void **state)
{
    const char *ok[] = {"localhost", "localhost:8090", "127.0.0.1", "127.0.0.1:1",
                        "[::1]",     "[::1]:8090",     NULL};
    const char *refused[] = {"evil.example",
                             "evil.example:8090",
                             "127.0.0.1.evil.example",
                             "localhost.evil.example",
                             "127.0.0.1:80@evil",
                             "[::1]x",
                             "",
                             "10.0.0.1:8090",
                             NULL};
    for (int i = 0; ok[i]; i++)
        assert_true(listen_host_ok(ok[i]));
    for (int i = 0; refused[i]; i++)
        assert_false(listen_host_ok(refused[i]));
    assert_true(listen_host_ok(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback),
        cmocka_unit_test(test_host_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
