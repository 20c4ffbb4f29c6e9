/* test_stack.c — dedicated and shared stacks: depth, survival of locals, a million
 * green threads, pooling, and overflow reports. */
#include "green_test.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static long rss_kib(void) { return proc_status_kib("VmRSS"); }

/* ---- depth ---- */

static char *frame_addr[2];

static __attribute__((noinline)) long recurse(int depth)
{
    volatile char buf[1000];
    if (depth < 2)
        frame_addr[depth] = (char *)buf;
    buf[0] = (char)depth;
    buf[sizeof buf - 1] = (char)depth;
    if (depth == 0)
        return buf[0];
    return recurse(depth - 1) + buf[sizeof buf - 1] - (char)depth + 1;
}

static void *deep(void *arg)
{
    int depth = (int)(intptr_t)arg;
    return (void *)recurse(depth);
}

/* Frames needed to use all but `spare` bytes of `size` (frame size measured, since
 * sanitizers make frames bigger). */
static int depth_for(size_t size, size_t spare)
{
    recurse(1);
    size_t frame = (size_t)(frame_addr[1] - frame_addr[0]);
    return (int)((size - spare) / frame);
}

/* A dedicated stack can be used almost to its size (256 KiB default, or what was set). */
static void test_deep_recursion_dedicated(void **state)
{
    (void)state;
    int d = depth_for(256 * 1024, 16 * 1024);
    assert_true(d > 100);
    green_t g = green_new(deep, (void *)(intptr_t)d, NULL);
    assert_int_equal((intptr_t)green_switch(g, NULL), d);
    green_destroy(g);
    green_attr_t big = {.stack_size = 4 << 20};
    d = depth_for(4 << 20, 16 * 1024);
    g = green_new(deep, (void *)(intptr_t)d, &big);
    assert_int_equal((intptr_t)green_switch(g, NULL), d);
    green_destroy(g);
}

static void test_deep_recursion_shared(void **state)
{
    (void)state;
    green_attr_t a = {.stack_mode = GREEN_STACK_SHARED};
    int d = depth_for(4 << 20, 0); /* half of the 8 MiB shared stack */
    green_t g1 = green_new(deep, (void *)(intptr_t)(d / 2), &a);
    green_t g2 = green_new(deep, (void *)(intptr_t)d, &a);
    assert_int_equal((intptr_t)green_switch(g1, NULL), d / 2);
    assert_int_equal((intptr_t)green_switch(g2, NULL), d);
    green_destroy(g1);
    green_destroy(g2);
}

/* ---- shared stacks: locals survive every switch ---- */

struct interleave {
    int id, rounds;
};

static __attribute__((noinline)) int churn(int id, int level, int rounds)
{
    /* locals at several depths, checked after every switch */
    unsigned char pattern[64 + 16 * (id % 8)];
    for (size_t i = 0; i < sizeof pattern; i++)
        pattern[i] = (unsigned char)(id * 31 + level * 7 + (int)i);
    int bad = 0;
    if (level > 0) {
        bad += churn(id, level - 1, rounds);
    } else {
        for (int r = 0; r < rounds; r++)
            green_switch(green_parent(green_current()), NULL);
    }
    for (size_t i = 0; i < sizeof pattern; i++)
        bad += pattern[i] != (unsigned char)(id * 31 + level * 7 + (int)i);
    return bad;
}

static void *interleaved(void *arg)
{
    struct interleave *p = arg;
    return (void *)(intptr_t)churn(p->id, p->id % 5, p->rounds);
}

