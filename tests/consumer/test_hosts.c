/* test_hosts.c -- politeness against a real redis-server this test starts: the ASK script alone
 * (rate with reservations, requests at once with leases that lapse, pause, circuit breaker with
 * probes, adaptive concurrency, the fleet count), then hosts.c on a real loop (waits spaced by
 * the rate, a full host asked again when a slot of ours comes back, and the worker's own share
 * once Redis is gone). The unit includes hosts.c to reach its script. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../consumer/hosts.c"
#include "common/server.h"

static struct tserver redis = {.pid = -1};
static char redis_bin[1024] = "/usr/bin/redis-server";
static char port_arg[16];
static redisContext *rc;

static int redis_start(void)
{
    char *argv[] = {redis_bin, "--port", port_arg,       "--bind", "127.0.0.1",
                    "--save",  "",       "--appendonly", "no",     NULL};
    return tserver_start(&redis, argv, 10);
}

static int group_setup(void **state)
{
    const char *bin = getenv("PIXFLOW_REDIS_SERVER");
    if (bin && *bin)
        snprintf(redis_bin, sizeof(redis_bin), "%s", bin);
    snprintf(redis.log, sizeof(redis.log), "/tmp/pixflow-test-hosts-%d.log", (int)getpid());
    redis.port = tserver_free_port();
    snprintf(port_arg, sizeof(port_arg), "%d", redis.port);
    log_init("test_hosts", LL_ERROR, 0);
    if (redis.port <= 0 || redis_start() != 0)
        return -1;
    rc = redisConnect("127.0.0.1", redis.port);
    return rc && !rc->err ? 0 : -1;
}

static int group_teardown(void **state)
{
    if (rc)
        redisFree(rc);
    tserver_stop(&redis);
    unlink(redis.log);
    return 0;
}

static int flush_db(void **state)
{
    if (rc == NULL) { /* a test killed the server: bring it back */
        if (redis_start() != 0)
            return -1;
        rc = redisConnect("127.0.0.1", redis.port);
    }
    redisReply *r = redisCommand(rc, "FLUSHALL");
    freeReplyObject(r);
    return 0;
}

/* ---- the script alone ---------------------------------------------------------------------- */

struct limits {
    double rate;
    int burst, inflight;
};

struct verdict {
    long long verdict, wait, limit, pause, circuit, fleet;
};

static const char *beat = "1"; /* the calls count their worker in the fleet, unless a test says */

/* One section call for host "h": an optional ask and up to 4 reports "lease,outcome,ra,ms". */
static struct verdict ask_as(const char *worker, struct limits l, const char *lease, long lease_ms,
                             int nrep, const char *const *reps)
{
    const char *argv[72];
    char nums[32][32];
    int a = 0, k = 0;
#define NUM(fmt, v) (snprintf(nums[k], sizeof(nums[k]), fmt, v), argv[a++] = nums[k++])
    argv[a++] = "EVAL";
    argv[a++] = ASK_LUA;
    argv[a++] = "6";
    argv[a++] = "u:hosts";
    argv[a++] = "u:hosts:fleet";
    argv[a++] = "u:host:h:state";
    argv[a++] = "u:host:h:leases";
    argv[a++] = "u:host:h:probes";
    argv[a++] = "u:host:h:queue";
    argv[a++] = worker;
    argv[a++] = "u:" KEY_HOSTS_WAKE;
    argv[a++] = beat;
    argv[a++] = "1";
    argv[a++] = "h";
    NUM("%g", l.rate);
    NUM("%d", l.burst);
    NUM("%d", l.inflight);
    argv[a++] = lease ? lease : "";
    argv[a++] = "1"; /* as if queued before: a lease held is found */
    NUM("%ld", lease_ms);
    argv[a++] = "0.5";
    NUM("%d", nrep);
    for (int i = 0; i < nrep; i++) {
        char buf[128];
        snprintf(buf, sizeof(buf), "%s", reps[i]);
        char *save, *tok = strtok_r(buf, ",", &save);
        for (int j = 0; j < 4; j++, tok = strtok_r(NULL, ",", &save)) {
            assert_non_null(tok);
            snprintf(nums[k], sizeof(nums[k]), "%s", tok);
            argv[a++] = nums[k++];
        }
        argv[a++] = "0"; /* had not waited */
    }
#undef NUM
    redisReply *r = redisCommandArgv(rc, a, argv, NULL);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("script error: %s", r->str);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 1);
    redisReply *s = r->element[0];
    assert_int_equal(s->elements, 8);
    struct verdict v = {s->element[0]->integer, s->element[1]->integer, s->element[2]->integer,
                        s->element[3]->integer, s->element[4]->integer, s->element[5]->integer};
    freeReplyObject(r);
    return v;
}

