/* rejects.h -- the --rejects file: one record per invalid line, "LINE<TAB>REASON<TAB>TEXT".
 *
 * TEXT is the line escaped so that a record is always one line of printable ASCII: backslash,
 * tab, CR and NUL as \\ \t \r \0, any other byte outside 0x20..0x7e as \xHH. A line longer
 * than what ingest keeps ends with "...(N bytes)" giving its real length. When several sources
 * feed one run (many FILEs, --watch), LINE is written SOURCE:LINE. */
#ifndef PIXFLOW_REJECTS_H
#define PIXFLOW_REJECTS_H

#include <stddef.h>

struct rejects;

struct rejects *rejects_new(const char *path, int with_source, char *err, size_t errlen);
/* Closes the file; -1 with err set when some record could not be written. */
int rejects_close(struct rejects *r, char *err, size_t errlen);

void rejects_write(struct rejects *r, const char *source, unsigned long line, const char *reason,
                   const char *data, size_t len, size_t full_len);

#endif
