/*
 * sched.c — the scheduler and the one wait mechanism (layer 4, sched.h): run queue,
 * parking and waking (from this hub, or by notes from other OS threads), spawning,
 * joining, killing, yielding, sleeping, scoped timeouts and shields, the clock, and the
 * hub's loop (its timers and poller, made on first use). The hub itself, its birth and
 * death, is hub.c's; waiting on objects is wait.c's.
 *
 * Each OS thread's hub has a FIFO run queue, a timer wheel and a poller. There is no hub
 * green thread: a green thread that parks picks the next ready one itself and switches
 * straight to it (one switch per hand-off, not gevent's two); when nothing is ready it
 * polls, on its own stack, until a timer or an event makes something ready.
 *
 * Invariants:
 *  - a green thread is in at most one of: the run queue (GS_READY) or the timer wheel
 *    (GS_WAITING with a deadline); both link through green.timer.link;
 *  - green_park is the only way to block. A parked green thread is resumed exactly once,
 *    by green__wake (its event, err 0), its timer (ETIMEDOUT), green_kill (ECANCELED)
 *    or the deadlock detector (EDEADLK, root only); whoever wakes it unlinks its timer;
 *  - the poller is consulted at least every GREEN_POLL_EVERY hand-offs even when the run
 *    queue never empties, so yielding loops cannot starve timers or I/O;
 *  - nothing can wake anyone when the run queue is empty, no timer is pending, no fd is
 *    watched, no note or handed-over green thread has arrived (remote list, inbox) and
 *    nothing outside the hub holds a reference (h->ext_refs): that is a deadlock, and
 *    the root's wait fails with EDEADLK instead of hanging;
 *  - the fast paths (switch, yield, spawn on this hub, pick) know nothing of other hubs:
 *    the group costs a relaxed load when the poller is consulted in passing, and a flag
 *    in each park (GX_INPARK: a green thread woken inside a blocking call cannot move).
 *    A member of a group of > 1 hubs takes the slow pick every time (its since_poll is
 *    held at the threshold), to keep its ring for idle hubs to steal from (hubs.c);
 *  - a hub about to block spins for a while first when a hand-off from another thread
 *    may come (idle spinning, below), but only once after traffic: idle, it sleeps.
 *  - a signal handler's interruption (green_private_hub_interrupt) is handed to the
 *    interrupt hook at the next look at the poller, which it makes come without waiting.
 */

#include "sched.h"
#include "wait.h"

#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define GREEN_POLL_EVERY 128

int64_t green__clock_skew;

/* Out of line: its timespec would otherwise sit in every sleeper's frame. */
static __attribute__((noinline)) int64_t clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 +
           __atomic_load_n(&green__clock_skew, __ATOMIC_RELAXED);
}

int64_t green_now(void) { return clock_ms(); }

int64_t green_after(int64_t ms)
{
    if (ms < 0)
        return -1;
    return clock_ms() + ms;
}

/* ---- run queue ----
 *
 * FIFO, but for one kind: green threads placed with GREEN_HUB_ANY that never ran (fresh)
 * wait at its back, behind every other ready one, h->fresh pointing at the first of them,
 * and while both kinds wait they take turns: one that ran, one fresh. Plain FIFO ran every
 * fresh one before any that had started and was ready again, so a hub given 100,000
 * tasks of compute, sleep, compute started all of them first (all their stacks live at
 * once) and ended up holding all their second halves — which cannot move when their
 * stacks are shared: a second hub ran 8-32% of the work. Taking turns bounds what is
 * started at once, leaves for idle hubs what may move (the fresh), and still starts new
 * ones at half the picks at least, as Go gives the new goroutine and its local queue
 * their turns. Other placements never enter the fresh part: their order is FIFO. */

static __attribute__((noinline)) void rq_push_slow(struct green_hub *h, struct green *g)
{
    if (!(g->flags & GF_STARTED) && (g->xf & GX_ANY)) {
        green_list_push_back(&h->rq, &g->timer.link);
        if (!h->fresh)
            h->fresh = &g->timer.link;
    } else {
        green_list_push_back(h->fresh ? h->fresh : &h->rq, &g->timer.link); /* before them */
    }
}

static inline void rq_push(struct green_hub *h, struct green *g)
{
    g->state = GS_READY;
    if (GREEN_LIKELY(!h->fresh) && GREEN_LIKELY(!(g->xf & GX_ANY)))
        green_list_push_back(&h->rq, &g->timer.link);
    else
        rq_push_slow(h, g);
    h->nready++;
}

void green__rq_push(struct green_hub *h, struct green *g) { rq_push(h, g); }

void green__rq_push_front(struct green_hub *h, struct green *g)
{
    g->state = GS_READY;
    if (!(g->flags & GF_STARTED) && (g->xf & GX_ANY)) { /* the oldest fresh one */
        green_list_push_back(h->fresh ? h->fresh : &h->rq, &g->timer.link);
        h->fresh = &g->timer.link;
    } else {
        green_list_push_front(&h->rq, &g->timer.link);
    }
    h->nready++;
}

void green__rq_remove(struct green_hub *h, struct green *g)
{
    if (GREEN_UNLIKELY(&g->timer.link == h->fresh))
        h->fresh = g->timer.link.next != &h->rq ? g->timer.link.next : NULL;
    green_list_remove(&g->timer.link);
    h->nready--;
}

/* The next of a run queue that holds fresh ones: the head, or the first fresh one when
 * it is the fresh ones' turn. */
static __attribute__((noinline)) struct green *rq_pop_fresh(struct green_hub *h)
{
    struct green_list *n = h->fresh;
    if (n != h->rq.next && (h->fresh_turn ^= 1) == 0)
        n = h->rq.next;
    struct green *g = green_container_of(n, struct green, timer.link);
    green__rq_remove(h, g);
    return g;
}

static inline struct green *rq_pop(struct green_hub *h)
{
    if (GREEN_UNLIKELY(h->fresh != NULL))
        return rq_pop_fresh(h);
    struct green_list *n = green_list_pop_front(&h->rq);
    h->nready--;
    return green_container_of(n, struct green, timer.link);
}

/* ---- waking ---- */

static void wake(struct green_hub *h, struct green *g, int err)
{
    green__timer_del(h, &g->timer);
    g->wake_err = (int16_t)err;
    h->nwaiting--;
    green__stamp(h, g); /* ready since */
    rq_push(h, g);
}

static void on_timer(struct green_hub *h, struct green_timer *t)
{
    struct green *g = green_container_of(t, struct green, timer);
    g->wake_err = ETIMEDOUT;
    h->nwaiting--;
    if (g->flags & GF_STARTED) /* else a green_spawn_later whose fn is still there */
        green__stamp(h, g);
    rq_push(h, g);
}

