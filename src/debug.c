/*
 * debug.c — what every green thread is doing (layer 8): green_dump, the statistics
 * that need a walk over the green threads, stack high-water marks, the process-wide
 * registry of hubs and the dump signal (GREEN_DUMP_SIGNAL).
 *
 * Nothing here costs anything on the switch path. What a dump shows is recorded where
 * it is cheap: a blocking call notes what it parks for (green__waiting_on: a byte and a
 * pointer in the control block, in fields a started green thread no longer needs), the
 * hub notes when a green thread parked, became ready or died (its cached clock, 32
 * bits), a spawned one keeps its spawner's id in place of its parent (always the root),
 * and the shared-stack copy-out keeps the deepest size it copied. The fd a green thread
 * waits on, its deadline and its joinee come from the hub's own tables.
 *
 * Backtraces of suspended green threads: with libunwind, a context is built from the
 * saved one (callee-saved registers and return address pushed by green_ctx_swap; see
 * context_<arch>.S) and unwound with the ordinary DWARF tables. A shared-stack green
 * thread whose frames are copied away is unwound by copying them back in place on the
 * shared stack for the moment of the walk (the owner's bytes are saved and restored);
 * that is possible only when the dumping green thread does not run on the shared stack
 * itself, and not from a signal handler (it needs malloc).
 *
 * Signal safety: the dump signal's handler formats with vsnprintf into a buffer on its
 * stack and write(2)s it; it neither mallocs nor locks (the registry is only tried).
 * It reads the hub where its thread was interrupted: best effort, as Go's is.
 */
#include "internal.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(GREEN_HAVE_LIBUNWIND)
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#else
#include <execinfo.h>
#endif

#define BT_MAX 32

int green__hwm_track;

/* ---- the registry of hubs ---- */

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct green_hub *reg_head;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static void env_init(void);

void green__hubs_lock(void) { green__sys.pthread_mutex_lock(&reg_lock); }
void green__hubs_unlock(void) { green__sys.pthread_mutex_unlock(&reg_lock); }
struct green_hub *green__hubs(void) { return reg_head; }

void green__debug_hub_new(struct green_hub *h)
{
    h->thread = (unsigned long)green__sys.pthread_self();
    h->tid = (int)syscall(SYS_gettid);
    green__sys.pthread_mutex_lock(&reg_lock);
    h->reg_next = reg_head;
    reg_head = h;
    green__sys.pthread_mutex_unlock(&reg_lock);
    green__sys.pthread_once(&env_once, env_init);
}

void green__debug_hub_gone(struct green_hub *h)
{
    green__sys.pthread_mutex_lock(&reg_lock);
    for (struct green_hub **pp = &reg_head; *pp; pp = &(*pp)->reg_next)
        if (*pp == h) {
            *pp = h->reg_next;
            break;
        }
    green__sys.pthread_mutex_unlock(&reg_lock);
}

void green__debug_atfork(void)
{
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    reg_lock = fresh; /* its holder, if any, does not exist in the child */
    reg_head = NULL;
    green__monitor_atfork();
}

/* ---- output: to a FILE, or to an fd from a signal handler ---- */

struct out {
    FILE *f;
    int fd;
    int err;
    int in_signal;
    void *uc; /* in a signal handler: the interrupted context, where we can use it */
    uintptr_t *pcs; /* set: the frames' addresses are collected here, not printed */
    int npcs, maxpcs;
    size_t n;
    char buf[1024];
};

static void out_flush(struct out *o)
{
    if (o->f) {
        if (o->n && fwrite(o->buf, 1, o->n, o->f) != o->n)
            o->err = 1;
    } else {
        for (size_t done = 0; done < o->n;) {
            ssize_t r = green__sys.write(o->fd, o->buf + done, o->n - done);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                o->err = 1;
                break;
            }
            done += (size_t)r;
        }
    }
    o->n = 0;
}

static __attribute__((format(printf, 2, 3))) void outf(struct out *o, const char *fmt, ...)
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
        out_flush(o);
    memcpy(o->buf + o->n, line, len);
    o->n += len;
}

/* ---- backtraces ---- */

/* One frame, named from symtab.c's table: safe in a signal handler. */
static void frame_line(struct out *o, int n, uintptr_t pc)
{
    uintptr_t off;
    if (o->pcs) {
        if (o->npcs < o->maxpcs)
            o->pcs[o->npcs++] = pc;
        return;
    }
    const char *name = green__symtab_name(pc, &off);
    if (name)
        outf(o, "    #%d 0x%lx %s+0x%lx\n", n, (unsigned long)pc, name, (unsigned long)off);
    else
        outf(o, "    #%d 0x%lx ?\n", n, (unsigned long)pc);
}

