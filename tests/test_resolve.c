/* test_resolve.c — green_getaddrinfo with both resolvers (GREEN_RESOLVER=pool, the
 * default, and =ares; the resolver is chosen per call, so every test runs under each):
 * /etc/hosts names and numeric hosts give what getaddrinfo(3) gives, bad hints give its
 * EAI_* codes, deadlines and kills end a lookup at once (EAI_SYSTEM + ETIMEDOUT or
 * ECANCELED), lookups run concurrently while the hub keeps running others, from plain
 * pthreads and in a forked child. Then c-ares against a DNS server run by the test (a
 * UDP socket on loopback that answers, holds its answers, or never answers): many
 * lookups in flight on one channel, its leader killed, deadlines, and c-ares' own
 * timeouts (after gevent's test__getaddrinfo_import.py and test__ares_timeout.py). */
#include "green_test.h"
#include "pool_gate.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- comparing answers ---- */

/* One node as text: family, socket type, protocol, address, port. */
static void describe(const struct addrinfo *ai, char *out, size_t len)
{
    char addr[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ai->ai_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)ai->ai_addr;
        inet_ntop(AF_INET, &in->sin_addr, addr, sizeof addr);
        port = ntohs(in->sin_port);
    } else if (ai->ai_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)ai->ai_addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof addr);
        port = ntohs(in6->sin6_port);
    }
    snprintf(out, len, "%d/%d/%d/%s/%d/%u", ai->ai_family, ai->ai_socktype, ai->ai_protocol, addr,
             port, (unsigned)ai->ai_addrlen);
}

struct answer {
    int n;
    char node[32][80];
};

static int cmp_str(const void *a, const void *b) { return strcmp(a, b); }

/* The answer as a sorted set of nodes (resolvers may order addresses differently). */
static struct answer as_set(const struct addrinfo *ai)
{
    struct answer a = {0};
    for (; ai && a.n < 32; ai = ai->ai_next)
        describe(ai, a.node[a.n++], sizeof a.node[0]);
    qsort(a.node, (size_t)a.n, sizeof a.node[0], cmp_str);
    return a;
}

/* green_getaddrinfo gives what getaddrinfo(3) gives: the same code, the same nodes. */
static void assert_same_as_system(const char *host, const char *service, const struct addrinfo *hints)
{
    struct addrinfo *mine = NULL, *sys = NULL;
    int rc_sys = getaddrinfo(host, service, hints, &sys);
    int rc = green_getaddrinfo(host, service, hints, &mine, green_after(LATE_MS));
    if (rc != rc_sys)
        print_error("%s %s: %d, the system says %d\n", host ? host : "NULL",
                    service ? service : "NULL", rc, rc_sys);
    assert_int_equal(rc, rc_sys);
    if (rc == 0) {
        struct answer a = as_set(mine), b = as_set(sys);
        assert_int_equal(a.n, b.n);
        for (int i = 0; i < a.n; i++)
            assert_string_equal(a.node[i], b.node[i]);
        freeaddrinfo(sys);
    } else {
        assert_null(mine);
    }
    green_freeaddrinfo(mine);
}

static int is_loopback(const struct addrinfo *ai)
{
    if (ai->ai_family == AF_INET)
        return ((const struct sockaddr_in *)(const void *)ai->ai_addr)->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
    if (ai->ai_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)(const void *)ai->ai_addr)->sin6_addr);
    return 0;
}

/* ---- running each test under both resolvers ---- */

static void use_resolver(const char *name) { assert_int_equal(setenv("GREEN_RESOLVER", name, 1), 0); }

#define BOTH(name)                                                  \
    static void name##_pool(void **state)                           \
    {                                                               \
        (void)state;                                                \
        use_resolver("pool");                                       \
        name();                                                     \
    }                                                               \
    static void name##_ares(void **state)                           \
    {                                                               \
        (void)state;                                                \
        use_resolver("ares");                                       \
        name();                                                     \
    }
