/* sentinel_watch.c -- a SUBSCRIBE +switch-master held on one sentinel at a time.
 *
 * One sentinel is enough to hear of a failover: every sentinel of the quorum publishes it. When
 * the one subscribed to dies, the next in the URL's order is tried, after a backoff from 100 ms
 * to 5 s (reset by a subscription that succeeds). A failover while no sentinel is reachable is
 * not heard here; the connections' own signs (a broken link, READONLY) still move them. */
#include "sentinel_watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aconn.h"
#include "log.h"

#define WATCH_BACKOFF_MIN 100
#define WATCH_BACKOFF_MAX 5000

struct sentinel_watch {
    struct event_base *base;
    const struct redis_target *t;
    sentinel_switch_fn *fn;
    void *arg;
    redisAsyncContext *ac;
    int next; /* the sentinel to try next */
    const struct redis_node *on;
    long backoff_ms;
    struct event *retry;
};

static void watch_connect(struct sentinel_watch *w);

int sentinel_watch_parse(const char *msg, const char *master, struct redis_node *out)
{
    char name[128], old_host[256], new_host[256];
    int old_port, new_port;
    if (sscanf(msg, "%127s %255s %d %255s %d", name, old_host, &old_port, new_host, &new_port) != 5)
        return -1;
    if (strcmp(name, master) != 0 || new_port <= 0 || new_port > 65535)
        return -1;
    snprintf(out->host, sizeof(out->host), "%s", new_host);
    out->port = new_port;
    return 0;
}

static void watch_lost(struct sentinel_watch *w, const char *why)
{
    log_warn("event=sentinel_watch_down sentinel=%s:%d error=\"%s\" retry_ms=%ld", w->on->host,
             w->on->port, why, w->backoff_ms);
    w->ac = NULL;
    struct timeval tv = {w->backoff_ms / 1000, (w->backoff_ms % 1000) * 1000};
    evtimer_add(w->retry, &tv);
    w->backoff_ms = w->backoff_ms * 2 > WATCH_BACKOFF_MAX ? WATCH_BACKOFF_MAX : w->backoff_ms * 2;
}

static void watch_on_connect(const redisAsyncContext *ac, int status)
{
    struct sentinel_watch *w = ac->data;
    if (status != REDIS_OK && w && w->ac == ac)
        watch_lost(w, ac->errstr); /* hiredis frees the context after this returns */
}

static void watch_on_disconnect(const redisAsyncContext *ac, int status)
{
    struct sentinel_watch *w = ac->data;
    if (w && w->ac == ac) /* not when sentinel_watch_free dropped it */
        watch_lost(w, status == REDIS_OK ? "closed" : ac->errstr);
}

/* Every reply on the subscription: its confirmation, then one per message. */
static void watch_on_message(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct sentinel_watch *w = privdata;
    const redisReply *r = reply;
    if (r == NULL || w->ac != ac)
        return; /* dropped: the disconnect callback says why */
    if (r->type == REDIS_REPLY_ERROR) {
        log_warn("event=sentinel_watch_refused sentinel=%s:%d error=\"%s\"", w->on->host,
                 w->on->port, r->str);
        return; /* the connection stays; the next drop tries another sentinel */
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(r->element[0]->str, "subscribe") == 0) {
        w->backoff_ms = WATCH_BACKOFF_MIN;
        log_info("event=sentinel_watch sentinel=%s:%d master=%s", w->on->host, w->on->port,
                 w->t->master);
        return;
    }
    struct redis_node to;
    if (strcmp(r->element[0]->str, "message") != 0 || r->element[2]->type != REDIS_REPLY_STRING ||
        sentinel_watch_parse(r->element[2]->str, w->t->master, &to) < 0)
        return;
    log_warn("event=sentinel_switch master=%s primary=%s:%d", w->t->master, to.host, to.port);
    w->fn(&to, w->arg);
}

static void watch_connect(struct sentinel_watch *w)
{
    w->on = &w->t->sentinels[w->next];
    w->next = (w->next + 1) % w->t->nsentinels;
    char why[128];
    redisAsyncContext *ac = aconn_open(w->base, w->on->host, w->on->port, w, watch_on_connect,
                                       watch_on_disconnect, why, sizeof(why));
    if (ac == NULL) {
        watch_lost(w, why);
        return;
    }
    w->ac = ac;
    redisAsyncCommand(ac, watch_on_message, w, "SUBSCRIBE +switch-master");
}

static void watch_on_retry(evutil_socket_t fd, short what, void *arg)
{
    watch_connect(arg);
}

struct sentinel_watch *sentinel_watch_new(struct event_base *base, const struct redis_target *t,
                                          sentinel_switch_fn *fn, void *arg)
{
    struct sentinel_watch *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    *w = (struct sentinel_watch){.base = base, .t = t, .fn = fn, .arg = arg};
    w->backoff_ms = WATCH_BACKOFF_MIN;
    w->retry = evtimer_new(base, watch_on_retry, w);
    if (w->retry == NULL || t->nsentinels == 0) {
        sentinel_watch_free(w);
        return NULL;
    }
    watch_connect(w);
    return w;
}

void sentinel_watch_free(struct sentinel_watch *w)
{
    if (w == NULL)
        return;
    if (w->ac) {
        redisAsyncContext *ac = w->ac;
        w->ac = NULL;
        ac->data = NULL;
        redisAsyncFree(ac);
    }
    if (w->retry)
        event_free(w->retry);
    free(w);
}
