/*
 * poll_uring.c — the second poller (layer 4, sched.h): io_uring (liburing). The wake-up
 * eventfd is watched with a multishot poll; checking for completions without waiting
 * reads the completion ring in user space, with no system call. Selected with
 * GREEN_POLLER=uring.
 *
 * An fd wait is a one-shot poll request, queued in the submission ring and sent with
 * the next wait (no system call of its own). Its tag carries the fd, the direction and
 * the fd's epoch, so a completion for an fd that was closed since (maybe reopened under
 * the same number) is recognised and dropped; green_close cancels what is in flight.
 *
 * A file read or write (file.c) is one request whose tag is its record's address with
 * bit 2 set (fd tags never have it); its completion calls the record's done callback.
 * The ring is not torn down while such a request is in flight: the kernel would still
 * write into the record's buffer.
 *
 * liburing is not linked: the first hub that asks for this poller loads it (dlopen of
 * liburing.so.2), so that a process on epoll, the default, does not map it (24 KiB of
 * resident pages under greenrun). Only the five calls below are the library's; the rest
 * of liburing.h is inline code on the rings. Without the library, init fails with ENOSYS
 * and the hub falls back to epoll (sched.c).
 */

#include "sched.h"

#include <dlfcn.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define WAKE_TAG 1
#define CANCEL_TAG 2
#define FILE_TAG 4
/* fd poll tags: fd << 20 | epoch (16 bits) << 4 | 8 | direction bit */
static inline uint64_t fd_tag(int fd, uint32_t epoch, int bit)
{
    return ((uint64_t)(uint32_t)fd << 20) | ((uint64_t)(epoch & 0xffff) << 4) | 8 | (uint64_t)bit;
}

/* liburing's out-of-line calls, from liburing.so.2 (the ABI of liburing 2.x) */
static struct {
    __typeof__(io_uring_queue_init) *queue_init;
    __typeof__(io_uring_queue_exit) *queue_exit;
    __typeof__(io_uring_submit) *submit;
    __typeof__(io_uring_submit_and_wait) *submit_and_wait;
    __typeof__(io_uring_submit_and_wait_timeout) *submit_and_wait_timeout;
} lu;
static pthread_once_t lu_once = PTHREAD_ONCE_INIT;
static int lu_ready;

static void lu_load(void)
{
    void *l = dlopen("liburing.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!l)
        return;
#define LU_SYM(f) (lu.f = (__typeof__(lu.f))dlsym(l, "io_uring_" #f)) != NULL
    if (LU_SYM(queue_init) && LU_SYM(queue_exit) && LU_SYM(submit) && LU_SYM(submit_and_wait) &&
        LU_SYM(submit_and_wait_timeout)) {
        lu_ready = 1;
        return;
    }
#undef LU_SYM
    dlclose(l);
}
#define io_uring_queue_init lu.queue_init
#define io_uring_queue_exit lu.queue_exit
#define io_uring_submit lu.submit
#define io_uring_submit_and_wait lu.submit_and_wait
#define io_uring_submit_and_wait_timeout lu.submit_and_wait_timeout

struct uring_impl {
    struct io_uring ring;
    unsigned files;                /* file requests in flight */
};

/* A free submission entry, sending what is queued if the ring is full; NULL + EAGAIN. */
static struct io_uring_sqe *sqe_get(struct uring_impl *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (!sqe) {
        io_uring_submit(&u->ring);
        if (!(sqe = io_uring_get_sqe(&u->ring)))
            errno = EAGAIN;
    }
    return sqe;
}

static int arm_wake(struct green_hub *h)
{
    struct uring_impl *u = h->poller->impl;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (!sqe)
        return -1;
    io_uring_prep_poll_multishot(sqe, h->poller->wakefd, POLLIN);
    io_uring_sqe_set_data64(sqe, WAKE_TAG);
    return io_uring_submit(&u->ring) < 0 ? -1 : 0;
}

static int ur_init(struct green_hub *h)
{
    green__sys.pthread_once(&lu_once, lu_load);
    if (!lu_ready) {
        errno = ENOSYS; /* no liburing.so.2: the hub takes epoll */
        return -1;
    }
    struct uring_impl *u = calloc(1, sizeof *u);
    if (!u) {
        errno = ENOMEM;
        return -1;
    }
    int r = io_uring_queue_init(256, &u->ring, 0);
    if (r < 0) {
        free(u);
        errno = -r;
        return -1;
    }
    int wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wfd < 0) {
        io_uring_queue_exit(&u->ring);
        free(u);
        return -1;
    }
    h->poller->wakefd = wfd;
    h->poller->impl = u;
    if (arm_wake(h) != 0) {
        io_uring_queue_exit(&u->ring);
        green__sys.close(wfd);
        free(u);
        h->poller->impl = NULL;
        errno = ENOSYS;
        return -1;
    }
    return 0;
}

static void file_done(struct green_hub *h, struct io_uring_cqe *cqe)
{
    struct uring_impl *u = h->poller->impl;
    uint64_t tag = io_uring_cqe_get_data64(cqe);
    struct green_file_op *op = (struct green_file_op *)(uintptr_t)(tag & ~(uint64_t)7);
    u->files--;
    op->res = cqe->res;
    op->done(h, op);
}