#define BOTH_TESTS(name) cmocka_unit_test(name##_pool), cmocka_unit_test(name##_ares)

/* ======================================================================== */

/* "localhost" is the loopback, from /etc/hosts, with the port and socket kinds asked. */
static void localhost(void)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    assert_int_equal(green_getaddrinfo("localhost", "80", &hints, &res, -1), 0);
    assert_non_null(res);
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        assert_true(is_loopback(ai));
        assert_int_equal(ai->ai_socktype, SOCK_STREAM);
        assert_int_equal(ai->ai_protocol, IPPROTO_TCP);
        assert_int_equal(ntohs(((struct sockaddr_in *)(void *)ai->ai_addr)->sin_port), 80);
    }
    green_freeaddrinfo(res);
    /* a service name, IPv4 only */
    hints.ai_family = AF_INET;
    res = NULL;
    assert_int_equal(green_getaddrinfo("localhost", "http", &hints, &res, green_after(LATE_MS)), 0);
    assert_int_equal(res->ai_family, AF_INET);
    assert_true(is_loopback(res));
    assert_int_equal(ntohs(((struct sockaddr_in *)(void *)res->ai_addr)->sin_port), 80);
    green_freeaddrinfo(res);
    green_freeaddrinfo(NULL);
    assert_hub_idle();
}
BOTH(localhost)

/* The names of /etc/hosts (its first few) resolve as the system resolves them. */
static void etc_hosts(void)
{
    const struct addrinfo kinds[] = {
        {.ai_family = AF_UNSPEC},
        {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM},
        {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM},
    };
    const char *services[] = {NULL, "80", "domain"};
    FILE *f = fopen("/etc/hosts", "r");
    assert_non_null(f);
    char line[512];
    int names = 0;
    while (names < 4 && fgets(line, sizeof line, f)) {
        char *save = NULL, *addr = strtok_r(line, " \t\n", &save);
        if (!addr || addr[0] == '#')
            continue;
        for (char *name = strtok_r(NULL, " \t\n", &save); name && names < 4;
             name = strtok_r(NULL, " \t\n", &save)) {
            if (name[0] == '#')
                break;
            for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++)
                for (size_t s = 0; s < sizeof services / sizeof *services; s++)
                    assert_same_as_system(name, services[s], &kinds[k]);
            names++;
        }
    }
    fclose(f);
    assert_true(names >= 1);
    /* and localhost's canonical name */
    struct addrinfo hints = {.ai_flags = AI_CANONNAME, .ai_socktype = SOCK_STREAM}, *res = NULL;
    assert_int_equal(green_getaddrinfo("localhost", NULL, &hints, &res, -1), 0);
    assert_non_null(res->ai_canonname);
    assert_string_equal(res->ai_canonname, "localhost");
    for (struct addrinfo *ai = res->ai_next; ai; ai = ai->ai_next)
        assert_null(ai->ai_canonname);
    green_freeaddrinfo(res);
    assert_hub_idle();
}
BOTH(etc_hosts)

/* Numeric hosts are parsed on the spot, exactly as the system does; they need no wait,
 * so even a passed deadline gets the answer. */
static void numeric(void)
{
    const char *hosts[] = {"127.0.0.1", "::1", "192.0.2.7", "2001:db8::1", "127.1", NULL};
    const struct addrinfo kinds[] = {
        {.ai_family = AF_UNSPEC},
        {.ai_family = AF_INET6, .ai_socktype = SOCK_DGRAM},
        {.ai_flags = AI_PASSIVE, .ai_socktype = SOCK_STREAM},
        {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM},
    };
    for (size_t h = 0; h < sizeof hosts / sizeof *hosts; h++)
        for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
            assert_same_as_system(hosts[h], "8080", &kinds[k]);
            assert_same_as_system(hosts[h], "http", &kinds[k]);
        }
    assert_same_as_system("127.0.0.1", NULL, NULL);
    struct addrinfo *res = NULL;
    assert_int_equal(green_getaddrinfo("127.0.0.1", "80", NULL, &res, 0), 0);
    green_freeaddrinfo(res);
    /* AI_NUMERICHOST on a name: no lookup at all */
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST};
    res = NULL;
    assert_int_equal(green_getaddrinfo("localhost", NULL, &hints, &res, -1), EAI_NONAME);
    assert_null(res);
    assert_hub_idle();
}
BOTH(numeric)

