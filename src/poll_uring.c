/*
 * poll_uring.c — the second poller: io_uring (liburing). The wake-up eventfd is watched
 * with a multishot poll; checking for completions without waiting reads the completion
 * ring in user space, with no system call. Selected with GREEN_POLLER=uring.
 */

#include "internal.h"

#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define WAKE_TAG 1

struct uring_impl {
    struct io_uring ring;
};

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
        close(wfd);
        free(u);
        h->poller->impl = NULL;
        errno = ENOSYS;
        return -1;
    }
    return 0;
}

static void ur_destroy(struct green_hub *h)
{
    struct uring_impl *u = h->poller->impl;
    if (!u)
        return;
    io_uring_queue_exit(&u->ring);
    close(h->poller->wakefd);
    free(u);
    h->poller->impl = NULL;
}

static int ur_wait(struct green_hub *h, int timeout)
{
    struct uring_impl *u = h->poller->impl;
    struct io_uring_cqe *cqe;
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
        if (io_uring_cqe_get_data64(cqe) == WAKE_TAG) {
            uint64_t v;
            ssize_t r = read(h->poller->wakefd, &v, sizeof v);
            (void)r;
            if (!(cqe->flags & IORING_CQE_F_MORE))
                rearm = 1;
            green__on_notify(h);
        }
    }
    io_uring_cq_advance(&u->ring, n);
    if (rearm)
        arm_wake(h);
    return (int)n;
}

static int ur_notify(struct green_poller *p)
{
    uint64_t one = 1;
    return write(p->wakefd, &one, sizeof one) == sizeof one ? 0 : -1;
}

const struct green_poller_ops green__uring_ops = {
    .name = "uring",
    .init = ur_init,
    .destroy = ur_destroy,
    .wait = ur_wait,
    .notify = ur_notify,
};
