/* http.h — what the HTTP examples (httpd, crawler) share: reading one HTTP/1.x message
 * at a time from a connection, parsed by Debian's http-parser, not by hand.
 *
 * The parser is paused at the end of each message (on_message_complete must be
 * http_message_end), so that bytes of a pipelined next message stay in the buffer for
 * the next call, and what the parser knows about the message just read (status,
 * keep-alive) can still be asked. */
#ifndef EXAMPLES_HTTP_H
#define EXAMPLES_HTTP_H

#include <green.h>
#include <errno.h>
#include <http_parser.h>
#include <stdlib.h>
#include <string.h>

struct http_conn {
    int fd;
    green_tls_t *tls;   /* https: the session over fd (NULL: plain) */
    size_t off, len;    /* buf[off, len) is read but not parsed yet */
    char buf[8192];
};

static inline void http_conn_init(struct http_conn *c, int fd)
{
    c->fd = fd;
    c->tls = NULL;
    c->off = c->len = 0;
}

/* Write all n bytes to fd, or through tls when it is not NULL. */
static inline ssize_t http_write(int fd, green_tls_t *tls, const void *buf, size_t n, int64_t deadline)
{
    return tls ? green_tls_write(tls, buf, n, deadline) : green_write(fd, buf, n, deadline);
}

static inline int http_message_end(http_parser *p)
{
    http_parser_pause(p, 1);
    return 0;
}

/* Feed buffered bytes to the parser: 1 at a message's end, 0 when it wants more, -1 +
 * EPROTO on bad HTTP. */
static inline int http_feed(struct http_conn *c, http_parser *p, const http_parser_settings *s,
                            const char *data, size_t n)
{
    size_t used = http_parser_execute(p, s, data, n);
    c->off += used;
    if (HTTP_PARSER_ERRNO(p) == HPE_PAUSED) {
        http_parser_pause(p, 0);
        return 1;
    }
    if (HTTP_PARSER_ERRNO(p) != HPE_OK) {
        errno = EPROTO;
        return -1;
    }
    return 0;
}

/* Read until one whole message is parsed: 1; 0 at EOF before a message began; -1 +
 * errno (EPROTO: bad HTTP or EOF within a message; or green_read's). */
static inline int http_read_message(struct http_conn *c, http_parser *p, const http_parser_settings *s,
                                    int64_t deadline)
{
    int began = 0;
    for (;;) {
        if (c->off < c->len) {
            began = 1;
            int r = http_feed(c, p, s, c->buf + c->off, c->len - c->off);
            if (r != 0)
                return r;
        }
        ssize_t n = c->tls ? green_tls_read(c->tls, c->buf, sizeof c->buf, deadline)
                           : green_read(c->fd, c->buf, sizeof c->buf, deadline);
        if (n < 0)
            return -1;
        c->off = 0;
        c->len = (size_t)n;
        if (n == 0) {
            if (!began)
                return 0;
            /* EOF ends a response body that runs until the connection closes */
            int r = http_feed(c, p, s, NULL, 0);
            if (r == 0)
                errno = EPROTO;
            return r == 0 ? -1 : r;
        }
    }
}

/* Reads one request on fd, then after delay_ms answers it with the bytes of page: the
 * slow server of the crawler's self-test and of the benchmarks. */
static inline void http_answer_slowly(int fd, const char *page, size_t len, int64_t delay_ms,
                                      int64_t timeout_ms)
{
    static const http_parser_settings settings = {.on_message_complete = http_message_end};
    struct http_conn *c = malloc(sizeof *c); /* 8 KiB: not on a small stack */
    if (!c)
        return;
    http_conn_init(c, fd);
    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    if (http_read_message(c, &p, &settings, green_after(timeout_ms)) == 1 && green_sleep(delay_ms) == 0)
        green_write(fd, page, len, green_after(timeout_ms));
    free(c);
}

#endif
