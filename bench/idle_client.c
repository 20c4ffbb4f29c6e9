/* idle_client.c — the client side of the idle-connections benchmark (bench/net.sh):
 * opens N keep-alive connections to an HTTP server, sends one request on each and reads
 * its response, then holds them all open, idle, until its stdin closes.
 *
 * usage: idle_client HOST PORT N
 * Prints one line when all are open: "connected=N failed=F ms=T" (key=value, like the
 * other benchmarks). It is a process of its own so that the server's and the client's
 * sockets count against two fd limits (10,000 + 10,000 under a 20,000 ulimit -n). */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char REQUEST[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Reads one response (head + Content-Length bytes of body): 0, or -1. */
static int read_response(int fd)
{
    char buf[4096];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end) {
            const char *cl = strcasestr(buf, "\r\nContent-Length:");
            size_t body = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
            if (len >= (size_t)(end + 4 - buf) + body)
                return 0;
        }
        if (len == sizeof buf - 1)
            return -1;
    }
}

static int open_one(const struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) != 0 ||
        write(fd, REQUEST, sizeof REQUEST - 1) != (ssize_t)(sizeof REQUEST - 1) || read_response(fd) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: idle_client HOST PORT N\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
        fprintf(stderr, "idle_client: %s: not an IPv4 address\n", argv[1]);
        return 2;
    }
    long n = atol(argv[3]), ok = 0, failed = 0;
    double t0 = now_ms();
    for (long i = 0; i < n; i++) {
        if (open_one(&sa) >= 0)
            ok++;
        else if (++failed > 100)
            break; /* the server is not keeping up: report what we have */
    }
    printf("connected=%ld failed=%ld ms=%.0f\n", ok, failed, now_ms() - t0);
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0 || errno == EINTR)
        ;
    return 0; /* exit closes every connection */
}
