/*
 * test_debug.c — seeing what green threads do: green_dump (every state, backtraces of
 * suspended ones), the blocked-hub monitor, stack high-water marks, green_stats, the
 * dump signal (GREEN_DUMP_SIGNAL) in a child process. `test_debug --gdb-child` is the
 * program tests/gdb_test.sh runs under gdb.
 */
#include "green_test.h"

#ifndef GREEN_TEST_EMULATED
#define GREEN_TEST_EMULATED 0 /* set by the build under qemu-user */
#endif
#include "../src/green_private.h" /* green_private_pinning: the detector's table */

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/msg.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ---- */

/* Run green_dump into a string (free it). Not inlined: gcc 12 at -O3 takes the string
 * open_memstream returns through &buf for a pointer to the local itself
 * (-Wdangling-pointer false positives wherever the result is used). */
static __attribute__((noinline)) char *dump_string(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(green_dump(f), 0);
    fclose(f);
    return buf;
}

/* The state line of the green thread called name, and the backtrace lines under it. */
static char *entry_of(const char *dump, const char *name)
{
    char key[128];
    snprintf(key, sizeof key, " \"%s\" state=", name);
    const char *p = strstr(dump, key);
    if (!p)
        return NULL;
    while (p > dump && p[-1] != '\n')
        p--;
    const char *end = strstr(p + 1, "\ngreen ");
    size_t n = end ? (size_t)(end - p) : strlen(p);
    return strndup(p, n);
}

static void assert_has(const char *text, const char *what)
{
    if (!text || !strstr(text, what)) {
        print_error("expected \"%s\" in:\n%s\n", what, text ? text : "(nothing)");
        fail();
    }
}

/* A suspended green thread's backtrace shows `frame`, where this build can walk one;
 * elsewhere the dump says it has none. */
static void assert_suspended_bt(const char *text, const char *frame)
{
#if GREEN_TEST_SUSPENDED_BT
    assert_has(text, frame);
#else
    assert_has(text, "no backtrace");
#endif
}

/* The value of key=N in an entry, or -1. */
static long value_of(const char *entry, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, " %s=", key);
    const char *p = strstr(entry, k);
    return p ? strtol(p + strlen(k), NULL, 10) : -1;
}

/* Is a file whose name contains `what` mapped into this process? */
static int mapped(const char *what)
{
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    char line[512];
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, what) != NULL;
    fclose(f);
    return found;
}

/* ---- green threads in every state ---- */

static __attribute__((noinline)) void *sleeper(void *arg)
{
    (void)arg;
    green_sleep(60000); /* killed */
    return NULL;
}

static int pipe_fds[2];
static __attribute__((noinline)) void *reader(void *arg)
{
    (void)arg;
    char c;
    green_read(pipe_fds[0], &c, 1, -1);
    return NULL;
}

static green_event_t event;
static __attribute__((noinline)) void *event_waiter(void *arg)
{
    (void)arg;
    green_event_wait(&event, -1);
    return NULL;
}

static green_mutex_t mutex;
static __attribute__((noinline)) void *locker(void *arg)
{
    (void)arg;
    if (green_mutex_lock(&mutex, -1) == 0)
        green_mutex_unlock(&mutex);
    return NULL;
}

static green_chan_t *chan;
static __attribute__((noinline)) void *receiver(void *arg)
{
    (void)arg;
    int v;
    green_chan_recv(chan, &v, -1);
    return NULL;
}

static __attribute__((noinline)) void *joiner(void *arg)
{
    green_join(*(green_t *)arg, NULL, -1);
    return NULL;
}

static __attribute__((noinline)) void *returns_at_once(void *arg) { return arg; }

static __attribute__((noinline)) void *switches_back(void *arg)
{
    (void)arg;
    green_switch(green_parent(green_current()), NULL); /* suspended here */
    return NULL;
}

