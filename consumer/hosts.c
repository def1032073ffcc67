/* hosts.c -- politeness: each source host's rate, requests at once, pause and circuit, shared by
 * the fleet through one Redis script (SPEC §5.8).
 *
 * The script, ASK, runs on Redis's clock (TIME), so the workers' clocks do not matter. For each
 * host it is given, it first takes the reports of requests that ended (their leases back, and how
 * the host answered), then at most one ask:
 *  - a pause (429/503) or an open circuit: wait until it ends;
 *  - a half-open circuit lets a few probes through, fleet-wide, each with a deadline, so a probe
 *    that hangs frees its place when the deadline passes;
 *  - requests at once: a lease in a sorted set scored by its deadline (start + lease_ms), so the
 *    slots of a killed worker come back without anyone cleaning up; the cap is the adaptive
 *    concurrency (halved on 429, 503 and timeouts at most every HOSTS_CUT_EVERY_MS, one more per
 *    `concurrency` good answers), never above the configured inflight;
 *  - the rate: GCRA with reservations. The ask always gets a start time (now, or when the rate
 *    allows) and its lease, and the worker sets a timer: no polling, and no herd when a limit
 *    frees, since every reservation has its own time.
 * One ask per host is out per worker at a time, and the next asks only once the previous one's
 * time has come, so reservations reach at most one per worker ahead of the rate.
 *
 * The one case that has no time to wait for is a full host. Its ask joins the host's queue in
 * Redis (KEY_HOST_QUEUE, first come first served, fleet-wide); whichever call frees a slot (a
 * report) hands it to the first queued ask whose worker still listens (PUBSUB NUMSUB: a killed
 * worker's connection is gone), reserved by the rate, and PUBLISHes it on that worker's channel
 * (KEY_HOSTS_WAKE<consumer>), which the worker follows on a connection of its own. So nobody
 * polls, and a freed slot wakes one worker, not all of them (the herd BullMQ's maintainers name
 * as the hard part of fleet-wide concurrency). A slot can also free by no report (a killed
 * worker's lease lapsing): the queued worker asks again when the first lease would lapse, and at
 * the latest after HOSTS_QUEUE_CHECK_MS, which also covers news lost while its subscription was
 * down (a slot handed then is found held by the next ask). What is left of polling is that
 * check: one call per worker and full host every 2 s at most. Without the subscription the
 * worker asks again when one of its own requests to the host ends, or after the script's hint
 * (the host's mean request time divided by its slots, with jitter).
 *
 * A request its host made wait is parked: it holds no connection and no body, so it is no work
 * of the worker's, which reads on for its other hosts; it takes room (hosts_room) again before
 * it asks, and a host whose parked head finds none waits for hosts_resume.
 *
 * Reports ride on the next ask of any host. A slot given back matters to the fleet only when its
 * host is at least half full: then the report waits HOSTS_FLUSH_MS for an ask; otherwise it
 * waits for the next ask due within HOSTS_RIDE_MS (a reservation's start, or a wait's end). It
 * goes alone if no ask came by then; one that pauses or fails the host goes at once. So at the
 * limit a request costs about one script call (EVALSHA; EVAL only when Redis lost the script).
 *
 * Redis unreachable (link down, or an ask without reply): the worker decides alone with its
 * share of each limit: rate, burst and inflight divided by the workers Redis last counted
 * (KEY_HOSTS_FLEET: the workers that asked within HOSTS_FLEET_TTL_MS), and pauses on its own 429s.
 */
#include "hosts.h"
#include "clock.h"
#include "link.h"
#include "log.h"
#include "names.h"

#include <event2/buffer.h>
#include <math.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HOSTS_LEASE_MAX      48
#define HOSTS_FLUSH_MS       10      /* a report with no ask to ride on waits this long */
#define HOSTS_RIDE_MS        1000    /* ... or for an ask due within this long */
#define HOSTS_FLEET_TTL_MS   30000   /* a worker that has not asked for this long is gone */
#define HOSTS_STATE_TTL_MS   3600000 /* a host nobody asked for in an hour is forgotten */
#define HOSTS_REFRESH_MS     60000   /* a host's keys get their TTL again this often */
#define HOSTS_BEAT_MS        1000    /* a worker tells the fleet it lives this often */
#define HOSTS_PAUSE_MIN_MS   100     /* the shortest pause a 429/503 brings */
#define HOSTS_PAUSE_BASE_MS  1000    /* the first backoff without Retry-After; doubles */
#define HOSTS_PAUSE_MAX_MS   300000  /* the longest pause, Retry-After or not */
#define HOSTS_FAILS_TO_OPEN  5       /* consecutive failures that open the circuit */
#define HOSTS_OPEN_BASE_MS   5000    /* the first open spell; doubles while probes fail */
#define HOSTS_OPEN_MAX_MS    300000
#define HOSTS_PROBES         3    /* requests a half-open circuit lets through, fleet-wide */
#define HOSTS_PROBE_WAIT_MS  1000 /* the longest wait for a probe's answer before asking again */
#define HOSTS_CUT_EVERY_MS   5000 /* concurrency is halved at most this often */
#define HOSTS_FULL_WAIT_MIN  5
#define HOSTS_FULL_WAIT_MAX  1000
#define HOSTS_LOCAL_FULL_MS  100  /* alone and full: look again this often (a done also does) */
#define HOSTS_QUEUE_CHECK_MS 2000 /* queued for a full host: ask again after this at the latest */
#define HOSTS_SPREAD_MS      200  /* the most a waiting ask is spread past its time */
#define HOSTS_STR_(x)        #x
#define HOSTS_STR(x)         HOSTS_STR_(x)

/* KEYS: hosts set, fleet, then per section: state, leases, probes, queue.
 * ARGV: worker, wake channel prefix, beat (1: count the worker in the fleet, at most once a
 * HOSTS_BEAT_MS), n sections, then per section: host, rate, burst, inflight, ask lease ("" none),
 * queued (1: that lease found the host full before), lease_ms, jitter (0..1), n reports, then per
 * report: lease, outcome, retry_after_ms, ms, waited (1: it had waited for the host, counted in
 * HOST_WAITS).
 * Returns per section {verdict, wait_ms, concurrency, pause_left_ms, circuit, fleet, leases,
 * hint_ms}: verdict 0 no ask, 1 go after wait_ms (slot taken), 2 paused, 3 circuit open or
 * probes out, 4 full: queued, wait_ms until the first lease lapses, hint_ms a time to ask again
 * for a worker that cannot be told (no subscription). */
