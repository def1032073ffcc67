/* push.c -- the pipelined conversation with Redis: rounds, replies, retries, back-pressure.
 *
 * A batch goes through three steps: its membership in <prefix>seen is asked (`ask`), its new
 * URLs are XADDed (`add`), then its counters are applied (a small MULTI/EXEC, all or nothing).
 * A batch is counted only once all its XADDs succeeded, and the counting transaction is what
 * acknowledges it: the counters and the "how far" mark then agree exactly, even when Redis
 * refuses part of a round (an -OOM that comes and goes lets some XADDs through and not others).
 * Only one counting transaction is in flight at a time, covering every batch added meanwhile,
 * so batches are acknowledged strictly in input order. The transaction also stores its
 * sequence number under a key of this run: when the connection breaks before its reply, that
 * key tells whether it was applied, so the counters never count a line twice.
 *
 * With the AOF on, a batch's XADDs go in one MULTI/EXEC. Redis writes its AOF once per turn of
 * its event loop that wrote anything (and with `appendfsync always` fsyncs it), and a turn reads
 * about 16 KiB of a client's commands: plain XADDs cost a write and an fsync for every hundred
 * or so, queued ones one at EXEC, per batch (measured: 6x fewer fsyncs than redis-cli --pipe
 * sending the same XADDs). The batch is then all or nothing: an -OOM while its XADDs are queued
 * aborts the transaction, and the retry resends all of it. Without the AOF there is nothing to
 * save and queueing costs Redis time: plain XADDs, each retried alone.
 *
 * Each round carries steps of different batches, and up to PUSH_DEPTH rounds are on the wire,
 * so Redis always has the next round queued while ingest reads replies and parses lines.
 * Every command of a round has a `done` flag set by a good reply. When anything goes wrong,
 * every round in flight is brought to completion together: replies still on the wire are read,
 * then exactly the commands not done are resent, in order, so replies never get out of step.
 *
 * With PIXFLOW_REDIS_WAIT_REPLICAS=N, a batch counts as queued only once N replicas hold it, for
 * a failover promotes a replica and the primary's last writes may not have reached it. Each
 * batch then goes in one transaction (its XADDs, its counters and its sequence number under the
 * run key: all or nothing, on the primary as on a replica), followed by WAIT N. One round is in
 * flight at a time: WAIT holds the connection until the replicas answer anyway, and batches then
 * land strictly in order, so the run key alone tells what a new primary holds: after any
 * reconnection the batch not yet confirmed is taken as landed when the run key carries its
 * number, and sent again when it carries the one before (nothing of it is there: the
 * transaction is atomic). Anything else means writes WAIT confirmed were lost, and ingest stops
 * there. The WAIT that confirms a landed batch follows an EXPIRE of the run key: WAIT counts
 * replicas up to the connection's own last write, and a new connection has written nothing. */
#include "push.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "backlog.h"
#include "log.h"
#include "names.h"
#include "rconn.h"
#include "resp.h"

#define PUSH_DEPTH          3  /* rounds on the wire: slack against scheduling hiccups */
#define PUSH_BATCHES        12 /* enough for every stage of every round in flight, and more */
#define PUSH_BACKOFF_MS     100
#define PUSH_BACKOFF_MAX_MS 5000
#define PUSH_WAIT_MAX_MS    1000
#define PUSH_COUNTERS       (4 + URL_REASON_COUNT)
#define PUSH_RUN_TTL        "86400" /* seconds the run key outlives the last count */

/* CMD_XADDS: the XADDs of a round's `add` batch (its entries not seen), in one MULTI/EXEC
 * (waiting for replicas: with the batch's counters and run key); CMD_XADD: one of them, alone;
 * CMD_WAIT: EXPIRE of the run key, then WAIT for the replicas. */
enum push_kind {
    CMD_XADD,
    CMD_XADDS,
    CMD_COUNT,
    CMD_SMISMEMBER,
    CMD_SISMEMBER,
    CMD_BACKLOG,
    CMD_WAIT
};

struct push_cmd {
    enum push_kind kind;
    int done;
    size_t idx; /* the entry of an XADD or SISMEMBER */
};

struct push_counter {
    char field[48];
    unsigned long n;
};

struct push_round {
    struct batch *add, *ask;
    struct push_cmd *cmd;
    size_t ncmd, cmd_cap;
    struct push_counter ctr[PUSH_COUNTERS]; /* what CMD_COUNT applies, for p->counting */
    int nctr;
    int on_wire; /* its not-done commands were sent on this connection, replies unread */
};

/* A first-in first-out list of batches waiting for their next step. */
struct push_queue {
    struct batch *b[PUSH_BATCHES];
    int n;
};

/* How reading or sending ended. */
enum { XCH_OK, XCH_RETRY, XCH_CONN, XCH_FATAL };

struct push {
    struct push_options o;
    redisContext *c;
    int smismember;
    int multi; /* the AOF is on: XADDs in MULTI/EXEC (see the top comment) */
    char k_urls[SET_KEY_MAX], k_seen[SET_KEY_MAX], k_stats[SET_KEY_MAX];
    char k_run[SET_KEY_MAX];     /* <prefix>ingest:run:<random>: the last counting applied */
    unsigned long count_seq;     /* of the counting transaction in flight */
    unsigned long confirmed_seq; /* waiting for replicas: the last batch they confirmed */
    long wait_ms;                /* WAIT's own timeout, within the command timeout */
    struct batch *pool[PUSH_BATCHES];
    struct batch *filling;
    struct push_queue asked;    /* membership asked (or answered), waiting for their XADDs */
    struct push_queue added;    /* XADDs all done, waiting for their counters */
    struct push_queue counting; /* covered by the one counting transaction in flight */
    int held;                   /* stopped while waiting on back-pressure: add nothing more */
    struct push_round round[PUSH_DEPTH]; /* ring: `first` is the oldest of `inflight` */
    int first, inflight;
    struct resp out;
    long long backlog; /* backlog_bound() from the last round that asked; -1 when unknown */
    struct push_mark acked;
    struct batch_counts totals;
    char why[512];  /* the last retryable failure, for the give-up message */
    char addr[300]; /* host:port of the last connection (with sentinels, the primary they named) */
};

