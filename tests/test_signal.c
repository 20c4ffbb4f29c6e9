/* test_signal.c — green_signal_wait: a signal wakes the green threads waiting for it
 * while the others keep running; deadlines, kills, several waiters, queued real-time
 * signals, signals from another OS thread and from a child, and fork()
 * (after gevent's test__signal.py). Real signals, sent with kill, sigqueue and
 * pthread_kill. */
#include "green_test.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static int open_fds_at_start;

static int is_pending(int signo)
{
    sigset_t p;
    sigpending(&p);
    return sigismember(&p, signo);
}

/* Beyond an idle hub: no signalfd left open, nothing sent and not received. */
static void assert_all_clear(void)
{
    assert_hub_idle();
    assert_int_equal(open_fds(), open_fds_at_start);
    assert_false(is_pending(SIGUSR1));
    assert_false(is_pending(SIGUSR2));
    assert_false(is_pending(SIGRTMIN + 1));
}

/* ---- green thread bodies ---- */

/* One green_signal_wait; the outcome in a heap record (shared-stack green threads may
 * not hand out pointers to their locals). */
struct sig_wait {
    int signo;
    int64_t deadline;
    int r, err;
};

static struct sig_wait *sig_wait_new(int signo, int64_t deadline)
{
    struct sig_wait *w = calloc(1, sizeof *w);
    assert_non_null(w);
    w->signo = signo;
    w->deadline = deadline;
    return w;
}

static void *wait_for_signal(void *arg)
{
    struct sig_wait *w = arg;
    errno = 0;
    w->r = green_signal_wait(w->signo, w->deadline);
    w->err = errno;
    return NULL;
}

/* Sends signo to the process once *ticks has reached 5. */
struct send_after_ticks {
    const long *ticks;
    int signo;
};

static void *send_after_ticks(void *arg)
{
    const struct send_after_ticks *s = arg;
    while (*s->ticks < 5)
        if (green_sleep(1) != 0)
            return NULL;
    kill(getpid(), s->signo);
    return NULL;
}

/* ======================================================================== */
/*  Arguments                                                               */
/* ======================================================================== */

/* Signals that cannot be waited for: none at all, SIGKILL and SIGSTOP (never blocked),
 * past the last one, and those glibc keeps for itself. Refused at once. */
