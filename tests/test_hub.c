/* test_hub.c — the hub: spawning, joining, killing, the one wait mechanism (park/wake),
 * deadlock detection, fairness, scoped deadlines, pollers, OS threads and fork()
 * (after gevent's test__greenlet.py, test__timeout.py and test__hub.py). */
#include "green_test.h"
#include "../src/green_private.h" /* the shields libgreen-patch.so uses */
#include "../src/sys.h"           /* green__sys: to slow a lock down */

#include <linux/io_uring.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Small green thread bodies used throughout. */
static void *ret_arg(void *arg) { return arg; }

static void *sleep_then_ret(void *arg)
{
    intptr_t ms = (intptr_t)arg;
    if (green_sleep(ms) != 0)
        return (void *)(intptr_t)-errno;
    return (void *)(ms + 1);
}

struct park_result {
    int r, err;
    int64_t elapsed;
};

static void *park_forever(void *arg)
{
    struct park_result *p = arg;
    int64_t t0 = green_now();
    errno = 0;
    p->r = green_park(-1);
    p->err = errno;
    p->elapsed = green_now() - t0;
    return (void *)5;
}

/* ======================================================================== */
/*  Time                                                                    */
/* ======================================================================== */

/* green_now() is a monotonic clock in milliseconds; green_after(ms) is now + ms. */
static void test_now_and_after(void **state)
{
    (void)state;
    int64_t prev = green_now();
    assert_true(prev >= 0);
    for (int i = 0; i < 100000; i++) {
        int64_t t = green_now();
        assert_true(t >= prev);
        prev = t;
    }
    int64_t before = green_now();
    int64_t d = green_after(250);
    int64_t after = green_now();
    assert_true(d >= before + 250);
    assert_true(d <= after + 250);
    assert_int_equal(green_after(-1), -1); /* never stays never */
    before = green_now();
    d = green_after(0);
    assert_true(d >= before && d <= green_now());

    /* milliseconds, not another unit: 50 ms of real time moves it by about 50 */
    int64_t t0 = green_now();
    sleep_os_ms(50);
    int64_t el = green_now() - t0;
    assert_true(el >= 49);
    assert_true(el < LATE_MS);
}

/* ======================================================================== */
/*  Pollers                                                                 */
/* ======================================================================== */

static int uring_usable(void)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    long fd = syscall(__NR_io_uring_setup, 4, &p);
    if (fd < 0)
        return 0;
    close((int)fd);
    return 1;
}

static void *poller_of_thread(void *arg)
{
    (void)arg;
    const char *n = green_poller_name();
    return (void *)n;
}

/* epoll by default, io_uring with GREEN_POLLER=uring (when the kernel allows it). */
static void test_poller_name(void **state)
{
    (void)state;
    const char *name = green_poller_name();
    assert_non_null(name);
    const char *env = getenv("GREEN_POLLER");
    if (env && strcmp(env, "uring") == 0 && uring_usable())
        assert_string_equal(name, "uring");
    else
        assert_string_equal(name, "epoll");
    /* every OS thread's hub picks the same way */
    pthread_t t;
    void *other;
    assert_int_equal(pthread_create(&t, NULL, poller_of_thread, NULL), 0);
    pthread_join(t, &other);
    assert_non_null(other);
    assert_string_equal((const char *)other, name);
    /* and the hub works with it */
    int64_t t0 = green_now();
    assert_int_equal(green_sleep(20), 0);
    assert_true(green_now() - t0 >= 20);
}

/* ======================================================================== */
/*  Spawn, join, detach                                                     */
/* ======================================================================== */

struct ran_info {
    int ran;
    green_t self;
    pthread_t os;
};

static void *record_self(void *arg)
{
    struct ran_info *r = arg;
    r->ran++;
    r->self = green_current();
    r->os = pthread_self();
    return (void *)0x1234;
}

/* green_spawn schedules fn on this thread's hub; green_join waits, hands back the
 * result and reaps: the handle is stale afterwards. */
static void test_spawn_and_join(void **state)
{
    (void)state;
    struct ran_info r = {0};
    green_t g = green_spawn(record_self, &r);
    assert_non_null(g);
    assert_int_equal(r.ran, 0); /* runs soon, not now */
    assert_int_equal(stats().alive, 1);
    assert_int_equal(stats().ready, 1);

    void *res = NULL;
    assert_int_equal(green_join(g, &res, -1), 0);
    assert_int_equal(r.ran, 1);
    assert_ptr_equal(res, (void *)0x1234);
    assert_ptr_equal(r.self, g);
    assert_true(r.self != green_root());
    assert_true(pthread_equal(r.os, pthread_self()));
    assert_ptr_equal(green_current(), green_root()); /* back in main() */

    /* reaped */
    assert_fails_with(green_join(g, NULL, -1), ESRCH);
    assert_fails_with(green_kill(g), ESRCH);
    assert_fails_with(green_detach(g), ESRCH);
    assert_fails_with(green_wake(g, 0), ESRCH);
    assert_fails_with(green_dead(g), ESRCH);

    /* the result pointer may be NULL; the handle of a new one is not the stale one */
    green_t g2 = green_spawn(ret_arg, NULL);
    assert_non_null(g2);
    assert_true(g2 != g);
    assert_int_equal(green_join(g2, NULL, -1), 0);
    assert_hub_idle();
}

/* join's errors: yourself (EDEADLK), the root, a detached one, a second joiner (EINVAL). */
struct join_errs {
    int self_r, self_e;
    int root_r, root_e;
};

static void *join_forbidden(void *arg)
{
    struct join_errs *j = arg;
    errno = 0;
    j->self_r = green_join(green_current(), NULL, -1);
    j->self_e = errno;
    errno = 0;
    j->root_r = green_join(green_root(), NULL, -1);
    j->root_e = errno;
    return NULL;
}

struct joiner_arg {
    green_t target;
    int r, err;
    void *res;
};

static void *join_other(void *arg)
{
    struct joiner_arg *j = arg;
    errno = 0;
    j->r = green_join(j->target, &j->res, -1);
    j->err = errno;
    return NULL;
}

static void test_join_errors(void **state)
{
    (void)state;
    struct join_errs je = {0};
    green_t g = green_spawn(join_forbidden, &je);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(je.self_r, -1);
    assert_int_equal(je.self_e, EDEADLK);
    assert_int_equal(je.root_r, -1);
    assert_int_equal(je.root_e, EINVAL);

    /* the root joining itself */
    assert_fails_with(green_join(green_root(), NULL, -1), EDEADLK);

    assert_fails_with(green_join(NULL, NULL, -1), EINVAL);

    /* a detached green thread cannot be joined */
    g = green_spawn(sleep_then_ret, (void *)5);
    assert_int_equal(green_detach(g), 0);
    assert_fails_with(green_join(g, NULL, -1), EINVAL);

    /* one joiner at a time */
    struct park_result pr = {0};
    green_t p = green_spawn(park_forever, &pr);
    struct joiner_arg ja = {.target = p};
    green_t j = green_spawn(join_other, &ja);
    assert_int_equal(green_yield(), 0); /* p parks, j waits for it */
    assert_fails_with(green_join(p, NULL, green_after(100)), EINVAL);
    assert_int_equal(green_wake(p, 0), 0);
    assert_int_equal(green_join(j, NULL, -1), 0);
    assert_int_equal(ja.r, 0);
    assert_ptr_equal(ja.res, (void *)5);
    assert_fails_with(green_join(p, NULL, -1), ESRCH); /* j reaped it */

    assert_int_equal(green_sleep(20), 0); /* the detached one finishes and reaps itself */
    assert_hub_idle();
}

/* A join whose deadline passes fails with ETIMEDOUT; the green thread is untouched and
 * can be joined later. Deadline 0 only looks. */
static void test_join_deadline_then_join_again(void **state)
{
    (void)state;
    int64_t t0 = green_now();
    green_t g = green_spawn(sleep_then_ret, (void *)200);
    void *res = NULL;
    assert_fails_with(green_join(g, &res, green_after(30)), ETIMEDOUT);
    int64_t el = green_now() - t0;
    assert_true(el >= 30);
    assert_true(el < LATE_MS);
    assert_null(res);
    assert_int_equal(green_dead(g), 0);

    errno = 0;
    int64_t t1 = green_now();
    assert_int_equal(green_join(g, &res, 0), -1);
    assert_int_equal(errno, ETIMEDOUT);
    assert_true(green_now() - t1 < 100); /* it did not wait for the 200 ms sleeper */
    assert_int_equal(green_dead(g), 0);

    assert_int_equal(green_join(g, &res, -1), 0);
    assert_ptr_equal(res, (void *)201);
    el = green_now() - t0;
    assert_true(el >= 200);
    assert_true(el < LATE_MS);
    assert_hub_idle();
}