#if !defined(GREEN_HAVE_LIBUNWIND) || !defined(__x86_64__)
/* One frame of a walk outside libunwind: named from symtab.c's table (static functions
 * too), loaded here when not in a signal handler. */
static void record_line(struct out *o, int n, uintptr_t pc)
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
        outf(o, "    #%d 0x%lx %s+0x%lx\n", n, (unsigned long)pc, name, (unsigned long)off);
    else
        outf(o, "    #%d 0x%lx ?\n", n, (unsigned long)pc);
}

/* A suspended context's frames by their frame records ({the caller's record, the return
 * address}, chained through the frame pointer), from pc and fp, every record inside
 * [lo, hi): the saved stack bounds the walk, so a broken chain ends it, never faults.
 * AArch64 code keeps a record in every function that calls another; x86-64 code only
 * when built with frame pointers. */
static void bt_records(struct out *o, uintptr_t pc, uintptr_t fp, uintptr_t lo, uintptr_t hi)
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
static void bt_by_records(struct out *o, const green_ctx_t *ctx, const char *lo, const char *hi)
{
    uintptr_t pc, fp;
    saved_frame(ctx, &pc, &fp);
    if (!pc || !lo || hi <= lo)
        outf(o, "    (no backtrace of this suspended green thread)\n");
    else
        bt_records(o, pc, fp, (uintptr_t)lo, (uintptr_t)hi);
}

#endif

#if defined(GREEN_HAVE_LIBUNWIND)
/* Prints the frames from cur on; with skip_to_signal, those below the signal frame
 * only. Returns how many it printed. In a signal handler the names come from symtab.c
 * (unw_get_proc_name allocates). */
static int bt_cursor(struct out *o, unw_cursor_t *cur, int skip_to_signal)
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
            outf(o, "    #%d 0x%lx %s+0x%lx\n", n, (unsigned long)pc, name, (unsigned long)off);
        else
            outf(o, "    #%d 0x%lx ?\n", n, (unsigned long)pc);
        n++;
    } while (n < BT_MAX && unw_step(cur) > 0);
    return n;
}

static void bt_here(struct out *o, int skip_to_signal)
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
static void bt_saved(struct out *o, const green_ctx_t *ctx, const char *lo, const char *hi)
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
static void bt_here(struct out *o, int skip_to_signal)
{
    void *pcs[BT_MAX + 4];
    int n = backtrace(pcs, BT_MAX + 4);
    for (int i = skip_to_signal ? 3 : 1, k = 0; i < n; i++, k++) {
        Dl_info di;
        if (o->in_signal)
            frame_line(o, k, (uintptr_t)pcs[i]);
        else if (dladdr(pcs[i], &di) && di.dli_sname)
            outf(o, "    #%d %p %s+0x%lx\n", k, pcs[i], di.dli_sname,
                 (unsigned long)((char *)pcs[i] - (char *)di.dli_saddr));
        else
            outf(o, "    #%d %p ?\n", k, pcs[i]);
    }
}

