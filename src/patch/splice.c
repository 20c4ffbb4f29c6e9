/*
 * splice.c — sendfile, splice, tee and copy_file_range (and sendfile64): data moved by
 * the kernel from one fd to another, in a green thread.
 *
 * Each end is a side whose fd libgreen may keep non-blocking underneath (a pipe, a
 * socket: see io.h). When neither end is, the call is libc's — a copy between regular
 * files follows the file rule of file.c (inline; on the pool with GREEN_PATCH_FILES=pool).
 * Otherwise the call is made, and when it would block (EAGAIN) the green thread parks
 * until the end that holds it up is ready — its input readable, its output writable,
 * found by a poll that does not wait — and makes it again; a plain thread on such an
 * fd polls for real (PFD_EMULATE). An end the user made non-blocking gives EAGAIN, as
 * the kernel does; SPLICE_F_NONBLOCK passes straight to libc.
 *
 * How much one call moves is the kernel's: splice, tee and sendfile into a pipe return
 * after the first bytes (a blocking call would too), while sendfile from a file to a
 * stream socket goes on until count bytes or the end of the file, as the blocking call
 * does. A wait that fails after some bytes moved returns their count, errno set.
 */
#include "io.h"

#include <fcntl.h>
#include <sys/sendfile.h>
#include <unistd.h>

struct side {
    int fd;
    short events;       /* POLLIN for the input, POLLOUT for the output */
    int state;
    enum pfd_how how;
};

static void side_init(struct side *s, int fd, short events)
{
    s->fd = fd;
    s->events = events;
    s->how = pfd_how(fd, &s->state);
}

/* The call, for `left` bytes at most: bytes moved, or -1 + errno. */
typedef ssize_t move_fn(void *ctx, size_t left);

/* Park until the ends that hold the call up are ready: 0, or -1 + errno (EAGAIN when the
 * one not ready is non-blocking to its user; EINTR when a handler without SA_RESTART
 * ran: the call's interruption record is *intr). *idle counts the rounds in which both
 * were ready yet the call would block; from the second on, it sleeps a millisecond. */
static int wait_sides(struct side *s, int *idle, struct patch_intr **intr)
{
    struct pollfd p[2] = {{.fd = s[0].fd, .events = s[0].events}, {.fd = s[1].fd, .events = s[1].events}};
    patch_real()->poll(p, 2, 0);
    int waited = 0;
    for (int i = 0; i < 2; i++) {
        if (p[i].revents)
            continue; /* ready, or an error the call will report */
        if (s[i].how == PFD_PASS) {
            errno = EAGAIN;
            return -1;
        }
        if (pfd_wait(s[i].how, s[i].fd, s[i].events, intr) != 0)
            return -1;
        waited = 1;
    }
    *idle = waited ? 0 : *idle + 1;
    if (*idle > 1) {
        if (s[0].how == PFD_GREEN || s[1].how == PFD_GREEN)
            return patch_poll(NULL, 0, green_after(1), intr, PATCH_INTR_RESTART) < 0 ? -1 : 0;
        patch_real()->poll(NULL, 0, 1);
    }
    return 0;
}

/* The moves and waits of transfer, whose interruption record is *intr (the calls are
 * restartable, as the kernel's). */
static ssize_t transfer_waits(struct side *s, size_t len, int all, move_fn *move, void *ctx,
                              struct patch_intr **intr)
{
    int e = errno;
    for (int i = 0; i < 2; i++) /* fds 0..2 left blocking underneath: ready first */
        if ((s[i].state & PFD_KEEP) && pfd_wait(s[i].how, s[i].fd, s[i].events, intr) != 0)
            return -1;
    size_t done = 0;
    int idle = 0;
    for (;;) {
        ssize_t r = move(ctx, len - done);
        if (r > 0) {
            done += (size_t)r;
            if (!all || done >= len)
                break;
            continue;
        }
        if (r == 0)
            break; /* the end of the input */
        if ((errno != EAGAIN && errno != EWOULDBLOCK) || wait_sides(s, &idle, intr) != 0)
            return done ? (ssize_t)done : -1; /* (no cancellation points, as glibc's) */
    }
    errno = e;
    return (ssize_t)done;
}

/* The move between two ends that never wait (regular files), made whole again if the
 * monitor's SIGURG cut it short: the kernel ends a long sendfile, splice or
 * copy_file_range at a signal with what it moved so far, and the detector signals a hub
 * it sees held this long (a backtrace); the program, without libgreen, would not have met
 * that signal. A signal of its own still ends the call early, as the kernel does. */
static ssize_t move_whole(move_fn *move, void *ctx, size_t len)
{
    size_t done = 0;
    for (;;) {
        unsigned hits = green_private_monitor_hits();
        ssize_t r = move(ctx, len - done);
        if (r < 0)
            return done ? (ssize_t)done : -1;
        done += (size_t)r;
        if (r == 0 || done == len || green_private_monitor_hits() == hits)
            return (ssize_t)done;
    }
}

/* Make the move between in and out (len bytes at most), waiting as the sides say.
 * file_to_stream: from a regular file to a stream socket, go on until len bytes or the
 * end of the file (sendfile on a blocking socket does). */
