/*
 * choose.c — green_choose (layer 6): waiting on several things at once, as Go's select
 * and gevent.wait/gevent.select do: channel operations, events, futures, the end of a
 * green thread, an fd's readiness, signals. A blocked green_chan_send or _recv is a
 * choose of one clause.
 *
 * Two kinds of clause. Channel operations and signals *take* something (an element, a
 * place in the buffer, a delivery), and at most one clause may: the waker that would
 * complete one first claims the select's lead record (the claim word of wait.h), and
 * only the claimer completes it. The others (events, futures, green threads' ends, fds)
 * only *observe* a state that stays as it is: their wakers just wake the chooser, which
 * looks after its park at what is ready. The end of a green thread of another hub is
 * observed through a watch that hub keeps for us (hubs.c): it makes us the green
 * thread's joiner there, and its end wakes our entry from there. A claimed clause wins; otherwise one of the
 * observed ones, chosen uniformly at random, as among the clauses ready when the call
 * starts.
 *
 * One call goes round these steps:
 *  1. look: the observed objects' state (an fd's with poll(2)), then, with every channel
 *     locked (in address order, so that two selects never deadlock), what is ready;
 *     complete one of those at random. With deadline 0 and no signal clause, that is all;
 *  2. arm: queue an entry on each channel (still locked), event and future; become the
 *     joiner of each green thread (of another hub: send it a watch), the waiter of each
 *     fd, a waiter for each signal. What
 *     arming finds ready (an event already set, a pending signal) makes the park below
 *     end at once;
 *  3. park, once, on the one wait mechanism: every waker wakes that one park;
 *  4. collect: serve the signals that arrived, withdraw the lead (or learn who claimed
 *     it), disarm everything, and see what is ready. Nothing (a stray wake-up): again.
 *
 * Invariants:
 *  - entries are waiter records (never on the chooser's stack, which may move while it
 *    is parked), allocated once per call and reused across rounds; the lead is the first
 *    channel clause's entry, or a record of its own when there is none. Observed
 *    objects mark their entries `done` (sync.c's hand-over), so no entry of theirs is a lead;
 *  - a clause completes at most once, and only the completed clause's out fields are
 *    written. An operation that was completed for us counts even if the deadline passed
 *    or the chooser was killed before it ran again ("done wins");
 *  - when the call returns, nothing of it is queued, armed or watched any more.
 */
#include "chan.h"

#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

/* The kinds of clause, as bits (a call remembers which it has). */
enum { K_CHAN = 1, K_EVENT = 2, K_FUTURE = 4, K_DEAD = 8, K_FD = 16, K_SIGNAL = 32,
       K_XDEAD = 64 /* GREEN_WAIT_DEAD on a green thread of another hub */ };
#define K_ENTRY (K_CHAN | K_EVENT | K_FUTURE | K_XDEAD)  /* those that queue an entry of ours */
#define K_SHARED (K_CHAN | K_EVENT | K_FUTURE | K_XDEAD) /* those another OS thread may complete */

static unsigned kind_of(int op)
{
    switch (op) {
    case GREEN_CHAN_SEND:
    case GREEN_CHAN_RECV:
        return K_CHAN;
    case GREEN_WAIT_EVENT:
        return K_EVENT;
    case GREEN_WAIT_FUTURE:
        return K_FUTURE;
    case GREEN_WAIT_DEAD:
        return K_DEAD;
    case GREEN_WAIT_FD:
        return K_FD;
    case GREEN_WAIT_SIGNAL:
        return K_SIGNAL;
    default:
        return 0;
    }
}

/* ---- choosing at random ---- */

static __thread uint64_t rng;

/* Uniform in [0, k): xorshift64, reduced by multiplication (no modulo bias worth
 * the name for the k a select has). */
static unsigned rand_below(unsigned k)
{
    uint64_t x = rng;
    if (!x)
        x = ((uint64_t)(uintptr_t)&rng ^ ((uint64_t)green_now() * 0x9e3779b97f4a7c15ull)) | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng = x;
    return (unsigned)(((x >> 32) * k) >> 32);
}

/* ---- one call ---- */

