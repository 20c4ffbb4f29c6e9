/* chaos.c — random kills and deadlines over a workload, invariants checked at the end
 * (make chaos; a 20 s version is the ctest "chaos").
 *
 * One hub runs producers and consumers on a buffered and an unbuffered channel (some
 * consumers through green_choose), green threads waiting on the thread pool
 * (green_run_blocking), mutex holders checking mutual exclusion, green_timeout_push
 * scopes checked against the clock, a group spawning and joining members, and an echo
 * server (green_serve) with clients on loopback. Each of those runs in a slot whose
 * supervisor spawns it again when it dies. A driver green thread, at random moments,
 * kills a random slot's green thread or a running server handler, or hands a slot a
 * random deadline that its next operations run under (green_timeout_push).
 * Environment: CHAOS_SECONDS (default 600), CHAOS_SEED (default: from the clock; always
 * printed, so a failing run can be replayed — the interleaving depends on timing too),
 * CHAOS_HUBS (default 1): N >= 2 runs green_hubs_start(N) first, and the supervisors
 * spawn the workers with attr.hub = GREEN_HUB_ANY (they spread over the hubs and may move
 * at their sleeps and yields) — except the grouper and the server cycler, which stay on
 * main's hub (a group belongs to one hub; green_server_stop is made on the serving
 * thread). Everything the workers share is then atomic, and the PRNG is one xorshift per
 * OS thread, seeded from the seed and green_hub_self() (a replay replays each hub's
 * choices, not the interleaving).
 *
 * Checked at the end: every message was received exactly once if its send succeeded and
 * never if it failed; mutual exclusion was never broken and every mutex is free
 * (trylock succeeds); every timeout scope ended at or after its deadline; every echo
 * that came back was the bytes sent; the group is empty; every pool job ran to its end;
 * main's hub is idle (no green thread alive, nothing ready, waiting, timed or watched),
 * and with CHAOS_HUBS every other hub too (a green thread placed there finds itself the
 * only one alive, nothing ready, timed or watched); no fd is left open beyond those open
 * before. Exit 0 when all hold. */
#define _GNU_SOURCE
#include <green.h>
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- PRNG, errors ---- */

/* One state per OS thread (per hub), seeded from the seed and the hub's number. A
 * GREEN_HUB_ANY green thread may change OS threads at a sleep or yield, and a compiler may
 * keep a __thread variable's address across such a call (THE RULE in green.h): the state
 * is touched only in this function, never inlined, its address taken afresh each call. */
static uint64_t seed;
static __thread uint64_t rng;
__attribute__((noinline)) static uint64_t rnd64(void)
{
    __asm__ volatile("" ::: "memory");
    uint64_t x = rng;
    if (!x) { /* hub 1 (main's, the only one without CHAOS_HUBS) starts from the seed itself */
        int hub = green_hub_self();
        x = seed;
        if (hub != 1) {
            x ^= 0x9e3779b97f4a7c15ull * (uint64_t)(hub + 1);
            x ^= x >> 31, x *= 0xbf58476d1ce4e5b9ull, x ^= x >> 29;
        }
        if (!x)
            x = 1;
    }
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    rng = x;
    return x;
}
static uint32_t rnd(uint32_t n) { return (uint32_t)(rnd64() >> 11) % n; }

/* errno of the last call, read afresh: glibc's __errno_location is const, and a compiler
 * may keep the address it returned across a green_yield or green_sleep that moved the
 * caller to another OS thread (THE RULE in green.h). */
__attribute__((noinline)) static int err_now(void)
{
    __asm__ volatile("" ::: "memory");
    return errno;
}

static atomic_ullong violations;
#define VIOLATION(...) \
    do { \
        if (atomic_fetch_add(&violations, 1) < 20) { \
            fprintf(stderr, "chaos: VIOLATION: " __VA_ARGS__); \
            fputc('\n', stderr); \
        } \
    } while (0)

static int expected_err(int e)
{
    return e == ETIMEDOUT || e == ECANCELED;
}

/* ---- slots: a supervisor respawns its worker until the end ---- */

struct slot {
    green_fn fn;
    _Atomic(green_t) g;          /* the running worker, NULL between two */
    _Atomic int64_t deadline_ms; /* > 0: the driver asks for a timeout scope of this length */
    int index;
    int hub;                     /* attr.hub for its workers */
    atomic_ullong runs;
};

enum { MAX_SLOTS = 64 };
static struct slot slots[MAX_SLOTS];
static int nslots;
static atomic_int stopping;
static atomic_ullong kills, handler_kills, deadlines_pushed, scopes_timed_out;

/* green threads that ran, by the hub they first ran on; moves a worker saw across its
 * own sleeps and yields */
enum { MAX_HUBS = 1025 };
static int nhubs = 1;
static atomic_ullong ran_on[2][MAX_HUBS], moves_seen; /* [0] the slots' workers, [1] the others */

