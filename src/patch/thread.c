/*
 * thread.c — pthreads as green threads (gevent's patch_thread), opt-in with
 * GREEN_PATCH_THREADS=1 (or greenrun --threads).
 *
 * With the switch off, every wrapper here goes straight to libc (patch_real()): no change
 * at all. With it on, a program written with one thread per task runs its threads as
 * green threads of the calling OS thread's hub, at green-thread cost. The decisions:
 *
 * Threads. pthread_create, from any OS thread, spawns a green thread on that thread's
 * hub (made on first use): a dedicated, lazily committed stack of the attr's size when
 * the attr asks for one other than the process default (pthread_getattr_default_np),
 * else libgreen's default (256 KiB); a stack address in the attr is ignored. It runs
 * `tramp`, which calls the start routine under a setjmp: pthread_exit longjmps there
 * (through the cleanup handlers, see below), so its value is the join result and key
 * destructors run (PTHREAD_DESTRUCTOR_ITERATIONS rounds) before the green thread ends.
 * A green thread's pthread_t is its libgreen handle with bit 0 set (real pthread_t are
 * aligned pointers), so every call tells the kinds apart: a real one goes to libc, a
 * green one to libgreen. Control blocks are type-stable and handles carry a generation,
 * so a stale pthread_t gives ESRCH, never a crash. A green pthread of another hub (of the
 * group, GREEN_PATCH_HUBS, or another OS thread's) is served across hubs: join and
 * detach by libgreen's calls, cancel and kill sent to its hub (green_private_on_hub:
 * only that hub writes its fields) and carried out there, the queries read from here
 * (green_private_peek, green_private_attr). join of self: EDEADLK; of a detached one:
 * EINVAL. The root (main(), or whatever
 * OS thread runs the hub) keeps its real pthread_self(), so pthread_equal, joins and
 * pthread_kill of it mean what they always meant; a green thread spawned with
 * libgreen's own API gets a tagged pthread_t like the others.
 * pthread_exit in the root waits (running the hub) until every green pthread has ended,
 * then calls exit(0): the process ends with its last thread, as POSIX says. (If they can
 * never end, it reports the deadlock and aborts, rather than hang.)
 *
 * Synchronisation. Mutexes and conditions (mutex.c), rwlocks (rwlock.c), barriers and
 * spin locks (barrier.c) and semaphores (sem.c) keep their state in the objects' own
 * bytes, in glibc's layout, and their waiters in per-OS-thread queues (queue.c); see
 * thread.h. A green pthread's struct pth holds what they need of it (its wait node, the
 * list of mutexes it holds), allocated by pthread_create, so that they never allocate.
 *
 * Keys. pthread_key_create makes a real key too (plain threads and the root use libc's
 * values); green pthreads keep their values in a table of their own, allocated on first
 * setspecific, 32 keys a block. Each key has a sequence number, bumped by create and
 * delete, so a value set under a deleted key is not seen under its successor.
 *
 * Once. The control word takes glibc's values (0, 1 in progress, 2 done); a green thread
 * that finds it in progress parks until the runner finishes, which may itself park. If
 * the init routine is left by pthread_exit or cancellation, the control is reset and a
 * waiter runs it, as POSIX says.
 *
 * Cancellation. pthread_cancel of a green pthread is deferred cancellation: it marks it,
 * and (if enabled) kills it with green_kill so that its current wait ends. At every
 * cancellation point — patch_cancel_point() on entry and patch_testcancel() when a wait
 * failed with ECANCELED (patch.h), in every wrapper of a call POSIX makes one: the I/O
 * calls, the sleeps, pthread_join, pthread_cond_wait, sem_wait, pthread_testcancel — it
 * unwinds like pthread_exit(PTHREAD_CANCELED): the call never returns. From then on the
 * kill is held, so that cleanup handlers and destructors can wait again. Disabled
 * cancellation is a shield from kills (green_private.h): a cancel that comes meanwhile
 * takes effect at the first cancellation point after it is enabled again. Waits that are
 * no cancellation points shield from kills themselves. The C cleanup handlers
 * (pthread_cleanup_push/pop) of green pthreads are kept per green thread:
 * __pthread_register_cancel and friends are wrapped too. Asynchronous cancellation is
 * treated as deferred (the type is remembered and reported).
 *
 * What cannot follow:
 *  - __thread / _Thread_local variables are per OS thread: all green threads of a hub
 *    share them (pthread keys are per green thread). errno is per OS thread too, but
 *    libgreen saves it across switches, so each green thread sees its own.
 *  - green threads of a hub run one at a time: CPU-bound threads no longer run in
 *    parallel (nor is a busy one preempted: it holds the hub until it blocks or yields).
 *  - a signal cannot be sent to a green thread: pthread_kill(t, sig) delivers sig to the
 *    OS thread that runs t's hub (sig 0 still tests that t exists), and the blocking call
 *    its handler interrupts is t's (intr.c). A green pthread's signal mask
 *    (pthread_sigmask, sigprocmask) is its own and does not change which OS thread the
 *    kernel delivers to; only its SIGPIPE bit is applied to the OS thread (sigmask.c).
 *  - objects shared with plain OS threads (libgreen's thread pool, threads made behind
 *    pthread_create's back): see each object's file for what works.
 *  - C++ (or -fexceptions) cleanups do not run on pthread_exit or cancellation (the
 *    unwinding is a longjmp); pthread_cleanup_push's C form does.
 *  - scheduling, affinity, CPU clocks and names of a green pthread: thread_np.c;
 *    pthread_getattr_np reports the green thread's stack.
 *  - a stack's default size is a real thread's (RLIMIT_STACK's, 8 MiB as a rule), reserved,
 *    not committed; GREEN_PATCH_STACK_SIZE sets another (pthread_attr_setstacksize wins).
 */
