/* test_io.c — cooperative I/O: reads and writes that park instead of blocking, over
 * socket pairs, TCP and UDP on loopback, pipes to child processes and regular files.
 * Partial reads and writes with tiny socket buffers, deadlines (0 only tries), peer
 * resets, half-closes, kills and closes in the middle of every call (after gevent's
 * test__socket.py and libuv's test-tcp-*.c). */
#include "green_test.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ---- */

/* The byte at offset i of every test stream: a hash, so that a lost, repeated or
 * reordered piece shows. */
static uint8_t pattern(size_t i) { return (uint8_t)(((uint64_t)i * 0x9E3779B97F4A7C15ull) >> 56); }

static void fill(uint8_t *p, size_t off, size_t n)
{
    for (size_t k = 0; k < n; k++)
        p[k] = pattern(off + k);
}

/* Offset of the first byte of p (at stream offset off) that is wrong, or n. */
static size_t check(const uint8_t *p, size_t off, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (p[k] != pattern(off + k))
            return k;
    return n;
}

static void small_buffers(int fd)
{
    int sz = 4096; /* the kernel doubles it, then rounds up to its minimum */
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz), 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz), 0);
}

/* A TCP listener on 127.0.0.1 and a free port (plain POSIX: net.c's helpers have their
 * own test). Its address in *addr. */
static int listener(int backlog, struct sockaddr_in *addr)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(l >= 0);
    *addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(l, (struct sockaddr *)addr, sizeof *addr), 0);
    assert_int_equal(listen(l, backlog), 0);
    socklen_t len = sizeof *addr;
    assert_int_equal(getsockname(l, (struct sockaddr *)addr, &len), 0);
    return l;
}

/* A connected TCP pair over loopback, made with green_connect and green_accept.
 * fds[0] is the client; with `small`, both ends get tiny buffers before connecting. */
static void tcp_pair(int fds[2], int small)
{
    struct sockaddr_in a;
    int l = listener(8, &a);
    if (small)
        small_buffers(l); /* inherited by the accepted socket */
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c >= 0);
    if (small)
        small_buffers(c);
    assert_int_equal(green_connect(c, (struct sockaddr *)&a, sizeof a, green_after(5000)), 0);
    int s = green_accept(l, NULL, NULL, green_after(5000));
    assert_true(s >= 0);
    green_close(l);
    fds[0] = c;
    fds[1] = s;
}

static void unix_pair(int fds[2], int small)
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    if (small) {
        small_buffers(fds[0]);
        small_buffers(fds[1]);
    }
}

static void close_pair(int fds[2])
{
    green_close(fds[0]);
    green_close(fds[1]);
}

static int fd_flags(int fd) { return fcntl(fd, F_GETFL); }

/* Let the spawned green threads run until `n` of them are parked. */
static void until_parked(uint64_t n)
{
    for (int i = 0; i < 1000 && stats().waiting < n; i++)
        assert_int_equal(green_yield(), 0);
    assert_true(stats().waiting >= n);
}

/* ---- one green thread's call, and what came of it ---- */

struct io_call {
    int fd;
    void *buf;
    size_t n;
    int flags;
    int64_t deadline;
    struct sockaddr_in addr;    /* connect: where to */
    struct msghdr *msg;         /* recvmsg */
    ssize_t r;                  /* the call's result */
    int err;                    /* errno after it (meaningful on failure or a short count) */
    int64_t elapsed;
};

#define CALL(name, expr)                               \
    static void *name(void *arg)                       \
    {                                                  \
        struct io_call *c = arg;                       \
        int64_t t0 = green_now();                      \
        errno = 0;                                     \
        c->r = (expr);                                 \
        c->err = errno;                                \
        c->elapsed = green_now() - t0;                 \
        return NULL;                                   \
    }

CALL(call_read, green_read(c->fd, c->buf, c->n, c->deadline))
CALL(call_write, green_write(c->fd, c->buf, c->n, c->deadline))
CALL(call_recv, green_recv(c->fd, c->buf, c->n, c->flags, c->deadline))

CALL(call_accept, green_accept(c->fd, NULL, NULL, c->deadline))
CALL(call_connect, green_connect(c->fd, (struct sockaddr *)&c->addr, sizeof c->addr, c->deadline))
CALL(call_recvmsg, green_recvmsg(c->fd, c->msg, c->flags, c->deadline))

static green_t spawn_call(void *(*fn)(void *), struct io_call *c)
{
    green_t g = green_spawn(fn, c);
    assert_non_null(g);
    return g;
}

/* Run fn(c) in a green thread until it waits, then kill it: its call fails with
 * ECANCELED (a write with what it got through). */
