/*
 * threads_tlswait.c — a plain pthread program whose threads each wait on a wake-up
 * object of their own kept in a __thread variable, which another thread reaches through
 * its address (as mariadbd waits on a futex word of its thread_local block). Under
 * GREEN_PATCH_THREADS=1 the green pthreads of one OS thread share that variable: the
 * patch library must say so on stderr, once, at the first such wait.
 *
 *   threads_tlswait futex    two rounds of: a thread waits (FUTEX_WAIT, through
 *                            syscall()) on its __thread word; main sets it and wakes it
 *   threads_tlswait cond     the same with a __thread condition variable
 *   threads_tlswait global   the futex rounds with a global word: nothing to say
 *
 * Prints "word at ADDRESS" (or "cond at"): main's own variable's address, which is the
 * waiter's too where they share it (the report must name it), then "done".
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static __thread uint32_t word;
static __thread pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static uint32_t global_word;
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static int use_cond, use_global, flag;
static void *published;

static void *waiter(void *arg)
{
    (void)arg;
    if (use_cond) {
        pthread_mutex_lock(&m);
        __atomic_store_n(&published, &cond, __ATOMIC_RELEASE);
        while (!flag)
            pthread_cond_wait(&cond, &m);
        pthread_mutex_unlock(&m);
        return NULL;
    }
    uint32_t *w = use_global ? &global_word : &word;
    __atomic_store_n(w, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&published, w, __ATOMIC_RELEASE);
    while (__atomic_load_n(w, __ATOMIC_ACQUIRE) == 0)
        syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    return NULL;
}

static void round_trip(void)
{
    pthread_t t;
    __atomic_store_n(&published, NULL, __ATOMIC_RELAXED);
    flag = 0;
    if (pthread_create(&t, NULL, waiter, NULL) != 0) {
        perror("pthread_create");
        _exit(1);
    }
    void *p;
    while (!(p = __atomic_load_n(&published, __ATOMIC_ACQUIRE)))
        usleep(1000);
    usleep(20000); /* the waiter waits by now */
    if (use_cond) {
        pthread_mutex_lock(&m);
        flag = 1;
        pthread_cond_signal(p);
        pthread_mutex_unlock(&m);
    } else {
        __atomic_store_n((uint32_t *)p, 1, __ATOMIC_RELEASE);
        syscall(SYS_futex, p, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
    pthread_join(t, NULL);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "futex";
    use_cond = strcmp(mode, "cond") == 0;
    use_global = strcmp(mode, "global") == 0;
    void *mine = use_cond ? (void *)&cond : use_global ? (void *)&global_word : (void *)&word;
    printf("%s at %p\n", use_cond ? "cond" : "word", mine);
    fflush(stdout);
    round_trip();
    round_trip();
    printf("done\n");
    return 0;
}
