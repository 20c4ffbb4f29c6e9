/*
 * plain_fds.c — a program's own event loop and the kernel's fd-to-fd copies as a plain
 * pthread program uses them (no libgreen): epoll_wait/epoll_pwait/epoll_pwait2,
 * sendfile, splice, tee, copy_file_range, recvmmsg, sendmmsg. The answers must be
 * glibc's, plainly and under `greenrun --threads`, where each check's thread is a green
 * thread and the waits park it while the ticker thread goes on.
 *
 *   plain_fds [CHECK]    (a name below, or "all": prints "ok NAME" for each)
 */
#define _GNU_SOURCE
#include "prog.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

/* A scratch file of n bytes of 'a'..'z', unlinked. */
static int scratch(size_t n)
{
    char path[] = "/tmp/plain_fds.XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    char buf[4096];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (char)('a' + i % 26);
    for (size_t done = 0; done < n;) {
        size_t k = n - done < sizeof buf ? n - done : sizeof buf;
        CHECK_EQ(write(fd, buf, k), (long)k);
        done += k;
    }
    CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

/* ---- epoll ---- */

static void check_epoll(void)
{
    int p[2];
    CHECK_EQ(pipe(p), 0);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK(ep >= 0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 7}, out[4];
    CHECK_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev), 0);
    /* parks until another thread writes */
    struct later l = {p[1], "x", 1};
    pthread_t t = in_a_while(&l);
    long t0 = ticks_now();
    errno = 1234;
    CHECK_EQ(epoll_wait(ep, out, 4, -1), 1);
    CHECK_EQ(errno, 1234);
    CHECK(TICKED(t0));
    CHECK(out[0].data.u32 == 7 && (out[0].events & EPOLLIN));
    CHECK_EQ(pthread_join(t, NULL), 0);
    /* level-triggered: still ready */
    CHECK_EQ(epoll_pwait(ep, out, 4, 10, NULL), 1);
    char c;
    CHECK_EQ(read(p[0], &c, 1), 1);
    /* its own timeout: 0, not before it */
    long m0 = now_ms();
    CHECK_EQ(epoll_wait(ep, out, 4, 40), 0);
    CHECK(now_ms() - m0 >= 35);
    CHECK_EQ(epoll_wait(ep, out, 4, 0), 0);
    sigset_t mask;
    sigemptyset(&mask);
    CHECK_EQ(epoll_pwait(ep, out, 4, 20, &mask), 0);
    struct timespec ts = {0, 20 * 1000000L}, bad = {0, 1000000000L};
    CHECK_EQ(epoll_pwait2(ep, out, 4, &ts, NULL), 0);
    CHECK_ERR(epoll_pwait2(ep, out, 4, &bad, NULL), EINVAL);
    /* edge-triggered: one event per change */
    ev.events = EPOLLIN | EPOLLET;
    CHECK_EQ(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev), 0);
    CHECK_EQ(write(p[1], "yz", 2), 2);
    CHECK_EQ(epoll_pwait2(ep, out, 4, NULL, NULL), 1);
    CHECK_EQ(epoll_wait(ep, out, 4, 20), 0);
    /* the kernel's errors */
    CHECK_ERR(epoll_wait(ep, out, 0, 0), EINVAL);
    CHECK_ERR(epoll_wait(ep, out, (int)opaque(-1), 10), EINVAL);
    CHECK_ERR(epoll_wait(p[0], out, 4, 10), EINVAL); /* not an epoll fd */
    CHECK_ERR(epoll_wait(9999, out, 4, 10), EBADF);
    close(ep);
    close(p[0]);
    close(p[1]);
}

/* ---- sendfile, splice, tee, copy_file_range ---- */

struct drain {
    int fd;
    size_t got;
};

static void *drain_all(void *arg)
{
    struct drain *d = arg;
    char buf[65536];
    ssize_t r;
    ticks_wait(5);
    while ((r = read(d->fd, buf, sizeof buf)) > 0)
        d->got += (size_t)r;
    return NULL;
}