static void kill_when_parked(void *(*fn)(void *), struct io_call *c)
{
    green_t g = spawn_call(fn, c);
    until_parked(1);
    assert_int_equal(green_kill(g), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(c->err, ECANCELED);
}

/* ======================================================================== */
/*  Moving megabytes through tiny buffers                                   */
/* ======================================================================== */

/* One direction of a stream: a writer or reader green thread moving `total` bytes in
 * calls of random sizes, each optionally cut into many iovecs (some empty). */
struct pump {
    int fd;
    size_t total;
    size_t max_chunk;
    int vectored;
    unsigned seed;
    size_t moved;       /* bytes written, or read and verified */
    size_t short_reads; /* reads that returned less than asked */
    int failed;         /* a call failed or returned a wrong count */
    int err;
    size_t bad_at;      /* first wrong byte's offset + 1 */
};

/* Cut [p, p+n) into pieces at random points; returns how many. */
static int cut(uint8_t *p, size_t n, struct iovec *iov, int max, unsigned *seed)
{
    int cnt = 1 + (int)(rand_r(seed) % (unsigned)max);
    size_t at = 0;
    for (int i = 0; i < cnt; i++) {
        size_t len = i == cnt - 1 ? n - at : (size_t)rand_r(seed) % (2 * n / (size_t)cnt + 1);
        if (len > n - at)
            len = n - at;
        iov[i] = (struct iovec){p + at, len};
        at += len;
    }
    return cnt;
}

#define MAX_PIECES 300

static void *pump_write(void *arg)
{
    struct pump *p = arg;
    uint8_t *buf = malloc(p->max_chunk);
    struct iovec *iov = malloc(MAX_PIECES * sizeof *iov);
    while (p->moved < p->total) {
        size_t n = 1 + (size_t)rand_r(&p->seed) % p->max_chunk;
        if (n > p->total - p->moved)
            n = p->total - p->moved;
        fill(buf, p->moved, n);
        errno = 0;
        ssize_t r;
        if (p->vectored)
            r = green_writev(p->fd, iov, cut(buf, n, iov, MAX_PIECES, &p->seed), -1);
        else
            r = green_write(p->fd, buf, n, -1);
        if (r != (ssize_t)n) {
            p->failed = 1;
            p->err = errno;
            break;
        }
        p->moved += n;
    }
    free(iov);
    free(buf);
    return NULL;
}

static void *pump_read(void *arg)
{
    struct pump *p = arg;
    uint8_t *buf = malloc(p->max_chunk);
    struct iovec *iov = malloc(MAX_PIECES * sizeof *iov);
    while (p->moved < p->total) {
        size_t n = 1 + (size_t)rand_r(&p->seed) % p->max_chunk;
        errno = 0;
        ssize_t r;
        if (p->vectored)
            r = green_readv(p->fd, iov, cut(buf, n, iov, MAX_PIECES, &p->seed), -1);
        else
            r = green_read(p->fd, buf, n, -1);
        if (r <= 0) {
            p->failed = 1; /* an error, or EOF before the end */
            p->err = errno;
            break;
        }
        size_t ok = check(buf, p->moved, (size_t)r);
        if (ok != (size_t)r) {
            p->bad_at = p->moved + ok + 1;
            break;
        }
        p->short_reads += (size_t)r < n;
        p->moved += (size_t)r;
    }
    free(iov);
    free(buf);
    return NULL;
}

static void assert_pumped(const struct pump *p)
{
    if (p->failed || p->bad_at)
        print_message("pump on fd %d: moved %zu of %zu, errno %d, bad at %zu\n", p->fd,
                      p->moved, p->total, p->err, p->bad_at);
    assert_int_equal(p->failed, 0);
    assert_int_equal(p->bad_at, 0);
    assert_int_equal(p->moved, p->total);
}

/* Both directions at once: on each fd one green thread writes while another reads, so
 * a reader and a writer wait on the same fd together. */
static void duplex(const int fds[2], size_t total, size_t max_chunk, int vectored)
{
    struct pump w[2], r[2];
    green_t g[4];
    for (int i = 0; i < 2; i++) {
        w[i] = (struct pump){.fd = fds[i], .total = total, .max_chunk = max_chunk,
                             .vectored = vectored, .seed = 11u + (unsigned)i};
        r[i] = (struct pump){.fd = fds[1 - i], .total = total, .max_chunk = max_chunk,
                             .vectored = vectored, .seed = 23u + (unsigned)i};
        g[2 * i] = green_spawn(pump_write, &w[i]);
        g[2 * i + 1] = green_spawn(pump_read, &r[i]);
    }
    assert_int_equal(green_joinall(g, 4, -1), 0);
    for (int i = 0; i < 2; i++) {
        assert_pumped(&w[i]);
        assert_pumped(&r[i]);
        /* the buffers are tiny: reads came back short, writes had to be split */
        assert_true(r[i].short_reads > 0);
    }
}

#define STREAM_BYTES (((size_t)8 << 20) / GREEN_TEST_SCALE)

/* Make a pair with tiny buffers, pump `total` bytes each way through it, close it. */
static void pump_pair(void (*make)(int fds[2], int small), size_t total, size_t max_chunk, int vectored)
{
    int fds[2];
    make(fds, 1);
    duplex(fds, total, max_chunk, vectored);
    close_pair(fds);
    assert_hub_idle();
}

/* Several MB each way over a socket pair with ~4 KiB buffers: writes of up to 256 KiB
 * are split by the kernel and finished by green_write, reads return what is there. */
static void test_socketpair_transfer(void **state)
{
    (void)state;
    print_message("poller: %s\n", green_poller_name());
    pump_pair(unix_pair, STREAM_BYTES, 256 << 10, 0);
}

/* The same over TCP on loopback. */
static void test_tcp_transfer(void **state)
{
    (void)state;
    pump_pair(tcp_pair, STREAM_BYTES, 256 << 10, 0);
}

/* readv/writev with up to 300 iovecs per call, some empty: a write that stops inside
 * an element resumes there. */
static void test_vectored_transfer(void **state)
{
    (void)state;
    pump_pair(unix_pair, STREAM_BYTES / 4, 64 << 10, 1);
    pump_pair(tcp_pair, STREAM_BYTES / 4, 64 << 10, 1);
}

/* ======================================================================== */
/*  Deadlines                                                               */
/* ======================================================================== */

/* Deadline 0 tries once: what is there is returned, otherwise ETIMEDOUT at once. */
static void test_deadline_zero(void **state)
{
    (void)state;
    int fds[2];
    unix_pair(fds, 1);
    char buf[64];
    int64_t t0 = green_now();
    assert_fails_with(green_read(fds[0], buf, sizeof buf, 0), ETIMEDOUT);
    assert_fails_with(green_recv(fds[0], buf, sizeof buf, 0, 0), ETIMEDOUT);
    assert_int_equal(green_write(fds[1], "abc", 3, 0), 3);
    assert_int_equal(green_read(fds[0], buf, sizeof buf, 0), 3);
    assert_memory_equal(buf, "abc", 3);

    /* a write takes what fits and reports it, with ETIMEDOUT; once full, -1 */
    size_t big = 1 << 20;
    uint8_t *p = malloc(big);
    fill(p, 0, big);
    errno = 0;
    ssize_t w = green_write(fds[1], p, big, 0);
    assert_true(w > 0 && (size_t)w < big);
    assert_int_equal(errno, ETIMEDOUT);
    assert_fails_with(green_write(fds[1], p, big, 0), ETIMEDOUT);
    assert_fails_with(green_send(fds[1], p, big, 0, 0), ETIMEDOUT);
    assert_true(green_now() - t0 < LATE_MS);

    /* what was reported is exactly what arrives */
    size_t got = 0;
    while (got < (size_t)w) {
        ssize_t r = green_read(fds[0], p, big, 0);
        assert_true(r > 0);
        assert_int_equal(check(p, got, (size_t)r), (size_t)r);
        got += (size_t)r;
    }
    assert_int_equal(got, (size_t)w);
    assert_fails_with(green_read(fds[0], p, big, 0), ETIMEDOUT);
    free(p);

    /* accept: nothing pending, then one */
    struct sockaddr_in a;
    int l = listener(4, &a);
    assert_fails_with(green_accept(l, NULL, NULL, 0), ETIMEDOUT);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof a), 0);
    int s = green_accept(l, NULL, NULL, 0);
    assert_true(s >= 0);
    green_close(s);
    green_close(c);
    green_close(l);
    close_pair(fds);
    assert_hub_idle();
}

