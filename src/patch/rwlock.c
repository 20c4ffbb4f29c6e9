/*
 * rwlock.c — pthread read-write locks as green ones (GREEN_PATCH_THREADS=1).
 *
 * glibc's rwlock packs phases, counts and waiter bits into words a green thread cannot
 * share without sleeping on futexes, so green threads keep their own state in the
 * rwlock's bytes that glibc never writes (it keeps them for its ABI): __pad3 the state
 * word (RW_WRITER, or the count of readers), __pad4 the writers waiting, __pad2 the
 * writer's handle. pthread_rwlock_init and the static initializers are glibc's (they
 * clear those bytes and set __flags, the kind); destroy is glibc's too (EBUSY first while
 * green threads hold or wait). So one rwlock used by green threads and by plain threads
 * is not supported — each kind excludes only its own — but neither can corrupt the
 * other's state.
 *
 * Semantics are glibc's: the default kind (PTHREAD_RWLOCK_PREFER_READER_NP, and
 * PREFER_WRITER_NP, which glibc treats alike) lets a reader in whenever no writer holds
 * the lock, even while writers wait (so recursive read locks never deadlock, and
 * readers can starve writers); PREFER_WRITER_NONRECURSIVE_NP keeps new readers out while
 * a writer waits. A read or write lock by the thread that holds the write lock gives
 * EDEADLK (the try forms EBUSY); too many readers EAGAIN; unlocking a lock the caller
 * does not hold EPERM. Waits queue on the rwlock (queue.c): a releaser hands the lock to
 * the first waiting writer, or to every waiting reader, whichever the kind prefers.
 * Neither kills nor green_timeout_push scopes end a wait (no cancellation point); the
 * timed forms fail with ETIMEDOUT at their own time, EINVAL for a bad clock or time.
 */
#include "thread.h"

#define RW_WRITER 0x80000000u
#define RW_READERS 0x3fffffffu

static unsigned *state(pthread_rwlock_t *l) { return &l->__data.__pad3; }
static unsigned *writers_waiting(pthread_rwlock_t *l) { return &l->__data.__pad4; }
static green_t writer(pthread_rwlock_t *l)
{
    return (green_t)__atomic_load_n(&l->__data.__pad2, __ATOMIC_RELAXED);
}
static void set_writer(pthread_rwlock_t *l, green_t g)
{
    __atomic_store_n(&l->__data.__pad2, (unsigned long)g, __ATOMIC_RELAXED);
}
static int prefer_writers(pthread_rwlock_t *l)
{
    return l->__data.__flags == PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP;
}

/* Add a reader unless a writer holds l: 0, EBUSY, or EAGAIN (too many readers). */
static int add_reader(pthread_rwlock_t *l)
{
    unsigned s = __atomic_load_n(state(l), __ATOMIC_RELAXED);
    do {
        if (s & RW_WRITER)
            return EBUSY;
        if ((s & RW_READERS) == RW_READERS)
            return EAGAIN;
    } while (!__atomic_compare_exchange_n(state(l), &s, s + 1, 1, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED));
    return 0;
}

static int try_read(pthread_rwlock_t *l)
{
    if (prefer_writers(l) && __atomic_load_n(writers_waiting(l), __ATOMIC_RELAXED))
        return EBUSY;
    return add_reader(l);
}