static void ur_destroy(struct green_hub *h)
{
    struct uring_impl *u = h->poller->impl;
    if (!u)
        return;
    while (u->files) { /* file requests end soon (no fd is waited for); others are dropped */
        int r = io_uring_submit_and_wait(&u->ring, 1);
        if (r < 0 && r != -EINTR)
            break;
        struct io_uring_cqe *cqe;
        unsigned head, n = 0;
        io_uring_for_each_cqe(&u->ring, head, cqe) {
            n++;
            if ((io_uring_cqe_get_data64(cqe) & 7) == FILE_TAG)
                file_done(h, cqe);
        }
        io_uring_cq_advance(&u->ring, n);
    }
    io_uring_queue_exit(&u->ring);
    green__sys.close(h->poller->wakefd);
    free(u);
    h->poller->impl = NULL;
}

static int ur_wait(struct green_hub *h, int timeout)
{
    struct uring_impl *u = h->poller->impl;
    struct io_uring_cqe *cqe;
    if (timeout == 0 && io_uring_sq_ready(&u->ring))
        io_uring_submit(&u->ring);
    if (timeout != 0 && io_uring_cq_ready(&u->ring) == 0) {
        if (timeout < 0) {
            io_uring_submit_and_wait(&u->ring, 1);
        } else {
            struct __kernel_timespec ts = {.tv_sec = timeout / 1000,
                                           .tv_nsec = (long long)(timeout % 1000) * 1000000};
            io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
        }
    }
    unsigned head, n = 0;
    int rearm = 0;
    io_uring_for_each_cqe(&u->ring, head, cqe) {
        n++;
        uint64_t tag = io_uring_cqe_get_data64(cqe);
        if (tag == WAKE_TAG) {
            uint64_t v;
            ssize_t r = green__sys.read(h->poller->wakefd, &v, sizeof v);
            (void)r;
            if (!(cqe->flags & IORING_CQE_F_MORE))
                rearm = 1;
            green__on_notify(h);
        } else if ((tag & 7) == FILE_TAG) {
            file_done(h, cqe);
        } else if (tag & 8) {
            int fd = (int)(tag >> 20), bit = (int)(tag & 3);
            struct green_fd *st = (size_t)fd < h->nfd_cap ? &h->fd_table[fd] : NULL;
            if (!st || (st->epoch & 0xffff) != ((tag >> 4) & 0xffff))
                continue; /* for an fd closed since */
            st->pending &= (uint8_t)~bit;
            st->mask = st->pending;
            int ready = 0;
            if (cqe->res > 0) {
                if (cqe->res & (POLLIN | POLLHUP | POLLERR | POLLRDHUP))
                    ready |= GREEN_READ;
                if (cqe->res & (POLLOUT | POLLHUP | POLLERR))
                    ready |= GREEN_WRITE;
            } else if (cqe->res < 0 && cqe->res != -ECANCELED) {
                ready = bit; /* let the waiter find out with its system call */
            }
            green__fd_ready(h, fd, ready & bit);
        }
    }
    io_uring_cq_advance(&u->ring, n);
    if (rearm)
        arm_wake(h);
    return (int)n;
}

static int ur_watch(struct green_hub *h, int fd, int events)
{
    struct uring_impl *u = h->poller->impl;
    struct green_fd *st = &h->fd_table[fd];
    for (int bit = GREEN_READ; bit <= GREEN_WRITE; bit <<= 1) {
        if (!(events & bit) || (st->pending & bit))
            continue;
        struct io_uring_sqe *sqe = sqe_get(u);
        if (!sqe)
            return -1;
        io_uring_prep_poll_add(sqe, fd, bit == GREEN_READ ? POLLIN | POLLRDHUP : POLLOUT);
        io_uring_sqe_set_data64(sqe, fd_tag(fd, st->epoch, bit));
        st->pending |= (uint8_t)bit;
    }
    st->mask = st->pending;
    return 0;
}

/* Cancel the polls in flight for fd (whose epoch has just moved on). */
static void ur_unwatch(struct green_hub *h, int fd)
{
    struct uring_impl *u = h->poller->impl;
    struct green_fd *st = &h->fd_table[fd];
    for (int bit = GREEN_READ; bit <= GREEN_WRITE; bit <<= 1) {
        if (!(st->pending & bit))
            continue;
        struct io_uring_sqe *sqe = sqe_get(u);
        if (sqe) {
            io_uring_prep_poll_remove(sqe, fd_tag(fd, st->epoch - 1, bit));
            io_uring_sqe_set_data64(sqe, CANCEL_TAG);
        }
    }
    /* sent now: the fd is closed right after us, and a poll must not outlive it */
    io_uring_submit(&u->ring);
    st->pending = 0;
}

static int ur_file_io(struct green_hub *h, struct green_file_op *op)
{
    struct uring_impl *u = h->poller->impl;
    struct io_uring_sqe *sqe = sqe_get(u);
    if (!sqe)
        return -1;
    /* offset -1 is the kernel's own "at the current position" */
    if (op->write)
        io_uring_prep_write(sqe, op->fd, op->buf, (unsigned)op->n, (uint64_t)op->off);
    else
        io_uring_prep_read(sqe, op->fd, op->buf, (unsigned)op->n, (uint64_t)op->off);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | FILE_TAG);
    u->files++;
    return 0;
}

static int ur_notify(struct green_poller *p)
{
    uint64_t one = 1;
    return green__sys.write(p->wakefd, &one, sizeof one) == sizeof one ? 0 : -1;
}

const struct green_poller_ops green__uring_ops = {
    .name = "uring",
    .init = ur_init,
    .destroy = ur_destroy,
    .wait = ur_wait,
    .notify = ur_notify,
    .watch = ur_watch,
    .unwatch = ur_unwatch,
    .file_io = ur_file_io,
};