/* What the call keeps per clause. */
struct pick {
    struct green_waiter *e;     /* its entry (K_ENTRY), or its signal record while armed */
    union {
        struct green *g;        /* GREEN_WAIT_DEAD: the green thread */
        struct green_xwatch *x; /* GREEN_WAIT_DEAD on another hub: our watch, while armed */
        size_t size;            /* channels: the element size, read once (a served waiter
                                 * must not read the channel again) */
    };
    uint32_t epoch;             /* fds: the fd's epoch when armed */
    uint8_t kind;
    uint8_t armed;              /* its object knows about us */
    uint8_t ready;              /* observed ready, or failed (res < 0) */
    int res;                    /* fds: the events ready; any kind: -errno of a failure */
};

/* The call. Its arrays are the caller's, on its stack, for small selects (what stays on a
 * parked green thread's stack is what a shared-stack one costs asleep: a blocked send
 * or receive keeps one clause's worth), or one heap block. */
struct choose {
    green_clause_t *cl;
    int n;
    unsigned kinds;             /* K_* of its clauses */
    int nch;                    /* distinct channels, in lock order */
    green_chan_t **chans;
    struct pick *p;
    int *ready;                 /* scratch: clauses ready */
    struct green_hub *h;        /* made when needed (a wait, a green thread's handle) */
    struct green_waiter *lead;  /* the claim word; NULL until the entries exist */
    struct green_waiter *own_lead; /* the lead when no channel clause gives one */
    void *heap;                 /* the arrays, when allocated */
};

#define CHOOSE_INLINE 4
struct choose_arrays {
    green_chan_t *chans[CHOOSE_INLINE];
    struct pick p[CHOOSE_INLINE];
    int ready[CHOOSE_INLINE];
};

static struct green_hub *hub(struct choose *s)
{
    if (!s->h)
        s->h = green__loop();
    return s->h;
}

static int einval(void)
{
    errno = EINVAL;
    return -1;
}

/* Check clause i and fill in its pick. 0, or -1 + errno. */
static int clause_init(struct choose *s, int i)
{
    const green_clause_t *c = &s->cl[i];
    struct pick *p = &s->p[i];
    *p = (struct pick){.kind = (uint8_t)kind_of(c->op)};
    s->kinds |= p->kind;
    switch (p->kind) {
    case K_CHAN:
        if (!c->ch || !c->elem)
            return einval();
        p->size = c->ch->elem_size;
        return 0;
    case K_EVENT:
        return c->event ? 0 : einval();
    case K_FUTURE:
        return c->future ? 0 : einval();
    case K_DEAD:
        if (!hub(s))
            return -1;
        if (green__join_check(s->h, c->g, &p->g) == 0)
            return 0;
        if (errno != EXDEV)
            return -1;
        /* a green thread of another hub: watched there (hubs.c), its end observed here */
        p->kind = K_XDEAD;
        s->kinds |= K_XDEAD;
        return green__xwatch_peek(c->g) < 0 ? -1 : 0;
    case K_FD:
        if (c->fd < 0) {
            errno = EBADF;
            return -1;
        }
        return c->events && !(c->events & ~(GREEN_READ | GREEN_WRITE)) ? 0 : einval();
    case K_SIGNAL:
        return green__signal_valid(c->signo) ? 0 : einval();
    default:
        return einval();
    }
}

/* The distinct channels, in address order: the order every select locks them in. */
static void chans_sort(struct choose *s)
{
    int m = 0;
    for (int i = 0; i < s->n; i++) {
        if (s->p[i].kind != K_CHAN)
            continue;
        green_chan_t *ch = s->cl[i].ch;
        int j = m;
        while (j > 0 && (uintptr_t)s->chans[j - 1] > (uintptr_t)ch)
            j--;
        if (j > 0 && s->chans[j - 1] == ch)
            continue;
        if (j < m)
            memmove(&s->chans[j + 1], &s->chans[j], (size_t)(m - j) * sizeof *s->chans);
        s->chans[j] = ch;
        m++;
    }
    s->nch = m;
}

