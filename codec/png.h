/* png.h -- 8-bit PNG encoding (gray, RGB, RGBA) over libdeflate. */
#ifndef PIXFLOW_PNG_H
#define PIXFLOW_PNG_H

#include <stddef.h>

#include <pixflow/plugin.h>

/* PNG row filters (RFC 2083 §6). ADAPTIVE picks, per row, the filter whose output has the
 * smallest sum of absolute values (libpng's and Pillow's heuristic). */
enum png_filter {
    PNG_FILTER_NONE,
    PNG_FILTER_SUB,
    PNG_FILTER_UP,
    PNG_FILTER_AVG,
    PNG_FILTER_PAETH,
    PNG_FILTER_ADAPTIVE,
    PNG_FILTER_SAMPLED, /* ADAPTIVE's choice made on a quarter of each row (32 bytes in 128) */
};

/* Level 0: deflate with Huffman coding alone (zhuff.h), no string matching. */
#define PNG_LEVEL_HUFFMAN 0

struct png_params {
    int level; /* PNG_LEVEL_HUFFMAN, or libdeflate's level, 1 (fastest) .. 12 (smallest) */
    enum png_filter filter;
};

/* Chosen by measurement (bench_compute --sweep on real photographs and on the picsum-like
 * pictures; tests/bench/README.md has the tables): Paeth on every row, then Huffman coding
 * alone, is 2-2.5x as fast as libdeflate's level 1 (the fastest with string matching) and 18%
 * smaller, below Pillow's bytes (zlib level 6 with per-row adaptive filters): filtered rows of a
 * photograph are residuals that seldom repeat as strings. Choosing the filter per row saves
 * another 1%, for up to twice the time (ADAPTIVE) or a little (SAMPLED, whose time varied between
 * the sets from equal to 1.3x). png:level=N (1..12) picks
 * libdeflate's level N instead, and png_filter_for_level() its filter. */
#define PNG_DEFAULT_LEVEL  PNG_LEVEL_HUFFMAN
#define PNG_DEFAULT_FILTER PNG_FILTER_PAETH

/* The row filter used at a level: "up" where libdeflate is fastest (1, 2), Paeth elsewhere,
 * the default (Huffman only) included. */
static inline enum png_filter png_filter_for_level(int level)
{
    return level == 1 || level == 2 ? PNG_FILTER_UP : PNG_FILTER_PAETH;
}

enum png_status { PNG_OK, PNG_INVALID, PNG_NOMEM };

/* Encodes img (channels 1, 3 or 4; any stride) as a non-interlaced 8-bit PNG: signature, IHDR,
 * one IDAT, IEND. params NULL means the defaults. *out is malloc'd. Safe from any thread: each
 * thread keeps its own libdeflate compressor (they are not thread-safe), freed when it exits. */
enum png_status png_encode(const struct pixflow_image *img, const struct png_params *params,
                           unsigned char **out, size_t *outlen, char *err, size_t errlen);

#endif
