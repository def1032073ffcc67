/* jpeg.c -- JPEG through libjpeg-turbo, with every cost bounded before or while it is paid.
 * A JPEG's cost is not its size: a progressive file of a few MB may hold hundreds of thousands of
 * scans, each a pass over the whole coefficient buffer. So, in order: the scans are counted on the
 * raw markers before libjpeg sees the file; libjpeg's working memory (the progressive coefficient
 * buffers) is capped through max_memory_to_use, which with no backing store makes it fail instead
 * of allocating; and a progress monitor checks the thread's CPU time while decoding, so no
 * picture holds a pool thread longer than its budget. libjpeg reports errors through longjmp; the
 * handler below keeps the message on the caller's stack, so threads never share one. */
#include "jpeg.h"

#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jerror.h>

void jpeg_guard_fail(j_common_ptr c, enum image_status st, const char *msg)
{
    struct jpeg_guard *g = (struct jpeg_guard *)c->err;

    g->status = st;
    snprintf(g->msg, sizeof(g->msg), "%s", msg);
    longjmp(g->jump, 1);
}

static void jpeg_on_error(j_common_ptr c)
{
    char msg[JMSG_LENGTH_MAX];
    int code = c->err->msg_code;

    (*c->err->format_message)(c, msg);
    jpeg_guard_fail(c,
                    code == JERR_OUT_OF_MEMORY      ? IMAGE_NOMEM
                    : code == JERR_NO_BACKING_STORE ? IMAGE_BUDGET
                                                    : IMAGE_CORRUPT,
                    code == JERR_NO_BACKING_STORE ? "needs more working memory than allowed" : msg);
}

/* Warnings are how libjpeg reports damaged entropy-coded data (it then fills in gray): refused,
 * like truncation. Stray bytes between markers are harmless and common, so they pass. */
static void jpeg_on_message(j_common_ptr c, int level)
{
    char msg[JMSG_LENGTH_MAX];

    if (level >= 0 || c->err->msg_code == JWRN_EXTRANEOUS_DATA)
        return;
    (*c->err->format_message)(c, msg);
    jpeg_guard_fail(c, IMAGE_CORRUPT, msg);
}