/* joinall reaps every one that finished and NULLs its slot; the rest stay joinable. */
static void test_joinall(void **state)
{
    (void)state;
    green_t gs[4];
    gs[0] = green_spawn(sleep_then_ret, (void *)300);
    gs[1] = green_spawn(sleep_then_ret, (void *)10);
    gs[2] = NULL; /* empty slots are skipped */
    gs[3] = green_spawn(sleep_then_ret, (void *)20);
    green_t slow = gs[0];
    int64_t t0 = green_now();
    assert_fails_with(green_joinall(gs, 4, green_after(100)), ETIMEDOUT);
    int64_t el = green_now() - t0;
    assert_true(el >= 100);
    assert_true(el < LATE_MS);
    assert_ptr_equal(gs[0], slow);
    assert_null(gs[1]);
    assert_null(gs[2]);
    assert_null(gs[3]);
    assert_int_equal(stats().alive, 1);

    assert_int_equal(green_joinall(gs, 4, -1), 0);
    for (int i = 0; i < 4; i++)
        assert_null(gs[i]);
    assert_fails_with(green_join(slow, NULL, -1), ESRCH);

    assert_int_equal(green_joinall(gs, 4, -1), 0); /* nothing left to do */
    assert_int_equal(green_joinall(NULL, 0, -1), 0);
    assert_fails_with(green_joinall(NULL, 1, -1), EINVAL);
    assert_hub_idle();
}

static void *count_after_sleep(void *arg)
{
    int *n = arg;
    green_sleep(10);
    (*n)++;
    return NULL;
}

/* A detached green thread is reaped by itself when it finishes. */
static void test_detach(void **state)
{
    (void)state;
    int n = 0;
    green_t g = green_spawn(count_after_sleep, &n);
    assert_int_equal(green_detach(g), 0);
    assert_fails_with(green_detach(g), EINVAL);
    assert_int_equal(stats().alive, 1);
    assert_int_equal(green_sleep(50), 0);
    assert_int_equal(n, 1);
    assert_int_equal(stats().alive, 0);
    assert_fails_with(green_join(g, NULL, -1), ESRCH);
    assert_fails_with(green_kill(g), ESRCH);

    /* detaching one that already finished reaps it at once */
    g = green_spawn(ret_arg, NULL);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(green_dead(g), 1);
    assert_int_equal(green_detach(g), 0);
    assert_fails_with(green_dead(g), ESRCH);

    /* the root cannot be detached */
    assert_fails_with(green_detach(green_root()), EINVAL);
    assert_hub_idle();
}

struct stamp {
    int64_t at;
    int ran;
};

static void *stamp_now(void *arg)
{
    struct stamp *s = arg;
    s->at = green_now();
    s->ran++;
    return arg;
}

/* green_spawn_later(ms, ...) starts fn after ms, not before. */
static void test_spawn_later(void **state)
{
    (void)state;
    struct stamp s = {0};
    int64_t t0 = green_now();
    green_t g = green_spawn_later(60, stamp_now, &s);
    assert_non_null(g);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(s.ran, 0);
    assert_int_equal(green_started(g), 0);
    assert_int_equal(stats().timers, 1);
    void *res = NULL;
    assert_int_equal(green_join(g, &res, -1), 0);
    assert_ptr_equal(res, &s);
    assert_int_equal(s.ran, 1);
    assert_true(s.at - t0 >= 60);
    assert_true(s.at - t0 < LATE_MS);

    /* 0: as soon as possible */
    struct stamp z = {0};
    g = green_spawn_later(0, stamp_now, &z);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(z.ran, 1);

    assert_null_with(green_spawn_later(-1, stamp_now, &s), EINVAL);
    assert_hub_idle();
}

/* A green thread started by green_spawn_later is an ordinary green thread: it can, for
 * instance, drive a greenlet of its own with green_switch and get its values back. */
static void *ret42(void *arg)
{
    (void)arg;
    return (void *)42;
}

struct switch_out {
    void *value;
    int err;
};

static void *switch_into_child(void *arg)
{
    struct switch_out *o = arg;
    green_t child = green_new(ret42, NULL, NULL);
    errno = EBADF;
    o->value = green_switch(child, NULL);
    o->err = errno;
    green_destroy(child);
    return NULL;
}

static void test_spawn_later_is_an_ordinary_green_thread(void **state)
{
    (void)state;
    struct switch_out a = {0}, b = {0};
    green_t g = green_spawn(switch_into_child, &a);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_ptr_equal(a.value, (void *)42);
    assert_int_equal(a.err, 0);

    g = green_spawn_later(10, switch_into_child, &b);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(b.err, 0);
    assert_ptr_equal(b.value, (void *)42);
    assert_hub_idle();
}

/* Shared-stack green threads are scheduled exactly the same way. Data goes through the
 * heap (THE RULE), and their frames survive being moved off and back on the stack. */
struct shared_log {
    int order[8];
    int n;
};

struct shared_job {
    struct shared_log *log;
    int index;
};

static unsigned deep_sum(unsigned depth)
{
    volatile unsigned local[16];
    for (unsigned i = 0; i < 16; i++)
        local[i] = depth * 16 + i;
    if (depth % 8 == 0)
        green_yield(); /* suspended with many frames on the shared stack */
    unsigned s = depth ? deep_sum(depth - 1) : 0;
    for (unsigned i = 0; i < 16; i++)
        s += local[i];
    return s;
}

static void *shared_worker(void *arg)
{
    struct shared_job *j = arg;
    unsigned s = deep_sum(40);
    if (green_sleep(10 * (4 - j->index)) != 0)
        return NULL;
    j->log->order[j->log->n++] = j->index;
    return (void *)(uintptr_t)s;
}

static void test_shared_stack_mode(void **state)
{
    (void)state;
    green_attr_t a = {.stack_mode = GREEN_STACK_SHARED, .name = "shared"};
    struct shared_log *log = calloc(1, sizeof *log);
    struct shared_job *jobs = calloc(4, sizeof *jobs);
    green_t gs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i].log = log;
        jobs[i].index = i;
        gs[i] = green_spawn_attr(shared_worker, &jobs[i], &a);
        assert_non_null(gs[i]);
        assert_string_equal(green_name(gs[i]), "shared");
    }
    unsigned expect = 0;
    for (unsigned d = 0; d <= 40; d++)
        for (unsigned i = 0; i < 16; i++)
            expect += d * 16 + i;
    for (int i = 0; i < 4; i++) {
        void *res = NULL;
        assert_int_equal(green_join(gs[i], &res, -1), 0);
        assert_int_equal((uintptr_t)res, expect);
    }
    assert_int_equal(log->n, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(log->order[i], 3 - i); /* shortest sleep first */

    /* kill, detach, park/wake, deadlines: the same as dedicated mode */
    struct park_result *pr = calloc(1, sizeof *pr);
    green_t p = green_spawn_attr(park_forever, pr, &a);
    green_t s = green_spawn_attr(sleep_then_ret, (void *)10000, &a);
    green_t d = green_spawn_attr(sleep_then_ret, (void *)5, &a);
    assert_int_equal(green_detach(d), 0);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(stats().waiting, 3);
    assert_int_equal(green_wake(p, EPIPE), 0);
    assert_int_equal(green_kill(s), 0);
    void *res = NULL;
    assert_int_equal(green_join(s, &res, green_after(2000)), 0);
    assert_ptr_equal(res, (void *)(intptr_t)-ECANCELED);
    assert_int_equal(green_join(p, &res, green_after(2000)), 0);
    assert_ptr_equal(res, (void *)5);
    assert_int_equal(pr->r, -1);
    assert_int_equal(pr->err, EPIPE);
    assert_int_equal(green_sleep(30), 0);
    assert_fails_with(green_join(d, NULL, -1), ESRCH);
    free(pr);
    free(jobs);
    free(log);
    assert_hub_idle();
    assert_int_equal(stats().shared_saved_bytes, 0);
}

/* green_spawn_attr takes its arguments in green_new's order: fn, arg, then attr (both
 * kinds of stack, and the name, are honoured; arg reaches fn). */
static void test_spawn_attr_argument_order(void **state)
{
    (void)state;
    for (int mode = 0; mode < 2; mode++) {
        green_attr_t a = {.stack_mode = mode ? GREEN_STACK_SHARED : GREEN_STACK_DEDICATED,
                          .name = mode ? "shared-one" : "dedicated-one"};
        green_t g = green_spawn_attr(ret_arg, (void *)(intptr_t)(40 + mode), &a);
        assert_non_null(g);
        assert_string_equal(green_name(g), a.name);
        void *res = NULL;
        assert_int_equal(green_join(g, &res, -1), 0);
        assert_ptr_equal(res, (void *)(intptr_t)(40 + mode));
    }
    green_t g = green_spawn_attr(ret_arg, (void *)7, NULL); /* attr NULL: the defaults */
    void *res = NULL;
    assert_int_equal(green_join(g, &res, -1), 0);
    assert_ptr_equal(res, (void *)7);
}

