/* stream.c -- the Redis side of the worker: reads, reclaims, dedup, acks, trims, heartbeats.
 *
 * Every decision that must not be split by a crash is one Lua script, so Redis runs it whole or
 * not at all:
 *  - ACCEPT: SADD the URL; on a duplicate, XACK and count it in the same step.
 *  - FINISH: for each entry XACK it, and only when that XACK removed it from the pending list,
 *    add its counters (outcome and events alike) and write its dead letter. A redelivered entry
 *    that another worker already acked, or a batch given again after its reply was lost, is
 *    therefore never counted twice, and the counters reconcile at rest (SPEC §7).
 *  - LEASE: XCLAIM ... JUSTID of the ids we hold that are still pending under our name: their
 *    idle time starts again, their delivery count stays, so XAUTOCLAIM (min-idle) only ever takes
 *    entries of a worker that stopped beating. The same script hands entries back at a stop: it
 *    sets their idle time past min-idle, so the next XAUTOCLAIM of any worker takes them.
 *  - OWN, RECLAIM: our own pending entries (after a restart under the same name), or XAUTOCLAIM
 *    of a silent worker's, each with its delivery count (for the poison-pill rule) and whether
 *    an earlier delivery began to store it (the `storing` hash, written by stream_mark before
 *    the first MongoDB write of an entry and cleared by FINISH): only those can have left an
 *    image behind, and only those make the store look for one.
 *  - TRIM: XTRIM MINID below the oldest entry any group has pending or not yet read.
 *  - GROUP: our group's backlog and pending count (lib/backlog.h), for /metrics and
 *    --exit-when-idle. */
#include "stream.h"
#include "backlog.h"
#include "link.h"
#include "log.h"
#include "names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char ACCEPT_LUA[] = "if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then return 1 end\n"
                                 "if redis.call('XACK', KEYS[2], ARGV[2], ARGV[3]) == 1 then\n"
                                 "  redis.call('HINCRBY', KEYS[3], '" C_RECEIVED "', 1)\n"
                                 "  redis.call('HINCRBY', KEYS[3], '" C_DUPLICATES "', 1)\n"
                                 "end\n"
                                 "return 0\n";

/* ARGV: group, n, then per entry: id, nc, nc pairs (counter, delta), nf, nf dead-letter fields,
 * the member of KEYS[5] to remove ("" none). The counters of the entries acked here are summed
 * first, then added with one HINCRBY each: a batch touches a few counters many times. */
static const char FINISH_LUA[] =
    "local i, acked, sum, names, done = 3, 0, {}, {}, {}\n"
    "for e = 1, tonumber(ARGV[2]) do\n"
    "  local mine = redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) == 1\n"
    "  local nc = tonumber(ARGV[i + 1])\n"
    "  if mine then done[#done + 1] = ARGV[i] end\n"
    "  i = i + 2\n"
    "  if mine then\n"
    "    acked = acked + 1\n"
    "    for k = i, i + 2 * nc - 1, 2 do\n"
    "      local c = ARGV[k]\n"
    "      if sum[c] == nil then sum[c] = 0; names[#names + 1] = c end\n"
    "      sum[c] = sum[c] + tonumber(ARGV[k + 1])\n"
    "    end\n"
    "  end\n"
    "  i = i + 2 * nc\n"
    "  local nf = tonumber(ARGV[i])\n"
    "  i = i + 1\n"
    "  if mine and nf > 0 then redis.call('XADD', KEYS[3], '*', unpack(ARGV, i, i + nf - 1)) end\n"
    "  i = i + nf\n"
    "  if mine and ARGV[i] ~= '' then redis.call('SREM', KEYS[5], ARGV[i]) end\n"
    "  i = i + 1\n"
    "end\n"
    "for j = 1, #done, 1000 do\n" /* unpack's bound */
    "  redis.call('HDEL', KEYS[4], unpack(done, j, math.min(j + 999, #done)))\n"
    "end\n"
    /* %.0f: an integer as HINCRBY reads it, exact below 2^53 (tostring would give 1e+15) */
    "for _, c in ipairs(names) do\n"
    "  redis.call('HINCRBY', KEYS[2], c, string.format('%.0f', sum[c]))\n"
    "end\n"
    "return acked\n";

/* ARGV: group, consumer, idle (ms), ids. Returns the ids that are not pending under that
 * consumer. */
