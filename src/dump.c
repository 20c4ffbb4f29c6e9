/*
 * dump.c — what every green thread is doing (layer 8): green_dump, green_stats (the
 * statistics, including those that need a walk over the green threads and their stacks'
 * high-water marks), and the dump of one hub that the dump signal (dump_signal.c) writes.
 *
 * Nothing here costs anything on the switch path. What a dump shows is recorded where
 * it is cheap: a blocking call notes what it parks for (green__waiting_on: a byte and a
 * pointer in the control block, in fields a started green thread no longer needs), the
 * hub notes when a green thread parked, became ready or died (its cached clock, 32
 * bits), a spawned one keeps its spawner's id in place of its parent (always the root),
 * and the shared-stack copy-out keeps the deepest size it copied. The fd a green thread
 * waits on, its deadline and its joinee come from the hub's own tables. The walk goes
 * over the hub's chunks of control blocks (green.c); backtraces are backtrace.c's.
 *
 * A dump from a signal handler (o->in_signal) reads the hub where its thread was
 * interrupted: best effort, as Go's is; it neither mallocs nor locks.
 */
#include "debug.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

/* ---- high-water marks ---- */

/* ---- high-water marks ---- */

/* Deepest stack use of g so far, bytes; 0 when unknown (root, not started). */
static size_t hwm_of(struct green_hub *h, struct green *g)
{
    if ((g->flags & GF_ROOT) || !(g->flags & GF_STARTED))
        return 0;
    if (g->flags & GF_SHARED) {
        size_t m = (size_t)g->dbg.hwm * 16;
        if (h->shared.owner == g && g != h->current) {
            size_t d = (size_t)(h->shared.hi - (char *)green_ctx_sp(&g->ctx));
            if (d > m)
                m = d;
        } else if (g == h->current) {
            char here;
            size_t d = (size_t)(h->shared.hi - &here);
            if (d > m)
                m = d;
        }
        return m;
    }
    return g->s.stack ? green__stack_hwm(g->s.stack, 0) : 0;
}

/* ---- walking the green threads ---- */

/* Blocks are laid out in chunks (green.c); every block not GS_FREE whose hub is h is a
 * green thread of h, the root included: alive + 1 of them, so the walk stops once it has
 * seen them. Green threads move between the hubs of a group (hubs.c): h's chunks may
 * hold other hubs' green threads, and h's may be in the other members' chunks (read
 * here without their lock: members never give their chunks away). */
static void walk_chunks(struct green_hub *h, struct block_chunk *c, uint64_t *left,
                        void (*fn)(struct green_hub *, struct green *, void *), void *arg)
{
    for (; c && *left; c = green__chunk_next(c)) {
        size_t bsize;
        char *base = green__chunk_blocks(c, &bsize);
        for (size_t i = 0, n = green__chunk_count(c); i < n && *left; i++) {
            struct green *g = (struct green *)(void *)(base + i * bsize);
            if (__atomic_load_n(&g->hub, __ATOMIC_ACQUIRE) == h && g->state != GS_FREE &&
                g->state != GS_MOVING) {
                (*left)--;
                fn(h, g, arg);
            }
        }
    }
}

static void for_each(struct green_hub *h, void (*fn)(struct green_hub *, struct green *, void *), void *arg)
{
    uint64_t left = h->alive + 1;
    walk_chunks(h, h->chunks, &left, fn, arg);
    if (!h->moved_in)
        return;
    for (int n = 1; left && n <= green__hubs_n(); n++) {
        struct green_hub *m = green__hub_member(n);
        if (m && m != h)
            walk_chunks(h, __atomic_load_n(&m->chunks, __ATOMIC_ACQUIRE), &left, fn, arg);
    }
}

static void count_one(struct green_hub *h, struct green *g, void *arg)
{
    green_stats_t *st = arg;
    switch (g->state) {
    case GS_NEW: st->state_new++; break;
    case GS_RUNNING: st->state_running++; break;
    case GS_SUSPENDED: st->state_suspended++; break;
    case GS_READY: st->state_ready++; break;
    case GS_WAITING: st->state_waiting++; break;
    case GS_DEAD: st->state_dead++; break;
    default: break;
    }
    if ((g->flags & GF_ROOT) || !(g->flags & GF_STARTED) || g->state == GS_DEAD)
        return;
    size_t m = hwm_of(h, g);
    st->stack_hwm[green__hwm_bucket(m)]++;
    if (m > st->stack_hwm_max)
        st->stack_hwm_max = m;
}