static void test_bad_signals(void **state)
{
    (void)state;
    int bad[] = {0, -1, SIGKILL, SIGSTOP, _NSIG, 1000, 32, SIGRTMIN - 1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_fails_with(green_signal_wait(bad[i], -1), EINVAL);
    assert_fails_with(green_signal_wait(SIGKILL, 0), EINVAL);
    assert_all_clear();
}

/* ======================================================================== */
/*  Waiting                                                                 */
/* ======================================================================== */

/* main() waits for a signal that another green thread sends once a third has ticked
 * five times: they run while main() waits. */
static void test_signal_arrives_while_others_run(void **state)
{
    (void)state;
    long ticks = 0;
    struct send_after_ticks s = {.ticks = &ticks, .signo = SIGUSR1};
    green_t t = green_spawn(count_ticks, &ticks);
    green_t sender = green_spawn(send_after_ticks, &s);
    assert_int_equal(green_signal_wait(SIGUSR1, green_after(5 * LATE_MS)), SIGUSR1);
    assert_true(ticks >= 5);
    assert_int_equal(green_join(sender, NULL, -1), 0);
    assert_int_equal(green_kill(t), 0);
    assert_int_equal(green_join(t, NULL, -1), 0);
    assert_all_clear();
}

/* Alone on its hub, main() waits as long as it takes: a signal can come at any time, so
 * this is not a deadlock. Here a child process sends it. */
static void test_root_waits_for_a_child_to_signal(void **state)
{
    (void)state;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        usleep(30 * 1000);
        kill(getppid(), SIGUSR2);
        _exit(0);
    }
    assert_int_equal(green_signal_wait(SIGUSR2, green_after(5000)), SIGUSR2);
    int status;
    assert_int_equal(green_waitpid(pid, &status, green_after(5000)), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_all_clear();
}

static void *pthread_kill_later(void *arg)
{
    pthread_t *target = arg;
    sleep_os_ms(30);
    pthread_kill(*target, SIGUSR1);
    return NULL;
}

/* A signal sent by another OS thread to this one (pthread_kill). */
static void test_signal_from_another_os_thread(void **state)
{
    (void)state;
    pthread_t self = pthread_self(), sender;
    assert_int_equal(pthread_create(&sender, NULL, pthread_kill_later, &self), 0);
    int r = green_signal_wait(SIGUSR1, green_after(5000));
    pthread_join(sender, NULL); /* before asserting: it uses `self` */
    assert_int_equal(r, SIGUSR1);
    assert_all_clear();
}

/* The deadline: ETIMEDOUT when nothing came; 0 only looks; a scoped timeout applies. */
static void test_deadline(void **state)
{
    (void)state;
    int64_t t0 = green_now();
    assert_fails_with(green_signal_wait(SIGUSR2, green_after(50)), ETIMEDOUT);
    int64_t el = green_now() - t0;
    assert_true(el >= 50);
    assert_true(el < LATE_MS);

    t0 = green_now();
    assert_fails_with(green_signal_wait(SIGUSR2, 0), ETIMEDOUT);
    assert_true(green_now() - t0 < LATE_MS);

    assert_int_equal(green_timeout_push(30), 0);
    assert_fails_with(green_signal_wait(SIGUSR2, -1), ETIMEDOUT);
    assert_int_equal(green_timeout_pop(), 0);
    assert_all_clear();
}

/* The wait leaves the signal blocked, so one that comes while nobody waits is not lost
 * (SIGWINCH is ignored by default: unblocked, it would simply vanish). It stays pending
 * and the next wait, even one that only polls, returns it at once, once. */
static void test_signal_between_waits_is_kept(void **state)
{
    (void)state;
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    assert_false(sigismember(&cur, SIGWINCH));
    assert_fails_with(green_signal_wait(SIGWINCH, 0), ETIMEDOUT);
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    assert_true(sigismember(&cur, SIGWINCH)); /* blocked by the wait, and left so */

    pthread_kill(pthread_self(), SIGWINCH);
    assert_true(is_pending(SIGWINCH));
    assert_int_equal(green_signal_wait(SIGWINCH, 0), SIGWINCH);
    assert_fails_with(green_signal_wait(SIGWINCH, 0), ETIMEDOUT);
    assert_all_clear();
}

/* A killed waiter gets ECANCELED, and so does every later wait of it. */
static void *wait_twice(void *arg)
{
    struct sig_wait *w = arg;
    wait_for_signal(w);
    if (w->r == -1 && green_signal_wait(w->signo, -1) != -1)
        w->r = -2;
    return NULL;
}

static void test_kill_waiter(void **state)
{
    (void)state;
    green_attr_t shared = {.stack_mode = GREEN_STACK_SHARED};
    for (int mode = 0; mode < 2; mode++) {
        struct sig_wait *w = sig_wait_new(SIGUSR1, -1);
        green_t g = green_spawn_attr(wait_twice, w, mode ? &shared : NULL);
        assert_int_equal(green_sleep(10), 0);
        assert_int_equal(green_kill(g), 0);
        assert_int_equal(green_join(g, NULL, -1), 0);
        assert_int_equal(w->r, -1);
        assert_int_equal(w->err, ECANCELED);
        free(w);
    }
    assert_all_clear();
}

/* ======================================================================== */
/*  Several waiters                                                         */
/* ======================================================================== */

/* One delivery serves every green thread waiting for that signal (as gevent calls every
 * handler), and only them: the SIGUSR2 waiter times out. The delivery is then used up. */
static void test_every_waiter_is_served(void **state)
{
    (void)state;
    green_attr_t shared = {.stack_mode = GREEN_STACK_SHARED};
    enum { N = 4 };
    struct sig_wait *w[N];
    green_t g[N];
    for (int i = 0; i < N; i++) {
        int other = i == N - 1;
        w[i] = other ? sig_wait_new(SIGUSR2, green_after(200))
                     : sig_wait_new(SIGUSR1, green_after(LATE_MS));
        g[i] = green_spawn_attr(wait_for_signal, w[i], i % 2 ? &shared : NULL);
    }
    assert_int_equal(green_sleep(20), 0); /* all parked */
    assert_int_equal(stats().waiting, N);
    kill(getpid(), SIGUSR1);
    for (int i = 0; i < N; i++)
        assert_int_equal(green_join(g[i], NULL, -1), 0);
    for (int i = 0; i < N - 1; i++)
        assert_int_equal(w[i]->r, SIGUSR1);
    assert_int_equal(w[N - 1]->r, -1);
    assert_int_equal(w[N - 1]->err, ETIMEDOUT);
    assert_fails_with(green_signal_wait(SIGUSR1, 0), ETIMEDOUT);
    for (int i = 0; i < N; i++)
        free(w[i]);
    assert_all_clear();
}

/* Waiters take turns reading the signalfd. The first one here gives up at 30 ms, the
 * second is killed at 60 ms; the last two are still served by a signal at 90 ms. */
static void test_waiters_that_leave_hand_on(void **state)
{
    (void)state;
    struct sig_wait *early = sig_wait_new(SIGUSR1, green_after(30));
    struct sig_wait *killed = sig_wait_new(SIGUSR1, -1);
    struct sig_wait *a = sig_wait_new(SIGUSR1, green_after(LATE_MS));
    struct sig_wait *b = sig_wait_new(SIGUSR1, green_after(LATE_MS));
    green_t ge = green_spawn(wait_for_signal, early);
    green_t gk = green_spawn(wait_for_signal, killed);
    green_t ga = green_spawn(wait_for_signal, a);
    green_t gb = green_spawn(wait_for_signal, b);
    assert_int_equal(green_sleep(60), 0);
    assert_int_equal(green_kill(gk), 0);
    assert_int_equal(green_sleep(30), 0);
    kill(getpid(), SIGUSR1);
    green_t all[] = {ge, gk, ga, gb};
    assert_int_equal(green_joinall(all, 4, -1), 0);
    assert_int_equal(early->r, -1);
    assert_int_equal(early->err, ETIMEDOUT);
    assert_int_equal(killed->r, -1);
    assert_int_equal(killed->err, ECANCELED);
    assert_int_equal(a->r, SIGUSR1);
    assert_int_equal(b->r, SIGUSR1);
    free(early);
    free(killed);
    free(a);
    free(b);
    assert_all_clear();
}

/* A waiter that arrives while a signal is already pending takes it (and serves the
 * others) even when it only polls. */
static void test_late_poller_serves_everyone(void **state)
{
    (void)state;
    struct sig_wait *w = sig_wait_new(SIGUSR2, green_after(5 * LATE_MS));
    green_t g = green_spawn(wait_for_signal, w);
    assert_int_equal(green_yield(), 0); /* g reads the signalfd */
    pthread_kill(pthread_self(), SIGUSR2); /* pending; g has not run since */
    int64_t t0 = green_now();
    assert_int_equal(green_signal_wait(SIGUSR2, 0), SIGUSR2);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(w->r, SIGUSR2);
    assert_true(green_now() - t0 < LATE_MS); /* woken at once, not at its deadline */
    free(w);
    assert_all_clear();
}

/* Real-time signals queue: each queued instance is one delivery, and instances nobody
 * waits for stay queued for later waits instead of being read and dropped. */
static void test_realtime_instances_each_serve_once(void **state)
{
    (void)state;
    int rt = SIGRTMIN + 1;
    struct sig_wait *w1 = sig_wait_new(rt, green_after(LATE_MS));
    struct sig_wait *w2 = sig_wait_new(rt, green_after(LATE_MS));
    green_t g1 = green_spawn(wait_for_signal, w1);
    green_t g2 = green_spawn(wait_for_signal, w2);
    assert_int_equal(green_yield(), 0); /* both wait */
    for (int i = 0; i < 3; i++)
        assert_int_equal(sigqueue(getpid(), rt, (union sigval){.sival_int = i}), 0);
    assert_int_equal(green_join(g1, NULL, -1), 0);
    assert_int_equal(green_join(g2, NULL, -1), 0);
    assert_int_equal(w1->r, rt); /* both served by the first instance */
    assert_int_equal(w2->r, rt);
    assert_int_equal(green_signal_wait(rt, 0), rt);
    assert_int_equal(green_signal_wait(rt, 0), rt);
    assert_fails_with(green_signal_wait(rt, 0), ETIMEDOUT);
    free(w1);
    free(w2);
    assert_all_clear();
}

/* ======================================================================== */
/*  fork()                                                                  */
/* ======================================================================== */

/* A child forked while a green thread waits for a signal waits for its own signals with
 * a state of its own; the parent's waiter is unaffected. */
static void test_fork_while_waiting(void **state)
{
    (void)state;
    struct sig_wait *w = sig_wait_new(SIGUSR2, green_after(5 * LATE_MS));
    green_t g = green_spawn(wait_for_signal, w);
    assert_int_equal(green_yield(), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int ok = green_signal_wait(SIGUSR1, green_after(5000)) == SIGUSR1 &&
                 green_signal_wait(SIGUSR2, 0) == -1 && errno == ETIMEDOUT;
        _exit(ok ? 0 : 1);
    }
    kill(pid, SIGUSR1); /* blocked in the child from birth (inherited mask): kept pending */
    int status;
    assert_int_equal(green_waitpid(pid, &status, green_after(5000)), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(w->r, 0); /* still waiting */
    kill(getpid(), SIGUSR2);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(w->r, SIGUSR2);
    free(w);
    assert_all_clear();
}

/* ======================================================================== */
/*  Sets of signals; taking a delivery                                      */
/* ======================================================================== */

static sigset_t set_of(int a, int b)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, a);
    if (b)
        sigaddset(&set, b);
    return set;
}

