/* image.c -- picture synthesis and JPEG encoding for the image server.
 * A picture is a colour gradient shaded by three octaves of value noise, a low-frequency tint,
 * a few soft-edged discs and boxes, a vignette and per-pixel grain: smooth areas, edges and
 * sensor-like noise, so compressors downstream see something close to a photograph.
 * Rows are rendered one at a time straight into libjpeg, so memory stays at one row of floats
 * plus libjpeg's own coefficient buffer (progressive mode keeps the whole frame there).
 * Cost, render plus progressive encode on one core at -O2: about 7 ms for 640x480, 50 ms for
 * 1920x1080 and 0.7 s for 5000x5000. */
#include "image.h"

#include <math.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "rng.h"

#define IMAGE_SHAPES_MAX 7

/* Value noise on a lattice of `cell` pixels with `ch` channels; row[] caches the lattice row
 * interpolated for the current y so each pixel costs one lerp per channel. */
struct image_lattice {
    int gw, gh, ch;
    float cell;
    float *v;   /* gw * gh * ch values in 0..1 */
    int *xi;    /* per column: lattice column to the left */
    float *xf;  /* per column: smoothed fraction towards the next column */
    float *row; /* gw * ch, for the current y */
};

struct image_shape {
    int circle;
    float x0, y0, x1, y1; /* box, or centre (x0, y0) and radius x1 for a disc */
    float rgb[3];
    float alpha;
    float soft; /* edge width in pixels */
};

struct image_scene {
    int w, h;
    uint64_t seed;
    float c0[3], c1[3];
    float gdx, gdy, goff; /* gradient position t = x * gdx + y * gdy + goff */
    float contrast;
    float vignette;
    float grain;
    struct image_lattice lo, mid, fine, tint;
    struct image_shape shapes[IMAGE_SHAPES_MAX];
    int nshapes;
    float *acc;  /* 3 * w: the row being composed */
    float *nrow; /* w: the noise value of each pixel of the row */
    float *vx;   /* w: squared normalized distance to the centre along x */
};

static float image_smooth(float t)
{
    return t * t * (3.0f - 2.0f * t);
}

static float image_lerp(float a, float b, float t)
{
    return a + (b - a) * t;
}

