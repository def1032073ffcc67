/* clock.h -- the monotonic clock in milliseconds, for timeouts and pacing on one machine. */
#ifndef PIXFLOW_CLOCK_H
#define PIXFLOW_CLOCK_H

#include <time.h>

static inline double clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Whole milliseconds from t (taken with CLOCK_MONOTONIC) to now. */
static inline long clock_ms_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

#endif
