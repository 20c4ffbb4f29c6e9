/* test_patch_tls.c — libgreen-patch.so, linked in: libcurl's https (OpenSSL over a
 * socket libcurl made blocking or not, through the patched poll/read/write/connect) in
 * two green threads at once, against a local TLS server (green_serve with TLS, in a
 * forked child) that answers /slow a second late: the fast transfer completes while the
 * slow one still waits, and both complete. */
#include "green_test.h"
#include <green_patch.h>
#include "tls_certs.h"

#include <curl/curl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

enum { SLOW_MS = 1000 };

static struct tls_files files;
static int port;
static pid_t server;
static int finished; /* completion order */

static void answer(green_tls_t *t, int fd, void *arg)
{
    (void)fd, (void)arg;
    char req[2048];
    size_t got = 0;
    while (got < sizeof req - 1) {
        ssize_t n = green_tls_read(t, req + got, sizeof req - 1 - got, green_after(10000));
        if (n <= 0)
            return;
        got += (size_t)n;
        req[got] = 0;
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    int slow = strncmp(req, "GET /slow", 9) == 0;
    if (slow)
        green_sleep(SLOW_MS);
    char resp[256];
    int len = snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n%s",
                       slow ? "slow\n" : "fast\n");
    green_tls_write(t, resp, (size_t)len, green_after(10000));
}

/* The child: serve until killed; the port goes up the pipe. */
static void serve(int out)
{
    int lfd = green_tcp_listen("127.0.0.1", "0", 128);
    static green_tls_config_t cfg;
    cfg = (green_tls_config_t){.cert_file = files.srv, .key_file = files.srv_key};
    green_serve_opts_t o = {.tls = &cfg, .tls_handler = answer};
    int p = lfd >= 0 && green_serve(lfd, NULL, NULL, &o) ? green_socket_port(lfd) : -1;
    if (write(out, &p, sizeof p) != (ssize_t)sizeof p)
        _exit(1);
    close(out);
    green_sleep(-1 == p ? 0 : 600000);
    _exit(0);
}

struct fetch {
    const char *path;
    char body[64];
    size_t len;
    long status;
    int rc;
    int order;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct fetch *f = arg;
    size_t k = size * n;
    if (f->len + k < sizeof f->body) {
        memcpy(f->body + f->len, p, k);
        f->len += k;
    }
    return k;
}

static void *fetch(void *arg)
{
    struct fetch *f = arg;
    char url[128];
    snprintf(url, sizeof url, "https://localhost:%d%s", port, f->path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CAINFO, files.ca);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    f->rc = curl_easy_perform(c);
    f->order = ++finished;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &f->status);
    curl_easy_cleanup(c);
    return NULL;
}

static void test_curl_https_cooperative(void **state)
{
    (void)state;
    struct fetch *f = calloc(2, sizeof *f);
    assert_non_null(f);
    f[0].path = "/slow";
    f[1].path = "/fast";
    green_t g[2];
    g[0] = green_spawn(fetch, &f[0]);
    green_sleep(50); /* the slow one is waiting for its answer */
    g[1] = green_spawn(fetch, &f[1]);
    assert_int_equal(green_joinall(g, 2, -1), 0);
    for (int i = 0; i < 2; i++) {
        if (f[i].rc != CURLE_OK)
            fail_msg("%s: %s", f[i].path, curl_easy_strerror(f[i].rc));
        assert_int_equal(f[i].status, 200);
        assert_int_equal(f[i].len, 5);
    }
    assert_memory_equal(f[0].body, "slow\n", 5);
    assert_memory_equal(f[1].body, "fast\n", 5);
    /* cooperative: the fast transfer did not wait behind the slow one's */
    assert_int_equal(f[1].order, 1);
    assert_int_equal(f[0].order, 2);
    free(f);
    assert_hub_idle();
}

static int setup(void **state)
{
    (void)state;
    if (tls_files_make(&files) != 0)
        return -1;
    int p[2];
    if (pipe(p) != 0)
        return -1;
    server = fork();
    if (server == 0) {
        close(p[0]);
        serve(p[1]);
    }
    close(p[1]);
    ssize_t n = read(p[0], &port, sizeof port);
    close(p[0]);
    return server > 0 && n == (ssize_t)sizeof port && port > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    kill(server, SIGKILL);
    waitpid(server, NULL, 0);
    tls_files_remove(&files);
    return 0;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_curl_https_cooperative),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
