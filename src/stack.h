/*
 * stack.h — where green threads' frames live (layer 2, stack.c): dedicated stack slots
 * (pooled, guarded or canary-checked), the hub's shared stack and the copies of its
 * frames, the relay context's stack, the alternate signal stack, and stack high-water
 * marks.
 *
 * Invariants:
 *  - a dedicated stack belongs to one green thread at a time (s->owner) from its first
 *    run until it is released after its death; its low page is a guard, or, beyond the
 *    process's budget of guards, the slot is checked at every switch away from it
 *    (GF_UNGUARDED: stack pointer above the bottom, the canary below intact);
 *  - a started shared-mode green thread's frames are on the shared stack iff it is
 *    h->shared.owner; otherwise they are in g->s.saved (g->size bytes: the room inline
 *    in its block, a heap buffer, or the hub's lent spare), counted in h->saved_bytes;
 *  - the copies run on a stack other than the shared one (the caller's, or the relay's)
 *    and never fail: a copy-out malloc cannot hold goes to the hub's spare, and while
 *    the spare is lent and not replaced, parks, yields and switches fail with ENOMEM
 *    before they start (green__shared_spare_ready).
 * The copies are static inline here: they are the switch path of shared-mode green
 * threads (green.c), which pays no call for them.
 */
#ifndef GREEN_STACK_H
#define GREEN_STACK_H

#include "core.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

/* ---- dedicated stacks ---- */
/* g->s.stack, a dedicated stack of h's pool: 1 when its pages are resident (a dead green
 * thread's) and it is ready to run on; 0 when it is a reservation (a fresh or trimmed
 * slot, untouched), to be bound at g's first run; -1 + ENOMEM. */
int green__stack_get(struct green_hub *h, struct green *g);
/* g's first run on h is next and its stack is a reservation: a pooled stack of h's whose
 * pages are resident takes its place, and the reserved one goes back untouched; one of
 * another hub's pool (g moved before it ran) is exchanged for one of h's. So green
 * threads made long before they run (a fan-out of 100,000) touch only as many stacks as
 * run at once. Sets GF_UNGUARDED as the stack is. */
void green__stack_bind(struct green_hub *h, struct green *g);
void green__stack_put(struct green_hub *h, struct green_stack *s);
void *green__stack_top(const struct green_stack *s);
void green__stack_bounds(const struct green_stack *s, void **lo, size_t *size);
void green__stack_check(const struct green *g);                /* canary + sp limit */
int green__stack_guarded(const struct green_stack *s);
/* s belongs to h's pool: released there, it is only linked and reused by h's thread alone
 * (another hub's goes home at once, to a list its hub may take from at any moment). */
int green__stack_home(const struct green_hub *h, const struct green_stack *s);
size_t green__default_stack_size(void);
size_t green__page_size(void);      /* the kernel's, which stacks and guards are made of */
/* Tests: behave as on a kernel with pages at least this big (set before the first stack;
 * 16 or 64 KiB pages happen on aarch64). */
extern size_t green__page_size_min;
void green__stack_stats(uint64_t *guarded, uint64_t *unguarded);
void green__stack_trim(struct green_hub *h);  /* the hub idles: give cold stacks' pages back */
void green__overflow_abort(const struct green *g, size_t size) __attribute__((noreturn));

/* ---- per hub: the alternate signal stack (overflow reports), teardown of them all ---- */
int green__altstack_init(struct green_hub *h);
void green__stacks_destroy(struct green_hub *h);

/* ---- the relay context's stack (green.c runs the relay on it) ---- */
size_t green__relay_size(void);
int green__relay_stack(struct green_hub *h);

/* ---- high-water marks ---- */
size_t green__stack_hwm(struct green_stack *s, int clean); /* deepest byte used; clean: zero it */
extern int green__hwm_track;                      /* GREEN_STACK_HWM: measure stacks at reap */
void green__stack_reaped(struct green_hub *h, struct green *g); /* before its stack goes */
/* The bucket of the high-water mark histograms (green_stats): 1 KiB << b. */
static inline unsigned green__hwm_bucket(size_t bytes)
{
    unsigned b = 0;
    while (b < 15 && bytes > ((size_t)1024 << b))
        b++;
    return b;
}

