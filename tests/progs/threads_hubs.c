/*
 * threads_hubs.c — a plain pthread program for GREEN_PATCH_HUBS (test_patch_threads.c):
 * threads that share a mutex-protected counter and record the OS thread they ran on,
 * joined; then detached ones, and pthread_exit in main (which waits for them).
 * Prints "os_threads=N counter=C" and "detached=D". Given "cross", first the pthread calls
 * on a thread of another OS thread (GREEN_PATCH_HUBS: another hub): cancel, kill,
 * getattr, names, affinity, and ESRCH once it is joined; prints "cross=ok" or what failed.
 * Given "barrier", only threads meeting at a barrier across hubs: prints "barrier=ok
 * rounds=R serial=R" (one serial thread per round).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define N 16
#define ROUNDS 2000

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static long counter;
static long tids[N];
static int detached_done;

static void *run(void *arg)
{
    int i = (int)(intptr_t)arg;
    tids[i] = syscall(SYS_gettid);
    for (int k = 0; k < ROUNDS; k++) {
        pthread_mutex_lock(&m);
        counter++;
        pthread_mutex_unlock(&m);
        if (k % 100 == 0)
            sched_yield();
    }
    return arg;
}

static void *detached(void *arg)
{
    (void)arg;
    usleep(10000);
    __atomic_add_fetch(&detached_done, 1, __ATOMIC_RELAXED);
    if (__atomic_load_n(&detached_done, __ATOMIC_RELAXED) == 4) {
        char line[32];
        int n = snprintf(line, sizeof line, "detached=%d\n", 4);
        if (write(1, line, (size_t)n) < 0)
            return NULL;
    }
    return NULL;
}

/* ---- "cross" ---- */

static int pipefd[2];
static long main_tid;
static int cleaned, handled;

static void cleanup(void *arg)
{
    (void)arg;
    __atomic_store_n(&cleaned, 1, __ATOMIC_SEQ_CST);
}

static void on_usr1(int sig)
{
    (void)sig;
    __atomic_store_n(&handled, 1, __ATOMIC_SEQ_CST);
}

/* Blocks in read() (a cancellation point, interrupted by a handler without SA_RESTART)
 * on another OS thread than main's: returns read's errno, or 0 when it ran on main's. */
static void *reader(void *arg)
{
    (void)arg;
    if (syscall(SYS_gettid) == main_tid)
        return (void *)(intptr_t)-1;
    char c;
    ssize_t r;
    pthread_cleanup_push(cleanup, NULL);
    r = read(pipefd[0], &c, 1);
    pthread_cleanup_pop(0);
    return (void *)(intptr_t)(r < 0 ? errno : 0);
}

/* A reader on another OS thread (they are placed round-robin: one of two is). */
static pthread_t reader_away(void)
{
    for (int i = 0; i < 4; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, reader, NULL) != 0)
            return 0;
        usleep(20000); /* it runs and blocks, or ends at once on main's */
        if (pthread_tryjoin_np(t, NULL) != 0)
            return t; /* blocked: away */
    }
    return 0;
}

#define FAIL(what)                                                                       \
    do {                                                                                 \
        printf("cross failed: %s\n", what);                                              \
        return 1;                                                                        \
    } while (0)

