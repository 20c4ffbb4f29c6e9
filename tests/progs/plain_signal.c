/*
 * plain_signal.c — sigwait, sigwaitinfo and sigtimedwait as a plain pthread program uses
 * them (no libgreen): the answers must be glibc's, plainly and under
 * `greenrun --threads`, where each check's thread is a green thread and the wait parks
 * it while the ticker thread goes on.
 *
 *   plain_signal [CHECK]    (a name below, or "all": prints "ok NAME" for each)
 */
#define _GNU_SOURCE
#include "prog.h"

#include <signal.h>

static sigset_t just(int signo)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, signo);
    return s;
}

/* A thread that sends signo with value v to the process once the ticker has ticked. */
struct send {
    int signo, value;
};

static void *send_later(void *arg)
{
    struct send *s = arg;
    ticks_wait(20);
    CHECK_EQ(sigqueue(getpid(), s->signo, (union sigval){.sival_int = s->value}), 0);
    return NULL;
}

static pthread_t send_in_a_while(struct send *s)
{
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, send_later, s), 0);
    return t;
}

/* sigwait parks until another thread's kill(): 0, the signal, errno untouched. */
static void check_sigwait(void)
{
    sigset_t set = just(SIGUSR1);
    struct send s = {SIGUSR1, 0};
    pthread_t t = send_in_a_while(&s);
    long t0 = ticks_now();
    int sig = 0;
    errno = 1234;
    CHECK_EQ(sigwait(&set, &sig), 0);
    CHECK_EQ(sig, SIGUSR1);
    CHECK_EQ(errno, 1234);
    CHECK(TICKED(t0)); /* the sender and the ticker ran meanwhile */
    CHECK_EQ(pthread_join(t, NULL), 0);
    /* glibc's answer to a NULL set: the error number, not -1 (called through a pointer
     * that carries no nonnull attribute, which UBSan would enforce) */
    typedef int sigwait_fn(const sigset_t *, int *);
    sigwait_fn *sigwait_any = (sigwait_fn *)opaque_ptr((void *)sigwait);
    CHECK_EQ(sigwait_any(opaque_ptr(NULL), &sig), EFAULT);
}

/* sigwaitinfo's siginfo: a queued value, the sender. */
static void check_sigwaitinfo(void)
{
    int rt = SIGRTMIN + 1;
    sigset_t set = just(rt);
    struct send s = {rt, 42};
    pthread_t t = send_in_a_while(&s);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    CHECK_EQ(sigwaitinfo(&set, &si), rt);
    CHECK_EQ(si.si_signo, rt);
    CHECK_EQ(si.si_code, SI_QUEUE);
    CHECK_EQ(si.si_value.sival_int, 42);
    CHECK_EQ(si.si_pid, getpid());
    CHECK_EQ(si.si_uid, getuid());
    CHECK_EQ(pthread_join(t, NULL), 0);
    /* raise() sends with tgkill: glibc reports SI_USER, not SI_TKILL */
    CHECK_EQ(raise(SIGUSR2), 0);
    set = just(SIGUSR2);
    memset(&si, 0, sizeof si);
    CHECK_EQ(sigwaitinfo(&set, &si), SIGUSR2);
    CHECK_EQ(si.si_code, SI_USER);
    CHECK_EQ(si.si_pid, getpid());
    /* a NULL info is allowed */
    CHECK_EQ(raise(SIGUSR2), 0);
    CHECK_EQ(sigwaitinfo(&set, NULL), SIGUSR2);
}

/* sigtimedwait: EAGAIN at its timeout (not before it), EINVAL for a bad timeout,
 * EFAULT for a NULL set. */
static void check_sigtimedwait(void)
{
    sigset_t set = just(SIGUSR1);
    struct timespec ts = {0, 50 * 1000000L}, zero = {0, 0}, bad = {0, 1000000000L}, neg = {-1, 0};
    long t0 = now_ms(), k0 = ticks_now();
    CHECK_ERR(sigtimedwait(&set, NULL, &ts), EAGAIN);
    CHECK(now_ms() - t0 >= 45);
    CHECK(TICKED(k0));
    CHECK_ERR(sigtimedwait(&set, NULL, &zero), EAGAIN);
    CHECK_ERR(sigtimedwait(&set, NULL, &bad), EINVAL);
    CHECK_ERR(sigtimedwait(&set, NULL, &neg), EINVAL);
    typedef int sigtimedwait_fn(const sigset_t *, siginfo_t *, const struct timespec *);
    sigtimedwait_fn *sigtimedwait_any = (sigtimedwait_fn *)opaque_ptr((void *)sigtimedwait);
    CHECK_ERR(sigtimedwait_any(opaque_ptr(NULL), NULL, &zero), EFAULT);
    /* a pending signal is taken at once, even with a zero timeout */
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(sigtimedwait(&set, NULL, &zero), SIGUSR1);
}

