/* batch.c -- the lines of one pipelined round, with their URLs packed in one arena. */
#include "batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct batch *batch_new(size_t cap, char *err, size_t errlen)
{
    struct batch *b = calloc(1, sizeof(*b));
    if (b == NULL)
        goto err;
    b->entry = calloc(cap, sizeof(*b->entry));
    b->arena_cap = cap * 64; /* a picsum URL is ~35 bytes: rarely regrown */
    b->arena = malloc(b->arena_cap);
    if (b->entry == NULL || b->arena == NULL)
        goto err;
    b->cap = cap;
    return b;
err:
    snprintf(err, errlen, "batch: out of memory for %zu entries", cap);
    batch_free(b);
    return NULL;
}

void batch_free(struct batch *b)
{
    if (b == NULL)
        return;
    free(b->entry);
    free(b->arena);
    free(b);
}

void batch_reset(struct batch *b, const char *source)
{
    b->source = source;
    b->last_line = 0;
    b->pulled = 0;
    b->known = 0;
    b->count = 0;
    b->arena_len = 0;
    memset(&b->counts, 0, sizeof(b->counts));
}

int batch_add(struct batch *b, const char *url, size_t len, unsigned long line)
{
    if (b->count == b->cap) {
        size_t cap = b->cap * 2;
        struct batch_entry *e = realloc(b->entry, cap * sizeof(*e));
        if (e == NULL)
            return -1;
        b->entry = e;
        b->cap = cap;
    }
    if (b->arena_len + len > b->arena_cap) {
        size_t cap = b->arena_cap * 2;
        while (cap < b->arena_len + len)
            cap *= 2;
        char *a = realloc(b->arena, cap);
        if (a == NULL)
            return -1;
        b->arena = a;
        b->arena_cap = cap;
    }
    memcpy(b->arena + b->arena_len, url, len);
    b->entry[b->count] = (struct batch_entry){b->arena_len, len, line, 0};
    b->arena_len += len;
    b->count++;
    return 0;
}

void batch_counts_add(struct batch_counts *to, const struct batch_counts *from)
{
    to->lines += from->lines;
    to->queued += from->queued;
    to->dup_input += from->dup_input;
    to->dup_seen += from->dup_seen;
    to->invalid += from->invalid;
    for (int i = 0; i < URL_REASON_COUNT; i++)
        to->invalid_by[i] += from->invalid_by[i];
    to->blank += from->blank;
}