#include "thread.h"

#include <dlfcn.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ======================================================================== */
/*  Green pthreads: identity, the trampoline, exit and cleanup handlers    */
/* ======================================================================== */

/* Per OS thread (per hub): green pthreads not yet ended, and a root waiting for them. */
static __thread uint64_t live;
static __thread green_t exit_waiter;

/* GREEN_PATCH_HUBS=N (2..1024): green pthreads are spread over N hubs of a group
 * (green_hubs_start), round-robin at creation, and stay where placed. Then they are
 * counted process-wide (they end on other OS threads than their creator's), and a root's
 * pthread_exit waits for all of them. 0: off (each OS thread's hub runs its own). */
static int spread_n = -1;
static uint64_t spread_live;     /* atomic */
static green_t spread_waiter;    /* atomic: a root in pthread_exit */
static unsigned spread_next;     /* atomic: round-robin */

static int spread(void)
{
    int n = __atomic_load_n(&spread_n, __ATOMIC_RELAXED);
    if (PATCH_LIKELY(n >= 0))
        return n;
    const char *v = getenv("GREEN_PATCH_HUBS");
    n = v && *v ? atoi(v) : 0;
    if (n < 2 || n > 1024)
        n = 0;
    __atomic_store_n(&spread_n, n, __ATOMIC_RELAXED);
    return n;
}

/* The hub the next green pthread goes to (0: the creator's): the group started first. */
static int spread_hub(void)
{
    int n = spread();
    if (!n)
        return 0;
    if (green_hub_count() < n) {
        int saved = errno;
        int r = green_hubs_start(n);
        errno = saved;
        if (r < n)
            return 0; /* no group (EAGAIN, ENOMEM): the creator's hub, as without it */
    }
    return 1 + (int)(__atomic_fetch_add(&spread_next, 1, __ATOMIC_RELAXED) % (unsigned)n);
}

static void *tramp(void *p);

/* The green pthread block of g, kept in its slot for this library (green_private_local)
 * from pthread_create until tramp ends. */
static inline struct pth *pth_of(green_t g) { return green_private_local(g); }

static inline int is_green(pthread_t t) { return (t & 1u) != 0; }
static inline pthread_t to_pthread(green_t g) { return (pthread_t)((uintptr_t)g | 1u); }
static inline green_t to_green(pthread_t t) { return (green_t)(t & ~(pthread_t)1u); }

/* This thread's hub with its loop, made on first use: 0, or -1 + errno. */
static int hub(void) { return green_private_hub_make(); }

/* Is t a green thread of this OS thread's hub? 0, or an error number (ESRCH for a stale
 * one, or one of another hub; EAGAIN without a hub). errno is left alone. */
static int check(pthread_t t)
{
    int saved = errno;
    int e = hub() != 0 ? EAGAIN : green_id(to_green(t)) != 0 ? 0 : ESRCH;
    errno = saved;
    return e;
}

/* check() for the calls that work across hubs (GREEN_PATCH_HUBS: all but pthread_self's
 * and the key calls, which concern the caller): t may be a green thread of any hub. */
static int check_any(pthread_t t)
{
    int saved = errno;
    int e = hub() != 0 ? EAGAIN : green_private_handle_ok(to_green(t)) == 0 ? 0 : ESRCH;
    errno = saved;
    return e;
}

int pth_check(pthread_t t) { return is_green(t) ? check(t) : -1; }
int pth_check_any(pthread_t t) { return is_green(t) ? check_any(t) : -1; }

void patch_die(const char *msg)
{
    ssize_t r = patch_real()->write(2, msg, strlen(msg));
    (void)r;
    abort();
}

/* Leave b's start routine: run the innermost cleanup handler, which comes back here
 * through __pthread_unwind_next, until none is left; then back to tramp. */
