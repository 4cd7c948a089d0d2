/* cookie.c — the stateless part of a DTLS server: record pre-filter and HelloVerify cookies.
 *
 * Invariant: nothing here allocates per peer. A ClientHello from an address with no session
 * costs one HMAC and, without a valid cookie, one HelloVerifyRequest that is never larger than
 * the ClientHello (RFC 6347 §4.2.1: the cookie exchange exists so that spoofed sources cannot
 * make us keep state or amplify traffic). The cookie is HMAC-SHA256(secret, family | port |
 * address); the secret rotates every DTLS_COOKIE_ROTATE_MS and the previous one is still
 * accepted, so a client that got its cookie just before a rotation is not bounced twice.
 */
#include "dtls/dtls_int.h"

#include "core/err.h"
#include "core/sockaddr.h"

#include <errno.h>
#include <netinet/in.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <string.h>

void dtls__cookie_init(dtls_cookie_t *c, int64_t now_ms)
{
    memset(c, 0, sizeof *c);
    c->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    ASSERT(c->mac != NULL);
    ASSERT(RAND_bytes(c->cur, sizeof c->cur) == 1);
    c->rotated_ms = now_ms;
}

void dtls__cookie_fini(dtls_cookie_t *c)
{
    EVP_MAC_free(c->mac);
    OPENSSL_cleanse(c->cur, sizeof c->cur);
    OPENSSL_cleanse(c->prev, sizeof c->prev);
    c->mac = NULL;
}

void dtls__cookie_rotate(dtls_cookie_t *c, int64_t now_ms)
{
    memcpy(c->prev, c->cur, sizeof c->prev);
    c->have_prev = true;
    ASSERT(RAND_bytes(c->cur, sizeof c->cur) == 1);
    c->rotated_ms = now_ms;
}

void dtls__cookie_tick(dtls_cookie_t *c, int64_t now_ms)
{
    if (now_ms - c->rotated_ms >= DTLS_COOKIE_ROTATE_MS)
        dtls__cookie_rotate(c, now_ms);
}

static int hmac(EVP_MAC *mac, const uint8_t key[static DTLS_COOKIE_SECRET_LEN],
                const uint8_t *msg, size_t len, uint8_t out[static DTLS_COOKIE_LEN])
{
    EVP_MAC_CTX *m = EVP_MAC_CTX_new(mac);
    if (!m)
        return -ENOMEM;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    size_t outl = 0;
    int ok = EVP_MAC_init(m, key, DTLS_COOKIE_SECRET_LEN, params) == 1 &&
             EVP_MAC_update(m, msg, len) == 1 &&
             EVP_MAC_final(m, out, &outl, DTLS_COOKIE_LEN) == 1 && outl == DTLS_COOKIE_LEN;
    EVP_MAC_CTX_free(m);
    return ok ? 0 : -EIO;
}

int dtls__cookie_make(const dtls_cookie_t *c, const struct sockaddr *a, socklen_t alen,
                      uint8_t out[static DTLS_COOKIE_LEN])
{
    uint8_t msg[SOCKADDR_MAC_BYTES_MAX];
    size_t n = sockaddr_mac_bytes(a, alen, msg);
    if (n == 0)
        return -EINVAL;
    return hmac(c->mac, c->cur, msg, n, out);
}

bool dtls__cookie_check(const dtls_cookie_t *c, const struct sockaddr *a, socklen_t alen,
                        const uint8_t *cookie, size_t len)
{
    uint8_t msg[SOCKADDR_MAC_BYTES_MAX], want[DTLS_COOKIE_LEN];
    size_t n = sockaddr_mac_bytes(a, alen, msg);
    if (n == 0 || len != DTLS_COOKIE_LEN)
        return false;
    if (hmac(c->mac, c->cur, msg, n, want) == 0 && CRYPTO_memcmp(want, cookie, len) == 0)
        return true;
    return c->have_prev && hmac(c->mac, c->prev, msg, n, want) == 0 &&
           CRYPTO_memcmp(want, cookie, len) == 0;
}

