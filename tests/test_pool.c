/* test_pool.c — green_run_blocking: blocking calls on the bounded thread pool park only
 * their caller (the hub keeps running everyone else), never more than GREEN_THREADPOOL
 * run at once, jobs start in FIFO order, a deadline or a kill returns at once while the
 * job runs to its end, a root waiting on a job is no deadlock, plain pthreads and several
 * hubs share the pool, and a forked child gets a fresh one (after gevent's
 * test__threadpool.py and libuv's test-threadpool*.c). */
#include "green_test.h"
#include "pool_gate.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- jobs ---- */

static void *add_one(void *arg) { return (void *)((intptr_t)arg + 1); }

static void *whose_thread(void *arg)
{
    (void)arg;
    return (void *)pthread_self();
}

/* A job that takes `ms` on its OS thread and counts how many run at once. */
struct sleeper {
    int ms;
    int running, most;   /* atomic */
    int done;            /* atomic: jobs finished */
};

static void *sleep_job(void *arg)
{
    struct sleeper *s = arg;
    int now = __atomic_add_fetch(&s->running, 1, __ATOMIC_SEQ_CST);
    int most = __atomic_load_n(&s->most, __ATOMIC_SEQ_CST);
    while (now > most && !__atomic_compare_exchange_n(&s->most, &most, now, 0, __ATOMIC_SEQ_CST,
                                                      __ATOMIC_SEQ_CST)) {
    }
    sleep_os_ms(s->ms);
    __atomic_sub_fetch(&s->running, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&s->done, 1, __ATOMIC_SEQ_CST);
    return s;
}

/* A green thread's call on the pool, and what came of it. */
struct call {
    void *(*fn)(void *);
    void *arg;
    int64_t deadline;
    int r, err;
    void *result;
    int64_t returned_at;
};

static void *caller(void *arg)
{
    struct call *c = arg;
    errno = 0;
    c->r = green_run_blocking(c->fn, c->arg, &c->result, c->deadline);
    c->err = c->r ? errno : 0;
    c->returned_at = green_now();
    return NULL;
}

/* Wait (parked) until the sleepers' `done` count reaches n. */
static void wait_done(struct sleeper *s, int n)
{
    int64_t give_up = green_after(10 * LATE_MS);
    while (__atomic_load_n(&s->done, __ATOMIC_SEQ_CST) < n && green_now() < give_up)
        assert_int_equal(green_sleep(2), 0);
    assert_int_equal(__atomic_load_n(&s->done, __ATOMIC_SEQ_CST), n);
}

/* ======================================================================== */

static void test_result_and_errors(void **state)
{
    (void)state;
    void *r = NULL;
    assert_int_equal(green_run_blocking(add_one, (void *)41, &r, -1), 0);
    assert_int_equal((intptr_t)r, 42);
    assert_int_equal(green_run_blocking(add_one, (void *)1, NULL, green_after(LATE_MS)), 0);
    /* it really ran on another OS thread */
    assert_int_equal(green_run_blocking(whose_thread, NULL, &r, -1), 0);
    assert_false(pthread_equal((pthread_t)r, pthread_self()));
    assert_fails_with(green_run_blocking(NULL, NULL, &r, -1), EINVAL);
    assert_hub_idle();
}

/* The root alone waits on a job: something outside the hub will wake it, so this is no
 * deadlock (a root waiting on a semaphore nobody can release gets EDEADLK). */
static void test_root_waits_no_deadlock(void **state)
{
    (void)state;
    struct sleeper s = {.ms = 30};
    void *r = NULL;
    int64_t t0 = green_now();
    assert_int_equal(green_run_blocking(sleep_job, &s, &r, -1), 0);
    assert_ptr_equal(r, &s);
    assert_true(green_now() - t0 >= 30);
    assert_hub_idle();
}

/* Many green threads each make a blocking call: all finish, at most GREEN_THREADPOOL run
 * at once, and the hub keeps running a ticker meanwhile. */