static void push_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void push_enqueue(struct push_queue *q, struct batch *b)
{
    q->b[q->n++] = b;
}

static struct batch *push_dequeue(struct push_queue *q)
{
    struct batch *b = q->b[0];
    memmove(q->b, q->b + 1, sizeof(*q->b) * (size_t)--q->n);
    return b;
}

/* Rounds kept on the wire: one when waiting for replicas (the top comment). */
static int push_depth(const struct push *p)
{
    return p->o.wait_replicas ? 1 : PUSH_DEPTH;
}

static struct push_round *push_round_at(struct push *p, int i)
{
    return &p->round[(p->first + i) % PUSH_DEPTH];
}

static int push_add_cmd(struct push_round *r, enum push_kind kind, size_t idx)
{
    if (r->ncmd == r->cmd_cap) {
        size_t cap = r->cmd_cap ? r->cmd_cap * 2 : 1024;
        struct push_cmd *c = realloc(r->cmd, cap * sizeof(*c));
        if (c == NULL)
            return -1;
        r->cmd = c;
        r->cmd_cap = cap;
    }
    r->cmd[r->ncmd++] = (struct push_cmd){kind, 0, idx};
    return 0;
}

static void push_format_xadd(struct push *p, const struct batch *b, size_t i)
{
    struct resp *o = &p->out;
    const struct batch_entry *e = &b->entry[i];
    resp_begin(o, 9);
    resp_arg(o, "XADD", 4);
    resp_arg_str(o, p->k_urls);
    resp_arg(o, "*", 1);
    resp_arg_str(o, FIELD_URL);
    resp_arg(o, batch_url(b, i), e->url_len);
    resp_arg_str(o, FIELD_SOURCE);
    resp_arg_str(o, b->source);
    resp_arg_str(o, FIELD_LINE);
    resp_arg_ulong(o, e->line);
}

/* The counters' HINCRBYs and the run key's SET, inside a MULTI. */
static void push_format_count(struct push *p, const struct push_round *r)
{
    struct resp *o = &p->out;
    for (int i = 0; i < r->nctr; i++) {
        resp_begin(o, 4);
        resp_arg(o, "HINCRBY", 7);
        resp_arg_str(o, p->k_stats);
        resp_arg_str(o, r->ctr[i].field);
        resp_arg_ulong(o, r->ctr[i].n);
    }
    resp_begin(o, 5);
    resp_arg(o, "SET", 3);
    resp_arg_str(o, p->k_run);
    resp_arg_ulong(o, p->count_seq);
    resp_arg(o, "EX", 2);
    resp_arg_str(o, PUSH_RUN_TTL);
}

static void push_format(struct push *p, const struct push_round *r, const struct push_cmd *cmd)
{
    struct resp *o = &p->out;
    switch (cmd->kind) {
    case CMD_XADD:
        push_format_xadd(p, r->add, cmd->idx);
        break;
    case CMD_XADDS:
        resp_begin(o, 1);
        resp_arg(o, "MULTI", 5);
        for (size_t i = 0; i < r->add->count; i++)
            if (!r->add->entry[i].seen)
                push_format_xadd(p, r->add, i);
        if (p->o.wait_replicas)
            push_format_count(p, r);
        resp_begin(o, 1);
        resp_arg(o, "EXEC", 4);
        break;
    case CMD_COUNT:
        resp_begin(o, 1);
        resp_arg(o, "MULTI", 5);
        push_format_count(p, r);
        resp_begin(o, 1);
        resp_arg(o, "EXEC", 4);
        break;
    case CMD_WAIT:
        resp_begin(o, 3);
        resp_arg(o, "EXPIRE", 6);
        resp_arg_str(o, p->k_run);
        resp_arg_str(o, PUSH_RUN_TTL);
        resp_begin(o, 3);
        resp_arg(o, "WAIT", 4);
        resp_arg_ulong(o, (unsigned long)p->o.wait_replicas);
        resp_arg_ulong(o, (unsigned long)p->wait_ms);
        break;
    case CMD_SMISMEMBER: {
        const struct batch *b = r->ask;
        resp_begin(o, 2 + b->count);
        resp_arg(o, "SMISMEMBER", 10);
        resp_arg_str(o, p->k_seen);
        for (size_t i = 0; i < b->count; i++)
            resp_arg(o, batch_url(b, i), b->entry[i].url_len);
        break;
    }
    case CMD_SISMEMBER:
        resp_begin(o, 3);
        resp_arg(o, "SISMEMBER", 9);
        resp_arg_str(o, p->k_seen);
        resp_arg(o, batch_url(r->ask, cmd->idx), r->ask->entry[cmd->idx].url_len);
        break;
    case CMD_BACKLOG:
        resp_begin(o, 5);
        resp_arg(o, "EVAL", 4);
        resp_arg(o, BACKLOG_LUA, sizeof(BACKLOG_LUA) - 1);
        resp_arg(o, "1", 1);
        resp_arg_str(o, p->k_urls);
        resp_arg_str(o, p->o.group);
        break;
    }
}

static void push_disconnect(struct push *p)
{
    if (p->c)
        redisFree(p->c);
    p->c = NULL;
}

