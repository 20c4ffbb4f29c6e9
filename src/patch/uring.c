/*
 * uring.c — liburing's waits in a green thread: a program's own io_uring (mariadbd's
 * InnoDB reaps its file I/O on a thread of its own that waits in io_uring_wait_cqe)
 * parks that green thread only.
 *
 * liburing enters the kernel with a system call instruction of its own: libc's syscall()
 * never sees it, and a wait there pinned the hub for good (mariadbd under
 * `greenrun --threads` never finished starting). What a program reaches through the
 * PLT are liburing.so's exported calls — its inline io_uring_wait_cqe and
 * io_uring_wait_cqe_nr end in __io_uring_get_cqe — so those that wait are caught here.
 * A ring's fd is pollable (readable while completions wait in its queue): a wait first
 * looks with liburing's own peek (which also flushes an overflowed queue and runs task
 * work deferred to the thread), then parks on the fd in the hub's poller and looks
 * again when woken. Fewer completions than asked for keep the fd readable: then it looks
 * again after a back-off (1 ms, doubling up to 50).
 *
 * The answers stay liburing's: 0 and the completion; -ETIME at the call's own timeout;
 * -EINTR when a signal handler runs (every handler ends io_uring_enter's wait); and, as
 * libgreen's other waits, -ETIMEDOUT at a green_timeout_push deadline and -ECANCELED for
 * a killed green thread (io_uring_enter is no cancellation point: a pthread_cancel ends
 * the wait, and the thread's next cancellation point acts, as with flock). Straight
 * through to liburing: plain threads, waits for nothing (a peek), a ring the kernel
 * polls (IORING_SETUP_IOPOLL: completions appear only when a wait reaps them), a ring
 * known only by its registered index (its fd closed), and submissions on their own.
 * io_uring_queue_exit closes the ring's fd by a system call of its own too: libgreen
 * forgets the fd first, as at a close(), or a ring made later with the same fd number
 * would be waited for through the old one's registration, which the kernel dropped
 * (the waits never ended).
 * Built only where liburing's headers are (the layout of struct io_uring is liburing
 * 2.x's, which keeps it stable).
 */
#include "io.h"

#include <dlfcn.h>
#include <liburing.h>

/* liburing's own calls: the definitions after ours (liburing.so.2's) */
static struct {
    __typeof__(__io_uring_get_cqe) *get_cqe;
    __typeof__(io_uring_wait_cqes) *wait_cqes;
    __typeof__(io_uring_wait_cqe_timeout) *wait_cqe_timeout;
    __typeof__(io_uring_submit) *submit;
    __typeof__(io_uring_submit_and_wait) *submit_and_wait;
    __typeof__(io_uring_submit_and_wait_timeout) *submit_and_wait_timeout;
    __typeof__(io_uring_queue_exit) *queue_exit;
} lu;

static void *next_def(void **slot, const char *name)
{
    void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!f) {
        f = dlsym(RTLD_NEXT, name);
        __atomic_store_n(slot, f, __ATOMIC_RELEASE);
    }
    return f;
}
#define REAL(f, name) ((__typeof__(lu.f))next_def((void **)&lu.f, name))

/* A ring whose waits can park the calling green thread. */
static int green_ring(const struct io_uring *ring)
{
    return patch_here() && ring && ring->ring_fd >= 0 && !(ring->flags & IORING_SETUP_IOPOLL);
}

/* ts as an absolute deadline (-1: none), as the kernel reads it: not checked, a
 * nanosecond count past a second adds to the seconds, one not after now is now. */
static int64_t ts_deadline(const struct __kernel_timespec *ts)
{
    if (!ts)
        return -1;
    if (ts->tv_sec > INT32_MAX)
        return INT64_MAX / 2; /* as good as never */
    long long ns = ts->tv_sec * 1000000000LL + ts->tv_nsec;
    if (ns <= 0)
        return 0;
    return green_after((ns + 999999) / 1000000);
}