static float image_clampf(float v, float lo, float hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static float image_unitf(uint64_t *rng)
{
    return (float)rng_unit(rng);
}

static int image_lattice_init(struct image_lattice *l, int w, int h, float cell, int ch,
                              uint64_t seed)
{
    memset(l, 0, sizeof(*l));
    l->cell = cell;
    l->ch = ch;
    /* +2: the last pixel centre, (w - 0.5) / cell, still has a lattice column to its right */
    l->gw = (int)((float)w / cell) + 2;
    l->gh = (int)((float)h / cell) + 2;
    l->v = malloc((size_t)l->gw * l->gh * ch * sizeof(*l->v));
    l->xi = malloc((size_t)w * sizeof(*l->xi));
    l->xf = malloc((size_t)w * sizeof(*l->xf));
    l->row = malloc((size_t)l->gw * ch * sizeof(*l->row));
    if (l->v == NULL || l->xi == NULL || l->xf == NULL || l->row == NULL)
        return -1;
    for (size_t i = 0; i < (size_t)l->gw * l->gh * ch; i++)
        l->v[i] = (float)(rng_mix64(seed ^ (i * 0x9e3779b97f4a7c15ULL)) >> 40) / 16777216.0f;
    for (int x = 0; x < w; x++) {
        float p = ((float)x + 0.5f) / cell;
        int i = (int)p;

        l->xi[x] = i;
        l->xf[x] = image_smooth(p - (float)i);
    }
    return 0;
}

static void image_lattice_free(struct image_lattice *l)
{
    free(l->v);
    free(l->xi);
    free(l->xf);
    free(l->row);
}

static void image_lattice_row(struct image_lattice *l, int y)
{
    float p = ((float)y + 0.5f) / l->cell;
    int iy = (int)p;
    float f = image_smooth(p - (float)iy);
    const float *a = l->v + (size_t)iy * l->gw * l->ch;
    const float *b = a + (size_t)l->gw * l->ch;

    for (int i = 0; i < l->gw * l->ch; i++)
        l->row[i] = image_lerp(a[i], b[i], f);
}

static float image_lattice_at(const struct image_lattice *l, int x, int c)
{
    const float *r = l->row + (size_t)l->xi[x] * l->ch + c;

    return image_lerp(r[0], r[l->ch], l->xf[x]);
}

/* HSV (all in 0..1) to RGB in 0..255. */
static void image_hsv(float h, float s, float v, float *rgb)
{
    float hh = (h - floorf(h)) * 6.0f;
    int i = (int)hh;
    float f = hh - (float)i;
    float p = v * (1.0f - s), q = v * (1.0f - s * f), t = v * (1.0f - s * (1.0f - f));
    float r, g, b;

    switch (i) {
    case 0:
        r = v, g = t, b = p;
        break;
    case 1:
        r = q, g = v, b = p;
        break;
    case 2:
        r = p, g = v, b = t;
        break;
    case 3:
        r = p, g = q, b = v;
        break;
    case 4:
        r = t, g = p, b = v;
        break;
    default:
        r = v, g = p, b = q;
        break;
    }
    rgb[0] = r * 255.0f;
    rgb[1] = g * 255.0f;
    rgb[2] = b * 255.0f;
}

static void image_shapes_init(struct image_scene *s, uint64_t *rng, float hue)
{
    float scale = (float)(s->w > s->h ? s->w : s->h);

    s->nshapes = 3 + (int)(rng_next(rng) % (IMAGE_SHAPES_MAX - 2));
    for (int i = 0; i < s->nshapes; i++) {
        struct image_shape *sh = &s->shapes[i];
        float cx = image_unitf(rng) * (float)s->w, cy = image_unitf(rng) * (float)s->h;
        float size = (0.04f + 0.22f * image_unitf(rng)) * scale;

        sh->circle = image_unitf(rng) < 0.6f;
        if (sh->circle) {
            sh->x0 = cx, sh->y0 = cy, sh->x1 = size;
        } else {
            float aspect = 0.4f + 1.6f * image_unitf(rng);

            sh->x0 = cx - size * aspect, sh->x1 = cx + size * aspect;
            sh->y0 = cy - size / aspect, sh->y1 = cy + size / aspect;
        }
        image_hsv(hue + 0.5f * (image_unitf(rng) - 0.5f), 0.2f + 0.6f * image_unitf(rng),
                  0.25f + 0.7f * image_unitf(rng), sh->rgb);
        sh->alpha = 0.35f + 0.5f * image_unitf(rng);
        sh->soft = 1.0f + scale * 0.01f * image_unitf(rng) * image_unitf(rng) * 8.0f;
    }
}

static void image_scene_free(struct image_scene *s)
{
    image_lattice_free(&s->lo);
    image_lattice_free(&s->mid);
    image_lattice_free(&s->fine);
    image_lattice_free(&s->tint);
    free(s->acc);
    free(s->nrow);
    free(s->vx);
}

static int image_scene_init(struct image_scene *s, int id, int w, int h)
{
    uint64_t rng = rng_mix64(0x50494353554dULL ^ (uint64_t)id);
    float scale = (float)(w > h ? w : h);
    float hue, angle, cosa, sina, span;

    memset(s, 0, sizeof(*s));
    s->w = w;
    s->h = h;
    /* The scene's look depends on the id only; sizes come in through pixel coordinates. */
    s->seed = rng_mix64(rng ^ ((uint64_t)w << 32) ^ (uint64_t)h);
    hue = image_unitf(&rng);
    image_hsv(hue, 0.25f + 0.5f * image_unitf(&rng), 0.55f + 0.4f * image_unitf(&rng), s->c0);
    image_hsv(hue + 0.35f * (image_unitf(&rng) - 0.5f), 0.3f + 0.6f * image_unitf(&rng),
              0.1f + 0.45f * image_unitf(&rng), s->c1);
    angle = image_unitf(&rng) * 6.2831853f;
    cosa = cosf(angle);
    sina = sinf(angle);
    span = fabsf(cosa) * (float)w + fabsf(sina) * (float)h;
    s->gdx = cosa / span;
    s->gdy = sina / span;
    s->goff = 0.5f - (cosa * (float)w + sina * (float)h) * 0.5f / span;
    s->contrast = 0.5f + 0.7f * image_unitf(&rng);
    s->vignette = 0.15f + 0.45f * image_unitf(&rng);
    s->grain = 3.0f + 5.0f * image_unitf(&rng);
    image_shapes_init(s, &rng, hue);

    s->acc = malloc((size_t)w * 3 * sizeof(*s->acc));
    s->nrow = malloc((size_t)w * sizeof(*s->nrow));
    s->vx = malloc((size_t)w * sizeof(*s->vx));
    if (s->acc == NULL || s->nrow == NULL || s->vx == NULL)
        goto err;
    if (image_lattice_init(&s->lo, w, h, scale / 4.0f + 1.0f, 1, rng_next(&rng)) < 0 ||
        image_lattice_init(&s->mid, w, h, scale / 16.0f + 1.0f, 1, rng_next(&rng)) < 0 ||
        image_lattice_init(&s->fine, w, h, scale / 90.0f + 1.0f, 1, rng_next(&rng)) < 0 ||
        image_lattice_init(&s->tint, w, h, scale / 3.0f + 1.0f, 3, rng_next(&rng)) < 0)
        goto err;
    for (int x = 0; x < w; x++) {
        float d = ((float)x + 0.5f) / (float)w - 0.5f;

        s->vx[x] = d * d;
    }
    return 0;
err:
    image_scene_free(s);
    return -1;
}

/* Blend one shape into the current row, over the pixels it covers. */
static void image_shape_row(struct image_scene *s, const struct image_shape *sh, float yc)
{
    int x0, x1;
    float rowcov = 1.0f;

    if (sh->circle) {
        float outer = sh->x1 + sh->soft, dy = yc - sh->y0;

        if (fabsf(dy) >= outer)
            return;
        float hw = sqrtf(outer * outer - dy * dy);

        x0 = (int)(sh->x0 - hw);
        x1 = (int)(sh->x0 + hw) + 1;
    } else {
        if (yc < sh->y0 - sh->soft || yc > sh->y1 + sh->soft)
            return;
        rowcov = image_clampf(fminf(yc - sh->y0, sh->y1 - yc) / sh->soft + 0.5f, 0.0f, 1.0f);
        x0 = (int)(sh->x0 - sh->soft);
        x1 = (int)(sh->x1 + sh->soft) + 1;
    }
    if (x0 < 0)
        x0 = 0;
    if (x1 > s->w)
        x1 = s->w;
    for (int x = x0; x < x1; x++) {
        float xc = (float)x + 0.5f, cov, light;

        if (sh->circle) {
            float dx = xc - sh->x0, dy = yc - sh->y0;
            float d = sqrtf(dx * dx + dy * dy);

            cov = image_clampf((sh->x1 - d) / sh->soft + 0.5f, 0.0f, 1.0f);
            light = 1.0f - 0.35f * (dx + dy) / (sh->x1 * 1.4142f);
        } else {
            cov = rowcov *
                  image_clampf(fminf(xc - sh->x0, sh->x1 - xc) / sh->soft + 0.5f, 0.0f, 1.0f);
            light = 1.0f - 0.25f * (xc - sh->x0) / (sh->x1 - sh->x0);
        }
        if (cov <= 0.0f)
            continue;

        float a = cov * sh->alpha, shade = light * (0.7f + 0.6f * s->nrow[x]);
        float *px = s->acc + (size_t)x * 3;

        for (int c = 0; c < 3; c++)
            px[c] = image_lerp(px[c], sh->rgb[c] * shade, a);
    }
}

/* Render row y as 8-bit RGB into out (3 * w bytes). */
static void image_scene_row(struct image_scene *s, int y, unsigned char *out)
{
    float yc = (float)y + 0.5f;
    float trow = yc * s->gdy + s->goff;
    float dy = yc / (float)s->h - 0.5f, vy = dy * dy;
    uint32_t g = (uint32_t)rng_mix64(s->seed ^ ((uint64_t)y * 0xd1b54a32d192ed03ULL)) | 1u;

    image_lattice_row(&s->lo, y);
    image_lattice_row(&s->mid, y);
    image_lattice_row(&s->fine, y);
    image_lattice_row(&s->tint, y);
    for (int x = 0; x < s->w; x++) {
        float t = image_clampf(((float)x + 0.5f) * s->gdx + trow, 0.0f, 1.0f);
        float n = 0.55f * image_lattice_at(&s->lo, x, 0) + 0.3f * image_lattice_at(&s->mid, x, 0) +
                  0.15f * image_lattice_at(&s->fine, x, 0);
        float lum = 1.0f + s->contrast * (n - 0.5f);
        float *px = s->acc + (size_t)x * 3;

        s->nrow[x] = n;
        for (int c = 0; c < 3; c++)
            px[c] = image_lerp(s->c0[c], s->c1[c], t) * lum +
                    (image_lattice_at(&s->tint, x, c) - 0.5f) * 60.0f;
    }
    for (int i = 0; i < s->nshapes; i++)
        image_shape_row(s, &s->shapes[i], yc);
    for (int x = 0; x < s->w; x++) {
        float v = 1.0f - s->vignette * 2.0f * (s->vx[x] + vy);
        const float *px = s->acc + (size_t)x * 3;
        float grain;

        /* xorshift32: per-pixel sensor noise, luminance plus a little chroma */
        g ^= g << 13;
        g ^= g >> 17;
        g ^= g << 5;
        grain = ((float)(g & 0xff) - 127.5f) * (s->grain / 127.5f);
        for (int c = 0; c < 3; c++) {
            float chroma = ((float)((g >> (8 + 6 * c)) & 0x3f) - 31.5f) * 0.05f;

            out[x * 3 + c] =
                (unsigned char)image_clampf(px[c] * v + grain + chroma + 0.5f, 0.0f, 255.0f);
        }
    }
}

/* ---- JPEG encoding ---- */

typedef void (*image_row_fn)(void *arg, int y, unsigned char *row);

struct image_err {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
};

/* Growable in-memory destination we own, so an error midway leaks nothing. */
struct image_dest {
    struct jpeg_destination_mgr pub;
    unsigned char *buf;
    size_t cap;
    size_t len;
};

struct image_encoder {
    struct jpeg_compress_struct cinfo;
    struct image_err err;
    struct image_dest dest;
    unsigned char *row;
    int created;
};

static void image_error_exit(j_common_ptr cinfo)
{
    struct image_err *e = (struct image_err *)cinfo->err;

    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jb, 1);
}

