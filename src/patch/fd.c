/*
 * fd.c — the user's view of an fd (see io.h), and the wrappers that create,
 * copy, configure and close fds: socket socketpair pipe pipe2 accept's result (in
 * io.c) dup dup2 dup3 fcntl ioctl(FIONBIO) close fclose. (fcntl's commands that wait
 * for a lock are file.c's; fclose of a popen stream waits for its command: proc.c.)
 *
 * The table: one byte per fd number, in chunks of 16K fds reached through a fixed
 * array of 64K chunk pointers (fd numbers up to 2^30, Linux's nr_open ceiling). A chunk
 * is mapped (async-signal-safely) on first use and never freed or moved, so any thread reads an entry with
 * one atomic load and no lock; a chunk lost to a racing allocation is freed at once.
 *
 * Entries are reset wherever a wrapper sees a number (re)born — socket, socketpair,
 * pipe, accept, dup* — and cleared at close and fclose, so a stale entry can only come
 * from a close libgreen cannot see (a raw syscall, close_range). Flags are per open
 * file: after dup the copies share the entry's value, but a later F_SETFL through one
 * number updates only that number's view. A green thread's dup of an fd not known yet
 * learns it first, so that both numbers know of the O_NONBLOCK set underneath.
 */
#include "io.h"

#include <stdarg.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define CHUNK_BITS 14
#define CHUNK_SIZE (1u << CHUNK_BITS)
#define NCHUNKS (1u << 16)

static unsigned char *chunks[NCHUNKS] GREEN_BIG_BSS;

