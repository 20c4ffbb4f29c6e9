/*
 * io.h — what the I/O wrappers of libgreen-patch.so share (fd.c, io.c, poll.c, time.c,
 * dns.c): the user's view of each fd, and how a wrapper makes its call on one.
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

/* __chk_fail: glibc's report of a fortify check that failed; never returns. */
void __chk_fail(void) __attribute__((noreturn));

/* a timespec as a duration in ms, rounded up; -1 for a bad one (EINVAL) */
int64_t patch_ts_ms(const struct timespec *ts);

#endif /* PATCH_IO_H */
