/* test_resize.c -- the resize plugin and scale.c: sizes for one side, fill, contain and cover
 * (rounding half up, never below 1), pixels averaged in linear light (black and white make 188,
 * not 128), alpha-weighted colour, flat colours kept exactly, cover centred, unchanged and
 * view answers, limits at init and at apply, 1x1, config refusal, out of memory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "resize.c"
#include "plugtest.h"

static void test_descriptor(void **unused)
{
    const struct pixflow_plugin *d = pixflow_plugin_entry();

    assert_string_equal(d->name, "resize");
    assert_int_equal(d->flags, PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC);
    assert_int_equal(d->inputs, PIXFLOW_INPUT_ANY);
}

static void test_refuses_config(void **unused)
{
    plugtest_init_fails(&resize, "", "needs width, height or both");
    plugtest_init_fails(&resize, "fit=cover", "needs width, height or both");
    plugtest_init_fails(&resize, "width=320;fit=cover",
                        "fit needs both width and height (one side alone keeps the aspect)");
    plugtest_init_fails(&resize, "width=0", "width must be an integer from 1 to 65535, got \"0\"");
    plugtest_init_fails(&resize, "height=65536",
                        "height must be an integer from 1 to 65535, got \"65536\"");
    plugtest_init_fails(&resize, "width=50%",
                        "width must be an integer from 1 to 65535, got \"50%\"");
    plugtest_init_fails(&resize, "width=10;height=10;fit=stretch",
                        "fit must be fill, contain or cover, got \"stretch\"");
    plugtest_init_fails(&resize, "width=65535;height=65535",
                        "a 65535x65535 result is out of bounds (1 to 65535 pixels a side, "
                        "268435456 in all)");
    plugtest_init_fails(&resize, "width=20000;height=20000;fit=cover",
                        "a 20000x20000 result is out of bounds (1 to 65535 pixels a side, "
                        "268435456 in all)");
    plugtest_init_fails(&resize, "w=3", "unknown option \"w\" (options: width, height, fit)");
    /* contain never exceeds either side of its box: any box is fine at init */
    plugtest_destroy(&resize, plugtest_init(&resize, "width=65535;height=65535;fit=contain"));
}

/* resize:<config> of a w x h picture of c channels, flat `colour` when px is NULL; checks the
 * size, and a flat result when the picture is flat. */
static struct pixflow_image run(const char *config, uint32_t w, uint32_t h, uint32_t c,
                                const unsigned char *px, const unsigned char *colour, uint32_t ow,
                                uint32_t oh)
{
    unsigned char *flat = NULL;
    struct pixflow_image in, out, packed;
    void *state = plugtest_init(&resize, config);
    char err[128];

    if (px == NULL) {
        flat = malloc((size_t)w * h * c);
        assert_non_null(flat);
        for (size_t i = 0; i < (size_t)w * h * c; i++)
            flat[i] = colour[i % c];
        px = flat;
    }
    in = plugtest_image(w, h, c, 7, px);
    assert_int_equal(plugtest_apply(&resize, state, &in, &out, err, sizeof(err)), 0);
    assert_int_equal(out.width, ow);
    assert_int_equal(out.height, oh);
    assert_int_equal(out.channels, c);
    packed = plugtest_image(ow, oh, c, 0, plugtest_packed(&out));
    if (flat != NULL)
        for (size_t i = 0; i < (size_t)ow * oh * c; i++)
            if (packed.pixels[i] != colour[i % c])
                fail_msg("%s: sample %zu is %u, want %u", config, i, packed.pixels[i],
                         colour[i % c]);
    plugtest_result_free(&out);
    plugtest_image_free(&in);
    plugtest_destroy(&resize, state);
    free(flat);
    return packed;
}

static void sized(const char *config, uint32_t w, uint32_t h, uint32_t ow, uint32_t oh)
{
    static const unsigned char rgb[] = {200, 100, 50};
    struct pixflow_image out = run(config, w, h, 3, NULL, rgb, ow, oh);

    plugtest_image_free(&out);
}

