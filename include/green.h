/*
 * libgreen — greenlet/gevent-style concurrency for C.
 *
 * One header, grouped by layer (see docs/DESIGN.md). Conventions:
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
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netdb.h>
#include <signal.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GREEN_VERSION_MAJOR 0
#define GREEN_VERSION_MINOR 1

/* Marks every function of this header: libgreen.so exports these and nothing else, in
 * the symbol version LIBGREEN_0.1 (src/libgreen.map; tests/exports_test.sh checks both). */
#if defined(__GNUC__)
#define GREEN_API __attribute__((visibility("default")))
#else
#define GREEN_API
#endif

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
 *   the stack limit and a canary are checked at every switch. Reserved at the spawn, and
 *   exchanged at the first run for a pooled one whose pages are resident, if any.
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
 *   Out of memory: a copy that malloc cannot hold goes to a spare buffer the hub keeps
 *   for that (a switch cannot fail half-way); while it is lent and no new one can be
 *   mapped, blocking calls, yields and switches on that hub fail with ENOMEM before
 *   they start.
 */
enum { GREEN_STACK_DEDICATED = 0, GREEN_STACK_SHARED = 1 };

typedef struct green_attr {
    size_t stack_size;  /* dedicated mode: bytes, 0 = default (256 KiB); rounded up to pages */
    int stack_mode;     /* GREEN_STACK_DEDICATED or GREEN_STACK_SHARED */
    const char *name;   /* shown in reports; the string must outlive the green thread */
    int hub;            /* green_spawn_attr: where it runs (see "Hubs on every core" below):
                         * 0 the spawning hub, n >= 1 hub number n (both: it stays there),
                         * GREEN_HUB_ANY the least loaded hub, and it may move. green_new:
                         * 0 or the caller's own hub number. */
} green_attr_t;

/* Create a green thread that will run fn(arg); not started; its parent is the caller.
 * attr may be NULL. NULL + errno (EINVAL, ENOMEM). */
GREEN_API green_t green_new(green_fn fn, void *arg, const green_attr_t *attr);

/* Start or resume g, handing it value. Returns the value later switched back to us
 * (errno is 0 then), or NULL with errno set when something was thrown at us
 * (green_throw) or on error (ESRCH, EXDEV). Switching to yourself returns value.
 * Switching to a dead green thread goes to its nearest live ancestor. The value of the
 * switch that starts g is not passed to fn (fn gets its arg). When fn returns, its
 * result goes to the parent's pending switch. */
GREEN_API void *green_switch(green_t g, void *value);

/* Resume g so that its pending green_switch returns NULL with errno == err (err > 0).
 * An unstarted g dies at once without running, and the throw lands in its parent. */
GREEN_API void *green_throw(green_t g, int err);

GREEN_API green_t green_current(void);  /* main() is the root green thread of its OS thread */
GREEN_API green_t green_root(void);     /* the calling OS thread's root green thread */
GREEN_API green_t green_parent(green_t g); /* NULL for the root; NULL+ESRCH/EXDEV */
GREEN_API int green_set_parent(green_t g, green_t parent); /* EINVAL on a cycle, EXDEV across threads */
GREEN_API int green_started(green_t g); /* 1/0, -1+errno */
GREEN_API int green_dead(green_t g);    /* 1/0, -1+errno */
/* Destroy g. A suspended one is first resumed with ECANCELED (with the caller as its
 * parent) so it can clean up; if it still does not finish, -1/EBUSY and it lives on.
 * EPERM for the root, EBUSY for the running green thread or one the hub manages. */
GREEN_API int green_destroy(green_t g);
GREEN_API uint64_t green_id(green_t g); /* unique per process; 0 + ESRCH on a bad handle */
GREEN_API const char *green_name(green_t g); /* "" when unnamed; NULL + errno on a bad handle */
/* Name g after its creation (NULL: unnamed), as attr.name does: the string is not copied
 * and must outlive the green thread. 0, or -1 + errno (ESRCH, EXDEV, EINVAL, ENOMEM). */
GREEN_API int green_set_name(green_t g, const char *name);

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
 * killed (then every later blocking call of it fails the same way, except inside a
 * green_shield_push scope, which holds the kill back until it ends), EDEADLK when nothing
 * could ever wake the wait (gevent's LoopExit; reported to the root), EINVAL, ENOMEM;
 * EMFILE or ENFILE from an OS thread's first wait or spawn when no fd is left for its
 * hub's poller. A call that fails so changes nothing; the next one tries again.
 *
 * fork(): the child gets a fresh hub on first use; only the green thread that called
 * fork() continues in the child, as the child's root. Other green threads (and their
 * handles) do not exist there; their memory is not reclaimed.
 */
GREEN_API int64_t green_now(void);            /* monotonic milliseconds */
GREEN_API int64_t green_after(int64_t ms);    /* green_now() + ms; -1 stays -1 (never) */

GREEN_API green_t green_spawn(green_fn fn, void *arg); /* runs soon on this thread's hub; NULL+errno */
/* green_spawn with attributes (attr may be NULL), in green_new's argument order */
GREEN_API green_t green_spawn_attr(green_fn fn, void *arg, const green_attr_t *attr);
GREEN_API green_t green_spawn_later(int64_t ms, green_fn fn, void *arg); /* starts after ms */
/* Wait until g finishes, then reap it (the handle goes stale). EDEADLK when g is the
 * caller, EINVAL when g is detached or the root or already has a joiner. */
GREEN_API int green_join(green_t g, void **result, int64_t deadline);
/* Wait for all n; reaps every one that finished, and sets its slot to NULL. 0 when all
 * finished, -1 + errno otherwise (the others are left unreaped). */
