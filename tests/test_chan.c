/* test_chan.c — channels and green_choose (after gevent's test__queue.py and Go's
 * chan_test.go): rendezvous and buffered channels, FIFO waiters, deadlines, close,
 * kills that race with hand-overs, select fairness and exclusivity, shared-stack green
 * threads, and channels between OS threads — other hubs and plain pthreads. */
#include "green_test.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Let every ready green thread run until none is left ready. */
static void settle(void)
{
    for (int i = 0; i < 100 && stats().ready; i++)
        assert_int_equal(green_yield(), 0);
}

/* One channel operation run by a green thread, and what came of it. */
struct op {
    green_chan_t *ch;
    long val;               /* sent, or received */
    int64_t deadline;
    int r, err, done;
    int64_t ended;          /* green_now() when the call returned */
};

static void *do_recv(void *arg)
{
    struct op *o = arg;
    errno = 0;
    long v = -1; /* into our own stack, as a user writes it */
    o->r = green_chan_recv(o->ch, &v, o->deadline);
    o->err = errno;
    o->val = v;
    o->ended = green_now();
    o->done = 1;
    return NULL;
}

static void *do_send(void *arg)
{
    struct op *o = arg;
    long v = o->val;
    errno = 0;
    o->r = green_chan_send(o->ch, &v, o->deadline);
    o->err = errno;
    o->ended = green_now();
    o->done = 1;
    return NULL;
}

static green_t spawn_op(green_fn fn, struct op *o, green_chan_t *ch, long val, int64_t deadline)
{
    *o = (struct op){.ch = ch, .val = val, .deadline = deadline, .r = 99};
    green_t g = green_spawn(fn, o);
    assert_non_null(g);
    return g;
}

static long recv_long(green_chan_t *ch, int64_t deadline)
{
    long v = -1;
    assert_int_equal(green_chan_recv(ch, &v, deadline), 0);
    return v;
}

static void send_long(green_chan_t *ch, long v, int64_t deadline)
{
    assert_int_equal(green_chan_send(ch, &v, deadline), 0);
}

/* ======================================================================== */
/*  Deadlock (must run while the process has a single thread)               */
/* ======================================================================== */

extern char __libc_single_threaded __attribute__((weak));

/* A root blocked on a channel that nothing else can reach gets EDEADLK, as gevent
 * raises LoopExit: nothing else is ready, no timer, no fd, no other OS thread. (Once
 * the process has started threads, any of them could hold the channel: no verdict.) */
static void test_deadlock_is_reported(void **state)
{
    (void)state;
    if (&__libc_single_threaded == NULL || !__libc_single_threaded)
        skip();
    green_chan_t *ch = green_chan_new(sizeof(long), 0);
    long v = 0;
    assert_fails_with(green_chan_recv(ch, &v, -1), EDEADLK);
    assert_fails_with(green_chan_send(ch, &v, -1), EDEADLK);
    green_clause_t c[2] = {{.ch = ch, .op = GREEN_CHAN_RECV, .elem = &v, .err = 0},
                           {.ch = ch, .op = GREEN_CHAN_SEND, .elem = &v, .err = 0}};
    assert_fails_with(green_choose(c, 2, -1), EDEADLK);
    /* nothing stayed queued */
    assert_int_equal(green_chan_free(ch), 0);
    /* with a deadline it is just a timeout */
    ch = green_chan_new(sizeof(long), 1);
    assert_fails_with(green_chan_recv(ch, &v, green_after(20)), ETIMEDOUT);
    assert_int_equal(green_chan_free(ch), 0);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Basics                                                                  */
/* ======================================================================== */

/* Clauses written by position, as before green_choose took other kinds than channel
 * operations, still compile and work (gcc's -Wextra asks for the newer fields then;
 * designated initializers need none). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static void test_positional_clauses(void **state)
{
    (void)state;
    green_chan_t *ch = green_chan_new(sizeof(long), 1);
    long v = 5, got = 0;
    green_clause_t c[2] = {{ch, GREEN_CHAN_SEND, &v, -1}, {ch, GREEN_CHAN_RECV, &got, -1}};
    assert_int_equal(green_choose(c, 2, 0), 0); /* only the send can complete */
    assert_int_equal(c[0].err, 0);
    assert_int_equal(green_choose(c, 2, 0), 1); /* only the receive can */
    assert_int_equal(c[1].err, 0);
    assert_int_equal(got, 5);
    assert_int_equal(green_chan_free(ch), 0);
    assert_hub_idle();
}
#pragma GCC diagnostic pop

static void test_bad_arguments(void **state)
{
    (void)state;
    assert_null_with(green_chan_new(0, 4), EINVAL);
    assert_null_with(green_chan_new(SIZE_MAX / 2, 4), ENOMEM); /* elem_size * capacity overflows */

    green_chan_t *ch = green_chan_new(sizeof(long), 2);
    assert_non_null(ch);
    long v = 1;
    assert_fails_with(green_chan_send(NULL, &v, -1), EINVAL);
    assert_fails_with(green_chan_send(ch, NULL, -1), EINVAL);
    assert_fails_with(green_chan_recv(NULL, &v, -1), EINVAL);
    assert_fails_with(green_chan_recv(ch, NULL, -1), EINVAL);
    assert_fails_with(green_chan_close(NULL), EINVAL);
    assert_fails_with(green_chan_free(NULL), EINVAL);
    errno = 0;
    assert_int_equal(green_chan_len(NULL), 0);
    assert_int_equal(errno, EINVAL);

    green_clause_t c[2] = {{.ch = ch, .op = GREEN_CHAN_RECV, .elem = &v, .err = 0},
                           {.ch = ch, .op = GREEN_CHAN_SEND, .elem = &v, .err = 0}};
    assert_fails_with(green_choose(NULL, 1, -1), EINVAL);
    assert_fails_with(green_choose(c, 0, -1), EINVAL);
    assert_fails_with(green_choose(c, -1, -1), EINVAL);
    c[1].op = 7;
    assert_fails_with(green_choose(c, 2, -1), EINVAL);
    c[1].op = GREEN_CHAN_SEND;
    c[1].ch = NULL;
    assert_fails_with(green_choose(c, 2, -1), EINVAL);
    c[1].ch = ch;
    c[1].elem = NULL;
    assert_fails_with(green_choose(c, 2, -1), EINVAL);
    assert_int_equal(green_chan_len(ch), 0); /* nothing happened */
    assert_int_equal(green_chan_free(ch), 0);
    assert_hub_idle();
}

