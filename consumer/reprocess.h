/* reprocess.h -- the worker's lane for the `reprocess` stream (SPEC §3, §5.9): entries queued by
 * `pixflow reprocess` (an original's sha256 and a rendition's name), read by the same consumer
 * group machinery as the input stream (stream.c: lease, reclaim, poison cap, dead letters with
 * reasons, counters written with the ack), the original read from the raw store, never from the
 * web. The worker gives it slots on every tick, never more than half of its own: with both
 * streams busy, live URLs keep at least half of every worker's slots. */
#ifndef PIXFLOW_REPROCESS_H
#define PIXFLOW_REPROCESS_H

#include <event2/event.h>

#include "metrics.h"
#include "pool.h"
#include "raw.h"
#include "renditions.h"
#include "settings.h"
#include "store.h"
#include "worker.h"

struct reprocess;

struct reprocess_env {
    struct event_base *base;
    const struct settings *s;
    const struct worker_options *o;
    struct pool *pool;
    struct store *store;
    struct raw_store *raw; /* required: without a raw store there is nothing to reprocess */
    struct renditions *rends;
    struct metrics *metrics;
    long lease_ms;
};

struct reprocess *reprocess_new(const struct reprocess_env *env);
/* Read at most `slots` more entries (the worker's free slots), within the lane's own cap. */
void reprocess_tick(struct reprocess *rp, int slots);
int reprocess_held(const struct reprocess *rp); /* delivered and not acked */
/* Nothing queued, pending or held (as of the last look at the group): for --exit-when-idle. */
int reprocess_idle(const struct reprocess *rp);
/* Stop reading; entries in flight finish (the worker's drain), or are left pending by abandon. */
void reprocess_stop(struct reprocess *rp);
void reprocess_abandon(struct reprocess *rp);
/* After pool_free (no task of ours left). */
void reprocess_free(struct reprocess *rp);

#endif
