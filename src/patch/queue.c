/*
 * queue.c — where green threads wait for pthread objects (GREEN_PATCH_THREADS=1).
 *
 * A pthread object is too small for a wait queue and its bytes are glibc's, so the
 * queues are kept apart: each OS thread has a hash table of the objects its green
 * threads wait for, keyed by address, its buckets chained through each queue's first
 * node. A queue is its nodes (struct pwait, thread.h), first come first served; its first
 * node is the one in the bucket chain and knows the last. The table starts with a
 * thread-local array of 16 buckets and grows (4x) when it holds more than two queues a
 * bucket (100,000 green threads each waiting on its own condition); a growth that cannot
 * be allocated leaves it as it is, slower. It goes back to the small array when empty.
 * Otherwise nothing here allocates but pq_node for a green thread that has no node of
 * its own, so a wait never fails for want of memory: a waiter without a node looks
 * again now and then instead.
 *
 * Invariants: a node is in at most one queue (obj says which, NULL none); only green
 * threads of this OS thread are in its table, and only they pop them (a release on
 * another OS thread cannot see them: waiters look again every PQ_RECHECK_MS when green
 * threads of several OS threads share objects, patch_many_hubs(), and a root that
 * nothing on its hub can wake does so too while other OS threads exist, rather than
 * call it a deadlock); a waiter takes its node out before it returns, however its wait
 * ended.
 */
#include "thread.h"

#include <stdlib.h>

#define PQ_SMALL 16

static __thread struct pwait *small[PQ_SMALL];
static __thread struct pwait **buckets PATCH_TLS_FAST; /* small, or allocated */
static __thread unsigned nbuckets PATCH_TLS_FAST;       /* a power of 2 */
static __thread unsigned nqueues PATCH_TLS_FAST;

static unsigned hash(const void *obj, unsigned n)
{
    return (unsigned)(((uintptr_t)obj >> 3) * 0x9E3779B97F4A7C15ull >> 32) & (n - 1);
}

static struct pwait **slot(const void *obj)
{
    if (!buckets) {
        buckets = small;
        nbuckets = PQ_SMALL;
    }
    struct pwait **pp = &buckets[hash(obj, nbuckets)];
    while (*pp && (*pp)->obj != obj)
        pp = &(*pp)->chain;
    return pp;
}

/* Four times the buckets, if memory allows. */
static void grow(void)
{
    unsigned n = nbuckets * 4;
    struct pwait **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (unsigned i = 0; i < nbuckets; i++)
        for (struct pwait *q = buckets[i], *next; q; q = next) {
            next = q->chain;
            q->chain = b[hash(q->obj, n)];
            b[hash(q->obj, n)] = q;
        }
    if (buckets != small)
        free(buckets);
    buckets = b;
    nbuckets = n;
}

/* The table has one queue less; an empty one goes back to the small array. */
static void queue_gone(void)
{
    if (--nqueues == 0 && buckets != small) {
        free(buckets);
        buckets = small;
        nbuckets = PQ_SMALL;
    }
}

void pq_push(struct pwait *w, const void *obj)
{
    patch_tlocal_wait(obj); /* a wait object in thread-local storage: said once (tlocal.c) */
    w->obj = obj;
    w->next = NULL;
    w->done = 0;
    w->err = 0;
    struct pwait **pp = slot(obj), *first = *pp;
    if (first) {
        first->last->next = w;
        first->last = w;
        return;
    }
    w->last = w;
    w->chain = NULL;
    *pp = w;
    if (++nqueues > 2 * nbuckets)
        grow();
}

struct pwait *pq_first(const void *obj) { return nqueues ? *slot(obj) : NULL; }

/* Take out first, the node in *pp: its successor heads the queue now. */
static void unlink_first(struct pwait **pp, struct pwait *first)
{
    struct pwait *n = first->next;
    if (n) {
        n->last = first->last;
        n->chain = first->chain;
        *pp = n;
        first->obj = NULL;
    } else {
        *pp = first->chain;
        first->obj = NULL;
        queue_gone();
    }
}

struct pwait *pq_pop(const void *obj)
{
    if (!nqueues)
        return NULL;
    struct pwait **pp = slot(obj), *first = *pp;
    if (first)
        unlink_first(pp, first);
    return first;
}

void pq_remove(struct pwait *w)
{
    if (!w->obj)
        return;
    struct pwait **pp = slot(w->obj), *first = *pp;
    if (first == w) {
        unlink_first(pp, w);
        return;
    }
    struct pwait *p = first;
    while (p->next != w)
        p = p->next;
    p->next = w->next;
    if (first->last == w)
        first->last = p;
    w->obj = NULL;
}

void pq_wake(struct pwait *w, int err)
{
    w->done = 1;
    w->err = err;
    int saved = errno;
    green_wake(w->g, 0); /* EAGAIN when it is not parked: it finds done when it runs */
    errno = saved;
}

void pq_each(int kind, void (*fn)(struct pwait *first, void *arg), void *arg)
{
    for (unsigned i = 0; i < nbuckets && nqueues; i++) {
        struct pwait *q = buckets[i];
        while (q) {
            struct pwait *next = q->chain; /* fn may empty q */
            if (q->kind == kind)
                fn(q, arg);
            q = next;
        }
    }
}

struct pwait *pq_node(struct powner *o, int kind)
{
    struct pwait *w = o ? &o->w : malloc(sizeof *w);
    if (w) {
        w->g = green_current();
        w->held = o ? &o->held : NULL;
        w->kind = kind;
        w->obj = NULL;
        w->done = 0;
        w->allocated = !o;
    }
    return w;
}

void pq_node_done(struct pwait *w)
{
    if (w && w->allocated)
        free(w);
}

extern char __libc_single_threaded __attribute__((weak));

/* Only this hub could end a wait while the process has a single thread (glibc 2.32+
 * says so; elsewhere assume threads exist). */
static int single_threaded(void)
{
    return &__libc_single_threaded != NULL && __atomic_load_n(&__libc_single_threaded, __ATOMIC_RELAXED);
}

int pq_park(int64_t deadline, int recheck)
{
    int saved = errno, e;
    for (;;) {
        int64_t d = deadline;
        if (recheck > 0) {
            int64_t r = green_after(recheck);
            if (d < 0 || r < d)
                d = r;
        }
        e = green_park(d) == 0 ? 0 : errno;
        /* the recheck's own time, not the deadline: look again */
        if (e == ETIMEDOUT && d != deadline && (deadline < 0 || green_now() < deadline))
            e = EAGAIN;
        /* nothing on this hub can end it, but another OS thread may (a plain thread, or
         * the hub of one that started green threads): no deadlock, look again later */
        if (e == EDEADLK && !single_threaded() && !recheck) {
            recheck = PQ_RECHECK_MS;
            continue;
        }
        break;
    }
    errno = saved;
    return e;
}
