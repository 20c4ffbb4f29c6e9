/*
 * green.c — green threads: greenlet's primitive (layer 3, greenlet.h): control blocks
 * and their extension, handles, creation, explicit switching (with the relay context
 * for the switches that cannot be made in place), death and release; and the patch
 * library's view of a green thread (its slot, its attributes).
 *
 * A green thread is a control block (struct green) plus, once started, a stack: a
 * dedicated slot (stack.c) or the hub's shared stack. Switching is explicit: green_switch
 * saves the caller and resumes the target; when a green thread's function returns, its
 * result goes to its parent (its nearest live ancestor), unless the hub scheduled it,
 * in which case the hub picks what runs next.
 *
 * Invariants:
 *  - exactly one green thread per hub is GS_RUNNING: h->current;
 *  - a shared-mode green thread's frames are on the shared stack iff it is the stack's
 *    owner; otherwise (if started) they are in g->s.saved. The copying (the stack
 *    layer's, inline) is done where it is safe: on the caller's stack when the caller
 *    does not run on the shared stack, otherwise on the hub's small relay context;
 *  - a dead green thread's stack is released by whichever context runs next
 *    (h->dying), never while still standing on it;
 *  - control blocks are type-stable: freed ones go to a per-hub free list with their
 *    generation bumped, so a stale handle is detected, not dereferenced into freed memory.
 */

#include "greenlet.h"
#include "sched.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static uint64_t id_counter;

/* Chunks of control blocks are never unmapped (type-stable memory). A hub owns the
 * chunks it mapped; when its OS thread exits, every block in them is invalidated and
 * the chunks go to the orphans, from which new hubs take before mapping more. */
struct block_chunk {
    struct block_chunk *next;
    char *base;
    int shared;
    unsigned carved; /* blocks handed to a free list so far; the rest were never touched */
};
static pthread_mutex_t orphans_lock = PTHREAD_MUTEX_INITIALIZER;
static struct block_chunk *orphans;
#define BLOCKS_PER_CHUNK 4096
#define BLOCKS_PER_CARVE 64   /* the first batch handed to the free list: 7 KiB, 15 KiB shared */

/* For dump.c's walk over a hub's green threads. */
struct block_chunk *green__chunk_next(const struct block_chunk *c) { return c->next; }
char *green__chunk_blocks(const struct block_chunk *c, size_t *bsize)
{
    *bsize = c->shared ? GREEN_SHARED_BLOCK : sizeof(struct green);
    return c->base;
}
size_t green__chunk_count(const struct block_chunk *c) { return __atomic_load_n(&c->carved, __ATOMIC_ACQUIRE); }

/* ---- control blocks ---- */

/* Blocks come in chunks mapped straight from the kernel: already zero, no memset. A
 * chunk is carved BLOCKS_PER_CARVE blocks first, then doubling, so a hub that runs a few
 * green threads touches a few pages, not the chunk (448 KiB; 960 KiB of shared-mode blocks).
 * A hub's first chunk of a kind is faulted in page by page as it is carved; once a hub
 * has needed more, its next chunks are mapped populated (one mmap call faulting the
 * pages in costs less than a fault per page). */
void green__blocks_fork_hold(void) { green__sys.pthread_mutex_lock(&orphans_lock); }
void green__blocks_fork_release(void) { green__sys.pthread_mutex_unlock(&orphans_lock); }

static struct block_chunk *adopt_orphan(int shared)
{
    green__sys.pthread_mutex_lock(&orphans_lock);
    struct block_chunk **pp = &orphans;
    while (*pp && (*pp)->shared != shared)
        pp = &(*pp)->next;
    struct block_chunk *c = *pp;
    if (c)
        *pp = c->next;
    green__sys.pthread_mutex_unlock(&orphans_lock);
    return c;
}

/* Blocks [from, to) of c onto the free list, the lowest address first out. */
static void blocks_push(struct green_hub *h, struct block_chunk *c, unsigned from, unsigned to)
{
    size_t bsize = c->shared ? GREEN_SHARED_BLOCK : sizeof(struct green);
    struct green **list = c->shared ? &h->free_shared : &h->free_blocks;
    for (unsigned i = to; i-- > from;) {
        struct green *g = (struct green *)(void *)(c->base + i * bsize);
        g->next = *list;
        *list = g;
    }
}

