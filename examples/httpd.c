/* httpd.c — an HTTP/1.1 keep-alive server answering every request with a small static
 * page; requests are parsed by http-parser (see http.h).
 *
 * usage: httpd [--shared] [--tls CERT KEY] [PORT [THREADS]]
 *                                 serve until Ctrl-C / SIGINT (port 8080, one hub);
 *                                 --shared runs the handlers on the shared stack;
 *                                 --tls serves https with that certificate and key
 *        httpd [--shared] [--tls CERT KEY] --test
 *                                 serve on a free port; a tiny client checks keep-alive,
 *                                 pipelined and closing requests, then it stops
 * Benchmark it with wrk (installed by `make bench`), e.g.:
 *        httpd 8080 2 &  wrk -t2 -c100 -d10s http://127.0.0.1:8080/ */
#include "httpd_session.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- server ---- */

static green_tls_config_t server_tls, client_tls; /* --tls: the client trusts CERT */
static int use_tls;

static green_server_t *serve(int fd, int threads, int stack_mode)
{
    green_serve_opts_t opts = {.max_conns = 10000, .threads = threads, .attr = {.stack_mode = stack_mode}};
    if (use_tls) {
        opts.tls = &server_tls;
        opts.tls_handler = session_tls;
    }
    green_server_t *srv = green_serve(fd, session, NULL, &opts);
    if (!srv)
        perror("green_serve");
    return srv;
}

/* ---- a tiny client, for the test ---- */

static int on_body(http_parser *p, const char *at, size_t len)
{
    size_t *got = p->data;
    if (*got + len <= sizeof BODY - 1 && memcmp(BODY + *got, at, len) == 0)
        *got += len;
    else
        *got = (size_t)-1;
    return 0;
}

static const http_parser_settings response_settings = {.on_body = on_body,
                                                       .on_message_complete = http_message_end};

/* Reads one response: 1 if it is our page (and *keep_alive says what the server said
 * about the connection), 0 otherwise. p->data counts the body's bytes that match. */
static int read_page(struct http_conn *c, http_parser *p, int *keep_alive)
{
    size_t *got = p->data;
    *got = 0;
    if (http_read_message(c, p, &response_settings, green_after(5000)) != 1)
        return 0;
    *keep_alive = http_should_keep_alive(p);
    return p->status_code == 200 && *got == sizeof BODY - 1;
}

static int send_str(struct http_conn *c, const char *s)
{
    return http_write(c->fd, c->tls, s, strlen(s), green_after(5000)) == (ssize_t)strlen(s) ? 0 : -1;
}

#define GET(extra) "GET / HTTP/1.1\r\nHost: localhost\r\n" extra "\r\n"

/* Three requests one after another on one connection, two pipelined in one write, one
 * that asks to close; then the server must close. 0 when all went as it should. */
static int check(const char *port)
{
    int fd = green_tcp_connect("127.0.0.1", port, green_after(5000));
    if (fd < 0)
        return perror("connect"), 1;
    struct http_conn *c = malloc(sizeof *c);
    http_conn_init(c, fd);
    if (use_tls && !(c->tls = green_tls_connect(fd, "localhost", &client_tls, green_after(5000)))) {
        fprintf(stderr, "TLS: %s\n", green_tls_error());
        return 1;
    }
    http_parser p;
    http_parser_init(&p, HTTP_RESPONSE);
    size_t got;
    p.data = &got;
    int pages = 0, keep_alive = 0, failed = 0;
    for (int i = 0; i < 3; i++) {
        failed |= send_str(c, GET(""));
        pages += read_page(c, &p, &keep_alive);
        failed |= !keep_alive;
    }
    failed |= send_str(c, GET("") GET(""));
    for (int i = 0; i < 2; i++)
        pages += read_page(c, &p, &keep_alive);
    failed |= send_str(c, GET("Connection: close\r\n"));
    pages += read_page(c, &p, &keep_alive);
    failed |= keep_alive;
    char byte;
    /* closed by the server (with close_notify over TLS) */
    failed |= (c->tls ? green_tls_read(c->tls, &byte, 1, green_after(5000))
                      : green_read(fd, &byte, 1, green_after(5000))) != 0;
    if (c->tls)
        green_tls_close(c->tls, green_after(1000));
    green_close(fd);
    free(c);
    printf("6 requests on one connection: %d pages%s\n", pages, failed ? ", but something was wrong" : "");
    return pages == 6 && !failed ? 0 : 1;
}

/* ---- modes ---- */


static int run(const char *host, const char *port, int threads, int stack_mode, int test)
{
    int fd = green_tcp_listen(host, port, 1024);
    if (fd < 0)
        return perror("listen"), 1;
    green_server_t *srv = serve(fd, threads, stack_mode);
    if (!srv)
        return 1;
    char bound[16];
    snprintf(bound, sizeof bound, "%d", green_socket_port(fd));
    printf("httpd on port %s, %d hub(s), %s stacks; benchmark it with:\n  wrk -t2 -c100 -d10s %s://127.0.0.1:%s/\n",
           bound, threads > 1 ? threads : 1, stack_mode == GREEN_STACK_SHARED ? "shared" : "dedicated",
           use_tls ? "https" : "http", bound);
    fflush(stdout);
    int rc = 0;
    if (test)
        rc = check(bound);
    else
        green_signal_wait(SIGINT, -1);
    green_server_stop(srv, green_after(1000));
    green_close(fd);
    return rc;
}

int main(int argc, char **argv)
{
    int mode = GREEN_STACK_DEDICATED;
    if (argc > 1 && !strcmp(argv[1], "--shared")) {
        mode = GREEN_STACK_SHARED;
        argv++, argc--;
    }
    if (argc > 3 && !strcmp(argv[1], "--tls")) {
        use_tls = 1;
        server_tls = (green_tls_config_t){.cert_file = argv[2], .key_file = argv[3]};
        client_tls = (green_tls_config_t){.ca_file = argv[2]};
        argv += 3, argc -= 3;
    }
    if (argc == 2 && !strcmp(argv[1], "--test"))
        return run("127.0.0.1", "0", 1, mode, 1);
    if (argc > 3 || (argc > 1 && argv[1][0] == '-')) {
        fprintf(stderr, "usage: httpd [--shared] [--tls CERT KEY] [PORT [THREADS] | --test]\n");
        return 2;
    }
    return run(NULL, argc > 1 ? argv[1] : "8080", argc > 2 ? atoi(argv[2]) : 1, mode, 0);
}
