/*
 * intr.c — signal handlers, and the blocking calls they interrupt: sigaction (and
 * __sigaction), the signal() family (signal, bsd_signal, sysv_signal, __sysv_signal,
 * sigset, siginterrupt), sigsuspend, pause, sigpause (__xpg_sigpause, __sigpause), raise
 * (GREEN_PATCH_THREADS), and the interruption records of every other wrapper (patch.h).
 *
 * In the kernel, a handler that runs on a thread blocked in a system call ends the call
 * with EINTR, or restarts it when the call is restartable and the handler was installed
 * with SA_RESTART (signal(7)). A green thread parked in a wrapper is in no system call:
 * the hub waits in its poller for everyone, or another green thread runs. So libgreen
 * has to learn that a handler ran, and for whom.
 *
 * Handlers. For each handler the program installs, sigaction installs `trampoline`
 * instead, with the program's flags and mask plus SA_SIGINFO (the trampoline passes the
 * siginfo on only if the program asked for it); SIG_DFL and SIG_IGN go in as they are.
 * The program's handler is kept in a record per (function, SA_SIGINFO, SA_RESTART),
 * never freed and never changed, published for its signal before the kernel's action
 * changes: a delivery finds the handler of the action it came through, or of the one
 * about to replace it. A query reports what the kernel has, the program's handler in place
 * of the trampoline; an action changed behind our back (SA_RESETHAND's reset, libgreen's
 * own handlers) shows as it is. glibc's signal(), sigset() and siginterrupt() call its
 * internal sigaction, which no wrapper catches: they are redone here, with glibc's
 * semantics, over the wrapper. libgreen's own handlers (the monitor's, the dump signal's,
 * the stack overflow's) are installed through its sys table: they interrupt nothing.
 *
 * Deliveries. The trampoline calls the program's handler (with patch_in_handler raised:
 * a wrapper called there passes through to libc, a handler must not park), then notes the
 * delivery in its OS thread's state, async-signal-safely: a sequence number per
 * delivery, and per signal the number of its last delivery and of its last one without
 * SA_RESTART (for pthread_kill's targets, a small ring of deliveries instead), and tells
 * the hub (green_private_hub_interrupt), which calls `hook` at its next scheduling
 * point, in plain context. There the hook decides whom each delivery interrupts:
 *  - a signal sent by pthread_kill (or raise) to a green pthread: that green thread;
 *  - a signal the OS thread blocks, let in while the hub was idle for a sigsuspend (or a
 *    ppoll, pselect with a mask): the waiting green thread whose mask admits it, the root
 *    first;
 *  - a signal the OS thread blocks, let in while the hub was idle for a green pthread
 *    whose own mask (sigmask.c) admits it: its call, as if it waited with that mask
 *    (the OS thread's mask is the root's, so the kernel would have picked this thread);
 *  - any other: the root (main(), or the first green thread of the hub's OS thread),
 *    which stands for the OS thread the kernel chose (for a process-directed signal, the
 *    kernel picks a thread that does not block it: this one);
 * and interrupts that green thread's blocking call if it is in one that began before the
 * delivery (a handler that ran before the call interrupts nothing, as in the kernel),
 * that the signal can end (a restartable call: only a handler without SA_RESTART;
 * sigsuspend: a signal its mask does not block). No other green thread is disturbed.
 * Deliveries merge as standard signals do: between two scheduling points each signal
 * counts once per target, and the ring keeps the last 32 directed ones.
 *
 * Interruptible calls keep a record (struct patch_intr) on the heap, not on their stack
 * (THE RULE of shared stacks: the hook reads it while its green thread is parked), in
 * their OS thread's list; finished records are kept for the next calls (no malloc per
 * call). Until the program installs its first handler no record is made: nothing could
 * interrupt the call (pause and sigsuspend, which wait for a handler, always make one). Interrupting one wakes its park with EINTR (green_wake), or
 * sets its event (a pause-like wait parks on an event, which is never a deadlock); a
 * green thread that is not parked then finds the mark at its next park.
 *
 * sigsuspend(mask) cannot set mask on the OS thread while other green threads run. The
 * rule: the call's record admits the signals mask does not block, and the signals its
 * mask lets in that the OS thread blocks are unblocked only while the hub is in its
 * poller (green_private_hub_unblock): idle, or in passing at least every 128 hand-offs.
 * Those arrive there, their handlers run, and the hook gives them to the call. Signals
 * mask blocks that the OS thread does not cannot be held back: their handlers run
 * whenever they come, without ending the call. Pending signals the mask lets in are
 * taken first by a zero-timeout ppoll with mask (patch_intr_catch), whose deliveries are
 * the caller's own. pause() is a call that every handler ends; ppoll and pselect with a
 * sigmask wait as sigsuspend does.
 *
 * State per OS thread: a heap block reached through one initial-exec thread-local
 * pointer (the handler reads it), made on the first interruptible call and freed when
 * the thread exits; after fork() the child starts afresh.
 */
