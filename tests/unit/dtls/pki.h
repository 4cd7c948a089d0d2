/* pki.h — certificates and DTLS clients made in-process for the dtls unit tests. */
#ifndef COAPHUB_TESTS_DTLS_PKI_H
#define COAPHUB_TESTS_DTLS_PKI_H

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdint.h>

/* A key (EC P-256) and a certificate with CN cn valid from now+from_days to now+to_days,
 * self-signed, or signed by issuer/issuer_key when those are given. */
typedef struct test_cert {
    EVP_PKEY *key;
    X509 *cert;
} test_cert_t;
void test_cert_make(test_cert_t *out, const char *cn, int from_days, int to_days,
                    const test_cert_t *issuer);
void test_cert_free(test_cert_t *c);
/* Is der (len bytes) the certificate of c? */
bool test_cert_is(const test_cert_t *c, const uint8_t *der, size_t len);

/* A DTLS 1.2 client on a connected, non-blocking UDP socket to 127.0.0.1:port. cert may be
 * NULL (one-way DTLS); extra (may be NULL) is appended to the chain it sends. */
typedef struct test_client {
    SSL_CTX *ctx;
    SSL *ssl;
    int fd;
} test_client_t;
void test_client_open(test_client_t *c, int port, const test_cert_t *cert, const test_cert_t *extra,
                      const char *ciphers);
void test_client_close(test_client_t *c);
/* Sends raw bytes from the client's socket (bypassing its SSL). */
void test_client_send_raw(test_client_t *c, const uint8_t *p, size_t len);
/* Waits up to ms for a datagram on the client's socket; returns its size or -1 (kept queued). */
int test_client_wait(test_client_t *c, int ms);

#endif
