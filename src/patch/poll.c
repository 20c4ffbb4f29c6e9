/*
 * poll.c — poll ppoll select pselect (and glibc's __poll, __poll_chk, __ppoll_chk,
 * __select) in a green thread, and every wait of the other I/O wrappers.
 *
 * A call first polls without waiting (poll(2) with timeout 0): what is ready, invalid
 * (POLLNVAL) or hung up is reported at once, exactly as libc would. Otherwise the green
 * thread parks, and polls again when woken, until something is ready or its deadline:
 *  - one fd: it waits in the hub's own fd table (green_wait_fd), which keeps the fd
 *    watched by the hub's poller between calls: a library polling the same socket over
 *    and over costs one epoll_wait per wake-up;
 *  - several fds, or one that another green thread already waits on in the same
 *    direction (the hub's table has one reader and one writer per fd): a private epoll
 *    instance holding them all, waited on as one fd by green_wait_fd, and closed after.
 * A wait on an fd that another green thread of this OS thread closes ends with EBADF
 * (the hub's table and the list of private waits below both see close()); poll then
 * reports POLLNVAL for it, the other wrappers fail with EBADF.
 *
 * Deadlines: the call's own timeout ends it with 0 (nothing ready), as libc's; the scoped
 * deadline of green_timeout_push ends it with -1/ETIMEDOUT, and a kill with -1/ECANCELED:
 * a library's poll loop must see an error, since a 0 or an EINTR would make it poll again
 * at once, forever. A signal handler that runs meanwhile ends it with -1/EINTR, as in the
 * kernel, whatever its SA_RESTART (intr.c decides whom a handler interrupts). A sigmask
 * given to ppoll/pselect cannot be set on the OS thread, where other green threads run:
 * pending signals it lets in are delivered first by a zero-timeout ppoll, and while the
 * call waits they are let in whenever the hub is idle in its poller (intr.c); a signal it
 * blocks that the thread does not still has its handler run, without ending the call.
 */
#include "io.h"

#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

/* A wait in a private epoll instance, findable by close() (per OS thread). */
struct private_wait {
    struct private_wait *next;
    const struct pollfd *fds;
    nfds_t n;
    green_t g;
};
static __thread struct private_wait *private_waits;

void patch_closing(int fd)
{
    for (struct private_wait *w = private_waits; w; w = w->next)
        for (nfds_t i = 0; i < w->n; i++)
            if (w->fds[i].fd == fd) {
                green_wake(w->g, EBADF);
                break;
            }
}

static uint32_t epoll_events(short ev)
{
    return ((ev & (POLLIN | POLLRDNORM | POLLRDBAND)) ? EPOLLIN | EPOLLRDHUP : 0) |
           ((ev & POLLPRI) ? EPOLLPRI : 0) | ((ev & (POLLOUT | POLLWRNORM | POLLWRBAND)) ? EPOLLOUT : 0);
}

/* An epoll instance watching fds (duplicates merged), or -1 + errno. fds that epoll
 * refuses (regular files: always ready, so the first poll saw them) are left out. */
static int private_epoll(const struct pollfd *fds, nfds_t n)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return -1;
    for (nfds_t i = 0; i < n; i++) {
        if (fds[i].fd < 0)
            continue;
        struct epoll_event ev = {.events = epoll_events(fds[i].events), .data.u64 = i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i].fd, &ev) == 0 || errno == EPERM || errno == EBADF)
            continue;
        if (errno == EEXIST) {
            for (nfds_t j = 0; j < i; j++)
                if (fds[j].fd == fds[i].fd)
                    ev.events |= epoll_events(fds[j].events);
            if (epoll_ctl(ep, EPOLL_CTL_MOD, fds[i].fd, &ev) == 0)
                continue;
        }
        int e = errno;
        patch_real()->close(ep);
        errno = e;
        return -1;
    }
    return ep;
}

/* Park until one of fds may be ready: 0, or -1 + errno. */
static int park_private(const struct pollfd *fds, nfds_t n, int64_t deadline)
{
    int ep = private_epoll(fds, n);
    if (ep < 0)
        return -1;
    struct private_wait w = {private_waits, fds, n, green_current()};
    private_waits = &w;
    int r = green_wait_fd(ep, GREEN_READ, deadline);
    int e = errno;
    struct private_wait **p = &private_waits;
    while (*p != &w)
        p = &(*p)->next;
    *p = w.next;
    green_close(ep);
    errno = e;
    return r > 0 ? 0 : -1;
}

