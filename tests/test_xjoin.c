/*
 * test_xjoin.c — joins across hubs of green threads that are dead already (hubs.c, "Joins
 * of the dead"): the joiner takes the result itself, without a word to the dead one's hub
 * (which may be busy for as long as it likes); the dead one's hub frees it afterwards;
 * one join wins when a joiner of its own hub, a detach and a joiner of another hub race;
 * the handle is stale afterwards (ESRCH) everywhere.
 */
#include "green_test.h"

#include <pthread.h>

static green_t spawn_on(int hub, green_fn fn, void *arg)
{
    green_attr_t a = {.stack_mode = GREEN_STACK_SHARED, .hub = hub};
    return green_spawn_attr(fn, arg, &a);
}

static int dead_count;

/* Returns its argument plus one, after counting itself. */
static void *plus_one(void *arg)
{
    __atomic_add_fetch(&dead_count, 1, __ATOMIC_SEQ_CST);
    return (void *)((intptr_t)arg + 1);
}

static int hog_go;

/* Holds its hub without a blocking call until hog_go is set: nothing else runs there. */
static void *hog(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&hog_go, __ATOMIC_ACQUIRE))
        ;
    return NULL;
}

static green_stats_t stats_of_hub2;

static void *stats_here(void *arg)
{
    (void)arg;
    green_stats(&stats_of_hub2);
    return NULL;
}

/* Dead green threads of hub 2 are joined from hub 1 while hub 2 cannot run anything: a
 * join that needed hub 2's help would time out. Afterwards hub 2 frees their blocks. */
static void test_join_dead_while_their_hub_is_busy(void **state)
{
    (void)state;
    enum { N = 200 };
    green_t g[N];
    __atomic_store_n(&dead_count, 0, __ATOMIC_SEQ_CST);
    for (int i = 0; i < N; i++)
        assert_non_null(g[i] = spawn_on(2, plus_one, (void *)(intptr_t)i));
    while (__atomic_load_n(&dead_count, __ATOMIC_SEQ_CST) < N)
        green_sleep(1);
    green_sleep(10); /* the last one is buried too (not needed: a taken one still on its
                      * stack is freed once buried) */
    __atomic_store_n(&hog_go, 0, __ATOMIC_SEQ_CST);
    green_t h = spawn_on(2, hog, NULL);
    assert_non_null(h);
    green_sleep(20); /* hub 2 is inside hog now */
    for (int i = 0; i < N; i++) {
        void *r = NULL;
        assert_int_equal(green_join(g[i], &r, green_now() + 2000), 0);
        assert_int_equal((intptr_t)r, i + 1);
    }
    /* joined: stale everywhere */
    void *r;
    assert_int_equal(green_join(g[0], &r, green_now() + 100), -1);
    assert_int_equal(errno, ESRCH);
    assert_int_equal(green_detach(g[1]), -1);
    assert_int_equal(errno, ESRCH);
    __atomic_store_n(&hog_go, 1, __ATOMIC_RELEASE);
    assert_int_equal(green_join(h, NULL, -1), 0);
    /* hub 2 freed them: only what is there now is alive */
    green_t s = spawn_on(2, stats_here, NULL);
    assert_non_null(s);
    assert_int_equal(green_join(s, NULL, -1), 0);
    assert_true(stats_of_hub2.alive <= 1); /* stats_here itself */
    /* and its blocks are reused: a thousand more cost no more memory than before */
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < N; i++)
            assert_non_null(g[i] = spawn_on(2, plus_one, (void *)(intptr_t)i));
        assert_int_equal(green_joinall(g, N, -1), 0);
    }
}

/* Three want the same dead green thread of hub 2: a joiner on hub 2, a detach on hub 2
 * and a joiner on hub 1. Exactly one of the joins succeeds, or the detach wins and
 * both joins fail; nobody crashes or gets a result twice. */
static green_t contested;
static int local_join_ok, local_detach_ok, go_at, started;

/* Busy for ns nanoseconds (no switch): moves who comes first in the races below. */
static void delay_ns(long ns)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do
        clock_gettime(CLOCK_MONOTONIC, &t1);
    while ((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) < ns);
}

static long local_delay, foreign_delay;

static void *local_joiner(void *arg)
{
    (void)arg;
    __atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
    while (!__atomic_load_n(&go_at, __ATOMIC_ACQUIRE))
        green_yield();
    delay_ns(local_delay);
    void *r = NULL;
    if (green_join(contested, &r, 0) == 0) {
        assert_int_equal((intptr_t)r, 8);
        __atomic_store_n(&local_join_ok, 1, __ATOMIC_SEQ_CST);
    } else {
        assert_true(errno == ESRCH || errno == EINVAL);
    }
    return NULL;
}

static void *local_detacher(void *arg)
{
    (void)arg;
    __atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
    while (!__atomic_load_n(&go_at, __ATOMIC_ACQUIRE))
        green_yield();
    delay_ns(local_delay);
    if (green_detach(contested) == 0)
        __atomic_store_n(&local_detach_ok, 1, __ATOMIC_SEQ_CST);
    else
        assert_true(errno == ESRCH || errno == EINVAL);
    return NULL;
}

