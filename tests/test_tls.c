/*
 * test_tls.c — secure sockets (src/tls.c): round trips in both stack modes, the server
 * option of green_serve, ALPN, SNI, resumption, verification failures with readable
 * reasons, deadlines, kills and scoped timeouts mid-handshake, resets, truncation versus
 * close_notify, garbage instead of a ClientHello, bad arguments; interoperation with
 * `openssl s_server`, `openssl s_client` (skipped without the tool) and libcurl.
 * Certificates are made by the test (tls_certs.h). Built without OpenSSL, it checks
 * that every call fails with ENOTSUP.
 */
#include "green_test.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#if GREEN_TEST_TLS
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include "tls_certs.h"
#if GREEN_TEST_CURL
#include <curl/curl.h>
#endif

extern char **environ;

static struct tls_files files;

static green_tls_config_t server_cfg(void)
{
    return (green_tls_config_t){.cert_file = files.srv, .key_file = files.srv_key};
}

static green_tls_config_t client_cfg(void)
{
    return (green_tls_config_t){.ca_file = files.ca};
}

static int listen_any(int *port)
{
    int fd = green_tcp_listen("127.0.0.1", "0", 64);
    assert_true(fd >= 0);
    *port = green_socket_port(fd);
    assert_true(*port > 0);
    return fd;
}

static int dial(int port)
{
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    int fd = green_tcp_connect("127.0.0.1", p, green_after(5000));
    assert_true(fd >= 0);
    return fd;
}

/* ---- an echo server: one connection at a time, until killed ---- */
struct echo {
    int lfd;
    green_tls_config_t cfg;
    int accepted, failed, last_err;
    char err[256];
    char alpn[64];
    int resumed;
    int bulk;               /* instead of echoing: write `bulk` bytes, then close_notify */
};

static void *echo_main(void *arg)
{
    struct echo *e = arg;
    while (1) {
        int fd = green_accept(e->lfd, NULL, NULL, -1);
        if (fd < 0)
            return NULL;
        green_tls_t *t = green_tls_accept(fd, &e->cfg, green_after(5000));
        if (!t) {
            e->failed++;
            e->last_err = errno;
            snprintf(e->err, sizeof e->err, "%s", green_tls_error());
            green_close(fd);
            continue;
        }
        e->accepted++;
        snprintf(e->alpn, sizeof e->alpn, "%s", green_tls_alpn(t));
        e->resumed = green_tls_resumed(t);
        if (e->bulk) {
            char *buf = malloc((size_t)e->bulk);
            assert_non_null(buf);
            for (int i = 0; i < e->bulk; i++)
                buf[i] = (char)(i * 7);
            assert_int_equal(green_tls_write(t, buf, (size_t)e->bulk, green_after(10000)), e->bulk);
            free(buf);
        } else {
            char buf[8192];
            ssize_t n;
            while ((n = green_tls_read(t, buf, sizeof buf, green_after(5000))) > 0)
                if (green_tls_write(t, buf, (size_t)n, green_after(5000)) != n)
                    break;
        }
        green_tls_close(t, green_after(1000));
        green_close(fd);
    }
}

static struct echo *echo_start(green_t *g, int *port, const green_attr_t *attr)
{
    struct echo *e = calloc(1, sizeof *e);
    assert_non_null(e);
    e->lfd = listen_any(port);
    e->cfg = server_cfg();
    *g = green_spawn_attr(echo_main, e, attr);
    assert_non_null(*g);
    return e;
}

static void echo_stop(green_t g, struct echo *e)
{
    green_kill(g);
    assert_int_equal(green_join(g, NULL, -1), 0);
    green_close(e->lfd);
    free(e);
}

/* Connect, send `size` bytes in chunks and read each echo back; 0, or -1 + errno. */
static int roundtrip(int port, const char *name, const green_tls_config_t *cfg, size_t size,
                     int *resumed, char *alpn, size_t alpn_len)
{
    int fd = dial(port);
    green_tls_t *t = green_tls_connect(fd, name, cfg, green_after(5000));
    if (!t) {
        int err = errno;
        green_close(fd);
        errno = err;
        return -1;
    }
    if (resumed)
        *resumed = green_tls_resumed(t);
    if (alpn)
        snprintf(alpn, alpn_len, "%s", green_tls_alpn(t));
    char *out = malloc(size + 1), *in = malloc(16384);
    assert_non_null(out);
    assert_non_null(in);
    for (size_t i = 0; i < size; i++)
        out[i] = (char)(i * 13 + 1);
    size_t done = 0;
    while (done < size) {
        size_t chunk = size - done < 16384 ? size - done : 16384;
        assert_int_equal(green_tls_write(t, out + done, chunk, green_after(5000)), (ssize_t)chunk);
        size_t got = 0;
        while (got < chunk) {
            ssize_t n = green_tls_read(t, in + got, chunk - got, green_after(5000));
            assert_true(n > 0);
            got += (size_t)n;
        }
        assert_memory_equal(in, out + done, chunk);
        done += chunk;
    }
    free(out);
    free(in);
    assert_int_equal(green_tls_close(t, green_after(1000)), 0);
    green_close(fd);
    return 0;
}

/* ---- round trips ---- */

struct rt_client {
    int port;
    int ok;
    long bulk_got;
    int bulk_end;
};

static void *rt_client_main(void *arg)
{
    struct rt_client *c = arg;
    green_tls_config_t cfg = client_cfg();
    size_t sizes[] = {1, 16384, 100000};
    for (size_t i = 0; i < 3; i++)
        if (roundtrip(c->port, "localhost", &cfg, sizes[i], NULL, NULL, 0) != 0)
            return NULL;
    c->ok = 1;
    return NULL;
}

static void *bulk_client_main(void *arg)
{
    struct rt_client *c = arg;
    green_tls_config_t cfg = client_cfg();
    int fd = dial(c->port);
    green_tls_t *t = green_tls_connect(fd, "127.0.0.1", &cfg, green_after(5000)); /* by IP */
    assert_non_null(t);
    char buf[16384];
    ssize_t n;
    while ((n = green_tls_read(t, buf, sizeof buf, green_after(10000))) > 0) {
        for (ssize_t i = 0; i < n; i++)
            assert_int_equal(buf[i], (char)((c->bulk_got + i) * 7));
        c->bulk_got += n;
    }
    c->bulk_end = n == 0 ? 0 : errno;
    green_tls_close(t, green_after(1000));
    green_close(fd);
    return NULL;
}

