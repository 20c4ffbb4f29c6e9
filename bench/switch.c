/*
 * switch.c — what one context switch costs.
 *
 *   bench_switch                 every row, timed (median of 3), as a markdown table
 *   bench_switch count MODE N    N round trips of one row, then "switches=S" (the
 *                                callgrind mode of run.sh: Ir(N2)-Ir(N1) / switches)
 *
 * Rows (MODE):
 *   dedicated  two green threads ping-ponging with green_switch, dedicated stacks
 *   shared     the same on the shared stack (each switch copies frames out and in)
 *   yield      two spawned green threads each looping green_yield(); the hub picks
 *   yield-shared  the same with GREEN_STACK_SHARED
 *   ucontext   the same ping-pong with glibc's swapcontext
 *   condvar    two pthreads handing a token through a mutex+condvar (timed mode only)
 *   condvar-1cpu  the same with both threads pinned to CPU 0
 *   pipe       two pthreads handing a byte through two pipes
 *
 * Switch counts for libgreen rows come from green_stats().switches, so the start and
 * end switches are counted too.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <green.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

struct result {
    double ns;           /* total elapsed */
    uint64_t switches;
    uint64_t copied;     /* shared-stack bytes copied */
};

static uint64_t stat_switches(void)
{
    green_stats_t st;
    green_stats(&st);
    return st.switches;
}

static uint64_t stat_copied(void)
{
    green_stats_t st;
    green_stats(&st);
    return st.shared_copied_bytes;
}

/* ---- green_switch ping-pong (no hub) ---- */

static green_t pp_a, pp_b;
static long pp_n;

static void *pp_a_fn(void *arg)
{
    (void)arg;
    for (long i = 0; i < pp_n; i++)
        green_switch(pp_b, NULL);
    return NULL; /* to the parent: the root */
}

static void *pp_b_fn(void *arg)
{
    (void)arg;
    for (;;) {
        green_switch(pp_a, NULL);
        if (errno) /* ECANCELED: green_destroy */
            return NULL;
    }
}

static struct result run_pingpong(long n, int mode)
{
    green_attr_t attr = {.stack_size = 0, .stack_mode = mode, .name = NULL};
    pp_n = n;
    pp_a = green_new(pp_a_fn, NULL, &attr);
    pp_b = green_new(pp_b_fn, NULL, &attr);
    if (!pp_a || !pp_b) {
        perror("green_new");
        exit(1);
    }
    uint64_t s0 = stat_switches(), c0 = stat_copied();
    int64_t t0 = bench_now_ns();
    green_switch(pp_a, NULL);
    int64_t t1 = bench_now_ns();
    uint64_t s1 = stat_switches(), c1 = stat_copied();
    if (green_dead(pp_a) != 1) {
        fprintf(stderr, "ping-pong: A did not finish\n");
        exit(1);
    }
    if (green_destroy(pp_b) != 0 || green_destroy(pp_a) != 0) {
        perror("green_destroy");
        exit(1);
    }
    return (struct result){(double)(t1 - t0), s1 - s0, c1 - c0};
}

static struct result run_dedicated(long n) { return run_pingpong(n, GREEN_STACK_DEDICATED); }
static struct result run_shared(long n) { return run_pingpong(n, GREEN_STACK_SHARED); }

/* ---- the hub: green_yield between two spawned green threads ---- */

static void *yield_fn(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++)
        green_yield();
    return NULL;
}

static struct result run_yield_mode(long n, int mode)
{
    green_attr_t attr = {.stack_size = 0, .stack_mode = mode, .name = NULL};
    uint64_t s0 = stat_switches(), c0 = stat_copied();
    int64_t t0 = bench_now_ns();
    green_t a = green_spawn_attr(yield_fn, (void *)(intptr_t)n, &attr);
    green_t b = green_spawn_attr(yield_fn, (void *)(intptr_t)n, &attr);
    if (!a || !b) {
        perror("green_spawn");
        exit(1);
    }
    if (green_join(a, NULL, -1) != 0 || green_join(b, NULL, -1) != 0) {
        perror("green_join");
        exit(1);
    }
    int64_t t1 = bench_now_ns();
    uint64_t s1 = stat_switches(), c1 = stat_copied();
    return (struct result){(double)(t1 - t0), s1 - s0, c1 - c0};
}

static struct result run_yield(long n) { return run_yield_mode(n, GREEN_STACK_DEDICATED); }
static struct result run_yield_shared(long n) { return run_yield_mode(n, GREEN_STACK_SHARED); }

