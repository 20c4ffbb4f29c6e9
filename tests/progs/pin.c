/* pin.c — a plain pthread program, built without libgreen, that tests/test_pinning.c
 * runs under `greenrun --threads`: one thread holds the OS thread (the hub, once threads
 * are green) five times at one place while main waits to join it, in the way MODE says:
 *
 *   syscall  syscall(SYS_read) on a pipe (a raw system call)
 *   fgets    fgets on a pipe (stdio's internal read)
 *   msgrcv   msgrcv on a System V queue (not wrapped; the kernel never restarts it)
 *   sigwait  rt_sigtimedwait for any signal as a raw system call, every signal blocked
 *            (SIGURG too; libgreen-patch makes sigwait itself cooperative)
 *   busy     computing for a while
 *   quiet    the same waits made cooperatively: read, poll, nanosleep (nothing held)
 *
 * A child process produces what the thread waits for, 1 s after the thread says it is
 * about to wait the first time, 300 ms the other times. After each wait the thread
 * writes "pin: N done" to stderr. Exits 0 when every wait got what it waited for.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/msg.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TIMES 5

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "pin: %s:%d: %s failed (errno %d)\n", __FILE__, __LINE__, \
                    #cond, errno);                                                     \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

static const char *mode;
static int data[2], ready[2], queue = -1;
static FILE *in;

struct msg {
    long type;
    char text[8];
};

/* The child: waits for each "ready", then produces one item. */
static void producer(pid_t parent)
{
    close(ready[1]); /* so that the parent's end makes read() here see the end */
    close(data[0]);
    for (int i = 0; i < TIMES; i++) {
        char c;
        if (read(ready[0], &c, 1) != 1)
            _exit(1);
        usleep(i == 0 ? 1000 * 1000 : 300 * 1000);
        struct msg m = {1, "item"};
        if (strcmp(mode, "msgrcv") == 0)
            CHECK(msgsnd(queue, &m, sizeof m.text, 0) == 0);
        else if (strcmp(mode, "sigwait") == 0)
            CHECK(kill(parent, SIGUSR1) == 0);
        else
            CHECK(write(data[1], "item\n", 5) == 5);
    }
    _exit(0);
}

static __attribute__((noinline)) void pin_syscall(void)
{
    char buf[8];
    CHECK(syscall(SYS_read, data[0], buf, sizeof buf) == 5);
}

static __attribute__((noinline)) void pin_fgets(void)
{
    char buf[16];
    CHECK(fgets(buf, sizeof buf, in) && strcmp(buf, "item\n") == 0);
}

static __attribute__((noinline)) void pin_msgrcv(void)
{
    struct msg m;
    CHECK(msgrcv(queue, &m, sizeof m.text, 0, 0) == sizeof m.text); /* never EINTR */
    CHECK(strcmp(m.text, "item") == 0);
}

static __attribute__((noinline)) void pin_sigwait(void)
{
    sigset_t all;
    sigfillset(&all);
    int sig = (int)syscall(SYS_rt_sigtimedwait, &all, NULL, NULL, (size_t)(_NSIG / 8));
    CHECK(sig > 0);
    if (sig != SIGUSR1)
        fprintf(stderr, "pin: sigwait gave signal %d\n", sig);
    CHECK(sig == SIGUSR1); /* never the monitor's SIGURG */
}

/* Computes for ms: every frame of its own code is this function (the clock is read
 * straight from libc), so that each look finds the same place. */
static __attribute__((noinline)) void spin(long ms)
{
    volatile unsigned long x = 0;
    struct timespec end, ts;
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += ms / 1000;
    end.tv_nsec += (ms % 1000) * 1000000L;
    if (end.tv_nsec >= 1000000000L) {
        end.tv_sec++;
        end.tv_nsec -= 1000000000L;
    }
    do {
        for (int i = 0; i < 10000; i++)
            x++;
        clock_gettime(CLOCK_MONOTONIC, &ts);
    } while (ts.tv_sec < end.tv_sec || (ts.tv_sec == end.tv_sec && ts.tv_nsec < end.tv_nsec));
}

static __attribute__((noinline)) void quiet(int i)
{
    char buf[8];
    struct pollfd p = {.fd = data[0], .events = POLLIN};
    CHECK(poll(&p, 1, -1) == 1);
    CHECK(read(data[0], buf, sizeof buf) == 5);
    struct timespec ts = {0, i == 0 ? 0 : 200 * 1000000L};
    CHECK(nanosleep(&ts, NULL) == 0);
}

static void *holder(void *unused)
{
    (void)unused;
    for (int i = 0; i < TIMES; i++) {
        CHECK(write(ready[1], "r", 1) == 1);
        if (strcmp(mode, "syscall") == 0)
            pin_syscall();
        else if (strcmp(mode, "fgets") == 0)
            pin_fgets();
        else if (strcmp(mode, "msgrcv") == 0)
            pin_msgrcv();
        else if (strcmp(mode, "sigwait") == 0)
            pin_sigwait();
        else if (strcmp(mode, "busy") == 0)
            spin(i == 0 ? 1000 : 300);
        else
            quiet(i);
        fprintf(stderr, "pin: %d done\n", i + 1);
        usleep(20 * 1000); /* the hub shows life between two */
    }
    return NULL;
}

static void remove_queue(void)
{
    if (queue >= 0)
        msgctl(queue, IPC_RMID, NULL);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: pin syscall|fgets|msgrcv|sigwait|busy|quiet\n");
        return 2;
    }
    mode = argv[1];
    CHECK(pipe(data) == 0 && pipe(ready) == 0);
    if (strcmp(mode, "msgrcv") == 0) {
        CHECK((queue = msgget(IPC_PRIVATE, 0600)) >= 0);
        atexit(remove_queue);
    }
    if (strcmp(mode, "sigwait") == 0) {
        sigset_t all;
        sigfillset(&all);
        CHECK(pthread_sigmask(SIG_BLOCK, &all, NULL) == 0);
    }
    pid_t parent = getpid(), child = 0;
    if (strcmp(mode, "busy") != 0) {
        CHECK((child = fork()) >= 0);
        if (child == 0)
            producer(parent);
        close(ready[0]);
        close(data[1]);
    }
    CHECK(in = fdopen(data[0], "r"));
    pthread_t t;
    CHECK(pthread_create(&t, NULL, holder, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    int st = 0;
    if (child)
        CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    printf("pin: %s ok\n", mode);
    return 0;
}
