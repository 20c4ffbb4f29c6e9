/* test_green.c — greenlet's semantics (after greenlet's test_greenlet.py and test_throw.py). */
#include <green.h>

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

/* Values travel both ways through green_switch. */
static void *echo_twice(void *arg)
{
    green_t parent = arg;
    intptr_t v = (intptr_t)green_switch(parent, (void *)1);
    v = (intptr_t)green_switch(parent, (void *)(v + 1));
    return (void *)(v * 10);
}

static void test_values_both_ways(void **state)
{
    (void)state;
    green_t g = green_new(echo_twice, green_current(), NULL);
    assert_non_null(g);
    assert_int_equal(green_started(g), 0);
    assert_int_equal((intptr_t)green_switch(g, NULL), 1);
    assert_int_equal(green_started(g), 1);
    assert_int_equal((intptr_t)green_switch(g, (void *)41), 42);
    assert_int_equal(green_dead(g), 0);
    /* fn's result goes to the parent's pending switch */
    assert_int_equal((intptr_t)green_switch(g, (void *)7), 70);
    assert_int_equal(errno, 0);
    assert_int_equal(green_dead(g), 1);
    assert_int_equal(green_destroy(g), 0);
}

/* Switching to a dead green thread goes to its nearest live ancestor. */
static void *ret_arg(void *arg) { return arg; }

static green_t inner_g;
static void *outer_fn(void *arg)
{
    (void)arg;
    inner_g = green_new(ret_arg, (void *)5, NULL);
    void *r = green_switch(inner_g, NULL); /* inner returns 5 to us */
    assert_int_equal((intptr_t)r, 5);
    return (void *)99;
}

static void test_switch_to_dead_goes_to_ancestor(void **state)
{
    (void)state;
    green_t outer = green_new(outer_fn, NULL, NULL);
    assert_int_equal((intptr_t)green_switch(outer, NULL), 99);
    assert_int_equal(green_dead(inner_g), 1);
    /* inner's parent (outer) is dead too: a switch to inner lands in the root: us */
    assert_int_equal((intptr_t)green_switch(inner_g, (void *)3), 3);
    assert_int_equal(green_destroy(inner_g), 0);
    assert_int_equal(green_destroy(outer), 0);
}

static void test_current_root_self_switch(void **state)
{
    (void)state;
    green_t root = green_current();
    assert_ptr_equal(root, green_root());
    assert_null(green_parent(root));
    assert_int_equal((intptr_t)green_switch(root, (void *)8), 8);
    errno = 0;
    assert_int_equal(green_destroy(root), -1);
    assert_int_equal(errno, EPERM);
    assert_string_equal(green_name(root), "root");
}

/* Reparenting: the result goes to the new parent; cycles are refused. */
static void *to_b_result(void *arg) { return arg; }
static void *b_fn(void *arg)
{
    green_t a = arg;
    void *r = green_switch(a, NULL); /* a returns to us */
    return (void *)((intptr_t)r + 100);
}

static void test_reparent_and_cycles(void **state)
{
    (void)state;
    green_t a = green_new(to_b_result, (void *)7, NULL);
    green_t b = green_new(b_fn, a, NULL);
    assert_int_equal(green_set_parent(a, b), 0);
    assert_ptr_equal(green_parent(a), b);
    errno = 0;
    assert_int_equal(green_set_parent(b, a), -1); /* b -> a -> b */
    assert_int_equal(errno, EINVAL);
    assert_int_equal(green_set_parent(a, a), -1);
    assert_int_equal(green_set_parent(green_root(), a), -1);
    assert_int_equal((intptr_t)green_switch(b, NULL), 107);
    green_destroy(a);
    green_destroy(b);
}

/* Throw into a started green thread: its pending switch returns NULL with errno. */
static void *catcher(void *arg)
{
    int *seen = arg;
    void *r = green_switch(green_parent(green_current()), (void *)1);
    seen[0] = r == NULL;
    seen[1] = errno;
    return (void *)2;
}

