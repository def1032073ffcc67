/* resp.c -- RESP2 command formatting without a malloc per command. */
#include "resp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void resp_init(struct resp *b)
{
    memset(b, 0, sizeof(*b));
}

void resp_free(struct resp *b)
{
    free(b->data);
    resp_init(b);
}

void resp_clear(struct resp *b)
{
    b->len = 0;
    b->failed = 0;
}

static int resp_reserve(struct resp *b, size_t more)
{
    if (b->failed)
        return -1;
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

/* "<mark><digits>\r\n" */
static void resp_header(struct resp *b, char mark, size_t n)
{
    char tmp[24];
    int k = (int)sizeof(tmp);
    do {
        tmp[--k] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    size_t digits = sizeof(tmp) - (size_t)k;
    if (resp_reserve(b, digits + 3) < 0)
        return;
    b->data[b->len++] = mark;
    memcpy(b->data + b->len, tmp + k, digits);
    b->len += digits;
    b->data[b->len++] = '\r';
    b->data[b->len++] = '\n';
}

void resp_begin(struct resp *b, size_t argc)
{
    resp_header(b, '*', argc);
}

void resp_arg(struct resp *b, const char *data, size_t len)
{
    resp_header(b, '$', len);
    if (resp_reserve(b, len + 2) < 0)
        return;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len++] = '\r';
    b->data[b->len++] = '\n';
}

void resp_arg_str(struct resp *b, const char *s)
{
    resp_arg(b, s, strlen(s));
}

void resp_arg_ulong(struct resp *b, unsigned long v)
{
    char tmp[24];
    int k = (int)sizeof(tmp);
    do {
        tmp[--k] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    resp_arg(b, tmp + k, sizeof(tmp) - (size_t)k);
}

void resp_arg_long(struct resp *b, long v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%ld", v);
    resp_arg(b, tmp, (size_t)n);
}
