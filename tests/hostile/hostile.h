/* hostile.h -- pictures built to hurt a decoder, and what pixflow must make of each. */
#ifndef PIXFLOW_HOSTILE_H
#define PIXFLOW_HOSTILE_H

#include <stddef.h>

struct hostile_case {
    const char *file;   /* name to write it under */
    const char *reason; /* expected dead-letter reason; NULL: stored */
    const char *what;
    unsigned char *(*make)(size_t *len); /* malloc'd bytes, NULL when out of memory */
};

/* Every case, ending with a {NULL} entry. big != 0 builds the full-size ones the issue names
 * (a 713 KB PNG inflating to 700 MiB, a 5000 x 5000 progressive JPEG); 0 builds small ones with
 * the same defect, for unit tests and fuzz seeds. Call before hostile_cases(). */
const struct hostile_case *hostile_cases(int big);

/* A JPEG of w x h with comps 1 (gray), 3 (colour) or 4 (CMYK) channels of a smooth pattern.
 * refine < 0: baseline; otherwise progressive with one scan per AC coefficient per component and
 * `refine` successive-approximation passes each (1 + comps * 63 * (1 + refine) scans, all
 * legal). orientation > 1 adds an EXIF APP1 with that Orientation. */
unsigned char *hostile_jpeg(int w, int h, int comps, int refine, int orientation, size_t *len);

/* A PNG of w x h, bit depth and colour type as given, whose zlib data inflates to `raw` bytes
 * (0: exactly what the header needs; more: a bomb of zeros). */
unsigned char *hostile_png(unsigned w, unsigned h, int depth, int color, size_t raw, size_t *len);

/* Appends a PNG chunk (length, type, data, CRC) to buf at *len, which must have room for n + 12
 * more bytes; bad_crc spoils its CRC. */
void hostile_chunk(unsigned char *buf, size_t *len, const char *type, const void *data, size_t n,
                   int bad_crc);

#endif
