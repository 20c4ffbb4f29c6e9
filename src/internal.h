/*
 * internal.h — the structures shared by libgreen's source files.
 *
 * Everything hangs off the calling OS thread's hub (struct green_hub, thread-local,
 * created lazily): its root and current green threads, its stack pool and shared stack,
 * its run queue, timers and poller. Nothing is global except the process-wide guard-page
 * budget and the id counter. A green thread belongs to the hub that created it for its
 * whole life; handles used on another thread fail with EXDEV.
 */
#ifndef GREEN_INTERNAL_H
#define GREEN_INTERNAL_H

#include "green.h"
#include "green_private.h"
#include "context.h"
#include "list.h"
#include "sanitize.h"
#include "sys.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#define GREEN_LIKELY(x) __builtin_expect(!!(x), 1)
#define GREEN_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---- green thread states and flags ---- */
enum green_state {
    GS_FREE = 0,   /* slot in the free list; handles to it are stale */
    GS_NEW,        /* created, never run */
    GS_RUNNING,    /* the current green thread of its hub */
    GS_SUSPENDED,  /* switched away from explicitly (greenlet style) */
    GS_READY,      /* in the hub's run queue */
    GS_WAITING,    /* parked in green_park */
    GS_DEAD,       /* finished; result kept until reaped or destroyed */
};

enum green_flag {
    GF_ROOT = 1 << 0,      /* the OS thread's own stack */
    GF_SHARED = 1 << 1,    /* runs on the hub's shared stack */
    GF_SCHED = 1 << 2,     /* spawned: the hub schedules it; on exit it goes to the hub */
    GF_DETACHED = 1 << 3,  /* reaped by itself when it finishes */
    GF_CANCELLED = 1 << 4, /* killed: blocking calls fail with ECANCELED */
    GF_STARTED = 1 << 5,   /* has run (its context is valid) */
    GF_UNGUARDED = 1 << 6, /* dedicated stack without guard page: checked at each switch */
    GF_SPAWNED = 1 << 7,   /* spawned: its parent is the root and g->spawner holds the
                            * spawner's id (green_set_parent clears it) */
};

/* What a parked green thread waits for (debug.c names them); g->arg holds the object
 * while it waits (for GW_FD the fd number). Set by each blocking call before it parks. */
enum green_wait_kind {
    GW_PARK = 0,   /* green_park */
    GW_SLEEP, GW_FD, GW_JOIN, GW_EVENT, GW_FUTURE, GW_SEM, GW_MUTEX, GW_COND, GW_CHAN,
    GW_GROUP, GW_POOL, GW_FILE, GW_SIGNAL, GW_RESOLVE,
};

/* A timer lives inside what it times (a green thread); see timer.c. */
struct green_timer {
    struct green_list link;
    uint64_t when : 48;  /* absolute deadline, ms (up to 8,900 years) */
    uint64_t slot : 16;  /* wheel slot it is linked in, or GREEN_TIMER_IDLE */
};
#define GREEN_TIMER_IDLE 0xffffu

struct green_hub;
struct green_stack; /* a dedicated stack slot, see stack.c */
struct block_chunk;

/* What few green threads need: allocated on first use, freed with the block. */
#define GREEN_TIMEOUT_DEPTH 32
struct green_ext {
    const char *name;
    void *held;                           /* mutexes it holds (sync layer's list) */
    /* called once when it finishes or is killed before it ever ran (gevent's rawlink) */
    void (*on_death)(struct green_hub *h, struct green *g, void *arg);
    void *on_death_arg;
    void *local;                          /* libgreen-patch.so's slot (green_private_local) */
    int64_t tmo;                          /* effective scoped deadline, -1 none */
    int depth;                            /* scopes on tmo_saved: timeouts and timeout shields */
    uint32_t shield_levels;               /* which of those scopes are shields (bit = depth) */
    uint16_t kill_shields;                /* kills are held while non-zero (green__shield_push) */
    uint8_t kill_held;                    /* a kill came or was held: it applies at the last pop */
    int64_t *tmo_saved;                   /* GREEN_TIMEOUT_DEPTH of them, on the first push
                                           * (a group member's ext holds only on_death) */
};
struct green_ext *green__ext(struct green *g); /* NULL + ENOMEM */
void green__ext_free(struct green_ext *x);
void green__ext_trim(struct green *g);   /* frees g->ext when nothing in it is in use */
/* Run fn(h, g, arg) when g finishes or is killed before it ran; one per green thread. */
int green__on_death(struct green *g, void (*fn)(struct green_hub *, struct green *, void *), void *arg);
void green__died(struct green_hub *h, struct green *g); /* runs the on_death callback */

