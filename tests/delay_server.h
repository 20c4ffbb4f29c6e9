/*
 * delay_server.h — the HTTP server that test_patch and bench_patch_curl talk to: a
 * forked child running libgreen's stream server on a loopback port. It answers
 * "GET /delay/MS/NAME" after MS milliseconds with the body "hello /delay/MS/NAME\n",
 * and holds "GET /hang..." open without a word until the client goes away.
 *
 * Started before the caller creates any thread; the caller kills it with
 * delay_server_stop. Everything here is static: include it in one file.
 */
#ifndef DELAY_SERVER_H
#define DELAY_SERVER_H

#include <green.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static void delay_handler(int fd, void *arg)
{
    (void)arg;
    char req[4096];
    size_t got = 0;
    req[0] = '\0';
    while (!strstr(req, "\r\n\r\n")) {
        if (got == sizeof req - 1)
            return;
        ssize_t r = green_read(fd, req + got, sizeof req - 1 - got, green_after(30000));
        if (r <= 0)
            return;
        got += (size_t)r;
        req[got] = '\0';
    }
    char path[1024];
    if (sscanf(req, "GET %1023s ", path) != 1)
        return;
    if (strncmp(path, "/hang", 5) == 0) {
        while (green_read(fd, req, sizeof req, -1) > 0) {
        }
        return;
    }
    int ms = 0;
    sscanf(path, "/delay/%d/", &ms);
    if (ms > 0)
        green_sleep(ms);
    char resp[2048];
    int body = (int)strlen(path) + 7; /* "hello " path "\n" */
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                     "Connection: close\r\n\r\nhello %s\n", body, path);
    green_write(fd, resp, (size_t)n, green_after(30000));
}

/* Fork the server: its pid, and *port. */
static pid_t delay_server_start(int *port)
{
    int lfd = green_tcp_listen("127.0.0.1", "0", 4096);
    if (lfd < 0) {
        perror("delay_server: listen");
        exit(1);
    }
    *port = green_socket_port(lfd);
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        perror("delay_server: fork");
        exit(1);
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the caller, even killed */
        if (getppid() != parent)
            _exit(0);
        if (!green_serve(lfd, delay_handler, NULL, NULL)) {
            perror("delay_server: serve");
            _exit(1);
        }
        for (;;)
            green_sleep(3600 * 1000);
    }
    green_close(lfd);
    return pid;
}

static void delay_server_stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

#endif
