/*
 * green_private.h — what libgreen-patch.so (src/patch/) needs of libgreen.so beyond the
 * public API of green.h: one small interface for that library only.
 *
 * libgreen.so exports these functions (GREEN_PRIVATE_API) in a version node of their
 * own, LIBGREEN_PRIVATE (src/libgreen.map), apart from the API (LIBGREEN_0.1): they may
 * change with any release, and the two libraries are always installed together.
 * Functions only, no data; no core structure is visible through them: green threads are
 * named by their public handles (green_t), and a handle of another OS thread's hub, or a
 * stale one, fails as in the API (EXDEV, ESRCH). Each function is defined in the file
 * that owns its concept (named after it) and costs the patch library one call.
 */
#ifndef GREEN_PRIVATE_H
#define GREEN_PRIVATE_H

#include <green.h>

#include "sys.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Marks every function of this header: libgreen.so exports them in LIBGREEN_PRIVATE. */
#define GREEN_PRIVATE_API __attribute__((visibility("default")))

/* Large zero-filled tables that a process touches sparsely or not at all (the fd view's
 * chunk table, the monitor's sites, key records, the hub group): a section of their own.
 * The hot layout's linker script (cmake/hot_layout.cmake) puts every object's other
 * zero-filled variables before .bss, and these tables after them, so that the small
 * variables every program writes share two pages instead of each table's neighbours'
 * (six pages of libgreen-run.so's .bss were resident in tinyproxy, for ~6 KiB of small
 * variables). Without that script they stay in .bss, where they were. */
#define GREEN_BIG_BSS __attribute__((section(".bss.green_big")))

/* ---- libc (sys.c) ---- */

/* libc's own functions, the table libgreen itself calls (sys.h): never an interposed
 * wrapper. Filled on first use, so safe before any constructor has run. */
GREEN_PRIVATE_API const struct green_sys *green_private_sys(void);
/* 1 while libgreen starts an OS thread of its own from the calling thread (pool, server
 * shards, monitor): a pthread_create wrapper must pass such a call through to libc. */
/* pidfd_open(2) of pid (proc.c, shared with the patch's waits): the fd, or -1 + errno
 * (ENOSYS also once the kernel or a seccomp filter refused it for good). */
GREEN_PRIVATE_API int green_private_pidfd_open(pid_t pid);
GREEN_PRIVATE_API int green_private_sys_internal(void);
/* The library whose code holds hot_end (the end of its hot code, cmake/hot_layout.cmake):
 * its code past hot_end is split off into a mapping of its own and its resident pages
 * dropped, so that only the hot code stays mapped (the kernel maps a file's pages 64 KiB
 * around each one touched, bounded by the mapping). NULL (no hot layout): nothing. */
/* the ends of a library's code that every program runs and of its hot code (the linker
 * script's __green_hot_common, __green_hot_end) */
struct green_private_text_ends {
    const void *common, *end;
};
GREEN_PRIVATE_API void green_private_text_trim(const struct green_private_text_ends *ends);
/* How many of the monitor's signals (SIGURG, for a backtrace of a held hub) this OS
 * thread took so far: a call the kernel ends early at a signal goes on when one came. */
GREEN_PRIVATE_API unsigned green_private_monitor_hits(void);

/* ---- the hub (hub.c) ---- */

/* 1 when the calling OS thread has a hub (a green thread of it may park); makes none. */
GREEN_PRIVATE_API int green_private_hub_here(void);
/* The calling OS thread's hub and its loop (scheduler, timers, poller), made if need
 * be: 0, or -1 + errno (ENOMEM, or the poller's error). */
GREEN_PRIVATE_API int green_private_hub_make(void);

/* ---- green threads (green.c) ---- */

/* The patch library's slot of green thread g (NULL: the calling one); NULL when it was
 * never set, when g has finished, or when g is not a valid handle of this hub. Leaves
 * errno alone. */
GREEN_PRIVATE_API void *green_private_local(green_t g);
/* Set that slot (g NULL: the calling green thread): 0, or -1 + errno (ENOMEM, ESRCH,
 * EXDEV). The slot is the patch library's to free; libgreen only forgets it. */
