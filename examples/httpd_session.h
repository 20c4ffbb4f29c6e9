/* httpd_session.h — examples/httpd's connection handler: session(fd, arg) reads HTTP/1.x
 * requests on fd (parsed by http-parser, see http.h) and answers each with a small static
 * page, keep-alive and pipelining included, until the client closes, asks to close,
 * sends bad HTTP (400) or stays silent IDLE_MS. It does not close fd.
 *
 * A header of static functions, so that the server inlines it as before, and so that
 * tests/fuzz/fuzz_httpd.c can feed it bytes through a socketpair. */
#ifndef EXAMPLES_HTTPD_SESSION_H
#define EXAMPLES_HTTPD_SESSION_H

#include "http.h"

#include <stdio.h>
#include <stdlib.h>

enum { IDLE_MS = 30000 }; /* a keep-alive connection silent this long is closed */

static const char BODY[] = "Hello from a green thread\n";
static const char BAD_REQUEST[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

static const http_parser_settings request_settings = {.on_message_complete = http_message_end};

/* The answer to the request p has just parsed; HTTP/1.0 clients that asked for
 * keep-alive are told it is granted, and a connection we will close says so.
 * Not inlined: its 256-byte head would otherwise sit in session()'s frame, which stays
 * on the stack while the connection idles (with shared stacks, copied out for each). */
static __attribute__((noinline)) int respond(int fd, green_tls_t *tls, const http_parser *p, int keep_alive)
{
    char head[256 + sizeof BODY];
    const char *conn = !keep_alive ? "Connection: close\r\n"
                       : p->http_minor == 0 ? "Connection: keep-alive\r\n" : "";
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\nServer: libgreen-httpd\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n%s\r\n",
                     sizeof BODY - 1, conn);
    ssize_t len = (ssize_t)(n + sizeof BODY - 1);
    if (tls) { /* one record: head and body copied together */
        memcpy(head + n, BODY, sizeof BODY - 1);
        return green_tls_write(tls, head, (size_t)len, green_after(IDLE_MS)) == len ? 0 : -1;
    }
    struct iovec iov[2] = {{head, (size_t)n}, {(void *)BODY, sizeof BODY - 1}};
    return green_writev(fd, iov, 2, green_after(IDLE_MS)) == len ? 0 : -1;
}

/* A keep-alive connection waits for its next request without a buffer (nginx does the
 * same): the 8 KiB buffer is taken when bytes arrive and given back once they are all
 * parsed, so ten thousand idle clients cost their green threads, not 80 MB of buffers. */
static void session_io(int fd, green_tls_t *tls)
{
    struct http_conn *c = NULL;
    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    for (;;) {
        if (!c) {
            /* (over TLS, OpenSSL may hold a record's rest: no waiting on the fd here) */
            if (!tls && green_wait_fd(fd, GREEN_READ, green_after(IDLE_MS)) < 0)
                break;
            if (!(c = malloc(sizeof *c))) /* 8 KiB: not on a small stack */
                break;
            http_conn_init(c, fd);
            c->tls = tls;
        }
        int r = http_read_message(c, &p, &request_settings, green_after(IDLE_MS));
        if (r < 0 && errno == EPROTO)
            http_write(fd, tls, BAD_REQUEST, sizeof BAD_REQUEST - 1, green_after(IDLE_MS));
        if (r <= 0)
            break;
        int keep_alive = http_should_keep_alive(&p);
        if (respond(fd, tls, &p, keep_alive) != 0 || !keep_alive)
            break;
        if (c->off == c->len) { /* nothing pipelined behind it */
            free(c);
            c = NULL;
        }
    }
    free(c); /* green_serve closes fd (and sends close_notify) */
}

static void session(int fd, void *arg)
{
    (void)arg;
    session_io(fd, NULL);
}

/* https: green_serve made the handshake */
static __attribute__((unused)) void session_tls(green_tls_t *tls, int fd, void *arg)
{
    (void)arg;
    session_io(fd, tls);
}

#endif
