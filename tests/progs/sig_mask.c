/*
 * sig_mask.c — per-thread signal masks, in a plain POSIX program (no libgreen headers):
 * tests/sigintr_test.sh runs each mode on real threads, under `greenrun` and under
 * `greenrun --threads`, and wants the same output from all three. Under --threads the
 * pthreads are green threads of one OS thread, whose kernel mask they share: the patch
 * library keeps a mask per green pthread (src/patch/sigmask.c).
 *
 *   sig_mask MODE     (MODE: one of the names in `modes` below)
 *
 *   worker-blocks  a worker that blocks every signal (as nginx's thread-pool threads do)
 *                  does not keep SIGTERM's handler from interrupting main's poll and
 *                  epoll_wait (EINTR, the handler's flag set)
 *   per-thread     the mask a thread sets is the one it reads back (SIGKILL, SIGSTOP and
 *                  glibc's 32, 33 left out; EINVAL for a bad `how`); a new thread starts
 *                  with its creator's mask; one thread's change is not another's
 *   sigpipe        a thread that blocks SIGPIPE and writes to a pipe with no reader gets
 *                  EPIPE and lives; the SIGPIPE is then pending, and sigtimedwait (zero
 *                  timeout) and sigwait take it
 *   thread-admits  main blocks SIGUSR1, a thread lets it in and waits in poll: a
 *                  SIGUSR1 sent to the process runs the handler and interrupts the
 *                  thread's poll (the kernel delivers it to the one thread that admits it)
 *
 * Waits that must end have a timeout (printed as "timeout"), and every mode sets
 * alarm(): a wrong result shows as a different output, not a hang.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define CHECK(c)                                                                       \
    do {                                                                               \
        if (!(c)) {                                                                    \
            printf("FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #c, errno);     \
            fflush(stdout);                                                            \
            _exit(1);                                                                  \
        }                                                                              \
    } while (0)

static const char *err_name(long r, int e)
{
    if (r >= 0)
        return "ok";
    return e == EINTR ? "EINTR" : e == EAGAIN ? "EAGAIN" : e == EPIPE ? "EPIPE"
         : e == EINVAL ? "EINVAL" : "other";
}

static void ms_sleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The blocked signals of m among 1..64, as "1 2 15 34" ("none"); the last 4 results
 * stay valid (a printf may show several). */
static const char *show(const sigset_t *m)
{
    static __thread char bufs[4][512];
    static __thread unsigned next;
    char *buf = bufs[next++ % 4];
    size_t n = 0;
    buf[0] = '\0';
    for (int sig = 1; sig <= 64 && sig < NSIG; sig++)
        if (sigismember(m, sig) == 1)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%d", n ? " " : "", sig);
    return n ? buf : "none";
}

static const char *mine(void)
{
    sigset_t m;
    sigemptyset(&m);
    CHECK(pthread_sigmask(SIG_BLOCK, NULL, &m) == 0);
    return show(&m);
}

/* main's mask, less SIGPIPE: under greenrun --threads a green pthread's SIGPIPE bit is
 * applied to the OS thread, which main shares (src/patch/sigmask.c), so a thread that
 * blocks every signal blocks SIGPIPE for main too. */
static const char *main_mask(void)
{
    sigset_t m;
    sigemptyset(&m);
    CHECK(pthread_sigmask(SIG_BLOCK, NULL, &m) == 0);
    sigdelset(&m, SIGPIPE);
    return show(&m);
}

static sigset_t set_of(int a, int b, int c)
{
    sigset_t s;
    sigemptyset(&s);
    if (a)
        sigaddset(&s, a);
    if (b)
        sigaddset(&s, b);
    if (c)
        sigaddset(&s, c);
    return s;
}

/* ---- worker-blocks ---- */

static volatile sig_atomic_t got_term;
static void on_term(int sig) { (void)sig; got_term = 1; }

static int worker_pipe[2];
static volatile int waiting_done;

/* Blocks every signal, as nginx's thread-pool threads do, then waits (for main's word). */
static void *blocker(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    CHECK(pthread_sigmask(SIG_BLOCK, &all, NULL) == 0);
    char c;
    ssize_t r;
    while ((r = read(worker_pipe[0], &c, 1)) < 0 && errno == EINTR)
        ;
    CHECK(r == 1);
    return NULL;
}

/* Sends the process SIGTERM every 20 ms until main's wait is over; blocks SIGTERM
 * itself, so that the kernel's choice is main (the only thread that lets it in). */
static void *kicker(void *arg)
{
    (void)arg;
    sigset_t term = set_of(SIGTERM, 0, 0);
    CHECK(pthread_sigmask(SIG_BLOCK, &term, NULL) == 0);
    while (!waiting_done) {
        ms_sleep(20);
        kill(getpid(), SIGTERM);
    }
    return NULL;
}

