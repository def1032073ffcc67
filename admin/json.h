/* json.h -- a small streaming JSON writer for the --json outputs: commas, nesting and escaping
 * handled in one place, output valid whatever bytes the stored strings hold. */
#ifndef PIXFLOW_JSON_H
#define PIXFLOW_JSON_H

#include <stddef.h>
#include <stdio.h>

#define JSON_DEPTH_MAX 32

struct json {
    FILE *out;
    int depth;
    unsigned char count[JSON_DEPTH_MAX]; /* values written at each level (capped at 1) */
    char close[JSON_DEPTH_MAX];          /* the bracket that ends each open level */
    int after_key;
};

void json_init(struct json *j, FILE *out);
void json_object(struct json *j); /* { */
void json_array(struct json *j);  /* [ */
void json_end(struct json *j);    /* } or ], whichever is open; a newline after a top-level one */
void json_key(struct json *j, const char *key);
/* Strings: invalid UTF-8 bytes become U+FFFD, control characters \uXXXX escapes. */
void json_str(struct json *j, const char *s);
void json_strn(struct json *j, const char *s, size_t len);
void json_int(struct json *j, long long v);
void json_double(struct json *j, double v); /* NaN and infinities as null */
void json_bool(struct json *j, int v);
void json_null(struct json *j);
/* Writes raw text as one value (already valid JSON, e.g. libbson's extended JSON). */
void json_raw(struct json *j, const char *text);

/* Shorthands for "key": value inside an object. */
void json_kv_str(struct json *j, const char *key, const char *s);
void json_kv_int(struct json *j, const char *key, long long v);

#endif
