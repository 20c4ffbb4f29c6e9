/*
 * chan.c — channels (layer 6): gevent's Queue/Channel, Go's chan; their clauses in
 * green_choose (choose.c), which send and receive are when they must wait.
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
 * Every entry belongs to a select (green_choose; a blocked send or receive is a select
 * of one clause) and points (aux) at the select's lead, whose claim word (wait.h) a
 * waker moves from PENDING to CLAIMING before it completes the operation; entries whose
 * lead is no longer PENDING are stale and wakers step over them. So exactly one clause
 * of a select completes, whoever runs where.
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
#include "chan.h"

#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

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

static inline struct green_waiter *lead_of(const struct green_waiter *e)
{
    return (struct green_waiter *)e->aux;
}

/* The entry this OS thread last claimed, and on which channel. In a steady hand-off with
 * a green thread of another hub, that one waits on the same entry each time (its hub's
 * cache of records is LIFO): fetched for writing before the channel's lock is taken, the
 * entry's line comes while the channel's does instead of after it (the claim, the element
 * and the note are all on it). A stale hint costs a prefetch nobody needed. */
static __thread struct {
    const void *ch, *e;
} last_claim __attribute__((tls_model("initial-exec")));

/* The first live entry of q, claimed and unlinked; NULL if there is none. */
static struct green_waiter *claim(struct green_chan *ch, green_waitq_t *q)
{
    for (struct green_waiter *e = q->head; e; e = e->next) {
        if (green__select_claim(lead_of(e))) {
            green__waitq_remove(q, e);
            last_claim.ch = ch;
            last_claim.e = e;
            return e;
        }
    }
    return NULL;
}

/* A claimed operation is complete: say which clause and how, wake its owner, and only
 * then publish (the owner may free the records as soon as it sees it). */
static void settle(struct green_waiter *e, uint8_t how)
{
    green__waiter_wake(e, 0);
    green__select_done(lead_of(e), e->index, how);
}

/* ---- operations that complete now (the channel's lock held) ---- */

/* 1 when the send completed (err: 0 or EPIPE), 0 when it would have to wait. */
static int send_now(struct green_chan *ch, const void *elem, int *err)
{
    if (ch->closed) {
        *err = EPIPE;
        return 1;
    }
    struct green_waiter *r = ch->recvq.head ? claim(ch, &ch->recvq) : NULL;
    if (r) {
        memcpy(green__chan_slot(r, ch->elem_size), elem, ch->elem_size);
        settle(r, GREEN_SELECT_DONE);
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
    struct green_waiter *s = ch->sendq.head ? claim(ch, &ch->sendq) : NULL;
    if (ch->count > 0) {
        ring_pop(ch, out);
        if (s)
            ring_push(ch, green__chan_slot(s, ch->elem_size));
    } else if (s) {
        memcpy(out, green__chan_slot(s, ch->elem_size), ch->elem_size);
    } else if (ch->closed) {
        *err = EPIPE;
        return 1;
    } else {
        return 0;
    }
    if (s)
        settle(s, GREEN_SELECT_DONE);
    *err = 0;
    return 1;
}

/* ---- the channel's side of green_choose (chan.h) ---- */

int green__chan_now(green_clause_t *c)
{
    if (c->op == GREEN_CHAN_SEND)
        return send_now(c->ch, c->elem, &c->err);
    return recv_now(c->ch, c->elem, &c->err);
}

/* send and recv: a select of one clause; EPIPE becomes the call's error. */
static int single(green_chan_t *ch, int op, void *elem, int64_t deadline)
{
    green_clause_t c = {.ch = ch, .op = op, .elem = elem};
    if (!ch || !elem) {
        errno = EINVAL;
        return -1;
    }
    if (last_claim.ch == ch)
        __builtin_prefetch(last_claim.e, 1);
    /* most operations complete at once (room in the buffer, a waiter on the other
     * side): one lock, no select machinery */
    green__lock(&ch->lock);
    int now = green__chan_now(&c);
    green__unlock(&ch->lock);
    if (!now && green__chan_wait(&c, deadline) < 0)
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
    size_t size = sizeof(struct green_chan) + elem_size * capacity, align = _Alignof(struct green_chan);
    if (size > SIZE_MAX - align) {
        errno = ENOMEM;
        return NULL;
    }
    struct green_chan *ch = aligned_alloc(align, (size + align - 1) / align * align);
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
    while ((e = claim(ch, &ch->sendq)))
        settle(e, GREEN_SELECT_CLOSED);
    while ((e = claim(ch, &ch->recvq)))
        settle(e, GREEN_SELECT_CLOSED); /* there are any only when nothing is buffered */
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
