/*
 * sys.c — fills green__sys (see sys.h) with libc's own definitions.
 *
 * dlsym on libc's handle searches libc (and what it depends on) only, so a function an
 * LD_PRELOAD library or the program itself defines is skipped. Where libc does not have
 * a function (the pthread functions lived in libpthread before glibc 2.34), the next
 * definition after libgreen is used; the address the linker bound is the last resort.
 */
#include "sys.h"

#include <dlfcn.h>
#include <stddef.h>
#include <string.h>

/* Sanitizers see a program through their interceptors of these very functions: TSan
 * learns of locks, threads and fd hand-offs from them, ASan of threads. Bypassing them
 * would make TSan report races that are not there, so under TSan the table keeps the
 * addresses the linker bound (the interceptors), and under ASan pthread_create does.
 * (libgreen-patch.so is not supported under TSan.) */
#if defined(__SANITIZE_THREAD__)
#define SANITIZER_SKIPS(name) 1
#elif defined(__SANITIZE_ADDRESS__)
#define SANITIZER_SKIPS(name) (strcmp(name, "pthread_create") == 0)
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SANITIZER_SKIPS(name) 1
#elif __has_feature(address_sanitizer)
#define SANITIZER_SKIPS(name) (strcmp(name, "pthread_create") == 0)
#endif
#endif
#ifndef SANITIZER_SKIPS
#define SANITIZER_SKIPS(name) 0
#endif

__thread int green__sys_internal;

int green__sys_thread_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
    green__sys_internal = 1;
    int err = green__sys.pthread_create(t, NULL, fn, arg);
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
    if (SANITIZER_SKIPS(name))
        return NULL;
    void *f = libc ? dlsym(libc, name) : NULL;
    if (!f && libpthread)
        f = dlsym(libpthread, name);
    if (!f)
        f = dlsym(RTLD_NEXT, name);
    return f;
}

/* Runs before the constructors of anything that links against libgreen. */
__attribute__((constructor(101))) static void sys_init(void)
{
    void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    void *libpthread = dlopen("libpthread.so.0", RTLD_LAZY | RTLD_NOLOAD);
    void *f;
#define GREEN_SYS_LOOKUP(name)                                                           \
    if ((f = lookup(libc, libpthread, #name)) != NULL)                                   \
        green__sys.name = (__typeof__(name) *)f;
    GREEN_SYS_FUNCS(GREEN_SYS_LOOKUP)
#undef GREEN_SYS_LOOKUP
    /* the handles stay open: libc is never unloaded anyway */
}
