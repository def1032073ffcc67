/* hostlimits.h -- PIXFLOW_HOST_LIMITS (SPEC §2, §5.8): per-host request rate, burst and requests
 * at once, shared by the whole fleet, in the syntax `HOST:rate=R,burst=B,inflight=N;...` with `*`
 * for any host not named. A key left out keeps its default. */
#ifndef PIXFLOW_HOSTLIMITS_H
#define PIXFLOW_HOSTLIMITS_H

#include <stddef.h>

#include "url.h"

/* The polite default for a public CDN: 20 requests a second (a burst of 20), 16 at once, for the
 * whole fleet. The README states it. */
#define HOST_LIMITS_DEFAULT   "*:rate=20,burst=20,inflight=16"
#define HOST_RATE_DEFAULT     20.0
#define HOST_BURST_DEFAULT    20L
#define HOST_INFLIGHT_DEFAULT 16L
#define HOST_RATE_MAX         100000.0
#define HOST_BURST_MAX        100000L
#define HOST_INFLIGHT_MAX     10000L
#define HOST_LIMITS_MAX       16

struct host_limit {
    char host[URL_HOST_MAX + 1]; /* lowercase; "*" for any other host */
    double rate;                 /* requests a second, > 0 */
    long burst;                  /* requests that may start at once after a quiet spell, >= 1 */
    long inflight;               /* requests at once, >= 1 */
};

struct host_limits {
    int off;               /* "off": no limit at all, for sources one owns (README "Politeness") */
    struct host_limit any; /* "*" */
    int count;
    struct host_limit hosts[HOST_LIMITS_MAX];
};

/* Parse `text` into out (replacing it): entries, or "off" alone. 0, or -1 with one line in err
 * naming what is wrong. */
int host_limits_parse(const char *text, struct host_limits *out, char *err, size_t errlen);

/* The limit of a host (case-insensitive), or the `*` one. */
const struct host_limit *host_limits_for(const struct host_limits *l, const char *host);

#endif
