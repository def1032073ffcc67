/* test_blur.c -- the blur plugin and gauss.c: kernels against exp() and by hand, impulses blurred
 * by hand in one and two dimensions, edges repeating the border, flat pictures staying exactly
 * flat, in place equal to copying, 1x1 and tall pictures, config refusal, out of memory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blur.c"
#include "plugtest.h"

static void test_descriptor(void **unused)
{
    const struct pixflow_plugin *d = pixflow_plugin_entry();

    assert_string_equal(d->name, "blur");
    assert_int_equal(d->flags, PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC | PIXFLOW_IN_PLACE);
    assert_int_equal(d->inputs, PIXFLOW_INPUT_ANY);
}

static void test_refuses_config(void **unused)
{
    plugtest_init_fails(&blur, "", "needs radius=R, in pixels from 0.1 to 50");
    plugtest_init_fails(&blur, "radius=0",
                        "radius must be a number from 0.1 to 50 (at most 3 "
                        "decimals), got \"0\"");
    plugtest_init_fails(&blur, "radius=50.001",
                        "radius must be a number from 0.1 to 50 (at most "
                        "3 decimals), got \"50.001\"");
    plugtest_init_fails(&blur, "radius=2px",
                        "radius must be a number from 0.1 to 50 (at most 3 "
                        "decimals), got \"2px\"");
    plugtest_init_fails(&blur, "radius=1e1",
                        "radius must be a number from 0.1 to 50 (at most 3 "
                        "decimals), got \"1e1\"");
    plugtest_init_fails(&blur, "radius=1.",
                        "radius must be a number from 0.1 to 50 (at most 3 "
                        "decimals), got \"1.\"");
    plugtest_init_fails(&blur, "sigma=2", "unknown option \"sigma\" (options: radius)");
    plugtest_destroy(&blur, plugtest_init(&blur, "radius=0.1"));
    plugtest_destroy(&blur, plugtest_init(&blur, "radius=50"));
}

/* exp(-k^2/2) normalised: 26152.16, 15862.09, 3539.31, 290.52 (sigma 1); 51548.70, 6976.36,
 * 17.29 (sigma 0.5); at sigma 0.1 the first side tap is exp(-50): nothing but the centre. */
static void test_kernels_by_hand(void **unused)
{
    struct gauss *g = gauss_new(1000);

    assert_int_equal(g->half, 3);
    assert_int_equal(g->w[0], 26152);
    assert_int_equal(g->w[1], 15862);
    assert_int_equal(g->w[2], 3539);
    assert_int_equal(g->w[3], 291);
    gauss_free(g);
    g = gauss_new(500);
    assert_int_equal(g->half, 2);
    assert_int_equal(g->w[0], 51548);
    assert_int_equal(g->w[1], 6977);
    assert_int_equal(g->w[2], 17);
    gauss_free(g);
    g = gauss_new(100);
    assert_int_equal(g->half, 0);
    assert_int_equal(g->w[0], GAUSS_ONE);
    gauss_free(g);
}

/* Every sigma of the range, in steps of 0.037: the fixed-point kernel sums to exactly 65536,
 * reaches no further than ceil(3 sigma), and each weight is within 2/65536 of exp()'s. */
static void test_kernels_against_exp(void **unused)
{
    for (uint32_t s = GAUSS_SIGMA_MIN; s <= GAUSS_SIGMA_MAX; s += 37) {
        struct gauss *g = gauss_new(s);
        double sigma = s / 1000.0, total = 0;
        uint32_t sum;

        assert_non_null(g);
        assert_true(g->half <= (3 * s + 999) / 1000);
        sum = g->w[0];
        for (uint32_t k = 1; k <= g->half; k++)
            sum += 2 * g->w[k];
        assert_int_equal(sum, GAUSS_ONE);
        for (int k = -(int)(3 * s + 999) / 1000; k <= (int)(3 * s + 999) / 1000; k++)
            total += exp(-k * k / (2 * sigma * sigma));
        for (uint32_t k = 0; k <= g->half; k++) {
            double want = GAUSS_ONE * exp(-(double)k * k / (2 * sigma * sigma)) / total;

            if (fabs(g->w[k] - want) >= 2)
                fail_msg("sigma %.3f tap %u: %u, exp() says %.2f", sigma, k, g->w[k], want);
        }
        gauss_free(g);
    }
}

static struct pixflow_image run(const char *config, uint32_t w, uint32_t h, uint32_t c,
                                int writable, const unsigned char *px)
{
    return plugtest_same_size(&blur, config, w, h, c, 3, writable, px);
}

/* One row, so each column sum is 65536 times the row pass: out = round(round(255 w / 256) / 256)
 * with w = 26152, 15862, 3539, 291: 26050 -> 102, 15800 -> 62, 3525 -> 14, 290 -> 1. */
static void test_impulse_row(void **unused)
{
    static const unsigned char px[] = {0, 0, 0, 255, 0, 0, 0};
    static const unsigned char want[] = {1, 14, 62, 102, 62, 14, 1};

    for (int writable = 0; writable <= 1; writable++) {
        struct pixflow_image out = run("radius=1", 7, 1, 1, writable, px);

        assert_memory_equal(out.pixels, want, sizeof(want));
        plugtest_image_free(&out);
    }
}

