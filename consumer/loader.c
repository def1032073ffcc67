/* loader.c -- the plugin host: dlopen, ABI checks, the host table, chains and their execution.
 *
 * Checks follow Varnish's vmod_data and nginx's NGX_MODULE_V1: the version fields are read
 * first, and only a descriptor that passes them is copied (struct_size bytes, the rest zeroed, so
 * a plugin built for an older minor simply has NULL in the fields it does not know).
 *
 * Each plugin gets its own copy of the host table, embedded in its entry, so host callbacks know
 * which plugin calls them. Output buffers: a plugin may answer with its input, a part of its
 * input (in place, or a view such as a crop), or a buffer from host->alloc(). To tell these apart
 * and to free what a failed apply() allocated, host->alloc() records its blocks in a list that
 * chain_apply() points a thread-local at for the duration of one apply(). */
#include "loader.h"

#include <dirent.h>
#include <errno.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "digest.h"
#include "log.h"

#define LOADER_NAME_MAX    32
#define LOADER_COUNTER_MAX 32
#define LOADER_ERR_MAX     256

struct loader;
struct loader_entry;

struct loader_host {
    struct pixflow_host pub; /* first: plugins only see this part */
    struct loader *loader;
    struct loader_entry *entry;
};

struct loader_entry {
    struct loader_plugin_info info;
    struct pixflow_plugin desc; /* the plugin's descriptor, zero beyond its struct_size */
    struct loader_host host;
    void *handle;
    char *path;
    char sha256[DIGEST_HEX_LEN + 1];
};

struct loader {
    struct loader_entry **plugins;
    size_t n, cap;
    struct loader_rejected *rejected;
    size_t nrejected, caprejected;
    loader_counter_fn counter;
    void *counter_arg;
};

/* Blocks host->alloc() handed out during the current apply() on this thread. */
struct chain_block {
    void *ptr;
    size_t size;
};

struct chain_allocs {
    struct chain_block *blocks;
    size_t n, cap;
};

static _Thread_local struct chain_allocs *loader_tls_allocs;

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
};

/* A picture between links: the image and the allocation it lives in. */
struct chain_img {
    struct pixflow_image img;
    unsigned char *base;
    size_t size;
};

/* ---- the host table ---- */

static void loader_host_log(const struct pixflow_host *h, int level, const char *fmt, ...)
{
    const struct loader_host *lh = (const struct loader_host *)h;
    enum log_level ll = LL_INFO;
    char msg[1024];
    va_list ap;

    switch (level) {
    case PIXFLOW_LOG_DEBUG:
        ll = LL_DEBUG;
        break;
    case PIXFLOW_LOG_WARN:
        ll = LL_WARN;
        break;
    case PIXFLOW_LOG_ERROR:
        ll = LL_ERROR;
        break;
    default:
        break;
    }
    if (!log_enabled(ll))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_msg(ll, "plugin=%s %s", lh->entry->desc.name, msg);
}

static int loader_counter_name_ok(const char *name)
{
    size_t n = strlen(name);

    if (n < 1 || n > LOADER_COUNTER_MAX || strcmp(name, "ok") == 0 || strcmp(name, "failed") == 0 ||
        strcmp(name, "usec") == 0)
        return 0;
    return strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

static void loader_host_counter(const struct pixflow_host *h, const char *name, long long delta)
{
    const struct loader_host *lh = (const struct loader_host *)h;
    char key[LOADER_NAME_MAX + LOADER_COUNTER_MAX + 16];

    if (lh->loader->counter == NULL)
        return;
    if (name == NULL || !loader_counter_name_ok(name)) {
        log_debug("event=plugin_counter_dropped plugin=%s counter=%s", lh->entry->desc.name,
                  name != NULL ? name : "(null)");
        return;
    }
    snprintf(key, sizeof(key), "transform:%s:%s", lh->entry->desc.name, name);
    lh->loader->counter(lh->loader->counter_arg, key, delta);
}

static void *loader_host_alloc(const struct pixflow_host *h, size_t size)
{
    struct chain_allocs *a = loader_tls_allocs;
    void *p = malloc(size > 0 ? size : 1);

    if (p == NULL || a == NULL)
        return p;
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 4;
        struct chain_block *nb = realloc(a->blocks, cap * sizeof(*nb));

        if (nb == NULL) {
            free(p);
            return NULL;
        }
        a->blocks = nb;
        a->cap = cap;
    }
    a->blocks[a->n].ptr = p;
    a->blocks[a->n].size = size;
    a->n++;
    return p;
}

