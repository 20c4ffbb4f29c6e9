/*
 * native_lock.c — a green thread parks in a patched call holding a native pthread
 * mutex (libgreen-patch.so preloaded, GREEN_PATCH_THREADS off): the patch library must
 * say so on stderr when it parks, before anything can deadlock, once per call site.
 *
 *   native_lock report     two rounds of: `holder` locks the mutex and reads an empty
 *                          pipe (it parks); `other` runs, then writes the byte. One report.
 *   native_lock deadlock   the same, but `other` locks the mutex: the OS thread blocks
 *                          for good (SIGALRM ends it after 2 s); the report came first.
 *   native_lock unlocked   the holder unlocks before it parks: no report.
 *
 * stdout and stderr are meant to be one stream: the report must come before "other runs".
 */
#define _GNU_SOURCE
#include <green.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static int fds[2];
static int unlock_first, other_locks;

static void *holder(void *arg)
{
    (void)arg;
    char c;
    pthread_mutex_lock(&m);
    if (unlock_first)
        pthread_mutex_unlock(&m);
    if (read(fds[0], &c, 1) != 1) /* the park: reported here, holding m */
        perror("read");
    if (!unlock_first)
        pthread_mutex_unlock(&m);
    return NULL;
}

static void *other(void *arg)
{
    (void)arg;
    printf("other runs\n");
    fflush(stdout);
    if (other_locks) {
        pthread_mutex_lock(&m); /* blocks the OS thread: the holder can never run again */
        printf("other got the mutex (cannot happen)\n");
    }
    if (write(fds[1], "x", 1) != 1)
        perror("write");
    return NULL;
}

static void round_trip(void)
{
    green_attr_t named = {.name = "holder"};
    green_t h = green_spawn_attr(holder, NULL, &named);
    green_t o = green_spawn(other, NULL);
    green_join(h, NULL, -1);
    green_join(o, NULL, -1);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "report";
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (pipe(fds) != 0)
        return 2;
    printf("mutex at %p\n", (void *)&m);
    unlock_first = strcmp(mode, "unlocked") == 0;
    other_locks = strcmp(mode, "deadlock") == 0;
    alarm(2);
    round_trip();
    round_trip(); /* the same call site: no second report */
    printf("done\n");
    return 0;
}
