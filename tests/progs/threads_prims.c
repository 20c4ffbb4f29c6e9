/*
 * threads_prims.c — rwlocks, barriers, semaphores and spin locks as a plain pthreads
 * program relies on them (no libgreen headers): the same binary runs on real threads
 * and, under libgreen-patch.so with GREEN_PATCH_THREADS=1, on green threads, and must
 * print the same lines. Every return value and errno is glibc's on real threads.
 *
 *   threads_prims TEST    (TEST: one of the names in `tests` below, or "all")
 *
 * Mutexes too: the timed forms' errors, and robust mutexes whose holder ends holding
 * them. Besides each object's semantics: a semaphore posted from a signal handler, and
 * objects shared with plain OS threads — glibc's SIGEV_THREAD timers run their
 * callbacks on threads it starts itself, which stay plain threads under
 * GREEN_PATCH_THREADS — a mutex, a semaphore, a condition they wait on (our signal and
 * destroy on glibc's bytes in use); and threads such a plain thread starts
 * (green threads of another OS thread's hub), sharing objects with ours. Prints "ok
 * TEST" per test passed;
 * exits 1 at the first failed check.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define CHECK(c)                                                                       \
    do {                                                                               \
        if (!(c)) {                                                                    \
            printf("FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #c, errno);      \
            fflush(stdout);                                                            \
            _exit(1);                                                                  \
        }                                                                              \
    } while (0)
#define CHECK_EQ(a, b) CHECK((long)(a) == (long)(b))

static void sleep_ms(int ms)
{
    struct timespec d = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&d, &d) != 0 && errno == EINTR)
        ;
}

/* now + ms on clk */
static struct timespec in_ms(clockid_t clk, int ms)
{
    struct timespec t;
    clock_gettime(clk, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000;
    if (t.tv_nsec >= 1000000000) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000;
    }
    return t;
}

static pthread_t start(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, fn, arg), 0);
    return t;
}

static void *join(pthread_t t)
{
    void *r;
    CHECK_EQ(pthread_join(t, &r), 0);
    return r;
}

/* ======================================================================== */
/*  mutexes                                                                 */
/* ======================================================================== */

/* Another thread holds a lock from `held` until `release`: the checks meanwhile need
 * no timing. */
static sem_t held, release;
static void handshake_init(void)
{
    CHECK_EQ(sem_init(&held, 0, 0), 0);
    CHECK_EQ(sem_init(&release, 0, 0), 0);
}

static pthread_mutex_t tm = PTHREAD_MUTEX_INITIALIZER;
static void *hold_tm(void *arg)
{
    CHECK_EQ(pthread_mutex_lock(&tm), 0);
    CHECK_EQ(sem_post(&held), 0);
    CHECK_EQ(sem_wait(&release), 0);
    CHECK_EQ(pthread_mutex_unlock(&tm), 0);
    return arg;
}

static pthread_cond_t mono;
static int mono_signalled;
static void *signal_mono(void *arg)
{
    sleep_ms(30);
    CHECK_EQ(pthread_mutex_lock(&tm), 0);
    mono_signalled = 1;
    CHECK_EQ(pthread_cond_signal(&mono), 0);
    CHECK_EQ(pthread_mutex_unlock(&tm), 0);
    return arg;
}

