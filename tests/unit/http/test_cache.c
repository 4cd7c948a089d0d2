/* test_cache.c — the verified-JWT cache (same answers as the full check, expiry honoured,
 * tampered tokens refused) and the device uuid -> id cache (a delete racing a store read
 * never leaves a stale entry). */
#include "http/http_int.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const uint8_t key[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static const uint8_t other_key[] = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
#define KEYLEN (sizeof key - 1)
#define NOW 1700000000

static char *sign_with(const uint8_t *k, bool refresh, int64_t exp, const char *sub)
{
    http_claims_t c = {.iat = NOW, .exp = exp, .refresh = refresh};
    snprintf(c.sub, sizeof c.sub, "%s", sub);
    strcpy(c.user_id, "784f394c-42b6-435a-983c-b7beff2784f9");
    return http__jwt_sign(k, KEYLEN, "coaphub", "11111111-2222-4333-8444-555555555555", &c);
}

static void test_jwt_hit_same_claims(void **state)
{
    (void)state;
    http_jwt_cache_t *c = http__jwt_cache_new(key, KEYLEN);
    char *t = sign_with(key, false, NOW + 100, "a@x");
    http_claims_t full, first, second;
    assert_int_equal(http__jwt_verify(key, KEYLEN, t, NOW, &full), 0);
    assert_int_equal(http__jwt_cache_verify(c, t, NOW, &first), 0);
    assert_int_equal(http__jwt_cache_verify(c, t, NOW + 1, &second), 0);
    assert_memory_equal(&full, &first, sizeof full);
    assert_memory_equal(&full, &second, sizeof full);
    assert_string_equal(second.sub, "a@x");
    assert_true(second.tenant_admin);
    uint64_t hits, misses;
    http__jwt_cache_stats(c, &hits, &misses);
    assert_int_equal(hits, 1);
    assert_int_equal(misses, 1);
    free(t);
    http__jwt_cache_free(c);
}

static void test_jwt_expiry_and_refusals(void **state)
{
    (void)state;
    http_jwt_cache_t *c = http__jwt_cache_new(key, KEYLEN);
    char *t = sign_with(key, false, NOW + 100, "a@x");
    http_claims_t cl;
    assert_int_equal(http__jwt_cache_verify(c, t, NOW, &cl), 0);
    /* Cached, but expired now: the full check answers, and says expired. */
    assert_int_equal(http__jwt_cache_verify(c, t, NOW + 100, &cl), -EKEYEXPIRED);
    assert_int_equal(http__jwt_cache_verify(c, t, NOW + 5000, &cl), -EKEYEXPIRED);
    /* The same token with its last signature character changed is not a hit. */
    char *bad = strdup(t);
    size_t n = strlen(bad);
    bad[n - 2] = bad[n - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(http__jwt_cache_verify(c, bad, NOW, &cl), -EACCES);
    /* A prefix of a cached token, another key's token, no token: refused. */
    bad[n - 2] = '\0';
    assert_int_equal(http__jwt_cache_verify(c, bad, NOW, &cl), -EACCES);
    char *foreign = sign_with(other_key, false, NOW + 100, "a@x");
    assert_int_equal(http__jwt_cache_verify(c, foreign, NOW, &cl), -EACCES);
    assert_int_equal(http__jwt_cache_verify(c, foreign, NOW, &cl), -EACCES);
    assert_int_equal(http__jwt_cache_verify(c, NULL, NOW, &cl), -EACCES);
    assert_int_equal(http__jwt_cache_verify(c, "", NOW, &cl), -EACCES);
    /* A refresh token keeps its flag through the cache (the gate refuses it). */
    char *r = sign_with(key, true, NOW + 100, "a@x");
    assert_int_equal(http__jwt_cache_verify(c, r, NOW, &cl), 0);
    assert_int_equal(http__jwt_cache_verify(c, r, NOW, &cl), 0);
    assert_true(cl.refresh);
    free(r);
    free(foreign);
    free(bad);
    free(t);
    http__jwt_cache_free(c);
}

static void test_jwt_many_tokens_bounded(void **state)
{
    (void)state;
    http_jwt_cache_t *c = http__jwt_cache_new(key, KEYLEN);
    /* More tokens than slots: every one still verifies with its own claims. */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 3 * HTTP_JWT_CACHE_SLOTS; i++) {
            char sub[32];
            snprintf(sub, sizeof sub, "u%d@x", i);
            char *t = sign_with(key, false, NOW + 100, sub);
            http_claims_t cl;
            assert_int_equal(http__jwt_cache_verify(c, t, NOW, &cl), 0);
            assert_string_equal(cl.sub, sub);
            free(t);
        }
    }
    http__jwt_cache_free(c);
    http__jwt_cache_free(NULL);
}

