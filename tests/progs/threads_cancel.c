/*
 * threads_cancel.c — POSIX thread cancellation as a plain pthreads program relies on it
 * (no libgreen headers): the same binary runs on real threads and, under
 * libgreen-patch.so with GREEN_PATCH_THREADS=1, on green threads, and must print the
 * same lines.
 *
 *   threads_cancel TEST    (TEST: one of the names in `tests` below, or "all")
 *
 * For each cancellation point a worker blocks in it with a cleanup handler pushed and
 * is cancelled: the handler must run, the call must never return, and the join result
 * must be PTHREAD_CANCELED. Then: disabled cancellation (the thread runs on, the cancel
 * acts at the first cancellation point after it is enabled, before that call does
 * anything), key destructors, waits that are no cancellation points (a mutex lock), and
 * the cancel state and type calls. Prints "ok TEST" per test passed; exits 1 at the
 * first failed check.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CHECK(c)                                                                       \
    do {                                                                               \
        if (!(c)) {                                                                    \
            printf("FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #c, errno);      \
            fflush(stdout);                                                            \
            _exit(1);                                                                  \
        }                                                                              \
    } while (0)
#define CHECK_EQ(a, b) CHECK((long)(a) == (long)(b))

static void sleep_ms(int ms)
{
    struct timespec d = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&d, &d) != 0 && errno == EINTR)
        ;
}

/* ---- a worker blocked in one call, cancelled ---- */

static int cleaned, returned, entered;
static int pipe_fds[2], sock_fds[2], listen_fd;
static sem_t sem;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static pthread_t never_ends;

static void on_cleanup(void *arg)
{
    (void)arg;
    cleaned++;
}

static void unlock_mu(void *arg)
{
    (void)arg;
    cleaned++;
    CHECK_EQ(pthread_mutex_unlock(&mu), 0); /* the cancelled wait relocked it */
}

static void far_future(struct timespec *ts, clockid_t clk)
{
    clock_gettime(clk, ts);
    ts->tv_sec += 3600;
}

/* Each blocks for good unless cancelled. */
static void b_read(void) { char c; read(pipe_fds[0], &c, 1); }
static void b_readv(void)
{
    char c;
    struct iovec v = {&c, 1};
    readv(pipe_fds[0], &v, 1);
}
static void b_recv(void) { char c; recv(sock_fds[0], &c, 1, 0); }
static void b_recvfrom(void) { char c; recvfrom(sock_fds[0], &c, 1, 0, NULL, NULL); }
static void b_recvmsg(void)
{
    char c;
    struct iovec v = {&c, 1};
    struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1};
    recvmsg(sock_fds[0], &m, 0);
}
static char big[1 << 20];
static void b_write(void) { write(pipe_fds[1], big, sizeof big); }          /* the pipe is full */
static void b_send(void) { send(sock_fds[1], big, sizeof big, 0); }          /* the socket is full */
static void b_accept(void) { accept(listen_fd, NULL, NULL); }
static void b_poll(void)
{
    struct pollfd p = {.fd = pipe_fds[0], .events = POLLIN};
    poll(&p, 1, -1);
}
static void b_ppoll(void)
{
    struct pollfd p = {.fd = pipe_fds[0], .events = POLLIN};
    ppoll(&p, 1, NULL, NULL);
}
static void b_select(void)
{
    fd_set r;
    FD_ZERO(&r);
    FD_SET(pipe_fds[0], &r);
    select(pipe_fds[0] + 1, &r, NULL, NULL, NULL);
}
static void b_pselect(void)
{
    fd_set r;
    FD_ZERO(&r);
    FD_SET(pipe_fds[0], &r);
    pselect(pipe_fds[0] + 1, &r, NULL, NULL, NULL, NULL);
}
static void b_sleep(void) { sleep(3600); }
static void b_usleep(void) { usleep(3600u * 1000); } /* one hour is beyond usleep's range */
static void b_nanosleep(void)
{
    struct timespec d = {3600, 0};
    nanosleep(&d, NULL);
}
static void b_clock_nanosleep(void)
{
    struct timespec d = {3600, 0};
    clock_nanosleep(CLOCK_MONOTONIC, 0, &d, NULL);
}
static void b_sem_wait(void) { sem_wait(&sem); }
static void b_sem_timedwait(void)
{
    struct timespec ts;
    far_future(&ts, CLOCK_REALTIME);
    sem_timedwait(&sem, &ts);
}
static void b_join(void) { pthread_join(never_ends, NULL); }
static void b_cond_wait(void)
{
    pthread_mutex_lock(&mu);
    pthread_cleanup_push(unlock_mu, NULL);
    for (;;)
        pthread_cond_wait(&cv, &mu);
    pthread_cleanup_pop(0);
}
static void b_cond_timedwait(void)
{
    struct timespec ts;
    far_future(&ts, CLOCK_REALTIME);
    pthread_mutex_lock(&mu);
    pthread_cleanup_push(unlock_mu, NULL);
    for (;;)
        pthread_cond_timedwait(&cv, &mu, &ts);
    pthread_cleanup_pop(0);
}
static void b_testcancel(void)
{
    for (;;) {
        pthread_testcancel();
        sched_yield();
    }
}

