/* test_pool.c -- the thread pool: work runs off the loop thread, every completion comes back on
 * the loop thread exactly once, busy counts what is not yet done, and pool_free() delivers what
 * finished but was not yet handed back. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "pool.h"

#define JOBS 200

struct job {
    pthread_t loop, ran_on;
    int done_calls;
    int done_on_loop;
    int value, result;
    struct event_base *base;
    atomic_int *remaining;
};

static void job_work(void *arg)
{
    struct job *j = arg;
    j->ran_on = pthread_self();
    j->result = j->value * 2;
}

static void job_done(void *arg)
{
    struct job *j = arg;
    j->done_calls++;
    j->done_on_loop = pthread_equal(pthread_self(), j->loop);
    if (atomic_fetch_sub(j->remaining, 1) == 1)
        event_base_loopbreak(j->base);
}

static void test_every_job_once_on_the_loop(void **state)
{
    struct event_base *base = event_base_new();
    char err[128];
    struct pool *p = pool_new(base, 4, err, sizeof(err));
    static struct job jobs[JOBS];
    atomic_int remaining = JOBS;

    assert_non_null(p);
    assert_int_equal(pool_threads(p), 4);
    for (int i = 0; i < JOBS; i++) {
        jobs[i] =
            (struct job){.loop = pthread_self(), .value = i, .base = base, .remaining = &remaining};
        pool_submit(p, job_work, job_done, &jobs[i]);
    }
    assert_int_equal(pool_busy(p), JOBS);
    struct timeval limit = {10, 0};
    event_base_loopexit(base, &limit); /* a lost completion fails the test, not hangs it */
    event_base_dispatch(base);
    assert_int_equal(atomic_load(&remaining), 0);
    assert_int_equal(pool_busy(p), 0);
    for (int i = 0; i < JOBS; i++) {
        assert_int_equal(jobs[i].done_calls, 1);
        assert_true(jobs[i].done_on_loop);
        assert_false(pthread_equal(jobs[i].ran_on, pthread_self()));
        assert_int_equal(jobs[i].result, 2 * i);
    }
    pool_free(p);
    event_base_free(base);
}

static void slow_work(void *arg)
{
    usleep(20 * 1000);
    job_work(arg);
}

static void count_done(void *arg)
{
    struct job *j = arg;
    j->done_calls++;
    j->done_on_loop = pthread_equal(pthread_self(), j->loop);
}

/* Completions that never reached the loop (it was not run) are delivered by pool_free(). */
static void test_free_delivers_finished_work(void **state)
{
    struct event_base *base = event_base_new();
    char err[128];
    struct pool *p = pool_new(base, 2, err, sizeof(err));
    struct job jobs[6];

    assert_non_null(p);
    for (int i = 0; i < 6; i++) {
        jobs[i] = (struct job){.loop = pthread_self(), .value = i};
        pool_submit(p, slow_work, count_done, &jobs[i]);
    }
    pool_free(p);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(jobs[i].done_calls, 1);
        assert_true(jobs[i].done_on_loop);
        assert_int_equal(jobs[i].result, 2 * i);
    }
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_job_once_on_the_loop),
        cmocka_unit_test(test_free_delivers_finished_work),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
