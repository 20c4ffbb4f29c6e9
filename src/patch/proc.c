/*
 * proc.c — waiting for child processes in a green thread: waitpid, wait, wait3, wait4,
 * waitid (and glibc's __waitpid, __wait), and the waits inside system(), popen() and
 * pclose(), which glibc makes internally (not through these names) and so are wrapped
 * whole.
 *
 * The rule of every wait: the kernel is asked first with WNOHANG added — a child already
 * done, and every error (ECHILD for a non-child, EINVAL for bad options or ids), come
 * back at once, exactly as libc's; a call that asks WNOHANG itself is libc's. Otherwise
 * the green thread parks and asks again when
 *  - a pidfd (pidfd_open(2)) of a child the call may report becomes readable, which it
 *    does when that child exits: pid > 0 and P_PID watch that child, P_PIDFD the
 *    caller's pidfd; any child (-1, P_ALL) and process groups (0, < -1, P_PGID) the
 *    children that exist when the wait starts (/proc/self/task/<tid>/children, those of
 *    the group), up to 256, listed again at each round;
 *  - or a back-off of 1, 2, 4 ... 50 ms passes, which covers what no pidfd says: stops
 *    and continues (WUNTRACED, WSTOPPED, WCONTINUED), children born during the wait, a
 *    child that exited but is not reported (traced), kernels without pidfds (before
 *    5.3, or a seccomp filter). It runs whenever one of those may matter: a wait for one
 *    child's exit alone never polls.
 * So an exit is seen at once, a stop, a continue or a new child within 50 ms, and no
 * signal is involved: SIGCHLD stays the program's. Only the call that returns a child
 * reaps it. A scoped deadline or a kill ends the wait with -1/ETIMEDOUT or -1/ECANCELED
 * and leaves the child to a later wait.
 *
 * system() is glibc's, with the wait green: SIGINT and SIGQUIT are ignored by the process
 * while any system() runs (counted, restored by the last), SIGCHLD is blocked in the
 * calling OS thread (counted per thread: the green threads of a hub share its mask), the
 * shell is posix_spawn'ed ("sh -c COMMAND", as glibc 2.36) with the caller's original
 * mask and those two signals at their default unless they were ignored, and a shell that
 * cannot be started gives the status of exit(127). When a kill or a scoped deadline ends
 * the wait, the shell is killed (SIGKILL) and reaped, as glibc does when system() is
 * cancelled, and system() returns -1 with ECANCELED or ETIMEDOUT. system(NULL) runs
 * "exit 0" and says whether it worked.
 *
 * popen() spawns "sh -c COMMAND" the same way with a pipe (modes r, w, with e for
 * O_CLOEXEC; anything else EINVAL), closing in the child the streams of the earlier
 * popen() calls made here. Its FILE is an ordinary stdio stream (fdopen); pclose() —
 * and fclose(), which in glibc also waits for a popen'ed command — closes it and waits
 * for the command: its status, or -1 when the wait fails (the command left running, to be
 * reaped by a later wait for any child). A FILE that popen() did not make here (made in
 * a thread without a hub) goes to libc's pclose.
 */
#include "io.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the children a wait watches ---- */

#define WATCH_MAX 256

struct watch {
    int n;                       /* pidfds being waited on */
    struct pollfd p[WATCH_MAX];
    pid_t pid[WATCH_MAX];        /* p[i]'s child; 0 for the caller's own pidfd */
    int nfired;
    pid_t fired[WATCH_MAX];      /* children whose pidfd fired: they have exited */
};

static int watched(const struct watch *w, pid_t pid)
{
    for (int i = 0; i < w->n; i++)
        if (w->pid[i] == pid)
            return 1;
    for (int i = 0; i < w->nfired; i++)
        if (w->fired[i] == pid)
            return 1;
    return 0;
}

/* Watch pid's exit (pid > 0), or the caller's pidfd (pid 0, fd >= 0). */
static void watch_add(struct watch *w, pid_t pid, int fd)
{
    if (w->n == WATCH_MAX || w->nfired == WATCH_MAX || (pid && watched(w, pid)))
        return;
    if (pid && (fd = green_private_pidfd_open(pid)) < 0)
        return; /* gone already, or no pidfds: the back-off finds it */
    w->p[w->n] = (struct pollfd){.fd = fd, .events = POLLIN};
    w->pid[w->n++] = pid;
}

