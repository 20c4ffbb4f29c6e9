/*
 * native.c — native pthread mutexes that green threads hold across a park (without
 * GREEN_PATCH_THREADS), and the report that comes before the deadlock.
 *
 * Without thread patching, pthread_mutex_lock is libc's: a library that locks a mutex
 * and then makes a patched blocking call parks its green thread holding a real lock.
 * Another green thread of the same OS thread that locks it blocks the OS thread for
 * good — the holder can never run again to unlock it — silently. We cannot prevent it,
 * but we can say so at the moment it becomes possible: the park.
 *
 * Each OS thread has a small table of the native mutexes its green threads hold (owner,
 * mutex, the lock's call site), filled by the pass-through lock wrappers when the caller
 * runs on a hub and emptied by unlock; a plain thread pays one thread-local load per
 * lock. Nothing is allocated: a full table (after dropping entries of green threads that
 * have ended) simply stops counting — the report is per call site, and the sites that
 * matter are met again. patch_parking() (patch.h) looks at the count; with entries, the
 * caller's own are looked for, and a park holding one is reported once per call site
 * (the first frame outside libgreen), to stderr, with a backtrace(3).
 */
#include "patch.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <string.h>

#define HELD_MAX 32
#define SITES_MAX 256

struct held {
    green_t owner;
    void *mutex;
    void *site;                /* where it was locked */
};

__thread unsigned patch_native_held PATCH_TLS_FAST;
static __thread struct held held[HELD_MAX];

static void *sites[SITES_MAX] GREEN_BIG_BSS; /* call sites reported, process-wide */

/* Forget the entries of green threads that have ended (their handles went stale). */
static void prune(void)
{
    int saved = errno;
    unsigned n = 0;
    for (unsigned i = 0; i < patch_native_held; i++)
        if (green_dead(held[i].owner) == 0)
            held[n++] = held[i];
    patch_native_held = n;
    errno = saved;
}

int patch_native_lock(void *m, int e, void *site)
{
    if ((e != 0 && e != EOWNERDEAD) || !patch_here())
        return e;
    if (patch_native_held == HELD_MAX)
        prune();
    if (patch_native_held < HELD_MAX)
        held[patch_native_held++] = (struct held){green_current(), m, site};
    return e;
}

void patch_native_unlock(void *m)
{
    /* the latest first: locks nest */
    for (unsigned i = patch_native_held; i-- > 0;)
        if (held[i].mutex == m) {
            memmove(&held[i], &held[i + 1], (patch_native_held - i - 1) * sizeof held[i]);
            patch_native_held--;
            return;
        }
}

/* 1 the first time site is seen (process-wide), else 0; 0 too once the list is full. */
static int first_time(void *site)
{
    for (int i = 0; i < SITES_MAX; i++) {
        void *s = __atomic_load_n(&sites[i], __ATOMIC_ACQUIRE);
        if (s == site)
            return 0;
        if (!s && __atomic_compare_exchange_n(&sites[i], &s, site, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return 1;
        if (s == site)
            return 0;
    }
    return 0;
}

int patch_ours(void *pc)
{
    Dl_info self, core, at;
    return dladdr(pc, &at) && ((dladdr((void *)patch_parking_report, &self) && at.dli_fbase == self.dli_fbase) ||
                               (dladdr((void *)green_park, &core) && at.dli_fbase == core.dli_fbase));
}

const char *patch_where(void *pc, char *buf, size_t n)
{
    Dl_info at;
    if (!dladdr(pc, &at) || !at.dli_fname) {
        snprintf(buf, n, "%p", pc);
    } else if (at.dli_sname) {
        snprintf(buf, n, "%s+%#lx", at.dli_sname, (unsigned long)((char *)pc - (char *)at.dli_saddr));
    } else {
        const char *base = strrchr(at.dli_fname, '/');
        snprintf(buf, n, "%s+%#lx", base ? base + 1 : at.dli_fname,
                 (unsigned long)((char *)pc - (char *)at.dli_fbase));
    }
    return buf;
}

static void say(const char *s)
{
    ssize_t r = patch_real()->write(2, s, strlen(s));
    (void)r;
}

void patch_parking_report(void)
{
    green_t me = green_current();
    const struct held *h = NULL;
    for (unsigned i = patch_native_held; i-- > 0 && !h;)
        if (held[i].owner == me)
            h = &held[i];
    if (!h)
        return;
    int saved = errno;
    void *pcs[32];
    int n = backtrace(pcs, 32), skip = 0;
    while (skip < n - 1 && patch_ours(pcs[skip]))
        skip++;
    if (first_time(pcs[skip])) {
        char msg[768], at[256], site[256];
        const char *name = green_name(me);
        snprintf(msg, sizeof msg,
                 "libgreen-patch: green thread %llu%s%s%s parks in a patched call (at %s) "
                 "holding native mutex %p (locked at %s): a green thread of this OS thread that "
                 "locks it will block the whole OS thread for good (deadlock). Run with "
                 "GREEN_PATCH_THREADS=1 (pthread mutexes become green ones), or give the library "
                 "lock callbacks that use green mutexes. Backtrace:\n",
                 (unsigned long long)green_id(me), name && *name ? " '" : "", name ? name : "",
                 name && *name ? "'" : "", patch_where(pcs[skip], site, sizeof site), h->mutex,
                 patch_where(h->site, at, sizeof at));
        say(msg);
        backtrace_symbols_fd(pcs + skip, n - skip, 2);
    }
    errno = saved;
}
