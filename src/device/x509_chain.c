/* x509_chain.c — a device profile's CA certificate chain (ThingsBoard's X509_CERTIFICATE_CHAIN
 * provisioning) from pasted text to canonical PEM. See x509.h.
 *
 * Each certificate block goes through x509_cred_from_pem, so a chain obeys exactly the rules
 * a single device certificate does (tolerant of what people paste, strict about what the DER
 * is) and its first certificate's hash is computed the way the DTLS side hashes a certificate
 * it receives. ThingsBoard keeps the text with its line breaks stripped; we keep canonical PEM
 * instead, which every consumer (OpenSSL's PEM readers in the chain-provisioning check, the
 * web UI's download) reads without a second parser. Nothing here checks signatures or dates:
 * that is the business of whoever verifies a device against the chain.
 */
#include "device/x509.h"

#include "core/xmalloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BEGIN_MARK "-----BEGIN "
#define CERT_BEGIN "-----BEGIN CERTIFICATE-----"
#define CERT_END "-----END CERTIFICATE-----"

static int fail(char *err, size_t cap, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t cap, int rc, const char *fmt, ...)
{
    if (err && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static const char *find(const char *p, const char *end, const char *needle)
{
    return p < end ? memmem(p, (size_t)(end - p), needle, strlen(needle)) : NULL;
}

/* Appends one certificate (single-line Base64) as a PEM block with 64-column lines. */
static void append_pem(char **out, size_t *len, const char *b64)
{
    size_t n = strlen(b64);
    size_t need = *len + strlen(CERT_BEGIN) + strlen(CERT_END) + n + n / 64 + 4;
    *out = xrealloc(*out, need + 1);
    char *p = *out + *len;
    p += sprintf(p, "%s\n", CERT_BEGIN);
    for (size_t i = 0; i < n; i += 64) {
        size_t k = n - i < 64 ? n - i : 64;
        memcpy(p, b64 + i, k);
        p += k;
        *p++ = '\n';
    }
    p += sprintf(p, "%s\n", CERT_END);
    *len = (size_t)(p - *out);
}

int x509_chain_from_pem(const char *text, size_t len, char **pem, int *n_certs,
                        char first_hash_hex[static 65], char *err, size_t err_cap)
{
    *pem = NULL;
    *n_certs = 0;
    first_hash_hex[0] = '\0';
    if (len > X509_PEM_MAX)
        return fail(err, err_cap, -EMSGSIZE, "certificate text is larger than %d KiB",
                    X509_PEM_MAX / 1024);
    const char *end = text + len;
    char *out = NULL;
    size_t out_len = 0;
    char why[200];
    int rc = 0;
    if (!find(text, end, BEGIN_MARK) && !find(text, end, "-----END ")) {
        /* One bare Base64 body: ThingsBoard's own stored form of a single certificate. */
        char *b64 = NULL;
        if ((rc = x509_cred_from_pem(text, len, &b64, first_hash_hex, why, sizeof why)) < 0)
            return fail(err, err_cap, rc, "%s", why);
        append_pem(&out, &out_len, b64);
        free(b64);
        *n_certs = 1;
        goto out;
    }
    const char *p = text;
    for (const char *b = find(p, end, BEGIN_MARK); b; b = find(p, end, BEGIN_MARK)) {
        if ((size_t)(end - b) < strlen(CERT_BEGIN) || memcmp(b, CERT_BEGIN, strlen(CERT_BEGIN))) {
            /* Most often the CA's private key pasted along: never store it. */
            rc = fail(err, err_cap, -EINVAL,
                      "contains a PEM block that is not a certificate; paste only certificates");
            goto out;
        }
        const char *e = find(b, end, CERT_END);
        if (!e) {
            rc = fail(err, err_cap, -EINVAL, "PEM certificate has no \"" CERT_END "\" line");
            goto out;
        }
        e += strlen(CERT_END);
        if (*n_certs == X509_CHAIN_MAX) {
            rc = fail(err, err_cap, -EINVAL, "more than %d certificates in the chain",
                      X509_CHAIN_MAX);
            goto out;
        }
        char *b64 = NULL, hash[65];
        rc = x509_cred_from_pem(b, (size_t)(e - b), &b64, hash, why, sizeof why);
        if (rc < 0) {
            rc = fail(err, err_cap, rc, "certificate %d: %s", *n_certs + 1, why);
            goto out;
        }
        if (*n_certs == 0)
            memcpy(first_hash_hex, hash, 65);
        append_pem(&out, &out_len, b64);
        free(b64);
        (*n_certs)++;
        p = e;
    }
    if (*n_certs == 0 || find(p, end, "-----END "))
        rc = fail(err, err_cap, -EINVAL, "not a PEM certificate");
out:
    /* The canonical form is longer than compact input: keep it readable by this function. */
    if (rc == 0 && out_len > X509_PEM_MAX)
        rc = fail(err, err_cap, -EMSGSIZE, "certificate chain is larger than %d KiB as PEM",
                  X509_PEM_MAX / 1024);
    if (rc < 0) {
        free(out);
        *n_certs = 0;
        first_hash_hex[0] = '\0';
        return rc;
    }
    *pem = out;
    return 0;
}