GREEN_PRIVATE_API int green_private_set_local(green_t g, void *value);
/* g's dedicated stack (*stack_lo NULL when it has none: shared mode, the root, not yet
 * started) and whether it is detached: 0, or -1 + errno (ESRCH, EINVAL). g may be of any
 * hub: another hub's is read without a round trip (its stack never changes once it has
 * run — before, it is a reservation its first run may exchange; its detached state may
 * be seen a moment late). */
GREEN_PRIVATE_API int green_private_attr(green_t g, void **stack_lo, size_t *stack_size,
                                         int *detached);
/* green_spawn_attr with the slot of green_private_local set to `local` before the green
 * thread can run anywhere (attr->hub may place it on another hub of the group): a
 * handle, or NULL + errno (EINVAL, ENOMEM). */
GREEN_PRIVATE_API green_t green_private_spawn_local(green_fn fn, void *arg, const green_attr_t *attr,
                                                   void *local);
/* 0 when g is a live handle of any hub of the process, else -1 + errno (EINVAL, ESRCH). */
GREEN_PRIVATE_API int green_private_handle_ok(green_t g);
/* g of any hub of the process: 1 if it has finished, 0 if not, -1 + errno (EINVAL,
 * ESRCH). *thread (if thread): the OS thread that runs g's hub (pthread_self() there);
 * *name (if name): green_name(g) as g's hub would answer — for another hub's green
 * thread only if it is a green pthread (its slot set; else ""). Read without a round
 * trip: what g's hub changes meanwhile may be seen a moment late. */
GREEN_PRIVATE_API int green_private_peek(green_t g, unsigned long *thread, const char **name);
/* Run fn(g, copy) on g's hub, where it may write g's fields (only g's hub does): at once
 * when g is of the caller's hub; else copy (len bytes of data, at most 64) goes to g's
 * hub in a record, and fn runs there in its loop (not in a green thread: it must not
 * park) if g is still the same green thread then, following g if it moved; the caller
 * does not wait. 0 once run or sent, -1 + errno (EINVAL, ESRCH, ENOMEM). */
GREEN_PRIVATE_API int green_private_on_hub(green_t g, void (*fn)(green_t g, void *copy),
                                           const void *data, size_t len);

/* ---- shields (sched.c) ---- */

/*
 * A shield makes the calling green thread's blocking calls wait as a pthread waits,
 * until the matching pop with the same `what`:
 *  - GREEN_SHIELD_KILLS: a kill (green_kill), one that came before the push included, is
 *    held: blocking calls are not ended by it and green_cancelled() says 0. A held kill
 *    takes effect again at the pop that ends the last kill shield. Kill shields nest and
 *    need not pair up LIFO with the timeout scopes;
 *  - GREEN_SHIELD_TIMEOUTS: the deadlines of the enclosing green_timeout_push scopes are
 *    ignored (a scope pushed inside the shield applies). A timeout shield is a scope
 *    among those: they pop in LIFO order together (green_timeout_pop of a shield, or a
 *    shield pop of a timeout scope, fails with EINVAL), 32 deep in all.
 * The kill shield is also the public one (green_shield_push/pop): they count together.
 * 0, or -1 + errno:
 * ENOMEM, EOVERFLOW (too deep), EINVAL (a pop without its push; a bad `what`).
 */
enum { GREEN_SHIELD_KILLS = 1, GREEN_SHIELD_TIMEOUTS = 2 };
GREEN_PRIVATE_API int green_private_shield_push(int what);
GREEN_PRIVATE_API int green_private_shield_pop(int what);

/* ---- signal handlers' interruptions (sched.c) ---- */

/* A handler of the program's ran on the calling OS thread. Async-signal-safe. If the
 * thread has a hub, it calls the interrupt hook at its next look at its poller (in plain
 * context, on its own thread), and a poller blocked meanwhile returns at once. */
GREEN_PRIVATE_API void green_private_hub_interrupt(void);
/* The hook every hub calls for that: one per process (NULL: none). It may wake green
 * threads of the calling thread's hub, never park; which green thread runs it is
 * unspecified. */
