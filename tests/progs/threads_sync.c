/*
 * threads_sync.c — pthreads semantics that a program relies on, checked in a plain
 * pthreads program (no libgreen headers), so that the same binary runs on real threads
 * and, under libgreen-patch.so with GREEN_PATCH_THREADS=1, on green threads.
 *
 *   threads_sync TEST    (TEST: one of the names in `tests` below, or "all")
 *
 * Prints "ok TEST" per test passed; exits 1 at the first failed check.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define CHECK(c)                                                                       \
    do {                                                                               \
        if (!(c)) {                                                                    \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #c);                        \
            fflush(stdout);                                                            \
            _exit(1);                                                                  \
        }                                                                              \
    } while (0)
#define CHECK_EQ(a, b) CHECK((long)(a) == (long)(b))

static int green; /* GREEN_PATCH_THREADS=1: what only green threads promise */

/* A pthreads-only sleep that parks a green thread: a timed wait nobody signals. */
static void pause_ms(int ms)
{
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&m);
    while (pthread_cond_timedwait(&c, &m, &until) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&m);
}

/* ---- mutex contention: the count is exact; sched_yield inside invites interleaving ---- */
static pthread_mutex_t cm = PTHREAD_MUTEX_INITIALIZER;
static long counter;
static void *contend(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++) {
        CHECK_EQ(pthread_mutex_lock(&cm), 0);
        long v = counter;
        sched_yield();
        counter = v + 1;
        CHECK_EQ(pthread_mutex_unlock(&cm), 0);
        if (i % 7 == 0)
            sched_yield();
    }
    return NULL;
}
static void test_contention(void)
{
    pthread_t t[20];
    for (int i = 0; i < 20; i++)
        CHECK_EQ(pthread_create(&t[i], NULL, contend, NULL), 0);
    for (int i = 0; i < 20; i++)
        CHECK_EQ(pthread_join(t[i], NULL), 0);
    CHECK_EQ(counter, 20 * 1000);
    CHECK_EQ(pthread_mutex_destroy(&cm), 0);
}

