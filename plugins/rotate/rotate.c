/* rotate.c -- quarter turns, clockwise: degrees=90, 180 or 270. A half turn keeps the shape and
 * is done over the input when the host allows it (pixel pairs swapped from both ends); quarter
 * turns swap width and height and always need a new buffer. Those walk the output in square
 * tiles so that reads down the input's columns stay within a few cache lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pixflow/plugin.h>

#include "pconf.h"
#include "pout.h"

#define ROTATE_TILE 64

struct rotate {
    const struct pixflow_host *host;
    unsigned quarters; /* 1, 2 or 3 clockwise quarter turns */
};

static const char *const rotate_degrees[] = {"90", "180", "270", NULL};

static int rotate_init(const struct pixflow_host *host, const char *config, void **state, char *err,
                       size_t errlen)
{
    struct pconf_key keys[] = {
        {"degrees", PCONF_CHOICE, 0, 0, rotate_degrees, 0, 0},
    };
    struct rotate *r;

    if (pconf_parse(config, keys, 1, err, errlen) < 0)
        return -1;
    if (!keys[0].seen) {
        snprintf(err, errlen, "needs degrees=90, 180 or 270 (clockwise)");
        return -1;
    }
    r = pconf_state(sizeof(*r), err, errlen);
    if (r == NULL)
        return -1;
    r->host = host;
    r->quarters = keys[0].value + 1;
    *state = r;
    return 0;
}

static void rotate_destroy(void *state)
{
    free(state);
}

static void rotate_swap(unsigned char *a, unsigned char *b, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        unsigned char t = a[i];

        a[i] = b[i];
        b[i] = t;
    }
}

/* Half turn over the image itself: pixel (x, y) trades places with (w-1-x, h-1-y). */
static void rotate_half_in_place(const struct pixflow_image *im)
{
    uint32_t w = im->width, h = im->height, c = im->channels;

    for (uint32_t y = 0; y <= (h - 1) / 2; y++) {
        unsigned char *a = im->pixels + y * im->stride;
        unsigned char *b = im->pixels + (h - 1 - y) * im->stride;
        /* the middle row of an odd height only goes halfway, or it would swap back */
        uint32_t n = a == b ? w / 2 : w;

        for (uint32_t x = 0; x < n; x++)
            rotate_swap(a + (size_t)x * c, b + (size_t)(w - 1 - x) * c, c);
    }
}

/* Output pixel (x, y) of a picture turned `quarters` times comes from input pixel (sx, sy). */
static void rotate_source(unsigned quarters, uint32_t w, uint32_t h, uint32_t x, uint32_t y,
                          uint32_t *sx, uint32_t *sy)
{
    switch (quarters) {
    case 1: /* output is h wide, w high */
        *sx = y;
        *sy = h - 1 - x;
        break;
    case 2:
        *sx = w - 1 - x;
        *sy = h - 1 - y;
        break;
    default:
        *sx = w - 1 - y;
        *sy = x;
        break;
    }
}

static void rotate_copy(unsigned quarters, const struct pixflow_image *in,
                        const struct pixflow_image *out)
{
    uint32_t c = in->channels;

    for (uint32_t ty = 0; ty < out->height; ty += ROTATE_TILE) {
        uint32_t ey = out->height - ty < ROTATE_TILE ? out->height : ty + ROTATE_TILE;

        for (uint32_t tx = 0; tx < out->width; tx += ROTATE_TILE) {
            uint32_t ex = out->width - tx < ROTATE_TILE ? out->width : tx + ROTATE_TILE;

            for (uint32_t y = ty; y < ey; y++) {
                unsigned char *d = out->pixels + y * out->stride + (size_t)tx * c;

                for (uint32_t x = tx; x < ex; x++, d += c) {
                    uint32_t sx, sy;

                    rotate_source(quarters, in->width, in->height, x, y, &sx, &sy);
                    memcpy(d, in->pixels + sy * in->stride + (size_t)sx * c, c);
                }
            }
        }
    }
}

static int rotate_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                        char *err, size_t errlen)
{
    const struct rotate *r = state;
    int rc;

    if (r->quarters == 2)
        rc = pout_same_size(r->host, in, out, err, errlen);
    else /* a quarter turn swaps width and height */
        rc = pout_new(r->host, in, in->height, in->width, out, err, errlen);
    if (rc < 0)
        return -1;
    if (out->pixels == in->pixels) /* only a half turn is answered over the input */
        rotate_half_in_place(out);
    else
        rotate_copy(r->quarters, in, out);
    return 0;
}

static const struct pixflow_plugin rotate = {
    PIXFLOW_PLUGIN_HEADER,
    .name = "rotate",
    .version = "1.0.0",
    .description = "quarter turns clockwise: degrees=90, 180 or 270",
    .flags = PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC | PIXFLOW_IN_PLACE,
    .inputs = PIXFLOW_INPUT_ANY,
    .init = rotate_init,
    .apply = rotate_apply,
    .destroy = rotate_destroy,
};

PIXFLOW_PLUGIN_ENTRY(rotate)
