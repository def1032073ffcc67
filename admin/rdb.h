/* rdb.h -- the shapes of the Redis replies the admin commands read: flat field/value arrays,
 * numbers as strings, stream ids. Commands go through rconn_command() (lib/rconn.h). */
#ifndef PIXFLOW_RDB_H
#define PIXFLOW_RDB_H

#include <hiredis/hiredis.h>
#include <stddef.h>

/* The value after `name` in a flat [field, value, ...] array (XINFO, HGETALL, stream entries),
 * or NULL. */
const redisReply *rdb_field(const redisReply *flat, const char *name);

/* An integer reply or a string holding a whole number; -1 for anything else (nil, text). */
int rdb_ll(const redisReply *r, long long *out);

/* The milliseconds part of a stream id "<ms>-<seq>"; -1 when id is not one. */
int rdb_id_ms(const char *id, long long *ms);

/* `in` with the glob characters * ? [ ] \ escaped, for SCAN MATCH on a literal prefix.
 * -1 when out is too small. */
int rdb_glob_escape(const char *in, char *out, size_t outlen);

/* Calls fn for each entry ([id, [field, value...]]) of stream `key`, oldest first (newest first
 * when reverse), in pages, at most max entries (0: all). fn returns 0 to go on, 1 to stop, -1
 * when it failed (err set). 0, or -1 with err when Redis or fn failed. */
typedef int rdb_walk_fn(const redisReply *entry, void *arg, char *err, size_t errlen);
int rdb_walk(redisContext *c, const char *key, int reverse, long max, rdb_walk_fn *fn, void *arg,
             char *err, size_t errlen);

#endif