/* ---- producer-consumer over a bounded buffer with two conditions ---- */
#define QCAP 8
static struct {
    pthread_mutex_t m;
    pthread_cond_t not_empty, not_full;
    long buf[QCAP];
    int head, len;
} q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0};
static void put(long v)
{
    pthread_mutex_lock(&q.m);
    while (q.len == QCAP)
        pthread_cond_wait(&q.not_full, &q.m);
    q.buf[(q.head + q.len++) % QCAP] = v;
    pthread_cond_signal(&q.not_empty);
    pthread_mutex_unlock(&q.m);
}
static long get(void)
{
    pthread_mutex_lock(&q.m);
    while (q.len == 0)
        pthread_cond_wait(&q.not_empty, &q.m);
    long v = q.buf[q.head];
    q.head = (q.head + 1) % QCAP;
    q.len--;
    pthread_cond_signal(&q.not_full);
    pthread_mutex_unlock(&q.m);
    return v;
}
static void *producer(void *arg)
{
    long base = (long)(intptr_t)arg;
    for (long i = 1; i <= 500; i++)
        put(base + i);
    return NULL;
}
static void *consumer(void *arg)
{
    (void)arg;
    long sum = 0;
    for (;;) {
        long v = get();
        if (v < 0)
            return (void *)(intptr_t)sum;
        sum += v;
    }
}
static void test_prodcons(void)
{
    pthread_t p[4], c[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(pthread_create(&c[i], NULL, consumer, NULL), 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(pthread_create(&p[i], NULL, producer, (void *)(intptr_t)(i * 100000)), 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(pthread_join(p[i], NULL), 0);
    for (int i = 0; i < 3; i++)
        put(-1);
    long total = 0;
    for (int i = 0; i < 3; i++) {
        void *r;
        CHECK_EQ(pthread_join(c[i], &r), 0);
        total += (long)(intptr_t)r;
    }
    long want = 0;
    for (int i = 0; i < 4; i++)
        want += 500L * i * 100000 + 500L * 501 / 2;
    CHECK_EQ(total, want);
}

/* ---- mutex types ---- */
static pthread_mutex_t owned;
static void *unlock_foreign(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)pthread_mutex_unlock(&owned);
}
static void test_mutex_types(void)
{
    pthread_mutexattr_t a;
    pthread_mutex_t rec, chk;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    CHECK_EQ(pthread_mutex_init(&rec, &a), 0);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    CHECK_EQ(pthread_mutex_init(&chk, &a), 0);
    pthread_mutexattr_destroy(&a);

    CHECK_EQ(pthread_mutex_lock(&rec), 0);
    CHECK_EQ(pthread_mutex_lock(&rec), 0);
    CHECK_EQ(pthread_mutex_trylock(&rec), 0);
    CHECK_EQ(pthread_mutex_unlock(&rec), 0);
    CHECK_EQ(pthread_mutex_unlock(&rec), 0);
    CHECK_EQ(pthread_mutex_unlock(&rec), 0);
    CHECK_EQ(pthread_mutex_unlock(&rec), EPERM);

    CHECK_EQ(pthread_mutex_lock(&chk), 0);
    CHECK_EQ(pthread_mutex_lock(&chk), EDEADLK);
    CHECK_EQ(pthread_mutex_trylock(&chk), EBUSY);
    CHECK_EQ(pthread_mutex_unlock(&chk), 0);
    CHECK_EQ(pthread_mutex_unlock(&chk), EPERM);

    /* the static initializer of a recursive mutex */
    static pthread_mutex_t srec = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
    CHECK_EQ(pthread_mutex_lock(&srec), 0);
    CHECK_EQ(pthread_mutex_lock(&srec), 0);
    CHECK_EQ(pthread_mutex_unlock(&srec), 0);
    CHECK_EQ(pthread_mutex_unlock(&srec), 0);

    /* unlocking what another thread holds: EPERM */
    owned = chk;
    CHECK_EQ(pthread_mutex_lock(&owned), 0);
    pthread_t t;
    void *r;
    CHECK_EQ(pthread_create(&t, NULL, unlock_foreign, NULL), 0);
    CHECK_EQ(pthread_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, EPERM);
    CHECK_EQ(pthread_mutex_unlock(&owned), 0);

    /* a timed lock that times out while another holds it */
    CHECK_EQ(pthread_mutex_lock(&owned), 0);
    CHECK_EQ(pthread_create(&t, NULL, unlock_foreign, NULL), 0); /* EPERM again */
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(pthread_mutex_unlock(&owned), 0);
    CHECK_EQ(pthread_mutex_destroy(&rec), 0);
    CHECK_EQ(pthread_mutex_destroy(&chk), 0);
}

/* ---- keys and destructors ---- */
static pthread_key_t key;
static int destroyed[8];
static void key_dtor(void *v) { destroyed[(intptr_t)v - 1]++; }
static void *key_user(void *arg)
{
    intptr_t id = (intptr_t)arg;
    CHECK(pthread_getspecific(key) == NULL);
    CHECK_EQ(pthread_setspecific(key, (void *)id), 0);
    pause_ms(20); /* the others run meanwhile and set their own */
    CHECK_EQ((intptr_t)pthread_getspecific(key), id);
    if (id == 1)
        pthread_exit(NULL); /* destructors run on pthread_exit too */
    return NULL;
}
static void test_keys(void)
{
    CHECK_EQ(pthread_key_create(&key, key_dtor), 0);
    CHECK_EQ(pthread_setspecific(key, (void *)(intptr_t)99), 0);
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        CHECK_EQ(pthread_create(&t[i], NULL, key_user, (void *)(intptr_t)(i + 1)), 0);
    for (int i = 0; i < 8; i++)
        CHECK_EQ(pthread_join(t[i], NULL), 0);
    for (int i = 0; i < 8; i++)
        CHECK_EQ(destroyed[i], 1);
    CHECK_EQ((intptr_t)pthread_getspecific(key), 99); /* main's own value */
    CHECK_EQ(pthread_setspecific(key, NULL), 0);
    CHECK_EQ(pthread_key_delete(key), 0);
}

/* ---- once with an init routine that blocks ---- */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int inits, init_done;
static void slow_init(void)
{
    inits++;
    pause_ms(100); /* others call pthread_once meanwhile */
    init_done = 1;
}
static void *once_user(void *arg)
{
    (void)arg;
    CHECK_EQ(pthread_once(&once, slow_init), 0);
    CHECK_EQ(init_done, 1);
    return NULL;
}
static void test_once(void)
{
    pthread_t t[10];
    for (int i = 0; i < 10; i++)
        CHECK_EQ(pthread_create(&t[i], NULL, once_user, NULL), 0);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(pthread_join(t[i], NULL), 0);
    CHECK_EQ(inits, 1);
}

/* ---- exit values, joins and their errors ---- */
static void *exiter(void *arg)
{
    pthread_exit((void *)((intptr_t)arg * 2));
    return NULL;
}
static void *join_self(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)pthread_join(pthread_self(), NULL);
}
static pthread_mutex_t gate_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_c = PTHREAD_COND_INITIALIZER;
static int gate_open;
static void *wait_gate(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&gate_m);
    while (!gate_open)
        pthread_cond_wait(&gate_c, &gate_m);
    pthread_mutex_unlock(&gate_m);
    return NULL;
}
static void test_join(void)
{
    pthread_t t;
    void *r;
    CHECK_EQ(pthread_create(&t, NULL, exiter, (void *)21), 0);
    CHECK_EQ(pthread_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, 42);
    if (green) /* joining a reaped thread is undefined with real threads */
        CHECK_EQ(pthread_join(t, &r), ESRCH);

    CHECK_EQ(pthread_join(pthread_self(), NULL), EDEADLK);
    CHECK_EQ(pthread_create(&t, NULL, join_self, NULL), 0);
    CHECK_EQ(pthread_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, EDEADLK);

    /* detached while alive: joining it is EINVAL */
    CHECK_EQ(pthread_create(&t, NULL, wait_gate, NULL), 0);
    CHECK_EQ(pthread_detach(t), 0);
    CHECK_EQ(pthread_join(t, NULL), EINVAL);
    CHECK_EQ(pthread_detach(t), EINVAL);
    pthread_mutex_lock(&gate_m);
    gate_open = 1;
    pthread_cond_broadcast(&gate_c);
    pthread_mutex_unlock(&gate_m);

    /* a detached attr, and self/equal */
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&a, 64 * 1024);
    CHECK_EQ(pthread_create(&t, &a, wait_gate, NULL), 0);
    pthread_attr_destroy(&a);
    CHECK_EQ(pthread_join(t, NULL), EINVAL);
    CHECK(pthread_equal(pthread_self(), pthread_self()));
    CHECK(!pthread_equal(pthread_self(), t));
    pause_ms(10);
    if (green) {
        CHECK_EQ(pthread_join(t, NULL), ESRCH); /* it ended and reaped itself */
    }
}

