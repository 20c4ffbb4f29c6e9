/*
 * tls.c — secure sockets (layer 6): TLS sessions over connected sockets, on OpenSSL 3
 * (tls_none.c stands in when it is missing: every call fails with ENOTSUP).
 *
 * OpenSSL runs non-blocking over a BIO of our own that reads and writes the fd with
 * MSG_DONTWAIT (and MSG_NOSIGNAL) through the sys table: the fd's flags are left as
 * found, no SIGPIPE is raised, and under libgreen-patch.so the calls do not land in its
 * wrappers. When OpenSSL says WANT_READ or WANT_WRITE the caller parks on the same fd wait
 * as green_read (green__fd_wait), so deadlines, green_timeout_push scopes and kills
 * (ECANCELED) apply to every step, the handshake's included.
 *
 * Invariants:
 *  - no park happens inside an OpenSSL call: each SSL_* call runs to its WANT_* return
 *    first. So OpenSSL's own frames are never on a parked stack (a shared-stack green
 *    thread parks at our loop's depth), and its per-OS-thread error queue is cleared
 *    before each call and read right after it, before any other green thread runs;
 *  - nothing OpenSSL keeps points into a green thread's stack: the session, its BIO's
 *    data and the configuration it was built from are on the heap; writes are made with
 *    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER and partial writes, so a retried write may come
 *    from another address;
 *  - contexts (SSL_CTX) are built once per distinct configuration and role, kept in a
 *    process-wide list for the process's life (their callbacks' data with them), and
 *    shared by every OS thread (OpenSSL's contexts are thread-safe for SSL_new); a
 *    client keeps the last resumable session per server name (or address) and port;
 *  - green_tls_error() is per green thread: a small per-OS-thread ring of (handle,
 *    message); handles carry a generation, so a reused control block never sees another's.
 */
#include "lib.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <dlfcn.h>

/*
 * OpenSSL is loaded (dlopen of libssl.so.3, which brings libcrypto.so.3) by the first
 * call that needs it, not linked: a program that never makes a TLS session does not map
 * its 4–5 MiB (under greenrun, every unmodified program would). If the program has it
 * loaded already, that copy is used. Every OpenSSL call below goes through this table
 * (the #defines after it; OpenSSL's own function-like macros expand to these names).
 */
#define OSSL_FUNCS(F) \
    F(BIO_clear_flags) \
    F(BIO_get_data) \
    F(BIO_get_new_index) \
    F(BIO_meth_free) \
    F(BIO_meth_new) \
    F(BIO_meth_set_create) \
    F(BIO_meth_set_ctrl) \
    F(BIO_meth_set_puts) \
    F(BIO_meth_set_read) \
    F(BIO_meth_set_write) \
    F(BIO_new) \
    F(BIO_set_data) \
    F(BIO_set_flags) \
    F(BIO_set_init) \
    F(CRYPTO_get_ex_new_index) \
    F(ERR_clear_error) \
    F(ERR_error_string_n) \
    F(ERR_peek_error) \
    F(ERR_reason_error_string) \
    F(SSL_CTX_callback_ctrl) \
    F(SSL_CTX_check_private_key) \
    F(SSL_CTX_ctrl) \
    F(SSL_CTX_free) \
    F(SSL_CTX_load_verify_locations) \
    F(SSL_CTX_new) \
    F(SSL_CTX_sess_set_new_cb) \
    F(SSL_CTX_set_alpn_protos) \
    F(SSL_CTX_set_alpn_select_cb) \
    F(SSL_CTX_set_cipher_list) \
    F(SSL_CTX_set_default_verify_paths) \
    F(SSL_CTX_set_num_tickets) \
    F(SSL_CTX_set_options) \
    F(SSL_CTX_set_session_id_context) \
    F(SSL_CTX_set_verify) \
    F(SSL_CTX_use_PrivateKey_file) \
    F(SSL_CTX_use_certificate_chain_file) \
    F(SSL_SESSION_free) \
    F(SSL_SESSION_is_resumable) \
    F(SSL_SESSION_up_ref) \
    F(SSL_ctrl) \
    F(SSL_do_handshake) \
    F(SSL_free) \
    F(SSL_get0_alpn_selected) \
    F(SSL_get0_param) \
    F(SSL_get_error) \
    F(SSL_get_ex_data) \
    F(SSL_get_servername) \
    F(SSL_get_verify_result) \
    F(SSL_is_init_finished) \
    F(SSL_new) \
    F(SSL_read_ex) \
    F(SSL_select_next_proto) \
    F(SSL_session_reused) \
    F(SSL_set1_host) \
    F(SSL_set_SSL_CTX) \
    F(SSL_set_accept_state) \
    F(SSL_set_bio) \
    F(SSL_set_connect_state) \
    F(SSL_set_ex_data) \
    F(SSL_set_session) \
    F(SSL_shutdown) \
    F(SSL_write_ex) \
    F(TLS_client_method) \
    F(TLS_server_method) \
    F(X509_VERIFY_PARAM_set1_ip_asc) \
    F(X509_verify_cert_error_string)
