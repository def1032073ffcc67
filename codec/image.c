/* image.c -- picture sniffing, header checks and decoding: JPEG through libjpeg-turbo (jpeg.c),
 * PNG over stb_image. Headers are parsed here, not by a decoder, so that a picture over a limit
 * is named for the limit (a 60000 x 60000 PNG is too big, not corrupt) before any decoder runs.
 * stb_image is compiled here and only here, restricted to PNG (no GIF, no flip-on-load, no
 * stdio) and with STB_IMAGE_STATIC: its functions, and so its process-wide settings (flip,
 * unpremultiply, iPhone PNG), are private to this file, which never changes them. Its last
 * failure reason is thread-local (C11 _Thread_local, checked below), so pool threads can decode
 * concurrently. stb_image inflates a PNG's data into a buffer it grows without bound, so the data
 * is first inflated here into a small scratch buffer, counting, and refused as a bomb once it
 * passes what the declared size needs: one more inflate pass, bounded by the declared size.
 * Beyond what the decoders check, truncated files are refused: decoders pad a short file with
 * gray, which must not be stored as if it were whole. */
#include "image.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libdeflate.h>
#include <zlib.h>

#include "jpeg.h"

static _Thread_local size_t image_tls_bytes;

static void *image_alloc(size_t n)
{
    image_tls_bytes += n;
    return malloc(n);
}

static void *image_stb_realloc(void *p, size_t n)
{
    image_tls_bytes += n;
    return realloc(p, n);
}

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_PNG
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_MALLOC(n)     image_alloc(n)
#define STBI_REALLOC(p, n) image_stb_realloc(p, n)
#define STBI_FREE(p)       free(p)
#include "stb_begin.h"
#include <stb/stb_image.h>
#include "stb_end.h"
#ifndef STBI_THREAD_LOCAL
#error "stb_image without thread-local failure reasons is not safe on the worker's thread pool"
#endif

static const unsigned char image_png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

size_t image_decoder_bytes(void)
{
    return image_tls_bytes;
}

static int image_starts(const unsigned char *d, size_t len, size_t at, const char *magic, size_t n)
{
    return len >= at + n && memcmp(d + at, magic, n) == 0;
}

const char *image_mime(const unsigned char *d, size_t len)
{
    if (image_starts(d, len, 0, (const char *)image_png_sig, sizeof(image_png_sig)))
        return "image/png";
    if (image_starts(d, len, 0, "\xff\xd8\xff", 3))
        return "image/jpeg";
    if (image_starts(d, len, 0, "RIFF", 4) && image_starts(d, len, 8, "WEBP", 4))
        return "image/webp";
    return "application/octet-stream";
}

/* Name of a picture format this decoder does not take, or NULL when d looks like no picture. */
static const char *image_other_format(const unsigned char *d, size_t len)
{
    static const char *const isobmff[] = {"avif", "avis", "heic", "heix", "mif1", "msf1"};

    if (image_starts(d, len, 0, "GIF87a", 6) || image_starts(d, len, 0, "GIF89a", 6))
        return "gif";
    if (image_starts(d, len, 0, "RIFF", 4) && image_starts(d, len, 8, "WEBP", 4))
        return "webp";
    if (image_starts(d, len, 0, "II*\0", 4) || image_starts(d, len, 0, "MM\0*", 4))
        return "tiff";
    if (image_starts(d, len, 0, "BM", 2) && len >= 18 && d[15] == 0 && d[16] == 0 && d[17] == 0 &&
        (d[14] == 12 || d[14] == 40 || d[14] == 52 || d[14] == 56 || d[14] == 108 || d[14] == 124))
        return "bmp";
    if (image_starts(d, len, 4, "ftyp", 4)) {
        for (size_t i = 0; i < sizeof(isobmff) / sizeof(isobmff[0]); i++)
            if (image_starts(d, len, 8, isobmff[i], 4))
                return i < 2 ? "avif" : "heif";
    }
    if (image_starts(d, len, 0, "\xff\x0a", 2) || image_starts(d, len, 4, "JXL \r\n\x87\n", 8))
        return "jxl";
    if (image_starts(d, len, 0, "\0\0\0\x0cjP  ", 8))
        return "jp2";
    if (image_starts(d, len, 0, "qoif", 4))
        return "qoi";
    if (image_starts(d, len, 0, "8BPS", 4))
        return "psd";
    if (image_starts(d, len, 0, "\0\0\1\0", 4) && len >= 6 && (d[4] | d[5]) != 0)
        return "ico";
    return NULL;
}

