/*
 * net.c — socket helpers (layer 6): from a host and port, or a path, to a socket that
 * listens, is bound or is connected, in one call (gevent's create_connection and
 * StreamServer's listener, Go's net.Listen/net.Dial).
 *
 * Every socket made here is non-blocking and close-on-exec from birth. Names are
 * resolved like getaddrinfo(3) does: numeric hosts and ports are parsed on the spot (no
 * thread hop); anything else goes through the hub's resolver. A host of NULL is "any
 * address" for the helpers that bind (IPv4 first, as getaddrinfo lists it; give "::" for
 * a dual-stack IPv6 listener), and the loopback for those that connect; "" is EINVAL
 * (an empty string is more often a missing value than a wish for "any").
 *
 * Each address the name resolves to is tried in turn, until one works; the error of the
 * last one tried is reported, except that the deadline (ETIMEDOUT) and a kill (ECANCELED)
 * end the whole call at once. A resolution failure keeps its cause: its errno is one no
 * socket call of these helpers gives for its own reasons (gai_errno, documented in
 * green.h), and its EAI_* code is what green_last_resolve_error() returns afterwards, in
 * the calling OS thread, as errno is kept (a __thread, set as each helper returns, after
 * its last park, so that another green thread's call cannot change it before the
 * caller reads it).
 *
 * Unix socket paths: "@name" is Linux's abstract namespace (nothing in the file system);
 * anything else is a file path. green_unix_listen does not remove a file already at the
 * path, not even a stale socket left by a dead process: it fails with EADDRINUSE, as
 * bind(2) does, since only the caller knows whether removing it is safe.
 */
#include "lib.h"

#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

/* The EAI_* code of the calling OS thread's last green_tcp_listen, green_tcp_connect
 * or green_udp_bind: 0 when it did not fail in name resolution. */
static __thread int last_resolve_error;

int green_last_resolve_error(void) { return last_resolve_error; }

/* getaddrinfo's EAI_* codes as errno values: "no such name" is ENOENT, which neither
 * socket, bind, listen nor connect gives for a TCP or UDP socket (EADDRNOTAVAIL, which
 * libdill uses, is also bind's "not a local address" and connect's "no free port"). */
static int gai_errno(int rc)
{
    switch (rc) {
    case EAI_SYSTEM:
        return errno;
    case EAI_MEMORY:
        return ENOMEM;
    case EAI_AGAIN:
        return EAGAIN;
    case EAI_NONAME:   /* no such host, or no such service */
    case EAI_SERVICE:  /* no such service for the socket type */
#ifdef EAI_NODATA
    case EAI_NODATA:   /* the host has no address */
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY: /* none of the family asked */
#endif
        return ENOENT;
    case EAI_BADFLAGS:
    case EAI_FAMILY:
    case EAI_SOCKTYPE:
        return EINVAL;
    default: /* EAI_FAIL: the resolver failed for good; anything newer */
        return EIO;
    }
}

/* A resolved address list and who must free it: getaddrinfo(3) for numeric hosts and
 * ports (parsed on the spot, nothing to copy), green_getaddrinfo for names. */
struct addrs {
    struct addrinfo *list;
    int by_resolver;
};

/* The addresses of host and port: 0, or -1 + errno, and the resolver's EAI_* code in *rc. */
static int addrs_get(struct addrs *a, const char *host, const char *port, int socktype,
                     int flags, int *rc_out, int64_t deadline)
{
    *rc_out = 0;
    a->list = NULL;
    if (host && !*host) {
        errno = EINVAL;
        return -1;
    }
    struct addrinfo hints = {.ai_flags = flags | AI_NUMERICHOST | AI_NUMERICSERV,
                             .ai_family = AF_UNSPEC,
                             .ai_socktype = socktype};
    a->by_resolver = 0;
    int rc = green__sys.getaddrinfo(host, port, &hints, &a->list);
    if (rc == EAI_NONAME) {
        hints.ai_flags = flags;
        a->by_resolver = 1;
        rc = green_getaddrinfo(host, port, &hints, &a->list, deadline);
    }
    if (rc != 0) {
        a->list = NULL;
        *rc_out = rc;
        errno = gai_errno(rc);
        return -1;
    }
    return 0;
}

static void addrs_free(struct addrs *a)
{
    if (!a->list)
        return;
    if (a->by_resolver)
        green_freeaddrinfo(a->list);
    else
        green__sys.freeaddrinfo(a->list);
}

