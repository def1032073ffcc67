/* feed.c -- the per-line path: validate, reject or dedup, batch; nothing here talks to Redis
 * except through push. Kept free of allocation per line: the URL scratch lives in the feed. */
#include "feed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct feed {
    struct feed_options o;
    struct url u; /* scratch for url_parse (2 KiB: not on the stack of a hot loop) */
};

struct feed *feed_new(const struct feed_options *o, char *err, size_t errlen)
{
    struct feed *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    f->o = *o;
    return f;
}

void feed_free(struct feed *f)
{
    free(f);
}

static int feed_status_of(int push_rc)
{
    return push_rc == PUSH_STOPPED ? FEED_STOPPED : FEED_FAILED;
}

int feed_line(struct feed *f, const char *source, const struct reader_line *line, char *err,
              size_t errlen)
{
    struct push *p = f->o.push;
    struct batch *b = push_batch(p);
    if (b->pulled && b->source != source && strcmp(b->source, source) != 0) {
        int rc = push_submit(p, err, errlen); /* a batch never mixes sources */
        if (rc != PUSH_OK)
            return feed_status_of(rc);
        b = push_batch(p);
    }
    if (b->pulled == 0)
        b->source = source;
    b->pulled++;
    b->last_line = line->number;

    enum url_reason why = line->full_len > line->len
                              ? URL_TOO_LONG
                              : url_parse(line->data, line->len, f->o.hosts, &f->u);
    if (why == URL_EMPTY) {
        b->counts.blank++;
    } else if (why != URL_OK) {
        b->counts.lines++;
        b->counts.invalid++;
        b->counts.invalid_by[why]++;
        rejects_write(f->o.rejects, source, line->number, url_reason_name(why), line->data,
                      line->len, line->full_len);
    } else {
        b->counts.lines++;
        size_t n = strlen(f->u.norm);
        if (f->o.seen && seen_add(f->o.seen, f->u.norm, n)) {
            b->counts.dup_input++;
        } else if (batch_add(b, f->u.norm, n, line->number) < 0) {
            snprintf(err, errlen, "out of memory in a batch");
            return FEED_FAILED;
        }
    }
    if (push_batch_full(p)) {
        int rc = push_submit(p, err, errlen);
        if (rc != PUSH_OK)
            return feed_status_of(rc);
    }
    return FEED_EOF;
}

int feed_run(struct feed *f, struct reader *r, const char *source, unsigned long skip_to, char *err,
             size_t errlen)
{
    struct reader_line line;
    for (;;) {
        if (f->o.stop && *f->o.stop)
            return FEED_STOPPED;
        switch (reader_next(r, &line, err, errlen)) {
        case READER_LINE:
            if (line.number > skip_to) {
                int rc = feed_line(f, source, &line, err, errlen);
                if (rc != FEED_EOF)
                    return rc;
            }
            break;
        case READER_EOF:
            return FEED_EOF;
        case READER_INTR:
            break;
        default:
            return FEED_READ_ERROR;
        }
    }
}
