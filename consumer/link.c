/* link.c -- a self-healing hiredis async connection.
 *
 * hiredis 0.14 (Debian 12's) has no async timeouts, so a watchdog timer drops a connection whose
 * oldest command has seen no reply for too long; redisAsyncFree then hands NULL to every waiting
 * callback, which is how callers learn that a command's fate is unknown. Reconnects back off
 * exponentially from 100 ms to 5 s. AUTH and SELECT are queued first on every new connection,
 * so callers never see a connection that is not ready.
 *
 * With sentinels (redis-sentinel://), every connection first asks them where the primary is, and
 * ROLE ends the preamble: a node that is no primary (a stale answer during a failover) is left at
 * once. A READONLY reply means the primary was demoted under us: the connection is dropped, and
 * the next one goes where the sentinels say. The sentinels are asked with blocking calls, a short
 * timeout each, only while the link is down: the loop waits at most that long per reconnection.
 * The links of one loop also share one subscription to the sentinels' +switch-master
 * (lib/sentinel_watch.h): each drops a connection to a node that is no longer the primary at
 * once, idle or not, as the watchdog would (every waiting callback gets NULL), and its next
 * connection goes to the node announced without asking the sentinels again: one that has not
 * heard of the failover yet would name the old primary, which keeps answering ROLE as a primary
 * until the sentinels demote it, seconds later, and whatever was written there meanwhile is lost
 * with it. */
#include "link.h"
#include "aconn.h"
#include "clock.h"
#include "log.h"
#include "sentinel.h"
#include "sentinel_watch.h"

#include <hiredis/async.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LINK_BACKOFF_MIN 100
#define LINK_BACKOFF_MAX 5000
/* Each sentinel's connect and reply (loopback or one network away). */
#define LINK_SENTINEL_TIMEOUT_MS 500

struct link_call {
    struct link *link;
    link_reply_fn *fn;
    void *arg;
};

struct link {
    struct event_base *base;
    const struct redis_target *target;
    struct redis_node at; /* where the connection goes: the URL's host, or the sentinels' primary */
    const char *name;
    redisAsyncContext *ac;
    int up, ever_up;
    int announced; /* `at` came with +switch-master: the next connection goes there directly */
    long backoff_ms, timeout_ms;
    int waiting;            /* commands sent, no reply yet */
    struct timespec active; /* last reply, or when the first waiting command was sent */
    struct event *retry, *watchdog;
    link_state_fn *state;
    void *arg;
    struct link_watch *watch; /* with sentinels: the loop's +switch-master subscription */
    struct link *next_watched;
    struct link_call sub; /* link_subscribe's: hiredis calls it for every message */
};

/* The links with sentinels on one loop, and their subscription. Links are made and freed on
 * their loop's thread; workers run one loop each, so this list stays a few entries long. */
struct link_watch {
    struct event_base *base;
    struct sentinel_watch *sw;
    struct link *links;
    struct link_watch *next;
};

static struct link_watch *link_watches;

static void link_connect(struct link *l);

int reply_is_error(const redisReply *r)
{
    return r == NULL || r->type == REDIS_REPLY_ERROR;
}

const char *reply_error(const redisReply *r)
{
    return r == NULL ? "connection lost" : r->type == REDIS_REPLY_ERROR ? r->str : "";
}

static void link_schedule(struct link *l)
{
    struct timeval tv = {l->backoff_ms / 1000, (l->backoff_ms % 1000) * 1000};
    evtimer_add(l->retry, &tv);
    l->backoff_ms = l->backoff_ms * 2 > LINK_BACKOFF_MAX ? LINK_BACKOFF_MAX : l->backoff_ms * 2;
}

static void link_down(struct link *l, const char *why)
{
    int was_up = l->up;
    l->ac = NULL;
    l->up = 0;
    l->waiting = 0;
    if (was_up || !l->ever_up) {
        /* With sentinels and no primary known yet, the sentinels asked are where it failed. */
        char shown[SET_REDIS_SHOWN_MAX];
        if (l->at.host[0])
            settings_node_shown(&l->at, shown, sizeof(shown));
        else
            settings_redis_shown(l->target, shown, sizeof(shown));
        log_warn("event=redis_down link=%s redis=%s error=\"%s\" retry_ms=%ld", l->name, shown, why,
                 l->backoff_ms);
    }
    l->ever_up = 1; /* log the first failure, then only transitions */
    link_schedule(l);
    if (was_up && l->state)
        l->state(l, 0, l->arg);
}

static void link_on_connect(const redisAsyncContext *ac, int status)
{
    struct link *l = ac->data;
    if (status != REDIS_OK)
        link_down(l, ac->errstr); /* hiredis frees the context after this returns */
}

