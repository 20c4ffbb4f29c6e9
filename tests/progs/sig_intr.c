/*
 * sig_intr.c — signal handlers interrupting blocking calls, in a plain POSIX program
 * (no libgreen headers): tests/sigintr_test.sh runs each mode on real threads, under
 * `greenrun` and under `greenrun --threads`, and wants the same output from all three.
 *
 *   sig_intr MODE     (MODE: one of the names in `modes` below)
 *
 * The checks print what they saw (return values, errno names, which thread was
 * interrupted), never a duration. Every mode sets alarm(): a call that is never
 * interrupted kills the program with SIGALRM instead of hanging the test.
 *
 * A "kicker" thread signals a thread blocked in a call. It cannot know when the call has
 * really begun, so where the signal must interrupt, it signals again every 20 ms until the
 * call has returned (a signal handled before the call starts interrupts nothing, as with
 * the kernel); handler counts are printed as "ran" (at least once), not as numbers.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* siginterrupt, sigset and sigpause are obsolescent, and what this program checks */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#define CHECK(c)                                                                       \
    do {                                                                               \
        if (!(c)) {                                                                    \
            printf("FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #c, errno);     \
            fflush(stdout);                                                            \
            _exit(1);                                                                  \
        }                                                                              \
    } while (0)

static volatile sig_atomic_t hits[65];
static void on_signal(int sig) { hits[sig]++; }
static void on_signal_info(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    if (si->si_signo == sig)
        hits[sig]++;
}

/* Install on_signal for sig: SA_RESTART or not. */
static void handle(int sig, int restart)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = restart ? SA_RESTART : 0;
    CHECK(sigaction(sig, &sa, NULL) == 0);
}

static const char *err_name(int r, int e)
{
    if (r >= 0)
        return "ok";
    return e == EINTR ? "EINTR" : e == EAGAIN ? "EAGAIN" : e == ETIMEDOUT ? "ETIMEDOUT"
         : e == ECANCELED ? "ECANCELED" : e == EINVAL ? "EINVAL" : "other";
}

static void ms_sleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- the kicker ---- */

struct kick {
    pthread_t target;
    int sig;
    int process;              /* kill(getpid()) rather than pthread_kill(target) */
    volatile int *until;      /* signal every 20 ms until *until; NULL: once */
    int first_ms;             /* before the first signal */
    int then_fd;              /* afterwards, write "late" here (-1: nothing) */
    sem_t *then_post;         /* afterwards, post this (NULL: nothing) */
};

static void *kicker(void *arg)
{
    struct kick *k = arg;
    ms_sleep(k->first_ms);
    do {
        if (k->process)
            kill(getpid(), k->sig);
        else
            pthread_kill(k->target, k->sig);
        if (k->until)
            ms_sleep(20);
    } while (k->until && !__atomic_load_n(k->until, __ATOMIC_ACQUIRE));
    if (k->then_fd >= 0) {
        ms_sleep(50);
        CHECK(write(k->then_fd, "late", 4) == 4);
    }
    if (k->then_post) {
        ms_sleep(50);
        CHECK(sem_post(k->then_post) == 0);
    }
    return NULL;
}

static pthread_t kick_start(struct kick *k)
{
    pthread_t t;
    CHECK(pthread_create(&t, NULL, kicker, k) == 0);
    return t;
}

static void done(volatile int *flag) { __atomic_store_n(flag, 1, __ATOMIC_RELEASE); }

/* ---- a poll() loop server that stops on SIGTERM (issue 12) ---- */

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

static void *serve_one(void *arg)
{
    int c = (int)(long)arg;
    char buf[16];
    ssize_t n = read(c, buf, sizeof buf);
    CHECK(n == 5 && memcmp(buf, "ping\n", 5) == 0);
    CHECK(write(c, "pong\n", 5) == 5);
    close(c);
    return NULL;
}

/* The client, a child process: waits for "ready", makes `requests` requests, then sends
 * SIGTERM to the server. */
static void client(int ready_fd, int port, int requests)
{
    char b;
    CHECK(read(ready_fd, &b, 1) == 1);
    for (int i = 0; i < requests; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        CHECK(connect(s, (struct sockaddr *)&a, sizeof a) == 0);
        CHECK(write(s, "ping\n", 5) == 5);
        char buf[16];
        CHECK(read(s, buf, sizeof buf) == 5 && memcmp(buf, "pong\n", 5) == 0);
        close(s);
    }
    ms_sleep(100); /* let the server get back into poll() */
    kill(getppid(), SIGTERM);
    _exit(0);
}

static void server(int requests)
{
    signal(SIGTERM, on_term); /* BSD semantics (SA_RESTART): poll is interrupted anyway */
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0 && listen(l, 16) == 0);
    CHECK(getsockname(l, (struct sockaddr *)&a, &len) == 0);
    int ready[2];
    CHECK(pipe(ready) == 0);
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        client(ready[0], ntohs(a.sin_port), requests);
    CHECK(write(ready[1], "r", 1) == 1);
    int served = 0, interrupted = 0;
    pthread_t workers[16];
    while (!stop) {
        struct pollfd p = {.fd = l, .events = POLLIN};
        int r = poll(&p, 1, -1);
        if (r < 0) {
            CHECK(errno == EINTR);
            interrupted++;
            continue;
        }
        int c = accept(l, NULL, NULL);
        CHECK(c >= 0 && served < 16);
        CHECK(pthread_create(&workers[served++], NULL, serve_one, (void *)(long)c) == 0);
    }
    for (int i = 0; i < served; i++)
        pthread_join(workers[i], NULL);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    printf("server: stopped by SIGTERM after %d request(s), poll interrupted: %s\n", served,
           interrupted ? "yes" : "no");
}

static void mode_server_idle(void) { server(0); }
static void mode_server_served(void) { server(2); }

/* ---- sleeps and waits that every handler interrupts ---- */

static int sleep_pipe[2];

static void nanosleep_call(void)
{
    struct timespec req = {30, 0}, rem = {-1, -1};
    int r = nanosleep(&req, &rem);
    printf("nanosleep: %d %s, rem in (20 s, 30 s]: %s\n", r, err_name(r, errno),
           rem.tv_sec >= 20 && rem.tv_sec < 30 && rem.tv_nsec >= 0 ? "yes" : "no");
}

static void clock_nanosleep_call(void)
{
    struct timespec req = {30, 0}, rem = {-1, -1};
    errno = 0;
    int r = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &rem);
    printf("clock_nanosleep: returns %s, errno untouched: %s, rem in (20 s, 30 s]: %s\n",
           r == EINTR ? "EINTR" : "other", errno == 0 ? "yes" : "no",
           rem.tv_sec >= 20 && rem.tv_sec < 30 ? "yes" : "no");
}

