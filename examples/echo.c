/* echo.c — an echo server and its client (gevent's examples/echoserver.py).
 *
 * usage: echo [--tls CERT KEY] server PORT [THREADS]   serve until Ctrl-C
 *        echo [--tls CERT KEY] client HOST PORT N      N clients at once, each sends 10
 *                                     lines and checks every echo (over TLS: CERT is the
 *                                     CA the server is verified with)
 *        echo [--tls CERT KEY]        both in this process, on a free port (the test)
 *
 * The server is green_serve with a handler that copies what it reads back to the
 * client; green_serve closes the client when the handler returns. */
#include <green.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ROUNDS = 10, TIMEOUT_MS = 10000 };

/* With --tls: the server's certificate and key; a client trusts that certificate. */
static green_tls_config_t server_tls, client_tls;
static int use_tls;

/* One connection's I/O, over TLS or not. */
struct conn {
    int fd;
    green_tls_t *tls;
};

static ssize_t conn_read(struct conn *c, void *buf, size_t n, int64_t deadline)
{
    return c->tls ? green_tls_read(c->tls, buf, n, deadline) : green_read(c->fd, buf, n, deadline);
}

static ssize_t conn_write(struct conn *c, const void *buf, size_t n, int64_t deadline)
{
    return c->tls ? green_tls_write(c->tls, buf, n, deadline) : green_write(c->fd, buf, n, deadline);
}

/* ---- server ---- */

static void echo_conn(struct conn *c)
{
    char buf[4096];
    ssize_t n;
    /* a client silent for TIMEOUT_MS is dropped */
    while ((n = conn_read(c, buf, sizeof buf, green_after(TIMEOUT_MS))) > 0)
        if (conn_write(c, buf, (size_t)n, green_after(TIMEOUT_MS)) != n)
            break;
}

static void echo(int fd, void *arg)
{
    (void)arg;
    echo_conn(&(struct conn){fd, NULL});
}

/* over TLS: green_serve has made the handshake, and sends close_notify afterwards */
static void echo_tls(green_tls_t *tls, int fd, void *arg)
{
    (void)arg;
    echo_conn(&(struct conn){fd, tls});
}

static green_server_t *serve(int listen_fd, int threads)
{
    green_serve_opts_t opts = {.max_conns = 10000, .threads = threads};
    if (use_tls) {
        opts.tls = &server_tls;
        opts.tls_handler = echo_tls;
    }
    green_server_t *srv = green_serve(listen_fd, echo, NULL, &opts);
    if (!srv)
        perror("green_serve");
    return srv;
}

/* ---- client ---- */

struct client_run {
    const char *host, *port;
    long echoed;   /* lines that came back intact */
};

/* Reads exactly n bytes: 0, or -1 at EOF or on an error. */
static int read_exactly(struct conn *c, char *buf, size_t n, int64_t deadline)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = conn_read(c, buf + got, n - got, deadline);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static void *client(void *arg)
{
    struct client_run *run = arg;
    int fd = green_tcp_connect(run->host, run->port, green_after(TIMEOUT_MS));
    if (fd < 0) {
        perror("connect");
        return NULL;
    }
    struct conn c = {fd, NULL};
    if (use_tls && !(c.tls = green_tls_connect(fd, run->host, &client_tls, green_after(TIMEOUT_MS)))) {
        fprintf(stderr, "TLS: %s\n", green_tls_error());
        green_close(fd);
        return NULL;
    }
    for (int i = 0; i < ROUNDS; i++) {
        char line[64], back[64];
        int len = snprintf(line, sizeof line, "line %d from green thread %llu\n", i,
                           (unsigned long long)green_id(green_current()));
        int64_t deadline = green_after(TIMEOUT_MS);
        if (conn_write(&c, line, (size_t)len, deadline) != len ||
            read_exactly(&c, back, (size_t)len, deadline) != 0 || memcmp(line, back, (size_t)len) != 0)
            break;
        run->echoed++;
    }
    if (c.tls)
        green_tls_close(c.tls, green_after(TIMEOUT_MS));
    green_close(fd);
    return NULL;
}

/* n clients at once; 0 when every line came back. */
static int clients(const char *host, const char *port, int n)
{
    struct client_run run = {host, port, 0};
    green_group_t group;
    green_group_init(&group, 0);
    int64_t t0 = green_now();
    for (int i = 0; i < n; i++)
        green_group_spawn(&group, client, &run, -1);
    green_group_join(&group, -1);
    green_group_destroy(&group);
    printf("%d clients: %ld of %ld lines echoed in %lld ms\n", n, run.echoed, (long)n * ROUNDS,
           (long long)(green_now() - t0));
    return run.echoed == (long)n * ROUNDS ? 0 : 1;
}

/* ---- modes ---- */

static int run_server(const char *port, int threads)
{
    int fd = green_tcp_listen(NULL, port, 1024);
    if (fd < 0)
        return perror("listen"), 1;
    green_server_t *srv = serve(fd, threads);
    if (!srv)
        return 1;
    printf("echo server on port %d; try: nc localhost %d (Ctrl-C stops it)\n", green_socket_port(fd),
           green_socket_port(fd));
    fflush(stdout);
    green_signal_wait(SIGINT, -1);
    green_server_stop(srv, green_after(1000)); /* a second for the clients to finish */
    green_close(fd);
    return 0;
}

static int run_both(void)
{
    int fd = green_tcp_listen("127.0.0.1", "0", 1024);
    if (fd < 0)
        return perror("listen"), 1;
    green_server_t *srv = serve(fd, 1);
    if (!srv)
        return 1;
    char port[16];
    snprintf(port, sizeof port, "%d", green_socket_port(fd));
    int rc = clients("127.0.0.1", port, 100);
    green_server_stop(srv, -1);
    green_close(fd);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[1], "--tls")) {
        use_tls = 1;
        server_tls = (green_tls_config_t){.cert_file = argv[2], .key_file = argv[3]};
        client_tls = (green_tls_config_t){.ca_file = argv[2]};
        argv += 3, argc -= 3;
        argv[0] = "echo";
    }
    if (argc >= 3 && !strcmp(argv[1], "server"))
        return run_server(argv[2], argc > 3 ? atoi(argv[3]) : 1);
    if (argc == 5 && !strcmp(argv[1], "client"))
        return clients(argv[2], argv[3], atoi(argv[4]));
    if (argc == 1)
        return run_both();
    fprintf(stderr, "usage: echo [--tls CERT KEY] server PORT [THREADS] | client HOST PORT N | (nothing)\n");
    return 2;
}
