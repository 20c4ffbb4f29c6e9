/*
 * bench_patch_curl — issue 6's benchmark: N concurrent blocking curl_easy_perform calls
 * against a local HTTP server that answers each after DELAY ms (tests/delay_server.h, a
 * forked child), made three ways in one program linked with libgreen-patch.so:
 *
 *   bench_patch_curl green N [DELAY]       N green threads (the patch parks each call)
 *   bench_patch_curl pthreads N [DELAY]    N OS threads (no hub: the calls pass through)
 *   bench_patch_curl sequential N [DELAY]  one after the other, on the main thread
 *
 * Prints one line of key=value: mode, n, ms (wall time of the N calls, thread creation
 * included), ok (answers with the right body), rss0_kb (VmRSS before), rss_kb (VmRSS
 * with all N done, before they are reaped), hwm_kb (VmHWM, the peak). The server's
 * memory is not counted (another process). Figures, not verdicts.
 */
#include "bench.h"
#include "../tests/delay_server.h"

#include <curl/curl.h>
#include <pthread.h>
#include <sys/resource.h>

static int port, delay_ms = 200;

struct call {
    int i;
    int ok;
    char body[128];
    size_t len;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct call *c = arg;
    size_t k = size * n;
    if (c->len + k < sizeof c->body) {
        memcpy(c->body + c->len, p, k);
        c->len += k;
        c->body[c->len] = '\0';
    }
    return k;
}

static void *one_call(void *arg)
{
    struct call *c = arg;
    char url[128], want[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/delay/%d/%d", port, delay_ms, c->i);
    snprintf(want, sizeof want, "hello /delay/%d/%d\n", delay_ms, c->i);
    CURL *h = curl_easy_init();
    if (!h)
        return NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    c->ok = curl_easy_perform(h) == CURLE_OK && strcmp(c->body, want) == 0;
    curl_easy_cleanup(h);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_patch_curl green|pthreads|sequential N [DELAY_MS]\n");
        return 2;
    }
    const char *mode = argv[1];
    int n = atoi(argv[2]);
    if (argc > 3)
        delay_ms = atoi(argv[3]);
    /* three fds per call (the socket, curl's wake-up pair) */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    pid_t server = delay_server_start(&port);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct call *calls = calloc((size_t)n, sizeof *calls);
    for (int i = 0; i < n; i++)
        calls[i].i = i;
    long rss0 = bench_status_kb("VmRSS"), rss = 0;
    int64_t t0 = bench_now_ns();
    if (strcmp(mode, "green") == 0) {
        green_t *gs = calloc((size_t)n, sizeof *gs);
        for (int i = 0; i < n; i++)
            gs[i] = green_spawn(one_call, &calls[i]);
        /* all done once the last one is: measure memory before reaping any */
        while (green_join(gs[n - 1], NULL, -1) != 0) {
        }
        for (int i = 0; i < n - 1; i++)
            while (!green_dead(gs[i]))
                green_sleep(1);
        rss = bench_status_kb("VmRSS");
        green_joinall(gs, (size_t)n - 1, -1);
        free(gs);
    } else if (strcmp(mode, "pthreads") == 0) {
        pthread_t *ts = calloc((size_t)n, sizeof *ts);
        int made = 0;
        for (; made < n; made++)
            if (pthread_create(&ts[made], NULL, one_call, &calls[made]) != 0)
                break;
        rss = bench_status_kb("VmRSS"); /* all alive (most still waiting) */
        for (int i = 0; i < made; i++)
            pthread_join(ts[i], NULL);
        free(ts);
    } else {
        for (int i = 0; i < n; i++)
            one_call(&calls[i]);
        rss = bench_status_kb("VmRSS");
    }
    int64_t t1 = bench_now_ns();
    int ok = 0;
    for (int i = 0; i < n; i++)
        ok += calls[i].ok;
    printf("mode=%s n=%d delay_ms=%d ms=%.1f ok=%d rss0_kb=%ld rss_kb=%ld hwm_kb=%ld\n", mode, n, delay_ms,
           (double)(t1 - t0) / 1e6, ok, rss0, rss, bench_status_kb("VmHWM"));
    free(calls);
    curl_global_cleanup();
    delay_server_stop(server);
    return ok == n ? 0 : 1;
}