/* Does child pid belong to the group that `pgid` names (0: the caller's own)? */
static int in_group(pid_t pid, pid_t pgid)
{
    pid_t g = getpgid(pid);
    return g >= 0 && g == (pgid ? pgid : getpgrp());
}

/* Watch the children of every thread of the process (those of group pgid when `group`). */
static void watch_children(struct watch *w, int group, pid_t pgid)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && w->n < WATCH_MAX) {
        if (de->d_name[0] == '.')
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/self/task/%s/children", de->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        size_t have = 0;
        ssize_t r;
        /* "pid pid ... ": parse whole numbers, carrying a split one to the next read */
        while ((r = patch_real()->read(fd, buf + have, sizeof buf - 1 - have)) > 0) {
            have += (size_t)r;
            buf[have] = '\0';
            char *s = buf, *end;
            for (long pid; (pid = strtol(s, &end, 10)) > 0 && *end == ' '; s = end)
                if (!group || in_group((pid_t)pid, pgid))
                    watch_add(w, (pid_t)pid, -1);
            have = strlen(s);
            memmove(buf, s, have);
        }
        patch_real()->close(fd);
    }
    closedir(d);
}

/* The pidfds that fired: their children exited; they are not watched again. */
static void watch_fired(struct watch *w)
{
    for (int i = 0; i < w->n;) {
        if (!w->p[i].revents) {
            i++;
            continue;
        }
        if (w->pid[i])
            green_close(w->p[i].fd); /* (the caller's own pidfd stays open) */
        w->fired[w->nfired++] = w->pid[i];
        w->n--;
        w->p[i] = w->p[w->n];
        w->pid[i] = w->pid[w->n];
    }
}

static void watch_free(struct watch *w)
{
    int e = errno;
    for (int i = 0; i < w->n; i++)
        if (w->pid[i])
            green_close(w->p[i].fd);
    free(w);
    errno = e;
}

/* ---- the wait ---- */

/* The call with WNOHANG: > 0 when it reports a child, 0 when none is ready, -1 + errno. */
typedef pid_t try_fn(void *ctx);

/* Park until try() reports a child of those `type`/`id` name (waitid's terms; P_PGID 0:
 * the caller's group) or fails. `interruptible`: a signal handler without SA_RESTART ends
 * the wait with EINTR, as the kernel's wait (the public calls; not system's and pclose's,
 * which glibc restarts). */
static pid_t wait_child(idtype_t type, id_t id, int options, try_fn *try, void *ctx, int interruptible)
{
    int e = errno;
    pid_t r = try(ctx);
    if (r != 0) {
        if (r > 0)
            errno = e;
        return r;
    }
    struct watch *w = malloc(sizeof *w);
    if (!w) {
        errno = ENOMEM;
        return -1;
    }
    w->n = w->nfired = 0;
    /* stops, continues and children born meanwhile fire no pidfd */
    int timed = (options & (WUNTRACED | WCONTINUED)) || type == P_ALL || type == P_PGID;
    int64_t backoff = 1;
    struct patch_intr *rec = NULL, **in = interruptible ? &rec : NULL;
    for (;;) {
        if (type == P_PID)
            watch_add(w, (pid_t)id, -1);
        else if (type == P_PIDFD && !w->nfired && !w->n)
            watch_add(w, 0, (int)id);
        else if (type != P_PIDFD)
            watch_children(w, type == P_PGID, (pid_t)id);
        int64_t until = timed || !w->n ? green_after(backoff) : -1;
        int k = patch_poll(w->p, (nfds_t)w->n, until, in, PATCH_INTR_RESTART);
        if (k < 0) {
            r = -1;
            break;
        }
        if (k > 0) {
            watch_fired(w);
        } else {
            backoff = backoff * 2 > PATCH_BACKOFF_MAX_MS ? PATCH_BACKOFF_MAX_MS : backoff * 2;
        }
        if ((r = try(ctx)) != 0)
            break;
        if (k > 0)
            timed = 1; /* an exit the call does not report (traced child): poll from now on */
    }
    patch_intr_end(in);
    watch_free(w);
    if (r > 0)
        errno = e;
    return r;
}

