/* Fault injection (issue 13): every allocation and mapping of libgreen's that a scenario
 * reaches is made to fail, one run per allocation (alone, two in a row, then all from
 * there on), and the API must answer with its documented error (-1/ENOMEM, NULL+ENOMEM,
 * EAI_MEMORY) and stay usable: no crash, no hang (alarm), no leak (the live allocations
 * and mappings made during a run are tracked), no lost or doubled element, nothing done
 * by a call that said it failed, the hub idle at the end. Cold runs do it in a fresh
 * forked process (first uses: the hub, its loop, its caches), warm runs with the caches
 * filled. Then regression tests of the bugs the runs found, fd exhaustion (RLIMIT_NOFILE:
 * connect and accept storms) and peers that reset mid-write.
 *
 * How: this program defines malloc, calloc, realloc, free, mmap and munmap. libgreen is
 * linked in statically, so its calls reach these; an allocation is "libgreen's" when its
 * return address is in this executable's text (glibc's, cmocka's, libunwind's and
 * c-ares' own allocations pass through unfailed and uncounted). Not under sanitizers
 * (their runtimes own malloc): the leak check is this file's own. FAULT_ONLY=name runs
 * one scenario; the argument "warm" only the warm runs. */
#include "green_test.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern char __executable_start[], etext[];

/* libgreen internals, to name leak sites and flush the stack pool */
int green__symtab_load(void);
const char *green__symtab_name(uintptr_t pc, uintptr_t *off);

/* ---- the injector ---- */

static atomic_int fi_armed;         /* count (and fail) libgreen's allocations */
static atomic_long fi_count;        /* libgreen's allocations since arming */
static atomic_long fi_target;       /* the first to fail (1-based), 0: none */
static atomic_long fi_span = 1;     /* how many in a row fail from there */
/* span STICKY: every one from the target on, until the scenario has seen 8 calls fail
 * (a bound, so that its retry loops end) */
#define STICKY (1L << 40)
static atomic_int fi_reported;      /* failures the scenario saw */
static atomic_long fi_mapped;       /* bytes libgreen has mapped, less those it unmapped */
static atomic_int fi_fired;         /* the target was reached and failed */
static atomic_int fi_track;         /* record live allocations */

#define MAX_SITES 512
/* in memory shared with the forked children of the cold runs */
static struct fi_shared {
    uintptr_t sites[MAX_SITES]; /* distinct sites reached */
    unsigned char failed[MAX_SITES];
    atomic_int nsites;
    atomic_long count; /* a child's allocations */
    unsigned char scen_seen[MAX_SITES], scen_failed[MAX_SITES]; /* the current scenario's */
} *S;
#define fi_sites (S->sites)
#define fi_site_failed (S->failed)
#define fi_nsites (S->nsites)
static atomic_flag fi_lock = ATOMIC_FLAG_INIT;

static void lock(void)
{
    while (atomic_flag_test_and_set_explicit(&fi_lock, memory_order_acquire)) {
    }
}
static void unlock(void) { atomic_flag_clear_explicit(&fi_lock, memory_order_release); }

static int ours(uintptr_t ra)
{
    return ra >= (uintptr_t)__executable_start && ra < (uintptr_t)etext;
}

/* the site's index (added when new); under the lock */
static int site_index(uintptr_t ra)
{
    int n = atomic_load(&fi_nsites);
    for (int i = 0; i < n; i++)
        if (fi_sites[i] == ra)
            return i;
    if (n == MAX_SITES)
        return -1;
    fi_sites[n] = ra;
    atomic_store(&fi_nsites, n + 1);
    return n;
}

/* Should this allocation fail? Counts it when armed. */
static int fi_fail(uintptr_t ra)
{
    if (!atomic_load_explicit(&fi_armed, memory_order_relaxed) || !ours(ra))
        return 0;
    long n = atomic_fetch_add(&fi_count, 1) + 1;
    long t = atomic_load(&fi_target);
    int fail = t && n >= t && n < t + atomic_load(&fi_span);
    lock();
    int i = site_index(ra);
    if (i >= 0) {
        S->scen_seen[i] = 1;
        if (fail)
            fi_site_failed[i] = S->scen_failed[i] = 1;
    }
    unlock();
    if (fail)
        atomic_store(&fi_fired, 1);
    return fail;
}

/* Live allocations made by libgreen while tracking: open addressing, pointer -> site. */
#define LIVE_CAP 65536
static struct live {
    void *p;
    uintptr_t site;
} fi_live[LIVE_CAP];
static long fi_nlive;
#define TOMB ((void *)1)

