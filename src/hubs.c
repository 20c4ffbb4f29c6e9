/*
 * hubs.c — hubs on every core (layer 4, sched.h): the group of hubs that serve the
 * process, placing green threads on them, moving ready ones to hubs that have nothing
 * to do (given by busy hubs, or stolen by idle ones), and the calls (join, kill, detach, wake) on green threads of other hubs.
 *
 * The group. Hub 1 is the first hub to join (the caller of green_hubs_start, or of the
 * first call that needs a number); green_hubs_start starts OS threads for the others.
 * Such a thread blocks every signal, makes its hub (with a permanent outside reference:
 * waiting for work is never a deadlock) and parks its root for ever: its hub runs what
 * it is given and otherwise sleeps in its poller. Members are never removed: the array
 * only grows, so a member's number and pointer are read without a lock.
 *
 * Moving. A green thread belongs to one hub at a time (g->hub). It is handed over as a
 * ready green thread: its hub takes it off its run queue, marks it GS_MOVING, writes
 * g->hub (release) as its last write, and pushes it on the new hub's inbox (a lock-free
 * stack through timer.link.next, pushed by many, taken whole by its hub), notifying that
 * hub if it sleeps in its poller. The new hub puts it in its run queue. Nothing else has
 * to move: a ready green thread is in no timer wheel and no fd wait; its stack (a
 * dedicated slot) goes with it and returns to the pool of the hub that carved it when it
 * is freed (stack.c); a shared-stack one moves only before it first runs (its frames, once
 * there, hold addresses of its hub's shared stack). A spawn onto another hub is the same
 * hand-over of a green thread that never ran. Who may move (GREEN_HUB_ANY, movable()):
 * one that never ran, or whose last park was green_sleep's or that yielded — never one
 * ready because a park inside another blocking call ended, which still holds its hub.
 *
 * Placement (GREEN_HUB_ANY): a member that is hungry right now, else the one with the
 * fewest live green threads plus those on their way to it; chosen once per burst of up
 * to PLACE_RUN such spawns of a hub made without a switch in between.
 *
 * Work sharing. A member with nothing to run (about to block in its poller) says so:
 * h->hungry and the count green__nhungry. A busy member looks at that count every time it
 * polls in passing (every 128 hand-offs: nothing on the fast paths, one relaxed load per
 * 128) and gives half of its movable ready green threads to one hungry member, which it
 * claims (hungry 1 → 0) so that two givers do not both feed it. The busy hub's own run
 * queue is touched only by its own thread: no lock on any run queue.
 *
 * Stealing. Sharing needs the busy hub to reach its scheduler; one whose green thread
 * computes without yielding gives nothing away meanwhile. So each member of a group of
 * > 1 (h->stealing; set when it first sees the group grown) keeps a ring: up to
 * GREEN_RING movable ready green threads, taken at its picks (every one while a member
 * asks for work or since a thief took some of what the last fill left, else every 16th)
 * from the back of its run queue and from its front (those that never ran: the only ones
 * that move off x86-64, and shared-stack ones everywhere; a few looked at per pick at
 * each end — as many fresh ones as the ring holds once a thief has taken — never more
 * than stay queued), that any idle member may take without the busy hub's help. A hub
 * that is not a member of such a group has no ring, and its picks do not change: the
 * ring costs nothing on a single hub. A member comes to pick_slow at every pick instead
 * of every 128th (sched.c holds its since_poll at the threshold), which fills the ring,
 * hands its content to a member that sleeps hungry (ring_give: claimed as by a share),
 * and every 128 picks takes it back to the front of the queue and fills nothing until
 * those have run (ring_hold), so that nothing waits there for ever; so does a hub whose
 * run queue ran empty (a pick, or a yield). An idle member (pick_slow, before it spins and sleeps; and while it spins)
 * steals: it takes every slot it can of the first other member whose ring holds some.
 *
 * A ring slot holds NULL, a green thread, or one being taken (its address | 1); bit i of
 * ring_mask is set while slot i is not NULL. Only the ring's hub fills a slot: it takes g
 * off its run queue, marks it GS_MOVING (its last write), stores it (release), sets the
 * bit. From then on g belongs to whoever takes it: one CAS on the slot decides between
 * thieves, and between a thief and the ring's hub taking it back. A thief that wins
 * (slot → g|1) writes g->hub (release), empties the slot, clears the bit, and queues g as
 * a hand-over's new hub does; the ring's hub that finds a slot being taken waits for the
 * slot to empty (a few stores away). The ring's hub never reads or writes a green thread
 * it set aside before taking it back: green__resolve and green__resolve_any take one of
 * ours out of the ring (or learn that a thief has it, and where it went) before any call
 * on it, and a remote drain takes the whole ring back first (a note, a kill or a join from
 * another hub may be about one in it). A kill that meets one being stolen follows it to
 * its new hub as any call across hubs does: it fails its next blocking call (ECANCELED),
 * or never runs if it never ran.
 *
 * Calls across hubs. A call on a green thread of another hub is a record (struct xop) sent
 * to g's hub on its remote list (as a note whose g is NULL); g's hub carries it out in its
 * loop and wakes the caller through the caller's waiter record. If g moved meanwhile, the
 * record follows it. The record's tiny lock decides the end, as in green__wait: the
 * target marks it done and wakes the caller under it; a caller whose join times out
 * marks it abandoned under it, and the target then frees it. A join of a green thread
 * that is still running registers the record in g's extension (xjoin); g's death hands
 * the result over and makes g detached, so that its own hub frees it.
 *
 * The library's own records (struct green_xnote, sched.h) travel the same way: a note
 * without a green thread whose kind says "run fn here" (green__xrun tells them from the
 * calls). group.c sends a member's death home with one; green_choose sends a watch of a
 * green thread of another hub (its join clause), which that hub keeps in the green
 * thread's extension as it keeps a remote join (below).
 *
 * Joins of the dead. Most joins across hubs come after the end (a main that joins all it
 * spawned): a record and a round trip each — two wake-ups of sleeping hubs, ~40 µs —
 * made a join cost more than the green thread's life (the talk's Prog 1 on two hubs: 16x
 * one hub's time). So a green thread that dies unjoined on a member of a group (not
 * detached, nobody waiting, no group's and no libgreen-patch pthread's) is opened: its
 * hub stores in g->joiner a token naming its generation (release: after the result). A
 * joiner of another hub takes it by swapping the token for GREEN_ZTAKEN (acquire): it
 * reads the result, makes the handle stale (the generation, which every reader loads
 * atomically) and pushes g on its hub's `reaped` list, which that hub frees at its next
 * look at its poller — no record, no wake-up. Before g's own hub consumes a dead g
 * (a local join, detach, destroy, or a join record), it takes the token back
 * (green__zombie_keep): one swap decides; the loser finds the handle joined (ESRCH).
 * Every access to g->joiner is atomic for this (relaxed: plain moves).
 *
 * Invariants:
 *  - only g->hub's thread writes g's fields (but an open dead one's joiner and, once
 *    taken, its link); g->hub changes only on that thread, last;
 *  - a GS_MOVING green thread is in exactly one hub's inbox, and that hub is g->hub, or
 *    in exactly one slot of g->hub's ring (then only the CAS's winner writes it);
 *  - a hub that handed over a green thread (h->exported) never frees its memory, nor
 *    orphans its control-block chunks: green threads of its blocks and stacks may run
 *    elsewhere (hub.c);
 *  - an xop is freed by exactly one side: the caller once it has seen it done, the
 *    target once it has seen it abandoned; a choose's watch likewise (see there).
 */