#define OSSL_MEMBER(f) __typeof__(f) *f;
static struct {
    OSSL_FUNCS(OSSL_MEMBER)
} ossl;
static pthread_once_t ossl_once = PTHREAD_ONCE_INIT;
static const char *ossl_missing; /* NULL once loaded: what is missing otherwise */

static void ossl_load(void)
{
    void *l = dlopen("libssl.so.3", RTLD_NOW | RTLD_LOCAL);
    if (!l) {
        ossl_missing = "libssl.so.3";
        return;
    }
#define OSSL_LOAD(f) if (!ossl_missing && !(ossl.f = (__typeof__(ossl.f))dlsym(l, #f))) ossl_missing = #f;
    ossl_missing = NULL;
    OSSL_FUNCS(OSSL_LOAD)
#undef OSSL_LOAD
}
#define BIO_clear_flags ossl.BIO_clear_flags
#define BIO_get_data ossl.BIO_get_data
#define BIO_get_new_index ossl.BIO_get_new_index
#define BIO_meth_free ossl.BIO_meth_free
#define BIO_meth_new ossl.BIO_meth_new
#define BIO_meth_set_create ossl.BIO_meth_set_create
#define BIO_meth_set_ctrl ossl.BIO_meth_set_ctrl
#define BIO_meth_set_puts ossl.BIO_meth_set_puts
#define BIO_meth_set_read ossl.BIO_meth_set_read
#define BIO_meth_set_write ossl.BIO_meth_set_write
#define BIO_new ossl.BIO_new
#define BIO_set_data ossl.BIO_set_data
#define BIO_set_flags ossl.BIO_set_flags
#define BIO_set_init ossl.BIO_set_init
#define CRYPTO_get_ex_new_index ossl.CRYPTO_get_ex_new_index
#define ERR_clear_error ossl.ERR_clear_error
#define ERR_error_string_n ossl.ERR_error_string_n
#define ERR_peek_error ossl.ERR_peek_error
#define ERR_reason_error_string ossl.ERR_reason_error_string
#define SSL_CTX_callback_ctrl ossl.SSL_CTX_callback_ctrl
#define SSL_CTX_check_private_key ossl.SSL_CTX_check_private_key
#define SSL_CTX_ctrl ossl.SSL_CTX_ctrl
#define SSL_CTX_free ossl.SSL_CTX_free
#define SSL_CTX_load_verify_locations ossl.SSL_CTX_load_verify_locations
#define SSL_CTX_new ossl.SSL_CTX_new
#define SSL_CTX_sess_set_new_cb ossl.SSL_CTX_sess_set_new_cb
#define SSL_CTX_set_alpn_protos ossl.SSL_CTX_set_alpn_protos
#define SSL_CTX_set_alpn_select_cb ossl.SSL_CTX_set_alpn_select_cb
#define SSL_CTX_set_cipher_list ossl.SSL_CTX_set_cipher_list
#define SSL_CTX_set_default_verify_paths ossl.SSL_CTX_set_default_verify_paths
#define SSL_CTX_set_num_tickets ossl.SSL_CTX_set_num_tickets
#define SSL_CTX_set_options ossl.SSL_CTX_set_options
#define SSL_CTX_set_session_id_context ossl.SSL_CTX_set_session_id_context
#define SSL_CTX_set_verify ossl.SSL_CTX_set_verify
#define SSL_CTX_use_PrivateKey_file ossl.SSL_CTX_use_PrivateKey_file
#define SSL_CTX_use_certificate_chain_file ossl.SSL_CTX_use_certificate_chain_file
#define SSL_SESSION_free ossl.SSL_SESSION_free
#define SSL_SESSION_is_resumable ossl.SSL_SESSION_is_resumable
#define SSL_SESSION_up_ref ossl.SSL_SESSION_up_ref
#define SSL_ctrl ossl.SSL_ctrl
#define SSL_do_handshake ossl.SSL_do_handshake
#define SSL_free ossl.SSL_free
#define SSL_get0_alpn_selected ossl.SSL_get0_alpn_selected
#define SSL_get0_param ossl.SSL_get0_param
#define SSL_get_error ossl.SSL_get_error
#define SSL_get_ex_data ossl.SSL_get_ex_data
#define SSL_get_servername ossl.SSL_get_servername
#define SSL_get_verify_result ossl.SSL_get_verify_result
#define SSL_is_init_finished ossl.SSL_is_init_finished
#define SSL_new ossl.SSL_new
#define SSL_read_ex ossl.SSL_read_ex
#define SSL_select_next_proto ossl.SSL_select_next_proto
#define SSL_session_reused ossl.SSL_session_reused
#define SSL_set1_host ossl.SSL_set1_host
#define SSL_set_SSL_CTX ossl.SSL_set_SSL_CTX
#define SSL_set_accept_state ossl.SSL_set_accept_state
#define SSL_set_bio ossl.SSL_set_bio
#define SSL_set_connect_state ossl.SSL_set_connect_state
#define SSL_set_ex_data ossl.SSL_set_ex_data
#define SSL_set_session ossl.SSL_set_session
#define SSL_shutdown ossl.SSL_shutdown
#define SSL_write_ex ossl.SSL_write_ex
#define TLS_client_method ossl.TLS_client_method
#define TLS_server_method ossl.TLS_server_method
#define X509_VERIFY_PARAM_set1_ip_asc ossl.X509_VERIFY_PARAM_set1_ip_asc
#define X509_verify_cert_error_string ossl.X509_verify_cert_error_string

