/* test_net.c — the socket helpers: TCP listeners and connections (IPv4, IPv6, names,
 * free ports, each address in turn, one deadline), UDP, Unix sockets (files and abstract
 * names, full backlogs), and ten thousand concurrent connections, each served by its own
 * green thread, from a client process (after gevent's test__socket.py and
 * test__server.py, and Go's net/dial_test.go). */
#include "green_test.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ---- */

static const char *port_of(int fd, char buf[8])
{
    int port = green_socket_port(fd);
    assert_true(port > 0);
    snprintf(buf, 8, "%d", port);
    return buf;
}

static void assert_green_socket(int fd)
{
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
}

/* A message goes each way between two connected sockets. */
static void roundtrip(int a, int b)
{
    char buf[16];
    assert_int_equal(green_write(a, "ping", 4, green_after(5000)), 4);
    assert_int_equal(green_recv(b, buf, 4, MSG_WAITALL, green_after(5000)), 4);
    assert_memory_equal(buf, "ping", 4);
    assert_int_equal(green_write(b, "pong", 4, green_after(5000)), 4);
    assert_int_equal(green_recv(a, buf, 4, MSG_WAITALL, green_after(5000)), 4);
    assert_memory_equal(buf, "pong", 4);
}

/* c has just connected to l: accept it, check both ways, close both. */
static void accept_and_check(int l, int c)
{
    assert_true(c >= 0);
    assert_green_socket(c);
    int s = green_accept(l, NULL, NULL, green_after(5000));
    assert_true(s >= 0);
    roundtrip(c, s);
    green_close(s);
    green_close(c);
}

static void connect_and_check(int l, const char *host, const char *port)
{
    int c = green_tcp_connect(host, port, green_after(5000));
    if (c < 0)
        print_message("green_tcp_connect(%s, %s): %s\n", host ? host : "NULL", port, strerror(errno));
    accept_and_check(l, c);
}

/* Listen on a free port of listen_host, connect through connect_host, talk, close. */
static void listen_and_connect(const char *listen_host, const char *connect_host)
{
    char port[8];
    int l = green_tcp_listen(listen_host, "0", 4);
    assert_true(l >= 0);
    connect_and_check(l, connect_host, port_of(l, port));
    green_close(l);
}

static int ipv6_loopback(void)
{
    int l = green_tcp_listen("::1", "0", 1);
    if (l < 0)
        return 0;
    green_close(l);
    return 1;
}

/* ======================================================================== */
/*  TCP                                                                     */
/* ======================================================================== */

/* Listen on a free port of 127.0.0.1, connect by address and by name. */
static void test_tcp_listen_connect(void **state)
{
    (void)state;
    int l = green_tcp_listen("127.0.0.1", "0", 16);
    assert_true(l >= 0);
    assert_green_socket(l);
    int one = 0;
    socklen_t len = sizeof one;
    assert_int_equal(getsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, &len), 0);
    assert_int_equal(one, 1);
    char port[8];
    port_of(l, port);
    connect_and_check(l, "127.0.0.1", port);
    connect_and_check(l, "localhost", port); /* a name: through the resolver */

    /* the client's own port is another one; its peer's is ours */
    int c = green_tcp_connect("127.0.0.1", port, green_after(5000));
    struct sockaddr_in peer;
    len = sizeof peer;
    assert_int_equal(getpeername(c, (struct sockaddr *)&peer, &len), 0);
    assert_int_equal(ntohs(peer.sin_port), green_socket_port(l));
    assert_true(green_socket_port(c) != green_socket_port(l));
    green_close(c);
    green_close(l);
    assert_hub_idle();
}

/* Host NULL: every address (IPv4's, listed first by getaddrinfo). "" is not a host:
 * EINVAL, for every helper, and not a resolver failure. */
static void test_tcp_listen_any(void **state)
{
    (void)state;
    int l = green_tcp_listen(NULL, "0", 4);
    assert_true(l >= 0);
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(l, (struct sockaddr *)&sa, &len), 0);
    assert_int_equal(sa.sin_family, AF_INET);
    assert_int_equal(sa.sin_addr.s_addr, htonl(INADDR_ANY));
    char port[8];
    connect_and_check(l, "127.0.0.1", port_of(l, port));
    int before = open_fds();
    assert_fails_with(green_tcp_listen("", "0", 4), EINVAL);
    assert_int_equal(green_last_resolve_error(), 0);
    assert_fails_with(green_tcp_connect("", port, green_after(5000)), EINVAL);
    assert_int_equal(green_last_resolve_error(), 0);
    assert_fails_with(green_udp_bind("", "0"), EINVAL);
    assert_int_equal(green_last_resolve_error(), 0);
    assert_int_equal(open_fds(), before);
    green_close(l);
    assert_hub_idle();
}

