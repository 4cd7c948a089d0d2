/* test_proof.c — the Echo values of the amplification guard (src/udp/proof.c): a value checks
 * for its own address and port only, has a fixed length, survives one rotation of the secret
 * and not two, and is compared whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "udp/proof.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static struct sockaddr_in v4(uint32_t ip, uint16_t port)
{
    struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons(port)};
    s.sin_addr.s_addr = htonl(ip);
    return s;
}

#define SA(s) ((const struct sockaddr *)(const void *)&(s))

static void test_roundtrip_and_binding(void **state)
{
    (void)state;
    udp_proof_t *p = udp_proof_new(0);
    struct sockaddr_in a = v4(0x7f000001, 5683), b = v4(0x7f000001, 5684), c = v4(0x7f000002, 5683);
    uint8_t v[UDP_PROOF_LEN];
    assert_int_equal(udp_proof_make(p, SA(a), sizeof a, 10, v, sizeof v), UDP_PROOF_LEN);
    assert_true(udp_proof_check(p, SA(a), sizeof a, 20, v, sizeof v));
    assert_false(udp_proof_check(p, SA(b), sizeof b, 20, v, sizeof v)); /* other port */
    assert_false(udp_proof_check(p, SA(c), sizeof c, 20, v, sizeof v)); /* other host */
    assert_false(udp_proof_check(p, SA(a), sizeof a, 20, v, sizeof v - 1));
    uint8_t longer[UDP_PROOF_LEN + 1] = {0};
    memcpy(longer, v, sizeof v);
    assert_false(udp_proof_check(p, SA(a), sizeof a, 20, longer, sizeof longer));
    for (size_t i = 0; i < sizeof v; i++) {
        v[i] ^= 1;
        assert_false(udp_proof_check(p, SA(a), sizeof a, 20, v, sizeof v));
        v[i] ^= 1;
    }
    assert_int_equal(udp_proof_make(p, SA(a), sizeof a, 10, v, sizeof v - 1), 0); /* cap */
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons(1)};
    s6.sin6_addr.s6_addr[15] = 1;
    assert_int_equal(udp_proof_make(p, SA(s6), sizeof s6, 10, v, sizeof v), UDP_PROOF_LEN);
    assert_true(udp_proof_check(p, SA(s6), sizeof s6, 10, v, sizeof v));
    struct sockaddr un = {.sa_family = AF_UNIX};
    assert_int_equal(udp_proof_make(p, &un, sizeof un, 10, v, sizeof v), 0);
    assert_false(udp_proof_check(p, &un, sizeof un, 10, v, sizeof v));
    udp_proof_free(p);
}

/* Another proof source (another run, another shard) does not accept our values. */
static void test_secret_is_random(void **state)
{
    (void)state;
    udp_proof_t *p = udp_proof_new(0), *q = udp_proof_new(0);
    struct sockaddr_in a = v4(0x0a000001, 40000);
    uint8_t v[UDP_PROOF_LEN];
    udp_proof_make(p, SA(a), sizeof a, 0, v, sizeof v);
    assert_false(udp_proof_check(q, SA(a), sizeof a, 0, v, sizeof v));
    udp_proof_free(p);
    udp_proof_free(q);
}

/* A value is good through one rotation (5-10 minutes), not after two. */
static void test_rotation(void **state)
{
    (void)state;
    udp_proof_t *p = udp_proof_new(0);
    struct sockaddr_in a = v4(0x7f000001, 5683);
    uint8_t v[UDP_PROOF_LEN];
    udp_proof_make(p, SA(a), sizeof a, 1000, v, sizeof v);
    int64_t t = UDP_PROOF_ROTATE_MS + 5; /* one rotation */
    assert_true(udp_proof_check(p, SA(a), sizeof a, t, v, sizeof v));
    uint8_t w[UDP_PROOF_LEN];
    udp_proof_make(p, SA(a), sizeof a, t, w, sizeof w);
    assert_memory_not_equal(v, w, sizeof v);
    t += UDP_PROOF_ROTATE_MS; /* a second one: the first value's secret is gone */
    assert_false(udp_proof_check(p, SA(a), sizeof a, t, v, sizeof v));
    assert_true(udp_proof_check(p, SA(a), sizeof a, t, w, sizeof w));
    /* After a long silence neither old secret survives. */
    t += 3LL * UDP_PROOF_ROTATE_MS;
    assert_false(udp_proof_check(p, SA(a), sizeof a, t, w, sizeof w));
    udp_proof_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_and_binding),
        cmocka_unit_test(test_secret_is_random),
        cmocka_unit_test(test_rotation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
