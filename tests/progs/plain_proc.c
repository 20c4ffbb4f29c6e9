/*
 * plain_proc.c — waiting for children as a plain pthread program does (no libgreen):
 * waitpid, wait, wait3, wait4, waitid, system(), popen()/pclose(). The answers must be
 * glibc's, plainly and under `greenrun --threads`, where each check's thread is a green
 * thread and the waits park it while the ticker thread goes on.
 *
 *   plain_proc [CHECK]    (a name below, or "all": prints "ok NAME" for each)
 */
#define _GNU_SOURCE
#include "prog.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* A child that sleeps ms, then exits with code. */
static pid_t child(int ms, int code)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        usleep((useconds_t)ms * 1000);
        _exit(code);
    }
    return pid;
}

/* waitpid parks until the child exits; errno untouched; other threads ran meanwhile. */
static void check_waitpid(void)
{
    pid_t pid = child(60, 3);
    long t0 = ticks_now();
    int st = 0;
    errno = 1234;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK_EQ(errno, 1234);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3);
    CHECK(TICKED(t0));
}

/* Any child: wait, wait3 and wait4 (with rusage), in the order they exit. */
static void check_any(void)
{
    pid_t a = child(60, 1), b = child(120, 2);
    int st = 0, st2 = 0;
    long t0 = ticks_now();
    pid_t first = wait(&st);
    CHECK(TICKED(t0));
    struct rusage ru;
    memset(&ru, 0xff, sizeof ru);
    pid_t second = wait3(&st2, 0, &ru);
    /* in the order they exit (a first, unless the machine held it back that long) */
    CHECK((first == a && second == b) || (first == b && second == a));
    CHECK_EQ(WEXITSTATUS(first == a ? st : st2), 1);
    CHECK_EQ(WEXITSTATUS(first == a ? st2 : st), 2);
    CHECK(ru.ru_utime.tv_usec >= 0 && ru.ru_utime.tv_usec < 1000000 && ru.ru_maxrss > 0);
    pid_t c = child(30, 4);
    memset(&ru, 0xff, sizeof ru);
    CHECK_EQ(wait4(c, &st, 0, &ru), c);
    CHECK_EQ(WEXITSTATUS(st), 4);
    CHECK(ru.ru_maxrss > 0);
    CHECK_ERR(wait(&st), ECHILD);
}

/* Process groups: -pgid, and 0 for the caller's own. */
static void check_group(void)
{
    pid_t a = fork();
    CHECK(a >= 0);
    if (a == 0) {
        setpgid(0, 0);
        usleep(60 * 1000);
        _exit(5);
    }
    setpgid(a, a); /* (whichever side runs first) */
    pid_t b = child(120, 6);
    int st = 0;
    long t0 = ticks_now();
    CHECK_EQ(waitpid(-a, &st, 0), a);
    CHECK(TICKED(t0));
    CHECK_EQ(WEXITSTATUS(st), 5);
    CHECK_EQ(waitpid(0, &st, 0), b);
    CHECK_EQ(WEXITSTATUS(st), 6);
}

/* WUNTRACED and WCONTINUED: a stop and a continue, then a death by signal. */
static void check_stopped(void)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        raise(SIGSTOP);
        for (;;)
            pause();
    }
    int st = 0;
    CHECK_EQ(waitpid(pid, &st, WUNTRACED), pid);
    CHECK(WIFSTOPPED(st) && WSTOPSIG(st) == SIGSTOP);
    CHECK_EQ(kill(pid, SIGCONT), 0);
    CHECK_EQ(waitpid(pid, &st, WCONTINUED), pid);
    CHECK(WIFCONTINUED(st));
    CHECK_EQ(kill(pid, SIGTERM), 0);
    CHECK_EQ(waitpid(pid, &st, WUNTRACED | WCONTINUED), pid);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
}

