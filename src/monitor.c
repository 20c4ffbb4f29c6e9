/*
 * monitor.c — the blocked-hub monitor and pinning detector (layer 8): gevent's monitor
 * thread, and what Java's jdk.VirtualThreadPinned events tell.
 *
 * A watchdog OS thread looks at every registered hub a few times per threshold (every
 * threshold/4, at least every 5 ms). A hub shows life by switching (h->switches) or by
 * polling (h->loops). It is idle, not held, while it sleeps in its poller (h->polling)
 * or has no green thread but its root (h->alive == 0: nobody is kept waiting; green
 * threads parked until the holder produces something are kept waiting, so they count;
 * a hub seen idle starts afresh at the next look: a wait in its poller is no part of a
 * hold). One that shows neither for longer than the threshold is held by its running green
 * thread: an episode begins — if busy, once its thread has also used a tenth of the
 * threshold in CPU time since (one kept off the CPU by the machine's load all along
 * holds the hub by no doing of its own).
 *
 * At the start of an episode the monitor reads the hub's OS thread in /proc: its state
 * (stat: R is *busy*, computing or in a system call that runs; anything else is
 * *pinned*, asleep in the kernel in a call libgreen could not make cooperative), the
 * system call it sleeps in with its arguments, stack pointer and pc (syscall), and
 * whether SIGURG is blocked there (status; or awaited, by a sigwait asleep in
 * rt_sigtimedwait, which unblocks what it waits for). Then it sends SIGURG (as Go's
 * preemption does: its default action is to do nothing, so a stray one harms nobody),
 * whose handler records the running green thread's id and name and the addresses of
 * its frames, unwound from the interrupted context, and returns. If the signal
 * interrupted the very system call the monitor saw (same pc, stack pointer and
 * arguments) and the kernel made it fail with EINTR, the handler rewinds the thread to
 * issue it again, as the kernel itself does for a restartable call under SA_RESTART:
 * the program never sees an EINTR the monitor caused (a relative timeout starts over;
 * select, pselect and ppoll write back the time left, so theirs does not). Where SIGURG
 * is blocked or awaited no signal is sent (it would stay pending, or sigwait would
 * return it), nor where the handler cannot rewind (MON_CAN_RESTART) to a thread asleep
 * in a system call: the frames come from a scan of its stack, frozen while it sleeps —
 * its pc, then the words above its stack pointer that are return addresses (in known
 * code, right after a call instruction), up to the program's call site: the first
 * program frame whose call instruction names runtime code as its target (x86-64: a
 * direct call, through a PLT stub or a GOT slot), else the first program frame — and the
 * report says so. A thread asleep uninterruptibly (state D: a signal would wait for the call to
 * end), or that does not answer in time (MON_ANSWER_MS), is scanned the same way.
 *
 * The frames name the episode: the innermost one in the runtime's code (libc, the
 * loader, libgreen; symtab.c) is the blocking function, the runtime frame the program
 * called is "via", and the first frame of the program's own code is the call site.
 * Sites go in a fixed table (MON_SITES; beyond it episodes are counted together), keyed
 * by the blocking function and the call site's address (busy: the program function's
 * start, as its pc moves): the first episode at a site is reported with its backtrace,
 * the later ones are only counted. When the hub shows life again the episode ends; its
 * duration (to within a look period at each end) is added to its site, and a reported
 * one gets a closing line. While a hub stays held, each look reads /proc again (no
 * signal): if its thread sleeps in another system call or on another fd than the one
 * it was seen in (or, busy, has fallen asleep in one), it is looked at again, and at
 * another site a new episode begins there, so each place that holds the hub is named.
 * GREEN_PATCH_REPORT=1 has libgreen-patch print the table at exit (green_private_pinning).
 *
 * The hub's counters are read without its cooperation (relaxed atomic loads of plain
 * fields): the switch path pays nothing for the monitor. The registry lock is held while
 * hubs are inspected, so a hub cannot be freed meanwhile (its thread, if exiting, finds
 * no hub and says so); it also guards the monitor's fields of each hub and the site
 * table. Output is written with write(2) from the monitor thread, never through stdio
 * (a pinned thread may hold stderr's lock).
 */
#include "debug.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define MON_SIGNAL SIGURG
#define MON_FRAMES 32
#define MON_SITES 64
#define MON_SCAN 4096 /* bytes of a frozen stack scanned above its stack pointer */
/* How long a handler may take to answer: a thread asleep in the kernel is woken by the
 * signal at once (past the wait it is scanned, and its report still comes well within a
 * second of the hold starting); a running one may first wait for a CPU (or, under TSan,
 * for a point where TSan delivers signals). */
