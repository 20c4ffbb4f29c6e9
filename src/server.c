/*
 * server.c — the stream server (layer 6): gevent.server.StreamServer. Accept
 * connections and run a handler in a green thread for each.
 *
 * A server is a set of shards, one per serving hub: the calling one, and one on each
 * extra OS thread. A shard owns its listener (the caller's listen_fd for the first; on
 * an extra thread, an SO_REUSEPORT socket of our own bound to the same address, so that
 * the kernel spreads connections over the hubs), an acceptor green thread, a group
 * holding its handlers, and a semaphore of max_conns permits. Invariants:
 *  - the acceptor takes a permit before each accept and a handler gives it back when it
 *    finishes: at the cap the shard stops accepting (connections wait in the kernel's
 *    backlog) and resumes the moment a handler finishes;
 *  - an accepted fd belongs to exactly one handler green thread, which closes it when
 *    the handler returns, however it returns (cancelled included);
 *  - a shard is touched only by its own hub's OS thread. The threads share the server's
 *    read-only part, one cross-thread event (stop) and a future each (started, done).
 *
 * Stopping is graceful: the server's stop event is set first (green_server_stopping:
 * handlers may finish early when they see it; the extra shards' threads wait on it too).
 * Then each shard stops: kill the acceptor, let every handler it spawned start (one killed
 * before it ever ran would never close its client), wait for the group until the
 * deadline, kill the rest and wait for them to unwind (a killed handler may shield its
 * cleanup, green_shield_push, e.g. to join green threads of its own). On the calling
 * hub this runs in a green thread of its own, so that the stop completes and frees the
 * server even if the caller of green_server_stop is killed meanwhile — for instance when
 * it is one of the server's own handlers.
 */
#include "lib.h"

#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Back-off between accepts that fail for want of fds or memory: doubles from the first
 * to the last, so that a storm costs little CPU and the server notices soon when it ends. */
enum { BACKOFF_FIRST_MS = 1, BACKOFF_MAX_MS = 100 };
/* TLS: a client's handshake must end within this (unless opts.tls_handshake_ms), and its
 * close_notify be sent within that. */
enum { TLS_HANDSHAKE_MS = 10000, TLS_CLOSE_MS = 1000 };

struct shard {
    green_server_t *srv;
    int listen_fd;
    bool own_listener;          /* ours to close (extra threads' SO_REUSEPORT sockets) */
    green_t acceptor;
    green_group_t conns;        /* the handlers */
    green_sem_t room;           /* max_conns permits; unused without a cap */
    pthread_t thread;           /* extra shards: their OS thread, */
    green_future_t started;     /* set by it once its acceptor runs (value) or failed */
    green_future_t done;        /* set by it once the shard has stopped */
};

struct green_server {
    green_handler handler;
    void *arg;
    green_serve_opts_t opts;
    pthread_t owner;            /* the calling hub's OS thread: shard 0's */
    green_event_t stop;         /* set when the stop begins: tells the extra shards and
                                 * the handlers (green_server_stopping) */
    int64_t deadline;           /* written before stop is set */
    int nshards;
    struct shard shards[];
};

/* A handler's green thread gets its client and shard through this (heap: in shared-stack
 * mode nothing on the acceptor's stack may be handed over). */
struct conn {
    struct shard *sh;
    int fd;
};

/* ======================================================================== */
/*  Handlers                                                                */
/* ======================================================================== */

static int room_take(struct shard *sh)
{
    return sh->srv->opts.max_conns ? green_sem_acquire(&sh->room, -1) : 0;
}

static void room_give(struct shard *sh)
{
    if (sh->srv->opts.max_conns)
        green_sem_release(&sh->room);
}

static void *conn_main(void *arg)
{
    struct conn c = *(struct conn *)arg;
    free(arg);
    green_server_t *srv = c.sh->srv;
    if (srv->opts.tls) {
        /* TLS: the handshake in this green thread; a failed one only ends this client */
        int64_t ms = srv->opts.tls_handshake_ms > 0 ? srv->opts.tls_handshake_ms : TLS_HANDSHAKE_MS;
        green_tls_t *t = green_tls_accept(c.fd, srv->opts.tls, green_after(ms));
        if (t) {
            srv->opts.tls_handler(t, c.fd, srv->arg);
            green_tls_close(t, green_after(TLS_CLOSE_MS));
        }
    } else {
        srv->handler(c.fd, srv->arg);
    }
    green_close(c.fd);
    room_give(c.sh);
    return NULL;
}

