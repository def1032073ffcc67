/* webpw.c -- lossless WebP through libwebp's advanced API, so the effort is ours to choose
 * (WebPConfigLosslessPreset) rather than the simple API's slow default. A gray picture is
 * imported as RGB with three equal channels: libwebp's subtract-green transform turns that into
 * one channel of data and two of zeros, which cost almost nothing to code. */
#include "webpw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <webp/decode.h>
#include <webp/encode.h>

/* Rows of a gray picture as RGB, for WebPPictureImportRGB. */
static unsigned char *webpw_gray_to_rgb(const struct pixflow_image *img)
{
    unsigned char *rgb = malloc((size_t)img->width * 3 * img->height);

    if (rgb == NULL)
        return NULL;
    for (uint32_t y = 0; y < img->height; y++) {
        const unsigned char *s = img->pixels + (size_t)y * img->stride;
        unsigned char *d = rgb + (size_t)y * img->width * 3;

        for (uint32_t x = 0; x < img->width; x++, d += 3)
            d[0] = d[1] = d[2] = s[x];
    }
    return rgb;
}

enum webpw_status webpw_encode(const struct pixflow_image *img, unsigned char **out, size_t *outlen,
                               char *err, size_t errlen)
{
    WebPConfig config;
    WebPPicture pic;
    WebPMemoryWriter w;
    unsigned char *rgb = NULL;
    enum webpw_status st = WEBPW_NOMEM;
    int ok;

    if (img->pixels == NULL || img->width < 1 || img->height < 1 ||
        img->width > WEBP_MAX_DIMENSION || img->height > WEBP_MAX_DIMENSION ||
        (img->channels != 1 && img->channels != 3 && img->channels != 4) ||
        img->stride > (size_t)INT32_MAX / 3) {
        snprintf(err, errlen, "webp: cannot encode %ux%u, %u channels", (unsigned)img->width,
                 (unsigned)img->height, (unsigned)img->channels);
        return WEBPW_INVALID;
    }
    if (!WebPConfigInit(&config) || !WebPConfigLosslessPreset(&config, WEBPW_LEVEL) ||
        !WebPPictureInit(&pic)) {
        snprintf(err, errlen, "webp: libwebp's version does not match its header");
        return WEBPW_INVALID;
    }
    config.exact = 1; /* keep the colour under transparent pixels: lossless means every byte */
    pic.use_argb = 1;
    pic.width = (int)img->width;
    pic.height = (int)img->height;
    WebPMemoryWriterInit(&w);
    pic.writer = WebPMemoryWrite;
    pic.custom_ptr = &w;
    if (img->channels == 1) {
        rgb = webpw_gray_to_rgb(img);
        ok = rgb != NULL && WebPPictureImportRGB(&pic, rgb, (int)img->width * 3);
    } else if (img->channels == 3) {
        ok = WebPPictureImportRGB(&pic, img->pixels, (int)img->stride);
    } else {
        ok = WebPPictureImportRGBA(&pic, img->pixels, (int)img->stride);
    }
    free(rgb);
    if (ok && WebPEncode(&config, &pic)) {
        *out = malloc(w.size > 0 ? w.size : 1);
        if (*out != NULL) {
            memcpy(*out, w.mem, w.size);
            *outlen = w.size;
            st = WEBPW_OK;
        }
    } else if (ok && pic.error_code != VP8_ENC_ERROR_OUT_OF_MEMORY &&
               pic.error_code != VP8_ENC_ERROR_BITSTREAM_OUT_OF_MEMORY) {
        st = WEBPW_INVALID;
    }
    if (st != WEBPW_OK)
        snprintf(err, errlen, "webp: encoding %ux%u failed (libwebp error %d)",
                 (unsigned)img->width, (unsigned)img->height, (int)pic.error_code);
    WebPMemoryWriterClear(&w);
    WebPPictureFree(&pic);
    return st;
}

enum webpw_status webpw_check(const unsigned char *data, size_t len, int *width, int *height,
                              char *err, size_t errlen)
{
    if (!WebPGetInfo(data, len, width, height)) {
        snprintf(err, errlen, "not a WebP header");
        return WEBPW_INVALID;
    }
    uint8_t *px = WebPDecodeRGBA(data, len, width, height);
    if (px == NULL) {
        snprintf(err, errlen, "the WebP does not decode");
        return WEBPW_INVALID;
    }
    WebPFree(px);
    return WEBPW_OK;
}
