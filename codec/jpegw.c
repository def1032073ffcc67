/* jpegw.c -- JPEG writing: pixels through libjpeg-turbo's compressor, and the gray JPEG of a
 * JPEG made without decoding it. The second is what jpegtran does for -grayscale: the luma
 * component's quantized DCT coefficients are the gray picture, so they are copied as they are
 * (no inverse DCT, no rounding, no second quantization: nothing is lost that the source had)
 * and only the entropy coding is redone, progressive with optimized tables as jpegtran
 * -progressive -optimize writes it, so that the two give the same bytes. */
#include "jpegw.h"

#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "jpeg.h"

/* Where libjpeg's memory destination writes; kept in memory (not registers) across longjmp. */
struct jpegw_dest {
    unsigned char *buf;
    unsigned long len;
};

static enum image_status jpegw_failed(struct jpeg_guard *g, struct jpegw_dest *d, char *err,
                                      size_t errlen)
{
    snprintf(err, errlen, "jpeg writer: %s", g->msg);
    free(d->buf);
    d->buf = NULL;
    return g->status;
}

enum image_status jpegw_encode(const struct pixflow_image *img, int quality, unsigned char **out,
                               size_t *outlen, char *err, size_t errlen)
{
    static const struct image_limits none = {0};
    struct jpeg_compress_struct c;
    struct jpeg_guard g;
    struct jpegw_dest d = {NULL, 0};

    if (img->pixels == NULL || img->width < 1 || img->height < 1 ||
        img->width > JPEG_MAX_DIMENSION || img->height > JPEG_MAX_DIMENSION ||
        (img->channels != 1 && img->channels != 3 && img->channels != 4) || quality < 1 ||
        quality > 100) {
        snprintf(err, errlen, "jpeg writer: cannot encode %ux%u, %u channels, quality %d",
                 (unsigned)img->width, (unsigned)img->height, (unsigned)img->channels, quality);
        return IMAGE_CORRUPT;
    }
    c.err = jpeg_guard_init(&g, &none);
    if (setjmp(g.jump)) {
        jpeg_destroy_compress(&c);
        return jpegw_failed(&g, &d, err, errlen);
    }
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &d.buf, &d.len);
    c.image_width = img->width;
    c.image_height = img->height;
    c.input_components = (int)img->channels;
    c.in_color_space = img->channels == 1   ? JCS_GRAYSCALE
                       : img->channels == 3 ? JCS_RGB
                                            : JCS_EXT_RGBX; /* the fourth byte is skipped */
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    c.optimize_coding = TRUE;
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = img->pixels + (size_t)c.next_scanline * img->stride;

        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    *out = d.buf;
    *outlen = d.len;
    return IMAGE_OK;
}

/* The component layout jpegtran -grayscale accepts (transupp.c, jtransform_adjust_parameters). */
static int jpegw_gray_layout(const struct jpeg_decompress_struct *s)
{
    if (s->jpeg_color_space == JCS_GRAYSCALE && s->num_components == 1)
        return 1;
    return s->jpeg_color_space == JCS_YCbCr && s->num_components == 3 &&
           s->comp_info[0].h_samp_factor == s->max_h_samp_factor &&
           s->comp_info[0].v_samp_factor == s->max_v_samp_factor;
}

int jpegw_gray_possible(const unsigned char *data, size_t len)
{
    static const struct image_limits none = {0};
    struct jpeg_decompress_struct s;
    struct jpeg_guard g;
    int ok;

    s.err = jpeg_guard_init(&g, &none);
    if (setjmp(g.jump)) {
        jpeg_destroy_decompress(&s);
        return 0;
    }
    jpeg_open(&s, data, len);
    ok = jpegw_gray_layout(&s);
    jpeg_destroy_decompress(&s);
    return ok;
}

enum image_status jpegw_gray_coefficients(const unsigned char *data, size_t len,
                                          const struct image_limits *lim, unsigned char **out,
                                          size_t *outlen, char *err, size_t errlen)
{
    struct jpeg_decompress_struct s;
    struct jpeg_compress_struct c;
    struct jpeg_guard g;
    struct jpegw_dest d = {NULL, 0};
    volatile int made = 0;
    jvirt_barray_ptr *coef;
    enum image_status st = jpeg_check_scans(data, len, lim, err, errlen);

    if (st != IMAGE_OK)
        return st;
    s.err = c.err = jpeg_guard_init(&g, lim);
    if (setjmp(g.jump)) {
        if (made)
            jpeg_destroy_compress(&c);
        jpeg_destroy_decompress(&s);
        return jpegw_failed(&g, &d, err, errlen);
    }
    jpeg_create_decompress(&s);
    jpeg_mem_src(&s, data, (unsigned long)len);
    jpeg_save_markers(&s, JPEG_COM, 0xffff); /* jpegtran's default: -copy comments */
    jpeg_read_header(&s, TRUE);
    if (!jpegw_gray_layout(&s))
        jpeg_guard_fail((j_common_ptr)&s, IMAGE_CORRUPT, "no full-resolution luma to keep");
    s.mem->max_memory_to_use = lim->max_memory > 0 ? (long)lim->max_memory : 0;
    s.progress = &g.progress;
    coef = jpeg_read_coefficients(&s);

    jpeg_create_compress(&c);
    made = 1;
    c.progress = &g.progress;
    jpeg_copy_critical_parameters(&s, &c);
    if (s.num_components == 3) { /* as transupp.c: gray, with the luma's own quantization table */
        int q = c.comp_info[0].quant_tbl_no;

        jpeg_set_colorspace(&c, JCS_GRAYSCALE);
        c.comp_info[0].quant_tbl_no = q;
    }
    c.optimize_coding = TRUE;
    jpeg_simple_progression(&c);
    jpeg_mem_dest(&c, &d.buf, &d.len);
    jpeg_write_coefficients(&c, coef);
    for (jpeg_saved_marker_ptr m = s.marker_list; m != NULL; m = m->next)
        jpeg_write_marker(&c, m->marker, m->data, m->data_length);
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    jpeg_finish_decompress(&s);
    jpeg_destroy_decompress(&s);
    *out = d.buf;
    *outlen = d.len;
    return IMAGE_OK;
}