static __attribute__((noreturn)) void unwind(struct pth *b)
{
    __pthread_unwind_buf_t *c = b->cleanup;
    if (c) {
        b->cleanup = c->__pad[0];
        /* The handler's buffer is shorter than a jmp_buf: it has no signal mask, which
         * longjmp reads only when __mask_was_saved (0 here: __sigsetjmp(buf, 0)). */
#pragma GCC diagnostic push
#ifndef __clang__ /* (a GCC warning, unknown to clang) */
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
        longjmp((struct __jmp_buf_tag *)(void *)c->__cancel_jmp_buf, 1);
#pragma GCC diagnostic pop
    }
    longjmp(*b->exit_jb, 1);
}

static void keys_destroy(struct pth *b);

static void *tramp(void *p)
{
    struct pth *b = p;
    jmp_buf jb;
    b->exit_jb = &jb;
    if (setjmp(jb) == 0)
        b->retval = b->cancel_pending ? PTHREAD_CANCELED : b->fn(b->arg);
    keys_destroy(b);
    pm_owner_gone(&b->own); /* after the destructors, which may still use them */
    void *r = b->retval;
    int spread_one = b->spread;
    free(b->spec);
    free(b);
    green_private_set_local(NULL, NULL);
    if (spread_one) {
        green_t w;
        if (__atomic_sub_fetch(&spread_live, 1, __ATOMIC_ACQ_REL) == 0 &&
            (w = __atomic_exchange_n(&spread_waiter, NULL, __ATOMIC_ACQ_REL))) {
            int saved = errno;
            green_wake(w, 0); /* a root of any hub: sent there */
            errno = saved;
        }
    } else if (--live == 0 && exit_waiter) {
        green_wake(exit_waiter, 0);
        exit_waiter = NULL;
    }
    return r;
}

/* glibc's default stack size for new threads (from RLIMIT_STACK, or as the program set
 * it with pthread_setattr_default_np); 0 if it cannot say. */
static size_t process_default_stack(void)
{
    size_t dflt = 0;
    pthread_attr_t d;
    if (pthread_getattr_default_np(&d) == 0) {
        pthread_attr_getstacksize(&d, &dflt);
        pthread_attr_destroy(&d);
    }
    return dflt;
}

/* The stack of a green pthread whose attr does not name a size: GREEN_PATCH_STACK_SIZE
 * (bytes, k/K or m/M suffix) if set, else the size a real thread would get. Programs are
 * written for that size (siege keeps a 384 KiB buffer on a worker's stack), and a slot is
 * reserved, not committed: only the pages a thread touches cost memory. */
static size_t default_stack(void)
{
    static size_t cached;
    size_t n = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (n)
        return n;
    const char *v = getenv("GREEN_PATCH_STACK_SIZE");
    if (v && *v)
        n = patch_env_size(v);
    if (!n)
        n = process_default_stack();
    if (!n)
        n = 8u << 20;
    if (n < 16 * 1024)
        n = 16 * 1024; /* libgreen's least */
    __atomic_store_n(&cached, n, __ATOMIC_RELAXED);
    return n;
}

/* The stack size an attr asks for (default_stack() when it asks for the process's
 * default). */
static size_t attr_stack_size(const pthread_attr_t *attr)
{
    size_t size = 0;
    if (!attr || pthread_attr_getstacksize(attr, &size) != 0 || size == process_default_stack())
        return default_stack();
    if (size < 16 * 1024)
        size = 16 * 1024; /* libgreen's least */
    return size;
}

int pthread_create(pthread_t *restrict t, const pthread_attr_t *restrict attr, void *(*fn)(void *),
                   void *restrict arg)
{
    if (!patch_threads || green_private_sys_internal()) /* off, or libgreen's own thread */
        return patch_real()->pthread_create(t, attr, fn, arg);
    green_attr_t ga = {0};
    int detach = PTHREAD_CREATE_JOINABLE;
    ga.stack_size = attr_stack_size(attr);
    if (attr)
        pthread_attr_getdetachstate(attr, &detach);
    int saved = errno;
    struct pth *b = calloc(1, sizeof *b);
    if (b && !patch_sigmask_green(&b->mask)) { /* the creator's mask (sigmask.c) */
        sigemptyset(&b->mask);
        patch_real()->pthread_sigmask(SIG_BLOCK, NULL, &b->mask);
    }
    if (b && hub() == 0) {
        ga.hub = spread_hub();
        b->spread = ga.hub != 0;
        b->fn = fn; /* before it can run: on another hub it may start at once */
        b->arg = arg;
        if (b->spread)
            __atomic_add_fetch(&spread_live, 1, __ATOMIC_ACQ_REL);
    }
    /* its slot holds b before it can run (on another hub, too); on another hub it may
     * have ended, and b be freed, when the spawn returns: b is not read after it */
    int spread = b && b->spread;
    green_t g = b && hub() == 0 ? green_private_spawn_local(tramp, b, &ga, b) : NULL;
    if (!g) {
        if (spread)
            __atomic_sub_fetch(&spread_live, 1, __ATOMIC_ACQ_REL);
        int e = errno == EINVAL ? EINVAL : EAGAIN;
        free(b);
        errno = saved;
        return e;
    }
    if (!spread)
        live++;
    if (detach == PTHREAD_CREATE_DETACHED)
        green_detach(g);
    *t = to_pthread(g);
    errno = saved;
    return 0;
}
GREEN_PATCH_THREAD(pthread_create);

