/* query.c -- raw URL query tokenizer; keeps each token's raw bytes so callers can re-emit the
 * tokens they do not consume exactly as the client sent them. */
#include "query.h"

#include <string.h>

static int query_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int query_decode(const char *s, size_t len, char *out, size_t outlen)
{
    size_t o = 0;

    if (outlen == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (c == '+') {
            c = ' ';
        } else if (c == '%' && i + 2 < len) {
            int hi = query_hexval(s[i + 1]);
            int lo = query_hexval(s[i + 2]);

            if (hi >= 0 && lo >= 0) {
                c = (char)(hi * 16 + lo);
                i += 2;
            }
        }
        if (c == '\0' || o + 1 >= outlen)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

int query_next(const char **cursor, struct query_param *p)
{
    const char *s = *cursor;

    if (s == NULL)
        return 0;
    while (*s == '&')
        s++;
    if (*s == '\0') {
        *cursor = s;
        return 0;
    }

    size_t len = strcspn(s, "&");
    const char *eq = memchr(s, '=', len);
    size_t keylen = eq != NULL ? (size_t)(eq - s) : len;

    p->raw = s;
    p->rawlen = len;
    p->has_value = eq != NULL;
    *cursor = s + len;
    if (query_decode(s, keylen, p->key, sizeof(p->key)) < 0)
        return -1;
    if (eq == NULL) {
        p->value[0] = '\0';
        return 1;
    }
    if (query_decode(eq + 1, len - keylen - 1, p->value, sizeof(p->value)) < 0)
        return -1;
    return 1;
}

int query_append(char *buf, size_t buflen, const char *raw, size_t rawlen)
{
    size_t used = strlen(buf);
    size_t need = used + (used > 0 ? 1 : 0) + rawlen + 1;

    if (need > buflen)
        return -1;
    if (used > 0)
        buf[used++] = '&';
    memcpy(buf + used, raw, rawlen);
    buf[used + rawlen] = '\0';
    return 0;
}
