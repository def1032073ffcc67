/* json.c -- streaming JSON: each value knows whether a comma goes before it. */
#include "json.h"

#include <math.h>
#include <string.h>

void json_init(struct json *j, FILE *out)
{
    j->out = out;
    j->depth = 0;
    j->count[0] = 0;
    j->after_key = 0;
}

/* Before any value: the comma when it is not the first of its array or object. */
static void json_value(struct json *j)
{
    if (j->after_key) {
        j->after_key = 0;
        return;
    }
    if (j->depth > 0 && j->count[j->depth])
        fputc(',', j->out);
    j->count[j->depth] = 1;
}

static void json_open(struct json *j, char open, char close)
{
    json_value(j);
    fputc(open, j->out);
    if (j->depth + 1 < JSON_DEPTH_MAX) {
        j->depth++;
        j->count[j->depth] = 0;
        j->close[j->depth] = close;
    }
}

void json_object(struct json *j)
{
    json_open(j, '{', '}');
}

void json_array(struct json *j)
{
    json_open(j, '[', ']');
}

void json_end(struct json *j)
{
    if (j->depth == 0)
        return;
    fputc(j->close[j->depth], j->out);
    j->depth--;
    if (j->depth == 0) { /* one top-level value per line, visible at once (--watch) */
        fputc('\n', j->out);
        fflush(j->out);
    }
}

void json_key(struct json *j, const char *key)
{
    json_str(j, key);
    fputc(':', j->out);
    j->after_key = 1;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if it is not one. */
static size_t json_utf8(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned cp;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2, cp = s[0] & 0x1f;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3, cp = s[0] & 0x0f;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4, cp = s[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    /* Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8. */
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

void json_strn(struct json *j, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    json_value(j);
    fputc('"', j->out);
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        size_t n = json_utf8(p + i, len - i);
        if (n == 0) {
            fputs("\\ufffd", j->out);
            i++;
            continue;
        }
        if (n > 1) {
            fwrite(p + i, 1, n, j->out);
        } else if (c == '"' || c == '\\') {
            fputc('\\', j->out);
            fputc(c, j->out);
        } else if (c == '\n') {
            fputs("\\n", j->out);
        } else if (c == '\t') {
            fputs("\\t", j->out);
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(j->out, "\\u%04x", c);
        } else {
            fputc(c, j->out);
        }
        i += n;
    }
    fputc('"', j->out);
}

void json_str(struct json *j, const char *s)
{
    if (s == NULL)
        json_null(j);
    else
        json_strn(j, s, strlen(s));
}

void json_int(struct json *j, long long v)
{
    json_value(j);
    fprintf(j->out, "%lld", v);
}

void json_double(struct json *j, double v)
{
    if (!isfinite(v)) {
        json_null(j);
        return;
    }
    json_value(j);
    fprintf(j->out, "%.3f", v);
}

void json_bool(struct json *j, int v)
{
    json_value(j);
    fputs(v ? "true" : "false", j->out);
}

void json_null(struct json *j)
{
    json_value(j);
    fputs("null", j->out);
}

void json_raw(struct json *j, const char *text)
{
    json_value(j);
    fputs(text, j->out);
}

void json_kv_str(struct json *j, const char *key, const char *s)
{
    json_key(j, key);
    json_str(j, s);
}

void json_kv_int(struct json *j, const char *key, long long v)
{
    json_key(j, key);
    json_int(j, v);
}
