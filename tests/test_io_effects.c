/* test_io_effects.c — what cooperative I/O must leave alone besides moving bytes.
 *
 * SIGPIPE: no write of libgreen raises it. A write to a socket, pipe or FIFO whose
 * reader has gone fails with -1/EPIPE and the process lives on; no SIGPIPE is left
 * pending, one the program had pending stays pending, the signal mask is as it was and
 * the program's own SIGPIPE handler is not called. Each check runs in a forked child, so
 * that a SIGPIPE death shows as that child's status, not as a crash of the test program.
 *
 * Flags: the pipes, FIFOs and ttys that green threads read and write keep their file
 * status flags (no O_NONBLOCK), since other processes share them — a child's stdin pipe
 * is checked through the parent's own copy of the same open file. Transfers through
 * them still park only the caller (a blocking call would hang the hub: alarm() turns
 * that into a failure). Other pollable fds (an eventfd) are still switched.
 */
#include "green_test.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* ---- helpers ---- */

static uint8_t pattern(size_t i) { return (uint8_t)(((uint64_t)i * 0x9E3779B97F4A7C15ull) >> 56); }

static int fd_flags(int fd) { return fcntl(fd, F_GETFL); }

/* In a forked child: a failed check exits with the line number (never 128+n). */
#define CHILD_CHECK(cond)                                                                \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "child: %s:%d: %s failed (errno %d)\n", __FILE__, __LINE__,  \
                    #cond, errno);                                                       \
            _exit(__LINE__ % 100 + 1);                                                   \
        }                                                                                \
    } while (0)

/* Run fn in a forked child; its exit status (128 + n when signal n killed it). */
static int in_child(void (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(30);
        fn();
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int sigpipe_pending(void)
{
    sigset_t p;
    CHILD_CHECK(sigpending(&p) == 0);
    return sigismember(&p, SIGPIPE);
}

static int sigpipe_blocked(void)
{
    sigset_t m;
    CHILD_CHECK(pthread_sigmask(SIG_BLOCK, NULL, &m) == 0);
    return sigismember(&m, SIGPIPE);
}

static void block_sigpipe(void)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    CHILD_CHECK(pthread_sigmask(SIG_BLOCK, &s, NULL) == 0);
}

/* How many SIGPIPEs are pending: each sigtimedwait takes one. */
static int take_sigpipes(void)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    struct timespec zero = {0, 0};
    int n = 0;
    while (sigtimedwait(&s, NULL, &zero) == SIGPIPE)
        n++;
    return n;
}

/* `call` fails with EPIPE (and the caller lives). */
#define CHILD_EPIPE(call)                                                                \
    do {                                                                                 \
        errno = 0;                                                                       \
        CHILD_CHECK((call) == -1 && errno == EPIPE);                                     \
    } while (0)

/* A socket pair and a pipe whose other ends are closed. */
static void broken(int *sock, int *pipe_w)
{
    int sv[2], p[2];
    CHILD_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHILD_CHECK(pipe(p) == 0);
    close(sv[1]);
    close(p[0]);
    *sock = sv[0];
    *pipe_w = p[1];
}

/* A FIFO opened for writing whose reader has gone (its flags: blocking, as opened). */
static int broken_fifo(void)
{
    char path[] = "/tmp/green-fifo-XXXXXX";
    CHILD_CHECK(mkdtemp(path) != NULL);
    char fifo[64];
    snprintf(fifo, sizeof fifo, "%s/f", path);
    CHILD_CHECK(mkfifo(fifo, 0600) == 0);
    int r = open(fifo, O_RDONLY | O_NONBLOCK);
    int w = open(fifo, O_WRONLY);
    CHILD_CHECK(r >= 0 && w >= 0);
    unlink(fifo);
    rmdir(path);
    close(r);
    return w;
}

/* Every write call of libgreen on a broken socket, pipe and FIFO: -1/EPIPE. */
static void write_everything_broken(void)
{
    int s, w;
    broken(&s, &w);
    int f = broken_fifo();
    char b[100] = "x";
    struct iovec iov[2] = {{b, 10}, {b, 20}};
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
    for (int fd = 0; fd < 3; fd++) {
        int target = fd == 0 ? s : fd == 1 ? w : f;
        CHILD_EPIPE(green_write(target, b, sizeof b, green_after(5000)));
        CHILD_EPIPE(green_writev(target, iov, 2, green_after(5000)));
        CHILD_EPIPE(green_write(target, b, sizeof b, 0)); /* deadline 0: the same */
    }
    CHILD_EPIPE(green_send(s, b, sizeof b, 0, green_after(5000)));
    CHILD_EPIPE(green_sendto(s, b, sizeof b, 0, NULL, 0, green_after(5000)));
    CHILD_EPIPE(green_sendmsg(s, &m, 0, green_after(5000)));
    green_close(s);
    green_close(w);
    green_close(f);
}