/* The control block. Kept small: in shared-stack mode it is most of a sleeping green
 * thread's memory (112 bytes, followed in shared mode by room for a shallow stack copy,
 * so that such a green thread is one 240-byte block). Blocks are type-stable (never
 * returned to malloc), so reading the generation of a stale handle is always safe. */
struct green {
    green_ctx_t ctx;               /* saved CPU state while not running */
    struct green_hub *hub;         /* owner; read racily by other threads for EXDEV */
    union {
        struct green *parent;      /* see green__parent_of */
        uint64_t spawner;          /* GF_SPAWNED: the id of the green thread that spawned it */
    };
    void *arg;                     /* fn's argument; while parked, what it waits on
                                    * (debug.c); after death, fn's result */
    union {
        green_fn fn;               /* until it starts */
        struct green *next;        /* free list; wait queues of the sync layer */
        struct {                   /* once started (debug.c): no extra bytes */
            uint32_t since;        /* h->now (low 32 bits) when it last parked, became
                                    * ready (not by the fast yield) or died */
            uint32_t kind : 8;     /* enum green_wait_kind of its current park */
            uint32_t hwm : 24;     /* shared mode: deepest copied-out stack, 16-byte units */
        } dbg;
    };
    struct green_timer timer;      /* its link is in the timer wheel while parked with a
                                    * deadline, or in the run queue while ready */
    union {
        struct green_stack *stack; /* dedicated mode */
        void *saved;               /* shared mode: copy of the used stack, or NULL */
    } s;
    struct green_ext *ext;         /* rarely needed state (name, timeouts), on first use */
    struct green *joiner;          /* green thread waiting in green_join for us */
    uint64_t id;
    uint32_t size;                 /* shared: bytes in s.saved; dedicated: stack size asked */
    uint16_t gen;                  /* generation, also in the handle's top 16 bits */
    uint8_t state;                 /* enum green_state */
    uint8_t flags;                 /* enum green_flag */
    uint16_t parent_gen;           /* parent's generation when it became our parent */
    int16_t wake_err;              /* why the last park ended: 0 or an errno */
    uint32_t wait_seq;             /* counts parks: tells a late remote wake-up from a current one */
#if GREEN_TSAN
    void *tsan_fiber;
#endif
};

#if defined(__x86_64__) && !GREEN_TSAN && !defined(GREEN_CONTEXT_UCONTEXT)
_Static_assert(sizeof(struct green) == 112, "a sleeping shared-stack green thread must stay small");
#endif

/* Shared-mode blocks: the control block and an inline stack copy. */
#define GREEN_INLINE_STACK 128u
#define GREEN_SHARED_BLOCK (sizeof(struct green) + GREEN_INLINE_STACK) /* 240 on x86-64 */
static inline char *green__inline_stack(struct green *g) { return (char *)(g + 1); }
/* g's parent, NULL meaning the root (a spawned one's parent is always the root). */
static inline struct green *green__parent_of(const struct green *g)
{
    return (g->flags & GF_SPAWNED) ? NULL : g->parent;
}
const char *green__name(const struct green *g);

/* The shared stack of a hub and who currently occupies it. */
struct green_shared_stack {
    char *lo, *hi;                 /* usable range; a guard page sits below lo */
    size_t map_size;
    struct green *owner;           /* green thread whose frames are on it now, or NULL */
    unsigned vg_id;
    /* A copy buffer as big as the stack, for the one copy-out malloc cannot serve (that
     * happens mid-switch, where no failure can be reported), and whom it is lent to. A
     * lent spare is replaced before the next park, yield or switch, or that call fails
     * with ENOMEM (stack.c). */
    char *spare;
    struct green *spare_user;
};

struct green_poller; /* poll_*.c */

