/*
 * timer.c — the hub's timers (layer 4, sched.h): a hierarchical timing wheel with
 * millisecond ticks. It owns the wheel (h->wheel) and the green threads' timer links.
 *
 * Deadlines are whole milliseconds, so a wheel gives O(1) insert, O(1) cancel and O(1)
 * amortised expiry, with no per-timer allocation (the node lives in the green thread)
 * and no array to grow: 10 million pending timers cost nothing beyond their nodes.
 *
 * Level 0 has 1024 one-millisecond slots; levels 1..6 have 64 slots each, every level
 * 64 times coarser, covering 2^46 ms (the top level wraps: its slots at or before the
 * current one hold the next turn's deadlines). (A wide level 0 lets most sub-second timers, the
 * common ones, skip the cascade below: with 256 slots, four in five 200 ms sleeps were
 * moved once more before they fired, a pass over cold memory for a million of them.)
 * A timer goes to the lowest level whose slot range
 * contains both the wheel's time and its deadline (compared on the bits above that
 * level), so entries of a coarse slot all lie in the future. When the wheel's time
 * enters a coarse slot's range, the slot is cascaded: its entries are re-inserted, in
 * list order, one level down. Because a timer is only put in a fine slot after the
 * cascade that feeds that slot has happened, every slot list stays in insertion order:
 * timers fire in deadline order, and equal deadlines fire in the order they were set.
 * Bitmaps of non-empty slots let expiry and next-deadline skip empty stretches.
 */
#include "sched.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define L0_BITS GREEN_WHEEL_L0_BITS
#define LN_BITS GREEN_WHEEL_LN_BITS
#define LEVELS 7
#define L0_SIZE (1 << L0_BITS)
#define LN_SIZE (1 << LN_BITS)
#define NSLOTS (L0_SIZE + (LEVELS - 1) * LN_SIZE)
#define MAX_SPAN ((int64_t)1 << (L0_BITS + (LEVELS - 1) * LN_BITS))

struct wheel {
    int64_t now;             /* every timer due before now has fired */
    uint64_t count;
    uint64_t bits0[L0_SIZE / 64];
    uint64_t bits[LEVELS];   /* levels 1.. (index 0 unused) */
    struct green_list slot[NSLOTS];
};

static inline int shift_of(int level) { return level ? L0_BITS + (level - 1) * LN_BITS : 0; }

static inline uint32_t slot_index(int level, int64_t when)
{
    if (level == 0)
        return (uint32_t)(when & (L0_SIZE - 1));
    return (uint32_t)(L0_SIZE + (level - 1) * LN_SIZE + ((when >> shift_of(level)) & (LN_SIZE - 1)));
}

static inline void mark(struct wheel *w, uint32_t s)
{
    if (s < L0_SIZE)
        w->bits0[s / 64] |= (uint64_t)1 << (s % 64);
    else
        w->bits[1 + (s - L0_SIZE) / LN_SIZE] |= (uint64_t)1 << ((s - L0_SIZE) % LN_SIZE);
}

static inline void unmark(struct wheel *w, uint32_t s)
{
    if (s < L0_SIZE)
        w->bits0[s / 64] &= ~((uint64_t)1 << (s % 64));
    else
        w->bits[1 + (s - L0_SIZE) / LN_SIZE] &= ~((uint64_t)1 << ((s - L0_SIZE) % LN_SIZE));
}

static inline int marked(const struct wheel *w, uint32_t s)
{
    if (s < L0_SIZE)
        return (int)(w->bits0[s / 64] >> (s % 64)) & 1;
    return (int)(w->bits[1 + (s - L0_SIZE) / LN_SIZE] >> ((s - L0_SIZE) % LN_SIZE)) & 1;
}

/* The slots are not initialised here: a slot's list is made when a timer first goes
 * into it while it is unmarked (link_timer), and read only while it is marked. So the
 * wheel's 22 KiB are not all written at once: a hub touches the pages of the slots its
 * timers use (a few for sleeps of one length), not all of them, and malloc's fresh
 * memory stays unmapped until then. */
int green__timer_init(struct green_hub *h)
{
    struct wheel *w = malloc(sizeof *w);
    if (!w) {
        errno = ENOMEM;
        return -1;
    }
    memset(w, 0, offsetof(struct wheel, slot));
    w->now = h->now;
    h->wheel = w;
    return 0;
}

void green__timer_destroy(struct green_hub *h)
{
    free(h->wheel);
    h->wheel = NULL;
}

static void link_timer(struct wheel *w, struct green_timer *t)
{
    int64_t when = (int64_t)t->when;
    int level = 0;
    while (level < LEVELS - 1 && (when >> shift_of(level + 1)) != (w->now >> shift_of(level + 1)))
        level++;
    uint32_t s = slot_index(level, when);
    if (!marked(w, s))
        green_list_init(&w->slot[s]);
    green_list_push_back(&w->slot[s], &t->link);
    t->slot = s;
    mark(w, s);
}