static uint32_t image_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Samples per pixel of a PNG colour type, 0 for an invalid type. */
static int image_png_samples(unsigned color)
{
    return color == 0 ? 1 : color == 2 ? 3 : color == 3 ? 1 : color == 4 ? 2 : color == 6 ? 4 : 0;
}

/* The IHDR, read by hand: size, depth, colour type and interlace, checked as the PNG spec says.
 * Stored channels follow stb_image: a palette is colour, plus alpha with a tRNS chunk. */
static enum image_status image_png_probe(const unsigned char *d, size_t len,
                                         struct image_info *info, char *err, size_t errlen)
{
    const unsigned char *h = d + 16;
    uint32_t w, hh;
    unsigned depth, color;
    size_t i;

    if (len < 33 || image_be32(d + 8) != 13 || memcmp(d + 12, "IHDR", 4) != 0) {
        snprintf(err, errlen, "png header: no IHDR chunk first");
        return IMAGE_CORRUPT;
    }
    w = image_be32(h);
    hh = image_be32(h + 4);
    depth = h[8];
    color = h[9];
    if (w < 1 || hh < 1 || w > 0x7fffffffu || hh > 0x7fffffffu || image_png_samples(color) == 0 ||
        !(depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16) ||
        (color == 3 && depth > 8) || ((color & 3) != 3 && color != 0 && depth < 8) || h[10] != 0 ||
        h[11] != 0 || h[12] > 1) {
        snprintf(err, errlen, "png header: %ux%u, depth %u, colour type %u, interlace %u", w, hh,
                 depth, color, h[12]);
        return IMAGE_CORRUPT;
    }
    info->width = (int)w;
    info->height = (int)hh;
    info->channels = color == 3 ? 3 : image_png_samples(color);
    for (i = 33; color == 3 && i + 8 <= len;) {
        uint32_t n = image_be32(d + i);

        if (memcmp(d + i + 4, "IDAT", 4) == 0 || n > len - i - 8)
            break;
        if (memcmp(d + i + 4, "tRNS", 4) == 0)
            info->channels = 4;
        i += 12 + (size_t)n;
    }
    return IMAGE_OK;
}

enum image_status image_probe(const unsigned char *data, size_t len, struct image_info *info,
                              char *err, size_t errlen)
{
    memset(info, 0, sizeof(*info));
    if (image_starts(data, len, 0, "\xff\xd8\xff", 3)) {
        info->format = IMAGE_FORMAT_JPEG;
        info->name = "jpeg";
    } else if (image_starts(data, len, 0, (const char *)image_png_sig, sizeof(image_png_sig))) {
        info->format = IMAGE_FORMAT_PNG;
        info->name = "png";
    } else {
        info->name = image_other_format(data, len);
        if (info->name != NULL) {
            snprintf(err, errlen, "%s pictures are not supported (JPEG and PNG are)", info->name);
            return IMAGE_UNSUPPORTED;
        }
        snprintf(err, errlen, "no picture signature in %zu bytes", len);
        return IMAGE_NOT_IMAGE;
    }
    if (len > INT_MAX) {
        snprintf(err, errlen, "%zu bytes, the decoder stops at %d", len, INT_MAX);
        return IMAGE_TOO_LARGE;
    }
    info->orientation = 1;
    if (info->format == IMAGE_FORMAT_JPEG)
        return jpeg_probe(data, len, info, err, errlen);
    return image_png_probe(data, len, info, err, errlen);
}

/* Does the chunk list reach IEND, with a correct CRC on every critical chunk? */
static int image_png_complete(const unsigned char *d, size_t len, char *err, size_t errlen)
{
    size_t i = sizeof(image_png_sig);

    while (i + 12 <= len) {
        uint32_t n = image_be32(d + i);
        const unsigned char *type = d + i + 4;

        if (n > 0x7fffffffu || len - i - 12 < n)
            break;
        /* Ancillary chunks (lowercase first letter) may be skipped by decoders, so a bad CRC
         * there does not spoil the picture; critical ones carry the pixels. */
        if (!(type[0] & 0x20) &&
            libdeflate_crc32(0, type, (size_t)n + 4) != image_be32(type + 4 + n)) {
            snprintf(err, errlen, "png: bad CRC on chunk %.4s", (const char *)type);
            return 0;
        }
        if (memcmp(type, "IEND", 4) == 0)
            return 1;
        i += 12 + (size_t)n;
    }
    snprintf(err, errlen, "png: truncated (no IEND chunk in %zu bytes)", len);
    return 0;
}

/* Bytes of filtered scanlines a PNG of this header inflates to: a filter byte per row, per
 * Adam7 pass when interlaced. */
