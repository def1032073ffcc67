/* resize.c -- scale to a width, a height, or a box: width=W and/or height=H, fit=fill|contain|
 * cover when both are given. One side alone keeps the aspect ratio (the other side rounded, at
 * least 1). With both: fill stretches to exactly W x H; contain scales to fit inside the box,
 * aspect kept, so one side matches and the other is at most the box's; cover fills the box
 * exactly, aspect kept, by resampling the largest centred part of the picture with the box's
 * shape. Resampling is scale.c's (stb_image_resize, sRGB-aware); a picture already at its target
 * size is answered unchanged. It takes pictures the JPEG decoder shrank (PIXFLOW_ACCEPT_SHRUNK):
 * the output size comes from the whole picture's, never from the decoder's rounding. */
#include <stdio.h>
#include <stdlib.h>

#include <pixflow/plugin.h>

#include "pconf.h"
#include "scale.h"

enum resize_fit { RESIZE_FILL, RESIZE_CONTAIN, RESIZE_COVER };
enum { RESIZE_WIDTH, RESIZE_HEIGHT, RESIZE_FIT, RESIZE_KEYS };

static const char *const resize_fits[] = {"fill", "contain", "cover", NULL};

struct resize {
    const struct pixflow_host *host;
    uint32_t width, height; /* 0: not given */
    enum resize_fit fit;
};

static int resize_init(const struct pixflow_host *host, const char *config, void **state, char *err,
                       size_t errlen)
{
    struct pconf_key keys[RESIZE_KEYS] = {
        [RESIZE_WIDTH] = {"width", PCONF_UINT, 1, SCALE_MAX_SIDE, NULL, 0, 0},
        [RESIZE_HEIGHT] = {"height", PCONF_UINT, 1, SCALE_MAX_SIDE, NULL, 0, 0},
        [RESIZE_FIT] = {"fit", PCONF_CHOICE, 0, 0, resize_fits, RESIZE_FILL, 0},
    };
    int both;
    struct resize *r;

    if (pconf_parse(config, keys, RESIZE_KEYS, err, errlen) < 0)
        return -1;
    both = keys[RESIZE_WIDTH].seen && keys[RESIZE_HEIGHT].seen;
    if (!keys[RESIZE_WIDTH].seen && !keys[RESIZE_HEIGHT].seen) {
        snprintf(err, errlen, "needs width, height or both");
        return -1;
    }
    if (keys[RESIZE_FIT].seen && !both) {
        snprintf(err, errlen, "fit needs both width and height (one side alone keeps the aspect)");
        return -1;
    }
    if (both && keys[RESIZE_FIT].value != RESIZE_CONTAIN &&
        scale_check(keys[RESIZE_WIDTH].value, keys[RESIZE_HEIGHT].value, err, errlen) < 0)
        return -1;
    r = pconf_state(sizeof(*r), err, errlen);
    if (r == NULL)
        return -1;
    r->host = host;
    r->width = keys[RESIZE_WIDTH].value;
    r->height = keys[RESIZE_HEIGHT].value;
    r->fit = (enum resize_fit)keys[RESIZE_FIT].value;
    *state = r;
    return 0;
}

static void resize_destroy(void *state)
{
    free(state);
}

/* max(1, round(a * b / c)) */
static uint64_t resize_side(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t v = scale_ratio(a, b, c);

    return v > 0 ? v : 1;
}

/* The output size of a w x h picture, and the centred part of it that cover resamples
 * (*sw x *sh; the whole picture otherwise). */
static void resize_plan(const struct resize *r, uint64_t w, uint64_t h, uint64_t *ow, uint64_t *oh,
                        uint64_t *sw, uint64_t *sh)
{
    *ow = r->width;
    *oh = r->height;
    *sw = w;
    *sh = h;
    if (*ow == 0) {
        *ow = resize_side(w, *oh, h);
    } else if (*oh == 0) {
        *oh = resize_side(h, *ow, w);
    } else if (r->fit == RESIZE_CONTAIN) {
        if (w * *oh <= h * *ow) /* the picture is taller than the box: its height decides */
            *ow = resize_side(w, *oh, h);
        else
            *oh = resize_side(h, *ow, w);
    } else if (r->fit == RESIZE_COVER) {
        if (w * *oh > h * *ow) /* wider than the box: keep the middle columns */
            *sw = resize_side(h, *ow, *oh);
        else
            *sh = resize_side(w, *oh, *ow);
    }
}

static int resize_output_size(void *state, uint32_t w, uint32_t h, uint32_t *ow, uint32_t *oh)
{
    uint64_t x, y, sw, sh;
    char err[8];

    resize_plan(state, w, h, &x, &y, &sw, &sh);
    if (scale_check(x, y, err, sizeof(err)) < 0)
        return -1;
    *ow = (uint32_t)x;
    *oh = (uint32_t)y;
    return 0;
}

/* A picture the decoder shrank (in->source_width set) makes what the whole one would: sizes
 * come from the whole picture, the part cover keeps is scaled to the pixels there are. */
static int resize_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                        char *err, size_t errlen)
{
    const struct resize *r = state;
    uint64_t w = in->source_width ? in->source_width : in->width;
    uint64_t h = in->source_width ? in->source_height : in->height, ow, oh, sw, sh;

    resize_plan(r, w, h, &ow, &oh, &sw, &sh);
    if (scale_check(ow, oh, err, errlen) < 0)
        return -1;
    if (w != in->width)
        sw = sw == w ? in->width : resize_side(sw, in->width, w);
    if (h != in->height)
        sh = sh == h ? in->height : resize_side(sh, in->height, h);
    if (sw > in->width)
        sw = in->width;
    if (sh > in->height)
        sh = in->height;
    return scale_run(r->host, in, (uint32_t)((in->width - sw) / 2),
                     (uint32_t)((in->height - sh) / 2), (uint32_t)sw, (uint32_t)sh, (uint32_t)ow,
                     (uint32_t)oh, out, err, errlen);
}

static const struct pixflow_plugin resize = {
    PIXFLOW_PLUGIN_HEADER,
    .name = "resize",
    .version = "1.1.0",
    .description = "scale to width and/or height, fit=fill|contain|cover, sRGB-aware filtering",
    .flags = PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC,
    .inputs = PIXFLOW_INPUT_ANY,
    .init = resize_init,
    .apply = resize_apply,
    .destroy = resize_destroy,
    .accepts = PIXFLOW_ACCEPT_SHRUNK,
    .output_size = resize_output_size,
};

PIXFLOW_PLUGIN_ENTRY(resize)
