/* fuzz_fdflags.c — libgreen-patch's view of an fd's flags (src/patch/fd.c), driven by a
 * byte string, against a model.
 *
 * libgreen makes the fds its green threads wait on O_NONBLOCK underneath; the program
 * must still see the flags it set. Linked with libgreen-patch.so (as tests/test_patch.c
 * is), a green thread runs a sequence of pipe2, socketpair, socket, fcntl(F_SETFL) of
 * O_NONBLOCK, ioctl(FIONBIO), dup, dup2, dup3, fcntl(F_DUPFD), close, reads and wake-ups,
 * on at most 16 live fds, each op two bytes. The model keeps each number's O_NONBLOCK as
 * the program set it (at creation, by F_SETFL or FIONBIO through that number, copied by
 * dup*: the view is per number, see fd.c) and which open file it refers to (pipe ends
 * and socket pairs: their peers). After each op:
 *  - fcntl(F_GETFL) of every live number has O_NONBLOCK exactly when the model says;
 * and the reads check what the view means:
 *  - a read of an empty pipe or socket whose peer is gone returns 0 (EOF) at once;
 *  - one the model says is non-blocking fails with EAGAIN at once;
 *  - one it says is blocking parks: in a 1 ms green_timeout_push scope it fails with
 *    ETIMEDOUT (not EAGAIN), and a green thread made ready before it has run meanwhile;
 *  - a blocking read that a second green thread's write to the peer wakes returns that
 *    byte (the hub's wait on that number follows the number's current file);
 * At the end every live fd is closed and nothing is left alive.
 * Run by libFuzzer (make fuzz) or over the committed corpus (make test).
 */
#include <green.h>


