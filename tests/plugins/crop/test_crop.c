/* test_crop.c -- the crop plugin: rectangles by position and by every gravity on a labelled
 * picture, answered as views into the input, refusals of rectangles outside the picture at
 * apply (no overflow near 2^31), 1x1, config refusal at init. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "crop.c"
#include "plugtest.h"

/*  0  1  2  3
 * 10 11 12 13
 * 20 21 22 23 */
static const unsigned char labelled[] = {0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23};

static void test_descriptor(void **unused)
{
    const struct pixflow_plugin *d = pixflow_plugin_entry();

    assert_string_equal(d->name, "crop");
    assert_int_equal(d->flags, PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC);
    assert_int_equal(d->inputs, PIXFLOW_INPUT_ANY);
}

static void test_refuses_config(void **unused)
{
    plugtest_init_fails(&crop, "", "needs width and height");
    plugtest_init_fails(&crop, "x=1;y=1;width=5", "needs width and height");
    plugtest_init_fails(&crop, "width=0;height=3",
                        "width must be an integer from 1 to 2147483647, got \"0\"");
    plugtest_init_fails(&crop, "width=2;height=2147483648",
                        "height must be an integer from 1 to 2147483647, got \"2147483648\"");
    plugtest_init_fails(&crop, "x=-1;width=2;height=2",
                        "x must be an integer from 0 to 2147483647, got \"-1\"");
    plugtest_init_fails(&crop, "gravity=center;x=0;width=2;height=2",
                        "gravity places the rectangle: give it or x and y, not both");
    plugtest_init_fails(&crop, "gravity=middle;width=2;height=2",
                        "gravity must be northwest, north, northeast, west, center, east, "
                        "southwest, south or southeast, got \"middle\"");
    plugtest_init_fails(&crop, "left=3;width=2;height=2",
                        "unknown option \"left\" (options: x, y, width, height, gravity)");
}

static void check(const char *config, uint32_t c, const unsigned char *px, uint32_t ow, uint32_t oh,
                  size_t offset, const unsigned char *want)
{
    struct pixflow_image in = plugtest_image(4, 3, c, 2, px), out;
    void *state = plugtest_init(&crop, config);
    char err[128];

    assert_int_equal(plugtest_apply(&crop, state, &in, &out, err, sizeof(err)), 0);
    assert_int_equal(out.width, ow);
    assert_int_equal(out.height, oh);
    assert_int_equal(out.channels, c);
    assert_int_equal(out.stride, in.stride); /* a view: same rows, nothing copied */
    assert_ptr_equal(out.pixels, in.pixels + offset);
    assert_memory_equal(plugtest_packed(&out), want, (size_t)ow * oh * c);
    plugtest_result_free(&out);
    plugtest_image_free(&in);
    plugtest_destroy(&crop, state);
}

static void test_by_position(void **unused)
{
    const size_t s = 4 + 2; /* stride of the gray picture */

    check("x=1;y=1;width=2;height=2", 1, labelled, 2, 2, s + 1,
          (const unsigned char *)"\13\14\25\26");
    check("width=4;height=3", 1, labelled, 4, 3, 0, labelled);
    check("x=3;y=2;width=1;height=1", 1, labelled, 1, 1, 2 * s + 3, (const unsigned char *)"\27");
    check("y=1;width=4;height=1", 1, labelled, 4, 1, s, labelled + 4);
}

static void test_by_gravity(void **unused)
{
    const size_t s = 4 + 2;

    check("gravity=center;width=2;height=1", 1, labelled, 2, 1, s + 1,
          (const unsigned char *)"\13\14");
    check("gravity=center;width=3;height=3", 1, labelled, 3, 3, 0,
          (const unsigned char *)"\0\1\2\12\13\14\24\25\26");
    check("gravity=southeast;width=3;height=2", 1, labelled, 3, 2, s + 1,
          (const unsigned char *)"\13\14\15\25\26\27");
    check("gravity=northwest;width=1;height=1", 1, labelled, 1, 1, 0, labelled);
    check("gravity=east;width=1;height=3", 1, labelled, 1, 3, 3, (const unsigned char *)"\3\15\27");
    check("gravity=south;width=2;height=1", 1, labelled, 2, 1, 2 * s + 1,
          (const unsigned char *)"\25\26");
    check("gravity=west;width=1;height=1", 1, labelled, 1, 1, s, (const unsigned char *)"\12");
}

/* RGB: the offset counts channels. Pixel (2, 1) is (12, 112, 212), (2, 2) is (22, 122, 222). */
static void test_rgb(void **unused)
{
    unsigned char px[4 * 3 * 3];
    const size_t s = 4 * 3 + 2;

    for (int i = 0; i < 12; i++) {
        px[3 * i] = labelled[i];
        px[3 * i + 1] = (unsigned char)(labelled[i] + 100);
        px[3 * i + 2] = (unsigned char)(labelled[i] + 200);
    }
    check("x=2;y=1;width=1;height=2", 3, px, 1, 2, s + 6,
          (const unsigned char *)"\14\160\324\26\172\336");
}

static void refuse(const char *config, uint32_t w, uint32_t h, const char *want)
{
    struct pixflow_image in = plugtest_image(w, h, 1, 0, NULL), out;
    void *state = plugtest_init(&crop, config);
    char err[128];

    assert_int_equal(plugtest_apply(&crop, state, &in, &out, err, sizeof(err)), -1);
    assert_string_equal(err, want);
    plugtest_image_free(&in);
    plugtest_destroy(&crop, state);
}

static void test_outside(void **unused)
{
    refuse("x=3;width=2;height=2", 4, 3, "crop 2x2 at (3, 0) reaches outside the 4x3 picture");
    refuse("y=2;width=1;height=2", 4, 3, "crop 1x2 at (0, 2) reaches outside the 4x3 picture");
    refuse("width=5;height=1", 4, 3, "crop 5x1 at (0, 0) reaches outside the 4x3 picture");
    refuse("x=2147483647;y=2147483647;width=2147483647;height=2147483647", 1, 1,
           "crop 2147483647x2147483647 at (2147483647, 2147483647) reaches outside the 1x1 "
           "picture");
    refuse("gravity=center;width=4;height=4", 4, 3, "crop 4x4 is larger than the 4x3 picture");
    refuse("gravity=north;width=2;height=1", 1, 1, "crop 2x1 is larger than the 1x1 picture");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptor),  cmocka_unit_test(test_refuses_config),
        cmocka_unit_test(test_by_position), cmocka_unit_test(test_by_gravity),
        cmocka_unit_test(test_rgb),         cmocka_unit_test(test_outside),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
