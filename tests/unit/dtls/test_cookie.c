/* test_cookie.c — stateless HelloVerify cookies and the record pre-filter (src/dtls/cookie.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dtls/dtls_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

static struct sockaddr_in v4(const char *ip, uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

#define SA(x) ((const struct sockaddr *)&(x))

static void test_cookie_roundtrip_and_binding(void **state)
{
    dtls_cookie_t c;
    dtls__cookie_init(&c, 0);
    struct sockaddr_in a = v4("127.0.0.1", 4000), b = v4("127.0.0.1", 4001),
                       d = v4("127.0.0.2", 4000);
    uint8_t ck[DTLS_COOKIE_LEN], ck2[DTLS_COOKIE_LEN];
    assert_int_equal(dtls__cookie_make(&c, SA(a), sizeof a, ck), 0);
    assert_int_equal(dtls__cookie_make(&c, SA(a), sizeof a, ck2), 0);
    assert_memory_equal(ck, ck2, sizeof ck); /* deterministic for one secret */
    assert_true(dtls__cookie_check(&c, SA(a), sizeof a, ck, sizeof ck));
    /* Bound to the port and to the address. */
    assert_false(dtls__cookie_check(&c, SA(b), sizeof b, ck, sizeof ck));
    assert_false(dtls__cookie_check(&c, SA(d), sizeof d, ck, sizeof ck));
    /* Wrong length, truncated, empty. */
    assert_false(dtls__cookie_check(&c, SA(a), sizeof a, ck, sizeof ck - 1));
    assert_false(dtls__cookie_check(&c, SA(a), sizeof a, ck, 0));
    /* Unknown address family. */
    struct sockaddr bad = {.sa_family = AF_UNIX};
    assert_int_equal(dtls__cookie_make(&c, &bad, sizeof bad, ck2), -EINVAL);
    dtls__cookie_fini(&c);
}

static void test_cookie_tamper(void **state)
{
    dtls_cookie_t c;
    dtls__cookie_init(&c, 0);
    struct sockaddr_in a = v4("10.1.2.3", 5684);
    uint8_t ck[DTLS_COOKIE_LEN];
    assert_int_equal(dtls__cookie_make(&c, SA(a), sizeof a, ck), 0);
    for (size_t i = 0; i < sizeof ck; i++) {
        for (int bit = 0; bit < 8; bit++) {
            ck[i] ^= (uint8_t)(1u << bit);
            assert_false(dtls__cookie_check(&c, SA(a), sizeof a, ck, sizeof ck));
            ck[i] ^= (uint8_t)(1u << bit);
        }
    }
    assert_true(dtls__cookie_check(&c, SA(a), sizeof a, ck, sizeof ck));
    dtls__cookie_fini(&c);
}

static void test_cookie_rotation(void **state)
{
    dtls_cookie_t c;
    dtls__cookie_init(&c, 1000);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(9)};
    inet_pton(AF_INET6, "::1", &a.sin6_addr);
    uint8_t old[DTLS_COOKIE_LEN], now[DTLS_COOKIE_LEN];
    assert_int_equal(dtls__cookie_make(&c, SA(a), sizeof a, old), 0);
    dtls__cookie_tick(&c, 1000 + DTLS_COOKIE_ROTATE_MS - 1); /* not yet */
    assert_int_equal(dtls__cookie_make(&c, SA(a), sizeof a, now), 0);
    assert_memory_equal(old, now, sizeof old);
    dtls__cookie_tick(&c, 1000 + DTLS_COOKIE_ROTATE_MS); /* rotates */
    assert_int_equal(dtls__cookie_make(&c, SA(a), sizeof a, now), 0);
    assert_memory_not_equal(old, now, sizeof old);
    /* The previous secret is still accepted, the current one too. */
    assert_true(dtls__cookie_check(&c, SA(a), sizeof a, old, sizeof old));
    assert_true(dtls__cookie_check(&c, SA(a), sizeof a, now, sizeof now));
    /* After a second rotation the first cookie is dead. */
    dtls__cookie_rotate(&c, 2 * DTLS_COOKIE_ROTATE_MS);
    assert_false(dtls__cookie_check(&c, SA(a), sizeof a, old, sizeof old));
    assert_true(dtls__cookie_check(&c, SA(a), sizeof a, now, sizeof now));
    dtls__cookie_fini(&c);
}

