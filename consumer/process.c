/* process.c -- one picture through the CPU stage, every failure given a stable reason code.
 * Order matters for safety and cost: the header is read and checked against the limits before
 * any pixel is decoded, and each stage frees its input as soon as the next one has its output,
 * so a picture never holds more than two copies of itself. */
#include "process.h"
#include "store.h"

#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "digest.h"
#include "image.h"
#include "jpegw.h"
#include "png.h"
#include "webpw.h"

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

/* Pictures come and go in buffers of megabytes. glibc's defaults give such a buffer back to the
 * kernel when freed (mmap, or trimming the heap's top past twice the last one's size), and the
 * next picture faults every page in again, zeroed: a seventh of the CPU stage's time on
 * photographs (perf: page faults, clearing, unmapping). So buffers up to PROCESS_HEAP_KEEP come
 * from the heap, and each thread's heap keeps up to that much free for the next picture (the
 * README's memory formula counts it); larger pictures are mapped and unmapped as before. */
#define PROCESS_HEAP_KEEP (32L << 20)

void process_budget_init(size_t bytes)
{
    pthread_mutex_lock(&process_budget_lock);
    process_budget_total = bytes;
    pthread_mutex_unlock(&process_budget_lock);
#ifdef M_TRIM_THRESHOLD
    if (bytes > 0) {
        int keep = (int)(bytes < (size_t)PROCESS_HEAP_KEEP ? bytes : (size_t)PROCESS_HEAP_KEEP);

        mallopt(M_MMAP_THRESHOLD, keep);
        mallopt(M_TRIM_THRESHOLD, keep);
    }
#endif
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

/* SHA-256 and base64 of the stored bytes (out->png). */
static enum process_status process_digest(struct process_out *out, struct timespec *lap,
                                          char *reason, size_t rlen, char *err, size_t errlen)
{
    if (digest_sha256_hex(out->png, out->png_len, out->sha256, err, errlen) < 0 ||
        digest_base64(out->png, out->png_len, &out->b64, &out->b64_len, err, errlen) < 0)
        return process_fail(reason, rlen, "out_of_memory");
    out->timing.digest_us += process_lap(lap);
    return PROCESS_OK;
}

/* img in the chain's output format (format.h), then its SHA-256 and base64, into out. */
static enum process_status process_encode(const struct chain *chain,
                                          const struct pixflow_image *img, struct process_out *out,
                                          struct timespec *lap, char *reason, size_t rlen,
                                          char *err, size_t errlen)
{
    const struct format *f = chain_format(chain);
    int nomem = 0, failed;

    if (f->kind == FORMAT_JPEG) {
        enum image_status is =
            jpegw_encode(img, f->quality > 0 ? f->quality : FORMAT_JPEG_DEFAULT_QUALITY, &out->png,
                         &out->png_len, err, errlen);

        failed = is != IMAGE_OK;
        nomem = is == IMAGE_NOMEM;
    } else if (f->kind == FORMAT_WEBP) {
        enum webpw_status ws = webpw_encode(img, &out->png, &out->png_len, err, errlen);

        failed = ws != WEBPW_OK;
        nomem = ws == WEBPW_NOMEM;
    } else {
        const struct png_params p = {f->level, png_filter_for_level(f->level)};
        enum png_status ps = png_encode(img, &p, &out->png, &out->png_len, err, errlen);

        failed = ps != PNG_OK;
        nomem = ps == PNG_NOMEM;
    }
    if (failed)
        return process_fail(reason, rlen, nomem ? "out_of_memory" : "encode_failed");
    if (f->kind == FORMAT_JPEG)
        snprintf(out->encoder, sizeof(out->encoder), "jpeg:quality=%d",
                 f->quality > 0 ? f->quality : FORMAT_JPEG_DEFAULT_QUALITY);
    else if (f->kind == FORMAT_WEBP)
        snprintf(out->encoder, sizeof(out->encoder), "webp:lossless");
    else
        snprintf(out->encoder, sizeof(out->encoder), "png:level=%d", f->level);
    out->format = f->name;
    out->width = (int)img->width;
    out->height = (int)img->height;
    out->channels = (int)img->channels;
    if (f->kind != FORMAT_PNG && out->channels == 4)
        out->channels = f->kind == FORMAT_JPEG ? 3 : 4; /* JPEG has no alpha */
    out->timing.encode_us = process_lap(lap);
    return process_digest(out, lap, reason, rlen, err, errlen);
}

/* A gray rendition of a JPEG stored as JPEG with no quality named: the source's own luma
 * coefficients, never decoded (jpegw.h). Only for an upright picture (EXIF orientation 1: the
 * coefficients cannot be turned without jpegtran's trimming rules) whose luma is whole. */
static int process_keeps_coefficients(const struct chain *chain, const struct image_info *info,
                                      const unsigned char *data, size_t len)
{
    const struct format *f = chain_format(chain);

    return f->kind == FORMAT_JPEG && f->quality == 0 && info->format == IMAGE_FORMAT_JPEG &&
           info->orientation == 1 && chain_gray_only(chain) && jpegw_gray_possible(data, len);
}

static enum process_status process_coefficients(const struct process_limits *lim,
                                                const unsigned char *data, size_t len,
                                                const struct image_info *info,
                                                struct process_out *out, struct timespec *lap,
                                                char *reason, size_t rlen, char *err, size_t errlen)
{
    static const struct image_limits defaults = {IMAGE_DEFAULT_MAX_SCANS, IMAGE_DEFAULT_CPU_MS,
                                                 IMAGE_DEFAULT_MAX_MEMORY};
    enum image_status is = jpegw_gray_coefficients(data, len, lim != NULL ? &lim->image : &defaults,
                                                   &out->png, &out->png_len, err, errlen);

    if (is != IMAGE_OK)
        return process_fail(reason, rlen, process_image_reason(is));
    out->format = "jpeg";
    image_decoder_coefficients(&out->decoder);
    snprintf(out->encoder, sizeof(out->encoder), "jpeg:coefficients");
    out->width = info->width;
    out->height = info->height;
    out->channels = 1;
    out->timing.encode_us = process_lap(lap);
    return process_digest(out, lap, reason, rlen, err, errlen);
}

/* What to decode for the chain: only the luma of a colour JPEG when its first link wants gray,
 * and a JPEG shrunk by 2, 4 or 8 (DCT scaling) when the chain begins by shrinking it, as far as
 * leaves the resampler a factor of two. Both only for JPEG: stb_image's gray is not
 * pixflow_luma(), and PNG has nothing like DCT scaling. The cost stays that of the whole
 * picture: progressive coefficient buffers are whole whatever the scale. */
static void process_request(const struct chain *chain, const struct image_info *info,
                            struct image_request *req)
{
    int turned = info->orientation >= 5;
    uint32_t w, h;

    memset(req, 0, sizeof(*req));
    req->channels = chain_input_channels(chain, info->channels);
    if (info->format != IMAGE_FORMAT_JPEG)
        return;
    if (info->channels == 3 && chain_takes_luma(chain)) {
        req->channels = 1;
        req->luma = 1;
    }
    chain_shrink_limit(chain, (uint32_t)(turned ? info->height : info->width),
                       (uint32_t)(turned ? info->width : info->height), req->channels == 1, &w, &h);
    req->min_width = w;
    req->min_height = h;
}

/* One chain on a decoded picture: the last chain to use it takes it, the others a copy
 * (chain_apply consumes its input, and an in-place link writes into it). A lone chain exchanges
 * the decoding's cost for its output's (`exchange`); several keep the decoding's, copies
 * included, until the end. */
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
    st = process_encode(chain, &img, out, lap, reason, rlen, err, errlen);
    free(img.pixels);
    return st;
}