static struct verdict ask(struct limits l, const char *lease, int nrep, const char *const *reps)
{
    return ask_as("w1", l, lease, 60000, nrep, reps);
}

static void hset(const char *field, double value)
{
    redisReply *r = redisCommand(rc, "HSET u:host:h:state %s %f", field, value);
    freeReplyObject(r);
}

static double redis_ms(void)
{
    redisReply *r = redisCommand(rc, "TIME");
    double ms = atof(r->element[0]->str) * 1000 + atof(r->element[1]->str) / 1000;
    freeReplyObject(r);
    return ms;
}

/* GCRA with reservations: a burst goes at once, then each ask gets its own start, one interval
 * after the previous one; nothing is refused. */
static void test_rate_reserves_start_times(void **state)
{
    struct limits l = {10, 3, 100};
    char lease[16];
    for (int i = 0; i < 3; i++) {
        snprintf(lease, sizeof(lease), "b%d", i);
        struct verdict v = ask(l, lease, 0, NULL);
        assert_int_equal(v.verdict, 1);
        assert_true(v.wait <= 1);
    }
    long long prev = 0;
    for (int i = 0; i < 5; i++) {
        snprintf(lease, sizeof(lease), "r%d", i);
        struct verdict v = ask(l, lease, 0, NULL);
        assert_int_equal(v.verdict, 1);
        /* 100 ms apart, the first about one interval out (less the time the calls took) */
        assert_in_range(v.wait, prev + 80, prev + 101);
        prev = v.wait;
    }
}

/* Requests at once: leases in a sorted set; the cap refuses with a hint, a report gives the slot
 * back, and a lease nobody gives back lapses at its deadline (a killed worker). */
static void test_inflight_leases_and_lapse(void **state)
{
    struct limits l = {1000, 1000, 2};
    assert_int_equal(ask_as("w1", l, "a", 300, 0, NULL).verdict, 1);
    assert_int_equal(ask_as("w1", l, "b", 300, 0, NULL).verdict, 1);
    struct verdict full = ask_as("w1", l, "c", 300, 0, NULL);
    assert_int_equal(full.verdict, 4);
    assert_in_range(full.wait, HOSTS_FULL_WAIT_MIN, HOSTS_FULL_WAIT_MAX);
    const char *back[] = {"a,1,-1,40"};
    assert_int_equal(ask_as("w1", l, "c", 300, 1, back).verdict, 1);
    assert_int_equal(ask_as("w1", l, "d", 300, 0, NULL).verdict, 4);
    usleep(350 * 1000); /* b and c were never given back */
    assert_int_equal(ask_as("w1", l, "d", 300, 0, NULL).verdict, 1);
    assert_int_equal(ask_as("w1", l, "e", 300, 0, NULL).verdict, 1);
    assert_int_equal(ask_as("w1", l, "f", 300, 0, NULL).verdict, 4);
}

/* A 429 with Retry-After pauses the host for every worker until it lapses, and the rate resumes
 * from its end without a burst. */
