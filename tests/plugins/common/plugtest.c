/* plugtest.c -- shared by the tests of the bundled plugins: a host that tracks allocations like
 * host/ does, image builders, and init/apply wrappers checking plugin.h's contract. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "plugtest.h"

#define PLUGTEST_BLOCKS 64

int plugtest_alloc_budget = -1;

static struct {
    void *ptr;
    size_t size;
} plugtest_blocks[PLUGTEST_BLOCKS];
static int plugtest_nblocks;

static void *plugtest_alloc(const struct pixflow_host *h, size_t size)
{
    void *p;

    assert_ptr_equal(h, &plugtest_host);
    if (plugtest_alloc_budget == 0)
        return NULL;
    if (plugtest_alloc_budget > 0)
        plugtest_alloc_budget--;
    assert_true(plugtest_nblocks < PLUGTEST_BLOCKS);
    p = malloc(size > 0 ? size : 1);
    assert_non_null(p);
    plugtest_blocks[plugtest_nblocks].ptr = p;
    plugtest_blocks[plugtest_nblocks].size = size;
    plugtest_nblocks++;
    return p;
}

static void plugtest_forget(int i)
{
    plugtest_blocks[i] = plugtest_blocks[--plugtest_nblocks];
}

static void plugtest_free(const struct pixflow_host *h, void *p)
{
    int i;

    assert_ptr_equal(h, &plugtest_host);
    if (p == NULL)
        return;
    for (i = 0; i < plugtest_nblocks && plugtest_blocks[i].ptr != p; i++)
        ;
    if (i == plugtest_nblocks)
        fail_msg("host->free() of a pointer host->alloc() did not give");
    plugtest_forget(i);
    free(p);
}

static void plugtest_log(const struct pixflow_host *h, int level, const char *fmt, ...)
{
}

static void plugtest_counter(const struct pixflow_host *h, const char *name, long long delta)
{
}

const struct pixflow_host plugtest_host = {
    PIXFLOW_ABI_MAJOR, PIXFLOW_ABI_MINOR, sizeof(struct pixflow_host),
    plugtest_log,      plugtest_counter,  plugtest_alloc,
    plugtest_free,
};

int plugtest_live_blocks(void)
{
    return plugtest_nblocks;
}

struct pixflow_image plugtest_image(uint32_t w, uint32_t h, uint32_t channels, size_t pad,
                                    const unsigned char *px)
{
    size_t row = (size_t)w * channels;
    struct pixflow_image im = {w, h, channels, 0, row + pad, NULL, 0, 0};

    im.pixels = malloc(im.stride * h);
    assert_non_null(im.pixels);
    memset(im.pixels, 0xee, im.stride * h);
    for (uint32_t y = 0; y < h; y++) {
        if (px != NULL)
            memcpy(im.pixels + y * im.stride, px + y * row, row);
        else
            memset(im.pixels + y * im.stride, 0, row);
    }
    return im;
}

void plugtest_image_free(struct pixflow_image *im)
{
    free(im->pixels);
    im->pixels = NULL;
}

void *plugtest_init(const struct pixflow_plugin *d, const char *config)
{
    void *state = NULL;
    char err[256] = "";

    if (d->init == NULL) {
        assert_string_equal(config, "");
        return NULL;
    }
    if (d->init(&plugtest_host, config, &state, err, sizeof(err)) != 0)
        fail_msg("init(\"%s\") failed: %s", config, err);
    return state;
}

void plugtest_init_fails(const struct pixflow_plugin *d, const char *config, const char *want)
{
    void *state = NULL;
    char err[256] = "";

    assert_non_null(d->init);
    if (d->init(&plugtest_host, config, &state, err, sizeof(err)) == 0) {
        plugtest_destroy(d, state);
        fail_msg("init(\"%s\") succeeded, wanted \"%s\"", config, want);
    }
    assert_string_equal(err, want);
}

void plugtest_destroy(const struct pixflow_plugin *d, void *state)
{
    if (d->destroy != NULL)
        d->destroy(state);
}

/* Does the image lie within [base, base + size)? */
static int plugtest_inside(const struct pixflow_image *im, const unsigned char *base, size_t size)
{
    size_t extent = im->stride * (im->height - 1) + (size_t)im->width * im->channels;

    return im->pixels >= base && im->pixels < base + size &&
           extent <= size - (size_t)(im->pixels - base);
}

int plugtest_apply(const struct pixflow_plugin *d, void *state, const struct pixflow_image *in,
                   struct pixflow_image *out, char *err, size_t errlen)
{
    struct pixflow_image copy = *in;
    size_t size = in->stride * in->height;
    unsigned char *before = NULL;
    int rc;

