/* sentinel.c -- the primary of a redis-sentinel:// target, asked of its sentinels.
 *
 * The sentinels take no credentials here: the URL's are the primary's (Lettuce's form), and a
 * sentinel usually listens on a network of its own. Each sentinel is tried in the order the URL
 * names them; the first that knows the name answers. */
#include "sentinel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* One sentinel's answer into *out. -1 with err. */
static int sentinel_ask(const struct redis_node *n, const char *master, long timeout_ms,
                        struct redis_node *out, char *err, size_t errlen)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(n->host, n->port, tv);
    if (c == NULL || c->err) {
        snprintf(err, errlen, "%s", c ? c->errstr : "out of memory");
        redisFree(c);
        return -1;
    }
    redisSetTimeout(c, tv);
    redisReply *r = redisCommand(c, "SENTINEL get-master-addr-by-name %s", master);
    int rc = -1;
    if (r == NULL)
        snprintf(err, errlen, "%s", c->errstr);
    else if (r->type == REDIS_REPLY_ERROR)
        snprintf(err, errlen, "%s", r->str);
    else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
             r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        snprintf(err, errlen, "does not know '%s'", master);
    else if (r->element[0]->len >= sizeof(out->host) || atoi(r->element[1]->str) <= 0)
        snprintf(err, errlen, "answered a bad address");
    else {
        snprintf(out->host, sizeof(out->host), "%s", r->element[0]->str);
        out->port = atoi(r->element[1]->str);
        rc = 0;
    }
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return rc;
}

int sentinel_primary(const struct redis_target *t, long timeout_ms, struct redis_node *out,
                     char *err, size_t errlen)
{
    size_t used = (size_t)snprintf(err, errlen, "no sentinel answered for '%s':", t->master);
    for (int i = 0; i < t->nsentinels; i++) {
        const struct redis_node *n = &t->sentinels[i];
        char why[256];
        if (sentinel_ask(n, t->master, timeout_ms, out, why, sizeof(why)) == 0)
            return 0;
        if (used < errlen)
            used += (size_t)snprintf(err + used, errlen - used, "%s %s:%d: %s", i ? ";" : "",
                                     n->host, n->port, why);
    }
    return -1;
}

int sentinel_is_primary(const redisReply *role)
{
    return role && role->type == REDIS_REPLY_ARRAY && role->elements > 0 &&
           role->element[0]->type == REDIS_REPLY_STRING &&
           strcmp(role->element[0]->str, "master") == 0;
}
