/*
 * file.c — regular files in a green thread: pread pwrite preadv pwritev preadv2 pwritev2
 * (and their 64 names and fortified forms), fsync fdatasync, and the locks that wait
 * for another process: flock, lockf(F_LOCK), fcntl(F_SETLKW, F_OFD_SETLKW).
 *
 * No poller can wait for a regular file, so there are only three ways to make its call:
 * inline on the hub's thread (it blocks every green thread of the hub for as long as it
 * takes), on libgreen's thread pool (a round trip to another OS thread), or by io_uring
 * (when the hub polls with it, GREEN_POLLER=uring). bench/file_rule.c measured them
 * (docs/patch.md has the table): a page-cache hit costs 0.6-1 µs (4 KiB) to 3-6 µs
 * (64 KiB) inline, 11-40 µs through the pool, 3-10 µs (reads) and 9-27 µs (writes)
 * through io_uring; a page-cache miss on a virtio disk 100-170 µs; an fsync 40-130 µs.
 * Hence the rule (GREEN_PATCH_FILES, io.h):
 *  - reads and writes of regular files under GREEN_PATCH_FILES_BIG bytes (1 MiB) run
 *    inline: most are page-cache hits, and a pool round trip costs ten times one;
 *  - a call of 1 MiB or more goes to the pool, on the caller's own buffers: inline it
 *    holds the hub ~0.1 ms at best (a page-cache hit) and for as long as the disk takes
 *    at worst (a 3 MiB write on a loaded CI disk held it 105 ms), and the round trip adds
 *    5-40% to a 1 MiB hit (read 95-97 -> 114-133 µs, write 160-182 -> 165-216 µs). Without a bounce buffer the hub's thread copies nothing, so the
 *    caller must stay until the call ends: kills, cancellation and scoped deadlines are
 *    held meanwhile (rw_big), as the kernel holds a thread in a regular file's I/O. A
 *    shared-stack green thread (its stack copied away while it waits) takes the bounce
 *    path below instead;
 *  - GREEN_PATCH_FILES=inline makes every call inline; =pool sends every one off the
 *    hub's thread — to io_uring when the hub polls with it, else to the pool, through a
 *    bounce buffer (green_private_file_io) — for programs whose files are cold or slow
 *    (network file systems), at that price per call; read, readv, write and writev of
 *    regular files (io.c) follow the rule too (an O_DIRECT file stays inline: its
 *    transfers need the caller's aligned buffer);
 *  - fsync and fdatasync always go to the pool: their cost is the disk's, and the
 *    round trip is small beside it;
 *  - a lock that another process holds (flock, lockf, F_SETLKW, F_OFD_SETLKW) is waited
 *    for by retrying the non-blocking form (LOCK_NB, F_TLOCK, F_SETLK, F_OFD_SETLK) with
 *    a back-off from 1 to 50 ms, so the lock is always taken by the caller's own thread
 *    (it belongs to the process or open file description exactly as the real call's),
 *    a kill or scoped deadline ends the wait at once and leaves no lock request behind
 *    (a blocking request on a pool thread could not be withdrawn: it would take the lock
 *    later, for nobody, and each abandoned wait would hold a pool thread), and any
 *    number of green threads can wait without using up the pool. The price: up to 50 ms
 *    of latency once the lock is free, no queueing behind other waiters, and no EDEADLK
 *    (a deadlock between processes waits for a kill or a deadline).
 * Calls from a thread without a hub go straight to libc, as everywhere in the library.
 */
#include "io.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/* ---- the rule ---- */

enum { FILES_SIZE, FILES_INLINE, FILES_POOL };
static int files_mode = -1;                    /* read on first use */
static size_t files_big = FILES_BIG_DEFAULT;   /* written before files_mode */

static int files_mode_get(void)
{
    int m = __atomic_load_n(&files_mode, __ATOMIC_ACQUIRE);
    if (PATCH_LIKELY(m >= 0))
        return m;
    extern char **environ;
    if (!environ) /* a sanitizer's pre-init, before libc's own: ask again later */
        return FILES_INLINE;
    const char *v = getenv("GREEN_PATCH_FILES");
    m = v && strcmp(v, "pool") == 0 ? FILES_POOL : v && strcmp(v, "inline") == 0 ? FILES_INLINE : FILES_SIZE;
    const char *b = getenv("GREEN_PATCH_FILES_BIG");
    if (b && *b >= '0' && *b <= '9') { /* not a number: the default */
        size_t big = patch_env_size(b);
        files_big = big ? big : SIZE_MAX; /* 0: no call is big */
    }
    __atomic_store_n(&files_mode, m, __ATOMIC_RELEASE);
    return m;
}

/* ---- waits that poll ---- */

