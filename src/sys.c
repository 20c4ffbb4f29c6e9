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

struct green_sys green__sys = {
#define GREEN_SYS_INIT(name) .name = name,
    GREEN_SYS_FUNCS(GREEN_SYS_INIT)
#undef GREEN_SYS_INIT
};

static void *lookup(void *libc, void *libpthread, const char *name)
{
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
