/*
 * mutex.c — pthread mutexes and conditions as green ones (GREEN_PATCH_THREADS=1).
 *
 * Mutexes. The state lives in the pthread_mutex_t itself, so locking never allocates
 * and never fails for want of memory:
 *  - __lock is glibc's lock word, with glibc's protocol: 0 free, 1 held, 2 held and
 *    perhaps waited for by plain threads (they set it, and sleep on the futex); robust
 *    mutexes add FUTEX_WAITERS and FUTEX_OWNER_DIED. Green threads take it with the
 *    same compare-and-swap and release it with an exchange, waking the futex when it was
 *    not 1. So green threads and plain threads exclude each other on one mutex;
 *  - while a green thread holds it: __owner is GREEN_HELD (negative, never a thread id,
 *    so glibc's owner checks in plain threads fail), __list.__prev its handle, __count
 *    the depth, __list.__next the next mutex its owner holds (a pthread's list, the
 *    root's: see powner_self). Cleared before the lock word is released: glibc checks
 *    that __owner is 0 when it takes a mutex;
 *  - __kind (type, robust, process-shared) and __nusers are glibc's, untouched: the
 *    static initializers and pthread_mutex_init (glibc's own) work for both kinds.
 * A contended lock queues the caller (queue.c) behind a holder that is a green thread
 * of the same OS thread, which hands the mutex straight to its first waiter when it
 * unlocks (no barging). A holder elsewhere (a plain thread, another OS thread's hub)
 * cannot wake it: the waiter looks again, 1 ms later, then 2, 4, ... 16 ms apart. A
 * lock is neither timed by green_timeout_push scopes nor ended by kills (shields).
 * Relocking a normal or errorcheck mutex gives EDEADLK (a normal one would hang);
 * unlocking one the caller does not hold, EPERM. A green pthread that ends holding
 * mutexes hands each to its next waiter; a robust one is then reported EOWNERDEAD (the
 * lock word keeps FUTEX_OWNER_DIED for a plain thread to see), pthread_mutex_consistent
 * is accepted and ownership stays ordinary. A holder that cannot tell (a green thread of
 * libgreen's API) is found dead by its waiters, which look again every PQ_RECHECK_MS.
 * A priority-protected mutex's ceiling bits in the lock word are kept and otherwise
 * ignored; priority inheritance is not (its lock word holds thread ids, which green
 * threads do not have): both are ordinary mutexes among green threads only.
 *
 * Conditions. The pthread_cond_t stays glibc's: green threads never write it, they read
 * only its clock bit (__wrefs), and pthread_cond_init/destroy are glibc's (destroy is
 * EBUSY while green threads wait). A green waiter queues on the condition's address;
 * signal wakes the first green waiter, else passes to glibc (a plain waiter); broadcast
 * wakes every green waiter and passes to glibc. A plain thread's signal does not reach
 * green waiters. A cancelled waiter that had been signalled passes the signal on.
 */
#include "thread.h"

#include <limits.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#define GREEN_HELD ((int)0x80475245)     /* __owner of a mutex a green thread holds */
#define TID_MASK 0x3fffffff              /* held by someone: these bits of __lock */
#define OWNER_DIED 0x40000000
#define WAITERS ((int)0x80000000u)
#define CEILING_MASK ((int)0xfff80000u)  /* a priority-protected mutex's ceiling */

/* glibc's __kind bits */
#define KIND_TYPE 3
#define KIND_ROBUST 16
#define KIND_PP 64
#define KIND_PSHARED 128

static int *word(pthread_mutex_t *m) { return &m->__data.__lock; }

static int kind_of(pthread_mutex_t *m) { return __atomic_load_n(&m->__data.__kind, __ATOMIC_RELAXED); }

/* The bits of lock word v that do not say who holds it: a priority-protected mutex's
 * ceiling, which a green thread keeps and otherwise ignores. */
static int ceiling(pthread_mutex_t *m, int v) { return (kind_of(m) & KIND_PP) ? v & CEILING_MASK : 0; }

