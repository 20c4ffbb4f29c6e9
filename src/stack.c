/*
 * stack.c — where green threads' frames live (layer 2, stack.h): dedicated stacks, the
 * shared stack and its spare, the relay and alternate signal stacks, overflow reports,
 * high-water marks.
 *
 * Dedicated stacks are slots carved from large mmap'd chunks (MAP_NORESERVE, so only the
 * pages a green thread touches cost memory). A slot is one low page plus stack_size bytes:
 *
 *     slot k:  [ low page | stack ........................ | 64-byte top zone ]
 *
 * While the process's memory-map budget allows, the low page is made PROT_NONE: a guard
 * whose fault the SIGSEGV handler (on an alternate signal stack) reports. Each guard
 * splits a mapping and vm.max_map_count (65,530 by default) cannot be assumed raised, so
 * the budget is computed once from it, leaving a quarter for the application. Beyond the
 * budget, slots go unguarded and are checked at every switch away from them: the saved
 * stack pointer must be above the slot's bottom, and the canary in the top zone of the
 * slot just below (the first memory an overflow clobbers, and a page that is resident
 * anyway because its own green thread's first frames are there) must be intact.
 *
 * Freed stacks go to a per-hub pool (LIFO, so the hottest is reused first). Up to
 * GREEN_POOL_HOT of them keep their pages; the hub gives the pages of the rest back
 * with madvise when it goes idle, coalescing neighbouring slots into one call. A slot
 * whose pages are not resident (fresh, or given back) is handed out as a reservation:
 * not touched (not even armed) until its green thread's first run, when a pooled stack
 * whose pages are resident takes its place if there is one by then (green__stack_bind).
 * `hot` says which slots have resident pages; only those go on the hot list. A stack
 * bigger than the default (a green pthread's) keeps only its top GREEN_STACK_KEEP bytes
 * when released, as an exiting thread's stack does in glibc, and of those only as many
 * as fit in GREEN_BIG_CACHE bytes (at least one) stay hot: glibc's cache of the stacks
 * of exited threads holds 40 MiB and unmaps the rest, so a program whose 80 threads end
 * together kept 80 stack tops here where it keeps 4 on real threads (siege at 80 users:
 * 2.9 MiB more at its peak).
 *
 * The shared stack (one per hub) is one mapping with a guard page below it. It holds the
 * frames of one shared-mode green thread at a time, its owner; the others' are copied
 * away: when another takes the stack, the owner's used part is copied out (into the room
 * at the end of its control block when it is shallow, else a heap buffer of the right
 * size, kept for the next time) and the newcomer's copied back in. green.c decides when
 * (on the switch path, or on the relay context when the switcher stands on the shared
 * stack itself); this file does the copying. A copy-out cannot fail mid-switch: when
 * malloc cannot serve it, the hub's spare buffer (as big as the stack, mapped lazily)
 * takes it, and until a new spare is mapped the hub's parks, yields and switches fail
 * with ENOMEM before they start (green__shared_spare_ready).
 *
 * Invariant: a started shared-mode green thread's frames are on the shared stack iff it
 * is h->shared.owner; otherwise they are in g->s.saved (g->size bytes), counted in
 * h->saved_bytes.
 */

#include "stack.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#define GREEN_DEFAULT_STACK (256u * 1024u)
#define GREEN_SHARED_DEFAULT (8u * 1024u * 1024u)
#define GREEN_TOP_ZONE 64u
#define GREEN_POOL_HOT 64u
#define GREEN_BIG_STACK GREEN_DEFAULT_STACK /* bigger stacks are trimmed when released... */
#define GREEN_STACK_KEEP (32u * 1024u)       /* ... to their top 32 KiB */
#define GREEN_BIG_CACHE (40u * 1024u * 1024u) /* ... and so many bytes of them stay hot */
#define GREEN_CHUNK_MAX 4096u
#define GREEN_ALTSTACK_SIZE (64u * 1024u)
#define GREEN_CANARY 0x9e3779b97f4a7c15ull

struct green_chunk;

