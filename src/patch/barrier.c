/*
 * barrier.c — pthread barriers and spin locks for green threads (GREEN_PATCH_THREADS=1).
 *
 * Barriers. The pthread_barrier_t keeps glibc's fields (in, current_round, count,
 * shared, out; pthread_barrier_init is glibc's, after the rest of the bytes are
 * cleared), with green threads' own use of two of them: `in` counts the arrivals of the
 * current round and `current_round` numbers the rounds, both in one 64-bit word changed
 * by compare-and-swap. The arrival that completes a round starts the next one, wakes
 * every green thread waiting for it (queue.c) and gets PTHREAD_BARRIER_SERIAL_THREAD;
 * exactly one per round does. A wait is no cancellation point: kills and
 * green_timeout_push scopes do not end it. glibc's own algorithm gives those words
 * another meaning, so one barrier waited on by green threads and by plain threads is
 * not supported. Destroy is EBUSY while green threads wait, else glibc's.
 *
 * Spin locks are glibc's word (its encoding is per architecture: x86-64 counts down
 * from 1) and glibc's trylock, unlock, init and destroy serve as they are, for green and
 * plain threads alike. Only the lock differs: a spin between green threads of one OS
 * thread could never end, so a green thread tries glibc's trylock and, while the lock
 * is held, yields to the others (and sleeps 1 ms after every 64 rounds, in case the
 * holder is parked).
 */
#include "thread.h"

#include <string.h>

/* glibc's struct pthread_barrier (nptl/pthread_barrier_*.c) */
struct pbarrier {
    unsigned in;               /* with current_round: the word below */
    unsigned current_round;
    unsigned count;
    int shared;
    unsigned out;
};
_Static_assert(sizeof(struct pbarrier) <= sizeof(pthread_barrier_t), "glibc's barrier layout");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "in is the low half of the word");

static struct pbarrier *pb(pthread_barrier_t *b) { return (struct pbarrier *)(void *)b; }
static uint64_t *word(pthread_barrier_t *b) { return (uint64_t *)(void *)&pb(b)->in; }
static unsigned round_of(uint64_t w) { return (unsigned)(w >> 32); }

int pthread_barrier_init(pthread_barrier_t *restrict b, const pthread_barrierattr_t *restrict attr,
                         unsigned count)
{
    if (patch_threads)
        memset(b, 0, sizeof *b); /* glibc leaves the bytes past its fields as they were */
    return patch_real()->pthread_barrier_init(b, attr, count);
}
GREEN_PATCH_THREAD(pthread_barrier_init);

int pthread_barrier_destroy(pthread_barrier_t *b)
{
    if (patch_threads && green_here() && pq_first(b))
        return EBUSY;
    return patch_real()->pthread_barrier_destroy(b);
}
GREEN_PATCH_THREAD(pthread_barrier_destroy);

/* Arrive: 1 when this arrival completes the round (which then starts the next), 0 when
 * it must wait for the end of round *round. */
static int arrive(pthread_barrier_t *b, unsigned *round)
{
    uint64_t w = __atomic_load_n(word(b), __ATOMIC_RELAXED), next;
    unsigned count = pb(b)->count;
    int last;
    do {
        *round = round_of(w);
        last = (unsigned)w + 1 >= count;
        next = last ? (uint64_t)(*round + 1) << 32 : w + 1;
    } while (!__atomic_compare_exchange_n(word(b), &w, next, 1, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
    return last;
}

/* Wait until round `round` of b is over. Only its end (or the root's deadlock) ends it. */
static void wait_round(pthread_barrier_t *b, unsigned round)
{
    struct pwait *w = pq_node(powner_self(), PQ_BARRIER);
    int s = shield(SHIELD_ALL);
    int recheck = !w || patch_many_hubs() ? PQ_RECHECK_MS : 0;
    while (round_of(__atomic_load_n(word(b), __ATOMIC_ACQUIRE)) == round) {
        if (w)
            pq_push(w, b);
        int e = pq_park(-1, recheck);
        if (w)
            pq_remove(w);
        if (e == EDEADLK)
            patch_die("libgreen-patch: pthread_barrier_wait in the root: the other threads can never "
                      "arrive (deadlock)\n");
    }
    unshield(s);
    pq_node_done(w);
}

int pthread_barrier_wait(pthread_barrier_t *b)
{
    if (!patch_threads || !green_here())
        return patch_real()->pthread_barrier_wait(b);
    if (pb(b)->count == 0)
        return EINVAL;
    unsigned round;
    if (arrive(b, &round)) {
        struct pwait *w;
        while ((w = pq_pop(b)))
            pq_wake(w, 0);
        return PTHREAD_BARRIER_SERIAL_THREAD;
    }
    wait_round(b, round);
    return 0;
}
GREEN_PATCH_THREAD(pthread_barrier_wait);

int pthread_spin_lock(pthread_spinlock_t *l)
{
    if (!patch_threads || !patch_here())
        return patch_real()->pthread_spin_lock(l);
    int s = 0;
    for (unsigned n = 0;; n++) {
        if (patch_real()->pthread_spin_trylock(l) == 0)
            break;
        if (n == 0)
            s = shield(SHIELD_ALL); /* a killed green thread could not yield */
        if (n % 64 == 63)
            pq_park(-1, 1);
        else
            green_yield();
    }
    unshield(s);
    return 0;
}
GREEN_PATCH_THREAD(pthread_spin_lock);
