/* hostcount.h -- requests at once per Host header, their peak, and the most that began within any
 * one second: what a polite client keeps under its limits (SPEC §5.8), seen from the server. */
#ifndef PICSUM_HOSTCOUNT_H
#define PICSUM_HOSTCOUNT_H

#include <event2/buffer.h>
#include <event2/http.h>

struct hostcount;

struct hostcount *hostcount_new(void);
void hostcount_free(struct hostcount *hc);

/* req began (counted under its Host header, port dropped); hostcount_end when its reply is done
 * or its client left. A request past the table's room is not counted. */
void hostcount_begin(struct hostcount *hc, struct evhttp_request *req);
/* A no-op for a request not counted or already ended. */
void hostcount_end(struct hostcount *hc, struct evhttp_request *req);

/* Counts to zero, peaks to what is in flight now. */
void hostcount_reset(struct hostcount *hc);

/* {"HOST": {"requests": n, "in_flight": n, "peak_in_flight": n, "peak_per_second": n,
 * "last_at": unix seconds}, ...} */
void hostcount_json(const struct hostcount *hc, struct evbuffer *out);

#endif