/* ---- wake-ups from other OS threads ----
 *
 * A waker on another OS thread cannot touch this hub. It pushes a note (the waiter's
 * own, see sched.h: nothing is allocated, so a wake-up cannot be lost to a failed
 * malloc) on the hub's lock-free remote list and, if the hub is blocked in its poller,
 * writes its eventfd. The hub drains the list in its loop and wakes the green thread
 * only if it is still parked in the same park (the sequence number matches): a note
 * that arrives after the waiter timed out is dropped. */

void green__remote_wake(struct green_hub *h, struct green_remote *n, uint32_t seq, int err)
{
    /* The note is written before the record is claimed for the list, and read by the
     * drain after it gives the claim up: a note already on the list carries this newer
     * one (a later park of the same record) instead of losing it. */
    __atomic_store_n(&n->note, seq | (uint64_t)(uint32_t)err << 32, __ATOMIC_RELAXED);
    if (__atomic_exchange_n(&n->pending, 1, __ATOMIC_ACQ_REL))
        return;
    struct green_remote *head = __atomic_load_n(&h->remote, __ATOMIC_RELAXED);
    do
        n->next = head;
    while (!__atomic_compare_exchange_n(&h->remote, &head, n, 1, __ATOMIC_SEQ_CST,
                                        __ATOMIC_RELAXED));
    /* The hub re-checks the list after announcing that it will block, so either it
     * sees our note or we see its announcement (all sequentially consistent). */
    green__poll_notify(h);
}

int green__remote_pending(struct green_hub *h)
{
    return __atomic_load_n(&h->remote, __ATOMIC_ACQUIRE) != NULL;
}

/* Called by the hub's own thread: wake every green thread a note is for, in the order
 * the notes were pushed; notes let go of meanwhile go back to their owner's layer. */
void green__remote_drain(struct green_hub *h)
{
    /* a note may be about a green thread in our ring (a late wake-up, a kill, a join):
     * what it leads to reads and writes that one's fields, which a thief may be taking */
    if (GREEN_UNLIKELY(h->stealing) && green__ring_busy(h))
        green__ring_reclaim(h);
    h->spin_ok = 1; /* traffic from other threads: worth a spin when idle (pick_slow) */
    struct green_remote *n = __atomic_exchange_n(&h->remote, NULL, __ATOMIC_ACQUIRE);
    struct green_remote *fifo = NULL;
    while (n) {
        struct green_remote *next = n->next;
        n->next = fifo;
        fifo = n;
        n = next;
    }
    while (fifo) {
        n = fifo;
        fifo = n->next; /* before the claim goes: a waker may push n again at once */
        struct green *g = n->g;
        __atomic_exchange_n(&n->pending, 0, __ATOMIC_ACQ_REL);
        if (!g) { /* a call or record from another hub (hubs.c) */
            green__xrun(h, n);
            continue;
        }
        uint64_t note = __atomic_load_n(&n->note, __ATOMIC_RELAXED);
        if (n->released) {
            n->released = 0;
            h->remote_release(h, n);
        }
        /* g's hub first: a note may come late for a green thread that has moved on (given
         * away, or stolen), whose fields its new hub's thread writes */
        if (__atomic_load_n(&g->hub, __ATOMIC_ACQUIRE) == h && g->state == GS_WAITING &&
            g->wait_seq == (uint32_t)note)
            green__wake(h, g, (int)(note >> 32));
    }
}

void green__on_notify(struct green_hub *h) { green__remote_drain(h); }

/* ---- interruptions by signal handlers ----
 *
 * libgreen-patch.so makes signal handlers interrupt the calls they would interrupt in the
 * kernel. Its handler tells the hub of the OS thread it ran on (green_private_hub_interrupt,
 * async-signal-safe: a flag, and the poller's notify if the hub may be blocking in it);
 * the hub hands the news to the patch library's hook at its next look at the poller, in
 * plain context, where waking green threads is safe. The hub knows nothing else of it.
 * A handler that runs while the hub blocks in its poller interrupts the wait (EINTR) or,
 * if it ran just before it, finds `polling` set and notifies; poll_wait looks at the flag
 * after announcing `polling`: on one thread, no interruption is missed.
 *
 * sigsuspend in one green thread cannot set the OS thread's mask: the others run with it.
 * Instead the signals it waits for are unblocked only while the hub is in its poller
 * (green_private_hub_unblock): pending ones arrive then, their handlers run, the hook
 * learns of it. Both are per OS thread; the set is tied to the hub (a fork child's new hub
 * starts without). */
static void (*interrupt_hook)(void);
static __thread int interrupted __attribute__((tls_model("initial-exec")));
static __thread struct {
    struct green_hub *hub;
    sigset_t set;
} unblock __attribute__((tls_model("initial-exec")));

void green_private_set_interrupt_hook(void (*hook)(void))
{
    __atomic_store_n(&interrupt_hook, hook, __ATOMIC_RELEASE);
}

void green_private_hub_interrupt(void)
{
    struct green_hub *h = green__tls_hub;
    if (!h)
        return;
    __atomic_store_n(&interrupted, 1, __ATOMIC_SEQ_CST);
    if (h->poller && __atomic_load_n(&h->polling, __ATOMIC_SEQ_CST))
        h->poller->ops->notify(h->poller); /* eventfd write: async-signal-safe */
}

int green_private_hub_unblock(const sigset_t *set)
{
    struct green_hub *h = green__hub_fast();
    if (!h)
        return -1;
    unblock.hub = set && !sigisemptyset(set) ? h : NULL;
    if (unblock.hub)
        unblock.set = *set;
    return 0;
}

int green_private_hub_ref(int delta)
{
    struct green_hub *h = green__loop();
    if (!h)
        return -1;
    h->ext_refs += (uint64_t)(int64_t)delta;
    return 0;
}

static int interrupt_pending(void) { return __atomic_load_n(&interrupted, __ATOMIC_SEQ_CST); }

/* The interrupt hook, if a handler has run since the last call. */
static inline void interrupt_deliver(void)
{
    if (GREEN_LIKELY(!interrupt_pending()))
        return;
    __atomic_store_n(&interrupted, 0, __ATOMIC_SEQ_CST);
    void (*hook)(void) = __atomic_load_n(&interrupt_hook, __ATOMIC_ACQUIRE);
    if (hook)
        hook();
}