static const char LEASE_LUA[] =
    "local lost, claim = {}, {'XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0}\n"
    "for i = 4, #ARGV do\n"
    "  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)\n"
    "  if p[1] and p[1][2] == ARGV[2] then claim[#claim + 1] = ARGV[i]\n"
    "  else lost[#lost + 1] = ARGV[i] end\n"
    "end\n"
    "if #claim > 5 then\n"
    "  claim[#claim + 1] = 'IDLE'\n"
    "  claim[#claim + 1] = ARGV[3]\n"
    "  claim[#claim + 1] = 'JUSTID'\n"
    "  redis.call(unpack(claim))\n"
    "end\n"
    "return lost\n";

/* The idle time of an entry handed back: a day and a second, --reclaim-idle's limit. */
#define STREAM_HAND_BACK_IDLE_MS 86401000L

/* Ids per LEASE call: Lua's unpack has a limit, and one call should stay short. */
#define STREAM_LEASE_BATCH 500

/* Shared head of OWN and RECLAIM: {id, fields, deliveries, storing (0 or 1)}. */
static const char COUNTS_LUA[] =
    "local function with_counts(key, group, entries)\n"
    "  local out = {}\n"
    "  for i, e in ipairs(entries) do\n"
    "    local p = redis.call('XPENDING', key, group, e[1], e[1], 1)\n"
    "    out[i] = {e[1], e[2], p[1] and p[1][4] or 1, redis.call('HEXISTS', KEYS[2], e[1])}\n"
    "  end\n"
    "  return out\n"
    "end\n";

static const char OWN_LUA[] =
    "local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS',"
    " KEYS[1], ARGV[4])\n"
    "if not r or not r[1] then return {} end\n"
    "return with_counts(KEYS[1], ARGV[1], r[1][2])\n";

static const char RECLAIM_LUA[] =
    "local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT',"
    " ARGV[5])\n"
    "return {r[1], with_counts(KEYS[1], ARGV[1], r[2])}\n";

static const char TRIM_LUA[] =
    "local function before(a, b)\n"
    "  local am, as = string.match(a, '(%d+)-(%d+)')\n"
    "  local bm, bs = string.match(b, '(%d+)-(%d+)')\n"
    "  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)\n"
    "  return am < bm or (am == bm and as < bs)\n"
    "end\n"
    "local minid\n"
    "for _, g in ipairs(groups(KEYS[1])) do\n"
    "  local id = g['last-delivered-id']\n"
    "  if g['pending'] > 0 then id = redis.call('XPENDING', KEYS[1], g['name'])[2] end\n"
    "  if not minid or before(id, minid) then minid = id end\n"
    "end\n"
    "if not minid then return 0 end\n"
    "return redis.call('XTRIM', KEYS[1], 'MINID', minid)\n";

struct stream {
    const struct settings *s;
    struct stream_options o;
    struct stream_hooks hooks;
    void *arg;
    struct link *reader, *cmd;
    int group_ready, creating, reading, reclaiming, flushing, trimming;
    int handing_back; /* replies of stream_hand_back still to come */
    int own_done;     /* finished re-reading our own pending list */
    char own_cursor[STREAM_ID_MAX], reclaim_cursor[STREAM_ID_MAX];
    char k_stream[SET_KEY_MAX], k_seen[SET_KEY_MAX], k_stats[SET_KEY_MAX], k_dead[SET_KEY_MAX];
    char k_worker[SET_KEY_MAX], k_storing[SET_KEY_MAX], k_release[SET_KEY_MAX];
    char *trim_script, *own_script, *reclaim_script;
    int group_checking;
    char started_at[32];
};

static void stream_create_group(struct stream *st);

static void stream_on_created(struct link *l, redisReply *r, void *arg)
{
    struct stream *st = arg;
    st->creating = 0;
    if (r && (r->type != REDIS_REPLY_ERROR || strncmp(r->str, "BUSYGROUP", 9) == 0)) {
        if (!st->group_ready)
            log_info("event=group_ready stream=%s group=%s consumer=%s", st->k_stream, st->s->group,
                     st->s->consumer);
        st->group_ready = 1;
        return;
    }
    if (r)
        log_error("event=group_create_failed stream=%s error=\"%s\"", st->k_stream, r->str);
}

/* Starts from the first entry ("0"): URLs queued before any worker existed are work too. */
static void stream_create_group(struct stream *st)
{
    if (st->creating || !link_up(st->cmd))
        return;
    const char *argv[] = {"XGROUP", "CREATE", st->k_stream, st->s->group, "0", "MKSTREAM"};
    if (link_command(st->cmd, stream_on_created, st, 6, argv, NULL) == 0)
        st->creating = 1;
}