/* A wait wrapper's result: a cancelled green pthread whose wait failed leaves here. */
static pid_t waited(pid_t r)
{
    if (r < 0 && errno == ECANCELED)
        patch_testcancel();
    return r;
}

/* waitpid's pid in waitid's terms. */
static idtype_t pid_type(pid_t pid, id_t *id)
{
    *id = (id_t)(pid < -1 ? -pid : pid > 0 ? pid : 0);
    return pid > 0 ? P_PID : pid == -1 ? P_ALL : P_PGID;
}

struct wait4_args {
    pid_t pid;
    int *status;
    int options;
    struct rusage *ru;
};

static pid_t wait4_try(void *ctx)
{
    struct wait4_args *a = ctx;
    return patch_real()->wait4(a->pid, a->status, a->options | WNOHANG, a->ru);
}

static pid_t wait4_green(pid_t pid, int *status, int options, struct rusage *ru, int interruptible)
{
    struct wait4_args a = {pid, status, options, ru};
    id_t id;
    idtype_t type = pid_type(pid, &id);
    return wait_child(type, id, options, wait4_try, &a, interruptible);
}

pid_t wait4(pid_t pid, int *status, int options, struct rusage *ru)
{
    patch_cancel_point();
    if (!patch_here() || (options & WNOHANG))
        return patch_real()->wait4(pid, status, options, ru);
    return waited(wait4_green(pid, status, options, ru, 1));
}
GREEN_PATCH(wait4);

pid_t wait3(int *status, int options, struct rusage *ru)
{
    patch_cancel_point();
    if (!patch_here() || (options & WNOHANG))
        return patch_real()->wait3(status, options, ru);
    return waited(wait4_green(-1, status, options, ru, 1));
}
GREEN_PATCH(wait3);

pid_t waitpid(pid_t pid, int *status, int options)
{
    patch_cancel_point();
    if (!patch_here() || (options & WNOHANG))
        return patch_real()->waitpid(pid, status, options);
    return waited(wait4_green(pid, status, options, NULL, 1));
}
GREEN_PATCH(waitpid);

pid_t __waitpid(pid_t pid, int *status, int options) { return waitpid(pid, status, options); }
GREEN_PATCH(__waitpid);

pid_t wait(int *status)
{
    patch_cancel_point();
    if (!patch_here())
        return patch_real()->wait(status);
    return waited(wait4_green(-1, status, 0, NULL, 1));
}
GREEN_PATCH(wait);

pid_t __wait(int *status) { return wait(status); }
GREEN_PATCH(__wait);

struct waitid_args {
    idtype_t type;
    id_t id;
    siginfo_t *info;
    int options;
};

static pid_t waitid_try(void *ctx)
{
    struct waitid_args *a = ctx;
    siginfo_t si;
    si.si_pid = 0;
    if (patch_real()->waitid(a->type, a->id, &si, a->options | WNOHANG) != 0)
        return -1;
    if (si.si_pid == 0)
        return 0;
    if (a->info)
        *a->info = si;
    return si.si_pid;
}

int waitid(idtype_t type, id_t id, siginfo_t *info, int options)
{
    patch_cancel_point();
    if (!patch_here() || (options & WNOHANG))
        return patch_real()->waitid(type, id, info, options);
    struct waitid_args a = {type, id, info, options};
    return waited(wait_child(type, id, options, waitid_try, &a, 1)) > 0 ? 0 : -1;
}
GREEN_PATCH(waitid);

/* ---- system() ---- */

/* The process-wide part, under a real (never green) mutex: SIGINT and SIGQUIT ignored
 * while any system() runs, and their dispositions before the first. */
static pthread_mutex_t sys_lock = PTHREAD_MUTEX_INITIALIZER;
static int sys_running;
static struct sigaction sys_intr, sys_quit;
/* The OS thread's part: SIGCHLD blocked while any of its green threads is in system(),
 * and the thread's mask before the first (the shell's mask). */
static __thread int sys_thread_running;
static __thread sigset_t sys_thread_mask;

/* Start what the shell needs around a system(); *intr and *quit get the dispositions
 * the shell is to reset. */
