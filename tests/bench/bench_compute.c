/* bench_compute.c -- throughput of the consumer's CPU stage (process_run) on picsum-like JPEGs.
 *
 *   bench_compute [--threads N] [--seconds S] [--transforms SPEC] [--plugins DIR] [--json]
 *                 [FILE.jpg...]           SPEC may end with an output format: png:level=N, jpeg...
 *   bench_compute --sweep [--ref-bytes N] [--levels 1,2,...] [FILE.jpg...]
 *                                          PNG filter/level trade-offs, 1 thread
 *   bench_compute --decode-limit [FILE.jpg...]    luma-only JPEG decoding, the gray result's limit
 *   bench_compute --write-samples DIR                      write the default pictures and exit
 *
 * Without files it renders the default set in memory with the image server's own generator
 * (tests/picsum/image.c): same scenes, same progressive JPEG encoder. tests/bench/bench_pillow.py
 * runs Pillow on the same files and compares. A benchmark prints figures; it asserts nothing. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../picsum/image.h"
#include "image.h"
#include "chain.h"
#include "log.h"
#include "png.h"
#include "process.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STBI_WRITE_NO_STDIO
#include "stb_begin.h"
#include <stb/stb_image_write.h>
#include "stb_end.h"

/* picsum-like catalogue: portrait and landscape, thumbnails to 3 megapixels */
static const int bench_sizes[][2] = {
    {200, 300},  {300, 200},   {400, 600},  {500, 500},  {640, 480},   {800, 600},
    {1024, 768}, {1080, 1080}, {1280, 720}, {1600, 900}, {1920, 1080}, {2000, 1500},
};
#define BENCH_NSIZES ((int)(sizeof(bench_sizes) / sizeof(bench_sizes[0])))

struct bench_file {
    char name[64];
    unsigned char *data;
    size_t len;
    long pixels;
    size_t png_len;
};

struct bench {
    struct bench_file *files;
    int nfiles;
    const struct chain *chain;
    struct process_limits limits;
    double seconds;
};

struct bench_worker {
    const struct bench *b;
    int first;
    pthread_t thread;
    long images, failures;
    double in_bytes, pixels, png_bytes;
    struct process_timing t;
};

static double bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int bench_read(const char *path, struct bench_file *f)
{
    FILE *fp = fopen(path, "rb");
    long n;

    if (fp == NULL || fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) <= 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        if (fp != NULL)
            fclose(fp);
        return -1;
    }
    rewind(fp);
    f->len = (size_t)n;
    f->data = malloc(f->len);
    if (f->data == NULL || fread(f->data, 1, f->len, fp) != f->len) {
        fprintf(stderr, "%s: read error\n", path);
        fclose(fp);
        return -1;
    }
    fclose(fp);
    snprintf(f->name, sizeof(f->name), "%s", strrchr(path, '/') ? strrchr(path, '/') + 1 : path);
    return 0;
}

static int bench_render(struct bench_file *f, int i)
{
    char err[256];

    snprintf(f->name, sizeof(f->name), "picsum-%02d-%dx%d.jpg", i + 1, bench_sizes[i][0],
             bench_sizes[i][1]);
    if (image_jpeg(i + 1, bench_sizes[i][0], bench_sizes[i][1], 0, &f->data, &f->len, err,
                   sizeof(err)) < 0) {
        fprintf(stderr, "render %s: %s\n", f->name, err);
        return -1;
    }
    return 0;
}

static int bench_write_samples(const char *dir)
{
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "%s: %s\n", dir, strerror(errno));
        return 1;
    }
    for (int i = 0; i < BENCH_NSIZES; i++) {
        struct bench_file f;
        char path[PATH_MAX];
        FILE *fp;

        if (bench_render(&f, i) < 0)
            return 1;
        snprintf(path, sizeof(path), "%s/%s", dir, f.name);
        fp = fopen(path, "wb");
        if (fp == NULL || fwrite(f.data, 1, f.len, fp) != f.len || fclose(fp) != 0) {
            fprintf(stderr, "%s: %s\n", path, strerror(errno));
            return 1;
        }
        free(f.data);
    }
    printf("wrote %d pictures to %s\n", BENCH_NSIZES, dir);
    return 0;
}