/* ---- swapcontext ping-pong ---- */

#define UC_STACK (64 * 1024)
static ucontext_t uc_main, uc_a, uc_b;
static long uc_n;
static char *uc_stack_a, *uc_stack_b;

static void uc_a_fn(void)
{
    for (long i = 0; i < uc_n; i++)
        swapcontext(&uc_a, &uc_b);
    /* returns through uc_link to uc_main */
}

static void uc_b_fn(void)
{
    for (;;)
        swapcontext(&uc_b, &uc_a);
}

static struct result run_ucontext(long n)
{
    if (!uc_stack_a) {
        uc_stack_a = malloc(UC_STACK);
        uc_stack_b = malloc(UC_STACK);
    }
    uc_n = n;
    getcontext(&uc_a);
    uc_a.uc_stack.ss_sp = uc_stack_a;
    uc_a.uc_stack.ss_size = UC_STACK;
    uc_a.uc_link = &uc_main;
    makecontext(&uc_a, uc_a_fn, 0);
    getcontext(&uc_b);
    uc_b.uc_stack.ss_sp = uc_stack_b;
    uc_b.uc_stack.ss_size = UC_STACK;
    uc_b.uc_link = &uc_main;
    makecontext(&uc_b, uc_b_fn, 0);
    int64_t t0 = bench_now_ns();
    swapcontext(&uc_main, &uc_a);
    int64_t t1 = bench_now_ns();
    /* main->A, then n x (A->B, B->A), then A's return to main */
    return (struct result){(double)(t1 - t0), (uint64_t)(2 * n + 2), 0};
}

/* ---- pthreads: mutex+condvar token ---- */

struct cv_pp {
    pthread_mutex_t m;
    pthread_cond_t c;
    int turn;
    long n;
};
struct cv_arg {
    struct cv_pp *pp;
    int me;
};

static void *cv_fn(void *p)
{
    struct cv_arg *a = p;
    struct cv_pp *pp = a->pp;
    for (long i = 0; i < pp->n; i++) {
        pthread_mutex_lock(&pp->m);
        while (pp->turn != a->me)
            pthread_cond_wait(&pp->c, &pp->m);
        pp->turn = !a->me;
        pthread_cond_signal(&pp->c);
        pthread_mutex_unlock(&pp->m);
    }
    return NULL;
}

static struct result run_condvar_pin(long n, int pin)
{
    struct cv_pp pp = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, n};
    struct cv_arg a0 = {&pp, 0}, a1 = {&pp, 1};
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (pin) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(0, &set);
        pthread_attr_setaffinity_np(&attr, sizeof set, &set);
    }
    pthread_t t0h, t1h;
    int64_t t0 = bench_now_ns();
    if (pthread_create(&t0h, &attr, cv_fn, &a0) || pthread_create(&t1h, &attr, cv_fn, &a1)) {
        perror("pthread_create");
        exit(1);
    }
    pthread_join(t0h, NULL);
    pthread_join(t1h, NULL);
    int64_t t1 = bench_now_ns();
    pthread_attr_destroy(&attr);
    return (struct result){(double)(t1 - t0), (uint64_t)(2 * n), 0};
}

static struct result run_condvar(long n) { return run_condvar_pin(n, 0); }
static struct result run_condvar_1cpu(long n) { return run_condvar_pin(n, 1); }

/* ---- pthreads: a byte through two pipes ---- */

struct pipe_arg {
    int rd, wr;
    long n;
    int first;
};

static void *pipe_fn(void *p)
{
    struct pipe_arg *a = p;
    char c = 0;
    for (long i = 0; i < a->n; i++) {
        if (a->first) {
            if (write(a->wr, &c, 1) != 1 || read(a->rd, &c, 1) != 1)
                break;
        } else {
            if (read(a->rd, &c, 1) != 1 || write(a->wr, &c, 1) != 1)
                break;
        }
    }
    return NULL;
}

static struct result run_pipe(long n)
{
    int ab[2], ba[2];
    if (pipe(ab) || pipe(ba)) {
        perror("pipe");
        exit(1);
    }
    struct pipe_arg a = {ba[0], ab[1], n, 1}, b = {ab[0], ba[1], n, 0};
    pthread_t ta, tb;
    int64_t t0 = bench_now_ns();
    if (pthread_create(&ta, NULL, pipe_fn, &a) || pthread_create(&tb, NULL, pipe_fn, &b)) {
        perror("pthread_create");
        exit(1);
    }
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    int64_t t1 = bench_now_ns();
    close(ab[0]), close(ab[1]), close(ba[0]), close(ba[1]);
    return (struct result){(double)(t1 - t0), (uint64_t)(2 * n), 0};
}

