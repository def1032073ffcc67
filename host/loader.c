/* loader.c -- the plugin host: dlopen, ABI checks, the host table given to each plugin.
 *
 * Checks follow Varnish's vmod_data and nginx's NGX_MODULE_V1: the version fields are read
 * first, and only a descriptor that passes them is copied (struct_size bytes, the rest zeroed, so
 * a plugin built for an older minor simply has NULL in the fields it does not know).
 *
 * Each plugin gets its own copy of the host table, embedded in its entry, so host callbacks know
 * which plugin calls them. Chains and their execution are chain.c; host allocation is alloc.c.
 *
 * A plugin is never dlopen()ed where it lies. Its file is checked (a regular file owned by root
 * or by us, writable by nobody else: whoever can write it runs code in the worker), read once,
 * hashed from those bytes, and written to a private folder of this loader, and that copy is
 * what dlopen() maps. So the recorded sha256 is that of the code that runs, and a reload after
 * a file was replaced in place gets the new code: dlopen() of a path it has already loaded
 * returns the old object, a fresh path in a fresh folder cannot match (and while the old object
 * stays mapped its inode cannot be reused). The copy and its folder are removed as soon as it is
 * mapped. */
#include "host.h"

#include <dirent.h>
#include <errno.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"
#include "log.h"
#include "names.h"

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
    log_msg(ll, "plugin=%s msg=%s", lh->entry->desc.name, msg);
}

static int loader_counter_name_ok(const char *name)
{
    size_t n = strlen(name);

    if (n < 1 || n > LOADER_COUNTER_MAX || strcmp(name, C_T_OK) == 0 ||
        strcmp(name, C_T_FAILED) == 0 || strcmp(name, C_T_USEC) == 0)
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
    snprintf(key, sizeof(key), C_TRANSFORM "%s:%s", lh->entry->desc.name, name);
    lh->loader->counter(lh->loader->counter_arg, key, delta);
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

const struct loader_entry *loader_find(const struct loader *l, const char *name, size_t len)
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
static const size_t loader_min_size[PIXFLOW_ABI_MINOR + 1] = {PIXFLOW_PLUGIN_MIN_SIZE_1_0,
                                                              PIXFLOW_PLUGIN_MIN_SIZE_1_1};

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
    if (format_reserved(d->name, strlen(d->name))) {
        snprintf(err, errlen, "plugin name '%s' is an output format's (the host encodes it)",
                 d->name);
        return -1;
    }
    if (d->apply == NULL) {
        snprintf(err, errlen, "plugin %s has no apply function", d->name);
        return -1;
    }
    if ((d->accepts & ~(PIXFLOW_ACCEPT_LUMA | PIXFLOW_ACCEPT_SHRUNK)) != 0 ||
        ((d->accepts & PIXFLOW_ACCEPT_SHRUNK) && d->output_size == NULL)) {
        snprintf(err, errlen,
                 "plugin %s declares accepts 0x%x (PIXFLOW_ACCEPT_SHRUNK needs "
                 "output_size)",
                 d->name, (unsigned)d->accepts);
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
    e->host.pub.alloc = host_alloc;
    e->host.pub.free = host_free;
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

static void loader_drop_tmpdir(struct loader *l)
{
    if (l->tmpdir[0])
        rmdir(l->tmpdir);
    l->tmpdir[0] = '\0';
}

/* Who may have written the file: only root and the user we run as, and only them. */
static int loader_check_file(const struct stat *st, char *why, size_t whylen)
{
    if (!S_ISREG(st->st_mode)) {
        snprintf(why, whylen, "not a regular file");
        return -1;
    }
    if (st->st_uid != 0 && st->st_uid != geteuid()) {
        snprintf(why, whylen, "owned by uid %ld, want root (0) or the worker's uid %ld",
                 (long)st->st_uid, (long)geteuid());
        return -1;
    }
    if (st->st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(why, whylen,
                 "writable by %s (mode %04o): anyone who can write it would run "
                 "code in the worker",
                 (st->st_mode & S_IWOTH) ? "others" : "its group", (unsigned)(st->st_mode & 07777));
        return -1;
    }
    if (st->st_size > LOADER_FILE_MAX) {
        snprintf(why, whylen, "larger than %ld bytes", LOADER_FILE_MAX);
        return -1;
    }
    return 0;
}

/* The whole file behind fd, st_size bytes as fstat saw them (a file that changes size while
 * read is refused: it is being replaced). */
static unsigned char *loader_read_fd(int fd, size_t size, char *why, size_t whylen)
{
    unsigned char *buf = malloc(size ? size : 1);
    size_t got = 0;
    if (buf == NULL) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(why, whylen, "%s", r < 0 ? strerror(errno) : "file shrank while read");
            free(buf);
            return NULL;
        }
        got += (size_t)r;
    }
    char extra;
    if (read(fd, &extra, 1) > 0) {
        snprintf(why, whylen, "file grew while read");
        free(buf);
        return NULL;
    }
    return buf;
}

