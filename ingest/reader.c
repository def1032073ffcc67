/* reader.c -- line splitting over one fixed buffer, cutting overlong lines instead of growing.
 *
 * Buffer layout: [start, end) holds unread bytes, the next '\n' is searched from `scan`. When a
 * line outgrows `keep` before its '\n' arrives, its first `keep` bytes are moved to the front and
 * everything up to the '\n' is then read into the space after them and dropped (`skipping`). */
#include "reader.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct reader {
    int fd;
    int hold;
    char *buf;
    size_t cap, keep;
    size_t start, scan, end;
    int skipping;       /* inside a line longer than keep: buf[0, keep) is its head */
    size_t skipped_len; /* that line's length so far */
    unsigned long number;
    unsigned long long offset;
};

struct reader *reader_new(size_t bufsize, size_t keep, char *err, size_t errlen)
{
    if (keep == 0 || keep >= bufsize) {
        snprintf(err, errlen, "reader: keep (%zu) must be 1..buffer size - 1 (%zu)", keep, bufsize);
        return NULL;
    }
    struct reader *r = calloc(1, sizeof(*r));
    if (r == NULL)
        goto err;
    r->buf = malloc(bufsize);
    if (r->buf == NULL)
        goto err;
    r->cap = bufsize;
    r->keep = keep;
    r->fd = -1;
    return r;
err:
    snprintf(err, errlen, "reader: out of memory for a %zu-byte buffer", bufsize);
    reader_free(r);
    return NULL;
}

void reader_free(struct reader *r)
{
    if (r == NULL)
        return;
    free(r->buf);
    free(r);
}

void reader_attach(struct reader *r, int fd, int hold)
{
    r->fd = fd;
    r->hold = hold;
    r->start = r->scan = r->end = 0;
    r->skipping = 0;
    r->skipped_len = 0;
    r->number = 0;
    r->offset = 0;
}

unsigned long long reader_offset(const struct reader *r)
{
    return r->offset;
}

unsigned long reader_number(const struct reader *r)
{
    return r->number;
}

static void reader_emit(struct reader *r, struct reader_line *line, const char *data, size_t len,
                        size_t full_len)
{
    line->data = data;
    line->len = len < r->keep ? len : r->keep;
    line->full_len = full_len;
    line->number = ++r->number;
}

/* The line in [start, upto) ends here; `next` is where the following one starts. */
static void reader_take(struct reader *r, struct reader_line *line, size_t upto, size_t next)
{
    if (r->skipping) {
        reader_emit(r, line, r->buf, r->keep, r->skipped_len + (upto - r->scan));
        r->skipping = 0;
    } else {
        reader_emit(r, line, r->buf + r->start, upto - r->start, upto - r->start);
    }
    r->start = r->scan = next;
}

int reader_finish(struct reader *r, struct reader_line *line)
{
    if (!r->skipping && r->start == r->end)
        return 0;
    reader_take(r, line, r->end, r->end);
    return 1;
}

/* Make room at the end of the buffer for the next read. */
static void reader_room(struct reader *r)
{
    if (r->skipping) {
        /* Everything after the kept head is part of the overlong line: drop it. */
        r->skipped_len += r->end - r->scan;
        r->scan = r->end = r->keep;
        return;
    }
    if (r->start == r->end) {
        r->start = r->scan = r->end = 0;
        return;
    }
    if (r->end - r->start > r->keep) {
        /* No '\n' within keep bytes: keep the head, count the rest from now on. */
        memmove(r->buf, r->buf + r->start, r->keep);
        r->skipping = 1;
        r->skipped_len = r->end - r->start;
        r->start = 0;
        r->scan = r->end = r->keep;
        return;
    }
    if (r->end == r->cap) {
        size_t n = r->end - r->start;
        memmove(r->buf, r->buf + r->start, n);
        r->scan -= r->start;
        r->start = 0;
        r->end = n;
    }
}

int reader_next(struct reader *r, struct reader_line *line, char *err, size_t errlen)
{
    for (;;) {
        char *nl = memchr(r->buf + r->scan, '\n', r->end - r->scan);
        if (nl) {
            size_t at = (size_t)(nl - r->buf);
            reader_take(r, line, at, at + 1);
            return READER_LINE;
        }
        reader_room(r);
        r->scan = r->end;

        ssize_t n = read(r->fd, r->buf + r->end, r->cap - r->end);
        if (n > 0) {
            r->end += (size_t)n;
            r->offset += (unsigned long long)n;
            continue;
        }
        if (n < 0) {
            if (errno == EINTR)
                return READER_INTR;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return READER_EOF; /* a non-blocking pipe with nothing more for now */
            snprintf(err, errlen, "read: %s", strerror(errno));
            return READER_ERROR;
        }
        if (r->hold || !reader_finish(r, line))
            return READER_EOF;
        return READER_LINE;
    }
}