#include "patch.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

__thread unsigned patch_in_handler __attribute__((tls_model("initial-exec")));
/* The frame of the trampoline that patch_in_handler counts (the innermost). */
static __thread uintptr_t handler_frame __attribute__((tls_model("initial-exec")));

/* ---- the program's handlers ---- */

struct handler {
    struct handler *next;  /* every record, for reuse */
    void *fn;              /* sa_handler, or sa_sigaction when info */
    int info;
    int restart;           /* SA_RESTART */
};

static struct handler *handlers;        /* append-only list; appending takes handlers_lock */
static int handlers_lock;
static struct handler *installed[NSIG]; /* the program's, per signal (atomic) */
int patch_intr_any;                     /* a trampoline was ever installed: calls keep records */
static uint64_t sigintr_bits;           /* siginterrupt's: signal() without SA_RESTART */

static uint64_t bit(int sig) { return sig > 0 && sig <= 64 ? (uint64_t)1 << (sig - 1) : 0; }

static struct handler *handler_find(void *fn, int info, int restart)
{
    struct handler *h = __atomic_load_n(&handlers, __ATOMIC_ACQUIRE);
    while (h && !(h->fn == fn && h->info == info && h->restart == restart))
        h = h->next;
    return h;
}

/* The record for act's handler, made once: NULL when out of memory, or when it would
 * have to be made in a handler (sigaction is async-signal-safe, malloc is not): that
 * handler is then installed as it is, and interrupts nothing. */
static struct handler *handler_for(const struct sigaction *act)
{
    int info = (act->sa_flags & SA_SIGINFO) != 0;
    void *fn = info ? (void *)act->sa_sigaction : (void *)act->sa_handler;
    int restart = (act->sa_flags & SA_RESTART) != 0;
    struct handler *h = handler_find(fn, info, restart);
    if (h || patch_in_handler)
        return h;
    while (__atomic_test_and_set(&handlers_lock, __ATOMIC_ACQUIRE))
        patch_real()->sched_yield();
    if (!(h = handler_find(fn, info, restart)) && (h = malloc(sizeof *h)) != NULL) {
        *h = (struct handler){handlers, fn, info, restart};
        __atomic_store_n(&handlers, h, __ATOMIC_RELEASE);
    }
    __atomic_clear(&handlers_lock, __ATOMIC_RELEASE);
    return h;
}

static int is_function(void (*fn)(int))
{
    return fn != SIG_DFL && fn != SIG_IGN && fn != SIG_ERR && fn != SIG_HOLD;
}

static void trampoline(int sig, siginfo_t *si, void *uc);