/* Sigma 0.5 (51548, 6977, 17), 255 in the middle of 5x5: the row pass gives 17, 6950, 51347 (=
 * round(255 w / 256)); then e.g. the centre is 51548 * 51347 / 2^24 = 157.8 -> 158, its side
 * neighbours 6977 * 51347 / 2^24 = 21.4 -> 21, the diagonal ones 6977 * 6950 / 2^24 = 2.9 -> 3,
 * and 17 * 51347 / 2^24 = 0.05 -> 0 two pixels away. */
static void test_impulse_square(void **unused)
{
    unsigned char px[25] = {0};
    static const unsigned char want[5][5] = {
        {0, 0, 0, 0, 0}, {0, 3, 21, 3, 0}, {0, 21, 158, 21, 0}, {0, 3, 21, 3, 0}, {0, 0, 0, 0, 0},
    };
    struct pixflow_image out;

    px[12] = 255;
    out = run("radius=0.5", 5, 5, 1, 0, px);
    assert_memory_equal(out.pixels, want, sizeof(want));
    plugtest_image_free(&out);
}

/* Taps beyond the edge repeat the border: with 255 at the left end of a row, its pixel gets
 * w0 + w1 + w2 + w3 = 45844 (-> 45665 -> 178), the next w1 + w2 + w3 = 19692 (-> 19615 -> 77),
 * then w2 + w3 = 3830 (-> 3815 -> 15) and w3 = 291 (-> 1). */
static void test_edges_repeat(void **unused)
{
    static const unsigned char px[] = {255, 0, 0, 0};
    static const unsigned char want[] = {178, 77, 15, 1};
    struct pixflow_image out = run("radius=1", 4, 1, 1, 0, px);

    assert_memory_equal(out.pixels, want, sizeof(want));
    plugtest_image_free(&out);
    out = run("radius=1", 1, 4, 1, 1, px); /* the same down a column */
    assert_memory_equal(out.pixels, want, sizeof(want));
    plugtest_image_free(&out);
}

/* Weights summing to exactly 65536 keep a flat picture flat, whatever its size and sigma. */
static void test_flat_stays_flat(void **unused)
{
    static const char *const radii[] = {"radius=0.3", "radius=1", "radius=2.5", "radius=50"};
    static const unsigned char rgba[] = {10, 200, 37, 255};
    unsigned char px[9 * 4 * 4];

    for (size_t i = 0; i < sizeof(px); i++)
        px[i] = rgba[i % 4];
    for (size_t r = 0; r < sizeof(radii) / sizeof(radii[0]); r++) {
        struct pixflow_image out = run(radii[r], 9, 4, 4, (int)(r & 1), px);

        assert_memory_equal(out.pixels, px, sizeof(px));
        plugtest_image_free(&out);
    }
}

/* A textured picture, taller and wider than the kernel: in place equals copying, and the
 * result is symmetric when the picture is. */
static void test_in_place_equals_copy(void **unused)
{
    enum { W = 23, H = 31, C = 3 };
    unsigned char px[W * H * C];
    struct pixflow_image a, b;

    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++) /* symmetric around the middle column */
                px[(y * W + x) * C + c] =
                    (unsigned char)((abs(x - W / 2) * 37 + y * 11 + c * 80) ^ (y * y));
    a = run("radius=2.2", W, H, C, 0, px);
    b = run("radius=2.2", W, H, C, 1, px);
    assert_memory_equal(a.pixels, b.pixels, sizeof(px));
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            assert_memory_equal(a.pixels + (y * W + x) * C, a.pixels + (y * W + W - 1 - x) * C, C);
    plugtest_image_free(&a);
    plugtest_image_free(&b);
}

static void test_tiny_pictures(void **unused)
{
    struct pixflow_image out = run("radius=50", 1, 1, 3, 1, (const unsigned char *)"\1\2\3");

    assert_memory_equal(out.pixels, "\1\2\3", 3);
    plugtest_image_free(&out);
    /* Sigma 20 on a 2-pixel row: every tap lands on one of the two ends. The centre weighs
     * 1310 and each side 32113, so the white end gets 255 * (1310 + 32113) / 65536 = 130.05 and
     * the black one 255 * 32113 / 65536 = 124.95. */
    out = run("radius=20", 2, 1, 1, 0, (const unsigned char *)"\0\377");
    assert_memory_equal(out.pixels, "\175\202", 2);
    plugtest_image_free(&out);
}

static void test_out_of_memory(void **unused)
{
    struct pixflow_image in = plugtest_image(6, 5, 3, 0, NULL);

    /* the output, then the scratch rows; in place, the scratch rows are the first block */
    plugtest_apply_fails(&blur, "radius=1", &in, 0, "out of memory for 6x5");
    plugtest_apply_fails(&blur, "radius=1", &in, 1, "out of memory for 6 rows of 6 pixels");
    in.flags = PIXFLOW_IMAGE_WRITABLE;
    plugtest_apply_fails(&blur, "radius=1", &in, 0, "out of memory for 6 rows of 6 pixels");
    plugtest_image_free(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptor),           cmocka_unit_test(test_refuses_config),
        cmocka_unit_test(test_kernels_by_hand),      cmocka_unit_test(test_kernels_against_exp),
        cmocka_unit_test(test_impulse_row),          cmocka_unit_test(test_impulse_square),
        cmocka_unit_test(test_edges_repeat),         cmocka_unit_test(test_flat_stays_flat),
        cmocka_unit_test(test_in_place_equals_copy), cmocka_unit_test(test_tiny_pictures),
        cmocka_unit_test(test_out_of_memory),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