    assert_int_equal(plugtest_nblocks, 0);
    if (!(d->flags & PIXFLOW_IN_PLACE))
        assert_int_equal(in->flags & PIXFLOW_IMAGE_WRITABLE, 0);
    if (!(in->flags & PIXFLOW_IMAGE_WRITABLE)) { /* then its bytes must stay as they are */
        before = malloc(size);
        assert_non_null(before);
        memcpy(before, in->pixels, size);
    }
    memset(out, 0, sizeof(*out));
    err[0] = '\0';
    rc = d->apply(state, in, out, err, errlen);
    assert_memory_equal(&copy, in, sizeof(copy)); /* the input's description is the host's */
    if (before != NULL) {
        assert_memory_equal(before, in->pixels, size);
        free(before);
    }
    if (rc != 0) {
        assert_int_equal(rc, -1);
        assert_true(err[0] != '\0');
        while (plugtest_nblocks > 0) {
            free(plugtest_blocks[0].ptr);
            plugtest_forget(0);
        }
        return -1;
    }
    assert_non_null(out->pixels);
    assert_true(out->width >= 1 && out->height >= 1);
    assert_true(out->channels == 1 || out->channels == 3 || out->channels == 4);
    assert_true(out->stride >= (size_t)out->width * out->channels);
    if (plugtest_nblocks == 0) {
        assert_true(plugtest_inside(out, in->pixels, in->stride * in->height));
    } else {
        assert_int_equal(plugtest_nblocks, 1); /* the result; scratch was given back */
        assert_ptr_equal(out->pixels, plugtest_blocks[0].ptr);
        assert_true(plugtest_inside(out, out->pixels, plugtest_blocks[0].size));
    }
    return 0;
}

void plugtest_result_free(struct pixflow_image *out)
{
    for (int i = 0; i < plugtest_nblocks; i++) {
        if (plugtest_blocks[i].ptr == out->pixels) {
            free(out->pixels);
            plugtest_forget(i);
            break;
        }
    }
    assert_int_equal(plugtest_nblocks, 0);
    out->pixels = NULL;
}

void plugtest_apply_fails(const struct pixflow_plugin *d, const char *config,
                          const struct pixflow_image *in, int budget, const char *want)
{
    void *state = plugtest_init(d, config);
    struct pixflow_image out;
    char err[256];

    plugtest_alloc_budget = budget;
    assert_int_equal(plugtest_apply(d, state, in, &out, err, sizeof(err)), -1);
    plugtest_alloc_budget = -1;
    assert_string_equal(err, want);
    plugtest_destroy(d, state);
}

struct pixflow_image plugtest_same_size(const struct pixflow_plugin *d, const char *config,
                                        uint32_t w, uint32_t h, uint32_t c, size_t pad,
                                        int writable, const unsigned char *px)
{
    struct pixflow_image in = plugtest_image(w, h, c, pad, px), out, packed;
    void *state = plugtest_init(d, config);
    char err[256];

    in.flags = writable ? PIXFLOW_IMAGE_WRITABLE : 0;
    if (plugtest_apply(d, state, &in, &out, err, sizeof(err)) != 0)
        fail_msg("apply() with \"%s\" failed: %s", config, err);
    assert_int_equal(out.width, w);
    assert_int_equal(out.height, h);
    assert_int_equal(out.channels, c);
    if (writable) {
        assert_ptr_equal(out.pixels, in.pixels);
        assert_int_equal(out.stride, in.stride);
        for (uint32_t y = 0; y < h; y++) /* the padding is not the picture's */
            for (size_t i = (size_t)w * c; i < in.stride; i++)
                assert_int_equal(in.pixels[y * in.stride + i], 0xee);
    } else {
        assert_ptr_not_equal(out.pixels, in.pixels);
        assert_int_equal(plugtest_live_blocks(), 1); /* from host->alloc() */
    }
    packed = plugtest_image(w, h, c, 0, plugtest_packed(&out));
    plugtest_result_free(&out);
    plugtest_image_free(&in);
    plugtest_destroy(d, state);
    return packed;
}

const unsigned char *plugtest_packed(const struct pixflow_image *im)
{
    static unsigned char *buf;
    static size_t cap;
    size_t row = (size_t)im->width * im->channels;

    if (row * im->height > cap) {
        free(buf);
        cap = row * im->height;
        buf = malloc(cap);
        assert_non_null(buf);
    }
    for (uint32_t y = 0; y < im->height; y++)
        memcpy(buf + y * row, im->pixels + y * im->stride, row);
    return buf;
}