static void check_sendfile(void)
{
    enum { N = 1 << 20 };
    int f = scratch(N);
    /* to a stream socket: all of it, while a slow reader drains */
    int s[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
    struct drain d = {s[1], 0};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, drain_all, &d), 0);
    off_t off = 0;
    long t0 = ticks_now();
    CHECK_EQ(sendfile(s[0], f, &off, N), N);
    CHECK(TICKED(t0));
    CHECK_EQ(off, N);
    CHECK_EQ(shutdown(s[0], SHUT_WR), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(d.got, N);
    /* to an empty pipe: what fits (one call) */
    int p[2];
    CHECK_EQ(pipe(p), 0);
    CHECK_EQ(sendfile(p[1], f, NULL, N), 65536);
    CHECK_EQ(lseek(f, 0, SEEK_CUR), 65536); /* no offset: the file's position moved */
    char buf[65536];
    for (size_t got = 0; got < sizeof buf;) {
        ssize_t r = read(p[0], buf + got, sizeof buf - got);
        CHECK(r > 0);
        got += (size_t)r;
    }
    /* at the end of the file: 0 */
    off = N;
    CHECK_EQ(sendfile(p[1], f, &off, 10), 0);
    CHECK_ERR(sendfile(p[1], p[0], NULL, 10), EINVAL); /* from a pipe */
    CHECK_ERR(sendfile(p[1], 9999, NULL, 10), EBADF);
    close(p[0]);
    close(p[1]);
    close(s[0]);
    close(s[1]);
    close(f);
}

