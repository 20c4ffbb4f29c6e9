/*
 * io.c — cooperative I/O (layer 6): read, write, send, receive, accept and connect that
 * park the calling green thread on the hub's poller instead of blocking its OS thread.
 *
 * Every call makes its system call first and waits (green__fd_wait) only when that says
 * it would block, then tries again; so a call whose fd is ready costs one system call,
 * and a green thread that was killed still completes a call that needs no wait (the kill
 * shows at its next wait, as for the sync objects). What keeps an attempt from blocking
 * depends on the fd:
 *  - a socket: every attempt passes MSG_DONTWAIT (read/write/readv/writev on a socket are
 *    done as recvmsg/sendmsg), so its file status flags are never read nor changed;
 *  - any other fd that can be polled (pipe, FIFO, tty, eventfd, signalfd, ...): it is
 *    switched to O_NONBLOCK (green__set_nonblock) before the attempt. A socket call
 *    answering ENOTSOCK is how read/write find out, so a socket pays nothing for them;
 *  - a regular file, block device or directory never "would block" (poll calls it always
 *    ready): it goes to file_io, the one place where file I/O is done;
 *  - accept and connect have no per-call flag: the listening or connecting socket is
 *    switched to O_NONBLOCK (one fcntl, small beside the call itself).
 *
 * Invariants:
 *  - once a wait fails (deadline, kill, EBADF because another green thread closed the fd)
 *    the call returns at once and never touches the fd again: its number may already
 *    belong to another file;
 *  - a call that must move everything (write, writev, send, recv with MSG_WAITALL) and
 *    stops part way returns the count moved so far with errno set, -1 only when nothing
 *    moved; what the kernel accepted is never hidden behind an error;
 *  - the caller's iovec array and msghdr are never written (beyond what recvmsg fills in).
 */
#include "lib.h"

#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* How an attempt is made on an fd (see the top of the file). */
enum io_kind { IO_SOCKET, IO_POLLED, IO_FILE };

/* What a transfer must do besides one successful system call. */
enum {
    IO_ALL = 1,    /* keep going until every byte has moved (or EOF) */
    IO_STREAM = 2, /* read/write family: any kind of fd, not only sockets */
};

/* At most this many iovecs are copied to resume a transfer inside an element; the rest
 * goes in later attempts. Small, because it lives on the green thread's stack. */
#define IOV_WINDOW 8

/* Wait until fd is ready for dir; the hub is looked up on the first wait only, so calls
 * that never wait need no hub. 0, or -1 + errno (ETIMEDOUT, ECANCELED, EBADF, EBUSY). */
static int wait_ready(struct green_hub **h, int fd, int dir, int64_t deadline)
{
    if (!*h && !(*h = green__loop()))
        return -1;
    return green__fd_wait(*h, fd, dir, deadline) > 0 ? 0 : -1;
}

static int would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

/* Regular files, block devices, directories: no poller can say when their data is
 * there and O_NONBLOCK does not apply to them, so their I/O goes to file.c (io_uring or
 * the thread pool): a slow disk parks only the caller, never the hub. A short count
 * after some bytes moved is returned as such; the callers' loops go on from there. */
static ssize_t file_io(int fd, int dir, const struct iovec *iov, int iovcnt, int64_t deadline)
{
    /* deadline 0 means "do not wait": a regular file is always ready, so the call is
     * made here, as a non-blocking one would be for a socket */
    if (deadline == 0)
        return dir == GREEN_READ ? green__sys.readv(fd, iov, iovcnt) : green__sys.writev(fd, iov, iovcnt);
    struct green_hub *h = green__loop();
    if (!h)
        return -1;
    size_t done = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (!iov[i].iov_len)
            continue;
        /* file.c moves at most GREEN_FILE_CHUNK per call, off the hub's thread */
        ssize_t r = green__file_io(h, fd, dir == GREEN_WRITE, iov[i].iov_base, iov[i].iov_len,
                                   -1, deadline);
        if (r < 0)
            return done ? (ssize_t)done : -1;
        done += (size_t)r;
        if ((size_t)r < iov[i].iov_len)
            break;
    }
    return (ssize_t)done;
}

/* The kind of a non-socket fd, switching pollable ones to O_NONBLOCK; -1 + errno. */
static int classify(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || S_ISDIR(st.st_mode))
        return IO_FILE;
    return green__set_nonblock(fd) == 0 ? IO_POLLED : -1;
}

/* Where a transfer has got to in the caller's iovec array: iov[0] is partly done by off
 * bytes, the elements before it are done. */
struct cursor {
    const struct iovec *iov;
    size_t cnt;
    size_t off;
};

static void cursor_skip(struct cursor *c, size_t n)
{
    n += c->off;
    while (c->cnt && n >= c->iov->iov_len) {
        n -= c->iov->iov_len;
        c->iov++;
        c->cnt--;
    }
    c->off = n;
}

/* The rest of the transfer as an iovec array: the caller's own elements while the cursor
 * is on a boundary, else a copy of a few with the first one trimmed. */
