/* fuzz_chan.c — channels and green_choose driven by a byte string, against a model.
 *
 * The input builds a little program: a channel (capacity 0..3) and a second one for
 * selects; up to 4 sender green threads, each sending its own numbered values in order;
 * up to 3 receivers; selects that send or receive on either channel; and a driver that
 * interleaves yields, short sleeps, kills of random green threads and a close. Every
 * call's outcome is logged. At the end the channels are closed and drained, and:
 *  - every value whose send succeeded was received exactly once (by a receiver, a
 *    select or the final drain), and no value whose send failed was received;
 *  - each receiver saw each sender's values in the order they were sent (FIFO);
 *  - no send that started after the close returned succeeded; every call failed only with an error
 *    its contract allows (ETIMEDOUT, ECANCELED, EPIPE);
 *  - nothing is left: every green thread joined, both channels free.
 * Run by libFuzzer (make fuzz) or over the committed corpus (make test).
 */
#include <green.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NSEND 4
#define NRECV 3
#define PER_SENDER 16
#define NVAL (NSEND * PER_SENDER)
#define MAXG 32

#define CHECK(c)                                                                     \
    do {                                                                             \
        if (!(c)) {                                                                  \
            fprintf(stderr, "fuzz_chan: %s (line %d)\n", #c, __LINE__);             \
            abort();                                                                 \
        }                                                                            \
    } while (0)

static green_chan_t *ch, *ch2;
static int sent_ok[NVAL], send_failed[NVAL], received[NVAL];
static int closed_before; /* set once green_chan_close(ch) has returned */
static const uint8_t *prog;
static size_t prog_len, prog_pos;

static uint8_t next_byte(void) { return prog_pos < prog_len ? prog[prog_pos++] : 0; }

static int64_t deadline_of(uint8_t b)
{
    switch (b % 4) {
    case 0: return -1;
    case 1: return 0;
    case 2: return green_after(b % 3);
    default: return green_after(1);
    }
}

static uint64_t value(int sender, int seq) { return ((uint64_t)sender << 32) | (uint64_t)seq; }
static int index_of(uint64_t v) { return (int)(v >> 32) * PER_SENDER + (int)(v & 0xffffffffu); }

static void got(uint64_t v, int last_seen[NSEND])
{
    int s = (int)(v >> 32), seq = (int)(v & 0xffffffffu);
    CHECK(s >= 0 && s < NSEND && seq >= 0 && seq < PER_SENDER);
    received[index_of(v)]++;
    if (last_seen) {
        CHECK(seq > last_seen[s]); /* FIFO per sender, as one receiver sees it */
        last_seen[s] = seq;
    }
}

/* i's send returned r (errno err); it started after the close returned if late */
static void sent(int i, int r, int err, int late)
{
    if (r == 0) {
        CHECK(!late); /* no send that starts after the close succeeds */
        sent_ok[i] = 1;
    } else {
        CHECK(err == ETIMEDOUT || err == ECANCELED || err == EPIPE);
        send_failed[i] = 1;
    }
}

struct sender { int id, count; uint8_t dl[PER_SENDER]; };

static void *send_loop(void *arg)
{
    struct sender *s = arg;
    for (int k = 0; k < s->count; k++) {
        uint64_t v = value(s->id, k);
        int late = closed_before;
        errno = 0;
        int r = green_chan_send(ch, &v, deadline_of(s->dl[k]));
        sent(index_of(v), r, errno, late);
        if (r != 0 && errno == EPIPE)
            for (int j = k + 1; j < s->count; j++) /* the rest are never sent */
                send_failed[index_of(value(s->id, j))] = 1;
        if (r != 0 && errno == EPIPE)
            break;
    }
    return NULL;
}

struct receiver { int count; uint8_t dl[PER_SENDER]; int last[NSEND]; };

static void *recv_loop(void *arg)
{
    struct receiver *r = arg;
    for (int k = 0; k < r->count; k++) {
        uint64_t v;
        errno = 0;
        if (green_chan_recv(ch, &v, deadline_of(r->dl[k])) == 0)
            got(v, r->last);
        else
            CHECK(errno == ETIMEDOUT || errno == ECANCELED || errno == EPIPE);
    }
    return NULL;
}

/* A select receives from ch, or sends to or receives from ch2 (counted apart). */
static uint64_t ch2_sent, ch2_recv;

struct selector { uint8_t dl; };

static void *select_once(void *arg)
{
    struct selector *s = arg;
    uint64_t out = 0x7777, in = 0, in2 = 0;
    green_clause_t c[3] = {{.ch = ch, .op = GREEN_CHAN_RECV, .elem = &in},
                           {.ch = ch2, .op = GREEN_CHAN_SEND, .elem = &out},
                           {.ch = ch2, .op = GREEN_CHAN_RECV, .elem = &in2}};
    errno = 0;
    int k = green_choose(c, 3, deadline_of(s->dl));
    if (k < 0) {
        CHECK(errno == ETIMEDOUT || errno == ECANCELED);
        return NULL;
    }
    CHECK(k < 3);
    if (c[k].err) {
        CHECK(c[k].err == EPIPE);
        return NULL;
    }
    if (k == 0)
        got(in, NULL);
    else if (k == 1)
        ch2_sent++;
    else {
        ch2_recv++;
        CHECK(in2 == 0x7777);
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    prog = data;
    prog_len = size;
    prog_pos = 0;
    memset(sent_ok, 0, sizeof sent_ok);
    memset(send_failed, 0, sizeof send_failed);
    memset(received, 0, sizeof received);
    closed_before = 0;
    ch2_sent = ch2_recv = 0;
    ch = green_chan_new(sizeof(uint64_t), next_byte() % 4);
    ch2 = green_chan_new(sizeof(uint64_t), next_byte() % 2);
    CHECK(ch && ch2);
    static struct sender snd[NSEND];
    static struct receiver rcv[NRECV];
    static struct selector sel[MAXG];
    green_t g[MAXG];
    int ng = 0, nsel = 0, nsend = 0, nrecv = 0, nclose = 0;
    int pending_values = 0;
    while (prog_pos < prog_len && ng < MAXG) {
        uint8_t op = next_byte(), arg = next_byte();
        switch (op % 8) {
        case 0: /* a sender */
            if (nsend < NSEND) {
                struct sender *s = &snd[nsend];
                s->id = nsend++;
                s->count = 1 + arg % PER_SENDER;
                for (int k = 0; k < s->count; k++)
                    s->dl[k] = next_byte();
                pending_values += s->count;
                g[ng++] = green_spawn(send_loop, s);
            }
            break;
        case 1: /* a receiver */
            if (nrecv < NRECV) {
                struct receiver *r = &rcv[nrecv++];
                r->count = 1 + arg % PER_SENDER;
                for (int k = 0; k < r->count; k++)
                    r->dl[k] = next_byte();
                for (int k = 0; k < NSEND; k++)
                    r->last[k] = -1;
                g[ng++] = green_spawn(recv_loop, r);
            }
            break;
        case 2: /* a select */
            sel[nsel].dl = arg;
            g[ng++] = green_spawn(select_once, &sel[nsel++]);
            break;
        case 3: case 4:
            green_yield();
            break;
        case 5:
            green_sleep(arg % 2);
            break;
        case 6: /* kill one */
            if (ng)
                green_kill(g[arg % ng]);
            break;
        case 7: /* close (once in a while) */
            if (arg % 4 == 0 && !nclose++) {
                CHECK(green_chan_close(ch) == 0);
                closed_before = 1;
            }
            break;
        }
    }
    for (int i = 0; i < ng; i++) /* wake whatever waits forever */
        green_kill(g[i]);
    if (!nclose) {
        CHECK(green_chan_close(ch) == 0);
        closed_before = 1;
    }
    CHECK(green_joinall(g, (size_t)ng, -1) == 0);
    uint64_t v;
    while (green_chan_recv(ch, &v, 0) == 0) /* what is still buffered */
        got(v, NULL);
    CHECK(errno == EPIPE);
    for (int i = 0; i < NVAL; i++) {
        CHECK(received[i] <= 1);                 /* never twice */
        CHECK(!(sent_ok[i] && send_failed[i]));
        CHECK(received[i] == sent_ok[i]);        /* delivered iff its send succeeded */
    }
    green_chan_close(ch2);
    while (green_chan_recv(ch2, &v, 0) == 0)
        ch2_recv++;
    CHECK(ch2_recv == ch2_sent);
    CHECK(green_chan_free(ch) == 0);
    CHECK(green_chan_free(ch2) == 0);
    green_stats_t st;
    CHECK(green_stats(&st) == 0 && st.alive == 0 && st.ready == 0 && st.waiting == 0);
    (void)pending_values;
    return 0;
}
