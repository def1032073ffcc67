/* rejects.c -- escaped records of the lines ingest refused, through one buffered stream. */
#include "rejects.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rejects {
    FILE *f;
    char *path;
    int with_source;
};

struct rejects *rejects_new(const char *path, int with_source, char *err, size_t errlen)
{
    struct rejects *r = calloc(1, sizeof(*r));
    if (r == NULL || (r->path = strdup(path)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto err;
    }
    r->f = fopen(path, "w");
    if (r->f == NULL) {
        snprintf(err, errlen, "--rejects: cannot create '%s': %s", path, strerror(errno));
        goto err;
    }
    setvbuf(r->f, NULL, _IOFBF, 1 << 16);
    r->with_source = with_source;
    return r;
err:
    if (r)
        free(r->path);
    free(r);
    return NULL;
}

int rejects_close(struct rejects *r, char *err, size_t errlen)
{
    if (r == NULL)
        return 0;
    int bad = ferror(r->f);
    if (fclose(r->f) != 0)
        bad = 1;
    if (bad)
        snprintf(err, errlen, "--rejects: could not write '%s' completely: %s", r->path,
                 strerror(errno));
    free(r->path);
    free(r);
    return bad ? -1 : 0;
}

static void rejects_escape(FILE *f, const char *data, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)data[i];
        switch (c) {
        case '\\':
            fputs("\\\\", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\0':
            fputs("\\0", f);
            break;
        default:
            if (c >= 0x20 && c < 0x7f) {
                putc(c, f);
            } else {
                char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
                fwrite(esc, 1, 4, f);
            }
        }
    }
}

void rejects_write(struct rejects *r, const char *source, unsigned long line, const char *reason,
                   const char *data, size_t len, size_t full_len)
{
    if (r == NULL)
        return;
    if (r->with_source) {
        rejects_escape(r->f, source, strlen(source));
        putc(':', r->f);
    }
    fprintf(r->f, "%lu\t%s\t", line, reason);
    rejects_escape(r->f, data, len);
    if (full_len > len)
        fprintf(r->f, "...(%zu bytes)", full_len);
    putc('\n', r->f);
}
