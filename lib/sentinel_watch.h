/* sentinel_watch.h -- the sentinels' +switch-master announcements, heard on a libevent loop.
 *
 * A broken connection or a READONLY reply tells a program that its primary changed only once it
 * talks to it; a primary whose machine died (no RST, no reply) leaves an idle connection waiting
 * for its timeout. The sentinels announce each failover on the channel +switch-master: a program
 * subscribed to it moves at once, with or without traffic. Kept apart from sentinel.c: only the
 * worker runs a loop, and the blocking tools need not link libevent. */
#ifndef PIXFLOW_SENTINEL_WATCH_H
#define PIXFLOW_SENTINEL_WATCH_H

#include <event2/event.h>

#include "settings.h"

struct sentinel_watch;

/* Told the new primary's address each time the sentinels switch t->master. */
typedef void sentinel_switch_fn(const struct redis_node *primary, void *arg);

/* Subscribes through t's sentinels, one at a time: the next one when a connection fails or
 * drops (with a backoff), never blocking the loop. NULL when out of memory, or when t names
 * no sentinels. */
struct sentinel_watch *sentinel_watch_new(struct event_base *base, const struct redis_target *t,
                                          sentinel_switch_fn *fn, void *arg);
void sentinel_watch_free(struct sentinel_watch *w);

/* Parse a +switch-master message ("<name> <old-ip> <old-port> <new-ip> <new-port>") for the
 * primary named `master`: 0 with *out set, -1 when it is another's or malformed. */
int sentinel_watch_parse(const char *msg, const char *master, struct redis_node *out);

#endif
