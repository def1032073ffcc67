/* test_chain.c -- the bundled plugins as the consumer runs them: scanned from the build's plugin
 * folder by the real loader, chained with channel conversions between links, hand-computed
 * sizes and pixels at the end, errors named after their link, two threads on one chain. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"

static const char *const bundled[] = {
    "blur",   "crop",  "flip",    "grayscale", "invert",    "resize",
    "rotate", "sepia", "sharpen", "threshold", "thumbnail",
};
#define NBUNDLED (sizeof(bundled) / sizeof(bundled[0]))

static struct loader *loader;

static int setup(void **unused)
{
    const char *build = getenv("PIXFLOW_BUILD_DIR");
    char dir[4096], err[512];

    if (build == NULL)
        fail_msg("PIXFLOW_BUILD_DIR is not set (run through ctest)");
    snprintf(dir, sizeof(dir), "%s/lib/pixflow/plugins", build);
    loader = loader_new(NULL, NULL);
    assert_non_null(loader);
    if (loader_scan(loader, dir, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    return 0;
}

static int teardown(void **unused)
{
    loader_free(loader);
    return 0;
}

static struct pixflow_image picture(uint32_t w, uint32_t h, uint32_t c, const unsigned char *px,
                                    size_t npx)
{
    struct pixflow_image im = {w, h, c, 0, (size_t)w * c, NULL, 0, 0};

    im.pixels = malloc(im.stride * h);
    assert_non_null(im.pixels);
    for (size_t i = 0; i < im.stride * h; i++) /* px repeats when shorter: flat pictures */
        im.pixels[i] = px[i % npx];
    return im;
}

static struct pixflow_image run(const char *spec, struct pixflow_image in, uint32_t ow, uint32_t oh,
                                uint32_t oc)
{
    char err[512] = "";
    struct chain *c = loader_chain_new(loader, spec, err, sizeof(err));
    struct pixflow_image out;

    if (c == NULL)
        fail_msg("chain \"%s\": %s", spec, err);
    if (chain_apply(c, &in, &out, err, sizeof(err)) != CHAIN_OK)
        fail_msg("chain \"%s\": %s", spec, err);
    chain_free(c);
    assert_int_equal(out.width, ow);
    assert_int_equal(out.height, oh);
    assert_int_equal(out.channels, oc);
    assert_int_equal(out.stride, (size_t)ow * oc);
    return out;
}

/* Every sample of out is the pixel `px` (oc channels). */
static void assert_flat(const struct pixflow_image *out, const unsigned char *px)
{
    size_t n = (size_t)out->width * out->height * out->channels;

    for (size_t i = 0; i < n; i++)
        if (out->pixels[i] != px[i % out->channels])
            fail_msg("sample %zu is %u, want %u", i, out->pixels[i], px[i % out->channels]);
}

/* Every bundled plugin loads from the folder (others may sit next to them), none is refused. */
static void test_all_load(void **unused)
{
    assert_int_equal(loader_rejected_count(loader), 0);
    for (size_t i = 0; i < NBUNDLED; i++) {
        const struct loader_plugin_info *p = NULL;

        for (size_t k = 0; k < loader_count(loader) && p == NULL; k++)
            if (strcmp(loader_plugin(loader, k)->name, bundled[i]) == 0)
                p = loader_plugin(loader, k);
        if (p == NULL)
            fail_msg("%s.so did not load", bundled[i]);
        assert_int_equal(p->abi_major, PIXFLOW_ABI_MAJOR);
        assert_true(p->flags & PIXFLOW_THREAD_SAFE);
        assert_true(p->flags & PIXFLOW_DETERMINISTIC);
        /* the ones that take what the decoder can give cheaply (ABI 1.1) are at 1.1.0 */
        assert_string_equal(p->version, strcmp(bundled[i], "grayscale") == 0 ||
                                                strcmp(bundled[i], "resize") == 0 ||
                                                strcmp(bundled[i], "thumbnail") == 0
                                            ? "1.1.0"
                                            : "1.0.0");
    }
}

/* (10, 200, 30) has luma 124 (the grayscale plugin's tests); flat stays flat through resize. */
static void test_grayscale_resize(void **unused)
{
    struct pixflow_image out =
        run("grayscale,resize:width=320",
            picture(640, 480, 3, (const unsigned char *)"\12\310\36", 3), 320, 240, 1);

    assert_flat(&out, (const unsigned char *)"\174");
    free(out.pixels);
}

/* 200x100 -> 64x32, then sepia of (100, 50, 20) = (82, 73, 57) (see test_sepia.c). */
static void test_thumbnail_sepia(void **unused)
{
    struct pixflow_image out =
        run("thumbnail:size=64,sepia", picture(200, 100, 3, (const unsigned char *)"\144\62\24", 3),
            64, 32, 3);

    assert_flat(&out, (const unsigned char *)"\122\111\71");
    free(out.pixels);
}

/* Gray 124 becomes (124, 124, 124) for sepia, which only takes RGB: full sepia (168, 149, 116),
 * mixed half and half with 124 -> (146, 137, 120). */
static void test_gray_to_rgb_between_links(void **unused)
{
    struct pixflow_image out =
        run("grayscale, sepia:strength=0.5",
            picture(3, 2, 3, (const unsigned char *)"\12\310\36", 3), 3, 2, 3);

    assert_flat(&out, (const unsigned char *)"\222\211\170");
    free(out.pixels);
}