static void stream_on_link(struct link *l, int up, void *arg)
{
    struct stream *st = arg;
    if (l != st->cmd)
        return;
    if (up)
        stream_create_group(st);
    else
        st->group_ready = 0; /* it may be a new, empty Redis when it comes back */
    if (st->hooks.link)
        st->hooks.link(st->arg, up);
}

/* Hands each [id, fields] of an array to hooks->entry. */
static const char *stream_deliver(struct stream *st, const redisReply *list, int redelivered,
                                  const redisReply *counts_from)
{
    const char *last = NULL;
    for (size_t i = 0; i < list->elements; i++) {
        const redisReply *e = list->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
            e->element[0]->type != REDIS_REPLY_STRING)
            continue;
        const char *id = e->element[0]->str;
        const redisReply *f = e->element[1];
        long long deliveries = 1;
        int storing = redelivered; /* unknown: as if it had */
        if (counts_from && e->elements >= 3 && e->element[2]->type == REDIS_REPLY_INTEGER)
            deliveries = e->element[2]->integer;
        if (counts_from && e->elements >= 4 && e->element[3]->type == REDIS_REPLY_INTEGER)
            storing = e->element[3]->integer != 0;
        last = id;
        struct stream_delivery d = {redelivered, deliveries, storing};
        if (f->type != REDIS_REPLY_ARRAY) {
            /* Deleted from the stream while pending: nothing to do but let it go. */
            st->hooks.entry(st->arg, id, NULL, 0, &d);
            continue;
        }
        st->hooks.entry(st->arg, id, (void *const *)f->element, f->elements, &d);
    }
    return last;
}

/* A failed read: a NOGROUP means Redis lost the group (a new, empty server): make it again. */
static int stream_read_failed(struct stream *st, const redisReply *r)
{
    if (r == NULL)
        return 1;
    if (r->type != REDIS_REPLY_ERROR)
        return 0;
    log_warn("event=read_failed stream=%s error=\"%s\"", st->k_stream, r->str);
    if (strncmp(r->str, "NOGROUP", 7) == 0) {
        st->group_ready = 0;
        stream_create_group(st);
    }
    return 1;
}

static void stream_on_read(struct link *l, redisReply *r, void *arg)
{
    struct stream *st = arg;
    st->reading = 0;
    if (stream_read_failed(st, r))
        return;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 && r->element[0]->elements >= 2 &&
        r->element[0]->element[1]->type == REDIS_REPLY_ARRAY)
        stream_deliver(st, r->element[0]->element[1], 0, NULL);
}

static void stream_on_own(struct link *l, redisReply *r, void *arg)
{
    struct stream *st = arg;
    st->reading = 0;
    if (stream_read_failed(st, r))
        return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        st->own_done = 1; /* our pending list is empty: on to new entries */
        return;
    }
    const char *last = stream_deliver(st, r, 1, r);
    if (last)
        snprintf(st->own_cursor, sizeof(st->own_cursor), "%s", last);
}

int stream_ready(const struct stream *st)
{
    return st->group_ready && link_up(st->reader) && link_up(st->cmd);
}

void stream_read(struct stream *st, int slots)
{
    if (st->reading || slots <= 0 || !stream_ready(st))
        return;
    char count[24], block[24];
    snprintf(count, sizeof(count), "%d", slots);
    snprintf(block, sizeof(block), "%ld", st->o.block_ms);
    int rc;
    if (!st->own_done) {
        const char *argv[] = {"EVAL",       st->own_script,  "2",   st->k_stream,  st->k_storing,
                              st->s->group, st->s->consumer, count, st->own_cursor};
        rc = link_command(st->cmd, stream_on_own, st, 9, argv, NULL);
    } else {
        const char *argv[] = {"XREADGROUP", "GROUP", st->s->group, st->s->consumer, "COUNT", count,
                              "BLOCK",      block,   "STREAMS",    st->k_stream,    ">"};
        rc = link_command(st->reader, stream_on_read, st, 11, argv, NULL);
    }
    if (rc == 0)
        st->reading = 1;
}