/* A buffered channel: sends complete at once until it is full; elements come out in
 * order, copied (the sender's variable can change right after). */
static void test_buffered_fifo(void **state)
{
    (void)state;
    green_chan_t *ch = green_chan_new(sizeof(long), 4);
    assert_int_equal(green_chan_len(ch), 0);
    for (long i = 0; i < 4; i++) {
        long v = 100 + i;
        assert_int_equal(green_chan_send(ch, &v, 0), 0);
        v = -1;
        assert_int_equal(green_chan_len(ch), (size_t)i + 1);
    }
    long v = 5;
    assert_fails_with(green_chan_send(ch, &v, 0), ETIMEDOUT); /* full: 0 only polls */
    /* wrap around the ring a few times */
    for (long i = 0; i < 40; i++) {
        assert_int_equal(recv_long(ch, 0), 100 + i);
        send_long(ch, 104 + i, 0);
        assert_int_equal(green_chan_len(ch), 4);
    }
    for (long i = 0; i < 4; i++)
        assert_int_equal(recv_long(ch, 0), 140 + i);
    assert_fails_with(green_chan_recv(ch, &v, 0), ETIMEDOUT);
    assert_int_equal(v, 5); /* untouched */
    assert_int_equal(green_chan_free(ch), 0);
    assert_hub_idle();
}

/* Elements of any size are copied whole, in both directions, waiting or not. */
struct blob {
    unsigned char bytes[1000];
};

static void fill(struct blob *b, int seed)
{
    for (size_t i = 0; i < sizeof b->bytes; i++)
        b->bytes[i] = (unsigned char)(seed * 31 + (int)i);
}

static int check(const struct blob *b, int seed)
{
    struct blob want;
    fill(&want, seed);
    return memcmp(b, &want, sizeof want) == 0;
}

static void *blob_receiver(void *arg)
{
    green_chan_t *ch = arg;
    for (int i = 0; i < 50; i++) {
        struct blob b;
        if (green_chan_recv(ch, &b, -1) != 0 || !check(&b, i))
            return (void *)1;
    }
    return NULL;
}

static void *blob_sender(void *arg)
{
    green_chan_t *ch = arg;
    for (int i = 0; i < 50; i++) {
        struct blob b;
        fill(&b, i);
        if (green_chan_send(ch, &b, -1) != 0)
            return (void *)1;
    }
    return NULL;
}

static void test_large_elements(void **state)
{
    (void)state;
    for (size_t cap = 0; cap <= 3; cap += 3) {
        green_chan_t *ch = green_chan_new(sizeof(struct blob), cap);
        /* receiver first (it waits), then the other way round */
        green_t r = green_spawn(blob_receiver, ch);
        green_t s = green_spawn(blob_sender, ch);
        void *rr, *rs;
        assert_int_equal(green_join(r, &rr, -1), 0);
        assert_int_equal(green_join(s, &rs, -1), 0);
        assert_null(rr);
        assert_null(rs);
        s = green_spawn(blob_sender, ch);
        r = green_spawn(blob_receiver, ch);
        assert_int_equal(green_join(s, &rs, -1), 0);
        assert_int_equal(green_join(r, &rr, -1), 0);
        assert_null(rr);
        assert_null(rs);
        assert_int_equal(green_chan_free(ch), 0);
    }
    assert_hub_idle();
}

/* Capacity 0: a send completes only when a receiver takes the element. */
static void test_rendezvous(void **state)
{
    (void)state;
    green_chan_t *ch = green_chan_new(sizeof(long), 0);
    long v = 7;
    assert_fails_with(green_chan_send(ch, &v, 0), ETIMEDOUT); /* nobody receives */
    assert_fails_with(green_chan_recv(ch, &v, 0), ETIMEDOUT); /* nobody sends */

    /* a sender waits until the receiver comes */
    struct op s;
    green_t gs = spawn_op(do_send, &s, ch, 42, -1);
    settle();
    assert_int_equal(s.done, 0);
    assert_int_equal(green_chan_len(ch), 0); /* nothing is buffered, ever */
    assert_int_equal(recv_long(ch, 0), 42);  /* the waiting sender makes it ready */
    assert_int_equal(s.done, 0);             /* it has not run yet ... */
    assert_int_equal(green_join(gs, NULL, -1), 0);
    assert_int_equal(s.r, 0);                /* ... but its send has completed */

    /* a receiver waits until the sender comes */
    struct op r;
    green_t gr = spawn_op(do_recv, &r, ch, 0, -1);
    settle();
    assert_int_equal(r.done, 0);
    send_long(ch, 43, 0);
    assert_int_equal(green_join(gr, NULL, -1), 0);
    assert_int_equal(r.r, 0);
    assert_int_equal(r.val, 43);

    /* the root blocks as a sender too */
    gr = spawn_op(do_recv, &r, ch, 0, -1);
    send_long(ch, 44, -1);
    assert_int_equal(green_join(gr, NULL, -1), 0);
    assert_int_equal(r.val, 44);
    assert_int_equal(green_chan_free(ch), 0);
    assert_hub_idle();
}

/* ======================================================================== */
/*  FIFO among waiters                                                      */
/* ======================================================================== */

#define NWAIT 20