/* A minimal DTLS 1.2 ClientHello record, as sent on first contact (no cookie). */
static size_t client_hello(uint8_t *b, size_t body_extra)
{
    size_t body = 2 + 32 + 1 + 1 + 2 + 2 + 1 + 1 + body_extra;
    size_t n = 0;
    b[n++] = 22;
    b[n++] = 0xfe;
    b[n++] = 0xfd;
    memset(b + n, 0, 8); /* epoch 0, seq 0 */
    n += 8;
    size_t rec = 12 + body;
    b[n++] = (uint8_t)(rec >> 8);
    b[n++] = (uint8_t)rec;
    b[n++] = 1; /* client_hello */
    b[n++] = 0;
    b[n++] = (uint8_t)(body >> 8);
    b[n++] = (uint8_t)body;
    b[n++] = 0;
    b[n++] = 0; /* message_seq */
    b[n++] = 0;
    b[n++] = 0;
    b[n++] = 0; /* fragment_offset */
    b[n++] = 0;
    b[n++] = (uint8_t)(body >> 8);
    b[n++] = (uint8_t)body;
    memset(b + n, 0, body);
    return n + body;
}

static void test_classify(void **state)
{
    uint8_t b[256];
    size_t n = client_hello(b, 0);
    assert_int_equal(n, 67);
    assert_int_equal(dtls__classify(b, n), DTLS_DG_CLIENT_HELLO);
    /* Too short to be answered without amplification. */
    assert_int_equal(dtls__classify(b, 12), DTLS_DG_DROP);
    /* Record length beyond the datagram. */
    b[12]++;
    assert_int_equal(dtls__classify(b, n), DTLS_DG_DROP);
    b[12]--;
    /* A later fragment is never answered. */
    b[13 + 8] = 1;
    assert_int_equal(dtls__classify(b, n), DTLS_DG_DROP);
    b[13 + 8] = 0;
    /* Not DTLS (TLS version, CoAP). */
    b[1] = 0x03;
    assert_int_equal(dtls__classify(b, n), DTLS_DG_DROP);
    b[1] = 0xfe;
    const uint8_t coap[] = {0x40, 0x01, 0x12, 0x34, 0xb4, 't', 'e', 's', 't', 0, 0, 0, 0, 0};
    assert_int_equal(dtls__classify(coap, sizeof coap), DTLS_DG_DROP);
    /* Epoch 1 handshake (encrypted Finished) and application data: records, not hellos. */
    b[4] = 1;
    assert_int_equal(dtls__classify(b, n), DTLS_DG_RECORD);
    b[4] = 0;
    b[0] = 23;
    assert_int_equal(dtls__classify(b, n), DTLS_DG_RECORD);
    assert_int_equal(dtls__classify(NULL, 0), DTLS_DG_DROP);
}

static void test_verify_policy(void **state)
{
    /* OpenSSL's own "ok" stands. */
    assert_int_equal(dtls__verify_policy(1, 0, 0, false), 1);
    /* Self-signed leaf, unknown issuer, signature failure above the leaf: accepted. */
    assert_int_equal(dtls__verify_policy(0, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, 0, false), 1);
    assert_int_equal(
        dtls__verify_policy(0, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, 0, false), 1);
    assert_int_equal(dtls__verify_policy(0, X509_V_ERR_CERT_SIGNATURE_FAILURE, 1, false), 1);
    /* The leaf's dates fail the handshake unless skipped. */
    assert_int_equal(dtls__verify_policy(0, X509_V_ERR_CERT_HAS_EXPIRED, 0, false), 0);
    assert_int_equal(dtls__verify_policy(0, X509_V_ERR_CERT_NOT_YET_VALID, 0, false), 0);
    assert_int_equal(dtls__verify_policy(0, X509_V_ERR_CERT_HAS_EXPIRED, 0, true), 1);
    /* Only the leaf's dates count. */
    assert_int_equal(dtls__verify_policy(0, X509_V_ERR_CERT_HAS_EXPIRED, 1, false), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cookie_roundtrip_and_binding),
        cmocka_unit_test(test_cookie_tamper),
        cmocka_unit_test(test_cookie_rotation),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_verify_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
