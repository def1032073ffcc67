/* webpw.h -- lossless WebP writing through libwebp. */
#ifndef PIXFLOW_WEBPW_H
#define PIXFLOW_WEBPW_H

#include <stddef.h>

#include <pixflow/plugin.h>

/* libwebp's lossless effort, 0 (fastest) .. 9 (smallest), chosen by measurement: see webpw.c. */
#define WEBPW_LEVEL 1

enum webpw_status { WEBPW_OK, WEBPW_INVALID, WEBPW_NOMEM };

/* img (1, 3 or 4 channels, any stride) as lossless WebP: every pixel kept exactly, gray as
 * R = G = B (WebP has no gray mode; its colour transforms make the copies nearly free).
 * *out is malloc'd. */
enum webpw_status webpw_encode(const struct pixflow_image *img, unsigned char **out, size_t *outlen,
                               char *err, size_t errlen);

/* The one WebP read pixflow needs, for `pixflow verify`: data decodes whole as a WebP, whose size
 * goes to *width and *height. WEBPW_INVALID with err when it does not decode. */
enum webpw_status webpw_check(const unsigned char *data, size_t len, int *width, int *height,
                              char *err, size_t errlen);

#endif
