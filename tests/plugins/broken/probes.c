/* probes.c -- small well-formed plugins that exercise the host: channel conversions, views,
 * strided and in-place outputs, contract violations, failure cleanup, per-thread states,
 * serialization, logs and counters. Built once per probe with -DPROBE_<NAME>. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pixflow/plugin.h>

#define PROBE_FLAGS_DEFAULT (PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC)
#define PROBE_MAYBE_UNUSED  __attribute__((unused)) /* each probe uses some of the helpers */

/* State of the probes that need one: the host, and a parsed config. */
struct probe {
    const struct pixflow_host *host;
    long x, y, w, h, value;
};

PROBE_MAYBE_UNUSED static int probe_init(const struct pixflow_host *host, const char *config,
                                         void **state, char *err, size_t errlen)
{
    struct probe *p = calloc(1, sizeof(*p));
    const char *cursor = config, *key, *value;
    size_t klen, vlen;
    int rc;

    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->host = host;
    while ((rc = pixflow_config_next(&cursor, &key, &klen, &value, &vlen)) == 1) {
        long v = strtol(value, NULL, 10);

        if (klen == 1 && *key == 'x')
            p->x = v;
        else if (klen == 1 && *key == 'y')
            p->y = v;
        else if (klen == 1 && *key == 'w')
            p->w = v;
        else if (klen == 1 && *key == 'h')
            p->h = v;
        else if (klen == 5 && memcmp(key, "value", 5) == 0)
            p->value = v;
        else {
            snprintf(err, errlen, "unknown key \"%.*s\"", (int)klen, key);
            free(p);
            return -1;
        }
    }
    if (rc < 0) {
        snprintf(err, errlen, "malformed config \"%s\"", config);
        free(p);
        return -1;
    }
    *state = p;
    return 0;
}

PROBE_MAYBE_UNUSED static void probe_destroy(void *state)
{
    free(state);
}

PROBE_MAYBE_UNUSED static int probe_identity(const struct pixflow_image *in,
                                             struct pixflow_image *out)
{
    *out = *in;
    return 0;
}

#if defined(PROBE_RGBA_ONLY) || defined(PROBE_GRAY_ONLY)
#ifdef PROBE_RGBA_ONLY
#define PROBE_NAME     "rgba_only"
#define PROBE_INPUTS   PIXFLOW_INPUT_RGBA
#define PROBE_CHANNELS 4
#else
#define PROBE_NAME     "gray_only"
#define PROBE_INPUTS   PIXFLOW_INPUT_GRAY
#define PROBE_CHANNELS 1
#endif
static int probe_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                       char *err, size_t errlen)
{
    if (in->channels != PROBE_CHANNELS) {
        snprintf(err, errlen, "got %u channels", (unsigned)in->channels);
        return -1;
    }
    return probe_identity(in, out);
}

#elif defined(PROBE_CROP)
#define PROBE_NAME   "crop"
#define PROBE_INPUTS PIXFLOW_INPUT_ANY
#define PROBE_INIT
/* A view into the input: no copy, no write. */
static int probe_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                       char *err, size_t errlen)
{
    const struct probe *p = state;

    if (p->x < 0 || p->y < 0 || p->w < 1 || p->h < 1 || p->x + p->w > in->width ||
        p->y + p->h > in->height) {
        snprintf(err, errlen, "crop %ldx%ld+%ld+%ld outside %ux%u", p->w, p->h, p->x, p->y,
                 (unsigned)in->width, (unsigned)in->height);
        return -1;
    }
    *out = *in;
    out->pixels = in->pixels + (size_t)p->y * in->stride + (size_t)p->x * in->channels;
    out->width = (uint32_t)p->w;
    out->height = (uint32_t)p->h;
    return 0;
}

