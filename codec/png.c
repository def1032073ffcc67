/* png.c -- a small PNG writer: row filters, then one libdeflate zlib stream in one IDAT.
 * libdeflate compresses a whole buffer at once, much faster than zlib at equal ratio, so the
 * filtered image is built in memory first ((width * channels + 1) * height bytes). Filters read
 * only the original rows, never their own output, so each row loop is branch-free arithmetic the
 * compiler can keep in registers. */
#include "png.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libdeflate.h>

#define PNG_SIG_LEN  8
#define PNG_IHDR_LEN 13
#define PNG_MAX_SIDE 0x7fffffffu /* PNG's limit for width, height and chunk length */

/* One compressor per thread, created for the level asked last. */
struct png_tls {
    struct libdeflate_compressor *comp;
    int level;
};

static pthread_once_t png_once = PTHREAD_ONCE_INIT;
static pthread_key_t png_key;
static int png_key_ok;

static void png_tls_free(void *p)
{
    struct png_tls *t = p;

    libdeflate_free_compressor(t->comp);
    free(t);
}

static void png_key_init(void)
{
    png_key_ok = pthread_key_create(&png_key, png_tls_free) == 0;
}

static struct libdeflate_compressor *png_compressor(int level)
{
    struct png_tls *t;

    pthread_once(&png_once, png_key_init);
    if (!png_key_ok)
        return NULL;
    t = pthread_getspecific(png_key);
    if (t != NULL && t->level == level)
        return t->comp;
    if (t == NULL) {
        t = calloc(1, sizeof(*t));
        if (t == NULL)
            return NULL;
        if (pthread_setspecific(png_key, t) != 0) {
            free(t);
            return NULL;
        }
    }
    libdeflate_free_compressor(t->comp);
    t->comp = libdeflate_alloc_compressor(level);
    t->level = t->comp != NULL ? level : 0;
    return t->comp;
}

static void png_put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Writes length, type and data (already at p + 8), then the CRC; returns the chunk's size. */
static size_t png_chunk(unsigned char *p, const char *type, size_t len)
{
    png_put32(p, (uint32_t)len);
    memcpy(p + 4, type, 4);
    png_put32(p + 8 + len, (uint32_t)libdeflate_crc32(0, p + 4, len + 4));
    return 12 + len;
}

/* ---- row filters: cur and prev are n bytes (prev all zero on the first row), bpp >= 1 ---- */

static void png_filter_none(const unsigned char *cur, const unsigned char *prev, size_t n,
                            size_t bpp, unsigned char *out)
{
    memcpy(out, cur, n);
}

static void png_filter_sub(const unsigned char *cur, const unsigned char *prev, size_t n,
                           size_t bpp, unsigned char *out)
{
    memcpy(out, cur, bpp);
    for (size_t x = bpp; x < n; x++)
        out[x] = (unsigned char)(cur[x] - cur[x - bpp]);
}

static void png_filter_up(const unsigned char *cur, const unsigned char *prev, size_t n, size_t bpp,
                          unsigned char *out)
{
    for (size_t x = 0; x < n; x++)
        out[x] = (unsigned char)(cur[x] - prev[x]);
}

static void png_filter_avg(const unsigned char *cur, const unsigned char *prev, size_t n,
                           size_t bpp, unsigned char *out)
{
    for (size_t x = 0; x < bpp; x++)
        out[x] = (unsigned char)(cur[x] - (prev[x] >> 1));
    for (size_t x = bpp; x < n; x++)
        out[x] = (unsigned char)(cur[x] - ((cur[x - bpp] + prev[x]) >> 1));
}

static void png_filter_paeth(const unsigned char *cur, const unsigned char *prev, size_t n,
                             size_t bpp, unsigned char *out)
{
    for (size_t x = 0; x < bpp; x++) /* left and upper-left are 0: Paeth predicts "up" */
        out[x] = (unsigned char)(cur[x] - prev[x]);
    for (size_t x = bpp; x < n; x++) {
        int a = cur[x - bpp], b = prev[x], c = prev[x - bpp];
        int pa = b - c, pb = a - c, pc = a + b - 2 * c, pred;

        /* |p - a|, |p - b|, |p - c| with p = a + b - c, ties to a then b (RFC 2083) */
        pa = pa < 0 ? -pa : pa;
        pb = pb < 0 ? -pb : pb;
        pc = pc < 0 ? -pc : pc;
        pred = pb <= pc ? b : c;
        pred = pa <= pb && pa <= pc ? a : pred;
        out[x] = (unsigned char)(cur[x] - pred);
    }
}

typedef void (*png_filter_fn)(const unsigned char *, const unsigned char *, size_t, size_t,
                              unsigned char *);

static const png_filter_fn png_filters[] = {png_filter_none, png_filter_sub, png_filter_up,
                                            png_filter_avg, png_filter_paeth};

/* Sum of the filtered bytes read as signed: smaller usually compresses better. */
static unsigned long png_row_cost(const unsigned char *f, size_t n)
{
    unsigned long sum = 0;

    for (size_t x = 0; x < n; x++)
        sum += f[x] < 128 ? f[x] : 256u - f[x];
    return sum;
}

/* Filters every row of img into dst, each row prefixed by its filter type byte. scratch holds
 * 5 rows for ADAPTIVE, zero holds one row of zeros. */
