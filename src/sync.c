/*
 * sync.c — events, futures, semaphores, mutexes and conditions (layer 6).
 *
 * gevent.event and gevent.lock over the one wait mechanism: a green thread that must
 * wait queues a waiter record on the object and parks (green__wait, wait.c); whoever
 * makes the awaited thing happen pops the record, marks it done and wakes it
 * (green__waiter_hand_over). Semaphore permits and mutexes are handed over in the same
 * step, to the record, never put back up for grabs: there is no barging, and FIFO order
 * is the queue's order.
 *
 * Invariants:
 *  - "done wins": a record is marked done only by the waker that popped it, under the
 *    object's lock, and whatever the waiter waited for is then already its own. The
 *    waiter reads `done` after it retakes the object, however its park ended: a waiter
 *    whose deadline passed, or who was killed, after the hand-over but before it ran,
 *    still succeeds (a kill shows at its next blocking call). So nothing handed over is
 *    ever lost, and nobody has to pass it on;
 *  - a record still queued is not done; any other wake-up of the waiter (green_wake, a
 *    late note from another OS thread) is spurious and it parks again;
 *  - a semaphore with waiters has no permit (count -1); an unlocked mutex has no waiters;
 *  - a locked mutex is on its owner's held list (green_ext.held, threaded through
 *    next_held) once the owner runs again after taking it. When a green thread finishes
 *    with mutexes on it, its hub calls holder_died (h->held_hook), which hands each one
 *    on as owner-dead (robust mutexes).
 *
 * Threads: every object may be used from any OS thread (green threads of other hubs,
 * plain pthreads). Events and futures keep their state under their green__lock. Mutexes
 * and semaphores keep theirs in one word that the uncontended calls change with one
 * compare-and-swap and no lock: a mutex's owner word (the owner's handle, bit 0 set
 * while green threads wait), a semaphore's count (-1 while green threads wait). Only a
 * call that must queue, or that finds waiters, takes the object's green__lock, which
 * guards the queue; the word's "waiters" state changes only under it, so a release that
 * sees waiters hands over under the lock, to the first record, as above. Conditions
 * keep their queue under their lock. A waiter on another hub is woken by a remote note
 * (green__waiter_wake); its own hub records what it took (a mutex on its held list).
 *
 * Deadlock verdicts (EDEADLK for a root that nothing can wake) follow wait.c's rule for
 * objects other threads may reach (green__park_mode_shared), except a mutex's waits:
 * only its owner can end them, so they are local while the owner and every waiter have
 * always been on one hub (xhub), however many threads the process has.
 */
#include "lib.h"

#include <limits.h>

/* ======================================================================== */
/*  Helpers                                                                 */
/* ======================================================================== */

static int einval(void)
{
    errno = EINVAL;
    return -1;
}

static int ebusy(void)
{
    errno = EBUSY;
    return -1;
}

/* ======================================================================== */
/*  Events and futures: a word published under a lock, from any OS thread  */
/* ======================================================================== */

/* The word is an event's `set` or a future's `state`: non-zero once what is awaited has
 * happened. It is read without the lock on the fast paths, so it is stored last, with
 * release: whoever sees it non-zero also sees the outcome written before it. */

/* Under the object's lock: publish `value` and hand it to every current waiter (who then
 * succeed even if the word changes again before they run: an event's clear). */
static void publish(int *word, int value, green_waitq_t *q)
{
    __atomic_store_n(word, value, __ATOMIC_RELEASE);
    green__waitq_hand_over_all(q);
}

/* Wait until *word is published non-zero. Any OS thread may publish, so the wait follows
 * wait.c's rule for shared objects: a root that nothing can serve gets EDEADLK while the
 * process has a single thread; once it has more, the hub cannot know whether one of them
 * will publish, and such a wait without deadline blocks (as pthread_cond_wait would). */