static int blocks_refill(struct green_hub *h, int shared)
{
    /* the chunk being carved is the newest of its kind */
    struct block_chunk *node = h->chunks;
    while (node && node->shared != shared)
        node = node->next;
    int had = node != NULL;
    if (!node || node->carved == BLOCKS_PER_CHUNK) {
        size_t bsize = shared ? GREEN_SHARED_BLOCK : sizeof(struct green);
        if ((node = adopt_orphan(shared)) != NULL) {
            /* its carved blocks are all free (invalidated when it was orphaned) */
            blocks_push(h, node, 0, node->carved);
        } else {
            node = malloc(sizeof *node);
            char *c = mmap(NULL, BLOCKS_PER_CHUNK * bsize, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | (had ? MAP_POPULATE : 0), -1, 0);
            if (c == MAP_FAILED || !node) {
                if (c != MAP_FAILED)
                    munmap(c, BLOCKS_PER_CHUNK * bsize);
                free(node);
                errno = ENOMEM;
                return -1;
            }
            node->base = c;
            node->shared = shared;
            node->carved = 0;
            green_lsan_root(c, BLOCKS_PER_CHUNK * bsize);
        }
        node->next = h->chunks;
        __atomic_store_n(&h->chunks, node, __ATOMIC_RELEASE); /* dump.c may walk it from another hub */
        if (node->carved)
            return 0;
    }
    /* 64, then as many as carved so far: a hub that needs many blocks gets them in a few
     * steps early on, not a page at a time as its peak creeps up */
    unsigned to = node->carved + (node->carved > BLOCKS_PER_CARVE ? node->carved : BLOCKS_PER_CARVE);
    if (to > BLOCKS_PER_CHUNK)
        to = BLOCKS_PER_CHUNK;
    blocks_push(h, node, node->carved, to);
    __atomic_store_n(&node->carved, to, __ATOMIC_RELEASE); /* ditto: the blocks first */
    return 0;
}

/* The OS thread is gone: invalidate every handle into its blocks and hand the chunks
 * to other hubs. */
void green__blocks_orphan(struct green_hub *h)
{
    struct block_chunk *c = h->chunks;
    while (c) {
        struct block_chunk *next = c->next;
        size_t bsize = c->shared ? GREEN_SHARED_BLOCK : sizeof(struct green);
        for (size_t i = 0; i < c->carved; i++) {
            struct green *g = (struct green *)(void *)(c->base + i * bsize);
            if (g->state != GS_FREE) {
                /* mutexes it holds pass on as owner-dead (sync.c), to other hubs' waiters */
                if (g->ext && g->ext->held && h->held_hook)
                    h->held_hook(h, g);
                green__ext_free(g->ext);
                if (g->flags & GF_SHARED)
                    green__shared_saved_release(h, g);
                __atomic_store_n(&g->gen, (uint16_t)(g->gen + 1), __ATOMIC_RELAXED);
                g->state = GS_FREE;
            }
        }
        green__sys.pthread_mutex_lock(&orphans_lock);
        c->next = orphans;
        orphans = c;
        green__sys.pthread_mutex_unlock(&orphans_lock);
        c = next;
    }
    h->chunks = NULL;
}

struct green *green__block_new(struct green_hub *h, int shared)
{
    struct green **list = shared ? &h->free_shared : &h->free_blocks;
    if (!*list && blocks_refill(h, shared) != 0)
        return NULL;
    struct green *g = *list;
    *list = g->next;
    /* A copy of a zero block rather than memset, which x86-64 GCC makes a `rep stos`
     * (slow to start: it was a sixth of a create-run-destroy cycle). */
    static const struct green zero_block;
    uint16_t gen = g->gen;
    *g = zero_block;
    g->gen = gen;
    g->timer.slot = GREEN_TIMER_IDLE;
    __atomic_store_n(&g->hub, h, __ATOMIC_RELAXED);
    green_list_init(&g->timer.link);
    if (h->id_next == h->id_end) {
        h->id_next = __atomic_fetch_add(&id_counter, 1024, __ATOMIC_RELAXED) + 1;
        h->id_end = h->id_next + 1024;
    }
    g->id = h->id_next++;
    if (shared)
        g->flags = GF_SHARED;
    return g;
}

void green__block_free(struct green_hub *h, struct green *g)
{
    green__ext_free(g->ext);
    g->ext = NULL;
    int shared = (g->flags & GF_SHARED) != 0;
    if (shared && g->s.saved) {
        if (g->state != GS_DEAD)
            h->saved_bytes -= g->size;
        green__shared_saved_release(h, g);
    }
#if GREEN_TSAN
    if (g->tsan_fiber && !(g->flags & GF_ROOT))
        green_tsan_destroy(g->tsan_fiber);
    g->tsan_fiber = NULL;
#endif
    __atomic_store_n(&g->gen, (uint16_t)(g->gen + 1), __ATOMIC_RELAXED);
    g->state = GS_FREE;
    struct green **list = shared ? &h->free_shared : &h->free_blocks;
    g->next = *list;
    *list = g;
}


