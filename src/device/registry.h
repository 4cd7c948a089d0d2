/* registry.h — the in-memory credential cache: access token -> device, certificate
 * credentialsId (SHA3-256 hex) -> device, and DTLS PSK identity -> device + key.
 *
 * Read on every request and every DTLS handshake (OpenSSL verify callbacks must never touch
 * the database), changed rarely (REST credential saves, device deletes). Readers take a
 * read lock that writers hold only for a pointer-sized update, so lookups never wait on I/O.
 * Filled from the store at start with registry_load(). Any thread.
 */
#ifndef COAPHUB_DEVICE_REGISTRY_H
#define COAPHUB_DEVICE_REGISTRY_H

#include "store/store.h"

#include <stddef.h>
#include <stdint.h>

typedef struct registry registry_t;

registry_t *registry_new(void);
void registry_free(registry_t *r);

/* Loads every credential from the store. Returns 0 or a negative error. */
int registry_load(registry_t *r, store_t *s);

/* Device id for an access token (bytes, not NUL-terminated); 0 if unknown. */
int64_t registry_find_token(registry_t *r, const uint8_t *token, size_t len);
/* Device id for an X.509 credentialsId (64 lower-case hex chars); 0 if unknown. */
int64_t registry_find_cert(registry_t *r, const char *cred_id);
/* Device id for a leaf certificate given as DER (its credentialsId, looked up as above); 0
 * if unknown or not a certificate. What the DTLS transport's identify callback calls. */
int64_t registry_find_cert_der(registry_t *r, const uint8_t *der, size_t len);

/* Largest PSK accepted (bytes): RFC 4279 allows 64 KB, devices use 16-32. */
#define REGISTRY_PSK_MAX 64

/* Device id for a DTLS PSK identity (bytes), with its key copied to key (*key_len bytes, at
 * most REGISTRY_PSK_MAX); 0 if unknown (key untouched). What the DTLS PSK callback calls. */
int64_t registry_find_psk(registry_t *r, const char *identity, size_t len,
                          uint8_t key[static REGISTRY_PSK_MAX], size_t *key_len);

/* Records the device's current credentials, replacing any it had. For CRED_PSK use
 * registry_set_cred (the key is needed). */
void registry_set(registry_t *r, int64_t device_id, store_cred_type_t type, const char *cred_id);
/* The same for any type: cred_value is the hex key for CRED_PSK (ignored otherwise). A PSK
 * whose key is not valid hex of 1..REGISTRY_PSK_MAX bytes is not recorded (-EINVAL). */
int registry_set_cred(registry_t *r, int64_t device_id, store_cred_type_t type, const char *cred_id,
                      const char *cred_value);
/* Hex (either case) to bytes: the key length, or -EINVAL (odd, not hex, empty, too long). */
int registry_psk_from_hex(const char *hex, uint8_t out[static REGISTRY_PSK_MAX]);
/* Forgets the device's credentials. */
void registry_remove_device(registry_t *r, int64_t device_id);
/* How many changes (sets and removals) the registry has had, counting from 0 at
 * registry_new. A lookup made after reading N sees every change up to N; so a holder of
 * something authenticated by a lookup can tell, from the count read just before it, whether
 * a later change event (carrying the count after that change) predates it (hub.h cred_seq). */
uint64_t registry_changes(registry_t *r);

#endif