/* Bad arguments give getaddrinfo(3)'s own EAI_* codes, for names and numbers alike. */
static void bad_hints(void)
{
    struct {
        const char *host, *service;
        struct addrinfo hints;
        int expect;
    } cases[] = {
        {"localhost", NULL, {.ai_family = 12345}, EAI_FAMILY},
        {"localhost", NULL, {.ai_family = AF_UNIX}, EAI_FAMILY},
        {"localhost", NULL, {.ai_flags = 0x7fff0000}, EAI_BADFLAGS},
        {"localhost", NULL, {.ai_socktype = 99}, EAI_SOCKTYPE},
        {"localhost", "80", {.ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_UDP}, EAI_SOCKTYPE},
        {NULL, NULL, {0}, EAI_NONAME},
        {NULL, "80", {.ai_flags = AI_CANONNAME}, EAI_BADFLAGS},
        {"localhost", "nosuchservice", {0}, EAI_SERVICE},
        {"localhost", "http", {.ai_flags = AI_NUMERICSERV}, EAI_NONAME},
        {"localhost", "80", {.ai_socktype = SOCK_RAW}, EAI_SERVICE},
        {"127.0.0.1", "nosuchservice", {0}, EAI_SERVICE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct addrinfo *res = (struct addrinfo *)&res; /* cleared on failure */
        int rc = green_getaddrinfo(cases[i].host, cases[i].service, &cases[i].hints, &res, -1);
        if (rc != cases[i].expect)
            print_error("case %zu: %d (%s)\n", i, rc, gai_strerror(rc));
        assert_int_equal(rc, cases[i].expect);
        assert_null(res);
        assert_same_as_system(cases[i].host, cases[i].service, &cases[i].hints);
    }
    errno = 0;
    assert_int_equal(green_getaddrinfo("localhost", NULL, NULL, NULL, -1), EAI_SYSTEM);
    assert_int_equal(errno, EINVAL);
    assert_hub_idle();
}
BOTH(bad_hints)

/* A lookup whose wait is over before it starts: EAI_SYSTEM with ETIMEDOUT (deadline
 * passed) or ECANCELED (caller killed already). */
static void *killed_then_resolves(void *arg)
{
    (void)arg;
    green_sleep(LATE_MS); /* killed here */
    struct addrinfo *res = NULL;
    errno = 0;
    int rc = green_getaddrinfo("localhost", "80", NULL, &res, -1);
    return (void *)(intptr_t)(rc == EAI_SYSTEM && errno == ECANCELED && !res);
}

static void over_before_start(void)
{
    struct addrinfo *res = NULL;
    errno = 0;
    assert_int_equal(green_getaddrinfo("localhost", "80", NULL, &res, 0), EAI_SYSTEM);
    assert_int_equal(errno, ETIMEDOUT);
    assert_null(res);
    errno = 0;
    assert_int_equal(green_getaddrinfo("localhost", "80", NULL, &res, green_now()), EAI_SYSTEM);
    assert_int_equal(errno, ETIMEDOUT);
    green_t g = green_spawn(killed_then_resolves, NULL);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(green_kill(g), 0);
    void *r = NULL;
    assert_int_equal(green_join(g, &r, -1), 0);
    assert_int_equal((intptr_t)r, 1);
    assert_hub_idle();
}
BOTH(over_before_start)

/* A name under a domain that does not exist, with a 1 ms deadline: whatever the network
 * (none, a server that answers NXDOMAIN, one that never answers), the call comes back
 * quickly, with ETIMEDOUT or the resolver's failure. */
static void unknown_domain_short_deadline(void)
{
    struct addrinfo *res = NULL;
    int64_t t0 = green_now();
    errno = 0;
    int rc = green_getaddrinfo("no-such-host.invalid", "80", NULL, &res, green_after(1));
    int err = errno;
    assert_true(green_now() - t0 < LATE_MS);
    assert_int_not_equal(rc, 0);
    assert_null(res);
    if (rc == EAI_SYSTEM)
        assert_int_equal(err, ETIMEDOUT);
    assert_hub_idle();
}
BOTH(unknown_domain_short_deadline)

/* Many green threads resolve at once while a ticker keeps ticking. */
struct lookup {
    const char *host;
    int family;
    int64_t deadline;
    int rc, err;
    struct addrinfo *res;
    int64_t returned_at;
};

static void *do_lookup(void *arg)
{
    struct lookup *l = arg;
    struct addrinfo hints = {.ai_family = l->family, .ai_socktype = SOCK_STREAM};
    errno = 0;
    l->rc = green_getaddrinfo(l->host, "80", &hints, &l->res, l->deadline);
    l->err = l->rc == EAI_SYSTEM ? errno : 0;
    l->returned_at = green_now();
    return NULL;
}

static void concurrent(void)
{
    int n = 200 / GREEN_TEST_SCALE + 10;
    struct lookup *l = calloc((size_t)n, sizeof *l);
    green_t *gs = calloc((size_t)n, sizeof *gs);
    struct ticker t = {0};
    green_t tk = green_spawn(tick, &t);
    for (int i = 0; i < n; i++) {
        l[i] = (struct lookup){.host = "localhost", .deadline = green_after(10 * LATE_MS), .rc = 7};
        assert_non_null(gs[i] = green_spawn(do_lookup, &l[i]));
    }
    assert_int_equal(green_joinall(gs, (size_t)n, -1), 0);
    t.stop = 1;
    assert_int_equal(green_join(tk, NULL, -1), 0);
    for (int i = 0; i < n; i++) {
        assert_int_equal(l[i].rc, 0);
        assert_true(is_loopback(l[i].res));
        green_freeaddrinfo(l[i].res);
    }
    free(l);
    free(gs);
    assert_hub_idle();
}
BOTH(concurrent)

/* Plain pthreads (each gets a hub, and with c-ares a channel, of its own) resolve at the
 * same time as this one; their channels go with them (ASan, valgrind). */
static void *pthread_lookups(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10; i++) {
        struct lookup l = {.host = "localhost", .deadline = green_after(10 * LATE_MS)};
        do_lookup(&l);
        if (l.rc != 0 || !is_loopback(l.res))
            return (void *)1;
        green_freeaddrinfo(l.res);
    }
    return NULL;
}