struct green_ext *green__ext(struct green *g)
{
    if (!g->ext) {
        g->ext = calloc(1, sizeof *g->ext);
        if (!g->ext) {
            errno = ENOMEM;
            return NULL;
        }
        g->ext->tmo = -1;
    }
    return g->ext;
}

void green__ext_free(struct green_ext *x)
{
    if (x) {
        free(x->tmo_saved);
        free(x);
    }
}

void green__ext_trim(struct green *g)
{
    struct green_ext *x = g->ext;
    if (x && x->depth == 0 && !x->name && !x->held && !x->on_death && !x->local &&
        !x->kill_shields && !x->kill_held && !x->xjoin) {
        green__ext_free(x); /* most green threads never need it again */
        g->ext = NULL;
    }
}

int green__on_death(struct green *g, void (*fn)(struct green_hub *, struct green *, void *), void *arg)
{
    struct green_ext *x = green__ext(g);
    if (!x)
        return -1;
    x->on_death = fn;
    x->on_death_arg = arg;
    return 0;
}

void green__died(struct green_hub *h, struct green *g)
{
    struct green_ext *x = g->ext;
    if (x && x->on_death) {
        void (*fn)(struct green_hub *, struct green *, void *) = x->on_death;
        x->on_death = NULL;
        fn(h, g, x->on_death_arg);
    }
}

/* ---- handles ---- */

struct green *green__resolve(struct green_hub *h, green_t handle)
{
    uintptr_t v = (uintptr_t)handle;
    struct green *g = (struct green *)(v & GREEN_PTR_MASK);
    if (!g) {
        errno = EINVAL;
        return NULL;
    }
    uint16_t gen = (uint16_t)(v >> 48);
    if (__atomic_load_n(&g->gen, __ATOMIC_RELAXED) != gen) {
        errno = ESRCH;
        return NULL;
    }
    /* one of ours set aside in our ring (stealing, hubs.c) is taken back before anything
     * reads or writes it: a thief may be taking it right now */
    if (GREEN_UNLIKELY(h->stealing) && green__ring_busy(h) && __atomic_load_n(&g->hub, __ATOMIC_ACQUIRE) == h &&
        green__ring_unlink(h, g)) {
        errno = EXDEV;
        return NULL;
    }
    if (__atomic_load_n(&g->hub, __ATOMIC_RELAXED) != h) {
        errno = EXDEV;
        return NULL;
    }
    if (g->state == GS_FREE) {
        errno = ESRCH;
        return NULL;
    }
    return g;
}

struct green *green__resolve_any(green_t handle, struct green_hub **hub)
{
    uintptr_t v = (uintptr_t)handle;
    struct green *g = (struct green *)(v & GREEN_PTR_MASK);
    if (!g) {
        errno = EINVAL;
        return NULL;
    }
    /* the hub first: the generation read after it is at least as new */
    struct green_hub *gh = __atomic_load_n(&g->hub, __ATOMIC_ACQUIRE);
    if (__atomic_load_n(&g->gen, __ATOMIC_ACQUIRE) != (uint16_t)(v >> 48) || !gh) {
        errno = ESRCH;
        return NULL;
    }
    /* ours, but maybe in our ring (see green__resolve): taken back, or gone to a thief.
     * g->hub is read again after the ring's mask: a theft seen done there is seen here */
    if (gh == green__tls_hub && GREEN_UNLIKELY(gh->stealing)) {
        if (green__ring_busy(gh))
            green__ring_unlink(gh, g);
        gh = __atomic_load_n(&g->hub, __ATOMIC_ACQUIRE);
    }
    *hub = gh;
    return g;
}

/* ---- switching ---- */

static inline void stack_of(struct green_hub *h, const struct green *g, void **lo, size_t *size)
{
    if (g->flags & GF_SHARED) {
        *lo = h->shared.lo;
        *size = (size_t)(h->shared.hi - h->shared.lo);
    } else if (g->flags & GF_ROOT) {
        *lo = h->root_lo;
        *size = h->root_size;
    } else {
        green__stack_bounds(g->s.stack, lo, size);
    }
}

/* The actual swap, with the sanitizers' fiber bookkeeping around it. `to` is NULL for
 * the relay context. */