/* An fd some green thread waits on (fd.c). */
struct green_fd {
    struct green *waiter[2];       /* reader, writer */
    uint32_t seq[2];               /* their park sequence numbers */
    uint32_t epoch;                /* bumped when the fd is forgotten (closed) */
    uint8_t mask;                  /* directions the poller watches (GREEN_READ|GREEN_WRITE) */
    uint8_t revents;               /* directions reported ready to a waiter */
    uint8_t pending;               /* io_uring: directions with a poll request in flight */
};

struct green_hub {
    struct green *current;
    struct green *root;

    /* greenlet layer */
    struct green *free_blocks;     /* type-stable control block caches: dedicated, */
    struct green *free_shared;     /* and shared (with inline stack room) */
    struct block_chunk *chunks;    /* the block chunks this hub mapped or adopted */
    struct green_shared_stack shared;
    green_ctx_t relay_ctx;         /* tiny context that moves frames on/off the shared stack */
    char *relay_stack;
    unsigned relay_vg_id;
    void *relay_fiber;             /* TSan's name for the relay context */
    int *errno_p;                  /* &errno of this OS thread */
    void *root_lo;                 /* the OS thread's own stack, for ASan */
    size_t root_size;
    struct green *relay_to;
    void *relay_value;
    struct green *dying;           /* dead green thread whose stack is released after the switch */
    green_ctx_t dead_ctx;          /* where a dying green thread's last context is saved */
    uint64_t id_next, id_end;      /* block of ids taken from the process counter */
    void (*exit_hook)(struct green_hub *, struct green *); /* set by the scheduler */
    void (*join_hook)(struct green_hub *, struct green *); /* wakes g's joiner */
    void (*held_hook)(struct green_hub *, struct green *); /* g died holding mutexes */
    void *stack_pools;             /* stack.c */
    void *altstack;
    uint64_t switches;
    uint64_t alive;                /* not reaped, root excluded */
    uint64_t saved_bytes, copied_bytes;
    void *asan_fake;               /* ASan fiber bookkeeping */

    /* scheduler (hub.c) */
    struct green_list rq;          /* FIFO run queue, through green.timer.link */
    uint64_t nready, nwaiting;
    uint32_t since_poll;           /* switches since the last non-blocking poll */
    void *wheel;                   /* timer.c */
    struct green_poller *poller;
    int poller_kind;
    uint64_t ext_refs;             /* things outside this hub that may wake it (pool jobs...) */
    uint64_t nfds;                 /* fds watched by the poller */
    int64_t now;                   /* cached clock, ms */
    struct green_fd *fd_table;     /* fd.c, indexed by fd */
    size_t nfd_cap;
    struct green_waiter *free_waiters;
    struct green_waiter *remote;   /* wake-ups pushed by other threads (lock-free stack) */
    int polling;                   /* set while blocked in the poller: wakers must notify */
    uint64_t loops;                /* poller rounds (the monitor's sign of life besides switches) */

    /* debugging (debug.c, monitor.c) */
    struct green_hub *reg_next;    /* process-wide registry of hubs */
    unsigned long thread;          /* pthread_t of its OS thread */
    int tid;                       /* its kernel thread id */
    uint64_t mon_seen;             /* switches + loops when the monitor last saw a change */
    int64_t mon_since;             /* when it saw that change, ms */
    int mon_reported;              /* this blocking episode has been reported */
    int mon_site;                  /* while reported: the episode's pinning site (monitor.c) */
    uint64_t mon_where;            /* its system call and place, hashed (0: none or busy) */
    uint64_t mon_cpu;              /* its thread's CPU time at mon_since, ns (0: unknown) */
    uint64_t hwm_hist[16];         /* high-water marks of reaped stacks (GREEN_STACK_HWM) */
};