#elif defined(PROBE_BORDER)
#define PROBE_NAME   "border"
#define PROBE_INPUTS (PIXFLOW_INPUT_GRAY | PIXFLOW_INPUT_RGB)
#define PROBE_INIT
/* A new, larger picture with padded rows. */
static int probe_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                       char *err, size_t errlen)
{
    const struct probe *p = state;
    size_t row;

    out->width = in->width + 2;
    out->height = in->height + 2;
    out->channels = in->channels;
    row = (size_t)out->width * out->channels;
    out->stride = row + 3;
    out->pixels = p->host->alloc(p->host, out->stride * out->height);
    if (out->pixels == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memset(out->pixels, (int)p->value, out->stride * out->height);
    for (uint32_t y = 0; y < in->height; y++)
        memcpy(out->pixels + (y + 1) * out->stride + out->channels, in->pixels + y * in->stride,
               (size_t)in->width * in->channels);
    return 0;
}

#elif defined(PROBE_INVERT)
#define PROBE_NAME   "invert"
#define PROBE_INPUTS PIXFLOW_INPUT_ANY
#define PROBE_FLAGS  (PROBE_FLAGS_DEFAULT | PIXFLOW_IN_PLACE)
#define PROBE_INIT
static int probe_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                       char *err, size_t errlen)
{
    const struct probe *p = state;
    size_t row = (size_t)in->width * in->channels;

    *out = *in;
    if (!(in->flags & PIXFLOW_IMAGE_WRITABLE)) {
        out->stride = row;
        out->pixels = p->host->alloc(p->host, row * in->height);
        if (out->pixels == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    for (uint32_t y = 0; y < in->height; y++)
        for (size_t x = 0; x < row; x++)
            out->pixels[y * out->stride + x] =
                (unsigned char)(255 - in->pixels[y * in->stride + x]);
    return 0;
}

#elif defined(PROBE_BAD_BUFFER)
#define PROBE_NAME   "bad_buffer"
#define PROBE_INPUTS PIXFLOW_INPUT_ANY
static unsigned char probe_static[1 << 16];
static int probe_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                       char *err, size_t errlen)
{
    *out = *in;
    out->stride = (size_t)in->width * in->channels;
    out->pixels = probe_static; /* not from host->alloc(): the host must refuse it */
    return 0;
}

#elif defined(PROBE_OVERRUN)
#define PROBE_NAME   "overrun"
#define PROBE_INPUTS PIXFLOW_INPUT_ANY
#define PROBE_INIT
static int probe_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                       char *err, size_t errlen)
{
    const struct probe *p = state;

    *out = *in;
    out->stride = (size_t)in->width * in->channels;
    out->pixels = p->host->alloc(p->host, 4); /* less than any picture of 2x2 or more */
    return out->pixels != NULL ? 0 : -1;
}

#elif defined(PROBE_FAIL_ALLOC) || defined(PROBE_SILENT_FAIL)
#ifdef PROBE_FAIL_ALLOC
#define PROBE_NAME "fail_alloc"
#else
#define PROBE_NAME "silent_fail"
#endif
#define PROBE_INPUTS PIXFLOW_INPUT_ANY
#define PROBE_INIT
/* Allocates, frees one block, keeps two, then fails: the host must free the two. */
static int probe_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                       char *err, size_t errlen)
{
    const struct probe *p = state;
    void *a = p->host->alloc(p->host, 1000), *b = p->host->alloc(p->host, 2000);
    void *c = p->host->alloc(p->host, 3000);

    p->host->free(p->host, b);
#ifdef PROBE_FAIL_ALLOC
    snprintf(err, errlen, "gave up after allocating");
#endif
    (void)a; /* a and c stay allocated: the host frees them */
    (void)c;
    return -1;
}

#elif defined(PROBE_THREADED)
#define PROBE_NAME   "threaded"
#define PROBE_INPUTS PIXFLOW_INPUT_ANY
#define PROBE_FLAGS  PIXFLOW_DETERMINISTIC /* not thread-safe: one state per thread instead */
#define PROBE_INIT
#define PROBE_THREAD_HOOKS
struct probe_thread {
    const struct probe *shared;
    pthread_t owner;
    long pictures;
};

static int probe_thread_init(void *state, void **thread_state, char *err, size_t errlen)
{
    const struct probe *p = state;
    struct probe_thread *t = calloc(1, sizeof(*t));

    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    t->shared = p;
    t->owner = pthread_self();
    p->host->counter_add(p->host, "thread_inits", 1);
    *thread_state = t;
    return 0;
}

static void probe_thread_destroy(void *state, void *thread_state)
{
    const struct probe *p = state;
    struct probe_thread *t = thread_state;

    p->host->counter_add(p->host, "thread_destroys", 1);
    p->host->counter_add(p->host, "thread_pictures", t->pictures);
    free(t);
}