static void link_on_disconnect(const redisAsyncContext *ac, int status)
{
    struct link *l = ac->data;
    if (l->ac == ac) /* not when we dropped it ourselves */
        link_down(l, status == REDIS_OK ? "closed" : ac->errstr);
}

static void link_on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct link_call *c = privdata;
    struct link *l = c->link;
    if (l->waiting > 0)
        l->waiting--;
    clock_gettime(CLOCK_MONOTONIC, &l->active);
    if (c->fn)
        c->fn(l, reply, c->arg);
    free(c);
    const redisReply *r = reply;
    if (l->target->nsentinels && l->ac == ac && r && r->type == REDIS_REPLY_ERROR &&
        strncmp(r->str, "READONLY", 8) == 0) {
        link_down(l, "READONLY: no longer the primary");
        redisAsyncDisconnect(ac); /* after the replies already on their way */
    }
}

/* The replies to the preamble: AUTH, SELECT, then with sentinels ROLE. The last one queued
 * (arg not NULL) tells that the link is ready. */
static void link_on_ready(struct link *l, redisReply *r, void *arg)
{
    if (r == NULL || l->ac == NULL)
        return; /* the disconnect path reports it */
    const char *why = r->type == REDIS_REPLY_ERROR ? r->str : NULL;
    if (why == NULL && arg && l->target->nsentinels && !sentinel_is_primary(r))
        why = "the sentinels name it, but it is no primary";
    if (why) {
        log_error("event=redis_setup_failed link=%s redis=%s:%d error=\"%s\"", l->name, l->at.host,
                  l->at.port, why);
        redisAsyncContext *ac = l->ac;
        link_down(l, why);
        redisAsyncDisconnect(ac);
        return;
    }
    if (arg == NULL)
        return;
    if (!l->up) {
        l->up = 1;
        l->backoff_ms = LINK_BACKOFF_MIN;
        log_info("event=redis_up link=%s redis=%s:%d", l->name, l->at.host, l->at.port);
        if (l->state)
            l->state(l, 1, l->arg);
    }
}

static int link_send(struct link *l, link_reply_fn *fn, void *arg, int argc, const char **argv,
                     const size_t *lens)
{
    struct link_call *c = malloc(sizeof(*c));
    if (c == NULL)
        return -1;
    *c = (struct link_call){l, fn, arg};
    if (redisAsyncCommandArgv(l->ac, link_on_reply, c, argc, argv, lens) != REDIS_OK) {
        free(c);
        return -1;
    }
    if (l->waiting++ == 0)
        clock_gettime(CLOCK_MONOTONIC, &l->active);
    return 0;
}

static void link_connect(struct link *l)
{
    const struct redis_target *t = l->target;
    if (t->nsentinels && l->announced)
        l->announced = 0; /* once: ROLE still checks it, and a failure asks the sentinels */
    else if (t->nsentinels) {
        char why[1024];
        if (sentinel_primary(t, LINK_SENTINEL_TIMEOUT_MS, &l->at, why, sizeof(why)) < 0) {
            link_down(l, why);
            return;
        }
    }
    char why[128];
    redisAsyncContext *ac = aconn_open(l->base, l->at.host, l->at.port, l, link_on_connect,
                                       link_on_disconnect, why, sizeof(why));
    if (ac == NULL) {
        link_down(l, why);
        return;
    }
    l->ac = ac;

    if (t->password[0]) {
        const char *argv[] = {"AUTH", t->user, t->password};
        int skip = t->user[0] ? 0 : 1;
        argv[skip] = "AUTH";
        link_send(l, link_on_ready, NULL, 3 - skip, argv + skip, NULL);
    }
    char db[16];
    snprintf(db, sizeof(db), "%d", t->db);
    const char *sel[] = {"SELECT", db}, *role[] = {"ROLE"};
    link_send(l, link_on_ready, t->nsentinels ? NULL : l, 2, sel, NULL);
    if (t->nsentinels)
        link_send(l, link_on_ready, l, 1, role, NULL);
}