GREEN_PRIVATE_API void green_private_set_interrupt_hook(void (*hook)(void));
/* While the calling OS thread's hub looks at its poller (blocking in it when idle, in
 * passing at least every 128 hand-offs when busy), the signals of `set` are unblocked on
 * the thread, as ppoll(2) unblocks its mask's: sigsuspend's way to let in the signals it
 * waits for without changing the mask the other green threads run with. Replaces the
 * previous set; NULL or an empty set: none. 0, or -1 + errno (ENOMEM: no hub). */
GREEN_PRIVATE_API int green_private_hub_unblock(const sigset_t *set);
/* Count (+1, then -1) a wait of the calling green thread that only something outside the
 * hub can end, a signal handler (pause): while counted, a hub with nothing else to do
 * waits in its poller instead of failing the root's wait with EDEADLK. 0, or -1 + errno
 * (ENOMEM: no hub). */
GREEN_PRIVATE_API int green_private_hub_ref(int delta);

/* ---- the thread pool (pool.c) ---- */

/* Run fn(arg) on libgreen's thread pool, parking only the calling green thread: 0 and
 * *result (if result), or -1 + errno (ETIMEDOUT of a scoped timeout, ECANCELED, ENOMEM,
 * EAGAIN); on failure arg belongs to drop (if given), which runs once nothing uses arg
 * any more. On a pool thread itself fn runs inline. */
GREEN_PRIVATE_API int green_private_pool_run(void *(*fn)(void *), void *arg, void **result,
                                             void (*drop)(void *arg, void *result));

/* ---- regular files (file.c) ---- */

/* A read (write 0) or write of a regular file, block device or directory at offset off
 * (-1: its current position), made off the hub's thread — by io_uring when this hub
 * polls with it, else on the thread pool, through a bounce buffer — while only the
 * caller parks: the bytes moved (at most 1 MiB a call; a short count is no error), or
 * -1 + errno (the call's own, or ETIMEDOUT of a scoped timeout, ECANCELED, ENOMEM). A
 * wait that ends early leaves the operation to finish by itself. */
GREEN_PRIVATE_API ssize_t green_private_file_io(int fd, int write, void *buf, size_t n, off_t off);

/* ---- name resolution (resolve.c) ---- */

/* getaddrinfo(3)'s answer from libc's own resolver (never c-ares), looked up on the
 * thread pool while only the caller parks; numeric hosts on the spot. The list is in
 * glibc's layout: freeaddrinfo(3) frees it. An EAI_* code; EAI_SYSTEM with errno
 * ETIMEDOUT or ECANCELED when a scoped timeout or a kill ends the wait. */
GREEN_PRIVATE_API int green_private_getaddrinfo(const char *host, const char *service,
                                                const struct addrinfo *hints, struct addrinfo **res);

/* ---- fds (fd.c) ---- */

/* fd is about to be closed by the calling OS thread: its hub (if any) wakes the green
 * threads waiting on it with EBADF and its poller forgets it (green_close but the close). */
GREEN_PRIVATE_API void green_private_fd_closing(int fd);

/* ---- the pinning detector (monitor.c) ---- */

/* A place where green threads held their hub past the monitor's threshold
 * (GREEN_MONITOR_MS), asleep in the kernel ("pinned") or computing ("busy"). */
struct green_private_pin {
    char what[160];    /* "pinned in read() via fgets() [system call 0], called from f+0x2a" */
    int busy;          /* 1: computing; 0: asleep in the kernel */
    uint64_t count;    /* episodes */
    uint64_t total_ms; /* their time (one still going on: so far), to within the monitor's period */
    uint64_t max_ms;   /* the longest */
};
/* The places seen so far, in the order first seen, copied to out (at most max): how many
 * there are. Episodes past the monitor's table share one last entry. *threshold_ms (if
 * given): the monitor's threshold, 0 when it is not running. */
GREEN_PRIVATE_API size_t green_private_pinning(struct green_private_pin *out, size_t max,
                                               int64_t *threshold_ms);

#ifdef __cplusplus
}
#endif
#endif /* GREEN_PRIVATE_H */