static void roundtrips(int mode)
{
    green_attr_t attr = {.stack_mode = mode};
    green_t sg;
    int port;
    struct echo *e = echo_start(&sg, &port, &attr);
    struct rt_client *c = calloc(1, sizeof *c);
    c->port = port;
    green_t cg = green_spawn_attr(rt_client_main, c, &attr);
    assert_int_equal(green_join(cg, NULL, -1), 0);
    assert_int_equal(c->ok, 1);
    assert_int_equal(e->accepted, 3);
    /* one 4 MiB green_tls_write, read to the close_notify */
    e->bulk = 4 << 20;
    cg = green_spawn_attr(bulk_client_main, c, &attr);
    assert_int_equal(green_join(cg, NULL, -1), 0);
    assert_int_equal(c->bulk_got, 4 << 20);
    assert_int_equal(c->bulk_end, 0);
    free(c);
    echo_stop(sg, e);
    assert_hub_idle();
}

static void test_roundtrip_dedicated(void **state)
{
    (void)state;
    roundtrips(GREEN_STACK_DEDICATED);
}

static void test_roundtrip_shared(void **state)
{
    (void)state;
    roundtrips(GREEN_STACK_SHARED);
}

/* ---- ALPN, SNI, resumption ---- */

static void test_alpn(void **state)
{
    (void)state;
    green_t sg;
    int port;
    struct echo *e = echo_start(&sg, &port, NULL);
    e->cfg.alpn = "h2,http/1.1";
    green_tls_config_t c = client_cfg();
    c.alpn = "foo,http/1.1";
    char alpn[64];
    assert_int_equal(roundtrip(port, "localhost", &c, 10, NULL, alpn, sizeof alpn), 0);
    assert_string_equal(alpn, "http/1.1");
    assert_string_equal(e->alpn, "http/1.1");
    c.alpn = "foo";   /* nothing in common: no ALPN */
    assert_int_equal(roundtrip(port, "localhost", &c, 10, NULL, alpn, sizeof alpn), 0);
    assert_string_equal(alpn, "");
    assert_string_equal(e->alpn, "");
    c.alpn = "h2,";   /* an empty name */
    assert_fails_with(roundtrip(port, "localhost", &c, 10, NULL, NULL, 0), EINVAL);
    assert_non_null(strstr(green_tls_error(), "ALPN"));
    echo_stop(sg, e);
    assert_hub_idle();
}

static void test_sni(void **state)
{
    (void)state;
    green_t sg;
    int port;
    struct echo *e = echo_start(&sg, &port, NULL);
    static green_tls_cert_t other;
    other = (green_tls_cert_t){"*.example", files.other, files.other_key};
    e->cfg.certs = &other;
    e->cfg.ncerts = 1;
    green_tls_config_t c = client_cfg();
    assert_int_equal(roundtrip(port, "other.example", &c, 10, NULL, NULL, 0), 0);
    assert_int_equal(roundtrip(port, "localhost", &c, 10, NULL, NULL, 0), 0);
    echo_stop(sg, e);
}

static void test_resumption(void **state)
{
    (void)state;
    int min[] = {GREEN_TLS_1_3, GREEN_TLS_1_2};
    for (int v = 0; v < 2; v++) {
        green_t sg;
        int port, resumed = -1;
        struct echo *e = echo_start(&sg, &port, NULL);
        green_tls_config_t c = client_cfg();
        c.min_version = min[v];
        if (v == 1) { /* TLS 1.2 only: the server says so */
            e->cfg.max_version = GREEN_TLS_1_2;
            e->cfg.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256";
        }
        assert_int_equal(roundtrip(port, "localhost", &c, 100, &resumed, NULL, 0), 0);
        assert_int_equal(resumed, 0);
        assert_int_equal(e->resumed, 0);
        assert_int_equal(roundtrip(port, "localhost", &c, 100, &resumed, NULL, 0), 0);
        assert_int_equal(resumed, 1);
        assert_int_equal(e->resumed, 1);
        c.no_resumption = 1;
        assert_int_equal(roundtrip(port, "localhost", &c, 100, &resumed, NULL, 0), 0);
        assert_int_equal(resumed, 0);
        echo_stop(sg, e);
    }
    assert_hub_idle();
}

/* ---- verification ---- */

struct verr {
    int port;
    const char *name;
    int err;
    char msg[256];
};

static void *verify_client(void *arg)
{
    struct verr *v = arg;
    green_tls_config_t c = client_cfg();
    int fd = dial(v->port);
    green_tls_t *t = green_tls_connect(fd, v->name, &c, green_after(5000));
    v->err = t ? 0 : errno;
    green_yield(); /* another green thread's failure comes in between: ours stays ours */
    green_yield();
    snprintf(v->msg, sizeof v->msg, "%s", green_tls_error());
    if (t)
        green_tls_close(t, green_after(1000));
    green_close(fd);
    return NULL;
}

