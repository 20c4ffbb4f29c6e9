/* test_patch.c — libgreen-patch.so, linked in (-lgreen-patch): unmodified blocking C
 * libraries (libcurl, hiredis) and plain libc calls (read, poll, select, sleep, sigwait,
 * waitpid, system, epoll_wait, splice, flock, ...) park only their green thread, and
 * kills and scoped deadlines end them; the same calls outside a hub behave as libc's; the
 * user's view of an fd's flags stays POSIX. Real servers on loopback: the HTTP server
 * of delay_server.h (a forked child) and a redis-server started here when installed. */
#include "green_test.h"
#include "pool_gate.h"
#include <green_patch.h>
#include "delay_server.h"

#include <curl/curl.h>
#include <hiredis/hiredis.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef GREEN_TEST_URING
#include <liburing.h>
#endif

static int http_port;

/* ---- helpers ---- */

/* The kernel's own file status flags, past the patch's user view. */
static int kernel_flags(int fd) { return (int)syscall(SYS_fcntl, fd, F_GETFL); }

static int64_t elapsed_since(int64_t t0) { return green_now() - t0; }

static void *spawn_join_all(int n, green_fn fn, void **args, size_t argsize, char *base)
{
    green_t *gs = calloc((size_t)n, sizeof *gs);
    assert_non_null(gs);
    for (int i = 0; i < n; i++)
        assert_non_null(gs[i] = green_spawn(fn, args ? args[i] : base + (size_t)i * argsize));
    assert_int_equal(green_joinall(gs, (size_t)n, -1), 0);
    free(gs);
    return NULL;
}

/* ---- (1) the talk's example: 100 green threads, each a blocking curl_easy_perform ---- */

struct fetch {
    char url[128];
    char body[256];
    size_t len;
    CURLcode rc;
    long status;
    int64_t ms;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct fetch *f = arg;
    size_t k = size * n;
    if (f->len + k < sizeof f->body) {
        memcpy(f->body + f->len, p, k);
        f->len += k;
        f->body[f->len] = '\0';
    }
    return k;
}

static void *fetch(void *arg)
{
    struct fetch *f = arg;
    CURL *c = curl_easy_init();
    if (!c)
        return (void *)1;
    curl_easy_setopt(c, CURLOPT_URL, f->url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    int64_t t0 = green_now();
    f->rc = curl_easy_perform(c);
    f->ms = elapsed_since(t0);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &f->status);
    curl_easy_cleanup(c);
    return NULL;
}

static void test_curl_concurrent(void **state)
{
    (void)state;
    enum { N = 100, DELAY = 200 };
    struct fetch *fs = calloc(N, sizeof *fs);
    assert_non_null(fs);
    for (int i = 0; i < N; i++)
        snprintf(fs[i].url, sizeof fs[i].url, "http://127.0.0.1:%d/delay/%d/%d", http_port, DELAY, i);
    int64_t t0 = green_now();
    spawn_join_all(N, fetch, NULL, sizeof *fs, (char *)fs);
    int64_t ms = elapsed_since(t0);
    for (int i = 0; i < N; i++) {
        char want[128];
        snprintf(want, sizeof want, "hello /delay/%d/%d\n", DELAY, i);
        assert_int_equal(fs[i].rc, CURLE_OK);
        assert_int_equal(fs[i].status, 200);
        assert_string_equal(fs[i].body, want);
    }
    printf("curl: %d concurrent curl_easy_perform, each answered after %d ms: %lld ms in all "
           "(sequential: %d ms; the issue's bar: 1.5 x %d = %d ms)\n",
           N, DELAY, (long long)ms, N * DELAY, DELAY, DELAY * 3 / 2);
    assert_true(ms < 5000); /* concurrent, not one after the other (20 s) */
    free(fs);
    assert_hub_idle();
}

/* ---- (5) a scoped deadline bounds a patched call deep inside libcurl ---- */

static void *fetch_bounded(void *arg)
{
    struct fetch *f = arg;
    green_timeout_push(300);
    fetch(f);
    green_timeout_pop();
    return NULL;
}

static void test_curl_scoped_timeout(void **state)
{
    (void)state;
    struct fetch f = {0};
    snprintf(f.url, sizeof f.url, "http://127.0.0.1:%d/hang", http_port);
    green_t g = green_spawn(fetch_bounded, &f);
    assert_non_null(g);
    long ticks = 0;
    green_t t = green_spawn(count_ticks, &ticks);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(green_kill(t), 0);
    assert_int_equal(green_join(t, NULL, -1), 0);
    printf("curl against a server that never answers, under green_timeout_push(300): "
           "%s (%d) after %lld ms; a ticker ticked %ld times meanwhile\n",
           curl_easy_strerror(f.rc), (int)f.rc, (long long)f.ms, ticks);
    assert_int_not_equal(f.rc, CURLE_OK);
    assert_true(f.ms >= 250 && f.ms < 300 + LATE_MS);
    assert_true(ticks > 10); /* the wait parked the green thread, not the OS thread */
    assert_hub_idle();
}

/* ---- (2) hiredis' blocking API against a real redis-server ---- */

static pid_t redis_pid;
static int redis_port;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    close(fd);
    return ntohs(a.sin_port);
}

/* Start redis-server on a free port; 0 when it answers PING, -1 when it cannot run. */
static int redis_start(void)
{
    if (system("command -v redis-server >/dev/null 2>&1") != 0)
        return -1;
    for (int attempt = 0; attempt < 3; attempt++) {
        redis_port = free_port();
        char port[16];
        snprintf(port, sizeof port, "%d", redis_port);
        redis_pid = fork();
        if (redis_pid == 0) {
            int devnull = open("/dev/null", O_WRONLY);
            dup2(devnull, 1);
            execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--daemonize", "no", (char *)NULL);
            _exit(127);
        }
        for (int i = 0; i < 100; i++) {
            redisContext *c = redisConnect("127.0.0.1", redis_port);
            if (c && !c->err) {
                redisReply *r = redisCommand(c, "PING");
                int ok = r && r->type == REDIS_REPLY_STATUS;
                freeReplyObject(r);
                redisFree(c);
                if (ok)
                    return 0;
            } else if (c) {
                redisFree(c);
            }
            if (waitpid(redis_pid, NULL, WNOHANG) == redis_pid)
                break; /* it died: the port was taken meanwhile? */
            green_sleep(50);
        }
        kill(redis_pid, SIGKILL);
        waitpid(redis_pid, NULL, 0);
        redis_pid = 0;
    }
    return -1;
}

struct redis_job {
    int i;
    int ok;
    int64_t blpop_ms;
};

/* BLPOP on its own list, which a helper green thread fills 200 ms later: if the blocking
 * read parked the OS thread, the helper could never run. */
static void *pusher(void *arg)
{
    struct redis_job *j = arg;
    green_sleep(200);
    redisContext *c = redisConnect("127.0.0.1", redis_port);
    if (!c || c->err)
        return (void *)1;
    redisReply *r = redisCommand(c, "RPUSH list:%d value-%d", j->i, j->i);
    void *res = r && r->type == REDIS_REPLY_INTEGER ? NULL : (void *)1;
    freeReplyObject(r);
    redisFree(c);
    return res;
}

static void *redis_client(void *arg)
{
    struct redis_job *j = arg;
    redisContext *c = redisConnect("127.0.0.1", redis_port);
    if (!c || c->err)
        return NULL;
    green_t p = green_spawn(pusher, j);
    redisReply *r = redisCommand(c, "SET key:%d %d", j->i, j->i * 7);
    int ok = r && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    r = redisCommand(c, "GET key:%d", j->i);
    ok = ok && r && r->type == REDIS_REPLY_STRING && atoi(r->str) == j->i * 7;
    freeReplyObject(r);
    int64_t t0 = green_now();
    r = redisCommand(c, "BLPOP list:%d 10", j->i);
    j->blpop_ms = elapsed_since(t0);
    char want[32];
    snprintf(want, sizeof want, "value-%d", j->i);
    ok = ok && r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && strcmp(r->element[1]->str, want) == 0;
    freeReplyObject(r);
    redisFree(c);
    void *pres = (void *)1;
    green_join(p, &pres, -1);
    j->ok = ok && pres == NULL;
    return NULL;
}

static void test_hiredis(void **state)
{
    (void)state;
    if (!redis_pid) {
        printf("redis-server is not installed (or did not start): skipped\n");
        skip();
    }
    enum { N = 100 };
    struct redis_job jobs[N];
    for (int i = 0; i < N; i++)
        jobs[i] = (struct redis_job){.i = i};
    int64_t t0 = green_now();
    spawn_join_all(N, redis_client, NULL, sizeof jobs[0], (char *)jobs);
    int64_t ms = elapsed_since(t0);
    int64_t worst = 0;
    for (int i = 0; i < N; i++) {
        assert_true(jobs[i].ok);
        if (jobs[i].blpop_ms > worst)
            worst = jobs[i].blpop_ms;
    }
    printf("hiredis: %d green threads, each SET, GET and a BLPOP answered 200 ms later: "
           "%lld ms in all (longest BLPOP %lld ms)\n", N, (long long)ms, (long long)worst);
    assert_true(ms < 5000);
    assert_hub_idle();
}

