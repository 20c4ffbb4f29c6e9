/*
 * sync.c — what green mutexes, semaphores and channels cost within one hub and between
 * hubs (issue 14's "across hubs" rows).
 *
 *   bench_sync              every mode with its default size, one key=value line each
 *   bench_sync MODE N       one run of N loops, then one line of key=value pairs (what
 *                           run.sh reads): msgs=M ms=T ns_per_msg=T/M (+ iters, handoffs)
 *
 * MODE:
 *   mutex-uncontended  one green thread: lock; unlock, N times. msgs = N
 *   sem-uncontended    one green thread: acquire; release on a semaphore of 1, N times
 *   mutex              two green threads of one hub loop N times each: lock; count;
 *                      green_yield; unlock (bench_chan's mutex row). msgs = hand-offs
 *   pingpong           two green threads of one hub, two rendezvous channels, one each
 *                      way (bench_chan's ping-pong). msgs = 2N
 *   mutex-hubs         the mutex loop with each green thread on a hub of its own (two OS
 *                      threads, each with its hub; no hub group needed); the first holds
 *                      the mutex until the second is about to queue. msgs = hand-offs
 *   pingpong-hubs      the ping-pong with the two green threads on two hubs
 *   cond               two green threads of one hub take turns through a condition: lock;
 *                      wait until it is our turn; give the turn; signal; unlock. msgs = 2N
 *   cond-hubs          the same on two hubs
 *   line-flip          no libgreen: two OS threads pass a counter back and forth on one
 *                      cache line, spinning (x86 pause / aarch64 yield). msgs = 2N: the
 *                      one-way time is the floor of any hand-off between two cores
 *
 * The uncontended modes measure a few nanoseconds, which a preemption would swamp and
 * a data layout can move: see median_of_spots. Results are checked; a wrong one
 * exits non-zero.
 */
#define _GNU_SOURCE
#include <green.h>

#include "bench.h" /* after green.h: its ping-pong */

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct result {
    double ns;
    long msgs;
    long iters;
};

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* What the green threads share (no pointers into their stacks). */
static struct {
    green_mutex_t mu;
    struct bench_pp pp;
    green_cond_t cv;
    int last, turn;
    int hubs, arrived;
    long handoffs, count, n;
} B;

/* ---- uncontended ---- */

/* An object whose address has the same low 12 bits as a store libgreen has just made
 * (its green thread's record, say) pays a false store-forwarding stall on x86 (4K
 * aliasing): ~2.5 ns more per lock+unlock here, moving with the layout of unrelated code
 * and data. So each uncontended loop runs on objects at five offsets within a page, best
 * of three at each, and prints the median of the five. */
enum { SPOTS = 5 };
static _Alignas(4096) char arena[4096 * 2];

static void *spot(int i) { return arena + 4096 / SPOTS * i / 64 * 64 + 32; }

static double median_of_spots(double *best)
{
    for (int i = 1; i < SPOTS; i++) /* insertion sort: five values */
        for (int j = i; j > 0 && best[j] < best[j - 1]; j--) {
            double t = best[j];
            best[j] = best[j - 1];
            best[j - 1] = t;
        }
    return best[SPOTS / 2];
}

static struct result run_mutex_uncontended(long n)
{
    double best[SPOTS];
    for (int s = 0; s < SPOTS; s++) {
        green_mutex_t *mu = spot(s);
        if (green_mutex_init(mu, GREEN_MUTEX_NORMAL) != 0)
            die("green_mutex_init");
        best[s] = -1;
        for (int r = 0; r < 3; r++) {
            int64_t t0 = bench_now_ns();
            for (long i = 0; i < n; i++) {
                if (green_mutex_lock(mu, -1) != 0 || green_mutex_unlock(mu) != 0)
                    die("mutex lock/unlock");
            }
            double ns = (double)(bench_now_ns() - t0);
            if (best[s] < 0 || ns < best[s])
                best[s] = ns;
        }
        if (green_mutex_destroy(mu) != 0)
            die("green_mutex_destroy");
    }
    return (struct result){median_of_spots(best), n, 0};
}

static struct result run_sem_uncontended(long n)
{
    double best[SPOTS];
    for (int s = 0; s < SPOTS; s++) {
        green_sem_t *sem = spot(s);
        if (green_sem_init(sem, 1) != 0)
            die("green_sem_init");
        best[s] = -1;
        for (int r = 0; r < 3; r++) {
            int64_t t0 = bench_now_ns();
            for (long i = 0; i < n; i++) {
                if (green_sem_acquire(sem, -1) != 0 || green_sem_release(sem) != 0)
                    die("sem acquire/release");
            }
            double ns = (double)(bench_now_ns() - t0);
            if (best[s] < 0 || ns < best[s])
                best[s] = ns;
        }
        if (green_sem_destroy(sem) != 0)
            die("green_sem_destroy");
    }
    return (struct result){median_of_spots(best), n, 0};
}