/* The middle 4x2 of v = 10 y + x (a view), turned clockwise, mirrored: a transpose.
 *  11 12 13 14  --rotate-->  21 11  --flip-->  11 21
 *  21 22 23 24               22 12             12 22 ... */
static void test_crop_rotate_flip(void **unused)
{
    static const unsigned char want[] = {11, 21, 12, 22, 13, 23, 14, 24};
    unsigned char px[24];
    struct pixflow_image out;

    for (int i = 0; i < 24; i++)
        px[i] = (unsigned char)(10 * (i / 6) + i % 6);
    out = run("crop:gravity=center;width=4;height=2,rotate:degrees=90,flip:axis=horizontal",
              picture(6, 4, 1, px, sizeof(px)), 2, 4, 1);
    assert_memory_equal(out.pixels, want, sizeof(want));
    free(out.pixels);
}

/* RGBA inverted (alpha kept), then reduced to luma by the host for threshold: 255 - (40, 60, 80)
 * = (215, 195, 175), luma (299 * 215 + 587 * 195 + 114 * 175 + 500) / 1000 = 199 > 100. */
static void test_invert_threshold(void **unused)
{
    static const unsigned char px[] = {255, 255, 255, 0, 40, 60, 80, 255};
    struct pixflow_image out = run("invert,threshold:level=100", picture(2, 1, 4, px, 8), 2, 1, 1);

    assert_memory_equal(out.pixels, "\0\377", 2);
    free(out.pixels);
}

/* Filters that keep a flat RGBA picture flat, then a cover crop to a square. */
static void test_filters_cover(void **unused)
{
    struct pixflow_image out =
        run("blur:radius=2,sharpen:amount=2;radius=1,resize:width=3;height=3;fit=cover",
            picture(8, 5, 4, (const unsigned char *)"\40\100\140\200", 4), 3, 3, 4);

    assert_flat(&out, (const unsigned char *)"\40\100\140\200");
    free(out.pixels);
}

static void test_errors_name_their_link(void **unused)
{
    char err[512] = "";
    struct chain *c = loader_chain_new(loader, "grayscale,resize:width=abc", err, sizeof(err));
    struct pixflow_image in, out;

    assert_null(c);
    assert_string_equal(err, "resize: width must be an integer from 1 to 65535, got \"abc\"");
    c = loader_chain_new(loader, "invert:x=1", err, sizeof(err));
    assert_null(c);
    assert_string_equal(err, "invert: takes no options, got \"x=1\"");
    c = loader_chain_new(loader, "flip,crop:width=10;height=10", err, sizeof(err));
    assert_null(c);
    assert_string_equal(err, "flip: needs axis=horizontal or axis=vertical");
    c = loader_chain_new(loader, "grayscale,crop:width=10;height=10", err, sizeof(err));
    assert_non_null(c);
    in = picture(4, 4, 3, (const unsigned char *)"abc", 3);
    assert_int_equal(chain_apply(c, &in, &out, err, sizeof(err)), CHAIN_FAILED);
    assert_string_equal(err, "crop: crop 10x10 at (0, 0) reaches outside the 4x4 picture");
    chain_free(c);
}

/* Thread-safe and deterministic as declared: two threads on one chain, same bytes every time. */
struct worker {
    const struct chain *chain;
    unsigned char result[16 * 12 * 3];
    int failures;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    unsigned char px[40 * 30 * 3];
    char err[512];

    for (size_t i = 0; i < sizeof(px); i++)
        px[i] = (unsigned char)(i * 7 + i / 120);
    for (int round = 0; round < 20; round++) {
        struct pixflow_image in = picture(40, 30, 3, px, sizeof(px)), out;

        if (chain_apply(w->chain, &in, &out, err, sizeof(err)) != CHAIN_OK || out.width != 16 ||
            out.height != 12 || out.channels != 3)
            w->failures++;
        else if (round == 0)
            memcpy(w->result, out.pixels, sizeof(w->result));
        else if (memcmp(w->result, out.pixels, sizeof(w->result)) != 0)
            w->failures++;
        free(out.pixels);
    }
    return NULL;
}

static void test_two_threads(void **unused)
{
    char err[512] = "";
    struct chain *c = loader_chain_new(loader, "thumbnail:size=16,sharpen,blur:radius=0.7,sepia",
                                       err, sizeof(err));
    struct worker w[2];
    pthread_t t[2];

    assert_non_null(c);
    memset(w, 0, sizeof(w));
    for (int i = 0; i < 2; i++) {
        w[i].chain = c;
        assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(w[0].failures, 0);
    assert_int_equal(w[1].failures, 0);
    assert_memory_equal(w[0].result, w[1].result, sizeof(w[0].result));
    chain_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_load),         cmocka_unit_test(test_grayscale_resize),
        cmocka_unit_test(test_thumbnail_sepia),  cmocka_unit_test(test_gray_to_rgb_between_links),
        cmocka_unit_test(test_crop_rotate_flip), cmocka_unit_test(test_invert_threshold),
        cmocka_unit_test(test_filters_cover),    cmocka_unit_test(test_errors_name_their_link),
        cmocka_unit_test(test_two_threads),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
