/* test_x509.c — the X.509 credential rule of spec §6.1/§6.2: Base64(DER) on one line,
 * credentialsId = SHA3-256 hex of those ASCII bytes; tolerant PEM input, clear rejections. */
#include "device/x509.h"
#include "testcert.h"

#include <openssl/evp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Independent computation of the rule: Base64 via OpenSSL BIO-free block encoding, then
 * SHA3-256 through the EVP digest API. */
static void expected(const uint8_t *der, size_t len, char **b64, char hash[65])
{
    *b64 = malloc(4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)*b64, der, (int)len);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char md[32];
    unsigned int n = 0;
    EVP_DigestInit_ex(ctx, EVP_sha3_256(), NULL);
    EVP_DigestUpdate(ctx, *b64, strlen(*b64));
    EVP_DigestFinal_ex(ctx, md, &n);
    EVP_MD_CTX_free(ctx);
    for (unsigned i = 0; i < 32; i++)
        sprintf(hash + 2 * i, "%02x", md[i]);
}

typedef struct fixture {
    char *pem;
    uint8_t *der;
    size_t der_len;
    char *b64;
    char hash[65];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    f->pem = testcert_new("device-1", &f->der, &f->der_len);
    expected(f->der, f->der_len, &f->b64, f->hash);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    free(f->pem);
    free(f->der);
    free(f->b64);
    free(f);
    return 0;
}

