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
 *  - a stale handle, or one of another hub, gives ESRCH, never a crash.
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

/* the OS thread that runs the caller's hub (a green pthread's is the caller's) */
static pthread_t os_thread(void) { return patch_real()->pthread_self(); }

/* -1: t is not green (to libc); else 0 or an error number to return */
static int green_handle(pthread_t t) { return patch_threads ? pth_check(t) : -1; }

int pthread_getschedparam(pthread_t t, int *policy, struct sched_param *param)
{
    REAL(pthread_getschedparam);
    int e = green_handle(t);
    return e < 0 ? real_(t, policy, param) : e ? e : real_(os_thread(), policy, param);
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
    if ((e = pthread_getschedparam(os_thread(), &policy, &sp)) != 0)
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
    return e < 0 ? real_(t, size, set) : e ? e : real_(os_thread(), size, set);
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
    return e < 0 ? real_(t, clock) : e ? e : real_(os_thread(), clock);
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
    const char *name = green_name((green_t)(t & ~(pthread_t)1u));
    size_t n = name ? strlen(name) : 0;
    if (len <= n)
        return ERANGE;
    memcpy(buf, name ? name : "", n + 1);
    return 0;
}
GREEN_PATCH_THREAD(pthread_getname_np);

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
    patch_intr_direct((green_t)(t & ~(pthread_t)1u), sig);
    return real_(os_thread(), sig, value);
}
GREEN_PATCH_THREAD(pthread_sigqueue);
