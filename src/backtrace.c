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
 * libunwind is not linked: it is loaded (dlopen of libunwind.so.8, which brings liblzma)
 * by green__debug_prepare_unwind, in ordinary context, when something is about to be
 * reported: green_dump, the monitor's first look at a held hub (before it signals the
 * hub's thread), the installation of the dump signal. A process that reports nothing
 * never maps it (~110 KiB of resident pages). Until it is loaded, or where it is not
 * installed, backtraces are taken as in a build without it; a signal handler never
 * loads it (dlopen is not async-signal-safe), and where neither it nor glibc's unwinder
 * was prepared it walks the frame records from the interrupted context.
 *
 * Signal safety: in a handler (o->in_signal) frames are named from symtab.c's tables,
 * read beforehand (green__debug_prepare_signals); output is formatted with vsnprintf
 * into a buffer on the stack and write(2)n; nothing mallocs or locks.
 */
#include "debug.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(GREEN_HAVE_LIBUNWIND)
#define UNW_LOCAL_ONLY
#include <libunwind.h>

/* libunwind's calls, through this table once loaded (unw_ready). In its header they are
 * macros naming the target's symbols (_ULx86_64_step, ...): those names are looked up.
 * unw_getcontext is a function on x86-64 (_Ux86_64_getcontext), inline assembly on
 * aarch64 (the only other target CMake lets use it). */
static struct {
#if defined(__x86_64__)
    __typeof__(unw_tdep_getcontext) *getcontext;
    __typeof__(unw_init_local2) *init_local2;
#endif
    __typeof__(unw_init_local) *init_local;
    __typeof__(unw_step) *step;
    __typeof__(unw_get_reg) *get_reg;
    __typeof__(unw_get_proc_name) *get_proc_name;
    __typeof__(unw_is_signal_frame) *is_signal_frame;
    __typeof__(unw_set_caching_policy) *set_caching_policy;
    unw_addr_space_t *local_addr_space;
} unw;
static pthread_once_t unw_once = PTHREAD_ONCE_INIT;
static int unw_ready; /* the table is filled (release/acquire) */

static void unw_warm_up(void);

/* Under unw_once: the library and every call (the ABI of soname 8: libunwind 1.x), or
 * nothing; unw_init_local2 (1.3 on) is optional. */
static void unw_load(void)
{
    void *l = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
    if (!l)
        return;
#define UNW_STR2(x) #x
#define UNW_STR(x) UNW_STR2(x)
#define UNW_SYM(f, name) (unw.f = (__typeof__(unw.f))dlsym(l, UNW_STR(name))) != NULL
    if (
#if defined(__x86_64__)
        UNW_SYM(getcontext, unw_tdep_getcontext) && (UNW_SYM(init_local2, unw_init_local2) || 1) &&
#endif
        UNW_SYM(init_local, unw_init_local) && UNW_SYM(step, unw_step) && UNW_SYM(get_reg, unw_get_reg) &&
        UNW_SYM(get_proc_name, unw_get_proc_name) && UNW_SYM(is_signal_frame, unw_is_signal_frame) &&
        UNW_SYM(set_caching_policy, unw_set_caching_policy) &&
        UNW_SYM(local_addr_space, unw_local_addr_space)) {
        /* the unwinder's cache: per thread, so that walks on several hubs do not contend */
        unw.set_caching_policy(*unw.local_addr_space, UNW_CACHE_PER_THREAD);
        unw_warm_up();
        __atomic_store_n(&unw_ready, 1, __ATOMIC_RELEASE);
        return;
    }
#undef UNW_SYM
    dlclose(l);
}
#if defined(__x86_64__)
#undef unw_tdep_getcontext
#define unw_tdep_getcontext unw.getcontext
#undef unw_init_local2
#define unw_init_local2 unw.init_local2
#endif
#undef unw_init_local
#define unw_init_local unw.init_local
#undef unw_step
#define unw_step unw.step
#undef unw_get_reg
#define unw_get_reg unw.get_reg
#undef unw_get_proc_name
#define unw_get_proc_name unw.get_proc_name
#undef unw_is_signal_frame
#define unw_is_signal_frame unw.is_signal_frame

/* One walk of this thread's frames, in ordinary context: libunwind's own first-use set-up
 * (its per-thread cache, its memory validation) is then done before any handler walks. */
