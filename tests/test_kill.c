/* test_kill.c — what a killed green thread can still do: the public shield
 * (green_shield_push/pop) that lets it wait for its own cleanup, yields that still let
 * the others run, and joins of green threads that have already finished.
 *
 * The story of issue 11: a handler killed by green_server_stop must wait for the copier
 * green threads it started (they point into its stack). Kills are sticky, so without a
 * shield its join fails with ECANCELED, even with deadline 0, and a loop of yields
 * spun at 100% CPU without ever letting the copiers run. */
#include "green_test.h"

/* ======================================================================== */
/*  The shield                                                              */
/* ======================================================================== */

/* A child that borrows its parent's stack: it writes into *slot until told to stop. */
struct borrowed {
    int *slot;
    green_event_t *stop;
};

static void *borrow_parent_stack(void *arg)
{
    struct borrowed *b = arg;
    green_event_wait(b->stop, -1);
    *b->slot = 42; /* into the parent's frame: only safe while the parent waits for us */
    return NULL;
}

struct parent {
    green_event_t stop;        /* set by the test once the parent has been killed */
    int sleep_r, sleep_err;    /* the wait the kill ends */
    int join_unshielded_err;   /* the join tried before the shield */
    int push_r, join_r, join_err, cancelled_inside, pop_r, cancelled_after;
    int later_r, later_err;    /* a blocking call after the pop */
    int slot_seen;
};

static void *parent_main(void *arg)
{
    struct parent *p = arg;
    int slot = 0;
    struct borrowed b = {&slot, &p->stop};
    green_t child = green_spawn(borrow_parent_stack, &b);
    errno = 0;
    p->sleep_r = green_sleep(100000); /* killed here */
    p->sleep_err = errno;
    errno = 0;
    if (green_join(child, NULL, 0) != 0) /* sticky: even a poll of an unfinished child fails */
        p->join_unshielded_err = errno;
    p->push_r = green_shield_push();
    p->cancelled_inside = green_cancelled();
    errno = 0;
    p->join_r = green_join(child, NULL, -1); /* waits normally under the shield */
    p->join_err = errno;
    p->slot_seen = slot;
    p->pop_r = green_shield_pop();
    p->cancelled_after = green_cancelled();
    errno = 0;
    p->later_r = green_sleep(1);
    p->later_err = errno;
    return NULL;
}

/* Killed, the parent shields itself, joins the child that uses its stack, and only
 * after the pop does the kill show again. */
static void test_shield_lets_a_killed_parent_join_its_child(void **state)
{
    (void)state;
    struct parent p;
    memset(&p, 0, sizeof p);
    green_event_init(&p.stop);
    green_t g = green_spawn(parent_main, &p);
    assert_int_equal(green_yield(), 0); /* the parent sleeps, its child waits */
    assert_int_equal(green_kill(g), 0);
    assert_int_equal(green_yield(), 0); /* the parent now waits for its child, shielded */
    assert_int_equal(green_dead(g), 0);
    assert_int_equal(green_event_set(&p.stop), 0);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(p.sleep_r, -1);
    assert_int_equal(p.sleep_err, ECANCELED);
    assert_int_equal(p.join_unshielded_err, ECANCELED);
    assert_int_equal(p.push_r, 0);
    assert_int_equal(p.cancelled_inside, 0);
    assert_int_equal(p.join_r, 0);
    assert_int_equal(p.join_err, 0);
    assert_int_equal(p.slot_seen, 42);
    assert_int_equal(p.pop_r, 0);
    assert_int_equal(p.cancelled_after, 1);
    assert_int_equal(p.later_r, -1);
    assert_int_equal(p.later_err, ECANCELED);
    assert_int_equal(green_event_destroy(&p.stop), 0);
    assert_hub_idle();
}

struct shielded_waits {
    int sleep_r, cancelled_inside, cancelled_after;
    int join_r, join_err, scope_r, scope_err, pop_r, after_r, after_err;
};

static void *never_ends(void *arg)
{
    (void)arg;
    green_park(-1);
    return NULL;
}

