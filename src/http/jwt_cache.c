/* jwt_cache.c — remembers access tokens that already verified, so a REST client that sends the
 * same JWT on every request pays for HS512, two base64 decodes and two JSON parses once.
 *
 * A bulk client (10 000 attribute updates in a second) sends one token thousands of times; a
 * full verify costs ~10 µs of a request's ~40 µs. The cache is a small direct-mapped table keyed
 * by the exact token string; a slot holds a copy of the token and the claims it verified to.
 * Key invariant: a hit returns exactly what http__jwt_verify returned for that token when it
 * was stored, and only while now < exp — only tokens whose signature verified are ever
 * stored, with the one key the cache was made for, so it cannot accept anything the full
 * check would refuse (expired tokens fall through to the full check, which says
 * -EKEYEXPIRED). Tokens are compared in constant time over their length; copies are wiped
 * when evicted or freed and never logged. Bounded: HTTP_JWT_CACHE_SLOTS tokens of at most
 * JWT_CACHE_MAX_TOKEN bytes. One mutex: a hit holds it for a compare and a copy.
 *
 * Every answer, hit or full check, then goes through the revoked set (revoked.c): a token of
 * a logged-out session gets -EKEYEXPIRED (ThingsBoard's "Token has expired" for an outdated
 * token). The set lives here because every authenticated request — REST, the web UI, its
 * event stream (?token=), OTA uploads — passes through this one call.
 */
#include "http/http_int.h"

#include "core/err.h"
#include "core/hash.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define JWT_CACHE_MAX_TOKEN 2048 /* ours are ~400 bytes; longer ones are verified every time */

typedef struct slot {
    char *token; /* NULL = free */
    size_t len;
    http_claims_t claims;
} slot_t;

struct http_jwt_cache {
    pthread_mutex_t mu;
    uint8_t key[HTTP_JWT_KEY_LEN + 64];
    size_t key_len;
    slot_t slots[HTTP_JWT_CACHE_SLOTS];
    uint64_t hits, misses; /* for tests */
    http_revoked_t *revoked;
};

http_jwt_cache_t *http__jwt_cache_new(const uint8_t *key, size_t key_len)
{
    http_jwt_cache_t *c = xcalloc(1, sizeof *c);
    ASSERT(key_len <= sizeof c->key);
    memcpy(c->key, key, key_len);
    c->key_len = key_len;
    pthread_mutex_init(&c->mu, NULL);
    c->revoked = http__revoked_new(HTTP_REVOKED_SESSIONS);
    return c;
}

static void slot_clear(slot_t *s)
{
    if (s->token) {
        OPENSSL_cleanse(s->token, s->len);
        free(s->token);
    }
    OPENSSL_cleanse(s, sizeof *s);
}

void http__jwt_cache_free(http_jwt_cache_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < HTTP_JWT_CACHE_SLOTS; i++)
        slot_clear(&c->slots[i]);
    pthread_mutex_destroy(&c->mu);
    http__revoked_free(c->revoked);
    OPENSSL_cleanse(c->key, sizeof c->key);
    free(c);
}

/* Only picks the slot; a match is decided by comparing the whole token. Keyed, so nobody
 * can make chosen tokens evict each other's slot. */
static size_t slot_of(const char *t, size_t n)
{
    return (size_t)(hash_bytes(t, n) % HTTP_JWT_CACHE_SLOTS);
}

static int cached_verify(http_jwt_cache_t *c, const char *token, int64_t now_s, http_claims_t *out)
{
    size_t n = token ? strnlen(token, JWT_CACHE_MAX_TOKEN + 1) : 0;
    if (n == 0 || n > JWT_CACHE_MAX_TOKEN)
        return http__jwt_verify(c->key, c->key_len, token, now_s, out);
    slot_t *s = &c->slots[slot_of(token, n)];
    pthread_mutex_lock(&c->mu);
    bool hit = s->token && s->len == n && CRYPTO_memcmp(s->token, token, n) == 0 &&
               s->claims.exp > now_s;
    if (hit) {
        *out = s->claims;
        c->hits++;
    } else {
        c->misses++;
    }
    pthread_mutex_unlock(&c->mu);
    if (hit)
        return 0;
    int rc = http__jwt_verify(c->key, c->key_len, token, now_s, out);
    if (rc == 0) {
        char *copy = xmalloc(n + 1);
        memcpy(copy, token, n + 1);
        pthread_mutex_lock(&c->mu);
        slot_clear(s); /* another token with the same slot, or this one expired */
        s->token = copy;
        s->len = n;
        s->claims = *out;
        pthread_mutex_unlock(&c->mu);
    }
    return rc;
}

int http__jwt_cache_verify(http_jwt_cache_t *c, const char *token, int64_t now_s,
                           http_claims_t *out)
{
    int rc = cached_verify(c, token, now_s, out);
    if (rc == 0 && http__revoked_check(c->revoked, out, now_s))
        return -EKEYEXPIRED;
    return rc;
}

http_revoked_t *http__jwt_cache_revoked(http_jwt_cache_t *c)
{
    return c->revoked;
}

void http__jwt_cache_stats(http_jwt_cache_t *c, uint64_t *hits, uint64_t *misses)
{
    pthread_mutex_lock(&c->mu);
    *hits = c->hits;
    *misses = c->misses;
    pthread_mutex_unlock(&c->mu);
}
