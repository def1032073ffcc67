/* png.c -- a small PNG writer: row filters, then one libdeflate zlib stream in one IDAT.
 * libdeflate compresses a whole buffer at once, much faster than zlib at equal ratio, so the
 * filtered image is built in memory first ((width * channels + 1) * height bytes). Filters read
 * only the original rows, never their own output, so each row loop is branch-free arithmetic the
 * compiler can keep in registers. */
#include "png.h"
#include "zhuff.h"

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

/* ---- row filters: cur and prev are n bytes (prev all zero on the first row), bpp >= 1 ----
 * Each output byte reads only cur[x], cur[x - bpp], prev[x] and prev[x - bpp], never another
 * output byte: so rows can be cut into blocks of PNG_BLOCK bytes whose fixed trip count lets the
 * compiler use vector instructions (GCC's -O2 does so only for loops of known length), and a
 * filter's cost can be sampled on a few blocks of a row without filtering the rest. */

#define PNG_BLOCK 32

typedef unsigned char png_byte_t;

/* In 16-bit arithmetic (every term fits), so that a vector holds 8 or 16 of them. */
static inline png_byte_t png_paeth(int16_t v, int16_t a, int16_t b, int16_t c)
{
    int16_t pa = (int16_t)(b - c), pb = (int16_t)(a - c), pc = (int16_t)(a + b - 2 * c), pred;

    /* |p - a|, |p - b|, |p - c| with p = a + b - c, ties to a then b (RFC 2083) */
    pa = (int16_t)(pa < 0 ? -pa : pa);
    pb = (int16_t)(pb < 0 ? -pb : pb);
    pc = (int16_t)(pc < 0 ? -pc : pc);
    pred = pb <= pc ? b : c;
    pred = pa <= pb && pa <= pc ? a : pred;
    return (png_byte_t)(v - pred);
}

/* One filter's byte x (x >= bpp). */
static inline png_byte_t png_filter_byte(int filter, const png_byte_t *restrict cur,
                                         const png_byte_t *restrict prev, size_t x, size_t bpp)
{
    int v = cur[x], a = cur[x - bpp], b = prev[x], c = prev[x - bpp];

    switch (filter) {
    case PNG_FILTER_SUB:
        return (png_byte_t)(v - a);
    case PNG_FILTER_UP:
        return (png_byte_t)(v - b);
    case PNG_FILTER_AVG:
        return (png_byte_t)(v - ((a + b) >> 1));
    case PNG_FILTER_PAETH:
        return png_paeth((int16_t)v, (int16_t)a, (int16_t)b, (int16_t)c);
    default:
        return (png_byte_t)v;
    }
}

/* Bytes from..to (from >= bpp) of one filter, in blocks the compiler vectorizes. The filter is a
 * constant in each instantiation below, so the switch above folds away. */
#define PNG_FILTER_SPAN(filter, cur, prev, out, from, to, bpp)                                     \
    do {                                                                                           \
        size_t x_ = (from);                                                                        \
        for (; x_ + PNG_BLOCK <= (to); x_ += PNG_BLOCK) {                                          \
            png_byte_t block_[PNG_BLOCK]; /* no alias with the rows: vectorizable */               \
            for (size_t k_ = 0; k_ < PNG_BLOCK; k_++)                                              \
                block_[k_] = png_filter_byte(filter, cur, prev, x_ + k_, bpp);                     \
            memcpy((out) + x_, block_, PNG_BLOCK);                                                 \
        }                                                                                          \
        for (; x_ < (to); x_++)                                                                    \
            (out)[x_] = png_filter_byte(filter, cur, prev, x_, bpp);                               \
    } while (0)

static void png_filter_row(int filter, const png_byte_t *restrict cur,
                           const png_byte_t *restrict prev, size_t n, size_t bpp,
                           png_byte_t *restrict out)
{
    size_t lead = bpp < n ? bpp : n;

    /* the first pixel has no left neighbour: a and c are 0 */
    for (size_t x = 0; x < lead; x++)
        out[x] = (png_byte_t)(filter == PNG_FILTER_SUB || filter == PNG_FILTER_NONE ? cur[x]
                              : filter == PNG_FILTER_AVG ? cur[x] - (prev[x] >> 1)
                                                         : cur[x] - prev[x]); /* up, Paeth */
    switch (filter) {
    case PNG_FILTER_SUB:
        PNG_FILTER_SPAN(PNG_FILTER_SUB, cur, prev, out, lead, n, bpp);
        break;
    case PNG_FILTER_UP:
        PNG_FILTER_SPAN(PNG_FILTER_UP, cur, prev, out, lead, n, bpp);
        break;
    case PNG_FILTER_AVG:
        PNG_FILTER_SPAN(PNG_FILTER_AVG, cur, prev, out, lead, n, bpp);
        break;
    case PNG_FILTER_PAETH:
        PNG_FILTER_SPAN(PNG_FILTER_PAETH, cur, prev, out, lead, n, bpp);
        break;
    default:
        memcpy(out, cur, n);
    }
}

/* A filtered byte read as signed, made absolute: libpng's measure of how well it compresses. */
static inline unsigned png_abs(png_byte_t f)
{
    return f < 128 ? f : 256u - f;
}

