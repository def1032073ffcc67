/* invert.c -- the negative: every colour sample v becomes 255 - v, alpha kept. Keeping alpha is
 * the point of not inverting all bytes: an opaque picture must not turn transparent. Written
 * over the input when the host allows it. */
#include <pixflow/plugin.h>

#include "pconf.h"
#include "pout.h"

static int invert_init(const struct pixflow_host *host, const char *config, void **state, char *err,
                       size_t errlen)
{
    if (pconf_parse(config, NULL, 0, err, errlen) < 0)
        return -1;
    *state = (void *)host;
    return 0;
}

/* dst may be src. */
static void invert_row(const void *arg, const unsigned char *src, unsigned char *dst,
                       uint32_t width, uint32_t channels)
{
    size_t n = (size_t)width * channels;

    if (channels != 4) {
        for (size_t i = 0; i < n; i++)
            dst[i] = (unsigned char)(255 - src[i]);
        return;
    }
    for (size_t i = 0; i < n; i += 4) {
        dst[i] = (unsigned char)(255 - src[i]);
        dst[i + 1] = (unsigned char)(255 - src[i + 1]);
        dst[i + 2] = (unsigned char)(255 - src[i + 2]);
        dst[i + 3] = src[i + 3];
    }
}

static int invert_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                        char *err, size_t errlen)
{
    const struct pixflow_host *host = state;

    if (pout_same_size(host, in, out, err, errlen) < 0)
        return -1;
    pout_rows(in, out, invert_row, NULL);
    return 0;
}

static const struct pixflow_plugin invert = {
    PIXFLOW_PLUGIN_HEADER,
    .name = "invert",
    .version = "1.0.0",
    .description = "negative image: 255 - v for every colour sample, alpha kept",
    .flags = PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC | PIXFLOW_IN_PLACE,
    .inputs = PIXFLOW_INPUT_ANY,
    .init = invert_init,
    .apply = invert_apply,
};

PIXFLOW_PLUGIN_ENTRY(invert)