static void test_pause_with_retry_after(void **state)
{
    struct limits l = {10, 50, 100};
    assert_int_equal(ask(l, "a", 0, NULL).verdict, 1);
    const char *busy[] = {"a,2,400,10"};
    struct verdict v = ask(l, "", 1, busy);
    assert_int_equal(v.verdict, 0);
    assert_in_range(v.pause, 390, 400);
    v = ask_as("w2", l, "b", 60000, 0, NULL); /* another worker */
    assert_int_equal(v.verdict, 2);
    assert_in_range(v.wait, 380, 400);
    usleep(420 * 1000);
    v = ask(l, "c", 0, NULL);
    assert_int_equal(v.verdict, 1);
    v = ask(l, "d", 0, NULL);
    assert_int_equal(v.verdict, 1);
    assert_in_range(v.wait, 50, 100); /* one interval after the end: no burst after a pause */
}

/* Without Retry-After: a backoff that doubles (with jitter) each time a pause has lapsed, not
 * for each report of requests that were out when it began; a good answer resets it. */
static void test_pause_backoff_doubles(void **state)
{
    struct limits l = {100, 5, 100};
    const char *down[] = {"x,3,-1,5", "y,3,-1,5"};
    struct verdict v = ask(l, "", 2, down);
    assert_in_range(v.pause, HOSTS_PAUSE_BASE_MS * 3 / 4 - 1, HOSTS_PAUSE_BASE_MS * 3 / 4);
    hset(HOST_PAUSE_UNTIL, 0); /* as if it had lapsed */
    v = ask(l, "", 1, down);
    assert_in_range(v.pause, HOSTS_PAUSE_BASE_MS * 3 / 2 - 1, HOSTS_PAUSE_BASE_MS * 3 / 2);
    hset(HOST_PAUSE_UNTIL, 0);
    const char *ok[] = {"z,1,-1,5"};
    ask(l, "", 1, ok);
    v = ask(l, "", 1, down);
    assert_in_range(v.pause, HOSTS_PAUSE_BASE_MS * 3 / 4 - 1, HOSTS_PAUSE_BASE_MS * 3 / 4);
}

/* Consecutive failures open the circuit: no request; when the spell ends a few probes go, fleet
 * wide; a probe that hangs frees its place at its deadline; a failed probe opens it again for
 * longer; a good answer closes it. */
static void test_circuit_breaker(void **state)
{
    struct limits l = {1000, 1000, 100};
    const char *fail[] = {"f,4,-1,5"};
    for (int i = 0; i < HOSTS_FAILS_TO_OPEN - 1; i++)
        assert_int_equal(ask(l, "", 1, fail).circuit, HOST_CLOSED);
    struct verdict v = ask(l, "", 1, fail);
    assert_int_equal(v.circuit, HOST_OPEN);
    v = ask(l, "a", 0, NULL);
    assert_int_equal(v.verdict, 3);
    assert_in_range(v.wait, HOSTS_OPEN_BASE_MS - 50, HOSTS_OPEN_BASE_MS);

    hset(HOST_OPEN_UNTIL, redis_ms() - 1); /* the spell is over */
    char lease[16];
    for (int i = 0; i < HOSTS_PROBES; i++) {
        snprintf(lease, sizeof(lease), "p%d", i);
        v = ask_as(i % 2 ? "w2" : "w1", l, lease, 300, 0, NULL);
        assert_int_equal(v.verdict, 1);
        assert_int_equal(v.circuit, HOST_HALF_OPEN);
    }
    v = ask(l, "q", 0, NULL);
    assert_int_equal(v.verdict, 3);
    assert_true(v.wait <= HOSTS_PROBE_WAIT_MS);
    usleep(350 * 1000); /* the probes hang past their deadline: others may go */
    assert_int_equal(ask_as("w1", l, "p9", 300, 0, NULL).verdict, 1);

    const char *probe_failed[] = {"p9,5,-1,300"};
    v = ask(l, "", 1, probe_failed);
    assert_int_equal(v.circuit, HOST_OPEN);
    v = ask(l, "q", 0, NULL);
    assert_int_equal(v.verdict, 3);
    assert_true(v.wait > HOSTS_OPEN_BASE_MS); /* twice as long */

    hset(HOST_OPEN_UNTIL, redis_ms() - 1);
    assert_int_equal(ask(l, "p10", 0, NULL).verdict, 1);
    const char *probe_ok[] = {"p10,1,-1,20"};
    v = ask(l, "r", 1, probe_ok);
    assert_int_equal(v.circuit, HOST_CLOSED);
    assert_int_equal(v.verdict, 1);
}