/* Forgets block i of a (it now belongs to the chain, or is freed). */
static void chain_allocs_forget(struct chain_allocs *a, size_t i)
{
    a->blocks[i] = a->blocks[--a->n];
}

static void loader_host_free(const struct pixflow_host *h, void *ptr)
{
    struct chain_allocs *a = loader_tls_allocs;

    if (ptr == NULL)
        return;
    for (size_t i = 0; a != NULL && i < a->n; i++) {
        if (a->blocks[i].ptr == ptr) {
            chain_allocs_forget(a, i);
            break;
        }
    }
    free(ptr);
}

/* ---- loading ---- */

struct loader *loader_new(loader_counter_fn counter, void *arg)
{
    struct loader *l = calloc(1, sizeof(*l));

    if (l == NULL)
        return NULL;
    l->counter = counter;
    l->counter_arg = arg;
    return l;
}

static void loader_entry_free(struct loader_entry *e)
{
    if (e == NULL)
        return;
    if (e->handle != NULL)
        dlclose(e->handle);
    free(e->path);
    free(e);
}

void loader_free(struct loader *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n; i++)
        loader_entry_free(l->plugins[i]);
    for (size_t i = 0; i < l->nrejected; i++) {
        free((char *)l->rejected[i].path);
        free((char *)l->rejected[i].error);
    }
    free(l->plugins);
    free(l->rejected);
    free(l);
}

static const struct loader_entry *loader_find(const struct loader *l, const char *name, size_t len)
{
    for (size_t i = 0; i < l->n; i++) {
        const char *n = l->plugins[i]->desc.name;

        if (strlen(n) == len && memcmp(n, name, len) == 0)
            return l->plugins[i];
    }
    return NULL;
}

static int loader_name_ok(const char *name)
{
    size_t n = name != NULL ? strlen(name) : 0;

    return n >= 1 && n <= LOADER_NAME_MAX &&
           strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/* Smallest descriptor for each minor version this host knows (plugin.h). */
static const size_t loader_min_size[PIXFLOW_ABI_MINOR + 1] = {PIXFLOW_PLUGIN_MIN_SIZE_1_0};

/* The version checks, on the first three fields only, then a copy of the rest. */
static int loader_check_abi(const struct pixflow_plugin *d, struct pixflow_plugin *copy, char *err,
                            size_t errlen)
{
    size_t size;

    if (d->abi_major != PIXFLOW_ABI_MAJOR) {
        snprintf(err, errlen, "ABI major %u, this pixflow speaks %u", (unsigned)d->abi_major,
                 PIXFLOW_ABI_MAJOR);
        return -1;
    }
    if (d->abi_minor > PIXFLOW_ABI_MINOR) {
        snprintf(err, errlen, "ABI %u.%u is newer than this pixflow's %u.%u",
                 (unsigned)d->abi_major, (unsigned)d->abi_minor, PIXFLOW_ABI_MAJOR,
                 PIXFLOW_ABI_MINOR);
        return -1;
    }
    if (d->struct_size < loader_min_size[d->abi_minor]) {
        snprintf(err, errlen, "descriptor of %u bytes, ABI %u.%u needs at least %zu",
                 (unsigned)d->struct_size, (unsigned)d->abi_major, (unsigned)d->abi_minor,
                 loader_min_size[d->abi_minor]);
        return -1;
    }
    size = d->struct_size < sizeof(*copy) ? d->struct_size : sizeof(*copy);
    memset(copy, 0, sizeof(*copy));
    memcpy(copy, d, size);
    return 0;
}

static int loader_check_desc(const struct loader *l, const struct pixflow_plugin *d, char *err,
                             size_t errlen)
{
    const struct loader_entry *dup;

    if (!loader_name_ok(d->name)) {
        snprintf(err, errlen, "invalid name '%.40s' (want [a-z0-9_-], 1 to %d characters)",
                 d->name != NULL ? d->name : "(null)", LOADER_NAME_MAX);
        return -1;
    }
    if (d->version == NULL || d->version[0] == '\0') {
        snprintf(err, errlen, "plugin %s has no version", d->name);
        return -1;
    }
    if ((d->inputs & PIXFLOW_INPUT_ANY) == 0 || (d->inputs & ~PIXFLOW_INPUT_ANY) != 0) {
        snprintf(err, errlen, "plugin %s declares inputs 0x%x (want PIXFLOW_INPUT_*)", d->name,
                 (unsigned)d->inputs);
        return -1;
    }
    if (d->apply == NULL) {
        snprintf(err, errlen, "plugin %s has no apply function", d->name);
        return -1;
    }
    if ((d->thread_init == NULL) != (d->thread_destroy == NULL)) {
        snprintf(err, errlen, "plugin %s has only one of thread_init and thread_destroy", d->name);
        return -1;
    }
    dup = loader_find(l, d->name, strlen(d->name));
    if (dup != NULL) {
        snprintf(err, errlen, "duplicate plugin name '%s', already loaded from %s", d->name,
                 dup->path);
        return -1;
    }
    return 0;
}

/* Logs the refusal and keeps it for loader_rejected(); the list is best effort when memory is
 * short, the log line is not. */
static void loader_reject(struct loader *l, const char *path, const char *reason)
{
    struct loader_rejected r;

    log_warn("event=plugin_rejected plugin=%s error=\"%s\"", path, reason);
    if (l->nrejected == l->caprejected) {
        size_t cap = l->caprejected ? 2 * l->caprejected : 4;
        struct loader_rejected *nr = realloc(l->rejected, cap * sizeof(*nr));

        if (nr == NULL)
            return;
        l->rejected = nr;
        l->caprejected = cap;
    }
    r.path = strdup(path);
    r.error = strdup(reason);
    if (r.path == NULL || r.error == NULL) {
        free((char *)r.path);
        free((char *)r.error);
        return;
    }
    l->rejected[l->nrejected++] = r;
}

static int loader_add(struct loader *l, struct loader_entry *e)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 8;
        struct loader_entry **np = realloc(l->plugins, cap * sizeof(*np));

        if (np == NULL)
            return -1;
        l->plugins = np;
        l->cap = cap;
    }
    l->plugins[l->n++] = e;
    return 0;
}

