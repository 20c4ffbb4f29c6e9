/*
 * patch.h — what the files of libgreen-patch.so share (layer 7, "Patch").
 *
 * libgreen-patch.so interposes libc's blocking calls. Each wrapper asks patch_here():
 * when the calling OS thread runs a hub (it is a green thread, or the root of a hub),
 * the call is made cooperatively with libgreen and parks only the calling green thread;
 * otherwise (a plain thread, before any hub exists) it goes straight to libc through
 * patch_real(), so a wrapper never catches libgreen's own calls (libgreen calls libc
 * through its own table, sys.h).
 *
 * The library uses libgreen.so through its public API (green.h) and its private
 * interface (green_private.h, functions only): it sees no structure of the core. It
 * exports only the libc names it interposes and green_patch_report (green_patch.h);
 * everything else here is hidden.
 *
 * Every wrapper is declared with GREEN_PATCH(name) next to its definition; the list
 * lands in a linker section that green_patch_report() walks, so the report cannot
 * forget a symbol.
 */
#ifndef PATCH_H
#define PATCH_H

#include <green.h>
#include <green_patch.h>

#include "../green_private.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#define PATCH_LIKELY(x) __builtin_expect(!!(x), 1)
/* For the few thread-locals of hot paths: no __tls_get_addr call. The library is
 * preloaded or linked, so its thread-locals are in the initial TLS block (a few bytes of
 * this kind also fit the surplus glibc keeps for a late dlopen). */
