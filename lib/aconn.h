/* aconn.h -- a hiredis async connection attached to a libevent loop, its callbacks set. Shared by
 * the worker's links (consumer/link.c) and the sentinels' subscription (sentinel_watch.c). */
#ifndef PIXFLOW_ACONN_H
#define PIXFLOW_ACONN_H

#include <event2/event.h>
#include <hiredis/async.h>
#include <stddef.h>

/* Starts a non-blocking connection to host:port on base, with ac->data = data. NULL with why
 * set when it fails at once (nothing to free then). */
redisAsyncContext *aconn_open(struct event_base *base, const char *host, int port, void *data,
                              redisConnectCallback *on_connect,
                              redisDisconnectCallback *on_disconnect, char *why, size_t whylen);

#endif
