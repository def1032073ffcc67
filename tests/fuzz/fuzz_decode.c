/* fuzz_decode.c -- libFuzzer target for the header check and the bounded decoders.
 *
 * Built twice: FUZZ_MAGIC is the signature put in front of every input (the JPEG or the PNG
 * one), so each target spends its time in one decoder instead of in the sniffer. Besides "no
 * crash, no sanitizer report", it checks what the worker relies on: a decoded picture has the
 * size its header declared (sides swapped for EXIF 5..8), and nothing decodes without a header
 * that passed the probe. The paths a chain may ask for are taken too: a colour JPEG's luma plane,
 * a picture shrunk by DCT scaling (at least the size asked, never more than the whole one, its
 * source size set), and the gray JPEG made from the luma coefficients, whose output must decode
 * to the source's size. Pictures over 4 MP are not decoded: the fuzzer's 2 GB memory limit
 * would report the allocation, which the worker's pixel cap prevents the same way. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "jpegw.h"

static const struct image_limits fuzz_limits = {IMAGE_DEFAULT_MAX_SCANS, 1000, 64 << 20};

static void check(int ok, const char *what, size_t size)
{
    if (ok)
        return;
    fprintf(stderr, "fuzz_decode: %s for a %zu-byte input\n", what, size);
    abort();
}

/* The luma plane and DCT-shrunk decodes a chain may ask for, then the DCT-domain gray JPEG. */
static void fuzz_requests(const unsigned char *d, size_t n, const struct image_info *info,
                          size_t size)
{
    uint32_t uw = (uint32_t)(info->orientation >= 5 ? info->height : info->width);
    uint32_t uh = (uint32_t)(info->orientation >= 5 ? info->width : info->height);
    const struct image_request reqs[] = {
        {1, 1, 0, 0}, {1, 1, uw / 3, uh / 3}, {3, 0, uw / 5, uh / 9}, {1, 0, 1, 1}};
    struct pixflow_image im;
    enum image_status st;
    unsigned char *out = NULL;
    size_t outlen = 0;
    char err[256];

    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        st = image_decode_request(d, n, info, &reqs[i], &fuzz_limits, &im, err, sizeof(err));
        check(st == IMAGE_OK || (im.pixels == NULL && err[0] != '\0'),
              "a failed request left pixels or no reason", size);
        if (st != IMAGE_OK)
            return;
        check(im.channels == (uint32_t)reqs[i].channels && im.width >= 1 && im.height >= 1 &&
                  im.width <= uw && im.height <= uh,
              "a request's picture is larger than the whole one", size);
        check(im.source_width == 0 ||
                  (im.source_width == uw && im.source_height == uh &&
                   im.width >= reqs[i].min_width && im.height >= reqs[i].min_height),
              "a shrunk picture is under the size asked or names another source", size);
        free(im.pixels);
    }
    if (info->format != IMAGE_FORMAT_JPEG || !jpegw_gray_possible(d, n))
        return;
    st = jpegw_gray_coefficients(d, n, &fuzz_limits, &out, &outlen, err, sizeof(err));
    check(st == IMAGE_OK || (out == NULL && err[0] != '\0'),
          "a failed gray JPEG left bytes or no reason", size);
    if (st == IMAGE_OK) {
        struct image_info gray;

        check(image_probe(out, outlen, &gray, err, sizeof(err)) == IMAGE_OK &&
                  gray.width == info->width && gray.height == info->height && gray.channels == 1,
              "the gray JPEG is not a gray picture of the source's size", size);
        free(out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned char magic[] = FUZZ_MAGIC;
    size_t n = sizeof(magic) - 1 + size;
    unsigned char *d = malloc(n);
    struct image_info info;
    struct pixflow_image im;
    enum image_status st;
    char err[256];

    if (d == NULL)
        return 0;
    memcpy(d, magic, sizeof(magic) - 1);
    if (size > 0)
        memcpy(d + sizeof(magic) - 1, data, size);
    st = image_probe(d, n, &info, err, sizeof(err));
    check(st == IMAGE_OK || err[0] != '\0', "a refusal without a reason", size);
    if (st == IMAGE_OK && (long long)info.width * info.height <= 4000000) {
        int swapped = info.orientation >= 5;

        check(info.orientation >= 1 && info.orientation <= 8, "orientation out of 1..8", size);
        for (int ch = 1; ch <= 4; ch += ch == 1 ? 2 : 1) {
            st = image_decode_limited(d, n, &info, ch, &fuzz_limits, &im, err, sizeof(err));
            check(st == IMAGE_OK || (im.pixels == NULL && err[0] != '\0'),
                  "a failed decode left pixels or no reason", size);
            if (st != IMAGE_OK)
                break;
            check(im.width == (uint32_t)(swapped ? info.height : info.width) &&
                      im.height == (uint32_t)(swapped ? info.width : info.height) &&
                      im.channels == (uint32_t)ch && im.stride == im.width * (size_t)ch,
                  "decoded size differs from the header", size);
            free(im.pixels);
        }
        fuzz_requests(d, n, &info, size);
    }
    free(d);
    return 0;
}