static void test_many_sleepers_bounded(void **state)
{
    (void)state;
    int size = pool_size();
    int n = 1000 / GREEN_TEST_SCALE;
    if (n < 2 * size)
        n = 2 * size;
    struct sleeper s = {.ms = 20};
    struct call *c = calloc((size_t)n, sizeof *c);
    green_t *gs = calloc((size_t)n, sizeof *gs);
    struct ticker t = {0};
    green_t tk = green_spawn(tick, &t);
    assert_non_null(tk);
    int64_t t0 = green_now();
    for (int i = 0; i < n; i++) {
        c[i] = (struct call){.fn = sleep_job, .arg = &s, .deadline = -1, .r = 7};
        assert_non_null(gs[i] = green_spawn(caller, &c[i]));
    }
    assert_int_equal(green_joinall(gs, (size_t)n, -1), 0);
    int64_t elapsed = green_now() - t0;
    t.stop = 1;
    void *tr = (void *)1;
    assert_int_equal(green_join(tk, &tr, -1), 0);
    assert_null(tr);
    for (int i = 0; i < n; i++) {
        assert_int_equal(c[i].r, 0);
        assert_ptr_equal(c[i].result, &s);
    }
    assert_int_equal(s.done, n);
    assert_true(s.most <= size);
    assert_true(s.most >= 2);
    /* n jobs of 20 ms, `size` at a time: not faster than that */
    assert_true(elapsed >= (int64_t)(n / size) * 20 - 1);
    /* the ticker ran while the jobs did (a few ticks: valgrind and loaded CI machines
     * stretch its 1 ms sleeps far beyond that) */
    assert_true(t.ticks >= 3);
    free(c);
    free(gs);
    assert_hub_idle();
}

/* Jobs start in the order they were submitted. With all but one pool thread held, the
 * one left runs the queue one job at a time, so the order they log is the queue's. */
struct order {
    int log[64];
    int n;          /* atomic */
};
struct ordered {
    struct order *o;
    int index;
};

static void *log_job(void *arg)
{
    struct ordered *j = arg;
    int at = __atomic_fetch_add(&j->o->n, 1, __ATOMIC_SEQ_CST);
    j->o->log[at] = j->index;
    sleep_os_ms(1);
    return NULL;
}

static void test_fifo(void **state)
{
    (void)state;
    int size = pool_size();
    enum { N = 24 };
    struct gate g = {.n = size - 1};
    /* hold size - 1 threads */
    g.holders = calloc((size_t)g.n + 1, sizeof *g.holders);
    for (int i = 0; i < g.n; i++)
        assert_non_null(g.holders[i] = green_spawn(gate_holder, &g));
    while (__atomic_load_n(&g.entered, __ATOMIC_SEQ_CST) < g.n)
        assert_int_equal(green_sleep(1), 0);
    struct order o = {.n = 0};
    struct ordered jobs[N];
    struct call c[N];
    green_t gs[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (struct ordered){.o = &o, .index = i};
        c[i] = (struct call){.fn = log_job, .arg = &jobs[i], .deadline = -1, .r = 7};
        assert_non_null(gs[i] = green_spawn(caller, &c[i]));
    }
    assert_int_equal(green_joinall(gs, N, -1), 0);
    gate_open(&g);
    assert_int_equal(o.n, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(c[i].r, 0);
        assert_int_equal(o.log[i], i);
    }
    assert_hub_idle();
}

/* The caller's deadline passes while the job runs: it returns ETIMEDOUT at once, and
 * the job still runs to its end (its record is then freed by the pool thread: ASan and
 * valgrind check that nothing leaks). */
static void test_deadline_while_running(void **state)
{
    (void)state;
    struct sleeper s = {.ms = 300};
    void *r = (void *)7;
    int64_t t0 = green_now();
    assert_fails_with(green_run_blocking(sleep_job, &s, &r, t0 + 30), ETIMEDOUT);
    int64_t took = green_now() - t0;
    assert_true(took >= 30);
    assert_true(took < 300);
    assert_ptr_equal(r, (void *)7); /* untouched */
    assert_int_equal(__atomic_load_n(&s.done, __ATOMIC_SEQ_CST), 0);
    wait_done(&s, 1);
    /* a scoped timeout ends the wait the same way */
    struct sleeper s2 = {.ms = 300};
    assert_int_equal(green_timeout_push(30), 0);
    assert_fails_with(green_run_blocking(sleep_job, &s2, NULL, -1), ETIMEDOUT);
    assert_int_equal(green_timeout_pop(), 0);
    wait_done(&s2, 1);
    assert_hub_idle();
}

