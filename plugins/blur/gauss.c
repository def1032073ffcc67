/* gauss.c -- separable Gaussian filtering in integer arithmetic, shared by blur and sharpen.
 *
 * Weights: exp(-k^2 / 2 sigma^2) = 2^-(k^2 log2(e) / 2 sigma^2), the power of two computed in
 * Q30 fixed point, one table factor per bit of the fraction, then normalised to 1/65536, the
 * centre taking what rounding left over, so a flat picture stays exactly flat. libm's exp() could
 * differ in its last bit between machines (glibc picks an FMA variant at run time); this cannot.
 *
 * Passes: rows first, into 16-bit samples with 8 fraction bits, then columns into 32-bit sums
 * (at most 255 * 256 * 65536 < 2^32). Only the rows the column pass still needs are kept, in a
 * ring of 2 half + 1 rows, which also makes filtering in place possible: when output row y is
 * written, input rows up to y + half have been read and none after it is touched. */
#include "gauss.h"

#include <stdio.h>
#include <stdlib.h>

#define GAUSS_Q 30

/* 2^30 * 2^-(2^-(i+1)): the factor for bit i of the fraction, most significant first. */
static const uint64_t gauss_pow2[] = {
    759250125,  902905651,  984625594,  1028218693, 1050733751, 1062175491, 1067942999, 1070838486,
    1072289173, 1073015252, 1073378477, 1073560135, 1073650976, 1073696399, 1073719111, 1073730468,
    1073736146, 1073738985, 1073740404, 1073741114, 1073741469, 1073741647, 1073741735, 1073741780,
};

#define GAUSS_LOG2E 1549082005u /* log2(e) * 2^30 */

/* 2^-e for e in Q30, as Q30. */
static uint64_t gauss_exp2_neg(uint64_t e)
{
    uint64_t whole = e >> GAUSS_Q, r = (uint64_t)1 << GAUSS_Q;
    size_t bits = sizeof(gauss_pow2) / sizeof(gauss_pow2[0]);

    if (whole > GAUSS_Q)
        return 0;
    for (size_t i = 0; i < bits; i++)
        if (e & ((uint64_t)1 << (GAUSS_Q - 1 - i)))
            r = (r * gauss_pow2[i]) >> GAUSS_Q;
    return r >> whole;
}

/* exp(-k^2 / 2 sigma^2) in Q30, sigma = s / 1000. k^2 10^6 2^20 < 2^55 for k <= 150; the ratio
 * is at most 50 (sigma 0.1, k 1), so ratio * 2^20 * log2(e) * 2^30 < 2^57 too. */
static uint64_t gauss_tap(uint32_t k, uint32_t s)
{
    uint64_t ratio = (((uint64_t)k * k * 1000000) << 20) / (2 * (uint64_t)s * s);

    return gauss_exp2_neg((ratio * GAUSS_LOG2E) >> 20);
}

struct gauss *gauss_new(uint32_t sigma_milli)
{
    struct gauss *g = malloc(sizeof(*g));
    uint32_t half = (3 * sigma_milli + 999) / 1000;
    uint64_t *raw = NULL, sum = 0, outer = 0, side = 0;

    if (g != NULL) {
        g->w = malloc((half + 1) * sizeof(*g->w));
        raw = malloc((half + 1) * sizeof(*raw));
    }
    if (g == NULL || g->w == NULL || raw == NULL) {
        free(raw);
        gauss_free(g);
        return NULL;
    }
    for (uint32_t k = 0; k <= half; k++) {
        raw[k] = gauss_tap(k, sigma_milli);
        sum += k == 0 ? raw[k] : 2 * raw[k];
    }
    /* Rounding the tails' cumulative sums, from the outside in, and taking differences keeps
     * every weight within one unit of exact; rounding each weight alone would let up to 150
     * half-units pile up on the centre. */
    for (uint32_t k = half; k >= 1; k--) {
        uint64_t with = (((outer + raw[k]) << 16) + sum / 2) / sum;
        uint64_t without = ((outer << 16) + sum / 2) / sum;

        g->w[k] = (uint32_t)(with - without);
        outer += raw[k];
    }
    while (half > 0 && g->w[half] == 0)
        half--;
    for (uint32_t k = 1; k <= half; k++)
        side += g->w[k];
    g->w[0] = (uint32_t)(GAUSS_ONE - 2 * side);
    g->half = half;
    free(raw);
    return g;
}

