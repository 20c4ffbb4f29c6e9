/*
 * plain_files.c — regular files and their locks as a plain pthread program uses them (no
 * libgreen): pread/pwrite/preadv/pwritev/preadv2/pwritev2, sendfile between files,
 * fsync, fdatasync, flock, lockf and fcntl's F_SETLKW/F_OFD_SETLKW against another
 * process. The answers must be
 * glibc's, plainly and under `greenrun --threads` (under every file rule), where
 * each check's thread is a green thread and a lock wait parks it while the ticker thread
 * goes on. A lock taken while waiting must belong to the process (fcntl) or to the open
 * file description (flock, OFD locks) as the real call's: other processes check.
 *
 *   plain_files [CHECK]    (a name below, or "all": prints "ok NAME" for each)
 */
#define _GNU_SOURCE
#include "prog.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/sendfile.h>
#include <sys/uio.h>
#include <sys/wait.h>

static char path[64];

static int open_file(void)
{
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    CHECK(fd >= 0);
    return fd;
}

/* ---- reads and writes ---- */

static void check_rw(void)
{
    int fd = open_file();
    CHECK_EQ(ftruncate(fd, 0), 0);
    CHECK_EQ(pwrite(fd, "hello world", 11, 100), 11);
    char buf[32] = {0};
    CHECK_EQ(pread(fd, buf, sizeof buf, 100), 11);
    CHECK(memcmp(buf, "hello world", 11) == 0);
    CHECK_EQ(pread(fd, buf, sizeof buf, 111), 0); /* end of file */
    CHECK_EQ(pread(fd, buf, 0, 0), 0);
    CHECK_EQ(lseek(fd, 0, SEEK_CUR), 0); /* positioned calls leave the position */
    /* vectors */
    struct iovec w[2] = {{"abc", 3}, {"defg", 4}};
    CHECK_EQ(pwritev(fd, w, 2, 200), 7);
    char x[3], y[10];
    struct iovec r[2] = {{x, 3}, {y, sizeof y}};
    CHECK_EQ(preadv(fd, r, 2, 200), 7);
    CHECK(memcmp(x, "abc", 3) == 0 && memcmp(y, "defg", 4) == 0);
    CHECK_EQ(pwritev2(fd, w, 2, -1, 0), 7); /* -1: at (and moving) the position */
    CHECK_EQ(lseek(fd, 0, SEEK_CUR), 7);
    CHECK_EQ(preadv2(fd, r, 2, 0, 0), 13);
    CHECK(memcmp(x, "abc", 3) == 0);
    CHECK_EQ(preadv2(fd, r, 2, 200, RWF_HIPRI), 7);
    /* large: 3 MiB in one call */
    enum { BIG = 3 << 20 };
    char *big = malloc(BIG), *back = malloc(BIG);
    CHECK(big && back);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (char)(i * 7);
    CHECK_EQ(pwrite(fd, big, BIG, 4096), BIG);
    CHECK_EQ(pread(fd, back, BIG, 4096), BIG);
    CHECK(memcmp(big, back, BIG) == 0);
    CHECK_EQ(lseek(fd, 4096, SEEK_SET), 4096);
    CHECK_EQ(read(fd, back, BIG), BIG);
    CHECK_EQ(write(fd, big, 1000), 1000);
    CHECK_EQ(lseek(fd, 0, SEEK_CUR), 4096 + BIG + 1000);
    /* sendfile between two files (the file rule, as copy_file_range) */
    char path2[] = "/tmp/plain_files2.XXXXXX";
    int out = mkstemp(path2);
    CHECK(out >= 0);
    unlink(path2);
    off_t off = 4096;
    CHECK_EQ(sendfile(out, fd, &off, BIG), BIG);
    CHECK_EQ(off, 4096 + BIG);
    CHECK_EQ(pread(out, back, BIG, 0), BIG);
    CHECK(memcmp(big, back, BIG) == 0);
    close(out);
    free(big);
    free(back);
    /* O_DIRECT: the caller's aligned buffer is what the kernel gets */
    int direct = open(path, O_RDWR | O_DIRECT);
    if (direct >= 0) { /* (file systems without it refuse the open: nothing to check) */
        void *al;
        CHECK_EQ(posix_memalign(&al, 4096, 8192), 0);
        memset(al, 'd', 8192);
        CHECK_EQ(pwrite(direct, al, 8192, 0), 8192);
        memset(al, 0, 8192);
        CHECK_EQ(pread(direct, (char *)al + 4096, 4096, 4096), 4096);
        CHECK(((char *)al)[4096] == 'd');
        free(al);
        close(direct);
    }
    /* the kernel's errors */
    int p[2];
    CHECK_EQ(pipe(p), 0);
    CHECK_ERR(pread(fd, buf, 1, -1), EINVAL);
    CHECK_ERR(pwrite(fd, buf, 1, -5), EINVAL);
    CHECK_ERR(pread(p[0], buf, 1, 0), ESPIPE);
    CHECK_ERR(pread(9999, buf, 1, 0), EBADF);
    CHECK_ERR(preadv(fd, r, (int)opaque(-1), 0), EINVAL);
    CHECK_ERR(pwritev(fd, w, (int)opaque(IOV_MAX + 1), 0), EINVAL);
    CHECK_ERR(preadv2(fd, r, 2, -2, 0), EINVAL);
    CHECK_ERR(pwritev2(p[0], w, 2, 0, 0), ESPIPE);
    int ro = open(path, O_RDONLY);
    CHECK(ro >= 0);
    CHECK_ERR(pwrite(ro, "z", 1, 0), EBADF);
    close(ro);
    /* fsync and fdatasync */
    CHECK_EQ(fsync(fd), 0);
    CHECK_EQ(fdatasync(fd), 0);
    CHECK_ERR(fsync(p[0]), EINVAL);
    CHECK_ERR(fdatasync(9999), EBADF);
    close(p[0]);
    close(p[1]);
    close(fd);
}

