/*
 * thread_np.c — the calls that take a pthread_t only to describe or tune the OS thread
 * behind it: scheduling policy and priority, CPU affinity, the CPU-time clock, the name,
 * and pthread_sigqueue. Given a green pthread (GREEN_PATCH_THREADS=1), libc would read
 * a green handle as glibc's thread descriptor and crash (stunnel and haproxy call
 * pthread_setschedparam and pthread_getcpuclockid on their threads). Here:
 *  - the queries answer for the OS thread that runs the green thread's hub (its policy,
 *    its affinity, its CPU clock: the time of every green thread of that hub);
 *  - the settings are checked and accepted without effect (they would apply to every
 *    green thread of the hub: a program that spreads its threads over CPUs would pin
 *    them all to its last choice), as pthread_setname_np already is;
 *  - pthread_sigqueue queues the signal to the hub's OS thread, the target's blocking
 *    call being the one it interrupts, as pthread_kill does (intr.c);
 *  - a green pthread of another hub (GREEN_PATCH_HUBS) is answered for the same way: the
 *    queries ask about that hub's OS thread, the settings are checked and accepted, the
 *    name is read from there, and pthread_sigqueue is sent from that hub (thread.c's
 *    pthread_kill does the same);
 *  - a stale handle gives ESRCH, never a crash.
 * A pthread_t that is not a green pthread goes to libc unchanged.
 */
#include "thread.h"

#include <dlfcn.h>
#include <sched.h>
#include <string.h>

/* libc's definition of name, looked up once */
#define REAL(name)                                                                       \
    static __typeof__(name) *real_;                                                      \
    if (!real_)                                                                          \
        real_ = (__typeof__(name) *)dlsym(RTLD_NEXT, #name);                             \
    if (!real_)                                                                          \
        return ENOSYS

/* the OS thread that runs the caller's hub */
static pthread_t os_thread(void) { return patch_real()->pthread_self(); }

/* -1: t is not green (to libc); else 0 or an error number to return */
static int green_handle(pthread_t t) { return patch_threads ? pth_check_any(t) : -1; }

static green_t to_green(pthread_t t) { return (green_t)(t & ~(pthread_t)1u); }

/* The OS thread that runs green pthread t's hub, on *os: 0, or ESRCH (t has ended). */
static int os_thread_of(pthread_t t, pthread_t *os)
{
    int saved = errno;
    unsigned long th;
    int dead = green_private_peek(to_green(t), &th, NULL);
    errno = saved;
    if (dead < 0)
        return ESRCH;
    *os = (pthread_t)th;
    return 0;
}

int pthread_getschedparam(pthread_t t, int *policy, struct sched_param *param)
{
    REAL(pthread_getschedparam);
    int e = green_handle(t);
    pthread_t os;
    return e < 0 ? real_(t, policy, param) : e ? e : (e = os_thread_of(t, &os)) ? e : real_(os, policy, param);
}
GREEN_PATCH_THREAD(pthread_getschedparam);

int pthread_setschedparam(pthread_t t, int policy, const struct sched_param *param)
{
    REAL(pthread_setschedparam);
    int e = green_handle(t);
    if (e < 0)
        return real_(t, policy, param);
    if (e)
        return e;
    int lo = sched_get_priority_min(policy & ~SCHED_RESET_ON_FORK),
        hi = sched_get_priority_max(policy & ~SCHED_RESET_ON_FORK);
    if (lo == -1 || hi == -1 || param->sched_priority < lo || param->sched_priority > hi)
        return EINVAL;
    return 0; /* accepted, without effect */
}
GREEN_PATCH_THREAD(pthread_setschedparam);

int pthread_setschedprio(pthread_t t, int prio)
{
    REAL(pthread_setschedprio);
    int e = green_handle(t);
    if (e < 0)
        return real_(t, prio);
    if (e)
        return e;
    int policy;
    struct sched_param sp;
    pthread_t os;
    if ((e = os_thread_of(t, &os)) != 0 || (e = pthread_getschedparam(os, &policy, &sp)) != 0)
        return e;
    if (prio < sched_get_priority_min(policy) || prio > sched_get_priority_max(policy))
        return EINVAL;
    return 0;
}
GREEN_PATCH_THREAD(pthread_setschedprio);

int pthread_getaffinity_np(pthread_t t, size_t size, cpu_set_t *set)
{
    REAL(pthread_getaffinity_np);
    int e = green_handle(t);
    pthread_t os;
    return e < 0 ? real_(t, size, set) : e ? e : (e = os_thread_of(t, &os)) ? e : real_(os, size, set);
}
GREEN_PATCH_THREAD(pthread_getaffinity_np);

int pthread_setaffinity_np(pthread_t t, size_t size, const cpu_set_t *set)
{
    REAL(pthread_setaffinity_np);
    int e = green_handle(t);
    if (e < 0)
        return real_(t, size, set);
    if (e)
        return e;
    if (size == 0 || CPU_COUNT_S(size, set) == 0)
        return EINVAL;
    return 0; /* accepted, without effect */
}
GREEN_PATCH_THREAD(pthread_setaffinity_np);

int pthread_getcpuclockid(pthread_t t, clockid_t *clock)
{
    REAL(pthread_getcpuclockid);
    int e = green_handle(t);
    pthread_t os;
    return e < 0 ? real_(t, clock) : e ? e : (e = os_thread_of(t, &os)) ? e : real_(os, clock);
}
GREEN_PATCH_THREAD(pthread_getcpuclockid);

int pthread_getname_np(pthread_t t, char *buf, size_t len)
{
    REAL(pthread_getname_np);
    int e = green_handle(t);
    if (e < 0)
        return real_(t, buf, len);
    if (e)
        return e;
    const char *name = NULL;
    int saved = errno;
    int r = green_private_peek(to_green(t), NULL, &name);
    errno = saved;
    if (r < 0)
        return ESRCH;
    size_t n = name ? strlen(name) : 0;
    if (len <= n)
        return ERANGE;
    memcpy(buf, name ? name : "", n + 1);
    return 0;
}
GREEN_PATCH_THREAD(pthread_getname_np);

/* pthread_sigqueue(t, ...) on t's hub (another than the caller's). */
struct sigq {
    int sig;
    union sigval value;
};

static void sigqueue_here(green_t g, void *copy)
{
    static __typeof__(pthread_sigqueue) *real;
    struct sigq q;
    memcpy(&q, copy, sizeof q);
    if (!real)
        real = (__typeof__(pthread_sigqueue) *)dlsym(RTLD_NEXT, "pthread_sigqueue");
    patch_intr_direct(g, q.sig);
    if (real)
        real(os_thread(), q.sig, q.value);
}

int pthread_sigqueue(pthread_t t, int sig, const union sigval value)
{
    REAL(pthread_sigqueue);
    int e = green_handle(t);
    if (e < 0)
        return real_(t, sig, value);
    if (e)
        return e;
    if (sig < 0 || sig >= NSIG)
        return EINVAL;
    if (sig == 0)
        return 0;
    pthread_t os;
    if ((e = os_thread_of(t, &os)) != 0)
        return e;
    if (os != os_thread()) {
        struct sigq q = {sig, value};
        int saved = errno;
        e = green_private_on_hub(to_green(t), sigqueue_here, &q, sizeof q) == 0 ? 0 : errno;
        errno = saved;
        return e;
    }
    patch_intr_direct(to_green(t), sig);
    return real_(os_thread(), sig, value);
}
GREEN_PATCH_THREAD(pthread_sigqueue);
