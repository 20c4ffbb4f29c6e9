/*
 * test_patch_threads.c — GREEN_PATCH_THREADS=1: unmodified pthread programs run on green
 * threads. The programs under test (tests/progs/threads_*.c) are plain pthreads code,
 * built without libgreen's headers; each test runs one as a child, the way
 * `greenrun --threads` does (LD_PRELOAD=libgreen-patch.so, GREEN_PATCH_THREADS=1), and
 * checks its exit status and what it printed — for most, that it printed exactly what
 * the same program prints on real threads. Also here: native mutexes held across a park
 * without GREEN_PATCH_THREADS (tests/progs/native_lock.c, on libgreen's own API).
 */
#include "green_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PATCH_LIB
#error "PATCH_LIB: the path of libgreen-patch.so"
#endif

enum { GREEN = 1, WITH_STDERR = 2 };

/* Run prog with args; flags GREEN: with GREEN_PATCH_THREADS=1; WITH_STDERR: out gets
 * stderr too, in one stream with stdout. The patch library is preloaded either way (off,
 * it passes everything through). as_limit > 0 caps the child's address space. Returns
 * the exit status (-1 on a signal); out gets what it printed. */
static int run(const char *prog, const char *arg1, const char *arg2, int flags, rlim_t as_limit,
               char *out, size_t outsz)
{
    int green = flags & GREEN;
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 1);
        if (flags & WITH_STDERR)
            dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        /* an ASan build of the library must not insist on coming first */
        setenv("ASAN_OPTIONS", "verify_asan_link_order=0:detect_leaks=0", 1);
        setenv("LD_PRELOAD", PATCH_LIB, 1);
        if (green)
            setenv("GREEN_PATCH_THREADS", "1", 1);
        else
            unsetenv("GREEN_PATCH_THREADS");
        if (as_limit) {
            struct rlimit rl = {as_limit, as_limit};
            setrlimit(RLIMIT_AS, &rl);
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", PROGS_DIR, prog);
        execl(path, prog, arg1, arg2, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < outsz && (r = read(p[0], out + n, outsz - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(p[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    printf("%s", out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char out[1 << 16];

/* Every pthreads check of threads_sync on green threads: mutex contention, a
 * producer-consumer over conditions, recursive and errorcheck mutexes (EDEADLK, EPERM),
 * keys with destructors, once with an init that parks, exit values, join errors
 * (EDEADLK, ESRCH, EINVAL), cancellation with cleanup handlers, one OS thread. */
static void test_sync_green(void **state)
{
    (void)state;
    assert_int_equal(run("threads_sync", "all", NULL, GREEN, 0, out, sizeof out), 0);
    assert_non_null(strstr(out, "ok identity"));
    assert_non_null(strstr(out, "__thread shared: yes"));
}

/* The switch off: the same program, the same library preloaded, real threads (each its
 * own kernel thread id), and glibc's answers to every check. */
static void test_sync_real(void **state)
{
    (void)state;
    assert_int_equal(run("threads_sync", "all", NULL, 0, 0, out, sizeof out), 0);
    assert_non_null(strstr(out, "green pthread_t tagged: no"));
    assert_non_null(strstr(out, "__thread shared: no"));
}

/* GREEN_PATCH_STACK_SIZE sets the stack of a green pthread made without a size (by
 * default a real thread's, which threads_sync's "all" run checks); an attr's size wins. */
static void test_stack_size_env(void **state)
{
    (void)state;
    setenv("GREEN_PATCH_STACK_SIZE", "2097152", 1);
    int st = run("threads_sync", "stacks", NULL, GREEN, 0, out, sizeof out);
    unsetenv("GREEN_PATCH_STACK_SIZE");
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "ok stacks"));
}

/* GREEN_PATCH_HUBS=2 spreads the green pthreads over two hubs (two OS threads), round-robin
 * at creation: joins across hubs, a mutex shared across hubs, pthread_exit in main waiting
 * for detached ones on both. Without it, one OS thread runs them all. */
static void test_patch_hubs_spread(void **state)
{
    (void)state;
    setenv("GREEN_PATCH_HUBS", "2", 1);
    int st = run("threads_hubs", NULL, NULL, GREEN, 0, out, sizeof out);
    unsetenv("GREEN_PATCH_HUBS");
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "os_threads=2 counter=32000"));
    assert_non_null(strstr(out, "detached=4"));
    assert_int_equal(run("threads_hubs", NULL, NULL, GREEN, 0, out, sizeof out), 0);
    assert_non_null(strstr(out, "os_threads=1 counter=32000"));
}

/* The pthread calls that take another thread's pthread_t work on a green pthread of
 * another hub: pthread_cancel (the read it blocks in is a cancellation point; its
 * cleanup handler runs), pthread_kill (the handler runs, on that hub's OS thread, and
 * interrupts that thread's read: EINTR), pthread_getattr_np, the names, affinity,
 * scheduling and CPU clock; a joined one's handle gives ESRCH. */
static void test_patch_hubs_cross(void **state)
{
    (void)state;
    setenv("GREEN_PATCH_HUBS", "2", 1);
    int st = run("threads_hubs", "cross", NULL, GREEN, 0, out, sizeof out);
    unsetenv("GREEN_PATCH_HUBS");
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "cross=ok"));
    assert_non_null(strstr(out, "os_threads=2 counter=32000"));
}

/* A barrier across hubs: the first arrivals of each round wait on one hub, the last
 * arrive on the other and must wake them (before the fix the first waiters could park
 * with nothing to look again, and pgbench under GREEN_PATCH_HUBS=2 hung at its start). */
static void test_patch_hubs_barrier(void **state)
{
    (void)state;
    setenv("GREEN_PATCH_HUBS", "2", 1);
    int st = run("threads_hubs", "barrier", NULL, GREEN, 0, out, sizeof out);
    unsetenv("GREEN_PATCH_HUBS");
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "barrier=ok rounds=50 serial=50"));
}

