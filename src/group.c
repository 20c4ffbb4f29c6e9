/*
 * group.c — groups and pools of green threads (layer 6): gevent.pool.Group and Pool.
 *
 * A member is a detached green thread running a trampoline: it runs fn(arg), then, on
 * its way out, takes itself off the group. So members are reaped when they finish,
 * joined or not, and the handle green_group_spawn returned goes stale then (ESRCH).
 * The member's record (heap, one per member) threads the group's list: members that
 * have not started yet at the front, started ones behind them.
 *
 * A pool (limit > 0) hands slots over in FIFO order: when a member finishes and a
 * spawner waits, its slot goes straight to that spawner (size does not drop), so a
 * spawner arriving later cannot take it first. size therefore counts members not
 * finished plus slots handed to spawners that have not spawned yet.
 *
 * A member killed before it ever ran never runs its trampoline (the hub drops it at
 * once), so the group finds such members itself: a not-yet-started member whose handle
 * has gone stale died that way. Calls that need an exact size look at the front of the
 * list (the unstarted members, gone within one round of the FIFO run queue). A waiter
 * (joiner, spawner) parks only while every member has started; while some have not, it
 * yields and looks again, and a spawn nudges the parked ones into doing so. So such a
 * death goes unnoticed for at most one round.
 *
 * A group belongs to the hub of the thread that uses it; waits on it are local to that
 * hub (a root waiting on a group that nothing can change gets EDEADLK).
 */
#include "internal.h"

#include <stdlib.h>

struct member {
    struct member *prev, *next;   /* circular; the group's `members` is the first */
    green_group_t *group;
    green_t handle;
    green_fn fn;
    void *arg;
    int started;
};

/* ---- the member list ---- */

static void list_unlink(green_group_t *g, struct member *m)
{
    if (m->next == m) {
        g->members = NULL;
    } else {
        m->prev->next = m->next;
        m->next->prev = m->prev;
        if (g->members == m)
            g->members = m->next;
    }
}

/* Before `at` (the first element when at_front, else the back of the circle). */
static void list_insert(green_group_t *g, struct member *m, int at_front)
{
    struct member *first = g->members;
    if (!first) {
        m->prev = m->next = m;
        g->members = m;
        return;
    }
    m->next = first;
    m->prev = first->prev;
    first->prev->next = m;
    first->prev = m;
    if (at_front)
        g->members = m;
}

static int unstarted_exist(const green_group_t *g)
{
    const struct member *first = g->members;
    return first && !first->started;
}

/* ---- slots and wake-ups ---- */

/* Wake the parked waiters without serving them: they look again and wait on. */
static void nudge(green_waitq_t *q)
{
    for (struct green_waiter *w = q->head; w; w = w->next)
        green__waiter_wake(w, 0);
}

static void wake_all(green_waitq_t *q)
{
    struct green_waiter *w;
    while ((w = green__waitq_pop(q))) {
        w->done = 1;
        green__waiter_wake(w, 0);
    }
}

/* A member's slot is free: hand it to the first waiting spawner, or give it up. */
static void slot_release(green_group_t *g)
{
    struct green_waiter *w = green__waitq_pop(&g->slots);
    if (w) {
        w->done = 1;
        green__waiter_wake(w, 0);
        return;
    }
    if (--g->size == 0)
        wake_all(&g->joiners);
}

static void member_gone(green_group_t *g, struct member *m)
{
    list_unlink(g, m);
    free(m);
    slot_release(g);
}

/* Members killed before they started: their handles have gone stale. */
static void sweep(green_group_t *g)
{
    int saved = errno;
    struct member *m = g->members;
    while (m && !m->started) {
        struct member *next = m->next;
        int last = next == g->members;
        int dead = green_dead(m->handle);
        if (dead == 1 || (dead < 0 && errno == ESRCH))
            member_gone(g, m);
        if (last)
            break;
        m = next;
    }
    errno = saved;
}

static void *member_main(void *arg)
{
    struct member *m = arg;
    green_group_t *g = m->group;
    m->started = 1;
    list_unlink(g, m);
    list_insert(g, m, 0);
    m->fn(m->arg); /* the result has no reader: members are reaped unjoined */
    member_gone(g, m);
    return NULL;
}

/* One step of waiting on q (w queued there): park, or, while unstarted members exist,
 * yield and look for those that died unstarted. 0, or -1 + errno. */
