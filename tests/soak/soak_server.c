/* soak_server.c — the server side of the soak test (tests/soak/soak_load.c starts it).
 *
 * One hub serves, through green_serve, examples/httpd's HTTP handler (the same
 * httpd_session.h, so the same bytes) on one port and examples/echo's echo handler on
 * another, while a churn green thread spawns and kills green threads of every kind of
 * wait around them. Every second it prints a sample of itself on stdout:
 *     stats MS RSS_KB FDS ALIVE CONNS
 * (ms since start, VmRSS of /proc/self/status, entries of /proc/self/fd, green_stats'
 * live green threads, handlers running). Its first line is "ports HTTP_PORT ECHO_PORT".
 * Commands on stdin, one a line: "churn 1" starts the churn, "churn 0" stops it (kills
 * and joins its green threads), "quit" (or EOF) stops the servers and exits.
 * usage: soak_server [--shared]    (--shared: the handlers run on the shared stack) */
#include "httpd_session.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static long conns;                  /* handlers running (one hub: no atomics needed) */
static int churning;
static green_event_t churn_changed;
static unsigned long long spawned, killed, finished;

static void http_handler(int fd, void *arg)
{
    conns++;
    session(fd, arg);
    conns--;
}

static void echo_handler(int fd, void *arg)
{
    (void)arg;
    conns++;
    char buf[4096];
    ssize_t n;
    while ((n = green_read(fd, buf, sizeof buf, green_after(IDLE_MS))) > 0)
        if (green_write(fd, buf, (size_t)n, green_after(IDLE_MS)) != n)
            break;
    conns--;
}

/* ---- churn ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11) % n;
}

static green_mutex_t churn_mutex;
static green_event_t never;
static green_chan_t *churn_chan;

static void *job(void *arg)
{
    uintptr_t kind = (uintptr_t)arg;
    char c;
    switch (kind % 6) {
    case 0: green_sleep((int64_t)(kind >> 3) % 500); break;
    case 1: green_event_wait(&never, green_after(2000)); break;
    case 2: green_chan_recv(churn_chan, &c, green_after(1000)); break;
    case 3:
        if (green_mutex_lock(&churn_mutex, green_after(1000)) == 0 || errno == EOWNERDEAD) {
            green_sleep(1 + (int64_t)(kind >> 3) % 20);
            green_mutex_unlock(&churn_mutex);
        }
        break;
    case 4:
        for (int i = 0; i < 50; i++)
            if (green_yield() != 0)
                break;
        break;
    case 5:
        green_timeout_push(1 + (int64_t)(kind >> 3) % 50);
        green_event_wait(&never, -1);
        green_timeout_pop();
        break;
    }
    return NULL;
}

enum { CHURN_SLOTS = 64 };

static void *churn(void *arg)
{
    (void)arg;
    green_t slot[CHURN_SLOTS] = {0};
    for (;;) {
        if (!churning) {
            for (int i = 0; i < CHURN_SLOTS; i++)
                if (slot[i]) {
                    green_kill(slot[i]);
                    green_join(slot[i], NULL, -1);
                    slot[i] = NULL;
                    killed++;
                }
            green_event_clear(&churn_changed);
            if (green_event_wait(&churn_changed, -1) != 0)
                return NULL;
            continue;
        }
        int i = (int)rnd(CHURN_SLOTS);
        if (!slot[i]) {
            slot[i] = green_spawn(job, (void *)(uintptr_t)rnd(1u << 20));
            if (slot[i])
                spawned++;
        } else if (green_join(slot[i], NULL, 0) == 0) {
            slot[i] = NULL;
            finished++;
        } else if (rnd(3) == 0) {
            green_kill(slot[i]);
            if (green_join(slot[i], NULL, -1) != 0)
                fprintf(stderr, "soak_server: join of a killed green thread: %s\n", strerror(errno));
            slot[i] = NULL;
            killed++;
        }
        if (rnd(8) == 0 && green_sleep(1) != 0)
            return NULL;
    }
}

/* ---- samples ---- */

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

static long fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    long n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    if (d)
        closedir(d);
    return n - 1; /* not the directory's own fd */
}

static void *sampler(void *arg)
{
    (void)arg;
    int64_t t0 = green_now();
    for (;;) {
        green_stats_t st;
        green_stats(&st);
        printf("stats %lld %ld %ld %llu %ld\n", (long long)(green_now() - t0), rss_kb(), fd_count(),
               (unsigned long long)st.alive, conns);
        fflush(stdout);
        if (green_sleep(1000) != 0)
            return NULL;
    }
}

int main(int argc, char **argv)
{
    int shared = argc > 1 && !strcmp(argv[1], "--shared");
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    green_event_init(&churn_changed);
    green_event_init(&never);
    green_mutex_init(&churn_mutex, GREEN_MUTEX_NORMAL);
    churn_chan = green_chan_new(1, 0);
    int hfd = green_tcp_listen("127.0.0.1", "0", 4096), efd = green_tcp_listen("127.0.0.1", "0", 4096);
    if (hfd < 0 || efd < 0)
        return perror("soak_server: listen"), 1;
    green_serve_opts_t opts = {.max_conns = 0, .attr = {.stack_mode = shared ? GREEN_STACK_SHARED : 0}};
    green_server_t *hs = green_serve(hfd, http_handler, NULL, &opts);
    green_server_t *es = green_serve(efd, echo_handler, NULL, &opts);
    if (!hs || !es)
        return perror("soak_server: green_serve"), 1;
    printf("ports %d %d\n", green_socket_port(hfd), green_socket_port(efd));
    fflush(stdout);
    green_t ch = green_spawn(churn, NULL), sm = green_spawn(sampler, NULL);

    char line[64];
    size_t len = 0;
    for (;;) {
        ssize_t n = green_read(0, line + len, sizeof line - 1 - len, -1);
        if (n <= 0)
            break;
        len += (size_t)n;
        line[len] = 0;
        char *nl;
        int quit = 0;
        while ((nl = strchr(line, '\n'))) {
            *nl = 0;
            if (!strcmp(line, "churn 1") || !strcmp(line, "churn 0")) {
                churning = line[6] == '1';
                green_event_set(&churn_changed);
            } else if (!strcmp(line, "quit"))
                quit = 1;
            len -= (size_t)(nl + 1 - line);
            memmove(line, nl + 1, len + 1);
        }
        if (quit || len == sizeof line - 1)
            break;
    }
    churning = 0;
    green_event_set(&churn_changed);
    green_kill(ch);
    green_join(ch, NULL, -1);
    green_kill(sm);
    green_join(sm, NULL, -1);
    green_server_stop(hs, green_after(1000));
    green_server_stop(es, green_after(1000));
    green_close(hfd);
    green_close(efd);
    fprintf(stderr, "soak_server: churn spawned %llu green threads, killed %llu, %llu finished by themselves\n",
            spawned, killed, finished);
    return 0;
}
