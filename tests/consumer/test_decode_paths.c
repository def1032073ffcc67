/* test_decode_paths.c -- what the CPU stage decodes for a chain, on picsum-like photographs
 * (the image server's generator): the luma plane of a colour JPEG for a chain that begins with
 * gray, a JPEG shrunk by DCT scaling for a chain that begins by shrinking, and the stored
 * pictures these give against the whole, full-colour decode. Tolerances are stated here and in
 * the README ("Decoding only what the chain uses"). The stage also tells, for each stored
 * picture, which decoder and path made its pixels and the encoder's settings (the lineage). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "hostile.h"
#include "image.h"
#include "jpeg.h"
#include "process.h"
#include "testload.h"

static int setup(void **unused)
{
    static const char *const paths[] = {"lib/pixflow/plugins", "tests/plugins/broken"};

    testload_loader = testload_plugins(paths, sizeof(paths) / sizeof(paths[0]));
    return testload_loader != NULL ? 0 : -1;
}

static struct pixflow_image decode(const unsigned char *d, size_t n, struct image_request req)
{
    struct image_info info;
    struct pixflow_image im;
    char err[256];

    assert_int_equal(image_probe(d, n, &info, err, sizeof(err)), IMAGE_OK);
    if (image_decode_request(d, n, &info, &req, NULL, &im, err, sizeof(err)) != IMAGE_OK)
        fail_msg("decode: %s", err);
    return im;
}

/* The stored picture of process_run(), decoded back from its PNG. */
static struct pixflow_image stored(const struct chain *c, const unsigned char *d, size_t n)
{
    struct process_out out;
    struct pixflow_image im;
    char why[64], err[512];

    if (process_run(c, NULL, d, n, &out, why, sizeof(why), err, sizeof(err)) != PROCESS_OK)
        fail_msg("%s: %s", why, err);
    im = decode(out.png, out.png_len, (struct image_request){out.channels, 0, 0, 0});
    process_out_free(&out);
    return im;
}

struct diff {
    double sum, n;
    long over2;
    int max;
};

static void diff_add(struct diff *d, const struct pixflow_image *a, const struct pixflow_image *b)
{
    assert_int_equal(a->width, b->width);
    assert_int_equal(a->height, b->height);
    assert_int_equal(a->channels, b->channels);
    for (size_t i = 0; i < (size_t)a->width * a->height * a->channels; i++) {
        int v = abs(a->pixels[i] - b->pixels[i]);

        d->sum += v;
        d->n++;
        d->over2 += v > 2;
        d->max = v > d->max ? v : d->max;
    }
}

static const int sizes[][2] = {{640, 480}, {480, 640}, {1024, 768}, {1280, 720}, {1601, 1067}};
#define NSIZES ((int)(sizeof(sizes) / sizeof(sizes[0])))

/* grayscale stores the JPEG's Y plane: on average within half a level of pixflow_luma() of the
 * full-colour decode, 99.9% of pixels within 2 levels (more only where RGB clips). */
static void test_luma_plane_against_full_decode(void **unused)
{
    struct chain *gray = testload_chain("grayscale");
    struct diff d = {0};

    for (int i = 0; i < NSIZES; i++) {
        unsigned char *jpg;
        size_t len;
        struct pixflow_image full, y, got;

        testload_photo(i + 1, sizes[i][0], sizes[i][1], &jpg, &len);
        full = decode(jpg, len, (struct image_request){1, 0, 0, 0}); /* RGB, pixflow_luma() */
        y = decode(jpg, len, (struct image_request){1, 1, 0, 0});
        got = stored(gray, jpg, len);
        assert_memory_equal(got.pixels, y.pixels, (size_t)y.width * y.height);
        diff_add(&d, &got, &full);
        free(full.pixels);
        free(y.pixels);
        free(got.pixels);
        free(jpg);
    }
    print_message("luma plane vs pixflow_luma(RGB): mean %.5f, %.4f%% over 2, max %d\n",
                  d.sum / d.n, 100.0 * d.over2 / d.n, d.max);
    assert_true(d.sum / d.n <= 0.5);
    assert_true(d.over2 <= d.n / 1000);
    chain_free(gray);
}

/* The largest of 8, 4, 2 that keeps a picture at least mw x mh, else 1: the rule of the issue,
 * spelled independently of the decoder's. */
static unsigned scale_of(const struct image_info *info, uint32_t mw, uint32_t mh)
{
    for (unsigned d = 8; d >= 2; d /= 2)
        if ((info->width + d - 1) / d >= mw && (info->height + d - 1) / d >= mh)
            return d;
    return 1;
}

/* A chain that begins by shrinking decodes a JPEG at 1/2, 1/4 or 1/8: same output size as from
 * the whole picture, pixels on average within 2 levels of it. */
