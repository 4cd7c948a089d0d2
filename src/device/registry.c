/* registry.c — credential cache: three string->device maps (tokens, certificate hashes, PSK
 * identities) and a device->credential index.
 *
 * DESIGN. A core/htab per credential kind (keyed hash: tokens are chosen by whoever sends a
 * request), plus one from device id to its current credential so replacing or removing a
 * device's credentials needs no scan.
 * One pthread rwlock guards all three: lookups (every request, every handshake) take it
 * shared and never wait for I/O; writers (REST saves, rare) take it exclusively for a few
 * pointer updates. Entries own copies of their keys.
 */
#include "device/registry.h"

#include "core/hash.h"
#include "core/htab.h"
#include "core/xmalloc.h"
#include "device/x509.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    htab_link_t link;  /* in the credential table of its type, keyed by the credential */
    htab_link_t dlink; /* in by_device, keyed by device id */
    int64_t device_id;
    store_cred_type_t type;
    size_t key_len;
    size_t psk_len; /* CRED_PSK: the key's bytes follow key's NUL */
    char key[];     /* token, credentialsId or PSK identity, NUL-terminated */
} entry_t;

struct registry {
    pthread_rwlock_t lock;
    htab_t tokens, certs, psks;
    htab_t by_device;
    _Atomic uint64_t changes; /* bumped under the write lock */
};

static bool entry_has_key(const htab_link_t *l, const void *key)
{
    const entry_t *e = HTAB_ENTRY(l, entry_t, link);
    return htab_bytes_equal(key, e->key, e->key_len);
}

static bool entry_has_device(const htab_link_t *l, const void *id)
{
    return HTAB_ENTRY(l, entry_t, dlink)->device_id == *(const int64_t *)id;
}

registry_t *registry_new(void)
{
    registry_t *r = xcalloc(1, sizeof *r);
    pthread_rwlock_init(&r->lock, NULL);
    htab_init(&r->tokens, 1024);
    htab_init(&r->certs, 1024);
    htab_init(&r->psks, 64);
    htab_init(&r->by_device, 1024);
    return r;
}

void registry_free(registry_t *r)
{
    if (!r)
        return;
    htab_iter_t it;
    for (htab_link_t *l = htab_iter_first(&it, &r->by_device); l; l = htab_iter_next(&it)) {
        entry_t *e = HTAB_ENTRY(l, entry_t, dlink);
        OPENSSL_cleanse(e, sizeof *e + e->key_len + 1 + e->psk_len); /* a PSK is a secret */
        free(e);
    }
    htab_fini(&r->by_device);
    htab_fini(&r->tokens);
    htab_fini(&r->certs);
    htab_fini(&r->psks);
    pthread_rwlock_destroy(&r->lock);
    free(r);
}

static htab_t *table_for(registry_t *r, store_cred_type_t type)
{
    return type == CRED_X509 ? &r->certs : type == CRED_PSK ? &r->psks : &r->tokens;
}

static entry_t *table_find(const htab_t *t, const void *key, size_t len)
{
    htab_bytes_t k = {key, len};
    htab_link_t *l = htab_find(t, hash_bytes(key, len), entry_has_key, &k);
    return l ? HTAB_ENTRY(l, entry_t, link) : NULL;
}

