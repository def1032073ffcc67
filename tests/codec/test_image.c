/* test_image.c -- sniffing, header checks, truncation and CRC refusals, decoding to each channel
 * count, the pixel cap's premise (a header read allocates no pixels), concurrent decoding. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libdeflate.h>

#include "image.h"

#include "hostile.h"

/* 16x16 gray baseline JPEG (libjpeg, quality 80) whose row y is flat at 16 * y + 8. */
static const unsigned char gray_jpeg[176] = {
    0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01,
    0x00, 0x01, 0x00, 0x00, 0xff, 0xdb, 0x00, 0x43, 0x00, 0x06, 0x04, 0x05, 0x06, 0x05, 0x04, 0x06,
    0x06, 0x05, 0x06, 0x07, 0x07, 0x06, 0x08, 0x0a, 0x10, 0x0a, 0x0a, 0x09, 0x09, 0x0a, 0x14, 0x0e,
    0x0f, 0x0c, 0x10, 0x17, 0x14, 0x18, 0x18, 0x17, 0x14, 0x16, 0x16, 0x1a, 0x1d, 0x25, 0x1f, 0x1a,
    0x1b, 0x23, 0x1c, 0x16, 0x16, 0x20, 0x2c, 0x20, 0x23, 0x26, 0x27, 0x29, 0x2a, 0x29, 0x19, 0x1f,
    0x2d, 0x30, 0x2d, 0x28, 0x30, 0x25, 0x28, 0x29, 0x28, 0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x10,
    0x00, 0x10, 0x01, 0x01, 0x11, 0x00, 0xff, 0xc4, 0x00, 0x16, 0x00, 0x01, 0x01, 0x01, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x08, 0xff, 0xc4,
    0x00, 0x17, 0x10, 0x00, 0x03, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x16, 0x63, 0xa1, 0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f,
    0x00, 0x95, 0x22, 0xcb, 0x02, 0x2c, 0xb0, 0xd5, 0x48, 0xb2, 0xc0, 0x8b, 0x2c, 0x3f, 0xff, 0xd9,
};

static unsigned char *dup_bytes(const void *p, size_t n)
{
    unsigned char *d = malloc(n);

    assert_non_null(d);
    memcpy(d, p, n);
    return d;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* A PNG of any colour type from unfiltered rows (filter byte 0 added here). extra_bad_text
 * inserts an ancillary tEXt chunk with a wrong CRC. *len gets the size. */
static unsigned char *make_png(uint32_t w, uint32_t h, int color_type, int channels,
                               const unsigned char *rows, int extra_bad_text, size_t *len)
{
    size_t row = (size_t)w * channels, raw_len = (row + 1) * h, zlen;
    unsigned char *raw = malloc(raw_len), *z, *png, ihdr[13];
    struct libdeflate_compressor *c = libdeflate_alloc_compressor(6);

    assert_non_null(raw);
    assert_non_null(c);
    for (uint32_t y = 0; y < h; y++) {
        raw[y * (row + 1)] = 0;
        memcpy(raw + y * (row + 1) + 1, rows + y * row, row);
    }
    z = malloc(libdeflate_zlib_compress_bound(c, raw_len));
    zlen = libdeflate_zlib_compress(c, raw, raw_len, z, libdeflate_zlib_compress_bound(c, raw_len));
    assert_true(zlen > 0);
    png = malloc(8 + 25 + 30 + 12 + zlen + 12);
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    *len = 8;
    put32(ihdr, w);
    put32(ihdr + 4, h);
    ihdr[8] = 8;
    ihdr[9] = (unsigned char)color_type;
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    hostile_chunk(png, len, "IHDR", ihdr, 13, 0);
    if (extra_bad_text)
        hostile_chunk(png, len, "tEXt", "Comment\0hello", 13, 1);
    hostile_chunk(png, len, "IDAT", z, zlen, 0);
    hostile_chunk(png, len, "IEND", NULL, 0, 0);
    libdeflate_free_compressor(c);
    free(z);
    free(raw);
    return png;
}

static void test_probe_jpeg(void **unused)
{
    struct image_info info;
    char err[256];

    assert_int_equal(image_probe(gray_jpeg, sizeof(gray_jpeg), &info, err, sizeof(err)), IMAGE_OK);
    assert_int_equal(info.format, IMAGE_FORMAT_JPEG);
    assert_string_equal(info.name, "jpeg");
    assert_int_equal(info.width, 16);
    assert_int_equal(info.height, 16);
    assert_int_equal(info.channels, 1);
}

static void test_probe_other_formats(void **unused)
{
    static const struct {
        const char *bytes;
        size_t len;
        enum image_status want;
        const char *name;
    } v[] = {
        {"GIF89a\x01\x00\x01\x00\x80\x00\x00", 13, IMAGE_UNSUPPORTED, "gif"},
        {"GIF87a\x01\x00\x01\x00", 10, IMAGE_UNSUPPORTED, "gif"},
        {"RIFF\x24\x00\x00\x00WEBPVP8 ", 16, IMAGE_UNSUPPORTED, "webp"},
        {"BM\x3a\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00\x00\x00", 18,
         IMAGE_UNSUPPORTED, "bmp"},
        {"II*\x00\x08\x00\x00\x00", 8, IMAGE_UNSUPPORTED, "tiff"},
        {"\x00\x00\x00\x1c"
         "ftypavif\x00\x00\x00\x00",
         16, IMAGE_UNSUPPORTED, "avif"},
        {"<!DOCTYPE html><html>502 Bad Gateway</html>", 43, IMAGE_NOT_IMAGE, NULL},
        {"BMW is a car, not a bitmap", 26, IMAGE_NOT_IMAGE, NULL},
        {"", 0, IMAGE_NOT_IMAGE, NULL},
        {"\xff\xd8", 2, IMAGE_NOT_IMAGE, NULL},
        {"\xff\xd8\xff\xe0 this is not a JPEG after all", 36, IMAGE_CORRUPT, "jpeg"},
        {"\x89PNG\r\n\x1a\n\x00\x00", 10, IMAGE_CORRUPT, "png"},
    };
    struct image_info info;
    char err[256];

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        assert_int_equal(
            image_probe((const unsigned char *)v[i].bytes, v[i].len, &info, err, sizeof(err)),
            v[i].want);
        if (v[i].name != NULL)
            assert_string_equal(info.name, v[i].name);
        else
            assert_null(info.name);
        assert_true(err[0] != '\0');
    }
}