static inline void *swap(struct green_hub *h, green_ctx_t *from, int dying, struct green *to,
                         green_ctx_t *to_ctx, void *value)
{
#if GREEN_ASAN
    void *lo;
    size_t size;
    if (to) {
        stack_of(h, to, &lo, &size);
    } else {
        lo = h->relay_stack;
        size = green__relay_size();
    }
    void *fake = NULL;
    green_asan_start(dying ? NULL : &fake, lo, size);
#endif
#if GREEN_TSAN
    green_tsan_switch(to ? to->tsan_fiber : h->relay_fiber);
#endif
    void *r = green_ctx_swap(from, to_ctx, value);
#if GREEN_ASAN
    green_asan_finish(fake);
#endif
    (void)h, (void)dying, (void)to;
    return r;
}

static void entry(void *value);

/* Make the shared stack hold t's frames (stack.h copies them) and, if t never ran, give
 * it its first context there. Runs on a stack other than the shared one. Inline in the
 * relay, which every switch between two shared-mode green threads goes through; out of
 * line for the general switch, whose other paths (first runs and deaths of dedicated
 * ones) must not pay for the copies' code. */
static inline void shared_take_inline(struct green_hub *h, struct green *t)
{
    green__shared_take(h, t);
    if (!(t->flags & GF_STARTED))
        green_ctx_make(&t->ctx, h->shared.hi, entry);
}

static __attribute__((noinline)) GREEN_SWITCH_PATH void shared_take(struct green_hub *h, struct green *t)
{
    shared_take_inline(h, t);
}

/* What green__release does; inline where a dead green thread is buried on the relay. */
static inline __attribute__((always_inline)) void release(struct green_hub *h, struct green *g)
{
    if (GREEN_UNLIKELY(green__hwm_track))
        green__stack_reaped(h, g); /* its stack's high-water mark, into the histogram */
    if (g->flags & GF_SHARED) {
        green__shared_saved_release(h, g);
    } else if (!(g->flags & GF_ROOT) && g->s.stack) {
        green__stack_put(h, g->s.stack);
        g->s.stack = NULL;
    }
    if (g->flags & GF_DETACHED) {
        green__count(&h->alive, -1);
        green__block_free(h, g);
    }
}

/* Release what a dead green thread leaves behind, once nothing runs on its stack. On the
 * relay (`inlined`), which every shared-mode death goes through, without a call. */
static inline __attribute__((always_inline)) void bury(struct green_hub *h, int inlined)
{
    struct green *d = h->dying;
    if (!d)
        return;
    h->dying = NULL;
#if GREEN_ASAN
    /* Its last frames never returned: clear their poison before the memory is
     * reused by another green thread. */
    char *sp = green_ctx_sp(&h->dead_ctx);
    char *top = (d->flags & GF_SHARED) ? h->shared.hi : (char *)green__stack_top(d->s.stack);
    if (!(d->flags & GF_ROOT) && sp < top)
        green_asan_unpoison(sp, (size_t)(top - sp));
#endif
#if GREEN_TSAN
    if (d->tsan_fiber) { /* TSan counts fibers as threads (8K at most): free it now */
        green_tsan_destroy(d->tsan_fiber);
        d->tsan_fiber = NULL;
    }
#endif
    if (inlined)
        release(h, d);
    else
        green__release(h, d);
}

/*
 * The relay: a small context of the hub's own, on its own stack. Switches that cannot
 * be done from where they start go through it: leaving a dead green thread (its stack
 * must be released after nobody stands on it) and moving frames on or off the shared
 * stack while standing on it. So the ordinary switch has nothing to do afterwards.
 */
static GREEN_SWITCH_PATH void relay_main(void *unused)
{
    (void)unused;
    struct green_hub *h = green__tls_hub;
    green_asan_finish(NULL);
    for (;;) {
        int saved_errno = errno; /* set by the switcher for the one resumed */
        bury(h, 1);
        struct green *to = h->relay_to;
        if ((to->flags & GF_SHARED) && h->shared.owner != to)
            shared_take_inline(h, to);
        to->flags |= GF_STARTED;
        errno = saved_errno;
        swap(h, &h->relay_ctx, 0, to, &to->ctx, h->relay_value);
    }
}

int green__relay_init(struct green_hub *h)
{
    if (green__relay_stack(h) != 0)
        return -1;
    green_ctx_make(&h->relay_ctx, h->relay_stack + green__relay_size(), relay_main);
    return 0;
}

/* Give `to` a stack if it has never run, and its first context if the stack is ready
 * (resident); a reserved one is bound at its first run (first_context). 0, or
 * -1/ENOMEM. */
int green__prepare(struct green_hub *h, struct green *to)
{
    if (to->flags & (GF_STARTED | GF_SHARED) || to->s.stack)
        return 0;
    int ready = green__stack_get(h, to);
    if (ready <= 0)
        return ready;
    if (!green__stack_guarded(to->s.stack))
        to->flags |= GF_UNGUARDED;
    green_ctx_make(&to->ctx, green__stack_top(to->s.stack), entry);
    return 0;
}