#include "wait.h"

#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GREEN_HUBS_MAX 1024

static struct green_hub *group[GREEN_HUBS_MAX + 1] GREEN_BIG_BSS; /* 1-based; members never leave */
static int group_n;
static pthread_mutex_t group_lock = PTHREAD_MUTEX_INITIALIZER;
int green__nhungry __attribute__((aligned(64))); /* written by idle members, read by busy ones'
                                                * picks: not on group_n's line */

int green__hubs_n(void) { return __atomic_load_n(&group_n, __ATOMIC_ACQUIRE); }

static struct green_hub *member(int n);

struct green_hub *green__hub_member(int n) { return member(n); }

static struct green_hub *member(int n)
{
    if (n < 1 || n > green__hubs_n())
        return NULL;
    return __atomic_load_n(&group[n], __ATOMIC_ACQUIRE);
}

/* h joins the group (under group_lock, on h's own thread): 0, or -1 + errno. Every member
 * has a shared stack, for the shared-stack green threads that may arrive. */
static int join_locked(struct green_hub *h)
{
    if (h->num)
        return 0;
    if (group_n == GREEN_HUBS_MAX) {
        errno = EINVAL;
        return -1;
    }
    if (green__shared_init(h) != 0)
        return -1;
    int n = group_n + 1;
    h->num = n;
    __atomic_store_n(&group[n], h, __ATOMIC_RELEASE);
    __atomic_store_n(&group_n, n, __ATOMIC_RELEASE);
    return 0;
}

/* The caller's hub, made a member if the group is empty (it is then hub 1). */
static struct green_hub *self_hub(void)
{
    struct green_hub *h = green__loop();
    if (!h)
        return NULL;
    if (!h->num && green__hubs_n() == 0) {
        green__sys.pthread_mutex_lock(&group_lock);
        int r = group_n == 0 ? join_locked(h) : 0;
        green__sys.pthread_mutex_unlock(&group_lock);
        if (r != 0)
            return NULL;
    }
    return h;
}

int green_hub_count(void)
{
    int n = green__hubs_n();
    return n ? n : 1;
}

int green_hub_self(void)
{
    struct green_hub *h = green__tls_hub;
    if (h && h->num)
        return h->num;
    if (green__hubs_n() == 0)
        return 1; /* the only hub there is (it joins as 1 when a number is needed) */
    return 0;     /* an OS thread of the program's own, not a member */
}

/* ---- the group's OS threads ---- */

struct start {
    sem_t ready;
    int err;
};

static void *hub_main(void *arg)
{
    struct start *st = arg;
    sigset_t all;
    sigfillset(&all);
    green__sys.pthread_sigmask(SIG_BLOCK, &all, NULL);
    struct green_hub *h = green__loop();
    int err = 0;
    if (!h) {
        err = errno ? errno : ENOMEM;
    } else {
        h->ext_refs++; /* it waits for work: never a deadlock */
        green__sys.pthread_mutex_lock(&group_lock);
        if (join_locked(h) != 0)
            err = errno;
        green__sys.pthread_mutex_unlock(&group_lock);
    }
    st->err = err;
    green__sys.sem_post(&st->ready); /* st is gone after this */
    if (err)
        return NULL; /* the thread ends; its hub with it */
    for (;;)
        green_park(-1); /* the root waits; the hub runs what it is given */
    return NULL;
}

static int cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER; /* one start at a time */

int green_hubs_start(int n)
{
    if (n < 0 || n > GREEN_HUBS_MAX) {
        errno = EINVAL;
        return -1;
    }
    if (n == 0)
        n = cpus();
    if (n > GREEN_HUBS_MAX)
        n = GREEN_HUBS_MAX;
    struct green_hub *h = self_hub();
    if (!h)
        return -1;
    green__sys.pthread_mutex_lock(&start_lock);
    int err = 0;
    while (green__hubs_n() < n) {
        struct start st = {.err = 0};
        green__sys.sem_init(&st.ready, 0, 0);
        pthread_t t;
        int e = green__sys_thread_create(&t, hub_main, &st);
        if (e != 0) {
            err = e == EAGAIN ? EAGAIN : e;
            break;
        }
        green__sys.pthread_detach(t);
        while (green__sys.sem_wait(&st.ready) != 0 && errno == EINTR)
            ;
        if (st.err) {
            err = st.err == EMFILE || st.err == ENFILE ? EAGAIN : st.err;
            break;
        }
    }
    green__sys.pthread_mutex_unlock(&start_lock);
    if (h->num && green__hubs_n() > 1)
        green__steal_on(h); /* its next pick keeps a ring: what it queued may be taken */
    if (err && green__hubs_n() < n) {
        errno = err;
        return -1;
    }
    return green__hubs_n();
}

/* fork(): the child has no group (hub.c's atfork handler). */
void green__hubs_fork_child(void)
{
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    group_lock = fresh;
    start_lock = fresh;
    for (int i = 0; i <= GREEN_HUBS_MAX; i++)
        group[i] = NULL;
    group_n = 0;
    green__nhungry = 0;
}

/* ---- placement ---- */

/* GREEN_HUB_ANY spawns placed together: the loads are other hubs' lines, written as
 * they run and take in what they are given (a miss each; Prog 1 at 1M on two hubs spent
 * a tenth of its time reading them when every spawn compared them). A run is a burst:
 * it ends after PLACE_RUN spawns, or when the spawning hub has switched since its first
 * (so spawns made now and then each compare the loads, and see a hub that went idle). */
#define PLACE_RUN 32

/* Live green threads of m, and those on their way to it: the load placement compares. */
static uint64_t load_of(struct green_hub *m)
{
    return __atomic_load_n(&m->alive, __ATOMIC_RELAXED) + __atomic_load_n(&m->incoming, __ATOMIC_RELAXED);
}

