/* process.c -- one picture through the CPU stage, every failure given a stable reason code.
 * Order matters for safety and cost: the header is read and checked against the limits before
 * any pixel is decoded, and each stage frees its input as soon as the next one has its output,
 * so a picture never holds more than two copies of itself. */
#include "process.h"

#include <pthread.h>
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

/* Every failure of this stage is permanent (see process.h for out of memory). */
static enum process_status process_fail(char *reason, size_t rlen, const char *code)
{
    snprintf(reason, rlen, "%s", code);
    return PROCESS_PERMANENT;
}

/* The memory budget: bytes taken by pictures being processed, waited for, never overdrawn. */
static pthread_mutex_t process_budget_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t process_budget_freed = PTHREAD_COND_INITIALIZER;
static size_t process_budget_total, process_budget_used;

void process_budget_init(size_t bytes)
{
    pthread_mutex_lock(&process_budget_lock);
    process_budget_total = bytes;
    pthread_mutex_unlock(&process_budget_lock);
}

/* 0 with `need` taken (after waiting for it), -1 when it exceeds the whole budget. */
static int process_budget_take(size_t need)
{
    pthread_mutex_lock(&process_budget_lock);
    if (process_budget_total > 0 && need > process_budget_total) {
        pthread_mutex_unlock(&process_budget_lock);
        return -1;
    }
    while (process_budget_total > 0 && process_budget_used + need > process_budget_total)
        pthread_cond_wait(&process_budget_freed, &process_budget_lock);
    process_budget_used += need;
    pthread_mutex_unlock(&process_budget_lock);
    return 0;
}

static void process_budget_give(size_t need)
{
    pthread_mutex_lock(&process_budget_lock);
    process_budget_used -= need;
    pthread_cond_broadcast(&process_budget_freed);
    pthread_mutex_unlock(&process_budget_lock);
}

size_t process_cost(const struct image_info *info, int channels)
{
    size_t raw = (size_t)info->width * (size_t)info->height * (size_t)channels;
    size_t decoding = raw + info->work_bytes + (info->orientation > 1 ? raw : 0);

    /* the chain's output is taken to be no larger than its input: true of every shipped
     * transform but resize up, which the second reservation then counts at its true size */
    return decoding > 2 * raw ? decoding : 2 * raw;
}

/* The stored picture, its PNG (deflate never expands by more than a few bytes per 16 KB block)
 * and the base64 of that. */
static size_t process_store_cost(const struct pixflow_image *img)
{
    size_t raw = img->stride * img->height, png = raw + img->height + raw / 1024 + 1024;

    return raw + png + (png + 2) / 3 * 4 + 1;
}