GREEN_API int green_joinall(green_t *gs, size_t n, int64_t deadline);
GREEN_API int green_detach(green_t g);        /* reaped by itself when it finishes */
/* Cancel g: its current blocking call and every later one return -1/ECANCELED (inside a
 * green_shield_push scope: only once the scope ends); if it never started it never runs
 * (join then gives NULL). Does not wait. EPERM for the root. A killed green thread still
 * completes what needs no wait (a green_join of one that has finished, a channel
 * operation that can go through at once). See docs/DESIGN.md, "Kills". */
GREEN_API int green_kill(green_t g);
/* Let every other ready green thread run once. In a killed green thread it still does,
 * then fails with ECANCELED (so a loop around it never starves the hub). */
GREEN_API int green_yield(void);
GREEN_API int green_sleep(int64_t ms);        /* a duration; 0 or -1 + errno */
GREEN_API int green_sleep_until(int64_t deadline);
/* Scoped deadline (gevent.Timeout): every blocking call until the matching pop gives up
 * at now+ms (or its own earlier deadline) with ETIMEDOUT. Scopes nest (up to 32). */
GREEN_API int green_timeout_push(int64_t ms);
GREEN_API int green_timeout_pop(void);
GREEN_API int green_cancelled(void); /* 1 when the caller has been killed (and is not shielded) */
/* Scoped shield from kills (Trio's shielded cancel scope; gevent lets a killed greenlet
 * clean up): until the matching pop, a kill of the caller, one that came before the push
 * included, is held back: blocking calls wait normally (their deadlines and the
 * green_timeout_push scopes still apply) and green_cancelled() says 0. At the pop that
 * ends the last shield a held kill takes effect again: the next blocking call fails with
 * ECANCELED. Meant for cleanup that must wait, e.g. a killed handler joining the green
 * threads it started, which point into its stack. Shields nest (65,535 deep). 0, or -1 +
 * errno: ENOMEM, EOVERFLOW; pop: EINVAL without a matching push. */
GREEN_API int green_shield_push(void);
GREEN_API int green_shield_pop(void);
GREEN_API const char *green_poller_name(void); /* "epoll" or "uring": what this hub polls with */

/*
 * Hubs on every core. Each OS thread has its hub; green_hubs_start(n) makes sure at least
 * n hubs serve the process: the caller's (hub 1 if no group exists yet) plus OS threads
 * libgreen starts for the rest, which block every signal and run their hub until the
 * process exits (idle: asleep in their poller, no CPU). n == 0: one hub per CPU the
 * process may run on (sched_getaffinity). Called again it extends the group, never
 * shrinks it. Returns the number of hubs, or -1 + errno: EINVAL (n < 0 or above 1024),
 * EAGAIN (no OS thread could be started), ENOMEM.
 *
 * Call it from a thread that lives as long as the process (main): the caller's hub is a
 * member for good, and green threads placed on it run only while its thread does.
 *
 * green_hub_count: the hubs serving now (1 before any green_hubs_start, once the caller
 * has a hub). green_hub_self: the caller's hub number, 1..green_hub_count() (the first
 * hub to exist, the caller's, is 1); 0 for an OS thread of the program's own that
 * started after the group and is not one of its hubs.
 *
 * Placement (green_attr_t.hub for green_spawn_attr): 0, the spawning hub; n, hub n (EINVAL
 * if there is no such hub); both stay where placed for life. GREEN_HUB_ANY: placed on
 * the least loaded hub (fewest live green threads), and while it is ready to run another
 * hub that has nothing to do may take it: it moves only before it first runs, or inside
 * green_yield, green_sleep or green_sleep_until (never while it runs, never inside any
 * other blocking call). A dedicated stack moves with it as is; a shared-stack one moves
 * only before it first runs (its frames hold the addresses of its hub's shared stack).
 * On other architectures than x86-64 every green thread moves only before it first runs
 * (their compilers keep the thread pointer in a register across calls, so code that read
 * a thread-local before a switch would read the old OS thread's after it).
 * Its fds, timers and waits work on whichever hub it is on. Order: until it first runs,
 * it waits behind the green threads of its hub that are ready and have run, and the two
 * kinds take turns (a hub does not start everything it was given before it finishes any;
 * what waits unstarted is what idle hubs take); otherwise run queues are FIFO.
 *
 * THE RULE of GREEN_HUB_ANY: after a green_yield or a sleep, the caller may be on another
 * OS thread. What belongs to the OS thread does not follow it: `__thread` variables
 * (yours and libraries' — a cached pointer to one, a per-thread allocator arena, a
 * random-number state), pthread_self(), a native pthread mutex held across the call
 * (unlock it on another thread and it is undefined), the thread's signal mask, CPU
 * affinity. So: do not hold or cache per-OS-thread state across those calls, or spawn
 * with hub 0 / a hub number (which stay put). errno is set on the OS thread the call
 * returns on; but glibc declares __errno_location const, so a compiler may reuse the
 * address it took before the call in the same function (`errno = 0; green_yield();
 * if (errno)` can read the old thread's): read errno only after such a call in a function
 * that did not touch it before, or use the return value. Everything of libgreen's
 * (handles, fds, channels, events, timers) follows the green thread.
 *
 * Across hubs, green_join, green_kill, green_detach and green_wake take handles of green
 * threads of any hub of the process (from any OS thread). A join waits for the other hub
 * to answer (within its deadline: a hub whose thread is blocked outside libgreen cannot);
 * a kill, detach or wake is sent and carried out by that hub when it next runs its loop:
 * 0 once sent (EPERM for a root, ESRCH for a stale handle), and what that hub finds
 * (EAGAIN: not parked; EINVAL: already detached or joined) is not reported. A join of
 * oneself is EDEADLK. green_choose's GREEN_WAIT_DEAD clauses take them too.
 * green_switch, green_throw and the rest stay within one hub (EXDEV);
 * a group belongs to the hub that uses it, and its members may run on any hub. After
 * fork() the child has one
 * hub, the forking green thread's: the group's other OS threads do not exist there
 * (green_hub_count() is 1 again, green_hubs_start starts a new group).
 */
