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
 *  - a semaphore with waiters has count 0; an unlocked mutex has no waiters;
 *  - a locked mutex is on its owner's held list (green_ext.held, threaded through
 *    next_held). When a green thread finishes with mutexes on it, the hub calls
 *    holder_died (h->held_hook), which hands each one on as owner-dead (robust mutexes).
 *
 * Threads: events and futures may be set from any OS thread, so their state is
 * guarded by their green__lock and their waiters follow wait.c's deadlock rule for
 * objects other threads may reach (see wait_published). Semaphores, mutexes and
 * conditions take no lock: they belong to the hub of the first OS thread that uses
 * them (claimed with one compare-and-swap), and a call from any other fails with EXDEV
 * before it touches them.
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

/* The caller's hub, if the object whose hub field is *home belongs to it (claiming it if
 * it belongs to none yet); NULL + errno: EXDEV (another hub's), ENOMEM. */
static struct green_hub *home_hub(void **home)
{
    struct green_hub *h = green__loop();
    if (GREEN_UNLIKELY(!h))
        return NULL;
    void *b = __atomic_load_n(home, __ATOMIC_ACQUIRE);
    if (GREEN_LIKELY(b == h))
        return h;
    if (!b && __atomic_compare_exchange_n(home, &b, h, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return h;
    errno = EXDEV;
    return NULL;
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
    return s->q.head ? ebusy() : 0;
}

/* A free permit means nobody waits, so taking it jumps no queue. A poll (deadline 0)
 * that finds none fails with ETIMEDOUT, like every wait whose deadline has come. */
int green_sem_acquire(green_sem_t *s, int64_t deadline)
{
    if (!s)
        return einval();
    struct green_hub *h = home_hub(&s->hub);
    if (!h)
        return -1;
    if (s->count > 0) {
        s->count--;
        return 0;
    }
    green__waiting_on(h, GW_SEM, s);
    return green__wait(h, &s->q, NULL, deadline, GREEN_PARK_LOCAL);
}

/* With waiters, the permit goes straight to the first, so a green thread that acquires
 * right after this release (before the waiter runs) cannot take it. A bounded
 * semaphore counts the handed-over permit as a release like any other. */
int green_sem_release(green_sem_t *s)
{
    if (!s)
        return einval();
    if (!home_hub(&s->hub))
        return -1;
    if ((s->max >= 0 && s->count >= s->max) || s->count == LONG_MAX) {
        errno = EOVERFLOW;
        return -1;
    }
    struct green_waiter *w = green__waitq_pop(&s->q);
    if (w)
        green__waiter_hand_over(w);
    else
        s->count++;
    return 0;
}

long green_sem_value(green_sem_t *s)
{
    if (!s)
        return einval();
    return s->count;
}

/* ======================================================================== */
/*  Mutexes                                                                 */
/* ======================================================================== */

/*
 * The owner is recorded as its handle (pointer and generation), so that a mutex whose
 * owner vanished without the hub's held_hook (its green_ext went away while it held the
 * mutex) is recognised as owner-dead rather than kept locked by a recycled control
 * block. Ownership after EOWNERDEAD is ordinary: the lock call fails with -1/EOWNERDEAD
 * but the caller holds the mutex, and unlocking it works as always (no "consistent"
 * step as with pthreads).
 */

static int mutex_valid(const green_mutex_t *m)
{
    return m && (m->type == GREEN_MUTEX_NORMAL || m->type == GREEN_MUTEX_RECURSIVE);
}

static void *owner_id(struct green *g) { return (void *)green__handle(g); }

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

/* g (with its green_ext allocated) becomes the owner of the unlocked m. */
static void mutex_take(struct green_hub *h, green_mutex_t *m, struct green *g)
{
    m->owner = owner_id(g);
    m->depth = 1;
    held_push(g, m);
    h->held_hook = holder_died; /* set on every hub where a green thread owns a mutex */
}

/* m has just been left unlocked: its first waiter, if any, owns it now. */
static void mutex_pass_on(struct green_hub *h, green_mutex_t *m)
{
    struct green_waiter *w = green__waitq_pop(&m->q);
    if (w) {
        mutex_take(h, m, w->g);
        green__waiter_hand_over(w);
    }
}

static void mutex_orphan(struct green_hub *h, green_mutex_t *m)
{
    m->owner = NULL;
    m->depth = 0;
    m->owner_dead = 1;
    mutex_pass_on(h, m);
}

/* h->held_hook: g is finishing (returned or killed) with mutexes still locked. */
static void holder_died(struct green_hub *h, struct green *g)
{
    green_mutex_t *m;
    while ((m = g->ext->held)) {
        g->ext->held = m->next_held;
        m->next_held = NULL;
        mutex_orphan(h, m);
    }
}

/* The current owner, after reclaiming m from one that is gone without the hook. */
static void *mutex_holder(struct green_hub *h, green_mutex_t *m)
{
    if (m->owner) {
        int saved = errno;
        struct green *g = green__resolve(h, (green_t)m->owner);
        int gone = g ? g->state == GS_DEAD : errno == ESRCH;
        errno = saved;
        if (gone)
            mutex_orphan(h, m);
    }
    return m->owner;
}

/* What a lock that got m returns: the first owner after a dead one hears of it. */
static int mutex_acquired(green_mutex_t *m)
{
    if (GREEN_UNLIKELY(m->owner_dead)) {
        m->owner_dead = 0;
        errno = EOWNERDEAD;
        return -1;
    }
    return 0;
}

/* A recursive owner locks again. */
static int mutex_recurse(green_mutex_t *m)
{
    if (m->depth == UINT_MAX) {
        errno = EAGAIN;
        return -1;
    }
    m->depth++;
    return 0;
}

/* Lock m, which the caller does not own. */
static int mutex_lock_other(struct green_hub *h, green_mutex_t *m, int64_t deadline,
                            enum green_park_mode mode)
{
    struct green *self = h->current;
    if (!green__ext(self)) /* where whoever hands m to us records it */
        return -1;
    if (!mutex_holder(h, m))
        mutex_take(h, m, self);
    else if ((green__waiting_on(h, GW_MUTEX, m), green__wait(h, &m->q, NULL, deadline, mode)) != 0)
        return -1;
    return mutex_acquired(m);
}

/* The caller's hub, when the caller owns m; NULL + errno (EPERM, EXDEV) otherwise. */
static struct green_hub *owner_hub(green_mutex_t *m)
{
    struct green_hub *h = home_hub(&m->hub);
    if (h && (!m->owner || m->owner != owner_id(h->current))) {
        errno = EPERM;
        return NULL;
    }
    return h;
}

/* Unlock m, owned by the caller, completely. */
static void mutex_release(struct green_hub *h, green_mutex_t *m)
{
    held_remove(h->current, m);
    m->owner = NULL;
    m->depth = 0;
    mutex_pass_on(h, m);
}

int green_mutex_init(green_mutex_t *m, int type)
{
    if (!m || (type != GREEN_MUTEX_NORMAL && type != GREEN_MUTEX_RECURSIVE))
        return einval();
    *m = (green_mutex_t){.type = type};
    return 0;
}

int green_mutex_destroy(green_mutex_t *m)
{
    if (!mutex_valid(m))
        return einval();
    return m->owner || m->q.head ? ebusy() : 0;
}

static int mutex_lock(green_mutex_t *m, int64_t deadline, enum green_park_mode mode)
{
    if (!mutex_valid(m))
        return einval();
    struct green_hub *h = home_hub(&m->hub);
    if (!h)
        return -1;
    if (m->owner == owner_id(h->current)) {
        if (m->type == GREEN_MUTEX_RECURSIVE)
            return mutex_recurse(m);
        errno = EDEADLK;
        return -1;
    }
    return mutex_lock_other(h, m, deadline, mode);
}

int green_mutex_lock(green_mutex_t *m, int64_t deadline)
{
    return mutex_lock(m, deadline, GREEN_PARK_LOCAL);
}

/* Like pthread_mutex_trylock, a non-recursive owner trying again gets EBUSY. */
int green_mutex_trylock(green_mutex_t *m)
{
    if (!mutex_valid(m))
        return einval();
    struct green_hub *h = home_hub(&m->hub);
    if (!h)
        return -1;
    if (m->owner == owner_id(h->current))
        return m->type == GREEN_MUTEX_RECURSIVE ? mutex_recurse(m) : ebusy();
    if (mutex_holder(h, m))
        return ebusy();
    return mutex_lock_other(h, m, 0, GREEN_PARK_LOCAL);
}

int green_mutex_unlock(green_mutex_t *m)
{
    if (!mutex_valid(m))
        return einval();
    struct green_hub *h = owner_hub(m);
    if (!h)
        return -1;
    if (--m->depth == 0)
        mutex_release(h, m);
    return 0;
}

/* ======================================================================== */
/*  Conditions                                                              */
/* ======================================================================== */

int green_cond_init(green_cond_t *c)
{
    if (!c)
        return einval();
    *c = (green_cond_t){{0}, NULL};
    return 0;
}

int green_cond_destroy(green_cond_t *c)
{
    if (!c)
        return einval();
    return c->q.head ? ebusy() : 0;
}

/*
 * Between the unlock and the park nothing else runs (one hub, no switch), so no signal
 * can slip in between. A recursive mutex is released whatever its depth and relocked to
 * the same depth. The relock waits without deadline and through kills, so the caller
 * always returns holding m, with two exceptions where it cannot: EDEADLK (the root
 * waits for a mutex that nothing can ever unlock) and ENOMEM. If the relock finds the
 * owner dead, EOWNERDEAD is returned (holding m) in place of the wait's own outcome.
 */
int green_cond_wait(green_cond_t *c, green_mutex_t *m, int64_t deadline)
{
    if (!c || !mutex_valid(m))
        return einval();
    struct green_hub *h = owner_hub(m);
    if (!h || !home_hub(&c->hub))
        return -1;
    unsigned depth = m->depth;
    mutex_release(h, m);
    green__waiting_on(h, GW_COND, c);
    int r = green__wait(h, &c->q, NULL, deadline, GREEN_PARK_LOCAL);
    int err = errno;
    int relocked = mutex_lock_other(h, m, -1, GREEN_PARK_MASKED);
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
    if (!home_hub(&c->hub))
        return -1;
    struct green_waiter *w = green__waitq_pop(&c->q);
    if (w)
        green__waiter_hand_over(w);
    return 0;
}

int green_cond_broadcast(green_cond_t *c)
{
    if (!c)
        return einval();
    if (!home_hub(&c->hub))
        return -1;
    green__waitq_hand_over_all(&c->q);
    return 0;
}
