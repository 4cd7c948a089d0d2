/* pki.c — per-device DTLS client credentials for coaphub-bench: an EC P-256 key and a
 * self-signed certificate per device, read from <cert_dir>/dev-<i>.crt|.key when present,
 * otherwise generated in-process (and written there when a folder is given, so a later run —
 * or the server's registration — can reuse them); or, with --psk, a pre-shared key.
 * Bench-only material: the keys are throwaway and written with mode 0600.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "bench.h"
#include "core/xmalloc.h"

static int gen(bench_dev_t *d)
{
    d->key = EVP_EC_gen("P-256");
    if (!d->key)
        return -ENOMEM;
    X509 *x = X509_new();
    if (!x)
        return -ENOMEM;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), d->idx + 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 365L * 24 * 3600);
    X509_set_pubkey(x, d->key);
    char cn[64];
    snprintf(cn, sizeof cn, "coaphub-bench-%d", d->idx);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    if (X509_sign(x, d->key, EVP_sha256()) <= 0) {
        X509_free(x);
        return -EINVAL;
    }
    d->cert = x;
    return 0;
}

static int save(const bench_dev_t *d, const char *crt, const char *key)
{
    FILE *f = fopen(crt, "w");
    if (!f)
        return -errno;
    int ok = PEM_write_X509(f, d->cert);
    fclose(f);
    int fd = open(key, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return -errno;
    }
    ok &= PEM_write_PrivateKey(f, d->key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    return ok ? 0 : -EIO;
}

static int load(bench_dev_t *d, const char *crt, const char *key)
{
    FILE *f = fopen(crt, "r");
    if (!f)
        return -errno;
    d->cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    f = fopen(key, "r");
    if (!f)
        return -errno;
    d->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    return d->cert && d->key ? 0 : -EINVAL;
}

int bench_pki_load_or_gen(bench_t *b, bench_dev_t *d, char *err, size_t errlen)
{
    char crt[4096] = "", key[4096] = "";
    if (b->cfg.cert_dir) {
        snprintf(crt, sizeof crt, "%s/dev-%d.crt", b->cfg.cert_dir, d->idx);
        snprintf(key, sizeof key, "%s/dev-%d.key", b->cfg.cert_dir, d->idx);
        if (access(crt, R_OK) == 0 && access(key, R_OK) == 0) {
            int r = load(d, crt, key);
            if (r < 0)
                snprintf(err, errlen, "cannot read %s / %s", crt, key);
            return r;
        }
        if (!b->cfg.gen_certs) {
            snprintf(err, errlen, "%s missing (use --gen-certs)", crt);
            return -ENOENT;
        }
    }
    int r = gen(d);
    if (r < 0) {
        snprintf(err, errlen, "certificate generation failed");
        return r;
    }
    if (b->cfg.cert_dir) {
        mkdir(b->cfg.cert_dir, 0700);
        r = save(d, crt, key);
        if (r < 0)
            snprintf(err, errlen, "cannot write %s: %s", crt, strerror(-r));
    }
    return r;
}

char *bench_pki_cert_pem(const bench_dev_t *d)
{
    BIO *m = BIO_new(BIO_s_mem());
    if (!m)
        return NULL;
    char *out = NULL;
    if (PEM_write_bio_X509(m, d->cert)) {
        char *p;
        long n = BIO_get_mem_data(m, &p);
        out = xmalloc((size_t)n + 1);
        {
            memcpy(out, p, (size_t)n);
            out[n] = 0;
        }
    }
    BIO_free(m);
    return out;
}

void bench_psk_key(bench_dev_t *d)
{
    static const char LABEL[] = "coaphub-bench psk ";
    uint8_t md[SHA256_DIGEST_LENGTH];
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned n = 0;
    if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(c, LABEL, sizeof LABEL - 1) != 1 ||
        EVP_DigestUpdate(c, d->token, strlen(d->token)) != 1 || EVP_DigestFinal_ex(c, md, &n) != 1)
        abort(); /* only out of memory gets here */
    EVP_MD_CTX_free(c);
    memcpy(d->psk_key, md, sizeof d->psk_key);
}

unsigned bench_psk_client_cb(SSL *ssl, const char *hint, char *identity, unsigned max_identity,
                             unsigned char *psk, unsigned max_psk)
{
    (void)hint;
    const bench_dev_t *d = SSL_get_app_data(ssl);
    size_t n = d ? strlen(d->token) : 0;
    if (!d || n + 1 > max_identity || sizeof d->psk_key > max_psk)
        return 0;
    memcpy(identity, d->token, n + 1);
    memcpy(psk, d->psk_key, sizeof d->psk_key);
    return sizeof d->psk_key;
}
