/* requeue.c -- reprocess entries queued once per (original, rendition) until acked. */
#include "requeue.h"
#include "names.h"
#include "rconn.h"
#include "requeue_lua.h"

#include <stdio.h>
#include <stdlib.h>

static const char QUEUE_LUA[] = REQUEUE_LUA;

redisReply *requeue_run(redisContext *c, const struct settings *s, const char *name,
                        const char *const *originals, size_t n, char *err, size_t errlen)
{
    char k_stream[SET_KEY_MAX], k_queued[SET_KEY_MAX], k_stats[SET_KEY_MAX];
    settings_key(s, KEY_REPROCESS, k_stream, sizeof(k_stream));
    settings_key(s, KEY_REPROCESS_QUEUED, k_queued, sizeof(k_queued));
    settings_key(s, KEY_STATS, k_stats, sizeof(k_stats));
    const char **av = calloc(n + 7, sizeof(*av));
    if (av == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    av[0] = "EVAL", av[1] = QUEUE_LUA, av[2] = "3", av[3] = k_stream, av[4] = k_queued;
    av[5] = k_stats, av[6] = name;
    for (size_t i = 0; i < n; i++)
        av[7 + i] = originals[i];
    redisReply *q = redisCommandArgv(c, (int)(n + 7), av, NULL);
    free(av);
    if (q == NULL || q->type != REDIS_REPLY_ARRAY) {
        char why[256] = "an unexpected reply";
        rconn_error(c, q, why, sizeof(why)); /* READONLY: c is dropped, the next goes on */
        snprintf(err, errlen, "redis: %s", why);
        if (q)
            freeReplyObject(q);
        return NULL;
    }
    return q;
}