/* ---- debugging (debug.c) ---- */
/* Record what the current green thread is about to park for. */
static inline void green__waiting_on(struct green_hub *h, enum green_wait_kind kind, const void *obj)
{
    struct green *g = h->current;
    g->dbg.kind = kind;
    g->arg = (void *)(uintptr_t)obj;
}
static inline void green__stamp(struct green_hub *h, struct green *g)
{
    g->dbg.since = (uint32_t)h->now;
}
void green__debug_hub_new(struct green_hub *h);   /* registers it; reads GREEN_DUMP_SIGNAL etc. */
void green__debug_hub_gone(struct green_hub *h);
void green__debug_atfork(void);                   /* child: forget the parent's hubs */
extern int green__hwm_track;                      /* GREEN_STACK_HWM: measure stacks at reap */
void green__debug_reaped(struct green_hub *h, struct green *g); /* before its stack goes */
size_t green__stack_hwm(struct green_stack *s, int clean); /* deepest byte used; clean: zero it */
uint64_t green__pool_queued(void);                /* jobs waiting for a pool thread */
void green__debug_stats(struct green_hub *h, green_stats_t *st); /* the fields after shared_copied_bytes */
struct block_chunk *green__chunk_next(const struct block_chunk *c); /* green.c */
char *green__chunk_blocks(const struct block_chunk *c, size_t *bsize);
size_t green__chunk_count(void);
void green__hubs_lock(void);                      /* the registry of every hub */
void green__hubs_unlock(void);
struct green_hub *green__hubs(void);              /* under the lock; then h->reg_next */
/* The code addresses of the calling thread's frames, innermost first, from the context
 * a signal interrupted (uc, a handler's third argument; NULL: from the handler's own
 * frames up to the signal frame): how many, at most max. Async-signal-safe. */
int green__bt_pcs(void *uc, uintptr_t *pcs, int max);
/* Lines to stderr from any context, a signal handler's included (no malloc, no lock):
 * formatted text, and frames named from symtab.c's tables ("    #0 0x... read+0x12"). */
void green__debug_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void green__debug_say_frames(const uintptr_t *pcs, int n);
/* A signal handler's third argument, where it is the kernel's record of the interrupted
 * context; NULL under TSan, which may run the handler later, elsewhere. */
static inline void *green__signal_context(void *uc)
{
#if GREEN_TSAN
    (void)uc;
    return NULL;
#else
    return uc;
#endif
}
void green__monitor_atfork(void);                 /* monitor.c */

/* ---- waiting on objects (wait.c) ---- */

/* A parked green thread's entry in an object's queue; see wait.c for why it is not on
 * the waiter's stack. */
struct green_waiter {
    struct green_waiter *prev, *next;
    struct green *g;
    struct green_hub *hub;
    uint32_t seq;                  /* g->wait_seq of the park it belongs to */
    uint8_t queued;
    uint8_t done;                  /* set by the waker (under the object's lock) */
    int16_t index;                 /* free for the object: e.g. which select clause */
    void *data;                    /* free for the object: e.g. an element buffer */
    uintptr_t aux;
    /* A wake-up sent from another OS thread travels as the record itself, on the hub's
     * remote list (no allocation: it cannot fail). */
    struct green_waiter *remote_next;
    uint64_t remote_note;          /* the park it is for (low 32 bits) and the error */
    uint8_t remote_pending;        /* on the remote list: set by the waker, cleared by the hub */
    uint8_t free_after_drain;      /* its green thread let go of it while it was pending */
};
/* struct green_waitq (public, in green.h) holds struct green_waiter pointers. */

/* A tiny lock for objects that other OS threads may touch (channels, events, futures). */
typedef int green__lock_t;
#if defined(__x86_64__) || defined(__i386__)
#define green_cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define green_cpu_relax() __asm__ __volatile__("yield")
#else
#define green_cpu_relax() ((void)0)
#endif
void green__lock_slow(green__lock_t *l);
static inline void green__lock(green__lock_t *l)
{
    if (GREEN_UNLIKELY(__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE)))
        green__lock_slow(l);
}
static inline void green__unlock(green__lock_t *l) { __atomic_store_n(l, 0, __ATOMIC_RELEASE); }

/* Waiting on an object whose wakers hand over what is awaited (marking the record done). */
enum green_park_mode {
    GREEN_PARK_LOCAL,    /* only this hub can end the wait: a root nobody can wake gets EDEADLK */
    GREEN_PARK_EXTERNAL, /* another OS thread may end it: the hub never calls it a deadlock */
    GREEN_PARK_MASKED,   /* no deadline, under a shield from kills and scoped timeouts
                          * (cond_wait's relock) */
};
/* The mode for a wait on an object that other OS threads may reach (events, futures,
 * channels): LOCAL while the process has never started a second thread, else EXTERNAL. */