/* Everything but the arrays, field by field (nothing else needs zeroing). */
static inline void choose_start(struct choose *s, green_clause_t *cl, int n, unsigned kinds)
{
    s->cl = cl;
    s->n = n;
    s->kinds = kinds;
    s->h = NULL;
    s->lead = s->own_lead = NULL;
    s->heap = NULL;
}

static int choose_init(struct choose *s, struct choose_arrays *in, green_clause_t *cl, int n)
{
    choose_start(s, cl, n, 0);
    if (n <= CHOOSE_INLINE) {
        s->chans = in->chans;
        s->p = in->p;
        s->ready = in->ready;
    } else {
        /* one block; the int array last keeps the others aligned */
        size_t un = (size_t)n;
        char *m = s->heap = malloc(un * (sizeof *s->chans + sizeof *s->p + sizeof *s->ready));
        if (!m) {
            errno = ENOMEM;
            return -1;
        }
        s->chans = (green_chan_t **)(void *)m;
        s->p = (struct pick *)(void *)(s->chans + un);
        s->ready = (int *)(void *)(s->p + un);
    }
    for (int i = 0; i < n; i++) {
        if (clause_init(s, i) != 0) {
            free(s->heap);
            return -1;
        }
    }
    chans_sort(s);
    return 0;
}

static inline __attribute__((always_inline)) void lock_all(struct choose *s)
{
    for (int i = 0; i < s->nch; i++)
        green__lock(&s->chans[i]->lock);
}

static inline __attribute__((always_inline)) void unlock_all(struct choose *s)
{
    for (int i = s->nch; i-- > 0;)
        green__unlock(&s->chans[i]->lock);
}

/* ---- entries ---- */

static inline void entries_free(struct choose *s)
{
    for (int i = 0; i < s->n; i++) {
        struct pick *p = &s->p[i];
        if (!(p->kind & K_ENTRY) || !p->e)
            continue;
        if (p->kind == K_CHAN)
            green__chan_slot_free(p->e, p->size);
        green__waiter_free(s->h, p->e);
        p->e = NULL;
    }
    if (s->own_lead)
        green__waiter_free(s->h, s->own_lead);
    s->own_lead = s->lead = NULL;
}

/* An entry for every clause that queues one, and the lead. 0, or -1 + errno. Outside
 * the channels' locks: they may allocate. */
static inline __attribute__((always_inline)) int entries_new(struct choose *s)
{
    if (!hub(s))
        return -1;
    struct green_waiter *lead = NULL;
    for (int i = 0; i < s->n; i++) {
        struct pick *p = &s->p[i];
        if (!(p->kind & K_ENTRY))
            continue;
        struct green_waiter *e = green__waiter_new(s->h);
        if (e && p->kind == K_CHAN && green__chan_slot_alloc(e, p->size) != 0) {
            green__waiter_free(s->h, e);
            e = NULL;
        }
        if (!e) {
            entries_free(s);
            errno = ENOMEM;
            return -1;
        }
        e->index = (int16_t)i;
        p->e = e;
        if (!lead && p->kind == K_CHAN)
            lead = e;
    }
    if (!lead && !(lead = s->own_lead = green__waiter_new(s->h))) {
        entries_free(s);
        errno = ENOMEM;
        return -1;
    }
    for (int i = 0; i < s->n; i++)
        if (s->p[i].kind == K_CHAN && s->p[i].e->aux != (uintptr_t)lead)
            s->p[i].e->aux = (uintptr_t)lead; /* mostly as it was: its line stays shared */
    s->lead = lead;
    return 0;
}

/* Ready the entries and the lead for another park (after one that ended with nothing). */
static void entries_rearm(struct choose *s)
{
    uint32_t seq = s->h->current->wait_seq + 1;
    for (int i = 0; i < s->n; i++) {
        struct green_waiter *e = s->p[i].e;
        if ((s->p[i].kind & K_ENTRY)) {
            e->seq = seq;
            e->done = 0;
        }
    }
    s->lead->seq = seq;
    __atomic_store_n(&s->lead->done, GREEN_SELECT_PENDING, __ATOMIC_RELAXED);
}

