/* talk.c — the talk's Prog 1 in C: N green threads each sleep 200 ms.
 * usage: talk [N] [shared] */
#include <green.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *task(void *arg)
{
    green_sleep(200); /* parks this green thread; the hub runs the others */
    return arg;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000;
    green_attr_t attr = {.stack_mode = argc > 2 && !strcmp(argv[2], "shared")};
    green_t *g = calloc((size_t)n, sizeof *g);
    if (!g)
        return 1;
    int64_t t0 = green_now();
    for (long i = 0; i < n; i++)
        if (!(g[i] = green_spawn_attr(task, NULL, &attr)))
            return perror("green_spawn"), 1;
    if (green_joinall(g, (size_t)n, -1) != 0) /* main() is a green thread too: it parks */
        return perror("green_joinall"), 1;
    printf("%ld green threads slept 200 ms in %lld ms\n", n, (long long)(green_now() - t0));
    free(g);
    return 0;
}