enum green_park_mode green__park_mode_shared(void);
/* Queue the current green thread on q and park until a waker hands over what it waits
 * for (0) or the wait ends otherwise (-1 + errno). `lock`, if any, guards q: held on
 * entry and on return, dropped while parked. The record is freed before it returns. */
int green__wait(struct green_hub *h, struct green_waitq *q, green__lock_t *lock,
                int64_t deadline, enum green_park_mode mode);
/* Under the object's lock, from any thread: w's wait (all of q's) has succeeded. */
void green__waiter_hand_over(struct green_waiter *w);
void green__waitq_hand_over_all(struct green_waitq *q);

/* ---- groups (group.c) ---- */
/* green_group_spawn with the members' stack mode and size (the stream server's handlers). */
green_t green__group_spawn_attr(green_group_t *g, const green_attr_t *attr, green_fn fn, void *arg,
                                int64_t deadline);

/* A counter of a hub that other threads read (the monitor): only its hub writes it, so a
 * relaxed load and store do, not a locked add; TSan then sees no race either. */
static inline void green__count(uint64_t *c, int64_t d)
{
#if defined(__x86_64__) && !GREEN_TSAN
    /* one unlocked add to memory: readers see the old or the new value, never a tear */
    __asm__("addq %1, %0" : "+m"(*c) : "er"(d));
#else
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + (uint64_t)d, __ATOMIC_RELAXED);
#endif
}

/* ---- timers (timer.c) ---- */
/* The wheel's shape: level 0 has 2^GREEN_WHEEL_L0_BITS one-millisecond slots, each
 * level above 2^GREEN_WHEEL_LN_BITS slots, each that many times coarser. */
#define GREEN_WHEEL_L0_BITS 10
#define GREEN_WHEEL_LN_BITS 6
/* Added to the monotonic clock (hub.c). Zero; tests move it forward, never back, to
 * bring the clock near a boundary of the wheel without waiting for one. */
extern int64_t green__clock_skew;

/* ---- function names for signal handlers (symtab.c) ---- */
int green__symtab_load(void);                                 /* ordinary context; 0/-1 */
const char *green__symtab_name(uintptr_t pc, uintptr_t *off); /* async-signal-safe; NULL */
/* Whose code pc is: the runtime's (libc, the loader, libgreen, a sanitizer, the vDSO),
 * the program's (any other object loaded when the tables were read), or unknown.
 * Async-signal-safe. */
enum { GREEN_CODE_UNKNOWN, GREEN_CODE_PROGRAM, GREEN_CODE_RUNTIME };
int green__symtab_code(uintptr_t pc);
void green__debug_prepare_signals(void); /* before a handler that prints backtraces is set */

/* ---- hub (thread state) ---- */
struct green_hub *green__hub(void);          /* this thread's hub, created on first use */
/* initial-exec: one instruction to reach, no __tls_get_addr call on the switch path */
extern __thread struct green_hub *green__tls_hub __attribute__((tls_model("initial-exec")));
static inline struct green_hub *green__hub_fast(void)
{
    struct green_hub *h = green__tls_hub;
    return GREEN_LIKELY(h != NULL) ? h : green__hub();
}

/* The deadline a blocking call of g really has: its own or g's scoped one
 * (green_timeout_push), whichever comes first (-1: none). */
static inline int64_t green__deadline_of(const struct green *g, int64_t deadline)
{
    if (GREEN_UNLIKELY(g->ext != NULL)) {
        int64_t t = g->ext->tmo;
        if (t >= 0 && (deadline < 0 || t < deadline))
            return t;
    }
    return deadline;
}

/* ---- handles ---- */
#define GREEN_PTR_MASK ((((uintptr_t)1) << 48) - 1)
static inline green_t green__handle(const struct green *g)
{
    return (green_t)((uintptr_t)g | ((uintptr_t)g->gen << 48));
}
/* Resolve a handle of this thread's hub; NULL + errno (EINVAL, ESRCH, EXDEV). */
struct green *green__resolve(struct green_hub *h, green_t handle);