enum { ERR_SLOTS = 64, ERR_LEN = 240, SESS_SLOTS = 64 };

struct green_tls {
    SSL *ssl;
    int fd;
    int sys_err;        /* the socket's errno when the BIO failed (OpenSSL may clobber errno) */
    int failed;         /* a fatal error: its errno; nothing more is sent */
    int wbroken;        /* a write failed part way: the stream is out of step */
    int peer_closed;    /* close_notify received */
    char *sess_key;     /* client: where its session is kept for resumption (NULL: not) */
    struct ctx_entry *entry;
    char alpn[256];
};

/* ======================================================================== */
/*  green_tls_error: per green thread                                       */
/* ======================================================================== */

struct err_slot {
    green_t g;
    char msg[ERR_LEN];
};
struct err_ring {
    unsigned next;
    struct err_slot slot[ERR_SLOTS];
};

static pthread_once_t err_once = PTHREAD_ONCE_INIT;
static pthread_key_t err_key;

static void err_ring_free(void *p) { free(p); }
static void err_key_make(void) { green__sys.pthread_key_create(&err_key, err_ring_free); }

static struct err_ring *err_ring(void)
{
    green__sys.pthread_once(&err_once, err_key_make);
    struct err_ring *r = green__sys.pthread_getspecific(err_key);
    if (!r && (r = calloc(1, sizeof *r)) != NULL)
        green__sys.pthread_setspecific(err_key, r);
    return r;
}

static struct err_slot *err_find(struct err_ring *r, green_t g)
{
    for (unsigned i = 0; i < ERR_SLOTS; i++)
        if (r->slot[i].g == g)
            return &r->slot[i];
    return NULL;
}

/* Record the calling green thread's failure and set errno to err; returns -1. */
static int fail(int err, const char *fmt, ...)
{
    struct err_ring *r = err_ring();
    green_t g = green_current();
    if (r && g) {
        struct err_slot *s = err_find(r, g);
        if (!s) {
            s = &r->slot[r->next++ % ERR_SLOTS];
            s->g = g;
        }
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->msg, sizeof s->msg, fmt, ap);
        va_end(ap);
    }
    errno = err;
    return -1;
}

const char *green_tls_error(void)
{
    struct err_ring *r = err_ring();
    green_t g = green_current();
    struct err_slot *s = r && g ? err_find(r, g) : NULL;
    return s ? s->msg : "";
}

/* The first error of OpenSSL's queue as text ("" if none); the queue is then cleared. */
static const char *ssl_reason(char *buf, size_t n)
{
    unsigned long e = ERR_peek_error();
    buf[0] = 0;
    if (e) {
        const char *r = ERR_reason_error_string(e);
        if (r)
            snprintf(buf, n, "%s", r);
        else
            ERR_error_string_n(e, buf, n);
    }
    ERR_clear_error();
    return buf;
}

/* ======================================================================== */
/*  The BIO: the fd, with MSG_DONTWAIT                                      */
/* ======================================================================== */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *b, const char *buf, int len)
{
    struct green_tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t r;
    while ((r = green__sys.send(t->fd, buf, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL)) < 0 &&
           errno == EINTR) {
    }
    if (r >= 0)
        return (int)r;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        BIO_set_retry_write(b);
    else
        t->sys_err = errno;
    return -1;
}

static int bio_read(BIO *b, char *buf, int len)
{
    struct green_tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t r;
    while ((r = green__sys.recv(t->fd, buf, (size_t)len, MSG_DONTWAIT)) < 0 && errno == EINTR) {
    }
    if (r >= 0)
        return (int)r;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        BIO_set_retry_read(b);
    else
        t->sys_err = errno;
    return -1;
}

static int bio_puts(BIO *b, const char *s) { return bio_write(b, s, (int)strlen(s)); }

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void bio_method_make(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "libgreen fd");
    if (m && BIO_meth_set_write(m, bio_write) && BIO_meth_set_read(m, bio_read) &&
        BIO_meth_set_puts(m, bio_puts) && BIO_meth_set_ctrl(m, bio_ctrl) &&
        BIO_meth_set_create(m, bio_create))
        bio_method = m;
    else if (m)
        BIO_meth_free(m);
}

/* ======================================================================== */
/*  Contexts, cached by configuration                                       */
/* ======================================================================== */

struct sess_slot {
    char *key;
    SSL_SESSION *sess;
};