/* A dedicated-stack green thread whose stack was only reserved, about to run for the
 * first time: its stack (green__stack_bind) and its first context. */
static __attribute__((noinline)) void first_context(struct green_hub *h, struct green *to)
{
    green__stack_bind(h, to);
    green_ctx_make(&to->ctx, green__stack_top(to->s.stack), entry);
}

/* green__switch's general case. errno, set by the caller for the one resumed, is kept. */
GREEN_SWITCH_PATH void *green__switch_slow(struct green_hub *h, struct green *to, void *value)
{
    if (!(to->flags & (GF_STARTED | GF_SHARED)) && !green_ctx_made(&to->ctx))
        first_context(h, to); /* before a dying caller's stack is pooled: not that one */
    struct green *from = h->current;
    int dying = from->state == GS_DEAD;
    uint8_t from_flags = from->flags;

    if ((from_flags & GF_UNGUARDED) && !dying)
        green__stack_check(from);
    h->current = to;
    to->state = GS_RUNNING;
    green__count(&h->switches, 1);
    int on_shared = (from_flags & GF_SHARED) && !(from_flags & GF_ROOT);
    int needs_copy = (to->flags & GF_SHARED) && h->shared.owner != to;
    if (dying && !GREEN_SANITIZE_FIBERS && !on_shared &&
        ((from_flags & GF_ROOT) || !from->s.stack || green__stack_home(h, from->s.stack))) {
        /* A dead green thread on a dedicated stack gives the stack back before it
         * leaves: the pool only links it, nothing reuses it before the swap below, and
         * that saves the trip through the relay. (Sanitizers must first be told the
         * fiber is gone, so they take the relay.) Not a stack of another hub's pool (a
         * green thread that moved here): released, it goes home at once, where that
         * hub may hand it out and write a new context on it while this thread still
         * stands on it (shared_take, the swap) — such a death takes the relay. */
        h->dying = from;
        bury(h, 0);
        if (needs_copy)
            shared_take(h, to);
        to->flags |= GF_STARTED;
        return swap(h, &h->dead_ctx, 1, to, &to->ctx, value);
    }
    if (dying || (needs_copy && on_shared)) {
        /* leaving a dead one, or standing on the shared stack that `to` needs */
        h->relay_to = to;
        h->relay_value = value;
        return swap(h, dying ? &h->dead_ctx : &from->ctx, dying, NULL, &h->relay_ctx, NULL);
    }
    if (needs_copy)
        shared_take(h, to);
    to->flags |= GF_STARTED;
    return swap(h, &from->ctx, 0, to, &to->ctx, value);
}

/* First frame of every green thread. */
static void entry(void *value)
{
    (void)value;
    green_asan_finish(NULL);
    struct green *g = green__tls_hub->current;
    void *r = NULL;
    if (!(g->flags & GF_CANCELLED) || !(g->flags & GF_SCHED))
        r = g->fn(g->arg);
    /* reloaded rather than kept: nothing held across fn keeps shared stacks shallow */
    green__finish(green__tls_hub, green__tls_hub->current, r);
}

struct green *green__live_ancestor(struct green *g)
{
    struct green_hub *h = g->hub;
    for (;;) {
        struct green *p = green__parent_of(g);
        if (!p || __atomic_load_n(&p->gen, __ATOMIC_RELAXED) != g->parent_gen || p->state == GS_FREE)
            return h->root;
        if (p->state != GS_DEAD)
            return p;
        g = p;
    }
}

void green__release(struct green_hub *h, struct green *g) { release(h, g); }

void green__finish(struct green_hub *h, struct green *g, void *result)
{
    if (GREEN_UNLIKELY(g->ext != NULL)) {
        if (g->ext->held && h->held_hook)
            h->held_hook(h, g); /* robust mutexes: hand them over as owner-dead */
        green__died(h, g);
    }
    g->arg = result;
    g->state = GS_DEAD;
    green__stamp(h, g);
    if (g->flags & GF_SHARED)
        h->shared.owner = NULL;
    if (green__joiner(g) && h->join_hook && !(g->flags & GF_SCHED))
        h->join_hook(h, g);
    if ((g->flags & GF_SCHED) && h->exit_hook)
        h->exit_hook(h, g); /* does not return */
    struct green *p = green__live_ancestor(g);
    if (p->state != GS_SUSPENDED && p->state != GS_NEW && h->exit_hook)
        h->exit_hook(h, g); /* the parent is under the hub's control */
    h->dying = g;
    errno = 0;
    green__switch(h, p, result);
    abort(); /* a dead green thread is never resumed */
}

