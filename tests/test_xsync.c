/*
 * test_xsync.c — mutexes, semaphores and conditions between green threads of different
 * hubs (issue 14): OS threads of the test's own, each with its hub (a pthread's first
 * green call gives it one), and green threads on each. The same semantics as within one
 * hub: FIFO hand-off with no barging, EOWNERDEAD, deadlines, kills, scoped timeouts,
 * "done wins", and conditions that relock their mutex. Run under ThreadSanitizer too
 * (label tsan): the shared counters below are plain memory, ordered only by the objects.
 */
#include "green_test.h"
#include "../src/wait.h" /* the objects' queues, counted under their locks */

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define HUBS 4           /* OS threads with a hub each, besides the main one */
#define PER_HUB 4        /* green threads on each */
#define LOOPS (20000 / GREEN_TEST_SCALE > 200 ? 20000 / GREEN_TEST_SCALE : 200)

/* Entries queued on an object, counted under its lock (another hub may be adding). */
static int queued(green_waitq_t *q, int *lock)
{
    int n = 0;
    green__lock(lock);
    for (struct green_waiter *w = q->head; w; w = w->next)
        n++;
    green__unlock(lock);
    return n;
}

/* Let the hub run until n green threads (of any hub) are queued on the object. */
static void wait_queued(green_waitq_t *q, int *lock, int n)
{
    int64_t end = green_after(LATE_MS * 5);
    while (queued(q, lock) < n) {
        assert_true(green_now() < end);
        assert_int_equal(green_sleep(1), 0);
    }
}
#define WAIT_MUTEX_QUEUED(m, n) wait_queued(&(m)->q, &(m)->lock, (n))
#define WAIT_SEM_QUEUED(s, n) wait_queued(&(s)->q, &(s)->lock, (n))
#define WAIT_COND_QUEUED(c, n) wait_queued(&(c)->q, &(c)->lock, (n))

/* Run fn(arg) on `per` green threads of the calling OS thread's hub and join them; the
 * number of them that returned non-NULL. */
static long on_green_threads(green_fn fn, void *arg, int per)
{
    green_t g[PER_HUB * 4];
    long bad = 0;
    for (int i = 0; i < per; i++)
        if (!(g[i] = green_spawn(fn, arg)))
            return per;
    for (int i = 0; i < per; i++) {
        void *r = NULL;
        if (green_join(g[i], &r, -1) != 0 || r)
            bad++;
    }
    return bad;
}

/* ======================================================================== */
/*  Mutexes                                                                 */
/* ======================================================================== */

static struct {
    green_mutex_t m;
    long counter;
    long bad;
} X;

/* lock, read, (sometimes yield, holding it), write, unlock */
static void *count_under_mutex(void *arg)
{
    (void)arg;
    for (long i = 0; i < LOOPS; i++) {
        int r = (i % 5 == 4) ? green_mutex_trylock(&X.m) : -1;
        if (r != 0 && green_mutex_lock(&X.m, -1) != 0)
            return "lock";
        long v = X.counter;
        if (i % 16 == 0)
            green_yield(); /* the others on this hub queue behind the other hubs' */
        X.counter = v + 1;
        if (green_mutex_unlock(&X.m) != 0)
            return "unlock";
    }
    return NULL;
}

struct hub_job {
    green_fn fn;
    void *arg;
    int per;
    long bad;
};

static void *hub_thread(void *arg)
{
    struct hub_job *j = arg;
    j->bad = on_green_threads(j->fn, j->arg, j->per);
    return NULL;
}

/* Green threads of 5 hubs increment one counter under one mutex: not one increment lost. */
static void test_mutex_counter_across_hubs(void **state)
{
    (void)state;
    assert_int_equal(green_mutex_init(&X.m, GREEN_MUTEX_NORMAL), 0);
    X.counter = 0;
    pthread_t t[HUBS];
    struct hub_job j[HUBS];
    for (int i = 0; i < HUBS; i++) {
        j[i] = (struct hub_job){count_under_mutex, NULL, PER_HUB, 0};
        assert_int_equal(pthread_create(&t[i], NULL, hub_thread, &j[i]), 0);
    }
    long bad = on_green_threads(count_under_mutex, NULL, PER_HUB);
    for (int i = 0; i < HUBS; i++) {
        pthread_join(t[i], NULL);
        bad += j[i].bad;
    }
    assert_int_equal(bad, 0);
    assert_int_equal(X.counter, (long)(HUBS + 1) * PER_HUB * LOOPS);
    assert_int_equal(green_mutex_destroy(&X.m), 0);
    assert_hub_idle();
}

/* ---- FIFO across hubs ---- */

static struct {
    green_mutex_t m;
    int order[8];
    int n;
} F;

static void *lock_and_note(void *arg)
{
    int me = (int)(intptr_t)arg;
    if (green_mutex_lock(&F.m, -1) != 0)
        return "lock";
    F.order[F.n++] = me;
    return green_mutex_unlock(&F.m) == 0 ? NULL : "unlock";
}

static void *os_lock_and_note(void *arg)
{
    return lock_and_note(arg); /* the OS thread's root, on its own hub */
}

