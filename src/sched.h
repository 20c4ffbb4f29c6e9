/*
 * sched.h — the scheduler (layer 4): the hub's loop — run queue, parking and waking,
 * wake-ups from other OS threads, scoped timeouts and shields (sched.c) — its timer
 * wheel (timer.c), its pollers (poll_epoll.c, poll_uring.c) and its table of fds that
 * green threads wait on (fd.c). The loop is made the first time a green thread of the
 * hub waits (green__loop).
 *
 * Invariants:
 *  - a green thread is in at most one of: the run queue (GS_READY) or the timer wheel
 *    (GS_WAITING with a deadline); both link through green.timer.link;
 *  - parking (green__park) is the only way to block. A parked green thread is resumed
 *    exactly once: by green__wake (its event), its timer (ETIMEDOUT), a kill (ECANCELED)
 *    or the deadlock detector (EDEADLK, root only); whoever wakes it unlinks its timer;
 *  - a wake-up from another OS thread is a note on h->remote tagged with the park's
 *    sequence number (green.wait_seq): a late one is dropped, never misdelivered; the
 *    note is the waiter's own (no allocation), and is not reused while on the list;
 *  - each fd has at most one waiting reader and one waiting writer; the fd's epoch is
 *    bumped when it is forgotten (closed), so an old readiness never reaches a new fd
 *    with the same number.
 */
#ifndef GREEN_SCHED_H
#define GREEN_SCHED_H

#include "greenlet.h"

#include <sys/types.h>

/* ---- the loop, parking, waking (sched.c) ---- */
struct green_hub *green__loop(void);   /* this thread's hub with its loop ready; NULL+errno */
void green__hub_loop_destroy(struct green_hub *h); /* remote notes, fds, poller, timers */
int green__park(struct green_hub *h, int64_t deadline);
int green__sleep_until(int64_t deadline); /* green_sleep_until that never moves the caller */
int green__wake(struct green_hub *h, struct green *g, int err);
/* Waiting for a green thread's end without green_join (green_choose): check resolves the
 * handle and checks as green_join does (0, or -1 + errno: EINVAL, ESRCH, EXDEV, EDEADLK);
 * arm makes the current green thread g's joiner until disarm, so that g's end wakes its
 * next park (1 when g has already finished: nothing armed). g is not reaped. */
int green__join_check(struct green_hub *h, green_t handle, struct green **g);
int green__join_arm(struct green_hub *h, struct green *g);
void green__join_disarm(struct green_hub *h, struct green *g);
/* green_private_shield_push/pop for h's current green thread. */
int green__shield_push(struct green_hub *h, int what);
int green__shield_pop(struct green_hub *h, int what);
/* Added to the monotonic clock. Zero; tests move it forward, never back, to bring the
 * clock near a boundary of the wheel without waiting for one. */
extern int64_t green__clock_skew;

/* ---- wake-ups from other OS threads (sched.c) ---- */
/* A note that wakes g: it lives in the waiting side's record (wait.h's waiter), so that
 * sending it allocates nothing and cannot fail. While it is on a hub's list (pending) its
 * owner may let go of it but not reuse it: it sets `released` and the drain hands the
 * note back through h->remote_release. */
struct green_remote {
    struct green_remote *next;
    struct green *g;               /* whom it wakes */
    uint64_t note;                 /* the park it is for (low 32 bits) and the error */
    uint8_t pending;               /* on the list: set by the waker, cleared by the drain;
                                    * or GREEN_NOTE_WATCHED (below) */
    uint8_t released;              /* let go of by its owner while pending */
};
/* `pending` while the hub's idle spin watches the note (sched.c): a waker's exchange
 * finds it non-zero and so pushes nothing and writes no eventfd: the spin, which looks
 * at the note's own line, sees it become 1 and takes the note itself. */
#define GREEN_NOTE_WATCHED 2
/* From any thread: wake n->g of hub h with err if it is still in park number seq. A
 * note already pending carries the newer park and error instead. Never fails. */
