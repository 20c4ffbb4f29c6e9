/*
 * spawn.c — what a green thread's life costs, timed (median of 3), as a markdown table.
 *
 *   new+switch+destroy   green_new, green_switch to run it to completion, green_destroy
 *                        (the stack comes from the hub's pool: a reused, warm stack)
 *   spawn+join           green_spawn of an empty function, then green_join
 *   spawn 10K+joinall    a batch: 10,000 green_spawn, then one green_joinall
 *   pthread create+join  for scale: the OS thread equivalent
 */
#define _GNU_SOURCE
#include "bench.h"

#include <green.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *empty(void *arg) { return arg; }

static const green_attr_t dedicated = {.stack_mode = GREEN_STACK_DEDICATED};
static const green_attr_t shared = {.stack_mode = GREEN_STACK_SHARED};

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static double cycle_new_switch_destroy(long n, const green_attr_t *attr)
{
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        green_t g = green_new(empty, (void *)1, attr);
        if (!g)
            die("green_new");
        if (green_switch(g, NULL) != (void *)1)
            die("green_switch");
        if (green_destroy(g) != 0)
            die("green_destroy");
    }
    return (double)(bench_now_ns() - t0);
}
static double nsd_dedicated(long n) { return cycle_new_switch_destroy(n, &dedicated); }
static double nsd_shared(long n) { return cycle_new_switch_destroy(n, &shared); }

static double cycle_spawn_join(long n, const green_attr_t *attr)
{
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        green_t g = green_spawn_attr(empty, (void *)1, attr);
        if (!g)
            die("green_spawn");
        void *r;
        if (green_join(g, &r, -1) != 0 || r != (void *)1)
            die("green_join");
    }
    return (double)(bench_now_ns() - t0);
}
static double sj_dedicated(long n) { return cycle_spawn_join(n, &dedicated); }
static double sj_shared(long n) { return cycle_spawn_join(n, &shared); }

#define BATCH 10000
static green_t batch[BATCH];

static double cycle_batch(long n, const green_attr_t *attr)
{
    int64_t t0 = bench_now_ns();
    for (long done = 0; done < n; done += BATCH) {
        for (long i = 0; i < BATCH; i++)
            if (!(batch[i] = green_spawn_attr(empty, NULL, attr)))
                die("green_spawn");
        if (green_joinall(batch, BATCH, -1) != 0)
            die("green_joinall");
    }
    return (double)(bench_now_ns() - t0);
}
static double batch_dedicated(long n) { return cycle_batch(n, &dedicated); }
static double batch_shared(long n) { return cycle_batch(n, &shared); }

static double cycle_pthread(long n)
{
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        pthread_t t;
        int e = pthread_create(&t, NULL, empty, NULL);
        if (e) {
            errno = e;
            die("pthread_create");
        }
        pthread_join(t, NULL);
    }
    return (double)(bench_now_ns() - t0);
}

struct row {
    const char *label;
    double (*run)(long n);
    long min_n; /* run in multiples of this */
};

static const struct row rows[] = {
    {"`green_new` + `green_switch` to completion + `green_destroy`, dedicated (pooled stack)",
     nsd_dedicated, 1},
    {"`green_new` + `green_switch` to completion + `green_destroy`, shared stack", nsd_shared, 1},
    {"`green_spawn` + `green_join` of an empty function, dedicated", sj_dedicated, 1},
    {"`green_spawn` + `green_join` of an empty function, shared stack", sj_shared, 1},
    {"10,000 × `green_spawn`, then `green_joinall`, dedicated (per green thread)", batch_dedicated,
     BATCH},
    {"10,000 × `green_spawn`, then `green_joinall`, shared stack (per green thread)", batch_shared,
     BATCH},
    {"`pthread_create` + `pthread_join` of an empty function (for scale)", cycle_pthread, 1},
};
#define NROWS (sizeof rows / sizeof rows[0])

static double measure(const struct row *r, double target_ms)
{
    long n = r->min_n;
    double ns;
    for (;;) {
        ns = r->run(n);
        if (ns >= 30e6 || n >= (1L << 36))
            break;
        n *= ns < 3e6 ? 16 : 4;
    }
    long k = (long)((double)n * target_ms * 1e6 / ns / (double)r->min_n);
    n = (k < 1 ? 1 : k) * r->min_n;
    double v[3];
    for (int i = 0; i < 3; i++)
        v[i] = r->run(n) / (double)n;
    return bench_median3(v[0], v[1], v[2]);
}

int main(int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        fprintf(stderr, "usage: bench_spawn\n");
        return 2;
    }
    double target_ms = 250;
    const char *t = getenv("BENCH_TARGET_MS");
    if (t && atof(t) > 0)
        target_ms = atof(t);
    double m[NROWS];
    for (size_t i = 0; i < NROWS; i++)
        m[i] = measure(&rows[i], target_ms);
    printf("| cycle | ns per cycle | × the first row |\n|---|---:|---:|\n");
    for (size_t i = 0; i < NROWS; i++)
        printf("| %s | %.1f | %.2f |\n", rows[i].label, m[i], m[i] / m[0]);
    printf("\n`pthread_create`+`pthread_join` ÷ `green_spawn`+`green_join` (dedicated): %.0f×\n",
           m[NROWS - 1] / m[2]);
    return 0;
}