/* The connection broke: every reply still expected on it is lost. */
static int push_lost(struct push *p)
{
    snprintf(p->why, sizeof(p->why), "%s",
             p->c && p->c->errstr[0] ? p->c->errstr : "connection lost");
    push_disconnect(p);
    for (int i = 0; i < p->inflight; i++)
        push_round_at(p, i)->on_wire = 0;
    return XCH_CONN;
}

/* Write the round's commands not done yet. */
static int push_send(struct push *p, struct push_round *r)
{
    if (p->c == NULL)
        return XCH_CONN;
    resp_clear(&p->out);
    for (size_t i = 0; i < r->ncmd; i++)
        if (!r->cmd[i].done)
            push_format(p, r, &r->cmd[i]);
    if (p->out.failed) {
        snprintf(p->why, sizeof(p->why), "out of memory formatting %zu commands", r->ncmd);
        return XCH_FATAL;
    }
    if (p->out.len == 0)
        return XCH_OK;
    if (redisAppendFormattedCommand(p->c, p->out.data, p->out.len) != REDIS_OK)
        return push_lost(p);
    int done = 0;
    while (!done)
        if (redisBufferWrite(p->c, &done) != REDIS_OK)
            return push_lost(p);
    r->on_wire = 1;
    return XCH_OK;
}

/* Errors a retry can cure: a server out of memory, loading, read-only during a failover... */
static int push_transient(const char *msg)
{
    static const char *const codes[] = {"OOM",        "READONLY",    "LOADING",
                                        "BUSY",       "TRYAGAIN",    "MASTERDOWN",
                                        "NOREPLICAS", "CLUSTERDOWN", NULL};
    for (int i = 0; codes[i]; i++) {
        size_t n = strlen(codes[i]);
        if (strncmp(msg, codes[i], n) == 0 && (msg[n] == ' ' || msg[n] == '\0'))
            return 1;
    }
    return 0;
}

/* Apply one good reply; -1 when its shape is not what the command returns. */
static int push_take(struct push *p, struct push_round *rd, struct push_cmd *cmd,
                     const redisReply *r)
{
    switch (cmd->kind) {
    case CMD_XADD:
        return r->type == REDIS_REPLY_STRING ? 0 : -1;
    case CMD_XADDS:
    case CMD_COUNT:
    case CMD_WAIT:
        return -1; /* read by push_read_exec and push_read_wait */
    case CMD_SMISMEMBER:
        if (r->type != REDIS_REPLY_ARRAY || r->elements != rd->ask->count)
            return -1;
        for (size_t i = 0; i < r->elements; i++)
            rd->ask->entry[i].seen = r->element[i]->integer == 1;
        return 0;
    case CMD_SISMEMBER:
        if (r->type != REDIS_REPLY_INTEGER)
            return -1;
        rd->ask->entry[cmd->idx].seen = r->integer == 1;
        return 0;
    case CMD_BACKLOG: {
        struct backlog b;
        if (backlog_parse(r, &b) < 0)
            return -1;
        p->backlog = backlog_bound(&b);
        return 0;
    }
    }
    return -1;
}

static const char *push_kind_name(enum push_kind k)
{
    static const char *const names[] = {"XADD",      "XADD",         "HINCRBY", "SMISMEMBER",
                                        "SISMEMBER", "EVAL backlog", "WAIT"};
    /* CMD_XADDS and CMD_COUNT name the commands inside their MULTI. */
    return names[k];
}

void push_set_acked(struct push *p, const char *source, unsigned long line)
{
    if (p->acked.source != source)
        snprintf(p->acked.source, sizeof(p->acked.source), "%s", source);
    p->acked.line = line;
}

/* The counting transaction succeeded: its batches are acknowledged, in input order. */
static void push_counted(struct push *p)
{
    while (p->counting.n) {
        struct batch *b = push_dequeue(&p->counting);
        batch_counts_add(&p->totals, &b->counts);
        if (b->last_line)
            push_set_acked(p, b->source, b->last_line);
    }
}

/* A transaction's replies: MULTI, +QUEUED (or why not) per command, then EXEC: the results, or
 * EXECABORT when one was refused while queued, and then none was applied. `queued` commands
 * were sent; the results of the first `typed` of them must be of type `want` (the counting's
 * last command, its SET, answers +OK). The transaction is done only when every one succeeded:
 * a retry resends all of it. */
static int push_read_exec(struct push *p, struct push_cmd *cmd, size_t queued, size_t typed,
                          int want, char *err, size_t errlen)
{
    const char *what = push_kind_name(cmd->kind);
    int rc = XCH_OK;
    for (size_t i = 0; i < queued + 2; i++) {
        void *reply = NULL;
        if (redisGetReply(p->c, &reply) != REDIS_OK || reply == NULL)
            return push_lost(p);
        redisReply *r = reply;
        int exec = i == queued + 1;
        if (exec && r->type == REDIS_REPLY_ARRAY) {
            for (size_t k = 0; k < r->elements && rc == XCH_OK; k++) {
                const redisReply *e = r->element[k];
                if (e->type == REDIS_REPLY_ERROR || (k < typed && e->type != want)) {
                    snprintf(err, errlen, "redis %s: %s %s refused: %s", p->addr, what,
                             cmd->kind == CMD_XADDS ? p->k_urls : p->k_stats,
                             e->type == REDIS_REPLY_ERROR ? e->str : "an unexpected reply");
                    rc = XCH_FATAL;
                }
            }
            if (rc == XCH_OK && r->elements != queued) {
                snprintf(err, errlen, "redis: EXEC answered %zu results for %zu commands",
                         r->elements, queued);
                rc = XCH_FATAL;
            }
        } else if (r->type == REDIS_REPLY_ERROR && push_transient(r->str)) {
            snprintf(p->why, sizeof(p->why), "%s: %s", what, r->str);
            if (rc == XCH_OK)
                rc = XCH_RETRY;
        } else if (r->type == REDIS_REPLY_ERROR && rc == XCH_OK) {
            snprintf(err, errlen, "redis %s: %s refused: %s", p->addr,
                     i == 0 ? "MULTI"
                     : exec ? "EXEC"
                            : what,
                     r->str);
            rc = XCH_FATAL;
        } else if (r->type != REDIS_REPLY_STATUS && r->type != REDIS_REPLY_ERROR && rc == XCH_OK) {
            snprintf(err, errlen, "redis: unexpected reply of type %d in MULTI/EXEC", r->type);
            rc = XCH_FATAL;
        }
        freeReplyObject(r);
    }
    if (rc == XCH_OK)
        cmd->done = 1;
    return rc;
}