/* A wait for several signals returns the one that came; a set that holds a signal
 * nobody can wait for, an empty set or none at all is EINVAL. */
static void test_wait_for_a_set(void **state)
{
    (void)state;
    sigset_t set = set_of(SIGUSR1, SIGUSR2);
    assert_fails_with(green_signal_wait_set(&set, 0), ETIMEDOUT);
    pthread_kill(pthread_self(), SIGUSR2);
    assert_int_equal(green_signal_wait_set(&set, -1), SIGUSR2);
    pthread_kill(pthread_self(), SIGUSR1);
    assert_int_equal(green_signal_wait_set(&set, -1), SIGUSR1);
    assert_fails_with(green_signal_wait_set(NULL, 0), EINVAL);
    sigset_t empty;
    sigemptyset(&empty);
    assert_fails_with(green_signal_wait_set(&empty, 0), EINVAL);
    sigset_t bad = set_of(SIGUSR1, SIGKILL);
    assert_fails_with(green_signal_wait_set(&bad, 0), EINVAL);
    assert_fails_with(green_signal_take(&bad, NULL, 0), EINVAL);
    assert_all_clear();
}

struct taker {
    sigset_t set;
    int64_t deadline;
    int r, err;
    siginfo_t info;
};

static void *take_signal(void *arg)
{
    struct taker *t = arg;
    errno = 0;
    t->r = green_signal_take(&t->set, &t->info, t->deadline);
    t->err = errno;
    return NULL;
}