/* Concurrency halves on 429, 503 and timeouts, at most once per HOSTS_CUT_EVERY_MS, and grows
 * back by one per `concurrency` good answers, never above the configured inflight. */
static void test_adaptive_concurrency(void **state)
{
    struct limits l = {1000, 1000, 16};
    const char *slow[] = {"s,5,-1,5000"};
    struct verdict v = ask(l, "", 1, slow);
    assert_int_equal(v.limit, 8);
    v = ask(l, "", 1, slow);
    assert_int_equal(v.limit, 8); /* not twice in a row */
    hset(HOST_CUT_AT, 0);
    v = ask(l, "", 1, slow);
    assert_int_equal(v.limit, 4);
    const char *ok[] = {"o,1,-1,5", "o,1,-1,5", "o,1,-1,5", "o,1,-1,5"};
    v = ask(l, "", 4, ok);
    assert_int_equal(v.limit, 4); /* 4 + 1/4 + 1/4.25 + ... */
    v = ask(l, "", 1, ok);
    assert_int_equal(v.limit, 5);
    for (int i = 0; i < 200; i++)
        v = ask(l, "", 4, ok);
    assert_int_equal(v.limit, 16);
    /* the cap holds what concurrency says: 4 slots after a cut */
    hset(HOST_CUT_AT, 0);
    hset(HOST_LIMIT, 8);
    ask(l, "", 1, slow);
    char lease[8];
    for (int i = 0; i < 4; i++) {
        snprintf(lease, sizeof(lease), "c%d", i);
        assert_int_equal(ask(l, lease, 0, NULL).verdict, 1);
    }
    assert_int_equal(ask(l, "c4", 0, NULL).verdict, 4);
}

/* Workers that asked in the last HOSTS_FLEET_TTL_MS are counted: the shares of the fallback. */
static void test_fleet_count(void **state)
{
    struct limits l = {1000, 1000, 100};
    assert_int_equal(ask_as("w1", l, "", 1000, 0, NULL).fleet, 1);
    assert_int_equal(ask_as("w2", l, "", 1000, 0, NULL).fleet, 2);
    assert_int_equal(ask_as("w1", l, "", 1000, 0, NULL).fleet, 2);
    redisReply *r = redisCommand(rc, "ZADD u:hosts:fleet %f old", redis_ms() - 31000);
    freeReplyObject(r);
    assert_int_equal(ask_as("w3", l, "", 1000, 0, NULL).fleet, 3);
}

/* Between beats a call leaves the fleet's set alone, and still counts it. */
static void test_fleet_joined_on_a_beat(void **state)
{
    struct limits l = {1000, 1000, 100};
    assert_int_equal(ask_as("w1", l, "", 1000, 0, NULL).fleet, 1);
    beat = "0";
    struct verdict v = ask_as("w2", l, "", 1000, 0, NULL);
    beat = "1";
    assert_int_equal(v.fleet, 1); /* w2 not counted */
    assert_int_equal(ask_as("w2", l, "", 1000, 0, NULL).fleet, 2);
    beat = "0";
    v = ask_as("w1", l, "", 1000, 0, NULL);
    beat = "1";
    assert_int_equal(v.fleet, 2); /* w1 sees w2 without a beat of its own */
}

static long long pttl(const char *key)
{
    redisReply *r = redisCommand(rc, "PTTL %s", key);
    long long ms = r->integer;
    freeReplyObject(r);
    return ms;
}

