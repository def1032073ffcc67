/* hostile.c -- builds the hostile pictures: every one is legal up to its single defect, so it is
 * that defect the decoder meets (a bomb that is also a bad CRC would test the CRC check). */
#include "hostile.h"

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <zlib.h>

static int hostile_big;

static void hostile_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* The EXIF APP1 payload: "Exif\0\0", a little-endian TIFF header and IFD0 with one entry. */
static void hostile_exif(unsigned char *e, int orientation)
{
    static const unsigned char head[] = {'E', 'x', 'i', 'f', 0,    0,    'I', 'I', 42, 0, 8, 0,
                                         0,   0,   1,   0,   0x12, 0x01, 3,   0,   1,  0, 0, 0};

    memcpy(e, head, sizeof(head));
    e[sizeof(head)] = (unsigned char)orientation;
    memset(e + sizeof(head) + 1, 0, 7); /* rest of the value, next-IFD offset 0 */
}

unsigned char *hostile_jpeg(int w, int h, int comps, int refine, int orientation, size_t *len)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    jpeg_scan_info *scans = NULL;
    unsigned char *row = malloc((size_t)w * (size_t)comps), *out = NULL, exif[32];
    unsigned long outlen = 0;
    int n = 0;

    if (row == NULL)
        return NULL;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &out, &outlen);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = comps == 1 ? JCS_GRAYSCALE : comps == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 85, TRUE);
    if (refine >= 0) {
        int ncomp = c.num_components;

        scans = calloc((size_t)(1 + ncomp * 63 * (1 + refine)), sizeof(*scans));
        if (scans == NULL)
            goto done;
        scans[n].comps_in_scan = ncomp;
        for (int k = 0; k < ncomp; k++)
            scans[n].component_index[k] = k;
        n++; /* DC of all components, Ss = Se = Ah = Al = 0 */
        for (int k = 0; k < ncomp; k++)
            for (int s = 1; s <= 63; s++)
                for (int a = refine; a >= 0; a--, n++) {
                    scans[n].comps_in_scan = 1;
                    scans[n].component_index[0] = k;
                    scans[n].Ss = scans[n].Se = s;
                    scans[n].Ah = a == refine ? 0 : a + 1;
                    scans[n].Al = a;
                }
        c.scan_info = scans;
        c.num_scans = n;
    }
    jpeg_start_compress(&c, TRUE);
    if (orientation > 1) {
        hostile_exif(exif, orientation);
        jpeg_write_marker(&c, JPEG_APP0 + 1, exif, 32);
    }
    while (c.next_scanline < c.image_height) {
        JSAMPROW r[1] = {row};

        for (int x = 0; x < w; x++)
            for (int k = 0; k < comps; k++)
                row[x * comps + k] =
                    (unsigned char)((x * (k + 1) + (int)c.next_scanline * 3) ^ (k * 85));
        jpeg_write_scanlines(&c, r, 1);
    }
    jpeg_finish_compress(&c);
    *len = outlen;
done:
    jpeg_destroy_compress(&c);
    free(scans);
    free(row);
    return out;
}

void hostile_chunk(unsigned char *buf, size_t *len, const char *type, const void *data, size_t n,
                   int bad_crc)
{
    unsigned char *p = buf + *len;

    hostile_be32(p, (uint32_t)n);
    memcpy(p + 4, type, 4);
    if (n > 0)
        memcpy(p + 8, data, n);
    hostile_be32(p + 8 + n, (uint32_t)crc32(0, p + 4, (uInt)(n + 4)) ^ (bad_crc ? 1u : 0u));
    *len += 12 + n;
}

/* One deflate() call with at least 64 KB free in *z, grown as needed. */
static int hostile_deflate(z_stream *s, unsigned char **z, size_t *zcap, int flush)
{
    if (s->total_out + 65536 > *zcap) {
        unsigned char *bigger = realloc(*z, *zcap * 2 + 65536);

        if (bigger == NULL)
            return -1;
        *z = bigger;
        *zcap = *zcap * 2 + 65536;
    }
    s->next_out = *z + s->total_out;
    s->avail_out = (uInt)(*zcap - s->total_out);
    flush = deflate(s, flush);
    return flush == Z_BUF_ERROR ? Z_OK : flush; /* Z_BUF_ERROR: no progress, not fatal */
}