/* A handler green thread for fd, in the shard's group; -1 + errno (fd not taken). */
static int conn_spawn(struct shard *sh, int fd)
{
    struct conn *c = malloc(sizeof *c);
    if (!c) {
        errno = ENOMEM;
        return -1;
    }
    *c = (struct conn){sh, fd};
    if (!green__group_spawn_attr(&sh->conns, conn_main, c, &sh->srv->opts.attr, -1)) {
        free(c);
        return -1;
    }
    return 0;
}

/* ======================================================================== */
/*  Accepting                                                               */
/* ======================================================================== */

/* Failures that concern one connection, gone already: try the next at once. The network
 * errors are those accept(2) says Linux passes on from the new socket. */
static bool accept_retry_now(int err)
{
    switch (err) {
    case EAGAIN: case EINTR: case ECONNABORTED: case EPROTO: case EPERM:
    case ENETDOWN: case ENOPROTOOPT: case EHOSTDOWN: case ENONET: case EHOSTUNREACH:
    case ENETUNREACH:
        return true;
    default:
        return false;
    }
}

/* Failures that end accepting: the shard is stopping, or the listener is gone. */
static bool accept_fatal(int err)
{
    return err == ECANCELED || err == EBADF || err == EINVAL || err == ENOTSOCK;
}

/* Wait before the next accept: a failure that lasts a while (EMFILE, ENFILE, ENOBUFS,
 * ENOMEM, no memory for a handler), each time longer. 0, or -1 when killed (or ENOMEM:
 * the shared stack's spare lent). */
static int back_off(int64_t *backoff)
{
    *backoff = *backoff ? *backoff * 2 : BACKOFF_FIRST_MS;
    if (*backoff > BACKOFF_MAX_MS)
        *backoff = BACKOFF_MAX_MS;
    return green__sleep_until(green_after(*backoff));
}

static void *acceptor_main(void *arg)
{
    struct shard *sh = arg;
    int64_t backoff = 0;
    while (!green_cancelled()) {
        if (room_take(sh) != 0) {
            /* killed (the loop ends), or no waiter record for the wait (ENOMEM): the
             * server must not stop accepting for that */
            back_off(&backoff);
            continue;
        }
        int fd = green_accept(sh->listen_fd, NULL, NULL, -1);
        if (fd >= 0 && conn_spawn(sh, fd) == 0) {
            backoff = 0;
            continue;
        }
        int err = errno;
        room_give(sh);
        if (fd >= 0)
            green_close(fd); /* no memory for its handler: this client is dropped */
        else if (accept_fatal(err))
            break;
        else if (accept_retry_now(err))
            continue;
        back_off(&backoff); /* fails when killed (the loop ends) or with ENOMEM */
    }
    return NULL;
}

/* ======================================================================== */
/*  Shards                                                                  */
/* ======================================================================== */

/* On the shard's own hub. */
static int shard_start(struct shard *sh)
{
    green_group_init(&sh->conns, 0);
    green_sem_init(&sh->room, (long)sh->srv->opts.max_conns);
    green_attr_t attr = {.name = "green_serve acceptor"};
    sh->acceptor = green_spawn_attr(acceptor_main, sh, &attr);
    return sh->acceptor ? 0 : -1;
}

/* The stop's waits cannot give up: on ENOMEM (the shared stack's spare lent and not
 * replaceable) they are made again after the others have run and may have freed some,
 * or, when nothing can run (the yield fails the same way), after a millisecond. */
static void no_memory_pause(void)
{
    if (green_yield() != 0) {
        struct timespec ms = {0, 1000000};
        green__sys.nanosleep(&ms, NULL);
    }
}

/* On the shard's own hub, from a green thread nobody can kill (see the top). */
static void shard_stop(struct shard *sh, int64_t deadline)
{
    green_kill(sh->acceptor);
    while (green_join(sh->acceptor, NULL, -1) != 0 && errno == ENOMEM)
        no_memory_pause();
    /* every handler spawned runs once (see the top): one killed before it ever ran
     * would leave its client open, so a yield that fails (ENOMEM) is made again */
    while (green_yield() != 0)
        no_memory_pause();
    int r;
    while ((r = green_group_join(&sh->conns, deadline)) != 0 && errno == ENOMEM)
        no_memory_pause();
    if (r != 0) {
        green_group_kill(&sh->conns);
        while (green_group_join(&sh->conns, -1) != 0 && errno == ENOMEM)
            no_memory_pause();
    }
    if (sh->own_listener)
        green_close(sh->listen_fd);
    green_group_destroy(&sh->conns);
    green_sem_destroy(&sh->room);
}