void green__timer_add(struct green_hub *h, struct green_timer *t, int64_t when)
{
    struct wheel *w = h->wheel;
    if (when < w->now)
        when = w->now;
    if (when - w->now >= MAX_SPAN)
        when = w->now + MAX_SPAN - 1;
    t->when = when;
    link_timer(w, t);
    w->count++;
}

void green__timer_del(struct green_hub *h, struct green_timer *t)
{
    struct wheel *w = h->wheel;
    if (t->slot == GREEN_TIMER_IDLE)
        return;
    uint32_t s = t->slot;
    green_list_remove(&t->link);
    if (green_list_empty(&w->slot[s]))
        unmark(w, s);
    t->slot = GREEN_TIMER_IDLE;
    w->count--;
}

uint64_t green__timer_count(struct green_hub *h)
{
    struct wheel *w = h->wheel;
    return w ? w->count : 0;
}

/* First set bit at or after `from` in level 0, or -1. */
static int next0(const struct wheel *w, int from)
{
    for (int i = from / 64; i < L0_SIZE / 64; i++) {
        uint64_t b = w->bits0[i];
        if (i == from / 64)
            b &= ~(uint64_t)0 << (from % 64);
        if (b)
            return i * 64 + __builtin_ctzll(b);
    }
    return -1;
}

int64_t green__timer_next(struct green_hub *h)
{
    struct wheel *w = h->wheel;
    if (!w || !w->count)
        return -1;
    int i = next0(w, (int)(w->now & (L0_SIZE - 1)));
    if (i >= 0)
        return (w->now & ~(int64_t)(L0_SIZE - 1)) + i;
    for (int level = 1; level < LEVELS; level++) {
        int cur = (int)((w->now >> shift_of(level)) & (LN_SIZE - 1));
        uint64_t b = cur == LN_SIZE - 1 ? 0 : w->bits[level] & (~(uint64_t)0 << (cur + 1));
        int64_t base = w->now & ~(((int64_t)1 << shift_of(level + 1)) - 1);
        if (b)
            return base + ((int64_t)__builtin_ctzll(b) << shift_of(level));
        if (level == LEVELS - 1 && w->bits[level]) {
            /* the top level wraps: a slot at or before the current one holds deadlines
             * of its next turn */
            base += (int64_t)1 << shift_of(level + 1);
            return base + ((int64_t)__builtin_ctzll(w->bits[level]) << shift_of(level));
        }
    }
    return w->now + MAX_SPAN; /* cannot happen: something is pending somewhere */
}

/* The wheel's time has just entered a new level-0 block: move the coarse slots that
 * begin here one level down (coarsest first, so their entries can fall through). */
static void cascade(struct wheel *w)
{
    int top = 1;
    while (top < LEVELS - 1 && ((w->now >> shift_of(top)) & (LN_SIZE - 1)) == 0)
        top++;
    for (int level = top; level >= 1; level--) {
        uint32_t s = slot_index(level, w->now);
        if (!marked(w, s))
            continue;
        struct green_list moving;
        green_list_init(&moving);
        green_list_splice_back(&moving, &w->slot[s]);
        unmark(w, s);
        struct green_list *n;
        while ((n = green_list_pop_front(&moving)) != NULL)
            link_timer(w, green_container_of(n, struct green_timer, link));
    }
}

/* Move the wheel's time forward; entering a new level-0 block cascades at once, so no
 * timer can be put in a fine slot before the coarse entries that precede it. Only
 * called with jumps of at most one block while timers are pending. */
static void set_now(struct wheel *w, int64_t t)
{
    int64_t old = w->now;
    w->now = t;
    if ((old >> L0_BITS) != (t >> L0_BITS) && w->count)
        cascade(w);
}

void green__timer_expire(struct green_hub *h, int64_t now,
                         void (*fire)(struct green_hub *, struct green_timer *))
{
    struct wheel *w = h->wheel;
    if (!w)
        return;
    while (w->now <= now) {
        if (!w->count) {
            w->now = now + 1;
            return;
        }
        int idx = (int)(w->now & (L0_SIZE - 1));
        int i = next0(w, idx);
        if (i < 0) {
            /* nothing more in this block: go to the next one, unless it is still ahead
             * of the clock (the wheel's time must never pass it: timers set later are
             * placed relative to it) */
            int64_t next_block = (w->now | (L0_SIZE - 1)) + 1;
            if (next_block > now) {
                set_now(w, now + 1); /* may be next_block itself: then it cascades */
                return;
            }
            set_now(w, next_block);
            continue;
        }
        int64_t t_at = (w->now & ~(int64_t)(L0_SIZE - 1)) + i;
        if (t_at > now) {
            w->now = now + 1; /* still inside this block */
            return;
        }
        w->now = t_at;
        struct green_list due;
        green_list_init(&due);
        green_list_splice_back(&due, &w->slot[i]);
        unmark(w, (uint32_t)i);
        struct green_list *n;
        while ((n = green_list_pop_front(&due)) != NULL) {
            struct green_timer *t = green_container_of(n, struct green_timer, link);
            t->slot = GREEN_TIMER_IDLE;
            w->count--;
            fire(h, t);
        }
        set_now(w, t_at + 1);
    }
}