pthread_t pthread_self(void)
{
    green_t g;
    if (!patch_threads || !patch_here() || (g = green_current()) == green_root())
        return patch_real()->pthread_self();
    return to_pthread(g);
}
GREEN_PATCH_THREAD(pthread_self);

int pthread_equal(pthread_t a, pthread_t b) { return a == b; }
GREEN_PATCH_THREAD(pthread_equal);

/* The root's pthread_exit: wait for the green pthreads, then end the process. */
static __attribute__((noreturn)) void root_exit(void)
{
    while (__atomic_load_n(&spread_live, __ATOMIC_ACQUIRE)) {
        /* green pthreads of other hubs end there: their wake is sent here, so the park
         * holds an outside reference (never a deadlock), and looks again now and then in
         * case the wake came before the park */
        __atomic_store_n(&spread_waiter, green_root(), __ATOMIC_RELEASE);
        if (!__atomic_load_n(&spread_live, __ATOMIC_ACQUIRE))
            break;
        green_private_hub_ref(1);
        green_park(green_after(50));
        green_private_hub_ref(-1);
    }
    while (live) {
        exit_waiter = green_root();
        int r = green_park(-1);
        exit_waiter = NULL;
        if (r != 0 && errno == EDEADLK)
            patch_die("libgreen-patch: pthread_exit in the root: the remaining green threads "
                "can never finish (deadlock)\n");
    }
    exit(0);
}

void pthread_exit(void *value)
{
    if (patch_threads && patch_here()) {
        struct pth *b = pth_self();
        if (b) {
            b->retval = value;
            unwind(b);
        }
        if (green_current() == green_root())
            root_exit();
        patch_die("libgreen-patch: pthread_exit in a green thread not started by pthread_create\n");
    }
    patch_real()->pthread_exit(value);
    __builtin_unreachable();
}
GREEN_PATCH_THREAD(pthread_exit);

/* The C form of pthread_cleanup_push/pop: a green pthread keeps its own chain. */
void __pthread_register_cancel(__pthread_unwind_buf_t *buf)
{
    struct pth *b = patch_threads ? pth_self() : NULL;
    if (!b) {
        patch_real()->__pthread_register_cancel(buf);
        return;
    }
    buf->__pad[0] = b->cleanup;
    b->cleanup = buf;
}
GREEN_PATCH_THREAD(__pthread_register_cancel);

void __pthread_unregister_cancel(__pthread_unwind_buf_t *buf)
{
    struct pth *b = patch_threads ? pth_self() : NULL;
    if (!b) {
        patch_real()->__pthread_unregister_cancel(buf);
        return;
    }
    b->cleanup = buf->__pad[0];
}
GREEN_PATCH_THREAD(__pthread_unregister_cancel);

void __pthread_unwind_next(__pthread_unwind_buf_t *buf)
{
    struct pth *b = patch_threads ? pth_self() : NULL;
    if (!b) {
        patch_real()->__pthread_unwind_next(buf);
        __builtin_unreachable();
    }
    unwind(b);
}
GREEN_PATCH_THREAD(__pthread_unwind_next);

/* ======================================================================== */
/*  Waiting as pthreads wait                                                */
/* ======================================================================== */

int shield(int what)
{
    int saved = errno, got = 0;
    for (int part = GREEN_SHIELD_KILLS; part <= GREEN_SHIELD_TIMEOUTS; part <<= 1)
        if ((what & part) && green_private_shield_push(part) == 0)
            got |= part;
    errno = saved;
    return got;
}

void unshield(int what)
{
    int saved = errno;
    /* LIFO: the timeout scope was pushed last */
    for (int part = GREEN_SHIELD_TIMEOUTS; part >= GREEN_SHIELD_KILLS; part >>= 1)
        if (what & part)
            green_private_shield_pop(part);
    errno = saved;
}

/* At a cancellation point of green pthread b: unwind as pthread_exit(PTHREAD_CANCELED)
 * when a cancel (or a kill) is due. The kill is held from then on (a kill shield that is
 * never popped, unless the thread enables cancellation again), so that cleanup handlers
 * and key destructors can wait; further cancels are ignored. */