/* Waiters queue alternately from this hub's green threads and other OS threads' roots;
 * they get the mutex in that order, and the unlocking owner cannot take it back. */
static void test_mutex_fifo_across_hubs(void **state)
{
    (void)state;
    assert_int_equal(green_mutex_init(&F.m, GREEN_MUTEX_NORMAL), 0);
    F.n = 0;
    assert_int_equal(green_mutex_lock(&F.m, -1), 0);
    pthread_t t[3];
    green_t g[3];
    int nt = 0, ng = 0;
    for (int i = 0; i < 6; i++) {
        if (i % 2)
            assert_int_equal(pthread_create(&t[nt++], NULL, os_lock_and_note, (void *)(intptr_t)i), 0);
        else
            assert_non_null(g[ng++] = green_spawn(lock_and_note, (void *)(intptr_t)i));
        WAIT_MUTEX_QUEUED(&F.m, i + 1);
    }
    assert_int_equal(green_mutex_unlock(&F.m), 0);
    assert_fails_with(green_mutex_trylock(&F.m), EBUSY); /* handed to waiter 0 already */
    for (int i = 0; i < 3; i++) {
        void *r;
        assert_int_equal(green_join(g[i], &r, -1), 0);
        assert_null(r);
    }
    for (int i = 0; i < 3; i++) {
        void *r;
        pthread_join(t[i], &r);
        assert_null(r);
    }
    assert_int_equal(F.n, 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(F.order[i], i);
    assert_int_equal(green_mutex_destroy(&F.m), 0);
    assert_hub_idle();
}

/* ---- owners that die, on another hub ---- */

static struct {
    green_mutex_t m;
    green_event_t locked, go;
    int r;
} D;

/* On another hub: lock, say so, wait for "go", return holding the mutex. */
static void *lock_and_finish(void *arg)
{
    (void)arg;
    if (green_mutex_lock(&D.m, -1) != 0)
        return "lock";
    green_event_set(&D.locked);
    return green_event_wait(&D.go, -1) == 0 ? NULL : "wait";
}

static void *os_green_lock_and_finish(void *arg)
{
    return (void *)on_green_threads(lock_and_finish, arg, 1);
}

/* The OS thread's root locks, and the thread exits holding it (once told to, if arg). */
static void *os_root_lock_and_exit(void *arg)
{
    if (green_mutex_lock(&D.m, -1) != 0)
        return "lock";
    if (arg) {
        green_event_set(&D.locked);
        if (green_event_wait(&D.go, -1) != 0)
            return "wait";
    }
    return NULL;
}

static void *lock_expect_ownerdead(void *arg)
{
    (void)arg;
    errno = 0;
    D.r = green_mutex_lock(&D.m, -1) == -1 ? errno : 0;
    return green_mutex_unlock(&D.m) == 0 ? NULL : "unlock";
}

static void test_mutex_owner_dead_across_hubs(void **state)
{
    (void)state;
    assert_int_equal(green_mutex_init(&D.m, GREEN_MUTEX_NORMAL), 0);
    green_event_init(&D.locked);
    green_event_init(&D.go);
    /* a waiter on this hub while the owner (another hub's green thread) returns */
    pthread_t t;
    void *r;
    assert_int_equal(pthread_create(&t, NULL, os_green_lock_and_finish, NULL), 0);
    assert_int_equal(green_event_wait(&D.locked, -1), 0);
    green_t w = green_spawn(lock_expect_ownerdead, NULL);
    assert_non_null(w);
    WAIT_MUTEX_QUEUED(&D.m, 1);
    green_event_set(&D.go);
    assert_int_equal(green_join(w, &r, -1), 0);
    assert_null(r);
    assert_int_equal(D.r, EOWNERDEAD);
    pthread_join(t, &r);
    assert_null(r);

    /* no waiter: the next lock, from here, hears of it */
    green_event_clear(&D.locked);
    green_event_clear(&D.go);
    assert_int_equal(pthread_create(&t, NULL, os_green_lock_and_finish, NULL), 0);
    assert_int_equal(green_event_wait(&D.locked, -1), 0);
    green_event_set(&D.go);
    pthread_join(t, &r);
    assert_null(r);
    assert_fails_with(green_mutex_lock(&D.m, -1), EOWNERDEAD);
    assert_int_equal(green_mutex_unlock(&D.m), 0);

    /* an OS thread that exits holding it (its root): found gone by the next lock */
    assert_int_equal(pthread_create(&t, NULL, os_root_lock_and_exit, NULL), 0);
    pthread_join(t, &r);
    assert_null(r);
    assert_fails_with(green_mutex_trylock(&D.m), EOWNERDEAD);
    assert_int_equal(green_mutex_unlock(&D.m), 0);
    assert_int_equal(green_mutex_lock(&D.m, -1), 0); /* an ordinary mutex again */
    assert_int_equal(green_mutex_unlock(&D.m), 0);

    /* the same with a waiter queued here: its hub's end hands the mutex over */
    green_event_clear(&D.locked);
    green_event_clear(&D.go);
    D.r = -1;
    assert_int_equal(pthread_create(&t, NULL, os_root_lock_and_exit, (void *)1), 0);
    assert_int_equal(green_event_wait(&D.locked, -1), 0);
    w = green_spawn(lock_expect_ownerdead, NULL);
    assert_non_null(w);
    WAIT_MUTEX_QUEUED(&D.m, 1);
    green_event_set(&D.go);
    assert_int_equal(green_join(w, &r, -1), 0);
    assert_null(r);
    assert_int_equal(D.r, EOWNERDEAD);
    pthread_join(t, &r);
    assert_null(r);

    assert_int_equal(green_mutex_destroy(&D.m), 0);
    assert_int_equal(green_event_destroy(&D.locked), 0);
    assert_int_equal(green_event_destroy(&D.go), 0);
    assert_hub_idle();
}

/* ---- deadlines, kills and scoped timeouts of waiters whose owner is on another hub ---- */

static struct {
    green_mutex_t m;
    green_event_t locked, unlock;
    int handed;              /* the owner has unlocked (atomic) */
    int err[4];
} K;

/* Another hub's root: lock, say so, wait for "unlock", unlock, say so. */
static void *os_owner(void *arg)
{
    (void)arg;
    if (green_mutex_lock(&K.m, -1) != 0)
        return "lock";
    green_event_set(&K.locked);
    if (green_event_wait(&K.unlock, -1) != 0)
        return "wait";
    if (green_mutex_unlock(&K.m) != 0)
        return "unlock";
    __atomic_store_n(&K.handed, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void *lock_until(void *arg)
{
    int k = (int)(intptr_t)arg;
    errno = 0;
    int r = green_mutex_lock(&K.m, k == 0 ? green_after(20) : -1);
    K.err[k] = r ? errno : 0;
    if (r == 0 && green_mutex_unlock(&K.m) != 0)
        return "unlock";
    return NULL;
}

static void *lock_in_scope(void *arg)
{
    int k = (int)(intptr_t)arg;
    if (green_timeout_push(20) != 0)
        return "push";
    errno = 0;
    K.err[k] = green_mutex_lock(&K.m, -1) ? errno : 0;
    return green_timeout_pop() == 0 ? NULL : "pop";
}

/* Keeps the mutex it was handed even though it was killed before it ran. */
static void *lock_then_check_kill(void *arg)
{
    int k = (int)(intptr_t)arg;
    errno = 0;
    K.err[k] = green_mutex_lock(&K.m, -1) ? errno : 0;
    if (K.err[k] == 0 && green_mutex_unlock(&K.m) != 0)
        return "unlock";
    return green_yield() == -1 && errno == ECANCELED ? NULL : "kill lost";
}

static void test_mutex_deadline_kill_across_hubs(void **state)
{
    (void)state;
    assert_int_equal(green_mutex_init(&K.m, GREEN_MUTEX_NORMAL), 0);
    green_event_init(&K.locked);
    green_event_init(&K.unlock);
    K.handed = 0;
    memset(K.err, -1, sizeof K.err);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, os_owner, NULL), 0);
    assert_int_equal(green_event_wait(&K.locked, -1), 0);

    /* a deadline, a kill, a scoped timeout: each gives up, the owner keeps it */
    green_t a = green_spawn(lock_until, (void *)0);
    green_t b = green_spawn(lock_until, (void *)1);
    green_t c = green_spawn(lock_in_scope, (void *)2);
    assert_int_equal(green_yield(), 0); /* each ran until it queued */
    assert_int_equal(queued(&K.m.q, &K.m.lock), 3);
    assert_int_equal(green_kill(b), 0);
    void *r;
    assert_int_equal(green_join(a, &r, -1), 0);
    assert_null(r);
    assert_int_equal(green_join(b, &r, -1), 0);
    assert_null(r);
    assert_int_equal(green_join(c, &r, -1), 0);
    assert_null(r);
    assert_int_equal(K.err[0], ETIMEDOUT);
    assert_int_equal(K.err[1], ECANCELED);
    assert_int_equal(K.err[2], ETIMEDOUT);
    assert_fails_with(green_mutex_trylock(&K.m), EBUSY);
    assert_int_equal(queued(&K.m.q, &K.m.lock), 0);

    /* done wins: handed over by the other hub, then killed before it ran */
    green_t d = green_spawn(lock_then_check_kill, (void *)3);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(queued(&K.m.q, &K.m.lock), 1);
    green_event_set(&K.unlock);
    int64_t end = green_after(LATE_MS * 5);
    while (!__atomic_load_n(&K.handed, __ATOMIC_ACQUIRE)) /* without running this hub */
        assert_true(green_now() < end);
    assert_int_equal(green_kill(d), 0);
    assert_int_equal(green_join(d, &r, -1), 0);
    assert_null(r);
    assert_int_equal(K.err[3], 0);
    pthread_join(t, &r);
    assert_null(r);

    assert_int_equal(green_mutex_lock(&K.m, -1), 0); /* free, nobody waits */
    assert_int_equal(green_mutex_unlock(&K.m), 0);
    assert_int_equal(green_mutex_destroy(&K.m), 0);
    assert_int_equal(green_event_destroy(&K.locked), 0);
    assert_int_equal(green_event_destroy(&K.unlock), 0);
    assert_hub_idle();
}

/* A root waiting for a mutex that another hub's green thread holds is no deadlock, even
 * with nothing else on its hub: it waits for the unlock. */
static void *os_hold_a_while(void *arg)
{
    (void)arg;
    if (green_mutex_lock(&K.m, -1) != 0)
        return "lock";
    green_event_set(&K.locked);
    green_sleep(30);
    return green_mutex_unlock(&K.m) == 0 ? NULL : "unlock";
}

static void test_mutex_root_waits_for_other_hub(void **state)
{
    (void)state;
    assert_int_equal(green_mutex_init(&K.m, GREEN_MUTEX_NORMAL), 0);
    green_event_init(&K.locked);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, os_hold_a_while, NULL), 0);
    assert_int_equal(green_event_wait(&K.locked, -1), 0);
    assert_int_equal(green_mutex_lock(&K.m, -1), 0);
    assert_int_equal(green_mutex_unlock(&K.m), 0);
    void *r;
    pthread_join(t, &r);
    assert_null(r);
    assert_int_equal(green_mutex_destroy(&K.m), 0);
    assert_int_equal(green_event_destroy(&K.locked), 0);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Semaphores                                                              */
