/* test_sync.c — events, futures, semaphores, mutexes and conditions: deadlines, FIFO
 * wake-ups, kills at every point of a wait, hand-over without loss or barging, robust
 * mutexes, and events and futures driven from other OS threads (after gevent's
 * test__event.py, test__semaphore.py and test__lock.py). */
#include "green_test.h"

#include <pthread.h>
#include <unistd.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

/* ---- one green thread's blocking call, and what came of it ---- */

static int order_log[64]; /* indexes of the calls, in the order they returned */
static int order_n;

struct call {
    void *obj;          /* the event, future, semaphore, mutex or condition */
    green_mutex_t *m;   /* a condition's mutex */
    int64_t deadline;
    int index;
    int then_release;   /* semaphores and mutexes: give back what was obtained */
    int depth;          /* recursive mutexes: how many times to lock */
    int r, err;         /* the call's result and errno */
    void *value;        /* futures: what get delivered */
    int64_t at;         /* when it returned */
    int cancelled;      /* green_cancelled() right after */
    int release_r;      /* what the release (or unlock) afterwards returned */
};

static struct call *new_calls(int n, void *obj, int64_t deadline)
{
    struct call *c = calloc((size_t)n, sizeof *c);
    for (int i = 0; i < n; i++) {
        c[i] = (struct call){.obj = obj, .deadline = deadline, .index = i, .r = 7, .release_r = 7};
    }
    return c;
}

static void record(struct call *c, int r)
{
    c->err = r ? errno : 0;
    c->r = r;
    c->at = green_now();
    c->cancelled = green_cancelled();
    if (order_n < (int)(sizeof order_log / sizeof *order_log))
        order_log[order_n++] = c->index;
}

static void *event_waiter(void *arg)
{
    struct call *c = arg;
    record(c, green_event_wait(c->obj, c->deadline));
    return NULL;
}

static void *future_getter(void *arg)
{
    struct call *c = arg;
    record(c, green_future_get(c->obj, &c->value, c->deadline));
    return NULL;
}

static void *sem_acquirer(void *arg)
{
    struct call *c = arg;
    record(c, green_sem_acquire(c->obj, c->deadline));
    if (c->r == 0 && c->then_release)
        c->release_r = green_sem_release(c->obj);
    return NULL;
}

/* Locks, and (with then_release) unlocks after a yield: whoever else wants the mutex
 * meanwhile queues. After EOWNERDEAD the caller owns the mutex too. */
static void *mutex_locker(void *arg)
{
    struct call *c = arg;
    record(c, green_mutex_lock(c->obj, c->deadline));
    if ((c->r == 0 || c->err == EOWNERDEAD) && c->then_release) {
        green_yield();
        c->release_r = green_mutex_unlock(c->obj);
    }
    return NULL;
}

/* Locks the condition's mutex, waits, and unlocks: release_r == 0 proves that the wait
 * returned holding the mutex, whatever its outcome. */
static void *cond_waiter(void *arg)
{
    struct call *c = arg;
    if (green_mutex_lock(c->m, -1) != 0)
        return (void *)1;
    record(c, green_cond_wait(c->obj, c->m, c->deadline));
    c->release_r = green_mutex_unlock(c->m);
    return NULL;
}

static void spawn_calls(green_t *gs, struct call *c, int n, green_fn fn)
{
    for (int i = 0; i < n; i++) {
        gs[i] = green_spawn(fn, &c[i]);
        assert_non_null(gs[i]);
    }
}

/* Spawn them and let them start: each that has to wait is queued when this returns, in
 * index order. The order log starts afresh. */
static void start_calls(green_t *gs, struct call *c, int n, green_fn fn)
{
    order_n = 0;
    spawn_calls(gs, c, n, fn);
    assert_int_equal(green_yield(), 0);
}

static void join_all(green_t *gs, int n)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(green_join(gs[i], NULL, green_after(5000)), 0);
}

static void assert_order(const int *expect, int n)
{
    assert_int_equal(order_n, n);
    for (int i = 0; i < n; i++)
        assert_int_equal(order_log[i], expect[i]);
}

/* ======================================================================== */
/*  Events                                                                  */
/* ======================================================================== */

/* set, clear, is_set; a wait on a set event returns at once. */
static void test_event_basics(void **state)
{
    (void)state;
    green_event_t ev;
    assert_int_equal(green_event_init(&ev), 0);
    assert_int_equal(green_event_is_set(&ev), 0);
    assert_fails_with(green_event_wait(&ev, 0), ETIMEDOUT); /* 0: only looks */

    assert_int_equal(green_event_set(&ev), 0);
    assert_int_equal(green_event_is_set(&ev), 1);
    assert_int_equal(green_event_wait(&ev, 0), 0);
    assert_int_equal(green_event_wait(&ev, -1), 0);
    assert_int_equal(green_event_set(&ev), 0); /* setting twice is fine */

    assert_int_equal(green_event_clear(&ev), 0);
    assert_int_equal(green_event_is_set(&ev), 0);
    assert_int_equal(green_event_destroy(&ev), 0);

    assert_fails_with(green_event_init(NULL), EINVAL);
    assert_fails_with(green_event_set(NULL), EINVAL);
    assert_fails_with(green_event_clear(NULL), EINVAL);
    assert_fails_with(green_event_is_set(NULL), EINVAL);
    assert_fails_with(green_event_wait(NULL, -1), EINVAL);
    assert_fails_with(green_event_destroy(NULL), EINVAL);
    assert_hub_idle();
}

/* A wait gives up at its deadline, not before; so does one under a scoped timeout. */
static void test_event_wait_deadline(void **state)
{
    (void)state;
    green_event_t ev;
    green_event_init(&ev);
    int64_t d = green_after(50);
    assert_fails_with(green_event_wait(&ev, d), ETIMEDOUT);
    assert_true(green_now() >= d);
    assert_true(green_now() < d + LATE_MS);

    /* the same for a green thread, while the root waits for it */
    struct call *c = new_calls(1, &ev, green_after(30));
    green_t g = green_spawn(event_waiter, c);
    join_all(&g, 1);
    assert_int_equal(c->r, -1);
    assert_int_equal(c->err, ETIMEDOUT);
    assert_true(c->at >= c->deadline);

    int64_t t0 = green_now();
    assert_int_equal(green_timeout_push(30), 0);
    assert_fails_with(green_event_wait(&ev, -1), ETIMEDOUT);
    assert_int_equal(green_timeout_pop(), 0);
    assert_true(green_now() - t0 >= 30);
    assert_int_equal(green_event_destroy(&ev), 0);
    free(c);
    assert_hub_idle();
}

