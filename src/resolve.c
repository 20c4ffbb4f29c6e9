/*
 * resolve.c — name resolution (layer 6): green_getaddrinfo, gevent.resolver in C.
 *
 * A lookup goes the cheapest way that gives the system's answer:
 *  - numeric hosts (and a NULL host), and every error that the arguments alone show
 *    (flags, family, socket type, service): getaddrinfo(3) with AI_NUMERICHOST, on the
 *    spot, which does no I/O;
 *  - by default, getaddrinfo(3) on the thread pool: the system's own semantics
 *    (/etc/hosts, nsswitch, resolv.conf), one pool thread per lookup in flight
 *    (gevent's resolver_thread);
 *  - with GREEN_RESOLVER=ares, and c-ares in the build, c-ares on the hub (gevent's
 *    resolver_ares): no thread at all. GREEN_ARES_SERVERS ("host[:port],...") replaces
 *    resolv.conf's name servers, like gevent's GEVENTARES_SERVERS. c-ares (libcares.so.2)
 *    is loaded by the first such lookup. Without c-ares in the build or on the machine,
 *    or if its channel cannot be made, the pool does it.
 * The resolver is chosen per call, so a program may pick one any time before a lookup.
 * libgreen-patch.so's getaddrinfo makes the same lookup without c-ares and without a
 * deadline (green_private_getaddrinfo), so that its answer is libc's.
 *
 * c-ares: one channel per hub (per OS thread), its sockets gathered in an epoll set so
 * that a single fd wait covers them all. Only one green thread at a time (the leader)
 * waits on that fd and feeds what arrives to ares_process_fd; ares' callbacks then wake
 * the green threads whose answers came. The others wait on their query records and get
 * the lead in turn when the leader leaves (answered, timed out or killed). Whoever's
 * park ends at ares' own next timeout lets ares handle it (retry or fail).
 * c-ares knows only the host part of getaddrinfo: the socket types, protocols and port
 * of the answer come from getaddrinfo(3) on a numeric address, so that they, and the
 * service errors, are exactly the system's.
 *
 * Results of every way are in glibc's layout: each node one malloc with its socket
 * address right behind it, the canonical name a string of its own. green_freeaddrinfo
 * frees that layout (and so can glibc's freeaddrinfo).
 *
 * Invariants:
 *  - what another party may write to is on the heap: a pool job's record, a c-ares
 *    query's record. A caller that gives up (deadline, kill) leaves its record to that
 *    party, which frees it with whatever answer comes;
 *  - on a hub, at most one green thread waits on the channel's epoll fd (the leader);
 *    the lead is passed on whenever it leaves while others wait;
 *  - a channel belongs to one hub: after fork() the child's new hub makes its own, and
 *    the parent's is dropped without touching the epoll set it shares with the parent.
 */
#include "lib.h"

#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- result lists ---- */

/* Append to *tail a node shaped like `like` (flags, family, socket type, protocol) with
 * the address sa, and the canonical name if any. 0, or EAI_MEMORY. */
static int ai_append(struct addrinfo ***tail, const struct addrinfo *like, const struct sockaddr *sa,
                     socklen_t len, const char *canon)
{
    struct addrinfo *ai = malloc(sizeof *ai + len);
    if (!ai)
        return EAI_MEMORY;
    *ai = (struct addrinfo){.ai_flags = like->ai_flags,
                            .ai_family = like->ai_family,
                            .ai_socktype = like->ai_socktype,
                            .ai_protocol = like->ai_protocol,
                            .ai_addrlen = len,
                            .ai_addr = (struct sockaddr *)(void *)(ai + 1)};
    memcpy(ai + 1, sa, len);
    if (canon && !(ai->ai_canonname = strdup(canon))) {
        free(ai);
        return EAI_MEMORY;
    }
    **tail = ai;
    *tail = &ai->ai_next;
    return 0;
}

void green_freeaddrinfo(struct addrinfo *res)
{
    while (res) {
        struct addrinfo *next = res->ai_next;
        free(res->ai_canonname);
        free(res);
        res = next;
    }
}