/* A read with a deadline fails with ETIMEDOUT when it passes, not before. */
static void test_read_deadline(void **state)
{
    (void)state;
    int fds[2];
    unix_pair(fds, 0);
    char buf[8];
    int64_t d = green_after(50);
    assert_fails_with(green_read(fds[0], buf, sizeof buf, d), ETIMEDOUT);
    int64_t late = green_now() - d;
    assert_true(late >= 0 && late < LATE_MS);

    /* scoped timeouts apply too */
    assert_int_equal(green_timeout_push(30), 0);
    assert_fails_with(green_recv(fds[0], buf, sizeof buf, 0, -1), ETIMEDOUT);
    assert_int_equal(green_timeout_pop(), 0);

    /* a writer arriving before the deadline ends the wait */
    struct io_call rc = {.fd = fds[0], .buf = buf, .n = sizeof buf, .deadline = green_after(5000)};
    green_t g = spawn_call(call_read, &rc);
    until_parked(1);
    assert_int_equal(green_sleep(20), 0);
    assert_int_equal(green_write(fds[1], "late", 4, -1), 4);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(rc.r, 4);
    assert_true(rc.elapsed >= 20 && rc.elapsed < LATE_MS);
    close_pair(fds);
    assert_hub_idle();
}

/* A write whose deadline passes part way returns the count written, with ETIMEDOUT. */
static void test_partial_write_deadline(void **state)
{
    (void)state;
    int fds[2];
    tcp_pair(fds, 1);
    size_t big = 4 << 20;
    uint8_t *p = malloc(big);
    fill(p, 0, big);
    int64_t d = green_after(60);
    errno = 0;
    ssize_t w = green_write(fds[0], p, big, d);
    assert_int_equal(errno, ETIMEDOUT);
    assert_true(w > 0 && (size_t)w < big);
    assert_true(green_now() >= d);
    /* the peer gets exactly those bytes */
    size_t got = 0;
    while (got < (size_t)w) {
        ssize_t r = green_read(fds[1], p, big, green_after(5000));
        assert_true(r > 0);
        assert_int_equal(check(p, got, (size_t)r), (size_t)r);
        got += (size_t)r;
    }
    assert_fails_with(green_read(fds[1], p, big, green_after(20)), ETIMEDOUT);
    free(p);
    close_pair(fds);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Peers that go away                                                      */
/* ======================================================================== */

/* A child process that connects to addr with a tiny receive buffer, reads `keep` bytes
 * and exits without reading the rest: its kernel answers with a reset. */
static pid_t reader_child(int l, const struct sockaddr_in *addr, size_t keep)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid)
        return pid;
    alarm(30); /* never outlive a parent that failed */
    close(l);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    int sz = 4096;
    setsockopt(c, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    if (connect(c, (const struct sockaddr *)addr, sizeof *addr) != 0)
        _exit(1);
    char buf[4096];
    size_t got = 0;
    while (got < keep) {
        ssize_t r = read(c, buf, sizeof buf);
        if (r <= 0)
            _exit(2);
        got += (size_t)r;
    }
    _exit(0); /* unread data: close sends RST */
}

