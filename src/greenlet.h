/*
 * greenlet.h — green threads as greenlet has them (layer 3, green.c): control blocks
 * and their extension, handles, creation, explicit switching, death and release.
 *
 * Invariants:
 *  - exactly one green thread per hub is GS_RUNNING: h->current;
 *  - a handle is the block's address with its generation in the top 16 bits; blocks are
 *    type-stable and a freed one's generation is bumped, so a stale handle resolves to
 *    ESRCH, one of another hub to EXDEV;
 *  - a dead green thread's stack is released by whichever context runs next (h->dying),
 *    never while still standing on it;
 *  - a green thread's parent is its nearest live ancestor when it finishes; a spawned
 *    one's is the root (GF_SPAWNED), and the hub (the scheduler's exit_hook) picks what
 *    runs after it.
 */
#ifndef GREEN_GREENLET_H
#define GREEN_GREENLET_H

#include "stack.h"

/* ---- the rarely needed extension of a control block ---- */
struct green_ext *green__ext(struct green *g); /* NULL + ENOMEM */
void green__ext_free(struct green_ext *x);
void green__ext_trim(struct green *g);   /* frees g->ext when nothing in it is in use */
/* Run fn(h, g, arg) when g finishes or is killed before it ran; one per green thread. */
int green__on_death(struct green *g, void (*fn)(struct green_hub *, struct green *, void *), void *arg);
void green__died(struct green_hub *h, struct green *g); /* runs the on_death callback */

/* ---- handles ---- */
#define GREEN_PTR_MASK ((((uintptr_t)1) << 48) - 1)
static inline green_t green__handle(const struct green *g)
{
    return (green_t)((uintptr_t)g | ((uintptr_t)__atomic_load_n(&g->gen, __ATOMIC_RELAXED) << 48));
}
/* Resolve a handle of this thread's hub; NULL + errno (EINVAL, ESRCH, EXDEV). */
struct green *green__resolve(struct green_hub *h, green_t handle);
/* Resolve a handle of any hub: g and its hub now (*hub, which may change unless it is the
 * caller's); NULL + errno (EINVAL, ESRCH). g's state is not read: only its hub may. */
struct green *green__resolve_any(green_t handle, struct green_hub **hub);

/* g's parent, NULL meaning the root (a spawned one's parent is always the root). */
static inline struct green *green__parent_of(const struct green *g)
{
    return (g->flags & GF_SPAWNED) ? NULL : g->parent;
}
struct green *green__live_ancestor(struct green *g);

/* ---- control blocks ---- */
struct green *green__block_new(struct green_hub *h, int shared);
void green__block_free(struct green_hub *h, struct green *g);
void green__blocks_orphan(struct green_hub *h);   /* its thread is gone: blocks to other hubs */
/* fork(): the orphaned chunks are held across it (hold before, release after, in parent
 * and child), so that the child's new hub never finds their lock taken by a thread the
 * child does not have. */
void green__blocks_fork_hold(void);
void green__blocks_fork_release(void);
/* The walk over a hub's blocks (dump.c): its chunks, and the blocks of each. */
struct block_chunk *green__chunk_next(const struct block_chunk *c);
char *green__chunk_blocks(const struct block_chunk *c, size_t *bsize);
size_t green__chunk_count(const struct block_chunk *c); /* its blocks carved so far */

/* ---- life ---- */
struct green *green__create(struct green_hub *h, green_fn fn, void *arg, const green_attr_t *attr);
int green__prepare(struct green_hub *h, struct green *to); /* a stack and a context, if new */
int green__relay_init(struct green_hub *h);
void green__finish(struct green_hub *h, struct green *g, void *result) __attribute__((noreturn));
void green__release(struct green_hub *h, struct green *g); /* stack of a dead one; frees detached */

/* ---- switching ---- */
void *green__switch_slow(struct green_hub *h, struct green *to, void *value);

/* Switch from the current green thread to `to` (alive, not current, prepared). The
 * caller has set the current one's new state. Returns the value handed back later.
 * The common case (dedicated or root stacks, both started, no sanitizer) is this much:
 * nothing happens after the swap, so callers can make it a tail call. Everything else
 * (shared stacks, first runs, guard-less stacks, a dying caller) goes slow. errno is
 * per OS thread, so what the caller sets before is what the resumed one sees. */
static inline void *green__switch(struct green_hub *h, struct green *to, void *value)
{
    struct green *from = h->current;
    if (GREEN_SANITIZE_FIBERS || GREEN_UNLIKELY(from->state == GS_DEAD || (from->flags & GF_UNGUARDED)))
        return green__switch_slow(h, to, value);
    if (GREEN_LIKELY(!((from->flags | to->flags) & GF_SHARED) && (to->flags & GF_STARTED))) {
        h->current = to;
        to->state = GS_RUNNING;
        green__count(&h->switches, 1);
        return green_ctx_swap(&from->ctx, &to->ctx, value);
    }
    if ((from->flags & to->flags & GF_SHARED) && h->shared.owner != to) {
        /* both on the shared stack: the relay moves the frames (kept inline so that a
         * parked shared-mode green thread's saved stack stays shallow) */
        h->current = to;
        to->state = GS_RUNNING;
        green__count(&h->switches, 1);
        h->relay_to = to;
        h->relay_value = value;
        return green_ctx_swap(&from->ctx, &h->relay_ctx, NULL);
    }
    return green__switch_slow(h, to, value);
}

#endif /* GREEN_GREENLET_H */