static size_t hash(void *p) { return ((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull >> 48; }

static void live_add(void *p, uintptr_t site)
{
    lock();
    size_t i = hash(p);
    while (fi_live[i].p && fi_live[i].p != TOMB)
        i = (i + 1) % LIVE_CAP;
    fi_live[i] = (struct live){p, site};
    fi_nlive++;
    unlock();
}

static void live_del(void *p)
{
    if (!p)
        return;
    lock();
    if (fi_nlive) {
        for (size_t i = hash(p); fi_live[i].p; i = (i + 1) % LIVE_CAP)
            if (fi_live[i].p == p) {
                fi_live[i].p = TOMB;
                fi_nlive--;
                break;
            }
    }
    unlock();
}

static void note(void *p, uintptr_t ra)
{
    if (p && atomic_load_explicit(&fi_track, memory_order_relaxed) && ours(ra))
        live_add(p, ra);
}

#define RA() ((uintptr_t)__builtin_return_address(0))

void *malloc(size_t n)
{
    uintptr_t ra = RA();
    if (fi_fail(ra)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = __libc_malloc(n);
    note(p, ra);
    return p;
}

void *calloc(size_t n, size_t m)
{
    uintptr_t ra = RA();
    if (fi_fail(ra)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = __libc_calloc(n, m);
    note(p, ra);
    return p;
}

void *realloc(void *old, size_t n)
{
    uintptr_t ra = RA();
    if (fi_fail(ra)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = __libc_realloc(old, n);
    if (p && old)
        live_del(old);
    note(p, ra);
    return p;
}

void free(void *p)
{
    live_del(p);
    __libc_free(p);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (fi_fail(RA())) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    uintptr_t ra = RA();
    long r = syscall(SYS_mmap, addr, len, prot, flags, fd, off);
    if (r == -1)
        return MAP_FAILED;
    note((void *)r, ra); /* libgreen unmaps whole mappings: tracked like allocations */
    if (ours(ra))
        atomic_fetch_add(&fi_mapped, (long)len);
    return (void *)r;
}

int munmap(void *addr, size_t len)
{
    live_del(addr);
    int r = (int)syscall(SYS_munmap, addr, len);
    if (r == 0 && ours(RA()))
        atomic_fetch_sub(&fi_mapped, (long)len);
    return r;
}

/* ---- checks a scenario makes ---- */

/* A call failed: only allowed as the injected failure, with errno e. */
#define FAILED_WITH(e)                                                                   \
    do {                                                                                 \
        int e_ = errno;                                                                  \
        if (!atomic_load(&fi_fired) || e_ != (e))                                        \
            fail_msg("%s:%d: failed with errno %d (%s), injected: %d", __FILE__, __LINE__, \
                     e_, strerror(e_), atomic_load(&fi_fired));                          \
        if (atomic_fetch_add(&fi_reported, 1) + 1 >= 8 && atomic_load(&fi_span) == STICKY) \
            atomic_store(&fi_target, 0);                                                 \
    } while (0)

/* `call` returns 0, or -1/ENOMEM as the injected failure, in which case it is tried
 * again (the failure is one-shot, so the next try must succeed). */
#define RETRY(call)                                       \
    do {                                                  \
        int tries_ = 0;                                   \
        while ((call) != 0) {                             \
            FAILED_WITH(ENOMEM);                          \
            assert_true(++tries_ <= 8);                   \
        }                                                 \
    } while (0)

static void join_ok(green_t g, void **res)
{
    RETRY(green_join(g, res, -1));
}

/* ---- scenarios ---- */

/* spawn, join, switch, names: both stack modes; the shared-mode bodies use more than
 * the inline copy so that their copies go to the heap */
static int sj_ran;

static void *sj_body(void *arg)
{
    sj_ran++;
    volatile char deep[2048];
    for (int k = 0; k < 3; k++) {
        deep[k * 500] = (char)k;
        if (green_yield() != 0)
            FAILED_WITH(ENOMEM);
    }
    if (green_sleep(1) != 0)
        FAILED_WITH(ENOMEM);
    (void)deep[0];
    return (char *)arg + 100;
}

static void *sw_body(void *arg)
{
    volatile char deep[1024];
    deep[0] = 1;
    void *v = green_switch(green_parent(green_current()), arg);
    (void)deep[0];
    return v;
}

static void spawn_join(int mode)
{
    green_attr_t attr = {.stack_mode = mode, .name = "sj"};
    green_t gs[4];
    int spawned = 0;
    sj_ran = 0;
    for (int i = 0; i < 4; i++) {
        spawned += (gs[i] = green_spawn_attr(sj_body, (char *)NULL + i, &attr)) != NULL;
        if (!gs[i])
            FAILED_WITH(ENOMEM);
        else if (i == 1 && green_set_name(gs[i], "renamed") != 0)
            FAILED_WITH(ENOMEM);
    }
    for (int i = 0; i < 4; i++)
        if (gs[i]) {
            void *r = NULL;
            join_ok(gs[i], &r);
            assert_ptr_equal(r, (char *)NULL + i + 100);
        }
    assert_int_equal(sj_ran, spawned); /* a spawn that failed runs nothing */
    /* greenlet's primitive: new, switch in and back, switch to finish, destroy */
    green_t g = green_new(sw_body, (void *)7, &attr);
    if (!g) {
        FAILED_WITH(ENOMEM);
        return;
    }
    void *v = green_switch(g, NULL);
    if (v == NULL) { /* not started: ENOMEM before the switch */
        FAILED_WITH(ENOMEM);
        v = green_switch(g, NULL);
    }
    assert_ptr_equal(v, (void *)7);
    errno = 0;
    v = green_switch(g, (void *)9);
    if (v == NULL && errno) {
        FAILED_WITH(ENOMEM);
        v = green_switch(g, (void *)9);
    }
    assert_ptr_equal(v, (void *)9);
    assert_int_equal(green_dead(g), 1);
    assert_int_equal(green_destroy(g), 0);
}

static void sc_spawn_dedicated(void) { spawn_join(GREEN_STACK_DEDICATED); }
static void sc_spawn_shared(void) { spawn_join(GREEN_STACK_SHARED); }

/* Channels: a producer sends 12 values (a failed send is not retried: it must not
 * arrive), then closes; the receiver gets exactly the ones sent, in order. */
struct chan_run {
    green_chan_t *ch;
    size_t esize;
    int sent[12], nsent;
};

static void *producer(void *arg)
{
    struct chan_run *r = arg;
    char elem[256] = {0};
    for (int i = 0; i < 12; i++) {
        memcpy(elem, &i, sizeof i);
        if (green_chan_send(r->ch, elem, -1) == 0)
            r->sent[r->nsent++] = i;
        else
            FAILED_WITH(ENOMEM);
    }
    assert_int_equal(green_chan_close(r->ch), 0);
    return NULL;
}

static void chan_run(size_t esize, size_t cap)
{
    struct chan_run r = {.esize = esize};
    r.ch = green_chan_new(esize, cap);
    if (!r.ch) {
        FAILED_WITH(ENOMEM);
        return;
    }
    green_t p = green_spawn(producer, &r);
    if (!p) {
        FAILED_WITH(ENOMEM);
        assert_int_equal(green_chan_close(r.ch), 0);
    }
    int got[12], ngot = 0;
    char elem[256];
    for (;;) {
        if (green_chan_recv(r.ch, elem, -1) == 0) {
            assert_true(ngot < 12);
            memcpy(&got[ngot++], elem, sizeof(int));
        } else if (errno == EPIPE) {
            break;
        } else {
            FAILED_WITH(ENOMEM);
        }
    }
    if (p)
        join_ok(p, NULL);
    assert_int_equal(ngot, r.nsent);
    assert_memory_equal(got, r.sent, sizeof(int) * (size_t)ngot);
    assert_int_equal(green_chan_free(r.ch), 0);
}

/* The producer on a plain OS thread (its hub made when it first waits): remote wakes
 * both ways. */
static void *thread_producer(void *arg)
{
    producer(arg);
    return NULL;
}

static void sc_chan_threads(void)
{
    for (size_t cap = 0; cap < 2; cap++) {
        struct chan_run r = {.esize = 200};
        if (!(r.ch = green_chan_new(200, cap))) {
            FAILED_WITH(ENOMEM);
            continue;
        }
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, thread_producer, &r), 0);
        int got[12], ngot = 0;
        char elem[256];
        for (;;) {
            if (green_chan_recv(r.ch, elem, -1) == 0) {
                assert_true(ngot < 12);
                memcpy(&got[ngot++], elem, sizeof(int));
            } else if (errno == EPIPE) {
                break;
            } else {
                FAILED_WITH(ENOMEM);
            }
        }
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(ngot, r.nsent);
        assert_memory_equal(got, r.sent, sizeof(int) * (size_t)ngot);
        assert_int_equal(green_chan_free(r.ch), 0);
    }
}

static void sc_chan(void)
{
    chan_run(sizeof(int), 0);
    chan_run(sizeof(int), 2);
    chan_run(200, 0); /* elements bigger than a waiter record's slot */
    chan_run(200, 3);
}

/* green_choose over three channels (two producers each), an event, a future, a
 * green thread's end, with more clauses than fit inline; then a timeout. */
struct choose_run {
    green_chan_t *ch[3];
    int sent[3];
    green_event_t ev;
    green_future_t fut;
};

struct prod_arg {
    struct choose_run *r;
    int c;
};

static void *choose_producer(void *arg)
{
    struct prod_arg *a = arg;
    char elem[200] = {0};
    for (int i = 0; i < 4; i++) {
        elem[0] = (char)i;
        if (green_chan_send(a->r->ch[a->c], elem, -1) == 0)
            a->r->sent[a->c]++;
        else
            FAILED_WITH(ENOMEM);
    }
    return NULL;
}

static void *setter(void *arg)
{
    struct choose_run *r = arg;
    if (green_sleep(1) != 0)
        FAILED_WITH(ENOMEM);
    assert_int_equal(green_event_set(&r->ev), 0);
    assert_int_equal(green_future_set(&r->fut, (void *)5), 0);
    return NULL;
}

/* Receives int64 elements into r->sent until the close. */
static void *send_receiver(void *arg)
{
    struct chan_run *r = arg;
    int64_t v;
    for (;;) {
        if (green_chan_recv(r->ch, &v, -1) == 0) {
            assert_true(r->nsent < 12);
            r->sent[r->nsent++] = (int)v;
        } else if (errno == EPIPE) {
            return NULL;
        } else {
            FAILED_WITH(ENOMEM);
        }
    }
}

static void sc_choose(void)
{
    struct choose_run r = {0};
    size_t es[3] = {8, 8, 200};
    size_t cap[3] = {0, 1, 0};
    int nch = 0;
    for (; nch < 3; nch++)
        if (!(r.ch[nch] = green_chan_new(es[nch], cap[nch]))) {
            FAILED_WITH(ENOMEM);
            break;
        }
    assert_int_equal(green_event_init(&r.ev), 0);
    assert_int_equal(green_future_init(&r.fut), 0);
    struct prod_arg pa[6];
    green_t ps[6] = {0};
    int np = 0;
    for (int i = 0; i < 2 * nch; i++) {
        pa[i] = (struct prod_arg){&r, i % nch};
        if (!(ps[np] = green_spawn(choose_producer, &pa[i])))
            FAILED_WITH(ENOMEM);
        else
            np++;
    }
    green_t st = green_spawn(setter, &r);
    if (!st)
        FAILED_WITH(ENOMEM);
    /* receive until every producer is done and its elements taken */
    int got[3] = {0};
    int seen_ev = 0, seen_fut = 0, seen_dead = 0;
    char elem[200];
    for (;;) {
        int total_sent = 0, total_got = 0, alive = 0;
        for (int i = 0; i < np; i++)
            alive += green_dead(ps[i]) == 0;
        for (int c = 0; c < nch; c++)
            total_sent += r.sent[c], total_got += got[c];
        if (!alive && total_got == total_sent && (!st || (seen_ev && seen_fut && seen_dead)))
            break;
        green_clause_t cl[8];
        int n = 0, idx[8];
        for (int c = 0; c < nch; c++) {
            idx[n] = c;
            cl[n++] = (green_clause_t){.op = GREEN_CHAN_RECV, .ch = r.ch[c], .elem = elem};
        }
        if (st && !seen_ev) {
            idx[n] = 10;
            cl[n++] = (green_clause_t){.op = GREEN_WAIT_EVENT, .event = &r.ev};
        }
        if (st && !seen_fut) {
            idx[n] = 11;
            cl[n++] = (green_clause_t){.op = GREEN_WAIT_FUTURE, .future = &r.fut};
        }
        if (st && !seen_dead) {
            idx[n] = 12;
            cl[n++] = (green_clause_t){.op = GREEN_WAIT_DEAD, .g = st};
        }
        int k = green_choose(cl, n, green_after(5000));
        if (k < 0) {
            if (errno == ETIMEDOUT) /* producers done meanwhile, nothing left */
                assert_true(!alive || total_got < total_sent || st);
            FAILED_WITH(ENOMEM);
            continue;
        }
        assert_int_equal(cl[k].err, 0);
        if (idx[k] < 3)
            got[idx[k]]++;
        else if (idx[k] == 10)
            seen_ev = 1;
        else if (idx[k] == 11) {
            seen_fut = 1;
            assert_ptr_equal(cl[k].value, (void *)5);
        } else
            seen_dead = 1;
    }
    for (int c = 0; c < nch; c++)
        assert_int_equal(got[c], r.sent[c]);
    for (int i = 0; i < np; i++)
        join_ok(ps[i], NULL);
    if (st)
        join_ok(st, NULL);
    /* nothing ready: the timeout */
    green_clause_t one = {.op = GREEN_WAIT_EVENT, .event = &r.ev};
    assert_int_equal(green_event_clear(&r.ev), 0);
    errno = 0;
    assert_int_equal(green_choose(&one, 1, green_after(2)), -1);
    if (errno != ETIMEDOUT)
        FAILED_WITH(ENOMEM);
    /* sends by choose: one that failed delivered nothing (its retry would deliver it
     * twice); a receiver takes them until the close */
    if (nch) {
        struct chan_run cr = {.ch = r.ch[0], .esize = 8};
        green_t rc = green_spawn(send_receiver, &cr);
        if (!rc)
            FAILED_WITH(ENOMEM);
        for (int i = 0; rc && i < 6; i++) {
            int64_t v = i;
            green_clause_t cl[5] = {{.op = GREEN_CHAN_SEND, .ch = r.ch[0], .elem = &v}};
            for (int k = 1; k < 5; k++) /* more than fit inline */
                cl[k] = (green_clause_t){.op = GREEN_WAIT_EVENT, .event = &r.ev};
            int k;
            while ((k = green_choose(cl, 5, green_after(5000))) < 0)
                FAILED_WITH(ENOMEM);
            assert_int_equal(k, 0);
            assert_int_equal(cl[0].err, 0);
        }
        assert_int_equal(green_chan_close(r.ch[0]), 0);
        if (rc) {
            join_ok(rc, NULL);
            assert_int_equal(cr.nsent, 6);
            for (int i = 0; i < 6; i++)
                assert_int_equal(cr.sent[i], i);
        }
    }
    for (int c = 0; c < nch; c++)
        assert_int_equal(green_chan_free(r.ch[c]), 0);
    assert_int_equal(green_event_destroy(&r.ev), 0);
    assert_int_equal(green_future_destroy(&r.fut), 0);
}

/* A group of at most 2: five members that sleep, then a kill and a join. */
static int members_ran, members_spawned;

static void *member(void *arg)
{
    (void)arg;
    members_ran++;
    if (green_sleep(5) != 0 && errno != ECANCELED)
        FAILED_WITH(ENOMEM);
    return NULL;
}

static void sc_group(void)
{
    green_group_t grp;
    assert_int_equal(green_group_init(&grp, 2), 0);
    members_ran = members_spawned = 0;
    for (int i = 0; i < 5; i++)
        if (!green_group_spawn(&grp, member, NULL, -1))
            FAILED_WITH(ENOMEM);
        else
            members_spawned++;
    RETRY(green_group_join(&grp, -1));
    /* a spawn that failed runs nothing */
    assert_int_equal(members_ran, members_spawned);
    for (int i = 0; i < 3; i++)
        if (!green_group_spawn(&grp, member, NULL, -1))
            FAILED_WITH(ENOMEM);
    RETRY(green_group_kill(&grp));
    RETRY(green_group_join(&grp, -1));
    assert_int_equal(green_group_size(&grp), 0);
    /* no slot was lost: both are free at once */
    for (int i = 0; i < 2; i++)
        if (!green_group_spawn(&grp, member, NULL, 0))
            FAILED_WITH(ENOMEM);
    RETRY(green_group_join(&grp, -1));
    assert_int_equal(green_group_size(&grp), 0);
    assert_int_equal(green_group_destroy(&grp), 0);
}

/* mutex, condition, semaphore, event: a hand-off among three green threads, with a
 * scoped deadline */
struct sync_run {
    green_mutex_t m;
    green_cond_t c;
    green_sem_t s;
    green_event_t ev;
    int flag;
};

static void *sync_a(void *arg)
{
    struct sync_run *r = arg;
    RETRY(green_mutex_lock(&r->m, -1));
    r->flag = 1;
    assert_int_equal(green_cond_signal(&r->c), 0);
    assert_int_equal(green_mutex_unlock(&r->m), 0);
    assert_int_equal(green_sem_release(&r->s), 0);
    return NULL;
}

static void *sync_b(void *arg)
{
    struct sync_run *r = arg;
    int pushed = green_timeout_push(5000) == 0;
    if (!pushed)
        FAILED_WITH(ENOMEM);
    RETRY(green_event_wait(&r->ev, -1));
    if (pushed)
        assert_int_equal(green_timeout_pop(), 0);
    return NULL;
}

static void sc_sync(void)
{
    struct sync_run r = {0};
    assert_int_equal(green_mutex_init(&r.m, GREEN_MUTEX_NORMAL), 0);
    assert_int_equal(green_cond_init(&r.c), 0);
    assert_int_equal(green_sem_init(&r.s, 0), 0);
    assert_int_equal(green_event_init(&r.ev), 0);
    green_t b = green_spawn(sync_b, &r);
    if (!b)
        FAILED_WITH(ENOMEM);
    RETRY(green_mutex_lock(&r.m, -1));
    green_t a = green_spawn(sync_a, &r);
    if (!a) {
        FAILED_WITH(ENOMEM);
        r.flag = 1;
        assert_int_equal(green_sem_release(&r.s), 0);
    }
    while (!r.flag)
        if (green_cond_wait(&r.c, &r.m, -1) != 0)
            FAILED_WITH(ENOMEM); /* relocked all the same */
    assert_int_equal(green_mutex_unlock(&r.m), 0);
    RETRY(green_sem_acquire(&r.s, -1));
    assert_int_equal(green_event_set(&r.ev), 0);
    if (a)
        join_ok(a, NULL);
    if (b)
        join_ok(b, NULL);
    assert_int_equal(green_mutex_destroy(&r.m), 0);
    assert_int_equal(green_cond_destroy(&r.c), 0);
    assert_int_equal(green_sem_destroy(&r.s), 0);
    assert_int_equal(green_event_destroy(&r.ev), 0);
}

/* the thread pool, from three green threads at once */
static void *twice(void *arg) { return (char *)arg + (intptr_t)arg; }

/* A job's runs, and the calls that said it ran: a call that failed must not have run
 * its job (the caller would run it again). */
static atomic_int pool_ran, pool_said;

static void *twice_counted(void *arg)
{
    atomic_fetch_add(&pool_ran, 1);
    return twice(arg);
}

static void *pool_user(void *arg)
{
    void *res = NULL;
    RETRY(green_run_blocking(twice_counted, arg, &res, -1));
    atomic_fetch_add(&pool_said, 1);
    assert_ptr_equal(res, (char *)arg + (intptr_t)arg);
    return NULL;
}

static void sc_pool(void)
{
    green_t gs[3];
    for (int i = 0; i < 3; i++)
        if (!(gs[i] = green_spawn(pool_user, (char *)NULL + i + 1)))
            FAILED_WITH(ENOMEM);
    for (int i = 0; i < 3; i++)
        if (gs[i])
            join_ok(gs[i], NULL);
    sleep_os_ms(5); /* a job run behind its caller's back would have run by now */
    assert_int_equal(atomic_load(&pool_ran), atomic_load(&pool_said));
    atomic_store(&pool_ran, 0);
    atomic_store(&pool_said, 0);
}

/* DNS through the pool: a name, and a numeric one */
static void sc_dns(void)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    const char *names[] = {"localhost", "127.0.0.1"};
    for (int i = 0; i < 2; i++) {
        int rc = green_getaddrinfo(names[i], "80", &hints, &res, green_after(5000));
        if (rc == EAI_MEMORY || (rc == EAI_SYSTEM && errno == ENOMEM)) {
            errno = ENOMEM;
            FAILED_WITH(ENOMEM);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_non_null(res);
        assert_int_equal(((struct sockaddr_in *)(void *)res->ai_addr)->sin_addr.s_addr,
                         htonl(INADDR_LOOPBACK));
        green_freeaddrinfo(res);
    }
}

/* c-ares on the hub (when built in; else the pool again) */
static void sc_dns_ares(void)
{
    setenv("GREEN_RESOLVER", "ares", 1);
    sc_dns();
    unsetenv("GREEN_RESOLVER");
}

/* A server's handlers echo; three clients. A connection the server could not give a
 * handler is closed: its client sees EOF, and only when a failure was injected. */
static void echo(int fd, void *arg)
{
    (void)arg;
    char buf[64];
    ssize_t n;
    while ((n = green_read(fd, buf, sizeof buf, green_after(5000))) > 0)
        if (green_write(fd, buf, (size_t)n, green_after(5000)) != n)
            break;
}

static char srv_port[16];

static void *client(void *arg)
{
    (void)arg;
    int fd = green_tcp_connect("127.0.0.1", srv_port, green_after(5000));
    if (fd < 0) {
        FAILED_WITH(ENOMEM);
        return NULL;
    }
    char buf[6] = {0};
    ssize_t n = green_write(fd, "hello", 5, green_after(5000));
    if (n == 5)
        n = green_read(fd, buf, 5, green_after(5000));
    if (n == 5) {
        ssize_t m = n;
        while (m < 5 && (n = green_read(fd, buf + m, 5 - (size_t)m, green_after(5000))) > 0)
            m += n;
        assert_string_equal(buf, "hello");
    } else {
        /* dropped by the server: EOF or a reset */
        if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE)))
            errno = ENOMEM;
        FAILED_WITH(ENOMEM);
    }
    assert_int_equal(green_close(fd), 0);
    return NULL;
}