int dtls__cookie_generate_cb(SSL *ssl, unsigned char *cookie, unsigned int *len)
{
    dtls_bio_t *b = dtls__ssl_bio(ssl);
    if (!b || !b->cookie)
        return 0;
    if (dtls__cookie_make(b->cookie, (const struct sockaddr *)&b->addr, b->addr_len, cookie) != 0)
        return 0;
    *len = DTLS_COOKIE_LEN;
    if (b->cookie->cookies_sent)
        (*b->cookie->cookies_sent)++;
    return 1;
}

int dtls__cookie_verify_cb(SSL *ssl, const unsigned char *cookie, unsigned int len)
{
    dtls_bio_t *b = dtls__ssl_bio(ssl);
    if (!b || !b->cookie)
        return 0;
    if (dtls__cookie_check(b->cookie, (const struct sockaddr *)&b->addr, b->addr_len, cookie,
                           len))
        return 1;
    if (b->cookie->cookies_bad)
        (*b->cookie->cookies_bad)++;
    return 0;
}

/*
 * DTLS record header (RFC 6347 §4.1), then the handshake header (§4.2.2) of a ClientHello:
 *
 *   0        1        3        5                 11       13
 *  +--------+--------+--------+-----------------+--------+
 *  | type   | version| epoch  | sequence_number | length |   type 22 = handshake
 *  +--------+--------+--------+-----------------+--------+   version 0xfeff / 0xfefd
 *  13       14                17        19               22              25
 *  +--------+-----------------+---------+----------------+---------------+
 *  |msg_type| length (24)     | msg_seq | fragment_offset| fragment_len  |  msg_type 1
 *  +--------+-----------------+---------+----------------+---------------+
 *  then client_version (2) random (32) session_id<0..32> cookie<0..255> suites<2..> comp<1..>
 *
 * A ClientHello is answered only when it starts at fragment offset 0 and the datagram is at
 * least as long as the smallest possible ClientHello (67 bytes), which is longer than our
 * HelloVerifyRequest (13 + 12 + 3 + 32 = 60 bytes): the reply can never amplify.
 */
enum { REC_HDR = 13, HS_HDR = 12, MIN_CLIENT_HELLO = REC_HDR + HS_HDR + 2 + 32 + 1 + 1 + 2 + 2 + 1 + 1 };
_Static_assert(MIN_CLIENT_HELLO >= REC_HDR + HS_HDR + 3 + DTLS_COOKIE_LEN,
               "a HelloVerifyRequest must not be larger than the smallest ClientHello");

dtls_dg_kind_t dtls__classify(const uint8_t *p, size_t len)
{
    if (!p || len < REC_HDR)
        return DTLS_DG_DROP;
    uint8_t type = p[0];
    /* RFC 9146 tls12_cid: its length field sits behind a CID whose length only the
     * listener knows, so it is routed by that CID (listener.c) and checked there. */
    if (type == 25 && p[1] == 0xfe)
        return DTLS_DG_CID;
    /* change_cipher_spec, alert, handshake, application_data; DTLS versions are 0xfe.. */
    if (type < 20 || type > 23 || p[1] != 0xfe)
        return DTLS_DG_DROP;
    size_t rec_len = (size_t)p[11] << 8 | p[12];
    if (rec_len > len - REC_HDR)
        return DTLS_DG_DROP;
    bool epoch0 = p[3] == 0 && p[4] == 0;
    if (type != 22 || !epoch0 || rec_len < HS_HDR || p[REC_HDR] != 1)
        return DTLS_DG_RECORD;
    const uint8_t *h = p + REC_HDR;
    bool first_fragment = h[6] == 0 && h[7] == 0 && h[8] == 0;
    if (!first_fragment || len < MIN_CLIENT_HELLO)
        return DTLS_DG_DROP;
    return DTLS_DG_CLIENT_HELLO;
}
