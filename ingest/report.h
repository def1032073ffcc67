/* report.h -- what a run tells its user at the end: the one-line summary on stdout (text or
 * JSON) and, when it could not finish, how far it got and how to go on without losing or
 * doubling anything. */
#ifndef PIXFLOW_REPORT_H
#define PIXFLOW_REPORT_H

#include <stdio.h>

#include "batch.h"
#include "push.h"

struct report {
    const char *status; /* "ok", "interrupted", "failed" */
    const struct batch_counts *counts;
    const struct push_mark *acked;
    double elapsed_s;
    int watch;
    unsigned long files_done, files_failed;
    size_t dedup_bytes;
    int dedup_full;
};

void report_summary(FILE *out, const struct report *r, int json);

/* The stderr lines after a failure or an interruption: where a rerun starts, and `window`, how
 * many lines after that may be in the stream already (0 when nothing is unacknowledged).
 * `watch_dir` is set in --watch mode. */
void report_how_far(FILE *out, const char *prog, const struct push_mark *acked,
                    unsigned long window, const char *watch_dir);

#endif