/* IPv6 loopback, and "::" which (with bindv6only off) also takes IPv4 clients. */
static void test_tcp_ipv6(void **state)
{
    (void)state;
    if (!ipv6_loopback()) {
        print_message("no IPv6 loopback here: skipped\n");
        return;
    }
    listen_and_connect("::1", "::1");
    listen_and_connect("::", "::1");
    FILE *f = fopen("/proc/sys/net/ipv6/bindv6only", "r");
    int v6only = 1;
    if (f) {
        if (fscanf(f, "%d", &v6only) != 1)
            v6only = 1;
        fclose(f);
    }
    if (!v6only)
        listen_and_connect("::", "127.0.0.1");
    assert_hub_idle();
}

/* A host with several addresses: each is tried in turn until one answers. NULL is the
 * loopback for connecting, listed as ::1 then 127.0.0.1; a listener on only one of them
 * is found either way, and the sockets of the attempts that failed are not leaked. */
static void test_tcp_connect_tries_each_address(void **state)
{
    (void)state;
    int before = open_fds();
    listen_and_connect("127.0.0.1", NULL);
    if (ipv6_loopback())
        listen_and_connect("::1", NULL);
    assert_int_equal(open_fds(), before);
    assert_hub_idle();
}

/* Nobody listening: ECONNREFUSED, from one address or from all of them. */
static void test_tcp_connect_refused(void **state)
{
    (void)state;
    int before = open_fds();
    char port[8];
    int l = green_tcp_listen("127.0.0.1", "0", 1);
    port_of(l, port);
    green_close(l); /* a port that was free a moment ago, and is again */
    assert_fails_with(green_tcp_connect("127.0.0.1", port, green_after(5000)), ECONNREFUSED);
    assert_fails_with(green_tcp_connect(NULL, port, green_after(5000)), ECONNREFUSED);
    /* a service name from /etc/services: discard is port 9, where nothing listens */
    assert_fails_with(green_tcp_connect("127.0.0.1", "discard", green_after(5000)), ECONNREFUSED);
    assert_int_equal(open_fds(), before);
    assert_hub_idle();
}

/* Names and services that do not resolve: ENOENT, and the resolver's own code from
 * green_last_resolve_error (no DNS server is asked: the service is looked up first, and
 * a name with an empty label is refused before any query). */
static void test_tcp_bad_names(void **state)
{
    (void)state;
    struct {
        const char *host, *port;
        int eai;
    } bad[] = {
        {"127.0.0.1", "no-such-service", EAI_SERVICE},
        {"localhost", "no-such-service", EAI_SERVICE},
        {"no..such.host", "80", EAI_NONAME},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_fails_with(green_tcp_connect(bad[i].host, bad[i].port, green_after(5000)), ENOENT);
        assert_int_equal(green_last_resolve_error(), bad[i].eai);
        assert_fails_with(green_tcp_listen(bad[i].host, bad[i].port, 4), ENOENT);
        assert_int_equal(green_last_resolve_error(), bad[i].eai);
        assert_fails_with(green_udp_bind(bad[i].host, bad[i].port), ENOENT);
        assert_int_equal(green_last_resolve_error(), bad[i].eai);
        assert_true(strlen(gai_strerror(green_last_resolve_error())) > 0);
    }
    assert_hub_idle();
}

/* A port in use (SO_REUSEADDR does not let two listen on it); green_socket_port errors. */
static void test_tcp_listen_errors(void **state)
{
    (void)state;
    char port[8];
    int l = green_tcp_listen("127.0.0.1", "0", 4);
    assert_fails_with(green_tcp_listen("127.0.0.1", port_of(l, port), 4), EADDRINUSE);
    green_close(l);
    /* free again at once, even with a connection of it still in TIME_WAIT */
    l = green_tcp_listen("127.0.0.1", port, 4);
    assert_true(l >= 0);
    connect_and_check(l, "127.0.0.1", port);
    green_close(l);
    l = green_tcp_listen("127.0.0.1", port, 4);
    assert_true(l >= 0);
    green_close(l);

    assert_fails_with(green_socket_port(-1), EBADF);
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_fails_with(green_socket_port(p[0]), ENOTSOCK);
    close(p[0]);
    close(p[1]);
    assert_hub_idle();
}