/* ======================================================================== */

static struct {
    green_sem_t s, done;
    long taken;              /* atomic */
    int order[8];
    int n;
    green_mutex_t m;         /* guards order */
} S;

static void *sem_take(void *arg)
{
    (void)arg;
    for (long i = 0; i < LOOPS; i++) {
        if (green_sem_acquire(&S.s, -1) != 0)
            return "acquire";
        __atomic_fetch_add(&S.taken, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void *sem_give(void *arg)
{
    (void)arg;
    for (long i = 0; i < LOOPS; i++) {
        if (green_sem_release(&S.s) != 0)
            return "release";
        if (i % 8 == 0)
            green_yield();
    }
    return NULL;
}

/* A plain pthread: releases without ever waiting (it may never need a hub's loop). */
static void *pthread_give(void *arg)
{
    return sem_give(arg);
}

/* Consumers on this hub and another, producers on a third and on a plain pthread:
 * every permit taken once. */
static void test_sem_across_hubs(void **state)
{
    (void)state;
    assert_int_equal(green_sem_init(&S.s, 0), 0);
    S.taken = 0;
    pthread_t t[4];
    void *r[4];
    struct hub_job take = {sem_take, NULL, 2, 0}, give = {sem_give, NULL, 2, 0};
    assert_int_equal(pthread_create(&t[0], NULL, hub_thread, &take), 0);
    assert_int_equal(pthread_create(&t[1], NULL, hub_thread, &give), 0);
    for (int i = 2; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, pthread_give, NULL), 0);
    long bad = on_green_threads(sem_take, NULL, 2); /* 4 consumers, 4 producers */
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], &r[i]);
    assert_int_equal(bad + take.bad + give.bad, 0);
    assert_null(r[2]);
    assert_null(r[3]);
    assert_int_equal(S.taken, 4 * LOOPS);
    assert_int_equal(green_sem_value(&S.s), 0);
    for (long i = 0; i < 3; i++) /* nobody waits: permits */
        assert_int_equal(green_sem_release(&S.s), 0);
    assert_int_equal(green_sem_value(&S.s), 3);
    for (long i = 0; i < 3; i++)
        assert_int_equal(green_sem_acquire(&S.s, 0), 0);
    assert_int_equal(green_sem_destroy(&S.s), 0);
    assert_hub_idle();
}

