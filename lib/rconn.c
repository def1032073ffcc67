/* rconn.c -- blocking Redis connections with auth, database and timeouts applied; with
 * sentinels, to the primary they name (lib/sentinel.h). */
#include "rconn.h"
#include "sentinel.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>

/* A READONLY reply: the node was a primary when the connection was made, and a failover
 * demoted it. The context is marked broken, as a lost connection would be: its owner drops it
 * (c->err) and the next connection goes where the sentinels say. */
static void rconn_demoted(redisContext *c)
{
    if (c->err)
        return;
    c->err = REDIS_ERR_OTHER;
    snprintf(c->errstr, sizeof(c->errstr), "READONLY: no longer the primary");
}

int rconn_error(redisContext *c, const redisReply *r, char *err, size_t errlen)
{
    if (r == NULL) {
        snprintf(err, errlen, "%s", c->err ? c->errstr : "no reply");
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "%s", r->str);
        if (strncmp(r->str, "READONLY", 8) == 0)
            rconn_demoted(c);
        return -1;
    }
    return 0;
}

redisReply *rconn_command(redisContext *c, int argc, const char **argv, const size_t *lens,
                          char *err, size_t errlen)
{
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    char why[256];
    if (rconn_error(c, r, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "redis %s: %s", argv[0], why);
        if (r)
            freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* A command whose reply only matters for its errors. */
static int rconn_do(redisContext *c, int argc, const char **argv, char *err, size_t errlen)
{
    redisReply *r = rconn_command(c, argc, argv, NULL, err, errlen);
    if (r == NULL)
        return -1;
    freeReplyObject(r);
    return 0;
}

/* With sentinels: the primary they name, or -1. Without: the URL's host. */
static int rconn_where(const struct redis_target *t, long timeout_ms, struct redis_node *at,
                       char *err, size_t errlen)
{
    if (t->nsentinels == 0) {
        snprintf(at->host, sizeof(at->host), "%s", t->host);
        at->port = t->port;
        return 0;
    }
    char why[1024];
    if (sentinel_primary(t, timeout_ms, at, why, sizeof(why)) == 0)
        return 0;
    snprintf(err, errlen, "redis: %s", why);
    return -1;
}

redisContext *rconn_open(const struct redis_target *t, long timeout_ms, char *err, size_t errlen)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    struct redis_node at;
    if (rconn_where(t, timeout_ms, &at, err, errlen) < 0)
        return NULL;
    redisContext *c = redisConnectWithTimeout(at.host, at.port, tv);
    if (c == NULL) {
        snprintf(err, errlen, "redis %s:%d: out of memory", at.host, at.port);
        return NULL;
    }
    if (c->err) {
        snprintf(err, errlen, "redis %s:%d: %s", at.host, at.port, c->errstr);
        goto fail;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        snprintf(err, errlen, "redis %s:%d: cannot set timeout", at.host, at.port);
        goto fail;
    }
    if (t->password[0]) {
        const char *argv[] = {"AUTH", t->user, t->password};
        int off = t->user[0] ? 0 : 1;
        if (off)
            argv[1] = "AUTH";
        if (rconn_do(c, 3 - off, argv + off, err, errlen) < 0)
            goto fail;
    }
    if (t->db) {
        char db[16];
        snprintf(db, sizeof(db), "%d", t->db);
        const char *argv[] = {"SELECT", db};
        if (rconn_do(c, 2, argv, err, errlen) < 0)
            goto fail;
    }
    if (t->nsentinels) {
        const char *argv[] = {"ROLE"};
        redisReply *r = rconn_command(c, 1, argv, NULL, err, errlen);
        int primary = sentinel_is_primary(r);
        if (r)
            freeReplyObject(r);
        if (r == NULL)
            goto fail;
        if (!primary) {
            snprintf(err, errlen,
                     "redis %s:%d: the sentinels name it, but it is no primary "
                     "(a failover in progress?)",
                     at.host, at.port);
            goto fail;
        }
    }
    return c;
fail:
    redisFree(c);
    return NULL;
}
