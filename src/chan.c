/*
 * chan.c — channels and green_choose (layer 6): gevent's Queue/Channel, Go's chan.
 *
 * A channel is a ring buffer of `cap` elements and two FIFO queues of waiting
 * operations (senders, receivers), all under one green__lock, so that every call works
 * from any OS thread: a green thread of another hub, or a plain pthread (which gets a
 * hub of its own, lazily, the first time it has to wait: its root parks and its poller
 * sleeps until a wake-up note arrives).
 *
 * A blocked operation queues an entry: a waiter record of wait.c, never memory on the
 * waiting green thread's stack (a shared-stack green thread's stack moves while it is
 * parked). A waiting sender's element is copied into its entry; a waker delivers into a
 * waiting receiver's entry; the waiter copies between its entry and the caller's buffer
 * once it runs again. Elements up to a pointer's size live in the entry itself.
 *
 * green_choose queues one entry per clause; all of them point (aux) at the first one,
 * the lead, whose `done` byte is the claim word. A waker completes an operation only
 * after moving that byte from PENDING to CLAIMING; entries whose lead is no longer
 * PENDING are stale and wakers step over them. The waiter itself withdraws by moving it
 * to WITHDRAWN. So exactly one clause completes, whoever runs where.
 *
 * Invariants (each channel's under its lock):
 *  - an entry leaves a queue only by the waker that claimed it or by its owner. A served
 *    waiter therefore never touches the channel that served it again (the other side
 *    may free the channel as soon as its own call returned), and a channel with any
 *    entry queued, stale or not, is busy;
 *  - a live receiver waits only while the buffer is empty and no live sender waits; a
 *    live sender waits only while the buffer is full (or there is none) and no live
 *    receiver waits;
 *  - a claimer finishes its work on an entry (copy, wake-up) before it publishes DONE
 *    or CLOSED: only then may the owner free its records, and only then may the owner
 *    return (so a plain pthread's hub outlives the note sent to it).
 *
 * Deadlock detection: wait.c's rule for objects other OS threads may reach
 * (green__park_mode_shared): EDEADLK for a root nothing else can serve, until the
 * process has started a second thread.
 *
 * Outcomes: an operation that completed counts, even if its green thread was killed
 * or timed out before it ran again (the element is kept, never lost or sent twice).
 * A killed caller still completes what needs no wait (like green_join of a dead green
 * thread); when it would have to wait, it gets ECANCELED.
 */
#include "lib.h"

#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

struct green_chan {
    green__lock_t lock;
    int closed;
    size_t elem_size;
    size_t cap;
    size_t head;            /* ring index of the oldest buffered element */
    size_t count;           /* elements buffered */
    green_waitq_t sendq;    /* waiting senders' entries, FIFO */
    green_waitq_t recvq;    /* waiting receivers' entries, FIFO */
    char buf[];             /* cap * elem_size bytes */
};

/* The lead's `done` byte. */
enum { W_PENDING = 0, W_CLAIMING, W_DONE, W_CLOSED, W_WITHDRAWN };

/* ---- the ring buffer ---- */

static inline char *ring_at(struct green_chan *ch, size_t i)
{
    size_t k = ch->head + i;
    if (k >= ch->cap)
        k -= ch->cap;
    return ch->buf + k * ch->elem_size;
}

static void ring_push(struct green_chan *ch, const void *elem)
{
    memcpy(ring_at(ch, ch->count), elem, ch->elem_size);
    ch->count++;
}

static void ring_pop(struct green_chan *ch, void *out)
{
    memcpy(out, ring_at(ch, 0), ch->elem_size);
    if (++ch->head == ch->cap)
        ch->head = 0;
    ch->count--;
}

/* ---- entries ---- */

static inline void *entry_slot(struct green_waiter *e, size_t size)
{
    return size <= sizeof e->data ? (void *)&e->data : e->data;
}

static inline struct green_waiter *lead_of(const struct green_waiter *e)
{
    return (struct green_waiter *)e->aux;
}

