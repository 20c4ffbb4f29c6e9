/*
 * calloc.c — calloc for green pthreads (GREEN_PATCH_THREADS=1): large blocks get zeros
 * without writing pages that are zeros already.
 *
 * Green pthreads allocate from their OS thread's malloc arena — one for many, where each
 * real thread had an arena of its own. glibc's calloc clears every byte of a block except
 * what it knows came fresh from the kernel: a block carved from the top of the main
 * arena's heap is cleared up to the heap's highest point so far, which glibc's 128 KiB
 * growth padding puts above most new blocks. So a program that callocs buffers larger
 * than it fills gets them written in full under greenrun where a thread's own arena left
 * most of their pages untouched: siege callocs 2 x 80 KiB and 24 KiB a user, and at 80
 * users was 26.7 MiB resident under greenrun against 19.4 MiB on real threads;
 * libmariadb's 16 KiB network buffers did the same to mariadb-slap and sysbench.
 *
 * Here a block of CALLOC_SPARSE bytes or more is malloc'd and only its pages that can hold
 * data are cleared. A page of glibc's heap, arenas or mmapped blocks (anonymous private
 * memory) that is not resident was never touched or was given back (glibc trims with
 * sbrk and MADV_DONTNEED): it reads as zeros — unless it was swapped out. So: mincore(2)
 * says which pages are resident (cleared); where some are not and the machine has swap,
 * /proc/self/pagemap says which of those are swapped (cleared too), and without pagemap
 * (a process that changed its user) they are all cleared. One mincore call for a block
 * that was all in use before (a hot loop: ~0.3 us more than glibc's), a pagemap read only
 * with swap. Only with glibc's malloc (another allocator may use shared memory or
 * MADV_FREE, whose pages keep their data until reclaimed), and not under valgrind (whose
 * memcheck would see the bytes left alone as undefined); GREEN_PATCH_CALLOC=glibc, or no
 * GREEN_PATCH_THREADS: the next calloc does it all, as without the library
 * (GREEN_PATCH_CALLOC=swap: pagemap's way as if the machine had swap, for the tests).
 */
#include "patch.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#if defined(GREEN_HAVE_VALGRIND) && !defined(__SANITIZE_ADDRESS__)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#define CALLOC_SPARSE (16 * 1024)
#define CALLOC_PAGES 256 /* pages looked at per mincore or pagemap read */

extern void *__libc_calloc(size_t, size_t);
extern void *__libc_malloc(size_t);

static void *(*next_calloc)(size_t, size_t);
static void *(*next_malloc)(size_t);
static int sparse = -1; /* -1: not decided yet */
static __thread int resolving __attribute__((tls_model("initial-exec")));

/* The next calloc and malloc (the program's, if it brings its own): 0, or -1 while they
 * are being looked up (should dlsym allocate, glibc's calloc serves it meanwhile). */
static int resolve(void)
{
    if (__atomic_load_n(&next_calloc, __ATOMIC_ACQUIRE))
        return 0;
    if (resolving)
        return -1;
    resolving = 1;
    void *m = dlsym(RTLD_NEXT, "malloc"), *c = dlsym(RTLD_NEXT, "calloc");
    resolving = 0;
    if (!m || !c)
        return -1;
    __atomic_store_n(&next_malloc, (void *(*)(size_t))m, __ATOMIC_RELAXED);
    __atomic_store_n(&next_calloc, (void *(*)(size_t, size_t))c, __ATOMIC_RELEASE);
    return 0;
}

static int sparse_on(void)
{
    int s = __atomic_load_n(&sparse, __ATOMIC_RELAXED);
    if (s >= 0)
        return s;
    int threads = patch_threads;
    if (patch_threads_cached < 0)
        return 0; /* the environment is not there yet (a sanitizer's pre-init) */
    const char *v = getenv("GREEN_PATCH_CALLOC");
    s = threads && next_malloc == __libc_malloc && !RUNNING_ON_VALGRIND && !(v && strcmp(v, "glibc") == 0);
    if (s && v && strcmp(v, "swap") == 0)
        s = 2; /* as if the machine had swap: pagemap's way (for the tests) */
    __atomic_store_n(&sparse, s, __ATOMIC_RELAXED);
    return s;
}