static long wall_ms(void)
{
    const char *w = strstr(out, "wall_ms=");
    assert_non_null(w);
    return atol(w + 8);
}

/* The talk's Prog 1 as a plain pthread program on green threads: 100,000 threads (fewer
 * under sanitizers) each sleep 200 ms (`how`: "nanosleep", or a timed condition wait,
 * "cond") and count under a shared mutex. All must count, concurrently. */
static void count_threads(const char *how)
{
    char n[32];
    snprintf(n, sizeof n, "%d", 100000 / GREEN_TEST_SCALE);
    assert_int_equal(run("threads_count", n, how, GREEN, 0, out, sizeof out), 0);
    char want[64];
    snprintf(want, sizeof want, "count=%s ", n);
    assert_non_null(strstr(out, want));
    long ms = wall_ms();
    assert_true(ms >= 200);
    if (GREEN_TEST_SCALE == 1)
        assert_true(ms < 30000); /* ~0.8 s here (2.5 s on ucontext); one by one: 5.5 hours */
}

static void test_count_cond(void **state)
{
    (void)state;
    count_threads("cond");
}

/* The test: nanosleep, patched by the I/O half of the library. */
static void test_count_nanosleep(void **state)
{
    (void)state;
    count_threads("nanosleep");
}

/* Plain pthreads cannot start 100,000 threads here: every thread is a kernel task, and
 * pid_max (32,768 on this machine) caps them all. Rather than exhaust the machine's pids,
 * the child runs under a 1 GiB address-space cap, which real threads (8 MiB stacks) hit
 * within a few hundred: pthread_create fails with EAGAIN. */
static void test_plain_threads_fail(void **state)
{
    (void)state;
    FILE *f = fopen("/proc/sys/kernel/pid_max", "r");
    long pid_max = 0;
    if (f) {
        if (fscanf(f, "%ld", &pid_max) != 1)
            pid_max = 0;
        fclose(f);
    }
    printf("kernel.pid_max = %ld: at most that many threads in all, with real threads\n", pid_max);
    if (UNDER_ASAN)
        skip(); /* ASan's shadow memory does not fit an address-space cap */
    assert_int_equal(run("threads_count", "100000", "nanosleep", 0, (rlim_t)1 << 30, out, sizeof out), 2);
    assert_non_null(strstr(out, "pthread_create failed after"));
    assert_non_null(strstr(out, strerror(EAGAIN)));
}

