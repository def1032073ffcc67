/* image.c -- picture sniffing, header checks and decoding, over stb_image.
 * stb_image is compiled here and only here, restricted to JPEG and PNG (no GIF, no flip-on-load,
 * no stdio) and with STB_IMAGE_STATIC: its functions, and so its process-wide settings (flip,
 * unpremultiply, iPhone PNG), are private to this file, which never changes them. Its last
 * failure reason is thread-local (C11 _Thread_local, checked below), so pool threads can decode
 * concurrently. Its allocations go through a counter so tests can see the decoder untouched.
 * Beyond what stb_image checks, truncated files are refused: stb_image pads a short JPEG with
 * zeros and returns a picture with a gray bottom, which must not be stored as if it were whole. */
#include "image.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libdeflate.h>

static _Thread_local size_t image_tls_bytes;

static void *image_stb_malloc(size_t n)
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
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_MALLOC(n)     image_stb_malloc(n)
#define STBI_REALLOC(p, n) image_stb_realloc(p, n)
#define STBI_FREE(p)       free(p)
#if defined(__GNUC__)
/* GCC reports stb's static prototypes without bodies (GIF, thread flags) at the end of the file,
 * outside any push/pop: leave that one warning off for this file. */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
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

enum image_status image_probe(const unsigned char *data, size_t len, struct image_info *info,
                              char *err, size_t errlen)
{
    int w, h, n;

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
    if (!stbi_info_from_memory(data, (int)len, &w, &h, &n)) {
        snprintf(err, errlen, "%s header: %s", info->name, stbi_failure_reason());
        return strcmp(stbi_failure_reason(), "outofmem") == 0 ? IMAGE_NOMEM : IMAGE_CORRUPT;
    }
    if (w < 1 || h < 1 || n < 1 || n > 4) {
        snprintf(err, errlen, "%s header: %dx%d, %d channels", info->name, w, h, n);
        return IMAGE_CORRUPT;
    }
    info->width = w;
    info->height = h;
    info->channels = n;
    return IMAGE_OK;
}

/* Is there an EOI marker after the last scan? Walks the marker segments and, after each start of
 * scan, the entropy-coded bytes, where 0xff only appears stuffed (ff 00) or as a restart marker. */
static int image_jpeg_complete(const unsigned char *d, size_t len)
{
    size_t i = 2; /* after SOI */

    while (i + 1 < len) {
        unsigned m;

        if (d[i] != 0xff)
            return 0;
        m = d[i + 1];
        if (m == 0xff) { /* fill byte */
            i++;
            continue;
        }
        if (m == 0xd9)
            return 1;
        if (m == 0x01 || (m >= 0xd0 && m <= 0xd7)) {
            i += 2;
            continue;
        }
        if (i + 4 > len)
            return 0;
        i += 2 + (((size_t)d[i + 2] << 8) | d[i + 3]);
        if (m != 0xda)
            continue;
        for (;;) { /* entropy-coded data up to the next real marker */
            const unsigned char *ff = i < len ? memchr(d + i, 0xff, len - i) : NULL;

            if (ff == NULL || (size_t)(ff - d) + 1 >= len)
                return 0;
            i = (size_t)(ff - d);
            m = d[i + 1];
            if (m != 0x00 && !(m >= 0xd0 && m <= 0xd7))
                break;
            i += 2;
        }
    }
    return 0;
}

static uint32_t image_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
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

enum image_status image_decode(const unsigned char *data, size_t len, const struct image_info *info,
                               int channels, struct pixflow_image *out, char *err, size_t errlen)
{
    unsigned char *pixels;
    int w, h, n;

    memset(out, 0, sizeof(*out));
    if (channels != 1 && channels != 3 && channels != 4) {
        snprintf(err, errlen, "cannot decode to %d channels", channels);
        return IMAGE_CORRUPT;
    }
    if (info->format == IMAGE_FORMAT_JPEG && !image_jpeg_complete(data, len)) {
        snprintf(err, errlen, "jpeg: truncated (no end-of-image marker after the scans)");
        return IMAGE_CORRUPT;
    }
    if (info->format == IMAGE_FORMAT_PNG && !image_png_complete(data, len, err, errlen))
        return IMAGE_CORRUPT;
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
