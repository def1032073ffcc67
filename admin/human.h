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

#endif
