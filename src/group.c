/*
 * group.c — groups and pools of green threads (layer 6): gevent.pool.Group and Pool.
 *
 * A member is a detached green thread running fn(arg), with a death notice (on_death,
 * gevent's rawlink) that takes it off the group: run when it finishes, or at once when
 * it is killed before it ever ran. So members are reaped when they finish, joined or
 * not, the handle green_group_spawn returned goes stale then (ESRCH), and the group's
 * list and size are exact at every moment: nobody has to look for members that died.
 * The member's record (heap, one per member) threads the group's list.
 *
 * A pool (limit > 0) hands slots over in FIFO order: when a member finishes and a
 * spawner waits, its slot goes straight to that spawner (size does not drop), so a
 * spawner arriving later cannot take it first. size therefore counts members not
 * finished plus slots handed to spawners that have not spawned yet. Joiners are handed
 * their wait's end when size drops to 0. Both kinds of waiter simply park until then.
 *
 * A group belongs to the hub of the thread that uses it (its home): only that hub's
 * thread touches its list, size and queues, and waits on it are local to that hub (a
 * root waiting on a group that nothing can change gets EDEADLK). Members may run on
 * other hubs (green_group_spawn_attr with attr.hub = n or GREEN_HUB_ANY): the member is
 * given its death notice and made detached before it is handed over (sched.c's
 * green__spawn_member), so it can die on its hub at any moment after. A death on
 * another hub than the home sends the member's record itself to the home (a
 * green_xnote, hubs.c: nothing to allocate when it dies, so it cannot be lost), whose
 * loop takes it off the group there: size drops, a pool's slot goes to the next
 * spawner, joiners are woken — so size counts such a member until its home has seen its
 * death. While a member may be away the home holds an outside reference (ext_refs): a
 * root joining a group with members on other hubs waits for them, never EDEADLK.
 * green_group_kill kills each member with green_kill, which crosses hubs.
 *
 * Members do not move: green__spawn_member places a GREEN_HUB_ANY member on the least
 * loaded hub, and from there it stays (hubs.c's movable() keeps any green thread with a
 * death notice where it is). Nothing here depends on it: the death notice looks at the
 * hub the member dies on, and a GREEN_HUB_ANY member holds the home's reference even
 * when placed at home, so members could be let move by movable() alone.
 */
#include "lib.h"

#include <stdlib.h>

struct member {
    struct green_xnote note;      /* its death, sent home from another hub */
    struct member *prev, *next;   /* circular; the group's `members` is the first */
    green_group_t *group;
    green_t handle;
    struct green_hub *home;       /* the group's hub, which alone touches the group */
    int away;                     /* may die elsewhere: home holds a reference for it */
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

static void list_append(green_group_t *g, struct member *m)
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
}

static size_t list_length(const green_group_t *g)
{
    const struct member *first = g->members, *m = first;
    size_t n = 0;
    if (m) {
        do {
            n++;
            m = m->next;
        } while (m != first);
    }
    return n;
}

static int is_member(const green_group_t *g, green_t t)
{
    const struct member *m = g->members;
    for (size_t n = list_length(g); n > 0; n--, m = m->next)
        if (m->handle == t)
            return 1;
    return 0;
}

/* ---- slots and waiting ---- */

/* A member's slot is free: hand it to the first waiting spawner, or give it up. */
static void slot_release(green_group_t *g)
{
    struct green_waiter *w = green__waitq_pop(&g->slots);
    if (w) {
        green__waiter_hand_over(w);
        return;
    }
    if (--g->size == 0)
        green__waitq_hand_over_all(&g->joiners);
}

/* Park on q until handed over: a slot (spawners) or an empty group (joiners). */
static int wait_on(green_group_t *g, green_waitq_t *q, int64_t deadline)
{
    struct green_hub *h = green__loop();
    if (!h)
        return -1;
    green__waiting_on(h, GW_GROUP, g);
    return green__wait(h, q, NULL, deadline, GREEN_PARK_LOCAL);
}