static size_t cursor_view(const struct cursor *c, struct iovec *win, struct iovec **view)
{
    if (c->off == 0) {
        *view = (struct iovec *)c->iov; /* msghdr's field is not const; nobody writes it */
        return c->cnt;
    }
    size_t n = c->cnt < IOV_WINDOW ? c->cnt : IOV_WINDOW;
    memcpy(win, c->iov, n * sizeof *win);
    win[0].iov_base = (char *)win[0].iov_base + c->off;
    win[0].iov_len -= c->off;
    *view = win;
    return n;
}

static size_t iov_total(const struct iovec *iov, size_t cnt)
{
    size_t t = 0;
    for (size_t i = 0; i < cnt; i++)
        t += iov[i].iov_len;
    return t;
}

/* One attempt of kind k: what the system call returns. */
static ssize_t attempt(int k, int fd, int dir, struct msghdr *m, int flags, int64_t deadline)
{
    if (k == IO_SOCKET)
        return dir == GREEN_READ ? green__sys.recvmsg(fd, m, flags | MSG_DONTWAIT)
                                 : green__sys.sendmsg(fd, m, flags | MSG_DONTWAIT);
    if (k == IO_FILE)
        return file_io(fd, dir, m->msg_iov, (int)m->msg_iovlen, deadline);
    return dir == GREEN_READ ? green__sys.readv(fd, m->msg_iov, (int)m->msg_iovlen)
                             : green__sys.writev(fd, m->msg_iov, (int)m->msg_iovlen);
}

/*
 * The engine under every read and write: move what *msg describes in direction dir,
 * waiting whenever the fd would block, as `mode` says (IO_ALL, IO_STREAM). flags are
 * the socket call's; a caller's MSG_DONTWAIT means "do not wait" (EAGAIN). For reads,
 * msg's name, control and flags results are written back.
 */
static ssize_t transfer(int fd, int dir, struct msghdr *msg, int flags, int mode, int64_t deadline)
{
    struct msghdr m = *msg;
    struct cursor cur = {msg->msg_iov, msg->msg_iovlen, 0};
    struct iovec win[IOV_WINDOW];
    size_t total = (mode & IO_ALL) ? iov_total(msg->msg_iov, msg->msg_iovlen) : 0;
    size_t done = 0;
    struct green_hub *h = NULL;
    int kind = IO_SOCKET;
    for (;;) {
        m.msg_iovlen = cursor_view(&cur, win, &m.msg_iov);
        ssize_t r = attempt(kind, fd, dir, &m, flags, deadline);
        if (r >= 0) {
            done += (size_t)r;
            if (!(mode & IO_ALL) || r == 0 || done >= total)
                break;
            cursor_skip(&cur, (size_t)r);
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == ENOTSOCK && kind == IO_SOCKET && (mode & IO_STREAM)) {
            if ((kind = classify(fd)) < 0)
                return done ? (ssize_t)done : -1;
            continue;
        }
        if (!would_block(errno) || (flags & MSG_DONTWAIT) || wait_ready(&h, fd, dir, deadline) != 0)
            return done ? (ssize_t)done : -1;
    }
    if (dir == GREEN_READ) {
        msg->msg_namelen = m.msg_namelen;
        msg->msg_controllen = m.msg_controllen;
        msg->msg_flags = m.msg_flags;
    }
    return (ssize_t)done;
}

/* read/readv/write/writev on any fd. A zero-length one is the system call as is: it
 * moves nothing and must not wait (a socket's recvmsg would wait for a datagram). */
static ssize_t stream_io(int fd, int dir, const struct iovec *iov, int iovcnt, int64_t deadline)
{
    if (iovcnt < 0 || iovcnt > IOV_MAX || (iovcnt && !iov)) {
        errno = EINVAL;
        return -1;
    }
    if (iov_total(iov, (size_t)iovcnt) == 0)
        return dir == GREEN_READ ? green__sys.readv(fd, iov, iovcnt) : green__sys.writev(fd, iov, iovcnt);
    struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    return transfer(fd, dir, &m, 0, IO_STREAM | (dir == GREEN_WRITE ? IO_ALL : 0), deadline);
}

ssize_t green_read(int fd, void *buf, size_t n, int64_t deadline)
{
    struct iovec iov = {buf, n};
    return stream_io(fd, GREEN_READ, &iov, 1, deadline);
}

ssize_t green_readv(int fd, const struct iovec *iov, int iovcnt, int64_t deadline)
{
    return stream_io(fd, GREEN_READ, iov, iovcnt, deadline);
}

ssize_t green_write(int fd, const void *buf, size_t n, int64_t deadline)
{
    struct iovec iov = {(void *)buf, n};
    return stream_io(fd, GREEN_WRITE, &iov, 1, deadline);
}

ssize_t green_writev(int fd, const struct iovec *iov, int iovcnt, int64_t deadline)
{
    return stream_io(fd, GREEN_WRITE, iov, iovcnt, deadline);
}

/* recv and recvfrom honour MSG_WAITALL on a stream socket by reading on until n bytes
 * (or EOF). A datagram comes whole or not at all, and a peek cannot be done in steps:
 * there they return what one call gets, as the kernel would. */