static void sys_enter(struct sigaction *intr, struct sigaction *quit)
{
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigemptyset(&ign.sa_mask);
    patch_real()->pthread_mutex_lock(&sys_lock);
    if (sys_running++ == 0) {
        sigaction(SIGINT, &ign, &sys_intr);
        sigaction(SIGQUIT, &ign, &sys_quit);
    }
    *intr = sys_intr;
    *quit = sys_quit;
    patch_real()->pthread_mutex_unlock(&sys_lock);
    if (sys_thread_running++ == 0) {
        sigset_t chld;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        patch_real()->pthread_sigmask(SIG_BLOCK, &chld, &sys_thread_mask);
    }
}

static void sys_leave(void)
{
    if (--sys_thread_running == 0 && !sigismember(&sys_thread_mask, SIGCHLD)) {
        sigset_t chld;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        patch_real()->pthread_sigmask(SIG_UNBLOCK, &chld, NULL);
    }
    patch_real()->pthread_mutex_lock(&sys_lock);
    if (--sys_running == 0) {
        sigaction(SIGINT, &sys_intr, NULL);
        sigaction(SIGQUIT, &sys_quit, NULL);
    }
    patch_real()->pthread_mutex_unlock(&sys_lock);
}

/* "sh -c cmd", with the file actions and attributes given: 0 and *pid, or an errno. */
static int spawn_shell(pid_t *pid, const char *cmd, const posix_spawn_file_actions_t *fa,
                       const posix_spawnattr_t *attr)
{
    extern char **environ;
    char *argv[] = {"sh", "-c", (char *)cmd, NULL};
    return posix_spawn(pid, "/bin/sh", fa, attr, argv, environ);
}

/* A shell whose wait was cut short (killed, deadline): kill it and reap it, as glibc does
 * when system() is cancelled; the wait ignores kills and deadlines meanwhile. */
static void shell_kill(pid_t pid)
{
    kill(pid, SIGKILL);
    int shielded = green_private_shield_push(GREEN_SHIELD_KILLS | GREEN_SHIELD_TIMEOUTS) == 0;
    int st;
    wait4_green(pid, &st, 0, NULL, 0); /* not shielded (out of memory): a zombie at worst */
    if (shielded)
        green_private_shield_pop(GREEN_SHIELD_KILLS | GREEN_SHIELD_TIMEOUTS);
}

static int run_shell(const char *cmd)
{
    struct sigaction intr, quit;
    sys_enter(&intr, &quit);
    sigset_t reset;
    sigemptyset(&reset);
    if (intr.sa_handler != SIG_IGN)
        sigaddset(&reset, SIGINT);
    if (quit.sa_handler != SIG_IGN)
        sigaddset(&reset, SIGQUIT);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    /* the shell's mask is the caller's: the OS thread's before system() blocked SIGCHLD,
     * or a green pthread's own (sigmask.c) */
    sigset_t shell_mask = sys_thread_mask;
    patch_sigmask_green(&shell_mask);
    posix_spawnattr_setsigmask(&attr, &shell_mask);
    posix_spawnattr_setsigdefault(&attr, &reset);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    pid_t pid;
    int status, err = spawn_shell(&pid, cmd, NULL, &attr);
    posix_spawnattr_destroy(&attr);
    if (err) {
        status = W_EXITCODE(127, 0); /* POSIX: as if the shell had done exit(127) */
    } else if (wait4_green(pid, &status, 0, NULL, 0) != pid) {
        status = -1;
        err = errno;
        if (err == ECANCELED || err == ETIMEDOUT)
            shell_kill(pid);
    }
    sys_leave();
    if (err)
        errno = err;
    if (err == ECANCELED)
        patch_testcancel();
    return status;
}

int system(const char *cmd)
{
    patch_cancel_point();
    if (!patch_here())
        return patch_real()->system(cmd);
    if (!cmd) /* is there a shell? */
        return run_shell("exit 0") == 0;
    return run_shell(cmd);
}
GREEN_PATCH(system);

/* ---- popen() and pclose() ---- */

struct popen_entry {
    struct popen_entry *next;
    FILE *f;
    pid_t pid;
};

static pthread_mutex_t popen_lock = PTHREAD_MUTEX_INITIALIZER; /* a real one: never parks */
static struct popen_entry *popens;

static void popen_locked(int lock)
{
    if (lock)
        patch_real()->pthread_mutex_lock(&popen_lock);
    else
        patch_real()->pthread_mutex_unlock(&popen_lock);
}

