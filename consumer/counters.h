/* counters.h -- named event counters gathered on the loop thread between two flushes. */
#ifndef PIXFLOW_COUNTERS_H
#define PIXFLOW_COUNTERS_H

#include <stddef.h>

#define COUNTER_NAME_MAX 64

struct counters;

struct counters *counters_new(void);
void counters_add(struct counters *c, const char *name, long long delta);
int counters_count(const struct counters *c);
/* The i-th name and value, for building a command. */
const char *counters_name(const struct counters *c, int i);
long long counters_value(const struct counters *c, int i);
/* Moves every counter of `from` into `to` (summing), leaving `from` empty. */
void counters_merge(struct counters *to, struct counters *from);
void counters_clear(struct counters *c);
void counters_free(struct counters *c);

#endif
