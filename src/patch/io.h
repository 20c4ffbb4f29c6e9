/*
 * io.h — what the I/O wrappers of libgreen-patch.so share (fd.c, io.c, poll.c, time.c,
 * dns.c, epoll.c, file.c, splice.c, signal.c, proc.c): the user's view of each fd, how a
 * wrapper makes its call on one, and the helpers the waits share (the file rule, the
 * back-off, calls on the pool, popen's streams).
 *
 * The user's view of an fd stays POSIX while libgreen keeps it non-blocking underneath.
 * File status flags belong to the open file, which every thread of the process shares,
 * so the view is kept in a process-wide table of one atomic byte per fd number (see
 * fd.c). An fd number is in one of these states:
 *  - 0, unknown: libgreen has not touched it; the kernel's flags are the user's;
 *  - PFD_FILE: a regular file, block device or directory: no poller can wait for it, so
 *    every call passes straight through (it blocks the OS thread, as in gevent);
 *  - PFD_KEEP: a pollable fd 0..2 (a tty or a pipe shared with other processes): its
 *    flags are left alone (O_NONBLOCK would leak to the shell); a green thread waits for
 *    readiness first, then makes the call;
 *  - PFD_MANAGED: libgreen set O_NONBLOCK underneath; PFD_USER_NB is what the user set.
 *    A green thread's call parks on EAGAIN; a plain thread's call polls (really
 *    blocking) and retries, unless the user asked for non-blocking.
 */
#ifndef PATCH_IO_H
#define PATCH_IO_H

#include "patch.h"

#include <poll.h>
#include <signal.h>
#include <sys/uio.h>

enum {
    PFD_KNOWN = 1,     /* the entry is valid */
    PFD_FILE = 2,
    PFD_KEEP = 4,
    PFD_MANAGED = 8,
    PFD_USER_NB = 16,  /* the user's O_NONBLOCK */
    PFD_STREAM = 32,   /* a SOCK_STREAM socket (MSG_WAITALL reads on) */
};

int pfd_get(int fd);                 /* the state, 0 when unknown */
void pfd_set(int fd, int state);
/* The state, learning it (and switching the fd to O_NONBLOCK) on first use; -1 + errno. */
int pfd_learn(int fd);

/* How a wrapper makes its call on fd. */
enum pfd_how {
    PFD_PASS,      /* straight to libc */
    PFD_GREEN,     /* park on EAGAIN (or before the call, for PFD_KEEP) */
    PFD_EMULATE,   /* plain thread, fd blocking to the user but not underneath: poll, retry */
};
enum pfd_how pfd_how(int fd, int *state);
/* Wait until fd is ready for events (POLLIN/POLLOUT) the way `how` says, for a
 * restartable call whose interruption record is *in (patch.h): 0, or -1 + errno
 * (ETIMEDOUT, ECANCELED, EBADF when the fd was closed meanwhile, EINTR when a handler
 * without SA_RESTART ran). */
int pfd_wait(enum pfd_how how, int fd, int events, struct patch_intr **in);

/* poll(2) in a green thread, until the absolute deadline (ms, -1 none), parking as a
 * call of the given kind with interruption record *in (patch.h): the number of fds with
 * revents, 0 at that deadline, -1 + errno (EINTR, ETIMEDOUT for a scoped deadline,
 * ECANCELED, EINVAL, ENOMEM). */
int patch_poll(struct pollfd *fds, nfds_t n, int64_t deadline, struct patch_intr **in,
               enum patch_intr_kind kind);
/* close() of fd on this OS thread: wake the green threads whose waits include it. */
void patch_closing(int fd);
/* fd is about to be closed behind libc's back (liburing closes a ring's fd with a system
 * call of its own): forget what is known of it, as close() does. (fd.c) */
void patch_fd_closing(int fd);

/* (The sigmask of ppoll, pselect or epoll_pwait: patch_intr_catch, then a record with the
 * mask: see patch.h.) */

