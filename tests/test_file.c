/* test_file.c — regular file I/O that never blocks the hub (green__file_io, which
 * green_read and green_write use for regular files): positioned and sequential reads
 * and writes on io_uring (GREEN_POLLER=uring) or the thread pool (epoll), errors as the
 * system call gives them, a ticker that keeps ticking while a big file is read, callers
 * on the shared stack reading into their own stacks, and deadlines and kills that leave
 * the transfer to finish on its own. */
#include "green_test.h"
#include "pool_gate.h"
#include "../src/lib.h" /* green__file_io is internal: green_read/green_write wrap it */

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static ssize_t file_read(int fd, void *buf, size_t n, off_t off, int64_t deadline)
{
    return green__file_io(green__loop(), fd, 0, buf, n, off, deadline);
}

static ssize_t file_write(int fd, const void *buf, size_t n, off_t off, int64_t deadline)
{
    return green__file_io(green__loop(), fd, 1, (void *)buf, n, off, deadline);
}

/* An unnamed temporary file, open for reading and writing. */
static int temp_file(void)
{
    char path[] = "/tmp/green_file_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    return fd;
}

static off_t file_size(int fd)
{
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    return st.st_size;
}

static int uring(void) { return strcmp(green_poller_name(), "uring") == 0; }

/* This process's threads, not counting io_uring's kernel workers (iou-wrk-*). */
static int os_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(comm, sizeof comm, f))
                comm[0] = 0;
            fclose(f);
        }
        n += strncmp(comm, "iou-", 4) != 0;
    }
    closedir(d);
    return n;
}

/* The byte at offset i of the test pattern. */
static unsigned char pattern(size_t i) { return (unsigned char)(i * 7 + i / 4096); }

/* ======================================================================== */

/* First, while no test has used the pool: on io_uring the kernel does file I/O (no pool
 * thread is started); on epoll a pool thread does. */
static void test_who_does_the_io(void **state)
{
    (void)state;
    int fd = temp_file();
    int before = os_threads();
    char buf[6] = {0};
    assert_int_equal(file_write(fd, "hello", 5, 0, -1), 5);
    assert_int_equal(file_read(fd, buf, 5, 0, -1), 5);
    assert_string_equal(buf, "hello");
    if (uring())
        assert_int_equal(os_threads(), before);
    else
        assert_true(os_threads() > before);
    close(fd);
    assert_hub_idle();
}

static void test_positioned(void **state)
{
    (void)state;
    int fd = temp_file();
    char buf[32];
    assert_int_equal(file_write(fd, "hello", 5, 0, -1), 5);
    assert_int_equal(file_write(fd, "world", 5, 100, green_after(LATE_MS)), 5);
    assert_int_equal(file_size(fd), 105);
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 0); /* positioned I/O leaves the position */
    assert_int_equal(file_read(fd, buf, 5, 100, -1), 5);
    assert_memory_equal(buf, "world", 5);
    /* the hole reads as zeros */
    memset(buf, 1, sizeof buf);
    assert_int_equal(file_read(fd, buf, 10, 5, -1), 10);
    for (int i = 0; i < 10; i++)
        assert_int_equal(buf[i], 0);
    /* a short read at the end, then EOF */
    assert_int_equal(file_read(fd, buf, sizeof buf, 102, -1), 3);
    assert_memory_equal(buf, "rld", 3);
    assert_int_equal(file_read(fd, buf, sizeof buf, 105, -1), 0);
    assert_int_equal(file_read(fd, buf, sizeof buf, 1000, -1), 0);
    close(fd);
    assert_hub_idle();
}

/* off == -1: at the file's position, which moves on, as read(2) and write(2) do. */
static void test_current_position(void **state)
{
    (void)state;
    int fd = temp_file();
    char buf[8] = {0};
    assert_int_equal(file_write(fd, "abc", 3, -1, -1), 3);
    assert_int_equal(file_write(fd, "def", 3, -1, -1), 3);
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 6);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(file_read(fd, buf, 3, -1, -1), 3);
    assert_string_equal(buf, "abc");
    assert_int_equal(file_read(fd, buf, 4, -1, -1), 3);
    assert_memory_equal(buf, "def", 3);
    assert_int_equal(file_read(fd, buf, 4, -1, -1), 0);
    /* O_APPEND: every write lands at the end */
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int fa = open(path, O_WRONLY | O_APPEND);
    assert_true(fa >= 0);
    assert_int_equal(file_write(fa, "gh", 2, -1, -1), 2);
    assert_int_equal(file_size(fd), 8);
    assert_int_equal(file_read(fd, buf, 8, 0, -1), 8);
    assert_memory_equal(buf, "abcdefgh", 8);
    close(fa);
    close(fd);
    assert_hub_idle();
}

