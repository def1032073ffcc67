/* test_hostlimits.c -- PIXFLOW_HOST_LIMITS: the syntax of SPEC §2, defaults for keys left out,
 * `*` for any other host, and one clear error for each kind of mistake. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "hostlimits.h"

static void test_default(void **state)
{
    struct host_limits l;
    char err[256];
    assert_int_equal(host_limits_parse(HOST_LIMITS_DEFAULT, &l, err, sizeof(err)), 0);
    assert_int_equal(l.count, 0);
    const struct host_limit *any = host_limits_for(&l, "picsum.photos");
    assert_string_equal(any->host, "*");
    assert_true(any->rate == 20.0);
    assert_int_equal(any->burst, 20);
    assert_int_equal(any->inflight, 16);
    assert_int_equal(host_limits_parse("", &l, err, sizeof(err)), 0); /* the built-in values */
    assert_true(host_limits_for(&l, "x")->rate == HOST_RATE_DEFAULT);
}

/* "off" alone turns every limit off; beside an entry it is a bad host entry. */
static void test_off(void **state)
{
    struct host_limits l;
    char err[256];
    assert_int_equal(host_limits_parse("off", &l, err, sizeof(err)), 0);
    assert_true(l.off);
    assert_int_equal(host_limits_parse("OFF", &l, err, sizeof(err)), 0);
    assert_true(l.off);
    assert_int_equal(host_limits_parse(HOST_LIMITS_DEFAULT, &l, err, sizeof(err)), 0);
    assert_false(l.off);
    assert_int_equal(host_limits_parse("off;*:rate=5", &l, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "'off'"));
}

static void test_hosts_and_defaults(void **state)
{
    struct host_limits l;
    char err[256];
    assert_int_equal(host_limits_parse("Picsum.Photos:rate=50,inflight=32; *:rate=0.5,inflight=4",
                                       &l, err, sizeof(err)),
                     0);
    assert_int_equal(l.count, 1);
    const struct host_limit *p = host_limits_for(&l, "PICSUM.photos");
    assert_string_equal(p->host, "picsum.photos");
    assert_true(p->rate == 50.0);
    assert_int_equal(p->inflight, 32);
    assert_int_equal(p->burst, HOST_BURST_DEFAULT); /* left out: its default */
    const struct host_limit *o = host_limits_for(&l, "fastly.picsum.photos");
    assert_string_equal(o->host, "*");
    assert_true(o->rate == 0.5);
    assert_int_equal(o->inflight, 4);
}

static void expect_error(const char *text, const char *words)
{
    struct host_limits l;
    char err[256] = "";
    assert_int_equal(host_limits_parse(text, &l, err, sizeof(err)), -1);
    if (strstr(err, words) == NULL)
        fail_msg("'%s': error '%s' does not say '%s'", text, err, words);
}

static void test_errors(void **state)
{
    expect_error("picsum.photos", "is not HOST:rate=R");
    expect_error(":rate=1", "is not HOST:rate=R");
    expect_error("pic sum:rate=1", "is not a host name");
    expect_error("a:speed=1", "unknown key 'speed'");
    expect_error("a:rate", "is not KEY=VALUE");
    expect_error("a:rate=0", "rate '0' for host 'a'");
    expect_error("a:rate=fast", "rate 'fast'");
    expect_error("a:rate=1e9", "at most");
    expect_error("a:burst=0", "burst '0' for host 'a' must be a whole number");
    expect_error("a:inflight=2.5", "inflight '2.5'");
    expect_error("a:inflight=1;A:rate=2", "host 'a' is named twice");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default),
        cmocka_unit_test(test_off),
        cmocka_unit_test(test_hosts_and_defaults),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