struct green_hub *green__place(struct green_hub *h, int hub)
{
    if (hub == GREEN_HUB_ANY) {
        int n = green__hubs_n();
        if (n <= 1)
            return h;
        if (h->place_left && h->place_at == h->switches) {
            h->place_left--;
            return h->place_to;
        }
        struct green_hub *best = h->num ? h : NULL;
        uint64_t best_load = best ? load_of(h) : UINT64_MAX;
        int hungry = __atomic_load_n(&green__nhungry, __ATOMIC_RELAXED) != 0;
        for (int i = 1; i <= n; i++) {
            struct green_hub *m = member(i);
            if (!m || m == h)
                continue;
            if (hungry && __atomic_load_n(&m->hungry, __ATOMIC_RELAXED)) {
                best = m; /* idle now: it wakes for these (and stops being hungry) */
                break;
            }
            uint64_t l = load_of(m);
            if (l < best_load) {
                best = m;
                best_load = l;
            }
        }
        h->place_to = best ? best : h;
        h->place_left = PLACE_RUN - 1;
        h->place_at = h->switches;
        return h->place_to;
    }
    if (hub < 1) {
        errno = EINVAL;
        return NULL;
    }
    if (hub == 1 && green__hubs_n() == 0)
        return self_hub() ? h : NULL; /* the caller's hub becomes hub 1 */
    struct green_hub *m = member(hub);
    if (!m)
        errno = EINVAL;
    return m;
}

/* ---- handing green threads over ---- */