static void check_splice(void)
{
    int s[2], p[2], q[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
    CHECK_EQ(pipe(p), 0);
    CHECK_EQ(pipe(q), 0);
    /* from a socket into a pipe: parks until the data comes, returns what came */
    struct later l = {s[1], "hello", 5};
    pthread_t t = in_a_while(&l);
    long t0 = ticks_now();
    CHECK_EQ(splice(s[0], NULL, p[1], NULL, 1 << 20, 0), 5);
    CHECK(TICKED(t0));
    CHECK_EQ(pthread_join(t, NULL), 0);
    /* tee: waits for data in p, copies without consuming */
    CHECK_EQ(tee(p[0], q[1], 100, 0), 5);
    /* from the pipe into a file at an offset */
    int f = scratch(0);
    loff_t off = 3;
    CHECK_EQ(splice(p[0], NULL, f, &off, 100, 0), 5);
    CHECK_EQ(off, 8);
    char buf[16] = {0};
    CHECK_EQ(pread(f, buf, sizeof buf, 3), 5);
    CHECK(memcmp(buf, "hello", 5) == 0);
    CHECK_EQ(read(q[0], buf, sizeof buf), 5);
    /* tee from an empty pipe parks until a write */
    l = (struct later){p[1], "abc", 3};
    t = in_a_while(&l);
    t0 = ticks_now();
    CHECK_EQ(tee(p[0], q[1], 100, 0), 3);
    CHECK(TICKED(t0));
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(read(p[0], buf, sizeof buf), 3);
    CHECK_EQ(read(q[0], buf, sizeof buf), 3);
    /* copy_file_range between files */
    int g = scratch(4096), h = scratch(0);
    loff_t in = 100, outo = 0;
    CHECK_EQ(copy_file_range(g, &in, h, &outo, 1000, 0), 1000);
    CHECK(in == 1100 && outo == 1000);
    CHECK_EQ(pread(h, buf, 4, 0), 4);
    CHECK(memcmp(buf, "wxyz", 4) == 0); /* byte 100 of the alphabet pattern */
    /* non-blocking on request; the kernel's errors */
    CHECK_ERR(splice(p[0], NULL, q[1], NULL, 10, SPLICE_F_NONBLOCK), EAGAIN);
    CHECK_ERR(tee(p[0], q[1], 10, SPLICE_F_NONBLOCK), EAGAIN);
    CHECK_EQ(fcntl(s[0], F_SETFL, O_NONBLOCK), 0);
    CHECK_ERR(splice(s[0], NULL, p[1], NULL, 10, 0), EAGAIN); /* the user's non-blocking socket */
    CHECK_ERR(splice(f, NULL, g, NULL, 10, 0), EINVAL);       /* no pipe */
    CHECK_ERR(tee(f, q[1], 10, 0), EINVAL);
    CHECK_ERR(copy_file_range(p[0], NULL, h, NULL, 10, 0), EINVAL);
    CHECK_ERR(splice(9999, NULL, p[1], NULL, 10, 0), EBADF);
    int fds[] = {s[0], s[1], p[0], p[1], q[0], q[1], f, g, h};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        close(fds[i]);
}

/* ---- recvmmsg and sendmmsg ---- */

struct dgrams {
    int fd, n;
};

/* n datagrams "0", "1", ..., one every few ticks. */
static void *send_dgrams(void *arg)
{
    struct dgrams *d = arg;
    for (int i = 0; i < d->n; i++) {
        ticks_wait(10);
        char c = (char)('0' + i);
        CHECK_EQ(send(d->fd, &c, 1, 0), 1);
    }
    return NULL;
}

static void check_recvmmsg(void)
{
    enum { V = 4 };
    int s[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_DGRAM, 0, s), 0);
    char data[V][8];
    struct iovec iov[V];
    struct mmsghdr m[V];
    memset(m, 0, sizeof m);
    for (int i = 0; i < V; i++) {
        iov[i] = (struct iovec){data[i], sizeof data[i]};
        m[i].msg_hdr.msg_iov = &iov[i];
        m[i].msg_hdr.msg_iovlen = 1;
    }
    /* blocking: waits until all 3 have come */
    struct dgrams d = {s[1], 3};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, send_dgrams, &d), 0);
    long t0 = ticks_now();
    CHECK_EQ(recvmmsg(s[0], m, 3, 0, NULL), 3);
    CHECK(TICKED(t0));
    CHECK_EQ(pthread_join(t, NULL), 0);
    for (int i = 0; i < 3; i++)
        CHECK(m[i].msg_len == 1 && data[i][0] == '0' + i);
    /* MSG_WAITFORONE: returns once one has come */
    d.n = 1;
    CHECK_EQ(pthread_create(&t, NULL, send_dgrams, &d), 0);
    CHECK_EQ(recvmmsg(s[0], m, V, MSG_WAITFORONE, NULL), 1);
    CHECK_EQ(pthread_join(t, NULL), 0);
    /* the timeout is checked after each datagram: a zero one takes one */
    CHECK_EQ(send(s[1], "a", 1, 0), 1);
    CHECK_EQ(send(s[1], "b", 1, 0), 1);
    struct timespec ts = {0, 0};
    CHECK_EQ(recvmmsg(s[0], m, V, 0, &ts), 1);
    CHECK(ts.tv_sec == 0 && ts.tv_nsec == 0);
    CHECK_EQ(recvmmsg(s[0], m, V, MSG_DONTWAIT, NULL), 1);
    CHECK(data[0][0] == 'b');
    /* the time left is written back */
    CHECK_EQ(send(s[1], "c", 1, 0), 1);
    CHECK_EQ(send(s[1], "d", 1, 0), 1);
    ts = (struct timespec){5, 0};
    CHECK_EQ(recvmmsg(s[0], m, 2, 0, &ts), 2);
    CHECK(ts.tv_sec == 4 && ts.tv_nsec > 0);
    /* the kernel's errors */
    CHECK_ERR(recvmmsg(s[0], m, V, MSG_DONTWAIT, NULL), EAGAIN);
    ts = (struct timespec){0, 1000000000L};
    CHECK_ERR(recvmmsg(s[0], m, V, 0, &ts), EINVAL);
    CHECK_ERR(recvmmsg(9999, m, V, 0, NULL), EBADF);
    close(s[0]);
    close(s[1]);
}

