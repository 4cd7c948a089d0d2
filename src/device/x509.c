/* x509.c — canonicalises pasted certificates into ThingsBoard's credential form. See x509.h.
 *
 * Invariant: a credential that leaves here is exactly Base64(DER) of one certificate that
 * OpenSSL parsed completely, so the hash matches what the DTLS side computes from the leaf
 * the device presents. ThingsBoard itself only strips the PEM markers and line breaks and
 * stores whatever is left (§6.2); a stray space or a second certificate then produces a
 * credential that can never match. We refuse such input at save time with a message the
 * operator can act on instead. We do not check validity dates or trust chains here: that is
 * the handshake's business.
 *
 * The PEM envelope is taken apart by hand rather than with PEM_read_bio_X509 because we
 * want to tolerate what people paste (indented markers, CRLF, spaces inside the body) and
 * still tell "two certificates" apart from "garbage"; the DER itself is parsed by d2i_X509.
 */
#include "device/x509.h"

#include "core/err.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <openssl/asn1.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <string.h>
#include <time.h>

#define BEGIN_MARK "-----BEGIN "
#define CERT_BEGIN "-----BEGIN CERTIFICATE-----"
#define CERT_END "-----END CERTIFICATE-----"

static void set_err(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

static const char *find(const char *p, const char *end, const char *needle)
{
    size_t n = strlen(needle);
    if (p >= end)
        return NULL;
    return memmem(p, (size_t)(end - p), needle, n);
}

static bool is_b64(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Strips whitespace and checks the RFC 4648 alphabet with '=' padding only at the end.
 * Returns the compact length, or -1 if the text is not Base64. out must hold len bytes. */
static ssize_t compact_b64(const char *p, size_t len, char *out)
{
    size_t n = 0, pad = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (is_space(c))
            continue;
        if (c == '=') {
            pad++;
        } else if (!is_b64(c) || pad > 0) {
            return -1; /* bad character, or data after padding */
        }
        out[n++] = (char)c;
    }
    if (n == 0 || n % 4 != 0 || pad > 2)
        return -1;
    return (ssize_t)n;
}

/* Decodes compact Base64 (validated) into a new buffer. */
static uint8_t *decode_b64(const char *b64, size_t n, size_t *out_len)
{
    uint8_t *der = xmalloc(n / 4 * 3 + 3);
    EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
    int outl = 0, fin = 0;
    EVP_DecodeInit(ctx);
    if (EVP_DecodeUpdate(ctx, der, &outl, (const unsigned char *)b64, (int)n) < 0 ||
        EVP_DecodeFinal(ctx, der + outl, &fin) < 0) {
        EVP_ENCODE_CTX_free(ctx);
        free(der);
        return NULL;
    }
    EVP_ENCODE_CTX_free(ctx);
    *out_len = (size_t)outl + (size_t)fin;
    return der;
}

static char *encode_b64(const uint8_t *der, size_t len)
{
    char *b64 = xmalloc(4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)b64, der, (int)len);
    return b64;
}

static void hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static void sha3_hex(const char *b64, char hash_hex[static 65])
{
    uint8_t md[32];
    unsigned int mdlen = 0;
    /* Only a broken OpenSSL build lacks SHA3-256; no credential could be formed then. */
    ASSERT(EVP_Digest(b64, strlen(b64), md, &mdlen, EVP_sha3_256(), NULL) && mdlen == 32);
    hex(md, 32, hash_hex);
}

/* Counts PEM blocks in [p, end); sets *n_cert and the label of the first non-certificate
 * block (truncated to label_cap). */
static void count_blocks(const char *p, const char *end, int *n_cert, int *n_other, char *label,
                         size_t label_cap)
{
    *n_cert = 0;
    *n_other = 0;
    label[0] = '\0';
    for (const char *q = find(p, end, BEGIN_MARK); q; q = find(q + 1, end, BEGIN_MARK)) {
        size_t cl = strlen(CERT_BEGIN);
        if ((size_t)(end - q) >= cl && memcmp(q, CERT_BEGIN, cl) == 0) {
            (*n_cert)++;
            continue;
        }
        if ((*n_other)++ == 0) {
            const char *l = q + strlen(BEGIN_MARK);
            size_t i = 0;
            while (l + i < end && i + 1 < label_cap && l[i] != '-' && l[i] != '\n' &&
                   (unsigned char)l[i] >= 0x20 && (unsigned char)l[i] < 0x7f) {
                label[i] = l[i];
                i++;
            }
            label[i] = '\0';
        }
    }
}