/* ---- 1. looking ---- */

/* fd's readiness now, without waiting. */
static void poll_now(const green_clause_t *c, struct pick *p)
{
    struct pollfd pfd = {.fd = c->fd, .events = (short)(((c->events & GREEN_READ) ? POLLIN : 0) |
                                                        ((c->events & GREEN_WRITE) ? POLLOUT : 0))};
    if (green__sys.poll(&pfd, 1, 0) != 1)
        return;
    if (pfd.revents & POLLNVAL) {
        p->res = -EBADF;
    } else {
        /* as the pollers report it: an error or hang-up makes both directions ready */
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
            p->res |= GREEN_READ;
        if (pfd.revents & (POLLOUT | POLLHUP | POLLERR))
            p->res |= GREEN_WRITE;
        p->res &= c->events;
    }
    p->ready = p->res != 0;
}

/* The observed clauses' state now (channels unlocked: poll(2) is a system call). */
static void observe(struct choose *s)
{
    for (int i = 0; i < s->n; i++) {
        const green_clause_t *c = &s->cl[i];
        struct pick *p = &s->p[i];
        p->ready = 0;
        p->res = 0;
        switch (p->kind) {
        case K_EVENT:
            p->ready = green_event_is_set(c->event) == 1;
            break;
        case K_FUTURE:
            p->ready = green_future_ready(c->future) == 1;
            break;
        case K_DEAD:
            p->ready = p->g->state == GS_DEAD;
            break;
        case K_XDEAD: {
            int r = green__xwatch_peek(c->g);
            p->res = r < 0 ? -errno : 0;
            p->ready = r != 0;
            break;
        }
        case K_FD:
            poll_now(c, p);
            break;
        }
    }
}

/* With every channel locked: complete one clause that can, chosen uniformly at random
 * among them. Its index, or -1 when none can now. */
static inline __attribute__((always_inline)) int fire_ready(struct choose *s)
{
    int k = 0;
    for (int i = 0; i < s->n; i++)
        if (s->p[i].kind == K_CHAN ? green__chan_maybe(&s->cl[i]) : s->p[i].ready)
            s->ready[k++] = i;
    while (k > 0) {
        int j = k == 1 ? 0 : (int)rand_below((unsigned)k);
        int i = s->ready[j];
        if (s->p[i].kind != K_CHAN || green__chan_now(&s->cl[i]))
            return i;
        s->ready[j] = s->ready[--k];
    }
    return -1;
}

/* The out fields of clause i, which completes by observation (or a failure). */
static void finish(struct choose *s, int i)
{
    green_clause_t *c = &s->cl[i];
    const struct pick *p = &s->p[i];
    switch (p->kind) {
    case K_CHAN:
        return; /* done by the operation */
    case K_FUTURE:
        c->value = NULL;
        c->err = green_future_get(c->future, &c->value, 0) == 0 ? 0 : errno;
        return;
    case K_FD:
        c->revents = p->res > 0 ? p->res : 0;
        c->err = p->res < 0 ? -p->res : 0;
        return;
    default:
        c->err = p->res < 0 ? -p->res : 0;
    }
}

/* ---- 2. arming, 4. collecting ---- */

/* With every channel locked: queue the channel clauses' entries. */
static inline __attribute__((always_inline)) void enqueue_all(struct choose *s)
{
    for (int i = 0; i < s->n; i++)
        if (s->p[i].kind == K_CHAN)
            green__chan_enqueue(&s->cl[i], s->p[i].e);
}