static void testcancel(struct pth *b)
{
    if (b->cancel_disabled || (!b->cancel_pending && !green_cancelled()))
        return;
    green_private_shield_push(GREEN_SHIELD_KILLS); /* b's slot is set: cannot run out of memory */
    b->cancel_disabled = 1;
    b->retval = PTHREAD_CANCELED;
    unwind(b);
}

void patch_cancel_point_slow(void)
{
    struct pth *b = pth_self();
    if (b)
        testcancel(b);
}

int64_t deadline_of(clockid_t clk, const struct timespec *abs)
{
    struct timespec now;
    if (!abs || (clk != CLOCK_REALTIME && clk != CLOCK_MONOTONIC) || abs->tv_nsec < 0 ||
        abs->tv_nsec >= 1000000000 || clock_gettime(clk, &now) != 0)
        return -1;
    int64_t sec = (int64_t)abs->tv_sec - now.tv_sec;
    if (sec > 1000000000)
        sec = 1000000000; /* 30 years: as good as never, without overflow */
    int64_t ns = sec * 1000000000 + (abs->tv_nsec - now.tv_nsec);
    if (ns <= 0)
        return 0;
    return green_now() + (ns + 999999) / 1000000;
}

/* The initial thread, whose pthread calls are green from the start (a plain thread's
 * pass straight through until it calls pthread_create). */
static pthread_t initial_thread;

__attribute__((constructor)) static void patch_thread_init(void)
{
    initial_thread = patch_real()->pthread_self();
}

/* OS threads whose pthread calls have been green (never decreases: see thread.h). */
static int green_os_threads;
/* This OS thread's pthread calls have been green: its hub and loop were made (a fork
 * child's fresh hub makes its loop again where a wait needs it). */
static __thread int counted PATCH_TLS_FAST;

/* With GREEN_PATCH_HUBS, from the start: the first waiter on a hub of the group may park
 * before any green pthread of another hub has counted its OS thread, and the object's
 * release may come from there (a barrier whose first arrivals were all on hub 2 waited
 * for ever: pgbench under GREEN_PATCH_HUBS=2 hung at its start). */
int patch_many_hubs(void)
{
    return __atomic_load_n(&green_os_threads, __ATOMIC_RELAXED) > 1 || spread() > 1;
}

int green_here(void)
{
    if (!patch_threads)
        return 0;
    if (PATCH_LIKELY(counted) && patch_here())
        return 1;
    if (patch_here() || patch_real()->pthread_equal(patch_real()->pthread_self(), initial_thread)) {
        int saved = errno;
        int ok = hub() == 0;
        errno = saved;
        if (ok && !counted) {
            counted = 1;
            __atomic_add_fetch(&green_os_threads, 1, __ATOMIC_RELAXED);
        }
        return ok;
    }
    return 0;
}

/* The root's: it never ends, so a thread-local one does. */
static __thread struct powner root_own;

struct powner *powner_self(void)
{
    struct pth *b = pth_self();
    if (b)
        return &b->own;
    return green_current() == green_root() ? &root_own : NULL;
}

/* ======================================================================== */
/*  join, detach, cancel, kill                                              */
/* ======================================================================== */

/* Join green thread t by deadline (-1 never, 0 try); an error number. A cancellation
 * point, after the checks that fail at once (as glibc's). */
static int join(pthread_t t, void **ret, int64_t deadline)
{
    int e = check_any(t);
    if (e)
        return e;
    void *lo;
    size_t size;
    int detached = 0, saved = errno;
    green_private_attr(to_green(t), &lo, &size, &detached);
    errno = saved;
    if (to_green(t) == green_current())
        return EDEADLK;
    if (detached)
        return EINVAL;
    patch_cancel_point();
    int s = shield(GREEN_SHIELD_TIMEOUTS);
    e = green_join(to_green(t), ret, deadline) == 0 ? 0 : errno;
    errno = saved;
    unshield(s);
    if (e == ECANCELED)
        patch_testcancel();
    return e == EXDEV ? ESRCH : e;
}

int pthread_join(pthread_t t, void **ret)
{
    if (!patch_threads || !is_green(t))
        return patch_real()->pthread_join(t, ret);
    return join(t, ret, -1);
}
GREEN_PATCH_THREAD(pthread_join);

int pthread_tryjoin_np(pthread_t t, void **ret)
{
    if (!patch_threads || !is_green(t))
        return patch_real()->pthread_tryjoin_np(t, ret);
    int e = join(t, ret, 0);
    return e == ETIMEDOUT ? EBUSY : e;
}
GREEN_PATCH_THREAD(pthread_tryjoin_np);

