/* test_sepia.c -- the sepia plugin: hand-computed pixels of the matrix with clamping, strength
 * mixing, strength 0 as the identity, every colour against the matrix, in place and copying,
 * channel refusal, config refusal. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sepia.c"
#include "plugtest.h"

static void test_descriptor(void **unused)
{
    const struct pixflow_plugin *d = pixflow_plugin_entry();

    assert_string_equal(d->name, "sepia");
    assert_int_equal(d->flags, PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC | PIXFLOW_IN_PLACE);
    assert_int_equal(d->inputs, PIXFLOW_INPUT_RGB);
}

static void test_refuses_config(void **unused)
{
    plugtest_init_fails(&sepia, "strength=2",
                        "strength must be a number from 0 to 1 (at most 3 decimals), got \"2\"");
    plugtest_init_fails(
        &sepia, "strength=1.001",
        "strength must be a number from 0 to 1 (at most 3 decimals), got \"1.001\"");
    plugtest_init_fails(
        &sepia, "strength=0.0001",
        "strength must be a number from 0 to 1 (at most 3 decimals), got \"0.0001\"");
    plugtest_init_fails(&sepia, "strength=-0.5",
                        "strength must be a number from 0 to 1 (at most 3 decimals), got \"-0.5\"");
    plugtest_init_fails(&sepia, "strength=half",
                        "strength must be a number from 0 to 1 (at most 3 decimals), got \"half\"");
    plugtest_init_fails(&sepia, "strength=", "option strength has no value");
    plugtest_init_fails(&sepia, "strength=1;strength=0", "option strength given twice");
    plugtest_init_fails(&sepia, "tone=warm", "unknown option \"tone\" (options: strength)");
    plugtest_init_fails(&sepia, "strength", "malformed option \"strength\" (want key=value)");
    plugtest_destroy(&sepia, plugtest_init(&sepia, ""));
    plugtest_destroy(&sepia, plugtest_init(&sepia, "strength=.25"));
    plugtest_destroy(&sepia, plugtest_init(&sepia, " strength = 0 "));
}

static void run(const char *config, const unsigned char *px, uint32_t n, int writable,
                const unsigned char *want)
{
    struct pixflow_image out = plugtest_same_size(&sepia, config, n, 1, 3, 2, writable, px);

    assert_memory_equal(out.pixels, want, n * 3);
    plugtest_image_free(&out);
}

/* R' = (393 R + 769 G + 189 B + 500) / 1000 etc., clamped at 255:
 * white: 1351 * 255 -> 345 -> 255, 1203 * 255 -> 307 -> 255, 937 * 255 = 238935 -> 239
 * (100, 50, 20): 81530 -> 82, 72560 -> 73, 56520 -> 57
 * (10, 200, 30): 163400 -> 163, 145730 -> 146, 113450 -> 113 */
static void test_full_strength(void **unused)
{
    static const unsigned char px[] = {0, 0, 0, 255, 255, 255, 100, 50, 20, 10, 200, 30};
    static const unsigned char want[] = {0, 0, 0, 255, 255, 239, 82, 73, 57, 163, 146, 113};

    run("", px, 4, 0, want);
    run("strength=1", px, 4, 1, want);
}

/* (v * 500 + v' * 500 + 500) / 1000: (100, 50, 20) -> (91, 62, 39); white -> (255, 255, 247) */
static void test_half_strength(void **unused)
{
    static const unsigned char px[] = {100, 50, 20, 255, 255, 255};
    static const unsigned char want[] = {91, 62, 39, 255, 255, 247};

    run("strength=0.5", px, 2, 1, want);
}

static void test_zero_strength_is_identity(void **unused)
{
    unsigned char px[256 * 3];

    for (int i = 0; i < 256 * 3; i++)
        px[i] = (unsigned char)(i * 7);
    run("strength=0", px, 256, 0, px);
}

/* The W3C sepia matrix, written out again here, clamped, then mixed in thousandths. */
static unsigned reference(const int k[3], unsigned r, unsigned g, unsigned b, unsigned v,
                          unsigned strength)
{
    unsigned t = (k[0] * r + k[1] * g + k[2] * b + 500) / 1000;

    t = t > 255 ? 255 : t;
    return (v * (1000 - strength) + t * strength + 500) / 1000;
}

/* Every colour once, as a 4096 x 4096 picture, at full and at 0.3 strength. */
static void test_all_colours(void **unused)
{
    static const int matrix[3][3] = {{393, 769, 189}, {349, 686, 168}, {272, 534, 131}};
    static const unsigned strengths[] = {1000, 300};
    static const char *const configs[] = {"", "strength=0.3"};
    size_t n = (size_t)1 << 24;
    unsigned char *rgb = malloc(n * 3);
    char err[128];

    assert_non_null(rgb);
    for (int s = 0; s < 2; s++) {
        struct pixflow_image in, out;
        void *state = plugtest_init(&sepia, configs[s]);
        size_t bad = 0;

        for (size_t i = 0; i < n; i++) {
            rgb[3 * i] = (unsigned char)(i >> 16);
            rgb[3 * i + 1] = (unsigned char)(i >> 8);
            rgb[3 * i + 2] = (unsigned char)i;
        }
        in = (struct pixflow_image){4096, 4096, 3, PIXFLOW_IMAGE_WRITABLE, 4096 * 3, rgb, 0, 0};
        assert_int_equal(plugtest_apply(&sepia, state, &in, &out, err, sizeof(err)), 0);
        for (size_t i = 0; i < n; i++) {
            unsigned r = (unsigned)(i >> 16), g = (i >> 8) & 255, b = i & 255;
            unsigned v[3] = {r, g, b};

            for (int c = 0; c < 3; c++)
                bad += rgb[3 * i + c] != reference(matrix[c], r, g, b, v[c], strengths[s]);
        }
        assert_int_equal(bad, 0);
        plugtest_destroy(&sepia, state);
    }
    free(rgb);
}

static void test_refuses_other_channels(void **unused)
{
    struct pixflow_image in = plugtest_image(1, 1, 4, 0, (const unsigned char *)"abcd");

    plugtest_apply_fails(&sepia, "", &in, -1, "takes RGB pictures, got 4 channels");
    plugtest_image_free(&in);
}

static void test_out_of_memory(void **unused)
{
    struct pixflow_image in = plugtest_image(3, 2, 3, 0, NULL);

    plugtest_apply_fails(&sepia, "", &in, 0, "out of memory for 3x2");
    plugtest_image_free(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptor),
        cmocka_unit_test(test_refuses_config),
        cmocka_unit_test(test_full_strength),
        cmocka_unit_test(test_half_strength),
        cmocka_unit_test(test_zero_strength_is_identity),
        cmocka_unit_test(test_all_colours),
        cmocka_unit_test(test_refuses_other_channels),
        cmocka_unit_test(test_out_of_memory),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