static void clock_nanosleep_abs_call(void)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += 30;
    int r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL);
    printf("clock_nanosleep absolute: returns %s\n", r == EINTR ? "EINTR" : "other");
}

static void sleep_call(void)
{
    unsigned left = sleep(30);
    printf("sleep: left in (20, 30]: %s\n", left > 20 && left <= 30 ? "yes" : "no");
}

static void usleep_call(void)
{
    int r = usleep(30 * 1000000u);
    printf("usleep: %d %s\n", r, err_name(r, errno));
}

static void poll_nothing_call(void)
{
    int r = poll(NULL, 0, 30000);
    printf("poll (no fds): %d %s\n", r, err_name(r, errno));
}

static void poll_call(void)
{
    struct pollfd pf = {.fd = sleep_pipe[0], .events = POLLIN};
    int r = poll(&pf, 1, -1);
    printf("poll: %d %s\n", r, err_name(r, errno));
}

static void ppoll_call(void)
{
    struct pollfd pf = {.fd = sleep_pipe[0], .events = POLLIN};
    struct timespec ts = {30, 0};
    int r = ppoll(&pf, 1, &ts, NULL);
    printf("ppoll: %d %s\n", r, err_name(r, errno));
}

static void select_call(void)
{
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(sleep_pipe[0], &rd);
    struct timeval tv = {30, 0};
    int r = select(sleep_pipe[0] + 1, &rd, NULL, NULL, &tv);
    printf("select: %d %s, timeout updated: %s\n", r, err_name(r, errno),
           tv.tv_sec >= 20 && tv.tv_sec < 30 ? "yes" : "no");
}

