/* test_registry.c — the credential cache: lookups, replacement, removal, growth. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "device/registry.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void test_token_and_cert_lookup(void **state)
{
    registry_t *r = registry_new();
    registry_set(r, 7, CRED_ACCESS_TOKEN, "A1_TEST_TOKEN");
    registry_set(r, 8, CRED_X509, "284161a39bc460af3d9af227cc87a46fc8759356d5640786f5e18e81da4a140f");
    assert_int_equal(registry_find_token(r, (const uint8_t *)"A1_TEST_TOKEN", 13), 7);
    assert_int_equal(registry_find_token(r, (const uint8_t *)"A1_TEST_TOKE", 12), 0);
    assert_int_equal(registry_find_token(r, (const uint8_t *)"", 0), 0);
    assert_int_equal(
        registry_find_cert(r, "284161a39bc460af3d9af227cc87a46fc8759356d5640786f5e18e81da4a140f"), 8);
    /* A token never matches a certificate id and the other way round. */
    assert_int_equal(registry_find_cert(r, "A1_TEST_TOKEN"), 0);
    registry_free(r);
}

/* PSK identity -> device and key; the identity space is separate from tokens; a bad key is
 * refused and leaves the device without credentials; replacing moves the identity. */
static void test_psk(void **state)
{
    registry_t *r = registry_new();
    uint8_t key[REGISTRY_PSK_MAX];
    size_t n = 0;
    assert_int_equal(registry_set_cred(r, 3, CRED_PSK, "sensor-1", "0A0b10ff"), 0);
    assert_int_equal(registry_find_psk(r, "sensor-1", 8, key, &n), 3);
    assert_int_equal(n, 4);
    assert_memory_equal(key, "\x0a\x0b\x10\xff", 4);
    assert_int_equal(registry_find_psk(r, "sensor-", 7, key, &n), 0);
    assert_int_equal(registry_find_psk(r, "", 0, key, &n), 0);
    assert_int_equal(registry_find_token(r, (const uint8_t *)"sensor-1", 8), 0);
    /* Odd length, not hex, too long: refused, and the old PSK is gone too. */
    assert_int_equal(registry_set_cred(r, 3, CRED_PSK, "sensor-1", "abc"), -EINVAL);
    assert_int_equal(registry_find_psk(r, "sensor-1", 8, key, &n), 0);
    assert_int_equal(registry_set_cred(r, 3, CRED_PSK, "sensor-1", "zz"), -EINVAL);
    char longkey[2 * REGISTRY_PSK_MAX + 3];
    memset(longkey, 'a', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    assert_int_equal(registry_set_cred(r, 3, CRED_PSK, "sensor-1", longkey), -EINVAL);
    longkey[2 * REGISTRY_PSK_MAX] = '\0';
    assert_int_equal(registry_set_cred(r, 3, CRED_PSK, "sensor-1", longkey), 0);
    assert_int_equal(registry_find_psk(r, "sensor-1", 8, key, &n), 3);
    assert_int_equal(n, REGISTRY_PSK_MAX);
    /* The device switches to a token: the identity no longer names it. */
    registry_set(r, 3, CRED_ACCESS_TOKEN, "tok3");
    assert_int_equal(registry_find_psk(r, "sensor-1", 8, key, &n), 0);
    assert_int_equal(registry_find_token(r, (const uint8_t *)"tok3", 4), 3);
    registry_free(r);
}

static void test_replace_and_remove(void **state)
{
    registry_t *r = registry_new();
    assert_int_equal(registry_changes(r), 0);
    registry_set(r, 1, CRED_ACCESS_TOKEN, "old");
    registry_set(r, 1, CRED_ACCESS_TOKEN, "new");
    assert_int_equal(registry_changes(r), 2); /* every set counts (hub.h cred_seq) */
    assert_int_equal(registry_find_token(r, (const uint8_t *)"old", 3), 0);
    assert_int_equal(registry_find_token(r, (const uint8_t *)"new", 3), 1);
    /* Switching a device from a token to a certificate drops the token. */
    registry_set(r, 1, CRED_X509, "abcd");
    assert_int_equal(registry_find_token(r, (const uint8_t *)"new", 3), 0);
    assert_int_equal(registry_find_cert(r, "abcd"), 1);
    /* The same id moved to another device belongs to that device only. */
    registry_set(r, 2, CRED_X509, "abcd");
    assert_int_equal(registry_find_cert(r, "abcd"), 2);
    registry_remove_device(r, 1);
    assert_int_equal(registry_find_cert(r, "abcd"), 2);
    registry_remove_device(r, 2);
    assert_int_equal(registry_find_cert(r, "abcd"), 0);
    uint64_t before = registry_changes(r);
    registry_remove_device(r, 99); /* unknown: nothing happens but the count */
    assert_int_equal(registry_changes(r), before + 1);
    registry_free(r);
}

static void test_many_devices(void **state)
{
    registry_t *r = registry_new();
    char tok[32];
    for (int i = 1; i <= 5000; i++) {
        snprintf(tok, sizeof tok, "tok-%d", i);
        registry_set(r, i, CRED_ACCESS_TOKEN, tok);
    }
    for (int i = 1; i <= 5000; i += 7) {
        snprintf(tok, sizeof tok, "tok-%d", i);
        assert_int_equal(registry_find_token(r, (const uint8_t *)tok, strlen(tok)), i);
    }
    for (int i = 1; i <= 5000; i += 2)
        registry_remove_device(r, i);
    assert_int_equal(registry_find_token(r, (const uint8_t *)"tok-1", 5), 0);
    assert_int_equal(registry_find_token(r, (const uint8_t *)"tok-2", 5), 2);
    registry_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_and_cert_lookup),
        cmocka_unit_test(test_replace_and_remove),
        cmocka_unit_test(test_psk),
        cmocka_unit_test(test_many_devices),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
