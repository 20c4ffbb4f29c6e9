/* test_proc.c — green_waitpid: green threads wait for real child processes, each for its
 * own, while the hub runs the rest: exit codes, deaths by signal, deadlines (the child
 * stays reapable), kills, non-children, SIGCHLD waited for at the same time, another OS
 * thread's hub, and the polling fallback for kernels without pidfd_open (after gevent's
 * test__subprocess.py and test__os.py).
 *
 * The scenarios return 0 or the line of the first check that failed, so that the same
 * code also runs in a child process where pidfd_open is forbidden. */
#include "green_test.h"

#include <dirent.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(cond)              \
    do {                         \
        if (!(cond))             \
            return __LINE__;     \
    } while (0)

static int open_fds_at_start;

static int count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* Beyond an idle hub: every pidfd closed. */
static void assert_all_clear(void)
{
    assert_hub_idle();
    assert_int_equal(count_open_fds(), open_fds_at_start);
}

/* A child that sleeps ms, then exits with code; -1 if fork failed. */
static pid_t child(int ms, int code)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        usleep((useconds_t)ms * 1000);
        _exit(code);
    }
    return pid;
}

/* Not reaped yet (running or a zombie), without reaping it. */
static int unreaped(pid_t pid)
{
    siginfo_t si;
    return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0;
}

static int exited_with(int status, int code)
{
    return WIFEXITED(status) && WEXITSTATUS(status) == code;
}

/* A green_waitpid in its own green thread; the outcome in the record it is given. */
struct reap {
    pid_t pid;
    int64_t deadline;
    pid_t r;
    int status, err;
};

static void *reap(void *arg)
{
    struct reap *w = arg;
    errno = 0;
    w->r = green_waitpid(w->pid, &w->status, w->deadline);
    w->err = errno;
    return NULL;
}

/* ======================================================================== */
/*  Scenarios (also run without pidfd_open)                                 */
/* ======================================================================== */

/* The exit code comes back in the status; status may be NULL. */
static int exit_status(void)
{
    pid_t pid = child(20, 7);
    CHECK(pid > 0);
    int status = 0;
    CHECK(green_waitpid(pid, &status, green_after(LATE_MS)) == pid);
    CHECK(exited_with(status, 7));
    pid = child(0, 0);
    CHECK(green_waitpid(pid, NULL, green_after(LATE_MS)) == pid);
    CHECK(!unreaped(pid));
    return 0;
}

/* pid > 0 only; a process that is not our child (or no longer is) gives ECHILD. */
static int not_a_child(void)
{
    pid_t bad[] = {0, -1, -getpid()};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        CHECK(green_waitpid(bad[i], NULL, -1) == -1 && errno == EINVAL);
    }
    errno = 0;
    CHECK(green_waitpid(getppid(), NULL, -1) == -1 && errno == ECHILD);
    errno = 0;
    CHECK(green_waitpid(1, NULL, -1) == -1 && errno == ECHILD);
    pid_t pid = child(0, 0);
    CHECK(green_waitpid(pid, NULL, -1) == pid);
    errno = 0;
    CHECK(green_waitpid(pid, NULL, -1) == -1 && errno == ECHILD); /* reaped already */
    return 0;
}

/* A child killed by a signal while a green thread waits for it. */
static int killed_by_signal(void)
{
    int sigs[] = {SIGTERM, SIGKILL};
    for (int i = 0; i < 2; i++) {
        struct reap w = {.pid = child(10000, 0), .deadline = green_after(LATE_MS)};
        CHECK(w.pid > 0);
        green_t g = green_spawn(reap, &w);
        CHECK(green_sleep(20) == 0);
        CHECK(kill(w.pid, sigs[i]) == 0);
        CHECK(green_join(g, NULL, -1) == 0);
        CHECK(w.r == w.pid);
        CHECK(WIFSIGNALED(w.status) && WTERMSIG(w.status) == sigs[i]);
    }
    return 0;
}