struct ctx_entry {
    struct ctx_entry *next;
    char *key;                 /* the configuration and role, serialised */
    size_t keylen;
    SSL_CTX *ctx;
    int server;
    unsigned char *alpn;       /* wire format: length-prefixed protocols */
    size_t alpn_len;
    size_t nsni;
    char **sni_names;
    SSL_CTX **sni_ctx;
    pthread_mutex_t sess_lock; /* client: the sessions kept for resumption */
    unsigned sess_next;
    struct sess_slot sess[SESS_SLOTS];
};

static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ctx_entry *ctx_list;
static int tls_ex_index = -1;

/* A growable string for the key. */
struct buf {
    char *p;
    size_t len, cap;
    int oom;
};

static void buf_add(struct buf *b, const void *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void buf_str(struct buf *b, const char *s)
{
    /* a NULL and "" differ: 0x01 marks NULL; 0x1f separates fields */
    if (s)
        buf_add(b, s, strlen(s));
    else
        buf_add(b, "\x01", 1);
    buf_add(b, "\x1f", 1);
}

static void buf_int(struct buf *b, long long v)
{
    char s[32];
    int n = snprintf(s, sizeof s, "%lld\x1f", v);
    buf_add(b, s, (size_t)n);
}

/* "h2,http/1.1" as ALPN's wire format; -1 when a name is empty or longer than 255. */
static int alpn_wire(const char *list, unsigned char **out, size_t *len)
{
    size_t n = strlen(list);
    unsigned char *w = malloc(n + 1);
    if (!w)
        return fail(ENOMEM, "out of memory");
    size_t o = 0;
    const char *p = list;
    while (1) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == 0 || l > 255) {
            free(w);
            return fail(EINVAL, "bad ALPN list \"%s\"", list);
        }
        w[o++] = (unsigned char)l;
        memcpy(w + o, p, l);
        o += l;
        if (!e)
            break;
        p = e + 1;
    }
    *out = w;
    *len = o;
    return 0;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    struct ctx_entry *e = arg;
    unsigned char *o;
    if (SSL_select_next_proto(&o, outlen, e->alpn, (unsigned)e->alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* nothing in common: go on without ALPN */
    *out = o;
    return SSL_TLSEXT_ERR_OK;
}

static int name_matches(const char *pattern, const char *name)
{
    if (pattern[0] == '*' && pattern[1] == '.') {
        const char *dot = strchr(name, '.');
        return dot && dot != name && strcasecmp(dot, pattern + 1) == 0;
    }
    return strcasecmp(pattern, name) == 0;
}

static int sni_select(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    struct ctx_entry *e = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name)
        for (size_t i = 0; i < e->nsni; i++)
            if (name_matches(e->sni_names[i], name)) {
                SSL_set_SSL_CTX(ssl, e->sni_ctx[i]);
                break;
            }
    return SSL_TLSEXT_ERR_OK;
}

/* Client: a new session to resume later, kept under the connection's key. */
static int session_new(SSL *ssl, SSL_SESSION *sess)
{
    struct green_tls *t = SSL_get_ex_data(ssl, tls_ex_index);
    if (!t || !t->sess_key)
        return 0;
    struct ctx_entry *e = t->entry;
    char *key = strdup(t->sess_key);
    if (!key)
        return 0;
    green__sys.pthread_mutex_lock(&e->sess_lock);
    struct sess_slot *s = NULL;
    for (unsigned i = 0; i < SESS_SLOTS && !s; i++)
        if (e->sess[i].key && strcmp(e->sess[i].key, key) == 0)
            s = &e->sess[i];
    if (!s)
        s = &e->sess[e->sess_next++ % SESS_SLOTS];
    free(s->key);
    if (s->sess)
        SSL_SESSION_free(s->sess);
    s->key = key;
    s->sess = sess;
    green__sys.pthread_mutex_unlock(&e->sess_lock);
    return 1; /* we keep the reference */
}

/* Client: the session kept for key, referenced (NULL: none). */
static SSL_SESSION *session_get(struct ctx_entry *e, const char *key)
{
    SSL_SESSION *s = NULL;
    green__sys.pthread_mutex_lock(&e->sess_lock);
    for (unsigned i = 0; i < SESS_SLOTS && !s; i++)
        if (e->sess[i].key && strcmp(e->sess[i].key, key) == 0 && e->sess[i].sess) {
            s = e->sess[i].sess;
            if (!SSL_SESSION_is_resumable(s)) {
                s = NULL;
                break;
            }
            SSL_SESSION_up_ref(s);
        }
    green__sys.pthread_mutex_unlock(&e->sess_lock);
    return s;
}

static int file_check(const char *what, const char *path)
{
    if (access(path, R_OK) != 0)
        return fail(errno, "%s %s: %s", what, path, strerror(errno));
    return 0;
}

