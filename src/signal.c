/*
 * signal.c — waiting for signals (layer 6): gevent.signal in C.
 *
 * green_signal_wait blocks the signal in the calling OS thread (pthread_sigmask) and
 * reads it from a signalfd that the hub's poller watches, so a signal is an ordinary
 * readable fd and no handler ever runs. Each hub that has waiters keeps one signalfd
 * and one FIFO queue of waiter records (wait.c's, index = the signal awaited); both
 * exist only while someone waits, and go with the last waiter. They hang off a
 * thread-local (one hub per OS thread), so the hub itself knows nothing of signals; a
 * fork child, whose hub is new, drops the parent's.
 *
 * One delivery serves every green thread waiting for that signal at the time (gevent
 * runs every handler registered for a signal). The signalfd is read one signal at a
 * time, and a signal leaves the signalfd's mask as soon as it has no unserved waiter:
 * so a second queued instance of a real-time signal, or a signal nobody waits for, is
 * never consumed on anyone's behalf; it stays pending in the kernel for a later wait.
 *
 * Only one green thread may wait on an fd for reading (fd.c), so the waiters take turns:
 * the "reader" parks on the signalfd, the others park on their records. Whoever runs
 * reads what has arrived and hands each signal to its waiters (marking their records
 * done, as sync.c does); a reader served by someone else is woken from its fd wait with
 * EINTR. A reader that leaves (served, timed out, killed) wakes the first unserved
 * waiter, which becomes the next reader.
 *
 * Invariants:
 *  - the signalfd's mask is exactly the set of signals with an unserved waiter;
 *  - while unserved waiters exist, one is the reader, or one is ready to run and will
 *    become it: the signalfd is always watched by someone who will read it;
 *  - "done wins": a waiter whose record was served returns the signal, even if its
 *    deadline passed or it was killed before it ran.
 *
 * The thread's signal mask is never restored: a signal stays blocked after the wait, so
 * that one arriving between two waits stays pending for the next instead of being
 * handled by its default action (which for most signals ends the process).
 * A process-directed signal (kill(2)) goes to any thread that does not block it: block
 * the signals you wait for in every thread, e.g. in main() before creating threads, or
 * some deliveries will run their disposition elsewhere instead of reaching the signalfd.
 * Several hubs waiting for the same process-directed signal compete for each delivery.
 */
#include "lib.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <unistd.h>

struct sig_state {
    struct green_hub *hub;       /* the hub it serves (a fork child gets a new one) */
    int fd;                      /* the signalfd */
    sigset_t mask;               /* what fd reads: signals with unserved waiters */
    struct green *reader;        /* the waiter parked on fd, or NULL */
    struct green_waitq q;        /* every waiter's record, FIFO; index = its signal */
    unsigned unserved[_NSIG];    /* waiters per signal whose record is not done */
};

/* This OS thread's state while its hub has waiters. */
static __thread struct sig_state *tls_sig;

/* Signals nobody can wait for: SIGKILL and SIGSTOP cannot be blocked, and glibc keeps
 * the first real-time signals for itself (pthread_sigmask silently leaves them out). */
static int signo_valid(int signo)
{
    if (signo <= 0 || signo >= _NSIG || signo == SIGKILL || signo == SIGSTOP)
        return 0;
    return signo < 32 || signo >= SIGRTMIN;
}

/* ---- the per-hub state ---- */

static void state_free(struct sig_state *st)
{
    if (st->hub == green__tls_hub)
        green_close(st->fd);
    else
        green__sys.close(st->fd); /* a fork child's copy: its new hub never watched it */
    free(st);
    tls_sig = NULL;
}