static int wait_step(green_group_t *g, struct green_hub *h, struct green_waiter *w,
                     int64_t deadline)
{
    if (unstarted_exist(g)) {
        if (deadline >= 0 && green_now() >= deadline) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (green_yield() != 0)
            return -1;
        sweep(g);
        return 0;
    }
    w->seq = h->current->wait_seq + 1;
    return green__waiter_park(h, w, deadline, 0);
}

/* Wait on q until w is served (done) or `enough` says the wait is over. */
static int wait_on(green_group_t *g, green_waitq_t *q, int64_t deadline,
                   int (*enough)(const green_group_t *))
{
    if (deadline == 0) {
        errno = green_cancelled() ? ECANCELED : ETIMEDOUT;
        return -1;
    }
    struct green_hub *h = green__loop();
    if (!h)
        return -1;
    struct green_waiter *w = green__waiter_new(h);
    if (!w)
        return -1;
    green__waitq_push(q, w);
    int r;
    do
        r = wait_step(g, h, w, deadline);
    while (r == 0 && !w->done && !enough(g));
    int err = errno;
    green__waitq_remove(q, w);
    int served = w->done || enough(g); /* served meanwhile: that counts, as in channels */
    green__waiter_free(h, w);
    if (served)
        return 0;
    errno = err;
    return -1;
}

static int never(const green_group_t *g)
{
    (void)g;
    return 0;
}

static int empty(const green_group_t *g) { return g->size == 0; }

/* A slot for a new member: size counts it on success. */
static int slot_take(green_group_t *g, int64_t deadline)
{
    if (!g->limit || (g->size < g->limit && !g->slots.head)) {
        g->size++;
        return 0;
    }
    return wait_on(g, &g->slots, deadline, never); /* served = the slot is ours */
}

static int is_member(const green_group_t *g, green_t t)
{
    const struct member *first = g->members, *m = first;
    if (m) {
        do {
            if (m->handle == t)
                return 1;
            m = m->next;
        } while (m != first);
    }
    return 0;
}

/* ---- public API ---- */

int green_group_init(green_group_t *g, size_t limit)
{
    if (!g) {
        errno = EINVAL;
        return -1;
    }
    *g = (green_group_t){.limit = limit};
    return 0;
}

green_t green_group_spawn(green_group_t *g, green_fn fn, void *arg, int64_t deadline)
{
    if (!g || !fn) {
        errno = EINVAL;
        return NULL;
    }
    if (g->limit && g->size >= g->limit)
        sweep(g); /* only when full: a sweep walks the unstarted members */
    if (slot_take(g, deadline) != 0)
        return NULL;
    struct member *m = malloc(sizeof *m);
    green_t t = m ? green_spawn(member_main, m) : NULL;
    if (!t) {
        int err = m ? errno : ENOMEM;
        free(m);
        slot_release(g);
        errno = err;
        return NULL;
    }
    green_detach(t); /* cannot fail on a fresh handle */
    *m = (struct member){.group = g, .handle = t, .fn = fn, .arg = arg};
    list_insert(g, m, 1);
    nudge(&g->joiners); /* they must watch it until it has started */
    nudge(&g->slots);
    return t;
}

int green_group_join(green_group_t *g, int64_t deadline)
{
    if (!g) {
        errno = EINVAL;
        return -1;
    }
    sweep(g);
    if (g->size == 0)
        return 0;
    if (is_member(g, green_current())) {
        errno = EDEADLK; /* it would wait for itself */
        return -1;
    }
    return wait_on(g, &g->joiners, deadline, empty);
}

int green_group_kill(green_group_t *g)
{
    if (!g) {
        errno = EINVAL;
        return -1;
    }
    sweep(g);
    /* green_kill never switches: the list changes only where we change it */
    struct member *m = g->members;
    size_t n = 0;
    if (m) {
        do {
            n++;
            m = m->next;
        } while (m != g->members);
    }
    for (; n > 0; n--) {
        struct member *next = m->next;
        green_kill(m->handle);
        if (!m->started)
            member_gone(g, m); /* the hub dropped it: it will never run */
        m = next;
    }
    return 0;
}

size_t green_group_size(green_group_t *g)
{
    if (!g) {
        errno = EINVAL;
        return 0;
    }
    sweep(g);
    return g->size;
}

int green_group_destroy(green_group_t *g)
{
    if (!g) {
        errno = EINVAL;
        return -1;
    }
    sweep(g);
    if (g->size || g->members || g->slots.head || g->joiners.head) {
        errno = EBUSY;
        return -1;
    }
    *g = (green_group_t){0};
    return 0;
}