/* CMD_WAIT's replies: EXPIRE (1: the run key is there to be written) and WAIT (how many
 * replicas have everything up to that write). Too few is retried: the replicas may catch up. */
static int push_read_wait(struct push *p, struct push_cmd *cmd, char *err, size_t errlen)
{
    redisReply *r[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        void *reply = NULL;
        if (redisGetReply(p->c, &reply) != REDIS_OK || reply == NULL) {
            if (r[0])
                freeReplyObject(r[0]);
            return push_lost(p);
        }
        r[i] = reply;
    }
    int rc = XCH_OK;
    const redisReply *bad = r[0]->type == REDIS_REPLY_ERROR ? r[0] : r[1];
    if (bad->type == REDIS_REPLY_ERROR) {
        snprintf(p->why, sizeof(p->why), "%s: %s", bad == r[0] ? "EXPIRE" : "WAIT", bad->str);
        rc = push_transient(bad->str) ? XCH_RETRY : XCH_FATAL;
        if (rc == XCH_FATAL)
            snprintf(err, errlen, "redis %s: %s refused", p->addr, p->why);
    } else if (r[0]->type != REDIS_REPLY_INTEGER || r[1]->type != REDIS_REPLY_INTEGER) {
        snprintf(err, errlen, "redis: WAIT: unexpected reply of type %d", r[1]->type);
        rc = XCH_FATAL;
    } else if (r[0]->integer != 1) {
        /* The batch's transaction wrote it: something removed it since. */
        snprintf(err, errlen, "redis %s: %s vanished before its batch was confirmed", p->addr,
                 p->k_run);
        rc = XCH_FATAL;
    } else if (r[1]->integer < p->o.wait_replicas) {
        snprintf(p->why, sizeof(p->why),
                 "WAIT: %lld of %ld replicas acknowledged the batch within %ld ms", r[1]->integer,
                 p->o.wait_replicas, p->wait_ms);
        rc = XCH_RETRY;
    } else {
        cmd->done = 1;
    }
    freeReplyObject(r[0]);
    freeReplyObject(r[1]);
    return rc;
}

/* Read the replies of a round's commands sent by push_send. */
static int push_read(struct push *p, struct push_round *rd, char *err, size_t errlen)
{
    int rc = XCH_OK;
    rd->on_wire = 0;
    for (size_t i = 0; i < rd->ncmd; i++) {
        struct push_cmd *cmd = &rd->cmd[i];
        if (cmd->done)
            continue;
        if (cmd->kind == CMD_COUNT || cmd->kind == CMD_XADDS || cmd->kind == CMD_WAIT) {
            size_t counting = p->o.wait_replicas ? (size_t)rd->nctr + 1 : 0;
            int x = cmd->kind == CMD_WAIT ? push_read_wait(p, cmd, err, errlen)
                    : cmd->kind == CMD_COUNT
                        ? push_read_exec(p, cmd, (size_t)rd->nctr + 1, (size_t)rd->nctr,
                                         REDIS_REPLY_INTEGER, err, errlen)
                        : push_read_exec(p, cmd, rd->add->counts.queued + counting,
                                         rd->add->counts.queued, REDIS_REPLY_STRING, err, errlen);
            if (x == XCH_OK && cmd->kind == CMD_COUNT)
                push_counted(p);
            if (x == XCH_CONN)
                return x;
            if (x == XCH_FATAL || (x == XCH_RETRY && rc == XCH_OK))
                rc = x;
            continue;
        }
        void *reply = NULL;
        if (redisGetReply(p->c, &reply) != REDIS_OK || reply == NULL)
            return push_lost(p);
        redisReply *r = reply;
        if (r->type == REDIS_REPLY_ERROR && push_transient(r->str)) {
            snprintf(p->why, sizeof(p->why), "%s: %s", push_kind_name(cmd->kind), r->str);
            if (rc == XCH_OK)
                rc = XCH_RETRY;
        } else if (r->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "redis %s: %s refused: %s", p->addr, push_kind_name(cmd->kind),
                     r->str);
            rc = XCH_FATAL;
        } else if (push_take(p, rd, cmd, r) < 0) {
            snprintf(err, errlen, "redis: %s: unexpected reply of type %d",
                     push_kind_name(cmd->kind), r->type);
            rc = XCH_FATAL;
        } else {
            cmd->done = 1;
        }
        freeReplyObject(r);
    }
    return rc;
}

static int push_round_done(const struct push_round *r)
{
    for (size_t i = 0; i < r->ncmd; i++)
        if (!r->cmd[i].done)
            return 0;
    return 1;
}

static int push_connect(struct push *p)
{
    char why[CFG_ERR_MAX];
    push_disconnect(p);
    p->c = rconn_open(p->o.redis, p->o.timeout_ms, why, sizeof(why));
    if (p->c == NULL) {
        snprintf(p->why, sizeof(p->why), "%s", why);
        return -1;
    }
    snprintf(p->addr, sizeof(p->addr), "%s:%d", p->c->tcp.host, p->c->tcp.port);
    return 0;
}