/* clang-format off */
static const char ASK_LUA[] =
    "if redis.replicate_commands then pcall(redis.replicate_commands) end\n"
    "local F_TAT, F_PU, F_PMS = '" HOST_TAT "', '" HOST_PAUSE_UNTIL "', '" HOST_PAUSE_MS "'\n"
    "local F_FAILS, F_CIRC, F_OU = '" HOST_FAILS "', '" HOST_CIRCUIT "', '" HOST_OPEN_UNTIL "'\n"
    "local F_OMS, F_LIM, F_CUT = '" HOST_OPEN_MS "', '" HOST_LIMIT "', '" HOST_CUT_AT "'\n"
    "local F_DUR, F_CAP, F_RATE = '" HOST_DURATION "', '" HOST_INFLIGHT "', '" HOST_RATE "'\n"
    "local F_WAITS, F_KEPT, F_QD = '" HOST_WAITS "', '" HOST_KEPT "', '" HOST_QUEUED "'\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000\n"
    "local function f3(x) return string.format('%.3f', x) end\n"
    "local me, wake, n = ARGV[1], ARGV[2], tonumber(ARGV[4])\n"
    "local function keep(k) redis.call('PEXPIRE', k, " HOSTS_STR(HOSTS_STATE_TTL_MS) ") end\n"
    /* Most calls touch only the host's own keys: the fleet's on a beat, the TTLs once a
     * HOSTS_REFRESH_MS per host and when a key is made, so a call runs about 8 commands. */
    "if ARGV[3] == '1' then\n"
    "  redis.call('ZADD', KEYS[2], f3(now), me)\n"
    "  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf',"
    "    f3(now - " HOSTS_STR(HOSTS_FLEET_TTL_MS) "))\n"
    "  keep(KEYS[2])\n"
    "  keep(KEYS[1])\n"
    "end\n"
    /* counted on every call: a worker that just joined halves the others' shares at once */
    "local fleet = redis.call('ZCARD', KEYS[2])\n"
    "local out, a = {}, 5\n"
    "for s = 1, n do\n"
    "  local kst, kls, kpr, kq = KEYS[4 * s - 1], KEYS[4 * s], KEYS[4 * s + 1], KEYS[4 * s + 2]\n"
    "  local host, rate = ARGV[a], tonumber(ARGV[a + 1])\n"
    "  local burst, cap = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])\n"
    "  local ask, queued = ARGV[a + 4], ARGV[a + 5] == '1'\n"
    "  local lease_ms, jitter = tonumber(ARGV[a + 6]), tonumber(ARGV[a + 7])\n"
    "  local nrep = tonumber(ARGV[a + 8])\n"
    "  a = a + 9\n"
    "  local h = {}\n"
    "  local raw = redis.call('HGETALL', kst)\n"
    "  for i = 1, #raw, 2 do h[raw[i]] = tonumber(raw[i + 1]) end\n"
    "  local kept = h[F_KEPT] or 0\n"
    "  local refresh = now - kept >= " HOSTS_STR(HOSTS_REFRESH_MS) "\n"
    "  if refresh then\n"
    "    kept = now\n"
    "    redis.call('SADD', KEYS[1], host)\n"
    "    keep(KEYS[1])\n"
    "  end\n"
    "  local made = false\n"
    /* the queue may hold asks: unknown (no field) counts as yes */
    "  local qd = h[F_QD] ~= 0\n"
    "  local T = 1000 / rate\n"
    "  local tau = (burst - 1) * T\n"
    "  local tat, pu, pms = h[F_TAT] or 0, h[F_PU] or 0, h[F_PMS] or 0\n"
    "  local fails, circ = h[F_FAILS] or 0, h[F_CIRC] or 0\n"
    "  local ou, oms = h[F_OU] or 0, h[F_OMS] or 0\n"
    "  local lim, cut, dur = math.min(h[F_LIM] or cap, cap), h[F_CUT] or 0, h[F_DUR] or 0\n"
    "  local function open(ms)\n"
    "    circ, oms, ou = 1, ms, now + ms\n"
    "    redis.call('DEL', kpr)\n"
    "  end\n"
    "  local function failure()\n"
    "    fails = fails + 1\n"
    "    if circ == 2 then\n"
    "      open(math.min(math.max(oms, " HOSTS_STR(HOSTS_OPEN_BASE_MS) ") * 2, "
                HOSTS_STR(HOSTS_OPEN_MAX_MS) "))\n"
    "    elseif circ == 0 and fails >= " HOSTS_STR(HOSTS_FAILS_TO_OPEN) " then\n"
    "      open(" HOSTS_STR(HOSTS_OPEN_BASE_MS) ")\n"
    "    end\n"
    "  end\n"
    "  local function halve()\n"
    "    if now - cut >= " HOSTS_STR(HOSTS_CUT_EVERY_MS) " then\n"
    "      lim, cut = math.max(1, lim / 2), now\n"
    "    end\n"
    "  end\n"
    "  local function pause(ra)\n"
    "    local p\n"
    "    if ra >= 0 then\n"
    "      p = math.min(math.max(ra, " HOSTS_STR(HOSTS_PAUSE_MIN_MS) "), "
              HOSTS_STR(HOSTS_PAUSE_MAX_MS) ")\n"
    "    else\n"
    /* Reports of requests already out when the pause began do not double it again. */
    "      if now >= pu then\n"
    "        pms = math.min(math.max(pms * 2, " HOSTS_STR(HOSTS_PAUSE_BASE_MS) "), "
                  HOSTS_STR(HOSTS_PAUSE_MAX_MS) ")\n"
    "      end\n"
    "      p = pms * (0.5 + 0.5 * jitter)\n"
    "    end\n"
    "    if now + p > pu then pu = now + p end\n"
    /* No burst when the pause lapses: the rate resumes from its end. */
    "    tat = math.max(tat, pu + tau)\n"
    "  end\n"
    "  for r = 1, nrep do\n"
    "    local lease, oc = ARGV[a], tonumber(ARGV[a + 1])\n"
    "    local ra, ms = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])\n"
    "    if ARGV[a + 4] == '1' then redis.call('HINCRBY', kst, F_WAITS, 1) end\n"
    "    a = a + 5\n"
    "    redis.call('ZREM', kls, lease)\n"
    /* a closed circuit has no probes: every way to it deletes them */
    "    if circ ~= 0 then redis.call('ZREM', kpr, lease) end\n"
    /* a lease given back unused may still be queued: a request that went no longer is */
    "    if oc == 0 and qd then redis.call('ZREM', kq, lease) end\n"
    "    if oc == 1 then\n"
    "      fails, pms = 0, 0\n"
    "      if circ ~= 0 then circ, oms = 0, 0; redis.call('DEL', kpr) end\n"
    "      lim = math.min(cap, lim + 1 / math.max(lim, 1))\n"
    "      if dur == 0 then dur = ms else dur = dur * 0.9 + ms * 0.1 end\n"
    "    elseif oc == 2 then pause(ra); halve()\n"
    "    elseif oc == 3 then pause(ra); halve(); failure()\n"
    "    elseif oc == 4 then failure()\n"
    "    elseif oc == 5 then halve(); failure() end\n"
    "  end\n"
    "  redis.call('ZREMRANGEBYSCORE', kls, '-inf', f3(now))\n"
    "  local slots, busy = math.max(1, math.floor(lim)), redis.call('ZCARD', kls)\n"
    "  local function reserve(lease)\n"
    "    local start = math.max(now, math.max(tat, now) - tau)\n"
    "    tat = math.max(tat, now) + T\n"
    "    if busy == 0 then made = true end\n"
    "    busy = busy + redis.call('ZADD', kls, f3(start + lease_ms), lease)\n"
    "    return start - now\n"
    "  end\n"
    /* Free slots go to the asks queued for them, oldest first, each told on its worker's
     * channel: no worker polls a full host, and a freed slot wakes one worker, not all. */
    "  if circ == 0 and now >= pu then\n"
    "    while qd and busy < slots do\n"
    "      local first = redis.call('ZPOPMIN', kq)\n"
    "      if #first == 0 then qd = false; break end\n"
    "      local w = string.match(first[1], '^(.*):%d+$')\n"
    /* only to a worker that listens: a killed one's connection is closed, and a slot handed to
     * it would be lost until its lease lapsed */
    "      local heard = w and redis.call('PUBSUB', 'NUMSUB', wake .. w)\n"
    "      if heard and tonumber(heard[2]) > 0 then\n"
    "        local wait = reserve(first[1])\n"
    "        redis.call('PUBLISH', wake .. w, host .. ' ' .. first[1] .. ' ' .. math.ceil(wait))\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  local verdict, wait, hint = 0, 0, 0\n"
    "  if ask ~= '' then\n"
    /* handed over while its worker could not hear it: it goes */
    "    local held = queued and redis.call('ZSCORE', kls, ask)\n"
    "    if held then verdict, wait = 1, math.max(0, tonumber(held) - lease_ms - now)\n"
    "    elseif now < pu then verdict, wait = 2, pu - now\n"
    "    elseif circ == 1 and now < ou then verdict, wait = 3, ou - now\n"
    "    else\n"
    "      local probe = false\n"
    "      if circ == 1 then circ = 2 end\n"
    "      if circ == 2 then\n"
    "        redis.call('ZREMRANGEBYSCORE', kpr, '-inf', f3(now))\n"
    "        local first = redis.call('ZRANGE', kpr, 0, 0, 'WITHSCORES')\n"
    "        if redis.call('ZCARD', kpr) >= " HOSTS_STR(HOSTS_PROBES) " then\n"
    "          verdict, wait = 3, math.min(tonumber(first[2]) - now, "
                                      HOSTS_STR(HOSTS_PROBE_WAIT_MS) ")\n"
    "        else probe = true end\n"
    "      end\n"
    "      if verdict == 0 then\n"
    "        if busy >= slots then\n"
    "          redis.call('ZADD', kq, 'NX', f3(now), ask)\n"
    "          keep(kq)\n"
    "          qd = true\n"
    "          local first = redis.call('ZRANGE', kls, 0, 0, 'WITHSCORES')\n"
    "          verdict, wait = 4, math.max(0, tonumber(first[2]) - now)\n"
    "          hint = math.min(math.max(dur / slots, " HOSTS_STR(HOSTS_FULL_WAIT_MIN) "), "
                                HOSTS_STR(HOSTS_FULL_WAIT_MAX) ")\n"
    "        else\n"
    "          verdict, wait = 1, reserve(ask)\n"
    "          if queued then redis.call('ZREM', kq, ask) end\n"
    "          if probe then\n"
    "            redis.call('ZADD', kpr, f3(now + wait + lease_ms), ask)\n"
    "            keep(kpr)\n"
    "          end\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  redis.call('HSET', kst, F_TAT, f3(tat), F_PU, f3(pu), F_PMS, f3(pms), F_FAILS, fails,\n"
    "    F_CIRC, circ, F_OU, f3(ou), F_OMS, f3(oms), F_LIM, f3(lim), F_CUT, f3(cut),\n"
    "    F_DUR, f3(dur),\n"
    "    F_CAP, cap, F_RATE, rate, F_KEPT, f3(kept), F_QD, qd and 1 or 0)\n"
    "  if refresh then\n"
    "    for _, k in ipairs({kst, kls, kpr, kq}) do keep(k) end\n"
    "  elseif made then keep(kls) end\n"
    "  out[s] = {verdict, math.ceil(wait), math.floor(lim), math.max(0, math.ceil(pu - now)),\n"
    "    circ,\n"
    "    fleet, busy, math.ceil(hint)}\n"
    "end\n"
    "return out\n";
