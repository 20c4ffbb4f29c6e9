/*
 * pool.c — the thread pool (layer 6): calls that can only block (getaddrinfo, file I/O,
 * a library without an asynchronous API) run on a bounded set of OS threads while only
 * the green thread that asked waits (gevent.threadpool, libuv's threadpool.c). The
 * same for libgreen-patch.so (green_private_pool_run: its gethostbyname jobs).
 *
 * One pool per process, shared by every hub: GREEN_THREADPOOL threads at most (read
 * once, default 10), started one at a time as jobs find no idle thread, kept for the
 * life of the process, with every asynchronous signal blocked (a process-directed signal
 * must reach the thread that waits for it, not a pool thread). Jobs queue in FIFO order
 * when every thread is busy. At exit the idle threads leave and are joined (as libuv's
 * do), so that what they hold in thread-locals (glibc's resolver state, for one) is
 * released as any finished thread's is, and valgrind finds nothing lost; a thread busy
 * with a job is not waited for.
 *
 * A job is a heap record, never anything on the caller's stack: a shared-stack green
 * thread's stack is copied away while it waits, and the caller may be gone by the time
 * the job ends. The caller waits on the record (green__wait, "external": another OS
 * thread ends the wait, so a root waiting on a job is no deadlock); the pool thread that
 * finishes the job hands it over under the record's lock, which wakes the caller on its
 * own hub (green__remote_wake).
 *
 * Invariants:
 *  - the record's lock decides who frees it: the caller, if the job finished while it
 *    still waited ("done wins", even over its deadline or a kill); else the pool thread,
 *    once the job ends, after running the job's drop hook on the result nobody wants;
 *  - the caller frees the record only after retaking its lock, so the pool thread has
 *    finished waking it (and touching its hub) by then;
 *  - a job, once queued, always runs: a caller that gives up does not unqueue it (the
 *    job may own its argument, which only the job can release);
 *  - after fork() the child has a fresh, empty pool: the parent's threads do not exist
 *    there, and the jobs queued at that moment belong to green threads the child does
 *    not continue.
 */
#include "lib.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POOL_DEFAULT 10
#define POOL_MAX 1024

struct job {
    struct job *next;                     /* the pool's queue */
    void *(*fn)(void *);
    void *arg;
    void (*drop)(void *arg, void *result);
    green__lock_t lock;                   /* guards what follows */
    green_waitq_t waiters;                /* the caller, while it waits */
    void *result;
    uint8_t finished, abandoned;
};

static struct {
    pthread_mutex_t lock;                 /* guards all of this */
    pthread_cond_t work;                  /* idle threads wait here for a job */
    pthread_cond_t gone;                  /* at exit: a thread has left */
    struct job *head, *tail;
    unsigned queued, idle, threads, size;
    int stopping;                         /* at exit: idle threads leave */
    pthread_t tid[POOL_MAX];              /* in the order they started */
    uint8_t left[POOL_MAX];               /* 1: has left (at exit), 2: and is joined */
} pool GREEN_BIG_BSS = {.lock = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER,
                       .gone = PTHREAD_COND_INITIALIZER}; /* all zero bytes (glibc) */

static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static __thread int on_pool_thread;

/* ---- fork ---- */

/* The pool's lock is held across fork(), so the child never inherits it mid-update. */
static void before_fork(void) { green__sys.pthread_mutex_lock(&pool.lock); }
static void after_fork_parent(void) { green__sys.pthread_mutex_unlock(&pool.lock); }

static void after_fork_child(void)
{
    pool.head = pool.tail = NULL;
    pool.idle = pool.threads = 0;
    __atomic_store_n(&pool.queued, 0, __ATOMIC_RELAXED);
    memset(pool.left, 0, sizeof pool.left);
    green__sys.pthread_cond_init(&pool.work, NULL); /* their waiters live on in the parent only */
    green__sys.pthread_cond_init(&pool.gone, NULL);
    green__sys.pthread_mutex_unlock(&pool.lock);
}

