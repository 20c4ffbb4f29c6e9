/*
 * file.c — regular files without blocking the hub (layer 6).
 *
 * No poller can say when a regular file's data is there (poll calls it always ready),
 * so a read or write of one is handed off: to io_uring when that is the hub's poller
 * (the kernel does it; its completion wakes the caller), else to the thread pool
 * (pread/pwrite, or read/write at the current position, on a pool thread).
 *
 * The transfer goes through a bounce buffer in the op's heap record, never the caller's
 * buffer: the caller may give up (deadline, kill) while the kernel or the pool thread is
 * still at work and then free or reuse its buffer, and a shared-stack green thread's
 * buffer on its own stack is not even at its address while it waits. So a call moves at
 * most GREEN_FILE_CHUNK bytes (the copy is cheap beside the transfer; the caller loops).
 *
 * Invariants:
 *  - a record is freed by whoever is last: the caller once the op has completed, or,
 *    when the caller gave up first, the op's completion (io_uring) or the pool thread;
 *  - a wait that would end before it starts (killed, deadline passed) starts nothing,
 *    so the file position is untouched; one that ends part way leaves the op running,
 *    and the position (off == -1) then moves by what the op moved.
 */
#include "lib.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct file_op {
    struct green_file_op io;
    green_waitq_t waiters;      /* the caller, while it waits (io_uring) */
    int abandoned;              /* the caller has gone: the completion frees the record */
    char data[];                /* the bounce buffer */
};

/* The system call itself: bytes moved, or -errno. */
static ssize_t file_syscall(const struct green_file_op *io)
{
    ssize_t r;
    if (io->off < 0)
        r = io->write ? green__sys.write(io->fd, io->buf, io->n) : green__sys.read(io->fd, io->buf, io->n);
    else
        r = io->write ? green__sys.pwrite(io->fd, io->buf, io->n, io->off) : green__sys.pread(io->fd, io->buf, io->n, io->off);
    return r < 0 ? -errno : r;
}

/* ---- on the thread pool ---- */

static void *pool_job(void *arg)
{
    struct green_file_op *io = arg;
    io->res = file_syscall(io);
    return NULL;
}

static void pool_drop(void *arg, void *result)
{
    (void)result;
    free(arg); /* io is the record's first member */
}

/* On failure the record belongs to pool_drop. */
static int on_pool(struct green_hub *h, struct file_op *op, int64_t deadline)
{
    return green__pool_run(h, pool_job, &op->io, NULL, deadline, pool_drop);
}

/* ---- on io_uring ---- */

static void uring_done(struct green_hub *h, struct green_file_op *io)
{
    (void)h;
    struct file_op *op = green_container_of(io, struct file_op, io);
    if (op->abandoned)
        free(op);
    else
        green__waitq_hand_over_all(&op->waiters);
}

static int on_uring(struct green_hub *h, struct file_op *op, int64_t deadline)
{
    op->io.done = uring_done;
    if (green__wait_reserve(h) != 0) { /* a request sent is done, whatever its caller does */
        int err = errno;
        free(op);
        errno = err;
        return -1;
    }
    if (h->poller->ops->file_io(h, &op->io) != 0)
        return on_pool(h, op, deadline); /* no room in the ring: the pool does it */
    /* external: the kernel ends the wait, nothing the hub's deadlock check can see */
    green__waiting_on(h, GW_FILE, (void *)(intptr_t)op->io.fd);
    if (green__wait(h, &op->waiters, NULL, deadline, GREEN_PARK_EXTERNAL) != 0) {
        op->abandoned = 1;
        return -1;
    }
    return 0;
}

/* ---- the entry point ---- */

/* Hand io off (to io_uring or the pool) through a bounce buffer and wait for it: bytes
 * moved, or -errno. */
static ssize_t hand_off(struct green_hub *h, const struct green_file_op *io, void *buf,
                        int pool, int64_t deadline)
{
    if (green__wait_over(h, deadline) != 0)
        return -errno;
    struct file_op *op = malloc(sizeof *op + io->n);
    if (!op)
        return -ENOMEM;
    *op = (struct file_op){.io = *io};
    op->io.buf = op->data;
    if (io->write)
        memcpy(op->data, buf, io->n);
    if ((h->poller->ops->file_io && !pool ? on_uring(h, op, deadline) : on_pool(h, op, deadline)) != 0)
        return -errno; /* the record is left to the op's completion */
    ssize_t res = op->io.res;
    if (res > 0 && !io->write)
        memcpy(buf, op->data, (size_t)res);
    free(op);
    return res;
}

ssize_t green__file_io(struct green_hub *h, int fd, int how, void *buf, size_t n, off_t off,
                       int64_t deadline)
{
    if (fd < 0 || off < -1) {
        errno = fd < 0 ? EBADF : EINVAL;
        return -1;
    }
    struct green_file_op io = {.fd = fd, .write = how & GREEN_FILE_WRITE, .buf = buf, .off = off,
                               .n = n < GREEN_FILE_CHUNK ? n : GREEN_FILE_CHUNK};
    /* zero bytes: the system call checks the fd and returns at once, nothing to hand off */
    ssize_t r = n ? hand_off(h, &io, buf, how & GREEN_FILE_POOL, deadline) : file_syscall(&io);
    if (r < 0) {
        errno = (int)-r;
        return -1;
    }
    return r;
}

ssize_t green_private_file_io(int fd, int write, void *buf, size_t n, off_t off)
{
    struct green_hub *h = green__loop();
    return h ? green__file_io(h, fd, write, buf, n, off, -1) : -1;
}
