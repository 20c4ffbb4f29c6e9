/* proxy.c — a TCP forwarder: the first program of a new user (issue 11). Each client is
 * connected to an upstream server and bytes are copied both ways until both sides are
 * done, or the connection has been idle too long; SIGINT or SIGTERM stops it gracefully.
 *
 * usage: proxy PORT UPSTREAM_HOST UPSTREAM_PORT [IDLE_MS [GRACE_MS]]
 *            listen on PORT (0: a free one; the first line printed names it) and forward
 *            to UPSTREAM. A connection quiet both ways for IDLE_MS (5000) is closed. On
 *            SIGINT or SIGTERM: stop accepting, let the connections in flight finish
 *            for up to GRACE_MS (10000), cut the rest, say how many, exit 0.
 *        proxy --test [N]
 *            the test: an echo upstream in this process, this program as the proxy in
 *            a child process, N (1000) clients at once through it checking every byte,
 *            the idle timeout, peers that close without reading, and both ways of
 *            stopping (all finished in time; one cut at the grace deadline).
 *
 * What it shows:
 *  - a green thread per direction and connection, written as blocking code: the handler
 *    green_serve runs copies client -> upstream, a green thread it starts copies back;
 *  - one idle deadline for both directions (the last time bytes moved either way);
 *  - waiting for "data, or the server stopping" in one call (green_choose);
 *  - the graceful stop: green_server_stop sets green_server_stopping(srv), after which a
 *    connection quiet for STOP_IDLE_MS is not "in flight" and closes; the others finish
 *    or, at the grace deadline, their handlers are killed. A killed handler still waits
 *    for its copier, which uses the handler's stack, under green_shield_push;
 *  - no SIGPIPE handling: libgreen's socket writes report EPIPE instead of raising it.
 */
#define _GNU_SOURCE
#include <green.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

enum { IDLE_MS = 5000, GRACE_MS = 10000, STOP_IDLE_MS = 1000, CONNECT_MS = 5000, BUF = 16384 };

/* ======================================================================== */
/*  The proxy                                                               */
/* ======================================================================== */

struct config {
    const char *up_host, *up_port;
    int64_t idle_ms;
    green_server_t *srv;        /* set before any handler runs (they run on this hub) */
    long served, cut;           /* connections done; of those, cut at the grace deadline */
};

/* One forwarded connection, in its handler's frame: the copier green thread borrows it,
 * so the handler must outlive the copier, even when killed. */
struct conn {
    struct config *cfg;
    int client, upstream;
    int64_t last;               /* when bytes last moved, either way */
};

/* When a quiet connection is closed: IDLE_MS after bytes last moved; once the server is
 * stopping, STOP_IDLE_MS at most (a connection that quiet is not in flight). */
static int64_t idle_deadline(const struct conn *c)
{
    int64_t idle = c->cfg->idle_ms;
    if (green_event_is_set(green_server_stopping(c->cfg->srv)) && idle > STOP_IDLE_MS)
        idle = STOP_IDLE_MS;
    return c->last + idle;
}

/* Copy from -> to until from's EOF (passed on as a half-close: 0), or the connection is
 * idle, an error, or a kill (-1 + errno). */
static int copy(struct conn *c, int from, int to)
{
    char buf[BUF];
    green_event_t *stopping = green_server_stopping(c->cfg->srv);
    for (;;) {
        /* data, or the server starting to stop (which shortens the idle deadline) */
        green_clause_t wait[2] = {
            {.op = GREEN_WAIT_FD, .fd = from, .events = GREEN_READ},
            {.op = GREEN_WAIT_EVENT, .event = stopping},
        };
        int k = green_choose(wait, green_event_is_set(stopping) ? 1 : 2, idle_deadline(c));
        if (k < 0 && errno == ETIMEDOUT && green_now() < idle_deadline(c))
            continue; /* the other direction moved meanwhile */
        if (k < 0)
            return -1; /* idle (ETIMEDOUT), or killed (ECANCELED) */
        if (k == 1)
            continue;
        ssize_t n = green_read(from, buf, sizeof buf, 0);
        if (n == 0) {
            shutdown(to, SHUT_WR);
            return 0;
        }
        if (n < 0 && errno == ETIMEDOUT)
            continue; /* nothing after all */
        if (n < 0)
            return -1;
        c->last = green_now();
        if (green_write(to, buf, (size_t)n, idle_deadline(c)) != n)
            return -1;
        c->last = green_now();
    }
}