static void from_pthreads(void)
{
    enum { T = 3 };
    pthread_t t[T];
    for (int k = 0; k < T; k++)
        assert_int_equal(pthread_create(&t[k], NULL, pthread_lookups, NULL), 0);
    assert_null(pthread_lookups(NULL));
    for (int k = 0; k < T; k++) {
        void *r = (void *)1;
        pthread_join(t[k], &r);
        assert_null(r);
    }
    assert_hub_idle();
}
BOTH(from_pthreads)

/* A forked child resolves with a fresh resolver (its own pool; its own c-ares channel,
 * the parent's dropped without disturbing the parent's). (Skipped where a forked
 * child cannot start threads.) */
static int child_lookups(void) { return pthread_lookups(NULL) != NULL; }

static void after_fork(void)
{
    if (!threads_after_fork())
        skip();
    struct lookup l = {.host = "localhost", .deadline = -1};
    do_lookup(&l); /* the parent's resolver is set up */
    assert_int_equal(l.rc, 0);
    green_freeaddrinfo(l.res);
    assert_int_equal(in_child(child_lookups), 0);
    assert_null(pthread_lookups(NULL));
    assert_hub_idle();
}
BOTH(after_fork)

/* The pool resolver's deadline and kill: with every pool thread held, the lookup is
 * queued; its caller leaves at once, and the lookup, when it runs, frees its answer. */