/* ---- public API ---- */

/* g's name (NULL: none), kept in its extension: 0, or -1 + ENOMEM. */
static int name_set(struct green *g, const char *name)
{
    if (!name && !g->ext)
        return 0;
    struct green_ext *x = green__ext(g);
    if (!x)
        return -1;
    x->name = name;
    green__ext_trim(g);
    return 0;
}

struct green *green__create(struct green_hub *h, green_fn fn, void *arg, const green_attr_t *attr)
{
    if (!fn) {
        errno = EINVAL;
        return NULL;
    }
    size_t size = 0;
    int shared = 0;
    const char *name = NULL;
    if (attr) {
        if (attr->stack_mode != GREEN_STACK_DEDICATED && attr->stack_mode != GREEN_STACK_SHARED) {
            errno = EINVAL;
            return NULL;
        }
        shared = attr->stack_mode == GREEN_STACK_SHARED;
        size = attr->stack_size;
        name = attr->name;
        if (size) {
            size_t pg = green__page_size(); /* 4 KiB, or 16/64 KiB on some aarch64 kernels */
            if (size < 16 * 1024 || size > ((size_t)1 << 31)) {
                errno = EINVAL;
                return NULL;
            }
            size = (size + pg - 1) & ~(pg - 1);
        }
    }
    if (shared && green__shared_init(h) != 0)
        return NULL;
    struct green *g = green__block_new(h, shared);
    if (!g)
        return NULL;
    if (name && name_set(g, name) != 0) {
        green__block_free(h, g);
        return NULL;
    }
    g->fn = fn;
    g->arg = arg;
    g->state = GS_NEW;
#if GREEN_TSAN
    g->tsan_fiber = green_tsan_create();
    if (name)
        green_tsan_name(g->tsan_fiber, name);
#endif
    if (!shared)
        g->size = (uint32_t)size;
    g->parent = h->current;
    g->parent_gen = h->current->gen;
    green__count(&h->alive, 1);
    return g;
}

green_t green_new(green_fn fn, void *arg, const green_attr_t *attr)
{
    struct green_hub *h = green__hub_fast();
    if (!h) {
        errno = ENOMEM;
        return NULL;
    }
    if (attr && attr->hub != 0 && attr->hub != green_hub_self()) {
        errno = EINVAL; /* switched to explicitly: on the caller's hub only */
        return NULL;
    }
    struct green *g = green__create(h, fn, arg, attr);
    return g ? green__handle(g) : NULL;
}

static int switchable(const struct green *g)
{
    if (g->state == GS_NEW || g->state == GS_SUSPENDED)
        return 1;
    errno = EBUSY; /* parked or queued: the hub owns its wake-up (use green_kill) */
    return 0;
}

static __attribute__((noinline)) void *switch_slow(green_t handle, void *value)
{
    struct green_hub *h = green__hub_fast();
    if (!h) {
        errno = ENOMEM;
        return NULL;
    }
    struct green *g = green__resolve(h, handle);
    if (GREEN_UNLIKELY(!g))
        return NULL;
    if (g->state == GS_DEAD)
        g = green__live_ancestor(g);
    if (g == h->current) {
        errno = 0;
        return value;
    }
    if (GREEN_UNLIKELY(!switchable(g) || green__shared_spare_ready(h) != 0 ||
                       green__prepare(h, g) != 0))
        return NULL;
    h->current->state = GS_SUSPENDED;
    errno = 0;
    return green__switch(h, g, value);
}

GREEN_SWITCH_PATH void *green_switch(green_t handle, void *value)
{
    struct green_hub *h = green__tls_hub;
    struct green *g = (struct green *)((uintptr_t)handle & GREEN_PTR_MASK);
    /* fast path: a started, suspended green thread of ours, plain stacks on both sides */
    if (GREEN_LIKELY(h && g && __atomic_load_n(&g->gen, __ATOMIC_RELAXED) == (uint16_t)((uintptr_t)handle >> 48) &&
                     __atomic_load_n(&g->hub, __ATOMIC_RELAXED) == h && g->state == GS_SUSPENDED)) {
        struct green *from = h->current;
        if (!GREEN_SANITIZE_FIBERS && GREEN_LIKELY(!((from->flags | g->flags) & (GF_SHARED | GF_UNGUARDED)))) {
            from->state = GS_SUSPENDED;
            h->current = g;
            g->state = GS_RUNNING;
            green__count(&h->switches, 1);
            *h->errno_p = 0; /* errno is per OS thread: the resumed one sees this */
            return green_ctx_swap(&from->ctx, &g->ctx, value);
        }
    }
    return switch_slow(handle, value);
}

