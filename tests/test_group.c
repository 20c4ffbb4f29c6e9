/* test_group.c — groups and pools (after gevent's test__pool.py and test__group.py):
 * members reaped whether joined or not, pools that never exceed their limit and hand
 * slots over in order, join, kill (also of members that never started), deadlines. */
#include "green_test.h"

#include <stdlib.h>
#include <string.h>

/* Under TSan every green thread is a fiber, about 1 ms to create: fewer of them. */
#define FIBER_COST (UNDER_TSAN ? 10 : 1)

/* What members report. */
struct census {
    long started, finished;
    long live, max_live;
    long cancelled;
};

static struct census cs;

static void enter(void)
{
    cs.started++;
    if (++cs.live > cs.max_live)
        cs.max_live = cs.live;
}

static void leave(void)
{
    cs.live--;
    cs.finished++;
}

/* Yields `arg` times while counted as live. */
static void *worker(void *arg)
{
    enter();
    for (intptr_t i = 0; i < (intptr_t)arg; i++)
        green_yield();
    leave();
    return (void *)0xdead; /* nobody reads it: members are reaped unjoined */
}

static void *sleeper(void *arg)
{
    enter();
    if (green_sleep((intptr_t)arg) != 0 && errno == ECANCELED)
        cs.cancelled++;
    leave();
    return NULL;
}

static void *parker(void *arg)
{
    (void)arg;
    enter();
    if (green_park(-1) != 0 && errno == ECANCELED)
        cs.cancelled++;
    leave();
    return NULL;
}

/* ======================================================================== */

static void test_bad_arguments(void **state)
{
    (void)state;
    green_group_t g;
    assert_fails_with(green_group_init(NULL, 0), EINVAL);
    assert_int_equal(green_group_init(&g, 0), 0);
    assert_null_with(green_group_spawn(&g, NULL, NULL, -1), EINVAL);
    assert_null_with(green_group_spawn(NULL, worker, NULL, -1), EINVAL);
    assert_fails_with(green_group_join(NULL, -1), EINVAL);
    assert_fails_with(green_group_kill(NULL), EINVAL);
    assert_fails_with(green_group_destroy(NULL), EINVAL);
    assert_int_equal(green_group_size(&g), 0);
    assert_int_equal(green_group_join(&g, 0), 0); /* empty: nothing to wait for */
    assert_int_equal(green_group_destroy(&g), 0);
    assert_hub_idle();
}

/* Spawn, join; members run soon (not at the spawn), and are reaped by the group. */
static void test_spawn_and_join(void **state)
{
    (void)state;
    memset(&cs, 0, sizeof cs);
    green_group_t g;
    assert_int_equal(green_group_init(&g, 0), 0);
    green_t m[10];
    for (int i = 0; i < 10; i++) {
        m[i] = green_group_spawn(&g, sleeper, (void *)(intptr_t)(10 * i), -1);
        assert_non_null(m[i]);
    }
    assert_int_equal(cs.started, 0);
    assert_int_equal(green_group_size(&g), 10);
    assert_fails_with(green_group_destroy(&g), EBUSY);
    assert_int_equal(green_group_join(&g, -1), 0);
    assert_int_equal(cs.finished, 10);
    assert_int_equal(green_group_size(&g), 0);
    /* the handles went stale when the members finished */
    for (int i = 0; i < 10; i++) {
        assert_fails_with(green_join(m[i], NULL, 0), ESRCH);
    }
    assert_int_equal(green_group_destroy(&g), 0);
    assert_hub_idle();
}

/* Members that finish without anyone joining leave nothing behind. */
static void test_unjoined_members_are_reaped(void **state)
{
    (void)state;
    memset(&cs, 0, sizeof cs);
    uint64_t alive0 = stats().alive;
    green_group_t g;
    assert_int_equal(green_group_init(&g, 0), 0);
    for (int i = 0; i < 1000; i++)
        assert_non_null(green_group_spawn(&g, worker, (void *)(intptr_t)(i % 3), -1));
    assert_int_equal(stats().alive, alive0 + 1000);
    while (cs.finished < 1000)
        assert_int_equal(green_yield(), 0);
    assert_int_equal(stats().alive, alive0);
    assert_int_equal(green_group_size(&g), 0);
    assert_int_equal(green_group_destroy(&g), 0);
    assert_hub_idle();
}

