/* delay_server.c — the server of the crawler benchmark (bench/net.sh): answers every
 * HTTP request DELAY_MS after reading it, then closes (a green thread per connection,
 * green_serve, no cap on connections). Like the slow server in examples/crawler.c's
 * test, as a process of its own, so that the crawler's sockets and its own count
 * against two fd limits.
 *
 * usage: delay_server PORT [DELAY_MS]    (200 ms by default; serve until SIGTERM) */
#include "http.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

enum { TIMEOUT_MS = 30000 };

static const char PAGE[] = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nslow!\n";
static int delay_ms = 200;

static void slow_page(int fd, void *arg)
{
    (void)arg;
    http_answer_slowly(fd, PAGE, sizeof PAGE - 1, delay_ms, TIMEOUT_MS);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: delay_server PORT [DELAY_MS]\n");
        return 2;
    }
    if (argc == 3)
        delay_ms = atoi(argv[2]);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int lfd = green_tcp_listen("127.0.0.1", argv[1], 4096);
    green_server_t *srv = lfd >= 0 ? green_serve(lfd, slow_page, NULL, NULL) : NULL;
    if (!srv)
        return perror("delay_server"), 1;
    printf("delay_server on port %d, %d ms\n", green_socket_port(lfd), delay_ms);
    fflush(stdout);
    green_signal_wait(SIGTERM, -1);
    green_server_stop(srv, green_after(100));
    green_close(lfd);
    return 0;
}
