/* test_formats.c -- the output formats a chain's last element names (SPEC §6): each one decodes
 * back at the right size, png:level and jpeg:quality bounds, where a format may stand in a
 * chain, and the gray JPEG kept in the DCT domain, byte for byte what Debian's
 * `jpegtran -grayscale -optimize -progressive` (libjpeg-turbo-progs) writes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <webp/decode.h>

#include "chain.h"
#include "png.h"
#include "image.h"
#include "process.h"
#include "testload.h"

static int setup(void **unused)
{
    static const char *const paths[] = {"lib/pixflow/plugins"};

    testload_loader = testload_plugins(paths, sizeof(paths) / sizeof(paths[0]));
    return testload_loader != NULL ? 0 : -1;
}

static void refused(const char *spec, const char *in_err)
{
    char err[512] = "";
    struct chain *c = loader_chain_new(testload_loader, spec, err, sizeof(err));

    if (c != NULL)
        fail_msg("%s was accepted", spec);
    if (strstr(err, in_err) == NULL)
        fail_msg("%s: error \"%s\" lacks \"%s\"", spec, err, in_err);
}

static void run(const char *spec, const unsigned char *d, size_t n, struct process_out *out)
{
    struct chain *c = testload_chain(spec);
    char why[64], err[512];

    if (process_run(c, NULL, d, n, out, why, sizeof(why), err, sizeof(err)) != PROCESS_OK)
        fail_msg("%s: %s: %s", spec, why, err);
    chain_free(c);
}

/* Width, height and channels of stored bytes, decoded back by pixflow's own decoder (PNG and
 * JPEG) or libwebp (WebP). */
static void decoded_size(const struct process_out *out, int *w, int *h, int *ch)
{
    struct image_info info;
    struct pixflow_image im;
    char err[256];

    if (strcmp(out->format, "webp") == 0) {
        uint8_t *rgba = WebPDecodeRGBA(out->png, out->png_len, w, h);

        assert_non_null(rgba);
        *ch = 0; /* WebP does not say; the test compares pixels instead */
        WebPFree(rgba);
        return;
    }
    assert_int_equal(image_probe(out->png, out->png_len, &info, err, sizeof(err)), IMAGE_OK);
    assert_string_equal(info.name, out->format);
    assert_int_equal(image_decode(out->png, out->png_len, &info,
                                  info.channels == 2 ? 4 : info.channels, &im, err, sizeof(err)),
                     IMAGE_OK);
    *w = (int)im.width;
    *h = (int)im.height;
    *ch = (int)im.channels;
    free(im.pixels);
}

static void test_each_format_decodes_back(void **unused)
{
    static const struct {
        const char *spec, *format;
        int w, h, ch;
    } v[] = {
        {"grayscale", "png", 640, 480, 1},
        {"grayscale,png:level=12", "png", 640, 480, 1},
        {"thumbnail:size=200,png:level=1", "png", 200, 150, 3},
        {"grayscale,jpeg:quality=75", "jpeg", 640, 480, 1},
        {"resize:width=320,jpeg", "jpeg", 320, 240, 3},
        {"grayscale,jpeg", "jpeg", 640, 480, 1}, /* the DCT domain */
        {"grayscale,webp", "webp", 640, 480, 0},
        {"thumbnail:size=100,webp", "webp", 100, 75, 0},
        {"webp", "webp", 640, 480, 0},
    };
    unsigned char *jpg;
    size_t len;

    testload_photo(5, 640, 480, &jpg, &len);
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        struct process_out out;
        int w, h, ch;

        run(v[i].spec, jpg, len, &out);
        assert_string_equal(out.format, v[i].format);
        decoded_size(&out, &w, &h, &ch);
        if (w != v[i].w || h != v[i].h || (v[i].ch != 0 && ch != v[i].ch))
            fail_msg("%s: %dx%d, %d channels", v[i].spec, w, h, ch);
        assert_int_equal(out.width, v[i].w);
        assert_int_equal(out.height, v[i].h);
        process_out_free(&out);
    }
    free(jpg);
}