/* ---- (3) libc's sleeps in 10,000 green threads at once ---- */

#define SLEEPERS (10000 / GREEN_TEST_SCALE)

static void *sleeper(void *arg)
{
    long i = (long)(intptr_t)arg;
    errno = 1234;
    switch (i % 4) {
    case 0:
        if (sleep(1) != 0)
            return (void *)1;
        break;
    case 1: {
        struct timespec ts = {0, 500 * 1000000L}, rem;
        if (nanosleep(&ts, &rem) != 0)
            return (void *)1;
        break;
    }
    case 2:
        if (usleep(700 * 1000) != 0)
            return (void *)1;
        break;
    default: {
        struct timespec ts = {1, 0};
        if (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL) != 0)
            return (void *)1;
        break;
    }
    }
    return errno == 1234 ? NULL : (void *)2; /* errno preserved */
}

static void test_sleeps_concurrent(void **state)
{
    (void)state;
    green_t *gs = calloc(SLEEPERS, sizeof *gs);
    assert_non_null(gs);
    int64_t t0 = green_now();
    for (long i = 0; i < SLEEPERS; i++)
        assert_non_null(gs[i] = green_spawn(sleeper, (void *)(intptr_t)i));
    for (long i = 0; i < SLEEPERS; i++) {
        void *r = (void *)3;
        assert_int_equal(green_join(gs[i], &r, -1), 0);
        assert_null(r);
    }
    int64_t ms = elapsed_since(t0);
    printf("%d green threads in sleep(1)/nanosleep(0.5 s)/usleep(0.7 s)/clock_nanosleep(1 s): %lld ms\n",
           SLEEPERS, (long long)ms);
    assert_true(ms >= 990 && ms < 1000 + 2 * LATE_MS);
    free(gs);
    assert_hub_idle();
}

/* A sleep cut short by a scoped deadline reports the time left. */
static void test_sleep_cut_short(void **state)
{
    (void)state;
    struct timespec ts = {2, 0}, rem = {0, 0};
    assert_int_equal(green_timeout_push(100), 0);
    errno = 0;
    assert_int_equal(nanosleep(&ts, &rem), -1);
    assert_int_equal(errno, ETIMEDOUT);
    assert_true(rem.tv_sec == 1 && rem.tv_nsec > 0); /* ~1.9 s left */
    errno = 0;
    unsigned left = sleep(5);
    assert_int_equal(errno, ETIMEDOUT);
    assert_true(left >= 4 && left <= 5);
    assert_int_equal(clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL), ETIMEDOUT);
    assert_int_equal(green_timeout_pop(), 0);
    assert_hub_idle();
}

/* ---- plain calls in green threads: blocking fds park, the user's view of flags ---- */

struct pipe_reader {
    int fd;
    char buf[16];
    ssize_t n;
    int err;
};

static void *read_pipe(void *arg)
{
    struct pipe_reader *r = arg;
    errno = 0;
    r->n = read(r->fd, r->buf, sizeof r->buf - 1);
    r->err = errno;
    return NULL;
}

static void test_blocking_fd_parks(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct pipe_reader r = {.fd = p[0]};
    long ticks = 0;
    green_t g = green_spawn(read_pipe, &r);
    green_t t = green_spawn(count_ticks, &ticks);
    assert_int_equal(green_sleep(50), 0);
    assert_int_equal(r.n, 0); /* still waiting, and the ticker ran */
    assert_true(ticks > 5);
    /* the user's view: blocking, while the kernel's is non-blocking */
    assert_int_equal(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
    assert_int_not_equal(kernel_flags(p[0]) & O_NONBLOCK, 0);
    errno = 4321;
    assert_int_equal(write(p[1], "hi", 2), 2);
    assert_int_equal(errno, 4321);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.err, 0); /* errno untouched by a successful read that waited */
    assert_string_equal(r.buf, "hi");
    green_kill(t);
    green_join(t, NULL, -1);

    /* the user makes it non-blocking (fcntl, then ioctl FIONBIO): EAGAIN, as libc */
    assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
    assert_int_not_equal(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
    char c;
    assert_fails_with(read(p[0], &c, 1), EAGAIN);
    int off = 0, on = 1;
    assert_int_equal(ioctl(p[0], FIONBIO, &off), 0);
    assert_int_equal(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
    assert_int_not_equal(kernel_flags(p[0]) & O_NONBLOCK, 0);
    assert_int_equal(ioctl(p[0], FIONBIO, &on), 0);
    assert_fails_with(read(p[0], &c, 1), EAGAIN);
    assert_int_equal(ioctl(p[0], FIONBIO, &off), 0);

    /* scoped deadline and kill on a plain read */
    assert_int_equal(green_timeout_push(50), 0);
    assert_fails_with(read(p[0], &c, 1), ETIMEDOUT);
    assert_int_equal(green_timeout_pop(), 0);
    r = (struct pipe_reader){.fd = p[0]};
    g = green_spawn(read_pipe, &r);
    assert_int_equal(green_sleep(10), 0);
    assert_int_equal(green_kill(g), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(r.n, -1);
    assert_int_equal(r.err, ECANCELED);
    assert_int_equal(close(p[0]), 0);
    assert_int_equal(close(p[1]), 0);
    assert_hub_idle();
}

/* A copy (dup, F_DUPFD) made before libgreen knew the fd, then only the original used:
 * the copy still looks blocking and its read parks (F_GETFL showed the O_NONBLOCK set
 * underneath and the read failed with EAGAIN; found by tests/fuzz/fuzz_fdflags.c). */
static void test_dup_before_use(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    int d = dup(p[0]), f = fcntl(p[0], F_DUPFD, 0);
    assert_true(d >= 0 && f >= 0);
    char c;
    assert_int_equal(green_timeout_push(5), 0);
    assert_fails_with(read(p[0], &c, 1), ETIMEDOUT); /* learns p[0]: O_NONBLOCK underneath */
    assert_int_not_equal(kernel_flags(d) & O_NONBLOCK, 0);
    assert_int_equal(fcntl(d, F_GETFL) & O_NONBLOCK, 0);
    assert_int_equal(fcntl(f, F_GETFL) & O_NONBLOCK, 0);
    assert_fails_with(read(d, &c, 1), ETIMEDOUT);
    assert_fails_with(read(f, &c, 1), ETIMEDOUT);
    assert_int_equal(green_timeout_pop(), 0);
    assert_int_equal(close(d), 0);
    assert_int_equal(close(f), 0);
    assert_int_equal(close(p[0]), 0);
    assert_int_equal(close(p[1]), 0);
    assert_hub_idle();
}

/* dup2 (dup3) over a number a green thread has waited on, its open file kept open by a
 * copy: a wait on the number's new file is woken (the hub took it as watched already
 * and never woke it; found by tests/fuzz/fuzz_fdflags.c). */
static void *write_x_later(void *arg)
{
    green_yield();
    return (void *)(intptr_t)write(*(int *)arg, "x", 1);
}

static void test_dup2_over_watched(void **state)
{
    (void)state;
    for (int use_dup3 = 0; use_dup3 < 2; use_dup3++) {
        int a[2], b[2];
        assert_int_equal(pipe(a), 0);
        assert_int_equal(pipe(b), 0);
        char c;
        assert_int_equal(green_timeout_push(5), 0);
        assert_fails_with(read(a[0], &c, 1), ETIMEDOUT); /* the hub watches a[0] */
        assert_int_equal(green_timeout_pop(), 0);
        int keep = dup(a[0]); /* a[0]'s file stays open */
        assert_true(keep >= 0);
        assert_int_equal(use_dup3 ? dup3(b[0], a[0], 0) : dup2(b[0], a[0]), a[0]);
        green_t g = green_spawn(write_x_later, &b[1]);
        assert_non_null(g);
        assert_int_equal(green_timeout_push(2000), 0);
        assert_int_equal(read(a[0], &c, 1), 1); /* b's byte, read through a[0] */
        assert_int_equal(green_timeout_pop(), 0);
        void *r;
        assert_int_equal(green_join(g, &r, -1), 0);
        assert_int_equal((intptr_t)r, 1);
        int fds[] = {a[0], a[1], b[0], b[1], keep};
        for (int i = 0; i < 5; i++)
            assert_int_equal(close(fds[i]), 0);
    }
    assert_hub_idle();
}

/* accept4 gives the accepted fd the caller's flags only; SOCK_NONBLOCK keeps EAGAIN. */
static void *connect_to(void *arg)
{
    struct sockaddr_in *a = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)a, sizeof *a) != 0)
        return (void *)1;
    return (void *)(intptr_t)fd;
}