int pthread_clockjoin_np(pthread_t t, void **ret, clockid_t clk, const struct timespec *abs)
{
    if (!patch_threads || !is_green(t))
        return patch_real()->pthread_clockjoin_np(t, ret, clk, abs);
    int64_t d = deadline_of(clk, abs);
    return d < 0 ? EINVAL : join(t, ret, d);
}
GREEN_PATCH_THREAD(pthread_clockjoin_np);

int pthread_timedjoin_np(pthread_t t, void **ret, const struct timespec *abs)
{
    if (!patch_threads || !is_green(t))
        return patch_real()->pthread_timedjoin_np(t, ret, abs);
    int64_t d = deadline_of(CLOCK_REALTIME, abs);
    return d < 0 ? EINVAL : join(t, ret, d);
}
GREEN_PATCH_THREAD(pthread_timedjoin_np);

int pthread_detach(pthread_t t)
{
    if (!patch_threads || !is_green(t))
        return patch_real()->pthread_detach(t);
    int e = check_any(t);
    if (e)
        return e;
    int saved = errno;
    e = green_detach(to_green(t)) == 0 ? 0 : errno;
    errno = saved;
    return e == EXDEV ? ESRCH : e;
}
GREEN_PATCH_THREAD(pthread_detach);

/* The cancel of g, on g's hub (green_private_on_hub: its fields are its hub's to write). */
static void cancel_here(green_t g, void *unused)
{
    (void)unused;
    struct pth *b = pth_of(g);
    if (!b) {
        if (green_dead(g) == 0)
            green_kill(g); /* a green thread of libgreen's own API */
    } else {
        b->cancel_pending = 1;
        /* an unstarted one sees the mark in tramp and never runs its routine */
        if (!b->cancel_disabled && green_started(g) == 1)
            green_kill(g);
    }
}

/* On another hub's green pthread the cancel is sent there, and carried out when that hub
 * next runs its loop (as green_kill across hubs). */
int pthread_cancel(pthread_t t)
{
    if (!patch_threads || !is_green(t))
        return patch_real()->pthread_cancel(t);
    int e = check_any(t);
    if (e)
        return e;
    int saved = errno;
    e = green_private_on_hub(to_green(t), cancel_here, NULL, 0) == 0 ? 0 : errno;
    errno = saved;
    return e;
}
GREEN_PATCH_THREAD(pthread_cancel);

int pthread_setcancelstate(int state, int *old)
{
    struct pth *b = patch_threads ? pth_self() : NULL;
    if (!b)
        return patch_real()->pthread_setcancelstate(state, old);
    if (state != PTHREAD_CANCEL_ENABLE && state != PTHREAD_CANCEL_DISABLE)
        return EINVAL;
    if (old)
        *old = b->cancel_disabled ? PTHREAD_CANCEL_DISABLE : PTHREAD_CANCEL_ENABLE;
    int was = b->cancel_disabled;
    b->cancel_disabled = state == PTHREAD_CANCEL_DISABLE;
    int saved = errno;
    if (b->cancel_disabled && !was) {
        green_private_shield_push(GREEN_SHIELD_KILLS); /* a kill, the cancel's, is held */
    } else if (!b->cancel_disabled && was) {
        green_private_shield_pop(GREEN_SHIELD_KILLS); /* a held kill takes effect */
        if (b->cancel_pending)
            green_kill(green_current()); /* blocking calls now end, and act on it */
    }
    errno = saved;
    return 0;
}
GREEN_PATCH_THREAD(pthread_setcancelstate);

int pthread_setcanceltype(int type, int *old)
{
    struct pth *b = patch_threads ? pth_self() : NULL;
    if (!b)
        return patch_real()->pthread_setcanceltype(type, old);
    if (type != PTHREAD_CANCEL_DEFERRED && type != PTHREAD_CANCEL_ASYNCHRONOUS)
        return EINVAL;
    if (old)
        *old = b->cancel_async ? PTHREAD_CANCEL_ASYNCHRONOUS : PTHREAD_CANCEL_DEFERRED;
    b->cancel_async = type == PTHREAD_CANCEL_ASYNCHRONOUS; /* remembered; acts as deferred */
    return 0;
}
GREEN_PATCH_THREAD(pthread_setcanceltype);

void pthread_testcancel(void)
{
    struct pth *b = patch_threads ? pth_self() : NULL;
    if (b)
        testcancel(b);
    else
        patch_real()->pthread_testcancel();
}
GREEN_PATCH_THREAD(pthread_testcancel);

/* pthread_kill(t, sig) on t's hub: the delivery is t's, to the OS thread running it. */
static void kill_here(green_t g, void *sig)
{
    int s;
    memcpy(&s, sig, sizeof s);
    patch_intr_direct(g, s);
    patch_real()->pthread_kill(patch_real()->pthread_self(), s);
}

