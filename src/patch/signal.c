/*
 * signal.c — sigwait, sigwaitinfo and sigtimedwait in a green thread: libgreen's
 * green_signal_take, which reads the signals from a signalfd on the hub's poller and
 * consumes each delivery once, as sigwaitinfo(2) does: of several green threads waiting
 * for one signal, one gets each delivery.
 *
 * What the kernel waits for, and so these: the signals of the set from 1 to 64, less
 * SIGKILL and SIGSTOP (rt_sigtimedwait ignores them silently: no EINVAL, checked on
 * Linux 6.x) and glibc's own signals between 32 and SIGRTMIN (no glibc function puts
 * them in a set, and pthread_sigmask cannot block them). A set with nothing else waits
 * for its timeout only, as the kernel's does. A NULL set fails with EFAULT.
 *
 * Endings: a signal (its number; sigwait stores it and returns 0); sigtimedwait's own
 * timeout: -1/EAGAIN; the scoped deadline of green_timeout_push: -1/ETIMEDOUT (sigwait
 * returns ETIMEDOUT); a kill: -1/ECANCELED (sigwait returns it). Never EINTR (glibc's
 * sigwait never returns it either). The siginfo is what the kernel's would be, si_code
 * SI_TKILL folded into SI_USER as glibc does.
 *
 * green_signal_take blocks the signals of the set in the calling OS thread and leaves
 * them blocked (a signal arriving between two waits stays pending for the next):
 * programs that use sigwait have blocked them already, as POSIX requires.
 */
#include "io.h"

#include <string.h>

/* libc declares these pointers nonnull, which lets the compiler drop a plain NULL test
 * (and makes passing one on undefined): a NULL set gets the kernel's answer, EFAULT,
 * here. */
static int null(const void *p)
{
    __asm__("" : "+r"(p));
    return p == NULL;
}

/* The signals of set that the kernel would wait for, in *out: their count. */
static int waitable(const sigset_t *set, sigset_t *out)
{
    int n = 0;
    sigemptyset(out);
    for (int signo = 1; signo <= 64 && signo < _NSIG; signo++)
        if (signo != SIGKILL && signo != SIGSTOP && (signo < 32 || signo >= SIGRTMIN) &&
            sigismember(set, signo) == 1) {
            sigaddset(out, signo);
            n++;
        }
    return n;
}

/* Wait for a signal of set until the absolute deadline (-1: none): its number, with
 * *info filled (if info), or -1 + errno (EAGAIN at the deadline, ETIMEDOUT, ECANCELED). */
static int take(const sigset_t *set, siginfo_t *info, int64_t deadline)
{
    sigset_t want;
    siginfo_t si;
    int signo;
    if (waitable(set, &want) == 0) {
        /* nothing the kernel would wait for: the call waits for its timeout only */
        if (patch_poll(NULL, 0, deadline, NULL, PATCH_INTR_ALWAYS) == 0)
            errno = ETIMEDOUT;
        signo = -1;
    } else {
        patch_parking();
        signo = green_signal_take(&want, &si, deadline);
    }
    if (signo < 0) {
        if (errno == ETIMEDOUT && deadline >= 0 && green_now() >= deadline)
            errno = EAGAIN; /* the call's own timeout */
        else if (errno == ECANCELED)
            patch_testcancel();
        return -1;
    }
    if (si.si_code == SI_TKILL)
        si.si_code = SI_USER;
    if (info)
        *info = si;
    return signo;
}

int sigtimedwait(const sigset_t *set, siginfo_t *info, const struct timespec *ts)
{
    patch_cancel_point();
    if (null(set)) {
        errno = EFAULT;
        return -1;
    }
    if (!patch_here())
        return patch_real()->sigtimedwait(set, info, ts);
    int64_t deadline = -1;
    if (ts) {
        int64_t ms = patch_ts_ms(ts);
        if (ms < 0)
            return -1; /* EINVAL */
        deadline = ms == 0 ? 0 : green_after(ms);
    }
    int e = errno;
    int signo = take(set, info, deadline);
    if (signo > 0)
        errno = e;
    return signo;
}
GREEN_PATCH(sigtimedwait);

int sigwaitinfo(const sigset_t *set, siginfo_t *info) { return sigtimedwait(set, info, NULL); }
GREEN_PATCH(sigwaitinfo);

/* Returns an error number, and leaves errno alone, as POSIX says. */
int sigwait(const sigset_t *set, int *sig)
{
    patch_cancel_point();
    if (null(set))
        return EFAULT;
    if (!patch_here() || null(sig))
        return patch_real()->sigwait(set, sig);
    int e = errno;
    int signo = take(set, NULL, -1);
    int err = signo > 0 ? 0 : errno;
    if (signo > 0)
        *sig = signo;
    errno = e;
    return err;
}
GREEN_PATCH(sigwait);
