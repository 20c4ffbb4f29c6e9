/*
 * futex.c — futex(2) through libc's syscall() in green pthreads (GREEN_PATCH_THREADS=1):
 * a program that builds its own locks on the futex system call (mariadbd's InnoDB: its
 * srw_lock and page latches call syscall(SYS_futex, ...)) parks the green thread, not
 * the OS thread. Before this, the first contended latch pinned the hub for good: the
 * holder, a green thread of the same hub, could never run to release it.
 *
 * A private FUTEX_WAIT or FUTEX_WAIT_BITSET of a green pthread checks the word, then
 * queues a node keyed by its address on its OS thread (queue.c, as the waits for
 * pthread objects) and parks; a private FUTEX_WAKE or FUTEX_WAKE_BITSET wakes up to n
 * such nodes of the caller's OS thread whose bits match, then hands what is left of n to
 * the kernel, for plain threads' waits, and returns the sum. A wake on another OS thread
 * cannot see the nodes: as for pthread objects, waiters look again every PQ_RECHECK_MS
 * when green threads of several OS threads share objects (GREEN_PATCH_HUBS), and return
 * 0 — a spurious wake-up, which every futex user must take (the kernel gives them too).
 * The wait is a lock's: kills and scoped timeouts wait until it ends (shield), and a
 * signal handler does not end it (the kernel restarts FUTEX_WAIT after a handler with
 * SA_RESTART; after one without, the caller would see EINTR and wait again). Its own
 * timeout ends it with ETIMEDOUT (FUTEX_WAIT's relative, FUTEX_WAIT_BITSET's absolute
 * on CLOCK_MONOTONIC, or CLOCK_REALTIME with FUTEX_CLOCK_REALTIME); a bad one, or an
 * empty bitset, is EINVAL, a word that differs EAGAIN, as the kernel says.
 *
 * To the kernel, untouched: shared (non-private) futexes, which another process may
 * wake; the other operations (requeue, wake-op, priority inheritance); plain threads'
 * calls; and every other system call made through syscall().
 */
#include "thread.h"

#include <linux/futex.h>
#include <sys/syscall.h>

/* libc's syscall(), the call handed on as it came */
static long pass(long nr, long a, long b, long c, long d, long e, long f)
{
    return patch_real()->syscall(nr, a, b, c, d, e, f);
}

static long fail(int e)
{
    errno = e;
    return -1;
}

#define FUTEX_CMD(op) ((op) & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME))

/* A relative timeout as a deadline; -2 when it is not a valid one. */
static int64_t relative(const struct timespec *ts)
{
    if (!ts)
        return -1;
    if (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000L)
        return -2;
    if (ts->tv_sec > 1000000000)
        return green_after(1000000000LL * 1000); /* as good as never */
    int64_t ms = (int64_t)ts->tv_sec * 1000 + (ts->tv_nsec + 999999) / 1000000;
    return ms == 0 ? 0 : green_after(ms);
}

static long futex_wait(uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts, uint32_t bits)
{
    int64_t deadline;
    if (FUTEX_CMD(op) == FUTEX_WAIT) {
        bits = FUTEX_BITSET_MATCH_ANY;
        deadline = relative(ts);
        if (deadline == -2)
            return fail(EINVAL);
    } else {
        deadline = -1;
        if (ts && (deadline = deadline_of((op & FUTEX_CLOCK_REALTIME) ? CLOCK_REALTIME : CLOCK_MONOTONIC, ts)) < 0)
            return fail(EINVAL);
    }
    if (!bits)
        return fail(EINVAL);
    if (__atomic_load_n(uaddr, __ATOMIC_SEQ_CST) != val)
        return fail(EAGAIN);
    if (deadline == 0)
        return fail(ETIMEDOUT);
    int saved = errno;
    struct pwait *w = pq_node(powner_self(), PQ_FUTEX);
    int sh = shield(SHIELD_ALL);
    if (w) {
        w->bits = bits;
        w->done = 0;
        pq_push(w, uaddr);
    }
    /* without a node nothing can wake it: it looks again every PQ_RECHECK_MS instead */
    int e = pq_park(deadline, w && !patch_many_hubs() ? 0 : PQ_RECHECK_MS);
    if (e == EDEADLK) /* nothing on this hub can wake it, and no other thread exists */
        e = pq_park(deadline, PQ_RECHECK_MS);
    if (w) {
        pq_remove(w);
        if (w->done)
            e = 0;
    }
    unshield(sh);
    pq_node_done(w);
    if (e == EAGAIN || e == EDEADLK)
        e = 0; /* looked again: a spurious wake-up, as the kernel may give */
    if (e)
        return fail(e);
    errno = saved;
    return 0;
}

/* Wake up to n green waiters of this OS thread on uaddr whose bits meet bits. */
static long wake_green(uint32_t *uaddr, long n, uint32_t bits)
{
    long woken = 0;
    for (struct pwait *w = pq_first(uaddr), *next; w && woken < n; w = next) {
        next = w->next;
        if (w->kind == PQ_FUTEX && (w->bits & bits)) {
            pq_remove(w);
            pq_wake(w, 0);
            woken++;
        }
    }
    return woken;
}

/* The futex calls of green pthreads; anything else: -2 (hand the call to libc). */
static __attribute__((noinline)) long futex_call(long a, long b, long c, long d, long f)
{
    uint32_t *uaddr = (uint32_t *)a;
    int op = (int)b, cmd = FUTEX_CMD(op);
    if ((cmd == FUTEX_WAIT || cmd == FUTEX_WAIT_BITSET) && green_here())
        return futex_wait(uaddr, op, (uint32_t)c, (const struct timespec *)d, (uint32_t)f);
    if (cmd != FUTEX_WAKE && cmd != FUTEX_WAKE_BITSET)
        return -2;
    uint32_t bits = cmd == FUTEX_WAKE ? FUTEX_BITSET_MATCH_ANY : (uint32_t)f;
    if (!bits)
        return fail(EINVAL);
    long woken = (int)c > 0 ? wake_green(uaddr, (int)c, bits) : 0;
    if (woken == 0)
        return -2;
    if (woken < (int)c) {
        int saved = errno;
        long r = pass(SYS_futex, a, b, (int)c - woken, d, 0, f);
        errno = saved;
        if (r > 0)
            woken += r;
    }
    return woken;
}

/* glibc's syscall() reads its arguments as longs where a call puts them (six in
 * registers, the seventh on the stack on x86-64; registers on aarch64), as a function of
 * seven longs receives them: defined so, the wrapper hands every other call on as a tail
 * call and leaves no frame behind — and no save area of stale words, which the pinning
 * detector's scan for return addresses would take for callers. */
long patch_syscall(long nr, long a, long b, long c, long d, long e, long f) __asm__("syscall")
    __attribute__((visibility("default")));
long patch_syscall(long nr, long a, long b, long c, long d, long e, long f)
{
    if (PATCH_UNLIKELY(nr == SYS_futex) && ((int)b & FUTEX_PRIVATE_FLAG) && patch_threads) {
        long r = futex_call(a, b, c, d, f);
        if (r != -2)
            return r;
    }
    return pass(nr, a, b, c, d, e, f);
}
GREEN_PATCH(syscall);