/* What the kernel waits for: SIGKILL and SIGSTOP are left out, never EINVAL; a full set
 * (the daemons' sigfillset pattern) waits for all the others; an empty one only times
 * out. */
static void check_sets(void)
{
    struct timespec zero = {0, 0}, ts = {0, 30 * 1000000L};
    sigset_t set = just(SIGKILL);
    sigaddset(&set, SIGSTOP);
    CHECK_ERR(sigtimedwait(&set, NULL, &zero), EAGAIN);
    sigaddset(&set, SIGUSR2);
    CHECK_EQ(raise(SIGUSR2), 0);
    CHECK_EQ(sigtimedwait(&set, NULL, &ts), SIGUSR2);
    sigset_t old;
    sigfillset(&set); /* as POSIX asks, the set is blocked first (and unblocked after) */
    CHECK_EQ(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
    CHECK_EQ(raise(SIGUSR1), 0);
    int sig = 0;
    CHECK_EQ(sigwait(&set, &sig), 0);
    CHECK_EQ(sig, SIGUSR1);
    CHECK_EQ(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
    sigemptyset(&set);
    long t0 = now_ms(), k0 = ticks_now();
    CHECK_ERR(sigtimedwait(&set, NULL, &ts), EAGAIN);
    CHECK(now_ms() - t0 >= 25);
    CHECK(TICKED(k0));
    CHECK_ERR(sigaddset(&set, 32), EINVAL); /* glibc keeps its own signals out of sets */
}

/* Each queued delivery is taken by one waiter: two threads, two signals, both served. */
struct waiter {
    int signo, value;
};

static void *wait_one(void *arg)
{
    struct waiter *w = arg;
    sigset_t set = just(w->signo);
    siginfo_t si;
    int r;
    /* (Linux may wake a waiter whose signal another waiter took: EINTR, to retry) */
    while ((r = sigwaitinfo(&set, &si)) < 0 && errno == EINTR) {
    }
    CHECK_EQ(r, w->signo);
    w->value = si.si_value.sival_int;
    return NULL;
}

static void check_consumed(void)
{
    int rt = SIGRTMIN + 2;
    struct waiter w[2] = {{rt, 0}, {rt, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        CHECK_EQ(pthread_create(&t[i], NULL, wait_one, &w[i]), 0);
    ticks_wait(20);
    for (int v = 1; v <= 2; v++)
        CHECK_EQ(sigqueue(getpid(), rt, (union sigval){.sival_int = v}), 0);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(pthread_join(t[i], NULL), 0);
    CHECK_EQ(w[0].value + w[1].value, 3);
    CHECK(w[0].value != w[1].value);
}

/* sigwait and sigtimedwait are cancellation points. */
static void block_sigwait(void *arg)
{
    (void)arg;
    sigset_t set = just(SIGUSR2);
    int sig;
    sigwait(&set, &sig);
}

static void block_sigtimedwait(void *arg)
{
    (void)arg;
    sigset_t set = just(SIGUSR2);
    struct timespec ts = {30, 0};
    sigtimedwait(&set, NULL, &ts);
}

static void check_cancel(void)
{
    check_cancelled(block_sigwait, NULL);
    check_cancelled(block_sigtimedwait, NULL);
}

int main(int argc, char **argv)
{
    /* blocked in every thread, as sigwait's users do (the threads inherit the mask) */
    sigset_t set;
    sigemptyset(&set);
    int sigs[] = {SIGUSR1, SIGUSR2, SIGRTMIN + 1, SIGRTMIN + 2};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(&set, sigs[i]);
    CHECK_EQ(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
    static const struct prog_test tests[] = {
        {"sigwait", check_sigwait},       {"sigwaitinfo", check_sigwaitinfo},
        {"sigtimedwait", check_sigtimedwait}, {"sets", check_sets},
        {"consumed", check_consumed},     {"cancel", check_cancel},
    };
    return prog_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
