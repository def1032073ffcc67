/* requeue.h -- the one script that queues reprocess entries, shared by `pixflow reprocess` and
 * the console's reprocess button so both keep the same guarantee: a pair (original, rendition)
 * queued and not yet acked is never queued twice. */
#ifndef PIXFLOW_REQUEUE_H
#define PIXFLOW_REQUEUE_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "settings.h"

/* Queues rendition `name` of each of the n originals (sha256s) into <prefix>reprocess, those
 * whose "<original>/<name>" was not in <prefix>reprocess:queued, and counts reprocess_queued.
 * The reply lists the originals queued by this call (an array), or NULL with err. */
redisReply *requeue_run(redisContext *c, const struct settings *s, const char *name,
                        const char *const *originals, size_t n, char *err, size_t errlen);

#endif
