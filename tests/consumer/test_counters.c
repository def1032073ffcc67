/* test_counters.c -- the counter table: long names match themselves, the table is bounded. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "counters.h"
#include "names.h"

static void test_long_names_do_not_grow_the_table(void **state)
{
    struct counters *c = counters_new();
    char name[300];
    snprintf(name, sizeof(name), C_TRANSFORM "%s:%s", "a_plugin_with_a_rather_long_name_indeed",
             "and_a_counter_whose_name_is_long_too_so_the_whole_is_over_sixty_three");
    assert_true(strlen(name) > COUNTER_NAME_MAX);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(counters_add(c, name, 2), 0);
    assert_int_equal(counters_count(c), 1);
    assert_string_equal(counters_name(c, 0), name); /* whole, not cut */
    assert_int_equal(counters_value(c, 0), 2000);

    /* Two names equal in their first 63 bytes stay two counters. */
    char other[300];
    snprintf(other, sizeof(other), "%sX", name);
    counters_add(c, other, 1);
    assert_int_equal(counters_count(c), 2);
    counters_free(c);
}

static void test_bounded_and_merge(void **state)
{
    struct counters *c = counters_new(), *to = counters_new();
    char name[64];
    for (int i = 0; i < COUNTERS_MAX; i++) {
        snprintf(name, sizeof(name), C_FAILED ":r%d", i);
        assert_int_equal(counters_add(c, name, 1), 0);
    }
    assert_int_equal(counters_add(c, "one_too_many", 1), -1);
    assert_int_equal(counters_add(c, "one_more", 1), -1);
    assert_int_equal(counters_dropped(c), 2);
    assert_int_equal(counters_count(c), COUNTERS_MAX);
    assert_int_equal(counters_add(c, C_FAILED ":r7", 1), 0); /* known names still count */

    counters_add(to, C_FAILED ":r7", 5);
    counters_merge(to, c);
    assert_int_equal(counters_count(c), 0);
    assert_int_equal(counters_count(to), COUNTERS_MAX);
    for (int i = 0; i < counters_count(to); i++)
        if (strcmp(counters_name(to, i), C_FAILED ":r7") == 0)
            assert_int_equal(counters_value(to, i), 7);
    counters_free(c);
    counters_free(to);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_long_names_do_not_grow_the_table),
        cmocka_unit_test(test_bounded_and_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