/* glibc checks a timed lock's clock first, its time only when it has to wait. */
static void test_mutex_timed(void)
{
    struct timespec bad = {0, 2000000000L}, past = {0, 0}, t;
    CHECK_EQ(pthread_mutex_timedlock(&tm, &bad), 0); /* free: the time is not looked at */
    CHECK_EQ(pthread_mutex_unlock(&tm), 0);
    CHECK_EQ(pthread_mutex_clocklock(&tm, CLOCK_PROCESS_CPUTIME_ID, &past), EINVAL);
    CHECK_EQ(pthread_mutex_timedlock(&tm, &past), 0);
    CHECK_EQ(pthread_mutex_destroy(&tm), EBUSY);
    CHECK_EQ(pthread_mutex_unlock(&tm), 0);

    handshake_init();
    pthread_t h = start(hold_tm, NULL);
    CHECK_EQ(sem_wait(&held), 0);
    CHECK_EQ(pthread_mutex_trylock(&tm), EBUSY);
    CHECK_EQ(pthread_mutex_timedlock(&tm, &bad), EINVAL);
    CHECK_EQ(pthread_mutex_timedlock(&tm, &past), ETIMEDOUT);
    t = in_ms(CLOCK_MONOTONIC, 30);
    CHECK_EQ(pthread_mutex_clocklock(&tm, CLOCK_MONOTONIC, &t), ETIMEDOUT);
    CHECK_EQ(sem_post(&release), 0);
    t = in_ms(CLOCK_REALTIME, 10000);
    CHECK_EQ(pthread_mutex_timedlock(&tm, &t), 0); /* the holder is done first */
    CHECK_EQ(pthread_mutex_unlock(&tm), 0);
    join(h);

    pthread_mutexattr_t a;
    pthread_mutex_t e;
    CHECK_EQ(pthread_mutexattr_init(&a), 0);
    CHECK_EQ(pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK), 0);
    CHECK_EQ(pthread_mutex_init(&e, &a), 0);
    CHECK_EQ(pthread_mutex_lock(&e), 0);
    CHECK_EQ(pthread_mutex_timedlock(&e, &past), EDEADLK);
    CHECK_EQ(pthread_mutex_timedlock(&e, &bad), EDEADLK);
    CHECK_EQ(pthread_mutex_unlock(&e), 0);
    CHECK_EQ(pthread_mutex_unlock(&e), EPERM);
    CHECK_EQ(pthread_mutex_destroy(&e), 0);
    CHECK_EQ(pthread_mutexattr_destroy(&a), 0);

    /* a condition on CLOCK_MONOTONIC (glibc keeps the clock in its bytes): its timed wait
     * reads the time on that clock, so a signal well before the time comes first */
    pthread_condattr_t ca;
    CHECK_EQ(pthread_condattr_init(&ca), 0);
    CHECK_EQ(pthread_condattr_setclock(&ca, CLOCK_MONOTONIC), 0);
    CHECK_EQ(pthread_cond_init(&mono, &ca), 0);
    CHECK_EQ(pthread_condattr_destroy(&ca), 0);
    CHECK_EQ(pthread_mutex_lock(&tm), 0);
    mono_signalled = 0;
    h = start(signal_mono, NULL);
    t = in_ms(CLOCK_MONOTONIC, 10000);
    while (!mono_signalled)
        CHECK_EQ(pthread_cond_timedwait(&mono, &tm, &t), 0);
    CHECK_EQ(pthread_mutex_unlock(&tm), 0);
    join(h);
    CHECK_EQ(pthread_cond_destroy(&mono), 0);

    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    CHECK_EQ(pthread_mutex_lock(&tm), 0);
    CHECK_EQ(pthread_cond_timedwait(&c, &tm, &bad), EINVAL);
    CHECK_EQ(pthread_cond_clockwait(&c, &tm, CLOCK_PROCESS_CPUTIME_ID, &past), EINVAL);
    CHECK_EQ(pthread_cond_timedwait(&c, &tm, &past), ETIMEDOUT);
    CHECK_EQ(pthread_mutex_unlock(&tm), 0);
    CHECK_EQ(pthread_cond_destroy(&c), 0);
}

/* A robust mutex whose holder ends holding it: the next locker (one already waiting, a
 * later lock, a trylock) gets EOWNERDEAD and holds it; made consistent, it is ordinary. */
static pthread_mutex_t rob;
static void *end_holding(void *arg)
{
    CHECK_EQ(pthread_mutex_lock(&rob), 0);
    if (arg) { /* until the waiter is on its way (it gets EOWNERDEAD, waiting or not) */
        CHECK_EQ(sem_post(&held), 0);
        CHECK_EQ(sem_wait(&release), 0);
        sleep_ms(20);
    }
    return NULL;
}
static void *lock_rob(void *arg)
{
    (void)arg;
    int e = pthread_mutex_lock(&rob);
    if (e == EOWNERDEAD) {
        CHECK_EQ(pthread_mutex_consistent(&rob), 0);
        CHECK_EQ(pthread_mutex_unlock(&rob), 0);
    }
    return (void *)(intptr_t)e;
}
static void test_mutex_robust(void)
{
    pthread_mutexattr_t a;
    CHECK_EQ(pthread_mutexattr_init(&a), 0);
    CHECK_EQ(pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST), 0);
    CHECK_EQ(pthread_mutex_init(&rob, &a), 0);
    CHECK_EQ(pthread_mutexattr_destroy(&a), 0);

    join(start(end_holding, (void *)0));
    CHECK_EQ(pthread_mutex_lock(&rob), EOWNERDEAD);
    CHECK_EQ(pthread_mutex_consistent(&rob), 0);
    CHECK_EQ(pthread_mutex_unlock(&rob), 0);
    CHECK_EQ(pthread_mutex_lock(&rob), 0);
    CHECK_EQ(pthread_mutex_unlock(&rob), 0);

    join(start(end_holding, (void *)0));
    CHECK_EQ(pthread_mutex_trylock(&rob), EOWNERDEAD);
    CHECK_EQ(pthread_mutex_consistent(&rob), 0);
    CHECK_EQ(pthread_mutex_unlock(&rob), 0);

    handshake_init();
    pthread_t h = start(end_holding, (void *)1);
    CHECK_EQ(sem_wait(&held), 0);
    pthread_t w = start(lock_rob, NULL); /* waits, then inherits it */
    CHECK_EQ(sem_post(&release), 0);
    join(h);
    CHECK_EQ((intptr_t)join(w), EOWNERDEAD);
    CHECK_EQ(pthread_mutex_lock(&rob), 0);
    CHECK_EQ(pthread_mutex_unlock(&rob), 0);
    CHECK_EQ(pthread_mutex_destroy(&rob), 0);
}

