/* test_grayscale.c -- the grayscale plugin: exact pixels, all 2^24 colours against the BT.601
 * division, alpha ignored, gray passed through, in place and copying paths, config refusal. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "grayscale.c"

/* A host that counts allocations and can be told to run out of memory. */
static int host_fail_alloc;
static int host_allocs;

static void *host_alloc(const struct pixflow_host *h, size_t n)
{
    if (host_fail_alloc)
        return NULL;
    host_allocs++;
    return malloc(n);
}

static void host_free(const struct pixflow_host *h, void *p)
{
    free(p);
}

static const struct pixflow_host host = {
    PIXFLOW_ABI_MAJOR, PIXFLOW_ABI_MINOR, sizeof(struct pixflow_host), NULL, NULL,
    host_alloc,        host_free,
};

static unsigned reference(unsigned r, unsigned g, unsigned b)
{
    return (299 * r + 587 * g + 114 * b + 500) / 1000;
}

static void *state_new(void)
{
    const struct pixflow_plugin *d = pixflow_plugin_entry();
    void *state = NULL;
    char err[128];

    assert_int_equal(d->init(&host, "", &state, err, sizeof(err)), 0);
    return state;
}

static void test_descriptor(void **unused)
{
    const struct pixflow_plugin *d = pixflow_plugin_entry();

    assert_int_equal(d->abi_major, PIXFLOW_ABI_MAJOR);
    assert_int_equal(d->abi_minor, PIXFLOW_ABI_MINOR);
    assert_int_equal(d->struct_size, sizeof(struct pixflow_plugin));
    assert_string_equal(d->name, "grayscale");
    assert_int_equal(d->flags, PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC | PIXFLOW_IN_PLACE);
    assert_int_equal(d->inputs, PIXFLOW_INPUT_ANY);
    assert_non_null(d->apply);
}

static void test_refuses_config(void **unused)
{
    const struct pixflow_plugin *d = pixflow_plugin_entry();
    void *state = NULL;
    char err[128];

    assert_int_equal(d->init(&host, "mode=fast", &state, err, sizeof(err)), -1);
    assert_string_equal(err, "grayscale takes no options, got \"mode=fast\"");
}

static void test_known_pixels(void **unused)
{
    static const unsigned char rgb[][3] = {
        {0, 0, 0},       {255, 255, 255}, {255, 0, 0},
        {0, 255, 0},     {0, 0, 255},     {1, 1, 1},
        {128, 128, 128}, {10, 200, 30},   {2, 0, 1} /* 598 + 114 = .712 -> 1 */,
    };
    static const unsigned char want[] = {0, 255, 76, 150, 29, 1, 128, 124, 1};
    size_t n = sizeof(want);
    struct pixflow_image in = {(uint32_t)n, 1, 3, 0, n * 3, (unsigned char *)rgb, 0, 0}, out = {0};
    void *state = state_new();
    char err[128];

    assert_int_equal(grayscale.apply(state, &in, &out, err, sizeof(err)), 0);
    assert_int_equal(out.channels, 1);
    assert_int_equal(out.width, n);
    assert_int_equal(out.height, 1);
    assert_memory_equal(out.pixels, want, n);
    free(out.pixels);
}

/* Every colour once, as a 4096 x 4096 picture: the fixed-point luma equals the division. */
static void test_all_colours(void **unused)
{
    size_t n = (size_t)1 << 24;
    unsigned char *rgb = malloc(n * 3);
    struct pixflow_image in = {4096, 4096, 3, 0, 4096 * 3, rgb, 0, 0}, out = {0};
    void *state = state_new();
    char err[128];
    size_t bad = 0;

    assert_non_null(rgb);
    for (size_t i = 0; i < n; i++) {
        rgb[3 * i] = (unsigned char)(i >> 16);
        rgb[3 * i + 1] = (unsigned char)(i >> 8);
        rgb[3 * i + 2] = (unsigned char)i;
    }
    host_allocs = 0;
    assert_int_equal(grayscale.apply(state, &in, &out, err, sizeof(err)), 0);
    assert_int_equal(host_allocs, 1); /* not writable: a new buffer */
    for (size_t i = 0; i < n; i++)
        bad += out.pixels[i] != reference((unsigned)(i >> 16), (i >> 8) & 255, i & 255);
    assert_int_equal(bad, 0);
    free(out.pixels);

    /* the same through the in-place path, over the input itself */
    in.flags = PIXFLOW_IMAGE_WRITABLE;
    memset(&out, 0, sizeof(out));
    assert_int_equal(grayscale.apply(state, &in, &out, err, sizeof(err)), 0);
    assert_ptr_equal(out.pixels, rgb);
    assert_int_equal(out.stride, 4096);
    for (size_t i = 0; i < n; i++)
        bad += rgb[i] != reference((unsigned)(i >> 16), (i >> 8) & 255, i & 255);
    assert_int_equal(bad, 0);
    free(rgb);
}

/* RGBA: alpha has no effect; rows with padding (stride > row) are read correctly. */
static void test_rgba_and_stride(void **unused)
{
    enum { W = 5, H = 3, STRIDE = W * 4 + 7 };
    unsigned char px[H * STRIDE];
    struct pixflow_image in = {W, H, 4, PIXFLOW_IMAGE_WRITABLE, STRIDE, px, 0, 0}, out = {0};
    unsigned char want[H][W];
    void *state = state_new();
    char err[128];

    memset(px, 0xab, sizeof(px));
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            unsigned char *p = px + y * STRIDE + x * 4;

            p[0] = (unsigned char)(40 * x + y);
            p[1] = (unsigned char)(200 - 30 * x);
            p[2] = (unsigned char)(17 * y + x);
            p[3] = (unsigned char)(x * 60); /* transparent to opaque */
            want[y][x] = (unsigned char)reference(p[0], p[1], p[2]);
        }
    assert_int_equal(grayscale.apply(state, &in, &out, err, sizeof(err)), 0);
    assert_int_equal(out.channels, 1);
    for (int y = 0; y < H; y++)
        assert_memory_equal(out.pixels + y * out.stride, want[y], W);
}

static void test_gray_passes_through(void **unused)
{
    unsigned char px[6] = {0, 1, 2, 3, 254, 255};
    struct pixflow_image in = {3, 2, 1, 0, 3, px, 0, 0}, out = {0};
    void *state = state_new();
    char err[128];

    host_allocs = 0;
    assert_int_equal(grayscale.apply(state, &in, &out, err, sizeof(err)), 0);
    assert_ptr_equal(out.pixels, px);
    assert_int_equal(out.channels, 1);
    assert_int_equal(out.width, 3);
    assert_int_equal(host_allocs, 0);
    assert_memory_equal(px, "\x00\x01\x02\x03\xfe\xff", 6);
}

static void test_out_of_memory(void **unused)
{
    unsigned char px[12] = {0};
    struct pixflow_image in = {2, 2, 3, 0, 6, px, 0, 0}, out = {0};
    void *state = state_new();
    char err[128];

    host_fail_alloc = 1;
    assert_int_equal(grayscale.apply(state, &in, &out, err, sizeof(err)), -1);
    host_fail_alloc = 0;
    assert_string_equal(err, "grayscale: out of memory for 2x2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptor),      cmocka_unit_test(test_refuses_config),
        cmocka_unit_test(test_known_pixels),    cmocka_unit_test(test_all_colours),
        cmocka_unit_test(test_rgba_and_stride), cmocka_unit_test(test_gray_passes_through),
        cmocka_unit_test(test_out_of_memory),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
