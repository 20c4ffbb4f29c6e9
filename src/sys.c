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
#include <link.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

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

/* The table's names, in its order, one string: a loop over them is ~100 bytes of code
 * where a call per name was 4 KiB (startup code counts in every process's resident
 * pages). */
static const char sys_names[] =
#define GREEN_SYS_NAME(name) #name "\0"
    GREEN_SYS_FUNCS(GREEN_SYS_NAME)
#undef GREEN_SYS_NAME
    ;
enum {
#define GREEN_SYS_COUNT(name) sys_n_##name,
    GREEN_SYS_FUNCS(GREEN_SYS_COUNT)
#undef GREEN_SYS_COUNT
    SYS_N
};
/* every field is a function pointer, so the table is SYS_N of them in a row */
_Static_assert(sizeof(struct green_sys) == SYS_N * sizeof(void (*)(void)), "green_sys: not only function pointers");

/* Runs before the constructors of anything that links against libgreen. */
__attribute__((constructor(101))) void green__sys_init(void)
{
    if (__atomic_load_n(&green__sys_ready, __ATOMIC_ACQUIRE))
        return;
    void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    void *libpthread = dlopen("libpthread.so.0", RTLD_LAZY | RTLD_NOLOAD);
    const char *name = sys_names;
    for (size_t i = 0; i < SYS_N; i++, name += strlen(name) + 1) {
        void *f = lookup(libc, libpthread, name);
        if (f) /* slot i of the table: its fields are SYS_N function pointers in a row */
            memcpy((char *)&green__sys + i * sizeof(void (*)(void)), &f, sizeof f);
    }
    /* the handles stay open: libc is never unloaded anyway */
    __atomic_store_n(&green__sys_ready, 1, __ATOMIC_RELEASE);
}

const struct green_sys *green_private_sys(void) { return green__sys_get(); }

int green_private_sys_internal(void) { return green__sys_internal; }

/* ---- the library's pages (cmake/hot_layout.cmake) ---- */

struct text_find {
    uintptr_t at;                 /* in: an address of the library's code */
    const ElfW(Phdr) *phdr;       /* out: its program headers, */
    ElfW(Half) phnum;             /*      how many, */
    uintptr_t base;               /*      and where it was loaded */
};

static int text_segment(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct text_find *t = arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && t->at >= lo && t->at < lo + ph->p_memsz) {
            t->phdr = info->dlpi_phdr, t->phnum = info->dlpi_phnum, t->base = info->dlpi_addr;
            return 1;
        }
    }
    return 0;
}

/* Drop the pages of [from, to) that are mapped from the file and unchanged. A page a
 * debugger or a uprobe wrote a breakpoint into is a private copy by now (an anonymous
 * page in /proc/self/pagemap) and must stay: dropping it would silently remove the
 * breakpoint (gdb's `break` on a cold function before `run` never fired). Without
 * pagemap, nothing is dropped. Raw system calls: this runs in the libraries'
 * constructors, where libgreen-patch.so's own wrappers of open and read may not be ready. */
static void drop_clean(int fd, uintptr_t from, uintptr_t to, uintptr_t page)
{
    enum { MAXP = 128 };
    uint64_t e[MAXP];
    for (; from < to; from += MAXP * page) {
        size_t n = (to - from) / page;
        if (n > MAXP)
            n = MAXP;
        long got = green__sys.syscall(SYS_pread64, fd, e, n * sizeof e[0], (off_t)(from / page * sizeof e[0]));
        if (got != (long)(n * sizeof e[0]))
            return;
        const uint64_t present = 1ull << 63, file = 1ull << 61;
        for (size_t i = 0; i < n;) {
            if ((e[i] & (present | file)) != (present | file)) {
                i++;
                continue;
            }
            size_t j = i;
            while (j < n && (e[j] & (present | file)) == (present | file))
                j++;
            madvise((void *)(from + i * page), (j - i) * page, MADV_DONTNEED);
            i = j;
        }
    }
}

