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

/* ---- groups (group.c) ---- */
/* green_group_spawn with the members' stack mode and size (the stream server's handlers). */
green_t green__group_spawn_attr(green_group_t *g, const green_attr_t *attr, green_fn fn, void *arg,
                                int64_t deadline);

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
 * moved, or -1 + errno (ETIMEDOUT, ECANCELED, ENOMEM, or the system call's). */
#define GREEN_FILE_CHUNK ((size_t)1 << 20)
ssize_t green__file_io(struct green_hub *h, int fd, int write, void *buf, size_t n, off_t off,
                       int64_t deadline);

#endif /* GREEN_LIB_H */
