/* batch.h -- a run of consecutive lines of one source, sent to Redis as one pipelined round.
 *
 * A batch holds the normalized URLs that survived validation and the in-memory dedup (in one
 * arena: no malloc per line), plus what its lines add to the counters. It is acknowledged as a
 * whole: once Redis has answered for all of it, every line up to last_line is accounted for. */
#ifndef PIXFLOW_BATCH_H
#define PIXFLOW_BATCH_H

#include <stddef.h>

#include "url.h"

struct batch_entry {
    size_t url_off; /* into the arena */
    size_t url_len;
    unsigned long line;
    int seen; /* Redis' seen set already holds it: counted as a duplicate, not queued */
};

struct batch_counts {
    unsigned long lines; /* non-blank lines */
    unsigned long queued;
    unsigned long dup_input; /* repeats inside this run's input */
    unsigned long dup_seen;  /* already in <prefix>seen */
    unsigned long invalid;
    unsigned long invalid_by[URL_REASON_COUNT];
    unsigned long blank;
};

struct batch {
    const char *source;      /* not owned: lives as long as the run */
    unsigned long last_line; /* the last line this batch accounts for (0: none yet) */
    unsigned long pulled;    /* lines taken in, blank ones included */
    int known;               /* Redis answered which URLs <prefix>seen holds */
    struct batch_entry *entry;
    size_t count, cap;
    char *arena;
    size_t arena_len, arena_cap;
    struct batch_counts counts;
};

struct batch *batch_new(size_t cap, char *err, size_t errlen);
void batch_free(struct batch *b);
void batch_reset(struct batch *b, const char *source);

/* Add a URL to send; -1 when memory runs out. */
int batch_add(struct batch *b, const char *url, size_t len, unsigned long line);
static inline const char *batch_url(const struct batch *b, size_t i)
{
    return b->arena + b->entry[i].url_off;
}

void batch_counts_add(struct batch_counts *to, const struct batch_counts *from);

#endif
