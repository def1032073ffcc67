/* test_redact.c -- credentials masked in free text and in one URL as settings hold it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "redact.h"

static void expect_urls(const char *in, const char *want)
{
    char buf[256];
    assert_string_equal(redact_urls(buf, sizeof(buf), in), want);
}

static void test_text(void **state)
{
    expect_urls("redis://:PASSWORD@r:6379/0", "redis://:***@r:6379/0");
    expect_urls("mongodb://user:pass@a,b/db?x=1", "mongodb://user:***@a,b/db?x=1");
    expect_urls("see 'https://TOKEN@h/p' and http://u:p@h2/", "see 'https://***@h/p' and "
                                                              "http://u:***@h2/");
    expect_urls("no url here, a@b and x://y/z@w", "no url here, a@b and x://y/z@w");
    expect_urls("user:p@ss@host is 'redis://:p@ss@h/1'", "user:p@ss@host is 'redis://:***@h/1'");
    char small[12];
    assert_string_equal(redact_urls(small, sizeof(small), "redis://:secret@h"), "redis://:**");
}

static void test_setting(void **state)
{
    char buf[256];
    assert_string_equal(redact_url(buf, sizeof(buf), "redis://:pa/ss@h/x"), "redis://:***@h/x");
    assert_string_equal(redact_url(buf, sizeof(buf), "redis:/u:pw@h"), "redis:***@h");
    assert_string_equal(redact_url(buf, sizeof(buf), "redis://h:1/2"), "redis://h:1/2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_setting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