/* A field of the host's state, 0 when missing. */
static double state_field(const char *field)
{
    redisReply *r = redisCommand(rc, "HGET u:host:h:state %s", field);
    double v = r->type == REDIS_REPLY_STRING ? atof(r->str) : 0;
    freeReplyObject(r);
    return v;
}

/* Every key a host's state lives in expires: renewed once a HOSTS_REFRESH_MS, not on every call,
 * and a leases set made again (after its last lease went) gets its TTL when made. */
static void test_host_keys_expire_without_a_renewal_per_call(void **state)
{
    struct limits l = {1000, 1000, 100};
    assert_int_equal(ask(l, "k1", 0, NULL).verdict, 1);
    assert_true(pttl("u:host:h:state") > 3500000);
    assert_true(pttl("u:host:h:leases") > 3500000);
    assert_true(pttl("u:hosts") > 3500000 && pttl("u:hosts:fleet") > 3500000);
    double first = state_field(HOST_KEPT);
    assert_true(first > 0);
    const char *done[] = {"k1,1,-1,5"};
    ask(l, "", 1, done); /* the only lease reported: the set is gone */
    assert_int_equal(pttl("u:host:h:leases"), -2);
    redisReply *r = redisCommand(rc, "PERSIST u:host:h:state");
    freeReplyObject(r);
    assert_int_equal(ask(l, "k2", 0, NULL).verdict, 1);
    assert_true(pttl("u:host:h:leases") > 3500000); /* made again, with its TTL */
    assert_int_equal(pttl("u:host:h:state"), -1);   /* not renewed: the last was just now */
    assert_true(state_field(HOST_KEPT) == first);
    hset(HOST_KEPT, redis_ms() - 61000);
    ask(l, "", 0, NULL);
    assert_true(pttl("u:host:h:state") > 3500000); /* renewed a minute on */
    assert_true(state_field(HOST_KEPT) > first);
}

/* A full host queues the ask; a freed slot goes only to a worker that listens on its channel:
 * a killed one's queued ask is dropped, not handed a slot it would hold until its deadline. */
static void test_queue_skips_deaf_workers(void **state)
{
    struct limits l = {1000, 100, 1};
    assert_int_equal(ask_as("a", l, "a:1", 60000, 0, NULL).verdict, 1);
    assert_int_equal(ask_as("ghost", l, "ghost:1", 60000, 0, NULL).verdict, 4);
    redisReply *r = redisCommand(rc, "ZRANGE u:host:h:queue 0 -1");
    assert_int_equal(r->elements, 1);
    assert_string_equal(r->element[0]->str, "ghost:1");
    freeReplyObject(r);
    const char *rep[] = {"a:1,1,-1,5"};
    ask_as("a", l, NULL, 60000, 1, rep);
    r = redisCommand(rc, "ZCARD u:host:h:leases");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    r = redisCommand(rc, "ZCARD u:host:h:queue");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    /* Found empty, the queue is no longer looked at; a full host's ask queues again. */
    assert_int_equal(state_field(HOST_QUEUED), 0);
    assert_int_equal(ask_as("a", l, "a:2", 60000, 0, NULL).verdict, 1);
    assert_int_equal(state_field(HOST_QUEUED), 0);
    assert_int_equal(ask_as("b", l, "b:1", 60000, 0, NULL).verdict, 4);
    assert_int_equal(state_field(HOST_QUEUED), 1);
}

/* ---- hosts.c on a loop ----------------------------------------------------------------------- */

static struct settings settings_for(int port, const char *limits)
{
    struct settings s;
    memset(&s, 0, sizeof(s));
    snprintf(s.redis.host, sizeof(s.redis.host), "127.0.0.1");
    s.redis.port = port;
    s.prefix = "u:";
    s.consumer = "loop";
    char err[256];
    assert_int_equal(host_limits_parse(limits, &s.host_limits, err, sizeof(err)), 0);
    return s;
}

struct gone {
    int n;
    double at[64];
    int waited[64];
};