/* ---- statistics ---- */

int green_stats(green_stats_t *st)
{
    if (!st) {
        errno = EINVAL;
        return -1;
    }
    struct green_hub *h = green__hub_fast();
    if (!h)
        return -1;
    memset(st, 0, sizeof *st);
    st->alive = h->alive;
    st->ready = h->nready;
    st->waiting = h->nwaiting;
    st->switches = h->switches;
    st->timers = green__timer_count(h);
    green__stack_stats(&st->guarded_stacks, &st->unguarded_stacks);
    st->shared_saved_bytes = h->saved_bytes;
    st->shared_copied_bytes = h->copied_bytes;
    st->loops = h->loops;
    st->fds = h->nfds;
    st->pool_queued = green__pool_queued();
    for (unsigned i = 0; i < 16; i++) {
        st->stack_hwm[i] = h->hwm_hist[i];
        if (h->hwm_hist[i] && ((uint64_t)1024 << i) > st->stack_hwm_max)
            st->stack_hwm_max = (uint64_t)1024 << i; /* reaped: the bucket's bound */
    }
    for_each(h, count_one, st);
    return 0;
}

/* ---- the dump ---- */

static const char *const state_names[] = {
    [GS_FREE] = "free", [GS_NEW] = "new", [GS_RUNNING] = "running",
    [GS_SUSPENDED] = "suspended", [GS_READY] = "ready", [GS_WAITING] = "waiting",
    [GS_DEAD] = "dead", [GS_MOVING] = "moving",
};

static const char *const kind_names[] = {
    [GW_PARK] = "park", [GW_SLEEP] = "sleep", [GW_FD] = "fd", [GW_JOIN] = "join",
    [GW_EVENT] = "event", [GW_FUTURE] = "future", [GW_SEM] = "semaphore",
    [GW_MUTEX] = "mutex", [GW_COND] = "cond", [GW_CHAN] = "channel", [GW_GROUP] = "group",
    [GW_POOL] = "threadpool", [GW_FILE] = "file", [GW_SIGNAL] = "signal",
    [GW_RESOLVE] = "resolve", [GW_CHOOSE] = "choose",
};

struct dump_ctx {
    struct green_out *o;
    int64_t now;
    int only_current;
};

static int timer_armed(const struct green *g) { return g->timer.slot != GREEN_TIMER_IDLE; }

/* What g waits for, for the state line ("on=fd fd=5 dir=read"). */
static void describe_wait(struct green_out *o, struct green_hub *h, struct green *g, int64_t now)
{
    if (!(g->flags & GF_STARTED)) {
        if (timer_armed(g))
            green__outf(o, " on=start at=%lld in=%lldms", (long long)g->timer.when,
                        (long long)((int64_t)g->timer.when - now));
        return;
    }
    unsigned k = g->dbg.kind;
    green__outf(o, " on=%s", k < sizeof kind_names / sizeof *kind_names ? kind_names[k] : "?");
    switch (k) {
    case GW_FD:
    case GW_FILE: {
        int fd = (int)(intptr_t)g->arg;
        green__outf(o, " fd=%d", fd);
        if (k == GW_FD && (size_t)fd < h->nfd_cap) {
            const struct green_fd *st = &h->fd_table[fd];
            green__outf(o, " dir=%s", st->waiter[0] == g && st->waiter[1] == g ? "read+write"
                                     : st->waiter[1] == g ? "write" : "read");
        }
        break;
    }
    case GW_SIGNAL:
        green__outf(o, " signo=%d", (int)(intptr_t)g->arg);
        break;
    case GW_CHOOSE:
        green__outf(o, " clauses=%d", (int)(intptr_t)g->arg);
        break;
    case GW_JOIN: {
        const struct green *t = g->arg;
        if (t && t->state != GS_FREE && green__joiner(t) == g)
            green__outf(o, " green=%llu", (unsigned long long)t->id);
        break;
    }
    case GW_MUTEX: {
        const green_mutex_t *m = g->arg;
        /* the owner word is a handle (generation in the top bits, bit 0: waiters) */
        uintptr_t word = m ? (uintptr_t)__atomic_load_n(&m->owner, __ATOMIC_RELAXED) : 0;
        const struct green *own = (const struct green *)(word & GREEN_PTR_MASK & ~(uintptr_t)1);
        green__outf(o, " obj=%p", (const void *)m);
        if (own)
            green__outf(o, " owner=%llu", (unsigned long long)own->id);
        break;
    }
    case GW_POOL: {
        Dl_info di;
        if (!o->in_signal && dladdr(g->arg, &di) && di.dli_sname)
            green__outf(o, " job=%s", di.dli_sname);
        else
            green__outf(o, " job=%p", g->arg);
        break;
    }
    case GW_SLEEP:
    case GW_PARK:
        break;
    default:
        if (g->arg)
            green__outf(o, " obj=%p", g->arg);
    }
    if (timer_armed(g))
        green__outf(o, " %s=%lld in=%lldms", k == GW_SLEEP ? "until" : "deadline",
                    (long long)g->timer.when, (long long)((int64_t)g->timer.when - now));
}