/* The poller's wait: blocking (timeout != 0) or a look in passing. */
static inline void poll_wait(struct green_hub *h, int timeout)
{
    if (timeout != 0) {
        /* announce that we may block, then look again for wake-ups from other threads
         * (green__remote_wake does the mirror image) and from signal handlers. An
         * exchange, not a store: C11 orders a seq_cst store before a later seq_cst load,
         * but qemu-user 7.2 runs aarch64's stlr; ldar on x86 with no barrier between the
         * two (its TCG output: fence, store, load, fence), so the load could pass the
         * store, a waker miss the announcement and the hub sleep through its note (a
         * test hung so under qemu). An exchange is a locked instruction everywhere. */
        __atomic_exchange_n(&h->polling, GREEN_POLL_BLOCKED, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&h->remote, __ATOMIC_SEQ_CST) || interrupt_pending() ||
            __atomic_load_n(&h->inbox, __ATOMIC_SEQ_CST))
            timeout = 0;
        h->poller->ops->wait(h, timeout);
        __atomic_store_n(&h->polling, 0, __ATOMIC_RELAXED);
    } else if (h->nfds || h->poller_kind == GREEN_POLLER_URING) {
        h->poller->ops->wait(h, 0);
    }
}

/* The poller's wait with the signals of green_private_hub_unblock unblocked. */
static __attribute__((noinline)) void poll_wait_unblocked(struct green_hub *h, int timeout)
{
    sigset_t masked;
    int unblocked = green__sys.pthread_sigmask(SIG_UNBLOCK, &unblock.set, &masked) == 0;
    poll_wait(h, timeout);
    if (unblocked)
        green__sys.pthread_sigmask(SIG_SETMASK, &masked, NULL);
}

static void poll_once(struct green_hub *h, int timeout)
{
    green__count(&h->loops, 1);
    if (GREEN_UNLIKELY(unblock.hub == h))
        poll_wait_unblocked(h, timeout);
    else
        poll_wait(h, timeout);
    interrupt_deliver();
    if (green__remote_pending(h))
        green__remote_drain(h);
    if (GREEN_UNLIKELY(__atomic_load_n(&h->inbox, __ATOMIC_RELAXED) != NULL)) {
        green__inbox_drain(h);
        h->spin_ok = 1;
    }
    if (GREEN_UNLIKELY(__atomic_load_n(&h->reaped, __ATOMIC_RELAXED) != NULL))
        green__reaped_drain(h);
    /* a yield with nothing else ready comes here every time: read the clock (~30 ns
     * on a VM) only when a timer could be due or we may have slept */
    if (timeout != 0 || green__timer_count(h)) {
        h->now = clock_ms();
        green__timer_expire(h, h->now, on_timer);
    }
}

static struct green *pick_slow(struct green_hub *h);

/* The next green thread to run, polling for it if none is ready; NULL when nothing
 * could ever become ready (deadlock). */
static inline struct green *pick(struct green_hub *h)
{
    if (GREEN_LIKELY(!green_list_empty(&h->rq) && ++h->since_poll < GREEN_POLL_EVERY))
        return rq_pop(h);
    return pick_slow(h);
}

void green__steal_on(struct green_hub *h)
{
    if (h->stealing)
        return;
    h->stealing = 1;
    h->picks = 0;
    h->since_poll = GREEN_POLL_EVERY - 1; /* its next pick keeps the ring (pick_slow) */
}

/* ---- idle spinning ----
 *
 * A hand-off from a green thread of another hub (a channel's message, a mutex, a join's
 * answer) wakes this hub through its remote list; if the hub sleeps in its poller that
 * takes the waker's eventfd write and the epoll_wait's return, 10-20 µs, against ~100 ns
 * when the hub is awake to see the note. So a hub about to block first spins for up to
 * GREEN_SPIN_US (default SPIN_US_DEFAULT) looking at its remote list, its inbox and the
 * interrupt flag — without announcing `polling`, so wakers do not write the eventfd —
 * and, a member of a group of > 1, at the other members' rings (stealing, hubs.c). It
 * spins only when it may get such a hand-off: another thread may wake it (a member of a
 * group of > 1, or outside references) and notes or green threads came from other
 * threads since its last spin that came up empty (h->spin_ok). So an idle hub spins once
 * after its last traffic, then sleeps (0% CPU); a hub driven by its own timers and fds
 * never spins. Not when a timer is due within the spin (the caller's timeout is then 0),
 * and fds are looked at in passing during it.
 *
 * The length adapts (h->spin_cur): a spin that comes up empty halves the next one (down
 * to SPIN_MIN_NS), one that catches something restores GREEN_SPIN_US. On a machine with
 * more runnable threads than cores the other side of a hand-off may not be running at
 * all — it may wait for this very core — and a full spin only delays it: measured on two
 * cores under load, fixed 50 µs spins made a cross-hub ping-pong slower than sleeping
 * (a 20 µs round trip became up to 60 µs); with the halving it stays at the sleeping
 * figure, and where both sides run, a short spin's first catch brings the full one back. */
#define SPIN_US_DEFAULT 50
#define SPIN_MIN_NS 5000
/* Looks made back to back before the first pause: a hand-off from a core that runs comes
 * within a few hundred ns, and a pause costs up to 25 ns (AMD EPYC) that the hand-off
 * would wait for; these last well under a microsecond. */
#define SPIN_TIGHT 256
static int64_t spin_ns = -1; /* GREEN_SPIN_US in ns; read once (loop_make) */

static void spin_init(void)
{
    if (__atomic_load_n(&spin_ns, __ATOMIC_RELAXED) >= 0)
        return;
    const char *e = getenv("GREEN_SPIN_US");
    long us = SPIN_US_DEFAULT;
    if (e && *e) {
        char *end;
        long v = strtol(e, &end, 10);
        if (*end == 0 && v >= 0)
            us = v > 1000000 ? 1000000 : v;
    }
    __atomic_store_n(&spin_ns, (int64_t)us * 1000, __ATOMIC_RELAXED);
}

static __attribute__((noinline)) int64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Something from another thread: a note, a green thread handed over, an interruption. */
static inline int arrived(struct green_hub *h)
{
    return __atomic_load_n(&h->remote, __ATOMIC_RELAXED) || __atomic_load_n(&h->inbox, __ATOMIC_RELAXED) ||
           interrupt_pending();
}

/*
 * The watch. The hand-off a spin waits for is most often the wake-up of the green thread
 * that parked last (h->watch: the note of its waiter record, which the waker writes
 * anyway: the element, the claim). The spin marks that note GREEN_NOTE_WATCHED and looks
 * at it beside the remote list; a waker that finds the mark (its exchange returns
 * non-zero) leaves the note there: no push on the hub's list, no look at `polling`. So
 * the hand-off moves the record's line to the waker and back, and the hub's remote line
 * stays put. The mark lives only while the spin does (the note's owner is parked
 * meanwhile and this hub's thread is the spin), so the drain and the owner never see it.
 */