enum { GREEN_HUB_ANY = -1 };
GREEN_API int green_hubs_start(int n);
GREEN_API int green_hub_count(void);
GREEN_API int green_hub_self(void);

/*
 * The one wait mechanism (for code built on libgreen): green_park() suspends the
 * caller until green_wake(g, 0) is called for it (returns 0), its deadline passes
 * (-1/ETIMEDOUT), it is killed (-1/ECANCELED), or nothing can wake it any more
 * (-1/EDEADLK, root only). green_wake(g, err) makes a parked g ready; its green_park
 * then returns err ? -1/err : 0 (err is an errno value, 0..4095, else EINVAL). Waking a
 * green thread that is not parked does nothing and returns -1/EAGAIN.
 */
GREEN_API int green_park(int64_t deadline);
GREEN_API int green_wake(green_t g, int err);

/* ======================================================================== */
/*  Synchronisation and structure (layer 6)                                 */
/* ======================================================================== */

/*
 * gevent.event, gevent.queue, gevent.lock and gevent.pool in C. Objects are plain
 * structs the user embeds, with _init/_destroy (channels, sized at creation, come from
 * green_chan_new/green_chan_free). Every blocking call ends in a deadline and fails with
 * -1/errno: ETIMEDOUT, ECANCELED (the caller was killed), EINVAL, EPERM, EPIPE (closed
 * channel). Waiters wake in FIFO order.
 *
 * Across OS threads: every call on these objects may be made from any thread (another
 * hub or a plain pthread, which gets a hub of its own the first time it must wait or
 * locks a mutex); a waiter is woken on its own hub, and hand-offs keep their FIFO order
 * whichever hubs the green threads are on. A mutex is still owned by one green thread:
 * unlocking from another (of any hub) fails with EPERM. Uncontended calls (a mutex that
 * is free, a semaphore with a permit) take no lock: one atomic compare-and-swap.
 * EDEADLK (a root waiting on what nothing can ever provide): for events, futures,
 * channels, semaphores and conditions only while the process has a single thread (any
 * other thread might set, send, release or signal); for a mutex while its owner and all
 * its waiters have been green threads of one hub (only the owner can unlock it).
 *
 * The fields below are private: use the functions.
 */
typedef struct green_waitq { void *head, *tail; } green_waitq_t;

/* Event (gevent.event.Event). A wait returns 0 if the event was set at any moment
 * during the wait, even if cleared again before the waiter ran. */
typedef struct green_event {
    int lock;
    int set;
    green_waitq_t q;
} green_event_t;
GREEN_API int green_event_init(green_event_t *ev);
GREEN_API int green_event_destroy(green_event_t *ev); /* EBUSY while green threads wait */
GREEN_API int green_event_set(green_event_t *ev);  /* wakes every waiter; any thread */
GREEN_API int green_event_clear(green_event_t *ev);
GREEN_API int green_event_is_set(green_event_t *ev); /* 1/0 */
GREEN_API int green_event_wait(green_event_t *ev, int64_t deadline);

/* Future (gevent's AsyncResult): set once with a value or a failure. */
typedef struct green_future {
    int lock;
    int state;      /* 0 pending, 1 value, 2 failed */
    int err;
    void *value;
    green_waitq_t q;
} green_future_t;
GREEN_API int green_future_init(green_future_t *f);
GREEN_API int green_future_destroy(green_future_t *f); /* EBUSY while green threads wait */
GREEN_API int green_future_set(green_future_t *f, void *value); /* EBUSY if already set; any thread */
GREEN_API int green_future_fail(green_future_t *f, int err); /* EBUSY if already set; any thread */
/* 0 and *value, or -1 with the failure's errno (or ETIMEDOUT/ECANCELED). */
GREEN_API int green_future_get(green_future_t *f, void **value, int64_t deadline);
GREEN_API int green_future_ready(green_future_t *f); /* 1/0 */

/* Counting semaphore; FIFO, no barging: a release hands the permit to the first waiter. */
typedef struct green_sem {
    long count;     /* permits; -1 while green threads wait (then there are none) */
    long max;       /* -1: unbounded */
    green_waitq_t q;
    int lock;       /* guards q */
    int spare_;
} green_sem_t;
GREEN_API int green_sem_init(green_sem_t *s, long count);
/* release past max: EOVERFLOW */
GREEN_API int green_sem_init_bounded(green_sem_t *s, long count, long max);
GREEN_API int green_sem_destroy(green_sem_t *s);   /* EBUSY while green threads wait */
GREEN_API int green_sem_acquire(green_sem_t *s, int64_t deadline);
GREEN_API int green_sem_release(green_sem_t *s);
GREEN_API long green_sem_value(green_sem_t *s);

/* Mutex. lock: EDEADLK on relock unless recursive; unlock: EPERM unless the caller owns
 * it. When the owner is killed or finishes without unlocking, the next lock acquires it
 * and returns EOWNERDEAD (like a robust pthread mutex): the new owner repairs the state
 * and owns the mutex. */
enum { GREEN_MUTEX_NORMAL = 0, GREEN_MUTEX_RECURSIVE = 1 };
typedef struct green_mutex {
    void *owner;            /* the owner's handle; bit 0: green threads wait */
    void *next_held;        /* the owner's list of held mutexes */
    unsigned depth;
    int type;
    int owner_dead;
    int lock;               /* guards q */
    green_waitq_t q;
    int xhub;               /* an owner and a waiter were ever on different hubs */
    int owner_tid;          /* the OS thread of the owner's hub, as its last owner set it */
} green_mutex_t;
GREEN_API int green_mutex_init(green_mutex_t *m, int type);
GREEN_API int green_mutex_destroy(green_mutex_t *m); /* EBUSY while locked or waited on */
GREEN_API int green_mutex_lock(green_mutex_t *m, int64_t deadline);
GREEN_API int green_mutex_trylock(green_mutex_t *m); /* EBUSY when held by another */
GREEN_API int green_mutex_unlock(green_mutex_t *m);

