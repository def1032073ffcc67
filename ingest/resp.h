/* resp.h -- Redis commands formatted straight into one growing buffer (RESP2 multi-bulk).
 *
 * A round of a thousand XADDs becomes one buffer handed to hiredis in a single call, instead of
 * a thousand redisAppendCommandArgv calls that each allocate, format and copy. */
#ifndef PIXFLOW_RESP_H
#define PIXFLOW_RESP_H

#include <stddef.h>

struct resp {
    char *data;
    size_t len, cap;
    int failed; /* an allocation failed: the content is incomplete */
};

void resp_init(struct resp *b);
void resp_free(struct resp *b);
void resp_clear(struct resp *b);

/* A command is resp_begin(argc) followed by exactly argc resp_arg* calls. */
void resp_begin(struct resp *b, size_t argc);
void resp_arg(struct resp *b, const char *data, size_t len);
void resp_arg_str(struct resp *b, const char *s);
void resp_arg_ulong(struct resp *b, unsigned long v);
void resp_arg_long(struct resp *b, long v);

#endif