/* The copier: upstream -> client. If it ends badly, the handler's direction is ended
 * too (its reads of the client see EOF). */
static void *copy_back(void *arg)
{
    struct conn *c = arg;
    if (copy(c, c->upstream, c->client) != 0)
        shutdown(c->client, SHUT_RD);
    return NULL;
}

/* green_serve's handler: client -> upstream here, upstream -> client in a copier. */
static void forward(int client, void *arg)
{
    struct config *cfg = arg;
    struct conn c = {cfg, client, -1, green_now()};
    c.upstream = green_tcp_connect(cfg->up_host, cfg->up_port, green_after(CONNECT_MS));
    if (c.upstream < 0)
        return;
    green_t back = green_spawn(copy_back, &c);
    if (back) {
        green_set_name(back, "proxy upstream->client");
        if (copy(&c, client, c.upstream) != 0)
            green_kill(back); /* idle, an error, or we were killed: it stops too */
        if (green_join(back, NULL, -1) != 0) {
            /* killed (the grace deadline): back uses c, in this frame, so it must be
             * waited for all the same */
            green_kill(back);
            green_shield_push();
            green_join(back, NULL, -1);
            green_shield_pop();
        }
    }
    if (green_cancelled())
        cfg->cut++;
    cfg->served++;
    green_close(c.upstream);
}

/* As many fds as the hard limit allows: two per connection. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int run_proxy(const char *port, const char *up_host, const char *up_port, int64_t idle_ms,
                     int64_t grace_ms)
{
    /* blocked from the start, so that they wait in the kernel for green_signal_wait_set */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    raise_fd_limit();
    int lfd = green_tcp_listen(NULL, port, 4096);
    if (lfd < 0)
        return perror("listen"), 1;
    struct config cfg = {.up_host = up_host, .up_port = up_port, .idle_ms = idle_ms};
    green_serve_opts_t opts = {.max_conns = 10000, .attr = {.name = "proxy client->upstream"}};
    cfg.srv = green_serve(lfd, forward, &cfg, &opts);
    if (!cfg.srv)
        return perror("green_serve"), 1;
    printf("proxy: listening on port %d, forwarding to %s:%s\n", green_socket_port(lfd), up_host,
           up_port);
    fflush(stdout);
    int signo = green_signal_wait_set(&stop, -1);
    printf("proxy: %s: stopping, %lld ms for the connections in flight\n", strsignal(signo),
           (long long)grace_ms);
    fflush(stdout);
    green_server_stop(cfg.srv, green_after(grace_ms));
    green_close(lfd);
    printf("proxy: stopped; %ld connections, %ld cut at the deadline\n", cfg.served, cfg.cut);
    return 0;
}

/* ======================================================================== */
/*  The test                                                                */
/* ======================================================================== */

enum { ROUNDS = 5, MAX_MSG = 32768, FAR_MS = 60000, TEST_IDLE_MS = 500, TEST_GRACE_MS = 300 };

static int fails;

