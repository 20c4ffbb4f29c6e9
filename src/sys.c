/*
 * sys.c — libc's own functions for libgreen (layer 0, sys.h): fills green__sys with
 * libc's definitions, starts libgreen's own OS threads, and hands the table to
 * libgreen-patch.so (green_private_sys).
 *
 * dlsym on libc's handle searches libc (and what it depends on) only, so a function an
 * LD_PRELOAD library or the program itself defines is skipped. Where libc does not have
 * a function (the pthread functions lived in libpthread before glibc 2.34), the next
 * definition after libgreen is used; the address the linker bound is the last resort.
 */
#include "sys.h"
#include "green_private.h"

#include <dlfcn.h>
#include <stddef.h>
#include <string.h>

/* TSan learns of locks, threads and fd hand-offs from its interceptors of these very
 * functions; bypassing them would make it report races that are not there. So under
 * TSan the table keeps the addresses the linker bound (the interceptors), and
 * libgreen-patch.so is not supported. ASan only needs to see thread creation, which
 * green__sys_thread_create routes through its interceptor (and on to the patch
 * library's wrapper, which passes it through to the table's libc). */
#if defined(__SANITIZE_THREAD__)
#define GREEN_SYS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GREEN_SYS_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define GREEN_SYS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GREEN_SYS_ASAN 1
#endif
#endif

__thread int green__sys_internal;

int green__sys_thread_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
    green__sys_internal = 1;
#if defined(GREEN_SYS_ASAN)
    int err = pthread_create(t, NULL, fn, arg);
#else
    int err = green__sys_get()->pthread_create(t, NULL, fn, arg);
#endif
    green__sys_internal = 0;
    return err;
}

struct green_sys green__sys = {
#define GREEN_SYS_INIT(name) .name = name,
    GREEN_SYS_FUNCS(GREEN_SYS_INIT)
#undef GREEN_SYS_INIT
};

static void *lookup(void *libc, void *libpthread, const char *name)
{
#if defined(GREEN_SYS_TSAN)
    (void)libc, (void)libpthread, (void)name;
    return NULL;
#endif
    void *f = libc ? dlsym(libc, name) : NULL;
    if (!f && libpthread)
        f = dlsym(libpthread, name);
    if (!f)
        f = dlsym(RTLD_NEXT, name);
    return f;
}

int green__sys_ready;

/* Runs before the constructors of anything that links against libgreen. */
__attribute__((constructor(101))) void green__sys_init(void)
{
    if (__atomic_load_n(&green__sys_ready, __ATOMIC_ACQUIRE))
        return;
    void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    void *libpthread = dlopen("libpthread.so.0", RTLD_LAZY | RTLD_NOLOAD);
    void *f;
#define GREEN_SYS_LOOKUP(name)                                                           \
    if ((f = lookup(libc, libpthread, #name)) != NULL)                                   \
        green__sys.name = (__typeof__(name) *)f;
    GREEN_SYS_FUNCS(GREEN_SYS_LOOKUP)
#undef GREEN_SYS_LOOKUP
    /* the handles stay open: libc is never unloaded anyway */
    __atomic_store_n(&green__sys_ready, 1, __ATOMIC_RELEASE);
}

const struct green_sys *green_private_sys(void) { return green__sys_get(); }

int green_private_sys_internal(void) { return green__sys_internal; }