/* ======================================================================== */
/*  Errors                                                                  */
/* ======================================================================== */

/* Every failing call returns -1 (or NULL) and says why in errno. */
static void test_bad_arguments(void **state)
{
    (void)state;
    assert_fails_with(green_sleep(-1), EINVAL);
    assert_fails_with(green_sleep_until(-1), EINVAL);
    assert_null_with(green_spawn(NULL, NULL), EINVAL);
    assert_null_with(green_spawn_later(10, NULL, NULL), EINVAL);
    green_attr_t bad = {.stack_mode = 9};
    assert_null_with(green_spawn_attr(ret_arg, NULL, &bad), EINVAL);
    assert_fails_with(green_timeout_pop(), EINVAL);
    assert_fails_with(green_kill(NULL), EINVAL);
    assert_fails_with(green_detach(NULL), EINVAL);
    assert_fails_with(green_wake(NULL, 0), EINVAL);
    assert_fails_with(green_stats(NULL), EINVAL);

    struct park_result pr = {0};
    green_t p = green_spawn(park_forever, &pr);
    assert_int_equal(green_yield(), 0);
    assert_fails_with(green_wake(p, -5), EINVAL);
    assert_int_equal(green_kill(p), 0);
    assert_int_equal(green_join(p, NULL, -1), 0);
    assert_int_equal(pr.err, ECANCELED);

    /* nothing leaked from the failed calls */
    assert_hub_idle();
}

/* ======================================================================== */
/*  The one wait mechanism: green_park / green_wake                          */
/* ======================================================================== */

struct park_deadline {
    int64_t deadline, at;
    struct park_result res;
};

static void *park_until(void *arg)
{
    struct park_deadline *p = arg;
    int64_t t0 = green_now();
    errno = 0;
    p->res.r = green_park(p->deadline);
    p->res.err = errno;
    p->res.elapsed = green_now() - t0;
    p->at = green_now();
    return NULL;
}

struct waker {
    green_t target;
    int ms, err;
    int r;
};

static void *wake_later(void *arg)
{
    struct waker *w = arg;
    green_sleep(w->ms);
    w->r = green_wake(w->target, w->err);
    return NULL;
}

static void test_park_and_wake(void **state)
{
    (void)state;
    /* woken with 0: park returns 0 */
    struct park_result pr = {.r = 99};
    green_t p = green_spawn(park_forever, &pr);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(pr.r, 99); /* still parked */
    assert_int_equal(stats().waiting, 1);
    assert_int_equal(green_wake(p, 0), 0);
    assert_fails_with(green_wake(p, 0), EAGAIN); /* already woken: not parked any more */
    assert_int_equal(green_join(p, NULL, -1), 0);
    assert_int_equal(pr.r, 0); /* (errno is only meaningful after a failure) */

    /* woken with an error: park fails with it */
    memset(&pr, 0, sizeof pr);
    p = green_spawn(park_forever, &pr);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(green_wake(p, ECONNRESET), 0);
    assert_int_equal(green_join(p, NULL, -1), 0);
    assert_int_equal(pr.r, -1);
    assert_int_equal(pr.err, ECONNRESET);

    /* the deadline passes */
    struct park_deadline pd = {.deadline = green_after(40)};
    p = green_spawn(park_until, &pd);
    assert_int_equal(green_join(p, NULL, -1), 0);
    assert_int_equal(pd.res.r, -1);
    assert_int_equal(pd.res.err, ETIMEDOUT);
    assert_true(pd.at >= pd.deadline);
    assert_true(pd.at - pd.deadline < LATE_MS);

    /* deadline 0 only polls, even for the root with nothing else to run */
    int64_t t0 = green_now();
    assert_fails_with(green_park(0), ETIMEDOUT);
    assert_fails_with(green_park(green_after(30)), ETIMEDOUT);
    assert_true(green_now() - t0 >= 30);

    /* waking a green thread that is not parked: EAGAIN */
    assert_fails_with(green_wake(green_current(), 0), EAGAIN); /* running */
    green_t q = green_spawn(ret_arg, NULL);
    assert_fails_with(green_wake(q, 0), EAGAIN); /* ready, never ran */
    assert_int_equal(green_yield(), 0);
    assert_int_equal(green_dead(q), 1);
    assert_fails_with(green_wake(q, 0), EAGAIN); /* dead */
    assert_int_equal(green_join(q, NULL, -1), 0);

    /* the root parks too, and a green thread wakes it */
    struct waker w = {.target = green_root(), .ms = 20, .err = 0};
    green_t wg = green_spawn(wake_later, &w);
    t0 = green_now();
    assert_int_equal(green_park(-1), 0);
    assert_true(green_now() - t0 >= 20);
    assert_int_equal(w.r, 0);
    assert_int_equal(green_join(wg, NULL, -1), 0);
    w = (struct waker){.target = green_root(), .ms = 5, .err = EPIPE};
    wg = green_spawn(wake_later, &w);
    assert_fails_with(green_park(green_after(5000)), EPIPE);
    assert_int_equal(green_join(wg, NULL, -1), 0);
    assert_hub_idle();
}

/* green_wake(g, err) hands err over intact (or refuses it): whatever int it is, park
 * never turns a failure into a success or into another error. */
static void test_wake_error_intact(void **state)
{
    (void)state;
    static const int errs[] = {EIO, 4095, 40000, 65536, 1 << 20};
    int wrong = 0;
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        struct park_result pr = {.r = 99};
        green_t p = green_spawn(park_forever, &pr);
        assert_int_equal(green_yield(), 0);
        errno = 0;
        int w = green_wake(p, errs[i]);
        int werr = errno;
        if (w != 0) {
            assert_int_equal(w, -1);
            assert_int_equal(werr, EINVAL);
            assert_int_equal(green_wake(p, 0), 0);
        }
        assert_int_equal(green_join(p, NULL, -1), 0);
        print_message("green_wake(g, %d) -> %d; park -> %d, errno %d\n", errs[i], w, pr.r,
                      pr.err);
        if (w == 0)
            wrong += pr.r != -1 || pr.err != errs[i];
        else
            wrong += pr.r != 0;
    }
    assert_int_equal(wrong, 0);
    assert_hub_idle();
}

/* A sleep lasts its duration: a stray wake-up does not cut it short. */
struct sleep_result {
    int ms, r, err;
    int64_t elapsed;
};

static void *timed_sleep(void *arg)
{
    struct sleep_result *s = arg;
    int64_t t0 = green_now();
    errno = 0;
    s->r = green_sleep(s->ms);
    s->err = errno;
    s->elapsed = green_now() - t0;
    return NULL;
}

static void test_sleep_lasts_its_duration(void **state)
{
    (void)state;
    struct sleep_result s = {.ms = 100};
    green_t g = green_spawn(timed_sleep, &s);
    assert_int_equal(green_yield(), 0);    /* it runs and parks in its sleep */
    assert_int_equal(green_wake(g, 0), 0); /* a stray wake-up */
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(s.r, 0);
    assert_true(s.elapsed >= 100);
    assert_true(s.elapsed < LATE_MS);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Kill                                                                    */
/* ======================================================================== */

struct victim {
    int r[8], err[8];
    int cancelled_before, cancelled_after;
    int64_t elapsed;
};

static void *victim_fn(void *arg)
{
    struct victim *v = arg;
    int64_t t0 = green_now();
    v->cancelled_before = green_cancelled();
    errno = 0;
    v->r[0] = green_sleep(10000);
    v->err[0] = errno;
    v->elapsed = green_now() - t0;
    v->cancelled_after = green_cancelled();
    /* every later blocking call fails the same way */
    errno = 0;
    v->r[1] = green_sleep(1);
    v->err[1] = errno;
    errno = 0;
    v->r[2] = green_park(-1);
    v->err[2] = errno;
    errno = 0;
    v->r[3] = green_yield();
    v->err[3] = errno;
    errno = 0;
    v->r[4] = green_sleep(0);
    v->err[4] = errno;
    errno = 0;
    v->r[5] = green_sleep_until(green_after(1));
    v->err[5] = errno;
    green_t other = green_spawn(ret_arg, NULL); /* not a blocking call */
    errno = 0;
    v->r[6] = green_join(other, NULL, -1);
    v->err[6] = errno;
    green_detach(other);
    errno = 0;
    v->r[7] = green_park(0);
    v->err[7] = errno;
    return (void *)99;
}

/* green_kill: the target's blocking call returns -1/ECANCELED and so does every later
 * one; the target returns normally and join hands back what it returned. Kill does not
 * wait. */
static void test_kill_sleeping(void **state)
{
    (void)state;
    struct victim v;
    memset(&v, 0x55, sizeof v);
    int64_t t0 = green_now();
    green_t g = green_spawn(victim_fn, &v);
    assert_int_equal(green_yield(), 0); /* it is asleep now */
    assert_int_equal(v.cancelled_before, 0);
    assert_int_equal(stats().waiting, 1);
    assert_int_equal(green_kill(g), 0);
    /* did not wait: the victim has not run yet, it is only ready */
    assert_int_equal(v.r[0], 0x55555555);
    assert_int_equal(stats().waiting, 0);
    assert_int_equal(stats().ready, 1);
    assert_int_equal(green_cancelled(), 0); /* the root was not killed */

    void *res = NULL;
    assert_int_equal(green_join(g, &res, -1), 0);
    assert_ptr_equal(res, (void *)99);
    assert_true(green_now() - t0 < LATE_MS);
    assert_true(v.elapsed < LATE_MS);
    assert_int_equal(v.cancelled_after, 1);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(v.r[i], -1);
        assert_int_equal(v.err[i], ECANCELED);
    }
    assert_int_equal(green_sleep(5), 0); /* the detached helper finishes */
    assert_hub_idle();
}