#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHECK(c)                                                                     \
    do {                                                                             \
        if (!(c)) {                                                                  \
            fprintf(stderr, "fuzz_fdflags: %s (line %d, op %d)\n", #c, __LINE__, op_no); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

#define NSLOT 16
#define NFILE 520
#define DUP_BASE 200 /* dup2/dup3 targets: DUP_BASE.. DUP_BASE+15, or a live number */

enum kind { K_PIPE_R, K_PIPE_W, K_PAIR, K_OTHER };

struct file {         /* an open file of the model */
    enum kind kind;
    int peer;         /* the other end's file (pipes, socket pairs), -1 none */
    int refs;         /* live numbers that refer to it */
};
struct slot {
    int fd;           /* -1: free */
    int file;
    int nb;           /* the O_NONBLOCK the program sees */
};

static struct file files[NFILE];
static struct slot slots[NSLOT];
static int nfiles, op_no;
static const uint8_t *prog;
static size_t prog_len, prog_pos;

static uint8_t next_byte(void) { return prog_pos < prog_len ? prog[prog_pos++] : 0; }

static int live(void)
{
    int n = 0;
    for (int i = 0; i < NSLOT; i++)
        n += slots[i].fd >= 0;
    return n;
}

static int free_slot(void)
{
    for (int i = 0; i < NSLOT; i++)
        if (slots[i].fd < 0)
            return i;
    return -1;
}

/* the k-th live slot (k taken modulo their count), -1 when none */
static int pick(uint8_t k)
{
    int n = live();
    if (!n)
        return -1;
    k %= (uint8_t)n;
    for (int i = 0; i < NSLOT; i++)
        if (slots[i].fd >= 0 && k-- == 0)
            return i;
    return -1;
}

static int slot_of_fd(int fd)
{
    for (int i = 0; i < NSLOT; i++)
        if (slots[i].fd == fd)
            return i;
    return -1;
}

static int new_file(enum kind kind)
{
    CHECK(nfiles < NFILE);
    files[nfiles] = (struct file){.kind = kind, .peer = -1, .refs = 0};
    return nfiles++;
}

static void bind_slot(int s, int fd, int file, int nb)
{
    slots[s] = (struct slot){.fd = fd, .file = file, .nb = nb};
    files[file].refs++;
}

/* the number of slot s is gone (closed, or replaced by dup2/dup3) */
static void drop_slot(int s)
{
    files[slots[s].file].refs--;
    slots[s].fd = -1;
}

static void check_flags(void)
{
    for (int i = 0; i < NSLOT; i++) {
        if (slots[i].fd < 0)
            continue;
        int fl = fcntl(slots[i].fd, F_GETFL);
        CHECK(fl >= 0);
        if (!!(fl & O_NONBLOCK) != slots[i].nb)
            fprintf(stderr, "fuzz_fdflags: fd %d: F_GETFL says %s, the program set %s\n", slots[i].fd,
                    fl & O_NONBLOCK ? "O_NONBLOCK" : "blocking", slots[i].nb ? "O_NONBLOCK" : "blocking");
        CHECK(!!(fl & O_NONBLOCK) == slots[i].nb);
    }
}

static int readable(int s) { return files[slots[s].file].kind == K_PIPE_R || files[slots[s].file].kind == K_PAIR; }

/* a live number of file f that can write to it, -1 when none */
static int writer_of(int f)
{
    for (int i = 0; i < NSLOT; i++)
        if (slots[i].fd >= 0 && slots[i].file == f)
            return slots[i].fd;
    return -1;
}

static void *mark(void *arg)
{
    *(int *)arg = 1;
    return NULL;
}

static void check_read(int s)
{
    if (!readable(s))
        return;
    int peer = files[slots[s].file].peer;
    char c;
    errno = 0;
    if (files[peer].refs == 0) { /* the other end is closed: EOF */
        CHECK(read(slots[s].fd, &c, 1) == 0);
        return;
    }
    if (slots[s].nb) {
        int64_t t0 = green_now();
        CHECK(read(slots[s].fd, &c, 1) == -1 && errno == EAGAIN);
        CHECK(green_now() - t0 < 1000);
        return;
    }
    int ran = 0; /* a green thread ready meanwhile runs: the read parked */
    green_t g = green_spawn(mark, &ran);
    CHECK(g != NULL);
    CHECK(green_timeout_push(1) == 0);
    ssize_t r = read(slots[s].fd, &c, 1);
    int e = errno;
    CHECK(green_timeout_pop() == 0);
    if (!(r == -1 && e == ETIMEDOUT))
        fprintf(stderr, "fuzz_fdflags: blocking read of fd %d: %zd, %s\n", slots[s].fd, r, strerror(e));
    CHECK(r == -1 && e == ETIMEDOUT);
    CHECK(ran == 1);
    CHECK(green_join(g, NULL, -1) == 0);
}

struct wake { int fd; };

static void *write_one(void *arg)
{
    struct wake *w = arg;
    green_yield();
    char c = 'x';
    if (write(w->fd, &c, 1) != 1)
        abort();
    return NULL;
}

/* a blocking read parks and a write to the peer by another green thread wakes it */
static void check_wake(int s)
{
    if (!readable(s) || slots[s].nb)
        return;
    int peer = files[slots[s].file].peer;
    struct wake w = {.fd = writer_of(peer)};
    if (w.fd < 0)
        return;
    green_t g = green_spawn(write_one, &w);
    CHECK(g != NULL);
    CHECK(green_timeout_push(2000) == 0);
    char c = 0;
    ssize_t r = read(slots[s].fd, &c, 1);
    int e = errno;
    CHECK(green_timeout_pop() == 0);
    if (r != 1)
        fprintf(stderr, "fuzz_fdflags: woken read of fd %d: %zd, %s\n", slots[s].fd, r, strerror(e));
    CHECK(r == 1 && c == 'x');
    CHECK(green_join(g, NULL, -1) == 0);
}

/* dup2/dup3's target: a live number (replaced) or a number of DUP_BASE.. */
static int target_of(uint8_t b)
{
    if (b & 0x80) {
        int s = pick(b);
        if (s >= 0)
            return slots[s].fd;
    }
    return DUP_BASE + b % 16;
}

static void do_dup(int how, int s, uint8_t b)
{
    int old = slots[s].fd, target = -1, fd;
    if (how == 0) {
        fd = dup(old);
    } else if (how == 3) {
        fd = fcntl(old, b & 1 ? F_DUPFD_CLOEXEC : F_DUPFD, DUP_BASE);
    } else {
        target = target_of(b);
        if (how == 2 && target == old) {
            CHECK(dup3(old, target, 0) == -1 && errno == EINVAL);
            return;
        }
        int ts = slot_of_fd(target);
        if (ts < 0 && free_slot() < 0)
            return; /* no room to track a new number */
        fd = how == 1 ? dup2(old, target) : dup3(old, target, b & 1 ? O_CLOEXEC : 0);
        CHECK(fd == target);
        if (ts >= 0) {
            if (ts == s)
                return; /* dup2 of a number onto itself: nothing happens */
            int file = slots[s].file, nb = slots[s].nb;
            drop_slot(ts);
            bind_slot(ts, fd, file, nb);
            return;
        }
    }
    CHECK(fd >= 0);
    int ns = free_slot();
    CHECK(ns >= 0);
    bind_slot(ns, fd, slots[s].file, slots[s].nb);
}

static void run_op(uint8_t op, uint8_t arg)
{
    int nb = arg & 1, s;
    switch (op % 12) {
    case 0: { /* pipe2 */
        if (live() > NSLOT - 2)
            return;
        int p[2];
        CHECK(pipe2(p, nb ? O_NONBLOCK : 0) == 0);
        int r = new_file(K_PIPE_R), w = new_file(K_PIPE_W);
        files[r].peer = w;
        files[w].peer = r;
        bind_slot(free_slot(), p[0], r, nb);
        bind_slot(free_slot(), p[1], w, nb);
        return;
    }
    case 1: { /* socketpair */
        if (live() > NSLOT - 2)
            return;
        int sv[2];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | (nb ? SOCK_NONBLOCK : 0), 0, sv) == 0);
        int a = new_file(K_PAIR), b = new_file(K_PAIR);
        files[a].peer = b;
        files[b].peer = a;
        bind_slot(free_slot(), sv[0], a, nb);
        bind_slot(free_slot(), sv[1], b, nb);
        return;
    }
    case 2: { /* a socket alone */
        if (live() > NSLOT - 1)
            return;
        int fd = socket(arg & 2 ? AF_INET : AF_UNIX, (arg & 4 ? SOCK_DGRAM : SOCK_STREAM) | (nb ? SOCK_NONBLOCK : 0), 0);
        CHECK(fd >= 0);
        bind_slot(free_slot(), fd, new_file(K_OTHER), nb);
        return;
    }
    case 3: /* F_SETFL: O_NONBLOCK on or off, the other flags kept */
        if ((s = pick(arg >> 1)) < 0)
            return;
        {
            int fl = fcntl(slots[s].fd, F_GETFL);
            CHECK(fl >= 0);
            CHECK(fcntl(slots[s].fd, F_SETFL, nb ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) == 0);
            slots[s].nb = nb;
        }
        return;
    case 4: /* ioctl FIONBIO */
        if ((s = pick(arg >> 1)) < 0)
            return;
        CHECK(ioctl(slots[s].fd, FIONBIO, &nb) == 0);
        slots[s].nb = nb;
        return;
    case 5: case 6: case 7: case 8: { /* dup, dup2, dup3, F_DUPFD */
        if ((s = pick(arg)) < 0)
            return;
        uint8_t b = next_byte();
        if (live() > NSLOT - 1 && op % 12 != 6 && op % 12 != 7)
            return;
        do_dup(op % 12 - 5, s, b);
        return;
    }
    case 9: /* close */
        if ((s = pick(arg)) < 0)
            return;
        CHECK(close(slots[s].fd) == 0);
        drop_slot(s);
        return;
    case 10: /* read */
        if ((s = pick(arg)) >= 0)
            check_read(s);
        return;
    case 11: /* a read woken by a write */
        if ((s = pick(arg)) >= 0)
            check_wake(s);
        return;
    }
}

static void *run(void *arg)
{
    (void)arg;
    while (prog_pos < prog_len) {
        op_no++;
        uint8_t op = next_byte(), a = next_byte();
        run_op(op, a);
        check_flags();
    }
    for (int i = 0; i < NSLOT; i++)
        if (slots[i].fd >= 0) {
            CHECK(close(slots[i].fd) == 0);
            drop_slot(i);
        }
    for (int f = 0; f < nfiles; f++)
        CHECK(files[f].refs == 0);
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 512)
        return 0;
    prog = data;
    prog_len = size;
    prog_pos = 0;
    nfiles = op_no = 0;
    for (int i = 0; i < NSLOT; i++)
        slots[i].fd = -1;
    green_t g = green_spawn(run, NULL);
    CHECK(g != NULL);
    CHECK(green_join(g, NULL, -1) == 0);
    green_stats_t st;
    CHECK(green_stats(&st) == 0 && st.alive == 0 && st.ready == 0 && st.waiting == 0);
    return 0;
}