/* The green thread that holds m, or NULL (free, or a plain thread's). Other OS threads
 * may be changing it: what it says only chooses between queueing and looking again. */
static green_t holder(pthread_mutex_t *m)
{
    if (__atomic_load_n(&m->__data.__owner, __ATOMIC_ACQUIRE) != GREEN_HELD)
        return NULL;
    return (green_t)__atomic_load_n((void **)&m->__data.__list.__prev, __ATOMIC_RELAXED);
}

static void futex_wake(pthread_mutex_t *m)
{
    int op = FUTEX_WAKE | ((kind_of(m) & KIND_PSHARED) ? 0 : FUTEX_PRIVATE_FLAG);
    patch_real()->syscall(SYS_futex, word(m), op, 1, NULL, NULL, 0);
}

/* ---- the held list, through __list.__next ---- */

static pthread_mutex_t **next_held(pthread_mutex_t *m) { return (pthread_mutex_t **)(void *)&m->__data.__list.__next; }

static void held_remove(pthread_mutex_t **held, pthread_mutex_t *m)
{
    while (held && *held && *held != m)
        held = next_held(*held);
    if (held && *held)
        *held = *next_held(m);
}

/* g, listing what it holds at *held (NULL: nowhere), now holds m, whose word it has. */
static void take(pthread_mutex_t *m, green_t g, pthread_mutex_t **held)
{
    __atomic_store_n((void **)&m->__data.__list.__prev, (void *)g, __ATOMIC_RELAXED);
    m->__data.__count = 1;
    *next_held(m) = held ? *held : NULL;
    if (held)
        *held = m;
    __atomic_store_n(&m->__data.__owner, GREEN_HELD, __ATOMIC_RELEASE);
}

/* m, held by a green thread of this OS thread, is left, err 0 or EOWNERDEAD when its
 * holder died: its first waiter here holds it now, or it is released. */
static void pass_on(pthread_mutex_t *m, int err)
{
    struct pwait *w = pq_pop(m);
    if (w) {
        take(m, w->g, w->held);
        pq_wake(w, err);
        return;
    }
    __atomic_store_n(&m->__data.__owner, 0, __ATOMIC_RELAXED);
    m->__data.__list.__prev = m->__data.__list.__next = NULL;
    m->__data.__count = 0;
    int keep = ceiling(m, __atomic_load_n(word(m), __ATOMIC_RELAXED));
    int to = keep | (err && (kind_of(m) & KIND_ROBUST) ? OWNER_DIED : 0);
    if ((__atomic_exchange_n(word(m), to, __ATOMIC_RELEASE) & ~keep) != 1)
        futex_wake(m); /* a plain thread may sleep on it */
}

/* Take m if it is free: 0, EOWNERDEAD (its last holder died holding it), or EBUSY. A
 * word that says plain threads wait becomes 2, so that our unlock wakes one. */