static void *blocker(void *arg)
{
    void (*call)(void) = (void (*)(void))(uintptr_t)arg;
    pthread_cleanup_push(on_cleanup, NULL);
    entered = 1;
    call();
    returned = 1;
    pthread_cleanup_pop(0);
    return NULL;
}

static void *wait_forever(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    pthread_cleanup_push(unlock_mu, NULL);
    for (;;)
        pthread_cond_wait(&cv, &mu);
    pthread_cleanup_pop(0);
    return NULL;
}

static void setup(void)
{
    CHECK_EQ(pipe(pipe_fds), 0);
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sock_fds), 0);
}

static void teardown(void)
{
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    close(sock_fds[0]);
    close(sock_fds[1]);
}

/* Fill fd's buffer (a pipe or socket) to the brim, its flags left as they were. */
static void fill(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    CHECK_EQ(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
    while (write(fd, big, sizeof big) > 0)
        ;
    CHECK(errno == EAGAIN);
    CHECK_EQ(fcntl(fd, F_SETFL, fl), 0);
}

/* Start fn(arg) and cancel it once it has been inside its call for a while. */
static void *start_and_cancel(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    void *r;
    entered = 0;
    CHECK_EQ(pthread_create(&t, NULL, fn, arg), 0);
    while (!entered)
        sleep_ms(1);
    sleep_ms(30);
    CHECK_EQ(pthread_cancel(t), 0);
    CHECK_EQ(pthread_join(t, &r), 0);
    return r;
}

static void test_points(void)
{
    static const struct {
        const char *name;
        void (*call)(void);
        int full; /* a write: the pipe and socket are filled first */
    } points[] = {
        {"read", b_read, 0},
        {"readv", b_readv, 0},
        {"recv", b_recv, 0},
        {"recvfrom", b_recvfrom, 0},
        {"recvmsg", b_recvmsg, 0},
        {"write", b_write, 1},
        {"send", b_send, 1},
        {"accept", b_accept, 0},
        {"poll", b_poll, 0},
        {"ppoll", b_ppoll, 0},
        {"select", b_select, 0},
        {"pselect", b_pselect, 0},
        {"sleep", b_sleep, 0},
        {"usleep", b_usleep, 0},
        {"nanosleep", b_nanosleep, 0},
        {"clock_nanosleep", b_clock_nanosleep, 0},
        {"sem_wait", b_sem_wait, 0},
        {"sem_timedwait", b_sem_timedwait, 0},
        {"pthread_join", b_join, 0},
        {"pthread_cond_wait", b_cond_wait, 0},
        {"pthread_cond_timedwait", b_cond_timedwait, 0},
        {"pthread_testcancel", b_testcancel, 0},
    };
    CHECK_EQ(sem_init(&sem, 0, 0), 0);
    listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "threads_cancel.%d", (int)getpid()); /* abstract */
    CHECK_EQ(bind(listen_fd, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(listen(listen_fd, 1), 0);
    CHECK_EQ(pthread_create(&never_ends, NULL, wait_forever, NULL), 0);
    for (size_t i = 0; i < sizeof points / sizeof points[0]; i++) {
        setup();
        if (points[i].full) {
            fill(pipe_fds[1]);
            fill(sock_fds[1]);
        }
        cleaned = returned = 0;
        void *r = start_and_cancel(blocker, (void *)(uintptr_t)points[i].call);
        printf("%s: %s, returned %d, cleaned up %d\n", points[i].name,
               r == PTHREAD_CANCELED ? "PTHREAD_CANCELED" : "not cancelled", returned, cleaned);
        CHECK(r == PTHREAD_CANCELED);
        CHECK_EQ(returned, 0);
        CHECK(cleaned >= 1);
        teardown();
    }
    CHECK_EQ(pthread_cancel(never_ends), 0);
    CHECK_EQ(pthread_join(never_ends, NULL), 0);
    close(listen_fd);
    CHECK_EQ(sem_destroy(&sem), 0);
}

/* ---- disabled cancellation: the thread runs on; enabled again, the next
 * cancellation point acts on entry, before it writes anything ---- */
static int ran_on, enabled;
static void *disabled(void *arg)
{
    (void)arg;
    int old;
    CHECK_EQ(pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old), 0);
    CHECK_EQ(old, PTHREAD_CANCEL_ENABLE);
    pthread_cleanup_push(on_cleanup, NULL);
    entered = 1;
    struct timespec d = {0, 100 * 1000000}; /* cancelled meanwhile: it sleeps it all */
    CHECK_EQ(nanosleep(&d, NULL), 0);
    ran_on = 1;
    CHECK_EQ(pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old), 0);
    CHECK_EQ(old, PTHREAD_CANCEL_DISABLE);
    enabled = 1;
    write(pipe_fds[1], "x", 1); /* would not block: cancelled on entry all the same */
    returned = 1;
    pthread_cleanup_pop(0);
    return NULL;
}
static void test_disabled(void)
{
    setup();
    cleaned = returned = ran_on = enabled = 0;
    void *r = start_and_cancel(disabled, NULL);
    CHECK(r == PTHREAD_CANCELED);
    CHECK_EQ(ran_on, 1);
    CHECK_EQ(enabled, 1);
    CHECK_EQ(returned, 0);
    CHECK_EQ(cleaned, 1);
    CHECK_EQ(fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK), 0);
    char c;
    CHECK_EQ(read(pipe_fds[0], &c, 1), -1); /* nothing was written */
    CHECK_EQ(errno, EAGAIN);
    teardown();
}

