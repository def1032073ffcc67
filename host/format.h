/* format.h -- the output formats a chain's last element may name (SPEC §6): png, jpeg, webp. */
#ifndef PIXFLOW_FORMAT_H
#define PIXFLOW_FORMAT_H

#include <stddef.h>

enum format_kind { FORMAT_PNG, FORMAT_JPEG, FORMAT_WEBP };

#define FORMAT_JPEG_DEFAULT_QUALITY 90

struct format {
    enum format_kind kind;
    const char *name; /* "png", "jpeg", "webp": the stored document's format */
    int level;        /* png: 0 (Huffman only, png.h) or libdeflate level 1..12 */
    int quality;      /* jpeg: 1..100; 0 when not given (see format_jpeg_quality()) */
};

/* The default: 8-bit PNG at png.h's default level. */
void format_default(struct format *f);

/* Is name (len bytes) an output format's? No plugin may take those names. */
int format_reserved(const char *name, size_t len);

/* Parses a chain element naming an output format: 1 with *f filled, 0 when name is no format,
 * -1 with err on a bad key or value (png:level=0..12, jpeg:quality=1..100, webp: none). */
int format_parse(const char *name, const char *config, struct format *f, char *err, size_t errlen);

#endif