void *green_throw(green_t handle, int err)
{
    struct green_hub *h = green__hub_fast();
    struct green *g = green__resolve(h, handle);
    if (!g)
        return NULL;
    if (err <= 0) {
        errno = EINVAL;
        return NULL;
    }
    if (g == h->current) {
        errno = err;
        return NULL;
    }
    if (g->state == GS_NEW) {
        /* Dies without running; the throw lands in its parent. */
        g->state = GS_DEAD;
        g->arg = NULL;
        g = green__live_ancestor(g);
        if (g == h->current) {
            errno = err;
            return NULL;
        }
    } else if (g->state == GS_DEAD) {
        g = green__live_ancestor(g);
        if (g == h->current) {
            errno = err;
            return NULL;
        }
    }
    if (!switchable(g) || green__shared_spare_ready(h) != 0 || green__prepare(h, g) != 0)
        return NULL;
    h->current->state = GS_SUSPENDED;
    errno = err; /* what g's pending switch returns with */
    return green__switch(h, g, NULL);
}

green_t green_current(void)
{
    struct green_hub *h = green__hub_fast();
    return h ? green__handle(h->current) : NULL;
}

green_t green_root(void)
{
    struct green_hub *h = green__hub_fast();
    return h ? green__handle(h->root) : NULL;
}

green_t green_parent(green_t handle)
{
    struct green_hub *h = green__hub_fast();
    struct green *g = green__resolve(h, handle);
    if (!g)
        return NULL;
    if (g->flags & GF_ROOT) {
        errno = 0;
        return NULL;
    }
    struct green *p = green__parent_of(g);
    if (!p || __atomic_load_n(&p->gen, __ATOMIC_RELAXED) != g->parent_gen || p->state == GS_FREE)
        p = h->root;
    return green__handle(p);
}

int green_set_parent(green_t handle, green_t parent)
{
    struct green_hub *h = green__hub_fast();
    struct green *g = green__resolve(h, handle);
    if (!g)
        return -1;
    struct green *p = green__resolve(h, parent);
    if (!p)
        return -1;
    if (g->flags & GF_ROOT) {
        errno = EINVAL;
        return -1;
    }
    for (struct green *a = p; a; ) {
        if (a == g) {
            errno = EINVAL;
            return -1;
        }
        if (a->flags & GF_ROOT)
            break;
        struct green *n = green__parent_of(a);
        if (!n || __atomic_load_n(&n->gen, __ATOMIC_RELAXED) != a->parent_gen || n->state == GS_FREE)
            break;
        a = n;
    }
    g->flags &= (uint8_t)~GF_SPAWNED; /* its spawner's id gives way to the parent */
    g->parent = p;
    g->parent_gen = __atomic_load_n(&p->gen, __ATOMIC_RELAXED);
    return 0;
}

int green_started(green_t handle)
{
    struct green *g = green__resolve(green__hub_fast(), handle);
    if (!g)
        return -1;
    return (g->flags & GF_STARTED) || g->state == GS_DEAD ? 1 : 0;
}

int green_dead(green_t handle)
{
    struct green *g = green__resolve(green__hub_fast(), handle);
    if (!g)
        return -1;
    return g->state == GS_DEAD;
}

int green_destroy(green_t handle)
{
    struct green_hub *h = green__hub_fast();
    struct green *g = green__resolve(h, handle);
    if (!g)
        return -1;
    if (g->flags & GF_ROOT) {
        errno = EPERM;
        return -1;
    }
    if (g == h->current || ((g->flags & GF_SCHED) && g->state != GS_DEAD)) {
        errno = EBUSY;
        return -1;
    }
    if (green__zombie_keep(g) != 0)
        return -1; /* joined from another hub already */
    if (g->state == GS_SUSPENDED) {
        if (green__shared_spare_ready(h) != 0)
            return -1; /* ENOMEM */
        int saved = errno;
        g->flags &= (uint8_t)~GF_SPAWNED;
        g->parent = h->current;
        g->parent_gen = h->current->gen;
        h->current->state = GS_SUSPENDED;
        errno = ECANCELED;
        green__switch(h, g, NULL);
        errno = saved; /* whatever it handed back, we were not thrown at */
        if (g->state != GS_DEAD) {
            errno = EBUSY;
            return -1;
        }
    } else if (g->state != GS_NEW && g->state != GS_DEAD) {
        errno = EBUSY;
        return -1;
    }
    if (h->shared.owner == g)
        h->shared.owner = NULL;
    g->flags &= (uint8_t)~GF_DETACHED;
    green__release(h, g);
    green__count(&h->alive, -1);
    green__block_free(h, g);
    return 0;
}