/* Copy the system's list into ours, without the flags `drop` (that we added). */
static int ai_copy(const struct addrinfo *sys, int drop, struct addrinfo **res)
{
    struct addrinfo *head = NULL, **tail = &head;
    for (; sys; sys = sys->ai_next) {
        struct addrinfo like = *sys;
        like.ai_flags &= ~drop;
        int rc = ai_append(&tail, &like, sys->ai_addr, sys->ai_addrlen, sys->ai_canonname);
        if (rc) {
            green_freeaddrinfo(head);
            return rc;
        }
    }
    *res = head;
    return 0;
}

static int eai_errno(int err)
{
    errno = err;
    return EAI_SYSTEM;
}

/* ---- numeric: on the spot ---- */

static int resolve_numeric(const char *host, const char *service, const struct addrinfo *want,
                           struct addrinfo **res)
{
    struct addrinfo hints = *want, *sys;
    hints.ai_flags |= AI_NUMERICHOST;
    int rc = green__sys.getaddrinfo(host, service, &hints, &sys);
    if (rc)
        return rc;
    rc = ai_copy(sys, (want->ai_flags & AI_NUMERICHOST) ? 0 : AI_NUMERICHOST, res);
    green__sys.freeaddrinfo(sys);
    return rc;
}

/* ---- getaddrinfo(3) on the thread pool ---- */

struct gai_job {
    struct addrinfo want;
    const char *host, *service;  /* in text[] */
    struct addrinfo *res;
    int rc, err;
    char text[];
};

static void *gai_run(void *arg)
{
    struct gai_job *j = arg;
    struct addrinfo *sys;
    j->rc = green__sys.getaddrinfo(j->host, j->service, &j->want, &sys);
    if (j->rc == EAI_SYSTEM)
        j->err = errno;
    if (j->rc == 0) {
        j->rc = ai_copy(sys, 0, &j->res);
        green__sys.freeaddrinfo(sys);
    }
    return NULL;
}

static void gai_drop(void *arg, void *result)
{
    (void)result;
    struct gai_job *j = arg;
    green_freeaddrinfo(j->res);
    free(j);
}

static int pool_resolve(struct green_hub *h, const char *host, const char *service,
                        const struct addrinfo *want, struct addrinfo **res, int64_t deadline)
{
    size_t hl = strlen(host) + 1, sl = service ? strlen(service) + 1 : 0;
    struct gai_job *j = calloc(1, sizeof *j + hl + sl);
    if (!j)
        return EAI_MEMORY;
    j->want = *want;
    j->host = memcpy(j->text, host, hl);
    if (service)
        j->service = memcpy(j->text + hl, service, sl);
    if (green__pool_run(h, gai_run, j, NULL, deadline, gai_drop) != 0)
        return errno == ENOMEM ? EAI_MEMORY : EAI_SYSTEM; /* j is gai_drop's */
    int rc = j->rc;
    if (rc == 0)
        *res = j->res;
    else if (rc == EAI_SYSTEM)
        errno = j->err;
    free(j);
    return rc;
}

/* ---- c-ares on the hub ---- */

#if GREEN_HAVE_CARES
#include <ares.h>
#include <dlfcn.h>
#include <pthread.h>
#include <sys/epoll.h>

/* c-ares is loaded (dlopen) by the first lookup that asks for it, not linked: most
 * programs never use it (the pool is the default), and a library loaded at start costs
 * every process its mapped pages (80 KiB of RSS). Its calls go through this table. */
static struct {
    __typeof__(ares_library_init) *library_init;
    __typeof__(ares_init_options) *init_options;
    __typeof__(ares_set_servers_ports_csv) *set_servers_ports_csv;
    __typeof__(ares_destroy) *destroy;
    __typeof__(ares_timeout) *timeout;
    __typeof__(ares_process_fd) *process_fd;
    __typeof__(ares_getaddrinfo) *getaddrinfo;
    __typeof__(ares_freeaddrinfo) *freeaddrinfo;
} cares;