/* Connect until the listener's backlog (never accepted) is full; the connections that
 * got in are left in fds. Linux drops SYNs beyond it. */
static int fill_backlog(const char *port, int *fds, int max)
{
    int n = 0;
    while (n < max && (fds[n] = green_tcp_connect("127.0.0.1", port, green_after(200))) >= 0)
        n++;
    assert_true(n < max);
    assert_int_equal(errno, ETIMEDOUT);
    return n;
}

struct connect_call {
    const char *host, *port;
    int64_t deadline;
    int r, err;
    int eai;    /* green_last_resolve_error() right after the call */
};

static void *call_tcp_connect(void *arg)
{
    struct connect_call *c = arg;
    errno = 0;
    c->r = green_tcp_connect(c->host, c->port, c->deadline);
    c->err = errno;
    c->eai = green_last_resolve_error();
    return NULL;
}

/* One deadline covers the whole call: ETIMEDOUT when it passes (not before). A killed
 * caller gets ECANCELED. Neither leaks a socket. */
static void test_tcp_connect_deadline_and_kill(void **state)
{
    (void)state;
    char port[8];
    int l = green_tcp_listen("127.0.0.1", "0", 1);
    port_of(l, port);
    int before = open_fds();
    int queued[16];
    int n = fill_backlog(port, queued, 16);
    int64_t d = green_after(300);
    assert_fails_with(green_tcp_connect("127.0.0.1", port, d), ETIMEDOUT);
    int64_t late = green_now() - d;
    assert_true(late >= 0 && late < LATE_MS);
    assert_fails_with(green_tcp_connect("127.0.0.1", port, 0), ETIMEDOUT);

    struct connect_call cc = {.host = "127.0.0.1", .port = port, .deadline = -1};
    green_t g = green_spawn(call_tcp_connect, &cc);
    assert_int_equal(green_sleep(20), 0);
    assert_int_equal(green_kill(g), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(cc.r, -1);
    assert_int_equal(cc.err, ECANCELED);
    for (int i = 0; i < n; i++)
        green_close(queued[i]);
    assert_int_equal(open_fds(), before);
    green_close(l);
    assert_hub_idle();
}

/* killed while it sleeps, then connects: every blocking call of it fails from then on */
static void *sleep_then_connect(void *arg)
{
    green_sleep(60000);
    return call_tcp_connect(arg);
}

/* green_last_resolve_error: a failure that is not the resolver's, and a success, set it
 * back to 0; EAI_SYSTEM keeps the resolver's errno (a killed caller's ECANCELED). */
static void test_last_resolve_error(void **state)
{
    (void)state;
    char port[8];
    int l = green_tcp_listen("127.0.0.1", "0", 4);
    port_of(l, port);
    assert_fails_with(green_tcp_connect("no..such.host", port, green_after(5000)), ENOENT);
    assert_int_equal(green_last_resolve_error(), EAI_NONAME);
    int c = green_tcp_connect("localhost", port, green_after(5000)); /* through the resolver */
    assert_true(c >= 0);
    assert_int_equal(green_last_resolve_error(), 0);
    green_close(c);
    assert_fails_with(green_tcp_listen("127.0.0.1", port, 4), EADDRINUSE);
    assert_int_equal(green_last_resolve_error(), 0);

    /* a name needs the resolver: with deadline 0, or in a killed caller, the lookup ends
     * before it starts: EAI_SYSTEM, with errno ETIMEDOUT or ECANCELED */
    assert_fails_with(green_tcp_connect("localhost", port, 0), ETIMEDOUT);
    assert_int_equal(green_last_resolve_error(), EAI_SYSTEM);
    struct connect_call cc = {.host = "localhost", .port = port, .deadline = -1};
    green_t g = green_spawn(sleep_then_connect, &cc);
    assert_int_equal(green_yield(), 0); /* it starts, and sleeps */
    assert_int_equal(green_kill(g), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(cc.r, -1);
    assert_int_equal(cc.err, ECANCELED);
    assert_int_equal(cc.eai, EAI_SYSTEM);
    green_close(l);
    assert_hub_idle();
}

/* The code belongs to the OS thread that made the call, as errno does: another thread's
 * calls, failed or not, leave it alone. */
static void *other_thread_calls(void *arg)
{
    int *eai = arg;
    int fd = green_tcp_listen("127.0.0.1", "0", 4);
    eai[0] = green_last_resolve_error();
    green_close(fd);
    errno = 0;
    eai[1] = green_tcp_listen("127.0.0.1", "no-such-service", 4) == -1 && errno == ENOENT
                 ? green_last_resolve_error() : -1;
    return NULL;
}

static void test_last_resolve_error_per_thread(void **state)
{
    (void)state;
    assert_fails_with(green_udp_bind("no..such.host", "0"), ENOENT);
    assert_int_equal(green_last_resolve_error(), EAI_NONAME);
    int eai[2] = {-1, -1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, other_thread_calls, eai), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(eai[0], 0);
    assert_int_equal(eai[1], EAI_SERVICE);
    assert_int_equal(green_last_resolve_error(), EAI_NONAME);
    assert_hub_idle();
}

/* ======================================================================== */
/*  UDP                                                                     */
/* ======================================================================== */

static void test_udp_bind(void **state)
{
    (void)state;
    int a = green_udp_bind("127.0.0.1", "0");
    int b = green_udp_bind("127.0.0.1", "0");
    assert_true(a >= 0 && b >= 0);
    assert_green_socket(a);
    assert_true(green_socket_port(a) != green_socket_port(b));
    struct sockaddr_in to;
    socklen_t len = sizeof to;
    assert_int_equal(getsockname(b, (struct sockaddr *)&to, &len), 0);
    assert_int_equal(green_sendto(a, "datagram", 8, 0, (struct sockaddr *)&to, len, -1), 8);
    char buf[16];
    struct sockaddr_in from;
    socklen_t fromlen = sizeof from;
    assert_int_equal(green_recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from, &fromlen,
                                    green_after(5000)), 8);
    assert_memory_equal(buf, "datagram", 8);
    assert_int_equal(ntohs(from.sin_port), green_socket_port(a));
    char port[8];
    assert_fails_with(green_udp_bind("127.0.0.1", port_of(a, port)), EADDRINUSE);
    green_close(a);
    green_close(b);

    /* any address */
    a = green_udp_bind(NULL, "0");
    assert_true(a >= 0);
    assert_true(green_socket_port(a) > 0);
    green_close(a);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Unix sockets                                                            */
/* ======================================================================== */

static void unix_roundtrip(int l, const char *path)
{
    accept_and_check(l, green_unix_connect(path, green_after(5000)));
}

/* A socket file: connect and talk; the path is not reused behind the caller's back. */
static void test_unix_path(void **state)
{
    (void)state;
    char dir[] = "/tmp/green-net-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/sock", dir);
    int l = green_unix_listen(path, 8);
    assert_true(l >= 0);
    assert_green_socket(l);
    unix_roundtrip(l, path);
    assert_fails_with(green_unix_listen(path, 8), EADDRINUSE);
    assert_fails_with(green_socket_port(l), EAFNOSUPPORT);
    green_close(l);

    /* the file outlives its listener: connecting is refused, listening is not allowed
     * until the caller removes it */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_fails_with(green_unix_connect(path, green_after(5000)), ECONNREFUSED);
    assert_fails_with(green_unix_listen(path, 8), EADDRINUSE);
    assert_int_equal(unlink(path), 0);
    l = green_unix_listen(path, 8);
    assert_true(l >= 0);
    unix_roundtrip(l, path);
    green_close(l);
    unlink(path);

    assert_fails_with(green_unix_connect(path, green_after(5000)), ENOENT);
    char longp[200];
    memset(longp, 'x', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    assert_fails_with(green_unix_listen(longp, 1), ENAMETOOLONG);
    assert_fails_with(green_unix_connect(longp, -1), ENAMETOOLONG);
    assert_fails_with(green_unix_listen(NULL, 1), EINVAL);
    assert_fails_with(green_unix_connect("", -1), EINVAL);
    rmdir(dir);
    assert_hub_idle();
}

/* "@name": Linux's abstract namespace, nothing in the file system. */
static void test_unix_abstract(void **state)
{
    (void)state;
    char name[64];
    snprintf(name, sizeof name, "@libgreen-test-%d", (int)getpid());
    int l = green_unix_listen(name, 8);
    assert_true(l >= 0);
    unix_roundtrip(l, name);
    assert_fails_with(green_unix_listen(name, 8), EADDRINUSE);
    struct sockaddr_un sa;
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(l, (struct sockaddr *)&sa, &len), 0);
    assert_int_equal(sa.sun_path[0], '\0');
    assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + strlen(name));
    assert_memory_equal(sa.sun_path + 1, name + 1, strlen(name) - 1);
    green_close(l);
    /* gone with its listener */
    assert_fails_with(green_unix_connect(name, green_after(5000)), ECONNREFUSED);
    assert_hub_idle();
}

