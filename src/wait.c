/*
 * wait.c — waiting on objects (layer 5): waiter records, wait queues, the one waiting
 * pattern of the sync layer (green__wait), and the tiny lock of objects that other OS
 * threads touch.
 *
 * The sync layer (events, semaphores, channels, ...) queues waiters on its objects and
 * parks them with green__park. A waiter is a small record, never on the waiting green
 * thread's stack: while a shared-stack green thread is parked its stack may be copied
 * away, and a waker must be able to write into the record (a delivered element, the
 * clause that fired). Records come from a per-hub cache; only the waiting green thread
 * allocates and frees its own, always after it has unlinked it under the object's lock.
 *
 * Most objects (events, futures, semaphores, mutexes, conditions, groups) need no more
 * than one pattern, green__wait: queue a record, park until a waker hands over what was
 * awaited (marks the record done and wakes it), unlink, and let `done` decide the
 * outcome. Channels and green_choose, which queue several records at once, build on the
 * pieces below it directly.
 *
 * A waker on another OS thread cannot touch the waiter's hub: green__waiter_wake sends
 * it the scheduler's remote wake-up (sched.c), tagged with the park's sequence number,
 * so that a note arriving after the waiter timed out is dropped. The note is the
 * record's own (nothing to allocate: a wake-up cannot be lost to a failed malloc); a
 * record whose note is still on the hub's list is recycled by the drain, not by its
 * green thread.
 */
#include "wait.h"
#include "stack.h"

#include <sched.h>
#include <stddef.h>
#include <stdlib.h>

/* ---- waiter records ---- */

/* Line-aligned (wait.h), the second line blank. */
static struct green_waiter *waiter_alloc(void)
{
    struct green_waiter *w = aligned_alloc(_Alignof(struct green_waiter), sizeof *w);
    if (w) {
        w->g = NULL;
        w->hub = NULL;
        w->aux = 0;
    }
    return w;
}

struct green_waiter *green__waiter_new(struct green_hub *h)
{
    struct green_waiter *w = h->free_waiters;
    if (w)
        h->free_waiters = w->next;
    else if (!(w = waiter_alloc())) {
        errno = ENOMEM;
        return NULL;
    }
    struct green *g = h->current;
    w->remote = (struct green_remote){.g = g};
    w->prev = w->next = NULL;
    w->data = NULL;
    w->seq = g->wait_seq + 1;
    w->queued = w->done = 0;
    w->index = 0;
    /* the second line is written only when it changes (wait.h) */
    if (w->g != g)
        w->g = g;
    if (w->hub != h)
        w->hub = h;
    return w;
}

static void waiter_recycle(struct green_hub *h, struct green_waiter *w)
{
    w->next = h->free_waiters;
    h->free_waiters = w;
}

/* h->remote_release: the drain is done with the note of a record let go of meanwhile. */
static void waiter_note_released(struct green_hub *h, struct green_remote *n)
{
    waiter_recycle(h, (struct green_waiter *)(void *)((char *)n - offsetof(struct green_waiter, remote)));
}

int green__wait_reserve(struct green_hub *h)
{
    if (green__shared_spare_ready(h) != 0)
        return -1;
    if (!h->free_waiters) {
        struct green_waiter *w = waiter_alloc();
        if (!w) {
            errno = ENOMEM;
            return -1;
        }
        waiter_recycle(h, w);
    }
    return 0;
}

void green__waiter_free(struct green_hub *h, struct green_waiter *w)
{
    /* a note is marked pending under the object's lock, which the caller has held
     * since it unlinked w: what it reads here is final until the drain */
    if (green__remote_busy(&w->remote)) {
        w->remote.released = 1;
        h->remote_release = waiter_note_released;
    } else {
        waiter_recycle(h, w);
    }
}

void green__waiters_destroy(struct green_hub *h)
{
    struct green_waiter *w = h->free_waiters;
    while (w) {
        struct green_waiter *n = w->next;
        free(w);
        w = n;
    }
    h->free_waiters = NULL;
}

/* ---- queues (FIFO, O(1) removal) ---- */

void green__waitq_push(struct green_waitq *q, struct green_waiter *w)
{
    struct green_waiter *tail = q->tail;
    w->next = NULL;
    w->prev = tail;
    if (tail)
        tail->next = w;
    else
        q->head = w;
    q->tail = w;
    w->queued = 1;
}

void green__waitq_remove(struct green_waitq *q, struct green_waiter *w)
{
    if (!w->queued)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->prev = w->next = NULL;
    w->queued = 0;
}

struct green_waiter *green__waitq_pop(struct green_waitq *q)
{
    struct green_waiter *w = q->head;
    if (w)
        green__waitq_remove(q, w);
    return w;
}