static long push_backoff(int attempt)
{
    long ms = PUSH_BACKOFF_MS;
    for (int i = 1; i < attempt && ms < PUSH_BACKOFF_MAX_MS; i++)
        ms *= 2;
    return ms < PUSH_BACKOFF_MAX_MS ? ms : PUSH_BACKOFF_MAX_MS;
}

/* The oldest round is complete: move each of its batches to its next step. */
static void push_ack_oldest(struct push *p)
{
    struct push_round *r = push_round_at(p, 0);
    if (r->ask)
        r->ask->known = 1;
    if (r->add && p->o.wait_replicas) {
        /* Its transaction was counted and confirmed by the replicas (or there was nothing to
         * write): it is queued. */
        for (size_t i = 0; i < r->ncmd; i++)
            if (r->cmd[i].kind == CMD_WAIT)
                p->confirmed_seq = p->count_seq;
        push_enqueue(&p->counting, r->add);
        push_counted(p);
    } else if (r->add) {
        push_enqueue(&p->added, r->add);
    }
    r->add = r->ask = NULL;
    p->first = (p->first + 1) % PUSH_DEPTH;
    p->inflight--;
}

/* The run key's number on the new connection: 0 when there is none. -1 when the connection
 * fails (or the server cannot answer yet: tried again). */
static int push_run_seq(struct push *p, unsigned long *seq)
{
    const char *argv[] = {"GET", p->k_run};
    redisReply *r = redisCommandArgv(p->c, 2, argv, NULL);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        char why[sizeof(p->why)];
        snprintf(why, sizeof(why), "GET: %s", r ? r->str : p->c->errstr);
        if (r)
            freeReplyObject(r);
        push_lost(p);
        snprintf(p->why, sizeof(p->why), "%s", why);
        return -1;
    }
    *seq = r->type == REDIS_REPLY_STRING ? strtoul(r->str, NULL, 10) : 0;
    freeReplyObject(r);
    return 0;
}

/* Waiting for replicas, after a reconnection (perhaps to a promoted replica): what does the
 * primary hold of the batch not yet confirmed? Landed: only its WAIT is left to send. Absent:
 * all of it is sent again. 0, -1 when the connection fails, -2 (err set) when the primary lacks
 * batches already confirmed. */
static int push_wait_landed(struct push *p, char *err, size_t errlen)
{
    unsigned long seq;
    if (push_run_seq(p, &seq) < 0)
        return -1;
    struct push_cmd *txn = NULL, *wait = NULL;
    struct push_round *rd = p->inflight ? push_round_at(p, 0) : NULL;
    for (size_t k = 0; rd && k < rd->ncmd; k++) {
        if (rd->cmd[k].kind == CMD_XADDS)
            txn = &rd->cmd[k];
        if (rd->cmd[k].kind == CMD_WAIT)
            wait = &rd->cmd[k];
    }
    int pending = wait != NULL; /* a batch sent, not confirmed: its number is count_seq */
    if (pending && seq == p->count_seq) {
        log_info("event=batch_landed seq=%lu", seq);
        txn->done = 1;
        wait->done = 0;
        return 0;
    }
    if (seq == p->confirmed_seq) {
        if (pending && txn->done)
            log_warn("event=batch_lost seq=%lu detail=\"not on this primary: sent again\"",
                     p->count_seq);
        if (pending)
            txn->done = wait->done = 0;
        return 0;
    }
    snprintf(err, errlen,
             "redis %s: the primary holds batch %lu of this run where %ld replicas confirmed "
             "batch %lu: a failover lost writes WAIT had confirmed (promoted a replica that had "
             "not acknowledged them?)",
             p->addr, seq, p->o.wait_replicas, p->confirmed_seq);
    return -2;
}

/* After a reconnection: did the counting transaction whose reply was lost get applied? Then it
 * must not be sent again. -1 when the new connection fails too. */
static int push_count_landed(struct push *p)
{
    for (int i = 0; i < p->inflight; i++) {
        struct push_round *rd = push_round_at(p, i);
        for (size_t k = 0; k < rd->ncmd; k++) {
            struct push_cmd *cmd = &rd->cmd[k];
            if (cmd->kind != CMD_COUNT || cmd->done)
                continue;
            unsigned long seq;
            if (push_run_seq(p, &seq) < 0)
                return -1;
            if (seq == p->count_seq) {
                log_info("event=count_landed seq=%lu", p->count_seq);
                cmd->done = 1;
                push_counted(p);
            }
        }
    }
    return 0;
}

/* Bring every round in flight to completion after `rc` went wrong: read what is still on the
 * wire, then resend what is not done, until all is done or the retries are spent. */
