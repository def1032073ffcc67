/* feed.h -- one source's lines through validation, the rejects file and the in-memory dedup,
 * into batches for push. Every input mode (files, stdin, --follow, --watch) goes through it. */
#ifndef PIXFLOW_FEED_H
#define PIXFLOW_FEED_H

#include <signal.h>
#include <stddef.h>

#include "push.h"
#include "reader.h"
#include "rejects.h"
#include "seen.h"
#include "url.h"

struct feed_options {
    const struct url_hosts *hosts;
    struct seen *seen;       /* NULL: no in-memory dedup */
    struct rejects *rejects; /* NULL: no rejects file */
    struct push *push;
    volatile sig_atomic_t *stop;
};

enum feed_status {
    FEED_EOF = 0,    /* the reader has nothing more for now */
    FEED_STOPPED,    /* a signal asked to stop */
    FEED_READ_ERROR, /* err says why */
    FEED_FAILED,     /* Redis gave up or memory ran out: err says why */
};

struct feed;

struct feed *feed_new(const struct feed_options *o, char *err, size_t errlen);
void feed_free(struct feed *f);

/* Lines from r until it reports end of file; lines numbered up to skip_to are passed over
 * (--resume: they were acknowledged by an earlier run). `source` must outlive the next
 * push_flush. */
int feed_run(struct feed *f, struct reader *r, const char *source, unsigned long skip_to, char *err,
             size_t errlen);

/* One line, e.g. the last one of a rotated file handed out by reader_finish. */
int feed_line(struct feed *f, const char *source, const struct reader_line *line, char *err,
              size_t errlen);

#endif