int x509_cred_from_pem(const char *text, size_t len, char **b64, char hash_hex[static 65],
                       char *err, size_t err_cap)
{
    *b64 = NULL;
    hash_hex[0] = '\0';
    if (len > X509_PEM_MAX) {
        set_err(err, err_cap, "certificate text is larger than %d KiB", X509_PEM_MAX / 1024);
        return -EMSGSIZE;
    }
    const char *end = text + len;
    const char *body = text;
    size_t body_len = len;
    bool pem = find(text, end, BEGIN_MARK) != NULL || find(text, end, "-----END ") != NULL;
    if (pem) {
        int n_cert, n_other;
        char label[40];
        count_blocks(text, end, &n_cert, &n_other, label, sizeof label);
        if (n_cert == 0) {
            if (n_other > 0)
                set_err(err, err_cap, "not a PEM certificate (found a \"%s\" block)", label);
            else
                set_err(err, err_cap, "not a PEM certificate");
            return -EINVAL;
        }
        if (n_cert > 1) {
            set_err(err, err_cap,
                    "contains %d certificates; register only the device's own (leaf) "
                    "certificate", n_cert);
            return -EINVAL;
        }
        if (n_other > 0) {
            /* Most often a private key pasted along: refuse rather than store it anywhere. */
            set_err(err, err_cap,
                    "contains a \"%s\" block besides the certificate; paste only the certificate",
                    label);
            return -EINVAL;
        }
        const char *b = find(text, end, CERT_BEGIN) + strlen(CERT_BEGIN);
        const char *e = find(b, end, CERT_END);
        if (!e) {
            set_err(err, err_cap, "PEM certificate has no \"" CERT_END "\" line");
            return -EINVAL;
        }
        body = b;
        body_len = (size_t)(e - b);
    }
    char *compact = xmalloc(body_len + 1);
    ssize_t n = compact_b64(body, body_len, compact);
    if (n < 0) {
        free(compact);
        set_err(err, err_cap, pem ? "certificate body is not valid Base64"
                                  : "not a PEM certificate");
        return -EINVAL;
    }
    size_t der_len = 0;
    uint8_t *der = decode_b64(compact, (size_t)n, &der_len);
    free(compact);
    if (!der) {
        set_err(err, err_cap, "certificate body is not valid Base64");
        return -EINVAL;
    }
    const unsigned char *dp = der;
    X509 *x = der_len > 0 ? d2i_X509(NULL, &dp, (long)der_len) : NULL;
    if (!x || dp != der + der_len) {
        X509_free(x);
        free(der);
        set_err(err, err_cap, x ? "certificate has trailing data after its DER encoding"
                                : "not a valid X.509 certificate");
        return -EINVAL;
    }
    X509_free(x);
    /* The DER bytes as given (not a re-encoding): they are what the device will send. */
    *b64 = encode_b64(der, der_len);
    free(der);
    sha3_hex(*b64, hash_hex);
    return 0;
}

int x509_cred_hash_der(const uint8_t *der, size_t len, char hash_hex[static 65])
{
    hash_hex[0] = '\0';
    if (!der || len == 0 || len > (size_t)INT32_MAX / 2)
        return -EINVAL;
    char *b64 = encode_b64(der, len);
    sha3_hex(b64, hash_hex);
    free(b64);
    return 0;
}

static int64_t asn1_ms(const ASN1_TIME *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!t || !ASN1_TIME_to_tm(t, &tm))
        return 0;
    return (int64_t)timegm(&tm) * 1000;
}

static void name_str(const X509_NAME *name, char *out, size_t cap)
{
    out[0] = '\0';
    BIO *bio = BIO_new(BIO_s_mem());
    if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0) {
        int n = BIO_read(bio, out, (int)cap - 1);
        out[n > 0 ? n : 0] = '\0';
    }
    BIO_free(bio);
}

int x509_info_from_der(const uint8_t *der, size_t len, x509_info_t *out)
{
    memset(out, 0, sizeof *out);
    if (!der || len == 0 || len > X509_PEM_MAX)
        return -EINVAL;
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    if (!x)
        return -EINVAL;
    name_str(X509_get_subject_name(x), out->subject, sizeof out->subject);
    name_str(X509_get_issuer_name(x), out->issuer, sizeof out->issuer);
    out->not_before_ms = asn1_ms(X509_get0_notBefore(x));
    out->not_after_ms = asn1_ms(X509_get0_notAfter(x));
    uint8_t md[32];
    unsigned int mdlen = 0;
    EVP_Digest(der, len, md, &mdlen, EVP_sha256(), NULL);
    hex(md, 32, out->sha256_hex);
    X509_free(x);
    return 0;
}

int x509_info_from_b64(const char *b64, x509_info_t *out)
{
    memset(out, 0, sizeof *out);
    size_t len = b64 ? strlen(b64) : 0;
    char *compact = xmalloc(len + 1);
    ssize_t n = compact_b64(b64 ? b64 : "", len, compact);
    size_t der_len = 0;
    uint8_t *der = n > 0 ? decode_b64(compact, (size_t)n, &der_len) : NULL;
    free(compact);
    if (!der)
        return -EINVAL;
    int rc = x509_info_from_der(der, der_len, out);
    free(der);
    return rc;
}

int x509_cred_from_der(const uint8_t *der, size_t len, char **b64, char hash_hex[static 65])
{
    *b64 = NULL;
    hash_hex[0] = '\0';
    if (!der || len == 0 || len > X509_PEM_MAX)
        return -EINVAL;
    *b64 = encode_b64(der, len);
    sha3_hex(*b64, hash_hex);
    return 0;
}
