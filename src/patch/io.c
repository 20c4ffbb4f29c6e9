/*
 * io.c — read, write, send, receive (recvmmsg and sendmmsg too), accept and connect as
 * a blocking fd's user expects them, made cooperative in a green thread (see io.h for
 * the fd states). Reads and writes of regular files follow file.c's rule: inline, or
 * handed off with GREEN_PATCH_FILES=pool.
 *
 * Every wrapper asks pfd_how() how to make its call:
 *  - PFD_PASS: straight to libc (a plain thread's fd that is really blocking or that the
 *    user made non-blocking, a regular file, a bad fd, MSG_DONTWAIT);
 *  - PFD_GREEN: the fd is non-blocking underneath: make the call, and on EAGAIN park the
 *    green thread until the fd is ready (pfd_wait), then make it again. A PFD_KEEP
 *    fd (0..2) is waited for first, then called;
 *  - PFD_EMULATE: a plain thread on an fd that is blocking to the user but non-blocking
 *    underneath: the same loop, with a real poll(2) as the wait.
 * A wait that fails ends the call: -1 with ETIMEDOUT (the scoped deadline of
 * green_timeout_push), ECANCELED (the green thread was killed), EBADF (another green
 * thread closed the fd) or EINTR (a signal handler without SA_RESTART ran meanwhile:
 * these calls are restartable, see intr.c). write, send and writev on a blocking fd move
 * every byte, as the kernel does for a blocking socket; when a wait fails part way they
 * return the count moved so far. errno is left as it was when the call succeeds. Every
 * call here is a cancellation point (patch.h): a cancelled green pthread leaves on entry,
 * or when its wait fails with ECANCELED having moved nothing.
 */
#include "io.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

static int would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

/* A wait failed with nothing moved: a cancelled green pthread leaves here. */
static int wait_failed(void)
{
    if (errno == ECANCELED)
        patch_testcancel();
    return -1;
}

/* The loop of one call that succeeds once: `call` is an expression made again after
 * every wait for `ev`. */
#define ONE_CALL(fd, ev, flags, type, call)                                               \
    do {                                                                                  \
        patch_cancel_point();                                                             \
        int state_;                                                                       \
        enum pfd_how how_ = pfd_how(fd, &state_);                                         \
        if (how_ == PFD_PASS || ((flags) & MSG_DONTWAIT))                                 \
            return call;                                                                  \
        int e_ = errno;                                                                   \
        struct patch_intr *in_ = NULL;                                                    \
        type r_ = -1;                                                                     \
        int failed_ = (state_ & PFD_KEEP) && pfd_wait(how_, fd, ev, &in_) != 0;           \
        while (!failed_ && (r_ = call) < 0 && would_block(errno))                         \
            failed_ = pfd_wait(how_, fd, ev, &in_) != 0;                                  \
        patch_intr_end(&in_);                                                             \
        if (r_ >= 0)                                                                      \
            errno = e_;                                                                   \
        return failed_ ? wait_failed() : r_;                                              \
    } while (0)

static int iov_ok(int cnt) { return cnt >= 0 && cnt <= IOV_MAX; }

ssize_t read(int fd, void *buf, size_t n)
{
    if (patch_file_offload(fd, n)) {
        struct iovec iov = {buf, n};
        return patch_file_rw(fd, 0, &iov, 1, -1);
    }
    ONE_CALL(fd, POLLIN, 0, ssize_t, patch_real()->read(fd, buf, n));
}
GREEN_PATCH(read);

ssize_t __read(int fd, void *buf, size_t n) { return read(fd, buf, n); }
GREEN_PATCH(__read);

ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    if (n > buflen)
        __chk_fail();
    return read(fd, buf, n);
}
GREEN_PATCH(__read_chk);

ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
    if (iov_ok(iovcnt) && patch_file_offload(fd, patch_iov_bytes(iov, iovcnt)))
        return patch_file_rw(fd, 0, iov, iovcnt, -1);
    ONE_CALL(fd, POLLIN, 0, ssize_t, patch_real()->readv(fd, iov, iovcnt));
}
GREEN_PATCH(readv);

ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    ONE_CALL(fd, POLLIN, flags, ssize_t, patch_real()->recvmsg(fd, msg, flags));
}
GREEN_PATCH(recvmsg);