static void test_dump_every_state(void **state)
{
    (void)state;
    assert_int_equal(pipe(pipe_fds), 0);
    green_event_init(&event);
    green_mutex_init(&mutex, GREEN_MUTEX_NORMAL);
    assert_int_equal(green_mutex_lock(&mutex, -1), 0); /* the root holds it */
    chan = green_chan_new(sizeof(int), 0);
    green_attr_t a = {.name = "sleeper"};
    green_t gs[10];
    int n = 0;
    gs[n++] = green_spawn_attr(sleeper, NULL, &a);
    green_attr_t sh = {.name = "shared-sleeper", .stack_mode = GREEN_STACK_SHARED};
    gs[n++] = green_spawn_attr(sleeper, NULL, &sh);
    a.name = "reader";
    gs[n++] = green_spawn_attr(reader, NULL, &a);
    a.name = "event-waiter";
    gs[n++] = green_spawn_attr(event_waiter, NULL, &a);
    a.name = "locker";
    gs[n++] = green_spawn_attr(locker, NULL, &a);
    a.name = "receiver";
    gs[n++] = green_spawn_attr(receiver, NULL, &a);
    a.name = "joiner";
    gs[n++] = green_spawn_attr(joiner, &gs[0], &a);
    a.name = "dead";
    green_t dead = green_spawn_attr(returns_at_once, NULL, &a);
    a.name = "suspended";
    green_t susp = green_new(switches_back, NULL, &a);
    green_switch(susp, NULL);
    assert_int_equal(green_sleep(50), 0); /* every one parks */
    a.name = "ready";
    green_t ready = green_spawn_attr(returns_at_once, NULL, &a);

    char *d = dump_string();
    char *e;
    uint64_t root = green_id(green_root());

    e = entry_of(d, "root");
    assert_has(e, "state=running");
    assert_has(e, "stack=root");
#if GREEN_TEST_NAMED_BT
    assert_has(e, "test_dump_every_state"); /* the running one's backtrace */
#else
    assert_has(e, "    #1 "); /* glibc's backtrace(): frames, named only when exported */
#endif
    assert_ptr_equal(strstr(d, "\ngreen ") + 1, strstr(d, e)); /* listed first: it holds the hub */
    if (getenv("GREEN_TEST_SHOW_DUMP"))
        fputs(d, stderr);
    free(e);

    e = entry_of(d, "sleeper");
    assert_has(e, "state=waiting on=sleep until=");
    assert_has(e, "for=");
    assert_int_equal(value_of(e, "spawner"), (long)root);
    assert_has(e, "stack=dedicated size=262144");
    assert_true(value_of(e, "hwm") > 0);
    assert_suspended_bt(e, "green_sleep"); /* the suspended one's backtrace: */
    assert_suspended_bt(e, "sleeper+");    /* through libgreen into the test */
    free(e);

    e = entry_of(d, "shared-sleeper");
    assert_has(e, "state=waiting on=sleep");
    assert_has(e, "stack=shared saved=");
    assert_true(value_of(e, "hwm") > 0);
    assert_suspended_bt(e, "sleeper+"); /* frames copied back for the walk */
    free(e);

    e = entry_of(d, "reader");
    char want[64];
    snprintf(want, sizeof want, "state=waiting on=fd fd=%d dir=read", pipe_fds[0]);
    assert_has(e, want);
    assert_suspended_bt(e, "reader+");
    free(e);

    e = entry_of(d, "event-waiter");
    snprintf(want, sizeof want, "on=event obj=%p", (void *)&event);
    assert_has(e, want);
    free(e);

    e = entry_of(d, "locker");
    snprintf(want, sizeof want, "on=mutex obj=%p owner=%llu", (void *)&mutex, (unsigned long long)root);
    assert_has(e, want);
    free(e);

    e = entry_of(d, "receiver");
    assert_has(e, "on=channel");
    free(e);

    e = entry_of(d, "joiner");
    snprintf(want, sizeof want, "on=join green=%llu", (unsigned long long)green_id(gs[0]));
    assert_has(e, want);
    free(e);

    e = entry_of(d, "dead");
    assert_has(e, "state=dead for=");
    free(e);

    e = entry_of(d, "suspended");
    assert_has(e, "state=suspended");
    snprintf(want, sizeof want, "parent=%llu", (unsigned long long)root);
    assert_has(e, want);
    assert_suspended_bt(e, "switches_back+");
    free(e);

    e = entry_of(d, "ready");
    assert_has(e, "state=ready started=no");
    free(e);
    free(d);

    green_stats_t st = stats();
    assert_int_equal(st.state_running, 1);
    assert_int_equal(st.state_suspended, 1);
    assert_int_equal(st.state_ready, 1);
    assert_int_equal(st.state_waiting, 7);
    assert_int_equal(st.state_dead, 1);
    assert_int_equal(st.fds, 1);
    assert_true(st.loops > 0);
    uint64_t counted = 0;
    for (int i = 0; i < 16; i++)
        counted += st.stack_hwm[i];
    assert_true(counted >= 8); /* the started, live ones */

    /* clean up */
    green_mutex_unlock(&mutex);
    green_event_set(&event);
    int v = 1;
    green_chan_send(chan, &v, -1);
    assert_int_equal(write(pipe_fds[1], "x", 1), 1);
    green_kill(gs[0]);
    green_kill(gs[1]);
    for (int i = 1; i < n; i++)
        assert_int_equal(green_join(gs[i], NULL, green_after(5000)), 0);
    assert_int_equal(green_join(dead, NULL, -1), 0);
    assert_int_equal(green_join(ready, NULL, -1), 0);
    assert_int_equal(green_destroy(susp), 0);
    green_chan_free(chan);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    assert_hub_idle();
}