static int take_free(pthread_mutex_t *m, green_t g, pthread_mutex_t **held)
{
    int v = __atomic_load_n(word(m), __ATOMIC_RELAXED);
    int keep;
    while (!((v & ~(keep = ceiling(m, v))) & TID_MASK)) {
        if (__atomic_compare_exchange_n(word(m), &v, keep | ((v & ~keep & WAITERS) ? 2 : 1), 1,
                                        __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
            take(m, g, held);
            return (v & OWNER_DIED) ? EOWNERDEAD : 0;
        }
    }
    return EBUSY;
}

void pm_owner_gone(struct powner *o)
{
    /* A mutex on the ender's own stack went with the frame that held it (its bytes may
     * be ours now): it is left alone. */
    void *lo = NULL;
    size_t size = 0;
    int detached, saved = errno;
    green_private_attr(green_current(), &lo, &size, &detached);
    errno = saved;
    pthread_mutex_t *m;
    while ((m = o->held)) {
        o->held = *next_held(m);
        if ((char *)m < (char *)lo || (char *)m >= (char *)lo + size)
            pass_on(m, EOWNERDEAD);
    }
}

/* Where g is: 0 alive on this OS thread, 1 dead (it ended holding what we wait for),
 * 2 on another OS thread's hub. */
static int whereabouts(green_t g)
{
    int saved = errno;
    int dead = green_dead(g);
    int e = errno;
    errno = saved;
    return dead == 0 ? 0 : dead == 1 || e == ESRCH ? 1 : 2;
}

/* Wait for m, held by another, until the deadline: 0 or EOWNERDEAD (holding it),
 * ETIMEDOUT, EDEADLK (the root, and nothing can ever unlock it). */
static int lock_wait(pthread_mutex_t *m, struct pwait *w, green_t g, pthread_mutex_t **held,
                     int64_t deadline)
{
    int s = shield(SHIELD_ALL), backoff = 1, e;
    while ((e = take_free(m, g, held)) == EBUSY) {
        green_t h = holder(m);
        int where = h ? whereabouts(h) : 2;
        if (where == 1 && holder(m) == h) { /* gone without handing it on */
            pass_on(m, EOWNERDEAD);
            continue;
        }
        if (where == 0 && w) { /* behind a green thread of ours: it hands m over */
            pq_push(w, m);
            /* a holder that is no pthread may end without handing it on */
            int tracked = green_private_local(h) || h == green_root();
            int recheck = patch_many_hubs() || !tracked ? PQ_RECHECK_MS : 0;
            int pe = 0;
            while (!w->done && (pe = pq_park(deadline, recheck)) == 0)
                ;
            pq_remove(w);
            if (w->done) {
                e = w->err;
                break;
            }
            if (pe == ETIMEDOUT || pe == EDEADLK) {
                e = pe;
                break;
            }
            continue; /* look again (ECANCELED: a kill that no shield could hold) */
        }
        /* a plain thread's, another hub's, or no node: look again later */
        int pe = pq_park(deadline, backoff);
        if (pe == ETIMEDOUT || pe == EDEADLK) {
            e = pe;
            break;
        }
        backoff = backoff < 16 ? backoff * 2 : 16;
    }
    unshield(s);
    return e;
}

/* Lock m for the caller, whose powner_self() is o, by the deadline (-1 none; 0 only
 * try, which fails with EBUSY): 0, EOWNERDEAD (also for a non-robust mutex: the caller
 * translates), or an error number. */
static int lock_as(pthread_mutex_t *m, int64_t deadline, struct powner *o)
{
    if (kind_of(m) < 0)
        return EINVAL; /* destroyed (glibc's mark) */
    green_t g = green_current();
    int e = take_free(m, g, o ? &o->held : NULL);
    if (e != EBUSY)
        return e;
    if (holder(m) == g) { /* ours already */
        if ((kind_of(m) & KIND_TYPE) != PTHREAD_MUTEX_RECURSIVE)
            return deadline == 0 ? EBUSY : EDEADLK;
        if (m->__data.__count == UINT_MAX)
            return EAGAIN;
        m->__data.__count++;
        return 0;
    }
    if (deadline == 0)
        return EBUSY;
    struct pwait *w = pq_node(o, PQ_MUTEX);
    e = lock_wait(m, w, g, o ? &o->held : NULL, deadline);
    pq_node_done(w);
    return e;
}

static int lock(pthread_mutex_t *m, int64_t deadline) { return lock_as(m, deadline, powner_self()); }

/* What a lock returns: the news of a dead holder only for a robust mutex. */
static int locked(pthread_mutex_t *m, int e)
{
    return e == EOWNERDEAD && !(kind_of(m) & KIND_ROBUST) ? 0 : e;
}

/* Leave m, held by the caller (its powner_self() o) at any depth, completely. */
static void release(pthread_mutex_t *m, struct powner *o)
{
    if (o)
        held_remove(&o->held, m);
    pass_on(m, 0);
}

int pthread_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *attr)
{
    return patch_real()->pthread_mutex_init(m, attr); /* the layout is glibc's */
}
GREEN_PATCH_THREAD(pthread_mutex_init);

