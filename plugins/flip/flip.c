/* flip.c -- mirror a picture: axis=horizontal swaps left and right, axis=vertical swaps top and
 * bottom. Pixels are moved whole, so it works the same for every channel count; over the input
 * when the host allows it (pairs of pixels swapped, no scratch), into a new buffer otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pixflow/plugin.h>

#include "pconf.h"
#include "pout.h"

enum flip_axis { FLIP_HORIZONTAL, FLIP_VERTICAL };

struct flip {
    const struct pixflow_host *host;
    enum flip_axis axis;
};

static const char *const flip_axes[] = {"horizontal", "vertical", NULL};

static int flip_init(const struct pixflow_host *host, const char *config, void **state, char *err,
                     size_t errlen)
{
    struct pconf_key keys[] = {
        {"axis", PCONF_CHOICE, 0, 0, flip_axes, 0, 0},
    };
    struct flip *f;

    if (pconf_parse(config, keys, 1, err, errlen) < 0)
        return -1;
    if (!keys[0].seen) {
        snprintf(err, errlen, "needs axis=horizontal or axis=vertical");
        return -1;
    }
    f = pconf_state(sizeof(*f), err, errlen);
    if (f == NULL)
        return -1;
    f->host = host;
    f->axis = (enum flip_axis)keys[0].value;
    *state = f;
    return 0;
}

static void flip_destroy(void *state)
{
    free(state);
}

static void flip_swap(unsigned char *a, unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char t = a[i];

        a[i] = b[i];
        b[i] = t;
    }
}

static void flip_in_place(enum flip_axis axis, const struct pixflow_image *im)
{
    uint32_t w = im->width, h = im->height, c = im->channels;

    if (axis == FLIP_VERTICAL) {
        for (uint32_t y = 0; y < h / 2; y++)
            flip_swap(im->pixels + y * im->stride, im->pixels + (h - 1 - y) * im->stride,
                      (size_t)w * c);
        return;
    }
    for (uint32_t y = 0; y < h; y++) {
        unsigned char *row = im->pixels + y * im->stride;

        for (uint32_t x = 0; x < w / 2; x++)
            flip_swap(row + (size_t)x * c, row + (size_t)(w - 1 - x) * c, c);
    }
}

static void flip_copy(enum flip_axis axis, const struct pixflow_image *in,
                      const struct pixflow_image *out)
{
    uint32_t w = in->width, h = in->height, c = in->channels;
    size_t row = (size_t)w * c;

    for (uint32_t y = 0; y < h; y++) {
        const unsigned char *s = in->pixels + y * in->stride;

        if (axis == FLIP_VERTICAL) {
            memcpy(out->pixels + (h - 1 - y) * out->stride, s, row);
            continue;
        }
        for (uint32_t x = 0; x < w; x++)
            memcpy(out->pixels + y * out->stride + (size_t)(w - 1 - x) * c, s + (size_t)x * c, c);
    }
}

static int flip_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                      char *err, size_t errlen)
{
    const struct flip *f = state;

    if (pout_same_size(f->host, in, out, err, errlen) < 0)
        return -1;
    if (out->pixels == in->pixels)
        flip_in_place(f->axis, out);
    else
        flip_copy(f->axis, in, out);
    return 0;
}

static const struct pixflow_plugin flip = {
    PIXFLOW_PLUGIN_HEADER,
    .name = "flip",
    .version = "1.0.0",
    .description = "mirror: axis=horizontal (left-right) or axis=vertical (top-bottom)",
    .flags = PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC | PIXFLOW_IN_PLACE,
    .inputs = PIXFLOW_INPUT_ANY,
    .init = flip_init,
    .apply = flip_apply,
    .destroy = flip_destroy,
};

PIXFLOW_PLUGIN_ENTRY(flip)