/* Make every other object wake our next park. 1 when something is ready already. */
static int arm(struct choose *s)
{
    int now = 0;
    for (int i = 0; i < s->n; i++) {
        const green_clause_t *c = &s->cl[i];
        struct pick *p = &s->p[i];
        int r = 0;
        switch (p->kind) {
        case K_EVENT:
            r = green__event_arm(c->event, p->e);
            break;
        case K_FUTURE:
            r = green__future_arm(c->future, p->e);
            break;
        case K_DEAD:
            r = green__join_arm(s->h, p->g);
            break;
        case K_XDEAD:
            r = (p->x = green__xwatch_arm(s->h, c->g, p->e)) ? 0 : -1;
            break;
        case K_FD:
            r = green__fd_arm(s->h, c->fd, c->events, &p->epoch) == 0 ? 0 : -1;
            break;
        case K_SIGNAL:
            r = green__signal_arm(s->h, c->signo, s->lead, i, &p->e) == 0 ? 0 : -1;
            break;
        default:
            continue; /* channels: queued under their locks */
        }
        if (r < 0)
            p->res = -errno; /* the clause completes with that error */
        p->ready = r != 0;
        p->armed = r == 0;
        now |= p->ready;
    }
    /* a pending signal may have claimed the lead */
    return now || __atomic_load_n(&s->lead->done, __ATOMIC_ACQUIRE) != GREEN_SELECT_PENDING;
}

/* Take clause i back from its object (`won`: the claimer has already unlinked it). */
static inline __attribute__((always_inline)) void disarm(struct choose *s, int i, int won)
{
    green_clause_t *c = &s->cl[i];
    struct pick *p = &s->p[i];
    if (p->kind == K_CHAN) {
        if (!won)
            green__chan_unqueue(c, p->e);
        return;
    }
    if (!p->armed)
        return;
    p->armed = 0;
    switch (p->kind) {
    case K_EVENT:
        p->ready |= green__event_disarm(c->event, p->e);
        break;
    case K_FUTURE:
        p->ready |= green__future_disarm(c->future, p->e);
        break;
    case K_DEAD:
        green__join_disarm(s->h, p->g);
        p->ready = p->g->state == GS_DEAD;
        break;
    case K_XDEAD: {
        int err = 0;
        p->ready = green__xwatch_disarm(s->h, p->x, &err);
        p->x = NULL;
        p->res = err ? -err : 0;
        break;
    }
    case K_FD: {
        int r = green__fd_disarm(s->h, c->fd, c->events, p->epoch);
        p->res = r >= 0 ? r : -errno;
        p->ready = r != 0;
        break;
    }
    case K_SIGNAL:
        green__signal_disarm(s->h, p->e);
        p->e = NULL;
        break;
    }
}

/* The claimer publishes right after waking us: if we run first (woken by our timer, or
 * on another core), the wait is a few instructions of its. */
static uint8_t settled(struct green_waiter *lead)
{
    uint8_t how;
    for (int spins = 0;
         (how = __atomic_load_n(&lead->done, __ATOMIC_ACQUIRE)) == GREEN_SELECT_CLAIMING; spins++) {
        if (spins > 64)
            green__sys.sched_yield();
        else
            green_cpu_relax();
    }
    return how;
}

/* After the park, whatever ended it: the clause that completed (its out fields set), or
 * -1 if none did. Everything is disarmed. (`kinds`: see choose.) */