int patch_backoff(int64_t *ms, struct patch_intr **in)
{
    patch_parking();
    if (patch_intr_park(in, PATCH_INTR_RESTART, NULL) != 0 || green_sleep(*ms) != 0)
        return -1;
    *ms = *ms * 2 > PATCH_BACKOFF_MAX_MS ? PATCH_BACKOFF_MAX_MS : *ms * 2;
    return 0;
}

/* ---- calls on the pool ---- */

static void *job_run(void *arg)
{
    struct patch_job *j = arg;
    errno = 0;
    j->res = j->fn(j);
    j->err = errno;
    return NULL;
}

static void job_drop(void *arg, void *result)
{
    (void)result;
    free(arg);
}

ssize_t patch_pool_call(struct patch_job *j)
{
    struct patch_job *heap = malloc(sizeof *heap);
    if (!heap) {
        errno = ENOMEM;
        return -1;
    }
    *heap = *j;
    patch_parking();
    if (green_private_pool_run(job_run, heap, NULL, job_drop) != 0)
        return -1; /* the job is left to job_drop */
    j->res = heap->res;
    j->err = heap->err;
    memcpy(j->off, heap->off, sizeof j->off);
    free(heap);
    if (j->res < 0)
        errno = j->err;
    return j->res;
}

/* ---- reads and writes ---- */

/* green_private_file_io moves at most this much a call */
#define FILE_CHUNK ((size_t)1 << 20)

/* The call itself on a pool thread, with the caller's iovec and buffers. */
static ssize_t rw_job(struct patch_job *j)
{
    int fd = (int)j->arg[0], cnt = (int)j->arg[3];
    const struct iovec *iov = (const struct iovec *)j->arg[2];
    off_t off = j->off[0];
    if (j->arg[1])
        return off < 0 ? patch_real()->writev(fd, iov, cnt) : patch_real()->pwritev(fd, iov, cnt, off);
    return off < 0 ? patch_real()->readv(fd, iov, cnt) : patch_real()->preadv(fd, iov, cnt, off);
}

/* 1 when the caller's memory stays where it is while it waits: not a shared-stack green
 * thread (whose stack, where its buffer may be, is copied away meanwhile). */
static int buffers_stay(void)
{
    green_t self = green_current();
    void *lo;
    size_t size;
    int detached;
    return self == green_root() || (green_private_attr(self, &lo, &size, &detached) == 0 && lo != NULL);
}

/* A big call (files_big bytes or more) on the pool, made on the caller's own buffers: no
 * bounce buffer, so no copy on the hub's thread (as long as the kernel's); the caller
 * waits for its end whatever comes, as a thread in a regular file's I/O waits (kills,
 * cancellation and scoped deadlines act after it; a handler's signal does not end it).
 * -2 when the pool could not take it (the caller then makes it inline). */
static ssize_t rw_big(int fd, int write, const struct iovec *iov, int cnt, off_t off)
{
    if (green_private_shield_push(GREEN_SHIELD_KILLS | GREEN_SHIELD_TIMEOUTS) != 0)
        return -2;
    int e = errno;
    struct patch_job j = {.fn = rw_job, .arg = {fd, write, (long)(uintptr_t)iov, cnt}, .off = {off}};
    ssize_t r = patch_pool_call(&j);
    int err = errno;
    green_private_shield_pop(GREEN_SHIELD_KILLS | GREEN_SHIELD_TIMEOUTS);
    if (r < 0 && j.res >= 0) /* the pool's own failure (ENOMEM): not the call's */
        return -2;
    errno = r < 0 ? err : e;
    return r;
}

ssize_t patch_file_rw(int fd, int write, const struct iovec *iov, int cnt, off_t off)
{
    int e = errno;
    size_t total = patch_iov_bytes(iov, cnt), done = 0;
    if (total == 0) /* nothing to move: the call itself still checks the fd */
        return green_private_file_io(fd, write, NULL, 0, off);
    patch_parking();
    if (total >= files_big && buffers_stay()) {
        ssize_t r = rw_big(fd, write, iov, cnt, off);
        if (r != -2)
            return r;
        errno = e; /* the pool is out of reach: the call, inline */
        if (write)
            return off < 0 ? patch_real()->writev(fd, iov, cnt) : patch_real()->pwritev(fd, iov, cnt, off);
        return off < 0 ? patch_real()->readv(fd, iov, cnt) : patch_real()->preadv(fd, iov, cnt, off);
    }
    for (int i = 0; i < cnt; i++) {
        for (size_t at = 0; at < iov[i].iov_len;) {
            size_t want = iov[i].iov_len - at < FILE_CHUNK ? iov[i].iov_len - at : FILE_CHUNK;
            ssize_t r = green_private_file_io(fd, write, (char *)iov[i].iov_base + at, want,
                                              off < 0 ? -1 : off + (off_t)done);
            if (r < 0) {
                if (!done && errno == ECANCELED)
                    patch_testcancel();
                return done ? (ssize_t)done : -1;
            }
            done += (size_t)r;
            at += (size_t)r;
            if ((size_t)r < want) { /* end of file, or a short write: as the call says */
                errno = e;
                return (ssize_t)done;
            }
        }
    }
    errno = e;
    return (ssize_t)done;
}