/* A signal cannot target a green thread: it goes to the OS thread running t's hub, and
 * the call its handler interrupts is t's. On another hub's green pthread, the signal is
 * sent from that hub (which notes t as its target first) when it next runs its loop. */
int pthread_kill(pthread_t t, int sig)
{
    if (!patch_threads || !is_green(t))
        return patch_real()->pthread_kill(t, sig);
    int e = check_any(t);
    if (e)
        return e;
    int saved = errno;
    unsigned long os;
    int dead = green_private_peek(to_green(t), &os, NULL);
    errno = saved;
    if (dead != 0)
        return ESRCH;
    if (sig < 0 || sig >= NSIG)
        return EINVAL;
    if (sig == 0)
        return 0;
    if ((pthread_t)os != patch_real()->pthread_self()) {
        e = green_private_on_hub(to_green(t), kill_here, &sig, sizeof sig) == 0 ? 0 : errno;
        errno = saved;
        return e;
    }
    patch_intr_direct(to_green(t), sig);
    return patch_real()->pthread_kill(patch_real()->pthread_self(), sig);
}
GREEN_PATCH_THREAD(pthread_kill);

/* A green thread's attributes: its stack (dedicated mode) and detach state. */
int pthread_getattr_np(pthread_t t, pthread_attr_t *attr)
{
    if (!patch_threads || !is_green(t))
        return patch_real()->pthread_getattr_np(t, attr);
    int e = check_any(t);
    if (e)
        return e;
    int r = pthread_attr_init(attr);
    if (r != 0)
        return r;
    void *lo;
    size_t size;
    int detached, saved = errno;
    if (green_private_attr(to_green(t), &lo, &size, &detached) == 0) {
        if (lo)
            pthread_attr_setstack(attr, lo, size);
        if (detached)
            pthread_attr_setdetachstate(attr, PTHREAD_CREATE_DETACHED);
    }
    errno = saved;
    return 0;
}
GREEN_PATCH_THREAD(pthread_getattr_np);

int pthread_setname_np(pthread_t t, const char *name)
{
    static __typeof__(pthread_setname_np) *real;
    if (!patch_threads || !is_green(t)) {
        if (!real)
            real = (__typeof__(real))dlsym(RTLD_NEXT, "pthread_setname_np");
        return real ? real(t, name) : ENOSYS;
    }
    return check_any(t); /* accepted and ignored */
}
GREEN_PATCH_THREAD(pthread_setname_np);

int sched_yield(void)
{
    if (!patch_threads || !patch_here())
        return patch_real()->sched_yield();
    int saved = errno;
    green_yield();
    errno = saved;
    return 0;
}
GREEN_PATCH_THREAD(sched_yield);

/* ======================================================================== */
/*  Keys                                                                    */
/* ======================================================================== */

/* Recorded even with the switch off, so that keys made before it is read are known.
 * One record a key, not an array a field: a program's few keys are then on one page
 * (they were on three) and a lookup reads one cache line. */
static struct {
    void (*dtor)(void *);
    unsigned seq;
    /* made before libc was initialised (a sanitizer runtime's pre-init: ASan keeps its
     * per-thread state in one): the OS thread's, green threads or not */
    uint8_t os;
} keys[PTHREAD_KEYS_MAX] GREEN_BIG_BSS;
extern char **environ;

int pthread_key_create(pthread_key_t *k, void (*dtor)(void *))
{
    int r = patch_real()->pthread_key_create(k, dtor);
    if (r == 0 && *k < PTHREAD_KEYS_MAX) {
        __atomic_store_n(&keys[*k].dtor, dtor, __ATOMIC_RELAXED);
        __atomic_store_n(&keys[*k].os, environ == NULL, __ATOMIC_RELAXED);
        __atomic_add_fetch(&keys[*k].seq, 1, __ATOMIC_RELEASE);
    }
    return r;
}
GREEN_PATCH_THREAD(pthread_key_create);

int pthread_key_delete(pthread_key_t k)
{
    int r = patch_real()->pthread_key_delete(k);
    if (r == 0 && k < PTHREAD_KEYS_MAX) {
        __atomic_store_n(&keys[k].dtor, NULL, __ATOMIC_RELAXED);
        __atomic_add_fetch(&keys[k].seq, 1, __ATOMIC_RELEASE);
    }
    return r;
}
GREEN_PATCH_THREAD(pthread_key_delete);

static struct spec *spec_of(struct pth *b, pthread_key_t k, int make)
{
    if (!b->spec) {
        if (!make || !(b->spec = calloc(KEY_BLOCKS, sizeof *b->spec)))
            return NULL;
    }
    struct spec **blk = &b->spec[k / KEY_BLOCK];
    if (!*blk && (!make || !(*blk = calloc(KEY_BLOCK, sizeof **blk))))
        return NULL;
    return &(*blk)[k % KEY_BLOCK];
}

