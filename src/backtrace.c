/*
 * backtrace.c — backtraces of green threads (layer 8), running or suspended, and the
 * report output they and the dump are written to: a FILE, or fd 2 from a signal handler.
 *
 * The running green thread is walked where it stands (libunwind, or glibc's backtrace()
 * without it); from a signal handler the walk starts from the interrupted context, so
 * the interrupted function's own frame is not lost in the kernel's signal frame.
 * Suspended ones: with libunwind (x86-64), a context is built from the saved one
 * (callee-saved registers and return address pushed by green_ctx_swap; see
 * context_<arch>.S) and unwound with the ordinary DWARF tables; elsewhere (aarch64, the
 * ucontext backend, builds without libunwind) by their frame records, bounded by the
 * thread's stack so that a broken chain ends the walk and never faults. A shared-stack
 * green thread whose frames are copied away is unwound by copying them back in place on
 * the shared stack for the moment of the walk (the owner's bytes are saved and
 * restored): possible only when the caller does not run on the shared stack itself, and
 * not from a signal handler (it needs malloc).
 *
 * Signal safety: in a handler (o->in_signal) frames are named from symtab.c's tables,
 * read beforehand (green__debug_prepare_signals); output is formatted with vsnprintf
 * into a buffer on the stack and write(2)n; nothing mallocs or locks.
 */
#include "debug.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#if defined(GREEN_HAVE_LIBUNWIND)
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#else
#include <execinfo.h>
#endif

#define BT_MAX 32

/* ---- output: to a FILE, or to an fd from a signal handler ---- */

/* stderr or the caller's FILE may be a pipe nobody reads any more: a report must not
 * kill the process with SIGPIPE (it fails with EIO instead, see green_dump). */
void green__out_flush(struct green_out *o)
{
    if (!o->n)
        return;
    struct green_sigpipe sp;
    int err = 0;
    green__sigpipe_hold(&sp);
    if (o->f) {
        if (fwrite(o->buf, 1, o->n, o->f) != o->n)
            err = errno ? errno : EIO;
    } else {
        for (size_t done = 0; done < o->n;) {
            ssize_t r = green__sys.write(o->fd, o->buf + done, o->n - done);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                err = r < 0 ? errno : EIO;
                break;
            }
            done += (size_t)r;
        }
    }
    green__sigpipe_release(&sp, err);
    o->err |= err != 0;
    o->n = 0;
}

void green__outf(struct green_out *o, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    if (o->n + len > sizeof o->buf)
        green__out_flush(o);
    memcpy(o->buf + o->n, line, len);
    o->n += len;
}

/* ---- backtraces ---- */

/* One frame, named from symtab.c's table: safe in a signal handler. */
static void frame_line(struct green_out *o, int n, uintptr_t pc)
{
    uintptr_t off;
    if (o->pcs) {
        if (o->npcs < o->maxpcs)
            o->pcs[o->npcs++] = pc;
        return;
    }
    const char *name = green__symtab_name(pc, &off);
    if (name)
        green__outf(o, "    #%d 0x%lx %s+0x%lx\n", n, (unsigned long)pc, name, (unsigned long)off);
    else
        green__outf(o, "    #%d 0x%lx ?\n", n, (unsigned long)pc);
}

#if !defined(GREEN_HAVE_LIBUNWIND) || !defined(__x86_64__)
/* One frame of a walk outside libunwind: named from symtab.c's table (static functions
 * too), loaded here when not in a signal handler. */
static void record_line(struct green_out *o, int n, uintptr_t pc)
{
    uintptr_t off;
    if (!o->in_signal)
        green__symtab_load();
    const char *name = green__symtab_name(pc, &off);
    Dl_info di;
    if (!name && !o->in_signal && dladdr((void *)pc, &di) && di.dli_sname) {
        name = di.dli_sname;
        off = pc - (uintptr_t)di.dli_saddr;
    }
    if (name)
        green__outf(o, "    #%d 0x%lx %s+0x%lx\n", n, (unsigned long)pc, name, (unsigned long)off);
    else
        green__outf(o, "    #%d 0x%lx ?\n", n, (unsigned long)pc);
}