struct unix_call {
    const char *path;
    int64_t deadline;
    int r, err;
    int64_t elapsed;
};

static void *call_unix_connect(void *arg)
{
    struct unix_call *c = arg;
    int64_t t0 = green_now();
    errno = 0;
    c->r = green_unix_connect(c->path, c->deadline);
    c->err = errno;
    c->elapsed = green_now() - t0;
    return NULL;
}

/* A Unix listener whose backlog is full makes connects wait (there is nothing to poll:
 * they retry) until it accepts, or until their deadline. */
static void test_unix_full_backlog(void **state)
{
    (void)state;
    char name[64];
    snprintf(name, sizeof name, "@libgreen-backlog-%d", (int)getpid());
    int l = green_unix_listen(name, 1);
    int queued[16], n = 0;
    while (n < 16 && (queued[n] = green_unix_connect(name, 0)) >= 0)
        n++;
    assert_true(n > 0 && n < 16);
    assert_int_equal(errno, ETIMEDOUT); /* deadline 0: it would have had to wait */
    print_message("a Unix backlog of 1 took %d connections\n", n);

    int64_t d = green_after(100);
    assert_fails_with(green_unix_connect(name, d), ETIMEDOUT);
    int64_t late = green_now() - d;
    assert_true(late >= 0 && late < LATE_MS);

    struct unix_call uc = {.path = name, .deadline = green_after(5000)};
    green_t g = green_spawn(call_unix_connect, &uc);
    assert_int_equal(green_sleep(50), 0);
    int s = green_accept(l, NULL, NULL, green_after(5000)); /* room for one */
    assert_true(s >= 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_true(uc.r >= 0);
    assert_true(uc.elapsed >= 50 && uc.elapsed < LATE_MS);
    green_close(uc.r);
    green_close(s);

    /* killed while it waits: ECANCELED */
    uc = (struct unix_call){.path = name, .deadline = -1};
    g = green_spawn(call_unix_connect, &uc);
    assert_int_equal(green_sleep(20), 0);
    assert_int_equal(green_kill(g), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(uc.r, -1);
    assert_int_equal(uc.err, ECANCELED);
    for (int i = 0; i < n; i++)
        green_close(queued[i]);
    green_close(l);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Ten thousand connections                                                */
/* ======================================================================== */

/* A server in this process with a green thread per connection, and a client process
 * that opens them all, gets one message echoed on each, and closes them only when every
 * one has been echoed: the server holds them all open at once. */
#define CONNS (10000 / GREEN_TEST_SCALE)
#define MSG_LEN 16

static struct {
    int n;                    /* connections */
    const char *port;
    int open, peak, closed;   /* server side */
    int echoed, hung_up;      /* client side */
    int failed;
    green_event_t all_closed; /* server: every connection served and closed */
    green_event_t all_echoed; /* client: every connection has had its echo */
    green_event_t all_done;   /* client: and has been closed */
} many;

static const green_attr_t shallow = {.stack_mode = GREEN_STACK_SHARED};

static void *serve_one(void *arg)
{
    int fd = (int)(intptr_t)arg;
    if (++many.open > many.peak)
        many.peak = many.open;
    char buf[MSG_LEN];
    int64_t d = green_after(60000);
    if (green_recv(fd, buf, MSG_LEN, MSG_WAITALL, d) != MSG_LEN || green_write(fd, buf, MSG_LEN, d) != MSG_LEN ||
        green_read(fd, buf, 1, d) != 0)
        many.failed++;
    many.open--;
    green_close(fd);
    if (++many.closed == many.n)
        green_event_set(&many.all_closed);
    return NULL;
}

static void *accept_all(void *arg)
{
    int l = (int)(intptr_t)arg;
    for (int i = 0; i < many.n; i++) {
        int fd = green_accept(l, NULL, NULL, green_after(60000));
        green_t g = fd >= 0 ? green_spawn_attr(serve_one, (void *)(intptr_t)fd, &shallow) : NULL;
        if (!g) {
            many.failed++;
            green_event_set(&many.all_closed);
            return NULL;
        }
        green_detach(g);
    }
    return NULL;
}

static void *client_one(void *arg)
{
    int i = (int)(intptr_t)arg;
    int64_t d = green_after(60000);
    char msg[MSG_LEN + 1], buf[MSG_LEN];
    snprintf(msg, sizeof msg, "conn %010d", i);
    int fd = green_tcp_connect("127.0.0.1", many.port, d);
    if (fd < 0 || green_write(fd, msg, MSG_LEN, d) != MSG_LEN ||
        green_recv(fd, buf, MSG_LEN, MSG_WAITALL, d) != MSG_LEN || memcmp(buf, msg, MSG_LEN) != 0)
        many.failed++;
    if (++many.echoed == many.n)
        green_event_set(&many.all_echoed);
    green_event_wait(&many.all_echoed, d); /* hold the connection until all are echoed */
    if (fd >= 0)
        green_close(fd);
    if (++many.hung_up == many.n)
        green_event_set(&many.all_done);
    return NULL;
}

/* The client process: exit status 0 when every connection was echoed. */
static int run_clients(void)
{
    alarm(120); /* never outlive a parent that failed */
    green_event_init(&many.all_echoed);
    green_event_init(&many.all_done);
    for (int i = 0; i < many.n; i++) {
        green_t g = green_spawn_attr(client_one, (void *)(intptr_t)i, &shallow);
        if (!g)
            return 2;
        green_detach(g);
        if (i % 500 == 499)
            green_sleep(1); /* connect in waves the server can accept, not in one SYN flood */
    }
    if (green_event_wait(&many.all_done, green_after(90000)) != 0)
        return 3;
    return many.failed ? 1 : 0;
}

static void test_ten_thousand_connections(void **state)
{
    (void)state;
    print_message("poller: %s\n", green_poller_name());
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = rl.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    int n = CONNS;
    if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)n + 64 > rl.rlim_cur) {
        n = (int)rl.rlim_cur - 64;
        print_message("RLIMIT_NOFILE %llu: %d connections\n", (unsigned long long)rl.rlim_cur, n);
    }
    char port[8];
    int l = green_tcp_listen("127.0.0.1", "0", SOMAXCONN);
    assert_true(l >= 0);
    port_of(l, port);
    memset(&many, 0, sizeof many);
    many.n = n;
    many.port = port;
    assert_int_equal(green_event_init(&many.all_closed), 0);

    int64_t t0 = green_now();
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(l);
        _exit(run_clients());
    }
    green_t acceptor = green_spawn(accept_all, (void *)(intptr_t)l);
    assert_int_equal(green_event_wait(&many.all_closed, green_after(100000)), 0);
    int64_t el = green_now() - t0;
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    print_message("%d connections, at most %d open at once, in %lld ms; client exit %d\n", n,
                  many.peak, (long long)el, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    assert_int_equal(green_join(acceptor, NULL, -1), 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(many.failed, 0);
    assert_int_equal(many.closed, n);
    assert_int_equal(many.peak, n); /* all of them at once */
    assert_int_equal(green_event_destroy(&many.all_closed), 0);
    green_close(l);
    assert_hub_idle();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* first, before the resolver's pool threads have run: it forks, and memcheck
         * reports their glibc per-thread state as lost in a child forked after them */
        cmocka_unit_test(test_ten_thousand_connections),
        cmocka_unit_test(test_tcp_listen_connect),
        cmocka_unit_test(test_tcp_listen_any),
        cmocka_unit_test(test_tcp_ipv6),
        cmocka_unit_test(test_tcp_connect_tries_each_address),
        cmocka_unit_test(test_tcp_connect_refused),
        cmocka_unit_test(test_tcp_bad_names),
        cmocka_unit_test(test_tcp_listen_errors),
        cmocka_unit_test(test_tcp_connect_deadline_and_kill),
        cmocka_unit_test(test_last_resolve_error),
        cmocka_unit_test(test_last_resolve_error_per_thread),
        cmocka_unit_test(test_udp_bind),
        cmocka_unit_test(test_unix_path),
        cmocka_unit_test(test_unix_abstract),
        cmocka_unit_test(test_unix_full_backlog),
    };
    return cmocka_run_group_tests_name("net", tests, NULL, NULL);
}
