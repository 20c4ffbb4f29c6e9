/*
 * debug.h — seeing what green threads do (layer 8): the dump and green_stats (dump.c),
 * backtraces and the report output (backtrace.c), names of code addresses usable in
 * signal handlers (symtab.c), the dump signal (dump_signal.c) and the monitor and
 * pinning detector (monitor.c). Above every other layer, it reads their state and changes none.
 *
 * Invariants: nothing here costs the switch path anything (what a dump shows is
 * recorded by the layers below where it is cheap, see core.h); a report written from a
 * signal handler (struct green_out.in_signal) neither mallocs nor takes a lock another
 * thread may hold, and names frames only from tables read beforehand.
 */
#ifndef GREEN_DEBUG_H
#define GREEN_DEBUG_H

#include "hub.h"
#include "lib.h"

#include <stdio.h>

/* ---- report output: to a FILE, or to an fd from a signal handler (backtrace.c) ---- */
struct green_out {
    FILE *f;
    int fd;
    int err;
    int in_signal;
    void *uc; /* in a signal handler: the interrupted context, where we can use it */
    uintptr_t *pcs; /* set: a backtrace's addresses are collected here, not written */
    int npcs, maxpcs;
    size_t n;
    char buf[1024];
};
void green__out_flush(struct green_out *o);
void green__outf(struct green_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- backtraces (backtrace.c) ---- */
/* The caller's own frames (skip_to_signal: from the interrupted context on). */
void green__bt_here(struct green_out *o, int skip_to_signal);
/* g's frames, g running or suspended (a shared-stack one copied back for the walk). */
void green__backtrace_of(struct green_out *o, struct green_hub *h, struct green *g);
/* The code addresses of the calling thread's frames, innermost first, from the context
 * a signal interrupted (uc, a handler's third argument; NULL: from the handler's own
 * frames up to the signal frame): how many, at most max. Async-signal-safe. */
int green__bt_pcs(void *uc, uintptr_t *pcs, int max);
/* Frames given by their addresses, named from symtab.c's tables ("    #0 0x... read+0x12"). */
void green__bt_write_pcs(struct green_out *o, const uintptr_t *pcs, int n);
void green__debug_prepare_signals(void); /* before a handler that prints backtraces is set */
/* the unwinder alone, without the symbol tables: libunwind is loaded (dlopen) by the
 * first call, in ordinary context, never by a handler */
void green__debug_prepare_unwind(void);
void green__debug_prepare_monitor(void); /* by the monitor when it starts (no libunwind) */
/* A signal handler's third argument, where it is the kernel's record of the interrupted
 * context; NULL under TSan, which may run the handler later, elsewhere. */
static inline void *green__signal_context(void *uc)
{
#if GREEN_TSAN
    (void)uc;
    return NULL;
#else
    return uc;
#endif
}

/* ---- function names for signal handlers (symtab.c) ---- */
int green__symtab_load(void);                                 /* ordinary context; 0/-1 */
const char *green__symtab_name(uintptr_t pc, uintptr_t *off); /* async-signal-safe; NULL */
/* Whose code pc is: the runtime's (libc, the loader, libgreen, a sanitizer, the vDSO),
 * the program's (any other object loaded when the tables were read), or unknown.
 * Async-signal-safe. */
enum { GREEN_CODE_UNKNOWN, GREEN_CODE_PROGRAM, GREEN_CODE_RUNTIME };
int green__symtab_code(uintptr_t pc);

/* ---- the dump (dump.c) ---- */
void green__dump_hub(struct green_out *o, struct green_hub *h);

#endif /* GREEN_DEBUG_H */
