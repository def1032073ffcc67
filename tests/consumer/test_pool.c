/* test_pool.c -- the worker's thread pool: completions on the loop, and a stop that does not wait
 * for a thread stuck in its task nor start the tasks still queued. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdint.h>
#include <stdatomic.h>
#include <time.h>

#include "pool.h"

struct probe {
    atomic_int worked;
    int done; /* loop thread only */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int release; /* the blocking task may return */
};

static void probe_work(void *arg)
{
    struct probe *p = arg;
    atomic_fetch_add(&p->worked, 1);
}

static void probe_done(void *arg)
{
    ((struct probe *)arg)->done++;
}

static void probe_block(void *arg)
{
    struct probe *p = arg;
    atomic_fetch_add(&p->worked, 1);
    pthread_mutex_lock(&p->lock);
    while (!p->release)
        pthread_cond_wait(&p->cond, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

static void probe_init(struct probe *p)
{
    atomic_init(&p->worked, 0);
    p->done = 0;
    p->release = 0;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
}

static void probe_release(struct probe *p)
{
    pthread_mutex_lock(&p->lock);
    p->release = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

static void wait_worked(struct probe *p, int n)
{
    for (int i = 0; i < 2000 && atomic_load(&p->worked) < n; i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    assert_int_equal(atomic_load(&p->worked), n);
}

static void test_completions_come_back_on_the_loop(void **state)
{
    struct event_base *base = event_base_new();
    char err[128];
    struct pool *pool = pool_new(base, 2, err, sizeof(err));
    assert_non_null(pool);
    struct probe p;
    probe_init(&p);
    for (int i = 0; i < 20; i++)
        pool_submit(pool, probe_work, probe_done, &p);
    assert_int_equal(pool_busy(pool), 20);
    /* Each turn blocks until the pool's eventfd fires; the exit timer bounds the wait, so a lost
     * completion fails the test instead of hanging it. */
    struct timeval limit = {10, 0};
    event_base_loopexit(base, &limit);
    while (p.done < 20 && !event_base_got_exit(base))
        event_base_loop(base, EVLOOP_ONCE);
    assert_int_equal(p.done, 20);
    assert_int_equal(atomic_load(&p.worked), 20);
    assert_int_equal(pool_busy(pool), 0);
    assert_int_equal(pool_stop(pool, 1000), 0);
    pool_free(pool);
    event_base_free(base);
}

static void test_stop_leaves_a_stuck_thread_and_drops_the_queue(void **state)
{
    struct event_base *base = event_base_new();
    char err[128];
    struct pool *pool = pool_new(base, 1, err, sizeof(err));
    assert_non_null(pool);
    struct probe p;
    probe_init(&p);
    pool_submit(pool, probe_block, probe_done, &p);
    wait_worked(&p, 1); /* the only thread is inside it */
    for (int i = 0; i < 3; i++)
        pool_submit(pool, probe_work, probe_done, &p);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(pool_stop(pool, 200), 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(ms >= 150 && ms < 2000);
    pool_submit(pool, probe_work, probe_done, &p); /* after the stop: never run either */

    probe_release(&p);
    pool_free(pool); /* joins, then hands every completion back, run or not */
    assert_int_equal(atomic_load(&p.worked), 1);
    assert_int_equal(p.done, 5);
    event_base_free(base);
}

/* Runs in order of start into a shared log: which task ran when. */
static int order_log[8], order_n;
static pthread_mutex_t order_lock = PTHREAD_MUTEX_INITIALIZER;

static void order_work(void *arg)
{
    pthread_mutex_lock(&order_lock);
    order_log[order_n++] = (int)(intptr_t)arg;
    pthread_mutex_unlock(&order_lock);
}

static void order_done(void *arg)
{
}

static void test_submit_first_goes_ahead_of_the_queue(void **state)
{
    struct event_base *base = event_base_new();
    char err[128];
    struct pool *pool = pool_new(base, 1, err, sizeof(err));
    assert_non_null(pool);
    struct probe p;
    probe_init(&p);
    order_n = 0;
    pool_submit(pool, probe_block, probe_done, &p);
    wait_worked(&p, 1); /* the only thread is busy: the rest queue */
    pool_submit(pool, order_work, order_done, (void *)(intptr_t)1);
    pool_submit(pool, order_work, order_done, (void *)(intptr_t)2);
    pool_submit_first(pool, order_work, order_done, (void *)(intptr_t)3);
    pool_submit_first(pool, order_work, order_done, (void *)(intptr_t)4);
    probe_release(&p);
    for (int i = 0; i < 2000 && order_n < 4; i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    assert_int_equal(order_n, 4);
    int want[] = {4, 3, 1, 2};
    for (int i = 0; i < 4; i++)
        assert_int_equal(order_log[i], want[i]);
    assert_int_equal(pool_stop(pool, 1000), 0);
    pool_free(pool);
    event_base_free(base);
}

static void test_stop_of_an_idle_pool_is_immediate(void **state)
{
    struct event_base *base = event_base_new();
    char err[128];
    struct pool *pool = pool_new(base, 3, err, sizeof(err));
    assert_non_null(pool);
    assert_int_equal(pool_stop(pool, 5000), 0);
    assert_int_equal(pool_stop(pool, 0), 0); /* twice is fine */
    pool_free(pool);
    event_base_free(base);
}

/* Completions that never reached the loop (it was not run) are delivered by pool_free(), each
 * once: after its work, or without it when the stop dropped it from the queue. */
static void test_free_delivers_finished_work(void **state)
{
    struct event_base *base = event_base_new();
    char err[128];
    struct pool *p = pool_new(base, 2, err, sizeof(err));
    struct probe probes[6];

    assert_non_null(p);
    for (int i = 0; i < 6; i++) {
        probe_init(&probes[i]);
        pool_submit(p, probe_work, probe_done, &probes[i]);
    }
    pool_free(p);
    for (int i = 0; i < 6; i++) {
        assert_true(atomic_load(&probes[i].worked) <= 1);
        assert_int_equal(probes[i].done, 1);
    }
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_completions_come_back_on_the_loop),
        cmocka_unit_test(test_stop_leaves_a_stuck_thread_and_drops_the_queue),
        cmocka_unit_test(test_submit_first_goes_ahead_of_the_queue),
        cmocka_unit_test(test_stop_of_an_idle_pool_is_immediate),
        cmocka_unit_test(test_free_delivers_finished_work),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
