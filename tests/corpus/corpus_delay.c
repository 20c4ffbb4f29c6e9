/*
 * corpus_delay.c — the HTTP server the corpus programs talk to (tests/corpus/): the
 * server of tests/delay_server.h as a process of its own. "GET /delay/MS/NAME" is
 * answered after MS ms with the body "hello /delay/MS/NAME\n"; "GET /hang..." is held
 * open until the client goes away.
 *
 *   corpus_delay      prints the loopback port the kernel chose (so parallel tests never
 *                     collide), then serves until SIGTERM or SIGINT
 *
 * The server is a forked child (delay_server.h) that dies with this process, even when
 * this one is killed; on SIGTERM/SIGINT this one stops it and exits 0.
 */
#include "../delay_server.h"

#include <signal.h>
#include <stdio.h>

int main(void)
{
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    /* blocked before anything runs, so that a signal sent as soon as the port is
     * printed is taken by sigwait, never by the default action */
    sigprocmask(SIG_BLOCK, &stop, NULL);
    int port;
    pid_t server = delay_server_start(&port);
    printf("%d\n", port);
    fflush(stdout);
    int sig;
    sigwait(&stop, &sig);
    delay_server_stop(server);
    return 0;
}