/* A wait that polls (a lock, a child's stop): sleep *ms, then double it, up to
 * PATCH_BACKOFF_MAX_MS, as a restartable call whose interruption record is *in
 * (patch.h). 0, or -1 + errno (ETIMEDOUT of a scoped deadline, ECANCELED, EINTR).
 * (file.c) */
#define PATCH_BACKOFF_MAX_MS 50
int patch_backoff(int64_t *ms, struct patch_intr **in);

/* ---- regular files (file.c) ---- */

/* The file rule: where a green thread's read or write of a regular file runs. Unset (or
 * any value but these two), GREEN_PATCH_FILES is the size rule: a call of
 * GREEN_PATCH_FILES_BIG bytes or more (FILES_BIG_DEFAULT; 0: none) leaves the hub's
 * thread, a smaller one runs inline; `inline`: every call inline; `pool`: every call
 * leaves it. Read on first use. */
#define FILES_BIG_DEFAULT ((size_t)1 << 20)
/* 1 when a read or write of `bytes` bytes of fd is to be made by patch_file_rw: the rule
 * says so, fd is a regular file (block device, directory) not opened O_DIRECT, the
 * caller a green thread. A small call under the size rule costs a load and a compare. */
int patch_file_offload(int fd, size_t bytes);
/* iov's bytes in all (SIZE_MAX when they would overflow). */
static inline size_t patch_iov_bytes(const struct iovec *iov, int cnt)
{
    size_t n = 0;
    for (int i = 0; i < cnt; i++)
        n = iov[i].iov_len > SIZE_MAX - n ? SIZE_MAX : n + iov[i].iov_len;
    return n;
}
/* The read (write 0) or write of iov[0..cnt) at off (-1: the file's position) that
 * pread/pwrite/readv/writev would make, made off the hub's thread while only the caller
 * parks: a big one (GREEN_PATCH_FILES_BIG) on the pool with the caller's buffers, waited
 * for to its end; a smaller one (the pool rule) through bounce buffers, by io_uring or the
 * pool. The count, or -1 + errno. */
ssize_t patch_file_rw(int fd, int write, const struct iovec *iov, int cnt, off_t off);

/* A call run on libgreen's thread pool while only the caller parks. The record is copied
 * to the heap (the caller may give up and leave; a shared-stack caller's record moves),
 * and res, err and off[] are copied back when the call ends while the caller waits. */
struct patch_job {
    ssize_t (*fn)(struct patch_job *j);  /* on a pool thread: the result; errno in err */
    ssize_t res;
    int err;
    long arg[6];
    off_t off[2];                         /* offsets the call moves */
};
/* j->fn(j) on the pool: its result, errno = err on failure; -1 + ETIMEDOUT (scoped
 * timeout), ECANCELED, ENOMEM when the wait ends first (the call runs to its end). */
ssize_t patch_pool_call(struct patch_job *j);

/* 1 when fcntl's cmd waits for a lock (F_SETLKW, F_SETLKW64, F_OFD_SETLKW); the call
 * as a green thread makes it. (file.c) */
int patch_fcntl_is_lock(int cmd);
int patch_fcntl_lock(int fd, int cmd, void *arg);

/* ---- child processes (proc.c) ---- */

/* When f came from popen in a green thread: forget it and return its command's pid (the
 * caller then closes f); otherwise 0. */
pid_t patch_popen_forget(FILE *f);
/* Wait for that command once its stream is closed (`closed`: fclose's result): what
 * pclose returns. */
int patch_popen_wait(pid_t pid, int closed);

/* __chk_fail: glibc's report of a fortify check that failed; never returns. */
void __chk_fail(void) __attribute__((noreturn));

/* a timespec as a duration in ms, rounded up; -1 for a bad one (EINVAL) */
int64_t patch_ts_ms(const struct timespec *ts);

#endif /* PATCH_IO_H */