struct green_stack {
    char *lo;                 /* lowest usable byte */
    char *hi;                 /* initial stack pointer (top of stack, below the top zone) */
    struct green_stack *next; /* pool list */
    struct green_stack *below;/* slot just below in the same chunk, or NULL */
    struct green_pool *pool;
    struct green *owner;      /* the green thread using it, for overflow reports */
    unsigned vg_id;
    uint8_t guarded;
    uint8_t armed;            /* its top-zone canary is in place */
    uint8_t hot;              /* its pages may be resident */
    char *dirty;              /* GREEN_STACK_HWM: lowest byte a past owner wrote, zeroed at reuse */
};

struct green_chunk {
    struct green_chunk *next;
    char *base;
    size_t nslots, carved;
    struct green_stack slot[];
};

struct green_pool {
    struct green_pool *next;
    struct green_hub *hub;    /* whose pool: only its thread touches it */
    size_t size;              /* usable stack bytes */
    size_t slot_size;         /* page + size */
    struct green_stack *hot, *cold;
    size_t nhot, ncold;
    int cold_dirty;           /* a stack went cold since the last trim: worth a walk */
    struct green_chunk *chunks;
    size_t total;
};

int green__hwm_track; /* GREEN_STACK_HWM: measure every stack when it is reaped */

static size_t page_size;
static int64_t guard_budget;         /* guarded slots still allowed, process-wide */
static uint64_t n_guarded, n_unguarded;
static size_t shared_size;
static struct sigaction old_segv, old_bus;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static size_t env_size(const char *name, size_t dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end;
    unsigned long long n = strtoull(v, &end, 0);
    if (*end == 'k' || *end == 'K')
        n <<= 10;
    else if (*end == 'm' || *end == 'M')
        n <<= 20;
    return n ? (size_t)n : dflt;
}

/* Read with open/read, not stdio: fscanf would map libc's scanf code (two 64 KiB
 * fault-around windows of resident pages) into every process that never scans. */
static long count_maps(void)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 1000;
    long n = 0;
    char buf[1024];
    ssize_t r;
    while ((r = green__sys.read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < r; i++)
            n += buf[i] == '\n';
    green__sys.close(fd);
    return n;
}

static long max_map_count(void)
{
    int fd = open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);
    long v = 0;
    if (fd >= 0) {
        char buf[32];
        ssize_t r = green__sys.read(fd, buf, sizeof buf - 1);
        for (ssize_t i = 0; i < r && buf[i] >= '0' && buf[i] <= '9'; i++)
            v = v * 10 + (buf[i] - '0');
        green__sys.close(fd);
    }
    return v > 0 ? v : 65530;
}

static void on_segv(int sig, siginfo_t *si, void *uctx);

size_t green__page_size_min;

static void init_once(void)
{
    page_size = (size_t)sysconf(_SC_PAGESIZE);
    while (page_size < green__page_size_min)
        page_size *= 2;
    long max = max_map_count();
    long budget = (max - count_maps() - max / 4) / 2;
    if (getenv("GREEN_GUARD_BUDGET"))
        budget = (long)env_size("GREEN_GUARD_BUDGET", 0);
    guard_budget = budget > 0 ? budget : 0;
    shared_size = env_size("GREEN_SHARED_STACK_SIZE", GREEN_SHARED_DEFAULT);
    const char *hwm = getenv("GREEN_STACK_HWM");
    green__hwm_track = hwm && *hwm && strcmp(hwm, "0") != 0;
    shared_size = (shared_size + page_size - 1) & ~(page_size - 1);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    green__sys_get()->sigaction(SIGSEGV, &sa, &old_segv);
    green__sys_get()->sigaction(SIGBUS, &sa, &old_bus);
}

static void init(void) { green__sys.pthread_once(&once, init_once); }

size_t green__default_stack_size(void) { return GREEN_DEFAULT_STACK; }

size_t green__page_size(void)
{
    init();
    return page_size;
}

static inline uint64_t canary_of(const void *addr)
{
    return GREEN_CANARY ^ (uint64_t)(uintptr_t)addr;
}

/* The canary guarding the slot above s lives in s's top zone. */
static inline uint64_t *canary_slot(const struct green_stack *s)
{
    return (uint64_t *)(void *)(s->hi + GREEN_TOP_ZONE - 16);
}