void green__send(struct green_hub *h, struct green_hub *to, struct green *first, struct green *last, int n)
{
    h->exported = 1;
    __atomic_add_fetch(&to->incoming, (uint64_t)n, __ATOMIC_RELAXED);
    /* from here on they are `to`'s: g->hub is each one's last write of ours */
    for (struct green *g = first;;) {
        struct green *next = (struct green *)(void *)g->timer.link.next;
        int end = g == last;
        green__count(&h->alive, -1);
        g->state = GS_MOVING;
        __atomic_store_n(&g->hub, to, __ATOMIC_RELEASE);
        if (end)
            break;
        g = next;
    }
    /* `to` reads the links only once it has taken its inbox */
    struct green *head = __atomic_load_n(&to->inbox, __ATOMIC_RELAXED);
    do
        last->timer.link.next = (struct green_list *)(void *)head;
    while (!__atomic_compare_exchange_n(&to->inbox, &head, first, 1, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
    /* as green__remote_wake: the hub looks at its inbox after announcing that it polls */
    green__poll_notify(to);
}

void green__inbox_drain(struct green_hub *h)
{
    struct green *g = __atomic_exchange_n(&h->inbox, NULL, __ATOMIC_ACQUIRE);
    struct green *fifo = NULL;
    uint64_t n = 0;
    while (g) { /* pushed as chains, newest first: reverse into arrival order */
        struct green *next = (struct green *)(void *)g->timer.link.next;
        g->timer.link.next = (struct green_list *)(void *)fifo;
        fifo = g;
        g = next;
        n++;
    }
    __atomic_sub_fetch(&h->incoming, n, __ATOMIC_RELAXED);
    while (fifo) {
        g = fifo;
        fifo = (struct green *)(void *)g->timer.link.next;
        green_list_init(&g->timer.link);
        green__count(&h->alive, 1);
        green__count(&h->moved_in, 1);
        if (g->flags & GF_STARTED) /* else g->fn is where the stamp would go */
            green__stamp(h, g);
        green__rq_push(h, g);
    }
}

/* ---- sharing work with hungry hubs ---- */

void green__hunger(struct green_hub *h, int on)
{
    if (on) {
        if (!__atomic_exchange_n(&h->hungry, 1, __ATOMIC_SEQ_CST))
            __atomic_add_fetch(&green__nhungry, 1, __ATOMIC_SEQ_CST);
    } else {
        int one = 1;
        if (__atomic_compare_exchange_n(&h->hungry, &one, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
            __atomic_sub_fetch(&green__nhungry, 1, __ATOMIC_SEQ_CST);
    }
}

/* Whether a green thread that has run may move. On x86-64 every thread-local access
 * reads %fs, the OS thread's own; elsewhere (aarch64: tpidr_el0) the compiler keeps the
 * thread pointer in a register across calls, so a function of libgreen's (or the
 * program's) that read a thread-local before a switch would read the old OS thread's
 * after it: there, green threads move only before they first run (placement included). */
#if defined(__x86_64__)
#define GREEN_MOVE_STARTED 1
#else
#define GREEN_MOVE_STARTED 0
#endif

/* May ready g (of h) go to another hub now? */
static int movable(struct green_hub *h, const struct green *g)
{
    if (!(g->xf & GX_ANY) || (g->flags & GF_ROOT) || !(g->flags & GF_SCHED))
        return 0;
    if (g == h->current)
        return 0; /* a yield queues itself before it picks: it still runs */
    if (g->flags & GF_STARTED) {
        if (!GREEN_MOVE_STARTED || (g->flags & GF_SHARED))
            return 0; /* its frames hold addresses of this hub's shared stack (or of
                       * this OS thread's thread-locals: see GREEN_MOVE_STARTED) */
        if ((g->xf & (GX_INPARK | GX_SLEEPS)) == GX_INPARK)
            return 0; /* woken inside a blocking call that holds this hub */
    }
    if (green__joiner(g) && !(g->ext && g->ext->xjoin))
        return 0; /* a joiner of this hub waits for it (green_choose too) */
    if (g->ext && (g->ext->held || g->ext->on_death || g->ext->local))
        return 0; /* holds mutexes, is a group's member, or is a pthread of libgreen-patch */
    return 1;
}

/* Claim a hungry member other than h: NULL if none is left. */
static struct green_hub *claim_hungry(struct green_hub *h)
{
    int n = green__hubs_n();
    int start = h->num > 0 ? h->num : 1;
    for (int k = 1; k <= n; k++) {
        struct green_hub *m = member((start + k - 1) % n + 1);
        int one = 1;
        if (m && m != h && __atomic_load_n(&m->hungry, __ATOMIC_RELAXED) &&
            __atomic_compare_exchange_n(&m->hungry, &one, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
            __atomic_sub_fetch(&green__nhungry, 1, __ATOMIC_SEQ_CST);
            return m;
        }
    }
    return NULL;
}

#define SHARE_SCAN 64 /* ready green threads looked at per share, at each end: a
                       * scan past started shared-stack ones that cannot move cost Prog 1
                       * on two hubs 4% at 512 */
#define SHARE_MISS 8  /* and no further than this many in a row that may not move: Prog 1
                       * on two hubs, the other hub asleep between its timers, scanned 128
                       * unmovable ones at every poll in passing (8% of the busy hub's time) */

void green__share(struct green_hub *h)
{
    uint64_t want = h->nready / 2;
    if (!want)
        return;
    /* collect first, claim after: a hungry hub is not claimed for nothing. From the back
     * (the last to run here: the fresh ones, which wait there, sched.c), then from the
     * front (started ones, which move if their stacks are dedicated) */
    struct green *first = NULL, *last = NULL;
    int n = 0;
    for (int pass = 0; pass < 2 && (uint64_t)n < want; pass++) {
        int scanned = 0, miss = 0;
        struct green_list *l = pass ? h->rq.next : h->rq.prev;
        while (l != &h->rq && (uint64_t)n < want && scanned++ < SHARE_SCAN && miss < SHARE_MISS) {
            struct green_list *step = pass ? l->next : l->prev;
            struct green *g = green_container_of(l, struct green, timer.link);
            miss++;
            if (movable(h, g)) {
                miss = 0;
                green__rq_remove(h, g);
                g->timer.link.next = (struct green_list *)(void *)first; /* newest first */
                first = g;
                if (!last)
                    last = g;
                n++;
            }
            l = step;
        }
    }
    if (!n)
        return;
    struct green_hub *to = claim_hungry(h);
    if (!to) { /* it woke meanwhile: put them back, in order */
        for (struct green *g = first; g;) {
            struct green *next = g == last ? NULL : (struct green *)(void *)g->timer.link.next;
            green_list_init(&g->timer.link);
            green__rq_push(h, g);
            g = next;
        }
        return;
    }
    green__send(h, to, first, last, n);
}

/* ---- joins of the dead (see the header) ---- */

static inline struct green *zopen(uint16_t gen)
{
    return (struct green *)(uintptr_t)(((uintptr_t)gen << 4) | 0x5);
}

void green__zombie_open(struct green_hub *h, struct green *g)
{
    if (green__hubs_n() < 2 || (g->flags & GF_DETACHED) || (g->ext && (g->ext->on_death || g->ext->local)))
        return;
    (void)h;
    __atomic_store_n(&g->joiner, zopen(g->gen), __ATOMIC_RELEASE);
}

int green__zombie_take(struct green_hub *gh, struct green *g, green_t handle, void **result)
{
    struct green *open = zopen((uint16_t)((uintptr_t)handle >> 48));
    struct green *j = open;
    if (green__joiner(g) != open ||
        !__atomic_compare_exchange_n(&g->joiner, &j, GREEN_ZTAKEN, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return -1;
    if (result)
        *result = g->arg;
    /* its handle is stale from now on, everywhere (its hub bumps the generation again
     * when it frees the block) */
    __atomic_store_n(&g->gen, (uint16_t)(__atomic_load_n(&g->gen, __ATOMIC_RELAXED) + 1), __ATOMIC_RELEASE);
    /* dead, its hub never moves: gh frees it */
    struct green *head = __atomic_load_n(&gh->reaped, __ATOMIC_RELAXED);
    do
        g->timer.link.next = (struct green_list *)(void *)head;
    while (!__atomic_compare_exchange_n(&gh->reaped, &head, g, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
    return 0;
}

void green__reaped_drain(struct green_hub *h)
{
    struct green *g = __atomic_exchange_n(&h->reaped, NULL, __ATOMIC_ACQUIRE);
    while (g) {
        struct green *next = (struct green *)(void *)g->timer.link.next;
        green_list_init(&g->timer.link);
        green__set_joiner(g, NULL);
        if (g == h->current || g == h->dying) {
            g->flags |= GF_DETACHED; /* still on its stack (this runs in its last pick):
                                      * freed once buried */
        } else {
            green__count(&h->alive, -1);
            green__block_free(h, g);
        }
        g = next;
    }
}

/* ---- stealing ---- */

#define RING_SCAN 4 /* run-queue entries looked at per fill at each end */

static inline struct green *taken(struct green *g) { return (struct green *)((uintptr_t)g | 1); }

/* On h's thread, at a pick while it is a member of a group of > 1: keep up to half of its
 * ready green threads, the movable ones among the last few, in the ring, so that an idle
 * member can take them even while the one about to run computes for long. Costs a few
 * loads when the ring is full or nothing is ready behind the one to run. */
/* g (ready, movable, in h's run queue) out of the run queue, to go into the ring. */
static void ring_take_out(struct green_hub *h, struct green *g, struct green **put, int *np)
{
    green__rq_remove(h, g);
    green__count(&h->alive, -1);
    g->state = GS_MOVING; /* our last write: from the slot on, whoever takes it */
    put[(*np)++] = g;
}

void green__ring_fill(struct green_hub *h)
{
    uint32_t mask = __atomic_load_n(&h->ring_mask, __ATOMIC_ACQUIRE);
    uint32_t full = (uint32_t)((1ull << GREEN_RING) - 1);
    /* a thief took what the last fill left: it runs dry again soon, so give it as much of
     * the fresh ones as the ring holds (RING_SCAN alone: skew on two hubs, the second hub
     * slept and was woken ~5,000 times) */
    int fresh_scan = (h->ring_left & ~mask) ? GREEN_RING : RING_SCAN;
    int held = __builtin_popcount(mask), room = GREEN_RING - held, np = 0;
    struct green *put[GREEN_RING];
#define RING_ROOM() (np < room && (uint64_t)(held + np) + 1 < h->nready)
    /* the back: the last queued, those that yielded or slept (they move on x86-64) */
    struct green_list *l = h->rq.prev;
    if (l != h->ring_seen) { /* else nothing queued since the last look */
        for (int scanned = 0; RING_ROOM() && l != &h->rq && scanned++ < RING_SCAN;) {
            struct green_list *prev = l->prev;
            struct green *g = green_container_of(l, struct green, timer.link);
            if (movable(h, g))
                ring_take_out(h, g, put, &np);
            l = prev;
        }
        h->ring_seen = h->rq.prev;
    }
    /* the first fresh ones, but not the one about to run: green threads that never ran
     * (the only ones that move off x86-64, and shared-stack ones everywhere) */
    l = !h->fresh ? &h->rq : h->fresh == h->rq.next ? h->fresh->next : h->fresh;
    for (int scanned = 0; RING_ROOM() && l != &h->rq && scanned++ < fresh_scan;) {
        struct green_list *next = l->next;
        struct green *g = green_container_of(l, struct green, timer.link);
        if (g->flags & GF_STARTED)
            break;
        if (movable(h, g))
            ring_take_out(h, g, put, &np);
        l = next;
    }
#undef RING_ROOM
    if (np) {
        h->exported = 1;
        /* the bits first, in one write of the line thieves read, then the slots: a thief
         * that finds a bit before its slot skips it, and one that takes a slot (even by a
         * stale look at the mask) clears its bit after we set it. A bit set after its
         * slot could be cleared first by such a thief, and then stay set for an empty
         * slot, which the hub's reclaim would wait on for ever. */
        uint32_t bits = 0, free = ~mask & full;
        int slot[GREEN_RING];
        for (int k = 0; k < np; k++) {
            slot[k] = __builtin_ctz(free);
            free &= free - 1;
            bits |= 1u << slot[k];
        }
        __atomic_or_fetch(&h->ring_mask, bits, __ATOMIC_RELEASE);
        for (int k = 0; k < np; k++)
            __atomic_store_n(&h->ring[slot[k]], put[k], __ATOMIC_RELEASE);
        mask |= bits;
    }
    h->ring_left = mask;
}

/* A thief that has marked slot i of h's ring taken writes g->hub, then empties the
 * slot: wait for that (a few stores), after which g->hub names the thief. */
static inline void thief_wait(struct green_hub *h, int i, struct green *g)
{
    while (__atomic_load_n(&h->ring[i], __ATOMIC_ACQUIRE) == taken(g))
        green_cpu_relax();
}

/* Slot i of h's ring back to h, if it still holds g: 1 if taken back. A thief in the
 * middle of taking it is waited for. */
static int ring_take_back(struct green_hub *h, int i, struct green *g)
{
    struct green *v = g;
    if (__atomic_compare_exchange_n(&h->ring[i], &v, NULL, 0, __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE)) {
        __atomic_and_fetch(&h->ring_mask, ~(1u << i), __ATOMIC_RELAXED);
        green__count(&h->alive, 1);
        return 1;
    }
    thief_wait(h, i, g);
    return 0;
}

void green__ring_reclaim(struct green_hub *h)
{
    uint32_t mask = __atomic_load_n(&h->ring_mask, __ATOMIC_ACQUIRE);
    /* each to the front, the lowest slot (filled first, from further back) first: roughly
     * their old order, and ahead of what was queued meanwhile (they waited longer). The
     * picks that run them fill nothing (ring_hold): else the fill would set the ones
     * behind the first aside again, and those that never ran (taken from the front)
     * would wait there for ever */
    while (mask) {
        int i = __builtin_ctz(mask);
        mask &= mask - 1;
        struct green *g = __atomic_load_n(&h->ring[i], __ATOMIC_ACQUIRE);
        if (!g || ((uintptr_t)g & 1)) {
            if (g)
                ring_take_back(h, i, (struct green *)((uintptr_t)g & ~(uintptr_t)1));
            continue;
        }
        if (ring_take_back(h, i, g)) {
            green__rq_push_front(h, g);
            if (g->flags & GF_STARTED) /* a fresh one goes behind the started (sched.c) */
                h->ring_hold++;
        }
    }
    h->ring_left = 0;
}

void green__ring_give(struct green_hub *h)
{
    struct green_hub *to = claim_hungry(h);
    if (!to)
        return;
    struct green *first = NULL, *last = NULL;
    int n = 0;
    uint32_t mask = __atomic_load_n(&h->ring_mask, __ATOMIC_ACQUIRE);
    while (mask) { /* the lowest slot first: from further back, so the last of the chain */
        int i = __builtin_ctz(mask);
        mask &= mask - 1;
        struct green *g = __atomic_load_n(&h->ring[i], __ATOMIC_ACQUIRE);
        if (!g || ((uintptr_t)g & 1) || !ring_take_back(h, i, g))
            continue;
        g->timer.link.next = (struct green_list *)(void *)first;
        first = g;
        if (!last)
            last = g;
        n++;
    }
    if (n)
        green__send(h, to, first, last, n);
    else
        green__hunger(to, 1); /* thieves were quicker: it still asks (if it woke
                               * meanwhile, its next idle poll clears this) */
}

int green__ring_unlink(struct green_hub *h, struct green *g)
{
    uint32_t mask = __atomic_load_n(&h->ring_mask, __ATOMIC_ACQUIRE);
    while (mask) {
        int i = __builtin_ctz(mask);
        mask &= mask - 1;
        struct green *v = __atomic_load_n(&h->ring[i], __ATOMIC_ACQUIRE);
        if (v != g && v != taken(g))
            continue;
        if (v == g && ring_take_back(h, i, g)) {
            green__rq_push_front(h, g);
            return 0;
        }
        /* a thief took it, or is taking it: wait for it (else g->hub may still say h,
         * and the caller would treat a green thread on its way to the thief as its own:
         * a join of it parked the root for a task no longer here, EDEADLK; or it was
         * woken on the wrong hub) */
        thief_wait(h, i, g);
        break;
    }
    return __atomic_load_n(&g->hub, __ATOMIC_ACQUIRE) != h;
}

#if GREEN_TEST_HOOKS
void (*green__steal_pause)(void); /* tests only (sched.h) */
#endif

/* On h's thread (an idle member): take what the other members' rings hold. The CAS on
 * the slot decides between thieves, and between a thief and the ring's hub taking it
 * back; the winner is g's hub from then on: it writes g->hub, then empties the slot (a
 * hub that finds the slot being taken waits for that). */
int green__steal(struct green_hub *h)
{
    int n = green__hubs_n(), got = 0;
    int start = h->num > 0 ? h->num : 1;
    for (int k = 1; k < n; k++) {
        struct green_hub *v = member((start + k - 1) % n + 1);
        if (!v || v == h)
            continue;
        uint32_t mask = __atomic_load_n(&v->ring_mask, __ATOMIC_ACQUIRE);
        while (mask) {
            int i = __builtin_ctz(mask);
            mask &= mask - 1;
            struct green *g = __atomic_load_n(&v->ring[i], __ATOMIC_ACQUIRE);
            if (!g || ((uintptr_t)g & 1) ||
                !__atomic_compare_exchange_n(&v->ring[i], &g, taken(g), 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
                continue;
#if GREEN_TEST_HOOKS
            if (GREEN_UNLIKELY(green__steal_pause != NULL))
                green__steal_pause();
#endif
            __atomic_store_n(&g->hub, h, __ATOMIC_RELEASE);
            __atomic_store_n(&v->ring[i], NULL, __ATOMIC_RELEASE);
            __atomic_and_fetch(&v->ring_mask, ~(1u << i), __ATOMIC_RELEASE);
            green__count(&h->alive, 1);
            green__count(&h->moved_in, 1);
            green__count(&h->stolen, 1);
            if (g->flags & GF_STARTED) /* else g->fn is where the stamp would go */
                green__stamp(h, g);
            green__rq_push(h, g);
            got++;
        }
        if (got)
            break;
    }
    return got;
}

/* ---- calls on green threads of other hubs ---- */

enum { XS_POSTED, XS_ARMED, XS_DONE, XS_ABANDONED };

enum { XK_JOIN, XK_SEND, XK_NOTE, XK_WATCH };

struct xop {
    struct green_remote note;      /* note.g == NULL: sent to g's hub's remote list */
    uint8_t kind;                  /* XK_JOIN */
    uint8_t op, state;
    green__lock_t lock;            /* orders the end: done and woken, or abandoned */
    int arg;
    int ret, err;                  /* the call's outcome */
    struct green *g;               /* whom it is about */
    uint16_t gen;
    struct green *caller;
    struct green_waiter *w;        /* the caller's record: its note wakes the caller */
    void *result;                  /* a join's */
};

/* g, dead or dying, has been joined from another hub, but still stands on its stack:
 * its hub frees it once it is buried (detached); its handle is stale from now on, as
 * after a join on its own hub. */
static void stale_now(struct green *g)
{
    g->flags |= GF_DETACHED;
    __atomic_store_n(&g->gen, (uint16_t)(g->gen + 1), __ATOMIC_RELEASE);
}

/* Under x->lock: the call is over; wake its caller. */
static void xop_finish(struct xop *x, int ret, int err)
{
    x->ret = ret;
    x->err = err;
    x->state = XS_DONE;
    green__waiter_wake(x->w, 0);
    green__unlock(&x->lock);
}

static void xop_join(struct green_hub *h, struct xop *x)
{
    struct green *g = x->g;
    if (g->ext && g->ext->xjoin)
        green__xjoin_stale(g);
    if (green__zombie_keep(g) != 0) {
        xop_finish(x, -1, ESRCH);
        return;
    }
    if ((g->flags & (GF_ROOT | GF_DETACHED)) || (green__joiner(g) && green__joiner(g) != x->caller)) {
        xop_finish(x, -1, EINVAL);
        return;
    }
    if (g->state == GS_DEAD) {
        x->result = g->arg;
        green__count(&h->alive, -1);
        green__block_free(h, g);
        xop_finish(x, 0, 0);
        return;
    }
    struct green_ext *e = green__ext(g);
    if (!e) {
        xop_finish(x, -1, ENOMEM);
        return;
    }
    e->xjoin = x;
    green__set_joiner(g, x->caller); /* someone joins (its identity only for the checks) */
    x->state = XS_ARMED;
    green__unlock(&x->lock);
}

/* A kill, detach or wake sent to g's hub: carried out there, nobody waits for it. */
struct xsend {
    struct green_remote note;      /* note.g == NULL, as an xop's: `kind` tells them apart */
    uint8_t kind;                  /* XK_SEND */
    uint8_t op;
    uint16_t gen;
    int arg;
    struct green *g;
};

static void xsend_run(struct green_hub *h, struct xsend *x)
{
    struct green *g = x->g;
    struct green_hub *gh = __atomic_load_n(&g->hub, __ATOMIC_ACQUIRE);
    if (__atomic_load_n(&g->gen, __ATOMIC_ACQUIRE) != x->gen) {
        free(x); /* gone meanwhile */
        return;
    }
    if (gh != h) { /* it moved on: follow it */
        green__remote_wake(gh, &x->note, 0, 0);
        return;
    }
    if (g->state != GS_FREE) {
        int saved = errno;
        if (x->op == GREEN_XOP_KILL)
            green__kill(h, g);
        else if (x->op == GREEN_XOP_WAKE)
            green__wake(h, g, x->arg);
        else if (g == h->current && g->state == GS_DEAD) { /* dying here: freed once buried */
            if (green__zombie_keep(g) == 0)
                g->flags |= green__joiner(g) ? 0 : GF_DETACHED;
        }
        else
            green__detach(h, g);
        errno = saved;
    }
    free(x);
}

void green__xop_run(struct green_hub *h, struct green_remote *n)
{
    if (((struct xsend *)(void *)n)->kind == XK_SEND) {
        xsend_run(h, (struct xsend *)(void *)n);
        return;
    }
    struct xop *x = (struct xop *)(void *)n;
    green__lock(&x->lock);
    if (x->state == XS_ABANDONED) {
        green__unlock(&x->lock);
        free(x);
        return;
    }
    struct green *g = x->g;
    struct green_hub *gh = __atomic_load_n(&g->hub, __ATOMIC_ACQUIRE);
    if (__atomic_load_n(&g->gen, __ATOMIC_ACQUIRE) != x->gen) {
        xop_finish(x, -1, ESRCH);
        return;
    }
    if (gh != h) { /* it moved on: follow it */
        green__unlock(&x->lock);
        green__remote_wake(gh, &x->note, 0, 0);
        return;
    }
    if (g->state == GS_FREE) {
        xop_finish(x, -1, ESRCH);
        return;
    }
    if (g == h->current && g->state == GS_DEAD) {
        /* it is dying right here (this drain runs in its last pick): its hub frees it
         * once it is buried */
        if (green__zombie_keep(g) != 0) {
            xop_finish(x, -1, ESRCH);
            return;
        }
        if ((g->flags & GF_DETACHED) || (green__joiner(g) && green__joiner(g) != x->caller)) {
            xop_finish(x, -1, EINVAL);
            return;
        }
        x->result = g->arg;
        stale_now(g);
        xop_finish(x, 0, 0);
        return;
    }
    xop_join(h, x);
}

static int is_watch(const void *x);
static void watch_died(struct green *g);
static void watch_stale(struct green *g);

void green__xjoin_done(struct green_hub *h, struct green *g)
{
    (void)h;
    if (is_watch(g->ext->xjoin)) {
        watch_died(g); /* a green_choose of another hub waits for it */
        return;
    }
    struct xop *x = g->ext->xjoin;
    g->ext->xjoin = NULL;
    green__set_joiner(g, NULL);
    green__lock(&x->lock);
    if (x->state == XS_ABANDONED) {
        green__unlock(&x->lock);
        free(x);
        return;
    }
    x->result = g->arg;
    stale_now(g);
    xop_finish(x, 0, 0);
}

void green__xjoin_stale(struct green *g)
{
    if (is_watch(g->ext->xjoin)) {
        watch_stale(g);
        return;
    }
    struct xop *x = g->ext->xjoin;
    green__lock(&x->lock);
    int gone = x->state == XS_ABANDONED;
    green__unlock(&x->lock);
    if (gone) {
        g->ext->xjoin = NULL;
        green__set_joiner(g, NULL);
        free(x);
        green__ext_trim(g);
    }
}

int green__xcall(struct green_hub *h, struct green *g, green_t handle, int op, int arg,
                 int64_t deadline, void **result)
{
    struct green_hub *to = __atomic_load_n(&g->hub, __ATOMIC_ACQUIRE);
    if (green__joiner(g) == GREEN_ZTAKEN) {
        errno = ESRCH; /* joined from a hub already; its own has not freed it yet */
        return -1;
    }
    if (op != GREEN_XOP_JOIN) {
        if (op == GREEN_XOP_KILL && g == to->root) {
            errno = EPERM; /* a hub's root: its first block, never anything else */
            return -1;
        }
        struct xsend *x = calloc(1, sizeof *x);
        if (!x) {
            errno = ENOMEM;
            return -1;
        }
        x->kind = XK_SEND;
        x->op = (uint8_t)op;
        x->arg = arg;
        x->g = g;
        x->gen = (uint16_t)((uintptr_t)handle >> 48);
        green__remote_wake(to, &x->note, 0, 0);
        return 0;
    }
    if (green__wait_reserve(h) != 0)
        return -1;
    struct xop *x = calloc(1, sizeof *x);
    if (!x) {
        errno = ENOMEM;
        return -1;
    }
    struct green_waiter *w = green__waiter_new(h); /* reserved: cannot fail */
    x->kind = XK_JOIN;
    x->op = (uint8_t)op;
    x->g = g;
    x->gen = (uint16_t)((uintptr_t)handle >> 48);
    x->caller = h->current;
    x->w = w;
    green__waiting_on(h, GW_JOIN, g);
    w->seq = h->current->wait_seq + 1; /* the coming park: an answer before it still counts */
    green__remote_wake(to, &x->note, 0, 0); /* not under x->lock: its notify is a syscall */
    int r, err = 0;
    for (;;) {
        r = green__waiter_park(h, w, deadline, 1);
        err = errno;
        green__lock(&x->lock);
        if (x->state == XS_DONE)
            break; /* done wins, however the park ended */
        if (r != 0) { /* gave up: the other side frees x */
            x->state = XS_ABANDONED;
            green__unlock(&x->lock);
            green__waiter_free(h, w);
            errno = err;
            return -1;
        }
        w->seq = h->current->wait_seq + 1;
        green__unlock(&x->lock);
    }
    green__unlock(&x->lock);
    green__waiter_free(h, w);
    r = x->ret;
    err = x->err;
    if (r == 0 && result)
        *result = x->result;
    free(x);
    if (r != 0) {
        errno = err;
        return -1;
    }
    return 0;
}

/* ---- records of the library's own (struct green_xnote) ---- */

_Static_assert(offsetof(struct green_xnote, kind) == offsetof(struct xop, kind) &&
                   offsetof(struct green_xnote, kind) == offsetof(struct xsend, kind),
               "every note without a green thread says its kind at the same place");

void green__xnote_send(struct green_hub *to, struct green_xnote *x,
                       void (*fn)(struct green_hub *, struct green_xnote *))
{
    x->note = (struct green_remote){.g = NULL}; /* not pending: it was run, or is new */
    x->kind = XK_NOTE;
    x->fn = fn;
    green__remote_wake(to, &x->note, 0, 0);
}

/* remote_drain's dispatch of the notes without a green thread: the library's records
 * here, the calls across hubs to green__xop_run. */
void green__xrun(struct green_hub *h, struct green_remote *n)
{
    struct green_xnote *x = (struct green_xnote *)(void *)n;
    if (x->kind == XK_NOTE) {
        x->fn(h, x);
        return;
    }
    green__xop_run(h, n);
}

/* ---- green_choose's join clauses on green threads of other hubs ----
 *
 * A clause GREEN_WAIT_DEAD on g of another hub observes g's end, as a local one does: it
 * is not reaped (the chooser joins it, across hubs). The chooser sends a watch (struct
 * green_xwatch) to g's hub: there it becomes g's joiner — the chooser's identity, in
 * g->joiner, and the watch in g's extension (xjoin, as a remote join's record; XK_WATCH
 * tells them apart) — or fails at once (ESRCH, EINVAL), or finds g dead. g's death on
 * whichever hub fires it: the watch is marked fired and the chooser's entry (its waiter
 * record) woken, under the watch's lock; g stays dead and joinable, without a joiner.
 * The chooser, when its choose collects, takes the lock: fired, the clause is ready (its
 * err the watch's) and the chooser frees the watch; not, it marks it gone and g's hub
 * lets go of it: before the watch was armed there, the arm frees it; once armed, the
 * watch is sent back to g's hub to be dropped (w_drop frees it), and whatever sees it
 * gone first there (g's death, a join or detach of g: green__xjoin_stale) only unhooks
 * it from g. So a watch is freed once: by the chooser (fired), by the arm (gone before
 * it), or by the drop (gone after it).
 */

enum { W_POSTED, W_ARMED, W_FIRED, W_GONE };

struct green_xwatch {
    struct green_xnote note;       /* the arm, and the drop, sent to g's hub */
    green__lock_t lock;
    uint8_t state;
    int err;                       /* fired: 0, or why the clause cannot wait (ESRCH...) */
    green_t handle;
    struct green *caller;          /* the chooser: g's joiner while armed */
    struct green_waiter *w;        /* the chooser's entry: its note wakes the chooser */
};

static int is_watch(const void *x)
{
    return ((const struct green_xwatch *)x)->note.kind == XK_WATCH;
}

/* Under x->lock, on g's hub: the clause is ready; wake the chooser. */
static void watch_fire(struct green_xwatch *x, int err)
{
    x->err = err;
    x->state = W_FIRED;
    green__waiter_wake(x->w, 0);
    green__unlock(&x->lock);
}

/* Take watch x (g's) off g: it is no longer g's joiner. */
static void watch_unhook(struct green *g)
{
    g->ext->xjoin = NULL;
    green__set_joiner(g, NULL);
}

static void watch_died(struct green *g)
{
    struct green_xwatch *x = g->ext->xjoin;
    watch_unhook(g);
    green__lock(&x->lock);
    if (x->state == W_GONE) {
        green__unlock(&x->lock); /* its drop is on its way here and frees it */
        return;
    }
    watch_fire(x, 0);
}

static void watch_stale(struct green *g)
{
    struct green_xwatch *x = g->ext->xjoin;
    green__lock(&x->lock);
    int gone = x->state == W_GONE;
    green__unlock(&x->lock);
    if (gone) {
        watch_unhook(g);
        green__ext_trim(g);
    }
}

/* On g's hub: the chooser let go of an armed watch. */
static void watch_drop(struct green_hub *h, struct green_xnote *n)
{
    struct green_xwatch *x = (struct green_xwatch *)(void *)n;
    struct green_hub *gh;
    int saved = errno;
    struct green *g = green__resolve_any(x->handle, &gh);
    errno = saved;
    if (g && gh != h) { /* it moved on: follow it */
        green__xnote_send(gh, &x->note, watch_drop);
        return;
    }
    if (g && g->state != GS_FREE && g->ext && g->ext->xjoin == x) {
        watch_unhook(g);
        green__ext_trim(g);
    }
    free(x);
}

/* On g's hub: make the watch g's joiner, or fire it at once. */
static void watch_arm(struct green_hub *h, struct green_xnote *n)
{
    struct green_xwatch *x = (struct green_xwatch *)(void *)n;
    green__lock(&x->lock);
    if (x->state == W_GONE) {
        green__unlock(&x->lock);
        free(x);
        return;
    }
    struct green_hub *gh;
    int saved = errno;
    struct green *g = green__resolve_any(x->handle, &gh);
    errno = saved;
    if (!g) {
        watch_fire(x, ESRCH);
        return;
    }
    if (gh != h) { /* it moved on: follow it */
        green__unlock(&x->lock);
        green__xnote_send(gh, &x->note, watch_arm);
        return;
    }
    if (g->state == GS_FREE) {
        watch_fire(x, ESRCH);
        return;
    }
    if (g->ext && g->ext->xjoin)
        green__xjoin_stale(g); /* a joiner or chooser of another hub that gave up */
    struct green *j = green__joiner(g);
    if (j == GREEN_ZTAKEN) { /* joined from a hub already */
        watch_fire(x, ESRCH);
        return;
    }
    if ((uintptr_t)j & 1) { /* dead and open to joiners of any hub: joinable */
        watch_fire(x, 0);
        return;
    }
    if ((g->flags & (GF_ROOT | GF_DETACHED)) || (j && j != x->caller) ||
        (g->ext && g->ext->xjoin)) {
        watch_fire(x, EINVAL); /* green_join's rules */
        return;
    }
    if (g->state == GS_DEAD) { /* dead, or dying right here: joinable */
        watch_fire(x, 0);
        return;
    }
    struct green_ext *e = green__ext(g);
    if (!e) {
        watch_fire(x, ENOMEM);
        return;
    }
    e->xjoin = x;
    green__set_joiner(g, x->caller);
    x->note.kind = XK_WATCH;
    x->state = W_ARMED;
    green__unlock(&x->lock);
}

int green__xwatch_peek(green_t handle)
{
    struct green_hub *gh;
    struct green *g = green__resolve_any(handle, &gh);
    if (!g)
        return -1;
    green_tsan_reads_begin(); /* racing with g's hub: the generation decides below */
    uint8_t state = __atomic_load_n(&g->state, __ATOMIC_ACQUIRE);
    uint8_t flags = __atomic_load_n(&g->flags, __ATOMIC_RELAXED);
    green_tsan_reads_end();
    if (__atomic_load_n(&g->gen, __ATOMIC_ACQUIRE) != (uint16_t)((uintptr_t)handle >> 48) ||
        state == GS_FREE || green__joiner(g) == GREEN_ZTAKEN) {
        errno = ESRCH;
        return -1;
    }
    if (flags & (GF_ROOT | GF_DETACHED)) {
        errno = EINVAL;
        return -1;
    }
    return state == GS_DEAD;
}

struct green_xwatch *green__xwatch_arm(struct green_hub *h, green_t handle, struct green_waiter *w)
{
    struct green_hub *gh;
    struct green *g = green__resolve_any(handle, &gh);
    if (!g)
        return NULL;
    struct green_xwatch *x = calloc(1, sizeof *x);
    if (!x) {
        errno = ENOMEM;
        return NULL;
    }
    x->state = W_POSTED;
    x->handle = handle;
    x->caller = h->current;
    x->w = w;
    green__xnote_send(gh, &x->note, watch_arm);
    return x;
}

int green__xwatch_disarm(struct green_hub *h, struct green_xwatch *x, int *err)
{
    (void)h;
    green__lock(&x->lock);
    if (x->state == W_FIRED) {
        green__unlock(&x->lock);
        *err = x->err;
        free(x);
        return 1;
    }
    int armed = x->state == W_ARMED;
    x->state = W_GONE;
    green__unlock(&x->lock);
    if (armed) { /* g's hub unhooks it and frees it */
        struct green_hub *gh;
        int saved = errno;
        struct green *g = green__resolve_any(x->handle, &gh);
        errno = saved;
        /* a stale handle: g died (its death saw the watch gone) or moved on; the block's
         * last hub is where its fields were last written: the drop goes there and frees x */
        if (!g)
            gh = __atomic_load_n(&((struct green *)((uintptr_t)x->handle & GREEN_PTR_MASK))->hub,
                                 __ATOMIC_ACQUIRE);
        green__xnote_send(gh, &x->note, watch_drop);
    }
    return 0;
}

/* ---- the patch library's calls on another hub's green thread (green_private.h) ---- */

#define ON_HUB_MAX 64

struct on_hub {
    struct green_xnote note;
    green_t handle;
    void (*fn)(green_t g, void *copy);
    _Alignas(16) unsigned char copy[ON_HUB_MAX];
};

static void on_hub_run(struct green_hub *h, struct green_xnote *n)
{
    struct on_hub *r = (struct on_hub *)(void *)n;
    struct green_hub *gh;
    int saved = errno;
    struct green *g = green__resolve_any(r->handle, &gh);
    if (g && gh != h) { /* it moved on: follow it */
        errno = saved;
        green__xnote_send(gh, &r->note, on_hub_run);
        return;
    }
    if (g && g->state != GS_FREE)
        r->fn(r->handle, r->copy);
    errno = saved;
    free(r);
}

int green_private_on_hub(green_t handle, void (*fn)(green_t, void *), const void *data, size_t len)
{
    if (!fn || len > ON_HUB_MAX || (len && !data)) {
        errno = EINVAL;
        return -1;
    }
    struct green_hub *h = green__hub_fast(), *gh;
    if (!h)
        return -1;
    struct green *g = green__resolve_any(handle, &gh);
    if (!g)
        return -1;
    if (gh == h) {
        if (g->state == GS_FREE) {
            errno = ESRCH;
            return -1;
        }
        _Alignas(16) unsigned char copy[ON_HUB_MAX];
        if (len)
            memcpy(copy, data, len);
        fn(handle, copy);
        return 0;
    }
    struct on_hub *r = malloc(sizeof *r);
    if (!r) {
        errno = ENOMEM;
        return -1;
    }
    r->handle = handle;
    r->fn = fn;
    if (len)
        memcpy(r->copy, data, len);
    green__xnote_send(gh, &r->note, on_hub_run);
    return 0;
}