static void pselect_call(void)
{
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(sleep_pipe[0], &rd);
    int r = pselect(sleep_pipe[0] + 1, &rd, NULL, NULL, NULL, NULL);
    printf("pselect: %d %s\n", r, err_name(r, errno));
}

/* sem_timedwait: every handler ends it (glibc's sem_wait, without a deadline, is
 * restarted under SA_RESTART: see mode_restart) */
static void sem_timedwait_call(void)
{
    sem_t s;
    CHECK(sem_init(&s, 0, 0) == 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 30;
    int r = sem_timedwait(&s, &until);
    printf("sem_timedwait: %d %s\n", r, err_name(r, errno));
    sem_destroy(&s);
}

/* Make call while a kicker signals main until it has returned. */
static void interrupted(int sig, void (*call)(void))
{
    volatile int flag = 0;
    struct kick k = {.target = pthread_self(), .sig = sig, .until = &flag, .first_ms = 50, .then_fd = -1};
    pthread_t t = kick_start(&k);
    call();
    done(&flag);
    pthread_join(t, NULL);
}

static void mode_sleeps(void)
{
    handle(SIGUSR1, 1); /* SA_RESTART changes nothing for these */
    CHECK(pipe(sleep_pipe) == 0);
    void (*calls[])(void) = {nanosleep_call, clock_nanosleep_call, clock_nanosleep_abs_call, sleep_call,
                             usleep_call, poll_nothing_call, poll_call, ppoll_call, select_call,
                             pselect_call, sem_timedwait_call};
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
        interrupted(SIGUSR1, calls[i]);
    printf("handler ran: %s\n", hits[SIGUSR1] ? "yes" : "no");
    close(sleep_pipe[0]);
    close(sleep_pipe[1]);
}

/* ---- restartable calls: SA_RESTART restarts them, otherwise EINTR ---- */

static void mode_restart(void)
{
    int p[2];
    CHECK(pipe(p) == 0);
    char buf[16];

    /* SA_RESTART: the read goes on and gets the data written later */
    handle(SIGUSR1, 1);
    struct kick once = {.target = pthread_self(), .sig = SIGUSR1, .first_ms = 100, .then_fd = p[1]};
    pthread_t t = kick_start(&once);
    ssize_t n = read(p[0], buf, sizeof buf);
    printf("read, SA_RESTART: %zd %s, handler ran: %s\n", n, err_name((int)n, errno),
           hits[SIGUSR1] ? "yes" : "no");
    pthread_join(t, NULL);

    /* the same through signal() (BSD semantics: SA_RESTART) */
    hits[SIGUSR2] = 0;
    signal(SIGUSR2, on_signal);
    once.sig = SIGUSR2;
    t = kick_start(&once);
    n = read(p[0], buf, sizeof buf);
    printf("read, signal(): %zd %s, handler ran: %s\n", n, err_name((int)n, errno),
           hits[SIGUSR2] ? "yes" : "no");
    pthread_join(t, NULL);

    /* without SA_RESTART: EINTR */
    handle(SIGUSR1, 0);
    volatile int flag = 0;
    struct kick k = {.target = pthread_self(), .sig = SIGUSR1, .until = &flag, .first_ms = 50, .then_fd = -1};
    t = kick_start(&k);
    n = read(p[0], buf, sizeof buf);
    int e = errno;
    done(&flag);
    pthread_join(t, NULL);
    printf("read, no SA_RESTART: %zd %s\n", n, err_name((int)n, e));

    /* siginterrupt(sig, 1) takes SA_RESTART off a signal() handler */
    CHECK(siginterrupt(SIGUSR2, 1) == 0);
    flag = 0;
    k.sig = SIGUSR2;
    t = kick_start(&k);
    n = read(p[0], buf, sizeof buf);
    e = errno;
    done(&flag);
    pthread_join(t, NULL);
    printf("read, siginterrupt: %zd %s\n", n, err_name((int)n, e));

    /* a blocking write to a full pipe, without SA_RESTART: EINTR, nothing written */
    CHECK(fcntl(p[1], F_SETFL, O_NONBLOCK) == 0);
    while (write(p[1], buf, sizeof buf) > 0)
        ;
    CHECK(errno == EAGAIN && fcntl(p[1], F_SETFL, 0) == 0);
    flag = 0;
    k.sig = SIGUSR1;
    t = kick_start(&k);
    n = write(p[1], "x", 1);
    e = errno;
    done(&flag);
    pthread_join(t, NULL);
    printf("write, no SA_RESTART: %zd %s\n", n, err_name((int)n, e));

    /* accept, without SA_RESTART */
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0 && listen(l, 1) == 0);
    flag = 0;
    t = kick_start(&k);
    int c = accept(l, NULL, NULL);
    e = errno;
    done(&flag);
    pthread_join(t, NULL);
    printf("accept, no SA_RESTART: %d %s\n", c, err_name(c, e));

    /* sem_wait: glibc's futex wait without a deadline is restarted under SA_RESTART */
    sem_t sem;
    CHECK(sem_init(&sem, 0, 0) == 0);
    handle(SIGUSR1, 1);
    struct kick post = {.target = pthread_self(), .sig = SIGUSR1, .first_ms = 100, .then_fd = -1, .then_post = &sem};
    t = kick_start(&post);
    c = sem_wait(&sem);
    e = errno;
    pthread_join(t, NULL);
    printf("sem_wait, SA_RESTART: %d %s\n", c, err_name(c, e));
    handle(SIGUSR1, 0);
    flag = 0;
    t = kick_start(&k);
    c = sem_wait(&sem);
    e = errno;
    done(&flag);
    pthread_join(t, NULL);
    printf("sem_wait, no SA_RESTART: %d %s\n", c, err_name(c, e));
    sem_destroy(&sem);

    /* connect: a listener whose queue is full drops the SYN, the connect waits for its
     * retransmission; interrupted, it goes on in the background, and a second blocking
     * connect waits for it and returns 0 (Linux), a third says EISCONN */
    struct sockaddr_in la;
    socklen_t llen = sizeof la;
    CHECK(getsockname(l, (struct sockaddr *)&la, &llen) == 0);
    int queued[4];
    for (int i = 0; i < 4; i++) {
        queued[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        CHECK(connect(queued[i], (struct sockaddr *)&la, sizeof la) == -1 && errno == EINPROGRESS);
    }
    int s = socket(AF_INET, SOCK_STREAM, 0);
    flag = 0;
    t = kick_start(&k);
    c = connect(s, (struct sockaddr *)&la, sizeof la);
    e = errno;
    done(&flag);
    pthread_join(t, NULL);
    printf("connect, no SA_RESTART: %d %s\n", c, err_name(c, e));
    for (int i = 0; i < 4; i++)
        close(queued[i]);
    CHECK(fcntl(l, F_SETFL, O_NONBLOCK) == 0);
    while ((c = accept(l, NULL, NULL)) >= 0) /* room for the retransmitted SYN */
        close(c);
    c = connect(s, (struct sockaddr *)&la, sizeof la);
    printf("connect again: %d %s\n", c, err_name(c, errno));
    c = connect(s, (struct sockaddr *)&la, sizeof la);
    printf("connect a third time: %d %s\n", c, c == 0 ? "ok" : errno == EISCONN ? "EISCONN" : "other");
    close(s);
    close(l);
    close(p[0]);
    close(p[1]);
}

/* ---- only the thread the signal is for is interrupted ---- */

struct reader {
    int fd;
    ssize_t n;
    int err;
    volatile int finished;
};

static void *read_one(void *arg)
{
    struct reader *r = arg;
    char buf[16];
    r->n = read(r->fd, buf, sizeof buf);
    r->err = errno;
    done(&r->finished);
    return NULL;
}

static void *raise_then_write(void *arg)
{
    ms_sleep(50);
    raise(SIGUSR1);
    ms_sleep(50);
    CHECK(write(*(int *)arg, "late", 4) == 4);
    return NULL;
}

static void mode_target(void)
{
    handle(SIGUSR1, 0);
    int a[2], b[2];
    CHECK(pipe(a) == 0 && pipe(b) == 0);

    /* to main: main's read is interrupted, the other thread's goes on */
    struct reader other = {.fd = b[0]};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, read_one, &other) == 0);
    struct reader mine = {.fd = a[0]};
    struct kick k = {.target = pthread_self(), .sig = SIGUSR1, .until = &mine.finished, .first_ms = 50,
                     .then_fd = b[1]};
    pthread_t kt = kick_start(&k);
    read_one(&mine);
    pthread_join(kt, NULL);
    pthread_join(t, NULL);
    printf("signal for main: main's read %zd %s, the other's read %zd %s\n", mine.n,
           err_name((int)mine.n, mine.err), other.n, err_name((int)other.n, other.err));

    /* to the other thread: its read is interrupted, main's goes on */
    other = (struct reader){.fd = b[0]};
    CHECK(pthread_create(&t, NULL, read_one, &other) == 0);
    k = (struct kick){.target = t, .sig = SIGUSR1, .until = &other.finished, .first_ms = 50, .then_fd = a[1]};
    kt = kick_start(&k);
    mine = (struct reader){.fd = a[0]};
    read_one(&mine);
    pthread_join(kt, NULL);
    pthread_join(t, NULL);
    printf("signal for the other: main's read %zd %s, the other's read %zd %s\n", mine.n,
           err_name((int)mine.n, mine.err), other.n, err_name((int)other.n, other.err));

    /* raise() in another thread is for that thread: main's read goes on */
    hits[SIGUSR1] = 0;
    CHECK(pthread_create(&t, NULL, raise_then_write, &a[1]) == 0);
    mine = (struct reader){.fd = a[0]};
    read_one(&mine);
    pthread_join(t, NULL);
    printf("raise in the other: main's read %zd %s, handler ran: %s\n", mine.n, err_name((int)mine.n, mine.err),
           hits[SIGUSR1] ? "yes" : "no");
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}