struct sender {
    int fd;
    const char *buf;
    size_t n;
    ssize_t r;
};

static void *send_it(void *arg)
{
    struct sender *s = arg;
    s->r = send(s->fd, s->buf, s->n, 0);
    return NULL;
}

static void test_sockets(void **state)
{
    (void)state;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 8), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
    green_t g = green_spawn(connect_to, &a);
    int c = accept(l, NULL, NULL); /* parks until the green thread connects */
    assert_true(c >= 0);
    void *cfd;
    assert_int_equal(green_join(g, &cfd, -1), 0);
    int fd = (int)(intptr_t)cfd;
    assert_true(fd > 2);
    assert_int_equal(kernel_flags(c) & O_NONBLOCK, 0);  /* nothing the caller did not ask */
    assert_int_equal(fcntl(c, F_GETFD) & FD_CLOEXEC, 0);
    assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    /* blocking send/recv with MSG_WAITALL across green threads */
    static char big[1 << 20], got[1 << 20];
    memset(big, 'x', sizeof big);
    struct sender s = {fd, big, sizeof big, 0};
    g = green_spawn(send_it, &s);
    assert_int_equal(recv(c, got, sizeof got, MSG_WAITALL), (ssize_t)sizeof got);
    assert_memory_equal(big, got, sizeof got);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(s.r, (ssize_t)sizeof big);
    /* a user non-blocking socket: EAGAIN */
    int nb = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_int_equal(bind(nb, (struct sockaddr *)&(struct sockaddr_in){.sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)}, sizeof a), 0);
    assert_int_equal(listen(nb, 1), 0);
    assert_fails_with(accept(nb, NULL, NULL), EAGAIN);
    assert_fails_with(recv(c, got, 1, MSG_DONTWAIT), EAGAIN);
    /* accept4's flags are the new fd's, exactly */
    g = green_spawn(connect_to, &a);
    int c2 = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    assert_true(c2 >= 0);
    assert_int_equal(green_join(g, &cfd, -1), 0);
    assert_int_not_equal(fcntl(c2, F_GETFL) & O_NONBLOCK, 0);
    assert_int_not_equal(fcntl(c2, F_GETFD) & FD_CLOEXEC, 0);
    assert_fails_with(recv(c2, got, 1, 0), EAGAIN);
    close(c2);
    close((int)(intptr_t)cfd);
    close(nb);
    close(c);
    close(fd);
    close(l);
    assert_hub_idle();
}

/* ---- poll and select in green threads ---- */