/* A pool: 100,000 spawns, never more than `limit` members alive at once, all run. */
static void run_pool(size_t limit, long n, intptr_t yields)
{
    memset(&cs, 0, sizeof cs);
    uint64_t alive0 = stats().alive;
    green_group_t g;
    assert_int_equal(green_group_init(&g, limit), 0);
    for (long i = 0; i < n; i++) {
        assert_non_null(green_group_spawn(&g, worker, (void *)yields, -1));
        assert_true(green_group_size(&g) <= limit);
        assert_true(stats().alive - alive0 <= limit);
    }
    assert_int_equal(green_group_join(&g, -1), 0);
    assert_int_equal(cs.started, n);
    assert_int_equal(cs.finished, n);
    assert_true(cs.max_live <= (long)limit);
    assert_int_equal(cs.max_live, n < (long)limit ? n : (long)limit); /* used to the full */
    assert_int_equal(stats().alive, alive0);
    assert_int_equal(green_group_destroy(&g), 0);
}

static void test_pool_limit(void **state)
{
    (void)state;
    long n = 100000 / GREEN_TEST_SCALE / FIBER_COST;
    run_pool(1, n, 1);
    run_pool(10, n, 3);
    run_pool(1000, n, 2);
    assert_hub_idle();
}

/* A spawner blocked on a full pool gives up at its deadline; 0 only polls. */
static void test_spawner_deadline(void **state)
{
    (void)state;
    memset(&cs, 0, sizeof cs);
    green_group_t g;
    assert_int_equal(green_group_init(&g, 2), 0);
    assert_non_null(green_group_spawn(&g, parker, NULL, -1));
    assert_non_null(green_group_spawn(&g, parker, NULL, -1));
    assert_null_with(green_group_spawn(&g, worker, NULL, 0), ETIMEDOUT);
    int64_t t0 = green_now();
    assert_null_with(green_group_spawn(&g, worker, NULL, green_after(50)), ETIMEDOUT);
    int64_t el = green_now() - t0;
    assert_true(el >= 50);
    assert_true(el < 50 + LATE_MS);
    assert_int_equal(green_group_size(&g), 2);
    assert_int_equal(cs.started, 2);
    /* join with a deadline too */
    t0 = green_now();
    assert_fails_with(green_group_join(&g, green_after(30)), ETIMEDOUT);
    assert_true(green_now() - t0 >= 30);
    assert_int_equal(green_group_kill(&g), 0);
    assert_int_equal(green_group_join(&g, -1), 0);
    assert_int_equal(cs.cancelled, 2);
    assert_int_equal(green_group_destroy(&g), 0);
    assert_hub_idle();
}

/* Spawners waiting for room get it in the order they came. */
static green_group_t order_pool;
static int order[8], norder;

static void *record_order(void *arg)
{
    order[norder++] = (int)(intptr_t)arg;
    return NULL;
}

static void *spawn_in_order(void *arg)
{
    return green_group_spawn(&order_pool, record_order, arg, -1) ? NULL : (void *)1;
}