/* Park until `want` completions wait in ring's queue: 0, 1 when the fd cannot be waited
 * for (closed, the ring registered: the caller passes the call through), or -errno. */
static int ring_wait(struct io_uring *ring, unsigned want, int64_t deadline, const sigset_t *sigmask)
{
    if (patch_intr_catch(sigmask) != 0)
        return -EINTR; /* a pending signal that the call's mask lets in came */
    struct patch_intr *in = NULL;
    if (sigmask)
        patch_intr_park(&in, PATCH_INTR_ALWAYS, sigmask);
    int64_t backoff = 1;
    int r = 0, woken = 0;
    for (;;) {
        unsigned ready = io_uring_cq_ready(ring);
        if (ready >= want)
            break;
        if (ready > 0 || woken) {
            /* readable, yet not enough (or nothing a peek could find): look again later */
            if (deadline == 0 || (deadline > 0 && green_now() >= deadline)) {
                r = -ETIME;
                break;
            }
            if (patch_backoff(&backoff, &in) != 0) {
                r = -errno;
                break;
            }
            woken = 0;
            continue;
        }
        struct pollfd p = {.fd = ring->ring_fd, .events = POLLIN};
        int n = patch_poll(&p, 1, deadline, &in, PATCH_INTR_ALWAYS);
        if (n < 0) {
            r = -errno;
            break;
        }
        if (n == 0) {
            r = -ETIME;
            break;
        }
        if (p.revents & POLLNVAL) {
            r = (ring->int_flags & 1 /* INT_FLAG_REG_RING */) ? 1 : -EBADF;
            break;
        }
        /* deferred task work or an overflowed queue: liburing's peek enters for them */
        struct io_uring_cqe *c;
        lu.get_cqe(ring, &c, 0, 0, NULL);
        woken = io_uring_cq_ready(ring) == 0;
    }
    patch_intr_end(&in);
    return r;
}

/* __io_uring_get_cqe's wait (wait_nr > 0) in a green thread, until deadline. */
static int get_green(struct io_uring *ring, struct io_uring_cqe **cqe_ptr, unsigned submit, unsigned wait_nr,
                     int64_t deadline, sigset_t *sigmask)
{
    int e = errno;
    int r;
    if (submit) { /* what the caller has queued goes now, without a wait */
        struct io_uring_cqe *c;
        r = lu.get_cqe(ring, &c, submit, 0, NULL);
        if (r < 0 && r != -EAGAIN) {
            *cqe_ptr = NULL;
            return r;
        }
    }
    for (;;) {
        struct io_uring_cqe *c = NULL;
        r = lu.get_cqe(ring, &c, 0, 0, NULL); /* a peek: 0 and c, or -EAGAIN */
        if (r == 0 && c && (wait_nr <= 1 || io_uring_cq_ready(ring) >= wait_nr)) {
            *cqe_ptr = c;
            break;
        }
        if (r < 0 && r != -EAGAIN)
            break;
        r = ring_wait(ring, wait_nr, deadline, sigmask);
        if (r == 1) {
            errno = e;
            return lu.get_cqe(ring, cqe_ptr, 0, wait_nr, sigmask);
        }
        if (r < 0)
            break;
    }
    if (r < 0)
        *cqe_ptr = NULL;
    errno = e;
    return r < 0 ? r : 0;
}

int __io_uring_get_cqe(struct io_uring *ring, struct io_uring_cqe **cqe_ptr, unsigned submit, unsigned wait_nr,
                       sigset_t *sigmask)
{
    __typeof__(lu.get_cqe) real = REAL(get_cqe, "__io_uring_get_cqe");
    if (!real)
        return -ENOSYS;
    if (!wait_nr || !green_ring(ring))
        return real(ring, cqe_ptr, submit, wait_nr, sigmask);
    return get_green(ring, cqe_ptr, submit, wait_nr, -1, sigmask);
}
GREEN_PATCH(__io_uring_get_cqe);

