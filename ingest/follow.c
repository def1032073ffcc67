/* follow.c -- tail -F over one or more files by polling: read to end of file, hand what was
 * read to Redis, sleep, look at the name again (inode changed? file shrank?), repeat.
 * Polling rather than inotify because it also works on network filesystems and across the
 * create/rename dance of every log rotator; poll_ms bounds the added latency. */
#include "follow.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define FOLLOW_BUF (256u << 10)

struct follow_state {
    const struct follow_file *file;
    struct reader *r;
    int fd;
    dev_t dev;
    ino_t ino;
    unsigned long skip_to;
    int waiting_logged;
};

static int follow_open(struct follow_state *st)
{
    int fd = open(st->file->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (!st->waiting_logged++)
            log_info("event=follow_wait file=%s error=\"%s\"", st->file->path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) < 0 || S_ISDIR(sb.st_mode)) {
        if (!st->waiting_logged++)
            log_warn("event=follow_wait file=%s error=\"not a readable file\"", st->file->path);
        close(fd);
        return -1;
    }
    st->fd = fd;
    st->dev = sb.st_dev;
    st->ino = sb.st_ino;
    st->waiting_logged = 0;
    reader_attach(st->r, fd, 1);
    log_info("event=follow_open file=%s inode=%lu", st->file->path, (unsigned long)sb.st_ino);
    return 0;
}

static void follow_close(struct follow_state *st)
{
    if (st->fd >= 0)
        close(st->fd);
    st->fd = -1;
    st->skip_to = 0; /* --resume concerned the file first opened, not its successors */
}

/* After end of file: rotated away, truncated, or just not grown yet? */
static int follow_check(struct feed *f, struct follow_state *st, char *err, size_t errlen)
{
    struct stat now, cur;
    if (stat(st->file->path, &now) < 0)
        return FEED_EOF; /* renamed away, successor not created yet: keep the old one */
    if (now.st_dev != st->dev || now.st_ino != st->ino) {
        struct reader_line line;
        int rc = feed_run(f, st->r, st->file->source, st->skip_to, err, errlen);
        if (rc != FEED_EOF)
            return rc;
        if (reader_finish(st->r, &line) && line.number > st->skip_to) {
            rc = feed_line(f, st->file->source, &line, err, errlen);
            if (rc != FEED_EOF)
                return rc;
        }
        log_info("event=follow_rotated file=%s lines=%lu", st->file->path, reader_number(st->r));
        follow_close(st);
        return FEED_EOF;
    }
    if (fstat(st->fd, &cur) == 0 && (unsigned long long)cur.st_size < reader_offset(st->r)) {
        log_warn("event=follow_truncated file=%s size=%lld was=%llu", st->file->path,
                 (long long)cur.st_size, reader_offset(st->r));
        if (lseek(st->fd, 0, SEEK_SET) < 0) {
            snprintf(err, errlen, "%s: %s", st->file->path, strerror(errno));
            return FEED_READ_ERROR;
        }
        reader_attach(st->r, st->fd, 1);
        st->skip_to = 0;
    }
    return FEED_EOF;
}

static void follow_sleep(long ms, volatile sig_atomic_t *stop)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    /* A signal cuts the sleep short: that is how a stop request is seen at once. */
    if (!*stop)
        nanosleep(&ts, NULL);
}

int follow_run(struct feed *f, struct push *p, const struct follow_file *files, int n, long poll_ms,
               volatile sig_atomic_t *stop, char *err, size_t errlen)
{
    int rc = FEED_EOF;
    struct follow_state *st = calloc((size_t)n, sizeof(*st));
    if (st == NULL) {
        snprintf(err, errlen, "out of memory");
        return FEED_FAILED;
    }
    for (int i = 0; i < n; i++) {
        st[i].file = &files[i];
        st[i].fd = -1;
        st[i].skip_to = files[i].skip_to;
        st[i].r = reader_new(FOLLOW_BUF, URL_MAX + 1, err, errlen);
        if (st[i].r == NULL) {
            rc = FEED_FAILED;
            goto out;
        }
    }
    while (!*stop) {
        for (int i = 0; i < n && rc == FEED_EOF; i++) {
            if (st[i].fd < 0 && follow_open(&st[i]) < 0)
                continue;
            rc = feed_run(f, st[i].r, files[i].source, st[i].skip_to, err, errlen);
            if (rc == FEED_EOF)
                rc = follow_check(f, &st[i], err, errlen);
            if (rc == FEED_READ_ERROR) {
                /* An I/O error on one file: report it and start that file over later. */
                log_error("event=follow_error file=%s error=\"%s\"", files[i].path, err);
                follow_close(&st[i]);
                rc = FEED_EOF;
            }
        }
        if (rc != FEED_EOF)
            break;
        /* Everything read is acknowledged before idling: lines never wait for a full batch. */
        int prc = push_flush(p, err, errlen);
        if (prc != PUSH_OK) {
            rc = prc == PUSH_STOPPED ? FEED_STOPPED : FEED_FAILED;
            break;
        }
        follow_sleep(poll_ms, stop);
    }
    if (rc == FEED_EOF)
        rc = FEED_STOPPED;
out:
    for (int i = 0; i < n; i++) {
        follow_close(&st[i]);
        reader_free(st[i].r);
    }
    free(st);
    return rc;
}
