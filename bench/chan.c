/*
 * chan.c — what a message through a channel, and a mutex hand-off, cost (issue 4).
 *
 *   bench_chan                  every row with its default size, one key=value line each
 *   bench_chan MODE N [STAGES]  one run: N round trips / messages / loops / integers,
 *                               then one line of key=value pairs (what run.sh reads):
 *                               msgs=M ms=T ns_per_msg=T/M switches_per_msg (green_stats)
 *                               (+ copied_per_switch, iters, handoffs, stages)
 *
 * Every green thread is spawned on the hub (green_spawn_attr) and joined by main().
 * Elements are `long` (8 bytes, like Go's int). MODE:
 *   pingpong         two green threads, two rendezvous channels (capacity 0), one each
 *                    way: A sends i, B sends i + 1 back. msgs = 2N
 *   pingpong-shared  the same with GREEN_STACK_SHARED
 *   buffered         one producer streams N integers through a channel of capacity 128 to
 *                    one consumer, then closes it. msgs = N
 *   mutex            two green threads loop N times each: lock; count; green_yield; unlock.
 *                    msgs = hand-offs: acquisitions whose previous owner was the other one
 *   pipeline         STAGES (1,000) green threads, each receiving from the rendezvous
 *                    channel before it and sending (the integer + 1) to the next; a source
 *                    green thread feeds N integers, main() drains the last channel.
 *                    msgs = N × STAGES (ns per message per stage)
 *   pipeline-shared  the same with GREEN_STACK_SHARED
 *
 * Results are checked (echoes, sums); a wrong one exits non-zero.
 */
#define _GNU_SOURCE
#include <green.h>

#include "bench.h" /* after green.h: its ping-pong */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUFFERED_CAP 128
#define PIPELINE_STAGES 1000

struct result {
    double ns;      /* total elapsed, spawning included */
    long msgs;      /* what ns_per_msg divides by */
    long iters;     /* mutex: lock/unlock loops of both green threads */
};

static const green_attr_t dedicated = {.stack_mode = GREEN_STACK_DEDICATED};
static const green_attr_t shared = {.stack_mode = GREEN_STACK_SHARED};

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* green_stats() of this OS thread, sampled around each run by print() */
static void stats(uint64_t *switches, uint64_t *copied)
{
    green_stats_t st;
    if (green_stats(&st) != 0)
        die("green_stats");
    *switches = st.switches;
    *copied = st.shared_copied_bytes;
}

static green_t spawn(green_fn fn, void *arg, const green_attr_t *attr)
{
    green_t g = green_spawn_attr(fn, arg, attr);
    if (!g)
        die("green_spawn_attr");
    return g;
}

static void join(green_t g)
{
    void *r;
    if (green_join(g, &r, -1) != 0)
        die("green_join");
    if (r) {
        fprintf(stderr, "bench_chan: %s\n", (const char *)r);
        exit(1);
    }
}

static green_chan_t *chan_new(size_t cap)
{
    green_chan_t *ch = green_chan_new(sizeof(long), cap);
    if (!ch)
        die("green_chan_new");
    return ch;
}

static void chan_free(green_chan_t *ch)
{
    if (green_chan_free(ch) != 0)
        die("green_chan_free");
}

/* Shared-stack green threads must not hand each other pointers into their stacks:
 * everything they share lives here. */
static struct {
    struct bench_pp pp;     /* ping-pong */
    green_chan_t *buf;      /* buffered */
    green_chan_t **pipe;    /* pipeline: STAGES + 1 channels */
    green_mutex_t mu;       /* mutex */
    int last;               /* mutex: the last owner, 0 or 1 (-1 at first) */
    long handoffs, count;
    long n;
} B;

/* ---- (a) ping-pong over two rendezvous channels ---- */

static struct result run_pingpong_attr(long n, const green_attr_t *attr)
{
    B.pp.n = n;
    B.pp.ab = chan_new(0);
    B.pp.ba = chan_new(0);
    int64_t t0 = bench_now_ns();
    green_t a = spawn(bench_pp_a, &B.pp, attr), b = spawn(bench_pp_b, &B.pp, attr);
    join(a);
    join(b);
    int64_t t1 = bench_now_ns();
    chan_free(B.pp.ab);
    chan_free(B.pp.ba);
    return (struct result){(double)(t1 - t0), 2 * n, 0};
}

