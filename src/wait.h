/*
 * wait.h — waiting on objects (layer 5, wait.c): the waiter records the sync layer
 * queues on its objects, their FIFO queues, the one waiting pattern (green__wait), and
 * the tiny lock of objects that other OS threads touch.
 *
 * Invariants:
 *  - a waiter record is never on the waiting green thread's stack (a shared-stack green
 *    thread's stack moves while it is parked); only its own green thread allocates and
 *    frees it, after unlinking it under the object's lock;
 *  - "done wins": a record is marked done only by the waker that popped it, under the
 *    object's lock, and what the waiter waited for is then already its own; the waiter
 *    reads `done` after retaking the lock, however its park ended, so nothing handed over
 *    is lost. A record still queued is not done: any other wake-up is spurious.
 */
#ifndef GREEN_WAIT_H
#define GREEN_WAIT_H

#include "sched.h"

/* A parked green thread's entry in an object's queue. Two cache lines: a waker on
 * another OS thread writes the first (the claim, the element, the note) and the waiter's
 * hub reads it back, so it is all that moves between their cores per hand-off; the second
 * is written when a record is first made for a green thread and after that only read, so
 * it stays cached on both sides. */
struct green_waiter {
    struct green_remote remote;    /* its wake-up from another OS thread */
    struct green_waiter *prev, *next;
    void *data;                    /* free for the object: e.g. an element buffer */
    uint32_t seq;                  /* g->wait_seq of the park it belongs to */
    uint8_t queued;
    uint8_t done;                  /* set by the waker (under the object's lock) */
    int16_t index;                 /* free for the object: e.g. which select clause */
    /* second line */
    struct green *g __attribute__((aligned(64)));
    struct green_hub *hub;
    uintptr_t aux;                 /* free for the object (not reset: set before use) */
};
/* struct green_waitq (public, in green.h) holds struct green_waiter pointers. */

/* A tiny lock for objects that other OS threads may touch (channels, events, futures). */
typedef int green__lock_t;
#if defined(__x86_64__) || defined(__i386__)
#define green_cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define green_cpu_relax() __asm__ __volatile__("yield")
#else
#define green_cpu_relax() ((void)0)
#endif
void green__lock_slow(green__lock_t *l);
static inline void green__lock(green__lock_t *l)
{
    if (GREEN_UNLIKELY(__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE)))
        green__lock_slow(l);
}
static inline void green__unlock(green__lock_t *l) { __atomic_store_n(l, 0, __ATOMIC_RELEASE); }

/* Waiting on an object whose wakers hand over what is awaited (marking the record done). */
enum green_park_mode {
    GREEN_PARK_LOCAL = 0,    /* only this hub can end the wait: a root nobody can wake gets EDEADLK */
    GREEN_PARK_EXTERNAL = 1, /* another OS thread may end it: the hub never calls it a deadlock */
    GREEN_PARK_MASKED = 2,   /* no deadline, under a shield from kills and scoped timeouts
                              * (cond_wait's relock); with GREEN_PARK_EXTERNAL or alone */
};
/* The mode for a wait on an object that other OS threads may reach (events, futures,
 * channels): LOCAL while the process has never started a second thread, else EXTERNAL. */
enum green_park_mode green__park_mode_shared(void);
/* Queue the current green thread on q and park until a waker hands over what it waits
 * for (0) or the wait ends otherwise (-1 + errno). `lock`, if any, guards q: held on
 * entry and on return, dropped while parked. The record is freed before it returns. */
int green__wait(struct green_hub *h, struct green_waitq *q, green__lock_t *lock,
                int64_t deadline, enum green_park_mode mode);
/* Make sure that the current green thread's next green__wait (not masked) on h cannot
 * fail for want of memory before it parks: a record in the cache, the shared stack's
 * spare in place. For a wait that follows something begun that cannot be taken back (a
 * pool job, an io_uring request): 0, or -1/ENOMEM to fail before beginning it. */
int green__wait_reserve(struct green_hub *h);
/* Under the object's lock, from any thread: w's wait (all of q's) has succeeded. */
void green__waiter_hand_over(struct green_waiter *w);
void green__waitq_hand_over_all(struct green_waitq *q);

/* The pieces, for objects that queue several records at once (channels, green_choose).
 * The waiter's green thread is h->current; w->seq is set for its next park. */
struct green_waiter *green__waiter_new(struct green_hub *h);
void green__waiter_free(struct green_hub *h, struct green_waiter *w);
void green__waiters_destroy(struct green_hub *h);  /* the hub's cache of free records */
void green__waitq_push(struct green_waitq *q, struct green_waiter *w);
void green__waitq_remove(struct green_waitq *q, struct green_waiter *w);
struct green_waiter *green__waitq_pop(struct green_waitq *q);
int green__waiter_park(struct green_hub *h, struct green_waiter *w, int64_t deadline, int external);
int green__waiter_wake(struct green_waiter *w, int err); /* any thread; call under the object's lock */

/* Selects (green_choose): one green thread waits on several objects at once, and exactly
 * one of its clauses may take something (a channel's element, a signal's delivery). The
 * select's lead record holds the claim word in its `done` byte: a waker that would
 * complete a clause first moves it PENDING → CLAIMING (green__select_claim), does its
 * work and wakes the owner, then publishes which clause and how (green__select_done);
 * the owner ends its wait by moving it PENDING → WITHDRAWN. Whoever moves it first wins,
 * on any OS thread. The lead's `index` tells the clause. */
enum { GREEN_SELECT_PENDING = 0, GREEN_SELECT_CLAIMING, GREEN_SELECT_DONE, GREEN_SELECT_CLOSED,
       GREEN_SELECT_WITHDRAWN };
static inline int green__select_claim(struct green_waiter *lead)
{
    uint8_t pending = GREEN_SELECT_PENDING;
    return __atomic_compare_exchange_n(&lead->done, &pending, GREEN_SELECT_CLAIMING, 0,
                                       __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}
/* After the claimer's work and wake-up: only then may the owner free its records. */
static inline void green__select_done(struct green_waiter *lead, int index, uint8_t how)
{
    lead->index = (int16_t)index;
    __atomic_store_n(&lead->done, how, __ATOMIC_RELEASE);
}

#endif /* GREEN_WAIT_H */
