/* fault.h -- the faults the image server can inject, from URL parameters or by global rate. */
#ifndef PICSUM_FAULT_H
#define PICSUM_FAULT_H

#include <stddef.h>
#include <stdint.h>

#include "query.h"

enum fault_kind {
    FAULT_NONE = 0,
    /* first hop (the /W/H request) */
    FAULT_500,
    FAULT_502,
    FAULT_503,
    FAULT_429,
    FAULT_404,
    FAULT_LOOP,
    FAULT_REDIRECT,
    /* picture response (carried through the redirect as fault=KIND) */
    FAULT_TRUNCATE,
    FAULT_SLOW,
    FAULT_GARBAGE,
    FAULT_BOMB,
    FAULT_NOTIMAGE,
    FAULT_KIND_MAX
};

#define FAULT_DEFAULT_RETRY_AFTER 1
#define FAULT_DEFAULT_DELAY_MS    1000
#define FAULT_DELAY_MAX_MS        60000
#define FAULT_BYTES_PER_S_MAX     (100L * 1000 * 1000)
#define FAULT_TIMES_UNLIMITED     (-1L)

struct fault {
    enum fault_kind kind;
    int retry_after;  /* 429: seconds in Retry-After */
    int delay_ms;     /* slow: how long the body takes */
    long bytes_per_s; /* slow: instead of delay_ms, this many body bytes a second, however long
                         that takes; 0 when not asked for */
    long times;       /* only the first `times` requests of the URL fail; FAULT_TIMES_UNLIMITED */
    int hop;          /* loop: how many hops already taken */
    char to[QUERY_VALUE_MAX]; /* redirect: target URL */
};

/* Global faults: each kind fires independently with its rate (0 = never). */
struct fault_rates {
    double rate[FAULT_KIND_MAX];
    int retry_after;
    int delay_ms;
};

const char *fault_name(enum fault_kind k);
int fault_kind_parse(const char *name, enum fault_kind *out);

/* Whether the fault shapes the picture response rather than the first hop. */
int fault_on_body(enum fault_kind k);

/* Pull the fault parameters (fault, retry_after, delay_ms, bytes_per_s, times, to, hop) out of a
 * raw query into f, and append every other token, raw, to kept. delay_ms and bytes_per_s exclude
 * each other. 0, or -1 with a message in err. */
int fault_parse_query(const char *query, struct fault *f, char *kept, size_t keptlen, char *err,
                      size_t errlen);

/* Write the query parameters that make the picture hop apply f ("fault=slow&delay_ms=300",
 * "fault=slow&bytes_per_s=1").
 * Writes "" when f is not a body fault. 0, or -1 if out is too small. */
int fault_carry(const struct fault *f, char *out, size_t outlen);

/* Parse a rate: a number in 0..1. 0 or -1. */
int fault_rate_parse(const char *s, double *rate);

/* Parse "KIND=RATE" (RATE in 0..1). 0, or -1 with a message in err. */
int fault_parse_rate(const char *arg, enum fault_kind *kind, double *rate, char *err,
                     size_t errlen);

void fault_rates_init(struct fault_rates *r);

/* Draw the global fault for one request at the first hop (body = 0) or the picture (body = 1). */
enum fault_kind fault_draw(const struct fault_rates *r, int body, uint64_t *rng);

#endif
