/*
 * hot_pages.c — a plain threaded program (no libgreen in it) that runs what every
 * program under `greenrun --threads` runs: threads created and joined, mutexes, a
 * condition, sleeps, a pipe, poll, malloc. Then it looks at its own pages: of the library
 * file LIB (the path as mapped), the page offsets [LO, HI) must have none resident —
 * the code past the hot layout's end (cmake/hot_layout.cmake, src/hot.list): a function
 * that every program runs but that the lists leave out lands there, and each touch of it
 * maps up to 64 KiB of code into every such process (fault-around). Prints the offsets
 * that are resident, and exits 1 if any is.
 *
 *   hot_pages LIB LO HI      (tests/hot_pages_test.sh gives them)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { N = 8 };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn = PTHREAD_COND_INITIALIZER;
static int started, fds[2];

static void *worker(void *arg)
{
    pthread_mutex_lock(&lock);
    started++;
    pthread_cond_broadcast(&turn);
    while (started < N)
        pthread_cond_wait(&turn, &lock);
    pthread_mutex_unlock(&lock);
    char *buf = malloc(4096);
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
    char c = (char)(intptr_t)arg;
    if (write(fds[1], &c, 1) != 1 || !buf)
        abort();
    free(buf);
    return arg;
}

/* 1 if the page at addr is resident (pagemap's bit 63). */
static int resident(int pm, uintptr_t addr)
{
    uint64_t e;
    return pread(pm, &e, sizeof e, (off_t)(addr / 4096 * sizeof e)) == sizeof e && (e >> 63);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: hot_pages LIB LO HI\n");
        return 2;
    }
    unsigned long lo = strtoul(argv[2], NULL, 0), hi = strtoul(argv[3], NULL, 0);
    if (pipe(fds) != 0)
        return 2;
    pthread_t t[N];
    for (int i = 0; i < N; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) != 0)
            return 2;
    int got = 0;
    while (got < N) {
        struct pollfd p = {fds[0], POLLIN, 0};
        char c;
        if (poll(&p, 1, 5000) != 1 || read(fds[0], &c, 1) != 1)
            return 2;
        got++;
    }
    for (int i = 0; i < N; i++) {
        void *r;
        if (pthread_join(t[i], &r) != 0 || r != (void *)(intptr_t)i)
            return 2;
    }
    /* where LIB is: the start of its mapping at file offset 0 */
    FILE *m = fopen("/proc/self/maps", "r");
    char line[4096];
    uintptr_t base = 0;
    while (m && fgets(line, sizeof line, m)) {
        unsigned long from, off;
        char path[4096] = "";
        if (sscanf(line, "%lx-%*x %*s %lx %*s %*s %4095s", &from, &off, path) == 3 && off == 0 &&
            strcmp(path, argv[1]) == 0) {
            base = from;
            break;
        }
    }
    if (m)
        fclose(m);
    if (!base) {
        fprintf(stderr, "hot_pages: %s is not mapped\n", argv[1]);
        return 2;
    }
    int pm = open("/proc/self/pagemap", O_RDONLY);
    if (pm < 0)
        return 2;
    int bad = 0;
    for (unsigned long o = lo; o < hi; o += 4096)
        if (resident(pm, base + o)) {
            printf("resident past the hot code: page at offset 0x%lx\n", o);
            bad = 1;
        }
    printf("%s: %lu pages past the hot code, %s\n", argv[1], (hi - lo) / 4096, bad ? "some resident" : "none resident");
    return bad;
}