static void ran_here_as(int kind)
{
    int h = green_hub_self();
    if (h >= 0 && h < MAX_HUBS)
        atomic_fetch_add(&ran_on[kind][h], 1);
}
#define ran_here() ran_here_as(0)

/* After a sleep or yield: counts a move if the hub changed since *hub. */
static void note_hub(int *hub)
{
    int h = green_hub_self();
    if (h != *hub) {
        atomic_fetch_add(&moves_seen, 1);
        *hub = h;
    }
}

/* Takes the deadline the driver set for this slot, if any: pushed as a scope (1), else 0. */
static int take_deadline(struct slot *s)
{
    int64_t ms = atomic_exchange(&s->deadline_ms, 0);
    if (ms <= 0)
        return 0;
    if (green_timeout_push(ms) != 0) {
        VIOLATION("green_timeout_push(%lld): %s", (long long)ms, strerror(err_now()));
        return 0;
    }
    deadlines_pushed++;
    return 1;
}

static void end_deadline(int pushed)
{
    if (pushed && green_timeout_pop() != 0)
        VIOLATION("green_timeout_pop: %s", strerror(err_now()));
}

static void *supervisor(void *arg)
{
    struct slot *s = arg;
    while (!stopping) {
        /* odd slots run on the shared stack: their stacks move while they wait */
        green_attr_t attr = {.stack_mode = s->index % 2 ? GREEN_STACK_SHARED : GREEN_STACK_DEDICATED,
                             .hub = s->hub};
        green_t g = green_spawn_attr(s->fn, s, &attr);
        if (!g) {
            VIOLATION("spawn: %s", strerror(err_now()));
            return NULL;
        }
        atomic_store(&s->g, g);
        atomic_fetch_add(&s->runs, 1);
        /* the supervisor is never killed: this join waits as long as it must */
        if (green_join(g, NULL, -1) != 0)
            VIOLATION("join of a worker: %s", strerror(err_now()));
        atomic_store(&s->g, NULL);
    }
    return NULL;
}

/* ---- messages on channels ---- */

/* Two bytes a message, in chunks made on demand and never moved (producers of several
 * hubs make messages at once): a chunk table, a chunk installed by compare-and-swap. */
enum { ST_TRYING = 0, ST_SENT = 1, ST_FAILED = 2 };
enum { CHUNK_BITS = 16, CHUNK = 1 << CHUNK_BITS, MAX_CHUNKS = 1 << 14 };
struct msg_chunk {
    atomic_uchar state[CHUNK], recv[CHUNK];
};
static _Atomic(struct msg_chunk *) msg_chunks[MAX_CHUNKS];
static atomic_ullong nmsg;
static green_chan_t *chan_buf, *chan_sync;
static atomic_ullong sends_ok, sends_failed, recvs;

static struct msg_chunk *chunk_of(uint64_t id)
{
    return atomic_load(&msg_chunks[id >> CHUNK_BITS]);
}

static uint64_t new_msg(void)
{
    uint64_t id = atomic_fetch_add(&nmsg, 1);
    if (id >> CHUNK_BITS >= MAX_CHUNKS)
        abort();
    if (!chunk_of(id)) {
        struct msg_chunk *c = calloc(1, sizeof *c), *none = NULL; /* zero: ST_TRYING, none received */
        if (!c)
            abort();
        if (!atomic_compare_exchange_strong(&msg_chunks[id >> CHUNK_BITS], &none, c))
            free(c);
    }
    return id;
}

static void set_state(uint64_t id, int st)
{
    atomic_store(&chunk_of(id)->state[id & (CHUNK - 1)], (unsigned char)st);
}

static void received(uint64_t id)
{
    struct msg_chunk *c;
    if (id >= atomic_load(&nmsg) || !(c = chunk_of(id))) {
        VIOLATION("received message %llu never made", (unsigned long long)id);
        return;
    }
    unsigned char n = atomic_load(&c->recv[id & (CHUNK - 1)]);
    while (n < 255 && !atomic_compare_exchange_weak(&c->recv[id & (CHUNK - 1)], &n, (unsigned char)(n + 1)))
        ;
    atomic_fetch_add(&recvs, 1);
}