/* ======================================================================== */
/*  rwlocks                                                                 */
/* ======================================================================== */

static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;

static void *try_rd(void *arg) { return (void *)(intptr_t)pthread_rwlock_tryrdlock(arg); }
static void *try_wr(void *arg) { return (void *)(intptr_t)pthread_rwlock_trywrlock(arg); }
static void *unlock_rw(void *arg) { return (void *)(intptr_t)pthread_rwlock_unlock(arg); }

/* The calls of one thread, and what others see meanwhile. */
static void test_rwlock_calls(void)
{
    pthread_rwlock_t *l = &rw;
    CHECK_EQ(pthread_rwlock_rdlock(l), 0);
    CHECK_EQ(pthread_rwlock_rdlock(l), 0); /* recursive read locks */
    CHECK_EQ(pthread_rwlock_tryrdlock(l), 0);
    CHECK_EQ(pthread_rwlock_trywrlock(l), EBUSY);
    CHECK_EQ((intptr_t)join(start(try_rd, l)), 0);
    CHECK_EQ((intptr_t)join(start(unlock_rw, l)), 0); /* its read lock */
    CHECK_EQ((intptr_t)join(start(try_wr, l)), EBUSY);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(pthread_rwlock_unlock(l), 0);

    CHECK_EQ(pthread_rwlock_wrlock(l), 0);
    CHECK_EQ(pthread_rwlock_wrlock(l), EDEADLK);
    CHECK_EQ(pthread_rwlock_rdlock(l), EDEADLK);
    CHECK_EQ(pthread_rwlock_trywrlock(l), EBUSY);
    CHECK_EQ(pthread_rwlock_tryrdlock(l), EBUSY);
    struct timespec soon = in_ms(CLOCK_REALTIME, 20);
    CHECK_EQ(pthread_rwlock_timedwrlock(l, &soon), EDEADLK);
    CHECK_EQ((intptr_t)join(start(try_rd, l)), EBUSY);
    CHECK_EQ((intptr_t)join(start(try_wr, l)), EBUSY);
    CHECK_EQ(pthread_rwlock_unlock(l), 0);
    CHECK_EQ(pthread_rwlock_trywrlock(l), 0);
    CHECK_EQ(pthread_rwlock_unlock(l), 0);
    CHECK_EQ(pthread_rwlock_destroy(l), 0);

    pthread_rwlockattr_t a;
    pthread_rwlock_t l2;
    CHECK_EQ(pthread_rwlockattr_init(&a), 0);
    CHECK_EQ(pthread_rwlock_init(&l2, &a), 0);
    CHECK_EQ(pthread_rwlockattr_destroy(&a), 0);
    CHECK_EQ(pthread_rwlock_rdlock(&l2), 0);
    CHECK_EQ(pthread_rwlock_unlock(&l2), 0);
    CHECK_EQ(pthread_rwlock_destroy(&l2), 0);
}

static pthread_rwlock_t trw = PTHREAD_RWLOCK_INITIALIZER;
static void *hold_write(void *arg)
{
    CHECK_EQ(pthread_rwlock_wrlock(&trw), 0);
    CHECK_EQ(sem_post(&held), 0);
    CHECK_EQ(sem_wait(&release), 0);
    CHECK_EQ(pthread_rwlock_unlock(&trw), 0);
    return arg;
}