static unsigned long long image_png_raw_size(const unsigned char *ihdr)
{
    static const int ox[7] = {0, 4, 0, 2, 0, 1, 0}, oy[7] = {0, 0, 4, 0, 2, 0, 1};
    static const int dx[7] = {8, 8, 4, 4, 2, 2, 1}, dy[7] = {8, 8, 8, 4, 4, 2, 2};
    unsigned long long w = image_be32(ihdr), h = image_be32(ihdr + 4), total = 0;
    unsigned bits = (unsigned)ihdr[8] * (unsigned)image_png_samples(ihdr[9]);

    if (ihdr[12] == 0)
        return h * (1 + (w * bits + 7) / 8);
    for (int p = 0; p < 7; p++) {
        unsigned long long pw = (w + dx[p] - 1 - ox[p]) / dx[p],
                           ph = (h + dy[p] - 1 - oy[p]) / dy[p];

        if (w > (unsigned long long)ox[p] && h > (unsigned long long)oy[p])
            total += ph * (1 + (pw * bits + 7) / 8);
    }
    return total;
}

/* Inflates the IDAT chunks into a scratch buffer, counting: IMAGE_INFLATE_BOMB as soon as the
 * data passes what the header needs. Damaged streams are left for stb_image to name. */
static enum image_status image_png_bounded(const unsigned char *d, size_t len, char *err,
                                           size_t errlen)
{
    unsigned long long want = image_png_raw_size(d + 16), got = 0;
    unsigned char scratch[16384];
    z_stream z;
    int zr = Z_OK;

    memset(&z, 0, sizeof(z));
    if (inflateInit(&z) != Z_OK) {
        snprintf(err, errlen, "png: out of memory for the inflate check");
        return IMAGE_NOMEM;
    }
    for (size_t i = sizeof(image_png_sig); i + 12 <= len && zr == Z_OK;) {
        uint32_t n = image_be32(d + i);

        if (n > len - i - 12)
            break;
        if (memcmp(d + i + 4, "IDAT", 4) == 0) {
            z.next_in = (unsigned char *)(uintptr_t)(d + i + 8);
            z.avail_in = n;
            while (z.avail_in > 0 && zr == Z_OK) {
                z.next_out = scratch;
                z.avail_out = sizeof(scratch);
                zr = inflate(&z, Z_NO_FLUSH);
                got += sizeof(scratch) - z.avail_out;
                if (got > want) {
                    inflateEnd(&z);
                    snprintf(err, errlen,
                             "png: data inflates past the %llu bytes a %ux%u picture needs", want,
                             image_be32(d + 16), image_be32(d + 20));
                    return IMAGE_INFLATE_BOMB;
                }
                if (zr == Z_BUF_ERROR && z.avail_out > 0)
                    zr = Z_OK; /* needs the next chunk */
            }
        }
        i += 12 + (size_t)n;
    }
    inflateEnd(&z);
    return IMAGE_OK;
}

/* Pixel (x, y) of the upright picture comes from the stored one at (sx, sy). EXIF numbers the
 * eight mirrorings and quarter turns; 5..8 swap the sides. */
static void image_orient_source(int o, size_t x, size_t y, size_t w, size_t h, size_t *sx,
                                size_t *sy)
{
    switch (o) {
    case 2:
        *sx = w - 1 - x;
        *sy = y;
        break;
    case 3:
        *sx = w - 1 - x;
        *sy = h - 1 - y;
        break;
    case 4:
        *sx = x;
        *sy = h - 1 - y;
        break;
    case 5:
        *sx = y;
        *sy = x;
        break;
    case 6:
        *sx = y;
        *sy = h - 1 - x;
        break;
    case 7:
        *sx = w - 1 - y;
        *sy = h - 1 - x;
        break;
    case 8:
        *sx = w - 1 - y;
        *sy = x;
        break;
    default:
        *sx = x;
        *sy = y;
        break;
    }
}

static enum image_status image_orient(struct pixflow_image *im, int o, char *err, size_t errlen)
{
    size_t w = im->width, h = im->height, c = im->channels, ow = o >= 5 ? h : w,
           oh = o >= 5 ? w : h;
    unsigned char *d;

    if (o <= 1 || o > 8)
        return IMAGE_OK;
    d = image_alloc(w * h * c);
    if (d == NULL) {
        snprintf(err, errlen, "out of memory turning the picture upright");
        return IMAGE_NOMEM;
    }
    for (size_t y = 0; y < oh; y++)
        for (size_t x = 0; x < ow; x++) {
            size_t sx, sy;

            image_orient_source(o, x, y, w, h, &sx, &sy);
            memcpy(d + (y * ow + x) * c, im->pixels + sy * im->stride + sx * c, c);
        }
    free(im->pixels);
    im->pixels = d;
    im->width = (uint32_t)ow;
    im->height = (uint32_t)oh;
    im->stride = ow * c;
    if (o >= 5) {
        uint32_t sw = im->source_width;

        im->source_width = im->source_height;
        im->source_height = sw;
    }
    return IMAGE_OK;
}