/* One side: the other is round(other * given / side), half up, at least 1. */
static void test_one_side_keeps_aspect(void **unused)
{
    sized("width=3", 6, 4, 3, 2);
    sized("height=3", 6, 4, 5, 3);    /* 6 * 3 / 4 = 4.5 -> 5 */
    sized("width=3", 4, 6, 3, 5);     /* 6 * 3 / 4 = 4.5 -> 5 */
    sized("width=10", 100, 1, 10, 1); /* 0.1 -> at least 1 */
    sized("height=7", 1, 1, 7, 7);    /* upscaling too */
    sized("width=640", 64, 48, 640, 480);
}

static void test_fill_contain_cover_sizes(void **unused)
{
    sized("width=3;height=5", 6, 4, 3, 5);
    sized("width=3;height=5;fit=fill", 6, 4, 3, 5);
    sized("width=3;height=3;fit=contain", 6, 4, 3, 2);  /* wider than the box: width decides */
    sized("width=10;height=2;fit=contain", 6, 4, 3, 2); /* taller than the box: height decides */
    sized("width=8;height=8;fit=contain", 2, 1, 8, 4);  /* contain upscales as well */
    sized("width=3;height=3;fit=cover", 6, 4, 3, 3);
    sized("width=1;height=9;fit=cover", 6, 4, 1, 9);
}

/* Linear light: black and white side by side average to linear 0.5, which is sRGB 187.5 -> 188
 * (a gamma-blind filter would say 128). A row of two resized to one pixel: the Mitchell filter is
 * symmetric around the pair, so each colour weighs exactly a half. */
static void test_srgb_average(void **unused)
{
    static const unsigned char bw[] = {0, 255};
    static const unsigned char bw_rgb[] = {0, 0, 0, 255, 255, 255};
    struct pixflow_image out = run("width=1", 2, 1, 1, bw, NULL, 1, 1);

    assert_int_equal(out.pixels[0], 188);
    plugtest_image_free(&out);
    out = run("width=1", 2, 1, 3, bw_rgb, NULL, 1, 1);
    assert_memory_equal(out.pixels, "\274\274\274", 3);
    plugtest_image_free(&out);
    /* fill: 2x1 -> 1x2, the column of one 188 stretched */
    out = run("width=1;height=2", 2, 1, 1, bw, NULL, 1, 2);
    assert_memory_equal(out.pixels, "\274\274", 2);
    plugtest_image_free(&out);
}

/* Alpha-weighted: a transparent green next to an opaque red leaves pure red at half coverage
 * (alpha is linear: 127.5 -> 128), instead of the brownish mix of unweighted filtering. */
static void test_alpha_weighted(void **unused)
{
    static const unsigned char px[] = {255, 0, 0, 255, 0, 255, 0, 0};
    struct pixflow_image out = run("width=1", 2, 1, 4, px, NULL, 1, 1);

    assert_memory_equal(out.pixels, "\377\0\0\200", 4);
    plugtest_image_free(&out);
}

/* Flat pictures stay flat through the sRGB round trip, down and up, for every channel count. */
static void test_flat_colours(void **unused)
{
    static const unsigned char colours[][4] = {
        {0, 0, 0, 255}, {255, 255, 255, 255}, {1, 2, 3, 4}, {200, 100, 50, 128}, {17, 99, 254, 0},
    };

    for (size_t i = 0; i < sizeof(colours) / sizeof(colours[0]); i++)
        for (uint32_t c = 1; c <= 4; c++) {
            struct pixflow_image a, b;

            if (c == 2 || (c == 4 && colours[i][3] == 0))
                continue; /* no 2-channel pictures; colour under alpha 0 is undefined */
            a = run("width=5", 13, 9, c, NULL, colours[i], 5, 3);
            b = run("width=20;height=21", 3, 2, c, NULL, colours[i], 20, 21);
            plugtest_image_free(&a);
            plugtest_image_free(&b);
        }
}

/* Cover keeps the centre: the columns of 0 0 | 255 255 around a 2-wide middle, cut to a square
 * of 1: the middle pair (0, 255) is kept and averages to 188; the left pair would give 0 and
 * the right one 255. */