static void on_go(void *arg, int waited)
{
    struct gone *g = arg;
    g->waited[g->n] = waited;
    g->at[g->n++] = clock_now_ms();
}

static int run_until(struct event_base *base, const int *counter, int want, double timeout_s)
{
    for (double end = tserver_now() + timeout_s; tserver_now() < end;) {
        if (*counter >= want)
            return 1;
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(500);
    }
    return *counter >= want;
}

static int link_wait(struct event_base *base, struct hosts *hs)
{
    for (double end = tserver_now() + 5; tserver_now() < end && !link_up(hs->link);)
        event_base_loop(base, EVLOOP_ONCE);
    return link_up(hs->link);
}

/* Requests go spaced by the rate, fleet-wide state in Redis; those that waited say so. */
static void test_loop_rate(void **state)
{
    struct event_base *base = event_base_new();
    struct settings s = settings_for(redis.port, "h.test:rate=20,burst=2,inflight=50");
    char err[256];
    struct hosts *hs = hosts_new(base, &s, 1000, 1000, err, sizeof(err));
    assert_non_null(hs);
    assert_true(link_wait(base, hs));
    struct gone g = {0};
    struct host_ticket *t[8];
    for (int i = 0; i < 8; i++)
        assert_non_null(t[i] = hosts_ask(hs, "https://H.test:443/1/2", on_go, &g));
    assert_int_equal(hosts_waiting(hs), 8);
    assert_true(run_until(base, &g.n, 8, 5));
    assert_false(g.waited[0]);
    /* Each goes at its own start, one interval after the one before (burst 2: the first two at
     * once), never earlier; a timer late on a busy machine delays only its own. */
    for (int i = 2; i < 8; i++) {
        assert_true(g.waited[i]);
        double since = g.at[i] - g.at[0];
        if (since < (i - 1) * 50 - 10 || since > (i - 1) * 50 + 60)
            fail_msg("request %d went %.1f ms after the first", i, since);
    }
    long long calls, reqs;
    hosts_calls(hs, &calls, &reqs);
    assert_int_equal(reqs, 8);
    for (int i = 0; i < 8; i++)
        hosts_done(t[i], HOST_OK, -1, 10);
    /* the reports go with the next call, or alone a moment later */
    struct gone idle = {0};
    run_until(base, &idle.n, 1, 0.1);
    redisReply *r = redisCommand(rc, "ZCARD u:host:h.test:leases");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    int waited = 0;
    for (int i = 0; i < 8; i++)
        waited += g.waited[i];
    r = redisCommand(rc, "HGET u:host:h.test:state %s", HOST_WAITS);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(atoi(r->str), waited); /* the fleet's count of waits for the host */
    freeReplyObject(r);
    hosts_calls(hs, &calls, &reqs);
    assert_true(calls <= 10); /* one per request, the last reports in one */
    hosts_free(hs);
    event_base_free(base);
}

/* A full host: the head goes as soon as one of our own requests to it ends (the report hands
 * the slot to the first queued ask; before the subscription is up, the head asks at once). */
static void test_loop_full_then_done(void **state)
{
    struct event_base *base = event_base_new();
    struct settings s = settings_for(redis.port, "*:rate=1000,burst=100,inflight=2");
    char err[256];
    struct hosts *hs = hosts_new(base, &s, 1000, 1000, err, sizeof(err));
    assert_true(link_wait(base, hs));
    /* a long mean request time: the wait hint alone would be HOSTS_FULL_WAIT_MAX */
    hset(HOST_DURATION, 1e6);
    struct gone g = {0};
    struct host_ticket *a = hosts_ask(hs, "http://h/1", on_go, &g);
    struct host_ticket *b = hosts_ask(hs, "http://h/2", on_go, &g);
    struct host_ticket *c = hosts_ask(hs, "http://h/3", on_go, &g);
    assert_true(run_until(base, &g.n, 2, 3));
    assert_false(run_until(base, &g.n, 3, 0.2));
    double t0 = clock_now_ms();
    hosts_done(a, HOST_OK, -1, 5);
    assert_true(run_until(base, &g.n, 3, 3));
    assert_true(g.at[2] - t0 < 100);
    assert_true(g.waited[2]);
    hosts_drop(c); /* in flight, abandoned: the slot comes back too */
    hosts_done(b, HOST_OK, -1, 5);
    hosts_free(hs);
    event_base_free(base);
}