static int load_cert(SSL_CTX *ctx, const char *cert, const char *key)
{
    char why[160];
    if (file_check("certificate", cert) != 0 || (key && file_check("key", key) != 0))
        return -1;
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        return fail(EINVAL, "certificate %s: %s", cert, ssl_reason(why, sizeof why));
    if (SSL_CTX_use_PrivateKey_file(ctx, key ? key : cert, SSL_FILETYPE_PEM) != 1)
        return fail(EINVAL, "key %s: %s", key ? key : cert, ssl_reason(why, sizeof why));
    if (SSL_CTX_check_private_key(ctx) != 1)
        return fail(EINVAL, "key %s does not match certificate %s", key ? key : cert, cert);
    return 0;
}

/* Options every context of ours shares (the SNI ones too). */
static int ctx_common(SSL_CTX *ctx, const green_tls_config_t *c)
{
    char why[160];
    int minv = c->min_version ? c->min_version : TLS1_2_VERSION;
    SSL_CTX_set_min_proto_version(ctx, minv);
    if (c->max_version)
        SSL_CTX_set_max_proto_version(ctx, c->max_version);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    ERR_clear_error();
    if (c->ciphers && SSL_CTX_set_cipher_list(ctx, c->ciphers) != 1)
        return fail(EINVAL, "ciphers \"%s\": %s", c->ciphers, ssl_reason(why, sizeof why));
    if (c->groups && SSL_CTX_set1_groups_list(ctx, c->groups) != 1)
        return fail(EINVAL, "groups \"%s\": %s", c->groups, ssl_reason(why, sizeof why));
    return 0;
}

static void entry_free(struct ctx_entry *e)
{
    SSL_CTX_free(e->ctx);
    for (size_t i = 0; i < e->nsni; i++) {
        SSL_CTX_free(e->sni_ctx ? e->sni_ctx[i] : NULL);
        free(e->sni_names ? e->sni_names[i] : NULL);
    }
    free(e->sni_ctx);
    free(e->sni_names);
    free(e->alpn);
    free(e->key);
    green__sys.pthread_mutex_destroy(&e->sess_lock);
    free(e);
}

