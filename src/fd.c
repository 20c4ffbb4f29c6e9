/*
 * fd.c — waiting for file descriptors (layer 4, sched.h): the hub's table of fds that
 * green threads wait on, between green_wait_fd and the poller.
 *
 * Each fd has at most one waiting reader and one waiting writer (gevent's rule; a
 * second gets EBUSY). A waiter records itself in the fd's slot, asks the poller to
 * watch the direction, and parks on the hub's one wait mechanism. The poller reports
 * readiness with green__fd_ready, which wakes the slot's green thread. green_close
 * wakes both with EBADF and makes the poller forget the fd *before* closing it, so a
 * later fd with the same number never sees an old wake-up: the fd's epoch is bumped,
 * and pollers that report asynchronously (io_uring) tag their requests with it.
 *
 * The table is indexed by fd and grows by doubling; nobody keeps a pointer into it
 * across a park (it may move), only the fd number. libgreen-patch.so's close() tells
 * the hub first (green_private_fd_closing), as green_close does.
 */
#include "sched.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Closes seen across hubs. A green thread may wait on an fd on one hub, move, and close
 * it on another: the first hub's poller still believes the number registered. Once a
 * group of hubs exists, every green_close counts in a process-wide table (one word per fd
 * number, chunks made on first use and never freed); an arm that finds the count moved
 * since the hub last armed that number forgets its stale state first. */
#define CLOSES_CHUNK 4096u
#define CLOSES_CHUNKS 1024u
static uint32_t *closes[CLOSES_CHUNKS] GREEN_BIG_BSS;

static uint32_t closes_of(int fd)
{
    uint32_t *c = __atomic_load_n(&closes[(unsigned)fd / CLOSES_CHUNK % CLOSES_CHUNKS], __ATOMIC_ACQUIRE);
    return c ? __atomic_load_n(&c[(unsigned)fd % CLOSES_CHUNK], __ATOMIC_ACQUIRE) : 0;
}

