/* test_choose.c — green_choose beyond channels (gevent.wait/select): clauses on events,
 * futures, a green thread's end, an fd's readiness and signals, mixed with channel
 * operations. Exactly one clause completes; those that observe leave their object as
 * it was; what is ready is chosen at random; nothing stays armed afterwards; wake-ups
 * from other OS threads (events, futures, channels) reach the chooser; a signal that
 * comes when another clause has won is not lost. (Channel-only selects: test_chan.c.) */
#include "green_test.h"

#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#define FAR 20000 /* ms: a deadline for waits that should end long before */

static int open_fds_at_start;

static int is_pending(int signo)
{
    sigset_t p;
    sigpending(&p);
    return sigismember(&p, signo);
}

/* Beyond an idle hub: no fd watched, no signalfd left open, no signal left pending. */
static void assert_all_clear(void)
{
    assert_hub_idle();
    assert_int_equal(stats().fds, 0);
    assert_int_equal(open_fds(), open_fds_at_start);
    assert_false(is_pending(SIGUSR1));
    assert_false(is_pending(SIGUSR2));
}

/* A choose run by a green thread of its own; the outcome in the (heap or test-frame)
 * record it is handed. */
struct chooser {
    green_clause_t c[4];
    int n;
    int64_t deadline;
    int r, err;
};

static void *do_choose(void *arg)
{
    struct chooser *s = arg;
    errno = 0;
    s->r = green_choose(s->c, s->n, s->deadline);
    s->err = errno;
    return NULL;
}

/* Let everything ready run, and the poller look, a few times. */
static void settle(void)
{
    for (int i = 0; i < 5; i++)
        green_sleep(1);
}

/* ======================================================================== */
/*  Arguments                                                               */
/* ======================================================================== */

static void *return_arg(void *arg) { return arg; }

static void test_bad_clauses(void **state)
{
    (void)state;
    green_event_t ev;
    green_event_init(&ev);
    green_clause_t c[2] = {{.op = GREEN_WAIT_EVENT, .event = &ev}};
    c[1] = (green_clause_t){.op = GREEN_WAIT_EVENT};
    assert_fails_with(green_choose(c, 2, 0), EINVAL);
    c[1] = (green_clause_t){.op = GREEN_WAIT_FUTURE};
    assert_fails_with(green_choose(c, 2, 0), EINVAL);
    c[1] = (green_clause_t){.op = GREEN_WAIT_FD, .fd = -1, .events = GREEN_READ};
    assert_fails_with(green_choose(c, 2, 0), EBADF);
    c[1] = (green_clause_t){.op = GREEN_WAIT_FD, .fd = 0, .events = 0};
    assert_fails_with(green_choose(c, 2, 0), EINVAL);
    c[1] = (green_clause_t){.op = GREEN_WAIT_FD, .fd = 0, .events = 4};
    assert_fails_with(green_choose(c, 2, 0), EINVAL);
    c[1] = (green_clause_t){.op = GREEN_WAIT_SIGNAL, .signo = SIGKILL};
    assert_fails_with(green_choose(c, 2, 0), EINVAL);
    c[1] = (green_clause_t){.op = GREEN_WAIT_SIGNAL, .signo = 0};
    assert_fails_with(green_choose(c, 2, 0), EINVAL);
    c[1] = (green_clause_t){.op = 99};
    assert_fails_with(green_choose(c, 2, 0), EINVAL);
    /* a green thread's end: green_join's rules */
    c[1] = (green_clause_t){.op = GREEN_WAIT_DEAD};
    assert_fails_with(green_choose(c, 2, 0), EINVAL);
    c[1].g = green_current();
    assert_fails_with(green_choose(c, 2, 0), EDEADLK);
    green_t d = green_spawn(return_arg, NULL);
    assert_int_equal(green_detach(d), 0);
    c[1].g = d;
    assert_fails_with(green_choose(c, 2, 0), EINVAL);
    assert_int_equal(green_yield(), 0); /* d runs and is reaped */
    assert_fails_with(green_choose(c, 2, 0), ESRCH);
    /* and when nothing is ready: a plain timeout, nothing left behind */
    c[1] = (green_clause_t){.op = GREEN_WAIT_EVENT, .event = &ev};
    assert_fails_with(green_choose(c, 2, 0), ETIMEDOUT);
    assert_fails_with(green_choose(c, 2, green_after(5)), ETIMEDOUT);
    assert_int_equal(green_event_destroy(&ev), 0);
    assert_all_clear();
}

