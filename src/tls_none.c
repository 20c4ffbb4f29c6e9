/* tls_none.c — the TLS calls' stand-in (layer 6), built when OpenSSL (libssl-dev) is
 * missing or GREEN_TLS=OFF: every green_tls_* call fails with ENOTSUP, and
 * green_tls_error() says why. */
#include "lib.h"

static const char why[] = "libgreen was built without TLS (OpenSSL)";

static void *none(void)
{
    errno = ENOTSUP;
    return NULL;
}

int green__tls_check(const green_tls_config_t *c)
{
    (void)c;
    errno = ENOTSUP;
    return -1;
}

green_tls_t *green_tls_connect(int fd, const char *servername, const green_tls_config_t *cfg,
                               int64_t deadline)
{
    (void)fd, (void)servername, (void)cfg, (void)deadline;
    return none();
}

green_tls_t *green_tls_accept(int fd, const green_tls_config_t *cfg, int64_t deadline)
{
    (void)fd, (void)cfg, (void)deadline;
    return none();
}

ssize_t green_tls_read(green_tls_t *t, void *buf, size_t n, int64_t deadline)
{
    (void)t, (void)buf, (void)n, (void)deadline;
    errno = ENOTSUP;
    return -1;
}

ssize_t green_tls_write(green_tls_t *t, const void *buf, size_t n, int64_t deadline)
{
    (void)t, (void)buf, (void)n, (void)deadline;
    errno = ENOTSUP;
    return -1;
}

int green_tls_close(green_tls_t *t, int64_t deadline)
{
    (void)t, (void)deadline;
    errno = ENOTSUP;
    return -1;
}

const char *green_tls_error(void) { return why; }

const char *green_tls_alpn(green_tls_t *t)
{
    (void)t;
    return none();
}

int green_tls_resumed(green_tls_t *t)
{
    (void)t;
    errno = ENOTSUP;
    return -1;
}

void *green_tls_ssl(green_tls_t *t)
{
    (void)t;
    return none();
}