static void mode_worker_blocks(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    CHECK(sigaction(SIGTERM, &sa, NULL) == 0);
    CHECK(pipe(worker_pipe) == 0);
    pthread_t w, k;
    CHECK(pthread_create(&w, NULL, blocker, NULL) == 0);
    ms_sleep(50); /* the worker has blocked everything */

    int idle[2];
    CHECK(pipe(idle) == 0);
    for (int round = 0; round < 2; round++) {
        got_term = 0;
        waiting_done = 0;
        CHECK(pthread_create(&k, NULL, kicker, NULL) == 0);
        long r;
        int e;
        if (round == 0) {
            struct pollfd p = {idle[0], POLLIN, 0};
            r = poll(&p, 1, 5000);
            e = errno;
            printf("poll: %s flag=%d\n", r == 0 ? "timeout" : err_name(r, e), (int)got_term);
        } else {
            int ep = epoll_create1(0);
            CHECK(ep >= 0);
            struct epoll_event ev = {.events = EPOLLIN}, out;
            CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, idle[0], &ev) == 0);
            r = epoll_wait(ep, &out, 1, 5000);
            e = errno;
            printf("epoll_wait: %s flag=%d\n", r == 0 ? "timeout" : err_name(r, e), (int)got_term);
            close(ep);
        }
        waiting_done = 1;
        CHECK(pthread_join(k, NULL) == 0);
    }
    CHECK(write(worker_pipe[1], "x", 1) == 1);
    CHECK(pthread_join(w, NULL) == 0);
    /* main's own mask was never touched by the others */
    printf("main's mask: %s\n", main_mask());
}

/* ---- per-thread ---- */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int stage;

static void wait_stage(int s)
{
    pthread_mutex_lock(&lock);
    while (stage < s)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
}

static void set_stage(int s)
{
    pthread_mutex_lock(&lock);
    stage = s;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}

/* B: starts with A's mask, changes its own while A waits, then A looks at its own. */
static void *thread_b(void *arg)
{
    (void)arg;
    printf("B inherits: %s\n", mine());
    sigset_t s = set_of(SIGINT, 0, 0);
    CHECK(pthread_sigmask(SIG_SETMASK, &s, NULL) == 0);
    printf("B after SETMASK {INT}: %s\n", mine());
    set_stage(1);
    wait_stage(2);
    printf("B after A's change: %s\n", mine());
    return NULL;
}

static void *thread_a(void *arg)
{
    (void)arg;
    sigset_t s, old;
    printf("A inherits: %s\n", mine());
    s = set_of(SIGUSR1, 0, 0);
    CHECK(pthread_sigmask(SIG_SETMASK, &s, &old) == 0);
    printf("A SETMASK {USR1}: old %s\n", show(&old));
    printf("A reads: %s\n", mine());
    s = set_of(SIGUSR2, 0, 0);
    CHECK(pthread_sigmask(SIG_BLOCK, &s, &old) == 0);
    printf("A BLOCK {USR2}: old %s, now %s\n", show(&old), mine());
    s = set_of(SIGUSR1, SIGHUP, 0);
    CHECK(pthread_sigmask(SIG_UNBLOCK, &s, NULL) == 0);
    printf("A UNBLOCK {USR1 HUP}: %s\n", mine());
    s = set_of(SIGKILL, SIGSTOP, SIGHUP);
    CHECK(pthread_sigmask(SIG_BLOCK, &s, NULL) == 0);
    printf("A BLOCK {KILL STOP HUP}: %s\n", mine());
    /* sigprocmask is the same mask */
    s = set_of(SIGALRM, 0, 0);
    CHECK(sigprocmask(SIG_BLOCK, &s, &old) == 0);
    printf("A sigprocmask BLOCK {ALRM}: old %s\n", show(&old));
    CHECK(sigprocmask(SIG_UNBLOCK, &s, &old) == 0);
    printf("A sigprocmask UNBLOCK {ALRM}: old %s, now %s\n", show(&old), mine());
    /* a bad how: EINVAL, nothing changes; without a set, how is not looked at */
    printf("A bad how: %s\n", strerror(pthread_sigmask(12345, &s, NULL)));
    errno = 0;
    int r = sigprocmask(12345, &s, NULL);
    printf("A sigprocmask bad how: %s\n", err_name(r, errno));
    printf("A bad how without a set: %d\n", pthread_sigmask(12345, NULL, &old));
    printf("A after bad hows: %s\n", mine());

    pthread_t b;
    CHECK(pthread_create(&b, NULL, thread_b, NULL) == 0);
    wait_stage(1);
    printf("A after B's SETMASK: %s\n", mine());
    s = set_of(SIGWINCH, 0, 0);
    CHECK(pthread_sigmask(SIG_BLOCK, &s, NULL) == 0);
    set_stage(2);
    CHECK(pthread_join(b, NULL) == 0);
    printf("A at the end: %s\n", mine());
    return NULL;
}