static void test_spawners_fifo(void **state)
{
    (void)state;
    memset(&cs, 0, sizeof cs);
    norder = 0;
    assert_int_equal(green_group_init(&order_pool, 1), 0);
    green_t blocker = green_group_spawn(&order_pool, parker, NULL, -1);
    green_t s[5];
    for (int i = 0; i < 5; i++) {
        s[i] = green_spawn(spawn_in_order, (void *)(intptr_t)i);
        assert_int_equal(green_yield(), 0); /* it queues for a slot */
    }
    /* a late spawner cannot overtake them (the root's deadline 0: full, queued ones first) */
    assert_null_with(green_group_spawn(&order_pool, record_order, (void *)99, 0), ETIMEDOUT);
    assert_int_equal(green_kill(blocker), 0);
    assert_int_equal(green_joinall(s, 5, -1), 0);
    assert_int_equal(green_group_join(&order_pool, -1), 0);
    assert_int_equal(norder, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(order[i], i);
    assert_int_equal(green_group_destroy(&order_pool), 0);
    assert_hub_idle();
}

/* Kill: every member, started or not; join then returns. */
static void test_kill(void **state)
{
    (void)state;
    memset(&cs, 0, sizeof cs);
    uint64_t alive0 = stats().alive;
    green_group_t g;
    assert_int_equal(green_group_init(&g, 0), 0);
    for (int i = 0; i < 50; i++)
        assert_non_null(green_group_spawn(&g, i % 2 ? parker : sleeper, (void *)100000, -1));
    assert_int_equal(green_yield(), 0); /* they all start and wait */
    for (int i = 0; i < 50; i++)
        assert_non_null(green_group_spawn(&g, worker, NULL, -1)); /* these never start */
    assert_int_equal(green_group_size(&g), 100);
    int64_t t0 = green_now();
    assert_int_equal(green_group_kill(&g), 0);
    assert_int_equal(green_group_join(&g, -1), 0);
    assert_true(green_now() - t0 < LATE_MS);
    assert_int_equal(cs.started, 50);
    assert_int_equal(cs.cancelled, 50);
    assert_int_equal(green_group_size(&g), 0);
    assert_int_equal(stats().alive, alive0);
    assert_int_equal(green_group_destroy(&g), 0);
    assert_hub_idle();
}

/* A member killed through its own handle before it started is noticed by the group,
 * also by a joiner already waiting. */
static green_group_t watch_group;

static void *join_watch_group(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)green_group_join(&watch_group, green_after(5000));
}

static void test_member_killed_before_start(void **state)
{
    (void)state;
    memset(&cs, 0, sizeof cs);
    assert_int_equal(green_group_init(&watch_group, 0), 0);
    green_t m = green_group_spawn(&watch_group, worker, NULL, -1);
    assert_int_equal(green_kill(m), 0);
    assert_int_equal(green_group_size(&watch_group), 0);

    /* a joiner parked on a started member; then a new member is killed unstarted */
    green_t a = green_group_spawn(&watch_group, parker, NULL, -1);
    assert_int_equal(green_yield(), 0);
    green_t j = green_spawn(join_watch_group, NULL);
    assert_int_equal(green_yield(), 0); /* the joiner parks */
    m = green_group_spawn(&watch_group, worker, NULL, -1);
    assert_int_equal(green_kill(m), 0);
    assert_int_equal(green_kill(a), 0);
    int64_t t0 = green_now();
    void *r;
    assert_int_equal(green_join(j, &r, -1), 0);
    assert_ptr_equal(r, (void *)0);
    assert_true(green_now() - t0 < LATE_MS);
    assert_int_equal(cs.started, 1);
    assert_int_equal(green_group_destroy(&watch_group), 0);

    /* the same with a pool: the slot of the dead one goes to a waiting spawner */
    assert_int_equal(green_group_init(&watch_group, 1), 0);
    m = green_group_spawn(&watch_group, worker, NULL, -1);
    assert_int_equal(green_kill(m), 0);
    assert_non_null(green_group_spawn(&watch_group, worker, NULL, 0));
    assert_int_equal(green_group_join(&watch_group, -1), 0);
    assert_int_equal(green_group_destroy(&watch_group), 0);
    assert_hub_idle();
}

/* A member cannot join its own group: it would wait for itself. */
static green_group_t self_group;
static int self_join_errno;

static void *join_own_group(void *arg)
{
    (void)arg;
    errno = 0;
    if (green_group_join(&self_group, -1) == -1)
        self_join_errno = errno;
    return NULL;
}

static void test_join_from_member(void **state)
{
    (void)state;
    self_join_errno = 0;
    assert_int_equal(green_group_init(&self_group, 0), 0);
    assert_non_null(green_group_spawn(&self_group, join_own_group, NULL, -1));
    assert_int_equal(green_group_join(&self_group, -1), 0);
    assert_int_equal(self_join_errno, EDEADLK);
    assert_int_equal(green_group_destroy(&self_group), 0);
    assert_hub_idle();
}

/* The root joining a group whose members can never finish: EDEADLK, like gevent's
 * LoopExit, not a hang. */