/* ---- stack high-water marks ---- */

static __attribute__((noinline)) int recurse(int depth)
{
    volatile char frame[256];
    frame[0] = (char)depth;
    if (depth == 0) {
        green_event_wait(&event, -1);
        return frame[0];
    }
    return recurse(depth - 1) + frame[0];
}

static void *deep(void *arg)
{
    recurse((int)(intptr_t)arg);
    return NULL;
}

static void check_hwm_grows(int mode)
{
    green_event_init(&event);
    static const char *const names[3] = {"depth-4", "depth-40", "depth-200"};
    static const int depths[3] = {4, 40, 200};
    green_t g[3];
    for (int i = 0; i < 3; i++) {
        /* an unusual size: fresh stacks, that no earlier test has written to */
        green_attr_t a = {.name = names[i], .stack_mode = mode, .stack_size = 200 * 1024};
        g[i] = green_spawn_attr(deep, (void *)(intptr_t)depths[i], &a);
    }
    green_stats_t before = stats();
    assert_int_equal(green_sleep(20), 0);
    if (mode == GREEN_STACK_SHARED) {
        /* a shared-stack one's mark is taken when another takes the stack */
        assert_int_equal(green_yield(), 0);
    }
    char *d = dump_string();
    long hwm[3];
    for (int i = 0; i < 3; i++) {
        char *e = entry_of(d, names[i]);
        assert_non_null(e);
        hwm[i] = value_of(e, "hwm");
        free(e);
    }
    free(d);
    assert_true(hwm[0] > 4 * 256);
    assert_true(hwm[1] > 40 * 256);
    assert_true(hwm[2] > 200 * 256);
    assert_true(hwm[0] < hwm[1] && hwm[1] < hwm[2]);
    assert_true(hwm[2] < 200 * (UNDER_ASAN ? 2048 : 400)); /* no wild overestimate (ASan: redzones) */
    green_stats_t st = stats();
    assert_true(st.stack_hwm_max >= (uint64_t)hwm[2]);
    int b = 0; /* the deepest one's bucket: at most 1 KiB << b */
    while (b < 15 && (uint64_t)hwm[2] > ((uint64_t)1024 << b))
        b++;
    assert_true(st.stack_hwm[b] > before.stack_hwm[b]);
    green_event_set(&event);
    for (int i = 0; i < 3; i++)
        assert_int_equal(green_join(g[i], NULL, -1), 0);
}

static void test_hwm_dedicated(void **state)
{
    (void)state;
    check_hwm_grows(GREEN_STACK_DEDICATED);
    assert_hub_idle();
}

static void test_hwm_shared(void **state)
{
    (void)state;
    check_hwm_grows(GREEN_STACK_SHARED);
    assert_hub_idle();
}

/* ---- the monitor ---- */

/* Run fn with stderr going to a temporary file; returns what was written (free it). */
static char *capture_stderr(void (*fn)(void))
{
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), 2) >= 0);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    long n = ftell(tmp) >= 0 ? lseek(fileno(tmp), 0, SEEK_END) : 0;
    char *s = calloc(1, (size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(pread(fileno(tmp), s, (size_t)n, 0), n);
    fclose(tmp);
    return s;
}

/* How many lines of text have both a and b. */
static int lines_with(const char *text, const char *a, const char *b)
{
    int n = 0;
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        const char *pa = strstr(line, a), *pb = strstr(line, b);
        n += pa && pb && pa < line + len && pb < line + len;
        line = nl ? nl + 1 : NULL;
    }
    return n;
}

/* Spins in its own code: the clock is read once per 64K turns, so the monitor's signal
 * lands here, not in the vDSO (whose frames an unwinder may not get through). */