static char real_out[1 << 16];

/* prog prints on green threads exactly what it prints on real threads, and succeeds.
 * real_under_asan 0: AddressSanitizer cannot run it on real threads (its own CHECK
 * fails in glibc's cancellation unwinding), so under ASan only the green run is made. */
static void same_as_real(const char *prog, int real_under_asan)
{
    if (UNDER_ASAN && !real_under_asan) {
        assert_int_equal(run(prog, "all", NULL, GREEN, 0, out, sizeof out), 0);
        return;
    }
    assert_int_equal(run(prog, "all", NULL, 0, 0, real_out, sizeof real_out), 0);
    int st = run(prog, "all", NULL, GREEN, 0, out, sizeof out);
    if (strcmp(out, real_out) != 0)
        printf("--- on real threads:\n%s--- on green threads:\n%s", real_out, out);
    assert_string_equal(out, real_out);
    assert_int_equal(st, 0);
}

/* Cancellation (tests/progs/threads_cancel.c): a worker blocked in each cancellation
 * point — read, readv, recv, recvfrom, recvmsg, write, send, accept, poll, ppoll, select,
 * pselect, the four sleeps, sem_wait, sem_timedwait, pthread_join, pthread_cond_wait and
 * timedwait, pthread_testcancel — is cancelled: its cleanup handler runs, the call never
 * returns, the join gives PTHREAD_CANCELED. Disabled cancellation lets it run on and acts
 * on entry of the next point once enabled (nothing written, nothing read); key
 * destructors run; a mutex lock is no cancellation point; cancel state and type. */
static void test_cancel(void **state)
{
    (void)state;
    same_as_real("threads_cancel", 0);
    assert_non_null(strstr(out, "read: PTHREAD_CANCELED, returned 0, cleaned up 1"));
    assert_non_null(strstr(out, "pthread_testcancel: PTHREAD_CANCELED, returned 0, cleaned up 1"));
    for (const char *t = "points\0disabled\0entry\0keys\0not_a_point\0state\0"; *t; t += strlen(t) + 1) {
        char ok[64];
        snprintf(ok, sizeof ok, "ok %s\n", t);
        assert_non_null(strstr(out, ok));
    }
}

/* rwlocks, barriers, semaphores, spin locks (tests/progs/threads_prims.c): every call's
 * return and errno, timed forms, exclusion, glibc's reader preference and its
 * writer-nonrecursive kind, one serial thread per barrier round, semaphore tokens taken
 * once each, a post from a signal handler, spin locks whose holder yields, and a mutex
 * and a semaphore shared with plain threads (a SIGEV_THREAD timer's). */
static void test_prims(void **state)
{
    (void)state;
    same_as_real("threads_prims", 1);
    assert_non_null(strstr(out, "ok plain"));
}

/* Every allocation fails (the program's own malloc) while green pthreads lock, trylock,
 * timedlock and unlock a mutex, contended, a recursive one, and wait on a condition:
 * no call fails, the count is exact (pthread_mutex_lock once gave EAGAIN). */
static void test_no_memory(void **state)
{
    (void)state;
    if (UNDER_ASAN)
        skip(); /* the sanitizer's allocator is not the program's malloc */
    assert_int_equal(run("threads_nomem", NULL, NULL, GREEN | WITH_STDERR, 0, out, sizeof out), 0);
    assert_non_null(strstr(out, "nomem: ok"));
    assert_null(strstr(out, "nomem: 0 allocations refused")); /* the failures were met */
    assert_int_equal(run("threads_nomem", NULL, NULL, 0, 0, out, sizeof out), 0);
}

static long calloc_kib(const char *text)
{
    const char *p = strstr(text, "calloc_kib=");
    assert_non_null(p);
    return strtol(p + strlen("calloc_kib="), NULL, 10);
}