/* ---- a pending cancel acts on entry of a read that has data: the data stays ---- */
static volatile int go;
static void *read_after_cancel(void *arg)
{
    (void)arg;
    CHECK_EQ(pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL), 0);
    entered = 1;
    while (!go)
        sched_yield(); /* no cancellation point */
    CHECK_EQ(pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL), 0);
    char c;
    read(pipe_fds[0], &c, 1);
    returned = 1;
    return NULL;
}
static void test_entry(void)
{
    setup();
    CHECK_EQ(write(pipe_fds[1], "y", 1), 1);
    pthread_t t;
    void *r;
    returned = entered = 0;
    go = 0;
    CHECK_EQ(pthread_create(&t, NULL, read_after_cancel, NULL), 0);
    while (!entered)
        sleep_ms(1);
    CHECK_EQ(pthread_cancel(t), 0);
    go = 1;
    CHECK_EQ(pthread_join(t, &r), 0);
    CHECK(r == PTHREAD_CANCELED);
    CHECK_EQ(returned, 0);
    char c;
    CHECK_EQ(read(pipe_fds[0], &c, 1), 1);
    CHECK_EQ(c, 'y');
    teardown();
}

/* ---- key destructors run for a cancelled thread ---- */
static pthread_key_t key;
static intptr_t destroyed;
static void key_dtor(void *v) { destroyed = (intptr_t)v; }
static void *keyed_read(void *arg)
{
    (void)arg;
    CHECK_EQ(pthread_setspecific(key, (void *)(intptr_t)42), 0);
    entered = 1;
    b_read();
    returned = 1;
    return NULL;
}
static void test_keys(void)
{
    setup();
    CHECK_EQ(pthread_key_create(&key, key_dtor), 0);
    destroyed = returned = 0;
    CHECK(start_and_cancel(keyed_read, NULL) == PTHREAD_CANCELED);
    CHECK_EQ(returned, 0);
    CHECK_EQ(destroyed, 42);
    CHECK_EQ(pthread_key_delete(key), 0);
    teardown();
}