int pthread_mutex_destroy(pthread_mutex_t *m)
{
    if (patch_threads && green_here()) {
        int v = __atomic_load_n(word(m), __ATOMIC_RELAXED);
        if (((v & ~ceiling(m, v)) & TID_MASK) || pq_first(m))
            return EBUSY;
    }
    return patch_real()->pthread_mutex_destroy(m);
}
GREEN_PATCH_THREAD(pthread_mutex_destroy);

int pthread_mutex_lock(pthread_mutex_t *m)
{
    if (!patch_threads || !green_here())
        return patch_native_lock(m, patch_real()->pthread_mutex_lock(m), __builtin_return_address(0));
    return locked(m, lock(m, -1));
}
GREEN_PATCH_THREAD(pthread_mutex_lock);

int pthread_mutex_trylock(pthread_mutex_t *m)
{
    if (!patch_threads || !green_here())
        return patch_native_lock(m, patch_real()->pthread_mutex_trylock(m), __builtin_return_address(0));
    return locked(m, lock(m, 0));
}
GREEN_PATCH_THREAD(pthread_mutex_trylock);

/* glibc checks the clock first, the time only when it has to wait. */
static int lock_until(pthread_mutex_t *m, clockid_t clk, const struct timespec *abs)
{
    if (clk != CLOCK_REALTIME && clk != CLOCK_MONOTONIC)
        return EINVAL;
    int e = lock(m, 0);
    if (e != EBUSY || holder(m) == green_current())
        return locked(m, e == EBUSY ? EDEADLK : e);
    int64_t d = deadline_of(clk, abs);
    if (d < 0)
        return EINVAL;
    return locked(m, d == 0 ? ETIMEDOUT : lock(m, d));
}

int pthread_mutex_timedlock(pthread_mutex_t *restrict m, const struct timespec *restrict abs)
{
    if (!patch_threads || !green_here())
        return patch_native_lock(m, patch_real()->pthread_mutex_timedlock(m, abs), __builtin_return_address(0));
    return lock_until(m, CLOCK_REALTIME, abs);
}
GREEN_PATCH_THREAD(pthread_mutex_timedlock);

int pthread_mutex_clocklock(pthread_mutex_t *restrict m, clockid_t clk, const struct timespec *restrict abs)
{
    if (!patch_threads || !green_here())
        return patch_native_lock(m, patch_real()->pthread_mutex_clocklock(m, clk, abs), __builtin_return_address(0));
    return lock_until(m, clk, abs);
}
GREEN_PATCH_THREAD(pthread_mutex_clocklock);

int pthread_mutex_unlock(pthread_mutex_t *m)
{
    if (!patch_threads || !green_here()) {
        patch_native_unlock(m);
        return patch_real()->pthread_mutex_unlock(m);
    }
    if (holder(m) != green_current())
        return EPERM;
    if (--m->__data.__count == 0)
        release(m, powner_self());
    return 0;
}
GREEN_PATCH_THREAD(pthread_mutex_unlock);

/* Ownership after EOWNERDEAD is ordinary: nothing to mark. */
int pthread_mutex_consistent(pthread_mutex_t *m)
{
    if (!patch_threads || !green_here())
        return patch_real()->pthread_mutex_consistent(m);
    return (kind_of(m) & KIND_ROBUST) && holder(m) == green_current() ? 0 : EINVAL;
}
GREEN_PATCH_THREAD(pthread_mutex_consistent);

/* ======================================================================== */
/*  Conditions                                                              */
/* ======================================================================== */

/* glibc keeps the clock of timed waits in bit 1 of __wrefs (set by pthread_cond_init). */
static clockid_t cond_clock(pthread_cond_t *c)
{
    return (__atomic_load_n(&c->__data.__wrefs, __ATOMIC_RELAXED) & 2) ? CLOCK_MONOTONIC : CLOCK_REALTIME;
}

int pthread_cond_init(pthread_cond_t *restrict c, const pthread_condattr_t *restrict attr)
{
    return patch_real()->pthread_cond_init(c, attr);
}
GREEN_PATCH_THREAD(pthread_cond_init);