static void image_output_message(j_common_ptr cinfo)
{
    (void)cinfo; /* warnings are not worth a line on a test server's stderr */
}

static void image_dest_init(j_compress_ptr cinfo)
{
    struct image_dest *d = (struct image_dest *)cinfo->dest;

    d->buf = malloc(d->cap);
    if (d->buf == NULL)
        ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 1);
    d->pub.next_output_byte = d->buf;
    d->pub.free_in_buffer = d->cap;
}

static boolean image_dest_empty(j_compress_ptr cinfo)
{
    struct image_dest *d = (struct image_dest *)cinfo->dest;
    unsigned char *nb = realloc(d->buf, d->cap * 2);

    if (nb == NULL)
        ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 2);
    d->buf = nb;
    d->pub.next_output_byte = nb + d->cap; /* the whole old buffer is full */
    d->pub.free_in_buffer = d->cap;
    d->cap *= 2;
    return TRUE;
}

static void image_dest_term(j_compress_ptr cinfo)
{
    struct image_dest *d = (struct image_dest *)cinfo->dest;

    d->len = d->cap - d->pub.free_in_buffer;
}

struct image_encode_args {
    int width, height, components, progressive;
    image_row_fn row;
    void *arg;
};

static void image_encoder_free(struct image_encoder *enc)
{
    if (enc->created)
        jpeg_destroy_compress(&enc->cinfo);
    free(enc->dest.buf);
    free(enc->row);
    free(enc);
}

