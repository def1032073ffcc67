/* image.h -- recognise, check and decode downloaded pictures (JPEG and PNG only), within limits. */
#ifndef PIXFLOW_IMAGE_H
#define PIXFLOW_IMAGE_H

#include <stddef.h>

#include <pixflow/plugin.h>

enum image_status {
    IMAGE_OK,
    IMAGE_NOT_IMAGE,   /* no known picture signature: an HTML error page, garbage */
    IMAGE_UNSUPPORTED, /* a picture, but not JPEG or PNG (GIF, WebP, ...) */
    IMAGE_CORRUPT,     /* JPEG or PNG that does not parse, is truncated or lies about its size */
    IMAGE_TOO_LARGE,   /* more bytes than the decoder can address (2 GiB) */
    IMAGE_NOMEM,       /* out of memory: worth one retry, on a less loaded worker */
    IMAGE_TOO_MANY_PIXELS, /* the header declares more pixels than the decoder takes */
    IMAGE_TOO_MANY_SCANS,  /* a progressive JPEG with more scans than image_limits allow */
    IMAGE_BUDGET,          /* decoding ran over its CPU time or working memory budget */
    IMAGE_INFLATE_BOMB,    /* PNG data inflating to more than its declared size needs */
};

/* Costs a picture may incur beyond its pixels; zero fields mean no limit. */
struct image_limits {
    long max_scans;    /* JPEG scans (a baseline file has 1, a progressive one about 10) */
    long cpu_ms;       /* CPU time of the decoding thread */
    size_t max_memory; /* libjpeg's working memory (progressive coefficient buffers) */
};

#define IMAGE_DEFAULT_MAX_SCANS  500
#define IMAGE_DEFAULT_CPU_MS     4000
#define IMAGE_DEFAULT_MAX_MEMORY (256UL << 20)

enum image_format { IMAGE_FORMAT_NONE, IMAGE_FORMAT_JPEG, IMAGE_FORMAT_PNG };

struct image_info {
    enum image_format format;
    const char *name;  /* "jpeg", "png"; for IMAGE_UNSUPPORTED the format found ("gif"...) */
    int width, height; /* as the header declares them */
    int channels;      /* stored channels: 1 gray, 2 gray+alpha, 3 colour, 4 colour+alpha */
    int orientation;   /* EXIF orientation, 1..8 (1: upright, 6: turn 90 degrees clockwise) */
    size_t work_bytes; /* decoder memory beyond the pixels (progressive JPEG coefficients) */
};

/* Reads the signature and the header only: no pixel memory, cheap enough to run before any
 * size cap. IMAGE_OK fills info; otherwise err says why (info->name is set for UNSUPPORTED). */
/* The media type of a stored picture by its signature (the formats pixflow writes: PNG, JPEG,
 * WebP), "application/octet-stream" for anything else: what a reader sends it as. */
const char *image_mime(const unsigned char *data, size_t len);

enum image_status image_probe(const unsigned char *data, size_t len, struct image_info *info,
                              char *err, size_t errlen);

/* What a decode may give besides the whole picture at its stored channels (chain.h decides). */
struct image_request {
    int channels; /* 1, 3 or 4 */
    int luma;     /* 1 channel from a YCbCr JPEG: its Y plane as coded, not pixflow_luma() of RGB */
    size_t min_width, min_height; /* upright; a JPEG may be shrunk by 2, 4 or 8 down to this size
                                   * (libjpeg's DCT scaling); 0: whole */
};

/* Which decoder made the pixels and how: a change of path may move a gray level here and there,
 * so stored documents record it (SPEC §6, `decoder`) beside the chain. */
struct image_decoder {
    const char *library; /* "libjpeg-turbo", "stb_image" */
    const char *version; /* the library's, as built */
    const char *path;    /* IMAGE_PATH_* */
    int scale;           /* 1, or 2, 4, 8: a JPEG shrunk in the IDCT */
};

/* The paths: luma, libjpeg asked for gray (a gray JPEG's plane, a YCbCr one's Y as coded); rgb,
 * libjpeg's RGB (CMYK converted), made gray after when asked; pixels, stb_image's PNG at the
 * channels asked for; coefficients, nothing decoded: a JPEG's luma coefficients kept (jpegw.h). */
#define IMAGE_PATH_LUMA         "luma"
#define IMAGE_PATH_RGB          "rgb"
#define IMAGE_PATH_PIXELS       "pixels"
#define IMAGE_PATH_COEFFICIENTS "coefficients"

/* image_decode_limited() as req asks, *dec (may be NULL) told how. A shrunk picture has
 * out->source_width/height set to the upright size of the whole one. */
enum image_status image_decode_traced(const unsigned char *data, size_t len,
                                      const struct image_info *info,
                                      const struct image_request *req,
                                      const struct image_limits *lim, struct pixflow_image *out,
                                      struct image_decoder *dec, char *err, size_t errlen);

/* image_decode_traced() without the decoder's account. */
enum image_status image_decode_request(const unsigned char *data, size_t len,
                                       const struct image_info *info,
                                       const struct image_request *req,
                                       const struct image_limits *lim, struct pixflow_image *out,
                                       char *err, size_t errlen);

/* The decoder of a JPEG's coefficients, read but never decoded (IMAGE_PATH_COEFFICIENTS). */
void image_decoder_coefficients(struct image_decoder *dec);

/* Decodes a probed picture to `channels` (1, 3 or 4) 8-bit samples per pixel, under lim (NULL:
 * the defaults above), turned upright by info->orientation (so out may be info's height x
 * width). Refuses a truncated file (no JPEG EOI after the scans, no PNG IEND, a bad CRC on a
 * critical PNG chunk), PNG data inflating past the declared size (before inflating it for real)
 * and a result whose size differs from the header. On IMAGE_OK, out->pixels is malloc'd (free()
 * it, or hand it on), tightly packed, flagged PIXFLOW_IMAGE_WRITABLE. Safe to call from many
 * threads at once: libjpeg state is per call, and stb_image (PNG) is compiled here with private
 * (static) functions whose process-wide flags nothing can set, and with its failure reason in
 * thread-local storage. */
enum image_status image_decode_limited(const unsigned char *data, size_t len,
                                       const struct image_info *info, int channels,
                                       const struct image_limits *lim, struct pixflow_image *out,
                                       char *err, size_t errlen);

/* image_decode_limited() with the default limits. */
enum image_status image_decode(const unsigned char *data, size_t len, const struct image_info *info,
                               int channels, struct pixflow_image *out, char *err, size_t errlen);

/* Pixel and stb_image bytes the decoder has asked the allocator for on the calling thread since
 * it started (libjpeg's own small pools are not counted): lets tests prove that a refused header
 * never reached the pixel decoder. */
size_t image_decoder_bytes(void);

#endif
