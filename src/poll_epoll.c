/*
 * poll_epoll.c — the default poller (layer 4, sched.h): epoll, plus an eventfd through
 * which other threads wake the hub.
 *
 * fds are watched level-triggered and stay registered between waits: a server that
 * reads, answers and reads again costs no epoll_ctl per request. A direction is added
 * when a waiter needs it and dropped when it fires with nobody waiting (otherwise a
 * level-triggered fd nobody reads would wake the hub forever). Event data is fd + 1,
 * so 0 is the eventfd.
 */

#include "sched.h"

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
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
    if (e->epfd < 0 || wfd < 0 || epoll_ctl(e->epfd, EPOLL_CTL_ADD, wfd, &ev) != 0) {
        int err = errno;
        if (e->epfd >= 0)
            green__sys.close(e->epfd);
        if (wfd >= 0)
            green__sys.close(wfd);
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
    green__sys.close(e->epfd);
    green__sys.close(h->poller->wakefd);
    free(e);
    h->poller->impl = NULL;
}

static int ep_set(struct green_hub *h, int fd, int mask);

static int ep_wait(struct green_hub *h, int timeout)
{
    struct epoll_impl *e = h->poller->impl;
    int n = green__sys.epoll_wait(e->epfd, e->ev, EVENTS, timeout);
    for (int i = 0; i < n; i++) {
        uint64_t tag = e->ev[i].data.u64;
        if (tag == 0) {
            uint64_t v;
            ssize_t r = green__sys.read(h->poller->wakefd, &v, sizeof v);
            (void)r;
            green__on_notify(h);
            continue;
        }
        int fd = (int)(tag - 1);
        uint32_t ev = e->ev[i].events;
        int ready = 0;
        if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
            ready |= GREEN_READ;
        if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
            ready |= GREEN_WRITE;
        struct green_fd *st = &h->fd_table[fd];
        int unwanted = st->mask & ready & ~((st->waiter[0] ? GREEN_READ : 0) | (st->waiter[1] ? GREEN_WRITE : 0));
        green__fd_ready(h, fd, ready);
        if (unwanted && st->mask)
            ep_set(h, fd, st->mask & ~unwanted);
    }
    return n < 0 ? -1 : n;
}

/* Register fd for exactly `mask` (0: not at all). */
static int ep_set(struct green_hub *h, int fd, int mask)
{
    struct epoll_impl *e = h->poller->impl;
    struct green_fd *st = &h->fd_table[fd];
    struct epoll_event ev = {.events = ((mask & GREEN_READ) ? EPOLLIN | EPOLLRDHUP : 0) |
                                       ((mask & GREEN_WRITE) ? EPOLLOUT : 0),
                             .data.u64 = (uint64_t)fd + 1};
    int op = !mask ? EPOLL_CTL_DEL : st->mask ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    int r = epoll_ctl(e->epfd, op, fd, &ev);
    if (r != 0 && errno == ENOENT && op == EPOLL_CTL_MOD) /* closed behind our back */
        r = epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev);
    else if (r != 0 && errno == EEXIST && op == EPOLL_CTL_ADD) /* a reused fd number */
        r = epoll_ctl(e->epfd, EPOLL_CTL_MOD, fd, &ev);
    if (r != 0 && op == EPOLL_CTL_DEL)
        r = 0; /* already gone */
    if (r == 0)
        st->mask = (uint8_t)mask;
    return r;
}

static int ep_watch(struct green_hub *h, int fd, int events)
{
    struct green_fd *st = &h->fd_table[fd];
    if ((st->mask & events) == events)
        return 0;
    return ep_set(h, fd, st->mask | events);
}

static void ep_unwatch(struct green_hub *h, int fd) { ep_set(h, fd, 0); }

static int ep_notify(struct green_poller *p)
{
    uint64_t one = 1;
    return green__sys.write(p->wakefd, &one, sizeof one) == sizeof one ? 0 : -1;
}

const struct green_poller_ops green__epoll_ops = {
    .name = "epoll",
    .init = ep_init,
    .destroy = ep_destroy,
    .wait = ep_wait,
    .notify = ep_notify,
    .watch = ep_watch,
    .unwatch = ep_unwatch,
};