#define CHECK(cond, ...)                                          \
    do {                                                          \
        if (!(cond)) {                                            \
            fprintf(stderr, "proxy test: " __VA_ARGS__);          \
            fprintf(stderr, " (%s:%d: %s)\n", __FILE__, __LINE__, #cond); \
            fails++;                                              \
        }                                                         \
    } while (0)

/* The upstream: echoes until EOF. */
static void echo(int fd, void *arg)
{
    (void)arg;
    char buf[BUF];
    ssize_t n;
    while ((n = green_read(fd, buf, sizeof buf, green_after(FAR_MS))) > 0)
        if (green_write(fd, buf, (size_t)n, green_after(FAR_MS)) != n)
            break;
}

/* A proxy in a child process: this very program, its first line read from a pipe. */
struct child {
    pid_t pid;
    int out;                    /* its stdout */
    char port[16];
};

/* One line of the child's output (without the newline); 0, or -1 at EOF or on an error. */
static int read_line(int fd, char *line, size_t size)
{
    size_t n = 0;
    while (n + 1 < size) {
        ssize_t r = green_read(fd, line + n, 1, green_after(FAR_MS));
        if (r <= 0)
            return -1;
        if (line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
    return 0;
}

static int child_start(struct child *ch, const char *up_port, int idle_ms, int grace_ms)
{
    char self[4096], idle[16], grace[16];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    int out[2];
    if (len < 0 || pipe2(out, O_CLOEXEC) != 0)
        return -1;
    self[len] = '\0';
    snprintf(idle, sizeof idle, "%d", idle_ms);
    snprintf(grace, sizeof grace, "%d", grace_ms);
    char *argv[] = {self, "0", "127.0.0.1", (char *)up_port, idle, grace, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    extern char **environ;
    int err = posix_spawn(&ch->pid, self, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    ch->out = out[0];
    char line[256];
    int port;
    if (err != 0 || read_line(ch->out, line, sizeof line) != 0 ||
        sscanf(line, "proxy: listening on port %d", &port) != 1)
        return -1;
    snprintf(ch->port, sizeof ch->port, "%d", port);
    return 0;
}

/* Its exit: 0 when it exited 0, its last line in `last`. */
static int child_wait(struct child *ch, char *last, size_t size)
{
    int status = 0;
    last[0] = '\0';
    char line[256];
    while (read_line(ch->out, line, sizeof line) == 0)
        snprintf(last, size, "%s", line);
    green_close(ch->out);
    if (green_waitpid(ch->pid, &status, green_after(FAR_MS)) != ch->pid)
        return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Write all of buf, then read as much back and compare: 0 when it came back intact. */
static int round_trip(int fd, const char *buf, size_t n)
{
    char back[MAX_MSG];
    int64_t deadline = green_after(FAR_MS);
    if (green_write(fd, buf, n, deadline) != (ssize_t)n)
        return -1;
    for (size_t got = 0; got < n;) {
        ssize_t r = green_read(fd, back + got, n - got, deadline);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return memcmp(buf, back, n) == 0 ? 0 : -1;
}

static size_t message(char *buf, long id, int round)
{
    size_t n = 1 + (size_t)(id * 7919 + round * 104729) % MAX_MSG;
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)(id + round + (long)i);
    return n;
}

struct clients {
    const char *port;
    long next_id, ok;
};

static void *client(void *arg)
{
    struct clients *cs = arg;
    long id = cs->next_id++;
    int fd = green_tcp_connect("127.0.0.1", cs->port, green_after(FAR_MS));
    if (fd < 0)
        return NULL;
    char buf[MAX_MSG];
    int r = 0;
    for (int round = 0; round < ROUNDS && r == 0; round++)
        r = round_trip(fd, buf, message(buf, id, round));
    if (r == 0)
        cs->ok++;
    green_close(fd);
    return NULL;
}

/* n clients at once through the proxy, every byte checked. */
static void test_many(const char *port, int n)
{
    struct clients cs = {port, 0, 0};
    green_group_t g;
    green_group_init(&g, 0);
    int64_t t0 = green_now();
    for (int i = 0; i < n; i++)
        green_group_spawn(&g, client, &cs, -1);
    green_group_join(&g, -1);
    green_group_destroy(&g);
    printf("%d clients at once: %ld of them got every byte back (%d round trips each) in %lld ms\n",
           n, cs.ok, ROUNDS, (long long)(green_now() - t0));
    CHECK(cs.ok == n, "%ld of %d clients", cs.ok, n);
}

/* A client that says nothing is disconnected, and not before the idle timeout. */
static void test_idle(const char *port)
{
    int64_t t0 = green_now(); /* before the proxy can accept: a lower bound of its idle clock */
    int fd = green_tcp_connect("127.0.0.1", port, green_after(FAR_MS));
    CHECK(fd >= 0, "connect");
    char c;
    ssize_t r = green_read(fd, &c, 1, green_after(FAR_MS));
    int64_t took = green_now() - t0;
    printf("an idle connection was closed after %lld ms (idle timeout %d ms)\n", (long long)took,
           TEST_IDLE_MS);
    CHECK(r == 0, "an idle connection read %zd (errno %d), not EOF", r, errno);
    CHECK(took >= TEST_IDLE_MS - 2, "closed after %lld ms", (long long)took); /* ms rounding */
    green_close(fd);
}

static void *send_and_vanish(void *arg)
{
    const char *port = arg;
    int fd = green_tcp_connect("127.0.0.1", port, green_after(FAR_MS));
    if (fd < 0)
        return NULL;
    static char big[256 * 1024];
    green_write(fd, big, sizeof big, green_after(FAR_MS)); /* echoed to nobody */
    green_close(fd);
    return NULL;
}

/* Clients that close without reading what comes back: the proxy's writes to them fail
 * (EPIPE, ECONNRESET) and it goes on serving. */
static void test_peers_closing(const char *port)
{
    green_group_t g;
    green_group_init(&g, 0);
    for (int i = 0; i < 20; i++)
        green_group_spawn(&g, send_and_vanish, (void *)port, -1);
    green_group_join(&g, -1);
    green_group_destroy(&g);
    green_sleep(100); /* the echoes meet closed sockets meanwhile */
    test_many(port, 10);
    printf("peers closing: the proxy lives on\n");
}

/* SIGTERM with a connection in flight: it keeps working, the proxy waits for it, then
 * exits 0 having cut nothing. */
static void test_graceful_stop(struct child *ch)
{
    int fd = green_tcp_connect("127.0.0.1", ch->port, green_after(FAR_MS));
    char buf[MAX_MSG], last[256];
    CHECK(fd >= 0 && round_trip(fd, buf, message(buf, 1, 0)) == 0, "before the stop");
    CHECK(kill(ch->pid, SIGTERM) == 0, "kill");
    char line[256];
    CHECK(read_line(ch->out, line, sizeof line) == 0 && strstr(line, "stopping"), "no stopping line");
    CHECK(round_trip(fd, buf, message(buf, 1, 1)) == 0, "in flight after SIGTERM");
    int status;
    errno = 0;
    CHECK(green_waitpid(ch->pid, &status, 0) == -1 && errno == ETIMEDOUT,
          "the proxy exited with a connection in flight");
    green_close(fd);
    CHECK(child_wait(ch, last, sizeof last) == 0, "the proxy did not exit 0");
    printf("SIGTERM: %s\n", last);
    CHECK(strstr(last, " 0 cut") != NULL, "%s", last);
}

/* Keeps talking, a byte at a time, until the proxy cuts it. */
static void *chatter(void *arg)
{
    const char *port = arg;
    int fd = green_tcp_connect("127.0.0.1", port, green_after(FAR_MS));
    char c = 'c';
    while (fd >= 0 && round_trip(fd, &c, 1) == 0)
        green_sleep(20);
    green_close(fd);
    return NULL;
}

/* A connection still busy at the grace deadline is cut: its handler is killed and
 * cleans up under a shield; the proxy exits 0. */
static void test_cut_at_deadline(struct child *ch)
{
    green_t talker = green_spawn(chatter, ch->port);
    green_sleep(100); /* talking */
    char last[256];
    CHECK(kill(ch->pid, SIGTERM) == 0, "kill");
    CHECK(child_wait(ch, last, sizeof last) == 0, "the proxy did not exit 0");
    green_join(talker, NULL, -1); /* it saw the cut */
    printf("SIGTERM, a short grace: %s\n", last);
    CHECK(strstr(last, " 1 cut") != NULL, "%s", last);
}

static int run_test(int n)
{
    raise_fd_limit();
    int ufd = green_tcp_listen("127.0.0.1", "0", 4096);
    green_serve_opts_t opts = {.max_conns = 20000};
    green_server_t *upstream = ufd >= 0 ? green_serve(ufd, echo, NULL, &opts) : NULL;
    if (!upstream)
        return perror("upstream"), 1;
    char up_port[16];
    snprintf(up_port, sizeof up_port, "%d", green_socket_port(ufd));

    /* a patient proxy for the crowd (a loaded machine may keep a connection quiet for
     * a while), then a quick one for the timeouts */
    struct child ch;
    if (child_start(&ch, up_port, FAR_MS, FAR_MS) != 0)
        return perror("proxy child"), 1;
    test_many(ch.port, n);
    test_peers_closing(ch.port);
    test_graceful_stop(&ch);

    if (child_start(&ch, up_port, TEST_IDLE_MS, TEST_GRACE_MS) != 0)
        return perror("proxy child"), 1;
    test_idle(ch.port);
    test_cut_at_deadline(&ch);

    green_server_stop(upstream, green_after(FAR_MS));
    green_close(ufd);
    printf("%s\n", fails ? "proxy test: FAILED" : "proxy test: ok");
    return fails ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "--test"))
        return run_test(argc > 2 ? atoi(argv[2]) : 1000);
    if (argc >= 4 && argc <= 6)
        return run_proxy(argv[1], argv[2], argv[3], argc > 4 ? atoll(argv[4]) : IDLE_MS,
                         argc > 5 ? atoll(argv[5]) : GRACE_MS);
    fprintf(stderr, "usage: proxy PORT UPSTREAM_HOST UPSTREAM_PORT [IDLE_MS [GRACE_MS]] | "
                    "proxy --test [N]\n");
    return 2;
}