/* A suspended context's frames by their frame records ({the caller's record, the return
 * address}, chained through the frame pointer), from pc and fp, every record inside
 * [lo, hi): the saved stack bounds the walk, so a broken chain ends it, never faults.
 * AArch64 code keeps a record in every function that calls another; x86-64 code only
 * when built with frame pointers. */
static void bt_records(struct green_out *o, uintptr_t pc, uintptr_t fp, uintptr_t lo, uintptr_t hi)
{
#if defined(__aarch64__)
    const uintptr_t va = ((uintptr_t)1 << 48) - 1; /* a return address signed by PAC */
#else
    const uintptr_t va = ~(uintptr_t)0;
#endif
    int n = 0;
    record_line(o, n++, pc & va);
    while (n < BT_MAX && fp >= lo && fp <= hi - 2 * sizeof(uintptr_t) && !(fp & 7)) {
        const uintptr_t *rec = (const uintptr_t *)fp;
        if (!(rec[1] & va))
            break;
        record_line(o, n++, rec[1] & va);
        if (rec[0] <= fp)
            break;
        fp = rec[0];
    }
}

/* The frame pointer and return address a suspended context resumes with. */
static void saved_frame(const green_ctx_t *ctx, uintptr_t *pc, uintptr_t *fp)
{
#if defined(GREEN_CONTEXT_UCONTEXT) && defined(__x86_64__)
    *pc = (uintptr_t)ctx->uc.uc_mcontext.gregs[REG_RIP];
    *fp = (uintptr_t)ctx->uc.uc_mcontext.gregs[REG_RBP];
#elif defined(GREEN_CONTEXT_UCONTEXT) && defined(__aarch64__)
    *pc = (uintptr_t)ctx->uc.uc_mcontext.pc; /* getcontext saves its return address there */
    *fp = (uintptr_t)ctx->uc.uc_mcontext.regs[29];
#elif defined(__x86_64__) /* context_x86_64.S: rbp, then the return address */
    const uintptr_t *sp = green_ctx_sp(ctx);
    *pc = sp[7];
    *fp = sp[6];
#elif defined(__aarch64__) /* context_aarch64.S: x29 and x30 at sp + 80 */
    const uintptr_t *sp = green_ctx_sp(ctx);
    *pc = sp[11];
    *fp = sp[10];
#else
    (void)ctx;
    *pc = *fp = 0;
#endif
}

/* The walk above, where a walk is possible: the green thread's stack bounds known. */
static void bt_by_records(struct green_out *o, const green_ctx_t *ctx, const char *lo, const char *hi)
{
    uintptr_t pc, fp;
    saved_frame(ctx, &pc, &fp);
    if (!pc || !lo || hi <= lo)
        green__outf(o, "    (no backtrace of this suspended green thread)\n");
    else
        bt_records(o, pc, fp, (uintptr_t)lo, (uintptr_t)hi);
}

#endif

#if defined(GREEN_HAVE_LIBUNWIND)
/* Prints the frames from cur on; with skip_to_signal, those below the signal frame
 * only. Returns how many it printed. In a signal handler the names come from symtab.c
 * (unw_get_proc_name allocates). */
static int bt_cursor(struct green_out *o, unw_cursor_t *cur, int skip_to_signal)
{
    int printing = !skip_to_signal, n = 0;
    do {
        if (!printing) {
            printing = unw_is_signal_frame(cur) > 0;
            continue;
        }
        unw_word_t pc, off;
        char name[128];
        if (unw_get_reg(cur, UNW_REG_IP, &pc) != 0 || pc == 0)
            break;
        if (o->in_signal)
            frame_line(o, n, (uintptr_t)pc);
        else if (unw_get_proc_name(cur, name, sizeof name, &off) == 0)
            green__outf(o, "    #%d 0x%lx %s+0x%lx\n", n, (unsigned long)pc, name, (unsigned long)off);
        else
            green__outf(o, "    #%d 0x%lx ?\n", n, (unsigned long)pc);
        n++;
    } while (n < BT_MAX && unw_step(cur) > 0);
    return n;
}