static int push_recover(struct push *p, int rc, char *err, size_t errlen)
{
    for (int attempt = 1;; attempt++) {
        for (int i = 0; i < p->inflight && rc != XCH_CONN; i++) {
            struct push_round *r = push_round_at(p, i);
            if (!r->on_wire)
                continue;
            int x = push_read(p, r, err, errlen);
            if (x == XCH_FATAL)
                return -1;
            if (x != XCH_OK)
                rc = x;
        }
        int all = 1;
        for (int i = 0; i < p->inflight; i++)
            all &= push_round_done(push_round_at(p, i));
        if (all) {
            while (p->inflight)
                push_ack_oldest(p);
            return 0;
        }
        if (attempt > p->o.retries) {
            snprintf(err, errlen, "redis %s: %s (gave up after %d attempts)", p->addr, p->why,
                     attempt);
            return -1;
        }
        /* A primary demoted by a failover answers READONLY: the sentinels name the new one. */
        if (p->c && p->o.redis->nsentinels && strstr(p->why, "READONLY"))
            push_lost(p);
        long ms = push_backoff(attempt);
        log_warn("event=redis_retry attempt=%d retries=%d delay_ms=%ld error=\"%s\"", attempt,
                 p->o.retries, ms, p->why);
        push_sleep_ms(ms);
        if (p->c == NULL) {
            int x = push_connect(p) < 0  ? -1
                    : p->o.wait_replicas ? push_wait_landed(p, err, errlen)
                                         : push_count_landed(p);
            if (x == -2)
                return -1;
            if (x < 0) {
                rc = XCH_CONN;
                continue;
            }
        }
        rc = XCH_OK;
        for (int i = 0; i < p->inflight && rc == XCH_OK; i++) {
            rc = push_send(p, push_round_at(p, i));
            if (rc == XCH_FATAL) {
                snprintf(err, errlen, "%s", p->why);
                return -1;
            }
        }
    }
}

/* Wait for the oldest round's replies. */
static int push_finish_oldest(struct push *p, char *err, size_t errlen)
{
    struct push_round *r = push_round_at(p, 0);
    int rc = XCH_OK;
    if (r->on_wire)
        rc = push_read(p, r, err, errlen);
    else if (!push_round_done(r))
        rc = XCH_CONN; /* never sent: the connection was gone already */
    if (rc == XCH_FATAL)
        return -1;
    if (rc == XCH_OK && push_round_done(r)) {
        push_ack_oldest(p);
        return 0;
    }
    return push_recover(p, rc, err, errlen);
}

/* The counters of batches whose XADDs are all done, as HINCRBY increments. */
static void push_counters(struct push_round *r, const struct push_queue *q)
{
    struct batch_counts sum, *c = &sum;
    memset(&sum, 0, sizeof(sum));
    for (int i = 0; i < q->n; i++)
        batch_counts_add(&sum, &q->b[i]->counts);
    r->nctr = 0;
#define CTR(name, value)                                                                           \
    do {                                                                                           \
        if (value) {                                                                               \
            snprintf(r->ctr[r->nctr].field, sizeof(r->ctr[0].field), "%s", name);                  \
            r->ctr[r->nctr++].n = value;                                                           \
        }                                                                                          \
    } while (0)
    CTR(C_INGEST_LINES, c->lines);
    CTR(C_INGEST_QUEUED, c->queued);
    CTR(C_INGEST_DUPLICATES, c->dup_input + c->dup_seen);
    CTR(C_INGEST_INVALID, c->invalid);
    for (int i = 0; i < URL_REASON_COUNT; i++) {
        if (c->invalid_by[i] && r->nctr < PUSH_COUNTERS) {
            snprintf(r->ctr[r->nctr].field, sizeof(r->ctr[0].field), C_INGEST_INVALID ":%s",
                     url_reason_name((enum url_reason)i));
            r->ctr[r->nctr++].n = c->invalid_by[i];
        }
    }
#undef CTR
}

/* Build and send a round: XADDs for `add`, membership for `ask` (either may be NULL), and the
 * counters of what was added before when no counting is in flight. */
static int push_start(struct push *p, struct batch *add, struct batch *ask, char *err,
                      size_t errlen)
{
    struct push_round *r = push_round_at(p, p->inflight);
    r->add = add;
    r->ask = ask;
    r->ncmd = 0;
    r->nctr = 0;
    r->on_wire = 0;
    int oom = 0;
    if (add) {
        add->counts.queued = add->counts.dup_seen = 0;
        for (size_t i = 0; i < add->count; i++) {
            if (add->entry[i].seen) {
                add->counts.dup_seen++;
                continue;
            }
            add->counts.queued++;
            if (!p->multi)
                oom |= push_add_cmd(r, CMD_XADD, i);
        }
        if (p->o.wait_replicas) {
            /* One transaction with its counters, then WAIT (the top comment). */
            struct push_queue one = {{add}, 1};
            push_counters(r, &one);
            if (add->counts.queued || r->nctr) {
                p->count_seq++;
                oom |= push_add_cmd(r, CMD_XADDS, 0);
                oom |= push_add_cmd(r, CMD_WAIT, 0);
            }
        } else if (p->multi && add->counts.queued) {
            oom |= push_add_cmd(r, CMD_XADDS, 0);
        }
    }
    if (p->counting.n == 0 && p->added.n) {
        while (p->added.n)
            push_enqueue(&p->counting, push_dequeue(&p->added));
        push_counters(r, &p->counting);
        p->count_seq++;
        if (r->nctr)
            oom |= push_add_cmd(r, CMD_COUNT, 0);
        else
            push_counted(p); /* only blank lines: nothing to count, nothing to wait for */
    }
    if (ask && ask->count) {
        if (p->smismember)
            oom |= push_add_cmd(r, CMD_SMISMEMBER, 0);
        else
            for (size_t i = 0; i < ask->count; i++)
                oom |= push_add_cmd(r, CMD_SISMEMBER, i);
    }
    if (p->o.max_backlog > 0) {
        oom |= push_add_cmd(r, CMD_BACKLOG, 0);
    }
    if (oom) {
        snprintf(err, errlen, "out of memory building a round");
        return -1;
    }
    p->inflight++;
    if (push_send(p, r) == XCH_FATAL) {
        snprintf(err, errlen, "%s", p->why);
        return -1;
    }
    return 0; /* a lost connection shows when the round is finished, and is retried then */
}

static long push_backlog(const struct push *p)
{
    return (long)p->backlog;
}

