/*
 * plain_uring.c — a program's own io_uring as a plain pthread program uses it (liburing,
 * no libgreen): the waits of liburing's API on reads from pipes that another thread
 * fills later, their timeouts, and a bad ring. The answers must be liburing's, plainly
 * and under `greenrun --threads`, where each check's thread is a green thread and a wait
 * parks it while the ticker thread goes on (liburing enters the kernel by itself: before
 * src/patch/uring.c, a wait there held the OS thread and the ticker stood still).
 *
 *   plain_uring [CHECK]    (a name below, or "all": prints "ok NAME" for each)
 */
#define _GNU_SOURCE
#include "prog.h"

#include <fcntl.h>
#include <liburing.h>
#include <poll.h>

/* Queue a read of pipe p into buf, tagged with tag (not submitted). */
static void queue_read(struct io_uring *ring, int fd, char *buf, unsigned n, uint64_t tag)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    CHECK(sqe != NULL);
    io_uring_prep_read(sqe, fd, buf, n, 0);
    io_uring_sqe_set_data64(sqe, tag);
}

static struct io_uring ring_new(void)
{
    struct io_uring ring;
    int r = io_uring_queue_init(8, &ring, 0);
    if (r < 0) {
        errno = -r;
        CHECK(r == 0);
    }
    return ring;
}

/* A ring with a read of an empty pipe submitted (tag 7) into buf. */
struct reading {
    struct io_uring ring;
    int p[2];
    char buf[16];
};

static void reading_start(struct reading *r)
{
    memset(r, 0, sizeof *r);
    r->ring = ring_new();
    CHECK_EQ(pipe(r->p), 0);
    queue_read(&r->ring, r->p[0], r->buf, sizeof r->buf, 7);
    CHECK_EQ(io_uring_submit(&r->ring), 1);
}

static void reading_end(struct reading *r)
{
    io_uring_queue_exit(&r->ring);
    close(r->p[0]);
    close(r->p[1]);
}

/* io_uring_wait_cqe (the inline one, through __io_uring_get_cqe): a read completes when
 * the pipe is written, and the ticker ran meanwhile */
static void check_wait(void)
{
    struct reading r;
    reading_start(&r);
    struct io_uring_cqe *cqe = NULL;
    CHECK_EQ(io_uring_peek_cqe(&r.ring, &cqe), -EAGAIN); /* nothing yet, and no wait */
    struct later l = {r.p[1], "hello", 5};
    long t0 = ticks_now();
    pthread_t w = in_a_while(&l);
    CHECK_EQ(io_uring_wait_cqe(&r.ring, &cqe), 0);
    CHECK(TICKED(t0));
    CHECK_EQ(cqe->res, 5);
    CHECK_EQ(io_uring_cqe_get_data64(cqe), 7);
    CHECK(memcmp(r.buf, "hello", 5) == 0);
    io_uring_cqe_seen(&r.ring, cqe);
    CHECK_EQ(pthread_join(w, NULL), 0);
    reading_end(&r);
}

/* io_uring_wait_cqe_timeout and io_uring_wait_cqes with a timeout: -ETIME when nothing
 * completes in time; the completion when it does */
static void check_timeout(void)
{
    struct reading r;
    reading_start(&r);
    struct io_uring_cqe *cqe = NULL;
    struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 30 * 1000000};
    long t0 = ticks_now();
    CHECK_EQ(io_uring_wait_cqe_timeout(&r.ring, &cqe, &ts), -ETIME);
    CHECK(TICKED(t0));
    struct __kernel_timespec zero = {0, 0};
    CHECK_EQ(io_uring_wait_cqes(&r.ring, &cqe, 1, &zero, NULL), -ETIME);
    struct __kernel_timespec past = {-1, 0}; /* the kernel takes it: at once */
    CHECK_EQ(io_uring_wait_cqe_timeout(&r.ring, &cqe, &past), -ETIME);
    struct later l = {r.p[1], "xy", 2};
    pthread_t w = in_a_while(&l);
    struct __kernel_timespec ten = {.tv_sec = 10, .tv_nsec = 0};
    CHECK_EQ(io_uring_wait_cqes(&r.ring, &cqe, 1, &ten, NULL), 0);
    CHECK_EQ(cqe->res, 2);
    io_uring_cqe_seen(&r.ring, cqe);
    CHECK_EQ(pthread_join(w, NULL), 0);
    reading_end(&r);
}

