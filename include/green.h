/*
 * libgreen — greenlet/gevent-style concurrency for C.
 *
 * One header, grouped by layer (see DESIGN.md). Conventions:
 *   - a call that fails returns -1 (or NULL) and sets errno;
 *   - every blocking call takes an absolute deadline in milliseconds from green_now()
 *     as its last argument: -1 waits forever, 0 only polls;
 *   - a stale handle gives ESRCH, a handle of another OS thread EXDEV; never a crash.
 */
#ifndef GREEN_H
#define GREEN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GREEN_VERSION_MAJOR 0
#define GREEN_VERSION_MINOR 1

/* ======================================================================== */
/*  Green threads: greenlet's primitive (layers 1-3)                        */
/* ======================================================================== */

/* A handle. It carries a generation: once the green thread is destroyed or reaped,
 * calls on a stale handle fail with ESRCH (for at least 65,535 later reuses of its slot). */
typedef struct green *green_t;
typedef void *(*green_fn)(void *arg);

/*
 * Stack modes.
 *
 * GREEN_STACK_DEDICATED: an mmap'd stack of its own (default 256 KiB, lazily committed,
 *   pooled). A guard page sits below it while vm.max_map_count allows; beyond that budget
 *   the stack limit and a canary are checked at every switch.
 *
 * GREEN_STACK_SHARED: the green thread runs on its OS thread's shared stack (greenlet's
 *   technique). When another shared-mode green thread takes the stack, the used part is
 *   copied to a heap buffer of exactly that size and copied back on resume, so a
 *   suspended green thread costs its real stack depth plus its control block.
 *   THE RULE: while a shared-mode green thread is suspended, no pointer into its stack
 *   (the address of one of its locals) may be used by anyone else — the bytes may have
 *   been moved to the heap and the addresses reused by another green thread. Pass data
 *   between green threads by value or in heap memory. Its stack is limited by the shared
 *   stack's size (GREEN_SHARED_STACK_SIZE, default 8 MiB, read once per process).
 */
enum { GREEN_STACK_DEDICATED = 0, GREEN_STACK_SHARED = 1 };

typedef struct green_attr {
    size_t stack_size;  /* dedicated mode: bytes, 0 = default (256 KiB); rounded up to pages */
    int stack_mode;     /* GREEN_STACK_DEDICATED or GREEN_STACK_SHARED */
    const char *name;   /* shown in reports; the string must outlive the green thread */
} green_attr_t;

/* Create a green thread that will run fn(arg); not started; its parent is the caller.
 * attr may be NULL. NULL + errno (EINVAL, ENOMEM). */
green_t green_new(green_fn fn, void *arg, const green_attr_t *attr);

/* Start or resume g, handing it value. Returns the value later switched back to us
 * (errno is 0 then), or NULL with errno set when something was thrown at us
 * (green_throw) or on error (ESRCH, EXDEV). Switching to yourself returns value.
 * Switching to a dead green thread goes to its nearest live ancestor. The value of the
 * switch that starts g is not passed to fn (fn gets its arg). When fn returns, its
 * result goes to the parent's pending switch. */
void *green_switch(green_t g, void *value);

/* Resume g so that its pending green_switch returns NULL with errno == err (err > 0).
 * An unstarted g dies at once without running, and the throw lands in its parent. */
void *green_throw(green_t g, int err);

green_t green_current(void);            /* main() is the root green thread of its OS thread */
green_t green_root(void);               /* the calling OS thread's root green thread */
green_t green_parent(green_t g);        /* NULL for the root; NULL+ESRCH/EXDEV */
int green_set_parent(green_t g, green_t parent); /* EINVAL on a cycle, EXDEV across threads */
int green_started(green_t g);           /* 1/0, -1+errno */
int green_dead(green_t g);              /* 1/0, -1+errno */
/* Destroy g. A suspended one is first resumed with ECANCELED (with the caller as its
 * parent) so it can clean up; if it still does not finish, -1/EBUSY and it lives on.
 * EPERM for the root, EBUSY for the running green thread or one the hub manages. */
int green_destroy(green_t g);
uint64_t green_id(green_t g);           /* unique per process; 0 + ESRCH on a bad handle */
const char *green_name(green_t g);      /* "" when unnamed; NULL + errno on a bad handle */