static __attribute__((noinline)) void spin_until(int64_t t)
{
    volatile unsigned long x = 0;
    while (green_now() < t)
        for (unsigned i = 0; i < 65536; i++)
            x++;
}

static void *busy(void *arg)
{
    (void)arg;
    spin_until(green_now() + 300);
    return NULL;
}

static void *yielder(void *arg)
{
    (void)arg;
    int64_t t = green_now() + 300;
    while (green_now() < t)
        green_yield();
    return NULL;
}

static void run_named(const char *name, green_fn fn)
{
    assert_int_equal(green_monitor_start(100), 0);
    green_attr_t a = {.name = name};
    green_t g = green_spawn_attr(fn, NULL, &a);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(green_sleep(50), 0); /* the monitor looks once more */
    assert_int_equal(green_monitor_stop(), 0);
}

static void run_busy(void) { run_named("busy", busy); }
static void run_yielder(void) { run_named("yielder", yielder); }

static void test_monitor_catches_busy_loop(void **state)
{
    (void)state;
    char *out = capture_stderr(run_busy);
    assert_has(out, "libgreen monitor: hub ");
    assert_has(out, "by green thread ");
    assert_has(out, "\"busy\"");
#if !GREEN_TEST_EMULATED /* qemu-user does not let a signal handler walk the stack */
    assert_has(out, "spin_until+"); /* where it is stuck */
#if !UNDER_TSAN /* (TSan runs the handler later, at a point of its choosing) */
    /* the interrupted frame itself comes first — or second, when the signal landed in
     * the clock read that spin_until makes every 65,536 turns (green_now, the vDSO) */
    const char *top = strstr(out, "    #0 ");
    assert_non_null(top);
    const char *second = strstr(top, "    #1 ");
    const char *at = strstr(top, "spin_until+");
    assert_true(at && (at < strchr(top, '\n') || (second && at < strchr(second, '\n'))));
#endif
#endif
    /* once per episode, as busy; and a line with its duration once it ends */
    assert_int_equal(lines_with(out, " blocked for ", "\"busy\": busy in "), 1);
    const char *p = strstr(out, "blocked for ");
    assert_true(atol(p + strlen("blocked for ")) >= 100);
    const char *end = strstr(out, " was held ");
    assert_non_null(end);
    assert_true(atol(end + strlen(" was held ")) >= 100);
    free(out);
    assert_fails_with(green_monitor_stop(), ESRCH);
    assert_fails_with(green_monitor_start(0), EINVAL);
    assert_hub_idle();
}

static void test_monitor_silent_for_yielder(void **state)
{
    (void)state;
    char *out = capture_stderr(run_yielder);
    assert_string_equal(out, "");
    free(out);
    assert_hub_idle();
}

/* ---- the pinning detector ---- */

/* Each step of a feeder: wait until stderr (a file, under capture_stderr) says `what`,
 * up to 10 s; then do `then`. A plain thread runs them, while a green thread holds the
 * hub: what it waits for comes only once the monitor has named it. */
struct feed_step {
    const char *what;
    void (*then)(void);
};
static const struct feed_step *feed_steps;
static int feed_seen;

static int stderr_shows(const char *what)
{
    static char seen[1 << 16];
    for (int i = 0; i < 1000; i++) {
        ssize_t n = pread(2, seen, sizeof seen - 1, 0);
        if (n > 0) {
            seen[n] = '\0';
            if (strstr(seen, what))
                return 1;
        }
        usleep(10 * 1000);
    }
    return 0;
}

static void *feeder(void *unused)
{
    (void)unused;
    for (const struct feed_step *s = feed_steps; s->what; s++) {
        feed_seen += stderr_shows(s->what);
        s->then();
    }
    return NULL;
}

static int pin_fds[2], pin_fds2[2];
static volatile long pin_sink, feed_sink; /* the hub's thread's, the feeder's */
static int pin_waiting;                   /* (atomic) */

/* (on the feeder's thread: no cmocka assertion there; a failed feed shows as a hang) */
static void feed_pipe(void) { feed_sink = write(pin_fds[1], "x", 1); }
static void feed_pipe2(void) { feed_sink = write(pin_fds2[1], "x", 1); }

/* System calls made raw, as some libraries do: no wrapper could make them cooperative.
 * (Each body differs, so that the compiler does not fold them into one function.) */
