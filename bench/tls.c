/* tls.c — bench_tls: TLS handshakes and idle TLS connections (issue 15), for bench/tls.sh.
 *
 *   bench_tls serve PORT CERT KEY [shared]   a libgreen TLS server (green_serve, one hub):
 *                                            reads a line, answers "pong\n", waits for EOF
 *   bench_tls load PORT SECONDS CONC new|resumed CA PID
 *                                            CONC green threads make TLS 1.3 handshakes
 *                                            (X25519) to 127.0.0.1:PORT for SECONDS: each
 *                                            sends "ping\n", reads the answer, closes; prints
 *                                            the count and the CPU that process PID spent
 *   bench_tls idle PORT N CA PID             holds N TLS connections open and idle; prints
 *                                            PID's resident memory before and after
 * It prints key=value lines; it asserts nothing. */
#include <green.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void answer(green_tls_t *t, int fd, void *arg)
{
    (void)fd, (void)arg;
    char buf[256];
    if (green_tls_read(t, buf, sizeof buf, green_after(30000)) <= 0)
        return;
    if (green_tls_write(t, "pong\n", 5, green_after(30000)) != 5)
        return;
    while (green_tls_read(t, buf, sizeof buf, -1) > 0) {
    }
}

static int serve(const char *port, const char *cert, const char *key, int shared)
{
    int lfd = green_tcp_listen("127.0.0.1", port, 4096);
    static green_tls_config_t cfg;
    cfg = (green_tls_config_t){.cert_file = cert, .key_file = key};
    green_serve_opts_t o = {.tls = &cfg, .tls_handler = answer,
                            .attr = {.stack_mode = shared ? GREEN_STACK_SHARED : GREEN_STACK_DEDICATED}};
    if (lfd < 0 || !green_serve(lfd, NULL, NULL, &o)) {
        fprintf(stderr, "serve: %s (%s)\n", strerror(errno), green_tls_error());
        return 1;
    }
    while (green_sleep(3600 * 1000) == 0) { /* until killed */
    }
    return 0;
}

/* utime + stime of pid, in ms */
static long cpu_ms(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (long)((ut + st) * 1000 / (unsigned long)sysconf(_SC_CLK_TCK));
}

static long rss_kib(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            v = atol(line + 6);
    if (f)
        fclose(f);
    return v;
}

static const char *port;
static green_tls_config_t client;
static int64_t until;
static long done, failed;

static green_tls_t *dial(int *fd)
{
    *fd = green_tcp_connect("127.0.0.1", port, green_after(10000));
    if (*fd < 0)
        return NULL;
    green_tls_t *t = green_tls_connect(*fd, "localhost", &client, green_after(10000));
    if (!t) {
        green_close(*fd);
        return NULL;
    }
    return t;
}

static void *loader(void *arg)
{
    (void)arg;
    while (green_now() < until) {
        int fd;
        green_tls_t *t = dial(&fd);
        char buf[64];
        if (t && green_tls_write(t, "ping\n", 5, green_after(10000)) == 5 &&
            green_tls_read(t, buf, sizeof buf, green_after(10000)) > 0)
            done++;
        else
            failed++;
        if (t) {
            green_tls_close(t, green_after(1000));
            green_close(fd);
        }
    }
    return NULL;
}

static int load(int seconds, int conc, int resumed, const char *ca, int pid)
{
    client = (green_tls_config_t){.ca_file = ca, .min_version = GREEN_TLS_1_3, .groups = "X25519",
                                  .no_resumption = !resumed};
    if (resumed) { /* one connection first, for a session to resume */
        until = green_now() + 1;
        loader(NULL);
        done = failed = 0;
    }
    green_t *g = calloc((size_t)conc, sizeof *g);
    long c0 = cpu_ms(pid), me0 = cpu_ms(getpid());
    int64_t t0 = green_now();
    until = t0 + seconds * 1000;
    for (int i = 0; i < conc; i++)
        g[i] = green_spawn(loader, NULL);
    green_joinall(g, (size_t)conc, -1);
    int64_t ms = green_now() - t0;
    printf("handshakes=%ld failed=%ld ms=%lld server_cpu_ms=%ld client_cpu_ms=%ld\n", done, failed,
           (long long)ms, cpu_ms(pid) - c0, cpu_ms(getpid()) - me0);
    free(g);
    return failed && !done;
}

static long held;

static void *holder(void *arg)
{
    (void)arg;
    int fd;
    green_tls_t *t = dial(&fd);
    char buf[64];
    if (!t || green_tls_write(t, "ping\n", 5, green_after(10000)) != 5 ||
        green_tls_read(t, buf, sizeof buf, green_after(10000)) <= 0) {
        failed++;
        return NULL;
    }
    held++;
    while (green_sleep(3600 * 1000) == 0) { /* until killed */
    }
    green_tls_close(t, 0);
    green_close(fd);
    return NULL;
}

static int idle(int n, const char *ca, int pid)
{
    client = (green_tls_config_t){.ca_file = ca, .min_version = GREEN_TLS_1_3, .groups = "X25519",
                                  .no_resumption = 1};
    green_sleep(200);
    long r0 = rss_kib(pid);
    green_t *g = calloc((size_t)n, sizeof *g);
    green_attr_t shared = {.stack_mode = GREEN_STACK_SHARED};
    for (int i = 0; i < n; i++) {
        g[i] = green_spawn_attr(holder, NULL, &shared);
        if (i % 64 == 63)
            green_sleep(5); /* not all in the backlog at once */
    }
    while (held + failed < n)
        green_sleep(20);
    green_sleep(500);
    long r1 = rss_kib(pid);
    printf("held=%ld failed=%ld rss0_kib=%ld rss_kib=%ld bytes_per_conn=%ld\n", held, failed, r0, r1,
           held ? (r1 - r0) * 1024 / held : -1);
    for (int i = 0; i < n; i++)
        green_kill(g[i]);
    green_joinall(g, (size_t)n, -1);
    free(g);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 5 && !strcmp(argv[1], "serve"))
        return serve(argv[2], argv[3], argv[4], argc > 5 && !strcmp(argv[5], "shared"));
    if (argc == 8 && !strcmp(argv[1], "load")) {
        port = argv[2];
        return load(atoi(argv[3]), atoi(argv[4]), !strcmp(argv[5], "resumed"), argv[6], atoi(argv[7]));
    }
    if (argc == 6 && !strcmp(argv[1], "idle")) {
        port = argv[2];
        return idle(atoi(argv[3]), argv[4], atoi(argv[5]));
    }
    fprintf(stderr, "usage: bench_tls serve PORT CERT KEY [shared] | load PORT SECONDS CONC new|resumed CA PID"
                    " | idle PORT N CA PID\n");
    return 2;
}
