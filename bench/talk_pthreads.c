/*
 * talk_pthreads.c — the talk's two programs with OS threads (pthreads), for comparison
 * with talk.c. One data point per process.
 *
 *   bench_talk_pthreads prog1 STACK N   N threads each sleep 200 ms; wall time from the
 *                                       first pthread_create to the last pthread_join
 *   bench_talk_pthreads prog2 STACK N   N threads asleep (a 90 s timed wait); once all
 *                                       of them wait, VmRSS and VmSize; then wake them
 *                                       all (the "kill") and join them
 * STACK: the thread stack size, e.g. 8M or 64K.
 *
 * When pthread_create fails the program stops creating, joins what it created and
 * reports it ("fail=EAGAIN created=32753"): threads are limited by kernel.pid_max,
 * kernel.threads-max and vm.max_map_count (a stack and its guard are two mappings).
 *
 * The pid limit is machine-wide: running it out makes every fork() on the machine fail
 * (other users' builds, the shell that runs this benchmark). So the program never lets
 * its live threads take the last 1,024 pids (BENCH_PID_HEADROOM): it stops creating
 * there and reports "cap=pids created=...". vm.max_map_count is per process and is
 * allowed to fail.
 * Output: one line of key=value pairs (times in ms, memory in KiB).
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROG1_SLEEP_MS 200
#define PROG2_SLEEP_S 90
#define SETTLE_MS 100

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static long exited; /* threads that have finished (prog1) */

static void *prog1_fn(void *arg)
{
    (void)arg;
    sleep_ms(PROG1_SLEEP_MS);
    __atomic_add_fetch(&exited, 1, __ATOMIC_RELAXED);
    return NULL;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;
static int stop;
static long started;

static void *prog2_fn(void *arg)
{
    (void)arg;
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += PROG2_SLEEP_S;
    __atomic_add_fetch(&started, 1, __ATOMIC_RELAXED);
    pthread_mutex_lock(&mu);
    while (!stop)
        if (pthread_cond_timedwait(&cv, &mu, &dl) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&mu);
    return NULL;
}

static const char *errname(int e)
{
    const char *s = strerrorname_np(e);
    return s ? s : "error";
}

static long count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "re");
    long n = 0;
    int c;
    if (!f)
        return -1;
    while ((c = getc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* At a failed pthread_create: which limit was hit (mappings, threads alive). */
static long fail_maps, fail_threads;
static long pid_room; /* live threads this process may have without starving the machine */

static long read_long(const char *path, long dflt)
{
    FILE *f = fopen(path, "re");
    long v = dflt;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = dflt;
        fclose(f);
    }
    return v;
}

/* min(kernel.pid_max, kernel.threads-max) - tasks on the machine now - headroom */
static long compute_pid_room(void)
{
    long lim = read_long("/proc/sys/kernel/pid_max", 32768);
    long tmax = read_long("/proc/sys/kernel/threads-max", lim);
    if (tmax < lim)
        lim = tmax;
    long tasks = 0;
    FILE *f = fopen("/proc/loadavg", "re");
    if (f) {
        double a, b, c;
        long running;
        if (fscanf(f, "%lf %lf %lf %ld/%ld", &a, &b, &c, &running, &tasks) != 5)
            tasks = 0;
        fclose(f);
    }
    const char *h = getenv("BENCH_PID_HEADROOM");
    long headroom = h && *h ? atol(h) : 1024;
    return lim - tasks - headroom;
}

static long create_all(pthread_t *ts, long n, size_t stack, void *(*fn)(void *), int *err)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, stack);
    long i;
    *err = 0;
    for (i = 0; i < n; i++) {
        if (i - __atomic_load_n(&exited, __ATOMIC_RELAXED) >= pid_room) {
            *err = -1; /* capped */
            break;
        }
        int e = pthread_create(&ts[i], &attr, fn, NULL);
        if (e) {
            *err = e;
            fail_maps = count_maps();
            fail_threads = bench_status_kb("Threads");
            break;
        }
    }
    pthread_attr_destroy(&attr);
    return i;
}

static void report_failure(int err)
{
    if (err > 0)
        printf(" fail=%s fail_maps=%ld fail_threads=%ld", errname(err), fail_maps, fail_threads);
    else if (err < 0)
        printf(" cap=pids pid_room=%ld", pid_room);
}

int main(int argc, char **argv)
{
    if (argc != 4)
        goto usage;
    /* sizes are binary here: 8M = 8 MiB, 64K = 64 KiB */
    char *unit;
    long stack = strtol(argv[2], &unit, 10);
    if (*unit == 'M' || *unit == 'm')
        stack <<= 20;
    else if (*unit == 'K' || *unit == 'k')
        stack <<= 10;
    long n = bench_parse_count(argv[3]);
    if (n < 1 || stack < 16384)
        goto usage;
    pthread_t *ts = calloc((size_t)n, sizeof *ts);
    if (!ts) {
        perror("calloc");
        return 1;
    }
    int err;
    pid_room = compute_pid_room();
    if (strcmp(argv[1], "prog1") == 0) {
        int64_t t0 = bench_now_ns();
        long made = create_all(ts, n, (size_t)stack, prog1_fn, &err);
        int64_t t1 = bench_now_ns();
        for (long i = 0; i < made; i++)
            pthread_join(ts[i], NULL);
        int64_t t2 = bench_now_ns();
        printf("n=%ld created=%ld", n, made);
        report_failure(err);
        printf(" ms=%.1f spawn_ms=%.1f hwm_kb=%ld\n", (double)(t2 - t0) / 1e6,
               (double)(t1 - t0) / 1e6, bench_status_kb("VmHWM"));
        return 0;
    }
    if (strcmp(argv[1], "prog2") == 0) {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&cv, &ca);
        long rss0 = bench_status_kb("VmRSS"), vm0 = bench_status_kb("VmSize");
        int64_t t0 = bench_now_ns();
        long made = create_all(ts, n, (size_t)stack, prog2_fn, &err);
        while (__atomic_load_n(&started, __ATOMIC_RELAXED) < made)
            sleep_ms(1);
        int64_t t1 = bench_now_ns();
        sleep_ms(SETTLE_MS);
        long rss = bench_status_kb("VmRSS"), vm = bench_status_kb("VmSize");
        int64_t t2 = bench_now_ns();
        pthread_mutex_lock(&mu);
        stop = 1;
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
        for (long i = 0; i < made; i++)
            pthread_join(ts[i], NULL);
        int64_t t3 = bench_now_ns();
        printf("n=%ld created=%ld", n, made);
        report_failure(err);
        printf(" rss0_kb=%ld rss_kb=%ld vm0_kb=%ld vm_kb=%ld start_ms=%.3f kill_ms=%.3f\n", rss0,
               rss, vm0, vm, (double)(t1 - t0) / 1e6, (double)(t3 - t2) / 1e6);
        return 0;
    }
usage:
    fprintf(stderr, "usage: bench_talk_pthreads prog1|prog2 STACK N   (STACK: 8M, 64K, ...)\n");
    return 2;
}
