/* test_flip.c -- the flip plugin: both axes on small pictures by hand, in place (odd and even
 * sizes, padded rows untouched) and copying, RGBA pixels moved whole, config refusal. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "flip.c"
#include "plugtest.h"

static void test_descriptor(void **unused)
{
    const struct pixflow_plugin *d = pixflow_plugin_entry();

    assert_string_equal(d->name, "flip");
    assert_int_equal(d->flags, PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC | PIXFLOW_IN_PLACE);
    assert_int_equal(d->inputs, PIXFLOW_INPUT_ANY);
}

static void test_refuses_config(void **unused)
{
    plugtest_init_fails(&flip, "", "needs axis=horizontal or axis=vertical");
    plugtest_init_fails(&flip, "axis=diagonal",
                        "axis must be horizontal or vertical, got \"diagonal\"");
    plugtest_init_fails(&flip, "axis=Horizontal",
                        "axis must be horizontal or vertical, got \"Horizontal\"");
    plugtest_init_fails(&flip, "axis=horizontal;mirror=1",
                        "unknown option \"mirror\" (options: axis)");
}

static void check(const char *config, uint32_t w, uint32_t h, uint32_t c, int writable,
                  const unsigned char *px, const unsigned char *want)
{
    struct pixflow_image out = plugtest_same_size(&flip, config, w, h, c, 3, writable, px);

    assert_memory_equal(out.pixels, want, (size_t)w * h * c);
    plugtest_image_free(&out);
}

/*  1 2 3   horizontal: 3 2 1   vertical: 4 5 6
 *  4 5 6               6 5 4             1 2 3 */
static void test_gray(void **unused)
{
    static const unsigned char px[] = {1, 2, 3, 4, 5, 6};

    for (int writable = 0; writable <= 1; writable++) {
        check("axis=horizontal", 3, 2, 1, writable, px, (const unsigned char *)"\3\2\1\6\5\4");
        check("axis=vertical", 3, 2, 1, writable, px, (const unsigned char *)"\4\5\6\1\2\3");
        check("axis=vertical", 2, 3, 1, writable, px, (const unsigned char *)"\5\6\3\4\1\2");
        check("axis=horizontal", 2, 3, 1, writable, px, (const unsigned char *)"\2\1\4\3\6\5");
    }
}

static void test_rgba(void **unused)
{
    static const unsigned char px[] = {1, 2, 3, 4, 5, 6, 7, 8};
    static const unsigned char want[] = {5, 6, 7, 8, 1, 2, 3, 4};

    check("axis=horizontal", 2, 1, 4, 0, px, want);
    check("axis=horizontal", 2, 1, 4, 1, px, want);
    check("axis=vertical", 1, 2, 4, 1, px, want);
    check("axis=vertical", 2, 1, 4, 1, px, px);
    check("axis=horizontal", 1, 1, 4, 1, px, px);
}

static void test_out_of_memory(void **unused)
{
    struct pixflow_image in = plugtest_image(2, 7, 1, 0, NULL);

    plugtest_apply_fails(&flip, "axis=vertical", &in, 0, "out of memory for 2x7");
    plugtest_image_free(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptor),    cmocka_unit_test(test_refuses_config),
        cmocka_unit_test(test_gray),          cmocka_unit_test(test_rgba),
        cmocka_unit_test(test_out_of_memory),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