static void test_shrunk_decode_against_whole(void **unused)
{
    static const char *const specs[] = {"grayscale,thumbnail:size=256", "thumbnail:size=100",
                                        "resize:width=300", "resize:width=200;height=200;fit=cover",
                                        "grayscale,resize:height=150"};

    for (size_t s = 0; s < sizeof(specs) / sizeof(specs[0]); s++) {
        struct chain *c = testload_chain(specs[s]);
        struct diff d = {0};
        int shrunk = 0;

        for (int i = 0; i < NSIZES; i++) {
            unsigned char *jpg;
            size_t len;
            struct pixflow_image whole, got, dec;
            struct image_info info;
            char err[256];
            uint32_t mw, mh;

            testload_photo(i + 11, sizes[i][0], sizes[i][1], &jpg, &len);
            assert_int_equal(image_probe(jpg, len, &info, err, sizeof(err)), IMAGE_OK);
            chain_shrink_limit(c, (uint32_t)info.width, (uint32_t)info.height, chain_takes_luma(c),
                               &mw, &mh);
            assert_true(mw > 0 && mh > 0); /* every one of these chains shrinks */
            dec = decode(
                jpg, len,
                (struct image_request){chain_takes_luma(c) ? 1 : 3, chain_takes_luma(c), mw, mh});
            assert_int_equal(dec.width,
                             (info.width + scale_of(&info, mw, mh) - 1) / scale_of(&info, mw, mh));
            assert_true(scale_of(&info, mw, mh) == 1 || (dec.width >= mw && dec.height >= mh));
            assert_int_equal(dec.source_width, dec.width < (uint32_t)info.width ? info.width : 0);
            shrunk += dec.width < (uint32_t)info.width;
            free(dec.pixels);

            got = stored(c, jpg, len);
            /* the whole picture through the same chain: the decoder asked for nothing less */
            dec = decode(
                jpg, len,
                (struct image_request){chain_takes_luma(c) ? 1 : 3, chain_takes_luma(c), 0, 0});
            if (chain_apply(c, &dec, &whole, err, sizeof(err)) != CHAIN_OK)
                fail_msg("%s: %s", specs[s], err);
            diff_add(&d, &got, &whole);
            free(whole.pixels);
            free(got.pixels);
            free(jpg);
        }
        print_message("%s: %d of %d shrunk; against the whole decode: mean %.3f, max %d\n",
                      specs[s], shrunk, NSIZES, d.sum / d.n, d.max);
        assert_true(shrunk > 0);
        assert_true(d.sum / d.n <= 2.0);
        chain_free(c);
    }
}

/* A picture turned by its EXIF orientation is shrunk on its stored sides and stored upright at
 * the size the upright whole picture gives. */
static void test_shrunk_and_turned(void **unused)
{
    struct chain *c = testload_chain("grayscale,thumbnail:size=100");
    struct image_info info;
    struct pixflow_image got, whole, dec;
    struct diff d = {0};
    unsigned char *jpg;
    size_t len;
    char err[256];

    testload_photo(8, 1024, 768, &jpg, &len);
    jpg = testload_orient(jpg, &len, 6);
    assert_int_equal(image_probe(jpg, len, &info, err, sizeof(err)), IMAGE_OK);
    assert_int_equal(info.orientation, 6);
    got = stored(c, jpg, len);
    assert_int_equal(got.width, 75); /* upright: 768 x 1024 */
    assert_int_equal(got.height, 100);
    dec = decode(jpg, len, (struct image_request){1, 1, 0, 0});
    assert_int_equal(dec.width, 768);
    assert_int_equal(chain_apply(c, &dec, &whole, err, sizeof(err)), CHAIN_OK);
    diff_add(&d, &got, &whole);
    assert_true(d.sum / d.n <= 2.0);
    dec = decode(jpg, len, (struct image_request){1, 1, 150, 200});
    assert_int_equal(dec.width, 192); /* 1/4 of the stored 1024 x 768, turned */
    assert_int_equal(dec.height, 256);
    assert_int_equal(dec.source_width, 768);
    assert_int_equal(dec.source_height, 1024);
    free(dec.pixels);
    free(got.pixels);
    free(whole.pixels);
    free(jpg);
    chain_free(c);
}

/* A plugin built for ABI 1.0 knows nothing of shrunk pictures: first in a chain, it gets the
 * whole picture, and a shrinking link after it gets what it makes. */
