/* test_rotate.c -- the rotate plugin: hand-checked quarter and half turns of small pictures,
 * the half turn in place for odd and even sizes, tile edges on a larger picture (four quarter
 * turns are the identity), 1x1, config refusal, out of memory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "rotate.c"
#include "plugtest.h"

static void test_descriptor(void **unused)
{
    const struct pixflow_plugin *d = pixflow_plugin_entry();

    assert_string_equal(d->name, "rotate");
    assert_int_equal(d->flags, PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC | PIXFLOW_IN_PLACE);
    assert_int_equal(d->inputs, PIXFLOW_INPUT_ANY);
}

static void test_refuses_config(void **unused)
{
    plugtest_init_fails(&rotate, "", "needs degrees=90, 180 or 270 (clockwise)");
    plugtest_init_fails(&rotate, "degrees=45", "degrees must be 90, 180 or 270, got \"45\"");
    plugtest_init_fails(&rotate, "degrees=0", "degrees must be 90, 180 or 270, got \"0\"");
    plugtest_init_fails(&rotate, "degrees=-90", "degrees must be 90, 180 or 270, got \"-90\"");
    plugtest_init_fails(&rotate, "degrees=090", "degrees must be 90, 180 or 270, got \"090\"");
    plugtest_init_fails(&rotate, "angle=90", "unknown option \"angle\" (options: degrees)");
    plugtest_init_fails(&rotate, "degrees=90;degrees=90", "option degrees given twice");
}

/* Runs rotate:degrees=<deg> on a w x h picture and compares with want (tightly packed). */
static void check(const char *config, uint32_t w, uint32_t h, uint32_t c, int writable,
                  const unsigned char *px, uint32_t ow, uint32_t oh, const unsigned char *want)
{
    struct pixflow_image in = plugtest_image(w, h, c, 5, px), out;
    void *state = plugtest_init(&rotate, config);
    char err[128];

    in.flags = writable ? PIXFLOW_IMAGE_WRITABLE : 0;
    assert_int_equal(plugtest_apply(&rotate, state, &in, &out, err, sizeof(err)), 0);
    assert_int_equal(out.width, ow);
    assert_int_equal(out.height, oh);
    assert_int_equal(out.channels, c);
    assert_memory_equal(plugtest_packed(&out), want, (size_t)ow * oh * c);
    plugtest_result_free(&out);
    plugtest_image_free(&in);
    plugtest_destroy(&rotate, state);
}

/*  1 2 3    90:  4 1    180:  6 5 4    270:  3 6
 *  4 5 6         5 2          3 2 1          2 5
 *                6 3                         1 4 */
static void test_gray_3x2(void **unused)
{
    static const unsigned char px[] = {1, 2, 3, 4, 5, 6};

    check("degrees=90", 3, 2, 1, 0, px, 2, 3, (const unsigned char *)"\4\1\5\2\6\3");
    check("degrees=180", 3, 2, 1, 0, px, 3, 2, (const unsigned char *)"\6\5\4\3\2\1");
    check("degrees=180", 3, 2, 1, 1, px, 3, 2, (const unsigned char *)"\6\5\4\3\2\1");
    check("degrees=270", 3, 2, 1, 0, px, 2, 3, (const unsigned char *)"\3\6\2\5\1\4");
}

/* The same turns with RGB pixels (v, v + 10, v + 20): pixels move whole. */
static void test_rgb_3x2(void **unused)
{
    static const unsigned char px[] = {1, 11, 21, 2, 12, 22, 3, 13, 23,
                                       4, 14, 24, 5, 15, 25, 6, 16, 26};
    static const unsigned char r90[] = {4, 14, 24, 1, 11, 21, 5, 15, 25,
                                        2, 12, 22, 6, 16, 26, 3, 13, 23};
    static const unsigned char r180[] = {6, 16, 26, 5, 15, 25, 4, 14, 24,
                                         3, 13, 23, 2, 12, 22, 1, 11, 21};

    check("degrees=90", 3, 2, 3, 0, px, 2, 3, r90);
    check("degrees=180", 3, 2, 3, 1, px, 3, 2, r180);
}

/* In place, odd height: the middle row is reversed once, not twice. */
static void test_half_in_place_odd(void **unused)
{
    static const unsigned char px[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};

    check("degrees=180", 3, 3, 1, 1, px, 3, 3, (const unsigned char *)"\11\10\7\6\5\4\3\2\1");
    check("degrees=180", 2, 2, 1, 1, px, 2, 2, (const unsigned char *)"\4\3\2\1");
    check("degrees=180", 3, 1, 1, 1, px, 3, 1, (const unsigned char *)"\3\2\1");
    check("degrees=180", 1, 3, 1, 1, px, 1, 3, (const unsigned char *)"\3\2\1");
    check("degrees=180", 1, 1, 4, 1, px, 1, 1, px);
}

static void test_1x1(void **unused)
{
    check("degrees=90", 1, 1, 3, 0, (const unsigned char *)"abc", 1, 1,
          (const unsigned char *)"abc");
    check("degrees=270", 1, 1, 1, 1, (const unsigned char *)"z", 1, 1, (const unsigned char *)"z");
}

/* Larger than a tile in both directions, with ragged edges: four quarter turns give the
 * picture back, and two of them equal a half turn. */
static void test_tiles(void **unused)
{
    enum { W = 150, H = 67, C = 4 };
    unsigned char *px = malloc(W * H * C), *half;
    struct pixflow_image cur, out;
    void *q = plugtest_init(&rotate, "degrees=90"), *hs = plugtest_init(&rotate, "degrees=180");
    char err[128];

    assert_non_null(px);
    for (int i = 0; i < W * H * C; i++)
        px[i] = (unsigned char)(i * 31 + i / 7);
    cur = plugtest_image(W, H, C, 0, px);
    assert_int_equal(plugtest_apply(&rotate, hs, &cur, &out, err, sizeof(err)), 0);
    half = malloc(W * H * C);
    assert_non_null(half);
    memcpy(half, out.pixels, W * H * C);
    plugtest_result_free(&out);
    for (int turn = 1; turn <= 4; turn++) {
        assert_int_equal(plugtest_apply(&rotate, q, &cur, &out, err, sizeof(err)), 0);
        assert_int_equal(out.width, turn % 2 ? H : W);
        assert_int_equal(out.height, turn % 2 ? W : H);
        plugtest_image_free(&cur);
        cur = plugtest_image(out.width, out.height, C, 0, out.pixels);
        plugtest_result_free(&out);
        if (turn == 2)
            assert_memory_equal(cur.pixels, half, W * H * C);
    }
    assert_memory_equal(cur.pixels, px, W * H * C);
    plugtest_image_free(&cur);
    free(half);
    free(px);
    plugtest_destroy(&rotate, q);
    plugtest_destroy(&rotate, hs);
}

static void test_out_of_memory(void **unused)
{
    struct pixflow_image in = plugtest_image(5, 2, 3, 0, NULL);

    plugtest_apply_fails(&rotate, "degrees=270", &in, 0, "out of memory for 2x5");
    plugtest_image_free(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptor),
        cmocka_unit_test(test_refuses_config),
        cmocka_unit_test(test_gray_3x2),
        cmocka_unit_test(test_rgb_3x2),
        cmocka_unit_test(test_half_in_place_odd),
        cmocka_unit_test(test_1x1),
        cmocka_unit_test(test_tiles),
        cmocka_unit_test(test_out_of_memory),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