static void test_poll_select(void **state)
{
    (void)state;
    int a[2], b[2];
    assert_int_equal(pipe(a), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
    /* own timeout: 0 */
    struct pollfd p[2] = {{.fd = a[0], .events = POLLIN}, {.fd = b[0], .events = POLLIN}};
    int64_t t0 = green_now();
    assert_int_equal(poll(p, 2, 100), 0);
    assert_true(elapsed_since(t0) >= 99);
    assert_int_equal(poll(p, 1, 30), 0);
    /* nfds == 0 is a sleep */
    t0 = green_now();
    assert_int_equal(poll(NULL, 0, 50), 0);
    assert_true(elapsed_since(t0) >= 49);
    /* readiness while parked */
    long ticks = 0;
    green_t t = green_spawn(count_ticks, &ticks);
    assert_int_equal(write(b[1], "x", 1), 1);
    assert_int_equal(poll(p, 2, -1), 1);
    assert_int_equal(p[1].revents, POLLIN);
    /* the scoped deadline: -1/ETIMEDOUT, not 0 */
    char c;
    assert_int_equal(read(b[0], &c, 1), 1);
    assert_int_equal(green_timeout_push(30), 0);
    assert_fails_with(poll(p, 2, 10000), ETIMEDOUT);
    assert_fails_with(poll(p, 1, -1), ETIMEDOUT);
    assert_int_equal(green_timeout_pop(), 0);
    /* select */
    fd_set rd, wr;
    FD_ZERO(&rd);
    FD_ZERO(&wr);
    FD_SET(a[0], &rd);
    FD_SET(b[0], &rd);
    FD_SET(a[1], &wr);
    struct timeval tv = {1, 0};
    assert_int_equal(select(FD_SETSIZE, &rd, &wr, NULL, &tv), 1); /* the pipe is writable */
    assert_true(FD_ISSET(a[1], &wr) && !FD_ISSET(a[0], &rd) && !FD_ISSET(b[0], &rd));
    FD_ZERO(&rd);
    FD_SET(a[0], &rd);
    tv = (struct timeval){0, 50000};
    long before = ticks;
    assert_int_equal(select(a[0] + 1, &rd, NULL, NULL, &tv), 0);
    long during = ticks - before; /* the ticker ran while select waited: it parked */
    assert_true(tv.tv_sec == 0 && tv.tv_usec == 0);
    struct timespec ts = {0, 20 * 1000000L};
    FD_SET(a[0], &rd);
    assert_int_equal(pselect(a[0] + 1, &rd, NULL, NULL, &ts, NULL), 0);
    assert_int_equal(ppoll(p, 2, &ts, NULL), 0);
    green_kill(t);
    green_join(t, NULL, -1);
    assert_true(during > 0);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    assert_hub_idle();
}

/* ---- (7) bad input ---- */

struct poller {
    struct pollfd p[2];
    nfds_t n;
    int r, err;
};

static void *poll_it(void *arg)
{
    struct poller *pl = arg;
    errno = 0;
    pl->r = poll(pl->p, pl->n, 5000);
    pl->err = errno;
    return NULL;
}

static void test_bad_input(void **state)
{
    (void)state;
    /* closing an fd that another green thread reads: EBADF, not a hang */
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct pipe_reader r = {.fd = p[0]};
    green_t g = green_spawn(read_pipe, &r);
    assert_int_equal(green_sleep(10), 0);
    assert_int_equal(close(p[0]), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(r.n, -1);
    assert_int_equal(r.err, EBADF);
    /* ... and one that another green thread polls with others: POLLNVAL */
    int q[2];
    assert_int_equal(pipe(q), 0);
    assert_int_equal(pipe(p), 0);
    struct poller pl = {.p = {{.fd = p[0], .events = POLLIN}, {.fd = q[0], .events = POLLIN}}, .n = 2};
    int64_t t0 = green_now();
    g = green_spawn(poll_it, &pl);
    assert_int_equal(green_sleep(10), 0);
    assert_int_equal(close(q[0]), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_true(elapsed_since(t0) < 1000);
    assert_int_equal(pl.r, 1);
    assert_int_equal(pl.p[1].revents, POLLNVAL);
    /* two green threads reading one fd (the hub's table has one reader per fd) */
    struct pipe_reader r1 = {.fd = p[0]}, r2 = {.fd = p[0]};
    green_t g1 = green_spawn(read_pipe, &r1), g2 = green_spawn(read_pipe, &r2);
    assert_int_equal(green_sleep(10), 0);
    assert_int_equal(write(p[1], "a", 1), 1);
    assert_int_equal(green_sleep(10), 0);
    assert_int_equal(write(p[1], "b", 1), 1);
    assert_int_equal(green_join(g1, NULL, -1), 0);
    assert_int_equal(green_join(g2, NULL, -1), 0);
    assert_int_equal(r1.n + r2.n, 2);
    /* invalid fds: POLLNVAL at once; negative ones are ignored */
    struct pollfd bad[3] = {{.fd = 9999, .events = POLLIN}, {.fd = -1, .events = POLLIN}, {.fd = p[0], .events = POLLIN}};
    assert_int_equal(poll(bad, 3, 1000), 1);
    assert_int_equal(bad[0].revents, POLLNVAL);
    assert_int_equal(bad[1].revents, 0);
    /* select: nfds beyond FD_SETSIZE, a negative one, and a closed fd in a set */
    fd_set rd;
    FD_ZERO(&rd);
    assert_fails_with(select(FD_SETSIZE + 1, &rd, NULL, NULL, NULL), EINVAL);
    assert_fails_with(select(-1, &rd, NULL, NULL, NULL), EINVAL);
    FD_SET(9999 % FD_SETSIZE, &rd);
    struct timeval tv = {1, 0};
    if (fcntl(9999 % FD_SETSIZE, F_GETFD) < 0)
        assert_fails_with(select(FD_SETSIZE, &rd, NULL, NULL, &tv), EBADF);
    struct timespec bad_ts = {0, 2000000000L};
    assert_fails_with(nanosleep(&bad_ts, NULL), EINVAL);
    assert_fails_with(read(9999, &rd, 1), EBADF);
    close(p[0]);
    close(p[1]);
    close(q[1]);
    assert_hub_idle();
}

/* ---- (8) the blocking calls of issue 12: signals, children, event loops, copies, locks ---- */

/* One blocking call made in a green thread of its own: its result and errno, and
 * whether it has returned. */
struct blocked {
    long (*call)(struct blocked *b);
    long arg[4];
    long r;
    int err, done;
};

static void *blocked_run(void *arg)
{
    struct blocked *b = arg;
    errno = 0;
    b->r = b->call(b);
    b->err = errno;
    b->done = 1;
    return NULL;
}

/* Start b in a green thread and let it park (it has not returned 20 ms later). */
static green_t blocked_start(struct blocked *b)
{
    green_t g = green_spawn(blocked_run, b);
    assert_non_null(g);
    assert_int_equal(green_sleep(20), 0);
    assert_false(b->done);
    return g;
}

/* Kill it: the call returns, with -1/ECANCELED unless `returns_err` (the calls that
 * return an error number: it is ECANCELED, errno untouched). */
static void blocked_kill(struct blocked *b, green_t g, int returns_err)
{
    assert_int_equal(green_kill(g), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_true(b->done);
    if (returns_err) {
        assert_int_equal(b->r, ECANCELED);
        assert_int_equal(b->err, 0);
    } else {
        assert_int_equal(b->r, -1);
        assert_int_equal(b->err, ECANCELED);
    }
}

/* A ticker for the duration of a test: it proves that the other green threads ran (a
 * call that pinned the OS thread would let it tick not once while it waits; the checks
 * ask for one tick, which a loaded machine cannot take away). */
static green_t ticker_start(long *ticks)
{
    *ticks = 0;
    green_t t = green_spawn(count_ticks, ticks);
    assert_non_null(t);
    return t;
}

static void ticker_stop(green_t t, long *ticks, long at_least)
{
    assert_int_equal(green_kill(t), 0);
    assert_int_equal(green_join(t, NULL, -1), 0);
    assert_true(*ticks >= at_least);
}

static sigset_t sigset_of(int signo)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, (int)signo);
    return s;
}

static long call_sigwait(struct blocked *b)
{
    sigset_t s = sigset_of((int)b->arg[0]);
    int sig = 0;
    long r = sigwait(&s, &sig);
    b->arg[1] = sig;
    return r;
}

static long call_sigwaitinfo(struct blocked *b)
{
    sigset_t s = sigset_of((int)b->arg[0]);
    siginfo_t si;
    long r = sigwaitinfo(&s, &si);
    if (r > 0)
        b->arg[1] = si.si_value.sival_int;
    return r;
}

/* sigwait, sigwaitinfo, sigtimedwait park their green thread only; a kill and a scoped
 * deadline end them; each queued delivery is taken once. */
static void test_signals(void **state)
{
    (void)state;
    alarm(60); /* without the wrappers the first wait pins the hub: fail, do not hang */
    int rt = SIGRTMIN + 3;
    sigset_t set = sigset_of(SIGUSR1);
    sigaddset(&set, rt);
    sigset_t old_mask;
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &set, &old_mask), 0);
    long ticks;
    green_t t = ticker_start(&ticks);
    struct blocked b = {.call = call_sigwait, .arg = {SIGUSR1}};
    green_t g = blocked_start(&b);
    assert_int_equal(kill(getpid(), SIGUSR1), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(b.r, 0);
    assert_int_equal(b.arg[1], SIGUSR1);
    ticker_stop(t, &ticks, 1);
    /* kills: sigwait returns the error, sigwaitinfo fails with it */
    b = (struct blocked){.call = call_sigwait, .arg = {SIGUSR1}};
    blocked_kill(&b, blocked_start(&b), 1);
    b = (struct blocked){.call = call_sigwaitinfo, .arg = {SIGUSR1}};
    blocked_kill(&b, blocked_start(&b), 0);
    /* a scoped deadline: ETIMEDOUT; sigtimedwait's own earlier timeout: EAGAIN */
    siginfo_t si;
    struct timespec long_ts = {10, 0}, short_ts = {0, 20 * 1000000L};
    int sig = 0;
    sigset_t usr1 = sigset_of(SIGUSR1);
    assert_int_equal(green_timeout_push(50), 0);
    assert_fails_with(sigtimedwait(&usr1, &si, &short_ts), EAGAIN);
    assert_fails_with(sigwaitinfo(&usr1, &si), ETIMEDOUT);
    assert_fails_with(sigtimedwait(&usr1, &si, &long_ts), ETIMEDOUT);
    errno = 0;
    assert_int_equal(sigwait(&usr1, &sig), ETIMEDOUT);
    assert_int_equal(errno, 0);
    assert_int_equal(green_timeout_pop(), 0);
    /* two green threads, two queued signals: one each */
    struct blocked w1 = {.call = call_sigwaitinfo, .arg = {rt}}, w2 = w1;
    green_t g1 = blocked_start(&w1), g2 = blocked_start(&w2);
    for (int v = 1; v <= 2; v++)
        assert_int_equal(sigqueue(getpid(), rt, (union sigval){.sival_int = v}), 0);
    assert_int_equal(green_join(g1, NULL, -1), 0);
    assert_int_equal(green_join(g2, NULL, -1), 0);
    assert_true(w1.r == rt && w2.r == rt && w1.arg[1] + w2.arg[1] == 3 && w1.arg[1] != w2.arg[1]);
    /* glibc's answers to bad input */
    sigset_t none;
    sigemptyset(&none);
    struct timespec zero = {0, 0}, bad = {0, 1000000000L};
    assert_fails_with(sigtimedwait(&none, &si, &zero), EAGAIN);
    assert_fails_with(sigtimedwait(&usr1, &si, &bad), EINVAL);
    sigset_t kill_only = sigset_of(SIGKILL);
    assert_fails_with(sigtimedwait(&kill_only, &si, &zero), EAGAIN); /* ignored, not EINVAL */
    assert_int_equal(pthread_sigmask(SIG_SETMASK, &old_mask, NULL), 0); /* later tests' handlers */
    alarm(0);
    assert_hub_idle();
}

/* A child that sleeps ms (-1: until killed), then exits with code. */
static pid_t child_after(int ms, int code)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (ms < 0)
            for (;;)
                pause();
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        syscall(SYS_nanosleep, &ts, NULL);
        _exit(code);
    }
    return pid;
}

static long call_waitpid(struct blocked *b)
{
    int st = 0;
    long r = waitpid((pid_t)b->arg[0], &st, (int)b->arg[1]);
    b->arg[2] = st;
    return r;
}

/* The children this OS thread has (/proc's list), to see that none is left behind. */
static void children_of_thread(char *buf, size_t n)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%ld/children", (long)syscall(SYS_gettid));
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t r = read(fd, buf, n - 1);
    buf[r > 0 ? r : 0] = '\0';
    close(fd);
}

/* waitpid parks its green thread only; a kill or a scoped deadline ends it and leaves the
 * child for a later wait; stops are reported. */
static void test_waits(void **state)
{
    (void)state;
    alarm(60);
    long ticks;
    green_t t = ticker_start(&ticks);
    pid_t pid = child_after(100, 5);
    struct blocked b = {.call = call_waitpid, .arg = {pid, 0}};
    green_t g = blocked_start(&b);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_true(b.r == pid && WIFEXITED(b.arg[2]) && WEXITSTATUS(b.arg[2]) == 5);
    ticker_stop(t, &ticks, 1);
    /* any child, and one that stops */
    t = ticker_start(&ticks);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct timespec ts = {0, 50 * 1000000L};
        syscall(SYS_nanosleep, &ts, NULL);
        raise(SIGSTOP);
        _exit(0);
    }
    b = (struct blocked){.call = call_waitpid, .arg = {pid, WUNTRACED}};
    g = blocked_start(&b);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_true(b.r == pid && WIFSTOPPED(b.arg[2]));
    assert_int_equal(kill(pid, SIGKILL), 0);
    b = (struct blocked){.call = call_waitpid, .arg = {-1, 0}};
    g = green_spawn(blocked_run, &b);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_true(b.r == pid && WIFSIGNALED(b.arg[2]));
    ticker_stop(t, &ticks, 1);
    /* a kill and a scoped deadline leave the child unreaped */
    pid = child_after(-1, 0);
    b = (struct blocked){.call = call_waitpid, .arg = {pid, 0}};
    blocked_kill(&b, blocked_start(&b), 0);
    int st;
    assert_int_equal(green_timeout_push(30), 0);
    assert_fails_with(waitpid(pid, &st, 0), ETIMEDOUT);
    assert_fails_with(wait4(pid, &st, WUNTRACED, NULL), ETIMEDOUT);
    siginfo_t si;
    assert_fails_with(waitid(P_PID, (id_t)pid, &si, WEXITED), ETIMEDOUT);
    assert_int_equal(green_timeout_pop(), 0);
    assert_int_equal(waitpid(pid, &st, WNOHANG), 0);
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    /* the kernel's errors, at once */
    assert_fails_with(waitpid(1, &st, 0), ECHILD);
    assert_fails_with(waitpid(-1, &st, 0x10000000), EINVAL);
    assert_fails_with(waitid(P_PID, 0, &si, WEXITED), EINVAL);
    alarm(0);
    assert_hub_idle();
}

