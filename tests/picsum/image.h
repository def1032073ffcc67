/* image.h -- synthetic "photographs" for the image server, encoded as progressive JPEG. */
#ifndef PICSUM_IMAGE_H
#define PICSUM_IMAGE_H

#include <stddef.h>

#define IMAGE_JPEG_QUALITY 80

enum image_flags {
    IMAGE_GRAYSCALE = 1 << 0, /* one-component JPEG, like picsum's ?grayscale */
};

/* Render picture `id` at width x height (each 1..65500) and encode it as a progressive,
 * Huffman-optimized JPEG. The bytes depend only on (id, width, height, flags).
 * *out is malloc'd, the caller frees it. 0, or -1 with a message in err. */
int image_jpeg(int id, int width, int height, int flags, unsigned char **out, size_t *outlen,
               char *err, size_t errlen);

/* A tiny JPEG (a few hundred bytes) whose frame header declares width x height: a decoder
 * that trusts the header allocates gigabytes. *out is malloc'd. 0, or -1 with err. */
int image_bomb(unsigned width, unsigned height, unsigned char **out, size_t *outlen, char *err,
               size_t errlen);

#endif