/* At exit: the idle threads leave; join them (a second at most). A thread still busy
 * with a job is not waited for. */
static void at_exit(void)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 1;
    green__sys.pthread_mutex_lock(&pool.lock);
    pool.stopping = 1;
    green__sys.pthread_cond_broadcast(&pool.work);
    for (;;) {
        int joined = 0;
        for (unsigned i = 0; i < pool.threads; i++)
            if (pool.left[i] == 1) {
                pool.left[i] = 2;
                green__sys.pthread_mutex_unlock(&pool.lock); /* its thread-local destructors may run code of ours */
                green__sys.pthread_join(pool.tid[i], NULL);
                green__sys.pthread_mutex_lock(&pool.lock);
                joined = 1;
            }
        if (!joined && (!pool.idle || green__sys.pthread_cond_timedwait(&pool.gone, &pool.lock, &until) != 0))
            break;
    }
    green__sys.pthread_mutex_unlock(&pool.lock);
}

static unsigned size_from_env(void)
{
    const char *e = getenv("GREEN_THREADPOOL");
    char *end;
    long n = e ? strtol(e, &end, 10) : 0;
    if (!e || end == e || *end || n < 1)
        return POOL_DEFAULT;
    return n > POOL_MAX ? POOL_MAX : (unsigned)n;
}

static void pool_init(void)
{
    pool.size = size_from_env();
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
    atexit(at_exit);
}

/* ---- pool threads ---- */

/* The end of a job, on its pool thread: hand the result to the caller, or drop it. */
static void job_finish(struct job *j, void *result)
{
    green__lock(&j->lock);
    j->result = result;
    j->finished = 1;
    int abandoned = j->abandoned;
    if (!abandoned)
        green__waitq_hand_over_all(&j->waiters);
    green__unlock(&j->lock);
    /* not abandoned: the caller may free j as soon as the lock is released */
    if (abandoned) {
        if (j->drop)
            j->drop(j->arg, result);
        free(j);
    }
}

static void *worker(void *arg)
{
    unsigned me = (unsigned)(uintptr_t)arg;
    on_pool_thread = 1;
    green__sys.pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (!pool.head) {
            if (pool.stopping) {
                pool.left[me] = 1;
                green__sys.pthread_cond_signal(&pool.gone);
                green__sys.pthread_mutex_unlock(&pool.lock);
                return NULL;
            }
            pool.idle++;
            green__sys.pthread_cond_wait(&pool.work, &pool.lock);
            pool.idle--;
        }
        struct job *j = pool.head;
        pool.head = j->next;
        if (!pool.head)
            pool.tail = NULL;
        __atomic_fetch_sub(&pool.queued, 1, __ATOMIC_RELAXED); /* also read unlocked, by green_stats */
        green__sys.pthread_mutex_unlock(&pool.lock);
        job_finish(j, j->fn(j->arg));
        green__sys.pthread_mutex_lock(&pool.lock);
    }
    return NULL;
}

/* Pool thread number `me` (joined at exit only), with asynchronous signals blocked
 * (faults still reach it, so that crashes and sanitizers report as usual). Under the
 * pool's lock; 0 or an error number. */
static int worker_start(unsigned me)
{
    sigset_t all, old;
    sigfillset(&all);
    const int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS};
    for (size_t i = 0; i < sizeof faults / sizeof *faults; i++)
        sigdelset(&all, faults[i]);
    green__sys.pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = green__sys_thread_create(&pool.tid[me], worker, (void *)(uintptr_t)me);
    green__sys.pthread_sigmask(SIG_SETMASK, &old, NULL);
    return err;
}

/* Queue j; a thread is woken or started for it. 0, or -1 + errno when no thread runs at
 * all and none can be started. */