static void loader_entry_describe(struct loader *l, struct loader_entry *e)
{
    struct loader_plugin_info *i = &e->info;

    e->host.pub.abi_major = PIXFLOW_ABI_MAJOR;
    e->host.pub.abi_minor = PIXFLOW_ABI_MINOR;
    e->host.pub.struct_size = sizeof(struct pixflow_host);
    e->host.pub.log = loader_host_log;
    e->host.pub.counter_add = loader_host_counter;
    e->host.pub.alloc = loader_host_alloc;
    e->host.pub.free = loader_host_free;
    e->host.loader = l;
    e->host.entry = e;
    i->name = e->desc.name;
    i->version = e->desc.version;
    i->description = e->desc.description;
    i->path = e->path;
    i->sha256 = e->sha256;
    i->abi_major = e->desc.abi_major;
    i->abi_minor = e->desc.abi_minor;
    i->flags = e->desc.flags;
    i->inputs = e->desc.inputs;
}

int loader_load(struct loader *l, const char *path, char *err, size_t errlen)
{
    const struct pixflow_plugin *(*entry)(void);
    const struct pixflow_plugin *d;
    struct loader_entry *e = calloc(1, sizeof(*e));
    char why[LOADER_ERR_MAX];

    if (e != NULL)
        e->path = strdup(path);
    if (e == NULL || e->path == NULL) {
        snprintf(why, sizeof(why), "out of memory");
        goto err;
    }
    /* Hash the file first: what is recorded is what gets loaded, short of a concurrent swap. */
    if (digest_sha256_file(path, e->sha256, why, sizeof(why)) < 0)
        goto err;
    e->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (e->handle == NULL) {
        snprintf(why, sizeof(why), "%s", dlerror());
        goto err;
    }
    *(void **)&entry = dlsym(e->handle, PIXFLOW_PLUGIN_ENTRY_SYMBOL);
    if (entry == NULL) {
        snprintf(why, sizeof(why), "no %s symbol: not a pixflow plugin",
                 PIXFLOW_PLUGIN_ENTRY_SYMBOL);
        goto err;
    }
    d = entry();
    if (d == NULL) {
        snprintf(why, sizeof(why), "%s returned NULL", PIXFLOW_PLUGIN_ENTRY_SYMBOL);
        goto err;
    }
    if (loader_check_abi(d, &e->desc, why, sizeof(why)) < 0 ||
        loader_check_desc(l, &e->desc, why, sizeof(why)) < 0)
        goto err;
    loader_entry_describe(l, e);
    if (loader_add(l, e) < 0) {
        snprintf(why, sizeof(why), "out of memory");
        goto err;
    }
    log_info("event=plugin_loaded plugin=%s version=%s path=%s sha256=%s", e->desc.name,
             e->desc.version, path, e->sha256);
    return 0;
err:
    loader_entry_free(e);
    snprintf(err, errlen, "%s", why);
    loader_reject(l, path, why);
    return -1;
}