static void test_verify_errors(void **state)
{
    (void)state;
    struct {
        const char *cert, *key, *name, *reason;
    } cases[] = {
        {files.expired, files.expired_key, "localhost", "expired"},
        {files.self, files.self_key, "localhost", "self-signed"},
        {files.other, files.other_key, "localhost", "hostname mismatch"},
        {files.srv, files.srv_key, "127.0.0.2", "IP address mismatch"},
    };
    enum { N = sizeof cases / sizeof cases[0] };
    green_t sg[N], cg[N];
    struct echo *e[N];
    struct verr *v[N];
    for (int i = 0; i < N; i++) {
        int port;
        e[i] = echo_start(&sg[i], &port, NULL);
        e[i]->cfg.cert_file = cases[i].cert;
        e[i]->cfg.key_file = cases[i].key;
        v[i] = calloc(1, sizeof *v[i]);
        v[i]->port = port;
        v[i]->name = cases[i].name;
    }
    for (int i = 0; i < N; i++) /* all at once: each reads its own reason */
        cg[i] = green_spawn(verify_client, v[i]);
    assert_int_equal(green_joinall(cg, N, -1), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(v[i]->err, EPROTO);
        if (!strstr(v[i]->msg, cases[i].reason) || !strstr(v[i]->msg, "verify"))
            fail_msg("case %d: \"%s\" lacks \"%s\"", i, v[i]->msg, cases[i].reason);
        free(v[i]);
        echo_stop(sg[i], e[i]);
    }
    /* the system's store does not know our CA */
    green_t g;
    int port;
    struct echo *s = echo_start(&g, &port, NULL);
    int fd = dial(port);
    assert_null_with(green_tls_connect(fd, "localhost", NULL, green_after(5000)), EPROTO);
    assert_non_null(strstr(green_tls_error(), "local issuer"));
    green_close(fd);
    /* verification off accepts the self-signed one */
    green_tls_config_t none = {.verify = GREEN_TLS_VERIFY_NONE};
    s->cfg.cert_file = files.self;
    s->cfg.key_file = files.self_key;
    assert_int_equal(roundtrip(port, NULL, &none, 10, NULL, NULL, 0), 0);
    /* client certificates: required by the server, missing, then given */
    s->cfg = server_cfg();
    s->cfg.verify = GREEN_TLS_VERIFY_PEER;
    s->cfg.ca_file = files.ca;
    green_tls_config_t c = client_cfg();
    c.min_version = GREEN_TLS_1_2;
    int failed = s->failed;
    /* TLS 1.3: the client's handshake ends before the server checks; the first read fails */
    fd = dial(port);
    green_tls_t *t = green_tls_connect(fd, "localhost", &c, green_after(5000));
    if (t) {
        char b[8];
        assert_int_equal(green_tls_write(t, "x", 1, green_after(5000)), 1);
        assert_int_equal(green_tls_read(t, b, sizeof b, green_after(5000)), -1);
        green_tls_close(t, 0);
    }
    green_close(fd);
    while (s->failed == failed)
        green_sleep(1);
    c.cert_file = files.other;
    c.key_file = files.other_key;
    assert_int_equal(roundtrip(port, "localhost", &c, 10, NULL, NULL, 0), 0);
    echo_stop(g, s);
    assert_hub_idle();
}

/* ---- deadlines, kills, scopes ---- */

static void test_stall_timeout(void **state)
{
    (void)state;
    int port;
    int lfd = listen_any(&port); /* never accepts: the kernel completes the TCP handshake */
    green_tls_config_t c = client_cfg();
    int fd = dial(port);
    int64_t t0 = green_now();
    assert_null_with(green_tls_connect(fd, "localhost", &c, green_after(200)), ETIMEDOUT);
    assert_true(green_now() - t0 >= 200);
    assert_non_null(strstr(green_tls_error(), "timed out"));
    green_close(fd);
    /* a scope instead of a deadline */
    fd = dial(port);
    t0 = green_now();
    assert_int_equal(green_timeout_push(150), 0);
    assert_null_with(green_tls_connect(fd, "localhost", &c, -1), ETIMEDOUT);
    assert_int_equal(green_timeout_pop(), 0);
    assert_true(green_now() - t0 >= 150);
    green_close(fd);
    /* the server's side: a client that says nothing (a fresh listener: the one above
     * holds the clients closed above, whose handshakes end at once with ECONNABORTED) */
    green_close(lfd);
    lfd = listen_any(&port);
    int cfd = dial(port);
    int afd = green_accept(lfd, NULL, NULL, green_after(5000));
    assert_true(afd >= 0);
    green_tls_config_t s = server_cfg();
    assert_null_with(green_tls_accept(afd, &s, green_after(100)), ETIMEDOUT);
    green_close(afd);
    green_close(cfd);
    green_close(lfd);
    assert_hub_idle();
}

struct killed {
    int port;
    int err;
    int64_t deadline;
};

static void *connect_stalled(void *arg)
{
    struct killed *k = arg;
    green_tls_config_t c = client_cfg();
    int fd = dial(k->port);
    green_tls_t *t = green_tls_connect(fd, "localhost", &c, k->deadline);
    k->err = t ? 0 : errno;
    green_close(fd);
    return NULL;
}

static void test_kill_mid_handshake(void **state)
{
    (void)state;
    int port;
    int lfd = listen_any(&port);
    struct killed *k = calloc(1, sizeof *k);
    k->port = port;
    k->deadline = -1;
    for (int mode = 0; mode < 2; mode++) {
        green_attr_t attr = {.stack_mode = mode};
        k->err = 0;
        green_t g = green_spawn_attr(connect_stalled, k, &attr);
        green_sleep(50);
        assert_int_equal(green_kill(g), 0);
        assert_int_equal(green_join(g, NULL, -1), 0);
        assert_int_equal(k->err, ECANCELED);
    }
    free(k);
    green_close(lfd);
    assert_hub_idle();
}

/* ---- reset mid-record, truncation, close_notify ---- */

enum { END_CLOSE_NOTIFY, END_TRUNCATE, END_RESET };

struct ender {
    int lfd;
    int how;
};

static void *ender_main(void *arg)
{
    struct ender *en = arg;
    int fd = green_accept(en->lfd, NULL, NULL, green_after(5000));
    assert_true(fd >= 0);
    green_tls_config_t cfg = server_cfg();
    green_tls_t *t = green_tls_accept(fd, &cfg, green_after(5000));
    assert_non_null(t);
    assert_int_equal(green_tls_write(t, "hello", 5, green_after(5000)), 5);
    SSL *ssl = green_tls_ssl(t);
    if (en->how == END_RESET) {
        /* a record's first half on the wire, then a reset */
        BIO *mem = BIO_new(BIO_s_mem()); /* the fd's BIO stays the session's rbio */
        SSL_set0_wbio(ssl, mem);
        char big[1000] = {0};
        assert_int_equal(SSL_write(ssl, big, sizeof big), (int)sizeof big);
        char *p;
        long len = BIO_get_mem_data(mem, &p);
        assert_true(len > 100);
        assert_int_equal(green_write(fd, p, (size_t)len / 2, green_after(5000)), len / 2);
        struct linger l = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        green_sleep(50); /* the half record reaches the client first */
    } else if (en->how == END_TRUNCATE) {
        SSL_set_quiet_shutdown(ssl, 1); /* no close_notify */
    }
    green_tls_close(t, green_after(1000));
    green_close(fd);
    return NULL;
}

