/* http_epoll.c — the hand-written peer of examples/httpd.c: one OS thread, one epoll
 * loop, non-blocking sockets, the same http-parser and the same response bytes.
 *
 * usage: http_epoll PORT      serve until killed (SIGINT, SIGTERM)
 *
 * What it keeps per connection is what a state machine needs and no more: the fd and
 * the parser's state (http-parser is a streaming parser, so the bytes already fed need
 * not be kept). Bytes are read into one buffer shared by all connections; a response
 * is written at once, and only what the socket did not take is kept (heap) until
 * EPOLLOUT. An idle connection therefore costs ~50 bytes of heap plus the kernel's. */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static const char BODY[] = "Hello from a green thread\n";
static const char BAD_REQUEST[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

struct conn {
    int fd;
    int closing;        /* close once the pending output is written */
    char *out;          /* output the socket did not take yet */
    size_t out_len, out_cap;
    http_parser p;
};

/* the output of one read's worth of requests, written in one write(2) */
static char reply[65536];
static size_t reply_len;

/* httpd.c's respond(): same headers, same rules for Connection */
static int on_message_complete(http_parser *p)
{
    struct conn *c = p->data;
    int keep_alive = http_should_keep_alive(p);
    const char *conn = !keep_alive ? "Connection: close\r\n" : p->http_minor == 0 ? "Connection: keep-alive\r\n" : "";
    if (reply_len + 256 + sizeof BODY > sizeof reply)
        return -1; /* absurd pipelining depth: drop the connection */
    int n = snprintf(reply + reply_len, 256,
                     "HTTP/1.1 200 OK\r\nServer: libgreen-httpd\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n%s\r\n",
                     sizeof BODY - 1, conn);
    reply_len += (size_t)n;
    memcpy(reply + reply_len, BODY, sizeof BODY - 1);
    reply_len += sizeof BODY - 1;
    if (!keep_alive) {
        c->closing = 1;
        http_parser_pause(p, 1); /* ignore whatever follows */
    }
    return 0;
}

static const http_parser_settings settings = {.on_message_complete = on_message_complete};

static void conn_close(int ep, struct conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->out);
    free(c);
}

/* Keeps what the socket did not take: data is either new output or the tail of c->out. */
static int keep_out(struct conn *c, const char *data, size_t len)
{
    if (c->out && data >= c->out && data <= c->out + c->out_cap) {
        memmove(c->out, data, len);
        c->out_len = len;
        return 1;
    }
    if (c->out_len + len > c->out_cap) {
        char *o = realloc(c->out, c->out_len + len);
        if (!o)
            return -1;
        c->out = o;
        c->out_cap = c->out_len + len;
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return 1;
}

/* Writes output: 0 when all is written, 1 when the rest waits for EPOLLOUT, -1 on error. */
static int flush_out(struct conn *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t w = write(c->fd, data, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return keep_out(c, data, len);
        if (w < 0)
            return -1;
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

static void on_writable(int ep, struct conn *c)
{
    size_t len = c->out_len;
    c->out_len = 0;
    int r = flush_out(c, c->out, len);
    if (r < 0 || (r == 0 && c->closing)) {
        conn_close(ep, c);
        return;
    }
    if (r == 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
}

static void on_readable(int ep, struct conn *c)
{
    static char in[65536];
    if (c->out_len > 0)
        return; /* the client does not read: stop reading it until it does */
    for (;;) {
        ssize_t n = read(c->fd, in, sizeof in);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            conn_close(ep, c);
            return;
        }
        reply_len = 0;
        http_parser_execute(&c->p, &settings, in, (size_t)n);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->p);
        if (e != HPE_OK && e != HPE_PAUSED) {
            memcpy(reply + reply_len, BAD_REQUEST, sizeof BAD_REQUEST - 1);
            reply_len += sizeof BAD_REQUEST - 1;
            c->closing = 1;
        }
        int r = flush_out(c, reply, reply_len);
        if (r < 0 || (r == 0 && c->closing)) {
            conn_close(ep, c);
            return;
        }
        if (r == 1) {
            struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            return;
        }
        if ((size_t)n < sizeof in)
            return; /* level-triggered: epoll tells us when there is more */
    }
}

static void on_accept(int ep, int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or EMFILE & co: try again at the next event */
        struct conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        http_parser_init(&c->p, HTTP_REQUEST);
        c->p.data = c;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(fd);
            free(c);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: http_epoll PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 1024) != 0) {
        perror("listen");
        return 1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    printf("http_epoll on port %s\n", argv[1]);
    fflush(stdout);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1); /* SIGINT/SIGTERM end the process */
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c)
                on_accept(ep, lfd);
            else if (evs[i].events & EPOLLOUT)
                on_writable(ep, c);
            else
                on_readable(ep, c);
        }
    }
}
