/* blur.c -- Gaussian blur: radius=R is the standard deviation in pixels, as in Pillow's
 * GaussianBlur(radius) and CSS blur(); the kernel reaches ceil(3 R) pixels each side. Separable
 * and in integer arithmetic (gauss.c), so the output bytes depend on nothing but the input and
 * R. Every channel is blurred alike, alpha included, on the stored (sRGB, not premultiplied)
 * values, as most tools do by default: the colour of fully transparent pixels can bleed into
 * their neighbours. Over the input when the host allows it, else into a new buffer. */
#include <stdio.h>
#include <stdlib.h>

#include <pixflow/plugin.h>

#include "gauss.h"
#include "pconf.h"
#include "pout.h"

struct blur {
    const struct pixflow_host *host;
    struct gauss *kernel;
};

static int blur_init(const struct pixflow_host *host, const char *config, void **state, char *err,
                     size_t errlen)
{
    struct pconf_key keys[] = {
        {"radius", PCONF_MILLI, GAUSS_SIGMA_MIN, GAUSS_SIGMA_MAX, NULL, 0, 0},
    };
    struct blur *b;

    if (pconf_parse(config, keys, 1, err, errlen) < 0)
        return -1;
    if (!keys[0].seen) {
        snprintf(err, errlen, "needs radius=R, in pixels from 0.1 to 50");
        return -1;
    }
    b = malloc(sizeof(*b));
    if (b != NULL)
        b->kernel = gauss_new(keys[0].value);
    if (b == NULL || b->kernel == NULL) {
        free(b);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    b->host = host;
    *state = b;
    return 0;
}

static void blur_destroy(void *state)
{
    struct blur *b = state;

    gauss_free(b->kernel);
    free(b);
}

/* Rounds the column sums (samples * 2^24) to samples. */
static void blur_emit(const void *arg, const uint32_t *sums, const unsigned char *src,
                      unsigned char *dst, size_t n, uint32_t channels)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (unsigned char)((sums[i] + (1u << 23)) >> 24);
}

static int blur_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                      char *err, size_t errlen)
{
    const struct blur *b = state;
    const struct pixflow_host *host = b->host;

    if (pout_same_size(host, in, out, err, errlen) < 0)
        return -1;
    return gauss_run(b->kernel, host, in, out, blur_emit, NULL, err, errlen);
}

static const struct pixflow_plugin blur = {
    PIXFLOW_PLUGIN_HEADER,
    .name = "blur",
    .version = "1.0.0",
    .description = "Gaussian blur, radius = standard deviation in pixels, integer arithmetic",
    .flags = PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC | PIXFLOW_IN_PLACE,
    .inputs = PIXFLOW_INPUT_ANY,
    .init = blur_init,
    .apply = blur_apply,
    .destroy = blur_destroy,
};

PIXFLOW_PLUGIN_ENTRY(blur)
