/* test_jwt.c — HS512 JWT: round trip, expiry, tampering, "alg":"none", other algorithms,
 * other keys; and bcrypt password hashing. */
#include "http/http_int.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const uint8_t key[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
#define KEYLEN (sizeof key - 1)
#define NOW 1700000000

static char *sign(bool refresh, int64_t exp)
{
    http_claims_t c = {.iat = NOW, .exp = exp, .refresh = refresh};
    strcpy(c.sub, "tenant@thingsboard.org");
    strcpy(c.user_id, "784f394c-42b6-435a-983c-b7beff2784f9");
    return http__jwt_sign(key, KEYLEN, "coaphub", "11111111-2222-4333-8444-555555555555", &c);
}

static void test_round_trip(void **state)
{
    (void)state;
    char *t = sign(false, NOW + 9000);
    assert_non_null(t);
    http_claims_t c;
    assert_int_equal(http__jwt_verify(key, KEYLEN, t, NOW + 10, &c), 0);
    assert_string_equal(c.sub, "tenant@thingsboard.org");
    assert_string_equal(c.user_id, "784f394c-42b6-435a-983c-b7beff2784f9");
    assert_true(c.tenant_admin);
    assert_false(c.refresh);
    assert_int_equal(c.exp, NOW + 9000);
    free(t);
    t = sign(true, NOW + 100);
    assert_int_equal(http__jwt_verify(key, KEYLEN, t, NOW, &c), 0);
    assert_true(c.refresh);
    assert_false(c.tenant_admin);
    free(t);
}

static void test_expired(void **state)
{
    (void)state;
    char *t = sign(false, NOW + 60);
    http_claims_t c;
    assert_int_equal(http__jwt_verify(key, KEYLEN, t, NOW + 60, &c), -EKEYEXPIRED);
    assert_int_equal(http__jwt_verify(key, KEYLEN, t, NOW + 59, &c), 0);
    free(t);
}

static void test_tampered(void **state)
{
    (void)state;
    char *t = sign(false, NOW + 60);
    http_claims_t c;
    /* Flip one character in each of the three parts. */
    char *dot1 = strchr(t, '.'), *dot2 = strchr(dot1 + 1, '.');
    char *spots[] = {t + 3, dot1 + 5, dot2 + 7};
    for (int i = 0; i < 3; i++) {
        char old = *spots[i];
        *spots[i] = old == 'A' ? 'B' : 'A';
        assert_int_equal(http__jwt_verify(key, KEYLEN, t, NOW, &c), -EACCES);
        *spots[i] = old;
    }
    assert_int_equal(http__jwt_verify(key, KEYLEN, t, NOW, &c), 0);
    /* Truncated signature, missing parts, extra part, empty, NULL. */
    char *cut = strndup(t, strlen(t) - 2);
    assert_int_equal(http__jwt_verify(key, KEYLEN, cut, NOW, &c), -EACCES);
    free(cut);
    *dot2 = '\0';
    assert_int_equal(http__jwt_verify(key, KEYLEN, t, NOW, &c), -EACCES);
    assert_int_equal(http__jwt_verify(key, KEYLEN, "", NOW, &c), -EACCES);
    assert_int_equal(http__jwt_verify(key, KEYLEN, NULL, NOW, &c), -EACCES);
    assert_int_equal(http__jwt_verify(key, KEYLEN, "a.b.c.d", NOW, &c), -EACCES);
    free(t);
}

static void test_other_key(void **state)
{
    (void)state;
    char *t = sign(false, NOW + 60);
    http_claims_t c;
    static const uint8_t other[] = "another key";
    assert_int_equal(http__jwt_verify(other, sizeof other - 1, t, NOW, &c), -EACCES);
    free(t);
}

/* Builds header.payload.signature with an arbitrary header and an HMAC of the given digest. */
static char *forge(const char *header, const EVP_MD *md)
{
    const char *payload = "{\"sub\":\"x\",\"scopes\":[\"TENANT_ADMIN\"],\"exp\":2000000000}";
    char *h = http__b64url((const uint8_t *)header, strlen(header));
    char *p = http__b64url((const uint8_t *)payload, strlen(payload));
    char *signing = malloc(strlen(h) + strlen(p) + 2);
    sprintf(signing, "%s.%s", h, p);
    char *s = strdup("");
    if (md) {
        unsigned char sig[64];
        unsigned int n = 0;
        HMAC(md, key, (int)KEYLEN, (const unsigned char *)signing, strlen(signing), sig, &n);
        free(s);
        s = http__b64url(sig, n);
    }
    char *out = malloc(strlen(signing) + strlen(s) + 2);
    sprintf(out, "%s.%s", signing, s);
    free(h);
    free(p);
    free(signing);
    free(s);
    return out;
}

static void test_alg_confusion(void **state)
{
    (void)state;
    http_claims_t c;
    char *t = forge("{\"alg\":\"none\"}", NULL);
    assert_int_equal(http__jwt_verify(key, KEYLEN, t, NOW, &c), -EACCES);
    free(t);
    t = forge("{\"alg\":\"HS256\"}", EVP_sha256());
    assert_int_equal(http__jwt_verify(key, KEYLEN, t, NOW, &c), -EACCES);
    free(t);
    /* Control: the same forgery with HS512 and the right key is accepted. */
    t = forge("{\"alg\":\"HS512\"}", EVP_sha512());
    assert_int_equal(http__jwt_verify(key, KEYLEN, t, NOW, &c), 0);
    assert_string_equal(c.sub, "x");
    free(t);
    /* Valid signature but claims missing "sub": rejected. */
    t = forge("{\"alg\":\"HS512\",\"alg\":\"none\"}", EVP_sha512());
    assert_int_equal(http__jwt_verify(key, KEYLEN, t, NOW, &c), -EACCES);
    free(t);
}

static void test_b64url(void **state)
{
    (void)state;
    char *s = http__b64url((const uint8_t *)"\xfb\xff", 2);
    assert_string_equal(s, "-_8");
    free(s);
    s = http__b64url((const uint8_t *)"abc", 3);
    assert_string_equal(s, "YWJj");
    free(s);
}

static void test_bcrypt(void **state)
{
    (void)state;
    char *h = http__password_hash("s3cret!");
    assert_non_null(h);
    assert_memory_equal(h, "$2b$10$", 7);
    assert_int_equal(strlen(h), 60);
    assert_true(http__password_verify("s3cret!", h));
    assert_false(http__password_verify("s3cret", h));
    assert_false(http__password_verify("", h));
    assert_false(http__password_verify("s3cret!", "plain"));
    assert_false(http__password_verify(NULL, h));
    free(h);
}

static void test_random_alnum(void **state)
{
    (void)state;
    char a[21], b[21];
    device_random_alnum(a, 20);
    device_random_alnum(b, 20);
    assert_int_equal(strlen(a), 20);
    assert_string_not_equal(a, b);
    for (int i = 0; i < 20; i++)
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                               a[i]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),   cmocka_unit_test(test_expired),
        cmocka_unit_test(test_tampered),     cmocka_unit_test(test_other_key),
        cmocka_unit_test(test_alg_confusion), cmocka_unit_test(test_b64url),
        cmocka_unit_test(test_bcrypt),       cmocka_unit_test(test_random_alnum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