/* ---- driver ---- */

struct row {
    const char *mode;
    const char *label;
    struct result (*run)(long n);
    int timed_only; /* not meaningful under callgrind */
};

static const struct row rows[] = {
    {"dedicated", "libgreen `green_switch`, dedicated stacks", run_dedicated, 0},
    {"shared", "libgreen `green_switch`, shared stack", run_shared, 0},
    {"yield", "libgreen `green_yield` via the hub, dedicated stacks", run_yield, 0},
    {"yield-shared", "libgreen `green_yield` via the hub, shared stack", run_yield_shared, 0},
    {"ucontext", "glibc `swapcontext`", run_ucontext, 0},
    {"condvar", "pthreads, mutex+condvar token (free to use both cores)", run_condvar, 1},
    {"condvar-1cpu", "pthreads, mutex+condvar token (both pinned to CPU 0)", run_condvar_1cpu, 1},
    {"pipe", "pthreads, a byte through two pipes (both cores)", run_pipe, 1},
};
#define NROWS (sizeof rows / sizeof rows[0])

struct measured {
    double ns_per_switch;
    double copied_per_switch;
    long n;
};

/* Calibrate n to about target_ms per run, then the median of 3 runs. */
static struct measured measure(const struct row *r, double target_ms)
{
    long n = 1000;
    struct result res;
    for (;;) {
        res = r->run(n);
        if (res.ns >= 30e6 || n >= (1L << 40))
            break;
        n *= res.ns < 3e6 ? 16 : 4;
    }
    double scaled = (double)n * target_ms * 1e6 / res.ns;
    n = scaled < 1000 ? 1000 : (long)scaled;
    double v[3];
    double copied = 0;
    for (int i = 0; i < 3; i++) {
        res = r->run(n);
        v[i] = res.ns / (double)res.switches;
        copied = (double)res.copied / (double)res.switches;
    }
    return (struct measured){bench_median3(v[0], v[1], v[2]), copied, n};
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_switch [count MODE N]\nMODE:");
    for (size_t i = 0; i < NROWS; i++)
        if (!rows[i].timed_only)
            fprintf(stderr, " %s", rows[i].mode);
    fprintf(stderr, "\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "count") == 0) {
        for (size_t i = 0; i < NROWS; i++) {
            if (strcmp(rows[i].mode, argv[2]) == 0) {
                long n = bench_parse_count(argv[3]);
                struct result r = rows[i].run(n);
                printf("switches=%llu\n", (unsigned long long)r.switches);
                return 0;
            }
        }
        return usage();
    }
    if (argc != 1)
        return usage();

    double target_ms = 250;
    const char *t = getenv("BENCH_TARGET_MS");
    if (t && atof(t) > 0)
        target_ms = atof(t);

    struct measured m[NROWS];
    for (size_t i = 0; i < NROWS; i++)
        m[i] = measure(&rows[i], target_ms);

    double base = m[0].ns_per_switch;
    printf("| switch | ns per switch | × `green_switch` (dedicated) | notes |\n");
    printf("|---|---:|---:|---|\n");
    for (size_t i = 0; i < NROWS; i++) {
        char note[128] = "";
        if (m[i].copied_per_switch > 0)
            snprintf(note, sizeof note, "%.0f bytes copied per switch", m[i].copied_per_switch);
        printf("| %s | %.1f | %.2f | %s |\n", rows[i].label, m[i].ns_per_switch,
               m[i].ns_per_switch / base, note);
    }
    printf("\nRatios measured in this run (how many times faster libgreen's switch is):\n\n");
    const double uc = m[4].ns_per_switch, cv = m[5].ns_per_switch, cv1 = m[6].ns_per_switch,
                 pp = m[7].ns_per_switch;
    printf("| libgreen | vs swapcontext | vs pthreads condvar | vs pthreads condvar, 1 CPU | vs pthreads pipe |\n");
    printf("|---|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < 4; i++)
        printf("| %s | %.1f× | %.0f× | %.0f× | %.0f× |\n", rows[i].label, uc / m[i].ns_per_switch,
               cv / m[i].ns_per_switch, cv1 / m[i].ns_per_switch, pp / m[i].ns_per_switch);
    return 0;
}