static void dump_one(struct green_hub *h, struct green *g, void *arg)
{
    struct dump_ctx *d = arg;
    struct green_out *o = d->o;
    if ((g == h->current) != d->only_current)
        return;
    int state = g->state;
    green__outf(o, "green %llu \"%s\" state=%s", (unsigned long long)g->id, green__name(g),
                state <= GS_MOVING ? state_names[state] : "?");
    if (state == GS_WAITING)
        describe_wait(o, h, g, d->now);
    if (state == GS_READY && !(g->flags & GF_STARTED))
        green__outf(o, " started=no");
    if ((g->flags & GF_STARTED) && (state == GS_READY || state == GS_WAITING || state == GS_DEAD))
        green__outf(o, " for=%ums", (unsigned)((uint32_t)d->now - g->dbg.since));
    if (g->flags & GF_SPAWNED) {
        green__outf(o, " spawner=%llu", (unsigned long long)g->spawner);
    } else if (!(g->flags & GF_ROOT)) {
        const struct green *p = green__parent_of(g);
        if (p && __atomic_load_n(&p->gen, __ATOMIC_RELAXED) == g->parent_gen && p->state != GS_FREE)
            green__outf(o, " parent=%llu", (unsigned long long)p->id);
    }
    if (g->flags & GF_CANCELLED)
        green__outf(o, " killed");
    if (g->flags & GF_ROOT) {
        green__outf(o, " stack=root");
    } else if (g->flags & GF_SHARED) {
        green__outf(o, " stack=shared saved=%u hwm=%zu", state == GS_DEAD ? 0u : g->size, hwm_of(h, g));
    } else {
        void *lo;
        size_t size = g->size ? g->size : green__default_stack_size();
        if (g->s.stack)
            green__stack_bounds(g->s.stack, &lo, &size);
        green__outf(o, " stack=dedicated size=%zu hwm=%zu", size,
                    state == GS_DEAD ? (size_t)0 : hwm_of(h, g));
    }
    green__outf(o, "\n");
    green__backtrace_of(o, h, g);
}

void green__dump_hub(struct green_out *o, struct green_hub *h)
{
    struct dump_ctx d = {.o = o, .now = green_now()};
    green__outf(o, "hub %p thread %d: %llu green threads (root excluded), switches=%llu loops=%llu "
                   "ready=%llu waiting=%llu fds=%llu\n",
                (void *)h, h->tid, (unsigned long long)h->alive, (unsigned long long)h->switches,
                (unsigned long long)h->loops, (unsigned long long)h->nready,
                (unsigned long long)h->nwaiting, (unsigned long long)h->nfds);
    /* the running one first: it is what holds the hub */
    d.only_current = 1;
    for_each(h, dump_one, &d);
    d.only_current = 0;
    for_each(h, dump_one, &d);
    green__out_flush(o);
}

int green_dump(FILE *f)
{
    if (!f) {
        errno = EINVAL;
        return -1;
    }
    struct green_hub *h = green__hub_fast();
    if (!h) {
        errno = ENOMEM;
        return -1;
    }
    /* libunwind, loaded by the first report (backtrace.c) */
    green__debug_prepare_unwind();
    struct green_out o = {.f = f};
    green__dump_hub(&o, h);
    if (!o.err) { /* the last of the FILE's buffer, SIGPIPE-safe as green__out_flush */
        struct green_sigpipe sp;
        green__sigpipe_hold(&sp);
        o.err = fflush(f) != 0;
        green__sigpipe_release(&sp, o.err ? errno : 0);
    }
    if (o.err) {
        errno = EIO;
        return -1;
    }
    return 0;
}