static long call_system(struct blocked *b) { return system((const char *)b->arg[0]); }

static long call_pclose(struct blocked *b) { return pclose((FILE *)b->arg[0]); }

/* system() and pclose() park their green thread only; a scoped deadline or a kill ends
 * system() and takes its shell with it; the signals are as they were after. */
static void test_system(void **state)
{
    (void)state;
    alarm(60);
    char before[256], after[256];
    children_of_thread(before, sizeof before);
    struct sigaction sa0, sa1;
    assert_int_equal(sigaction(SIGINT, NULL, &sa0), 0);
    long ticks;
    green_t t = ticker_start(&ticks);
    struct blocked b = {.call = call_system, .arg = {(long)"sleep 0.1; exit 3"}};
    green_t g = blocked_start(&b);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_true(WIFEXITED(b.r) && WEXITSTATUS(b.r) == 3);
    FILE *f = popen("sleep 0.1; exit 2", "r");
    assert_non_null(f);
    b = (struct blocked){.call = call_pclose, .arg = {(long)f}};
    g = blocked_start(&b);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_true(WIFEXITED(b.r) && WEXITSTATUS(b.r) == 2);
    ticker_stop(t, &ticks, 1);
    /* cut short: the shell is killed and reaped */
    assert_int_equal(green_timeout_push(50), 0);
    assert_fails_with(system("exec sleep 10"), ETIMEDOUT); /* (exec: SIGKILL reaches the sleep) */
    assert_int_equal(green_timeout_pop(), 0);
    b = (struct blocked){.call = call_system, .arg = {(long)"exec sleep 10"}};
    blocked_kill(&b, blocked_start(&b), 0);
    children_of_thread(after, sizeof after);
    assert_string_equal(before, after);
    assert_int_equal(sigaction(SIGINT, NULL, &sa1), 0);
    assert_true(sa1.sa_handler == sa0.sa_handler);
    sigset_t mask;
    assert_int_equal(pthread_sigmask(SIG_BLOCK, NULL, &mask), 0);
    assert_false(sigismember(&mask, SIGCHLD));
    /* pclose cut short leaves the command running: its stream is closed all the same */
    f = popen("echo $$; exec sleep 10", "r");
    char line[32];
    assert_non_null(fgets(line, sizeof line, f));
    pid_t pid = (pid_t)atol(line);
    assert_int_equal(green_timeout_push(30), 0);
    assert_fails_with(pclose(f), ETIMEDOUT);
    assert_int_equal(green_timeout_pop(), 0);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    alarm(0);
    assert_hub_idle();
}

static long call_epoll(struct blocked *b)
{
    struct epoll_event ev;
    return epoll_wait((int)b->arg[0], &ev, 1, (int)b->arg[1]);
}

static void *write_soon(void *arg)
{
    int fd = (int)(intptr_t)arg;
    green_sleep(30);
    return write(fd, "abc", 3) == 3 ? NULL : (void *)1;
}

/* epoll_wait parks its green thread only, with its own timeout, a scoped deadline, a
 * kill, a close of the epoll fd by another green thread, and two waiters on one fd. */
static void test_epoll(void **state)
{
    (void)state;
    alarm(60);
    int p[2];
    assert_int_equal(pipe(p), 0);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN};
    assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev), 0);
    long ticks;
    green_t t = ticker_start(&ticks);
    struct blocked b1 = {.call = call_epoll, .arg = {ep, -1}}, b2 = b1;
    green_t g1 = blocked_start(&b1), g2 = blocked_start(&b2); /* the second: a private epoll */
    green_t w = green_spawn(write_soon, (void *)(intptr_t)p[1]);
    assert_int_equal(green_join(g1, NULL, -1), 0);
    assert_int_equal(green_join(g2, NULL, -1), 0);
    assert_int_equal(green_join(w, NULL, -1), 0);
    assert_true(b1.r == 1 && b2.r == 1);
    ticker_stop(t, &ticks, 1);
    char buf[8];
    assert_int_equal(read(p[0], buf, sizeof buf), 3);
    b1 = (struct blocked){.call = call_epoll, .arg = {ep, -1}};
    blocked_kill(&b1, blocked_start(&b1), 0);
    assert_int_equal(green_timeout_push(30), 0);
    assert_int_equal(epoll_wait(ep, &ev, 1, 10), 0); /* its own timeout, earlier */
    assert_fails_with(epoll_wait(ep, &ev, 1, 10000), ETIMEDOUT);
    assert_int_equal(green_timeout_pop(), 0);
    b1 = (struct blocked){.call = call_epoll, .arg = {ep, -1}};
    g1 = blocked_start(&b1);
    assert_int_equal(close(ep), 0);
    assert_int_equal(green_join(g1, NULL, -1), 0);
    assert_true(b1.r == -1 && b1.err == EBADF);
    close(p[0]);
    close(p[1]);
    alarm(0);
    assert_hub_idle();
}

#ifdef GREEN_TEST_URING
static long call_uring_wait(struct blocked *b)
{
    struct io_uring_cqe *cqe = NULL;
    long r = io_uring_wait_cqe((struct io_uring *)b->arg[0], &cqe);
    if (r == 0)
        b->arg[1] = cqe->res;
    return r;
}

/* A program's own io_uring (src/patch/uring.c): io_uring_wait_cqe parks its green
 * thread only; a kill ends it with -ECANCELED, a scoped deadline with -ETIMEDOUT, its
 * own earlier timeout with -ETIME (liburing's answers are negative error numbers:
 * errno untouched). */
