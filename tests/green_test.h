/*
 * green_test.h — what the test programs of the hub and the layers above it share: the
 * includes cmocka needs, the scale and lateness knobs, which sanitizer the build runs
 * under, and the checks every such test makes (the hub left idle, a call that fails with
 * a given errno). Each test_<concept>.c includes it first; everything here is static
 * inline or a macro, so each program gets its own copy and unused ones cost nothing.
 */
#ifndef GREEN_TEST_H
#define GREEN_TEST_H

#include <green.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <setjmp.h> /* cmocka.h needs these four first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <cmocka.h>

/* Divisor for the largest test sizes (set by the build for sanitizers, valgrind, qemu). */
#ifndef GREEN_TEST_SCALE
#define GREEN_TEST_SCALE 1
#endif

/* How late a deadline or timer may be noticed and still count as on time: generous, for
 * loaded machines and valgrind; the point is order and not-before, not speed. */
#define LATE_MS 2000

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#else
#define UNDER_ASAN 0
#endif
#if defined(__SANITIZE_THREAD__) || __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#else
#define UNDER_TSAN 0
#endif

/* A "Key: N kB" line of a /proc/self file, or -1. */
static inline long proc_kib(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    char line[256];
    size_t n = strlen(key);
    long v = -1;
    while (f && v < 0 && fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0 && line[n] == ':')
            v = strtol(line + n + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

/* A "Key: N kB" line of /proc/self/status (key "VmRSS", "VmSize", "VmHWM", ...), or -1. */
static inline long proc_status_kib(const char *key) { return proc_kib("/proc/self/status", key); }

/* The exact resident set, KiB: smaps_rollup's Rss (the kernel walks the page tables;
 * VmRSS is a per-CPU counter, off by up to ~32 pages per CPU), else VmRSS. */
static inline long rss_exact_kib(void)
{
    long kib = proc_kib("/proc/self/smaps_rollup", "Rss");
    return kib >= 0 ? kib : proc_status_kib("VmRSS");
}

/* Run under valgrind (its preloaded helper is mapped)? Checked at run time: the same
 * binaries run natively and under valgrind. */
static inline int under_valgrind(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int found = 0;
    while (f && !found && fgets(line, sizeof line, f))
        found = strstr(line, "/vgpreload") != NULL;
    if (f)
        fclose(f);
    return found;
}

/* `call` returns -1 and sets errno to e (errno is cleared first, so a stale value from
 * an earlier call cannot pass for it). */
#define assert_fails_with(call, e)    \
    do {                              \
        errno = 0;                    \
        assert_int_equal((call), -1); \
        assert_int_equal(errno, (e)); \
    } while (0)

/* The same for a call that fails by returning NULL. */
#define assert_null_with(call, e)     \
    do {                              \
        errno = 0;                    \
        assert_null(call);            \
        assert_int_equal(errno, (e)); \
    } while (0)

static inline green_stats_t stats(void)
{
    green_stats_t st;
    assert_int_equal(green_stats(&st), 0);
    return st;
}

/* Every test leaves the hub as it found it: nothing alive, queued, parked or timed. */
static inline void assert_hub_idle(void)
{
    green_stats_t st = stats();
    assert_int_equal(st.alive, 0);
    assert_int_equal(st.ready, 0);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.timers, 0);
}

/* Sleep the OS thread without involving the hub (a green thread that computes, or a
 * plain pthread taking its time). */
static inline void sleep_os_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* How many fds the process has open (to check that nothing leaks one). */
static inline int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* A green thread that ticks about every millisecond until *stop: proof that the hub
 * keeps running other green threads while some wait. */
struct ticker {
    int stop;
    long ticks;
};

static inline void *tick(void *arg)
{
    struct ticker *t = arg;
    while (!t->stop) {
        if (green_sleep(1) != 0)
            return (void *)1;
        t->ticks++;
    }
    return NULL;
}

/* Counts *n up about every millisecond until killed: shows that a wait parks one green
 * thread, not the OS thread. */
static inline void *count_ticks(void *arg)
{
    long *n = arg;
    while (green_sleep(1) == 0)
        (*n)++;
    return NULL;
}

#endif
