/* requeue_lua.h -- the one script that queues reprocess entries (SPEC §3 `reprocess`), for
 * `pixflow reprocess`, the console and the workers alike: a pair (original, rendition) is queued
 * only when "<original>/<rendition>" enters the queued set, which the worker's ack leaves, so a
 * pair is never queued twice while it waits.
 *
 * KEYS: the reprocess stream, the queued set, stats. ARGV: the rendition, then originals.
 * Returns the originals queued by this call; counts reprocess_queued. */
#ifndef PIXFLOW_REQUEUE_LUA_H
#define PIXFLOW_REQUEUE_LUA_H

#include "names.h"

#define REQUEUE_LUA                                                                                \
    "local out = {}\n"                                                                             \
    "for i = 2, #ARGV do\n"                                                                        \
    "  if redis.call('SADD', KEYS[2], ARGV[i] .. '/' .. ARGV[1]) == 1 then\n"                      \
    "    redis.call('XADD', KEYS[1], '*', '" FIELD_ORIGINAL "', ARGV[i], '" FIELD_RENDITION        \
    "', ARGV[1])\n"                                                                                \
    "    out[#out + 1] = ARGV[i]\n"                                                                \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "if #out > 0 then redis.call('HINCRBY', KEYS[3], '" C_REPROCESS_QUEUED "', #out) end\n"        \
    "return out\n"

#endif