/* A full host: the ask waits in the host's queue and is handed the slot that frees, told on the
 * worker's channel; it never asks again meanwhile. */
static void test_loop_full_woken(void **state)
{
    struct event_base *base = event_base_new();
    struct settings s = settings_for(redis.port, "*:rate=1000,burst=100,inflight=1");
    char err[256];
    struct hosts *hs = hosts_new(base, &s, 1000, 1000, err, sizeof(err));
    assert_true(link_wait(base, hs));
    for (double end = tserver_now() + 5; tserver_now() < end && !hs->subscribed;)
        event_base_loop(base, EVLOOP_ONCE);
    assert_true(hs->subscribed);
    struct limits l = {1000, 100, 1};
    assert_int_equal(ask_as("other", l, "other:1", 60000, 0, NULL).verdict, 1);
    struct gone g = {0};
    struct host_ticket *t = hosts_ask(hs, "http://h/1", on_go, &g);
    assert_false(run_until(base, &g.n, 1, 0.3)); /* full: queued */
    long long calls, reqs, before;
    hosts_calls(hs, &before, &reqs);
    assert_int_equal(before, 1);
    assert_false(run_until(base, &g.n, 1, 1)); /* no poll meanwhile */
    hosts_calls(hs, &calls, &reqs);
    assert_int_equal(calls, before);
    redisReply *r = redisCommand(rc, "ZCARD u:host:h:queue");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    double freed = clock_now_ms();
    const char *rep[] = {"other:1,1,-1,5"}; /* the other worker's request ends */
    assert_int_equal(ask_as("other", l, NULL, 60000, 1, rep).verdict, 0);
    assert_true(run_until(base, &g.n, 1, 2));
    assert_true(g.at[0] - freed < 200);
    assert_true(g.waited[0]);
    hosts_calls(hs, &calls, &reqs);
    assert_int_equal(calls, before); /* handed over: no ask of ours */
    r = redisCommand(rc, "ZRANGE u:host:h:leases 0 -1");
    assert_int_equal(r->elements, 1);
    assert_string_equal(r->element[0]->str, "loop:1");
    freeReplyObject(r);
    hosts_done(t, HOST_OK, -1, 5);
    hosts_free(hs);
    event_base_free(base);
}

static int room_of(void *arg)
{
    return *(int *)arg;
}

/* A request its host made wait is parked: no work of the worker's until it asks again, which
 * takes room; without room its host waits for hosts_resume. */
static void test_loop_parked_needs_room(void **state)
{
    struct event_base *base = event_base_new();
    struct settings s = settings_for(redis.port, "*:rate=1000,burst=100,inflight=1");
    char err[256];
    struct hosts *hs = hosts_new(base, &s, 1000, 1000, err, sizeof(err));
    assert_true(link_wait(base, hs));
    int room = 0;
    hosts_room(hs, room_of, &room);
    struct gone g = {0};
    struct host_ticket *a = hosts_ask(hs, "http://h/1", on_go, &g);
    assert_int_equal(hosts_parked(hs), 0); /* a first ask is work: it has not waited */
    assert_true(run_until(base, &g.n, 1, 3));
    struct host_ticket *b = hosts_ask(hs, "http://h/2", on_go, &g);
    struct host_ticket *c = hosts_ask(hs, "http://h/3", on_go, &g);
    assert_false(run_until(base, &g.n, 2, 0.2)); /* the host is full */
    assert_int_equal(hosts_parked(hs), 2);
    hosts_done(a, HOST_OK, -1, 5); /* a slot, but no room: b stays parked */
    assert_false(run_until(base, &g.n, 2, 0.3));
    assert_int_equal(hosts_parked(hs), 2);
    room = 1;
    hosts_resume(hs);
    assert_int_equal(hosts_parked(hs), 1); /* b took the room at once */
    assert_true(run_until(base, &g.n, 2, 3));
    assert_true(g.waited[1]);
    hosts_drop(c);
    assert_int_equal(hosts_parked(hs), 0);
    hosts_done(b, HOST_OK, -1, 5);
    hosts_free(hs);
    event_base_free(base);
}

