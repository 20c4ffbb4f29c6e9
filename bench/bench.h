/*
 * bench.h — small helpers shared by libgreen's benchmark programs.
 *
 * Benchmarks print figures and ratios; they never assert timings. Clocks are
 * CLOCK_MONOTONIC wall clocks; a short measurement is repeated and its median printed.
 */
#ifndef GREEN_BENCH_H
#define GREEN_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline double bench_median3(double a, double b, double c)
{
    if (a > b) { double t = a; a = b; b = t; }
    if (b > c) { double t = b; b = c; c = t; }
    if (a > b) { double t = a; a = b; b = t; }
    return b;
}

/* A field of /proc/self/status in KiB (VmRSS, VmSize, VmHWM...), -1 if absent. */
static inline long bench_status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return -1;
    char line[256];
    size_t n = strlen(field);
    long v = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* "1M", "10K", "100" or a plain number. */
static inline long bench_parse_count(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (*end == 'k' || *end == 'K')
        v *= 1e3;
    else if (*end == 'm' || *end == 'M')
        v *= 1e6;
    return (long)v;
}

#ifdef GREEN_H
/* The ping-pong of bench_chan and bench_sync: two green threads, two rendezvous channels
 * (capacity 0), one each way. bench_pp_a sends i and waits for i + 1 back; bench_pp_b
 * echoes each integer plus one; n round trips. Each gets the same struct bench_pp (in
 * static memory: shared-stack green threads must not point into each other's stacks) and
 * returns NULL, or what went wrong. */
struct bench_pp {
    green_chan_t *ab, *ba;
    long n;
};

static inline void *bench_pp_a(void *arg)
{
    const struct bench_pp *pp = arg;
    for (long i = 0; i < pp->n; i++) {
        long v = i, w;
        if (green_chan_send(pp->ab, &v, -1) != 0 || green_chan_recv(pp->ba, &w, -1) != 0)
            return "ping-pong: A's send/recv failed";
        if (w != i + 1)
            return "ping-pong: wrong echo";
    }
    return NULL;
}

static inline void *bench_pp_b(void *arg)
{
    const struct bench_pp *pp = arg;
    for (long i = 0; i < pp->n; i++) {
        long v;
        if (green_chan_recv(pp->ab, &v, -1) != 0)
            return "ping-pong: B's recv failed";
        v++;
        if (green_chan_send(pp->ba, &v, -1) != 0)
            return "ping-pong: B's send failed";
    }
    return NULL;
}
#endif

#endif