void green__remote_wake(struct green_hub *h, struct green_remote *n, uint32_t seq, int err);
/* On h's thread: 1 if n is on h's list (its owner must leave it to the drain). */
static inline int green__remote_busy(struct green_remote *n)
{
    return __atomic_load_n(&n->pending, __ATOMIC_ACQUIRE);
}
int green__remote_pending(struct green_hub *h);
void green__remote_drain(struct green_hub *h);  /* on h's thread: act on the notes */

/* ---- the group of hubs, moves and calls across hubs (hubs.c) ---- */
void green__rq_push(struct green_hub *h, struct green *g); /* ready, at the back */
/* ready, at the front (fresh ones: the first of those, sched.c's "run queue") */
void green__rq_push_front(struct green_hub *h, struct green *g);
void green__rq_remove(struct green_hub *h, struct green *g); /* out of the run queue */
int green__kill(struct green_hub *h, struct green *g);     /* green_kill on g of h */
int green__detach(struct green_hub *h, struct green *g);   /* green_detach on g of h */
extern int green__nhungry;           /* group members asking for work (atomic) */
int green__hubs_n(void);             /* members of the group (atomic read) */
struct green_hub *green__hub_member(int n); /* member n, or NULL */
/* The hub a spawn with attr.hub == hub goes to; NULL + EINVAL when there is none. */
struct green_hub *green__place(struct green_hub *h, int hub);
/* Hand the ready green threads first..last (linked through timer.link.next, n of them,
 * none in h's run queue) over to hub `to`. */
void green__send(struct green_hub *h, struct green_hub *to, struct green *first, struct green *last, int n);
void green__inbox_drain(struct green_hub *h);   /* on h's thread: what was handed to it */
void green__hunger(struct green_hub *h, int on); /* h has nothing to run (1) or has (0) */
void green__share(struct green_hub *h);         /* give hungry hubs half our movable work */
/* Stealing. On h's thread: set aside movable ready green threads from the back of its run
 * queue in its ring (leaving at least half of them), take all of them back to the front
 * (reclaim), or make sure g (resolved as h's) is not in the ring: 0 when g is h's, 1
 * when a thief has taken it (g->hub says where it is). steal: take what other members'
 * rings hold into h's run queue; the number taken. */
void green__ring_fill(struct green_hub *h);
void green__ring_reclaim(struct green_hub *h);
int green__ring_unlink(struct green_hub *h, struct green *g);
void green__ring_give(struct green_hub *h); /* the ring's content to a hungry member */
void green__steal_on(struct green_hub *h); /* h is a member of a group of > 1 from now on */
int green__steal(struct green_hub *h);
/* Tests only (NULL otherwise; defined in builds with the tests, GREEN_TEST_HOOKS): called
 * by a thief between its claim of a slot and its write of g->hub, to hold the window in
 * which g's old hub may look it up wide open. */
extern void (*green__steal_pause)(void);
/* 1 while h's ring may hold something (on h's thread; acquire: a theft seen as done here
 * is complete, its g->hub written) */
static inline int green__ring_busy(struct green_hub *h)
{
    return __atomic_load_n(&h->ring_mask, __ATOMIC_ACQUIRE) != 0;
}
/* 1 when a thief has taken something h's last fill left in its ring (on h's thread: a
 * load of the line thieves write, which stays in h's cache while nobody steals) */
static inline int green__ring_taken(struct green_hub *h)
{
    return (h->ring_left & ~__atomic_load_n(&h->ring_mask, __ATOMIC_RELAXED)) != 0;
}
/* Calls on a green thread of another hub: run by g's hub, the caller waits. */
enum { GREEN_XOP_KILL = 1, GREEN_XOP_WAKE, GREEN_XOP_DETACH, GREEN_XOP_JOIN };
int green__xcall(struct green_hub *h, struct green *g, green_t handle, int op, int arg,
                 int64_t deadline, void **result);
void green__xop_run(struct green_hub *h, struct green_remote *n); /* remote_drain: note.g NULL */
/* A record of the library's own for another hub (a group's member that died there, a
 * select's watch of a green thread there): fn(h, x) runs on hub h's thread, in its loop,
 * and disposes of x. It must not park. Sent like a call across hubs (note.g NULL). */