/* set() wakes every waiter, in the order they started waiting. */
static void test_event_set_wakes_all_in_order(void **state)
{
    (void)state;
    green_event_t ev;
    green_event_init(&ev);
    enum { N = 5 };
    struct call *c = new_calls(N, &ev, -1);
    green_t gs[N];
    start_calls(gs, c, N, event_waiter); /* all waiting now */
    assert_int_equal(stats().waiting, N);
    assert_fails_with(green_event_destroy(&ev), EBUSY);

    assert_int_equal(green_event_set(&ev), 0);
    assert_int_equal(order_n, 0); /* woken, not yet run */
    join_all(gs, N);
    const int expect[N] = {0, 1, 2, 3, 4};
    assert_order(expect, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(c[i].r, 0);
    assert_int_equal(green_event_destroy(&ev), 0);
    free(c);
    assert_hub_idle();
}

/* gevent's rule: a waiter returns 0 if the event was set at any moment during its
 * wait, even if it was cleared again before the waiter ran. */
static void test_event_set_then_clear_still_wakes(void **state)
{
    (void)state;
    green_event_t ev;
    green_event_init(&ev);
    enum { N = 3 };
    struct call *c = new_calls(N, &ev, green_after(5000));
    green_t gs[N];
    start_calls(gs, c, N, event_waiter);
    assert_int_equal(green_event_set(&ev), 0);
    assert_int_equal(green_event_clear(&ev), 0);
    join_all(gs, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(c[i].r, 0);
    /* a wait that starts now sees a clear event */
    assert_int_equal(green_event_is_set(&ev), 0);
    assert_fails_with(green_event_wait(&ev, green_after(20)), ETIMEDOUT);
    free(c);
    assert_hub_idle();
}

/* A waiter killed while it waits fails with ECANCELED and leaves the queue; one killed
 * after the event was set (before it ran) has seen the event: 0. */
static void test_event_waiter_killed(void **state)
{
    (void)state;
    green_event_t ev;
    green_event_init(&ev);
    enum { N = 3 };
    struct call *c = new_calls(N, &ev, -1);
    green_t gs[N];
    start_calls(gs, c, N, event_waiter);
    assert_int_equal(green_kill(gs[1]), 0);
    assert_int_equal(green_join(gs[1], NULL, -1), 0);
    assert_int_equal(c[1].r, -1);
    assert_int_equal(c[1].err, ECANCELED);
    assert_int_equal(stats().waiting, 2);

    assert_int_equal(green_event_set(&ev), 0);
    assert_int_equal(green_kill(gs[2]), 0); /* woken already: the kill comes too late */
    join_all(gs, 1);
    join_all(gs + 2, 1);
    assert_int_equal(c[0].r, 0);
    assert_int_equal(c[2].r, 0);
    assert_int_equal(c[2].cancelled, 1); /* its next blocking call will fail */
    assert_int_equal(green_event_destroy(&ev), 0);
    free(c);
    assert_hub_idle();
}

/* Allocations of a thread that sets fail_allocs fail (not under sanitizers, whose
 * allocators come first). */
#if !UNDER_ASAN && !UNDER_TSAN
#define ALLOC_FAILURES 1
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
static __thread int fail_allocs;
void *malloc(size_t n)
{
    if (fail_allocs) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_malloc(n);
}
void *calloc(size_t n, size_t size)
{
    if (fail_allocs) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_calloc(n, size);
}
void *realloc(void *p, size_t n)
{
    if (fail_allocs) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_realloc(p, n);
}
#else
#define ALLOC_FAILURES 0
static __thread int fail_allocs;
#endif

struct set_later {
    green_event_t *ev;
    green_future_t *f;
    int ms;
    void *value;
    int err;            /* fail the future with this instead of setting it */
    int no_memory;      /* set it with every allocation failing */
};

static void *pthread_set_later(void *arg)
{
    struct set_later *s = arg;
    sleep_os_ms(s->ms);
    fail_allocs = s->no_memory;
    if (s->ev)
        green_event_set(s->ev);
    fail_allocs = 0;
    if (s->f && s->err)
        green_future_fail(s->f, s->err);
    else if (s->f)
        green_future_set(s->f, s->value);
    return NULL;
}

/* A wake-up from another OS thread allocates nothing: with every allocation of the
 * setting thread failing, the waiter is still woken (a lost wake-up hung it). */
static void test_event_set_from_thread_without_memory(void **state)
{
    (void)state;
    if (!ALLOC_FAILURES)
        skip();
    green_event_t ev;
    green_event_init(&ev);
    struct set_later s = {.ev = &ev, .ms = 20, .no_memory = 1};
    pthread_t t;
    alarm(60); /* a lost wake-up hangs (a deadline would not tell: the set still counts) */
    assert_int_equal(pthread_create(&t, NULL, pthread_set_later, &s), 0);
    assert_int_equal(green_event_wait(&ev, -1), 0);
    pthread_join(t, NULL);
    /* and a green thread parked on it, woken the same way */
    green_event_clear(&ev);
    struct call *c = new_calls(1, &ev, -1);
    green_t g = green_spawn(event_waiter, c);
    assert_int_equal(pthread_create(&t, NULL, pthread_set_later, &s), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(c->r, 0);
    pthread_join(t, NULL);
    alarm(0);
    free(c);
    assert_int_equal(green_event_destroy(&ev), 0);
    assert_hub_idle();
}

/* A plain pthread sets the event the root waits for. Events may be set from any OS
 * thread, so a root waiting on one is never told EDEADLK, even when nothing in its hub
 * could wake it (unlike a semaphore, see test_sem_root_deadlock): it waits, here until
 * the pthread sets the event, in general until its deadline. */
static void test_event_set_by_pthread(void **state)
{
    (void)state;
    green_event_t ev;
    green_event_init(&ev);
    struct set_later s = {.ev = &ev, .ms = 50};
    pthread_t t;
    int64_t t0 = green_now();
    assert_int_equal(pthread_create(&t, NULL, pthread_set_later, &s), 0);
    assert_int_equal(green_event_wait(&ev, -1), 0);
    assert_true(green_now() - t0 >= 49);
    pthread_join(t, NULL);

    /* nobody sets it: a deadline ends the wait, not a deadlock report */
    green_event_clear(&ev);
    assert_fails_with(green_event_wait(&ev, green_after(20)), ETIMEDOUT);

    /* a green thread waits, the root joins it: the same */
    green_event_clear(&ev);
    struct call *c = new_calls(1, &ev, -1);
    green_t g = green_spawn(event_waiter, c);
    assert_int_equal(pthread_create(&t, NULL, pthread_set_later, &s), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(c->r, 0);
    pthread_join(t, NULL);
    alarm(0);
    free(c);
    assert_int_equal(green_event_destroy(&ev), 0);
    assert_hub_idle();
}

/* Green threads of several hubs wait on one event; one set() wakes them all, each on
 * its own hub. */
struct other_hub {
    green_event_t *ev;
    int *parked;        /* hubs whose green threads are all waiting */
    struct call *c;     /* three green threads' waits, then the root's own */
    int errors;
};

static void *wait_elsewhere(void *arg)
{
    struct call *c = arg;
    c->r = green_event_wait(c->obj, c->deadline);
    return NULL;
}

static void *other_hub_main(void *arg)
{
    struct other_hub *o = arg;
    green_t gs[3];
    for (int i = 0; i < 3; i++)
        if (!(gs[i] = green_spawn(wait_elsewhere, &o->c[i])))
            o->errors++;
    green_yield();
    __atomic_fetch_add(o->parked, 1, __ATOMIC_SEQ_CST);
    o->c[3].r = green_event_wait(o->ev, green_after(5000));
    if (green_joinall(gs, 3, green_after(5000)) != 0)
        o->errors++;
    return NULL;
}

static void test_event_wakes_other_hubs(void **state)
{
    (void)state;
    green_event_t ev;
    green_event_init(&ev);
    int parked = 0;
    struct other_hub o[2];
    pthread_t t[2];
    for (int k = 0; k < 2; k++) {
        o[k] = (struct other_hub){.ev = &ev, .parked = &parked, .c = new_calls(4, &ev, green_after(5000))};
        assert_int_equal(pthread_create(&t[k], NULL, other_hub_main, &o[k]), 0);
    }
    while (__atomic_load_n(&parked, __ATOMIC_SEQ_CST) < 2)
        sleep_os_ms(1);
    sleep_os_ms(20); /* the two roots are waiting too, most likely */
    assert_int_equal(green_event_set(&ev), 0);
    for (int k = 0; k < 2; k++) {
        pthread_join(t[k], NULL);
        assert_int_equal(o[k].errors, 0);
        for (int i = 0; i < 4; i++)
            assert_int_equal(o[k].c[i].r, 0);
        free(o[k].c);
    }
    assert_int_equal(green_event_destroy(&ev), 0);
    assert_hub_idle();
}

/* Ping-pong between a green thread and another OS thread (which gets a hub of its own
 * by waiting): two events, each side clearing the one it waited for before answering. */
#define ROUNDS (10000 / GREEN_TEST_SCALE)

struct pingpong {
    green_event_t ping, pong;
    int rounds;
    int ping_errors, pong_errors;
};

static void *pong_side(void *arg)
{
    struct pingpong *p = arg;
    for (int i = 0; i < p->rounds; i++) {
        if (green_event_wait(&p->ping, green_after(10000)) != 0)
            p->pong_errors++;
        green_event_clear(&p->ping);
        green_event_set(&p->pong);
    }
    return NULL;
}

static void *ping_side(void *arg)
{
    struct pingpong *p = arg;
    for (int i = 0; i < p->rounds; i++) {
        green_event_set(&p->ping);
        if (green_event_wait(&p->pong, green_after(10000)) != 0)
            p->ping_errors++;
        green_event_clear(&p->pong);
    }
    return NULL;
}

static void test_event_ping_pong_with_os_thread(void **state)
{
    (void)state;
    struct pingpong p = {.rounds = ROUNDS};
    green_event_init(&p.ping);
    green_event_init(&p.pong);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, pong_side, &p), 0);
    green_t g = green_spawn(ping_side, &p);
    assert_int_equal(green_join(g, NULL, -1), 0);
    pthread_join(t, NULL);
    assert_int_equal(p.ping_errors, 0);
    assert_int_equal(p.pong_errors, 0);
    assert_int_equal(green_event_destroy(&p.ping), 0);
    assert_int_equal(green_event_destroy(&p.pong), 0);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Futures (AsyncResult)                                                   */
/* ======================================================================== */

/* Set once; every getter, waiting or late, gets the value; a second set is refused. */
static void test_future_set_and_get(void **state)
{
    (void)state;
    green_future_t f;
    assert_int_equal(green_future_init(&f), 0);
    assert_int_equal(green_future_ready(&f), 0);
    void *v = (void *)1;
    assert_fails_with(green_future_get(&f, &v, 0), ETIMEDOUT);
    assert_ptr_equal(v, (void *)1);

    enum { N = 3 };
    struct call *c = new_calls(N, &f, -1);
    green_t gs[N];
    start_calls(gs, c, N, future_getter);
    assert_fails_with(green_future_destroy(&f), EBUSY);
    assert_int_equal(green_future_set(&f, (void *)42), 0);
    assert_int_equal(green_future_ready(&f), 1);
    assert_fails_with(green_future_set(&f, (void *)43), EBUSY);
    assert_fails_with(green_future_fail(&f, EIO), EBUSY);
    join_all(gs, N);
    const int expect[N] = {0, 1, 2};
    assert_order(expect, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(c[i].r, 0);
        assert_ptr_equal(c[i].value, (void *)42);
    }
    assert_int_equal(green_future_get(&f, &v, 0), 0);
    assert_ptr_equal(v, (void *)42);
    assert_int_equal(green_future_get(&f, NULL, -1), 0); /* only waits */

    assert_int_equal(green_future_destroy(&f), 0);
    assert_fails_with(green_future_init(NULL), EINVAL);
    assert_fails_with(green_future_set(NULL, NULL), EINVAL);
    assert_fails_with(green_future_get(NULL, &v, 0), EINVAL);
    assert_fails_with(green_future_ready(NULL), EINVAL);
    free(c);
    assert_hub_idle();
}

/* A failed future gives its errno to every getter. */
static void test_future_fail(void **state)
{
    (void)state;
    green_future_t f;
    green_future_init(&f);
    assert_fails_with(green_future_fail(&f, 0), EINVAL);
    assert_fails_with(green_future_fail(&f, -5), EINVAL);
    assert_int_equal(green_future_ready(&f), 0);

    struct call *c = new_calls(2, &f, green_after(5000));
    green_t gs[2];
    start_calls(gs, c, 2, future_getter);
    assert_int_equal(green_future_fail(&f, ECONNREFUSED), 0);
    assert_fails_with(green_future_set(&f, NULL), EBUSY);
    join_all(gs, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(c[i].r, -1);
        assert_int_equal(c[i].err, ECONNREFUSED);
    }
    void *v = (void *)1;
    assert_fails_with(green_future_get(&f, &v, -1), ECONNREFUSED);
    assert_ptr_equal(v, (void *)1);
    free(c);
    assert_int_equal(green_future_destroy(&f), 0);
    assert_hub_idle();
}

/* get gives up at its deadline; a getter killed while it waits fails with ECANCELED. */
static void test_future_deadline_and_kill(void **state)
{
    (void)state;
    green_future_t f;
    green_future_init(&f);
    int64_t d = green_after(40);
    assert_fails_with(green_future_get(&f, NULL, d), ETIMEDOUT);
    assert_true(green_now() >= d && green_now() < d + LATE_MS);

    struct call *c = new_calls(2, &f, -1);
    green_t gs[2];
    start_calls(gs, c, 2, future_getter);
    assert_int_equal(green_kill(gs[0]), 0);
    join_all(gs, 1);
    assert_int_equal(c[0].err, ECANCELED);
    assert_int_equal(green_future_set(&f, (void *)7), 0);
    join_all(gs + 1, 1);
    assert_ptr_equal(c[1].value, (void *)7);
    free(c);
    assert_hub_idle();
}

/* A plain pthread (no hub) fulfils or fails the future a green thread waits on. */
static void test_future_from_pthread(void **state)
{
    (void)state;
    green_future_t f;
    green_future_init(&f);
    struct set_later s = {.f = &f, .ms = 30, .value = (void *)99};
    struct call *c = new_calls(1, &f, -1);
    green_t g = green_spawn(future_getter, c);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, pthread_set_later, &s), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    pthread_join(t, NULL);
    assert_int_equal(c->r, 0);
    assert_ptr_equal(c->value, (void *)99);

    green_future_init(&f);
    s.err = ETIMEDOUT;
    assert_int_equal(pthread_create(&t, NULL, pthread_set_later, &s), 0);
    assert_fails_with(green_future_get(&f, NULL, green_after(5000)), ETIMEDOUT);
    assert_int_equal(green_future_ready(&f), 1); /* the failure was the pthread's */
    pthread_join(t, NULL);
    free(c);
    assert_hub_idle();
}

/* Round trips: a green thread asks with one future, a plain pthread (never a hub: it
 * only polls ready and sets) answers with another. */
struct relay {
    green_future_t *ask, *answer;
    int n, errors;
};

static void *plain_answerer(void *arg)
{
    struct relay *r = arg;
    for (int i = 0; i < r->n; i++) {
        while (!green_future_ready(&r->ask[i]))
            sched_yield();
        void *v;
        if (green_future_get(&r->ask[i], &v, 0) != 0)
            r->errors++;
        green_future_set(&r->answer[i], (char *)v + 1);
    }
    return NULL;
}

static void *asker(void *arg)
{
    struct relay *r = arg;
    for (int i = 0; i < r->n; i++) {
        void *v = NULL;
        green_future_set(&r->ask[i], (void *)(intptr_t)i);
        if (green_future_get(&r->answer[i], &v, green_after(10000)) != 0 ||
            v != (void *)(intptr_t)(i + 1))
            r->errors++;
    }
    return NULL;
}

static void test_future_round_trips_with_pthread(void **state)
{
    (void)state;
    struct relay r = {.n = ROUNDS};
    r.ask = calloc((size_t)r.n, sizeof *r.ask);
    r.answer = calloc((size_t)r.n, sizeof *r.answer);
    for (int i = 0; i < r.n; i++) {
        green_future_init(&r.ask[i]);
        green_future_init(&r.answer[i]);
    }
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, plain_answerer, &r), 0);
    green_t g = green_spawn(asker, &r);
    assert_int_equal(green_join(g, NULL, -1), 0);
    pthread_join(t, NULL);
    assert_int_equal(r.errors, 0);
    free(r.ask);
    free(r.answer);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Semaphores                                                              */
/* ======================================================================== */

static void test_sem_basics(void **state)
{
    (void)state;
    green_sem_t s;
    assert_int_equal(green_sem_init(&s, 2), 0);
    assert_int_equal(green_sem_value(&s), 2);
    assert_int_equal(green_sem_acquire(&s, 0), 0);
    assert_int_equal(green_sem_acquire(&s, -1), 0); /* a free permit: no wait */
    assert_int_equal(green_sem_value(&s), 0);
    assert_fails_with(green_sem_acquire(&s, 0), ETIMEDOUT);
    assert_int_equal(green_sem_release(&s), 0);
    assert_int_equal(green_sem_value(&s), 1);
    assert_int_equal(green_sem_destroy(&s), 0);

    assert_fails_with(green_sem_init(NULL, 1), EINVAL);
    assert_fails_with(green_sem_init(&s, -1), EINVAL);
    assert_fails_with(green_sem_init_bounded(&s, -1, 3), EINVAL);
    assert_fails_with(green_sem_init_bounded(&s, 3, 2), EINVAL);
    assert_fails_with(green_sem_init_bounded(&s, 0, -1), EINVAL);
    assert_fails_with(green_sem_acquire(NULL, 0), EINVAL);
    assert_fails_with(green_sem_release(NULL), EINVAL);
    assert_fails_with(green_sem_destroy(NULL), EINVAL);
    assert_fails_with(green_sem_value(NULL), EINVAL);
    assert_hub_idle();
}

static void test_sem_acquire_deadline(void **state)
{
    (void)state;
    green_sem_t s;
    green_sem_init(&s, 0);
    int64_t d = green_after(40);
    assert_fails_with(green_sem_acquire(&s, d), ETIMEDOUT);
    assert_true(green_now() >= d && green_now() < d + LATE_MS);
    assert_int_equal(green_sem_value(&s), 0);

    assert_int_equal(green_timeout_push(20), 0); /* gevent.Timeout around acquire */
    assert_fails_with(green_sem_acquire(&s, -1), ETIMEDOUT);
    assert_int_equal(green_timeout_pop(), 0);
    assert_int_equal(green_sem_destroy(&s), 0);
    assert_hub_idle();
}

/* While the process has a single thread, only this hub can release a semaphore: a root
 * that waits for one that nothing can release is told so (EDEADLK, gevent's LoopExit)
 * instead of hanging. Once there are other threads, any of them might (as for events). */
extern char __libc_single_threaded __attribute__((weak));
static void test_sem_root_deadlock(void **state)
{
    (void)state;
    if (&__libc_single_threaded == NULL || !__libc_single_threaded)
        skip();
    green_sem_t s;
    green_sem_init(&s, 0);
    assert_fails_with(green_sem_acquire(&s, -1), EDEADLK);
    assert_int_equal(green_sem_destroy(&s), 0);
    assert_hub_idle();
}

/* Waiters get permits in the order they asked, one release each. */
static void test_sem_fifo(void **state)
{
    (void)state;
    green_sem_t s;
    green_sem_init(&s, 0);
    enum { N = 5 };
    struct call *c = new_calls(N, &s, -1);
    green_t gs[N];
    start_calls(gs, c, N, sem_acquirer);
    assert_fails_with(green_sem_destroy(&s), EBUSY);
    for (int i = 0; i < N; i++) {
        assert_int_equal(green_sem_release(&s), 0);
        assert_int_equal(green_yield(), 0);
        assert_int_equal(order_n, i + 1);
        assert_int_equal(order_log[i], i);
    }
    join_all(gs, N);
    assert_int_equal(green_sem_value(&s), 0);
    assert_int_equal(green_sem_destroy(&s), 0);
    free(c);
    assert_hub_idle();
}

/* No barging: a release with a waiter hands the permit to it, so the releaser cannot
 * take it straight back before the waiter runs. */
static void test_sem_no_barging(void **state)
{
    (void)state;
    green_sem_t s;
    green_sem_init(&s, 1);
    assert_int_equal(green_sem_acquire(&s, -1), 0);
    struct call *c = new_calls(1, &s, -1);
    c->then_release = 1;
    green_t g = green_spawn(sem_acquirer, c);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(green_sem_release(&s), 0);
    assert_int_equal(green_sem_value(&s), 0);           /* it went to the waiter */
    assert_fails_with(green_sem_acquire(&s, 0), ETIMEDOUT);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(c->r, 0);
    assert_int_equal(c->release_r, 0);
    assert_int_equal(green_sem_value(&s), 1);
    free(c);
    assert_hub_idle();
}

/* gevent's test_fair_or_hangs: two green threads take and give back a semaphore in a
 * tight loop. If a release let its releaser take the permit again, a third one would
 * never get it; here it gets it on its first turn. */
struct hog {
    green_sem_t *s;
    int *stop;
    long rounds;
    int errors;
};

static void *hog(void *arg)
{
    struct hog *h = arg;
    while (!*h->stop) {
        if (green_sem_acquire(h->s, green_after(5000)) != 0) {
            h->errors++;
            break;
        }
        green_yield();
        green_sem_release(h->s);
        h->rounds++;
    }
    return NULL;
}

static void test_sem_fair_or_hangs(void **state)
{
    (void)state;
    green_sem_t s;
    green_sem_init(&s, 1);
    int stop = 0;
    struct hog hogs[2] = {{.s = &s, .stop = &stop}, {.s = &s, .stop = &stop}};
    green_t gs[2];
    for (int i = 0; i < 2; i++)
        gs[i] = green_spawn(hog, &hogs[i]);
    for (int i = 0; i < 10; i++)
        green_yield(); /* the two are at it */
    assert_true(hogs[0].rounds + hogs[1].rounds > 0);
    int64_t d = green_after(2000);
    assert_int_equal(green_sem_acquire(&s, d), 0);
    stop = 1;
    assert_int_equal(green_sem_release(&s), 0);
    join_all(gs, 2);
    assert_int_equal(hogs[0].errors + hogs[1].errors, 0);
    assert_int_equal(green_sem_value(&s), 1);
    assert_hub_idle();
}

/* A bounded semaphore refuses a release past its maximum, also after hand-overs. */
static void test_sem_bounded(void **state)
{
    (void)state;
    green_sem_t s;
    assert_int_equal(green_sem_init_bounded(&s, 1, 2), 0);
    assert_int_equal(green_sem_release(&s), 0);
    assert_fails_with(green_sem_release(&s), EOVERFLOW);
    assert_int_equal(green_sem_value(&s), 2);
    assert_int_equal(green_sem_acquire(&s, 0), 0);
    assert_int_equal(green_sem_acquire(&s, 0), 0);

    struct call *c = new_calls(1, &s, -1);
    c->then_release = 1;
    green_t g = green_spawn(sem_acquirer, c);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(green_sem_release(&s), 0); /* handed over */
    assert_int_equal(green_sem_release(&s), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(c->release_r, 0);
    assert_int_equal(green_sem_value(&s), 2);
    assert_fails_with(green_sem_release(&s), EOVERFLOW);

    assert_int_equal(green_sem_init_bounded(&s, 0, 0), 0); /* a degenerate one */
    assert_fails_with(green_sem_release(&s), EOVERFLOW);
    free(c);
    assert_hub_idle();
}

/* A waiter killed while queued leaves the queue; the next releases go to the others. */
static void test_sem_waiter_killed_while_queued(void **state)
{
    (void)state;
    green_sem_t s;
    green_sem_init(&s, 0);
    enum { N = 3 };
    struct call *c = new_calls(N, &s, -1);
    green_t gs[N];
    start_calls(gs, c, N, sem_acquirer);
    assert_int_equal(green_kill(gs[1]), 0);
    assert_int_equal(green_join(gs[1], NULL, -1), 0);
    assert_int_equal(c[1].err, ECANCELED);
    assert_int_equal(green_sem_release(&s), 0);
    assert_int_equal(green_sem_release(&s), 0);
    join_all(gs, 1);
    join_all(gs + 2, 1);
    assert_int_equal(c[0].r, 0);
    assert_int_equal(c[2].r, 0);
    assert_int_equal(green_sem_value(&s), 0);
    assert_int_equal(green_sem_release(&s), 0); /* nobody left: it is kept */
    assert_int_equal(green_sem_value(&s), 1);
    free(c);
    assert_hub_idle();
}

/* A waiter that was handed the permit keeps it, though it was killed (or its deadline
 * passed) before it ran: nothing is lost, and the kill shows at its next call. */
static void test_sem_handed_then_killed_keeps_permit(void **state)
{
    (void)state;
    green_sem_t s;
    green_sem_init(&s, 0);
    struct call *c = new_calls(1, &s, -1);
    c->then_release = 1;
    green_t g = green_spawn(sem_acquirer, c);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(green_sem_release(&s), 0);
    assert_int_equal(green_kill(g), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(c->r, 0);
    assert_int_equal(c->cancelled, 1);
    assert_int_equal(c->release_r, 0);
    assert_int_equal(green_sem_value(&s), 1); /* given back: not lost */

    /* killed first, then released to before it could leave the queue: the same */
    assert_int_equal(green_sem_acquire(&s, 0), 0);
    *c = (struct call){.obj = &s, .deadline = -1, .then_release = 1};
    g = green_spawn(sem_acquirer, c);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(green_kill(g), 0);
    assert_int_equal(green_sem_release(&s), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(c->r, 0);
    assert_int_equal(green_sem_value(&s), 1);

    /* its deadline passed while the hub was busy, and the release came first */
    assert_int_equal(green_sem_acquire(&s, 0), 0);
    *c = (struct call){.obj = &s, .deadline = green_after(20), .then_release = 1};
    g = green_spawn(sem_acquirer, c);
    assert_int_equal(green_yield(), 0);
    sleep_os_ms(40);
    assert_int_equal(green_sem_release(&s), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(c->r, 0);
    assert_int_equal(green_sem_value(&s), 1);
    free(c);
    assert_hub_idle();
}

/* A wake-up that hands nothing over (green_wake) does not end an acquire. */
static void test_sem_spurious_wake_waits_on(void **state)
{
    (void)state;
    green_sem_t s;
    green_sem_init(&s, 0);
    struct call *c = new_calls(1, &s, -1);
    green_t g = green_spawn(sem_acquirer, c);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(green_wake(g, 0), 0);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(stats().waiting, 1);
    assert_int_equal(c->r, 7); /* still in acquire */
    assert_int_equal(green_sem_release(&s), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(c->r, 0);
    assert_int_equal(green_sem_value(&s), 0);
    free(c);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Mutexes                                                                 */
/* ======================================================================== */

static void *try_and_unlock(void *arg)
{
    struct call *c = arg;
    errno = 0;
    c->r = green_mutex_trylock(c->obj);
    c->err = errno;
    errno = 0;
    c->release_r = green_mutex_unlock(c->obj);
    c->value = (void *)(intptr_t)errno;
    return NULL;
}

static void test_mutex_basics(void **state)
{
    (void)state;
    green_mutex_t m;
    assert_fails_with(green_mutex_init(&m, 7), EINVAL);
    assert_fails_with(green_mutex_init(NULL, GREEN_MUTEX_NORMAL), EINVAL);
    assert_int_equal(green_mutex_init(&m, GREEN_MUTEX_NORMAL), 0);
    assert_fails_with(green_mutex_unlock(&m), EPERM); /* not locked */
    assert_int_equal(green_mutex_lock(&m, -1), 0);
    assert_fails_with(green_mutex_lock(&m, -1), EDEADLK);
    assert_fails_with(green_mutex_trylock(&m), EBUSY);
    assert_fails_with(green_mutex_destroy(&m), EBUSY);

    /* another green thread: cannot take it, cannot unlock it */
    struct call *c = new_calls(1, &m, 0);
    green_t g = green_spawn(try_and_unlock, c);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(c->r, -1);
    assert_int_equal(c->err, EBUSY);
    assert_int_equal(c->release_r, -1);
    assert_ptr_equal(c->value, (void *)(intptr_t)EPERM);

    /* and a lock of it gives up at its deadline */
    *c = (struct call){.obj = &m, .deadline = green_after(30)};
    g = green_spawn(mutex_locker, c);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(c->err, ETIMEDOUT);
    assert_true(c->at >= c->deadline && c->at < c->deadline + LATE_MS);

    assert_int_equal(green_mutex_unlock(&m), 0);
    assert_fails_with(green_mutex_unlock(&m), EPERM);
    assert_int_equal(green_mutex_trylock(&m), 0);
    assert_int_equal(green_mutex_unlock(&m), 0);
    assert_int_equal(green_mutex_destroy(&m), 0);
    assert_fails_with(green_mutex_lock(NULL, -1), EINVAL);
    assert_fails_with(green_mutex_trylock(NULL), EINVAL);
    assert_fails_with(green_mutex_unlock(NULL), EINVAL);
    assert_fails_with(green_mutex_destroy(NULL), EINVAL);
    free(c);
    assert_hub_idle();
}

/* A recursive mutex counts its owner's locks; others wait for the last unlock. */
static void test_mutex_recursive(void **state)
{
    (void)state;
    green_mutex_t m;
    assert_int_equal(green_mutex_init(&m, GREEN_MUTEX_RECURSIVE), 0);
    assert_int_equal(green_mutex_lock(&m, -1), 0);
    assert_int_equal(green_mutex_lock(&m, -1), 0);
    assert_int_equal(green_mutex_trylock(&m), 0);

    struct call *c = new_calls(1, &m, -1);
    c->then_release = 1;
    green_t g = green_spawn(mutex_locker, c);
    assert_int_equal(green_yield(), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(green_mutex_unlock(&m), 0);
        assert_int_equal(green_yield(), 0);
        assert_int_equal(c->r, 7); /* still held */
    }
    assert_int_equal(green_mutex_unlock(&m), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(c->r, 0);
    assert_int_equal(c->release_r, 0);
    assert_fails_with(green_mutex_unlock(&m), EPERM);
    assert_int_equal(green_mutex_destroy(&m), 0);
    free(c);
    assert_hub_idle();
}

/* The root locks a new m; then n green threads queue on it, in order, each to lock it,
 * yield and unlock it. */
static struct call *queue_lockers(green_mutex_t *m, green_t *gs, int n)
{
    green_mutex_init(m, GREEN_MUTEX_NORMAL);
    assert_int_equal(green_mutex_lock(m, -1), 0);
    struct call *c = new_calls(n, m, -1);
    for (int i = 0; i < n; i++)
        c[i].then_release = 1;
    start_calls(gs, c, n, mutex_locker);
    return c;
}

/* Waiters get the mutex in FIFO order, handed over at unlock: the unlocker cannot take
 * it back before the next owner runs. */
static void test_mutex_fifo_no_barging(void **state)
{
    (void)state;
    green_mutex_t m;
    enum { N = 4 };
    green_t gs[N];
    struct call *c = queue_lockers(&m, gs, N);
    assert_int_equal(stats().waiting, N);
    assert_int_equal(green_mutex_unlock(&m), 0);
    assert_fails_with(green_mutex_trylock(&m), EBUSY); /* it is the first waiter's */
    join_all(gs, N);
    const int expect[N] = {0, 1, 2, 3};
    assert_order(expect, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(c[i].r, 0);
        assert_int_equal(c[i].release_r, 0);
    }
    assert_int_equal(green_mutex_destroy(&m), 0);
    free(c);
    assert_hub_idle();
}

/* A waiter killed while queued leaves the queue; one killed after the mutex was handed
 * to it owns it all the same. */
static void test_mutex_waiter_killed(void **state)
{
    (void)state;
    green_mutex_t m;
    enum { N = 3 };
    green_t gs[N];
    struct call *c = queue_lockers(&m, gs, N);
    assert_int_equal(green_kill(gs[1]), 0);
    assert_int_equal(green_join(gs[1], NULL, -1), 0);
    assert_int_equal(c[1].err, ECANCELED);

    assert_int_equal(green_mutex_unlock(&m), 0); /* to gs[0] */
    assert_int_equal(green_kill(gs[0]), 0);      /* too late: it has it */
    join_all(gs, 1);
    join_all(gs + 2, 1);
    assert_int_equal(c[0].r, 0);
    assert_int_equal(c[0].cancelled, 1);
    assert_int_equal(c[2].r, 0);
    const int expect[] = {1, 0, 2};
    assert_order(expect, 3);
    assert_int_equal(green_mutex_trylock(&m), 0); /* everyone unlocked */
    assert_int_equal(green_mutex_unlock(&m), 0);
    free(c);
    assert_hub_idle();
}

static void *lock_and_sleep(void *arg)
{
    struct call *c = arg;
    c->r = green_mutex_lock(c->obj, -1);
    green_sleep(100000); /* until killed; returns without unlocking */
    return NULL;
}

static void *lock_and_return(void *arg)
{
    struct call *c = arg;
    c->r = green_mutex_lock(c->obj, -1);
    for (int i = 1; i < c->depth; i++) /* recursive: deeper */
        green_mutex_lock(c->obj, -1);
    return NULL;
}

/* Robust: the owner is killed while a green thread waits for the mutex; the waiter gets
 * it with EOWNERDEAD, owns it, and unlocks it as usual. */
static void test_mutex_owner_killed(void **state)
{
    (void)state;
    green_mutex_t m;
    green_mutex_init(&m, GREEN_MUTEX_NORMAL);
    struct call *holder = new_calls(1, &m, -1);
    green_t h = green_spawn(lock_and_sleep, holder);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(holder->r, 0);
    struct call *c = new_calls(2, &m, -1);
    c[0].then_release = c[1].then_release = 1;
    green_t gs[2];
    start_calls(gs, c, 2, mutex_locker);

    assert_int_equal(green_kill(h), 0);
    assert_int_equal(green_join(h, NULL, -1), 0);
    join_all(gs, 2);
    assert_int_equal(c[0].r, -1);
    assert_int_equal(c[0].err, EOWNERDEAD);
    assert_int_equal(c[0].release_r, 0); /* it owned it */
    assert_int_equal(c[1].r, 0);          /* the next one hears nothing of it */
    assert_int_equal(c[1].release_r, 0);
    assert_int_equal(green_mutex_lock(&m, -1), 0);
    assert_int_equal(green_mutex_unlock(&m), 0);
    free(c);
    free(holder);
    assert_hub_idle();
}

/* Robust: the owner returns without unlocking; the next lock (or trylock) gets
 * EOWNERDEAD, even of a recursive mutex held several levels deep, and of every mutex
 * the owner held. */
static void test_mutex_owner_returned(void **state)
{
    (void)state;
    green_mutex_t m[3];
    green_mutex_init(&m[0], GREEN_MUTEX_NORMAL);
    green_mutex_init(&m[1], GREEN_MUTEX_NORMAL);
    green_mutex_init(&m[2], GREEN_MUTEX_RECURSIVE);
    struct call *c = new_calls(3, NULL, -1);
    green_t gs[3];
    for (int i = 0; i < 3; i++) {
        c[i].obj = &m[i];
        c[i].depth = i == 2 ? 3 : 1;
    }
    spawn_calls(gs, c, 3, lock_and_return);
    join_all(gs, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(c[i].r, 0);

    assert_fails_with(green_mutex_lock(&m[0], -1), EOWNERDEAD);
    assert_int_equal(green_mutex_unlock(&m[0]), 0);
    assert_int_equal(green_mutex_lock(&m[0], -1), 0); /* healthy again */
    assert_int_equal(green_mutex_unlock(&m[0]), 0);
    assert_fails_with(green_mutex_trylock(&m[1]), EOWNERDEAD);
    assert_int_equal(green_mutex_unlock(&m[1]), 0);
    assert_fails_with(green_mutex_lock(&m[2], 0), EOWNERDEAD);
    assert_int_equal(green_mutex_unlock(&m[2]), 0); /* depth 1: one unlock frees it */
    assert_fails_with(green_mutex_unlock(&m[2]), EPERM);

    /* a dead owner's mutex is unlocked: it may be destroyed */
    spawn_calls(gs, c, 1, lock_and_return);
    join_all(gs, 1);
    assert_int_equal(green_mutex_destroy(&m[0]), 0);
    free(c);
    assert_hub_idle();
}

/* The owner used a scoped timeout while it held the mutex, then returned. */
static void *lock_scope_return(void *arg)
{
    struct call *c = arg;
    c->r = green_mutex_lock(c->obj, -1);
    green_timeout_push(1000);
    green_sleep(1);
    green_timeout_pop();
    return NULL;
}

static void test_mutex_owner_with_scoped_timeout_returned(void **state)
{
    (void)state;
    green_mutex_t m;
    green_mutex_init(&m, GREEN_MUTEX_NORMAL);
    struct call *c = new_calls(1, &m, -1);
    green_t g = green_spawn(lock_scope_return, c);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(c->r, 0);
    assert_fails_with(green_mutex_lock(&m, -1), EOWNERDEAD);
    assert_int_equal(green_mutex_unlock(&m), 0);
    free(c);
    assert_hub_idle();
}

/* Only this hub can unlock: a root waiting for a mutex held by a green thread that
 * waits forever gets EDEADLK. */
static void *lock_and_park(void *arg)
{
    struct call *c = arg;
    c->r = green_mutex_lock(c->obj, -1);
    green_park(-1);
    c->release_r = green_mutex_unlock(c->obj);
    return NULL;
}

static void test_mutex_root_deadlock(void **state)
{
    (void)state;
    green_mutex_t m;
    green_mutex_init(&m, GREEN_MUTEX_NORMAL);
    struct call *c = new_calls(1, &m, -1);
    green_t g = green_spawn(lock_and_park, c);
    assert_int_equal(green_yield(), 0);
    assert_fails_with(green_mutex_lock(&m, -1), EDEADLK);
    assert_int_equal(green_wake(g, 0), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(c->release_r, 0);
    assert_int_equal(green_mutex_destroy(&m), 0);
    free(c);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Conditions                                                              */
/* ======================================================================== */

static struct call *new_cond_calls(int n, green_cond_t *cv, green_mutex_t *m, int64_t deadline)
{
    struct call *c = new_calls(n, cv, deadline);
    for (int i = 0; i < n; i++)
        c[i].m = m;
    return c;
}

/* signal wakes the longest waiter, broadcast all of them, in order; each returns
 * holding the mutex. */
static void test_cond_signal_and_broadcast(void **state)
{
    (void)state;
    green_mutex_t m;
    green_cond_t cv;
    green_mutex_init(&m, GREEN_MUTEX_NORMAL);
    assert_int_equal(green_cond_init(&cv), 0);
    enum { N = 4 };
    struct call *c = new_cond_calls(N, &cv, &m, -1);
    green_t gs[N];
    start_calls(gs, c, N, cond_waiter);
    assert_int_equal(stats().waiting, N);
    assert_fails_with(green_cond_destroy(&cv), EBUSY);

    assert_int_equal(green_cond_signal(&cv), 0);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(order_n, 1);
    assert_int_equal(order_log[0], 0);

    assert_int_equal(green_mutex_lock(&m, -1), 0);
    assert_int_equal(green_cond_broadcast(&cv), 0);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(order_n, 1); /* woken, but the mutex is ours */
    assert_int_equal(green_mutex_unlock(&m), 0);
    join_all(gs, N);
    const int expect[N] = {0, 1, 2, 3};
    assert_order(expect, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(c[i].r, 0);
        assert_int_equal(c[i].release_r, 0);
    }
    assert_int_equal(green_cond_signal(&cv), 0); /* nobody waits: nothing happens */
    assert_int_equal(green_cond_destroy(&cv), 0);
    free(c);
    assert_hub_idle();
}

/* A wait that times out returns only once it holds the mutex again. */
static void test_cond_timeout_relocks(void **state)
{
    (void)state;
    green_mutex_t m;
    green_cond_t cv;
    green_mutex_init(&m, GREEN_MUTEX_NORMAL);
    green_cond_init(&cv);
    struct call *c = new_cond_calls(1, &cv, &m, green_after(30));
    green_t g = green_spawn(cond_waiter, c);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(green_mutex_lock(&m, -1), 0);
    assert_int_equal(green_sleep(80), 0); /* its deadline passes while we hold m */
    assert_int_equal(c->r, 7);
    int64_t unlocked = green_now();
    assert_int_equal(green_mutex_unlock(&m), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(c->r, -1);
    assert_int_equal(c->err, ETIMEDOUT);
    assert_true(c->at >= unlocked);
    assert_int_equal(c->release_r, 0);

    /* and when nobody holds it, at the deadline */
    assert_int_equal(green_mutex_lock(&m, -1), 0);
    int64_t d = green_after(30);
    assert_fails_with(green_cond_wait(&cv, &m, d), ETIMEDOUT);
    assert_true(green_now() >= d);
    assert_int_equal(green_mutex_unlock(&m), 0);
    free(c);
    assert_hub_idle();
}

/* A waiter killed in a wait relocks before it returns ECANCELED; one killed after a
 * signal reached it keeps the signal (returns 0), so no signal is lost. */
static void test_cond_killed_relocks(void **state)
{
    (void)state;
    green_mutex_t m;
    green_cond_t cv;
    green_mutex_init(&m, GREEN_MUTEX_NORMAL);
    green_cond_init(&cv);
    struct call *c = new_cond_calls(2, &cv, &m, -1);
    green_t gs[2];
    start_calls(gs, c, 2, cond_waiter);
    assert_int_equal(green_mutex_lock(&m, -1), 0);
    assert_int_equal(green_kill(gs[0]), 0);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(c[0].r, 7); /* waits for the mutex, killed or not */
    assert_int_equal(green_mutex_unlock(&m), 0);
    join_all(gs, 1);
    assert_int_equal(c[0].r, -1);
    assert_int_equal(c[0].err, ECANCELED);
    assert_int_equal(c[0].release_r, 0);

    assert_int_equal(green_cond_signal(&cv), 0);
    assert_int_equal(green_kill(gs[1]), 0);
    join_all(gs + 1, 1);
    assert_int_equal(c[1].r, 0);
    assert_int_equal(c[1].cancelled, 1);
    assert_int_equal(c[1].release_r, 0);
    assert_int_equal(green_cond_destroy(&cv), 0);
    free(c);
    assert_hub_idle();
}

/* Misuse: waiting without owning the mutex; a recursive mutex is released whatever its
 * depth and relocked to it. */
static void test_cond_errors_and_recursive(void **state)
{
    (void)state;
    green_mutex_t m;
    green_cond_t cv;
    green_mutex_init(&m, GREEN_MUTEX_RECURSIVE);
    green_cond_init(&cv);
    assert_fails_with(green_cond_wait(&cv, &m, 0), EPERM);
    assert_fails_with(green_cond_wait(NULL, &m, 0), EINVAL);
    assert_fails_with(green_cond_wait(&cv, NULL, 0), EINVAL);
    assert_fails_with(green_cond_init(NULL), EINVAL);
    assert_fails_with(green_cond_signal(NULL), EINVAL);
    assert_fails_with(green_cond_broadcast(NULL), EINVAL);
    assert_fails_with(green_cond_destroy(NULL), EINVAL);

    assert_int_equal(green_mutex_lock(&m, -1), 0);
    assert_int_equal(green_mutex_lock(&m, -1), 0);
    /* another green thread can take m while we wait: it was released completely */
    struct call *c = new_calls(1, &m, -1);
    c->then_release = 1;
    green_t g = green_spawn(mutex_locker, c);
    assert_fails_with(green_cond_wait(&cv, &m, green_after(30)), ETIMEDOUT);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(c->r, 0);
    assert_int_equal(green_mutex_unlock(&m), 0);
    assert_int_equal(green_mutex_unlock(&m), 0);
    assert_fails_with(green_mutex_unlock(&m), EPERM);
    free(c);
    assert_hub_idle();
}

/* The classic use: a bounded buffer between producers and consumers. */
#define ITEMS (20000 / GREEN_TEST_SCALE)
#define CAP 8

struct buffer {
    green_mutex_t m;
    green_cond_t not_empty, not_full;
    int items[CAP];
    int head, len;
    int produced, consumed;
    long sum;
    int errors;
};

static void *producer(void *arg)
{
    struct buffer *b = arg;
    green_mutex_lock(&b->m, -1);
    for (;;) {
        while (b->len == CAP && b->produced < ITEMS)
            if (green_cond_wait(&b->not_full, &b->m, green_after(5000)) != 0)
                b->errors++;
        if (b->produced == ITEMS)
            break;
        b->items[(b->head + b->len++) % CAP] = ++b->produced;
        green_cond_signal(&b->not_empty);
        if (b->produced % 3 == 0) { /* let others in now and then */
            green_mutex_unlock(&b->m);
            green_yield();
            green_mutex_lock(&b->m, -1);
        }
    }
    green_cond_broadcast(&b->not_empty);
    green_mutex_unlock(&b->m);
    return NULL;
}

static void *consumer(void *arg)
{
    struct buffer *b = arg;
    green_mutex_lock(&b->m, -1);
    for (;;) {
        while (b->len == 0 && b->produced < ITEMS)
            if (green_cond_wait(&b->not_empty, &b->m, green_after(5000)) != 0)
                b->errors++;
        if (b->len == 0)
            break;
        b->sum += b->items[b->head];
        b->head = (b->head + 1) % CAP;
        b->len--;
        b->consumed++;
        green_cond_signal(&b->not_full);
    }
    green_mutex_unlock(&b->m);
    return NULL;
}

static void test_cond_bounded_buffer(void **state)
{
    (void)state;
    struct buffer *b = calloc(1, sizeof *b);
    green_mutex_init(&b->m, GREEN_MUTEX_NORMAL);
    green_cond_init(&b->not_empty);
    green_cond_init(&b->not_full);
    green_t gs[5];
    for (int i = 0; i < 5; i++)
        gs[i] = green_spawn(i < 2 ? producer : consumer, b);
    join_all(gs, 5);
    assert_int_equal(b->errors, 0);
    assert_int_equal(b->consumed, ITEMS);
    assert_true(b->sum == (long)ITEMS * (ITEMS + 1) / 2);
    assert_int_equal(green_cond_destroy(&b->not_empty), 0);
    assert_int_equal(green_cond_destroy(&b->not_full), 0);
    assert_int_equal(green_mutex_destroy(&b->m), 0);
    free(b);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Shared-stack green threads                                              */
/* ======================================================================== */

/* Green threads on the shared stack wait on every kind of object, with their locals
 * intact, the same as dedicated ones (their waiter records are not on their stacks). */
struct relay_race {
    green_event_t go;
    green_sem_t seats;
    green_mutex_t m;
    green_cond_t turn_changed;
    green_future_t finished;
    int seated, most_seated;
    int turn, n, errors;
    long sum;
};

struct runner {
    struct relay_race *race;
    int index;
};

static void *runner(void *arg)
{
    struct runner *me = arg;
    struct relay_race *r = me->race;
    int local[16];
    for (int i = 0; i < 16; i++)
        local[i] = me->index * 100 + i;
    if (green_event_wait(&r->go, green_after(5000)) != 0)
        r->errors++;
    /* at most three at a time in here */
    if (green_sem_acquire(&r->seats, green_after(5000)) != 0)
        r->errors++;
    if (++r->seated > r->most_seated)
        r->most_seated = r->seated;
    if (green_sleep(1) != 0)
        r->errors++;
    r->seated--;
    green_sem_release(&r->seats);
    /* then one at a time, in the order of their indexes */
    if (green_mutex_lock(&r->m, green_after(5000)) != 0)
        r->errors++;
    while (r->turn != me->index)
        if (green_cond_wait(&r->turn_changed, &r->m, green_after(5000)) != 0)
            r->errors++;
    for (int i = 0; i < 16; i++) {
        if (local[i] != me->index * 100 + i)
            r->errors++;
        r->sum += local[i];
    }
    r->turn++;
    green_cond_broadcast(&r->turn_changed);
    green_mutex_unlock(&r->m);
    if (me->index == r->n - 1)
        green_future_set(&r->finished, (void *)(intptr_t)r->sum);
    return NULL;
}

static void test_shared_stack_waiters(void **state)
{
    (void)state;
    enum { N = 12 };
    struct relay_race *r = calloc(1, sizeof *r);
    struct runner *runners = calloc(N, sizeof *runners);
    green_event_init(&r->go);
    green_sem_init(&r->seats, 3);
    green_mutex_init(&r->m, GREEN_MUTEX_NORMAL);
    green_cond_init(&r->turn_changed);
    green_future_init(&r->finished);
    r->n = N;
    green_attr_t shared = {.stack_mode = GREEN_STACK_SHARED};
    green_t gs[N];
    for (int i = 0; i < N; i++) {
        /* spawned in reverse, so that turns are taken against the queue order; every
         * other one shared, so that shared and dedicated ones interleave */
        int k = N - 1 - i;
        runners[k] = (struct runner){.race = r, .index = k};
        gs[i] = green_spawn_attr(runner, &runners[k], i % 2 ? NULL : &shared);
        assert_non_null(gs[i]);
    }
    assert_int_equal(green_yield(), 0);
    assert_int_equal(stats().waiting, N);
    assert_int_equal(green_event_set(&r->go), 0);
    void *v = NULL;
    assert_int_equal(green_future_get(&r->finished, &v, green_after(5000)), 0);
    join_all(gs, N);
    long expect = 0;
    for (int k = 0; k < N; k++)
        for (int i = 0; i < 16; i++)
            expect += k * 100 + i;
    assert_int_equal(r->errors, 0);
    assert_true((long)(intptr_t)v == expect);
    assert_int_equal(green_sem_value(&r->seats), 3);
    assert_int_equal(r->most_seated, 3);
    free(runners);
    free(r);
    assert_hub_idle();
    assert_int_equal(stats().shared_saved_bytes, 0);
}

/* ======================================================================== */
/*  Deadlock (must run while the process has a single thread)               */
/* ======================================================================== */

extern char __libc_single_threaded __attribute__((weak));

static void *set_event(void *ev)
{
    return (void *)(intptr_t)green_event_set(ev);
}

/* A root waiting forever on an event or a future that nothing can set gets EDEADLK, as
 * on a channel: no other green thread, timer or fd, and no second OS thread was ever
 * started (once one was, it might set it: no verdict then). */
static void test_event_future_deadlock_is_reported(void **state)
{
    (void)state;
    if (&__libc_single_threaded == NULL || !__libc_single_threaded)
        skip();
    green_event_t ev;
    green_event_init(&ev);
    assert_fails_with(green_event_wait(&ev, -1), EDEADLK);
    green_future_t f;
    green_future_init(&f);
    void *v = &v;
    assert_fails_with(green_future_get(&f, &v, -1), EDEADLK);
    /* nothing stayed queued; a deadline is just a timeout */
    assert_int_equal(green_event_destroy(&ev), 0);
    assert_int_equal(green_future_destroy(&f), 0);
    green_event_init(&ev);
    assert_fails_with(green_event_wait(&ev, green_after(10)), ETIMEDOUT);
    /* a green thread that will set it is not a deadlock */
    green_t g = green_spawn(set_event, &ev);
    assert_non_null(g);
    assert_int_equal(green_event_wait(&ev, -1), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(green_event_destroy(&ev), 0);
    assert_hub_idle();
}

/* ======================================================================== */
/*  One hub's objects used from another OS thread                           */
/* ======================================================================== */

struct foreign {
    green_sem_t *s;
    green_mutex_t *m;
    green_cond_t *c;
    int errs[8];
};

static void *use_from_another_thread(void *arg)
{
    struct foreign *f = arg;
    int i = 0;
#define ERR_OF(call) (errno = 0, f->errs[i++] = (call) == -1 ? errno : 0)
    ERR_OF(green_sem_acquire(f->s, 0));
    ERR_OF(green_sem_release(f->s));
    ERR_OF(green_mutex_lock(f->m, 0));
    ERR_OF(green_mutex_trylock(f->m));
    ERR_OF(green_mutex_unlock(f->m));
    ERR_OF(green_cond_signal(f->c));
    ERR_OF(green_cond_broadcast(f->c));
    ERR_OF(green_cond_wait(f->c, f->m, 0));
#undef ERR_OF
    return NULL;
}

/* Semaphores, mutexes and conditions work from any OS thread (tests/test_xsync.c has
 * the waits); a mutex stays its owner's: another hub's green thread cannot take it
 * (ETIMEDOUT, EBUSY), unlock it, or wait on a condition with it (EPERM). */
static void test_sync_objects_of_another_hub(void **state)
{
    (void)state;
    green_sem_t s;
    green_mutex_t m;
    green_cond_t c;
    struct foreign f = {.s = &s, .m = &m, .c = &c};
    green_sem_init(&s, 1);
    green_mutex_init(&m, GREEN_MUTEX_NORMAL);
    green_cond_init(&c);
    assert_int_equal(green_sem_acquire(&s, -1), 0);
    assert_int_equal(green_sem_release(&s), 0);
    assert_int_equal(green_mutex_lock(&m, -1), 0);
    assert_int_equal(green_cond_signal(&c), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, use_from_another_thread, &f), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    int want[8] = {0, 0, ETIMEDOUT, EBUSY, EPERM, 0, 0, EPERM};
    for (int i = 0; i < 8; i++)
        assert_int_equal(f.errs[i], want[i]);
    /* one permit, as before; the mutex still ours, with nobody waiting */
    assert_int_equal(green_sem_value(&s), 1);
    assert_fails_with(green_mutex_destroy(&m), EBUSY);
    assert_int_equal(green_mutex_unlock(&m), 0);
    assert_int_equal(green_sem_destroy(&s), 0);
    assert_int_equal(green_mutex_destroy(&m), 0);
    assert_int_equal(green_cond_destroy(&c), 0);
    assert_hub_idle();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_future_deadlock_is_reported), /* first: a single thread */
        cmocka_unit_test(test_sem_root_deadlock),                 /* the same */
        cmocka_unit_test(test_event_basics),
        cmocka_unit_test(test_sync_objects_of_another_hub),
        cmocka_unit_test(test_event_set_from_thread_without_memory),
        cmocka_unit_test(test_event_wait_deadline),
        cmocka_unit_test(test_event_set_wakes_all_in_order),
        cmocka_unit_test(test_event_set_then_clear_still_wakes),
        cmocka_unit_test(test_event_waiter_killed),
        cmocka_unit_test(test_event_set_by_pthread),
        cmocka_unit_test(test_event_wakes_other_hubs),
        cmocka_unit_test(test_event_ping_pong_with_os_thread),
        cmocka_unit_test(test_future_set_and_get),
        cmocka_unit_test(test_future_fail),
        cmocka_unit_test(test_future_deadline_and_kill),
        cmocka_unit_test(test_future_from_pthread),
        cmocka_unit_test(test_future_round_trips_with_pthread),
        cmocka_unit_test(test_sem_basics),
        cmocka_unit_test(test_sem_acquire_deadline),
        cmocka_unit_test(test_sem_fifo),
        cmocka_unit_test(test_sem_no_barging),
        cmocka_unit_test(test_sem_fair_or_hangs),
        cmocka_unit_test(test_sem_bounded),
        cmocka_unit_test(test_sem_waiter_killed_while_queued),
        cmocka_unit_test(test_sem_handed_then_killed_keeps_permit),
        cmocka_unit_test(test_sem_spurious_wake_waits_on),
        cmocka_unit_test(test_mutex_basics),
        cmocka_unit_test(test_mutex_recursive),
        cmocka_unit_test(test_mutex_fifo_no_barging),
        cmocka_unit_test(test_mutex_waiter_killed),
        cmocka_unit_test(test_mutex_owner_killed),
        cmocka_unit_test(test_mutex_owner_returned),
        cmocka_unit_test(test_mutex_owner_with_scoped_timeout_returned),
        cmocka_unit_test(test_mutex_root_deadlock),
        cmocka_unit_test(test_cond_signal_and_broadcast),
        cmocka_unit_test(test_cond_timeout_relocks),
        cmocka_unit_test(test_cond_killed_relocks),
        cmocka_unit_test(test_cond_errors_and_recursive),
        cmocka_unit_test(test_cond_bounded_buffer),
        cmocka_unit_test(test_shared_stack_waiters),
    };
    return cmocka_run_group_tests_name("sync", tests, NULL, NULL);
}
