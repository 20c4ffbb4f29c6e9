/*
 * talk.c — the two programs of the greenlet talk, with libgreen. One data point per
 * process; run.sh runs it once per (program, mode, N) and formats the tables.
 *
 *   bench_talk prog1 dedicated|shared N
 *       N green threads each green_sleep(200); wall time from the first spawn to the
 *       end of green_joinall.
 *   bench_talk prog2 dedicated|shared N
 *       N green threads asleep (a 90 s sleep, as in the talk); once all of them sleep,
 *       VmRSS and VmSize of the process; then green_kill them all and join them.
 *   bench_talk pagefloor N
 *       the page floor: first touch of N fresh 4 KiB pages (mmap, one byte written per
 *       page); a dedicated stack touches at least one page per green thread.
 *
 * Output: one line of key=value pairs (times in ms, memory in KiB).
 */
#define _GNU_SOURCE
#include "bench.h"

#include <green.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PROG1_SLEEP_MS 200
#define PROG2_SLEEP_MS 90000
#define SETTLE_MS 100

static long started;

static void *prog1_fn(void *arg)
{
    (void)arg;
    green_sleep(PROG1_SLEEP_MS);
    return NULL;
}

static void *prog2_fn(void *arg)
{
    (void)arg;
    started++;
    green_sleep(PROG2_SLEEP_MS); /* -1/ECANCELED when killed */
    return NULL;
}

static const char *errname(int e)
{
    const char *s = strerrorname_np(e);
    return s ? s : "error";
}

static long spawn_all(green_t *gs, long n, const green_attr_t *attr, green_fn fn, int *err)
{
    for (long i = 0; i < n; i++) {
        gs[i] = green_spawn_attr(fn, NULL, attr);
        if (!gs[i]) {
            *err = errno;
            return i;
        }
    }
    *err = 0;
    return n;
}

static void print_stats(void)
{
    green_stats_t st;
    if (green_stats(&st) == 0)
        printf(" guarded=%llu unguarded=%llu", (unsigned long long)st.guarded_stacks,
               (unsigned long long)st.unguarded_stacks);
}

static int prog1(const green_attr_t *attr, long n)
{
    green_t *gs = calloc((size_t)n, sizeof *gs);
    if (!gs || !green_poller_name()) {
        perror("setup");
        return 1;
    }
    int err;
    int64_t t0 = bench_now_ns();
    long made = spawn_all(gs, n, attr, prog1_fn, &err);
    int64_t t1 = bench_now_ns();
    if (green_joinall(gs, (size_t)made, -1) != 0) {
        perror("green_joinall");
        return 1;
    }
    int64_t t2 = bench_now_ns();
    printf("n=%ld created=%ld", n, made);
    if (err)
        printf(" fail=%s", errname(err));
    printf(" ms=%.1f spawn_ms=%.1f hwm_kb=%ld", (double)(t2 - t0) / 1e6, (double)(t1 - t0) / 1e6,
           bench_status_kb("VmHWM"));
    print_stats();
    printf("\n");
    return 0;
}

static int prog2(const green_attr_t *attr, long n)
{
    green_t *gs = calloc((size_t)n, sizeof *gs);
    if (!gs || !green_poller_name()) {
        perror("setup");
        return 1;
    }
    long rss0 = bench_status_kb("VmRSS"), vm0 = bench_status_kb("VmSize");
    int err;
    int64_t t0 = bench_now_ns();
    long made = spawn_all(gs, n, attr, prog2_fn, &err);
    while (started < made) /* the spawned ones run first: the run queue is FIFO */
        green_yield();
    int64_t t1 = bench_now_ns();
    green_sleep(SETTLE_MS);
    long rss = bench_status_kb("VmRSS"), vm = bench_status_kb("VmSize");
    green_stats_t st;
    green_stats(&st);
    int64_t t2 = bench_now_ns();
    for (long i = 0; i < made; i++)
        if (green_kill(gs[i]) != 0) {
            perror("green_kill");
            return 1;
        }
    if (green_joinall(gs, (size_t)made, -1) != 0) {
        perror("green_joinall");
        return 1;
    }
    int64_t t3 = bench_now_ns();
    printf("n=%ld created=%ld", n, made);
    if (err)
        printf(" fail=%s", errname(err));
    printf(" rss0_kb=%ld rss_kb=%ld vm0_kb=%ld vm_kb=%ld start_ms=%.3f kill_ms=%.3f"
           " saved_bytes=%llu",
           rss0, rss, vm0, vm, (double)(t1 - t0) / 1e6, (double)(t3 - t2) / 1e6,
           (unsigned long long)st.shared_saved_bytes);
    print_stats();
    printf("\n");
    return 0;
}

/* Touch one byte of each of n fresh pages; median of 3 when a pass is short. */
static int pagefloor(long n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t len = (size_t)n * pg;
    double v[3];
    long rss_delta = 0;
    int reps = 0;
    for (; reps < 3; reps++) {
        char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        madvise(p, len, MADV_NOHUGEPAGE); /* 4 KiB pages even where THP is "always" */
        long r0 = bench_status_kb("VmRSS");
        int64_t t0 = bench_now_ns();
        for (size_t off = 0; off < len; off += pg)
            ((volatile char *)p)[off] = 1;
        int64_t t1 = bench_now_ns();
        if (reps == 0)
            rss_delta = bench_status_kb("VmRSS") - r0;
        munmap(p, len);
        v[reps] = (double)(t1 - t0) / 1e6;
        if (reps == 0 && v[0] >= 2000) {
            reps = 1;
            break;
        }
    }
    double ms = reps == 3 ? bench_median3(v[0], v[1], v[2]) : v[0];
    printf("n=%ld ms=%.2f ns_per_page=%.0f rss_delta_kb=%ld runs=%d\n", n, ms, ms * 1e6 / (double)n,
           rss_delta, reps);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "pagefloor") == 0)
        return pagefloor(bench_parse_count(argv[2]));
    if (argc != 4)
        goto usage;
    green_attr_t attr = {.stack_mode = GREEN_STACK_DEDICATED};
    if (strcmp(argv[2], "shared") == 0)
        attr.stack_mode = GREEN_STACK_SHARED;
    else if (strcmp(argv[2], "dedicated") != 0)
        goto usage;
    long n = bench_parse_count(argv[3]);
    if (n < 1)
        goto usage;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(argv[1], "prog1") == 0)
        return prog1(&attr, n);
    if (strcmp(argv[1], "prog2") == 0)
        return prog2(&attr, n);
usage:
    fprintf(stderr, "usage: bench_talk prog1|prog2 dedicated|shared N\n"
                    "       bench_talk pagefloor N\n");
    return 2;
}