/* 40 green pthreads calloc two 80 KiB buffers each and write a byte of each: the patch
 * library's calloc clears only the pages that may hold data, so the buffers' untouched
 * pages stay unresident, as they do on real threads; with glibc's calloc
 * (GREEN_PATCH_CALLOC=glibc) most of each block carved from the shared heap's top is
 * cleared (6.4 MiB of buffers: several MiB resident). And calloc's zeros, whatever the
 * memory held before. */
static void test_calloc_sparse(void **state)
{
    (void)state;
    if (UNDER_ASAN)
        skip(); /* the sanitizer's allocator is not the program's malloc */
    assert_int_equal(run("threads_calloc", NULL, NULL, GREEN, 0, out, sizeof out), 0);
    long sparse = calloc_kib(out);
    assert_int_equal(run("threads_calloc", NULL, NULL, 0, 0, out, sizeof out), 0);
    long real = calloc_kib(out);
    setenv("GREEN_PATCH_CALLOC", "glibc", 1);
    int st = run("threads_calloc", NULL, NULL, GREEN, 0, out, sizeof out);
    unsetenv("GREEN_PATCH_CALLOC");
    assert_int_equal(st, 0);
    long glibc = calloc_kib(out);
    print_message("resident after the callocs: %ld KiB green, %ld KiB real threads, "
                  "%ld KiB green with glibc's calloc\n", sparse, real, glibc);
    assert_true(sparse < 40 * 2 * 80 / 4);      /* under a quarter of the buffers */
    assert_true(sparse < real + 512);           /* about what real threads touch */
    assert_true(glibc > 2 * sparse);            /* the switch leaves it to glibc */
    assert_int_equal(run("threads_calloc", "zeros", NULL, GREEN, 0, out, sizeof out), 0);
    assert_non_null(strstr(out, "zeros: ok"));
    assert_int_equal(run("threads_calloc", "zeros", NULL, 0, 0, out, sizeof out), 0);
    assert_non_null(strstr(out, "zeros: ok"));
    assert_int_equal(run("threads_calloc", "zeros-nobody", NULL, GREEN, 0, out, sizeof out), 0);
    assert_non_null(strstr(out, "zeros: ok"));
    /* where the machine has swap, the pages not resident are asked of pagemap (and all
     * cleared when it cannot be read) */
    setenv("GREEN_PATCH_CALLOC", "swap", 1);
    int sw = run("threads_calloc", "zeros", NULL, GREEN, 0, out, sizeof out);
    int sw_nobody = sw == 0 && strstr(out, "zeros: ok") ? run("threads_calloc", "zeros-nobody", NULL, GREEN, 0, out, sizeof out) : -1;
    int sw_kib = sw_nobody == 0 && strstr(out, "zeros: ok") ? run("threads_calloc", NULL, NULL, GREEN, 0, out, sizeof out) : -1;
    unsetenv("GREEN_PATCH_CALLOC");
    assert_int_equal(sw, 0);
    assert_int_equal(sw_nobody, 0);
    assert_int_equal(sw_kib, 0);
    assert_true(calloc_kib(out) < 40 * 2 * 80 / 4); /* pagemap's way saves the same */
}

/* Without GREEN_PATCH_THREADS, a green thread that parks in read() holding a native
 * mutex is reported when it parks — before the other green thread runs — with its id,
 * name and the mutex, once for its call site over two rounds. */
static void test_native_lock_report(void **state)
{
    (void)state;
    assert_int_equal(run("native_lock", "report", NULL, WITH_STDERR, 0, out, sizeof out), 0);
    char mutex[64];
    assert_int_equal(sscanf(out, "mutex at %63s", mutex), 1);
    const char *report = strstr(out, "parks in a patched call");
    assert_non_null(report);
    assert_null(strstr(report + 1, "parks in a patched call")); /* once per call site */
    assert_non_null(strstr(out, "libgreen-patch: green thread "));
    assert_non_null(strstr(out, "'holder' parks"));
    assert_non_null(strstr(report, mutex));
    assert_non_null(strstr(report, "GREEN_PATCH_THREADS=1"));
    const char *other = strstr(out, "other runs");
    assert_non_null(other);
    assert_true(report < other);
    assert_non_null(strstr(out, "done"));
}

