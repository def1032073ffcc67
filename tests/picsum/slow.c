/* slow.c -- trickled replies: one persistent timer per reply sends the next piece of its body.
 * A reply owns its evhttp_request until evhttp_send_reply_end: if the client goes away first,
 * libevent detaches the request from the dead connection (it is no longer freed with it) and
 * evhttp_send_reply_end then frees it, so every path ends with that call. */
#include "slow.h"

#include <stdlib.h>

struct slow_reply {
    struct slow_set *set;
    struct evhttp_request *req;
    struct event *timer;
    struct evbuffer *body;
    size_t piece;
    int pieces; /* the last piece takes the rest; 0: pieces go on until the body is empty */
    int sent;   /* pieces sent so far */
    struct slow_reply *prev, *next;
};

struct slow_set {
    struct event_base *base;
    void (*left)(void *arg, struct evhttp_request *req);
    void *left_arg;
    struct slow_reply *head;
    size_t count;
};

struct slow_set *slow_new(struct event_base *base)
{
    struct slow_set *set = calloc(1, sizeof(*set));

    if (set != NULL)
        set->base = base;
    return set;
}

static void slow_finish(struct slow_reply *sr)
{
    struct slow_set *set = sr->set;

    if (sr->prev != NULL)
        sr->prev->next = sr->next;
    else
        set->head = sr->next;
    if (sr->next != NULL)
        sr->next->prev = sr->prev;
    set->count--;
    event_free(sr->timer);
    evbuffer_free(sr->body);
    evhttp_send_reply_end(sr->req);
    free(sr);
}

void slow_free(struct slow_set *set)
{
    if (set == NULL)
        return;
    while (set->head != NULL)
        slow_finish(set->head);
    free(set);
}

void slow_on_left(struct slow_set *set, void (*fn)(void *arg, struct evhttp_request *req),
                  void *arg)
{
    set->left = fn;
    set->left_arg = arg;
}

size_t slow_count(const struct slow_set *set)
{
    return set->count;
}

static void slow_tick(evutil_socket_t fd, short what, void *arg)
{
    struct slow_reply *sr = arg;
    struct evbuffer *piece;
    int last;

    if (evhttp_request_get_connection(sr->req) == NULL) {
        if (sr->set->left != NULL)
            sr->set->left(sr->set->left_arg, sr->req);
        slow_finish(sr); /* the client left */
        return;
    }
    sr->sent++;
    last = sr->pieces > 0 && sr->sent >= sr->pieces;
    piece = evbuffer_new();
    if (piece != NULL) {
        evbuffer_remove_buffer(sr->body, piece, last ? evbuffer_get_length(sr->body) : sr->piece);
        if (evbuffer_get_length(piece) > 0)
            evhttp_send_reply_chunk(sr->req, piece);
        evbuffer_free(piece);
    }
    if (last || piece == NULL || (sr->pieces == 0 && evbuffer_get_length(sr->body) == 0))
        slow_finish(sr);
}

static int slow_begin(struct slow_set *set, struct evhttp_request *req, int code,
                      const char *reason, struct evbuffer *body, long period_us, size_t piece,
                      int pieces)
{
    struct slow_reply *sr = calloc(1, sizeof(*sr));
    struct timeval tv = {period_us / 1000000, period_us % 1000000};

    if (sr == NULL)
        return -1;
    sr->timer = event_new(set->base, -1, EV_PERSIST, slow_tick, sr);
    if (sr->timer == NULL || event_add(sr->timer, &tv) < 0) {
        if (sr->timer != NULL)
            event_free(sr->timer);
        free(sr);
        return -1;
    }
    sr->set = set;
    sr->req = req;
    sr->body = body;
    sr->piece = piece;
    sr->pieces = pieces;
    sr->next = set->head;
    if (set->head != NULL)
        set->head->prev = sr;
    set->head = sr;
    set->count++;
    evhttp_send_reply_start(req, code, reason);
    return 0;
}

int slow_start(struct slow_set *set, struct evhttp_request *req, int code, const char *reason,
               struct evbuffer *body, int delay_ms)
{
    size_t len = evbuffer_get_length(body);

    return slow_begin(set, req, code, reason, body, (long)delay_ms * 1000 / SLOW_PIECES,
                      (len + SLOW_PIECES - 1) / SLOW_PIECES, SLOW_PIECES);
}

int slow_start_rate(struct slow_set *set, struct evhttp_request *req, int code, const char *reason,
                    struct evbuffer *body, long bytes_per_s)
{
    if (bytes_per_s <= 0) /* would never end */
        return -1;
    return slow_begin(set, req, code, reason, body, 1000000, (size_t)bytes_per_s, 0);
}