static void *sem_wait_and_note(void *arg)
{
    int me = (int)(intptr_t)arg;
    if (green_sem_acquire(&S.s, -1) != 0)
        return "acquire";
    if (green_mutex_lock(&S.m, -1) != 0)
        return "lock";
    S.order[S.n++] = me;
    if (green_mutex_unlock(&S.m) != 0)
        return "unlock";
    return green_sem_release(&S.done) == 0 ? NULL : "release";
}

/* One permit at a time, each once the waiter it went to has noted itself. */
static void *os_release_n(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++)
        if (green_sem_release(&S.s) != 0 || green_sem_acquire(&S.done, -1) != 0)
            return "release";
    return NULL;
}

/* Waiters from two hubs get the permits in the order they queued, released from a third
 * OS thread; a deadline and a kill leave the count as it was. */
static void test_sem_fifo_deadline_kill_across_hubs(void **state)
{
    (void)state;
    assert_int_equal(green_sem_init(&S.s, 0), 0);
    assert_int_equal(green_sem_init(&S.done, 0), 0);
    assert_int_equal(green_mutex_init(&S.m, GREEN_MUTEX_NORMAL), 0);
    S.n = 0;
    pthread_t t[2];
    green_t g[2];
    for (int i = 0; i < 4; i++) {
        if (i % 2)
            assert_int_equal(pthread_create(&t[i / 2], NULL, sem_wait_and_note, (void *)(intptr_t)i), 0);
        else
            assert_non_null(g[i / 2] = green_spawn(sem_wait_and_note, (void *)(intptr_t)i));
        WAIT_SEM_QUEUED(&S.s, i + 1);
    }
    assert_int_equal(green_sem_value(&S.s), 0);
    pthread_t rel;
    assert_int_equal(pthread_create(&rel, NULL, os_release_n, (void *)(intptr_t)4), 0);
    void *r;
    for (int i = 0; i < 2; i++) { /* this hub runs meanwhile */
        assert_int_equal(green_join(g[i], &r, -1), 0);
        assert_null(r);
    }
    pthread_join(rel, &r);
    assert_null(r);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], &r);
        assert_null(r);
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(S.order[i], i);

    /* a waiter here times out, one is killed, while another hub waits too */
    assert_int_equal(pthread_create(&t[0], NULL, sem_wait_and_note, (void *)(intptr_t)9), 0);
    WAIT_SEM_QUEUED(&S.s, 1);
    assert_fails_with(green_sem_acquire(&S.s, green_after(10)), ETIMEDOUT);
    green_t k = green_spawn(sem_take, NULL);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(queued(&S.s.q, &S.s.lock), 2);
    assert_int_equal(green_kill(k), 0);
    assert_int_equal(green_join(k, &r, -1), 0);
    assert_non_null(r); /* its acquire failed */
    assert_int_equal(green_sem_value(&S.s), 0);
    assert_int_equal(green_sem_release(&S.s), 0); /* to the other hub's waiter */
    pthread_join(t[0], &r);
    assert_null(r);
    assert_int_equal(green_sem_value(&S.s), 0);
    assert_fails_with(green_sem_acquire(&S.s, 0), ETIMEDOUT);
    assert_int_equal(green_sem_release(&S.s), 0); /* nobody waits: a permit */
    assert_int_equal(green_sem_value(&S.s), 1);
    assert_int_equal(green_sem_acquire(&S.s, 0), 0);

    assert_int_equal(green_sem_destroy(&S.s), 0);
    while (green_sem_acquire(&S.done, 0) == 0)
        ;
    assert_int_equal(green_sem_destroy(&S.done), 0);
    assert_int_equal(green_mutex_destroy(&S.m), 0);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Conditions                                                              */
