/*
 * dump_signal.c — the dump signal (layer 8): with GREEN_DUMP_SIGNAL=SIGQUIT (a name or
 * a number) in the environment when the first hub starts, that signal makes every hub
 * write its dump (dump.c) to stderr, and the process goes on. Also what else the
 * environment asks of the debug layer then (GREEN_MONITOR_MS starts the monitor).
 *
 * The first thread to get the signal dumps its own hub, then has each other hub's
 * thread dump its own, one after another, by sending it the same signal (each reads
 * only its own hub). Signal safety: the handler neither mallocs nor locks; the registry
 * of hubs is only tried, and a hub whose thread does not answer within two seconds is
 * reported as such.
 */
#include "debug.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The dump signal: the first thread to get it dumps its own hub, then has each other
 * hub's thread dump its own, one after another (each reads only its own hub). */
static int dump_signo;
static struct green_hub *dump_target;
static int dump_done, dumping;

static void dump_signal(int sig, siginfo_t *si, void *uc)
{
    (void)si;
    uc = green__signal_context(uc);
    int saved = errno;
    struct green_hub *h = green__tls_hub;
    struct green_hub *t = __atomic_load_n(&dump_target, __ATOMIC_ACQUIRE);
    if (t) {
        if (t == h) {
            struct green_out o = {.fd = 2, .in_signal = 1, .uc = uc};
            green__dump_hub(&o, h);
            __atomic_store_n(&dump_done, 1, __ATOMIC_RELEASE);
        }
        errno = saved;
        return;
    }
    if (__atomic_exchange_n(&dumping, 1, __ATOMIC_ACQUIRE)) {
        errno = saved;
        return;
    }
    struct green_out o = {.fd = 2, .in_signal = 1, .uc = uc};
    green__outf(&o, "libgreen: dump of every hub (signal %d)\n", sig);
    if (h)
        green__dump_hub(&o, h);
    if (green__hubs_trylock() == 0) {
        for (struct green_hub *x = green__hubs(); x; x = x->reg_next) {
            if (x == h)
                continue;
            __atomic_store_n(&dump_done, 0, __ATOMIC_RELAXED);
            __atomic_store_n(&dump_target, x, __ATOMIC_RELEASE);
            int ok = green__sys.pthread_kill((pthread_t)x->thread, sig) == 0;
            for (int i = 0; ok && i < 2000 && !__atomic_load_n(&dump_done, __ATOMIC_ACQUIRE); i++) {
                struct timespec ts = {0, 1000000};
                green__sys.nanosleep(&ts, NULL);
            }
            if (!ok || !__atomic_load_n(&dump_done, __ATOMIC_ACQUIRE)) {
                green__outf(&o, "hub %p thread %d: did not answer (signal %d blocked there?)\n",
                            (void *)x, x->tid, sig);
                green__out_flush(&o);
            }
            __atomic_store_n(&dump_target, NULL, __ATOMIC_RELEASE);
        }
        green__hubs_unlock();
    }
    green__outf(&o, "libgreen: end of dump\n");
    green__out_flush(&o);
    __atomic_store_n(&dumping, 0, __ATOMIC_RELEASE);
    errno = saved;
}

static void on_dump_signal(int sig, siginfo_t *si, void *uc)
{
    green__passthrough++;
    dump_signal(sig, si, uc);
    green__passthrough--;
}

/* "SIGQUIT", "QUIT" or a number; 0 when not understood. */
static int parse_signal(const char *s)
{
    static const struct { const char *name; int signo; } names[] = {
        {"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"HUP", SIGHUP},
        {"INT", SIGINT}, {"TERM", SIGTERM}, {"PWR", SIGPWR}, {"WINCH", SIGWINCH},
    };
    if (strncmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(s, names[i].name) == 0)
            return names[i].signo;
    char *end;
    long n = strtol(s, &end, 10);
    return *s && !*end && n > 0 && n < _NSIG ? (int)n : 0;
}

/* At the first hub (hub.c): what the environment asks of the debug layer. */
void green__debug_init(void)
{
    const char *e = getenv("GREEN_DUMP_SIGNAL");
    if (e && *e && (dump_signo = parse_signal(e)) != 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_dump_signal;
        sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        green__debug_prepare_signals();
        green__sys_get()->sigaction(dump_signo, &sa, NULL);
    }
    e = getenv("GREEN_MONITOR_MS");
    if (e && *e) {
        long ms = strtol(e, NULL, 10);
        if (ms > 0)
            green_monitor_start(ms);
    }
}