#define PATCH_TLS_FAST __attribute__((tls_model("initial-exec")))
#define PATCH_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* libc's functions as the wrappers' pass-through reaches them: the next definitions
 * after libgreen-patch.so (libc's, past any sanitizer interceptor that came first).
 * Filled on first use with dlsym(RTLD_NEXT), which is safe even from a sanitizer's
 * pre-init code, before libc is initialised (dlopen there is not). */
extern struct green_sys patch_real_tab;
extern int patch_real_ready;
struct green_sys *patch_real_init(void);
static inline struct green_sys *patch_real(void)
{
    if (PATCH_UNLIKELY(!__atomic_load_n(&patch_real_ready, __ATOMIC_ACQUIRE)))
        return patch_real_init();
    return &patch_real_tab;
}

/* Nonzero while a handler of the program's runs on this OS thread (intr.c's trampoline):
 * a wrapper called there is in async-signal context and must not park. */
extern __thread unsigned patch_in_handler __attribute__((tls_model("initial-exec")));
/* 1 if the handler that patch_in_handler counts was left by a longjmp (the caller stands
 * above its frame): the count is reset. (intr.c) */
int patch_handler_left(void);

/* 1 when the caller may park: this OS thread has a hub (created by its use of libgreen)
 * and no signal handler is running on it. */
static inline int patch_here(void)
{
    return green_private_hub_here() && (PATCH_LIKELY(!patch_in_handler) || patch_handler_left());
}

/* An environment variable's size: bytes, with an optional k/K or m/M suffix (0 when it
 * says none; SIZE_MAX when too large). (patch.c) */
size_t patch_env_size(const char *v);

/* 1 when thread patching is on (GREEN_PATCH_THREADS=1), read on first use: a
 * sanitizer runtime that is not first in the library list can make our constructor run
 * before the environment is readable. */
extern int patch_threads_cached; /* -1 until read */
int patch_threads_read(void);
#define patch_threads (PATCH_LIKELY(patch_threads_cached >= 0) ? patch_threads_cached : patch_threads_read())

/*
 * Cancellation points (GREEN_PATCH_THREADS=1). A green pthread that pthread_cancel has
 * cancelled (cancellation enabled) leaves at the first POSIX cancellation point it is in
 * or enters, as by pthread_exit(PTHREAD_CANCELED): cleanup handlers and key destructors
 * run, the join result is PTHREAD_CANCELED, the call never returns. The contract for
 * every wrapper of a call POSIX makes a cancellation point (read, write, poll, the sleeps,
 * sigwait, waitpid, epoll_wait, ...):
 *  1. first thing, before it allocates or registers anything: patch_cancel_point();
 *  2. when its wait fails with ECANCELED (a kill: pthread_cancel kills the green thread
 *     so that its wait ends), once it has released what it holds (a buffer, a private
 *     epoll fd, a registration): patch_testcancel(). For a cancelled green pthread it
 *     does not return; otherwise (a green thread killed through libgreen's own API,
 *     green_kill) it returns and the wrapper fails with -1/ECANCELED as before.
 * A wrapper that has moved data before its wait failed returns the count as usual (the
 * next cancellation point acts). Both cost a load and a branch with the switch off.
 * (thread.c)
 */
void patch_cancel_point_slow(void);
static inline void patch_cancel_point(void)
{
    if (PATCH_UNLIKELY(patch_threads_cached > 0))
        patch_cancel_point_slow();
}
static inline void patch_testcancel(void) { patch_cancel_point(); }

/* Ends the process with msg on stderr: a deadlock nothing can undo. (thread.c) */
__attribute__((noreturn, cold)) void patch_die(const char *msg);

/*
 * Native locks held across a park (without GREEN_PATCH_THREADS). The pass-through
 * pthread_mutex_lock/trylock/timedlock/clocklock and unlock of a green thread keep count
 * of the native mutexes it holds (native.c). A green thread that parks while holding
 * one invites a silent deadlock: another green thread of the same OS thread that locks
 * it blocks the whole OS thread, and the holder can never run again to unlock it. So
 * every wrapper calls patch_parking() where it is about to park (or yield) the calling
 * green thread: with a native mutex held, it reports once per call site, to stderr
 * (green thread, mutex, where it was locked, a backtrace), before the deadlock can
 * happen. patch_poll (so pfd_wait), the sleeps and the DNS lookups call it: a wrapper
 * that waits through them needs nothing more; one that parks by libgreen's API itself
 * (green_wait_fd, green_signal_take, green_waitpid, green_park, green_yield, ...) calls
 * it right before. Nothing is held: one thread-local load and a branch.
 */
extern __thread unsigned patch_native_held PATCH_TLS_FAST; /* entries in this OS thread's table */
void patch_parking_report(void);
static inline void patch_parking(void)
{
    if (PATCH_UNLIKELY(patch_native_held))
        patch_parking_report();
}
/* A wait (poll, select, epoll_wait) that returns without parking — something was ready,
 * or its timeout was zero: yield once, so that an event loop that always finds work
 * (redis-benchmark's threads, each with its own epoll loop over always-writable
 * sockets) lets the hub's other green threads run, as the kernel's preemption does for
 * real threads; without it one loop held the hub for good. Not while a native mutex is
 * held (another green thread could block on it). errno is kept. */
static inline void patch_zero_wait(void)
{
    if (PATCH_LIKELY(!patch_native_held)) {
        int e = errno;
        green_yield();
        errno = e;
    }
}
/* After libc's lock of m returned e in a pass-through path: e (counted when it is held
 * by a green thread); and before libc's unlock. `site` is the lock's caller. */
int patch_native_lock(void *m, int e, void *site);
void patch_native_unlock(void *m);
/* A green thread is about to wait on obj (queue.c): an object in the thread-local
 * storage its hub's green pthreads share is reported, once per process (tlocal.c). */
void patch_tlocal_wait(const void *obj);
/* For reports (native.c): is pc in libgreen-patch.so or libgreen.so? pc as
 * "function+0x12" where its object exports the function, else "object+0x1234". */
int patch_ours(void *pc);
const char *patch_where(void *pc, char *buf, size_t n);

/*
 * Signal handlers interrupt blocking calls as the kernel does (intr.c). A wrapper whose
 * wait a handler would interrupt in the kernel keeps one record per call, NULL at first:
 *
 *     struct patch_intr *in = NULL;
 *     ...  if (patch_intr_park(&in, PATCH_INTR_RESTART, NULL) != 0) fail with EINTR;
 *          park (green_wait_fd, green_sleep_until, patch_poll, patch_intr_pause, ...);
 *          a park that fails with EINTR was interrupted: the call fails with EINTR
 *          (or returns what it has done so far, as a partial write does);
 *     patch_intr_end(&in);   on every way out (errno kept)
 *
 * patch_intr_park is called before each park of the call (in NULL: the call is not
 * interruptible): the first makes the record, so a handler that runs from then until
 * patch_intr_end (parked or not) interrupts the call; one that ran before interrupts
 * nothing, as in the kernel. An interruption ends the park it finds (green_wake with
 * EINTR), or, if the green thread is not parked then, its next patch_intr_park
 * (-1/EINTR). Until the program has installed a handler, no record is made (nothing
 * could interrupt the call). The kinds, as signal(7) lists the calls:
 */
enum patch_intr_kind {
    PATCH_INTR_RESTART, /* read, write, accept, connect, waitpid, flock, sem_wait...:
                         * restarted (the wait goes on) after a handler with SA_RESTART */
    PATCH_INTR_ALWAYS,  /* poll, select, epoll_wait, the sleeps, sigsuspend,
                         * sem_timedwait, sigtimedwait...: ended by every handler */
};
struct patch_intr;
/* 0: park; -1 + EINTR: a handler has interrupted the call. `mask` (for the first call;
 * NULL: none) is a signal mask the call waits with, as sigsuspend's, ppoll's and
 * pselect's: only handlers of signals it does not block end the call, and the signals it
 * lets in that the OS thread blocks are delivered (to it) while the hub is idle. Without
 * memory for the record the call is simply not interruptible. */
int patch_intr_park_slow(struct patch_intr **in, enum patch_intr_kind kind, const sigset_t *mask);
extern int patch_intr_any; /* the program has installed a handler (intr.c) */
static inline int patch_intr_park(struct patch_intr **in, enum patch_intr_kind kind, const sigset_t *mask)
{
    if (PATCH_LIKELY(in && !*in && !mask && !__atomic_load_n(&patch_intr_any, __ATOMIC_RELAXED)))
        return 0; /* no handler of the program's: nothing can interrupt the call */
    return patch_intr_park_slow(in, kind, mask);
}
/* The call is over: forget the record (NULL allowed). 1 if a handler interrupted it. */
int patch_intr_forget(struct patch_intr **in);
static inline int patch_intr_end(struct patch_intr **in)
{
    return PATCH_UNLIKELY(in && *in) ? patch_intr_forget(in) : 0; /* most calls never park */
}
/* Park until a handler interrupts the call, or until deadline (-1 none): always -1, errno
 * EINTR, ETIMEDOUT (deadline or scoped timeout) or ECANCELED. Nothing else can end it,
 * so it is no deadlock: pause(), sigsuspend(), poll() of no fds. */
int patch_intr_pause(struct patch_intr **in, int64_t deadline);
/* The next delivery of sig on this OS thread is for green thread g (pthread_kill). */
void patch_intr_direct(green_t g, int sig);
/* Deliver the pending signals that mask lets in, now, for the calling green thread (a
 * zero-timeout ppoll with mask): 0, or -1/EINTR if a handler ran. NULL mask: 0. */
int patch_intr_catch(const sigset_t *mask);
/* For a plain thread's own blocking wait (a real poll(2) that stands for a restartable
 * call): patch_intr_now() before it; after an EINTR, patch_intr_restart(since) says 1 if
 * every handler that ran since had SA_RESTART (the call restarts), 0 if not. */
uint32_t patch_intr_now(void);
int patch_intr_restart(uint32_t since);

/* With GREEN_PATCH_THREADS, in a green pthread: its own signal mask in *out, and 1;
 * anywhere else 0 (the caller's mask is the OS thread's). (sigmask.c) */
int patch_sigmask_green(sigset_t *out);

/* The registry's entries hold no address: a pointer is relocated at load, which made a
 * page of the library's data private in every process for a table that only
 * green_patch_report() reads. */
struct green_patch_sym {
    char name[36];       /* io_uring_submit_and_wait_timeout's fits */
    int threads;         /* 1: a pthread wrapper, interposed only with GREEN_PATCH_THREADS=1 */
};

/* The library is built with hidden visibility: an entry also exports its wrapper (a
 * visibility given after the definition still counts), unversioned, as the libc
 * references it must catch expect. */
#ifdef __clang__
/* (Clang ignores a visibility after the definition: its build exports the entries with
 * a version script instead, src/patch/CMakeLists.txt) */
#define GREEN_PATCH_EXPORT(sym) extern __typeof__(sym) sym
#else
#define GREEN_PATCH_EXPORT(sym) extern __typeof__(sym) sym __attribute__((visibility("default")))
#endif
#define GREEN_PATCH_ENTRY(sym, is_thread)                                                \
    GREEN_PATCH_EXPORT(sym);                                                             \
    _Static_assert(sizeof #sym <= sizeof(((struct green_patch_sym *)0)->name), #sym ": name too long"); \
    static const struct green_patch_sym green_patch_sym_##sym                             \
        __attribute__((used, section("green_patch_syms"), aligned(4))) = {#sym, is_thread}
/* after a wrapper's definition: list it in green_patch_report() and export it */
#define GREEN_PATCH(sym) GREEN_PATCH_ENTRY(sym, 0)
#define GREEN_PATCH_THREAD(sym) GREEN_PATCH_ENTRY(sym, 1)

#endif /* PATCH_H */