struct green_xnote {
    struct green_remote note;      /* note.g == NULL */
    uint8_t kind;                  /* hubs.c's; set by green__xnote_send */
    void (*fn)(struct green_hub *h, struct green_xnote *x);
};
/* From any thread: have hub `to` run fn(to, x). x is not reused until fn has run. */
void green__xnote_send(struct green_hub *to, struct green_xnote *x,
                       void (*fn)(struct green_hub *, struct green_xnote *));
void green__xrun(struct green_hub *h, struct green_remote *n); /* remote_drain: note.g NULL */
/* green_choose's join clause on g of another hub (hubs.c). peek: 1 if g has finished, 0
 * if not, -1 + errno (ESRCH; EINVAL for a root or a detached one), read from here. arm:
 * make the caller g's joiner on g's hub, waking entry w (of h's current green thread)
 * when g finishes; NULL + errno (ESRCH, ENOMEM). disarm: 1 if it fired (*err: 0, or why
 * the clause cannot wait: ESRCH, EINVAL, ENOMEM), 0 if not; the watch is let go of. */
struct green_xwatch;
int green__xwatch_peek(green_t handle);
struct green_xwatch *green__xwatch_arm(struct green_hub *h, green_t handle, struct green_waiter *w);
int green__xwatch_disarm(struct green_hub *h, struct green_xwatch *x, int *err);
/* green_spawn_attr for a group's member (group.c): detached, with its death notice set
 * before it can run on any hub; *where = the hub it was placed on. NULL + errno. */
green_t green__spawn_member(green_fn fn, void *arg, const green_attr_t *attr,
                            void (*on_death)(struct green_hub *, struct green *, void *),
                            void *death_arg, struct green_hub **where);
void green__xjoin_done(struct green_hub *h, struct green *g);  /* g died: its remote joiner */
void green__xjoin_stale(struct green *g);  /* drop g's remote joiner if it gave up */
/* Joins of the dead across hubs (hubs.c; GREEN_ZTAKEN, green__zombie_keep: core.h) */
void green__zombie_open(struct green_hub *h, struct green *g); /* g died unjoined on h */
/* From another hub: take dead g (of gh) if it is open: 0 and its result, or -1. */
int green__zombie_take(struct green_hub *gh, struct green *g, green_t handle, void **result);
void green__reaped_drain(struct green_hub *h);  /* on h's thread: free what they took */

/* The deadline a blocking call of g really has: its own or g's scoped one
 * (green_timeout_push), whichever comes first (-1: none). */
static inline int64_t green__deadline_of(const struct green *g, int64_t deadline)
{
    if (GREEN_UNLIKELY(g->ext != NULL)) {
        int64_t t = g->ext->tmo;
        if (t >= 0 && (deadline < 0 || t < deadline))
            return t;
    }
    return deadline;
}

/* ---- timers (timer.c) ---- */
/* The wheel's shape: level 0 has 2^GREEN_WHEEL_L0_BITS one-millisecond slots, each
 * level above 2^GREEN_WHEEL_LN_BITS slots, each that many times coarser. */
#define GREEN_WHEEL_L0_BITS 10
#define GREEN_WHEEL_LN_BITS 6
int green__timer_init(struct green_hub *h);
void green__timer_destroy(struct green_hub *h);
void green__timer_add(struct green_hub *h, struct green_timer *t, int64_t when);
void green__timer_del(struct green_hub *h, struct green_timer *t);
int64_t green__timer_next(struct green_hub *h); /* earliest time worth waking at, -1 none */
/* Fire (in deadline order, equal deadlines in insertion order) every timer due by now. */
void green__timer_expire(struct green_hub *h, int64_t now,
                         void (*fire)(struct green_hub *, struct green_timer *));
uint64_t green__timer_count(struct green_hub *h);

/* ---- pollers (poll_*.c) ---- */
enum { GREEN_POLLER_EPOLL = 0, GREEN_POLLER_URING = 1 };
/* A read or write of a regular file that the poller itself carries out (io_uring). The
 * record must stay put until its completion: buf is not the caller's (see file.c). */