static int wanted(short ev)
{
    return ((ev & (POLLIN | POLLRDNORM)) ? GREEN_READ : 0) | ((ev & (POLLOUT | POLLWRNORM)) ? GREEN_WRITE : 0);
}

int patch_poll(struct pollfd *fds, nfds_t n, int64_t deadline, struct patch_intr **in,
               enum patch_intr_kind kind)
{
    int e = errno;
    nfds_t live = 0, one = 0;
    for (nfds_t i = 0; i < n; i++)
        if (fds[i].fd >= 0) {
            live++;
            one = i;
        }
    for (;;) {
        int r = live ? patch_real()->poll(fds, n, 0) : 0;
        if (r != 0) {
            if (r > 0) {
                patch_zero_wait(); /* a scheduling point even when something is ready */
                errno = e;
            }
            return r;
        }
        if (deadline == 0 || (deadline > 0 && green_now() >= deadline)) {
            patch_zero_wait();
            return 0;
        }
        if (patch_intr_park(in, kind, NULL) != 0)
            return -1;
        patch_parking();
        int w;
        if (!live) {
            w = deadline < 0 ? patch_intr_pause(in, -1) : green_sleep_until(deadline);
        } else {
            int ev = live == 1 ? wanted(fds[one].events) : 0;
            /* the hub's table knows one waiter per direction: POLLPRI alone, or two
             * green threads on one fd, go to a private epoll */
            w = ev && !(fds[one].events & POLLPRI) ? green_wait_fd(fds[one].fd, ev, deadline) : -1;
            if (w < 0 && (!ev || (fds[one].events & POLLPRI) || errno == EBUSY))
                w = park_private(fds, n, deadline);
            else if (w > 0)
                w = 0;
        }
        if (w != 0) {
            if (errno == EBADF)
                continue; /* a polled fd was closed: the poll reports POLLNVAL */
            if (errno == ETIMEDOUT && deadline >= 0 && green_now() >= deadline)
                return 0; /* the call's own timeout */
            return -1;
        }
    }
}

/* ---- poll and ppoll ---- */

/* patch_poll for a call of its own, which every handler interrupts; with a sigmask (ppoll,
 * pselect), the pending signals it lets in first. */
static int poll_call(struct pollfd *fds, nfds_t n, int64_t deadline, const sigset_t *sigmask)
{
    if (patch_intr_catch(sigmask) != 0)
        return -1; /* EINTR: a signal came in */
    struct patch_intr *in = NULL;
    if (sigmask)
        patch_intr_park(&in, PATCH_INTR_ALWAYS, sigmask);
    int r = patch_poll(fds, n, deadline, &in, PATCH_INTR_ALWAYS);
    patch_intr_end(&in);
    return r;
}

static int64_t poll_deadline(int timeout) { return timeout < 0 ? -1 : green_after(timeout); }

/* A wrapper's result: a cancelled green pthread whose wait failed leaves here. */
static int polled(int r)
{
    if (r < 0 && errno == ECANCELED)
        patch_testcancel();
    return r;
}

int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    patch_cancel_point();
    if (!patch_here())
        return patch_real()->poll(fds, n, timeout);
    if (n > 0 && !fds) {
        errno = EFAULT;
        return -1;
    }
    return polled(poll_call(fds, n, poll_deadline(timeout), NULL));
}
GREEN_PATCH(poll);

int __poll(struct pollfd *fds, nfds_t n, int timeout) { return poll(fds, n, timeout); }
GREEN_PATCH(__poll);

int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
    if (fdslen / sizeof *fds < n)
        __chk_fail();
    return poll(fds, n, timeout);
}
GREEN_PATCH(__poll_chk);

int64_t patch_ts_ms(const struct timespec *ts)
{
    if (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000L) {
        errno = EINVAL;
        return -1;
    }
    if (ts->tv_sec > INT64_MAX / 1000 - 1)
        return INT64_MAX / 2; /* as good as never */
    return (int64_t)ts->tv_sec * 1000 + (ts->tv_nsec + 999999) / 1000000;
}

static int64_t ts_deadline(const struct timespec *ts)
{
    if (!ts)
        return -1;
    int64_t ms = patch_ts_ms(ts);
    return ms < 0 ? -2 : green_after(ms);
}

int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *sigmask)
{
    patch_cancel_point();
    if (!patch_here())
        return patch_real()->ppoll(fds, n, ts, sigmask);
    int64_t deadline = ts_deadline(ts);
    if (deadline == -2)
        return -1;
    return polled(poll_call(fds, n, deadline, sigmask));
}
GREEN_PATCH(ppoll);

