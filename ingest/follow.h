/* follow.h -- --follow: keep reading files as they grow, like `tail -F`.
 *
 * Survives rotation (the name now points to another file: the old one is read to its end, its
 * last unterminated line included, then the new one from line 1) and truncation (the file got
 * smaller than what was read: start again from its beginning, line 1). A file that does not
 * exist yet is waited for. A last line still without its '\n' is held back until the '\n'
 * arrives, the file is rotated, or the run stops (then it is not ingested: a writer may have
 * been in the middle of it; the "how far" line number lets a rerun take it). */
#ifndef PIXFLOW_FOLLOW_H
#define PIXFLOW_FOLLOW_H

#include <signal.h>

#include "feed.h"

struct follow_file {
    const char *path;
    const char *source;    /* the stream's `source` field */
    unsigned long skip_to; /* --resume: lines already acknowledged at the first open */
};

/* Runs until *stop is set (FEED_STOPPED) or Redis gives up (FEED_FAILED, err set). */
int follow_run(struct feed *f, struct push *p, const struct follow_file *files, int n, long poll_ms,
               volatile sig_atomic_t *stop, char *err, size_t errlen);

#endif