static int wait_all(int fd, int flags)
{
    if (!(flags & MSG_WAITALL) || (flags & MSG_PEEK))
        return 0;
    int type = 0;
    socklen_t len = sizeof type;
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM ? IO_ALL : 0;
}

ssize_t green_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *from,
                       socklen_t *fromlen, int64_t deadline)
{
    struct iovec iov = {buf, n};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (from && fromlen) {
        m.msg_name = from;
        m.msg_namelen = *fromlen;
    }
    ssize_t r = transfer(fd, GREEN_READ, &m, flags, wait_all(fd, flags), deadline);
    if (r >= 0 && from && fromlen)
        *fromlen = m.msg_namelen;
    return r;
}

ssize_t green_recv(int fd, void *buf, size_t n, int flags, int64_t deadline)
{
    return green_recvfrom(fd, buf, n, flags, NULL, NULL, deadline);
}

ssize_t green_send(int fd, const void *buf, size_t n, int flags, int64_t deadline)
{
    struct iovec iov = {(void *)buf, n};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    return transfer(fd, GREEN_WRITE, &m, flags, IO_ALL, deadline);
}

/* One datagram (or, on a stream socket, what one sendto takes). */
ssize_t green_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *to,
                     socklen_t tolen, int64_t deadline)
{
    struct iovec iov = {(void *)buf, n};
    struct msghdr m = {.msg_name = (void *)to, .msg_namelen = to ? tolen : 0, .msg_iov = &iov, .msg_iovlen = 1};
    return transfer(fd, GREEN_WRITE, &m, flags, 0, deadline);
}

/* recvmsg and sendmsg are one system call that succeeds, as in POSIX: their ancillary
 * data belongs to one call, so they are never split (MSG_WAITALL has no effect). */
ssize_t green_recvmsg(int fd, struct msghdr *msg, int flags, int64_t deadline)
{
    if (!msg) {
        errno = EINVAL;
        return -1;
    }
    return transfer(fd, GREEN_READ, msg, flags, 0, deadline);
}

ssize_t green_sendmsg(int fd, const struct msghdr *msg, int flags, int64_t deadline)
{
    if (!msg) {
        errno = EINVAL;
        return -1;
    }
    struct msghdr m = *msg;
    return transfer(fd, GREEN_WRITE, &m, flags, 0, deadline);
}

int green_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int64_t deadline)
{
    if (green__set_nonblock(fd) != 0)
        return -1;
    struct green_hub *h = NULL;
    for (;;) {
        int c = green__sys.accept4(fd, addr, addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c >= 0)
            return c;
        /* a connection reset while it waited in the backlog is not the listener's failure */
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (!would_block(errno) || wait_ready(&h, fd, GREEN_READ, deadline) != 0)
            return -1;
    }
}

/* A connection attempt is under way: wait until it is made (0) or has failed. No
 * pending error is not enough to call it made: a wake-up may be spurious (the poller
 * can report an fd number for a file that was closed without green_close and lives on
 * in a forked child), so having a peer is what counts. */
static int connect_finish(struct green_hub **h, int fd, int64_t deadline)
{
    for (;;) {
        if (wait_ready(h, fd, GREEN_WRITE, deadline) != 0)
            return -1;
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            return -1;
        if (err == 0) {
            struct sockaddr_storage peer;
            len = sizeof peer;
            if (getpeername(fd, (struct sockaddr *)&peer, &len) == 0)
                return 0;
            if (errno != ENOTCONN)
                return -1;
        } else if (err != EINPROGRESS && err != EALREADY && err != EINTR) {
            errno = err;
            return -1;
        }
    }
}

/* A Unix listener with a full backlog refuses non-blocking connects with EAGAIN, and
 * there is nothing to poll for until it accepts: sleep, 1 ms doubling to 64 ms between
 * tries, until the deadline. 0 to try again, -1 + errno. */
static int unix_backoff(int64_t *delay, int64_t deadline)
{
    int64_t now = green_now();
    if (deadline >= 0 && now >= deadline) {
        errno = ETIMEDOUT;
        return -1;
    }
    int64_t until = now + *delay;
    if (deadline >= 0 && until > deadline)
        until = deadline;
    if (*delay < 64)
        *delay *= 2;
    return green_sleep_until(until);
}

/* Connecting again after a wait that ended early (deadline, kill) carries on with the
 * same attempt: the kernel answers EALREADY, and this waits for it again. */
int green_connect(int fd, const struct sockaddr *addr, socklen_t addrlen, int64_t deadline)
{
    if (!addr) {
        errno = EINVAL;
        return -1;
    }
    if (green__set_nonblock(fd) != 0)
        return -1;
    struct green_hub *h = NULL;
    int64_t delay = 1;
    while (green__sys.connect(fd, addr, addrlen) != 0) {
        if (errno == EINTR)
            continue; /* the attempt goes on: the next connect says EALREADY */
        if (errno == EINPROGRESS || errno == EALREADY)
            return connect_finish(&h, fd, deadline);
        if (!would_block(errno) || addr->sa_family != AF_UNIX || unix_backoff(&delay, deadline) != 0)
            return -1;
    }
    return 0;
}
