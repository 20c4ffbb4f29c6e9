/*
 * io.c — cooperative I/O (layer 6): read, write, send, receive, accept and connect that
 * park the calling green thread on the hub's poller instead of blocking its OS thread.
 *
 * Every call makes its system call first and waits (green__fd_wait) only when that says
 * it would block, then tries again; so a call whose fd is ready costs one system call,
 * and a green thread that was killed still completes a call that needs no wait (the kill
 * shows at its next wait, as for the sync objects). What keeps an attempt from blocking
 * depends on the fd (classify; a socket call answering ENOTSOCK is how read/write find
 * out, so a socket pays nothing for the others):
 *  - a socket: every attempt passes MSG_DONTWAIT (read/write/readv/writev on a socket are
 *    done as recvmsg/sendmsg), so its file status flags are never read nor changed;
 *  - an fd its owner made O_NONBLOCK: the plain call;
 *  - a pipe, FIFO or tty, and any fd 0..2: its flags are left as found, since other
 *    processes may share its open file (the shell's terminal, the next program of a
 *    pipeline, a child after fork): O_NONBLOCK set there would outlive this program.
 *    Where the kernel has RWF_NOWAIT for the fd (anonymous pipes on recent Linux),
 *    preadv2/pwritev2 with it is the per-call O_NONBLOCK. Elsewhere (FIFOs, ttys) the call
 *    waits for readiness first, then is made as is: a read after POLLIN returns what is
 *    there; a write to a FIFO after POLLOUT moves at most PIPE_BUF bytes, for which the
 *    pipe has room (POLLOUT means a free buffer slot, a page >= PIPE_BUF); a tty's POLLOUT
 *    promises room for a byte only, so a tty write goes to the thread pool (file_io; not
 *    io_uring, which would make the blocking call on the hub's thread) and waits there
 *    for the terminal to drain, parking only the caller (with deadline 0 it is made
 *    on the hub's thread, as a regular file's is);
 *  - any other pollable fd (eventfd, timerfd, signalfd, inotify, a device): switched to
 *    O_NONBLOCK (green__set_nonblock) before the attempt;
 *  - a regular file, block device or directory never "would block" (poll calls it always
 *    ready): it goes to file_io, the one place where file I/O is done;
 *  - accept and connect have no per-call flag: the listening or connecting socket is
 *    switched to O_NONBLOCK (one fcntl, small beside the call itself).
 *
 * SIGPIPE: no write here raises it. Sockets are written with MSG_NOSIGNAL; a write to a
 * pipe or FIFO is made with SIGPIPE blocked in the calling OS thread, and the SIGPIPE it
 * raised, when it failed with EPIPE, is taken before the mask is restored (green__sigpipe_
 * hold/release, also used by the debugging reports' writes). Such a write never blocks
 * (RWF_NOWAIT, O_NONBLOCK, or at most PIPE_BUF bytes after POLLOUT), so the pipe cannot
 * lose its reader part way through: the signal always comes with -1/EPIPE.
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
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* How an attempt is made on an fd (see the top of the file). */
enum io_kind {
    IO_SOCKET,     /* recvmsg/sendmsg with MSG_DONTWAIT */
    IO_POLLED,     /* an O_NONBLOCK fd: readv/writev */
    IO_NOWAIT,     /* flags left as found: preadv2/pwritev2 with RWF_NOWAIT */
    IO_READY,      /* flags left as found, no RWF_NOWAIT: readiness first, then the call */
    IO_FILE,       /* file_io */
    IO_HOW = 7,    /* the bits above */
    IO_PIPE = 8,   /* a pipe or FIFO: a write may raise SIGPIPE */
};

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
 * after some bytes moved is returned as such; the callers' loops go on from there.
 * `pool`: on the thread pool even with io_uring (a tty's write). */
static ssize_t file_io(int fd, int dir, int pool, const struct iovec *iov, int iovcnt, int64_t deadline)
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
        int how = (dir == GREEN_WRITE ? GREEN_FILE_WRITE : 0) | (pool ? GREEN_FILE_POOL : 0);
        ssize_t r = green__file_io(h, fd, how, iov[i].iov_base, iov[i].iov_len, -1, deadline);
        if (r < 0)
            return done ? (ssize_t)done : -1;
        done += (size_t)r;
        if ((size_t)r < iov[i].iov_len)
            break;
    }
    return (ssize_t)done;
}

/* The kind of a non-socket fd (see the top of the file), switching to O_NONBLOCK the
 * pollable ones that no other process is likely to share; -1 + errno. */
static int classify(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || S_ISDIR(st.st_mode))
        return IO_FILE;
    int fifo = S_ISFIFO(st.st_mode) ? IO_PIPE : 0;
    int fl = green__sys.fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    if (fl & O_NONBLOCK)
        return IO_POLLED | fifo;
    if (fifo || fd <= 2 || (S_ISCHR(st.st_mode) && isatty(fd)))
        return IO_NOWAIT | fifo;
    return green__sys.fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0 ? IO_POLLED : -1;
}

