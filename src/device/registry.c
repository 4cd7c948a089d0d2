/* registry.c — credential cache: two string->device maps and a device->credential index.
 *
 * DESIGN. A chained hash table per credential kind, plus a small open table from device id
 * to its current credential so replacing or removing a device's credentials needs no scan.
 * One pthread rwlock guards all three: lookups (every request, every handshake) take it
 * shared and never wait for I/O; writers (REST saves, rare) take it exclusively for a few
 * pointer updates. Entries own copies of their keys.
 */
#include "device/registry.h"

#include "core/xmalloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    struct entry *next;   /* chain in the credential table */
    struct entry *dnext;  /* chain in the device table */
    int64_t device_id;
    store_cred_type_t type;
    size_t key_len;
    char key[]; /* token or credentialsId, NUL-terminated */
} entry_t;

typedef struct table {
    entry_t **slots;
    size_t n_slots, n;
} table_t;

struct registry {
    pthread_rwlock_t lock;
    table_t tokens, certs;
    entry_t **by_device;
    size_t n_dev_slots, n_devices;
};

static uint64_t hash_bytes(const void *p, size_t len)
{
    /* FNV-1a: keys are attacker-chosen tokens, but a flooded chain only slows lookups of the
     * attacker's own bucket; tables grow with the number of registered credentials, which
     * only an operator controls. */
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static size_t dev_slot(const registry_t *r, int64_t id)
{
    return (size_t)(((uint64_t)id * 11400714819323198485ULL) >> 20) % r->n_dev_slots;
}

registry_t *registry_new(void)
{
    registry_t *r = xcalloc(1, sizeof *r);
    pthread_rwlock_init(&r->lock, NULL);
    r->tokens.n_slots = r->certs.n_slots = 1024;
    r->tokens.slots = xcalloc(r->tokens.n_slots, sizeof(entry_t *));
    r->certs.slots = xcalloc(r->certs.n_slots, sizeof(entry_t *));
    r->n_dev_slots = 1024;
    r->by_device = xcalloc(r->n_dev_slots, sizeof(entry_t *));
    return r;
}

void registry_free(registry_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_dev_slots; i++) {
        entry_t *e = r->by_device[i];
        while (e) {
            entry_t *next = e->dnext;
            free(e);
            e = next;
        }
    }
    free(r->by_device);
    free(r->tokens.slots);
    free(r->certs.slots);
    pthread_rwlock_destroy(&r->lock);
    free(r);
}

static table_t *table_for(registry_t *r, store_cred_type_t type)
{
    return type == CRED_X509 ? &r->certs : &r->tokens;
}

static void table_grow(table_t *t)
{
    size_t n = t->n_slots * 2;
    entry_t **slots = xcalloc(n, sizeof *slots);
    for (size_t i = 0; i < t->n_slots; i++) {
        entry_t *e = t->slots[i];
        while (e) {
            entry_t *next = e->next;
            size_t s = hash_bytes(e->key, e->key_len) % n;
            e->next = slots[s];
            slots[s] = e;
            e = next;
        }
    }
    free(t->slots);
    t->slots = slots;
    t->n_slots = n;
}

static void dev_grow(registry_t *r)
{
    size_t old_n = r->n_dev_slots;
    entry_t **old = r->by_device;
    r->n_dev_slots = old_n * 2;
    r->by_device = xcalloc(r->n_dev_slots, sizeof(entry_t *));
    for (size_t i = 0; i < old_n; i++) {
        entry_t *e = old[i];
        while (e) {
            entry_t *next = e->dnext;
            size_t s = dev_slot(r, e->device_id);
            e->dnext = r->by_device[s];
            r->by_device[s] = e;
            e = next;
        }
    }
    free(old);
}

static entry_t *table_find(const table_t *t, const void *key, size_t len)
{
    entry_t *e = t->slots[hash_bytes(key, len) % t->n_slots];
    for (; e; e = e->next)
        if (e->key_len == len && memcmp(e->key, key, len) == 0)
            return e;
    return NULL;
}

static void table_unlink(table_t *t, entry_t *victim)
{
    entry_t **pp = &t->slots[hash_bytes(victim->key, victim->key_len) % t->n_slots];
    for (; *pp; pp = &(*pp)->next) {
        if (*pp == victim) {
            *pp = victim->next;
            t->n--;
            return;
        }
    }
}

/* Removes the device's entry from all tables and frees it. Caller holds the write lock. */
static void remove_locked(registry_t *r, int64_t device_id)
{
    entry_t **pp = &r->by_device[dev_slot(r, device_id)];
    for (; *pp; pp = &(*pp)->dnext) {
        entry_t *e = *pp;
        if (e->device_id != device_id)
            continue;
        *pp = e->dnext;
        table_unlink(table_for(r, e->type), e);
        r->n_devices--;
        free(e);
        return;
    }
}

void registry_set(registry_t *r, int64_t device_id, store_cred_type_t type, const char *cred_id)
{
    size_t len = strlen(cred_id);
    entry_t *e = xmalloc(sizeof *e + len + 1);
    *e = (entry_t){.device_id = device_id, .type = type, .key_len = len};
    memcpy(e->key, cred_id, len + 1);

    pthread_rwlock_wrlock(&r->lock);
    remove_locked(r, device_id);
    table_t *t = table_for(r, type);
    /* A credential id is unique in the store; if a stale entry of another device still holds
     * it, the newest assignment wins. */
    entry_t *old = table_find(t, e->key, len);
    if (old)
        remove_locked(r, old->device_id);
    if (t->n + 1 > t->n_slots)
        table_grow(t);
    size_t s = hash_bytes(e->key, len) % t->n_slots;
    e->next = t->slots[s];
    t->slots[s] = e;
    t->n++;
    if (r->n_devices + 1 > r->n_dev_slots)
        dev_grow(r);
    size_t ds = dev_slot(r, device_id);
    e->dnext = r->by_device[ds];
    r->by_device[ds] = e;
    r->n_devices++;
    pthread_rwlock_unlock(&r->lock);
}

void registry_remove_device(registry_t *r, int64_t device_id)
{
    pthread_rwlock_wrlock(&r->lock);
    remove_locked(r, device_id);
    pthread_rwlock_unlock(&r->lock);
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

static void load_one(void *arg, const store_cred_t *c)
{
    if (c->cred_id && *c->cred_id)
        registry_set(arg, c->device_id, c->type, c->cred_id);
}

int registry_load(registry_t *r, store_t *s)
{
    return store_cred_foreach(s, load_one, r);
}