static void check_sendmmsg(void)
{
    enum { V = 3, LEN = 200 * 1024 };
    int s[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
    static char big[V][LEN];
    struct iovec iov[V];
    struct mmsghdr m[V];
    memset(m, 0, sizeof m);
    for (int i = 0; i < V; i++) {
        memset(big[i], 'A' + i, LEN);
        iov[i] = (struct iovec){big[i], LEN};
        m[i].msg_hdr.msg_iov = &iov[i];
        m[i].msg_hdr.msg_iovlen = 1;
    }
    /* a blocking stream socket sends each message whole, while a slow reader drains */
    struct drain d = {s[1], 0};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, drain_all, &d), 0);
    long t0 = ticks_now();
    CHECK_EQ(sendmmsg(s[0], m, V, 0), V);
    CHECK(TICKED(t0));
    for (int i = 0; i < V; i++)
        CHECK_EQ(m[i].msg_len, LEN);
    CHECK_EQ(shutdown(s[0], SHUT_WR), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(d.got, V * LEN);
    CHECK_EQ(sendmmsg(s[0], m, 0, 0), 0);
    CHECK_ERR(sendmmsg(9999, m, V, 0), EBADF);
    close(s[0]);
    close(s[1]);
}

/* epoll_wait and recvmmsg are cancellation points. */
static void block_epoll(void *arg)
{
    struct epoll_event ev;
    epoll_wait(*(int *)arg, &ev, 1, -1);
}

static void block_recvmmsg(void *arg)
{
    char c;
    struct iovec iov = {&c, 1};
    struct mmsghdr m = {.msg_hdr = {.msg_iov = &iov, .msg_iovlen = 1}};
    recvmmsg(*(int *)arg, &m, 1, 0, NULL);
}

static void check_cancel(void)
{
    int ep = epoll_create1(EPOLL_CLOEXEC), s[2];
    CHECK(ep >= 0);
    CHECK_EQ(socketpair(AF_UNIX, SOCK_DGRAM, 0, s), 0);
    check_cancelled(block_epoll, &ep);
    check_cancelled(block_recvmmsg, &s[0]);
    close(ep);
    close(s[0]);
    close(s[1]);
}

/* ---- event loops that always find work ---- */
static int busy_stop;

/* poll (arg NULL) or epoll_wait (arg non-NULL) in a loop on an always-writable socket,
 * until busy_stop: a loop that never has to wait */
static void *busy_loop(void *arg)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int ep = -1;
    if (arg) {
        ep = epoll_create1(0);
        struct epoll_event e = {.events = EPOLLOUT};
        CHECK_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &e), 0);
    }
    long rounds = 0;
    while (!__atomic_load_n(&busy_stop, __ATOMIC_ACQUIRE)) {
        if (arg) {
            struct epoll_event got;
            CHECK_EQ(epoll_wait(ep, &got, 1, -1), 1);
        } else {
            struct pollfd p = {.fd = sv[0], .events = POLLOUT};
            CHECK_EQ(poll(&p, 1, 1000), 1);
        }
        rounds++;
    }
    if (ep >= 0)
        close(ep);
    close(sv[0]);
    close(sv[1]);
    return (void *)rounds;
}

/* Two threads in event loops that never wait, a third that stops them after a 50 ms
 * sleep: on real threads the kernel preempts the loops; under green threads a poll or
 * epoll_wait that returns at once must still let the others run (it held the hub for
 * good: SIGALRM after 20 s). */
static void check_busy(void)
{
    alarm(20);
    pthread_t a, b;
    CHECK_EQ(pthread_create(&a, NULL, busy_loop, NULL), 0);
    CHECK_EQ(pthread_create(&b, NULL, busy_loop, (void *)1), 0);
    struct timespec ts = {0, 50 * 1000000L};
    CHECK_EQ(nanosleep(&ts, NULL), 0);
    __atomic_store_n(&busy_stop, 1, __ATOMIC_RELEASE);
    void *ra, *rb;
    CHECK_EQ(pthread_join(a, &ra), 0);
    CHECK_EQ(pthread_join(b, &rb), 0);
    CHECK((long)ra > 0 && (long)rb > 0);
    alarm(0);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    static const struct prog_test tests[] = {
        {"epoll", check_epoll},       {"sendfile", check_sendfile}, {"splice", check_splice},
        {"recvmmsg", check_recvmmsg}, {"sendmmsg", check_sendmmsg}, {"cancel", check_cancel},
        {"busy", check_busy},
    };
    return prog_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
