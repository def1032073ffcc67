/* thumbnail.c -- shrink so the longest side is size=N pixels, aspect kept (the other side
 * rounded, at least 1); a picture already within N x N is answered unchanged, never enlarged.
 * Resampling is resize's (scale.c: stb_image_resize, sRGB-aware). It takes pictures the JPEG
 * decoder shrank (PIXFLOW_ACCEPT_SHRUNK): sizes come from the whole picture's, pixels from what
 * was decoded, so the output's size never depends on the decoder. */
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

/* What a w x h picture becomes: within size x size, aspect kept, never enlarged. */
static int thumbnail_output_size(void *state, uint32_t w, uint32_t h, uint32_t *ow, uint32_t *oh)
{
    const struct thumbnail *t = state;
    uint64_t x = t->size, y = t->size;

    if (w <= t->size && h <= t->size) {
        *ow = w;
        *oh = h;
        return 0;
    }
    if (w >= h)
        y = scale_ratio(h, t->size, w);
    else
        x = scale_ratio(w, t->size, h);
    *ow = x > 0 ? (uint32_t)x : 1;
    *oh = y > 0 ? (uint32_t)y : 1;
    return 0;
}

/* A picture the decoder shrank (in->source_width set) makes what the whole one would. */
static int thumbnail_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                           char *err, size_t errlen)
{
    const struct thumbnail *t = state;
    uint32_t w = in->source_width ? in->source_width : in->width;
    uint32_t h = in->source_width ? in->source_height : in->height, ow, oh;

    thumbnail_output_size(state, w, h, &ow, &oh);
    if (ow == in->width && oh == in->height) {
        pout_view(in, 0, 0, in->width, in->height, out);
        return 0;
    }
    return scale_run(t->host, in, 0, 0, in->width, in->height, ow, oh, out, err, errlen);
}

static const struct pixflow_plugin thumbnail = {
    PIXFLOW_PLUGIN_HEADER,
    .name = "thumbnail",
    .version = "1.1.0",
    .description = "shrink to fit size x size, aspect kept, never enlarged",
    .flags = PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC,
    .inputs = PIXFLOW_INPUT_ANY,
    .init = thumbnail_init,
    .apply = thumbnail_apply,
    .destroy = thumbnail_destroy,
    .accepts = PIXFLOW_ACCEPT_SHRUNK,
    .output_size = thumbnail_output_size,
};

PIXFLOW_PLUGIN_ENTRY(thumbnail)