/* ---- locks against another process ---- */

/* A child process that takes a lock (`how`) on its own open of the file, says so on a
 * pipe, holds it for ms, and exits (which releases it). Returns when it holds it. */
enum how { FLOCK_EX, FCNTL_WR, OFD_WR, LOCKF };

static int take(int fd, enum how how, int wait)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
    switch (how) {
    case FLOCK_EX:
        return flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB));
    case FCNTL_WR:
        return fcntl(fd, wait ? F_SETLKW : F_SETLK, &fl);
    case OFD_WR:
        return fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
    case LOCKF:
        return lockf(fd, wait ? F_LOCK : F_TLOCK, 10);
    }
    return -1;
}

static pid_t holder(enum how how, int ms)
{
    int p[2];
    CHECK_EQ(pipe(p), 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int fd = open_file();
        CHECK_EQ(take(fd, how, 1), 0);
        CHECK_EQ(write(p[1], "L", 1), 1);
        usleep((useconds_t)ms * 1000);
        _exit(0);
    }
    char c;
    CHECK_EQ(read(p[0], &c, 1), 1);
    close(p[0]);
    close(p[1]);
    return pid;
}

/* What another process sees of the lock the caller holds: 0 when it cannot take it
 * (the lock is ours), 1 when it can. For fcntl locks, the owner it reports must be us. */
static int other_can_take(enum how how)
{
    pid_t me = getpid(), pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int fd = open_file();
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
        if (how == FCNTL_WR || how == LOCKF) {
            CHECK_EQ(fcntl(fd, F_GETLK, &fl), 0);
            _exit(fl.l_type == F_UNLCK ? 1 : fl.l_pid == me ? 0 : 2);
        }
        if (how == OFD_WR) {
            CHECK_EQ(fcntl(fd, F_OFD_GETLK, &fl), 0);
            _exit(fl.l_type == F_UNLCK ? 1 : fl.l_pid == -1 ? 0 : 2);
        }
        _exit(take(fd, how, 0) == 0 ? 1 : errno == EWOULDBLOCK ? 0 : 2);
    }
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) < 2);
    return WEXITSTATUS(st);
}

