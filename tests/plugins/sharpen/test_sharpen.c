/* test_sharpen.c -- the sharpen plugin: an impulse on gray sharpened by hand at two amounts
 * (rounding half away from zero, clamping), flat pictures untouched, alpha kept, in place equal
 * to copying, 1x1, config refusal, out of memory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sharpen.c"
#include "plugtest.h"

static void test_descriptor(void **unused)
{
    const struct pixflow_plugin *d = pixflow_plugin_entry();

    assert_string_equal(d->name, "sharpen");
    assert_int_equal(d->flags, PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC | PIXFLOW_IN_PLACE);
    assert_int_equal(d->inputs, PIXFLOW_INPUT_ANY);
}

static void test_refuses_config(void **unused)
{
    plugtest_init_fails(&sharpen, "amount=0",
                        "amount must be a number from 0.001 to 10 (at most 3 decimals), got \"0\"");
    plugtest_init_fails(
        &sharpen, "amount=11",
        "amount must be a number from 0.001 to 10 (at most 3 decimals), got \"11\"");
    plugtest_init_fails(
        &sharpen, "radius=0.05",
        "radius must be a number from 0.1 to 50 (at most 3 decimals), got \"0.05\"");
    plugtest_init_fails(&sharpen, "radius=-1",
                        "radius must be a number from 0.1 to 50 (at most 3 decimals), got \"-1\"");
    plugtest_init_fails(&sharpen, "amount=1;threshold=3",
                        "unknown option \"threshold\" (options: amount, radius)");
    plugtest_init_fails(&sharpen, "amount=1;;amount=2", "option amount given twice");
    plugtest_destroy(&sharpen, plugtest_init(&sharpen, ""));
    plugtest_destroy(&sharpen, plugtest_init(&sharpen, "amount=0.001;radius=50"));
}

static struct pixflow_image run(const char *config, uint32_t w, uint32_t h, uint32_t c,
                                int writable, const unsigned char *px)
{
    return plugtest_same_size(&sharpen, config, w, h, c, 1, writable, px);
}

/* 200 on a 100 row, radius 1 (weights 26152, 15862, 3539, 291). One row, so the blur is the row
 * pass: 100 + round(100 w / 256) / 256, i.e. 100 + 10216/256 at the peak, 100 + 6196/256,
 * 100 + 1382/256, 100 + 114/256 going out. in - blur: 60.09, -24.20, -5.40, -0.45.
 * Amount 1: 200 + 60 clamps to 255; 100 - 24 = 76; 100 - 5 = 95; 100 - 0 = 100.
 * Amount 0.5: 200 + 30 = 230; 100 - 12.1 -> 88; 100 - 2.7 -> 97 (half away from zero: -2.7 is
 * -3); 100 - 0.22 -> 100. */
static void test_impulse(void **unused)
{
    static const unsigned char px[] = {100, 100, 100, 200, 100, 100, 100};
    static const unsigned char full[] = {100, 95, 76, 255, 76, 95, 100};
    static const unsigned char half[] = {100, 97, 88, 230, 88, 97, 100};
    struct pixflow_image out = run("", 7, 1, 1, 0, px);

    assert_memory_equal(out.pixels, full, sizeof(full));
    plugtest_image_free(&out);
    out = run("amount=0.5;radius=1", 7, 1, 1, 1, px);
    assert_memory_equal(out.pixels, half, sizeof(half));
    plugtest_image_free(&out);
    out = run("amount=0.5", 1, 7, 1, 0, px); /* down a column: the same */
    assert_memory_equal(out.pixels, half, sizeof(half));
    plugtest_image_free(&out);
}

static void test_flat_and_alpha(void **unused)
{
    /* flat RGB, then RGBA whose alpha is anything but flat: colour stays, alpha is not touched */
    unsigned char px[5 * 4 * 4];
    struct pixflow_image out;

    for (size_t i = 0; i < sizeof(px); i++)
        px[i] = i % 4 == 3 ? (unsigned char)(i * 13) : (unsigned char)(60 + i % 4);
    out = run("amount=3;radius=2", 5, 4, 4, 1, px);
    assert_memory_equal(out.pixels, px, sizeof(px));
    plugtest_image_free(&out);
    out = run("amount=10", 5 * 4, 4, 1, 0, (const unsigned char *)memset(px, 77, sizeof(px)));
    assert_memory_equal(out.pixels, px, sizeof(px));
    plugtest_image_free(&out);
}

/* Amount 10 on steps. 0 | 255 goes to the ends of the range and stays there. 128 | 144: the
 * blur of pixel 2 takes 144 from its right-hand taps (w1 + w2 + w3 = 19692), so it is
 * 128 + round(16 * 19692 / 256) / 256 = 128 + 1231 / 256, and 10 * -1231 / 256 = -48.09 gives
 * 80; pixel 1 sees w2 + w3 = 3830: 10 * -239 / 256 = -9.3 -> 119; pixel 0 only w3 = 291:
 * 10 * -18 / 256 = -0.7 -> -1 (half away from zero) -> 127. The bright side mirrors them. */
static void test_steps(void **unused)
{
    static const unsigned char black_white[] = {0, 0, 0, 255, 255, 255};
    static const unsigned char grays[] = {128, 128, 128, 144, 144, 144};
    static const unsigned char want[] = {127, 119, 80, 192, 153, 145};
    struct pixflow_image out = run("amount=10;radius=1", 6, 1, 1, 0, black_white);

    assert_memory_equal(out.pixels, black_white, 6);
    plugtest_image_free(&out);
    out = run("amount=10;radius=1", 6, 1, 1, 0, grays);
    assert_memory_equal(out.pixels, want, 6);
    plugtest_image_free(&out);
}

static void test_in_place_equals_copy(void **unused)
{
    enum { W = 17, H = 12, C = 3 };
    unsigned char px[W * H * C];
    struct pixflow_image a, b;

    for (int i = 0; i < W * H * C; i++)
        px[i] = (unsigned char)(i * 97 + (i >> 3));
    a = run("amount=1.5;radius=1.2", W, H, C, 0, px);
    b = run("amount=1.5;radius=1.2", W, H, C, 1, px);
    assert_memory_equal(a.pixels, b.pixels, sizeof(px));
    assert_memory_not_equal(a.pixels, px, sizeof(px));
    plugtest_image_free(&a);
    plugtest_image_free(&b);
    a = run("radius=50", 1, 1, 4, 1, (const unsigned char *)"\1\2\3\4");
    assert_memory_equal(a.pixels, "\1\2\3\4", 4);
    plugtest_image_free(&a);
}

static void test_out_of_memory(void **unused)
{
    struct pixflow_image in = plugtest_image(3, 3, 1, 0, NULL);

    plugtest_apply_fails(&sharpen, "", &in, 0, "out of memory for 3x3");
    plugtest_apply_fails(&sharpen, "", &in, 1, "out of memory for 4 rows of 3 pixels");
    plugtest_image_free(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptor),    cmocka_unit_test(test_refuses_config),
        cmocka_unit_test(test_impulse),       cmocka_unit_test(test_flat_and_alpha),
        cmocka_unit_test(test_steps),         cmocka_unit_test(test_in_place_equals_copy),
        cmocka_unit_test(test_out_of_memory),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
