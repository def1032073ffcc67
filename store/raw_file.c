/* raw_file.c -- the raw store in a directory: DIR/PREFIX/xx/<sha256>, written so that a crash
 * never leaves half an object under its final name.
 *
 * A write goes to a unique temporary name in the object's own folder (O_EXCL), is written whole
 * and fsynced, then renamed over the final name, and the folder is fsynced: rename is atomic and,
 * once the folder's fsync returns, durable. A folder made on the way is made durable the same
 * way (its parent fsynced). Temporary names start with '.', never 64 hex digits: a crash
 * between create and rename leaves a `.tmp-*` file behind, never a wrong object (nothing sweeps
 * them yet). An object already there with the right size counts as existing: only this
 * procedure puts a file under a final name, so one of the right size is complete. (Its contents
 * are not read back on every duplicate; `pixflow verify` re-hashes them.)
 *
 * A full disk (ENOSPC, EDQUOT) is RAW_TRANSIENT, reason "no_space", although raw.h first listed
 * it as permanent: the entry is fine, the store is out of room, and room comes back when an
 * operator frees space or grows the volume, without anything else changing. Dead-lettering would
 * lose the picture for good (a source such as picsum answers the same URL with another picture
 * next time), while a transient failure parks the entry until raw_check passes again. So that
 * the check does not pass while the write that failed still could not fit, the store remembers
 * the size of the last write refused for want of room, and raw_check wants that much free space
 * (statvfs) until a write succeeds. Limit: a quota (EDQUOT) does not show in statvfs; there the
 * check passes and the write is tried again, as often as the entry's attempts allow. A
 * directory that cannot be written (EACCES, EPERM, EROFS, "not_writable") or that is missing or
 * not a directory ("no_dir") stays RAW_PERMANENT: those are configuration errors, not growth.
 *
 * The asynchronous path runs the same blocking write on raw_loop.offload (the worker's pool), on
 * a copy of the bytes and of the paths: a cancelled write still finishes there, after its
 * caller may have freed its buffer and the store. */
#include "raw_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define FILE_PATH_MAX (sizeof(((struct raw_config *)0)->dir) + RAW_KEY_MAX + 64)

struct file_store {
    atomic_size_t need; /* bytes of the last write refused for want of room; 0 after a success */
};

struct file_put {
    struct raw_put p; /* first */
    char dir[sizeof(((struct raw_config *)0)->dir)];
    unsigned char *copy;
    size_t need; /* set by the write: the bytes it could not find room for */
    int ran;     /* the write ran (a pool stopping early drops tasks, then calls done) */
    int cancelled;
};

static atomic_ulong file_seq; /* makes temporary names unique within the process */

/* ---- errors ----------------------------------------------------------------------------- */

static void file_fail(struct raw_result *res, int e, const char *what, const char *path)
{
    switch (e) {
    case ENOSPC:
    case EDQUOT:
        raw_set(res, RAW_TRANSIENT, "no_space", "no space left to %s %s: %s", what, path,
                strerror(e));
        break;
    case EACCES:
    case EPERM:
    case EROFS:
        raw_set(res, RAW_PERMANENT, "not_writable", "cannot %s %s: %s", what, path, strerror(e));
        break;
    case ENOENT:
    case ENOTDIR:
        raw_set(res, RAW_PERMANENT, "no_dir", "cannot %s %s: %s", what, path, strerror(e));
        break;
    default:
        raw_set(res, RAW_TRANSIENT, "io", "cannot %s %s: %s", what, path, strerror(e));
    }
}

/* ---- writing one object ----------------------------------------------------------------- */

static int file_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* Makes the folders of `path` below its first `keep` bytes (the store's directory, which
 * exists), each new one's entry made durable in its parent. 0, or -1 with errno. */
static int file_mkdirs(char *path, size_t keep)
{
    char *last = strrchr(path, '/');
    for (char *slash = strchr(path + keep + 1, '/'); slash && slash <= last;
         slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        int rc = mkdir(path, 0755);
        int e = errno;
        if (rc == 0) {
            char *up = strrchr(path, '/');
            *up = '\0';
            rc = file_fsync_dir(up == path ? "/" : path);
            e = errno;
            *up = '/';
        } else if (e == EEXIST) {
            rc = 0;
        }
        *slash = '/';
        if (rc < 0) {
            errno = e;
            return -1;
        }
    }
    return 0;
}