static void wait_for_lock(enum how how)
{
    int fd = open_file();
    pid_t pid = holder(how, 60);
    CHECK_ERR(take(fd, how, 0), EAGAIN); /* (EWOULDBLOCK for flock: the same number) */
    long t0 = ticks_now();
    errno = 1234;
    CHECK_EQ(take(fd, how, 1), 0); /* parks until the holder exits */
    CHECK_EQ(errno, 1234);
    CHECK(TICKED(t0));
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK_EQ(other_can_take(how), 0);
    close(fd); /* releases it */
    CHECK_EQ(other_can_take(how), 1);
}

static void check_flock(void)
{
    wait_for_lock(FLOCK_EX);
    int fd = open_file();
    CHECK_ERR(flock(fd, 0), EINVAL);
    CHECK_ERR(flock(9999, LOCK_EX), EBADF);
    CHECK_EQ(flock(fd, LOCK_SH), 0);
    CHECK_EQ(flock(fd, LOCK_UN), 0);
    close(fd);
}

static void check_fcntl(void)
{
    wait_for_lock(FCNTL_WR);
    int fd = open_file();
    struct flock bad = {.l_type = 99, .l_whence = SEEK_SET};
    CHECK_ERR(fcntl(fd, F_SETLKW, &bad), EINVAL);
    struct flock rd = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_len = 10};
    int ro = open(path, O_WRONLY);
    CHECK_ERR(fcntl(ro, F_SETLKW, &rd), EBADF); /* a read lock needs read access */
    close(ro);
    close(fd);
}

static void check_ofd(void)
{
    wait_for_lock(OFD_WR);
    /* an OFD lock belongs to the open file description: another one of this process
     * conflicts with it */
    int a = open_file(), b = open_file();
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_len = 10};
    CHECK_EQ(fcntl(a, F_OFD_SETLKW, &fl), 0);
    CHECK_ERR(fcntl(b, F_OFD_SETLK, &fl), EAGAIN);
    struct flock nopid = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_len = 10, .l_pid = 1};
    CHECK_ERR(fcntl(b, F_OFD_SETLKW, &nopid), EINVAL); /* l_pid must be 0 */
    close(a);
    close(b);
}

static void check_lockf(void)
{
    wait_for_lock(LOCKF);
    int fd = open_file();
    CHECK_ERR(lockf(fd, 99, 10), EINVAL);
    CHECK_EQ(lockf(fd, F_LOCK, 10), 0);
    CHECK_EQ(lockf(fd, F_TEST, 10), 0); /* our own */
    CHECK_EQ(lockf(fd, F_ULOCK, 10), 0);
    close(fd);
}

/* F_SETLKW and lockf's F_LOCK are cancellation points: a cancelled wait takes no lock. */
static void block_lock(void *arg)
{
    int fd = open_file();
    take(fd, *(enum how *)arg, 1);
}

static void check_cancel(void)
{
    enum how hows[] = {FCNTL_WR, LOCKF};
    for (size_t i = 0; i < sizeof hows / sizeof hows[0]; i++) {
        pid_t pid = holder(hows[i], 300);
        check_cancelled(block_lock, &hows[i]);
        int st;
        CHECK_EQ(waitpid(pid, &st, 0), pid);
        CHECK_EQ(other_can_take(hows[i]), 1);
    }
}

int main(int argc, char **argv)
{
    snprintf(path, sizeof path, "/tmp/plain_files.%d", (int)getpid());
    static const struct prog_test tests[] = {
        {"rw", check_rw},       {"flock", check_flock}, {"fcntl", check_fcntl},
        {"ofd", check_ofd},     {"lockf", check_lockf}, {"cancel", check_cancel},
    };
    int r = prog_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
    unlink(path);
    return r;
}