void green__bt_here(struct green_out *o, int skip_to_signal)
{
    unw_context_t uc;
    unw_cursor_t cur;
#if defined(__x86_64__)
    /* From the interrupted context itself (libunwind's x86-64 context is a ucontext_t):
     * walking up through the handler and the kernel's signal frame can lose the
     * interrupted function's own frame. */
    _Static_assert(sizeof(unw_context_t) == sizeof(ucontext_t), "unw_context_t is a ucontext_t");
    if (skip_to_signal && o->uc) {
        memcpy(&uc, o->uc, sizeof uc);
        if (unw_init_local2(&cur, &uc, UNW_INIT_SIGNAL_FRAME) == 0 && bt_cursor(o, &cur, 0) > 0)
            return;
    }
#endif
    if (unw_getcontext(&uc) != 0 || unw_init_local(&cur, &uc) != 0)
        return;
    if (!skip_to_signal)
        unw_step(&cur); /* not this function */
    if (bt_cursor(o, &cur, skip_to_signal) == 0 && skip_to_signal &&
        unw_init_local(&cur, &uc) == 0) /* no kernel signal frame (a sanitizer's */
        bt_cursor(o, &cur, 0);          /* runtime called the handler): all of it */
}

/* Unwind a suspended context: green_ctx_swap pushed rbp, rbx, r12-r15 and the FP
 * control words below its return address (context_x86_64.S). */
static void bt_saved(struct green_out *o, const green_ctx_t *ctx, const char *lo, const char *hi)
{
#if defined(__x86_64__) && !defined(GREEN_CONTEXT_UCONTEXT)
    (void)lo, (void)hi;
    const uint64_t *sp = green_ctx_sp(ctx);
    unw_context_t uc;
    unw_cursor_t cur;
    if (unw_getcontext(&uc) != 0)
        return;
    greg_t *r = uc.uc_mcontext.gregs;
    r[REG_R15] = (greg_t)sp[1];
    r[REG_R14] = (greg_t)sp[2];
    r[REG_R13] = (greg_t)sp[3];
    r[REG_R12] = (greg_t)sp[4];
    r[REG_RBX] = (greg_t)sp[5];
    r[REG_RBP] = (greg_t)sp[6];
    r[REG_RIP] = (greg_t)sp[7];
    r[REG_RSP] = (greg_t)(uintptr_t)(sp + 8);
    if (unw_init_local(&cur, &uc) != 0)
        return;
    bt_cursor(o, &cur, 0);
#elif defined(__x86_64__) && defined(GREEN_CONTEXT_UCONTEXT)
    (void)lo, (void)hi;
    /* libunwind's x86-64 context is a ucontext_t: the one swapcontext saved */
    _Static_assert(sizeof(unw_context_t) == sizeof(ucontext_t), "unw_context_t is a ucontext_t");
    unw_context_t uc;
    unw_cursor_t cur;
    memcpy(&uc, &ctx->uc, sizeof uc);
    if (unw_init_local(&cur, &uc) != 0)
        return;
    bt_cursor(o, &cur, 0);
#else
    bt_by_records(o, ctx, lo, hi);
#endif
}
#else /* glibc's backtrace(): the running thread only */
void green__bt_here(struct green_out *o, int skip_to_signal)
{
    void *pcs[BT_MAX + 4];
    int n = backtrace(pcs, BT_MAX + 4);
    for (int i = skip_to_signal ? 3 : 1, k = 0; i < n; i++, k++) {
        Dl_info di;
        if (o->in_signal)
            frame_line(o, k, (uintptr_t)pcs[i]);
        else if (dladdr(pcs[i], &di) && di.dli_sname)
            green__outf(o, "    #%d %p %s+0x%lx\n", k, pcs[i], di.dli_sname,
                        (unsigned long)((char *)pcs[i] - (char *)di.dli_saddr));
        else
            green__outf(o, "    #%d %p ?\n", k, pcs[i]);
    }
}

static void bt_saved(struct green_out *o, const green_ctx_t *ctx, const char *lo, const char *hi)
{
    bt_by_records(o, ctx, lo, hi);
}
#endif

/* Is the calling code running on h's shared stack? */
static int on_shared_stack(struct green_hub *h)
{
    char here;
    return h->shared.lo && &here >= h->shared.lo && &here < h->shared.hi;
}

