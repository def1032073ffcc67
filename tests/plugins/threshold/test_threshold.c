/* test_threshold.c -- the threshold plugin: samples strictly above the level become 255, at the
 * default and at both ends of the range, in place and copying, channel and config refusal. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "threshold.c"
#include "plugtest.h"

static void test_descriptor(void **unused)
{
    const struct pixflow_plugin *d = pixflow_plugin_entry();

    assert_string_equal(d->name, "threshold");
    assert_int_equal(d->flags, PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC | PIXFLOW_IN_PLACE);
    assert_int_equal(d->inputs, PIXFLOW_INPUT_GRAY);
}

static void test_refuses_config(void **unused)
{
    plugtest_init_fails(&threshold, "level=256",
                        "level must be an integer from 0 to 255, got \"256\"");
    plugtest_init_fails(&threshold, "level=-1",
                        "level must be an integer from 0 to 255, got \"-1\"");
    plugtest_init_fails(&threshold, "level=12.5",
                        "level must be an integer from 0 to 255, got \"12.5\"");
    plugtest_init_fails(&threshold, "level=0x80",
                        "level must be an integer from 0 to 255, got \"0x80\"");
    plugtest_init_fails(&threshold, "level=99999999999999999999",
                        "level must be an integer from 0 to 255, got \"99999999999999999999\"");
    plugtest_init_fails(&threshold, "level=1 2",
                        "level must be an integer from 0 to 255, got \"1 2\"");
    plugtest_init_fails(&threshold, "cut=3", "unknown option \"cut\" (options: level)");
    plugtest_init_fails(&threshold, "=3", "malformed option \"=3\" (want key=value)");
    plugtest_destroy(&threshold, plugtest_init(&threshold, ""));
}

static void run(const char *config, int writable, const unsigned char *want)
{
    static const unsigned char px[] = {0, 1, 126, 127, 128, 200, 254, 255};
    struct pixflow_image out = plugtest_same_size(&threshold, config, 4, 2, 1, 3, writable, px);

    assert_memory_equal(out.pixels, want, 8);
    plugtest_image_free(&out);
}

static void test_levels(void **unused)
{
    static const unsigned char by_default[] = {0, 0, 0, 0, 255, 255, 255, 255};
    static const unsigned char at_0[] = {0, 255, 255, 255, 255, 255, 255, 255};
    static const unsigned char at_200[] = {0, 0, 0, 0, 0, 0, 255, 255};
    static const unsigned char at_255[] = {0, 0, 0, 0, 0, 0, 0, 0};

    run("", 0, by_default);
    run("level=127", 1, by_default);
    run("level=0", 1, at_0);
    run("level=200", 0, at_200);
    run("level=255", 0, at_255);
}

static void test_1x1(void **unused)
{
    struct pixflow_image out =
        plugtest_same_size(&threshold, "level=128", 1, 1, 1, 0, 0, (const unsigned char *)"\x81");

    assert_int_equal(out.pixels[0], 255);
    plugtest_image_free(&out);
}

static void test_refuses_colour(void **unused)
{
    struct pixflow_image in = plugtest_image(1, 1, 3, 0, (const unsigned char *)"abc");

    plugtest_apply_fails(&threshold, "", &in, -1, "takes gray pictures, got 3 channels");
    plugtest_image_free(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptor),     cmocka_unit_test(test_refuses_config),
        cmocka_unit_test(test_levels),         cmocka_unit_test(test_1x1),
        cmocka_unit_test(test_refuses_colour),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