/* Lossless WebP holds exactly the pixels the PNG holds. */
static void test_webp_is_lossless(void **unused)
{
    struct process_out png, webp;
    struct image_info info;
    struct pixflow_image im;
    unsigned char *jpg, *rgba;
    size_t len;
    int w, h;
    char err[256];

    testload_photo(6, 300, 200, &jpg, &len);
    run("grayscale", jpg, len, &png);
    run("grayscale,webp", jpg, len, &webp);
    assert_int_equal(image_probe(png.png, png.png_len, &info, err, sizeof(err)), IMAGE_OK);
    assert_int_equal(image_decode(png.png, png.png_len, &info, 1, &im, err, sizeof(err)), IMAGE_OK);
    rgba = WebPDecodeRGBA(webp.png, webp.png_len, &w, &h);
    assert_non_null(rgba);
    for (size_t i = 0; i < (size_t)w * h; i++)
        if (rgba[4 * i] != im.pixels[i] || rgba[4 * i + 1] != im.pixels[i] ||
            rgba[4 * i + 2] != im.pixels[i] || rgba[4 * i + 3] != 255)
            fail_msg("pixel %zu differs", i);
    WebPFree(rgba);
    free(im.pixels);
    process_out_free(&png);
    process_out_free(&webp);
    free(jpg);
}

static void test_format_options_and_place(void **unused)
{
    struct chain *c;

    c = testload_chain("grayscale, png : level=12");
    assert_int_equal(chain_length(c), 1);
    assert_string_equal(chain_format(c)->name, "png");
    assert_int_equal(chain_format(c)->level, 12);
    chain_free(c);
    c = testload_chain("png:level=1");
    assert_int_equal(chain_length(c), 0);
    assert_int_equal(chain_format(c)->level, 1);
    chain_free(c);
    c = testload_chain("grayscale");
    assert_string_equal(chain_format(c)->name, "png");
    assert_int_equal(chain_format(c)->level, PNG_LEVEL_HUFFMAN);
    chain_free(c);
    c = testload_chain("grayscale,png:level=0");
    assert_int_equal(chain_format(c)->level, PNG_LEVEL_HUFFMAN);
    chain_free(c);
    c = testload_chain("jpeg:quality=100");
    assert_int_equal(chain_format(c)->quality, 100);
    chain_free(c);
    assert_string_equal(chain_format(NULL)->name, "png");

    refused("png:level=-1", "level=-1 is out of range");
    refused("png:level=13", "level=13 is out of range");
    refused("png:level=3x", "out of range");
    refused("png:level=", "out of range");
    refused("png:quality=80", "png takes level=0..12");
    refused("jpeg:quality=0", "out of range");
    refused("jpeg:quality=101", "out of range");
    refused("jpeg:level=3", "jpeg takes quality=1..100");
    refused("webp:level=3", "webp takes no key");
    refused("png,grayscale", "must be the chain's last element");
    refused("grayscale,jpeg,webp", "must be the chain's last element");
    refused("grayscale,png:level", "malformed options");
}

/* jpegtran's output for the file at path, read whole. */
static unsigned char *jpegtran(const char *path, size_t *len)
{
    char cmd[4200];
    unsigned char *buf = malloc(1 << 24);
    FILE *p;

    snprintf(cmd, sizeof(cmd), "jpegtran -grayscale -optimize -progressive %s", path);
    p = popen(cmd, "r");
    assert_non_null(p);
    *len = fread(buf, 1, 1 << 24, p);
    if (pclose(p) != 0)
        fail_msg("%s failed (Debian's libjpeg-turbo-progs installs jpegtran)", cmd);
    return buf;
}

/* A gray rendition stored as `jpeg` with no quality: the JPEG's own luma coefficients, as
 * jpegtran writes them; its pixels are the luma plane the decoder gives, exactly. */