static int loader_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int loader_is_so(const char *name)
{
    size_t n = strlen(name);

    return n > 3 && name[0] != '.' && strcmp(name + n - 3, ".so") == 0;
}

int loader_scan(struct loader *l, const char *dir, char *err, size_t errlen)
{
    DIR *dh = opendir(dir);
    char **names = NULL, why[LOADER_ERR_MAX];
    size_t n = 0, cap = 0;
    struct dirent *de;
    int loaded = 0;

    if (dh == NULL) {
        snprintf(err, errlen, "plugin folder %s: %s", dir, strerror(errno));
        return -1;
    }
    while ((de = readdir(dh)) != NULL) {
        if (!loader_is_so(de->d_name))
            continue;
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            char **nn = realloc(names, ncap * sizeof(*nn));

            if (nn == NULL)
                goto nomem;
            names = nn;
            cap = ncap;
        }
        names[n] = strdup(de->d_name);
        if (names[n] == NULL)
            goto nomem;
        n++;
    }
    closedir(dh);
    dh = NULL;
    qsort(names, n, sizeof(*names), loader_cmp);
    for (size_t i = 0; i < n; i++) {
        char path[4096];

        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (loader_load(l, path, why, sizeof(why)) == 0)
            loaded++;
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return loaded;
nomem:
    snprintf(err, errlen, "plugin folder %s: out of memory", dir);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (dh != NULL)
        closedir(dh);
    return -1;
}

size_t loader_count(const struct loader *l)
{
    return l->n;
}

const struct loader_plugin_info *loader_plugin(const struct loader *l, size_t i)
{
    return i < l->n ? &l->plugins[i]->info : NULL;
}

size_t loader_rejected_count(const struct loader *l)
{
    return l->nrejected;
}

const struct loader_rejected *loader_rejected(const struct loader *l, size_t i)
{
    return i < l->nrejected ? &l->rejected[i] : NULL;
}

/* ---- chains: building ---- */

/* "grayscale, resize" for error messages. */
static void loader_names(const struct loader *l, char *buf, size_t len)
{
    size_t pos = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < l->n && pos < len; i++)
        pos +=
            (size_t)snprintf(buf + pos, len - pos, "%s%s", i ? ", " : "", l->plugins[i]->desc.name);
}

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
    snprintf(k->counter_ok, sizeof(k->counter_ok), "transform:%s:ok", d->name);
    snprintf(k->counter_failed, sizeof(k->counter_failed), "transform:%s:failed", d->name);
    snprintf(k->counter_usec, sizeof(k->counter_usec), "transform:%s:usec", d->name);
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
        chain_allocs_forget(a, i);
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
    loader_tls_allocs = &allocs;
    rc = d->apply(state, &cur->img, &res, why, sizeof(why));
    loader_tls_allocs = NULL;
    if (k->serialize)
        pthread_mutex_unlock(&k->lock);
    chain_count(c, k->counter_usec, chain_usec_since(&t0));
    if (rc != 0 && why[0] == '\0')
        snprintf(why, sizeof(why), "failed without a message");
    if (rc != 0 || chain_adopt(cur, &res, &allocs, why, sizeof(why)) < 0) {
        /* whatever it allocated during a failed call is garbage now (plugin.h) */
        chain_allocs_free(&allocs);
        chain_count(c, k->counter_failed, 1);
        snprintf(err, errlen, "%s: %s", d->name, why);
        return CHAIN_FAILED;
    }
    free(allocs.blocks); /* blocks still listed were kept by the plugin for itself */
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

    cur.img = *in;
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
    for (size_t i = 0; c != NULL && i < c->n && st == CHAIN_OK; i++)
        st = chain_run_link(c, &c->links[i], t != NULL ? t->states[i] : c->links[i].state, &cur,
                            err, errlen);
    if (st != CHAIN_OK) {
        free(cur.base);
        return st;
    }
    chain_pack(&cur);
    *out = cur.img;
    out->flags = PIXFLOW_IMAGE_WRITABLE;
    return CHAIN_OK;
}