int pthread_cond_destroy(pthread_cond_t *c)
{
    if (patch_threads && green_here() && pq_first(c))
        return EBUSY;
    return patch_real()->pthread_cond_destroy(c);
}
GREEN_PATCH_THREAD(pthread_cond_destroy);

/* Wake c's first green waiter: 1, or 0 when none waits. */
static int wake_one(pthread_cond_t *c)
{
    struct pwait *w = pq_pop(c);
    if (w)
        pq_wake(w, 0);
    return w != NULL;
}

int pthread_cond_signal(pthread_cond_t *c)
{
    if (!patch_threads || !green_here() || !wake_one(c))
        return patch_real()->pthread_cond_signal(c);
    return 0;
}
GREEN_PATCH_THREAD(pthread_cond_signal);

int pthread_cond_broadcast(pthread_cond_t *c)
{
    if (patch_threads && green_here())
        while (wake_one(c))
            ;
    return patch_real()->pthread_cond_broadcast(c);
}
GREEN_PATCH_THREAD(pthread_cond_broadcast);

/* Park on c until signalled (0), the deadline (ETIMEDOUT), a kill (ECANCELED), or time to
 * look again (0: a spurious wake-up, which POSIX allows). Only its own deadline counts. */
static int cond_park(pthread_cond_t *c, struct pwait *w, int64_t deadline)
{
    int recheck = patch_many_hubs() ? PQ_RECHECK_MS : 0;
    int s = shield(GREEN_SHIELD_TIMEOUTS), e = 0;
    pq_push(w, c);
    while (!w->done && (e = pq_park(deadline, recheck)) == 0)
        ;
    pq_remove(w);
    unshield(s);
    return w->done || e == EAGAIN ? 0 : e;
}

/* A cancellation point: a cancelled green pthread leaves holding m, as POSIX says. */
static int cond_wait(pthread_cond_t *c, pthread_mutex_t *m, int64_t deadline)
{
    if (holder(m) != green_current())
        return EPERM;
    patch_cancel_point();
    struct powner *o = powner_self();
    struct pwait *w = pq_node(o, PQ_COND);
    unsigned depth = m->__data.__count;
    release(m, o);
    int e = w ? cond_park(c, w, deadline) : (green_yield(), 0); /* no node: wake at once */
    int done = w && w->done;
    pq_node_done(w);
    int r = lock_as(m, -1, o); /* through kills and scoped timeouts */
    if (r == 0 || r == EOWNERDEAD)
        m->__data.__count = depth;
    if (e == ECANCELED) {
        if (done)
            wake_one(c); /* the signal it took goes to another */
        patch_testcancel();
    }
    if (e == EDEADLK)
        patch_die("libgreen-patch: pthread_cond_wait in the root: nothing can ever signal it (deadlock)\n");
    return r ? locked(m, r) : e;
}

int pthread_cond_wait(pthread_cond_t *restrict c, pthread_mutex_t *restrict m)
{
    if (!patch_threads || !green_here())
        return patch_real()->pthread_cond_wait(c, m);
    return cond_wait(c, m, -1);
}
GREEN_PATCH_THREAD(pthread_cond_wait);

int pthread_cond_timedwait(pthread_cond_t *restrict c, pthread_mutex_t *restrict m,
                           const struct timespec *restrict abs)
{
    if (!patch_threads || !green_here())
        return patch_real()->pthread_cond_timedwait(c, m, abs);
    int64_t d = deadline_of(cond_clock(c), abs);
    return d < 0 ? EINVAL : cond_wait(c, m, d);
}
GREEN_PATCH_THREAD(pthread_cond_timedwait);

int pthread_cond_clockwait(pthread_cond_t *restrict c, pthread_mutex_t *restrict m, clockid_t clk,
                           const struct timespec *restrict abs)
{
    if (!patch_threads || !green_here())
        return patch_real()->pthread_cond_clockwait(c, m, clk, abs);
    int64_t d = deadline_of(clk, abs);
    return d < 0 ? EINVAL : cond_wait(c, m, d);
}
GREEN_PATCH_THREAD(pthread_cond_clockwait);