static void server_run(int threads)
{
    int lfd = green_tcp_listen("127.0.0.1", "0", 16);
    if (lfd < 0) {
        FAILED_WITH(ENOMEM);
        return;
    }
    snprintf(srv_port, sizeof srv_port, "%d", green_socket_port(lfd));
    /* one handler at a time: a permit lost would stall the next client */
    green_serve_opts_t opts = {.threads = threads, .max_conns = 1};
    green_server_t *srv = green_serve(lfd, echo, NULL, &opts);
    if (!srv) {
        FAILED_WITH(ENOMEM);
        assert_int_equal(green_close(lfd), 0);
        return;
    }
    green_t cs[4];
    for (int i = 0; i < 4; i++)
        if (!(cs[i] = green_spawn(client, NULL)))
            FAILED_WITH(ENOMEM);
    for (int i = 0; i < 4; i++)
        if (cs[i])
            join_ok(cs[i], NULL);
    RETRY(green_server_stop(srv, green_after(2000)));
    assert_int_equal(green_close(lfd), 0);
}

/* A server stopped at once by a new hub (no waiter record cached yet: the stop's own
 * waits allocate), with one connection in its handler, on one hub and on two. */
static void *serve_and_stop(void *arg)
{
    int threads = (int)(intptr_t)arg;
    int lfd = green_tcp_listen("127.0.0.1", "0", 16);
    if (lfd < 0) {
        FAILED_WITH(ENOMEM);
        return NULL;
    }
    green_serve_opts_t opts = {.threads = threads};
    green_server_t *srv = green_serve(lfd, echo, NULL, &opts);
    if (!srv) {
        FAILED_WITH(ENOMEM);
    } else {
        RETRY(green_server_stop(srv, green_after(1000)));
    }
    assert_int_equal(green_close(lfd), 0);
    return NULL;
}