static void test_endings(void **state)
{
    (void)state;
    int expect[] = {0, ECONNABORTED, ECONNRESET};
    for (int how = 0; how < 3; how++) {
        int port;
        struct ender *en = calloc(1, sizeof *en);
        en->lfd = listen_any(&port);
        en->how = how;
        green_t g = green_spawn(ender_main, en);
        green_tls_config_t c = client_cfg();
        int fd = dial(port);
        green_tls_t *t = green_tls_connect(fd, "localhost", &c, green_after(5000));
        assert_non_null(t);
        char buf[64];
        assert_int_equal(green_tls_read(t, buf, sizeof buf, green_after(5000)), 5);
        assert_memory_equal(buf, "hello", 5);
        errno = 0;
        ssize_t n = green_tls_read(t, buf, sizeof buf, green_after(5000));
        if (how == END_CLOSE_NOTIFY) {
            assert_int_equal(n, 0);
            assert_int_equal(green_tls_read(t, buf, sizeof buf, green_after(5000)), 0);
        } else {
            assert_int_equal(n, -1);
            if (errno != expect[how])
                fail_msg("ending %d: errno %d (%s), \"%s\"", how, errno, strerror(errno), green_tls_error());
            if (how == END_TRUNCATE)
                assert_non_null(strstr(green_tls_error(), "close_notify"));
            /* the session stays failed */
            assert_fails_with(green_tls_read(t, buf, sizeof buf, 0), expect[how]);
            assert_fails_with(green_tls_write(t, "x", 1, 0), expect[how]);
        }
        green_tls_close(t, green_after(1000));
        green_close(fd);
        assert_int_equal(green_join(g, NULL, -1), 0);
        green_close(en->lfd);
        free(en);
    }
    assert_hub_idle();
}

/* ---- green_serve with TLS ---- */

static void serve_echo(green_tls_t *t, int fd, void *arg)
{
    (void)fd, (void)arg;
    char buf[4096];
    ssize_t n;
    while ((n = green_tls_read(t, buf, sizeof buf, green_after(5000))) > 0)
        if (green_tls_write(t, buf, (size_t)n, green_after(5000)) != n)
            break;
}

static void test_serve(void **state)
{
    (void)state;
    int port;
    int lfd = listen_any(&port);
    static green_tls_config_t scfg;
    scfg = server_cfg();
    green_serve_opts_t o = {.tls = &scfg, .tls_handler = serve_echo, .tls_handshake_ms = 300};
    green_server_t *srv = green_serve(lfd, NULL, NULL, &o);
    assert_non_null(srv);
    green_tls_config_t c = client_cfg();
    assert_int_equal(roundtrip(port, "localhost", &c, 50000, NULL, NULL, 0), 0);
    /* garbage instead of a ClientHello: that connection ends, the server goes on */
    int fd = dial(port);
    const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(green_write(fd, junk, sizeof junk - 1, green_after(5000)), (ssize_t)sizeof junk - 1);
    char buf[512];
    ssize_t n;
    while ((n = green_read(fd, buf, sizeof buf, green_after(5000))) > 0) {
    }
    assert_true(n == 0 || errno == ECONNRESET);
    green_close(fd);
    /* a client that stalls in the handshake is dropped at tls_handshake_ms */
    fd = dial(port);
    int64_t t0 = green_now();
    assert_int_equal(green_read(fd, buf, sizeof buf, green_after(5000)), 0);
    assert_true(green_now() - t0 >= 250);
    green_close(fd);
    assert_int_equal(roundtrip(port, "localhost", &c, 1000, NULL, NULL, 0), 0);
    assert_int_equal(green_server_stop(srv, green_after(1000)), 0);
    /* on two hubs */
    o.threads = 2;
    srv = green_serve(lfd, NULL, NULL, &o);
    assert_non_null(srv);
    for (int i = 0; i < 8; i++)
        assert_int_equal(roundtrip(port, "localhost", &c, 1000, NULL, NULL, 0), 0);
    assert_int_equal(green_server_stop(srv, green_after(1000)), 0);
    /* a stop kills handshakes in progress: a stalled client does not hold it */
    o.threads = 0;
    o.tls_handshake_ms = 0; /* 10 s */
    srv = green_serve(lfd, NULL, NULL, &o);
    assert_non_null(srv);
    fd = dial(port);
    green_sleep(50); /* its handshake has begun */
    t0 = green_now();
    assert_int_equal(green_server_stop(srv, green_after(100)), 0);
    assert_true(green_now() - t0 < 5000);
    assert_int_equal(green_read(fd, buf, sizeof buf, green_after(5000)), 0); /* closed */
    green_close(fd);
    /* bad configurations are refused up front */
    o.threads = 0;
    green_tls_config_t bad = {.cert_file = "/nonexistent.pem"};
    o.tls = &bad;
    assert_null_with(green_serve(lfd, NULL, NULL, &o), ENOENT);
    bad.cert_file = files.srv;
    bad.key_file = files.other_key;
    assert_null_with(green_serve(lfd, NULL, NULL, &o), EINVAL);
    if (!strstr(green_tls_error(), "key"))
        fail_msg("%s", green_tls_error());
    o.tls = &scfg;
    o.tls_handler = NULL;
    assert_null_with(green_serve(lfd, NULL, NULL, &o), EINVAL);
    green_close(lfd);
    assert_hub_idle();
}

/* ---- bad arguments ---- */

