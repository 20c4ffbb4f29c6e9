/*
 * file_rule.c — what a regular-file call costs made inline on the hub's thread, handed
 * to libgreen's thread pool, or done by io_uring: the figures behind libgreen-patch.so's
 * file rule (docs/patch.md, GREEN_PATCH_FILES).
 *
 *   bench_file_rule [DIR]     a markdown table; the file lives in DIR (default: .)
 *
 * Rows, each the median of 3 runs of many calls by one green thread (one call at a time:
 * this is the latency a green thread pays, not throughput):
 *   pread/pwrite 4 KiB, 64 KiB and 1 MiB, page-cache hits:
 *     inline        the system call on the hub's thread (what the patch does by default)
 *     pool          green_run_blocking() of the same call: the pool's round trip
 *     green (epoll) green_read/green_write on an epoll hub: the pool plus a bounce buffer
 *     green (uring) the same on an io_uring hub (GREEN_POLLER=uring): the kernel does it
 *   pread 64 KiB of a page-cache miss (posix_fadvise DONTNEED before each), inline: how
 *     long one cold read holds the hub;
 *   fsync after a 4 KiB write, inline and on the pool; fsync with nothing to write.
 * The empty pool job (a no-op round trip) is printed for reference.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <green.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FILE_SIZE (16 << 20)
#define BUF_SIZE (1 << 20) /* the largest call's */

static int fd;
static char path[4096];
static char *buf;

enum how { INLINE, POOL, GREEN };
enum op { READ, WRITE, COLD_READ, FSYNC_DIRTY, FSYNC_CLEAN, NOTHING };

struct job {
    enum op op;
    size_t n;
    off_t off;
};

/* The call itself, as the hub or a pool thread makes it. */
static void *do_op(void *arg)
{
    struct job *j = arg;
    switch (j->op) {
    case READ:
    case COLD_READ:
        return (void *)(intptr_t)pread(fd, buf, j->n, j->off);
    case WRITE:
        return (void *)(intptr_t)pwrite(fd, buf, j->n, j->off);
    case FSYNC_DIRTY:
        if (pwrite(fd, buf, j->n, j->off) < 0)
            return (void *)-1;
        return (void *)(intptr_t)fsync(fd);
    case FSYNC_CLEAN:
        return (void *)(intptr_t)fsync(fd);
    case NOTHING:
        break;
    }
    return NULL;
}

/* One call the way `how` says; 0 or -1. */
static int one(enum how how, struct job *j)
{
    void *r = NULL;
    switch (how) {
    case INLINE:
        r = do_op(j);
        break;
    case POOL:
        if (green_run_blocking(do_op, j, &r, -1) != 0)
            return -1;
        break;
    case GREEN:
        if (lseek(fd, j->off, SEEK_SET) < 0)
            return -1;
        r = (void *)(intptr_t)(j->op == WRITE ? green_write(fd, buf, j->n, -1)
                                              : green_read(fd, buf, j->n, -1));
        break;
    }
    return (intptr_t)r < 0 ? -1 : 0;
}

/* Mean µs per call of `calls` calls, median of 3 runs. */
static double measure(enum how how, enum op op, size_t n, int calls)
{
    double us[3];
    for (int run = 0; run < 3; run++) {
        int64_t total = 0;
        for (int i = 0; i < calls; i++) {
            struct job j = {op, n, (off_t)((size_t)i * n % (FILE_SIZE - n))};
            if (op == COLD_READ)
                posix_fadvise(fd, j.off, (off_t)n, POSIX_FADV_DONTNEED);
            int64_t t0 = bench_now_ns();
            if (one(how, &j) != 0) {
                fprintf(stderr, "bench_file_rule: %s\n", strerror(errno));
                exit(1);
            }
            total += bench_now_ns() - t0;
        }
        us[run] = (double)total / calls / 1000.0;
    }
    return bench_median3(us[0], us[1], us[2]);
}