int io_uring_wait_cqes(struct io_uring *ring, struct io_uring_cqe **cqe_ptr, unsigned wait_nr,
                       struct __kernel_timespec *ts, sigset_t *sigmask)
{
    __typeof__(lu.wait_cqes) real = REAL(wait_cqes, "io_uring_wait_cqes");
    if (!real || !REAL(get_cqe, "__io_uring_get_cqe"))
        return -ENOSYS;
    if (!wait_nr || !green_ring(ring))
        return real(ring, cqe_ptr, wait_nr, ts, sigmask);
    int64_t deadline = ts_deadline(ts);
    return get_green(ring, cqe_ptr, 0, wait_nr, deadline, sigmask);
}
GREEN_PATCH(io_uring_wait_cqes);

int io_uring_wait_cqe_timeout(struct io_uring *ring, struct io_uring_cqe **cqe_ptr, struct __kernel_timespec *ts)
{
    __typeof__(lu.wait_cqe_timeout) real = REAL(wait_cqe_timeout, "io_uring_wait_cqe_timeout");
    if (!real || !REAL(get_cqe, "__io_uring_get_cqe"))
        return -ENOSYS;
    if (!green_ring(ring))
        return real(ring, cqe_ptr, ts);
    int64_t deadline = ts_deadline(ts);
    return get_green(ring, cqe_ptr, 0, 1, deadline, NULL);
}
GREEN_PATCH(io_uring_wait_cqe_timeout);

/* Submit, then wait until wait_nr completions are there: the count submitted (kept when
 * the wait fails after a submission, as io_uring_enter returns it), or -errno. */
static int submit_green(struct io_uring *ring, struct io_uring_cqe **cqe_ptr, unsigned wait_nr, int64_t deadline,
                        sigset_t *sigmask)
{
    __typeof__(lu.submit) submit = REAL(submit, "io_uring_submit");
    if (!submit)
        return -ENOSYS;
    int n = submit(ring);
    if (n < 0)
        return n;
    struct io_uring_cqe *c = NULL;
    int r = get_green(ring, &c, 0, wait_nr, deadline, sigmask);
    if (cqe_ptr)
        *cqe_ptr = c;
    return r < 0 && n == 0 ? r : n;
}

int io_uring_submit_and_wait(struct io_uring *ring, unsigned wait_nr)
{
    __typeof__(lu.submit_and_wait) real = REAL(submit_and_wait, "io_uring_submit_and_wait");
    if (!real || !REAL(get_cqe, "__io_uring_get_cqe"))
        return -ENOSYS;
    if (!wait_nr || !green_ring(ring))
        return real(ring, wait_nr);
    return submit_green(ring, NULL, wait_nr, -1, NULL);
}
GREEN_PATCH(io_uring_submit_and_wait);

int io_uring_submit_and_wait_timeout(struct io_uring *ring, struct io_uring_cqe **cqe_ptr, unsigned wait_nr,
                                     struct __kernel_timespec *ts, sigset_t *sigmask)
{
    __typeof__(lu.submit_and_wait_timeout) real =
        REAL(submit_and_wait_timeout, "io_uring_submit_and_wait_timeout");
    if (!real || !REAL(get_cqe, "__io_uring_get_cqe"))
        return -ENOSYS;
    if (!wait_nr || !green_ring(ring))
        return real(ring, cqe_ptr, wait_nr, ts, sigmask);
    int64_t deadline = ts_deadline(ts);
    return submit_green(ring, cqe_ptr, wait_nr, deadline, sigmask);
}
GREEN_PATCH(io_uring_submit_and_wait_timeout);

void io_uring_queue_exit(struct io_uring *ring)
{
    __typeof__(lu.queue_exit) real = REAL(queue_exit, "io_uring_queue_exit");
    if (ring && ring->ring_fd >= 0)
        patch_fd_closing(ring->ring_fd);
    if (real)
        real(ring);
}
GREEN_PATCH(io_uring_queue_exit);