static void test_errors(void **state)
{
    (void)state;
    char buf[16];
    assert_fails_with(file_read(-1, buf, sizeof buf, 0, -1), EBADF);
    int fd = temp_file();
    close(fd);
    assert_fails_with(file_read(fd, buf, sizeof buf, 0, -1), EBADF); /* from the system call */
    fd = temp_file();
    assert_fails_with(file_read(fd, buf, sizeof buf, -2, -1), EINVAL);
    /* zero bytes: nothing to hand off, but the fd is checked */
    assert_int_equal(file_read(fd, buf, 0, 0, -1), 0);
    int ro = open("/proc/self/exe", O_RDONLY);
    assert_true(ro >= 0);
    assert_fails_with(file_write(ro, "x", 1, 0, -1), EBADF);
    close(ro);
    int dir = open("/tmp", O_RDONLY | O_DIRECTORY);
    assert_true(dir >= 0);
    assert_fails_with(file_read(dir, buf, sizeof buf, 0, -1), EISDIR);
    close(dir);
    /* more than a chunk: a short count, the rest is the caller's next call */
    size_t big = GREEN_FILE_CHUNK + 4096;
    char *p = calloc(1, big);
    assert_int_equal(file_write(fd, p, big, 0, -1), (ssize_t)GREEN_FILE_CHUNK);
    free(p);
    close(fd);
    assert_hub_idle();
}

struct reader {
    int fd;
    size_t from, to; /* the byte range it checks */
    long chunks;
    int bad;
};

static void *read_range(void *arg)
{
    struct reader *r = arg;
    size_t cap = 256 * 1024;
    unsigned char *buf = malloc(cap);
    for (size_t off = r->from; off < r->to;) {
        size_t want = r->to - off < cap ? r->to - off : cap;
        ssize_t n = green__file_io(green__loop(), r->fd, 0, buf, want, (off_t)off, green_after(10 * LATE_MS));
        if (n <= 0) {
            r->bad = 1;
            break;
        }
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != pattern(off + (size_t)i))
                r->bad = 1;
        off += (size_t)n;
        r->chunks++;
    }
    free(buf);
    return NULL;
}

static void test_big_file_while_ticking(void **state)
{
    (void)state;
    size_t size = ((size_t)32 << 20) / GREEN_TEST_SCALE;
    int fd = temp_file();
    unsigned char *block = malloc(GREEN_FILE_CHUNK);
    for (size_t off = 0; off < size;) {
        size_t n = size - off < GREEN_FILE_CHUNK ? size - off : GREEN_FILE_CHUNK;
        for (size_t i = 0; i < n; i++)
            block[i] = pattern(off + i);
        ssize_t w = file_write(fd, block, n, (off_t)off, -1);
        assert_true(w > 0);
        off += (size_t)w;
    }
    free(block);
    assert_int_equal(file_size(fd), (off_t)size);
    struct ticker t = {0};
    green_t tk = green_spawn(tick, &t);
    enum { R = 4 };
    struct reader r[R];
    green_t gs[R];
    for (int i = 0; i < R; i++) {
        r[i] = (struct reader){.fd = fd, .from = size / R * (size_t)i, .to = size / R * (size_t)(i + 1)};
        assert_non_null(gs[i] = green_spawn(read_range, &r[i]));
    }
    int64_t t0 = green_now();
    assert_int_equal(green_joinall(gs, R, -1), 0);
    int64_t elapsed = green_now() - t0;
    t.stop = 1;
    assert_int_equal(green_join(tk, NULL, -1), 0);
    for (int i = 0; i < R; i++) {
        assert_int_equal(r[i].bad, 0);
        assert_true(r[i].chunks >= 1);
    }
    /* the ticker ran during the reads (each tick sleeps >= 1 ms) */
    if (elapsed >= 10)
        assert_true(t.ticks >= 1);
    close(fd);
    assert_hub_idle();
}

/* Shared-stack green threads read into and write from buffers on their own stacks,
 * which are copied away while they wait: the transfer never touches them directly. */
static int shared_fd;

static void *stack_buffers(void *arg)
{
    intptr_t me = (intptr_t)arg;
    char out[64], in[64];
    memset(out, 'a' + (int)me, sizeof out);
    memset(in, 0, sizeof in);
    if (file_write(shared_fd, out, sizeof out, (off_t)(me * 64), -1) != 64)
        return (void *)1;
    if (green_yield() != 0)
        return (void *)1;
    if (file_read(shared_fd, in, sizeof in, (off_t)(me * 64), -1) != 64)
        return (void *)1;
    return memcmp(in, out, sizeof in) ? (void *)1 : NULL;
}

static void test_shared_stack_buffers(void **state)
{
    (void)state;
    enum { N = 20 };
    shared_fd = temp_file();
    green_attr_t shared = {.stack_mode = GREEN_STACK_SHARED};
    green_t gs[N];
    for (int i = 0; i < N; i++)
        assert_non_null(gs[i] = green_spawn_attr(stack_buffers, (void *)(intptr_t)i, &shared));
    for (int i = 0; i < N; i++) {
        void *r = (void *)1;
        assert_int_equal(green_join(gs[i], &r, -1), 0);
        assert_null(r);
    }
    assert_int_equal(file_size(shared_fd), N * 64);
    close(shared_fd);
    assert_hub_idle();
    assert_int_equal(stats().shared_saved_bytes, 0);
}