/* 0 when every call was found (the ABI of soname 2: c-ares 1.x). */
static int cares_load(void)
{
    void *l = dlopen("libcares.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!l)
        return -1;
#define CARES_SYM(f) (cares.f = (__typeof__(cares.f))dlsym(l, "ares_" #f)) != NULL
    if (CARES_SYM(library_init) && CARES_SYM(init_options) && CARES_SYM(set_servers_ports_csv) &&
        CARES_SYM(destroy) && CARES_SYM(timeout) && CARES_SYM(process_fd) && CARES_SYM(getaddrinfo) &&
        CARES_SYM(freeaddrinfo))
        return 0;
#undef CARES_SYM
    dlclose(l);
    return -1;
}
#define ares_library_init cares.library_init
#define ares_init_options cares.init_options
#define ares_set_servers_ports_csv cares.set_servers_ports_csv
#define ares_destroy cares.destroy
#define ares_timeout cares.timeout
#define ares_process_fd cares.process_fd
#define ares_getaddrinfo cares.getaddrinfo
#define ares_freeaddrinfo cares.freeaddrinfo

struct query {
    green_waitq_t waiters;       /* its caller, while it waits as a follower */
    struct green_list link;      /* in the resolver's list while its caller waits */
    int done, abandoned;
    int status;                  /* ARES_* */
    struct ares_addrinfo *ai;
};

struct resolver {                /* one per hub */
    struct green_hub *hub;
    ares_channel channel;
    int epfd;                    /* the channel's sockets; -1 once being dropped */
    int leading;                 /* a green thread waits on epfd */
    struct green_list waiting;   /* queries whose callers wait */
};

#define USE_POOL 1 /* not an EAI_* code: c-ares cannot be used, the pool resolves */

static __thread struct resolver *tls_resolver;
static pthread_key_t resolver_key;
static pthread_once_t ares_once = PTHREAD_ONCE_INIT;
static int ares_ready;

/* ares' socket state callback: keep the epoll set in step with what ares waits for. */
static void on_socket(void *data, ares_socket_t fd, int readable, int writable)
{
    struct resolver *r = data;
    if (r->epfd < 0)
        return;
    int err = errno;
    struct epoll_event ev = {.events = (readable ? EPOLLIN : 0u) | (writable ? EPOLLOUT : 0u),
                             .data.fd = fd};
    if (!ev.events)
        epoll_ctl(r->epfd, EPOLL_CTL_DEL, fd, NULL);
    else if (epoll_ctl(r->epfd, EPOLL_CTL_MOD, fd, &ev) != 0)
        epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev); /* if it fails, ares' timeout ends the query */
    errno = err;
}

/* ares' answer, on the hub's thread (inside ares_process_fd or ares_getaddrinfo). */
static void on_answer(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
    (void)timeouts;
    struct query *q = arg;
    if (q->abandoned) {
        if (ai)
            ares_freeaddrinfo(ai);
        free(q);
        return;
    }
    q->status = status;
    q->ai = ai;
    q->done = 1;
    green__waitq_hand_over_all(&q->waiters);
}

/* Drop a resolver whose callers are gone (its thread exits, or the process forked): its
 * queries are answered with ARES_EDESTRUCTION, which frees them. */
static void resolver_free(void *p)
{
    struct resolver *r = p;
    for (struct green_list *n = r->waiting.next; n != &r->waiting; n = n->next)
        green_container_of(n, struct query, link)->abandoned = 1;
    int epfd = r->epfd;
    r->epfd = -1; /* after fork, the epoll set is the parent's too */
    ares_destroy(r->channel);
    green_close(epfd); /* forgets it in this thread's hub, if that is still there */
    if (tls_resolver == r)
        tls_resolver = NULL;
    free(r);
}

static void ares_setup(void)
{
    ares_ready = cares_load() == 0 && green__sys.pthread_key_create(&resolver_key, resolver_free) == 0 &&
                 ares_library_init(ARES_LIB_INIT_ALL) == ARES_SUCCESS;
}

