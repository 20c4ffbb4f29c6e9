/*
 * core.h — the data of one OS thread's green threads: the control block (struct green,
 * layer 3) and the hub (struct green_hub, layer 4), with the thread-local pointer to the
 * hub. Every layer from the stacks (2) up includes it, through its own header:
 *
 *     sys.h (0) → context.h (1) → core.h → stack.h (2) → greenlet.h (3) → sched.h, hub.h (4)
 *       → wait.h (5) → lib.h (6) → debug.h (8)        [libgreen-patch.so (7): green_private.h]
 *
 * Why the structures sit this low: the stacks copy frames in and out of control blocks,
 * and the switch path reads the hub's fields inline, so each is one struct whose fields
 * are commented with the layer that owns them; functions are declared in the layer
 * headers. Nothing else is here but what only reads or writes those fields.
 *
 * Invariants:
 *  - everything hangs off the calling OS thread's hub (green__tls_hub, made on first
 *    use by hub.c): its root and current green threads, its control-block caches, its
 *    stacks, its run queue, timers and poller. Nothing is global but the process-wide
 *    guard-page budget, the id counter and the registry of hubs;
 *  - a green thread belongs to one hub at a time, g->hub: the one that made it, or the
 *    one it was placed on or moved to (hubs.c). Only that hub's thread writes its
 *    fields; it changes g->hub (release) as its last write before handing g over. A
 *    handle of another hub's green thread fails with EXDEV except in the calls that
 *    cross hubs (join, kill, detach, wake: hubs.c sends them to g's hub; a group's
 *    members send their deaths to the group's hub). Only a
 *    hub's thread writes the hub's fields, except the remote wake-up list, the inbox,
 *    and the counters other threads read (relaxed);
 *  - control blocks are type-stable: never returned to malloc, so reading the
 *    generation of a stale handle's block is always safe.
 */
#ifndef GREEN_CORE_H
#define GREEN_CORE_H

#include "green.h"
#include "green_private.h"
#include "context.h"
#include "list.h"
#include "sanitize.h"
#include "sys.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GREEN_LIKELY(x) __builtin_expect(!!(x), 1)
/* The switch path's functions start on a cache line of their own: their speed moved by
 * 10% (the shared-stack switch, 29 -> 33 ns) with where unrelated code changes left them. */
#define GREEN_SWITCH_PATH __attribute__((aligned(64)))
#define GREEN_UNLIKELY(x) __builtin_expect(!!(x), 0)

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

/* ---- green thread states and flags ---- */
enum green_state {
    GS_FREE = 0,   /* slot in the free list; handles to it are stale */
    GS_NEW,        /* created, never run */
    GS_RUNNING,    /* the current green thread of its hub */
    GS_SUSPENDED,  /* switched away from explicitly (greenlet style) */
    GS_READY,      /* in the hub's run queue */
    GS_WAITING,    /* parked in green_park */
    GS_DEAD,       /* finished; result kept until reaped or destroyed */
    GS_MOVING,     /* ready, on its way to another hub (in that hub's inbox, hubs.c) */
};

