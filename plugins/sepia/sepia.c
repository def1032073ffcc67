/* sepia.c -- the classic sepia tone: the Microsoft/W3C sepia matrix, clamped, optionally mixed
 * with the original by strength. Integer arithmetic throughout (coefficients in thousandths),
 * so every platform gives the same bytes:
 *     R' = min(255, (393 R + 769 G + 189 B + 500) / 1000)
 *     G' = min(255, (349 R + 686 G + 168 B + 500) / 1000)
 *     B' = min(255, (272 R + 534 G + 131 B + 500) / 1000)
 *     out = (v (1000 - s) + v' s + 500) / 1000,  s = strength in thousandths
 * RGB in, RGB out: the host expands gray and drops alpha before calling it. */
#include <stdio.h>
#include <stdlib.h>

#include <pixflow/plugin.h>

#include "pconf.h"
#include "pout.h"

struct sepia {
    const struct pixflow_host *host;
    uint32_t strength; /* thousandths, 0..1000 */
};

static int sepia_init(const struct pixflow_host *host, const char *config, void **state, char *err,
                      size_t errlen)
{
    struct pconf_key keys[] = {
        {"strength", PCONF_MILLI, 0, 1000, NULL, 1000, 0},
    };
    struct sepia *s;

    if (pconf_parse(config, keys, 1, err, errlen) < 0)
        return -1;
    s = pconf_state(sizeof(*s), err, errlen);
    if (s == NULL)
        return -1;
    s->host = host;
    s->strength = keys[0].value;
    *state = s;
    return 0;
}

static void sepia_destroy(void *state)
{
    free(state);
}

static uint32_t sepia_tone(uint32_t r, uint32_t g, uint32_t b, uint32_t kr, uint32_t kg,
                           uint32_t kb)
{
    uint32_t v = (kr * r + kg * g + kb * b + 500) / 1000;

    return v > 255 ? 255 : v;
}

static unsigned char sepia_mix(uint32_t v, uint32_t toned, uint32_t strength)
{
    return (unsigned char)((v * (1000 - strength) + toned * strength + 500) / 1000);
}

/* dst may be src: each pixel is read whole before it is written. arg is the strength. */
static void sepia_row(const void *arg, const unsigned char *src, unsigned char *dst, uint32_t width,
                      uint32_t channels)
{
    uint32_t strength = *(const uint32_t *)arg;

    for (uint32_t x = 0; x < width; x++, src += 3, dst += 3) {
        uint32_t r = src[0], g = src[1], b = src[2];

        dst[0] = sepia_mix(r, sepia_tone(r, g, b, 393, 769, 189), strength);
        dst[1] = sepia_mix(g, sepia_tone(r, g, b, 349, 686, 168), strength);
        dst[2] = sepia_mix(b, sepia_tone(r, g, b, 272, 534, 131), strength);
    }
}

static int sepia_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                       char *err, size_t errlen)
{
    const struct sepia *s = state;

    if (in->channels != 3) {
        snprintf(err, errlen, "takes RGB pictures, got %u channels", (unsigned)in->channels);
        return -1;
    }
    if (pout_same_size(s->host, in, out, err, errlen) < 0)
        return -1;
    pout_rows(in, out, sepia_row, &s->strength);
    return 0;
}

static const struct pixflow_plugin sepia = {
    PIXFLOW_PLUGIN_HEADER,
    .name = "sepia",
    .version = "1.0.0",
    .description = "classic sepia matrix, clamped, mixed with the original by strength",
    .flags = PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC | PIXFLOW_IN_PLACE,
    .inputs = PIXFLOW_INPUT_RGB,
    .init = sepia_init,
    .apply = sepia_apply,
    .destroy = sepia_destroy,
};

PIXFLOW_PLUGIN_ENTRY(sepia)