static void test_races_decide_once(void **state)
{
    (void)state;
    int foreign_wins = 0, local_wins = 0, detach_wins = 0;
    for (int round = 0; round < 300; round++) {
        __atomic_store_n(&dead_count, 0, __ATOMIC_SEQ_CST);
        __atomic_store_n(&go_at, 0, __ATOMIC_SEQ_CST);
        local_join_ok = local_detach_ok = 0;
        __atomic_store_n(&started, 0, __ATOMIC_SEQ_CST);
        contested = spawn_on(2, plus_one, (void *)(intptr_t)7);
        assert_non_null(contested);
        while (__atomic_load_n(&dead_count, __ATOMIC_SEQ_CST) < 1)
            green_yield();
        /* one side or the other waits 0-5 µs after the start */
        local_delay = round % 2 ? (round * 7919L) % 5000 : 0;
        foreign_delay = round % 2 ? 0 : (round * 7919L) % 5000;
        int mode = round % 3; /* 0: all three, 1: two joiners, 2: joiner and detacher */
        green_t a = mode != 2 ? spawn_on(2, local_joiner, NULL) : NULL;
        green_t b = mode != 1 ? spawn_on(2, local_detacher, NULL) : NULL;
        while (__atomic_load_n(&started, __ATOMIC_SEQ_CST) < (mode ? 1 : 2))
            green_yield();
        __atomic_store_n(&go_at, 1, __ATOMIC_RELEASE);
        delay_ns(foreign_delay);
        void *r = NULL;
        int mine = green_join(contested, &r, green_now() + 2000) == 0;
        if (mine)
            assert_int_equal((intptr_t)r, 8);
        else
            assert_true(errno == ESRCH || errno == EINVAL);
        if (a)
            assert_int_equal(green_join(a, NULL, -1), 0);
        if (b)
            assert_int_equal(green_join(b, NULL, -1), 0);
        int wins = mine + __atomic_load_n(&local_join_ok, __ATOMIC_SEQ_CST) +
                   __atomic_load_n(&local_detach_ok, __ATOMIC_SEQ_CST);
        assert_int_equal(wins, 1);
        foreign_wins += mine;
        local_wins += local_join_ok;
        detach_wins += local_detach_ok;
        assert_int_equal(green_join(contested, NULL, 0), -1);
        assert_int_equal(errno, ESRCH);
    }
    print_message("won by: a joiner of another hub %d, of its own %d, a detach %d\n", foreign_wins,
                  local_wins, detach_wins);
}

/* A plain OS thread's own hub (not a member of the group) joins dead green threads of
 * the group, and the group's hub joins dead ones of it. */
static green_t of_plain[64];

static void *plain_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 64; i++) {
        void *r = NULL;
        if (green_join(of_plain[i], &r, green_now() + 5000) != 0 || (intptr_t)r != i + 1)
            return (void *)1;
    }
    return NULL;
}

static void test_join_from_a_plain_thread(void **state)
{
    (void)state;
    for (int i = 0; i < 64; i++)
        assert_non_null(of_plain[i] = spawn_on(i % 2 ? 2 : 3, plus_one, (void *)(intptr_t)i));
    green_sleep(20);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, plain_thread, NULL), 0);
    void *r = (void *)2;
    while (pthread_tryjoin_np(t, &r) != 0)
        green_sleep(1); /* the group's hubs must run meanwhile */
    assert_null(r);
}

/* Many green threads on every hub join each other's dead ones at once (TSan's case). */
static green_t ring[3][100];

static void *ring_joiner(void *arg)
{
    int hub = (int)(intptr_t)arg; /* joins those of the next hub */
    int of = hub % 3;
    for (int i = 0; i < 100; i++) {
        void *r = NULL;
        if (green_join(ring[of][i], &r, green_now() + 5000) != 0 || (intptr_t)r != i + 1)
            return (void *)1;
    }
    return NULL;
}

static void test_joins_both_ways(void **state)
{
    (void)state;
    for (int hub = 1; hub <= 3; hub++)
        for (int i = 0; i < 100; i++)
            assert_non_null(ring[hub - 1][i] = spawn_on(hub, plus_one, (void *)(intptr_t)i));
    green_t j[3];
    for (int hub = 1; hub <= 3; hub++)
        assert_non_null(j[hub - 1] = spawn_on(hub, ring_joiner, (void *)(intptr_t)hub));
    for (int k = 0; k < 3; k++) {
        void *r = (void *)1;
        assert_int_equal(green_join(j[k], &r, -1), 0);
        assert_null(r);
    }
}

static int setup(void **state)
{
    (void)state;
    return green_hubs_start(3) == 3 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_dead_while_their_hub_is_busy),
        cmocka_unit_test(test_races_decide_once),
        cmocka_unit_test(test_join_from_a_plain_thread),
        cmocka_unit_test(test_joins_both_ways),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
