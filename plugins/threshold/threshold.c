/* threshold.c -- black and white: gray samples above the level become 255, the others 0.
 * It only takes gray: the host turns colour into BT.601 luma (pixflow_luma()) before calling
 * it, so "gray" means the same here as in the grayscale plugin, alpha ignored likewise. */
#include <stdio.h>
#include <stdlib.h>

#include <pixflow/plugin.h>

#include "pconf.h"
#include "pout.h"

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
    t = pconf_state(sizeof(*t), err, errlen);
    if (t == NULL)
        return -1;
    t->host = host;
    t->level = (unsigned char)keys[0].value;
    *state = t;
    return 0;
}

static void threshold_destroy(void *state)
{
    free(state);
}

/* dst may be src. arg is the level. */
static void threshold_row(const void *arg, const unsigned char *src, unsigned char *dst,
                          uint32_t width, uint32_t channels)
{
    unsigned char level = *(const unsigned char *)arg;

    for (uint32_t x = 0; x < width; x++)
        dst[x] = src[x] > level ? 255 : 0;
}

static int threshold_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                           char *err, size_t errlen)
{
    const struct threshold *t = state;

    if (in->channels != 1) {
        snprintf(err, errlen, "takes gray pictures, got %u channels", (unsigned)in->channels);
        return -1;
    }
    if (pout_same_size(t->host, in, out, err, errlen) < 0)
        return -1;
    pout_rows(in, out, threshold_row, &t->level);
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
