/* pool.h -- a fixed set of threads for work that may block (decode, encode, MongoDB), with
 * completions handed back to the event loop thread. */
#ifndef PIXFLOW_POOL_H
#define PIXFLOW_POOL_H

#include <event2/event.h>

struct pool;

/* work runs on a pool thread; done runs afterwards on the loop thread, with the same arg. */
typedef void pool_fn(void *arg);

struct pool *pool_new(struct event_base *base, int threads, char *err, size_t errlen);
void pool_submit(struct pool *p, pool_fn *work, pool_fn *done, void *arg);
/* The same, ahead of every task not yet started: for work that finishes what others began. */
void pool_submit_first(struct pool *p, pool_fn *work, pool_fn *done, void *arg);
int pool_busy(const struct pool *p); /* submitted and not yet done */
int pool_threads(const struct pool *p);
/* Stops taking tasks: those not yet started are dropped (their `done` still runs, from
 * pool_free, without their `work`: an owner must tell by its own state). Waits at most wait_ms
 * for the threads to finish the task each is running, and returns how many still run one. A
 * thread can be stuck for good (a decode that never ends, a server that never answers): the
 * caller then must not pool_free nor free anything those tasks use, and ends the process. */
int pool_stop(struct pool *p, long wait_ms);
/* pool_stop, then waits for every thread; completions not yet delivered to the loop are
 * delivered from here (on the calling thread, which must be the loop thread). */
void pool_free(struct pool *p);

#endif