static void test_uring(void **state)
{
    (void)state;
    alarm(60);
    struct io_uring ring;
    if (io_uring_queue_init(4, &ring, 0) < 0)
        skip(); /* no io_uring here */
    int p[2];
    assert_int_equal(pipe(p), 0);
    char buf[8];
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_read(sqe, p[0], buf, sizeof buf, 0);
    assert_int_equal(io_uring_submit(&ring), 1);
    long ticks;
    green_t t = ticker_start(&ticks);
    struct blocked b = {.call = call_uring_wait, .arg = {(long)&ring}};
    green_t g = blocked_start(&b);
    green_t w = green_spawn(write_soon, (void *)(intptr_t)p[1]);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(green_join(w, NULL, -1), 0);
    assert_int_equal(b.r, 0);
    assert_int_equal(b.arg[1], 3);
    ticker_stop(t, &ticks, 1);
    struct io_uring_cqe *cqe;
    assert_int_equal(io_uring_peek_cqe(&ring, &cqe), 0);
    io_uring_cqe_seen(&ring, cqe);
    sqe = io_uring_get_sqe(&ring);
    io_uring_prep_read(sqe, p[0], buf, sizeof buf, 0);
    assert_int_equal(io_uring_submit(&ring), 1);
    b = (struct blocked){.call = call_uring_wait, .arg = {(long)&ring}};
    g = blocked_start(&b);
    assert_int_equal(green_kill(g), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_true(b.done);
    assert_int_equal(b.r, -ECANCELED);
    assert_int_equal(b.err, 0);
    assert_int_equal(green_timeout_push(30), 0);
    struct __kernel_timespec ten_ms = {0, 10 * 1000000};
    assert_int_equal(io_uring_wait_cqe_timeout(&ring, &cqe, &ten_ms), -ETIME); /* its own, earlier */
    errno = 0;
    assert_int_equal(io_uring_wait_cqe(&ring, &cqe), -ETIMEDOUT);
    assert_int_equal(errno, 0);
    assert_int_equal(green_timeout_pop(), 0);
    assert_int_equal(write(p[1], "z", 1), 1);
    assert_int_equal(io_uring_wait_cqe(&ring, &cqe), 0);
    assert_int_equal(cqe->res, 1);
    io_uring_cqe_seen(&ring, cqe);
    io_uring_queue_exit(&ring);
    close(p[0]);
    close(p[1]);
    alarm(0);
    assert_hub_idle();
}
#endif

static long call_splice(struct blocked *b)
{
    return splice((int)b->arg[0], NULL, (int)b->arg[1], NULL, 1 << 16, 0);
}

static long call_sendfile(struct blocked *b)
{
    return sendfile((int)b->arg[0], (int)b->arg[1], NULL, (size_t)b->arg[2]);
}

static long call_recvmmsg(struct blocked *b)
{
    char d[2][8];
    struct iovec iov[2] = {{d[0], 8}, {d[1], 8}};
    struct mmsghdr m[2] = {{.msg_hdr = {.msg_iov = &iov[0], .msg_iovlen = 1}},
                           {.msg_hdr = {.msg_iov = &iov[1], .msg_iovlen = 1}}};
    return recvmmsg((int)b->arg[0], m, 2, 0, NULL);
}

static void *send_two(void *arg)
{
    int fd = (int)(intptr_t)arg;
    for (int i = 0; i < 2; i++)
        if (green_sleep(20) != 0 || send(fd, "d", 1, 0) != 1)
            return (void *)1;
    return NULL;
}

/* splice, sendfile and recvmmsg park their green thread only; kills end them, a
 * sendfile that moved some bytes first returns their count. */
static void test_copies(void **state)
{
    (void)state;
    alarm(60);
    int p[2], q[2], d[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(pipe(q), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, d), 0);
    long ticks;
    green_t t = ticker_start(&ticks);
    struct blocked b = {.call = call_splice, .arg = {p[0], q[1]}};
    green_t g = blocked_start(&b);
    green_t w = green_spawn(write_soon, (void *)(intptr_t)p[1]);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(green_join(w, NULL, -1), 0);
    assert_int_equal(b.r, 3);
    b = (struct blocked){.call = call_recvmmsg, .arg = {d[0]}};
    g = blocked_start(&b);
    w = green_spawn(send_two, (void *)(intptr_t)d[1]);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(green_join(w, NULL, -1), 0);
    assert_int_equal(b.r, 2); /* it waited for both */
    ticker_stop(t, &ticks, 1);
    b = (struct blocked){.call = call_splice, .arg = {p[0], q[1]}};
    blocked_kill(&b, blocked_start(&b), 0);
    b = (struct blocked){.call = call_recvmmsg, .arg = {d[0]}};
    blocked_kill(&b, blocked_start(&b), 0);
    assert_int_equal(green_timeout_push(30), 0);
    assert_fails_with(splice(p[0], NULL, q[1], NULL, 10, 0), ETIMEDOUT);
    assert_int_equal(green_timeout_pop(), 0);
    /* sendfile of 1 MiB into a socket nobody reads: killed part way, it returns the count */
    char path[] = "/tmp/test_patch.XXXXXX";
    int f = mkstemp(path);
    assert_true(f >= 0);
    unlink(path);
    assert_int_equal(ftruncate(f, 1 << 20), 0);
    int s[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
    b = (struct blocked){.call = call_sendfile, .arg = {s[0], f, 1 << 20}};
    g = blocked_start(&b);
    assert_int_equal(green_kill(g), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_true(b.r > 0 && b.r < (1 << 20) && b.err == ECANCELED);
    int fds[] = {p[0], p[1], q[0], q[1], d[0], d[1], s[0], s[1], f};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        close(fds[i]);
    alarm(0);
    assert_hub_idle();
}

/* Take both kinds of exclusive lock on the whole file without waiting: flock's (the
 * open file description's) and fcntl's (the process's). 0 when both were taken. */
static int lock_both(int fd)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    return flock(fd, LOCK_EX | LOCK_NB) == 0 && fcntl(fd, F_SETLK, &fl) == 0 ? 0 : -1;
}

/* A process that holds both exclusive locks on path until told (a byte on its pipe). */
static pid_t lock_holder(const char *path, int *release)
{
    int ready[2], go[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* (it ends with its parent too: EOF on go) */
        int fd = open(path, O_RDWR);
        char c;
        syscall(SYS_close, go[1]);
        if (fd < 0 || lock_both(fd) != 0 || syscall(SYS_write, ready[1], "L", 1) != 1)
            _exit(1);
        syscall(SYS_read, go[0], &c, 1);
        _exit(0);
    }
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    close(ready[1]);
    close(go[0]);
    *release = go[1];
    return pid;
}

static void lock_release(pid_t pid, int release)
{
    int st;
    assert_int_equal(write(release, "G", 1), 1);
    close(release);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* Can another process take both locks now? */
static int lock_free(const char *path)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(path, O_RDWR);
        _exit(fd >= 0 && lock_both(fd) == 0 ? 0 : 1);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static long call_flock(struct blocked *b) { return flock((int)b->arg[0], LOCK_EX); }

static long call_setlkw(struct blocked *b)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    return fcntl((int)b->arg[0], F_SETLKW, &fl);
}

/* flock and F_SETLKW wait for another process's locks parking their green thread only;
 * a kill or a scoped deadline ends the wait and leaves no lock taken for nobody; fsync
 * runs on the pool (a scope that has passed starts nothing). */
static void test_locks(void **state)
{
    (void)state;
    alarm(60);
    char path[] = "/tmp/test_patch_lock.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    int release;
    pid_t holder = lock_holder(path, &release);
    long ticks;
    green_t t = ticker_start(&ticks);
    struct blocked b = {.call = call_flock, .arg = {fd}};
    green_t g = blocked_start(&b);
    assert_int_equal(green_sleep(20), 0);
    assert_false(b.done);
    lock_release(holder, release);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(b.r, 0);
    ticker_stop(t, &ticks, 1);
    assert_false(lock_free(path)); /* ours */
    assert_int_equal(flock(fd, LOCK_UN), 0);
    b = (struct blocked){.call = call_setlkw, .arg = {fd}};
    assert_int_equal(call_setlkw(&b), 0); /* (nobody else holds it now) */
    assert_false(lock_free(path));
    struct flock un = {.l_type = F_UNLCK, .l_whence = SEEK_SET};
    assert_int_equal(fcntl(fd, F_SETLK, &un), 0);
    assert_true(lock_free(path));
    /* killed while waiting: once the holder goes, the lock is free, not taken for us */
    holder = lock_holder(path, &release);
    b = (struct blocked){.call = call_flock, .arg = {fd}};
    blocked_kill(&b, blocked_start(&b), 0);
    b = (struct blocked){.call = call_setlkw, .arg = {fd}};
    blocked_kill(&b, blocked_start(&b), 0);
    assert_int_equal(green_timeout_push(30), 0);
    assert_fails_with(flock(fd, LOCK_SH), ETIMEDOUT);
    assert_int_equal(green_timeout_pop(), 0);
    lock_release(holder, release);
    assert_int_equal(green_sleep(60), 0); /* longer than the longest back-off */
    assert_true(lock_free(path));
    /* fsync and fdatasync go to the pool */
    assert_int_equal(fsync(fd), 0);
    assert_int_equal(fdatasync(fd), 0);
    assert_int_equal(green_timeout_push(0), 0);
    assert_fails_with(fsync(fd), ETIMEDOUT);
    assert_int_equal(green_timeout_pop(), 0);
    close(fd);
    unlink(path);
    alarm(0);
    assert_hub_idle();
}

static long call_pwrite(struct blocked *b)
{
    return pwrite((int)b->arg[0], (const void *)b->arg[1], (size_t)b->arg[2], 0);
}

/* The file rule by default (the size rule): a read or write of a regular file under
 * GREEN_PATCH_FILES_BIG (1 MiB) runs inline, one of 1 MiB or more on the pool with the
 * caller's own buffers, parking only its green thread — and it runs to its end: a kill
 * that comes meanwhile is held until the call has returned its count. */
static void test_file_rule(void **state)
{
    (void)state;
    if (getenv("GREEN_PATCH_FILES") || getenv("GREEN_PATCH_FILES_BIG"))
        skip(); /* another rule */
    alarm(60);
    char path[] = "/tmp/test_patch_rule.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const size_t big = 1 << 20;
    unsigned char *out = malloc(big), *in = malloc(big);
    assert_non_null(out);
    assert_non_null(in);
    for (size_t i = 0; i < big; i++)
        out[i] = (unsigned char)(i * 7 + i / 4096);
    struct gate gt;
    gate_close(&gt); /* every pool thread busy: a call sent there waits */
    /* a byte less than the size: inline, done while the pool is still full */
    struct blocked small = {.call = call_pwrite, .arg = {fd, (long)out, (long)big - 1}};
    green_t g = green_spawn(blocked_run, &small);
    assert_non_null(g);
    assert_int_equal(green_sleep(20), 0);
    assert_true(small.done);
    assert_int_equal(small.r, (long)big - 1);
    assert_int_equal(green_join(g, NULL, -1), 0);
    /* the size: queued for the pool, its green thread parked (this one ran meanwhile) */
    struct blocked b = {.call = call_pwrite, .arg = {fd, (long)out, (long)big}};
    g = blocked_start(&b);
    assert_int_equal(green_kill(g), 0); /* held: the pool will write from its buffer */
    assert_int_equal(green_sleep(20), 0);
    assert_false(b.done);
    gate_open(&gt);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_true(b.done);
    assert_int_equal(b.r, (long)big);
    /* what it wrote, read back by a big pread (the root's: on the pool too) */
    assert_int_equal(pread(fd, in, big, 0), (ssize_t)big);
    assert_memory_equal(in, out, big);
    /* readv at the file's position, 1 MiB in two pieces: the position moves by it */
    memset(in, 0, big);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    struct iovec iov[2] = {{in, 1000}, {in + 1000, big - 1000}};
    assert_int_equal(readv(fd, iov, 2), (ssize_t)big);
    assert_memory_equal(in, out, big);
    assert_int_equal(lseek(fd, 0, SEEK_CUR), (off_t)big);
    /* the end of the file: the short count; a write-only file: the call's EBADF */
    assert_int_equal(pread(fd, in, big, (off_t)big - 10), 10);
    int wfd = open(path, O_WRONLY);
    assert_true(wfd >= 0);
    assert_fails_with(pread(wfd, in, big, 0), EBADF);
    close(wfd);
    close(fd);
    unlink(path);
    free(in);
    free(out);
    alarm(0);
    assert_hub_idle();
}

/* ---- DNS: libc's answer, freed by libc ---- */

static void *resolve(void *arg)
{
    (void)arg;
    struct addrinfo *res = NULL, hints = {.ai_socktype = SOCK_STREAM};
    int rc = getaddrinfo("localhost", "80", &hints, &res);
    if (rc != 0)
        return (void *)1;
    freeaddrinfo(res); /* libc's own */
    struct hostent he, *hp = NULL;
    char buf[1024];
    int herr = 0;
    if (gethostbyname_r("localhost", &he, buf, sizeof buf, &hp, &herr) != 0 || !hp ||
        strcmp(hp->h_name, "localhost") != 0 || !hp->h_addr_list[0])
        return (void *)2;
    struct hostent *h2 = gethostbyname("localhost");
    if (!h2 || h2->h_length != 4)
        return (void *)3;
    rc = getaddrinfo("no-such-host.invalid", NULL, NULL, &res);
    return rc == 0 ? (void *)4 : NULL;
}

static void test_dns(void **state)
{
    (void)state;
    green_t g = green_spawn(resolve, NULL);
    void *r = (void *)9;
    assert_int_equal(green_join(g, &r, -1), 0);
    assert_null(r);
    assert_hub_idle();
}

/* ---- (4) pass-through: a plain pthread, no hub ---- */

struct later_write {
    int fd;
    int ms;
};

static void *write_later(void *arg)
{
    struct later_write *w = arg;
    sleep_os_ms(w->ms);
    if (write(w->fd, "z", 1) != 1)
        return (void *)1;
    return NULL;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *plain_thread(void *arg)
{
    int *managed = arg; /* a pipe that green threads used: non-blocking underneath */
    char c;
    /* a blocking fd blocks (the managed one, emulated: poll, retry) */
    for (int k = 0; k < 2; k++) {
        int p[2];
        if (k == 0 && pipe(p) != 0)
            return (void *)1;
        if (k == 1) {
            p[0] = managed[0];
            p[1] = managed[1];
            if (!(kernel_flags(p[0]) & O_NONBLOCK) || (fcntl(p[0], F_GETFL) & O_NONBLOCK))
                return (void *)2;
        }
        struct later_write w = {p[1], 100};
        pthread_t t;
        pthread_create(&t, NULL, write_later, &w);
        int64_t t0 = mono_ms();
        errno = 777;
        if (read(p[0], &c, 1) != 1 || c != 'z' || errno != 777)
            return (void *)3;
        if (mono_ms() - t0 < 80)
            return (void *)4;
        pthread_join(t, NULL);
        /* poll and select with a timeout block the OS thread for that long */
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        t0 = mono_ms();
        if (poll(&pf, 1, 50) != 0 || mono_ms() - t0 < 45)
            return (void *)5;
        /* EAGAIN stays EAGAIN on a user non-blocking fd */
        if (fcntl(p[0], F_SETFL, O_NONBLOCK) != 0 || !(fcntl(p[0], F_GETFL) & O_NONBLOCK))
            return (void *)6;
        errno = 0;
        if (read(p[0], &c, 1) != -1 || errno != EAGAIN)
            return (void *)7;
        if (fcntl(p[0], F_SETFL, 0) != 0 || (fcntl(p[0], F_GETFL) & O_NONBLOCK))
            return (void *)8;
        if (k == 0) {
            close(p[0]);
            close(p[1]);
        }
    }
    /* sleeps are libc's: the OS thread sleeps */
    int64_t t0 = mono_ms();
    struct timespec ts = {0, 30 * 1000000L};
    if (nanosleep(&ts, NULL) != 0 || usleep(20000) != 0 || mono_ms() - t0 < 48)
        return (void *)9;
    /* errno preserved, failures as libc's */
    errno = 55;
    if (close(9999) != -1 || errno != EBADF)
        return (void *)10;
    struct addrinfo *res;
    if (getaddrinfo("localhost", NULL, NULL, &res) != 0)
        return (void *)11;
    freeaddrinfo(res);
    return NULL;
}

static void *use_pipe(void *arg)
{
    int *p = arg;
    char c;
    return write(p[1], "q", 1) == 1 && read(p[0], &c, 1) == 1 ? NULL : (void *)1;
}

static void test_pass_through(void **state)
{
    (void)state;
    int managed[2];
    assert_int_equal(pipe(managed), 0);
    green_t g = green_spawn(use_pipe, managed);
    void *r = (void *)1;
    assert_int_equal(green_join(g, &r, -1), 0);
    assert_null(r);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, plain_thread, managed), 0);
    r = (void *)99;
    assert_int_equal(pthread_join(t, &r), 0);
    assert_null(r);
    close(managed[0]);
    close(managed[1]);
    assert_hub_idle();
}

/* ---- the report ---- */

/* ---- signal handlers interrupt blocking calls ---- */

static volatile sig_atomic_t usr1_hits;
static void on_usr1(int sig)
{
    (void)sig;
    usr1_hits++;
}

static void handle_usr1(int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = flags;
    assert_int_equal(sigaction(SIGUSR1, &sa, NULL), 0);
}

/* After 50 ms, raise(SIGUSR1): a signal for this OS thread, whose handler runs at once,
 * in this green thread; then, if arg is an fd, write a byte to it 50 ms later. */
static void *raise_later(void *arg)
{
    green_sleep(50);
    raise(SIGUSR1);
    if (arg) {
        green_sleep(50);
        assert_int_equal(write((int)(intptr_t)arg, "x", 1), 1);
    }
    return NULL;
}

/* The root stands for the OS thread the kernel chose: a handler that runs while it is
 * parked in poll() ends that poll with EINTR, as the kernel would; a spawned green thread
 * parked in poll() meanwhile is not disturbed. (Before: the root's poll went on, and the
 * scoped deadline ended it with ETIMEDOUT 10 s later.) */
static void test_signal_interrupts_root(void **state)
{
    (void)state;
    handle_usr1(SA_RESTART); /* poll is interrupted whatever SA_RESTART says */
    struct sigaction sa;
    assert_int_equal(sigaction(SIGUSR1, NULL, &sa), 0);
    assert_ptr_equal(sa.sa_handler, on_usr1); /* the program's handler, not the patch's */
    assert_int_equal(sa.sa_flags & (SA_SIGINFO | SA_RESTART), SA_RESTART);
    int a[2], b[2];
    assert_int_equal(pipe(a), 0);
    assert_int_equal(pipe(b), 0);
    struct poller other = {.p = {{.fd = b[0], .events = POLLIN}}, .n = 1, .r = 99};
    green_t g = green_spawn(poll_it, &other);
    green_t k = green_spawn(raise_later, NULL);
    usr1_hits = 0;
    assert_int_equal(green_timeout_push(10000), 0);
    struct pollfd pf = {.fd = a[0], .events = POLLIN};
    assert_fails_with(poll(&pf, 1, -1), EINTR);
    assert_int_equal(green_timeout_pop(), 0);
    assert_int_equal(usr1_hits, 1);
    assert_int_equal(green_join(k, NULL, -1), 0);
    assert_int_equal(green_sleep(20), 0);
    assert_int_equal(other.r, 99); /* still polling */
    assert_int_equal(write(b[1], "x", 1), 1);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(other.r, 1);

    /* a restartable call: with SA_RESTART the read goes on and gets the byte written
     * later; without, EINTR */
    char c;
    k = green_spawn(raise_later, (void *)(intptr_t)a[1]);
    assert_int_equal(read(a[0], &c, 1), 1);
    assert_int_equal(usr1_hits, 2);
    assert_int_equal(green_join(k, NULL, -1), 0);
    handle_usr1(0);
    k = green_spawn(raise_later, NULL);
    assert_fails_with(read(a[0], &c, 1), EINTR);
    assert_int_equal(green_join(k, NULL, -1), 0);
    /* a handler that ran before the call started interrupts nothing */
    raise(SIGUSR1);
    assert_int_equal(usr1_hits, 4);
    k = green_spawn(raise_later, (void *)(intptr_t)a[1]);
    handle_usr1(SA_RESTART);
    assert_int_equal(read(a[0], &c, 1), 1);
    assert_int_equal(green_join(k, NULL, -1), 0);
    signal(SIGUSR1, SIG_DFL);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(close(a[i]), 0);
        assert_int_equal(close(b[i]), 0);
    }
    assert_hub_idle();
}