/* ---- cancellation and cleanup handlers ---- */
static int cleaned;
static void cleanup(void *arg) { cleaned += (int)(intptr_t)arg; }
static void unlock_gate(void *arg) { pthread_mutex_unlock(arg); }
static void *cancellee2(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&gate_m);
    pthread_cleanup_push(unlock_gate, &gate_m);
    for (;;)
        pthread_cond_wait(&gate_c, &gate_m);
    pthread_cleanup_pop(1);
    return NULL;
}
static void *exits_in_cleanup_scope(void *arg)
{
    (void)arg;
    pthread_cleanup_push(cleanup, (void *)1);
    pthread_cleanup_push(cleanup, (void *)10);
    pthread_exit((void *)7);
    pthread_cleanup_pop(0);
    pthread_cleanup_pop(0);
    return NULL;
}
static void test_cancel(void)
{
    pthread_t t;
    void *r;
    CHECK_EQ(pthread_create(&t, NULL, exits_in_cleanup_scope, NULL), 0);
    CHECK_EQ(pthread_join(t, &r), 0);
    CHECK_EQ((intptr_t)r, 7);
    CHECK_EQ(cleaned, 11); /* both handlers ran */

    cleaned = 0;
    CHECK_EQ(pthread_create(&t, NULL, cancellee2, NULL), 0);
    pause_ms(20);
    CHECK_EQ(pthread_cancel(t), 0);
    CHECK_EQ(pthread_join(t, &r), 0);
    CHECK(r == PTHREAD_CANCELED);
    /* its cleanup unlocked the mutex it held after the cancelled wait */
    CHECK_EQ(pthread_mutex_trylock(&gate_m), 0);
    CHECK_EQ(pthread_mutex_unlock(&gate_m), 0);
}