/* 0 when fd is ready for dir now, else -1 + errno (EAGAIN: not yet; EBADF). */
static int ready_now(int fd, int dir)
{
    struct pollfd p = {.fd = fd, .events = dir == GREEN_READ ? POLLIN : POLLOUT};
    int r;
    while ((r = green__sys.poll(&p, 1, 0)) < 0 && errno == EINTR) {
    }
    if (r > 0 && (p.revents & POLLNVAL))
        errno = EBADF;
    else if (r == 0)
        errno = EAGAIN;
    return r > 0 && !(p.revents & POLLNVAL) ? 0 : -1;
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

/* An IO_READY attempt: once fd is ready, a read takes what is there; a write to a FIFO
 * moves at most PIPE_BUF bytes (of the first element), which the free slot POLLOUT
 * promises holds; a tty write goes to file_io (see the top of the file). */
static ssize_t ready_attempt(int k, int fd, int dir, const struct iovec *iov, int cnt, int64_t deadline)
{
    if (ready_now(fd, dir) != 0)
        return -1;
    if (dir == GREEN_READ)
        return green__sys.readv(fd, iov, cnt);
    if (!(k & IO_PIPE))
        return file_io(fd, dir, 1, iov, cnt, deadline);
    while (cnt > 1 && iov->iov_len == 0)
        iov++, cnt--;
    struct iovec one = {iov->iov_base, iov->iov_len < PIPE_BUF ? iov->iov_len : PIPE_BUF};
    return green__sys.writev(fd, &one, 1);
}

/* One attempt on a non-socket fd of kind k (not a file): what the system call returns. */
static ssize_t fd_attempt(int k, int fd, int dir, const struct iovec *iov, int cnt, int64_t deadline)
{
    switch (k & IO_HOW) {
    case IO_NOWAIT:
        return dir == GREEN_READ ? green__sys.preadv2(fd, iov, cnt, -1, RWF_NOWAIT)
                                 : green__sys.pwritev2(fd, iov, cnt, -1, RWF_NOWAIT);
    case IO_READY:
        return ready_attempt(k, fd, dir, iov, cnt, deadline);
    default:
        return dir == GREEN_READ ? green__sys.readv(fd, iov, cnt) : green__sys.writev(fd, iov, cnt);
    }
}

/* One attempt of kind k: what the system call returns. */
static ssize_t attempt(int k, int fd, int dir, struct msghdr *m, int flags, int64_t deadline)
{
    if (k == IO_SOCKET)
        return dir == GREEN_READ ? green__sys.recvmsg(fd, m, flags | MSG_DONTWAIT)
                                 : green__sys.sendmsg(fd, m, flags | MSG_DONTWAIT | MSG_NOSIGNAL);
    if (k == IO_FILE)
        return file_io(fd, dir, 0, m->msg_iov, (int)m->msg_iovlen, deadline);
    if (dir == GREEN_READ || !(k & IO_PIPE))
        return fd_attempt(k, fd, dir, m->msg_iov, (int)m->msg_iovlen, deadline);
    struct green_sigpipe sp;
    green__sigpipe_hold(&sp);
    ssize_t r = fd_attempt(k, fd, dir, m->msg_iov, (int)m->msg_iovlen, deadline);
    green__sigpipe_release(&sp, r < 0 ? errno : 0);
    return r;
}

/* An fd the kernel has no RWF_NOWAIT for: the kind to use instead. */
static int without_nowait(int k, int err)
{
    if ((k & IO_HOW) != IO_NOWAIT || (err != EOPNOTSUPP && err != ENOSYS))
        return -1;
    return (k & ~IO_HOW) | IO_READY;
}

/* ---- writes that raise no SIGPIPE ---- */

static void sigpipe_only(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGPIPE);
}

/* 1 when a SIGPIPE is pending for the calling thread itself, not only for the process
 * (sigpending(2) tells the union): /proc/thread-self/status's SigPnd. When that cannot
 * be read, 1 if either is (then one raised by the write is left besides the program's). */
static int sigpipe_pending_here(void)
{
    sigset_t p;
    if (sigpending(&p) != 0 || !sigismember(&p, SIGPIPE))
        return 0;
    int fd = open("/proc/thread-self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 1;
    char buf[2048];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = green__sys.read(fd, buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    green__sys.close(fd);
    buf[n] = '\0';
    const char *line = strstr(buf, "\nSigPnd:");
    return !line || ((strtoull(line + 8, NULL, 16) >> (SIGPIPE - 1)) & 1);
}

void green__sigpipe_hold(struct green_sigpipe *s)
{
    int e = errno;
    sigset_t pipe_only;
    sigpipe_only(&pipe_only);
    green__sys.pthread_sigmask(SIG_BLOCK, &pipe_only, &s->old);
    /* while it was unblocked, none could be pending for this thread: it would have been
     * delivered */
    s->pending = sigismember(&s->old, SIGPIPE) && sigpipe_pending_here();
    errno = e;
}

/* The write's SIGPIPE was sent to this thread, where none was pending (one that was
 * absorbs it): sigtimedwait takes a thread's own pending signals before the process's,
 * so it takes that one, and one sent to the process stays. */
void green__sigpipe_release(struct green_sigpipe *s, int err)
{
    int e = errno;
    if (err == EPIPE && !s->pending) {
        sigset_t pipe_only;
        sigpipe_only(&pipe_only);
        struct timespec zero = {0, 0};
        while (green__sys.sigtimedwait(&pipe_only, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    green__sys.pthread_sigmask(SIG_SETMASK, &s->old, NULL);
    errno = e;
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
        int instead = without_nowait(kind, errno);
        if (instead >= 0) {
            kind = instead;
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
    return green__sleep_until(until);
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