/* Blocks everything: KILL, STOP, 32 and 33 are not in what it reads back. */
static void *thread_all(void *arg)
{
    (void)arg;
    sigset_t all, m;
    sigfillset(&all);
    CHECK(pthread_sigmask(SIG_SETMASK, &all, NULL) == 0);
    CHECK(pthread_sigmask(SIG_BLOCK, NULL, &m) == 0);
    printf("all: KILL %d STOP %d 32 %d 33 %d TERM %d PIPE %d RTMIN %d RTMAX %d\n",
           sigismember(&m, SIGKILL), sigismember(&m, SIGSTOP), sigismember(&m, 32),
           sigismember(&m, 33), sigismember(&m, SIGTERM), sigismember(&m, SIGPIPE),
           sigismember(&m, SIGRTMIN), sigismember(&m, SIGRTMAX));
    return NULL;
}

static void mode_per_thread(void)
{
    sigset_t s = set_of(SIGQUIT, 0, 0), none;
    sigemptyset(&none);
    CHECK(pthread_sigmask(SIG_SETMASK, &s, NULL) == 0);
    printf("main: %s\n", mine());
    pthread_t a, all;
    CHECK(pthread_create(&a, NULL, thread_a, NULL) == 0);
    CHECK(pthread_join(a, NULL) == 0);
    CHECK(pthread_create(&all, NULL, thread_all, NULL) == 0);
    CHECK(pthread_join(all, NULL) == 0);
    printf("main after the threads: %s\n", main_mask());
    CHECK(pthread_sigmask(SIG_SETMASK, &none, NULL) == 0);
    printf("main cleared: %s\n", mine());
}

/* ---- sigpipe ---- */

static void *pipe_writer(void *arg)
{
    (void)arg;
    sigset_t pipe_set = set_of(SIGPIPE, 0, 0), old, pending;
    CHECK(pthread_sigmask(SIG_BLOCK, &pipe_set, &old) == 0);
    int fds[2];
    CHECK(pipe(fds) == 0);
    close(fds[0]);
    errno = 0;
    long r = (long)write(fds[1], "x", 1);
    printf("write: %s\n", err_name(r, errno));
    sigemptyset(&pending);
    CHECK(sigpending(&pending) == 0);
    printf("pending: %d\n", sigismember(&pending, SIGPIPE));
    struct timespec zero = {0, 0};
    r = sigtimedwait(&pipe_set, NULL, &zero);
    printf("sigtimedwait: %s\n", r == SIGPIPE ? "SIGPIPE" : err_name(r, errno));
    errno = 0;
    r = sigtimedwait(&pipe_set, NULL, &zero);
    printf("sigtimedwait again: %s\n", r == SIGPIPE ? "SIGPIPE" : err_name(r, errno));
    errno = 0;
    r = (long)write(fds[1], "x", 1);
    printf("write: %s\n", err_name(r, errno));
    int sig = 0;
    int e = sigwait(&pipe_set, &sig);
    printf("sigwait: %d %s\n", e, sig == SIGPIPE ? "SIGPIPE" : "other");
    sigemptyset(&pending);
    CHECK(sigpending(&pending) == 0);
    printf("pending after: %d\n", sigismember(&pending, SIGPIPE));
    CHECK(pthread_sigmask(SIG_SETMASK, &old, NULL) == 0);
    close(fds[1]);
    return NULL;
}

static void mode_sigpipe(void)
{
    signal(SIGPIPE, SIG_DFL);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, pipe_writer, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    printf("alive, main's mask: %s\n", mine());
}

/* ---- thread-admits ---- */

static volatile sig_atomic_t usr1_hits;
static volatile int admits_done;
static void on_usr1(int sig) { (void)sig; usr1_hits = 1; }

/* Lets in SIGUSR1, which main blocks: a process-directed one is for this thread. */
static void *admitter(void *arg)
{
    (void)arg;
    sigset_t s = set_of(SIGUSR1, 0, 0);
    CHECK(pthread_sigmask(SIG_UNBLOCK, &s, NULL) == 0);
    errno = 0;
    int r = poll(NULL, 0, 5000);
    printf("thread's poll: %s handler=%d\n", r == 0 ? "timeout" : err_name(r, errno), (int)usr1_hits);
    admits_done = 1;
    return NULL;
}

static void mode_thread_admits(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    sigset_t s = set_of(SIGUSR1, 0, 0);
    CHECK(pthread_sigmask(SIG_BLOCK, &s, NULL) == 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, admitter, NULL) == 0);
    while (!admits_done) {
        ms_sleep(20);
        kill(getpid(), SIGUSR1);
    }
    CHECK(pthread_join(t, NULL) == 0);
    printf("main: %s\n", main_mask());
}

static const struct {
    const char *name;
    void (*fn)(void);
} modes[] = {
    {"worker-blocks", mode_worker_blocks},
    {"per-thread", mode_per_thread},
    {"sigpipe", mode_sigpipe},
    {"thread-admits", mode_thread_admits},
};

int main(int argc, char **argv)
{
    for (size_t i = 0; argc == 2 && i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(argv[1], modes[i].name) == 0) {
            alarm(60);
            setvbuf(stdout, NULL, _IOLBF, 0);
            modes[i].fn();
            printf("%s: done\n", modes[i].name);
            return 0;
        }
    fprintf(stderr, "usage: sig_mask MODE\n");
    return 2;
}