/* h's resolver, made on first use; NULL when c-ares cannot be used. */
static struct resolver *resolver_get(struct green_hub *h)
{
    struct resolver *r = tls_resolver;
    if (r && r->hub == h)
        return r;
    green__sys.pthread_once(&ares_once, ares_setup);
    if (!ares_ready)
        return NULL;
    if (r) { /* another hub's: this is a forked child */
        green__sys.pthread_setspecific(resolver_key, NULL);
        resolver_free(r);
    }
    if (!(r = calloc(1, sizeof *r)))
        return NULL;
    r->hub = h;
    green_list_init(&r->waiting);
    r->epfd = epoll_create1(EPOLL_CLOEXEC);
    struct ares_options o = {.sock_state_cb = on_socket, .sock_state_cb_data = r};
    if (r->epfd < 0 || ares_init_options(&r->channel, &o, ARES_OPT_SOCK_STATE_CB) != ARES_SUCCESS) {
        if (r->epfd >= 0)
            green__sys.close(r->epfd);
        free(r);
        return NULL;
    }
    const char *servers = getenv("GREEN_ARES_SERVERS");
    if (servers && *servers)
        ares_set_servers_ports_csv(r->channel, servers); /* a bad list leaves resolv.conf's */
    tls_resolver = r;
    green__sys.pthread_setspecific(resolver_key, r);
    return r;
}

static int64_t earliest(int64_t a, int64_t b)
{
    if (a < 0)
        return b;
    return b < 0 || a < b ? a : b;
}

/* When ares wants to be called for its own timeouts, as a deadline; -1 for never. */
static int64_t ares_deadline(struct resolver *r)
{
    struct timeval tv;
    if (!ares_timeout(r->channel, NULL, &tv))
        return -1;
    return green_now() + (int64_t)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
}

/* The leader's share: feed ares what its sockets have. */
static void process_ready(struct resolver *r)
{
    struct epoll_event ev[16];
    int n = green__sys.epoll_wait(r->epfd, ev, 16, 0);
    for (int i = 0; i < n; i++) {
        ares_socket_t fd = ev[i].data.fd;
        uint32_t e = ev[i].events;
        ares_process_fd(r->channel, (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) ? fd : ARES_SOCKET_BAD,
                        (e & EPOLLOUT) ? fd : ARES_SOCKET_BAD);
    }
}

/* A wait for an answer ended without one: 0 to go on (ares' own timeout was due: it
 * retries or fails queries now), or -1 + errno to give up (our deadline, a scoped
 * timeout, a kill). */
static int wait_failed(struct resolver *r, int64_t deadline, int64_t until)
{
    if (errno != ETIMEDOUT)
        return -1;
    int64_t now = green_now();
    if (now < until || (deadline >= 0 && now >= deadline))
        return -1;
    ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    return 0;
}

/* A leader is leaving: wake one of those waiting, to take the lead. */
static void pass_the_lead(struct resolver *r)
{
    if (r->leading)
        return;
    int err = errno;
    for (struct green_list *n = r->waiting.next; n != &r->waiting; n = n->next) {
        struct query *q = green_container_of(n, struct query, link);
        if (q->waiters.head) {
            green__waitq_hand_over_all(&q->waiters);
            break;
        }
    }
    errno = err;
}

/* Wait for q's answer: 0, or -1 + errno (ETIMEDOUT, ECANCELED). */
static int await_answer(struct resolver *r, struct query *q, int64_t deadline)
{
    struct green_hub *h = r->hub;
    green_list_push_back(&r->waiting, &q->link);
    int rc = 0;
    while (!q->done && rc == 0) {
        int64_t until = earliest(deadline, ares_deadline(r));
        int got;
        if (!r->leading) {
            r->leading = 1;
            got = green__fd_wait(h, r->epfd, GREEN_READ, until) > 0;
            r->leading = 0;
            if (got)
                process_ready(r);
        } else {
            /* woken with its answer, or to take the lead */
            green__waiting_on(h, GW_RESOLVE, q);
            got = green__wait(h, &q->waiters, NULL, until, GREEN_PARK_LOCAL) == 0;
        }
        if (!got)
            rc = wait_failed(r, deadline, until);
    }
    green_list_remove(&q->link);
    pass_the_lead(r);
    return q->done ? 0 : rc;
}

