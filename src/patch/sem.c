/*
 * sem.c — unnamed POSIX semaphores for green threads (GREEN_PATCH_THREADS=1).
 *
 * A sem_t keeps glibc's layout (64-bit: the value in the low half of `data`, glibc's
 * sleeping plain threads in the high half, `private`) and glibc's own sem_post,
 * sem_trywait, sem_getvalue and sem_destroy serve everybody: a green thread takes a
 * token with glibc's compare-and-swap, and a post wakes plain sleepers through glibc's
 * futex. What green threads add is in the `pad` word glibc leaves alone (sem_init here
 * clears it): how many green threads wait.
 *
 * A post may come from anywhere — a green thread, a plain thread, another OS thread's
 * hub, a signal handler (sem_post is async-signal-safe) — and a parked green thread can
 * only be woken by its own OS thread. So a post that finds green waiters only kicks:
 * each OS thread with green semaphore waiters has an eventfd in a process-wide table,
 * and the post writes 1 to each (an atomic flag per entry coalesces kicks not yet read;
 * writes and atomics are all a signal handler may do). On each such OS thread one
 * waiting green thread, the leader, waits on its eventfd; the others park in the
 * semaphore's queue (queue.c). Kicked, the leader drains the eventfd, then, for every
 * semaphore its OS thread's green threads wait on, wakes as many as it has tokens;
 * those woken try again (a token taken by someone else first: they wait again). A
 * leader that leaves wakes another waiter to lead. Without an eventfd (none could be
 * made, or the table is full) waiters look again every PQ_RECHECK_MS. A fork child
 * forgets the table: its eventfds are the parent's, whose kicks it must not take.
 *
 * sem_wait, sem_timedwait and sem_clockwait are cancellation points; scoped timeouts do
 * not end them. A process-shared semaphore (pshared 1, or named) is glibc's: a green
 * thread waiting on one blocks its OS thread.
 */
#include "thread.h"

#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

