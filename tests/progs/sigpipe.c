/* sigpipe.c — a plain POSIX program, built without libgreen, that writes to a pipe or a
 * socket whose reader has gone, so that tests/sigpipe_test.sh can check that under
 * tools/greenrun (libgreen-patch.so) SIGPIPE behaves exactly as POSIX says: libgreen's
 * own calls never raise it, but the wrappers of an unmodified program's write and send
 * must, as libc's do.
 *
 *   sigpipe FD ACTION WHERE
 *     FD      pipe | socket
 *     ACTION  default (SIGPIPE kills) | ignore (SIG_IGN) | handler (counts) | blocked
 *     WHERE   main | thread (a pthread: a green thread under greenrun --threads)
 *
 * Prints what each write returned and what became of the signal; killed by SIGPIPE
 * under "default" (after printing "writing").
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *fd_kind, *action;
static volatile sig_atomic_t handled;

static void on_sigpipe(int sig)
{
    (void)sig;
    handled++;
}

static void report(const char *what, long r, int err)
{
    printf("%s: %ld %s\n", what, r, r < 0 ? strerror(err) : "");
}

static void *run(void *arg)
{
    (void)arg;
    int fds[2];
    int sock = strcmp(fd_kind, "socket") == 0;
    if ((sock ? socketpair(AF_UNIX, SOCK_STREAM, 0, fds) : pipe(fds)) != 0)
        return (void *)1;
    close(sock ? fds[1] : fds[0]);
    int w = sock ? fds[0] : fds[1];
    if (strcmp(action, "blocked") == 0) {
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &s, NULL);
    }
    printf("writing\n");
    fflush(stdout);
    errno = 0;
    long r = (long)write(w, "x", 1);
    report("write", r, errno);
    if (sock) {
        r = (long)send(w, "x", 1, 0);
        report("send", r, errno);
        r = (long)send(w, "x", 1, MSG_NOSIGNAL);
        report("send MSG_NOSIGNAL", r, errno);
    }
    sigset_t p;
    sigpending(&p);
    printf("handled=%d pending=%d\n", (int)handled, sigismember(&p, SIGPIPE));
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    fd_kind = argv[1];
    action = argv[2];
    if (strcmp(action, "ignore") == 0)
        signal(SIGPIPE, SIG_IGN);
    else if (strcmp(action, "handler") == 0)
        signal(SIGPIPE, on_sigpipe);
    else
        signal(SIGPIPE, SIG_DFL);
    if (strcmp(argv[3], "thread") != 0)
        return run(NULL) != NULL;
    pthread_t t;
    void *res = NULL;
    if (pthread_create(&t, NULL, run, NULL) != 0 || pthread_join(t, &res) != 0)
        return 3;
    return res != NULL;
}
