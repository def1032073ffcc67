/* threshold.c -- black and white: gray samples above the level become 255, the others 0.
 * It only takes gray: the host turns colour into BT.601 luma (pixflow_luma()) before calling
 * it, so "gray" means the same here as in the grayscale plugin, alpha ignored likewise. */
#include <stdio.h>
#include <stdlib.h>

#include <pixflow/plugin.h>

#include "pconf.h"

#define THRESHOLD_DEFAULT 127 /* 0..127 black, 128..255 white: the two halves of the range */

struct threshold {
    const struct pixflow_host *host;
    unsigned char level;
};

static int threshold_init(const struct pixflow_host *host, const char *config, void **state,
                          char *err, size_t errlen)
{
    struct pconf_key keys[] = {
        {"level", PCONF_UINT, 0, 255, NULL, THRESHOLD_DEFAULT, 0},
    };
    struct threshold *t;

    if (pconf_parse(config, keys, 1, err, errlen) < 0)
        return -1;
    t = malloc(sizeof(*t));
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    t->host = host;
    t->level = (unsigned char)keys[0].value;
    *state = t;
    return 0;
}

static void threshold_destroy(void *state)
{
    free(state);
}

static int threshold_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                           char *err, size_t errlen)
{
    const struct threshold *t = state;
    const struct pixflow_host *host = t->host;

    if (in->channels != 1) {
        snprintf(err, errlen, "takes gray pictures, got %u channels", (unsigned)in->channels);
        return -1;
    }
    *out = *in;
    out->flags = 0;
    if (!(in->flags & PIXFLOW_IMAGE_WRITABLE)) {
        out->stride = in->width;
        out->pixels = host->alloc(host, (size_t)in->width * in->height);
        if (out->pixels == NULL) {
            snprintf(err, errlen, "out of memory for %ux%u", (unsigned)in->width,
                     (unsigned)in->height);
            return -1;
        }
    }
    for (uint32_t y = 0; y < in->height; y++) {
        const unsigned char *s = in->pixels + y * in->stride;
        unsigned char *d = out->pixels + y * out->stride;

        for (uint32_t x = 0; x < in->width; x++)
            d[x] = s[x] > t->level ? 255 : 0;
    }
    return 0;
}

static const struct pixflow_plugin threshold = {
    PIXFLOW_PLUGIN_HEADER,
    .name = "threshold",
    .version = "1.0.0",
    .description = "black and white: gray above level becomes 255, the rest 0",
    .flags = PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC | PIXFLOW_IN_PLACE,
    .inputs = PIXFLOW_INPUT_GRAY,
    .init = threshold_init,
    .apply = threshold_apply,
    .destroy = threshold_destroy,
};

PIXFLOW_PLUGIN_ENTRY(threshold)