/* Condition variable, used with a green_mutex_t. */
typedef struct green_cond {
    green_waitq_t q;
    int lock;               /* guards q */
    int spare_;
} green_cond_t;
GREEN_API int green_cond_init(green_cond_t *c);
GREEN_API int green_cond_destroy(green_cond_t *c); /* EBUSY while green threads wait */
/* Unlocks m, waits, relocks m (also on timeout and cancellation) before returning. */
GREEN_API int green_cond_wait(green_cond_t *c, green_mutex_t *m, int64_t deadline);
GREEN_API int green_cond_signal(green_cond_t *c);
GREEN_API int green_cond_broadcast(green_cond_t *c);

/* Channel (gevent's Queue/Channel, Go's chan): elements of elem_size bytes are copied in
 * and out; capacity 0 is a rendezvous. After close, senders get EPIPE and receivers
 * drain what is buffered, then get EPIPE. Every call works from any OS thread. */
typedef struct green_chan green_chan_t;
GREEN_API green_chan_t *green_chan_new(size_t elem_size, size_t capacity); /* NULL + EINVAL/ENOMEM */
GREEN_API int green_chan_free(green_chan_t *ch);   /* EBUSY while green threads wait */
GREEN_API int green_chan_send(green_chan_t *ch, const void *elem, int64_t deadline);
GREEN_API int green_chan_recv(green_chan_t *ch, void *elem, int64_t deadline);
GREEN_API int green_chan_close(green_chan_t *ch);  /* EPIPE if already closed */
GREEN_API size_t green_chan_len(green_chan_t *ch); /* elements buffered */

/* Wait on several things at once (Go's select, gevent.wait/select): exactly one of the n
 * clauses completes, and its index is returned (chosen uniformly at random among those
 * ready at once); -1 + errno otherwise (ETIMEDOUT, ECANCELED, EDEADLK, ENOMEM; EINVAL for
 * a bad clause, and a GREEN_WAIT_DEAD clause's green_join errors). Only the completed
 * clause's out fields (err, revents, value) are written.
 *  - GREEN_CHAN_SEND, GREEN_CHAN_RECV (ch, elem): the operation is done, in FIFO order
 *    with the channel's other waiters; on a closed channel, with err = EPIPE.
 * The others complete by observing, and leave their object as it was:
 *  - GREEN_WAIT_EVENT (event): the event is set (or was, at any moment of the wait);
 *  - GREEN_WAIT_FUTURE (future): it is ready: value = its value, or err = its failure;
 *  - GREEN_WAIT_DEAD (g): green thread g (of any hub) has finished. It is not reaped:
 *    join it. While the choose waits it counts as g's joiner (green_join's rules). For g
 *    of another hub, what only g's hub can check (another joiner, a detach that was on
 *    its way) may come back as the clause's err (EINVAL, ESRCH) instead of a failure;
 *  - GREEN_WAIT_FD (fd, events = GREEN_READ | GREEN_WRITE): fd is ready: revents = the
 *    events ready; err = EBADF when fd is closed with green_close meanwhile, EBUSY when
 *    another green thread waits on it for that direction, or the poller's error;
 *  - GREEN_WAIT_SIGNAL (signo): signo arrived, as for green_signal_wait (blocked in the
 *    calling OS thread and left blocked; one delivery serves every green thread waiting
 *    for it; a delivery that comes when the choose has completed otherwise stays pending);
 *    err = why it cannot be waited for (ENOMEM; EMFILE, ENFILE: no signalfd), the
 *    delivery left pending.
 * Zero the fields a clause does not use (designated initializers do). */
enum {
    GREEN_CHAN_SEND = 1, GREEN_CHAN_RECV = 2,
    GREEN_WAIT_EVENT = 3, GREEN_WAIT_FUTURE = 4, GREEN_WAIT_DEAD = 5, GREEN_WAIT_FD = 6,
    GREEN_WAIT_SIGNAL = 7,
};
typedef struct green_clause {
    green_chan_t *ch;       /* GREEN_CHAN_SEND, GREEN_CHAN_RECV */
    int op;
    void *elem;             /* what to send, or where to receive */
    int err;                /* out: 0, or why the clause completed without its operation */
    green_event_t *event;   /* GREEN_WAIT_EVENT */
    green_future_t *future; /* GREEN_WAIT_FUTURE */
    green_t g;              /* GREEN_WAIT_DEAD */
    int fd;                 /* GREEN_WAIT_FD, */
    int events;             /*   for GREEN_READ and/or GREEN_WRITE */
    int signo;              /* GREEN_WAIT_SIGNAL */
    int revents;            /* out (GREEN_WAIT_FD): the events ready */
    void *value;            /* out (GREEN_WAIT_FUTURE): its value */
} green_clause_t;
GREEN_API int green_choose(green_clause_t *clauses, int n, int64_t deadline);

/* Group and pool (gevent.pool.Group/Pool). A group owns its members: they are reaped
 * when they finish, joined or not. limit 0 = unbounded. A group belongs to the hub of the
 * thread that uses it; its members may run on any hub (green_group_spawn_attr's
 * attr.hub: 0 the caller's, n hub n, GREEN_HUB_ANY the least loaded one; members stay on
 * the hub they are placed on). join waits for them wherever they run, kill kills them
 * all, size counts them until their end has reached the group's hub, and a pool's slot
 * is free once it has. */
