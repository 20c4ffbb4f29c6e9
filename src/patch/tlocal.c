/*
 * tlocal.c — a green pthread that waits on an object in thread-local storage: said once
 * (GREEN_PATCH_THREADS=1).
 *
 * The green pthreads of one hub share its OS thread's __thread variables (docs/patch.md,
 * "What cannot follow"). Most programs keep caches and counters there, which sharing
 * leaves correct; a wait object there — a futex word, a condition, a semaphore — is a
 * thread's own by design: other threads reach it through its address to wake that one
 * thread. Shared, it is every green pthread's of the hub at once, and the program hangs
 * or mixes its threads up (mariadbd waits on a futex word of its own thread_local block).
 * Every wait of a green pthread on an object begins at pq_push (queue.c), which asks
 * patch_tlocal_wait(obj); the first wait in the process on an object that lies in the
 * thread-local blocks of the modules loaded at start is reported on stderr: the module,
 * the offset in its block, the call site and a backtrace. The program goes on.
 *
 * The blocks' places are found once, at the first wait (dl_iterate_phdr): each one's
 * offset from the thread pointer, the same in every thread — the static ones only
 * (tlocal_find).
 */
#include "patch.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCKS_MAX 32

struct block {
    ptrdiff_t off; /* its address - the thread pointer */
    size_t size;
    const char *name; /* the module's path ("" for the program) */
};

static struct block blocks[BLOCKS_MAX];
static int nblocks;
static ptrdiff_t lo, hi; /* the span of them all */
static int found;        /* 1 once found (atomic); 2 once reported */

static inline char *thread_pointer(void)
{
#if defined(__x86_64__)
    char *tp;
    __asm__("mov %%fs:0, %0" : "=r"(tp)); /* the TCB's pointer to itself */
    return tp;
#else
    return __builtin_thread_pointer();
#endif
}

static int tlocal_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    char *tp = arg;
    if (!info->dlpi_tls_data || nblocks == BLOCKS_MAX)
        return 0; /* no TLS, or not allocated in this thread yet */
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_TLS || ph->p_memsz == 0)
            continue;
        struct block *b = &blocks[nblocks++];
        b->off = (char *)info->dlpi_tls_data - tp;
        b->size = ph->p_memsz;
        b->name = info->dlpi_name ? info->dlpi_name : "";
    }
    return 0;
}

/* How far b lies from the thread pointer, on the side where static TLS grows (below it
 * on x86-64, above it on aarch64): its far end, or -1 on the other side. */
static ptrdiff_t reach(const struct block *b)
{
#if defined(__x86_64__)
    return b->off < 0 ? -b->off : -1;
#else
    return b->off >= 0 ? b->off + (ptrdiff_t)b->size : -1;
#endif
}

static int by_reach(const void *x, const void *y)
{
    ptrdiff_t a = reach(x), b = reach(y);
    return (a > b) - (a < b);
}

/* Only the static blocks count: each OS thread has them at the same offsets, packed
 * from the thread pointer on (a few bytes of alignment apart). A module loaded by dlopen
 * may have its block allocated apart (malloc'd, where no offset holds for another
 * thread): the first block further than a page from the previous one ends the static
 * ones. */
static void tlocal_find(void)
{
    dl_iterate_phdr(tlocal_module, thread_pointer());
    qsort(blocks, (size_t)nblocks, sizeof blocks[0], by_reach);
    ptrdiff_t end = 0;
    int n = 0;
    while (n < nblocks && reach(&blocks[n]) >= 0) {
        ptrdiff_t near = reach(&blocks[n]) - (ptrdiff_t)blocks[n].size; /* its near end */
        if (near - end > 4096)
            break;
        end = reach(&blocks[n]);
        if (n == 0 || blocks[n].off < lo)
            lo = blocks[n].off;
        if (n == 0 || blocks[n].off + (ptrdiff_t)blocks[n].size > hi)
            hi = blocks[n].off + (ptrdiff_t)blocks[n].size;
        n++;
    }
    nblocks = n;
}

static void report(const void *obj)
{
    ptrdiff_t off = (const char *)obj - thread_pointer();
    const struct block *b = NULL;
    for (int i = 0; i < nblocks && !b; i++)
        if (off >= blocks[i].off && off < blocks[i].off + (ptrdiff_t)blocks[i].size)
            b = &blocks[i];
    if (!b)
        return; /* between two blocks: nobody's variable */
    int expected = 1;
    if (!__atomic_compare_exchange_n(&found, &expected, 2, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return; /* said already */
    int saved = errno;
    void *pcs[32];
    int n = backtrace(pcs, 32), skip = 0;
    while (skip < n - 1 && patch_ours(pcs[skip]))
        skip++;
    char msg[1024], site[256];
    const char *mod = *b->name ? b->name : program_invocation_name;
    green_t me = green_current();
    snprintf(msg, sizeof msg,
             "libgreen-patch: green pthread %llu waits (at %s) on %p, a thread-local variable "
             "of %s (offset %td of its TLS block): the green pthreads of one OS thread share "
             "its thread-local variables, so this wait object, meant to be one thread's, is "
             "every one's of them. The program keeps per-thread state where "
             "GREEN_PATCH_THREADS=1 cannot keep threads apart, and may hang or mix its threads "
             "up (docs/patch.md, \"What cannot follow\"). Backtrace:\n",
             (unsigned long long)green_id(me), patch_where(pcs[skip], site, sizeof site), obj, mod,
             off - b->off);
    ssize_t r = patch_real()->write(2, msg, strlen(msg));
    (void)r;
    backtrace_symbols_fd(pcs + skip, n - skip, 2);
    errno = saved;
}

void patch_tlocal_wait(const void *obj)
{
    if (!__atomic_load_n(&found, __ATOMIC_ACQUIRE)) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        patch_real()->pthread_once(&once, tlocal_find);
        int zero = 0;
        __atomic_compare_exchange_n(&found, &zero, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    }
    if (__atomic_load_n(&found, __ATOMIC_ACQUIRE) != 1 || !nblocks)
        return;
    ptrdiff_t off = (const char *)obj - thread_pointer();
    if (off >= lo && off < hi)
        report(obj);
}