static void test_throw_started(void **state)
{
    (void)state;
    int seen[2] = {0, 0};
    green_t g = green_new(catcher, seen, NULL);
    assert_int_equal((intptr_t)green_switch(g, NULL), 1);
    void *r = green_throw(g, EPIPE);
    assert_int_equal((intptr_t)r, 2);
    assert_int_equal(seen[0], 1);
    assert_int_equal(seen[1], EPIPE);
    assert_int_equal(green_dead(g), 1);
    green_destroy(g);
}

/* Throw into an unstarted one: it dies without running, the throw lands in the parent. */
static int ran;
static void *mark_ran(void *arg)
{
    (void)arg;
    ran = 1;
    return NULL;
}

static void test_throw_unstarted(void **state)
{
    (void)state;
    ran = 0;
    green_t g = green_new(mark_ran, NULL, NULL);
    errno = 0;
    assert_null(green_throw(g, EIO));
    assert_int_equal(errno, EIO);
    assert_int_equal(ran, 0);
    assert_int_equal(green_dead(g), 1);
    assert_null(green_switch(g, NULL)); /* dead: lands in us with our value */
    green_destroy(g);
}

/* A plain NULL value is distinguishable from a throw: errno is 0. */
static void *give_null(void *arg)
{
    (void)arg;
    green_switch(green_parent(green_current()), NULL);
    return NULL;
}

static void test_null_value_errno_zero(void **state)
{
    (void)state;
    green_t g = green_new(give_null, NULL, NULL);
    errno = EBADF;
    assert_null(green_switch(g, NULL));
    assert_int_equal(errno, 0);
    green_destroy(g);
}

/* Destroying a suspended green thread resumes it with ECANCELED so it cleans up. */
static void *cleanup_fn(void *arg)
{
    int *cleaned = arg;
    void *r = green_switch(green_parent(green_current()), NULL);
    if (r == NULL && errno == ECANCELED)
        *cleaned = 1;
    return NULL;
}

static void test_destroy_suspended_runs_cleanup(void **state)
{
    (void)state;
    int cleaned = 0;
    green_t g = green_new(cleanup_fn, &cleaned, NULL);
    green_switch(g, NULL);
    assert_int_equal(green_destroy(g), 0);
    assert_int_equal(cleaned, 1);
    errno = 0;
    assert_int_equal(green_dead(g), -1);
    assert_int_equal(errno, ESRCH);
}

/* Stale handles give ESRCH, never a crash, even after the slot is reused. */
static void test_stale_handles(void **state)
{
    (void)state;
    green_t g = green_new(ret_arg, NULL, NULL);
    assert_int_equal(green_destroy(g), 0);
    green_t g2 = green_new(ret_arg, NULL, NULL); /* likely the same slot */
    errno = 0;
    assert_null(green_switch(g, NULL));
    assert_int_equal(errno, ESRCH);
    assert_int_equal(green_destroy(g), -1);
    assert_int_equal(errno, ESRCH);
    assert_int_equal(green_id(g), 0);
    assert_null(green_name(g));
    assert_null(green_parent(g));
    assert_int_equal(green_started(g), -1);
    assert_int_equal(green_set_parent(g, green_root()), -1);
    assert_null(green_throw(g, EIO));
    assert_int_equal(errno, ESRCH);
    errno = 0;
    assert_null(green_switch(NULL, NULL));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(green_destroy(g2), 0);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    errno = 0;
    assert_null(green_new(NULL, NULL, NULL));
    assert_int_equal(errno, EINVAL);
    green_attr_t a = {.stack_mode = 7};
    assert_null(green_new(ret_arg, NULL, &a));
    assert_int_equal(errno, EINVAL);
    green_attr_t small = {.stack_size = 100};
    assert_null(green_new(ret_arg, NULL, &small));
    assert_int_equal(errno, EINVAL);
    green_t g = green_new(ret_arg, NULL, NULL);
    assert_null(green_throw(g, 0));
    assert_int_equal(errno, EINVAL);
    green_destroy(g);
}