void *pthread_getspecific(pthread_key_t k)
{
    struct pth *b = k < PTHREAD_KEYS_MAX && !keys[k].os && patch_threads ? pth_self() : NULL;
    if (!b)
        return patch_real()->pthread_getspecific(k);
    struct spec *e = k < PTHREAD_KEYS_MAX ? spec_of(b, k, 0) : NULL;
    return e && e->seq == __atomic_load_n(&keys[k].seq, __ATOMIC_ACQUIRE) ? e->value : NULL;
}
GREEN_PATCH_THREAD(pthread_getspecific);

int pthread_setspecific(pthread_key_t k, const void *value)
{
    struct pth *b = k < PTHREAD_KEYS_MAX && !keys[k].os && patch_threads ? pth_self() : NULL;
    if (!b)
        return patch_real()->pthread_setspecific(k, value);
    if (k >= PTHREAD_KEYS_MAX)
        return EINVAL;
    struct spec *e = spec_of(b, k, value != NULL);
    if (!e)
        return value ? ENOMEM : 0;
    e->seq = __atomic_load_n(&keys[k].seq, __ATOMIC_ACQUIRE);
    e->value = (void *)value;
    return 0;
}
GREEN_PATCH_THREAD(pthread_setspecific);

/* At the end of green pthread b: call the destructor of every non-NULL value, again
 * while destructors set new ones, at most PTHREAD_DESTRUCTOR_ITERATIONS times. */
static void keys_destroy(struct pth *b)
{
    for (int round = 0; b->spec && round < PTHREAD_DESTRUCTOR_ITERATIONS; round++) {
        int again = 0;
        for (pthread_key_t k = 0; k < PTHREAD_KEYS_MAX; k++) {
            struct spec *blk = b->spec[k / KEY_BLOCK];
            if (!blk) {
                k += KEY_BLOCK - 1;
                continue;
            }
            struct spec *e = &blk[k % KEY_BLOCK];
            void (*dtor)(void *) = __atomic_load_n(&keys[k].dtor, __ATOMIC_RELAXED);
            void *v = e->value;
            if (!v || e->seq != __atomic_load_n(&keys[k].seq, __ATOMIC_ACQUIRE))
                continue;
            e->value = NULL;
            if (dtor) {
                dtor(v);
                again = 1;
            }
        }
        if (!again)
            break;
    }
    for (int i = 0; b->spec && i < KEY_BLOCKS; i++)
        free(b->spec[i]);
}

/* ======================================================================== */
/*  Once                                                                    */
/* ======================================================================== */

/* glibc's values: a plain thread's pthread_once agrees with ours on the same control. */
enum { ONCE_BUSY = 1, ONCE_DONE = 2 };

static void once_wake(pthread_once_t *o)
{
    struct pwait *w;
    while ((w = pq_pop(o)))
        pq_wake(w, 0);
    patch_real()->syscall(SYS_futex, o, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0); /* plain threads */
}

/* The routine was left by pthread_exit or cancellation: as if never called. */
static void once_reset(void *o)
{
    __atomic_store_n((pthread_once_t *)o, 0, __ATOMIC_RELEASE);
    once_wake(o);
}

static void once_run(pthread_once_t *o, void (*init)(void))
{
    pthread_cleanup_push(once_reset, o);
    init();
    pthread_cleanup_pop(0);
    __atomic_store_n(o, ONCE_DONE, __ATOMIC_RELEASE);
    once_wake(o);
}

/* Park until o's runner is done; not a cancellation point. A plain thread that runs
 * it would not wake us: look again now and then. */
static void once_wait(pthread_once_t *o)
{
    struct pwait *w = pq_node(powner_self(), PQ_ONCE);
    int s = shield(SHIELD_ALL);
    while (__atomic_load_n(o, __ATOMIC_ACQUIRE) == ONCE_BUSY && (!w || !w->done)) {
        if (w && !w->obj)
            pq_push(w, o);
        pq_park(-1, 100);
    }
    if (w)
        pq_remove(w);
    unshield(s);
    pq_node_done(w);
}

int pthread_once(pthread_once_t *o, void (*init)(void))
{
    if (!patch_threads || !green_here())
        return patch_real()->pthread_once(o, init);
    for (;;) {
        int v = __atomic_load_n(o, __ATOMIC_ACQUIRE);
        if (v & ONCE_DONE)
            return 0;
        if (v == 0 && __atomic_compare_exchange_n(o, &v, ONCE_BUSY, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
            once_run(o, init);
            return 0;
        }
        if (v != 0)
            once_wait(o);
    }
}
GREEN_PATCH_THREAD(pthread_once);