static ssize_t transfer(int in, int out, size_t len, int file_to_stream, move_fn *move, void *ctx)
{
    struct side s[2];
    side_init(&s[0], in, POLLIN);
    side_init(&s[1], out, POLLOUT);
    if (s[0].how == PFD_PASS && s[1].how == PFD_PASS)
        return move_whole(move, ctx, len);
    int all = file_to_stream && (s[0].state & PFD_FILE) && (s[1].state & PFD_STREAM);
    struct patch_intr *intr = NULL;
    ssize_t r = transfer_waits(s, len, all, move, ctx, &intr);
    patch_intr_end(&intr);
    return r;
}

/* 1 when both fds are files whose transfer of len bytes the file rule sends off the
 * hub's thread. */
static int files_to_pool(int in, int out, size_t len)
{
    return patch_file_offload(in, len) && patch_file_offload(out, len);
}

/* ---- sendfile ---- */

struct sendfile_args {
    int out, in;
    off_t *offset;
};

static ssize_t sendfile_move(void *ctx, size_t left)
{
    struct sendfile_args *a = ctx;
    return patch_real()->sendfile(a->out, a->in, a->offset, left);
}

static ssize_t sendfile_job(struct patch_job *j)
{
    off_t *offset = j->arg[2] ? &j->off[0] : NULL;
    return patch_real()->sendfile((int)j->arg[0], (int)j->arg[1], offset, (size_t)j->arg[3]);
}

ssize_t sendfile(int out, int in, off_t *offset, size_t count)
{
    if (!patch_here() && !pfd_get(in) && !pfd_get(out))
        return patch_real()->sendfile(out, in, offset, count);
    if (files_to_pool(in, out, count)) {
        struct patch_job j = {.fn = sendfile_job, .arg = {out, in, offset != NULL, (long)count},
                              .off = {offset ? *offset : 0}};
        ssize_t r = patch_pool_call(&j);
        if (r >= 0 && offset)
            *offset = j.off[0];
        return r;
    }
    struct sendfile_args a = {out, in, offset};
    return transfer(in, out, count, 1, sendfile_move, &a);
}
GREEN_PATCH(sendfile);

ssize_t sendfile64(int out, int in, off64_t *offset, size_t count)
{
    return sendfile(out, in, offset, count);
}
GREEN_PATCH(sendfile64);

/* ---- splice and tee ---- */

struct splice_args {
    int in, out;
    loff_t *off_in, *off_out;
    unsigned int flags;
};

static ssize_t splice_move(void *ctx, size_t left)
{
    struct splice_args *a = ctx;
    return patch_real()->splice(a->in, a->off_in, a->out, a->off_out, left, a->flags);
}

ssize_t splice(int in, loff_t *off_in, int out, loff_t *off_out, size_t len, unsigned int flags)
{
    if ((flags & SPLICE_F_NONBLOCK) || (!patch_here() && !pfd_get(in) && !pfd_get(out)))
        return patch_real()->splice(in, off_in, out, off_out, len, flags);
    struct splice_args a = {in, out, off_in, off_out, flags};
    return transfer(in, out, len, 0, splice_move, &a);
}
GREEN_PATCH(splice);

static ssize_t tee_move(void *ctx, size_t left)
{
    struct splice_args *a = ctx;
    return patch_real()->tee(a->in, a->out, left, a->flags);
}

ssize_t tee(int in, int out, size_t len, unsigned int flags)
{
    if ((flags & SPLICE_F_NONBLOCK) || (!patch_here() && !pfd_get(in) && !pfd_get(out)))
        return patch_real()->tee(in, out, len, flags);
    struct splice_args a = {in, out, NULL, NULL, flags};
    return transfer(in, out, len, 0, tee_move, &a);
}
GREEN_PATCH(tee);

/* ---- copy_file_range: regular files only, so the file rule ---- */

static ssize_t cfr_job(struct patch_job *j)
{
    return patch_real()->copy_file_range((int)j->arg[0], j->arg[1] ? &j->off[0] : NULL, (int)j->arg[2],
                                         j->arg[3] ? &j->off[1] : NULL, (size_t)j->arg[4],
                                         (unsigned int)j->arg[5]);
}

static ssize_t cfr_move(void *ctx, size_t left) /* splice's arguments, the same shape */
{
    struct splice_args *a = ctx;
    return patch_real()->copy_file_range(a->in, a->off_in, a->out, a->off_out, left, a->flags);
}

ssize_t copy_file_range(int in, off64_t *off_in, int out, off64_t *off_out, size_t len, unsigned int flags)
{
    if (!files_to_pool(in, out, len)) {
        struct splice_args a = {in, out, off_in, off_out, flags};
        return move_whole(cfr_move, &a, len);
    }
    struct patch_job j = {.fn = cfr_job,
                          .arg = {in, off_in != NULL, out, off_out != NULL, (long)len, (long)flags},
                          .off = {off_in ? *off_in : 0, off_out ? *off_out : 0}};
    ssize_t r = patch_pool_call(&j);
    if (r >= 0) {
        if (off_in)
            *off_in = j.off[0];
        if (off_out)
            *off_out = j.off[1];
    }
    return r;
}
GREEN_PATCH(copy_file_range);