/* ======================================================================== */

static struct {
    green_mutex_t m;
    green_cond_t c;
    int ready;               /* under m */
    int woken;               /* under m */
    int relocked_ok;         /* under m: waits that returned holding m */
    int err[8];
    long buf[4];             /* bounded buffer, under m */
    long head, count, sum;
    green_cond_t not_full, not_empty;
} C;

static void *cond_waiter(void *arg)
{
    int k = (int)(intptr_t)arg;
    if (green_mutex_lock(&C.m, -1) != 0)
        return "lock";
    int r = 0;
    while (!C.ready && r == 0)
        r = green_cond_wait(&C.c, &C.m, -1);
    C.err[k] = r ? errno : 0;
    C.woken++;
    /* holding it again: unlocking works, and nobody else is inside */
    return green_mutex_unlock(&C.m) == 0 ? NULL : "not relocked";
}

static void *os_cond_waiters(void *arg)
{
    return (void *)on_green_threads(cond_waiter, arg, 2);
}

static void *os_signal(void *arg)
{
    int broadcast = (int)(intptr_t)arg;
    if (green_mutex_lock(&C.m, -1) != 0)
        return "lock";
    C.ready = 1;
    int r = broadcast ? green_cond_broadcast(&C.c) : green_cond_signal(&C.c);
    if (green_mutex_unlock(&C.m) != 0)
        return "unlock";
    return r == 0 ? NULL : "signal";
}

/* Waiters on this hub and another; a signal, then a broadcast, from a third. */
static void test_cond_across_hubs(void **state)
{
    (void)state;
    assert_int_equal(green_mutex_init(&C.m, GREEN_MUTEX_NORMAL), 0);
    assert_int_equal(green_cond_init(&C.c), 0);
    C.ready = C.woken = 0;
    memset(C.err, -1, sizeof C.err);

    /* one waiter here, a signal from another hub */
    green_t g = green_spawn(cond_waiter, (void *)0);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(queued(&C.c.q, &C.c.lock), 1);
    pthread_t s;
    void *r;
    assert_int_equal(pthread_create(&s, NULL, os_signal, (void *)0), 0);
    assert_int_equal(green_join(g, &r, -1), 0);
    assert_null(r);
    pthread_join(s, &r);
    assert_null(r);
    assert_int_equal(C.err[0], 0);

    /* three here, two on another hub, a broadcast from a third */
    C.ready = 0;
    C.woken = 0;
    green_t w[3];
    for (int i = 0; i < 3; i++)
        assert_non_null(w[i] = green_spawn(cond_waiter, (void *)(intptr_t)(1 + i)));
    pthread_t o;
    assert_int_equal(pthread_create(&o, NULL, os_cond_waiters, (void *)4), 0);
    WAIT_COND_QUEUED(&C.c, 5);
    assert_int_equal(pthread_create(&s, NULL, os_signal, (void *)1), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(green_join(w[i], &r, -1), 0);
        assert_null(r);
    }
    pthread_join(o, &r);
    assert_null(r);
    pthread_join(s, &r);
    assert_null(r);
    assert_int_equal(C.woken, 5);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(C.err[i], 0);
    assert_int_equal(C.err[4], 0); /* the other hub's two both wrote slot 4 */
    assert_int_equal(green_cond_destroy(&C.c), 0);
    assert_int_equal(green_mutex_destroy(&C.m), 0);
    assert_hub_idle();
}

