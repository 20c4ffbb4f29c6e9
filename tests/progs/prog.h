/*
 * prog.h — what the plain programs of tests/progs/ share (plain POSIX and pthreads, no
 * libgreen): checks that end the program, a ticker thread that shows other threads run
 * while one waits, and the runner of named checks.
 *
 * Each check runs in a pthread of its own, so that under `greenrun --threads` it is a
 * green thread and the patched calls park it; plainly, or under `greenrun` alone, every
 * call is libc's. What a program prints must be the same either way: a driver
 * (tests/patch_progs_test.sh) compares the runs.
 */
#ifndef PROG_H
#define PROG_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHECK(c)                                                                        \
    do {                                                                                \
        if (!(c)) {                                                                     \
            printf("FAIL %s:%d: %s (errno %d: %s)\n", __FILE__, __LINE__, #c, errno,    \
                   strerror(errno));                                                    \
            fflush(stdout);                                                             \
            _exit(1);                                                                   \
        }                                                                               \
    } while (0)
#define CHECK_EQ(a, b) CHECK((long)(a) == (long)(b))
/* call returns -1 with errno e (errno cleared first) */
#define CHECK_ERR(call, e)                                                              \
    do {                                                                                \
        errno = 0;                                                                      \
        CHECK_EQ((call), -1);                                                           \
        CHECK_EQ(errno, (e));                                                           \
    } while (0)

/* The value, unknown to the compiler: for the checks that pass libc a bad argument on
 * purpose (its warnings would otherwise see it). */
static inline long opaque(long v)
{
    __asm__("" : "+r"(v));
    return v;
}
static inline void *opaque_ptr(void *p)
{
    __asm__("" : "+r"(p));
    return p;
}

static inline long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* A thread that counts about every millisecond: a call that waits for tens of
 * milliseconds while the ticker advances has let other threads run. */
static long ticks;
static int ticker_stop;
static pthread_t ticker_thread;

static void *ticker_run(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&ticker_stop, __ATOMIC_RELAXED)) {
        usleep(1000);
        __atomic_add_fetch(&ticks, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static inline long ticks_now(void) { return __atomic_load_n(&ticks, __ATOMIC_RELAXED); }

/* The ticker has ticked since t0: other threads ran while the caller waited. (With
 * green threads it cannot tick at all during a call that pins the OS thread; plainly it
 * ticks whatever the call does, unless the machine starves it.) */
#define TICKED(t0) (ticks_now() - (t0) >= 2)

/* Wait (sleeping) until the ticker has ticked n more times: when this returns, the
 * ticker runs alongside the caller. */
static inline void ticks_wait(long n)
{
    long t0 = ticks_now();
    while (ticks_now() - t0 < n)
        usleep(1000);
}

/* A thread that writes n bytes of buf to fd once the ticker has ticked 20 times: what a
 * check's wait is waiting for, from another thread, a while after the wait began. */
struct later {
    int fd;
    const char *buf;
    size_t n;
};

static inline void *write_later(void *arg)
{
    struct later *l = arg;
    ticks_wait(20);
    CHECK_EQ(write(l->fd, l->buf, l->n), (long)l->n);
    return NULL;
}

static inline pthread_t in_a_while(struct later *l)
{
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, write_later, l), 0);
    return t;
}

/* pthread_cancel of a thread blocked in a call that is a cancellation point: the call
 * never returns, its cleanup handler runs, the join says PTHREAD_CANCELED. `block` makes
 * the call (with arg); it must not return. */
static int cancel_cleaned;
static void cancel_cleanup(void *arg)
{
    (void)arg;
    __atomic_store_n(&cancel_cleaned, 1, __ATOMIC_RELAXED);
}

struct cancel_job {
    void (*block)(void *arg);
    void *arg;
};

static void *cancel_run(void *arg)
{
    struct cancel_job *j = arg;
    pthread_cleanup_push(cancel_cleanup, NULL);
    j->block(j->arg);
    pthread_cleanup_pop(0);
    return NULL; /* (not reached: the call was to be cancelled) */
}

static inline void check_cancelled(void (*block)(void *arg), void *arg)
{
#if defined(__SANITIZE_ADDRESS__)
    /* ASan's runtime fails a CHECK when a cancelled thread unwinds (glibc's unwinder
     * longjmps past its frames), plainly as well: nothing to compare there */
    (void)block, (void)arg;
    return;
#endif
    struct cancel_job j = {block, arg};
    pthread_t t;
    void *res = NULL;
    __atomic_store_n(&cancel_cleaned, 0, __ATOMIC_RELAXED);
    CHECK_EQ(pthread_create(&t, NULL, cancel_run, &j), 0);
    ticks_wait(20); /* it is blocked in the call by now */
    CHECK_EQ(pthread_cancel(t), 0);
    CHECK_EQ(pthread_join(t, &res), 0);
    CHECK(res == PTHREAD_CANCELED);
    CHECK(__atomic_load_n(&cancel_cleaned, __ATOMIC_RELAXED));
}

struct prog_test {
    const char *name;
    void (*fn)(void);
};

static void *prog_test_run(void *arg)
{
    ((const struct prog_test *)arg)->fn();
    return NULL;
}

/* Run the checks named by argv[1] ("all", or one name), each in a thread of its own
 * with the ticker going; "ok NAME" for each. The exit status: 0, or 2 for no such name. */
static inline int prog_main(int argc, char **argv, const struct prog_test *tests, size_t n)
{
    const char *which = argc > 1 ? argv[1] : "all";
    int ran = 0;
    alarm(60); /* a call that pins its OS thread would hang the checks: fail instead */
    CHECK_EQ(pthread_create(&ticker_thread, NULL, ticker_run, NULL), 0);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(which, "all") != 0 && strcmp(which, tests[i].name) != 0)
            continue;
        pthread_t t;
        CHECK_EQ(pthread_create(&t, NULL, prog_test_run, (void *)&tests[i]), 0);
        CHECK_EQ(pthread_join(t, NULL), 0);
        printf("ok %s\n", tests[i].name);
        fflush(stdout);
        ran++;
    }
    __atomic_store_n(&ticker_stop, 1, __ATOMIC_RELAXED);
    CHECK_EQ(pthread_join(ticker_thread, NULL), 0);
    return ran ? 0 : 2;
}

#endif
