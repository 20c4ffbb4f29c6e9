/*
 * tls_certs.h — certificates for the TLS tests, made with OpenSSL's API in a scratch
 * directory: a CA, a server certificate for localhost and 127.0.0.1 signed by it, an
 * expired one, a self-signed one, and one for another host (other.example). All keys
 * are ECDSA P-256. Static functions: each test program gets its own copy.
 */
#ifndef GREEN_TLS_CERTS_H
#define GREEN_TLS_CERTS_H

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct tls_files {
    char dir[64];
    char ca[128], ca_key[128];
    char srv[128], srv_key[128];           /* localhost, 127.0.0.1, by the CA */
    char expired[128], expired_key[128];   /* localhost, by the CA, expired an hour ago */
    char self[128], self_key[128];         /* localhost, self-signed */
    char other[128], other_key[128];       /* other.example, by the CA */
};

static int tls_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v;
    X509V3_set_ctx_nodb(&v);
    X509V3_set_ctx(&v, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v, nid, value);
    if (!e)
        return -1;
    int ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok ? 0 : -1;
}

/* A certificate for key named cn (SAN san) signed by issuer/ikey (NULL: self-signed),
 * valid from `from` to `to` seconds from now. */
static X509 *tls_cert(EVP_PKEY *key, const char *cn, const char *san, X509 *issuer, EVP_PKEY *ikey,
                      long from, long to, int ca)
{
    static long serial = 1;
    X509 *x = X509_new();
    if (!x)
        return NULL;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), from);
    X509_gmtime_adj(X509_getm_notAfter(x), to);
    X509_set_pubkey(x, key);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
    X509 *iss = issuer ? issuer : x;
    if (tls_ext(x, iss, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE") ||
        tls_ext(x, iss, NID_key_usage, ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature") ||
        tls_ext(x, iss, NID_subject_key_identifier, "hash") ||
        (!ca && tls_ext(x, iss, NID_ext_key_usage, "serverAuth,clientAuth")) ||
        (san && tls_ext(x, iss, NID_subject_alt_name, san)) ||
        !X509_sign(x, ikey ? ikey : key, EVP_sha256())) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static int tls_write(const char *cert_path, X509 *x, const char *key_path, EVP_PKEY *k)
{
    FILE *f = fopen(cert_path, "w");
    int ok = f && PEM_write_X509(f, x);
    if (f)
        fclose(f);
    f = fopen(key_path, "w");
    ok = ok && f && PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    if (f)
        fclose(f);
    return ok ? 0 : -1;
}

/* Make them all in a fresh directory under /tmp: 0, or -1. */
static int tls_files_make(struct tls_files *t)
{
    memset(t, 0, sizeof *t);
    snprintf(t->dir, sizeof t->dir, "/tmp/green-tls-XXXXXX");
    if (!mkdtemp(t->dir))
        return -1;
#define TLS_PATH(field, name) snprintf(t->field, sizeof t->field, "%s/%s", t->dir, name)
    TLS_PATH(ca, "ca.pem");
    TLS_PATH(ca_key, "ca.key");
    TLS_PATH(srv, "server.pem");
    TLS_PATH(srv_key, "server.key");
    TLS_PATH(expired, "expired.pem");
    TLS_PATH(expired_key, "expired.key");
    TLS_PATH(self, "self.pem");
    TLS_PATH(self_key, "self.key");
    TLS_PATH(other, "other.pem");
    TLS_PATH(other_key, "other.key");
#undef TLS_PATH
    const long day = 86400;
    EVP_PKEY *ck = EVP_EC_gen("P-256"), *sk = EVP_EC_gen("P-256"), *ek = EVP_EC_gen("P-256"),
             *fk = EVP_EC_gen("P-256"), *ok = EVP_EC_gen("P-256");
    X509 *ca = NULL, *srv = NULL, *exp = NULL, *self = NULL, *oth = NULL;
    int rc = -1;
    if (!ck || !sk || !ek || !fk || !ok)
        goto out;
    ca = tls_cert(ck, "libgreen test CA", NULL, NULL, NULL, -day, 30 * day, 1);
    srv = tls_cert(sk, "localhost", "DNS:localhost,IP:127.0.0.1", ca, ck, -day, 30 * day, 0);
    exp = tls_cert(ek, "localhost", "DNS:localhost,IP:127.0.0.1", ca, ck, -2 * day, -3600, 0);
    self = tls_cert(fk, "localhost", "DNS:localhost,IP:127.0.0.1", NULL, NULL, -day, 30 * day, 0);
    oth = tls_cert(ok, "other.example", "DNS:other.example", ca, ck, -day, 30 * day, 0);
    if (ca && srv && exp && self && oth && tls_write(t->ca, ca, t->ca_key, ck) == 0 &&
        tls_write(t->srv, srv, t->srv_key, sk) == 0 &&
        tls_write(t->expired, exp, t->expired_key, ek) == 0 &&
        tls_write(t->self, self, t->self_key, fk) == 0 &&
        tls_write(t->other, oth, t->other_key, ok) == 0)
        rc = 0;
out:
    X509_free(ca), X509_free(srv), X509_free(exp), X509_free(self), X509_free(oth);
    EVP_PKEY_free(ck), EVP_PKEY_free(sk), EVP_PKEY_free(ek), EVP_PKEY_free(fk), EVP_PKEY_free(ok);
    return rc;
}

static void tls_files_remove(struct tls_files *t)
{
    const char *files[] = {t->ca, t->ca_key, t->srv, t->srv_key, t->expired, t->expired_key,
                           t->self, t->self_key, t->other, t->other_key};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(files[i]);
    rmdir(t->dir);
}

#endif /* GREEN_TLS_CERTS_H */