/* Spawn the shell with `child` as its fd child_fd and the earlier popen streams closed;
 * on success the entry goes on the list. 0, or an errno. */
static int popen_spawn(struct popen_entry *ent, const char *cmd, int child, int child_fd)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    int err = posix_spawn_file_actions_adddup2(&fa, child, child_fd);
    popen_locked(1); /* the list stays as the child's close actions saw it */
    for (struct popen_entry *p = popens; p && !err; p = p->next) {
        int fd = fileno(p->f);
        if (fd >= 0 && fd != child_fd)
            err = posix_spawn_file_actions_addclose(&fa, fd);
    }
    /* a green pthread's shell gets its mask (sigmask.c), others the OS thread's */
    posix_spawnattr_t attr;
    sigset_t mask;
    int green_mask = patch_sigmask_green(&mask);
    if (green_mask) {
        posix_spawnattr_init(&attr);
        posix_spawnattr_setsigmask(&attr, &mask);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    }
    if (!err && (err = spawn_shell(&ent->pid, cmd, &fa, green_mask ? &attr : NULL)) == 0) {
        ent->next = popens;
        popens = ent;
    }
    popen_locked(0);
    if (green_mask)
        posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return err;
}

FILE *popen(const char *cmd, const char *mode)
{
    if (!patch_here())
        return patch_real()->popen(cmd, mode);
    int rd = 0, wr = 0, cloexec = 0;
    for (const char *m = mode; *m; m++) {
        if (*m == 'r')
            rd = 1;
        else if (*m == 'w')
            wr = 1;
        else if (*m == 'e')
            cloexec = 1;
        else
            rd = wr; /* anything else: invalid */
    }
    if (rd == wr) {
        errno = EINVAL;
        return NULL;
    }
    int p[2];
    struct popen_entry *ent = malloc(sizeof *ent);
    if (!ent || patch_real()->pipe2(p, O_CLOEXEC) != 0) {
        free(ent);
        return NULL;
    }
    pfd_set(p[0], 0);
    pfd_set(p[1], 0);
    int parent = p[rd ? 0 : 1], child = p[rd ? 1 : 0], child_fd = rd ? 1 : 0;
    if (child == child_fd) { /* dup2 onto itself would keep O_CLOEXEC: move it first */
        int moved = patch_real()->fcntl(child, F_DUPFD_CLOEXEC, 0);
        patch_real()->close(child);
        child = moved;
    }
    FILE *f = child < 0 ? NULL : fdopen(parent, rd ? "r" : "w");
    ent->f = f;
    if (!f || popen_spawn(ent, cmd, child, child_fd) != 0) {
        if (f)
            patch_real()->fclose(f);
        else
            patch_real()->close(parent);
        if (child >= 0)
            patch_real()->close(child);
        free(ent);
        errno = ENOMEM; /* as glibc says of a failed spawn */
        return NULL;
    }
    patch_real()->close(child);
    if (!cloexec)
        patch_real()->fcntl(parent, F_SETFD, 0);
    return f;
}
GREEN_PATCH(popen);

pid_t patch_popen_forget(FILE *f)
{
    pid_t pid = 0;
    popen_locked(1);
    for (struct popen_entry **p = &popens; *p; p = &(*p)->next)
        if ((*p)->f == f) {
            struct popen_entry *ent = *p;
            *p = ent->next;
            pid = ent->pid;
            free(ent);
            break;
        }
    popen_locked(0);
    return pid;
}

int patch_popen_wait(pid_t pid, int closed)
{
    int status;
    pid_t r;
    if (patch_here())
        r = wait4_green(pid, &status, 0, NULL, 0);
    else
        while ((r = patch_real()->waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
        }
    if (r != pid)
        return -1;
    return status ? status : closed; /* glibc's fclose: the command's status, else the flush's */
}

static int popen_has(FILE *f)
{
    popen_locked(1);
    struct popen_entry *p = popens;
    while (p && p->f != f)
        p = p->next;
    popen_locked(0);
    return p != NULL;
}

int pclose(FILE *f)
{
    if (!f || !popen_has(f))
        return patch_real()->pclose(f);
    return fclose(f);
}
GREEN_PATCH(pclose);