/* waitid: P_PID, P_ALL with WNOWAIT (the child stays to be reaped), P_PIDFD. */
static void check_waitid(void)
{
    siginfo_t si;
    pid_t pid = child(60, 7);
    memset(&si, 0, sizeof si);
    long t0 = ticks_now();
    CHECK_EQ(waitid(P_PID, (id_t)pid, &si, WEXITED), 0);
    CHECK(TICKED(t0));
    CHECK(si.si_pid == pid && si.si_signo == SIGCHLD && si.si_code == CLD_EXITED && si.si_status == 7);
    pid = child(30, 8);
    memset(&si, 0, sizeof si);
    CHECK_EQ(waitid(P_ALL, 0, &si, WEXITED | WNOWAIT), 0);
    CHECK(si.si_pid == pid && si.si_status == 8);
    int st = 0;
    CHECK_EQ(waitpid(pid, &st, 0), pid); /* WNOWAIT left it there */
    CHECK_EQ(WEXITSTATUS(st), 8);
    pid = child(30, 9);
    CHECK_EQ(waitid(P_PID, (id_t)pid, NULL, WEXITED), 0); /* a NULL siginfo is allowed */
    CHECK_ERR(waitpid(pid, &st, 0), ECHILD);
#ifdef SYS_pidfd_open
    pid = child(30, 10);
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0) {
        memset(&si, 0, sizeof si);
        CHECK_EQ(waitid(P_PIDFD, (id_t)fd, &si, WEXITED), 0);
        CHECK(si.si_pid == pid && si.si_status == 10);
        close(fd);
    } else {
        CHECK_EQ(waitpid(pid, &st, 0), pid);
    }
#endif
}

/* The errors are the kernel's. */
static void check_errors(void)
{
    int st;
    siginfo_t si;
    CHECK_ERR(waitpid(-1, &st, 0), ECHILD);
    CHECK_ERR(waitpid(1, &st, 0), ECHILD); /* not our child */
    CHECK_ERR(waitpid(-1, &st, 0x10000000), EINVAL);
    CHECK_ERR(wait(NULL), ECHILD);
    CHECK_ERR(wait3(&st, 0, NULL), ECHILD);
    CHECK_ERR(waitid(P_PID, 0, &si, WEXITED), EINVAL);
    CHECK_ERR(waitid((idtype_t)17, 0, &si, WEXITED), EINVAL);
    CHECK_ERR(waitid(P_ALL, 0, &si, 0), EINVAL); /* nothing to wait for */
    CHECK_ERR(waitid(P_ALL, 0, &si, WEXITED), ECHILD);
    pid_t pid = child(50, 0);
    memset(&si, 0x5a, sizeof si);
    CHECK_EQ(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG), 0);
    CHECK_EQ(si.si_pid, 0); /* running: WNOHANG says nothing */
    CHECK_EQ(waitpid(pid, &st, WNOHANG), 0);
    CHECK_EQ(waitpid(pid, &st, 0), pid);
}

static int chld_count;
static void on_chld(int sig)
{
    (void)sig;
    __atomic_add_fetch(&chld_count, 1, __ATOMIC_RELAXED);
}

/* system(): statuses, the shell's signals, and the caller's signals while it waits. */
static void check_system(void)
{
    CHECK(system(NULL) != 0);
    int st = system("exit 7");
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7);
    st = system("kill -TERM $$");
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
    /* SIGINT at its default in the caller: the shell gets it at its default too */
    st = system("kill -INT $$; exit 0");
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT);
    /* the caller ignores SIGINT while it waits (a SIGINT would end the process) */
    st = system("kill -INT $PPID; exit 3");
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3);
    struct sigaction sa;
    CHECK_EQ(sigaction(SIGINT, NULL, &sa), 0);
    CHECK(sa.sa_handler == SIG_DFL); /* and no longer after */
    /* the shell starts with the caller's mask: a blocked SIGUSR1 does not kill it */
    sigset_t usr1, old;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    CHECK_EQ(pthread_sigmask(SIG_BLOCK, &usr1, &old), 0);
    st = system("kill -USR1 $$; exit 4");
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 4);
    CHECK_EQ(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
    /* SIGCHLD reaches the program's handler (after system() returns at the latest) */
    struct sigaction chld = {.sa_handler = on_chld}, prev;
    sigemptyset(&chld.sa_mask);
    CHECK_EQ(sigaction(SIGCHLD, &chld, &prev), 0);
    long t0 = ticks_now();
    CHECK_EQ(system("sleep 0.05"), 0);
    CHECK(TICKED(t0));
    while (__atomic_load_n(&chld_count, __ATOMIC_RELAXED) == 0)
        usleep(1000);
    CHECK_EQ(sigaction(SIGCHLD, &prev, NULL), 0);
}