static void test_bad_input(void **state)
{
    (void)state;
    green_tls_config_t c = client_cfg(), s = server_cfg();
    char b[4];
    assert_null_with(green_tls_connect(-1, "localhost", &c, 0), EBADF);
    assert_null_with(green_tls_accept(-1, &s, 0), EBADF);
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_null_with(green_tls_connect(p[0], "localhost", &c, 0), ENOTSOCK);
    close(p[0]);
    close(p[1]);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
    assert_null_with(green_tls_connect(sv[0], "localhost", &c, 0), EINVAL);
    close(sv[0]);
    close(sv[1]);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_null_with(green_tls_accept(sv[0], NULL, 0), EINVAL);
    assert_null_with(green_tls_connect(sv[0], NULL, &c, 0), EINVAL);
    assert_null_with(green_tls_connect(sv[0], "", &c, 0), EINVAL);
    green_tls_config_t bad = c;
    bad.min_version = 0x0301;
    assert_null_with(green_tls_connect(sv[0], "localhost", &bad, 0), EINVAL);
    bad = c;
    bad.ca_file = "/nonexistent";
    assert_null_with(green_tls_connect(sv[0], "localhost", &bad, 0), ENOENT);
    assert_non_null(strstr(green_tls_error(), "/nonexistent"));
    bad = s;
    bad.cert_file = files.ca_key; /* not a certificate */
    assert_null_with(green_tls_accept(sv[0], &bad, 0), EINVAL);
    /* deadline 0 over a silent peer: only polls */
    assert_null_with(green_tls_connect(sv[0], "localhost", &c, 0), ETIMEDOUT);
    green_close(sv[0]); /* waited on: the hub must forget it */
    close(sv[1]);
    assert_fails_with(green_tls_read(NULL, b, 1, 0), EINVAL);
    assert_fails_with(green_tls_write(NULL, b, 1, 0), EINVAL);
    assert_fails_with(green_tls_close(NULL, 0), EINVAL);
    assert_null_with(green_tls_alpn(NULL), EINVAL);
    assert_null_with(green_tls_ssl(NULL), EINVAL);
    assert_fails_with(green_tls_resumed(NULL), EINVAL);
    assert_hub_idle();
}

/* ---- a server that is not one: garbage, a cut handshake ---- */

struct liar {
    int lfd;
    int how; /* 0: plain HTTP; 1: random bytes; 2: a TLS record header, then close */
};

