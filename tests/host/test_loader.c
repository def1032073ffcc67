/* test_loader.c -- the plugin host against the real grayscale plugin and the test plugins of
 * tests/plugins/broken: every refusal and its message, chain syntax, channel conversions, views,
 * strided and in-place results, contract violations, counters, per-thread states. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digest.h"
#include "host.h"
#include "chain.h"

/* ---- a counter sink ---- */

#define SINK_MAX 64

static struct {
    pthread_mutex_t lock;
    char names[SINK_MAX][80];
    long long values[SINK_MAX];
    int n;
} sink = {PTHREAD_MUTEX_INITIALIZER, {{0}}, {0}, 0};

static void sink_add(void *arg, const char *name, long long delta)
{
    int i;

    pthread_mutex_lock(&sink.lock);
    for (i = 0; i < sink.n && strcmp(sink.names[i], name) != 0; i++)
        ;
    if (i == sink.n && sink.n < SINK_MAX) {
        snprintf(sink.names[sink.n++], sizeof(sink.names[0]), "%s", name);
        sink.values[i] = 0;
    }
    if (i < SINK_MAX)
        sink.values[i] += delta;
    pthread_mutex_unlock(&sink.lock);
}

/* -1 when the counter was never touched. */
static long long sink_get(const char *name)
{
    long long v = -1;

    pthread_mutex_lock(&sink.lock);
    for (int i = 0; i < sink.n; i++)
        if (strcmp(sink.names[i], name) == 0)
            v = sink.values[i];
    pthread_mutex_unlock(&sink.lock);
    return v;
}

static void sink_reset(void)
{
    pthread_mutex_lock(&sink.lock);
    sink.n = 0;
    pthread_mutex_unlock(&sink.lock);
}

/* ---- fixtures ---- */

static const char *build_dir(void)
{
    const char *d = getenv("PIXFLOW_BUILD_DIR");

    if (d == NULL)
        fail_msg("PIXFLOW_BUILD_DIR is not set (run through ctest)");
    return d;
}

static void path_in(char *buf, size_t len, const char *sub)
{
    snprintf(buf, len, "%s/%s", build_dir(), sub);
}

/* A loader with grayscale and everything the test folder holds. */
static struct loader *full_loader(void)
{
    struct loader *l = loader_new(sink_add, NULL);
    char path[4096], err[512];

    assert_non_null(l);
    path_in(path, sizeof(path), "lib/pixflow/plugins/grayscale.so");
    assert_int_equal(loader_load(l, path, err, sizeof(err)), 0);
    path_in(path, sizeof(path), "tests/plugins/broken");
    assert_true(loader_scan(l, path, err, sizeof(err)) > 0);
    return l;
}

static struct chain *chain_ok(struct loader *l, const char *spec)
{
    char err[512] = "";
    struct chain *c = loader_chain_new(l, spec, err, sizeof(err));

    if (c == NULL)
        fail_msg("chain \"%s\": %s", spec, err);
    return c;
}

static void chain_fails(struct loader *l, const char *spec, const char *want)
{
    char err[512] = "";
    struct chain *c = loader_chain_new(l, spec, err, sizeof(err));

    assert_null(c);
    if (strstr(err, want) == NULL)
        fail_msg("chain \"%s\": error \"%s\" lacks \"%s\"", spec, err, want);
}

static struct pixflow_image image_new(uint32_t w, uint32_t h, uint32_t ch, const unsigned char *px)
{
    struct pixflow_image im = {w, h, ch, PIXFLOW_IMAGE_WRITABLE, (size_t)w * ch, NULL, 0, 0};

    im.pixels = malloc(im.stride * h);
    assert_non_null(im.pixels);
    memcpy(im.pixels, px, im.stride * h);
    return im;
}

/* Runs spec on a w x h x ch picture; checks success and returns the result. */
static struct pixflow_image run_ok(struct loader *l, const char *spec, uint32_t w, uint32_t h,
                                   uint32_t ch, const unsigned char *px)
{
    struct chain *c = chain_ok(l, spec);
    struct pixflow_image in = image_new(w, h, ch, px), out;
    char err[512] = "";

    if (chain_apply(c, &in, &out, err, sizeof(err)) != CHAIN_OK)
        fail_msg("chain \"%s\": %s", spec, err);
    assert_null(in.pixels); /* taken */
    assert_int_equal(out.stride, (size_t)out.width * out.channels);
    chain_free(c);
    return out;
}

