/*
 * libgreen-patch — libc's blocking calls made cooperative in green threads.
 *
 * libgreen-patch.so defines read, write, connect, accept, poll, select, nanosleep,
 * getaddrinfo, close, ... (and, with GREEN_PATCH_THREADS=1 in the environment, the
 * pthread calls: threads become green threads) so that unmodified code, libraries
 * included, parks only the calling green thread where it runs on a libgreen hub, and
 * passes straight through to libc everywhere else: gevent's monkey patching for C. Link
 * it (pkg-config libgreen-patch, or green::green-patch; the link must keep it although
 * no call names it), preload it (LD_PRELOAD), or run a program with tools/greenrun.
 *
 * It exports the libc names it defines and one function of its own, below; libgreen's
 * API is in green.h.
 */
#ifndef GREEN_PATCH_H
#define GREEN_PATCH_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the function of this header: libgreen-patch.so exports it besides libc's names. */
#if defined(__GNUC__)
#define GREEN_PATCH_API __attribute__((visibility("default")))
#else
#define GREEN_PATCH_API
#endif

/* Prints each libc symbol libgreen-patch.so wraps and whether the process's symbol
 * lookup really reaches the wrapper; returns how many do not (0: all patched), -1 +
 * EINVAL on a NULL stream. GREEN_PATCH_REPORT=1 in the environment prints it to stderr
 * when the library is loaded. */
GREEN_PATCH_API int green_patch_report(FILE *f);

#ifdef __cplusplus
}
#endif
#endif /* GREEN_PATCH_H */
