/* chain.c -- chains of loaded plugins: built from a spec, run on pictures by many threads at
 * once, with channel conversion between links and the per-link counters. */
#include "chain.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "format.h"
#include "host.h"
#include "log.h"
#include "names.h"
#include "png.h"

struct chain_link {
    struct chain_link_info info;
    const struct loader_entry *plugin;
    void *state;
    int initialized;
    int serialize; /* neither thread-safe nor per-thread: one apply() at a time */
    pthread_mutex_t lock;
    char *config;
    char counter_ok[LOADER_NAME_MAX + 16];
    char counter_failed[LOADER_NAME_MAX + 16];
    char counter_usec[LOADER_NAME_MAX + 16];
};

/* The per-thread states of one chain (links with thread hooks), for one thread. */
struct chain_thread {
    struct chain *chain;
    void **states; /* per link: its thread state, or the shared state */
    struct chain_thread *prev, *next;
};

struct chain_threads {
    pthread_key_t key;
    pthread_mutex_t lock;
    struct chain_thread *head; /* every live thread's states, so chain_free() can end them */
};

struct chain {
    struct loader *loader;
    struct chain_link *links;
    size_t n;
    struct chain_threads *threads; /* NULL when no link has thread hooks */
    struct format format;          /* the last element's, or the default PNG */
};

/* A picture between links: the image and the allocation it lives in. */
struct chain_img {
    struct pixflow_image img;
    unsigned char *base;
    size_t size;
};

/* ---- chains: building ---- */

static char *chain_trim(char *s)
{
    char *end;

    while (*s == ' ' || *s == '\t')
        s++;
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        *--end = '\0';
    return s;
}

static void chain_thread_release(struct chain_thread *t)
{
    const struct chain *c = t->chain;

    for (size_t i = 0; i < c->n; i++) {
        const struct pixflow_plugin *d = &c->links[i].plugin->desc;

        if (d->thread_destroy != NULL)
            d->thread_destroy(c->links[i].state, t->states[i]);
    }
    free(t->states);
    free(t);
}

/* pthread key destructor: the thread that owned t is ending. */
static void chain_thread_exit(void *p)
{
    struct chain_thread *t = p;
    struct chain_threads *ts = t->chain->threads;

    pthread_mutex_lock(&ts->lock);
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        ts->head = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&ts->lock);
    chain_thread_release(t);
}

void chain_free(struct chain *c)
{
    if (c == NULL)
        return;
    if (c->threads != NULL) {
        struct chain_thread *t = c->threads->head;

        while (t != NULL) {
            struct chain_thread *next = t->next;

            chain_thread_release(t);
            t = next;
        }
        pthread_key_delete(c->threads->key);
        pthread_mutex_destroy(&c->threads->lock);
        free(c->threads);
    }
    for (size_t i = 0; i < c->n; i++) {
        struct chain_link *k = &c->links[i];

        if (k->initialized && k->plugin->desc.destroy != NULL)
            k->plugin->desc.destroy(k->state);
        if (k->serialize)
            pthread_mutex_destroy(&k->lock);
        free(k->config);
    }
    free(c->links);
    free(c);
}

