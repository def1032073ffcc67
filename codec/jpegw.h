/* jpegw.h -- JPEG writing through libjpeg-turbo: pixels at a quality, or a JPEG's own luma
 * coefficients kept as they are. */
#ifndef PIXFLOW_JPEGW_H
#define PIXFLOW_JPEGW_H

#include <stddef.h>

#include "image.h"

/* img (1, 3 or 4 channels; alpha is dropped, JPEG has none) as a baseline JPEG with optimized
 * Huffman tables at quality 1..100, 4:2:0 for colour. *out is malloc'd. IMAGE_OK, IMAGE_NOMEM or
 * IMAGE_CORRUPT (bad arguments) with err. */
enum image_status jpegw_encode(const struct pixflow_image *img, int quality, unsigned char **out,
                               size_t *outlen, char *err, size_t errlen);

/* Can jpegw_gray_coefficients() take this JPEG: gray, or YCbCr with a full-resolution Y? */
int jpegw_gray_possible(const unsigned char *data, size_t len);

/* A gray JPEG made in the DCT domain from a JPEG: its Y coefficients kept exactly, chroma and
 * every marker but comments dropped, progressive with optimized Huffman tables. Byte for byte
 * what `jpegtran -grayscale -optimize -progressive` writes. Under lim (scans, CPU time,
 * libjpeg's working memory). *out is malloc'd. */
enum image_status jpegw_gray_coefficients(const unsigned char *data, size_t len,
                                          const struct image_limits *lim, unsigned char **out,
                                          size_t *outlen, char *err, size_t errlen);

#endif