/* The timed forms: their own time, bad times and clocks, checked first as glibc does. */
static void test_rwlock_timed(void)
{
    struct timespec bad = {0, 1000000000L}, past = {0, 0}, t;
    CHECK_EQ(pthread_rwlock_timedrdlock(&trw, &bad), EINVAL); /* even when free */
    CHECK_EQ(pthread_rwlock_timedwrlock(&trw, &bad), EINVAL);
    t = in_ms(CLOCK_REALTIME, 1000);
    CHECK_EQ(pthread_rwlock_clockrdlock(&trw, CLOCK_PROCESS_CPUTIME_ID, &t), EINVAL);
    CHECK_EQ(pthread_rwlock_timedrdlock(&trw, &past), 0); /* free: taken, the time past */
    CHECK_EQ(pthread_rwlock_unlock(&trw), 0);
    CHECK_EQ(pthread_rwlock_timedwrlock(&trw, &past), 0);
    CHECK_EQ(pthread_rwlock_unlock(&trw), 0);

    handshake_init();
    pthread_t w = start(hold_write, NULL);
    CHECK_EQ(sem_wait(&held), 0);
    CHECK_EQ(pthread_rwlock_timedrdlock(&trw, &past), ETIMEDOUT);
    t = in_ms(CLOCK_REALTIME, 30);
    CHECK_EQ(pthread_rwlock_timedrdlock(&trw, &t), ETIMEDOUT);
    t = in_ms(CLOCK_MONOTONIC, 30);
    CHECK_EQ(pthread_rwlock_clockwrlock(&trw, CLOCK_MONOTONIC, &t), ETIMEDOUT);
    CHECK_EQ(sem_post(&release), 0);
    t = in_ms(CLOCK_MONOTONIC, 10000);
    CHECK_EQ(pthread_rwlock_clockrdlock(&trw, CLOCK_MONOTONIC, &t), 0); /* the writer is done first */
    CHECK_EQ(pthread_rwlock_unlock(&trw), 0);
    join(w);
}

/* Writers exclude everybody, readers hold it together. */
static pthread_rwlock_t xrw = PTHREAD_RWLOCK_INITIALIZER;
static long pair_a, pair_b;
static int readers_in, readers_max, torn;
static pthread_mutex_t stat_m = PTHREAD_MUTEX_INITIALIZER;
static void *writer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++) {
        CHECK_EQ(pthread_rwlock_wrlock(&xrw), 0);
        long a = pair_a;
        sched_yield();
        pair_a = a + 1;
        pair_b++;
        CHECK_EQ(pthread_rwlock_unlock(&xrw), 0);
        if (i % 10 == 0)
            sleep_ms(1);
    }
    return NULL;
}
static pthread_barrier_t readers_meet;
static void *reader(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++) {
        CHECK_EQ(pthread_rwlock_rdlock(&xrw), 0);
        pthread_mutex_lock(&stat_m);
        if (++readers_in > readers_max)
            readers_max = readers_in;
        pthread_mutex_unlock(&stat_m);
        if (pair_a != pair_b)
            torn = 1;
        if (i == 0) /* all four hold it at once (readers get in past waiting writers) */
            pthread_barrier_wait(&readers_meet);
        sleep_ms(1);
        if (pair_a != pair_b)
            torn = 1;
        pthread_mutex_lock(&stat_m);
        readers_in--;
        pthread_mutex_unlock(&stat_m);
        CHECK_EQ(pthread_rwlock_unlock(&xrw), 0);
    }
    return NULL;
}
static void test_rwlock_exclusion(void)
{
    pthread_t t[8];
    CHECK_EQ(pthread_barrier_init(&readers_meet, NULL, 4), 0);
    for (int i = 0; i < 8; i++)
        t[i] = start(i < 4 ? writer : reader, NULL);
    for (int i = 0; i < 8; i++)
        join(t[i]);
    CHECK_EQ(pair_a, 800);
    CHECK_EQ(pair_b, 800);
    CHECK_EQ(torn, 0);
    CHECK_EQ(readers_max, 4);
    CHECK_EQ(pthread_barrier_destroy(&readers_meet), 0);
}

/* Reader preference (glibc's default): a reader gets in while a writer waits; with
 * PREFER_WRITER_NONRECURSIVE it does not. */
