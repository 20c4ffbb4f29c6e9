/* http_threads.c — the thread-per-connection peer of examples/httpd.c: blocking
 * sockets, one detached OS thread per connection (256 KiB stacks, libgreen's dedicated
 * default), the same http-parser and the same response bytes.
 *
 * usage: http_threads PORT    serve until killed (SIGINT, SIGTERM) */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

enum { STACK_SIZE = 256 * 1024 };

static const char BODY[] = "Hello from a green thread\n";
static const char BAD_REQUEST[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/* pause at the end of each request, so that pipelined bytes wait for the next round */
static int on_message_complete(http_parser *p)
{
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {.on_message_complete = on_message_complete};

static int write_all(int fd, const struct iovec *iov, int n)
{
    struct iovec v[2];
    memcpy(v, iov, (size_t)n * sizeof *v);
    for (int i = 0; i < n;) {
        ssize_t w = writev(fd, v + i, n - i);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        while (i < n && (size_t)w >= v[i].iov_len)
            w -= (ssize_t)v[i++].iov_len;
        if (i < n) {
            v[i].iov_base = (char *)v[i].iov_base + w;
            v[i].iov_len -= (size_t)w;
        }
    }
    return 0;
}

/* httpd.c's respond(): same headers, same rules for Connection */
static int respond(int fd, const http_parser *p, int keep_alive)
{
    char head[256];
    const char *conn = !keep_alive ? "Connection: close\r\n" : p->http_minor == 0 ? "Connection: keep-alive\r\n" : "";
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\nServer: libgreen-httpd\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n%s\r\n",
                     sizeof BODY - 1, conn);
    struct iovec iov[2] = {{head, (size_t)n}, {(void *)BODY, sizeof BODY - 1}};
    return write_all(fd, iov, 2);
}

static void *session(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[8192]; /* httpd's per-connection buffer, here on the thread's stack */
    size_t off = 0, len = 0;
    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    for (;;) {
        if (off == len) {
            ssize_t n = read(fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            off = 0;
            len = (size_t)n;
        }
        off += http_parser_execute(&p, &settings, buf + off, len - off);
        if (HTTP_PARSER_ERRNO(&p) == HPE_PAUSED) {
            http_parser_pause(&p, 0);
            int keep_alive = http_should_keep_alive(&p);
            if (respond(fd, &p, keep_alive) != 0 || !keep_alive)
                break;
        } else if (HTTP_PARSER_ERRNO(&p) != HPE_OK) {
            struct iovec bad = {(void *)BAD_REQUEST, sizeof BAD_REQUEST - 1};
            write_all(fd, &bad, 1);
            break;
        }
    }
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: http_threads PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 1024) != 0) {
        perror("listen");
        return 1;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, STACK_SIZE);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    printf("http_threads on port %s\n", argv[1]);
    fflush(stdout);
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                usleep(10000);
            continue;
        }
        pthread_t t;
        if (pthread_create(&t, &attr, session, (void *)(intptr_t)fd) != 0) {
            close(fd);
            usleep(10000);
        }
    }
}
