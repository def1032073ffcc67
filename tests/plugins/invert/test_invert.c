/* test_invert.c -- the invert plugin: exact pixels for gray, RGB and RGBA (alpha kept), in place
 * and copying, padded rows, 1x1, config refusal, out of memory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "invert.c"
#include "plugtest.h"

static void test_descriptor(void **unused)
{
    const struct pixflow_plugin *d = pixflow_plugin_entry();

    assert_int_equal(d->abi_major, PIXFLOW_ABI_MAJOR);
    assert_int_equal(d->struct_size, sizeof(struct pixflow_plugin));
    assert_string_equal(d->name, "invert");
    assert_int_equal(d->flags, PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC | PIXFLOW_IN_PLACE);
    assert_int_equal(d->inputs, PIXFLOW_INPUT_ANY);
}

static void test_refuses_config(void **unused)
{
    plugtest_init_fails(&invert, "alpha=yes", "takes no options, got \"alpha=yes\"");
    plugtest_init_fails(&invert, "all", "takes no options, got \"all\"");
    plugtest_destroy(&invert, plugtest_init(&invert, ""));
}

static void test_rgb_copy(void **unused)
{
    static const unsigned char px[] = {0, 1, 2, 253, 254, 255, 100, 128, 127, 10, 20, 30};
    static const unsigned char want[] = {255, 254, 253, 2, 1, 0, 155, 127, 128, 245, 235, 225};
    /* not writable: a new buffer */
    struct pixflow_image out = plugtest_same_size(&invert, "", 2, 2, 3, 5, 0, px);

    assert_memory_equal(out.pixels, want, sizeof(want));
    plugtest_image_free(&out);
}

static void test_rgba_in_place_keeps_alpha(void **unused)
{
    static const unsigned char px[] = {0, 0, 0, 0, 255, 255, 255, 255, 1, 2, 3, 77};
    static const unsigned char want[] = {255, 255, 255, 0, 0, 0, 0, 255, 254, 253, 252, 77};
    /* writable: over the input, same stride, padding untouched */
    struct pixflow_image out = plugtest_same_size(&invert, "", 3, 1, 4, 3, 1, px);

    assert_memory_equal(out.pixels, want, sizeof(want));
    plugtest_image_free(&out);
}

static void test_gray_1x1(void **unused)
{
    struct pixflow_image out =
        plugtest_same_size(&invert, "", 1, 1, 1, 0, 0, (const unsigned char *)"\x2a");

    assert_int_equal(out.pixels[0], 255 - 42);
    plugtest_image_free(&out);
}

/* Twice is the identity, over every byte value: once copying, once in place. */
static void test_involution(void **unused)
{
    unsigned char px[256 * 3];
    struct pixflow_image in, again, mid, out;
    void *state = plugtest_init(&invert, "");
    char err[128];

    for (int i = 0; i < 256 * 3; i++)
        px[i] = (unsigned char)i;
    in = plugtest_image(16, 16, 3, 0, px);
    assert_int_equal(plugtest_apply(&invert, state, &in, &mid, err, sizeof(err)), 0);
    for (int i = 0; i < 256 * 3; i++)
        assert_int_equal(mid.pixels[i], 255 - (i & 255));
    again = plugtest_image(16, 16, 3, 0, mid.pixels);
    again.flags = PIXFLOW_IMAGE_WRITABLE;
    plugtest_result_free(&mid);
    assert_int_equal(plugtest_apply(&invert, state, &again, &out, err, sizeof(err)), 0);
    assert_ptr_equal(out.pixels, again.pixels);
    assert_memory_equal(out.pixels, px, sizeof(px));
    plugtest_image_free(&again);
    plugtest_image_free(&in);
}

static void test_out_of_memory(void **unused)
{
    struct pixflow_image in = plugtest_image(4, 4, 3, 0, NULL);

    plugtest_apply_fails(&invert, "", &in, 0, "out of memory for 4x4");
    plugtest_image_free(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptor),    cmocka_unit_test(test_refuses_config),
        cmocka_unit_test(test_rgb_copy),      cmocka_unit_test(test_rgba_in_place_keeps_alpha),
        cmocka_unit_test(test_gray_1x1),      cmocka_unit_test(test_involution),
        cmocka_unit_test(test_out_of_memory),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