static __attribute__((noinline)) void raw_read(int fd)
{
    char c;
    pin_sink = syscall(SYS_read, fd, &c, 1);
}

static __attribute__((noinline)) void raw_read_again(int fd)
{
    char c;
    pin_sink = syscall(SYS_read, fd, &c, 1) + 1;
}

static __attribute__((noinline)) void raw_read_often(int fd)
{
    char c;
    __atomic_store_n(&pin_waiting, 1, __ATOMIC_RELEASE);
    pin_sink = syscall(SYS_read, fd, &c, 1) + 2;
}

/* Holds the hub in two raw reads in a row, without switching in between. */
static void *two_reads(void *arg)
{
    (void)arg;
    raw_read(pin_fds[0]);
    raw_read_again(pin_fds2[0]);
    return NULL;
}

/* Runs `fn` as a green thread named `name` (the root waits for it: it is kept waiting,
 * so the hub counts as held) while the feeder runs `steps`; then lets the monitor see
 * the hub's life once more. */
static void run_pinned(const char *name, green_fn fn, const struct feed_step *steps)
{
    assert_int_equal(pipe(pin_fds), 0);
    assert_int_equal(pipe(pin_fds2), 0);
    feed_steps = steps;
    feed_seen = 0;
    assert_int_equal(green_monitor_start(100), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, feeder, NULL), 0);
    green_attr_t a = {.name = name};
    green_t g = green_spawn_attr(fn, NULL, &a);
    assert_int_equal(green_join(g, NULL, -1), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(green_sleep(60), 0); /* the last episode ends */
    assert_int_equal(green_monitor_stop(), 0);
    for (int i = 0; i < 2; i++) {
        close(pin_fds[i]);
        close(pin_fds2[i]);
    }
}

static void run_two_reads(void)
{
    static const struct feed_step steps[] = {
        {"called from raw_read+", feed_pipe}, {"called from raw_read_again+", feed_pipe2}, {NULL, NULL}};
    run_pinned("two-reads", two_reads, steps);
}

/* Pinned in a raw system call: named (the function, the call site, the green thread)
 * while it still holds the hub; then in a second one, without the hub showing life in
 * between: named too. Each gets a closing line with its duration. */
static void test_pinning_names_each_call(void **state)
{
    (void)state;
    /* under qemu-user the kernel's view of a thread (its state, blocked signals, the
     * system call it is in, the frame a signal interrupts) is qemu's, not the program's */
    if (GREEN_TEST_EMULATED)
        skip();
    char *out = capture_stderr(run_two_reads);
    assert_int_equal(feed_seen, 2);
    char want[128];
    snprintf(want, sizeof want, "\"two-reads\": pinned in syscall() [system call %d], called from raw_read+",
             SYS_read);
    assert_has(out, want);
    assert_has(out, "called from raw_read_again+");
#if !GREEN_TEST_EMULATED && !UNDER_TSAN /* (under TSan: a scan, up to the call site) */
    assert_has(out, "two_reads+"); /* the backtrace */
#endif
    const char *end = strstr(out, " was held ");
    assert_non_null(end);
    assert_true(atol(end + strlen(" was held ")) >= 100);
    assert_non_null(strstr(end + 1, " was held "));
    free(out);
    assert_hub_idle();
}

/* The green_private_pinning entry whose description has `what`. */
static struct green_private_pin pin_entry(const char *what)
{
    struct green_private_pin pins[65];
    int64_t ms;
    size_t n = green_private_pinning(pins, 65, &ms);
    for (size_t i = 0; i < n && i < 65; i++)
        if (strstr(pins[i].what, what))
            return pins[i];
    fail_msg("no pinning site \"%s\"", what);
    return pins[0];
}

/* The first read is held until it is reported; the next ones 300 ms each from when the
 * reader says it is about to read. */
static void feed_first(void)
{
    __atomic_store_n(&pin_waiting, 0, __ATOMIC_RELEASE);
    feed_pipe();
}

static void feed_later(void)
{
    for (int i = 0; i < 1000 && !__atomic_exchange_n(&pin_waiting, 0, __ATOMIC_ACQUIRE); i++)
        usleep(1000);
    usleep(300 * 1000); /* holds it past the threshold */
    feed_pipe();
}

static void *five_reads(void *arg)
{
    (void)arg;
    for (int i = 0; i < 5; i++) {
        raw_read_often(pin_fds[0]);
        green_yield();
        assert_int_equal(green_sleep(1), 0); /* the hub shows life */
    }
    return NULL;
}

