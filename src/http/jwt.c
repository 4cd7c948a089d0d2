/* jwt.c — HS512 JSON Web Tokens (RFC 7519) as ThingsBoard issues them.
 *
 * Only HS512 is accepted: the header's "alg" is checked before anything else, so "none",
 * HS256 or RS* tokens fail (the classic algorithm-confusion attacks). The signature is
 * compared in constant time, and the claims are looked at only after it verified, so an
 * attacker learns nothing from "expired" versus "invalid" without holding the key.
 */
#include "http/http_int.h"

#include "core/xmalloc.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdlib.h>
#include <string.h>

#define JWT_MAX_LEN 8192 /* far above any token we issue; bounds the work per request */

char *http__b64url(const uint8_t *p, size_t n)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = xmalloc(4 * ((n + 2) / 3) + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = alphabet[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = alphabet[v & 63];
    }
    out[o] = '\0';
    return out;
}

static int b64url_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decodes unpadded base64url; returns a malloc'd, NUL-terminated buffer or NULL. */
static uint8_t *b64url_decode(const char *s, size_t n, size_t *out_len)
{
    if (n % 4 == 1)
        return NULL;
    uint8_t *out = xmalloc(n / 4 * 3 + 3);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_val(s[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

static bool hmac_sha512(const uint8_t *key, size_t key_len, const char *data, size_t len,
                        uint8_t out[64])
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    char digest[] = "SHA512";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    size_t outl = 0;
    bool ok = ctx && EVP_MAC_init(ctx, key, key_len, params) &&
              EVP_MAC_update(ctx, (const unsigned char *)data, len) &&
              EVP_MAC_final(ctx, out, &outl, 64) && outl == 64;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ok;
}

char *http__jwt_sign(const uint8_t *key, size_t key_len, const char *issuer,
                     const char *tenant_id, const http_claims_t *c)
{
    static const char header[] = "{\"alg\":\"HS512\"}";
    json_t *claims = json_pack("{s:s, s:[s], s:s, s:s, s:s, s:b, s:b, s:s, s:I, s:I}",
                               "sub", c->sub, "scopes",
                               c->refresh ? "REFRESH_TOKEN" : "TENANT_ADMIN", "userId",
                               c->user_id, "tenantId", tenant_id, "customerId", HTTP_UUID_NULL,
                               "isPublic", 0, "enabled", 1, "iss", issuer, "iat",
                               (json_int_t)c->iat, "exp", (json_int_t)c->exp);
    if (!claims)
        return NULL;
    /* One per login, shared by the pair and the pairs refreshed from it (logout revokes it). */
    if (c->session_id[0])
        json_object_set_new(claims, "sessionId", json_string(c->session_id));
    char *payload = http__dumps(claims);
    json_decref(claims);
    char *h64 = http__b64url((const uint8_t *)header, strlen(header));
    char *p64 = http__b64url((const uint8_t *)payload, strlen(payload));
    free(payload);
    char *signing = xasprintf("%s.%s", h64, p64);
    free(h64);
    free(p64);
    uint8_t sig[64];
    char *out = NULL;
    if (hmac_sha512(key, key_len, signing, strlen(signing), sig)) {
        char *s64 = http__b64url(sig, sizeof sig);
        out = xasprintf("%s.%s", signing, s64);
        free(s64);
    }
    OPENSSL_cleanse(sig, sizeof sig);
    free(signing);
    return out;
}

static bool header_is_hs512(const char *h, size_t n)
{
    size_t len = 0;
    uint8_t *raw = b64url_decode(h, n, &len);
    if (!raw)
        return false;
    json_t *j = http__json_parse((const char *)raw, len);
    free(raw);
    const char *alg = json_is_object(j) ? json_string_value(json_object_get(j, "alg")) : NULL;
    bool ok = alg && strcmp(alg, "HS512") == 0;
    json_decref(j);
    return ok;
}

int http__jwt_verify(const uint8_t *key, size_t key_len, const char *token, int64_t now_s,
                     http_claims_t *out)
{
    memset(out, 0, sizeof *out);
    if (!token)
        return -EACCES;
    size_t n = strnlen(token, JWT_MAX_LEN + 1);
    if (n > JWT_MAX_LEN)
        return -EACCES;
    const char *dot1 = memchr(token, '.', n);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', n - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot1 || !dot2 || memchr(dot2 + 1, '.', n - (size_t)(dot2 + 1 - token)))
        return -EACCES;
    if (!header_is_hs512(token, (size_t)(dot1 - token)))
        return -EACCES;
    size_t sig_len = 0;
    uint8_t *sig = b64url_decode(dot2 + 1, n - (size_t)(dot2 + 1 - token), &sig_len);
    uint8_t want[64];
    bool good = sig && sig_len == 64 &&
                hmac_sha512(key, key_len, token, (size_t)(dot2 - token), want) &&
                CRYPTO_memcmp(sig, want, 64) == 0;
    free(sig);
    OPENSSL_cleanse(want, sizeof want);
    if (!good)
        return -EACCES;

    size_t plen = 0;
    uint8_t *payload = b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &plen);
    json_t *j = payload ? http__json_parse((const char *)payload, plen) : NULL;
    free(payload);
    int rc = -EACCES;
    const char *sub = json_string_value(json_object_get(j, "sub"));
    const char *uid = json_string_value(json_object_get(j, "userId"));
    json_t *exp = json_object_get(j, "exp");
    json_t *scopes = json_object_get(j, "scopes");
    if (!sub || !json_is_integer(exp) || !json_is_array(scopes))
        goto out;
    snprintf(out->sub, sizeof out->sub, "%s", sub);
    if (uid && strlen(uid) == STORE_UUID_LEN)
        memcpy(out->user_id, uid, STORE_UUID_LEN + 1);
    const char *sid = json_string_value(json_object_get(j, "sessionId"));
    if (sid && strlen(sid) == STORE_UUID_LEN)
        memcpy(out->session_id, sid, STORE_UUID_LEN + 1);
    out->exp = json_integer_value(exp);
    out->iat = json_integer_value(json_object_get(j, "iat"));
    size_t i;
    json_t *v;
    json_array_foreach(scopes, i, v) {
        const char *s = json_string_value(v);
        if (s && strcmp(s, "TENANT_ADMIN") == 0)
            out->tenant_admin = true;
        if (s && strcmp(s, "REFRESH_TOKEN") == 0)
            out->refresh = true;
    }
    rc = out->exp <= now_s ? -EKEYEXPIRED : 0;
out:
    json_decref(j);
    return rc;
}
