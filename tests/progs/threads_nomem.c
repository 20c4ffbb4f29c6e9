/*
 * threads_nomem.c — pthread mutexes and conditions while every allocation fails: a
 * plain pthreads program (no libgreen headers) whose own malloc, calloc and realloc fail
 * while `no_memory` is set. They are the process's (the executable's definitions come
 * first in symbol lookup), so libgreen and libgreen-patch.so get the failures too when
 * the program runs under GREEN_PATCH_THREADS=1.
 *
 * The threads are started while memory is there; then every allocation fails while they
 * lock and unlock one mutex, contended (a holder yields, and sleeps, with it held), wait
 * on a condition, and try and time their locks. No call may fail (pthread_mutex_lock
 * must not report EAGAIN, as it once did when it could not allocate), and the count
 * kept under the mutex must be exact. Prints "nomem: ok" (after memory is back), and
 * to stderr how many allocations were refused.
 * Not for sanitizer builds: their allocators are not these.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

static int no_memory;
static long refused;

void *malloc(size_t n)
{
    if (__atomic_load_n(&no_memory, __ATOMIC_RELAXED)) {
        __atomic_add_fetch(&refused, 1, __ATOMIC_RELAXED);
        errno = ENOMEM;
        return NULL;
    }
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    if (__atomic_load_n(&no_memory, __ATOMIC_RELAXED)) {
        __atomic_add_fetch(&refused, 1, __ATOMIC_RELAXED);
        errno = ENOMEM;
        return NULL;
    }
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    if (__atomic_load_n(&no_memory, __ATOMIC_RELAXED)) {
        __atomic_add_fetch(&refused, 1, __ATOMIC_RELAXED);
        errno = ENOMEM;
        return NULL;
    }
    return __libc_realloc(p, n);
}

/* Checked without printing (stdio may allocate): the first failure is kept. */
static int failed_line, failed_value;
#define EXPECT(expr, want)                                                             \
    do {                                                                               \
        int v_ = (expr);                                                               \
        if (v_ != (want) && !failed_line) {                                            \
            failed_line = __LINE__;                                                    \
            failed_value = v_;                                                         \
        }                                                                              \
    } while (0)

#define THREADS 16
#define ROUNDS 200

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t rec = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static pthread_cond_t c = PTHREAD_COND_INITIALIZER;
static long count, inside;
static volatile int go;

static void *worker(void *arg)
{
    long id = (long)arg;
    while (!go)
        sched_yield();
    for (int i = 0; i < ROUNDS; i++) {
        if (i % 3 == 0) {
            int e = pthread_mutex_trylock(&m);
            EXPECT(e == 0 || e == EBUSY, 1);
            if (e == EBUSY)
                EXPECT(pthread_mutex_lock(&m), 0);
        } else if (i % 3 == 1) {
            struct timespec t;
            clock_gettime(CLOCK_REALTIME, &t);
            t.tv_sec += 60;
            EXPECT(pthread_mutex_timedlock(&m, &t), 0);
        } else {
            EXPECT(pthread_mutex_lock(&m), 0);
        }
        EXPECT(inside++, 0); /* mutual exclusion */
        long v = count;
        if ((i + id) % 4 == 0)
            sched_yield(); /* the others find it held and wait */
        if ((i + id) % 50 == 0) {
            struct timespec d = {0, 1000000};
            nanosleep(&d, NULL);
        }
        count = v + 1;
        inside--;
        if ((i + id) % 25 == 0) { /* a condition wait relocks without memory too */
            struct timespec t;
            clock_gettime(CLOCK_REALTIME, &t);
            t.tv_nsec += 1000000;
            if (t.tv_nsec >= 1000000000) {
                t.tv_sec++;
                t.tv_nsec -= 1000000000;
            }
            int e = pthread_cond_timedwait(&c, &m, &t);
            EXPECT(e == 0 || e == ETIMEDOUT, 1);
            pthread_cond_broadcast(&c);
        }
        EXPECT(pthread_mutex_unlock(&m), 0);
        EXPECT(pthread_mutex_lock(&rec), 0);
        EXPECT(pthread_mutex_lock(&rec), 0);
        sched_yield();
        EXPECT(pthread_mutex_unlock(&rec), 0);
        EXPECT(pthread_mutex_unlock(&rec), 0);
    }
    return NULL;
}

int main(void)
{
    alarm(60);
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)i) != 0) {
            printf("pthread_create failed\n");
            return 1;
        }
    struct timespec d = {0, 20 * 1000000};
    nanosleep(&d, NULL); /* every thread is waiting for go */
    __atomic_store_n(&no_memory, 1, __ATOMIC_SEQ_CST);
    go = 1;
    for (int i = 0; i < THREADS; i++)
        EXPECT(pthread_join(t[i], NULL), 0);
    __atomic_store_n(&no_memory, 0, __ATOMIC_SEQ_CST);
    if (failed_line) {
        printf("nomem: line %d: got %d (%s)\n", failed_line, failed_value, strerror(failed_value));
        return 1;
    }
    if (count != THREADS * ROUNDS) {
        printf("nomem: count %ld, not %d\n", count, THREADS * ROUNDS);
        return 1;
    }
    fprintf(stderr, "nomem: %ld allocations refused\n", refused);
    printf("nomem: ok\n");
    return 0;
}
