/* test_process.c -- the CPU stage end to end: a real JPEG to a gray PNG with its digests, and
 * every refusal with its reason code (the bomb refused before any pixel memory exists). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "digest.h"
#include "image.h"
#include "process.h"
#include "testload.h"

/* 37x23 colour progressive JPEG from the picsum-like generator (picture 7, quality 80). */
static const unsigned char jpeg[751] = {
    0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01,
    0x00, 0x01, 0x00, 0x00, 0xff, 0xdb, 0x00, 0x43, 0x00, 0x06, 0x04, 0x05, 0x06, 0x05, 0x04, 0x06,
    0x06, 0x05, 0x06, 0x07, 0x07, 0x06, 0x08, 0x0a, 0x10, 0x0a, 0x0a, 0x09, 0x09, 0x0a, 0x14, 0x0e,
    0x0f, 0x0c, 0x10, 0x17, 0x14, 0x18, 0x18, 0x17, 0x14, 0x16, 0x16, 0x1a, 0x1d, 0x25, 0x1f, 0x1a,
    0x1b, 0x23, 0x1c, 0x16, 0x16, 0x20, 0x2c, 0x20, 0x23, 0x26, 0x27, 0x29, 0x2a, 0x29, 0x19, 0x1f,
    0x2d, 0x30, 0x2d, 0x28, 0x30, 0x25, 0x28, 0x29, 0x28, 0xff, 0xdb, 0x00, 0x43, 0x01, 0x07, 0x07,
    0x07, 0x0a, 0x08, 0x0a, 0x13, 0x0a, 0x0a, 0x13, 0x28, 0x1a, 0x16, 0x1a, 0x28, 0x28, 0x28, 0x28,
    0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28,
    0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28,
    0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0x28, 0xff, 0xc2,
    0x00, 0x11, 0x08, 0x00, 0x17, 0x00, 0x25, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11,
    0x01, 0xff, 0xc4, 0x00, 0x18, 0x00, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x03, 0x01, 0x06, 0xff, 0xc4, 0x00, 0x17, 0x01,
    0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x04, 0x02, 0x03, 0x01, 0xff, 0xda, 0x00, 0x0c, 0x03, 0x01, 0x00, 0x02, 0x10, 0x03, 0x10, 0x00,
    0x00, 0x01, 0xf0, 0xa9, 0x23, 0x9a, 0x3d, 0x8c, 0xe2, 0xaa, 0xc1, 0x2a, 0x9a, 0x67, 0x28, 0x18,
    0x1f, 0x1a, 0xd9, 0x07, 0xaa, 0xf9, 0xff, 0xc4, 0x00, 0x1c, 0x10, 0x00, 0x02, 0x03, 0x00, 0x03,
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x11,
    0x04, 0x13, 0x21, 0x31, 0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x01, 0x05, 0x02, 0x8f, 0xc8,
    0xfa, 0x3c, 0x1a, 0xd1, 0xc0, 0x48, 0xad, 0x61, 0x3c, 0x34, 0xd3, 0x89, 0x7c, 0x63, 0x47, 0x26,
    0xf8, 0xb8, 0x52, 0xbb, 0x4d, 0xf1, 0xc8, 0xff, 0xc4, 0x00, 0x1b, 0x11, 0x00, 0x01, 0x05, 0x01,
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x02, 0x10,
    0x11, 0x12, 0x03, 0x21, 0xff, 0xda, 0x00, 0x08, 0x01, 0x03, 0x01, 0x01, 0x3f, 0x01, 0xe8, 0xff,
    0x00, 0x29, 0x06, 0x91, 0x18, 0x1a, 0xb5, 0x71, 0xff, 0xc4, 0x00, 0x19, 0x11, 0x00, 0x03, 0x01,
    0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02,
    0x11, 0x21, 0x41, 0xff, 0xda, 0x00, 0x08, 0x01, 0x02, 0x01, 0x01, 0x3f, 0x01, 0x4b, 0x09, 0x69,
    0xae, 0x98, 0x8f, 0x49, 0xa6, 0x69, 0xff, 0xc4, 0x00, 0x1a, 0x10, 0x01, 0x00, 0x02, 0x03, 0x01,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x11, 0x10, 0x20,
    0x21, 0x31, 0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x06, 0x3f, 0x02, 0xd7, 0x83, 0xa8, 0x3e,
    0xce, 0x44, 0x5a, 0xa2, 0xf3, 0xff, 0xc4, 0x00, 0x1d, 0x10, 0x00, 0x03, 0x00, 0x02, 0x02, 0x03,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x11, 0x31, 0x91, 0x21,
    0x51, 0x41, 0x61, 0xa1, 0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x01, 0x3f, 0x21, 0x55, 0x2d,
    0x1a, 0x88, 0x64, 0x55, 0x08, 0xa5, 0x95, 0xd5, 0x19, 0x15, 0x45, 0xed, 0x0f, 0x99, 0x10, 0x63,
    0xe1, 0x30, 0x5a, 0xbe, 0x6f, 0x45, 0x30, 0x7e, 0x05, 0x1e, 0x83, 0xb4, 0xff, 0xda, 0x00, 0x0c,
    0x03, 0x01, 0x00, 0x02, 0x00, 0x03, 0x00, 0x00, 0x00, 0x10, 0x95, 0x5f, 0x43, 0x8f, 0xdf, 0xff,
    0xc4, 0x00, 0x18, 0x11, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x11, 0x31, 0x21, 0xff, 0xda, 0x00, 0x08, 0x01, 0x03, 0x01,
    0x01, 0x3f, 0x10, 0x4f, 0x1e, 0xb0, 0xda, 0xda, 0xc4, 0x02, 0x7b, 0x65, 0xff, 0xc4, 0x00, 0x16,
    0x11, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x01, 0x00, 0x11, 0xff, 0xda, 0x00, 0x08, 0x01, 0x02, 0x01, 0x01, 0x3f, 0x10, 0xd8, 0x10,
    0x26, 0x3a, 0xc9, 0x9a, 0xb4, 0x5b, 0xbf, 0xff, 0xc4, 0x00, 0x1d, 0x10, 0x01, 0x00, 0x02, 0x02,
    0x02, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x11, 0x21,
    0x31, 0x61, 0x71, 0x41, 0x51, 0x81, 0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x01, 0x3f, 0x10,
    0x0a, 0x06, 0xa9, 0x86, 0xed, 0x50, 0x37, 0xcc, 0x24, 0x81, 0x13, 0x65, 0x42, 0x2b, 0x6f, 0xca,
    0x88, 0x74, 0x62, 0x18, 0xa8, 0x7b, 0xb2, 0x40, 0x83, 0x27, 0x04, 0x50, 0xe8, 0xf8, 0x65, 0xca,
    0xce, 0x98, 0x03, 0x48, 0x0f, 0x71, 0xbd, 0x41, 0x77, 0xbc, 0x24, 0x44, 0x84, 0xc8, 0xc4, 0x3b,
    0xf6, 0x6c, 0xab, 0x52, 0x63, 0x1d, 0xee, 0x31, 0xb6, 0x20, 0x87, 0x26, 0x7f, 0xff, 0xd9,
};

