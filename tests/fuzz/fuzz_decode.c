/* fuzz_decode.c -- libFuzzer target for the header check and the bounded decoders.
 *
 * Built twice: FUZZ_MAGIC is the signature put in front of every input (the JPEG or the PNG
 * one), so each target spends its time in one decoder instead of in the sniffer. Besides "no
 * crash, no sanitizer report", it checks what the worker relies on: a decoded picture has the
 * size its header declared (sides swapped for EXIF 5..8), and nothing decodes without a header
 * that passed the probe. Pictures over 4 MP are not decoded: the fuzzer's 2 GB memory limit
 * would report the allocation, which the worker's pixel cap prevents the same way. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

static const struct image_limits fuzz_limits = {IMAGE_DEFAULT_MAX_SCANS, 1000, 64 << 20};

static void check(int ok, const char *what, size_t size)
{
    if (ok)
        return;
    fprintf(stderr, "fuzz_decode: %s for a %zu-byte input\n", what, size);
    abort();
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
    }
    free(d);
    return 0;
}
