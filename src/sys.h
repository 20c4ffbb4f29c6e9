/*
 * sys.h — the libc and pthread functions libgreen itself calls, reached through a table.
 *
 * The monkey-patching library (libgreen-patch.so, src/patch/) interposes libc's blocking
 * calls — read, connect, close, pthread_mutex_lock, … — so that unmodified code parks
 * its green thread instead of blocking. libgreen's own calls must not land in those
 * wrappers: green_read calling an interposed read would call green_read again, and the
 * thread pool's mutex would turn into a green one. So every such call in src/ goes
 * through green__sys, whose entries are looked up in libc itself (not by the global
 * symbol search that an LD_PRELOAD library wins) when libgreen is loaded. The patch
 * library's pass-through path keeps a table of the same shape (src/patch/patch.c),
 * filled with what comes after it, this one (green_private_sys) where nothing does.
 *
 * A lower layer than everything else: it includes nothing of ours.
 */
#ifndef GREEN_SYS_H
#define GREEN_SYS_H

#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

/* X(name): every function of the table; its type is libc's own declaration. */
#define GREEN_SYS_FUNCS(X)                                                               \
    X(read) X(write) X(readv) X(writev) X(pread) X(pwrite) X(recvmsg) X(sendmsg)        \
    X(accept4) X(connect) X(close) X(fcntl) X(socket) X(getaddrinfo) X(freeaddrinfo)    \
    X(recv) X(send) X(recvfrom) X(sendto) X(accept) X(ioctl) X(dup) X(dup2) X(dup3)       \
    X(pipe) X(pipe2) X(socketpair) X(fclose) X(poll) X(ppoll) X(select) X(pselect)       \
    X(nanosleep) X(clock_nanosleep) X(usleep) X(sleep) X(gethostbyname) X(gethostbyname_r) \
    X(sched_yield) X(pthread_create) X(pthread_join) X(pthread_self) X(pthread_equal)    \
    X(pthread_once) X(pthread_key_create) X(pthread_setspecific) X(pthread_getspecific)  \
    X(pthread_mutex_lock) X(pthread_mutex_trylock) X(pthread_mutex_unlock) X(pthread_cond_init) \
    X(pthread_cond_wait) X(pthread_cond_timedwait) X(pthread_cond_signal)                \
    X(pthread_cond_broadcast) X(pthread_detach) X(pthread_exit) X(pthread_key_delete)       \
    X(pthread_mutex_init) X(pthread_mutex_destroy)                                       \
    X(pthread_mutex_timedlock) X(pthread_mutex_clocklock) X(pthread_mutex_consistent)    \
    X(pthread_cond_destroy) X(pthread_cond_clockwait) X(pthread_tryjoin_np)               \
    X(pthread_timedjoin_np) X(pthread_clockjoin_np) X(pthread_cancel) X(pthread_testcancel) \
    X(pthread_setcancelstate) X(pthread_setcanceltype) X(pthread_kill)                   \
    X(pthread_getattr_np) X(__pthread_register_cancel) X(__pthread_unregister_cancel)    \
    X(__pthread_unwind_next) X(pthread_rwlock_init) X(pthread_rwlock_destroy)             \
    X(pthread_rwlock_rdlock) X(pthread_rwlock_tryrdlock) X(pthread_rwlock_timedrdlock)    \
    X(pthread_rwlock_clockrdlock) X(pthread_rwlock_wrlock) X(pthread_rwlock_trywrlock)    \
    X(pthread_rwlock_timedwrlock) X(pthread_rwlock_clockwrlock) X(pthread_rwlock_unlock)  \
    X(pthread_barrier_init) X(pthread_barrier_destroy) X(pthread_barrier_wait)            \
    X(pthread_spin_lock) X(pthread_spin_trylock) X(pthread_getcpuclockid)                 \
    X(sem_init) X(sem_post) X(sem_wait)                                                  \
    X(sem_timedwait) X(sem_clockwait)                                                    \
    X(sigaction) X(signal) X(sigsuspend) X(pause) X(raise) X(pthread_sigmask) X(sigprocmask) \
    X(epoll_wait) X(epoll_pwait) GREEN_SYS_EPOLL_PWAIT2(X)                               \
    X(sigwait) X(sigwaitinfo) X(sigtimedwait)                                            \
    X(waitpid) X(wait) X(wait3) X(wait4) X(waitid) X(system) X(popen) X(pclose)          \
    X(sendfile) X(splice) X(tee) X(copy_file_range) X(recvmmsg) X(sendmmsg)              \
    X(preadv) X(pwritev) X(preadv2) X(pwritev2) X(fsync) X(fdatasync) X(flock) X(lockf)   \
    X(syscall)

/* epoll_pwait2 came with glibc 2.35 */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#define GREEN_SYS_HAVE_EPOLL_PWAIT2 1
#define GREEN_SYS_EPOLL_PWAIT2(X) X(epoll_pwait2)
#else
#define GREEN_SYS_EPOLL_PWAIT2(X)
#endif

struct green_sys {
#define GREEN_SYS_FIELD(name) __typeof__(name) *name;
    GREEN_SYS_FUNCS(GREEN_SYS_FIELD)
#undef GREEN_SYS_FIELD
};

/* libc's own functions, filled by a constructor before anything of ours runs */
extern struct green_sys green__sys;

/* libgreen starts its own OS threads (thread pool, server shards) with this: under a
 * sanitizer the call may reach libgreen-patch.so's pthread_create wrapper, which sees
 * green__sys_internal set and passes it through to libc. */
int green__sys_thread_create(pthread_t *t, void *(*fn)(void *), void *arg);
extern __thread int green__sys_internal;
/* Fill green__sys now (idempotent). Until then its entries are the link-time addresses,
 * which an interposing wrapper may have won: a wrapper called before any constructor
 * (sanitizer runtimes call pthread functions that early) reaches libc through
 * green__sys_get(). */
void green__sys_init(void);
extern int green__sys_ready;
static inline struct green_sys *green__sys_get(void)
{
    if (__builtin_expect(!__atomic_load_n(&green__sys_ready, __ATOMIC_ACQUIRE), 0))
        green__sys_init();
    return &green__sys;
}

#endif /* GREEN_SYS_H */