/* The sum of |filtered byte| of each of the five filters over bytes from..to (from >= bpp),
 * added to cost[]. */
static void png_costs(const png_byte_t *restrict cur, const png_byte_t *restrict prev, size_t from,
                      size_t to, size_t bpp, unsigned long cost[5])
{
    for (size_t x = from; x < to; x += PNG_BLOCK) {
        size_t len = to - x < PNG_BLOCK ? to - x : PNG_BLOCK;
        unsigned c0 = 0, c1 = 0, c2 = 0, c3 = 0, c4 = 0;

        if (len == PNG_BLOCK) {
            for (size_t k = 0; k < PNG_BLOCK; k++) {
                c0 += png_abs(png_filter_byte(PNG_FILTER_NONE, cur, prev, x + k, bpp));
                c1 += png_abs(png_filter_byte(PNG_FILTER_SUB, cur, prev, x + k, bpp));
                c2 += png_abs(png_filter_byte(PNG_FILTER_UP, cur, prev, x + k, bpp));
                c3 += png_abs(png_filter_byte(PNG_FILTER_AVG, cur, prev, x + k, bpp));
                c4 += png_abs(png_filter_byte(PNG_FILTER_PAETH, cur, prev, x + k, bpp));
            }
        } else {
            for (size_t k = 0; k < len; k++) {
                c0 += png_abs(png_filter_byte(PNG_FILTER_NONE, cur, prev, x + k, bpp));
                c1 += png_abs(png_filter_byte(PNG_FILTER_SUB, cur, prev, x + k, bpp));
                c2 += png_abs(png_filter_byte(PNG_FILTER_UP, cur, prev, x + k, bpp));
                c3 += png_abs(png_filter_byte(PNG_FILTER_AVG, cur, prev, x + k, bpp));
                c4 += png_abs(png_filter_byte(PNG_FILTER_PAETH, cur, prev, x + k, bpp));
            }
        }
        cost[0] += c0, cost[1] += c1, cost[2] += c2, cost[3] += c3, cost[4] += c4;
    }
}

/* The filter of smallest cost for a row: over the whole row (ADAPTIVE, libpng's and Pillow's
 * heuristic), or over one block in every PNG_SAMPLE_EVERY (SAMPLED: the same choice on most
 * rows of a photograph, at a fraction of the work). Ties go to the lower filter type. */
#define PNG_SAMPLE_EVERY 4

static int png_pick(enum png_filter how, const png_byte_t *cur, const png_byte_t *prev, size_t n,
                    size_t bpp)
{
    unsigned long cost[5] = {0};
    int best = PNG_FILTER_NONE;

    if (how == PNG_FILTER_ADAPTIVE || n < 2 * PNG_SAMPLE_EVERY * PNG_BLOCK)
        png_costs(cur, prev, bpp < n ? bpp : n, n, bpp, cost);
    else
        for (size_t x = bpp; x + PNG_BLOCK <= n; x += PNG_SAMPLE_EVERY * PNG_BLOCK)
            png_costs(cur, prev, x, x + PNG_BLOCK, bpp, cost);
    for (int f = PNG_FILTER_SUB; f <= PNG_FILTER_PAETH; f++)
        if (cost[f] < cost[best])
            best = f;
    return best;
}

/* Filters every row of img into dst, each row prefixed by its filter type byte. zero holds one
 * row of zeros. */
static void png_filter_image(const struct pixflow_image *img, enum png_filter filter,
                             const unsigned char *zero, unsigned char *dst)
{
    size_t n = (size_t)img->width * img->channels, bpp = img->channels;

    for (uint32_t y = 0; y < img->height; y++, dst += n + 1) {
        const unsigned char *cur = img->pixels + (size_t)y * img->stride;
        const unsigned char *prev = y > 0 ? cur - img->stride : zero;
        int f = filter;

        if (filter == PNG_FILTER_ADAPTIVE || filter == PNG_FILTER_SAMPLED)
            f = png_pick(filter, cur, prev, n, bpp);
        png_filter_row(f, cur, prev, n, bpp, dst + 1);
        dst[0] = (unsigned char)f;
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
    if (p->level < PNG_LEVEL_HUFFMAN || p->level > 12 || p->filter < PNG_FILTER_NONE ||
        p->filter > PNG_FILTER_SAMPLED) {
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
    unsigned char *raw = NULL, *zero = NULL, *buf = NULL, *ihdr;
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
    comp = p->level == PNG_LEVEL_HUFFMAN ? NULL : png_compressor(p->level);
    raw = malloc(raw_len);
    zero = calloc(1, rowbytes);
    st = PNG_NOMEM;
    if ((comp == NULL && p->level != PNG_LEVEL_HUFFMAN) || raw == NULL || zero == NULL)
        goto done;
    png_filter_image(img, p->filter, zero, raw);

    bound = comp != NULL ? libdeflate_zlib_compress_bound(comp, raw_len) : zhuff_bound(raw_len);
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

    zlen = comp != NULL ? libdeflate_zlib_compress(comp, raw, raw_len, buf + pos + 8, bound)
                        : zhuff_compress(raw, raw_len, buf + pos + 8);
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
    return st;
}
