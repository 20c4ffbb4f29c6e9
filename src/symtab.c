/*
 * symtab.c — names of functions for code addresses, usable from a signal handler
 * (layer 8, debug.h).
 *
 * The dump signal and the blocked-hub monitor print backtraces from signal handlers,
 * where nothing may call malloc or take a lock another thread may hold (and libunwind's
 * unw_get_proc_name, like dladdr, does both). So the names are read beforehand, in an
 * ordinary context (green__symtab_load): for every object loaded at that time, its ELF
 * file is mapped read-only and the functions of its .symtab (static ones included), or
 * of its .dynsym when stripped, go into one array sorted by address. A handler then
 * only searches that array. Objects loaded later are not in it (their frames print as
 * bare addresses). The mappings and the array are kept for the life of the process.
 * Where aliases share an address (read, __read), the name with the fewest leading
 * underscores is the one given.
 *
 * It also says whose code an address is (green__symtab_code): the runtime's — libc and
 * its companions, the dynamic loader, libgreen, libgreen-patch and libgreen-run (both in
 * one), the sanitizer runtimes and the vDSO, known by their file names — or the
 * program's (any other object loaded then); the pinning detector (monitor.c) looks for
 * the first frame outside the runtime, the program's call site.
 */
#include "debug.h"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct sym {
    uintptr_t addr;
    size_t size;
    const char *name;
};

static struct sym *syms;
static size_t nsyms, capsyms;
static int loaded; /* 1 once the array is complete; read by handlers */
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

static int add(uintptr_t addr, size_t size, const char *name)
{
    if (nsyms == capsyms) {
        size_t cap = capsyms ? capsyms * 2 : 4096;
        struct sym *s = realloc(syms, cap * sizeof *s);
        if (!s)
            return -1;
        syms = s;
        capsyms = cap;
    }
    syms[nsyms++] = (struct sym){addr, size, name};
    return 0;
}

/* The vDSO's code: its frames are named "[vdso]" (its own symbols are not read). */
static uintptr_t vdso_lo, vdso_hi;

/* The code of each object (see green__symtab_code). */
#define OBJECTS_MAX 128
static struct {
    uintptr_t lo, hi;
    int runtime;
} objects[OBJECTS_MAX] GREEN_BIG_BSS;
static size_t nobjects;

/* Is the object at path part of the runtime rather than of the program? */
static int runtime_object(const char *path)
{
    static const char *const prefixes[] = {
        "libc.so", "libc-", "libpthread", "librt.", "librt-", "libdl.", "libdl-", "ld-linux",
        "ld64.so", "ld-2.", "libgreen.so", "libgreen-patch.so", "libgreen-run.so", "libasan",
        "libubsan", "libtsan", "liblsan", "libunwind",
    };
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++)
        if (strncmp(base, prefixes[i], strlen(prefixes[i])) == 0)
            return 1;
    return 0;
}

/* The functions of one ELF file loaded at base, whose code ends at text_end; its mapping
 * stays (names point into it). A symbol without a size (_init, _fini, some assembly)
 * is taken to reach as far as the next symbol or the end of the code, no further. */
static void load_file(const char *path, uintptr_t base, uintptr_t text_end)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    void *map = MAP_FAILED;
    if (fstat(fd, &st) == 0 && st.st_size >= (off_t)sizeof(ElfW(Ehdr)))
        map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    green__sys.close(fd);
    if (map == MAP_FAILED)
        return;
    const char *img = map;
    size_t len = (size_t)st.st_size;
    const ElfW(Ehdr) *eh = map;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_shentsize != sizeof(ElfW(Shdr)) ||
        eh->e_shoff == 0 || eh->e_shoff + (size_t)eh->e_shnum * sizeof(ElfW(Shdr)) > len) {
        munmap(map, len);
        return;
    }
    const ElfW(Shdr) *sh = (const ElfW(Shdr) *)(const void *)(img + eh->e_shoff);
    const ElfW(Shdr) *tab = NULL;
    for (int want = SHT_SYMTAB; !tab && want; want = want == SHT_SYMTAB ? SHT_DYNSYM : 0)
        for (unsigned i = 0; i < eh->e_shnum; i++)
            if (sh[i].sh_type == (ElfW(Word))want && sh[i].sh_link < eh->e_shnum) {
                tab = &sh[i];
                break;
            }
    if (!tab || tab->sh_offset + tab->sh_size > len || tab->sh_entsize != sizeof(ElfW(Sym))) {
        munmap(map, len);
        return;
    }
    const ElfW(Shdr) *str = &sh[tab->sh_link];
    if (str->sh_offset + str->sh_size > len) {
        munmap(map, len);
        return;
    }
    const ElfW(Sym) *s = (const ElfW(Sym) *)(const void *)(img + tab->sh_offset);
    size_t n = tab->sh_size / sizeof *s, kept = 0;
    for (size_t i = 0; i < n; i++) {
        int type = ELF64_ST_TYPE(s[i].st_info);
        if ((type != STT_FUNC && type != STT_GNU_IFUNC) || s[i].st_shndx == SHN_UNDEF ||
            s[i].st_value == 0 || s[i].st_name >= str->sh_size)
            continue;
        uintptr_t at = base + s[i].st_value;
        size_t size = s[i].st_size ? s[i].st_size : at < text_end ? text_end - at : 1;
        if (add(at, size, img + str->sh_offset + s[i].st_name) != 0)
            break;
        kept++;
    }
    if (!kept)
        munmap(map, len);
}