/* io_uring_submit_and_wait and io_uring_wait_cqe_nr: two reads from two pipes, each
 * written later; the wait for two ends when both completed */
static void check_submit_and_wait(void)
{
    struct io_uring ring = ring_new();
    int a[2], b[2];
    CHECK_EQ(pipe(a), 0);
    CHECK_EQ(pipe(b), 0);
    char ba[8] = {0}, bb[8] = {0};
    queue_read(&ring, a[0], ba, sizeof ba, 1);
    struct later la = {a[1], "one", 3};
    long t0 = ticks_now();
    pthread_t wa = in_a_while(&la);
    CHECK_EQ(io_uring_submit_and_wait(&ring, 1), 1);
    CHECK(TICKED(t0));
    CHECK_EQ(io_uring_cq_ready(&ring), 1);
    struct io_uring_cqe *cqe = NULL;
    CHECK_EQ(io_uring_peek_cqe(&ring, &cqe), 0);
    CHECK_EQ(cqe->res, 3);
    io_uring_cqe_seen(&ring, cqe);
    CHECK_EQ(pthread_join(wa, NULL), 0);

    queue_read(&ring, a[0], ba, sizeof ba, 2);
    queue_read(&ring, b[0], bb, sizeof bb, 3);
    CHECK_EQ(io_uring_submit(&ring), 2);
    struct later l2a = {a[1], "two", 3}, l2b = {b[1], "three", 5};
    pthread_t w1 = in_a_while(&l2a);
    CHECK_EQ(pthread_join(w1, NULL), 0);
    pthread_t w2 = in_a_while(&l2b);
    CHECK_EQ(io_uring_wait_cqe_nr(&ring, &cqe, 2), 0);
    CHECK_EQ(io_uring_cq_ready(&ring), 2);
    int sum = 0;
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(io_uring_peek_cqe(&ring, &cqe), 0);
        sum += cqe->res;
        io_uring_cqe_seen(&ring, cqe);
    }
    CHECK_EQ(sum, 8);
    CHECK_EQ(pthread_join(w2, NULL), 0);

    /* io_uring_submit_and_wait_timeout: -ETIME with nothing to complete */
    queue_read(&ring, a[0], ba, sizeof ba, 4);
    struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 20 * 1000000};
    CHECK_EQ(io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL), 1); /* the count submitted */
    CHECK(cqe == NULL);
    CHECK_EQ(io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL), -ETIME); /* none */
    CHECK_EQ(io_uring_peek_cqe(&ring, &cqe), -EAGAIN);
    io_uring_queue_exit(&ring);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}

/* A ring whose fd was closed: the wait fails with -EBADF instead of hanging */
static void check_bad_ring(void)
{
    struct io_uring ring = ring_new();
    int fd = ring.ring_fd;
    close(fd);
    struct io_uring_cqe *cqe = NULL;
    CHECK_EQ(io_uring_wait_cqe(&ring, &cqe), -EBADF);
    ring.ring_fd = fd; /* (queue_exit closes it again: EBADF, ignored) */
    io_uring_queue_exit(&ring);
}

int main(int argc, char **argv)
{
    struct io_uring probe;
    if (io_uring_queue_init(2, &probe, 0) < 0) {
        /* no io_uring here (a kernel without it, a seccomp filter): nothing to compare */
        printf("ok no io_uring\n");
        return 0;
    }
    io_uring_queue_exit(&probe);
    static const struct prog_test tests[] = {
        {"wait", check_wait},
        {"timeout", check_timeout},
        {"submit_and_wait", check_submit_and_wait},
        {"bad_ring", check_bad_ring},
    };
    return prog_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
