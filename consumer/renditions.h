/* renditions.h -- the named renditions a worker knows besides `default` (SPEC §3, §6): followed
 * from the Redis hash `renditions` (name -> chain), each chain loaded on the pool like SIGHUP's
 * reload, so a change applies to the next pictures without a restart.
 *
 * A set is a generation, reference-counted like a chain generation (transforms.h): an entry
 * keeps the set it began its CPU stage with. A rendition whose chain cannot be loaded here (a
 * plugin this machine lacks) is kept in the set with its error and no chain: the worker leaves
 * its work to a worker that can, says so in its log, its heartbeat (HB_RENDITIONS_FAILED) and
 * /readyz, and loads it again every so often (a plugin dropped in later). Loop thread only. */
#ifndef PIXFLOW_RENDITIONS_H
#define PIXFLOW_RENDITIONS_H

#include <event2/event.h>

#include "loader.h"
#include "pool.h"
#include "settings.h"
#include "transforms.h"

struct rendition {
    char name[RENDITION_NAME_MAX + 1];
    char *spec;            /* the chain as the hash gives it */
    struct transforms *xf; /* NULL: it cannot be loaded here (error says why) */
    char error[256];
};

struct renditions_set {
    struct rendition *r;
    int n;
    int refs;
};

struct renditions;

/* Polls the hash every poll_ms on its own Redis link; heartbeat_key is this worker's heartbeat
 * hash (full key), which gets HB_RENDITIONS and HB_RENDITIONS_FAILED while it exists. */
struct renditions *renditions_new(struct event_base *base, const struct settings *s,
                                  struct pool *pool, loader_counter_fn counter, void *arg,
                                  long poll_ms);
void renditions_free(struct renditions *rs);

/* 1 once the hash has been read (and its chains loaded): a name missing from the set now is
 * one the hash does not have, not one still loading. */
int renditions_loaded(const struct renditions *rs);

/* For a name the current set lacks, which may be newer than the set (added to the hash since
 * the last poll): the number of a read of the hash that begins now or later. It is sent at once
 * when none is under way, else right after the one under way (which may have begun before the
 * question). renditions_fresh says when that read's set is current: a name it lacks then was
 * not in the hash when the caller asked. */
unsigned long renditions_ask(struct renditions *rs);
int renditions_fresh(const struct renditions *rs, unsigned long seq);

/* A new URL's original is kept but `set` has renditions this worker cannot make: each is queued
 * into the reprocess stream (the script `pixflow reprocess` runs), for a worker that can. Sent
 * and not waited for: a pair lost with Redis is what `pixflow reprocess NAME` finds missing. */
void renditions_queue_missing(struct renditions *rs, const struct renditions_set *set,
                              const char *original);

/* SIGHUP: every chain loaded again from the plugin folder, at once. */
void renditions_reload(struct renditions *rs);

/* The current set (never NULL; empty until the first load), with a reference for the caller. */
struct renditions_set *renditions_current(struct renditions *rs);
void renditions_set_unref(struct renditions_set *set);
/* A rendition of the set by name, or NULL. */
const struct rendition *renditions_find(const struct renditions_set *set, const char *name);
/* The renditions this worker cannot load, "name: why; ..." into buf; 0 when there is none. */
int renditions_failed(struct renditions *rs, char *buf, size_t len);

#endif
