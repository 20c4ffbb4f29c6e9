/* fuzz_timer.c — the hub's timer wheel (src/timer.c) against a model: a list of pending
 * timers kept in firing order.
 *
 * The input is a program of byte-coded operations on 64 timers: add (with a deadline
 * before, at or after the wheel's time, up to beyond its span), cancel, expire at a
 * later time (small steps, block boundaries, long jumps), and ask for the next deadline.
 * After every operation the wheel must agree with the model: the same count; expiry
 * fires exactly the due timers, in deadline order and, for equal deadlines, in the order
 * they were set; the next deadline is never after the first pending one, nor before the
 * wheel's time. Run by libFuzzer (make fuzz), or over the committed corpus by
 * fuzz_main.c (make test).
 */
#include "../../src/sched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NT 64
#define CLOCK_END ((int64_t)1 << 46) /* 2,200 years of a monotonic clock in ms */
#define SPAN ((int64_t)1 << (GREEN_WHEEL_L0_BITS + 6 * GREEN_WHEEL_LN_BITS)) /* the wheel's reach */

struct model {
    int64_t when[NT];
    uint64_t seq[NT];      /* order set, for equal deadlines */
    int pending[NT];
    uint64_t next_seq;
    int64_t now;           /* the wheel's time: every deadline before it has fired */
};

static struct green_timer timers[NT];
static struct model m;
static int fired[NT * 4], nfired;

static void on_fire(struct green_hub *h, struct green_timer *t)
{
    (void)h;
    if (nfired < (int)(sizeof fired / sizeof fired[0]))
        fired[nfired++] = (int)(t - timers);
}

#define CHECK(c)                                                                     \
    do {                                                                             \
        if (!(c)) {                                                                  \
            fprintf(stderr, "fuzz_timer: %s (line %d)\n", #c, __LINE__);            \
            abort();                                                                 \
        }                                                                            \
    } while (0)

/* The pending timer of the model that fires first (deadline, then order set), or -1. */
static int model_first(void)
{
    int best = -1;
    for (int i = 0; i < NT; i++)
        if (m.pending[i] && (best < 0 || m.when[i] < m.when[best] ||
                             (m.when[i] == m.when[best] && m.seq[i] < m.seq[best])))
            best = i;
    return best;
}

static uint64_t model_count(void)
{
    uint64_t n = 0;
    for (int i = 0; i < NT; i++)
        n += (uint64_t)m.pending[i];
    return n;
}

static void op_add(struct green_hub *h, int i, int64_t when)
{
    if (m.pending[i]) { /* the hub never adds a linked timer: cancel first */
        green__timer_del(h, &timers[i]);
        m.pending[i] = 0;
    }
    green__timer_add(h, &timers[i], when);
    if (when < m.now)
        when = m.now;
    if (when - m.now >= SPAN)
        when = m.now + SPAN - 1;
    m.when[i] = when;
    m.seq[i] = m.next_seq++;
    m.pending[i] = 1;
}

/* How far one expiry may move the time while timers are pending: a hub's expiry walks
 * the time in between block by block (1,024 ms each), as it does after a real sleep of
 * that length; deadlines further out are reached by several expiries. */
#define MAX_STEP ((int64_t)1 << 18)

static void op_expire(struct green_hub *h, int64_t now)
{
    if (model_first() >= 0 && now > m.now + MAX_STEP)
        now = m.now + MAX_STEP;
    nfired = 0;
    green__timer_expire(h, now, on_fire);
    for (int k = 0; k < nfired; k++) {
        int want = model_first();
        CHECK(want >= 0 && m.when[want] <= now); /* only due timers fire */
        CHECK(fired[k] == want);                 /* in order */
        m.pending[want] = 0;
        CHECK(timers[want].slot == GREEN_TIMER_IDLE);
    }
    int left = model_first();
    CHECK(left < 0 || m.when[left] > now); /* every due timer fired */
    if (now + 1 > m.now)
        m.now = now + 1;
}

static void op_next(struct green_hub *h)
{
    int64_t next = green__timer_next(h);
    int first = model_first();
    if (first < 0) {
        CHECK(next == -1);
        return;
    }
    CHECK(next >= 0 && next <= m.when[first]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct green_hub hub;
    memset(&hub, 0, sizeof hub);
    memset(&m, 0, sizeof m);
    memset(timers, 0, sizeof timers);
    for (int i = 0; i < NT; i++)
        timers[i].slot = GREEN_TIMER_IDLE;
    /* a start time near a block boundary of some level, to reach cascades quickly */
    int64_t start = 5000;
    if (size >= 2) {
        start += ((int64_t)1 << (data[0] % 40)) - (data[1] % 8);
        data += 2;
        size -= 2;
    }
    hub.now = start;
    m.now = start;
    CHECK(green__timer_init(&hub) == 0);
    for (size_t p = 0; p + 3 <= size; p += 3) {
        int i = data[p + 1] % NT;
        uint8_t arg = data[p + 2];
        switch (data[p] % 8) {
        case 0: case 1: /* add, relative to the wheel's time: mostly near, sometimes far */
            op_add(&hub, i, m.now - 2 + (int64_t)arg * (data[p] & 8 ? 1 : 37));
            break;
        case 2: /* add far away, up to past the wheel's reach */
            op_add(&hub, i, m.now + ((int64_t)1 << (arg % 48)));
            break;
        case 3: /* cancel */
            green__timer_del(&hub, &timers[i]);
            m.pending[i] = 0;
            break;
        case 4: /* expire a little later */
            op_expire(&hub, m.now - 1 + arg);
            break;
        case 5: /* expire at the next deadline the wheel gives */
        {
            int64_t next = green__timer_next(&hub);
            if (next >= 0)
                op_expire(&hub, next);
            break;
        }
        case 6: /* a jump, as after a long sleep: to the first pending deadline or,
                 * when idle, far ahead (a monotonic clock in ms stays below 2^46: the
                 * wheel keeps deadlines in 48 bits) */
        {
            int first = model_first();
            int64_t far = m.now + ((int64_t)arg << (arg % 40));
            if (far >= CLOCK_END)
                far = m.now;
            op_expire(&hub, first >= 0 ? m.when[first] + (arg & 3) : far);
            break;
        }
        case 7:
            op_next(&hub);
            break;
        }
        CHECK(green__timer_count(&hub) == model_count());
    }
    /* drain what fires within the next hours, at the times the wheel asks for */
    int64_t until = m.now + 16 * MAX_STEP;
    for (int64_t next; (next = green__timer_next(&hub)) >= 0 && next <= until;)
        op_expire(&hub, next);
    green__timer_destroy(&hub);
    return 0;
}
