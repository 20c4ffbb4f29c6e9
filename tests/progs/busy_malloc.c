/*
 * busy_malloc.c — a plain pthreads program that keeps its OS thread busy in malloc: main
 * starts one thread (which sleeps), then for argv[1] ms (default 300) callocs and frees
 * without blocking. Under `greenrun --threads` main holds its hub all that time, so
 * libgreen's monitor signals it (GREEN_MONITOR_MS) to see where it is: most likely
 * inside malloc, with the arena's lock held. The monitor's handler must then call
 * nothing that allocates (libunwind reads a pipe, which the patch library wraps).
 * Exits 0.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void *sleeper(void *arg)
{
    (void)arg;
    sleep(1);
    return NULL;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int main(int argc, char **argv)
{
    long ms = argc > 1 ? atol(argv[1]) : 300;
    pthread_t t;
    if (pthread_create(&t, NULL, sleeper, NULL) != 0)
        return 1;
    pthread_detach(t);
    long end = now_ms() + ms;
    void *keep[64] = {0};
    unsigned i = 0;
    while (now_ms() < end) {
        for (int k = 0; k < 1000; k++, i++) {
            free(keep[i % 64]);
            keep[i % 64] = calloc(1, 64 + (i % 1024));
        }
    }
    for (int k = 0; k < 64; k++)
        free(keep[k]);
    return 0;
}