/* Names and ids. */
static void test_names_and_ids(void **state)
{
    (void)state;
    green_attr_t a = {.name = "worker"};
    green_t g = green_new(ret_arg, NULL, &a);
    green_t h = green_new(ret_arg, NULL, NULL);
    assert_string_equal(green_name(g), "worker");
    assert_string_equal(green_name(h), "");
    assert_true(green_id(g) != 0 && green_id(h) != 0 && green_id(g) != green_id(h));
    /* named after creation; renamed; unnamed again */
    assert_int_equal(green_set_name(h, "copier"), 0);
    assert_string_equal(green_name(h), "copier");
    assert_int_equal(green_set_name(g, "renamed"), 0);
    assert_string_equal(green_name(g), "renamed");
    assert_int_equal(green_set_name(g, NULL), 0);
    assert_string_equal(green_name(g), "");
    assert_int_equal(green_set_name(green_root(), "main"), 0);
    assert_string_equal(green_name(green_root()), "main");
    assert_int_equal(green_set_name(green_root(), NULL), 0);
    assert_string_equal(green_name(green_root()), "root");
    assert_int_equal(green_set_name(NULL, "x"), -1);
    assert_int_equal(errno, EINVAL);
    green_destroy(g);
    green_destroy(h);
    errno = 0;
    assert_int_equal(green_set_name(h, "stale"), -1);
    assert_int_equal(errno, ESRCH);
}

/* A handle used on another OS thread gives EXDEV. */
static void *other_thread(void *arg)
{
    green_t g = arg;
    intptr_t errs = 0;
    errno = 0;
    if (green_switch(g, NULL) == NULL && errno == EXDEV)
        errs++;
    if (green_destroy(g) == -1 && errno == EXDEV)
        errs++;
    if (green_set_parent(green_current(), g) == -1 && errno == EXDEV)
        errs++;
    if (green_set_name(g, "elsewhere") == -1 && errno == EXDEV)
        errs++;
    /* this thread has its own root */
    if (green_current() != g && green_dead(green_current()) == 0)
        errs++;
    return (void *)errs;
}

static void test_cross_thread_exdev(void **state)
{
    (void)state;
    green_t g = green_new(ret_arg, NULL, NULL);
    pthread_t t;
    void *r;
    pthread_create(&t, NULL, other_thread, g);
    pthread_join(t, &r);
    assert_int_equal((intptr_t)r, 5);
    assert_string_equal(green_name(g), "");
    assert_int_equal(green_destroy(g), 0);
}

/* Many create/switch/destroy cycles, both modes: nothing leaks (checked by ASan/valgrind). */
static void *bounce(void *arg)
{
    (void)arg;
    green_switch(green_parent(green_current()), (void *)1);
    return (void *)2;
}

static void test_create_destroy_loop(void **state)
{
    (void)state;
    for (int mode = 0; mode < 2; mode++) {
        green_attr_t a = {.stack_mode = mode};
        for (int i = 0; i < 20000; i++) {
            green_t g = green_new(bounce, NULL, &a);
            assert_non_null(g);
            assert_int_equal((intptr_t)green_switch(g, NULL), 1);
            if (i % 2) {
                assert_int_equal((intptr_t)green_switch(g, NULL), 2);
            }
            assert_int_equal(green_destroy(g), 0);
        }
    }
    green_stats_t st;
    green_stats(&st);
    assert_int_equal(st.alive, 0);
    assert_int_equal(st.shared_saved_bytes, 0);
}

/* ---- memory a few green threads touch ---- */

