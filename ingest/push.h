/* push.h -- batches into Redis: membership in <prefix>seen, XADD to <prefix>urls, counters.
 *
 * A batch is asked about (SMISMEMBER), then its new URLs are XADDed (with the AOF on, in one
 * MULTI/EXEC, so a Redis with `appendfsync always` syncs once per batch), then it is counted
 * (one MULTI/EXEC of HINCRBYs); several rounds are kept on the wire, so Redis always has work
 * queued while ingest reads replies and parses more lines. A batch is acknowledged when it is
 * counted: push_acked() names the last line of the input fully accounted for, and the counters hold
 * exactly the acknowledged lines. Failures (connection lost, timeout, -OOM, -READONLY,
 * -LOADING...) are retried a bounded number of times with exponential backoff, resending only
 * the commands without a successful reply; then push gives up with a message.
 *
 * What may be in the stream without being acknowledged is bounded: at most push_window() lines
 * after the mark. A rerun from the mark sends those again, and a resent XADD whose first copy
 * did land leaves the URL twice in the stream, which the consumer's SADD dedup (SPEC §5.1)
 * makes harmless.
 *
 * With wait_replicas, a batch is acknowledged only once that many replicas hold it (WAIT), and
 * after a failover the new primary is asked whether it holds the batch not yet confirmed: it is
 * sent again when it does not (push.c's top comment). */
#ifndef PIXFLOW_PUSH_H
#define PIXFLOW_PUSH_H

#include <signal.h>
#include <stddef.h>

#include "batch.h"
#include "settings.h"

struct push_options {
    const struct redis_target *redis;
    const char *prefix;
    const char *group;           /* whose lag --max-backlog watches */
    long timeout_ms;             /* per Redis command */
    int retries;                 /* attempts after the first, per round */
    long max_backlog;            /* 0: never wait */
    size_t batch_size;           /* lines a batch takes before it is sent */
    long wait_replicas;          /* a batch is queued once this many replicas have it (WAIT) */
    volatile sig_atomic_t *stop; /* when set, back-pressure waits end with PUSH_STOPPED */
};

enum { PUSH_FAILED = -1, PUSH_OK = 0, PUSH_STOPPED = 1 };

struct push_mark {
    char source[4096]; /* empty until a batch is acknowledged */
    unsigned long line;
};

struct push;

/* Connects (with the same retries); NULL with err set. */
struct push *push_new(const struct push_options *o, char *err, size_t errlen);
void push_free(struct push *p);

/* The batch to fill next; hand it over with push_submit when it is full or its source ends. */
struct batch *push_batch(struct push *p);
int push_batch_full(const struct push *p);

/* Send the filled batch; may first wait for the previous round's replies. */
int push_submit(struct push *p, char *err, size_t errlen);
/* Submit what is filled and wait until everything is acknowledged. */
int push_flush(struct push *p, char *err, size_t errlen);

/* Everything is acknowledged and the run is over: drop this run's key (best effort). */
void push_end(struct push *p);

const struct push_mark *push_acked(const struct push *p);
/* Lines after the mark that may already be in the stream (batches XADDed, not yet counted). */
unsigned long push_window(const struct push *p);
void push_set_acked(struct push *p, const char *source, unsigned long line);
const struct batch_counts *push_totals(const struct push *p);
int push_has_smismember(const struct push *p);
int push_has_multi(const struct push *p); /* XADDs go in MULTI/EXEC (the AOF is on) */
/* host:port of the connection (with sentinels, of the primary they named last). */
const char *push_addr(const struct push *p);

#endif