static enum image_status image_png_decode(const unsigned char *data, size_t len,
                                          const struct image_info *info, int channels,
                                          struct pixflow_image *out, char *err, size_t errlen)
{
    enum image_status st;
    unsigned char *pixels;
    int w, h, n;

    if (!image_png_complete(data, len, err, errlen))
        return IMAGE_CORRUPT;
    st = image_png_bounded(data, len, err, errlen);
    if (st != IMAGE_OK)
        return st;
    pixels = stbi_load_from_memory(data, (int)len, &w, &h, &n, channels);
    if (pixels == NULL) {
        const char *why = stbi_failure_reason();

        snprintf(err, errlen, "%s: %s", info->name, why != NULL ? why : "decoding failed");
        return why != NULL && strcmp(why, "outofmem") == 0 ? IMAGE_NOMEM : IMAGE_CORRUPT;
    }
    if (w != info->width || h != info->height) {
        snprintf(err, errlen, "%s: decoded %dx%d, the header said %dx%d", info->name, w, h,
                 info->width, info->height);
        stbi_image_free(pixels);
        return IMAGE_CORRUPT;
    }
    out->width = (uint32_t)w;
    out->height = (uint32_t)h;
    out->channels = (uint32_t)channels;
    out->stride = (size_t)w * (size_t)channels;
    out->flags = PIXFLOW_IMAGE_WRITABLE;
    out->pixels = pixels;
    return IMAGE_OK;
}

void image_decoder_coefficients(struct image_decoder *dec)
{
    dec->library = JPEG_LIBRARY;
    dec->version = JPEG_LIBRARY_VERSION;
    dec->path = IMAGE_PATH_COEFFICIENTS;
    dec->scale = 1;
}

enum image_status image_decode_traced(const unsigned char *data, size_t len,
                                      const struct image_info *info,
                                      const struct image_request *req,
                                      const struct image_limits *lim, struct pixflow_image *out,
                                      struct image_decoder *dec, char *err, size_t errlen)
{
    static const struct image_limits defaults = {IMAGE_DEFAULT_MAX_SCANS, IMAGE_DEFAULT_CPU_MS,
                                                 IMAGE_DEFAULT_MAX_MEMORY};
    /* IMAGE_STB_VERSION: from stb_image.h's first line (codec/CMakeLists.txt) */
    const struct image_decoder stb = {"stb_image", IMAGE_STB_VERSION, IMAGE_PATH_PIXELS, 1};
    struct image_decoder used = stb;
    int channels = req->channels;
    enum image_status st;

    memset(out, 0, sizeof(*out));
    if (channels != 1 && channels != 3 && channels != 4) {
        snprintf(err, errlen, "cannot decode to %d channels", channels);
        return IMAGE_CORRUPT;
    }
    if (info->format == IMAGE_FORMAT_JPEG)
        st = jpeg_decode(data, len, info, req, lim != NULL ? lim : &defaults, image_alloc, out,
                         &used, err, errlen);
    else
        st = image_png_decode(data, len, info, channels, out, err, errlen);
    if (st == IMAGE_OK)
        st = image_orient(out, info->orientation, err, errlen);
    if (st != IMAGE_OK) {
        free(out->pixels);
        memset(out, 0, sizeof(*out));
    } else if (dec != NULL) {
        *dec = used;
    }
    return st;
}

enum image_status image_decode_request(const unsigned char *data, size_t len,
                                       const struct image_info *info,
                                       const struct image_request *req,
                                       const struct image_limits *lim, struct pixflow_image *out,
                                       char *err, size_t errlen)
{
    return image_decode_traced(data, len, info, req, lim, out, NULL, err, errlen);
}

enum image_status image_decode_limited(const unsigned char *data, size_t len,
                                       const struct image_info *info, int channels,
                                       const struct image_limits *lim, struct pixflow_image *out,
                                       char *err, size_t errlen)
{
    const struct image_request whole = {channels, 0, 0, 0};

    return image_decode_request(data, len, info, &whole, lim, out, err, errlen);
}

enum image_status image_decode(const unsigned char *data, size_t len, const struct image_info *info,
                               int channels, struct pixflow_image *out, char *err, size_t errlen)
{
    return image_decode_limited(data, len, info, channels, NULL, out, err, errlen);
}
