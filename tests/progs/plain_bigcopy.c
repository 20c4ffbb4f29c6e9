/*
 * plain_bigcopy.c — big copies between two regular files, as a plain pthread program
 * makes them (no libgreen): sendfile and copy_file_range of 64 MiB each, four rounds, each
 * returning the whole count, as the blocking calls do for a regular file with nothing to
 * interrupt them. tests/monitor_copy_test.sh runs it under `greenrun --threads` with the
 * pinning detector's threshold at 1 ms, so that the detector's SIGURG (a backtrace of the
 * hub it sees held) lands in the middle of copies, which the kernel then ends early. A
 * short sleep before each copy lets the hub go (under greenrun): the monitor counts a
 * hold that never ends as one episode, named after where it began, and without the
 * sleeps the writing of the input file (fill) would be the only one reported.
 *
 *   plain_bigcopy    (prints "ok sendfile N" and "ok copy_file_range N" per round)
 */
#define _GNU_SOURCE
#include "prog.h"

#include <fcntl.h>
#include <sys/sendfile.h>

#define SIZE (64L << 20)
#define ROUNDS 4

static int temp_file(void)
{
    char path[] = "/tmp/plain_bigcopy.XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    return fd;
}

/* The input, written in a function of its own: the monitor names a busy hold after the
 * program's innermost function, so this one's hold is another site than the copies'. */
static __attribute__((noinline)) void fill(int in, char *buf)
{
    for (long i = 0; i < SIZE; i += 1 << 20) {
        memset(buf, (int)(i >> 20), 1 << 20);
        CHECK_EQ(pwrite(in, buf, 1 << 20, i), 1 << 20);
    }
}

static void *copies(void *arg)
{
    (void)arg;
    int in = temp_file(), out = temp_file();
    char *buf = malloc(1 << 20);
    CHECK(buf != NULL);
    fill(in, buf);
    for (int r = 0; r < ROUNDS; r++) {
        off_t off = 0;
        CHECK_EQ(lseek(out, 0, SEEK_SET), 0);
        usleep(10000);
        ssize_t n = sendfile(out, in, &off, SIZE);
        CHECK_EQ(n, SIZE);
        CHECK_EQ(off, SIZE);
        printf("ok sendfile %d\n", r);
        loff_t a = 0, b = 0;
        usleep(10000);
        n = copy_file_range(in, &a, out, &b, SIZE, 0);
        CHECK_EQ(n, SIZE);
        CHECK_EQ(b, SIZE);
        printf("ok copy_file_range %d\n", r);
    }
    char last;
    CHECK_EQ(pread(out, &last, 1, SIZE - 1), 1);
    CHECK_EQ(last, (char)((SIZE - 1) >> 20));
    free(buf);
    close(in);
    close(out);
    return NULL;
}

int main(void)
{
    pthread_t t;
    CHECK(pthread_create(&t, NULL, copies, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    return 0;
}
