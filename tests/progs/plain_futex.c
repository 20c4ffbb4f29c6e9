/*
 * plain_futex.c — a program's own locks on futex(2), made through libc's syscall() as
 * Rust's std, abseil and mariadbd's InnoDB make them, in a plain pthread program (no
 * libgreen). The answers must be the kernel's, plainly and under `greenrun --threads`,
 * where the threads are green threads: a FUTEX_WAIT parks the waiter, and the holder it
 * waits for — a green thread of the same hub — runs to wake it (before
 * src/patch/futex.c the wait held the OS thread and the holder never ran again).
 *
 *   plain_futex [CHECK]    (a name below, or "all": prints "ok NAME" for each)
 */
#define _GNU_SOURCE
#include "prog.h"

#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>

static long futex(uint32_t *w, int op, uint32_t val, const struct timespec *ts, uint32_t bits)
{
    return syscall(SYS_futex, w, op, val, ts, NULL, bits);
}

/* ---- a lock: 0 free, 1 held, 2 held with waiters (Drepper's "Futexes are tricky") ---- */

static void lock(uint32_t *w)
{
    uint32_t c = 0;
    if (__atomic_compare_exchange_n(w, &c, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return;
    if (c != 2)
        c = __atomic_exchange_n(w, 2, __ATOMIC_ACQUIRE);
    while (c != 0) {
        futex(w, FUTEX_WAIT_PRIVATE, 2, NULL, 0);
        c = __atomic_exchange_n(w, 2, __ATOMIC_ACQUIRE);
    }
}

static void unlock(uint32_t *w)
{
    if (__atomic_exchange_n(w, 0, __ATOMIC_RELEASE) == 2)
        futex(w, FUTEX_WAKE_PRIVATE, 1, NULL, 0);
}

static uint32_t the_lock;
static long counter;

static void *contend(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++) {
        lock(&the_lock);
        long v = counter;
        if (i % 50 == 0)
            usleep(2000); /* holding it: the others wait in FUTEX_WAIT meanwhile */
        counter = v + 1;
        unlock(&the_lock);
    }
    return NULL;
}

/* four threads take the lock in turn, sleeping while they hold it now and then: the
 * count is exact and the ticker ran while they waited */
static void check_lock(void)
{
    pthread_t t[4];
    long t0 = ticks_now();
    for (int i = 0; i < 4; i++)
        CHECK_EQ(pthread_create(&t[i], NULL, contend, NULL), 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(pthread_join(t[i], NULL), 0);
    CHECK_EQ(counter, 800);
    CHECK_EQ(the_lock, 0);
    CHECK(TICKED(t0));
}

/* ---- waking counts ---- */

static uint32_t words[3];
static int parked;

static void *wait_word(void *arg)
{
    uint32_t *w = arg;
    __atomic_add_fetch(&parked, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(w, __ATOMIC_SEQ_CST) == 0)
        futex(w, FUTEX_WAIT_PRIVATE, 0, NULL, 0);
    return NULL;
}

/* three waiters on one word: FUTEX_WAKE returns how many it woke; a word nobody waits
 * on wakes none */
static void check_wake(void)
{
    pthread_t t[3];
    parked = 0;
    words[0] = 0;
    for (int i = 0; i < 3; i++)
        CHECK_EQ(pthread_create(&t[i], NULL, wait_word, &words[0]), 0);
    while (__atomic_load_n(&parked, __ATOMIC_SEQ_CST) < 3)
        usleep(1000);
    ticks_wait(50); /* each is in its FUTEX_WAIT by now */
    CHECK_EQ(futex(&words[1], FUTEX_WAKE_PRIVATE, INT_MAX, NULL, 0), 0);
    __atomic_store_n(&words[0], 1, __ATOMIC_SEQ_CST);
    CHECK_EQ(futex(&words[0], FUTEX_WAKE_PRIVATE, 2, NULL, 0), 2);
    CHECK_EQ(futex(&words[0], FUTEX_WAKE_PRIVATE, INT_MAX, NULL, 0), 1);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(pthread_join(t[i], NULL), 0);
    CHECK_EQ(futex(&words[0], FUTEX_WAKE_PRIVATE, 1, NULL, 0), 0);
}

/* ---- bitsets ---- */

static void *wait_bits(void *arg)
{
    (void)arg;
    __atomic_add_fetch(&parked, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&words[2], __ATOMIC_SEQ_CST) == 0)
        futex(&words[2], FUTEX_WAIT_BITSET_PRIVATE, 0, NULL, 1u << 3);
    return NULL;
}

/* a FUTEX_WAIT_BITSET waiter is woken only by a wake whose bits meet its own */
static void check_bitset(void)
{
    pthread_t t;
    parked = 0;
    CHECK_EQ(pthread_create(&t, NULL, wait_bits, NULL), 0);
    while (__atomic_load_n(&parked, __ATOMIC_SEQ_CST) < 1)
        usleep(1000);
    ticks_wait(50);
    CHECK_EQ(futex(&words[2], FUTEX_WAKE_BITSET_PRIVATE, INT_MAX, NULL, 1u << 4), 0);
    __atomic_store_n(&words[2], 1, __ATOMIC_SEQ_CST);
    CHECK_EQ(futex(&words[2], FUTEX_WAKE_BITSET_PRIVATE, INT_MAX, NULL, (1u << 3) | 1), 1);
    CHECK_EQ(pthread_join(t, NULL), 0);
}

/* ---- timeouts and bad input, as the kernel answers them ---- */

static void check_errors(void)
{
    uint32_t w = 5;
    CHECK_ERR(futex(&w, FUTEX_WAIT_PRIVATE, 4, NULL, 0), EAGAIN); /* the word differs */
    struct timespec rel = {0, 20 * 1000000};
    long t0 = ticks_now();
    CHECK_ERR(futex(&w, FUTEX_WAIT_PRIVATE, 5, &rel, 0), ETIMEDOUT);
    CHECK(TICKED(t0));
    struct timespec now, abs;
    clock_gettime(CLOCK_MONOTONIC, &now);
    abs = now;
    abs.tv_nsec += 20 * 1000000;
    if (abs.tv_nsec >= 1000000000) {
        abs.tv_sec++;
        abs.tv_nsec -= 1000000000;
    }
    CHECK_ERR(futex(&w, FUTEX_WAIT_BITSET_PRIVATE, 5, &abs, FUTEX_BITSET_MATCH_ANY), ETIMEDOUT);
    struct timespec past = {0, 0};
    CHECK_ERR(futex(&w, FUTEX_WAIT_BITSET_PRIVATE | FUTEX_CLOCK_REALTIME, 5, &past, FUTEX_BITSET_MATCH_ANY),
              ETIMEDOUT);
    struct timespec bad = {0, 1000000000};
    CHECK_ERR(futex(&w, FUTEX_WAIT_PRIVATE, 5, &bad, 0), EINVAL);
    CHECK_ERR(futex(&w, FUTEX_WAIT_BITSET_PRIVATE, 5, NULL, 0), EINVAL); /* no bits */
    CHECK_ERR(futex(&w, FUTEX_WAKE_BITSET_PRIVATE, 1, NULL, 0), EINVAL);
    CHECK_EQ(w, 5);
}

int main(int argc, char **argv)
{
    static const struct prog_test tests[] = {
        {"lock", check_lock},
        {"wake", check_wake},
        {"bitset", check_bitset},
        {"errors", check_errors},
    };
    return prog_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