static int ares_flags(int ai_flags)
{
    static const int map[][2] = {
        {AI_CANONNAME, ARES_AI_CANONNAME}, {AI_V4MAPPED, ARES_AI_V4MAPPED},
        {AI_ALL, ARES_AI_ALL},             {AI_ADDRCONFIG, ARES_AI_ADDRCONFIG},
    };
    int f = 0;
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (ai_flags & map[i][0])
            f |= map[i][1];
    return f;
}

static int eai_from_ares(int status)
{
    switch (status) {
    case ARES_ENOTFOUND:
    case ARES_EBADNAME:
    case ARES_ENONAME:
        return EAI_NONAME;
#ifdef EAI_NODATA
    case ARES_ENODATA:
        return EAI_NODATA;
#endif
    case ARES_ENOMEM:
        return EAI_MEMORY;
    case ARES_ENOTIMP:
    case ARES_EBADFAMILY:
        return EAI_FAMILY;
    case ARES_EBADFLAGS:
        return EAI_BADFLAGS;
    case ARES_ESERVICE:
        return EAI_SERVICE;
    case ARES_ECANCELLED:
    case ARES_EDESTRUCTION:
        return eai_errno(ECANCELED);
    case ARES_ETIMEOUT:
    case ARES_ECONNREFUSED:
    case ARES_ESERVFAIL:
    case ARES_EREFUSED:
    case ARES_EFORMERR:
    case ARES_EBADRESP:
        return EAI_AGAIN;
    default:
        return EAI_FAIL;
    }
}

/* The socket types, protocols and port that the system gives `want` and `service`, as a
 * list for a numeric address (and the system's error for a bad service or type). */
static int service_kinds(const char *service, const struct addrinfo *want, struct addrinfo **kinds)
{
    int v6 = want->ai_family == AF_INET6;
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | (want->ai_flags & AI_NUMERICSERV),
                             .ai_family = v6 ? AF_INET6 : AF_INET,
                             .ai_socktype = want->ai_socktype,
                             .ai_protocol = want->ai_protocol};
    return green__sys.getaddrinfo(v6 ? "::" : "0.0.0.0", service, &hints, kinds);
}

static const char *canonical_name(const struct ares_addrinfo *ai)
{
    const struct ares_addrinfo_cname *c = ai->cnames;
    while (c && c->next)
        c = c->next;
    return c && c->name ? c->name : ai->name;
}

/* ares' addresses times the system's socket kinds, in glibc's order. */
static int ai_from_ares(const struct ares_addrinfo *ai, const struct addrinfo *kinds, int flags,
                        struct addrinfo **res)
{
    struct addrinfo *head = NULL, **tail = &head;
    const char *canon = (flags & AI_CANONNAME) ? canonical_name(ai) : NULL;
    for (const struct ares_addrinfo_node *n = ai->nodes; n; n = n->ai_next) {
        union {
            struct sockaddr sa;
            struct sockaddr_in in;
            struct sockaddr_in6 in6;
        } addr;
        socklen_t len = (socklen_t)n->ai_addrlen;
        if ((n->ai_family != AF_INET && n->ai_family != AF_INET6) || len > sizeof addr)
            continue;
        memcpy(&addr, n->ai_addr, len);
        for (const struct addrinfo *k = kinds; k; k = k->ai_next) {
            in_port_t port = k->ai_family == AF_INET6 ? ((struct sockaddr_in6 *)(void *)k->ai_addr)->sin6_port
                                                      : ((struct sockaddr_in *)(void *)k->ai_addr)->sin_port;
            if (n->ai_family == AF_INET6)
                addr.in6.sin6_port = port;
            else
                addr.in.sin_port = port;
            struct addrinfo like = {.ai_flags = flags, .ai_family = n->ai_family,
                                    .ai_socktype = k->ai_socktype, .ai_protocol = k->ai_protocol};
            int rc = ai_append(&tail, &like, &addr.sa, len, canon);
            if (rc) {
                green_freeaddrinfo(head);
                return rc;
            }
            canon = NULL; /* the first node only, as green__sys.getaddrinfo(3) does */
        }
    }
    if (!head)
        return EAI_NONAME;
    *res = head;
    return 0;
}

