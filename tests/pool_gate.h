/*
 * pool_gate.h — what the tests of the thread pool and of its users (resolver, files)
 * share: the pool's size, a gate that keeps every pool thread busy (so that the next
 * jobs queue and a caller's deadline or kill finds its job not yet started), and a
 * forked child to run a check in. Include after green_test.h.
 */
#ifndef GREEN_POOL_GATE_H
#define GREEN_POOL_GATE_H

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* GREEN_THREADPOOL as the library reads it (default 10). */
static inline int pool_size(void)
{
    const char *e = getenv("GREEN_THREADPOOL");
    char *end;
    long n = e ? strtol(e, &end, 10) : 0;
    if (!e || end == e || *end || n < 1)
        return 10;
    return n > 1024 ? 1024 : (int)n;
}

struct gate {
    int open;        /* atomic: the held jobs may end */
    int entered;     /* atomic: held jobs running */
    int n;
    green_t *holders;
};

static void *gate_job(void *arg)
{
    struct gate *g = arg;
    __atomic_add_fetch(&g->entered, 1, __ATOMIC_SEQ_CST);
    while (!__atomic_load_n(&g->open, __ATOMIC_SEQ_CST))
        sleep_os_ms(1);
    return NULL;
}

static void *gate_holder(void *arg)
{
    return (void *)(intptr_t)green_run_blocking(gate_job, arg, NULL, -1);
}

/* Occupy every pool thread until gate_open. */
static inline void gate_close(struct gate *g)
{
    *g = (struct gate){.n = pool_size()};
    g->holders = calloc((size_t)g->n, sizeof *g->holders);
    assert_non_null(g->holders);
    for (int i = 0; i < g->n; i++)
        assert_non_null(g->holders[i] = green_spawn(gate_holder, g));
    while (__atomic_load_n(&g->entered, __ATOMIC_SEQ_CST) < g->n)
        assert_int_equal(green_sleep(1), 0);
}

static inline void gate_open(struct gate *g)
{
    __atomic_store_n(&g->open, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < g->n; i++) {
        void *r = (void *)1;
        assert_int_equal(green_join(g->holders[i], &r, -1), 0);
        assert_null(r);
    }
    free(g->holders);
}

/* Whether a forked child of this multi-threaded process may start threads: not under
 * ThreadSanitizer (unsupported) nor qemu-user (it aborts). */
static inline int threads_after_fork(void)
{
    return !UNDER_TSAN && !getenv("GREEN_TEST_EMULATOR");
}

/* Run check() in a forked child: its result (0 = good). The child reports through a
 * pipe and then kills itself: its exit is not under test, and exit-time leak checkers
 * (valgrind, LSan) would count what the parent's pool threads, absent in the child,
 * held in their thread-locals (glibc's resolver state) as lost. */
static inline int in_child(int (*check)(void))
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char r = (char)check();
        if (write(p[1], &r, 1) != 1)
            _exit(1);
        raise(SIGKILL);
    }
    close(p[1]);
    char r = 1;
    assert_int_equal(read(p[0], &r, 1), 1);
    close(p[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return r;
}

/* Wait until every pool thread has finished what it was doing: each then takes a gate
 * job, whose start the caller sees (a happens-before edge for ThreadSanitizer too, e.g.
 * before closing an fd that an abandoned job used). */
static inline void pool_quiesce(void)
{
    struct gate g;
    gate_close(&g);
    gate_open(&g);
}

#endif