static void unw_warm_up(void)
{
    unw_context_t uc;
    unw_cursor_t cur;
    if (unw_getcontext(&uc) == 0 && unw_init_local(&cur, &uc) == 0)
        for (int n = 0; n < 4 && unw_step(&cur) > 0; n++) {
        }
}

static int unw_loaded(void)
{
    return __atomic_load_n(&unw_ready, __ATOMIC_ACQUIRE);
}
#endif

/* glibc's backtrace() has loaded its unwinder (libgcc_s): it may run in a handler. */
static int gcc_ready;

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

/* One frame of a walk outside libunwind: named from symtab.c's table (static functions
 * too), loaded here when not in a signal handler. */
static void record_line(struct green_out *o, int n, uintptr_t pc)
{
    uintptr_t off;
    if (o->pcs || o->in_signal) {
        frame_line(o, n, pc);
        return;
    }
    green__symtab_load();
    const char *name = green__symtab_name(pc, &off);
    Dl_info di;
    if (!name && dladdr((void *)pc, &di) && di.dli_sname) {
        name = di.dli_sname;
        off = pc - (uintptr_t)di.dli_saddr;
    }
    if (name)
        green__outf(o, "    #%d 0x%lx %s+0x%lx\n", n, (unsigned long)pc, name, (unsigned long)off);
    else
        green__outf(o, "    #%d 0x%lx ?\n", n, (unsigned long)pc);
}

/* Copies the frame record at fp where anything may be mapped (the kernel copies: an
 * unmapped address fails, never faults): 0, or -1. Async-signal-safe. */
static int peek_record(uintptr_t fp, uintptr_t rec[2])
{
    struct iovec local = {rec, 2 * sizeof *rec}, remote = {(void *)fp, 2 * sizeof *rec};
    return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)(2 * sizeof *rec) ? 0 : -1;
}

/* A context's frames by their frame records ({the caller's record, the return address},
 * chained through the frame pointer), from pc and fp, every record inside [lo, hi): the
 * saved stack bounds the walk, so a broken chain ends it, never faults; with lo 0 (the
 * stack unknown) each record is copied by the kernel instead. AArch64 code keeps a
 * record in every function that calls another; x86-64 code only when built with frame
 * pointers. */
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
        uintptr_t rec[2];
        if (lo) {
            rec[0] = ((const uintptr_t *)fp)[0];
            rec[1] = ((const uintptr_t *)fp)[1];
        } else if (peek_record(fp, rec) != 0) {
            break;
        }
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

/* The pc and frame pointer a signal interrupted; 0s unknown. */
static void interrupted_frame(const void *uc, uintptr_t *pc, uintptr_t *fp)
{
#if defined(__x86_64__)
    *pc = uc ? (uintptr_t)((const ucontext_t *)uc)->uc_mcontext.gregs[REG_RIP] : 0;
    *fp = uc ? (uintptr_t)((const ucontext_t *)uc)->uc_mcontext.gregs[REG_RBP] : 0;
#elif defined(__aarch64__)
    *pc = uc ? (uintptr_t)((const ucontext_t *)uc)->uc_mcontext.pc : 0;
    *fp = uc ? (uintptr_t)((const ucontext_t *)uc)->uc_mcontext.regs[29] : 0;
#else
    (void)uc;
    *pc = *fp = 0;
#endif
}

/* In a handler with no unwinder ready (neither libunwind nor glibc's loaded beforehand):
 * the interrupted code's frame records, each copied by the kernel. */
static void bt_interrupted(struct green_out *o)
{
    uintptr_t pc, fp;
    interrupted_frame(o->uc, &pc, &fp);
    if (pc)
        bt_records(o, pc, fp, 0, ~(uintptr_t)0);
    else
        green__outf(o, "    (no backtrace: no unwinder was loaded)\n");
}

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
#endif

/* With libunwind loaded, by it; else by glibc's backtrace() (the running thread only),
 * or, in a handler where that was not prepared, by the interrupted code's frame records.
 * (One function: the frames it skips are counted from it.) */
