/*
 * patch.h — what the files of libgreen-patch.so share (layer 7, "Patch").
 *
 * libgreen-patch.so interposes libc's blocking calls. Each wrapper asks patch_here():
 * when the calling OS thread runs a hub (it is a green thread, or the root of a hub),
 * the call is made cooperatively with libgreen and parks only the calling green thread;
 * otherwise (a plain thread, before any hub exists) it goes straight to libc through
 * patch_real(), so a wrapper never catches libgreen's own calls (libgreen calls libc
 * through its own table, sys.h).
 *
 * The library uses libgreen.so through its public API (green.h) and its private
 * interface (green_private.h, functions only): it sees no structure of the core. It
 * exports only the libc names it interposes and green_patch_report (green_patch.h);
 * everything else here is hidden.
 *
 * Every wrapper is declared with GREEN_PATCH(name) next to its definition; the list
 * lands in a linker section that green_patch_report() walks, so the report cannot
 * forget a symbol.
 */
#ifndef PATCH_H
#define PATCH_H

#include <green.h>
#include <green_patch.h>

#include "../green_private.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#define PATCH_LIKELY(x) __builtin_expect(!!(x), 1)
#define PATCH_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* libc's functions as the wrappers' pass-through reaches them: the next definitions
 * after libgreen-patch.so (libc's, past any sanitizer interceptor that came first).
 * Filled on first use with dlsym(RTLD_NEXT), which is safe even from a sanitizer's
 * pre-init code, before libc is initialised (dlopen there is not). */
extern struct green_sys patch_real_tab;
extern int patch_real_ready;
struct green_sys *patch_real_init(void);
static inline struct green_sys *patch_real(void)
{
    if (PATCH_UNLIKELY(!__atomic_load_n(&patch_real_ready, __ATOMIC_ACQUIRE)))
        return patch_real_init();
    return &patch_real_tab;
}

/* 1 when the caller may park: this OS thread has a hub (created by its use of libgreen). */
static inline int patch_here(void) { return green_private_hub_here(); }

/* 1 when thread patching is on (GREEN_PATCH_THREADS=1), read on first use: a
 * sanitizer runtime that is not first in the library list can make our constructor run
 * before the environment is readable. */
extern int patch_threads_cached; /* -1 until read */
int patch_threads_read(void);
#define patch_threads (PATCH_LIKELY(patch_threads_cached >= 0) ? patch_threads_cached : patch_threads_read())

/* For a wrapper whose blocking call failed with ECANCELED: if the caller is a green
 * pthread (GREEN_PATCH_THREADS) that has been cancelled, it leaves here as by
 * pthread_exit(PTHREAD_CANCELED); otherwise this returns. (thread.c) */
void patch_testcancel(void);

struct green_patch_sym {
    const char *name;
    void *wrapper;
    int threads;         /* 1: a pthread wrapper, interposed only with GREEN_PATCH_THREADS=1 */
};

/* The library is built with hidden visibility: an entry also exports its wrapper (a
 * visibility given after the definition still counts), unversioned, as the libc
 * references it must catch expect. */
#define GREEN_PATCH_ENTRY(sym, is_thread)                                                \
    extern __typeof__(sym) sym __attribute__((visibility("default")));                  \
    static const struct green_patch_sym green_patch_sym_##sym                             \
        __attribute__((used, section("green_patch_syms"), aligned(sizeof(void *)))) =     \
            {#sym, (void *)(sym), is_thread}
/* after a wrapper's definition: list it in green_patch_report() and export it */
#define GREEN_PATCH(sym) GREEN_PATCH_ENTRY(sym, 0)
#define GREEN_PATCH_THREAD(sym) GREEN_PATCH_ENTRY(sym, 1)

#endif /* PATCH_H */
