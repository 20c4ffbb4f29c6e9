/*
 * context.h — saving and restoring CPU state (layer 1).
 *
 * A context is what a suspended green thread needs to continue: for the assembly
 * backends only its stack pointer (the callee-saved registers and the FP control words
 * are pushed on its own stack); for the ucontext fallback a ucontext_t.
 * Nothing above this header knows which backend is in use.
 */
#ifndef GREEN_CONTEXT_H
#define GREEN_CONTEXT_H

#include <stddef.h>

#if defined(GREEN_CONTEXT_UCONTEXT)
#include <ucontext.h>
typedef struct green_ctx {
    ucontext_t uc;
    void (*entry)(void *);
} green_ctx_t;
#else
typedef struct green_ctx {
    void *sp;
} green_ctx_t;
#endif

/* Save the running context in *from, resume *to; `to` sees `value` returned from its
 * own green_ctx_swap (or, the first time, as the argument of its entry function).
 * Returns the value handed over when someone later swaps back to *from. */
void *green_ctx_swap(green_ctx_t *from, green_ctx_t *to, void *value);

/* Prepare *c to run entry(value) on the stack that ends (highest address) at top.
 * entry must never return. The new context inherits the caller's FP control words. */
void green_ctx_make(green_ctx_t *c, void *top, void (*entry)(void *));

/* The stack pointer saved in a suspended context (lowest live byte of its stack). */
void *green_ctx_sp(const green_ctx_t *c);

/* 1 once green_ctx_make has made c (a zeroed context was not). */
static inline int green_ctx_made(const green_ctx_t *c)
{
#if defined(GREEN_CONTEXT_UCONTEXT)
    return c->entry != NULL;
#else
    return c->sp != NULL;
#endif
}

#endif