static int chain_link_init(struct chain_link *k, const struct loader_entry *e, const char *config,
                           char *err, size_t errlen)
{
    const struct pixflow_plugin *d = &e->desc;
    char why[LOADER_ERR_MAX] = "";

    k->plugin = e;
    k->config = strdup(config);
    if (k->config == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    k->info.name = d->name;
    k->info.version = d->version;
    k->info.sha256 = e->sha256;
    k->info.config = k->config;
    snprintf(k->counter_ok, sizeof(k->counter_ok), C_TRANSFORM "%s:" C_T_OK, d->name);
    snprintf(k->counter_failed, sizeof(k->counter_failed), C_TRANSFORM "%s:" C_T_FAILED, d->name);
    snprintf(k->counter_usec, sizeof(k->counter_usec), C_TRANSFORM "%s:" C_T_USEC, d->name);
    if (d->init == NULL) {
        if (config[0] != '\0') {
            snprintf(err, errlen, "%s takes no options, got \"%s\"", d->name, config);
            return -1;
        }
    } else if (d->init(&e->host.pub, config, &k->state, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "%s: %s", d->name, why[0] ? why : "init failed without a message");
        return -1;
    }
    k->initialized = 1;
    if (!(d->flags & PIXFLOW_THREAD_SAFE) && d->thread_init == NULL) {
        if (pthread_mutex_init(&k->lock, NULL) != 0) {
            snprintf(err, errlen, "%s: cannot create its lock", d->name);
            return -1;
        }
        k->serialize = 1;
    }
    return 0;
}

static int chain_threads_new(struct chain *c, char *err, size_t errlen)
{
    c->threads = calloc(1, sizeof(*c->threads));
    if (c->threads == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (pthread_key_create(&c->threads->key, chain_thread_exit) != 0) {
        free(c->threads);
        c->threads = NULL;
        snprintf(err, errlen, "no thread-specific key left for per-thread plugin states");
        return -1;
    }
    pthread_mutex_init(&c->threads->lock, NULL);
    return 0;
}

/* Splits spec into links; an empty spec is the empty chain. */
static int chain_parse(struct chain *c, char *spec, char *err, size_t errlen)
{
    size_t count = 1;
    char *p = spec, *item;

    if (chain_trim(spec)[0] == '\0')
        return 0;
    for (const char *q = spec; *q; q++)
        count += *q == ',';
    c->links = calloc(count, sizeof(*c->links));
    if (c->links == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    while ((item = strsep(&p, ",")) != NULL) {
        char *colon = strchr(item, ':');
        const char *config = "";
        const struct loader_entry *e;
        char *name;
        char names[512];

        if (colon != NULL) {
            *colon = '\0';
            config = chain_trim(colon + 1);
        }
        name = chain_trim(item);
        if (name[0] == '\0') {
            snprintf(err, errlen, "empty transform name at position %zu", c->n + 1);
            return -1;
        }
        if (format_reserved(name, strlen(name))) {
            if (p != NULL) {
                snprintf(err, errlen, "output format \"%s\" must be the chain's last element",
                         name);
                return -1;
            }
            return format_parse(name, config, &c->format, err, errlen) < 0 ? -1 : 0;
        }
        e = loader_find(c->loader, name, strlen(name));
        if (e == NULL) {
            loader_names(c->loader, names, sizeof(names));
            snprintf(err, errlen, "unknown transform \"%s\" (available: %s)", name,
                     names[0] ? names : "none, no plugin loaded");
            return -1;
        }
        if (chain_link_init(&c->links[c->n++], e, config, err, errlen) < 0)
            return -1;
        if (e->desc.thread_init != NULL && c->threads == NULL &&
            chain_threads_new(c, err, errlen) < 0)
            return -1;
    }
    return 0;
}

struct chain *loader_chain_new(struct loader *l, const char *spec, char *err, size_t errlen)
{
    struct chain *c = calloc(1, sizeof(*c));
    char *copy = strdup(spec);

    if (c == NULL || copy == NULL) {
        snprintf(err, errlen, "out of memory");
        free(c);
        free(copy);
        return NULL;
    }
    c->loader = l;
    format_default(&c->format);
    if (chain_parse(c, copy, err, errlen) < 0) {
        free(copy);
        chain_free(c);
        return NULL;
    }
    free(copy);
    return c;
}

size_t chain_length(const struct chain *c)
{
    return c != NULL ? c->n : 0;
}

const struct chain_link_info *chain_link(const struct chain *c, size_t i)
{
    return i < chain_length(c) ? &c->links[i].info : NULL;
}

const struct format *chain_format(const struct chain *c)
{
    static const struct format png = {FORMAT_PNG, "png", PNG_DEFAULT_LEVEL, 0};

    return c != NULL ? &c->format : &png;
}

/* ---- chains: what the decoder may hand them ---- */

static uint32_t chain_accepts(const struct chain *c, size_t i)
{
    return c->links[i].plugin->desc.accepts;
}

int chain_takes_luma(const struct chain *c)
{
    return c != NULL && c->n > 0 && (chain_accepts(c, 0) & PIXFLOW_ACCEPT_LUMA) &&
           (c->links[0].plugin->desc.inputs & PIXFLOW_INPUT_GRAY);
}

int chain_gray_only(const struct chain *c)
{
    for (size_t i = 0; c != NULL && i < c->n; i++)
        if (!(chain_accepts(c, i) & PIXFLOW_ACCEPT_LUMA))
            return 0;
    return chain_length(c) > 0;
}

/* The link that may get a shrunk picture: the first one, or the first after links that hand a
 * gray picture back unchanged when the picture is gray. c->n when there is none. */
static size_t chain_shrink_link(const struct chain *c, int gray)
{
    size_t i = 0;

    while (gray && i < c->n && (chain_accepts(c, i) & PIXFLOW_ACCEPT_LUMA))
        i++;
    return i < c->n && (chain_accepts(c, i) & PIXFLOW_ACCEPT_SHRUNK) ? i : c->n;
}

void chain_shrink_limit(const struct chain *c, uint32_t width, uint32_t height, int gray,
                        uint32_t *min_width, uint32_t *min_height)
{
    uint32_t ow, oh;
    size_t k;

    *min_width = *min_height = 0;
    if (c == NULL)
        return;
    k = chain_shrink_link(c, gray);
    if (k == c->n ||
        c->links[k].plugin->desc.output_size(c->links[k].state, width, height, &ow, &oh) != 0)
        return;
    if (ow < 1 || oh < 1 || ow > UINT32_MAX / 2 || oh > UINT32_MAX / 2)
        return;
    /* the resampler keeps at least a factor of two: no worse than from the whole picture */
    *min_width = 2 * ow;
    *min_height = 2 * oh;
}

/* ---- chains: running ---- */

static unsigned chain_input_bit(uint32_t channels)
{
    return channels == 1   ? PIXFLOW_INPUT_GRAY
           : channels == 3 ? PIXFLOW_INPUT_RGB
                           : PIXFLOW_INPUT_RGBA;
}

/* What a link accepting `inputs` gets for a picture of `have` (1, 3, 4) channels: the same, or
 * more channels (lossless), or else fewer. */
static uint32_t chain_pick(unsigned inputs, uint32_t have)
{
    if (inputs & chain_input_bit(have))
        return have;
    switch (have) {
    case 1:
        return inputs & PIXFLOW_INPUT_RGB ? 3 : 4;
    case 3:
        return inputs & PIXFLOW_INPUT_RGBA ? 4 : 1;
    default:
        return inputs & PIXFLOW_INPUT_RGB ? 3 : 1;
    }
}

int chain_input_channels(const struct chain *c, int stored)
{
    unsigned inputs;
    uint32_t want;

    if (c == NULL || c->n == 0)
        return stored == 2 ? 4 : stored;
    inputs = c->links[0].plugin->desc.inputs;
    if (stored == 2) /* gray + alpha: the decoder keeps the alpha, or drops it for a gray link */
        return inputs & PIXFLOW_INPUT_RGBA ? 4 : inputs & PIXFLOW_INPUT_GRAY ? 1 : 3;
    want = chain_pick(inputs, (uint32_t)stored);
    /* The decoder only adds channels; reductions to gray are the chain's (pixflow_luma). */
    return (int)want > stored ? (int)want : stored;
}

static void chain_convert_row(const unsigned char *s, uint32_t from, unsigned char *d, uint32_t to,
                              uint32_t width)
{
    for (uint32_t x = 0; x < width; x++, s += from, d += to) {
        if (to == 1) {
            d[0] = pixflow_luma(s[0], s[1], s[2]);
        } else {
            d[0] = s[0];
            d[1] = from == 1 ? s[0] : s[1];
            d[2] = from == 1 ? s[0] : s[2];
            if (to == 4)
                d[3] = from == 4 ? s[3] : 255;
        }
    }
}

/* Converts cur to `to` channels: in place when that shrinks it (row y is written at or before
 * where it was read), into a new buffer otherwise. */
static enum chain_status chain_convert(struct chain_img *cur, uint32_t to, char *err, size_t errlen)
{
    struct pixflow_image *im = &cur->img;
    size_t row = (size_t)im->width * to;
    unsigned char *dst = cur->base;

    if (to > im->channels) {
        dst = im->height <= SIZE_MAX / row ? malloc(row * im->height) : NULL;
        if (dst == NULL) {
            snprintf(err, errlen, "out of memory converting %ux%u to %u channels",
                     (unsigned)im->width, (unsigned)im->height, (unsigned)to);
            return CHAIN_NOMEM;
        }
    }
    for (uint32_t y = 0; y < im->height; y++)
        chain_convert_row(im->pixels + y * im->stride, im->channels, dst + y * row, to, im->width);
    if (dst != cur->base) {
        free(cur->base);
        cur->base = dst;
        cur->size = row * im->height;
    }
    im->pixels = dst;
    im->channels = to;
    im->stride = row;
    return CHAIN_OK;
}

/* Bytes an image spans from its first pixel, or 0 when that overflows. */
static size_t chain_extent(const struct pixflow_image *im)
{
    size_t rows, row = (size_t)im->width * im->channels;

    if (__builtin_mul_overflow(im->stride, (size_t)im->height - 1, &rows) || rows > SIZE_MAX - row)
        return 0;
    return rows + row;
}

static void chain_allocs_free(struct chain_allocs *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->blocks[i].ptr);
    free(a->blocks);
    a->blocks = NULL;
    a->n = a->cap = 0;
}

/* Makes res, the answer of a successful apply(), the current picture: checks it describes real
 * memory, either inside the input's allocation or in a block from host->alloc(). */
static int chain_adopt(struct chain_img *cur, const struct pixflow_image *res,
                       struct chain_allocs *a, char *why, size_t whylen)
{
    uintptr_t p = (uintptr_t)res->pixels, base = (uintptr_t)cur->base;
    size_t extent = chain_extent(res);

    if (res->pixels == NULL || res->width < 1 || res->height < 1 ||
        (res->channels != 1 && res->channels != 3 && res->channels != 4) ||
        res->stride < (size_t)res->width * res->channels || extent == 0) {
        snprintf(why, whylen, "returned an invalid image (%ux%u, %u channels, stride %zu)",
                 (unsigned)res->width, (unsigned)res->height, (unsigned)res->channels, res->stride);
        return -1;
    }
    if (p >= base && p < base + cur->size) { /* the input itself, in place, or a view */
        if (extent > cur->size - (p - base)) {
            snprintf(why, whylen, "returned an image that overruns its input buffer");
            return -1;
        }
    } else {
        size_t i = 0;

        while (i < a->n && a->blocks[i].ptr != res->pixels)
            i++;
        if (i == a->n) {
            snprintf(why, whylen, "returned a buffer that host->alloc() did not give");
            return -1;
        }
        if (extent > a->blocks[i].size) {
            snprintf(why, whylen, "returned an image larger than its buffer (%zu > %zu bytes)",
                     extent, a->blocks[i].size);
            return -1;
        }
        free(cur->base);
        cur->base = res->pixels;
        cur->size = a->blocks[i].size;
        host_allocs_forget(a, i);
    }
    cur->img = *res;
    return 0;
}

static long long chain_usec_since(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (long long)(t1.tv_sec - t0->tv_sec) * 1000000 + (t1.tv_nsec - t0->tv_nsec) / 1000;
}

static void chain_count(const struct chain *c, const char *name, long long delta)
{
    if (c->loader->counter != NULL)
        c->loader->counter(c->loader->counter_arg, name, delta);
}

/* After the link that got a shrunk picture (source_width x source_height): it made what its
 * output_size() promised for the whole picture, or the chain would depend on the decoder. */
static int chain_shrunk_ok(const struct chain_link *k, const struct pixflow_image *in,
                           const struct pixflow_image *res, char *why, size_t whylen)
{
    const struct pixflow_plugin *d = &k->plugin->desc;
    uint32_t ow = 0, oh = 0;

    if (d->output_size(k->state, in->source_width, in->source_height, &ow, &oh) != 0 ||
        ow != res->width || oh != res->height) {
        snprintf(why, whylen,
                 "made %ux%u of a picture shrunk from %ux%u, its output_size says "
                 "%ux%u",
                 (unsigned)res->width, (unsigned)res->height, (unsigned)in->source_width,
                 (unsigned)in->source_height, (unsigned)ow, (unsigned)oh);
        return -1;
    }
    return 0;
}

static enum chain_status chain_run_link(const struct chain *c, struct chain_link *k, void *state,
                                        struct chain_img *cur, char *err, size_t errlen)
{
    const struct pixflow_plugin *d = &k->plugin->desc;
    uint32_t want = chain_pick(d->inputs, cur->img.channels);
    struct chain_allocs allocs = {NULL, 0, 0};
    struct pixflow_image res;
    char why[LOADER_ERR_MAX] = "";
    struct timespec t0;
    enum chain_status st;
    int rc;

    if (want != cur->img.channels) {
        st = chain_convert(cur, want, err, errlen);
        if (st != CHAIN_OK)
            return st;
    }
    cur->img.flags = (d->flags & PIXFLOW_IN_PLACE) ? PIXFLOW_IMAGE_WRITABLE : 0;
    memset(&res, 0, sizeof(res));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (k->serialize)
        pthread_mutex_lock(&k->lock);
    host_allocs = &allocs;
    rc = d->apply(state, &cur->img, &res, why, sizeof(why));
    host_allocs = NULL;
    if (k->serialize)
        pthread_mutex_unlock(&k->lock);
    chain_count(c, k->counter_usec, chain_usec_since(&t0));
    if (rc != 0 && why[0] == '\0')
        snprintf(why, sizeof(why), "failed without a message");
    if (rc != 0 ||
        (cur->img.source_width != 0 && chain_shrunk_ok(k, &cur->img, &res, why, sizeof(why)) < 0) ||
        chain_adopt(cur, &res, &allocs, why, sizeof(why)) < 0) {
        /* whatever it allocated during a failed call is garbage now (plugin.h) */
        chain_allocs_free(&allocs);
        chain_count(c, k->counter_failed, 1);
        snprintf(err, errlen, "%s: %s", d->name, why);
        return CHAIN_FAILED;
    }
    free(allocs.blocks); /* blocks still listed were kept by the plugin for itself */
    cur->img.source_width = cur->img.source_height = 0;
    chain_count(c, k->counter_ok, 1);
    return CHAIN_OK;
}

/* This thread's states for c, made on its first picture. */
static struct chain_thread *chain_thread_get(const struct chain *c, char *err, size_t errlen)
{
    struct chain_thread *t = pthread_getspecific(c->threads->key);
    char why[LOADER_ERR_MAX] = "";
    size_t i;

    if (t != NULL)
        return t;
    t = calloc(1, sizeof(*t));
    if (t != NULL)
        t->states = calloc(c->n, sizeof(*t->states));
    if (t == NULL || t->states == NULL) {
        free(t);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->chain = (struct chain *)c;
    for (i = 0; i < c->n; i++) {
        const struct pixflow_plugin *d = &c->links[i].plugin->desc;

        t->states[i] = c->links[i].state;
        if (d->thread_init != NULL &&
            d->thread_init(c->links[i].state, &t->states[i], why, sizeof(why)) != 0) {
            snprintf(err, errlen, "%s: thread_init: %s", d->name, why[0] ? why : "failed");
            break;
        }
    }
    if (i == c->n && pthread_setspecific(c->threads->key, t) != 0)
        snprintf(err, errlen, "cannot keep per-thread plugin states");
    else if (i == c->n) {
        pthread_mutex_lock(&c->threads->lock);
        t->next = c->threads->head;
        if (t->next != NULL)
            t->next->prev = t;
        c->threads->head = t;
        pthread_mutex_unlock(&c->threads->lock);
        return t;
    }
    while (i-- > 0) {
        const struct pixflow_plugin *d = &c->links[i].plugin->desc;

        if (d->thread_destroy != NULL)
            d->thread_destroy(c->links[i].state, t->states[i]);
    }
    free(t->states);
    free(t);
    return NULL;
}

/* Moves the rows to the start of their allocation, tightly packed (the caller frees base). */
static void chain_pack(struct chain_img *cur)
{
    struct pixflow_image *im = &cur->img;
    size_t row = (size_t)im->width * im->channels;

    if (im->pixels == cur->base && im->stride == row)
        return;
    for (uint32_t y = 0; y < im->height; y++) /* source is never before its destination */
        memmove(cur->base + y * row, im->pixels + y * im->stride, row);
    im->pixels = cur->base;
    im->stride = row;
}

enum chain_status chain_apply(const struct chain *c, struct pixflow_image *in,
                              struct pixflow_image *out, char *err, size_t errlen)
{
    struct chain_img cur;
    struct chain_thread *t = NULL;
    enum chain_status st = CHAIN_OK;
    uint32_t src_w = in->source_width, src_h = in->source_height;
    size_t shrunk;

    cur.img = *in;
    cur.img.source_width = cur.img.source_height = 0;
    cur.base = in->pixels;
    cur.size = in->stride * in->height;
    in->pixels = NULL;
    memset(out, 0, sizeof(*out));
    if (cur.base == NULL || cur.img.width < 1 || cur.img.height < 1 ||
        (cur.img.channels != 1 && cur.img.channels != 3 && cur.img.channels != 4) ||
        cur.img.stride < (size_t)cur.img.width * cur.img.channels) {
        snprintf(err, errlen, "invalid input image (%ux%u, %u channels)", (unsigned)cur.img.width,
                 (unsigned)cur.img.height, (unsigned)cur.img.channels);
        free(cur.base);
        return CHAIN_FAILED;
    }
    if (c != NULL && c->threads != NULL) {
        t = chain_thread_get(c, err, errlen);
        if (t == NULL) {
            free(cur.base);
            return CHAIN_FAILED;
        }
    }
    shrunk = c != NULL ? chain_shrink_link(c, cur.img.channels == 1) : 0;
    if (src_w != 0 && (c == NULL || shrunk == c->n)) {
        snprintf(err, errlen, "a picture shrunk while decoding, for a chain that takes none");
        free(cur.base);
        return CHAIN_FAILED;
    }
    for (size_t i = 0; c != NULL && i < c->n && st == CHAIN_OK; i++) {
        cur.img.source_width = i == shrunk ? src_w : 0;
        cur.img.source_height = i == shrunk ? src_h : 0;
        st = chain_run_link(c, &c->links[i], t != NULL ? t->states[i] : c->links[i].state, &cur,
                            err, errlen);
    }
    if (st != CHAIN_OK) {
        free(cur.base);
        return st;
    }
    chain_pack(&cur);
    *out = cur.img;
    out->flags = PIXFLOW_IMAGE_WRITABLE;
    return CHAIN_OK;
}
