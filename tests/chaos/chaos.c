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
 * printed, so a failing run can be replayed — the interleaving depends on timing too).
 *
 * Checked at the end: every message was received exactly once if its send succeeded and
 * never if it failed; mutual exclusion was never broken and every mutex is free
 * (trylock succeeds); every timeout scope ended at or after its deadline; every echo
 * that came back was the bytes sent; the group is empty; every pool job ran to its end;
 * the hub is idle (no green thread alive, nothing ready, waiting, timed or watched) and
 * no fd is left open beyond those open before. Exit 0 when all hold. */
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

static uint64_t rng;
static uint64_t rnd64(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}
static uint32_t rnd(uint32_t n) { return (uint32_t)(rnd64() >> 11) % n; }

static unsigned long long violations;
#define VIOLATION(...) \
    do { \
        if (violations++ < 20) { \
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
    green_t g;            /* the running worker, NULL between two */
    int64_t deadline_ms;  /* > 0: the driver asks for a timeout scope of this length */
    int index;
    unsigned long long runs;
};

enum { MAX_SLOTS = 64 };
static struct slot slots[MAX_SLOTS];
static int nslots;
static int stopping;
static unsigned long long kills, handler_kills, deadlines_pushed, scopes_timed_out;

/* Takes the deadline the driver set for this slot, if any: pushed as a scope (1), else 0. */
static int take_deadline(struct slot *s)
{
    if (s->deadline_ms <= 0)
        return 0;
    int64_t ms = s->deadline_ms;
    s->deadline_ms = 0;
    if (green_timeout_push(ms) != 0) {
        VIOLATION("green_timeout_push(%lld): %s", (long long)ms, strerror(errno));
        return 0;
    }
    deadlines_pushed++;
    return 1;
}

static void end_deadline(int pushed)
{
    if (pushed && green_timeout_pop() != 0)
        VIOLATION("green_timeout_pop: %s", strerror(errno));
}

static void *supervisor(void *arg)
{
    struct slot *s = arg;
    while (!stopping) {
        /* odd slots run on the shared stack: their stacks move while they wait */
        green_attr_t attr = {.stack_mode = s->index % 2 ? GREEN_STACK_SHARED : GREEN_STACK_DEDICATED};
        s->g = green_spawn_attr(s->fn, s, &attr);
        if (!s->g) {
            VIOLATION("spawn: %s", strerror(errno));
            return NULL;
        }
        s->runs++;
        green_t g = s->g;
        /* the supervisor is never killed: this join waits as long as it must */
        if (green_join(g, NULL, -1) != 0)
            VIOLATION("join of a worker: %s", strerror(errno));
        s->g = NULL;
    }
    return NULL;
}

/* ---- messages on channels ---- */

enum { ST_TRYING = 0, ST_SENT = 1, ST_FAILED = 2 };
static unsigned char *msg_state, *msg_recv; /* two bytes a message */
static size_t nmsg, msg_cap;
static green_chan_t *chan_buf, *chan_sync;
static unsigned long long sends_ok, sends_failed, recvs;

static uint64_t new_msg(void)
{
    if (nmsg == msg_cap) {
        msg_cap = msg_cap ? msg_cap * 2 : 1 << 16;
        msg_state = realloc(msg_state, msg_cap);
        msg_recv = realloc(msg_recv, msg_cap);
        if (!msg_state || !msg_recv)
            abort();
    }
    msg_state[nmsg] = ST_TRYING;
    msg_recv[nmsg] = 0;
    return nmsg++;
}

static void received(uint64_t id)
{
    if (id >= nmsg) {
        VIOLATION("received message %llu never made", (unsigned long long)id);
        return;
    }
    if (msg_recv[id] < 255)
        msg_recv[id]++;
    recvs++;
}

static void *producer(void *arg)
{
    struct slot *s = arg;
    while (!stopping) {
        int pushed = take_deadline(s);
        green_chan_t *ch = rnd(2) ? chan_buf : chan_sync;
        uint64_t id = new_msg();
        int64_t dl = rnd(4) ? green_after(rnd(50)) : -1;
        int r = green_chan_send(ch, &id, dl);
        int e = errno;
        if (r == 0) {
            msg_state[id] = ST_SENT;
            sends_ok++;
        } else {
            msg_state[id] = ST_FAILED;
            sends_failed++;
            if (!expected_err(e))
                VIOLATION("send: %s", strerror(e));
        }
        end_deadline(pushed);
        if (r != 0 && e == ECANCELED)
            return NULL;
        if (rnd(4) == 0 && green_sleep(1) != 0) /* a pace: the tally holds a byte a message */
            return NULL;
    }
    return NULL;
}

static void *consumer(void *arg)
{
    struct slot *s = arg;
    while (!stopping) {
        int pushed = take_deadline(s);
        uint64_t id = 0, id2 = 0;
        int64_t dl = rnd(4) ? green_after(rnd(50)) : -1;
        int r, e;
        if (rnd(2)) {
            r = green_chan_recv(rnd(2) ? chan_buf : chan_sync, &id, dl);
            e = errno;
        } else {
            green_clause_t c[2] = {{.ch = chan_buf, .op = GREEN_CHAN_RECV, .elem = &id},
                                   {.ch = chan_sync, .op = GREEN_CHAN_RECV, .elem = &id2}};
            r = green_choose(c, 2, dl);
            e = errno;
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

static unsigned long long pool_ok, pool_failed;

static void *pool_user(void *arg)
{
    struct slot *s = arg;
    while (!stopping) {
        int pushed = take_deadline(s);
        void *res = NULL;
        uintptr_t us = rnd(3000);
        int r = green_run_blocking(blocking_job, (void *)us, &res, rnd(3) ? green_after(rnd(5)) : -1);
        int e = errno;
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
static green_t inside[NMUTEX];
static unsigned long long locks_ok, locks_failed;

static void *mutex_holder(void *arg)
{
    struct slot *s = arg;
    while (!stopping) {
        int pushed = take_deadline(s);
        int i = (int)rnd(NMUTEX);
        int r = green_mutex_lock(&mutexes[i], rnd(2) ? green_after(rnd(20)) : -1);
        int e = errno;
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
                VIOLATION("unlock: %s", strerror(errno));
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
static green_t cond_inside;
static unsigned long long cond_waits, cond_signals;

/* Waits for the condition, or signals it; a cond_wait that fails still relocks. */
static void *cond_user(void *arg)
{
    struct slot *s = arg;
    while (!stopping) {
        int pushed = take_deadline(s);
        int r = green_mutex_lock(&cond_mutex, green_after(rnd(20)));
        int e = errno;
        if (r == 0) {
            if (cond_inside)
                VIOLATION("cond mutex: two holders");
            if (rnd(2)) {
                int w = green_cond_wait(&cond, &cond_mutex, rnd(2) ? green_after(rnd(20)) : -1);
                int we = errno;
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
                VIOLATION("cond unlock: %s", strerror(errno));
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
static int sem_holders;
static unsigned long long sem_acquired;

static void *sem_user(void *arg)
{
    struct slot *s = arg;
    while (!stopping) {
        int pushed = take_deadline(s);
        int r = green_sem_acquire(&sem, rnd(2) ? green_after(rnd(10)) : -1);
        int e = errno;
        if (r == 0) {
            if (++sem_holders > SEM_PERMITS)
                VIOLATION("semaphore: %d holders of %d permits", sem_holders, SEM_PERMITS);
            sem_acquired++;
            green_sleep(rnd(3));
            sem_holders--;
            if (green_sem_release(&sem) != 0)
                VIOLATION("sem_release: %s", strerror(errno));
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
    while (!stopping) {
        int pushed = take_deadline(s);
        int depth = 1 + (int)rnd(4), done = 0;
        int64_t start = green_now(), earliest = -1;
        for (; done < depth; done++) {
            int64_t ms = 1 + rnd(30);
            if (green_timeout_push(ms) != 0) {
                VIOLATION("push: %s", strerror(errno));
                break;
            }
            if (earliest < 0 || start + ms < earliest)
                earliest = start + ms;
        }
        int r = rnd(2) ? green_event_wait(&never, -1) : green_sleep(1000);
        int e = errno;
        int64_t now = green_now();
        for (int i = 0; i < done; i++)
            if (green_timeout_pop() != 0)
                VIOLATION("pop: %s", strerror(errno));
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
static unsigned long long members_spawned;

static void *member(void *arg)
{
    green_sleep((int64_t)(uintptr_t)arg);
    return NULL;
}

static void *grouper(void *arg)
{
    struct slot *s = arg;
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
        int e = errno;
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
static green_t handlers[MAX_HANDLERS];
static char port[16];
static unsigned long long echoes_ok, echoes_cut, conns_made;

static void echo_handler(int fd, void *arg)
{
    (void)arg;
    int me = -1;
    for (int i = 0; i < MAX_HANDLERS; i++)
        if (!handlers[i]) {
            handlers[me = i] = green_current();
            break;
        }
    char buf[2048];
    ssize_t n;
    while ((n = green_read(fd, buf, sizeof buf, green_after(2000))) > 0)
        if (green_write(fd, buf, (size_t)n, green_after(2000)) != n)
            break;
    if (me >= 0)
        handlers[me] = NULL;
}

static void *net_client(void *arg)
{
    struct slot *s = arg;
    while (!stopping) {
        int pushed = take_deadline(s);
        int fd = green_tcp_connect("127.0.0.1", port, green_after(1000));
        int e = errno;
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
            VIOLATION("close: %s", strerror(errno));
        end_deadline(pushed);
        if (green_cancelled())
            return NULL;
    }
    return NULL;
}

/* A server started and stopped over and over, with clients on it: the stop may be cut
 * by a kill (then it completes by itself) while handlers are mid-echo. */
static unsigned long long servers_cycled, stops_cut;

static void *cycle_client(void *arg)
{
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
    while (!stopping) {
        int pushed = take_deadline(s);
        int lfd = green_tcp_listen("127.0.0.1", "0", 16);
        if (lfd < 0) {
            VIOLATION("listen: %s", strerror(errno));
            end_deadline(pushed);
            return NULL;
        }
        char *p = malloc(16);
        snprintf(p, 16, "%d", green_socket_port(lfd));
        green_serve_opts_t o = {.max_conns = 4};
        green_server_t *srv = green_serve(lfd, echo_handler, NULL, &o);
        if (!srv)
            VIOLATION("green_serve: %s", strerror(errno));
        green_t cl[3];
        for (int i = 0; i < 3; i++)
            cl[i] = green_spawn(cycle_client, p);
        green_sleep(rnd(20));
        if (srv) {
            if (green_server_stop(srv, green_after(rnd(10))) != 0) {
                if (!expected_err(errno)) /* a kill or the driver's scope: it completes alone */
                    VIOLATION("green_server_stop: %s", strerror(errno));
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
                VIOLATION("join of a cycle client: %s", strerror(errno));
        green_shield_pop();
        free(p);
        if (green_close(lfd) != 0)
            VIOLATION("close of a listener: %s", strerror(errno));
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

static void add_slots(green_fn fn, int n)
{
    for (int i = 0; i < n && nslots < MAX_SLOTS; i++) {
        slots[nslots].fn = fn;
        slots[nslots].index = nslots;
        nslots++;
    }
}

int main(void)
{
    const char *env = getenv("CHAOS_SECONDS");
    long seconds = env ? atol(env) : 600;
    env = getenv("CHAOS_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    rng = seed ? seed : 1;
    printf("chaos: seed %llu (CHAOS_SEED=%llu replays it), %ld s\n", (unsigned long long)seed,
           (unsigned long long)seed, seconds);
    fflush(stdout);

    /* the hub and the pool exist before the fd baseline */
    void *res;
    green_run_blocking(blocking_job, (void *)0, &res, -1);
    green_sleep(1);
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

    add_slots(producer, 6);
    add_slots(consumer, 6);
    add_slots(pool_user, 4);
    add_slots(mutex_holder, 6);
    add_slots(cond_user, 5);
    add_slots(sem_user, 5);
    add_slots(scoper, 4);
    add_slots(grouper, 3);
    add_slots(net_client, 8);
    add_slots(server_cycler, 2);
    green_t sup[MAX_SLOTS];
    for (int i = 0; i < nslots; i++)
        sup[i] = green_spawn(supervisor, &slots[i]);

    int64_t end = green_after(seconds * 1000);
    green_t drv = green_spawn(driver, &end);
    for (int64_t next_report = green_after(10000); green_now() < end;) {
        green_sleep_until(end < next_report ? end : next_report);
        if (green_now() >= next_report) {
            printf("chaos: %lld s: %llu kills (+%llu handlers), %llu deadlines, %llu messages sent, %llu received, %llu violations\n",
                   (long long)(seconds * 1000 - (end - green_now())) / 1000, kills, handler_kills,
                   deadlines_pushed, sends_ok, recvs, violations);
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
    unsigned long long lost = 0, twice = 0, ghost = 0, trying = 0;
    for (size_t i = 0; i < nmsg; i++) {
        if (msg_state[i] == ST_SENT && msg_recv[i] == 0)
            lost++;
        else if (msg_recv[i] > 1)
            twice++;
        else if (msg_state[i] == ST_FAILED && msg_recv[i])
            ghost++;
        else if (msg_state[i] == ST_TRYING)
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
    long fds1 = fd_count();
    if (fds1 != fds0)
        VIOLATION("fds: %ld open before, %ld after", fds0, fds1);

    unsigned long long runs = 0;
    for (int i = 0; i < nslots; i++)
        runs += slots[i].runs;
    printf("chaos: seed %llu: %llu kills of workers, %llu of server handlers, %llu deadlines pushed; %llu worker runs\n",
           (unsigned long long)seed, kills, handler_kills, deadlines_pushed, runs);
    printf("chaos: messages: %llu sent, %llu sends failed, %llu received; pool: %llu jobs done, %llu abandoned "
           "(%lu jobs run: a wait already over queues none); mutex: %llu held, %llu locks failed; %llu scopes timed out; %llu group members; "
           "net: %llu connections, %llu echoes, %llu cut; cond: %llu waits woken, %llu signals; "
           "semaphore: %llu acquired; %llu servers started and stopped (%llu stops cut by a kill or a scope)\n",
           sends_ok, sends_failed, recvs, pool_ok, pool_failed, atomic_load(&jobs_finished), locks_ok, locks_failed,
           scopes_timed_out, members_spawned, conns_made, echoes_ok, echoes_cut, cond_waits, cond_signals,
           sem_acquired, servers_cycled, stops_cut);
    printf("chaos: hub after: %llu alive, %llu waiting, %llu timers, %llu fds watched; fds %ld before, %ld after\n",
           (unsigned long long)st.alive, (unsigned long long)st.waiting, (unsigned long long)st.timers,
           (unsigned long long)st.fds, fds0, fds1);
    printf("chaos: %llu violations: %s\n", violations, violations ? "FAIL" : "PASS");
    free(msg_state);
    free(msg_recv);
    return violations ? 1 : 0;
}