static void bt_saved(struct out *o, const green_ctx_t *ctx, const char *lo, const char *hi)
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
static void bt_copied(struct out *o, struct green_hub *h, struct green *g)
{
    size_t n = g->size;
    char *at = h->shared.hi - n;
    char *keep = malloc(n ? n : 1);
    if (!keep) {
        outf(o, "    (out of memory)\n");
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
static void stack_range(struct out *o, struct green_hub *h, struct green *g, const char **lo,
                        const char **hi)
{
    void *base = NULL;
    size_t size = 0;
    if (g->flags & GF_ROOT) {
        pthread_attr_t a;
        if (o->in_signal || pthread_getattr_np(green__sys.pthread_self(), &a) != 0)
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

static void backtrace_of(struct out *o, struct green_hub *h, struct green *g)
{
    if (g == h->current) {
        bt_here(o, o->in_signal);
        return;
    }
    if (!(g->flags & GF_STARTED) || g->state == GS_DEAD)
        return;
    if (!(g->flags & GF_SHARED) || h->shared.owner == g) {
        const char *lo = NULL, *hi = NULL;
        stack_range(o, h, g, &lo, &hi);
        bt_saved(o, &g->ctx, lo, hi);
    } else if (!g->s.saved) {
        outf(o, "    (no frames)\n");
    } else if (o->in_signal || on_shared_stack(h)) {
        outf(o, "    (frames copied off the shared stack: dump from the root or a "
                "dedicated-stack green thread to see them)\n");
    } else {
        bt_copied(o, h, g);
    }
}

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

static unsigned hwm_bucket(size_t bytes)
{
    unsigned b = 0;
    while (b < 15 && bytes > ((size_t)1024 << b))
        b++;
    return b;
}

void green__debug_reaped(struct green_hub *h, struct green *g)
{
    size_t m = 0;
    if (g->flags & GF_SHARED)
        m = (size_t)g->dbg.hwm * 16;
    else if (!(g->flags & GF_ROOT) && g->s.stack)
        m = green__stack_hwm(g->s.stack, 1);
    if (g->flags & GF_STARTED)
        h->hwm_hist[hwm_bucket(m)]++;
}

/* ---- walking the green threads ---- */

/* Blocks are laid out in chunks (green.c); every block not GS_FREE is a green thread of
 * h, the root included: alive + 1 of them, so the walk stops once it has seen them. */
static void for_each(struct green_hub *h, void (*fn)(struct green_hub *, struct green *, void *), void *arg)
{
    uint64_t left = h->alive + 1;
    for (struct block_chunk *c = h->chunks; c && left; c = green__chunk_next(c)) {
        size_t bsize;
        char *base = green__chunk_blocks(c, &bsize);
        for (size_t i = 0; i < green__chunk_count() && left; i++) {
            struct green *g = (struct green *)(void *)(base + i * bsize);
            if (g->state != GS_FREE) {
                left--;
                fn(h, g, arg);
            }
        }
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
    st->stack_hwm[hwm_bucket(m)]++;
    if (m > st->stack_hwm_max)
        st->stack_hwm_max = m;
}

void green__debug_stats(struct green_hub *h, green_stats_t *st)
{
    st->loops = h->loops;
    st->fds = h->nfds;
    st->pool_queued = green__pool_queued();
    for (unsigned i = 0; i < 16; i++) {
        st->stack_hwm[i] = h->hwm_hist[i];
        if (h->hwm_hist[i] && ((uint64_t)1024 << i) > st->stack_hwm_max)
            st->stack_hwm_max = (uint64_t)1024 << i; /* reaped: the bucket's bound */
    }
    for_each(h, count_one, st);
}

/* ---- the dump ---- */

static const char *const state_names[] = {
    [GS_FREE] = "free", [GS_NEW] = "new", [GS_RUNNING] = "running",
    [GS_SUSPENDED] = "suspended", [GS_READY] = "ready", [GS_WAITING] = "waiting",
    [GS_DEAD] = "dead",
};

static const char *const kind_names[] = {
    [GW_PARK] = "park", [GW_SLEEP] = "sleep", [GW_FD] = "fd", [GW_JOIN] = "join",
    [GW_EVENT] = "event", [GW_FUTURE] = "future", [GW_SEM] = "semaphore",
    [GW_MUTEX] = "mutex", [GW_COND] = "cond", [GW_CHAN] = "channel", [GW_GROUP] = "group",
    [GW_POOL] = "threadpool", [GW_FILE] = "file", [GW_SIGNAL] = "signal",
    [GW_RESOLVE] = "resolve",
};

struct dump_ctx {
    struct out *o;
    int64_t now;
    int only_current;
};

static int timer_armed(const struct green *g) { return g->timer.slot != GREEN_TIMER_IDLE; }

/* What g waits for, for the state line ("on=fd fd=5 dir=read"). */
static void describe_wait(struct out *o, struct green_hub *h, struct green *g, int64_t now)
{
    if (!(g->flags & GF_STARTED)) {
        if (timer_armed(g))
            outf(o, " on=start at=%lld in=%lldms", (long long)g->timer.when,
                 (long long)((int64_t)g->timer.when - now));
        return;
    }
    unsigned k = g->dbg.kind;
    outf(o, " on=%s", k < sizeof kind_names / sizeof *kind_names ? kind_names[k] : "?");
    switch (k) {
    case GW_FD:
    case GW_FILE: {
        int fd = (int)(intptr_t)g->arg;
        outf(o, " fd=%d", fd);
        if (k == GW_FD && (size_t)fd < h->nfd_cap) {
            const struct green_fd *st = &h->fd_table[fd];
            outf(o, " dir=%s", st->waiter[0] == g && st->waiter[1] == g ? "read+write"
                              : st->waiter[1] == g ? "write" : "read");
        }
        break;
    }
    case GW_SIGNAL:
        outf(o, " signo=%d", (int)(intptr_t)g->arg);
        break;
    case GW_JOIN: {
        const struct green *t = g->arg;
        if (t && t->state != GS_FREE && t->joiner == g)
            outf(o, " green=%llu", (unsigned long long)t->id);
        break;
    }
    case GW_MUTEX: {
        const green_mutex_t *m = g->arg;
        const struct green *own = m ? m->owner : NULL;
        outf(o, " obj=%p", (const void *)m);
        if (own)
            outf(o, " owner=%llu", (unsigned long long)own->id);
        break;
    }
    case GW_POOL: {
        Dl_info di;
        if (!o->in_signal && dladdr(g->arg, &di) && di.dli_sname)
            outf(o, " job=%s", di.dli_sname);
        else
            outf(o, " job=%p", g->arg);
        break;
    }
    case GW_SLEEP:
    case GW_PARK:
        break;
    default:
        if (g->arg)
            outf(o, " obj=%p", g->arg);
    }
    if (timer_armed(g))
        outf(o, " %s=%lld in=%lldms", k == GW_SLEEP ? "until" : "deadline",
             (long long)g->timer.when, (long long)((int64_t)g->timer.when - now));
}

static void dump_one(struct green_hub *h, struct green *g, void *arg)
{
    struct dump_ctx *d = arg;
    struct out *o = d->o;
    if ((g == h->current) != d->only_current)
        return;
    int state = g->state;
    outf(o, "green %llu \"%s\" state=%s", (unsigned long long)g->id, green__name(g),
         state <= GS_DEAD ? state_names[state] : "?");
    if (state == GS_WAITING)
        describe_wait(o, h, g, d->now);
    if (state == GS_READY && !(g->flags & GF_STARTED))
        outf(o, " started=no");
    if ((g->flags & GF_STARTED) && (state == GS_READY || state == GS_WAITING || state == GS_DEAD))
        outf(o, " for=%ums", (unsigned)((uint32_t)d->now - g->dbg.since));
    if (g->flags & GF_SPAWNED) {
        outf(o, " spawner=%llu", (unsigned long long)g->spawner);
    } else if (!(g->flags & GF_ROOT)) {
        const struct green *p = green__parent_of(g);
        if (p && p->gen == g->parent_gen && p->state != GS_FREE)
            outf(o, " parent=%llu", (unsigned long long)p->id);
    }
    if (g->flags & GF_CANCELLED)
        outf(o, " killed");
    if (g->flags & GF_ROOT) {
        outf(o, " stack=root");
    } else if (g->flags & GF_SHARED) {
        outf(o, " stack=shared saved=%u hwm=%zu", state == GS_DEAD ? 0u : g->size, hwm_of(h, g));
    } else {
        void *lo;
        size_t size = g->size ? g->size : green__default_stack_size();
        if (g->s.stack)
            green__stack_bounds(g->s.stack, &lo, &size);
        outf(o, " stack=dedicated size=%zu hwm=%zu", size, state == GS_DEAD ? (size_t)0 : hwm_of(h, g));
    }
    outf(o, "\n");
    backtrace_of(o, h, g);
}

static void dump_hub(struct out *o, struct green_hub *h)
{
    struct dump_ctx d = {.o = o, .now = green_now()};
    outf(o, "hub %p thread %d: %llu green threads (root excluded), switches=%llu loops=%llu "
            "ready=%llu waiting=%llu fds=%llu\n",
         (void *)h, h->tid, (unsigned long long)h->alive, (unsigned long long)h->switches,
         (unsigned long long)h->loops, (unsigned long long)h->nready,
         (unsigned long long)h->nwaiting, (unsigned long long)h->nfds);
    /* the running one first: it is what holds the hub */
    d.only_current = 1;
    for_each(h, dump_one, &d);
    d.only_current = 0;
    for_each(h, dump_one, &d);
    out_flush(o);
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
    struct out o = {.f = f};
    dump_hub(&o, h);
    if (o.err || fflush(f) != 0) {
        errno = EIO;
        return -1;
    }
    return 0;
}

/* ---- reports written from signal handlers (to fd 2) ---- */

/* What a handler may not do itself: read the symbol tables, and (glibc's backtrace)
 * load the unwinder on first use. */
void green__debug_prepare_signals(void)
{
    green__symtab_load();
#if !defined(GREEN_HAVE_LIBUNWIND)
    void *pc[2];
    backtrace(pc, 2);
#endif
}

int green__bt_pcs(void *uc, uintptr_t *pcs, int max)
{
    struct out o = {.fd = -1, .in_signal = 1, .uc = uc, .pcs = pcs, .maxpcs = max};
    bt_here(&o, 1);
    return o.npcs;
}

void green__debug_say(const char *fmt, ...)
{
    struct out o = {.fd = 2, .in_signal = 1};
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o.buf, sizeof o.buf, fmt, ap);
    va_end(ap);
    if (n > 0) {
        o.n = (size_t)n < sizeof o.buf ? (size_t)n : sizeof o.buf - 1;
        out_flush(&o);
    }
}

void green__debug_say_frames(const uintptr_t *pcs, int n)
{
    struct out o = {.fd = 2, .in_signal = 1};
    for (int i = 0; i < n; i++)
        frame_line(&o, i, pcs[i]);
    out_flush(&o);
}

/* The dump signal: the first thread to get it dumps its own hub, then has each other
 * hub's thread dump its own, one after another (each reads only its own hub). */
static int dump_signo;
static struct green_hub *dump_target;
static int dump_done, dumping;

static void on_dump_signal(int sig, siginfo_t *si, void *uc)
{
    (void)si;
    uc = green__signal_context(uc);
    int saved = errno;
    struct green_hub *h = green__tls_hub;
    struct green_hub *t = __atomic_load_n(&dump_target, __ATOMIC_ACQUIRE);
    if (t) {
        if (t == h) {
            struct out o = {.fd = 2, .in_signal = 1, .uc = uc};
            dump_hub(&o, h);
            __atomic_store_n(&dump_done, 1, __ATOMIC_RELEASE);
        }
        errno = saved;
        return;
    }
    if (__atomic_exchange_n(&dumping, 1, __ATOMIC_ACQUIRE)) {
        errno = saved;
        return;
    }
    struct out o = {.fd = 2, .in_signal = 1, .uc = uc};
    outf(&o, "libgreen: dump of every hub (signal %d)\n", sig);
    if (h)
        dump_hub(&o, h);
    if (green__sys.pthread_mutex_trylock(&reg_lock) == 0) {
        for (struct green_hub *x = reg_head; x; x = x->reg_next) {
            if (x == h)
                continue;
            __atomic_store_n(&dump_done, 0, __ATOMIC_RELAXED);
            __atomic_store_n(&dump_target, x, __ATOMIC_RELEASE);
            int ok = pthread_kill((pthread_t)x->thread, sig) == 0;
            for (int i = 0; ok && i < 2000 && !__atomic_load_n(&dump_done, __ATOMIC_ACQUIRE); i++) {
                struct timespec ts = {0, 1000000};
                nanosleep(&ts, NULL);
            }
            if (!ok || !__atomic_load_n(&dump_done, __ATOMIC_ACQUIRE)) {
                outf(&o, "hub %p thread %d: did not answer (signal %d blocked there?)\n",
                     (void *)x, x->tid, sig);
                out_flush(&o);
            }
            __atomic_store_n(&dump_target, NULL, __ATOMIC_RELEASE);
        }
        green__sys.pthread_mutex_unlock(&reg_lock);
    }
    outf(&o, "libgreen: end of dump\n");
    out_flush(&o);
    __atomic_store_n(&dumping, 0, __ATOMIC_RELEASE);
    errno = saved;
}

/* "SIGQUIT", "QUIT" or a number; 0 when not understood. */
static int parse_signal(const char *s)
{
    static const struct { const char *name; int signo; } names[] = {
        {"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"HUP", SIGHUP},
        {"INT", SIGINT}, {"TERM", SIGTERM}, {"PWR", SIGPWR}, {"WINCH", SIGWINCH},
    };
    if (strncmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(s, names[i].name) == 0)
            return names[i].signo;
    char *end;
    long n = strtol(s, &end, 10);
    return *s && !*end && n > 0 && n < _NSIG ? (int)n : 0;
}

static void env_init(void)
{
    const char *e = getenv("GREEN_STACK_HWM");
    if (e && *e && strcmp(e, "0") != 0)
        green__hwm_track = 1;
    e = getenv("GREEN_DUMP_SIGNAL");
    if (e && *e && (dump_signo = parse_signal(e)) != 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_dump_signal;
        sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        green__debug_prepare_signals();
        sigaction(dump_signo, &sa, NULL);
    }
    e = getenv("GREEN_MONITOR_MS");
    if (e && *e) {
        long ms = strtol(e, NULL, 10);
        if (ms > 0)
            green_monitor_start(ms);
    }
#if defined(GREEN_HAVE_LIBUNWIND)
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
#endif
}