static void test_shared_interleaved_locals(void **state)
{
    (void)state;
    enum { N = 300, ROUNDS = 20 };
    green_attr_t a = {.stack_mode = GREEN_STACK_SHARED};
    green_attr_t d = {.stack_mode = GREEN_STACK_DEDICATED};
    static green_t g[N];
    static struct interleave args[N];
    for (int i = 0; i < N; i++) {
        args[i] = (struct interleave){i, ROUNDS};
        /* mostly shared, a few dedicated among them */
        g[i] = green_new(interleaved, &args[i], i % 10 == 0 ? &d : &a);
        assert_non_null(g[i]);
    }
    for (int r = 0; r <= ROUNDS; r++)
        for (int i = 0; i < N; i++) {
            void *res = green_switch(g[i], NULL);
            if (r == ROUNDS) {
                assert_int_equal((intptr_t)res, 0);
                assert_int_equal(green_dead(g[i]), 1);
            }
        }
    green_stats_t st;
    green_stats(&st);
    assert_true(st.shared_copied_bytes > 0);
    for (int i = 0; i < N; i++)
        green_destroy(g[i]);
    green_stats(&st);
    assert_int_equal(st.shared_saved_bytes, 0);
}

/* ---- a million at once ---- */

static void *park_once(void *arg)
{
    green_switch(green_parent(green_current()), arg);
    return NULL;
}

static void million(int mode)
{
    size_t n = 1000000 / GREEN_TEST_SCALE;
    green_t *g = malloc(n * sizeof *g);
    assert_non_null(g);
    green_attr_t a = {.stack_mode = mode};
    for (size_t i = 0; i < n; i++) {
        g[i] = green_new(park_once, (void *)(uintptr_t)i, &a);
        assert_non_null(g[i]);
        /* started and suspended in the middle of its function */
        assert_int_equal((uintptr_t)green_switch(g[i], NULL), i);
    }
    green_stats_t st;
    green_stats(&st);
    assert_true(st.alive >= n);
    /* every one of them still resumes correctly */
    for (size_t i = 0; i < n; i += n / 1000) {
        assert_null(green_switch(g[i], NULL));
        assert_int_equal(green_dead(g[i]), 1);
    }
    for (size_t i = 0; i < n; i++)
        assert_int_equal(green_destroy(g[i]), 0);
    free(g);
}

static void test_million_dedicated(void **state)
{
    (void)state;
    million(GREEN_STACK_DEDICATED);
    green_stats_t st;
    green_stats(&st);
    /* the memory-map budget was respected: beyond it stacks went unguarded */
    assert_true(st.guarded_stacks < 65530 / 2);
    if (GREEN_TEST_SCALE == 1)
        assert_true(st.unguarded_stacks > 0);
}

static void test_million_shared(void **state)
{
    (void)state;
    long before = rss_kib();
    million(GREEN_STACK_SHARED);
    (void)before;
}

/* ---- pooling ---- */

static void *touch_64k(void *arg)
{
    volatile char buf[64 * 1024];
    for (size_t i = 0; i < sizeof buf; i += 4096)
        buf[i] = 1;
    return arg;
}

/* The same, then a yield: the others run (and touch) while this one is alive. */
static void *touch_64k_yield(void *arg)
{
    touch_64k(NULL);
    green_yield();
    return arg;
}

/* Finished stacks are reused; beyond the hot pool their pages go back to the kernel
 * when the hub idles. */
static void test_pool_reuse_and_trim(void **state)
{
    (void)state;
    enum { N = 400 };
    green_t g[N];
    long r0 = rss_kib();
    for (int i = 0; i < N; i++)
        g[i] = green_spawn(touch_64k_yield, NULL);
    assert_int_equal(green_joinall(g, N, -1), 0);
    long r1 = rss_kib();
    /* 400 stacks x 64 KiB were touched; all but the hot 64 are given back */
    assert_true(r1 - r0 > (N - 64) * 60);
    /* once the hub idles (blocks in its poller): a slow run (valgrind) may need more
     * than one sleep before the poller really blocks */
    long r2 = r1;
    for (int i = 0; i < 200 && r1 - r2 <= (N - 64) * 50; i++) {
        green_sleep(5);
        r2 = rss_kib();
    }
    assert_true(r1 - r2 > (N - 64) * 50);
    /* and reusing them works */
    for (int i = 0; i < N; i++)
        g[i] = green_spawn(touch_64k, (void *)(intptr_t)i);
    for (int i = 0; i < N; i++) {
        void *res;
        assert_int_equal(green_join(g[i], &res, -1), 0);
        assert_int_equal((intptr_t)res, i);
    }
}