static struct result run_pingpong(long n, long k) { (void)k; return run_pingpong_attr(n, &dedicated); }
static struct result run_pingpong_shared(long n, long k) { (void)k; return run_pingpong_attr(n, &shared); }

/* ---- (b) a producer streams through a buffered channel ---- */

static void *buf_producer(void *arg)
{
    (void)arg;
    for (long i = 0; i < B.n; i++)
        if (green_chan_send(B.buf, &i, -1) != 0)
            return "buffered: send failed";
    if (green_chan_close(B.buf) != 0)
        return "buffered: close failed";
    return NULL;
}

static void *buf_consumer(void *arg)
{
    (void)arg;
    long v, sum = 0, got = 0;
    while (green_chan_recv(B.buf, &v, -1) == 0) {
        sum += v;
        got++;
    }
    if (errno != EPIPE)
        return "buffered: recv failed";
    if (got != B.n || sum != B.n * (B.n - 1) / 2)
        return "buffered: wrong count or sum";
    return NULL;
}

static struct result run_buffered(long n, long k)
{
    (void)k;
    B.n = n;
    B.buf = chan_new(BUFFERED_CAP);
    int64_t t0 = bench_now_ns();
    green_t p = spawn(buf_producer, NULL, &dedicated), c = spawn(buf_consumer, NULL, &dedicated);
    join(p);
    join(c);
    int64_t t1 = bench_now_ns();
    chan_free(B.buf);
    return (struct result){(double)(t1 - t0), n, 0};
}

/* ---- (c) mutex hand-off ---- */

static void *mu_worker(void *arg)
{
    int me = (int)(intptr_t)arg;
    for (long i = 0; i < B.n; i++) {
        if (green_mutex_lock(&B.mu, -1) != 0)
            return "mutex: lock failed";
        if (B.last != me) {
            if (B.last >= 0)
                B.handoffs++;
            B.last = me;
        }
        B.count++;
        green_yield(); /* holding it: the other one runs and queues on the mutex */
        if (green_mutex_unlock(&B.mu) != 0)
            return "mutex: unlock failed";
    }
    return NULL;
}

static struct result run_mutex(long n, long k)
{
    (void)k;
    B.n = n;
    B.last = -1;
    B.handoffs = B.count = 0;
    if (green_mutex_init(&B.mu, GREEN_MUTEX_NORMAL) != 0)
        die("green_mutex_init");
    int64_t t0 = bench_now_ns();
    green_t a = spawn(mu_worker, (void *)0, &dedicated), b = spawn(mu_worker, (void *)1, &dedicated);
    join(a);
    join(b);
    int64_t t1 = bench_now_ns();
    if (B.count != 2 * n) {
        fprintf(stderr, "bench_chan: mutex: count %ld, expected %ld\n", B.count, 2 * n);
        exit(1);
    }
    if (green_mutex_destroy(&B.mu) != 0)
        die("green_mutex_destroy");
    return (struct result){(double)(t1 - t0), B.handoffs, 2 * n};
}

/* ---- (d) a pipeline of rendezvous channels ---- */

static void *pl_source(void *arg)
{
    (void)arg;
    for (long i = 0; i < B.n; i++)
        if (green_chan_send(B.pipe[0], &i, -1) != 0)
            return "pipeline: source send failed";
    if (green_chan_close(B.pipe[0]) != 0)
        return "pipeline: close failed";
    return NULL;
}

static void *pl_stage(void *arg)
{
    long s = (long)(intptr_t)arg;
    green_chan_t *in = B.pipe[s], *out = B.pipe[s + 1];
    long v;
    while (green_chan_recv(in, &v, -1) == 0) {
        v++;
        if (green_chan_send(out, &v, -1) != 0)
            return "pipeline: stage send failed";
    }
    if (errno != EPIPE)
        return "pipeline: stage recv failed";
    if (green_chan_close(out) != 0)
        return "pipeline: close failed";
    return NULL;
}

