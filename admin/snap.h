/* snap.h -- one snapshot of the pipeline as Redis sees it, read once into plain structs: the
 * counters hash, the stream and its group (backlog.h), the pending entries per consumer and the
 * oldest of them, the dead-letter stream's length, the live workers' heartbeats, and each source
 * host's politeness state (SPEC §5.8: its slots taken, concurrency, pause, circuit). `pixflow
 * stats` renders text or JSON from it; nothing here prints. */
#ifndef PIXFLOW_SNAP_H
#define PIXFLOW_SNAP_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "backlog.h"
#include "settings.h"

struct snap_counter {
    char *name;
    long long value;
};

struct snap_consumer { /* a consumer of the group that holds pending entries */
    char *name;
    long long pending;
};

struct snap_worker {                                /* a live heartbeat */
    char *name;                                     /* after <prefix>worker: */
    char *group, *version, *started_at, *last_seen; /* NULL when absent */
    long long in_flight, processed;                 /* -1 when absent */
    long long ttl_s;                                /* of the heartbeat key; -1 unknown */
    long long pending;                              /* from the group's pending summary */
};

struct snap_host { /* a source host as the fleet shares it (<prefix>host:<name>:...) */
    char *name;
    long long in_flight;    /* leases not lapsed: requests at once, fleet-wide */
    long long concurrency;  /* the adaptive cap now */
    long long max_inflight; /* the configured cap (as the last ask sent it) */
    double rate;            /* the configured requests a second */
    long long pause_ms;     /* left of a 429/503 pause; 0 when none */
    int circuit;            /* 0 closed, 1 open, 2 half-open */
    long long open_ms;      /* left of an open circuit's spell */
    long long fails;        /* consecutive failures */
    long long waits;        /* requests that waited for it, ever, fleet-wide */
};

struct snap_oldest { /* the oldest pending entry */
    char *id, *consumer;
    long long age_ms, idle_ms, deliveries;
};

struct snap {
    long long now_ms;              /* Redis' clock */
    struct snap_counter *counters; /* sorted by name */
    size_t ncounters;
    struct backlog group;       /* backlog, pending, has_group, length */
    struct snap_oldest *oldest; /* NULL when nothing is pending */
    struct snap_consumer *consumers;
    size_t nconsumers;
    long long dead;              /* entries in <prefix>dead now */
    struct snap_worker *workers; /* sorted by name */
    size_t nworkers;
    struct snap_host *hosts; /* sorted by name */
    size_t nhosts;
};

/* "closed", "open" or "half-open". */
const char *snap_circuit_name(int circuit);

/* Reads everything in a few round trips. NULL with err set when Redis fails. */
struct snap *snap_take(redisContext *c, const struct settings *st, char *err, size_t errlen);
void snap_free(struct snap *s);

/* A counter's value, 0 when the hash has no such field. */
long long snap_counter(const struct snap *s, const char *name);
/* Per second between two snapshots; NAN without a previous one. */
double snap_rate(const struct snap *s, const struct snap *prev, const char *name);
/* The consumer has a live heartbeat. */
int snap_has_worker(const struct snap *s, const char *name);
/* Milliseconds since a heartbeat time (started_at, last_seen); -1 when absent or unreadable. */
long long snap_ago(const struct snap *s, const char *when);

#endif