static inline __attribute__((always_inline)) int collect(struct choose *s, unsigned kinds)
{
    if (kinds & K_SIGNAL)
        green__signal_drain(s->h); /* a signal that woke us serves its clause first */
    struct green_waiter *lead = s->lead;
    /* looked at first: a claimed lead (the usual end) costs no locked instruction, whose
     * line a waker of another core may hold */
    uint8_t how = __atomic_load_n(&lead->done, __ATOMIC_ACQUIRE);
    int win = -1;
    if (how != GREEN_SELECT_PENDING ||
        !__atomic_compare_exchange_n(&lead->done, &how, GREEN_SELECT_WITHDRAWN, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        how = settled(lead);
        win = lead->index;
    }
    int k = 0;
    for (int i = 0; i < s->n; i++) {
        disarm(s, i, i == win);
        if (s->p[i].ready) /* never a channel clause */
            s->ready[k++] = i;
    }
    if (win >= 0) {
        green_clause_t *c = &s->cl[win];
        const struct pick *p = &s->p[win];
        c->err = how == GREEN_SELECT_CLOSED ? EPIPE : 0;
        if (p->kind == K_CHAN && how == GREEN_SELECT_DONE && c->op == GREEN_CHAN_RECV)
            memcpy(c->elem, green__chan_slot(p->e, p->size), p->size);
        return win;
    }
    if (k == 0)
        return -1;
    win = s->ready[k == 1 ? 0 : (int)rand_below((unsigned)k)];
    finish(s, win);
    return win;
}

/* ---- 3. parking ---- */

static int not_now(void)
{
    struct green_hub *h = green__tls_hub;
    errno = h && (h->current->flags & GF_CANCELLED) ? ECANCELED : ETIMEDOUT;
    return -1;
}

/* Park once for everything armed; `now`: something is ready, do not wait (the park still
 * counts, so that a wake-up sent for it can never match a later one). */
static inline __attribute__((always_inline)) int park(struct choose *s, int now, int64_t deadline,
                                                      unsigned kinds)
{
    struct green_hub *h = s->h;
    if (kinds == K_CHAN && s->n == 1)
        green__waiting_on(h, GW_CHAN, s->cl[0].ch);
    else
        green__waiting_on(h, GW_CHOOSE, (void *)(intptr_t)s->n);
    int external = (kinds & K_XDEAD) ||
                   ((kinds & K_SHARED) && green__park_mode_shared() == GREEN_PARK_EXTERNAL);
    return green__waiter_park(h, s->lead, now ? 0 : deadline, external);
}

/* The call's rounds. `kinds` is s->kinds, passed apart so that the one-channel wait of a
 * send or receive (a constant K_CHAN) compiles without the steps it never needs. */
static inline __attribute__((always_inline)) int choose(struct choose *s, int64_t deadline,
                                                        unsigned kinds)
{
    for (;;) {
        if (kinds != K_CHAN)
            observe(s);
        lock_all(s);
        int r = fire_ready(s);
        if (r >= 0) {
            unlock_all(s);
            finish(s, r);
            return r;
        }
        if (deadline == 0 && !(kinds & K_SIGNAL)) {
            unlock_all(s); /* signals are seen only once armed */
            return not_now();
        }
        if (!s->lead) {
            unlock_all(s);
            if (entries_new(s) != 0)
                return -1;
            continue; /* look again, now able to wait */
        }
        enqueue_all(s);
        unlock_all(s);
        int now = kinds != K_CHAN && arm(s);
        int p = park(s, now, deadline, kinds);
        int err = errno;
        r = collect(s, kinds);
        if (r >= 0)
            return r; /* completed, even if killed or timed out meanwhile: keep it */
        /* EINTR: our signal reading was served by another's; EBADF: an fd of ours was
         * closed (its clause says so): look again. A stray green_wake: wait on. */
        if (p != 0 && err != EINTR && err != EBADF) {
            errno = err;
            return -1;
        }
        entries_rearm(s); /* new ones are ready as they are */
    }
}

/* The call's outcome, once everything is let go of. */
static int choose_end(struct choose *s, int r)
{
    int err = errno;
    if (s->lead)
        entries_free(s);
    if (s->heap)
        free(s->heap);
    errno = err;
    return r;
}

int green_choose(green_clause_t *clauses, int n, int64_t deadline)
{
    if (!clauses || n <= 0 || n > INT16_MAX) {
        errno = EINVAL;
        return -1;
    }
    struct choose s;
    struct choose_arrays in;
    if (choose_init(&s, &in, clauses, n) != 0)
        return -1;
    return choose_end(&s, choose(&s, deadline, s.kinds));
}

/* A send or receive that could not complete at once (checked by chan.c): the one
 * clause needs no checking nor sorting. */
int green__chan_wait(green_clause_t *c, int64_t deadline)
{
    struct choose s;
    green_chan_t *ch = c->ch;
    struct pick p = {.kind = K_CHAN, .size = ch->elem_size};
    int ready;
    choose_start(&s, c, 1, K_CHAN);
    s.chans = &ch;
    s.nch = 1;
    s.p = &p;
    s.ready = &ready;
    /* the caller has just found that c cannot complete: the entry first, then one look
     * under the lock that queues it (rather than a look, the entry, another look) */
    if (deadline != 0 && entries_new(&s) != 0)
        return -1;
    return choose_end(&s, choose(&s, deadline, K_CHAN));
}