static void test_decode_gray_jpeg_every_channel_count(void **unused)
{
    struct image_info info;
    struct pixflow_image g, rgb, rgba, two;
    char err[256];
    size_t before;

    assert_int_equal(image_probe(gray_jpeg, sizeof(gray_jpeg), &info, err, sizeof(err)), IMAGE_OK);
    before = image_decoder_bytes();
    assert_int_equal(image_decode(gray_jpeg, sizeof(gray_jpeg), &info, 1, &g, err, sizeof(err)),
                     IMAGE_OK);
    /* the allocation counter does see decoding: the bomb test below relies on it */
    assert_true(image_decoder_bytes() - before >= 16 * 16);
    assert_int_equal(g.width, 16);
    assert_int_equal(g.height, 16);
    assert_int_equal(g.channels, 1);
    assert_int_equal(g.stride, 16);
    assert_true(g.flags & PIXFLOW_IMAGE_WRITABLE);
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++)
            assert_in_range(g.pixels[y * 16 + x], 16 * y + 8 - 2, 16 * y + 8 + 2);

    assert_int_equal(image_decode(gray_jpeg, sizeof(gray_jpeg), &info, 3, &rgb, err, sizeof(err)),
                     IMAGE_OK);
    assert_int_equal(image_decode(gray_jpeg, sizeof(gray_jpeg), &info, 4, &rgba, err, sizeof(err)),
                     IMAGE_OK);
    assert_int_equal(rgb.stride, 48);
    assert_int_equal(rgba.stride, 64);
    for (int i = 0; i < 256; i++) {
        for (int c = 0; c < 3; c++) {
            assert_int_equal(rgb.pixels[i * 3 + c], g.pixels[i]);
            assert_int_equal(rgba.pixels[i * 4 + c], g.pixels[i]);
        }
        assert_int_equal(rgba.pixels[i * 4 + 3], 255);
    }
    assert_int_equal(image_decode(gray_jpeg, sizeof(gray_jpeg), &info, 2, &two, err, sizeof(err)),
                     IMAGE_CORRUPT);
    assert_null(two.pixels);
    free(g.pixels);
    free(rgb.pixels);
    free(rgba.pixels);
}