/* ---- parking on a waiter ---- */

/* Park the current green thread on w (already queued by the caller, which then drops
 * its lock). `external` says that something outside this hub may wake it, so a wait
 * that nothing in the hub could end is not a deadlock. */
int green__waiter_park(struct green_hub *h, struct green_waiter *w, int64_t deadline, int external)
{
    if (external) {
        h->ext_refs++;
        h->watch = &w->remote; /* its wake-up is the likeliest one from another thread */
    }
    int r = green__park(h, deadline);
    if (external) {
        h->ext_refs--;
        if (h->watch == &w->remote)
            h->watch = NULL;
    }
    return r;
}

/* ---- who may end a wait ---- */

extern char __libc_single_threaded __attribute__((weak));

/* An object any OS thread may reach (an event, a future, a channel) can be ended by
 * another thread only once the process has started a second one: until then (glibc
 * 2.32+ says so; elsewhere assume threads exist) nobody but this hub can, and a root
 * waiting on it with nothing else to run is in a deadlock (EDEADLK, gevent's LoopExit).
 * Once threads exist, any of them may hold the object: no verdict (it would be a false
 * one for an object handed to a thread that has not used it yet). */
enum green_park_mode green__park_mode_shared(void)
{
    if (&__libc_single_threaded != NULL && __atomic_load_n(&__libc_single_threaded, __ATOMIC_RELAXED))
        return GREEN_PARK_LOCAL;
    return GREEN_PARK_EXTERNAL;
}

/* ---- waiting until served ---- */

/* "Done wins": `done` is read after the object is retaken, however the park ended, so a
 * waiter whose deadline passed or who was killed after the hand-over but before it ran
 * still succeeds, and nothing handed over is lost. Any other wake-up (green_wake, a late
 * note from another OS thread) leaves the record queued: it is spurious, and the waiter
 * parks again. */
/* A masked wait (a condition wait relocking its mutex: like pthread_cond_wait it returns
 * holding it even when cancelled) parks without deadline under a shield from kills and
 * scoped timeouts: a kill that comes meanwhile takes effect once it is over. */
int green__wait(struct green_hub *h, struct green_waitq *q, green__lock_t *lock,
                int64_t deadline, enum green_park_mode mode)
{
    if (mode & GREEN_PARK_MASKED) {
        if (green__shield_push(h, GREEN_SHIELD_KILLS | GREEN_SHIELD_TIMEOUTS) != 0)
            return -1;
        deadline = -1;
    }
    struct green_waiter *w = green__waiter_new(h);
    if (!w) {
        if (mode & GREEN_PARK_MASKED)
            green__shield_pop(h, GREEN_SHIELD_KILLS | GREEN_SHIELD_TIMEOUTS);
        errno = ENOMEM;
        return -1;
    }
    green__waitq_push(q, w);
    int r;
    do {
        w->seq = h->current->wait_seq + 1; /* each park is a new one for late wakers */
        if (lock)
            green__unlock(lock);
        r = green__waiter_park(h, w, deadline, (mode & GREEN_PARK_EXTERNAL) != 0);
        if (lock)
            green__lock(lock);
    } while (r == 0 && !w->done);
    int err = errno;
    green__waitq_remove(q, w);
    int done = w->done;
    green__waiter_free(h, w);
    if (mode & GREEN_PARK_MASKED)
        green__shield_pop(h, GREEN_SHIELD_KILLS | GREEN_SHIELD_TIMEOUTS);
    if (done)
        return 0;
    errno = err;
    return -1;
}

void green__waiter_hand_over(struct green_waiter *w)
{
    w->done = 1;
    green__waiter_wake(w, 0);
}

void green__waitq_hand_over_all(struct green_waitq *q)
{
    struct green_waiter *w;
    while ((w = green__waitq_pop(q)))
        green__waiter_hand_over(w);
}

/* ---- waking, from any thread ---- */

int green__waiter_wake(struct green_waiter *w, int err)
{
    struct green_hub *h = w->hub;
    struct green *g = w->g;
    if (h == green__tls_hub) {
        if (g->state == GS_WAITING && g->wait_seq == w->seq)
            return green__wake(h, g, err);
        return -1;
    }
    green__remote_wake(h, &w->remote, w->seq, err);
    return 0;
}

/* ---- a lock for objects shared between OS threads ---- */

void green__lock_slow(green__lock_t *l)
{
    for (int spins = 0;; spins++) {
        if (!__atomic_load_n(l, __ATOMIC_RELAXED) &&
            !__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
            return;
        if (spins > 64)
            green__sys.sched_yield();
        else
            green_cpu_relax();
    }
}
