/*
 * sanitize.h — telling ASan and Valgrind about stack switches.
 *
 * ASan must know which stack is current (its fiber API) or it reports false stack
 * overflows and use-after-return; Valgrind must know where stacks are or memcheck takes
 * a switch for a huge stack frame. Each hook compiles to nothing when not built for it.
 */
#ifndef GREEN_SANITIZE_H
#define GREEN_SANITIZE_H

#include <stddef.h>

#ifndef __has_feature
#define __has_feature(x) 0
#endif

#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define GREEN_ASAN 1
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define green_asan_start(save, lo, size) __sanitizer_start_switch_fiber((save), (lo), (size))
#define green_asan_finish(save) __sanitizer_finish_switch_fiber((save), NULL, NULL)
#define green_asan_unpoison(p, n) __asan_unpoison_memory_region((p), (n))
#include <sanitizer/lsan_interface.h>
/* control blocks live in mmap'd chunks and point to heap memory: let LSan scan them */
#define green_lsan_root(p, n) __lsan_register_root_region((p), (n))
#else
#define green_lsan_root(p, n) ((void)(p), (void)(n))
#define GREEN_ASAN 0
#define green_asan_start(save, lo, size) ((void)(save), (void)(lo), (void)(size))
#define green_asan_finish(save) ((void)(save))
#define green_asan_unpoison(p, n) ((void)(p), (void)(n))
#endif

#if defined(__SANITIZE_THREAD__) || __has_feature(thread_sanitizer)
#define GREEN_TSAN 1
#include <sanitizer/tsan_interface.h>
#define green_tsan_current() __tsan_get_current_fiber()
#define green_tsan_create() __tsan_create_fiber(0)
#define green_tsan_destroy(f) __tsan_destroy_fiber(f)
#define green_tsan_switch(f) __tsan_switch_to_fiber((f), 0)
#define green_tsan_name(f, n) __tsan_set_fiber_name((f), (n))
/* Reads of another hub's green thread that race with its hub by design and are checked
 * afterwards (its generation read again): TSan is told not to report them. */
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
#define green_tsan_reads_begin() AnnotateIgnoreReadsBegin(__FILE__, __LINE__)
#define green_tsan_reads_end() AnnotateIgnoreReadsEnd(__FILE__, __LINE__)
#else
#define GREEN_TSAN 0
#define green_tsan_reads_begin() ((void)0)
#define green_tsan_reads_end() ((void)0)
#endif

/* Switches that some sanitizer must hear about cannot take the bare fast paths. */
#define GREEN_SANITIZE_FIBERS (GREEN_ASAN || GREEN_TSAN)

#if defined(GREEN_HAVE_VALGRIND) && !GREEN_ASAN /* its client requests upset ASan */
#include <valgrind/valgrind.h>
#include <valgrind/memcheck.h>
#define green_vg_register(lo, hi) VALGRIND_STACK_REGISTER((lo), (hi))
#define green_vg_deregister(id) VALGRIND_STACK_DEREGISTER(id)
/* memory of the shared stack below its last stack pointer that we are about to fill */
#define green_vg_writable(p, n) VALGRIND_MAKE_MEM_UNDEFINED((p), (n))
/* around reads of another green thread's dead stack area (high-water marks) */
#define green_vg_quiet_begin() VALGRIND_DISABLE_ERROR_REPORTING
#define green_vg_quiet_end() VALGRIND_ENABLE_ERROR_REPORTING
#else
#define green_vg_register(lo, hi) ((void)(lo), (void)(hi), 0u)
#define green_vg_deregister(id) ((void)(id))
#define green_vg_writable(p, n) ((void)(p), (void)(n))
#define green_vg_quiet_begin() ((void)0)
#define green_vg_quiet_end() ((void)0)
#endif

#endif