/* What the program sees of an action that was installed with record h (or none). */
static void program_view(struct sigaction *sa, const struct handler *h)
{
    if (!(sa->sa_flags & SA_SIGINFO) || !h)
        return;
    if (sa->sa_handler == SIG_DFL && (sa->sa_flags & SA_RESETHAND) && !h->info) {
        sa->sa_flags &= ~SA_SIGINFO; /* the kernel reset our trampoline, kept our flag */
        return;
    }
    if (sa->sa_sigaction != trampoline)
        return;
    if (h->info) {
        sa->sa_sigaction = (void (*)(int, siginfo_t *, void *))h->fn;
    } else {
        sa->sa_handler = (void (*)(int))h->fn;
        sa->sa_flags &= ~SA_SIGINFO;
    }
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (sig <= 0 || sig >= NSIG)
        return patch_real()->sigaction(sig, act, old);
    struct handler *was = __atomic_load_n(&installed[sig], __ATOMIC_ACQUIRE), *h = NULL;
    struct sigaction mine;
    if (act && is_function(act->sa_handler) && (h = handler_for(act)) != NULL) {
        mine = *act;
        mine.sa_sigaction = trampoline;
        mine.sa_flags |= SA_SIGINFO;
        __atomic_store_n(&installed[sig], h, __ATOMIC_RELEASE);
        __atomic_store_n(&patch_intr_any, 1, __ATOMIC_RELAXED);
        act = &mine;
    }
    int r = patch_real()->sigaction(sig, act, old);
    if (r != 0 && h)
        __atomic_store_n(&installed[sig], was, __ATOMIC_RELEASE);
    if (r == 0 && old)
        program_view(old, was);
    return r;
}
GREEN_PATCH(sigaction);

int __sigaction(int sig, const struct sigaction *act, struct sigaction *old);
int __sigaction(int sig, const struct sigaction *act, struct sigaction *old) { return sigaction(sig, act, old); }
GREEN_PATCH(__sigaction);

/* ---- the signal() family, as glibc has it, over the wrapper ---- */

/* Install fn for sig with flags and a mask of sig itself (or nothing): the old handler,
 * or SIG_ERR + errno. */
static __sighandler_t install(int sig, __sighandler_t fn, int flags, int mask_self)
{
    if (fn == SIG_ERR || sig <= 0 || sig >= NSIG) {
        errno = EINVAL;
        return SIG_ERR;
    }
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    if (mask_self)
        sigaddset(&sa.sa_mask, sig);
    return sigaction(sig, &sa, &old) == 0 ? old.sa_handler : SIG_ERR;
}

/* BSD semantics: SA_RESTART (unless siginterrupt said otherwise), the signal masked
 * while its handler runs. */
__sighandler_t signal(int sig, __sighandler_t fn)
{
    int restart = !(__atomic_load_n(&sigintr_bits, __ATOMIC_RELAXED) & bit(sig));
    return install(sig, fn, restart ? SA_RESTART : 0, 1);
}
GREEN_PATCH(signal);

__sighandler_t bsd_signal(int sig, __sighandler_t fn);
__sighandler_t bsd_signal(int sig, __sighandler_t fn) { return signal(sig, fn); }
GREEN_PATCH(bsd_signal);

/* System V semantics: one shot, not masked, not restarting. */
__sighandler_t sysv_signal(int sig, __sighandler_t fn);
__sighandler_t sysv_signal(int sig, __sighandler_t fn) { return install(sig, fn, SA_RESETHAND | SA_NODEFER, 0); }
GREEN_PATCH(sysv_signal);

/* what signal() is in a program built for strict ISO C or POSIX */
__sighandler_t __sysv_signal(int sig, __sighandler_t fn);
__sighandler_t __sysv_signal(int sig, __sighandler_t fn) { return sysv_signal(sig, fn); }
GREEN_PATCH(__sysv_signal);

/* siginterrupt and sigset are obsolescent, and wrapped all the same */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

/* Take SA_RESTART off (interrupt) or put it on sig's handler, and signal()'s later ones. */
int siginterrupt(int sig, int interrupt)
{
    struct sigaction sa;
    if (sigaction(sig, NULL, &sa) != 0)
        return -1;
    if (interrupt) {
        __atomic_or_fetch(&sigintr_bits, bit(sig), __ATOMIC_RELAXED);
        sa.sa_flags &= ~SA_RESTART;
    } else {
        __atomic_and_fetch(&sigintr_bits, ~bit(sig), __ATOMIC_RELAXED);
        sa.sa_flags |= SA_RESTART;
    }
    return sigaction(sig, &sa, NULL);
}
GREEN_PATCH(siginterrupt);

