/*
 * context_ucontext.c — portable fallback context switch on ucontext (getcontext,
 * makecontext, swapcontext), selected with -DGREEN_CONTEXT=ucontext.
 *
 * swapcontext saves the signal mask with a system call, so this backend is some 20-30x
 * slower than the assembly ones; it exists for architectures without them. The value
 * handed over travels in a thread-local slot, since swapcontext passes none.
 *
 * The signal mask belongs to the OS thread, as on the assembly backends: swapcontext
 * would install the one the target had when it last ran (a signal one green thread
 * blocked for green_signal_wait would then be unblocked by the next switch, and
 * delivered to its default action), so the target is given the current mask first.
 */

#include "context.h"
#include "sys.h"

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static __thread void *handover __attribute__((tls_model("initial-exec")));

void *green_ctx_swap(green_ctx_t *from, green_ctx_t *to, void *value)
{
    handover = value;
    /* the kernel's mask is 8 bytes (_NSIG / 8); raw, so that no wrapper sees it */
    if (green__sys.syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &to->uc.uc_sigmask, _NSIG / 8) != 0)
        abort();
    if (swapcontext(&from->uc, &to->uc) != 0)
        abort(); /* cannot fail with a valid context */
    return handover;
}

static void ctx_first(unsigned hi, unsigned lo)
{
    green_ctx_t *c = (green_ctx_t *)(((uintptr_t)hi << 32) | (uintptr_t)lo);
    c->entry(handover);
    abort(); /* entry never returns */
}

void green_ctx_make(green_ctx_t *c, void *top, void (*entry)(void *))
{
    /* The stack starts a little below top so that the used part (see green_ctx_sp)
     * is always within [sp, top). */
    uintptr_t t = (uintptr_t)top & ~(uintptr_t)15;
    size_t size = 16384; /* only the size makecontext may claim; the stack goes lower */
    if (getcontext(&c->uc) != 0)
        abort();
    c->uc.uc_stack.ss_sp = (void *)(t - size);
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = NULL;
    c->entry = entry;
    uintptr_t p = (uintptr_t)c;
    makecontext(&c->uc, (void (*)(void))ctx_first, 2, (unsigned)(p >> 32), (unsigned)p);
}

void *green_ctx_sp(const green_ctx_t *c)
{
#if defined(__x86_64__)
    return (void *)(uintptr_t)c->uc.uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    return (void *)(uintptr_t)c->uc.uc_mcontext.sp;
#elif defined(__i386__)
    return (void *)(uintptr_t)c->uc.uc_mcontext.gregs[REG_ESP];
#else
#error "green_ctx_sp: add this architecture's saved stack pointer"
#endif
}
