/* one_runtime.c — a program linked with libgreen, run under greenrun: its libgreen and
 * the patch's must be one runtime. Green thread A reads a pipe with plain read(2) (the
 * patch's wrapper), B writes it after A has parked: if the wrapper did not know the
 * program's hub (a second copy of libgreen), A's read would block the OS thread and B
 * would never run (alarm: exit 3). Prints the libgreen libraries mapped, then "ok". */
#define _GNU_SOURCE
#include <green.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int p[2];
static char got[8];

static void *reader(void *arg)
{
    (void)arg;
    ssize_t n = read(p[0], got, sizeof got - 1);
    return (void *)(long)n;
}

static void *writer(void *arg)
{
    (void)arg;
    green_yield(); /* the reader is parked by now, if read parks */
    return (void *)(long)write(p[1], "green", 5);
}

static void hung(int sig)
{
    (void)sig;
    static const char msg[] = "one_runtime: read blocked the hub (two runtimes?)\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(3);
}

int main(void)
{
    signal(SIGALRM, hung);
    alarm(10);
    if (pipe(p) != 0)
        return 1;
    green_t a = green_spawn(reader, NULL), b = green_spawn(writer, NULL);
    void *ra = NULL, *rb = NULL;
    if (!a || !b || green_join(a, &ra, -1) != 0 || green_join(b, &rb, -1) != 0)
        return 1;
    if ((long)ra != 5 || (long)rb != 5 || strcmp(got, "green") != 0)
        return 2;
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512], last[512] = "";
    while (f && fgets(line, sizeof line, f)) {
        char *path = strchr(line, '/');
        if (path && strstr(path, "libgreen") && strcmp(path, last) != 0) {
            printf("mapped: %s", strrchr(path, '/') + 1);
            snprintf(last, sizeof last, "%s", path);
        }
    }
    if (f)
        fclose(f);
    printf("ok\n");
    return 0;
}