static void test_fifo_receivers(void **state)
{
    (void)state;
    green_chan_t *ch = green_chan_new(sizeof(long), 2);
    struct op r[NWAIT];
    green_t g[NWAIT];
    for (int i = 0; i < NWAIT; i++) {
        g[i] = spawn_op(do_recv, &r[i], ch, 0, -1);
        assert_int_equal(green_yield(), 0); /* so they queue in this order */
    }
    for (long i = 0; i < NWAIT; i++)
        send_long(ch, i, 0); /* each goes straight to the first one waiting */
    assert_int_equal(green_chan_len(ch), 0);
    assert_int_equal(green_joinall(g, NWAIT, -1), 0);
    for (int i = 0; i < NWAIT; i++) {
        assert_int_equal(r[i].r, 0);
        assert_int_equal(r[i].val, i);
    }
    assert_int_equal(green_chan_free(ch), 0);
    assert_hub_idle();
}

static void test_fifo_senders(void **state)
{
    (void)state;
    for (size_t cap = 0; cap <= 3; cap += 3) {
        green_chan_t *ch = green_chan_new(sizeof(long), cap);
        for (long i = 0; i < (long)cap; i++)
            send_long(ch, 1000 + i, 0); /* fill the buffer first */
        struct op s[NWAIT];
        green_t g[NWAIT];
        for (int i = 0; i < NWAIT; i++) {
            g[i] = spawn_op(do_send, &s[i], ch, i, -1);
            assert_int_equal(green_yield(), 0);
        }
        settle();
        assert_int_equal(green_chan_len(ch), cap);
        for (long i = 0; i < (long)cap; i++)
            assert_int_equal(recv_long(ch, 0), 1000 + i);
        for (long i = 0; i < NWAIT; i++)
            assert_int_equal(recv_long(ch, 0), i); /* the buffer refills in waiting order */
        assert_int_equal(green_joinall(g, NWAIT, -1), 0);
        for (int i = 0; i < NWAIT; i++)
            assert_int_equal(s[i].r, 0);
        assert_int_equal(green_chan_free(ch), 0);
    }
    assert_hub_idle();
}

/* ======================================================================== */
/*  Deadlines                                                               */
/* ======================================================================== */

static void test_deadlines(void **state)
{
    (void)state;
    green_chan_t *ch = green_chan_new(sizeof(long), 1);
    long v = 0;
    int64_t t0 = green_now();
    assert_fails_with(green_chan_recv(ch, &v, green_after(50)), ETIMEDOUT);
    int64_t el = green_now() - t0;
    assert_true(el >= 50);
    assert_true(el < 50 + LATE_MS);

    send_long(ch, 1, 0);
    t0 = green_now();
    errno = 0;
    v = 2;
    assert_int_equal(green_chan_send(ch, &v, green_after(50)), -1);
    assert_int_equal(errno, ETIMEDOUT);
    el = green_now() - t0;
    assert_true(el >= 50);
    assert_true(el < 50 + LATE_MS);
    /* the timed-out send left nothing behind */
    assert_int_equal(green_chan_len(ch), 1);
    assert_int_equal(recv_long(ch, 0), 1);
    assert_fails_with(green_chan_recv(ch, &v, 0), ETIMEDOUT);

    /* a deadline already past only polls */
    assert_fails_with(green_chan_recv(ch, &v, green_now() - 5), ETIMEDOUT);

    /* a scoped deadline (gevent.Timeout) applies to channel calls too */
    t0 = green_now(); /* before the push: the scope's deadline is push time + 30 */
    assert_int_equal(green_timeout_push(30), 0);
    assert_fails_with(green_chan_recv(ch, &v, -1), ETIMEDOUT);
    assert_true(green_now() - t0 >= 30);
    assert_int_equal(green_timeout_pop(), 0);

    /* green threads time out independently, each at its own deadline */
    struct op r[3];
    green_t g[3];
    for (int i = 0; i < 3; i++)
        g[i] = spawn_op(do_recv, &r[i], ch, 0, green_after(20 * (3 - i)));
    assert_int_equal(green_joinall(g, 3, -1), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].r, -1);
        assert_int_equal(r[i].err, ETIMEDOUT);
        assert_true(r[i].ended >= r[i].deadline);
    }
    assert_int_equal(green_chan_free(ch), 0);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Close                                                                   */
/* ======================================================================== */

static void test_close_wakes_receivers(void **state)
{
    (void)state;
    green_chan_t *ch = green_chan_new(sizeof(long), 4);
    struct op r[NWAIT];
    green_t g[NWAIT];
    for (int i = 0; i < NWAIT; i++)
        g[i] = spawn_op(do_recv, &r[i], ch, 0, -1);
    settle();
    assert_int_equal(green_chan_close(ch), 0);
    assert_int_equal(green_joinall(g, NWAIT, -1), 0);
    for (int i = 0; i < NWAIT; i++) {
        assert_int_equal(r[i].r, -1);
        assert_int_equal(r[i].err, EPIPE);
    }
    assert_fails_with(green_chan_close(ch), EPIPE); /* twice */
    long v = 1;
    assert_fails_with(green_chan_send(ch, &v, -1), EPIPE); /* later senders */
    assert_fails_with(green_chan_recv(ch, &v, -1), EPIPE); /* later receivers */
    assert_int_equal(green_chan_free(ch), 0);
    assert_hub_idle();
}

static void test_close_wakes_senders(void **state)
{
    (void)state;
    for (size_t cap = 0; cap <= 2; cap += 2) {
        green_chan_t *ch = green_chan_new(sizeof(long), cap);
        for (long i = 0; i < (long)cap; i++)
            send_long(ch, 500 + i, 0);
        struct op s[NWAIT];
        green_t g[NWAIT];
        for (int i = 0; i < NWAIT; i++)
            g[i] = spawn_op(do_send, &s[i], ch, i, -1);
        settle();
        assert_int_equal(green_chan_close(ch), 0);
        assert_int_equal(green_joinall(g, NWAIT, -1), 0);
        for (int i = 0; i < NWAIT; i++) {
            assert_int_equal(s[i].r, -1);
            assert_int_equal(s[i].err, EPIPE);
        }
        /* receivers drain what was buffered (not what waiting senders held), then EPIPE */
        assert_int_equal(green_chan_len(ch), cap);
        for (long i = 0; i < (long)cap; i++)
            assert_int_equal(recv_long(ch, -1), 500 + i);
        long v;
        assert_fails_with(green_chan_recv(ch, &v, -1), EPIPE);
        assert_int_equal(green_chan_free(ch), 0);
    }
    assert_hub_idle();
}