/* System V's: SIG_HOLD blocks sig; anything else installs it (no flags) and unblocks
 * sig. The old disposition, SIG_HOLD if sig was blocked, or SIG_ERR + errno. */
__sighandler_t sigset(int sig, __sighandler_t fn)
{
    sigset_t one, was;
    sigemptyset(&one);
    if (sigaddset(&one, sig) != 0)
        return SIG_ERR;
    if (fn == SIG_HOLD) {
        if (pthread_sigmask(SIG_BLOCK, &one, &was) != 0)
            return SIG_ERR;
        if (sigismember(&was, sig))
            return SIG_HOLD;
        struct sigaction sa;
        return sigaction(sig, NULL, &sa) == 0 ? sa.sa_handler : SIG_ERR;
    }
    __sighandler_t old = install(sig, fn, 0, 0);
    if (old == SIG_ERR || pthread_sigmask(SIG_UNBLOCK, &one, &was) != 0)
        return SIG_ERR;
    return sigismember(&was, sig) ? SIG_HOLD : old;
}
GREEN_PATCH(sigset);
#pragma GCC diagnostic pop

/* ---- deliveries: the per-thread state ---- */

enum { RING = 32 };

struct intr_state {
    /* written by the trampoline (async-signal-safe: atomics only) */
    uint32_t seq;             /* deliveries on this thread, numbered */
    uint32_t last_hard;       /* the last one whose handler had no SA_RESTART */
    uint32_t any[NSIG];       /* per signal, the last one for "the thread" */
    uint32_t hard[NSIG];      /* ... and the last of those without SA_RESTART */
    green_t directed[NSIG];   /* the green thread the next delivery is for (pthread_kill) */
    green_t catcher;          /* in patch_intr_catch: its deliveries are its own */
    struct delivery {
        uint32_t seq;
        int sig;
        int restart;
        green_t to;
    } ring[RING];             /* deliveries for a directed green thread */
    uint32_t ring_w;
    /* plain context only: the hook and the calls */
    uint32_t ring_r;
    uint32_t done;            /* deliveries the hook has dealt with */
    struct patch_intr *calls;     /* every interruptible call in progress */
    struct patch_intr *suspends;  /* those waiting with a mask */
    struct patch_intr *root_call; /* the root's, if any */
    unsigned admitted[NSIG];      /* per signal, how many of those admit it */
    struct patch_intr *spare;     /* records of finished calls, for the next ones */
    unsigned nspare;
    green_t root;                 /* the hub's root (a fork child's state starts afresh) */
};

enum { SPARE_MAX = 64 }; /* records kept per thread: a record costs no malloc after warm-up */

struct patch_intr {
    struct patch_intr *next, *prev;   /* the thread's calls */
    struct patch_intr *snext, *sprev; /* its calls with a mask */
    green_t g;
    uint32_t since;                   /* deliveries numbered after this one interrupt it */
    uint8_t kind;
    uint8_t masked;                   /* waits with a mask: the suspends list */
    uint8_t interrupted;
    uint8_t has_event;
    uint64_t admits;                  /* the signals that can end it */
    green_event_t ev;                 /* patch_intr_pause parks on it */
};

static __thread struct intr_state *intr_tls __attribute__((tls_model("initial-exec")));
static pthread_key_t intr_key; /* frees a thread's state when it exits */
static pthread_once_t intr_once = PTHREAD_ONCE_INIT;

static void state_free(void *p)
{
    struct intr_state *st = p;
    __atomic_store_n(&intr_tls, NULL, __ATOMIC_SEQ_CST); /* a late handler finds nothing */
    while (st->spare) {
        struct patch_intr *w = st->spare;
        st->spare = w->next;
        free(w);
    }
    free(p);
}

/* fork(): the child's hub is new, the parent's calls are not there. */
static void state_fork_child(void)
{
    struct intr_state *st = intr_tls;
    if (st)
        memset(st, 0, sizeof *st);
}