/* ---- control blocks (green.c) ---- */
struct green *green__block_new(struct green_hub *h, int shared);
void green__block_free(struct green_hub *h, struct green *g);
struct green *green__create(struct green_hub *h, green_fn fn, void *arg, const green_attr_t *attr);
int green__prepare(struct green_hub *h, struct green *to);
void *green__switch_slow(struct green_hub *h, struct green *to, void *value);
int green__relay_init(struct green_hub *h);

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
void green__finish(struct green_hub *h, struct green *g, void *result) __attribute__((noreturn));
void green__release(struct green_hub *h, struct green *g); /* stack of a dead one; frees detached */
struct green *green__live_ancestor(struct green *g);

/* ---- stacks (stack.c) ---- */
int green__stack_get(struct green_hub *h, struct green *g);    /* dedicated: g->s.stack */
void green__stack_put(struct green_hub *h, struct green_stack *s);
void *green__stack_top(const struct green_stack *s);
void green__stack_bounds(const struct green_stack *s, void **lo, size_t *size);
void green__stack_check(const struct green *g);                /* canary + sp limit */
int green__stack_guarded(const struct green_stack *s);
char *green__shared_spare_take(struct green_hub *h, struct green *g); /* NULL: none */
void green__shared_spare_return(struct green_hub *h, struct green *g);
int green__shared_spare_renew(struct green_hub *h);             /* 0, or -1/ENOMEM */
/* Before a park, yield or switch: a copy-out about to happen must not find the spare lent. */
static inline int green__shared_spare_ready(struct green_hub *h)
{
    return GREEN_LIKELY(!h->shared.spare_user) ? 0 : green__shared_spare_renew(h);
}
int green__shared_init(struct green_hub *h);
int green__altstack_init(struct green_hub *h);
void green__stacks_destroy(struct green_hub *h);
void green__stack_stats(uint64_t *guarded, uint64_t *unguarded);
void green__stack_trim(struct green_hub *h);
size_t green__relay_size(void);
int green__relay_stack(struct green_hub *h);
size_t green__default_stack_size(void);
size_t green__page_size(void);      /* the kernel's, which stacks and guards are made of */
/* Tests: behave as on a kernel with pages at least this big (set before the first stack;
 * 16 or 64 KiB pages happen on aarch64). */
extern size_t green__page_size_min;
void green__overflow_abort(const struct green *g, size_t size) __attribute__((noreturn));

/* ---- timers (timer.c) ---- */
int green__timer_init(struct green_hub *h);
void green__timer_destroy(struct green_hub *h);
void green__timer_add(struct green_hub *h, struct green_timer *t, int64_t when);
void green__timer_del(struct green_hub *h, struct green_timer *t);
int64_t green__timer_next(struct green_hub *h); /* earliest time worth waking at, -1 none */
/* Fire (in deadline order, equal deadlines in insertion order) every timer due by now. */
void green__timer_expire(struct green_hub *h, int64_t now,
                         void (*fire)(struct green_hub *, struct green_timer *));
uint64_t green__timer_count(struct green_hub *h);

/* ---- pollers (poll_*.c) ---- */
enum { GREEN_POLLER_EPOLL = 0, GREEN_POLLER_URING = 1 };
/* A read or write of a regular file that the poller itself carries out (io_uring). The
 * record must stay put until its completion: buf is not the caller's (see file.c). */
struct green_file_op {
    int fd;
    int write;                     /* 0 read, 1 write */
    void *buf;
    size_t n;
    off_t off;                     /* -1: at the file's current position */
    ssize_t res;                   /* set on completion: bytes moved, or -errno */
    /* called on the hub's thread, from its poller, once the op has completed */
    void (*done)(struct green_hub *h, struct green_file_op *op);
};
struct green_poller_ops {
    const char *name;
    int (*init)(struct green_hub *h);
    void (*destroy)(struct green_hub *h);
    /* Wait up to timeout_ms (-1 forever, 0 not at all); handle what arrived. */
    int (*wait)(struct green_hub *h, int timeout_ms);
    int (*notify)(struct green_poller *p);   /* wake the hub from any thread */
    /* Make sure fd's readiness for events is reported (green__fd_ready); -1+errno. */
    int (*watch)(struct green_hub *h, int fd, int events);
    void (*unwatch)(struct green_hub *h, int fd);  /* fd is about to be closed */
    /* Start op; its completion calls op->done. NULL: this poller cannot (the thread pool
     * does file I/O then). 0, or -1 + errno. */
    int (*file_io)(struct green_hub *h, struct green_file_op *op);
};
struct green_poller {
    const struct green_poller_ops *ops;
    int wakefd;                    /* eventfd that other threads write to */
    void *impl;
};
extern const struct green_poller_ops green__epoll_ops, green__uring_ops;
void green__on_notify(struct green_hub *h); /* called by a poller when wakefd fired */