static int submit(struct job *j)
{
    green__sys.pthread_once(&pool_once, pool_init);
    green__sys.pthread_mutex_lock(&pool.lock);
    j->next = NULL;
    if (pool.tail)
        pool.tail->next = j;
    else
        pool.head = j;
    pool.tail = j;
    __atomic_fetch_add(&pool.queued, 1, __ATOMIC_RELAXED);
    int err = 0;
    if (pool.idle >= pool.queued) {
        green__sys.pthread_cond_signal(&pool.work);
    } else if (pool.threads < pool.size) {
        err = worker_start(pool.threads);
        if (!err)
            pool.threads++;
        else if (pool.threads == 0) {
            /* nobody would ever run it; with threads running, it just waits its turn */
            pool.head = pool.tail = NULL;
            __atomic_store_n(&pool.queued, 0, __ATOMIC_RELAXED);
        } else
            err = 0;
    }
    green__sys.pthread_mutex_unlock(&pool.lock);
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

/* ---- callers ---- */

int green__wait_over(struct green_hub *h, int64_t deadline)
{
    if (h->current->flags & GF_CANCELLED) {
        errno = ECANCELED;
        return -1;
    }
    deadline = green__deadline_of(h->current, deadline);
    if (deadline >= 0 && deadline <= green_now()) {
        errno = ETIMEDOUT;
        return -1;
    }
    return 0;
}

/* fn(arg) queued as a job for the current green thread of h; NULL + errno when none is
 * started: a wait over before it starts (ECANCELED, ETIMEDOUT), ENOMEM, no thread. */
static struct job *job_start(struct green_hub *h, void *(*fn)(void *), void *arg,
                             void (*drop)(void *, void *), int64_t deadline)
{
    if (green__wait_over(h, deadline) != 0)
        return NULL;
    struct job *j = calloc(1, sizeof *j);
    if (!j) {
        errno = ENOMEM;
        return NULL;
    }
    j->fn = fn;
    j->arg = arg;
    j->drop = drop;
    if (submit(j) != 0) {
        int err = errno;
        free(j);
        errno = err;
        return NULL;
    }
    return j;
}

int green__pool_run(struct green_hub *h, void *(*fn)(void *), void *arg, void **result,
                    int64_t deadline, void (*drop)(void *arg, void *result))
{
    if (on_pool_thread) {
        /* a job that needs the pool itself: waiting for another pool thread could
         * deadlock a full pool, and this thread may block anyway */
        void *r = fn(arg);
        if (result)
            *result = r;
        return 0;
    }
    /* once queued, a job runs: so its wait may fail for no want of memory */
    struct job *j = (h || (h = green__loop())) && green__wait_reserve(h) == 0
                        ? job_start(h, fn, arg, drop, deadline)
                        : NULL;
    if (!j) {
        int err = errno;
        if (drop)
            drop(arg, NULL);
        errno = err;
        return -1;
    }
    green__lock(&j->lock);
    green__waiting_on(h, GW_POOL, (const void *)(uintptr_t)fn); /* the dump names it */
    int r = j->finished ? 0 : green__wait(h, &j->waiters, &j->lock, deadline, GREEN_PARK_EXTERNAL);
    if (r != 0) {
        j->abandoned = 1; /* the pool thread frees it when the job ends */
        green__unlock(&j->lock);
        return -1;
    }
    void *res = j->result;
    green__unlock(&j->lock);
    free(j);
    if (result)
        *result = res;
    return 0;
}

int green_run_blocking(void *(*fn)(void *), void *arg, void **result, int64_t deadline)
{
    if (!fn) {
        errno = EINVAL;
        return -1;
    }
    return green__pool_run(NULL, fn, arg, result, deadline, NULL);
}

int green_private_pool_run(void *(*fn)(void *), void *arg, void **result,
                           void (*drop)(void *arg, void *result))
{
    return green__pool_run(NULL, fn, arg, result, -1, drop);
}

uint64_t green__pool_queued(void)
{
    return __atomic_load_n(&pool.queued, __ATOMIC_RELAXED); /* a statistic: racy is fine */
}
