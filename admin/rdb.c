/* rdb.c -- the shapes of Redis replies the admin commands read. */
#include "rdb.h"

#include "rconn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const redisReply *rdb_field(const redisReply *flat, const char *name)
{
    if (flat == NULL || flat->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < flat->elements; i += 2) {
        const redisReply *k = flat->element[i];
        if ((k->type == REDIS_REPLY_STRING || k->type == REDIS_REPLY_STATUS) &&
            strcmp(k->str, name) == 0)
            return flat->element[i + 1];
    }
    return NULL;
}

int rdb_ll(const redisReply *r, long long *out)
{
    if (r == NULL)
        return -1;
    if (r->type == REDIS_REPLY_INTEGER) {
        *out = r->integer;
        return 0;
    }
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 20 ||
        (r->str[0] != '-' && (r->str[0] < '0' || r->str[0] > '9')))
        return -1; /* strtoll would skip leading blanks and take a '+' */
    char *end;
    errno = 0;
    long long v = strtoll(r->str, &end, 10);
    if (errno != 0 || end != r->str + r->len)
        return -1;
    *out = v;
    return 0;
}

int rdb_id_ms(const char *id, long long *ms)
{
    char *end;
    if (id == NULL || *id < '0' || *id > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(id, &end, 10);
    if (errno != 0 || end == id || (*end != '-' && *end != '\0') || v > (1ULL << 62))
        return -1;
    *ms = (long long)v;
    return 0;
}

int rdb_glob_escape(const char *in, char *out, size_t outlen)
{
    size_t n = 0;
    for (const char *p = in; *p; p++) {
        if (strchr("*?[]\\", *p) != NULL) {
            if (n + 1 >= outlen)
                return -1;
            out[n++] = '\\';
        }
        if (n + 1 >= outlen)
            return -1;
        out[n++] = *p;
    }
    if (n >= outlen)
        return -1;
    out[n] = '\0';
    return 0;
}

int rdb_walk(redisContext *c, const char *key, int reverse, long max, rdb_walk_fn *fn, void *arg,
             char *err, size_t errlen)
{
    char from[64], *to = reverse ? "-" : "+";
    long seen = 0;

    snprintf(from, sizeof(from), "%s", reverse ? "+" : "-");
    for (;;) {
        const char *argv[] = {reverse ? "XREVRANGE" : "XRANGE", key, from, to, "COUNT", "500"};
        redisReply *r = rconn_command(c, 6, argv, NULL, err, errlen);
        if (r == NULL)
            return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
            freeReplyObject(r);
            return 0;
        }
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
                e->element[0]->type != REDIS_REPLY_STRING)
                continue;
            snprintf(from, sizeof(from), "(%s", e->element[0]->str);
            int rc = fn(e, arg, err, errlen);
            if (rc != 0 || (max > 0 && ++seen >= max)) {
                freeReplyObject(r);
                return rc < 0 ? -1 : 0;
            }
        }
        freeReplyObject(r);
    }
}