/* clang-format on */

enum ticket_state { T_WAITING, T_ASKING, T_RESERVED, T_GRANTED };

struct host_ticket {
    struct host *h;
    enum ticket_state state;
    hosts_go_fn *go;
    void *arg;
    int cancelled; /* dropped while its ask was out: freed by the reply */
    int waited;
    int parked; /* its host made it wait, and it is not asking: no work of the worker's */
    int queued; /* its lease found the host full: it may be in the host's queue, or handed a slot */
    int local;  /* granted without Redis: nothing to report there */
    char lease[HOSTS_LEASE_MAX];
    struct host_ticket *prev, *next; /* the host's waiting list */
};

struct host_report {
    char lease[HOSTS_LEASE_MAX];
    int outcome;
    long retry_after_ms;
    double ms;
    int waited; /* the request had waited for the host */
    struct host_report *next;
};

enum host_timer { TIMER_NONE, TIMER_START, TIMER_ASK, TIMER_FULL };

struct host {
    struct hosts *hs;
    char name[URL_HOST_MAX + 1];
    char k_state[SET_KEY_MAX], k_leases[SET_KEY_MAX], k_probes[SET_KEY_MAX], k_queue[SET_KEY_MAX];
    const struct host_limit *lim;
    struct host_ticket *head, *tail; /* waiting, first come first served */
    int nwaiting;
    struct host_ticket *asking;   /* its ask is out */
    struct host_ticket *reserved; /* has a slot, starts when the timer fires */
    int starved; /* its parked head may ask, but the worker had no room (hosts_resume) */
    enum host_timer timer_kind;
    double timer_at; /* when the timer fires (local clock) */
    struct event *timer, *kick;
    struct host_report *reports; /* ended requests not yet told to Redis */
    int mine;                    /* this worker's requests in flight to the host */
    long long waits, requests;
    /* as Redis last said */
    int limit, circuit;
    int busy;           /* leases taken, fleet-wide */
    double pause_until; /* on the local clock */
    /* alone (Redis unreachable) */
    double tat;
    struct host *next;
};

