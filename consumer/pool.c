/* pool.c -- worker threads fed by a FIFO; results return to the loop through an eventfd.
 *
 * The loop thread only ever takes the lock for a few pointer moves: submit appends a task, and
 * the eventfd callback swaps out the whole list of finished tasks, then runs their `done` with
 * the lock released. Tasks carry their own argument, so the pool knows nothing of what they do. */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct task {
    pool_fn *work, *done;
    void *arg;
    struct task *next;
};

struct task_list {
    struct task *head, *tail;
};

struct pool {
    pthread_mutex_t lock;
    pthread_cond_t wake, exited;              /* exited: signalled by each thread as it leaves */
    struct task_list todo, finished, dropped; /* dropped: never started, at pool_stop */
    int stopping, busy, nthreads, running, efd;
    pthread_t *threads;
    struct event *ev;
};

static void list_push(struct task_list *l, struct task *t)
{
    t->next = NULL;
    if (l->tail)
        l->tail->next = t;
    else
        l->head = t;
    l->tail = t;
}

static struct task *list_pop(struct task_list *l)
{
    struct task *t = l->head;
    if (t) {
        l->head = t->next;
        if (l->head == NULL)
            l->tail = NULL;
    }
    return t;
}

static void *pool_thread(void *arg)
{
    struct pool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        struct task *t = list_pop(&p->todo);
        if (t == NULL) {
            if (p->stopping)
                break;
            pthread_cond_wait(&p->wake, &p->lock);
            continue;
        }
        pthread_mutex_unlock(&p->lock);
        t->work(t->arg);
        pthread_mutex_lock(&p->lock);
        int was_empty = p->finished.head == NULL;
        list_push(&p->finished, t);
        if (was_empty) {
            uint64_t one = 1;
            ssize_t r = write(p->efd, &one, sizeof(one));
            (void)r; /* a full counter still wakes the loop */
        }
    }
    p->running--;
    pthread_cond_signal(&p->exited);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static void pool_deliver(struct pool *p)
{
    pthread_mutex_lock(&p->lock);
    struct task_list done = p->finished;
    p->finished.head = p->finished.tail = NULL;
    pthread_mutex_unlock(&p->lock);

    struct task *t;
    while ((t = list_pop(&done)) != NULL) {
        p->busy--;
        t->done(t->arg);
        free(t);
    }
}

static void pool_on_event(evutil_socket_t fd, short what, void *arg)
{
    uint64_t n;
    ssize_t r = read(fd, &n, sizeof(n));
    (void)r;
    pool_deliver(arg);
}

struct pool *pool_new(struct event_base *base, int threads, char *err, size_t errlen)
{
    struct pool *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->exited, &ca);
    pthread_condattr_destroy(&ca);
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    p->threads = calloc((size_t)threads, sizeof(*p->threads));
    if (p->efd < 0 || p->threads == NULL) {
        snprintf(err, errlen, "pool: %s", strerror(errno));
        goto err;
    }
    p->ev = event_new(base, p->efd, EV_READ | EV_PERSIST, pool_on_event, p);
    if (p->ev == NULL || event_add(p->ev, NULL) < 0) {
        snprintf(err, errlen, "pool: cannot watch the eventfd");
        goto err;
    }
    for (; p->nthreads < threads; p->nthreads++) {
        pthread_mutex_lock(&p->lock);
        p->running++;
        pthread_mutex_unlock(&p->lock);
        int rc = pthread_create(&p->threads[p->nthreads], NULL, pool_thread, p);
        if (rc != 0) {
            pthread_mutex_lock(&p->lock);
            p->running--;
            pthread_mutex_unlock(&p->lock);
            snprintf(err, errlen, "pool: pthread_create: %s", strerror(rc));
            goto err;
        }
    }
    return p;
err:
    pool_free(p);
    return NULL;
}

static void pool_add(struct pool *p, pool_fn *work, pool_fn *done, void *arg, int first)
{
    struct task *t = malloc(sizeof(*t));
    if (t == NULL)
        abort(); /* a few bytes: nothing sensible is left to do without them */
    t->work = work;
    t->done = done;
    t->arg = arg;
    p->busy++;
    pthread_mutex_lock(&p->lock);
    if (p->stopping) {
        list_push(&p->dropped, t);
    } else if (first) {
        t->next = p->todo.head;
        p->todo.head = t;
        if (p->todo.tail == NULL)
            p->todo.tail = t;
    } else {
        list_push(&p->todo, t);
    }
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
}

void pool_submit(struct pool *p, pool_fn *work, pool_fn *done, void *arg)
{
    pool_add(p, work, done, arg, 0);
}

void pool_submit_first(struct pool *p, pool_fn *work, pool_fn *done, void *arg)
{
    pool_add(p, work, done, arg, 1);
}

int pool_busy(const struct pool *p)
{
    return p->busy;
}

int pool_threads(const struct pool *p)
{
    return p->nthreads;
}

int pool_stop(struct pool *p, long wait_ms)
{
    if (p == NULL)
        return 0;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->lock);
    if (!p->stopping) {
        p->stopping = 1;
        struct task *t;
        while ((t = list_pop(&p->todo)) != NULL) /* nobody waits for them any more */
            list_push(&p->dropped, t);
        pthread_cond_broadcast(&p->wake);
    }
    while (p->running > 0 && pthread_cond_timedwait(&p->exited, &p->lock, &until) == 0)
        ;
    int left = p->running;
    pthread_mutex_unlock(&p->lock);
    return left;
}

void pool_free(struct pool *p)
{
    if (p == NULL)
        return;
    pool_stop(p, 0);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pool_deliver(p);
    struct task *t;
    while ((t = list_pop(&p->dropped)) != NULL) {
        p->busy--;
        t->done(t->arg);
        free(t);
    }
    if (p->ev)
        event_free(p->ev);
    if (p->efd >= 0)
        close(p->efd);
    free(p->threads);
    pthread_cond_destroy(&p->exited);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
