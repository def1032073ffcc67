/* counters.h -- named event counters gathered on the loop thread between two flushes. */
#ifndef PIXFLOW_COUNTERS_H
#define PIXFLOW_COUNTERS_H

#include <stddef.h>

/* Room callers use to build a name; the table itself stores names of any length. */
#define COUNTER_NAME_MAX 64
/* Distinct names one table holds; adds of a new name past it are dropped (and counted). */
#define COUNTERS_MAX 4096

struct counters;

struct counters *counters_new(void);
/* 0, or -1 when the name is new and could not be added (table full, out of memory). */
int counters_add(struct counters *c, const char *name, long long delta);
int counters_count(const struct counters *c);
/* The i-th name and value, for building a command. */
const char *counters_name(const struct counters *c, int i);
long long counters_value(const struct counters *c, int i);
/* Moves every counter of `from` into `to` (summing), leaving `from` empty. */
/* Adds refused because the table was full, since it was made. */
long long counters_dropped(const struct counters *c);
void counters_merge(struct counters *to, struct counters *from);
void counters_clear(struct counters *c);
void counters_free(struct counters *c);

#endif
