/* crawler_pthreads.c — the OS-thread peer of examples/crawler.c in the crawler
 * benchmark (bench/net.sh): one thread per URL (64 KiB stacks), blocking sockets, HTTP/1.1
 * GET with "Connection: close", the body counted up to EOF.
 *
 * usage: crawler_pthreads URL...   (http://IPv4:port/path only)
 * Prints "OK of N fetched in T ms" like crawler, from the first thread's creation to
 * the last join; stops creating threads when pthread_create fails (then fewer fetch). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct fetch {
    const char *url;
    long length;    /* of the body; -1 on failure */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long get_url(const char *url)
{
    char host[64];
    int port = 80;
    const char *path = "/";
    if (sscanf(url, "http://%63[0-9.]:%d", host, &port) < 1)
        return -1;
    const char *p = strchr(url + 7, '/');
    if (p)
        path = p;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    char buf[4096];
    int n = snprintf(buf, sizeof buf,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: crawler_pthreads\r\nConnection: close\r\n\r\n",
                     path, host);
    long total = 0, head = -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || write(fd, buf, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    /* the head is small here: it ends in the first read's bytes */
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (head < 0) {
            buf[r] = '\0';
            char *end = strstr(buf, "\r\n\r\n");
            if (!end || strncmp(buf, "HTTP/1.1 200", 12) != 0)
                break;
            head = end + 4 - buf;
        }
        total += r;
    }
    close(fd);
    return head < 0 ? -1 : total - head;
}

static void *fetch_main(void *arg)
{
    struct fetch *f = arg;
    f->length = get_url(f->url);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: crawler_pthreads URL...\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int n = argc - 1, created = 0, ok = 0;
    struct fetch *f = calloc((size_t)n, sizeof *f);
    pthread_t *t = calloc((size_t)n, sizeof *t);
    if (!f || !t)
        return 1;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    int64_t t0 = now_ms();
    for (; created < n; created++) {
        f[created] = (struct fetch){.url = argv[1 + created], .length = -1};
        if (pthread_create(&t[created], &attr, fetch_main, &f[created]) != 0)
            break;
    }
    for (int i = 0; i < created; i++) {
        pthread_join(t[i], NULL);
        ok += f[i].length >= 0;
    }
    printf("%d of %d fetched in %lld ms (%d threads)\n", ok, n, (long long)(now_ms() - t0), created);
    return ok == n ? 0 : 1;
}