static int process_same_request(const struct image_request *a, const struct image_request *b)
{
    return a->channels == b->channels && a->luma == b->luma && a->min_width == b->min_width &&
           a->min_height == b->min_height;
}

/* Each chain not done yet (done[i] 0) on the picture decoded as its request says. Chains whose
 * requests are the same share one decode; a chain never gets another decode than it would alone
 * (a luma plane, a DCT-shrunk picture), so each rendition's bytes, and so its content address,
 * do not depend on which other renditions exist. Decodes run one after the other, each freed
 * once its last chain took it, within the cost process_run_all took. */
static enum process_status
process_pixels(const struct chain *const *chains, int n, const struct image_request *reqs,
               int *done, const struct process_limits *lim, const unsigned char *data, size_t len,
               const struct image_info *info, struct process_out *outs, size_t *held,
               struct timespec *lap, char *reason, size_t rlen, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) {
        if (done[i])
            continue;
        struct pixflow_image decoded;
        struct image_decoder dec;
        enum image_status is =
            image_decode_traced(data, len, info, &reqs[i], lim != NULL ? &lim->image : NULL,
                                &decoded, &dec, err, errlen);
        if (is != IMAGE_OK)
            return process_fail(reason, rlen, process_image_reason(is));
        outs[i].timing.decode_us = process_lap(lap);
        int last = i;
        for (int j = i + 1; j < n; j++)
            if (!done[j] && process_same_request(&reqs[i], &reqs[j]))
                last = j;
        for (int j = i; j <= last; j++) {
            if (done[j] || !process_same_request(&reqs[i], &reqs[j]))
                continue;
            done[j] = 1;
            outs[j].decoder = dec;
            enum process_status st = process_one(chains[j], &decoded, j == last, n == 1, &outs[j],
                                                 held, lap, reason, rlen, err, errlen);
            if (st != PROCESS_OK) {
                if (j < last) /* the last chain, which takes the picture, did not run */
                    free(decoded.pixels);
                return st;
            }
        }
    }
    return PROCESS_OK;
}

