/*
 * threads_hubs.c — a plain pthread program for GREEN_PATCH_HUBS (test_patch_threads.c):
 * threads that share a mutex-protected counter and record the OS thread they ran on,
 * joined; then detached ones, and pthread_exit in main (which waits for them).
 * Prints "os_threads=N counter=C" and "detached=D".
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define N 16
#define ROUNDS 2000

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static long counter;
static long tids[N];
static int detached_done;

static void *run(void *arg)
{
    int i = (int)(intptr_t)arg;
    tids[i] = syscall(SYS_gettid);
    for (int k = 0; k < ROUNDS; k++) {
        pthread_mutex_lock(&m);
        counter++;
        pthread_mutex_unlock(&m);
        if (k % 100 == 0)
            sched_yield();
    }
    return arg;
}

static void *detached(void *arg)
{
    (void)arg;
    usleep(10000);
    __atomic_add_fetch(&detached_done, 1, __ATOMIC_RELAXED);
    if (__atomic_load_n(&detached_done, __ATOMIC_RELAXED) == 4) {
        char line[32];
        int n = snprintf(line, sizeof line, "detached=%d\n", 4);
        if (write(1, line, (size_t)n) < 0)
            return NULL;
    }
    return NULL;
}

int main(void)
{
    pthread_t t[N];
    for (int i = 0; i < N; i++)
        if (pthread_create(&t[i], NULL, run, (void *)(intptr_t)i) != 0)
            return 1;
    for (int i = 0; i < N; i++) {
        void *r;
        if (pthread_join(t[i], &r) != 0 || (intptr_t)r != i)
            return 2;
    }
    int distinct = 0;
    for (int i = 0; i < N; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++)
            seen |= tids[j] == tids[i];
        distinct += !seen;
    }
    printf("os_threads=%d counter=%ld\n", distinct, counter);
    fflush(stdout);
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    for (int i = 0; i < 4; i++) {
        pthread_t d;
        if (pthread_create(&d, &a, detached, NULL) != 0)
            return 3;
    }
    pthread_exit(NULL); /* waits for the detached ones, then the process ends (0) */
}