/* ---- sigsuspend and pause ---- */

struct waiter {
    const sigset_t *mask; /* sigsuspend's, or NULL: pause */
    int r, err;
    volatile int finished;
};

static void *wait_signal(void *arg)
{
    struct waiter *w = arg;
    w->r = w->mask ? sigsuspend(w->mask) : pause();
    w->err = errno;
    done(&w->finished);
    return NULL;
}

/* Another thread waits: for a process-directed signal every thread blocks but its
 * sigsuspend admits, and, in pause(), for a pthread_kill of its own. */
static void others_wait(const sigset_t *wait_mask)
{
    hits[SIGUSR1] = 0;
    struct waiter w = {.mask = wait_mask};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, wait_signal, &w) == 0);
    struct kick k = {.sig = SIGUSR1, .process = 1, .first_ms = 50, .then_fd = -1};
    pthread_join(kick_start(&k), NULL);
    pthread_join(t, NULL);
    printf("another thread's sigsuspend, kill: %d %s, SIGUSR1 handled %d\n", w.r, err_name(w.r, w.err),
           (int)hits[SIGUSR1]);

    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    CHECK(pthread_sigmask(SIG_UNBLOCK, &usr1, NULL) == 0);
    w = (struct waiter){.mask = NULL};
    CHECK(pthread_create(&t, NULL, wait_signal, &w) == 0);
    k = (struct kick){.target = t, .sig = SIGUSR1, .until = &w.finished, .first_ms = 50, .then_fd = -1};
    pthread_join(kick_start(&k), NULL);
    pthread_join(t, NULL);
    printf("another thread's pause, pthread_kill: %d %s\n", w.r, err_name(w.r, w.err));

    /* pause and sigsuspend are cancellation points */
    for (int i = 0; i < 2; i++) {
        w = (struct waiter){.mask = i ? wait_mask : NULL};
        CHECK(pthread_create(&t, NULL, wait_signal, &w) == 0);
        ms_sleep(50);
        CHECK(pthread_cancel(t) == 0);
        void *res;
        CHECK(pthread_join(t, &res) == 0);
        printf("another thread's %s, cancelled: %s\n", i ? "sigsuspend" : "pause",
               res == PTHREAD_CANCELED && !w.finished ? "PTHREAD_CANCELED" : "returned");
    }
    CHECK(pthread_sigmask(SIG_BLOCK, &usr1, NULL) == 0);
}

