/* backlog.c -- a group's backlog read from BACKLOG_LUA's reply (see backlog.h). */
#include "backlog.h"

int backlog_parse(const redisReply *r, struct backlog *b)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 4)
        return -1;
    for (size_t i = 0; i < 4; i++)
        if (r->element[i]->type != REDIS_REPLY_INTEGER)
            return -1;
    b->backlog = r->element[0]->integer;
    b->pending = r->element[1]->integer;
    b->has_group = r->element[2]->integer != 0;
    b->length = r->element[3]->integer;
    return 0;
}

long long backlog_bound(const struct backlog *b)
{
    return b->backlog >= 0 ? b->backlog : b->length;
}