static void sc_server_stop(void)
{
    for (intptr_t threads = 1; threads <= 2; threads++) {
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, serve_and_stop, (void *)threads), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
    }
}

/* The same from a shared-mode green thread beside another: their copies fail, the spare
 * is lent, and the stop's own wait fails with ENOMEM before its stopper has run. */
static void *stop_shared(void *arg)
{
    volatile char deep[2048];
    deep[0] = 1;
    serve_and_stop(arg);
    (void)deep[0];
    return NULL;
}

static void *pinger(void *arg)
{
    volatile char deep[2048];
    for (int i = 0; i < 20; i++) {
        deep[i] = (char)i;
        (void)deep[i];
        if (green_yield() != 0)
            FAILED_WITH(ENOMEM);
    }
    return arg;
}

static void sc_server_stop_shared(void)
{
    green_attr_t shared = {.stack_mode = GREEN_STACK_SHARED};
    green_t a = green_spawn_attr(stop_shared, (void *)1, &shared);
    if (!a)
        FAILED_WITH(ENOMEM);
    green_t b = green_spawn_attr(pinger, NULL, &shared);
    if (!b)
        FAILED_WITH(ENOMEM);
    if (a)
        join_ok(a, NULL);
    if (b)
        join_ok(b, NULL);
}

static void sc_server(void) { server_run(1); }
/* two hubs: the other on an OS thread of its own, with its SO_REUSEPORT listener */
static void sc_server2(void) { server_run(2); }

/* A new OS thread: its hub is made on first use (and freed when it exits). */
static void *fd_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c = 0;
    ssize_t n = green_read(fd, &c, 1, green_after(5000));
    if (n != 1)
        FAILED_WITH(ENOMEM);
    else
        assert_int_equal(c, 'x');
    return NULL;
}

static void *on_thread(void *arg)
{
    (void)arg;
    green_attr_t shared = {.stack_mode = GREEN_STACK_SHARED};
    green_t g = green_spawn(twice, (void *)3);
    if (!g) {
        FAILED_WITH(ENOMEM);
        return NULL;
    }
    /* the shared stack, timers and the poller's fds of a new hub */
    green_t s[2];
    for (int i = 0; i < 2; i++)
        if (!(s[i] = green_spawn_attr(sj_body, (char *)NULL + i, &shared)))
            FAILED_WITH(ENOMEM);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    green_t rd = green_spawn(fd_reader, (void *)(intptr_t)sv[0]);
    if (!rd)
        FAILED_WITH(ENOMEM);
    if (green_sleep(1) != 0)
        FAILED_WITH(ENOMEM);
    assert_int_equal(write(sv[1], "x", 1), 1);
    void *r = NULL;
    join_ok(g, &r);
    assert_ptr_equal(r, (void *)6);
    for (int i = 0; i < 2; i++)
        if (s[i]) {
            join_ok(s[i], &r);
            assert_ptr_equal(r, (char *)NULL + i + 100);
        }
    if (rd)
        join_ok(rd, NULL);
    assert_int_equal(green_close(sv[0]), 0);
    assert_int_equal(close(sv[1]), 0);
    return NULL;
}

static void sc_hub(void)
{
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, on_thread, NULL), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
}

/* Many dedicated stacks: more than the pool keeps hot, trimmed when the hub idles. */
static void *yielder(void *arg)
{
    if (green_yield() != 0)
        FAILED_WITH(ENOMEM);
    return arg;
}

static void sc_many(void)
{
    enum { N = 80 };
    green_t gs[N];
    for (int i = 0; i < N; i++)
        if (!(gs[i] = green_spawn(yielder, (char *)NULL + i)))
            FAILED_WITH(ENOMEM);
    for (int i = 0; i < N; i++)
        if (gs[i]) {
            void *r = NULL;
            join_ok(gs[i], &r);
            assert_ptr_equal(r, (char *)NULL + i);
        }
    if (green_sleep(1) != 0) /* the hub idles: cold stacks are trimmed */
        FAILED_WITH(ENOMEM);
}

/* A regular file through the pool (a bounce buffer each call). */
static char file_path[64];

static void sc_file(void)
{
    int fd = open(file_path, O_RDWR | O_TRUNC | O_CLOEXEC);
    assert_true(fd >= 0);
    char out[100], in[100] = {0};
    memset(out, 'f', sizeof out);
    ssize_t n = green_write(fd, out, sizeof out, -1);
    if (n != (ssize_t)sizeof out) {
        assert_int_equal(n, -1);
        FAILED_WITH(ENOMEM);
        RETRY(green_write(fd, out, sizeof out, -1) == (ssize_t)sizeof out ? 0 : -1);
    }
    /* a write that failed wrote nothing (its retry would write the bytes twice) */
    sleep_os_ms(5);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, sizeof out);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    while ((n = green_read(fd, in, sizeof in, -1)) != (ssize_t)sizeof in) {
        assert_int_equal(n, -1);
        FAILED_WITH(ENOMEM);
    }
    assert_memory_equal(in, out, sizeof in);
    assert_int_equal(green_close(fd), 0);
}

/* Signals: a green_signal_wait and a green_choose's signal clause, one delivery each. */
static void *sig_waiter(void *arg)
{
    (void)arg;
    int r = green_signal_wait(SIGUSR1, green_after(5000));
    if (r != SIGUSR1)
        FAILED_WITH(ENOMEM);
    return (void *)(intptr_t)(r == SIGUSR1);
}

static void drain(int signo)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signo);
    struct timespec zero = {0, 0};
    while (sigtimedwait(&set, NULL, &zero) == signo) {
    }
}

static void sc_signal(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
    green_t w = green_spawn(sig_waiter, NULL);
    if (!w)
        FAILED_WITH(ENOMEM);
    else if (green_yield() != 0)
        FAILED_WITH(ENOMEM);
    if (w) {
        assert_int_equal(pthread_kill(pthread_self(), SIGUSR1), 0);
        join_ok(w, NULL);
    }
    drain(SIGUSR1); /* one a failed wait left pending */
    green_clause_t cl = {.op = GREEN_WAIT_SIGNAL, .signo = SIGUSR2};
    assert_int_equal(pthread_kill(pthread_self(), SIGUSR2), 0);
    int k = green_choose(&cl, 1, green_after(5000));
    if (k != 0)
        FAILED_WITH(ENOMEM);
    else if (cl.err) { /* its arming failed: the clause completes with that error */
        errno = cl.err;
        FAILED_WITH(ENOMEM);
    }
    drain(SIGUSR2);
    /* a take that failed consumed nothing: the delivery is there for the next */
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, SIGUSR1);
    assert_int_equal(pthread_kill(pthread_self(), SIGUSR1), 0);
    siginfo_t si;
    int r;
    while ((r = green_signal_take(&one, &si, green_after(5000))) < 0) {
        FAILED_WITH(ENOMEM);
        sigset_t pend;
        assert_int_equal(sigpending(&pend), 0);
        assert_true(sigismember(&pend, SIGUSR1));
    }
    assert_int_equal(r, SIGUSR1);
    assert_int_equal(si.si_signo, SIGUSR1);
}