static void closes_bump(int fd)
{
    uint32_t **slot = &closes[(unsigned)fd / CLOSES_CHUNK % CLOSES_CHUNKS];
    uint32_t *c = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!c) {
        uint32_t *fresh = calloc(CLOSES_CHUNK, sizeof *fresh);
        if (!fresh)
            return; /* best effort: the other hubs see EEXIST/ENOENT and recover as before */
        if (__atomic_compare_exchange_n(slot, &c, fresh, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            c = fresh;
        else
            free(fresh);
    }
    __atomic_add_fetch(&c[(unsigned)fd % CLOSES_CHUNK], 1, __ATOMIC_RELEASE);
}

struct green_fd *green__fd(struct green_hub *h, int fd)
{
    if ((size_t)fd >= h->nfd_cap) {
        size_t cap = h->nfd_cap ? h->nfd_cap : 64;
        while (cap <= (size_t)fd)
            cap *= 2;
        struct green_fd *t = realloc(h->fd_table, cap * sizeof *t);
        if (!t) {
            errno = ENOMEM;
            return NULL;
        }
        memset(t + h->nfd_cap, 0, (cap - h->nfd_cap) * sizeof *t);
        h->fd_table = t;
        h->nfd_cap = cap;
    }
    return &h->fd_table[fd];
}

void green__fd_ready(struct green_hub *h, int fd, int events)
{
    if ((size_t)fd >= h->nfd_cap)
        return;
    struct green_fd *st = &h->fd_table[fd];
    for (int dir = 0; dir < 2; dir++) {
        int bit = dir ? GREEN_WRITE : GREEN_READ;
        struct green *g = st->waiter[dir];
        if (!(events & bit) || !g)
            continue;
        st->revents |= (uint8_t)bit;
        st->waiter[dir] = NULL;
        if (g->state == GS_WAITING && g->wait_seq == st->seq[dir])
            green__wake(h, g, 0);
    }
}

/* The current green thread waits on fd for events from its next park: it is the fd's
 * reader and/or writer, the poller watches. 0, or -1 + errno (EBADF, EINVAL, EBUSY: another
 * green thread waits for that direction, ENOMEM, the poller's). *epoch is for fd_disarm. */
static inline int fd_arm(struct green_hub *h, int fd, int events, uint32_t *epoch)
{
    if (fd < 0 || !events || (events & ~(GREEN_READ | GREEN_WRITE))) {
        errno = fd < 0 ? EBADF : EINVAL;
        return -1;
    }
    struct green_fd *st = green__fd(h, fd);
    if (!st)
        return -1;
    if (GREEN_UNLIKELY(green__hubs_n() > 1)) {
        uint32_t c = closes_of(fd);
        if (c != st->closes) { /* closed on another hub since we last armed it */
            if (!st->waiter[0] && !st->waiter[1])
                green__fd_forget(h, fd);
            st->closes = c;
        }
    }
    struct green *self = h->current;
    for (int dir = 0; dir < 2; dir++)
        if ((events & (dir ? GREEN_WRITE : GREEN_READ)) && st->waiter[dir] && st->waiter[dir] != self) {
            errno = EBUSY;
            return -1;
        }
    if (h->poller->ops->watch(h, fd, events) != 0)
        return -1;
    for (int dir = 0; dir < 2; dir++)
        if (events & (dir ? GREEN_WRITE : GREEN_READ)) {
            st->waiter[dir] = self;
            st->seq[dir] = self->wait_seq + 1; /* the coming park */
        }
    st->revents &= (uint8_t)~events;
    h->nfds++;
    *epoch = st->epoch;
    return 0;
}

/* After that park, however it ended: the events ready (> 0), 0 if none, or -1 + EBADF
 * when fd was closed (green_close) meanwhile. */
static inline int fd_disarm(struct green_hub *h, int fd, int events, uint32_t epoch)
{
    struct green *self = h->current;
    h->nfds--;
    struct green_fd *st = &h->fd_table[fd]; /* the table may have moved while we were parked */
    for (int dir = 0; dir < 2; dir++)
        if (st->waiter[dir] == self)
            st->waiter[dir] = NULL;
    if (st->epoch != epoch) {
        errno = EBADF;
        return -1;
    }
    int ready = st->revents & events;
    st->revents &= (uint8_t)~ready;
    return ready;
}

int green__fd_arm(struct green_hub *h, int fd, int events, uint32_t *epoch)
{
    return fd_arm(h, fd, events, epoch);
}

int green__fd_disarm(struct green_hub *h, int fd, int events, uint32_t epoch)
{
    return fd_disarm(h, fd, events, epoch);
}

int green__fd_wait(struct green_hub *h, int fd, int events, int64_t deadline)
{
    for (;;) {
        uint32_t epoch;
        if (fd_arm(h, fd, events, &epoch) != 0)
            return -1;
        green__waiting_on(h, GW_FD, (void *)(intptr_t)fd);
        int r = green__park(h, deadline);
        int err = errno;
        int ready = fd_disarm(h, fd, events, epoch);
        if (r != 0) {
            errno = err; /* the park's: EBADF from green_close, ETIMEDOUT, ECANCELED */
            return -1;
        }
        if (ready)
            return ready; /* or -1/EBADF */
        /* woken by a stray green_wake: keep waiting */
    }
}

int green_wait_fd(int fd, int events, int64_t deadline)
{
    struct green_hub *h = green__loop();
    if (!h)
        return -1;
    return green__fd_wait(h, fd, events, deadline);
}

/* Forget fd: its waiters get EBADF and the poller stops watching it. */
void green__fd_forget(struct green_hub *h, int fd)
{
    if (fd < 0 || (size_t)fd >= h->nfd_cap)
        return;
    struct green_fd *st = &h->fd_table[fd];
    st->epoch++;
    for (int dir = 0; dir < 2; dir++) {
        struct green *g = st->waiter[dir];
        st->waiter[dir] = NULL;
        if (g && g->state == GS_WAITING && g->wait_seq == st->seq[dir])
            green__wake(h, g, EBADF);
    }
    if (st->mask)
        h->poller->ops->unwatch(h, fd);
    st->mask = 0;
    st->revents = 0;
}

void green_private_fd_closing(int fd)
{
    if (fd >= 0 && GREEN_UNLIKELY(green__hubs_n() > 1))
        closes_bump(fd);
    struct green_hub *h = green__tls_hub;
    if (h && h->poller)
        green__fd_forget(h, fd);
}

int green_close(int fd)
{
    green_private_fd_closing(fd);
    return green__sys.close(fd);
}

int green__set_nonblock(int fd)
{
    int fl = green__sys.fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    if (fl & O_NONBLOCK)
        return 0;
    return green__sys.fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

void green__fds_destroy(struct green_hub *h)
{
    free(h->fd_table);
    h->fd_table = NULL;
    h->nfd_cap = 0;
}