/* XADDs sent since the backlog was last measured: the rounds on the wire. */
static long push_unmeasured(struct push *p)
{
    long n = 0;
    for (int i = 0; i < p->inflight; i++)
        if (push_round_at(p, i)->add)
            n += (long)push_round_at(p, i)->add->counts.queued;
    return n;
}

static int push_probe_backlog(struct push *p, char *err, size_t errlen)
{
    if (push_start(p, NULL, NULL, err, errlen) < 0)
        return -1;
    while (p->inflight)
        if (push_finish_oldest(p, err, errlen) < 0)
            return -1;
    return 0;
}

/* --max-backlog: wait until adding `more` entries keeps the backlog within the limit (or the
 * backlog is empty: a batch larger than the limit still goes, alone). */
static int push_wait_backlog(struct push *p, long more, char *err, size_t errlen)
{
    long ms = 100;
    int logged = 0;
    for (;;) {
        long est = push_backlog(p) + push_unmeasured(p);
        if (est <= 0 || est + more <= p->o.max_backlog)
            break;
        if (p->o.stop && *p->o.stop)
            return PUSH_STOPPED;
        if (p->inflight) { /* settle what is on the wire: the estimate becomes a measure */
            while (p->inflight)
                if (push_finish_oldest(p, err, errlen) < 0)
                    return PUSH_FAILED;
            continue;
        }
        if (!logged++)
            log_info("event=backpressure backlog=%ld max_backlog=%ld group=%s", est,
                     p->o.max_backlog, p->o.group);
        push_sleep_ms(ms);
        ms = ms * 2 < PUSH_WAIT_MAX_MS ? ms * 2 : PUSH_WAIT_MAX_MS;
        if (push_probe_backlog(p, err, errlen) < 0)
            return PUSH_FAILED;
    }
    if (logged)
        log_info("event=backpressure_end backlog=%ld", push_backlog(p));
    return PUSH_OK;
}

/* Send the next round: the XADDs of the oldest answered batch, the question for `ask`, and the
 * counters of what was added. PUSH_OK or PUSH_FAILED; a stop request during a back-pressure
 * wait sets `held`: nothing more is added or asked, what was added is still counted. */
static int push_step(struct push *p, struct batch *ask, char *err, size_t errlen)
{
    if (p->inflight == push_depth(p) && push_finish_oldest(p, err, errlen) < 0)
        return PUSH_FAILED;
    int can_add = !p->held && p->asked.n > 0 && p->asked.b[0]->known;
    if (can_add && p->o.max_backlog > 0) {
        long more = 0;
        for (size_t i = 0; i < p->asked.b[0]->count; i++)
            more += !p->asked.b[0]->entry[i].seen;
        int rc = push_wait_backlog(p, more, err, errlen);
        if (rc == PUSH_FAILED)
            return rc;
        if (rc == PUSH_STOPPED)
            p->held = 1, can_add = 0;
    }
    if (p->held)
        ask = NULL;
    int can_count = p->added.n > 0 && p->counting.n == 0;
    if (!can_add && ask == NULL && !can_count)
        return PUSH_OK;
    struct batch *add = can_add ? push_dequeue(&p->asked) : NULL;
    if (ask)
        push_enqueue(&p->asked, ask);
    return push_start(p, add, ask, err, errlen) < 0 ? PUSH_FAILED : PUSH_OK;
}

static int push_in_use(struct push *p, const struct batch *b)
{
    for (int i = 0; i < p->asked.n; i++)
        if (p->asked.b[i] == b)
            return 1;
    for (int i = 0; i < p->added.n; i++)
        if (p->added.b[i] == b)
            return 1;
    for (int i = 0; i < p->counting.n; i++)
        if (p->counting.b[i] == b)
            return 1;
    for (int i = 0; i < p->inflight; i++) {
        const struct push_round *r = push_round_at(p, i);
        if (r->add == b || r->ask == b)
            return 1;
    }
    return 0;
}

struct batch *push_batch(struct push *p)
{
    return p->filling;
}

int push_batch_full(const struct push *p)
{
    return p->filling->pulled >= p->o.batch_size;
}

int push_submit(struct push *p, char *err, size_t errlen)
{
    struct batch *b = p->filling;
    if (b->pulled == 0)
        return p->held ? PUSH_STOPPED : PUSH_OK;
    int rc = push_step(p, b, err, errlen);
    if (rc != PUSH_OK)
        return rc;
    if (p->held)
        return PUSH_STOPPED; /* b stays unsent: the mark says where a rerun starts */
    for (;;) {
        for (int i = 0; i < PUSH_BATCHES; i++) {
            if (p->pool[i] != b && !push_in_use(p, p->pool[i])) {
                p->filling = p->pool[i];
                batch_reset(p->filling, NULL);
                return PUSH_OK;
            }
        }
        /* Not reached with PUSH_BATCHES as sized; finishing rounds always frees one. */
        if (p->inflight == 0)
            rc = push_step(p, NULL, err, errlen);
        else
            rc = push_finish_oldest(p, err, errlen) < 0 ? PUSH_FAILED : PUSH_OK;
        if (rc != PUSH_OK)
            return rc;
    }
}

int push_flush(struct push *p, char *err, size_t errlen)
{
    int rc = push_submit(p, err, errlen);
    if (rc == PUSH_FAILED)
        return rc;
    rc = PUSH_OK;
    while (rc == PUSH_OK &&
           (p->inflight || p->added.n || p->counting.n || (p->asked.n && !p->held))) {
        int addable = !p->held && p->asked.n && p->asked.b[0]->known;
        int movable = (p->added.n && !p->counting.n) || addable;
        if (movable && p->inflight < push_depth(p))
            rc = push_step(p, NULL, err, errlen);
        else if (p->inflight)
            rc = push_finish_oldest(p, err, errlen) < 0 ? PUSH_FAILED : PUSH_OK;
        else
            break; /* not reached: an unanswered batch was asked in a round in flight */
    }
    return rc == PUSH_OK && p->held ? PUSH_STOPPED : rc;
}