/* A parked or joining green thread is killed the same way. */
static void test_kill_parked_and_joining(void **state)
{
    (void)state;
    struct park_result pr = {0};
    green_t p = green_spawn(park_forever, &pr);
    struct joiner_arg ja = {.target = p};
    green_t j = green_spawn(join_other, &ja);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(stats().waiting, 2);

    assert_int_equal(green_kill(j), 0); /* its join gives up */
    assert_int_equal(green_join(j, NULL, -1), 0);
    assert_int_equal(ja.r, -1);
    assert_int_equal(ja.err, ECANCELED);
    assert_int_equal(green_dead(p), 0); /* the one it waited for is untouched */

    assert_int_equal(green_kill(p), 0);
    void *res = NULL;
    assert_int_equal(green_join(p, &res, -1), 0);
    assert_ptr_equal(res, (void *)5);
    assert_int_equal(pr.r, -1);
    assert_int_equal(pr.err, ECANCELED);
    assert_hub_idle();
}

/* A green thread may kill itself: its next blocking call fails. */
static void *kill_self_then_sleep(void *arg)
{
    int *out = arg;
    out[0] = green_kill(green_current());
    errno = 0;
    out[1] = green_sleep(10);
    out[2] = errno;
    return NULL;
}

static void test_kill_self(void **state)
{
    (void)state;
    int out[3] = {7, 7, 7};
    green_t g = green_spawn(kill_self_then_sleep, out);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], -1);
    assert_int_equal(out[2], ECANCELED);
    assert_hub_idle();
}

static void *mark_ran(void *arg)
{
    int *ran = arg;
    (*ran)++;
    return (void *)0xbad;
}

/* One that never started never runs, and joining it gives NULL. */
static void test_kill_unstarted(void **state)
{
    (void)state;
    int ran = 0;
    green_t g = green_spawn(mark_ran, &ran);
    assert_int_equal(green_kill(g), 0);
    void *res = (void *)1;
    assert_int_equal(green_join(g, &res, -1), 0);
    assert_null(res);
    assert_int_equal(ran, 0);

    /* not started yet because it starts later */
    g = green_spawn_later(20, mark_ran, &ran);
    assert_int_equal(stats().timers, 1);
    assert_int_equal(green_kill(g), 0);
    assert_int_equal(stats().timers, 0);
    res = (void *)1;
    assert_int_equal(green_join(g, &res, -1), 0);
    assert_null(res);
    assert_int_equal(green_sleep(40), 0);
    assert_int_equal(ran, 0);

    /* a detached one is reaped */
    g = green_spawn(mark_ran, &ran);
    assert_int_equal(green_detach(g), 0);
    assert_int_equal(green_kill(g), 0);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(ran, 0);
    assert_fails_with(green_kill(g), ESRCH);
    assert_hub_idle();
}

/* Its joiner is woken when an unstarted one is killed (by someone else). */
struct killer {
    green_t target;
    int ms, r;
};

static void *kill_later(void *arg)
{
    struct killer *k = arg;
    green_sleep(k->ms);
    k->r = green_kill(k->target);
    return NULL;
}

static void test_kill_wakes_joiner(void **state)
{
    (void)state;
    int ran = 0;
    green_t g = green_spawn_later(10000, mark_ran, &ran);
    struct killer k = {.target = g, .ms = 20, .r = 9};
    green_t kg = green_spawn(kill_later, &k);
    int64_t t0 = green_now();
    void *res = (void *)1;
    assert_int_equal(green_join(g, &res, -1), 0);
    assert_true(green_now() - t0 >= 20);
    assert_true(green_now() - t0 < LATE_MS);
    assert_null(res);
    assert_int_equal(ran, 0);
    assert_int_equal(green_join(kg, NULL, -1), 0);
    assert_int_equal(k.r, 0);

    /* and a started one's joiner gets what it returned */
    g = green_spawn(sleep_then_ret, (void *)10000);
    k = (struct killer){.target = g, .ms = 20, .r = 9};
    kg = green_spawn(kill_later, &k);
    assert_int_equal(green_join(g, &res, green_after(5000)), 0);
    assert_ptr_equal(res, (void *)(intptr_t)-ECANCELED);
    assert_int_equal(green_join(kg, NULL, -1), 0);
    assert_hub_idle();
}

static void *kill_root(void *arg)
{
    int *out = arg;
    errno = 0;
    out[0] = green_kill(green_root());
    out[1] = errno;
    return NULL;
}

/* Killing the root is refused. */
static void test_kill_root_refused(void **state)
{
    (void)state;
    assert_fails_with(green_kill(green_root()), EPERM);
    int out[2] = {0, 0};
    green_t g = green_spawn(kill_root, out);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(out[0], -1);
    assert_int_equal(out[1], EPERM);
    assert_int_equal(green_cancelled(), 0);
    assert_int_equal(green_sleep(1), 0);
    assert_hub_idle();
}

/* Killed while ready (its wait already ended but it has not run yet): the call it is
 * in still returns -1/ECANCELED, like every blocking call after the kill. */
struct yielder {
    int n, err;
};

static void *yield_until_error(void *arg)
{
    struct yielder *y = arg;
    for (;;) {
        errno = 0;
        if (green_yield() != 0) {
            y->err = errno;
            return NULL;
        }
        y->n++;
    }
}

struct pair_sleep {
    int64_t deadline;
    green_t target; /* for the killer */
    int r, err;
};

static void *sleep_until_then_kill(void *arg)
{
    struct pair_sleep *p = arg;
    p->r = green_sleep_until(p->deadline);
    green_kill(p->target);
    return NULL;
}

static void *sleep_until_record(void *arg)
{
    struct pair_sleep *p = arg;
    errno = 0;
    p->r = green_sleep_until(p->deadline);
    p->err = errno;
    return NULL;
}