static inline struct green_remote *watch_arm(struct green_hub *h)
{
    struct green_remote *n = h->watch;
    uint8_t idle = 0;
    if (n && __atomic_compare_exchange_n(&n->pending, &idle, GREEN_NOTE_WATCHED, 0, __ATOMIC_RELAXED,
                                         __ATOMIC_RELAXED))
        return n;
    return NULL; /* none, or already on the list */
}

/* A waker has set the watched note pending (acquire seen): act on it as the drain would.
 * One waker per park (the one that took the record off its object), so nobody else
 * writes `pending` meanwhile: a store gives it back, without a locked instruction. */
static void watch_take(struct green_hub *h, struct green_remote *n)
{
    uint64_t note = __atomic_load_n(&n->note, __ATOMIC_RELAXED);
    __atomic_store_n(&n->pending, 0, __ATOMIC_RELEASE);
    struct green *g = n->g;
    h->spin_ok = 1;
    if (g->state == GS_WAITING && g->wait_seq == (uint32_t)note)
        green__wake(h, g, (int)(note >> 32));
}

/* The spin is over: unmark the note, or take it if a waker came meanwhile (1). */
static int watch_end(struct green_hub *h, struct green_remote *n)
{
    uint8_t w = GREEN_NOTE_WATCHED;
    if (__atomic_compare_exchange_n(&n->pending, &w, 0, 0, __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE))
        return 0;
    watch_take(h, n);
    return 1;
}

/* Spin for up to ns until something arrives, work is stolen or fds became ready (1: then
 * h's run queue or lists hold it), or the time is up (0). The clock is read once the
 * back-to-back looks are over: a hand-off that comes at once costs no clock_gettime. */
static int idle_spin_for(struct green_hub *h, int member, int64_t ns)
{
    struct green_remote *watch = watch_arm(h);
    int64_t end = 0;
    int fds = h->nfds || h->poller_kind == GREEN_POLLER_URING, r;
    for (unsigned i = 1;; i++) {
        if (watch && __atomic_load_n(&watch->pending, __ATOMIC_ACQUIRE) != GREEN_NOTE_WATCHED) {
            watch_take(h, watch);
            return 1;
        }
        if (arrived(h)) {
            r = 1;
            break;
        }
        if (i <= SPIN_TIGHT)
            continue;
        green_cpu_relax();
        if (i % 16 == 0) {
            if (member && green__steal(h)) {
                r = 1;
                break;
            }
            if (fds && i % 256 == 0) {
                poll_wait(h, 0);
                if (!green_list_empty(&h->rq)) {
                    r = 1;
                    break;
                }
            }
            if (!end) {
                end = clock_ns() + ns;
            } else if (clock_ns() >= end) {
                r = 0;
                break;
            }
        }
    }
    if (watch && watch_end(h, watch))
        r = 1;
    return r;
}

/* The spin, its length adapted (above). */
static __attribute__((noinline)) int idle_spin(struct green_hub *h, int member)
{
    int64_t max = __atomic_load_n(&spin_ns, __ATOMIC_RELAXED);
    if (h->spin_cur <= 0 || h->spin_cur > max)
        h->spin_cur = max;
    int r = idle_spin_for(h, member, h->spin_cur);
    if (r)
        h->spin_cur = max;
    else
        h->spin_cur = h->spin_cur / 2 < SPIN_MIN_NS ? (max < SPIN_MIN_NS ? max : SPIN_MIN_NS) : h->spin_cur / 2;
    return r;
}

/* The next green thread to run when the fast path cannot say: a poll in passing is due,
 * or h steals (then every pick comes here: since_poll stays at GREEN_POLL_EVERY - 1), or
 * nothing is ready. */
static __attribute__((noinline)) struct green *pick_slow(struct green_hub *h)
{
    for (;;) {
        if (!green_list_empty(&h->rq)) {
            if (h->stealing) {
                if (++h->picks < GREEN_POLL_EVERY) {
                    /* keep some where idle hubs can take them, and hand them to one
                     * that sleeps asking for work (one relaxed load when nobody asks) */
                    int hungry = __atomic_load_n(&green__nhungry, __ATOMIC_RELAXED) != 0;
                    if (GREEN_LIKELY(!h->ring_hold)) {
                        /* while nobody asks, at every 16th pick from the first after
                         * the ring came back (a poll in passing) or stealing began: a
                         * hub that goes idle while we compute still finds some (Prog 1
                         * on two hubs: a fill at every pick cost it 8%); and at every
                         * pick once a thief has taken what the last fill left (one load
                         * of the ring's mask): it comes back when that has run */
                        if (hungry || ((h->picks - 1) & 15) == 0 || green__ring_taken(h))
                            green__ring_fill(h);
                    } else {
                        h->ring_hold--; /* what came back from the ring runs first */
                    }
                    if (GREEN_UNLIKELY(hungry) && green__ring_busy(h))
                        green__ring_give(h);
                    h->since_poll = GREEN_POLL_EVERY - 1;
                    return rq_pop(h);
                }
                h->picks = 0;
                h->since_poll = GREEN_POLL_EVERY;
                green__ring_reclaim(h); /* what waits there runs next: no starving */
            }
            if (h->since_poll >= GREEN_POLL_EVERY) {
                h->since_poll = 0;
                poll_once(h, 0);
                /* idle hubs ask for work: give them some of ours */
                if (GREEN_UNLIKELY(__atomic_load_n(&green__nhungry, __ATOMIC_RELAXED) != 0) && h->nready > 1)
                    green__share(h);
                if (GREEN_UNLIKELY(!h->stealing) && h->num && green__hubs_n() > 1)
                    green__steal_on(h); /* the group grew: from now on every pick comes here */
                if (h->stealing)
                    h->since_poll = GREEN_POLL_EVERY - 1;
            }
            return rq_pop(h);
        }
        if (GREEN_UNLIKELY(green__ring_busy(h))) { /* nothing else ready: ours again */
            green__ring_reclaim(h);
            continue;
        }
        h->since_poll = 0;
        int64_t next = green__timer_next(h);
        if (next < 0 && !h->nfds && !h->ext_refs && !green__remote_pending(h) && !interrupt_pending() &&
            !__atomic_load_n(&h->inbox, __ATOMIC_RELAXED))
            return NULL;
        int timeout = -1;
        if (next >= 0) {
            int64_t d = next - clock_ms();
            timeout = d <= 0 ? 0 : d > INT_MAX ? INT_MAX : (int)d;
        }
        if (timeout != 0) {
            int member = h->num && green__hubs_n() > 1;
            if (member)
                green__steal_on(h);
            if (member && green__steal(h)) { /* a member of a group: take what other rings hold */
                h->spin_ok = 1;
                continue;
            }
            if (h->spin_ok && (member || h->ext_refs) && __atomic_load_n(&spin_ns, __ATOMIC_RELAXED) > 0) {
                if (idle_spin(h, member)) { /* stolen work counts as traffic: spin_ok stays */
                    poll_once(h, 0);
                    continue;
                }
                h->spin_ok = 0; /* came up empty: no more spins until new traffic */
            }
            green__stack_trim(h);
            if (member) {
                /* it asks for work only now that it will sleep: spinning, it steals, and
                 * asking costs a write of the group's count, which every busy member's
                 * picks look at (a hand-off that ends the spin would wait for that line) */
                green__hunger(h, 1);
                if (green__steal(h)) { /* filled meanwhile */
                    green__hunger(h, 0);
                    h->spin_ok = 1;
                    continue;
                }
                poll_once(h, timeout);
                green__hunger(h, 0);
                continue;
            }
        }
        poll_once(h, timeout);
    }
}