#define U1 "0d7c7a9e-1111-4a2b-8c3d-000000000001"
#define U2 "0d7c7a9e-1111-4a2b-8c3d-000000000002"

static void test_dev_cache_get_put_forget(void **state)
{
    (void)state;
    http_dev_cache_t *c = http__dev_cache_new();
    int64_t id = 0;
    assert_false(http__dev_cache_get(c, U1, &id));
    http__dev_cache_put(c, U1, 7, http__dev_cache_gen(c));
    http__dev_cache_put(c, U2, 8, http__dev_cache_gen(c));
    assert_true(http__dev_cache_get(c, U1, &id));
    assert_int_equal(id, 7);
    assert_true(http__dev_cache_get(c, U2, &id));
    assert_int_equal(id, 8);
    http__dev_cache_forget(c, U1);
    assert_false(http__dev_cache_get(c, U1, &id));
    assert_true(http__dev_cache_get(c, U2, &id));
    /* Not a uuid, id 0: ignored. */
    http__dev_cache_put(c, "short", 9, http__dev_cache_gen(c));
    assert_false(http__dev_cache_get(c, "short", &id));
    assert_false(http__dev_cache_get(c, NULL, &id));
    http__dev_cache_put(c, U1, 0, http__dev_cache_gen(c));
    assert_false(http__dev_cache_get(c, U1, &id));
    http__dev_cache_free(c);
    http__dev_cache_free(NULL);
}

static void test_dev_cache_delete_race(void **state)
{
    (void)state;
    http_dev_cache_t *c = http__dev_cache_new();
    /* A reader takes the generation, reads U1 from the store; meanwhile U1 is deleted. */
    uint64_t g = http__dev_cache_gen(c);
    http__dev_cache_forget(c, U1);
    http__dev_cache_put(c, U1, 7, g);
    int64_t id = 0;
    assert_false(http__dev_cache_get(c, U1, &id));
    /* A read that starts after the delete is cached. */
    http__dev_cache_put(c, U2, 8, http__dev_cache_gen(c));
    assert_true(http__dev_cache_get(c, U2, &id));
    http__dev_cache_free(c);
}

static void test_dev_cache_many(void **state)
{
    (void)state;
    http_dev_cache_t *c = http__dev_cache_new();
    /* More devices than slots: a hit always gives the right id (collisions just miss). */
    int n = 2 * HTTP_DEV_CACHE_SLOTS, hits = 0;
    char u[STORE_UUID_LEN + 1];
    for (int i = 0; i < n; i++) {
        snprintf(u, sizeof u, "0d7c7a9e-1111-4a2b-8c3d-%012d", i);
        http__dev_cache_put(c, u, i + 1, http__dev_cache_gen(c));
    }
    for (int i = 0; i < n; i++) {
        snprintf(u, sizeof u, "0d7c7a9e-1111-4a2b-8c3d-%012d", i);
        int64_t id;
        if (http__dev_cache_get(c, u, &id)) {
            assert_int_equal(id, i + 1);
            hits++;
        }
    }
    assert_true(hits > 0 && hits <= HTTP_DEV_CACHE_SLOTS);
    http__dev_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwt_hit_same_claims),
        cmocka_unit_test(test_jwt_expiry_and_refusals),
        cmocka_unit_test(test_jwt_many_tokens_bounded),
        cmocka_unit_test(test_dev_cache_get_put_forget),
        cmocka_unit_test(test_dev_cache_delete_race),
        cmocka_unit_test(test_dev_cache_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