static struct result run_pipeline_attr(long n, long stages, const green_attr_t *attr)
{
    B.n = n;
    B.pipe = malloc((size_t)(stages + 1) * sizeof *B.pipe);
    green_t *g = malloc((size_t)(stages + 1) * sizeof *g);
    if (!B.pipe || !g)
        die("malloc");
    for (long s = 0; s <= stages; s++)
        B.pipe[s] = chan_new(0);
    int64_t t0 = bench_now_ns();
    for (long s = 0; s < stages; s++)
        g[s] = spawn(pl_stage, (void *)(intptr_t)s, attr);
    g[stages] = spawn(pl_source, NULL, attr);
    long v, sum = 0, got = 0;
    while (green_chan_recv(B.pipe[stages], &v, -1) == 0) {
        sum += v;
        got++;
    }
    if (errno != EPIPE)
        die("pipeline: sink recv");
    for (long s = 0; s <= stages; s++)
        join(g[s]);
    int64_t t1 = bench_now_ns();
    if (got != n || sum != n * (n - 1) / 2 + n * stages) {
        fprintf(stderr, "bench_chan: pipeline: got %ld integers summing to %ld\n", got, sum);
        exit(1);
    }
    for (long s = 0; s <= stages; s++)
        chan_free(B.pipe[s]);
    free(B.pipe);
    free(g);
    return (struct result){(double)(t1 - t0), n * stages, 0};
}

static struct result run_pipeline(long n, long k) { return run_pipeline_attr(n, k, &dedicated); }
static struct result run_pipeline_shared(long n, long k) { return run_pipeline_attr(n, k, &shared); }

/* ---- driver ---- */

struct row {
    const char *mode;
    struct result (*run)(long n, long stages);
    long n;         /* default size (no arguments) */
};

static const struct row rows[] = {
    {"pingpong", run_pingpong, 1000000},
    {"pingpong-shared", run_pingpong_shared, 1000000},
    {"buffered", run_buffered, 10000000},
    {"mutex", run_mutex, 1000000},
    {"pipeline", run_pipeline, 10000},
    {"pipeline-shared", run_pipeline_shared, 10000},
};
#define NROWS (sizeof rows / sizeof rows[0])

static void print(const struct row *r, long n, long stages)
{
    uint64_t s0, c0, s1, c1;
    stats(&s0, &c0);
    struct result res = r->run(n, stages);
    stats(&s1, &c1);
    double msgs = res.msgs > 0 ? (double)res.msgs : 1;
    printf("mode=%s n=%ld msgs=%ld ms=%.1f ns_per_msg=%.2f switches_per_msg=%.2f", r->mode, n,
           res.msgs, res.ns / 1e6, res.ns / msgs, (double)(s1 - s0) / msgs);
    if (c1 > c0)
        printf(" copied_per_switch=%.0f", (double)(c1 - c0) / (double)(s1 - s0));
    if (res.iters)
        printf(" iters=%ld handoffs=%ld", res.iters, res.msgs);
    if (strncmp(r->mode, "pipeline", 8) == 0)
        printf(" stages=%ld", stages);
    printf("\n");
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_chan [MODE N [STAGES]]\nMODE:");
    for (size_t i = 0; i < NROWS; i++)
        fprintf(stderr, " %s", rows[i].mode);
    fprintf(stderr, "\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc == 1) {
        for (size_t i = 0; i < NROWS; i++)
            print(&rows[i], rows[i].n, PIPELINE_STAGES);
        return 0;
    }
    if (argc != 3 && argc != 4)
        return usage();
    long n = bench_parse_count(argv[2]);
    long stages = argc == 4 ? bench_parse_count(argv[3]) : PIPELINE_STAGES;
    if (n < 1 || stages < 1)
        return usage();
    for (size_t i = 0; i < NROWS; i++) {
        if (strcmp(rows[i].mode, argv[1]) == 0) {
            print(&rows[i], n, stages);
            return 0;
        }
    }
    return usage();
}
