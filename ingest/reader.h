/* reader.h -- lines out of a file descriptor, whatever their length or bytes.
 *
 * One big buffer, one read() per buffer-full, lines handed out as pointers into it: no per-line
 * syscall and no per-line copy. A line longer than `keep` bytes is cut to its first `keep` bytes
 * and the rest is counted, not stored, so a 1 GB line costs no more memory than a short one. */
#ifndef PIXFLOW_READER_H
#define PIXFLOW_READER_H

#include <stddef.h>

struct reader_line {
    const char *data;     /* valid until the next reader call; may hold NUL bytes */
    size_t len;           /* bytes in data, without the '\n': min(full_len, keep) */
    size_t full_len;      /* the line's real length: more than len when it was cut */
    unsigned long number; /* 1-based line number in the input */
};

enum reader_status {
    READER_ERROR = -1,
    READER_EOF = 0, /* nothing more for now (in hold mode, more may come later) */
    READER_LINE = 1,
    READER_INTR = 2, /* read() was interrupted by a signal: check why, then call again */
};

struct reader;

/* keep must be smaller than bufsize (the kept part of a long line lives in the buffer). */
struct reader *reader_new(size_t bufsize, size_t keep, char *err, size_t errlen);
void reader_free(struct reader *r);

/* Start over on `fd` (not owned) from line 1. In hold mode a last line without '\n' is held back
 * at end of file, because a writer may still be appending to it (tail -F); otherwise it is
 * returned as a line. */
void reader_attach(struct reader *r, int fd, int hold);

int reader_next(struct reader *r, struct reader_line *line, char *err, size_t errlen);

/* Hold mode: hand out the held-back partial line, if any (the file was rotated away and will
 * not grow any more). Returns 1 with *line set, 0 when there was none. */
int reader_finish(struct reader *r, struct reader_line *line);

/* Bytes read from the fd since reader_attach: a file smaller than this was truncated. */
unsigned long long reader_offset(const struct reader *r);

/* The last line number handed out. */
unsigned long reader_number(const struct reader *r);

#endif