static int accept_call(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    ONE_CALL(fd, POLLIN, 0, int, patch_real()->accept4(fd, addr, len, flags));
}

/* The new fd gets exactly the caller's flags: its kernel flags are then the truth. */
int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    int c = accept_call(fd, addr, len, flags);
    if (c >= 0)
        pfd_set(c, 0);
    return c;
}
GREEN_PATCH(accept4);

int accept(int fd, struct sockaddr *addr, socklen_t *len) { return accept4(fd, addr, len, 0); }
GREEN_PATCH(accept);

/* recv and recvfrom: MSG_WAITALL on a stream socket reads on until n bytes or EOF, as
 * the kernel does for a blocking one (non-blocking underneath, it would not). */
ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *from, socklen_t *fromlen)
{
    int state;
    if ((flags & MSG_WAITALL) && !(flags & (MSG_PEEK | MSG_DONTWAIT)) &&
        pfd_how(fd, &state) != PFD_PASS && (state & PFD_STREAM)) {
        size_t done = 0;
        while (done < n) {
            ssize_t r = recvfrom(fd, (char *)buf + done, n - done, flags & ~MSG_WAITALL, from, fromlen);
            if (r <= 0)
                return done ? (ssize_t)done : r;
            done += (size_t)r;
        }
        return (ssize_t)done;
    }
    ONE_CALL(fd, POLLIN, flags, ssize_t, patch_real()->recvfrom(fd, buf, n, flags, from, fromlen));
}
GREEN_PATCH(recvfrom);

ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags, struct sockaddr *from,
                       socklen_t *fromlen)
{
    if (n > buflen)
        __chk_fail();
    return recvfrom(fd, buf, n, flags, from, fromlen);
}
GREEN_PATCH(__recvfrom_chk);

ssize_t recv(int fd, void *buf, size_t n, int flags) { return recvfrom(fd, buf, n, flags, NULL, NULL); }
GREEN_PATCH(recv);

ssize_t __recv(int fd, void *buf, size_t n, int flags) { return recv(fd, buf, n, flags); }
GREEN_PATCH(__recv);

ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
    if (n > buflen)
        __chk_fail();
    return recv(fd, buf, n, flags);
}
GREEN_PATCH(__recv_chk);

/* One datagram, or what one call takes on a stream socket. */
ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *to, socklen_t tolen)
{
    ONE_CALL(fd, POLLOUT, flags, ssize_t, patch_real()->sendto(fd, buf, n, flags, to, tolen));
}
GREEN_PATCH(sendto);

/* ---- writes that move everything ---- */

/* Where a write goes: writev, or sendmsg with its flags and header. */
struct put {
    int fd;
    int flags;           /* sendmsg's */
    struct msghdr *msg;  /* sendmsg: name and control go with the first call only */
};

static ssize_t put_once(struct put *p, struct iovec *iov, int cnt)
{
    if (!p->msg)
        return patch_real()->writev(p->fd, iov, cnt);
    struct msghdr m = *p->msg;
    m.msg_iov = iov;
    m.msg_iovlen = (size_t)cnt;
    ssize_t r = patch_real()->sendmsg(p->fd, &m, p->flags);
    if (r > 0) { /* the rest of a stream: no address, no ancillary data again */
        p->msg->msg_control = NULL;
        p->msg->msg_controllen = 0;
    }
    return r;
}

/* Write iov[0..cnt) (a copy of the caller's array, consumed) waiting whenever the fd
 * would block, until all of it is written, or a wait fails: -1 if nothing was written. */