int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *sigmask, size_t fdslen)
{
    if (fdslen / sizeof *fds < n)
        __chk_fail();
    return ppoll(fds, n, ts, sigmask);
}
GREEN_PATCH(__ppoll_chk);

/* ---- select and pselect: poll underneath ---- */

/* select over nfds with the sets given, until deadline, with pselect's sigmask: the
 * count of bits left set. */
static int select_poll(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, int64_t deadline, const sigset_t *sigmask)
{
    if (nfds < 0 || nfds > FD_SETSIZE) {
        errno = EINVAL;
        return -1;
    }
    struct pollfd small[16], *p = small;
    nfds_t n = 0;
    for (int fd = 0; fd < nfds; fd++)
        n += (rd && FD_ISSET(fd, rd)) || (wr && FD_ISSET(fd, wr)) || (ex && FD_ISSET(fd, ex));
    if (n > 16 && !(p = malloc(n * sizeof *p))) {
        errno = ENOMEM;
        return -1;
    }
    n = 0;
    for (int fd = 0; fd < nfds; fd++) {
        short ev = (short)(((rd && FD_ISSET(fd, rd)) ? POLLIN : 0) | ((wr && FD_ISSET(fd, wr)) ? POLLOUT : 0) |
                           ((ex && FD_ISSET(fd, ex)) ? POLLPRI : 0));
        if (ev)
            p[n++] = (struct pollfd){.fd = fd, .events = ev};
    }
    int e = errno;
    int r = poll_call(p, n, deadline, sigmask);
    if (r > 0) {
        r = 0;
        for (nfds_t i = 0; i < n && r >= 0; i++)
            if (p[i].revents & POLLNVAL)
                r = -1;
        if (r < 0) {
            errno = EBADF; /* select's answer to a closed fd in a set */
        } else {
            for (nfds_t i = 0; i < n; i++) {
                int fd = p[i].fd;
                short re = p[i].revents;
                if (rd && FD_ISSET(fd, rd) && !(re & (POLLIN | POLLHUP | POLLERR)))
                    FD_CLR(fd, rd);
                if (wr && FD_ISSET(fd, wr) && !(re & (POLLOUT | POLLERR)))
                    FD_CLR(fd, wr);
                if (ex && FD_ISSET(fd, ex) && !(re & POLLPRI))
                    FD_CLR(fd, ex);
                r += (rd && FD_ISSET(fd, rd)) + (wr && FD_ISSET(fd, wr)) + (ex && FD_ISSET(fd, ex));
            }
            errno = e;
        }
    } else if (r == 0) {
        if (rd)
            FD_ZERO(rd);
        if (wr)
            FD_ZERO(wr);
        if (ex)
            FD_ZERO(ex);
    }
    if (p != small) {
        e = errno;
        free(p);
        errno = e;
    }
    return polled(r);
}

/* Linux's select writes the time left back to the timeout, also when interrupted. */
int select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv)
{
    patch_cancel_point();
    if (!patch_here())
        return patch_real()->select(nfds, rd, wr, ex, tv);
    int64_t deadline = -1;
    if (tv) {
        if (tv->tv_sec < 0 || tv->tv_usec < 0 || tv->tv_usec >= 1000000) {
            errno = EINVAL;
            return -1;
        }
        deadline = green_after((int64_t)tv->tv_sec * 1000 + (tv->tv_usec + 999) / 1000);
    }
    int r = select_poll(nfds, rd, wr, ex, deadline, NULL);
    if (tv && (r >= 0 || errno == EINTR)) {
        int64_t left = deadline - green_now();
        if (left < 0 || r == 0)
            left = 0;
        tv->tv_sec = left / 1000;
        tv->tv_usec = (left % 1000) * 1000;
    }
    return r;
}
GREEN_PATCH(select);

int __select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv) { return select(nfds, rd, wr, ex, tv); }
GREEN_PATCH(__select);

int pselect(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, const struct timespec *ts, const sigset_t *sigmask)
{
    patch_cancel_point();
    if (!patch_here())
        return patch_real()->pselect(nfds, rd, wr, ex, ts, sigmask);
    int64_t deadline = ts_deadline(ts);
    if (deadline == -2)
        return -1;
    return select_poll(nfds, rd, wr, ex, deadline, sigmask);
}
GREEN_PATCH(pselect);