/* ---- a mutex lock is no cancellation point: the thread gets the mutex first ---- */
static int got;
static void *lock_then_point(void *arg)
{
    (void)arg;
    entered = 1;
    CHECK_EQ(pthread_mutex_lock(&mu), 0);
    got = 1;
    CHECK_EQ(pthread_mutex_unlock(&mu), 0);
    pthread_testcancel();
    returned = 1;
    return NULL;
}
static void test_not_a_point(void)
{
    pthread_t t;
    void *r;
    got = returned = entered = 0;
    CHECK_EQ(pthread_mutex_lock(&mu), 0);
    CHECK_EQ(pthread_create(&t, NULL, lock_then_point, NULL), 0);
    while (!entered)
        sleep_ms(1);
    sleep_ms(30);
    CHECK_EQ(pthread_cancel(t), 0);
    sleep_ms(30);
    CHECK_EQ(got, 0); /* still waiting for the mutex */
    CHECK_EQ(pthread_mutex_unlock(&mu), 0);
    CHECK_EQ(pthread_join(t, &r), 0);
    CHECK(r == PTHREAD_CANCELED);
    CHECK_EQ(got, 1);
    CHECK_EQ(returned, 0);
}

/* ---- the state and type calls ---- */
static void *state_and_type(void *arg)
{
    (void)arg;
    int old = -1;
    CHECK_EQ(pthread_setcancelstate(12345, &old), EINVAL);
    CHECK_EQ(pthread_setcanceltype(12345, &old), EINVAL);
    CHECK_EQ(pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, &old), 0);
    CHECK_EQ(old, PTHREAD_CANCEL_DEFERRED);
    CHECK_EQ(pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, &old), 0);
    CHECK_EQ(old, PTHREAD_CANCEL_ASYNCHRONOUS);
    CHECK_EQ(pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old), 0);
    CHECK_EQ(old, PTHREAD_CANCEL_ENABLE);
    CHECK_EQ(pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old), 0);
    CHECK_EQ(old, PTHREAD_CANCEL_DISABLE);
    CHECK_EQ(pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL), 0);
    return (void *)1;
}
static void *cancels_itself(void *arg)
{
    (void)arg;
    pthread_cleanup_push(on_cleanup, NULL);
    CHECK_EQ(pthread_cancel(pthread_self()), 0);
    sleep_ms(1);
    returned = 1;
    pthread_cleanup_pop(0);
    return NULL;
}
static void *ends_at_once(void *arg) { return arg; }
static void test_state(void)
{
    pthread_t t;
    void *r;
    CHECK_EQ(pthread_create(&t, NULL, state_and_type, NULL), 0);
    CHECK_EQ(pthread_join(t, &r), 0);
    CHECK(r == (void *)1);

    cleaned = returned = 0;
    CHECK_EQ(pthread_create(&t, NULL, cancels_itself, NULL), 0);
    CHECK_EQ(pthread_join(t, &r), 0);
    CHECK(r == PTHREAD_CANCELED);
    CHECK_EQ(cleaned, 1);
    CHECK_EQ(returned, 0);

    /* cancelling a thread that has ended but is not joined yet: no effect on its value */
    CHECK_EQ(pthread_create(&t, NULL, ends_at_once, (void *)7), 0);
    sleep_ms(20);
    printf("pthread_cancel of an ended thread: %d\n", pthread_cancel(t));
    CHECK_EQ(pthread_join(t, &r), 0);
    CHECK(r == (void *)7);
}

static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
    {"points", test_points}, {"disabled", test_disabled}, {"entry", test_entry},
    {"keys", test_keys},     {"not_a_point", test_not_a_point}, {"state", test_state},
};

int main(int argc, char **argv)
{
    alarm(120); /* a cancellation that never comes fails, not hangs */
    const char *which = argc > 1 ? argv[1] : "all";
    int ran = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (strcmp(which, "all") == 0 || strcmp(which, tests[i].name) == 0) {
            tests[i].fn();
            printf("ok %s\n", tests[i].name);
            ran++;
        }
    }
    return ran ? 0 : 2;
}
