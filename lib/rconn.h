/* rconn.h -- blocking Redis connections for the command-line tools (ingest, admin CLI).
 * The consumer never uses these: it talks to Redis through hiredis' async API on its loop. */
#ifndef PIXFLOW_RCONN_H
#define PIXFLOW_RCONN_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "settings.h"

/* Connect, AUTH and SELECT; every command then times out after timeout_ms. NULL with err set. */
redisContext *rconn_open(const struct redis_target *t, long timeout_ms, char *err, size_t errlen);

/* Describe a reply that is an error (or a context failure) into err; returns -1 for those, 0
 * for any other reply. Frees nothing. A READONLY error (a primary demoted by a failover) also
 * marks c broken (c->err), so that its owner connects again, to the new primary. */
int rconn_error(redisContext *c, const redisReply *r, char *err, size_t errlen);

/* redisCommandArgv (lens may be NULL for C strings). The reply, or NULL with err set for a
 * connection failure or an error reply ("redis XINFO: ERR no such key"). Free it with
 * freeReplyObject. */
redisReply *rconn_command(redisContext *c, int argc, const char **argv, const size_t *lens,
                          char *err, size_t errlen);

#endif
