/* plain_io.c — a plain POSIX program, built without libgreen's headers or library, that
 * tests/greenrun_test.sh runs under tools/greenrun: blocking pipe, socket and poll/select
 * I/O, sleeps, DNS and fd flags must all behave exactly as libc's. Prints one line per
 * check, then "plain_io: ok". */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "plain_io: %s:%d: %s failed (errno %d)\n",     \
                    __FILE__, __LINE__, #cond, errno);                     \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void *writer(void *arg)
{
    int fd = *(int *)arg;
    usleep(100 * 1000);
    CHECK(write(fd, "late", 4) == 4);
    return NULL;
}

int main(void)
{
    int p[2], s[2];
    char buf[64];
    CHECK(pipe(p) == 0);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, s) == 0);

    /* a blocking read waits for a writer thread */
    pthread_t t;
    long t0 = now_ms();
    CHECK(pthread_create(&t, NULL, writer, &p[1]) == 0);
    errno = 42;
    CHECK(read(p[0], buf, sizeof buf) == 4 && memcmp(buf, "late", 4) == 0);
    CHECK(errno == 42);
    CHECK(now_ms() - t0 >= 90);
    pthread_join(t, NULL);
    printf("pipe: blocking read waited %ld ms\n", now_ms() - t0 >= 90 ? 100L : 0L);

    /* a socket pair, send/recv, poll and select */
    CHECK(send(s[0], "ping", 4, 0) == 4);
    struct pollfd pf = {.fd = s[1], .events = POLLIN};
    CHECK(poll(&pf, 1, 1000) == 1 && (pf.revents & POLLIN));
    CHECK(recv(s[1], buf, sizeof buf, 0) == 4 && memcmp(buf, "ping", 4) == 0);
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(s[1], &rd);
    struct timeval tv = {0, 50000};
    CHECK(select(s[1] + 1, &rd, NULL, NULL, &tv) == 0);
    printf("socketpair: send, poll, recv, select timeout ok\n");

    /* the user's non-blocking fd: EAGAIN, and F_GETFL shows it */
    CHECK(fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK) == 0);
    CHECK(fcntl(p[0], F_GETFL) & O_NONBLOCK);
    CHECK(read(p[0], buf, 1) == -1 && errno == EAGAIN);
    printf("non-blocking pipe: EAGAIN ok\n");

    /* sleeps */
    t0 = now_ms();
    struct timespec ts = {0, 30 * 1000000L};
    CHECK(nanosleep(&ts, NULL) == 0);
    CHECK(usleep(20000) == 0);
    CHECK(sleep(0) == 0);
    CHECK(now_ms() - t0 >= 48);
    printf("sleeps: ok\n");

    /* DNS */
    struct addrinfo *res;
    CHECK(getaddrinfo("localhost", "80", NULL, &res) == 0);
    freeaddrinfo(res);
    printf("getaddrinfo: ok\n");

    close(p[0]);
    close(p[1]);
    close(s[0]);
    close(s[1]);
    printf("plain_io: ok\n");
    return 0;
}
