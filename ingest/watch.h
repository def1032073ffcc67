/* watch.h -- --watch DIR: ingest every file dropped into a folder, once.
 *
 * Files already there at start are taken first (in name order), then each file that is closed
 * after writing (IN_CLOSE_WRITE) or moved in (IN_MOVED_TO). Once all its lines are acknowledged
 * by Redis a file moves to DIR/.done/; a file that cannot be read moves to DIR/.failed/. Names
 * starting with '.' are ignored, so a writer can build ".x.tmp" and rename it to "x" when it is
 * complete. A name clash in .done/ or .failed/ gets a ".N" suffix instead of overwriting. If
 * Redis gives up mid-file, that file stays where it is: the next run takes it again from its
 * first line, and whatever it had queued already is dropped by the consumer's dedup. */
#ifndef PIXFLOW_WATCH_H
#define PIXFLOW_WATCH_H

#include <signal.h>

#include "feed.h"

struct watch_stats {
    unsigned long done, failed;
};

/* source: the stream's `source` field for every file, or NULL for each file's own name.
 * Runs until *stop is set (FEED_STOPPED) or Redis gives up (FEED_FAILED, err set). */
int watch_run(struct feed *f, struct push *p, struct reader *r, const char *dir, const char *source,
              volatile sig_atomic_t *stop, struct watch_stats *stats, char *err, size_t errlen);

#endif
