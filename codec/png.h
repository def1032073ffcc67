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
};

struct png_params {
    int level; /* libdeflate level, 1 (fastest) .. 12 (smallest) */
    enum png_filter filter;
};

/* Chosen by measurement (tests/bench/bench_pillow.py --sweep, 12 picsum-like photographs):
 * Paeth on every row at level 3 stores 1.05x Pillow's bytes (zlib 6 with adaptive filters; worst
 * picture 1.064x) at 85 MB/s of gray pixels, where Pillow's encoder does about 10. Level 2 is 13%
 * faster but 1.067x overall and 1.09x on its worst picture, too near the 1.1x budget; "up" at
 * level 3 is 6% faster and 1.071x; adaptive filtering takes twice the time for 1.5% less. */
#define PNG_DEFAULT_LEVEL  3
#define PNG_DEFAULT_FILTER PNG_FILTER_PAETH

enum png_status { PNG_OK, PNG_INVALID, PNG_NOMEM };

/* Encodes img (channels 1, 3 or 4; any stride) as a non-interlaced 8-bit PNG: signature, IHDR,
 * one IDAT, IEND. params NULL means the defaults. *out is malloc'd. Safe from any thread: each
 * thread keeps its own libdeflate compressor (they are not thread-safe), freed when it exits. */
enum png_status png_encode(const struct pixflow_image *img, const struct png_params *params,
                           unsigned char **out, size_t *outlen, char *err, size_t errlen);

#endif