static pthread_rwlock_t prw;
static int writer_done;
static void *wait_write(void *arg)
{
    (void)arg;
    CHECK_EQ(pthread_rwlock_wrlock(&prw), 0);
    writer_done = 1;
    CHECK_EQ(pthread_rwlock_unlock(&prw), 0);
    return NULL;
}
static void preference(int kind, int reader_gets_in)
{
    pthread_rwlockattr_t a;
    CHECK_EQ(pthread_rwlockattr_init(&a), 0);
    CHECK_EQ(pthread_rwlockattr_setkind_np(&a, kind), 0);
    CHECK_EQ(pthread_rwlock_init(&prw, &a), 0);
    writer_done = 0;
    CHECK_EQ(pthread_rwlock_rdlock(&prw), 0);
    pthread_t w = start(wait_write, NULL);
    if (reader_gets_in) {
        sleep_ms(30); /* the writer waits (if it is slower, the reader gets in all the same) */
        CHECK_EQ((intptr_t)join(start(try_rd, &prw)), 0);
        CHECK_EQ((intptr_t)join(start(unlock_rw, &prw)), 0);
    } else {
        /* readers are kept out once the writer waits: wait for that */
        intptr_t e;
        for (int i = 0; (e = (intptr_t)join(start(try_rd, &prw))) == 0 && i < 10000; i++) {
            CHECK_EQ((intptr_t)join(start(unlock_rw, &prw)), 0);
            sleep_ms(1);
        }
        CHECK_EQ(e, EBUSY);
    }
    CHECK_EQ(writer_done, 0);
    CHECK_EQ(pthread_rwlock_unlock(&prw), 0);
    join(w);
    CHECK_EQ(writer_done, 1);
    CHECK_EQ(pthread_rwlock_destroy(&prw), 0);
    CHECK_EQ(pthread_rwlockattr_destroy(&a), 0);
}
static void test_rwlock_preference(void)
{
    preference(PTHREAD_RWLOCK_PREFER_READER_NP, 1);
    preference(PTHREAD_RWLOCK_PREFER_WRITER_NP, 1); /* glibc treats it as reader preference */
    preference(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP, 0);
    static pthread_rwlock_t s = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
    CHECK_EQ(pthread_rwlock_wrlock(&s), 0);
    CHECK_EQ(pthread_rwlock_unlock(&s), 0);
}

/* ======================================================================== */
/*  barriers                                                                */
/* ======================================================================== */

#define BN 8
#define ROUNDS 50
static pthread_barrier_t bar;
static int arrived[ROUNDS], serial[ROUNDS];
static void *barrier_user(void *arg)
{
    (void)arg;
    for (int r = 0; r < ROUNDS; r++) {
        __atomic_add_fetch(&arrived[r], 1, __ATOMIC_SEQ_CST);
        if (r % 7 == 3)
            sched_yield();
        int e = pthread_barrier_wait(&bar);
        CHECK(e == 0 || e == PTHREAD_BARRIER_SERIAL_THREAD);
        CHECK_EQ(__atomic_load_n(&arrived[r], __ATOMIC_SEQ_CST), BN); /* nobody passes early */
        if (e == PTHREAD_BARRIER_SERIAL_THREAD)
            __atomic_add_fetch(&serial[r], 1, __ATOMIC_SEQ_CST);
    }
    return NULL;
}
static void test_barrier(void)
{
    pthread_barrier_t b;
    CHECK_EQ(pthread_barrier_init(&b, NULL, 0), EINVAL);
    CHECK_EQ(pthread_barrier_init(&b, NULL, 1), 0);
    CHECK_EQ(pthread_barrier_wait(&b), PTHREAD_BARRIER_SERIAL_THREAD);
    CHECK_EQ(pthread_barrier_wait(&b), PTHREAD_BARRIER_SERIAL_THREAD);
    CHECK_EQ(pthread_barrier_destroy(&b), 0);

    CHECK_EQ(pthread_barrier_init(&bar, NULL, BN), 0);
    pthread_t t[BN - 1];
    for (int i = 0; i < BN - 1; i++)
        t[i] = start(barrier_user, NULL);
    barrier_user(NULL); /* main is the eighth */
    for (int i = 0; i < BN - 1; i++)
        join(t[i]);
    for (int r = 0; r < ROUNDS; r++)
        CHECK_EQ(serial[r], 1); /* exactly one per round */
    CHECK_EQ(pthread_barrier_destroy(&bar), 0);
}

/* ======================================================================== */
/*  semaphores                                                              */
/* ======================================================================== */