static int image_encode(const struct image_encode_args *a, unsigned char **out, size_t *outlen,
                        char *err, size_t errlen)
{
    /* Everything libjpeg may longjmp over lives behind this pointer, set before setjmp. */
    struct image_encoder *enc = calloc(1, sizeof(*enc));

    if (enc == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    enc->row = malloc((size_t)a->width * a->components);
    if (enc->row == NULL) {
        snprintf(err, errlen, "out of memory");
        image_encoder_free(enc);
        return -1;
    }
    enc->cinfo.err = jpeg_std_error(&enc->err.pub);
    enc->err.pub.error_exit = image_error_exit;
    enc->err.pub.output_message = image_output_message;
    if (setjmp(enc->err.jb)) {
        snprintf(err, errlen, "jpeg: %s", enc->err.msg);
        image_encoder_free(enc);
        return -1;
    }
    jpeg_create_compress(&enc->cinfo);
    enc->created = 1;
    enc->dest.pub.init_destination = image_dest_init;
    enc->dest.pub.empty_output_buffer = image_dest_empty;
    enc->dest.pub.term_destination = image_dest_term;
    enc->dest.cap = (size_t)a->width * a->height / 8 + 4096;
    enc->cinfo.dest = &enc->dest.pub;

    enc->cinfo.image_width = (JDIMENSION)a->width;
    enc->cinfo.image_height = (JDIMENSION)a->height;
    enc->cinfo.input_components = a->components;
    enc->cinfo.in_color_space = a->components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&enc->cinfo);
    jpeg_set_quality(&enc->cinfo, IMAGE_JPEG_QUALITY, TRUE);
    enc->cinfo.optimize_coding = TRUE;
    if (a->progressive)
        jpeg_simple_progression(&enc->cinfo);
    jpeg_start_compress(&enc->cinfo, TRUE);
    while (enc->cinfo.next_scanline < enc->cinfo.image_height) {
        JSAMPROW rows[1] = {enc->row};

        a->row(a->arg, (int)enc->cinfo.next_scanline, enc->row);
        jpeg_write_scanlines(&enc->cinfo, rows, 1);
    }
    jpeg_finish_compress(&enc->cinfo);
    *out = enc->dest.buf;
    *outlen = enc->dest.len;
    enc->dest.buf = NULL;
    image_encoder_free(enc);
    return 0;
}