static void stream_on_reclaim(struct link *l, redisReply *r, void *arg)
{
    struct stream *st = arg;
    st->reclaiming = 0;
    if (r == NULL)
        return;
    if (r->type == REDIS_REPLY_ERROR || r->elements < 2) {
        log_warn("event=reclaim_failed stream=%s error=\"%s\"", st->k_stream, reply_error(r));
        return;
    }
    if (r->element[0]->type == REDIS_REPLY_STRING)
        snprintf(st->reclaim_cursor, sizeof(st->reclaim_cursor), "%s", r->element[0]->str);
    const redisReply *claimed = r->element[1];
    if (claimed->type == REDIS_REPLY_ARRAY && claimed->elements > 0) {
        log_info("event=reclaimed stream=%s count=%zu", st->k_stream, claimed->elements);
        stream_deliver(st, claimed, 1, claimed);
    }
}

void stream_reclaim(struct stream *st, int slots)
{
    /* Not while our own pending list is being re-read: an entry claimed into it meanwhile would
     * be read there again, one loss counted as two deliveries. */
    if (st->reclaiming || slots <= 0 || !st->own_done || !stream_ready(st))
        return;
    char idle[24], count[24];
    snprintf(idle, sizeof(idle), "%ld", st->o.reclaim_idle_ms);
    snprintf(count, sizeof(count), "%d", slots > 100 ? 100 : slots);
    const char *argv[] = {"EVAL",       st->reclaim_script, "2",  st->k_stream,       st->k_storing,
                          st->s->group, st->s->consumer,    idle, st->reclaim_cursor, count};
    if (link_command(st->cmd, stream_on_reclaim, st, 10, argv, NULL) == 0)
        st->reclaiming = 1;
}

struct stream_call {
    struct stream *st;
    void *token;
};

static void stream_on_accept(struct link *l, redisReply *r, void *arg)
{
    struct stream_call *c = arg;
    int verdict = -1;
    if (r && r->type == REDIS_REPLY_INTEGER)
        verdict = r->integer == 1;
    else if (r)
        log_warn("event=accept_failed error=\"%s\"", reply_error(r));
    c->st->hooks.accepted(c->st->arg, c->token, verdict);
    free(c);
}

static void stream_on_mark(struct link *l, redisReply *r, void *arg)
{
    struct stream_call *c = arg;
    int ok = r && r->type == REDIS_REPLY_INTEGER;
    if (r && !ok)
        log_warn("event=mark_failed error=\"%s\"", reply_error(r));
    c->st->hooks.marked(c->st->arg, c->token, ok);
    free(c);
}

/* Send a command whose reply goes back to the entry `token`, through fn. -1 when unsent. */
static int stream_call_send(struct stream *st, void *token, link_reply_fn *fn, int argc,
                            const char **argv)
{
    struct stream_call *c = malloc(sizeof(*c));
    if (c == NULL)
        return -1;
    *c = (struct stream_call){st, token};
    if (link_command(st->cmd, fn, c, argc, argv, NULL) < 0) {
        free(c);
        return -1;
    }
    return 0;
}

int stream_mark(struct stream *st, const char *id, void *token)
{
    const char *argv[] = {"HSET", st->k_storing, id, st->s->consumer};
    return stream_call_send(st, token, stream_on_mark, 4, argv);
}

int stream_accept(struct stream *st, const char *id, const char *url, void *token)
{
    const char *argv[] = {"EVAL",      ACCEPT_LUA, "3",          st->k_seen, st->k_stream,
                          st->k_stats, url,        st->s->group, id};
    return stream_call_send(st, token, stream_on_accept, 9, argv);
}

static void stream_on_flush(struct link *l, redisReply *r, void *arg)
{
    struct stream *st = arg;
    st->flushing = 0;
    if (r && r->type == REDIS_REPLY_INTEGER) {
        st->hooks.flushed(st->arg, 1, r->integer);
        return;
    }
    log_warn("event=ack_failed error=\"%s\"", reply_error(r));
    st->hooks.flushed(st->arg, 0, 0);
}

int stream_flushing(const struct stream *st)
{
    return st->flushing;
}

