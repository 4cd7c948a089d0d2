/* jwt.c — libFuzzer target: JWT verification (src/http/jwt.c) and the revoked-session check,
 * the code every authenticated REST request, the web UI's event stream and token refresh run
 * on a token the client chose.
 *
 * First byte even: the rest is a token as a client sends it (header.payload.signature), checked
 * with a fixed key — almost always refused at the signature, which is the point: nothing
 * before it may misbehave. First byte odd: the rest is a claims payload that we sign with the
 * key, so the claim parsing after a good signature is reached too (sub, userId, sessionId,
 * scopes, iat, exp of any type). A token that verifies is signed again from its claims and
 * must verify to the same claims, and a revoked session must be refused. */
#include "http/http_int.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t KEY[] = "fuzz-signing-key-0123456789abcdef";

static void check_claims(const http_claims_t *c)
{
    if (c->session_id[0] && strlen(c->session_id) != STORE_UUID_LEN)
        abort();
    if (c->user_id[0] && strlen(c->user_id) != STORE_UUID_LEN)
        abort();
    /* Signed again, the claims read back the same (what refresh does with them). */
    char *t = http__jwt_sign(KEY, sizeof KEY - 1, "coaphub", HTTP_UUID_NULL, c);
    if (!t)
        return; /* a sub jansson cannot encode (invalid UTF-8 cut by the 256-byte buffer) */
    http_claims_t d;
    int rc = http__jwt_verify(KEY, sizeof KEY - 1, t, 0, &d);
    if ((rc != 0 && rc != -EKEYEXPIRED) || strcmp(d.session_id, c->session_id) != 0 ||
        d.exp != c->exp || d.refresh != c->refresh)
        abort();
    free(t);
    http_revoked_t *r = http__revoked_new(16);
    if (c->session_id[0]) {
        if (http__revoked_add_session(r, c->session_id, INT64_MAX, 0) != 0 ||
            !http__revoked_check(r, c, 0))
            abort();
    }
    http__revoked_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    char *token;
    if ((data[0] & 1) == 0) {
        token = malloc(size);
        memcpy(token, data + 1, size - 1);
        token[size - 1] = '\0';
    } else {
        static const char header[] = "{\"alg\":\"HS512\"}";
        char *h64 = http__b64url((const uint8_t *)header, strlen(header));
        char *p64 = http__b64url(data + 1, size - 1);
        size_t n = strlen(h64) + 1 + strlen(p64);
        char *signing = malloc(n + 1);
        snprintf(signing, n + 1, "%s.%s", h64, p64);
        uint8_t mac[64];
        size_t mac_len = 0;
        if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA512", NULL, KEY, sizeof KEY - 1,
                       (const unsigned char *)signing, n, mac, sizeof mac, &mac_len))
            abort();
        char *s64 = http__b64url(mac, mac_len);
        token = malloc(n + 1 + strlen(s64) + 1);
        snprintf(token, n + 1 + strlen(s64) + 1, "%s.%s", signing, s64);
        free(h64);
        free(p64);
        free(signing);
        free(s64);
    }
    http_claims_t c;
    int rc = http__jwt_verify(KEY, sizeof KEY - 1, token, 1000, &c);
    if (rc != 0 && rc != -EKEYEXPIRED && rc != -EACCES)
        abort();
    if (rc == 0 || rc == -EKEYEXPIRED)
        check_claims(&c);
    free(token);
    return 0;
}