struct hosts {
    struct event_base *base;
    const struct settings *s;
    long lease_ms;
    struct link *link;
    struct link *wake; /* subscribed to KEY_HOSTS_WAKE<consumer>: slots handed to queued asks */
    int subscribed;
    char k_hosts[SET_KEY_MAX], k_fleet[SET_KEY_MAX], k_wake[SET_KEY_MAX];
    char sha[41];
    struct host *list;
    struct event *flush;
    long long serial, calls, requests;
    int fleet;      /* workers Redis last counted, >= 1 */
    double beat_at; /* when a call last counted this worker in the fleet (local clock) */
    int loaded;     /* Redis has the script (an EVAL went through since the link came up) */
    int closing;    /* hosts_free: replies coming back NULL decide nothing */
    int waiting;    /* tickets waiting, all hosts */
    int parked;     /* of them, parked (hosts_room) */
    int (*room)(void *arg);
    void *room_arg;
};

static double hosts_jitter(void)
{
    return (double)random() / ((double)RAND_MAX + 1.0);
}

static void hosts_timer(struct event *ev, double ms)
{
    long m = ms < 0 ? 0 : (long)ceil(ms);
    struct timeval tv = {m / 1000, (m % 1000) * 1000};
    evtimer_add(ev, &tv);
}

/* The host's head (or its reserved ticket) waits `ms` for what `kind` says. */
static void host_wait(struct host *h, enum host_timer kind, double ms)
{
    h->timer_kind = kind;
    h->timer_at = clock_now_ms() + ms;
    hosts_timer(h->timer, ms);
}

/* Milliseconds until the next ask a report could ride on, -1 when none is due. */
static double hosts_next_ask(const struct hosts *hs)
{
    double next = -1, now = clock_now_ms();
    for (const struct host *h = hs->list; h; h = h->next)
        if (h->timer_kind != TIMER_NONE && h->head && (next < 0 || h->timer_at - now < next))
            next = h->timer_at - now < 0 ? 0 : h->timer_at - now;
    return next;
}

/* ---- hosts and tickets ------------------------------------------------------------------ */

static void host_on_timer(evutil_socket_t fd, short what, void *arg);
static void host_on_kick(evutil_socket_t fd, short what, void *arg);

static struct host *host_find(struct hosts *hs, const char *name)
{
    for (struct host *h = hs->list; h; h = h->next)
        if (strcmp(h->name, name) == 0)
            return h;
    return NULL;
}

static struct host *host_get(struct hosts *hs, const char *name)
{
    struct host *h = host_find(hs, name);
    if (h)
        return h;
    h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->hs = hs;
    snprintf(h->name, sizeof(h->name), "%s", name);
    char key[SET_KEY_MAX];
    snprintf(key, sizeof(key), KEY_HOST "%s" KEY_HOST_STATE, name);
    settings_key(hs->s, key, h->k_state, sizeof(h->k_state));
    snprintf(key, sizeof(key), KEY_HOST "%s" KEY_HOST_LEASES, name);
    settings_key(hs->s, key, h->k_leases, sizeof(h->k_leases));
    snprintf(key, sizeof(key), KEY_HOST "%s" KEY_HOST_PROBES, name);
    settings_key(hs->s, key, h->k_probes, sizeof(h->k_probes));
    snprintf(key, sizeof(key), KEY_HOST "%s" KEY_HOST_QUEUE, name);
    settings_key(hs->s, key, h->k_queue, sizeof(h->k_queue));
    h->lim = host_limits_for(&hs->s->host_limits, name);
    h->limit = (int)h->lim->inflight;
    h->timer = evtimer_new(hs->base, host_on_timer, h);
    h->kick = evtimer_new(hs->base, host_on_kick, h);
    if (h->timer == NULL || h->kick == NULL) {
        if (h->timer)
            event_free(h->timer);
        if (h->kick)
            event_free(h->kick);
        free(h);
        return NULL;
    }
    h->next = hs->list;
    hs->list = h;
    return h;
}

/* Look at the host again on the next loop turn: go never runs inside ask, done or drop. */
static void host_kick(struct host *h)
{
    if (!evtimer_pending(h->kick, NULL))
        hosts_timer(h->kick, 0);
}

/* A ticket its host made wait holds no connection and no body: parked, it is no work of the
 * worker's (hosts_room) until it asks again. */
static void ticket_park(struct host_ticket *t, int on)
{
    if (t->parked == on)
        return;
    t->parked = on;
    t->h->hs->parked += on ? 1 : -1;
}

static void host_unlink(struct host_ticket *t)
{
    struct host *h = t->h;
    ticket_park(t, 0);
    if (t->prev)
        t->prev->next = t->next;
    else if (h->head == t)
        h->head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else if (h->tail == t)
        h->tail = t->prev;
    t->prev = t->next = NULL;
    h->nwaiting--;
    h->hs->waiting--;
}

static void host_report(struct host *h, const char *lease, int outcome, long retry_after_ms,
                        double ms, int waited)
{
    struct host_report *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return; /* its lease lapses by itself */
    snprintf(r->lease, sizeof(r->lease), "%s", lease);
    r->outcome = outcome;
    r->retry_after_ms = retry_after_ms;
    r->ms = ms;
    r->waited = waited;
    r->next = h->reports;
    h->reports = r;
    /* A pause or a failure concerns the whole fleet now; a slot given back can wait a little
     * for an ask to ride on. */
    double ride = hosts_next_ask(h->hs), wait = HOSTS_FLUSH_MS;
    if (h->busy * 2 < h->limit && ride >= 0 && ride + HOSTS_FLUSH_MS <= HOSTS_RIDE_MS)
        wait = ride + HOSTS_FLUSH_MS;
    if (outcome > HOST_OK)
        hosts_timer(h->hs->flush, 0);
    else if (!evtimer_pending(h->hs->flush, NULL))
        hosts_timer(h->hs->flush, wait);
}

/* The host makes its head wait (limit, pause, circuit): so does every ticket queued behind it. */
static void host_waits(struct host *h)
{
    for (struct host_ticket *t = h->head; t; t = t->next) {
        t->waited = 1;
        if (t->state == T_WAITING)
            ticket_park(t, 1);
    }
}