/* ---- SIGPIPE ---- */

/* SIGPIPE's default action kills: a write must not raise it. */
static void child_default_action(void)
{
    CHILD_CHECK(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
    write_everything_broken();
    CHILD_CHECK(!sigpipe_blocked());
}

static void test_no_sigpipe_default_action(void **state)
{
    (void)state;
    assert_int_equal(in_child(child_default_action), 0);
}

/* ...nor call the program's own handler; and the mask is restored. */
static int handled;
static void on_sigpipe(int sig)
{
    (void)sig;
    handled++;
}

static void child_handler(void)
{
    CHILD_CHECK(signal(SIGPIPE, on_sigpipe) != SIG_ERR);
    write_everything_broken();
    CHILD_CHECK(handled == 0);
    CHILD_CHECK(!sigpipe_blocked());
    CHILD_CHECK(!sigpipe_pending());
    /* the program's own write(2) still raises it, as POSIX says */
    int s, w;
    broken(&s, &w);
    CHILD_CHECK(write(w, "x", 1) == -1 && errno == EPIPE);
    CHILD_CHECK(handled == 1);
}

static void test_no_sigpipe_handler_not_called(void **state)
{
    (void)state;
    assert_int_equal(in_child(child_handler), 0);
}

/* A program that blocks SIGPIPE finds none pending after libgreen's writes. */
static void child_blocked(void)
{
    block_sigpipe();
    write_everything_broken();
    CHILD_CHECK(sigpipe_blocked());
    CHILD_CHECK(!sigpipe_pending());
    CHILD_CHECK(take_sigpipes() == 0);
}

static void test_no_sigpipe_left_pending(void **state)
{
    (void)state;
    assert_int_equal(in_child(child_blocked), 0);
}

/* A SIGPIPE the program had pending (sent to the thread, or to the process) before the
 * write stays pending: exactly one is there afterwards. */
static void child_pending_thread(void)
{
    block_sigpipe();
    CHILD_CHECK(pthread_kill(pthread_self(), SIGPIPE) == 0);
    CHILD_CHECK(sigpipe_pending());
    write_everything_broken();
    CHILD_CHECK(sigpipe_blocked());
    CHILD_CHECK(take_sigpipes() == 1);
}

static void child_pending_process(void)
{
    block_sigpipe();
    CHILD_CHECK(kill(getpid(), SIGPIPE) == 0);
    CHILD_CHECK(sigpipe_pending());
    write_everything_broken();
    CHILD_CHECK(take_sigpipes() == 1);
}

static void test_pending_sigpipe_stays(void **state)
{
    (void)state;
    assert_int_equal(in_child(child_pending_thread), 0);
    assert_int_equal(in_child(child_pending_process), 0);
}

/* A green thread's write on a broken pipe while other green threads run: none of them
 * sees SIGPIPE blocked when it runs (the mask is held only around the system call). */
static void *mask_watcher(void *arg)
{
    int *seen_blocked = arg;
    for (int i = 0; i < 50; i++) {
        if (sigpipe_blocked())
            (*seen_blocked)++;
        green_yield();
    }
    return NULL;
}

static void *pipe_breaker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++) {
        int s, w;
        broken(&s, &w);
        CHILD_EPIPE(green_write(w, "x", 1, -1));
        CHILD_EPIPE(green_write(s, "x", 1, -1));
        green_close(s);
        green_close(w);
        green_yield();
    }
    return NULL;
}

static void child_green_threads(void)
{
    int seen_blocked = 0;
    green_t g[2] = {green_spawn(mask_watcher, &seen_blocked), green_spawn(pipe_breaker, NULL)};
    CHILD_CHECK(green_joinall(g, 2, -1) == 0);
    CHILD_CHECK(seen_blocked == 0);
    CHILD_CHECK(!sigpipe_pending());
}

static void test_no_sigpipe_among_green_threads(void **state)
{
    (void)state;
    assert_int_equal(in_child(child_green_threads), 0);
}

