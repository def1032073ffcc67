/* test_thumbnail.c -- the thumbnail plugin: the longest side becomes size, the other rounded half
 * up and at least 1, for landscape, portrait and square pictures; pictures within the size come
 * back unchanged; sRGB-aware pixels; config refusal. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "thumbnail.c"
#include "plugtest.h"

static void test_descriptor(void **unused)
{
    const struct pixflow_plugin *d = pixflow_plugin_entry();

    assert_string_equal(d->name, "thumbnail");
    assert_int_equal(d->flags, PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC);
    assert_int_equal(d->inputs, PIXFLOW_INPUT_ANY);
}

static void test_refuses_config(void **unused)
{
    plugtest_init_fails(&thumbnail, "", "needs size=N, the longest side in pixels");
    plugtest_init_fails(&thumbnail, "size=0", "size must be an integer from 1 to 65535, got \"0\"");
    plugtest_init_fails(&thumbnail, "size=64px",
                        "size must be an integer from 1 to 65535, got \"64px\"");
    plugtest_init_fails(&thumbnail, "size=+64",
                        "size must be an integer from 1 to 65535, got \"+64\"");
    plugtest_init_fails(&thumbnail, "size=64;width=3", "unknown option \"width\" (options: size)");
}

/* thumbnail:<config> of a flat w x h RGB picture: checks the size and that it stays flat. */
static void sized(const char *config, uint32_t w, uint32_t h, uint32_t ow, uint32_t oh)
{
    static const unsigned char rgb[] = {12, 140, 250};
    unsigned char *px = malloc((size_t)w * h * 3);
    struct pixflow_image in, out;
    void *state = plugtest_init(&thumbnail, config);
    const unsigned char *got;
    char err[128];

    assert_non_null(px);
    for (size_t i = 0; i < (size_t)w * h * 3; i++)
        px[i] = rgb[i % 3];
    in = plugtest_image(w, h, 3, 2, px);
    assert_int_equal(plugtest_apply(&thumbnail, state, &in, &out, err, sizeof(err)), 0);
    assert_int_equal(out.width, ow);
    assert_int_equal(out.height, oh);
    assert_int_equal(out.channels, 3);
    if (ow == w && oh == h)
        assert_ptr_equal(out.pixels, in.pixels); /* unchanged, not copied */
    got = plugtest_packed(&out);
    for (size_t i = 0; i < (size_t)ow * oh * 3; i++)
        assert_int_equal(got[i], rgb[i % 3]);
    plugtest_result_free(&out);
    plugtest_image_free(&in);
    plugtest_destroy(&thumbnail, state);
    free(px);
}

static void test_sizes(void **unused)
{
    sized("size=2", 8, 4, 2, 1);
    sized("size=5", 3, 7, 2, 5); /* 3 * 5 / 7 = 2.14 -> 2 */
    sized("size=4", 7, 3, 4, 2); /* 3 * 4 / 7 = 1.71 -> 2 */
    sized("size=6", 9, 9, 6, 6);
    sized("size=3", 1000, 1, 3, 1);      /* 0.003 -> at least 1 */
    sized("size=64", 1200, 800, 64, 43); /* 42.67 -> 43 */
    sized("size=64", 1, 1, 1, 1);        /* never enlarged */
    sized("size=64", 64, 10, 64, 10);
    sized("size=64", 30, 64, 30, 64);
}

/* Black and white halves shrunk to one pixel: linear-light 0.5, sRGB 188. */
static void test_pixels(void **unused)
{
    static const unsigned char px[] = {0, 255, 0, 255};
    struct pixflow_image in = plugtest_image(2, 2, 1, 0, px), out;
    void *state = plugtest_init(&thumbnail, "size=1");
    char err[128];

    assert_int_equal(plugtest_apply(&thumbnail, state, &in, &out, err, sizeof(err)), 0);
    assert_int_equal(out.width, 1);
    assert_int_equal(out.height, 1);
    assert_int_equal(out.pixels[0], 188);
    plugtest_result_free(&out);
    plugtest_image_free(&in);
    plugtest_destroy(&thumbnail, state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptor),
        cmocka_unit_test(test_refuses_config),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_pixels),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