static void intr_init(void)
{
    patch_real()->pthread_key_create(&intr_key, state_free);
    pthread_atfork(NULL, NULL, state_fork_child);
}

static struct intr_state *state_get(void)
{
    struct intr_state *st = intr_tls;
    if (PATCH_LIKELY(st != NULL))
        return st;
    patch_real()->pthread_once(&intr_once, intr_init);
    if (!(st = calloc(1, sizeof *st)))
        return NULL;
    patch_real()->pthread_setspecific(intr_key, st);
    __atomic_store_n(&intr_tls, st, __ATOMIC_SEQ_CST);
    return st;
}

/* a is later than b (sequence numbers wrap) */
static int after(uint32_t a, uint32_t b) { return (int32_t)(a - b) > 0; }

/* *p = v if v is later: a nested handler may have stored a later one meanwhile. */
static void store_later(uint32_t *p, uint32_t v)
{
    uint32_t old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (after(v, old) && !__atomic_compare_exchange_n(p, &old, v, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

/* A handler ran for sig on this thread (async-signal-safe). */
static void note(int sig, int restart)
{
    struct intr_state *st = __atomic_load_n(&intr_tls, __ATOMIC_SEQ_CST);
    if (!st)
        return; /* no interruptible call has ever been made here */
    uint32_t seq = __atomic_add_fetch(&st->seq, 1, __ATOMIC_SEQ_CST);
    if (!restart)
        store_later(&st->last_hard, seq);
    if (!green_private_hub_here() || __atomic_load_n(&st->catcher, __ATOMIC_SEQ_CST))
        return; /* a plain thread's calls are the kernel's; a catcher's is its own */
    green_t to = __atomic_exchange_n(&st->directed[sig], NULL, __ATOMIC_SEQ_CST);
    if (to) {
        uint32_t i = __atomic_fetch_add(&st->ring_w, 1, __ATOMIC_SEQ_CST) % RING;
        st->ring[i] = (struct delivery){seq, sig, restart, to};
    } else {
        store_later(&st->any[sig], seq);
        if (!restart)
            store_later(&st->hard[sig], seq);
    }
    green_private_hub_interrupt();
}

static void trampoline(int sig, siginfo_t *si, void *uc)
{
    struct handler *h = __atomic_load_n(&installed[sig], __ATOMIC_ACQUIRE);
    if (!h)
        return;
    uintptr_t outer = handler_frame;
    handler_frame = (uintptr_t)__builtin_frame_address(0);
    patch_in_handler++;
    if (h->info)
        ((void (*)(int, siginfo_t *, void *))h->fn)(sig, si, uc);
    else
        ((void (*)(int))h->fn)(sig);
    patch_in_handler--;
    handler_frame = outer;
    int e = errno;
    note(sig, h->restart);
    errno = e;
}

int patch_handler_left(void)
{
    char here;
    if ((uintptr_t)&here <= handler_frame)
        return 0;
    patch_in_handler = 0; /* a longjmp left the handler: we stand above its frame */
    return 1;
}

uint32_t patch_intr_now(void)
{
    struct intr_state *st = state_get();
    return st ? __atomic_load_n(&st->seq, __ATOMIC_SEQ_CST) : 0;
}

int patch_intr_restart(uint32_t since)
{
    struct intr_state *st = intr_tls;
    return !st || !after(__atomic_load_n(&st->last_hard, __ATOMIC_SEQ_CST), since);
}

void patch_intr_direct(green_t g, int sig)
{
    struct intr_state *st = state_get();
    if (st && sig > 0 && sig < NSIG)
        __atomic_store_n(&st->directed[sig], g, __ATOMIC_SEQ_CST);
}

int patch_intr_catch(const sigset_t *mask)
{
    struct intr_state *st = mask ? state_get() : NULL;
    if (!mask)
        return 0;
    struct timespec zero = {0, 0};
    if (st)
        __atomic_store_n(&st->catcher, green_current(), __ATOMIC_SEQ_CST);
    int r = patch_real()->ppoll(NULL, 0, &zero, mask);
    if (st)
        __atomic_store_n(&st->catcher, NULL, __ATOMIC_SEQ_CST);
    return r < 0 ? -1 : 0;
}

/* ---- the hook: whom the deliveries interrupt ---- */

static void interrupt(struct patch_intr *w)
{
    if (w->interrupted)
        return;
    w->interrupted = 1;
    if (w->has_event)
        green_event_set(&w->ev);
    else
        green_wake(w->g, EINTR); /* fails if it is not parked: its next park sees the mark */
}

/* Interrupt w for a delivery of sig numbered seq (and hard, if nonzero, its last one
 * without SA_RESTART) if w admits it. */
static void consider(struct patch_intr *w, int sig, uint32_t seq, int has_hard, uint32_t hard)
{
    if (!w || !(w->admits & bit(sig)))
        return;
    if ((has_hard && after(hard, w->since)) || (w->kind == PATCH_INTR_ALWAYS && after(seq, w->since)))
        interrupt(w);
}

/* The call with a mask that a blocked signal let in by the hub is for: one not already
 * interrupted (which has it blocked again, as a thread back from sigsuspend), the
 * root's first. */
static struct patch_intr *suspender(struct intr_state *st, int sig)
{
    struct patch_intr *first = NULL;
    for (struct patch_intr *w = st->suspends; w; w = w->snext)
        if ((w->admits & bit(sig)) && !w->interrupted) {
            if (w == st->root_call)
                return w;
            if (!first)
                first = w;
        }
    return first;
}

static struct patch_intr *call_of(struct intr_state *st, green_t g)
{
    struct patch_intr *w = st->calls;
    while (w && w->g != g)
        w = w->next;
    return w;
}

static void hook(void)
{
    struct intr_state *st = intr_tls;
    if (!st)
        return;
    int e = errno;
    uint32_t from = st->done, upto = __atomic_load_n(&st->seq, __ATOMIC_SEQ_CST);
    sigset_t blocked;
    int have_blocked = st->suspends && patch_real()->pthread_sigmask(SIG_BLOCK, NULL, &blocked) == 0;
    for (int sig = 1; sig < NSIG && after(upto, from); sig++) {
        uint32_t seq = __atomic_load_n(&st->any[sig], __ATOMIC_SEQ_CST);
        if (!after(seq, from) || after(seq, upto))
            continue; /* none new, or for the next round */
        uint32_t hard = __atomic_load_n(&st->hard[sig], __ATOMIC_SEQ_CST);
        int has_hard = after(hard, from) && !after(hard, upto);
        struct patch_intr *w = have_blocked && sigismember(&blocked, sig) ? suspender(st, sig) : st->root_call;
        consider(w, sig, seq, has_hard, hard);
    }
    st->done = upto;
    uint32_t w_end = __atomic_load_n(&st->ring_w, __ATOMIC_SEQ_CST);
    if (w_end - st->ring_r > RING)
        st->ring_r = w_end - RING; /* the oldest were overwritten */
    for (; st->ring_r != w_end; st->ring_r++) {
        struct delivery d = st->ring[st->ring_r % RING];
        consider(call_of(st, d.to), d.sig, d.seq, !d.restart, d.seq);
    }
    errno = e;
}

/* ---- interruptible calls ---- */

/* Let in, while the hub is idle, every signal some call with a mask admits. */
static void update_unblock(struct intr_state *st)
{
    sigset_t set;
    sigemptyset(&set);
    for (int sig = 1; sig < NSIG; sig++)
        if (st->admitted[sig])
            sigaddset(&set, sig);
    green_private_hub_unblock(&set);
}

static void count_admitted(struct intr_state *st, uint64_t admits, int by)
{
    for (int sig = 1; sig < NSIG; sig++)
        if (admits & bit(sig))
            st->admitted[sig] += (unsigned)by;
    update_unblock(st);
}

/* For a green pthread's call without a mask of its own: the green thread's mask
 * (sigmask.c) in *own, when it lets in a signal the OS thread blocks. The call then waits
 * with it as sigsuspend waits with its mask: the hub lets that signal in while idle, and
 * a process-directed one the root blocks interrupts this call, as the kernel would pick
 * this thread. 0: the call has no mask (the OS thread's decides, the root stands for it). */
static int own_mask(sigset_t *own)
{
    if (!patch_threads || !patch_sigmask_green(own))
        return 0;
    sigset_t os;
    sigemptyset(&os);
    if (patch_real()->pthread_sigmask(SIG_BLOCK, NULL, &os) != 0)
        return 0;
    for (int sig = 1; sig <= 64 && sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP && sigismember(&os, sig) == 1 && sigismember(own, sig) != 1)
            return 1;
    return 0;
}

static struct patch_intr *call_begin(enum patch_intr_kind kind, const sigset_t *mask)
{
    sigset_t own;
    if (!mask && own_mask(&own))
        mask = &own;
    static int hooked;
    if (!__atomic_load_n(&hooked, __ATOMIC_ACQUIRE)) {
        green_private_set_interrupt_hook(hook);
        __atomic_store_n(&hooked, 1, __ATOMIC_RELEASE);
    }
    struct intr_state *st = state_get();
    if (!st)
        return NULL;
    struct patch_intr *w = st->spare;
    if (w) {
        st->spare = w->next;
        st->nspare--;
    } else if (!(w = malloc(sizeof *w))) {
        return NULL;
    }
    memset(w, 0, offsetof(struct patch_intr, ev)); /* the event is set up when needed */
    w->g = green_current();
    w->kind = (uint8_t)kind;
    w->since = __atomic_load_n(&st->seq, __ATOMIC_SEQ_CST);
    w->admits = ~(uint64_t)0;
    if ((w->next = st->calls) != NULL)
        w->next->prev = w;
    st->calls = w;
    if (!st->root)
        st->root = green_root();
    if (w->g == st->root)
        st->root_call = w;
    if (mask) {
        for (int sig = 1; sig < NSIG; sig++)
            if (sigismember(mask, sig) == 1)
                w->admits &= ~bit(sig);
        w->masked = 1;
        if ((w->snext = st->suspends) != NULL)
            w->snext->sprev = w;
        st->suspends = w;
        count_admitted(st, w->admits, 1);
    }
    return w;
}

int patch_intr_park_slow(struct patch_intr **in, enum patch_intr_kind kind, const sigset_t *mask)
{
    if (!in) /* a caller without a record: not interruptible */
        return 0;
    if (!*in) {
        /* no handler of the program's: nothing can interrupt it (a mask still applies) */
        if (mask || __atomic_load_n(&patch_intr_any, __ATOMIC_RELAXED))
            *in = call_begin(kind, mask);
        return 0;
    }
    if ((*in)->interrupted) {
        errno = EINTR;
        return -1;
    }
    return 0;
}

/* The rest of patch_intr_forget for a call with a mask or an event, or a record that
 * is not kept (errno kept). */
static __attribute__((noinline)) void call_done_slow(struct intr_state *st, struct patch_intr *w)
{
    int e = errno;
    if (w->masked) {
        if (w->sprev)
            w->sprev->snext = w->snext;
        else
            st->suspends = w->snext;
        if (w->snext)
            w->snext->sprev = w->sprev;
        count_admitted(st, w->admits, -1);
    }
    if (w->has_event)
        green_event_destroy(&w->ev);
    if (st->nspare < SPARE_MAX) {
        w->next = st->spare;
        st->spare = w;
        st->nspare++;
    } else {
        free(w);
    }
    errno = e;
}

int patch_intr_forget(struct patch_intr **in)
{
    struct patch_intr *w = in ? *in : NULL;
    if (!w)
        return 0;
    struct intr_state *st = intr_tls;
    if (w->prev)
        w->prev->next = w->next;
    else
        st->calls = w->next;
    if (w->next)
        w->next->prev = w->prev;
    if (st->root_call == w)
        st->root_call = NULL;
    int interrupted = w->interrupted;
    *in = NULL;
    if (PATCH_UNLIKELY(w->masked || w->has_event || st->nspare == SPARE_MAX)) {
        call_done_slow(st, w);
        return interrupted;
    }
    w->next = st->spare;
    st->spare = w;
    st->nspare++;
    return interrupted;
}

int patch_intr_pause(struct patch_intr **in, int64_t deadline)
{
    if (in && !*in)
        *in = call_begin(PATCH_INTR_ALWAYS, NULL); /* a wait for a handler: always a record */
    else if (patch_intr_park(in, PATCH_INTR_ALWAYS, NULL) != 0)
        return -1;
    struct patch_intr *w = in ? *in : NULL;
    if (!w) /* no record (no memory): nothing will interrupt it */
        return deadline < 0 ? green_park(-1) : green_sleep_until(deadline);
    if (!w->has_event) {
        green_event_init(&w->ev);
        w->has_event = 1;
    }
    patch_parking();
    green_private_hub_ref(1); /* a signal may come from anywhere: no deadlock */
    int r = green_event_wait(&w->ev, deadline);
    int e = errno;
    green_private_hub_ref(-1);
    errno = r == 0 || w->interrupted ? EINTR : e; /* only an interruption sets the event */
    return -1;
}

/* ---- sigsuspend, pause, sigpause ---- */

/* Wait until a handler ends the call, with mask (NULL: the thread's). Always -1: errno
 * EINTR, or ETIMEDOUT or ECANCELED (a scoped timeout, a kill; both are cancellation
 * points: a cancelled green pthread leaves as by pthread_exit). */
static int suspend(const sigset_t *mask)
{
    if (patch_intr_catch(mask) != 0)
        return -1; /* a pending signal came in: EINTR */
    struct patch_intr *in = NULL;
    patch_intr_park(&in, PATCH_INTR_ALWAYS, mask); /* a mask makes the record now */
    if (mask && !in) /* no memory: wait as libc does, blocking the OS thread */
        return patch_real()->sigsuspend(mask);
    patch_intr_pause(&in, -1); /* parks only the caller, handler installed or not */
    patch_intr_end(&in);
    if (errno == ECANCELED)
        patch_testcancel();
    return -1;
}

/* glibc declares sigsuspend's mask nonnull; a NULL one still gets libc's EFAULT */
static int null(const void *p) { return p == NULL; }

int sigsuspend(const sigset_t *mask)
{
    patch_cancel_point();
    if (!patch_here() || null(mask))
        return patch_real()->sigsuspend(mask);
    return suspend(mask);
}
GREEN_PATCH(sigsuspend);

/* Any handler ends it; the mask stays the thread's. */
int pause(void)
{
    patch_cancel_point();
    if (!patch_here())
        return patch_real()->pause();
    return suspend(NULL);
}
GREEN_PATCH(pause);

/* is_sig: the thread's mask without sig (X/Open); else a BSD mask of signals 1..32. */
int __sigpause(int sig_or_mask, int is_sig);
int __sigpause(int sig_or_mask, int is_sig)
{
    sigset_t mask;
    if (is_sig) {
        if (pthread_sigmask(SIG_BLOCK, NULL, &mask) != 0 || sigdelset(&mask, sig_or_mask) != 0)
            return -1;
    } else {
        sigemptyset(&mask);
        for (int sig = 1; sig <= 32; sig++)
            if ((unsigned)sig_or_mask & (1u << (sig - 1)))
                sigaddset(&mask, sig);
    }
    return sigsuspend(&mask);
}
GREEN_PATCH(__sigpause);

/* what sigpause(sig) is in programs built with glibc's headers */
int __xpg_sigpause(int sig);
int __xpg_sigpause(int sig) { return __sigpause(sig, 1); }
GREEN_PATCH(__xpg_sigpause);

/* ---- raise ---- */

/* A green pthread's raise() is for itself: the call it interrupts is its own (none: it
 * is running), not the root's. */
int raise(int sig)
{
    if (patch_threads && patch_here())
        patch_intr_direct(green_current(), sig);
    return patch_real()->raise(sig);
}
GREEN_PATCH_THREAD(raise);
