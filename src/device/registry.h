/* registry.h — the in-memory credential cache: access token -> device and certificate
 * credentialsId (SHA3-256 hex) -> device.
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

/* Records the device's current credentials, replacing any it had. */
void registry_set(registry_t *r, int64_t device_id, store_cred_type_t type, const char *cred_id);
/* Forgets the device's credentials. */
void registry_remove_device(registry_t *r, int64_t device_id);

#endif
