/*
 * sigmask.c — pthread_sigmask and sigprocmask (GREEN_PATCH_THREADS=1): each green
 * pthread has a signal mask of its own.
 *
 * The kernel keeps one signal mask per OS thread, and a hub's green threads share their
 * OS thread. Programs set a thread's mask for that thread alone: nginx's thread-pool
 * threads block every signal so that signals go to the main thread, which waits in
 * epoll_wait for them. Were such a call applied to the OS thread, main() (the root, on
 * the same OS thread) would block SIGTERM too, and never see it. So:
 *
 *  - In a green pthread (one made by the pthread_create wrapper) the mask is the green
 *    thread's own, kept in its struct pth: SIG_BLOCK, SIG_UNBLOCK and SIG_SETMASK change
 *    it, the old value returned is it, and the OS thread's mask is left alone. As with
 *    glibc and the kernel: a bad `how` fails with EINVAL (only when a set is given: with
 *    none, `how` is not looked at), SIGKILL and SIGSTOP are silently never blocked, and
 *    glibc's reserved real-time signals (32 and 33, its cancellation and setxid signals)
 *    are left out of the set.
 *  - One exception: SIGPIPE. Whenever a green pthread's call names SIGPIPE (SIG_BLOCK and
 *    SIG_UNBLOCK with a set holding it; SIG_SETMASK always), the resulting state of
 *    SIGPIPE is also applied to the OS thread for real. Programs (libpq, ...) block
 *    SIGPIPE around a write, then take the SIGPIPE that write raised with sigtimedwait
 *    or sigwait: the write must not kill the process, and the signal must be pending for
 *    the OS thread afterwards. Being the OS thread's, that bit is shared by the hub's
 *    green threads: the last call that named it wins. The synchronous signals (SIGSEGV,
 *    SIGBUS, SIGFPE, SIGILL, SIGTRAP) are not mirrored: the kernel does not hold a fault
 *    back anyway (a blocked fault kills the process), and one thread that blocks all
 *    signals would otherwise take the handlers of every other green thread of its OS
 *    thread with it (libgreen's stack overflow report among them).
 *  - A new green pthread starts with its creator's mask: the creator's own if it is a
 *    green pthread, else the OS thread's.
 *  - Everywhere else — the root (main(), or whatever OS thread runs the hub), a plain OS
 *    thread, libgreen's own threads, a green thread started with libgreen's own API, or
 *    with the switch off — both calls go straight to libc: the mask is the OS thread's.
 *    libgreen itself (src/) and this library's own uses call libc directly (sys.h,
 *    patch_real()), never these wrappers.
 *
 * What follows from it: a signal's handler runs on the OS thread whenever the OS
 * thread's mask — the root's — lets it in, and which blocking call it interrupts is
 * intr.c's rule; what a green pthread blocks stays deliverable to the rest of the
 * process. A signal the root blocks that a green pthread lets in is for that thread
 * while it is in an interruptible call: the call waits with the thread's mask, as
 * sigsuspend waits with its own (intr.c, own_mask). sigwait,
 * sigwaitinfo and sigtimedwait block the signals they wait for on the OS thread
 * themselves (signal.c); sigsuspend, ppoll and pselect take their mask as given (intr.c).
 * A program's fork() or posix_spawn() in a green pthread gives the child the OS thread's
 * mask; system() and popen() give the caller's.
 */
#include "thread.h"

#include <signal.h>

/* Drop what no mask can hold: SIGKILL, SIGSTOP, and glibc's two reserved signals. */
static void clean(sigset_t *s)
{
    sigdelset(s, SIGKILL);
    sigdelset(s, SIGSTOP);
    sigdelset(s, 32);
    sigdelset(s, 33);
}

int patch_sigmask_green(sigset_t *out)
{
    struct pth *b = patch_threads ? pth_self() : NULL;
    if (b)
        *out = b->mask;
    return b != NULL;
}

/* Green pthread b's call: 0, or an error number. */
static int green_mask(struct pth *b, int how, const sigset_t *set, sigset_t *old)
{
    sigset_t was = b->mask;
    if (set) {
        sigset_t s = *set, now = b->mask;
        clean(&s);
        switch (how) {
        case SIG_BLOCK:
            sigorset(&now, &now, &s);
            break;
        case SIG_UNBLOCK:
            for (int sig = 1; sig < NSIG; sig++)
                if (sigismember(&s, sig) == 1)
                    sigdelset(&now, sig);
            break;
        case SIG_SETMASK:
            now = s;
            break;
        default:
            return EINVAL;
        }
        b->mask = now;
        if (how == SIG_SETMASK || sigismember(set, SIGPIPE) == 1) {
            sigset_t pipe;
            sigemptyset(&pipe);
            sigaddset(&pipe, SIGPIPE);
            int e = patch_real()->pthread_sigmask(sigismember(&now, SIGPIPE) == 1 ? SIG_BLOCK : SIG_UNBLOCK,
                                                  &pipe, NULL);
            if (e != 0) {
                b->mask = was;
                return e;
            }
        }
    }
    if (old)
        *old = was;
    return 0;
}

int pthread_sigmask(int how, const sigset_t *restrict set, sigset_t *restrict old)
{
    struct pth *b = patch_threads ? pth_self() : NULL;
    if (!b)
        return patch_real()->pthread_sigmask(how, set, old);
    return green_mask(b, how, set, old);
}
GREEN_PATCH_THREAD(pthread_sigmask);

int sigprocmask(int how, const sigset_t *restrict set, sigset_t *restrict old)
{
    struct pth *b = patch_threads ? pth_self() : NULL;
    if (!b)
        return patch_real()->sigprocmask(how, set, old);
    int e = green_mask(b, how, set, old);
    if (e != 0) {
        errno = e;
        return -1;
    }
    return 0;
}
GREEN_PATCH_THREAD(sigprocmask);