static void arm(struct green_stack *s)
{
    uint64_t *c = canary_slot(s);
    *c = canary_of(c);
    s->armed = 1;
}

/* ---- async-signal-safe reporting ---- */

static size_t fmt_u64(char *p, uint64_t v)
{
    char t[24];
    size_t n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        p[i] = t[n - 1 - i];
    return n;
}

static size_t fmt_str(char *p, const char *s, size_t max)
{
    size_t n = 0;
    while (s && s[n] && n < max) {
        p[n] = s[n];
        n++;
    }
    return n;
}

void green__overflow_abort(const struct green *g, size_t size)
{
    char buf[256];
    size_t n = 0;
    n += fmt_str(buf + n, "green thread ", 32);
    n += fmt_u64(buf + n, g->id);
    n += fmt_str(buf + n, " '", 4);
    n += fmt_str(buf + n, green__name(g), 120);
    n += fmt_str(buf + n, "' overflowed its ", 32);
    n += fmt_u64(buf + n, size / 1024);
    n += fmt_str(buf + n, " KiB stack\n", 16);
    ssize_t r = green__sys.write(2, buf, n);
    (void)r;
    /* SIGABRT's default action must run even if the program had caught it. */
    green__sys.signal(SIGABRT, SIG_DFL);
    abort();
}

static int current_bounds(const struct green *g, char **lo, size_t *size)
{
    struct green_hub *h = g->hub;
    if (g->flags & GF_SHARED) {
        *lo = h->shared.lo;
        *size = (size_t)(h->shared.hi - h->shared.lo);
        return 1;
    }
    if (g->flags & GF_ROOT || !g->s.stack)
        return 0;
    *lo = g->s.stack->lo;
    *size = (size_t)(g->s.stack->hi + GREEN_TOP_ZONE - g->s.stack->lo);
    return 1;
}

static void *ucontext_sp(void *uctx)
{
    ucontext_t *uc = uctx;
#if defined(__x86_64__)
    return (void *)(uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    return (void *)(uintptr_t)uc->uc_mcontext.sp;
#else
    (void)uc;
    return NULL;
#endif
}

/* Which green thread's stack has a fault at addr just below its bottom? The thread
 * running may not be the one: the fault can come in the middle of a switch. */
static const struct green *overflowed(struct green_hub *h, char *addr, char *sp, size_t *size)
{
    const size_t reach = 64 * 1024; /* a frame may jump past the guard page */
    if (h->shared.lo && addr < h->shared.lo && addr >= h->shared.lo - reach) {
        *size = (size_t)(h->shared.hi - h->shared.lo);
        return h->shared.owner ? h->shared.owner : h->current;
    }
    for (struct green_pool *p = h->stack_pools; p; p = p->next)
        for (struct green_chunk *c = p->chunks; c; c = c->next) {
            char *end = c->base + c->nslots * p->slot_size;
            if (addr < c->base || addr >= end)
                continue;
            size_t i = (size_t)(addr - c->base) / p->slot_size;
            struct green_stack *s = &c->slot[i];
            if (i < c->carved && addr < s->lo && s->owner) {
                *size = (size_t)(s->hi + GREEN_TOP_ZONE - s->lo);
                return s->owner;
            }
            /* just below the bottom of the slot above (running into our top zone) */
            if (i + 1 < c->carved && addr >= s->hi && c->slot[i + 1].owner) {
                s = &c->slot[i + 1];
                *size = (size_t)(s->hi + GREEN_TOP_ZONE - s->lo);
                return s->owner;
            }
        }
    const struct green *g = h->current;
    char *lo;
    if (g && sp && current_bounds(g, &lo, size) && sp < lo && sp >= lo - 64 * 1024 * 1024)
        return g;
    return NULL;
}

static void on_segv(int sig, siginfo_t *si, void *uctx)
{
    struct green_hub *h = green__tls_hub;
    size_t size = 0;
    const struct green *g = h ? overflowed(h, si->si_addr, ucontext_sp(uctx), &size) : NULL;
    if (g) {
        green__passthrough++; /* it never returns: the report, then abort */
        green__overflow_abort(g, size);
    }
    struct sigaction *old = sig == SIGSEGV ? &old_segv : &old_bus;
    if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction) {
        old->sa_sigaction(sig, si, uctx);
        return;
    }
    if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
        old->sa_handler(sig);
        return;
    }
    /* Not ours: restore the previous disposition; the faulting instruction runs again
     * and the signal takes its default course (a core dump). */
    green__sys.sigaction(sig, old, NULL);
}

