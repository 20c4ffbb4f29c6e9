/*
 * epoll.c — epoll_wait, epoll_pwait and epoll_pwait2 in a green thread: a program's own
 * event loop, run inside a green thread, parks that green thread only.
 *
 * An epoll instance is itself pollable (readable while it has events ready), so a call
 * first asks it without waiting (timeout 0: errors and ready events come back at once,
 * exactly as libc's), then parks on its fd in the hub's poller and asks again when
 * woken, until events come or the call's own timeout passes (0, as libc). Another
 * green thread may take the events first: then it parks again. The scoped deadline of
 * green_timeout_push ends the call with -1/ETIMEDOUT and a kill with -1/ECANCELED (never
 * 0 or EINTR, which would make an event loop spin); an epoll fd closed meanwhile by
 * another green thread of the hub ends it with EBADF. A signal handler ends it with
 * EINTR, as in the kernel (intr.c). The timeout is rounded up to the millisecond
 * (epoll_pwait2's nanoseconds too).
 *
 * The sigmask of epoll_pwait/epoll_pwait2 cannot be set on the OS thread, where other
 * green threads run: it works as ppoll's (poll.c): the pending signals it lets in are
 * taken at the start, the others while the hub is idle in its poller.
 */
#include "io.h"

#include <sys/epoll.h>

/* The wait of all three, until the absolute deadline (-1: none). */
static int epoll_green(int ep, struct epoll_event *ev, int n, int64_t deadline, const sigset_t *sigmask)
{
    int e = errno;
    int r = patch_real()->epoll_wait(ep, ev, n, 0);
    if (r < 0)
        return r;
    if (r > 0 || deadline == 0) {
        patch_zero_wait(); /* a scheduling point even when it need not wait */
        return r;
    }
    if (patch_intr_catch(sigmask) != 0)
        return -1; /* EINTR: a pending signal it lets in came */
    struct patch_intr *in = NULL;
    if (sigmask)
        patch_intr_park(&in, PATCH_INTR_ALWAYS, sigmask);
    for (;;) {
        struct pollfd p = {.fd = ep, .events = POLLIN};
        r = patch_poll(&p, 1, deadline, &in, PATCH_INTR_ALWAYS);
        if (r <= 0)
            break; /* 0: the call's own timeout */
        r = patch_real()->epoll_wait(ep, ev, n, 0);
        if (r != 0)
            break;
    }
    patch_intr_end(&in);
    if (r < 0) {
        if (errno == ECANCELED)
            patch_testcancel();
        return -1;
    }
    errno = e;
    return r;
}

static int64_t ms_deadline(int timeout) { return timeout < 0 ? -1 : timeout == 0 ? 0 : green_after(timeout); }

int epoll_wait(int ep, struct epoll_event *ev, int n, int timeout)
{
    patch_cancel_point();
    if (!patch_here())
        return patch_real()->epoll_wait(ep, ev, n, timeout);
    return epoll_green(ep, ev, n, ms_deadline(timeout), NULL);
}
GREEN_PATCH(epoll_wait);

int epoll_pwait(int ep, struct epoll_event *ev, int n, int timeout, const sigset_t *sigmask)
{
    patch_cancel_point();
    if (!patch_here())
        return patch_real()->epoll_pwait(ep, ev, n, timeout, sigmask);
    return epoll_green(ep, ev, n, ms_deadline(timeout), sigmask);
}
GREEN_PATCH(epoll_pwait);

#ifdef GREEN_SYS_HAVE_EPOLL_PWAIT2
int epoll_pwait2(int ep, struct epoll_event *ev, int n, const struct timespec *ts, const sigset_t *sigmask)
{
    patch_cancel_point();
    if (!patch_here())
        return patch_real()->epoll_pwait2(ep, ev, n, ts, sigmask);
    int64_t deadline = -1;
    if (ts) {
        int64_t ms = patch_ts_ms(ts); /* an invalid one: EINVAL, before anything else */
        if (ms < 0)
            return -1;
        deadline = ms == 0 ? 0 : green_after(ms);
    }
    return epoll_green(ep, ev, n, deadline, sigmask);
}
GREEN_PATCH(epoll_pwait2);
#endif
