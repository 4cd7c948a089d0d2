/* proof.h — stateless address proofs for plain UDP: the Echo values (RFC 9175) that the CoAP
 * engine's amplification guard hands to an address it has not verified yet, and checks when
 * the address sends one back.
 *
 * A value is the first UDP_PROOF_LEN bytes of HMAC-SHA256(secret, family | port | address),
 * like the DTLS cookie (src/dtls/cookie.c) but under a secret of its own. The secret rotates
 * every UDP_PROOF_ROTATE_MS and the previous one is still accepted, so a value is good for
 * 5 to 10 minutes. One per shard (the kernel sends an address to one shard for good); not
 * thread-safe.
 */
#ifndef COAPHUB_UDP_PROOF_H
#define COAPHUB_UDP_PROOF_H

#include "core/transport.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define UDP_PROOF_LEN 8 /* 64 bits: a forger must guess them per address and secret */
#define UDP_PROOF_ROTATE_MS (5 * 60 * 1000)

typedef struct udp_proof udp_proof_t;

/* A proof source with a fresh random secret; now_ms starts its rotation clock. */
udp_proof_t *udp_proof_new(int64_t now_ms);
void udp_proof_free(udp_proof_t *p);

/* Writes the value for address a into out (at least UDP_PROOF_LEN bytes of cap). Returns
 * UDP_PROOF_LEN, or 0 for an address that is neither IPv4 nor IPv6 or a cap too small. */
size_t udp_proof_make(udp_proof_t *p, const struct sockaddr *a, socklen_t alen, int64_t now_ms,
                      uint8_t *out, size_t cap);

/* Is v (len bytes, straight off the wire) the value of address a under the current or the
 * previous secret? Compared in constant time. */
bool udp_proof_check(udp_proof_t *p, const struct sockaddr *a, socklen_t alen, int64_t now_ms,
                     const uint8_t *v, size_t len);

/* The same, in the shape of the CoAP engine's Echo provider (ctx is the udp_proof_t). */
size_t udp_proof_make_peer(void *ctx, const transport_peer_t *peer, int64_t now_ms, uint8_t *out,
                           size_t cap);
bool udp_proof_check_peer(void *ctx, const transport_peer_t *peer, int64_t now_ms, const uint8_t *v,
                          size_t len);

#endif