/* The debugging reports: a dump (backtraces of suspended green threads) and stats. */
static void *sleeper(void *arg)
{
    if (green_sleep(2) != 0)
        FAILED_WITH(ENOMEM);
    return arg;
}

static void sc_dump(void)
{
    FILE *f = fopen("/dev/null", "w");
    assert_non_null(f);
    green_attr_t shared = {.stack_mode = GREEN_STACK_SHARED};
    green_t g = green_spawn(sleeper, NULL);
    if (!g)
        FAILED_WITH(ENOMEM);
    green_t gs[2]; /* one's frames copied out, and back for its backtrace */
    for (int i = 0; i < 2; i++)
        if (!(gs[i] = green_spawn_attr(sj_body, (char *)NULL + i, &shared)))
            FAILED_WITH(ENOMEM);
    if (green_yield() != 0)
        FAILED_WITH(ENOMEM);
    if (green_dump(f) != 0)
        FAILED_WITH(ENOMEM);
    green_stats_t st;
    if (green_stats(&st) != 0)
        FAILED_WITH(ENOMEM);
    if (g)
        join_ok(g, NULL);
    for (int i = 0; i < 2; i++)
        if (gs[i])
            join_ok(gs[i], NULL);
    fclose(f);
}

/* The rest of the hub's calls: joinall, spawn_later, shields and kills, fd waits alone
 * and in a choose, futures. */
static void *shielded(void *arg)
{
    int pushed = green_shield_push() == 0;
    if (!pushed)
        FAILED_WITH(ENOMEM);
    int r = green_sleep(3); /* killed meanwhile */
    if (pushed) {
        if (r != 0)
            FAILED_WITH(ENOMEM);
        assert_int_equal(green_shield_pop(), 0);
    }
    errno = 0;
    assert_int_equal(green_sleep(1), -1); /* the kill shows */
    if (errno != ECANCELED)
        FAILED_WITH(ENOMEM);
    return arg;
}

static void *blocked_recv(void *arg)
{
    char elem[8];
    errno = 0;
    assert_int_equal(green_chan_recv(arg, elem, -1), -1);
    if (errno != ECANCELED)
        FAILED_WITH(ENOMEM);
    return NULL;
}

static void *fd_waiter(void *arg)
{
    int fd = (int)(intptr_t)arg;
    int r;
    while ((r = green_wait_fd(fd, GREEN_READ, green_after(5000))) < 0)
        FAILED_WITH(ENOMEM);
    assert_int_equal(r, GREEN_READ);
    return NULL;
}

static void *future_getter(void *arg)
{
    void *v = NULL;
    RETRY(green_future_get(arg, &v, -1));
    assert_ptr_equal(v, (void *)42);
    return NULL;
}

static void sc_misc(void)
{
    /* joinall */
    green_t gs[3];
    for (int i = 0; i < 3; i++)
        if (!(gs[i] = green_spawn(sj_body, (char *)NULL + i)))
            FAILED_WITH(ENOMEM);
    RETRY(green_joinall(gs, 3, -1));
    /* spawn_later */
    green_t later = green_spawn_later(1, twice, (void *)5);
    if (!later)
        FAILED_WITH(ENOMEM);
    else {
        void *r;
        join_ok(later, &r);
        assert_ptr_equal(r, (void *)10);
    }
    /* a shielded kill and a plain one */
    green_chan_t *ch = green_chan_new(8, 0);
    green_t sh = green_spawn(shielded, (void *)1), br = NULL;
    if (!sh)
        FAILED_WITH(ENOMEM);
    if (!ch)
        FAILED_WITH(ENOMEM);
    else if (!(br = green_spawn(blocked_recv, ch)))
        FAILED_WITH(ENOMEM);
    if (green_yield() != 0)
        FAILED_WITH(ENOMEM);
    if (sh) {
        assert_int_equal(green_kill(sh), 0);
        void *r = (void *)7;
        join_ok(sh, &r);
        assert_true(r == (void *)1 || r == NULL); /* NULL: killed before it ran */
    }
    if (br) {
        assert_int_equal(green_kill(br), 0);
        join_ok(br, NULL);
    }
    if (ch)
        assert_int_equal(green_chan_free(ch), 0);
    /* fds: a waiter, then a choose over an fd and a future */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    green_t fw = green_spawn(fd_waiter, (void *)(intptr_t)sv[0]);
    if (!fw)
        FAILED_WITH(ENOMEM);
    green_future_t fut;
    assert_int_equal(green_future_init(&fut), 0);
    green_t fg = green_spawn(future_getter, &fut);
    if (!fg)
        FAILED_WITH(ENOMEM);
    if (green_yield() != 0)
        FAILED_WITH(ENOMEM);
    assert_int_equal(write(sv[1], "x", 1), 1);
    assert_int_equal(green_future_set(&fut, (void *)42), 0);
    if (fw)
        join_ok(fw, NULL);
    if (fg)
        join_ok(fg, NULL);
    green_clause_t cl[2] = {{.op = GREEN_WAIT_FD, .fd = sv[0], .events = GREEN_READ},
                            {.op = GREEN_WAIT_FUTURE, .future = &fut}};
    int k;
    while ((k = green_choose(cl, 2, green_after(5000))) < 0)
        FAILED_WITH(ENOMEM);
    assert_true(k == 0 ? cl[0].revents == GREEN_READ : cl[1].value == (void *)42);
    assert_int_equal(green_future_destroy(&fut), 0);
    assert_int_equal(green_close(sv[0]), 0);
    assert_int_equal(close(sv[1]), 0);
}

/* ---- the driver ---- */

struct scenario {
    const char *name;
    void (*run)(void);
};

static const struct scenario scenarios[] = {
    {"spawn-dedicated", sc_spawn_dedicated},
    {"spawn-shared", sc_spawn_shared},
    {"chan", sc_chan},
    {"chan-threads", sc_chan_threads},
    {"choose", sc_choose},
    {"group", sc_group},
    {"sync", sc_sync},
    {"pool", sc_pool},
    {"dns", sc_dns},
    {"dns-ares", sc_dns_ares},
    {"server", sc_server},
    {"server-2-hubs", sc_server2},
    {"server-stop", sc_server_stop},
    {"server-stop-shared", sc_server_stop_shared},
    {"hub", sc_hub},
    {"many-stacks", sc_many},
    {"file", sc_file},
    {"signal", sc_signal},
    {"dump", sc_dump},
    {"misc", sc_misc},
};

/* FAULT_ONLY=name in the environment: that scenario alone (to debug one). */
static int wanted(const struct scenario *s)
{
    const char *only = getenv("FAULT_ONLY");
    return !only || !*only || strcmp(only, s->name) == 0;
}

/* Allocations a run may leave live: caches kept for the next ones. */
static int cache_site(const char *fn)
{
    static const char *const caches[] = {
        "green__waiter_new", /* the per-hub cache of waiter records */
        /* the shared stack's spare, replaced when lent (the lent one is unmapped when
         * given back: the bytes mapped in all are checked) */
        "green__shared_spare_renew",
    };
    for (size_t i = 0; i < sizeof caches / sizeof caches[0]; i++)
        if (fn && strcmp(fn, caches[i]) == 0)
            return 1;
    return 0;
}

/* Live allocations the run made that are not caches (cold: blocks_refill's records of
 * orphaned chunks are one too), each printed when `print`. */
static int count_leaks(const char *scen, long n, int cold, int print)
{
    int bad = 0;
    lock();
    for (size_t i = 0; i < LIVE_CAP; i++) {
        if (!fi_live[i].p || fi_live[i].p == TOMB)
            continue;
        uintptr_t off = 0;
        const char *fn = green__symtab_name(fi_live[i].site, &off);
        /* (blocks_refill is inlined into green__block_new in optimised builds) */
        if (cache_site(fn) || (cold && fn && (strcmp(fn, "blocks_refill") == 0 ||
                                              strcmp(fn, "green__block_new") == 0)))
            continue;
        if (print)
            printf("leak%s: %s, allocation %ld failed: %p from %s+%#lx\n", cold ? " (cold)" : "",
                   scen, n, fi_live[i].p, fn ? fn : "?", (unsigned long)off);
        bad++;
    }
    unlock();
    return bad;
}