/* Removes the device's entry from all tables and frees it. Caller holds the write lock. */
static void remove_locked(registry_t *r, int64_t device_id)
{
    htab_link_t *l = htab_find(&r->by_device, hash_u64((uint64_t)device_id), entry_has_device,
                               &device_id);
    if (!l)
        return;
    entry_t *e = HTAB_ENTRY(l, entry_t, dlink);
    htab_remove(&r->by_device, &e->dlink);
    htab_remove(table_for(r, e->type), &e->link);
    OPENSSL_cleanse(e, sizeof *e + e->key_len + 1 + e->psk_len);
    free(e);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int registry_psk_from_hex(const char *hex, uint8_t out[static REGISTRY_PSK_MAX])
{
    size_t n = hex ? strlen(hex) : 0;
    if (n == 0 || n % 2 != 0 || n / 2 > REGISTRY_PSK_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return (int)(n / 2);
}

void registry_set(registry_t *r, int64_t device_id, store_cred_type_t type, const char *cred_id)
{
    (void)registry_set_cred(r, device_id, type, cred_id, NULL);
}

int registry_set_cred(registry_t *r, int64_t device_id, store_cred_type_t type, const char *cred_id,
                      const char *cred_value)
{
    uint8_t psk[REGISTRY_PSK_MAX];
    int psk_len = 0;
    if (type == CRED_PSK && (psk_len = registry_psk_from_hex(cred_value, psk)) < 0) {
        /* Unusable: the device loses its old credentials as the store says it should. */
        registry_remove_device(r, device_id);
        return psk_len;
    }
    size_t len = strlen(cred_id);
    entry_t *e = xmalloc(sizeof *e + len + 1 + (size_t)psk_len);
    *e = (entry_t){
        .device_id = device_id, .type = type, .key_len = len, .psk_len = (size_t)psk_len};
    memcpy(e->key, cred_id, len + 1);
    memcpy(e->key + len + 1, psk, (size_t)psk_len);
    OPENSSL_cleanse(psk, sizeof psk);

    pthread_rwlock_wrlock(&r->lock);
    remove_locked(r, device_id);
    htab_t *t = table_for(r, type);
    /* A credential id is unique in the store; if a stale entry of another device still holds
     * it, the newest assignment wins. */
    entry_t *old = table_find(t, e->key, len);
    if (old)
        remove_locked(r, old->device_id);
    htab_insert(t, &e->link, hash_bytes(e->key, len));
    htab_insert(&r->by_device, &e->dlink, hash_u64((uint64_t)device_id));
    atomic_fetch_add(&r->changes, 1);
    pthread_rwlock_unlock(&r->lock);
    return 0;
}

void registry_remove_device(registry_t *r, int64_t device_id)
{
    pthread_rwlock_wrlock(&r->lock);
    remove_locked(r, device_id);
    atomic_fetch_add(&r->changes, 1);
    pthread_rwlock_unlock(&r->lock);
}

uint64_t registry_changes(registry_t *r)
{
    return atomic_load(&r->changes);
}

static int64_t find(registry_t *r, store_cred_type_t type, const void *key, size_t len)
{
    pthread_rwlock_rdlock(&r->lock);
    entry_t *e = table_find(table_for(r, type), key, len);
    int64_t id = e ? e->device_id : 0;
    pthread_rwlock_unlock(&r->lock);
    return id;
}

int64_t registry_find_token(registry_t *r, const uint8_t *token, size_t len)
{
    return len ? find(r, CRED_ACCESS_TOKEN, token, len) : 0;
}

int64_t registry_find_cert(registry_t *r, const char *cred_id)
{
    return find(r, CRED_X509, cred_id, strlen(cred_id));
}

int64_t registry_find_cert_der(registry_t *r, const uint8_t *der, size_t len)
{
    char hash[65];
    if (x509_cred_hash_der(der, len, hash) != 0)
        return 0;
    return registry_find_cert(r, hash);
}

int64_t registry_find_psk(registry_t *r, const char *identity, size_t len,
                          uint8_t key[static REGISTRY_PSK_MAX], size_t *key_len)
{
    if (len == 0)
        return 0;
    pthread_rwlock_rdlock(&r->lock);
    entry_t *e = table_find(&r->psks, identity, len);
    int64_t id = 0;
    if (e) {
        id = e->device_id;
        memcpy(key, e->key + e->key_len + 1, e->psk_len);
        *key_len = e->psk_len;
    }
    pthread_rwlock_unlock(&r->lock);
    return id;
}

static void load_one(void *arg, const store_cred_t *c)
{
    if (c->cred_id && *c->cred_id)
        registry_set_cred(arg, c->device_id, c->type, c->cred_id, c->cred_value);
}

int registry_load(registry_t *r, store_t *s)
{
    return store_cred_foreach(s, load_one, r);
}