/* The ticket may go: it leaves the waiting list and its caller is told. */
static void host_grant(struct host_ticket *t)
{
    struct host *h = t->h;
    t->state = T_GRANTED;
    h->mine++;
    h->requests++;
    h->hs->requests++;
    if (t->waited)
        h->waits++;
    t->go(t->arg, t->waited);
}

/* ---- the script call ---------------------------------------------------------------------- */

/* The hosts a call carries, in the order of its sections. */
struct hosts_call {
    struct hosts *hs;
    int n;
    struct host **hosts;
    struct host_ticket *ask; /* the ticket asking (in hosts[0]), or NULL */
    char **args;             /* numbers written for the call, freed with it */
    int nargs;
};

static void hosts_call_free(struct hosts_call *c)
{
    for (int i = 0; i < c->nargs; i++)
        free(c->args[i]);
    free(c->args);
    free(c->hosts);
    free(c);
}

static void host_local(struct host *h);
static void host_pump(struct host *h);
static void hosts_on_reply(struct link *l, redisReply *r, void *arg);

static const char *hosts_num(struct hosts_call *c, const char *fmt, double v)
{
    char buf[48];
    snprintf(buf, sizeof(buf), fmt, v);
    char *s = strdup(buf);
    if (s)
        c->args[c->nargs++] = s;
    return s ? s : "0";
}

/* One call: the ask of `asker` (may be NULL) and the reports of every host that has some. The
 * reports are handed over: lost with the call if it fails (their leases lapse). 0 when sent. */
static int hosts_send(struct hosts *hs, struct host *asker, int eval)
{
    int n = 0, nrep = 0;
    for (struct host *h = hs->list; h; h = h->next) {
        int reps = 0;
        for (struct host_report *r = h->reports; r; r = r->next)
            reps++;
        if (h == asker || reps)
            n++;
        nrep += reps;
    }
    if (n == 0)
        return 0;
    struct hosts_call *c = calloc(1, sizeof(*c));
    size_t argc = 10 + (size_t)n * 13 + (size_t)nrep * 5;
    const char **argv = calloc(argc, sizeof(*argv));
    if (c == NULL || argv == NULL)
        goto err;
    c->hs = hs;
    c->hosts = calloc((size_t)n, sizeof(*c->hosts));
    c->args = calloc((size_t)(n * 6 + nrep * 3 + 4), sizeof(*c->args));
    if (c->hosts == NULL || c->args == NULL)
        goto err;
    if (asker)
        c->hosts[c->n++] = asker;
    for (struct host *h = hs->list; h; h = h->next)
        if (h != asker && h->reports)
            c->hosts[c->n++] = h;
    size_t a = 0;
    eval = eval || !hs->loaded;
    argv[a++] = eval ? "EVAL" : "EVALSHA";
    argv[a++] = eval ? ASK_LUA : hs->sha;
    argv[a++] = hosts_num(c, "%.0f", 2 + 4 * n);
    argv[a++] = hs->k_hosts;
    argv[a++] = hs->k_fleet;
    for (int i = 0; i < n; i++) {
        argv[a++] = c->hosts[i]->k_state;
        argv[a++] = c->hosts[i]->k_leases;
        argv[a++] = c->hosts[i]->k_probes;
        argv[a++] = c->hosts[i]->k_queue;
    }
    argv[a++] = hs->s->consumer;
    argv[a++] = hs->k_wake;
    double now = clock_now_ms();
    int beat = now - hs->beat_at >= HOSTS_BEAT_MS;
    if (beat)
        hs->beat_at = now;
    argv[a++] = beat ? "1" : "0";
    argv[a++] = hosts_num(c, "%.0f", n);
    for (int i = 0; i < n; i++) {
        struct host *h = c->hosts[i];
        int reps = 0;
        for (struct host_report *r = h->reports; r; r = r->next)
            reps++;
        argv[a++] = h->name;
        argv[a++] = hosts_num(c, "%.6g", h->lim->rate);
        argv[a++] = hosts_num(c, "%.0f", (double)h->lim->burst);
        argv[a++] = hosts_num(c, "%.0f", (double)h->lim->inflight);
        argv[a++] = h == asker ? asker->asking->lease : "";
        argv[a++] = h == asker && asker->asking->queued ? "1" : "0";
        argv[a++] = hosts_num(c, "%.0f", (double)hs->lease_ms);
        argv[a++] = hosts_num(c, "%.4f", hosts_jitter());
        argv[a++] = hosts_num(c, "%.0f", reps);
        for (struct host_report *r = h->reports; r; r = r->next) {
            argv[a++] = r->lease;
            argv[a++] = hosts_num(c, "%.0f", r->outcome);
            argv[a++] = hosts_num(c, "%.0f", (double)r->retry_after_ms);
            argv[a++] = hosts_num(c, "%.0f", r->ms);
            argv[a++] = r->waited ? "1" : "0";
        }
    }
    c->ask = asker ? asker->asking : NULL;
    if (link_command(hs->link, hosts_on_reply, c, (int)a, argv, NULL) < 0)
        goto err;
    hs->calls++;
    free(argv);
    for (int i = 0; i < c->n; i++) { /* told: the call owns their fate now */
        struct host *h = c->hosts[i];
        while (h->reports) {
            struct host_report *r = h->reports;
            h->reports = r->next;
            free(r);
        }
    }
    return 0;
err:
    free(argv);
    if (c)
        hosts_call_free(c);
    return -1;
}

/* The reply to one section: what Redis says of the host, and of its ask. */
static void host_answer(struct host *h, struct host_ticket *t, const redisReply *r)
{
    struct hosts *hs = h->hs;
    long long v[8] = {0};
    for (size_t i = 0; i < 8 && i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_INTEGER)
            v[i] = r->element[i]->integer;
    h->limit = (int)v[2];
    h->pause_until = clock_now_ms() + (double)v[3];
    h->circuit = (int)v[4];
    h->busy = (int)v[6];
    hs->fleet = v[5] > 0 ? (int)v[5] : 1;
    if (t == NULL)
        return;
    h->asking = NULL;
    if (t->cancelled) {
        if (v[0] == 1)
            host_report(h, t->lease, HOST_NEUTRAL, -1, 0, 0);
        free(t);
        host_kick(h);
        return;
    }
    double wait = (double)v[1];
    if (v[0] == 1) {
        host_unlink(t);
        if (wait <= 0) {
            host_grant(t);
        } else {
            t->waited = 1;
            host_waits(h);
            t->state = T_RESERVED;
            h->reserved = t;
            host_wait(h, TIMER_START, wait);
        }
        host_kick(h); /* the next one may ask now */
        return;
    }
    /* Paused, open or full: the head waits, the others behind it. Jitter spreads the fleet's
     * asks (the reservations then space their requests whatever the spread). Full, the ask is
     * queued in Redis and a slot is handed to it when one frees (hosts_on_wake): it asks again
     * only when the first lease would lapse (a killed worker's comes back by no report), or
     * after HOSTS_QUEUE_CHECK_MS in case the news was lost; unsubscribed, after the hint. */
    if (v[0] == 4) {
        t->queued = 1;
        wait = hs->subscribed ? fmin(wait, HOSTS_QUEUE_CHECK_MS) : (double)v[7];
    }
    t->state = T_WAITING;
    host_waits(h);
    host_wait(h, v[0] == 4 ? TIMER_FULL : TIMER_ASK,
              wait + fmin(wait / 4, HOSTS_SPREAD_MS) * hosts_jitter() + 1);
}

