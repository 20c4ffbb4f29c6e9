/*
 * patch.c — libgreen-patch.so's common part: the libc table of its pass-through path,
 * its switches, and green_patch_report().
 *
 * The wrappers themselves are in fd.c, io.c, poll.c, time.c, dns.c (fds, sockets,
 * sleeps, DNS), epoll.c, splice.c, file.c (event loops, fd-to-fd copies, regular files
 * and locks), signal.c, proc.c (signals, child processes) and thread.c (pthreads as
 * green threads). This file reads the environment once at
 * load (GREEN_PATCH_THREADS, GREEN_PATCH_REPORT) and answers "which calls are really
 * interposed": for each wrapper, the definition the process's global symbol lookup
 * finds — ours, or another library's that was loaded first (the C form of gevent's
 * "monkey-patching too late"). With GREEN_PATCH_REPORT it also prints, at exit, what
 * could not be made cooperative after all: the places where green threads held their
 * hub past the monitor's threshold (green_private_pinning).
 */
#include "patch.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

int patch_threads_cached = -1;

struct green_sys patch_real_tab;
int patch_real_ready;

/* The table's names, in its order, one string: a loop over them is ~150 bytes of code
 * where a call per name was 7.8 KiB (startup code counts in every process's resident
 * pages). */
static const char real_names[] =
#define GREEN_PATCH_NAME(name) #name "\0"
    GREEN_SYS_FUNCS(GREEN_PATCH_NAME)
#undef GREEN_PATCH_NAME
    ;
enum {
#define GREEN_PATCH_COUNT(name) real_n_##name,
    GREEN_SYS_FUNCS(GREEN_PATCH_COUNT)
#undef GREEN_PATCH_COUNT
    REAL_N
};
_Static_assert(sizeof(struct green_sys) == REAL_N * sizeof(void (*)(void)), "green_sys: not only function pointers");

/* RTLD_NEXT is relative to the calling object: this file is in libgreen-patch.so. Where
 * a name is not found after us, libgreen's own table (libc's, looked up later) serves.
 * Slot i of a table is its i-th function pointer (its fields are REAL_N of them in a row). */
struct green_sys *patch_real_init(void)
{
    const char *name = real_names;
    for (size_t i = 0; i < REAL_N; i++, name += strlen(name) + 1) {
        void *f = dlsym(RTLD_NEXT, name);
        size_t at = i * sizeof(void (*)(void));
        if (f)
            memcpy((char *)&patch_real_tab + at, &f, sizeof f);
        else
            memcpy((char *)&patch_real_tab + at, (const char *)green_private_sys() + at, sizeof f);
    }
    __atomic_store_n(&patch_real_ready, 1, __ATOMIC_RELEASE);
    return &patch_real_tab;
}

/* The linker's bounds of the registry's section; hidden (the linker would export them). */
extern const struct green_patch_sym __start_green_patch_syms[] __attribute__((weak, visibility("hidden")));
extern const struct green_patch_sym __stop_green_patch_syms[] __attribute__((weak, visibility("hidden")));

static int env_on(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

size_t patch_env_size(const char *v)
{
    char *end;
    unsigned long long x = strtoull(v, &end, 0);
    int shift = *end == 'k' || *end == 'K' ? 10 : *end == 'm' || *end == 'M' ? 20 : 0;
    if (x > (SIZE_MAX >> shift))
        return SIZE_MAX;
    return (size_t)x << shift;
}

int green_patch_report(FILE *f)
{
    if (!f) {
        errno = EINVAL;
        return -1;
    }
    int missed = 0;
    Dl_info self = {0}; /* this library: where a wrapper that is interposed was found */
    dladdr((void *)green_patch_report, &self);
    /* the linker's bounds of the section: two symbols, so count by address */
    size_t n = ((uintptr_t)__stop_green_patch_syms - (uintptr_t)__start_green_patch_syms) /
               sizeof(struct green_patch_sym);
    for (const struct green_patch_sym *s = __start_green_patch_syms; s != __start_green_patch_syms + n; s++) {
        void *found = dlsym(RTLD_DEFAULT, s->name);
        Dl_info where = {0};
        if (found)
            dladdr(found, &where);
        int ours = found && self.dli_fbase && where.dli_fbase == self.dli_fbase;
        const char *mark = "patched";
        if (!ours) {
            mark = "NOT patched";
            missed++;
        } else if (s->threads && !patch_threads) {
            mark = "pass-through (GREEN_PATCH_THREADS is off)";
        }
        if (ours)
            where.dli_fname = NULL;
        fprintf(f, "green-patch: %-24s %s%s%s\n", s->name, mark, where.dli_fname ? ", resolves to " : "",
                where.dli_fname ? where.dli_fname : "");
    }
    fflush(f);
    return missed;
}

int patch_threads_read(void)
{
    extern char **environ;
    if (!environ) /* a sanitizer's pre-init, before libc's own: ask again later */
        return 0;
    patch_threads_cached = env_on("GREEN_PATCH_THREADS");
    return patch_threads_cached;
}

/* Each place where the hub was held, with its count and time. */
static void pinning_report(FILE *f)
{
    struct green_private_pin pins[65];
    int64_t ms;
    size_t n = green_private_pinning(pins, sizeof pins / sizeof *pins, &ms);
    if (n == 0 && ms == 0)
        fprintf(f, "green-patch: pinning: the detector did not run (GREEN_MONITOR_MS unset or 0, or no hub)\n");
    else if (n == 0)
        fprintf(f, "green-patch: pinning: no hub was held for more than %lld ms\n", (long long)ms);
    else
        fprintf(f, "green-patch: pinning: %zu place%s where a green thread held its hub for more than %lld ms:\n",
                n, n == 1 ? "" : "s", (long long)ms);
    for (size_t i = 0; i < n && i < sizeof pins / sizeof *pins; i++)
        fprintf(f, "green-patch:   %llu time%s, %llu ms in all, longest %llu ms: %s\n",
                (unsigned long long)pins[i].count, pins[i].count == 1 ? "" : "s",
                (unsigned long long)pins[i].total_ms, (unsigned long long)pins[i].max_ms, pins[i].what);
    fflush(f);
}

/* the ends of what every program runs and of this library's hot code: the linker
 * script's (hidden), or none */
extern const char __green_hot_common[] __attribute__((weak, visibility("hidden")));
extern const char __green_hot_end[] __attribute__((weak, visibility("hidden")));
static const struct green_private_text_ends text_ends = {__green_hot_common, __green_hot_end};

__attribute__((constructor)) static void patch_init(void)
{
    green_private_text_trim(&text_ends);
    if (env_on("GREEN_PATCH_REPORT"))
        green_patch_report(stderr);
}

__attribute__((destructor)) static void patch_fini(void)
{
    if (env_on("GREEN_PATCH_REPORT"))
        pinning_report(stderr);
}
