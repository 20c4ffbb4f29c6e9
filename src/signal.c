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
 * A waiter waits for a set of signals (a bit mask in its record: signals 1..64). One
 * delivery serves every green_signal_wait(_set) waiter whose set holds that signal at
 * the time (gevent runs every handler registered for a signal), and at most one
 * green_signal_take waiter, the first in line (sigwaitinfo(2)'s rule: a delivery is
 * consumed once). The signalfd is read one signal at a time, and a signal leaves the
 * signalfd's mask as soon as it has no unserved waiter: so a second queued instance of
 * a real-time signal, or a signal nobody waits for, is never consumed on anyone's
 * behalf; it stays pending in the kernel for a later wait.
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
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

/* A waiter's record: aux is its set (bit signo-1), index the signal that served it
 * (0 until then), data this. */
struct sig_want {
    int take;                    /* consumes the delivery (green_signal_take) */
    struct signalfd_siginfo si;  /* what served it */
    /* a clause of green_choose: served only by claiming the select's lead (wait.h) */
    struct green_waiter *lead;
    int index;                   /* the clause */
    int reader;                  /* its green thread reads the signalfd meanwhile, */
    uint32_t epoch;              /* armed on it with green__fd_arm */
};

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
    if (signo <= 0 || signo >= _NSIG || signo > 64 || signo == SIGKILL || signo == SIGSTOP)
        return 0;
    return signo < 32 || signo >= SIGRTMIN;
}

int green__signal_valid(int signo) { return signo_valid(signo); }

static uint64_t bit(int signo) { return (uint64_t)1 << (signo - 1); }

/* The signals of set that can be waited for, as bits; 0 + EINVAL when set holds a
 * signal that cannot be (or none at all). */