static void *liar_main(void *arg)
{
    struct liar *l = arg;
    int fd = green_accept(l->lfd, NULL, NULL, green_after(5000));
    assert_true(fd >= 0);
    char hello[16384];
    assert_true(green_read(fd, hello, sizeof hello, green_after(5000)) > 0); /* the ClientHello */
    if (l->how == 0) {
        const char r[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
        green_write(fd, r, sizeof r - 1, green_after(5000));
    } else if (l->how == 1) {
        unsigned char junk[300];
        for (size_t i = 0; i < sizeof junk; i++)
            junk[i] = (unsigned char)(i * 73 + 11);
        green_write(fd, junk, sizeof junk, green_after(5000));
    } else {
        const unsigned char head[] = {0x16, 0x03, 0x03, 0x00, 0x40, 0x02}; /* 64 bytes announced */
        green_write(fd, head, sizeof head, green_after(5000));
    }
    shutdown(fd, SHUT_WR); /* a FIN, not a reset */
    green_sleep(20);
    green_close(fd);
    return NULL;
}

static void *no_failure_yet(void *arg)
{
    (void)arg;
    return (void *)green_tls_error();
}

static void test_garbage_peer(void **state)
{
    (void)state;
    void *msg;
    green_t fresh = green_spawn(no_failure_yet, NULL);  /* a green thread that never failed */
    assert_int_equal(green_join(fresh, &msg, -1), 0);
    assert_string_equal((const char *)msg, "");
    int expect[] = {EPROTO, EPROTO, ECONNABORTED};
    for (int how = 0; how < 3; how++) {
        int port;
        struct liar *l = calloc(1, sizeof *l);
        l->lfd = listen_any(&port);
        l->how = how;
        green_t g = green_spawn(liar_main, l);
        int fd = dial(port);
        green_tls_config_t c = client_cfg();
        errno = 0;
        assert_null(green_tls_connect(fd, "localhost", &c, green_after(5000)));
        if (errno != expect[how])
            fail_msg("case %d: %s (%s)", how, strerror(errno), green_tls_error());
        assert_true(strlen(green_tls_error()) > 0);
        green_close(fd);
        assert_int_equal(green_join(g, NULL, -1), 0);
        green_close(l->lfd);
        free(l);
    }
    assert_hub_idle();
}

/* ---- a write cut short: the count so far, then the stream refuses writes ---- */

struct cut {
    int fd;
    green_tls_t *t;
    ssize_t wrote;
    int err;
};

static void *cut_acceptor(void *arg)
{
    struct cut *c = arg;
    green_tls_config_t s = server_cfg();
    c->t = green_tls_accept(c->fd, &s, green_after(5000));
    return NULL;
}

static void *cut_writer(void *arg)
{
    struct cut *c = arg;
    size_t n = 8 << 20;
    char *buf = calloc(1, n);
    errno = 0;
    c->wrote = green_tls_write(c->t, buf, n, -1); /* the peer never reads: it waits, is killed */
    c->err = errno;
    free(buf);
    return NULL;
}

static void test_write_cut(void **state)
{
    (void)state;
    int port;
    int lfd = listen_any(&port);
    struct cut *srv = calloc(1, sizeof *srv), *cli = calloc(1, sizeof *cli);
    cli->fd = dial(port);
    srv->fd = green_accept(lfd, NULL, NULL, green_after(5000));
    assert_true(srv->fd >= 0);
    green_t a = green_spawn(cut_acceptor, srv);
    green_tls_config_t c = client_cfg();
    cli->t = green_tls_connect(cli->fd, "localhost", &c, green_after(5000));
    assert_non_null(cli->t);
    assert_int_equal(green_join(a, NULL, -1), 0);
    assert_non_null(srv->t);
    green_t w = green_spawn(cut_writer, cli);
    green_sleep(200);
    assert_int_equal(green_kill(w), 0);
    assert_int_equal(green_join(w, NULL, -1), 0);
    assert_int_equal(cli->err, ECANCELED);
    assert_true(cli->wrote < (ssize_t)(8 << 20));
    assert_fails_with(green_tls_write(cli->t, "x", 1, 0), EPIPE);
    assert_non_null(strstr(green_tls_error(), "part way"));
    /* what was written arrives intact (zeros) */
    char buf[4096];
    ssize_t n = green_tls_read(srv->t, buf, sizeof buf, green_after(5000));
    assert_true(n > 0);
    for (ssize_t i = 0; i < n; i++)
        assert_int_equal(buf[i], 0);
    green_tls_close(cli->t, 0);
    green_tls_close(srv->t, 0);
    green_close(cli->fd);
    green_close(srv->fd);
    green_close(lfd);
    free(cli);
    free(srv);
    assert_hub_idle();
}

/* ---- stacks: a small dedicated one; shared-stack writers whose buffers are on it ---- */

static void *small_stack_client(void *arg)
{
    struct rt_client *c = arg;
    green_tls_config_t cfg = client_cfg();
    c->ok = roundtrip(c->port, "localhost", &cfg, 20000, NULL, NULL, 0) == 0;
    if (!c->ok)
        print_message("small stack: %s (%s)\n", strerror(errno), green_tls_error());
    return NULL;
}

static void test_small_stacks(void **state)
{
    (void)state;
    /* the handshake's depth (OpenSSL's frames) fits a 64 KiB dedicated stack */
    green_attr_t small = {.stack_size = 64 << 10};
    green_t sg;
    int port;
    struct echo *e = echo_start(&sg, &port, &small);
    struct rt_client *c = calloc(1, sizeof *c);
    c->port = port;
    green_t g = green_spawn_attr(small_stack_client, c, &small);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(c->ok, 1);
    green_stats_t st = stats();
    printf("deepest stack so far: %llu bytes\n", (unsigned long long)st.stack_hwm_max);
    free(c);
    echo_stop(sg, e);
    assert_hub_idle();
}

/* Shared-stack green threads write 48 KiB from buffers on their (shared) stacks to
 * readers that drain slowly: their writes wait mid-record (WANT_WRITE) while the others
 * take the stack. Nothing OpenSSL keeps may point into it: every byte must arrive. */
enum { STACK_WRITERS = 4, STACK_BUF = 48 << 10 };

struct pair {
    int port;
    int idx;
    int ok;
};

static void *stack_writer(void *arg)
{
    struct pair *p = arg;
    char buf[STACK_BUF];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (char)(i * 31 + p->idx);
    int fd = dial(p->port);
    green_tls_config_t c = client_cfg();
    green_tls_t *t = green_tls_connect(fd, "localhost", &c, green_after(5000));
    assert_non_null(t);
    for (int round = 0; round < 4; round++)
        assert_int_equal(green_tls_write(t, buf, sizeof buf, green_after(10000)), (ssize_t)sizeof buf);
    /* the reader closes first, once it has everything (closing with the server's
     * tickets unread would reset the connection, discarding what it has not read) */
    char b[64];
    assert_int_equal(green_tls_read(t, b, sizeof b, green_after(10000)), 0);
    assert_int_equal(green_tls_close(t, green_after(5000)), 0);
    green_close(fd);
    return NULL;
}

static void *slow_reader(void *arg)
{
    struct pair *p = arg;
    int lfd = p->port; /* the listener, here */
    int fd = green_accept(lfd, NULL, NULL, green_after(5000));
    assert_true(fd >= 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    green_tls_config_t s = server_cfg();
    green_tls_t *t = green_tls_accept(fd, &s, green_after(5000));
    assert_non_null(t);
    char *buf = malloc(1000);
    long got = 0;
    ssize_t n = 0;
    int idx = -1;
    while (got < 4L * STACK_BUF && (n = green_tls_read(t, buf, 1000, green_after(10000))) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            long at = (got + i) % STACK_BUF;
            if (idx < 0)
                idx = (unsigned char)buf[i] - (int)((at * 31) & 0xff); /* the writer's */
            assert_int_equal((unsigned char)buf[i], (unsigned char)(at * 31 + idx));
        }
        got += n;
        green_sleep(1);
    }
    if (got != 4L * STACK_BUF)
        fail_msg("reader %d: %s (%s) after %ld bytes", idx, strerror(errno), green_tls_error(), got);
    assert_int_equal(got, 4L * STACK_BUF);
    p->ok = 1;
    free(buf);
    assert_int_equal(green_tls_close(t, green_after(5000)), 0);
    while (green_read(fd, &n, 1, green_after(5000)) > 0) { /* the writer's close_notify */
    }
    green_close(fd);
    return NULL;
}

static void test_shared_stack_writers(void **state)
{
    (void)state;
    green_attr_t shared = {.stack_mode = GREEN_STACK_SHARED};
    green_t g[2 * STACK_WRITERS];
    struct pair *w = calloc(STACK_WRITERS, sizeof *w), *r = calloc(STACK_WRITERS, sizeof *r);
    int lfd[STACK_WRITERS];
    for (int i = 0; i < STACK_WRITERS; i++) {
        lfd[i] = listen_any(&w[i].port);
        w[i].idx = i + 1;
        r[i].port = lfd[i];
        g[2 * i] = green_spawn_attr(slow_reader, &r[i], &shared);
        g[2 * i + 1] = green_spawn_attr(stack_writer, &w[i], &shared);
    }
    if (green_joinall(g, 2 * STACK_WRITERS, green_after(30000)) != 0) {
        green_dump(stderr);
        fail_msg("joinall: %s", strerror(errno));
    }
    for (int i = 0; i < STACK_WRITERS; i++) {
        assert_int_equal(r[i].ok, 1);
        green_close(lfd[i]);
    }
    free(w);
    free(r);
    assert_hub_idle();
}

/* ---- full duplex: one green thread reads while another writes the same session ---- */

struct duplex {
    green_tls_t *t;
    long sent, got;
};

static void *duplex_writer(void *arg)
{
    struct duplex *d = arg;
    char *buf = calloc(1, 1 << 16);
    for (int i = 0; i < 32; i++)
        if (green_tls_write(d->t, buf, 1 << 16, green_after(10000)) == 1 << 16)
            d->sent += 1 << 16;
    free(buf);
    return NULL;
}

static void *duplex_reader(void *arg)
{
    struct duplex *d = arg;
    char *buf = malloc(1 << 16);
    ssize_t n;
    while (d->got < 32L << 16 && (n = green_tls_read(d->t, buf, 1 << 16, green_after(10000))) > 0)
        d->got += n;
    free(buf);
    return NULL;
}

static void test_full_duplex(void **state)
{
    (void)state;
    green_t sg;
    int port;
    struct echo *e = echo_start(&sg, &port, NULL); /* echoes what it reads */
    int fd = dial(port);
    green_tls_config_t c = client_cfg();
    struct duplex *d = calloc(1, sizeof *d);
    d->t = green_tls_connect(fd, "localhost", &c, green_after(5000));
    assert_non_null(d->t);
    green_t g[2] = {green_spawn(duplex_writer, d), green_spawn(duplex_reader, d)};
    assert_int_equal(green_joinall(g, 2, -1), 0);
    assert_int_equal(d->sent, 32L << 16);
    assert_int_equal(d->got, 32L << 16);
    assert_int_equal(green_tls_close(d->t, green_after(1000)), 0);
    green_close(fd);
    free(d);
    echo_stop(sg, e);
    assert_hub_idle();
}

/* ---- openssl s_server and s_client ---- */

static int have_openssl_tool(void)
{
    return system("command -v openssl >/dev/null 2>&1") == 0;
}

static pid_t spawn_sh(const char *cmd)
{
    pid_t pid;
    char *argv[] = {"sh", "-c", (char *)cmd, NULL};
    assert_int_equal(posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ), 0);
    return pid;
}