static void *producer(void *arg)
{
    struct slot *s = arg;
    int hub = green_hub_self();
    ran_here();
    while (!stopping) {
        int pushed = take_deadline(s);
        green_chan_t *ch = rnd(2) ? chan_buf : chan_sync;
        uint64_t id = new_msg();
        int64_t dl = rnd(4) ? green_after(rnd(50)) : -1;
        int r = green_chan_send(ch, &id, dl);
        int e = err_now();
        if (r == 0) {
            set_state(id, ST_SENT);
            sends_ok++;
        } else {
            set_state(id, ST_FAILED);
            sends_failed++;
            if (!expected_err(e))
                VIOLATION("send: %s", strerror(e));
        }
        end_deadline(pushed);
        if (r != 0 && e == ECANCELED)
            return NULL;
        if (rnd(4) == 0 && green_sleep(1) != 0) /* a pace: the tally holds two bytes a message */
            return NULL;
        note_hub(&hub);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    struct slot *s = arg;
    ran_here();
    while (!stopping) {
        int pushed = take_deadline(s);
        uint64_t id = 0, id2 = 0;
        int64_t dl = rnd(4) ? green_after(rnd(50)) : -1;
        int r, e;
        if (rnd(2)) {
            r = green_chan_recv(rnd(2) ? chan_buf : chan_sync, &id, dl);
            e = err_now();
        } else {
            green_clause_t c[2] = {{.ch = chan_buf, .op = GREEN_CHAN_RECV, .elem = &id},
                                   {.ch = chan_sync, .op = GREEN_CHAN_RECV, .elem = &id2}};
            r = green_choose(c, 2, dl);
            e = err_now();
            if (r >= 0 && c[r].err) {
                VIOLATION("choose recv: clause err %s", strerror(c[r].err));
                r = -1;
            } else if (r == 1)
                id = id2;
            r = r >= 0 ? 0 : -1;
        }
        if (r == 0)
            received(id);
        else if (!expected_err(e))
            VIOLATION("recv: %s", strerror(e));
        end_deadline(pushed);
        if (r != 0 && e == ECANCELED)
            return NULL;
    }
    return NULL;
}

/* ---- the thread pool ---- */

static atomic_ulong jobs_started, jobs_finished;

static void *blocking_job(void *arg)
{
    atomic_fetch_add(&jobs_started, 1);
    struct timespec ts = {0, (long)(uintptr_t)arg * 1000L};
    nanosleep(&ts, NULL);
    atomic_fetch_add(&jobs_finished, 1);
    return arg;
}

static atomic_ullong pool_ok, pool_failed;

static void *pool_user(void *arg)
{
    struct slot *s = arg;
    ran_here();
    while (!stopping) {
        int pushed = take_deadline(s);
        void *res = NULL;
        uintptr_t us = rnd(3000);
        int r = green_run_blocking(blocking_job, (void *)us, &res, rnd(3) ? green_after(rnd(5)) : -1);
        int e = err_now();
        end_deadline(pushed);
        if (r == 0) {
            pool_ok++;
            if (res != (void *)us)
                VIOLATION("run_blocking result %p, not %p", res, (void *)us);
        } else {
            pool_failed++;
            if (!expected_err(e))
                VIOLATION("run_blocking: %s", strerror(e));
            if (e == ECANCELED)
                return NULL;
        }
    }
    return NULL;
}

/* ---- mutexes ---- */

enum { NMUTEX = 4 };
static green_mutex_t mutexes[NMUTEX];
static _Atomic(green_t) inside[NMUTEX];
static atomic_ullong locks_ok, locks_failed;

static void *mutex_holder(void *arg)
{
    struct slot *s = arg;
    ran_here();
    while (!stopping) {
        int pushed = take_deadline(s);
        int i = (int)rnd(NMUTEX);
        int r = green_mutex_lock(&mutexes[i], rnd(2) ? green_after(rnd(20)) : -1);
        int e = err_now();
        if (r == 0 || (r < 0 && e == EOWNERDEAD)) {
            if (r < 0)
                VIOLATION("EOWNERDEAD: a holder ended without unlocking");
            if (inside[i])
                VIOLATION("mutex %d: two holders", i);
            inside[i] = green_current();
            locks_ok++;
            /* hold it across waits that can be cut short */
            if (rnd(2))
                green_sleep(rnd(3));
            else
                green_yield();
            if (inside[i] != green_current())
                VIOLATION("mutex %d: another holder came in", i);
            inside[i] = NULL;
            if (green_mutex_unlock(&mutexes[i]) != 0)
                VIOLATION("unlock: %s", strerror(err_now()));
        } else {
            locks_failed++;
            if (!expected_err(e))
                VIOLATION("lock: %s", strerror(e));
        }
        end_deadline(pushed);
        if (green_cancelled())
            return NULL;
    }
    return NULL;
}

/* ---- a condition and a semaphore ---- */

static green_mutex_t cond_mutex;
static green_cond_t cond;
static _Atomic(green_t) cond_inside;
static atomic_ullong cond_waits, cond_signals;

/* Waits for the condition, or signals it; a cond_wait that fails still relocks. */
static void *cond_user(void *arg)
{
    struct slot *s = arg;
    ran_here();
    while (!stopping) {
        int pushed = take_deadline(s);
        int r = green_mutex_lock(&cond_mutex, green_after(rnd(20)));
        int e = err_now();
        if (r == 0) {
            if (cond_inside)
                VIOLATION("cond mutex: two holders");
            if (rnd(2)) {
                int w = green_cond_wait(&cond, &cond_mutex, rnd(2) ? green_after(rnd(20)) : -1);
                int we = err_now();
                if (w == 0)
                    cond_waits++;
                else if (!expected_err(we))
                    VIOLATION("cond_wait: %s", strerror(we));
                if (cond_inside)
                    VIOLATION("cond_wait returned without the mutex");
            } else {
                cond_inside = green_current();
                if (rnd(2))
                    green_cond_signal(&cond);
                else
                    green_cond_broadcast(&cond);
                cond_signals++;
                green_yield();
                if (cond_inside != green_current())
                    VIOLATION("cond mutex: another holder came in");
                cond_inside = NULL;
            }
            if (green_mutex_unlock(&cond_mutex) != 0)
                VIOLATION("cond unlock: %s", strerror(err_now()));
        } else if (!expected_err(e))
            VIOLATION("cond lock: %s", strerror(e));
        end_deadline(pushed);
        if (green_cancelled())
            return NULL;
    }
    return NULL;
}

enum { SEM_PERMITS = 3 };
static green_sem_t sem;
static atomic_int sem_holders;
static atomic_ullong sem_acquired;

static void *sem_user(void *arg)
{
    struct slot *s = arg;
    int hub = green_hub_self();
    ran_here();
    while (!stopping) {
        int pushed = take_deadline(s);
        int r = green_sem_acquire(&sem, rnd(2) ? green_after(rnd(10)) : -1);
        int e = err_now();
        if (r == 0) {
            int held = atomic_fetch_add(&sem_holders, 1) + 1;
            if (held > SEM_PERMITS)
                VIOLATION("semaphore: %d holders of %d permits", held, SEM_PERMITS);
            sem_acquired++;
            green_sleep(rnd(3));
            note_hub(&hub);
            atomic_fetch_sub(&sem_holders, 1);
            if (green_sem_release(&sem) != 0)
                VIOLATION("sem_release: %s", strerror(err_now()));
        } else if (!expected_err(e))
            VIOLATION("sem_acquire: %s", strerror(e));
        end_deadline(pushed);
        if (green_cancelled())
            return NULL;
    }
    return NULL;
}

/* ---- timeout scopes ---- */

static green_event_t never;

static void *scoper(void *arg)
{
    struct slot *s = arg;
    int hub = green_hub_self();
    ran_here();
    while (!stopping) {
        int pushed = take_deadline(s);
        int depth = 1 + (int)rnd(4), done = 0;
        int64_t start = green_now(), earliest = -1;
        for (; done < depth; done++) {
            int64_t ms = 1 + rnd(30);
            if (green_timeout_push(ms) != 0) {
                VIOLATION("push: %s", strerror(err_now()));
                break;
            }
            if (earliest < 0 || start + ms < earliest)
                earliest = start + ms;
        }
        int r = rnd(2) ? green_event_wait(&never, -1) : green_sleep(1000);
        int e = err_now();
        int64_t now = green_now();
        note_hub(&hub);
        for (int i = 0; i < done; i++)
            if (green_timeout_pop() != 0)
                VIOLATION("pop: %s", strerror(err_now()));
        end_deadline(pushed);
        if (r == 0)
            VIOLATION("a wait under a timeout scope returned 0");
        else if (e == ETIMEDOUT) {
            scopes_timed_out++;
            if (!pushed && now < earliest)
                VIOLATION("ETIMEDOUT %lld ms before the scope's deadline", (long long)(earliest - now));
        } else if (e == ECANCELED)
            return NULL;
        else
            VIOLATION("scope wait: %s", strerror(e));
    }
    return NULL;
}

/* ---- a group ---- */

static green_group_t group;
static atomic_ullong members_spawned;

static void *member(void *arg)
{
    ran_here_as(1);
    green_sleep((int64_t)(uintptr_t)arg);
    return NULL;
}

static void *grouper(void *arg)
{
    struct slot *s = arg;
    ran_here();
    while (!stopping) {
        int pushed = take_deadline(s);
        int r = 0;
        switch (rnd(4)) {
        case 0: case 1:
            if (green_group_spawn(&group, member, (void *)(uintptr_t)rnd(20), green_after(rnd(10))))
                members_spawned++;
            else
                r = -1;
            break;
        case 2: r = green_group_join(&group, green_after(rnd(10))); break;
        case 3: if (rnd(8) == 0) green_group_kill(&group); else r = green_sleep(rnd(5)); break;
        }
        int e = err_now();
        end_deadline(pushed);
        if (r != 0 && !expected_err(e))
            VIOLATION("group: %s", strerror(e));
        if (r != 0 && e == ECANCELED)
            return NULL;
    }
    return NULL;
}

/* ---- a server and its clients ---- */

enum { MAX_HANDLERS = 256 };
static _Atomic(green_t) handlers[MAX_HANDLERS];
static char port[16];
static atomic_ullong echoes_ok, echoes_cut, conns_made;

static void echo_handler(int fd, void *arg)
{
    (void)arg;
    ran_here_as(1);
    int me = -1;
    green_t self = green_current();
    for (int i = 0; i < MAX_HANDLERS; i++) {
        green_t none = NULL;
        if (atomic_compare_exchange_strong(&handlers[i], &none, self)) {
            me = i;
            break;
        }
    }
    char buf[2048];
    ssize_t n;
    while ((n = green_read(fd, buf, sizeof buf, green_after(2000))) > 0)
        if (green_write(fd, buf, (size_t)n, green_after(2000)) != n)
            break;
    if (me >= 0)
        atomic_store(&handlers[me], NULL);
}

static void *net_client(void *arg)
{
    struct slot *s = arg;
    ran_here();
    while (!stopping) {
        int pushed = take_deadline(s);
        int fd = green_tcp_connect("127.0.0.1", port, green_after(1000));
        int e = err_now();
        if (fd < 0) {
            end_deadline(pushed);
            if (!expected_err(e))
                VIOLATION("connect: %s", strerror(e));
            if (e == ECANCELED)
                return NULL;
            continue;
        }
        conns_made++;
        for (int round = 0, n = 1 + (int)rnd(5); round < n; round++) {
            char out[512], back[512];
            size_t len = 1 + rnd(sizeof out);
            for (size_t i = 0; i < len; i++)
                out[i] = (char)rnd64();
            if (green_write(fd, out, len, green_after(500)) != (ssize_t)len) {
                echoes_cut++;
                break;
            }
            size_t got = 0;
            while (got < len) {
                ssize_t r = green_read(fd, back + got, len - got, green_after(500));
                if (r <= 0)
                    break;
                got += (size_t)r;
            }
            if (memcmp(out, back, got) != 0)
                VIOLATION("echo: wrong bytes back");
            if (got < len) {
                echoes_cut++; /* the handler was killed, or a deadline cut it short */
                break;
            }
            echoes_ok++;
        }
        if (green_close(fd) != 0)
            VIOLATION("close: %s", strerror(err_now()));
        end_deadline(pushed);
        if (green_cancelled())
            return NULL;
    }
    return NULL;
}

/* A server started and stopped over and over, with clients on it: the stop may be cut
 * by a kill (then it completes by itself) while handlers are mid-echo. */
static atomic_ullong servers_cycled, stops_cut;

static void *cycle_client(void *arg)
{
    ran_here_as(1);
    int fd = green_tcp_connect("127.0.0.1", (const char *)arg, green_after(200));
    if (fd < 0)
        return NULL;
    char buf[64] = "ping";
    while (green_write(fd, buf, sizeof buf, green_after(200)) == (ssize_t)sizeof buf &&
           green_read(fd, buf, sizeof buf, green_after(200)) > 0)
        ;
    green_close(fd);
    return NULL;
}

static void *server_cycler(void *arg)
{
    struct slot *s = arg;
    ran_here();
    while (!stopping) {
        int pushed = take_deadline(s);
        int lfd = green_tcp_listen("127.0.0.1", "0", 16);
        if (lfd < 0) {
            VIOLATION("listen: %s", strerror(err_now()));
            end_deadline(pushed);
            return NULL;
        }
        char *p = malloc(16);
        snprintf(p, 16, "%d", green_socket_port(lfd));
        green_serve_opts_t o = {.max_conns = 4};
        green_server_t *srv = green_serve(lfd, echo_handler, NULL, &o);
        if (!srv)
            VIOLATION("green_serve: %s", strerror(err_now()));
        green_t cl[3];
        green_attr_t ca = {.hub = nhubs > 1 ? GREEN_HUB_ANY : 0}; /* joined across hubs */
        for (int i = 0; i < 3; i++)
            cl[i] = green_spawn_attr(cycle_client, p, &ca);
        green_sleep(rnd(20));
        if (srv) {
            if (green_server_stop(srv, green_after(rnd(10))) != 0) {
                if (!expected_err(err_now())) /* a kill or the driver's scope: it completes alone */
                    VIOLATION("green_server_stop: %s", strerror(err_now()));
                stops_cut++;
            }
            servers_cycled++;
        }
        /* the clients end by themselves (EOF or their deadlines): join them shielded,
         * out of the driver's scope */
        end_deadline(pushed);
        pushed = 0;
        green_shield_push();
        for (int i = 0; i < 3; i++)
            if (cl[i] && green_join(cl[i], NULL, -1) != 0)
                VIOLATION("join of a cycle client: %s", strerror(err_now()));
        green_shield_pop();
        free(p);
        if (green_close(lfd) != 0)
            VIOLATION("close of a listener: %s", strerror(err_now()));
        end_deadline(pushed);
        if (green_cancelled())
            return NULL;
    }
    return NULL;
}

/* ---- the driver ---- */

static void *driver(void *arg)
{
    int64_t end = *(int64_t *)arg;
    while (green_now() < end) {
        if (green_sleep(rnd(6)) != 0)
            break;
        uint32_t what = rnd(10);
        if (what < 5) {
            struct slot *s = &slots[rnd((uint32_t)nslots)];
            if (s->g && green_kill(s->g) == 0)
                kills++;
        } else if (what < 9) {
            slots[rnd((uint32_t)nslots)].deadline_ms = 1 + rnd(40);
        } else {
            green_t h = handlers[rnd(MAX_HANDLERS)];
            if (h && green_kill(h) == 0)
                handler_kills++;
        }
    }
    return NULL;
}

static long fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    long n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    if (d)
        closedir(d);
    return n - 1;
}