/* A wait that is over before it starts (deadline passed, caller killed) moves nothing. */
static int killed_fd;

static void *killed_then_writes(void *arg)
{
    (void)arg;
    green_sleep(LATE_MS); /* killed here */
    errno = 0;
    return (void *)(intptr_t)(file_write(killed_fd, "x", 1, -1, -1) == -1 && errno == ECANCELED);
}

static void test_over_before_start(void **state)
{
    (void)state;
    int fd = temp_file();
    assert_fails_with(file_write(fd, "x", 1, 0, 0), ETIMEDOUT);
    assert_fails_with(file_write(fd, "x", 1, -1, green_now()), ETIMEDOUT);
    killed_fd = fd;
    green_t g = green_spawn(killed_then_writes, NULL);
    assert_int_equal(green_yield(), 0);
    assert_int_equal(green_kill(g), 0);
    void *r = NULL;
    assert_int_equal(green_join(g, &r, -1), 0);
    assert_int_equal((intptr_t)r, 1);
    assert_int_equal(green_sleep(10), 0);
    assert_int_equal(file_size(fd), 0);
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 0);
    close(fd);
    assert_hub_idle();
}

/* A caller killed or timed out while its transfer is under way returns at once; the
 * transfer still completes (a write lands), and its record is freed by whoever finishes
 * last (ASan, valgrind). On epoll the pool is held full, so the op is still queued. */
struct transfer {
    int fd;
    int64_t deadline;
    ssize_t r;
    int err;
};

static void *write_x(void *arg)
{
    struct transfer *t = arg;
    char buf[4096];
    memset(buf, 'x', sizeof buf);
    t->r = file_write(t->fd, buf, sizeof buf, 0, t->deadline);
    t->err = t->r < 0 ? errno : 0;
    return NULL;
}

static void wait_size(int fd, off_t size)
{
    int64_t give_up = green_after(LATE_MS);
    while (file_size(fd) != size && green_now() < give_up)
        assert_int_equal(green_sleep(1), 0);
    assert_int_equal(file_size(fd), size);
}

static void test_kill_and_deadline_in_flight(void **state)
{
    (void)state;
    struct gate g;
    gate_close(&g);
    int fd = temp_file();
    struct transfer t = {.fd = fd, .deadline = -1, .r = 7};
    green_t w = green_spawn(write_x, &t);
    assert_int_equal(green_yield(), 0); /* it has handed the write off and waits */
    assert_int_equal(stats().waiting, g.n + 1);
    assert_int_equal(green_kill(w), 0);
    assert_int_equal(green_join(w, NULL, -1), 0);
    assert_int_equal(t.r, -1);
    assert_int_equal(t.err, ECANCELED);
    if (!uring()) {
        /* the same with a deadline: the caller leaves, the job stays queued */
        int fd2 = temp_file();
        struct transfer t2 = {.fd = fd2, .deadline = green_after(20), .r = 7};
        int64_t t0 = green_now();
        write_x(&t2);
        assert_int_equal(t2.r, -1);
        assert_int_equal(t2.err, ETIMEDOUT);
        assert_true(green_now() - t0 < LATE_MS);
        assert_int_equal(file_size(fd2), 0);
        gate_open(&g);
        /* the pool is FIFO: once every thread holds a later job, the abandoned one is
         * over (no deadline to miss on a loaded machine), before its fd is closed */
        pool_quiesce();
        wait_size(fd2, 4096);
        close(fd2);
    } else {
        gate_open(&g);
    }
    pool_quiesce();
    wait_size(fd, 4096);
    assert_int_equal(green_sleep(5), 0); /* the last completions are seen and freed */
    close(fd);
    assert_hub_idle();
}

/* A plain pthread (no hub until it asks) does file I/O the same way. */
static void *pthread_io(void *arg)
{
    (void)arg;
    int fd = temp_file();
    char buf[4] = {0};
    int bad = file_write(fd, "abc", 3, 0, -1) != 3 || file_read(fd, buf, 3, 0, -1) != 3 ||
              strcmp(buf, "abc") != 0;
    close(fd);
    return (void *)(intptr_t)bad;
}

static void test_from_plain_pthread(void **state)
{
    (void)state;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, pthread_io, NULL), 0);
    void *r = (void *)1;
    pthread_join(t, &r);
    assert_null(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_who_does_the_io),
        cmocka_unit_test(test_positioned),
        cmocka_unit_test(test_current_position),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_big_file_while_ticking),
        cmocka_unit_test(test_shared_stack_buffers),
        cmocka_unit_test(test_over_before_start),
        cmocka_unit_test(test_kill_and_deadline_in_flight),
        cmocka_unit_test(test_from_plain_pthread),
    };
    return cmocka_run_group_tests_name("file", tests, NULL, NULL);
}