/* A decoder alone would return these with a gray bottom half. */
static void test_truncated_jpeg_refused(void **unused)
{
    static const size_t cuts[] = {2, 20, sizeof(gray_jpeg) / 2};
    struct image_info info;
    struct pixflow_image im;
    char err[256];

    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        size_t n = sizeof(gray_jpeg) - cuts[i];
        unsigned char *d = dup_bytes(gray_jpeg, n);

        assert_int_equal(image_probe(gray_jpeg, sizeof(gray_jpeg), &info, err, sizeof(err)),
                         IMAGE_OK);
        assert_int_equal(image_decode(d, n, &info, 1, &im, err, sizeof(err)), IMAGE_CORRUPT);
        assert_non_null(strstr(err, "truncated"));
        assert_null(im.pixels);
        free(d);
    }
}

/* Bytes after EOI (some cameras append data) are not a reason to refuse the picture. */
static void test_jpeg_trailing_bytes_accepted(void **unused)
{
    size_t n = sizeof(gray_jpeg) + 5;
    unsigned char *d = malloc(n);
    struct image_info info;
    struct pixflow_image im;
    char err[256];

    assert_non_null(d);
    memcpy(d, gray_jpeg, sizeof(gray_jpeg));
    memcpy(d + sizeof(gray_jpeg), "\0junk", 5);
    assert_int_equal(image_probe(d, n, &info, err, sizeof(err)), IMAGE_OK);
    assert_int_equal(image_decode(d, n, &info, 1, &im, err, sizeof(err)), IMAGE_OK);
    free(im.pixels);
    free(d);
}

/* Offset of the SOF0 marker of a baseline JPEG. */
static size_t find_sof0(const unsigned char *d, size_t n)
{
    for (size_t i = 2; i + 9 < n; i++)
        if (d[i] == 0xff && d[i + 1] == 0xc0)
            return i;
    fail_msg("no SOF0");
    return 0;
}

/* A few hundred bytes declaring 60000 x 60000: the header is read, no pixel memory is. */
static void test_bomb_header_allocates_nothing(void **unused)
{
    unsigned char *d = dup_bytes(gray_jpeg, sizeof(gray_jpeg));
    size_t sof = find_sof0(d, sizeof(gray_jpeg)), before;
    struct image_info info;
    char err[256];

    d[sof + 5] = 60000 >> 8;
    d[sof + 6] = 60000 & 0xff;
    d[sof + 7] = 60000 >> 8;
    d[sof + 8] = 60000 & 0xff;
    before = image_decoder_bytes();
    assert_int_equal(image_probe(d, sizeof(gray_jpeg), &info, err, sizeof(err)), IMAGE_OK);
    assert_int_equal(info.width, 60000);
    assert_int_equal(info.height, 60000);
    /* no pixel buffer (libjpeg parses the header in its own small pools), not 3.6 GB */
    assert_true(image_decoder_bytes() - before < 64 * 1024);
    free(d);
}

static void test_png_gray_alpha(void **unused)
{
    unsigned char rows[5 * 3 * 2];
    size_t len;
    unsigned char *png;
    struct image_info info;
    struct pixflow_image g, rgba;
    char err[256];

    for (size_t i = 0; i < sizeof(rows); i++)
        rows[i] = (unsigned char)(i * 17);
    png = make_png(5, 3, 4, 2, rows, 0, &len);
    assert_int_equal(image_probe(png, len, &info, err, sizeof(err)), IMAGE_OK);
    assert_int_equal(info.channels, 2);
    assert_int_equal(image_decode(png, len, &info, 4, &rgba, err, sizeof(err)), IMAGE_OK);
    assert_int_equal(image_decode(png, len, &info, 1, &g, err, sizeof(err)), IMAGE_OK);
    for (int i = 0; i < 15; i++) {
        assert_int_equal(g.pixels[i], rows[2 * i]);
        assert_int_equal(rgba.pixels[4 * i], rows[2 * i]);
        assert_int_equal(rgba.pixels[4 * i + 1], rows[2 * i]);
        assert_int_equal(rgba.pixels[4 * i + 2], rows[2 * i]);
        assert_int_equal(rgba.pixels[4 * i + 3], rows[2 * i + 1]);
    }
    free(g.pixels);
    free(rgba.pixels);
    free(png);
}