/* An extra shard's OS thread: start, serve until told to stop, stop. */
static void *shard_thread(void *arg)
{
    struct shard *sh = arg;
    if (shard_start(sh) != 0) {
        int err = errno;
        if (sh->own_listener)
            green_close(sh->listen_fd);
        green_future_fail(&sh->started, err);
    } else {
        green_future_set(&sh->started, NULL);
        /* (ENOMEM: no waiter record; the shard must not stop for that) */
        while (green_event_wait(&sh->srv->stop, -1) != 0 && errno == ENOMEM)
            green_sleep(1);
        shard_stop(sh, sh->srv->deadline);
    }
    green_future_set(&sh->done, NULL);
    return NULL;
}

/* Wait for extra shards [1, n) to finish. Parks on their futures so that the calling hub
 * keeps running; pthread_join then only waits for the thread's last steps (and waits for
 * everything if the park fails). */
static void threads_join(green_server_t *srv, int n)
{
    for (int i = 1; i < n; i++) {
        struct shard *sh = &srv->shards[i];
        green_future_get(&sh->done, NULL, -1);
        green__sys.pthread_join(sh->thread, NULL);
        green_future_destroy(&sh->started);
        green_future_destroy(&sh->done);
    }
}

/* ======================================================================== */
/*  Listeners                                                               */
/* ======================================================================== */

static int set_int_opt(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof value);
}

/* A listening socket on listen_fd's address for another hub, sharing it through
 * SO_REUSEPORT. Every socket on the address needs the option: listen_fd gets it here.
 * Linux honours it although listen_fd is already bound and listening (a bind checks the
 * flag of the sockets in place as they are now), so callers need no special listener.
 * Sockets of other families (AF_UNIX) are shared instead: every hub waits on listen_fd
 * and the kernel hands each connection to one accept. -1 + errno (EADDRINUSE: another
 * socket on the address lacks SO_REUSEPORT, or belongs to another user). */