/* killed in the middle of a green_yield */
static void test_kill_while_ready_in_yield(void **state)
{
    (void)state;
    struct yielder y = {0, 0};
    green_t g = green_spawn(yield_until_error, &y);
    assert_int_equal(green_yield(), 0); /* it ran and yielded back: it is ready */
    assert_int_equal(y.n, 0);
    assert_int_equal(green_kill(g), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(y.err, ECANCELED);
    assert_int_equal(y.n, 0); /* the yield in progress failed */
    assert_hub_idle();
}

/* killed after its timer fired but before it ran */
static void test_kill_while_ready_after_timer(void **state)
{
    (void)state;
    struct pair_sleep killer = {0}, target = {.r = 7};
    killer.deadline = target.deadline = green_after(20);
    green_t k = green_spawn(sleep_until_then_kill, &killer);
    green_t t = green_spawn(sleep_until_record, &target);
    killer.target = t;
    assert_int_equal(green_join(t, NULL, -1), 0);
    assert_int_equal(green_join(k, NULL, -1), 0);
    assert_int_equal(killer.r, 0);
    assert_int_equal(target.r, -1);
    assert_int_equal(target.err, ECANCELED);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Deadlock detection (gevent's LoopExit)                                   */
/* ======================================================================== */

/* The root waits for something nothing can ever do: it gets EDEADLK, not a hang. */
static void test_deadlock_join_parked_forever(void **state)
{
    (void)state;
    struct park_result pr = {0};
    green_t p = green_spawn(park_forever, &pr);
    int64_t t0 = green_now();
    void *res = (void *)1;
    assert_fails_with(green_join(p, &res, -1), EDEADLK);
    assert_true(green_now() - t0 < LATE_MS);
    assert_ptr_equal(res, (void *)1);
    assert_int_equal(green_dead(p), 0);
    assert_int_equal(stats().waiting, 1);

    /* the same for a plain park of the root */
    assert_fails_with(green_park(-1), EDEADLK);

    /* the hub is fine afterwards */
    assert_int_equal(green_sleep(5), 0);
    assert_int_equal(green_kill(p), 0);
    assert_int_equal(green_join(p, &res, -1), 0);
    assert_ptr_equal(res, (void *)5);
    assert_int_equal(pr.err, ECANCELED);

    /* nothing at all to wait for */
    assert_fails_with(green_park(-1), EDEADLK);
    assert_hub_idle();
}

/* Through a chain: root joins a, a joins b, b parks forever. And when the last green
 * thread to run exits rather than parks. */
static void test_deadlock_chain_and_exit(void **state)
{
    (void)state;
    struct park_result pr = {0};
    green_t b = green_spawn(park_forever, &pr);
    struct joiner_arg ja = {.target = b};
    green_t a = green_spawn(join_other, &ja);
    assert_fails_with(green_join(a, NULL, -1), EDEADLK);
    assert_int_equal(green_kill(b), 0);
    assert_int_equal(green_join(a, NULL, -1), 0);
    assert_int_equal(ja.r, 0);
    assert_ptr_equal(ja.res, (void *)5);

    /* p parks forever; q runs after it and just returns */
    memset(&pr, 0, sizeof pr);
    green_t p = green_spawn(park_forever, &pr);
    green_t q = green_spawn(ret_arg, (void *)3);
    assert_fails_with(green_join(p, NULL, -1), EDEADLK);
    void *res = NULL;
    assert_int_equal(green_join(q, &res, -1), 0);
    assert_ptr_equal(res, (void *)3);
    assert_int_equal(green_kill(p), 0);
    assert_int_equal(green_join(p, NULL, -1), 0);
    assert_hub_idle();
}

/* But a wait that a timer will end is not a deadlock. */
static void test_no_deadlock_when_a_timer_will_fire(void **state)
{
    (void)state;
    int64_t t0 = green_now();
    green_t s = green_spawn(sleep_then_ret, (void *)50);
    void *res = NULL;
    assert_int_equal(green_join(s, &res, -1), 0);
    assert_ptr_equal(res, (void *)51);
    assert_true(green_now() - t0 >= 50);

    /* joining one that joins one that starts later */
    int ran = 0;
    green_t l = green_spawn_later(50, mark_ran, &ran);
    struct joiner_arg ja = {.target = l};
    green_t j = green_spawn(join_other, &ja);
    assert_int_equal(green_join(j, NULL, -1), 0);
    assert_int_equal(ja.r, 0);
    assert_int_equal(ran, 1);

    /* a root with a deadline times out rather than deadlocks */
    assert_fails_with(green_park(green_after(20)), ETIMEDOUT);

    /* a green thread parked forever does not disturb the root's sleep */
    struct park_result pr = {0};
    green_t p = green_spawn(park_forever, &pr);
    assert_int_equal(green_sleep(20), 0);
    assert_int_equal(green_kill(p), 0);
    assert_int_equal(green_join(p, NULL, -1), 0);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Fairness                                                                */
/* ======================================================================== */

static int order_log[256];
static int order_n;

static void *log_index(void *arg)
{
    order_log[order_n++] = (int)(intptr_t)arg;
    return NULL;
}

static void *log_yield_log(void *arg)
{
    order_log[order_n++] = (int)(intptr_t)arg;
    green_yield();
    order_log[order_n++] = 100 + (int)(intptr_t)arg;
    return NULL;
}

static void *log_round_robin(void *arg)
{
    for (int k = 0; k < 4; k++) {
        order_log[order_n++] = (int)(intptr_t)arg;
        green_yield();
    }
    return NULL;
}

/* The run queue is FIFO: spawned green threads run in spawn order; a yield lets every
 * other ready green thread run once, in order. */
static void test_fifo_and_yield_order(void **state)
{
    (void)state;
    green_t gs[16];
    order_n = 0;
    for (int i = 0; i < 16; i++)
        gs[i] = green_spawn(log_index, (void *)(intptr_t)i);
    assert_int_equal(green_joinall(gs, 16, -1), 0);
    assert_int_equal(order_n, 16);
    for (int i = 0; i < 16; i++)
        assert_int_equal(order_log[i], i);

    /* the root's yield runs each ready one once, then comes back */
    order_n = 0;
    for (int i = 0; i < 3; i++)
        gs[i] = green_spawn(log_yield_log, (void *)(intptr_t)i);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(order_n, 3);
    assert_int_equal(green_joinall(gs, 3, -1), 0);
    int expect[] = {0, 1, 2, 100, 101, 102};
    assert_int_equal(order_n, 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(order_log[i], expect[i]);

    /* round robin */
    order_n = 0;
    for (int i = 0; i < 3; i++)
        gs[i] = green_spawn(log_round_robin, (void *)(intptr_t)i);
    assert_int_equal(green_joinall(gs, 3, -1), 0);
    assert_int_equal(order_n, 12);
    for (int i = 0; i < 12; i++)
        assert_int_equal(order_log[i], i % 3);

    /* with nothing else ready, a yield returns at once */
    assert_int_equal(green_yield(), 0);
    assert_hub_idle();
}

struct spinner {
    volatile int stop;
    long spins;
    int use_sleep0;
};

static void *spin_yield(void *arg)
{
    struct spinner *s = arg;
    while (!s->stop) {
        if ((s->use_sleep0 ? green_sleep(0) : green_yield()) != 0)
            return (void *)-1;
        s->spins++;
    }
    return NULL;
}

static void *sleep_then_stop(void *arg)
{
    struct spinner *s = arg;
    int64_t t0 = green_now();
    int r = green_sleep(20);
    s->stop = 1;
    return r == 0 ? (void *)(intptr_t)(green_now() - t0) : (void *)-1;
}

/* A green thread that yields in a loop does not starve timers. */
static void test_yield_loop_does_not_starve_timers(void **state)
{
    (void)state;
    alarm(60); /* starved timers would hang the test: end it instead */
    for (int variant = 0; variant < 3; variant++) {
        struct spinner s = {.use_sleep0 = variant == 1};
        green_t sp = green_spawn(spin_yield, &s);
        green_t sp2 = variant == 2 ? green_spawn(spin_yield, &s) : NULL; /* queue never empty */
        green_t sl = green_spawn(sleep_then_stop, &s);
        void *res = NULL;
        assert_int_equal(green_join(sl, &res, green_after(5000)), 0);
        intptr_t slept = (intptr_t)res;
        assert_true(slept >= 20);
        assert_true(slept < LATE_MS);
        assert_int_equal(green_join(sp, &res, green_after(5000)), 0);
        assert_null(res);
        if (sp2) {
            assert_int_equal(green_join(sp2, &res, green_after(5000)), 0);
            assert_null(res);
        }
        assert_true(s.spins > 0);
    }
    /* the root spinning on green_yield wakes a sleeper too */
    struct spinner s = {0};
    green_t sl = green_spawn(sleep_then_stop, &s);
    int64_t t0 = green_now();
    while (!s.stop && green_now() - t0 < 5000)
        assert_int_equal(green_yield(), 0);
    assert_int_equal(s.stop, 1);
    assert_int_equal(green_join(sl, NULL, -1), 0);
    alarm(0);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Scoped deadlines (gevent.Timeout)                                       */
/* ======================================================================== */

static void test_timeout_scope_sleep(void **state)
{
    (void)state;
    int64_t t0 = green_now();
    assert_int_equal(green_timeout_push(50), 0);
    assert_fails_with(green_sleep(1000), ETIMEDOUT);
    int64_t el = green_now() - t0;
    assert_true(el >= 50);
    assert_true(el < 900);
    /* every blocking call in the scope: the deadline has passed */
    assert_fails_with(green_park(-1), ETIMEDOUT);
    assert_int_equal(green_timeout_pop(), 0);

    /* pop restores: no deadline any more */
    t0 = green_now();
    assert_int_equal(green_sleep(20), 0);
    assert_true(green_now() - t0 >= 20);

    /* a call with an earlier deadline of its own ends by that one, normally */
    assert_int_equal(green_timeout_push(500), 0);
    t0 = green_now();
    assert_int_equal(green_sleep(20), 0);
    assert_fails_with(green_park(green_after(20)), ETIMEDOUT);
    assert_true(green_now() - t0 < 500);
    assert_int_equal(green_timeout_pop(), 0);

    /* a scope that expired while we were computing fails the next call at once */
    assert_int_equal(green_timeout_push(10), 0);
    sleep_os_ms(20);
    t0 = green_now();
    assert_fails_with(green_sleep(100), ETIMEDOUT);
    assert_true(green_now() - t0 < 90);
    assert_int_equal(green_timeout_pop(), 0);

    /* a park(-1) in a scope is a timeout, not a deadlock */
    assert_int_equal(green_timeout_push(20), 0);
    assert_fails_with(green_park(-1), ETIMEDOUT);
    assert_int_equal(green_timeout_pop(), 0);

    assert_fails_with(green_timeout_pop(), EINVAL);
    assert_hub_idle();
}

static void test_timeout_scope_join(void **state)
{
    (void)state;
    green_t g = green_spawn(sleep_then_ret, (void *)300);
    int64_t t0 = green_now();
    assert_int_equal(green_timeout_push(30), 0);
    assert_fails_with(green_join(g, NULL, -1), ETIMEDOUT);
    assert_true(green_now() - t0 >= 30);
    assert_true(green_now() - t0 < 300);
    assert_int_equal(green_timeout_pop(), 0);
    void *res = NULL;
    assert_int_equal(green_join(g, &res, -1), 0);
    assert_ptr_equal(res, (void *)301);
    assert_hub_idle();
}

/* Scopes nest: the earliest deadline wins; a pop restores the enclosing one. */
static void test_timeout_scope_nested(void **state)
{
    (void)state;
    int64_t t0 = green_now();
    assert_int_equal(green_timeout_push(200), 0);
    assert_int_equal(green_timeout_push(40), 0);
    assert_fails_with(green_sleep(1000), ETIMEDOUT);
    int64_t el = green_now() - t0;
    assert_true(el >= 40);
    assert_true(el < 200);
    assert_int_equal(green_timeout_pop(), 0);
    assert_fails_with(green_sleep(1000), ETIMEDOUT); /* the outer one, from its own push */
    el = green_now() - t0;
    assert_true(el >= 200);
    assert_true(el < 1000);
    assert_int_equal(green_timeout_pop(), 0);

    /* an inner scope cannot extend an outer one */
    t0 = green_now();
    assert_int_equal(green_timeout_push(40), 0);
    assert_int_equal(green_timeout_push(500), 0);
    assert_fails_with(green_sleep(1000), ETIMEDOUT);
    el = green_now() - t0;
    assert_true(el >= 40);
    assert_true(el < 500);
    assert_int_equal(green_timeout_pop(), 0);
    assert_int_equal(green_timeout_pop(), 0);

    /* up to 32 deep */
    for (int i = 0; i < 32; i++)
        assert_int_equal(green_timeout_push(10000 + i), 0);
    assert_int_equal(green_timeout_push(10), -1);
    for (int i = 0; i < 32; i++)
        assert_int_equal(green_timeout_pop(), 0);
    assert_fails_with(green_timeout_pop(), EINVAL);
    t0 = green_now();
    assert_int_equal(green_sleep(20), 0);
    assert_true(green_now() - t0 >= 20);
    assert_hub_idle();
}

/* Scopes belong to a green thread: the root's does not reach a spawned one. */
static void test_timeout_scope_is_per_green_thread(void **state)
{
    (void)state;
    struct sleep_result s = {.ms = 100};
    assert_int_equal(green_timeout_push(20), 0);
    green_t g = green_spawn(timed_sleep, &s);
    assert_fails_with(green_join(g, NULL, -1), ETIMEDOUT);
    assert_int_equal(green_timeout_pop(), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(s.r, 0);
    assert_true(s.elapsed >= 100);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Shields (green_private.h: libgreen-patch.so's pthread waits)            */
/* ======================================================================== */

struct shield_result {
    int r[6], err[6];
    int64_t slept;
};

/* Killed while it sleeps under a kill shield: it sleeps its time, is not cancelled
 * until the pop, and then is. */
static void *shielded_sleeper(void *arg)
{
    struct shield_result *s = arg;
    s->r[0] = green_private_shield_push(GREEN_SHIELD_KILLS);
    int64_t t0 = green_now();
    errno = 0;
    s->r[1] = green_sleep(60);
    s->err[1] = errno;
    s->slept = green_now() - t0;
    s->r[2] = green_cancelled();
    s->r[3] = green_private_shield_pop(GREEN_SHIELD_KILLS);
    s->r[4] = green_cancelled();
    errno = 0;
    s->r[5] = green_sleep(10);
    s->err[5] = errno;
    return NULL;
}

/* Killed before its (nested) kill shields: held until the last pop. */
static void *killed_then_shielded(void *arg)
{
    int *o = arg;
    green_kill(green_current());
    o[0] = green_private_shield_push(GREEN_SHIELD_KILLS);
    o[1] = green_cancelled();
    o[2] = green_private_shield_push(GREEN_SHIELD_KILLS | GREEN_SHIELD_TIMEOUTS);
    o[3] = green_sleep(10);
    o[4] = green_private_shield_pop(GREEN_SHIELD_KILLS | GREEN_SHIELD_TIMEOUTS);
    o[5] = green_cancelled();
    o[6] = green_private_shield_pop(GREEN_SHIELD_KILLS);
    o[7] = green_cancelled();
    errno = 0;
    o[8] = green_yield();
    o[9] = errno;
    return NULL;
}

static void test_shields(void **state)
{
    (void)state;
    struct shield_result s;
    memset(&s, 0x55, sizeof s);
    green_t g = green_spawn(shielded_sleeper, &s);
    assert_int_equal(green_yield(), 0); /* asleep, shielded */
    assert_int_equal(green_kill(g), 0);
    assert_int_equal(stats().waiting, 1); /* the kill did not end its sleep */
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(s.r[0], 0);
    assert_int_equal(s.r[1], 0);
    assert_true(s.slept >= 60);
    assert_int_equal(s.r[2], 0);
    assert_int_equal(s.r[3], 0);
    assert_int_equal(s.r[4], 1);
    assert_int_equal(s.r[5], -1);
    assert_int_equal(s.err[5], ECANCELED);

    int o[10];
    memset(o, 0x55, sizeof o);
    g = green_spawn(killed_then_shielded, o);
    assert_int_equal(green_join(g, NULL, -1), 0);
    int want[10] = {0, 0, 0, 0, 0, 0, 0, 1, -1, ECANCELED};
    for (int i = 0; i < 10; i++)
        assert_int_equal(o[i], want[i]);

    /* a timeout shield hides the enclosing scopes; one pushed inside it applies */
    assert_int_equal(green_timeout_push(20), 0);
    assert_int_equal(green_private_shield_push(GREEN_SHIELD_TIMEOUTS), 0);
    int64_t t0 = green_now();
    assert_int_equal(green_sleep(50), 0);
    assert_true(green_now() - t0 >= 50);
    assert_int_equal(green_timeout_push(10), 0);
    assert_fails_with(green_sleep(1000), ETIMEDOUT);
    assert_int_equal(green_timeout_pop(), 0);
    /* pops match their pushes */
    assert_fails_with(green_timeout_pop(), EINVAL);
    assert_fails_with(green_private_shield_pop(GREEN_SHIELD_KILLS), EINVAL);
    assert_int_equal(green_private_shield_pop(GREEN_SHIELD_TIMEOUTS), 0);
    assert_fails_with(green_sleep(1000), ETIMEDOUT); /* the outer scope again */
    assert_fails_with(green_private_shield_pop(GREEN_SHIELD_TIMEOUTS), EINVAL);
    assert_int_equal(green_timeout_pop(), 0);
    assert_fails_with(green_private_shield_push(0), EINVAL);
    assert_fails_with(green_private_shield_push(8), EINVAL);
    assert_int_equal(green_sleep(1), 0);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Statistics                                                              */
/* ======================================================================== */

static void test_stats_counts(void **state)
{
    (void)state;
    assert_hub_idle();
    uint64_t sw0 = stats().switches;
    struct park_result pr = {0};
    green_t a = green_spawn(park_forever, &pr);
    green_t b = green_spawn(sleep_then_ret, (void *)10000);
    green_t c = green_spawn(ret_arg, NULL);
    green_stats_t st = stats();
    assert_int_equal(st.alive, 3);
    assert_int_equal(st.ready, 3);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.timers, 0);

    assert_int_equal(green_yield(), 0); /* a parks, b sleeps, c finishes */
    st = stats();
    assert_int_equal(st.alive, 3); /* c is dead but not reaped */
    assert_int_equal(st.ready, 0);
    assert_int_equal(st.waiting, 2);
    assert_int_equal(st.timers, 1);
    assert_true(st.switches > sw0);

    assert_int_equal(green_join(c, NULL, -1), 0);
    assert_int_equal(stats().alive, 2);
    assert_int_equal(green_kill(a), 0);
    assert_int_equal(green_kill(b), 0);
    st = stats();
    assert_int_equal(st.ready, 2);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.timers, 0);
    green_t both[2] = {a, b};
    assert_int_equal(green_joinall(both, 2, -1), 0);
    assert_hub_idle();
}

/* ======================================================================== */
/*  OS threads                                                              */
/* ======================================================================== */

#define THREADS_N (100000 / GREEN_TEST_SCALE)

struct os_hub {
    pthread_t self;
    pthread_barrier_t *barrier;
    long done;
    long wrong_thread;
    long errors;
    green_t root;
    green_stats_t mid;
};

struct os_job {
    struct os_hub *hub;
    int i;
};

static void *os_worker(void *arg)
{
    struct os_job *j = arg;
    struct os_hub *h = j->hub;
    if (green_yield() != 0)
        h->errors++;
    if (green_sleep(1 + j->i % 7) != 0)
        h->errors++;
    if (green_yield() != 0)
        h->errors++;
    if (!pthread_equal(pthread_self(), h->self) || green_root() != h->root)
        h->wrong_thread++;
    h->done++;
    return NULL;
}

static void *os_thread_main(void *arg)
{
    struct os_hub *h = arg;
    h->self = pthread_self();
    h->root = green_root();
    struct os_job *jobs = calloc(THREADS_N, sizeof *jobs);
    green_t *gs = calloc(THREADS_N, sizeof *gs);
    green_attr_t shared = {.stack_mode = GREEN_STACK_SHARED};
    for (int i = 0; i < THREADS_N; i++) {
        jobs[i].hub = h;
        jobs[i].i = i;
        gs[i] = green_spawn_attr(os_worker, &jobs[i], i % 2 ? &shared : NULL);
        if (!gs[i])
            h->errors++;
    }
    green_yield(); /* every one has run up to its first yield */
    green_stats(&h->mid);
    pthread_barrier_wait(h->barrier); /* both hubs are full at the same time */
    if (green_joinall(gs, THREADS_N, -1) != 0)
        h->errors++;
    green_stats_t st;
    green_stats(&st);
    if (st.alive || st.ready || st.waiting || st.timers)
        h->errors++;
    free(gs);
    free(jobs);
    return NULL;
}

/* Nothing is global: two OS threads each run their own hub with many green threads
 * sleeping and yielding at the same time. */
static void test_two_os_threads_own_hubs(void **state)
{
    (void)state;
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 2);
    struct os_hub h[2];
    memset(h, 0, sizeof h);
    pthread_t t[2];
    for (int k = 0; k < 2; k++) {
        h[k].barrier = &barrier;
        assert_int_equal(pthread_create(&t[k], NULL, os_thread_main, &h[k]), 0);
    }
    for (int k = 0; k < 2; k++)
        pthread_join(t[k], NULL);
    pthread_barrier_destroy(&barrier);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(h[k].errors, 0);
        assert_int_equal(h[k].wrong_thread, 0);
        assert_int_equal(h[k].done, THREADS_N);
        assert_int_equal(h[k].mid.alive, THREADS_N);
        assert_int_equal(h[k].mid.ready, THREADS_N);
    }
    assert_true(h[0].root != h[1].root);
    /* the main thread's hub saw none of it */
    assert_hub_idle();
}

struct xdev {
    green_t g;
    int join_r, join_e, wake_r, wake_e;
    void *switch_r;
    int switch_e;
};

static void *use_foreign_handle(void *arg)
{
    struct xdev *x = arg;
    errno = 0;
    x->switch_r = green_switch(x->g, NULL);
    x->switch_e = errno;
    errno = 0;
    x->join_r = green_join(x->g, NULL, green_after(10)); /* its hub's thread is blocked */
    x->join_e = errno;
    errno = 0;
    x->wake_r = green_wake(x->g, 0); /* sent: its hub carries it out when it runs */
    x->wake_e = errno;
    return NULL;
}

/* A handle used from another OS thread: switching gives EXDEV; a join waits for the
 * handle's hub to answer, which it cannot while its thread is blocked outside libgreen
 * (ETIMEDOUT, nothing changed); a wake is sent and carried out once that hub runs. */
static void test_foreign_handle(void **state)
{
    (void)state;
    struct park_result pr = {0};
    struct xdev x = {0};
    x.g = green_spawn(park_forever, &pr);
    assert_int_equal(green_yield(), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, use_foreign_handle, &x), 0);
    pthread_join(t, NULL);
    assert_null(x.switch_r);
    assert_int_equal(x.switch_e, EXDEV);
    assert_int_equal(x.join_r, -1);
    assert_int_equal(x.join_e, ETIMEDOUT);
    assert_int_equal(x.wake_r, 0);
    assert_int_equal(x.wake_e, 0);
    /* the wake arrives now, nothing else changed */
    assert_int_equal(green_join(x.g, NULL, -1), 0);
    assert_int_equal(pr.r, 0);
    assert_hub_idle();
}

/* ======================================================================== */
/*  fork()                                                                  */
/* ======================================================================== */

static int parent_only_ran;

static void *parent_only(void *arg)
{
    (void)arg;
    parent_only_ran = 1;
    return NULL;
}

/* Checks run in a child; the exit code names the first that failed. */
static int child_hub_works(void)
{
    green_stats_t st;
    if (green_stats(&st) != 0 || st.alive || st.ready || st.waiting || st.timers)
        return 10; /* a fresh hub: the parent's green threads do not exist here */
    if (green_current() != green_root())
        return 11; /* the caller is the root */
    errno = 0;
    if (green_kill(green_current()) != -1 || errno != EPERM)
        return 12;
    int64_t t0 = green_now();
    if (green_sleep(20) != 0 || green_now() - t0 < 20)
        return 13;
    void *res = NULL;
    green_t g = green_spawn(ret_arg, (void *)3);
    if (!g || green_join(g, &res, -1) != 0 || res != (void *)3)
        return 14;
    green_attr_t a = {.stack_mode = GREEN_STACK_SHARED};
    g = green_spawn_attr(sleep_then_ret, (void *)5, &a);
    if (!g || green_join(g, &res, -1) != 0 || res != (void *)6)
        return 15;
    if (parent_only_ran)
        return 16; /* only the forking green thread continues */
    errno = 0;
    if (green_park(-1) != -1 || errno != EDEADLK)
        return 17; /* nothing else here could wake us */
    if (green_stats(&st) != 0 || st.alive)
        return 18;
    return 0;
}

static int wait_child(pid_t pid)
{
    int status = 0;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static void test_fork_from_root(void **state)
{
    (void)state;
    parent_only_ran = 0;
    green_t x = green_spawn(parent_only, NULL);              /* ready */
    green_t s = green_spawn(sleep_then_ret, (void *)10000); /* will be sleeping */
    assert_int_equal(green_sleep(1), 0);
    parent_only_ran = 0; /* x ran in the parent; would it run again in the child? */
    green_t y = green_spawn(parent_only, NULL);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(child_hub_works());
    assert_int_equal(wait_child(pid), 0);
    /* the parent goes on as before */
    assert_int_equal(green_join(y, NULL, -1), 0);
    assert_int_equal(parent_only_ran, 1);
    assert_int_equal(green_join(x, NULL, -1), 0);
    assert_int_equal(green_kill(s), 0);
    assert_int_equal(green_join(s, NULL, -1), 0);
    assert_hub_idle();
}

static void *fork_here(void *arg)
{
    (void)arg;
    pid_t pid = fork();
    if (pid < 0)
        return (void *)(intptr_t)-1;
    if (pid == 0)
        _exit(child_hub_works()); /* this green thread is the child's root */
    /* the parent's green thread continues normally */
    if (green_sleep(1) != 0)
        return (void *)(intptr_t)-2;
    return (void *)(intptr_t)wait_child(pid);
}

static void test_fork_from_green_thread(void **state)
{
    (void)state;
    green_attr_t shared = {.stack_mode = GREEN_STACK_SHARED};
    for (int mode = 0; mode < 2; mode++) {
        parent_only_ran = 0;
        green_t other = green_spawn(sleep_then_ret, (void *)10000);
        green_t later = green_spawn_later(30, parent_only, NULL);
        fflush(NULL);
        green_t f = green_spawn_attr(fork_here, NULL, mode ? &shared : NULL);
        void *res = (void *)1;
        assert_int_equal(green_join(f, &res, -1), 0);
        assert_int_equal((intptr_t)res, 0);
        assert_int_equal(green_join(later, NULL, -1), 0);
        assert_int_equal(parent_only_ran, 1);
        assert_int_equal(green_kill(other), 0);
        assert_int_equal(green_join(other, NULL, -1), 0);
    }
    assert_hub_idle();
}

/* A fork while another OS thread holds one of libgreen's locks (here the first one its
 * new hub takes): the child, whose fresh hub needs the same lock, must not deadlock.
 * The test slows that thread's first lock down through libgreen's libc table, so the
 * fork lands while it is held. */
static int (*real_mutex_lock)(pthread_mutex_t *);
static __thread int hold_next_lock;
static int lock_held; /* set while the slowed thread holds its lock */

static int slow_mutex_lock(pthread_mutex_t *m)
{
    int r = real_mutex_lock(m);
    if (hold_next_lock) {
        hold_next_lock = 0;
        __atomic_store_n(&lock_held, 1, __ATOMIC_SEQ_CST);
        sleep_os_ms(300);
        __atomic_store_n(&lock_held, 0, __ATOMIC_SEQ_CST);
    }
    return r;
}

static void *new_hub_slowly(void *arg)
{
    hold_next_lock = 1;
    green_t g = green_spawn(ret_arg, arg); /* makes this thread's hub: takes its locks */
    return g && green_join(g, NULL, -1) == 0 ? NULL : (void *)1;
}

static void test_fork_while_a_lock_is_held(void **state)
{
    (void)state;
    parent_only_ran = 0;
    real_mutex_lock = green__sys.pthread_mutex_lock;
    green__sys.pthread_mutex_lock = slow_mutex_lock;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, new_hub_slowly, NULL), 0);
    while (!__atomic_load_n(&lock_held, __ATOMIC_SEQ_CST))
        sleep_os_ms(1);
    fflush(NULL);
    int verdict[2];
    assert_int_equal(pipe(verdict), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int r = child_hub_works();
        if (write(verdict[1], &r, sizeof r) != (ssize_t)sizeof r)
            r = 2;
        _exit(r);
    }
    close(verdict[1]);
    int status = 0, waited = 0;
    while (waitpid(pid, &status, WNOHANG) == 0 && waited < 10000) {
        sleep_os_ms(10);
        waited += 10;
    }
    if (waited >= 10000) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    void *r;
    assert_int_equal(pthread_join(t, &r), 0);
    green__sys.pthread_mutex_lock = real_mutex_lock;
    assert_null(r);
    if (waited >= 10000)
        fail_msg("the child hung: it waited for a lock held by a thread it does not have");
    int said = -1;
    assert_int_equal(read(verdict[0], &said, sizeof said), (ssize_t)sizeof said);
    close(verdict[0]);
    assert_int_equal(said, 0); /* the child's own verdict: its hub works */
    assert_true(WIFEXITED(status));
    /* under valgrind the child's exit also reports what the vanished thread was making
     * (its half-made hub, reachable from no thread the child has) as lost: 99 */
    if (!(under_valgrind() && WEXITSTATUS(status) == 99))
        assert_int_equal(WEXITSTATUS(status), 0);
    assert_hub_idle();
}

/* ======================================================================== */
/*  out of memory                                                           */
/* ======================================================================== */

/* A green thread that parks with 1 KiB of frames (a shared-stack one must then have its
 * frames copied off, into memory of their own) and comes back. */
static __attribute__((noinline)) int deep_nap(int depth)
{
    volatile char pad[1024];
    pad[0] = (char)depth;
    int r = depth ? deep_nap(depth - 1) : green_sleep(1);
    return r + pad[0] - (char)depth;
}

static void *oom_napper(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)deep_nap(1);
}

/* In this (child) process, with the address space capped a little above what it uses:
 * creating green threads until memory runs out fails with ENOMEM, not a crash; those
 * created run, park, wake and finish (or fail cleanly with ENOMEM); once reaped, their
 * memory serves new ones. Exit status: 0 passed, 77 the cap does not hold, else a step. */
static int oom_child(int mode)
{
    green_attr_t attr = {.stack_mode = mode};
    green_t warm = green_spawn_attr(oom_napper, NULL, &attr); /* the hub, its pools */
    if (!warm || green_join(warm, NULL, -1) != 0)
        return 1;
    struct rlimit cap = {.rlim_cur = (rlim_t)(proc_status_kib("VmSize") + 48 * 1024) * 1024};
    cap.rlim_max = cap.rlim_cur;
    if (setrlimit(RLIMIT_AS, &cap) != 0)
        return 77;
    void *probe = mmap(NULL, (size_t)64 << 20, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (probe != MAP_FAILED)
        return 77; /* the cap does not hold here (qemu-user maps the guest its own way) */
    enum { MAX = 4 << 20 };
    green_t *gs = malloc(MAX * sizeof *gs); /* before the cap is used up */
    if (!gs)
        return 2;
    long n = 0;
    errno = 0;
    while (n < MAX && (gs[n] = green_spawn_attr(oom_napper, NULL, &attr)) != NULL)
        n++;
    if (n == MAX || n == 0 || errno != ENOMEM)
        return 3;
    /* every one created runs: it comes back from its nap, or fails it with ENOMEM */
    long ok = 0;
    for (long i = 0; i < n; i++) {
        void *r;
        if (green_join(gs[i], &r, -1) != 0)
            return 4;
        if (r == 0)
            ok++;
        else if (r != (void *)(intptr_t)-1)
            return 5;
    }
    if (getenv("GREEN_TEST_OOM_SHOW"))
        fprintf(stderr, "mode %d: %ld created, %ld napped, %ld failed with ENOMEM\n", mode, n, ok, n - ok);
    if (ok == 0)
        return 6;
    /* the memory they had serves again */
    long again = 0;
    while (again < n / 2 && (gs[again] = green_spawn_attr(oom_napper, NULL, &attr)) != NULL)
        again++;
    if (again < n / 2 || green_joinall(gs, (size_t)again, -1) != 0)
        return 7;
    free(gs);
    return 0;
}

static void test_out_of_memory(void **state)
{
    (void)state;
    if (UNDER_ASAN || UNDER_TSAN || under_valgrind()) /* they abort rather than fail */
        skip();
    for (int mode = 0; mode < 2; mode++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(oom_child(mode ? GREEN_STACK_SHARED : GREEN_STACK_DEDICATED));
        int r = wait_child(pid);
        if (r == 77) {
            printf("  skipped: RLIMIT_AS does not hold here (qemu-user?)\n");
            skip();
        }
        if (r != 0)
            fail_msg("%s stacks: the child failed at step %d (128+n: signal n)",
                     mode ? "shared" : "dedicated", r);
    }
    assert_hub_idle();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_now_and_after),
        cmocka_unit_test(test_poller_name),
        cmocka_unit_test(test_spawn_and_join),
        cmocka_unit_test(test_spawn_attr_argument_order),
        cmocka_unit_test(test_join_errors),
        cmocka_unit_test(test_join_deadline_then_join_again),
        cmocka_unit_test(test_joinall),
        cmocka_unit_test(test_detach),
        cmocka_unit_test(test_spawn_later),
        cmocka_unit_test(test_spawn_later_is_an_ordinary_green_thread),
        cmocka_unit_test(test_shared_stack_mode),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_park_and_wake),
        cmocka_unit_test(test_wake_error_intact),
        cmocka_unit_test(test_sleep_lasts_its_duration),
        cmocka_unit_test(test_kill_sleeping),
        cmocka_unit_test(test_kill_parked_and_joining),
        cmocka_unit_test(test_kill_self),
        cmocka_unit_test(test_kill_unstarted),
        cmocka_unit_test(test_kill_wakes_joiner),
        cmocka_unit_test(test_kill_root_refused),
        cmocka_unit_test(test_kill_while_ready_in_yield),
        cmocka_unit_test(test_kill_while_ready_after_timer),
        cmocka_unit_test(test_deadlock_join_parked_forever),
        cmocka_unit_test(test_deadlock_chain_and_exit),
        cmocka_unit_test(test_no_deadlock_when_a_timer_will_fire),
        cmocka_unit_test(test_fifo_and_yield_order),
        cmocka_unit_test(test_yield_loop_does_not_starve_timers),
        cmocka_unit_test(test_timeout_scope_sleep),
        cmocka_unit_test(test_timeout_scope_join),
        cmocka_unit_test(test_timeout_scope_nested),
        cmocka_unit_test(test_timeout_scope_is_per_green_thread),
        cmocka_unit_test(test_shields),
        cmocka_unit_test(test_stats_counts),
        cmocka_unit_test(test_two_os_threads_own_hubs),
        cmocka_unit_test(test_foreign_handle),
        cmocka_unit_test(test_fork_from_root),
        cmocka_unit_test(test_fork_from_green_thread),
        cmocka_unit_test(test_fork_while_a_lock_is_held),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests_name("hub", tests, NULL, NULL);
}