/* How many pages of [lo, hi) are resident (lo rounded down, hi up to pages). */
static size_t resident_pages(uintptr_t lo, uintptr_t hi)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    lo &= ~(uintptr_t)(pg - 1);
    hi = (hi + pg - 1) & ~(uintptr_t)(pg - 1);
    size_t n = (hi - lo) / pg, count = 0;
    unsigned char *vec = malloc(n);
    assert_non_null(vec);
    assert_int_equal(mincore((void *)lo, hi - lo, vec), 0);
    for (size_t i = 0; i < n; i++)
        count += vec[i] & 1;
    free(vec);
    return count;
}

/* A fresh hub with one green thread touches a few pages of its control-block chunk,
 * not the whole chunk (4,096 blocks, 448 KiB): blocks are handed out as needed. The
 * block's address is the handle without its generation (top 16 bits). */
static void *one_block(void *arg)
{
    (void)arg;
    green_t g = green_new(ret_arg, NULL, NULL), g2 = green_new(ret_arg, NULL, NULL);
    assert_non_null(g);
    assert_non_null(g2);
    uintptr_t mask = (((uintptr_t)1) << 48) - 1, p = (uintptr_t)g & mask;
    uintptr_t bsize = ((uintptr_t)g2 & mask) - p; /* handed out lowest address first */
    assert_true(bsize >= 64 && bsize < 65536);
    /* beyond the first batch of 64 blocks, well within the chunk of 4,096 */
    size_t n = resident_pages(p + 66 * bsize + 4096, p + 2000 * bsize);
    assert_int_equal(green_destroy(g), 0);
    assert_int_equal(green_destroy(g2), 0);
    return (void *)n;
}

static void test_blocks_touched_lazily(void **state)
{
    (void)state;
    pthread_t t;
    void *r;
    assert_int_equal(pthread_create(&t, NULL, one_block, NULL), 0);
    assert_int_equal(pthread_join(t, &r), 0);
    assert_int_equal((size_t)r, 0);
}

/* A green thread with a big stack (a green pthread's is a real thread's 8 MiB) that
 * once went deep leaves only its stack's top pages resident when it is released, as an
 * exiting thread does: the next owner of the pooled slot finds the deep pages gone. */
static __attribute__((noinline)) void *go_deep(void *arg)
{
    volatile char big[1024 * 1024];
    memset((char *)big, 1, sizeof big);
    return (void *)(uintptr_t)big[(uintptr_t)arg];
}

static void *deep_pages(void *arg)
{
    (void)arg;
    volatile char here = 0;
    uintptr_t top = (uintptr_t)&here;
    return (void *)resident_pages(top - 1024 * 1024, top - 64 * 1024);
}

static void test_big_stack_trimmed(void **state)
{
    (void)state;
    green_attr_t a = {.stack_size = 2 * 1024 * 1024};
    green_t g = green_new(go_deep, (void *)7, &a);
    assert_int_equal((intptr_t)green_switch(g, NULL), 1);
    green_t h = green_new(deep_pages, NULL, &a); /* the pool's hottest slot: g's */
    assert_int_equal((size_t)green_switch(h, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_both_ways),
        cmocka_unit_test(test_switch_to_dead_goes_to_ancestor),
        cmocka_unit_test(test_current_root_self_switch),
        cmocka_unit_test(test_reparent_and_cycles),
        cmocka_unit_test(test_throw_started),
        cmocka_unit_test(test_throw_unstarted),
        cmocka_unit_test(test_null_value_errno_zero),
        cmocka_unit_test(test_destroy_suspended_runs_cleanup),
        cmocka_unit_test(test_stale_handles),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_names_and_ids),
        cmocka_unit_test(test_cross_thread_exdev),
        cmocka_unit_test(test_create_destroy_loop),
        cmocka_unit_test(test_blocks_touched_lazily),
        cmocka_unit_test(test_big_stack_trimmed),
    };
    return cmocka_run_group_tests_name("green", tests, NULL, NULL);
}