/* A caller killed while its job runs returns ECANCELED at once; the job completes. */
static void test_kill_while_running(void **state)
{
    (void)state;
    struct sleeper s = {.ms = 300};
    struct call c = {.fn = sleep_job, .arg = &s, .deadline = -1, .r = 7};
    green_attr_t shared = {.stack_mode = GREEN_STACK_SHARED};
    green_t g = green_spawn_attr(caller, &c, &shared);
    assert_non_null(g);
    assert_int_equal(green_sleep(20), 0);
    int64_t t0 = green_now();
    assert_int_equal(green_kill(g), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_true(green_now() - t0 < 250);
    assert_int_equal(c.r, -1);
    assert_int_equal(c.err, ECANCELED);
    assert_int_equal(__atomic_load_n(&s.done, __ATOMIC_SEQ_CST), 0);
    wait_done(&s, 1);
    assert_hub_idle();
}

/* A wait that would end before it starts starts no job: the deadline has passed, or
 * the caller was killed already. */
static void *killed_then_calls(void *arg)
{
    struct call *c = arg;
    green_sleep(LATE_MS); /* killed here */
    return caller(c);
}

static void test_no_job_when_over_before_start(void **state)
{
    (void)state;
    struct sleeper s = {.ms = 1};
    assert_fails_with(green_run_blocking(sleep_job, &s, NULL, green_now()), ETIMEDOUT);
    assert_fails_with(green_run_blocking(sleep_job, &s, NULL, 0), ETIMEDOUT);
    struct call c = {.fn = sleep_job, .arg = &s, .deadline = -1, .r = 7};
    green_t g = green_spawn(killed_then_calls, &c);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(green_kill(g), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(c.r, -1);
    assert_int_equal(c.err, ECANCELED);
    /* a scoped deadline (green_timeout_push) that has passed: the same */
    assert_int_equal(green_timeout_push(1), 0);
    sleep_os_ms(5);
    assert_fails_with(green_run_blocking(sleep_job, &s, NULL, -1), ETIMEDOUT);
    assert_int_equal(green_timeout_pop(), 0);
    sleep_os_ms(20);
    assert_int_equal(__atomic_load_n(&s.running, __ATOMIC_SEQ_CST), 0);
    assert_int_equal(__atomic_load_n(&s.done, __ATOMIC_SEQ_CST), 0);
    assert_hub_idle();
}

/* Deadlines of queued jobs: with every pool thread held, a job waits in the queue; its
 * caller still leaves at its deadline, and the job runs later, when a thread frees up. */
static void test_deadline_while_queued(void **state)
{
    (void)state;
    struct gate g;
    gate_close(&g);
    struct sleeper s = {.ms = 1};
    int64_t t0 = green_now();
    assert_fails_with(green_run_blocking(sleep_job, &s, NULL, t0 + 20), ETIMEDOUT);
    assert_true(green_now() - t0 < LATE_MS);
    assert_int_equal(__atomic_load_n(&s.done, __ATOMIC_SEQ_CST), 0);
    gate_open(&g);
    wait_done(&s, 1);
    assert_hub_idle();
}

/* Shared-stack callers keep their locals across the wait (the job never sees their
 * stacks: everything it gets is on the heap). */
static void *shared_caller(void *arg)
{
    intptr_t me = (intptr_t)arg;
    volatile intptr_t local[8];
    for (int i = 0; i < 8; i++)
        local[i] = me * 10 + i;
    void *r = NULL;
    if (green_run_blocking(add_one, (void *)me, &r, -1) != 0 || (intptr_t)r != me + 1)
        return (void *)1;
    for (int i = 0; i < 8; i++)
        if (local[i] != me * 10 + i)
            return (void *)1;
    return NULL;
}

static void test_shared_stack_callers(void **state)
{
    (void)state;
    enum { N = 50 };
    green_attr_t shared = {.stack_mode = GREEN_STACK_SHARED};
    green_t gs[N];
    for (int i = 0; i < N; i++)
        assert_non_null(gs[i] = green_spawn_attr(shared_caller, (void *)(intptr_t)i, &shared));
    for (int i = 0; i < N; i++) {
        void *r = (void *)1;
        assert_int_equal(green_join(gs[i], &r, -1), 0);
        assert_null(r);
    }
    assert_hub_idle();
    assert_int_equal(stats().shared_saved_bytes, 0);
}

/* Plain pthreads (no hub until they ask) and green threads of several hubs share the
 * pool; each wake-up reaches the right hub. */
static void *other_hub_main(void *arg)
{
    intptr_t base = (intptr_t)arg;
    /* the thread itself, as a root */
    void *r = NULL;
    if (green_run_blocking(add_one, (void *)base, &r, -1) != 0 || (intptr_t)r != base + 1)
        return (void *)1;
    /* and green threads of its hub */
    enum { N = 20 };
    struct call c[N];
    green_t gs[N];
    for (int i = 0; i < N; i++) {
        c[i] = (struct call){.fn = add_one, .arg = (void *)(base + i), .deadline = -1, .r = 7};
        if (!(gs[i] = green_spawn(caller, &c[i])))
            return (void *)1;
    }
    if (green_joinall(gs, N, -1) != 0)
        return (void *)1;
    for (int i = 0; i < N; i++)
        if (c[i].r != 0 || (intptr_t)c[i].result != base + i + 1)
            return (void *)1;
    return NULL;
}

static void test_pthreads_and_hubs_share_the_pool(void **state)
{
    (void)state;
    enum { T = 4 };
    pthread_t t[T];
    for (int k = 0; k < T; k++)
        assert_int_equal(pthread_create(&t[k], NULL, other_hub_main, (void *)(intptr_t)(k * 1000)), 0);
    /* this hub uses it at the same time */
    assert_null(other_hub_main((void *)(intptr_t)100000));
    for (int k = 0; k < T; k++) {
        void *r = (void *)1;
        pthread_join(t[k], &r);
        assert_null(r);
    }
    assert_hub_idle();
}

/* A job that itself needs the pool runs it inline: no deadlock even when the pool is
 * full of such jobs. */
static void *nested_job(void *arg)
{
    void *r = NULL;
    if (green_run_blocking(add_one, arg, &r, -1) != 0)
        return NULL;
    return r;
}

static void test_nested_calls(void **state)
{
    (void)state;
    int n = 2 * pool_size();
    struct call *c = calloc((size_t)n, sizeof *c);
    green_t *gs = calloc((size_t)n, sizeof *gs);
    for (int i = 0; i < n; i++) {
        c[i] = (struct call){.fn = nested_job, .arg = (void *)(intptr_t)i, .deadline = -1, .r = 7};
        assert_non_null(gs[i] = green_spawn(caller, &c[i]));
    }
    assert_int_equal(green_joinall(gs, (size_t)n, green_after(10 * LATE_MS)), 0);
    for (int i = 0; i < n; i++) {
        assert_int_equal(c[i].r, 0);
        assert_int_equal((intptr_t)c[i].result, i + 1);
    }
    free(c);
    free(gs);
    assert_hub_idle();
}

/* fork(): the child's pool starts empty (the parent's threads do not exist there) and
 * works. (Skipped where a forked child cannot start threads.) */
static int child_uses_pool(void)
{
    int bad = 0;
    for (int i = 0; i < 20; i++) {
        void *r = NULL;
        if (green_run_blocking(add_one, (void *)(intptr_t)i, &r, green_after(LATE_MS)) != 0 ||
            (intptr_t)r != i + 1)
            bad = 1;
    }
    struct sleeper s = {.ms = 5};
    if (green_run_blocking(sleep_job, &s, NULL, green_after(LATE_MS)) != 0 || s.done != 1)
        bad = 1;
    return bad;
}

static void test_fork_child_gets_fresh_pool(void **state)
{
    (void)state;
    if (!threads_after_fork())
        skip();
    void *r = NULL;
    assert_int_equal(green_run_blocking(add_one, (void *)1, &r, -1), 0); /* the pool runs */
    assert_int_equal(in_child(child_uses_pool), 0);
    /* and the parent's pool still works */
    assert_int_equal(green_run_blocking(add_one, (void *)2, &r, -1), 0);
    assert_int_equal((intptr_t)r, 3);
    assert_hub_idle();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_result_and_errors),
        cmocka_unit_test(test_root_waits_no_deadlock),
        cmocka_unit_test(test_many_sleepers_bounded),
        cmocka_unit_test(test_fifo),
        cmocka_unit_test(test_deadline_while_running),
        cmocka_unit_test(test_kill_while_running),
        cmocka_unit_test(test_no_job_when_over_before_start),
        cmocka_unit_test(test_deadline_while_queued),
        cmocka_unit_test(test_shared_stack_callers),
        cmocka_unit_test(test_pthreads_and_hubs_share_the_pool),
        cmocka_unit_test(test_nested_calls),
        cmocka_unit_test(test_fork_child_gets_fresh_pool),
    };
    return cmocka_run_group_tests_name("pool", tests, NULL, NULL);
}