/* ---- the mutex loop and the ping-pong, on one hub or two ---- */

static void *mu_worker(void *arg)
{
    int me = (int)(intptr_t)arg;
    int held = 0;
    if (B.hubs > 1) {
        /* On two OS threads, one could run its whole loop before the other starts: the
         * first holds the mutex until the other is about to queue on it. Once both have
         * queued, every unlock finds the other waiting. */
        if (me == 0) {
            if (green_mutex_lock(&B.mu, -1) != 0)
                return "mutex: lock failed";
            held = 1;
            __atomic_store_n(&B.arrived, 1, __ATOMIC_RELEASE);
            while (__atomic_load_n(&B.arrived, __ATOMIC_ACQUIRE) != 2)
                ;
        } else {
            while (__atomic_load_n(&B.arrived, __ATOMIC_ACQUIRE) != 1)
                ;
            __atomic_store_n(&B.arrived, 2, __ATOMIC_RELEASE);
        }
    }
    for (long i = 0; i < B.n; i++) {
        if (!held && green_mutex_lock(&B.mu, -1) != 0)
            return "mutex: lock failed";
        held = 0;
        if (B.last != me) {
            if (B.last >= 0)
                B.handoffs++;
            B.last = me;
        }
        B.count++;
        green_yield(); /* holding it: on one hub, the other one runs and queues */
        if (green_mutex_unlock(&B.mu) != 0)
            return "mutex: unlock failed";
    }
    return NULL;
}

/* Turns through a condition: wait for our turn, give it to the other, signal. */
static void *cond_turns(void *arg)
{
    int me = (int)(intptr_t)arg;
    for (long i = 0; i < B.n; i++) {
        if (green_mutex_lock(&B.mu, -1) != 0)
            return "cond: lock failed";
        while (B.turn != me)
            if (green_cond_wait(&B.cv, &B.mu, -1) != 0)
                return "cond: wait failed";
        B.turn = !me;
        B.count++;
        if (green_cond_signal(&B.cv) != 0 || green_mutex_unlock(&B.mu) != 0)
            return "cond: signal/unlock failed";
    }
    return NULL;
}

static pthread_barrier_t start_line;

struct os_thread {
    green_fn fn;
    void *arg;
    void *result;
};

/* One green thread on this OS thread's hub (made here), started once the other OS
 * thread's is ready too (else the first could finish before the second begins), and
 * joined; its result (NULL or an error). */
static void *os_thread_main(void *arg)
{
    struct os_thread *t = arg;
    green_t g = green_spawn(t->fn, t->arg);
    if (!g)
        die("green_spawn");
    pthread_barrier_wait(&start_line);
    if (green_join(g, &t->result, -1) != 0)
        die("green_join");
    return NULL;
}

/* fa and fb on green threads of one hub (hubs == 1) or of two (each on an OS thread of
 * its own, with its own hub). */
static double run_pair(int hubs, green_fn fa, void *aa, green_fn fb, void *ab)
{
    int64_t t0 = bench_now_ns();
    void *ra, *rb;
    if (hubs == 1) {
        green_t a = green_spawn(fa, aa), b = green_spawn(fb, ab);
        if (!a || !b)
            die("green_spawn");
        if (green_join(a, &ra, -1) != 0 || green_join(b, &rb, -1) != 0)
            die("green_join");
    } else {
        struct os_thread t[2] = {{fa, aa, NULL}, {fb, ab, NULL}};
        pthread_t p[2];
        if (pthread_barrier_init(&start_line, NULL, 2) != 0)
            die("pthread_barrier_init");
        for (int i = 0; i < 2; i++)
            if (pthread_create(&p[i], NULL, os_thread_main, &t[i]) != 0)
                die("pthread_create");
        for (int i = 0; i < 2; i++)
            pthread_join(p[i], NULL);
        pthread_barrier_destroy(&start_line);
        ra = t[0].result;
        rb = t[1].result;
    }
    int64_t t1 = bench_now_ns();
    if (ra || rb) {
        fprintf(stderr, "bench_sync: %s\n", (const char *)(ra ? ra : rb));
        exit(1);
    }
    return (double)(t1 - t0);
}

static struct result run_mutex_on(long n, int hubs)
{
    B.n = n;
    B.last = -1;
    B.hubs = hubs;
    B.arrived = 0;
    B.handoffs = B.count = 0;
    if (green_mutex_init(&B.mu, GREEN_MUTEX_NORMAL) != 0)
        die("green_mutex_init");
    double ns = run_pair(hubs, mu_worker, (void *)0, mu_worker, (void *)1);
    if (B.count != 2 * n) {
        fprintf(stderr, "bench_sync: mutex: count %ld, expected %ld\n", B.count, 2 * n);
        exit(1);
    }
    if (green_mutex_destroy(&B.mu) != 0)
        die("green_mutex_destroy");
    return (struct result){ns, B.handoffs, 2 * n};
}