/* Receivers blocked on an empty channel see the close even when it comes from another
 * green thread while they wait with deadlines. */
static void *close_later(void *arg)
{
    green_sleep(20);
    green_chan_close(arg);
    return NULL;
}

static void test_close_while_waiting_with_deadline(void **state)
{
    (void)state;
    green_chan_t *ch = green_chan_new(sizeof(long), 0);
    green_t c = green_spawn(close_later, ch);
    long v;
    assert_fails_with(green_chan_recv(ch, &v, green_after(5000)), EPIPE);
    assert_int_equal(green_join(c, NULL, -1), 0);
    assert_int_equal(green_chan_free(ch), 0);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Kills and hand-overs                                                    */
/* ======================================================================== */

/* A killed waiter leaves the queue; the elements go to the others, none lost. */
static void test_killed_receiver_is_removed(void **state)
{
    (void)state;
    green_chan_t *ch = green_chan_new(sizeof(long), 0);
    struct op r[3];
    green_t g[3];
    for (int i = 0; i < 3; i++) {
        g[i] = spawn_op(do_recv, &r[i], ch, 0, -1);
        assert_int_equal(green_yield(), 0);
    }
    assert_int_equal(green_kill(g[1]), 0);
    settle();
    assert_int_equal(r[1].r, -1);
    assert_int_equal(r[1].err, ECANCELED);
    send_long(ch, 10, 0);
    send_long(ch, 11, 0);
    long v;
    assert_fails_with(green_chan_send(ch, &v, 0), ETIMEDOUT); /* nobody else waits */
    assert_int_equal(green_joinall(g, 3, -1), 0);
    assert_int_equal(r[0].val, 10);
    assert_int_equal(r[2].val, 11);
    assert_int_equal(green_chan_free(ch), 0);
    assert_hub_idle();
}

/* A sender killed while it waits takes its element with it. */
static void test_killed_sender_leaves_nothing(void **state)
{
    (void)state;
    for (size_t cap = 0; cap <= 1; cap++) {
        green_chan_t *ch = green_chan_new(sizeof(long), cap);
        if (cap)
            send_long(ch, 99, 0);
        struct op s[3];
        green_t g[3];
        for (int i = 0; i < 3; i++) {
            g[i] = spawn_op(do_send, &s[i], ch, i, -1);
            assert_int_equal(green_yield(), 0);
        }
        assert_int_equal(green_kill(g[1]), 0);
        settle();
        assert_int_equal(s[1].r, -1);
        assert_int_equal(s[1].err, ECANCELED);
        if (cap)
            assert_int_equal(recv_long(ch, 0), 99);
        assert_int_equal(recv_long(ch, 0), 0);
        assert_int_equal(recv_long(ch, 0), 2);
        long v;
        assert_fails_with(green_chan_recv(ch, &v, 0), ETIMEDOUT); /* element 1 is gone */
        assert_int_equal(green_joinall(g, 3, -1), 0);
        assert_int_equal(s[0].r, 0);
        assert_int_equal(s[2].r, 0);
        assert_int_equal(green_chan_len(ch), 0);
        assert_int_equal(green_chan_free(ch), 0);
    }
    assert_hub_idle();
}

static void *send_79(void *arg)
{
    long v = 79;
    return (void *)(intptr_t)green_chan_send(arg, &v, 0);
}

static void *recv_80(void *arg)
{
    long v = 0;
    return (void *)(intptr_t)(green_chan_recv(arg, &v, 0) == 0 && v == 80);
}

/* Killed after the hand-over but before it ran: the operation had completed, so it
 * succeeds — the element is neither lost nor delivered twice. */
static void test_kill_after_handover_keeps_it(void **state)
{
    (void)state;
    green_chan_t *ch = green_chan_new(sizeof(long), 0);
    void *res;
    struct op r;
    green_t g = spawn_op(do_recv, &r, ch, 0, -1);
    settle();
    send_long(ch, 77, 0);     /* delivered into its waiter record, woken */
    assert_int_equal(green_kill(g), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(r.r, 0);
    assert_int_equal(r.val, 77);

    struct op s;
    g = spawn_op(do_send, &s, ch, 78, -1);
    settle();
    assert_int_equal(recv_long(ch, 0), 78); /* taken from its waiter record */
    assert_int_equal(green_kill(g), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(s.r, 0);
    long v;
    assert_fails_with(green_chan_recv(ch, &v, 0), ETIMEDOUT); /* not delivered twice */

    /* timed out, but served before it ran: the hand-over counts. Both timers fall due
     * in one poll; the counterpart's is earlier, so it runs first and serves. */
    g = spawn_op(do_recv, &r, ch, 0, green_after(100));
    green_t s2 = green_spawn_later(30, send_79, ch);
    settle();
    sleep_os_ms(150);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(green_join(s2, NULL, -1), 0);
    assert_int_equal(r.r, 0);
    assert_int_equal(r.val, 79);
    g = spawn_op(do_send, &s, ch, 80, green_after(100));
    green_t r2 = green_spawn_later(30, recv_80, ch);
    settle();
    sleep_os_ms(150);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(green_join(r2, &res, -1), 0);
    assert_int_equal(s.r, 0);
    assert_ptr_equal(res, (void *)1);
    assert_int_equal(green_chan_free(ch), 0);
    assert_hub_idle();
}

/* A killed green thread's later channel calls fail with ECANCELED when they would have
 * to wait; one that completes at once still does (like green_join of a dead one). */
static void *killed_then_uses_channel(void *arg)
{
    green_chan_t *ch = arg;
    green_kill(green_current());
    long v = 5;
    int r1 = green_chan_send(ch, &v, -1); /* room in the buffer */
    int e2 = 0, e3 = 0;
    if (green_chan_send(ch, &v, -1) != 0) /* full: would wait */
        e2 = errno;
    if (green_chan_send(ch, &v, 0) != 0)
        e3 = errno;
    return (void *)(intptr_t)(r1 == 0 && e2 == ECANCELED && e3 == ECANCELED);
}

static void test_cancelled_caller(void **state)
{
    (void)state;
    green_chan_t *ch = green_chan_new(sizeof(long), 1);
    green_t g = green_spawn(killed_then_uses_channel, ch);
    void *ok;
    assert_int_equal(green_join(g, &ok, -1), 0);
    assert_ptr_equal(ok, (void *)1);
    assert_int_equal(green_chan_len(ch), 1);
    assert_int_equal(green_chan_free(ch), 0);
    assert_hub_idle();
}

/* green_wake on a green thread waiting in a channel call does not end it. */
static void test_stray_wake_keeps_waiting(void **state)
{
    (void)state;
    green_chan_t *ch = green_chan_new(sizeof(long), 0);
    struct op r;
    green_t g = spawn_op(do_recv, &r, ch, 0, -1);
    settle();
    assert_int_equal(green_wake(g, 0), 0);
    settle();
    assert_int_equal(r.done, 0);
    send_long(ch, 5, 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(r.r, 0);
    assert_int_equal(r.val, 5);
    assert_int_equal(green_chan_free(ch), 0);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Freeing                                                                 */
/* ======================================================================== */

static void test_free_busy(void **state)
{
    (void)state;
    green_chan_t *ch = green_chan_new(sizeof(long), 0);
    struct op r;
    green_t g = spawn_op(do_recv, &r, ch, 0, -1);
    settle();
    assert_fails_with(green_chan_free(ch), EBUSY);
    assert_int_equal(green_kill(g), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(green_chan_free(ch), 0);

    /* a served waiter never touches the channel again: the sender may free it at once
     * (ASan and valgrind watch this) */
    for (size_t cap = 0; cap <= 1; cap++) {
        ch = green_chan_new(sizeof(long), cap);
        g = spawn_op(do_recv, &r, ch, 0, -1);
        settle();
        send_long(ch, 3, -1);
        assert_int_equal(green_chan_free(ch), 0);
        assert_int_equal(green_join(g, NULL, -1), 0);
        assert_int_equal(r.val, 3);
    }
    assert_hub_idle();
}

/* ======================================================================== */
/*  green_choose                                                            */
/* ======================================================================== */

/* Several clauses ready: each chosen about equally often (uniformly at random). */
static void test_choose_fair_among_ready(void **state)
{
    (void)state;
    enum { K = 3, ROUNDS = 3000 };
    green_chan_t *ch[K];
    for (int k = 0; k < K; k++) {
        ch[k] = green_chan_new(sizeof(long), ROUNDS);
        for (long i = 0; i < ROUNDS; i++)
            send_long(ch[k], k * 100000 + i, 0);
    }
    long got[K];
    green_clause_t c[K];
    for (int k = 0; k < K; k++)
        c[k] = (green_clause_t){.ch = ch[k], .op = GREEN_CHAN_RECV, .elem = &got[k], .err = -1};
    int count[K] = {0};
    for (int i = 0; i < ROUNDS; i++) {
        int k = green_choose(c, K, 0);
        assert_true(k >= 0 && k < K);
        assert_int_equal(c[k].err, 0);
        assert_int_equal(got[k], k * 100000 + count[k]); /* FIFO within a channel */
        count[k]++;
    }
    /* expectation 1000, standard deviation about 26: these bounds are 8 of them */
    for (int k = 0; k < K; k++) {
        assert_true(count[k] > 800);
        assert_true(count[k] < 1200);
        assert_int_equal(green_chan_len(ch[k]), (size_t)(ROUNDS - count[k]));
    }

    /* a mix of ready sends and receives: fair too */
    green_chan_t *out = green_chan_new(sizeof(long), ROUNDS);
    long one = 1;
    green_clause_t m[2] = {{.ch = ch[0], .op = GREEN_CHAN_RECV, .elem = &got[0], .err = 0},
                           {.ch = out, .op = GREEN_CHAN_SEND, .elem = &one, .err = 0}};
    int n[2] = {0, 0};
    for (int i = 0; i < 1000; i++)
        n[green_choose(m, 2, 0)]++;
    assert_true(n[0] > 400 && n[1] > 400);
    assert_int_equal(green_chan_len(out), (size_t)n[1]);
    for (int k = 0; k < K; k++)
        assert_int_equal(green_chan_free(ch[k]), 0);
    assert_int_equal(green_chan_free(out), 0);
    assert_hub_idle();
}

struct chooser {
    green_clause_t c[3];
    long got[3];
    int n;
    int64_t deadline;
    int r, err;
    int64_t elapsed;
};

static void *do_choose(void *arg)
{
    struct chooser *s = arg;
    int64_t t0 = green_now();
    errno = 0;
    long got[3] = {-1, -1, -1};
    for (int i = 0; i < s->n; i++)
        if (s->c[i].op == GREEN_CHAN_RECV)
            s->c[i].elem = &got[i]; /* our own stack, as a user writes it */
    s->r = green_choose(s->c, s->n, s->deadline);
    s->err = errno;
    memcpy(s->got, got, sizeof got);
    s->elapsed = green_now() - t0;
    return NULL;
}

/* Nothing ready: it waits on all; the first to complete wins, the rest are withdrawn
 * (their counterparts are not consumed). */
static void test_choose_waits_exactly_one(void **state)
{
    (void)state;
    green_chan_t *a = green_chan_new(sizeof(long), 0);
    green_chan_t *b = green_chan_new(sizeof(long), 1);
    struct chooser s = {.n = 2, .deadline = -1};
    s.c[0] = (green_clause_t){.ch = a, .op = GREEN_CHAN_RECV, .elem = NULL, .err = -1};
    s.c[1] = (green_clause_t){.ch = b, .op = GREEN_CHAN_RECV, .elem = NULL, .err = -1};
    green_t g = green_spawn(do_choose, &s);
    settle();
    /* a waiting rendezvous sender: it has a counterpart only once */
    struct op sa;
    green_t ga = spawn_op(do_send, &sa, a, 1, green_after(5000));
    settle();
    send_long(b, 2, 0); /* the chooser already fired on a: this one stays buffered */
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(green_join(ga, NULL, -1), 0);
    assert_int_equal(s.r, 0);
    assert_int_equal(s.c[0].err, 0);
    assert_int_equal(s.got[0], 1);
    assert_int_equal(s.got[1], -1);
    assert_int_equal(sa.r, 0);
    assert_int_equal(green_chan_len(b), 1);
    assert_int_equal(recv_long(b, 0), 2);

    /* send clauses: the one whose receiver comes first */
    struct op rb;
    s = (struct chooser){.n = 2, .deadline = -1};
    long x = 10, y = 20;
    s.c[0] = (green_clause_t){.ch = a, .op = GREEN_CHAN_SEND, .elem = &x, .err = -1};
    send_long(b, 0, 0); /* b full */
    s.c[1] = (green_clause_t){.ch = b, .op = GREEN_CHAN_SEND, .elem = &y, .err = -1};
    g = green_spawn(do_choose, &s);
    settle();
    green_t gb = spawn_op(do_recv, &rb, b, 0, -1); /* takes the 0, b gets room: y goes in */
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(green_join(gb, NULL, -1), 0);
    assert_int_equal(rb.val, 0);
    assert_int_equal(s.r, 1);
    assert_int_equal(recv_long(b, 0), 20);
    long v;
    assert_fails_with(green_chan_recv(a, &v, 0), ETIMEDOUT); /* x was withdrawn */
    assert_int_equal(green_chan_free(a), 0);
    assert_int_equal(green_chan_free(b), 0);
    assert_hub_idle();
}

static void test_choose_deadlines_and_close(void **state)
{
    (void)state;
    green_chan_t *a = green_chan_new(sizeof(long), 0);
    green_chan_t *b = green_chan_new(sizeof(long), 0);
    long va, vb = 1;
    green_clause_t c[2] = {{.ch = a, .op = GREEN_CHAN_RECV, .elem = &va, .err = -1},
                           {.ch = b, .op = GREEN_CHAN_SEND, .elem = &vb, .err = -1}};
    assert_fails_with(green_choose(c, 2, 0), ETIMEDOUT);
    int64_t t0 = green_now();
    assert_fails_with(green_choose(c, 2, green_after(40)), ETIMEDOUT);
    assert_true(green_now() - t0 >= 40);
    assert_true(green_now() - t0 < 40 + LATE_MS);

    /* a send and a receive on the same channel never match each other */
    green_clause_t same[2] = {{.ch = a, .op = GREEN_CHAN_SEND, .elem = &vb, .err = -1},
                              {.ch = a, .op = GREEN_CHAN_RECV, .elem = &va, .err = -1}};
    assert_fails_with(green_choose(same, 2, green_after(20)), ETIMEDOUT);

    /* a closed channel makes its clause ready, with EPIPE */
    assert_int_equal(green_chan_close(b), 0);
    assert_int_equal(green_choose(c, 2, -1), 1);
    assert_int_equal(c[1].err, EPIPE);
    c[1].op = GREEN_CHAN_RECV;
    assert_int_equal(green_choose(c, 2, 0), 1);
    assert_int_equal(c[1].err, EPIPE);

    /* and wakes a chooser waiting on it */
    struct chooser s = {.n = 2, .deadline = green_after(5000)};
    green_chan_t *d = green_chan_new(sizeof(long), 3);
    s.c[0] = (green_clause_t){.ch = a, .op = GREEN_CHAN_RECV, .elem = NULL, .err = -1};
    s.c[1] = (green_clause_t){.ch = d, .op = GREEN_CHAN_RECV, .elem = NULL, .err = -1};
    green_t g = green_spawn(do_choose, &s);
    settle();
    assert_int_equal(green_chan_close(d), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(s.r, 1);
    assert_int_equal(s.c[1].err, EPIPE);
    assert_true(s.elapsed < LATE_MS);

    /* killed while choosing */
    s = (struct chooser){.n = 1, .deadline = -1};
    s.c[0] = (green_clause_t){.ch = a, .op = GREEN_CHAN_RECV, .elem = NULL, .err = -1};
    g = green_spawn(do_choose, &s);
    settle();
    assert_int_equal(green_kill(g), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(s.r, -1);
    assert_int_equal(s.err, ECANCELED);
    assert_int_equal(green_chan_free(a), 0);
    assert_int_equal(green_chan_free(b), 0);
    assert_int_equal(green_chan_free(d), 0);
    assert_hub_idle();
}

/* Many clauses (more than fit in the call's own frame), some on the same channel. */
static void test_choose_many_clauses(void **state)
{
    (void)state;
    enum { N = 40 };
    green_chan_t *ch[N / 2];
    for (int i = 0; i < N / 2; i++)
        ch[i] = green_chan_new(sizeof(long), 1);
    long got[N];
    green_clause_t c[N];
    for (int i = 0; i < N; i++)
        c[i] = (green_clause_t){.ch = ch[i % (N / 2)], .op = GREEN_CHAN_RECV, .elem = &got[i],
                                .err = -1};
    send_long(ch[7], 700, 0);
    int k = green_choose(c, N, 0);
    assert_true(k == 7 || k == 7 + N / 2);
    assert_int_equal(got[k], 700);
    struct op s;
    green_t g = spawn_op(do_send, &s, ch[13], 1300, -1);
    send_long(ch[13], 1301, 0); /* fill: the sender waits */
    k = green_choose(c, N, -1);
    assert_true(k == 13 || k == 13 + N / 2);
    assert_int_equal(got[k], 1301);
    k = green_choose(c, N, -1);
    assert_true(k == 13 || k == 13 + N / 2);
    assert_int_equal(got[k], 1300);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_fails_with(green_choose(c, N, green_after(10)), ETIMEDOUT);
    for (int i = 0; i < N / 2; i++)
        assert_int_equal(green_chan_free(ch[i]), 0);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Shared-stack green threads                                              */
/* ======================================================================== */

struct pipe_stage {
    green_chan_t *in, *out;
    int n;
    long sum;
};

/* Receives into and sends from its own (shared, movable) stack. */
static void *stage_main(void *arg)
{
    struct pipe_stage *p = arg;
    for (int i = 0; i < p->n; i++) {
        struct blob b;
        if (green_chan_recv(p->in, &b, -1) != 0)
            return (void *)1;
        p->sum += b.bytes[0];
        b.bytes[0]++;
        if (green_chan_send(p->out, &b, -1) != 0)
            return (void *)2;
    }
    return NULL;
}

static void test_shared_stack_green_threads(void **state)
{
    (void)state;
    enum { STAGES = 50, MSGS = 40 };
    green_attr_t attr = {.stack_mode = GREEN_STACK_SHARED};
    green_chan_t *ch[STAGES + 1];
    for (int i = 0; i <= STAGES; i++)
        ch[i] = green_chan_new(sizeof(struct blob), (size_t)(i % 2)); /* both kinds */
    struct pipe_stage st[STAGES];
    green_t g[STAGES];
    for (int i = 0; i < STAGES; i++) {
        st[i] = (struct pipe_stage){ch[i], ch[i + 1], MSGS, 0};
        g[i] = green_spawn_attr(stage_main, &st[i], &attr);
        assert_non_null(g[i]);
    }
    /* the root feeds one end and drains the other through a choose */
    int sent = 0, received = 0;
    while (received < MSGS) {
        struct blob in, out;
        fill(&in, sent);
        in.bytes[0] = 0;
        green_clause_t c[2] = {{.ch = ch[STAGES], .op = GREEN_CHAN_RECV, .elem = &out, .err = 0},
                               {.ch = ch[0], .op = GREEN_CHAN_SEND, .elem = &in, .err = 0}};
        int k = green_choose(c, sent < MSGS ? 2 : 1, -1);
        assert_true(k == 0 || k == 1);
        if (k == 1) {
            sent++;
            continue;
        }
        assert_int_equal(out.bytes[0], STAGES); /* every stage touched it */
        out.bytes[0] = 0;
        struct blob want;
        fill(&want, received);
        want.bytes[0] = 0;
        assert_memory_equal(&out, &want, sizeof want);
        received++;
    }
    for (int i = 0; i < STAGES; i++) {
        void *r;
        assert_int_equal(green_join(g[i], &r, -1), 0);
        assert_null(r);
        assert_int_equal(st[i].sum, (long)MSGS * i);
    }
    for (int i = 0; i <= STAGES; i++)
        assert_int_equal(green_chan_free(ch[i]), 0);
    assert_int_equal(stats().shared_saved_bytes, 0);
    assert_hub_idle();
}

/* ======================================================================== */
/*  Between OS threads                                                      */
/* ======================================================================== */

#define XMSGS (1000000 / GREEN_TEST_SCALE)

struct xthread {
    green_chan_t *in, *out;
    long n;
    long bad;           /* elements out of order */
    int failed;
};

/* Sends 0..n-1 on out and checks that in brings 0..n-1, in order. */
static void *pump_send(void *arg)
{
    struct xthread *x = arg;
    for (long i = 0; i < x->n; i++)
        if (green_chan_send(x->out, &i, -1) != 0)
            x->failed = 1;
    return NULL;
}

static void *pump_recv(void *arg)
{
    struct xthread *x = arg;
    for (long i = 0; i < x->n; i++) {
        long v = -1;
        if (green_chan_recv(x->in, &v, -1) != 0)
            x->failed = 1;
        else if (v != i)
            x->bad++;
    }
    return NULL;
}

/* An OS thread with its own hub: a sender and a receiver green thread. */
static void *xthread_main(void *arg)
{
    struct xthread *x = arg;
    green_t s = green_spawn(pump_send, x);
    green_t r = green_spawn(pump_recv, x);
    if (green_join(s, NULL, -1) != 0 || green_join(r, NULL, -1) != 0)
        x->failed = 1;
    return NULL;
}

static void run_two_hubs(size_t cap_ab, size_t cap_ba, long n)
{
    green_chan_t *ab = green_chan_new(sizeof(long), cap_ab);
    green_chan_t *ba = green_chan_new(sizeof(long), cap_ba);
    struct xthread x[2] = {{.in = ba, .out = ab, .n = n}, {.in = ab, .out = ba, .n = n}};
    pthread_t t[2];
    for (int k = 0; k < 2; k++)
        assert_int_equal(pthread_create(&t[k], NULL, xthread_main, &x[k]), 0);
    for (int k = 0; k < 2; k++) {
        pthread_join(t[k], NULL);
        assert_int_equal(x[k].failed, 0);
        assert_int_equal(x[k].bad, 0);
    }
    assert_int_equal(green_chan_len(ab), 0);
    assert_int_equal(green_chan_len(ba), 0);
    assert_int_equal(green_chan_free(ab), 0);
    assert_int_equal(green_chan_free(ba), 0);
}

/* Two OS threads, each with its own hub, pass a million messages each way. */
static void test_two_hubs_million_messages(void **state)
{
    (void)state;
    run_two_hubs(128, 128, XMSGS);
    run_two_hubs(0, 1, XMSGS / 10); /* rendezvous: every message is a hand-over */
    assert_hub_idle();
}

/* A choose in one hub while two other OS threads send: exactly one clause completes per
 * call, nothing is lost, nothing duplicated. */
struct feeder {
    green_chan_t *ch;
    long base, n;
};

static void *feeder_main(void *arg)
{
    struct feeder *f = arg;
    for (long i = 0; i < f->n; i++) {
        long v = f->base + i;
        if (green_chan_send(f->ch, &v, -1) != 0)
            return (void *)1;
    }
    return NULL;
}

static void test_choose_across_threads(void **state)
{
    (void)state;
    long n = 100000 / GREEN_TEST_SCALE;
    green_chan_t *a = green_chan_new(sizeof(long), 0);
    green_chan_t *b = green_chan_new(sizeof(long), 2);
    struct feeder fa = {a, 0, n}, fb = {b, 1000000000L, n};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, feeder_main, &fa), 0);
    assert_int_equal(pthread_create(&tb, NULL, feeder_main, &fb), 0);
    long va, vb, next_a = 0, next_b = 1000000000L;
    green_clause_t c[2] = {{.ch = a, .op = GREEN_CHAN_RECV, .elem = &va, .err = -1},
                           {.ch = b, .op = GREEN_CHAN_RECV, .elem = &vb, .err = -1}};
    for (long i = 0; i < 2 * n; i++) {
        int k = green_choose(c, 2, -1);
        if (k == 0)
            assert_int_equal(va, next_a++);
        else
            assert_int_equal(vb, next_b++);
    }
    assert_int_equal(next_a, n);
    assert_int_equal(next_b, 1000000000L + n);
    void *r;
    pthread_join(ta, &r);
    assert_null(r);
    pthread_join(tb, &r);
    assert_null(r);
    assert_int_equal(green_chan_free(a), 0);
    assert_int_equal(green_chan_free(b), 0);
    assert_hub_idle();
}

/* A plain pthread (it has never used libgreen) sends to and receives from green
 * threads; when it must wait, it blocks — the OS thread sleeps until woken. */
struct plain {
    green_chan_t *to_green, *from_green;
    long n;
    int failed;
    long sum;
};

static void *plain_main(void *arg)
{
    struct plain *p = arg;
    for (long i = 0; i < p->n; i++) {
        long v = i;
        if (green_chan_send(p->to_green, &v, -1) != 0)
            p->failed = 1;
        if (green_chan_recv(p->from_green, &v, -1) != 0 || v != i * 2)
            p->failed = 1;
        p->sum += v;
    }
    green_chan_close(p->to_green); /* ends the doubler */
    return NULL;
}

static void *doubler(void *arg)
{
    struct plain *p = arg;
    long v;
    while (green_chan_recv(p->to_green, &v, -1) == 0) {
        v *= 2;
        if (green_chan_send(p->from_green, &v, -1) != 0)
            return (void *)1;
    }
    return errno == EPIPE ? NULL : (void *)2;
}

static void *plain_waits_then_gets(void *arg)
{
    green_chan_t *ch = arg;
    long v = -1;
    if (green_chan_recv(ch, &v, -1) != 0)
        return (void *)-1;
    return (void *)v;
}

static void test_plain_pthread(void **state)
{
    (void)state;
    long n = 20000 / GREEN_TEST_SCALE;
    struct plain p = {green_chan_new(sizeof(long), 0), green_chan_new(sizeof(long), 0), n, 0, 0};
    green_t d = green_spawn(doubler, &p);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, plain_main, &p), 0);
    void *r;
    assert_int_equal(green_join(d, &r, -1), 0); /* the hub runs the doubler meanwhile */
    assert_null(r);
    pthread_join(t, NULL);
    assert_int_equal(p.failed, 0);
    assert_int_equal(p.sum, n * (n - 1));

    /* the pthread is parked (its OS thread asleep) until the root, much later, sends */
    green_chan_t *ch = green_chan_new(sizeof(long), 0);
    assert_int_equal(pthread_create(&t, NULL, plain_waits_then_gets, ch), 0);
    sleep_os_ms(50);
    send_long(ch, 1234, -1); /* rendezvous: completes once the pthread took it */
    pthread_join(t, &r);
    assert_ptr_equal(r, (void *)1234);
    assert_int_equal(green_chan_free(ch), 0);
    assert_int_equal(green_chan_free(p.to_green), 0);
    assert_int_equal(green_chan_free(p.from_green), 0);
    assert_hub_idle();
}

static void *plain_closes(void *arg)
{
    sleep_os_ms(20);
    green_chan_close(arg);
    return NULL;
}

static void *plain_sends_later(void *arg)
{
    sleep_os_ms(50);
    long v = 4321;
    green_chan_send(arg, &v, -1);
    return NULL;
}

/* The root blocks on a channel that only a thread not yet started will feed: not a
 * deadlock (the process has threads), it just waits. */
static void test_root_waits_for_plain_pthread(void **state)
{
    (void)state;
    green_chan_t *ch = green_chan_new(sizeof(long), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, plain_sends_later, ch), 0);
    assert_int_equal(recv_long(ch, -1), 4321);
    pthread_join(t, NULL);
    /* and close from another thread wakes it */
    assert_int_equal(pthread_create(&t, NULL, plain_closes, ch), 0);
    long v;
    assert_fails_with(green_chan_recv(ch, &v, green_after(5000)), EPIPE);
    pthread_join(t, NULL);
    assert_int_equal(green_chan_free(ch), 0);
    assert_hub_idle();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deadlock_is_reported), /* first: needs a single thread */
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_positional_clauses),
        cmocka_unit_test(test_buffered_fifo),
        cmocka_unit_test(test_large_elements),
        cmocka_unit_test(test_rendezvous),
        cmocka_unit_test(test_fifo_receivers),
        cmocka_unit_test(test_fifo_senders),
        cmocka_unit_test(test_deadlines),
        cmocka_unit_test(test_close_wakes_receivers),
        cmocka_unit_test(test_close_wakes_senders),
        cmocka_unit_test(test_close_while_waiting_with_deadline),
        cmocka_unit_test(test_killed_receiver_is_removed),
        cmocka_unit_test(test_killed_sender_leaves_nothing),
        cmocka_unit_test(test_kill_after_handover_keeps_it),
        cmocka_unit_test(test_cancelled_caller),
        cmocka_unit_test(test_stray_wake_keeps_waiting),
        cmocka_unit_test(test_free_busy),
        cmocka_unit_test(test_choose_fair_among_ready),
        cmocka_unit_test(test_choose_waits_exactly_one),
        cmocka_unit_test(test_choose_deadlines_and_close),
        cmocka_unit_test(test_choose_many_clauses),
        cmocka_unit_test(test_shared_stack_green_threads),
        cmocka_unit_test(test_two_hubs_million_messages),
        cmocka_unit_test(test_choose_across_threads),
        cmocka_unit_test(test_plain_pthread),
        cmocka_unit_test(test_root_waits_for_plain_pthread),
    };
    return cmocka_run_group_tests_name("chan", tests, NULL, NULL);
}
