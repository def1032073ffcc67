/* grayscale.c -- the default transform: colour to ITU-R BT.601 luma, one channel out.
 * RGB and RGBA become gray through pixflow_luma() (exact integer math, see plugin.h); alpha is
 * ignored, not composited, as Pillow's convert("L") does: a transparent pixel keeps the gray of
 * the colour it stores. Gray input passes through untouched. When the host lets it, the result
 * is written over the input (row y of the output never reaches bytes of rows not yet read),
 * which saves a width x height allocation per picture. It declares PIXFLOW_ACCEPT_LUMA: as the
 * first link, a colour JPEG reaches it as the decoder's luma plane, which it hands back. */
#include <stdio.h>

#include <pixflow/plugin.h>

static int grayscale_init(const struct pixflow_host *host, const char *config, void **state,
                          char *err, size_t errlen)
{
    if (config[0] != '\0') {
        snprintf(err, errlen, "grayscale takes no options, got \"%s\"", config);
        return -1;
    }
    *state = (void *)host;
    return 0;
}

/* dst may be src itself: pixel x is written at or before where it was read. */
static void grayscale_row(const unsigned char *src, unsigned char *dst, uint32_t width,
                          uint32_t channels)
{
    for (uint32_t x = 0; x < width; x++, src += channels)
        dst[x] = pixflow_luma(src[0], src[1], src[2]);
}

static int grayscale_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                           char *err, size_t errlen)
{
    const struct pixflow_host *host = state;

    if (in->channels == 1) {
        *out = *in;
        return 0;
    }
    if (in->channels != 3 && in->channels != 4) {
        snprintf(err, errlen, "grayscale: unexpected %u channels", (unsigned)in->channels);
        return -1;
    }
    out->width = in->width;
    out->height = in->height;
    out->channels = 1;
    out->stride = in->width;
    if (in->flags & PIXFLOW_IMAGE_WRITABLE) {
        out->pixels = in->pixels;
    } else {
        out->pixels = host->alloc(host, (size_t)in->width * in->height);
        if (out->pixels == NULL) {
            snprintf(err, errlen, "grayscale: out of memory for %ux%u", (unsigned)in->width,
                     (unsigned)in->height);
            return -1;
        }
    }
    for (uint32_t y = 0; y < in->height; y++)
        grayscale_row(in->pixels + y * in->stride, out->pixels + (size_t)y * out->stride, in->width,
                      in->channels);
    return 0;
}

static const struct pixflow_plugin grayscale = {
    PIXFLOW_PLUGIN_HEADER,
    .name = "grayscale",
    .version = "1.1.0",
    .description = "ITU-R BT.601 luma (299 R + 587 G + 114 B) / 1000, one channel out",
    .flags = PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC | PIXFLOW_IN_PLACE,
    .inputs = PIXFLOW_INPUT_ANY,
    .init = grayscale_init,
    .apply = grayscale_apply,
    .accepts = PIXFLOW_ACCEPT_LUMA,
};

PIXFLOW_PLUGIN_ENTRY(grayscale)