/* The same once the pool's threads are done with what was abandoned to them (a job
 * whose caller stopped waiting is freed by its thread when it ends): up to 2 s. Then
 * the table is emptied for the next run. */
static int leaks(const char *scen, long n, int cold)
{
    int bad = 0;
    if (scen)
        for (int i = 0; i < 200 && (bad = count_leaks(scen, n, cold, i == 199)) != 0; i++)
            sleep_os_ms(10);
    lock();
    memset(fi_live, 0, sizeof fi_live);
    fi_nlive = 0;
    unlock();
    return bad;
}

static void alarm_handler(int sig)
{
    (void)sig;
    static const char m[] = "test_fault: a run hung\n";
    (void)!write(2, m, sizeof m - 1);
    _exit(3);
}

/* One run with allocation `target` failing (0: none); returns the count reached. */
static long run_once(const struct scenario *s, long target, int *leaked, int check)
{
    int fds = open_fds();
    long mapped = atomic_load(&fi_mapped);
    atomic_store(&fi_count, 0);
    atomic_store(&fi_fired, 0);
    atomic_store(&fi_reported, 0);
    atomic_store(&fi_target, target);
    atomic_store(&fi_track, 1);
    atomic_store(&fi_armed, 1);
    alarm(20);
    s->run();
    atomic_store(&fi_armed, 0);
    /* let the pool threads and other hubs finish what they hand back */
    assert_int_equal(green_sleep(2), 0);
    alarm(0);
    atomic_store(&fi_track, 0);
    assert_hub_idle();
    if (check) { /* the warm-up run may open what stays (the poller, the pool's) */
        assert_int_equal(open_fds(), fds);
        if (atomic_load(&fi_mapped) != mapped) {
            printf("leak: %s, allocation %ld failed: %ld bytes more mapped\n", s->name, target,
                   atomic_load(&fi_mapped) - mapped);
            (*leaked)++;
        }
        *leaked += leaks(s->name, target, 0);
    } else {
        leaks(NULL, 0, 0);
    }
    return atomic_load(&fi_count);
}

/* Sites the scenario reached and failed since the last call (then forgotten). */
static void scen_sites(int *seen, int *failed)
{
    *seen = *failed = 0;
    for (int i = 0; i < MAX_SITES; i++) {
        *seen += S->scen_seen[i];
        *failed += S->scen_failed[i];
    }
    memset(S->scen_seen, 0, sizeof S->scen_seen);
    memset(S->scen_failed, 0, sizeof S->scen_failed);
}

/* ---- cold runs: the first use of everything ----
 * In a forked child of a process that never made a hub (no orphaned control blocks, no
 * cached waiter records, no poller yet), on a thread of its own whose hub is freed when
 * it exits: then every allocation libgreen made must be freed, but the control-block
 * chunks orphaned for later hubs. */
static const struct scenario *cold_scen;
static long cold_target;

static void *cold_thread(void *arg)
{
    (void)arg;
    atomic_store(&fi_count, 0);
    atomic_store(&fi_fired, 0);
    atomic_store(&fi_reported, 0);
    atomic_store(&fi_target, cold_target);
    atomic_store(&fi_track, 1);
    atomic_store(&fi_armed, 1);
    cold_scen->run();
    atomic_store(&fi_armed, 0);
    if (green_sleep(2) != 0)
        FAILED_WITH(ENOMEM); /* its first timer may be the one failing */
    assert_hub_idle();
    atomic_store(&S->count, atomic_load(&fi_count));
    return NULL;
}

static long cold_run(const struct scenario *s, long target)
{
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(20);
        cold_scen = s;
        cold_target = target;
        pthread_t t;
        if (pthread_create(&t, NULL, cold_thread, NULL) != 0 || pthread_join(t, NULL) != 0)
            _exit(2);
        atomic_store(&fi_track, 0);
        int bad = leaks(s->name, target, 1);
        fflush(stdout);
        _exit(bad ? 1 : 0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("cold run of %s with allocation %ld failing: status %#x", s->name, target,
                 status);
    return atomic_load(&S->count);
}

static const long spans[3] = {1, 2, STICKY};

static void test_cold(void **state)
{
    (void)state;
    assert_int_equal(green__symtab_load(), 0);
    snprintf(file_path, sizeof file_path, "/tmp/test_fault.XXXXXX");
    int fd = mkstemp(file_path);
    assert_true(fd >= 0);
    close(fd);
    long runs = 0;
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        const struct scenario *s = &scenarios[i];
        if (!wanted(s))
            continue;
        long k = cold_run(s, 0), reached = k;
        for (int m = 0; m < 3; m++) {
            atomic_store(&fi_span, spans[m]);
            for (long n = 1; n <= reached + 1; n++, runs++) {
                long c = cold_run(s, n);
                if (c > reached)
                    reached = c;
            }
        }
        atomic_store(&fi_span, 1);
        int seen, failed;
        scen_sites(&seen, &failed);
        printf("fault: cold %-16s %3ld allocations a run, %2d sites reached, %2d failed\n",
               s->name, k, seen, failed);
    }
    printf("fault: cold: %ld runs, each in a fresh process\n", runs);
}

static void test_every_allocation_fails(void **state)
{
    (void)state;
    signal(SIGALRM, alarm_handler);
    assert_int_equal(green__symtab_load(), 0);
    /* this thread's hub first: made during a warm-up, it would take a chunk of control
     * blocks orphaned by another thread's hub, which the next run then maps again */
    assert_int_equal(green_sleep(1), 0);
    long runs = 0;
    int leaked = 0;
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        const struct scenario *s = &scenarios[i];
        if (!wanted(s))
            continue;
        int seen, failed;
        scen_sites(&seen, &failed);
        /* warm the caches, then count */
        run_once(s, 0, &leaked, 0);
        long k = run_once(s, 0, &leaked, 1);
        long reached = k, fired = 0;
        /* each allocation fails alone, then two in a row (what a failure's own
         * recovery allocates fails too: the shared stack's spare and its renewal), then
         * every one from there on (until 8 calls have failed) */
        for (int m = 0; m < 3; m++) {
            atomic_store(&fi_span, spans[m]);
            for (long n = 1; n <= reached + 2; n++) {
                long c = run_once(s, n, &leaked, 1);
                if (c > reached)
                    reached = c; /* threads may allocate in another order */
                fired += atomic_load(&fi_fired);
                runs++;
            }
        }
        atomic_store(&fi_span, 1);
        scen_sites(&seen, &failed);
        printf("fault: warm %-16s %3ld allocations a run, %2d sites reached, %2d failed, "
               "%3ld runs with failures\n",
               s->name, k, seen, failed, fired);
    }
    int failed = 0, n = atomic_load(&fi_nsites);
    for (int k = 0; k < n; k++)
        failed += fi_site_failed[k];
    printf("fault: %zu scenarios, %ld runs, %d allocation sites reached, %d failed\n",
           sizeof scenarios / sizeof scenarios[0], runs, n, failed);
    for (int k = 0; k < n; k++) {
        uintptr_t off = 0;
        const char *fn = green__symtab_name(fi_sites[k], &off);
        printf("fault: site %s+%#lx%s\n", fn ? fn : "?", (unsigned long)off,
               fi_site_failed[k] ? "" : " (never failed)");
    }
    for (int k = 0; k < n; k++)
        if (!fi_site_failed[k]) {
            uintptr_t off = 0;
            const char *fn = green__symtab_name(fi_sites[k], &off);
            printf("fault: never failed: %s+%#lx\n", fn ? fn : "?", (unsigned long)off);
        }
    unlink(file_path);
    assert_int_equal(leaked, 0);
}

/* ---- regression tests of what the runs found ---- */

/* green_server_stop whose wait fails with ENOMEM before its stopper ran (the shared
 * stack's spare lent and not renewable) stopped nothing, as documented, and may be called
 * again. It used to detach the stopper, which then stopped and freed the server anyway:
 * the second call used freed memory. */
static green_server_t *lent_srv;
static int lent_stop_err;

static void *lend_spare(void *arg)
{
    volatile char deep[4096];
    deep[0] = 1;
    /* every allocation fails from now on: our copy-out takes the spare, whose
     * replacement cannot be mapped */
    atomic_store(&fi_count, 0);
    atomic_store(&fi_target, 1);
    atomic_store(&fi_span, STICKY);
    atomic_store(&fi_armed, 1);
    green_yield();
    (void)deep[0];
    return arg;
}

static void *stop_with_spare_lent(void *arg)
{
    volatile char deep[4096];
    deep[0] = 1;
    errno = 0;
    int r = green_server_stop(lent_srv, green_after(1000));
    lent_stop_err = r == 0 ? 0 : errno;
    atomic_store(&fi_armed, 0);
    atomic_store(&fi_span, 1);
    (void)deep[0];
    return arg;
}

