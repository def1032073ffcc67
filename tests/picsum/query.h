/* query.h -- walk a raw URL query string one key=value token at a time. */
#ifndef PICSUM_QUERY_H
#define PICSUM_QUERY_H

#include <stddef.h>

#define QUERY_KEY_MAX   64
#define QUERY_VALUE_MAX 2048

struct query_param {
    const char *raw; /* the token exactly as it appears in the query, not terminated */
    size_t rawlen;
    char key[QUERY_KEY_MAX];     /* decoded */
    char value[QUERY_VALUE_MAX]; /* decoded, "" when the token has no '=' */
    int has_value;
};

/* Fill p with the next non-empty token at *cursor (NULL or "" means no query) and advance.
 * Returns 1 for a token, 0 at the end, -1 when a key or value does not fit or decodes to NUL. */
int query_next(const char **cursor, struct query_param *p);

/* Percent- and '+'-decode len bytes of s into out; -1 if it does not fit or decodes to NUL. */
int query_decode(const char *s, size_t len, char *out, size_t outlen);

/* Append one raw token to a query being built in buf ("a=1" then "&b=2"); -1 if it does not fit. */
int query_append(char *buf, size_t buflen, const char *raw, size_t rawlen);

#endif