static int one_object(struct dl_phdr_info *info, size_t size, void *unused)
{
    (void)size, (void)unused;
    const char *path = info->dlpi_name;
    if (!path || !*path)
        path = "/proc/self/exe"; /* the program itself */
    uintptr_t lo = UINTPTR_MAX, hi = 0; /* its code */
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t a = (uintptr_t)info->dlpi_addr + ph->p_vaddr;
        lo = a < lo ? a : lo;
        hi = a + ph->p_memsz > hi ? a + ph->p_memsz : hi;
    }
    if (strncmp(path, "linux-vdso", 10) == 0) {
        vdso_lo = lo;
        vdso_hi = hi;
        return 0;
    }
    if (lo < hi && nobjects < OBJECTS_MAX) {
        objects[nobjects].lo = lo;
        objects[nobjects].hi = hi;
        objects[nobjects++].runtime = runtime_object(path);
    }
    load_file(path, (uintptr_t)info->dlpi_addr, hi);
    return 0;
}

static size_t underscores(const char *name)
{
    size_t n = 0;
    while (name[n] == '_')
        n++;
    return n;
}

/* By address; among aliases of one address the preferred name last (the search finds
 * the last symbol at or below a pc): the one with the fewest leading underscores. */
static int by_addr(const void *a, const void *b)
{
    const struct sym *x = a, *y = b;
    if (x->addr != y->addr)
        return x->addr < y->addr ? -1 : 1;
    size_t ux = underscores(x->name), uy = underscores(y->name);
    return ux > uy ? -1 : ux < uy;
}

int green__symtab_load(void)
{
    green__sys.pthread_mutex_lock(&load_lock);
    if (!__atomic_load_n(&loaded, __ATOMIC_ACQUIRE)) {
        dl_iterate_phdr(one_object, NULL);
        qsort(syms, nsyms, sizeof *syms, by_addr);
        __atomic_store_n(&loaded, 1, __ATOMIC_RELEASE);
    }
    green__sys.pthread_mutex_unlock(&load_lock);
    return nsyms ? 0 : -1;
}

const char *green__symtab_name(uintptr_t pc, uintptr_t *off)
{
    if (!__atomic_load_n(&loaded, __ATOMIC_ACQUIRE))
        return NULL;
    if (pc >= vdso_lo && pc < vdso_hi) {
        *off = pc - vdso_lo;
        return "[vdso]";
    }
    if (!nsyms || pc < syms[0].addr)
        return NULL;
    size_t lo = 0, hi = nsyms; /* the last symbol at or below pc */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (syms[mid].addr <= pc)
            lo = mid;
        else
            hi = mid;
    }
    const struct sym *s = &syms[lo];
    if (pc >= s->addr + s->size)
        return NULL;
    *off = pc - s->addr;
    return s->name;
}

int green__symtab_code(uintptr_t pc)
{
    if (!__atomic_load_n(&loaded, __ATOMIC_ACQUIRE))
        return GREEN_CODE_UNKNOWN;
    if (pc >= vdso_lo && pc < vdso_hi)
        return GREEN_CODE_RUNTIME;
    for (size_t i = 0; i < nobjects; i++)
        if (pc >= objects[i].lo && pc < objects[i].hi)
            return objects[i].runtime ? GREEN_CODE_RUNTIME : GREEN_CODE_PROGRAM;
    return GREEN_CODE_UNKNOWN;
}