static int ares_resolve(struct green_hub *h, const char *host, const char *service,
                        const struct addrinfo *want, struct addrinfo **res, int64_t deadline)
{
    struct resolver *r = resolver_get(h);
    if (!r)
        return USE_POOL;
    struct addrinfo *kinds;
    int rc = service_kinds(service, want, &kinds);
    if (rc)
        return rc;
    struct query *q = calloc(1, sizeof *q);
    if (!q) {
        green__sys.freeaddrinfo(kinds);
        return EAI_MEMORY;
    }
    struct ares_addrinfo_hints ah = {.ai_flags = ares_flags(want->ai_flags), .ai_family = want->ai_family};
    ares_getaddrinfo(r->channel, host, NULL, &ah, on_answer, q); /* may answer at once */
    if (await_answer(r, q, deadline) != 0) {
        int err = errno;
        q->abandoned = 1; /* on_answer frees it */
        green__sys.freeaddrinfo(kinds);
        return eai_errno(err);
    }
    rc = q->status == ARES_SUCCESS && q->ai ? ai_from_ares(q->ai, kinds, want->ai_flags, res)
                                   : eai_from_ares(q->status);
    int err = errno;
    if (q->ai)
        ares_freeaddrinfo(q->ai);
    free(q);
    green__sys.freeaddrinfo(kinds);
    errno = err;
    return rc;
}

static int want_ares(void)
{
    const char *e = getenv("GREEN_RESOLVER");
    return e && strcmp(e, "ares") == 0;
}
#endif

/* ---- the entry points ---- */

/* green_getaddrinfo; `system`: getaddrinfo(3) only, never c-ares. */
static int lookup(const char *host, const char *service, const struct addrinfo *hints,
                  struct addrinfo **res, int64_t deadline, int system)
{
    if (!res)
        return eai_errno(EINVAL);
    *res = NULL;
    /* what NULL hints mean to getaddrinfo(3) */
    struct addrinfo want = {.ai_flags = AI_V4MAPPED | AI_ADDRCONFIG};
    if (hints)
        want = (struct addrinfo){.ai_flags = hints->ai_flags, .ai_family = hints->ai_family,
                                 .ai_socktype = hints->ai_socktype, .ai_protocol = hints->ai_protocol};
    int rc = resolve_numeric(host, service, &want, res);
    if (rc != EAI_NONAME || !host || (want.ai_flags & AI_NUMERICHOST))
        return rc;
    struct green_hub *h = green__loop();
    if (!h)
        return errno == ENOMEM ? EAI_MEMORY : EAI_SYSTEM;
    if (green__wait_over(h, deadline) != 0)
        return EAI_SYSTEM;
#if GREEN_HAVE_CARES
    if (!system && want_ares() && (rc = ares_resolve(h, host, service, &want, res, deadline)) != USE_POOL)
        return rc;
#else
    (void)system;
#endif
    return pool_resolve(h, host, service, &want, res, deadline);
}

int green_getaddrinfo(const char *host, const char *service, const struct addrinfo *hints,
                      struct addrinfo **res, int64_t deadline)
{
    return lookup(host, service, hints, res, deadline, 0);
}

int green_private_getaddrinfo(const char *host, const char *service, const struct addrinfo *hints,
                              struct addrinfo **res)
{
    return lookup(host, service, hints, res, -1, 1);
}