/* Nothing can wake anyone: fail the root's wait. Returns what should run now. */
static __attribute__((noinline, cold)) struct green *deadlock(struct green_hub *h)
{
    struct green *root = h->root;
    if (root->state == GS_WAITING) {
        wake(h, root, EDEADLK);
        return rq_pop(h);
    }
    errno = EDEADLK; /* suspended in a green_switch: it returns NULL/EDEADLK */
    return root;
}

/* ---- lazy setup ---- */

static void sched_exit(struct green_hub *h, struct green *g);
static void join_notify(struct green_hub *h, struct green *g);

static const struct green_poller_ops *poller_from_env(int *kind)
{
    const char *e = getenv("GREEN_POLLER");
    if (e && strcmp(e, "uring") == 0) {
        *kind = GREEN_POLLER_URING;
        return &green__uring_ops;
    }
    *kind = GREEN_POLLER_EPOLL;
    return &green__epoll_ops;
}

static struct green_hub *loop_init(void);

static inline struct green_hub *loop(void)
{
    struct green_hub *h = green__tls_hub;
    if (GREEN_LIKELY(h && h->poller))
        return h;
    return loop_init();
}

static struct green_hub *loop_make(struct green_hub *h);

static __attribute__((noinline)) struct green_hub *loop_init(void)
{
    struct green_hub *h = green__hub_fast();
    if (!h) {
        if (errno != EAGAIN)
            errno = ENOMEM;
        return NULL;
    }
    green__passthrough++; /* see core.h */
    h = loop_make(h);
    green__passthrough--;
    return h;
}

/* h's timers and poller */
static struct green_hub *loop_make(struct green_hub *h)
{
    h->now = clock_ms();
    if (!h->wheel && green__timer_init(h) != 0)
        return NULL;
    struct green_poller *p = calloc(1, sizeof *p);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    p->wakefd = -1;
    h->poller = p;
    p->ops = poller_from_env(&h->poller_kind);
    if (p->ops->init(h) != 0) {
        /* io_uring may be disabled (kernel.io_uring_disabled): fall back to epoll */
        if (h->poller_kind == GREEN_POLLER_URING) {
            h->poller_kind = GREEN_POLLER_EPOLL;
            p->ops = &green__epoll_ops;
        }
        if (p->ops->init(h) != 0) {
            free(p);
            h->poller = NULL;
            return NULL;
        }
    }
    h->exit_hook = sched_exit;
    h->join_hook = join_notify;
    spin_init();
    return h;
}

struct green_hub *green__loop(void) { return loop(); }

void green__hub_loop_destroy(struct green_hub *h)
{
    green__remote_drain(h); /* frees wake-up notes nobody will act on any more */
    green__fds_destroy(h);
    if (h->poller) {
        h->poller->ops->destroy(h);
        free(h->poller);
        h->poller = NULL;
    }
    green__timer_destroy(h);
}

const char *green_poller_name(void)
{
    struct green_hub *h = loop();
    return h ? h->poller->ops->name : NULL;
}

/* ---- the wait mechanism ---- */


/* Run something else until we are woken. The caller has made itself findable by
 * whoever will wake it. Inlined where a shallow stack matters (sleeping). */
/*
 * Parking is split so that what stays on a parked green thread's stack is small (it is
 * all that a sleeping shared-stack green thread costs besides its control block):
 * park_begin does the work and returns whom to switch to, the switch itself holds
 * almost nothing live, and park_end reads the outcome after the resume.
 */

/* Make the caller wait; the green thread to run next (self if it is ready again at once),
 * or NULL with errno when the wait ends before it starts. */
static __attribute__((noinline)) struct green *park_begin(struct green_hub *h, int64_t deadline)
{
    struct green *self = h->current;
    self->wait_seq++; /* even if it ends at once: a late remote wake-up must not match */
    if (GREEN_UNLIKELY(self->flags & GF_CANCELLED)) {
        errno = ECANCELED;
        return NULL;
    }
    if (GREEN_UNLIKELY(green__shared_spare_ready(h) != 0))
        return NULL; /* ENOMEM */
    deadline = green__deadline_of(self, deadline);
    if (deadline >= 0 && deadline <= h->now) {
        errno = ETIMEDOUT;
        return NULL;
    }
    self->state = GS_WAITING;
    self->wake_err = 0;
    self->xf |= GX_INPARK; /* its blocking call holds the hub: it cannot move when woken */
    green__stamp(h, self);
    h->nwaiting++;
    if (deadline >= 0)
        green__timer_add(h, &self->timer, deadline);
    struct green *next = pick(h);
    if (GREEN_UNLIKELY(!next))
        next = deadlock(h);
    if (next == self)
        self->state = GS_RUNNING;
    return next;
}

/* Why the wait ended: 0, or -1 and errno. */
static __attribute__((noinline)) int park_end(void)
{
    struct green *self = green__tls_hub->current;
    int e = self->wake_err;
    self->xf &= (uint16_t)~GX_INPARK;
    /* killed after being woken but before running: the kill wins (objects that handed
     * something over to us check their waiter record, so nothing is lost) */
    if (GREEN_UNLIKELY(self->flags & GF_CANCELLED) && e != EDEADLK)
        e = ECANCELED;
    if (e) {
        self->wake_err = 0;
        errno = e;
        return -1;
    }
    return 0;
}

static inline __attribute__((always_inline)) int park(struct green_hub *h, int64_t deadline)
{
    struct green *next = park_begin(h, deadline);
    if (GREEN_UNLIKELY(!next))
        return -1;
    if (next != h->current)
        green__switch(h, next, NULL);
    return park_end();
}

int green__park(struct green_hub *h, int64_t deadline) { return park(h, deadline); }

int green_park(int64_t deadline)
{
    struct green_hub *h = loop();
    if (!h)
        return -1;
    green__waiting_on(h, GW_PARK, NULL);
    return green__park(h, deadline);
}

int green__wake(struct green_hub *h, struct green *g, int err)
{
    if (g->state != GS_WAITING || !(g->flags & GF_STARTED)) {
        errno = EAGAIN;
        return -1;
    }
    wake(h, g, err);
    return 0;
}

