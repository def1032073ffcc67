/* watch.c -- a folder as an inbox: inotify for arrivals, a scan for what was already there.
 *
 * The watch is set up before the scan, so a file arriving during the scan is seen by one or
 * the other (or both: the second attempt finds it gone to .done/ and passes). An inotify queue
 * overflow triggers a fresh scan instead of losing arrivals. */
#include "watch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define WATCH_POLL_MS 500

struct watch {
    struct feed *f;
    struct push *p;
    struct reader *r;
    const char *dir;
    const char *source;
    struct watch_stats *stats;
    char name[NAME_MAX + 1]; /* the current file's source name: lives until its flush */
};

/* rename into DIR/<sub>/, never over an existing file. */
static int watch_move(const struct watch *w, const char *name, const char *sub)
{
    char from[PATH_MAX], to[PATH_MAX];
    snprintf(from, sizeof(from), "%s/%s", w->dir, name);
    for (int n = 0; n < 1000; n++) {
        if (n == 0)
            snprintf(to, sizeof(to), "%s/%s/%s", w->dir, sub, name);
        else
            snprintf(to, sizeof(to), "%s/%s/%s.%d", w->dir, sub, name, n);
        if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
            return 0;
        if (errno != EEXIST)
            break;
    }
    log_error("event=watch_move file=%s to=%s error=\"%s\"", from, sub, strerror(errno));
    return -1;
}

static void watch_failed(struct watch *w, const char *name, const char *why)
{
    log_error("event=watch_failed file=%s/%s error=\"%s\"", w->dir, name, why);
    w->stats->failed++;
    watch_move(w, name, ".failed");
}

/* Ingest one file and file it away; FEED_EOF when the run may go on. */
static int watch_file(struct watch *w, const char *name, char *err, size_t errlen)
{
    char path[PATH_MAX];
    if (name[0] == '.')
        return FEED_EOF;
    snprintf(path, sizeof(path), "%s/%s", w->dir, name);
    /* O_NONBLOCK: a FIFO dropped in the folder must not hang the run. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
    if (fd < 0) {
        if (errno != ENOENT) /* ENOENT: already taken by the scan or the events */
            watch_failed(w, name, strerror(errno));
        return FEED_EOF;
    }
    struct stat sb;
    if (fstat(fd, &sb) < 0) {
        close(fd);
        watch_failed(w, name, strerror(errno));
        return FEED_EOF;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        if (!S_ISDIR(sb.st_mode)) /* folders are left alone */
            watch_failed(w, name, "not a regular file");
        return FEED_EOF;
    }
    snprintf(w->name, sizeof(w->name), "%s", name);
    const char *source = w->source ? w->source : w->name;
    log_info("event=watch_file file=%s bytes=%lld", path, (long long)sb.st_size);
    reader_attach(w->r, fd, 0);
    int rc = feed_run(w->f, w->r, source, 0, err, errlen);
    close(fd);
    if (rc == FEED_READ_ERROR) {
        watch_failed(w, name, err);
        rc = FEED_EOF; /* what was read of it is still pushed by the flush below */
    }
    if (rc != FEED_EOF)
        return rc; /* stopped or Redis gone: the file stays for the next run */
    int prc = push_flush(w->p, err, errlen);
    if (prc != PUSH_OK)
        return prc == PUSH_STOPPED ? FEED_STOPPED : FEED_FAILED;
    if (access(path, F_OK) == 0) { /* not moved to .failed above */
        w->stats->done++;
        watch_move(w, name, ".done");
        log_info("event=watch_done file=%s lines=%lu", path, reader_number(w->r));
    }
    return FEED_EOF;
}

static int watch_scan(struct watch *w, volatile sig_atomic_t *stop, char *err, size_t errlen)
{
    struct dirent **names;
    int n = scandir(w->dir, &names, NULL, alphasort);
    if (n < 0) {
        snprintf(err, errlen, "--watch: cannot list '%s': %s", w->dir, strerror(errno));
        return FEED_FAILED;
    }
    int rc = FEED_EOF;
    for (int i = 0; i < n; i++) {
        if (rc == FEED_EOF && !*stop && names[i]->d_type != DT_DIR)
            rc = watch_file(w, names[i]->d_name, err, errlen);
        free(names[i]);
    }
    free(names);
    return rc;
}

static int watch_mkdir(const char *dir, const char *sub, char *err, size_t errlen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, sub);
    if (mkdir(path, 0755) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "--watch: cannot create '%s': %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Drain the inotify queue, ingesting each arrival; FEED_EOF while the run goes on. */
static int watch_events(struct watch *w, int ifd, volatile sig_atomic_t *stop, char *err,
                        size_t errlen)
{
    char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t len = read(ifd, buf, sizeof(buf));
        if (len < 0 && (errno == EAGAIN || errno == EINTR))
            return FEED_EOF;
        if (len < 0) {
            snprintf(err, errlen, "--watch: inotify read: %s", strerror(errno));
            return FEED_FAILED;
        }
        for (char *p = buf; p < buf + len;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof(*ev) + ev->len;
            int rc = FEED_EOF;
            if (*stop)
                return FEED_STOPPED;
            if (ev->mask & IN_Q_OVERFLOW) {
                log_warn("event=watch_overflow dir=%s action=rescan", w->dir);
                rc = watch_scan(w, stop, err, errlen);
            } else if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
                snprintf(err, errlen, "--watch: '%s' was removed or moved away", w->dir);
                return FEED_FAILED;
            } else if (ev->len && !(ev->mask & IN_ISDIR)) {
                rc = watch_file(w, ev->name, err, errlen);
            }
            if (rc != FEED_EOF)
                return rc;
        }
    }
}

int watch_run(struct feed *f, struct push *p, struct reader *r, const char *dir, const char *source,
              volatile sig_atomic_t *stop, struct watch_stats *stats, char *err, size_t errlen)
{
    struct watch w = {f, p, r, dir, source, stats, ""};
    if (watch_mkdir(dir, ".done", err, errlen) < 0 || watch_mkdir(dir, ".failed", err, errlen) < 0)
        return FEED_FAILED;
    int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (ifd < 0) {
        snprintf(err, errlen, "--watch: inotify: %s", strerror(errno));
        return FEED_FAILED;
    }
    int rc = FEED_FAILED;
    uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
    if (inotify_add_watch(ifd, dir, mask) < 0) {
        snprintf(err, errlen, "--watch: cannot watch '%s': %s", dir, strerror(errno));
        goto out;
    }
    log_info("event=watch_start dir=%s", dir);
    rc = watch_scan(&w, stop, err, errlen);
    while (rc == FEED_EOF && !*stop) {
        struct pollfd pfd = {ifd, POLLIN, 0};
        int n = poll(&pfd, 1, WATCH_POLL_MS);
        if (n > 0)
            rc = watch_events(&w, ifd, stop, err, errlen);
        else if (n < 0 && errno != EINTR) {
            snprintf(err, errlen, "--watch: poll: %s", strerror(errno));
            rc = FEED_FAILED;
        }
    }
    if (rc == FEED_EOF)
        rc = FEED_STOPPED;
out:
    close(ifd);
    return rc;
}
