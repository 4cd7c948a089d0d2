/* x509.h — X.509 device credentials: the canonical form ThingsBoard matches on (§6.1, §6.2).
 *
 * A certificate credential is stored as the single-line standard Base64 of its DER encoding;
 * its credentialsId is the lower-case hex SHA3-256 of those ASCII bytes. The REST side turns
 * whatever the operator pasted into that form once, at save time; the DTLS side hashes the
 * leaf it received the same way, so both ends meet in the registry. Any thread.
 */
#ifndef COAPHUB_DEVICE_X509_H
#define COAPHUB_DEVICE_X509_H

#include <stddef.h>
#include <stdint.h>

/* Largest input accepted by x509_cred_from_pem (a leaf certificate is a few KiB). */
#define X509_PEM_MAX (64 * 1024)

/* Parses one certificate given as PEM (surrounding whitespace, \r\n and stray spaces inside
 * the body tolerated) or as a bare Base64 body without markers. On success returns 0, sets
 * *b64 to the canonical single-line Base64 of the DER (caller frees) and hash_hex to its
 * credentialsId. On failure returns -EINVAL (or -EMSGSIZE when too large), leaves *b64 NULL
 * and writes a human-readable reason into err (if err_cap > 0), e.g. "not a PEM certificate"
 * or "contains 2 certificates; register only the device's own (leaf) certificate". */
int x509_cred_from_pem(const char *text, size_t len, char **b64, char hash_hex[static 65],
                       char *err, size_t err_cap);

/* credentialsId of a DER certificate as received in a handshake: SHA3-256 hex over the
 * single-line Base64 of der. Returns 0 or -EINVAL (empty input). */
int x509_cred_hash_der(const uint8_t *der, size_t len, char hash_hex[static 65]);

/* Largest number of certificates x509_chain_from_pem accepts (a CA and its intermediates). */
#define X509_CHAIN_MAX 8

/* Parses a CA certificate chain as pasted into a device profile (ThingsBoard's
 * X509_CERTIFICATE_CHAIN provisionDeviceSecret): one or more PEM certificates, the first being
 * the one devices' certificates are checked against, or one bare Base64 body. Each certificate
 * must parse completely (x509_cred_from_pem's rules); any other PEM block (a private key) is
 * refused. On success returns 0, sets *pem to the chain re-written as canonical PEM (64-column
 * lines, "\n" line ends; caller frees), *n_certs to the count and first_hash_hex to the first
 * certificate's credential hash (x509_cred_hash_der of its DER), which ThingsBoard stores as the
 * profile's provisionDeviceKey. On failure returns -EINVAL (or -EMSGSIZE), *pem NULL, and
 * writes the reason into err. Any thread. */
int x509_chain_from_pem(const char *text, size_t len, char **pem, int *n_certs,
                        char first_hash_hex[static 65], char *err, size_t err_cap);

/* Display data of a certificate. */
typedef struct x509_info {
    char subject[256];     /* one-line RFC 2253 form, truncated if longer */
    char issuer[256];
    int64_t not_before_ms; /* ms since the epoch */
    int64_t not_after_ms;
    char sha256_hex[65];   /* SHA-256 fingerprint of the DER, lower-case hex */
} x509_info_t;

/* Fills out from a DER certificate. Returns 0 or -EINVAL if it does not parse. */
int x509_info_from_der(const uint8_t *der, size_t len, x509_info_t *out);
/* Same from the canonical Base64 form (as stored in credentials). */
int x509_info_from_b64(const char *b64, x509_info_t *out);

/* The credential form of a DER certificate as received in a handshake: *b64 = its
 * single-line Base64 (caller frees), hash_hex = its credentialsId. 0 or -EINVAL (empty or
 * oversized input; the DER itself is not parsed). */
int x509_cred_from_der(const uint8_t *der, size_t len, char **b64, char hash_hex[static 65]);

#endif