/* The first live entry of q, claimed and unlinked; NULL if there is none. */
static struct green_waiter *claim(green_waitq_t *q)
{
    for (struct green_waiter *e = q->head; e; e = e->next) {
        uint8_t pending = W_PENDING;
        if (__atomic_compare_exchange_n(&lead_of(e)->done, &pending, W_CLAIMING, 0,
                                        __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
            green__waitq_remove(q, e);
            return e;
        }
    }
    return NULL;
}

/* A claimed operation is complete: say which clause and how, wake its owner, and only
 * then publish (the owner may free the records as soon as it sees it). */
static void settle(struct green_waiter *e, uint8_t how)
{
    struct green_waiter *lead = lead_of(e);
    lead->index = e->index;
    green__waiter_wake(e, 0);
    __atomic_store_n(&lead->done, how, __ATOMIC_RELEASE);
}

/* ---- operations that complete now (the channel's lock held) ---- */

/* 1 when the send completed (err: 0 or EPIPE), 0 when it would have to wait. */
static int send_now(struct green_chan *ch, const void *elem, int *err)
{
    if (ch->closed) {
        *err = EPIPE;
        return 1;
    }
    struct green_waiter *r = ch->recvq.head ? claim(&ch->recvq) : NULL;
    if (r) {
        memcpy(entry_slot(r, ch->elem_size), elem, ch->elem_size);
        settle(r, W_DONE);
    } else if (ch->count < ch->cap) {
        ring_push(ch, elem);
    } else {
        return 0;
    }
    *err = 0;
    return 1;
}

/* 1 when the receive completed (err: 0 or EPIPE), 0 when it would have to wait.
 * Buffered elements go first, even after close; a waiting sender then refills. */
static int recv_now(struct green_chan *ch, void *out, int *err)
{
    struct green_waiter *s = ch->sendq.head ? claim(&ch->sendq) : NULL;
    if (ch->count > 0) {
        ring_pop(ch, out);
        if (s)
            ring_push(ch, entry_slot(s, ch->elem_size));
    } else if (s) {
        memcpy(out, entry_slot(s, ch->elem_size), ch->elem_size);
    } else if (ch->closed) {
        *err = EPIPE;
        return 1;
    } else {
        return 0;
    }
    if (s)
        settle(s, W_DONE);
    *err = 0;
    return 1;
}

static int clause_now(green_clause_t *c)
{
    if (c->op == GREEN_CHAN_SEND)
        return send_now(c->ch, c->elem, &c->err);
    return recv_now(c->ch, c->elem, &c->err);
}

/* Cheap test: might the clause complete now? (Stale entries may make it a no.) */
static int clause_maybe(const green_clause_t *c)
{
    const struct green_chan *ch = c->ch;
    if (ch->closed)
        return 1;
    if (c->op == GREEN_CHAN_SEND)
        return ch->recvq.head || ch->count < ch->cap;
    return ch->count > 0 || ch->sendq.head;
}

static inline green_waitq_t *clause_queue(const green_clause_t *c)
{
    return c->op == GREEN_CHAN_SEND ? &c->ch->sendq : &c->ch->recvq;
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

/* ---- the select machinery (green_choose; send and recv are one-clause selects) ---- */

/* What one green_choose call works with. Small selects keep it on the stack. */
#define CHOOSE_INLINE 4
struct choose {
    green_clause_t *cl;
    int n;
    int nch;                        /* distinct channels, in lock order */
    struct green_chan **chans;
    struct green_waiter **ent;      /* one entry per clause; ent[0] is the lead */
    size_t *size;                   /* each clause's element size: once served, a waiter
                                     * must not read the channel again */
    int *ready;
    struct green_hub *h;            /* set once it has to wait */
    struct green_chan *chans_in[CHOOSE_INLINE];
    struct green_waiter *ent_in[CHOOSE_INLINE];
    size_t size_in[CHOOSE_INLINE];
    int ready_in[CHOOSE_INLINE];
};

/* Lock every channel once, in address order, so that two selects never deadlock. */
static void lock_all(struct choose *s)
{
    for (int i = 0; i < s->nch; i++)
        green__lock(&s->chans[i]->lock);
}

static void unlock_all(struct choose *s)
{
    for (int i = s->nch; i-- > 0;)
        green__unlock(&s->chans[i]->lock);
}

static int choose_init(struct choose *s, green_clause_t *cl, int n)
{
    s->cl = cl;
    s->n = n;
    s->h = NULL;
    if (n <= CHOOSE_INLINE) {
        s->chans = s->chans_in;
        s->ent = s->ent_in;
        s->size = s->size_in;
        s->ready = s->ready_in;
    } else {
        /* one block; the int array last keeps the others aligned */
        size_t un = (size_t)n;
        char *p = malloc(un * (sizeof *s->chans + sizeof *s->ent + sizeof *s->size +
                               sizeof *s->ready));
        if (!p) {
            errno = ENOMEM;
            return -1;
        }
        s->chans = (struct green_chan **)(void *)p;
        s->ent = (struct green_waiter **)(void *)(s->chans + un);
        s->size = (size_t *)(void *)(s->ent + un);
        s->ready = (int *)(void *)(s->size + un);
    }
    s->ent[0] = NULL;
    for (int i = 0; i < n; i++)
        s->size[i] = cl[i].ch->elem_size;
    /* insertion sort: selects are small */
    int m = 0;
    for (int i = 0; i < n; i++) {
        struct green_chan *ch = cl[i].ch;
        int j = m;
        while (j > 0 && (uintptr_t)s->chans[j - 1] > (uintptr_t)ch)
            j--;
        if (j > 0 && s->chans[j - 1] == ch)
            continue;
        memmove(&s->chans[j + 1], &s->chans[j], (size_t)(m - j) * sizeof *s->chans);
        s->chans[j] = ch;
        m++;
    }
    s->nch = m;
    return 0;
}

/* Free the first n entries (none is queued any more). */
static void entries_free(struct choose *s, int n)
{
    for (int i = 0; i < n; i++) {
        if (s->size[i] > sizeof s->ent[i]->data)
            free(s->ent[i]->data);
        green__waiter_free(s->h, s->ent[i]);
    }
    s->ent[0] = NULL;
}

static void choose_release(struct choose *s)
{
    if (s->ent[0])
        entries_free(s, s->n);
    if (s->chans != s->chans_in)
        free(s->chans);
}

/* With every channel locked: complete one clause that can, chosen uniformly at random
 * among them. Its index, or -1 when none can complete now. */
static int fire_ready(struct choose *s)
{
    int k = 0;
    for (int i = 0; i < s->n; i++)
        if (clause_maybe(&s->cl[i]))
            s->ready[k++] = i;
    while (k > 0) {
        int j = k == 1 ? 0 : (int)rand_below((unsigned)k);
        int i = s->ready[j];
        if (clause_now(&s->cl[i]))
            return i;
        s->ready[j] = s->ready[--k];
    }
    return -1;
}

/* Entries for every clause, outside the channels' locks (they may allocate). */
static int entries_new(struct choose *s)
{
    struct green_hub *h = green__loop();
    if (!h)
        return -1;
    s->h = h;
    for (int i = 0; i < s->n; i++) {
        struct green_waiter *e = green__waiter_new(h);
        size_t size = s->size[i];
        if (e && size > sizeof e->data && !(e->data = malloc(size))) {
            green__waiter_free(h, e);
            e = NULL;
            errno = ENOMEM;
        }
        if (!e) {
            entries_free(s, i);
            return -1;
        }
        e->index = (int16_t)i;
        s->ent[i] = e;
    }
    for (int i = 0; i < s->n; i++)
        s->ent[i]->aux = (uintptr_t)s->ent[0];
    return 0;
}

/* With every channel locked: queue every clause's entry. */
static void enqueue_all(struct choose *s)
{
    for (int i = 0; i < s->n; i++) {
        green_clause_t *c = &s->cl[i];
        struct green_waiter *e = s->ent[i];
        if (c->op == GREEN_CHAN_SEND)
            memcpy(entry_slot(e, s->size[i]), c->elem, s->size[i]);
        green__waitq_push(clause_queue(c), e);
    }
}

static void unqueue(struct choose *s, int i)
{
    struct green_chan *ch = s->cl[i].ch;
    green__lock(&ch->lock);
    green__waitq_remove(clause_queue(&s->cl[i]), s->ent[i]);
    green__unlock(&ch->lock);
}

/* The claimer publishes right after waking us: if we run first (woken by our timer, or
 * on another core), the wait is a few instructions of its. */
static uint8_t settled(struct green_waiter *lead)
{
    uint8_t how;
    for (int spins = 0; (how = __atomic_load_n(&lead->done, __ATOMIC_ACQUIRE)) == W_CLAIMING;
         spins++) {
        if (spins > 64)
            green__sys.sched_yield();
        else
            green_cpu_relax();
    }
    return how;
}

/* After the park, whatever ended it: withdraw every entry not consumed. Returns the
 * clause that completed (its err set, its element delivered), or -1 if none did. */
static int withdraw(struct choose *s)
{
    struct green_waiter *lead = s->ent[0];
    uint8_t how = W_PENDING;
    if (__atomic_compare_exchange_n(&lead->done, &how, W_WITHDRAWN, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
        for (int i = 0; i < s->n; i++)
            unqueue(s, i);
        return -1;
    }
    how = settled(lead);
    int win = lead->index;
    for (int i = 0; i < s->n; i++)
        if (i != win)
            unqueue(s, i); /* the claimer unlinked ours from the winning channel */
    green_clause_t *c = &s->cl[win];
    c->err = how == W_CLOSED ? EPIPE : 0;
    if (how == W_DONE && c->op == GREEN_CHAN_RECV)
        memcpy(c->elem, entry_slot(s->ent[win], s->size[win]), s->size[win]);
    return win;
}

/* Ready the entries for another park (after a wake-up that was not ours). */
static void entries_rearm(struct choose *s)
{
    uint32_t seq = s->h->current->wait_seq + 1;
    for (int i = 0; i < s->n; i++)
        s->ent[i]->seq = seq;
    __atomic_store_n(&s->ent[0]->done, W_PENDING, __ATOMIC_RELAXED);
}

static int not_now(void)
{
    struct green_hub *h = green__tls_hub;
    errno = h && (h->current->flags & GF_CANCELLED) ? ECANCELED : ETIMEDOUT;
    return -1;
}

static int choose(green_clause_t *cl, int n, int64_t deadline)
{
    struct choose s;
    if (choose_init(&s, cl, n) != 0)
        return -1;
    int r;
    for (;;) {
        lock_all(&s);
        r = fire_ready(&s);
        if (r >= 0 || deadline == 0 || !s.ent[0]) {
            unlock_all(&s);
            if (r >= 0)
                break;
            if (deadline == 0) {
                r = not_now();
                break;
            }
            if (entries_new(&s) != 0)
                break; /* r == -1 */
            continue;  /* look again, now able to wait */
        }
        enqueue_all(&s);
        unlock_all(&s);
        green__waiting_on(s.h, GW_CHAN, s.n == 1 ? (void *)s.cl[0].ch : NULL);
        int p = green__waiter_park(s.h, s.ent[0], deadline,
                                   green__park_mode_shared() == GREEN_PARK_EXTERNAL);
        int err = errno;
        r = withdraw(&s);
        if (r >= 0)
            break; /* completed, even if killed or timed out meanwhile: keep it */
        if (p != 0) {
            errno = err;
            break;
        }
        entries_rearm(&s); /* woken by someone else (green_wake): wait on */
    }
    int err = errno;
    choose_release(&s);
    errno = err;
    return r;
}

static int clause_valid(const green_clause_t *c)
{
    return c->ch && c->elem && (c->op == GREEN_CHAN_SEND || c->op == GREEN_CHAN_RECV);
}

/* send and recv: a select of one clause; EPIPE becomes the call's error. */
static int single(green_chan_t *ch, int op, void *elem, int64_t deadline)
{
    green_clause_t c = {.ch = ch, .op = op, .elem = elem};
    if (!clause_valid(&c)) {
        errno = EINVAL;
        return -1;
    }
    /* most operations complete at once (room in the buffer, a waiter on the other
     * side): one lock, no select machinery */
    green__lock(&ch->lock);
    int now = clause_now(&c);
    green__unlock(&ch->lock);
    if (!now && choose(&c, 1, deadline) < 0)
        return -1;
    if (c.err) {
        errno = c.err;
        return -1;
    }
    return 0;
}

/* ---- public API ---- */

green_chan_t *green_chan_new(size_t elem_size, size_t capacity)
{
    if (elem_size == 0) {
        errno = EINVAL;
        return NULL;
    }
    if (capacity && elem_size > (SIZE_MAX - sizeof(struct green_chan)) / capacity) {
        errno = ENOMEM;
        return NULL;
    }
    struct green_chan *ch = malloc(sizeof *ch + elem_size * capacity);
    if (!ch) {
        errno = ENOMEM;
        return NULL;
    }
    *ch = (struct green_chan){.elem_size = elem_size, .cap = capacity};
    return ch;
}

int green_chan_free(green_chan_t *ch)
{
    if (!ch) {
        errno = EINVAL;
        return -1;
    }
    green__lock(&ch->lock);
    int busy = ch->sendq.head || ch->recvq.head;
    green__unlock(&ch->lock);
    if (busy) {
        errno = EBUSY;
        return -1;
    }
    free(ch);
    return 0;
}

/* The element is only read (the clause type serves both directions). */
int green_chan_send(green_chan_t *ch, const void *elem, int64_t deadline)
{
    return single(ch, GREEN_CHAN_SEND, (void *)(uintptr_t)elem, deadline);
}

int green_chan_recv(green_chan_t *ch, void *elem, int64_t deadline)
{
    return single(ch, GREEN_CHAN_RECV, elem, deadline);
}

int green_chan_close(green_chan_t *ch)
{
    if (!ch) {
        errno = EINVAL;
        return -1;
    }
    green__lock(&ch->lock);
    if (ch->closed) {
        green__unlock(&ch->lock);
        errno = EPIPE;
        return -1;
    }
    ch->closed = 1;
    struct green_waiter *e;
    while ((e = claim(&ch->sendq)))
        settle(e, W_CLOSED);
    while ((e = claim(&ch->recvq)))
        settle(e, W_CLOSED); /* there are any only when nothing is buffered */
    green__unlock(&ch->lock);
    return 0;
}

size_t green_chan_len(green_chan_t *ch)
{
    if (!ch) {
        errno = EINVAL;
        return 0;
    }
    green__lock(&ch->lock);
    size_t n = ch->count;
    green__unlock(&ch->lock);
    return n;
}

int green_choose(green_clause_t *clauses, int n, int64_t deadline)
{
    if (!clauses || n <= 0 || n > INT16_MAX) {
        errno = EINVAL;
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (!clause_valid(&clauses[i])) {
            errno = EINVAL;
            return -1;
        }
    }
    return choose(clauses, n, deadline);
}