static void run_five_reads(void)
{
    static const struct feed_step steps[] = {{"called from raw_read_often+", feed_first},
                                             {"", feed_later}, {"", feed_later},
                                             {"", feed_later}, {"", feed_later}, {NULL, NULL}};
    run_pinned("five-reads", five_reads, steps);
}

/* Five episodes at one place: reported once, counted five times. */
static void test_pinning_once_per_site(void **state)
{
    (void)state;
    char *out = capture_stderr(run_five_reads);
    assert_int_equal(lines_with(out, " blocked for ", "called from raw_read_often+"), 1);
    struct green_private_pin e = pin_entry("called from raw_read_often+");
    assert_int_equal(e.count, 5);
    assert_int_equal(e.busy, 0);
    assert_true(e.total_ms >= 5 * 100 && e.max_ms >= 100);
    assert_true(e.total_ms >= e.max_ms);
    free(out);
    assert_hub_idle();
}

/* msgrcv is never restarted by the kernel after a signal handler: the monitor's signal
 * must not make it fail with EINTR. */
static int pin_queue = -1;
static long pin_got = -2;

static void feed_queue(void)
{
    struct {
        long type;
        char text[4];
    } m = {1, "msg"};
    feed_sink = msgsnd(pin_queue, &m, sizeof m.text, 0);
}

static __attribute__((noinline)) void *queue_reader(void *arg)
{
    (void)arg;
    struct {
        long type;
        char text[4];
    } m;
    errno = 0;
    pin_got = msgrcv(pin_queue, &m, sizeof m.text, 0, 0);
    if (pin_got < 0)
        pin_got = -errno;
    return NULL;
}

static void run_queue_reader(void)
{
    static const struct feed_step steps[] = {{"called from queue_reader+", feed_queue}, {NULL, NULL}};
    run_pinned("queue-reader", queue_reader, steps);
}

static void test_pinning_keeps_calls_going(void **state)
{
    (void)state;
    /* under qemu-user the kernel's view of a thread (its state, blocked signals, the
     * system call it is in, the frame a signal interrupts) is qemu's, not the program's */
    if (GREEN_TEST_EMULATED)
        skip();
    pin_queue = msgget(IPC_PRIVATE, 0600);
    if (pin_queue < 0)
        skip(); /* no System V IPC here */
    char *out = capture_stderr(run_queue_reader);
    msgctl(pin_queue, IPC_RMID, NULL);
    assert_int_equal(feed_seen, 1);
    assert_has(out, ": pinned in msgrcv()");
    assert_int_equal(pin_got, 4); /* not -EINTR */
    free(out);
    assert_hub_idle();
}

/* A thread that blocks every signal and waits for any in sigwait: the monitor sends no
 * SIGURG (sigwait would return it), and finds the frames by scanning the stack. */
static pthread_t pin_main;
static int pin_sig;

static void feed_signal(void) { feed_sink = pthread_kill(pin_main, SIGUSR1); }

static __attribute__((noinline)) void *signal_waiter(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    assert_int_equal(sigwait(&all, &pin_sig), 0);
    return NULL;
}

static void on_usr1(int sig) { (void)sig; }

static void run_signal_waiter(void)
{
    static const struct feed_step steps[] = {{"called from signal_waiter+", feed_signal}, {NULL, NULL}};
    sigset_t all, old;
    sigfillset(&all);
    pin_main = pthread_self();
    /* (should sigwait return early, the feeder's SIGUSR1 comes later: harmless) */
    struct sigaction sa = {.sa_handler = on_usr1}, old_sa;
    assert_int_equal(sigaction(SIGUSR1, &sa, &old_sa), 0);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &all, &old), 0);
    run_pinned("signal-waiter", signal_waiter, steps);
    assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
    assert_int_equal(sigaction(SIGUSR1, &old_sa, NULL), 0);
}

static void test_pinning_leaves_sigwait_alone(void **state)
{
    (void)state;
    /* under qemu-user the kernel's view of a thread (its state, blocked signals, the
     * system call it is in, the frame a signal interrupts) is qemu's, not the program's */
    if (GREEN_TEST_EMULATED)
        skip();
    char *out = capture_stderr(run_signal_waiter);
    assert_int_equal(pin_sig, SIGUSR1);
    assert_int_equal(feed_seen, 1);
    assert_has(out, ": pinned in sigtimedwait()");
    assert_has(out, "frames found by scanning its stack");
    free(out);
    assert_hub_idle();
}