static void test_server_stop_enomem(void **state)
{
    (void)state;
    int lfd = green_tcp_listen("127.0.0.1", "0", 16);
    assert_true(lfd >= 0);
    green_attr_t shared = {.stack_mode = GREEN_STACK_SHARED};
    for (int round = 0; round < 2; round++) { /* the first warms what the stop uses */
        assert_non_null(lent_srv = green_serve(lfd, echo, NULL, NULL));
        if (round == 0) {
            assert_int_equal(green_server_stop(lent_srv, green_after(1000)), 0);
            continue;
        }
        green_t a = green_spawn_attr(lend_spare, NULL, &shared);
        green_t b = green_spawn_attr(stop_with_spare_lent, NULL, &shared);
        assert_non_null(a);
        assert_non_null(b);
        assert_int_equal(green_join(b, NULL, -1), 0);
        assert_int_equal(green_join(a, NULL, -1), 0);
        assert_int_equal(lent_stop_err, ENOMEM);
        assert_int_equal(green_server_stop(lent_srv, green_after(1000)), 0); /* again */
    }
    assert_int_equal(green_close(lfd), 0);
    assert_hub_idle();
}

/* The stop's own waits (its stopper's join of the acceptor, its wait for the handlers)
 * fail with ENOMEM for a while: they are made again, and the stop completes. They used
 * to give up: the server was freed under its acceptor and a handler still running. */
static void *copied_out(void *arg) { return arg; }

static void *hold_client(void *arg)
{
    int fd = green_tcp_connect("127.0.0.1", arg, green_after(5000));
    assert_true(fd >= 0);
    char c;
    assert_int_equal(green_read(fd, &c, 1, green_after(5000)), 0); /* closed by the stop */
    assert_int_equal(green_close(fd), 0);
    return NULL;
}

static void *stop_while_lent(void *arg)
{
    volatile char deep[4096];
    deep[0] = 1;
    green_attr_t shared = {.stack_mode = GREEN_STACK_SHARED};
    /* runs once we park in the stop: taking the shared stack, it copies us out, which
     * fails, so the spare is lent, and 40 allocations fail from there (each attempt to
     * replace the spare is one) */
    green_t co = green_spawn_attr(copied_out, NULL, &shared);
    assert_non_null(co);
    assert_int_equal(green_detach(co), 0);
    atomic_store(&fi_count, 0);
    atomic_store(&fi_target, 1);
    atomic_store(&fi_span, 40);
    atomic_store(&fi_armed, 1);
    int r = green_server_stop(lent_srv, green_after(200));
    atomic_store(&fi_armed, 0);
    atomic_store(&fi_span, 1);
    assert_int_equal(r, 0);
    assert_true(atomic_load(&fi_count) >= 40); /* the stop went through the failures */
    (void)deep[0];
    return arg;
}

static void test_server_stop_waits_enomem(void **state)
{
    (void)state;
    int lfd = green_tcp_listen("127.0.0.1", "0", 16);
    assert_true(lfd >= 0);
    char port[16];
    snprintf(port, sizeof port, "%d", green_socket_port(lfd));
    assert_non_null(lent_srv = green_serve(lfd, echo, NULL, NULL));
    green_t c = green_spawn(hold_client, port);
    assert_non_null(c);
    assert_int_equal(green_sleep(20), 0); /* its handler waits for its data */
    green_attr_t shared = {.stack_mode = GREEN_STACK_SHARED};
    green_t s = green_spawn_attr(stop_while_lent, NULL, &shared);
    assert_non_null(s);
    assert_int_equal(green_join(s, NULL, -1), 0);
    assert_int_equal(green_join(c, NULL, -1), 0);
    assert_int_equal(green_close(lfd), 0);
    assert_hub_idle(); /* the acceptor and the handler are gone with the server */
}

/* ---- fd exhaustion ---- */

/* Run fn in a forked child (its limits and signal dispositions are its own): it must
 * exit 0 within the alarm. */
static void in_child(void (*fn)(void), int seconds)
{
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm((unsigned)seconds);
        fn();
        fflush(stdout);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("child: status %#x", status);
}

static int exhausted(int e) { return e == EMFILE || e == ENFILE; }

static char storm_port[16];
static int storm_done, storm_emfile;

/* Connects until it gets through (EMFILE meanwhile), echoes, holds its fd a moment. */
static void *storm_client(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = green_tcp_connect("127.0.0.1", storm_port, green_after(10000));
        if (fd < 0) {
            if (!exhausted(errno))
                fail_msg("connect: %s", strerror(errno));
            storm_emfile++;
            assert_int_equal(green_sleep(2), 0);
            continue;
        }
        char buf[8] = {0};
        assert_int_equal(green_write(fd, "storm", 5, green_after(10000)), 5);
        ssize_t got = 0, n;
        while (got < 5 && (n = green_read(fd, buf + got, (size_t)(5 - got), green_after(10000))) > 0)
            got += n;
        if (got != 5) /* the server could not take it: only while exhausted */
            fail_msg("echo: %zd, %s", got, strerror(errno));
        assert_string_equal(buf, "storm");
        assert_int_equal(green_sleep(5), 0);
        assert_int_equal(green_close(fd), 0);
        storm_done++;
        return NULL;
    }
}

static void set_nofile(rlim_t n)
{
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = n;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

/* A connect storm against green_serve, each side with RLIMIT_NOFILE a little above
 * what it has open: the server (this process) has room for 3 connections at once, the
 * 40 clients (a forked process, so that neither side's fds starve the other) for 8.
 * Connects and accepts fail with EMFILE, the server backs off and goes on, every client
 * is served in the end, and nothing leaks. */
static void storm_clients(void)
{
    set_nofile((rlim_t)(open_fds() - 1) + 8);
    enum { N = 40 };
    green_t cs[N];
    for (int i = 0; i < N; i++)
        assert_non_null(cs[i] = green_spawn(storm_client, NULL));
    for (int i = 0; i < N; i++)
        assert_int_equal(green_join(cs[i], NULL, -1), 0);
    assert_int_equal(storm_done, N);
    assert_true(storm_emfile > 0); /* the storm did exhaust the table */
    printf("fault: connect storm: %d clients served, %d connects failed with EMFILE\n", N,
           storm_emfile);
}

static void fd_storm_server(void)
{
    int lfd = green_tcp_listen("127.0.0.1", "0", 128);
    assert_true(lfd >= 0);
    snprintf(storm_port, sizeof storm_port, "%d", green_socket_port(lfd));
    green_server_t *srv = green_serve(lfd, echo, NULL, NULL);
    assert_non_null(srv);
    assert_int_equal(green_sleep(1), 0); /* the acceptor waits: the poller's fds are open */
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        storm_clients();
        fflush(stdout);
        _exit(0);
    }
    int base = open_fds() - 1; /* opendir's own fd */
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    set_nofile((rlim_t)base + 3);
    int status = 0;
    pid_t w;
    while ((w = green_waitpid(pid, &status, green_after(50000))) < 0) /* its pidfd: EMFILE */
        assert_true(exhausted(errno));
    assert_int_equal(w, pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    set_nofile(old.rlim_cur);
    /* and it serves as before */
    storm_done = 0;
    green_t c = green_spawn(storm_client, NULL);
    assert_int_equal(green_join(c, NULL, -1), 0);
    assert_int_equal(storm_done, 1);
    assert_int_equal(green_server_stop(srv, green_after(2000)), 0);
    assert_int_equal(open_fds() - 1, base);
    assert_int_equal(green_close(lfd), 0);
    assert_hub_idle();
}

/* An accept storm on green_accept: the kernel queues connections the process has no fd
 * for; green_accept fails with EMFILE and then accepts every one once fds are free. */
static void *storm_connector(void *arg)
{
    int *fd = arg;
    *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*fd < 0) {
        assert_true(exhausted(errno));
        return NULL;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(storm_port)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(green_connect(*fd, (struct sockaddr *)&a, sizeof a, green_after(10000)), 0);
    return NULL;
}

/* While no fd is left: a new hub (its poller needs fds), a signal wait (a signalfd), a
 * timer, the pool, a waitpid (a pidfd) fail with EMFILE or work, and leave no trace. */
static void *exhausted_thread(void *arg)
{
    int ok = arg != NULL;
    errno = 0;
    if (green_sleep(1) != 0)
        assert_true(!ok && exhausted(errno));
    green_t g = green_spawn(twice, (void *)1);
    if (!g)
        assert_true(!ok && exhausted(errno));
    else
        assert_int_equal(green_join(g, NULL, -1), 0);
    return NULL;
}

/* a new OS thread's first calls: ok, or they may fail with EMFILE */
static void new_hub(int ok)
{
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, exhausted_thread, ok ? (void *)1 : NULL), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
}