typedef struct green_group {
    size_t limit;
    size_t size;            /* members not finished */
    void *members;          /* private list */
    green_waitq_t slots;    /* spawners waiting for room */
    green_waitq_t joiners;  /* green_group_join callers */
} green_group_t;
GREEN_API int green_group_init(green_group_t *g, size_t limit);
/* Spawns fn(arg) as a member, waiting while the pool is full. NULL + errno. */
GREEN_API green_t green_group_spawn(green_group_t *g, green_fn fn, void *arg, int64_t deadline);
/* The same with attributes (attr may be NULL): stack mode and size, name, hub. NULL +
 * errno (EINVAL: no such hub). */
GREEN_API green_t green_group_spawn_attr(green_group_t *g, green_fn fn, void *arg,
                                         const green_attr_t *attr, int64_t deadline);
GREEN_API int green_group_join(green_group_t *g, int64_t deadline); /* waits for every member */
GREEN_API int green_group_kill(green_group_t *g);  /* kills every member; join then returns */
GREEN_API size_t green_group_size(green_group_t *g);
GREEN_API int green_group_destroy(green_group_t *g); /* EBUSY while it has members */

/* ======================================================================== */
/*  Cooperative I/O and networking (layer 6)                                */
/* ======================================================================== */

/*
 * gevent.socket, gevent.server, gevent.threadpool, gevent.resolver, gevent.subprocess
 * and gevent.signal in C. Calls look like POSIX plus a deadline; inside they park the
 * calling green thread on the hub's poller instead of blocking the OS thread. Errors:
 * ETIMEDOUT, ECANCELED, EBADF (the fd was closed with green_close while we waited),
 * EBUSY (someone already waits for the same direction on this fd), plus what the system
 * call says. A call that can complete without waiting does so even in a killed green
 * thread.
 *
 * Flags left as found: reads and writes change no fd's flags except where said here.
 *  - sockets: every call passes MSG_DONTWAIT;
 *  - pipes, FIFOs, ttys, and fds 0..2 whatever they are (other processes share them: the
 *    shell's terminal, the next program of a pipeline, a child after fork): never
 *    switched. Where the kernel has RWF_NOWAIT for the fd (anonymous pipes on recent
 *    Linux) each call is non-blocking by itself; elsewhere (FIFOs, ttys) the call waits
 *    for readiness first, then is made: a read after POLLIN returns what is there, a
 *    FIFO write after POLLOUT moves at most PIPE_BUF bytes per attempt (the room
 *    POLLOUT promises), a tty write goes to the thread pool (a tty's POLLOUT promises
 *    room for one byte, and its write waits for the terminal to drain);
 *  - switched to O_NONBLOCK: other pollable fds at their first green read or write
 *    (eventfd, timerfd, signalfd, inotify, devices), and the sockets given to
 *    green_accept and green_connect;
 *  - an fd its owner made O_NONBLOCK is used as it is.
 * Regular files go to io_uring (GREEN_POLLER=uring) or the thread pool (with deadline
 * 0, "do not wait", a file's read or write, or a tty's write, is made right away on the
 * hub's thread).
 *
 * SIGPIPE: no call of libgreen raises it. A write to a socket, pipe or FIFO whose reader
 * has gone fails with -1/EPIPE (or returns the count written before), and the process
 * lives on: sockets are written with MSG_NOSIGNAL; a pipe is written with SIGPIPE
 * blocked in the calling OS thread for the system call, and the SIGPIPE it raised is
 * taken before the mask is restored (one the program had pending stays pending; its
 * handler is not called). Writes of green_dump and the debugging reports are the same.
 * The program's own write(2) keeps POSIX's SIGPIPE, and so does an unmodified program
 * under libgreen-patch.so.
 *
 * Close fds that green calls have waited on with green_close, not close(2): the hub
 * remembers the fds it watches, and a plain close leaves it believing the number is
 * still watched (a later fd with that number may then miss wake-ups).
 */
enum { GREEN_READ = 1, GREEN_WRITE = 2 };
/* Wait until fd is readable and/or writable: the events that are ready (> 0). One
 * reader and one writer may wait on an fd at a time; a second gets EBUSY. */
GREEN_API int green_wait_fd(int fd, int events, int64_t deadline);
/* Wake every green thread waiting on fd with EBADF, forget it, then close(2) it. */
GREEN_API int green_close(int fd);

GREEN_API ssize_t green_read(int fd, void *buf, size_t n, int64_t deadline); /* >= 1 byte, 0 at EOF */
GREEN_API ssize_t green_readv(int fd, const struct iovec *iov, int iovcnt, int64_t deadline);
/* Writes all n bytes (0 < n) and returns n. If it fails part way, it returns the count
 * written so far (< n) with errno set; -1 when nothing was written. Same for writev/send. */
GREEN_API ssize_t green_write(int fd, const void *buf, size_t n, int64_t deadline);
GREEN_API ssize_t green_writev(int fd, const struct iovec *iov, int iovcnt, int64_t deadline);
GREEN_API ssize_t green_recv(int fd, void *buf, size_t n, int flags, int64_t deadline);
GREEN_API ssize_t green_send(int fd, const void *buf, size_t n, int flags, int64_t deadline);
GREEN_API ssize_t green_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *from,
                                 socklen_t *fromlen, int64_t deadline);
GREEN_API ssize_t green_sendto(int fd, const void *buf, size_t n, int flags,
                               const struct sockaddr *to, socklen_t tolen,
                               int64_t deadline); /* one datagram */
GREEN_API ssize_t green_recvmsg(int fd, struct msghdr *msg, int flags, int64_t deadline);
GREEN_API ssize_t green_sendmsg(int fd, const struct msghdr *msg, int flags, int64_t deadline);
/* The accepted fd is O_NONBLOCK and O_CLOEXEC. */
GREEN_API int green_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int64_t deadline);
GREEN_API int green_connect(int fd, const struct sockaddr *addr, socklen_t addrlen, int64_t deadline);