int green_wake(green_t handle, int err)
{
    struct green_hub *h = loop();
    if (!h)
        return -1;
    struct green_hub *gh;
    struct green *g = green__resolve_any(handle, &gh);
    if (!g)
        return -1;
    if (err < 0 || err > 4095) { /* errno values; wake_err is 12 bits */
        errno = EINVAL;
        return -1;
    }
    if (gh != h)
        return green__xcall(h, g, handle, GREEN_XOP_WAKE, err, -1, NULL);
    if (g->state == GS_FREE) {
        errno = ESRCH;
        return -1;
    }
    return green__wake(h, g, err);
}

/* ---- exits and joins ---- */

static void join_notify(struct green_hub *h, struct green *g)
{
    if (GREEN_UNLIKELY(g->ext && g->ext->xjoin)) {
        green__xjoin_done(h, g); /* the joiner waits on another hub */
        return;
    }
    struct green *j = green__joiner(g);
    if (j && j->state == GS_WAITING)
        wake(h, j, 0);
}

/* A scheduled green thread has returned (on its own stack): run what is next. */
static void sched_exit(struct green_hub *h, struct green *g)
{
    if (green__joiner(g))
        join_notify(h, g); /* a chooser of another hub's watch lets go of it there */
    if (GREEN_UNLIKELY(h->num != 0) && !green__joiner(g))
        green__zombie_open(h, g); /* joinable from other hubs without a round trip */
    struct green *next = pick(h);
    if (!next)
        next = deadlock(h);
    h->dying = g;
    green__switch(h, next, NULL);
    abort(); /* never resumed */
}

static void reap(struct green_hub *h, struct green *g)
{
    green__count(&h->alive, -1);
    green__block_free(h, g);
}

/* May the current green thread wait for g's end? 0, or -1 + errno: EDEADLK (g is the
 * caller), EINVAL (g is detached or the root, or another already waits for it). */