/* ---- the shared stack ---- */
int green__shared_init(struct green_hub *h);                   /* map it (once per hub) */
char *green__shared_spare_take(struct green_hub *h, struct green *g); /* NULL: none */
void green__shared_spare_return(struct green_hub *h, struct green *g);
int green__shared_spare_renew(struct green_hub *h);             /* 0, or -1/ENOMEM */
/* Before a park, yield or switch: a copy-out about to happen must not find the spare lent. */
static inline int green__shared_spare_ready(struct green_hub *h)
{
    return GREEN_LIKELY(!h->shared.spare_user) ? 0 : green__shared_spare_renew(h);
}
void green__shared_copy_failed(void) __attribute__((noreturn, cold));

/* A shared-mode green thread's copy of its frames goes: a heap buffer freed, the hub's
 * spare given back; the inline one stays with the block. */
static inline void green__shared_saved_release(struct green_hub *h, struct green *g)
{
    void *b = g->s.saved;
    if (b && b != green__inline_stack(g)) {
        if (h->shared.spare_user == g)
            green__shared_spare_return(h, g);
        else
            free(b);
    }
    g->s.saved = NULL;
}

/* o leaves the shared stack: its used part (from its saved stack pointer to the top)
 * goes to the room inline in its block when it fits, else to a heap buffer. */
static inline void green__shared_copy_out(struct green_hub *h, struct green *o)
{
    char *sp = green_ctx_sp(&o->ctx);
    size_t n = (size_t)(h->shared.hi - sp);
    char *inl = green__inline_stack(o);
    void *buf = o->s.saved;
    if (n <= GREEN_INLINE_STACK) {
        green__shared_saved_release(h, o);
        buf = inl;
    } else if (!buf || buf == inl || malloc_usable_size(buf) < n || malloc_usable_size(buf) >= n + 32) {
        /* a heap buffer of the right size class; the one kept from the last resume is
         * reused when it fits */
        green__shared_saved_release(h, o);
        buf = malloc(n);
        if (!buf) /* mid-switch: nothing can fail here, so the hub's spare takes them */
            buf = green__shared_spare_take(h, o);
        if (!buf)
            green__shared_copy_failed();
    }
    green_asan_unpoison(sp, n);
    memcpy(buf, sp, n);
    o->s.saved = buf;
    o->size = (uint32_t)n;
    if ((n + 15) / 16 > o->dbg.hwm) /* its high-water mark, for green_dump and green_stats */
        o->dbg.hwm = (n + 15) / 16 < (1u << 24) ? (uint32_t)(n + 15) / 16 : (1u << 24) - 1;
    h->saved_bytes += n;
    h->copied_bytes += n;
}

/* t's frames back where they ran, at the top of the shared stack. */
static inline void green__shared_copy_in(struct green_hub *h, struct green *t)
{
    size_t n = t->size;
    char *dst = h->shared.hi - n;
    green_asan_unpoison(dst, n);
    green_vg_writable(dst, n);
    memcpy(dst, t->s.saved, n);
    if (GREEN_UNLIKELY(h->shared.spare_user == t))
        green__shared_spare_return(h, t);
    h->saved_bytes -= n;
    h->copied_bytes += n;
    /* The buffer is kept for the next copy-out; its content is now stale. */
}

/* Make the shared stack hold t's frames: the owner's go to its copy, t's (if it ever
 * ran) come back from theirs. Runs on a stack other than the shared one; the caller
 * gives a t that never ran its first context. */
static inline void green__shared_take(struct green_hub *h, struct green *t)
{
    struct green *o = h->shared.owner;
    if (o && o != t && o->state != GS_DEAD && o->state != GS_FREE)
        green__shared_copy_out(h, o);
    if (t->flags & GF_STARTED)
        green__shared_copy_in(h, t);
    else
        green_vg_writable(h->shared.hi - 256, 256);
    h->shared.owner = t;
}

#endif /* GREEN_STACK_H */