/* A shared-stack green thread's frames, copied back where they ran for the walk. */
__attribute__((no_sanitize("address")))
static void bt_copied(struct green_out *o, struct green_hub *h, struct green *g)
{
    size_t n = g->size;
    char *at = h->shared.hi - n;
    char *keep = malloc(n ? n : 1);
    if (!keep) {
        green__outf(o, "    (out of memory)\n");
        return;
    }
    green_asan_unpoison(at, n);
    memcpy(keep, at, n);
    memcpy(at, g->s.saved, n);
    bt_saved(o, &g->ctx, h->shared.lo, h->shared.hi);
    memcpy(at, keep, n);
    free(keep);
}

/* Where a suspended green thread's frames are: its stack; the root's, the OS thread's
 * (found only outside a signal handler). NULLs when unknown. */
static void stack_range(struct green_out *o, struct green_hub *h, struct green *g, const char **lo,
                        const char **hi)
{
    void *base = NULL;
    size_t size = 0;
    if (g->flags & GF_ROOT) {
        pthread_attr_t a;
        if (o->in_signal || green__sys.pthread_getattr_np(green__sys.pthread_self(), &a) != 0)
            return;
        pthread_attr_getstack(&a, &base, &size);
        pthread_attr_destroy(&a);
    } else if (g->flags & GF_SHARED) {
        base = h->shared.lo;
        size = (size_t)(h->shared.hi - h->shared.lo);
    } else if (g->s.stack) {
        green__stack_bounds(g->s.stack, &base, &size);
    }
    if (base) {
        *lo = base;
        *hi = (const char *)base + size;
    }
}

void green__backtrace_of(struct green_out *o, struct green_hub *h, struct green *g)
{
    if (g == h->current) {
        green__bt_here(o, o->in_signal);
        return;
    }
    if (!(g->flags & GF_STARTED) || g->state == GS_DEAD)
        return;
    if (!(g->flags & GF_SHARED) || h->shared.owner == g) {
        const char *lo = NULL, *hi = NULL;
        stack_range(o, h, g, &lo, &hi);
        bt_saved(o, &g->ctx, lo, hi);
    } else if (!g->s.saved) {
        green__outf(o, "    (no frames)\n");
    } else if (o->in_signal || on_shared_stack(h)) {
        green__outf(o, "    (frames copied off the shared stack: dump from the root or a "
                       "dedicated-stack green thread to see them)\n");
    } else {
        bt_copied(o, h, g);
    }
}

/* The pc a signal interrupted, 0 unknown. */
static uintptr_t interrupted_pc(const void *uc)
{
#if defined(__x86_64__)
    return uc ? (uintptr_t)((const ucontext_t *)uc)->uc_mcontext.gregs[REG_RIP] : 0;
#elif defined(__aarch64__)
    return uc ? (uintptr_t)((const ucontext_t *)uc)->uc_mcontext.pc : 0;
#else
    (void)uc;
    return 0;
#endif
}

int green__bt_pcs(void *uc, uintptr_t *pcs, int max)
{
    struct green_out o = {.fd = -1, .in_signal = 1, .uc = uc, .pcs = pcs, .maxpcs = max};
    green__bt_here(&o, 1);
    /* a walk that began in the handler itself (glibc's backtrace) starts over at the
     * interrupted frame */
    uintptr_t pc = interrupted_pc(uc);
    for (int i = 1; pc && i < o.npcs; i++)
        if (pcs[i] == pc) {
            memmove(pcs, pcs + i, (size_t)(o.npcs - i) * sizeof *pcs);
            return o.npcs - i;
        }
    return o.npcs;
}

void green__bt_write_pcs(struct green_out *o, const uintptr_t *pcs, int n)
{
    for (int i = 0; i < n; i++)
        frame_line(o, i, pcs[i]);
}

/* ---- ahead of signal handlers ---- */

/* What a handler may not do itself: read the symbol tables, and (glibc's backtrace)
 * load the unwinder on first use. */
void green__debug_prepare_signals(void)
{
    green__symtab_load();
    green__debug_prepare_unwind();
}

/* The unwinder alone (glibc's backtrace loads libgcc_s on first use). */
void green__debug_prepare_unwind(void)
{
#if !defined(GREEN_HAVE_LIBUNWIND)
    void *pc[2];
    backtrace(pc, 2);
#endif
}

/* The unwinder's cache: per thread, so that walks on several hubs do not contend. */
void green__backtrace_init(void)
{
#if defined(GREEN_HAVE_LIBUNWIND)
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
#endif
}