int patch_file_offload(int fd, size_t bytes)
{
    int m = files_mode_get();
    if (PATCH_LIKELY(m == FILES_INLINE) || (m == FILES_SIZE && bytes < files_big) || !patch_here())
        return 0;
    int s = pfd_learn(fd);
    if (s <= 0 || !(s & PFD_FILE))
        return 0;
    /* O_DIRECT wants the caller's aligned buffer, not the hand-off's bounce buffer */
    int e = errno, fl = patch_real()->fcntl(fd, F_GETFL);
    errno = e;
    return fl >= 0 && !(fl & O_DIRECT);
}

static int iov_ok(int cnt) { return cnt >= 0 && cnt <= IOV_MAX; }

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    patch_cancel_point();
    if (off < 0 || !patch_file_offload(fd, n))
        return patch_real()->pread(fd, buf, n, off);
    struct iovec iov = {buf, n};
    return patch_file_rw(fd, 0, &iov, 1, off);
}
GREEN_PATCH(pread);

ssize_t pread64(int fd, void *buf, size_t n, off64_t off) { return pread(fd, buf, n, off); }
GREEN_PATCH(pread64);

ssize_t __pread64(int fd, void *buf, size_t n, off64_t off) { return pread(fd, buf, n, off); }
GREEN_PATCH(__pread64);

ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
    if (n > buflen)
        __chk_fail();
    return pread(fd, buf, n, off);
}
GREEN_PATCH(__pread_chk);

ssize_t __pread64_chk(int fd, void *buf, size_t n, off64_t off, size_t buflen)
{
    return __pread_chk(fd, buf, n, off, buflen);
}
GREEN_PATCH(__pread64_chk);

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    patch_cancel_point();
    if (off < 0 || !patch_file_offload(fd, n))
        return patch_real()->pwrite(fd, buf, n, off);
    struct iovec iov = {(void *)buf, n};
    return patch_file_rw(fd, 1, &iov, 1, off);
}
GREEN_PATCH(pwrite);

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off) { return pwrite(fd, buf, n, off); }
GREEN_PATCH(pwrite64);

ssize_t __pwrite64(int fd, const void *buf, size_t n, off64_t off) { return pwrite(fd, buf, n, off); }
GREEN_PATCH(__pwrite64);

ssize_t preadv(int fd, const struct iovec *iov, int cnt, off_t off)
{
    patch_cancel_point();
    if (off < 0 || !iov_ok(cnt) || !patch_file_offload(fd, patch_iov_bytes(iov, cnt)))
        return patch_real()->preadv(fd, iov, cnt, off);
    return patch_file_rw(fd, 0, iov, cnt, off);
}
GREEN_PATCH(preadv);

ssize_t preadv64(int fd, const struct iovec *iov, int cnt, off64_t off)
{
    return preadv(fd, iov, cnt, off);
}
GREEN_PATCH(preadv64);

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    patch_cancel_point();
    if (off < 0 || !iov_ok(cnt) || !patch_file_offload(fd, patch_iov_bytes(iov, cnt)))
        return patch_real()->pwritev(fd, iov, cnt, off);
    return patch_file_rw(fd, 1, iov, cnt, off);
}
GREEN_PATCH(pwritev);

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off64_t off)
{
    return pwritev(fd, iov, cnt, off);
}
GREEN_PATCH(pwritev64);

/* The v2 calls: offset -1 is the file's position; with flags (RWF_NOWAIT, RWF_DSYNC,
 * ...) they are libc's, inline. */
ssize_t preadv2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    patch_cancel_point();
    if (flags || off < -1 || !iov_ok(cnt) || !patch_file_offload(fd, patch_iov_bytes(iov, cnt)))
        return patch_real()->preadv2(fd, iov, cnt, off, flags);
    return patch_file_rw(fd, 0, iov, cnt, off);
}
GREEN_PATCH(preadv2);

ssize_t preadv64v2(int fd, const struct iovec *iov, int cnt, off64_t off, int flags)
{
    return preadv2(fd, iov, cnt, off, flags);
}
GREEN_PATCH(preadv64v2);

ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    patch_cancel_point();
    if (flags || off < -1 || !iov_ok(cnt) || !patch_file_offload(fd, patch_iov_bytes(iov, cnt)))
        return patch_real()->pwritev2(fd, iov, cnt, off, flags);
    return patch_file_rw(fd, 1, iov, cnt, off);
}
GREEN_PATCH(pwritev2);

ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off64_t off, int flags)
{
    return pwritev2(fd, iov, cnt, off, flags);
}
GREEN_PATCH(pwritev64v2);