static struct sig_state *state_get(struct green_hub *h)
{
    struct sig_state *st = tls_sig;
    if (st && st->hub == h)
        return st;
    if (st)
        state_free(st); /* inherited through fork(): the parent's waiters are not here */
    st = calloc(1, sizeof *st);
    if (!st) {
        errno = ENOMEM;
        return NULL;
    }
    sigemptyset(&st->mask);
    st->fd = signalfd(-1, &st->mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (st->fd < 0) {
        free(st);
        return NULL;
    }
    st->hub = h;
    tls_sig = st;
    return st;
}

static int mask_update(struct sig_state *st)
{
    return signalfd(st->fd, &st->mask, 0) < 0 ? -1 : 0;
}

/* ---- serving ---- */

/* One delivery of signo: every waiter for it is served. */
static void deliver(struct green_hub *h, struct sig_state *st, int signo)
{
    for (struct green_waiter *w = st->q.head; w; w = w->next) {
        if (w->index != signo || w->done)
            continue;
        w->done = 1;
        st->unserved[signo]--;
        struct green *g = w->g;
        if (g->state == GS_WAITING && g == st->reader)
            green__wake(h, g, EINTR); /* out of its fd wait, to see that it is served */
        else
            green__waiter_wake(w, 0);
    }
    if (st->unserved[signo] == 0) {
        sigdelset(&st->mask, signo);
        /* if this fails, a further queued instance may be read with nobody to serve:
         * lost, as it would be to a handler that ran once for two deliveries */
        mask_update(st);
    }
}

/* Read every signal that has arrived, serving its waiters. */
static int drain(struct green_hub *h, struct sig_state *st)
{
    struct signalfd_siginfo si;
    for (;;) {
        /* one at a time: deliver() may take the signal out of the mask before the next */
        ssize_t n = green__sys.read(st->fd, &si, sizeof si);
        if (n == (ssize_t)sizeof si)
            deliver(h, st, (int)si.ssi_signo);
        else if (n < 0 && errno == EAGAIN)
            return 0;
        else if (n < 0 && errno != EINTR)
            return -1;
    }
}

/* Wake the first unserved waiter so that it becomes the reader. */
static void wake_next_reader(struct sig_state *st)
{
    for (struct green_waiter *w = st->q.head; w; w = w->next)
        if (!w->done) {
            green__waiter_wake(w, 0);
            return;
        }
}

/* ---- waiting ---- */

static struct green_waiter *waiter_join(struct green_hub *h, struct sig_state *st, int signo)
{
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, signo);
    /* blocked before the signalfd asks for it, so no delivery in between goes to the
     * signal's disposition; and every time, in case the caller unblocked it since */
    int e = pthread_sigmask(SIG_BLOCK, &one, NULL);
    if (e != 0) {
        errno = e;
        return NULL;
    }
    struct green_waiter *w = green__waiter_new(h);
    if (!w)
        return NULL;
    if (st->unserved[signo] == 0) {
        sigaddset(&st->mask, signo);
        if (mask_update(st) != 0) {
            sigdelset(&st->mask, signo);
            green__waiter_free(h, w);
            return NULL;
        }
    }
    w->index = (int16_t)signo;
    st->unserved[signo]++;
    green__waitq_push(&st->q, w);
    return w;
}

/* Unqueue w; the last waiter takes the state with it, a leaving reader names the next. */
static void waiter_leave(struct green_hub *h, struct sig_state *st, struct green_waiter *w)
{
    int signo = w->index;
    green__waitq_remove(&st->q, w);
    if (!w->done && --st->unserved[signo] == 0) {
        sigdelset(&st->mask, signo);
        mask_update(st);
    }
    green__waiter_free(h, w);
    if (!st->q.head)
        state_free(st);
    else if (!st->reader)
        wake_next_reader(st);
}

/* Until w is served (0) or the wait ends otherwise (-1 + errno). */
static int wait_served(struct green_hub *h, struct sig_state *st, struct green_waiter *w,
                       int64_t deadline)
{
    struct green *self = h->current;
    for (;;) {
        /* every waiter reads before it parks: a signal already pending is served even
         * with deadline 0, whoever the reader is */
        if (drain(h, st) != 0)
            return -1;
        if (w->done)
            return 0;
        int r;
        if (st->reader) {
            w->seq = self->wait_seq + 1;
            green__waiting_on(h, GW_SIGNAL, (void *)(intptr_t)w->index);
            r = green__park(h, deadline);
        } else {
            st->reader = self;
            r = green__fd_wait(h, st->fd, GREEN_READ, deadline);
            st->reader = NULL;
            if (r < 0 && errno == EINTR)
                r = 0; /* served by another waiter's read (deliver) */
        }
        if (r < 0)
            return -1;
    }
}

int green_signal_wait(int signo, int64_t deadline)
{
    if (!signo_valid(signo)) {
        errno = EINVAL;
        return -1;
    }
    struct green_hub *h = green__loop();
    if (!h)
        return -1;
    struct sig_state *st = state_get(h);
    if (!st)
        return -1;
    struct green_waiter *w = waiter_join(h, st, signo);
    if (!w) {
        int err = errno;
        if (!st->q.head)
            state_free(st);
        errno = err;
        return -1;
    }
    (void)wait_served(h, st, w, deadline); /* done wins: the record decides */
    int err = errno;
    int done = w->done;
    waiter_leave(h, st, w);
    if (done)
        return signo;
    errno = err;
    return -1;
}