/* Takers consume a delivery each, in line (sigwaitinfo's rule), with what the kernel
 * said of it; a plain waiter for the same signal is served by every delivery. */
static void test_take_consumes_each_delivery(void **state)
{
    (void)state;
    struct taker t[2] = {{.set = set_of(SIGUSR1, 0), .deadline = green_after(5 * LATE_MS)},
                         {.set = set_of(SIGUSR1, SIGUSR2), .deadline = green_after(5 * LATE_MS)}};
    struct sig_wait *w = sig_wait_new(SIGUSR1, green_after(5 * LATE_MS));
    green_t g0 = green_spawn(take_signal, &t[0]);
    green_t g1 = green_spawn(take_signal, &t[1]);
    green_t gw = green_spawn(wait_for_signal, w);
    assert_int_equal(green_yield(), 0); /* all three wait */
    assert_int_equal(sigqueue(getpid(), SIGUSR1, (union sigval){.sival_int = 42}), 0);
    assert_int_equal(green_join(g0, NULL, -1), 0);
    assert_int_equal(green_join(gw, NULL, -1), 0);
    assert_int_equal(t[0].r, SIGUSR1); /* the first taker in line */
    assert_int_equal(t[0].info.si_signo, SIGUSR1);
    assert_int_equal(t[0].info.si_code, SI_QUEUE);
    assert_int_equal(t[0].info.si_pid, getpid());
    assert_int_equal(t[0].info.si_value.sival_int, 42);
    assert_int_equal(w->r, SIGUSR1); /* and the plain waiter */
    assert_int_equal(green_yield(), 0);
    assert_int_equal(t[1].r, 0);     /* the second taker still waits */
    pthread_kill(pthread_self(), SIGUSR2);
    assert_int_equal(green_join(g1, NULL, -1), 0);
    assert_int_equal(t[1].r, SIGUSR2);
    assert_int_equal(t[1].info.si_signo, SIGUSR2);
    free(w);
    assert_all_clear();
}

int main(void)
{
    /* The signals these tests send, blocked before anything else runs: how a program
     * should use green_signal_wait (a signal sent to the process goes to any thread that
     * does not block it). SIGWINCH is left out to show that a wait blocks it itself. */
    sigset_t sent;
    sigemptyset(&sent);
    sigaddset(&sent, SIGUSR1);
    sigaddset(&sent, SIGUSR2);
    sigaddset(&sent, SIGRTMIN + 1);
    pthread_sigmask(SIG_BLOCK, &sent, NULL);
    green_poller_name(); /* the hub's own fds are open before we count */
    open_fds_at_start = open_fds();

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_signals),
        cmocka_unit_test(test_signal_arrives_while_others_run),
        cmocka_unit_test(test_root_waits_for_a_child_to_signal),
        cmocka_unit_test(test_signal_from_another_os_thread),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_signal_between_waits_is_kept),
        cmocka_unit_test(test_kill_waiter),
        cmocka_unit_test(test_every_waiter_is_served),
        cmocka_unit_test(test_waiters_that_leave_hand_on),
        cmocka_unit_test(test_late_poller_serves_everyone),
        cmocka_unit_test(test_realtime_instances_each_serve_once),
        cmocka_unit_test(test_fork_while_waiting),
        cmocka_unit_test(test_wait_for_a_set),
        cmocka_unit_test(test_take_consumes_each_delivery),
    };
    return cmocka_run_group_tests_name("signal", tests, NULL, NULL);
}