static long jpeg_cpu_ms_since(const struct timespec *t0)
{
    struct timespec now;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return (long)(now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Called by libjpeg between iMCU rows and scans: often enough to stop within milliseconds. */
static void jpeg_on_progress(j_common_ptr c)
{
    struct jpeg_guard *g = (struct jpeg_guard *)c->err;
    char msg[96];

    if (g->lim->cpu_ms > 0 && jpeg_cpu_ms_since(&g->cpu_start) > g->lim->cpu_ms) {
        snprintf(msg, sizeof(msg), "over the %ld ms CPU budget", g->lim->cpu_ms);
        jpeg_guard_fail(c, IMAGE_BUDGET, msg);
    }
    if (!c->is_decompressor)
        return;
    if (g->lim->max_scans > 0 && ((j_decompress_ptr)c)->input_scan_number > g->lim->max_scans) {
        snprintf(msg, sizeof(msg), "more than %ld scans", g->lim->max_scans);
        jpeg_guard_fail(c, IMAGE_TOO_MANY_SCANS, msg);
    }
}

struct jpeg_error_mgr *jpeg_guard_init(struct jpeg_guard *g, const struct image_limits *lim)
{
    memset(g, 0, sizeof(*g));
    jpeg_std_error(&g->pub);
    g->pub.error_exit = jpeg_on_error;
    g->pub.emit_message = jpeg_on_message;
    g->progress.progress_monitor = jpeg_on_progress;
    g->lim = lim;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &g->cpu_start);
    return &g->pub;
}

long jpeg_count_scans(const unsigned char *d, size_t len)
{
    size_t i = 2; /* after SOI */
    long scans = 0;

    while (i + 1 < len) {
        unsigned m;

        if (d[i] != 0xff)
            return -1;
        m = d[i + 1];
        if (m == 0xff) { /* fill byte */
            i++;
            continue;
        }
        if (m == 0xd9)
            return scans;
        if (m == 0x01 || (m >= 0xd0 && m <= 0xd7)) {
            i += 2;
            continue;
        }
        if (i + 4 > len)
            return -1;
        i += 2 + (((size_t)d[i + 2] << 8) | d[i + 3]);
        if (m != 0xda)
            continue;
        scans++;
        for (;;) { /* entropy-coded data up to the next real marker */
            const unsigned char *ff = i < len ? memchr(d + i, 0xff, len - i) : NULL;

            if (ff == NULL || (size_t)(ff - d) + 1 >= len)
                return -1;
            i = (size_t)(ff - d);
            m = d[i + 1];
            if (m != 0x00 && !(m >= 0xd0 && m <= 0xd7))
                break;
            i += 2;
        }
    }
    return -1;
}

enum image_status jpeg_check_scans(const unsigned char *data, size_t len,
                                   const struct image_limits *lim, char *err, size_t errlen)
{
    long scans = jpeg_count_scans(data, len);

    if (scans < 0) {
        snprintf(err, errlen, "jpeg: truncated (no end-of-image marker after the scans)");
        return IMAGE_CORRUPT;
    }
    if (lim->max_scans > 0 && scans > lim->max_scans) {
        snprintf(err, errlen, "jpeg: %ld scans, over the %ld limit", scans, lim->max_scans);
        return IMAGE_TOO_MANY_SCANS;
    }
    return IMAGE_OK;
}

static unsigned jpeg_u16(const unsigned char *p, int le)
{
    return le ? (unsigned)p[0] | (unsigned)p[1] << 8 : (unsigned)p[0] << 8 | p[1];
}

static unsigned long jpeg_u32(const unsigned char *p, int le)
{
    return le ? (unsigned long)jpeg_u16(p, 1) | (unsigned long)jpeg_u16(p + 2, 1) << 16
              : (unsigned long)jpeg_u16(p, 0) << 16 | jpeg_u16(p + 2, 0);
}

/* The Orientation tag (0x0112) of IFD0 in an APP1 "Exif" segment; 1 when absent or invalid. */
static int jpeg_exif_orientation(const unsigned char *d, size_t n)
{
    const unsigned char *t = d + 6;
    size_t tn, ifd;
    unsigned count;
    int le;

    if (n < 6 + 8 || memcmp(d, "Exif\0\0", 6) != 0)
        return 1;
    tn = n - 6;
    if (memcmp(t, "II*\0", 4) == 0)
        le = 1;
    else if (memcmp(t, "MM\0*", 4) == 0)
        le = 0;
    else
        return 1;
    ifd = jpeg_u32(t + 4, le);
    if (ifd > tn - 2)
        return 1;
    count = jpeg_u16(t + ifd, le);
    for (unsigned i = 0; i < count; i++) {
        size_t e = ifd + 2 + (size_t)i * 12;
        unsigned v;

        if (e + 12 > tn)
            return 1;
        if (jpeg_u16(t + e, le) != 0x0112)
            continue;
        v = jpeg_u16(t + e + 8, le); /* SHORT, count 1: the value sits in the entry */
        return jpeg_u16(t + e + 2, le) == 3 && v >= 1 && v <= 8 ? (int)v : 1;
    }
    return 1;
}

static int jpeg_orientation(const struct jpeg_decompress_struct *c)
{
    for (jpeg_saved_marker_ptr m = c->marker_list; m != NULL; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && jpeg_exif_orientation(m->data, m->data_length) != 1)
            return jpeg_exif_orientation(m->data, m->data_length);
    return 1;
}

/* A progressive picture keeps every DCT coefficient (2 bytes each) until the last scan. */
static size_t jpeg_coefficient_bytes(const struct jpeg_decompress_struct *c)
{
    size_t total = 0;

    if (!c->progressive_mode)
        return 0;
    for (int i = 0; i < c->num_components; i++) {
        const jpeg_component_info *k = &c->comp_info[i];
        size_t bw = ((size_t)c->image_width * k->h_samp_factor + 8 * c->max_h_samp_factor - 1) /
                    (8 * (size_t)c->max_h_samp_factor);
        size_t bh = ((size_t)c->image_height * k->v_samp_factor + 8 * c->max_v_samp_factor - 1) /
                    (8 * (size_t)c->max_v_samp_factor);

        total += bw * bh * DCTSIZE2 * sizeof(JCOEF);
    }
    return total;
}

/* jpeg_read_header under the guard; the caller has set g->jump. */
void jpeg_open(struct jpeg_decompress_struct *c, const unsigned char *data, size_t len)
{
    jpeg_create_decompress(c);
    jpeg_mem_src(c, data, (unsigned long)len);
    jpeg_save_markers(c, JPEG_APP0 + 1, 0xffff);
    jpeg_read_header(c, TRUE);
}

enum image_status jpeg_probe(const unsigned char *data, size_t len, struct image_info *info,
                             char *err, size_t errlen)
{
    static const struct image_limits none = {0};
    struct jpeg_decompress_struct c;
    struct jpeg_guard g;

    c.err = jpeg_guard_init(&g, &none);
    if (setjmp(g.jump)) {
        snprintf(err, errlen, "jpeg header: %s", g.msg);
        jpeg_destroy_decompress(&c);
        return g.status;
    }
    jpeg_open(&c, data, len);
    info->width = (int)c.image_width;
    info->height = (int)c.image_height;
    info->channels = c.num_components == 1 ? 1 : 3; /* CMYK is stored as colour */
    info->orientation = jpeg_orientation(&c);
    info->work_bytes = jpeg_coefficient_bytes(&c);
    jpeg_destroy_decompress(&c);
    if (info->width < 1 || info->height < 1) {
        snprintf(err, errlen, "jpeg header: %dx%d", info->width, info->height);
        return IMAGE_CORRUPT;
    }
    return IMAGE_OK;
}

/* What libjpeg is asked for: gray stays gray, colour comes out as RGB(A) and CMYK as CMYK,
 * converted below. A YCbCr picture asked for its luma gives its Y plane as coded: libjpeg then
 * neither converts colour nor upsamples chroma. Otherwise a colour picture asked for one
 * channel is decoded to RGB and made gray with pixflow_luma(), as the chain would. */
static int jpeg_pick_space(struct jpeg_decompress_struct *c, int channels, int luma)
{
    if (c->jpeg_color_space == JCS_CMYK || c->jpeg_color_space == JCS_YCCK) {
        c->out_color_space = JCS_CMYK;
        return 4;
    }
    if (channels == 1 && (c->num_components == 1 ||
                          (luma && c->num_components == 3 && c->jpeg_color_space == JCS_YCbCr))) {
        c->out_color_space = JCS_GRAYSCALE;
        return 1;
    }
    c->out_color_space = channels == 4 ? JCS_EXT_RGBA : JCS_RGB;
    return channels == 4 ? 4 : 3;
}

/* Row of `from` channels (3 RGB, 4 RGBA or inverted Adobe CMYK when cmyk) to `to` channels, in
 * place when to <= from. Inverted CMYK to RGB is R = C * K / 255, as Photoshop writes it. */
static void jpeg_convert_row(unsigned char *s, int from, int cmyk, unsigned char *d, int to,
                             size_t width)
{
    for (size_t x = 0; x < width; x++, s += from, d += to) {
        unsigned r = s[0], g = s[1], b = s[2];

        if (cmyk) {
            r = (r * s[3] + 127) / 255;
            g = (g * s[3] + 127) / 255;
            b = (b * s[3] + 127) / 255;
        }
        if (to == 1) {
            d[0] = pixflow_luma(r, g, b);
            continue;
        }
        d[0] = (unsigned char)r;
        d[1] = (unsigned char)g;
        d[2] = (unsigned char)b;
        if (to == 4)
            d[3] = 255;
    }
}

/* The largest of 1/8, 1/4 and 1/2 (1/1 when none) that keeps the stored picture at least
 * min_w x min_h (given upright, so swapped for orientations that turn it). libjpeg scales in
 * the IDCT, rounding sides up: a 1/8 decode reads one coefficient per block. Not inlined: its
 * loop would then live in jpeg_decode(), across the setjmp(). */
__attribute__((noinline)) static unsigned jpeg_pick_scale(const struct image_info *info,
                                                          const struct image_request *req)
{
    size_t mw = info->orientation >= 5 ? req->min_height : req->min_width;
    size_t mh = info->orientation >= 5 ? req->min_width : req->min_height;

    if (mw == 0 || mh == 0)
        return 1;
    for (unsigned d = 8; d >= 2; d /= 2)
        if (((size_t)info->width + d - 1) / d >= mw && ((size_t)info->height + d - 1) / d >= mh)
            return d;
    return 1;
}

enum image_status jpeg_decode(const unsigned char *data, size_t len, const struct image_info *info,
                              const struct image_request *req, const struct image_limits *lim,
                              void *(*alloc)(size_t), struct pixflow_image *out,
                              struct image_decoder *dec, char *err, size_t errlen)
{
    struct jpeg_decompress_struct c;
    struct jpeg_guard g;
    unsigned char *volatile pixels = NULL;
    size_t row, w, h;
    int got, cmyk, channels = req->channels;
    unsigned scale = jpeg_pick_scale(info, req);
    enum image_status st = jpeg_check_scans(data, len, lim, err, errlen);

    if (st != IMAGE_OK)
        return st;
    c.err = jpeg_guard_init(&g, lim);
    if (setjmp(g.jump)) {
        snprintf(err, errlen, "jpeg: %s", g.msg);
        jpeg_destroy_decompress(&c);
        free(pixels);
        return g.status;
    }
    jpeg_open(&c, data, len);
    if ((int)c.image_width != info->width || (int)c.image_height != info->height)
        jpeg_guard_fail((j_common_ptr)&c, IMAGE_CORRUPT, "header changed since the probe");
    c.mem->max_memory_to_use = lim->max_memory > 0 ? (long)lim->max_memory : 0;
    c.progress = &g.progress;
    got = jpeg_pick_space(&c, channels, req->luma);
    cmyk = c.out_color_space == JCS_CMYK;
    c.scale_num = 1;
    c.scale_denom = scale;
    jpeg_start_decompress(&c);
    if ((int)c.output_components != got)
        jpeg_guard_fail((j_common_ptr)&c, IMAGE_CORRUPT, "unexpected output components");
    w = c.output_width;
    h = c.output_height;
    /* Rows are decoded at the wider of the two layouts and narrowed in place. */
    row = w * (size_t)(got > channels ? got : channels);
    pixels = alloc(row * h);
    if (pixels == NULL)
        jpeg_guard_fail((j_common_ptr)&c, IMAGE_NOMEM, "out of memory for the pixels");
    while (c.output_scanline < c.output_height) {
        unsigned char *line = pixels + (size_t)c.output_scanline * w * (size_t)channels;
        JSAMPROW rows[1];

        rows[0] = got == channels ? line : pixels + (size_t)c.output_scanline * row;
        jpeg_read_scanlines(&c, rows, 1);
        if (got != channels || cmyk)
            jpeg_convert_row(rows[0], got, cmyk, line, channels, w);
    }
    jpeg_finish_decompress(&c);
    jpeg_destroy_decompress(&c);
    out->width = (uint32_t)w;
    out->height = (uint32_t)h;
    if (scale > 1) {
        out->source_width = (uint32_t)info->width;
        out->source_height = (uint32_t)info->height;
    }
    out->channels = (uint32_t)channels;
    out->stride = w * (size_t)channels;
    out->flags = PIXFLOW_IMAGE_WRITABLE;
    out->pixels = pixels;
    dec->library = JPEG_LIBRARY;
    dec->version = JPEG_LIBRARY_VERSION;
    dec->path = got == 1 ? IMAGE_PATH_LUMA : IMAGE_PATH_RGB;
    dec->scale = (int)scale;
    return IMAGE_OK;
}