/* ======================================================================== */
/*  The hub: scheduler, timers, waiting (layers 4-5)                        */
/* ======================================================================== */

/*
 * Every OS thread lazily gets a hub: a FIFO run queue, timers and a poller (epoll, or
 * io_uring with GREEN_POLLER=uring). main() is the root green thread: when any green
 * thread, the root included, makes a blocking call, it parks and the hub runs the others.
 * There is no hub green thread: a parking green thread hands the CPU straight to the
 * next ready one, and polls for events itself when none is ready.
 *
 * Errors of blocking calls: ETIMEDOUT at the deadline, ECANCELED when the caller was
 * killed (then every later blocking call of it fails the same way), EDEADLK when nothing
 * could ever wake the wait (gevent's LoopExit; reported to the root), EINVAL, ENOMEM.
 *
 * fork(): the child gets a fresh hub on first use; only the green thread that called
 * fork() continues in the child, as the child's root. Other green threads (and their
 * handles) do not exist there; their memory is not reclaimed.
 */
int64_t green_now(void);                      /* monotonic milliseconds */
int64_t green_after(int64_t ms);              /* green_now() + ms; -1 stays -1 (never) */

green_t green_spawn(green_fn fn, void *arg);  /* runs soon on this thread's hub; NULL+errno */
green_t green_spawn_attr(const green_attr_t *attr, green_fn fn, void *arg);
green_t green_spawn_later(int64_t ms, green_fn fn, void *arg); /* starts after ms */
/* Wait until g finishes, then reap it (the handle goes stale). EDEADLK when g is the
 * caller, EINVAL when g is detached or the root or already has a joiner. */
int green_join(green_t g, void **result, int64_t deadline);
/* Wait for all n; reaps every one that finished, and sets its slot to NULL. 0 when all
 * finished, -1 + errno otherwise (the others are left unreaped). */
int green_joinall(green_t *gs, size_t n, int64_t deadline);
int green_detach(green_t g);                  /* reaped by itself when it finishes */
/* Cancel g: its current blocking call and every later one return -1/ECANCELED; if it
 * never started it never runs (join then gives NULL). Does not wait. EPERM for the root. */
int green_kill(green_t g);
int green_yield(void);                        /* let every other ready green thread run once */
int green_sleep(int64_t ms);                  /* a duration; 0 or -1 + errno */
int green_sleep_until(int64_t deadline);
/* Scoped deadline (gevent.Timeout): every blocking call until the matching pop gives up
 * at now+ms (or its own earlier deadline) with ETIMEDOUT. Scopes nest (up to 32). */
int green_timeout_push(int64_t ms);
int green_timeout_pop(void);
int green_cancelled(void);                    /* 1 when the caller has been killed */
const char *green_poller_name(void);          /* "epoll" or "uring": what this hub polls with */

/*
 * The one wait mechanism (for code built on libgreen): green_park() suspends the
 * caller until green_wake(g, 0) is called for it (returns 0), its deadline passes
 * (-1/ETIMEDOUT), it is killed (-1/ECANCELED), or nothing can wake it any more
 * (-1/EDEADLK, root only). green_wake(g, err) makes a parked g ready; its green_park
 * then returns err ? -1/err : 0. Waking a green thread that is not parked does nothing
 * and returns -1/EAGAIN.
 */
int green_park(int64_t deadline);
int green_wake(green_t g, int err);

/* ======================================================================== */
/*  Debugging and statistics                                                */
/* ======================================================================== */

typedef struct green_stats {
    uint64_t alive;            /* green threads of this hub not yet reaped (root excluded) */
    uint64_t ready;            /* in the run queue */
    uint64_t waiting;          /* parked */
    uint64_t switches;         /* context switches done by this OS thread */
    uint64_t timers;           /* pending timers */
    uint64_t guarded_stacks;   /* dedicated stacks with a guard page (process-wide) */
    uint64_t unguarded_stacks; /* dedicated stacks checked by canary (process-wide) */
    uint64_t shared_saved_bytes;  /* bytes of shared-stack copies currently held */
    uint64_t shared_copied_bytes; /* bytes copied in and out of the shared stack so far */
} green_stats_t;
int green_stats(green_stats_t *st);

#ifdef __cplusplus
}
#endif
#endif /* GREEN_H */
