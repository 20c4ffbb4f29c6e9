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
 * every green pthread allocates from one arena (libgreen-patch's calloc, calloc.c).
 *
 *   threads_calloc zeros    calloc's zeros after dirty frees, of many sizes: "zeros: ok"
 *   threads_calloc zeros-nobody   the same as user nobody, when started as root
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <unistd.h>

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

/* calloc gives zeros whatever the memory held: blocks of many sizes, each first filled
 * and freed so that the calloc after it reuses dirty memory (the heap's, or a mapping's
 * glibc kept), in a thread (a green one under GREEN_PATCH_THREADS=1); and ENOMEM when
 * the size overflows. */
static void *zeros(void *arg)
{
    (void)arg;
    static const size_t sizes[] = {1, 100, 4096, 65535, 65536, 65536 + 17, 80 * 1024, 200 * 1024,
                                   1 << 20, (1 << 20) + 4095, 3 << 20};
    for (int round = 0; round < 3; round++)
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            size_t n = sizes[i];
            unsigned char *d = malloc(n + 64);
            if (!d)
                return "malloc";
            memset(d, 0xab, n + 64);
            free(d);
            unsigned char *z = calloc(1, n);
            if (!z)
                return "calloc";
            for (size_t k = 0; k < n; k++)
                if (z[k]) {
                    free(z);
                    return "a byte not zero";
                }
            memset(z, 0xcd, n); /* dirty again for the next round */
            free(z);
        }
    volatile size_t huge = SIZE_MAX / 2; /* (a constant would be a compile-time warning) */
    errno = 0;
    if (calloc(huge, 4) != NULL || errno != ENOMEM)
        return "overflow";
    return NULL;
}

int main(int argc, char **argv)
{
    /* "zeros-nobody": the same after giving up root, as memcached -u does: pagemap is then
     * closed to the process (calloc falls back to the next one's) */
    if (argc > 1 && strcmp(argv[1], "zeros-nobody") == 0 && getuid() == 0 &&
        (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0))
        return 1;
    if (argc > 1 && strncmp(argv[1], "zeros", 5) == 0) {
        pthread_t z;
        void *why = "pthread_create";
        if (pthread_create(&z, NULL, zeros, NULL) == 0)
            pthread_join(z, &why);
        printf("zeros: %s\n", why ? (const char *)why : "ok");
        return why != NULL;
    }
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
