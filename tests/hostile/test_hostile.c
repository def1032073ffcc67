/* test_hostile.c -- every hostile picture through the CPU stage: the stored ones stored (upright),
 * the others refused with their reason, each within a time bound, and the bombs without their
 * memory (the allocation counter of the decoder stays far below what they declare). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hostile.h"
#include "image.h"
#include "process.h"

/* The worker's defaults, but a CPU budget that the 379-scan picture (about 0.7 s of decoding here,
 * more under ASan) cannot meet and the honest ones easily do. */
static const struct process_limits lim = {
    .max_pixels = 25000000,
    .max_dimension = PROCESS_DEFAULT_MAX_DIMENSION,
    .image = {IMAGE_DEFAULT_MAX_SCANS, 100, PROCESS_DEFAULT_DECODE_MEMORY},
    .decode_memory = PROCESS_DEFAULT_DECODE_MEMORY,
};

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void test_every_case_settles_with_its_reason(void **unused)
{
    process_budget_init((size_t)lim.decode_memory);
    for (const struct hostile_case *c = hostile_cases(0); c->file != NULL; c++) {
        size_t n = 0, before;
        unsigned char *d = c->make(&n);
        struct process_out out;
        char why[64], err[512];
        enum process_status st;
        struct timespec t0;

        assert_non_null(d);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        before = image_decoder_bytes();
        st = process_run(NULL, &lim, d, n, &out, why, sizeof(why), err, sizeof(err));
        print_message("%-18s %-20s %6.3f s %s\n", c->file, st == PROCESS_OK ? "stored" : why,
                      seconds_since(&t0), st == PROCESS_OK ? "" : err);
        assert_true(seconds_since(&t0) < 5.0);
        if (c->reason == NULL) {
            assert_int_equal(st, PROCESS_OK);
            process_out_free(&out);
        } else {
            assert_int_equal(st, PROCESS_PERMANENT);
            assert_string_equal(why, c->reason);
        }
        if (strcmp(c->file, "inflate_bomb.png") == 0 || strcmp(c->file, "huge_header.png") == 0)
            assert_true(image_decoder_bytes() - before < 1 << 20);
        free(d);
    }
}

/* EXIF 6: the 64 x 32 picture is stored 32 x 64, its top-left pixel the stored bottom-left. */
static void test_exif_orientation_applied(void **unused)
{
    size_t n = 0;
    unsigned char *d = hostile_jpeg(64, 32, 3, -1, 6, &n);
    struct image_info info;
    struct pixflow_image plain, turned;
    char err[256];

    assert_int_equal(image_probe(d, n, &info, err, sizeof(err)), IMAGE_OK);
    assert_int_equal(info.orientation, 6);
    assert_int_equal(image_decode(d, n, &info, 3, &turned, err, sizeof(err)), IMAGE_OK);
    assert_int_equal(turned.width, 32);
    assert_int_equal(turned.height, 64);
    info.orientation = 1;
    assert_int_equal(image_decode(d, n, &info, 3, &plain, err, sizeof(err)), IMAGE_OK);
    for (size_t y = 0; y < 64; y++)
        for (size_t x = 0; x < 32; x++) /* upright (x, y) is stored (y, 31 - x) */
            assert_memory_equal(turned.pixels + (y * 32 + x) * 3,
                                plain.pixels + ((31 - x) * 64 + y) * 3, 3);
    free(plain.pixels);
    free(turned.pixels);
    free(d);
}

/* Gray from a colour JPEG is pixflow_luma() of its RGB whichever side makes it. */
static void test_gray_is_luma_of_rgb(void **unused)
{
    size_t n = 0;
    unsigned char *d = hostile_jpeg(48, 40, 3, 0, 1, &n);
    struct image_info info;
    struct pixflow_image rgb, gray;
    char err[256];

    assert_int_equal(image_probe(d, n, &info, err, sizeof(err)), IMAGE_OK);
    assert_int_equal(image_decode(d, n, &info, 3, &rgb, err, sizeof(err)), IMAGE_OK);
    assert_int_equal(image_decode(d, n, &info, 1, &gray, err, sizeof(err)), IMAGE_OK);
    for (size_t i = 0; i < 48 * 40; i++)
        assert_int_equal(gray.pixels[i], pixflow_luma(rgb.pixels[3 * i], rgb.pixels[3 * i + 1],
                                                      rgb.pixels[3 * i + 2]));
    free(rgb.pixels);
    free(gray.pixels);
    free(d);
}

/* A picture costing more than the whole budget is refused; one that fits waits its turn. */
static void test_budget_refuses_what_cannot_fit(void **unused)
{
    size_t n = 0;
    unsigned char *d = hostile_jpeg(640, 480, 3, -1, 1, &n);
    struct process_out out;
    char why[64], err[512];

    process_budget_init(640 * 480 * 3); /* less than pixels in + pixels out */
    assert_int_equal(process_run(NULL, &lim, d, n, &out, why, sizeof(why), err, sizeof(err)),
                     PROCESS_PERMANENT);
    assert_string_equal(why, "too_many_pixels");
    assert_non_null(strstr(err, "decode memory budget"));
    process_budget_init(64 << 20);
    assert_int_equal(process_run(NULL, &lim, d, n, &out, why, sizeof(why), err, sizeof(err)),
                     PROCESS_OK);
    process_out_free(&out);
    process_budget_init(0);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_case_settles_with_its_reason),
        cmocka_unit_test(test_exif_orientation_applied),
        cmocka_unit_test(test_gray_is_luma_of_rgb),
        cmocka_unit_test(test_budget_refuses_what_cannot_fit),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