static struct result run_pingpong_on(long n, int hubs)
{
    B.pp.n = n;
    B.pp.ab = green_chan_new(sizeof(long), 0);
    B.pp.ba = green_chan_new(sizeof(long), 0);
    if (!B.pp.ab || !B.pp.ba)
        die("green_chan_new");
    double ns = run_pair(hubs, bench_pp_a, &B.pp, bench_pp_b, &B.pp);
    if (green_chan_free(B.pp.ab) != 0 || green_chan_free(B.pp.ba) != 0)
        die("green_chan_free");
    return (struct result){ns, 2 * n, 0};
}

static struct result run_cond_on(long n, int hubs)
{
    B.n = n;
    B.turn = 0;
    B.count = 0;
    if (green_mutex_init(&B.mu, GREEN_MUTEX_NORMAL) != 0 || green_cond_init(&B.cv) != 0)
        die("green_mutex_init/green_cond_init");
    double ns = run_pair(hubs, cond_turns, (void *)0, cond_turns, (void *)1);
    if (B.count != 2 * n) {
        fprintf(stderr, "bench_sync: cond: count %ld, expected %ld\n", B.count, 2 * n);
        exit(1);
    }
    if (green_cond_destroy(&B.cv) != 0 || green_mutex_destroy(&B.mu) != 0)
        die("green_cond_destroy/green_mutex_destroy");
    return (struct result){ns, 2 * n, 0};
}

static struct result run_mutex(long n) { return run_mutex_on(n, 1); }
static struct result run_cond(long n) { return run_cond_on(n, 1); }
static struct result run_cond_hubs(long n) { return run_cond_on(n, 2); }
static struct result run_mutex_hubs(long n) { return run_mutex_on(n, 2); }
static struct result run_pingpong(long n) { return run_pingpong_on(n, 1); }
static struct result run_pingpong_hubs(long n) { return run_pingpong_on(n, 2); }

/* ---- the floor: one cache line between two cores ---- */

static struct {
    long n;
    long word __attribute__((aligned(64)));
} F;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Waits for each odd value and answers with the next even one. */
static void *flip_answer(void *arg)
{
    (void)arg;
    for (long i = 0; i < F.n; i++) {
        while (__atomic_load_n(&F.word, __ATOMIC_ACQUIRE) != 2 * i + 1)
            cpu_relax();
        __atomic_store_n(&F.word, 2 * i + 2, __ATOMIC_RELEASE);
    }
    return NULL;
}

static struct result run_line_flip(long n)
{
    F.n = n;
    F.word = 0;
    pthread_t t;
    if (pthread_create(&t, NULL, flip_answer, NULL) != 0)
        die("pthread_create");
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        __atomic_store_n(&F.word, 2 * i + 1, __ATOMIC_RELEASE);
        while (__atomic_load_n(&F.word, __ATOMIC_ACQUIRE) != 2 * i + 2)
            cpu_relax();
    }
    int64_t t1 = bench_now_ns();
    pthread_join(t, NULL);
    return (struct result){(double)(t1 - t0), 2 * n, 0};
}

/* ---- driver ---- */

struct row {
    const char *mode;
    struct result (*run)(long n);
    long n;
};

static const struct row rows[] = {
    {"mutex-uncontended", run_mutex_uncontended, 10000000},
    {"sem-uncontended", run_sem_uncontended, 10000000},
    {"mutex", run_mutex, 1000000},
    {"pingpong", run_pingpong, 1000000},
    {"cond", run_cond, 1000000},
    {"mutex-hubs", run_mutex_hubs, 200000},
    {"cond-hubs", run_cond_hubs, 100000},
    {"pingpong-hubs", run_pingpong_hubs, 200000},
    {"line-flip", run_line_flip, 1000000},
};
#define NROWS (sizeof rows / sizeof rows[0])

static void print(const struct row *r, long n)
{
    struct result res = r->run(n);
    double msgs = res.msgs > 0 ? (double)res.msgs : 1;
    printf("mode=%s n=%ld msgs=%ld ms=%.1f ns_per_msg=%.2f", r->mode, n, res.msgs, res.ns / 1e6,
           res.ns / msgs);
    if (res.iters)
        printf(" iters=%ld handoffs=%ld", res.iters, res.msgs);
    printf("\n");
    fflush(stdout);
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_sync [MODE N]\nMODE:");
    for (size_t i = 0; i < NROWS; i++)
        fprintf(stderr, " %s", rows[i].mode);
    fprintf(stderr, "\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc == 1) {
        for (size_t i = 0; i < NROWS; i++)
            print(&rows[i], rows[i].n);
        return 0;
    }
    if (argc != 3)
        return usage();
    long n = bench_parse_count(argv[2]);
    if (n < 1)
        return usage();
    for (size_t i = 0; i < NROWS; i++) {
        if (strcmp(rows[i].mode, argv[1]) == 0) {
            print(&rows[i], n);
            return 0;
        }
    }
    return usage();
}