static struct ctx_entry *entry_build(const green_tls_config_t *c, int server)
{
    char why[160];
    struct ctx_entry *e = calloc(1, sizeof *e);
    if (!e) {
        fail(ENOMEM, "out of memory");
        return NULL;
    }
    green__sys.pthread_mutex_init(&e->sess_lock, NULL);
    e->server = server;
    e->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!e->ctx) {
        fail(ENOMEM, "SSL_CTX_new: %s", ssl_reason(why, sizeof why));
        goto bad;
    }
    SSL_CTX *ctx = e->ctx;
    if (ctx_common(ctx, c) != 0)
        goto bad;
    if (c->cert_file && load_cert(ctx, c->cert_file, c->key_file) != 0)
        goto bad;
    if (server && !c->cert_file) {
        fail(EINVAL, "a server needs cert_file");
        goto bad;
    }
    int verify = server ? c->verify == GREEN_TLS_VERIFY_PEER : c->verify != GREEN_TLS_VERIFY_NONE;
    if (verify) {
        ERR_clear_error();
        if (c->ca_file || c->ca_dir) {
            if ((c->ca_file && file_check("CA file", c->ca_file) != 0) ||
                (c->ca_dir && file_check("CA directory", c->ca_dir) != 0))
                goto bad;
            if (SSL_CTX_load_verify_locations(ctx, c->ca_file, c->ca_dir) != 1) {
                fail(EINVAL, "CAs %s: %s", c->ca_file ? c->ca_file : c->ca_dir, ssl_reason(why, sizeof why));
                goto bad;
            }
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            fail(EINVAL, "the system's CA store: %s", ssl_reason(why, sizeof why));
            goto bad;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    if (c->alpn && alpn_wire(c->alpn, &e->alpn, &e->alpn_len) != 0)
        goto bad;
    if (server) {
        static const unsigned char sid[] = "libgreen";
        SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
        /* TLS 1.2 renegotiation asked by clients: refused (a way to make a server spend
         * handshakes, and the one case where a read would have to write) */
        SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
        if (c->no_resumption) {
            SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
            SSL_CTX_set_num_tickets(ctx, 0);
            SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        }
        if (e->alpn)
            SSL_CTX_set_alpn_select_cb(ctx, alpn_select, e);
        if (c->ncerts && !c->certs) {
            fail(EINVAL, "ncerts without certs");
            goto bad;
        }
        if (c->ncerts) {
            e->sni_ctx = calloc(c->ncerts, sizeof *e->sni_ctx);
            e->sni_names = calloc(c->ncerts, sizeof *e->sni_names);
            if (!e->sni_ctx || !e->sni_names) {
                fail(ENOMEM, "out of memory");
                goto bad;
            }
            e->nsni = c->ncerts;
            for (size_t i = 0; i < c->ncerts; i++) {
                const green_tls_cert_t *k = &c->certs[i];
                if (!k->servername || !k->cert_file) {
                    fail(EINVAL, "certs[%zu]: servername and cert_file needed", i);
                    goto bad;
                }
                e->sni_names[i] = strdup(k->servername);
                e->sni_ctx[i] = SSL_CTX_new(TLS_server_method());
                if (!e->sni_names[i] || !e->sni_ctx[i]) {
                    fail(ENOMEM, "out of memory");
                    goto bad;
                }
                if (ctx_common(e->sni_ctx[i], c) != 0 ||
                    load_cert(e->sni_ctx[i], k->cert_file, k->key_file) != 0)
                    goto bad;
            }
            SSL_CTX_set_tlsext_servername_callback(ctx, sni_select);
            SSL_CTX_set_tlsext_servername_arg(ctx, e);
        }
    } else {
        if (e->alpn && SSL_CTX_set_alpn_protos(ctx, e->alpn, (unsigned)e->alpn_len) != 0) {
            fail(ENOMEM, "ALPN: %s", ssl_reason(why, sizeof why));
            goto bad;
        }
        SSL_CTX_set_session_cache_mode(ctx, c->no_resumption ? SSL_SESS_CACHE_OFF
                                                             : SSL_SESS_CACHE_CLIENT |
                                                                   SSL_SESS_CACHE_NO_INTERNAL_STORE);
        if (!c->no_resumption)
            SSL_CTX_sess_set_new_cb(ctx, session_new);
    }
    return e;
bad:
    entry_free(e);
    return NULL;
}

static void ex_index_make(void)
{
    tls_ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;

/* The context for configuration c in a role, built on first use. NULL + errno. */
static struct ctx_entry *ctx_get(const green_tls_config_t *c, int server)
{
    green__sys.pthread_once(&ossl_once, ossl_load);
    if (ossl_missing) {
        fail(ENOTSUP, "OpenSSL 3 cannot be loaded (%s is missing)", ossl_missing);
        return NULL;
    }
    green__sys.pthread_once(&bio_once, bio_method_make);
    green__sys.pthread_once(&ex_once, ex_index_make);
    if (!bio_method || tls_ex_index < 0) {
        fail(ENOMEM, "OpenSSL could not be set up");
        return NULL;
    }
    if (c->verify < 0 || c->verify > GREEN_TLS_VERIFY_PEER ||
        (c->min_version && c->min_version != GREEN_TLS_1_2 && c->min_version != GREEN_TLS_1_3) ||
        (c->max_version && c->max_version != GREEN_TLS_1_2 && c->max_version != GREEN_TLS_1_3) ||
        (c->min_version && c->max_version && c->max_version < c->min_version)) {
        fail(EINVAL, "bad verify, min_version or max_version");
        return NULL;
    }
    struct buf k = {0};
    buf_int(&k, server);
    buf_str(&k, c->cert_file);
    buf_str(&k, c->key_file);
    buf_str(&k, c->ca_file);
    buf_str(&k, c->ca_dir);
    buf_int(&k, c->verify);
    buf_int(&k, c->min_version);
    buf_int(&k, c->max_version);
    buf_str(&k, c->alpn);
    buf_int(&k, (long long)c->ncerts);
    for (size_t i = 0; c->certs && i < c->ncerts; i++) {
        buf_str(&k, c->certs[i].servername);
        buf_str(&k, c->certs[i].cert_file);
        buf_str(&k, c->certs[i].key_file);
    }
    buf_int(&k, c->no_resumption);
    buf_str(&k, c->ciphers);
    buf_str(&k, c->groups);
    if (k.oom) {
        free(k.p);
        fail(ENOMEM, "out of memory");
        return NULL;
    }
    green__sys.pthread_mutex_lock(&ctx_lock);
    struct ctx_entry *e;
    for (e = ctx_list; e; e = e->next)
        if (e->keylen == k.len && memcmp(e->key, k.p, k.len) == 0)
            break;
    if (!e && (e = entry_build(c, server)) != NULL) {
        e->key = k.p;
        e->keylen = k.len;
        k.p = NULL;
        e->next = ctx_list;
        ctx_list = e;
    }
    green__sys.pthread_mutex_unlock(&ctx_lock);
    free(k.p);
    return e;
}

/* For green_serve: is c usable by a server? (loads it) 0, or -1 + errno. */
int green__tls_check(const green_tls_config_t *c)
{
    if (!c)
        return fail(EINVAL, "no TLS configuration");
    return ctx_get(c, 1) ? 0 : -1;
}

/* ======================================================================== */
/*  Sessions                                                                */
/* ======================================================================== */

static void tls_free(struct green_tls *t)
{
    if (t->ssl)
        SSL_free(t->ssl); /* and its BIO */
    free(t->sess_key);
    free(t);
}

static const char *step_name(struct green_tls *t)
{
    return SSL_is_init_finished(t->ssl) ? "read" : "handshake";
}

/* After an SSL call on t returned r <= 0: park until the fd is ready for what OpenSSL
 * wants (0: call it again), or fail (-1 + errno, the reason recorded). 1: close_notify
 * received. */
static int settle(struct green_tls *t, int r, int64_t deadline, const char *what)
{
    char why[200];
    int e = SSL_get_error(t->ssl, r);
    int dir = 0;
    switch (e) {
    case SSL_ERROR_WANT_READ:
        dir = GREEN_READ;
        break;
    case SSL_ERROR_WANT_WRITE:
        dir = GREEN_WRITE;
        break;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        t->peer_closed = 1;
        return 1;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        t->failed = t->sys_err ? t->sys_err : ECONNABORTED;
        if (t->sys_err)
            return fail(t->sys_err, "%s: %s", what, strerror(t->sys_err));
        return fail(ECONNABORTED, "%s: the peer closed the connection without close_notify", what);
    case SSL_ERROR_SSL: {
        unsigned long err = ERR_peek_error();
        long vr = SSL_get_verify_result(t->ssl);
        if (ERR_GET_REASON(err) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            ERR_clear_error();
            t->failed = ECONNABORTED;
            return fail(ECONNABORTED, "%s: the peer closed the connection without close_notify", what);
        }
        t->failed = t->sys_err ? t->sys_err : EPROTO;
        if (t->sys_err) {
            ERR_clear_error();
            return fail(t->sys_err, "%s: %s", what, strerror(t->sys_err));
        }
        if (vr != X509_V_OK) {
            ERR_clear_error();
            return fail(EPROTO, "%s: certificate verify failed: %s", what,
                        X509_verify_cert_error_string(vr));
        }
        return fail(EPROTO, "%s: %s", what, ssl_reason(why, sizeof why));
    }
    default:
        ERR_clear_error();
        t->failed = EPROTO;
        return fail(EPROTO, "%s: OpenSSL error %d", what, e);
    }
    ERR_clear_error();
    struct green_hub *h = green__loop();
    if (!h)
        return fail(errno, "%s: %s", what, strerror(errno));
    if (green__fd_wait(h, t->fd, dir, deadline) > 0)
        return 0;
    int err = errno;
    return fail(err, "%s: %s", what,
                err == ETIMEDOUT ? "timed out" : err == ECANCELED ? "cancelled" : strerror(err));
}

static struct green_tls *tls_new(int fd, struct ctx_entry *e)
{
    struct green_tls *t = calloc(1, sizeof *t);
    BIO *bio = NULL;
    if (!t || !(t->ssl = SSL_new(e->ctx)) || !(bio = BIO_new(bio_method))) {
        if (t)
            tls_free(t);
        fail(ENOMEM, "out of memory");
        return NULL;
    }
    t->fd = fd;
    t->entry = e;
    BIO_set_data(bio, t);
    SSL_set_bio(t->ssl, bio, bio);
    SSL_set_ex_data(t->ssl, tls_ex_index, t);
    return t;
}

static struct green_tls *handshake(struct green_tls *t, int64_t deadline)
{
    while (1) {
        ERR_clear_error();
        int r = SSL_do_handshake(t->ssl);
        if (r == 1)
            return t;
        int s = settle(t, r, deadline, "handshake");
        if (s != 0) {
            if (s > 0) /* close_notify before the end of the handshake */
                fail(ECONNABORTED, "handshake: the peer closed the connection");
            int err = errno;
            tls_free(t);
            errno = err;
            return NULL;
        }
    }
}

static int fd_check(int fd)
{
    int type;
    socklen_t len = sizeof type;
    if (fd < 0)
        return fail(EBADF, "bad fd %d", fd);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0)
        return fail(errno, "fd %d: %s", fd, strerror(errno));
    if (type != SOCK_STREAM)
        return fail(EINVAL, "fd %d is not a stream socket", fd);
    /* TLS sends whole records, often two small ones in a row (a handshake's last flight,
     * then the first data): with Nagle's algorithm the second waits for the peer's
     * delayed ACK, some 40 ms. (Not a TCP socket: the call fails, nothing changes.) */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return 0;
}

green_tls_t *green_tls_connect(int fd, const char *servername, const green_tls_config_t *cfg,
                               int64_t deadline)
{
    static const green_tls_config_t defaults;
    const green_tls_config_t *c = cfg ? cfg : &defaults;
    if (fd_check(fd) != 0)
        return NULL;
    if (servername && (!*servername || strlen(servername) > 253)) {
        fail(EINVAL, "bad servername");
        return NULL;
    }
    if (!servername && c->verify != GREEN_TLS_VERIFY_NONE) {
        fail(EINVAL, "a servername is needed to verify the server's certificate");
        return NULL;
    }
    struct ctx_entry *e = ctx_get(c, 0);
    if (!e)
        return NULL;
    struct green_tls *t = tls_new(fd, e);
    if (!t)
        return NULL;
    SSL_set_connect_state(t->ssl);
    unsigned char ip[16];
    int is_ip = servername && (inet_pton(AF_INET, servername, ip) == 1 ||
                               inet_pton(AF_INET6, servername, ip) == 1);
    int ok = 1;
    if (servername && !is_ip)
        ok = SSL_set_tlsext_host_name(t->ssl, servername) == 1;
    if (ok && servername && c->verify != GREEN_TLS_VERIFY_NONE) {
        if (is_ip)
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), servername) == 1;
        else
            ok = SSL_set1_host(t->ssl, servername) == 1;
    }
    if (!ok) {
        ERR_clear_error();
        tls_free(t);
        fail(EINVAL, "bad servername \"%s\"", servername);
        return NULL;
    }
    if (!c->no_resumption) {
        /* sessions are resumed per server name (else peer address) and port */
        char key[300];
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        char host[INET6_ADDRSTRLEN] = "?";
        int port = 0;
        if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
            if (ss.ss_family == AF_INET) {
                struct sockaddr_in *a = (struct sockaddr_in *)&ss;
                inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
                port = ntohs(a->sin_port);
            } else if (ss.ss_family == AF_INET6) {
                struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
                inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
                port = ntohs(a->sin6_port);
            }
        }
        snprintf(key, sizeof key, "%s]:%d", servername ? servername : host, port);
        t->sess_key = strdup(key);
        SSL_SESSION *s = t->sess_key ? session_get(e, key) : NULL;
        if (s) {
            SSL_set_session(t->ssl, s);
            SSL_SESSION_free(s);
        }
    }
    return handshake(t, deadline);
}