static int join_check(struct green_hub *h, struct green *g)
{
    struct green *self = h->current;
    if (GREEN_UNLIKELY(g->ext && g->ext->xjoin))
        green__xjoin_stale(g); /* a joiner on another hub that gave up */
    if (green__zombie_keep(g) != 0)
        return -1; /* joined from another hub already */
    if (g == self) {
        errno = EDEADLK;
        return -1;
    }
    if ((g->flags & (GF_ROOT | GF_DETACHED)) || (green__joiner(g) && green__joiner(g) != self)) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

int green__join_check(struct green_hub *h, green_t handle, struct green **g)
{
    *g = green__resolve(h, handle);
    return *g ? join_check(h, *g) : -1;
}

int green__join_arm(struct green_hub *h, struct green *g)
{
    if (g->state == GS_DEAD)
        return 1;
    green__set_joiner(g, h->current);
    return 0;
}

void green__join_disarm(struct green_hub *h, struct green *g)
{
    if (green__joiner(g) == h->current)
        green__set_joiner(g, NULL);
}

int green_join(green_t handle, void **result, int64_t deadline)
{
    struct green_hub *h = loop();
    if (!h)
        return -1;
    struct green_hub *gh;
    struct green *g = green__resolve_any(handle, &gh);
    if (!g)
        return -1;
    if (GREEN_UNLIKELY(gh != h)) {
        if (green__zombie_take(gh, g, handle, result) == 0)
            return 0; /* dead already: taken without a word to its hub */
        return green__xcall(h, g, handle, GREEN_XOP_JOIN, 0, deadline, result);
    }
    if (g->state == GS_FREE) {
        errno = ESRCH;
        return -1;
    }
    if (join_check(h, g) != 0)
        return -1;
    while (green__join_arm(h, g) == 0) {
        green__waiting_on(h, GW_JOIN, g);
        int r = green__park(h, deadline);
        green__join_disarm(h, g);
        if (r != 0)
            return -1;
    }
    if (result)
        *result = g->arg;
    reap(h, g);
    return 0;
}

int green_joinall(green_t *gs, size_t n, int64_t deadline)
{
    if (!gs && n) {
        errno = EINVAL;
        return -1;
    }
    int err = 0;
    for (size_t i = 0; i < n; i++) {
        /* a big batch's blocks went cold while it ran: ask for those a few ahead now
         * (a prefetch of a stale handle's block reads nothing and cannot fault) */
        if (i + 8 < n)
            __builtin_prefetch((const void *)((uintptr_t)gs[i + 8] & GREEN_PTR_MASK), 1);
        if (!gs[i])
            continue;
        if (green_join(gs[i], NULL, err ? 0 : deadline) == 0) {
            gs[i] = NULL;
        } else if (!err && errno != ETIMEDOUT) {
            err = errno;
        } else if (!err) {
            err = ETIMEDOUT;
        }
    }
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

int green_detach(green_t handle)
{
    struct green_hub *h = loop();
    if (!h)
        return -1;
    struct green_hub *gh;
    struct green *g = green__resolve_any(handle, &gh);
    if (!g)
        return -1;
    if (gh != h)
        return green__xcall(h, g, handle, GREEN_XOP_DETACH, 0, -1, NULL);
    return green__detach(h, g);
}

int green__detach(struct green_hub *h, struct green *g)
{
    if (g->state == GS_FREE) {
        errno = ESRCH;
        return -1;
    }
    if (GREEN_UNLIKELY(g->ext && g->ext->xjoin))
        green__xjoin_stale(g);
    if (green__zombie_keep(g) != 0)
        return -1; /* joined from another hub already */
    if ((g->flags & (GF_ROOT | GF_DETACHED)) || green__joiner(g)) {
        errno = EINVAL;
        return -1;
    }
    if (g->state == GS_DEAD) {
        reap(h, g);
        return 0;
    }
    g->flags |= GF_DETACHED;
    return 0;
}

/* A green thread that never ran dies without running. */
static void kill_unstarted(struct green_hub *h, struct green *g)
{
    if (g->state == GS_READY) {
        green__rq_remove(h, g);
    } else if (g->state == GS_WAITING) {
        green__timer_del(h, &g->timer);
        h->nwaiting--;
    }
    g->state = GS_DEAD;
    g->arg = NULL;
    green__died(h, g);
    if (green__joiner(g))
        join_notify(h, g);
    green__release(h, g); /* frees it if detached */
}

int green_kill(green_t handle)
{
    struct green_hub *h = loop();
    if (!h)
        return -1;
    struct green_hub *gh;
    struct green *g = green__resolve_any(handle, &gh);
    if (!g)
        return -1;
    if (gh != h)
        return green__xcall(h, g, handle, GREEN_XOP_KILL, 0, -1, NULL);
    return green__kill(h, g);
}

int green__kill(struct green_hub *h, struct green *g)
{
    if (g->state == GS_FREE) {
        errno = ESRCH;
        return -1;
    }
    if (g->flags & GF_ROOT) {
        errno = EPERM;
        return -1;
    }
    if (g->state == GS_DEAD)
        return 0;
    if (GREEN_UNLIKELY(g->ext && g->ext->kill_shields)) {
        g->ext->kill_held = 1; /* takes effect when its last kill shield is popped */
        return 0;
    }
    g->flags |= GF_CANCELLED;
    if (g->state == GS_MOVING)
        return 0; /* on its way here: its next park fails, or it never runs */
    if (!(g->flags & GF_STARTED))
        kill_unstarted(h, g);
    else if (g->state == GS_WAITING)
        wake(h, g, ECANCELED);
    return 0;
}

int green_cancelled(void)
{
    struct green_hub *h = green__hub_fast();
    return h && (h->current->flags & GF_CANCELLED) ? 1 : 0;
}

/* ---- spawning ---- */

static struct green *spawn(struct green_hub *h, green_fn fn, void *arg, const green_attr_t *attr)
{
    struct green *g = green__create(h, fn, arg, attr);
    if (!g)
        return NULL;
    if (green__prepare(h, g) != 0) {
        green__count(&h->alive, -1);
        green__block_free(h, g);
        errno = ENOMEM;
        return NULL;
    }
    g->flags |= GF_SCHED | GF_SPAWNED; /* its parent is the root */
    g->spawner = h->current->id;
    return g;
}

/* The slot of the patch library set before g can run: 0, or -1 + ENOMEM (g undone). */
static __attribute__((noinline)) int spawn_local(struct green_hub *h, struct green *g, void *local)
{
    struct green_ext *x = green__ext(g);
    if (x) {
        x->local = local;
        return 0;
    }
    green__release(h, g); /* its stack */
    green__count(&h->alive, -1);
    green__block_free(h, g);
    errno = ENOMEM;
    return -1;
}

static inline green_t spawn_attr(green_fn fn, void *arg, const green_attr_t *attr, void *local)
{
    struct green_hub *h = loop();
    if (!h)
        return NULL;
    struct green_hub *to = h;
    if (GREEN_UNLIKELY(attr && attr->hub != 0) && !(to = green__place(h, attr->hub)))
        return NULL; /* EINVAL */
    struct green *g = spawn(h, fn, arg, attr);
    if (!g)
        return NULL;
    if (GREEN_UNLIKELY(local != NULL) && spawn_local(h, g, local) != 0)
        return NULL;
    if (GREEN_UNLIKELY(attr && attr->hub == GREEN_HUB_ANY))
        g->xf |= GX_ANY;
    green_t handle = green__handle(g);
    if (GREEN_UNLIKELY(to != h))
        green__send(h, to, g, g, 1);
    else
        rq_push(h, g);
    return handle;
}

green_t green_spawn_attr(green_fn fn, void *arg, const green_attr_t *attr)
{
    return spawn_attr(fn, arg, attr, NULL);
}

green_t green_private_spawn_local(green_fn fn, void *arg, const green_attr_t *attr, void *local)
{
    return spawn_attr(fn, arg, attr, local);
}

green_t green__spawn_member(green_fn fn, void *arg, const green_attr_t *attr,
                            void (*on_death)(struct green_hub *, struct green *, void *),
                            void *death_arg, struct green_hub **where)
{
    struct green_hub *h = loop();
    if (!h)
        return NULL;
    struct green_hub *to = h;
    if (attr && attr->hub != 0 && !(to = green__place(h, attr->hub)))
        return NULL; /* EINVAL */
    struct green *g = spawn(h, fn, arg, attr);
    if (!g)
        return NULL;
    if (green__on_death(g, on_death, death_arg) != 0) {
        green__release(h, g); /* its stack */
        green__count(&h->alive, -1);
        green__block_free(h, g);
        errno = ENOMEM;
        return NULL;
    }
    g->flags |= GF_DETACHED;
    if (attr && attr->hub == GREEN_HUB_ANY)
        g->xf |= GX_ANY;
    green_t handle = green__handle(g);
    *where = to;
    if (to != h)
        green__send(h, to, g, g, 1);
    else
        rq_push(h, g);
    return handle;
}

int green_private_handle_ok(green_t handle)
{
    struct green_hub *gh;
    return green__resolve_any(handle, &gh) ? 0 : -1;
}

green_t green_spawn(green_fn fn, void *arg) { return green_spawn_attr(fn, arg, NULL); }

green_t green_spawn_later(int64_t ms, green_fn fn, void *arg)
{
    if (ms < 0) {
        errno = EINVAL;
        return NULL;
    }
    struct green_hub *h = loop();
    if (!h)
        return NULL;
    struct green *g = spawn(h, fn, arg, NULL);
    if (!g)
        return NULL;
    g->state = GS_WAITING;
    h->nwaiting++;
    green__timer_add(h, &g->timer, clock_ms() + ms);
    return green__handle(g);
}

/* ---- yielding and sleeping ---- */

/* A green thread killed while it was ready in the run queue fails its yield. */
static inline int yield_result(void)
{
    if (GREEN_UNLIKELY(green__tls_hub->current->flags & GF_CANCELLED)) {
        errno = ECANCELED;
        return -1;
    }
    return 0;
}

/* A killed green thread yields too before it reports ECANCELED: a loop that yields until
 * others are done (its children, say) must let them run, not spin on the CPU alone. */
static __attribute__((noinline)) int yield_slow(void)
{
    struct green_hub *h = loop();
    if (!h)
        return -1;
    struct green *self = h->current;
    if (GREEN_UNLIKELY(green__shared_spare_ready(h) != 0))
        return -1; /* ENOMEM */
    if (green_list_empty(&h->rq)) {
        if (GREEN_UNLIKELY(h->stealing) && green__ring_busy(h))
            green__ring_reclaim(h); /* those set aside for thieves are ready too */
        poll_once(h, 0);
        if (green_list_empty(&h->rq))
            return yield_result();
    }
    green__stamp(h, self);
    rq_push(h, self);
    struct green *next = pick(h);
    if (next != self)
        green__switch(h, next, NULL);
    else
        self->state = GS_RUNNING;
    return yield_result();
}

int green_yield(void)
{
    struct green_hub *h = green__tls_hub;
    if (GREEN_UNLIKELY(!h || !h->poller))
        return yield_slow();
    struct green *self = h->current;
    /* fast path: someone is ready and no poll is due: trade places with the head */
    if (GREEN_UNLIKELY((self->flags & GF_CANCELLED) || green_list_empty(&h->rq) ||
                       h->since_poll + 1 >= GREEN_POLL_EVERY || h->shared.spare_user || h->fresh))
        return yield_slow();
    h->since_poll++;
    struct green_list *n = h->rq.next;
    green_list_remove(n);
    self->state = GS_READY;
    green__stamp(h, self);
    green_list_push_back(&h->rq, &self->timer.link);
    green__switch(h, green_container_of(n, struct green, timer.link), NULL);
    return yield_result();
}

/* A sleep's park ended with -1: done (0) at our own deadline, else a failure. */
static __attribute__((noinline)) int sleep_result(int64_t deadline)
{
    if (errno != ETIMEDOUT)
        return -1;
    /* our own deadline, or an enclosing green_timeout_push scope's? */
    if (green__tls_hub->now >= deadline || clock_ms() >= deadline)
        return 0;
    return -1;
}

static inline int sleep_until(int64_t deadline, int movable)
{
    struct green_hub *h = loop();
    if (!h)
        return -1;
    if (deadline < 0) {
        errno = EINVAL;
        return -1;
    }
    green__waiting_on(h, GW_SLEEP, NULL);
    if (movable)
        h->current->xf |= GX_SLEEPS; /* nothing here holds h across the park: it may move */
    while (park(green__tls_hub, deadline) == 0)
        ; /* woken by green_wake: keep sleeping */
    if (movable)
        green__tls_hub->current->xf &= (uint16_t)~GX_SLEEPS;
    return sleep_result(deadline);
}

int green_sleep_until(int64_t deadline) { return sleep_until(deadline, 1); }

/* libgreen's own sleeps (back-offs): never a point where the caller moves, since the
 * functions around them may keep errno's address, or their hub, across them. */
int green__sleep_until(int64_t deadline) { return sleep_until(deadline, 0); }

int green_sleep(int64_t ms)
{
    if (ms < 0) {
        errno = EINVAL;
        return -1;
    }
    if (ms == 0)
        return green_yield();
    return green_sleep_until(clock_ms() + ms);
}

/* ---- scoped timeouts and shields ---- */

/* Open a scope on x's stack of deadlines: tmo becomes the effective one; `shield` marks
 * the scope as a timeout shield. 0, or -1 + errno (EOVERFLOW, ENOMEM). */
static int scope_push(struct green_ext *x, int64_t tmo, int shield)
{
    if (x->depth == GREEN_TIMEOUT_DEPTH) {
        errno = EOVERFLOW;
        return -1;
    }
    if (!x->tmo_saved && !(x->tmo_saved = malloc(GREEN_TIMEOUT_DEPTH * sizeof *x->tmo_saved))) {
        errno = ENOMEM;
        return -1;
    }
    if (shield)
        x->shield_levels |= 1u << x->depth;
    else
        x->shield_levels &= ~(1u << x->depth);
    x->tmo_saved[x->depth++] = x->tmo;
    x->tmo = tmo;
    return 0;
}

/* Is the innermost scope of x (if any) a shield (1), a timeout (0)? -1: none. */
static int scope_top(const struct green_ext *x)
{
    if (!x || x->depth == 0)
        return -1;
    return (x->shield_levels >> (x->depth - 1)) & 1u;
}

int green_timeout_push(int64_t ms)
{
    struct green_hub *h = loop();
    if (!h)
        return -1;
    struct green_ext *x = green__ext(h->current);
    if (!x)
        return -1;
    int64_t tmo = x->tmo;
    if (ms >= 0) {
        int64_t d = clock_ms() + ms;
        if (tmo < 0 || d < tmo)
            tmo = d;
    }
    return scope_push(x, tmo, 0);
}

int green_timeout_pop(void)
{
    struct green_hub *h = green__hub_fast();
    if (!h)
        return -1;
    struct green_ext *x = h->current->ext;
    if (scope_top(x) != 0) {
        errno = EINVAL; /* no scope, or the innermost is a shield */
        return -1;
    }
    x->tmo = x->tmo_saved[--x->depth];
    green__ext_trim(h->current);
    return 0;
}

int green__shield_push(struct green_hub *h, int what)
{
    if (!what || (what & ~(GREEN_SHIELD_KILLS | GREEN_SHIELD_TIMEOUTS))) {
        errno = EINVAL;
        return -1;
    }
    struct green *self = h->current;
    struct green_ext *x = green__ext(self);
    if (!x)
        return -1;
    if ((what & GREEN_SHIELD_KILLS) && x->kill_shields == UINT16_MAX) {
        errno = EOVERFLOW;
        return -1;
    }
    if ((what & GREEN_SHIELD_TIMEOUTS) && scope_push(x, -1, 1) != 0) {
        int err = errno;
        green__ext_trim(self);
        errno = err;
        return -1;
    }
    if ((what & GREEN_SHIELD_KILLS) && x->kill_shields++ == 0 && (self->flags & GF_CANCELLED)) {
        self->flags &= (uint8_t)~GF_CANCELLED; /* already killed: held from now on */
        x->kill_held = 1;
    }
    return 0;
}

int green__shield_pop(struct green_hub *h, int what)
{
    struct green *self = h->current;
    struct green_ext *x = self->ext;
    if (!what || (what & ~(GREEN_SHIELD_KILLS | GREEN_SHIELD_TIMEOUTS)) ||
        ((what & GREEN_SHIELD_TIMEOUTS) && scope_top(x) != 1) ||
        ((what & GREEN_SHIELD_KILLS) && (!x || !x->kill_shields))) {
        errno = EINVAL;
        return -1;
    }
    if (what & GREEN_SHIELD_TIMEOUTS)
        x->tmo = x->tmo_saved[--x->depth];
    if ((what & GREEN_SHIELD_KILLS) && --x->kill_shields == 0 && x->kill_held) {
        x->kill_held = 0;
        self->flags |= GF_CANCELLED; /* the held kill takes effect: its next wait ends */
    }
    green__ext_trim(self);
    return 0;
}

/* The calling green thread's shields: the public kill shield is the private one of
 * GREEN_SHIELD_KILLS (one mechanism; they count together). */
static int shield_push(int what)
{
    struct green_hub *h = green__hub_fast();
    if (!h) {
        errno = ENOMEM;
        return -1;
    }
    return green__shield_push(h, what);
}

static int shield_pop(int what)
{
    struct green_hub *h = green__tls_hub;
    if (!h) {
        errno = EINVAL; /* no hub: nothing was pushed */
        return -1;
    }
    return green__shield_pop(h, what);
}

int green_private_shield_push(int what) { return shield_push(what); }
int green_private_shield_pop(int what) { return shield_pop(what); }
int green_shield_push(void) { return shield_push(GREEN_SHIELD_KILLS); }
int green_shield_pop(void) { return shield_pop(GREEN_SHIELD_KILLS); }
