/* test_sentinel.c -- lib/sentinel_watch.c's reading of +switch-master, and lib/rconn.c's answer
 * to READONLY (the blocking programs' sign of a failover). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rconn.h"
#include "sentinel_watch.h"

static void test_switch_master_message(void **state)
{
    struct redis_node n = {"", 0};
    assert_int_equal(sentinel_watch_parse("pixflow 127.0.0.1 6379 10.0.0.2 6380", "pixflow", &n),
                     0);
    assert_string_equal(n.host, "10.0.0.2");
    assert_int_equal(n.port, 6380);
    /* another primary's failover, or a message cut short or garbled, moves nothing */
    n.port = 0;
    assert_int_equal(sentinel_watch_parse("other 127.0.0.1 6379 10.0.0.2 6380", "pixflow", &n), -1);
    assert_int_equal(sentinel_watch_parse("pixflow 127.0.0.1 6379 10.0.0.2", "pixflow", &n), -1);
    assert_int_equal(sentinel_watch_parse("pixflow 127.0.0.1 6379 10.0.0.2 0", "pixflow", &n), -1);
    assert_int_equal(sentinel_watch_parse("pixflow 127.0.0.1 6379 10.0.0.2 70000", "pixflow", &n),
                     -1);
    assert_int_equal(sentinel_watch_parse("", "pixflow", &n), -1);
    assert_int_equal(sentinel_watch_parse("pixflowx 1 2 3 4", "pixflow", &n), -1);
    assert_int_equal(n.port, 0);
}

static void test_readonly_marks_the_connection_broken(void **state)
{
    redisContext c;
    memset(&c, 0, sizeof(c));
    char err[256];
    redisReply r = {.type = REDIS_REPLY_ERROR, .str = "WRONGTYPE Operation against a key"};
    r.len = strlen(r.str);
    assert_int_equal(rconn_error(&c, &r, err, sizeof(err)), -1);
    assert_string_equal(err, "WRONGTYPE Operation against a key");
    assert_int_equal(c.err, 0); /* an error of the command: the connection is fine */

    r.str = "READONLY You can't write against a read only replica.";
    r.len = strlen(r.str);
    assert_int_equal(rconn_error(&c, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "READONLY"));
    assert_int_not_equal(c.err, 0); /* dropped by its owner, which connects again */
    assert_non_null(strstr(c.errstr, "no longer the primary"));

    redisReply ok = {.type = REDIS_REPLY_STATUS, .str = "OK", .len = 2};
    memset(&c, 0, sizeof(c));
    assert_int_equal(rconn_error(&c, &ok, err, sizeof(err)), 0);
    assert_int_equal(c.err, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_switch_master_message),
        cmocka_unit_test(test_readonly_marks_the_connection_broken),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