static int try_write(pthread_rwlock_t *l, green_t g)
{
    unsigned s = 0;
    if (!__atomic_compare_exchange_n(state(l), &s, RW_WRITER, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return EBUSY;
    set_writer(l, g);
    return 0;
}

/* The first waiter of l wanting kind, or NULL. */
static struct pwait *first_of(pthread_rwlock_t *l, int kind)
{
    struct pwait *w = pq_first(l);
    while (w && w->kind != kind)
        w = w->next;
    return w;
}

/* Let every waiting reader in, while no writer holds l. */
static void serve_readers(pthread_rwlock_t *l)
{
    for (struct pwait *w = pq_first(l), *next; w; w = next) {
        next = w->next;
        if (w->kind == PQ_READ && add_reader(l) == 0) {
            pq_remove(w);
            pq_wake(w, 0);
        }
    }
}

/* l has just been left free: hand it to the first waiting writer, or to every waiting
 * reader, whichever the kind prefers. */
static void pass_on(pthread_rwlock_t *l)
{
    struct pwait *w = first_of(l, PQ_WRITE);
    if (!w || (!prefer_writers(l) && first_of(l, PQ_READ))) {
        serve_readers(l);
    } else if (try_write(l, w->g) == 0) {
        pq_remove(w);
        pq_wake(w, 0);
    }
}

/* Wait for l (kind PQ_READ or PQ_WRITE) until the deadline, through kills and scoped
 * timeouts: 0, or ETIMEDOUT, EAGAIN, EDEADLK (the root, and nothing can release it). */
static int wait_for(pthread_rwlock_t *l, int kind, green_t g, int64_t deadline)
{
    struct pwait *w = pq_node(powner_self(), kind);
    int s = shield(SHIELD_ALL), e;
    int recheck = !w || patch_many_hubs() ? PQ_RECHECK_MS : 0;
    if (kind == PQ_WRITE)
        __atomic_add_fetch(writers_waiting(l), 1, __ATOMIC_RELAXED);
    while ((e = kind == PQ_READ ? try_read(l) : try_write(l, g)) == EBUSY) {
        int pe = 0;
        if (w)
            pq_push(w, l);
        while ((!w || !w->done) && (pe = pq_park(deadline, recheck)) == 0 && w)
            ;
        if (w)
            pq_remove(w);
        if (w && w->done) {
            e = 0;
            break;
        }
        if (pe == ETIMEDOUT || pe == EDEADLK) {
            e = pe;
            break;
        }
    }
    /* the last writer giving up lets in the readers it held back */
    if (kind == PQ_WRITE && __atomic_sub_fetch(writers_waiting(l), 1, __ATOMIC_RELAXED) == 0 && e)
        serve_readers(l);
    unshield(s);
    pq_node_done(w);
    return e;
}

/* Lock l for kind by the deadline (-1 none, 0 past); trying: fail with EBUSY at once. */
static int lock(pthread_rwlock_t *l, int kind, int64_t deadline, int trying)
{
    green_t g = green_current();
    if ((__atomic_load_n(state(l), __ATOMIC_RELAXED) & RW_WRITER) && writer(l) == g)
        return trying ? EBUSY : EDEADLK;
    int e = kind == PQ_READ ? try_read(l) : try_write(l, g);
    if (e != EBUSY || trying)
        return e;
    return wait_for(l, kind, g, deadline);
}

/* The timed forms: the clock and time are checked first, as glibc does. */
static int lock_until(pthread_rwlock_t *l, int kind, clockid_t clk, const struct timespec *abs)
{
    int64_t d = deadline_of(clk, abs);
    return d < 0 ? EINVAL : lock(l, kind, d, 0);
}

int pthread_rwlock_init(pthread_rwlock_t *restrict l, const pthread_rwlockattr_t *restrict attr)
{
    return patch_real()->pthread_rwlock_init(l, attr); /* clears our bytes too */
}
GREEN_PATCH_THREAD(pthread_rwlock_init);

int pthread_rwlock_destroy(pthread_rwlock_t *l)
{
    if (patch_threads && green_here() && (__atomic_load_n(state(l), __ATOMIC_RELAXED) || pq_first(l)))
        return EBUSY;
    return patch_real()->pthread_rwlock_destroy(l);
}
GREEN_PATCH_THREAD(pthread_rwlock_destroy);

int pthread_rwlock_rdlock(pthread_rwlock_t *l)
{
    if (!patch_threads || !green_here())
        return patch_real()->pthread_rwlock_rdlock(l);
    return lock(l, PQ_READ, -1, 0);
}
GREEN_PATCH_THREAD(pthread_rwlock_rdlock);

int pthread_rwlock_tryrdlock(pthread_rwlock_t *l)
{
    if (!patch_threads || !green_here())
        return patch_real()->pthread_rwlock_tryrdlock(l);
    return lock(l, PQ_READ, 0, 1);
}
GREEN_PATCH_THREAD(pthread_rwlock_tryrdlock);

int pthread_rwlock_timedrdlock(pthread_rwlock_t *restrict l, const struct timespec *restrict abs)
{
    if (!patch_threads || !green_here())
        return patch_real()->pthread_rwlock_timedrdlock(l, abs);
    return lock_until(l, PQ_READ, CLOCK_REALTIME, abs);
}
GREEN_PATCH_THREAD(pthread_rwlock_timedrdlock);

int pthread_rwlock_clockrdlock(pthread_rwlock_t *restrict l, clockid_t clk, const struct timespec *restrict abs)
{
    if (!patch_threads || !green_here())
        return patch_real()->pthread_rwlock_clockrdlock(l, clk, abs);
    return lock_until(l, PQ_READ, clk, abs);
}
GREEN_PATCH_THREAD(pthread_rwlock_clockrdlock);

int pthread_rwlock_wrlock(pthread_rwlock_t *l)
{
    if (!patch_threads || !green_here())
        return patch_real()->pthread_rwlock_wrlock(l);
    return lock(l, PQ_WRITE, -1, 0);
}
GREEN_PATCH_THREAD(pthread_rwlock_wrlock);

int pthread_rwlock_trywrlock(pthread_rwlock_t *l)
{
    if (!patch_threads || !green_here())
        return patch_real()->pthread_rwlock_trywrlock(l);
    return lock(l, PQ_WRITE, 0, 1);
}
GREEN_PATCH_THREAD(pthread_rwlock_trywrlock);

int pthread_rwlock_timedwrlock(pthread_rwlock_t *restrict l, const struct timespec *restrict abs)
{
    if (!patch_threads || !green_here())
        return patch_real()->pthread_rwlock_timedwrlock(l, abs);
    return lock_until(l, PQ_WRITE, CLOCK_REALTIME, abs);
}
GREEN_PATCH_THREAD(pthread_rwlock_timedwrlock);

int pthread_rwlock_clockwrlock(pthread_rwlock_t *restrict l, clockid_t clk, const struct timespec *restrict abs)
{
    if (!patch_threads || !green_here())
        return patch_real()->pthread_rwlock_clockwrlock(l, clk, abs);
    return lock_until(l, PQ_WRITE, clk, abs);
}
GREEN_PATCH_THREAD(pthread_rwlock_clockwrlock);

int pthread_rwlock_unlock(pthread_rwlock_t *l)
{
    if (!patch_threads || !green_here())
        return patch_real()->pthread_rwlock_unlock(l);
    unsigned s = __atomic_load_n(state(l), __ATOMIC_RELAXED);
    if (s & RW_WRITER) {
        if (writer(l) != green_current())
            return EPERM;
        set_writer(l, NULL);
        __atomic_store_n(state(l), 0, __ATOMIC_RELEASE);
    } else if (!(s & RW_READERS)) {
        return EPERM;
    } else if (__atomic_sub_fetch(state(l), 1, __ATOMIC_RELEASE) & RW_READERS) {
        return 0;
    }
    pass_on(l);
    return 0;
}
GREEN_PATCH_THREAD(pthread_rwlock_unlock);