/* Helpers: host/port strings as for getaddrinfo (host NULL = any address for
 * listen/bind, the loopback for connect; "" is EINVAL; port "0" = a free one). They
 * return an fd (non-blocking, close-on-exec), or -1 + errno. A name or service that does
 * not resolve keeps its cause: errno is mapped from the resolver's EAI_* code, and
 * green_last_resolve_error() returns that code (for gai_strerror):
 *   ENOENT  no such host or service, or no address for it (EAI_NONAME, EAI_SERVICE,
 *           EAI_NODATA, EAI_ADDRFAMILY); no socket call of these helpers gives ENOENT
 *   EAGAIN  the resolver failed for now (EAI_AGAIN: no answer, try later)
 *   EIO     the resolver failed for good (EAI_FAIL)
 *   ENOMEM  EAI_MEMORY; EINVAL: EAI_BADFLAGS, EAI_FAMILY, EAI_SOCKTYPE
 *   errno   as the resolver left it, for EAI_SYSTEM (ETIMEDOUT at the deadline,
 *           ECANCELED when the caller was killed)
 * Any other errno is a socket call's (ECONNREFUSED, EADDRINUSE, ...): then
 * green_last_resolve_error() is 0. */
GREEN_API int green_tcp_listen(const char *host, const char *port, int backlog);
/* tries each address */
GREEN_API int green_tcp_connect(const char *host, const char *port, int64_t deadline);
GREEN_API int green_udp_bind(const char *host, const char *port);
/* The EAI_* code of the calling OS thread's last green_tcp_listen, green_tcp_connect or
 * green_udp_bind, 0 when it did not fail in name resolution. Kept like errno (per OS
 * thread): read it right after the failed call, before the green thread's next blocking
 * call (another green thread's helper call sets it too). */
GREEN_API int green_last_resolve_error(void);
GREEN_API int green_unix_listen(const char *path, int backlog);
GREEN_API int green_unix_connect(const char *path, int64_t deadline);
/* The port a socket is bound to (for port "0"), or -1+errno. */
GREEN_API int green_socket_port(int fd);

/* DNS: getaddrinfo on the thread pool (system semantics: /etc/hosts, nsswitch), or
 * c-ares with GREEN_RESOLVER=ares. Returns 0 or an EAI_* code; EAI_SYSTEM with errno
 * ETIMEDOUT or ECANCELED when the deadline passes or the caller is killed. Free the
 * result with green_freeaddrinfo. */
GREEN_API int green_getaddrinfo(const char *host, const char *service, const struct addrinfo *hints,
                                struct addrinfo **res, int64_t deadline);
GREEN_API void green_freeaddrinfo(struct addrinfo *res);

/* Run fn(arg) on the bounded pool of OS threads (GREEN_THREADPOOL, default 10), parking
 * only the caller. 0 and *result, or -1: ETIMEDOUT/ECANCELED (the job still runs to the
 * end on its OS thread; its result is dropped), ENOMEM. */
GREEN_API int green_run_blocking(void *(*fn)(void *), void *arg, void **result, int64_t deadline);

/* Wait for signo (read from a signalfd; blocked in the calling OS thread and left
 * blocked: block it in every thread for kill(2) to reach it): returns signo. One
 * delivery serves every green thread waiting for it. EINVAL for SIGKILL, SIGSTOP,
 * glibc-reserved or out-of-range numbers. */
GREEN_API int green_signal_wait(int signo, int64_t deadline);
/* The same for any signal of *set: returns the one that came. EINVAL when set is NULL,
 * empty, or holds a signal that cannot be waited for (as above). */
GREEN_API int green_signal_wait_set(const sigset_t *set, int64_t deadline);
/* Like green_signal_wait_set, but the delivery is consumed (sigwaitinfo(2)): of several
 * green threads taking the same signal, one gets each delivery (those in
 * green_signal_wait(_set) are served as well). Fills *info (if not NULL). */
GREEN_API int green_signal_take(const sigset_t *set, siginfo_t *info, int64_t deadline);
/* waitpid(2) that parks (pidfd where the kernel has it): pid > 0 (EINVAL), a child
 * (ECHILD); waits for termination only; returns pid. A deadline or kill leaves the
 * child unreaped for a later call. */
GREEN_API pid_t green_waitpid(pid_t pid, int *status, int64_t deadline);

/* Stream server (gevent.server.StreamServer): handler(client_fd, arg) runs in a green
 * thread per connection; the client fd is closed when it returns. green_serve starts
 * accepting in the background on the calling hub (opts->threads > 1: that many hubs in
 * all, the others on OS threads of their own; TCP: each with its own listener on the
 * same address, SO_REUSEPORT being set on listen_fd too; Unix sockets: all share
 * listen_fd) and returns at once. Accept failures from exhaustion (EMFILE, ENFILE,
 * ENOBUFS, ENOMEM) back off (1..100 ms) and retry. NULL + errno: EINVAL (NULL handler,
 * or with opts->tls a NULL tls_handler; threads < 0, not a listening stream socket, bad
 * attr), EBADF, ENOTSOCK, ENOMEM, the bind error of an extra listener, or the TLS
 * configuration's error (ENOTSUP, EINVAL, ENOENT; green_tls_error() says why). */
