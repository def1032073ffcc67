/* stats.h -- what the image server counts, and its JSON form for /__control/stats. */
#ifndef PICSUM_STATS_H
#define PICSUM_STATS_H

#include <stddef.h>

#include <event2/buffer.h>

#include "cache.h"
#include "fault.h"
#include "hostcount.h"

struct stats;

/* Per-path and per-status tables hold at most max_keys keys each; paths past that are counted
 * under "(other)". */
struct stats *stats_new(size_t max_keys);
void stats_free(struct stats *st);
void stats_reset(struct stats *st);

/* A request for path arrived (control requests are not counted). */
void stats_request(struct stats *st, const char *path);

/* A reply went out with this status and this injected fault (FAULT_NONE for none). */
void stats_reply(struct stats *st, int code, enum fault_kind fault);

/* {"requests": n, "by_path": {...}, "by_status": {...}, "faults": {...}, "rates": {...},
 *  "cache": {...}, "trickling": n, "hosts": {...}}; trickling: slow replies still sending their
 *  body; hosts (hostcount_json; {} when NULL): requests at once and per second by Host. */
void stats_json(const struct stats *st, const struct fault_rates *rates,
                const struct cache_stats *cache, size_t trickling, const struct hostcount *hosts,
                struct evbuffer *out);

/* {"500": 0.1, ...}: the non-zero rates. */
void stats_json_rates(const struct fault_rates *rates, struct evbuffer *out);

/* s as a JSON string literal, quotes included. */
void stats_json_string(const char *s, struct evbuffer *out);

#endif