/* A wait whose deadline passes leaves the child to a later wait; 0 only looks. */
static int deadline_then_reap(void)
{
    int64_t t0 = green_now(); /* before the child starts its 300 ms */
    pid_t pid = child(300, 3);
    CHECK(pid > 0);
    int status = -1;
    errno = 0;
    CHECK(green_waitpid(pid, &status, green_after(30)) == -1 && errno == ETIMEDOUT);
    CHECK(green_now() - t0 >= 30);
    CHECK(status == -1);
    CHECK(unreaped(pid));
    errno = 0;
    CHECK(green_waitpid(pid, &status, 0) == -1 && errno == ETIMEDOUT);
    CHECK(green_timeout_push(10) == 0); /* a scoped deadline applies too */
    errno = 0;
    CHECK(green_waitpid(pid, &status, -1) == -1 && errno == ETIMEDOUT);
    CHECK(green_timeout_pop() == 0);
    CHECK(green_waitpid(pid, &status, -1) == pid);
    CHECK(exited_with(status, 3));
    CHECK(green_now() - t0 >= 300);
    return 0;
}

/* A killed waiter gets ECANCELED and leaves the child unreaped. */
static int kill_waiter(void)
{
    struct reap w = {.pid = child(10000, 0), .deadline = -1};
    CHECK(w.pid > 0);
    green_t g = green_spawn(reap, &w);
    CHECK(green_sleep(10) == 0);
    CHECK(green_kill(g) == 0);
    CHECK(green_join(g, NULL, -1) == 0);
    CHECK(w.r == -1 && w.err == ECANCELED);
    CHECK(unreaped(w.pid));
    CHECK(kill(w.pid, SIGKILL) == 0);
    int status;
    CHECK(green_waitpid(w.pid, &status, green_after(LATE_MS)) == w.pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    return 0;
}

/* n green threads each fork a child (varied sleeps and exit codes) and wait for it, all
 * at once; a ticker shows the hub running meanwhile. */
struct kid {
    int i;
    pid_t pid;
    pid_t r;
    int status;
};

static int kid_ms(int i) { return (i * 7) % 50; }
static int kid_code(int i) { return (i * 37 + 11) % 256; }

static void *fork_and_reap(void *arg)
{
    struct kid *k = arg;
    k->pid = child(kid_ms(k->i), kid_code(k->i));
    if (k->pid > 0)
        k->r = green_waitpid(k->pid, &k->status, green_after(10 * LATE_MS));
    return NULL;
}

static int many_children(int n)
{
    struct kid *kids = calloc((size_t)n, sizeof *kids);
    green_t *gs = calloc((size_t)n, sizeof *gs);
    CHECK(kids && gs);
    green_attr_t shared = {.stack_mode = GREEN_STACK_SHARED};
    long ticks = 0;
    green_t t = green_spawn(count_ticks, &ticks);
    for (int i = 0; i < n; i++) {
        kids[i].i = i;
        gs[i] = green_spawn_attr(fork_and_reap, &kids[i], i % 2 ? &shared : NULL);
        CHECK(gs[i]);
    }
    CHECK(green_joinall(gs, (size_t)n, -1) == 0);
    for (int i = 0; i < n; i++) {
        CHECK(kids[i].pid > 0);
        CHECK(kids[i].r == kids[i].pid);
        CHECK(exited_with(kids[i].status, kid_code(i)));
    }
    CHECK(ticks > 0);
    CHECK(green_kill(t) == 0 && green_join(t, NULL, -1) == 0);
    free(kids);
    free(gs);
    return 0;
}

#define MANY (200 / GREEN_TEST_SCALE > 2 ? 200 / GREEN_TEST_SCALE : 2)

/* ======================================================================== */
/*  Tests                                                                   */
/* ======================================================================== */

static void test_exit_status(void **state)
{
    (void)state;
    assert_int_equal(exit_status(), 0);
    assert_all_clear();
}

static void test_not_a_child(void **state)
{
    (void)state;
    assert_int_equal(not_a_child(), 0);
    assert_all_clear();
}

static void test_killed_by_signal(void **state)
{
    (void)state;
    assert_int_equal(killed_by_signal(), 0);
    assert_all_clear();
}

static void test_deadline_then_reap(void **state)
{
    (void)state;
    assert_int_equal(deadline_then_reap(), 0);
    assert_all_clear();
}

static void test_kill_waiter(void **state)
{
    (void)state;
    assert_int_equal(kill_waiter(), 0);
    assert_all_clear();
}

static void test_many_children(void **state)
{
    (void)state;
    assert_int_equal(many_children(MANY), 0);
    assert_all_clear();
}

/* A child that has exited already is reaped at once, even by a wait that only polls. */
static void test_already_exited(void **state)
{
    (void)state;
    pid_t pid = child(0, 9);
    assert_true(pid > 0);
    siginfo_t si;
    assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0); /* a zombie now */
    int status;
    assert_int_equal(green_waitpid(pid, &status, 0), pid);
    assert_true(exited_with(status, 9));
    assert_all_clear();
}

