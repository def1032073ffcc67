/* replay.c -- the dead-letter replay script (replay.h). */
#include "replay.h"

#include <ctype.h>
#include <string.h>

#include "names.h"
#include "rconn.h"
#include "url.h"

const char replay_lua[] =
    "local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])\n"
    "if #e == 0 then return false end\n"
    "local f, args, url = e[1][2], {}, nil\n"
    "for i = 1, #f, 2 do\n"
    "  local k = f[i]\n"
    "  if k == '" FIELD_URL "' then url = f[i + 1] end\n"
    "  if k == '" FIELD_URL "' or k == '" FIELD_SOURCE "' or k == '" FIELD_LINE "' then\n"
    "    args[#args + 1] = k\n"
    "    args[#args + 1] = f[i + 1]\n"
    "  end\n"
    "end\n"
    "if not url then return '' end\n"
    "if ARGV[2] ~= '' then redis.call('SREM', KEYS[2], ARGV[2]) end\n"
    "args[#args + 1] = '" FIELD_REPLAY_OF "'\n"
    "args[#args + 1] = ARGV[1]\n"
    "local id = redis.call('XADD', KEYS[3], '*', unpack(args))\n"
    "redis.call('XDEL', KEYS[1], ARGV[1])\n"
    "redis.call('HINCRBY', KEYS[4], '" C_REPLAYED "', 1)\n"
    "return id\n";

/* The letter's URL normalized as the worker did when it entered <prefix>seen, into u. Its host
 * is taken from the letter itself: the worker accepted it under the workers' allowed hosts,
 * which this admin's PIXFLOW_ALLOWED_HOSTS need not repeat (a host refused here would leave the
 * URL in the dedup set and the replay dropped as a duplicate). "" when it does not parse. */
static const char *replay_norm(const redisReply *url, struct url *u)
{
    struct url_hosts own = {.count = 1};
    if (url == NULL || url->type != REDIS_REPLY_STRING)
        return "";
    const char *p = memchr(url->str, ':', url->len);
    if (p == NULL || (size_t)(url->str + url->len - p) < 3 || p[1] != '/' || p[2] != '/')
        return "";
    p += 3;
    size_t n = 0, rest = (size_t)(url->str + url->len - p);
    while (n < rest && strchr("/:?#", p[n]) == NULL)
        n++;
    if (n == 0 || n > URL_HOST_MAX)
        return "";
    for (size_t i = 0; i < n; i++)
        own.name[0][i] = (char)tolower((unsigned char)p[i]);
    own.name[0][n] = '\0';
    return url_parse(url->str, url->len, &own, u) == URL_OK ? u->norm : "";
}

redisReply *replay_run(redisContext *c, const char *const keys[4], const char *id,
                       const redisReply *url, char *err, size_t errlen)
{
    static _Thread_local struct url u; /* 2 KiB: not on the stack of every call */
    const char *norm = replay_norm(url, &u);
    const char *argv[] = {"EVAL", replay_lua, "4", keys[0], keys[1], keys[2], keys[3], id, norm};
    return rconn_command(c, 9, argv, NULL, err, errlen);
}