static sem_t sem;
static void test_sem_calls(void)
{
    sem_t s;
    int v;
    errno = 0;
    CHECK_EQ(sem_init(&s, 0, (unsigned)SEM_VALUE_MAX + 1), -1);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(sem_init(&s, 0, 0), 0);
    CHECK_EQ(sem_trywait(&s), -1);
    CHECK_EQ(errno, EAGAIN);
    errno = 1234;
    CHECK_EQ(sem_post(&s), 0);
    CHECK_EQ(sem_post(&s), 0);
    CHECK_EQ(sem_getvalue(&s, &v), 0);
    CHECK_EQ(v, 2);
    CHECK_EQ(sem_wait(&s), 0);
    CHECK_EQ(sem_trywait(&s), 0);
    CHECK_EQ(errno, 1234); /* left alone on success */
    CHECK_EQ(sem_getvalue(&s, &v), 0);
    CHECK_EQ(v, 0);

    struct timespec bad = {0, -1}, past = {0, 0}, t;
    CHECK_EQ(sem_post(&s), 0);
    CHECK_EQ(sem_timedwait(&s, &bad), -1); /* checked first, even with a token */
    CHECK_EQ(errno, EINVAL);
    t = in_ms(CLOCK_MONOTONIC, 1000);
    CHECK_EQ(sem_clockwait(&s, CLOCK_PROCESS_CPUTIME_ID, &t), -1);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(sem_timedwait(&s, &past), 0); /* a token: taken, the time past */
    CHECK_EQ(sem_timedwait(&s, &past), -1);
    CHECK_EQ(errno, ETIMEDOUT);
    t = in_ms(CLOCK_REALTIME, 30);
    CHECK_EQ(sem_timedwait(&s, &t), -1);
    CHECK_EQ(errno, ETIMEDOUT);
    t = in_ms(CLOCK_MONOTONIC, 30);
    CHECK_EQ(sem_clockwait(&s, CLOCK_MONOTONIC, &t), -1);
    CHECK_EQ(errno, ETIMEDOUT);
    CHECK_EQ(sem_destroy(&s), 0);

    CHECK_EQ(sem_init(&s, 0, SEM_VALUE_MAX), 0);
    CHECK_EQ(sem_post(&s), -1);
    CHECK_EQ(errno, EOVERFLOW);
    CHECK_EQ(sem_destroy(&s), 0);

    /* process-shared: glibc's (only calls that do not wait here) */
    CHECK_EQ(sem_init(&s, 1, 1), 0);
    CHECK_EQ(sem_wait(&s), 0);
    CHECK_EQ(sem_trywait(&s), -1);
    CHECK_EQ(errno, EAGAIN);
    CHECK_EQ(sem_post(&s), 0);
    CHECK_EQ(sem_getvalue(&s, &v), 0);
    CHECK_EQ(v, 1);
    CHECK_EQ(sem_destroy(&s), 0);
}

/* Producers and consumers: every token is taken exactly once. */
#define ITEMS 2000
static int taken, items_of[3];
static void *consume(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (;;) {
        CHECK_EQ(sem_wait(&sem), 0);
        if (__atomic_add_fetch(&taken, 1, __ATOMIC_SEQ_CST) > ITEMS) /* past the items: an end */
            return NULL;
        items_of[id]++;
    }
}
static void *produce(void *arg)
{
    (void)arg;
    for (int i = 0; i < ITEMS / 2; i++) {
        CHECK_EQ(sem_post(&sem), 0);
        if (i % 16 == 0)
            sched_yield();
    }
    return NULL;
}
static void test_sem_tokens(void)
{
    CHECK_EQ(sem_init(&sem, 0, 0), 0);
    pthread_t c[3], p[2];
    for (int i = 0; i < 3; i++)
        c[i] = start(consume, (void *)(intptr_t)i);
    for (int i = 0; i < 2; i++)
        p[i] = start(produce, NULL);
    for (int i = 0; i < 2; i++)
        join(p[i]);
    for (int i = 0; i < 3; i++) /* one end for each consumer */
        CHECK_EQ(sem_post(&sem), 0);
    for (int i = 0; i < 3; i++)
        join(c[i]);
    CHECK_EQ(items_of[0] + items_of[1] + items_of[2], ITEMS);
    CHECK_EQ(taken, ITEMS + 3);
    int v;
    CHECK_EQ(sem_getvalue(&sem, &v), 0);
    CHECK_EQ(v, 0);
    CHECK_EQ(sem_destroy(&sem), 0);
}

/* A post from a signal handler (async-signal-safe) ends a wait. On real threads the
 * wait may also end with EINTR (the handler interrupted it): then wait again. */
static sem_t sig_sem;
static void on_alarm(int sig)
{
    (void)sig;
    int e = errno;
    sem_post(&sig_sem);
    errno = e;
}
static void test_sem_signal(void)
{
    CHECK_EQ(sem_init(&sig_sem, 0, 0), 0);
    struct sigaction sa = {.sa_handler = on_alarm};
    CHECK_EQ(sigaction(SIGALRM, &sa, NULL), 0);
    struct itimerval it = {{0, 0}, {0, 50000}};
    CHECK_EQ(setitimer(ITIMER_REAL, &it, NULL), 0);
    int r;
    while ((r = sem_wait(&sig_sem)) != 0 && errno == EINTR)
        ;
    CHECK_EQ(r, 0);
    signal(SIGALRM, SIG_DFL);
    alarm(120); /* main's guard, which the itimer replaced */
    CHECK_EQ(sem_destroy(&sig_sem), 0);
}

/* ======================================================================== */
/*  spin locks                                                              */
/* ======================================================================== */