/* Waits that end by a signal, a kill and a deadline all relock the mutex, which another
 * hub holds meanwhile: each returns only once that hub has unlocked, holding it. */
static struct {
    green_event_t locked, release;
    int timed_out_done;      /* atomic: the deadline's waiter has returned */
} CH;

static void *os_take_mutex_until_told(void *arg)
{
    (void)arg;
    if (green_mutex_lock(&C.m, -1) != 0)
        return "lock";
    green_event_set(&CH.locked);
    if (green_event_wait(&CH.release, -1) != 0)
        return "wait";
    return green_mutex_unlock(&C.m) == 0 ? NULL : "unlock";
}

static void *cond_wait_once(void *arg)
{
    int k = (int)(intptr_t)arg;
    if (green_mutex_lock(&C.m, -1) != 0)
        return "lock";
    errno = 0;
    C.err[k] = green_cond_wait(&C.c, &C.m, k == 2 ? green_after(100) : -1) ? errno : 0;
    C.relocked_ok++;
    void *r = green_mutex_unlock(&C.m) == 0 ? NULL : "not relocked";
    if (k == 2)
        __atomic_store_n(&CH.timed_out_done, 1, __ATOMIC_RELEASE);
    return r;
}

static void test_cond_relock_across_hubs(void **state)
{
    (void)state;
    assert_int_equal(green_mutex_init(&C.m, GREEN_MUTEX_NORMAL), 0);
    assert_int_equal(green_cond_init(&C.c), 0);
    green_event_init(&CH.locked);
    green_event_init(&CH.release);
    CH.timed_out_done = 0;
    C.relocked_ok = 0;
    memset(C.err, -1, sizeof C.err);
    green_t g[3];
    for (int i = 0; i < 3; i++) /* signalled, killed, timed out */
        assert_non_null(g[i] = green_spawn(cond_wait_once, (void *)(intptr_t)i));
    assert_int_equal(green_yield(), 0);
    assert_int_equal(queued(&C.c.q, &C.c.lock), 3);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, os_take_mutex_until_told, NULL), 0);
    assert_int_equal(green_event_wait(&CH.locked, -1), 0);
    assert_int_equal(green_cond_signal(&C.c), 0);
    assert_int_equal(green_kill(g[1]), 0);
    WAIT_MUTEX_QUEUED(&C.m, 2); /* relocking, behind the other hub */
    /* the deadline's waiter too, unless it was over before the other hub locked */
    int64_t end = green_after(LATE_MS * 5);
    while (queued(&C.m.q, &C.m.lock) < 3 && !__atomic_load_n(&CH.timed_out_done, __ATOMIC_ACQUIRE)) {
        assert_true(green_now() < end);
        assert_int_equal(green_sleep(1), 0);
    }
    assert_int_equal(C.relocked_ok, 0 + __atomic_load_n(&CH.timed_out_done, __ATOMIC_ACQUIRE));
    green_event_set(&CH.release);
    void *r;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(green_join(g[i], &r, -1), 0);
        assert_null(r);
    }
    pthread_join(t, &r);
    assert_null(r);
    assert_int_equal(C.err[0], 0);
    assert_int_equal(C.err[1], ECANCELED);
    assert_int_equal(C.err[2], ETIMEDOUT);
    assert_int_equal(C.relocked_ok, 3);
    assert_int_equal(green_cond_destroy(&C.c), 0);
    assert_int_equal(green_mutex_destroy(&C.m), 0);
    assert_int_equal(green_event_destroy(&CH.locked), 0);
    assert_int_equal(green_event_destroy(&CH.release), 0);
    assert_hub_idle();
}

/* The classic bounded buffer, its producers and consumers on three hubs. */
static void *bb_produce(void *arg)
{
    (void)arg;
    for (long i = 1; i <= LOOPS; i++) {
        if (green_mutex_lock(&C.m, -1) != 0)
            return "lock";
        while (C.count == 4)
            if (green_cond_wait(&C.not_full, &C.m, -1) != 0)
                return "wait";
        C.buf[(C.head + C.count++) % 4] = i;
        green_cond_signal(&C.not_empty);
        if (green_mutex_unlock(&C.m) != 0)
            return "unlock";
    }
    return NULL;
}

static void *bb_consume(void *arg)
{
    (void)arg;
    for (long i = 0; i < LOOPS; i++) {
        if (green_mutex_lock(&C.m, -1) != 0)
            return "lock";
        while (C.count == 0)
            if (green_cond_wait(&C.not_empty, &C.m, -1) != 0)
                return "wait";
        C.sum += C.buf[C.head];
        C.head = (C.head + 1) % 4;
        C.count--;
        green_cond_signal(&C.not_full);
        if (green_mutex_unlock(&C.m) != 0)
            return "unlock";
    }
    return NULL;
}