static void hosts_on_reply(struct link *l, redisReply *r, void *arg)
{
    struct hosts_call *c = arg;
    struct hosts *hs = c->hs;
    if (hs->closing) {
        if (c->ask && c->ask->cancelled)
            free(c->ask);
        hosts_call_free(c);
        return;
    }
    if (r && r->type == REDIS_REPLY_ARRAY)
        hs->loaded = 1;
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0)
        hs->loaded = 0;
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 && c->ask) {
        /* Redis lost the script (a restart): this ask goes again with it, which loads it. */
        struct host *h = c->hosts[0];
        struct host_ticket *t = c->ask;
        hosts_call_free(c);
        if (hosts_send(hs, h, 1) < 0) {
            h->asking = NULL;
            t->state = T_WAITING;
            if (t->cancelled)
                free(t);
            else
                host_local(h);
        }
        return;
    }
    int ok = r && r->type == REDIS_REPLY_ARRAY && (int)r->elements == c->n;
    if (!ok && r)
        log_warn("event=hosts_ask_failed error=\"%s\"", reply_error(r));
    for (int i = 0; i < c->n; i++) {
        struct host *h = c->hosts[i];
        struct host_ticket *t = i == 0 ? c->ask : NULL;
        if (ok && r->element[i]->type == REDIS_REPLY_ARRAY) {
            host_answer(h, t, r->element[i]);
            continue;
        }
        if (t == NULL)
            continue;
        h->asking = NULL; /* no answer: this one is decided here, alone */
        t->state = T_WAITING;
        if (t->cancelled) {
            free(t);
            continue;
        }
        host_local(h);
    }
    hosts_call_free(c);
}

/* ---- deciding ------------------------------------------------------------------------------ */

/* Alone: the worker's share of the host's limits, the pause it heard of. */
static void host_local(struct host *h)
{
    struct hosts *hs = h->hs;
    struct host_ticket *t = h->head;
    if (t == NULL || h->reserved || evtimer_pending(h->timer, NULL))
        return;
    double now = clock_now_ms(), share = hs->fleet > 0 ? hs->fleet : 1;
    if (now < h->pause_until) {
        host_waits(h);
        host_wait(h, TIMER_ASK, h->pause_until - now);
        return;
    }
    long inflight = (long)ceil((double)h->lim->inflight / share);
    if (h->mine >= inflight) {
        host_waits(h);
        host_wait(h, TIMER_FULL, HOSTS_LOCAL_FULL_MS);
        return;
    }
    double T = 1000.0 / (h->lim->rate / share);
    double burst = ceil((double)h->lim->burst / share);
    double tau = (burst - 1) * T;
    double start = fmax(now, fmax(h->tat, now) - tau);
    h->tat = fmax(h->tat, now) + T;
    host_unlink(t);
    t->local = 1;
    if (start - now < 1) {
        host_grant(t);
        host_kick(h);
        return;
    }
    t->waited = 1;
    host_waits(h);
    t->state = T_RESERVED;
    h->reserved = t;
    host_wait(h, TIMER_START, start - now);
}

/* The head of the waiting list asks, unless something is already in the way. */
static void host_pump(struct host *h)
{
    struct hosts *hs = h->hs;
    struct host_ticket *t = h->head;
    if (t == NULL || h->asking || h->reserved || evtimer_pending(h->timer, NULL))
        return;
    if (t->parked) { /* back to work: the worker must have room for it */
        if (hs->room && hs->room(hs->room_arg) <= 0) {
            h->starved = 1;
            return;
        }
        ticket_park(t, 0);
    }
    if (!link_up(hs->link)) {
        host_local(h);
        return;
    }
    if (t->lease[0] == '\0') /* kept across asks: its place in the host's queue */
        snprintf(t->lease, sizeof(t->lease), "%s:%lld", hs->s->consumer, ++hs->serial);
    t->state = T_ASKING;
    h->asking = t;
    if (hosts_send(hs, h, 0) < 0) {
        h->asking = NULL;
        t->state = T_WAITING;
        host_local(h);
    }
}

static void host_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct host *h = arg;
    enum host_timer kind = h->timer_kind;
    h->timer_kind = TIMER_NONE;
    if (kind == TIMER_START && h->reserved) {
        struct host_ticket *t = h->reserved;
        h->reserved = NULL;
        host_grant(t);
    }
    host_pump(h);
}

static void host_on_kick(evutil_socket_t fd, short what, void *arg)
{
    host_pump(arg);
}

static void hosts_on_flush(evutil_socket_t fd, short what, void *arg)
{
    struct hosts *hs = arg;
    if (!link_up(hs->link)) {
        for (struct host *h = hs->list; h; h = h->next)
            while (h->reports) { /* nowhere to tell: their leases lapse by themselves */
                struct host_report *r = h->reports;
                h->reports = r->next;
                free(r);
            }
        return;
    }
    hosts_send(hs, NULL, 0);
}

/* A slot handed to one of our queued asks: "HOST LEASE WAIT_MS" (the script's PUBLISH). */
static void hosts_wake(struct hosts *hs, const char *msg)
{
    char buf[URL_HOST_MAX + HOSTS_LEASE_MAX + 32], *save = NULL;
    snprintf(buf, sizeof(buf), "%s", msg);
    const char *name = strtok_r(buf, " ", &save), *lease = strtok_r(NULL, " ", &save);
    const char *ms = strtok_r(NULL, " ", &save);
    struct host *h = name && lease && ms ? host_find(hs, name) : NULL;
    if (h == NULL)
        return; /* not a host of ours: its lease lapses by itself */
    if (h->asking && strcmp(h->asking->lease, lease) == 0)
        return; /* it is asking again: the reply says it holds the slot */
    struct host_ticket *t = h->head;
    if (t == NULL || t->state != T_WAITING || strcmp(t->lease, lease) != 0 || h->reserved) {
        host_report(h, lease, HOST_NEUTRAL, -1, 0, 0); /* no longer wanted: back to the fleet */
        return;
    }
    evtimer_del(h->timer);
    h->timer_kind = TIMER_NONE;
    if (t->parked && hs->room && hs->room(hs->room_arg) <= 0) {
        /* no room for it: the slot goes to the next in the queue; this one asks anew later */
        host_report(h, lease, HOST_NEUTRAL, -1, 0, 0);
        t->lease[0] = '\0';
        t->queued = 0;
        h->starved = 1;
        return;
    }
    double wait = atof(ms);
    host_unlink(t);
    if (wait <= 0) {
        host_grant(t);
    } else {
        t->state = T_RESERVED;
        h->reserved = t;
        host_wait(h, TIMER_START, wait);
    }
    host_kick(h);
}