static int cross(void)
{
    main_tid = syscall(SYS_gettid);
    if (pipe(pipefd) != 0)
        FAIL("pipe");
    struct sigaction sa = {.sa_handler = on_usr1}; /* no SA_RESTART: read fails EINTR */
    sigaction(SIGUSR1, &sa, NULL);

    /* cancel: the read is a cancellation point; cleanup handlers run */
    pthread_t t = reader_away();
    if (!t)
        FAIL("no thread on another OS thread");
    if (pthread_cancel(t) != 0)
        FAIL("cancel");
    void *r;
    if (pthread_join(t, &r) != 0 || r != PTHREAD_CANCELED || !cleaned)
        FAIL("cancelled thread's end");
    if (pthread_cancel(t) != ESRCH || pthread_kill(t, 0) != ESRCH)
        FAIL("stale handle");

    /* kill: the handler runs, and the thread's read is the call it interrupts */
    if (!(t = reader_away()))
        FAIL("no thread on another OS thread");
    if (pthread_kill(t, 0) != 0 || pthread_kill(t, -1) != EINVAL)
        FAIL("kill 0 / bad signal");
    /* the others, on a live thread of another hub */
    pthread_attr_t a;
    void *lo;
    size_t size;
    int ds;
    if (pthread_getattr_np(t, &a) != 0 || pthread_attr_getstack(&a, &lo, &size) != 0 || !lo ||
        size < 65536 || pthread_attr_getdetachstate(&a, &ds) != 0 || ds != PTHREAD_CREATE_JOINABLE)
        FAIL("getattr");
    pthread_attr_destroy(&a);
    char name[16] = "x";
    if (pthread_setname_np(t, "away") != 0 || pthread_getname_np(t, name, sizeof name) != 0)
        FAIL("names");
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    if (pthread_getaffinity_np(t, sizeof cpus, &cpus) != 0 || CPU_COUNT(&cpus) == 0 ||
        pthread_setaffinity_np(t, sizeof cpus, &cpus) != 0)
        FAIL("affinity");
    int policy;
    struct sched_param sp;
    clockid_t clk;
    if (pthread_getschedparam(t, &policy, &sp) != 0 || pthread_getcpuclockid(t, &clk) != 0)
        FAIL("sched/clock");
    if (pthread_kill(t, SIGUSR1) != 0)
        FAIL("kill");
    for (int i = 0; i < 5000 && !__atomic_load_n(&handled, __ATOMIC_SEQ_CST); i++)
        usleep(1000);
    if (!handled)
        FAIL("the handler never ran");
    if (pthread_join(t, &r) != 0 || (intptr_t)r != EINTR)
        FAIL("the killed thread's read did not fail with EINTR");
    if (pthread_kill(t, SIGUSR1) != ESRCH || pthread_getattr_np(t, &a) != ESRCH ||
        pthread_getname_np(t, name, sizeof name) != ESRCH)
        FAIL("stale handle after kill");
    printf("cross=ok\n");
    fflush(stdout);
    return 0;
}

/* ---- "barrier": a barrier across hubs ---- */

#define BAR_THREADS 4
#define BAR_ROUNDS 50
static pthread_barrier_t bar;
static int serials;

/* The threads meet BAR_ROUNDS times; the first to arrive are on one hub, the last on
 * another (round-robin placement: 0 and 2 on one, 1 and 3 on the other; the odd ones
 * come late), so the round's end must wake waiters of another hub. */
static void *meet(void *arg)
{
    int i = (int)(intptr_t)arg;
    for (int r = 0; r < BAR_ROUNDS; r++) {
        if (i % 2)
            usleep(200);
        int e = pthread_barrier_wait(&bar);
        if (e == PTHREAD_BARRIER_SERIAL_THREAD)
            __atomic_add_fetch(&serials, 1, __ATOMIC_RELAXED);
        else if (e != 0)
            return (void *)(intptr_t)-1;
    }
    return NULL;
}

static int barrier(void)
{
    alarm(60); /* a hang fails the test, not ctest's timeout */
    if (pthread_barrier_init(&bar, NULL, BAR_THREADS) != 0)
        return 1;
    pthread_t t[BAR_THREADS];
    for (int i = 0; i < BAR_THREADS; i++)
        if (pthread_create(&t[i], NULL, meet, (void *)(intptr_t)i) != 0)
            return 1;
    int bad = 0;
    for (int i = 0; i < BAR_THREADS; i++) {
        void *r;
        bad |= pthread_join(t[i], &r) != 0 || r != NULL;
    }
    printf("barrier=%s rounds=%d serial=%d\n", bad ? "failed" : "ok", BAR_ROUNDS, serials);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "cross") == 0 && cross() != 0)
        return 4;
    if (argc > 1 && strcmp(argv[1], "barrier") == 0)
        return barrier() ? 5 : 0;
    pthread_t t[N];
    for (int i = 0; i < N; i++)
        if (pthread_create(&t[i], NULL, run, (void *)(intptr_t)i) != 0)
            return 1;
    for (int i = 0; i < N; i++) {
        void *r;
        if (pthread_join(t[i], &r) != 0 || (intptr_t)r != i)
            return 2;
    }
    int distinct = 0;
    for (int i = 0; i < N; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++)
            seen |= tids[j] == tids[i];
        distinct += !seen;
    }
    printf("os_threads=%d counter=%ld\n", distinct, counter);
    fflush(stdout);
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    for (int i = 0; i < 4; i++) {
        pthread_t d;
        if (pthread_create(&d, &a, detached, NULL) != 0)
            return 3;
    }
    pthread_exit(NULL); /* waits for the detached ones, then the process ends (0) */
}