green_tls_t *green_tls_accept(int fd, const green_tls_config_t *cfg, int64_t deadline)
{
    if (!cfg) {
        fail(EINVAL, "a server needs a configuration (cert_file)");
        return NULL;
    }
    if (fd_check(fd) != 0)
        return NULL;
    struct ctx_entry *e = ctx_get(cfg, 1);
    if (!e)
        return NULL;
    struct green_tls *t = tls_new(fd, e);
    if (!t)
        return NULL;
    SSL_set_accept_state(t->ssl);
    return handshake(t, deadline);
}

ssize_t green_tls_read(green_tls_t *t, void *buf, size_t n, int64_t deadline)
{
    if (!t || (!buf && n))
        return fail(EINVAL, "bad arguments");
    if (t->failed)
        return fail(t->failed, "%s", "read: the session failed before");
    if (n == 0 || t->peer_closed)
        return 0;
    while (1) {
        size_t got = 0;
        ERR_clear_error();
        int r = SSL_read_ex(t->ssl, buf, n, &got);
        if (r == 1)
            return (ssize_t)got;
        int s = settle(t, r, deadline, step_name(t));
        if (s > 0)
            return 0;
        if (s < 0)
            return -1;
    }
}

ssize_t green_tls_write(green_tls_t *t, const void *buf, size_t n, int64_t deadline)
{
    if (!t || (!buf && n))
        return fail(EINVAL, "bad arguments");
    if (t->failed)
        return fail(t->failed, "write: the session failed before");
    if (t->wbroken)
        return fail(EPIPE, "write: an earlier write failed part way");
    size_t done = 0;
    while (done < n) {
        size_t put = 0;
        ERR_clear_error();
        int r = SSL_write_ex(t->ssl, (const char *)buf + done, n - done, &put);
        if (r == 1) {
            done += put;
            continue;
        }
        int s = settle(t, r, deadline, "write");
        if (s == 0)
            continue;
        if (s > 0)
            fail(EPIPE, "write: the peer closed the session");
        int err = errno;
        t->wbroken = 1;
        errno = err;
        return done ? (ssize_t)done : -1;
    }
    return (ssize_t)n;
}