static void test_pool_deadline_and_kill_while_queued(void **state)
{
    (void)state;
    use_resolver("pool");
    struct gate g;
    gate_close(&g);
    int64_t t0 = green_now(); /* before the deadline is computed from the clock */
    struct lookup l = {.host = "localhost", .deadline = green_after(20), .rc = 7};
    do_lookup(&l);
    assert_int_equal(l.rc, EAI_SYSTEM);
    assert_int_equal(l.err, ETIMEDOUT);
    assert_true(green_now() - t0 >= 20 && green_now() - t0 < LATE_MS);
    struct lookup k = {.host = "localhost", .deadline = -1, .rc = 7};
    green_t gk = green_spawn(do_lookup, &k);
    assert_int_equal(green_sleep(10), 0);
    assert_int_equal(green_kill(gk), 0);
    assert_int_equal(green_join(gk, NULL, -1), 0);
    assert_int_equal(k.rc, EAI_SYSTEM);
    assert_int_equal(k.err, ECANCELED);
    assert_null(k.res);
    gate_open(&g);
    assert_hub_idle();
}

/* ======================================================================== */
/*  c-ares against a DNS server of our own                                  */
/* ======================================================================== */

#if GREEN_HAVE_CARES

/* A DNS server on a loopback UDP port, in a pthread. "h<N>.test" has the IPv4 address
 * 10.0.N/256.N%256 and no IPv6 address; every other name does not exist. It answers at
 * once, holds its answers until told, or never answers. */
enum { DNS_ANSWER, DNS_HOLD, DNS_SILENT };

struct held {
    unsigned char msg[512];
    size_t len;
    struct sockaddr_in from;
};

struct dns_server {
    int fd, port;
    int mode;      /* atomic */
    int stop;      /* atomic */
    int received;  /* atomic: queries received */
    pthread_t thread;
    struct held held[128];
    int nheld;
};

/* The answer to query q (len bytes) in out; its length, or 0 for a malformed query. */
static size_t dns_answer(const unsigned char *q, size_t len, unsigned char *out)
{
    if (len < 17 || len > 400)
        return 0;
    /* the question: labels, then type and class */
    size_t p = 12;
    char name[256];
    size_t nl = 0;
    while (p < len && q[p]) {
        size_t l = q[p++];
        if (p + l > len || nl + l + 1 >= sizeof name)
            return 0;
        if (nl)
            name[nl++] = '.';
        memcpy(name + nl, q + p, l);
        nl += l;
        p += l;
    }
    name[nl] = 0;
    if (p + 5 > len)
        return 0;
    unsigned type = (unsigned)q[p + 1] << 8 | q[p + 2];
    size_t qend = p + 5;
    unsigned n = 0;
    char tail[8];
    int known = sscanf(name, "h%u.%7s", &n, tail) == 2 && strcmp(tail, "test") == 0;
    memcpy(out, q, qend);
    out[2] = 0x81;                       /* QR, RD */
    out[3] = known ? 0x80 : 0x83;        /* RA; NOERROR or NXDOMAIN */
    out[4] = 0, out[5] = 1;              /* one question */
    out[6] = 0, out[7] = 0;              /* answers: below */
    out[8] = out[9] = out[10] = out[11] = 0;
    if (!known || type != 1)
        return qend;                     /* NXDOMAIN, or no IPv6 address (NODATA) */
    out[7] = 1;
    const unsigned char rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4,
                                10, 0, (unsigned char)(n >> 8), (unsigned char)n};
    memcpy(out + qend, rr, sizeof rr);
    return qend + sizeof rr;
}