uint64_t green_id(green_t handle)
{
    struct green *g = green__resolve(green__hub_fast(), handle);
    return g ? g->id : 0;
}

const char *green_name(green_t handle)
{
    struct green *g = green__resolve(green__hub_fast(), handle);
    if (!g)
        return NULL;
    return green__name(g);
}

int green_set_name(green_t handle, const char *name)
{
    struct green *g = green__resolve(green__hub_fast(), handle);
    if (!g || name_set(g, name) != 0)
        return -1;
#if GREEN_TSAN
    if (name)
        green_tsan_name(g->tsan_fiber, name);
#endif
    return 0;
}

/* ---- the patch library's view (green_private.h) ---- */

void *green_private_local(green_t handle)
{
    struct green_hub *h = green__tls_hub;
    if (!h)
        return NULL;
    struct green *g = h->current;
    if (handle) {
        int saved = errno;
        g = green__resolve(h, handle);
        errno = saved;
    }
    return g && g->ext && g->state != GS_DEAD ? g->ext->local : NULL;
}

int green_private_set_local(green_t handle, void *value)
{
    struct green_hub *h = green__hub_fast();
    if (!h) {
        errno = ENOMEM;
        return -1;
    }
    struct green *g = handle ? green__resolve(h, handle) : h->current;
    if (!g)
        return -1;
    if (!value && !g->ext)
        return 0;
    struct green_ext *x = green__ext(g);
    if (!x)
        return -1;
    x->local = value;
    return 0;
}

int green_private_attr(green_t handle, void **stack_lo, size_t *stack_size, int *detached)
{
    struct green_hub *h = green__hub_fast(), *gh;
    struct green *g = h ? green__resolve_any(handle, &gh) : NULL;
    if (!g)
        return -1;
    if (!stack_lo || !stack_size || !detached) {
        errno = EINVAL;
        return -1;
    }
    *stack_lo = NULL;
    *stack_size = 0;
    if (gh != h) {
        /* another hub's: its flags may change meanwhile, its stack (made with its block,
         * in memory its hub never frees) not; the generation, read again, says whether
         * it was still g */
        green_tsan_reads_begin();
        uint8_t flags = __atomic_load_n(&g->flags, __ATOMIC_ACQUIRE);
        struct green_stack *st = __atomic_load_n(&g->s.stack, __ATOMIC_RELAXED);
        if (!(flags & (GF_SHARED | GF_ROOT)) && st)
            green__stack_bounds(st, stack_lo, stack_size);
        green_tsan_reads_end();
        *detached = (flags & GF_DETACHED) != 0;
        if (__atomic_load_n(&g->gen, __ATOMIC_ACQUIRE) != (uint16_t)((uintptr_t)handle >> 48)) {
            *stack_lo = NULL;
            *stack_size = 0;
            errno = ESRCH;
            return -1;
        }
        return 0;
    }
    if (g->state == GS_FREE) {
        errno = ESRCH;
        return -1;
    }
    if (!(g->flags & (GF_SHARED | GF_ROOT)) && g->s.stack)
        green__stack_bounds(g->s.stack, stack_lo, stack_size);
    *detached = (g->flags & GF_DETACHED) != 0;
    return 0;
}

int green_private_peek(green_t handle, unsigned long *thread, const char **name)
{
    struct green_hub *gh;
    struct green *g = green__resolve_any(handle, &gh);
    if (!g)
        return -1;
    green_tsan_reads_begin(); /* racing with g's hub: the generation decides below */
    uint8_t state = __atomic_load_n(&g->state, __ATOMIC_ACQUIRE);
    /* the extension of another hub's green thread may be freed at any moment (trimmed
     * when it holds nothing) unless it holds the patch library's slot, which it keeps
     * until its green pthread ends: only then is the name read there */
    struct green_ext *x = __atomic_load_n(&g->ext, __ATOMIC_ACQUIRE);
    const char *n = NULL;
    if (x && (gh == green__tls_hub || __atomic_load_n(&x->local, __ATOMIC_ACQUIRE)))
        n = __atomic_load_n(&x->name, __ATOMIC_RELAXED);
    uint8_t flags = __atomic_load_n(&g->flags, __ATOMIC_RELAXED);
    green_tsan_reads_end();
    if (__atomic_load_n(&g->gen, __ATOMIC_ACQUIRE) != (uint16_t)((uintptr_t)handle >> 48) ||
        state == GS_FREE) {
        errno = ESRCH;
        return -1;
    }
    if (thread)
        *thread = gh->thread;
    if (name)
        *name = n ? n : (flags & GF_ROOT) ? "root" : "";
    return state == GS_DEAD;
}
