/* fuzz_httpd.c — examples/httpd's request path (examples/httpd_session.h) fed bytes.
 *
 * The input's first byte says how its other bytes reach the server: all in one write,
 * or in chunks of 1..32 bytes, with a yield or a 1 ms sleep between chunks or none. A
 * green thread runs httpd's session() on one end of a socketpair; a writer green thread
 * writes the bytes to the other end, then shuts down its write side; the harness reads
 * everything the server writes until EOF (10 s at most: a server that hangs fails). Then:
 *  - the output is a sequence of whole responses: each "HTTP/1.1 " with a 3-digit
 *    status, a reason and CRLF, header lines "Name: value", one Content-Length, a blank
 *    line and exactly that many bytes of body; a 200's body is httpd's page, a 400's is
 *    empty; a response that says "Connection: close" is the last one;
 *  - it is the output a model expects: the input parsed in one piece by http-parser,
 *    request after request, a 200 for each (with the connection header httpd's respond()
 *    chooses) until one asks to close, a 400 on bad HTTP or EOF within a request, and a
 *    silent close at EOF between requests. So how the bytes were split does not matter;
 *  - the server closed its end, both green threads ended, nothing is left (libFuzzer's
 *    leak check covers the session's buffers).
 * Run by libFuzzer (make fuzz) or over the committed corpus (make test); FUZZ_HTTPD_SHOW=1
 * prints what httpd answered.
 */
#include "httpd_session.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define CHECK(c)                                                                     \
    do {                                                                             \
        if (!(c)) {                                                                  \
            fprintf(stderr, "fuzz_httpd: %s (line %d)\n", #c, __LINE__);            \
            abort();                                                                 \
        }                                                                            \
    } while (0)

#define MAX_IN 16384

struct writer {
    int fd;
    uint8_t mode;
    const uint8_t *data;
    size_t len;
};

static void *write_all(void *arg)
{
    struct writer *w = arg;
    size_t chunk = w->mode % 4 == 0 ? w->len : 1 + (size_t)(w->mode >> 3) % 32;
    for (size_t off = 0; off < w->len;) {
        size_t n = w->len - off < chunk ? w->len - off : chunk;
        ssize_t r = green_write(w->fd, w->data + off, n, green_after(10000));
        if (r <= 0) {
            CHECK(errno == EPIPE || errno == ECONNRESET); /* the server closed first */
            break;
        }
        off += (size_t)r;
        if (w->mode % 4 == 2)
            green_yield();
        else if (w->mode % 4 == 3)
            green_sleep(1);
    }
    shutdown(w->fd, SHUT_WR);
    return NULL;
}

static void *serve_one(void *arg)
{
    int fd = *(int *)arg;
    session(fd, NULL);
    green_close(fd);
    return NULL;
}

/* ---- what httpd must answer ---- */

struct out {
    char *buf;
    size_t len, cap;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->len + n > o->cap) {
        o->cap = (o->len + n) * 2;
        o->buf = realloc(o->buf, o->cap);
        CHECK(o->buf);
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void expect_page(struct out *o, const http_parser *p, int keep_alive)
{
    char head[256];
    const char *conn = !keep_alive ? "Connection: close\r\n"
                       : p->http_minor == 0 ? "Connection: keep-alive\r\n" : "";
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\nServer: libgreen-httpd\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n%s\r\n",
                     sizeof BODY - 1, conn);
    put(o, head, (size_t)n);
    put(o, BODY, sizeof BODY - 1);
}

static int model_end(http_parser *p)
{
    http_parser_pause(p, 1);
    return 0;
}

static void model(const uint8_t *in, size_t len, struct out *o)
{
    static const http_parser_settings s = {.on_message_complete = model_end};
    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    size_t off = 0;
    for (;;) {
        if (off == len) /* EOF between requests: a silent close */
            return;
        size_t used = http_parser_execute(&p, &s, (const char *)in + off, len - off);
        off += used;
        if (HTTP_PARSER_ERRNO(&p) == HPE_PAUSED) {
            http_parser_pause(&p, 0);
            int keep_alive = http_should_keep_alive(&p);
            expect_page(o, &p, keep_alive);
            if (!keep_alive)
                return;
            continue;
        }
        if (HTTP_PARSER_ERRNO(&p) == HPE_OK) { /* all taken: EOF within a request */
            CHECK(off == len);
            http_parser_execute(&p, &s, NULL, 0);
            if (HTTP_PARSER_ERRNO(&p) == HPE_PAUSED) { /* a request that EOF ends */
                http_parser_pause(&p, 0);
                expect_page(o, &p, http_should_keep_alive(&p));
                return;
            }
        }
        put(o, BAD_REQUEST, sizeof BAD_REQUEST - 1);
        return;
    }
}

/* ---- the form of what it answered ---- */

static size_t find(const char *s, size_t n, const char *what)
{
    size_t k = strlen(what);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(s + i, what, k) == 0)
            return i;
    return (size_t)-1;
}