/* ppoll and pselect with a mask that lets in a signal the thread blocks: interrupted
 * when it comes (the race-free way to wait for a signal and fds). */
static void masked_polls(const sigset_t *wait_mask)
{
    int p[2];
    CHECK(pipe(p) == 0);
    struct kick k = {.target = pthread_self(), .sig = SIGUSR1, .first_ms = 50, .then_fd = -1};
    pthread_t t = kick_start(&k);
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    int r = ppoll(&pf, 1, NULL, wait_mask);
    int e = errno;
    pthread_join(t, NULL);
    printf("ppoll with a mask: %d %s\n", r, err_name(r, e));
    t = kick_start(&k);
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(p[0], &rd);
    r = pselect(p[0] + 1, &rd, NULL, NULL, NULL, wait_mask);
    e = errno;
    pthread_join(t, NULL);
    printf("pselect with a mask: %d %s\n", r, err_name(r, e));
    close(p[0]);
    close(p[1]);
}

static void mode_suspend(void)
{
    handle(SIGUSR1, 1);
    handle(SIGUSR2, 1);
    sigset_t both, old, wait_mask;
    sigemptyset(&both);
    sigaddset(&both, SIGUSR1);
    sigaddset(&both, SIGUSR2);
    CHECK(pthread_sigmask(SIG_BLOCK, &both, &old) == 0);
    wait_mask = old;
    sigaddset(&wait_mask, SIGUSR2); /* the wait lets SIGUSR1 in, not SIGUSR2 */

    /* to main, then process-directed; blocked until the wait: no race */
    for (int process = 0; process < 2; process++) {
        hits[SIGUSR1] = hits[SIGUSR2] = 0;
        struct kick k2 = {.target = pthread_self(), .sig = SIGUSR2, .process = process, .then_fd = -1};
        pthread_t t = kick_start(&k2);
        pthread_join(t, NULL);
        struct kick k1 = {.target = pthread_self(), .sig = SIGUSR1, .process = process, .first_ms = 50,
                          .then_fd = -1};
        t = kick_start(&k1);
        int r = sigsuspend(&wait_mask);
        int e = errno;
        pthread_join(t, NULL);
        printf("sigsuspend (%s): %d %s, SIGUSR1 handled %d, SIGUSR2 handled %d\n",
               process ? "kill" : "pthread_kill", r, err_name(r, e), (int)hits[SIGUSR1], (int)hits[SIGUSR2]);
        sigset_t now;
        CHECK(pthread_sigmask(SIG_SETMASK, NULL, &now) == 0);
        printf("  mask restored: %s\n", sigismember(&now, SIGUSR1) && sigismember(&now, SIGUSR2) ? "yes" : "no");
        CHECK(pthread_sigmask(SIG_UNBLOCK, &both, NULL) == 0); /* SIGUSR2, pending, runs now */
        printf("  after unblocking: SIGUSR2 handled %d\n", (int)hits[SIGUSR2]);
        CHECK(pthread_sigmask(SIG_BLOCK, &both, NULL) == 0);
    }

    /* a signal already pending when the wait starts */
    hits[SIGUSR1] = 0;
    CHECK(raise(SIGUSR1) == 0);
    int r = sigsuspend(&wait_mask);
    printf("sigsuspend, pending before: %d %s, SIGUSR1 handled %d\n", r, err_name(r, errno), (int)hits[SIGUSR1]);

    /* xpg sigpause(sig): the current mask without sig */
    hits[SIGUSR1] = 0;
    struct kick k = {.target = pthread_self(), .sig = SIGUSR1, .first_ms = 50, .then_fd = -1};
    pthread_t t = kick_start(&k);
    r = sigpause(SIGUSR1);
    int e = errno;
    pthread_join(t, NULL);
    printf("sigpause: %d %s, SIGUSR1 handled %d\n", r, err_name(r, e), (int)hits[SIGUSR1]);
    masked_polls(&wait_mask);
    others_wait(&wait_mask);
    CHECK(pthread_sigmask(SIG_SETMASK, &old, NULL) == 0);

    /* pause: any handler ends it */
    volatile int flag = 0;
    k = (struct kick){.target = pthread_self(), .sig = SIGUSR1, .until = &flag, .first_ms = 50, .then_fd = -1};
    t = kick_start(&k);
    r = pause();
    e = errno;
    done(&flag);
    pthread_join(t, NULL);
    printf("pause: %d %s\n", r, err_name(r, e));
}