/* ---- fsync and fdatasync: on the pool ---- */

static ssize_t sync_call(struct patch_job *j)
{
    int fd = (int)j->arg[0];
    return j->arg[1] ? patch_real()->fdatasync(fd) : patch_real()->fsync(fd);
}

/* A file's sync on the pool; anything else (a pipe, a socket: EINVAL; a bad fd) inline. */
static int sync_file(int fd, int data)
{
    patch_cancel_point();
    int s;
    if (!patch_here() || (s = pfd_learn(fd)) <= 0 || !(s & PFD_FILE))
        return data ? patch_real()->fdatasync(fd) : patch_real()->fsync(fd);
    int e = errno;
    struct patch_job j = {.fn = sync_call, .arg = {fd, data}};
    if (patch_pool_call(&j) < 0) {
        if (errno == ECANCELED)
            patch_testcancel();
        return -1;
    }
    errno = e;
    return 0;
}

int fsync(int fd) { return sync_file(fd, 0); }
GREEN_PATCH(fsync);

int fdatasync(int fd) { return sync_file(fd, 1); }
GREEN_PATCH(fdatasync);

/* ---- locks: the non-blocking form, retried ---- */

/* One non-blocking attempt: 0, or -1 + errno (EAGAIN, EWOULDBLOCK or EACCES: held). */
typedef int lock_try_fn(int fd, long a, void *p);

/* Until try takes the lock (0) or fails for another reason than a conflict (-1 + its
 * errno), or the wait ends (-1 + ETIMEDOUT, ECANCELED, EINTR when a handler without
 * SA_RESTART runs: these calls are restartable). The first attempt is made even by a
 * killed green thread: a call that needs no wait completes. */
static int lock_wait(lock_try_fn *try, int fd, long a, void *p);

/* The same at a cancellation point (F_SETLKW, lockf's F_LOCK; flock is none). */
static int lock_wait_cancel(lock_try_fn *try, int fd, long a, void *p)
{
    int r = lock_wait(try, fd, a, p);
    if (r != 0 && errno == ECANCELED)
        patch_testcancel();
    return r;
}

static int lock_wait(lock_try_fn *try, int fd, long a, void *p)
{
    int e = errno;
    int64_t backoff = 1;
    struct patch_intr *in = NULL;
    int r;
    while ((r = try(fd, a, p)) != 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EACCES) &&
           patch_backoff(&backoff, &in) == 0)
        ;
    patch_intr_end(&in);
    if (r == 0)
        errno = e;
    return r;
}

static int flock_try(int fd, long op, void *p)
{
    (void)p;
    return patch_real()->flock(fd, (int)op | LOCK_NB);
}

int flock(int fd, int op)
{
    if (!patch_here() || (op & LOCK_NB) || op == LOCK_UN)
        return patch_real()->flock(fd, op);
    return lock_wait(flock_try, fd, op, NULL);
}
GREEN_PATCH(flock);

static int lockf_try(int fd, long len, void *p)
{
    (void)p;
    return patch_real()->lockf(fd, F_TLOCK, (off_t)len);
}

int lockf(int fd, int cmd, off_t len)
{
    if (cmd == F_LOCK) /* (the one that waits: fcntl's F_SETLKW underneath) */
        patch_cancel_point();
    if (!patch_here() || cmd != F_LOCK)
        return patch_real()->lockf(fd, cmd, len);
    return lock_wait_cancel(lockf_try, fd, (long)len, NULL);
}
GREEN_PATCH(lockf);

int lockf64(int fd, int cmd, off64_t len) { return lockf(fd, cmd, len); }
GREEN_PATCH(lockf64);

static int fcntl_try(int fd, long cmd, void *lock) { return patch_real()->fcntl(fd, (int)cmd, lock); }

/* The non-blocking form of a waiting lock command, or 0 when cmd is none. */
static int lock_cmd_nb(int cmd)
{
    return cmd == F_SETLKW ? F_SETLK : cmd == F_SETLKW64 ? F_SETLK64 : cmd == F_OFD_SETLKW ? F_OFD_SETLK : 0;
}

int patch_fcntl_is_lock(int cmd) { return lock_cmd_nb(cmd) != 0; }

int patch_fcntl_lock(int fd, int cmd, void *arg)
{
    patch_cancel_point();
    if (!patch_here())
        return patch_real()->fcntl(fd, cmd, arg);
    return lock_wait_cancel(fcntl_try, fd, lock_cmd_nb(cmd), arg);
}