static void hosts_on_wake(struct link *l, redisReply *r, void *arg)
{
    struct hosts *hs = arg;
    if (r == NULL) {
        hs->subscribed = 0;
        return;
    }
    if (hs->closing || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(r->element[0]->str, "subscribe") == 0) {
        /* told from now on: whatever waits on a full host asks once more, in case a slot was
         * handed to it while nobody listened */
        hs->subscribed = 1;
        for (struct host *h = hs->list; h; h = h->next)
            if (h->timer_kind == TIMER_FULL) {
                evtimer_del(h->timer);
                h->timer_kind = TIMER_NONE;
                host_kick(h);
            }
        return;
    }
    if (strcmp(r->element[0]->str, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING)
        hosts_wake(hs, r->element[2]->str);
}

static void hosts_on_wake_link(struct link *l, int up, void *arg)
{
    struct hosts *hs = arg;
    hs->subscribed = 0;
    if (!up)
        return;
    char channel[SET_KEY_MAX + 256];
    snprintf(channel, sizeof(channel), "%s%s", hs->k_wake, hs->s->consumer);
    if (link_subscribe(l, channel, hosts_on_wake, hs) < 0)
        log_warn("event=hosts_subscribe_failed channel=%s", channel);
}

static void hosts_on_link(struct link *l, int up, void *arg)
{
    struct hosts *hs = arg;
    hs->loaded = 0; /* it may be a new Redis: the first call sends the script itself */
    if (!up)
        return;
    for (struct host *h = hs->list; h; h = h->next)
        host_kick(h);
}

/* ---- the interface ---------------------------------------------------------------------- */

/* The host of an absolute http(s) URL, lowercase, without port. -1 when there is none. */
static int hosts_name(const char *url, char *out, size_t outlen)
{
    const char *p = strstr(url, "://");
    if (p == NULL)
        return -1;
    p += 3;
    size_t len = strcspn(p, ":/?#");
    if (len == 0 || len >= outlen || memchr(p, '@', len))
        return -1;
    for (size_t i = 0; i < len; i++)
        out[i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] - 'A' + 'a' : p[i]);
    out[len] = '\0';
    return 0;
}

struct host_ticket *hosts_ask(struct hosts *hs, const char *url, hosts_go_fn *go, void *arg)
{
    char name[URL_HOST_MAX + 1];
    if (hosts_name(url, name, sizeof(name)) < 0)
        return NULL;
    struct host *h = host_get(hs, name);
    struct host_ticket *t = h ? calloc(1, sizeof(*t)) : NULL;
    if (t == NULL)
        return NULL;
    t->h = h;
    t->go = go;
    t->arg = arg;
    t->state = T_WAITING;
    /* Joining a queue its host already holds (paused, full, or the head reserved for later): it
     * waits too, though host_waits marked only the tickets there before it. */
    t->waited = h->reserved != NULL || h->timer_kind != TIMER_NONE;
    t->prev = h->tail;
    if (h->tail)
        h->tail->next = t;
    else
        h->head = t;
    h->tail = t;
    h->nwaiting++;
    hs->waiting++;
    if (t->waited)
        ticket_park(t, 1);
    host_kick(h);
    return t;
}

void hosts_done(struct host_ticket *t, enum host_outcome o, long retry_after_ms, double ms)
{
    struct host *h = t->h;
    h->mine--;
    if (o == HOST_BUSY || o == HOST_DOWN) {
        /* This worker pauses at once, and alone if Redis is away. */
        long p = retry_after_ms >= 0 ? retry_after_ms : HOSTS_PAUSE_BASE_MS;
        p = p < HOSTS_PAUSE_MIN_MS   ? HOSTS_PAUSE_MIN_MS
            : p > HOSTS_PAUSE_MAX_MS ? HOSTS_PAUSE_MAX_MS
                                     : p;
        double until = clock_now_ms() + (double)p;
        if (until > h->pause_until)
            h->pause_until = until;
    }
    if (!t->local)
        host_report(h, t->lease, o, retry_after_ms, ms, t->waited);
    free(t);
    /* A slot of ours came free: ask now, unless a freed slot is handed to the queue anyway. */
    if (h->timer_kind == TIMER_FULL && !(h->hs->subscribed && link_up(h->hs->link))) {
        evtimer_del(h->timer);
        h->timer_kind = TIMER_NONE;
    }
    host_kick(h);
}

void hosts_drop(struct host_ticket *t)
{
    struct host *h = t->h;
    switch (t->state) {
    case T_WAITING:
        host_unlink(t);
        if (t->queued) /* it may be in the host's queue, or even handed a slot: give it back */
            host_report(h, t->lease, HOST_NEUTRAL, -1, 0, 0);
        free(t);
        return;
    case T_ASKING:
        host_unlink(t);
        t->cancelled = 1; /* the reply frees it */
        return;
    case T_RESERVED:
        h->reserved = NULL;
        evtimer_del(h->timer);
        h->timer_kind = TIMER_NONE;
        if (!t->local)
            host_report(h, t->lease, HOST_NEUTRAL, -1, 0, t->waited);
        free(t);
        host_kick(h);
        return;
    case T_GRANTED:
        hosts_done(t, HOST_NEUTRAL, -1, 0);
        return;
    }
}

static void *hosts_gate_ask(void *ctx, const char *url, void (*go)(void *f, int waited), void *f)
{
    return hosts_ask(ctx, url, go, f);
}

static void hosts_gate_done(void *ticket, enum fetch_hop_end end, long http_code,
                            long retry_after_ms, double ms)
{
    enum host_outcome o = HOST_NEUTRAL;
    if (end == FETCH_HOP_TIMEOUT)
        o = HOST_SLOW;
    else if (end == FETCH_HOP_FAILED)
        o = HOST_FAILED;
    else if (end == FETCH_HOP_ANSWERED)
        o = http_code == 429   ? HOST_BUSY
            : http_code == 503 ? HOST_DOWN
            : http_code >= 500 ? HOST_FAILED
                               : HOST_OK;
    hosts_done(ticket, o, o == HOST_BUSY || o == HOST_DOWN ? retry_after_ms : -1, ms);
}

