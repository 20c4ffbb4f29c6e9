/* poll_uring_none.c — the io_uring poller's stand-in (layer 4, sched.h), built when
 * liburing is missing: GREEN_POLLER=uring falls back to epoll. */
#include "sched.h"

static int none_init(struct green_hub *h)
{
    (void)h;
    errno = ENOSYS;
    return -1;
}

const struct green_poller_ops green__uring_ops = {
    .name = "uring", .init = none_init, .destroy = NULL, .wait = NULL, .notify = NULL,
    .watch = NULL, .unwatch = NULL,
};
