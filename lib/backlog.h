/* backlog.h -- one definition of a consumer group's backlog, for every program that needs it:
 * the worker (/metrics, --exit-when-idle), ingest's --max-backlog and `pixflow stats`.
 *
 * The backlog is the number of entries no worker of the group has read yet. Redis reports it as
 * the group's `lag`, except after some deletions (a trim, XDEL), when it answers nil: the group
 * is then caught up exactly when it has delivered the stream's last id, and otherwise the
 * backlog is unknown (-1; the stream's length is then an upper bound). Before the group exists,
 * its first worker will read from the first entry: the backlog is the stream's length. */
#ifndef PIXFLOW_BACKLOG_H
#define PIXFLOW_BACKLOG_H

#include <hiredis/hiredis.h>

/* A Lua function groups(key): the stream's groups as tables of XINFO GROUPS fields ({} when
 * there is no stream). The head of BACKLOG_LUA and of the worker's trim script. */
#define BACKLOG_GROUPS_LUA                                                                         \
    "local function groups(key)\n"                                                                 \
    "  local r = redis.pcall('XINFO', 'GROUPS', key)\n"                                            \
    "  if type(r) ~= 'table' or r.err then return {} end\n"                                        \
    "  local out = {}\n"                                                                           \
    "  for _, g in ipairs(r) do\n"                                                                 \
    "    local info = {}\n"                                                                        \
    "    for i = 1, #g, 2 do info[g[i]] = g[i + 1] end\n"                                          \
    "    out[#out + 1] = info\n"                                                                   \
    "  end\n"                                                                                      \
    "  return out\n"                                                                               \
    "end\n"

/* EVAL BACKLOG_LUA 1 <stream> <group>: {backlog, pending, group exists (0/1), stream length}. */
#define BACKLOG_LUA                                                                                \
    BACKLOG_GROUPS_LUA                                                                             \
    "local len = redis.call('XLEN', KEYS[1])\n"                                                    \
    "for _, g in ipairs(groups(KEYS[1])) do\n"                                                     \
    "  if g['name'] == ARGV[1] then\n"                                                             \
    "    local lag = g['lag']\n"                                                                   \
    "    if not lag then\n"                                                                        \
    "      lag = -1\n"                                                                             \
    "      local s = redis.call('XINFO', 'STREAM', KEYS[1])\n"                                     \
    "      for i = 1, #s, 2 do\n"                                                                  \
    "        if s[i] == 'last-generated-id' and s[i + 1] == g['last-delivered-id'] then\n"         \
    "          lag = 0\n"                                                                          \
    "        end\n"                                                                                \
    "      end\n"                                                                                  \
    "    end\n"                                                                                    \
    "    return {lag, g['pending'], 1, len}\n"                                                     \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "return {len, 0, 0, len}\n"

struct backlog {
    long long backlog; /* entries not yet read by the group; -1 unknown */
    long long pending; /* read, not yet acked */
    long long length;  /* XLEN */
    int has_group;
};

/* Reads BACKLOG_LUA's reply into *b: 0, or -1 when r is not of its shape (an error reply, say). */
int backlog_parse(const redisReply *r, struct backlog *b);

/* What a producer may count on: the backlog, or the stream's length when it is unknown. */
long long backlog_bound(const struct backlog *b);

#endif
