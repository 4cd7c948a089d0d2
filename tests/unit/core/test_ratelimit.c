/* test_ratelimit.c — the token-bucket table: burst then refusal with the wait in whole
 * seconds (RFC 8516 Max-Age), refill at the rate, buckets independent per key, off when the
 * rate is 0, and bounded memory: more keys than buckets reuse the least recently used one
 * (idle ones first in practice; an active one only under a flood, counted). Time is passed
 * in, so nothing here depends on the machine's speed. */
#include "core/ratelimit.h"
#include "core/sockaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static void test_burst_then_wait(void **state)
{
    (void)state;
    ratelimit_t *rl = ratelimit_new(8, 10, 5); /* 10/s, burst 5 */
    int64_t t = 1000;
    for (int i = 0; i < 5; i++)
        assert_int_equal(ratelimit_take(rl, "dev1", 4, t), 0);
    assert_int_equal(ratelimit_take(rl, "dev1", 4, t), 1); /* 100 ms to a token: 1 s */
    assert_int_equal(ratelimit_take(rl, "dev1", 4, t + 99), 1);
    assert_int_equal(ratelimit_take(rl, "dev1", 4, t + 100), 0); /* one token refilled */
    assert_int_equal(ratelimit_take(rl, "dev1", 4, t + 100), 1);
    /* Another key has its own bucket. */
    assert_int_equal(ratelimit_take(rl, "dev2", 4, t + 100), 0);
    /* Refill stops at the burst. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(ratelimit_take(rl, "dev1", 4, t + 100000), 0);
    assert_int_not_equal(ratelimit_take(rl, "dev1", 4, t + 100000), 0);
    /* A clock that steps back refills nothing and does not underflow. */
    assert_int_not_equal(ratelimit_take(rl, "dev1", 4, t), 0);
    ratelimit_free(rl);
}

static void test_slow_rate_max_age(void **state)
{
    (void)state;
    ratelimit_t *rl = ratelimit_new(4, 1, 1); /* 1/s */
    assert_int_equal(ratelimit_take(rl, "k", 1, 0), 0);
    assert_int_equal(ratelimit_take(rl, "k", 1, 0), 1);
    assert_int_equal(ratelimit_take(rl, "k", 1, 1), 1); /* 999 ms -> 1 s, never 0 */
    ratelimit_free(rl);
    /* Below one per second is not expressible: rate is per second. Large rates: Max-Age is
     * still at least 1 (RFC 8516: the client waits at least that long). */
    rl = ratelimit_new(4, 100000, 1);
    assert_int_equal(ratelimit_take(rl, "k", 1, 0), 0);
    assert_int_equal(ratelimit_take(rl, "k", 1, 0), 1);
    assert_int_equal(ratelimit_take(rl, "k", 1, 1), 0);
    ratelimit_free(rl);
}

static void test_off(void **state)
{
    (void)state;
    assert_null(ratelimit_new(16, 0, 100));
    assert_int_equal(ratelimit_take(NULL, "k", 1, 0), 0);
    ratelimit_stats_t st;
    ratelimit_get_stats(NULL, &st);
    assert_int_equal(st.buckets, 0);
    ratelimit_free(NULL);
}

static void test_bounded_lru(void **state)
{
    (void)state;
    ratelimit_t *rl = ratelimit_new(4, 1, 2); /* 4 buckets */
    int64_t t = 0;
    /* "old" spends its burst; then a flood of 1,000 distinct keys (random addresses). */
    assert_int_equal(ratelimit_take(rl, "old", 3, t), 0);
    assert_int_equal(ratelimit_take(rl, "old", 3, t), 0);
    assert_int_not_equal(ratelimit_take(rl, "old", 3, t), 0);
    char k[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof k, "k%d", i);
        assert_int_equal(ratelimit_take(rl, k, strlen(k), t), 0); /* a new key: full bucket */
    }
    ratelimit_stats_t st;
    ratelimit_get_stats(rl, &st);
    assert_int_equal(st.buckets, 4); /* never more than cap */
    /* Each flood key took one token and was evicted before it refilled: active evictions. */
    assert_int_equal(st.evicted_active, 997);
    /* A recently used key survives a few new ones: most recent stays. */
    assert_int_equal(ratelimit_take(rl, "k999", 4, t), 0);
    assert_int_not_equal(ratelimit_take(rl, "k999", 4, t), 0);
    /* Idle buckets (full again) are counted apart. */
    t += 10000;
    ratelimit_take(rl, "x1", 2, t);
    ratelimit_get_stats(rl, &st);
    assert_int_equal(st.evicted_idle, 1);
    ratelimit_free(rl);
}

static void test_long_keys_cut(void **state)
{
    (void)state;
    ratelimit_t *rl = ratelimit_new(4, 1, 1);
    const char *a = "0123456789abcdefXXX", *b = "0123456789abcdefYYY"; /* same first 16 */
    assert_int_equal(ratelimit_take(rl, a, strlen(a), 0), 0);
    assert_int_not_equal(ratelimit_take(rl, b, strlen(b), 0), 0);
    ratelimit_free(rl);
}

/* The per-address key: IPv4 alone (also IPv4-mapped), IPv6 by its /64, never the port. */
static size_t key_of(const char *ip, uint16_t port, uint8_t out[static SOCKADDR_PREFIX_KEY_MAX])
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
    } else {
        assert_int_equal(inet_pton(AF_INET6, ip, &a6->sin6_addr), 1);
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
    }
    return sockaddr_prefix_key(&ss, out);
}

static void test_prefix_key(void **state)
{
    (void)state;
    uint8_t a[SOCKADDR_PREFIX_KEY_MAX], b[SOCKADDR_PREFIX_KEY_MAX];
    assert_int_equal(key_of("10.1.2.3", 1000, a), 5);
    assert_int_equal(key_of("10.1.2.3", 2000, b), 5);
    assert_memory_equal(a, b, 5); /* ports do not matter */
    assert_int_equal(key_of("::ffff:10.1.2.3", 3000, b), 5);
    assert_memory_equal(a, b, 5); /* IPv4-mapped on a "::" socket is the IPv4 address */
    assert_int_equal(key_of("10.1.2.4", 1000, b), 5);
    assert_memory_not_equal(a, b, 5);
    assert_int_equal(key_of("2001:db8:1:2::1", 1, a), 9);
    assert_int_equal(key_of("2001:db8:1:2:ffff::9", 2, b), 9);
    assert_memory_equal(a, b, 9); /* one /64 */
    assert_int_equal(key_of("2001:db8:1:3::1", 1, b), 9);
    assert_memory_not_equal(a, b, 9);
    struct sockaddr_storage un;
    memset(&un, 0, sizeof un);
    un.ss_family = AF_UNIX;
    assert_int_equal(sockaddr_prefix_key(&un, a), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_wait),
        cmocka_unit_test(test_slow_rate_max_age),
        cmocka_unit_test(test_off),
        cmocka_unit_test(test_bounded_lru),
        cmocka_unit_test(test_long_keys_cut),
        cmocka_unit_test(test_prefix_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