/* A slot for a new member: size counts it on success. */
static int slot_take(green_group_t *g, int64_t deadline)
{
    if (!g->limit || (g->size < g->limit && !g->slots.head)) {
        g->size++;
        return 0;
    }
    return wait_on(g, &g->slots, deadline);
}

/* ---- members ---- */

/* On the group's hub: member m is dead; take it off its group. */
static void member_gone(struct green_hub *h, struct member *m)
{
    green_group_t *g = m->group;
    if (m->away)
        h->ext_refs--;
    list_unlink(g, m);
    free(m);
    slot_release(g);
}

/* A death sent home from another hub. */
static void member_gone_away(struct green_hub *h, struct green_xnote *x)
{
    member_gone(h, (struct member *)(void *)x);
}

/* on_death of a member's green thread, on the hub it dies on: it finished, or was
 * killed before it ran. */
static void member_died(struct green_hub *h, struct green *t, void *arg)
{
    (void)t;
    struct member *m = arg;
    if (h != m->home)
        green__xnote_send(m->home, &m->note, member_gone_away);
    else
        member_gone(h, m);
}

/* fn(arg) as a new member of g, recorded in m: detached, and taken off g when it dies. */
static green_t member_spawn(green_group_t *g, struct member *m, green_fn fn, void *arg,
                            const green_attr_t *attr)
{
    struct green_hub *h = green__loop();
    if (!h)
        return NULL;
    /* filled before it can run (and die) anywhere */
    *m = (struct member){.group = g, .home = h};
    struct green_hub *where;
    green_t t = green__spawn_member(fn, arg, attr, member_died, m, &where);
    if (!t)
        return NULL;
    m->handle = t;
    /* a GREEN_HUB_ANY member counts as away even when placed here (see the top) */
    m->away = where != h || (attr && attr->hub == GREEN_HUB_ANY && green__hubs_n() > 1);
    if (m->away)
        h->ext_refs++;
    list_append(g, m);
    return t;
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

green_t green__group_spawn_attr(green_group_t *g, green_fn fn, void *arg, const green_attr_t *attr,
                                int64_t deadline)
{
    if (!g || !fn) {
        errno = EINVAL;
        return NULL;
    }
    if (slot_take(g, deadline) != 0)
        return NULL;
    struct member *m = malloc(sizeof *m);
    green_t t = m ? member_spawn(g, m, fn, arg, attr) : NULL;
    if (!t) {
        int err = m ? errno : ENOMEM;
        free(m);
        slot_release(g);
        errno = err;
        return NULL;
    }
    return t;
}

green_t green_group_spawn(green_group_t *g, green_fn fn, void *arg, int64_t deadline)
{
    return green__group_spawn_attr(g, fn, arg, NULL, deadline);
}

green_t green_group_spawn_attr(green_group_t *g, green_fn fn, void *arg, const green_attr_t *attr,
                               int64_t deadline)
{
    return green__group_spawn_attr(g, fn, arg, attr, deadline);
}

int green_group_join(green_group_t *g, int64_t deadline)
{
    if (!g) {
        errno = EINVAL;
        return -1;
    }
    if (g->size == 0)
        return 0;
    if (is_member(g, green_current())) {
        errno = EDEADLK; /* it would wait for itself */
        return -1;
    }
    return wait_on(g, &g->joiners, deadline);
}

int green_group_kill(green_group_t *g)
{
    if (!g) {
        errno = EINVAL;
        return -1;
    }
    /* green_kill never switches, but a member that never ran dies inside it, and its
     * record goes: count first, and step past each member before killing it */
    struct member *m = g->members;
    for (size_t n = list_length(g); n > 0; n--) {
        struct member *next = m->next;
        green_kill(m->handle);
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
    return g->size;
}

int green_group_destroy(green_group_t *g)
{
    if (!g) {
        errno = EINVAL;
        return -1;
    }
    if (g->size || g->members || g->slots.head || g->joiners.head) {
        errno = EBUSY;
        return -1;
    }
    *g = (green_group_t){0};
    return 0;
}