static pthread_spinlock_t spin;
static long spun;
static void *spinner(void *arg)
{
    (void)arg;
    for (int i = 0; i < 500; i++) {
        CHECK_EQ(pthread_spin_lock(&spin), 0);
        long v = spun;
        if (i % 5 == 0)
            sched_yield(); /* the holder lets the others run: they must not spin forever */
        spun = v + 1;
        CHECK_EQ(pthread_spin_unlock(&spin), 0);
    }
    return NULL;
}
static void test_spin(void)
{
    CHECK_EQ(pthread_spin_init(&spin, PTHREAD_PROCESS_PRIVATE), 0);
    CHECK_EQ(pthread_spin_lock(&spin), 0);
    CHECK_EQ(pthread_spin_trylock(&spin), EBUSY);
    CHECK_EQ(pthread_spin_unlock(&spin), 0);
    CHECK_EQ(pthread_spin_trylock(&spin), 0);
    CHECK_EQ(pthread_spin_unlock(&spin), 0);
    pthread_t t[6];
    for (int i = 0; i < 6; i++)
        t[i] = start(spinner, NULL);
    for (int i = 0; i < 6; i++)
        join(t[i]);
    CHECK_EQ(spun, 6 * 500);
    CHECK_EQ(pthread_spin_destroy(&spin), 0);
}

/* ======================================================================== */
/*  objects shared with plain OS threads                                    */
/* ======================================================================== */

/* A SIGEV_THREAD timer's callback runs on a thread glibc starts itself. */
static void after_ms(int ms, void (*fn)(union sigval), timer_t *t)
{
    struct sigevent ev = {.sigev_notify = SIGEV_THREAD, .sigev_notify_function = fn};
    CHECK_EQ(timer_create(CLOCK_MONOTONIC, &ev, t), 0);
    struct itimerspec its = {{0, 0}, {ms / 1000, (long)(ms % 1000) * 1000000}};
    CHECK_EQ(timer_settime(*t, 0, &its, NULL), 0);
}

static pthread_mutex_t shared_m = PTHREAD_MUTEX_INITIALIZER;
static sem_t plain_done;
static int plain_holds, plain_got;
static void plain_holder(union sigval v)
{
    (void)v;
    CHECK_EQ(pthread_mutex_lock(&shared_m), 0);
    plain_holds = 1;
    sleep_ms(100);
    plain_holds = 0;
    CHECK_EQ(pthread_mutex_unlock(&shared_m), 0);
    CHECK_EQ(sem_post(&plain_done), 0); /* a plain thread's post wakes a green waiter */
}
static void plain_locker(union sigval v)
{
    (void)v;
    CHECK_EQ(pthread_mutex_lock(&shared_m), 0); /* sleeps in glibc until we unlock */
    plain_got = 1;
    CHECK_EQ(pthread_mutex_unlock(&shared_m), 0);
    CHECK_EQ(sem_post(&plain_done), 0);
}
/* A condition a plain thread waits on (glibc's bytes in use): our signal reaches it, and
 * once it is done our destroy is glibc's (not EBUSY from misread bytes). */
static pthread_mutex_t pcm = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pc = PTHREAD_COND_INITIALIZER;
static int pc_ready, pc_signalled;
static void plain_cond_waiter(union sigval v)
{
    (void)v;
    struct timespec t = in_ms(CLOCK_REALTIME, 10000);
    CHECK_EQ(pthread_mutex_lock(&pcm), 0);
    pc_ready = 1;
    while (!pc_signalled)
        CHECK_EQ(pthread_cond_timedwait(&pc, &pcm, &t), 0); /* signalled well before */
    CHECK_EQ(pthread_mutex_unlock(&pcm), 0);
    CHECK_EQ(sem_post(&plain_done), 0);
}

static void test_plain(void)
{
    timer_t t;
    CHECK_EQ(sem_init(&plain_done, 0, 0), 0);
    /* a plain thread holds the mutex: we wait for it, and hold it after it */
    after_ms(1, plain_holder, &t);
    while (!plain_holds)
        sleep_ms(1);
    CHECK_EQ(pthread_mutex_trylock(&shared_m), EBUSY);
    CHECK_EQ(pthread_mutex_lock(&shared_m), 0);
    CHECK_EQ(plain_holds, 0);
    CHECK_EQ(pthread_mutex_unlock(&shared_m), 0);
    CHECK_EQ(sem_wait(&plain_done), 0);
    CHECK_EQ(timer_delete(t), 0);
    /* we hold it: a plain thread waits in glibc, and our unlock wakes it */
    CHECK_EQ(pthread_mutex_lock(&shared_m), 0);
    after_ms(1, plain_locker, &t);
    sleep_ms(50);
    CHECK_EQ(plain_got, 0);
    CHECK_EQ(pthread_mutex_unlock(&shared_m), 0);
    CHECK_EQ(sem_wait(&plain_done), 0);
    CHECK_EQ(plain_got, 1);
    CHECK_EQ(timer_delete(t), 0);
    /* a plain thread waits on a condition: our signal wakes it */
    after_ms(1, plain_cond_waiter, &t);
    for (int ready = 0; !ready; sleep_ms(1)) {
        CHECK_EQ(pthread_mutex_lock(&pcm), 0);
        ready = pc_ready;
        CHECK_EQ(pthread_mutex_unlock(&pcm), 0);
    }
    CHECK_EQ(pthread_mutex_lock(&pcm), 0);
    pc_signalled = 1;
    CHECK_EQ(pthread_cond_signal(&pc), 0);
    CHECK_EQ(pthread_mutex_unlock(&pcm), 0);
    CHECK_EQ(sem_wait(&plain_done), 0);
    CHECK_EQ(timer_delete(t), 0);
    CHECK_EQ(pthread_cond_destroy(&pc), 0);
    CHECK_EQ(sem_destroy(&plain_done), 0);
}

