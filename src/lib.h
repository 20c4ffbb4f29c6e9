/*
 * lib.h — what the files of the library layer (layer 6) share among themselves: sync.c,
 * chan.c, group.c (synchronisation and structure), io.c, net.c, file.c, signal.c,
 * proc.c, server.c (cooperative I/O), pool.c (the thread pool) and resolve.c (names).
 * Each builds on the one wait mechanism (wait.h) and the scheduler (sched.h) below; the
 * public face of all of them is green.h.
 *
 * Invariant of the layer: whatever another party (a pool thread, the kernel, a waker on
 * another OS thread) may still write to after its caller gave up (deadline, kill) is a
 * heap record of its own, never the caller's stack or buffer; the party that is last to
 * touch it frees it.
 */
#ifndef GREEN_LIB_H
#define GREEN_LIB_H

#include "wait.h"

/* ---- green_choose (choose.c) and each kind of clause's side of it ----
 * A select queues a waiter record (an entry) on each channel, event and future it waits
 * on; channels and signals complete a clause only by claiming the select's lead (wait.h),
 * the others are observed by the chooser once it runs again. */

/* Channels: chan.h. */

/* Events and futures (sync.c): arm queues e on the object unless it is already set or
 * ready (1: not queued); disarm unqueues e: 1 when it was set or made ready meanwhile. */
int green__event_arm(green_event_t *ev, struct green_waiter *e);
int green__event_disarm(green_event_t *ev, struct green_waiter *e);
int green__future_arm(green_future_t *f, struct green_waiter *e);
int green__future_disarm(green_future_t *f, struct green_waiter *e);

/* Signals (signal.c). valid: may signo be waited for (1/0)? arm: a record waiting for
 * signo in *out (signal.c's own; freed by disarm), served like green_signal_wait but only
 * by claiming `lead`, reported as clause `index`; a signal already pending is served at
 * once, and if nobody reads the signalfd the caller does from its next park. 0, or -1 +
 * errno. drain: serve what has arrived (before the select withdraws). */
int green__signal_valid(int signo);
int green__signal_arm(struct green_hub *h, int signo, struct green_waiter *lead, int index,
                      struct green_waiter **out);
void green__signal_disarm(struct green_hub *h, struct green_waiter *w);
void green__signal_drain(struct green_hub *h);

/* ---- groups (group.c) ---- */
/* green_group_spawn with the members' stack mode and size (the stream server's handlers). */
green_t green__group_spawn_attr(green_group_t *g, green_fn fn, void *arg, const green_attr_t *attr,
                                int64_t deadline);

/* ---- writes that raise no SIGPIPE (io.c) ---- */
/* A write to a pipe, FIFO or FILE whose reader has gone raises SIGPIPE, which kills a
 * program that never asked for it. Around such a write, with no park in between (other
 * green threads of the OS thread must not run with the mask changed):
 * green__sigpipe_hold blocks SIGPIPE in the calling OS thread; green__sigpipe_release
 * (s, err), err being the write's errno (0 when it succeeded), takes the SIGPIPE an
 * EPIPE failure raised, unless one was already pending before the hold, and restores
 * the mask. Both leave errno alone and are async-signal-safe. */
struct green_sigpipe {
    sigset_t old;
    int pending;
};
void green__sigpipe_hold(struct green_sigpipe *s);
void green__sigpipe_release(struct green_sigpipe *s, int err);

/* ---- the thread pool (pool.c) ---- */
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
uint64_t green__pool_queued(void);                /* jobs waiting for a pool thread */

/* ---- regular files (file.c) ---- */
/* pread/pwrite (off >= 0) or read/write (off == -1) of a regular file or block device,
 * without blocking the hub: on io_uring when that is h's poller, else on the thread
 * pool. Moves at most GREEN_FILE_CHUNK bytes (a short count is not an error). Bytes
 * moved, or -1 + errno (ETIMEDOUT, ECANCELED, ENOMEM, or the system call's). `how`:
 * GREEN_FILE_WRITE (else a read), GREEN_FILE_POOL (on the pool even with io_uring: for
 * an fd whose blocking call io_uring would make on the hub's thread, such as a tty, which
 * answers poll but ignores RWF_NOWAIT). */
#define GREEN_FILE_CHUNK ((size_t)1 << 20)
enum { GREEN_FILE_WRITE = 1, GREEN_FILE_POOL = 2 };
ssize_t green__file_io(struct green_hub *h, int fd, int how, void *buf, size_t n, off_t off,
                       int64_t deadline);

/* ---- TLS (tls.c, tls_none.c) ---- */
/* Can a server use configuration c? Builds (and caches) its context, loading its files:
 * 0, or -1 + errno (EINVAL, ENOENT, ENOMEM; ENOTSUP without OpenSSL). */
int green__tls_check(const green_tls_config_t *c);

#endif /* GREEN_LIB_H */