/* Green threads made before any of them runs take their stacks at their first run: N
 * that each touch 64 KiB and end without blocking, spawned all before the first runs,
 * touch one stack or two between them (each reuses the last one's), not N. */
static void test_stacks_bound_at_first_run(void **state)
{
    (void)state;
    enum { N = 400 };
    green_t g[N];
    green_sleep(20); /* the hub idles: the pool's cold pages are given back first */
    long r0 = rss_exact_kib();
    for (int i = 0; i < N; i++)
        assert_non_null(g[i] = green_spawn(touch_64k, (void *)(intptr_t)i));
    long spawned = rss_exact_kib();
    for (int i = 0; i < N; i++) {
        void *res;
        assert_int_equal(green_join(g[i], &res, -1), 0);
        assert_int_equal((intptr_t)res, i);
    }
    long r1 = rss_exact_kib();
    print_message("  spawned %d: +%ld KiB; all ran: +%ld KiB\n", N, spawned - r0, r1 - r0);
    /* each stack 64 KiB touched, N of them would be 25 MiB: a tenth of that is plenty */
    assert_true(r1 - r0 < N * 64 / 10);
}

static green_event_t big_go;

static __attribute__((noinline)) void *touch_top_28k(void *arg)
{
    volatile char buf[28 * 1024];
    for (size_t i = 0; i < sizeof buf; i += 1024)
        buf[i] = 1;
    green_event_wait(&big_go, -1);
    return arg;
}

/* Stacks of a real thread's size (a green pthread's) keep their top 32 KiB when
 * released, but only 40 MiB of them stay hot, as glibc's cache of exited threads'
 * stacks: 48 green threads with 8 MiB stacks that end together keep 4 stack tops once
 * the hub idles, not 48 (siege's 80 users held 2.9 MiB more than on real threads). */
static void test_big_stacks_cache_like_glibc(void **state)
{
    (void)state;
    enum { N = 48, KIB = 28 };
    green_attr_t big = {.stack_size = 8u << 20};
    green_t g[N];
    green_event_init(&big_go);
    long r0 = rss_exact_kib(), was = -1;
    for (int i = 0; i < 100 && r0 != was; i++) { /* what earlier tests left cold goes first */
        green_sleep(5);
        was = r0;
        r0 = rss_exact_kib();
    }
    for (int i = 0; i < N; i++)
        assert_non_null(g[i] = green_spawn_attr(touch_top_28k, NULL, &big));
    assert_int_equal(green_yield(), 0); /* each touches its stack and waits */
    long r1 = rss_exact_kib();
    assert_true(r1 - r0 > N * (KIB - 4));
    assert_int_equal(green_event_set(&big_go), 0);
    assert_int_equal(green_joinall(g, N, -1), 0);
    long r2 = r1;
    for (int i = 0; i < 200 && r1 - r2 < (N - 8) * (KIB - 4); i++) {
        green_sleep(5); /* the hub idles: what went cold is given back */
        r2 = rss_exact_kib();
    }
    print_message("  touched %ld KiB, %ld KiB still resident\n", r1 - r0, r2 - r0);
    if (r1 - r2 < (N - 8) * (KIB - 4))
        fail_msg("48 stacks of 8 MiB touched %ld KiB; %ld KiB of it still resident", r1 - r0, r2 - r0);
    /* and they are reused */
    for (int i = 0; i < N; i++)
        assert_non_null(g[i] = green_spawn_attr(touch_top_28k, (void *)(intptr_t)i, &big));
    for (int i = 0; i < N; i++) {
        void *res;
        assert_int_equal(green_join(g[i], &res, -1), 0);
        assert_int_equal((intptr_t)res, i);
    }
}

/* ---- overflow: reported with the green thread's id, name and stack size ---- */

