/* crawler.c — the talk's get_url: fetch URLs concurrently over HTTP/1.1 with a bounded
 * pool of green threads, and print the length of each.
 *
 * usage: crawler [-c N] [--ca FILE] URL...
 *                                fetch the URLs (http:// or https://host[:port]/path), at
 *                                most N at once (default 100); https verifies the server
 *                                against the system's CAs, or those of FILE
 *        crawler                 the test: 100 URLs of a local server (green_serve, in
 *                                this process) that takes 200 ms over every answer; all
 *                                together take about one delay, not a hundred
 * Responses are parsed by http-parser (see http.h). */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TIMEOUT_MS = 10000, DELAY_MS = 200, TEST_URLS = 100 };

/* ---- get_url ---- */

struct url {
    char host[256], port[8];
    const char *path;
    int https;
};

static green_tls_config_t tls_cfg; /* zeroed: the system's CAs, hostname verification */

/* http:// or https://host[:port][/path] only. */
static int url_parse(const char *s, struct url *u)
{
    u->https = strncmp(s, "https://", 8) == 0;
    if (!u->https && strncmp(s, "http://", 7) != 0)
        return -1;
    s += u->https ? 8 : 7;
    size_t hostlen = strcspn(s, ":/");
    if (hostlen == 0 || hostlen >= sizeof u->host)
        return -1;
    memcpy(u->host, s, hostlen);
    u->host[hostlen] = '\0';
    s += hostlen;
    strcpy(u->port, u->https ? "443" : "80");
    if (*s == ':') {
        size_t portlen = strcspn(++s, "/");
        if (portlen == 0 || portlen >= sizeof u->port)
            return -1;
        memcpy(u->port, s, portlen);
        u->port[portlen] = '\0';
        s += portlen;
    }
    u->path = *s ? s : "/";
    return 0;
}

struct fetch {
    const char *url;
    long length;        /* of the body; -1 on failure */
    int status;
};

static int count_body(http_parser *p, const char *at, size_t len)
{
    (void)at;
    ((struct fetch *)p->data)->length += (long)len;
    return 0;
}

static const http_parser_settings response_settings = {.on_body = count_body,
                                                       .on_message_complete = http_message_end};

/* GET f->url; fills in its status and body length. */
static void get_url(struct fetch *f)
{
    struct url u;
    f->length = -1;
    if (url_parse(f->url, &u) != 0)
        return;
    int64_t deadline = green_after(TIMEOUT_MS);
    int fd = green_tcp_connect(u.host, u.port, deadline);
    if (fd < 0)
        return;
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: libgreen-crawler\r\nConnection: close\r\n\r\n",
                     u.path, u.host);
    struct http_conn *c = malloc(sizeof *c);
    green_tls_t *tls = NULL;
    if (u.https && !(tls = green_tls_connect(fd, u.host, &tls_cfg, deadline)))
        fprintf(stderr, "%s: %s\n", f->url, green_tls_error());
    else if (c && n < (int)sizeof req && http_write(fd, tls, req, (size_t)n, deadline) == n) {
        http_conn_init(c, fd);
        c->tls = tls;
        http_parser p;
        http_parser_init(&p, HTTP_RESPONSE);
        p.data = f;
        f->length = 0;
        if (http_read_message(c, &p, &response_settings, deadline) == 1)
            f->status = p.status_code;
        else
            f->length = -1;
    }
    free(c);
    if (tls)
        green_tls_close(tls, deadline);
    green_close(fd);
}

static void *fetch_main(void *arg)
{
    get_url(arg);
    return NULL;
}

/* Fetch all n with at most `pool` at once; prints each; returns how many succeeded. */
static int crawl(struct fetch *f, int n, size_t pool)
{
    green_group_t group;
    green_group_init(&group, pool);
    for (int i = 0; i < n; i++)
        green_group_spawn(&group, fetch_main, &f[i], -1); /* waits while the pool is full */
    green_group_join(&group, -1);
    green_group_destroy(&group);
    int ok = 0;
    for (int i = 0; i < n; i++) {
        if (f[i].length >= 0)
            printf("%s: %d, %ld bytes\n", f[i].url, f[i].status, f[i].length);
        else
            printf("%s: failed\n", f[i].url);
        ok += f[i].length >= 0;
    }
    return ok;
}

/* ---- the test's slow server ---- */


static const char SLOW_PAGE[] = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nslow!\n";
enum { SLOW_BODY = 6 };

/* Answers one request, DELAY_MS after it has been read. */
static void slow_page(int fd, void *arg)
{
    (void)arg;
    http_answer_slowly(fd, SLOW_PAGE, sizeof SLOW_PAGE - 1, DELAY_MS, TIMEOUT_MS);
}

static int test(void)
{
    int lfd = green_tcp_listen("127.0.0.1", "0", 1024);
    green_server_t *srv = lfd >= 0 ? green_serve(lfd, slow_page, NULL, NULL) : NULL;
    if (!srv)
        return perror("serve"), 1;
    static char urls[TEST_URLS][64];
    struct fetch f[TEST_URLS];
    for (int i = 0; i < TEST_URLS; i++) {
        snprintf(urls[i], sizeof urls[i], "http://127.0.0.1:%d/page/%d", green_socket_port(lfd), i);
        f[i] = (struct fetch){.url = urls[i]};
    }
    int64_t t0 = green_now();
    int ok = crawl(f, TEST_URLS, TEST_URLS);
    int64_t took = green_now() - t0;
    printf("%d of %d URLs fetched in %lld ms (each answer takes %d ms)\n", ok, TEST_URLS, (long long)took,
           DELAY_MS);
    green_server_stop(srv, -1);
    green_close(lfd);
    int lengths_ok = 1;
    for (int i = 0; i < TEST_URLS; i++)
        lengths_ok &= f[i].status == 200 && f[i].length == SLOW_BODY;
    return ok == TEST_URLS && lengths_ok && took < 5000 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 1)
        return test();
    int first = 1;
    size_t pool = 100;
    for (; first + 1 < argc && argv[first][0] == '-'; first += 2) {
        if (!strcmp(argv[first], "-c"))
            pool = (size_t)atol(argv[first + 1]);
        else if (!strcmp(argv[first], "--ca"))
            tls_cfg.ca_file = argv[first + 1];
        else
            break;
    }
    if (first >= argc || pool == 0) {
        fprintf(stderr, "usage: crawler [-c N] [--ca FILE] URL...\n");
        return 2;
    }
    int n = argc - first;
    struct fetch *f = calloc((size_t)n, sizeof *f);
    if (!f)
        return 1;
    for (int i = 0; i < n; i++)
        f[i].url = argv[first + i];
    int64_t t0 = green_now();
    int ok = crawl(f, n, pool);
    printf("%d of %d fetched in %lld ms\n", ok, n, (long long)(green_now() - t0));
    free(f);
    return ok == n ? 0 : 1;
}