typedef void (*green_handler)(int client_fd, void *arg);
typedef struct green_tls green_tls_t;                 /* below: secure sockets */
typedef struct green_tls_config green_tls_config_t;
typedef void (*green_tls_handler)(green_tls_t *tls, int client_fd, void *arg);
typedef struct green_serve_opts {
    size_t max_conns;       /* at most this many handlers at once (per hub); 0 = no cap */
    int threads;            /* hubs serving; 0 or 1 = only the calling one */
    green_attr_t attr;      /* for the handlers' green threads */
    /* TLS (fields added last: older initialisers leave them zero). With tls set, each
     * connection's green thread first runs green_tls_accept (giving up after
     * tls_handshake_ms, 0 = 10,000 ms); a failed handshake just closes that connection.
     * Then tls_handler(tls, client_fd, arg) runs instead of the handler (required with
     * tls; the handler may be NULL); when it returns, green_tls_close and the fd is
     * closed. The config and its strings must outlive the server. green_serve checks it
     * (loads its files): ENOTSUP without TLS support, EINVAL or ENOENT for a bad
     * certificate or key. */
    const green_tls_config_t *tls;
    green_tls_handler tls_handler;
    int64_t tls_handshake_ms;
} green_serve_opts_t;
typedef struct green_server green_server_t;
GREEN_API green_server_t *green_serve(int listen_fd, green_handler handler, void *arg,
                                      const green_serve_opts_t *opts);
/* Stop gracefully: set the server's stopping event (green_server_stopping), stop
 * accepting, wait for the handlers until the deadline, then kill the rest (their blocking
 * calls fail with ECANCELED; one may shield its cleanup, green_shield_push) and wait for
 * them to return; free srv. listen_fd is left open. 0, or -1: EINVAL, EXDEV (not the OS
 * thread that called green_serve), ENOMEM (nothing stopped), ECANCELED (the caller was
 * killed) or ETIMEDOUT (a green_timeout_push scope of the caller ended first): in those
 * two the stop still completes by itself, and srv must not be used again. */
GREEN_API int green_server_stop(green_server_t *srv, int64_t deadline);
/* The event green_server_stop sets when it begins: a handler waits on it (green_event_wait,
 * or a GREEN_WAIT_EVENT clause of green_choose beside its I/O) or polls it
 * (green_event_is_set) to finish its client early, before the stop's deadline kills it.
 * Valid until green_server_stop returns, so always within a handler; any OS thread (the
 * handlers of opts.threads > 1 hubs too: with those, a handler may start before
 * green_serve has returned srv to its caller). NULL + EINVAL when srv is NULL. */
GREEN_API green_event_t *green_server_stopping(green_server_t *srv);

/* ------------------------------------------------------------------------ */
/* Secure sockets: TLS over a connected socket (gevent.ssl), on OpenSSL 3.  */
/* ------------------------------------------------------------------------ */
/*
 * Every call parks only the calling green thread (non-blocking OpenSSL over the fd, the
 * same fd wait as green_read): deadlines, green_timeout_push scopes and kills (ECANCELED)
 * apply everywhere, the handshake included. The fd is used with MSG_DONTWAIT (its flags
 * are left as found) and stays the caller's: green_tls_close frees the session, not the fd.
 * Built without OpenSSL (libssl-dev), every call fails with ENOTSUP.
 *
 * Errors: -1 (NULL) + errno, and a readable reason in green_tls_error():
 *   EPROTO        the peer's certificate failed verification (expired, self-signed,
 *                 unknown CA, wrong host: the reason says which), or the peer broke the
 *                 protocol (garbage instead of TLS, an alert, no common version/cipher);
 *   ECONNABORTED  the stream ended without close_notify (truncated: the peer's process
 *                 died or a middlebox cut it), distinct from green_tls_read's 0;
 *   ECONNRESET, EPIPE, ...: the socket's own error; ETIMEDOUT, ECANCELED: as every call;
 *   EINVAL        bad arguments or configuration (a file that is not a certificate or key,
 *                 no servername to verify); ENOENT, EACCES: a configured file cannot be read.
 *
 * Configurations are cached by content (an SSL_CTX per distinct configuration and role,
 * for the process's life): building one loads its files once (a file changed under the
 * same path is not read again), later calls are cheap. A TCP fd gets TCP_NODELAY.
 */
/* One more certificate a server presents to clients that ask for `servername` by SNI
 * (exact, or "*.example.com" for one label); the config's own is the default. */
typedef struct green_tls_cert {
    const char *servername;
    const char *cert_file;   /* PEM: the certificate, then its chain */
    const char *key_file;    /* PEM private key; NULL: in cert_file */
} green_tls_cert_t;
enum {
    GREEN_TLS_VERIFY_DEFAULT = 0, /* client: verify the server (chain + hostname); server: no client certificate */
    GREEN_TLS_VERIFY_NONE = 1,    /* client: accept any server certificate (testing only) */
    GREEN_TLS_VERIFY_PEER = 2,    /* client: as default; server: require a client certificate signed by ca_* */
};
enum { GREEN_TLS_1_2 = 0x0303, GREEN_TLS_1_3 = 0x0304 }; /* min_version, max_version */
/* A zeroed config is a safe client: the system's CA store, hostname verification, SNI,
 * TLS 1.2 or later, session resumption. A server needs cert_file (and key_file). */
struct green_tls_config {
    const char *cert_file;   /* PEM certificate then chain: a server's, or a client's own */
    const char *key_file;    /* PEM private key; NULL: in cert_file */
    const char *ca_file;     /* PEM CAs to verify the peer with; with ca_dir: */
    const char *ca_dir;      /* a c_rehash'd directory; both NULL: the system's store */
    int verify;              /* GREEN_TLS_VERIFY_* */
    int min_version;         /* GREEN_TLS_1_2 (0) or GREEN_TLS_1_3 */
    int max_version;         /* 0: the newest OpenSSL has; GREEN_TLS_1_2 to stay below 1.3 */
    const char *alpn;        /* "h2,http/1.1": a client offers these, a server picks the
                              * first of its list the client offers (none: no ALPN) */
    const green_tls_cert_t *certs; /* server: certificates chosen by SNI */
    size_t ncerts;
    int no_resumption;       /* server: no session tickets nor cache; client: no reuse of
                              * sessions (by default one is kept per servername and port) */
    const char *ciphers;     /* TLS 1.2 cipher list (OpenSSL syntax); NULL: OpenSSL's default */
    const char *groups;      /* key exchange groups, "X25519:P-256"; NULL: OpenSSL's default */
};
/* Handshake as a client over connected fd. servername: sent by SNI (unless an IP
 * address) and verified against the certificate (a DNS name or an IP address); it may be
 * NULL only with GREEN_TLS_VERIFY_NONE. cfg NULL: the zeroed config. */
