/*
 * poll_epoll.c — the default poller: epoll, plus an eventfd through which other threads
 * wake the hub. fd readiness arrives here too (the I/O layer registers fds).
 */

#include "internal.h"

#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define EVENTS 128

struct epoll_impl {
    int epfd;
    struct epoll_event ev[EVENTS];
};

static int ep_init(struct green_hub *h)
{
    struct epoll_impl *e = calloc(1, sizeof *e);
    if (!e) {
        errno = ENOMEM;
        return -1;
    }
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    int wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (e->epfd < 0 || wfd < 0 || epoll_ctl(e->epfd, EPOLL_CTL_ADD, wfd, &ev) != 0) {
        int err = errno;
        if (e->epfd >= 0)
            close(e->epfd);
        if (wfd >= 0)
            close(wfd);
        free(e);
        errno = err;
        return -1;
    }
    h->poller->wakefd = wfd;
    h->poller->impl = e;
    return 0;
}

static void ep_destroy(struct green_hub *h)
{
    struct epoll_impl *e = h->poller->impl;
    if (!e)
        return;
    close(e->epfd);
    close(h->poller->wakefd);
    free(e);
    h->poller->impl = NULL;
}

static int ep_wait(struct green_hub *h, int timeout)
{
    struct epoll_impl *e = h->poller->impl;
    int n = epoll_wait(e->epfd, e->ev, EVENTS, timeout);
    for (int i = 0; i < n; i++) {
        if (e->ev[i].data.ptr == NULL) {
            uint64_t v;
            ssize_t r = read(h->poller->wakefd, &v, sizeof v);
            (void)r;
            green__on_notify(h);
        }
    }
    return n < 0 ? -1 : n;
}

static int ep_notify(struct green_poller *p)
{
    uint64_t one = 1;
    return write(p->wakefd, &one, sizeof one) == sizeof one ? 0 : -1;
}

const struct green_poller_ops green__epoll_ops = {
    .name = "epoll",
    .init = ep_init,
    .destroy = ep_destroy,
    .wait = ep_wait,
    .notify = ep_notify,
};