/* Redis gone: each worker keeps its share (the limit divided by the workers last counted),
 * never no limit. */
static void test_loop_local_share(void **state)
{
    struct event_base *base = event_base_new();
    struct settings s = settings_for(redis.port, "*:rate=40,burst=4,inflight=8");
    char err[256];
    struct hosts *hs = hosts_new(base, &s, 1000, 500, err, sizeof(err));
    assert_true(link_wait(base, hs));
    double now = redis_ms();
    redisReply *r = redisCommand(rc, "ZADD u:hosts:fleet %f a %f b %f c", now, now, now);
    freeReplyObject(r);
    struct gone g = {0};
    struct host_ticket *first = hosts_ask(hs, "http://h/0", on_go, &g);
    assert_true(run_until(base, &g.n, 1, 3));
    assert_int_equal(hs->fleet, 4); /* a, b, c and this one */
    hosts_done(first, HOST_OK, -1, 1);

    tserver_kill(&redis);
    redisFree(rc);
    rc = NULL;
    for (double end = tserver_now() + 5; tserver_now() < end && link_up(hs->link);)
        event_base_loop(base, EVLOOP_ONCE);
    assert_false(link_up(hs->link));
    /* a share of 10 a second, a burst of 1 and 2 at once */
    struct gone alone = {0};
    struct host_ticket *t[4];
    for (int i = 0; i < 4; i++)
        t[i] = hosts_ask(hs, "http://h/1", on_go, &alone);
    assert_true(run_until(base, &alone.n, 2, 3));
    assert_in_range((long)(alone.at[1] - alone.at[0]), 90, 150);
    assert_false(run_until(base, &alone.n, 3, 0.4)); /* two in flight: the share is full */
    hosts_done(t[0], HOST_OK, -1, 1);
    assert_true(run_until(base, &alone.n, 3, 1));
    hosts_done(t[1], HOST_OK, -1, 1);
    hosts_done(t[2], HOST_OK, -1, 1);
    assert_true(run_until(base, &alone.n, 4, 1));
    assert_true(alone.waited[3]);
    hosts_done(t[3], HOST_OK, -1, 1);
    hosts_free(hs);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_rate_reserves_start_times, flush_db),
        cmocka_unit_test_setup(test_inflight_leases_and_lapse, flush_db),
        cmocka_unit_test_setup(test_pause_with_retry_after, flush_db),
        cmocka_unit_test_setup(test_pause_backoff_doubles, flush_db),
        cmocka_unit_test_setup(test_circuit_breaker, flush_db),
        cmocka_unit_test_setup(test_adaptive_concurrency, flush_db),
        cmocka_unit_test_setup(test_fleet_count, flush_db),
        cmocka_unit_test_setup(test_fleet_joined_on_a_beat, flush_db),
        cmocka_unit_test_setup(test_host_keys_expire_without_a_renewal_per_call, flush_db),
        cmocka_unit_test_setup(test_queue_skips_deaf_workers, flush_db),
        cmocka_unit_test_setup(test_loop_rate, flush_db),
        cmocka_unit_test_setup(test_loop_full_then_done, flush_db),
        cmocka_unit_test_setup(test_loop_parked_needs_room, flush_db),
        cmocka_unit_test_setup(test_loop_full_woken, flush_db),
        cmocka_unit_test_setup(test_loop_local_share, flush_db),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
