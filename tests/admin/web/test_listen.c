/* test_listen.c -- the console's listener rules: HOST:PORT, loopback only, Host headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "listen.h"

static void test_split(void **state)
{
    char host[LISTEN_HOST_MAX], err[256];
    int port = -1;
    assert_int_equal(listen_split("127.0.0.1:8090", host, &port, err, sizeof(err)), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8090);
    assert_int_equal(listen_split("[::1]:0", host, &port, err, sizeof(err)), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 0);
    const char *bad[] = {"8090", ":8090", "host:", "host:65536", "host:-1", "host:80x", "", NULL};
    for (int i = 0; bad[i]; i++) {
        err[0] = '\0';
        assert_int_equal(listen_split(bad[i], host, &port, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "HOST:PORT"));
    }
}

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
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_loopback),
        cmocka_unit_test(test_host_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