int stream_flush(struct stream *st, const struct outcome *const *out, int n)
{
    if (st->flushing || !link_up(st->cmd))
        return -1;
    size_t argc = 10, nnums = 1; /* EVAL script 5 keys... group n */
    for (int i = 0; i < n; i++) {
        size_t nc = (size_t)counters_count(out[i]->counters);
        argc += 4 + 2 * nc + (size_t)out[i]->nfields;
        nnums += 2 + nc;
    }
    const char **argv = calloc(argc, sizeof(*argv));
    size_t *lens = calloc(argc, sizeof(*lens));
    /* numbers: n, then per entry its counter count, each delta and its field count */
    char(*nums)[24] = calloc(nnums, sizeof(*nums));
    if (argv == NULL || lens == NULL || nums == NULL) {
        free(argv), free(lens), free(nums);
        return -1;
    }
    size_t a = 0;
    int k = 0;
#define ARG(s)      (argv[a] = (s), lens[a] = strlen(argv[a]), a++)
#define NUM(fmt, v) (snprintf(nums[k], sizeof(nums[k]), fmt, v), ARG(nums[k++]))
    ARG("EVAL");
    ARG(FINISH_LUA);
    ARG("5");
    ARG(st->k_stream);
    ARG(st->k_stats);
    ARG(st->k_dead);
    ARG(st->k_storing);
    ARG(st->k_release);
    ARG(st->s->group);
    NUM("%d", n);
    for (int i = 0; i < n; i++) {
        const struct outcome *o = out[i];
        int nc = counters_count(o->counters);
        ARG(o->id);
        NUM("%d", nc);
        for (int c = 0; c < nc; c++) {
            ARG(counters_name(o->counters, c));
            NUM("%lld", counters_value(o->counters, c));
        }
        NUM("%d", o->nfields);
        for (int f = 0; f < o->nfields; f++) {
            argv[a] = o->fields[f];
            lens[a++] = o->lens[f];
        }
        ARG(o->release ? o->release : "");
    }
#undef ARG
#undef NUM
    int rc = link_command(st->cmd, stream_on_flush, st, (int)a, argv, lens);
    free(argv), free(lens), free(nums);
    if (rc == 0)
        st->flushing = 1;
    return rc;
}

static void stream_on_lease(struct link *l, redisReply *r, void *arg)
{
    struct stream *st = arg;
    if (r == NULL)
        return; /* the link went down: the next lease goes out when it is back */
    if (r->type != REDIS_REPLY_ARRAY) {
        log_warn("event=lease_failed stream=%s error=\"%s\"", st->k_stream, reply_error(r));
        return;
    }
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING && st->hooks.lost)
            st->hooks.lost(st->arg, r->element[i]->str);
}

static void stream_on_hand_back(struct link *l, redisReply *r, void *arg)
{
    struct stream *st = arg;
    st->handing_back--;
    if (r && r->type != REDIS_REPLY_ARRAY)
        log_warn("event=hand_back_failed stream=%s error=\"%s\"", st->k_stream, reply_error(r));
}

/* LEASE_LUA over ids in batches; idle_ms is the idle time they are left with. Returns the number
 * of commands sent. */
static int stream_claim_own(struct stream *st, const char *const *ids, int n, long idle_ms,
                            link_reply_fn *fn)
{
    if (n <= 0 || !link_up(st->cmd))
        return 0;
    int chunk = n < STREAM_LEASE_BATCH ? n : STREAM_LEASE_BATCH, sent = 0;
    const char **argv = calloc((size_t)chunk + 7, sizeof(*argv));
    if (argv == NULL)
        return 0;
    char idle[24];
    snprintf(idle, sizeof(idle), "%ld", idle_ms);
    for (int from = 0; from < n; from += chunk) {
        int k = n - from < chunk ? n - from : chunk, a = 0;
        argv[a++] = "EVAL";
        argv[a++] = LEASE_LUA;
        argv[a++] = "1";
        argv[a++] = st->k_stream;
        argv[a++] = st->s->group;
        argv[a++] = st->s->consumer;
        argv[a++] = idle;
        for (int i = 0; i < k; i++)
            argv[a++] = ids[from + i];
        if (link_command(st->cmd, fn, st, a, argv, NULL) == 0)
            sent++;
    }
    free(argv);
    return sent;
}

void stream_lease(struct stream *st, const char *const *ids, int n)
{
    stream_claim_own(st, ids, n, 0, stream_on_lease); /* a failure: the next period tries again */
}

void stream_hand_back(struct stream *st, const char *const *ids, int n)
{
    /* Past the longest --reclaim-idle, whatever the other workers run with (a rolling update
     * may change it). */
    st->handing_back += stream_claim_own(st, ids, n, STREAM_HAND_BACK_IDLE_MS, stream_on_hand_back);
}

int stream_handing_back(const struct stream *st)
{
    return st->handing_back > 0;
}

static void stream_on_trim(struct link *l, redisReply *r, void *arg)
{
    struct stream *st = arg;
    st->trimming = 0;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer > 0)
        log_info("event=trimmed stream=%s entries=%lld", st->k_stream, r->integer);
    else if (reply_is_error(r) && r)
        log_warn("event=trim_failed stream=%s error=\"%s\"", st->k_stream, r->str);
}