static void test_openssl_s_server(void **state)
{
    (void)state;
    if (!have_openssl_tool())
        skip();
    int port;
    int tmp = listen_any(&port);
    green_close(tmp);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "exec openssl s_server -accept 127.0.0.1:%d -cert %s -key %s -www -naccept 2 -alpn h2,http/1.1 "
             "</dev/null >/dev/null 2>&1", port, files.srv, files.srv_key);
    pid_t pid = spawn_sh(cmd);
    green_tls_config_t c = client_cfg();
    c.alpn = "http/1.1";
    for (int round = 0; round < 2; round++) {
        int fd = -1;
        char p[16];
        snprintf(p, sizeof p, "%d", port);
        for (int i = 0; i < 200 && fd < 0; i++)
            if ((fd = green_tcp_connect("127.0.0.1", p, green_after(1000))) < 0)
                green_sleep(25);
        assert_true(fd >= 0);
        green_tls_t *t = green_tls_connect(fd, "localhost", &c, green_after(5000));
        if (!t)
            fail_msg("%s", green_tls_error());
        assert_string_equal(green_tls_alpn(t), "http/1.1");
        assert_int_equal(green_tls_resumed(t), round == 1);
        const char req[] = "GET / HTTP/1.0\r\n\r\n";
        assert_int_equal(green_tls_write(t, req, sizeof req - 1, green_after(5000)), (ssize_t)sizeof req - 1);
        char buf[65536];
        size_t got = 0;
        ssize_t n;
        while (got < sizeof buf - 1 &&
               (n = green_tls_read(t, buf + got, sizeof buf - 1 - got, green_after(5000))) > 0)
            got += (size_t)n;
        buf[got] = 0;
        assert_non_null(strstr(buf, "200 ok"));
        green_tls_close(t, green_after(1000));
        green_close(fd);
    }
    int st;
    if (green_waitpid(pid, &st, green_after(5000)) != pid) {
        kill(pid, SIGKILL);
        green_waitpid(pid, &st, -1);
    }
}

struct pong {
    int lfd;
    int ok;
    int resumed;
};

static void *pong_main(void *arg)
{
    struct pong *p = arg;
    int fd = green_accept(p->lfd, NULL, NULL, green_after(10000));
    assert_true(fd >= 0);
    static green_tls_config_t s;
    s = server_cfg();
    s.alpn = "x-pong";
    green_tls_t *t = green_tls_accept(fd, &s, green_after(10000));
    if (!t)
        fail_msg("%s", green_tls_error());
    char buf[64];
    size_t got = 0;
    while (got < 5) {
        ssize_t n = green_tls_read(t, buf + got, sizeof buf - got, green_after(10000));
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_memory_equal(buf, "ping\n", 5);
    assert_string_equal(green_tls_alpn(t), "x-pong");
    p->resumed = green_tls_resumed(t);
    assert_int_equal(green_tls_write(t, "pong\n", 5, green_after(5000)), 5);
    assert_int_equal(green_tls_close(t, green_after(1000)), 0);
    green_close(fd);
    p->ok = 1;
    return NULL;
}

static void test_openssl_s_client(void **state)
{
    (void)state;
    if (!have_openssl_tool())
        skip();
    struct pong *p = calloc(1, sizeof *p);
    int port;
    p->lfd = listen_any(&port);
    green_t g = green_spawn(pong_main, p);
    char out[128], sess[128], cmd[1024], sess_opt[160];
    snprintf(out, sizeof out, "%s/s_client.out", files.dir);
    snprintf(sess, sizeof sess, "%s/s_client.sess", files.dir);
    /* TLS 1.3 saving its session, TLS 1.3 resuming it, TLS 1.2 */
    for (int v = 0; v < 3; v++) {
        p->ok = 0;
        if (v > 0)
            g = green_spawn(pong_main, p);
        snprintf(sess_opt, sizeof sess_opt, "%s %s", v == 0 ? "-sess_out" : v == 1 ? "-sess_in" : "",
                 v < 2 ? sess : "");
        snprintf(cmd, sizeof cmd,
                 "printf 'ping\\n' | openssl s_client -connect 127.0.0.1:%d -servername localhost "
                 "-CAfile %s -verify_return_error -verify_hostname localhost -alpn x-pong -ign_eof %s %s "
                 ">%s 2>&1", port, files.ca, v < 2 ? "-tls1_3" : "-tls1_2", sess_opt, out);
        pid_t pid = spawn_sh(cmd);
        int st;
        assert_int_equal(green_waitpid(pid, &st, green_after(20000)), pid);
        assert_int_equal(green_join(g, NULL, green_after(5000)), 0);
        assert_int_equal(p->ok, 1);
        FILE *f = fopen(out, "r");
        static char line[65536];
        size_t n = f ? fread(line, 1, sizeof line - 1, f) : 0;
        line[n] = 0;
        if (f)
            fclose(f);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !strstr(line, "pong") ||
            !strstr(line, v == 1 ? "Reused," : "New,"))
            fail_msg("s_client %d: status %d, output: %s", v, st, line);
        assert_int_equal(p->resumed, v == 1);
    }
    unlink(out);
    unlink(sess);
    green_close(p->lfd);
    free(p);
    assert_hub_idle();
}

