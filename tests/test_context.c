/* test_context.c — what a context switch must preserve, and what debuggers see. */
#include <green.h>

#include <errno.h>
#include <fenv.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

/* Each green thread keeps its own floating-point rounding mode (MXCSR and the x87
 * control word on x86-64, FPCR on aarch64) across switches. */
static void *rounding_worker(void *arg)
{
    int mode = (int)(intptr_t)arg;
    fesetround(mode);
    for (int i = 0; i < 100; i++) {
        if (fegetround() != mode)
            return (void *)1;
        green_switch(green_parent(green_current()), NULL);
    }
    return (void *)(intptr_t)(fegetround() != mode);
}

static void test_fp_control_words_per_green_thread(void **state)
{
    (void)state;
    fesetround(FE_TONEAREST);
    green_t up = green_new(rounding_worker, (void *)(intptr_t)FE_UPWARD, NULL);
    green_t down = green_new(rounding_worker, (void *)(intptr_t)FE_DOWNWARD, NULL);
    green_attr_t shared = {.stack_mode = GREEN_STACK_SHARED};
    green_t zero = green_new(rounding_worker, (void *)(intptr_t)FE_TOWARDZERO, &shared);
    for (int i = 0; i < 101; i++) {
        void *a = green_switch(up, NULL);
        assert_int_equal(fegetround(), FE_TONEAREST);
        void *b = green_switch(down, NULL);
        assert_int_equal(fegetround(), FE_TONEAREST);
        void *c = green_switch(zero, NULL);
        assert_int_equal(fegetround(), FE_TONEAREST);
        if (i == 100) {
            assert_null(a);
            assert_null(b);
            assert_null(c);
        }
    }
    assert_int_equal(green_dead(up), 1);
    green_destroy(up);
    green_destroy(down);
    green_destroy(zero);
}

/* Callee-saved registers survive: values held in registers across a switch. */
static void *reg_worker(void *arg)
{
    (void)arg;
    register uint64_t a = 0x1111, b = 0x2222, c = 0x3333, d = 0x4444;
    for (int i = 0; i < 1000; i++) {
        green_switch(green_parent(green_current()), NULL);
        a += 1, b += 2, c += 3, d += 4;
    }
    return (void *)(uintptr_t)(a + b + c + d == 0x1111 + 0x2222 + 0x3333 + 0x4444 + 10000);
}

static void test_registers_survive(void **state)
{
    (void)state;
    green_t g1 = green_new(reg_worker, NULL, NULL);
    green_t g2 = green_new(reg_worker, NULL, NULL);
    volatile double x = 1.5;
    void *r1 = NULL, *r2 = NULL;
    for (int i = 0; i <= 1000; i++) {
        r1 = green_switch(g1, NULL);
        r2 = green_switch(g2, NULL);
        x *= 1.0;
    }
    assert_int_equal((uintptr_t)r1, 1);
    assert_int_equal((uintptr_t)r2, 1);
    assert_true(x == 1.5);
    green_destroy(g1);
    green_destroy(g2);
}

/* gdb backtraces the running green thread down to its entry function and stops
 * there cleanly. Runs the test binary itself under gdb in batch mode. */
void *gdb_target_fn(void *arg);
__attribute__((noinline)) void *gdb_target_fn(void *arg)
{
    raise(SIGTRAP); /* gdb stops here */
    return arg;
}

static void run_gdb_target(void)
{
    green_t g = green_new(gdb_target_fn, NULL, NULL);
    green_switch(g, NULL);
    exit(0);
}

static void test_gdb_backtrace(void **state)
{
    (void)state;
    /* a host gdb cannot run a program built for the emulated machine */
    if (getenv("GREEN_TEST_EMULATOR") || system("command -v gdb >/dev/null 2>&1") != 0)
        skip();
    char exe[512];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = 0;
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "gdb -q -batch -ex run -ex bt --args %s gdb-target 2>&1", exe);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char out[16384];
    size_t len = fread(out, 1, sizeof out - 1, p);
    out[len] = 0;
    pclose(p);
    if (strstr(out, "ptrace") && strstr(out, "not permitted"))
        skip();
    /* the trace reaches the green thread's function and its entry frame, and ends */
    assert_non_null(strstr(out, "gdb_target_fn"));
    assert_non_null(strstr(out, "entry"));
    assert_null(strstr(out, "corrupt stack"));
    assert_null(strstr(out, "Backtrace stopped: previous frame inner"));
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "gdb-target") == 0)
        run_gdb_target();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp_control_words_per_green_thread),
        cmocka_unit_test(test_registers_survive),
        cmocka_unit_test(test_gdb_backtrace),
    };
    return cmocka_run_group_tests_name("context", tests, NULL, NULL);
}