struct image_render {
    struct image_scene scene;
    unsigned char *rgb; /* one RGB row when encoding grayscale */
};

static void image_row_rgb(void *arg, int y, unsigned char *row)
{
    struct image_render *r = arg;

    image_scene_row(&r->scene, y, row);
}

static void image_row_gray(void *arg, int y, unsigned char *row)
{
    struct image_render *r = arg;

    image_scene_row(&r->scene, y, r->rgb);
    for (int x = 0; x < r->scene.w; x++) {
        const unsigned char *p = r->rgb + (size_t)x * 3;

        /* BT.601 luma in fixed point */
        row[x] = (unsigned char)((77 * p[0] + 150 * p[1] + 29 * p[2] + 128) >> 8);
    }
}

int image_jpeg(int id, int width, int height, int flags, unsigned char **out, size_t *outlen,
               char *err, size_t errlen)
{
    struct image_render r;
    struct image_encode_args a = {width, height, 3, 1, image_row_rgb, &r};
    int rc;

    if (width < 1 || height < 1 || width > JPEG_MAX_DIMENSION || height > JPEG_MAX_DIMENSION) {
        snprintf(err, errlen, "size %dx%d out of range", width, height);
        return -1;
    }
    r.rgb = NULL;
    if (image_scene_init(&r.scene, id, width, height) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (flags & IMAGE_GRAYSCALE) {
        r.rgb = malloc((size_t)width * 3);
        if (r.rgb == NULL) {
            image_scene_free(&r.scene);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        a.components = 1;
        a.row = image_row_gray;
    }
    rc = image_encode(&a, out, outlen, err, errlen);
    free(r.rgb);
    image_scene_free(&r.scene);
    return rc;
}

static void image_row_flat(void *arg, int y, unsigned char *row)
{
    const int *width = arg;

    memset(row, 0x80 + (y & 0x3f), (size_t)*width);
}

/* Offset of the SOF0/SOF2 segment's marker, or -1. */
static long image_find_sof(const unsigned char *b, size_t len)
{
    size_t i = 2;

    while (i + 4 <= len && b[i] == 0xff) {
        unsigned marker = b[i + 1];
        size_t seglen = ((size_t)b[i + 2] << 8) | b[i + 3];

        if (marker == 0xc0 || marker == 0xc2)
            return i + 9 <= len ? (long)i : -1;
        if (marker == 0xda)
            return -1;
        i += 2 + seglen;
    }
    return -1;
}

int image_bomb(unsigned width, unsigned height, unsigned char **out, size_t *outlen, char *err,
               size_t errlen)
{
    int w = 16;
    struct image_encode_args a = {w, 16, 1, 0, image_row_flat, &w};
    long sof;

    if (width < 1 || height < 1 || width > 65535 || height > 65535) {
        snprintf(err, errlen, "bomb size %ux%u out of range", width, height);
        return -1;
    }
    if (image_encode(&a, out, outlen, err, errlen) < 0)
        return -1;
    sof = image_find_sof(*out, *outlen);
    if (sof < 0) {
        free(*out);
        *out = NULL;
        snprintf(err, errlen, "no frame header in encoded JPEG");
        return -1;
    }
    (*out)[sof + 5] = (unsigned char)(height >> 8);
    (*out)[sof + 6] = (unsigned char)height;
    (*out)[sof + 7] = (unsigned char)(width >> 8);
    (*out)[sof + 8] = (unsigned char)width;
    return 0;
}