static int wait_published(int *word, green__lock_t *lock, green_waitq_t *q, int64_t deadline,
                          enum green_wait_kind kind, const void *obj)
{
    if (__atomic_load_n(word, __ATOMIC_ACQUIRE))
        return 0;
    struct green_hub *h = green__loop();
    if (!h)
        return -1;
    green__lock(lock);
    green__waiting_on(h, kind, obj);
    int r = *word ? 0 : green__wait(h, q, lock, deadline, green__park_mode_shared());
    green__unlock(lock);
    return r;
}

/* A select's clause on the word (green_choose): queue e on the object unless the word is
 * already published (1: e is not queued). Disarm unqueues it after the select's park: 1
 * when the word was published meanwhile (e handed over) or is now, else 0. */
static int published_arm(int *word, green__lock_t *lock, green_waitq_t *q, struct green_waiter *e)
{
    green__lock(lock);
    int set = *word != 0;
    if (!set)
        green__waitq_push(q, e);
    green__unlock(lock);
    return set;
}

static int published_disarm(int *word, green__lock_t *lock, green_waitq_t *q, struct green_waiter *e)
{
    green__lock(lock);
    green__waitq_remove(q, e);
    int set = e->done || *word != 0;
    green__unlock(lock);
    return set;
}

/* EBUSY while green threads wait; the queue is read under the lock, as another OS thread
 * may be emptying it. */
static int destroy_locked(green__lock_t *lock, const green_waitq_t *q)
{
    green__lock(lock);
    int busy = q->head != NULL;
    green__unlock(lock);
    return busy ? ebusy() : 0;
}

/* ======================================================================== */
/*  Events                                                                  */
/* ======================================================================== */

int green_event_init(green_event_t *ev)
{
    if (!ev)
        return einval();
    *ev = (green_event_t){0};
    return 0;
}

int green_event_destroy(green_event_t *ev)
{
    if (!ev)
        return einval();
    return destroy_locked(&ev->lock, &ev->q);
}

/* Marks every current waiter done, so a clear() before they run cannot take it back. */
int green_event_set(green_event_t *ev)
{
    if (!ev)
        return einval();
    green__lock(&ev->lock);
    publish(&ev->set, 1, &ev->q);
    green__unlock(&ev->lock);
    return 0;
}

int green_event_clear(green_event_t *ev)
{
    if (!ev)
        return einval();
    green__lock(&ev->lock);
    __atomic_store_n(&ev->set, 0, __ATOMIC_RELEASE);
    green__unlock(&ev->lock);
    return 0;
}

int green_event_is_set(green_event_t *ev)
{
    if (!ev)
        return einval();
    return __atomic_load_n(&ev->set, __ATOMIC_ACQUIRE);
}

int green_event_wait(green_event_t *ev, int64_t deadline)
{
    if (!ev)
        return einval();
    return wait_published(&ev->set, &ev->lock, &ev->q, deadline, GW_EVENT, ev);
}

/* ======================================================================== */
/*  Futures                                                                 */
/* ======================================================================== */

enum { FUTURE_PENDING = 0, FUTURE_VALUE = 1, FUTURE_FAILED = 2 }; /* pending: not published */

int green_future_init(green_future_t *f)
{
    if (!f)
        return einval();
    *f = (green_future_t){0};
    return 0;
}

int green_future_destroy(green_future_t *f)
{
    if (!f)
        return einval();
    return destroy_locked(&f->lock, &f->q);
}

/* The outcome is written once, before the state that publishes it. */
static int future_settle(green_future_t *f, int state, void *value, int err)
{
    green__lock(&f->lock);
    if (f->state != FUTURE_PENDING) {
        green__unlock(&f->lock);
        return ebusy();
    }
    f->value = value;
    f->err = err;
    publish(&f->state, state, &f->q);
    green__unlock(&f->lock);
    return 0;
}

int green_future_set(green_future_t *f, void *value)
{
    if (!f)
        return einval();
    return future_settle(f, FUTURE_VALUE, value, 0);
}

int green_future_fail(green_future_t *f, int err)
{
    if (!f || err <= 0)
        return einval();
    return future_settle(f, FUTURE_FAILED, NULL, err);
}