/* ---- libcurl against green_serve ---- */

#if GREEN_TEST_CURL
static void serve_http(green_tls_t *t, int fd, void *arg)
{
    (void)fd, (void)arg;
    char buf[4096];
    size_t got = 0;
    while (got < sizeof buf - 1) {
        ssize_t n = green_tls_read(t, buf + got, sizeof buf - 1 - got, green_after(5000));
        if (n <= 0)
            return;
        got += (size_t)n;
        buf[got] = 0;
        if (strstr(buf, "\r\n\r\n"))
            break;
    }
    const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: close\r\n\r\nhello, curl\n";
    green_tls_write(t, resp, sizeof resp - 1, green_after(5000));
}

struct curl_job {
    char url[128];
    char body[256];
    size_t len;
    long code;
    int rc;
    int ver;   /* 0: default; else CURL_SSLVERSION_* */
};

static size_t curl_body(char *p, size_t sz, size_t n, void *arg)
{
    struct curl_job *j = arg;
    size_t k = sz * n;
    if (j->len + k < sizeof j->body) {
        memcpy(j->body + j->len, p, k);
        j->len += k;
    }
    return k;
}

static void *curl_fetch(void *arg)
{
    struct curl_job *j = arg;
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, j->url);
    curl_easy_setopt(c, CURLOPT_CAINFO, files.ca);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    if (j->ver)
        curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)j->ver);
    j->rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &j->code);
    curl_easy_cleanup(c);
    return NULL;
}

static void test_curl(void **state)
{
    (void)state;
    int port;
    int lfd = listen_any(&port);
    static green_tls_config_t s;
    s = server_cfg();
    s.alpn = "http/1.1";
    green_serve_opts_t o = {.tls = &s, .tls_handler = serve_http};
    green_server_t *srv = green_serve(lfd, NULL, NULL, &o);
    assert_non_null(srv);
    int vers[] = {0, CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2};
    for (int v = 0; v < 2; v++) {
        struct curl_job *j = calloc(1, sizeof *j);
        snprintf(j->url, sizeof j->url, "https://localhost:%d/hello", port);
        j->ver = vers[v];
        /* curl blocks its OS thread: a pool thread, while this hub serves */
        assert_int_equal(green_run_blocking(curl_fetch, j, NULL, green_after(30000)), 0);
        if (j->rc != CURLE_OK)
            fail_msg("curl: %s", curl_easy_strerror(j->rc));
        assert_int_equal(j->code, 200);
        assert_int_equal(j->len, 12);
        assert_memory_equal(j->body, "hello, curl\n", 12);
        free(j);
    }
    assert_int_equal(green_server_stop(srv, green_after(1000)), 0);
    green_close(lfd);
}
#endif

static int group_setup(void **state)
{
    (void)state;
    return tls_files_make(&files);
}

static int group_teardown(void **state)
{
    (void)state;
    tls_files_remove(&files);
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
#if GREEN_TEST_CURL
    curl_global_init(CURL_GLOBAL_DEFAULT);
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_dedicated),
        cmocka_unit_test(test_roundtrip_shared),
        cmocka_unit_test(test_alpn),
        cmocka_unit_test(test_sni),
        cmocka_unit_test(test_resumption),
        cmocka_unit_test(test_verify_errors),
        cmocka_unit_test(test_stall_timeout),
        cmocka_unit_test(test_kill_mid_handshake),
        cmocka_unit_test(test_endings),
        cmocka_unit_test(test_serve),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_garbage_peer),
        cmocka_unit_test(test_write_cut),
        cmocka_unit_test(test_small_stacks),
        cmocka_unit_test(test_shared_stack_writers),
        cmocka_unit_test(test_full_duplex),
        cmocka_unit_test(test_openssl_s_server),
        cmocka_unit_test(test_openssl_s_client),
#if GREEN_TEST_CURL
        cmocka_unit_test(test_curl),
#endif
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
#if GREEN_TEST_CURL
    curl_global_cleanup();
#endif
    return rc;
}

#else /* built without OpenSSL: every call says ENOTSUP */

static void noop(green_tls_t *t, int fd, void *arg)
{
    (void)t, (void)fd, (void)arg;
}

static void test_not_supported(void **state)
{
    (void)state;
    green_tls_config_t c = {.cert_file = "x.pem"};
    char b[4];
    assert_null_with(green_tls_connect(0, "localhost", NULL, 0), ENOTSUP);
    assert_null_with(green_tls_accept(0, &c, 0), ENOTSUP);
    assert_fails_with(green_tls_read(NULL, b, 1, 0), ENOTSUP);
    assert_fails_with(green_tls_write(NULL, b, 1, 0), ENOTSUP);
    assert_fails_with(green_tls_close(NULL, 0), ENOTSUP);
    assert_non_null(strstr(green_tls_error(), "without TLS"));
    int lfd = green_tcp_listen("127.0.0.1", "0", 8);
    assert_true(lfd >= 0);
    green_serve_opts_t o = {.tls = &c, .tls_handler = noop};
    assert_null_with(green_serve(lfd, NULL, NULL, &o), ENOTSUP);
    green_close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_supported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
