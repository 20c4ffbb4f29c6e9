/*
 * threads_count.c — the talk's Prog 1, "threads" version, as any pthreads program writes
 * it (no libgreen headers): start N threads that each sleep 200 ms and then bump a
 * shared counter under a mutex; join them all; print the count and the wall time.
 *
 *   threads_count N nanosleep|cond
 *
 * "nanosleep" sleeps with nanosleep(2); "cond" with a timed wait on a private condition
 * variable (the same 200 ms, through pthreads alone). Exit 0 when the count is N, 2 when
 * pthread_create fails (it prints how many threads it had started).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long count;
static int use_cond;

static void sleep_200ms(void)
{
    if (!use_cond) {
        struct timespec d = {0, 200 * 1000 * 1000};
        while (nanosleep(&d, &d) != 0 && errno == EINTR)
            ;
        return;
    }
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 200 * 1000 * 1000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&m);
    while (pthread_cond_timedwait(&c, &m, &until) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&m);
}

static void *task(void *arg)
{
    (void)arg;
    sleep_200ms();
    pthread_mutex_lock(&lock);
    count++;
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000;
    use_cond = argc > 2 && strcmp(argv[2], "cond") == 0;
    pthread_t *t = calloc((size_t)n, sizeof *t);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        int e = pthread_create(&t[i], NULL, task, NULL);
        if (e != 0) {
            printf("pthread_create failed after %ld threads: %s\n", i, strerror(e));
            fflush(stdout);
            _exit(2);
        }
    }
    for (long i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    printf("threads=%ld count=%ld wall_ms=%.0f\n", n, count, ms);
    free(t);
    return count == n ? 0 : 1;
}