/* hub: attr.hub for the slot's workers (GREEN_HUB_ANY with CHAOS_HUBS, else 0) */
static void add_slots(green_fn fn, int n, int hub)
{
    for (int i = 0; i < n && nslots < MAX_SLOTS; i++) {
        slots[nslots].fn = fn;
        slots[nslots].index = nslots;
        slots[nslots].hub = hub;
        nslots++;
    }
}

/* Run on hub n (attr.hub = n): a first sleep and a pool job there (so that the hub's
 * poller and the like exist before the fd baseline), or its stats at the end. */
static void *hub_warm(void *arg)
{
    (void)arg;
    void *res;
    green_sleep(1);
    green_run_blocking(blocking_job, (void *)0, &res, -1);
    return NULL;
}

static void *hub_stats(void *arg)
{
    green_stats_t *st = arg;
    for (int i = 0; i < 100; i++) { /* remote burials and pool results may be on their way */
        green_stats(st);
        if (st->alive <= 1 && !st->ready && !st->timers && !st->fds)
            break;
        green_sleep(10);
    }
    return NULL;
}

static green_t on_hub(int n, green_fn fn, void *arg)
{
    green_attr_t attr = {.hub = n};
    green_t g = green_spawn_attr(fn, arg, &attr);
    if (!g)
        VIOLATION("spawn on hub %d: %s", n, strerror(errno));
    return g;
}