static void hosts_gate_drop(void *ticket)
{
    hosts_drop(ticket);
}

void hosts_gate(struct hosts *hs, struct fetch_gate *g)
{
    g->ask = hosts_gate_ask;
    g->done = hosts_gate_done;
    g->drop = hosts_gate_drop;
    g->ctx = hs;
}

int hosts_waiting(const struct hosts *hs)
{
    return hs->waiting;
}

void hosts_room(struct hosts *hs, int (*room)(void *arg), void *arg)
{
    hs->room = room;
    hs->room_arg = arg;
}

int hosts_parked(const struct hosts *hs)
{
    return hs ? hs->parked : 0;
}

void hosts_resume(struct hosts *hs)
{
    if (hs == NULL)
        return;
    for (struct host *h = hs->list; h; h = h->next) {
        if (!h->starved)
            continue;
        if (hs->room && hs->room(hs->room_arg) <= 0)
            return;
        h->starved = 0;
        if (h->head) /* its room is taken now; it asks on the next loop turn */
            ticket_park(h->head, 0);
        host_kick(h);
    }
}

void hosts_each(const struct hosts *hs, void (*fn)(void *arg, const struct host_view *v), void *arg)
{
    double now = clock_now_ms();
    for (const struct host *h = hs->list; h; h = h->next) {
        struct host_view v = {
            .host = h->name,
            .waits = h->waits,
            .requests = h->requests,
            .waiting = h->nwaiting + (h->reserved != NULL),
            .mine = h->mine,
            .limit = h->limit,
            .rate = h->lim->rate,
            .pause_ms = h->pause_until > now ? (long)(h->pause_until - now) : 0,
            .circuit = h->circuit,
            .local = !link_up(hs->link),
        };
        fn(arg, &v);
    }
}

void hosts_calls(const struct hosts *hs, long long *calls, long long *requests)
{
    *calls = hs->calls;
    *requests = hs->requests;
}

/* Host names come from checked URLs ([a-z0-9.-]): labels need no escaping. */
void hosts_metrics(const struct hosts *hs, struct evbuffer *out)
{
    if (hs == NULL) /* PIXFLOW_HOST_LIMITS=off */
        return;
    static const struct {
        const char *name, *type, *help;
    } families[] = {
        {"pixflow_host_requests_total", "counter", "Requests this worker sent the host."},
        {"pixflow_host_waits_total", "counter",
         "Requests that waited for the host's rate, slots, pause or circuit."},
        {"pixflow_host_waiting", "gauge", "Requests waiting for the host now."},
        {"pixflow_host_in_flight", "gauge", "This worker's requests to the host in flight."},
        {"pixflow_host_concurrency", "gauge",
         "Requests at once the fleet may send the host now (adaptive, at most its inflight)."},
        {"pixflow_host_rate", "gauge", "Requests a second the fleet may send the host."},
        {"pixflow_host_pause_seconds", "gauge", "Left of the host's pause (429/503)."},
        {"pixflow_host_circuit", "gauge", "The host's circuit: 0 closed, 1 open, 2 half-open."},
    };
    for (size_t f = 0; f < sizeof(families) / sizeof(*families); f++) {
        evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", families[f].name, families[f].help,
                            families[f].name, families[f].type);
        double now = clock_now_ms();
        for (const struct host *h = hs->list; h; h = h->next) {
            double v[] = {(double)h->requests,
                          (double)h->waits,
                          h->nwaiting + (h->reserved != NULL),
                          h->mine,
                          h->limit,
                          h->lim->rate,
                          h->pause_until > now ? (h->pause_until - now) / 1000 : 0,
                          h->circuit};
            evbuffer_add_printf(out, "%s{host=\"%s\"} %.17g\n", families[f].name, h->name, v[f]);
        }
    }
    evbuffer_add_printf(out,
                        "# HELP pixflow_host_alone 1 while Redis is unreachable: each host gets "
                        "this worker's share of its limits.\n# TYPE pixflow_host_alone gauge\n"
                        "pixflow_host_alone %d\n"
                        "# HELP pixflow_host_calls_total Politeness script calls sent to Redis.\n"
                        "# TYPE pixflow_host_calls_total counter\npixflow_host_calls_total %lld\n",
                        !link_up(hs->link), hs->calls);
}

struct hosts *hosts_new(struct event_base *base, const struct settings *s, long fetch_timeout_ms,
                        long redis_timeout_ms, char *err, size_t errlen)
{
    struct hosts *hs = calloc(1, sizeof(*hs));
    if (hs == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    hs->base = base;
    hs->s = s;
    hs->lease_ms = fetch_timeout_ms + HOSTS_LEASE_MARGIN_MS;
    hs->fleet = 1;
    settings_key(s, KEY_HOSTS, hs->k_hosts, sizeof(hs->k_hosts));
    settings_key(s, KEY_HOSTS_FLEET, hs->k_fleet, sizeof(hs->k_fleet));
    settings_key(s, KEY_HOSTS_WAKE, hs->k_wake, sizeof(hs->k_wake));
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)ASK_LUA, strlen(ASK_LUA), md);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(hs->sha + 2 * i, 3, "%02x", md[i]);
    hs->flush = evtimer_new(base, hosts_on_flush, hs);
    long timeout =
        redis_timeout_ms < HOSTS_ASK_TIMEOUT_MS ? redis_timeout_ms : HOSTS_ASK_TIMEOUT_MS;
    hs->link = link_new(base, &s->redis, "politeness", timeout, hosts_on_link, hs);
    hs->wake = link_new(base, &s->redis, "politeness-wake", timeout, hosts_on_wake_link, hs);
    if (hs->flush == NULL || hs->link == NULL || hs->wake == NULL) {
        snprintf(err, errlen, "out of memory");
        hosts_free(hs);
        return NULL;
    }
    return hs;
}

void hosts_free(struct hosts *hs)
{
    if (hs == NULL)
        return;
    hs->closing = 1;
    link_free(hs->link); /* replies still out come back NULL: their tickets are freed there */
    link_free(hs->wake);
    for (struct host *h = hs->list, *next; h; h = next) {
        next = h->next;
        while (h->head) {
            struct host_ticket *t = h->head;
            host_unlink(t);
            free(t);
        }
        free(h->reserved);
        while (h->reports) {
            struct host_report *r = h->reports;
            h->reports = r->next;
            free(r);
        }
        event_free(h->timer);
        event_free(h->kick);
        free(h);
    }
    if (hs->flush)
        event_free(hs->flush);
    free(hs);
}