void gauss_free(struct gauss *g)
{
    if (g == NULL)
        return;
    free(g->w);
    free(g);
}

/* Sample i of a row near its ends: taps beyond the edges repeat the border pixel. */
static uint32_t gauss_edge(const struct gauss *g, const unsigned char *s, uint32_t width,
                           uint32_t c, size_t i)
{
    uint32_t x = (uint32_t)(i / c), ch = (uint32_t)(i % c);
    uint32_t sum = g->w[0] * s[i];

    for (uint32_t k = 1; k <= g->half; k++) {
        uint32_t l = x >= k ? x - k : 0;
        uint32_t r = width - 1 - x > k ? x + k : width - 1;

        sum += g->w[k] * (uint32_t)(s[(size_t)l * c + ch] + s[(size_t)r * c + ch]);
    }
    return sum;
}

/* One row, horizontally, into samples * 256. */
static void gauss_row(const struct gauss *g, const unsigned char *s, uint16_t *d, uint32_t width,
                      uint32_t c)
{
    const uint32_t *w = g->w;
    uint32_t half = g->half;
    size_t n = (size_t)width * c, i = 0;
    /* samples whose taps all fall inside the row: pixels [half, width - half) */
    size_t lo = (size_t)(half < width ? half : width) * c;
    size_t hi = width > 2 * half ? (size_t)(width - half) * c : lo;

    for (; i < lo; i++)
        d[i] = (uint16_t)((gauss_edge(g, s, width, c, i) + 128) >> 8);
    for (; i < hi; i++) {
        uint32_t sum = w[0] * s[i];

        for (uint32_t k = 1; k <= half; k++)
            sum += w[k] * (uint32_t)(s[i - k * c] + s[i + k * c]);
        d[i] = (uint16_t)((sum + 128) >> 8);
    }
    for (; i < n; i++)
        d[i] = (uint16_t)((gauss_edge(g, s, width, c, i) + 128) >> 8);
}

int gauss_run(const struct gauss *g, const struct pixflow_host *host,
              const struct pixflow_image *in, const struct pixflow_image *out, gauss_row_fn emit,
              const void *arg, char *err, size_t errlen)
{
    uint32_t h = in->height, half = g->half;
    uint32_t nring = 2 * half + 1 < h ? 2 * half + 1 : h, next = 0;
    size_t n = (size_t)in->width * in->channels;
    uint16_t *ring;
    uint32_t *sums;
    void *scratch;

    if (n > SIZE_MAX / (nring * sizeof(uint16_t) + sizeof(uint32_t)))
        scratch = NULL;
    else
        scratch = host->alloc(host, n * (nring * sizeof(uint16_t) + sizeof(uint32_t)));
    if (scratch == NULL) {
        snprintf(err, errlen, "out of memory for %u rows of %u pixels", (unsigned)nring + 1,
                 (unsigned)in->width);
        return -1;
    }
    sums = scratch;
    ring = (uint16_t *)(sums + n);
    for (uint32_t y = 0; y < h; y++) {
        uint32_t need = h - 1 - y > half ? y + half : h - 1;
        const uint16_t *mid;

        for (; next <= need; next++)
            gauss_row(g, in->pixels + next * in->stride, ring + (next % nring) * n, in->width,
                      in->channels);
        mid = ring + (y % nring) * n;
        for (size_t i = 0; i < n; i++)
            sums[i] = g->w[0] * mid[i];
        for (uint32_t k = 1; k <= half; k++) {
            const uint16_t *up = ring + ((y >= k ? y - k : 0) % nring) * n;
            const uint16_t *down = ring + ((h - 1 - y > k ? y + k : h - 1) % nring) * n;

            for (size_t i = 0; i < n; i++)
                sums[i] += g->w[k] * (uint32_t)(up[i] + down[i]);
        }
        emit(arg, sums, in->pixels + y * in->stride, out->pixels + y * out->stride, n,
             in->channels);
    }
    host->free(host, scratch);
    return 0;
}