static void dns_reply(struct dns_server *s, const struct held *h)
{
    unsigned char out[512];
    size_t n = dns_answer(h->msg, h->len, out);
    if (n)
        sendto(s->fd, out, n, 0, (const struct sockaddr *)&h->from, sizeof h->from);
}

static void *dns_serve(void *arg)
{
    struct dns_server *s = arg;
    while (!__atomic_load_n(&s->stop, __ATOMIC_SEQ_CST)) {
        int mode = __atomic_load_n(&s->mode, __ATOMIC_SEQ_CST);
        if (mode == DNS_ANSWER) {
            for (int i = 0; i < s->nheld; i++)
                dns_reply(s, &s->held[i]);
            s->nheld = 0;
        }
        struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
        if (poll(&pfd, 1, 5) != 1)
            continue;
        struct held h;
        socklen_t fl = sizeof h.from;
        ssize_t r = recvfrom(s->fd, h.msg, sizeof h.msg, 0, (struct sockaddr *)&h.from, &fl);
        if (r <= 0)
            continue;
        h.len = (size_t)r;
        __atomic_add_fetch(&s->received, 1, __ATOMIC_SEQ_CST);
        if (mode == DNS_ANSWER)
            dns_reply(s, &h);
        else if (mode == DNS_HOLD && s->nheld < 128)
            s->held[s->nheld++] = h;
    }
    return NULL;
}

static void dns_start(struct dns_server *s, int mode)
{
    *s = (struct dns_server){.mode = mode};
    s->fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(s->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &al), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, dns_serve, s), 0);
}

static void dns_stop(struct dns_server *s)
{
    __atomic_store_n(&s->stop, 1, __ATOMIC_SEQ_CST);
    pthread_join(s->thread, NULL);
    close(s->fd);
}

/* Run fn(server) on a new OS thread, whose hub makes a channel that asks our server
 * (GREEN_ARES_SERVERS); what it returns: NULL, or what went wrong. The environment
 * (RES_OPTIONS: c-ares' timeout and tries) is set while it starts. */
struct ares_run {
    struct dns_server *s;
    const char *(*fn)(struct dns_server *);
    const char *failure;
};

static void *ares_thread(void *arg)
{
    struct ares_run *run = arg;
    run->failure = run->fn(run->s);
    return NULL;
}

static void run_with_server(int mode, const char *res_options, const char *(*fn)(struct dns_server *))
{
    use_resolver("ares");
    struct dns_server s;
    dns_start(&s, mode);
    char servers[64];
    snprintf(servers, sizeof servers, "127.0.0.1:%d", s.port);
    assert_int_equal(setenv("GREEN_ARES_SERVERS", servers, 1), 0);
    if (res_options)
        assert_int_equal(setenv("RES_OPTIONS", res_options, 1), 0);
    struct ares_run run = {.s = &s, .fn = fn};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, ares_thread, &run), 0);
    pthread_join(t, NULL);
    unsetenv("GREEN_ARES_SERVERS");
    unsetenv("RES_OPTIONS");
    dns_stop(&s);
    if (run.failure)
        fail_msg("%s", run.failure);
}

static int is_h(const struct addrinfo *ai, unsigned n)
{
    const struct sockaddr_in *in = (const void *)ai->ai_addr;
    return ai->ai_family == AF_INET && in->sin_addr.s_addr == htonl(0x0a000000u | n) &&
           ntohs(in->sin_port) == 80 && ai->ai_socktype == SOCK_STREAM;
}

