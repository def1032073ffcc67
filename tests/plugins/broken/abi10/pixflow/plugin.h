/* ABI 1.0's include/pixflow/plugin.h, unchanged: the header the old10 test plugin is built
 * against, so that it is a plugin built before ABI 1.1 in every byte (smaller pixflow_plugin and
 * pixflow_image), not a new one pretending. */
/* plugin.h -- the pixflow transform ABI: the one header a plugin author needs.
 *
 * A plugin is a shared object (`cc -shared -fPIC -o name.so name.c`) dropped into the plugin
 * folder (PIXFLOW_PLUGIN_PATH). It exports one symbol, pixflow_plugin_entry(), which returns a
 * constant descriptor. The descriptor opens with the ABI version and its own size: the host reads
 * those three fields first and rejects the plugin, with one log line, before touching anything
 * else when it was built for another major version, for a newer minor version, or is smaller than
 * its minor version requires. The plugin never links against pixflow: everything it may call on
 * the host comes through the `struct pixflow_host` table handed to init().
 *
 * A minimal plugin (the grayscale plugin in plugins/grayscale/ is a complete one):
 *
 *     #include <stdio.h>
 *     #include <pixflow/plugin.h>
 *
 *     static int invert_init(const struct pixflow_host *host, const char *config, void **state,
 *                            char *err, size_t errlen)
 *     {
 *         *state = (void *)host; // all this plugin needs later
 *         return 0;
 *     }
 *
 *     static int invert_apply(void *state, const struct pixflow_image *in,
 *                             struct pixflow_image *out, char *err, size_t errlen)
 *     {
 *         const struct pixflow_host *host = state;
 *         size_t row = (size_t)in->width * in->channels;
 *
 *         *out = *in; // same size and layout; same buffer when the host lets us write it
 *         if (!(in->flags & PIXFLOW_IMAGE_WRITABLE)) {
 *             out->stride = row;
 *             out->pixels = host->alloc(host, row * in->height);
 *             if (out->pixels == NULL) {
 *                 snprintf(err, errlen, "out of memory");
 *                 return -1;
 *             }
 *         }
 *         for (uint32_t y = 0; y < in->height; y++)
 *             for (size_t x = 0; x < row; x++)
 *                 out->pixels[y * out->stride + x] = 255 - in->pixels[y * in->stride + x];
 *         return 0;
 *     }
 *
 *     static const struct pixflow_plugin invert = {
 *         PIXFLOW_PLUGIN_HEADER,
 *         .name = "invert", .version = "1.0.0", .description = "negative image",
 *         .flags = PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC | PIXFLOW_IN_PLACE,
 *         .inputs = PIXFLOW_INPUT_ANY,
 *         .init = invert_init,
 *         .apply = invert_apply,
 *     };
 *     PIXFLOW_PLUGIN_ENTRY(invert)
 *
 * Chains. PIXFLOW_TRANSFORMS names the transforms applied to every picture, in order:
 *     name[:key=value[;key=value...]][,name[:...]]...    e.g. "grayscale,resize:width=320"
 * Everything after the first ':' of a link, up to the next ',', is that link's config string; the
 * host gives it verbatim to init() and each plugin parses its own (pixflow_config_next() below
 * does the splitting). Consequently a value cannot contain ',' or ';'.
 *
 * Compatibility rules. The major version changes only when an existing field changes meaning or
 * place; the host refuses every other major. The minor version grows when fields are added, and
 * they are only ever added at the end of a struct (SQLite's "add new interfaces to the end"): a
 * host of minor M loads plugins of minor <= M, and a plugin that wants a newer host function
 * checks host->abi_minor (or host->struct_size) before calling it. */
#ifndef PIXFLOW_PLUGIN_H
#define PIXFLOW_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PIXFLOW_ABI_MAJOR 1
#define PIXFLOW_ABI_MINOR 0

/* Capabilities, declared in pixflow_plugin.flags (the host never assumes them). */
#define PIXFLOW_THREAD_SAFE   (1u << 0) /* apply() may run on several threads at once, same state */
#define PIXFLOW_DETERMINISTIC (1u << 1) /* same input and config, same output bytes, always */
#define PIXFLOW_IN_PLACE      (1u << 2) /* apply() may write its result into a writable input */

/* Inputs a plugin accepts, in pixflow_plugin.inputs. The host converts between links to one of
 * them: gray -> RGB(A) by copying the value, RGB -> RGBA with alpha 255, RGBA -> RGB by dropping
 * alpha, colour -> gray with pixflow_luma(). It prefers the lossless direction (adding channels)
 * and decodes pictures straight to what the first link of the chain accepts. */