/* glibc's struct new_sem where it has 64-bit atomics (nptl/internaltypes.h) */
struct psem {
    uint64_t data;             /* value: low 32 bits; glibc's sleeping plain threads: high */
    int private;               /* 0, or FUTEX_PRIVATE_FLAG when process-shared (glibc's
                                * LLL_SHARED: its futex calls xor the flag in) */
    int pad;                   /* green threads waiting (ours) */
};
_Static_assert(sizeof(struct psem) <= sizeof(sem_t), "glibc's semaphore layout");
_Static_assert(sizeof(long) == 8 && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the value is the low half of data");

static struct psem *ps(sem_t *s) { return (struct psem *)(void *)s; }
static unsigned value(sem_t *s) { return (unsigned)__atomic_load_n(&ps(s)->data, __ATOMIC_ACQUIRE); }

/* Take a token if there is one: 1, else 0. */
static int take(sem_t *s)
{
    uint64_t d = __atomic_load_n(&ps(s)->data, __ATOMIC_RELAXED);
    while ((unsigned)d > 0)
        if (__atomic_compare_exchange_n(&ps(s)->data, &d, d - 1, 1, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return 1;
    return 0;
}

/* ---- kicks ---- */

#define KICK_SLOTS 64
static int kick_fd[KICK_SLOTS];     /* eventfd + 1 of an OS thread with green waiters; 0 free */
static int kick_sent[KICK_SLOTS];   /* written to, not yet read */
static __thread int my_slot = -1;   /* this OS thread's slot; -2: none to be had */
static __thread int leading;        /* one of this OS thread's green threads is the leader */
static pthread_key_t slot_key;
static int slot_key_made;           /* 0 no, 1 being made, 2 made */

/* Any thread, signal handlers included: tell every registered OS thread to look. */
static void kick_all(void)
{
    for (int i = 0; i < KICK_SLOTS; i++) {
        int f = __atomic_load_n(&kick_fd[i], __ATOMIC_ACQUIRE);
        if (f && !__atomic_exchange_n(&kick_sent[i], 1, __ATOMIC_ACQ_REL)) {
            uint64_t one = 1;
            ssize_t r = patch_real()->write(f - 1, &one, sizeof one);
            (void)r; /* EAGAIN: the counter is full of kicks already */
        }
    }
}

/* At the exit of an OS thread that had a slot: give it back. */
static void slot_release(void *arg)
{
    int i = (int)(intptr_t)arg - 1;
    int f = __atomic_exchange_n(&kick_fd[i], 0, __ATOMIC_ACQ_REL);
    __atomic_store_n(&kick_sent[i], 0, __ATOMIC_RELEASE);
    if (f)
        patch_real()->close(f - 1);
}

/* In a fork child (the forking thread, alone): every entry is the parent's. */
static void kicks_forget(void)
{
    for (int i = 0; i < KICK_SLOTS; i++) {
        int f = kick_fd[i];
        kick_fd[i] = kick_sent[i] = 0;
        if (f)
            patch_real()->close(f - 1);
    }
    my_slot = -1;
    leading = 0;
}

/* The key that gives a slot back at thread exit, and the fork handler: once. */
static int kicks_setup(void)
{
    int expect = 0;
    if (__atomic_compare_exchange_n(&slot_key_made, &expect, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        int ok = patch_real()->pthread_key_create(&slot_key, slot_release) == 0 &&
                 pthread_atfork(NULL, NULL, kicks_forget) == 0;
        __atomic_store_n(&slot_key_made, ok ? 2 : 3, __ATOMIC_RELEASE);
    }
    return __atomic_load_n(&slot_key_made, __ATOMIC_ACQUIRE) == 2;
}

/* This OS thread's eventfd, registered on first use; -1 when it cannot have one. */
static int my_kick_fd(void)
{
    if (my_slot >= 0)
        return kick_fd[my_slot] - 1;
    if (my_slot == -2 || !kicks_setup())
        return -1;
    int saved = errno;
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    errno = saved;
    for (int i = 0; fd >= 0 && i < KICK_SLOTS; i++) {
        int free_slot = 0;
        if (__atomic_compare_exchange_n(&kick_fd[i], &free_slot, fd + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            my_slot = i;
            patch_real()->pthread_setspecific(slot_key, (void *)(intptr_t)(i + 1));
            return fd;
        }
    }
    if (fd >= 0)
        patch_real()->close(fd);
    my_slot = -2;
    return -1;
}

/* Wake as many of first's semaphore's waiters here as it has tokens. */
static void serve(struct pwait *first, void *arg)
{
    (void)arg;
    sem_t *s = (sem_t *)first->obj;
    struct pwait *w;
    for (unsigned n = value(s); n > 0 && (w = pq_pop(s)); n--)
        pq_wake(w, 0);
}

/* Wake one waiter to lead (arg: set once one is). */
static void promote(struct pwait *first, void *arg)
{
    if (*(int *)arg)
        return;
    *(int *)arg = 1;
    pq_wake(pq_pop(first->obj), 0);
}

/* The leader: wait for a kick on fd, then serve this OS thread's waiters. */
static int lead(int fd, int64_t deadline)
{
    leading = 1;
    int saved = errno;
    int e = green_wait_fd(fd, GREEN_READ, deadline) > 0 ? 0 : errno;
    errno = saved;
    if (e == 0) {
        uint64_t n;
        ssize_t r = patch_real()->read(fd, &n, sizeof n); /* drained before the flag is cleared */
        (void)r;
        __atomic_store_n(&kick_sent[my_slot], 0, __ATOMIC_SEQ_CST);
        pq_each(PQ_SEM, serve, NULL);
    }
    leading = 0;
    int promoted = 0;
    pq_each(PQ_SEM, promote, &promoted);
    return e;
}

/* Wait until s may have a token for the caller (registered in s's pad), the deadline or
 * a kill: 0 (look again), ETIMEDOUT, ECANCELED. */
static int park(sem_t *s, struct pwait *w, int64_t deadline)
{
    int fd = w ? my_kick_fd() : -1, e = 0;
    if (fd < 0) {
        e = pq_park(deadline, PQ_RECHECK_MS);
    } else if (!leading) {
        e = lead(fd, deadline);
    } else {
        pq_push(w, s);
        while (!w->done && (e = pq_park(deadline, 0)) == 0)
            ;
        pq_remove(w);
        if (w->done)
            e = 0;
    }
    return e == EAGAIN ? 0 : e;
}

/* sem_wait until the deadline (-1 none): 0 or an error number. A cancellation point. */
static int wait_until(sem_t *s, int64_t deadline)
{
    patch_cancel_point();
    if (take(s))
        return 0;
    struct pwait *w = pq_node(powner_self(), PQ_SEM);
    int sh = shield(GREEN_SHIELD_TIMEOUTS), e;
    for (;;) {
        if (take(s)) {
            e = 0;
            break;
        }
        /* count ourselves, then look: a post adds its token, then looks at the count
         * (sequentially consistent both ways: one of the two sees the other) */
        __atomic_add_fetch(&ps(s)->pad, 1, __ATOMIC_SEQ_CST);
        e = (unsigned)__atomic_load_n(&ps(s)->data, __ATOMIC_SEQ_CST) ? 0 : park(s, w, deadline);
        __atomic_sub_fetch(&ps(s)->pad, 1, __ATOMIC_SEQ_CST);
        if (e == ETIMEDOUT)
            e = take(s) ? 0 : ETIMEDOUT;
        if (e)
            break;
    }
    unshield(sh);
    pq_node_done(w);
    if (e == ECANCELED)
        patch_testcancel();
    return e;
}

static int fail(int e)
{
    if (!e)
        return 0;
    errno = e;
    return -1;
}

/* Green threads wait on s themselves: thread patching on, a green caller, not shared. */
static int green_sem(sem_t *s) { return patch_threads && green_here() && ps(s)->private == 0; }

int sem_init(sem_t *s, int pshared, unsigned value)
{
    if (patch_threads)
        memset(s, 0, sizeof *s); /* glibc leaves pad as it was */
    return patch_real()->sem_init(s, pshared, value);
}
GREEN_PATCH_THREAD(sem_init);

int sem_post(sem_t *s)
{
    int r = patch_real()->sem_post(s);
    /* the token, then the look at pad: a read-modify-write, ordered after glibc's */
    if (r == 0 && patch_threads && __atomic_fetch_add(&ps(s)->pad, 0, __ATOMIC_SEQ_CST) > 0)
        kick_all();
    return r;
}
GREEN_PATCH_THREAD(sem_post);

int sem_wait(sem_t *s)
{
    if (!green_sem(s))
        return patch_real()->sem_wait(s);
    return fail(wait_until(s, -1));
}
GREEN_PATCH_THREAD(sem_wait);

int sem_timedwait(sem_t *restrict s, const struct timespec *restrict abs)
{
    if (!green_sem(s))
        return patch_real()->sem_timedwait(s, abs);
    int64_t d = deadline_of(CLOCK_REALTIME, abs);
    return fail(d < 0 ? EINVAL : wait_until(s, d));
}
GREEN_PATCH_THREAD(sem_timedwait);

int sem_clockwait(sem_t *restrict s, clockid_t clk, const struct timespec *restrict abs)
{
    if (!green_sem(s))
        return patch_real()->sem_clockwait(s, clk, abs);
    int64_t d = deadline_of(clk, abs);
    return fail(d < 0 ? EINVAL : wait_until(s, d));
}
GREEN_PATCH_THREAD(sem_clockwait);