static uint64_t set_bits(const sigset_t *set)
{
    uint64_t bits = 0;
    for (int signo = 1; set && signo < _NSIG && signo <= 64; signo++) {
        if (sigismember(set, signo) != 1)
            continue;
        if (!signo_valid(signo)) {
            bits = 0;
            break;
        }
        bits |= bit(signo);
    }
    if (!bits)
        errno = EINVAL;
    return bits;
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

/* w no longer counts as unserved for the signals of its set; those that have no
 * unserved waiter left leave the signalfd's mask (1 when the mask changed). */
static int unserve(struct sig_state *st, struct green_waiter *w)
{
    int changed = 0;
    for (int signo = 1; signo <= 64; signo++)
        if ((w->aux & bit(signo)) && --st->unserved[signo] == 0) {
            sigdelset(&st->mask, signo);
            changed = 1;
        }
    return changed;
}

static void siginfo_from(siginfo_t *info, const struct signalfd_siginfo *si);

/* A delivery that served nobody — its only waiters were clauses of selects that another
 * clause had completed meanwhile — is made pending again for this thread, as if it had
 * never been read (its signal has left the signalfd's mask by then): with its siginfo
 * where the kernel allows (the thread group's first thread, or a queued signal), else as
 * a plain pthread_kill. */
static void put_back(struct green_hub *h, const struct signalfd_siginfo *si)
{
    siginfo_t info;
    siginfo_from(&info, si);
    if (green__sys.syscall(SYS_rt_tgsigqueueinfo, getpid(), h->tid, info.si_signo, &info) != 0)
        green__sys.pthread_kill((pthread_t)h->thread, info.si_signo);
}

/* One delivery of signo: every waiter for it is served, takers only the first, a select's
 * clause only if it can claim its select (else it drops out of this wait). */
static void deliver(struct green_hub *h, struct sig_state *st, const struct signalfd_siginfo *si)
{
    int signo = (int)si->ssi_signo, taken = 0, changed = 0, served = 0;
    for (struct green_waiter *w = st->q.head; w; w = w->next) {
        struct sig_want *want = w->data;
        if (w->done || signo < 1 || signo > 64 || !(w->aux & bit(signo)) || (want->take && taken))
            continue;
        w->done = 1; /* served, or (a select completed otherwise) out of the running */
        changed |= unserve(st, w);
        if (want->lead && !green__select_claim(want->lead))
            continue;
        served = 1;
        taken |= want->take;
        w->index = (int16_t)signo;
        want->si = *si;
        struct green *g = w->g;
        if (g->state == GS_WAITING && g == st->reader)
            green__wake(h, g, EINTR); /* out of its fd wait, to see that it is served */
        else
            green__waiter_wake(w, 0);
        if (want->lead)
            green__select_done(want->lead, want->index, GREEN_SELECT_DONE);
    }
    /* if this fails, a further queued instance may be read with nobody to serve: lost,
     * as it would be to a handler that ran once for two deliveries */
    if (changed)
        mask_update(st);
    if (!served)
        put_back(h, si);
}

/* Read every signal that has arrived, serving its waiters. */
static int drain(struct green_hub *h, struct sig_state *st)
{
    struct signalfd_siginfo si;
    for (;;) {
        /* one at a time: deliver() may take the signal out of the mask before the next */
        ssize_t n = green__sys.read(st->fd, &si, sizeof si);
        if (n == (ssize_t)sizeof si)
            deliver(h, st, &si);
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

static struct green_waiter *waiter_join(struct green_hub *h, struct sig_state *st, uint64_t bits,
                                        struct sig_want *want)
{
    sigset_t set;
    sigemptyset(&set);
    for (int signo = 1; signo <= 64; signo++)
        if (bits & bit(signo))
            sigaddset(&set, signo);
    /* blocked before the signalfd asks for them, so no delivery in between goes to the
     * signal's disposition; and every time, in case the caller unblocked one since */
    int e = green__sys.pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (e != 0) {
        errno = e;
        return NULL;
    }
    struct green_waiter *w = green__waiter_new(h);
    if (!w)
        return NULL;
    sigset_t old = st->mask;
    for (int signo = 1; signo <= 64; signo++)
        if ((bits & bit(signo)) && st->unserved[signo]++ == 0)
            sigaddset(&st->mask, signo);
    w->aux = bits;
    w->data = want;
    if (mask_update(st) != 0) {
        unserve(st, w);
        st->mask = old;
        green__waiter_free(h, w);
        return NULL;
    }
    green__waitq_push(&st->q, w);
    return w;
}

/* Unqueue w; the last waiter takes the state with it, a leaving reader names the next. */
static void waiter_leave(struct green_hub *h, struct sig_state *st, struct green_waiter *w)
{
    green__waitq_remove(&st->q, w);
    if (!w->done && unserve(st, w))
        mask_update(st);
    green__waiter_free(h, w);
    if (!st->q.head)
        state_free(st);
    else if (!st->reader)
        wake_next_reader(st);
}

static int lowest_signal(uint64_t bits) { return bits ? __builtin_ctzll(bits) + 1 : 0; }

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
            green__waiting_on(h, GW_SIGNAL, (void *)(intptr_t)lowest_signal(w->aux));
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

/* Wait for a signal of bits: its number, and what the kernel said of it in *si (if
 * si); -1 + errno. */
static int wait_bits(uint64_t bits, int take, struct signalfd_siginfo *si, int64_t deadline)
{
    struct green_hub *h = green__loop();
    if (!h)
        return -1;
    struct sig_state *st = state_get(h);
    if (!st)
        return -1;
    /* the record is read by whichever green thread drains the signalfd: not on our
     * stack, which may be copied away (shared mode) */
    struct sig_want *want = calloc(1, sizeof *want);
    struct green_waiter *w = want ? waiter_join(h, st, bits, want) : NULL;
    if (!w) {
        int err = want ? errno : ENOMEM;
        free(want);
        if (!st->q.head)
            state_free(st);
        errno = err;
        return -1;
    }
    want->take = take;
    (void)wait_served(h, st, w, deadline); /* done wins: the record decides */
    int err = errno;
    int signo = w->done ? w->index : -1;
    waiter_leave(h, st, w);
    if (signo > 0 && si)
        *si = want->si;
    free(want);
    errno = err;
    return signo;
}

/* ---- green_choose's clauses (lib.h) ---- */

int green__signal_arm(struct green_hub *h, int signo, struct green_waiter *lead, int index,
                      struct green_waiter **out)
{
    struct sig_state *st = state_get(h);
    if (!st)
        return -1;
    struct sig_want *want = calloc(1, sizeof *want);
    struct green_waiter *w = want ? waiter_join(h, st, bit(signo), want) : NULL;
    if (!w) {
        int err = want ? errno : ENOMEM;
        free(want);
        if (!st->q.head)
            state_free(st);
        errno = err;
        return -1;
    }
    want->lead = lead;
    want->index = index;
    *out = w;
    /* a signal already pending is served now (even with deadline 0), as in wait_served;
     * if the select is still open and nobody reads the signalfd, its green thread will */
    drain(h, st);
    if (!st->reader && __atomic_load_n(&lead->done, __ATOMIC_ACQUIRE) == GREEN_SELECT_PENDING &&
        green__fd_arm(h, st->fd, GREEN_READ, &want->epoch) == 0) {
        st->reader = h->current;
        want->reader = 1;
    }
    return 0;
}

void green__signal_disarm(struct green_hub *h, struct green_waiter *w)
{
    struct sig_state *st = tls_sig;
    struct sig_want *want = w->data;
    if (want->reader) {
        green__fd_disarm(h, st->fd, GREEN_READ, want->epoch);
        st->reader = NULL;
    }
    waiter_leave(h, st, w);
    free(want);
}

void green__signal_drain(struct green_hub *h)
{
    struct sig_state *st = tls_sig;
    if (st && st->hub == h)
        drain(h, st);
}

int green_signal_wait(int signo, int64_t deadline)
{
    if (!signo_valid(signo)) {
        errno = EINVAL;
        return -1;
    }
    return wait_bits(bit(signo), 0, NULL, deadline);
}

int green_signal_wait_set(const sigset_t *set, int64_t deadline)
{
    uint64_t bits = set_bits(set);
    return bits ? wait_bits(bits, 0, NULL, deadline) : -1;
}

/* siginfo_t from the signalfd's record: the fields sigwaitinfo(2) fills. */
static void siginfo_from(siginfo_t *info, const struct signalfd_siginfo *si)
{
    memset(info, 0, sizeof *info);
    info->si_signo = (int)si->ssi_signo;
    info->si_errno = si->ssi_errno;
    info->si_code = si->ssi_code;
    info->si_pid = (pid_t)si->ssi_pid;
    info->si_uid = (uid_t)si->ssi_uid;
    if (info->si_signo == SIGCHLD) {
        info->si_status = si->ssi_status;
        info->si_utime = (clock_t)si->ssi_utime;
        info->si_stime = (clock_t)si->ssi_stime;
    } else if (info->si_code == SI_QUEUE || info->si_code == SI_TIMER || info->si_code == SI_MESGQ) {
        info->si_value.sival_ptr = (void *)(uintptr_t)si->ssi_ptr;
    } else if (info->si_signo == SIGSEGV || info->si_signo == SIGBUS || info->si_signo == SIGILL ||
               info->si_signo == SIGFPE || info->si_signo == SIGTRAP) {
        info->si_addr = (void *)(uintptr_t)si->ssi_addr;
    } else if (info->si_signo == SIGIO) {
        info->si_band = si->ssi_band;
        info->si_fd = si->ssi_fd;
    }
}

int green_signal_take(const sigset_t *set, siginfo_t *info, int64_t deadline)
{
    uint64_t bits = set_bits(set);
    if (!bits)
        return -1;
    struct signalfd_siginfo si;
    int signo = wait_bits(bits, 1, &si, deadline);
    if (signo > 0 && info)
        siginfo_from(info, &si);
    return signo;
}