#define PIXFLOW_INPUT_GRAY (1u << 0) /* 1 channel */
#define PIXFLOW_INPUT_RGB  (1u << 1) /* 3 channels, R G B */
#define PIXFLOW_INPUT_RGBA (1u << 2) /* 4 channels, R G B A, alpha not premultiplied */
#define PIXFLOW_INPUT_ANY  (PIXFLOW_INPUT_GRAY | PIXFLOW_INPUT_RGB | PIXFLOW_INPUT_RGBA)

/* pixflow_image.flags. The host owns every buffer it hands to apply(); it sets WRITABLE for
 * plugins that declare PIXFLOW_IN_PLACE, which may then overwrite the input's bytes. */
#define PIXFLOW_IMAGE_WRITABLE (1u << 0)

/* An 8-bit image, rows top to bottom, samples interleaved. New fields would come at the end,
 * with 0 meaning what their absence meant before. */
struct pixflow_image {
    uint32_t width, height; /* >= 1 */
    uint32_t channels;      /* 1 gray, 3 RGB, 4 RGBA */
    uint32_t flags;         /* PIXFLOW_IMAGE_* */
    size_t stride;          /* bytes from the start of one row to the next, >= width * channels */
    unsigned char *pixels;
};

/* Log levels for pixflow_host.log. */
enum pixflow_log_level {
    PIXFLOW_LOG_DEBUG,
    PIXFLOW_LOG_INFO,
    PIXFLOW_LOG_WARN,
    PIXFLOW_LOG_ERROR,
};

/* What the host offers a plugin. The table stays valid, at the same address, until destroy() of
 * every state built with it has returned; keep the pointer in the state. */
struct pixflow_host {
    uint32_t abi_major; /* PIXFLOW_ABI_MAJOR of the host */
    uint32_t abi_minor; /* PIXFLOW_ABI_MINOR of the host */
    uint32_t struct_size;

    /* One log line. fmt gives the event's key=value pairs, e.g. "event=cache_miss key=%s"; the
     * host adds the time, the level and plugin=<name>. Safe from any thread. */
    void (*log)(const struct pixflow_host *host, int level, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;

    /* Adds delta to the counter transform:<plugin name>:<name> of the pixflow:stats hash.
     * name is [a-z0-9_]{1,32}; "ok", "failed" and "usec" belong to the host. Safe from any
     * thread, cheap enough to call per picture. */
    void (*counter_add)(const struct pixflow_host *host, const char *name, long long delta);

    /* Memory for output images (and scratch). An apply() that returns a new buffer must get it
     * from alloc(); the host frees it, and frees whatever alloc() gave during a failed apply().
     * alloc() returns NULL when memory is short. Safe from any thread; during apply(), call them
     * from the thread running it. */
    void *(*alloc)(const struct pixflow_host *host, size_t size);
    void (*free)(const struct pixflow_host *host, void *ptr);
};

/* The descriptor. Field order is part of the ABI: never move a field, only append. */
struct pixflow_plugin {
    uint32_t abi_major;   /* PIXFLOW_ABI_MAJOR the plugin was built with */
    uint32_t abi_minor;   /* PIXFLOW_ABI_MINOR the plugin was built with */
    uint32_t struct_size; /* sizeof(struct pixflow_plugin) the plugin was built with */
    /* The three fields above are all PIXFLOW_PLUGIN_HEADER sets. */

    const char *name;        /* [a-z0-9_-]{1,32}, what chains call it; unique in a folder */
    const char *version;     /* free text, recorded with every stored picture, e.g. "1.2.0" */
    const char *description; /* one line for `pixflow plugins`; may be NULL */
    uint32_t flags;          /* PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC | PIXFLOW_IN_PLACE */
    uint32_t inputs;         /* PIXFLOW_INPUT_*, at least one */

    /* Optional. Parses config (never NULL; "" when the chain gives none) and builds the state
     * given to every other call. Runs once per chain link, on one thread. 0, or -1 with a
     * message in err. Without init() the state is NULL and a non-empty config is refused. */
    int (*init)(const struct pixflow_host *host, const char *config, void **state, char *err,
                size_t errlen);

    /* Required. Transforms `in` into `out`; the host zeroes *out before the call. Three ways to
     * answer:
     *  - from the input's bytes, unwritten: `*out = *in` (unchanged), or out->pixels pointing
     *    inside them with a smaller width/height and the same stride (a crop, without a copy);
     *  - in place: only when in->flags has PIXFLOW_IMAGE_WRITABLE (PIXFLOW_IN_PLACE plugins),
     *    write over in->pixels and describe the result in *out, inside the input's bytes;
     *  - a new buffer: out->pixels from host->alloc(), out->width/height/channels/stride set.
     * The host checks that the result lies inside the memory it came from. in->pixels is never
     * freed by the plugin. Memory from host->alloc() during an apply() that fails is freed by
     * the host: what must outlive one call comes from the plugin's own malloc(). Without
     * PIXFLOW_THREAD_SAFE the host never runs two apply() on the same state at once. 0, or -1
     * with a message in err (the picture is then dead-lettered as transform_failed). */
    int (*apply)(void *state, const struct pixflow_image *in, struct pixflow_image *out, char *err,
                 size_t errlen);

