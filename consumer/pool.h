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
int pool_busy(const struct pool *p); /* submitted and not yet done */
int pool_threads(const struct pool *p);
/* Waits for the threads to finish what was submitted; completions not yet delivered to the loop
 * are delivered from here (on the calling thread, which must be the loop thread). */
void pool_free(struct pool *p);

#endif
