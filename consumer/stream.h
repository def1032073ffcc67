/* stream.h -- the worker's side of the Redis protocol (SPEC §3, §5): the consumer group, reads,
 * reclaims, dedup, atomic acks with their counters, dead letters, trimming, heartbeats.
 *
 * Everything goes through two self-healing links: one only for the blocking XREADGROUP, one for
 * every other command, so an ack never waits behind a BLOCK. */
#ifndef PIXFLOW_STREAM_H
#define PIXFLOW_STREAM_H

#include <event2/event.h>

#include "counters.h"
#include "settings.h"

#define STREAM_ID_MAX 48

struct stream;

/* One finished entry, as it goes into the ack batch. Its counters (the outcome's and the events
 * of its life: bytes, retries, transforms, each with its delta) are added and its dead letter
 * written only if this worker's XACK removes the entry from the pending list, in the same
 * script: so an entry is never counted twice, whatever crashed when, and a batch whose reply was
 * lost can be given again. */
#define OUTCOME_FIELDS_MAX 20
struct outcome {
    char id[STREAM_ID_MAX];
    const struct counters *counters;
    int nfields; /* dead-letter fields and values, 0 when not dead-lettered */
    const char *fields[OUTCOME_FIELDS_MAX];
    size_t lens[OUTCOME_FIELDS_MAX];
    const char *release; /* removed from the stream's release set with the ack; NULL: none */
};

/* How an entry came. */
struct stream_delivery {
    int redelivered;      /* not a first delivery (own pending list or reclaimed) */
    long long deliveries; /* how many times Redis has delivered it */
    int storing;          /* an earlier delivery began to store it (stream_mark): it may have
                             written to MongoDB; 0 for a first delivery */
};

struct stream_hooks {
    /* A delivered entry. `fields` is the flat field/value array of the stream entry (hiredis
     * replies, valid during the call). */
    void (*entry)(void *arg, const char *id, void *const *fields, size_t nfields,
                  const struct stream_delivery *d);
    /* Dedup verdict for stream_accept: 1 accepted (first time this URL is seen), 0 duplicate
     * (already acked and counted by the script), -1 unknown (Redis failed: treat as redelivery). */
    void (*accepted)(void *arg, void *token, int verdict);
    /* stream_mark's answer: 1 recorded, 0 not (Redis failed or the link is down). */
    void (*marked)(void *arg, void *token, int ok);
    /* The batch given to stream_flush is durable (ok=1) or must be given again (ok=0). */
    void (*flushed)(void *arg, int ok, long long acked);
    /* The command link went up (1) or down (0). */
    void (*link)(void *arg, int up);
    /* Result of stream_group_info: the group's lag (-1 when Redis cannot tell) and pending. */
    void (*group)(void *arg, long long lag, long long pending);
    /* stream_lease found this id no longer pending under our name (another worker reclaimed it,
     * someone acked it, or Redis lost it): our copy of the work is pointless. */
    void (*lost)(void *arg, const char *id);
};

struct stream_options {
    long block_ms;        /* XREADGROUP BLOCK */
    long reclaim_idle_ms; /* XAUTOCLAIM min-idle: well above the lease period */
    long timeout_ms;      /* a command without reply for that long: reconnect */
    /* Key suffixes (names.h); NULL: the input stream's (KEY_STREAM, KEY_STORING). Another
     * stream read by the same group machinery (KEY_REPROCESS) names its own, and the set its
     * acks release members of (outcome.release). */
    const char *stream_key, *storing_key, *release_key;
};

struct stream *stream_new(struct event_base *base, const struct settings *s,
                          const struct stream_options *o, const struct stream_hooks *hooks,
                          void *arg);
/* Ready to read: links up and the group exists. */
int stream_ready(const struct stream *st);
/* Ask for at most `slots` entries unless a read is already out. Own pending entries first
 * (after a restart under the same consumer name), then new ones with BLOCK. */
void stream_read(struct stream *st, int slots);
/* XAUTOCLAIM entries idle longer than reclaim_idle_ms from any consumer (at most `slots`),
 * following the cursor across calls; they arrive through hooks->entry as redelivered. */
void stream_reclaim(struct stream *st, int slots);
/* SADD the normalized URL; a duplicate is acked and counted atomically. -1: link down. */
int stream_accept(struct stream *st, const char *id, const char *url, void *token);
/* Record in the `storing` hash, before the entry's first MongoDB write, that its store began
 * (FINISH clears it with the ack): a later delivery then knows that this one may have left an
 * image behind. The answer comes through hooks->marked. -1 when it cannot be sent. */
int stream_mark(struct stream *st, const char *id, void *token);
/* One script: XACK each outcome (+ its counters and dead letter when the ack was ours). The
 * caller keeps `out` until hooks->flushed. */
int stream_flush(struct stream *st, const struct outcome *const *out, int n);
/* The lease: resets the idle time of the ids we hold (XCLAIM ... JUSTID, which leaves the
 * delivery count alone) when they are still pending under our name, so XAUTOCLAIM only takes the
 * entries of a worker that stopped beating; the others go to hooks->lost. The ids are copied. */
void stream_lease(struct stream *st, const char *const *ids, int n);
/* At a stop: the ids still pending under our name get an idle time past any --reclaim-idle (their
 * delivery count left alone), so the next XAUTOCLAIM of any worker takes them over at once. */
void stream_hand_back(struct stream *st, const char *const *ids, int n);
/* Replies of stream_hand_back still to come: the process must not end before them. */
int stream_handing_back(const struct stream *st);
int stream_flushing(const struct stream *st);
/* XTRIM MINID below the oldest entry any group still needs. */
void stream_trim(struct stream *st);
void stream_group_info(struct stream *st);
void stream_heartbeat(struct stream *st, int in_flight, long long processed, long ttl_s);
void stream_free(struct stream *st);

#endif
