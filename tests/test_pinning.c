/*
 * test_pinning.c — the pinning detector, on by default under tools/greenrun: a plain
 * pthread program (tests/progs/pin.c, built without libgreen) holds its hub five times at
 * one place, in each of the ways libgreen cannot make cooperative, while its main thread
 * waits to join it; run by `greenrun --threads` with GREEN_PATCH_REPORT=1 and
 * GREEN_MONITOR_MS left to greenrun. What it wrote to stderr must name the place once
 * (the blocking function, the call site), while it is still held, close the episode
 * with its duration, and list it at exit with its count. The same waits made
 * cooperatively are not reported.
 */
#include "green_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef GREENRUN
#error "GREENRUN: the path of the build tree's tools/greenrun"
#endif

static char out[1 << 16];

/* `greenrun --threads pin MODE`, stderr and stdout into out: the exit status. */
static int run_pin(const char *mode)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        /* an ASan build of the library must not insist on coming first */
        setenv("ASAN_OPTIONS", "verify_asan_link_order=0:detect_leaks=0", 1);
        setenv("GREEN_PATCH_REPORT", "1", 1);
        unsetenv("GREEN_MONITOR_MS"); /* greenrun's default */
        execl("/bin/sh", "sh", GREENRUN, "--threads", PROGS_DIR "/pin", mode, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < sizeof out && (r = read(p[0], out + n, sizeof out - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(p[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    /* the symbol report greenrun's --report prints at start is not of interest here */
    for (char *line = out; *line;) {
        char *nl = strchr(line, '\n');
        if (strncmp(line, "green-patch: ", 13) == 0 && strstr(line, "patched"))
            memmove(line, nl ? nl + 1 : line + strlen(line), strlen(nl ? nl + 1 : "") + 1);
        else
            line = nl ? nl + 1 : line + strlen(line);
    }
    printf("%s", out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void assert_has(const char *what)
{
    if (!strstr(out, what)) {
        print_error("expected \"%s\" in what the program wrote\n", what);
        fail();
    }
}

static int count_of(const char *what)
{
    int n = 0;
    for (const char *p = out; (p = strstr(p, what)); p++)
        n++;
    return n;
}

/* The first line at or after `from` that has both a and b (its start), or NULL. */
static const char *line_with(const char *from, const char *a, const char *b)
{
    for (const char *line = from; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        const char *pa = strstr(line, a), *pb = strstr(line, b);
        if (pa && pb && pa < line + len && pb < line + len)
            return line;
        line = nl ? nl + 1 : NULL;
    }
    return NULL;
}

/* The program held its hub five times at one place, described by `what`: */
static void check_pinned(const char *mode, const char *what)
{
    assert_int_equal(run_pin(mode), 0); /* every wait got what it waited for: no EINTR */
    /* named once, while the first hold (1 s) was going on: before it ended (a loaded
     * machine may hold the hub elsewhere too: other places are not looked at) */
    const char *start = line_with(out, " blocked for ", what);
    assert_non_null(start);
    assert_null(line_with(strchr(start, '\n'), " blocked for ", what));
    const char *first_done = strstr(out, "pin: 1 done");
    assert_non_null(first_done);
    assert_true(start < first_done);
    /* the end of that episode, with its duration */
    const char *end = line_with(start, " was held ", what);
    assert_non_null(end);
    assert_true(atol(strstr(end, " was held ") + strlen(" was held ")) >= 100);
    /* the summary at exit: five times at that place */
    assert_non_null(line_with(out, "green-patch:   5 times, ", what));
}

/* A raw system call: syscall(SYS_read) on a pipe. */
static void test_raw_syscall(void **state)
{
    (void)state;
    check_pinned("syscall", "pinned in syscall() [system call 0], called from pin_syscall+");
}

/* stdio's internal read under fgets. */
static void test_stdio_read(void **state)
{
    (void)state;
    check_pinned("fgets", "pinned in read() via fgets() [system call 0], called from pin_fgets+");
}

/* An unwrapped blocking function the kernel never restarts after a signal handler:
 * the monitor's signal must not make it fail (the program checks). */
static void test_unwrapped_msgrcv(void **state)
{
    (void)state;
    check_pinned("msgrcv", "pinned in msgrcv() ");
    assert_has("called from pin_msgrcv+");
}

/* A sigwait with every signal blocked, SIGURG included (a raw rt_sigtimedwait: the
 * wrapped sigwait is cooperative): the detector sends no signal (it would be taken) and
 * scans the stack; the program checks it got only its SIGUSR1. */
static void test_sigwait_all_blocked(void **state)
{
    (void)state;
    char what[64];
    snprintf(what, sizeof what, "pinned in syscall() [system call %d]", (int)SYS_rt_sigtimedwait);
    check_pinned("sigwait", what);
    assert_has("called from pin_sigwait+");
    assert_has("frames found by scanning its stack");
}

/* Computing: reported as busy, in the program's function. */
static void test_busy(void **state)
{
    (void)state;
    check_pinned("busy", ": busy in spin()");
}

/* The same waits made cooperatively (read, poll, nanosleep): nothing is reported. */
static void test_quiet(void **state)
{
    (void)state;
    assert_int_equal(run_pin("quiet"), 0);
    assert_int_equal(count_of("libgreen monitor"), 0);
    assert_has("green-patch: pinning: no hub was held for more than 100 ms");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw_syscall),      cmocka_unit_test(test_stdio_read),
        cmocka_unit_test(test_unwrapped_msgrcv), cmocka_unit_test(test_sigwait_all_blocked),
        cmocka_unit_test(test_busy),             cmocka_unit_test(test_quiet),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