#define MON_ANSWER_MS 250
#define MON_ANSWER_BUSY_MS 1000
/* The handler can restart a system call the signal interrupted (it sees the interrupted
 * registers: not under TSan, which runs handlers later); elsewhere a thread asleep in
 * one is not signalled, its stack is scanned. */
#if (defined(__x86_64__) || defined(__aarch64__)) && !GREEN_TSAN
#define MON_CAN_RESTART 1
#else
#define MON_CAN_RESTART 0
#endif

static pthread_mutex_t mon_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mon_cond;
static pthread_t mon_thread;
static int mon_running, mon_stop;
static int64_t mon_ms;
static struct sigaction mon_old;
static int mon_installed;

/* ---- one look at the OS thread holding a hub ---- */

struct look {
    /* by the monitor, from /proc, before the signal */
    char state;                    /* stat's: 'R' runs; 'S', 'D', ... asleep; 0 unknown */
    int in_syscall;                /* asleep in system call nr(args) at sp, pc */
    long nr;
    unsigned long args[6], sp, pc;
    int urg_blocked;               /* SIGURG is blocked there: no signal */
    /* by the handler on the hub's thread, or by the monitor's stack scan */
    int gone;                      /* the thread had no hub any more (exiting) */
    uint64_t id;
    char name[40];
    int npcs;
    uintptr_t pcs[MON_FRAMES];
    const char *scanned;           /* pcs from a stack scan, not an unwind: why */
};

/* The handshake with the handler: the monitor publishes a request, the handler claims
 * it (so that a monitor that gave up never reads a look being written), then ends it. */
enum { REQ_IDLE, REQ_ASKED, REQ_CLAIMED, REQ_DONE };
static struct look mon_look;
static struct green_hub *mon_target;
static int mon_req;

/* ---- the pinning sites (under the registry lock) ---- */

struct site {
    int busy;
    uintptr_t key_fn, key_at;      /* what tells sites apart (see the header) */
    uint64_t count, total_ms, max_ms;
    uint64_t id;                   /* the green thread of its first, reported, episode */
    char name[40];
    char what[160];                /* "pinned in read() via fgets(), called from f+0x2a" */
};
static struct site mon_sites[MON_SITES] GREEN_BIG_BSS;
static int mon_nsites;
static struct site mon_other;      /* episodes beyond the table */

/* ---- the signal handler, on the held hub's thread ---- */

/* If the signal interrupted the system call the monitor saw asleep (the same pc, stack
 * pointer and arguments) and the kernel is about to return EINTR from it, set the
 * thread up to issue it again, exactly as the kernel restarts a call under SA_RESTART:
 * the number back in its register, the pc back on the system call instruction. */
static void restart_interrupted(const struct look *lk, void *uc)
{
    if (!uc || !lk->in_syscall)
        return;
#if defined(__x86_64__)
    greg_t *r = ((ucontext_t *)uc)->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)lk->pc;
    const greg_t args[6] = {r[REG_RDI], r[REG_RSI], r[REG_RDX], r[REG_R10], r[REG_R8], r[REG_R9]};
    if ((unsigned long)r[REG_RIP] != lk->pc || (unsigned long)r[REG_RSP] != lk->sp ||
        r[REG_RAX] != -EINTR || ip[-2] != 0x0f || ip[-1] != 0x05) /* syscall */
        return;
    for (int i = 0; i < 6; i++)
        if ((unsigned long)args[i] != lk->args[i])
            return;
    r[REG_RAX] = lk->nr;
    r[REG_RIP] -= 2;
#elif defined(__aarch64__)
    mcontext_t *m = &((ucontext_t *)uc)->uc_mcontext;
    if (m->pc != lk->pc || m->sp != lk->sp || (long)m->regs[0] != -EINTR ||
        m->regs[8] != (unsigned long)lk->nr || *(const uint32_t *)(lk->pc - 4) != 0xd4000001)
        return; /* svc #0; x0 is the result, the others are kept */
    for (int i = 1; i < 6; i++)
        if (m->regs[i] != lk->args[i])
            return;
    m->regs[0] = lk->args[0];
    m->pc -= 4;
#endif
}

static void copy_name(char *to, size_t size, const char *from)
{
    size_t i = 0;
    for (; from && from[i] && i + 1 < size; i++)
        to[i] = from[i];
    to[i] = '\0';
}

/* Signals of the monitor this thread took: a call that the kernel may end early at a
 * signal with part of its work done (a copy between files) looks before and after, and
 * goes on if one came meanwhile (green_private_monitor_hits). */
static __thread unsigned mon_hits __attribute__((tls_model("initial-exec")));