static void test_join_deadlock(void **state)
{
    (void)state;
    memset(&cs, 0, sizeof cs);
    green_group_t g;
    assert_int_equal(green_group_init(&g, 0), 0);
    assert_non_null(green_group_spawn(&g, parker, NULL, -1));
    assert_fails_with(green_group_join(&g, -1), EDEADLK);
    assert_int_equal(green_group_kill(&g), 0);
    assert_int_equal(green_group_join(&g, -1), 0);
    assert_int_equal(green_group_destroy(&g), 0);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Members on other hubs (these start a group of two hubs: they come last) */

/* What members on other hubs report (they run on other OS threads: atomics). */
static struct {
    long started, finished, live, max_live, cancelled, on_hub2;
} xs;

static void xenter(void)
{
    __atomic_add_fetch(&xs.started, 1, __ATOMIC_SEQ_CST);
    if (green_hub_self() == 2)
        __atomic_add_fetch(&xs.on_hub2, 1, __ATOMIC_SEQ_CST);
    long l = __atomic_add_fetch(&xs.live, 1, __ATOMIC_SEQ_CST);
    long m = __atomic_load_n(&xs.max_live, __ATOMIC_SEQ_CST);
    while (l > m && !__atomic_compare_exchange_n(&xs.max_live, &m, l, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        ;
}

static void xleave(void)
{
    __atomic_sub_fetch(&xs.live, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&xs.finished, 1, __ATOMIC_SEQ_CST);
}

/* Sleeps `arg` ms (0: parks for ever) while counted as live. */
static void *xsleeper(void *arg)
{
    xenter();
    int r = (intptr_t)arg ? green_sleep((intptr_t)arg) : green_park(-1);
    if (r != 0 && errno == ECANCELED)
        __atomic_add_fetch(&xs.cancelled, 1, __ATOMIC_SEQ_CST);
    xleave();
    return NULL;
}

static void two_hubs(void)
{
    assert_true(green_hubs_start(2) >= 2);
    memset(&xs, 0, sizeof xs);
}

/* Members placed on hub 2: size counts them, join (of the root) waits for them all. */
static void test_members_on_another_hub(void **state)
{
    (void)state;
    two_hubs();
    green_group_t g;
    assert_int_equal(green_group_init(&g, 0), 0);
    green_attr_t attr = {.hub = 2};
    green_t t[20];
    for (int i = 0; i < 20; i++)
        assert_non_null(t[i] = green_group_spawn_attr(&g, xsleeper, (void *)(intptr_t)(1 + i % 5), &attr, -1));
    assert_int_equal(green_group_size(&g), 20);
    assert_int_equal(green_group_destroy(&g), -1);
    assert_int_equal(errno, EBUSY);
    assert_int_equal(green_group_join(&g, -1), 0);
    assert_int_equal(green_group_size(&g), 0);
    assert_int_equal(__atomic_load_n(&xs.finished, __ATOMIC_SEQ_CST), 20);
    assert_int_equal(__atomic_load_n(&xs.on_hub2, __ATOMIC_SEQ_CST), 20);
    assert_int_equal(green_group_destroy(&g), 0);
    /* bad input */
    attr.hub = 99;
    assert_null_with(green_group_spawn_attr(&g, xsleeper, NULL, &attr, -1), EINVAL);
    assert_null_with(green_group_spawn_attr(NULL, xsleeper, NULL, &attr, -1), EINVAL);
    assert_int_equal(green_group_size(&g), 0); /* the failed spawn gave its slot back */
    /* GREEN_HUB_ANY and the caller's own hub in one group */
    assert_int_equal(green_group_init(&g, 0), 0);
    attr.hub = GREEN_HUB_ANY;
    for (int i = 0; i < 10; i++)
        assert_non_null(green_group_spawn_attr(&g, xsleeper, (void *)(intptr_t)2, i % 2 ? &attr : NULL, -1));
    assert_int_equal(green_group_join(&g, -1), 0);
    assert_int_equal(__atomic_load_n(&xs.finished, __ATOMIC_SEQ_CST), 30);
    assert_int_equal(green_group_destroy(&g), 0);
    assert_hub_idle();
}

/* A pool whose members run on hub 2: a slot is free again when a member dies there. */
static void test_pool_on_another_hub(void **state)
{
    (void)state;
    two_hubs();
    green_group_t g;
    assert_int_equal(green_group_init(&g, 2), 0);
    green_attr_t attr = {.hub = 2};
    int64_t t0 = green_now();
    for (int i = 0; i < 8; i++)
        assert_non_null(green_group_spawn_attr(&g, xsleeper, (void *)(intptr_t)5, &attr, green_after(5000)));
    assert_true(green_group_size(&g) <= 2);
    assert_int_equal(green_group_join(&g, -1), 0);
    assert_true(green_now() - t0 >= 4 * 5 - 1); /* four rounds of two */
    assert_int_equal(__atomic_load_n(&xs.finished, __ATOMIC_SEQ_CST), 8);
    assert_true(__atomic_load_n(&xs.max_live, __ATOMIC_SEQ_CST) <= 2);
    /* a full pool with a deadline: its spawner times out */
    assert_non_null(green_group_spawn_attr(&g, xsleeper, NULL, &attr, -1));
    assert_non_null(green_group_spawn_attr(&g, xsleeper, NULL, &attr, -1));
    assert_null_with(green_group_spawn_attr(&g, xsleeper, NULL, &attr, green_after(20)), ETIMEDOUT);
    assert_int_equal(green_group_kill(&g), 0);
    assert_non_null(green_group_spawn_attr(&g, xsleeper, (void *)(intptr_t)1, &attr, green_after(5000)));
    assert_int_equal(green_group_join(&g, -1), 0);
    assert_int_equal(green_group_destroy(&g), 0);
    assert_hub_idle();
}

/* Kill reaches members on other hubs, started or not; a root's join of members that
 * park for ever on another hub is no deadlock: it waits (here, until its deadline). */
static void test_kill_on_another_hub(void **state)
{
    (void)state;
    two_hubs();
    green_group_t g;
    assert_int_equal(green_group_init(&g, 0), 0);
    green_attr_t attr = {.hub = 2};
    for (int i = 0; i < 10; i++)
        assert_non_null(green_group_spawn_attr(&g, xsleeper, NULL, &attr, -1));
    while (__atomic_load_n(&xs.started, __ATOMIC_SEQ_CST) < 10)
        assert_int_equal(green_sleep(1), 0);
    assert_fails_with(green_group_join(&g, green_after(30)), ETIMEDOUT);
    assert_int_equal(green_group_size(&g), 10);
    for (int i = 0; i < 10; i++) /* these may or may not have started when killed */
        assert_non_null(green_group_spawn_attr(&g, xsleeper, NULL, &attr, -1));
    int64_t t0 = green_now();
    assert_int_equal(green_group_kill(&g), 0);
    assert_int_equal(green_group_join(&g, -1), 0);
    assert_true(green_now() - t0 < LATE_MS);
    assert_int_equal(green_group_size(&g), 0);
    long started = __atomic_load_n(&xs.started, __ATOMIC_SEQ_CST);
    assert_true(started >= 10);
    assert_int_equal(__atomic_load_n(&xs.cancelled, __ATOMIC_SEQ_CST), started);
    assert_int_equal(green_group_destroy(&g), 0);
    assert_hub_idle();
}

/* A member on another hub killed through its own handle: its end reaches the group. */
static void test_member_killed_by_handle(void **state)
{
    (void)state;
    two_hubs();
    green_group_t g;
    assert_int_equal(green_group_init(&g, 0), 0);
    green_attr_t attr = {.hub = 2};
    green_t a = green_group_spawn_attr(&g, xsleeper, NULL, &attr, -1);
    assert_non_null(a);
    while (__atomic_load_n(&xs.started, __ATOMIC_SEQ_CST) < 1)
        assert_int_equal(green_sleep(1), 0);
    assert_int_equal(green_kill(a), 0);
    assert_int_equal(green_group_join(&g, -1), 0);
    assert_int_equal(green_group_size(&g), 0);
    assert_int_equal(green_group_destroy(&g), 0);
    assert_hub_idle();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_spawn_and_join),
        cmocka_unit_test(test_unjoined_members_are_reaped),
        cmocka_unit_test(test_pool_limit),
        cmocka_unit_test(test_spawner_deadline),
        cmocka_unit_test(test_spawners_fifo),
        cmocka_unit_test(test_kill),
        cmocka_unit_test(test_member_killed_before_start),
        cmocka_unit_test(test_join_from_member),
        cmocka_unit_test(test_join_deadlock),
        cmocka_unit_test(test_members_on_another_hub),
        cmocka_unit_test(test_pool_on_another_hub),
        cmocka_unit_test(test_kill_on_another_hub),
        cmocka_unit_test(test_member_killed_by_handle),
    };
    return cmocka_run_group_tests_name("group", tests, NULL, NULL);
}
