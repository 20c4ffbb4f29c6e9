/*
 * patch.h — what the files of libgreen-patch.so share (layer 7, "Patch").
 *
 * libgreen-patch.so interposes libc's blocking calls. Each wrapper asks
 * green__patch_here(): when the calling OS thread runs a hub (it is a green thread, or
 * the root of a hub), the call is made cooperatively with libgreen and parks only the
 * calling green thread; otherwise (a plain thread, before any hub exists) it goes
 * straight to libc through green__sys (sys.h), which is also what libgreen itself calls,
 * so a wrapper never catches libgreen's own calls.
 *
 * Every wrapper is declared with GREEN_PATCH(name) next to its definition; the list
 * lands in a linker section that green_patch_report() walks, so the report cannot
 * forget a symbol.
 */
#ifndef GREEN_PATCH_H
#define GREEN_PATCH_H

#include "../internal.h"

#include <stdio.h>

/* libc's functions as the wrappers' pass-through reaches them: the next definitions
 * after libgreen-patch.so (libc's, past any sanitizer interceptor that came first).
 * Filled on first use with dlsym(RTLD_NEXT), which is safe even from a sanitizer's
 * pre-init code, before libc is initialised (dlopen there is not). */
extern struct green_sys green__patch_real_tab;
extern int green__patch_real_ready;
struct green_sys *green__patch_real_init(void);
static inline struct green_sys *green__real(void)
{
    if (GREEN_UNLIKELY(!__atomic_load_n(&green__patch_real_ready, __ATOMIC_ACQUIRE)))
        return green__patch_real_init();
    return &green__patch_real_tab;
}

/* 1 when the caller may park: this OS thread has a hub (created by its use of libgreen). */
static inline int green__patch_here(void) { return green__tls_hub != NULL; }

/* 1 when thread patching is on (GREEN_PATCH_THREADS=1), read on first use: a
 * sanitizer runtime that is not first in the library list can make our constructor run
 * before the environment is readable. */
extern int green__patch_threads_cached; /* -1 until read */
int green__patch_threads_read(void);
#define green__patch_threads                                                              \
    (GREEN_LIKELY(green__patch_threads_cached >= 0) ? green__patch_threads_cached          \
                                                    : green__patch_threads_read())

/* For a wrapper whose blocking call failed with ECANCELED: if the caller is a green
 * pthread (GREEN_PATCH_THREADS) that has been cancelled, it leaves here as by
 * pthread_exit(PTHREAD_CANCELED); otherwise this returns. (thread.c) */
void green__patch_testcancel(void);

struct green_patch_sym {
    const char *name;
    void *wrapper;
    int threads;         /* 1: a pthread wrapper, interposed only with GREEN_PATCH_THREADS=1 */
};

#define GREEN_PATCH_ENTRY(sym, is_thread)                                                \
    static const struct green_patch_sym green_patch_sym_##sym                             \
        __attribute__((used, section("green_patch_syms"), aligned(sizeof(void *)))) =     \
            {#sym, (void *)(sym), is_thread}
/* after a wrapper's definition: list it in green_patch_report() */
#define GREEN_PATCH(sym) GREEN_PATCH_ENTRY(sym, 0)
#define GREEN_PATCH_THREAD(sym) GREEN_PATCH_ENTRY(sym, 1)

#endif /* GREEN_PATCH_H */