struct green_file_op {
    int fd;
    int write;                     /* 0 read, 1 write */
    void *buf;
    size_t n;
    off_t off;                     /* -1: at the file's current position */
    ssize_t res;                   /* set on completion: bytes moved, or -errno */
    /* called on the hub's thread, from its poller, once the op has completed */
    void (*done)(struct green_hub *h, struct green_file_op *op);
};
struct green_poller_ops {
    const char *name;
    int (*init)(struct green_hub *h);
    void (*destroy)(struct green_hub *h);
    /* Wait up to timeout_ms (-1 forever, 0 not at all); handle what arrived. */
    int (*wait)(struct green_hub *h, int timeout_ms);
    int (*notify)(struct green_poller *p);   /* wake the hub from any thread */
    /* Make sure fd's readiness for events is reported (green__fd_ready); -1+errno. */
    int (*watch)(struct green_hub *h, int fd, int events);
    void (*unwatch)(struct green_hub *h, int fd);  /* fd is about to be closed */
    /* Start op; its completion calls op->done. NULL: this poller cannot (the thread pool
     * does file I/O then). 0, or -1 + errno. */
    int (*file_io)(struct green_hub *h, struct green_file_op *op);
};
struct green_poller {
    const struct green_poller_ops *ops;
    int wakefd;                    /* eventfd that other threads write to */
    void *impl;
};
extern const struct green_poller_ops green__epoll_ops, green__uring_ops;
/* h->polling: 0 running, GREEN_POLL_BLOCKED announced before it blocks in its poller,
 * GREEN_POLL_NOTIFIED once a waker has written its eventfd. One write per sleep: the
 * waker that turns BLOCKED into NOTIFIED writes, later ones see it done (a hub that takes
 * tens of µs to come back would otherwise take a write, ~1 µs of the waker's, from every
 * note and hand-over sent meanwhile: Prog 1 on two hubs wrote 400,000 times). */
enum { GREEN_POLL_BLOCKED = 1, GREEN_POLL_NOTIFIED = 2 };
static inline void green__poll_notify(struct green_hub *h)
{
    int blocked = GREEN_POLL_BLOCKED;
    if (__atomic_load_n(&h->polling, __ATOMIC_SEQ_CST) == GREEN_POLL_BLOCKED &&
        __atomic_compare_exchange_n(&h->polling, &blocked, GREEN_POLL_NOTIFIED, 0, __ATOMIC_SEQ_CST,
                                    __ATOMIC_RELAXED))
        h->poller->ops->notify(h->poller);
}
void green__on_notify(struct green_hub *h); /* called by a poller when wakefd fired */

/* ---- fds green threads wait on (fd.c) ---- */
struct green_fd {
    struct green *waiter[2];       /* reader, writer */
    uint32_t seq[2];               /* their park sequence numbers */
    uint32_t epoch;                /* bumped when the fd is forgotten (closed) */
    uint8_t mask;                  /* directions the poller watches (GREEN_READ|GREEN_WRITE) */
    uint8_t revents;               /* directions reported ready to a waiter */
    uint8_t pending;               /* io_uring: directions with a poll request in flight */
    uint32_t closes;               /* the process-wide close count it last armed at (fd.c) */
};
struct green_fd *green__fd(struct green_hub *h, int fd);   /* grows the table; NULL+ENOMEM */
void green__fd_ready(struct green_hub *h, int fd, int events); /* from the poller */
int green__fd_wait(struct green_hub *h, int fd, int events, int64_t deadline);
/* green__fd_wait in two halves around a park of the caller's own (green_choose): arm
 * makes the current green thread fd's waiter for events from its next park (0, or -1 +
 * errno: EBADF, EINVAL, EBUSY, ENOMEM, the poller's; *epoch is for disarm); disarm, after
 * that park however it ended, gives the events ready (0: none), or -1 + EBADF when fd
 * was closed (green_close) meanwhile. */
int green__fd_arm(struct green_hub *h, int fd, int events, uint32_t *epoch);
int green__fd_disarm(struct green_hub *h, int fd, int events, uint32_t epoch);
void green__fd_forget(struct green_hub *h, int fd);
int green__set_nonblock(int fd);
void green__fds_destroy(struct green_hub *h);

#endif /* GREEN_SCHED_H */