void stream_trim(struct stream *st)
{
    if (st->trimming || !stream_ready(st))
        return;
    const char *argv[] = {"EVAL", st->trim_script, "1", st->k_stream};
    if (link_command(st->cmd, stream_on_trim, st, 4, argv, NULL) == 0)
        st->trimming = 1;
}

static void stream_on_group(struct link *l, redisReply *r, void *arg)
{
    struct stream *st = arg;
    st->group_checking = 0;
    struct backlog b;
    if (backlog_parse(r, &b) == 0)
        st->hooks.group(st->arg, b.backlog, b.pending);
}

void stream_group_info(struct stream *st)
{
    if (st->group_checking || !stream_ready(st) || st->hooks.group == NULL)
        return;
    const char *argv[] = {"EVAL", BACKLOG_LUA, "1", st->k_stream, st->s->group};
    if (link_command(st->cmd, stream_on_group, st, 5, argv, NULL) == 0)
        st->group_checking = 1;
}

void stream_heartbeat(struct stream *st, int in_flight, long long processed, long ttl_s)
{
    char inflight[24], done[24], now[32], ttl[24];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(inflight, sizeof(inflight), "%d", in_flight);
    snprintf(done, sizeof(done), "%lld", processed);
    snprintf(ttl, sizeof(ttl), "%ld", ttl_s);
    const char *hset[] = {"HSET",     st->k_worker,    HB_IN_FLIGHT,   inflight,     HB_PROCESSED,
                          done,       HB_STARTED_AT,   st->started_at, HB_LAST_SEEN, now,
                          HB_VERSION, PIXFLOW_VERSION, HB_GROUP,       st->s->group};
    const char *expire[] = {"EXPIRE", st->k_worker, ttl};
    if (link_command(st->cmd, NULL, NULL, 14, hset, NULL) == 0)
        link_command(st->cmd, NULL, NULL, 3, expire, NULL);
}

static char *stream_concat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (s) {
        memcpy(s, a, la);
        memcpy(s + la, b, lb + 1);
    }
    return s;
}

struct stream *stream_new(struct event_base *base, const struct settings *s,
                          const struct stream_options *o, const struct stream_hooks *hooks,
                          void *arg)
{
    struct stream *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    st->s = s;
    st->o = *o;
    st->hooks = *hooks;
    st->arg = arg;
    strcpy(st->own_cursor, "0");
    strcpy(st->reclaim_cursor, "0-0");
    settings_key(s, o->stream_key ? o->stream_key : KEY_STREAM, st->k_stream, sizeof(st->k_stream));
    settings_key(s, KEY_SEEN, st->k_seen, sizeof(st->k_seen));
    settings_key(s, KEY_STATS, st->k_stats, sizeof(st->k_stats));
    settings_key(s, KEY_DEAD, st->k_dead, sizeof(st->k_dead));
    settings_key(s, o->storing_key ? o->storing_key : KEY_STORING, st->k_storing,
                 sizeof(st->k_storing));
    settings_key(s, o->release_key ? o->release_key : KEY_REPROCESS_QUEUED, st->k_release,
                 sizeof(st->k_release));
    char name[SET_KEY_MAX];
    snprintf(name, sizeof(name), KEY_WORKER "%s", s->consumer);
    settings_key(s, name, st->k_worker, sizeof(st->k_worker));
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(st->started_at, sizeof(st->started_at), "%Y-%m-%dT%H:%M:%SZ", &tm);

    st->trim_script = stream_concat(BACKLOG_GROUPS_LUA, TRIM_LUA);
    st->own_script = stream_concat(COUNTS_LUA, OWN_LUA);
    st->reclaim_script = stream_concat(COUNTS_LUA, RECLAIM_LUA);
    /* The reader's only command is XREADGROUP BLOCK: its silence limit must exceed the block. */
    st->reader =
        link_new(base, &s->redis, "reader", o->block_ms + o->timeout_ms, stream_on_link, st);
    st->cmd = link_new(base, &s->redis, "commands", o->timeout_ms, stream_on_link, st);
    if (st->trim_script == NULL || st->own_script == NULL || st->reclaim_script == NULL ||
        st->reader == NULL || st->cmd == NULL) {
        stream_free(st);
        return NULL;
    }
    return st;
}

void stream_free(struct stream *st)
{
    if (st == NULL)
        return;
    link_free(st->reader);
    link_free(st->cmd);
    free(st->trim_script);
    free(st->own_script);
    free(st->reclaim_script);
    free(st);
}