static const struct process_limits limits = {.max_pixels = PROCESS_DEFAULT_MAX_PIXELS,
                                             .max_dimension = PROCESS_DEFAULT_MAX_DIMENSION};

static struct loader *loader;
static struct chain *gray;

static int setup(void **unused)
{
    static const char *const paths[] = {"lib/pixflow/plugins/grayscale.so", "tests/plugins/broken"};
    char err[512];

    loader = testload_plugins(paths, sizeof(paths) / sizeof(paths[0]));
    if (loader == NULL)
        return -1;
    gray = loader_chain_new(loader, "grayscale", err, sizeof(err));
    return gray != NULL ? 0 : -1;
}

static int teardown(void **unused)
{
    chain_free(gray);
    loader_free(loader);
    return 0;
}

/* Expects a refusal with this status and reason; the output stays empty. */
static void refused(const struct chain *c, const struct process_limits *lim,
                    const unsigned char *data, size_t len, enum process_status want,
                    const char *reason, const char *in_err)
{
    struct process_out out;
    char why[64], err[512] = "";

    assert_int_equal(process_run(c, lim, data, len, &out, why, sizeof(why), err, sizeof(err)),
                     want);
    assert_string_equal(why, reason);
    if (in_err != NULL && strstr(err, in_err) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", err, in_err);
    assert_null(out.png);
    assert_null(out.b64);
}

static struct pixflow_image decode(const unsigned char *data, size_t len, int channels)
{
    struct image_info info;
    struct pixflow_image im;
    char err[256];

    assert_int_equal(image_probe(data, len, &info, err, sizeof(err)), IMAGE_OK);
    assert_int_equal(image_decode(data, len, &info, channels, &im, err, sizeof(err)), IMAGE_OK);
    return im;
}

/* The Y plane of a colour JPEG, as the decoder gives it to a chain that takes luma. */
static struct pixflow_image decode_luma(const unsigned char *data, size_t len)
{
    const struct image_request req = {1, 1, 0, 0};
    struct image_info info;
    struct pixflow_image im;
    char err[256];

    assert_int_equal(image_probe(data, len, &info, err, sizeof(err)), IMAGE_OK);
    assert_int_equal(image_decode_request(data, len, &info, &req, NULL, &im, err, sizeof(err)),
                     IMAGE_OK);
    return im;
}

static void test_jpeg_to_gray_png(void **unused)
{
    struct process_out out;
    struct pixflow_image rgb, png, luma;
    char why[64], err[512], sha[DIGEST_HEX_LEN + 1];
    unsigned char *raw;
    int n;

    assert_int_equal(
        process_run(gray, &limits, jpeg, sizeof(jpeg), &out, why, sizeof(why), err, sizeof(err)),
        PROCESS_OK);
    assert_int_equal(out.width, 37);
    assert_int_equal(out.height, 23);
    assert_int_equal(out.channels, 1);
    assert_string_equal(out.origin_format, "jpeg");
    assert_int_equal(out.origin_width, 37);
    assert_int_equal(out.origin_height, 23);
    assert_int_equal(digest_sha256_hex(jpeg, sizeof(jpeg), sha, err, sizeof(err)), 0);
    assert_string_equal(out.origin_sha256, sha);
    assert_int_equal(digest_sha256_hex(out.png, out.png_len, sha, err, sizeof(err)), 0);
    assert_string_equal(out.sha256, sha);

    /* the base64 is the PNG */
    assert_int_equal(out.b64_len, strlen(out.b64));
    raw = malloc(out.b64_len);
    n = EVP_DecodeBlock(raw, (const unsigned char *)out.b64, (int)out.b64_len);
    /* EVP_DecodeBlock counts the padding as zero bytes */
    assert_int_equal(n, out.png_len + (out.b64_len - strcspn(out.b64, "=")));
    assert_memory_equal(raw, out.png, out.png_len);
    free(raw);

    /* the PNG holds the JPEG's luma plane (the grayscale plugin takes it, PIXFLOW_ACCEPT_LUMA):
     * BT.601 luma of the decoded colours within rounding, but where the RGB clipped */
    rgb = decode(jpeg, sizeof(jpeg), 3);
    png = decode(out.png, out.png_len, 1);
    luma = decode_luma(jpeg, sizeof(jpeg));
    assert_memory_equal(png.pixels, luma.pixels, 37 * 23);
    for (int i = 0; i < 37 * 23; i++) {
        const unsigned char *p = rgb.pixels + 3 * i;
        int want = pixflow_luma(p[0], p[1], p[2]);
        int clipped = memchr(p, 0, 3) != NULL || memchr(p, 255, 3) != NULL;

        if (abs(png.pixels[i] - want) > (clipped ? 8 : 1))
            fail_msg("pixel %d: %d, BT.601 luma of the RGB is %d", i, png.pixels[i], want);
    }
    free(luma.pixels);
    assert_true(out.timing.decode_us >= 0 && out.timing.encode_us >= 0);
    free(rgb.pixels);
    free(png.pixels);
    process_out_free(&out);
    assert_null(out.png);
}

/* Several renditions from one decode: each output is what its chain alone makes, and every one
 * names the one download. */
static void test_chains_share_one_decode(void **unused)
{
    const struct chain *chains[3] = {gray, NULL, gray};
    struct process_out all[3], alone;
    char why[64], err[512];

    assert_int_equal(process_run_all(chains, 3, &limits, jpeg, sizeof(jpeg), all, why,
                                     sizeof(why), err, sizeof(err)),
                     PROCESS_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(process_run(chains[i], &limits, jpeg, sizeof(jpeg), &alone, why,
                                     sizeof(why), err, sizeof(err)),
                         PROCESS_OK);
        assert_string_equal(all[i].sha256, alone.sha256);
        assert_int_equal(all[i].png_len, alone.png_len);
        assert_int_equal(all[i].channels, i == 1 ? 3 : 1); /* no chain keeps the colour */
        assert_int_equal(all[i].channels, alone.channels);
        assert_string_equal(all[i].origin_sha256, alone.origin_sha256);
        assert_string_equal(all[i].origin_format, "jpeg");
        assert_int_equal(all[i].origin_width, 37);
        process_out_free(&alone);
        process_out_free(&all[i]);
    }
}

/* Without a chain the picture is stored as decoded, in colour. */
static void test_no_chain_keeps_colour(void **unused)
{
    struct process_out out;
    struct pixflow_image rgb, png;
    char why[64], err[512];

    assert_int_equal(
        process_run(NULL, &limits, jpeg, sizeof(jpeg), &out, why, sizeof(why), err, sizeof(err)),
        PROCESS_OK);
    assert_int_equal(out.channels, 3);
    rgb = decode(jpeg, sizeof(jpeg), 3);
    png = decode(out.png, out.png_len, 3);
    assert_memory_equal(png.pixels, rgb.pixels, 37 * 23 * 3);
    free(rgb.pixels);
    free(png.pixels);
    process_out_free(&out);
}

static size_t find_sof(const unsigned char *d, size_t n)
{
    for (size_t i = 2; i + 9 < n; i++)
        if (d[i] == 0xff && (d[i + 1] == 0xc0 || d[i + 1] == 0xc2))
            return i;
    fail_msg("no SOF");
    return 0;
}

static void test_bomb_refused_before_decoding(void **unused)
{
    unsigned char *bomb = malloc(sizeof(jpeg));
    size_t sof, before;

    memcpy(bomb, jpeg, sizeof(jpeg));
    sof = find_sof(bomb, sizeof(jpeg));
    bomb[sof + 5] = 60000 >> 8;
    bomb[sof + 6] = 60000 & 0xff;
    bomb[sof + 7] = 60000 >> 8;
    bomb[sof + 8] = 60000 & 0xff;
    before = image_decoder_bytes();
    refused(gray, &limits, bomb, sizeof(jpeg), PROCESS_PERMANENT, "too_many_pixels",
            "jpeg header declares 60000x60000");
    assert_true(image_decoder_bytes() - before < 64 * 1024); /* header parsing only */
    free(bomb);
}

static void test_limits(void **unused)
{
    struct process_limits side = {.max_dimension = 36}, area = {.max_pixels = 37 * 23 - 1};
    struct process_limits exact = {.max_pixels = 37 * 23, .max_dimension = 37};
    struct process_out out;
    char why[64], err[512];

    refused(gray, &side, jpeg, sizeof(jpeg), PROCESS_PERMANENT, "too_many_pixels",
            "over the 36 pixel side limit");
    refused(gray, &area, jpeg, sizeof(jpeg), PROCESS_PERMANENT, "too_many_pixels",
            "= 851 pixels, over the 850 limit");
    assert_int_equal(
        process_run(gray, &exact, jpeg, sizeof(jpeg), &out, why, sizeof(why), err, sizeof(err)),
        PROCESS_OK);
    process_out_free(&out);
}

static void test_refusals(void **unused)
{
    static const char html[] = "<html><body>503 Service Unavailable</body></html>";
    static const unsigned char gif[] = {
        'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0x80, 0, 0, 0, 0, 0, 255, 255, 255, '!', 0xf9, 4,
        1,   0,   0,   0,   0,   ',', 0, 0, 0, 0, 1,    0, 1, 0, 0, 2, 2,   'D', 1,   0,   ';'};
    unsigned char garbage[512];

    for (size_t i = 0; i < sizeof(garbage); i++)
        garbage[i] = (unsigned char)(i * 73 + 11);
    refused(gray, &limits, garbage, sizeof(garbage), PROCESS_PERMANENT, "not_image",
            "no picture signature");
    refused(gray, &limits, (const unsigned char *)html, sizeof(html) - 1, PROCESS_PERMANENT,
            "not_image", NULL);
    refused(gray, &limits, (const unsigned char *)"", 0, PROCESS_PERMANENT, "not_image", NULL);
    refused(gray, &limits, gif, sizeof(gif), PROCESS_PERMANENT, "unsupported_format",
            "gif pictures are not supported");
    refused(gray, &limits, jpeg, sizeof(jpeg) - 100, PROCESS_PERMANENT, "corrupt_image",
            "truncated");
    refused(gray, &limits, jpeg, 300, PROCESS_PERMANENT, "corrupt_image", NULL);
}

static void test_transform_failure(void **unused)
{
    char err[512];
    struct chain *c = loader_chain_new(loader, "grayscale,fail_alloc", err, sizeof(err));

    assert_non_null(c);
    refused(c, &limits, jpeg, sizeof(jpeg), PROCESS_PERMANENT, "transform_failed",
            "fail_alloc: gave up after allocating");
    chain_free(c);
}

struct runner {
    char sha[65];
    int failures;
};

static void *run_many(void *arg)
{
    struct runner *r = arg;

    for (int i = 0; i < 30; i++) {
        struct process_out out;
        char why[64], err[512];

        if (process_run(gray, &limits, jpeg, sizeof(jpeg), &out, why, sizeof(why), err,
                        sizeof(err)) != PROCESS_OK) {
            r->failures++;
            continue;
        }
        r->failures += strcmp(out.sha256, r->sha) != 0;
        process_out_free(&out);
    }
    return NULL;
}

/* Same bytes in, same PNG out, from any number of threads at once. */
static void test_concurrent_and_deterministic(void **unused)
{
    struct process_out out;
    struct runner r[4];
    pthread_t th[4];
    char why[64], err[512];

    assert_int_equal(
        process_run(gray, &limits, jpeg, sizeof(jpeg), &out, why, sizeof(why), err, sizeof(err)),
        PROCESS_OK);
    for (int i = 0; i < 4; i++) {
        memcpy(r[i].sha, out.sha256, sizeof(r[i].sha));
        r[i].failures = 0;
        assert_int_equal(pthread_create(&th[i], NULL, run_many, &r[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(r[i].failures, 0);
    }
    process_out_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jpeg_to_gray_png),
        cmocka_unit_test(test_no_chain_keeps_colour),
        cmocka_unit_test(test_chains_share_one_decode),
        cmocka_unit_test(test_bomb_refused_before_decoding),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_transform_failure),
        cmocka_unit_test(test_concurrent_and_deterministic),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
