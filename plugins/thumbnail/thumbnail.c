/* thumbnail.c -- shrink so the longest side is size=N pixels, aspect kept (the other side
 * rounded, at least 1); a picture already within N x N is answered unchanged, never enlarged.
 * Resampling is resize's (scale.c: stb_image_resize, sRGB-aware). */
#include <stdio.h>
#include <stdlib.h>

#include <pixflow/plugin.h>

#include "pconf.h"
#include "pout.h"
#include "scale.h"

struct thumbnail {
    const struct pixflow_host *host;
    uint32_t size;
};

static int thumbnail_init(const struct pixflow_host *host, const char *config, void **state,
                          char *err, size_t errlen)
{
    struct pconf_key keys[] = {
        {"size", PCONF_UINT, 1, SCALE_MAX_SIDE, NULL, 0, 0},
    };
    struct thumbnail *t;

    if (pconf_parse(config, keys, 1, err, errlen) < 0)
        return -1;
    if (!keys[0].seen) {
        snprintf(err, errlen, "needs size=N, the longest side in pixels");
        return -1;
    }
    t = pconf_state(sizeof(*t), err, errlen);
    if (t == NULL)
        return -1;
    t->host = host;
    t->size = keys[0].value;
    *state = t;
    return 0;
}

static void thumbnail_destroy(void *state)
{
    free(state);
}

static int thumbnail_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                           char *err, size_t errlen)
{
    const struct thumbnail *t = state;
    uint64_t w = in->width, h = in->height, ow = t->size, oh = t->size;

    if (w <= t->size && h <= t->size) {
        pout_view(in, 0, 0, in->width, in->height, out);
        return 0;
    }
    if (w >= h)
        oh = scale_ratio(h, t->size, w);
    else
        ow = scale_ratio(w, t->size, h);
    if (ow == 0)
        ow = 1;
    if (oh == 0)
        oh = 1;
    return scale_run(t->host, in, 0, 0, in->width, in->height, (uint32_t)ow, (uint32_t)oh, out, err,
                     errlen);
}

static const struct pixflow_plugin thumbnail = {
    PIXFLOW_PLUGIN_HEADER,
    .name = "thumbnail",
    .version = "1.0.0",
    .description = "shrink to fit size x size, aspect kept, never enlarged",
    .flags = PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC,
    .inputs = PIXFLOW_INPUT_ANY,
    .init = thumbnail_init,
    .apply = thumbnail_apply,
    .destroy = thumbnail_destroy,
};

PIXFLOW_PLUGIN_ENTRY(thumbnail)