/* SIGCHLD and green_waitpid do not get in each other's way: one green thread waits for
 * the signal, another for the child, and the child's exit ends both waits. */
static void test_sigchld_and_waitpid(void **state)
{
    (void)state;
    while (green_signal_wait(SIGCHLD, 0) == SIGCHLD) {
        /* one left pending by earlier children (were SIGCHLD blocked before) would end
         * the wait below before our child exits */
    }
    struct reap w = {.pid = child(30, 5), .deadline = green_after(LATE_MS)};
    assert_true(w.pid > 0);
    green_t g = green_spawn(reap, &w);
    assert_int_equal(green_signal_wait(SIGCHLD, green_after(LATE_MS)), SIGCHLD);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(w.r, w.pid);
    assert_true(exited_with(w.status, 5));
    assert_all_clear();
}

/* Any OS thread's hub can wait for the process's children: here a pthread reaps a child
 * that main() forked, while main() waits in its own hub. */
static void test_child_reaped_by_another_os_thread(void **state)
{
    (void)state;
    struct reap w = {.pid = child(30, 4), .deadline = green_after(LATE_MS)};
    assert_true(w.pid > 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, reap, &w), 0);
    assert_int_equal(green_sleep(50), 0);
    pthread_join(t, NULL);
    assert_int_equal(w.r, w.pid);
    assert_true(exited_with(w.status, 4));
    assert_all_clear();
}

/* Make pidfd_open fail with ENOSYS in this process, as on a kernel older than 5.3 or
 * under a seccomp profile that does not know it. */
static int forbid_pidfd_open(void)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pidfd_open, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof filter / sizeof filter[0], .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        return -1;
    errno = 0;
    return syscall(SYS_pidfd_open, getpid(), 0) == -1 && errno == ENOSYS ? 0 : -1;
}

#define SKIPPED 77

/* 0, or the line of the first failed check */
static int all_scenarios_without_pidfd(void)
{
    green_poller_name();
    int fds = count_open_fds();
    int line;
    if ((line = exit_status()) || (line = not_a_child()) || (line = killed_by_signal()) ||
        (line = deadline_then_reap()) || (line = kill_waiter()) ||
        (line = many_children(MANY / 4 > 2 ? MANY / 4 : 2)))
        return line;
    CHECK(count_open_fds() == fds);
    return 0;
}

/* Every scenario again in a child process where pidfd_open is missing: green_waitpid
 * polls with back-off instead. */
static void test_fallback_without_pidfd(void **state)
{
    (void)state;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (forbid_pidfd_open() != 0)
            _exit(SKIPPED); /* no seccomp here (an emulator, say) */
        int line = all_scenarios_without_pidfd();
        if (line)
            fprintf(stderr, "test_proc.c:%d: failed without pidfd_open\n", line);
        _exit(line ? 1 : 0);
    }
    int status;
    assert_int_equal(green_waitpid(pid, &status, green_after(30000)), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == SKIPPED)
        skip();
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_all_clear();
}

int main(void)
{
    green_poller_name(); /* the hub's own fds are open before we count */
    open_fds_at_start = count_open_fds();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_status),
        cmocka_unit_test(test_not_a_child),
        cmocka_unit_test(test_killed_by_signal),
        cmocka_unit_test(test_deadline_then_reap),
        cmocka_unit_test(test_kill_waiter),
        cmocka_unit_test(test_many_children),
        cmocka_unit_test(test_already_exited),
        cmocka_unit_test(test_sigchld_and_waitpid),
        cmocka_unit_test(test_child_reaped_by_another_os_thread),
        cmocka_unit_test(test_fallback_without_pidfd),
    };
    return cmocka_run_group_tests_name("proc", tests, NULL, NULL);
}