static int shard_listener(int listen_fd, bool *own)
{
    struct sockaddr_storage ss = {0};
    socklen_t len = sizeof ss;
    int protocol;
    socklen_t plen = sizeof protocol;
    if (getsockname(listen_fd, (struct sockaddr *)&ss, &len) != 0 ||
        getsockopt(listen_fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &plen) != 0)
        return -1;
    *own = ss.ss_family == AF_INET || ss.ss_family == AF_INET6;
    if (!*own)
        return listen_fd;
    if (set_int_opt(listen_fd, SOL_SOCKET, SO_REUSEPORT, 1) != 0)
        return -1;
    int fd = green__sys.socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    if (fd < 0)
        return -1;
    int v6only = 0;
    socklen_t vlen = sizeof v6only;
    if (set_int_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1) != 0 ||
        set_int_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1) != 0 ||
        (ss.ss_family == AF_INET6 &&
         (getsockopt(listen_fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &vlen) != 0 ||
          set_int_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, v6only) != 0)) ||
        bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, SOMAXCONN) != 0) {
        int err = errno;
        green__sys.close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

static void *never_runs(void *arg) { return arg; }

/* The handlers' attributes, checked once by the library's own rules (a green thread made
 * with them, destroyed unstarted): a bad one would fail every spawn, for every client. */
static int check_attr(const green_attr_t *attr)
{
    green_t g = green_new(never_runs, NULL, attr);
    if (!g)
        return -1;
    green_destroy(g);
    return 0;
}

/* listen_fd must be a listening stream socket. */
static int check_listener(int listen_fd)
{
    int listening = 0, type = 0;
    socklen_t len = sizeof listening, tlen = sizeof type;
    if (getsockopt(listen_fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 ||
        getsockopt(listen_fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0)
        return -1;
    if (!listening || type != SOCK_STREAM) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

/* ======================================================================== */
/*  Public API                                                              */
/* ======================================================================== */

static void server_free(green_server_t *srv)
{
    green_event_destroy(&srv->stop);
    free(srv);
}

/* An extra shard's OS thread, with every signal blocked: a process-directed signal
 * must not land in a thread the application does not know about (where its default
 * action would run, though the application waits for it with green_signal_wait). */
static int thread_create(pthread_t *t, struct shard *sh)
{
    sigset_t all, old;
    sigfillset(&all);
    green__sys.pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = green__sys_thread_create(t, shard_thread, sh);
    green__sys.pthread_sigmask(SIG_SETMASK, &old, NULL);
    return err;
}

/* Start extra shard i: its listener, its OS thread, and wait until its acceptor runs.
 * 0; -1 + errno when its thread runs (to stop and join); -2 + errno when it has none. */
static int extra_start(green_server_t *srv, int i)
{
    struct shard *sh = &srv->shards[i];
    int fd = shard_listener(srv->shards[0].listen_fd, &sh->own_listener);
    if (fd < 0)
        return -2; /* no thread (no listener: EMFILE...): nothing to wait for */
    sh->listen_fd = fd;
    green_future_init(&sh->started);
    green_future_init(&sh->done);
    int err = thread_create(&sh->thread, sh);
    if (err == 0)
        return green_future_get(&sh->started, NULL, -1);
    if (sh->own_listener)
        green__sys.close(fd);
    errno = err;
    return -2; /* no thread to join */
}

green_server_t *green_serve(int listen_fd, green_handler handler, void *arg,
                            const green_serve_opts_t *opts)
{
    static const green_serve_opts_t defaults = {0};
    if (!opts)
        opts = &defaults;
    if ((opts->tls ? !opts->tls_handler : !handler) || opts->threads < 0 ||
        opts->tls_handshake_ms < 0) {
        errno = EINVAL;
        return NULL;
    }
    if (opts->tls && green__tls_check(opts->tls) != 0)
        return NULL;
    if (check_listener(listen_fd) != 0 || check_attr(&opts->attr) != 0)
        return NULL;
    int n = opts->threads > 1 ? opts->threads : 1;
    green_server_t *srv = calloc(1, sizeof *srv + (size_t)n * sizeof srv->shards[0]);
    if (!srv) {
        errno = ENOMEM;
        return NULL;
    }
    *srv = (green_server_t){.handler = handler, .arg = arg, .opts = *opts,
                            .owner = green__sys.pthread_self(), .nshards = n};
    green_event_init(&srv->stop);
    for (int i = 0; i < n; i++)
        srv->shards[i] = (struct shard){.srv = srv, .listen_fd = listen_fd};
    if (shard_start(&srv->shards[0]) != 0) {
        server_free(srv);
        return NULL;
    }
    for (int i = 1; i < n; i++) {
        int r = extra_start(srv, i);
        if (r != 0) {
            /* undo: the threads started so far (this one too, unless it has none) stop
             * with nothing to wait for */
            int err = errno;
            srv->nshards = r == -2 ? i : i + 1;
            while (green_server_stop(srv, 0) != 0 && errno == ENOMEM)
                green_yield(); /* nothing stopped: again */
            errno = err;
            return NULL;
        }
    }
    return srv;
}

/* Shard 0 and then the whole server, in a green thread of its own (see the top). */
static void *stopper_main(void *arg)
{
    green_server_t *srv = arg;
    green_event_set(&srv->stop); /* the extra shards stop meanwhile */
    shard_stop(&srv->shards[0], srv->deadline);
    threads_join(srv, srv->nshards);
    server_free(srv);
    return NULL;
}

green_event_t *green_server_stopping(green_server_t *srv)
{
    if (!srv) {
        errno = EINVAL;
        return NULL;
    }
    return &srv->stop;
}

int green_server_stop(green_server_t *srv, int64_t deadline)
{
    if (!srv) {
        errno = EINVAL;
        return -1;
    }
    if (!green__sys.pthread_equal(srv->owner, green__sys.pthread_self())) {
        errno = EXDEV;
        return -1;
    }
    srv->deadline = deadline;
    green_t stopper = green_spawn(stopper_main, srv);
    if (!stopper)
        return -1;
    if (green_join(stopper, NULL, -1) != 0) {
        int err = errno;
        if (err == ENOMEM && !green_started(stopper)) {
            /* the join failed before it waited (ENOMEM: no waiter record), so the
             * stopper has not run: it never will, and nothing is stopped */
            green_kill(stopper);
            green_join(stopper, NULL, 0);
        } else {
            /* we were killed (or a scoped timeout passed): it finishes on its own */
            green_detach(stopper);
        }
        errno = err;
        return -1;
    }
    return 0;
}