void green__bt_here(struct green_out *o, int skip_to_signal)
{
#if defined(GREEN_HAVE_LIBUNWIND)
    if (unw_loaded()) {
        unw_context_t uc;
        unw_cursor_t cur;
#if defined(__x86_64__)
        /* From the interrupted context itself (libunwind's x86-64 context is a
         * ucontext_t): walking up through the handler and the kernel's signal frame can
         * lose the interrupted function's own frame. */
        _Static_assert(sizeof(unw_context_t) == sizeof(ucontext_t), "unw_context_t is a ucontext_t");
        if (skip_to_signal && o->uc && unw.init_local2) {
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
        return;
    }
#endif
    if (o->in_signal && !__atomic_load_n(&gcc_ready, __ATOMIC_ACQUIRE)) {
        bt_interrupted(o);
        return;
    }
    void *pcs[BT_MAX + 4];
    int n = backtrace(pcs, BT_MAX + 4);
    for (int i = skip_to_signal ? 3 : 1, k = 0; i < n; i++, k++) {
        Dl_info di;
        if (o->in_signal || o->pcs)
            frame_line(o, k, (uintptr_t)pcs[i]);
        else if (dladdr(pcs[i], &di) && di.dli_sname)
            green__outf(o, "    #%d %p %s+0x%lx\n", k, pcs[i], di.dli_sname,
                        (unsigned long)((char *)pcs[i] - (char *)di.dli_saddr));
        else
            green__outf(o, "    #%d %p ?\n", k, pcs[i]);
    }
}

/* A suspended context: with libunwind loaded (x86-64), unwound from the registers
 * green_ctx_swap saved; else by its frame records. */
static void bt_saved(struct green_out *o, const green_ctx_t *ctx, const char *lo, const char *hi)
{
#if defined(GREEN_HAVE_LIBUNWIND) && defined(__x86_64__) && !defined(GREEN_CONTEXT_UCONTEXT)
    if (unw_loaded()) {
        /* green_ctx_swap pushed rbp, rbx, r12-r15 and the FP control words below its
         * return address (context_x86_64.S) */
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
        if (unw_init_local(&cur, &uc) == 0)
            bt_cursor(o, &cur, 0);
        return;
    }
#elif defined(GREEN_HAVE_LIBUNWIND) && defined(__x86_64__) && defined(GREEN_CONTEXT_UCONTEXT)
    if (unw_loaded()) {
        /* libunwind's x86-64 context is a ucontext_t: the one swapcontext saved */
        _Static_assert(sizeof(unw_context_t) == sizeof(ucontext_t), "unw_context_t is a ucontext_t");
        unw_context_t uc;
        unw_cursor_t cur;
        memcpy(&uc, &ctx->uc, sizeof uc);
        if (unw_init_local(&cur, &uc) == 0)
            bt_cursor(o, &cur, 0);
        return;
    }
#endif
    bt_by_records(o, ctx, lo, hi);
}

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

int green__bt_pcs(void *uc, uintptr_t *pcs, int max)
{
    struct green_out o = {.fd = -1, .in_signal = 1, .uc = uc, .pcs = pcs, .maxpcs = max};
    green__bt_here(&o, 1);
    /* a walk that began in the handler itself (glibc's backtrace) starts over at the
     * interrupted frame */
    uintptr_t pc, fp;
    interrupted_frame(uc, &pc, &fp);
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

/* What a handler may not do itself: read the symbol tables, and load the unwinder. */
void green__debug_prepare_signals(void)
{
    green__symtab_load();
    green__debug_prepare_unwind();
}

/* The unwinder alone: libunwind; where it cannot be loaded, glibc's backtrace(), which
 * loads libgcc_s on first use. Ordinary context only (dlopen). */
void green__debug_prepare_unwind(void)
{
#if defined(GREEN_HAVE_LIBUNWIND)
    green__sys.pthread_once(&unw_once, unw_load);
    if (unw_loaded())
        return;
#endif
    if (!__atomic_load_n(&gcc_ready, __ATOMIC_ACQUIRE)) {
        void *pc[2];
        backtrace(pc, 2);
        __atomic_store_n(&gcc_ready, 1, __ATOMIC_RELEASE);
    }
}

/* What the monitor prepares when it starts: in a build without libunwind, glibc's
 * unwinder (libgcc_s, mapped in most processes already), so that its first report is
 * no slower than the next; libunwind only at that first report. */
void green__debug_prepare_monitor(void)
{
#if !defined(GREEN_HAVE_LIBUNWIND)
    green__debug_prepare_unwind();
#endif
}