/* Every other page of [from, to) gets MADV_RANDOM, the last one not: the flags of
 * neighbours differ, so the kernel splits the mapping at each page and never merges the
 * pages back. Splits cost ~2 us each, so only where it pays. */
static void split_pages(uintptr_t from, uintptr_t to, uintptr_t ps)
{
    for (uintptr_t p = from; p < to; p += ps)
        if ((to - ps - p) / ps % 2 == 1 && madvise((void *)p, ps, MADV_RANDOM) != 0)
            return;
}

/* The kernel maps a file's pages 64 KiB around each one touched (fault-around), but
 * never past the mapping the touched page is in. So each page of the library's headers
 * and read-only data, and of its hot code past what every program runs (common_end),
 * becomes a mapping of its own (split_pages); what every program runs stays one
 * mapping, the rest of the code another (MADV_RANDOM: readahead off), and .eh_frame's
 * segment is left alone. Then the pages fault-around had mapped are dropped (clean file
 * pages only): a touch maps that page again, and only it (in the common code, the pages
 * around it, which every program runs anyway). A process then has resident the pages it
 * reads and runs after the load, not their windows (~60 KiB less of both libraries, for
 * ~0.1 ms more at start). Nothing else changes: the code and data are the same. */
static void drop_segments(const struct text_find *t, uintptr_t common_end, uintptr_t hot_end)
{
    uintptr_t ps = (uintptr_t)sysconf(_SC_PAGESIZE);
    long fd = green__sys.syscall(SYS_openat, AT_FDCWD, "/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    for (ElfW(Half) i = 0; i < t->phnum; i++) {
        const ElfW(Phdr) *ph = &t->phdr[i];
        if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W) || !((ph->p_flags & PF_X) || ph->p_offset == 0))
            continue; /* .eh_frame's segment: only an unwinder reads it */
        uintptr_t from = (t->base + ph->p_vaddr) & ~(ps - 1);
        uintptr_t to = (t->base + ph->p_vaddr + ph->p_memsz + ps - 1) & ~(ps - 1);
        if (ph->p_flags & PF_X) {
            uintptr_t hot = (hot_end + ps - 1) & ~(ps - 1);
            uintptr_t common = (common_end + ps - 1) & ~(ps - 1);
            if (hot > to)
                hot = to;
            if (common < from || common > hot)
                common = from;
            split_pages(common, hot, ps);
            if (hot < to)
                madvise((void *)hot, to - hot, MADV_RANDOM);
        } else {
            split_pages(from, to, ps); /* the headers and the read-only data */
        }
        if (fd >= 0)
            drop_clean((int)fd, from, to, ps);
    }
    if (fd >= 0)
        green__sys.syscall(SYS_close, (int)fd);
}

void green_private_text_trim(const struct green_private_text_ends *ends)
{
    /* libgreen-run.so (libgreen and the patch in one) runs both constructors, with the
     * same ends: once is enough (constructors run one at a time) */
    static const char *done[2];
    if (!ends->end || done[0] == ends->end || done[1] == ends->end)
        return;
    done[done[0] != NULL] = ends->end;
    long page = sysconf(_SC_PAGESIZE);
    struct text_find t = {(uintptr_t)ends->end - 1, NULL, 0, 0};
    if (page <= 0 || !dl_iterate_phdr(text_segment, &t))
        return;
    drop_segments(&t, (uintptr_t)ends->common, (uintptr_t)ends->end);
}

/* the ends of what every program runs and of libgreen's hot code: the linker script's
 * (hidden), or none */
extern const char __green_hot_common[] __attribute__((weak, visibility("hidden")));
extern const char __green_hot_end[] __attribute__((weak, visibility("hidden")));

static const struct green_private_text_ends text_ends = {__green_hot_common, __green_hot_end};

__attribute__((constructor(102))) static void text_trim(void) { green_private_text_trim(&text_ends); }