/* popen() and pclose(): both directions, statuses, modes, close-on-exec, and the
 * earlier streams closed in a later child. */
static void check_popen(void)
{
    char line[64];
    FILE *f = popen("echo hi; sleep 0.05; exit 4", "r");
    CHECK(f != NULL);
    CHECK(fgets(line, sizeof line, f) && strcmp(line, "hi\n") == 0); /* (stdio: pins the thread) */
    long t0 = ticks_now();
    int st = pclose(f); /* parks */
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 4);
    CHECK(TICKED(t0));
    f = popen("read x; exit $x", "w");
    CHECK(f != NULL);
    CHECK(fputs("5\n", f) >= 0);
    st = pclose(f);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 5);
    /* fclose of a popen stream waits for the command too */
    f = popen("exit 3", "r");
    CHECK(f != NULL);
    st = fclose(opaque_ptr(f));
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3);
    errno = 0;
    CHECK(popen("true", "x") == NULL && errno == EINVAL);
    errno = 0;
    CHECK(popen("true", "rw") == NULL && errno == EINVAL);
    errno = 0;
    CHECK(popen("true", "") == NULL && errno == EINVAL);
    f = popen("true", "re");
    CHECK(f != NULL && (fcntl(fileno(f), F_GETFD) & FD_CLOEXEC));
    CHECK_EQ(pclose(f), 0);
    f = popen("true", "r");
    CHECK(f != NULL && !(fcntl(fileno(f), F_GETFD) & FD_CLOEXEC));
    CHECK_EQ(pclose(f), 0);
    /* the command of a second popen does not hold the first one's pipe: closing the
     * first ends its cat while the second still runs */
    FILE *cat = popen("cat >/dev/null", "w");
    FILE *slow = popen("echo $$; exec sleep 30", "r");
    CHECK(cat && slow && fgets(line, sizeof line, slow));
    pid_t slow_pid = (pid_t)atol(line);
    CHECK_EQ(pclose(cat), 0);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    CHECK_EQ(waitid(P_PID, (id_t)slow_pid, &si, WEXITED | WNOHANG | WNOWAIT), 0);
    CHECK_EQ(si.si_pid, 0); /* still running */
    CHECK_EQ(kill(slow_pid, SIGTERM), 0);
    st = pclose(slow);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
}

/* waitpid and system are cancellation points. */
static void block_waitpid(void *arg)
{
    int st;
    waitpid(*(pid_t *)arg, &st, 0);
}

static void block_system(void *arg)
{
    (void)arg;
    system("exec sleep 30"); /* (exec: the process killed is the sleep) */
}

static void check_cancel(void)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        for (;;)
            pause();
    }
    check_cancelled(block_waitpid, &pid);
    int st;
    CHECK_EQ(waitpid(pid, &st, WNOHANG), 0); /* left for a later wait */
    CHECK_EQ(kill(pid, SIGKILL), 0);
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    check_cancelled(block_system, NULL); /* its shell is killed and reaped */
    CHECK_ERR(waitpid(-1, &st, WNOHANG), ECHILD);
}

int main(int argc, char **argv)
{
    static const struct prog_test tests[] = {
        {"waitpid", check_waitpid}, {"any", check_any},       {"group", check_group},
        {"stopped", check_stopped}, {"waitid", check_waitid}, {"errors", check_errors},
        {"system", check_system},   {"popen", check_popen},   {"cancel", check_cancel},
    };
    return prog_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