/* +switch-master: every link of the loop connected (or connecting) elsewhere leaves. */
static void link_on_switch(const struct redis_node *primary, void *arg)
{
    struct link_watch *lw = arg;
    struct link *next;
    for (struct link *l = lw->links; l; l = next) {
        next = l->next_watched;
        if (strcmp(l->at.host, primary->host) == 0 && l->at.port == primary->port)
            continue;
        if (l->ac == NULL) { /* down: its retry goes there, soon rather than after its backoff */
            l->at = *primary;
            l->announced = 1;
            evtimer_del(l->retry);
            l->backoff_ms = LINK_BACKOFF_MIN;
            link_schedule(l);
            continue;
        }
        log_warn("event=redis_switch link=%s from=%s:%d to=%s:%d", l->name, l->at.host, l->at.port,
                 primary->host, primary->port);
        redisAsyncContext *ac = l->ac;
        link_down(l, "+switch-master: the sentinels promoted another node");
        l->at = *primary;
        l->announced = 1;
        redisAsyncFree(ac); /* every waiting callback gets NULL */
    }
}

/* Join the loop's subscription, made with its first link. -1 when out of memory. */
static int link_watch_join(struct link *l)
{
    struct link_watch *lw = link_watches;
    while (lw && lw->base != l->base)
        lw = lw->next;
    if (lw == NULL) {
        lw = calloc(1, sizeof(*lw));
        if (lw == NULL)
            return -1;
        lw->base = l->base;
        lw->sw = sentinel_watch_new(l->base, l->target, link_on_switch, lw);
        if (lw->sw == NULL) {
            free(lw);
            return -1;
        }
        lw->next = link_watches;
        link_watches = lw;
    }
    l->watch = lw;
    l->next_watched = lw->links;
    lw->links = l;
    return 0;
}

static void link_watch_leave(struct link *l)
{
    struct link_watch *lw = l->watch;
    struct link **at = &lw->links;
    while (*at != l)
        at = &(*at)->next_watched;
    *at = l->next_watched;
    if (lw->links)
        return;
    struct link_watch **w = &link_watches;
    while (*w != lw)
        w = &(*w)->next;
    *w = lw->next;
    sentinel_watch_free(lw->sw);
    free(lw);
}

static void link_on_retry(evutil_socket_t fd, short what, void *arg)
{
    link_connect(arg);
}

static void link_on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    struct link *l = arg;
    if (l->ac == NULL || l->waiting == 0 || clock_ms_since(&l->active) < l->timeout_ms)
        return;
    log_warn("event=redis_timeout link=%s waiting=%d silent_ms=%ld", l->name, l->waiting,
             clock_ms_since(&l->active));
    redisAsyncContext *ac = l->ac;
    link_down(l, "timeout");
    redisAsyncFree(ac); /* every waiting callback gets NULL */
}

struct link *link_new(struct event_base *base, const struct redis_target *t, const char *name,
                      long timeout_ms, link_state_fn *state, void *arg)
{
    struct link *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->base = base;
    l->target = t;
    snprintf(l->at.host, sizeof(l->at.host), "%s", t->host);
    l->at.port = t->port;
    l->name = name;
    l->timeout_ms = timeout_ms;
    l->backoff_ms = LINK_BACKOFF_MIN;
    l->state = state;
    l->arg = arg;
    l->retry = evtimer_new(base, link_on_retry, l);
    l->watchdog = event_new(base, -1, EV_PERSIST, link_on_watchdog, l);
    if (l->retry == NULL || l->watchdog == NULL || (t->nsentinels && link_watch_join(l) < 0)) {
        link_free(l);
        return NULL;
    }
    struct timeval tick = {0, 250000};
    evtimer_add(l->watchdog, &tick);
    link_connect(l);
    return l;
}

static void link_on_message(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct link_call *c = privdata; /* the link's own: kept for every message */
    if (c->fn)
        c->fn(c->link, reply, c->arg);
}

int link_subscribe(struct link *l, const char *channel, link_reply_fn *fn, void *arg)
{
    if (!l->up)
        return -1;
    l->sub = (struct link_call){l, fn, arg};
    const char *argv[] = {"SUBSCRIBE", channel};
    if (redisAsyncCommandArgv(l->ac, link_on_message, &l->sub, 2, argv, NULL) != REDIS_OK)
        return -1;
    return 0;
}

int link_up(const struct link *l)
{
    return l->up;
}

int link_command(struct link *l, link_reply_fn *fn, void *arg, int argc, const char **argv,
                 const size_t *lens)
{
    if (!l->up)
        return -1;
    return link_send(l, fn, arg, argc, argv, lens);
}

void link_free(struct link *l)
{
    if (l == NULL)
        return;
    l->state = NULL;
    if (l->watch)
        link_watch_leave(l);
    if (l->ac) {
        redisAsyncContext *ac = l->ac;
        l->ac = NULL;
        l->up = 0;
        redisAsyncFree(ac);
    }
    if (l->retry)
        event_free(l->retry);
    if (l->watchdog)
        event_free(l->watchdog);
    free(l);
}