static int child_status(pid_t pid)
{
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The peer resets the connection in the middle of a big write: the write reports the
 * count the kernel took, with ECONNRESET or EPIPE; the next one fails outright. */
static void reset_mid_write(int use_send)
{
    struct sockaddr_in a;
    int l = listener(4, &a);
    small_buffers(l);
    pid_t pid = reader_child(l, &a, 64 << 10);
    int s = green_accept(l, NULL, NULL, green_after(5000));
    assert_true(s >= 0);
    size_t big = 16 << 20;
    uint8_t *p = malloc(big);
    fill(p, 0, big);
    errno = 0;
    ssize_t w = use_send ? green_send(s, p, big, MSG_NOSIGNAL, green_after(10000))
                         : green_write(s, p, big, green_after(10000));
    int err = errno;
    print_message("reset after %zd bytes: %s\n", w, strerror(err));
    assert_true(w >= 64 << 10);
    assert_true((size_t)w < big);
    assert_true(err == ECONNRESET || err == EPIPE);
    errno = 0;
    w = use_send ? green_send(s, p, 100, MSG_NOSIGNAL, green_after(1000)) : green_write(s, p, 100, green_after(1000));
    assert_int_equal(w, -1);
    assert_true(errno == ECONNRESET || errno == EPIPE);
    assert_int_equal(child_status(pid), 0);
    free(p);
    green_close(s);
    green_close(l);
}

static void test_peer_reset_mid_send(void **state)
{
    (void)state;
    reset_mid_write(1); /* MSG_NOSIGNAL: no SIGPIPE */
    assert_hub_idle();
}

static void test_peer_reset_mid_write(void **state)
{
    (void)state;
    void (*old)(int) = signal(SIGPIPE, SIG_IGN); /* write(2) on a reset socket raises it */
    reset_mid_write(0);
    signal(SIGPIPE, old);
    assert_hub_idle();
}

/* shutdown(SHUT_WR): the reader gets everything, then 0 (and 0 again); the other
 * direction still works. */
static void half_close(int fds[2])
{
    char buf[16];
    struct io_call rc = {.fd = fds[1], .buf = buf, .n = sizeof buf, .deadline = green_after(5000)};
    green_t g = spawn_call(call_read, &rc);
    until_parked(1);
    assert_int_equal(green_write(fds[0], "last words", 10, -1), 10);
    assert_int_equal(shutdown(fds[0], SHUT_WR), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(rc.r, 10);
    assert_memory_equal(buf, "last words", 10);
    assert_int_equal(green_read(fds[1], buf, sizeof buf, green_after(5000)), 0);
    assert_int_equal(green_recv(fds[1], buf, sizeof buf, 0, 0), 0); /* EOF stays EOF */
    assert_int_equal(green_write(fds[1], "reply", 5, -1), 5);
    assert_int_equal(green_read(fds[0], buf, sizeof buf, green_after(5000)), 5);
    assert_memory_equal(buf, "reply", 5);
}

static void test_half_close(void **state)
{
    (void)state;
    int fds[2];
    unix_pair(fds, 0);
    half_close(fds);
    close_pair(fds);
    tcp_pair(fds, 0);
    half_close(fds);
    close_pair(fds);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Connecting                                                              */
/* ======================================================================== */

/* A port nobody listens on: ECONNREFUSED. */
static void test_connect_refused(void **state)
{
    (void)state;
    struct sockaddr_in a;
    green_close(listener(1, &a)); /* a port that was free a moment ago, and is again */
    int c = socket(AF_INET, SOCK_STREAM, 0);
    assert_fails_with(green_connect(c, (struct sockaddr *)&a, sizeof a, green_after(5000)), ECONNREFUSED);
    green_close(c);
    assert_fails_with(green_connect(-1, (struct sockaddr *)&a, sizeof a, -1), EBADF);
    assert_hub_idle();
}

/* A listener that never accepts, with its backlog full: Linux drops further SYNs, so a
 * connect to it can only time out. Fills fds[] with the connections that got in. */
static int fill_backlog(int l, const struct sockaddr_in *a, int *fds, int max)
{
    int n = 0;
    for (; n < max; n++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(c >= 0);
        if (green_connect(c, (const struct sockaddr *)a, sizeof *a, green_after(200)) != 0) {
            assert_int_equal(errno, ETIMEDOUT);
            green_close(c);
            break;
        }
        fds[n] = c;
    }
    (void)l;
    assert_true(n < max);
    return n;
}

static void test_connect_timeout_full_backlog(void **state)
{
    (void)state;
    struct sockaddr_in a;
    int l = listener(1, &a);
    int queued[16];
    int n = fill_backlog(l, &a, queued, 16);
    print_message("backlog of 1 took %d connections\n", n);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    int64_t d = green_after(300);
    assert_fails_with(green_connect(c, (struct sockaddr *)&a, sizeof a, d), ETIMEDOUT);
    int64_t late = green_now() - d;
    assert_true(late >= 0 && late < LATE_MS);
    green_close(c);
    for (int i = 0; i < n; i++)
        green_close(queued[i]);
    green_close(l);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Kills and closes in the middle of a call                                */
/* ======================================================================== */

/* Killed while waiting to read: ECANCELED; the fd works for the next reader. */
static void test_kill_mid_read(void **state)
{
    (void)state;
    int fds[2];
    unix_pair(fds, 0);
    char buf[8];
    struct io_call rc = {.fd = fds[0], .buf = buf, .n = sizeof buf, .deadline = -1};
    kill_when_parked(call_read, &rc);
    assert_int_equal(rc.r, -1);

    /* a new reader waits on the same fd and is woken by the data */
    struct io_call rc2 = {.fd = fds[0], .buf = buf, .n = sizeof buf, .deadline = green_after(5000)};
    green_t g = spawn_call(call_read, &rc2);
    until_parked(1);
    assert_int_equal(green_write(fds[1], "again", 5, -1), 5);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(rc2.r, 5);
    assert_memory_equal(buf, "again", 5);
    close_pair(fds);
    assert_hub_idle();
}

/* Killed in the middle of a big write: the count written so far, with ECANCELED; the
 * stream stays intact and another green thread writes on. */
static void test_kill_mid_write(void **state)
{
    (void)state;
    int fds[2];
    unix_pair(fds, 1);
    size_t big = 1 << 20;
    uint8_t *p = malloc(big);
    fill(p, 0, big);
    struct io_call wc = {.fd = fds[0], .buf = p, .n = big, .deadline = -1};
    kill_when_parked(call_write, &wc);
    assert_true(wc.r > 0 && (size_t)wc.r < big);

    /* the rest, by another writer, while the root reads everything */
    struct io_call rest = {.fd = fds[0], .buf = p + wc.r, .n = big - (size_t)wc.r, .deadline = green_after(5000)};
    green_t g = spawn_call(call_write, &rest);
    uint8_t *in = malloc(big);
    size_t got = 0;
    while (got < big) {
        ssize_t r = green_read(fds[1], in + got, big - got, green_after(5000));
        assert_true(r > 0);
        got += (size_t)r;
    }
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(rest.r, (ssize_t)(big - (size_t)wc.r));
    assert_int_equal(check(in, 0, big), big);
    free(in);
    free(p);
    close_pair(fds);
    assert_hub_idle();
}

/* Killed while waiting in accept: ECANCELED; the listener accepts the next client. */
static void test_kill_mid_accept(void **state)
{
    (void)state;
    struct sockaddr_in a;
    int l = listener(4, &a);
    struct io_call ac = {.fd = l, .deadline = -1};
    kill_when_parked(call_accept, &ac);
    assert_int_equal(ac.r, -1);

    struct io_call ac2 = {.fd = l, .deadline = green_after(5000)};
    green_t g = spawn_call(call_accept, &ac2);
    until_parked(1);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(green_connect(c, (struct sockaddr *)&a, sizeof a, green_after(5000)), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_true(ac2.r >= 0);
    green_close((int)ac2.r);
    green_close(c);
    green_close(l);
    assert_hub_idle();
}

/* Killed while its connection is being made (to a full backlog): ECANCELED; the
 * attempt goes on in the kernel, and connecting the same fd again picks it up. */
static void test_kill_mid_connect(void **state)
{
    (void)state;
    struct sockaddr_in a;
    int l = listener(1, &a);
    int queued[16];
    int n = fill_backlog(l, &a, queued, 16);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct io_call cc = {.fd = c, .addr = a, .deadline = -1};
    kill_when_parked(call_connect, &cc);
    assert_int_equal(cc.r, -1);

    /* make room; the kernel's next SYN (about a second later) gets in */
    for (int i = 0; i < n; i++) {
        int s = green_accept(l, NULL, NULL, green_after(5000));
        assert_true(s >= 0);
        green_close(s);
        green_close(queued[i]);
    }
    int64_t t0 = green_now();
    assert_int_equal(green_connect(c, (struct sockaddr *)&a, sizeof a, green_after(10000)), 0);
    print_message("connection made %lld ms after the room\n", (long long)(green_now() - t0));
    int s = green_accept(l, NULL, NULL, green_after(5000));
    assert_true(s >= 0);
    assert_int_equal(green_write(c, "hi", 2, -1), 2);
    char buf[2];
    assert_int_equal(green_read(s, buf, 2, green_after(5000)), 2);
    green_close(s);
    green_close(c);
    green_close(l);
    assert_hub_idle();
}

/* green_close while others wait on the fd: they fail with EBADF (a writer with the
 * count it got through), and never touch the fd number again, even once reused. */
static void test_close_while_waiting(void **state)
{
    (void)state;
    int fds[2];
    unix_pair(fds, 1);
    char buf[8];
    size_t big = 1 << 20;
    uint8_t *p = malloc(big);
    fill(p, 0, big);
    struct io_call rc = {.fd = fds[0], .buf = buf, .n = sizeof buf, .deadline = -1};
    struct io_call wc = {.fd = fds[0], .buf = p, .n = big, .deadline = -1};
    green_t gr = spawn_call(call_read, &rc);
    green_t gw = spawn_call(call_write, &wc);
    until_parked(2);
    int closed = fds[0];
    assert_int_equal(green_close(closed), 0);

    /* the number comes back at once for a new socket with data waiting in it */
    int again[2];
    unix_pair(again, 0);
    assert_int_equal(again[0], closed);
    assert_int_equal(write(again[1], "new", 3), 3);
    assert_int_equal(green_join(gr, NULL, -1), 0);
    assert_int_equal(green_join(gw, NULL, -1), 0);
    assert_int_equal(rc.r, -1);
    assert_int_equal(rc.err, EBADF);
    assert_true(wc.r > 0 && (size_t)wc.r < big);
    assert_int_equal(wc.err, EBADF);
    assert_int_equal(recv(again[0], buf, sizeof buf, MSG_DONTWAIT), 3); /* untouched */

    /* an accept waiting on a listener that is closed */
    struct sockaddr_in a;
    int l = listener(4, &a);
    struct io_call ac = {.fd = l, .deadline = -1};
    green_t ga = spawn_call(call_accept, &ac);
    until_parked(1);
    assert_int_equal(green_close(l), 0);
    assert_int_equal(green_join(ga, NULL, -1), 0);
    assert_int_equal(ac.r, -1);
    assert_int_equal(ac.err, EBADF);
    free(p);
    close_pair(again);
    green_close(fds[1]);
    assert_hub_idle();
}

/* One reader waits on an fd at a time: a second gets EBUSY (when it would wait). */
static void test_second_reader_busy(void **state)
{
    (void)state;
    int fds[2];
    unix_pair(fds, 0);
    char buf[8], buf2[8];
    struct io_call rc = {.fd = fds[0], .buf = buf, .n = sizeof buf, .deadline = green_after(5000)};
    green_t g = spawn_call(call_read, &rc);
    until_parked(1);
    assert_fails_with(green_read(fds[0], buf2, sizeof buf2, green_after(5000)), EBUSY);
    /* a writer on the same fd is another direction: fine */
    assert_int_equal(green_write(fds[0], "x", 1, -1), 1);
    assert_int_equal(green_write(fds[1], "y", 1, -1), 1);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(rc.r, 1);
    assert_int_equal(buf[0], 'y');
    close_pair(fds);
    assert_hub_idle();
}

/* A killed green thread still completes a call that needs no wait; the kill shows at
 * the first one that would wait. */
static void *killed_then_reads(void *arg)
{
    struct io_call *c = arg;
    green_park(-1); /* killed here */
    errno = 0;
    c->r = green_read(c->fd, c->buf, 3, -1);
    ssize_t again = green_read(c->fd, c->buf, 3, -1);
    c->err = again == -1 ? errno : 0;
    return NULL;
}

static void test_killed_caller_completes_ready_io(void **state)
{
    (void)state;
    int fds[2];
    unix_pair(fds, 0);
    char buf[8];
    struct io_call c = {.fd = fds[0], .buf = buf};
    green_t g = green_spawn(killed_then_reads, &c);
    until_parked(1);
    assert_int_equal(green_write(fds[1], "abc", 3, -1), 3);
    assert_int_equal(green_kill(g), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(c.r, 3);
    assert_int_equal(c.err, ECANCELED);
    close_pair(fds);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Datagrams, messages, flags                                              */
/* ======================================================================== */

static int udp_socket(struct sockaddr_in *addr)
{
    int u = socket(AF_INET, SOCK_DGRAM, 0); /* blocking: the calls must not care */
    assert_true(u >= 0);
    *addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(u, (struct sockaddr *)addr, sizeof *addr), 0);
    socklen_t len = sizeof *addr;
    assert_int_equal(getsockname(u, (struct sockaddr *)addr, &len), 0);
    return u;
}

struct dgram_call {
    int fd;
    char buf[64];
    struct sockaddr_in from;
    socklen_t fromlen;
    ssize_t r;
    int err;
};

static void *call_recvfrom(void *arg)
{
    struct dgram_call *d = arg;
    d->fromlen = sizeof d->from;
    errno = 0;
    d->r = green_recvfrom(d->fd, d->buf, sizeof d->buf, 0, (struct sockaddr *)&d->from, &d->fromlen,
                          green_after(5000));
    d->err = errno;
    return NULL;
}

/* UDP: a receiver waits; each datagram arrives whole, with its sender's address;
 * an empty datagram is a datagram. */
static void test_udp(void **state)
{
    (void)state;
    struct sockaddr_in aa, ba;
    int a = udp_socket(&aa), b = udp_socket(&ba);
    struct dgram_call d = {.fd = b};
    green_t g = green_spawn(call_recvfrom, &d);
    until_parked(1);
    assert_int_equal(green_sendto(a, "ping", 4, 0, (struct sockaddr *)&ba, sizeof ba, -1), 4);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(d.r, 4);
    assert_memory_equal(d.buf, "ping", 4);
    assert_int_equal(d.fromlen, sizeof aa);
    assert_int_equal(d.from.sin_port, aa.sin_port);

    /* boundaries are kept; an empty one arrives as 0 bytes */
    assert_int_equal(green_sendto(a, "one", 3, 0, (struct sockaddr *)&ba, sizeof ba, -1), 3);
    assert_int_equal(green_sendto(a, "", 0, 0, (struct sockaddr *)&ba, sizeof ba, -1), 0);
    assert_int_equal(green_sendto(a, "three", 5, 0, (struct sockaddr *)&ba, sizeof ba, -1), 5);
    char buf[64];
    assert_int_equal(green_recv(b, buf, sizeof buf, 0, green_after(5000)), 3);
    assert_int_equal(green_recv(b, buf, sizeof buf, 0, green_after(5000)), 0);
    assert_int_equal(green_recv(b, buf, sizeof buf, 0, green_after(5000)), 5);
    assert_memory_equal(buf, "three", 5);
    assert_fails_with(green_recv(b, buf, sizeof buf, 0, green_after(20)), ETIMEDOUT);
    /* MSG_WAITALL does not glue datagrams together */
    assert_int_equal(green_sendto(a, "ab", 2, 0, (struct sockaddr *)&ba, sizeof ba, -1), 2);
    assert_int_equal(green_sendto(a, "cd", 2, 0, (struct sockaddr *)&ba, sizeof ba, -1), 2);
    assert_int_equal(green_recv(b, buf, sizeof buf, MSG_WAITALL, green_after(5000)), 2);
    assert_int_equal(green_recv(b, buf, sizeof buf, MSG_WAITALL, green_after(5000)), 2);
    assert_memory_equal(buf, "cd", 2);

    /* connected: send and read work too */
    assert_int_equal(connect(a, (struct sockaddr *)&ba, sizeof ba), 0);
    assert_int_equal(green_send(a, "conn", 4, 0, -1), 4);
    assert_int_equal(green_read(b, buf, sizeof buf, green_after(5000)), 4);
    /* a blocking socket stays blocking: MSG_DONTWAIT did the work */
    assert_int_equal(fd_flags(b) & O_NONBLOCK, 0);
    green_close(a);
    green_close(b);
    assert_hub_idle();
}

/* sendmsg/recvmsg carry ancillary data: an fd passed over a Unix socket. */
static void test_recvmsg_sendmsg_pass_fd(void **state)
{
    (void)state;
    int fds[2];
    unix_pair(fds, 0);
    char data[8];
    struct iovec riov = {data, sizeof data};
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } rctl;
    struct msghdr rmsg = {.msg_iov = &riov, .msg_iovlen = 1, .msg_control = rctl.space,
                          .msg_controllen = sizeof rctl.space};
    struct io_call rc = {.fd = fds[1], .msg = &rmsg, .flags = MSG_CMSG_CLOEXEC, .deadline = green_after(5000)};
    green_t g = spawn_call(call_recvmsg, &rc);
    until_parked(1);

    int p[2];
    assert_int_equal(pipe(p), 0);
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } sctl;
    memset(&sctl, 0, sizeof sctl);
    struct iovec siov = {"fd!", 3};
    struct msghdr smsg = {.msg_iov = &siov, .msg_iovlen = 1, .msg_control = sctl.space,
                          .msg_controllen = sizeof sctl.space};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&smsg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &p[0], sizeof(int));
    assert_int_equal(green_sendmsg(fds[0], &smsg, 0, -1), 3);

    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(rc.r, 3);
    assert_memory_equal(data, "fd!", 3);
    assert_int_equal(rmsg.msg_flags & MSG_CTRUNC, 0);
    cm = CMSG_FIRSTHDR(&rmsg);
    assert_non_null(cm);
    assert_int_equal(cm->cmsg_type, SCM_RIGHTS);
    int passed;
    memcpy(&passed, CMSG_DATA(cm), sizeof passed);
    assert_true(passed != p[0]);
    assert_int_equal(write(p[1], "via", 3), 3);
    char buf[4];
    assert_int_equal(green_read(passed, buf, sizeof buf, green_after(5000)), 3);
    assert_memory_equal(buf, "via", 3);
    green_close(passed);
    green_close(p[0]);
    green_close(p[1]);
    assert_fails_with(green_recvmsg(fds[1], NULL, 0, 0), EINVAL);
    close_pair(fds);
    assert_hub_idle();
}

/* MSG_WAITALL reads on until n bytes (or EOF, which returns what came); a caller's
 * MSG_DONTWAIT means do not wait at all. */
static void test_recv_flags(void **state)
{
    (void)state;
    int fds[2];
    unix_pair(fds, 0);
    char buf[100];
    struct io_call rc = {.fd = fds[1], .buf = buf, .n = 10, .flags = MSG_WAITALL, .deadline = green_after(5000)};
    green_t g = spawn_call(call_recv, &rc);
    until_parked(1);
    assert_int_equal(green_write(fds[0], "0123", 4, -1), 4);
    until_parked(1);
    assert_int_equal(green_write(fds[0], "456", 3, -1), 3);
    until_parked(1);
    assert_int_equal(green_write(fds[0], "789xyz", 6, -1), 6);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(rc.r, 10);
    assert_memory_equal(buf, "0123456789", 10);

    rc = (struct io_call){.fd = fds[1], .buf = buf, .n = 50, .flags = MSG_WAITALL, .deadline = green_after(5000)};
    g = spawn_call(call_recv, &rc);
    until_parked(1);
    assert_int_equal(shutdown(fds[0], SHUT_WR), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(rc.r, 3); /* "xyz", then EOF */
    assert_memory_equal(buf, "xyz", 3);
    close_pair(fds);

    unix_pair(fds, 0);
    int64_t t0 = green_now();
    assert_fails_with(green_recv(fds[1], buf, sizeof buf, MSG_DONTWAIT, -1), EAGAIN);
    assert_true(green_now() - t0 < LATE_MS);
    /* MSG_PEEK leaves the data where it is */
    assert_int_equal(green_send(fds[0], "peek", 4, 0, -1), 4);
    assert_int_equal(green_recv(fds[1], buf, sizeof buf, MSG_PEEK, -1), 4);
    assert_int_equal(green_recv(fds[1], buf, sizeof buf, 0, -1), 4);
    close_pair(fds);
    assert_hub_idle();
}

/* Zero bytes: read and write are the system call as is, and never wait. */
static void test_zero_length(void **state)
{
    (void)state;
    struct sockaddr_in ua;
    int u = udp_socket(&ua);
    char buf[4];
    int64_t t0 = green_now();
    assert_int_equal(green_read(u, buf, 0, green_after(5000)), 0);
    struct iovec none = {buf, 0};
    assert_int_equal(green_readv(u, &none, 1, green_after(5000)), 0);
    assert_true(green_now() - t0 < LATE_MS);
    int fds[2];
    unix_pair(fds, 0);
    assert_int_equal(green_write(fds[0], buf, 0, -1), 0);
    assert_int_equal(green_writev(fds[0], NULL, 0, -1), 0);
    assert_fails_with(green_read(-1, buf, 0, -1), EBADF);
    assert_fails_with(green_readv(fds[0], &none, -1, -1), EINVAL);
    assert_fails_with(green_writev(fds[0], NULL, 2, -1), EINVAL);
    close_pair(fds);
    green_close(u);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Other kinds of fd                                                       */
/* ======================================================================== */

static int ticks;

static void *ticker(void *arg)
{
    (void)arg;
    while (green_sleep(2) == 0)
        ticks++;
    return NULL;
}

/* Pipes to a child process: waits park only the caller (a ticker keeps running while the
 * parent waits on the child), and the pipe ends keep their flags (no O_NONBLOCK): an
 * open file another process may share is left as found. */
static void test_pipes_to_child(void **state)
{
    (void)state;
    int down[2], up[2];
    assert_int_equal(pipe(down), 0);
    assert_int_equal(pipe(up), 0);
    size_t total = (size_t)2 << 20;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* the child: sums what it reads until EOF, then reports slowly, line by line */
        alarm(30);
        close(down[1]);
        close(up[0]);
        uint64_t n = 0, sum = 0;
        char buf[8192];
        ssize_t r;
        while ((r = read(down[0], buf, sizeof buf)) > 0)
            for (ssize_t k = 0; k < r; k++, n++)
                sum += (uint8_t)buf[k] == pattern(n) ? 0 : 1;
        for (int i = 0; i < 3; i++) {
            sleep_os_ms(30);
            dprintf(up[1], "tick %d\n", i);
        }
        dprintf(up[1], "%llu %llu\n", (unsigned long long)n, (unsigned long long)sum);
        _exit(0);
    }
    green_close(down[0]);
    green_close(up[1]);
    ticks = 0;
    green_t t = green_spawn(ticker, NULL);
    uint8_t *p = malloc(total);
    fill(p, 0, total);
    assert_int_equal(green_write(down[1], p, total, green_after(10000)), (ssize_t)total);
    free(p);
    assert_int_equal(fd_flags(down[1]) & O_NONBLOCK, 0);
    assert_int_equal(green_close(down[1]), 0);

    char out[256];
    size_t got = 0;
    ssize_t r;
    while ((r = green_read(up[0], out + got, sizeof out - 1 - got, green_after(10000))) > 0)
        got += (size_t)r;
    assert_int_equal(r, 0);
    out[got] = '\0';
    assert_int_equal(fd_flags(up[0]) & O_NONBLOCK, 0);
    assert_int_equal(child_status(pid), 0);
    unsigned long long n = 0, bad = 1;
    const char *last = strstr(out, "tick 2\n");
    assert_non_null(last);
    assert_int_equal(sscanf(last + 7, "%llu %llu", &n, &bad), 2);
    assert_int_equal(n, total);
    assert_int_equal(bad, 0);
    print_message("ticker ran %d times while the parent waited\n", ticks);
    assert_true(ticks >= 3); /* the child took ~90 ms to report; slow runs tick less */
    assert_int_equal(green_kill(t), 0);
    assert_int_equal(green_join(t, NULL, -1), 0);
    green_close(up[0]);
    assert_hub_idle();
}

/* Regular files: read and write complete at once; the file's flags are left alone. */
static void test_regular_file(void **state)
{
    (void)state;
    char path[] = "/tmp/green-io-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    int flags = fd_flags(fd);
    size_t total = 1 << 20;
    uint8_t *p = malloc(total), *q = malloc(total);
    fill(p, 0, total);
    assert_int_equal(green_write(fd, p, total, 0), (ssize_t)total);
    struct iovec iov[3] = {{p, 10}, {p + 10, 0}, {p + 10, 90}};
    assert_int_equal(green_writev(fd, iov, 3, 0), 100);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    size_t got = 0;
    ssize_t r;
    while ((r = green_read(fd, q + got, total - got, 0)) > 0)
        got += (size_t)r;
    assert_int_equal(got, total);
    assert_int_equal(check(q, 0, total), total);
    struct iovec riov[2] = {{q, 50}, {q + 50, 100}};
    assert_int_equal(green_readv(fd, riov, 2, 0), 100);
    assert_int_equal(check(q, 0, 100), 100);
    assert_int_equal(green_read(fd, q, 10, 0), 0); /* EOF */
    assert_int_equal(fd_flags(fd), flags);
    assert_fails_with(green_recv(fd, q, 10, 0, 0), ENOTSOCK); /* socket calls stay socket calls */
    free(p);
    free(q);
    green_close(fd);
    assert_hub_idle();
}

/* Accepted fds are O_NONBLOCK and close-on-exec; the peer's address is filled in. A
 * socket given to the data calls keeps its own mode. */
static void test_accept_flags_and_modes(void **state)
{
    (void)state;
    struct sockaddr_in a;
    int l = listener(4, &a);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(green_connect(c, (struct sockaddr *)&a, sizeof a, green_after(5000)), 0);
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    int s = green_accept(l, (struct sockaddr *)&peer, &len, green_after(5000));
    assert_true(s >= 0);
    assert_int_equal(len, sizeof peer);
    assert_int_equal(peer.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    assert_true(fd_flags(s) & O_NONBLOCK);
    assert_true(fcntl(s, F_GETFD) & FD_CLOEXEC);
    assert_true(fd_flags(l) & O_NONBLOCK);
    assert_true(fd_flags(c) & O_NONBLOCK); /* connect needs it */
    green_close(s);
    green_close(c);
    green_close(l);

    int fds[2];
    unix_pair(fds, 0);
    assert_int_equal(green_write(fds[0], "abc", 3, -1), 3);
    char buf[4];
    assert_int_equal(green_read(fds[1], buf, sizeof buf, -1), 3);
    assert_int_equal(fd_flags(fds[0]) & O_NONBLOCK, 0);
    assert_int_equal(fd_flags(fds[1]) & O_NONBLOCK, 0);
    close_pair(fds);
    assert_hub_idle();
}

/* ======================================================================== */
/*  OS threads                                                              */
/* ======================================================================== */

/* An echo server on another OS thread, with its own hub. */
static void *echo_thread(void *arg)
{
    int fd = *(int *)arg;
    char buf[4096];
    ssize_t r;
    long total = 0;
    while ((r = green_read(fd, buf, sizeof buf, green_after(10000))) > 0) {
        if (green_write(fd, buf, (size_t)r, green_after(10000)) != r)
            return (void *)-1L;
        total += r;
    }
    return r == 0 ? (void *)total : (void *)-2L;
}

static void test_two_os_threads(void **state)
{
    (void)state;
    int fds[2];
    unix_pair(fds, 1);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, echo_thread, &fds[1]), 0);
    struct pump w = {.fd = fds[0], .total = STREAM_BYTES / 8, .max_chunk = 32 << 10, .seed = 5};
    struct pump r = {.fd = fds[0], .total = STREAM_BYTES / 8, .max_chunk = 32 << 10, .seed = 6};
    green_t g[2] = {green_spawn(pump_write, &w), green_spawn(pump_read, &r)};
    assert_int_equal(green_joinall(g, 2, -1), 0);
    assert_int_equal(shutdown(fds[0], SHUT_WR), 0);
    void *res;
    pthread_join(t, &res);
    assert_pumped(&w);
    assert_pumped(&r);
    assert_int_equal((long)res, (long)(STREAM_BYTES / 8));
    close_pair(fds);
    assert_hub_idle();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_socketpair_transfer),
        cmocka_unit_test(test_tcp_transfer),
        cmocka_unit_test(test_vectored_transfer),
        cmocka_unit_test(test_deadline_zero),
        cmocka_unit_test(test_read_deadline),
        cmocka_unit_test(test_partial_write_deadline),
        cmocka_unit_test(test_peer_reset_mid_send),
        cmocka_unit_test(test_peer_reset_mid_write),
        cmocka_unit_test(test_half_close),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_connect_timeout_full_backlog),
        cmocka_unit_test(test_kill_mid_read),
        cmocka_unit_test(test_kill_mid_write),
        cmocka_unit_test(test_kill_mid_accept),
        cmocka_unit_test(test_kill_mid_connect),
        cmocka_unit_test(test_close_while_waiting),
        cmocka_unit_test(test_second_reader_busy),
        cmocka_unit_test(test_killed_caller_completes_ready_io),
        cmocka_unit_test(test_udp),
        cmocka_unit_test(test_recvmsg_sendmsg_pass_fd),
        cmocka_unit_test(test_recv_flags),
        cmocka_unit_test(test_zero_length),
        cmocka_unit_test(test_pipes_to_child),
        cmocka_unit_test(test_regular_file),
        cmocka_unit_test(test_accept_flags_and_modes),
        cmocka_unit_test(test_two_os_threads),
    };
    return cmocka_run_group_tests_name("io", tests, NULL, NULL);
}