/* ---- fds (fd.c) ---- */
struct green_fd *green__fd(struct green_hub *h, int fd);   /* grows the table; NULL+ENOMEM */
void green__fd_ready(struct green_hub *h, int fd, int events); /* from the poller */
int green__fd_wait(struct green_hub *h, int fd, int events, int64_t deadline);
void green__fd_forget(struct green_hub *h, int fd);
int green__set_nonblock(int fd);
void green__fds_destroy(struct green_hub *h);

/* ---- thread pool (pool.c) ---- */
/* Run fn(arg) on a pool thread, parking only the calling green thread of h (NULL: this
 * thread's hub, made if need be, but never for a pool thread's own call): 0 and
 * *result (if result), or -1 + errno (ETIMEDOUT, ECANCELED, ENOMEM, EAGAIN). A job whose
 * caller gave up still runs to the end. On failure arg belongs to drop, if given: it
 * runs once nothing uses arg any more, drop(arg, NULL) at once when no job was started,
 * else drop(arg, the job's result) on the pool thread when the job ends. On a pool
 * thread itself fn runs inline (waiting for another could deadlock a full pool). */
int green__pool_run(struct green_hub *h, void *(*fn)(void *), void *arg, void **result,
                    int64_t deadline, void (*drop)(void *arg, void *result));
/* A wait of h's current green thread would be over before it starts: -1 + errno
 * (ECANCELED, ETIMEDOUT), and the caller starts nothing it would leave behind; else 0. */
int green__wait_over(struct green_hub *h, int64_t deadline);

/* ---- regular files (file.c) ---- */
/* pread/pwrite (off >= 0) or read/write (off == -1) of a regular file or block device,
 * without blocking the hub: on io_uring when that is h's poller, else on the thread
 * pool. Moves at most GREEN_FILE_CHUNK bytes (a short count is not an error). Bytes
 * moved, or -1 + errno (ETIMEDOUT, ECANCELED, ENOMEM, or the system call's). */
#define GREEN_FILE_CHUNK ((size_t)1 << 20)
ssize_t green__file_io(struct green_hub *h, int fd, int write, void *buf, size_t n, off_t off,
                       int64_t deadline);

/* ---- scheduler (hub.c) ---- */
void green__hub_loop_destroy(struct green_hub *h);
struct green_hub *green__loop(void);   /* this thread's hub with its loop ready; NULL+errno */
int green__park(struct green_hub *h, int64_t deadline);
int green__wake(struct green_hub *h, struct green *g, int err);
/* green_private_shield_push/pop for h's current green thread. */
int green__shield_push(struct green_hub *h, int what);
int green__shield_pop(struct green_hub *h, int what);

/* wait.c: the waiter's green thread is h->current; w->seq is set for its next park */
struct green_waiter *green__waiter_new(struct green_hub *h);
void green__waiter_free(struct green_hub *h, struct green_waiter *w);
void green__waiters_destroy(struct green_hub *h);
void green__waitq_push(struct green_waitq *q, struct green_waiter *w);
void green__waitq_remove(struct green_waitq *q, struct green_waiter *w);
struct green_waiter *green__waitq_pop(struct green_waitq *q);
int green__waiter_park(struct green_hub *h, struct green_waiter *w, int64_t deadline, int external);
int green__waiter_wake(struct green_waiter *w, int err); /* any thread; call under the object's lock */
int green__remote_pending(struct green_hub *h);
void green__remote_drain(struct green_hub *h);

#endif
