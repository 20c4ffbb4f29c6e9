/* test_timer.c — the hub's timers: deadline order (equal deadlines in creation order)
 * near and far, across the boundaries where a timing wheel cascades, and millions of
 * pending timers. Every sleeping green thread holds one timer; green_stats counts them. */
#include "green_test.h"
#include "../src/sched.h" /* the wheel's shape, and green__clock_skew */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- an ordering harness: sleepers with given deadlines log when they wake ---- */

struct sleeper {
    int64_t deadline;
    int index;      /* creation order */
    int early_park; /* its first park (waiting for its deadline to be set) returned 0 */
    int in_time;    /* it started sleeping before its deadline (else it needed no timer) */
};

struct fired {
    int64_t deadline, at;
    int index, r;
};

static struct fired *fired_log;
static int fired_n;

static void *sleep_until_and_log(void *arg)
{
    struct sleeper *s = arg;
    s->early_park = green_park(-1) == 0; /* until the deadlines are known */
    s->in_time = green_now() < s->deadline;
    int r = green_sleep_until(s->deadline);
    fired_log[fired_n++] = (struct fired){.deadline = s->deadline, .at = green_now(),
                                          .index = s->index, .r = r};
    return NULL;
}

/* fill(d, n, start): the deadlines, all at or after start, in creation order. */
typedef void fill_fn(int64_t *d, int n, int64_t start);

/* Spawn n sleepers, half of them on the shared stack; once they are all waiting, give
 * them their deadlines (from a start far enough ahead that every one of them sets its
 * timer in time), in creation order; wait for all; check they woke in deadline order,
 * equal deadlines in creation order, none early and none absurdly late. */