static void check_form(const char *s, size_t n)
{
    size_t off = 0;
    int closed = 0;
    while (off < n) {
        CHECK(!closed); /* nothing after a response that said it closes */
        const char *r = s + off;
        size_t left = n - off;
        size_t head_end = find(r, left, "\r\n\r\n");
        CHECK(head_end != (size_t)-1);
        CHECK(head_end >= 13 && memcmp(r, "HTTP/1.1 ", 9) == 0);
        for (int i = 9; i < 12; i++)
            CHECK(r[i] >= '0' && r[i] <= '9');
        CHECK(r[12] == ' ');
        int status = (r[9] - '0') * 100 + (r[10] - '0') * 10 + (r[11] - '0');
        CHECK(status == 200 || status == 400);
        size_t line_end = find(r, head_end + 2, "\r\n");
        CHECK(line_end > 13); /* a reason */
        long clen = -1;
        for (size_t at = line_end + 2; at < head_end + 2;) {
            size_t e = at + find(r + at, head_end + 2 - at, "\r\n");
            size_t colon = find(r + at, e - at, ": ");
            CHECK(colon != (size_t)-1 && colon > 0);
            if (colon == 14 && strncasecmp(r + at, "Content-Length", 14) == 0) {
                CHECK(clen < 0); /* only one */
                clen = 0;
                for (size_t i = at + 16; i < e; i++) {
                    CHECK(r[i] >= '0' && r[i] <= '9' && clen < 1000000);
                    clen = clen * 10 + (r[i] - '0');
                }
            }
            if (colon == 10 && strncasecmp(r + at, "Connection", 10) == 0 && e - at == 17 &&
                strncasecmp(r + at + 12, "close", 5) == 0)
                closed = 1;
            at = e + 2;
        }
        CHECK(clen >= 0);
        size_t body = head_end + 4;
        CHECK(body + (size_t)clen <= left); /* the whole body came */
        if (status == 200)
            CHECK((size_t)clen == sizeof BODY - 1 && memcmp(r + body, BODY, sizeof BODY - 1) == 0);
        else
            CHECK(clen == 0 && closed);
        off += body + (size_t)clen;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int once;
    if (!once++)
        signal(SIGPIPE, SIG_IGN); /* the writer's shutdown after the server closed */
    if (size == 0 || size > MAX_IN)
        return 0;
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    struct writer w = {.fd = sv[0], .mode = data[0], .data = data + 1, .len = size - 1};
    green_t g[2];
    CHECK((g[0] = green_spawn(serve_one, &sv[1])) != NULL);
    CHECK((g[1] = green_spawn(write_all, &w)) != NULL);

    struct out got = {0}, want = {0};
    int64_t deadline = green_after(10000);
    for (;;) {
        char buf[4096];
        ssize_t n = green_read(sv[0], buf, sizeof buf, deadline);
        CHECK(n >= 0 || errno == ECONNRESET); /* ETIMEDOUT: the server hangs */
        if (n <= 0)
            break;
        put(&got, buf, (size_t)n);
    }
    CHECK(green_joinall(g, 2, green_after(10000)) == 0);
    green_close(sv[0]);

    model(data + 1, size - 1, &want);
    check_form(got.buf, got.len);
    if (got.len != want.len || (got.len && memcmp(got.buf, want.buf, got.len) != 0)) {
        fprintf(stderr, "fuzz_httpd: httpd answered %zu bytes, the model %zu:\n%.*s\n-- the model:\n%.*s\n",
                got.len, want.len, (int)got.len, got.buf ? got.buf : "", (int)want.len,
                want.buf ? want.buf : "");
        abort();
    }
    if (getenv("FUZZ_HTTPD_SHOW"))
        fprintf(stderr, "%.*s", (int)got.len, got.buf ? got.buf : "");
    free(got.buf);
    free(want.buf);
    green_stats_t st;
    CHECK(green_stats(&st) == 0 && st.alive == 0 && st.ready == 0 && st.waiting == 0);
    return 0;
}