/* ======================================================================== */
/*  Events and futures                                                      */
/* ======================================================================== */

static void *set_event(void *arg)
{
    green_event_set(arg);
    return NULL;
}

static void test_event_clause(void **state)
{
    (void)state;
    green_chan_t *ch = green_chan_new(sizeof(long), 0);
    green_event_t ev;
    green_event_init(&ev);
    long v = 0;
    struct chooser s = {.n = 2, .deadline = green_after(FAR)};
    s.c[0] = (green_clause_t){.ch = ch, .op = GREEN_CHAN_RECV, .elem = &v, .err = -1};
    s.c[1] = (green_clause_t){.op = GREEN_WAIT_EVENT, .event = &ev, .err = -1};
    green_t g = green_spawn(do_choose, &s);
    settle();
    assert_int_equal(green_dead(g), 0); /* waiting */
    green_t setter = green_spawn(set_event, &ev);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(s.r, 1);
    assert_int_equal(s.c[1].err, 0);
    assert_int_equal(s.c[0].err, -1); /* only the completed clause is written */
    assert_int_equal(green_event_is_set(&ev), 1); /* observed, not consumed */
    assert_int_equal(green_join(setter, NULL, -1), 0);
    /* already set: completes at once, even with deadline 0 */
    assert_int_equal(green_choose(s.c, 2, 0), 1);

    /* set and cleared again before the chooser runs: it still counts */
    assert_int_equal(green_event_clear(&ev), 0);
    s.r = -5;
    g = green_spawn(do_choose, &s);
    settle();
    assert_int_equal(green_event_set(&ev), 0);
    assert_int_equal(green_event_clear(&ev), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(s.r, 1);
    /* the channel was never touched: free, nothing queued */
    assert_int_equal(green_chan_free(ch), 0);
    assert_int_equal(green_event_destroy(&ev), 0);
    assert_all_clear();
}

static void test_future_clause(void **state)
{
    (void)state;
    green_future_t ok, bad;
    green_future_init(&ok);
    green_future_init(&bad);
    struct chooser s = {.n = 2, .deadline = green_after(FAR)};
    s.c[0] = (green_clause_t){.op = GREEN_WAIT_FUTURE, .future = &ok, .err = -1};
    s.c[1] = (green_clause_t){.op = GREEN_WAIT_FUTURE, .future = &bad, .err = -1};
    green_t g = green_spawn(do_choose, &s);
    settle();
    assert_int_equal(green_future_fail(&bad, ENOENT), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(s.r, 1);
    assert_int_equal(s.c[1].err, ENOENT);
    assert_null(s.c[1].value);
    /* the value of the other */
    assert_int_equal(green_future_set(&ok, (void *)7), 0);
    s.c[0].op = GREEN_WAIT_FUTURE;
    int r = green_choose(s.c, 1, 0);
    assert_int_equal(r, 0);
    assert_int_equal(s.c[0].err, 0);
    assert_ptr_equal(s.c[0].value, (void *)7);
    assert_int_equal(green_future_ready(&ok), 1); /* still there for green_future_get */
    assert_int_equal(green_future_destroy(&ok), 0);
    assert_int_equal(green_future_destroy(&bad), 0);
    assert_all_clear();
}

/* ======================================================================== */
/*  A green thread's end                                                    */
/* ======================================================================== */

static void *sleep_then_return(void *arg)
{
    green_sleep(20);
    return arg;
}

/* Returns `ret` once `go` is set. */
struct worker {
    green_event_t go;
    void *ret;
};

static void *wait_then_return(void *arg)
{
    struct worker *w = arg;
    green_event_wait(&w->go, -1);
    return w->ret;
}

static void *join_it(void *arg)
{
    errno = 0;
    return (void *)(intptr_t)(green_join(arg, NULL, 0) == 0 ? 0 : errno);
}

static void test_dead_clause(void **state)
{
    (void)state;
    green_event_t never;
    green_event_init(&never);
    struct worker wk = {.ret = (void *)9};
    green_event_init(&wk.go);
    green_t worker = green_spawn(wait_then_return, &wk);
    struct chooser s = {.n = 2, .deadline = green_after(FAR)};
    s.c[0] = (green_clause_t){.op = GREEN_WAIT_EVENT, .event = &never};
    s.c[1] = (green_clause_t){.op = GREEN_WAIT_DEAD, .g = worker, .err = -1};
    green_t g = green_spawn(do_choose, &s);
    settle();
    assert_int_equal(green_dead(g), 0); /* waiting */
    /* while the choose waits for it, it is worker's joiner */
    green_t other = green_spawn(join_it, worker);
    void *err;
    assert_int_equal(green_join(other, &err, -1), 0);
    assert_int_equal((intptr_t)err, EINVAL);
    assert_int_equal(green_event_set(&wk.go), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(s.r, 1);
    assert_int_equal(s.c[1].err, 0);
    /* not reaped: the caller joins it */
    assert_int_equal(green_dead(worker), 1);
    assert_int_equal(green_choose(s.c, 2, 0), 1);
    void *res;
    assert_int_equal(green_join(worker, &res, 0), 0);
    assert_ptr_equal(res, (void *)9);

    /* a green thread killed before it ever ran ends too */
    worker = green_spawn_later(10 * FAR, sleep_then_return, NULL);
    s.c[1].g = worker;
    s.r = -5;
    g = green_spawn(do_choose, &s);
    assert_int_equal(green_yield(), 0); /* the chooser waits; worker is not due yet */
    assert_int_equal(green_started(worker), 0);
    assert_int_equal(green_kill(worker), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(s.r, 1);
    assert_int_equal(green_join(worker, &res, -1), 0);
    assert_null(res);
    assert_int_equal(green_event_destroy(&never), 0);
    assert_int_equal(green_event_destroy(&wk.go), 0);
    assert_all_clear();
}

/* ======================================================================== */
/*  fds                                                                     */
/* ======================================================================== */

struct pair {
    int a, b;
};

static struct pair socket_pair(void)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    return (struct pair){sv[0], sv[1]};
}

static void *write_one(void *arg)
{
    int fd = (int)(intptr_t)arg;
    green_sleep(5);
    green_write(fd, "x", 1, -1);
    return NULL;
}

static void *close_it(void *arg)
{
    green_sleep(5);
    green_close((int)(intptr_t)arg);
    return NULL;
}

static void *read_one(void *arg)
{
    char c;
    return (void *)(intptr_t)green_read((int)(intptr_t)arg, &c, 1, -1);
}

static void test_fd_clause(void **state)
{
    (void)state;
    struct pair p = socket_pair();
    green_event_t never;
    green_event_init(&never);
    /* readable later: the data stays for the read that follows */
    struct chooser s = {.n = 2, .deadline = green_after(FAR)};
    s.c[0] = (green_clause_t){.op = GREEN_WAIT_EVENT, .event = &never};
    s.c[1] = (green_clause_t){.op = GREEN_WAIT_FD, .fd = p.a, .events = GREEN_READ, .err = -1};
    green_t w = green_spawn(write_one, (void *)(intptr_t)p.b);
    assert_int_equal(green_choose(s.c, 2, s.deadline), 1);
    assert_int_equal(s.c[1].err, 0);
    assert_int_equal(s.c[1].revents, GREEN_READ);
    assert_int_equal(green_join(w, NULL, -1), 0);
    /* ready already: completes with deadline 0; still not consumed */
    s.c[1].revents = 0;
    assert_int_equal(green_choose(s.c, 2, 0), 1);
    assert_int_equal(s.c[1].revents, GREEN_READ);
    char c;
    assert_int_equal(green_read(p.a, &c, 1, 0), 1);
    assert_fails_with(green_choose(s.c, 2, 0), ETIMEDOUT);
    /* writable: at once, and only what was asked for is reported */
    s.c[1].events = GREEN_READ | GREEN_WRITE;
    assert_int_equal(green_choose(s.c, 2, -1), 1);
    assert_int_equal(s.c[1].revents, GREEN_WRITE);

    /* another green thread waits to read it: EBUSY, as green_wait_fd would say */
    green_t r = green_spawn(read_one, (void *)(intptr_t)p.a);
    assert_int_equal(green_yield(), 0);
    s.c[1].events = GREEN_READ;
    s.c[1].err = 0;
    assert_int_equal(green_choose(s.c, 2, green_after(FAR)), 1);
    assert_int_equal(s.c[1].err, EBUSY);
    assert_int_equal(green_write(p.b, "y", 1, -1), 1);
    void *n;
    assert_int_equal(green_join(r, &n, -1), 0);
    assert_int_equal((intptr_t)n, 1);

    /* closed with green_close while we wait: EBADF */
    green_t cl = green_spawn(close_it, (void *)(intptr_t)p.a);
    assert_int_equal(green_choose(s.c, 2, green_after(FAR)), 1);
    assert_int_equal(s.c[1].err, EBADF);
    assert_int_equal(green_join(cl, NULL, -1), 0);
    green_close(p.b);
    assert_int_equal(green_event_destroy(&never), 0);
    assert_all_clear();
}

/* ======================================================================== */
/*  Signals                                                                 */
/* ======================================================================== */

static void *raise_usr1(void *arg)
{
    (void)arg;
    green_sleep(5);
    pthread_kill(pthread_self(), SIGUSR1);
    return NULL;
}

static void *wait_usr1(void *arg)
{
    return (void *)(intptr_t)green_signal_wait(SIGUSR1, *(int64_t *)arg);
}

/* "data, or the stop event, or SIGTERM" in one call; here SIGUSR1/SIGUSR2. One delivery
 * serves the chooser and a green_signal_wait alike. */
static void test_signal_clause(void **state)
{
    (void)state;
    green_chan_t *ch = green_chan_new(sizeof(long), 0);
    green_event_t stop;
    green_event_init(&stop);
    long v;
    green_clause_t c[4] = {
        {.ch = ch, .op = GREEN_CHAN_RECV, .elem = &v},
        {.op = GREEN_WAIT_EVENT, .event = &stop},
        {.op = GREEN_WAIT_SIGNAL, .signo = SIGUSR2},
        {.op = GREEN_WAIT_SIGNAL, .signo = SIGUSR1, .err = -1},
    };
    int64_t far = green_after(FAR);
    green_t waiter = green_spawn(wait_usr1, &far);
    green_t sender = green_spawn(raise_usr1, NULL);
    assert_int_equal(green_choose(c, 4, far), 3);
    assert_int_equal(c[3].err, 0);
    void *got;
    assert_int_equal(green_join(waiter, &got, -1), 0);
    assert_int_equal((intptr_t)got, SIGUSR1);
    assert_int_equal(green_join(sender, NULL, -1), 0);

    /* pending before the call: served even with deadline 0 */
    assert_int_equal(pthread_kill(pthread_self(), SIGUSR2), 0); /* blocked since the last wait */
    assert_int_equal(green_choose(c, 4, 0), 2);
    /* none: a timeout */
    assert_fails_with(green_choose(c, 4, 0), ETIMEDOUT);
    assert_fails_with(green_choose(c, 4, green_after(5)), ETIMEDOUT);
    assert_int_equal(green_chan_free(ch), 0);
    assert_int_equal(green_event_destroy(&stop), 0);
    assert_all_clear();
}

/* The chooser reads the signalfd; a channel send completes its choose, then the signal
 * arrives before it runs again: the delivery is claimed by nobody and must stay pending
 * for the next wait, not vanish. */
struct send_then_signal {
    green_chan_t *ch;
};

static void *send_then_signal(void *arg)
{
    struct send_then_signal *x = arg;
    long v = 42;
    green_chan_send(x->ch, &v, -1); /* completes the chooser's receive */
    pthread_kill(pthread_self(), SIGUSR2);
    return NULL;
}

static void test_signal_not_lost_when_another_clause_wins(void **state)
{
    (void)state;
    green_chan_t *ch = green_chan_new(sizeof(long), 0);
    long v = 0;
    green_clause_t c[2] = {
        {.ch = ch, .op = GREEN_CHAN_RECV, .elem = &v},
        {.op = GREEN_WAIT_SIGNAL, .signo = SIGUSR2},
    };
    struct send_then_signal x = {ch};
    green_t g = green_spawn(send_then_signal, &x);
    assert_int_equal(green_choose(c, 2, green_after(FAR)), 0);
    assert_int_equal(v, 42);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(green_signal_wait(SIGUSR2, green_after(FAR)), SIGUSR2);
    assert_int_equal(green_chan_free(ch), 0);
    assert_all_clear();
}

/* ======================================================================== */
/*  All together                                                            */
/* ======================================================================== */

/* Everything ready at once: each clause is chosen, about as often as the others; the
 * observed objects stay as they were; the channel gives one element per win. */
static void test_fair_among_kinds(void **state)
{
    (void)state;
    enum { ROUNDS = 4000 };
    green_chan_t *ch = green_chan_new(sizeof(long), ROUNDS);
    for (long i = 0; i < ROUNDS; i++)
        assert_int_equal(green_chan_send(ch, &i, 0), 0);
    green_event_t ev;
    green_event_init(&ev);
    green_event_set(&ev);
    green_future_t f;
    green_future_init(&f);
    green_future_set(&f, &f);
    green_t dead = green_spawn(return_arg, NULL);
    assert_int_equal(green_yield(), 0);
    struct pair p = socket_pair();
    long v, next = 0;
    green_clause_t c[5] = {
        {.ch = ch, .op = GREEN_CHAN_RECV, .elem = &v},
        {.op = GREEN_WAIT_EVENT, .event = &ev},
        {.op = GREEN_WAIT_FUTURE, .future = &f},
        {.op = GREEN_WAIT_DEAD, .g = dead},
        {.op = GREEN_WAIT_FD, .fd = p.a, .events = GREEN_WRITE},
    };
    int count[5] = {0};
    for (int i = 0; i < ROUNDS; i++) {
        int k = green_choose(c, 5, 0);
        assert_true(k >= 0 && k < 5);
        count[k]++;
        if (k == 0)
            assert_int_equal(v, next++); /* in order, each once */
    }
    for (int k = 0; k < 5; k++) {
        printf("  clause %d chosen %d times\n", k, count[k]);
        assert_true(count[k] > ROUNDS / 5 / 2);
    }
    assert_int_equal(green_chan_len(ch), (size_t)(ROUNDS - count[0]));
    assert_ptr_equal(c[2].value, &f);
    assert_int_equal(green_join(dead, NULL, 0), 0);
    green_close(p.a);
    green_close(p.b);
    while (green_chan_recv(ch, &v, 0) == 0)
        ;
    assert_int_equal(green_chan_free(ch), 0);
    assert_int_equal(green_event_destroy(&ev), 0);
    assert_int_equal(green_future_destroy(&f), 0);
    assert_all_clear();
}

/* A killed chooser gets ECANCELED (what is ready still completes); nothing stays armed;
 * a stray green_wake does not end the wait. */
static void test_kill_and_stray_wake(void **state)
{
    (void)state;
    green_event_t ev;
    green_event_init(&ev);
    struct pair p = socket_pair();
    struct worker wk = {.ret = NULL};
    green_event_init(&wk.go);
    green_t worker = green_spawn(wait_then_return, &wk);
    struct chooser s = {.n = 4, .deadline = -1};
    s.c[0] = (green_clause_t){.op = GREEN_WAIT_EVENT, .event = &ev};
    s.c[1] = (green_clause_t){.op = GREEN_WAIT_FD, .fd = p.a, .events = GREEN_READ};
    s.c[2] = (green_clause_t){.op = GREEN_WAIT_DEAD, .g = worker};
    s.c[3] = (green_clause_t){.op = GREEN_WAIT_SIGNAL, .signo = SIGUSR1};
    green_t g = green_spawn(do_choose, &s);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(green_wake(g, 0), 0);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(green_dead(g), 0); /* waits on */
    assert_int_equal(green_kill(g), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(s.r, -1);
    assert_int_equal(s.err, ECANCELED);
    /* let go of everything: the event has no waiter, the fd no watcher, worker no joiner */
    assert_int_equal(green_event_destroy(&ev), 0);
    assert_int_equal(stats().fds, 0);
    assert_int_equal(green_event_set(&wk.go), 0);
    assert_int_equal(green_join(worker, NULL, -1), 0);
    assert_int_equal(green_event_destroy(&wk.go), 0);
    green_close(p.a);
    green_close(p.b);
    assert_all_clear();
}

/* A shared-stack chooser: its records live on the heap, its stack moves meanwhile. */
static void test_shared_stack_chooser(void **state)
{
    (void)state;
    green_event_t ev;
    green_event_init(&ev);
    struct pair p = socket_pair();
    struct chooser *s = calloc(1, sizeof *s);
    s->n = 2;
    s->deadline = green_after(FAR);
    s->c[0] = (green_clause_t){.op = GREEN_WAIT_EVENT, .event = &ev};
    s->c[1] = (green_clause_t){.op = GREEN_WAIT_FD, .fd = p.a, .events = GREEN_READ};
    green_attr_t shared = {.stack_mode = GREEN_STACK_SHARED};
    green_t a = green_spawn_attr(do_choose, s, &shared);
    green_t b = green_spawn_attr(sleep_then_return, NULL, &shared); /* takes the stack */
    green_t w = green_spawn(write_one, (void *)(intptr_t)p.b);
    assert_int_equal(green_join(a, NULL, -1), 0);
    assert_int_equal(s->r, 1);
    assert_int_equal(s->c[1].revents, GREEN_READ);
    assert_int_equal(green_join(b, NULL, -1), 0);
    assert_int_equal(green_join(w, NULL, -1), 0);
    free(s);
    green_close(p.a);
    green_close(p.b);
    assert_int_equal(green_event_destroy(&ev), 0);
    assert_all_clear();
}

/* green_dump says what a chooser waits on. */
static void test_dump_shows_choose(void **state)
{
    (void)state;
    if (under_valgrind())
        skip(); /* libunwind's probes of the stack read bytes memcheck calls undefined */
    /* the first dump loads libunwind (dlopen), whose own pipe then stays open: the fds
     * are counted from there */
    FILE *null = fopen("/dev/null", "w");
    assert_non_null(null);
    assert_int_equal(green_dump(null), 0);
    fclose(null);
    open_fds_at_start = open_fds();
    green_event_t ev;
    green_event_init(&ev);
    struct chooser s = {.n = 2, .deadline = -1};
    s.c[0] = (green_clause_t){.op = GREEN_WAIT_EVENT, .event = &ev};
    s.c[1] = (green_clause_t){.op = GREEN_WAIT_EVENT, .event = &ev};
    green_t g = green_spawn(do_choose, &s);
    assert_int_equal(green_yield(), 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(green_dump(f), 0);
    fclose(f);
    assert_non_null(strstr(buf, "on=choose clauses=2"));
    free(buf);
    green_event_set(&ev);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_true(s.r == 0 || s.r == 1);
    assert_int_equal(green_event_destroy(&ev), 0);
    assert_all_clear();
}

/* ======================================================================== */
/*  Across OS threads                                                       */
/* ======================================================================== */

struct remote {
    green_event_t *ev;
    green_chan_t *ch;
    green_chan_t *ack;  /* the chooser's go-ahead for the next round */
    int rounds;
};

/* A plain pthread: sets the event after a while. */
static void *remote_set(void *arg)
{
    struct remote *x = arg;
    sleep_os_ms(20);
    green_event_set(x->ev);
    return NULL;
}

/* Another thread: every round, sends on the channel and sets the event (one round in
 * two the other way round). */
static void *remote_both(void *arg)
{
    struct remote *x = arg;
    for (long i = 0; i < x->rounds; i++) {
        char go;
        if (i % 2)
            green_event_set(x->ev);
        green_chan_send(x->ch, &i, -1);
        if (i % 2 == 0)
            green_event_set(x->ev);
        green_chan_recv(x->ack, &go, -1);
    }
    return NULL;
}

static void test_wake_from_other_threads(void **state)
{
    (void)state;
    green_event_t ev;
    green_event_init(&ev);
    green_chan_t *ch = green_chan_new(sizeof(long), 1);
    long v;
    green_clause_t c[2] = {
        {.ch = ch, .op = GREEN_CHAN_RECV, .elem = &v},
        {.op = GREEN_WAIT_EVENT, .event = &ev},
    };
    /* a plain pthread's event set wakes the chooser on its hub */
    struct remote x = {.ev = &ev};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, remote_set, &x), 0);
    assert_int_equal(green_choose(c, 2, green_after(FAR)), 1);
    pthread_join(t, NULL);

    /* both come from the other side, in either order: exactly one clause completes
     * per call, and every element is received exactly once */
    enum { ROUNDS = 2000 / GREEN_TEST_SCALE + 10 };
    green_chan_t *ack = green_chan_new(1, 1);
    x = (struct remote){.ev = &ev, .ch = ch, .ack = ack, .rounds = ROUNDS};
    assert_int_equal(pthread_create(&t, NULL, remote_both, &x), 0);
    long next = 0;
    int by_event = 0;
    for (int i = 0; i < ROUNDS; i++) {
        green_event_clear(&ev);
        int k = green_choose(c, 2, green_after(FAR));
        assert_true(k == 0 || k == 1);
        if (k == 1) {
            by_event++;
            assert_int_equal(green_chan_recv(ch, &v, green_after(FAR)), 0); /* still there */
        }
        assert_int_equal(v, next++);
        assert_int_equal(green_chan_send(ack, "g", green_after(FAR)), 0);
    }
    pthread_join(t, NULL);
    printf("  %d of %d rounds ended by the event\n", by_event, ROUNDS);
    assert_int_equal(green_chan_len(ch), 0);
    assert_int_equal(green_chan_free(ch), 0);
    assert_int_equal(green_event_destroy(&ev), 0);
    assert_int_equal(green_chan_free(ack), 0);
    assert_all_clear();
}

static int setup(void **state)
{
    (void)state;
    green_yield(); /* the hub's own fds exist before we count */
    open_fds_at_start = open_fds();
    return 0;
}

/* ======================================================================== */
/*  A green thread of another hub (this starts a group of hubs: it comes last) */
/* ======================================================================== */

static void test_dead_clause_across_hubs(void **state)
{
    (void)state;
    assert_true(green_hubs_start(2) >= 2);
    green_attr_t on2 = {.hub = 2};
    green_event_t never;
    green_event_init(&never);
    struct worker wk = {.ret = (void *)9};
    green_event_init(&wk.go);
    green_t worker = green_spawn_attr(wait_then_return, &wk, &on2);
    assert_non_null(worker);
    struct chooser s = {.n = 2, .deadline = green_after(FAR)};
    s.c[0] = (green_clause_t){.op = GREEN_WAIT_EVENT, .event = &never};
    s.c[1] = (green_clause_t){.op = GREEN_WAIT_DEAD, .g = worker, .err = -1};
    green_t g = green_spawn(do_choose, &s);
    settle();
    assert_int_equal(green_dead(g), 0); /* waiting */
    /* while the choose waits for it, it is worker's joiner (on worker's hub) */
    assert_fails_with(green_join(worker, NULL, green_after(FAR)), EINVAL);
    assert_int_equal(green_event_set(&wk.go), 0); /* worker ends, on hub 2 */
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(s.r, 1);
    assert_int_equal(s.c[1].err, 0);
    /* not reaped: ready at once again, and the caller joins it */
    assert_int_equal(green_choose(s.c, 2, 0), 1);
    void *res;
    assert_int_equal(green_join(worker, &res, green_after(FAR)), 0);
    assert_ptr_equal(res, (void *)9);
    /* joined: a stale handle */
    assert_fails_with(green_choose(s.c, 2, 0), ESRCH);

    /* a deadline, then a kill of the chooser: each lets go of the watch, and the green
     * thread is joinable again by anyone */
    green_event_init(&wk.go);
    wk.ret = (void *)7;
    worker = green_spawn_attr(wait_then_return, &wk, &on2);
    s.c[1].g = worker;
    int64_t t0 = green_now();
    assert_fails_with(green_choose(s.c, 2, green_after(30)), ETIMEDOUT);
    assert_true(green_now() - t0 >= 29);
    s.deadline = -1;
    g = green_spawn(do_choose, &s);
    settle();
    assert_int_equal(green_dead(g), 0);
    assert_int_equal(green_kill(g), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(s.r, -1);
    assert_int_equal(s.err, ECANCELED);
    assert_int_equal(green_event_set(&wk.go), 0);
    assert_int_equal(green_join(worker, &res, green_after(FAR)), 0);
    assert_ptr_equal(res, (void *)7);

    /* a detached one: green_join's rules (EINVAL) */
    green_event_init(&wk.go);
    worker = green_spawn_attr(wait_then_return, &wk, &on2);
    assert_int_equal(green_detach(worker), 0);
    settle(); /* hub 2 has carried the detach out */
    s.c[1].g = worker;
    assert_fails_with(green_choose(s.c, 2, green_after(FAR)), EINVAL);
    assert_int_equal(green_event_set(&wk.go), 0);

    /* two green threads of hub 2, the later one ends first */
    struct worker wa = {.ret = (void *)1}, wb = {.ret = (void *)2};
    green_event_init(&wa.go);
    green_event_init(&wb.go);
    green_t a = green_spawn_attr(wait_then_return, &wa, &on2);
    green_t b = green_spawn_attr(wait_then_return, &wb, &on2);
    s.c[0] = (green_clause_t){.op = GREEN_WAIT_DEAD, .g = a};
    s.c[1] = (green_clause_t){.op = GREEN_WAIT_DEAD, .g = b};
    s.deadline = green_after(FAR);
    g = green_spawn(do_choose, &s);
    settle();
    assert_int_equal(green_event_set(&wb.go), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(s.r, 1);
    assert_int_equal(green_event_set(&wa.go), 0);
    assert_int_equal(green_join(a, &res, green_after(FAR)), 0);
    assert_ptr_equal(res, (void *)1);
    assert_int_equal(green_join(b, &res, green_after(FAR)), 0);
    assert_ptr_equal(res, (void *)2);

    /* the other way round: a chooser on hub 2, a green thread of ours (hub 1) */
    green_event_init(&wa.go);
    wa.ret = (void *)3;
    a = green_spawn(wait_then_return, &wa);
    s.n = 1;
    s.c[0] = (green_clause_t){.op = GREEN_WAIT_DEAD, .g = a, .err = -1};
    s.r = -5;
    g = green_spawn_attr(do_choose, &s, &on2);
    settle();
    assert_fails_with(green_join(a, NULL, 0), EINVAL); /* the chooser is its joiner */
    assert_int_equal(green_event_set(&wa.go), 0);
    assert_int_equal(green_join(g, NULL, green_after(FAR)), 0);
    assert_int_equal(s.r, 0);
    assert_int_equal(s.c[0].err, 0);
    assert_int_equal(green_join(a, &res, 0), 0);
    assert_ptr_equal(res, (void *)3);

    assert_int_equal(green_event_destroy(&never), 0);
    assert_int_equal(green_event_destroy(&wa.go), 0);
    assert_int_equal(green_event_destroy(&wb.go), 0);
    assert_hub_idle(); /* (hub 2's OS thread has fds of its own: not all_clear) */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_clauses),
        cmocka_unit_test(test_event_clause),
        cmocka_unit_test(test_future_clause),
        cmocka_unit_test(test_dead_clause),
        cmocka_unit_test(test_fd_clause),
        cmocka_unit_test(test_signal_clause),
        cmocka_unit_test(test_signal_not_lost_when_another_clause_wins),
        cmocka_unit_test(test_fair_among_kinds),
        cmocka_unit_test(test_kill_and_stray_wake),
        cmocka_unit_test(test_shared_stack_chooser),
        cmocka_unit_test(test_dump_shows_choose),
        cmocka_unit_test(test_wake_from_other_threads),
        cmocka_unit_test(test_dead_clause_across_hubs),
    };
    return cmocka_run_group_tests_name("choose", tests, setup, NULL);
}