static void test_old_plugin_gets_the_whole_picture(void **unused)
{
    struct chain *c = testload_chain("old10:w=1024;h=768,thumbnail:size=128");
    unsigned char *jpg;
    size_t len;
    struct pixflow_image got;

    testload_photo(3, 1024, 768, &jpg, &len);
    got = stored(c, jpg, len);
    assert_int_equal(got.width, 128);
    assert_int_equal(got.height, 96);
    free(got.pixels);
    free(jpg);
    chain_free(c);
}

/* A PNG source is never decoded to the decoder's gray nor shrunk: the same as before. */
static void test_png_source_decoded_whole(void **unused)
{
    struct chain *c = testload_chain("grayscale,thumbnail:size=64");
    struct pixflow_image dec;
    unsigned char *jpg;
    size_t len;
    char err[256];
    struct image_info info;
    struct process_out out, png_out;
    char why[64];

    testload_photo(4, 640, 480, &jpg, &len);
    /* a colour PNG of the same picture */
    assert_int_equal(process_run(NULL, NULL, jpg, len, &out, why, sizeof(why), err, sizeof(err)),
                     PROCESS_OK);
    assert_int_equal(
        process_run(c, NULL, out.png, out.png_len, &png_out, why, sizeof(why), err, sizeof(err)),
        PROCESS_OK);
    assert_int_equal(image_probe(png_out.png, png_out.png_len, &info, err, sizeof(err)), IMAGE_OK);
    assert_int_equal(info.width, 64);
    assert_int_equal(info.height, 48);
    dec = decode(out.png, out.png_len, (struct image_request){1, 1, 32, 32});
    assert_int_equal(dec.width, 640); /* PNG: no DCT scaling, whatever is asked */
    assert_int_equal(dec.source_width, 0);
    free(dec.pixels);
    process_out_free(&png_out);
    process_out_free(&out);
    free(jpg);
    chain_free(c);
}

/* A CMYK JPEG has no luma plane to give: asked for one, the decoder converts to RGB and takes
 * pixflow_luma(), as for a chain that does not begin with gray; DCT scaling still applies. */
static void test_cmyk_source_never_gets_the_luma_plane(void **unused)
{
    struct chain *c = testload_chain("grayscale,thumbnail:size=64");
    struct pixflow_image luma, rgb, got;
    size_t len;
    unsigned char *jpg = hostile_jpeg(640, 480, 4, -1, 1, &len);

    assert_non_null(jpg);
    luma = decode(jpg, len, (struct image_request){1, 1, 0, 0});
    rgb = decode(jpg, len, (struct image_request){1, 0, 0, 0});
    assert_int_equal(luma.width, 640);
    assert_memory_equal(luma.pixels, rgb.pixels, (size_t)640 * 480);
    free(luma.pixels);
    free(rgb.pixels);
    luma = decode(jpg, len, (struct image_request){1, 1, 128, 96});
    rgb = decode(jpg, len, (struct image_request){1, 0, 128, 96});
    assert_int_equal(luma.width, 160); /* 1/4: the resampler keeps a factor of two */
    assert_int_equal(luma.source_width, 640);
    assert_memory_equal(luma.pixels, rgb.pixels, (size_t)160 * 120);
    got = stored(c, jpg, len);
    assert_int_equal(got.width, 64);
    assert_int_equal(got.height, 48);
    free(got.pixels);
    free(luma.pixels);
    free(rgb.pixels);
    free(jpg);
    chain_free(c);
}

/* What the stage tells the store about each stored picture: the decoder, its path and scale,
 * and the encoder's settings, for every way a picture can be made. */
struct told {
    const char *spec;   /* the chain */
    int source;         /* 0 colour JPEG, 1 gray JPEG, 2 CMYK JPEG, 3 colour PNG */
    const char *library, *path;
    int scale;
    const char *encoder;
};

static void assert_told(const struct told *t, const struct process_out *o)
{
    if (strcmp(o->decoder.library, t->library) != 0 || strcmp(o->decoder.path, t->path) != 0 ||
        o->decoder.scale != t->scale || strcmp(o->encoder, t->encoder) != 0)
        fail_msg("%s on source %d: told %s %s 1/%d %s, not %s %s 1/%d %s", t->spec, t->source,
                 o->decoder.library, o->decoder.path, o->decoder.scale, o->encoder, t->library,
                 t->path, t->scale, t->encoder);
    assert_true(strcmp(o->decoder.library, "stb_image") == 0 ||
                strcmp(o->decoder.version, JPEG_LIBRARY_VERSION) == 0);
    assert_true(o->decoder.version[0] != '\0' &&
                strspn(o->decoder.version, "0123456789.") == strlen(o->decoder.version));
}

