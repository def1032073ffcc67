/* link.h -- one hiredis async connection on the worker's loop that reconnects by itself. */
#ifndef PIXFLOW_LINK_H
#define PIXFLOW_LINK_H

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "settings.h"

struct link;

/* reply is NULL when the connection failed or was dropped before the reply came. */
typedef void link_reply_fn(struct link *l, redisReply *reply, void *arg);
/* Told when the link comes up (after AUTH and SELECT) and when it goes down. */
typedef void link_state_fn(struct link *l, int up, void *arg);

/* timeout_ms: a command without any reply for that long means Redis hangs: the connection is
 * dropped (every waiting callback gets NULL) and made again. It must exceed any BLOCK used. */
struct link *link_new(struct event_base *base, const struct redis_target *t, const char *name,
                      long timeout_ms, link_state_fn *state, void *arg);
int link_up(const struct link *l);
/* 0 when sent; -1 when the link is down (the callback will not be called). */
int link_command(struct link *l, link_reply_fn *fn, void *arg, int argc, const char **argv,
                 const size_t *lens);
/* Subscribe to `channel`; the link then carries nothing else. fn gets the confirmation and every
 * message (the reply's array as Redis sends it), and NULL when the link drops: subscribe again
 * when it comes back up. 0 when sent, -1 when the link is down. */
int link_subscribe(struct link *l, const char *channel, link_reply_fn *fn, void *arg);
void link_free(struct link *l);

/* Helpers to read replies without repeating the type checks. */
int reply_is_error(const redisReply *r);
const char *reply_error(const redisReply *r); /* the text, or "connection lost" */

#endif