static void check_ok(fixture_t *f, const char *text)
{
    char *b64 = NULL, hash[65], err[256] = "";
    int rc = x509_cred_from_pem(text, strlen(text), &b64, hash, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_string_equal(b64, f->b64);
    assert_null(strchr(b64, '\n'));
    assert_string_equal(hash, f->hash);
    free(b64);
}

static char *check_fail(const char *text, size_t len)
{
    char *b64 = (char *)1, hash[65], err[256] = "";
    int rc = x509_cred_from_pem(text, len, &b64, hash, err, sizeof err);
    assert_true(rc < 0);
    assert_null(b64);
    assert_true(strlen(err) > 0);
    return strdup(err);
}

static void test_plain_pem(void **state)
{
    fixture_t *f = *state;
    check_ok(f, f->pem);
}

static void test_hash_der_matches(void **state)
{
    fixture_t *f = *state;
    char hash[65];
    assert_int_equal(x509_cred_hash_der(f->der, f->der_len, hash), 0);
    assert_string_equal(hash, f->hash);
    assert_int_equal(strlen(hash), 64);
    assert_true(x509_cred_hash_der(f->der, 0, hash) < 0);
}

/* Replaces every "\n" with "\r\n" and indents each line, like a pasted Windows file. */
static void test_crlf_and_spaces(void **state)
{
    fixture_t *f = *state;
    size_t n = strlen(f->pem);
    char *s = calloc(1, 4 * n + 16), *o = s;
    o += sprintf(o, "  \r\n\t ");
    for (size_t i = 0; i < n; i++) {
        if (f->pem[i] == '\n') {
            o += sprintf(o, " \r\n  ");
        } else {
            *o++ = f->pem[i];
        }
    }
    strcpy(o, "\r\n\r\n   ");
    check_ok(f, s);
    free(s);
}

/* TB's own Swagger example: spaces right after BEGIN and before END markers, one line. */
static void test_single_line_with_spaces(void **state)
{
    fixture_t *f = *state;
    char *s = malloc(strlen(f->b64) + 128);
    sprintf(s, "-----BEGIN CERTIFICATE----- %s -----END CERTIFICATE-----", f->b64);
    check_ok(f, s);
    free(s);
}

static void test_bare_base64(void **state)
{
    fixture_t *f = *state;
    check_ok(f, f->b64);
    /* Bare body with its PEM line breaks. */
    const char *b = strstr(f->pem, "-----\n") + 6;
    const char *e = strstr(f->pem, "-----END");
    char *s = strndup(b, (size_t)(e - b));
    check_ok(f, s);
    free(s);
}

static void test_garbage(void **state)
{
    (void)state;
    char *e = check_fail("hello world", 11);
    assert_string_equal(e, "not a PEM certificate");
    free(e);
    e = check_fail("", 0);
    free(e);
    e = check_fail("QUJD", 4); /* valid Base64, not DER */
    assert_string_equal(e, "not a valid X.509 certificate");
    free(e);
    e = check_fail("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", 58);
    assert_string_equal(e, "certificate body is not valid Base64");
    free(e);
    e = check_fail("-----BEGIN PRIVATE KEY-----\nQUJD\n-----END PRIVATE KEY-----\n", 58);
    assert_non_null(strstr(e, "not a PEM certificate"));
    assert_non_null(strstr(e, "PRIVATE KEY"));
    free(e);
    e = check_fail("-----BEGIN CERTIFICATE-----\nQUJD\n", 33);
    assert_non_null(strstr(e, "END CERTIFICATE"));
    free(e);
    /* Embedded NUL and binary noise. */
    const char bin[] = {'-', '-', 0, (char)0xff, 'A', '=', '='};
    e = check_fail(bin, sizeof bin);
    free(e);
}

static void test_truncated_der(void **state)
{
    fixture_t *f = *state;
    char *b64 = strdup(f->b64);
    b64[strlen(b64) / 2 / 4 * 4] = '\0'; /* keep a multiple of 4 chars */
    char *e = check_fail(b64, strlen(b64));
    assert_string_equal(e, "not a valid X.509 certificate");
    free(e);
    free(b64);
}

static void test_two_certificates(void **state)
{
    fixture_t *f = *state;
    char *other = testcert_new("ca", NULL, NULL);
    char *s = malloc(strlen(f->pem) + strlen(other) + 1);
    strcpy(s, f->pem);
    strcat(s, other);
    char *e = check_fail(s, strlen(s));
    assert_string_equal(e, "contains 2 certificates; register only the device's own (leaf) "
                           "certificate");
    free(e);
    free(s);
    free(other);
}

static void test_cert_plus_key(void **state)
{
    fixture_t *f = *state;
    char *s = malloc(strlen(f->pem) + 100);
    sprintf(s, "%s-----BEGIN EC PRIVATE KEY-----\nQUJD\n-----END EC PRIVATE KEY-----\n", f->pem);
    char *e = check_fail(s, strlen(s));
    assert_non_null(strstr(e, "EC PRIVATE KEY"));
    free(e);
    free(s);
}

static void test_too_large(void **state)
{
    (void)state;
    size_t n = X509_PEM_MAX + 1;
    char *s = malloc(n);
    memset(s, 'A', n);
    char *b64 = NULL, hash[65], err[128];
    assert_true(x509_cred_from_pem(s, n, &b64, hash, err, sizeof err) < 0);
    assert_null(b64);
    free(s);
}

static void test_info(void **state)
{
    fixture_t *f = *state;
    x509_info_t info;
    assert_int_equal(x509_info_from_b64(f->b64, &info), 0);
    assert_string_equal(info.subject, "CN=device-1");
    assert_string_equal(info.issuer, "CN=device-1");
    assert_true(info.not_after_ms - info.not_before_ms == 86400LL * 365 * 1000);
    unsigned char md[32];
    unsigned int n;
    EVP_Digest(f->der, f->der_len, md, &n, EVP_sha256(), NULL);
    char want[65];
    for (unsigned i = 0; i < 32; i++)
        sprintf(want + 2 * i, "%02x", md[i]);
    assert_string_equal(info.sha256_hex, want);
    assert_true(x509_info_from_b64("QUJD", &info) < 0);
    assert_true(x509_info_from_b64("not base64", &info) < 0);
}

/* spec §6.1 test vector: ThingsBoard's CoAP test client certificate
 * (application/src/test/resources/coap/credentials/client/cert.pem, EC P-256, issued by
 * "cf-ca") and the credentialsId ThingsBoard computes for it. */
static const char tb_cert[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIB/TCCAaOgAwIBAgIIVNrVgKT9OE8wCgYIKoZIzj0EAwIwWjEOMAwGA1UEAxMF\n"
    "Y2YtY2ExFDASBgNVBAsTC0NhbGlmb3JuaXVtMRQwEgYDVQQKEwtFY2xpcHNlIElv\n"
    "VDEPMA0GA1UEBxMGT3R0YXdhMQswCQYDVQQGEwJDQTAeFw0yMzEwMjYwODA4MjJa\n"
    "Fw0yNTEwMjUwODA4MjJaMF4xEjAQBgNVBAMTCWNmLWNsaWVudDEUMBIGA1UECxML\n"
    "Q2FsaWZvcm5pdW0xFDASBgNVBAoTC0VjbGlwc2UgSW9UMQ8wDQYDVQQHEwZPdHRh\n"
    "d2ExCzAJBgNVBAYTAkNBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQxYO5/M5\n"
    "ie6+3QPOaAy5MD6CkFILZwIb2rOBCX/EWPaocX1H+eynUnaEEbmqxeN6rnI/pH19\n"
    "j4PtsegfHLrzzaNPME0wHQYDVR0OBBYEFKwEDLTJ+5cQoZfbjWN1vJ2ssgK+MAsG\n"
    "A1UdDwQEAwIHgDAfBgNVHSMEGDAWgBSxVzoI1TL87++hsUb9vQwqODzgUTAKBggq\n"
    "hkjOPQQDAgNIADBFAiA2KCOw3n2AK9Vm8u2u1bQREIEs3tKAU7eFjpNFn929NwIh\n"
    "AInhBGoEwS2Xlu5bdZSfWnujoRrEQiIiQpStmLxVcIsH\n"
    "-----END CERTIFICATE-----\n";
static const char tb_cred_id[] =
    "284161a39bc460af3d9af227cc87a46fc8759356d5640786f5e18e81da4a140f";

static void test_tb_vector(void **state)
{
    (void)state;
    char *b64 = NULL, hash[65], err[256];
    assert_int_equal(x509_cred_from_pem(tb_cert, strlen(tb_cert), &b64, hash, err, sizeof err), 0);
    assert_string_equal(hash, tb_cred_id);
    assert_int_equal(strncmp(b64, "MIIB/TCCAaOgAwIBAgIIVNrVgKT9OE8w", 32), 0);
    x509_info_t info;
    assert_int_equal(x509_info_from_b64(b64, &info), 0);
    assert_non_null(strstr(info.subject, "CN=cf-client"));
    assert_non_null(strstr(info.issuer, "CN=cf-ca"));
    free(b64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tb_vector),
        cmocka_unit_test_setup_teardown(test_plain_pem, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hash_der_matches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crlf_and_spaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_single_line_with_spaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bare_base64, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_der, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_certificates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cert_plus_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_info, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