/* Another OS thread with a hub of its own: a process-directed signal that every other
 * thread blocks goes to it, and interrupts its root's poll. (It cannot tell when the
 * poll has begun: it signals every 20 ms until the poll has returned.) */
static int other_done;

static void *other_os_thread(void *arg)
{
    struct poller *p = arg;
    assert_int_equal(green_yield(), 0); /* its hub */
    poll_it(p);
    __atomic_store_n(&other_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void test_signal_other_os_thread(void **state)
{
    (void)state;
    handle_usr1(SA_RESTART);
    usr1_hits = 0;
    sigset_t usr1, old;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct poller pl = {.p = {{.fd = p[0], .events = POLLIN}}, .n = 1, .r = 99};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, other_os_thread, &pl), 0);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &usr1, &old), 0);
    while (!__atomic_load_n(&other_done, __ATOMIC_ACQUIRE)) {
        assert_int_equal(kill(getpid(), SIGUSR1), 0);
        assert_int_equal(green_sleep(20), 0);
    }
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(pl.r, -1);
    assert_int_equal(pl.err, EINTR);
    assert_true(usr1_hits >= 1);
    assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
    signal(SIGUSR1, SIG_DFL);
    close(p[0]);
    close(p[1]);
    assert_hub_idle();
}

/* Waits that only a signal can end: pause() and sigsuspend() park the root (no
 * deadlock with nothing else to run: a signal may come); sigsuspend lets in a signal the
 * thread blocks only for its wait; a sleep's time left is reported. */
