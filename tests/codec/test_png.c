/* test_png.c -- the PNG writer: exact round trips through the decoder, headers, bad input,
 * concurrent use. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "png.h"

/* An image with a stride of row + pad bytes, pad bytes set to 0xee so a writer that reads them
 * produces wrong pixels. */
static struct pixflow_image make_image(uint32_t w, uint32_t h, uint32_t ch, size_t pad,
                                       uint32_t seed)
{
    struct pixflow_image im = {w, h, ch, 0, (size_t)w * ch + pad, NULL, 0, 0};
    uint32_t s = seed * 2654435761u + 1;

    im.pixels = malloc(im.stride * h);
    assert_non_null(im.pixels);
    memset(im.pixels, 0xee, im.stride * h);
    for (uint32_t y = 0; y < h; y++) {
        for (size_t x = 0; x < (size_t)w * ch; x++) {
            s ^= s << 13, s ^= s >> 17, s ^= s << 5;
            /* half smooth gradient, half noise: exercises every filter's arithmetic */
            im.pixels[y * im.stride + x] =
                (x / ch + y) % 2 ? (unsigned char)(x * 3 + y * 5) : (unsigned char)s;
        }
    }
    return im;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Encode, check the header, decode with the decoder (which also checks every CRC) at the same
 * channel count and compare every pixel. */
static void round_trip(const struct pixflow_image *im, const struct png_params *p)
{
    static const int color_type[5] = {-1, 0, -1, 2, 6};
    unsigned char *png;
    size_t len;
    char err[256];
    struct image_info info;
    struct pixflow_image back;

    assert_int_equal(png_encode(im, p, &png, &len, err, sizeof(err)), PNG_OK);
    assert_memory_equal(png, "\x89PNG\r\n\x1a\n", 8);
    assert_int_equal(be32(png + 8), 13);
    assert_memory_equal(png + 12, "IHDR", 4);
    assert_int_equal(be32(png + 16), im->width);
    assert_int_equal(be32(png + 20), im->height);
    assert_int_equal(png[24], 8);
    assert_int_equal(png[25], color_type[im->channels]);
    assert_int_equal(png[28], 0); /* not interlaced */
    assert_memory_equal(png + len - 8, "IEND\xae\x42\x60\x82", 8);

    assert_int_equal(image_probe(png, len, &info, err, sizeof(err)), IMAGE_OK);
    assert_string_equal(info.name, "png");
    assert_int_equal(info.width, im->width);
    assert_int_equal(info.height, im->height);
    assert_int_equal(info.channels, im->channels);
    assert_int_equal(image_decode(png, len, &info, (int)im->channels, &back, err, sizeof(err)),
                     IMAGE_OK);
    for (uint32_t y = 0; y < im->height; y++)
        assert_memory_equal(back.pixels + y * back.stride, im->pixels + y * im->stride,
                            (size_t)im->width * im->channels);
    free(back.pixels);
    free(png);
}

static void test_round_trip_sizes(void **unused)
{
    static const uint32_t sizes[][2] = {{1, 1},  {1, 7},   {7, 1},  {3, 5},
                                        {17, 9}, {255, 3}, {64, 64}};
    static const uint32_t channels[] = {1, 3, 4};

    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        for (size_t c = 0; c < 3; c++) {
            for (size_t pad = 0; pad <= 5; pad += 5) {
                struct pixflow_image im =
                    make_image(sizes[s][0], sizes[s][1], channels[c], pad, (uint32_t)s);

                round_trip(&im, NULL);
                free(im.pixels);
            }
        }
    }
}

static void test_round_trip_every_filter_and_level(void **unused)
{
    static const uint32_t channels[] = {1, 3, 4};

    for (size_t c = 0; c < 3; c++) {
        struct pixflow_image im = make_image(33, 21, channels[c], 3, 9);

        for (int f = PNG_FILTER_NONE; f <= PNG_FILTER_SAMPLED; f++) {
            for (int level = PNG_LEVEL_HUFFMAN; level <= 12; level += level == 0 ? 1 : 5) {
                struct png_params p = {level, (enum png_filter)f};

                round_trip(&im, &p);
            }
        }
        free(im.pixels);
    }
}