static void test_cover_is_centred(void **unused)
{
    static const unsigned char px[] = {0, 0, 255, 255, 0, 0, 255, 255};
    static const unsigned char labelled[] = {10, 20, 30, 40, 50, 60, 70, 80};
    struct pixflow_image in, out;
    void *state;
    char err[128];

    out = run("width=1;height=1;fit=cover", 4, 2, 1, px, NULL, 1, 1);
    assert_int_equal(out.pixels[0], 188);
    plugtest_image_free(&out);
    /* a square of 2 out of 4x2 needs no resampling: a view of the middle columns */
    state = plugtest_init(&resize, "width=2;height=2;fit=cover");
    in = plugtest_image(4, 2, 1, 3, labelled);
    assert_int_equal(plugtest_apply(&resize, state, &in, &out, err, sizeof(err)), 0);
    assert_ptr_equal(out.pixels, in.pixels + 1);
    assert_int_equal(out.stride, in.stride);
    assert_memory_equal(plugtest_packed(&out), "\24\36\74\106", 4);
    plugtest_result_free(&out);
    plugtest_image_free(&in);
    plugtest_destroy(&resize, state);
}

/* A picture already at the target size is answered as it is: nothing copied, nothing softened. */
static void test_same_size_unchanged(void **unused)
{
    static const unsigned char px[] = {0, 255, 0, 255, 0, 255};
    struct pixflow_image in = plugtest_image(3, 2, 1, 1, px), out;
    void *state = plugtest_init(&resize, "width=3");
    char err[128];

    assert_int_equal(plugtest_apply(&resize, state, &in, &out, err, sizeof(err)), 0);
    assert_ptr_equal(out.pixels, in.pixels);
    assert_int_equal(out.width, 3);
    assert_int_equal(out.height, 2);
    plugtest_result_free(&out);
    plugtest_image_free(&in);
    plugtest_destroy(&resize, state);
}

static void fails(const char *config, uint32_t w, uint32_t h, const char *want)
{
    struct pixflow_image in = plugtest_image(w, h, 1, 0, NULL), out;
    void *state = plugtest_init(&resize, config);
    char err[128];

    assert_int_equal(plugtest_apply(&resize, state, &in, &out, err, sizeof(err)), -1);
    assert_string_equal(err, want);
    plugtest_image_free(&in);
    plugtest_destroy(&resize, state);
}

static void test_limits_at_apply(void **unused)
{
    fails("height=2", 100000, 1,
          "a 200000x2 result is out of bounds (1 to 65535 pixels a side, 268435456 in all)");
    fails("width=65535", 1, 5,
          "a 65535x327675 result is out of bounds (1 to 65535 pixels a side, 268435456 in all)");
    fails("width=30000;height=30000;fit=contain", 1, 1,
          "a 30000x30000 result is out of bounds (1 to 65535 pixels a side, 268435456 in all)");
}

/* A larger picture through the real filter, down to a thumbnail, and a long thin one. */
static void test_large_and_thin(void **unused)
{
    static const unsigned char grey[] = {90, 90, 90};
    struct pixflow_image out = run("width=64", 1600, 1200, 3, NULL, grey, 64, 48);

    plugtest_image_free(&out);
    out = run("width=3", 30000, 1, 3, NULL, grey, 3, 1);
    plugtest_image_free(&out);
    out = run("height=2", 1, 30000, 3, NULL, grey, 1, 2);
    plugtest_image_free(&out);
}

/* The result and then stb_image_resize's scratch both come from host->alloc(). */
static void test_out_of_memory(void **unused)
{
    plugtest_alloc_budget = 0;
    fails("width=1", 2, 2, "out of memory for 1x1");
    plugtest_alloc_budget = 1;
    fails("width=1", 2, 2, "out of memory resampling 2x2 to 1x1");
    plugtest_alloc_budget = -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptor),
        cmocka_unit_test(test_refuses_config),
        cmocka_unit_test(test_one_side_keeps_aspect),
        cmocka_unit_test(test_fill_contain_cover_sizes),
        cmocka_unit_test(test_srgb_average),
        cmocka_unit_test(test_alpha_weighted),
        cmocka_unit_test(test_flat_colours),
        cmocka_unit_test(test_cover_is_centred),
        cmocka_unit_test(test_same_size_unchanged),
        cmocka_unit_test(test_limits_at_apply),
        cmocka_unit_test(test_large_and_thin),
        cmocka_unit_test(test_out_of_memory),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