static void *bench_loop(void *arg)
{
    struct bench_worker *w = arg;
    const struct bench *b = w->b;
    double end = bench_now() + b->seconds;

    for (int i = w->first; bench_now() < end; i++) {
        struct bench_file *f = &b->files[i % b->nfiles];
        struct process_out out;
        char reason[64], err[256];

        if (process_run(b->chain, &b->limits, f->data, f->len, &out, reason, sizeof(reason), err,
                        sizeof(err)) != PROCESS_OK) {
            fprintf(stderr, "%s: %s: %s\n", f->name, reason, err);
            w->failures++;
            continue;
        }
        w->images++;
        w->in_bytes += (double)f->len;
        w->pixels += (double)out.origin_width * out.origin_height;
        w->png_bytes += (double)out.png_len;
        w->t.decode_us += out.timing.decode_us;
        w->t.transform_us += out.timing.transform_us;
        w->t.encode_us += out.timing.encode_us;
        w->t.digest_us += out.timing.digest_us;
        process_out_free(&out);
    }
    return NULL;
}

/* One pass over every file: sizes of what would be stored, and a warm-up. */
static int bench_sizes_pass(struct bench *b)
{
    for (int i = 0; i < b->nfiles; i++) {
        struct process_out out;
        char reason[64], err[256];

        if (process_run(b->chain, &b->limits, b->files[i].data, b->files[i].len, &out, reason,
                        sizeof(reason), err, sizeof(err)) != PROCESS_OK) {
            fprintf(stderr, "%s: %s: %s\n", b->files[i].name, reason, err);
            return -1;
        }
        b->files[i].pixels = (long)out.origin_width * out.origin_height;
        b->files[i].png_len = out.png_len;
        process_out_free(&out);
    }
    return 0;
}