static void exhausted_calls(int lfd)
{
    new_hub(0);
    /* a server on two hubs: the other's listener (and its hub's poller) need fds */
    green_serve_opts_t two = {.threads = 2};
    errno = 0;
    green_server_t *srv = green_serve(lfd, echo, NULL, &two);
    if (srv)
        assert_int_equal(green_server_stop(srv, green_after(1000)), 0);
    else
        assert_true(exhausted(errno));
    /* a choose's signal clause: the hub's signalfd */
    green_clause_t cl = {.op = GREEN_WAIT_SIGNAL, .signo = SIGUSR2};
    errno = 0;
    int k = green_choose(&cl, 1, green_after(5));
    if (k == 0) /* the clause completes with the error of its arming */
        assert_true(exhausted(cl.err));
    else
        assert_true(k == -1 && errno == ETIMEDOUT);
    void *res = NULL;
    assert_int_equal(green_run_blocking(twice, (void *)2, &res, -1), 0);
    assert_ptr_equal(res, (void *)4);
    errno = 0;
    assert_int_equal(green_signal_wait(SIGUSR1, green_after(5)), -1);
    assert_true(exhausted(errno) || errno == ETIMEDOUT);
    pid_t pid = fork(); /* no pidfd: waitpid polls */
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    int st;
    assert_int_equal(green_waitpid(pid, &st, green_after(5000)), pid);
    struct addrinfo *ai = NULL;
    /* glibc's answer, whatever it is (/etc/hosts cannot be opened: EAI_SYSTEM/EMFILE, or
     * the DNS fallback's EAI_AGAIN or EAI_NONAME), on the pool; and no fd left open */
    int r = green_getaddrinfo("localhost", "80", NULL, &ai, green_after(5000));
    if (r == 0)
        green_freeaddrinfo(ai);
}

static void fd_storm_accept(void)
{
    int lfd = green_tcp_listen("127.0.0.1", "0", 128);
    assert_true(lfd >= 0);
    snprintf(storm_port, sizeof storm_port, "%d", green_socket_port(lfd));
    assert_int_equal(green_sleep(1), 0);
    int base = open_fds() - 1;
    enum { N = 16 };
    int cfd[N], afd[N], nacc = 0, emfile = 0;
    green_t cs[N];
    for (int i = 0; i < N; i++)
        assert_non_null(cs[i] = green_spawn(storm_connector, &cfd[i]));
    for (int i = 0; i < N; i++)
        assert_int_equal(green_join(cs[i], NULL, -1), 0);
    for (int i = 0; i < N; i++)
        assert_true(cfd[i] >= 0);
    /* room for 4 more fds: the rest wait in the backlog */
    set_nofile((rlim_t)base + N + 4);
    for (;;) {
        int fd = green_accept(lfd, NULL, NULL, green_after(10000));
        if (fd >= 0) {
            afd[nacc++] = fd;
            continue;
        }
        assert_true(exhausted(errno));
        emfile++;
        break;
    }
    assert_true(nacc >= 1 && emfile == 1); /* fd numbers, not counts: holes fit too */
    exhausted_calls(lfd);
    /* free them: the others come */
    for (int i = 0; i < nacc; i++)
        assert_int_equal(green_close(afd[i]), 0);
    int total = nacc;
    while (total < N) {
        int fd = green_accept(lfd, NULL, NULL, green_after(10000));
        if (fd < 0) {
            assert_true(exhausted(errno));
            fail_msg("accept failed with %d fds free", nacc);
        }
        assert_int_equal(green_close(fd), 0);
        total++;
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(green_close(cfd[i]), 0);
    new_hub(1); /* fds free again: a new hub works */
    assert_int_equal(green_close(lfd), 0);
    assert_int_equal(open_fds() - 1, base - 1);
    assert_hub_idle();
    printf("fault: accept storm: %d accepted, EMFILE %d time(s) in between\n", total, emfile);
}

static void test_fd_exhaustion(void **state)
{
    (void)state;
    in_child(fd_storm_server, 60);
    in_child(fd_storm_accept, 60);
}

/* ---- a peer that resets mid-write ---- */

/* The writer's peer reads a little, then closes with SO_LINGER 0 (a reset). */
static void *resetter(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    assert_true(green_read(fd, buf, sizeof buf, green_after(10000)) > 0);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    assert_int_equal(green_close(fd), 0);
    return NULL;
}

static void peer_reset_child(void)
{
    signal(SIGPIPE, SIG_DFL); /* a SIGPIPE would kill the child */
    static char big[8 << 20];
    memset(big, 'r', sizeof big);
    int lfd = green_tcp_listen("127.0.0.1", "0", 8);
    assert_true(lfd >= 0);
    char port[16];
    snprintf(port, sizeof port, "%d", green_socket_port(lfd));
    for (int round = 0; round < 3; round++) {
        int c = green_tcp_connect("127.0.0.1", port, green_after(10000));
        assert_true(c >= 0);
        int a = green_accept(lfd, NULL, NULL, green_after(10000));
        assert_true(a >= 0);
        int small = 4096;
        assert_int_equal(setsockopt(c, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
        green_t r = green_spawn(resetter, (void *)(intptr_t)a);
        assert_non_null(r);
        errno = 0;
        ssize_t n;
        if (round == 0)
            n = green_write(c, big, sizeof big, green_after(10000));
        else if (round == 1)
            n = green_send(c, big, sizeof big, 0, green_after(10000));
        else {
            struct iovec iov[2] = {{big, sizeof big / 2}, {big + sizeof big / 2, sizeof big / 2}};
            n = green_writev(c, iov, 2, green_after(10000));
        }
        int e = errno;
        assert_true(n < (ssize_t)sizeof big);
        if (e != ECONNRESET && e != EPIPE)
            fail_msg("round %d: %zd, errno %d (%s)", round, n, e, strerror(e));
        /* and again: the connection stays failed, no SIGPIPE; a read sees the end */
        errno = 0;
        assert_int_equal(green_write(c, big, 10, green_after(10000)), -1);
        assert_true(errno == EPIPE || errno == ECONNRESET);
        char b;
        errno = 0;
        ssize_t rn = green_read(c, &b, 1, green_after(10000));
        assert_true(rn == 0 || (rn == -1 && errno == ECONNRESET));
        assert_int_equal(green_join(r, NULL, -1), 0);
        assert_int_equal(green_close(c), 0);
    }
    assert_int_equal(green_close(lfd), 0);
    assert_hub_idle();
}

/* A handler writing to a client that resets: its write fails, the server goes on. */
static void flood(int fd, void *arg)
{
    (void)arg;
    static char big[4 << 20];
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    errno = 0;
    ssize_t n = green_write(fd, big, sizeof big, green_after(10000));
    assert_true(n < (ssize_t)sizeof big);
    assert_true(errno == ECONNRESET || errno == EPIPE);
}

static void server_reset_child(void)
{
    signal(SIGPIPE, SIG_DFL);
    int lfd = green_tcp_listen("127.0.0.1", "0", 8);
    assert_true(lfd >= 0);
    char port[16];
    snprintf(port, sizeof port, "%d", green_socket_port(lfd));
    green_server_t *srv = green_serve(lfd, flood, NULL, NULL);
    assert_non_null(srv);
    green_t rs[3];
    for (int i = 0; i < 3; i++) {
        int c = green_tcp_connect("127.0.0.1", port, green_after(10000));
        assert_true(c >= 0);
        assert_non_null(rs[i] = green_spawn(resetter, (void *)(intptr_t)c));
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(green_join(rs[i], NULL, -1), 0);
    assert_int_equal(green_sleep(20), 0); /* the handlers see the resets */
    assert_int_equal(green_server_stop(srv, green_after(5000)), 0);
    assert_int_equal(green_close(lfd), 0);
    green_stats_t st = stats();
    assert_int_equal(st.alive, 0);
}

static void test_peer_reset(void **state)
{
    (void)state;
    in_child(peer_reset_child, 60);
    in_child(server_reset_child, 60);
}

/* With an argument "warm": only the warm runs (the GREEN_POLLER=uring variant). */
int main(int argc, char **argv)
{
    /* a failed check aborts, whatever thread or child makes it */
    setenv("CMOCKA_TEST_ABORT", "1", 1);
    setvbuf(stdout, NULL, _IOLBF, 0); /* what was printed survives an abort */
    S = (void *)syscall(SYS_mmap, NULL, sizeof *S, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if ((long)S == -1)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cold), /* first: no hub in this process yet */
        cmocka_unit_test(test_every_allocation_fails),
        cmocka_unit_test(test_server_stop_enomem),
        cmocka_unit_test(test_server_stop_waits_enomem),
        cmocka_unit_test(test_fd_exhaustion),
        cmocka_unit_test(test_peer_reset),
    };
    if (argc > 1 && strcmp(argv[1], "warm") == 0) {
        const struct CMUnitTest warm[] = {cmocka_unit_test(test_every_allocation_fails)};
        /* the file scenario's file, made by test_cold otherwise */
        snprintf(file_path, sizeof file_path, "/tmp/test_fault.XXXXXX");
        int fd = mkstemp(file_path);
        if (fd < 0)
            return 1;
        close(fd);
        return cmocka_run_group_tests(warm, NULL, NULL);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