/* Nothing held, nothing said: green threads asleep or waiting on an fd leave the hub
 * in its poller; and the root alone in a blocking call keeps nobody waiting. */
static void *naps(void *arg)
{
    (void)arg;
    assert_int_equal(green_sleep(300), 0);
    return NULL;
}

static void *fd_waiter(void *arg)
{
    (void)arg;
    assert_int_equal(green_wait_fd(pin_fds[0], GREEN_READ, green_after(300)), -1);
    assert_int_equal(errno, ETIMEDOUT);
    return NULL;
}

static void *late_writer(void *arg)
{
    (void)arg;
    usleep(300 * 1000);
    feed_pipe();
    return NULL;
}

static void run_quiet(void)
{
    assert_int_equal(pipe(pin_fds), 0);
    assert_int_equal(green_monitor_start(100), 0);
    green_t g[2] = {green_spawn(naps, NULL), green_spawn(fd_waiter, NULL)};
    assert_int_equal(green_joinall(g, 2, -1), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, late_writer, NULL), 0);
    raw_read(pin_fds[0]); /* alone: nothing else could run */
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(green_monitor_stop(), 0);
    close(pin_fds[0]);
    close(pin_fds[1]);
}

static void test_pinning_silent_when_idle(void **state)
{
    (void)state;
    char *out = capture_stderr(run_quiet);
    assert_string_equal(out, "");
    free(out);
    assert_hub_idle();
}

/* ---- libunwind: loaded by the first report, not at start ---- */

static __attribute__((noinline)) void *switcher(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++)
        green_yield();
    return NULL;
}

/* Green threads spawned, switched, parked and joined, the monitor run without a report:
 * nothing maps libunwind (the first test: nothing has been reported in this process).
 * Then green_dump loads it and names the frames, static functions too. */
static void test_unwind_loaded_by_first_report(void **state)
{
    (void)state;
    green_attr_t a = {.name = "lazy-sleeper"};
    green_t s = green_spawn_attr(sleeper, NULL, &a);
    green_t w[4];
    for (int i = 0; i < 4; i++)
        w[i] = green_spawn(switcher, NULL);
    for (int i = 0; i < 4; i++)
        assert_int_equal(green_join(w[i], NULL, -1), 0);
    char *out = capture_stderr(run_yielder); /* the monitor on, silent */
    assert_string_equal(out, "");
    free(out);
    assert_false(mapped("libunwind"));

    char *d = dump_string(), *e;
#if GREEN_TEST_NAMED_BT
    assert_true(mapped("libunwind"));
    e = entry_of(d, "root");
    assert_has(e, "test_unwind_loaded_by_first_report+"); /* static: named by libunwind */
    free(e);
#endif
    e = entry_of(d, "lazy-sleeper");
    assert_suspended_bt(e, "green_sleep");
    assert_suspended_bt(e, "sleeper+");
    free(e);
    free(d);
    assert_int_equal(green_kill(s), 0);
    green_join(s, NULL, -1);
}

static const char *self_exe = "/proc/self/exe";

/* The child: "mapped" or "unmapped" (libunwind) on stdout, before and after the monitor
 * reports a busy loop on stderr. */
static int report_child(void)
{
    green_t w = green_spawn(switcher, NULL);
    green_join(w, NULL, -1);
    printf("before: %s\n", mapped("libunwind") ? "mapped" : "unmapped");
    run_busy();
    printf("after: %s\n", mapped("libunwind") ? "mapped" : "unmapped");
    return 0;
}

/* The monitor's first report loads libunwind, before it signals the held hub's thread,
 * and the report names the frames. */