int green__altstack_init(struct green_hub *h)
{
    init();
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
        return 0; /* the program has its own */
    void *p = mmap(NULL, GREEN_ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    stack_t ss = {.ss_sp = p, .ss_size = GREEN_ALTSTACK_SIZE, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        munmap(p, GREEN_ALTSTACK_SIZE);
        return -1;
    }
    h->altstack = p;
    return 0;
}

/* ---- dedicated stacks ---- */

/* The guard-page budget: a unit per guard page, taken when the guard is made and given
 * back when its mapping goes (hubs come and go; their budget must not go with them). */
static int guard_take(void)
{
    if (__atomic_sub_fetch(&guard_budget, 1, __ATOMIC_RELAXED) >= 0)
        return 1;
    __atomic_add_fetch(&guard_budget, 1, __ATOMIC_RELAXED);
    return 0;
}

static void guard_give_back(void) { __atomic_add_fetch(&guard_budget, 1, __ATOMIC_RELAXED); }

/* A slot's mapping is about to go: its guard, if any, returns to the budget. */
static void slot_unmapped(const struct green_stack *s)
{
    if (s->guarded)
        guard_give_back();
    __atomic_sub_fetch(s->guarded ? &n_guarded : &n_unguarded, 1, __ATOMIC_RELAXED);
}

static struct green_pool *pool_for(struct green_hub *h, size_t size)
{
    struct green_pool *p;
    for (p = h->stack_pools; p; p = p->next)
        if (p->size == size)
            return p;
    p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->hub = h;
    p->size = size;
    p->slot_size = size + page_size;
    p->next = h->stack_pools;
    h->stack_pools = p;
    return p;
}

static int grow(struct green_pool *p)
{
    size_t n = p->total < 16 ? 16 : p->total;
    if (n > GREEN_CHUNK_MAX)
        n = GREEN_CHUNK_MAX;
    void *m;
    while ((m = mmap(NULL, n * p->slot_size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)) == MAP_FAILED &&
           n > 1)
        n /= 2; /* short of address space: smaller chunks, down to one slot */
    struct green_chunk *c = m != MAP_FAILED ? calloc(1, sizeof *c + n * sizeof c->slot[0]) : NULL;
    if (!c) {
        if (m != MAP_FAILED)
            munmap(m, n * p->slot_size);
        errno = ENOMEM;
        return -1;
    }
    c->base = m;
    c->nslots = n;
    c->next = p->chunks;
    p->chunks = c;
    return 0;
}

static struct green_stack *carve(struct green_pool *p)
{
    struct green_chunk *c = p->chunks;
    if (!c || c->carved == c->nslots) {
        if (grow(p) != 0)
            return NULL;
        c = p->chunks;
    }
    size_t i = c->carved++;
    struct green_stack *s = &c->slot[i];
    char *slot = c->base + i * p->slot_size;
    s->lo = slot + page_size;
    s->hi = slot + p->slot_size - GREEN_TOP_ZONE;
    s->below = i ? &c->slot[i - 1] : NULL;
    s->pool = p;
    int guard = guard_take();
    if (guard && mprotect(slot, page_size, PROT_NONE) != 0) {
        guard_give_back();
        guard = 0;
    }
    s->guarded = (uint8_t)guard;
    __atomic_add_fetch(guard ? &n_guarded : &n_unguarded, 1, __ATOMIC_RELAXED);
    s->vg_id = green_vg_register(s->lo, s->hi + GREEN_TOP_ZONE);
    p->total++; /* untouched (not hot, not armed) until its first run: green__stack_bind */
    return s;
}

static void stack_put(struct green_stack *s);

/* Stacks of h's pools that green threads which moved gave back on other hubs (hubs.c):
 * into their pools, on h's thread. */
static __attribute__((noinline)) void stacks_back_take(struct green_hub *h)
{
    struct green_stack *s = __atomic_exchange_n(&h->stacks_back, NULL, __ATOMIC_ACQUIRE);
    while (s) {
        struct green_stack *next = s->next;
        stack_put(s);
        s = next;
    }
}

/* s, off its pool's lists, becomes g's. */
static void take(struct green_stack *s, struct green *g)
{
    s->next = NULL;
    s->owner = g;
    g->s.stack = s;
    if (GREEN_UNLIKELY(s->dirty != NULL)) {
        /* measured stacks start clean, so the next measure is this owner's alone */
        if (s->hot)
            memset(s->dirty, 0, (size_t)(s->hi - s->dirty));
        s->dirty = NULL;
    }
}

int green__stack_get(struct green_hub *h, struct green *g)
{
    init();
    if (GREEN_UNLIKELY(__atomic_load_n(&h->stacks_back, __ATOMIC_RELAXED) != NULL))
        stacks_back_take(h);
    size_t size = g->size ? g->size : GREEN_DEFAULT_STACK;
    struct green_pool *p = pool_for(h, size);
    if (!p)
        return -1;
    struct green_stack *s;
    if ((s = p->hot) != NULL) {
        p->hot = s->next;
        p->nhot--;
    } else if ((s = p->cold) != NULL) {
        p->cold = s->next;
        p->ncold--;
    } else if ((s = carve(p)) == NULL) {
        return -1;
    }
    take(s, g);
    if (!s->hot)
        return 0; /* a reservation: green__stack_bind at its first run */
    if (!s->armed)
        arm(s);
    return 1;
}

/* A pooled stack of h's whose pages are resident (a dead green thread's), or NULL. */
static struct green_stack *resident_of(struct green_hub *h, size_t size)
{
    for (struct green_pool *p = h->stack_pools; p; p = p->next) {
        if (p->size != size)
            continue;
        struct green_stack *s = p->hot;
        if (s) {
            p->hot = s->next;
            p->nhot--;
        }
        return s;
    }
    return NULL;
}

void green__stack_bind(struct green_hub *h, struct green *g)
{
    struct green_stack *s = g->s.stack, *r = NULL;
    if (!s->hot || s->pool->hub != h)
        r = resident_of(h, s->pool->size);
    if (!r && s->pool->hub != h) {
        /* moved before its first run: a slot of h's, so that its death leaves a stack
         * here (else, fresh, the other hub's will do) */
        struct green_pool *p = pool_for(h, s->pool->size);
        if (p && (r = p->cold) != NULL) {
            p->cold = r->next;
            p->ncold--;
        } else if (p) {
            r = carve(p);
        }
    }
    if (r) {
        take(r, g);
        green__stack_put(h, s); /* untouched (or another hub's: it goes home) */
        s = r;
    }
    if (!s->armed)
        arm(s);
    s->hot = 1;
    if (s->guarded)
        g->flags &= (uint8_t)~GF_UNGUARDED;
    else
        g->flags |= GF_UNGUARDED;
}

void green__stack_put(struct green_hub *h, struct green_stack *s)
{
    if (GREEN_UNLIKELY(s->pool->hub != h)) {
        /* a green thread that moved here from the stack's hub: the stack goes home */
        struct green_hub *home = s->pool->hub;
        s->owner = NULL;
        struct green_stack *head = __atomic_load_n(&home->stacks_back, __ATOMIC_RELAXED);
        do
            s->next = head;
        while (!__atomic_compare_exchange_n(&home->stacks_back, &head, s, 1, __ATOMIC_RELEASE,
                                            __ATOMIC_RELAXED));
        return;
    }
    stack_put(s);
}

/* A big stack (a green pthread's: a real thread's size) keeps only its top
 * GREEN_STACK_KEEP bytes when released, as glibc does for an exiting thread: a program
 * whose threads each touch a deep frame once would otherwise hold all those pages in
 * the pool. And only as many stay hot as GREEN_BIG_CACHE holds (at least one): past
 * that it keeps nothing, as glibc unmaps a stack its cache has no room for. Returns that
 * number. One madvise per release of such a stack; out of line, so that the default
 * sizes' path stays as it was (a field of the pool and this code inline cost
 * green_new+switch+destroy 15 ns in bench_spawn). */
static __attribute__((noinline, cold)) size_t big_release(struct green_pool *p, struct green_stack *s)
{
    size_t hot_max = GREEN_BIG_CACHE / p->slot_size;
    hot_max = hot_max < 1 ? 1 : hot_max > GREEN_POOL_HOT ? GREEN_POOL_HOT : hot_max;
    if (!s->hot)
        return hot_max;
    int stays_hot = p->nhot < hot_max;
    char *keep = stays_hot ? s->hi - GREEN_STACK_KEEP : s->hi + GREEN_TOP_ZONE;
    /* a dying green thread may release its stack while its last frames are still on it
     * (green__switch_slow's fast path): never below where this call stands */
    char *here = (char *)__builtin_frame_address(0) - 4096;
    int on_it = here >= s->lo && here < s->hi + GREEN_TOP_ZONE;
    if (on_it && here < keep)
        keep = here;
    madvise(s->lo, (size_t)(keep - s->lo) & ~(page_size - 1), MADV_DONTNEED);
    if (!stays_hot && !on_it) {
        s->hot = 0; /* all of it given back: cold, and armed again when taken */
        s->armed = 0;
        s->dirty = NULL;
    } else if (s->dirty && s->dirty < keep) {
        s->dirty = keep;
    }
    return hot_max;
}

static void stack_put(struct green_stack *s)
{
    struct green_pool *p = s->pool;
    s->owner = NULL;
    size_t hot_max = GREEN_POOL_HOT;
    if (GREEN_UNLIKELY((size_t)(s->hi - s->lo) > GREEN_BIG_STACK))
        hot_max = big_release(p, s);
    if (s->hot && p->nhot < hot_max) {
        s->next = p->hot;
        p->hot = s;
        p->nhot++;
    } else {
        /* its pages are released by green__stack_trim when the hub idles */
        if (s->hot)
            p->cold_dirty = 1;
        s->next = p->cold;
        p->cold = s;
        p->ncold++;
    }
}

static int by_addr(const void *a, const void *b)
{
    const struct green_stack *x = *(struct green_stack *const *)a;
    const struct green_stack *y = *(struct green_stack *const *)b;
    return (x->lo > y->lo) - (x->lo < y->lo);
}

/* Give back the pages of the cold pooled stacks, one madvise per run of neighbours. */
void green__stack_trim(struct green_hub *h)
{
    if (__atomic_load_n(&h->stacks_back, __ATOMIC_RELAXED) != NULL)
        stacks_back_take(h);
    for (struct green_pool *p = h->stack_pools; p; p = p->next) {
        if (!p->cold_dirty)
            continue; /* a hub that idles often (work across hubs) must not walk it each time */
        p->cold_dirty = 0;
        size_t n = 0;
        for (struct green_stack *s = p->cold; s; s = s->next)
            n += s->hot;
        if (!n)
            continue;
        struct green_stack **v = malloc(n * sizeof *v);
        if (!v) {
            p->cold_dirty = 1;
            return;
        }
        n = 0;
        for (struct green_stack *s = p->cold; s; s = s->next)
            if (s->hot)
                v[n++] = s;
        qsort(v, n, sizeof *v, by_addr);
        for (size_t i = 0; i < n;) {
            size_t j = i + 1;
            while (j < n && v[j]->lo == v[j - 1]->hi + GREEN_TOP_ZONE + page_size)
                j++;
            char *start = v[i]->lo, *end = v[j - 1]->hi + GREEN_TOP_ZONE;
            madvise(start, (size_t)(end - start), MADV_DONTNEED);
            for (size_t k = i; k < j; k++) {
                v[k]->hot = 0;
                v[k]->armed = 0;
                v[k]->dirty = NULL; /* zero again */
            }
            i = j;
        }
        free(v);
    }
}

void *green__stack_top(const struct green_stack *s) { return s->hi; }

void green__stack_bounds(const struct green_stack *s, void **lo, size_t *size)
{
    *lo = s->lo;
    *size = (size_t)(s->hi + GREEN_TOP_ZONE - s->lo);
}

int green__stack_guarded(const struct green_stack *s) { return s->guarded; }
int green__stack_home(const struct green_hub *h, const struct green_stack *s) { return s->pool->hub == h; }

/* How deep s has been used: from its top down to the lowest non-zero word. Pages never
 * touched (not resident) are skipped without reading them. A pooled stack keeps what
 * its past owners wrote, so this is exact only for a fresh stack, or one measured at
 * its last release with `clean` (GREEN_STACK_HWM), which has it zeroed on reuse. Read
 * below the live stack pointer too: not instrumented. */
__attribute__((no_sanitize("address")))
static size_t stack_scan(struct green_stack *s, int clean)
{
    unsigned char vec[64];
    for (char *p = s->lo; p < s->hi; p += sizeof vec * page_size) {
        size_t len = (size_t)(s->hi - p) < sizeof vec * page_size ? (size_t)(s->hi - p) : sizeof vec * page_size;
        if (mincore(p, len, vec) != 0)
            memset(vec, 1, sizeof vec);
        for (size_t i = 0; i < (len + page_size - 1) / page_size; i++) {
            if (!(vec[i] & 1))
                continue;
            const volatile uint64_t *w = (const uint64_t *)(void *)(p + i * page_size);
            const volatile uint64_t *end = (const uint64_t *)(void *)s->hi;
            for (size_t k = 0; k < page_size / 8 && w + k < end; k++)
                if (w[k]) {
                    char *low = (char *)(uintptr_t)(w + k);
                    if (clean && s->hot)
                        s->dirty = low;
                    return (size_t)(s->hi - low);
                }
        }
    }
    return 0;
}

size_t green__stack_hwm(struct green_stack *s, int clean)
{
    init();
    green_vg_quiet_begin(); /* what lies below a suspended one's stack pointer */
    size_t n = stack_scan(s, clean);
    green_vg_quiet_end();
    return n;
}

/* g is being reaped (GREEN_STACK_HWM): its stack's high-water mark, into h's histogram
 * (green_stats). Measured now, and the stack zeroed at its reuse, so the next owner's
 * measure is its own. */
void green__stack_reaped(struct green_hub *h, struct green *g)
{
    size_t m = 0;
    if (g->flags & GF_SHARED)
        m = (size_t)g->dbg.hwm * 16;
    else if (!(g->flags & GF_ROOT) && g->s.stack)
        m = green__stack_hwm(g->s.stack, 1);
    if (g->flags & GF_STARTED)
        h->hwm_hist[green__hwm_bucket(m)]++;
}

/* Called on the way out of an unguarded green thread; this frame's address stands for
 * its stack pointer. */
__attribute__((noinline)) void green__stack_check(const struct green *g)
{
    const struct green_stack *s = g->s.stack;
    volatile char here;
    char *sp = (char *)&here;
    const struct green_stack *b = s->below;
    if (sp < s->lo + 256 || (b && b->armed && *canary_slot(b) != canary_of(canary_slot(b))))
        green__overflow_abort(g, (size_t)(s->hi + GREEN_TOP_ZONE - s->lo));
}

void green__stack_stats(uint64_t *guarded, uint64_t *unguarded)
{
    *guarded = __atomic_load_n(&n_guarded, __ATOMIC_RELAXED);
    *unguarded = __atomic_load_n(&n_unguarded, __ATOMIC_RELAXED);
}

/* ---- the shared stack and the relay stack ---- */

#define GREEN_RELAY_SIZE (64u * 1024u)

int green__shared_init(struct green_hub *h)
{
    init();
    if (h->shared.lo)
        return 0;
    size_t map = shared_size + page_size;
    char *m = mmap(NULL, map, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
        errno = ENOMEM;
        return -1;
    }
    char *spare = mmap(NULL, shared_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (spare == MAP_FAILED) {
        munmap(m, map);
        errno = ENOMEM;
        return -1;
    }
    mprotect(m, page_size, PROT_NONE);
    h->shared.lo = m + page_size;
    h->shared.hi = m + map;
    h->shared.map_size = map;
    h->shared.vg_id = green_vg_register(h->shared.lo, h->shared.hi);
    h->shared.spare = spare;
    return 0;
}

/* ---- copying frames off and on the shared stack (inline: stack.h) ---- */

/* A copy-out that neither malloc nor the spare could hold. */
void green__shared_copy_failed(void)
{
    /* Cannot happen unless the spare was lent and could not be replaced, and the caller
     * did not check (green__shared_spare_ready). */
    static const char msg[] = "libgreen: out of memory saving a shared stack\n";
    ssize_t r = green__sys.write(2, msg, sizeof msg - 1);
    (void)r;
    abort();
}

/* ---- the spare copy buffer ---- */

/* The spare, lent to g: only mapped pages it touches cost memory. */
char *green__shared_spare_take(struct green_hub *h, struct green *g)
{
    char *s = h->shared.spare;
    if (!s || h->shared.spare_user)
        return NULL;
    h->shared.spare = NULL;
    h->shared.spare_user = g;
    return s;
}

/* g's frames are back on the shared stack (or it is gone): the buffer it had becomes the
 * spare again, its pages dropped, unless a new spare was made meanwhile. */
void green__shared_spare_return(struct green_hub *h, struct green *g)
{
    char *s = g->s.saved;
    g->s.saved = NULL;
    h->shared.spare_user = NULL;
    if (h->shared.spare) {
        munmap(s, shared_size);
    } else {
        madvise(s, shared_size, MADV_DONTNEED);
        h->shared.spare = s;
    }
}

int green__shared_spare_renew(struct green_hub *h)
{
    if (h->shared.spare)
        return 0;
    char *s = mmap(NULL, shared_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (s == MAP_FAILED) {
        errno = ENOMEM;
        return -1;
    }
    h->shared.spare = s;
    return 0;
}

int green__relay_stack(struct green_hub *h)
{
    init();
    char *relay = mmap(NULL, GREEN_RELAY_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (relay == MAP_FAILED) {
        errno = ENOMEM;
        return -1;
    }
    h->relay_stack = relay;
    h->relay_vg_id = green_vg_register(relay, relay + GREEN_RELAY_SIZE);
    return 0;
}

size_t green__relay_size(void) { return GREEN_RELAY_SIZE; }

void green__stacks_destroy(struct green_hub *h)
{
    struct green_pool *p = h->stack_pools;
    while (p) {
        struct green_pool *next = p->next;
        struct green_chunk *c = p->chunks;
        while (c) {
            struct green_chunk *cn = c->next;
            for (size_t i = 0; i < c->carved; i++) {
                slot_unmapped(&c->slot[i]);
                green_vg_deregister(c->slot[i].vg_id);
                /* frames that never returned left poison that would outlive the mapping */
                green_asan_unpoison(c->slot[i].lo, (size_t)(c->slot[i].hi - c->slot[i].lo));
            }
            munmap(c->base, c->nslots * p->slot_size);
            free(c);
            c = cn;
        }
        free(p);
        p = next;
    }
    h->stack_pools = NULL;
    if (h->shared.lo) {
        green_vg_deregister(h->shared.vg_id);
        green_asan_unpoison(h->shared.lo, (size_t)(h->shared.hi - h->shared.lo));
        munmap(h->shared.lo - page_size, h->shared.map_size);
        h->shared.lo = NULL;
        if (h->shared.spare_user) { /* its green thread is abandoned with the hub */
            munmap(h->shared.spare_user->s.saved, shared_size);
            h->shared.spare_user->s.saved = NULL;
            h->shared.spare_user = NULL;
        }
        if (h->shared.spare)
            munmap(h->shared.spare, shared_size);
        h->shared.spare = NULL;
    }
    if (h->relay_stack) {
        green_vg_deregister(h->relay_vg_id);
        green_asan_unpoison(h->relay_stack, GREEN_RELAY_SIZE);
        munmap(h->relay_stack, GREEN_RELAY_SIZE);
        h->relay_stack = NULL;
    }
    if (h->altstack) {
        stack_t ss = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
        sigaltstack(&ss, NULL);
        munmap(h->altstack, GREEN_ALTSTACK_SIZE);
        h->altstack = NULL;
    }
}