static int loader_write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Checks path, reads it, hashes what was read into hex and writes it to a fresh file in the
 * loader's private folder, whose name goes to copy. */
static int loader_private_copy(struct loader *l, const char *path, char *copy, size_t copylen,
                               char hex[DIGEST_HEX_LEN + 1], char *why, size_t whylen)
{
    struct stat st;
    unsigned char *bytes = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK), out = -1, rc = -1;
    if (fd < 0) {
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0) {
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
        goto done;
    }
    if (loader_check_file(&st, why, whylen) < 0)
        goto done;
    bytes = loader_read_fd(fd, (size_t)st.st_size, why, whylen);
    if (bytes == NULL || digest_sha256_hex(bytes, (size_t)st.st_size, hex, why, whylen) < 0)
        goto done;
    if (l->tmpdir[0] == '\0') {
        const char *base = getenv("TMPDIR");
        snprintf(l->tmpdir, sizeof(l->tmpdir), "%s/pixflow-plugins-XXXXXX",
                 base && *base ? base : "/tmp");
        if (mkdtemp(l->tmpdir) == NULL) {
            snprintf(why, whylen, "private copy: cannot make a folder in %s: %s",
                     base && *base ? base : "/tmp", strerror(errno));
            l->tmpdir[0] = '\0';
            goto done;
        }
    }
    const char *name = strrchr(path, '/');
    snprintf(copy, copylen, "%s/%s", l->tmpdir, name ? name + 1 : path);
    out = open(copy, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0500);
    if (out < 0 || loader_write_all(out, bytes, (size_t)st.st_size) < 0) {
        snprintf(why, whylen, "private copy in %.200s: %s", l->tmpdir, strerror(errno));
        if (out >= 0)
            unlink(copy);
        loader_drop_tmpdir(l);
        goto done;
    }
    rc = 0;
done:
    if (out >= 0)
        close(out);
    free(bytes);
    close(fd);
    return rc;
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
    char copy[4096];
    if (loader_private_copy(l, path, copy, sizeof(copy), e->sha256, why, sizeof(why)) < 0)
        goto err;
    e->handle = dlopen(copy, RTLD_NOW | RTLD_LOCAL);
    unlink(copy); /* mapped (or refused): the name is no longer needed, nor its folder, so */
    loader_drop_tmpdir(l); /* nothing is left behind even if the worker is killed */
    if (e->handle == NULL) {
        /* dlerror() names the private copy; the file the operator knows is path. */
        const char *msg = dlerror(), *tail = msg ? strstr(msg, copy) : NULL;
        if (tail != NULL && tail[strlen(copy)] == ':')
            msg = tail + strlen(copy) + 1;
        snprintf(why, sizeof(why), "%s:%s", path, msg ? msg : " dlopen failed");
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

/* "grayscale, resize" for error messages. */
/* "grayscale, resize" for error messages. */
void loader_names(const struct loader *l, char *buf, size_t len)
{
    size_t pos = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < l->n && pos < len; i++)
        pos +=
            (size_t)snprintf(buf + pos, len - pos, "%s%s", i ? ", " : "", l->plugins[i]->desc.name);
}