unsigned char *hostile_png(unsigned w, unsigned h, int depth, int color, size_t raw, size_t *len)
{
    static const int samples[7] = {1, 0, 3, 1, 2, 0, 4};
    size_t rowbytes = ((size_t)w * (size_t)samples[color] * (size_t)depth + 7) / 8;
    size_t need = (rowbytes + 1) * h, zcap, chunk = 1 << 20;
    unsigned char *z = NULL, *png = NULL, ihdr[13], *in;
    z_stream s;

    if (raw == 0)
        raw = need;
    in = calloc(1, chunk);
    if (in == NULL)
        return NULL;
    for (size_t i = 0; i < chunk && i < need; i++) /* filter 0 rows of a ramp, then zeros */
        in[i] = i % (rowbytes + 1) == 0 ? 0 : (unsigned char)(i * 7);
    memset(&s, 0, sizeof(s));
    deflateInit(&s, 9);
    zcap = deflateBound(&s, (uLong)(raw < chunk ? raw : chunk));
    z = malloc(zcap);
    if (z == NULL)
        goto done;
    for (size_t fed = 0; fed < raw || s.avail_in > 0;) {
        if (s.avail_in == 0) {
            size_t n = raw - fed < chunk ? raw - fed : chunk;

            if (fed > 0)
                memset(in, 0, chunk); /* past the first megabyte, the bomb is zeros */
            s.next_in = in;
            s.avail_in = (uInt)n;
            fed += n;
        }
        if (hostile_deflate(&s, &z, &zcap, Z_NO_FLUSH) < 0)
            goto done;
    }
    for (int r = Z_OK; r != Z_STREAM_END;) {
        r = hostile_deflate(&s, &z, &zcap, Z_FINISH);
        if (r < 0)
            goto done;
    }
    png = malloc(8 + 25 + 12 + s.total_out + 12);
    if (png == NULL)
        goto done;
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    *len = 8;
    hostile_be32(ihdr, w);
    hostile_be32(ihdr + 4, h);
    ihdr[8] = (unsigned char)depth;
    ihdr[9] = (unsigned char)color;
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    hostile_chunk(png, len, "IHDR", ihdr, 13, 0);
    hostile_chunk(png, len, "IDAT", z, s.total_out, 0);
    hostile_chunk(png, len, "IEND", NULL, 0, 0);
done:
    deflateEnd(&s);
    free(z);
    free(in);
    return png;
}

static unsigned char *make_baseline(size_t *len)
{
    return hostile_jpeg(640, 480, 3, -1, 1, len);
}

static unsigned char *make_exif6(size_t *len)
{
    return hostile_jpeg(64, 32, 3, -1, 6, len);
}

static unsigned char *make_cmyk(size_t *len)
{
    return hostile_jpeg(64, 48, 4, -1, 1, len);
}

static unsigned char *make_png16(size_t *len)
{
    return hostile_png(40, 30, 16, 2, 0, len);
}

static unsigned char *make_gif(size_t *len)
{
    static const unsigned char gif[] = "GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00"
                                       "\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01"
                                       "\x00\x01\x00\x00\x02\x02D\x01\x00;";
    unsigned char *d = malloc(sizeof(gif) - 1);

    if (d != NULL)
        memcpy(d, gif, sizeof(gif) - 1);
    *len = sizeof(gif) - 1;
    return d;
}

static unsigned char *make_garbage(size_t *len)
{
    unsigned char *d = malloc(4096);
    uint32_t x = 2463534242u;

    for (size_t i = 0; d != NULL && i < 4096; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        d[i] = (unsigned char)x;
    }
    *len = 4096;
    return d;
}

static unsigned char *make_truncated(size_t *len)
{
    unsigned char *d = hostile_jpeg(320, 240, 3, -1, 1, len);

    *len = *len * 2 / 3;
    return d;
}

static unsigned char *make_huge_header(size_t *len)
{
    unsigned char *d = hostile_png(8, 8, 8, 0, 0, len);

    if (d != NULL) { /* 60000 x 60000 in an IHDR with a valid CRC */
        hostile_be32(d + 16, 60000);
        hostile_be32(d + 20, 60000);
        hostile_be32(d + 29, (uint32_t)crc32(0, d + 12, 17));
    }
    return d;
}

static unsigned char *make_inflate_bomb(size_t *len)
{
    return hostile_png(1, 1, 8, 2, hostile_big ? (size_t)700 << 20 : (size_t)8 << 20, len);
}

static unsigned char *make_many_scans(size_t *len)
{
    return hostile_jpeg(hostile_big ? 1000 : 64, hostile_big ? 1000 : 64, 3, 3, 1, len);
}

static unsigned char *make_slow_scans(size_t *len)
{
    return hostile_jpeg(hostile_big ? 5000 : 2000, hostile_big ? 5000 : 2000, 3, 1, 1, len);
}

static const struct hostile_case hostile_all[] = {
    {"ok_baseline.jpg", NULL, "a plain baseline JPEG", make_baseline},
    {"ok_exif6.jpg", NULL, "64x32 JPEG to turn 90 degrees clockwise (EXIF 6)", make_exif6},
    {"ok_cmyk.jpg", NULL, "CMYK JPEG with an Adobe marker", make_cmyk},
    {"ok_rgb16.png", NULL, "16-bit RGB PNG", make_png16},
    {"gif.gif", "unsupported_format", "a 1x1 GIF", make_gif},
    {"garbage.bin", "not_image", "4 KB of noise", make_garbage},
    {"truncated.jpg", "corrupt_image", "a JPEG cut at two thirds", make_truncated},
    {"huge_header.png", "too_many_pixels", "a PNG whose header says 60000x60000", make_huge_header},
    {"inflate_bomb.png", "inflate_bomb", "a 1x1 PNG whose data inflates to 8 MiB (big: 700 MiB)",
     make_inflate_bomb},
    {"many_scans.jpg", "too_many_scans", "a legal progressive JPEG of 757 scans", make_many_scans},
    {"slow_scans.jpg", "decode_budget", "a legal 379-scan progressive JPEG, over a CPU budget",
     make_slow_scans},
    {NULL, NULL, NULL, NULL},
};

const struct hostile_case *hostile_cases(int big)
{
    hostile_big = big;
    return hostile_all;
}