int main(void)
{
    const char *env = getenv("CHAOS_SECONDS");
    long seconds = env ? atol(env) : 600;
    env = getenv("CHAOS_SEED");
    seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    env = getenv("CHAOS_HUBS");
    int want = env ? atoi(env) : 1;
    if (want < 1 || want >= MAX_HUBS)
        return fprintf(stderr, "chaos: CHAOS_HUBS=%s: 1..%d\n", env, MAX_HUBS - 1), 2;
    if (want > 1 && (nhubs = green_hubs_start(want)) < 0)
        return perror("green_hubs_start"), 1;
    int any = nhubs > 1 ? GREEN_HUB_ANY : 0;
    printf("chaos: seed %llu (CHAOS_SEED=%llu replays it), %ld s, %d hub%s\n", (unsigned long long)seed,
           (unsigned long long)seed, seconds, nhubs, nhubs > 1 ? "s" : "");
    fflush(stdout);

    /* the hubs and the pool exist before the fd baseline */
    void *res;
    green_run_blocking(blocking_job, (void *)0, &res, -1);
    green_sleep(1);
    for (int n = 2; n <= nhubs; n++) {
        green_t g = on_hub(n, hub_warm, NULL);
        if (g)
            green_join(g, NULL, -1);
    }
    long fds0 = fd_count();

    chan_buf = green_chan_new(sizeof(uint64_t), 16);
    chan_sync = green_chan_new(sizeof(uint64_t), 0);
    green_event_init(&never);
    green_group_init(&group, 8);
    for (int i = 0; i < NMUTEX; i++)
        green_mutex_init(&mutexes[i], GREEN_MUTEX_NORMAL);
    green_mutex_init(&cond_mutex, GREEN_MUTEX_NORMAL);
    green_cond_init(&cond);
    green_sem_init(&sem, SEM_PERMITS);
    int lfd = green_tcp_listen("127.0.0.1", "0", 256);
    if (lfd < 0)
        return perror("listen"), 1;
    snprintf(port, sizeof port, "%d", green_socket_port(lfd));
    green_serve_opts_t opts = {.max_conns = 64};
    green_server_t *srv = green_serve(lfd, echo_handler, NULL, &opts);
    if (!srv)
        return perror("green_serve"), 1;

    /* the grouper uses the group of main's hub; the server cycler's green_server_stop is
     * made on the thread that called green_serve: both stay on main's hub (0: the
     * supervisor's, main's) */
    add_slots(producer, 6, any);
    add_slots(consumer, 6, any);
    add_slots(pool_user, 4, any);
    add_slots(mutex_holder, 6, any);
    add_slots(cond_user, 5, any);
    add_slots(sem_user, 5, any);
    add_slots(scoper, 4, any);
    add_slots(grouper, 3, 0);
    add_slots(net_client, 8, any);
    add_slots(server_cycler, 2, 0);
    green_t sup[MAX_SLOTS];
    for (int i = 0; i < nslots; i++)
        sup[i] = green_spawn(supervisor, &slots[i]);

    int64_t end = green_after(seconds * 1000);
    green_t drv = green_spawn(driver, &end);
    for (int64_t next_report = green_after(10000); green_now() < end;) {
        green_sleep_until(end < next_report ? end : next_report);
        if (green_now() >= next_report) {
            printf("chaos: %lld s: %llu kills (+%llu handlers), %llu deadlines, %llu messages sent, %llu received, %llu violations\n",
                   (long long)(seconds * 1000 - (end - green_now())) / 1000, (unsigned long long)kills,
                   (unsigned long long)handler_kills, (unsigned long long)deadlines_pushed,
                   (unsigned long long)sends_ok, (unsigned long long)recvs, (unsigned long long)violations);
            fflush(stdout);
            next_report += 10000;
        }
    }
    green_join(drv, NULL, -1);

    /* the end: stop the workers (kills, as the driver's), then drain and check */
    stopping = 1;
    for (int i = 0; i < nslots; i++)
        if (slots[i].g)
            green_kill(slots[i].g);
    if (green_joinall(sup, (size_t)nslots, green_after(10000)) != 0)
        VIOLATION("supervisors still running 10 s after the end: %s", strerror(errno));

    uint64_t id;
    while (green_chan_recv(chan_buf, &id, 0) == 0)
        received(id);
    if (green_chan_recv(chan_sync, &id, 0) == 0)
        VIOLATION("a sender still waits on the unbuffered channel");
    unsigned long long lost = 0, twice = 0, ghost = 0, trying = 0, made = atomic_load(&nmsg);
    for (uint64_t i = 0; i < made; i++) {
        struct msg_chunk *c = chunk_of(i);
        unsigned char st = atomic_load(&c->state[i & (CHUNK - 1)]), got = atomic_load(&c->recv[i & (CHUNK - 1)]);
        if (st == ST_SENT && got == 0)
            lost++;
        else if (got > 1)
            twice++;
        else if (st == ST_FAILED && got)
            ghost++;
        else if (st == ST_TRYING)
            trying++;
    }
    if (lost || twice || ghost || trying)
        VIOLATION("messages: %llu sent but lost, %llu received twice, %llu received though the send failed, "
                  "%llu sends never returned", lost, twice, ghost, trying);

    if (green_server_stop(srv, green_after(2000)) != 0)
        VIOLATION("green_server_stop: %s", strerror(errno));
    green_close(lfd);
    green_group_kill(&group);
    if (green_group_join(&group, green_after(5000)) != 0 || green_group_size(&group) != 0)
        VIOLATION("group not empty: %zu members", green_group_size(&group));
    if (green_group_destroy(&group) != 0)
        VIOLATION("group_destroy: %s", strerror(errno));
    for (int i = 0; i < NMUTEX; i++) {
        if (green_mutex_trylock(&mutexes[i]) != 0)
            VIOLATION("mutex %d not free: %s", i, strerror(errno));
        else
            green_mutex_unlock(&mutexes[i]);
        if (green_mutex_destroy(&mutexes[i]) != 0)
            VIOLATION("mutex_destroy: %s", strerror(errno));
    }
    if (green_mutex_trylock(&cond_mutex) != 0)
        VIOLATION("the condition's mutex not free: %s", strerror(errno));
    else
        green_mutex_unlock(&cond_mutex);
    if (green_mutex_destroy(&cond_mutex) != 0 || green_cond_destroy(&cond) != 0)
        VIOLATION("mutex/cond_destroy: %s", strerror(errno));
    if (green_sem_value(&sem) != SEM_PERMITS)
        VIOLATION("semaphore: %ld permits at the end, not %d", green_sem_value(&sem), SEM_PERMITS);
    if (green_sem_destroy(&sem) != 0)
        VIOLATION("sem_destroy: %s", strerror(errno));
    for (int i = 0; i < 500 && atomic_load(&jobs_finished) != atomic_load(&jobs_started); i++)
        green_sleep(10);
    if (atomic_load(&jobs_finished) != atomic_load(&jobs_started))
        VIOLATION("pool: %lu jobs started, %lu finished", atomic_load(&jobs_started), atomic_load(&jobs_finished));
    if (green_chan_free(chan_buf) != 0 || green_chan_free(chan_sync) != 0)
        VIOLATION("chan_free: %s", strerror(errno));
    if (green_event_destroy(&never) != 0)
        VIOLATION("event_destroy: %s", strerror(errno));

    green_stats_t st;
    for (int i = 0; i < 100; i++) { /* pool results may still be on their way back */
        green_stats(&st);
        if (!st.alive && !st.ready && !st.timers && !st.fds && !st.pool_queued)
            break;
        green_sleep(10);
    }
    if (st.alive || st.ready || st.waiting > 0 || st.timers || st.fds || st.pool_queued)
        VIOLATION("hub not idle: %llu alive, %llu ready, %llu waiting, %llu timers, %llu fds, %llu pool jobs queued",
                  (unsigned long long)st.alive, (unsigned long long)st.ready, (unsigned long long)st.waiting,
                  (unsigned long long)st.timers, (unsigned long long)st.fds, (unsigned long long)st.pool_queued);
    /* the other hubs: a green thread placed on each finds itself the only one alive there,
     * nothing ready, timed or watched (their roots wait for ever: not counted) */
    unsigned long long others_alive = 0, others_busy = 0;
    for (int n = 2; n <= nhubs; n++) {
        green_stats_t hs = {0};
        green_t g = on_hub(n, hub_stats, &hs);
        if (!g || green_join(g, NULL, green_after(5000)) != 0) {
            VIOLATION("hub %d: no stats", n);
            continue;
        }
        others_alive += hs.alive - 1;
        others_busy += hs.ready + hs.timers + hs.fds;
        if (hs.alive != 1 || hs.ready || hs.timers || hs.fds)
            VIOLATION("hub %d not idle: %llu alive besides the checker, %llu ready, %llu timers, %llu fds", n,
                      (unsigned long long)hs.alive - 1, (unsigned long long)hs.ready,
                      (unsigned long long)hs.timers, (unsigned long long)hs.fds);
    }
    long fds1 = fd_count();
    if (fds1 != fds0)
        VIOLATION("fds: %ld open before, %ld after", fds0, fds1);

    unsigned long long runs = 0;
    for (int i = 0; i < nslots; i++)
        runs += slots[i].runs;
    printf("chaos: seed %llu: %llu kills of workers, %llu of server handlers, %llu deadlines pushed; %llu worker runs\n",
           (unsigned long long)seed, (unsigned long long)kills, (unsigned long long)handler_kills,
           (unsigned long long)deadlines_pushed, runs);
    printf("chaos: messages: %llu sent, %llu sends failed, %llu received; pool: %llu jobs done, %llu abandoned "
           "(%lu jobs run: a wait already over queues none); mutex: %llu held, %llu locks failed; %llu scopes timed out; %llu group members; "
           "net: %llu connections, %llu echoes, %llu cut; cond: %llu waits woken, %llu signals; "
           "semaphore: %llu acquired; %llu servers started and stopped (%llu stops cut by a kill or a scope)\n",
           (unsigned long long)sends_ok, (unsigned long long)sends_failed, (unsigned long long)recvs,
           (unsigned long long)pool_ok, (unsigned long long)pool_failed, atomic_load(&jobs_finished),
           (unsigned long long)locks_ok, (unsigned long long)locks_failed, (unsigned long long)scopes_timed_out,
           (unsigned long long)members_spawned, (unsigned long long)conns_made, (unsigned long long)echoes_ok,
           (unsigned long long)echoes_cut, (unsigned long long)cond_waits, (unsigned long long)cond_signals,
           (unsigned long long)sem_acquired, (unsigned long long)servers_cycled, (unsigned long long)stops_cut);
    printf("chaos: green threads that ran, by the hub they started on: workers");
    for (int n = 1; n <= nhubs; n++)
        printf(" hub %d %llu%s", n, (unsigned long long)ran_on[0][n], n < nhubs ? "," : "");
    printf("; handlers, group members, cycle clients");
    for (int n = 1; n <= nhubs; n++)
        printf(" hub %d %llu%s", n, (unsigned long long)ran_on[1][n], n < nhubs ? "," : "");
    printf("; %llu moves seen by workers across their sleeps\n", (unsigned long long)moves_seen);
    printf("chaos: hub after: %llu alive, %llu waiting, %llu timers, %llu fds watched", (unsigned long long)st.alive,
           (unsigned long long)st.waiting, (unsigned long long)st.timers, (unsigned long long)st.fds);
    if (nhubs > 1)
        printf("; hubs 2..%d: %llu alive besides the checker, %llu ready+timers+fds", nhubs, others_alive, others_busy);
    printf("; fds %ld before, %ld after\n", fds0, fds1);
    printf("chaos: %llu violations: %s\n", (unsigned long long)violations, violations ? "FAIL" : "PASS");
    for (int i = 0; i < MAX_CHUNKS; i++)
        free(atomic_load(&msg_chunks[i]));
    return violations ? 1 : 0;
}