static void test_unwind_loaded_by_monitor(void **state)
{
    (void)state;
#if GREEN_TEST_EMULATED
    skip(); /* the child re-executes this program: not through qemu-user */
#endif
    int out[2], err[2];
    assert_int_equal(pipe(out), 0);
    assert_int_equal(pipe(err), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        execl(self_exe, self_exe, "--report-child", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    static char text[65536], report[65536];
    size_t n = 0, m = 0;
    ssize_t r;
    while (n < sizeof text - 1 && (r = read(out[0], text + n, sizeof text - 1 - n)) > 0)
        n += (size_t)r;
    while (m < sizeof report - 1 && (r = read(err[0], report + m, sizeof report - 1 - m)) > 0)
        m += (size_t)r;
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    close(out[0]);
    close(err[0]);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_has(text, "before: unmapped");
#if GREEN_TEST_NAMED_BT
    assert_has(text, "after: mapped");
#endif
    assert_has(report, "libgreen monitor: hub ");
    assert_has(report, "\"busy\"");
    if (!UNDER_TSAN) /* (TSan runs the handler later, at a point of its choosing) */
        assert_has(report, "spin_until+");
}

/* ---- the dump signal, in a child process ---- */

static void *other_hub(void *arg)
{
    (void)arg;
    green_attr_t a = {.name = "other-hub-sleeper"};
    green_t g = green_spawn_attr(sleeper, NULL, &a);
    green_join(g, NULL, -1);
    return NULL;
}

/* The child: named green threads on two hubs, then waits to be signalled. */
static int sigquit_child(void)
{
    pthread_t t;
    pthread_create(&t, NULL, other_hub, NULL);
    green_attr_t a = {.name = "child-sleeper"};
    green_spawn_attr(sleeper, NULL, &a);
    green_sleep(100);
    if (write(1, "ready\n", 6) != 6)
        return 1;
    green_sleep(20000);
    return 0;
}

static void test_dump_signal(void **state)
{
    (void)state;
#if GREEN_TEST_EMULATED
    skip(); /* the child re-executes this program: not through qemu-user */
#endif
    if (UNDER_TSAN)
        skip(); /* TSan's runtime does not hand the re-executed child its SIGQUIT */
    int out[2], err[2];
    assert_int_equal(pipe(out), 0);
    assert_int_equal(pipe(err), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        setenv("GREEN_DUMP_SIGNAL", "SIGQUIT", 1);
        execl(self_exe, self_exe, "--sigquit-child", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    char buf[16];
    assert_int_equal(read(out[0], buf, 6), 6);
    assert_int_equal(kill(pid, SIGQUIT), 0);
    static char text[65536];
    size_t n = 0;
    while (n < sizeof text - 1 && !strstr(text, "libgreen: end of dump")) {
        ssize_t r = read(err[0], text + n, sizeof text - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        text[n] = 0;
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(out[0]);
    close(err[0]);
    assert_has(text, "libgreen: dump of every hub (signal 3)");
    assert_has(text, "\"child-sleeper\" state=waiting on=sleep");
    assert_has(text, "\"other-hub-sleeper\" state=waiting on=sleep");
    assert_suspended_bt(text, "sleeper+"); /* backtraces from the handler too */
    assert_has(text, "libgreen: end of dump");
    /* two hubs */
    const char *h1 = strstr(text, "\nhub ");
    assert_non_null(h1);
    assert_non_null(strstr(h1 + 1, "\nhub "));
}

/* ---- the program gdb looks at (tests/gdb_test.sh) ---- */

__attribute__((noinline)) void gdb_break_here(void) { __asm__ __volatile__("" ::: "memory"); }

static int gdb_child(void)
{
    green_attr_t a = {.name = "gdb-sleeper"};
    green_spawn_attr(sleeper, NULL, &a);
    a.name = "gdb-reader";
    if (pipe(pipe_fds) != 0)
        return 1;
    green_spawn_attr(reader, NULL, &a);
    green_sleep(20);
    gdb_break_here();
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--sigquit-child") == 0)
        return sigquit_child();
    if (argc > 1 && strcmp(argv[1], "--gdb-child") == 0)
        return gdb_child();
    if (argc > 1 && strcmp(argv[1], "--report-child") == 0)
        return report_child();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unwind_loaded_by_first_report), /* first: nothing reported yet */
        cmocka_unit_test(test_unwind_loaded_by_monitor),
        cmocka_unit_test(test_dump_every_state),
        cmocka_unit_test(test_hwm_dedicated),
        cmocka_unit_test(test_hwm_shared),
        cmocka_unit_test(test_monitor_catches_busy_loop),
        cmocka_unit_test(test_monitor_silent_for_yielder),
        cmocka_unit_test(test_pinning_names_each_call),
        cmocka_unit_test(test_pinning_once_per_site),
        cmocka_unit_test(test_pinning_keeps_calls_going),
        cmocka_unit_test(test_pinning_leaves_sigwait_alone),
        cmocka_unit_test(test_pinning_silent_when_idle),
        cmocka_unit_test(test_dump_signal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