static void run_fails(struct loader *l, const char *spec, enum chain_status want_st,
                      const char *want)
{
    static const unsigned char px[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    struct chain *c = chain_ok(l, spec);
    struct pixflow_image in = image_new(2, 2, 3, px), out;
    char err[512] = "";

    assert_int_equal(chain_apply(c, &in, &out, err, sizeof(err)), want_st);
    if (strstr(err, want) == NULL)
        fail_msg("chain \"%s\": error \"%s\" lacks \"%s\"", spec, err, want);
    assert_null(out.pixels);
    chain_free(c);
}

/* ---- loading ---- */

static void test_load_grayscale(void **unused)
{
    struct loader *l = loader_new(NULL, NULL);
    const struct loader_plugin_info *p;
    char path[4096], err[512], sha[DIGEST_HEX_LEN + 1];

    path_in(path, sizeof(path), "lib/pixflow/plugins/grayscale.so");
    assert_int_equal(loader_load(l, path, err, sizeof(err)), 0);
    assert_int_equal(loader_count(l), 1);
    p = loader_plugin(l, 0);
    assert_string_equal(p->name, "grayscale");
    assert_string_equal(p->version, "1.1.0");
    assert_non_null(p->description);
    assert_string_equal(p->path, path);
    assert_int_equal(p->abi_major, 1);
    assert_int_equal(p->abi_minor, 1);
    assert_int_equal(p->flags, PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC | PIXFLOW_IN_PLACE);
    assert_int_equal(p->inputs, PIXFLOW_INPUT_ANY);
    assert_int_equal(digest_sha256_file(path, sha, err, sizeof(err)), 0);
    assert_string_equal(p->sha256, sha);

    assert_int_equal(loader_load(l, path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "duplicate plugin name 'grayscale'"));
    assert_int_equal(loader_count(l), 1);
    assert_int_equal(loader_rejected_count(l), 1);
    assert_string_equal(loader_rejected(l, 0)->error, err);

    assert_int_equal(loader_load(l, "/nonexistent/x.so", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent/x.so"));
    path_in(path, sizeof(path), "CMakeCache.txt"); /* a file, but no shared object */
    assert_int_equal(loader_load(l, path, err, sizeof(err)), -1);
    assert_int_equal(loader_count(l), 1);
    loader_free(l);
}

static const char *rejection_of(const struct loader *l, const char *file)
{
    for (size_t i = 0; i < loader_rejected_count(l); i++) {
        const char *p = loader_rejected(l, i)->path;
        size_t n = strlen(p), m = strlen(file);

        if (n > m && p[n - m - 1] == '/' && strcmp(p + n - m, file) == 0)
            return loader_rejected(l, i)->error;
    }
    return NULL;
}

static void test_scan_rejects_each_defect(void **unused)
{
    struct loader *l = loader_new(NULL, NULL);
    char dir[4096], err[512], too_small[128], dup[4200];
    const struct {
        const char *file, *want;
    } v[] = {
        {"wrong_major.so", "ABI major 2, this pixflow speaks 1"},
        {"newer_minor.so", "ABI 1.2 is newer than this pixflow's 1.1"},
        {"too_small.so", too_small},
        {"no_entry.so", "no pixflow_plugin_entry symbol: not a pixflow plugin"},
        {"entry_null.so", "pixflow_plugin_entry returned NULL"},
        {"null_apply.so", "plugin broken has no apply function"},
        {"bad_name.so", "invalid name 'Bad Name' (want [a-z0-9_-], 1 to 32 characters)"},
        {"half_thread_hooks.so", "plugin broken has only one of thread_init and thread_destroy"},
        {"dup_b.so", dup},
        {"format_name.so", "plugin name 'jpeg' is an output format's (the host encodes it)"},
        {"shrunk_no_size.so",
         "plugin broken declares accepts 0x2 (PIXFLOW_ACCEPT_SHRUNK needs output_size)"},
    };
    int loaded;

    snprintf(too_small, sizeof(too_small), "descriptor of %zu bytes, ABI 1.1 needs at least %zu",
             offsetof(struct pixflow_plugin, apply), PIXFLOW_PLUGIN_MIN_SIZE_1_1);
    path_in(dir, sizeof(dir), "tests/plugins/broken");
    snprintf(dup, sizeof(dup), "duplicate plugin name 'dup', already loaded from %s/dup_a.so", dir);
    loaded = loader_scan(l, dir, err, sizeof(err));
    assert_int_equal(loader_rejected_count(l), sizeof(v) / sizeof(v[0]));
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        const char *e = rejection_of(l, v[i].file);

        if (e == NULL || strcmp(e, v[i].want) != 0)
            fail_msg("%s: got \"%s\", want \"%s\"", v[i].file, e ? e : "(loaded)", v[i].want);
    }
    /* dup_a, init_fail and the 13 probes */
    assert_int_equal(loaded, 15);
    assert_int_equal(loader_count(l), 15);
    for (size_t i = 0; i < loader_count(l); i++) {
        if (strcmp(loader_plugin(l, i)->name, "dup") == 0)
            assert_null(loader_plugin(l, i)->description);   /* dup_a's, not dup_b's */
        if (strcmp(loader_plugin(l, i)->name, "old10") == 0) /* a 1.0 descriptor still loads */
            assert_int_equal(loader_plugin(l, i)->abi_minor, 0);
    }

    assert_int_equal(loader_scan(l, "/nonexistent-dir", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent-dir"));
    loader_free(l);
}

/* ---- chains ---- */

static void test_chain_syntax(void **unused)
{
    struct loader *l = full_loader(), *empty = loader_new(NULL, NULL);
    struct chain *c;

    c = chain_ok(l, " grayscale , crop : x=1;y=1;w=2;h=2 ");
    assert_int_equal(chain_length(c), 2);
    assert_string_equal(chain_link(c, 0)->name, "grayscale");
    assert_string_equal(chain_link(c, 0)->config, "");
    assert_string_equal(chain_link(c, 1)->name, "crop");
    assert_string_equal(chain_link(c, 1)->version, "1.2.3");
    assert_string_equal(chain_link(c, 1)->config, "x=1;y=1;w=2;h=2");
    assert_string_equal(chain_link(c, 0)->sha256, loader_plugin(l, 0)->sha256);
    assert_null(chain_link(c, 2));
    chain_free(c);

    c = chain_ok(l, "");
    assert_int_equal(chain_length(c), 0);
    chain_free(c);
    c = chain_ok(l, "grayscale,grayscale"); /* two links, two states */
    assert_int_equal(chain_length(c), 2);
    chain_free(c);

    chain_fails(l, "grayscale,nope", "unknown transform \"nope\" (available: grayscale, ");
    chain_fails(empty, "grayscale", "unknown transform \"grayscale\" (available: none");
    chain_fails(l, ",grayscale", "empty transform name at position 1");
    chain_fails(l, "grayscale,,crop", "empty transform name at position 2");
    chain_fails(l, "grayscale:strength=2", "grayscale: grayscale takes no options");
    chain_fails(l, "serial:x=1", "serial takes no options, got \"x=1\"");
    chain_fails(l, "crop:x=1;bogus=2", "crop: unknown key \"bogus\"");
    chain_fails(l, "crop:x", "crop: malformed config \"x\"");
    chain_fails(l, "grayscale,init_fail:weights.bin",
                "init_fail: cannot open model file \"weights.bin\"");
    loader_free(empty);
    loader_free(l);
}

static void test_input_channels(void **unused)
{
    struct loader *l = full_loader();
    struct chain *gray = chain_ok(l, "grayscale"), *rgba = chain_ok(l, "rgba_only");
    struct chain *g1 = chain_ok(l, "gray_only"), *none = chain_ok(l, "");
    const struct {
        struct chain *c;
        int stored, want;
    } v[] = {
        {gray, 1, 1}, {gray, 2, 4}, {gray, 3, 3}, {gray, 4, 4}, /* takes everything */
        {rgba, 1, 4}, {rgba, 2, 4}, {rgba, 3, 4}, {rgba, 4, 4}, /* expanded by the decoder */
        {g1, 1, 1},   {g1, 2, 1},   {g1, 3, 3},   {g1, 4, 4},   /* reduced by the chain */
        {none, 1, 1}, {none, 2, 4}, {none, 3, 3}, {NULL, 2, 4}, {NULL, 3, 3},
    };

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        if (chain_input_channels(v[i].c, v[i].stored) != v[i].want)
            fail_msg("case %zu: stored %d gives %d, want %d", i, v[i].stored,
                     chain_input_channels(v[i].c, v[i].stored), v[i].want);
    chain_free(gray);
    chain_free(rgba);
    chain_free(g1);
    chain_free(none);
    loader_free(l);
}

static void test_conversions_between_links(void **unused)
{
    static const unsigned char rgb[6] = {255, 0, 0, 10, 200, 30};
    static const unsigned char rgba[8] = {255, 0, 0, 0, 10, 200, 30, 99};
    static const unsigned char g[2] = {7, 250};
    struct loader *l = full_loader();
    struct pixflow_image o;

    o = run_ok(l, "rgba_only", 2, 1, 1, g);
    assert_int_equal(o.channels, 4);
    assert_memory_equal(o.pixels, "\x07\x07\x07\xff\xfa\xfa\xfa\xff", 8);
    free(o.pixels);
    o = run_ok(l, "rgba_only", 2, 1, 3, rgb);
    assert_memory_equal(o.pixels, "\xff\x00\x00\xff\x0a\xc8\x1e\xff", 8);
    free(o.pixels);
    o = run_ok(l, "gray_only", 2, 1, 3, rgb);
    assert_int_equal(o.channels, 1);
    assert_int_equal(o.pixels[0], (299 * 255 + 500) / 1000);
    assert_int_equal(o.pixels[1], (299 * 10 + 587 * 200 + 114 * 30 + 500) / 1000);
    free(o.pixels);
    o = run_ok(l, "gray_only", 2, 1, 4, rgba); /* alpha ignored */
    assert_int_equal(o.pixels[0], 76);
    assert_int_equal(o.pixels[1], (299 * 10 + 587 * 200 + 114 * 30 + 500) / 1000);
    free(o.pixels);
    o = run_ok(l, "gray_only,rgba_only", 2, 1, 3, rgb);
    assert_int_equal(o.channels, 4);
    assert_memory_equal(o.pixels, "\x4c\x4c\x4c\xff\x7c\x7c\x7c\xff", 8);
    free(o.pixels);
    o = run_ok(l, "grayscale", 2, 1, 4, rgba);
    assert_int_equal(o.channels, 1);
    assert_memory_equal(o.pixels, "\x4c\x7c", 2);
    free(o.pixels);
    loader_free(l);
}

static void test_views_strides_in_place(void **unused)
{
    unsigned char px[16], rgb[12];
    struct loader *l = full_loader();
    struct chain *c;
    struct pixflow_image o, in;
    unsigned char *before;
    char err[256];

    for (int i = 0; i < 16; i++)
        px[i] = (unsigned char)i;
    for (int i = 0; i < 12; i++)
        rgb[i] = (unsigned char)(100 + i);
    o = run_ok(l, "crop:x=1;y=1;w=2;h=2", 4, 4, 1, px); /* a view, packed on the way out */
    assert_int_equal(o.width, 2);
    assert_int_equal(o.height, 2);
    assert_memory_equal(o.pixels, "\x05\x06\x09\x0a", 4);
    free(o.pixels);
    o = run_ok(l, "border:value=7", 2, 2, 3, rgb); /* new buffer with padded rows */
    assert_int_equal(o.width, 4);
    assert_int_equal(o.height, 4);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            for (int k = 0; k < 3; k++) {
                int inside = x >= 1 && x <= 2 && y >= 1 && y <= 2;

                assert_int_equal(o.pixels[(y * 4 + x) * 3 + k],
                                 inside ? rgb[((y - 1) * 2 + x - 1) * 3 + k] : 7);
            }
    free(o.pixels);
    o = run_ok(l, "crop:x=1;y=0;w=3;h=2,border:value=0,invert", 4, 4, 1, px);
    assert_int_equal(o.width, 5);
    assert_int_equal(o.height, 4);
    assert_memory_equal(o.pixels,
                        "\xff\xff\xff\xff\xff"
                        "\xff\xfe\xfd\xfc\xff"
                        "\xff\xfa\xf9\xf8\xff"
                        "\xff\xff\xff\xff\xff",
                        20);
    free(o.pixels);

    /* in place: the result lives in the very buffer that was decoded */
    c = chain_ok(l, "grayscale,invert");
    in = image_new(2, 2, 3, rgb);
    before = in.pixels;
    assert_int_equal(chain_apply(c, &in, &o, err, sizeof(err)), CHAIN_OK);
    assert_ptr_equal(o.pixels, before);
    assert_int_equal(o.channels, 1);
    assert_int_equal(o.pixels[0], 255 - ((299 * 100 + 587 * 101 + 114 * 102 + 500) / 1000));
    free(o.pixels);
    chain_free(c);
    loader_free(l);
}

static void test_contract_violations_and_failures(void **unused)
{
    struct loader *l = full_loader();

    sink_reset();
    run_fails(l, "bad_buffer", CHAIN_FAILED,
              "bad_buffer: returned a buffer that host->alloc() did not give");
    run_fails(l, "overrun", CHAIN_FAILED, "overrun: returned an image larger than its buffer");
    /* under ASan, a leak here means the host did not free what the plugin left */
    run_fails(l, "fail_alloc", CHAIN_FAILED, "fail_alloc: gave up after allocating");
    run_fails(l, "grayscale,silent_fail", CHAIN_FAILED, "silent_fail: failed without a message");
    run_fails(l, "crop:x=5;y=5;w=1;h=1", CHAIN_FAILED, "crop: crop 1x1+5+5 outside 2x2");
    assert_int_equal(sink_get("transform:bad_buffer:failed"), 1);
    assert_int_equal(sink_get("transform:fail_alloc:failed"), 1);
    assert_int_equal(sink_get("transform:grayscale:ok"), 1);
    assert_int_equal(sink_get("transform:silent_fail:ok"), -1);
    loader_free(l);
}

static void test_plugin_counters_and_log(void **unused)
{
    static const unsigned char g[4] = {1, 2, 3, 4};
    struct loader *l = full_loader();
    struct pixflow_image o;

    sink_reset();
    o = run_ok(l, "chatty", 2, 2, 1, g);
    free(o.pixels);
    o = run_ok(l, "chatty", 2, 2, 1, g);
    free(o.pixels);
    assert_int_equal(sink_get("transform:chatty:hits"), 2);
    assert_int_equal(sink_get("transform:chatty:ok"), 2); /* the plugin's "ok" was dropped */
    assert_true(sink_get("transform:chatty:usec") >= 0);
    assert_int_equal(sink_get("transform:chatty:Not-Valid"), -1);
    loader_free(l);
}

struct pool_arg {
    const struct chain *chain;
    int failures;
};

static void *pool_thread(void *p)
{
    struct pool_arg *a = p;
    unsigned char px[300];

    for (int i = 0; i < 25; i++) {
        struct pixflow_image in, out;
        char err[256];

        for (int k = 0; k < 300; k++)
            px[k] = (unsigned char)(k + i);
        in = image_new(10, 10, 3, px);
        if (chain_apply(a->chain, &in, &out, err, sizeof(err)) != CHAIN_OK) {
            fprintf(stderr, "%s\n", err);
            a->failures++;
            continue;
        }
        a->failures += out.channels != 1 || out.pixels[0] != pixflow_luma(0 + i, 1 + i, 2 + i);
        free(out.pixels);
    }
    return NULL;
}

/* Per-thread states are made on each thread's first picture and ended with the thread; a plugin
 * that is not thread-safe never runs twice at once. */
static void test_threads(void **unused)
{
    struct loader *l = full_loader();
    struct chain *c = chain_ok(l, "threaded,serial,grayscale");
    struct pool_arg a[4];
    pthread_t th[4];
    static const unsigned char g[1] = {9};
    struct pixflow_image in, out;
    char err[256];

    sink_reset();
    for (int i = 0; i < 4; i++) {
        a[i].chain = c;
        a[i].failures = 0;
        assert_int_equal(pthread_create(&th[i], NULL, pool_thread, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(a[i].failures, 0);
    }
    assert_int_equal(sink_get("transform:threaded:thread_inits"), 4);
    assert_int_equal(sink_get("transform:threaded:thread_destroys"), 4);
    assert_int_equal(sink_get("transform:threaded:thread_pictures"), 100);
    assert_int_equal(sink_get("transform:serial:ok"), 100);

    in = image_new(1, 1, 1, g); /* this thread too, ended by chain_free() */
    assert_int_equal(chain_apply(c, &in, &out, err, sizeof(err)), CHAIN_OK);
    free(out.pixels);
    assert_int_equal(sink_get("transform:threaded:thread_inits"), 5);
    chain_free(c);
    assert_int_equal(sink_get("transform:threaded:thread_destroys"), 5);
    loader_free(l);
}

/* Copies src to dst with mode, replacing dst's content in place if it exists (same inode). */
static void put_file(const char *src, const char *dst, mode_t mode)
{
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "r+b");
    char buf[65536];
    size_t n;
    if (out == NULL)
        out = fopen(dst, "wb");
    assert_non_null(in);
    assert_non_null(out);
    assert_int_equal(ftruncate(fileno(out), 0), 0);
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
    assert_int_equal(chmod(dst, mode), 0);
}

static void test_files_checked_and_loaded_from_a_private_copy(void **unused)
{
    char dir[] = "/tmp/test_loader_XXXXXX", so[512], src[4096], err[512], sha[DIGEST_HEX_LEN + 1];
    struct stat before, after;
    assert_non_null(mkdtemp(dir));
    snprintf(so, sizeof(so), "%s/x.so", dir);

    path_in(src, sizeof(src), "lib/pixflow/plugins/grayscale.so");
    put_file(src, so, 0666);
    struct loader *l = loader_new(NULL, NULL);
    assert_int_equal(loader_load(l, so, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "writable by others (mode 0666)"));
    assert_int_equal(chmod(so, 0620), 0);
    assert_int_equal(loader_load(l, so, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "writable by its group"));
    assert_int_equal(loader_load(l, dir, err, sizeof(err)), -1);
    assert_string_equal(err, "not a regular file");

    assert_int_equal(chmod(so, 0755), 0);
    assert_int_equal(loader_load(l, so, err, sizeof(err)), 0);
    assert_string_equal(loader_plugin(l, 0)->name, "grayscale");
    assert_string_equal(loader_plugin(l, 0)->path, so);
    assert_int_equal(stat(so, &before), 0);
    assert_string_equal(l->tmpdir, "");

    /* Replaced in place while loaded: a new loader runs the new file, not the mapped one. */
    path_in(src, sizeof(src), "lib/pixflow/plugins/invert.so");
    put_file(src, so, 0755);
    assert_int_equal(stat(so, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino);
    struct loader *l2 = loader_new(NULL, NULL);
    assert_int_equal(loader_load(l2, so, err, sizeof(err)), 0);
    assert_string_equal(loader_plugin(l2, 0)->name, "invert");
    assert_int_equal(digest_sha256_file(so, sha, err, sizeof(err)), 0);
    assert_string_equal(loader_plugin(l2, 0)->sha256, sha);
    assert_string_equal(loader_plugin(l, 0)->name, "grayscale"); /* the old one is untouched */
    /* The private copy and its folder are gone once mapped. */
    assert_string_equal(l->tmpdir, "");
    assert_string_equal(l2->tmpdir, "");
    loader_free(l);
    loader_free(l2);
    unlink(so);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_grayscale),
        cmocka_unit_test(test_files_checked_and_loaded_from_a_private_copy),
        cmocka_unit_test(test_scan_rejects_each_defect),
        cmocka_unit_test(test_chain_syntax),
        cmocka_unit_test(test_input_channels),
        cmocka_unit_test(test_conversions_between_links),
        cmocka_unit_test(test_views_strides_in_place),
        cmocka_unit_test(test_contract_violations_and_failures),
        cmocka_unit_test(test_plugin_counters_and_log),
        cmocka_unit_test(test_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