static const char *process_image_reason(enum image_status st)
{
    switch (st) {
    case IMAGE_NOT_IMAGE:
        return "not_image";
    case IMAGE_UNSUPPORTED:
        return "unsupported_format";
    case IMAGE_TOO_LARGE:
    case IMAGE_TOO_MANY_PIXELS:
        return "too_many_pixels";
    case IMAGE_TOO_MANY_SCANS:
        return "too_many_scans";
    case IMAGE_BUDGET:
        return "decode_budget";
    case IMAGE_INFLATE_BOMB:
        return "inflate_bomb";
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

/* Chain i of n on the decoded picture: the last takes it, the others a copy (chain_apply
 * consumes its input, and an in-place link writes into it). */
static enum process_status process_one(const struct chain *chain, struct pixflow_image *decoded,
                                       int last, int exchange, struct process_out *out,
                                       size_t *held, struct timespec *lap, char *reason,
                                       size_t rlen, char *err, size_t errlen)
{
    struct pixflow_image src = *decoded, img;
    enum chain_status cs;
    enum process_status st;

    if (!last) {
        size_t n = decoded->stride * decoded->height;
        src.pixels = malloc(n ? n : 1);
        if (src.pixels == NULL)
            return process_fail(reason, rlen, "out_of_memory");
        memcpy(src.pixels, decoded->pixels, n);
    }
    cs = chain_apply(chain, &src, &img, err, errlen);
    if (cs != CHAIN_OK)
        return process_fail(reason, rlen, cs == CHAIN_NOMEM ? "out_of_memory" : "transform_failed");
    out->timing.transform_us = process_lap(lap);

    if (exchange) {
        process_budget_give(*held);
        *held = process_store_cost(&img);
        if (process_budget_take(*held) < 0) {
            *held = 0;
            free(img.pixels);
            snprintf(err, errlen, "the chain's %ux%u output is over the decode memory budget",
                     img.width, img.height);
            return process_fail(reason, rlen, "too_many_pixels");
        }
    }
    st = process_encode(&img, out, lap, reason, rlen, err, errlen);
    free(img.pixels);
    return st;
}

/* Decode once, then each chain and its encoding, with the picture's cost (*held) already taken
 * from the budget. One chain exchanges the decoding's cost for its output's (as the README's
 * "Memory" says); several keep the decoding's, copies included, until the end. */
static enum process_status
process_pixels(const struct chain *const *chains, int n, const struct process_limits *lim,
               const unsigned char *data, size_t len, const struct image_info *info, int channels,
               struct process_out *outs, size_t *held, struct timespec *lap, char *reason,
               size_t rlen, char *err, size_t errlen)
{
    struct pixflow_image decoded;
    enum image_status is;
    enum process_status st = PROCESS_OK;

    is = image_decode_limited(data, len, info, channels, lim != NULL ? &lim->image : NULL, &decoded,
                              err, errlen);
    if (is != IMAGE_OK)
        return process_fail(reason, rlen, process_image_reason(is));
    outs[0].timing.decode_us = process_lap(lap);
    int i;
    for (i = 0; i < n && st == PROCESS_OK; i++)
        st = process_one(chains[i], &decoded, i == n - 1, n == 1, &outs[i], held, lap, reason, rlen,
                         err, errlen);
    if (i < n)
        free(decoded.pixels); /* the last chain, which takes it, did not run */
    return st;
}

enum process_status process_run(const struct chain *chain, const struct process_limits *lim,
                                const unsigned char *data, size_t len, struct process_out *out,
                                char *reason, size_t rlen, char *err, size_t errlen)
{
    return process_run_all(&chain, 1, lim, data, len, out, reason, rlen, err, errlen);
}

enum process_status process_run_all(const struct chain *const *chains, int n,
                                    const struct process_limits *lim, const unsigned char *data,
                                    size_t len, struct process_out *outs, char *reason, size_t rlen,
                                    char *err, size_t errlen)
{
    struct image_info info;
    enum image_status is;
    enum process_status st;
    struct timespec lap;
    size_t cost;
    int channels = 1;
    struct process_out *out = &outs[0];

    memset(outs, 0, sizeof(*outs) * (size_t)n);
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
    out->orientation = info.orientation;
    if (process_over_limits(lim, &info, err, errlen))
        return process_fail(reason, rlen, "too_many_pixels");
    /* One decode for every chain: to the most channels any of them takes first. */
    for (int i = 0; i < n; i++) {
        int c = chain_input_channels(chains[i], info.channels);
        channels = c > channels ? c : channels;
    }
    cost = process_cost(&info, channels);
    cost += (size_t)(n - 1) * info.width * info.height * (size_t)channels; /* the copies */
    if (process_budget_take(cost) < 0) {
        snprintf(err, errlen, "%s %dx%d needs %zu MiB, over the %zu MiB decode memory budget",
                 info.name, info.width, info.height, cost >> 20, process_budget_total >> 20);
        return process_fail(reason, rlen, "too_many_pixels");
    }
    st = process_pixels(chains, n, lim, data, len, &info, channels, outs, &cost, &lap, reason, rlen,
                        err, errlen);
    process_budget_give(cost);
    for (int i = 0; i < n; i++) {
        if (st != PROCESS_OK) {
            process_out_free(&outs[i]);
            continue;
        }
        if (i > 0) { /* every output names the one download */
            memcpy(outs[i].origin_sha256, out->origin_sha256, sizeof(out->origin_sha256));
            memcpy(outs[i].origin_format, out->origin_format, sizeof(out->origin_format));
            outs[i].origin_width = out->origin_width;
            outs[i].origin_height = out->origin_height;
            outs[i].orientation = out->orientation;
        }
    }
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