GREEN_API green_tls_t *green_tls_connect(int fd, const char *servername, const green_tls_config_t *cfg,
                                         int64_t deadline);
/* Handshake as a server over accepted fd (cfg->cert_file required). */
GREEN_API green_tls_t *green_tls_accept(int fd, const green_tls_config_t *cfg, int64_t deadline);
/* A session may be used by two green threads at once, one reading while the other
 * writes (full duplex); not by two readers or two writers. */
/* Read 1..n bytes of plaintext; 0 only when the peer sent close_notify (n == 0: 0);
 * -1/ECONNABORTED when the stream ended without it. */
GREEN_API ssize_t green_tls_read(green_tls_t *t, void *buf, size_t n, int64_t deadline);
/* Write all n bytes and return n; failing part way: the count written so far (< n) with
 * errno set, -1 when nothing was. After a write failed part way (deadline, kill) the
 * stream is out of step: later writes fail with EPIPE (reads still work). */
GREEN_API ssize_t green_tls_write(green_tls_t *t, const void *buf, size_t n, int64_t deadline);
/* Send close_notify (not waiting for the peer's) and free t, whatever happens; the fd
 * stays open. 0, or -1 + errno when close_notify could not be sent (t is freed anyway). */
GREEN_API int green_tls_close(green_tls_t *t, int64_t deadline);
/* The last TLS failure of the calling green thread, readable ("certificate verify
 * failed: certificate has expired"); "" when it had none. Kept per green thread (the
 * last 64 green threads of an OS thread that failed); valid until its next green_tls_
 * call. */
GREEN_API const char *green_tls_error(void);
/* After the handshake: the protocol ALPN chose ("" none), whether the session was
 * resumed (1/0), the OpenSSL SSL object (an SSL *) for anything else. */
GREEN_API const char *green_tls_alpn(green_tls_t *t);
GREEN_API int green_tls_resumed(green_tls_t *t);
GREEN_API void *green_tls_ssl(green_tls_t *t);

/* Monkey patching: libgreen-patch.so, a library of its own, makes libc's blocking calls
 * cooperative in green threads of unmodified code; its API is in green_patch.h. */

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
    /* green threads of this hub by state (root included: it is running or waiting) */
    uint64_t state_new;        /* created, never run */
    uint64_t state_running;    /* 1: the caller */
    uint64_t state_suspended;  /* switched away from with green_switch */
    uint64_t state_ready;
    uint64_t state_waiting;
    uint64_t state_dead;       /* finished, not yet reaped */
    uint64_t loops;            /* rounds of the hub's poller (event loop iterations) */
    uint64_t fds;              /* fds green threads of this hub wait on */
    uint64_t pool_queued;      /* jobs waiting for a thread-pool thread (process-wide) */
    /* Stack high-water marks: stack_hwm[i] counts green threads whose deepest stack use
     * was at most 1 KiB << i (the last bucket: more). Live ones, measured now (dedicated
     * stacks: a reused pooled stack may show a past owner's depth unless GREEN_STACK_HWM
     * is set), plus, with GREEN_STACK_HWM=1 in the environment, every one reaped so far
     * (measured exactly at its end). Shared mode: the deepest stack copied out. */
    uint64_t stack_hwm[16];
    uint64_t stack_hwm_max;    /* the deepest of those, bytes */
} green_stats_t;
/* Fill st for the calling thread's hub: 0, or -1 + EINVAL (st NULL) / ENOMEM. Walks the
 * live green threads (and their stacks' resident pages): O(green threads). */
GREEN_API int green_stats(green_stats_t *st);

/* Print every green thread of the calling thread's hub to f: id, name, state (what it
 * waits on and for how long), spawner, stack mode and high-water mark, and a backtrace
 * (suspended ones included). 0, or -1 + errno (EINVAL: f NULL; ENOMEM; EIO: write error).
 * With GREEN_DUMP_SIGNAL=SIGQUIT (a name or number) in the environment when the first
 * hub starts, that signal makes every hub write its dump to stderr (best effort: the
 * hub's thread is interrupted where it stands), and the process goes on. */
GREEN_API int green_dump(FILE *f);

/* Start the monitor and pinning detector (gevent's monitor thread): a watchdog OS
 * thread that, when a hub neither switches nor polls for more than ms milliseconds
 * while it has other green threads, writes to stderr the id and name of the green thread
 * holding it, whether it is pinned (asleep in the kernel: the blocking function and the
 * call site) or busy, and a backtrace — once per place; a closing line gives each
 * reported episode's duration. It interrupts the hub's thread with SIGURG to take the
 * backtrace (not where SIGURG is blocked), and a system call that signal interrupts is
 * issued again. GREEN_MONITOR_MS=100 in the environment starts it with the first hub
 * (tools/greenrun sets it). A new call changes the threshold. 0, or -1 + errno (EINVAL:
 * ms <= 0; EAGAIN). */
GREEN_API int green_monitor_start(int64_t ms);
/* Stop the monitor and join its thread. 0, or -1 + ESRCH when it is not running. */
GREEN_API int green_monitor_stop(void);

#ifdef __cplusplus
}
#endif
#endif /* GREEN_H */