/* Many lookups in flight on one channel at once, for different names. */
static const char *many_in_flight(struct dns_server *s)
{
    (void)s;
    enum { N = 60 };
    static char names[N][16];
    struct lookup l[N];
    green_t gs[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "h%d.test", i);
        l[i] = (struct lookup){.host = names[i], .family = i % 2 ? AF_INET : AF_UNSPEC,
                               .deadline = green_after(10 * LATE_MS), .rc = 7};
        if (!(gs[i] = green_spawn(do_lookup, &l[i])))
            return "spawn";
    }
    if (green_joinall(gs, N, -1) != 0)
        return "join";
    const char *bad = NULL;
    for (int i = 0; i < N; i++) {
        if (l[i].rc != 0 || !is_h(l[i].res, (unsigned)i) || l[i].res->ai_next)
            bad = "a wrong answer";
        green_freeaddrinfo(l[i].res);
    }
    /* and a name the server does not know */
    struct lookup u = {.host = "nothing.test", .deadline = green_after(10 * LATE_MS)};
    do_lookup(&u);
    if (u.rc != EAI_NONAME)
        bad = "unknown name: not EAI_NONAME";
    return bad;
}

static void test_ares_many_in_flight(void **state)
{
    (void)state;
    run_with_server(DNS_ANSWER, NULL, many_in_flight);
}

/* The green thread that waits on the channel's sockets for everyone (the first one in)
 * is killed; another takes over, and every other lookup gets its answer. */
static const char *leader_killed(struct dns_server *s)
{
    enum { N = 10 };
    static char names[N][16];
    struct lookup l[N];
    green_t gs[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "h%d.test", 100 + i);
        l[i] = (struct lookup){.host = names[i], .family = AF_INET, .deadline = green_after(LATE_MS), .rc = 7};
        if (!(gs[i] = green_spawn(do_lookup, &l[i])))
            return "spawn";
    }
    int64_t give_up = green_after(LATE_MS);
    while (__atomic_load_n(&s->received, __ATOMIC_SEQ_CST) < N && green_now() < give_up)
        green_sleep(1);
    if (__atomic_load_n(&s->received, __ATOMIC_SEQ_CST) < N)
        return "the server did not get every query";
    if (green_kill(gs[0]) != 0 || green_join(gs[0], NULL, -1) != 0)
        return "kill";
    if (l[0].rc != EAI_SYSTEM || l[0].err != ECANCELED)
        return "the killed lookup: not ECANCELED";
    int64_t released = green_now();
    __atomic_store_n(&s->mode, DNS_ANSWER, __ATOMIC_SEQ_CST);
    if (green_joinall(gs + 1, N - 1, -1) != 0)
        return "join";
    const char *bad = NULL;
    for (int i = 1; i < N; i++) {
        if (l[i].rc != 0 || !is_h(l[i].res, 100u + (unsigned)i))
            bad = "a lookup failed after its leader was killed";
        else if (l[i].returned_at - released > LATE_MS / 2)
            bad = "an answer waited for a timeout";
        green_freeaddrinfo(l[i].res);
    }
    return bad;
}

static void test_ares_leader_killed(void **state)
{
    (void)state;
    run_with_server(DNS_HOLD, NULL, leader_killed);
}

/* A server that never answers: each lookup ends at its own deadline (the leader's
 * included; the next takes over), and a kill ends one at once. */