/* A flat megapixel must come out tiny: filters and deflate really ran on the rows. */
static void test_flat_image_is_small(void **unused)
{
    struct pixflow_image im = {1000, 1000, 1, 0, 1000, NULL, 0, 0};
    unsigned char *png;
    size_t len;
    char err[128];

    im.pixels = malloc(1000 * 1000);
    assert_non_null(im.pixels);
    memset(im.pixels, 0x42, 1000 * 1000);
    assert_int_equal(png_encode(&im, NULL, &png, &len, err, sizeof(err)), PNG_OK);
    assert_true(len < 6000);
    round_trip(&im, NULL);
    free(png);
    free(im.pixels);
}

static void test_refuses_bad_input(void **unused)
{
    unsigned char px[64] = {0};
    struct pixflow_image im = {4, 4, 2, 0, 8, px, 0, 0};
    struct png_params bad_level = {13, PNG_FILTER_PAETH};
    unsigned char *png = NULL;
    size_t len = 0;
    char err[128];

    assert_int_equal(png_encode(&im, NULL, &png, &len, err, sizeof(err)), PNG_INVALID);
    assert_non_null(strstr(err, "2 channels"));
    im.channels = 3;
    im.stride = 11; /* below 4 * 3 */
    assert_int_equal(png_encode(&im, NULL, &png, &len, err, sizeof(err)), PNG_INVALID);
    im.stride = 12;
    im.width = 0;
    assert_int_equal(png_encode(&im, NULL, &png, &len, err, sizeof(err)), PNG_INVALID);
    im.width = 4;
    assert_int_equal(png_encode(&im, &bad_level, &png, &len, err, sizeof(err)), PNG_INVALID);
    assert_null(png);
    assert_int_equal(png_encode(&im, NULL, &png, &len, err, sizeof(err)), PNG_OK);
    free(png);
}

struct worker {
    const struct pixflow_image *im;
    struct png_params params;
    const unsigned char *want;
    size_t want_len;
    int mismatches;
};

static void *encode_many(void *arg)
{
    struct worker *w = arg;
    char err[128];

    for (int i = 0; i < 20; i++) {
        unsigned char *png;
        size_t len;

        if (png_encode(w->im, &w->params, &png, &len, err, sizeof(err)) != PNG_OK) {
            w->mismatches++;
            continue;
        }
        if (len != w->want_len || memcmp(png, w->want, len) != 0)
            w->mismatches++;
        free(png);
    }
    return NULL;
}

/* Threads at different levels share nothing: each gets what a lone encoder produces. */
static void test_concurrent_threads(void **unused)
{
    struct pixflow_image im = make_image(300, 200, 3, 0, 4);
    struct worker w[4];
    pthread_t th[4];
    unsigned char *want[4];
    char err[128];

    for (int i = 0; i < 4; i++) {
        w[i].im = &im;
        w[i].params.level = 1 + 3 * i;
        w[i].params.filter = (enum png_filter)(i % 2 ? PNG_FILTER_PAETH : PNG_FILTER_ADAPTIVE);
        assert_int_equal(png_encode(&im, &w[i].params, &want[i], &w[i].want_len, err, sizeof(err)),
                         PNG_OK);
        w[i].want = want[i];
        w[i].mismatches = 0;
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, encode_many, &w[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].mismatches, 0);
        free(want[i]);
    }
    free(im.pixels);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_sizes),
        cmocka_unit_test(test_round_trip_every_filter_and_level),
        cmocka_unit_test(test_flat_image_is_small),
        cmocka_unit_test(test_refuses_bad_input),
        cmocka_unit_test(test_concurrent_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