static void *kill_later(void *arg)
{
    green_sleep(50);
    kill(getpid(), (int)(intptr_t)arg);
    return NULL;
}

static void test_signal_waits(void **state)
{
    (void)state;
    alarm(60); /* a wait that blocks the OS thread would hang: SIGALRM ends the test */
    handle_usr1(0);
    usr1_hits = 0;
    green_t k = green_spawn(kill_later, (void *)(intptr_t)SIGUSR1);
    assert_int_equal(green_detach(k), 0);
    assert_fails_with(pause(), EINTR);
    assert_int_equal(usr1_hits, 1);

    sigset_t usr1, old;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &usr1, &old), 0);
    long ticks = 0;
    green_t t = green_spawn(count_ticks, &ticks);
    k = green_spawn(kill_later, (void *)(intptr_t)SIGUSR1);
    assert_int_equal(green_detach(k), 0);
    assert_fails_with(sigsuspend(&old), EINTR);
    assert_int_equal(usr1_hits, 2);
    assert_true(ticks > 0); /* the others ran meanwhile */
    sigset_t now;
    assert_int_equal(pthread_sigmask(SIG_SETMASK, NULL, &now), 0);
    assert_int_equal(sigismember(&now, SIGUSR1), 1); /* still blocked after */
    assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);

    k = green_spawn(kill_later, (void *)(intptr_t)SIGUSR1);
    assert_int_equal(green_detach(k), 0);
    struct timespec req = {30, 0}, rem = {0, 0};
    assert_fails_with(nanosleep(&req, &rem), EINTR);
    assert_true(rem.tv_sec >= 20 && rem.tv_sec < 30);
    assert_int_equal(green_kill(t), 0);
    assert_int_equal(green_join(t, NULL, -1), 0);

    /* a fork child, whose hub is new, starts with no call in progress */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        usr1_hits = 0;
        k = green_spawn(kill_later, (void *)(intptr_t)SIGUSR1);
        int r = pause();
        _exit(r == -1 && errno == EINTR && usr1_hits == 1 && green_join(k, NULL, -1) == 0 ? 0 : 1);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    signal(SIGUSR1, SIG_DFL);
    alarm(0);
    assert_hub_idle();
}

/* A handler runs in async-signal context: a patched call made there passes through to
 * libc (a usleep blocks the OS thread) instead of parking inside the handler, which would
 * let the ticker run during it. */
static long *handler_ticks;
static volatile long ticks_during_handler = -1;
static void on_usr2_sleeps(int sig)
{
    (void)sig;
    long before = *handler_ticks;
    usleep(5000);
    ticks_during_handler = *handler_ticks - before;
}

static sigjmp_buf out_of_handler;
static void on_usr2_jumps(int sig)
{
    (void)sig;
    siglongjmp(out_of_handler, 1);
}

static void test_signal_handler_passes_through(void **state)
{
    (void)state;
    long ticks = 0;
    handler_ticks = &ticks;
    assert_int_not_equal(signal(SIGUSR2, on_usr2_sleeps), SIG_ERR);
    green_t t = green_spawn(count_ticks, &ticks);
    assert_int_equal(green_sleep(20), 0);
    assert_true(ticks > 0);
    raise(SIGUSR2);
    assert_int_equal(ticks_during_handler, 0);
    assert_int_equal(green_sleep(20), 0); /* and afterwards calls park again */
    /* a handler left by siglongjmp: the calls made after it park again */
    assert_int_not_equal(signal(SIGUSR2, on_usr2_jumps), SIG_ERR);
    if (sigsetjmp(out_of_handler, 1) == 0)
        raise(SIGUSR2);
    long before = ticks;
    assert_int_equal(usleep(20000), 0);
    assert_true(ticks > before);
    assert_int_equal(green_kill(t), 0);
    assert_int_equal(green_join(t, NULL, -1), 0);
    signal(SIGUSR2, SIG_DFL);

    /* libgreen's own handlers are installed past the wrapper: the monitor's SIGURG */
    assert_int_equal(green_monitor_start(1000), 0);
    struct sigaction sa;
    assert_int_equal(sigaction(SIGURG, NULL, &sa), 0);
    Dl_info where = {0};
    assert_true((sa.sa_flags & SA_SIGINFO) && dladdr((void *)sa.sa_sigaction, &where));
    assert_null(strstr(where.dli_fname, "libgreen-patch"));
    assert_int_equal(green_monitor_stop(), 0);
    assert_hub_idle();
}

static void test_report(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    int missed = green_patch_report(f);
    fclose(f);
    assert_non_null(strstr(text, "green-patch: read "));
    assert_non_null(strstr(text, "green-patch: poll "));
    assert_non_null(strstr(text, "green-patch: __recv_chk "));
    if (!UNDER_ASAN) /* ASan's interceptors come first in symbol lookup, and call ours */
        assert_int_equal(missed, 0);
    free(text);
}

static int setup(void **state)
{
    (void)state;
    pid_t *pid = malloc(sizeof *pid);
    *pid = delay_server_start(&http_port);
    *state = pid;
    if (redis_start() != 0)
        redis_pid = 0;
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int teardown(void **state)
{
    pid_t *pid = *state;
    delay_server_stop(*pid);
    free(pid);
    if (redis_pid) {
        kill(redis_pid, SIGTERM);
        waitpid(redis_pid, NULL, 0);
    }
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report),
        cmocka_unit_test(test_pass_through),
        cmocka_unit_test(test_curl_concurrent),
        cmocka_unit_test(test_curl_scoped_timeout),
        cmocka_unit_test(test_hiredis),
        cmocka_unit_test(test_sleeps_concurrent),
        cmocka_unit_test(test_sleep_cut_short),
        cmocka_unit_test(test_blocking_fd_parks),
        cmocka_unit_test(test_dup_before_use),
        cmocka_unit_test(test_dup2_over_watched),
        cmocka_unit_test(test_sockets),
        cmocka_unit_test(test_poll_select),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_dns),
        cmocka_unit_test(test_signals),
        cmocka_unit_test(test_waits),
        cmocka_unit_test(test_system),
        cmocka_unit_test(test_epoll),
#ifdef GREEN_TEST_URING
        cmocka_unit_test(test_uring),
#endif
        cmocka_unit_test(test_copies),
        cmocka_unit_test(test_locks),
        cmocka_unit_test(test_file_rule),
        cmocka_unit_test(test_signal_interrupts_root),
        cmocka_unit_test(test_signal_other_os_thread),
        cmocka_unit_test(test_signal_waits),
        cmocka_unit_test(test_signal_handler_passes_through),
    };
    setvbuf(stdout, NULL, _IONBF, 0);
    return cmocka_run_group_tests(tests, setup, teardown);
}