/* The deadlock itself: the other green thread locks the mutex and blocks the OS thread
 * for good (SIGALRM ends the program); the report was out before. */
static void test_native_lock_deadlock(void **state)
{
    (void)state;
    assert_int_equal(run("native_lock", "deadlock", NULL, WITH_STDERR, 0, out, sizeof out), -1);
    const char *report = strstr(out, "parks in a patched call");
    const char *other = strstr(out, "other runs");
    assert_non_null(report);
    assert_non_null(other);
    assert_true(report < other);
    assert_null(strstr(out, "done"));
}

/* prog with arg (flags: GREEN or 0) ends well, and the patch library says nothing */
static void quiet(const char *prog, const char *arg, int flags)
{
    assert_int_equal(run(prog, arg, NULL, flags | WITH_STDERR, 0, out, sizeof out), 0);
    assert_null(strstr(out, "libgreen-patch:"));
    assert_non_null(strstr(out, "done"));
}

/* A mutex unlocked before the park, or thread patching on: nothing to report. */
static void test_native_lock_quiet(void **state)
{
    (void)state;
    quiet("native_lock", "unlocked", 0);
    quiet("native_lock", "report", GREEN);
}

/* A green pthread that waits on a wake-up object kept in a __thread variable (a futex
 * word through syscall(), a condition) — one that the green pthreads of its OS thread
 * share — is reported at its first wait, once over two rounds: the variable's address
 * (main's, the same), its module, and why; the program goes on and ends well. */
static void tlswait_reported(const char *mode, const char *what)
{
    assert_int_equal(run("threads_tlswait", mode, NULL, GREEN | WITH_STDERR, 0, out, sizeof out), 0);
    char line[128], addr[64];
    snprintf(line, sizeof line, "%s at %%63s", what);
    assert_int_equal(sscanf(out, line, addr), 1);
    const char *report = strstr(out, "libgreen-patch: green pthread ");
    assert_non_null(report);
    assert_null(strstr(report + 1, "libgreen-patch: green pthread ")); /* once */
    char on[96];
    snprintf(on, sizeof on, "on %s, a thread-local variable of ", addr);
    assert_non_null(strstr(report, on));
    assert_non_null(strstr(report, "threads_tlswait (offset "));
    assert_non_null(strstr(report, "share its thread-local variables"));
    assert_non_null(strstr(out, "done"));
}

static void test_tlswait_futex(void **state)
{
    (void)state;
    tlswait_reported("futex", "word");
}

static void test_tlswait_cond(void **state)
{
    (void)state;
    tlswait_reported("cond", "cond");
}

/* On real threads each waiter has its own variable; a global word is nobody's own:
 * nothing to say either way. */
static void test_tlswait_quiet(void **state)
{
    (void)state;
    quiet("threads_tlswait", "futex", 0);
    quiet("threads_tlswait", "global", GREEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync_green),
        cmocka_unit_test(test_sync_real),
        cmocka_unit_test(test_stack_size_env),
        cmocka_unit_test(test_count_cond),
        cmocka_unit_test(test_count_nanosleep),
        cmocka_unit_test(test_plain_threads_fail),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_prims),
        cmocka_unit_test(test_no_memory),
        cmocka_unit_test(test_native_lock_report),
        cmocka_unit_test(test_calloc_sparse),
        cmocka_unit_test(test_native_lock_deadlock),
        cmocka_unit_test(test_native_lock_quiet),
        cmocka_unit_test(test_tlswait_futex),
        cmocka_unit_test(test_tlswait_cond),
        cmocka_unit_test(test_tlswait_quiet),
        cmocka_unit_test(test_patch_hubs_spread),
        cmocka_unit_test(test_patch_hubs_cross),
        cmocka_unit_test(test_patch_hubs_barrier),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