/* Where a green thread may run (struct green.xf; hubs.c): */
enum green_xflag {
    GX_ANY = 1 << 0,    /* GREEN_HUB_ANY: may move to another hub while ready */
    GX_INPARK = 1 << 1, /* ready because a park ended and has not returned yet: the
                         * blocking call around it holds its hub, so it cannot move */
    GX_SLEEPS = 1 << 2, /* in green_sleep(_until), which holds nothing of its hub */
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

/* What a parked green thread waits for (dump.c names them); g->arg holds the object
 * while it waits (for GW_FD the fd number). Set by each blocking call before it parks. */
enum green_wait_kind {
    GW_PARK = 0,   /* green_park */
    GW_SLEEP, GW_FD, GW_JOIN, GW_EVENT, GW_FUTURE, GW_SEM, GW_MUTEX, GW_COND, GW_CHAN,
    GW_GROUP, GW_POOL, GW_FILE, GW_SIGNAL, GW_RESOLVE,
    GW_CHOOSE,     /* green_choose of several clauses: g->arg holds their number */
};

/* A timer lives inside what it times (a green thread); see timer.c. */
struct green_timer {
    struct green_list link;
    uint64_t when : 48;  /* absolute deadline, ms (up to 8,900 years) */
    uint64_t slot : 16;  /* wheel slot it is linked in, or GREEN_TIMER_IDLE */
};
#define GREEN_TIMER_IDLE 0xffffu

struct green_hub;
struct green_stack;   /* a dedicated stack slot (stack.c) */
struct block_chunk;   /* a chunk of control blocks (green.c) */
struct green_poller;  /* sched.h */
struct green_fd;      /* sched.h */
struct green_waiter;  /* wait.h */
struct green_remote;  /* sched.c */

/* What few green threads need (green.c): allocated on first use, freed with the block. */
#define GREEN_TIMEOUT_DEPTH 32
struct green_ext {
    const char *name;
    void *held;                           /* mutexes it holds (sync layer's list) */
    /* called once when it finishes or is killed before it ever ran (gevent's rawlink) */
    void (*on_death)(struct green_hub *h, struct green *g, void *arg);
    void *on_death_arg;
    void *local;                          /* libgreen-patch.so's slot (green_private_local) */
    void *xjoin;                          /* its joiner's call from another hub (hubs.c) */
    /* the scheduler's scoped timeouts and shields (sched.c) */
    int64_t tmo;                          /* effective scoped deadline, -1 none */
    int depth;                            /* scopes on tmo_saved: timeouts and timeout shields */
    uint32_t shield_levels;               /* which of those scopes are shields (bit = depth) */
    uint16_t kill_shields;                /* kills are held while non-zero (green__shield_push) */
    uint8_t kill_held;                    /* a kill came or was held: it applies at the last pop */
    int64_t *tmo_saved;                   /* GREEN_TIMEOUT_DEPTH of them, on the first push
                                           * (a group member's ext holds only on_death) */
};

/* The control block (green.c). Kept small: in shared-stack mode it is most of a sleeping
 * green thread's memory (112 bytes, followed in shared mode by room for a shallow stack
 * copy, so that such a green thread is one 240-byte block). */
struct green {
    green_ctx_t ctx;               /* saved CPU state while not running */
    struct green_hub *hub;         /* owner now; read by other threads (atomic) */
    union {
        struct green *parent;      /* see green__parent_of */
        uint64_t spawner;          /* GF_SPAWNED: the id of the green thread that spawned it */
    };
    void *arg;                     /* fn's argument; while parked, what it waits on
                                    * (dump.c); after death, fn's result */
    union {
        green_fn fn;               /* until it starts */
        struct green *next;        /* free list; wait queues of the sync layer */
        struct {                   /* once started (dump.c): no extra bytes */
            uint32_t since;        /* h->now (low 32 bits) when it last parked, became
                                    * ready (not by the fast yield) or died */
            uint32_t kind : 8;     /* enum green_wait_kind of its current park */
            uint32_t hwm : 24;     /* shared mode: deepest copied-out stack, 16-byte units */
        } dbg;
    };
    struct green_timer timer;      /* its link is in the timer wheel while parked with a
                                    * deadline, or in the run queue while ready */
    union {
        struct green_stack *stack; /* dedicated mode (stack.c) */
        void *saved;               /* shared mode: copy of the used stack, or NULL */
    } s;
    struct green_ext *ext;         /* rarely needed state (name, timeouts), on first use */
    struct green *joiner;          /* green thread waiting in green_join for us; dead:
                                    * open to joiners of other hubs (hubs.c). Read and
                                    * written only through green__joiner/_set_joiner */
    uint64_t id;
    uint32_t size;                 /* shared: bytes in s.saved; dedicated: stack size asked */
    uint16_t gen;                  /* generation, also in the handle's top 16 bits */
    uint8_t state;                 /* enum green_state */
    uint8_t flags;                 /* enum green_flag */
    uint16_t parent_gen;           /* parent's generation when it became our parent */
    uint16_t wake_err : 12;        /* why the last park ended: 0 or an errno (< 4096) */
    uint16_t xf : 4;               /* enum green_xflag */
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

/* The name reports show: given, or "root", or "". */
static inline const char *green__name(const struct green *g)
{
    if (g->ext && g->ext->name)
        return g->ext->name;
    return (g->flags & GF_ROOT) ? "root" : "";
}

/* g->joiner: a joiner of another hub may claim a dead g by a compare-and-swap on it
 * (hubs.c, "Joins of the dead"), so every access is atomic (relaxed: plain moves). */
static inline struct green *green__joiner(const struct green *g)
{
    return __atomic_load_n(&g->joiner, __ATOMIC_RELAXED);
}
static inline void green__set_joiner(struct green *g, struct green *j)
{
    __atomic_store_n(&g->joiner, j, __ATOMIC_RELAXED);
}

/* g->joiner of a dead green thread open to joiners of other hubs holds a token (low bit
 * set, never a block's address) naming its generation; GREEN_ZTAKEN once one took it. */
#define GREEN_ZTAKEN ((struct green *)(uintptr_t)0x3)
/* On g's hub, before it consumes dead g itself: 0 (it may), or -1 + ESRCH (a joiner of
 * another hub took it). Nothing but a load for a green thread that is not open. */
static inline int green__zombie_keep(struct green *g)
{
    struct green *j = green__joiner(g);
    if (GREEN_LIKELY(!((uintptr_t)j & 1)))
        return 0;
    if (j != GREEN_ZTAKEN &&
        __atomic_compare_exchange_n(&g->joiner, &j, NULL, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        return 0;
    errno = ESRCH;
    return -1;
}

/* The shared stack of a hub and who currently occupies it (stack.c). */
struct green_shared_stack {
    char *lo, *hi;                 /* usable range; a guard page sits below lo */
    size_t map_size;
    struct green *owner;           /* green thread whose frames are on it now, or NULL */
    unsigned vg_id;
    /* A copy buffer as big as the stack, for the one copy-out malloc cannot serve (that
     * happens mid-switch, where no failure can be reported), and whom it is lent to. A
     * lent spare is replaced before the next park, yield or switch, or that call fails
     * with ENOMEM. */
    char *spare;
    struct green *spare_user;
};

#define GREEN_RING 16 /* slots of a hub's ring (stealing, hubs.c) */

struct green_hub {
    struct green *current;
    struct green *root;

    /* stacks and green threads (stack.c, green.c) */
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
    void (*held_hook)(struct green_hub *, struct green *); /* g died holding mutexes (sync.c) */
    void *stack_pools;             /* stack.c */
    void *altstack;
    uint64_t switches;
    uint64_t alive;                /* not reaped, root excluded */
    uint64_t saved_bytes, copied_bytes;
    void *asan_fake;               /* ASan fiber bookkeeping */

    /* scheduler (sched.c, timer.c, poll_*.c, fd.c) and waits (wait.c) */
    struct green_list rq;          /* run queue, through green.timer.link (sched.c) */
    uint64_t nready, nwaiting;
    uint32_t since_poll;           /* switches since the last non-blocking poll */
    int stealing;                  /* a member of a group of > 1 hubs: keeps a ring (hubs.c;
                                    * here, in since_poll's padding, on a line picks read) */
    void *wheel;                   /* timer.c */
    struct green_poller *poller;
    int poller_kind;
    uint64_t ext_refs;             /* things outside this hub that may wake it (pool jobs...) */
    uint64_t nfds;                 /* fds watched by the poller */
    int64_t now;                   /* cached clock, ms */
    struct green_fd *fd_table;     /* fd.c, indexed by fd */
    size_t nfd_cap;
    struct green_waiter *free_waiters; /* wait.c */
    /* gives back a note whose owner let go of it while it was on that list (wait.c) */
    void (*remote_release)(struct green_hub *, struct green_remote *);
    uint64_t loops;                /* poller rounds (the monitor's sign of life besides switches) */
    /* What other threads write to wake the hub or hand it work, and what they read to know
     * whether to notify it: a line of its own (the hub is allocated line-aligned), which
     * nothing the hub writes at every pick or park shares, so that a waker's look does not
     * miss for that (sched.c, hubs.c). */
    struct green_remote *remote __attribute__((aligned(64))); /* wake-ups pushed by other
                                    * threads (lock-free stack) */
    struct green *inbox;           /* green threads handed to it (lock-free stack
                                    * through timer.link.next) */
    int polling;                   /* set while blocked in the poller: wakers must notify;
                                    * GREEN_POLL_NOTIFIED once one has (sched.h) */

    /* the group of hubs (hubs.c) */
    int num __attribute__((aligned(64))); /* its number in the group, 1..; 0: not a member */
    int hungry;                    /* nothing to run: asks busy hubs for work (atomic) */
    int exported;                  /* blocks or stacks of its own run on other hubs: its
                                    * memory outlives its thread (hub.c) */
    uint64_t incoming;             /* green threads on their way to it (atomic) */
    struct green *reaped;          /* its dead green threads joined from other hubs, to
                                    * free (lock-free stack through timer.link.next) */
    struct green_stack *stacks_back; /* its stacks freed on other hubs (stack.c) */
    uint64_t moved_in;             /* green threads that arrived from another hub */
    /* stealing (hubs.c): movable ready green threads set aside where an idle member may
     * take them while this hub's thread is busy elsewhere. A slot holds NULL, a green
     * thread, or one being taken (its address | 1); bit i of ring_mask is set while slot i
     * is not NULL. Only this hub fills slots; any member empties them. */
    uint32_t ring_mask __attribute__((aligned(64))); /* atomic; what thieves look at
                                    * first, away from the hub's own counters */
    struct green *ring[GREEN_RING];
    struct green_list *ring_seen __attribute__((aligned(64))); /* the run queue's last entry
                                    * when a fill last looked */
    uint32_t ring_hold;            /* picks to make before the next fill (hubs.c) */
    uint32_t ring_left;            /* the ring's slots as its last fill left them: one
                                    * emptied since is one a thief took (hubs.c) */
    uint32_t picks;                /* while stealing: picks since the last poll in passing */
    int spin_ok;                   /* traffic from other threads since its last idle spin
                                    * came up empty (sched.c) */
    int64_t spin_cur;              /* the next idle spin's length, ns (sched.c) */
    struct green_remote *watch;    /* the note of the green thread that parked last for a
                                    * wake-up from another thread: an idle spin watches it
                                    * (wait.c sets it, sched.c) */
    uint64_t stolen;               /* green threads it took from other hubs' rings */
    struct green_list *fresh;      /* the first of the run queue's GREEN_HUB_ANY green
                                    * threads that never ran, which wait at its back
                                    * (sched.c); NULL: none */
    int fresh_turn;                /* 1: a fresh one ran last (they take turns) */
    uint32_t place_left;           /* GREEN_HUB_ANY spawns still to go to place_to before
                                    * the loads are compared again, while `switches`
                                    * stays place_at (hubs.c) */
    struct green_hub *place_to;
    uint64_t place_at;

    /* the registry (hub.c); debugging (dump.c, monitor.c) */
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

/* ---- the calling thread's hub (hub.c) ---- */
struct green_hub *green__hub(void);          /* this thread's hub, made on first use; NULL */
/* initial-exec: one instruction to reach, no __tls_get_addr call on the switch path */
extern __thread struct green_hub *green__tls_hub __attribute__((tls_model("initial-exec")));
/* Nonzero while libgreen is in one of its own signal handlers (monitor, dump, stack
 * overflow) or making this thread's hub and loop: what it calls meanwhile (libunwind
 * reads a pipe; malloc, which jemalloc guards with pthread_mutex_trylock) must not reach
 * the patch library's wrappers as a green thread's call, which may allocate or make the
 * hub again. green_private_hub_here says no hub, green_private_hub_make fails (EAGAIN):
 * the wrappers pass through to libc. */
extern __thread int green__passthrough __attribute__((tls_model("initial-exec")));
static inline struct green_hub *green__hub_fast(void)
{
    struct green_hub *h = green__tls_hub;
    return GREEN_LIKELY(h != NULL) ? h : green__hub();
}

/* ---- what a dump reads, recorded where it is cheap (dump.c) ---- */
/* What the current green thread is about to park for. */
static inline void green__waiting_on(struct green_hub *h, enum green_wait_kind kind, const void *obj)
{
    struct green *g = h->current;
    g->dbg.kind = kind;
    g->arg = (void *)(uintptr_t)obj;
}
/* Since when g is in its state (parked, ready, dead). */
static inline void green__stamp(struct green_hub *h, struct green *g)
{
    g->dbg.since = (uint32_t)h->now;
}

#endif /* GREEN_CORE_H */
