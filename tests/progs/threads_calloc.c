/*
 * threads_calloc.c — plain pthreads code: THREADS threads each calloc two 80 KiB buffers
 * and write one byte of each (as siege's users do: buffers larger than what they hold),
 * then wait at a barrier; main then prints how much resident memory that added, from
 * /proc/self/smaps_rollup (exact, unlike getrusage's per-CPU counters):
 *
 *   calloc_kib=N
 *
 * On real threads each thread's arena leaves the untouched pages of its buffers
 * unresident; test_patch_threads compares the figure under GREEN_PATCH_THREADS=1, where
 * every green pthread allocates from one arena (libgreen-patch's GREEN_PATCH_TOP_PAD).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { THREADS = 40, BUF = 80 * 1024 };

static pthread_barrier_t started, go, all_in, all_out;

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "Rss:", 4) == 0)
            kib = strtol(line + 4, NULL, 10);
    if (f)
        fclose(f);
    return kib;
}

static void *user(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&started); /* (green ones have run: their stacks are touched) */
    pthread_barrier_wait(&go);      /* (main has its baseline) */
    char *a = calloc(1, BUF), *b = calloc(1, BUF);
    if (!a || !b)
        abort();
    a[0] = b[0] = 1;
    pthread_barrier_wait(&all_in);
    pthread_barrier_wait(&all_out);
    free(a);
    free(b);
    return NULL;
}

int main(void)
{
    pthread_t t[THREADS];
    pthread_barrier_init(&started, NULL, THREADS + 1);
    pthread_barrier_init(&go, NULL, THREADS + 1);
    pthread_barrier_init(&all_in, NULL, THREADS + 1);
    pthread_barrier_init(&all_out, NULL, THREADS + 1);
    /* the threads running first, then the baseline: their stacks are not the point */
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, user, NULL) != 0)
            return 1;
    pthread_barrier_wait(&started);
    long before = rss_kib();
    pthread_barrier_wait(&go);
    pthread_barrier_wait(&all_in);
    long after = rss_kib();
    pthread_barrier_wait(&all_out);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    if (before < 0 || after < 0)
        return 1;
    printf("calloc_kib=%ld\n", after - before);
    return 0;
}
