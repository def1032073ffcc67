/* replay.h -- the one script that puts a dead letter back into the stream, shared by
 * `pixflow dead --replay` and the console's replay button so both keep the same guarantees:
 * Redis runs it whole or not at all, so a letter is never lost nor queued twice. */
#ifndef PIXFLOW_REPLAY_H
#define PIXFLOW_REPLAY_H

#include <hiredis/hiredis.h>
#include <stddef.h>

/* KEYS: dead, seen, stream, stats. ARGV: letter id, normalized URL ("" when it does not parse).
 * Reads the letter, SREMs the URL from seen (or the worker's dedup would drop it), XADDs url,
 * source and line with replay_of = the letter's id, XDELs the letter, counts `replayed`.
 * Returns the new entry's id, nil when the letter is gone, "" when it has no url. */
extern const char replay_lua[];

/* Runs replay_lua for letter `id` whose url field is `url` (may be NULL). keys: the dead, seen,
 * stream and stats keys. The script's reply, or NULL with err. */
redisReply *replay_run(redisContext *c, const char *const keys[4], const char *id,
                       const redisReply *url, char *err, size_t errlen);

#endif
