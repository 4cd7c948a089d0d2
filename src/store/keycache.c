/* keycache.c — the writer's memory of key_dictionary (key text -> key_id).
 *
 * Every telemetry point names its key; looking it up in SQLite cost one indexed SELECT per
 * point. Keys are never deleted from key_dictionary, so a committed id never changes and can
 * be kept. Invariant: the cache holds only ids whose row is committed. An id learnt inside
 * the open transaction is parked in `pending` and joins the cache on commit; any rollback
 * (of the transaction or of a savepoint) drops the parked ids, since the row may be gone.
 * Bounded: past STORE_KEYCACHE_MAX keys (devices may invent keys) it starts over empty.
 */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

enum { STORE_KEYCACHE_MAX = 65536 };

static uint64_t hash_key(const char *k)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211ULL;
    return h;
}

static void put(store_keycache_t *kc, char *key, int64_t id);

static void grow(store_keycache_t *kc)
{
    store_keycache_slot_t *old = kc->slots;
    size_t old_cap = kc->cap;
    kc->cap = old_cap ? old_cap * 2 : 256;
    kc->slots = xcalloc(kc->cap, sizeof(*kc->slots));
    kc->n = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key)
            put(kc, old[i].key, old[i].id);
    free(old);
}

static void put(store_keycache_t *kc, char *key, int64_t id)
{
    if ((kc->n + 1) * 4 > kc->cap * 3)
        grow(kc);
    size_t mask = kc->cap - 1;
    for (size_t i = hash_key(key) & mask;; i = (i + 1) & mask) {
        if (!kc->slots[i].key) {
            kc->slots[i].key = key;
            kc->slots[i].id = id;
            kc->n++;
            return;
        }
        if (strcmp(kc->slots[i].key, key) == 0) {
            free(key); /* already known (same id: committed ids never change) */
            return;
        }
    }
}

bool store__keycache_get(const store_keycache_t *kc, const char *key, int64_t *id)
{
    if (!kc->n)
        return false;
    size_t mask = kc->cap - 1;
    for (size_t i = hash_key(key) & mask; kc->slots[i].key; i = (i + 1) & mask) {
        if (strcmp(kc->slots[i].key, key) == 0) {
            *id = kc->slots[i].id;
            return true;
        }
    }
    return false;
}

void store__keycache_park(store_keycache_t *kc, const char *key, int64_t id)
{
    if (kc->n_pending == kc->cap_pending) {
        kc->cap_pending = kc->cap_pending ? kc->cap_pending * 2 : 16;
        kc->pending = xrealloc(kc->pending, kc->cap_pending * sizeof(*kc->pending));
    }
    kc->pending[kc->n_pending].key = xstrdup(key);
    kc->pending[kc->n_pending].id = id;
    kc->n_pending++;
}

static void clear_slots(store_keycache_t *kc)
{
    for (size_t i = 0; i < kc->cap; i++)
        free(kc->slots[i].key);
    free(kc->slots);
    kc->slots = NULL;
    kc->cap = kc->n = 0;
}

void store__keycache_commit(store_keycache_t *kc)
{
    for (size_t i = 0; i < kc->n_pending; i++) {
        if (kc->n >= STORE_KEYCACHE_MAX)
            clear_slots(kc);
        put(kc, kc->pending[i].key, kc->pending[i].id); /* the key string moves in */
    }
    kc->n_pending = 0;
}

void store__keycache_rollback(store_keycache_t *kc)
{
    for (size_t i = 0; i < kc->n_pending; i++)
        free(kc->pending[i].key);
    kc->n_pending = 0;
}

void store__keycache_free(store_keycache_t *kc)
{
    clear_slots(kc);
    store__keycache_rollback(kc);
    free(kc->pending);
    kc->pending = NULL;
    kc->cap_pending = 0;
}