enum process_status process_run(const struct chain *chain, const struct process_limits *lim,
                                const unsigned char *data, size_t len, struct process_out *out,
                                char *reason, size_t rlen, char *err, size_t errlen)
{
    return process_run_all(&chain, 1, lim, data, len, out, reason, rlen, err, errlen);
}

#define PROCESS_CHAINS_MAX 64

enum process_status process_run_all(const struct chain *const *chains, int n,
                                    const struct process_limits *lim, const unsigned char *data,
                                    size_t len, struct process_out *outs, char *reason, size_t rlen,
                                    char *err, size_t errlen)
{
    struct image_info info;
    enum image_status is;
    enum process_status st = PROCESS_OK;
    struct timespec lap;
    struct image_request reqs[PROCESS_CHAINS_MAX];
    int done[PROCESS_CHAINS_MAX];
    size_t cost = 0, copies = 0;
    struct process_out *out = &outs[0];

    memset(outs, 0, sizeof(*outs) * (size_t)n);
    reason[0] = '\0';
    if (n < 1 || n > PROCESS_CHAINS_MAX) {
        snprintf(err, errlen, "%d chains: 1 to %d at once", n, PROCESS_CHAINS_MAX);
        return process_fail(reason, rlen, "transform_failed");
    }
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
    /* The cost of the dearest decode (one at a time), plus a copy of the picture for every
     * chain but one. Keeping coefficients reads every component's, 2 bytes each: at most 3 full
     * planes. */
    for (int i = 0; i < n; i++) {
        process_request(chains[i], &info, &reqs[i]);
        done[i] = process_keeps_coefficients(chains[i], &info, data, len);
        size_t c = done[i] ? (size_t)info.width * (size_t)info.height * 6 + info.work_bytes
                           : process_cost(&info, reqs[i].channels);
        cost = c > cost ? c : cost;
        if (i > 0)
            copies += (size_t)info.width * (size_t)info.height * (size_t)reqs[i].channels;
    }
    cost += copies;
    if (process_budget_take(cost) < 0) {
        snprintf(err, errlen, "%s %dx%d needs %zu MiB, over the %zu MiB decode memory budget",
                 info.name, info.width, info.height, cost >> 20, process_budget_total >> 20);
        return process_fail(reason, rlen, "too_many_pixels");
    }
    for (int i = 0; i < n && st == PROCESS_OK; i++)
        if (done[i])
            st = process_coefficients(lim, data, len, &info, &outs[i], &lap, reason, rlen, err,
                                      errlen);
    if (st == PROCESS_OK)
        st = process_pixels(chains, n, reqs, done, lim, data, len, &info, outs, &cost, &lap, reason,
                            rlen, err, errlen);
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

void process_out_doc(const struct process_out *out, struct store_doc *d)
{
    d->sha256 = out->sha256;
    d->image_b64 = out->b64;
    d->image_b64_len = out->b64_len;
    d->image = out->png;
    d->image_len = out->png_len;
    d->format = out->format;
    d->width = out->width;
    d->height = out->height;
    d->channels = out->channels;
    d->decoder = &out->decoder;
    d->encoder = out->encoder;
}
