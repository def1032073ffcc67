/* test_link.c -- the self-healing async Redis link against a real redis-server this test starts:
 * it comes up only after SELECT, a command whose server dies gets NULL exactly once, the link
 * comes back by itself when the server does, and the watchdog drops a connection that hangs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/server.h"
#include "link.h"
#include "log.h"

static struct tserver redis = {.pid = -1};
static char redis_bin[1024] = "/usr/bin/redis-server";
static char port_arg[16];

struct seen {
    int ups, downs;
    int replies, nulls;
    char last[64];
};

static void on_state(struct link *l, int up, void *arg)
{
    struct seen *s = arg;
    if (up)
        s->ups++;
    else
        s->downs++;
}

static void on_reply(struct link *l, redisReply *r, void *arg)
{
    struct seen *s = arg;
    s->replies++;
    if (r == NULL) {
        s->nulls++;
        return;
    }
    snprintf(s->last, sizeof(s->last), "%s",
             r->type == REDIS_REPLY_INTEGER ? "int"
             : r->str                       ? r->str
                                            : "");
}

/* Turns the loop until *counter reaches want or timeout_s passes; the link's watchdog ticks
 * every 250 ms, so each turn returns soon. */
static int run_until(struct event_base *base, const int *counter, int want, double timeout_s)
{
    for (double end = tserver_now() + timeout_s; tserver_now() < end;) {
        if (*counter >= want)
            return 1;
        event_base_loop(base, EVLOOP_ONCE);
    }
    return *counter >= want;
}

static int redis_start(void)
{
    char *argv[] = {redis_bin, "--port", port_arg,       "--bind", "127.0.0.1",
                    "--save",  "",       "--appendonly", "no",     "--enable-debug-command",
                    "yes",     NULL};
    return tserver_start(&redis, argv, 10);
}

static int group_setup(void **state)
{
    const char *bin = getenv("PIXFLOW_REDIS_SERVER");
    if (bin && *bin)
        snprintf(redis_bin, sizeof(redis_bin), "%s", bin);
    snprintf(redis.log, sizeof(redis.log), "/tmp/pixflow-test-link-%d.log", (int)getpid());
    redis.port = tserver_free_port();
    snprintf(port_arg, sizeof(port_arg), "%d", redis.port);
    log_init("test_link", LL_ERROR, 0);
    return redis.port > 0 && redis_start() == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    tserver_stop(&redis);
    unlink(redis.log);
    return 0;
}

static struct redis_target target(int db)
{
    struct redis_target t = {.port = redis.port, .db = db};
    snprintf(t.host, sizeof(t.host), "127.0.0.1");
    return t;
}

/* The link is up only once SELECT answered: what it writes lands in the configured database. */
static void test_up_after_select(void **state)
{
    struct event_base *base = event_base_new();
    struct redis_target t = target(5);
    struct seen s = {0};
    struct link *l = link_new(base, &t, "test", 2000, on_state, &s);

    assert_non_null(l);
    assert_false(link_up(l));
    assert_int_equal(link_command(l, on_reply, &s, 1, (const char *[]){"PING"}, NULL), -1);
    assert_true(run_until(base, &s.ups, 1, 5));
    const char *set[] = {"SET", "link-test", "here"};
    assert_int_equal(link_command(l, on_reply, &s, 3, set, NULL), 0);
    assert_true(run_until(base, &s.replies, 1, 5));
    assert_string_equal(s.last, "OK");

    redisContext *c = redisConnect("127.0.0.1", redis.port);
    assert_non_null(c);
    redisReply *r = redisCommand(c, "SELECT 5");
    freeReplyObject(r);
    r = redisCommand(c, "GET link-test");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "here");
    freeReplyObject(r);
    redisFree(c);
    link_free(l);
    event_base_free(base);
}

/* A server killed under a waiting command: the callback gets NULL once, the state goes down,
 * and the link comes back by itself when the server is back on its port. */
static void test_heals_after_server_crash(void **state)
{
    struct event_base *base = event_base_new();
    struct redis_target t = target(0);
    struct seen s = {0};
    struct link *l = link_new(base, &t, "test", 10000, on_state, &s);

    assert_true(run_until(base, &s.ups, 1, 5));
    const char *blpop[] = {"BLPOP", "link-test-nothing", "5"};
    assert_int_equal(link_command(l, on_reply, &s, 3, blpop, NULL), 0);
    event_base_loop(base, EVLOOP_NONBLOCK);
    tserver_kill(&redis);
    assert_true(run_until(base, &s.downs, 1, 5));
    assert_int_equal(s.replies, 1);
    assert_int_equal(s.nulls, 1);
    assert_false(link_up(l));
    assert_int_equal(link_command(l, on_reply, &s, 1, (const char *[]){"PING"}, NULL), -1);

    assert_int_equal(redis_start(), 0);
    assert_true(run_until(base, &s.ups, 2, 10));
    assert_int_equal(link_command(l, on_reply, &s, 1, (const char *[]){"PING"}, NULL), 0);
    assert_true(run_until(base, &s.replies, 2, 5));
    assert_string_equal(s.last, "PONG");
    assert_int_equal(s.nulls, 1);
    link_free(l);
    event_base_free(base);
}

/* A server that stops answering (DEBUG SLEEP) past the timeout: the watchdog drops the
 * connection, the waiting command gets NULL, and the link reconnects once Redis answers. */
static void test_watchdog_drops_a_hung_server(void **state)
{
    struct event_base *base = event_base_new();
    struct redis_target t = target(0);
    struct seen s = {0};
    struct link *l = link_new(base, &t, "test", 500, on_state, &s);

    assert_true(run_until(base, &s.ups, 1, 5));
    const char *sleep[] = {"DEBUG", "SLEEP", "2"};
    assert_int_equal(link_command(l, on_reply, &s, 3, sleep, NULL), 0);
    double t0 = tserver_now();
    assert_true(run_until(base, &s.nulls, 1, 5));
    assert_true(tserver_now() - t0 < 1.9); /* dropped by the watchdog, not answered late */
    assert_int_equal(s.downs, 1);
    assert_true(run_until(base, &s.ups, 2, 10));
    assert_int_equal(link_command(l, on_reply, &s, 1, (const char *[]){"PING"}, NULL), 0);
    assert_true(run_until(base, &s.replies, 2, 5));
    assert_string_equal(s.last, "PONG");
    link_free(l);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_up_after_select),
        cmocka_unit_test(test_heals_after_server_crash),
        cmocka_unit_test(test_watchdog_drops_a_hung_server),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