int green_future_get(green_future_t *f, void **value, int64_t deadline)
{
    if (!f)
        return einval();
    if (wait_published(&f->state, &f->lock, &f->q, deadline, GW_FUTURE, f) != 0)
        return -1;
    if (f->state == FUTURE_FAILED) {
        errno = f->err;
        return -1;
    }
    if (value)
        *value = f->value;
    return 0;
}

int green_future_ready(green_future_t *f)
{
    if (!f)
        return einval();
    return __atomic_load_n(&f->state, __ATOMIC_ACQUIRE) != FUTURE_PENDING;
}

/* ---- green_choose's clauses on events and futures (lib.h) ---- */

int green__event_arm(green_event_t *ev, struct green_waiter *e)
{
    return published_arm(&ev->set, &ev->lock, &ev->q, e);
}

int green__event_disarm(green_event_t *ev, struct green_waiter *e)
{
    return published_disarm(&ev->set, &ev->lock, &ev->q, e);
}

int green__future_arm(green_future_t *f, struct green_waiter *e)
{
    return published_arm(&f->state, &f->lock, &f->q, e);
}

int green__future_disarm(green_future_t *f, struct green_waiter *e)
{
    return published_disarm(&f->state, &f->lock, &f->q, e);
}

/* ======================================================================== */
/*  Semaphores                                                              */
/* ======================================================================== */

/*
 * count >= 0: free permits, and nobody waits; -1 (SEM_WAITERS): green threads wait, and
 * no permit is free. The uncontended calls move count between non-negative values with
 * one compare-and-swap; only a holder of s->lock moves it to or from -1, and the queue
 * is non-empty exactly while it is -1 (both read under the lock).
 */
enum { SEM_WAITERS = -1 };

static int sem_full(const green_sem_t *s, long c)
{
    return (s->max >= 0 && c >= s->max) || c == LONG_MAX;
}

int green_sem_init(green_sem_t *s, long count)
{
    if (!s || count < 0)
        return einval();
    *s = (green_sem_t){.count = count, .max = -1};
    return 0;
}

int green_sem_init_bounded(green_sem_t *s, long count, long max)
{
    if (!s || count < 0 || max < count)
        return einval();
    *s = (green_sem_t){.count = count, .max = max};
    return 0;
}

int green_sem_destroy(green_sem_t *s)
{
    if (!s)
        return einval();
    return destroy_locked(&s->lock, &s->q);
}

static int sem_acquire_slow(green_sem_t *s, int64_t deadline)
{
    struct green_hub *h = green__loop();
    if (!h)
        return -1;
    green__lock(&s->lock);
    long c = __atomic_load_n(&s->count, __ATOMIC_RELAXED);
    for (;;) {
        if (c > 0) { /* a permit came back meanwhile */
            if (__atomic_compare_exchange_n(&s->count, &c, c - 1, 0, __ATOMIC_ACQUIRE,
                                            __ATOMIC_RELAXED)) {
                green__unlock(&s->lock);
                return 0;
            }
        } else if (c == SEM_WAITERS ||
                   __atomic_compare_exchange_n(&s->count, &c, SEM_WAITERS, 0, __ATOMIC_RELAXED,
                                               __ATOMIC_RELAXED)) {
            break;
        }
    }
    green__waiting_on(h, GW_SEM, s);
    int r = green__wait(h, &s->q, &s->lock, deadline, green__park_mode_shared());
    if (r != 0 && !s->q.head) {
        int err = errno;
        __atomic_store_n(&s->count, 0, __ATOMIC_RELAXED); /* the last waiter gave up */
        errno = err;
    }
    green__unlock(&s->lock);
    return r;
}

/* A free permit means nobody waits, so taking it jumps no queue. A poll (deadline 0)
 * that finds none fails with ETIMEDOUT, like every wait whose deadline has come. */
