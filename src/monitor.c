/*
 * monitor.c — the blocked-hub monitor (layer 8), gevent's monitor thread.
 *
 * A watchdog OS thread looks at every registered hub a few times per threshold. A hub
 * shows life by switching (h->switches) or by polling (h->loops), and is idle, not
 * blocked, while it sleeps in its poller (h->polling). One that shows neither for longer
 * than the threshold while other green threads of it exist (they are the ones kept
 * waiting) is blocked by its running green thread: the monitor sends SIGURG to the
 * hub's OS thread, whose handler writes the green thread's id, name and backtrace to
 * stderr (SIGURG, as Go's preemption does: its default action is to do nothing, so a
 * stray one harms nobody). One report per blocking episode: the next comes only after
 * the hub has shown life again.
 *
 * The hub's counters are read without its cooperation (relaxed atomic loads of plain
 * fields): the switch path pays nothing for the monitor. The registry lock is held
 * while a hub is inspected and while its thread writes the report, so the hub cannot be
 * freed meanwhile (its thread, if exiting, finds no hub and says so).
 */
#include "debug.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#define MON_SIGNAL SIGURG

static pthread_mutex_t mon_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mon_cond;
static pthread_t mon_thread;
static int mon_running, mon_stop;
static int64_t mon_ms;
static struct sigaction mon_old;
static int mon_installed;

/* the report being taken: the monitor waits for the hub's thread to finish it */
static struct green_hub *mon_target;
static int64_t mon_blocked_ms;
static int mon_done;

/* In the signal handler on h's thread (NULL: it is exiting): who holds the hub, and its
 * backtrace, to stderr. */
static void report_blocked(struct green_hub *h, int64_t ms, void *uc)
{
    struct green_out o = {.fd = 2, .in_signal = 1, .uc = green__signal_context(uc)};
    if (!h) {
        green__outf(&o, "libgreen monitor: a hub was blocked for %lld ms (its thread is exiting)\n",
                    (long long)ms);
        green__out_flush(&o);
        return;
    }
    struct green *g = h->current;
    green__outf(&o, "libgreen monitor: hub %p thread %d blocked for %lld ms by green thread %llu \"%s\"\n",
                (void *)h, h->tid, (long long)ms, (unsigned long long)g->id, green__name(g));
    green__bt_here(&o, 1);
    green__out_flush(&o);
}

static void on_monitor_signal(int sig, siginfo_t *si, void *uc)
{
    int saved = errno;
    struct green_hub *t = __atomic_load_n(&mon_target, __ATOMIC_ACQUIRE);
    if (t && !__atomic_load_n(&mon_done, __ATOMIC_ACQUIRE)) {
        struct green_hub *h = green__tls_hub;
        if (h == t || !h) {
            report_blocked(h, mon_blocked_ms, uc);
            __atomic_store_n(&mon_done, 1, __ATOMIC_RELEASE);
            errno = saved;
            return;
        }
    }
    /* not ours: whatever the program had */
    if ((mon_old.sa_flags & SA_SIGINFO) && mon_old.sa_sigaction)
        mon_old.sa_sigaction(sig, si, uc);
    else if (mon_old.sa_handler != SIG_DFL && mon_old.sa_handler != SIG_IGN)
        mon_old.sa_handler(sig);
    errno = saved;
}

/* The watchdog thread does not exist in a fork child. */
static void atfork_child(void)
{
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    mon_lock = fresh;
    mon_running = 0;
    mon_target = NULL;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void report(struct green_hub *h, int64_t ms)
{
    __atomic_store_n(&mon_done, 0, __ATOMIC_RELAXED);
    mon_blocked_ms = ms;
    __atomic_store_n(&mon_target, h, __ATOMIC_RELEASE);
    if (green__sys.pthread_kill((pthread_t)h->thread, MON_SIGNAL) == 0)
        for (int i = 0; i < 1000 && !__atomic_load_n(&mon_done, __ATOMIC_ACQUIRE); i++) {
            struct timespec ts = {0, 1000000};
            green__sys.nanosleep(&ts, NULL);
        }
    __atomic_store_n(&mon_target, NULL, __ATOMIC_RELEASE);
}

static void check(int64_t now, int64_t threshold)
{
    green__hubs_lock();
    for (struct green_hub *h = green__hubs(); h; h = h->reg_next) {
        uint64_t seen = __atomic_load_n(&h->switches, __ATOMIC_RELAXED) +
                        __atomic_load_n(&h->loops, __ATOMIC_RELAXED);
        int idle = __atomic_load_n(&h->polling, __ATOMIC_RELAXED) ||
                   __atomic_load_n(&h->alive, __ATOMIC_RELAXED) == 0;
        if (idle || seen != h->mon_seen || h->mon_since == 0) {
            h->mon_seen = seen;
            h->mon_since = now;
            h->mon_reported = 0;
        } else if (!h->mon_reported && now - h->mon_since > threshold) {
            h->mon_reported = 1;
            report(h, now - h->mon_since);
        }
    }
    green__hubs_unlock();
}

static void *monitor_main(void *unused)
{
    (void)unused;
    green__sys.pthread_mutex_lock(&mon_lock);
    while (!mon_stop) {
        int64_t ms = mon_ms;
        int64_t period = ms / 4 < 5 ? 5 : ms / 4;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += period / 1000;
        ts.tv_nsec += (period % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        green__sys.pthread_cond_timedwait(&mon_cond, &mon_lock, &ts);
        if (mon_stop)
            break;
        green__sys.pthread_mutex_unlock(&mon_lock);
        check(mono_ms(), ms);
        green__sys.pthread_mutex_lock(&mon_lock);
    }
    green__sys.pthread_mutex_unlock(&mon_lock);
    return NULL;
}

int green_monitor_start(int64_t ms)
{
    if (ms <= 0) {
        errno = EINVAL;
        return -1;
    }
    green__debug_prepare_signals();
    green__sys.pthread_mutex_lock(&mon_lock);
    mon_ms = ms;
    if (mon_running) {
        green__sys.pthread_mutex_unlock(&mon_lock);
        return 0;
    }
    if (!mon_installed) {
        pthread_atfork(NULL, NULL, atfork_child);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_monitor_signal;
        sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(MON_SIGNAL, &sa, &mon_old);
        mon_installed = 1;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    green__sys.pthread_cond_init(&mon_cond, &ca);
    pthread_condattr_destroy(&ca);
    /* the watchdog takes no signal meant for the program */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    mon_stop = 0;
    int e = green__sys_thread_create(&mon_thread, monitor_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        green__sys.pthread_mutex_unlock(&mon_lock);
        errno = EAGAIN;
        return -1;
    }
    mon_running = 1;
    green__sys.pthread_mutex_unlock(&mon_lock);
    return 0;
}

int green_monitor_stop(void)
{
    green__sys.pthread_mutex_lock(&mon_lock);
    if (!mon_running) {
        green__sys.pthread_mutex_unlock(&mon_lock);
        errno = ESRCH;
        return -1;
    }
    mon_stop = 1;
    green__sys.pthread_cond_signal(&mon_cond);
    pthread_t t = mon_thread;
    mon_running = 0;
    green__sys.pthread_mutex_unlock(&mon_lock);
    green__sys.pthread_join(t, NULL);
    green__sys.pthread_cond_destroy(&mon_cond);
    return 0;
}