/* Close a socket that failed, keeping the errno being reported. green_close, since a
 * failed connect may have waited on it: the hub must forget the fd before its number
 * is reused (by the next address's socket). */
static void close_quietly(int fd)
{
    int e = errno;
    green_close(fd);
    errno = e;
}

/* What to do with one address: the fd it gives, or -1 + errno. */
typedef int (*addr_fn)(const struct addrinfo *ai, int arg, int64_t deadline);

/* Resolve, then give each address to fn until one works; the resolver's code goes to
 * last_resolve_error as the call returns. */
static int first_working(const char *host, const char *port, int socktype, int flags,
                         addr_fn fn, int arg, int64_t deadline)
{
    struct addrs a;
    int rc;
    int r = addrs_get(&a, host, port, socktype, flags, &rc, deadline);
    last_resolve_error = rc;
    if (r != 0)
        return -1;
    int fd = -1, err = EADDRNOTAVAIL;
    for (const struct addrinfo *ai = a.list; ai && fd < 0; ai = ai->ai_next) {
        fd = fn(ai, arg, deadline);
        if (fd < 0) {
            err = errno;
            if (err == ETIMEDOUT || err == ECANCELED)
                break;
        }
    }
    addrs_free(&a);
    last_resolve_error = 0; /* the connects may have parked, and another call set it */
    if (fd < 0)
        errno = err;
    return fd;
}

static int new_socket(int family, int socktype, int protocol)
{
    return green__sys.socket(family, socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
}

/* Bind a socket to ai; a stream one also listens, with `backlog` (as for listen(2)).
 * TCP listeners get SO_REUSEADDR, so that a restarted server has its port back while its
 * old connections linger in TIME_WAIT; UDP sockets do not (there it would let two
 * sockets share the port). */
static int bind_one(const struct addrinfo *ai, int backlog, int64_t deadline)
{
    (void)deadline;
    int fd = new_socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0)
        return -1;
    int stream = ai->ai_socktype == SOCK_STREAM, one = 1;
    int reuse = stream && ai->ai_family != AF_UNIX;
    if ((reuse && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || (stream && listen(fd, backlog) != 0)) {
        close_quietly(fd);
        return -1;
    }
    return fd;
}

static int connect_one(const struct addrinfo *ai, int unused, int64_t deadline)
{
    (void)unused;
    int fd = new_socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0)
        return -1;
    if (green_connect(fd, ai->ai_addr, ai->ai_addrlen, deadline) != 0) {
        close_quietly(fd);
        return -1;
    }
    return fd;
}

int green_tcp_listen(const char *host, const char *port, int backlog)
{
    return first_working(host, port, SOCK_STREAM, AI_PASSIVE, bind_one, backlog, -1);
}

int green_tcp_connect(const char *host, const char *port, int64_t deadline)
{
    return first_working(host, port, SOCK_STREAM, 0, connect_one, 0, deadline);
}

int green_udp_bind(const char *host, const char *port)
{
    return first_working(host, port, SOCK_DGRAM, AI_PASSIVE, bind_one, 0, -1);
}

/* path as a one-address list for bind_one and connect_one ("@name": abstract);
 * -1 + EINVAL/ENAMETOOLONG. */
static int unix_address(const char *path, struct sockaddr_un *sa, struct addrinfo *ai)
{
    if (!path || !*path) {
        errno = EINVAL;
        return -1;
    }
    size_t n = strlen(path);
    if (n >= sizeof sa->sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, path, n);
    int abstract = path[0] == '@';
    if (abstract)
        sa->sun_path[0] = '\0'; /* its length says where the name ends: no NUL after it */
    *ai = (struct addrinfo){.ai_family = AF_UNIX, .ai_socktype = SOCK_STREAM, .ai_addr = (struct sockaddr *)sa,
                            .ai_addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + !abstract)};
    return 0;
}

int green_unix_listen(const char *path, int backlog)
{
    struct sockaddr_un sa;
    struct addrinfo ai;
    return unix_address(path, &sa, &ai) == 0 ? bind_one(&ai, backlog, -1) : -1;
}

int green_unix_connect(const char *path, int64_t deadline)
{
    struct sockaddr_un sa;
    struct addrinfo ai;
    return unix_address(path, &sa, &ai) == 0 ? connect_one(&ai, 0, deadline) : -1;
}

/* EAFNOSUPPORT for a socket whose family has no ports (Unix). */
int green_socket_port(int fd)
{
    struct sockaddr_storage ss = {.ss_family = AF_UNSPEC};
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    errno = EAFNOSUPPORT;
    return -1;
}
