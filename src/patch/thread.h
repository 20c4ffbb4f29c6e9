/*
 * thread.h — what the files of GREEN_PATCH_THREADS=1 share: thread.c (green pthreads,
 * cancellation, keys, once), queue.c (waiting on pthread objects), mutex.c (mutexes and
 * conditions), rwlock.c (read-write locks), barrier.c (barriers and spin locks) and
 * sem.c (semaphores).
 *
 * Every pthread object keeps its state in its own bytes, in glibc's layout where glibc
 * has a word for it (a mutex's lock word, a semaphore's value, a spin lock), so that an
 * object initialised by glibc (a static initializer, pthread_*_init on a plain thread)
 * is valid for green threads and the reverse. Waiting is the one thing glibc's bytes
 * cannot hold: a green thread that must wait queues a node (struct pwait) in a table of
 * its OS thread keyed by the object's address (queue.c) and parks; whoever releases
 * the object on that OS thread pops the node and wakes it. No node lives on a waiter's
 * stack (a shared-stack green thread's stack moves while it sleeps): a green pthread's
 * is in its struct pth, the root's in a thread-local variable, any other green thread's
 * is allocated for the wait.
 */
#ifndef PATCH_THREAD_H
#define PATCH_THREAD_H

#include "patch.h"

#include <pthread.h>
#include <setjmp.h>
#include <time.h>

#ifndef __GLIBC__
#error "the thread wrappers keep state in glibc's pthread object layouts"
#endif

/* A green thread's wait for one object: at most one at a time per green thread. */
struct pwait {
    const void *obj;           /* the object whose queue it is in; NULL: in none */
    green_t g;                 /* the waiter */
    struct pwait *next;        /* the object's queue, first come first served */
    struct pwait *last;        /* in a queue's first node: its last node */
    struct pwait *chain;       /* in a queue's first node: the next queue of its bucket */
    pthread_mutex_t **held;    /* where the waiter lists the mutexes it holds, or NULL */
    int kind;                  /* what the waiter wants of obj (PQ_*) */
    int done;                  /* set by whoever served it: what it waited for is its own */
    int err;                   /* with done: news for the waiter (EOWNERDEAD) */
    int allocated;             /* by pq_node, for a green thread with no powner */
    uint32_t bits;             /* PQ_FUTEX: the waiter's bitset (FUTEX_WAIT_BITSET) */
};

enum { PQ_MUTEX = 1, PQ_COND, PQ_READ, PQ_WRITE, PQ_BARRIER, PQ_SEM, PQ_ONCE, PQ_FUTEX };

/* What a green thread that locks pthread mutexes has: the list of those it holds
 * (through each mutex's __list.__next) and its wait node. */
struct powner {
    pthread_mutex_t *held;
    struct pwait w;
};

#define KEY_BLOCK 32
#define KEY_BLOCKS (PTHREAD_KEYS_MAX / KEY_BLOCK)

struct spec {
    unsigned seq;              /* the key's sequence number when value was set */
    void *value;
};

/* What a green pthread needs beyond its green thread; freed when it ends. */
struct pth {
    void *(*fn)(void *);
    void *arg;
    void *retval;
    jmp_buf *exit_jb;                 /* in tramp's frame */
    __pthread_unwind_buf_t *cleanup;  /* innermost pthread_cleanup_push, linked via __pad[0] */
    struct spec **spec;               /* KEY_BLOCKS blocks of KEY_BLOCK, on first use */
    uint8_t cancel_pending, cancel_disabled, cancel_async;
    uint8_t spread;                /* placed on a hub of GREEN_PATCH_HUBS: counted process-wide */
    struct powner own;
    sigset_t mask;                    /* its signal mask (sigmask.c) */
};

/* The caller's green pthread block: NULL in the root, a plain thread, or a green thread
 * started with libgreen's own API. */
static inline struct pth *pth_self(void) { return green_private_local(NULL); }

/* What the caller owns: its pth's, the root's (thread-local), NULL for a green thread of
 * libgreen's own API (it lists no mutexes; its waits allocate a node). (thread.c) */
struct powner *powner_self(void);

/* 1 when the caller's pthread calls are to be green: GREEN_PATCH_THREADS is on and the
 * caller is the initial thread or runs a hub (made here if need be). (thread.c) */
int green_here(void);

/* For a wrapper of a call that takes a pthread_t: -1 when t is not a green pthread (pass
 * it to libc), 0 when it is a live one of this hub, else the error number (ESRCH: stale
 * or another hub's). (thread.c) */
int pth_check(pthread_t t);
/* The same for the calls that work across hubs (GREEN_PATCH_HUBS): 0 when t is a live
 * green pthread of any hub. (thread.c) */
int pth_check_any(pthread_t t);

/* 1 when green threads of more than one OS thread use pthread objects: then nobody can
 * tell whether a waiter's object is released on another OS thread, and every wait looks
 * again every PQ_RECHECK_MS. (thread.c) */
int patch_many_hubs(void);
#define PQ_RECHECK_MS 10

/* A green pthread's wait is a pthread wait: under a shield (green_private.h) from
 * scoped timeouts (green_timeout_push), and, where the call is no cancellation point,
 * from kills too (a kill then takes effect after it). Returns what it could raise (each
 * part pushed on its own: a timeout shield needs memory only where no scope was ever
 * opened, and then there is none to shield from). errno is left alone. */
int shield(int what);
void unshield(int what);
#define SHIELD_ALL (GREEN_SHIELD_KILLS | GREEN_SHIELD_TIMEOUTS)

/* An absolute time on clk (CLOCK_REALTIME or CLOCK_MONOTONIC, the clocks glibc's timed
 * waits take) as a libgreen deadline, 0 when past; -1 for a bad clock or time (EINVAL). */
int64_t deadline_of(clockid_t clk, const struct timespec *abs);

/* ---- queues (queue.c): per OS thread, keyed by the object's address ---- */

/* Queue w (g, held and kind set by the caller) last on obj. */
void pq_push(struct pwait *w, const void *obj);
struct pwait *pq_first(const void *obj);
struct pwait *pq_pop(const void *obj);
/* Take w out of its queue, if it is in one. */
void pq_remove(struct pwait *w);
/* Serve w (already out of its queue): done with err, and wake its green thread. */
void pq_wake(struct pwait *w, int err);
/* Call fn(first node, arg) for each queue of kind (its first node's kind). */
void pq_each(int kind, void (*fn)(struct pwait *first, void *arg), void *arg);
/* The caller's node for a wait — o's (o: the caller's powner_self()), or allocated: then
 * pq_node_done frees it; NULL when none can be had: the caller looks again now and then
 * instead. */
struct pwait *pq_node(struct powner *o, int kind);
void pq_node_done(struct pwait *w);
/* Park the caller until it is woken (0), the absolute deadline (-1 none) or, with
 * recheck > 0, recheck ms from now (EAGAIN: time to look again, a spurious wake-up);
 * otherwise an error number: ETIMEDOUT (the deadline, or a scoped one), ECANCELED,
 * EDEADLK (the process has one thread, and nothing on its hub can wake the root; with
 * more, it looks again every PQ_RECHECK_MS instead). errno is left alone. */
int pq_park(int64_t deadline, int recheck);

/* ---- mutexes (mutex.c) ---- */

/* A green pthread ends: hand on the mutexes it still holds (its next waiter gets a
 * robust one with EOWNERDEAD). */
void pm_owner_gone(struct powner *o);

#endif /* PATCH_THREAD_H */