static void test_png_truncated_or_damaged(void **unused)
{
    unsigned char rows[8 * 8 * 3];
    size_t len, idat;
    unsigned char *png;
    struct image_info info;
    struct pixflow_image im;
    char err[256];

    for (size_t i = 0; i < sizeof(rows); i++)
        rows[i] = (unsigned char)(i * 7);
    png = make_png(8, 8, 2, 3, rows, 0, &len);
    assert_int_equal(image_probe(png, len, &info, err, sizeof(err)), IMAGE_OK);
    assert_int_equal(image_decode(png, len, &info, 3, &im, err, sizeof(err)), IMAGE_OK);
    assert_memory_equal(im.pixels, rows, sizeof(rows));
    free(im.pixels);

    /* no IEND */
    assert_int_equal(image_decode(png, len - 12, &info, 3, &im, err, sizeof(err)), IMAGE_CORRUPT);
    assert_non_null(strstr(err, "truncated"));
    /* cut inside IDAT */
    assert_int_equal(image_decode(png, len - 20, &info, 3, &im, err, sizeof(err)), IMAGE_CORRUPT);
    /* one flipped bit inside IDAT: the CRC catches what the decoder would not */
    idat = 8 + 25 + 8;
    png[idat + 5] ^= 0x10;
    assert_int_equal(image_decode(png, len, &info, 3, &im, err, sizeof(err)), IMAGE_CORRUPT);
    assert_non_null(strstr(err, "bad CRC on chunk IDAT"));
    free(png);

    /* a bad CRC on an ancillary chunk does not spoil the pixels */
    png = make_png(8, 8, 2, 3, rows, 1, &len);
    assert_int_equal(image_probe(png, len, &info, err, sizeof(err)), IMAGE_OK);
    assert_int_equal(image_decode(png, len, &info, 3, &im, err, sizeof(err)), IMAGE_OK);
    assert_memory_equal(im.pixels, rows, sizeof(rows));
    free(im.pixels);
    free(png);
}

struct decoder_thread {
    const unsigned char *data;
    size_t len;
    const unsigned char *want; /* NULL: decoding must fail */
    size_t want_len;
    int errors;
};

static void *decode_many(void *arg)
{
    struct decoder_thread *t = arg;
    char err[256];

    for (int i = 0; i < 300; i++) {
        struct image_info info;
        struct pixflow_image im;
        enum image_status st = image_probe(t->data, t->len, &info, err, sizeof(err));

        if (st == IMAGE_OK)
            st = image_decode(t->data, t->len, &info, 1, &im, err, sizeof(err));
        if (t->want == NULL) {
            t->errors += st == IMAGE_OK;
            if (st == IMAGE_OK)
                free(im.pixels);
            continue;
        }
        if (st != IMAGE_OK) {
            t->errors++;
            continue;
        }
        t->errors +=
            im.stride * im.height != t->want_len || memcmp(im.pixels, t->want, t->want_len) != 0;
        free(im.pixels);
    }
    return NULL;
}

/* Threads decoding good pictures next to one decoding a broken one: same pixels as alone, and
 * the failures stay on their thread. */
static void test_concurrent_decoding(void **unused)
{
    unsigned char *broken = dup_bytes(gray_jpeg, sizeof(gray_jpeg));
    struct decoder_thread t[4];
    pthread_t th[4];
    struct image_info info;
    struct pixflow_image want;
    char err[256];

    /* damage the Huffman-coded data but keep the markers intact */
    for (size_t i = sizeof(gray_jpeg) - 40; i < sizeof(gray_jpeg) - 4; i++)
        if (broken[i] != 0xff && broken[i] != 0x00)
            broken[i] = 0xfe;
    assert_int_equal(image_probe(gray_jpeg, sizeof(gray_jpeg), &info, err, sizeof(err)), IMAGE_OK);
    assert_int_equal(image_decode(gray_jpeg, sizeof(gray_jpeg), &info, 1, &want, err, sizeof(err)),
                     IMAGE_OK);
    for (int i = 0; i < 4; i++) {
        t[i].data = i == 3 ? broken : gray_jpeg;
        t[i].len = sizeof(gray_jpeg);
        t[i].want = i == 3 ? NULL : want.pixels;
        t[i].want_len = 256;
        t[i].errors = 0;
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, decode_many, &t[i]), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++)
        assert_int_equal(t[i].errors, 0);
    free(want.pixels);
    free(broken);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_jpeg),
        cmocka_unit_test(test_probe_other_formats),
        cmocka_unit_test(test_decode_gray_jpeg_every_channel_count),
        cmocka_unit_test(test_truncated_jpeg_refused),
        cmocka_unit_test(test_jpeg_trailing_bytes_accepted),
        cmocka_unit_test(test_bomb_header_allocates_nothing),
        cmocka_unit_test(test_png_gray_alpha),
        cmocka_unit_test(test_png_truncated_or_damaged),
        cmocka_unit_test(test_concurrent_decoding),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