/* Threads started by a plain thread (under GREEN_PATCH_THREADS: green threads of that
 * OS thread's own hub) share a mutex, a condition, an rwlock and a semaphore with ours:
 * counts stay exact and hand-offs across the two arrive. */
#define HUB_ROUNDS 300
static pthread_mutex_t hm = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hc = PTHREAD_COND_INITIALIZER;
static pthread_rwlock_t hrw = PTHREAD_RWLOCK_INITIALIZER;
static sem_t hsem, hubs_done;
static long hcount, hturns;
static int hturn; /* whose turn: 0 ours, 1 theirs */
static void *hub_worker(void *arg)
{
    int side = (int)(intptr_t)arg;
    for (int i = 0; i < HUB_ROUNDS; i++) {
        CHECK_EQ(pthread_mutex_lock(&hm), 0);
        long v = hcount;
        if (i % 3 == 0)
            sched_yield();
        hcount = v + 1;
        CHECK_EQ(pthread_mutex_unlock(&hm), 0);
        CHECK_EQ(pthread_rwlock_wrlock(&hrw), 0);
        CHECK_EQ(pthread_rwlock_unlock(&hrw), 0);
        if (i % 10 == 0) { /* take turns with the other side, through the condition */
            CHECK_EQ(pthread_mutex_lock(&hm), 0);
            while (hturn != side)
                CHECK_EQ(pthread_cond_wait(&hc, &hm), 0);
            hturn = !side;
            hturns++;
            CHECK_EQ(pthread_cond_broadcast(&hc), 0);
            CHECK_EQ(pthread_mutex_unlock(&hm), 0);
        }
        CHECK_EQ(sem_post(&hsem), 0);
        CHECK_EQ(sem_wait(&hsem), 0);
    }
    return NULL;
}
static void other_side(union sigval v)
{
    (void)v;
    pthread_t t = start(hub_worker, (void *)1); /* a green thread of this OS thread's own hub */
    join(t);
    CHECK_EQ(sem_post(&hubs_done), 0);
}
static void test_hubs(void)
{
    timer_t tm;
    CHECK_EQ(sem_init(&hsem, 0, 0), 0);
    CHECK_EQ(sem_init(&hubs_done, 0, 0), 0);
    after_ms(1, other_side, &tm);
    hub_worker((void *)0);
    CHECK_EQ(sem_wait(&hubs_done), 0);
    CHECK_EQ(hcount, 2 * HUB_ROUNDS);
    CHECK_EQ(hturns, 2 * HUB_ROUNDS / 10);
    CHECK_EQ(timer_delete(tm), 0);
    CHECK_EQ(sem_destroy(&hsem), 0);
    CHECK_EQ(sem_destroy(&hubs_done), 0);
}

static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
    {"mutex_timed", test_mutex_timed},
    {"mutex_robust", test_mutex_robust},
    {"rwlock_calls", test_rwlock_calls},
    {"rwlock_timed", test_rwlock_timed},
    {"rwlock_exclusion", test_rwlock_exclusion},
    {"rwlock_preference", test_rwlock_preference},
    {"barrier", test_barrier},
    {"sem_calls", test_sem_calls},
    {"sem_tokens", test_sem_tokens},
    {"sem_signal", test_sem_signal},
    {"spin", test_spin},
    {"plain", test_plain},
    {"hubs", test_hubs},
};

int main(int argc, char **argv)
{
    alarm(120); /* a hang fails */
    const char *which = argc > 1 ? argv[1] : "all";
    int ran = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (strcmp(which, "all") == 0 || strcmp(which, tests[i].name) == 0) {
            tests[i].fn();
            printf("ok %s\n", tests[i].name);
            ran++;
        }
    }
    return ran ? 0 : 2;
}