/* ---- green threads run on one OS thread and share __thread variables ---- */
static __thread int per_os_thread;
static void *where(void *arg)
{
    (void)arg;
    per_os_thread++;
    return (void *)(intptr_t)syscall(SYS_gettid);
}
static void test_identity(void)
{
    pthread_t t[2];
    void *tid[2];
    for (int i = 0; i < 2; i++)
        CHECK_EQ(pthread_create(&t[i], NULL, where, NULL), 0);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(pthread_join(t[i], &tid[i]), 0);
    long me = syscall(SYS_gettid);
    int odd = (pthread_self() & 1) != 0 || (t[0] & 1) == 0; /* main keeps a real pthread_t */
    printf("main tid %ld, threads' tids %ld %ld; green pthread_t tagged: %s; __thread shared: %s\n",
           me, (long)(intptr_t)tid[0], (long)(intptr_t)tid[1], (t[0] & 1) ? "yes" : "no",
           per_os_thread == 2 ? "yes" : "no");
    if (green) {
        CHECK_EQ((intptr_t)tid[0], me);
        CHECK_EQ((intptr_t)tid[1], me);
        CHECK_EQ(per_os_thread, 2); /* documented: per OS thread, not per green thread */
        CHECK(!odd);
    } else {
        CHECK((intptr_t)tid[0] != me && (intptr_t)tid[1] != me);
        CHECK_EQ(per_os_thread, 0);
    }
}


/* ---- stacks ---- */
/* The size of the calling thread's stack (pthread_getattr_np); it also uses 1 MiB of
 * it, which a 256 KiB stack would not survive. */
static void *stack_size_of_self(void *arg)
{
    (void)arg;
    volatile char big[1 << 20];
    memset((char *)big, 1, sizeof big);
    pthread_attr_t a;
    size_t size = 0;
    CHECK_EQ(pthread_getattr_np(pthread_self(), &a), 0);
    CHECK_EQ(pthread_attr_getstacksize(&a, &size), 0);
    pthread_attr_destroy(&a);
    return (void *)(uintptr_t)(size + big[sizeof big - 1] - 1);
}

/* A thread made without a size has a real thread's stack (the process default), or
 * GREEN_PATCH_STACK_SIZE's under green threads; an attr's size is kept. */