int green_sem_acquire(green_sem_t *s, int64_t deadline)
{
    if (!s)
        return einval();
    long c = __atomic_load_n(&s->count, __ATOMIC_RELAXED);
    while (c > 0)
        if (__atomic_compare_exchange_n(&s->count, &c, c - 1, 1, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return 0;
    return sem_acquire_slow(s, deadline);
}

static int sem_release_slow(green_sem_t *s)
{
    green__lock(&s->lock);
    long c = __atomic_load_n(&s->count, __ATOMIC_RELAXED);
    for (;;) {
        if (c == SEM_WAITERS) {
            if (s->max == 0) /* no permit may ever be out, so none can come back */
                break;
            struct green_waiter *w = green__waitq_pop(&s->q);
            if (!s->q.head)
                __atomic_store_n(&s->count, 0, __ATOMIC_RELAXED);
            green__waiter_hand_over(w);
            green__unlock(&s->lock);
            return 0;
        }
        if (sem_full(s, c))
            break;
        if (__atomic_compare_exchange_n(&s->count, &c, c + 1, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
            green__unlock(&s->lock);
            return 0;
        }
    }
    green__unlock(&s->lock);
    errno = EOVERFLOW;
    return -1;
}

/* With waiters, the permit goes straight to the first, so a green thread that acquires
 * right after this release (before the waiter runs) cannot take it. A bounded
 * semaphore counts the handed-over permit as a release like any other. */
int green_sem_release(green_sem_t *s)
{
    if (!s)
        return einval();
    long c = __atomic_load_n(&s->count, __ATOMIC_RELAXED);
    while (c >= 0 && !sem_full(s, c))
        if (__atomic_compare_exchange_n(&s->count, &c, c + 1, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED))
            return 0;
    return sem_release_slow(s);
}

long green_sem_value(green_sem_t *s)
{
    if (!s)
        return einval();
    long c = __atomic_load_n(&s->count, __ATOMIC_RELAXED);
    return c > 0 ? c : 0;
}

/* ======================================================================== */
/*  Mutexes                                                                 */
/* ======================================================================== */

/*
 * The owner word is the owner's handle (pointer and generation), so that a mutex whose
 * owner vanished without a held_hook (its hub's OS thread exited while it held the
 * mutex) is recognised as owner-dead rather than kept locked by a recycled control
 * block; bit 0 (MUTEX_WAITERS) says that green threads wait. Lock: 0 → handle, unlock:
 * handle → 0, one compare-and-swap each; with the bit set, unlock takes the lock and
 * writes the first waiter's handle (with the bit if more wait) before waking it. The
 * new owner puts the mutex on its own held list (green_ext.held, through next_held) and
 * sets its hub's held_hook: lists are only ever touched by their green thread's hub.
 * Ownership after EOWNERDEAD is ordinary: the lock call fails with -1/EOWNERDEAD but the
 * caller holds the mutex, and unlocking it works as always (no "consistent" step as
 * with pthreads).
 */
#define MUTEX_WAITERS ((uintptr_t)1)

static int mutex_valid(const green_mutex_t *m)
{
    return m && (m->type == GREEN_MUTEX_NORMAL || m->type == GREEN_MUTEX_RECURSIVE);
}

static inline uintptr_t owner_id(const struct green *g) { return (uintptr_t)green__handle(g); }
static inline uintptr_t owner_word(const green_mutex_t *m)
{
    return (uintptr_t)__atomic_load_n(&m->owner, __ATOMIC_RELAXED);
}
static inline int owned_by(uintptr_t word, uintptr_t id) { return (word & ~MUTEX_WAITERS) == id; }

static void held_push(struct green *g, green_mutex_t *m)
{
    m->next_held = g->ext->held;
    g->ext->held = m;
}

static void held_remove(struct green *g, green_mutex_t *m)
{
    void **pp = g->ext ? &g->ext->held : NULL;
    while (pp && *pp && *pp != m)
        pp = &((green_mutex_t *)*pp)->next_held;
    if (pp && *pp)
        *pp = m->next_held;
    m->next_held = NULL;
}

static void holder_died(struct green_hub *h, struct green *g);

/* The caller (self, with its green_ext) has just become the owner of m. */
static inline int mutex_took(struct green_hub *h, green_mutex_t *m, struct green *self)
{
    m->depth = 1;
    held_push(self, m);
    h->held_hook = holder_died; /* set on every hub where a green thread owns a mutex */
    __atomic_store_n(&m->owner_tid, h->tid, __ATOMIC_RELAXED); /* for mutex_spin */
    if (GREEN_UNLIKELY(m->owner_dead)) { /* the first owner after a dead one hears of it */
        m->owner_dead = 0;
        errno = EOWNERDEAD;
        return -1;
    }
    return 0;
}

/* Under m->lock, with the owner gone (or leaving): the first waiter owns m now, marked
 * in the word before it is woken; no waiter leaves it unlocked. */
static void mutex_pass_on(green_mutex_t *m)
{
    struct green_waiter *w = green__waitq_pop(&m->q);
    uintptr_t next = 0;
    if (w) {
        next = owner_id(w->g) | (m->q.head ? MUTEX_WAITERS : 0);
        __atomic_store_n(&m->owner_tid, w->hub->tid, __ATOMIC_RELAXED); /* for mutex_spin */
    }
    __atomic_store_n(&m->owner, (void *)next, __ATOMIC_RELEASE);
    if (w)
        green__waiter_hand_over(w);
}

/* Under m->lock: its owner is dead; the next one hears of it. */
static void mutex_orphan(green_mutex_t *m)
{
    m->depth = 0;
    m->owner_dead = 1;
    mutex_pass_on(m);
}

/* h->held_hook: g is finishing (returned or killed) with mutexes still locked. */
static void holder_died(struct green_hub *h, struct green *g)
{
    (void)h;
    green_mutex_t *m;
    while ((m = g->ext->held)) {
        g->ext->held = m->next_held;
        m->next_held = NULL;
        green__lock(&m->lock);
        mutex_orphan(m);
        green__unlock(&m->lock);
    }
}

/* Is the owner in word gone without its hub's held_hook? Its control block's generation
 * moved on (reaped, or its OS thread exited), or, on our own hub, it is dead. */
static int owner_gone(struct green_hub *h, uintptr_t word)
{
    struct green *g = (struct green *)(word & GREEN_PTR_MASK & ~MUTEX_WAITERS);
    if (__atomic_load_n(&g->gen, __ATOMIC_RELAXED) != (uint16_t)(word >> 48))
        return 1;
    return __atomic_load_n(&g->hub, __ATOMIC_RELAXED) == h &&
           (g->state == GS_DEAD || g->state == GS_FREE);
}

static int mutex_wait(struct green_hub *h, green_mutex_t *m, struct green *self, uintptr_t id,
                      int64_t deadline, int mode, int trying);

/* ~10 µs of pause instructions on x86-64 (25 ns each on the EPYC VM of the benchmarks):
 * about what it costs to wake a hub asleep in its poller from another OS thread. */
#ifndef GREEN_MUTEX_SPINS
#define GREEN_MUTEX_SPINS 400
#endif
/*
 * Before queueing: when the owner is a green thread of another hub (it may be running
 * there, in parallel) and nothing else is ready here (parking would put this OS thread
 * to sleep, and the unlock would then cost a wake-up of it), look at the word a little
 * while, and take the mutex if it comes free while nobody queues: that jumps no queue,
 * it is a lock a moment later. Never within one hub (its owner cannot run meanwhile),
 * for a poll (deadline 0) or in a killed green thread. 1 when we took it.
 */
static int mutex_spin(struct green_hub *h, green_mutex_t *m, uintptr_t id, int64_t deadline)
{
    if (h->nready || deadline == 0 || (h->current->flags & GF_CANCELLED))
        return 0;
    uintptr_t o = owner_word(m);
    for (int i = 0; i < GREEN_MUTEX_SPINS; i++) {
        if (o & MUTEX_WAITERS)
            return 0;
        if (!o) {
            if (__atomic_compare_exchange_n(&m->owner, (void **)&o, (void *)id, 0, __ATOMIC_ACQ_REL,
                                            __ATOMIC_RELAXED))
                return 1;
            continue;
        }
        /* the owner's hub as its owner noted it, a moment after it took the mutex (so
         * not believed at once: right after a lock on another hub it may still name us;
         * a guess is all this needs). The control block is not read: it may be gone. */
        if (i >= 16 && __atomic_load_n(&m->owner_tid, __ATOMIC_RELAXED) == h->tid)
            return 0;
        green_cpu_relax();
        o = owner_word(m);
    }
    return 0;
}

/* The owner word says m is taken by someone else: take it when it is handed to us (or
 * when its owner is gone). mode: GREEN_PARK_LOCAL or GREEN_PARK_MASKED. */
static __attribute__((noinline)) int mutex_lock_slow(struct green_hub *h, green_mutex_t *m,
                                                     int64_t deadline, int mode)
{
    struct green *self = h->current;
    uintptr_t id = owner_id(self);
    int trying = deadline == -2; /* green_mutex_trylock's */
    if (trying)
        deadline = 0;
    if (!(h = green__loop()))
        return -1;
    if (mutex_spin(h, m, id, deadline))
        return mutex_took(h, m, self);
    /* green__wait's mask, done here so that it lasts until the mutex is on our held
     * list: its pop would free our green_ext (where the list lives) otherwise */
    int masked = mode & GREEN_PARK_MASKED;
    if (masked) {
        if (green__shield_push(h, GREEN_SHIELD_KILLS | GREEN_SHIELD_TIMEOUTS) != 0)
            return -1;
        mode &= ~GREEN_PARK_MASKED;
        deadline = -1;
    }
    int r = mutex_wait(h, m, self, id, deadline, mode, trying);
    if (masked) {
        int err = errno;
        green__shield_pop(h, GREEN_SHIELD_KILLS | GREEN_SHIELD_TIMEOUTS);
        errno = err;
    }
    return r;
}

/* mutex_lock_slow's queueing and taking, mode without the mask; trying: a trylock, which
 * only takes a mutex that is free or whose owner is gone (else EBUSY). */
static int mutex_wait(struct green_hub *h, green_mutex_t *m, struct green *self, uintptr_t id,
                      int64_t deadline, int mode, int trying)
{
    green__lock(&m->lock);
    /* acquire: the owner's lock was a release, so its control block's birth is seen */
    uintptr_t o = (uintptr_t)__atomic_load_n(&m->owner, __ATOMIC_ACQUIRE);
    for (;;) {
        if (!o) {
            if (__atomic_compare_exchange_n(&m->owner, (void **)&o, (void *)id, 0, __ATOMIC_ACQ_REL,
                                            __ATOMIC_RELAXED))
                break;
            continue;
        }
        if (!(o & MUTEX_WAITERS) &&
            !__atomic_compare_exchange_n(&m->owner, (void **)&o, (void *)(o | MUTEX_WAITERS), 0,
                                         __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE))
            continue; /* unlocked meanwhile */
        o |= MUTEX_WAITERS;
        /* With the mark set, a live owner cannot unlock without our lock: its control
         * block stays its own while we look at it, and the word stays o. */
        if (owner_gone(h, o)) {
            /* its hub never handed it on (that hub is gone): we do, under the lock */
            mutex_orphan(m);
            o = (uintptr_t)__atomic_load_n(&m->owner, __ATOMIC_ACQUIRE);
            continue;
        }
        struct green *og = (struct green *)(o & GREEN_PTR_MASK & ~MUTEX_WAITERS);
        if (__atomic_load_n(&og->hub, __ATOMIC_RELAXED) != h)
            m->xhub = 1;
        if (GREEN_UNLIKELY(trying)) { /* trylock: held, by someone alive */
            if (!m->q.head)
                __atomic_store_n(&m->owner, (void *)(o & ~MUTEX_WAITERS), __ATOMIC_RELAXED);
            green__unlock(&m->lock);
            errno = EBUSY;
            return -1;
        }
        /* Only the owner can end this wait: while the owner and every waiter have been
         * on this one hub, a root that nothing here can wake is in a deadlock. */
        if (m->xhub)
            mode |= green__park_mode_shared();
        green__waiting_on(h, GW_MUTEX, m);
        int r = green__wait(h, &m->q, &m->lock, deadline, (enum green_park_mode)mode);
        if (r != 0) {
            int err = errno;
            if (!m->q.head) /* the last waiter gave up: the owner may unlock without us */
                __atomic_store_n(&m->owner, (void *)(owner_word(m) & ~MUTEX_WAITERS),
                                 __ATOMIC_RELAXED);
            green__unlock(&m->lock);
            errno = err;
            return -1;
        }
        break; /* handed over: the word names us */
    }
    if (GREEN_UNLIKELY(!self->ext) && !green__ext(self)) {
        /* our green_ext went away meanwhile (green_set_name) and cannot come back: pass
         * the mutex on rather than hold it unrecorded */
        mutex_pass_on(m);
        green__unlock(&m->lock);
        errno = ENOMEM;
        return -1;
    }
    green__unlock(&m->lock);
    return mutex_took(h, m, self);
}

/* The caller already owns m (its owner word names it). */
static int mutex_relock(green_mutex_t *m)
{
    if (m->type != GREEN_MUTEX_RECURSIVE) {
        errno = EDEADLK;
        return -1;
    }
    if (m->depth == UINT_MAX) {
        errno = EAGAIN;
        return -1;
    }
    m->depth++;
    return 0;
}

static inline int mutex_lock(green_mutex_t *m, int64_t deadline, int mode)
{
    if (GREEN_UNLIKELY(!mutex_valid(m)))
        return einval();
    struct green_hub *h = green__hub_fast();
    if (GREEN_UNLIKELY(!h))
        return -1;
    struct green *self = h->current;
    if (GREEN_UNLIKELY(!self->ext) && !green__ext(self)) /* where our held list lives */
        return -1;
    uintptr_t id = owner_id(self), o = owner_word(m); /* a held one costs no locked op */
    if (GREEN_LIKELY(!o) && GREEN_LIKELY(__atomic_compare_exchange_n(
                                 &m->owner, (void **)&o, (void *)id, 0, __ATOMIC_ACQ_REL,
                                 __ATOMIC_RELAXED)))
        return mutex_took(h, m, self);
    if (owned_by(o, id))
        return mutex_relock(m);
    return mutex_lock_slow(h, m, deadline, mode);
}

/* Unlock m, owned by the caller (self), completely. word: its owner word, as read. */
static inline void mutex_release(struct green *self, green_mutex_t *m, uintptr_t id, uintptr_t word)
{
    held_remove(self, m);
    m->depth = 0;
    uintptr_t o = id;
    if (GREEN_LIKELY(!(word & MUTEX_WAITERS)) &&
        GREEN_LIKELY(__atomic_compare_exchange_n(&m->owner, (void **)&o, NULL, 0, __ATOMIC_RELEASE,
                                                 __ATOMIC_RELAXED)))
        return;
    green__lock(&m->lock); /* green threads wait: the first one gets it */
    mutex_pass_on(m);
    green__unlock(&m->lock);
}

int green_mutex_init(green_mutex_t *m, int type)
{
    if (!m || (type != GREEN_MUTEX_NORMAL && type != GREEN_MUTEX_RECURSIVE))
        return einval();
    *m = (green_mutex_t){.type = type};
    return 0;
}

/* An unlocked mutex has no waiters (they only queue on a held one). */
int green_mutex_destroy(green_mutex_t *m)
{
    if (!mutex_valid(m))
        return einval();
    return __atomic_load_n(&m->owner, __ATOMIC_ACQUIRE) ? ebusy() : 0;
}

int green_mutex_lock(green_mutex_t *m, int64_t deadline)
{
    return mutex_lock(m, deadline, GREEN_PARK_LOCAL);
}

/* Like pthread_mutex_trylock, a non-recursive owner trying again gets EBUSY. A mutex
 * whose owner is gone (see owner_gone) is taken, with EOWNERDEAD. */
int green_mutex_trylock(green_mutex_t *m)
{
    if (!mutex_valid(m))
        return einval();
    struct green_hub *h = green__hub_fast();
    if (!h)
        return -1;
    struct green *self = h->current;
    if (!self->ext && !green__ext(self))
        return -1;
    uintptr_t id = owner_id(self), o = 0;
    if (__atomic_compare_exchange_n(&m->owner, (void **)&o, (void *)id, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_RELAXED))
        return mutex_took(h, m, self);
    if (owned_by(o, id))
        return m->type == GREEN_MUTEX_RECURSIVE ? mutex_relock(m) : ebusy();
    /* held by another, or by one that is gone: only under the lock can we tell */
    return mutex_lock_slow(h, m, -2, GREEN_PARK_LOCAL);
}

int green_mutex_unlock(green_mutex_t *m)
{
    if (GREEN_UNLIKELY(!mutex_valid(m)))
        return einval();
    struct green_hub *h = green__tls_hub;
    uintptr_t id, word = owner_word(m);
    if (GREEN_UNLIKELY(!h) || !owned_by(word, id = owner_id(h->current))) {
        errno = EPERM;
        return -1;
    }
    if (GREEN_UNLIKELY(m->depth > 1)) {
        m->depth--;
        return 0;
    }
    mutex_release(h->current, m, id, word);
    return 0;
}

/* ======================================================================== */
/*  Conditions                                                              */
/* ======================================================================== */

int green_cond_init(green_cond_t *c)
{
    if (!c)
        return einval();
    *c = (green_cond_t){{0}, 0, 0};
    return 0;
}

int green_cond_destroy(green_cond_t *c)
{
    if (!c)
        return einval();
    return destroy_locked(&c->lock, &c->q);
}

/*
 * The caller is queued on c (under c's lock) before m is released, so a signal that
 * comes after the release, from any OS thread, finds it. A recursive mutex is released
 * whatever its depth and relocked to the same depth. The relock waits without deadline
 * and through kills, so the caller always returns holding m, with two exceptions where
 * it cannot: EDEADLK (the root waits for a mutex that nothing can ever unlock) and
 * ENOMEM. If the relock finds the owner dead, EOWNERDEAD is returned (holding m) in
 * place of the wait's own outcome.
 */
int green_cond_wait(green_cond_t *c, green_mutex_t *m, int64_t deadline)
{
    if (!c || !mutex_valid(m))
        return einval();
    struct green_hub *h = green__tls_hub;
    uintptr_t id;
    if (!h || !owned_by(owner_word(m), id = owner_id(h->current))) {
        errno = EPERM;
        return -1;
    }
    if (!(h = green__loop()))
        return -1;
    unsigned depth = m->depth;
    green__lock(&c->lock);
    mutex_release(h->current, m, id, owner_word(m));
    green__waiting_on(h, GW_COND, c);
    int r = green__wait(h, &c->q, &c->lock, deadline, green__park_mode_shared());
    int err = errno;
    green__unlock(&c->lock);
    int relocked = mutex_lock(m, -1, GREEN_PARK_MASKED);
    if (relocked != 0 && errno != EOWNERDEAD)
        return -1;
    m->depth = depth;
    if (relocked != 0)
        return -1;
    if (r != 0) {
        errno = err;
        return -1;
    }
    return 0;
}

int green_cond_signal(green_cond_t *c)
{
    if (!c)
        return einval();
    green__lock(&c->lock);
    struct green_waiter *w = green__waitq_pop(&c->q);
    if (w)
        green__waiter_hand_over(w);
    green__unlock(&c->lock);
    return 0;
}

int green_cond_broadcast(green_cond_t *c)
{
    if (!c)
        return einval();
    green__lock(&c->lock);
    green__waitq_hand_over_all(&c->q);
    green__unlock(&c->lock);
    return 0;
}