static void test_stage_tells_its_decoder_and_encoder(void **unused)
{
    static const struct told cases[] = {
        {"grayscale", 0, "libjpeg-turbo", "luma", 1, "png:level=0"},
        {"grayscale,thumbnail:size=256", 0, "libjpeg-turbo", "luma", 2, "png:level=0"},
        {"grayscale,thumbnail:size=64", 0, "libjpeg-turbo", "luma", 8, "png:level=1"},
        {"thumbnail:size=100", 0, "libjpeg-turbo", "rgb", 4, "png:level=0"},
        {"invert", 0, "libjpeg-turbo", "rgb", 1, "png:level=0"},
        {"grayscale,jpeg", 0, "libjpeg-turbo", "coefficients", 1, "jpeg:coefficients"},
        {"grayscale,jpeg:quality=75", 0, "libjpeg-turbo", "luma", 1, "jpeg:quality=75"},
        {"thumbnail:size=200,jpeg", 0, "libjpeg-turbo", "rgb", 2, "jpeg:quality=90"},
        {"grayscale,webp", 0, "libjpeg-turbo", "luma", 1, "webp:lossless"},
        {"grayscale", 1, "libjpeg-turbo", "luma", 1, "png:level=0"},
        {"grayscale,thumbnail:size=64", 1, "libjpeg-turbo", "luma", 4, "png:level=0"},
        {"grayscale", 2, "libjpeg-turbo", "rgb", 1, "png:level=0"},
        {"grayscale,thumbnail:size=64", 2, "libjpeg-turbo", "rgb", 4, "png:level=0"},
        {"grayscale", 3, "stb_image", "pixels", 1, "png:level=12"},
        {"grayscale,thumbnail:size=64", 3, "stb_image", "pixels", 1, "png:level=0"},
    };
    unsigned char *src[4];
    size_t len[4];
    struct process_out colour_png, out;
    char why[64], err[512];

    testload_photo(5, 1024, 768, &src[0], &len[0]);
    src[1] = hostile_jpeg(640, 480, 1, -1, 1, &len[1]);
    src[2] = hostile_jpeg(640, 480, 4, -1, 1, &len[2]);
    assert_non_null(src[1]);
    assert_non_null(src[2]);
    assert_int_equal(process_run(NULL, NULL, src[0], len[0], &colour_png, why, sizeof(why), err,
                                 sizeof(err)),
                     PROCESS_OK);
    src[3] = colour_png.png;
    len[3] = colour_png.png_len;
    /* no chain: the whole colour picture, the default encoder */
    assert_told(&(struct told){"(none)", 0, "libjpeg-turbo", "rgb", 1, "png:level=0"},
                &colour_png);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct told *t = &cases[i];
        char spec[128];

        /* a level other than the default is named, and told as named */
        snprintf(spec, sizeof(spec), "%s%s", t->spec,
                 strcmp(t->encoder, "png:level=1") == 0    ? ",png:level=1"
                 : strcmp(t->encoder, "png:level=12") == 0 ? ",png:level=12"
                                                           : "");
        struct chain *c = testload_chain(spec);
        if (process_run(c, NULL, src[t->source], len[t->source], &out, why, sizeof(why), err,
                        sizeof(err)) != PROCESS_OK)
            fail_msg("%s: %s: %s", spec, why, err);
        assert_told(t, &out);
        process_out_free(&out);
        chain_free(c);
    }

    /* renditions of one download: each output tells its own decode, shared or not */
    struct chain *chains[3] = {testload_chain("grayscale"), testload_chain("invert,webp"),
                               testload_chain("grayscale,thumbnail:size=256")};
    struct process_out outs[3];
    assert_int_equal(process_run_all((const struct chain *const *)chains, 3, NULL, src[0], len[0],
                                     outs, why, sizeof(why), err, sizeof(err)),
                     PROCESS_OK);
    assert_told(&cases[0], &outs[0]);
    assert_told(&(struct told){"invert,webp", 0, "libjpeg-turbo", "rgb", 1, "webp:lossless"},
                &outs[1]);
    assert_told(&cases[1], &outs[2]);
    for (int i = 0; i < 3; i++) {
        process_out_free(&outs[i]);
        chain_free(chains[i]);
    }
    process_out_free(&colour_png);
    free(src[0]);
    free(src[1]);
    free(src[2]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_luma_plane_against_full_decode),
        cmocka_unit_test(test_shrunk_decode_against_whole),
        cmocka_unit_test(test_shrunk_and_turned),
        cmocka_unit_test(test_old_plugin_gets_the_whole_picture),
        cmocka_unit_test(test_png_source_decoded_whole),
        cmocka_unit_test(test_cmyk_source_never_gets_the_luma_plane),
        cmocka_unit_test(test_stage_tells_its_decoder_and_encoder),
    };

    return cmocka_run_group_tests(tests, setup, testload_teardown);
}