/* pause() with no handler installed: only a signal's default action can end it (here a
 * SIGTERM that ends the process); meanwhile the other threads run. */
static void *term_later(void *arg)
{
    (void)arg;
    ms_sleep(50);
    printf("the other thread ran while main was in pause()\n");
    fflush(stdout);
    kill(getpid(), SIGTERM);
    return NULL;
}

static void mode_pause_default(void)
{
    pthread_t t;
    CHECK(pthread_create(&t, NULL, term_later, NULL) == 0);
    pause();
    printf("FAIL: pause returned\n");
}

/* ---- what sigaction and the signal() family report ---- */

static void h1(int sig) { (void)sig; }
static void h2(int sig) { (void)sig; }

static const char *name(void (*h)(int))
{
    return h == SIG_DFL ? "SIG_DFL" : h == SIG_IGN ? "SIG_IGN" : h == SIG_HOLD ? "SIG_HOLD"
         : h == SIG_ERR ? "SIG_ERR" : h == h1 ? "h1" : h == h2 ? "h2" : h == on_signal ? "on_signal"
         : "another";
}

static void show(const char *what, int sig)
{
    struct sigaction sa;
    CHECK(sigaction(sig, NULL, &sa) == 0);
    printf("%s: %s flags %#x mask has itself %d, SIGUSR2 %d, SIGINT %d\n", what,
           (sa.sa_flags & SA_SIGINFO) ? (sa.sa_sigaction == on_signal_info ? "on_signal_info" : "another")
                                      : name(sa.sa_handler),
           (unsigned)sa.sa_flags, sigismember(&sa.sa_mask, sig), sigismember(&sa.sa_mask, SIGUSR2),
           sigismember(&sa.sa_mask, SIGINT));
}

