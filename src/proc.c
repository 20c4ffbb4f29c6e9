/*
 * proc.c — waiting for child processes (layer 6): the wait of gevent.subprocess in C.
 *
 * green_waitpid parks the caller until its child pid has terminated, then reaps it with
 * waitpid(WNOHANG). It waits on a pidfd (pidfd_open(2), Linux 5.3), which becomes
 * readable when the process exits: an ordinary fd on the hub's poller, one per waiter,
 * so any number of green threads can each wait for their own child, and no SIGCHLD
 * handler or signal mask is involved (SIGCHLD stays the application's).
 *
 * Without pidfd_open (ENOSYS on older kernels; EPERM or ENOSYS from seccomp profiles
 * that predate it) it polls waitpid(WNOHANG) with green_sleep between tries, backing off
 * from 1 to 50 ms: that much latency, no more. Running out of fds falls back the same
 * way, for that call only.
 *
 * Only termination is waited for (no WUNTRACED/WCONTINUED). A child that has already
 * exited is reaped without parking, so even a killed caller gets it (as a semaphore
 * with permits is acquired): only waiting fails with ECANCELED.
 *
 * Invariants:
 *  - the child is reaped only by the waitpid(WNOHANG) that returns it: a wait that ends
 *    otherwise (deadline, kill) leaves it a zombie for a later call;
 *  - a non-child is found out by that same waitpid (ECHILD) before any pidfd is opened,
 *    so we never wait on a process we could not reap;
 *  - the pidfd lives only during the call, and goes through green_close (the poller
 *    forgets it before the fd number can be reused).
 * Children that another thread reaps first (waitpid(-1), SIGCHLD set to SIG_IGN) give
 * ECHILD.
 */
#include "lib.h"

#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 1
#define BACKOFF_MAX_MS 50

/* Set once pidfd_open turned out to be missing for good in this process. */
static int no_pidfd;

/* waitpid without blocking: pid once reaped, 0 while the child runs, -1 + errno. */
static pid_t try_reap(pid_t pid, int *status)
{
    pid_t r;
    do
        r = green__sys.waitpid(pid, status, WNOHANG);
    while (r < 0 && errno == EINTR);
    return r;
}

static int pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
    if (!__atomic_load_n(&no_pidfd, __ATOMIC_RELAXED)) {
        int fd = (int)green__sys.syscall(SYS_pidfd_open, pid, 0);
        if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
            return fd;
        __atomic_store_n(&no_pidfd, 1, __ATOMIC_RELAXED);
    }
#else
    (void)pid;
#endif
    errno = ENOSYS;
    return -1;
}

int green_private_pidfd_open(pid_t pid) { return pidfd_open(pid); }

/* The fallback: poll until reaped or the deadline. */
static pid_t poll_reap(pid_t pid, int *status, int64_t deadline)
{
    int64_t backoff = BACKOFF_MIN_MS;
    for (;;) {
        pid_t r = try_reap(pid, status);
        if (r != 0)
            return r;
        int64_t now = green_now();
        if (deadline >= 0 && now >= deadline) {
            errno = green_cancelled() ? ECANCELED : ETIMEDOUT;
            return -1;
        }
        int64_t until = now + backoff;
        if (deadline >= 0 && deadline < until)
            until = deadline;
        if (green__sleep_until(until) != 0)
            return -1;
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
}

/* Wait for the pidfd, then reap. */
static pid_t pidfd_reap(struct green_hub *h, int fd, pid_t pid, int *status, int64_t deadline)
{
    pid_t r = -1;
    if (green__fd_wait(h, fd, GREEN_READ, deadline) > 0) {
        r = try_reap(pid, status);
        /* exited but not yet reapable (a ptrace tracer sees it first): the pidfd stays
         * readable, so poll rather than spin on it */
        if (r == 0)
            r = poll_reap(pid, status, deadline);
    }
    int err = errno;
    green_close(fd);
    errno = err;
    return r;
}

pid_t green_waitpid(pid_t pid, int *status, int64_t deadline)
{
    if (pid <= 0) {
        errno = EINVAL;
        return -1;
    }
    struct green_hub *h = green__loop();
    if (!h)
        return -1;
    pid_t r = try_reap(pid, status); /* already exited, or not our child (ECHILD) */
    if (r != 0)
        return r;
    int fd = pidfd_open(pid);
    if (fd < 0)
        return poll_reap(pid, status, deadline); /* also finds ESRCH's cause: reaped elsewhere */
    return pidfd_reap(h, fd, pid, status, deadline);
}