static int probe_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                       char *err, size_t errlen)
{
    struct probe_thread *t = state;

    if (!pthread_equal(t->owner, pthread_self())) {
        snprintf(err, errlen, "got the state of another thread");
        return -1;
    }
    t->pictures++;
    return probe_identity(in, out);
}

#elif defined(PROBE_SERIAL)
#define PROBE_NAME   "serial"
#define PROBE_INPUTS PIXFLOW_INPUT_ANY
#define PROBE_FLAGS  PIXFLOW_DETERMINISTIC /* not thread-safe, no thread hooks */
static int probe_inside;

static int probe_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                       char *err, size_t errlen)
{
    struct timespec nap = {0, 200000};
    int concurrent = __atomic_fetch_add(&probe_inside, 1, __ATOMIC_SEQ_CST) != 0;

    nanosleep(&nap, NULL); /* widen the window a second caller would hit */
    __atomic_fetch_sub(&probe_inside, 1, __ATOMIC_SEQ_CST);
    if (concurrent) {
        snprintf(err, errlen, "two calls at once");
        return -1;
    }
    return probe_identity(in, out);
}

#elif defined(PROBE_CHATTY)
#define PROBE_NAME   "chatty"
#define PROBE_INPUTS PIXFLOW_INPUT_ANY
#define PROBE_INIT
static int probe_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                       char *err, size_t errlen)
{
    const struct probe *p = state;

    p->host->log(p->host, PIXFLOW_LOG_INFO, "event=chatty_picture width=%u", (unsigned)in->width);
    p->host->counter_add(p->host, "hits", 1);
    p->host->counter_add(p->host, "ok", 1000);        /* the host's own: dropped */
    p->host->counter_add(p->host, "Not-Valid", 1000); /* dropped */
    return probe_identity(in, out);
}

#elif defined(PROBE_STALL)
#define PROBE_NAME   "stall"
#define PROBE_INPUTS PIXFLOW_INPUT_ANY
#define PROBE_INIT
/* Sleeps `value` ms per picture (a decode that will not finish, for the worker's stop). */
static int probe_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                       char *err, size_t errlen)
{
    const struct probe *p = state;
    struct timespec t = {p->value / 1000, (p->value % 1000) * 1000000L};

    while (nanosleep(&t, &t) != 0)
        ;
    return probe_identity(in, out);
}

#elif defined(PROBE_OLD10)
#define PROBE_NAME   "old10"
#define PROBE_INPUTS PIXFLOW_INPUT_ANY
#define PROBE_INIT
#if PIXFLOW_ABI_MINOR != 0
#error "old10 is built against ABI 1.0's header (abi10/pixflow/plugin.h)"
#endif
/* Built against ABI 1.0's header (no accepts, no output_size, a smaller pixflow_image): refuses
 * any input but w x h, so a chain that begins with it proves it gets the whole picture, never a
 * shrunk one. */
static int probe_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                       char *err, size_t errlen)
{
    const struct probe *p = state;

    if ((long)in->width != p->w || (long)in->height != p->h) {
        snprintf(err, errlen, "got %ux%u, want %ldx%ld", (unsigned)in->width, (unsigned)in->height,
                 p->w, p->h);
        return -1;
    }
    return probe_identity(in, out);
}

#else
#error "build with -DPROBE_<NAME>"
#endif

#ifndef PROBE_FLAGS
#define PROBE_FLAGS PROBE_FLAGS_DEFAULT
#endif

static const struct pixflow_plugin probe = {
    PIXFLOW_PLUGIN_HEADER,
    .name = PROBE_NAME,
    .version = "1.2.3",
    .description = "test probe",
    .flags = PROBE_FLAGS,
    .inputs = PROBE_INPUTS,
#ifdef PROBE_INIT
    .init = probe_init,
    .destroy = probe_destroy,
#endif
    .apply = probe_apply,
#ifdef PROBE_THREAD_HOOKS
    .thread_init = probe_thread_init,
    .thread_destroy = probe_thread_destroy,
#endif
};

PIXFLOW_PLUGIN_ENTRY(probe)
