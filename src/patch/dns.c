/*
 * dns.c — getaddrinfo gethostbyname gethostbyname_r in a green thread: libc's own
 * resolver, run on libgreen's thread pool, so that the answer is libc's (nsswitch,
 * /etc/hosts, resolv.conf) and getaddrinfo's list is freed by libc's freeaddrinfo.
 * getaddrinfo is libgreen's own lookup (green_private_getaddrinfo: the one that
 * green_getaddrinfo makes without c-ares); the gethostbyname pair are jobs of this file.
 *
 * A numeric host does no I/O and is answered on the spot. A caller that gives up
 * (scoped deadline: EAI_SYSTEM with errno ETIMEDOUT; kill: ECANCELED) leaves its job to
 * the pool thread, which frees the answer when the lookup ends: everything the job
 * writes is on the heap, never in the caller's buffers, which are filled afterwards.
 * The three are cancellation points (POSIX lets them be; glibc's are): a cancelled green
 * pthread leaves on entry or when its wait ends with ECANCELED (patch.h).
 */
#include "io.h"

#include <stdlib.h>
#include <string.h>

/* ---- getaddrinfo: libgreen's, the system resolver on the pool ---- */

int getaddrinfo(const char *host, const char *service, const struct addrinfo *hints, struct addrinfo **res)
{
    patch_cancel_point();
    if (!patch_here() || !host || !res || (hints && (hints->ai_flags & AI_NUMERICHOST)))
        return patch_real()->getaddrinfo(host, service, hints, res);
    int e = errno;
    patch_parking();
    int rc = green_private_getaddrinfo(host, service, hints, res);
    if (rc != EAI_SYSTEM)
        errno = e;
    else if (errno == ECANCELED)
        patch_testcancel();
    return rc;
}
GREEN_PATCH(getaddrinfo);

/* ---- gethostbyname_r, and gethostbyname on it ---- */

struct ghbn_job {
    struct hostent he, *result;
    int rc, herr;
    size_t buflen;
    char *buf;       /* the job's own buffer, as large as the caller's */
    char name[];
};

static void *ghbn_run(void *arg)
{
    struct ghbn_job *j = arg;
    j->rc = patch_real()->gethostbyname_r(j->name, &j->he, j->buf, j->buflen, &j->result, &j->herr);
    return NULL;
}

static void ghbn_drop(void *arg, void *result)
{
    (void)result;
    struct ghbn_job *j = arg;
    free(j->buf);
    free(j);
}

/* Move a pointer into the job's buffer to the same place in the caller's. */
static void *moved(const struct ghbn_job *j, const void *p, char *to)
{
    return p ? to + ((const char *)p - j->buf) : NULL;
}

/* Copy the job's answer into ret and buf (as large as the job's buffer). */
static void ghbn_copy(const struct ghbn_job *j, struct hostent *ret, char *buf)
{
    memcpy(buf, j->buf, j->buflen);
    *ret = j->he;
    ret->h_name = moved(j, j->he.h_name, buf);
    ret->h_aliases = moved(j, j->he.h_aliases, buf);
    ret->h_addr_list = moved(j, j->he.h_addr_list, buf);
    for (char **a = ret->h_aliases; a && *a; a++)
        *a = moved(j, *a, buf);
    for (char **a = ret->h_addr_list; a && *a; a++)
        *a = moved(j, *a, buf);
}

/* 0 with the job's answer (rc, herr, result), or -1 + errno when no answer comes. */
static int ghbn_pool(const char *name, size_t buflen, struct ghbn_job **out)
{
    size_t nl = strlen(name) + 1;
    struct ghbn_job *j = calloc(1, sizeof *j + nl);
    if (!j || !(j->buf = malloc(buflen ? buflen : 1))) {
        free(j);
        errno = ENOMEM;
        return -1;
    }
    j->buflen = buflen;
    memcpy(j->name, name, nl);
    patch_parking();
    if (green_private_pool_run(ghbn_run, j, NULL, ghbn_drop) != 0) {
        if (errno == ECANCELED)
            patch_testcancel(); /* the job is the pool's now: nothing is ours */
        return -1;
    }
    *out = j;
    return 0;
}

int gethostbyname_r(const char *name, struct hostent *ret, char *buf, size_t buflen, struct hostent **result,
                    int *h_errnop)
{
    patch_cancel_point();
    if (!patch_here() || !name || !ret || !buf || !result || !h_errnop)
        return patch_real()->gethostbyname_r(name, ret, buf, buflen, result, h_errnop);
    struct ghbn_job *j;
    *result = NULL;
    if (ghbn_pool(name, buflen, &j) != 0) {
        *h_errnop = NETDB_INTERNAL;
        return errno;
    }
    int rc = j->rc;
    *h_errnop = j->herr;
    if (rc == 0 && j->result) {
        ghbn_copy(j, ret, buf);
        *result = ret;
    }
    ghbn_drop(j, NULL);
    return rc;
}
GREEN_PATCH(gethostbyname_r);

/* Like libc's, the answer lives in a static buffer (here: one per OS thread) that the
 * next call reuses. */
struct hostent *gethostbyname(const char *name)
{
    patch_cancel_point();
    if (!patch_here() || !name)
        return patch_real()->gethostbyname(name);
    static __thread struct hostent he;
    static __thread char *buf;
    static __thread size_t cap;
    size_t want = cap ? cap : 1024;
    for (;;) {
        struct ghbn_job *j;
        if (ghbn_pool(name, want, &j) != 0) {
            h_errno = NETDB_INTERNAL;
            return NULL;
        }
        int rc = j->rc, herr = j->herr, found = j->result != NULL;
        if (rc == ERANGE) {
            ghbn_drop(j, NULL);
            want *= 2;
            continue;
        }
        if (rc == 0 && found && cap < want) {
            char *nb = realloc(buf, want);
            if (!nb) {
                ghbn_drop(j, NULL);
                h_errno = NETDB_INTERNAL;
                errno = ENOMEM;
                return NULL;
            }
            buf = nb;
            cap = want;
        }
        if (rc == 0 && found)
            ghbn_copy(j, &he, buf);
        ghbn_drop(j, NULL);
        h_errno = herr;
        if (rc != 0)
            errno = rc;
        return rc == 0 && found ? &he : NULL;
    }
}
GREEN_PATCH(gethostbyname);
