/* sharpen.c -- unsharp mask: out = in + amount (in - blurred), the blur being blur's Gaussian
 * (gauss.c, radius = standard deviation in pixels), rounded half away from zero and clamped to
 * 0..255, all in integer arithmetic. Alpha is left as it is: sharpening coverage would only make
 * halos in it. Over the input when the host allows it, else into a new buffer. */
#include <stdio.h>
#include <stdlib.h>

#include <pixflow/plugin.h>

#include "gauss.h"
#include "pconf.h"
#include "pout.h"

#define SHARPEN_AMOUNT_MAX 10000 /* thousandths: 10 */

enum { SHARPEN_AMOUNT, SHARPEN_RADIUS, SHARPEN_KEYS };

struct sharpen {
    const struct pixflow_host *host;
    struct gauss *kernel;
    int64_t amount; /* thousandths */
};

static int sharpen_init(const struct pixflow_host *host, const char *config, void **state,
                        char *err, size_t errlen)
{
    struct pconf_key keys[SHARPEN_KEYS] = {
        [SHARPEN_AMOUNT] = {"amount", PCONF_MILLI, 1, SHARPEN_AMOUNT_MAX, NULL, 1000, 0},
        [SHARPEN_RADIUS] = {"radius", PCONF_MILLI, GAUSS_SIGMA_MIN, GAUSS_SIGMA_MAX, NULL, 1000, 0},
    };
    struct sharpen *s;

    if (pconf_parse(config, keys, SHARPEN_KEYS, err, errlen) < 0)
        return -1;
    s = malloc(sizeof(*s));
    if (s != NULL)
        s->kernel = gauss_new(keys[SHARPEN_RADIUS].value);
    if (s == NULL || s->kernel == NULL) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->host = host;
    s->amount = keys[SHARPEN_AMOUNT].value;
    *state = s;
    return 0;
}

static void sharpen_destroy(void *state)
{
    struct sharpen *s = state;

    gauss_free(s->kernel);
    free(s);
}

/* v + amount (v - blurred); sum is blurred * 2^24, amount in thousandths. */
static unsigned char sharpen_sample(unsigned char v, uint32_t sum, int64_t amount)
{
    const int64_t unit = (int64_t)1000 << 24;
    int64_t num = amount * (((int64_t)v << 24) - sum);
    int64_t add = (num >= 0 ? num + unit / 2 : num - unit / 2) / unit; /* half away from zero */
    int64_t out = v + add;

    return (unsigned char)(out < 0 ? 0 : out > 255 ? 255 : out);
}

static void sharpen_emit(const void *arg, const uint32_t *sums, const unsigned char *src,
                         unsigned char *dst, size_t n, uint32_t channels)
{
    int64_t amount = *(const int64_t *)arg;

    if (channels != 4) {
        for (size_t i = 0; i < n; i++)
            dst[i] = sharpen_sample(src[i], sums[i], amount);
        return;
    }
    for (size_t i = 0; i < n; i += 4) {
        dst[i] = sharpen_sample(src[i], sums[i], amount);
        dst[i + 1] = sharpen_sample(src[i + 1], sums[i + 1], amount);
        dst[i + 2] = sharpen_sample(src[i + 2], sums[i + 2], amount);
        dst[i + 3] = src[i + 3];
    }
}

static int sharpen_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                         char *err, size_t errlen)
{
    const struct sharpen *s = state;
    const struct pixflow_host *host = s->host;

    if (pout_same_size(host, in, out, err, errlen) < 0)
        return -1;
    return gauss_run(s->kernel, host, in, out, sharpen_emit, &s->amount, err, errlen);
}

static const struct pixflow_plugin sharpen = {
    PIXFLOW_PLUGIN_HEADER,
    .name = "sharpen",
    .version = "1.0.0",
    .description = "unsharp mask: in + amount (in - Gaussian blur of radius), alpha kept",
    .flags = PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC | PIXFLOW_IN_PLACE,
    .inputs = PIXFLOW_INPUT_ANY,
    .init = sharpen_init,
    .apply = sharpen_apply,
    .destroy = sharpen_destroy,
};

PIXFLOW_PLUGIN_ENTRY(sharpen)
