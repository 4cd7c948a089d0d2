/* pki.c — see pki.h. */
#include "pki.h"


#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

void test_cert_make(test_cert_t *out, const char *cn, int from_days, int to_days,
                    const test_cert_t *issuer)
{
    out->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(out->key);
    X509 *x = X509_new();
    assert_non_null(x);
    uint8_t serial[8];
    RAND_bytes(serial, sizeof serial);
    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(serial[0] & 0x7f) << 8 | serial[1]);
    X509_set_version(x, X509_VERSION_3);
    X509_time_adj_ex(X509_getm_notBefore(x), from_days, 0, NULL);
    X509_time_adj_ex(X509_getm_notAfter(x), to_days, 0, NULL);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer->cert) : name);
    X509_set_pubkey(x, out->key);
    assert_true(X509_sign(x, issuer ? issuer->key : out->key, EVP_sha256()) > 0);
    out->cert = x;
}

void test_cert_free(test_cert_t *c)
{
    X509_free(c->cert);
    EVP_PKEY_free(c->key);
    c->cert = NULL;
    c->key = NULL;
}

bool test_cert_is(const test_cert_t *c, const uint8_t *der, size_t len)
{
    unsigned char *mine = NULL;
    int n = i2d_X509(c->cert, &mine);
    assert_true(n > 0);
    bool same = (size_t)n == len && memcmp(mine, der, len) == 0;
    OPENSSL_free(mine);
    return same;
}

void test_client_open(test_client_t *c, int port, const test_cert_t *cert, const test_cert_t *extra,
                      const char *ciphers)
{
    c->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    assert_true(c->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
    c->ctx = SSL_CTX_new(DTLS_client_method());
    assert_non_null(c->ctx);
    SSL_CTX_set_min_proto_version(c->ctx, DTLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(c->ctx, DTLS1_2_VERSION);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
    if (ciphers)
        assert_int_equal(SSL_CTX_set_cipher_list(c->ctx, ciphers), 1);
    if (cert) {
        assert_int_equal(SSL_CTX_use_certificate(c->ctx, cert->cert), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey(c->ctx, cert->key), 1);
    }
    if (extra)
        assert_int_equal(SSL_CTX_add1_chain_cert(c->ctx, extra->cert), 1);
    c->ssl = SSL_new(c->ctx);
    BIO *b = BIO_new_dgram(c->fd, BIO_NOCLOSE);
    BIO_ctrl(b, BIO_CTRL_DGRAM_SET_CONNECTED, 0, &a);
    SSL_set_bio(c->ssl, b, b);
    SSL_set_connect_state(c->ssl);
}

void test_client_close(test_client_t *c)
{
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
    close(c->fd);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

void test_client_send_raw(test_client_t *c, const uint8_t *p, size_t len)
{
    assert_int_equal(send(c->fd, p, len, 0), (ssize_t)len);
}

int test_client_wait(test_client_t *c, int ms)
{
    struct pollfd pf = {.fd = c->fd, .events = POLLIN};
    if (poll(&pf, 1, ms) != 1)
        return -1;
    uint8_t buf[4096];
    return (int)recv(c->fd, buf, sizeof buf, MSG_PEEK);
}
