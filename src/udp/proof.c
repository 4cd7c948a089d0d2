/* proof.c — stateless address proofs (RFC 9175 Echo values) for plain UDP; see proof.h.
 *
 * Invariant: nothing is kept per address. A value costs one HMAC to make and at most two to
 * check; values are checked only when a request carries an Echo option.
 */
#include "udp/proof.h"

#include "core/err.h"
#include "core/sockaddr.h"
#include "core/xmalloc.h"

#include <netinet/in.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

enum { SECRET_LEN = 32, MAC_LEN = 32 };

struct udp_proof {
    EVP_MAC *mac;
    uint8_t cur[SECRET_LEN];
    uint8_t prev[SECRET_LEN];
    bool have_prev;
    int64_t rotated_ms;
};

udp_proof_t *udp_proof_new(int64_t now_ms)
{
    udp_proof_t *p = xcalloc(1, sizeof *p);
    p->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    ASSERT(p->mac != NULL);
    ASSERT(RAND_bytes(p->cur, sizeof p->cur) == 1);
    p->rotated_ms = now_ms;
    return p;
}

void udp_proof_free(udp_proof_t *p)
{
    if (!p)
        return;
    EVP_MAC_free(p->mac);
    OPENSSL_cleanse(p, sizeof *p);
    free(p);
}

/* Rotates once per period; after two periods of silence neither old secret is kept. */
static void tick(udp_proof_t *p, int64_t now_ms)
{
    if (now_ms - p->rotated_ms < UDP_PROOF_ROTATE_MS)
        return;
    if (now_ms - p->rotated_ms < 2LL * UDP_PROOF_ROTATE_MS) {
        memcpy(p->prev, p->cur, sizeof p->prev);
        p->have_prev = true;
    } else {
        p->have_prev = false;
    }
    ASSERT(RAND_bytes(p->cur, sizeof p->cur) == 1);
    p->rotated_ms = now_ms;
}

static bool hmac(EVP_MAC *mac, const uint8_t key[static SECRET_LEN], const uint8_t *msg, size_t len,
                 uint8_t out[static MAC_LEN])
{
    EVP_MAC_CTX *m = EVP_MAC_CTX_new(mac);
    if (!m)
        return false;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    size_t outl = 0;
    bool ok = EVP_MAC_init(m, key, SECRET_LEN, params) == 1 && EVP_MAC_update(m, msg, len) == 1 &&
              EVP_MAC_final(m, out, &outl, MAC_LEN) == 1 && outl == MAC_LEN;
    EVP_MAC_CTX_free(m);
    return ok;
}

size_t udp_proof_make(udp_proof_t *p, const struct sockaddr *a, socklen_t alen, int64_t now_ms,
                      uint8_t *out, size_t cap)
{
    uint8_t msg[SOCKADDR_MAC_BYTES_MAX], mac[MAC_LEN];
    size_t n = sockaddr_mac_bytes(a, alen, msg);
    if (n == 0 || cap < UDP_PROOF_LEN)
        return 0;
    tick(p, now_ms);
    if (!hmac(p->mac, p->cur, msg, n, mac))
        return 0;
    memcpy(out, mac, UDP_PROOF_LEN);
    return UDP_PROOF_LEN;
}

bool udp_proof_check(udp_proof_t *p, const struct sockaddr *a, socklen_t alen, int64_t now_ms,
                     const uint8_t *v, size_t len)
{
    uint8_t msg[SOCKADDR_MAC_BYTES_MAX], mac[MAC_LEN];
    size_t n = sockaddr_mac_bytes(a, alen, msg);
    if (n == 0 || len != UDP_PROOF_LEN)
        return false;
    tick(p, now_ms);
    if (hmac(p->mac, p->cur, msg, n, mac) && CRYPTO_memcmp(mac, v, len) == 0)
        return true;
    return p->have_prev && hmac(p->mac, p->prev, msg, n, mac) && CRYPTO_memcmp(mac, v, len) == 0;
}

size_t udp_proof_make_peer(void *ctx, const transport_peer_t *peer, int64_t now_ms, uint8_t *out,
                           size_t cap)
{
    return udp_proof_make(ctx, (const struct sockaddr *)&peer->addr, peer->addr_len, now_ms, out,
                          cap);
}

bool udp_proof_check_peer(void *ctx, const transport_peer_t *peer, int64_t now_ms, const uint8_t *v,
                          size_t len)
{
    return udp_proof_check(ctx, (const struct sockaddr *)&peer->addr, peer->addr_len, now_ms, v,
                           len);
}