static ssize_t put_all_waits(struct put *p, enum pfd_how how, int state, struct iovec *iov, int cnt,
                             struct patch_intr **in)
{
    size_t done = 0;
    int e = errno;
    if ((state & PFD_KEEP) && pfd_wait(how, p->fd, POLLOUT, in) != 0)
        return -1;
    for (;;) {
        ssize_t r = put_once(p, iov, cnt);
        if (r < 0) {
            if (!would_block(errno) || pfd_wait(how, p->fd, POLLOUT, in) != 0)
                return done ? (ssize_t)done : -1;
            continue;
        }
        done += (size_t)r;
        size_t left = (size_t)r;
        while (cnt > 0 && left >= iov[0].iov_len) {
            left -= iov[0].iov_len;
            iov++;
            cnt--;
        }
        if (cnt == 0)
            break;
        iov[0].iov_base = (char *)iov[0].iov_base + left;
        iov[0].iov_len -= left;
        if ((state & PFD_KEEP) && pfd_wait(how, p->fd, POLLOUT, in) != 0)
            return (ssize_t)done;
    }
    errno = e;
    return (ssize_t)done;
}

static ssize_t put_all(struct put *p, enum pfd_how how, int state, struct iovec *iov, int cnt)
{
    struct patch_intr *in = NULL;
    ssize_t r = put_all_waits(p, how, state, iov, cnt, &in);
    patch_intr_end(&in);
    return r;
}

/* The same with a private copy of the caller's iovec array (never written). */
static ssize_t put_all_copy(struct put *p, const struct iovec *iov, int cnt)
{
    patch_cancel_point();
    int state;
    enum pfd_how how = pfd_how(p->fd, &state);
    if (how == PFD_PASS || (p->flags & MSG_DONTWAIT) || cnt <= 0 || cnt > IOV_MAX)
        return p->msg ? patch_real()->sendmsg(p->fd, p->msg, p->flags) : patch_real()->writev(p->fd, iov, cnt);
    struct iovec small[8], *copy = small;
    if (cnt > 8 && !(copy = malloc((size_t)cnt * sizeof *copy))) {
        errno = ENOMEM;
        return -1;
    }
    memcpy(copy, iov, (size_t)cnt * sizeof *copy);
    ssize_t r = put_all(p, how, state, copy, cnt);
    if (copy != small) {
        int e = errno;
        free(copy);
        errno = e;
    }
    return r < 0 ? wait_failed() : r;
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    if (iov_ok(iovcnt) && patch_file_offload(fd, patch_iov_bytes(iov, iovcnt)))
        return patch_file_rw(fd, 1, iov, iovcnt, -1);
    struct put p = {.fd = fd};
    return put_all_copy(&p, iov, iovcnt);
}
GREEN_PATCH(writev);

ssize_t write(int fd, const void *buf, size_t n)
{
    struct iovec iov = {(void *)buf, n};
    return writev(fd, &iov, 1);
}
GREEN_PATCH(write);

ssize_t __write(int fd, const void *buf, size_t n) { return write(fd, buf, n); }
GREEN_PATCH(__write);

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (!msg)
        return patch_real()->sendmsg(fd, msg, flags);
    struct msghdr m = *msg;
    struct put p = {.fd = fd, .flags = flags, .msg = &m};
    return put_all_copy(&p, msg->msg_iov, (int)msg->msg_iovlen);
}
GREEN_PATCH(sendmsg);

ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    struct iovec iov = {(void *)buf, n};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    return sendmsg(fd, &m, flags);
}
GREEN_PATCH(send);

ssize_t __send(int fd, const void *buf, size_t n, int flags) { return send(fd, buf, n, flags); }
GREEN_PATCH(__send);

/* ---- many messages in one call ---- */

static size_t iov_bytes(const struct iovec *iov, size_t cnt)
{
    size_t n = 0;
    for (size_t i = 0; i < cnt; i++)
        n += iov[i].iov_len;
    return n;
}

