/* sentinel.h -- the primary of a redis-sentinel:// target: asked of its sentinels, then checked.
 * Shared by the blocking connections (rconn.c) and the worker's async link (consumer/link.c). */
#ifndef PIXFLOW_SENTINEL_H
#define PIXFLOW_SENTINEL_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "settings.h"

/* Ask t's sentinels, in order, for the address of the primary named t->master (SENTINEL
 * get-master-addr-by-name), each given timeout_ms. 0 with *out set, or -1 with err naming every
 * sentinel's failure. Blocks for at most nsentinels x timeout_ms (x 2: connect, then reply). */
int sentinel_primary(const struct redis_target *t, long timeout_ms, struct redis_node *out,
                     char *err, size_t errlen);

/* A sentinel's answer may be stale (a failover in progress): the node itself must say, in its
 * ROLE reply, that it is a primary. 1 when `role` says so, else 0. */
int sentinel_is_primary(const redisReply *role);

#endif