static int bench_run(struct bench *b, int threads, int json, const char *spec)
{
    struct bench_worker *w = calloc((size_t)threads, sizeof(*w));
    struct bench_worker sum = {0};
    double start, elapsed, total_us;

    if (w == NULL || bench_sizes_pass(b) < 0)
        return 1;
    start = bench_now();
    for (int i = 0; i < threads; i++) {
        w[i].b = b;
        w[i].first = i * b->nfiles / threads;
        pthread_create(&w[i].thread, NULL, bench_loop, &w[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(w[i].thread, NULL);
        sum.images += w[i].images;
        sum.failures += w[i].failures;
        sum.in_bytes += w[i].in_bytes;
        sum.pixels += w[i].pixels;
        sum.png_bytes += w[i].png_bytes;
        sum.t.decode_us += w[i].t.decode_us;
        sum.t.transform_us += w[i].t.transform_us;
        sum.t.encode_us += w[i].t.encode_us;
        sum.t.digest_us += w[i].t.digest_us;
    }
    elapsed = bench_now() - start;
    total_us = (double)(sum.t.decode_us + sum.t.transform_us + sum.t.encode_us + sum.t.digest_us);
    if (total_us <= 0)
        total_us = 1;
    if (json) {
        printf("{\"threads\": %d, \"seconds\": %.3f, \"images\": %ld, \"failures\": %ld, "
               "\"images_per_s\": %.2f, \"in_mb_per_s\": %.3f, \"mpixel_per_s\": %.3f, "
               "\"split\": {\"decode\": %.4f, \"transform\": %.4f, \"encode\": %.4f, "
               "\"digest\": %.4f}, \"png_bytes\": {",
               threads, elapsed, sum.images, sum.failures, sum.images / elapsed,
               sum.in_bytes / elapsed / 1e6, sum.pixels / elapsed / 1e6, sum.t.decode_us / total_us,
               sum.t.transform_us / total_us, sum.t.encode_us / total_us,
               sum.t.digest_us / total_us);
        for (int i = 0; i < b->nfiles; i++)
            printf("%s\"%s\": %zu", i ? ", " : "", b->files[i].name, b->files[i].png_len);
        printf("}}\n");
    } else {
        size_t in = 0, out = 0;
        long px = 0;

        for (int i = 0; i < b->nfiles; i++) {
            in += b->files[i].len;
            out += b->files[i].png_len;
            px += b->files[i].pixels;
        }
        printf("pixflow CPU stage: %d pictures (%.1f Mpixel, %.2f MB of JPEG), chain \"%s\", "
               "%d thread%s, %.1f s\n",
               b->nfiles, px / 1e6, in / 1e6, spec, threads, threads > 1 ? "s" : "", elapsed);
        printf("  %.1f images/s   %.2f MB/s of JPEG in   %.1f Mpixel/s   (%ld images, %ld "
               "failed)\n",
               sum.images / elapsed, sum.in_bytes / elapsed / 1e6, sum.pixels / elapsed / 1e6,
               sum.images, sum.failures);
        printf("  split: decode %.0f%%  transforms %.0f%%  encode %.0f%%  SHA-256+base64 %.0f%%\n",
               100 * sum.t.decode_us / total_us, 100 * sum.t.transform_us / total_us,
               100 * sum.t.encode_us / total_us, 100 * sum.t.digest_us / total_us);
        printf("  per image: %.2f ms of CPU; stored %s total %zu bytes, %.3f stored bytes per "
               "source byte\n",
               total_us / 1e3 / (sum.images ? sum.images : 1), chain_format(b->chain)->name, out,
               (double)out / (double)in);
    }
    free(w);
    return sum.failures > 0;
}

/* Mpixel/s of decoding every file as req asks, one thread, best of 3 passes; -1 on failure. */
static double bench_decode_rate(struct bench *b, const struct image_request *req)
{
    double best = 1e30, pixels = 0;
    char err[256];

    for (int round = 0; round < 3; round++) {
        double t0 = bench_now();

        pixels = 0;
        for (int i = 0; i < b->nfiles; i++) {
            struct image_info info;
            struct pixflow_image im;

            if (image_probe(b->files[i].data, b->files[i].len, &info, err, sizeof(err)) !=
                    IMAGE_OK ||
                image_decode_request(b->files[i].data, b->files[i].len, &info, req, NULL, &im, err,
                                     sizeof(err)) != IMAGE_OK) {
                fprintf(stderr, "%s: %s\n", b->files[i].name, err);
                return -1;
            }
            pixels += (double)info.width * info.height;
            free(im.pixels);
        }
        if (bench_now() - t0 < best)
            best = bench_now() - t0;
    }
    return pixels / best / 1e6;
}

/* The limit for a gray result: libjpeg-turbo decoding each file's luma plane and nothing else
 * (no chain, no encoding); then what decoding to RGB and taking pixflow_luma() costs. */
static int bench_decode_limit(struct bench *b)
{
    const struct image_request luma = {1, 1, 0, 0}, rgb = {1, 0, 0, 0};
    double l = bench_decode_rate(b, &luma), r = bench_decode_rate(b, &rgb);

    if (l < 0 || r < 0)
        return 1;
    printf("JPEG decoding, 1 thread, best of 3 passes over %d pictures:\n", b->nfiles);
    printf("  luma plane only (the limit for a gray result)  %7.1f Mpixel/s\n", l);
    printf("  RGB, then pixflow_luma()                       %7.1f Mpixel/s   %.2fx slower\n", r,
           l / r);
    return 0;
}

/* ---- the PNG sweep ---- */

static const char *const bench_filter_names[] = {"none",  "sub",      "up",     "avg",
                                                 "paeth", "adaptive", "sampled"};

/* levels: bit N set for libdeflate level N; 0 for the usual 1..6 and 9. */
static int bench_sweep(struct bench *b, double ref_bytes, unsigned levels)
{
    struct pixflow_image *imgs = calloc((size_t)b->nfiles, sizeof(*imgs));
    static const int filters[] = {PNG_FILTER_NONE,   PNG_FILTER_SUB,   PNG_FILTER_UP,
                                  PNG_FILTER_AVG,    PNG_FILTER_PAETH, PNG_FILTER_ADAPTIVE,
                                  PNG_FILTER_SAMPLED};
    double raw = 0;
    char err[256];

    for (int i = 0; i < b->nfiles; i++) {
        struct image_info info;
        struct pixflow_image dec;

        if (image_probe(b->files[i].data, b->files[i].len, &info, err, sizeof(err)) != IMAGE_OK ||
            image_decode(b->files[i].data, b->files[i].len, &info,
                         chain_input_channels(b->chain, info.channels), &dec, err,
                         sizeof(err)) != IMAGE_OK ||
            chain_apply(b->chain, &dec, &imgs[i], err, sizeof(err)) != CHAIN_OK) {
            fprintf(stderr, "%s: %s\n", b->files[i].name, err);
            return 1;
        }
        raw += (double)imgs[i].stride * imgs[i].height;
    }
    printf("PNG encoders on the transformed pictures (%.1f MB raw), 1 thread, best of 3%s\n",
           raw / 1e6, ref_bytes > 0 ? ", size relative to the reference" : "");
    printf("  %-22s %12s %10s %10s%s\n", "encoder", "bytes", "ms", "MB/s",
           ref_bytes > 0 ? "   vs ref" : "");
    for (size_t f = 0; f <= sizeof(filters) / sizeof(filters[0]); f++) {
        for (int level = 0; level <= 9; level++) {
            int is_stb = f == sizeof(filters) / sizeof(filters[0]);
            struct png_params p = {level, is_stb ? PNG_FILTER_NONE : (enum png_filter)filters[f]};
            double best = 1e30, bytes = 0;
            char name[40];

            if (is_stb && level != 8)
                continue; /* stb_image_write: its default level, its own adaptive filters */
            if (!is_stb && (levels ? !(levels & 1u << level) : level > 6 && level != 9))
                continue;
            if (is_stb && levels)
                continue;
            for (int round = 0; round < 3; round++) {
                double t0 = bench_now();

                bytes = 0;
                for (int i = 0; i < b->nfiles; i++) {
                    unsigned char *png;
                    size_t len;
                    int n;

                    if (is_stb) {
                        png = stbi_write_png_to_mem(imgs[i].pixels, (int)imgs[i].stride,
                                                    (int)imgs[i].width, (int)imgs[i].height,
                                                    (int)imgs[i].channels, &n);
                        len = png != NULL ? (size_t)n : 0;
                    } else if (png_encode(&imgs[i], &p, &png, &len, err, sizeof(err)) != PNG_OK) {
                        png = NULL;
                        len = 0;
                    }
                    bytes += (double)len;
                    free(png);
                }
                if (bench_now() - t0 < best)
                    best = bench_now() - t0;
            }
            if (is_stb)
                snprintf(name, sizeof(name), "stb_image_write (8)");
            else if (level == PNG_LEVEL_HUFFMAN)
                snprintf(name, sizeof(name), "huffman-only %s", bench_filter_names[p.filter]);
            else
                snprintf(name, sizeof(name), "libdeflate %d %s", level,
                         bench_filter_names[p.filter]);
            printf("  %-22s %12.0f %10.1f %10.1f", name, bytes, best * 1e3, raw / best / 1e6);
            if (ref_bytes > 0)
                printf("   %6.3fx", bytes / ref_bytes);
            printf("\n");
        }
    }
    for (int i = 0; i < b->nfiles; i++)
        free(imgs[i].pixels);
    free(imgs);
    return 0;
}

/* build/bin/bench_compute -> build/lib/pixflow/plugins */
static void bench_default_plugins(char *buf, size_t len)
{
    char exe[PATH_MAX - 32]; /* leaves room for the suffix in a PATH_MAX buffer */
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    char *slash;

    snprintf(buf, len, "lib/pixflow/plugins");
    if (n <= 0)
        return;
    exe[n] = '\0';
    slash = strrchr(exe, '/');
    if (slash != NULL) {
        *slash = '\0';
        slash = strrchr(exe, '/');
        if (slash != NULL)
            *slash = '\0';
        snprintf(buf, len, "%s/lib/pixflow/plugins", exe);
    }
}

static void bench_usage(void)
{
    fprintf(
        stderr,
        "usage: bench_compute [--threads N] [--seconds S] [--transforms SPEC]\n"
        "                     [--plugins DIR] [--json] [--sweep [--ref-bytes N] [--levels L,L]]\n"
        "                     [--write-samples DIR] [FILE.jpg...]\n");
}

int main(int argc, char **argv)
{
    struct bench b = {
        NULL,
        0,
        NULL,
        {.max_pixels = PROCESS_DEFAULT_MAX_PIXELS, .max_dimension = PROCESS_DEFAULT_MAX_DIMENSION},
        5.0};
    int threads = (int)sysconf(_SC_NPROCESSORS_ONLN), json = 0, sweep = 0, i, rc;
    const char *spec = "grayscale", *plugins = NULL;
    double ref_bytes = 0;
    unsigned levels = 0;
    char plugin_dir[PATH_MAX], err[512];
    struct loader *l;
    struct chain *c;

    for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(opt, "--json") == 0) {
            json = 1;
        } else if (strcmp(opt, "--sweep") == 0) {
            sweep = 1;
        } else if (strcmp(opt, "--decode-limit") == 0) {
            sweep = 2;
        } else if (val == NULL) {
            bench_usage();
            return 2;
        } else if (strcmp(opt, "--threads") == 0) {
            threads = atoi(val), i++;
        } else if (strcmp(opt, "--seconds") == 0) {
            b.seconds = atof(val), i++;
        } else if (strcmp(opt, "--transforms") == 0) {
            spec = val, i++;
        } else if (strcmp(opt, "--plugins") == 0) {
            plugins = val, i++;
        } else if (strcmp(opt, "--levels") == 0) {
            for (const char *p = val; *p != '\0'; p += strspn(p, ","))
                levels |= 1u << (strtoul(p, (char **)&p, 10) & 15);
            i++;
        } else if (strcmp(opt, "--ref-bytes") == 0) {
            ref_bytes = atof(val), i++;
        } else if (strcmp(opt, "--write-samples") == 0) {
            return bench_write_samples(val);
        } else {
            bench_usage();
            return 2;
        }
    }
    if (threads < 1)
        threads = 1;
    b.nfiles = i < argc ? argc - i : BENCH_NSIZES;
    b.files = calloc((size_t)b.nfiles, sizeof(*b.files));
    for (int k = 0; k < b.nfiles; k++)
        if (b.files == NULL ||
            (i < argc ? bench_read(argv[i + k], &b.files[k]) : bench_render(&b.files[k], k)) < 0)
            return 1;

    if (plugins == NULL) {
        bench_default_plugins(plugin_dir, sizeof(plugin_dir));
        plugins = plugin_dir;
    }
    log_init("bench_compute", LL_WARN, 0);
    process_budget_init(PROCESS_DEFAULT_DECODE_MEMORY); /* as the worker does */
    l = loader_new(NULL, NULL);
    if (l == NULL || loader_scan(l, plugins, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    c = loader_chain_new(l, spec, err, sizeof(err));
    if (c == NULL) {
        fprintf(stderr, "chain: %s\n", err);
        return 1;
    }
    b.chain = c;
    rc = sweep == 2 ? bench_decode_limit(&b)
         : sweep    ? bench_sweep(&b, ref_bytes, levels)
                    : bench_run(&b, threads, json, spec);
    chain_free(c);
    loader_free(l);
    for (int k = 0; k < b.nfiles; k++)
        free(b.files[k].data);
    free(b.files);
    return rc;
}