/* A message that a stream socket took only part of: send the rest as a blocking
 * sendmsg would have (its msg_len then counts it all). 0, or -1 + errno when a wait
 * failed first (msg_len counts what moved). */
static int send_rest(int fd, int flags, enum pfd_how how, int state, struct mmsghdr *m)
{
    const struct msghdr *h = &m->msg_hdr;
    size_t total = iov_bytes(h->msg_iov, h->msg_iovlen), skip = m->msg_len, i = 0;
    if (skip >= total)
        return 0;
    while (skip >= h->msg_iov[i].iov_len) /* the first element not fully sent */
        skip -= h->msg_iov[i++].iov_len;
    struct iovec small[8], *rest = small;
    size_t cnt = h->msg_iovlen - i;
    if (cnt > 8 && !(rest = malloc(cnt * sizeof *rest))) {
        errno = ENOMEM;
        return -1;
    }
    memcpy(rest, h->msg_iov + i, cnt * sizeof *rest);
    rest[0].iov_base = (char *)rest[0].iov_base + skip;
    rest[0].iov_len -= skip;
    struct msghdr tail = {0}; /* the address and ancillary data went with the first part */
    struct put p = {.fd = fd, .flags = flags, .msg = &tail};
    ssize_t r = put_all(&p, how, state, rest, (int)cnt);
    int e = errno;
    if (rest != small)
        free(rest);
    errno = e;
    if (r > 0)
        m->msg_len += (unsigned)r;
    return m->msg_len == total ? 0 : -1;
}

/* sendmmsg's sends and waits (interruption record *in): the count of messages sent,
 * or -1 + errno when nothing was. */
static int sendmmsg_waits(int fd, struct mmsghdr *vec, unsigned int vlen, int flags, enum pfd_how how,
                          int state, struct patch_intr **in)
{
    int e = errno;
    unsigned sent = 0;
    while (sent < vlen) {
        int r = patch_real()->sendmmsg(fd, vec + sent, vlen - sent, flags);
        if (r > 0) {
            sent += (unsigned)r;
            if ((state & PFD_STREAM) && send_rest(fd, flags, how, state, &vec[sent - 1]) != 0)
                return (int)sent;
            continue;
        }
        if (!would_block(errno) || pfd_wait(how, fd, POLLOUT, in) != 0)
            return sent ? (int)sent : -1;
    }
    errno = e;
    return (int)sent;
}

/* Each message as a blocking socket sends it: all of it (a stream socket may take part
 * of one when non-blocking underneath). The count of messages sent; a wait that fails
 * after some were sent returns their count with errno set. */
int sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
    patch_cancel_point();
    int state;
    enum pfd_how how = pfd_how(fd, &state);
    if (how == PFD_PASS || (flags & MSG_DONTWAIT) || !vec || !vlen)
        return patch_real()->sendmmsg(fd, vec, vlen, flags);
    if (vlen > IOV_MAX) /* the kernel's UIO_MAXIOV: it sends no more */
        vlen = IOV_MAX;
    struct patch_intr *in = NULL;
    int r = sendmmsg_waits(fd, vec, vlen, flags, how, state, &in);
    patch_intr_end(&in);
    return r < 0 ? wait_failed() : r;
}
GREEN_PATCH(sendmmsg);

static int ts_passed(const struct timespec *end)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > end->tv_sec || (now.tv_sec == end->tv_sec && now.tv_nsec >= end->tv_nsec);
}

static int recvmmsg_waits(int fd, struct mmsghdr *vec, unsigned int vlen, int flags, struct timespec *timeout,
                          enum pfd_how how, struct patch_intr **in);

/* recvmmsg as on a blocking socket, timeout included, as Linux does it: the wait for each
 * message is not bounded by the timeout, which is only checked after a message has come
 * (recvmmsg(2), BUGS); MSG_WAITFORONE stops waiting once one has. */
int recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags, struct timespec *timeout)
{
    patch_cancel_point();
    int state;
    enum pfd_how how = pfd_how(fd, &state);
    if (how == PFD_PASS || (flags & MSG_DONTWAIT) || !vec || !vlen)
        return patch_real()->recvmmsg(fd, vec, vlen, flags, timeout);
    struct patch_intr *in = NULL;
    int r = recvmmsg_waits(fd, vec, vlen, flags, timeout, how, &in);
    patch_intr_end(&in);
    return r < 0 ? wait_failed() : r;
}
GREEN_PATCH(recvmmsg);

/* recvmmsg's receives and waits (interruption record *in): the count of messages, or
 * -1 + errno. */
static int recvmmsg_waits(int fd, struct mmsghdr *vec, unsigned int vlen, int flags, struct timespec *timeout,
                          enum pfd_how how, struct patch_intr **in)
{
    struct timespec end;
    if (timeout) {
        if (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000L) {
            errno = EINVAL;
            return -1;
        }
        clock_gettime(CLOCK_MONOTONIC, &end);
        end.tv_sec += timeout->tv_sec + (end.tv_nsec + timeout->tv_nsec) / 1000000000L;
        end.tv_nsec = (end.tv_nsec + timeout->tv_nsec) % 1000000000L;
    }
    if (vlen > IOV_MAX)
        vlen = IOV_MAX;
    int e = errno, failed = 0;
    unsigned got = 0;
    while (got < vlen) {
        /* with a timeout, one message a call: the kernel checks it after each */
        int r = patch_real()->recvmmsg(fd, vec + got, timeout ? 1 : vlen - got, flags, NULL);
        if (r > 0) {
            got += (unsigned)r;
            if ((flags & MSG_WAITFORONE) || (vec[got - 1].msg_hdr.msg_flags & MSG_OOB) ||
                (timeout && ts_passed(&end)))
                break;
            continue;
        }
        if (got && (!would_block(errno) || (flags & MSG_WAITFORONE)))
            break; /* what came so far; a later error is dropped (the kernel keeps it for the next call) */
        if (!would_block(errno) || pfd_wait(how, fd, POLLIN, in) != 0) {
            if (!got)
                return -1;
            failed = 1;
            break;
        }
    }
    if (timeout) { /* the time left, written back as the kernel does */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long ns = (long long)(end.tv_sec - now.tv_sec) * 1000000000LL + (end.tv_nsec - now.tv_nsec);
        if (ns < 0)
            ns = 0;
        timeout->tv_sec = (time_t)(ns / 1000000000LL);
        timeout->tv_nsec = (long)(ns % 1000000000LL);
    }
    if (!failed)
        errno = e;
    return (int)got;
}

/* ---- connect ---- */

/* A blocking connect: on a non-blocking socket the attempt goes on in the background
 * (EINPROGRESS); wait until it is made or has failed, then connect again, which reports
 * the outcome as the blocking call would (0, or the error) and leaves the socket marked
 * connected, so that a later connect says EISCONN. A wait that fails (EINTR without
 * SA_RESTART, a scoped timeout, a kill) leaves the attempt going on; a later blocking
 * connect waits for it again (EALREADY underneath), as Linux's does after an EINTR. */
int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    patch_cancel_point();
    int state;
    enum pfd_how how = pfd_how(fd, &state);
    int e = errno;
    struct patch_intr *in = NULL;
    int r, waited = 0, failed = 0;
    while ((r = patch_real()->connect(fd, addr, len)) != 0 && how != PFD_PASS &&
           (errno == EINPROGRESS || errno == EALREADY) && !(failed = pfd_wait(how, fd, POLLOUT, &in) != 0))
        waited = 1;
    patch_intr_end(&in);
    if (failed)
        return wait_failed();
    if (r != 0 && waited && errno == EISCONN)
        r = 0; /* made while we waited */
    if (r == 0)
        errno = e;
    return r;
}
GREEN_PATCH(connect);

int __connect(int fd, const struct sockaddr *addr, socklen_t len) { return connect(fd, addr, len); }
GREEN_PATCH(__connect);
