/* slow.h -- replies whose body trickles out on timers (the "slow" fault). */
#ifndef PICSUM_SLOW_H
#define PICSUM_SLOW_H

#include <stddef.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

struct slow_set;

struct slow_set *slow_new(struct event_base *base);

/* End every reply still trickling, then free the set. Call before evhttp_free. */
void slow_free(struct slow_set *set);

/* Send the status line and headers of req now, then body in SLOW_PIECES pieces, the last one
 * delay_ms from now. Set Content-Length first, or libevent falls back to chunked encoding.
 * Takes body on success (0); -1 leaves body and req to the caller. */
int slow_start(struct slow_set *set, struct evhttp_request *req, int code, const char *reason,
               struct evbuffer *body, int delay_ms);

/* The same, but bytes_per_s bytes of body each second, the first a second from now, until the
 * body is sent or the client leaves: no bound on how long that takes. */
int slow_start_rate(struct slow_set *set, struct evhttp_request *req, int code, const char *reason,
                    struct evbuffer *body, long bytes_per_s);

/* fn(arg, req) when a client leaves before its reply is all sent (noticed at the next piece). */
void slow_on_left(struct slow_set *set, void (*fn)(void *arg, struct evhttp_request *req),
                  void *arg);

/* Replies still trickling (a client that left is noticed at its reply's next tick). */
size_t slow_count(const struct slow_set *set);

#define SLOW_PIECES 20

#endif