/* green_dump to a FILE on a pipe nobody reads: EIO, not a SIGPIPE death. */
static void child_dump(void)
{
    int s, w;
    broken(&s, &w);
    FILE *f = fdopen(w, "w");
    CHILD_CHECK(f != NULL);
    errno = 0;
    CHILD_CHECK(green_dump(f) == -1 && errno == EIO);
    CHILD_CHECK(!sigpipe_pending());
    fclose(f);
    close(s);
}

static void test_no_sigpipe_from_dump(void **state)
{
    (void)state;
    if (under_valgrind()) { /* libunwind's probes of the stack upset memcheck */
        print_message("under valgrind: skipped\n");
        return;
    }
    assert_int_equal(in_child(child_dump), 0);
}

/* ---- flags left as found ---- */

/* A child that echoes its stdin (a pipe the parent writes after a while, so that the
 * child's read waits) to its stdout (a pipe the parent reads), with green_read and
 * green_write, exits 0 at EOF. */
static void child_echo(void)
{
    char buf[256];
    ssize_t r;
    while ((r = green_read(0, buf, sizeof buf, green_after(20000))) > 0)
        CHILD_CHECK(green_write(1, buf, (size_t)r, green_after(20000)) == r);
    CHILD_CHECK(r == 0);
}

static void test_stdin_stdout_pipes_keep_flags(void **state)
{
    (void)state;
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(30);
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        child_echo();
        _exit(0);
    }
    /* the parent keeps its copies of the child's ends: the same open files */
    sleep_os_ms(50); /* the child's read finds the pipe empty and waits */
    assert_int_equal(write(in[1], "hello, ", 7), 7);
    assert_int_equal(write(in[1], "world", 5), 5);
    close(in[1]);
    char got[64] = {0};
    size_t n = 0;
    ssize_t r;
    close(out[1]);
    while (n < sizeof got - 1 && (r = read(out[0], got + n, sizeof got - 1 - n)) > 0)
        n += (size_t)r;
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_string_equal(got, "hello, world");
    assert_int_equal(fd_flags(in[0]) & O_NONBLOCK, 0);  /* the child's stdin */
    assert_int_equal(fd_flags(out[0]) & O_NONBLOCK, 0); /* untouched anyway */
    close(in[0]);
    close(out[0]);
}

/* One green thread writes n pattern bytes to w, another reads them from r: both park
 * while they cannot go on. */
struct stream {
    int fd;
    size_t n;
    size_t done;
    int err;
};

static void *stream_writer(void *arg)
{
    struct stream *s = arg;
    uint8_t *p = malloc(s->n);
    for (size_t i = 0; i < s->n; i++)
        p[i] = pattern(i);
    ssize_t w = green_write(s->fd, p, s->n, green_after(20000));
    s->done = w < 0 ? 0 : (size_t)w;
    s->err = w == (ssize_t)s->n ? 0 : errno;
    free(p);
    return NULL;
}

static void *stream_reader(void *arg)
{
    struct stream *s = arg;
    uint8_t buf[3000]; /* not a divisor of anything the kernel uses */
    while (s->done < s->n) {
        ssize_t r = green_read(s->fd, buf, sizeof buf, green_after(20000));
        if (r <= 0) {
            s->err = r == 0 ? -1 : errno;
            return NULL;
        }
        for (ssize_t k = 0; k < r; k++)
            if (buf[k] != pattern(s->done + (size_t)k)) {
                s->err = -2;
                return NULL;
            }
        s->done += (size_t)r;
    }
    return NULL;
}

/* n bytes from w to r, the reader first (it waits on the empty fd); both fds keep their
 * flags. */
static void stream_through(int w, int r, size_t n)
{
    int wfl = fd_flags(w), rfl = fd_flags(r);
    struct stream out = {.fd = w, .n = n}, in = {.fd = r, .n = n};
    alarm(60); /* a call that blocked the hub would hang here */
    green_t g[2] = {green_spawn(stream_reader, &in), green_spawn(stream_writer, &out)};
    assert_int_equal(green_joinall(g, 2, -1), 0);
    alarm(0);
    assert_int_equal(out.err, 0);
    assert_int_equal(in.err, 0);
    assert_int_equal(out.done, n);
    assert_int_equal(in.done, n);
    assert_int_equal(fd_flags(w), wfl);
    assert_int_equal(fd_flags(r), rfl);
    assert_int_equal(wfl & O_NONBLOCK, 0);
    assert_int_equal(rfl & O_NONBLOCK, 0);
}

/* deadline 0 on a pipe-like fd: an empty one times out at once; a write takes what
 * fits and reports it with ETIMEDOUT, then -1; the reader gets exactly that. */