static void test_stacks(void)
{
    pthread_attr_t d;
    size_t want = 0;
    CHECK_EQ(pthread_getattr_default_np(&d), 0);
    CHECK_EQ(pthread_attr_getstacksize(&d, &want), 0);
    pthread_attr_destroy(&d);
    const char *env = getenv("GREEN_PATCH_STACK_SIZE");
    if (green && env && *env)
        want = strtoul(env, NULL, 0);
    pthread_t t;
    void *r;
    CHECK_EQ(pthread_create(&t, NULL, stack_size_of_self, NULL), 0);
    CHECK_EQ(pthread_join(t, &r), 0);
    size_t got = (size_t)(uintptr_t)r;
    CHECK(got + 65536 >= want && got <= want + 65536);
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 3u << 20);
    CHECK_EQ(pthread_create(&t, &a, stack_size_of_self, NULL), 0);
    pthread_attr_destroy(&a);
    CHECK_EQ(pthread_join(t, &r), 0);
    got = (size_t)(uintptr_t)r;
    CHECK(got + 65536 >= (3u << 20)); /* glibc may reuse a cached stack up to 4 x as big */
    CHECK(green ? got <= (3u << 20) + 65536 : got <= 4 * (3u << 20));
}


/* ---- the calls that take a pthread_t to describe or tune its OS thread ---- */
static void test_np(void)
{
    pthread_mutex_lock(&gate_m);
    gate_open = 0;
    pthread_mutex_unlock(&gate_m);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, wait_gate, NULL), 0);
    int policy = -1;
    struct sched_param sp = {.sched_priority = -1};
    CHECK_EQ(pthread_getschedparam(t, &policy, &sp), 0);
    CHECK_EQ(policy, SCHED_OTHER);
    CHECK_EQ(sp.sched_priority, 0);
    CHECK_EQ(pthread_setschedparam(t, SCHED_OTHER, &sp), 0);
    sp.sched_priority = 5;
    CHECK_EQ(pthread_setschedparam(t, SCHED_OTHER, &sp), EINVAL);
    CHECK_EQ(pthread_setschedprio(t, 0), 0);
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    CHECK_EQ(pthread_getaffinity_np(t, sizeof cpus, &cpus), 0);
    CHECK(CPU_COUNT(&cpus) > 0);
    CHECK_EQ(pthread_setaffinity_np(t, sizeof cpus, &cpus), 0);
    clockid_t c;
    struct timespec ts;
    CHECK_EQ(pthread_getcpuclockid(t, &c), 0);
    CHECK_EQ(clock_gettime(c, &ts), 0);
    char name[16];
    CHECK_EQ(pthread_getname_np(t, name, sizeof name), 0);
    CHECK_EQ(pthread_sigqueue(t, 0, (union sigval){.sival_int = 0}), 0);
    pthread_mutex_lock(&gate_m);
    gate_open = 1;
    pthread_cond_broadcast(&gate_c);
    pthread_mutex_unlock(&gate_m);
    CHECK_EQ(pthread_join(t, NULL), 0);
    if (green) { /* glibc's answer to a joined thread is undefined (it may crash) */
        CHECK_EQ(pthread_getschedparam(t, &policy, &sp), ESRCH);
        CHECK_EQ(pthread_setaffinity_np(t, sizeof cpus, &cpus), ESRCH);
        CHECK_EQ(pthread_getcpuclockid(t, &c), ESRCH);
        CHECK_EQ(pthread_sigqueue(t, 0, (union sigval){.sival_int = 0}), ESRCH);
    }
}

static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
    {"contention", test_contention}, {"prodcons", test_prodcons}, {"mutex_types", test_mutex_types},
    {"keys", test_keys},             {"once", test_once},         {"join", test_join},
    {"cancel", test_cancel},         {"identity", test_identity}, {"stacks", test_stacks},
    {"np", test_np},
};

int main(int argc, char **argv)
{
    const char *e = getenv("GREEN_PATCH_THREADS");
    green = e && *e && strcmp(e, "0") != 0;
    const char *which = argc > 1 ? argv[1] : "all";
    int ran = 0;
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (strcmp(which, "all") == 0 || strcmp(which, tests[i].name) == 0) {
            tests[i].fn();
            printf("ok %s\n", tests[i].name);
            fflush(stdout);
            ran++;
        }
    }
    return ran ? 0 : 2;
}