static void test_dct_domain_gray_is_jpegtran(void **unused)
{
    static const int sizes[][2] = {{640, 480}, {333, 517}, {1280, 720}, {17, 9}};
    char path[] = "/tmp/pixflow-test-formats-XXXXXX";
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct process_out out;
        struct image_info info;
        struct pixflow_image y, back;
        const struct image_request luma = {1, 1, 0, 0};
        unsigned char *jpg, *want;
        size_t len, want_len;
        char err[256];

        testload_photo((int)i + 20, sizes[i][0], sizes[i][1], &jpg, &len);
        if (i == 1) { /* with a comment after SOI: jpegtran keeps comments, and so must we */
            static const unsigned char com[] = {0xff, 0xfe, 0x00, 0x07, 'h', 'e', 'l', 'l', 'o'};
            unsigned char *c = malloc(len + sizeof(com));

            memcpy(c, jpg, 2);
            memcpy(c + 2, com, sizeof(com));
            memcpy(c + 2 + sizeof(com), jpg + 2, len - 2);
            free(jpg);
            jpg = c;
            len += sizeof(com);
        }
        assert_int_equal(pwrite(fd, jpg, len, 0), (ssize_t)len);
        assert_int_equal(ftruncate(fd, (off_t)len), 0);
        want = jpegtran(path, &want_len);
        run("grayscale,jpeg", jpg, len, &out);
        assert_int_equal(out.png_len, want_len);
        assert_memory_equal(out.png, want, want_len);
        if (i == 1 && memmem(out.png, out.png_len, "hello", 5) == NULL)
            fail_msg("the comment was dropped");
        assert_int_equal(out.channels, 1);

        assert_int_equal(image_probe(jpg, len, &info, err, sizeof(err)), IMAGE_OK);
        assert_int_equal(image_decode_request(jpg, len, &info, &luma, NULL, &y, err, sizeof(err)),
                         IMAGE_OK);
        assert_int_equal(image_probe(out.png, out.png_len, &info, err, sizeof(err)), IMAGE_OK);
        assert_int_equal(info.channels, 1);
        assert_int_equal(image_decode(out.png, out.png_len, &info, 1, &back, err, sizeof(err)),
                         IMAGE_OK);
        assert_memory_equal(back.pixels, y.pixels, (size_t)y.width * y.height);
        free(back.pixels);
        free(y.pixels);
        free(want);
        process_out_free(&out);
        free(jpg);
    }
    close(fd);
    unlink(path);
}

/* A quality, a chain that is not gray alone, or a PNG source: pixels, encoded afresh. */
static void test_jpeg_from_pixels_otherwise(void **unused)
{
    struct process_out dct, q, png_src, png_jpeg, turned;
    unsigned char *jpg;
    size_t len;

    testload_photo(7, 400, 300, &jpg, &len);
    run("grayscale,jpeg", jpg, len, &dct);
    run("grayscale,jpeg:quality=90", jpg, len, &q);
    assert_true(dct.png_len != q.png_len || memcmp(dct.png, q.png, q.png_len) != 0);
    jpg = testload_orient(jpg, &len, 8); /* turned: the coefficients are not */
    run("grayscale,jpeg", jpg, len, &turned);
    assert_int_equal(turned.width, 300);
    assert_int_equal(turned.height, 400);
    assert_true(memmem(turned.png, turned.png_len, "\xff\xc0", 2) != NULL); /* baseline */
    process_out_free(&turned);
    run("", jpg, len, &png_src); /* a colour PNG of the picture */
    run("grayscale,jpeg", png_src.png, png_src.png_len, &png_jpeg);
    assert_string_equal(png_jpeg.format, "jpeg");
    assert_int_equal(png_jpeg.width, 300);
    process_out_free(&dct);
    process_out_free(&q);
    process_out_free(&png_src);
    process_out_free(&png_jpeg);
    free(jpg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_format_decodes_back),
        cmocka_unit_test(test_webp_is_lossless),
        cmocka_unit_test(test_format_options_and_place),
        cmocka_unit_test(test_dct_domain_gray_is_jpegtran),
        cmocka_unit_test(test_jpeg_from_pixels_otherwise),
    };

    return cmocka_run_group_tests(tests, setup, testload_teardown);
}