unsigned green_private_monitor_hits(void) { return mon_hits; }

static void on_monitor_signal(int sig, siginfo_t *si, void *uc)
{
    int saved = errno;
    struct green_hub *t = __atomic_load_n(&mon_target, __ATOMIC_ACQUIRE);
    struct green_hub *h = green__tls_hub;
    int asked = REQ_ASKED;
    if (t && (h == t || (!h && t->tid == (int)green__sys.syscall(SYS_gettid))) && /* (exiting: no hub) */
        __atomic_compare_exchange_n(&mon_req, &asked, REQ_CLAIMED, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        struct look *lk = &mon_look;
        mon_hits++;
        green__passthrough++;
        if (!h) {
            lk->gone = 1;
        } else {
            lk->id = h->current->id;
            copy_name(lk->name, sizeof lk->name, green__name(h->current));
            uc = green__signal_context(uc);
            lk->npcs = green__bt_pcs(uc, lk->pcs, MON_FRAMES);
            restart_interrupted(lk, uc);
        }
        green__passthrough--;
        __atomic_store_n(&mon_req, REQ_DONE, __ATOMIC_RELEASE);
        errno = saved;
        return;
    }
    /* not ours: whatever the program had */
    if ((mon_old.sa_flags & SA_SIGINFO) && mon_old.sa_sigaction)
        mon_old.sa_sigaction(sig, si, uc);
    else if (mon_old.sa_handler != SIG_DFL && mon_old.sa_handler != SIG_IGN)
        mon_old.sa_handler(sig);
    errno = saved;
}

/* ---- reading a thread from the monitor ---- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    green__sys.nanosleep(&ts, NULL);
}

/* Copies what lies at addr in this process, where anything is mapped (the kernel
 * copies: an unmapped address fails, never faults): the bytes copied. */
static size_t safe_read(uintptr_t addr, void *to, size_t n)
{
    struct iovec local = {to, n}, remote = {(void *)addr, n};
    ssize_t r = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    return r > 0 ? (size_t)r : 0;
}

/* /proc/self/task/TID/<what> into buf: 0, or -1. */
static int read_proc(int tid, const char *what, char *buf, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/%s", tid, what);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = green__sys.read(fd, buf, size - 1);
    green__sys.close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return 0;
}

/* The system call thread tid sleeps in, into lk (in_syscall 0: it runs, or unknown). */
static void read_syscall(int tid, struct look *lk)
{
    char buf[256];
    lk->in_syscall = 0;
    if (read_proc(tid, "syscall", buf, sizeof buf) == 0 &&
        sscanf(buf, "%ld %lx %lx %lx %lx %lx %lx %lx %lx", &lk->nr, &lk->args[0], &lk->args[1],
               &lk->args[2], &lk->args[3], &lk->args[4], &lk->args[5], &lk->sp, &lk->pc) == 9 &&
        lk->nr >= 0)
        lk->in_syscall = 1;
}

/* Its state letter in stat ('R', 'S', 'D', ...), 0 unknown. */
static char read_state(int tid)
{
    char buf[1024];
    if (read_proc(tid, "stat", buf, sizeof buf) != 0)
        return 0;
    const char *p = strrchr(buf, ')'); /* the command name may hold anything */
    return p && p[1] == ' ' ? p[2] : 0;
}

static void read_thread(int tid, struct look *lk)
{
    char buf[2048];
    lk->state = read_state(tid);
    read_syscall(tid, lk);
    unsigned long long blocked;
    const char *p;
    if (read_proc(tid, "status", buf, sizeof buf) == 0 && (p = strstr(buf, "\nSigBlk:")) &&
        sscanf(p + 8, "%llx", &blocked) == 1)
        lk->urg_blocked = (blocked >> (MON_SIGNAL - 1)) & 1;
    /* sigwait and friends unblock what they wait for while they sleep, and would take
     * SIGURG if they wait for it: it counts as blocked then */
    uint64_t waited;
    if (lk->in_syscall && lk->nr == SYS_rt_sigtimedwait &&
        safe_read(lk->args[0], &waited, sizeof waited) == sizeof waited)
        lk->urg_blocked |= (waited >> (MON_SIGNAL - 1)) & 1;
}

/* Is ra a return address: in known code, right after a call instruction? */
static int return_address(uintptr_t ra)
{
    uintptr_t off;
    unsigned char b[8];
    if (green__symtab_code(ra) == GREEN_CODE_UNKNOWN || (green__symtab_name(ra, &off) && off < 2) ||
        safe_read(ra - 8, b, 8) != 8)
        return 0;
#if defined(__x86_64__)
    return b[3] == 0xe8 ||                               /* call rel32 */
           (b[2] == 0xff && (b[3] & 0x38) == 0x10) ||    /* call *disp32(...) */
           (b[5] == 0xff && (b[6] & 0x38) == 0x10) ||    /* call *disp8(...) */
           (b[6] == 0xff && (b[7] & 0x38) == 0x10);      /* call *%reg, call *(%reg) */
#elif defined(__aarch64__)
    uint32_t insn;
    memcpy(&insn, b + 4, 4);
    return (insn & 0xfc000000) == 0x94000000 || (insn & 0xfffffc1f) == 0xd63f0000 ||
           (insn & 0xfefff800) == 0xd63f0800; /* bl, blr, blraa/blrab */
#else
    return 1;
#endif
}

#if defined(__x86_64__)
/* Where a call made at return address ra went, when the instruction says so: a direct
 * call, or one through a GOT slot (-fno-plt), through a PLT stub's jump to its GOT slot
 * (with or without endbr64 and bnd); 0 when it cannot be known (through a register). */
static uintptr_t call_target(uintptr_t ra)
{
    unsigned char b[8];
    int32_t rel;
    uintptr_t t, slot;
    if (safe_read(ra - 6, b, 6) != 6)
        return 0;
    if (b[1] == 0xe8) { /* call rel32 */
        memcpy(&rel, b + 2, 4);
        t = ra + (uintptr_t)(intptr_t)rel;
        if (safe_read(t, b, 8) != 8)
            return 0;
        size_t at = 0;
        if (b[0] == 0xf3 && b[1] == 0x0f && b[2] == 0x1e && b[3] == 0xfa)
            at = 4; /* endbr64 */
        if (at < 8 && b[at] == 0xf2)
            at++; /* bnd */
        unsigned char j[6];
        if (safe_read(t + at, j, 6) != 6 || j[0] != 0xff || j[1] != 0x25)
            return t; /* not a PLT stub: the function itself */
        memcpy(&rel, j + 2, 4);
        slot = t + at + 6 + (uintptr_t)(intptr_t)rel;
    } else if (b[0] == 0xff && b[1] == 0x15) { /* call *disp32(%rip) */
        memcpy(&rel, b + 2, 4);
        slot = ra + (uintptr_t)(intptr_t)rel;
    } else {
        return 0;
    }
    return safe_read(slot, &t, sizeof t) == sizeof t ? t : 0;
}
#endif

/* May ra, found by a scan, be where the program called into the runtime? Where the call
 * instruction tells its target, that target must be runtime code: a stale return address
 * of a call made through a register (libgreen's own calls through its table of libc's
 * functions, linked into the program: the poller's epoll_wait, left on a reused stack)
 * would otherwise end the scan before the real call site. */
static int program_calls_runtime(uintptr_t ra)
{
#if defined(__x86_64__)
    uintptr_t t = call_target(ra);
    return t && green__symtab_code(t) == GREEN_CODE_RUNTIME;
#else
    (void)ra;
    return 1;
#endif
}

/* Is pc in the runtime rather than in the program (libgreen linked into the program
 * included, by its names)? */
static int runtime_frame(uintptr_t pc)
{
    uintptr_t off;
    const char *name;
    return green__symtab_code(pc) == GREEN_CODE_RUNTIME ||
           ((name = green__symtab_name(pc, &off)) && strncmp(name, "green_", 6) == 0);
}

/* Where no signal may be sent (or none was answered): the running green thread, read
 * through safe_read (its thread is asleep, but by no rule the monitor shares with it),
 * and the frames of a stack frozen in a system call, by a scan (see the header), up to
 * the program's call site. */
static void scan_thread(struct green_hub *h, struct look *lk, const char *why)
{
    struct green *g = NULL;
    struct green_ext *x = NULL;
    const char *name = NULL;
    uint8_t flags = 0;
    if (safe_read((uintptr_t)&h->current, &g, sizeof g) == sizeof g && g) {
        safe_read((uintptr_t)&g->id, &lk->id, sizeof lk->id);
        safe_read((uintptr_t)&g->flags, &flags, sizeof flags);
        if (safe_read((uintptr_t)&g->ext, &x, sizeof x) == sizeof x && x)
            safe_read((uintptr_t)&x->name, &name, sizeof name);
    }
    memset(lk->name, 0, sizeof lk->name);
    if (name)
        safe_read((uintptr_t)name, lk->name, sizeof lk->name - 1);
    else
        copy_name(lk->name, sizeof lk->name, (flags & GF_ROOT) ? "root" : "");
    lk->scanned = why;
    lk->npcs = 0;
    if (!lk->in_syscall)
        return;
    uintptr_t words[MON_SCAN / sizeof(uintptr_t)];
    size_t n = safe_read(lk->sp, words, sizeof words) / sizeof *words;
    lk->pcs[lk->npcs++] = lk->pc;
    /* up to the call site: past it, a stale return address is no rarer than a real one */
    uintptr_t unverified = 0; /* the first program frame whose call could not be checked */
    size_t i = 0;
    for (; i < n && lk->npcs < MON_FRAMES; i++)
        if (return_address(words[i])) {
            int runtime = runtime_frame(words[i]);
            if (!runtime && !program_calls_runtime(words[i])) {
                if (!unverified)
                    unverified = words[i];
                continue;
            }
            lk->pcs[lk->npcs++] = words[i];
            if (!runtime)
                break;
        }
    /* no call into the runtime verified (libc linked statically, say): the first
     * program frame after all */
    if ((i >= n || lk->npcs >= MON_FRAMES) && unverified && lk->npcs < MON_FRAMES)
        lk->pcs[lk->npcs++] = unverified;
}

/* Send the signal and wait (up to wait_ms) for the handler's look. 0, or -1 when it did
 * not answer (the look is then untouched). */
static int ask_thread(struct green_hub *h, int wait_ms)
{
    __atomic_store_n(&mon_target, h, __ATOMIC_RELEASE);
    __atomic_store_n(&mon_req, REQ_ASKED, __ATOMIC_RELEASE);
    int asked = REQ_ASKED;
    if (green__sys.pthread_kill((pthread_t)h->thread, MON_SIGNAL) == 0)
        for (int i = 0; i < wait_ms && __atomic_load_n(&mon_req, __ATOMIC_ACQUIRE) == REQ_ASKED; i++)
            sleep_ms(1);
    /* withdraw the request, unless the handler has claimed it: then it finishes soon */
    if (!__atomic_compare_exchange_n(&mon_req, &asked, REQ_IDLE, 0, __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE))
        while (__atomic_load_n(&mon_req, __ATOMIC_ACQUIRE) != REQ_DONE)
            sleep_ms(1);
    __atomic_store_n(&mon_target, NULL, __ATOMIC_RELEASE);
    int answered = __atomic_load_n(&mon_req, __ATOMIC_ACQUIRE) == REQ_DONE;
    __atomic_store_n(&mon_req, REQ_IDLE, __ATOMIC_RELAXED);
    return answered ? 0 : -1;
}

/* ---- naming an episode ---- */

static void __attribute__((format(printf, 3, 4))) append(char *buf, size_t size, const char *fmt, ...)
{
    size_t len = strlen(buf);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
}

/* "name+0x1c", or the bare address; *start: where its function starts (or pc). */
static void frame_name(char *buf, size_t size, uintptr_t pc, uintptr_t *start)
{
    uintptr_t off;
    const char *name = green__symtab_name(pc, &off);
    *start = name ? pc - off : pc;
    if (name)
        append(buf, size, "%s+0x%lx", name, (unsigned long)off);
    else
        append(buf, size, "0x%lx", (unsigned long)pc);
}

/* "read()"; "[vdso]" as it is; "0x7f..." when unknown. Named as the program knows it:
 * a sanitizer's interceptor (__interceptor_fgets) by what it intercepts, a compiler's
 * clone (fgets.part.0, f.cold) by its function. */
static void function_name(char *buf, size_t size, uintptr_t pc, uintptr_t *start)
{
    uintptr_t off;
    const char *name = green__symtab_name(pc, &off);
    *start = name ? pc - off : pc;
    if (!name) {
        append(buf, size, "0x%lx", (unsigned long)pc);
        return;
    }
    const char *tail = name + strspn(name, "_");
    if (strncmp(tail, "interceptor_", 12) == 0)
        name = tail + 12;
    append(buf, size, name[0] == '[' ? "%.*s" : "%.*s()", (int)strcspn(name, "."), name);
}

/* The site of lk's episode, filled in s: its key and its description, e.g. "pinned in
 * read() via fgets() [system call 0], called from reader+0x2a", "busy in spin+0x1c (in
 * strlen())". */
static void describe(const struct look *lk, int busy, struct site *s)
{
    int prog = 0; /* the first frame of the program's own code */
    while (prog < lk->npcs && runtime_frame(lk->pcs[prog]))
        prog++;
    uintptr_t inner = lk->npcs ? lk->pcs[0] : lk->in_syscall ? lk->pc : 0;
    uintptr_t at = prog < lk->npcs ? lk->pcs[prog] : 0, fn = 0, ignored;
    char via[64] = "";
    memset(s, 0, sizeof *s);
    s->busy = busy;
    if (prog > 1)
        function_name(via, sizeof via, lk->pcs[prog - 1], &ignored);
    append(s->what, sizeof s->what, "%s in ", busy ? "busy" : "pinned");
    if (busy && at) {
        function_name(s->what, sizeof s->what, at, &s->key_fn); /* its pc moves */
        if (prog > 0) {
            append(s->what, sizeof s->what, " (in ");
            function_name(s->what, sizeof s->what, inner, &fn);
            append(s->what, sizeof s->what, ")");
        }
    } else if (inner && (prog > 0 || !at)) {
        size_t before = strlen(s->what);
        function_name(s->what, sizeof s->what, inner, &fn);
        if (via[0] && strcmp(via, s->what + before) != 0)
            append(s->what, sizeof s->what, " via %s", via);
        s->key_fn = fn;
    } else {
        append(s->what, sizeof s->what, busy ? "?" : "a system call");
    }
    if (!busy && lk->in_syscall)
        append(s->what, sizeof s->what, " [system call %ld]", lk->nr);
    if (!busy && at) {
        append(s->what, sizeof s->what, ", called from ");
        frame_name(s->what, sizeof s->what, at, &ignored);
        s->key_at = at;
    }
    if (!lk->npcs && lk->urg_blocked)
        append(s->what, sizeof s->what, " (SIGURG is blocked in its thread: no backtrace)");
}

/* The table's entry for s, added if new (*fresh set): NULL when the table is full. */
static struct site *site_of(const struct site *s, int *fresh)
{
    *fresh = 0;
    for (int i = 0; i < mon_nsites; i++)
        if (mon_sites[i].busy == s->busy && mon_sites[i].key_fn == s->key_fn &&
            mon_sites[i].key_at == s->key_at)
            return &mon_sites[i];
    if (mon_nsites == MON_SITES)
        return NULL;
    *fresh = 1;
    mon_sites[mon_nsites] = *s;
    return &mon_sites[mon_nsites++];
}

/* ---- episodes ---- */

/* Look at the thread holding h: /proc, then the handler, or a scan of its stack where
 * no signal may be sent or none was answered. */
static void look_at(struct green_hub *h, struct look *lk)
{
    memset(lk, 0, sizeof *lk);
    read_thread(h->tid, lk);
    if (lk->urg_blocked)
        scan_thread(h, lk, "SIGURG is blocked in its thread");
    else if (lk->in_syscall && !MON_CAN_RESTART)
        scan_thread(h, lk, "no signal to a thread asleep in a system call in this build");
    else if (lk->state == 'D') /* a signal waits until the call ends */
        scan_thread(h, lk, "its thread sleeps uninterruptibly");
    else if (ask_thread(h, lk->state == 'R' ? MON_ANSWER_BUSY_MS : MON_ANSWER_MS) != 0)
        scan_thread(h, lk, "no answer to SIGURG");
}

static int look_busy(const struct look *lk)
{
    return lk->state == 'R' || (!lk->state && !lk->in_syscall);
}

/* What tells one blocking call from the next while the hub stays held: the system call,
 * its place and its first argument (mostly an fd; not its buffers). 0: none. */
static uint64_t where_of(const struct look *lk)
{
    if (!lk->in_syscall)
        return 0;
    return (lk->pc ^ (lk->sp << 1) ^ ((uint64_t)lk->nr << 48) ^ ((uint64_t)lk->args[0] << 20)) | 1;
}

static struct site *site_at(int i) { return i == MON_SITES ? &mon_other : &mon_sites[i]; }

/* A new episode of h at site s (lk's), the hub held for held_ms so far: counted, and
 * reported with its backtrace when the site is new. */
static void episode_start(struct green_hub *h, const struct look *lk, const struct site *s, int64_t held_ms)
{
    int fresh;
    struct site *at = site_of(s, &fresh);
    if (!at)
        at = &mon_other;
    at->count++;
    h->mon_reported = fresh ? 2 : 1;
    h->mon_site = at == &mon_other ? MON_SITES : (int)(at - mon_sites);
    h->mon_where = s->busy ? 0 : where_of(lk);
    if (!fresh)
        return;
    at->id = lk->id;
    copy_name(at->name, sizeof at->name, lk->name);
    struct green_out o = {.fd = 2};
    green__outf(&o, "libgreen monitor: hub %p thread %d blocked for %lld ms by green thread %llu \"%s\": %s\n",
                (void *)h, h->tid, (long long)held_ms, (unsigned long long)lk->id, lk->name, at->what);
    green__bt_write_pcs(&o, lk->pcs, lk->npcs);
    if (lk->scanned && lk->npcs)
        green__outf(&o, "    (%s: frames found by scanning its stack, up to the call site)\n", lk->scanned);
    green__out_flush(&o);
}

static void episode_end(struct green_hub *h, int64_t now)
{
    if (h->mon_site < 0)
        return;
    struct site *s = site_at(h->mon_site);
    uint64_t ms = (uint64_t)(now - h->mon_since);
    s->total_ms += ms;
    if (ms > s->max_ms)
        s->max_ms = ms;
    if (h->mon_reported == 2) {
        struct green_out o = {.fd = 2};
        green__outf(&o, "libgreen monitor: hub %p thread %d was held %llu ms by green thread %llu \"%s\": %s\n",
                    (void *)h, h->tid, (unsigned long long)ms, (unsigned long long)s->id, s->name, s->what);
        green__out_flush(&o);
    }
}

/* Has the thread holding h gone on to another blocking call (pinned), or fallen asleep
 * in one (busy), without the hub showing life? (/proc only: no signal) */
static int moved_on(struct green_hub *h)
{
    struct look lk = {0};
    read_syscall(h->tid, &lk);
    if (!lk.in_syscall)
        return 0;
    if (h->mon_where)
        return where_of(&lk) != h->mon_where;
    return (lk.state = read_state(h->tid)) && !look_busy(&lk);
}

/* The CPU time h's thread has used, ns; 0 when unknown. */
static uint64_t thread_cpu(struct green_hub *h)
{
    clockid_t c;
    struct timespec ts;
    if (green__sys.pthread_getcpuclockid((pthread_t)h->thread, &c) != 0 || clock_gettime(c, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A thread that can run (state R) but has used less than a tenth of the threshold in
 * CPU time since its hub last showed life has been kept off the CPU by the machine's
 * load, not holding the hub by what it computes: not (yet) an episode. */
static int starved(struct green_hub *h, int64_t threshold)
{
    char state = read_state(h->tid);
    uint64_t used = thread_cpu(h);
    return (state == 'R' || !state) && h->mon_cpu && used &&
           used - h->mon_cpu < (uint64_t)threshold * 100000;
}

/* h has been held past the threshold: an episode begins; or, held still, its thread
 * has moved on: the episode goes on if it is at the same site, else a new one begins. */
static void held(struct green_hub *h, int64_t now, int64_t threshold)
{
    struct look *lk = &mon_look;
    struct site s;
    if (!h->mon_reported && starved(h, threshold))
        return;
    /* the symbol tables and the unwinder (libunwind, dlopen), read and loaded on the
     * first report, not when the monitor starts: a program's tables (libcrypto's, ...)
     * cost a megabyte or more, libunwind ~110 KiB, that most runs never need; before the
     * signal, whose handler may load nothing */
    green__symtab_load();
    green__debug_prepare_unwind();
    look_at(h, lk);
    if (lk->gone) {
        h->mon_reported = 1;
        h->mon_site = -1;
        struct green_out o = {.fd = 2};
        green__outf(&o, "libgreen monitor: a hub was blocked for %lld ms (its thread is exiting)\n",
                    (long long)(now - h->mon_since));
        green__out_flush(&o);
        return;
    }
    describe(lk, look_busy(lk), &s);
    int64_t ms = now - h->mon_since;
    if (h->mon_reported) {
        const struct site *cur = site_at(h->mon_site);
        if (cur->busy == s.busy && cur->key_fn == s.key_fn && cur->key_at == s.key_at) {
            h->mon_where = s.busy ? 0 : where_of(lk);
            return;
        }
        episode_end(h, now);
        h->mon_since = now; /* the new one's time starts here */
    }
    episode_start(h, lk, &s, ms);
}

static void check(int64_t now, int64_t threshold)
{
    green__hubs_lock();
    for (struct green_hub *h = green__hubs(); h; h = h->reg_next) {
        uint64_t seen = __atomic_load_n(&h->switches, __ATOMIC_RELAXED) +
                        __atomic_load_n(&h->loops, __ATOMIC_RELAXED);
        int idle = __atomic_load_n(&h->polling, __ATOMIC_RELAXED) ||
                   __atomic_load_n(&h->alive, __ATOMIC_RELAXED) == 0;
        if (idle || seen != h->mon_seen || h->mon_since == 0) {
            if (h->mon_reported)
                episode_end(h, now);
            /* (idle, it counts as changed at the next look: a wait in the poller is no
             * part of a hold) */
            h->mon_seen = idle ? ~seen : seen;
            h->mon_since = now;
            h->mon_reported = 0;
            h->mon_cpu = idle ? 0 : thread_cpu(h);
        } else if (h->mon_reported ? h->mon_site >= 0 && moved_on(h) : now - h->mon_since > threshold) {
            held(h, now, threshold);
        }
    }
    green__hubs_unlock();
}

static void *monitor_main(void *unused)
{
    (void)unused;
    /* what a handler may not do itself (the symbol tables, libunwind: at the first
     * report) */
    green__debug_prepare_monitor();
    green__sys.pthread_mutex_lock(&mon_lock);
    while (!mon_stop) {
        int64_t ms = mon_ms;
        int64_t period = ms / 4 < 5 ? 5 : ms / 4;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += period / 1000;
        ts.tv_nsec += (period % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        green__sys.pthread_cond_timedwait(&mon_cond, &mon_lock, &ts);
        if (mon_stop)
            break;
        green__sys.pthread_mutex_unlock(&mon_lock);
        check(mono_ms(), ms);
        green__sys.pthread_mutex_lock(&mon_lock);
    }
    green__sys.pthread_mutex_unlock(&mon_lock);
    return NULL;
}

static void atfork_child(void);

int green_monitor_start(int64_t ms)
{
    if (ms <= 0) {
        errno = EINVAL;
        return -1;
    }
    green__sys.pthread_mutex_lock(&mon_lock);
    mon_ms = ms;
    if (mon_running) {
        green__sys.pthread_mutex_unlock(&mon_lock);
        return 0;
    }
    if (!mon_installed) {
        pthread_atfork(NULL, NULL, atfork_child);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_monitor_signal;
        sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        green__sys_get()->sigaction(MON_SIGNAL, &sa, &mon_old);
        mon_installed = 1;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    green__sys.pthread_cond_init(&mon_cond, &ca);
    pthread_condattr_destroy(&ca);
    /* the watchdog takes no signal meant for the program */
    sigset_t all, old;
    sigfillset(&all);
    green__sys.pthread_sigmask(SIG_SETMASK, &all, &old);
    mon_stop = 0;
    int e = green__sys_thread_create(&mon_thread, monitor_main, NULL);
    green__sys.pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        green__sys.pthread_mutex_unlock(&mon_lock);
        errno = EAGAIN;
        return -1;
    }
    mon_running = 1;
    green__sys.pthread_mutex_unlock(&mon_lock);
    return 0;
}

int green_monitor_stop(void)
{
    green__sys.pthread_mutex_lock(&mon_lock);
    if (!mon_running) {
        green__sys.pthread_mutex_unlock(&mon_lock);
        errno = ESRCH;
        return -1;
    }
    mon_stop = 1;
    green__sys.pthread_cond_signal(&mon_cond);
    pthread_t t = mon_thread;
    mon_running = 0;
    green__sys.pthread_mutex_unlock(&mon_lock);
    green__sys.pthread_join(t, NULL);
    green__sys.pthread_cond_destroy(&mon_cond);
    return 0;
}

size_t green_private_pinning(struct green_private_pin *out, size_t max, int64_t *threshold_ms)
{
    green__sys.pthread_mutex_lock(&mon_lock);
    if (threshold_ms)
        *threshold_ms = mon_running ? mon_ms : 0;
    green__sys.pthread_mutex_unlock(&mon_lock);
    green__hubs_lock();
    size_t n = (size_t)mon_nsites + (mon_other.count ? 1 : 0);
    for (size_t i = 0; i < n && i < max; i++) {
        const struct site *s = i < (size_t)mon_nsites ? &mon_sites[i] : &mon_other;
        struct green_private_pin *p = &out[i];
        p->busy = s->busy;
        p->count = s->count;
        p->total_ms = s->total_ms;
        p->max_ms = s->max_ms;
        copy_name(p->what, sizeof p->what, s == &mon_other ? "at other places (the table is full)" : s->what);
    }
    /* episodes going on: their time so far */
    int64_t now = mono_ms();
    for (struct green_hub *h = green__hubs(); h; h = h->reg_next) {
        size_t i = h->mon_site == MON_SITES ? (size_t)mon_nsites : (size_t)h->mon_site;
        if (h->mon_reported && h->mon_site >= 0 && i < n && i < max) {
            uint64_t ms = (uint64_t)(now - h->mon_since);
            out[i].total_ms += ms;
            if (ms > out[i].max_ms)
                out[i].max_ms = ms;
        }
    }
    green__hubs_unlock();
    return n;
}

/* The watchdog thread does not exist in a fork child, nor do the parent's episodes. */
static void atfork_child(void)
{
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    mon_lock = fresh;
    mon_running = 0;
    mon_target = NULL;
    mon_req = REQ_IDLE;
    mon_nsites = 0;
    memset(&mon_other, 0, sizeof mon_other);
}
