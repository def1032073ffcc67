/* jpeg.h -- JPEG header reading and bounded decoding through libjpeg-turbo (image.c's JPEG half).
 */
#ifndef PIXFLOW_JPEG_H
#define PIXFLOW_JPEG_H

#include "image.h"

/* Reads the markers up to the first scan: size, components, EXIF orientation. No pixel memory. */
enum image_status jpeg_probe(const unsigned char *data, size_t len, struct image_info *info,
                             char *err, size_t errlen);

/* Decodes as req asks (image.h) under lim (scans, CPU time, libjpeg's working memory), leaving
 * the picture as stored (image.c turns it upright). out->pixels comes from alloc; a shrunk
 * picture has out->source_width/height set to the stored size. */
enum image_status jpeg_decode(const unsigned char *data, size_t len, const struct image_info *info,
                              const struct image_request *req, const struct image_limits *lim,
                              void *(*alloc)(size_t), struct pixflow_image *out, char *err,
                              size_t errlen);

/* Start-of-scan markers in the file, counted without decoding (stops at EOI); -1: truncated. */
long jpeg_count_scans(const unsigned char *d, size_t len);

#endif
