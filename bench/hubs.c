/*
 * hubs.c — issue 14's programs on a group of hubs (green_hubs_start, GREEN_HUB_ANY).
 *
 *   bench_hubs features             hub_group=1 when built with the hub group
 *                                   (GREEN_BENCH_HUBS, set by bench/CMakeLists.txt when
 *                                   green.h declares green_hubs_start), else 0: then
 *                                   only HUBS = 1 runs (default placement)
 *   bench_hubs calibrate            the iterations of work() that take ~20 µs here
 *                                   (run.sh passes the same count to the Go peer)
 *   bench_hubs fanout HUBS N ITERS  N green threads, each: work(ITERS), sleep 10 ms,
 *                                   work(ITERS); all spawned from main with
 *                                   attr.hub = GREEN_HUB_ANY on HUBS hubs (started first)
 *   bench_hubs skew HUBS N ITERS    the same, but all N are spawned while main's hub is
 *                                   the only one, and the other HUBS - 1 start afterwards:
 *                                   they begin empty, and get work only by stealing it
 *   bench_hubs fanout-dedicated|skew-dedicated HUBS N ITERS
 *                                   the same on dedicated stacks: green threads that ran
 *                                   may move too (shared-stack ones only before their
 *                                   first run), as goroutines do
 *   bench_hubs prog1 HUBS N         the talk's Prog 1 (N green threads sleep 200 ms),
 *                                   spawned with GREEN_HUB_ANY on HUBS hubs
 *
 * Output: one line of key=value pairs: ms (first spawn to last join), hubs, n, iters;
 * calibrate: iters and ns_per_iter. Green threads use shared stacks (as Prog 1 does).
 * Results are checked (every task's work is summed and compared); a wrong one exits
 * non-zero.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <green.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The work of one step: a chain of multiply-adds and shifts that no compiler can skip
 * or vectorise (each iteration needs the last); bench/peers/fanout.go has the same. */
static __attribute__((noinline)) uint64_t work(uint64_t x, long iters)
{
    for (long i = 0; i < iters; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        x ^= x >> 29;
    }
    return x;
}

#if GREEN_BENCH_HUBS
#define HUB_GROUP 1
static void place_anywhere(green_attr_t *a) { a->hub = GREEN_HUB_ANY; }
static int hubs_start(int n) { return green_hubs_start(n); }
static int hub_count(void) { return green_hub_count(); }
#else
#define HUB_GROUP 0
static void place_anywhere(green_attr_t *a) { (void)a; }
static int hubs_start(int n) { (void)n; errno = ENOSYS; return -1; }
static int hub_count(void) { return 1; }
#endif

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static struct {
    long iters;
    uint64_t *out;     /* one slot per task: its result */
} B;

static void *task(void *arg)
{
    long i = (long)(intptr_t)arg;
    /* stored before the sleep: work() is a pure function, and a result kept in a local
     * let the compiler move the first call past green_sleep (so every task slept first
     * and computed both halves after) */
    B.out[i] = work((uint64_t)i, B.iters);
    if (green_sleep(10) != 0)
        return "sleep";
    B.out[i] = work(B.out[i], B.iters);
    return NULL;
}

static void *sleeper(void *arg)
{
    return green_sleep(200) == 0 ? NULL : arg;
}

static int calibrate(void)
{
    long n = 1000000;
    double best = -1;
    uint64_t x = 1;
    for (int r = 0; r < 5; r++) {
        int64_t t0 = bench_now_ns();
        x = work(x, n);
        double ns = (double)(bench_now_ns() - t0) / (double)n;
        if (best < 0 || ns < best)
            best = ns;
    }
    printf("iters=%ld ns_per_iter=%.3f check=%llu\n", (long)(20000.0 / best), best,
           (unsigned long long)(x & 1));
    return 0;
}

static int run(const char *mode, int hubs, long n, long iters)
{
    int skew = strncmp(mode, "skew", 4) == 0, prog1 = strcmp(mode, "prog1") == 0;
    int dedicated = strstr(mode, "-dedicated") != NULL;
    green_t *g = malloc((size_t)n * sizeof *g);
    B.out = calloc((size_t)n, sizeof *B.out);
    B.iters = iters;
    if (!g || !B.out)
        die("malloc");
    green_attr_t attr = {.stack_mode = dedicated ? GREEN_STACK_DEDICATED : GREEN_STACK_SHARED};
    place_anywhere(&attr);
    if (!skew && hubs > 1 && hubs_start(hubs) < hubs)
        die("green_hubs_start");
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        if (!(g[i] = green_spawn_attr(prog1 ? sleeper : task, (void *)(intptr_t)i, &attr)))
            die("green_spawn_attr");
    if (skew && hubs > 1 && hubs_start(hubs) < hubs) /* they start with nothing */
        die("green_hubs_start");
    if (green_joinall(g, (size_t)n, -1) != 0)
        die("green_joinall");
    int64_t t1 = bench_now_ns();
    if (!prog1) {
        for (long i = 0; i < n; i++) {
            if (B.out[i] != work(work((uint64_t)i, iters), iters)) {
                fprintf(stderr, "bench_hubs: task %ld computed a wrong result\n", i);
                return 1;
            }
        }
    }
    printf("mode=%s hubs=%d n=%ld iters=%ld ms=%.1f hub_count=%d\n", mode, hubs, n, iters,
           (double)(t1 - t0) / 1e6, hub_count());
    free(g);
    free(B.out);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_hubs calibrate | fanout|skew[-dedicated] HUBS N ITERS | prog1 HUBS N\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "calibrate") == 0)
        return calibrate();
    if (argc == 2 && strcmp(argv[1], "features") == 0)
        return printf("hub_group=%d\n", HUB_GROUP) < 0;
    if (argc < 4)
        return usage();
    int hubs = atoi(argv[2]);
    long n = bench_parse_count(argv[3]);
    long iters = argc > 4 ? bench_parse_count(argv[4]) : 0;
    if (hubs < 1 || n < 1 || iters < 0)
        return usage();
    if (strcmp(argv[1], "prog1") == 0 && argc == 4)
        return run("prog1", hubs, n, 0);
    if ((strcmp(argv[1], "fanout") == 0 || strcmp(argv[1], "skew") == 0 ||
         strcmp(argv[1], "fanout-dedicated") == 0 || strcmp(argv[1], "skew-dedicated") == 0) &&
        argc == 5)
        return run(argv[1], hubs, n, iters);
    return usage();
}