/* Shielded from the start: a kill during its sleep does not end the sleep; deadlines
 * and timeout scopes still apply inside the shield (ETIMEDOUT, not ECANCELED). */
static void *shielded_then_killed(void *arg)
{
    struct shielded_waits *s = arg;
    assert_int_equal(green_shield_push(), 0);
    assert_int_equal(green_shield_push(), 0); /* nested */
    s->sleep_r = green_sleep(30); /* killed meanwhile */
    s->cancelled_inside = green_cancelled();
    green_t stuck = green_spawn(never_ends, NULL);
    errno = 0;
    s->join_r = green_join(stuck, NULL, green_after(10));
    s->join_err = errno;
    assert_int_equal(green_timeout_push(10), 0);
    errno = 0;
    s->scope_r = green_join(stuck, NULL, -1);
    s->scope_err = errno;
    assert_int_equal(green_timeout_pop(), 0);
    assert_int_equal(green_kill(stuck), 0);
    assert_int_equal(green_join(stuck, NULL, -1), 0);
    assert_int_equal(green_shield_pop(), 0);
    s->pop_r = green_cancelled(); /* still one shield: still 0 */
    assert_int_equal(green_shield_pop(), 0);
    s->cancelled_after = green_cancelled();
    errno = 0;
    s->after_r = green_sleep(1);
    s->after_err = errno;
    return NULL;
}

static void test_shield_holds_a_kill_but_not_deadlines(void **state)
{
    (void)state;
    struct shielded_waits s;
    memset(&s, 0x55, sizeof s);
    green_t g = green_spawn(shielded_then_killed, &s);
    assert_int_equal(green_yield(), 0); /* asleep, shielded */
    assert_int_equal(green_kill(g), 0);
    assert_int_equal(stats().waiting, 1); /* the kill did not end its sleep */
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(s.sleep_r, 0);
    assert_int_equal(s.cancelled_inside, 0);
    assert_int_equal(s.join_r, -1);
    assert_int_equal(s.join_err, ETIMEDOUT);
    assert_int_equal(s.scope_r, -1);
    assert_int_equal(s.scope_err, ETIMEDOUT);
    assert_int_equal(s.pop_r, 0);
    assert_int_equal(s.cancelled_after, 1);
    assert_int_equal(s.after_r, -1);
    assert_int_equal(s.after_err, ECANCELED);
    assert_hub_idle();
}

/* Pops match pushes; a shield of a green thread never killed changes nothing; the root
 * may shield itself (it cannot be killed anyway). */
static void test_shield_errors(void **state)
{
    (void)state;
    assert_fails_with(green_shield_pop(), EINVAL);
    assert_int_equal(green_shield_push(), 0);
    assert_int_equal(green_sleep(1), 0);
    assert_int_equal(green_cancelled(), 0);
    assert_int_equal(green_shield_pop(), 0);
    assert_fails_with(green_shield_pop(), EINVAL);
    /* the pop of a timeout scope is not the pop of a shield, nor the reverse */
    assert_int_equal(green_timeout_push(1000), 0);
    assert_fails_with(green_shield_pop(), EINVAL);
    assert_int_equal(green_shield_push(), 0);
    assert_int_equal(green_timeout_pop(), 0); /* kill shields do not nest with scopes */
    assert_int_equal(green_shield_pop(), 0);
    assert_hub_idle();
}

/* ======================================================================== */
/*  What a killed green thread can still do without a shield                */
/* ======================================================================== */

struct yield_loop {
    int other_done;
    long spins;
    int last_err;
};

/* Killed during its first wait, it then yields until the other one is done: each yield
 * fails with ECANCELED, but must let the other run. */
static void *killed_yield_loop(void *arg)
{
    struct yield_loop *y = arg;
    green_sleep(100000); /* killed here */
    while (!y->other_done && y->spins < 1000000) {
        errno = 0;
        if (green_yield() != 0)
            y->last_err = errno;
        y->spins++;
    }
    return NULL;
}

static void *yield_ten_times(void *arg)
{
    struct yield_loop *y = arg;
    for (int i = 0; i < 10; i++)
        assert_int_equal(green_yield(), 0);
    y->other_done = 1;
    return NULL;
}

