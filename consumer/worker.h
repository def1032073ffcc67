/* worker.h -- one consumer-group worker: the event loop that moves entries from the stream
 * through download, the CPU stage and the store, to an ack. */
#ifndef PIXFLOW_WORKER_H
#define PIXFLOW_WORKER_H

#include "fetch.h"
#include "process.h"
#include "settings.h"

struct worker_options {
    long max_inflight;      /* entries worked on at once (those waiting for a host aside) */
    long threads;           /* pool threads for decode/transform/encode/store */
    long max_attempts;      /* downloads per entry, and deliveries before it is a poison pill */
    long entry_deadline_ms; /* no retry starts after an entry is this old */
    long reclaim_idle_ms;   /* XAUTOCLAIM min-idle; leases renew every quarter of it */
    long reclaim_every_ms;
    long drain_timeout_ms;  /* on SIGTERM: how long in-flight work may take to finish */
    long exit_when_idle_ms; /* 0: run forever */
    long block_ms, flush_ms, heartbeat_ms, trim_every_ms, redis_timeout_ms;
    long retry_base_ms, retry_max_ms;
    struct fetch_limits fetch;
    struct process_limits process;
    const char *http_addr; /* HOST:PORT for /healthz, /readyz, /metrics; NULL or "": none */
};

/* Runs until stopped (signal, or idle with exit_when_idle_ms); returns the exit status: 0 after
 * a stop, whatever was left pending, 1 when it cannot start. When a pool thread is still stuck
 * in its task after the stop deadline (a decode that never ends, a server that never answers)
 * nothing it uses can be freed: the process ends from here, _exit(0). */
int worker_run(const struct settings *s, const struct worker_options *o);

#endif
