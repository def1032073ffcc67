/* process.c -- one picture through the CPU stage, every failure given a stable reason code.
 * Order matters for safety and cost: the header is read and checked against the limits before
 * any pixel is decoded, and each stage frees its input as soon as the next one has its output,
 * so a picture never holds more than two copies of itself. */
#include "process.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "digest.h"
#include "image.h"
#include "png.h"

/* Microseconds since *t, and *t moved to now. */
static long process_lap(struct timespec *t)
{
    struct timespec now;
    long us;

    clock_gettime(CLOCK_MONOTONIC, &now);
    us = (long)(now.tv_sec - t->tv_sec) * 1000000 + (now.tv_nsec - t->tv_nsec) / 1000;
    *t = now;
    return us;
}

static enum process_status process_fail(char *reason, size_t rlen, const char *code)
{
    snprintf(reason, rlen, "%s", code);
    return strcmp(code, "out_of_memory") == 0 ? PROCESS_TRANSIENT : PROCESS_PERMANENT;
}

static const char *process_image_reason(enum image_status st)
{
    switch (st) {
    case IMAGE_NOT_IMAGE:
        return "not_image";
    case IMAGE_UNSUPPORTED:
        return "unsupported_format";
    case IMAGE_TOO_LARGE:
        return "too_many_pixels";
    case IMAGE_NOMEM:
        return "out_of_memory";
    default:
        return "corrupt_image";
    }
}

static int process_over_limits(const struct process_limits *lim, const struct image_info *info,
                               char *err, size_t errlen)
{
    long long pixels = (long long)info->width * info->height;

    if (lim == NULL)
        return 0;
    if (lim->max_dimension > 0 &&
        (info->width > lim->max_dimension || info->height > lim->max_dimension)) {
        snprintf(err, errlen, "%s header declares %dx%d, over the %ld pixel side limit", info->name,
                 info->width, info->height, lim->max_dimension);
        return 1;
    }
    if (lim->max_pixels > 0 && pixels > lim->max_pixels) {
        snprintf(err, errlen, "%s header declares %dx%d = %lld pixels, over the %ld limit",
                 info->name, info->width, info->height, pixels, lim->max_pixels);
        return 1;
    }
    return 0;
}

/* PNG, its SHA-256 and base64, into out. */
static enum process_status process_encode(const struct pixflow_image *img, struct process_out *out,
                                          struct timespec *lap, char *reason, size_t rlen,
                                          char *err, size_t errlen)
{
    enum png_status ps = png_encode(img, NULL, &out->png, &out->png_len, err, errlen);

    if (ps != PNG_OK)
        return process_fail(reason, rlen, ps == PNG_NOMEM ? "out_of_memory" : "encode_failed");
    out->width = (int)img->width;
    out->height = (int)img->height;
    out->channels = (int)img->channels;
    out->timing.encode_us = process_lap(lap);
    if (digest_sha256_hex(out->png, out->png_len, out->sha256, err, errlen) < 0 ||
        digest_base64(out->png, out->png_len, &out->b64, &out->b64_len, err, errlen) < 0)
        return process_fail(reason, rlen, "out_of_memory");
    out->timing.digest_us += process_lap(lap);
    return PROCESS_OK;
}

enum process_status process_run(const struct chain *chain, const struct process_limits *lim,
                                const unsigned char *data, size_t len, struct process_out *out,
                                char *reason, size_t rlen, char *err, size_t errlen)
{
    struct pixflow_image decoded, img;
    struct image_info info;
    enum image_status is;
    enum chain_status cs;
    enum process_status st;
    struct timespec lap;

    memset(out, 0, sizeof(*out));
    reason[0] = '\0';
    clock_gettime(CLOCK_MONOTONIC, &lap);
    if (digest_sha256_hex(data, len, out->origin_sha256, err, errlen) < 0)
        return process_fail(reason, rlen, "out_of_memory");
    out->timing.digest_us = process_lap(&lap);

    is = image_probe(data, len, &info, err, errlen);
    if (is != IMAGE_OK)
        return process_fail(reason, rlen, process_image_reason(is));
    snprintf(out->origin_format, sizeof(out->origin_format), "%s", info.name);
    out->origin_width = info.width;
    out->origin_height = info.height;
    if (process_over_limits(lim, &info, err, errlen))
        return process_fail(reason, rlen, "too_many_pixels");
    is = image_decode(data, len, &info, chain_input_channels(chain, info.channels), &decoded, err,
                      errlen);
    if (is != IMAGE_OK)
        return process_fail(reason, rlen, process_image_reason(is));
    out->timing.decode_us = process_lap(&lap);

    cs = chain_apply(chain, &decoded, &img, err, errlen);
    if (cs != CHAIN_OK)
        return process_fail(reason, rlen, cs == CHAIN_NOMEM ? "out_of_memory" : "transform_failed");
    out->timing.transform_us = process_lap(&lap);

    st = process_encode(&img, out, &lap, reason, rlen, err, errlen);
    free(img.pixels);
    if (st != PROCESS_OK)
        process_out_free(out);
    return st;
}

void process_out_free(struct process_out *out)
{
    free(out->png);
    free(out->b64);
    out->png = NULL;
    out->b64 = NULL;
    out->png_len = out->b64_len = 0;
}