int green_tls_close(green_tls_t *t, int64_t deadline)
{
    if (!t)
        return fail(EINVAL, "bad arguments");
    int rc = 0;
    if (!t->failed && !t->wbroken && SSL_is_init_finished(t->ssl)) {
        while (1) {
            ERR_clear_error();
            int r = SSL_shutdown(t->ssl);
            if (r >= 0) /* ours is sent; the peer's is not waited for */
                break;
            int s = settle(t, r, deadline, "close");
            if (s > 0)
                break;
            if (s < 0) {
                rc = -1;
                break;
            }
        }
    }
    ERR_clear_error();
    int err = errno;
    tls_free(t);
    errno = err;
    return rc;
}

const char *green_tls_alpn(green_tls_t *t)
{
    if (!t) {
        errno = EINVAL;
        return NULL;
    }
    const unsigned char *p;
    unsigned int len;
    SSL_get0_alpn_selected(t->ssl, &p, &len);
    if (!p)
        len = 0;
    if (len >= sizeof t->alpn)
        len = sizeof t->alpn - 1;
    if (len)
        memcpy(t->alpn, p, len);
    t->alpn[len] = 0;
    return t->alpn;
}

int green_tls_resumed(green_tls_t *t)
{
    if (!t) {
        errno = EINVAL;
        return -1;
    }
    return SSL_session_reused(t->ssl) ? 1 : 0;
}

void *green_tls_ssl(green_tls_t *t)
{
    if (!t) {
        errno = EINVAL;
        return NULL;
    }
    return t->ssl;
}