static void png_filter_image(const struct pixflow_image *img, enum png_filter filter,
                             const unsigned char *zero, unsigned char *scratch, unsigned char *dst)
{
    size_t n = (size_t)img->width * img->channels, bpp = img->channels;

    for (uint32_t y = 0; y < img->height; y++, dst += n + 1) {
        const unsigned char *cur = img->pixels + (size_t)y * img->stride;
        const unsigned char *prev = y > 0 ? cur - img->stride : zero;
        int best = filter;

        if (filter == PNG_FILTER_ADAPTIVE) {
            unsigned long best_cost = 0;

            for (int f = PNG_FILTER_NONE; f <= PNG_FILTER_PAETH; f++) {
                unsigned long cost;

                png_filters[f](cur, prev, n, bpp, scratch + (size_t)f * n);
                cost = png_row_cost(scratch + (size_t)f * n, n);
                if (f == PNG_FILTER_NONE || cost < best_cost) {
                    best = f;
                    best_cost = cost;
                }
            }
            memcpy(dst + 1, scratch + (size_t)best * n, n);
        } else {
            png_filters[filter](cur, prev, n, bpp, dst + 1);
        }
        dst[0] = (unsigned char)best;
    }
}

static enum png_status png_check(const struct pixflow_image *img, const struct png_params *p,
                                 char *err, size_t errlen)
{
    if (img->pixels == NULL || img->width < 1 || img->height < 1 || img->width > PNG_MAX_SIDE ||
        img->height > PNG_MAX_SIDE) {
        snprintf(err, errlen, "png: cannot encode a %ux%u picture", (unsigned)img->width,
                 (unsigned)img->height);
        return PNG_INVALID;
    }
    if (img->channels != 1 && img->channels != 3 && img->channels != 4) {
        snprintf(err, errlen, "png: cannot encode %u channels", (unsigned)img->channels);
        return PNG_INVALID;
    }
    if (img->stride < (size_t)img->width * img->channels) {
        snprintf(err, errlen, "png: stride %zu below the row's %zu bytes", img->stride,
                 (size_t)img->width * img->channels);
        return PNG_INVALID;
    }
    if (p->level < 1 || p->level > 12 || p->filter < PNG_FILTER_NONE ||
        p->filter > PNG_FILTER_ADAPTIVE) {
        snprintf(err, errlen, "png: bad parameters (level %d, filter %d)", p->level,
                 (int)p->filter);
        return PNG_INVALID;
    }
    return PNG_OK;
}

enum png_status png_encode(const struct pixflow_image *img, const struct png_params *params,
                           unsigned char **out, size_t *outlen, char *err, size_t errlen)
{
    static const unsigned char color_type[5] = {0, 0, 0, 2, 6}; /* by channel count */
    const struct png_params defaults = {PNG_DEFAULT_LEVEL, PNG_DEFAULT_FILTER};
    const struct png_params *p = params != NULL ? params : &defaults;
    size_t rowbytes, raw_len, bound, zlen, pos;
    unsigned char *raw = NULL, *zero = NULL, *scratch = NULL, *buf = NULL, *ihdr;
    struct libdeflate_compressor *comp;
    enum png_status st;

    st = png_check(img, p, err, errlen);
    if (st != PNG_OK)
        return st;
    rowbytes = (size_t)img->width * img->channels;
    if (rowbytes + 1 > SIZE_MAX / img->height) {
        snprintf(err, errlen, "png: %ux%u is too large", (unsigned)img->width,
                 (unsigned)img->height);
        return PNG_INVALID;
    }
    raw_len = (rowbytes + 1) * img->height;
    comp = png_compressor(p->level);
    raw = malloc(raw_len);
    zero = calloc(1, rowbytes);
    if (p->filter == PNG_FILTER_ADAPTIVE)
        scratch = malloc(5 * rowbytes);
    st = PNG_NOMEM;
    if (comp == NULL || raw == NULL || zero == NULL ||
        (p->filter == PNG_FILTER_ADAPTIVE && scratch == NULL))
        goto done;
    png_filter_image(img, p->filter, zero, scratch, raw);

    bound = libdeflate_zlib_compress_bound(comp, raw_len);
    buf = malloc(PNG_SIG_LEN + 12 + PNG_IHDR_LEN + 12 + bound + 12);
    if (buf == NULL)
        goto done;
    memcpy(buf, "\x89PNG\r\n\x1a\n", PNG_SIG_LEN);
    pos = PNG_SIG_LEN;
    ihdr = buf + pos + 8;
    png_put32(ihdr, img->width);
    png_put32(ihdr + 4, img->height);
    ihdr[8] = 8;                         /* bit depth */
    ihdr[9] = color_type[img->channels]; /* gray, RGB or RGBA */
    ihdr[10] = ihdr[11] = ihdr[12] = 0;  /* deflate, the five standard filters, no interlace */
    pos += png_chunk(buf + pos, "IHDR", PNG_IHDR_LEN);

    zlen = libdeflate_zlib_compress(comp, raw, raw_len, buf + pos + 8, bound);
    st = PNG_INVALID;
    if (zlen == 0 || zlen > PNG_MAX_SIDE)
        goto done;
    pos += png_chunk(buf + pos, "IDAT", zlen);
    pos += png_chunk(buf + pos, "IEND", 0);
    *out = buf;
    *outlen = pos;
    buf = NULL;
    st = PNG_OK;
done:
    if (st == PNG_NOMEM)
        snprintf(err, errlen, "png: out of memory for %ux%u", (unsigned)img->width,
                 (unsigned)img->height);
    else if (st == PNG_INVALID)
        snprintf(err, errlen, "png: compressed data does not fit one IDAT (%zu bytes in)", raw_len);
    free(buf);
    free(raw);
    free(zero);
    free(scratch);
    return st;
}