/* Zero the part of page [page, page + ps) inside [lo, hi). */
static inline void zero_page(uintptr_t page, uintptr_t ps, uintptr_t lo, uintptr_t hi)
{
    uintptr_t a = page > lo ? page : lo, b = page + ps < hi ? page + ps : hi;
    memset((void *)a, 0, b - a);
}

/* Among k pages from `page` whose bit in `need` is set (not resident), zero those that
 * may hold data: the swapped ones by pagemap (*fd: opened on first use, -2 unknown), all
 * of them without it. Raw system calls: none of this library's wrappers runs. */
static void zero_swapped(long *fd, uintptr_t page, size_t k, const unsigned char *need, uintptr_t ps,
                         uintptr_t lo, uintptr_t hi)
{
    uint64_t e[CALLOC_PAGES];
    if (*fd == -2)
        *fd = patch_real()->syscall(SYS_openat, AT_FDCWD, "/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    int known = *fd >= 0 && patch_real()->syscall(SYS_pread64, (int)*fd, e, k * sizeof e[0], (off_t)(page / ps * sizeof e[0])) ==
                                (long)(k * sizeof e[0]);
    const uint64_t present = 1ull << 63, swapped = 1ull << 62;
    for (size_t i = 0; i < k; i++)
        if (need[i] && (!known || (e[i] & (present | swapped))))
            zero_page(page + i * ps, ps, lo, hi);
}

/* Zero the pages of [p, p + n) that may hold data. */
static __attribute__((noinline)) void zero_used(char *p, size_t n)
{
    static uintptr_t page_size;
    uintptr_t ps = __atomic_load_n(&page_size, __ATOMIC_RELAXED);
    if (!ps) {
        long v = sysconf(_SC_PAGESIZE);
        ps = v > 0 ? (uintptr_t)v : 4096;
        __atomic_store_n(&page_size, ps, __ATOMIC_RELAXED);
    }
    uintptr_t lo = (uintptr_t)p, hi = lo + n;
    unsigned char vec[CALLOC_PAGES], need[CALLOC_PAGES];
    int swap = -1; /* unknown */
    long fd = -2;
    for (uintptr_t page = lo & ~(ps - 1); page < hi;) {
        size_t k = (size_t)((hi - page + ps - 1) / ps);
        if (k > CALLOC_PAGES)
            k = CALLOC_PAGES;
        if (mincore((void *)page, k * ps, vec) != 0) { /* (never seen) the rest, all of it */
            uintptr_t a = page > lo ? page : lo;
            memset((void *)a, 0, hi - a);
            break;
        }
        size_t absent = 0;
        for (size_t i = 0; i < k; i++) {
            need[i] = !(vec[i] & 1);
            if (need[i])
                absent++;
            else
                zero_page(page + i * ps, ps, lo, hi);
        }
        if (absent) {
            if (swap < 0) {
                struct sysinfo si;
                swap = sparse == 2 || sysinfo(&si) != 0 || si.totalswap != 0;
            }
            if (swap) /* a page not resident may be on swap, with data */
                zero_swapped(&fd, page, k, need, ps, lo, hi);
        }
        page += k * ps;
    }
    if (fd >= 0)
        patch_real()->syscall(SYS_close, (int)fd);
}

void *calloc(size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    if (resolve() != 0)
        return __libc_calloc(n, size);
    if (total < CALLOC_SPARSE || !sparse_on())
        return next_calloc(n, size);
    char *p = next_malloc(total);
    if (p)
        zero_used(p, total);
    return p;
}
GREEN_PATCH_THREAD(calloc);