static const char *deadlines(struct dns_server *s)
{
    (void)s;
    enum { N = 6 };
    static char names[N][16];
    struct lookup l[N];
    green_t gs[N];
    int64_t t0 = green_now();
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "h%d.test", i);
        l[i] = (struct lookup){.host = names[i], .deadline = t0 + 30 * (i + 1), .rc = 7};
        if (!(gs[i] = green_spawn(do_lookup, &l[i])))
            return "spawn";
    }
    struct lookup k = {.host = "h99.test", .deadline = -1, .rc = 7};
    green_t gk = green_spawn(do_lookup, &k);
    green_sleep(10);
    int64_t killed_at = green_now();
    if (green_kill(gk) != 0 || green_join(gk, NULL, -1) != 0)
        return "kill";
    if (k.rc != EAI_SYSTEM || k.err != ECANCELED || k.returned_at - killed_at > LATE_MS / 2)
        return "the killed lookup: not ECANCELED at once";
    if (green_joinall(gs, N, -1) != 0)
        return "join";
    for (int i = 0; i < N; i++) {
        if (l[i].rc != EAI_SYSTEM || l[i].err != ETIMEDOUT)
            return "not ETIMEDOUT";
        if (l[i].returned_at < l[i].deadline || l[i].returned_at > l[i].deadline + LATE_MS / 2)
            return "not at its deadline";
        if (i && l[i].returned_at < l[i - 1].returned_at)
            return "out of order";
    }
    return NULL;
}

static void test_ares_deadlines_and_kill(void **state)
{
    (void)state;
    run_with_server(DNS_SILENT, NULL, deadlines);
}

/* c-ares' own timeout (RES_OPTIONS: 300 ms, one try; c-ares 1.18 reads the old
 * retrans/retry names) comes before the caller's deadline:
 * the lookup fails as the system's would when no server answers (EAI_AGAIN). */
static const char *ares_times_out(struct dns_server *s)
{
    (void)s;
    struct lookup l = {.host = "h1.test", .deadline = green_after(8 * LATE_MS), .rc = 7};
    int64_t t0 = green_now();
    do_lookup(&l);
    if (l.rc != EAI_AGAIN)
        return "not EAI_AGAIN";
    if (l.returned_at - t0 < 300 || l.returned_at - t0 > 300 + LATE_MS)
        return "not at c-ares' timeout";
    return NULL;
}

static void test_ares_own_timeout(void **state)
{
    (void)state;
    run_with_server(DNS_SILENT, "retrans:300 retry:1", ares_times_out);
}

/* The socket helpers keep the resolver's cause: a name the server says does not exist
 * is ENOENT (EAI_NONAME), no answer at all is EAGAIN (EAI_AGAIN). */
static const char *helper_fails(const char *host, int err, int eai)
{
    errno = 0;
    if (green_tcp_connect(host, "80", green_after(8 * LATE_MS)) != -1)
        return "connected";
    if (errno != err)
        return strerror(errno);
    return green_last_resolve_error() == eai ? NULL : gai_strerror(green_last_resolve_error());
}

static const char *helpers_no_such_name(struct dns_server *s)
{
    (void)s;
    return helper_fails("nothere.test", ENOENT, EAI_NONAME);
}

static const char *helpers_no_answer(struct dns_server *s)
{
    (void)s;
    return helper_fails("h1.test", EAGAIN, EAI_AGAIN);
}

static void test_ares_helpers_keep_the_cause(void **state)
{
    (void)state;
    run_with_server(DNS_ANSWER, NULL, helpers_no_such_name);
    run_with_server(DNS_SILENT, "retrans:300 retry:1", helpers_no_answer);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH_TESTS(localhost),
        BOTH_TESTS(etc_hosts),
        BOTH_TESTS(numeric),
        BOTH_TESTS(bad_hints),
        BOTH_TESTS(over_before_start),
        BOTH_TESTS(unknown_domain_short_deadline),
        BOTH_TESTS(concurrent),
        BOTH_TESTS(from_pthreads),
        BOTH_TESTS(after_fork),
        cmocka_unit_test(test_pool_deadline_and_kill_while_queued),
#if GREEN_HAVE_CARES
        cmocka_unit_test(test_ares_many_in_flight),
        cmocka_unit_test(test_ares_leader_killed),
        cmocka_unit_test(test_ares_deadlines_and_kill),
        cmocka_unit_test(test_ares_own_timeout),
        cmocka_unit_test(test_ares_helpers_keep_the_cause),
#endif
    };
    return cmocka_run_group_tests_name("resolve", tests, NULL, NULL);
}