/* Opens a new temporary file beside `final` (`tmp` receives its name). fd, or -1 with errno. */
static int file_tmp_open(const char *final, const char *tag, char *tmp, size_t tmplen)
{
    const char *slash = strrchr(final, '/');
    for (;;) {
        snprintf(tmp, tmplen, "%.*s/.tmp-%.16s-%ld-%lu", (int)(slash - final), final, tag,
                 (long)getpid(), (unsigned long)atomic_fetch_add(&file_seq, 1));
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
}

static int file_write_all(int fd, const unsigned char *bytes, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, bytes, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        bytes += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The blocking write of `len` bytes as dir/key: no access to the store, so that it may run
 * after its store is gone. *need receives len when the disk was full. */
static void file_write(const char *dir, const char *key, const unsigned char *bytes, size_t len,
                       struct raw_result *res, size_t *need)
{
    char final[FILE_PATH_MAX], tmp[FILE_PATH_MAX + 64], folder[FILE_PATH_MAX];
    struct stat st;
    snprintf(final, sizeof(final), "%s/%s", dir, key);
    *need = 0;
    if (stat(final, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size == len) {
        res->status = RAW_OK;
        res->existed = 1;
        return;
    }
    const char *tag = strrchr(key, '/') + 1;
    int fd = file_tmp_open(final, tag, tmp, sizeof(tmp));
    if (fd < 0 && errno == ENOENT) { /* the object's folder is not there yet */
        if (file_mkdirs(final, strlen(dir)) < 0) {
            file_fail(res, errno, "make the folder of", final);
            goto out;
        }
        fd = file_tmp_open(final, tag, tmp, sizeof(tmp));
    }
    if (fd < 0) {
        file_fail(res, errno, "create a file beside", final);
        goto out;
    }
    if (file_write_all(fd, bytes, len) < 0 || fsync(fd) < 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        file_fail(res, e, "write", tmp);
        goto out;
    }
    if (close(fd) < 0 || rename(tmp, final) < 0) {
        int e = errno;
        unlink(tmp);
        file_fail(res, e, "rename a file to", final);
        goto out;
    }
    snprintf(folder, sizeof(folder), "%.*s", (int)(strrchr(final, '/') - final), final);
    if (file_fsync_dir(folder) < 0) {
        /* The object is complete under its name; only its durability is in doubt: say so, and
         * the retry finds it there and counts it as existing. */
        file_fail(res, errno, "fsync the folder", folder);
        goto out;
    }
    res->status = RAW_OK;
    res->existed = 0;
out:
    if (res->status != RAW_OK && strcmp(res->reason, "no_space") == 0)
        *need = len;
}

static void file_note_need(struct raw_store *r, const struct raw_result *res, size_t need)
{
    struct file_store *fs = r->impl;
    if (res->status == RAW_OK && !res->existed)
        atomic_store(&fs->need, 0);
    else if (need > 0)
        atomic_store(&fs->need, need);
}

static void file_put(struct raw_put *p)
{
    size_t need;
    file_write(p->r->c.dir, p->key, p->bytes, p->len, &p->res, &need);
    file_note_need(p->r, &p->res, need);
}

/* ---- asynchronous writes ---------------------------------------------------------------- */

static void file_work(void *arg)
{
    struct file_put *fp = arg;
    file_write(fp->dir, fp->p.key, fp->copy, fp->p.len, &fp->p.res, &fp->need);
    fp->ran = 1;
}

static void file_work_done(void *arg)
{
    struct file_put *fp = arg;
    free(fp->copy);
    fp->copy = NULL;
    if (fp->cancelled) {
        free(fp);
        return;
    }
    if (!fp->ran)
        raw_set(&fp->p.res, RAW_TRANSIENT, "io", "the write did not run: the pool stopped");
    file_note_need(fp->p.r, &fp->p.res, fp->need);
    raw_put_deliver(&fp->p);
}

static int file_put_start(struct raw_put *p)
{
    struct file_put *fp = (struct file_put *)p;
    const struct raw_loop *loop = &p->r->loop;
    if (loop->offload == NULL)
        return -1;
    fp->copy = malloc(p->len ? p->len : 1);
    if (fp->copy == NULL)
        return -1;
    if (p->len)
        memcpy(fp->copy, p->bytes, p->len);
    p->bytes = NULL; /* the caller's buffer is not used past this point */
    snprintf(fp->dir, sizeof(fp->dir), "%s", p->r->c.dir);
    if (loop->offload(loop->offload_ctx, file_work, file_work_done, fp) < 0) {
        free(fp->copy);
        return -1;
    }
    return 0;
}

static void file_put_cancel(struct raw_put *p)
{
    ((struct file_put *)p)->cancelled = 1; /* freed by file_work_done, result unseen */
}

/* ---- reads and the check ---------------------------------------------------------------- */

static int file_head(struct raw_store *r, const char *key, int *found, size_t *len, char *err,
                     size_t errlen)
{
    char path[FILE_PATH_MAX];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", r->c.dir, key);
    *found = 0;
    *len = 0;
    if (stat(path, &st) == 0) {
        *found = S_ISREG(st.st_mode);
        *len = *found ? (size_t)st.st_size : 0;
        return 0;
    }
    if (errno == ENOENT || errno == ENOTDIR)
        return 0;
    snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
    return -1;
}

static int file_get(struct raw_store *r, const char *key, int *found, unsigned char **bytes,
                    size_t *len, char *type, char *err, size_t errlen)
{
    char path[FILE_PATH_MAX];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", r->c.dir, key);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    unsigned char *buf = NULL;
    size_t have = 0;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s is not a readable file", path);
        goto err;
    }
    buf = malloc(st.st_size ? (size_t)st.st_size : 1);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory for %s (%lld bytes)", path, (long long)st.st_size);
        goto err;
    }
    while (have < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + have, (size_t)st.st_size - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "cannot read %s: %s", path, n < 0 ? strerror(errno) : "short");
            goto err;
        }
        have += (size_t)n;
    }
    close(fd);
    *found = 1;
    *bytes = buf;
    *len = have;
    type[0] = '\0';
    return 0;
