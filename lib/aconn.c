/* aconn.c -- hiredis async connections on a libevent loop. */
#include "aconn.h"

#include <hiredis/adapters/libevent.h>
#include <stdio.h>

redisAsyncContext *aconn_open(struct event_base *base, const char *host, int port, void *data,
                              redisConnectCallback *on_connect,
                              redisDisconnectCallback *on_disconnect, char *why, size_t whylen)
{
    redisAsyncContext *ac = redisAsyncConnect(host, port);
    if (ac == NULL || ac->err) {
        snprintf(why, whylen, "%s", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        return NULL;
    }
    ac->data = data;
    if (redisLibeventAttach(ac, base) != REDIS_OK) {
        snprintf(why, whylen, "cannot attach to the loop");
        redisAsyncFree(ac);
        return NULL;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}
