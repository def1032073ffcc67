/* crop.c -- cut a rectangle out: x, y, width, height in pixels, or width, height and a gravity
 * (center, or a side or corner) placing it. The answer is a view into the input (same stride,
 * first pixel moved), so nothing is copied; the host packs the rows when the chain ends. A
 * rectangle reaching outside the picture is refused at apply, when the size is known. */
#include <stdio.h>
#include <stdlib.h>

#include <pixflow/plugin.h>

#include "pconf.h"
#include "pout.h"

#define CROP_MAX 2147483647u

enum { CROP_X, CROP_Y, CROP_WIDTH, CROP_HEIGHT, CROP_GRAVITY, CROP_KEYS };

/* Order matters: index % 3 is the column (west, center, east), index / 3 the row. */
static const char *const crop_gravities[] = {
    "northwest", "north",     "northeast", "west",      "center",
    "east",      "southwest", "south",     "southeast", NULL,
};

struct crop {
    uint32_t x, y, width, height;
    int gravity; /* index in crop_gravities, or -1 for x and y */
};

static int crop_init(const struct pixflow_host *host, const char *config, void **state, char *err,
                     size_t errlen)
{
    struct pconf_key keys[CROP_KEYS] = {
        [CROP_X] = {"x", PCONF_UINT, 0, CROP_MAX, NULL, 0, 0},
        [CROP_Y] = {"y", PCONF_UINT, 0, CROP_MAX, NULL, 0, 0},
        [CROP_WIDTH] = {"width", PCONF_UINT, 1, CROP_MAX, NULL, 0, 0},
        [CROP_HEIGHT] = {"height", PCONF_UINT, 1, CROP_MAX, NULL, 0, 0},
        [CROP_GRAVITY] = {"gravity", PCONF_CHOICE, 0, 0, crop_gravities, 0, 0},
    };
    struct crop *c;

    if (pconf_parse(config, keys, CROP_KEYS, err, errlen) < 0)
        return -1;
    if (!keys[CROP_WIDTH].seen || !keys[CROP_HEIGHT].seen) {
        snprintf(err, errlen, "needs width and height");
        return -1;
    }
    if (keys[CROP_GRAVITY].seen && (keys[CROP_X].seen || keys[CROP_Y].seen)) {
        snprintf(err, errlen, "gravity places the rectangle: give it or x and y, not both");
        return -1;
    }
    c = pconf_state(sizeof(*c), err, errlen);
    if (c == NULL)
        return -1;
    c->x = keys[CROP_X].value;
    c->y = keys[CROP_Y].value;
    c->width = keys[CROP_WIDTH].value;
    c->height = keys[CROP_HEIGHT].value;
    c->gravity = keys[CROP_GRAVITY].seen ? (int)keys[CROP_GRAVITY].value : -1;
    *state = c;
    return 0;
}

static void crop_destroy(void *state)
{
    free(state);
}

/* Offset of a span of `part` within `whole` (part <= whole): at the start, centred, at the end. */
static uint32_t crop_place(int where, uint32_t whole, uint32_t part)
{
    return where == 0 ? 0 : where == 1 ? (whole - part) / 2 : whole - part;
}

static int crop_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                      char *err, size_t errlen)
{
    const struct crop *c = state;
    uint32_t x = c->x, y = c->y;

    if (c->gravity >= 0) {
        if (c->width > in->width || c->height > in->height) {
            snprintf(err, errlen, "crop %ux%u is larger than the %ux%u picture", (unsigned)c->width,
                     (unsigned)c->height, (unsigned)in->width, (unsigned)in->height);
            return -1;
        }
        x = crop_place(c->gravity % 3, in->width, c->width);
        y = crop_place(c->gravity / 3, in->height, c->height);
    } else if ((uint64_t)x + c->width > in->width || (uint64_t)y + c->height > in->height) {
        snprintf(err, errlen, "crop %ux%u at (%u, %u) reaches outside the %ux%u picture",
                 (unsigned)c->width, (unsigned)c->height, (unsigned)x, (unsigned)y,
                 (unsigned)in->width, (unsigned)in->height);
        return -1;
    }
    pout_view(in, x, y, c->width, c->height, out);
    return 0;
}

static const struct pixflow_plugin crop = {
    PIXFLOW_PLUGIN_HEADER,
    .name = "crop",
    .version = "1.0.0",
    .description = "cut a rectangle: x, y, width, height, or width, height and gravity",
    .flags = PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC,
    .inputs = PIXFLOW_INPUT_ANY,
    .init = crop_init,
    .apply = crop_apply,
    .destroy = crop_destroy,
};

PIXFLOW_PLUGIN_ENTRY(crop)