static void deadline_zero(int w, int r)
{
    char b[64];
    assert_fails_with(green_read(r, b, sizeof b, 0), ETIMEDOUT);
    size_t big = 1 << 20;
    uint8_t *p = calloc(1, big);
    errno = 0;
    ssize_t put = green_write(w, p, big, 0);
    assert_true(put > 0 && (size_t)put < big);
    assert_int_equal(errno, ETIMEDOUT);
    assert_fails_with(green_write(w, p, big, 0), ETIMEDOUT);
    size_t got = 0;
    ssize_t n;
    while ((n = green_read(r, p, big, 0)) > 0)
        got += (size_t)n;
    assert_int_equal(n, -1);
    assert_int_equal(errno, ETIMEDOUT);
    assert_int_equal(got, (size_t)put);
    free(p);
}

static void test_pipe_keeps_flags(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    stream_through(p[1], p[0], (size_t)4 << 20);
    deadline_zero(p[1], p[0]);
    green_close(p[0]);
    green_close(p[1]);
    assert_hub_idle();
}

static void test_fifo_keeps_flags(void **state)
{
    (void)state;
    char dir[] = "/tmp/green-fifo-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/f", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    int r = open(path, O_RDONLY | O_NONBLOCK);
    assert_true(r >= 0);
    assert_int_equal(fcntl(r, F_SETFL, 0), 0); /* blocking, as a reader opens it */
    int w = open(path, O_WRONLY);
    assert_true(w >= 0);
    unlink(path);
    rmdir(dir);
    stream_through(w, r, (size_t)1 << 20);
    deadline_zero(w, r);
    green_close(r);
    green_close(w);
    assert_hub_idle();
}

/* A pseudo-terminal in raw mode: its bytes pass unchanged both ways. Both ends are ttys
 * (the master too), both stay blocking; a read of the empty slave parks. */
static void test_tty_keeps_flags(void **state)
{
    (void)state;
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    assert_true(m >= 0);
    assert_int_equal(grantpt(m), 0);
    assert_int_equal(unlockpt(m), 0);
    int s = open(ptsname(m), O_RDWR | O_NOCTTY);
    assert_true(s >= 0);
    struct termios t;
    assert_int_equal(tcgetattr(s, &t), 0);
    cfmakeraw(&t);
    assert_int_equal(tcsetattr(s, TCSANOW, &t), 0);
    assert_true(isatty(m) && isatty(s));
    /* more than the terminal buffers hold (4 KiB of input, 64 KiB in flight) */
    stream_through(m, s, (size_t)256 << 10);
    stream_through(s, m, (size_t)256 << 10);
    char b[8];
    assert_fails_with(green_read(s, b, sizeof b, 0), ETIMEDOUT);
    assert_int_equal(green_write(m, "ok", 2, green_after(5000)), 2);
    assert_int_equal(green_read(s, b, sizeof b, green_after(5000)), 2);
    green_close(s);
    green_close(m);
    assert_hub_idle();
}

/* What is still switched: a pollable fd that is not a pipe, FIFO, tty or fd 0..2 (an
 * eventfd here) becomes O_NONBLOCK at its first green read or write. */
static void test_other_fds_are_switched(void **state)
{
    (void)state;
    int e = eventfd(0, 0);
    assert_true(e >= 0);
    assert_int_equal(fd_flags(e) & O_NONBLOCK, 0);
    uint64_t one = 1, v = 0;
    assert_int_equal(green_write(e, &one, sizeof one, green_after(5000)), (ssize_t)sizeof one);
    assert_int_equal(green_read(e, &v, sizeof v, green_after(5000)), (ssize_t)sizeof v);
    assert_int_equal(v, 1);
    assert_int_not_equal(fd_flags(e) & O_NONBLOCK, 0);
    assert_fails_with(green_read(e, &v, sizeof v, 0), ETIMEDOUT);
    green_close(e);
    assert_hub_idle();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_sigpipe_default_action),
        cmocka_unit_test(test_no_sigpipe_handler_not_called),
        cmocka_unit_test(test_no_sigpipe_left_pending),
        cmocka_unit_test(test_pending_sigpipe_stays),
        cmocka_unit_test(test_no_sigpipe_among_green_threads),
        cmocka_unit_test(test_no_sigpipe_from_dump),
        cmocka_unit_test(test_stdin_stdout_pipes_keep_flags),
        cmocka_unit_test(test_pipe_keeps_flags),
        cmocka_unit_test(test_fifo_keeps_flags),
        cmocka_unit_test(test_tty_keeps_flags),
        cmocka_unit_test(test_other_fds_are_switched),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