/* glibc has them, <signal.h> declares them for other standards only */
extern __sighandler_t sysv_signal(int, __sighandler_t);
extern __sighandler_t bsd_signal(int, __sighandler_t);

static void mode_query(void)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = h1;
    sa.sa_flags = SA_RESTART | SA_NODEFER;
    sigaddset(&sa.sa_mask, SIGUSR2);
    CHECK(sigaction(SIGUSR1, &sa, &old) == 0);
    printf("sigaction: old %s\n", name(old.sa_handler));
    show("SIGUSR1", SIGUSR1);
    sa.sa_handler = h2;
    CHECK(sigaction(SIGUSR1, &sa, &old) == 0);
    printf("sigaction again: old %s\n", name(old.sa_handler));

    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal_info;
    sa.sa_flags = SA_SIGINFO;
    CHECK(sigaction(SIGUSR1, &sa, &old) == 0);
    printf("SA_SIGINFO: old %s\n", name(old.sa_handler));
    show("SIGUSR1", SIGUSR1);
    hits[SIGUSR1] = 0;
    raise(SIGUSR1);
    printf("SA_SIGINFO handler ran: %d\n", (int)hits[SIGUSR1]);

    printf("signal: old %s\n", name(signal(SIGUSR1, h1)));
    show("signal()", SIGUSR1);
    printf("signal: old %s\n", name(signal(SIGUSR1, SIG_IGN)));
    show("SIG_IGN", SIGUSR1);
    printf("sysv_signal: old %s\n", name(sysv_signal(SIGUSR1, h2)));
    show("sysv_signal()", SIGUSR1);
    printf("bsd_signal: old %s\n", name(bsd_signal(SIGUSR1, h1)));
    CHECK(siginterrupt(SIGUSR1, 1) == 0);
    show("siginterrupt 1", SIGUSR1);
    printf("signal after siginterrupt: old %s\n", name(signal(SIGUSR1, h2)));
    show("signal()", SIGUSR1);
    CHECK(siginterrupt(SIGUSR1, 0) == 0);
    show("siginterrupt 0", SIGUSR1);

    printf("sigset: old %s\n", name(sigset(SIGUSR1, SIG_HOLD)));
    printf("sigset: old %s\n", name(sigset(SIGUSR1, h1)));
    show("sigset()", SIGUSR1);

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    CHECK(sigaction(SIGUSR2, &sa, NULL) == 0);
    show("SA_RESETHAND", SIGUSR2);
    hits[SIGUSR2] = 0;
    raise(SIGUSR2);
    printf("SA_RESETHAND handler ran: %d\n", (int)hits[SIGUSR2]);
    show("after it ran", SIGUSR2);

    errno = 0;
    int r = sigaction(SIGKILL, &sa, NULL);
    printf("SIGKILL: %d %s\n", r, err_name(r, errno));
    r = sigaction(0, &sa, NULL);
    printf("signal 0: %d %s\n", r, err_name(r, errno));
    r = sigaction(65, &sa, NULL);
    printf("signal 65: %d %s\n", r, err_name(r, errno));
    r = sigaction(32, &sa, NULL);
    printf("signal 32: %d %s\n", r, err_name(r, errno));
    errno = 0;
    const char *old_name = name(signal(SIGKILL, h1));
    printf("signal(SIGKILL): %s %s\n", old_name, err_name(-1, errno));
    errno = 0;
    old_name = name(signal(SIGUSR1, SIG_ERR));
    printf("signal(SIGUSR1, SIG_ERR): %s %s\n", old_name, err_name(-1, errno));
}

static const struct {
    const char *name;
    void (*fn)(void);
} modes[] = {
    {"server-idle", mode_server_idle},
    {"server-served", mode_server_served},
    {"sleeps", mode_sleeps},
    {"restart", mode_restart},
    {"target", mode_target},
    {"suspend", mode_suspend},
    {"pause-default", mode_pause_default},
    {"query", mode_query},
};

int main(int argc, char **argv)
{
    for (size_t i = 0; argc == 2 && i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(argv[1], modes[i].name) == 0) {
            alarm(60);
            modes[i].fn();
            printf("%s: done\n", modes[i].name);
            return 0;
        }
    fprintf(stderr, "usage: sig_intr MODE\n");
    return 2;
}