static __attribute__((noinline)) long forever(long n)
{
    volatile char buf[512];
    buf[0] = (char)n;
    if (n % 8 == 0)
        green_switch(green_parent(green_current()), NULL); /* switches run the checks */
    if (n > (1L << 40))
        return 0;
    return forever(n + 1) + buf[0];
}

static void *overflow_fn(void *arg)
{
    (void)arg;
    return (void *)forever(1);
}

static void *idle_fn(void *arg)
{
    green_switch(green_parent(green_current()), NULL);
    return arg;
}

static int overflow_child(const char *mode)
{
    green_attr_t a = {.stack_size = 64 * 1024, .name = "deep-diver"};
    if (strcmp(mode, "shared") == 0)
        a.stack_mode = GREEN_STACK_SHARED;
    /* a neighbour below, so an unguarded overflow runs into its canary */
    green_t below = green_new(idle_fn, NULL, &a);
    green_switch(below, NULL);
    green_t g = green_new(overflow_fn, NULL, &a);
    for (;;)
        green_switch(g, NULL);
    return 0;
}

/* Run this program again as `exe what arg`, with env added to its environment (NULL:
 * none); its stderr lands in out. Returns its wait status. */
static int run_self(const char *what, const char *arg, const char *env, char *out, size_t size)
{
    char exe[512];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = 0;
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        if (env)
            putenv((char *)env);
        const char *emu = getenv("GREEN_TEST_EMULATOR"); /* e.g. qemu-user */
        if (emu && *emu) {
            char cmd[1024];
            snprintf(cmd, sizeof cmd, "exec %s '%s' %s %s", emu, exe, what, arg);
            execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        } else {
            execl(exe, exe, what, arg, (char *)NULL);
        }
        _exit(127);
    }
    close(pipefd[1]);
    size_t len = 0;
    ssize_t r;
    while ((r = read(pipefd[0], out + len, size - 1 - len)) > 0)
        len += (size_t)r;
    out[len] = 0;
    close(pipefd[0]);
    int status;
    waitpid(pid, &status, 0);
    return status;
}

static void expect_overflow_report(const char *mode, const char *env, const char *kib)
{
    char out[4096];
    int status = run_self("overflow", mode, env, out, sizeof out);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    char want[128];
    snprintf(want, sizeof want, "' overflowed its %s KiB stack", kib);
    if (!strstr(out, "green thread ") || !strstr(out, "'deep-diver") || !strstr(out, want))
        fail_msg("unexpected report: %s", out);
}

static void test_overflow_guarded(void **state)
{
    (void)state;
    expect_overflow_report("dedicated", NULL, "64");
}

static void test_overflow_unguarded_canary(void **state)
{
    (void)state;
    expect_overflow_report("dedicated", "GREEN_GUARD_BUDGET=0", "64");
}

static void test_overflow_shared(void **state)
{
    (void)state;
    expect_overflow_report("shared", "GREEN_SHARED_STACK_SIZE=131072", "128");
}

/* ---- the guard-page budget comes back ---- */

#define GUARD_BUDGET 100
#define GUARD_STACKS 60

static void *park_in_parent(void *arg)
{
    (void)arg;
    green_switch(green_parent(green_current()), NULL);
    return NULL;
}

/* An OS thread whose hub holds GUARD_STACKS dedicated stacks at once, then ends: every
 * one must have had a guard page. */
static void *guarded_hub_thread(void *arg)
{
    green_t g[GUARD_STACKS];
    green_attr_t a = {.stack_size = 64 * 1024};
    for (int i = 0; i < GUARD_STACKS; i++) {
        g[i] = green_new(park_in_parent, NULL, &a);
        if (!g[i] || green_switch(g[i], NULL) != NULL || errno != 0)
            return "create or start failed";
    }
    green_stats_t st;
    green_stats(&st);
    for (int i = 0; i < GUARD_STACKS; i++)
        green_destroy(g[i]);
    if (st.unguarded_stacks != 0 || st.guarded_stacks != GUARD_STACKS) {
        fprintf(stderr, "round %d: %llu guarded, %llu unguarded\n", *(int *)arg,
                (unsigned long long)st.guarded_stacks, (unsigned long long)st.unguarded_stacks);
        return "a stack went without its guard page";
    }
    return NULL;
}

