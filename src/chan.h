/*
 * chan.h — a channel's insides (layer 6), shared by chan.c, which owns channels, and
 * choose.c, where their clauses of green_choose are waited on: the steps a select takes
 * on a channel are inline, as they were when both lived in one file (a blocked send or
 * receive is such a select).
 *
 * Invariants: chan.c's (each channel's state under its lock; an entry leaves a queue
 * only by the waker that claimed it or by its owner).
 */
#ifndef GREEN_CHAN_H
#define GREEN_CHAN_H

#include "lib.h"

#include <stdlib.h>
#include <string.h>

/* Line-aligned: what every operation writes (the lock, the queues, the ring's place) is
 * one cache line, so a hand-off between cores moves that one; elem_size, never written,
 * stays cached on every side; the ring starts on a line of its own. */
struct green_chan {
    green__lock_t lock;
    int closed;
    size_t head;            /* ring index of the oldest buffered element */
    size_t count;           /* elements buffered */
    size_t cap;
    green_waitq_t sendq;    /* waiting senders' entries, FIFO */
    green_waitq_t recvq;    /* waiting receivers' entries, FIFO */
    size_t elem_size __attribute__((aligned(64)));
    char buf[] __attribute__((aligned(64))); /* cap * elem_size bytes */
};

/* An entry's element slot: in the record when small, else allocated (0, or -1 + ENOMEM). */
static inline void *green__chan_slot(struct green_waiter *e, size_t size)
{
    return size <= sizeof e->data ? (void *)&e->data : e->data;
}
static inline int green__chan_slot_alloc(struct green_waiter *e, size_t size)
{
    if (size > sizeof e->data && !(e->data = malloc(size))) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}
static inline void green__chan_slot_free(struct green_waiter *e, size_t size)
{
    if (size > sizeof e->data)
        free(e->data);
}

/* With the channel locked (green__lock(&ch->lock)): */
/* Might c complete now? Cheap, and stale entries may make it a wrong yes. */
static inline int green__chan_maybe(const green_clause_t *c)
{
    const struct green_chan *ch = c->ch;
    if (ch->closed)
        return 1;
    if (c->op == GREEN_CHAN_SEND)
        return ch->recvq.head || ch->count < ch->cap;
    return ch->count > 0 || ch->sendq.head;
}
/* Complete c now (1; c->err 0, or EPIPE on a closed channel), or 0: it would wait. */
int green__chan_now(green_clause_t *c);

static inline green_waitq_t *green__chan_queue(const green_clause_t *c)
{
    return c->op == GREEN_CHAN_SEND ? &c->ch->sendq : &c->ch->recvq;
}
/* Queue entry e (aux: its select's lead) for c; a sender's element goes into it. */
static inline void green__chan_enqueue(green_clause_t *c, struct green_waiter *e)
{
    if (c->op == GREEN_CHAN_SEND)
        memcpy(green__chan_slot(e, c->ch->elem_size), c->elem, c->ch->elem_size);
    green__waitq_push(green__chan_queue(c), e);
}

/* Wait for c (valid, not completed by green__chan_now): a green_choose of that one
 * clause (choose.c). 0 (c->err set), or -1 + errno. */
int green__chan_wait(green_clause_t *c, int64_t deadline);

/* Take e off c's queue, if a claimer has not (takes the lock). */
static inline void green__chan_unqueue(green_clause_t *c, struct green_waiter *e)
{
    struct green_chan *ch = c->ch;
    green__lock(&ch->lock);
    green__waitq_remove(green__chan_queue(c), e);
    green__unlock(&ch->lock);
}

#endif /* GREEN_CHAN_H */