static void test_cond_bounded_buffer_across_hubs(void **state)
{
    (void)state;
    assert_int_equal(green_mutex_init(&C.m, GREEN_MUTEX_NORMAL), 0);
    assert_int_equal(green_cond_init(&C.not_full), 0);
    assert_int_equal(green_cond_init(&C.not_empty), 0);
    C.head = C.count = C.sum = 0;
    pthread_t t[2];
    struct hub_job p = {bb_produce, NULL, 2, 0}, c = {bb_consume, NULL, 1, 0};
    assert_int_equal(pthread_create(&t[0], NULL, hub_thread, &p), 0);
    assert_int_equal(pthread_create(&t[1], NULL, hub_thread, &c), 0);
    long bad = on_green_threads(bb_consume, NULL, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(bad + p.bad + c.bad, 0);
    assert_int_equal(C.count, 0);
    assert_int_equal(C.sum, 2 * ((long)LOOPS * (LOOPS + 1) / 2));
    assert_int_equal(green_cond_destroy(&C.not_full), 0);
    assert_int_equal(green_cond_destroy(&C.not_empty), 0);
    assert_int_equal(green_mutex_destroy(&C.m), 0);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Recursive mutexes, bounded semaphores, calls from hubless threads        */
/* ======================================================================== */

static struct {
    green_mutex_t m;
    green_sem_t s;
    green_cond_t c;
    int got, err;
} R;

static void *os_lock_once(void *arg)
{
    (void)arg;
    errno = 0;
    R.err = green_mutex_lock(&R.m, -1) ? errno : 0;
    R.got = 1;
    return green_mutex_unlock(&R.m) == 0 ? NULL : "unlock";
}

static void *os_acquire_once(void *arg)
{
    (void)arg;
    return green_sem_acquire(&R.s, -1) == 0 ? NULL : "acquire";
}

/* A plain pthread that never gets a hub: broadcasts and releases need none. */
static void *hubless_broadcast(void *arg)
{
    (void)arg;
    return green_cond_broadcast(&R.c) == 0 && green_sem_release(&R.s) == 0 ? NULL : "call";
}

static void *cond_wait_for_broadcast(void *arg)
{
    (void)arg;
    if (green_mutex_lock(&R.m, -1) != 0)
        return "lock";
    int r = green_cond_wait(&R.c, &R.m, -1);
    R.got++;
    if (green_mutex_unlock(&R.m) != 0)
        return "unlock";
    return r == 0 ? NULL : "wait";
}

static void test_recursive_bounded_hubless(void **state)
{
    (void)state;
    void *r;
    pthread_t t;
    /* another hub waits while the owner relocks; only the last unlock hands it over */
    assert_int_equal(green_mutex_init(&R.m, GREEN_MUTEX_RECURSIVE), 0);
    R.got = 0;
    R.err = -1;
    assert_int_equal(green_mutex_lock(&R.m, -1), 0);
    assert_int_equal(green_mutex_lock(&R.m, -1), 0);
    assert_int_equal(pthread_create(&t, NULL, os_lock_once, NULL), 0);
    WAIT_MUTEX_QUEUED(&R.m, 1);
    assert_int_equal(green_mutex_trylock(&R.m), 0); /* depth 3 */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(green_mutex_unlock(&R.m), 0);
        assert_int_equal(queued(&R.m.q, &R.m.lock), 1); /* still ours */
    }
    assert_int_equal(green_mutex_unlock(&R.m), 0);
    assert_fails_with(green_mutex_unlock(&R.m), EPERM); /* the other hub's now */
    pthread_join(t, &r);
    assert_null(r);
    assert_int_equal(R.got, 1);
    assert_int_equal(R.err, 0);
    assert_int_equal(green_mutex_destroy(&R.m), 0);

    /* a bounded semaphore: a permit handed to another hub's waiter counts as a release */
    assert_int_equal(green_sem_init_bounded(&R.s, 0, 1), 0);
    assert_int_equal(pthread_create(&t, NULL, os_acquire_once, NULL), 0);
    WAIT_SEM_QUEUED(&R.s, 1);
    assert_int_equal(green_sem_release(&R.s), 0);   /* to the waiter */
    assert_int_equal(green_sem_release(&R.s), 0);   /* a permit */
    assert_fails_with(green_sem_release(&R.s), EOVERFLOW);
    pthread_join(t, &r);
    assert_null(r);
    assert_int_equal(green_sem_value(&R.s), 1);
    assert_int_equal(green_sem_acquire(&R.s, 0), 0);

    /* a thread without a hub broadcasts to waiters here and releases a permit */
    assert_int_equal(green_mutex_init(&R.m, GREEN_MUTEX_NORMAL), 0);
    assert_int_equal(green_cond_init(&R.c), 0);
    R.got = 0;
    green_t g[2];
    for (int i = 0; i < 2; i++)
        assert_non_null(g[i] = green_spawn(cond_wait_for_broadcast, NULL));
    assert_int_equal(green_yield(), 0);
    assert_int_equal(queued(&R.c.q, &R.c.lock), 2);
    assert_int_equal(pthread_create(&t, NULL, hubless_broadcast, NULL), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(green_join(g[i], &r, -1), 0);
        assert_null(r);
    }
    pthread_join(t, &r);
    assert_null(r);
    assert_int_equal(R.got, 2);
    assert_int_equal(green_sem_acquire(&R.s, -1), 0);
    assert_int_equal(green_sem_destroy(&R.s), 0);
    assert_int_equal(green_cond_destroy(&R.c), 0);
    assert_int_equal(green_mutex_destroy(&R.m), 0);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Stress: deadlines, polls and yields from several hubs at once           */
/* ======================================================================== */

static struct {
    green_mutex_t m;
    green_sem_t s;
    int inside;              /* under m: 0 or 1 */
    int in_sem;              /* atomic: green threads holding a permit */
    long locked, timed_out;  /* atomic */
    int bad;                 /* atomic */
} ST;

enum { ST_PERMITS = 2 };

static void *stress_worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (long i = 0; i < LOOPS / 4; i++) {
        unsigned k = (unsigned)rand_r(&seed) % 8;
        int r;
        errno = 0;
        if (k == 0)
            r = green_mutex_trylock(&ST.m);
        else if (k < 4)
            r = green_mutex_lock(&ST.m, green_after((int64_t)(k - 1)));
        else
            r = green_mutex_lock(&ST.m, -1);
        if (r == 0) {
            if (ST.inside++ != 0)
                __atomic_store_n(&ST.bad, 1, __ATOMIC_RELAXED);
            if (k & 1)
                green_yield();
            ST.inside--;
            if (green_mutex_unlock(&ST.m) != 0)
                __atomic_store_n(&ST.bad, 2, __ATOMIC_RELAXED);
            __atomic_fetch_add(&ST.locked, 1, __ATOMIC_RELAXED);
        } else if (errno == ETIMEDOUT || errno == EBUSY) {
            __atomic_fetch_add(&ST.timed_out, 1, __ATOMIC_RELAXED);
        } else {
            __atomic_store_n(&ST.bad, 3, __ATOMIC_RELAXED);
        }
        errno = 0;
        r = green_sem_acquire(&ST.s, k < 3 ? green_after((int64_t)k) : -1);
        if (r == 0) {
            if (__atomic_add_fetch(&ST.in_sem, 1, __ATOMIC_RELAXED) > ST_PERMITS)
                __atomic_store_n(&ST.bad, 4, __ATOMIC_RELAXED);
            if (k & 2)
                green_yield();
            __atomic_sub_fetch(&ST.in_sem, 1, __ATOMIC_RELAXED);
            if (green_sem_release(&ST.s) != 0)
                __atomic_store_n(&ST.bad, 5, __ATOMIC_RELAXED);
        } else if (errno != ETIMEDOUT) {
            __atomic_store_n(&ST.bad, 6, __ATOMIC_RELAXED);
        }
    }
    return NULL;
}

static void *stress_hub(void *arg)
{
    green_t g[3];
    for (int i = 0; i < 3; i++)
        if (!(g[i] = green_spawn(stress_worker, (void *)((uintptr_t)arg * 16 + (uintptr_t)i + 1))))
            return "spawn";
    for (int i = 0; i < 3; i++)
        if (green_join(g[i], NULL, -1) != 0)
            return "join";
    return NULL;
}

/* Mutual exclusion and the permit count hold whatever mix of deadlines, polls, yields
 * and hubs; nothing is left queued, the mutex is free, the permits are all back. */
static void test_stress_across_hubs(void **state)
{
    (void)state;
    assert_int_equal(green_mutex_init(&ST.m, GREEN_MUTEX_NORMAL), 0);
    assert_int_equal(green_sem_init(&ST.s, ST_PERMITS), 0);
    ST.inside = ST.in_sem = ST.bad = 0;
    ST.locked = ST.timed_out = 0;
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, stress_hub, (void *)(uintptr_t)(i + 1)), 0);
    void *r = stress_hub((void *)0);
    assert_null(r);
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], &r);
        assert_null(r);
    }
    assert_int_equal(ST.bad, 0);
    assert_int_equal(ST.locked + ST.timed_out, 12L * (LOOPS / 4));
    assert_int_equal(queued(&ST.m.q, &ST.m.lock), 0);
    assert_int_equal(queued(&ST.s.q, &ST.s.lock), 0);
    assert_int_equal(green_sem_value(&ST.s), ST_PERMITS);
    assert_int_equal(green_mutex_trylock(&ST.m), 0);
    assert_int_equal(green_mutex_unlock(&ST.m), 0);
    assert_int_equal(green_mutex_destroy(&ST.m), 0);
    assert_int_equal(green_sem_destroy(&ST.s), 0);
    assert_hub_idle();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mutex_counter_across_hubs),
        cmocka_unit_test(test_mutex_fifo_across_hubs),
        cmocka_unit_test(test_mutex_owner_dead_across_hubs),
        cmocka_unit_test(test_mutex_deadline_kill_across_hubs),
        cmocka_unit_test(test_mutex_root_waits_for_other_hub),
        cmocka_unit_test(test_sem_across_hubs),
        cmocka_unit_test(test_sem_fifo_deadline_kill_across_hubs),
        cmocka_unit_test(test_cond_across_hubs),
        cmocka_unit_test(test_cond_relock_across_hubs),
        cmocka_unit_test(test_cond_bounded_buffer_across_hubs),
        cmocka_unit_test(test_recursive_bounded_hubless),
        cmocka_unit_test(test_stress_across_hubs),
    };
    return cmocka_run_group_tests_name("xsync", tests, NULL, NULL);
}