static unsigned char *chunk_of(int fd, int make)
{
    if (fd < 0 || (unsigned)fd >= (unsigned)NCHUNKS * CHUNK_SIZE)
        return NULL;
    unsigned char **slot = &chunks[(unsigned)fd >> CHUNK_BITS];
    unsigned char *c = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (c || !make)
        return c;
    /* mmap, not malloc: a wrapper may be reached from a signal handler that interrupted
     * malloc (libunwind's reads of its validation pipe in libgreen's monitor handler) */
    unsigned char *fresh = mmap(NULL, CHUNK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (fresh == MAP_FAILED)
        return NULL;
    if (__atomic_compare_exchange_n(slot, &c, fresh, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return fresh;
    munmap(fresh, CHUNK_SIZE); /* another thread's chunk won: c is it */
    return c;
}

int pfd_get(int fd)
{
    unsigned char *c = chunk_of(fd, 0);
    return c ? __atomic_load_n(&c[fd & (CHUNK_SIZE - 1)], __ATOMIC_ACQUIRE) : 0;
}

void pfd_set(int fd, int state)
{
    unsigned char *c = chunk_of(fd, state != 0);
    if (c)
        __atomic_store_n(&c[fd & (CHUNK_SIZE - 1)], (unsigned char)state, __ATOMIC_RELEASE);
}

/* What fd is, found out once: see io.h for the states. */
static int learn(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || S_ISDIR(st.st_mode))
        return PFD_KNOWN | PFD_FILE;
    int fl = patch_real()->fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    int state = PFD_KNOWN | ((fl & O_NONBLOCK) ? PFD_USER_NB : 0);
    if (S_ISSOCK(st.st_mode)) {
        int type = 0;
        socklen_t len = sizeof type;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM)
            state |= PFD_STREAM;
    } else if (fd <= 2) {
        return state | PFD_KEEP; /* the terminal or a pipe of the shell's: flags stay */
    }
    if (!(fl & O_NONBLOCK) && patch_real()->fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
        return -1;
    return state | PFD_MANAGED;
}

int pfd_learn(int fd)
{
    int state = pfd_get(fd);
    if (state)
        return state;
    int e = errno;
    if ((state = learn(fd)) < 0)
        return -1;
    errno = e;
    unsigned char *c = chunk_of(fd, 1);
    if (!c)
        return state & PFD_MANAGED ? state : 0; /* out of memory: a file, kept as is */
    unsigned char old = 0;
    /* two threads learning at once learn the same thing; keep the first */
    if (!__atomic_compare_exchange_n(&c[fd & (CHUNK_SIZE - 1)], &old, (unsigned char)state, 0,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        state = old;
    return state;
}

enum pfd_how pfd_how(int fd, int *state)
{
    if (patch_here()) {
        int s = pfd_learn(fd);
        *state = s < 0 ? 0 : s;
        /* a bad fd: libc reports it */
        return s <= 0 || (s & (PFD_FILE | PFD_USER_NB)) ? PFD_PASS : PFD_GREEN;
    }
    int s = *state = pfd_get(fd);
    return (s & PFD_MANAGED) && !(s & PFD_USER_NB) ? PFD_EMULATE : PFD_PASS;
}

int pfd_wait(enum pfd_how how, int fd, int events, struct patch_intr **in)
{
    struct pollfd p = {.fd = fd, .events = (short)events};
    if (how == PFD_GREEN)
        return patch_poll(&p, 1, -1, in, PATCH_INTR_RESTART) > 0 ? 0 : -1;
    /* a plain thread: really block, as the user's blocking fd would; poll(2) fails with
     * EINTR after any handler, the call it stands for only after one without SA_RESTART */
    uint32_t since = patch_intr_now();
    int r;
    while ((r = patch_real()->poll(&p, 1, -1)) < 0 && errno == EINTR && patch_intr_restart(since))
        ;
    return r > 0 ? 0 : -1;
}

/* ---- fds born: a fresh number has no history ---- */

int socket(int domain, int type, int protocol)
{
    int fd = patch_real()->socket(domain, type, protocol);
    if (fd >= 0)
        pfd_set(fd, 0);
    return fd;
}
GREEN_PATCH(socket);

int socketpair(int domain, int type, int protocol, int sv[2])
{
    int r = patch_real()->socketpair(domain, type, protocol, sv);
    if (r == 0) {
        pfd_set(sv[0], 0);
        pfd_set(sv[1], 0);
    }
    return r;
}
GREEN_PATCH(socketpair);

int pipe2(int fds[2], int flags)
{
    int r = patch_real()->pipe2(fds, flags);
    if (r == 0) {
        pfd_set(fds[0], 0);
        pfd_set(fds[1], 0);
    }
    return r;
}
GREEN_PATCH(pipe2);

int pipe(int fds[2]) { return pipe2(fds, 0); }
GREEN_PATCH(pipe);

/* ---- copies share the open file, so its flags ---- */

/* The state a copy of fd gets. A green thread learns an unknown fd first: were it
 * learned later through one number only, the O_NONBLOCK set underneath would show
 * through the other's unknown entry (F_GETFL, and a read that fails with EAGAIN where
 * the program expects it to wait). */
static int copied_state(int fd)
{
    int state = pfd_get(fd);
    if (!state && patch_here()) {
        int e = errno;
        state = pfd_learn(fd);
        errno = e;
    }
    return state < 0 ? 0 : state;
}

/* newfd (when >= 0) replaced what had that number: its waiters learn it was closed */
static int dup_done(int oldfd, int newfd, int replaced)
{
    if (newfd < 0)
        return newfd;
    if (replaced && patch_here())
        patch_closing(newfd);
    pfd_set(newfd, copied_state(oldfd));
    return newfd;
}

int dup(int fd) { return dup_done(fd, patch_real()->dup(fd), 0); }
GREEN_PATCH(dup);

/* newfd is about to be replaced by a copy of oldfd: as before a close, the hub forgets
 * it (its poller's watch is on the open file newfd had, which a copy elsewhere may keep
 * open: a wait on the new file would be taken as watched already and never woken).
 * Not when the call will fail on a bad oldfd. */
static void replacing(int oldfd, int newfd)
{
    if (oldfd != newfd && newfd >= 0 && patch_here() && patch_real()->fcntl(oldfd, F_GETFD) >= 0)
        green_private_fd_closing(newfd);
}

int dup2(int oldfd, int newfd)
{
    if (oldfd == newfd)
        return patch_real()->dup2(oldfd, newfd);
    int e = errno;
    replacing(oldfd, newfd);
    errno = e;
    return dup_done(oldfd, patch_real()->dup2(oldfd, newfd), 1);
}
GREEN_PATCH(dup2);

int __dup2(int oldfd, int newfd) { return dup2(oldfd, newfd); }
GREEN_PATCH(__dup2);

int dup3(int oldfd, int newfd, int flags)
{
    int e = errno;
    replacing(oldfd, newfd);
    errno = e;
    return dup_done(oldfd, patch_real()->dup3(oldfd, newfd, flags), 1);
}
GREEN_PATCH(dup3);

/* ---- the user's O_NONBLOCK ---- */

static void set_user_nb(int fd, int state, int on)
{
    pfd_set(fd, on ? state | PFD_USER_NB : state & ~PFD_USER_NB);
}

static int fcntl_impl(int fd, int cmd, void *arg)
{
    int state = pfd_get(fd);
    int e = errno;
    int r;
    switch (cmd) {
    case F_GETFL:
        r = patch_real()->fcntl(fd, cmd);
        if (r >= 0 && (state & PFD_MANAGED))
            r = (r & ~O_NONBLOCK) | ((state & PFD_USER_NB) ? O_NONBLOCK : 0);
        break;
    case F_SETFL: {
        int fl = (int)(intptr_t)arg;
        /* a managed fd stays non-blocking underneath; only the user's view changes */
        r = patch_real()->fcntl(fd, cmd, (state & PFD_MANAGED) ? fl | O_NONBLOCK : fl);
        if (r == 0 && (state & (PFD_MANAGED | PFD_KEEP)))
            set_user_nb(fd, state, fl & O_NONBLOCK);
        break;
    }
    case F_DUPFD:
    case F_DUPFD_CLOEXEC:
        r = patch_real()->fcntl(fd, cmd, (int)(intptr_t)arg);
        if (r >= 0)
            pfd_set(r, copied_state(fd));
        break;
    default:
        if (patch_fcntl_is_lock(cmd))
            return patch_fcntl_lock(fd, cmd, arg);
        return patch_real()->fcntl(fd, cmd, arg);
    }
    if (r >= 0)
        errno = e;
    return r;
}

/* The argument is an int or a pointer, as the command says; glibc reads it the same way. */
int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_impl(fd, cmd, arg);
}
GREEN_PATCH(fcntl);

int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_impl(fd, cmd, arg);
}
GREEN_PATCH(fcntl64);

int __fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_impl(fd, cmd, arg);
}
GREEN_PATCH(__fcntl);

/* Only FIONBIO is the patch's business; every other request goes to libc as is. */
int ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    int state;
    if (req != FIONBIO || !((state = pfd_get(fd)) & (PFD_MANAGED | PFD_KEEP)))
        return patch_real()->ioctl(fd, req, arg);
    if (!arg) {
        errno = EFAULT;
        return -1;
    }
    int on = *(const int *)arg != 0;
    if (state & PFD_KEEP) {
        int r = patch_real()->ioctl(fd, req, arg);
        if (r == 0)
            set_user_nb(fd, state, on);
        return r;
    }
    /* managed: non-blocking underneath already; check the fd is still open */
    int e = errno;
    if (patch_real()->fcntl(fd, F_GETFL) < 0)
        return -1;
    errno = e;
    set_user_nb(fd, state, on);
    return 0;
}
GREEN_PATCH(ioctl);

/* ---- closing ---- */

/* Before fd is closed: forget what we know of it, and wake whoever waits on it (EBADF)
 * so that no green thread sleeps on a number that may soon be another file's. */
static void closing(int fd)
{
    pfd_set(fd, 0);
    if (patch_here()) {
        patch_closing(fd);
        green_private_fd_closing(fd);
    }
}

void patch_fd_closing(int fd) { closing(fd); }

/* A cancellation point, as glibc's: a cancelled green pthread leaves with fd open. */
int close(int fd)
{
    patch_cancel_point();
    int e = errno;
    closing(fd);
    int r = patch_real()->close(fd);
    if (r == 0)
        errno = e;
    return r;
}
GREEN_PATCH(close);

int __close(int fd) { return close(fd); }
GREEN_PATCH(__close);

/* A stream of popen (proc.c) is waited for too, as glibc's fclose does. */
int fclose(FILE *f)
{
    pid_t child = 0;
    if (f) {
        child = patch_popen_forget(f);
        int fd = fileno(f);
        if (fd >= 0)
            closing(fd);
    }
    int r = patch_real()->fclose(f);
    return child ? patch_popen_wait(child, r) : r;
}
GREEN_PATCH(fclose);