static void test_killed_yield_lets_others_run(void **state)
{
    (void)state;
    struct yield_loop y = {0};
    green_t k = green_spawn(killed_yield_loop, &y);
    assert_int_equal(green_yield(), 0); /* k sleeps */
    green_t o = green_spawn(yield_ten_times, &y);
    assert_int_equal(green_kill(k), 0);
    assert_int_equal(green_join(k, NULL, -1), 0);
    assert_int_equal(y.other_done, 1); /* the other ran while k looped */
    assert_true(y.spins <= 20);
    assert_int_equal(y.last_err, ECANCELED);
    assert_int_equal(green_join(o, NULL, -1), 0);
    assert_hub_idle();
}

/* The same when nothing else is ready: the killed yield still polls (a timer fires). */
static void *killed_yield_until_timer(void *arg)
{
    struct yield_loop *y = arg;
    green_sleep(100000); /* killed here */
    while (!y->other_done && y->spins < 100000000)
        y->spins += green_yield() != 0;
    return NULL;
}

static void *sleep_then_flag(void *arg)
{
    struct yield_loop *y = arg;
    assert_int_equal(green_sleep(5), 0);
    y->other_done = 1;
    return NULL;
}

static void test_killed_yield_lets_timers_fire(void **state)
{
    (void)state;
    struct yield_loop y = {0};
    green_t k = green_spawn(killed_yield_until_timer, &y);
    green_t o = green_spawn(sleep_then_flag, &y);
    assert_int_equal(green_yield(), 0); /* both asleep */
    assert_int_equal(green_kill(k), 0);
    assert_int_equal(green_join(k, NULL, -1), 0);
    assert_int_equal(y.other_done, 1);
    assert_int_equal(green_join(o, NULL, -1), 0);
    assert_hub_idle();
}

static void *return_seven(void *arg)
{
    (void)arg;
    return (void *)7;
}

struct join_dead {
    green_t done, running;
    int r_done, r_poll, err_poll, r_wait, err_wait;
    void *result;
};

/* A killed green thread joins one that has finished (no wait needed), even with
 * deadline -1; joining one still running fails at once with ECANCELED. */
static void *killed_joins(void *arg)
{
    struct join_dead *j = arg;
    green_kill(green_current());
    j->r_done = green_join(j->done, &j->result, -1);
    errno = 0;
    j->r_poll = green_join(j->running, NULL, 0);
    j->err_poll = errno;
    errno = 0;
    j->r_wait = green_join(j->running, NULL, -1);
    j->err_wait = errno;
    return NULL;
}

static void test_killed_joins_a_finished_one(void **state)
{
    (void)state;
    struct join_dead j = {0};
    j.done = green_spawn(return_seven, NULL);
    j.running = green_spawn(never_ends, NULL);
    assert_int_equal(green_yield(), 0); /* done has finished; running is parked */
    assert_int_equal(green_dead(j.done), 1);
    green_t g = green_spawn(killed_joins, &j);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(j.r_done, 0);
    assert_ptr_equal(j.result, (void *)7);
    assert_null_with(green_name(j.done), ESRCH); /* reaped by the killed joiner */
    assert_int_equal(j.r_poll, -1);
    assert_int_equal(j.err_poll, ECANCELED);
    assert_int_equal(j.r_wait, -1);
    assert_int_equal(j.err_wait, ECANCELED);
    assert_int_equal(green_kill(j.running), 0);
    assert_int_equal(green_join(j.running, NULL, -1), 0);
    assert_hub_idle();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shield_lets_a_killed_parent_join_its_child),
        cmocka_unit_test(test_shield_holds_a_kill_but_not_deadlines),
        cmocka_unit_test(test_shield_errors),
        cmocka_unit_test(test_killed_yield_lets_others_run),
        cmocka_unit_test(test_killed_yield_lets_timers_fire),
        cmocka_unit_test(test_killed_joins_a_finished_one),
    };
    return cmocka_run_group_tests_name("kill", tests, NULL, NULL);
}
