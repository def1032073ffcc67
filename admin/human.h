/* human.h -- numbers, durations and dates as operators type and read them. */
#ifndef PIXFLOW_HUMAN_H
#define PIXFLOW_HUMAN_H

#include <stddef.h>
#include <stdio.h>

/* "512 B", "1.5 KiB", "20.0 MiB", "3.2 GiB". Returns buf. */
const char *human_bytes(double bytes, char *buf, size_t len);

/* "850ms", "12s", "3m05s", "2h10m", "3d04h"; "-" for a negative duration. Returns buf. */
const char *human_duration(long long ms, char *buf, size_t len);

/* A point in time as --since takes it, in milliseconds since the epoch:
 *   2024-05-01, 2024-05-01T12:30, 2024-05-01T12:30:15 (also with a space for T, and a final Z;
 *   always UTC), or a duration back from now_ms: 30s, 15m, 24h, 7d.
 * 0, or -1 with err. */
int human_since(const char *text, long long now_ms, long long *out_ms, char *err, size_t errlen);

/* Writes at most `width` bytes of s (len bytes) to out with control characters and DEL shown as
 * '?', so a stored URL cannot move the cursor or recolor a terminal; a cut string ends in "...".
 * width 0: no limit. Returns the number of bytes written. */
size_t human_print(FILE *out, const char *s, size_t len, size_t width);

/* A text table whose columns fit their cells, whatever the names in them: rows are added first,
 * then printed with each column as wide as its widest cell, counted in characters (UTF-8), with
 * control characters and invalid bytes shown as '?'. A cell longer than HUMAN_CELL_MAX
 * characters is cut (ending in "..."), so one hostile name cannot push every row off the screen.
 * East Asian wide characters count as one column: such names may still stand out. */
#define HUMAN_CELL_MAX 64

struct human_table;

/* align: one character per column, 'l' (left) or 'r' (right); gap: spaces between columns.
 * NULL when out of memory. */
struct human_table *human_table_new(const char *align, int gap);

/* A row of as many cells as columns (NULL or "": empty), then `tail` (NULL: none), free text
 * printed after the row's last non-empty cell that widens no column (a note). Cells may start
 * with spaces to indent them. -1 when out of memory (remembered: print fails too). */
int human_table_row(struct human_table *t, const char *const *cells, const char *tail);

/* A line printed as it is between the rows (a heading, an empty line); widens no column. */
int human_table_text(struct human_table *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints every row and line; a row ends after its last non-empty cell (no trailing blanks).
 * -1 when a row or line could not be kept (out of memory): what was kept is printed anyway. */
int human_table_print(const struct human_table *t, FILE *out);

void human_table_free(struct human_table *t);

#endif
