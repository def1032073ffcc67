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

/* Chosen by measurement (bench_compute --sweep on the picsum-like pictures; tests/bench/README.md
 * has the table): level 1 with "up" on every row encodes gray photographs 2.6x as fast as level 3
 * with Paeth (the default before) for 6% more bytes; past level 2 Paeth pays for itself, and
 * adaptive filtering never does (twice the time for 1.5% less). png:level=N picks the level, and
 * png_filter_for_level() its filter. */
#define PNG_DEFAULT_LEVEL  1
#define PNG_DEFAULT_FILTER PNG_FILTER_UP

/* The row filter used at a libdeflate level: "up" where deflate is fast (1, 2), Paeth above. */
static inline enum png_filter png_filter_for_level(int level)
{
    return level <= 2 ? PNG_FILTER_UP : PNG_FILTER_PAETH;
}

enum png_status { PNG_OK, PNG_INVALID, PNG_NOMEM };

/* Encodes img (channels 1, 3 or 4; any stride) as a non-interlaced 8-bit PNG: signature, IHDR,
 * one IDAT, IEND. params NULL means the defaults. *out is malloc'd. Safe from any thread: each
 * thread keeps its own libdeflate compressor (they are not thread-safe), freed when it exits. */
enum png_status png_encode(const struct pixflow_image *img, const struct png_params *params,
                           unsigned char **out, size_t *outlen, char *err, size_t errlen);

#endif