const struct push_mark *push_acked(const struct push *p)
{
    return &p->acked;
}

void push_end(struct push *p)
{
    if (p->c == NULL || p->count_seq == 0)
        return;
    const char *argv[] = {"DEL", p->k_run};
    redisReply *r = redisCommandArgv(p->c, 2, argv, NULL);
    if (r)
        freeReplyObject(r);
}

unsigned long push_window(const struct push *p)
{
    /* XADDs on the wire (PUSH_DEPTH rounds), added and waiting to be counted (at most one per
     * round finished while a count is in flight), being counted (as many). Waiting for
     * replicas: the one batch not yet confirmed. */
    if (p->o.wait_replicas)
        return p->o.batch_size;
    return 3UL * PUSH_DEPTH * p->o.batch_size;
}

const struct batch_counts *push_totals(const struct push *p)
{
    return &p->totals;
}

int push_has_smismember(const struct push *p)
{
    return p->smismember;
}

int push_has_multi(const struct push *p)
{
    return p->multi;
}

const char *push_addr(const struct push *p)
{
    return p->addr;
}

/* Whether Redis keeps an AOF (INFO persistence, aof_enabled). A server that will not say (INFO
 * renamed or denied) is taken to keep one: MULTI costs it some time, never a write. */
static void push_probe_aof(struct push *p)
{
    const char *argv[] = {"INFO", "persistence"};
    redisReply *r = redisCommandArgv(p->c, 2, argv, NULL);
    const char *f = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, "aof_enabled:") : NULL;
    p->multi = f == NULL || f[strlen("aof_enabled:")] != '0';
    if (r)
        freeReplyObject(r);
}

/* SMISMEMBER needs Redis 6.2; older servers get one pipelined SISMEMBER per URL. */
static int push_probe(struct push *p, char *err, size_t errlen)
{
    const char *argv[] = {"SMISMEMBER", p->k_seen, ""};
    redisReply *r = redisCommandArgv(p->c, 3, argv, NULL);
    if (r == NULL) {
        snprintf(err, errlen, "redis %s: %s", p->addr, p->c->errstr);
        return -1;
    }
    p->smismember = r->type == REDIS_REPLY_ARRAY;
    int rc = 0;
    if (r->type == REDIS_REPLY_ERROR && strcasestr(r->str, "unknown command") == NULL) {
        snprintf(err, errlen, "redis %s: SMISMEMBER %s: %s", p->addr, p->k_seen, r->str);
        rc = -1;
    }
    freeReplyObject(r);
    return rc;
}

struct push *push_new(const struct push_options *o, char *err, size_t errlen)
{
    struct push *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->o = *o;
    if (p->o.batch_size == 0)
        p->o.batch_size = 1;
    p->backlog = -1;
    if (o->redis->nsentinels)
        snprintf(p->addr, sizeof(p->addr), "(primary '%s')", o->redis->master);
    else
        snprintf(p->addr, sizeof(p->addr), "%s:%d", o->redis->host, o->redis->port);
    /* WAIT answers before the command timeout, so a slow replica reads as too few, not as a
     * dead connection. */
    p->wait_ms = o->timeout_ms / 2 > 0 ? o->timeout_ms / 2 : 1;
    resp_init(&p->out);
    snprintf(p->k_urls, sizeof(p->k_urls), "%s%s", o->prefix, KEY_STREAM);
    snprintf(p->k_seen, sizeof(p->k_seen), "%s%s", o->prefix, KEY_SEEN);
    snprintf(p->k_stats, sizeof(p->k_stats), "%s%s", o->prefix, KEY_STATS);
    unsigned long long run = 0;
    if (getrandom(&run, sizeof(run), 0) != (ssize_t)sizeof(run))
        run = (unsigned long long)time(NULL) ^ ((unsigned long long)getpid() << 32);
    snprintf(p->k_run, sizeof(p->k_run), "%s%s%016llx", o->prefix, KEY_INGEST_RUN, run);
    for (int i = 0; i < PUSH_BATCHES; i++) {
        p->pool[i] = batch_new(p->o.batch_size, err, errlen);
        if (p->pool[i] == NULL)
            goto err;
    }
    p->filling = p->pool[0];
    batch_reset(p->filling, NULL);

    for (int attempt = 1; push_connect(p) < 0; attempt++) {
        if (attempt > o->retries) {
            snprintf(err, errlen, "%s (gave up after %d attempts)", p->why, attempt);
            goto err;
        }
        long ms = push_backoff(attempt);
        log_warn("event=redis_retry attempt=%d retries=%d delay_ms=%ld error=\"%s\"", attempt,
                 o->retries, ms, p->why);
        push_sleep_ms(ms);
    }
    if (push_probe(p, err, errlen) < 0)
        goto err;
    push_probe_aof(p);
    if (p->o.wait_replicas)
        p->multi = 1; /* each batch is one transaction (the top comment) */
    if (p->o.max_backlog > 0 && push_probe_backlog(p, err, errlen) < 0)
        goto err;
    return p;
err:
    push_free(p);
    return NULL;
}

void push_free(struct push *p)
{
    if (p == NULL)
        return;
    push_disconnect(p);
    for (int i = 0; i < PUSH_BATCHES; i++)
        batch_free(p->pool[i]);
    for (int i = 0; i < PUSH_DEPTH; i++)
        free(p->round[i].cmd);
    resp_free(&p->out);
    free(p);
}