static void run_in_order(int n, fill_fn *fill)
{
    struct sleeper *s = calloc((size_t)n, sizeof *s);
    green_t *gs = calloc((size_t)n, sizeof *gs);
    int64_t *d = calloc((size_t)n, sizeof *d);
    fired_log = calloc((size_t)n, sizeof *fired_log);
    fired_n = 0;
    green_attr_t shared = {.stack_mode = GREEN_STACK_SHARED};
    int64_t t0 = green_now();
    for (int i = 0; i < n; i++) {
        s[i].index = i;
        gs[i] = green_spawn_attr(i % 2 ? &shared : NULL, sleep_until_and_log, &s[i]);
        assert_non_null(gs[i]);
    }
    assert_int_equal(green_yield(), 0);
    assert_int_equal(stats().waiting, n);
    int64_t start = green_after(50 + 4 * (green_now() - t0));
    fill(d, n, start);
    int64_t last = start;
    for (int i = 0; i < n; i++) {
        assert_true(d[i] >= start);
        if (d[i] > last)
            last = d[i];
        s[i].deadline = d[i];
        assert_int_equal(green_wake(gs[i], 0), 0);
    }
    /* a timer that never fires is a failure, not a hang (and should our own deadline
     * be lost as well, SIGALRM ends the test) */
    alarm(120);
    int r = green_joinall(gs, (size_t)n, last + LATE_MS);
    alarm(0);
    if (r != 0) {
        int missing = n - fired_n;
        for (int i = 0; i < n; i++)
            if (gs[i])
                green_kill(gs[i]);
        green_joinall(gs, (size_t)n, -1);
        fail_msg("%d of %d timers had not fired %d ms after the last deadline", missing, n,
                 LATE_MS);
    }
    assert_int_equal(fired_n, n);
    for (int i = 0; i < n; i++) {
        assert_true(s[i].early_park);
        assert_true(s[i].in_time);
    }
    for (int i = 0; i < n; i++) {
        const struct fired *f = &fired_log[i];
        assert_int_equal(f->r, 0);
        assert_true(f->at >= f->deadline);
        assert_true(f->at - f->deadline < LATE_MS);
        if (i > 0) {
            const struct fired *p = &fired_log[i - 1];
            if (f->deadline < p->deadline || (f->deadline == p->deadline && f->index < p->index))
                print_message("woke #%d: deadline %+lld ms (set %d-th, woke at %+lld) after "
                              "deadline %+lld (set %d-th, woke at %+lld); from start\n",
                              i, (long long)(f->deadline - start), f->index,
                              (long long)(f->at - start), (long long)(p->deadline - start),
                              p->index, (long long)(p->at - start));
            if (f->deadline == p->deadline)
                assert_true(f->index > p->index);
            else
                assert_true(f->deadline > p->deadline);
        }
    }
    free(fired_log);
    fired_log = NULL;
    free(d);
    free(gs);
    free(s);
    assert_hub_idle();
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

static void shuffle(int64_t *a, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rng() % (uint32_t)(i + 1));
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* ======================================================================== */

/* Equal deadlines fire in the order the timers were set. */
static void fill_equal(int64_t *d, int n, int64_t start)
{
    for (int i = 0; i < n; i++)
        d[i] = start + 30;
}

static void test_equal_deadlines_in_creation_order(void **state)
{
    (void)state;
    run_in_order(200, fill_equal);
}

/* Different deadlines fire in deadline order, whatever the order they were set in. */
static void fill_reversed(int64_t *d, int n, int64_t start)
{
    for (int i = 0; i < n; i++)
        d[i] = start + (n - i) % 60; /* later-created ones first, many equal */
}

static void fill_random(int64_t *d, int n, int64_t start)
{
    for (int i = 0; i < n; i++)
        d[i] = start + (int64_t)(rng() % 120);
}

static void test_deadline_order(void **state)
{
    (void)state;
    run_in_order(300, fill_reversed);
    run_in_order(300, fill_random);
}

/* Where the wheel cascades: every level-0 span (one-millisecond slots), and every
 * level-2 span, where entries come down from its third level to its first. */
#define WHEEL_L0 ((int64_t)1 << GREEN_WHEEL_L0_BITS)
#define WHEEL_L2 ((int64_t)1 << (GREEN_WHEEL_L0_BITS + GREEN_WHEEL_LN_BITS))

/* Moves the clock forward (green__clock_skew) so that a multiple of period is lead ms
 * ahead: a test meets a boundary without waiting up to a whole period for one. With no
 * timer pending, a forward jump is what a monotonic clock does after a suspend. */
static void clock_before_boundary(int64_t period, int64_t lead)
{
    assert_int_equal(stats().timers, 0);
    int64_t now = green_now();
    int64_t b = ((now + lead) | (period - 1)) + 1;
    __atomic_add_fetch(&green__clock_skew, b - lead - now, __ATOMIC_RELAXED);
    int64_t left = b - green_now();
    assert_true(left <= lead && left > 0);
}

/* Near and medium deadlines straddling the level-0 boundaries of the clock, where the
 * wheel moves timers down a level. */
static void fill_around_l0(int64_t *d, int n, int64_t start)
{
    int64_t b = ((start + 20) | (WHEEL_L0 - 1)) + 1; /* the next boundary */
    const int64_t around[] = {-2, -1, 0, 1, 2, WHEEL_L0 - 1, WHEEL_L0, WHEEL_L0 + 1,
                              2 * WHEEL_L0 - 1, 2 * WHEEL_L0, 2 * WHEEL_L0 + 1};
    int k = 0;
    for (int rep = 0; rep < 3; rep++)
        for (size_t j = 0; j < sizeof around / sizeof around[0]; j++)
            d[k++] = b + around[j];
    d[k++] = start + 1;
    d[k++] = start + 300;
    while (k < n)
        d[k++] = start + 1 + (int64_t)(rng() % (uint32_t)(b + 2 * WHEEL_L0 + 100 - start));
    shuffle(d, n);
}

static void test_order_across_wheel_levels(void **state)
{
    (void)state;
    clock_before_boundary(WHEEL_L0, 400);
    run_in_order(600, fill_around_l0);
}

/* Deadlines straddling a level-2 boundary of the clock: there the wheel cascades from
 * its third level down to its first. */
static void fill_around_l2(int64_t *d, int n, int64_t start)
{
    int64_t b = ((start + WHEEL_L0 + 400) | (WHEEL_L2 - 1)) + 1;
    const int64_t around[] = {-300, -WHEEL_L0 - 1, -WHEEL_L0, -WHEEL_L0 + 1, -1, 0, 1,
                              WHEEL_L0 - 1, WHEEL_L0, WHEEL_L0 + 1, 300};
    int k = 0;
    for (int rep = 0; rep < 4; rep++)
        for (size_t j = 0; j < sizeof around / sizeof around[0]; j++)
            d[k++] = b + around[j];
    d[k++] = start + 1;
    d[k++] = start + 300;
    while (k < n)
        d[k++] = b - 300 + (int64_t)(rng() % 600);
    shuffle(d, n);
}

static void test_order_across_a_level2_boundary(void **state)
{
    (void)state;
    clock_before_boundary(WHEEL_L2, 3000); /* start + WHEEL_L0 + 400 must stay short of it */
    run_in_order(400, fill_around_l2);
}

struct far_sleeper {
    int64_t deadline;
    int r, err;
    int64_t at;
};

static void *far_sleep(void *arg)
{
    struct far_sleeper *f = arg;
    errno = 0;
    f->r = green_sleep_until(f->deadline);
    f->err = errno;
    f->at = green_now();
    return NULL;
}

/* 1 ms and 300 ms fire, in that order, while timers 16 s ... a day away (set before
 * them) stay pending; killing removes them. */
static void test_far_timers_stay_pending(void **state)
{
    (void)state;
    int64_t now = green_now();
    static const int64_t far_ms[] = {20000, 16384, 16385, 17000, 65536, 3600000, 86400000};
    enum { NFAR = sizeof far_ms / sizeof far_ms[0] };
    struct far_sleeper far[NFAR];
    green_t fg[NFAR];
    for (int i = 0; i < NFAR; i++) {
        far[i] = (struct far_sleeper){.deadline = now + far_ms[i], .r = 7};
        fg[i] = green_spawn(far_sleep, &far[i]);
    }
    /* a huge deadline is fine too (it never comes) */
    struct far_sleeper never = {.deadline = INT64_MAX / 2, .r = 7};
    green_t ng = green_spawn(far_sleep, &never);

    /* 1 ms and 300 ms fire, in order, while 20 s ... a day stay pending */
    struct far_sleeper near1 = {.deadline = now + 1}, near300 = {.deadline = now + 300};
    green_t n300 = green_spawn(far_sleep, &near300);
    green_t n1 = green_spawn(far_sleep, &near1);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(stats().timers, NFAR + 3);
    assert_int_equal(green_join(n300, NULL, -1), 0);
    assert_int_equal(green_join(n1, NULL, -1), 0);
    assert_int_equal(near1.r, 0);
    assert_int_equal(near300.r, 0);
    assert_true(near1.at >= near1.deadline);
    assert_true(near300.at >= near300.deadline);
    assert_true(near300.at - near300.deadline < LATE_MS);
    assert_true(near1.at <= near300.at);

    assert_int_equal(stats().timers, NFAR + 1);
    assert_int_equal(stats().waiting, NFAR + 1);
    for (int i = 0; i < NFAR; i++)
        assert_int_equal(far[i].r, 7); /* not woken */
    assert_int_equal(never.r, 7);

    /* killing removes their timers at once */
    for (int i = 0; i < NFAR; i++)
        assert_int_equal(green_kill(fg[i]), 0);
    assert_int_equal(green_kill(ng), 0);
    assert_int_equal(stats().timers, 0);
    assert_int_equal(green_joinall(fg, NFAR, -1), 0);
    assert_int_equal(green_join(ng, NULL, -1), 0);
    for (int i = 0; i < NFAR; i++) {
        assert_int_equal(far[i].r, -1);
        assert_int_equal(far[i].err, ECANCELED);
        assert_true(far[i].at < far[i].deadline);
    }
    assert_int_equal(never.r, -1);
    assert_int_equal(never.err, ECANCELED);
    assert_hub_idle();
}

/* While a far timer is pending, the hub polls with nothing due (here: a yield with
 * nothing else ready). Timers set right after must still fire in deadline order and
 * on time: the shorter one, set second, first. */
static void *sleep_ms(void *arg);

struct short_sleeper {
    int64_t deadline, at;
    int *order, *n, id;
};

static void *short_sleep(void *arg)
{
    struct short_sleeper *s = arg;
    green_sleep_until(s->deadline);
    s->at = green_now();
    s->order[(*s->n)++] = s->id;
    return NULL;
}

/* The wheel's top level wraps: a deadline almost its whole reach (2^46 ms) away sits in a
 * top-level slot at or before the one the wheel's time is in, and the next deadline
 * worth waking for must still be found (found by tests/fuzz/fuzz_timer.c). Driven on a
 * wheel of its own, as the hub's scheduler does. */
static void fire_none(struct green_hub *h, struct green_timer *t)
{
    (void)h;
    (void)t;
}

static void test_top_level_wraps(void **state)
{
    (void)state;
    static struct green_hub h;
    int64_t starts[] = {5000, ((int64_t)3 << 40) + 12345, ((int64_t)1 << 45) + 7};
    for (size_t k = 0; k < sizeof starts / sizeof starts[0]; k++) {
        memset(&h, 0, sizeof h);
        h.now = starts[k];
        assert_int_equal(green__timer_init(&h), 0);
        struct green_timer t = {.slot = GREEN_TIMER_IDLE};
        int64_t far = starts[k] + ((int64_t)1 << 46) - 1000;
        green__timer_add(&h, &t, far);
        int64_t next = green__timer_next(&h);
        assert_true(next > starts[k] && next <= far);
        green__timer_expire(&h, starts[k] + 5, fire_none); /* nothing due */
        assert_int_equal(green__timer_count(&h), 1);
        green__timer_del(&h, &t);
        assert_int_equal(green__timer_next(&h), -1);
        green__timer_destroy(&h);
    }
}

static void test_short_timers_beside_a_far_one(void **state)
{
    (void)state;
    green_t far = green_spawn(sleep_ms, (void *)(intptr_t)10000);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(stats().timers, 1);
    int misordered = 0, early = 0;
    for (int round = 0; round < 8; round++) {
        sleep_os_ms(2);                     /* (computing for a while) */
        assert_int_equal(green_yield(), 0); /* nothing ready: the hub polls */
        int64_t now = green_now();
        int order[2] = {0, 0}, n = 0;
        struct short_sleeper b = {.deadline = now + 10, .order = order, .n = &n, .id = 10};
        struct short_sleeper a = {.deadline = now + 5, .order = order, .n = &n, .id = 5};
        green_t gb = green_spawn(short_sleep, &b);
        green_t ga = green_spawn(short_sleep, &a);
        assert_int_equal(green_join(gb, NULL, -1), 0);
        assert_int_equal(green_join(ga, NULL, -1), 0);
        print_message("round %d: the 5 ms one woke %s, %lld ms late; the 10 ms one %lld ms late\n",
                      round, order[0] == 5 ? "first" : "second",
                      (long long)(a.at - a.deadline), (long long)(b.at - b.deadline));
        misordered += order[0] != 5;
        early += a.at < a.deadline || b.at < b.deadline;
    }
    assert_int_equal(green_kill(far), 0);
    assert_int_equal(green_join(far, NULL, -1), 0);
    assert_int_equal(misordered, 0);
    assert_int_equal(early, 0);
    assert_hub_idle();
}

/* green_spawn_later: starts in order of (delay, creation). */
static int start_log[16], start_n;

static void *log_start(void *arg)
{
    start_log[start_n++] = (int)(intptr_t)arg;
    return NULL;
}

static void test_spawn_later_order(void **state)
{
    (void)state;
    static const int delays[] = {40, 10, 30, 10, 0, 20, 0, 40};
    static const int expect[] = {4, 6, 1, 3, 5, 2, 0, 7};
    enum { N = sizeof delays / sizeof delays[0] };
    green_t gs[N];
    start_n = 0;
    int64_t t0 = green_now();
    for (int i = 0; i < N; i++)
        gs[i] = green_spawn_later(delays[i], log_start, (void *)(intptr_t)i);
    assert_int_equal(stats().timers, N);
    assert_int_equal(green_joinall(gs, N, -1), 0);
    assert_true(green_now() - t0 >= 40);
    assert_int_equal(start_n, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(start_log[i], expect[i]);
    assert_hub_idle();
}

/* Sleeps last at least their duration, short or long, and not absurdly longer. */
static void test_sleep_durations(void **state)
{
    (void)state;
    static const int ms[] = {1, 2, 10, 255, 256, 300};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        int64_t t0 = green_now();
        assert_int_equal(green_sleep(ms[i]), 0);
        int64_t el = green_now() - t0;
        assert_true(el >= ms[i]);
        assert_true(el < ms[i] + LATE_MS);
    }
    /* a deadline in the past: returns at once */
    int64_t t0 = green_now();
    assert_int_equal(green_sleep_until(t0 - 1000), 0);
    assert_int_equal(green_sleep_until(0), 0);
    assert_true(green_now() - t0 < 100);
    assert_hub_idle();
}

/* green_sleep(0) yields: every other ready green thread runs once. */
static int z_log[8], z_n;

static void *zero_sleeper(void *arg)
{
    z_log[z_n++] = (int)(intptr_t)arg;
    int r = green_sleep(0);
    z_log[z_n++] = 10 + (int)(intptr_t)arg;
    return (void *)(intptr_t)r;
}

static void test_sleep_zero_yields(void **state)
{
    (void)state;
    z_n = 0;
    green_t a = green_spawn(zero_sleeper, (void *)1);
    green_t b = green_spawn(zero_sleeper, (void *)2);
    assert_int_equal(green_sleep(0), 0); /* the root's: both run once */
    assert_int_equal(z_n, 2);
    assert_int_equal(stats().timers, 0);
    void *ra = (void *)1, *rb = (void *)1;
    assert_int_equal(green_join(a, &ra, -1), 0);
    assert_int_equal(green_join(b, &rb, -1), 0);
    assert_null(ra);
    assert_null(rb);
    static const int expect[] = {1, 2, 11, 12};
    assert_int_equal(z_n, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(z_log[i], expect[i]);
    assert_int_equal(green_sleep(0), 0); /* alone: returns at once */
    assert_hub_idle();
}

/* green_stats().timers counts the pending timers: sleepers, starts-later, deadlines. */
static void *sleep_ms(void *arg)
{
    return (void *)(intptr_t)green_sleep((intptr_t)arg);
}

static void *park_forever(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)green_park(-1);
}

static void test_stats_timers_count(void **state)
{
    (void)state;
    enum { N = 64 };
    green_t gs[N];
    for (int i = 0; i < N; i++)
        gs[i] = green_spawn(sleep_ms, (void *)(intptr_t)(10000 + i));
    assert_int_equal(stats().timers, 0); /* not started yet */
    assert_int_equal(green_yield(), 0);
    assert_int_equal(stats().timers, N);
    green_t later = green_spawn_later(10000, sleep_ms, NULL);
    green_t parked = green_spawn(park_forever, NULL); /* no deadline: no timer */
    assert_int_equal(green_yield(), 0);
    assert_int_equal(stats().timers, N + 1);
    assert_int_equal(stats().waiting, N + 2);
    for (int i = 0; i < N; i += 2)
        assert_int_equal(green_kill(gs[i]), 0);
    assert_int_equal(stats().timers, N / 2 + 1);
    assert_int_equal(green_kill(later), 0);
    assert_int_equal(stats().timers, N / 2);
    /* a deadline on a wait is a timer while it waits */
    assert_int_equal(green_timeout_push(10000), 0);
    assert_fails_with(green_join(parked, NULL, green_after(20)), ETIMEDOUT);
    assert_int_equal(green_timeout_pop(), 0);
    assert_int_equal(stats().timers, N / 2);
    for (int i = 1; i < N; i += 2)
        assert_int_equal(green_kill(gs[i]), 0);
    assert_int_equal(green_kill(parked), 0);
    assert_int_equal(stats().timers, 0);
    assert_int_equal(green_joinall(gs, N, -1), 0);
    assert_int_equal(green_join(later, NULL, -1), 0);
    assert_int_equal(green_join(parked, NULL, -1), 0);
    assert_hub_idle();
}

/* ---- scale ---- */

static long rss_kib(void) { return proc_status_kib("VmRSS"); }

struct order_check {
    int64_t last_deadline;
    long last_index;
    long fired, out_of_order, early, started_late, cancelled, other;
};
static struct order_check oc;
static int64_t *scale_deadline;

static void *scale_sleeper(void *arg)
{
    long i = (long)(intptr_t)arg;
    int64_t d = scale_deadline[i];
    if (green_now() >= d)
        oc.started_late++; /* it would not have needed a timer */
    int r = green_sleep_until(d);
    if (r != 0) {
        if (errno == ECANCELED)
            oc.cancelled++;
        else
            oc.other++;
        return NULL;
    }
    if (green_now() < d)
        oc.early++;
    if (d < oc.last_deadline || (d == oc.last_deadline && i < oc.last_index))
        oc.out_of_order++;
    oc.last_deadline = d;
    oc.last_index = i;
    oc.fired++;
    return NULL;
}

/* A million timers (one per shared-stack green thread) fire in deadline order. */
static void test_million_timers_fire_in_order(void **state)
{
    (void)state;
    const long n = 1000000 / GREEN_TEST_SCALE;
    green_t *gs = calloc((size_t)n, sizeof *gs);
    scale_deadline = calloc((size_t)n, sizeof *scale_deadline);
    memset(&oc, 0, sizeof oc);
    green_attr_t shared = {.stack_mode = GREEN_STACK_SHARED};
    int64_t t0 = green_now();
    for (long i = 0; i < n; i++) {
        gs[i] = green_spawn_attr(&shared, scale_sleeper, (void *)(intptr_t)i);
        assert_non_null(gs[i]);
    }
    /* deadlines from when they will all be asleep, spread over a second, 1000 distinct;
     * the margin is generous: on a loaded 2-core machine (ctest -j2, CI) running a
     * million green threads to their first sleep can take several times their spawning */
    int64_t spawn_ms = green_now() - t0;
    int64_t base = green_after(1000 + 8 * spawn_ms);
    for (long i = 0; i < n; i++)
        scale_deadline[i] = base + (i * 7919) % 1000;
    assert_int_equal(green_yield(), 0); /* all asleep */
    assert_int_equal(oc.started_late, 0);
    green_stats_t st = stats();
    assert_int_equal(st.timers, n);
    assert_int_equal(st.waiting, n);
    assert_int_equal(green_joinall(gs, (size_t)n, -1), 0);
    assert_int_equal(oc.fired, n);
    assert_int_equal(oc.out_of_order, 0);
    assert_int_equal(oc.early, 0);
    assert_int_equal(oc.other, 0);
    free(scale_deadline);
    free(gs);
    assert_hub_idle();
}

/* Ten million pending timers: one per shared-stack green thread, each a few hundred
 * bytes. The hub stays responsive; they are killed rather than waited for. */
static void test_ten_million_pending_timers(void **state)
{
    (void)state;
    const long n = 10000000 / GREEN_TEST_SCALE;
    green_t *gs = calloc((size_t)n, sizeof *gs);
    scale_deadline = calloc((size_t)n, sizeof *scale_deadline);
    assert_non_null(gs);
    assert_non_null(scale_deadline);
    memset(&oc, 0, sizeof oc);
    /* 1 ... 21 minutes away: every level of a wheel up to 2^20 ms */
    int64_t base = green_after(60000);
    for (long i = 0; i < n; i++)
        scale_deadline[i] = base + (i * 7919) % 1200000;
    long rss0 = rss_kib();
    green_attr_t shared = {.stack_mode = GREEN_STACK_SHARED};
    for (long i = 0; i < n; i++) {
        gs[i] = green_spawn_attr(&shared, scale_sleeper, (void *)(intptr_t)i);
        if (!gs[i])
            fail_msg("spawn %ld failed: %s", i, strerror(errno));
    }
    assert_int_equal(green_yield(), 0); /* all asleep */
    green_stats_t st = stats();
    assert_int_equal(st.timers, n);
    assert_int_equal(st.waiting, n);
    assert_int_equal(st.alive, n);
    assert_int_equal(oc.started_late, 0);

    /* memory: a suspended shared-stack green thread costs its frames plus its block */
    double saved_each = (double)st.shared_saved_bytes / (double)n;
    double rss_each = (double)(rss_kib() - rss0) * 1024.0 / (double)n;
    print_message("%ld pending timers: %.0f bytes of saved stack, %.0f bytes of RSS each\n",
                  n, saved_each, rss_each);
    assert_true(saved_each < (UNDER_ASAN ? 4096 : 1024));
    if (GREEN_TEST_SCALE == 1)
        assert_true(rss_each < 2048);

    /* still responsive: short timers go through while millions are pending */
    int64_t t0 = green_now();
    assert_int_equal(green_sleep(50), 0);
    int64_t el = green_now() - t0;
    assert_true(el >= 50);
    assert_true(el < 50 + LATE_MS);
    assert_int_equal(oc.fired, 0);

    /* kill them all (newest first): every timer goes at once */
    for (long i = n; i-- > 0;)
        assert_int_equal(green_kill(gs[i]), 0);
    st = stats();
    assert_int_equal(st.timers, 0);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.ready, n);
    assert_int_equal(green_joinall(gs, (size_t)n, -1), 0);
    assert_int_equal(oc.cancelled, n);
    assert_int_equal(oc.fired, 0);
    assert_int_equal(oc.other, 0);
    free(scale_deadline);
    free(gs);
    assert_hub_idle();
    assert_int_equal(stats().shared_saved_bytes, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equal_deadlines_in_creation_order),
        cmocka_unit_test(test_deadline_order),
        cmocka_unit_test(test_order_across_wheel_levels),
        cmocka_unit_test(test_far_timers_stay_pending),
        cmocka_unit_test(test_order_across_a_level2_boundary),
        cmocka_unit_test(test_short_timers_beside_a_far_one),
        cmocka_unit_test(test_top_level_wraps),
        cmocka_unit_test(test_spawn_later_order),
        cmocka_unit_test(test_sleep_durations),
        cmocka_unit_test(test_sleep_zero_yields),
        cmocka_unit_test(test_stats_timers_count),
        cmocka_unit_test(test_million_timers_fire_in_order),
        cmocka_unit_test(test_ten_million_pending_timers),
    };
    return cmocka_run_group_tests_name("timer", tests, NULL, NULL);
}