    /* Optional. Frees the state built by init(). */
    void (*destroy)(void *state);

    /* Optional, both or neither. When set, every worker thread gets its own state: thread_init()
     * runs on that thread before its first apply(), and apply() then receives *thread_state
     * instead of the init() state (make it point back to the shared state if needed).
     * thread_destroy() runs when the thread ends or the chain is freed. thread_init: 0, or -1
     * with a message in err. */
    int (*thread_init)(void *state, void **thread_state, char *err, size_t errlen);
    void (*thread_destroy)(void *state, void *thread_state);

    /* ABI 1.1 and later: new fields go here, and only here. */
};

/* The smallest descriptor a host accepts for each minor version. A field added in minor N is
 * covered by PIXFLOW_PLUGIN_MIN_SIZE_1_N only, so older plugins stay loadable. */
#define PIXFLOW_PLUGIN_MIN_SIZE_1_0                                                                \
    (offsetof(struct pixflow_plugin, thread_destroy) + sizeof(void (*)(void)))

/* Fills the version fields of a descriptor: put it first in the initializer. */
#define PIXFLOW_PLUGIN_HEADER                                                                      \
    .abi_major = PIXFLOW_ABI_MAJOR, .abi_minor = PIXFLOW_ABI_MINOR,                                \
    .struct_size = sizeof(struct pixflow_plugin)

#if defined(__GNUC__)
#define PIXFLOW_EXPORT __attribute__((visibility("default")))
#else
#define PIXFLOW_EXPORT
#endif

/* The one exported symbol. PIXFLOW_PLUGIN_ENTRY(descriptor) defines it. */
#define PIXFLOW_PLUGIN_ENTRY_SYMBOL "pixflow_plugin_entry"
#define PIXFLOW_PLUGIN_ENTRY(desc)                                                                 \
    PIXFLOW_EXPORT const struct pixflow_plugin *pixflow_plugin_entry(void);                        \
    PIXFLOW_EXPORT const struct pixflow_plugin *pixflow_plugin_entry(void)                         \
    {                                                                                              \
        return &(desc);                                                                            \
    }

/* ITU-R BT.601 luma, Y = (299 R + 587 G + 114 B + 500) / 1000 rounded half up, in exact integer
 * arithmetic: what "gray" means everywhere in pixflow, host conversions included. The sum is
 * below 2^18; dividing by 1000 is dividing by 8 (a shift) then by 125, and for n < 2^15,
 * n / 125 == (n * 33555) >> 22 exactly (33555 * 125 - 2^22 = 71 and 71 * 2^15 < 2^22), so
 * everything stays in 32 bits and vectorizes. The grayscale plugin's tests compare it with the
 * division for all 2^24 colours. */
static inline unsigned char pixflow_luma(uint32_t r, uint32_t g, uint32_t b)
{
    return (unsigned char)((((299 * r + 587 * g + 114 * b + 500) >> 3) * 33555) >> 22);
}

/* Splits a config string "key=value;key=value" one pair at a time. *cursor starts at the config
 * string and advances. Returns 1 with key/klen and value/vlen set (not NUL-terminated; spaces
 * around keys and values trimmed), 0 at the end, -1 on a pair without '=' or with an empty key.
 * Empty pairs (";;") are skipped. */
static inline int pixflow_config_next(const char **cursor, const char **key, size_t *klen,
                                      const char **value, size_t *vlen)
{
    const char *p = *cursor;

    for (;;) {
        const char *end, *eq, *k, *ke, *v, *ve;

        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0') {
            *cursor = p;
            return 0;
        }
        end = strchr(p, ';');
        if (end == NULL)
            end = p + strlen(p);
        if (end == p) {
            p++;
            continue;
        }
        eq = (const char *)memchr(p, '=', (size_t)(end - p));
        *cursor = *end ? end + 1 : end;
        if (eq == NULL)
            return -1;
        k = p;
        ke = eq;
        while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t'))
            ke--;
        v = eq + 1;
        ve = end;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        if (ke == k)
            return -1;
        *key = k;
        *klen = (size_t)(ke - k);
        *value = v;
        *vlen = (size_t)(ve - v);
        return 1;
    }
}

#ifdef __cplusplus
}
#endif

#endif