err:
    free(buf);
    close(fd);
    return -1;
}

static int file_check(struct raw_store *r, char *err, size_t errlen)
{
    struct file_store *fs = r->impl;
    const char *dir = r->c.dir;
    char where[FILE_PATH_MAX], probe[FILE_PATH_MAX + 64];
    struct stat st;
    if (stat(dir, &st) < 0) {
        snprintf(err, errlen, "raw store directory %s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "raw store directory %s is not a directory", dir);
        return -1;
    }
    snprintf(where, sizeof(where), "%s/probe", dir);
    int fd = file_tmp_open(where, "check", probe, sizeof(probe));
    if (fd < 0 || file_write_all(fd, (const unsigned char *)"pixflow\n", 8) < 0 || fsync(fd) < 0) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
            unlink(probe);
        }
        snprintf(err, errlen, "raw store directory %s is not writable: %s", dir, strerror(e));
        return -1;
    }
    close(fd);
    if (unlink(probe) < 0) {
        snprintf(err, errlen, "raw store directory %s: cannot remove %s: %s", dir, probe,
                 strerror(errno));
        return -1;
    }
    size_t need = atomic_load(&fs->need);
    struct statvfs sv;
    if (need > 0 && statvfs(dir, &sv) == 0 &&
        (unsigned long long)sv.f_bavail * sv.f_frsize < (unsigned long long)need) {
        snprintf(err, errlen,
                 "raw store directory %s: no space left: %llu bytes free, a write of %zu waits",
                 dir, (unsigned long long)sv.f_bavail * sv.f_frsize, need);
        return -1;
    }
    return 0;
}

/* ---- the backend ------------------------------------------------------------------------ */

static int file_init(struct raw_store *r, char *err, size_t errlen)
{
    struct file_store *fs = calloc(1, sizeof(*fs));
    if (fs == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    atomic_init(&fs->need, 0);
    r->impl = fs;
    return 0;
}

static void file_free(struct raw_store *r)
{
    free(r->impl);
}

static void file_root(const struct raw_store *r, char *buf, size_t len)
{
    snprintf(buf, len, "file://%s", r->c.dir);
}

const struct raw_backend raw_file_backend = {
    .put_size = sizeof(struct file_put),
    .init = file_init,
    .free = file_free,
    .check = file_check,
    .put = file_put,
    .head = file_head,
    .get = file_get,
    .put_start = file_put_start,
    .put_cancel = file_put_cancel,
    .root = file_root,
};