/* Child: hubs come and go, each with more than half the budget; the budget is given
 * back when a hub's stacks are unmapped, so every round has its guard pages. */
static int guards_child(void)
{
    for (int round = 0; round < 5; round++) {
        pthread_t t;
        void *r;
        if (pthread_create(&t, NULL, guarded_hub_thread, &round) != 0 || pthread_join(t, &r) != 0)
            return 2;
        if (r) {
            fprintf(stderr, "%s\n", (const char *)r);
            return 1;
        }
    }
    return 0;
}

static void test_guard_budget_comes_back(void **state)
{
    (void)state;
    char env[64], out[4096];
    snprintf(env, sizeof env, "GREEN_GUARD_BUDGET=%d", GUARD_BUDGET);
    int status = run_self("guards", "-", env, out, sizeof out);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("guard budget child: status 0x%x: %s", status, out);
}

/* ---- custom sizes on kernels with big pages ---- */

extern size_t green__page_size_min; /* internal: act as on a kernel with such pages */
#define BIG_PAGE ((size_t)64 * 1024)

static void *note_frame(void *arg)
{
    volatile char here;
    *(char *volatile *)arg = (char *)&here;
    green_switch(green_parent(green_current()), NULL);
    return NULL;
}

/* Child: with 64 KiB pages, an odd custom size is rounded to whole pages, so that every
 * slot of a chunk starts on a page (its guard can be made, its pages given back). Slots
 * are carved in order: the same frame of neighbours is one slot apart. */
static int pagesize_child(void)
{
    green__page_size_min = BIG_PAGE;
    green_attr_t a = {.stack_size = 20000};
    char *at[4];
    green_t g[4];
    for (int i = 0; i < 4; i++) {
        g[i] = green_new(note_frame, &at[i], &a);
        if (!g[i] || green_switch(g[i], NULL) != NULL || errno != 0)
            return 2;
    }
    green_stats_t st;
    green_stats(&st);
    for (int i = 1; i < 4; i++) {
        size_t d = (size_t)(at[i] > at[i - 1] ? at[i] - at[i - 1] : at[i - 1] - at[i]);
        if (d % BIG_PAGE != 0) {
            fprintf(stderr, "slots %zu bytes apart: not whole 64 KiB pages\n", d);
            return 1;
        }
    }
    if (st.guarded_stacks != 4) {
        fprintf(stderr, "%llu of 4 stacks guarded\n", (unsigned long long)st.guarded_stacks);
        return 1;
    }
    for (int i = 0; i < 4; i++)
        green_destroy(g[i]);
    return 0;
}

static void test_custom_size_on_big_pages(void **state)
{
    (void)state;
    char out[4096];
    int status = run_self("pagesize", "-", NULL, out, sizeof out);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("big-page child: status 0x%x: %s", status, out);
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "pagesize") == 0)
        return pagesize_child();
    if (argc > 2 && strcmp(argv[1], "overflow") == 0)
        return overflow_child(argv[2]);
    if (argc > 2 && strcmp(argv[1], "guards") == 0)
        return guards_child();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deep_recursion_dedicated),
        cmocka_unit_test(test_deep_recursion_shared),
        cmocka_unit_test(test_shared_interleaved_locals),
        cmocka_unit_test(test_pool_reuse_and_trim),
        cmocka_unit_test(test_stacks_bound_at_first_run),
        cmocka_unit_test(test_big_stacks_cache_like_glibc),
        cmocka_unit_test(test_overflow_guarded),
        cmocka_unit_test(test_overflow_unguarded_canary),
        cmocka_unit_test(test_overflow_shared),
        cmocka_unit_test(test_guard_budget_comes_back),
        cmocka_unit_test(test_custom_size_on_big_pages),
        cmocka_unit_test(test_million_shared),
        cmocka_unit_test(test_million_dedicated),
    };
    return cmocka_run_group_tests_name("stack", tests, NULL, NULL);
}