static void cell(double us)
{
    if (us < 10)
        printf(" %.1f µs |", us);
    else
        printf(" %.0f µs |", us);
}

/* The io_uring figures come from a thread of its own, whose hub polls with io_uring. */
struct uring_row {
    enum op op;
    size_t n;
    int calls;
    double us;
    char poller[16];
};

static void *uring_thread(void *arg)
{
    struct uring_row *r = arg;
    r->us = measure(GREEN, r->op, r->n, r->calls);
    snprintf(r->poller, sizeof r->poller, "%s", green_poller_name());
    return NULL;
}

static double on_uring(enum op op, size_t n, int calls, char *poller)
{
    struct uring_row r = {op, n, calls, 0, ""};
    pthread_t t;
    setenv("GREEN_POLLER", "uring", 1); /* read by the new thread's hub */
    if (pthread_create(&t, NULL, uring_thread, &r) != 0 || pthread_join(t, NULL) != 0)
        exit(1);
    unsetenv("GREEN_POLLER");
    strcpy(poller, r.poller);
    return r.us;
}

int main(int argc, char **argv)
{
    snprintf(path, sizeof path, "%s/bench_file_rule.%d", argc > 1 ? argv[1] : ".", (int)getpid());
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || posix_memalign((void **)&buf, 4096, BUF_SIZE) != 0) {
        perror("bench_file_rule");
        return 1;
    }
    memset(buf, 'x', BUF_SIZE);
    for (off_t off = 0; off < FILE_SIZE; off += 1 << 16)
        if (pwrite(fd, buf, 1 << 16, off) != 1 << 16)
            return 1;
    fsync(fd);
    green_current(); /* the main thread's hub: epoll */

    const int calls = 2000;
    char poller[16] = "";
    printf("| call | inline | pool (green_run_blocking) | green_read/write, epoll hub (pool + copy) "
           "| green_read/write, io_uring hub |\n");
    printf("|---|---:|---:|---:|---:|\n");
    struct { const char *name; enum op op; size_t n; int calls; } rows[] = {
        {"pread 4 KiB, cached", READ, 4096, calls},
        {"pread 64 KiB, cached", READ, 65536, calls},
        {"pread 1 MiB, cached", READ, BUF_SIZE, calls / 10},
        {"pwrite 4 KiB", WRITE, 4096, calls},
        {"pwrite 64 KiB", WRITE, 65536, calls},
        {"pwrite 1 MiB", WRITE, BUF_SIZE, calls / 10},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        printf("| %s |", rows[i].name);
        cell(measure(INLINE, rows[i].op, rows[i].n, rows[i].calls));
        cell(measure(POOL, rows[i].op, rows[i].n, rows[i].calls));
        cell(measure(GREEN, rows[i].op, rows[i].n, rows[i].calls));
        cell(on_uring(rows[i].op, rows[i].n, rows[i].calls, poller));
        printf("\n");
    }
    printf("| pread 64 KiB, not cached |");
    cell(measure(INLINE, COLD_READ, 65536, 200));
    cell(measure(POOL, COLD_READ, 65536, 200));
    printf(" | |\n| fsync after a 4 KiB write |");
    cell(measure(INLINE, FSYNC_DIRTY, 4096, 100));
    cell(measure(POOL, FSYNC_DIRTY, 4096, 100));
    printf(" | |\n| fsync, nothing to write |");
    cell(measure(INLINE, FSYNC_CLEAN, 0, calls));
    cell(measure(POOL, FSYNC_CLEAN, 0, calls));
    printf(" | |\n| (an empty pool job) | |");
    cell(measure(POOL, NOTHING, 0, calls));
    printf(" | |\n\n");
    printf("One green thread, one call at a time, mean per call (median of 3 runs); the file is in %s"
           " (the io_uring hub's poller: %s).\n", argc > 1 ? argv[1] : ".", poller);
    close(fd);
    unlink(path);
    return 0;
}
