/* keycache.c — the writer's memory of key_dictionary (key text -> key_id).
 *
 * Every telemetry point names its key; looking it up in the database cost one indexed SELECT
 * per point. Keys are never deleted from key_dictionary, so a committed id never changes and
 * can be kept. Invariant: the cache holds only ids whose row is committed. An id learnt
 * inside the open transaction is parked in `pending` and joins the cache on commit; any
 * rollback (of the transaction or of a savepoint) drops the parked ids, since the row may be
 * gone. Bounded: past STORE_KEYCACHE_MAX keys (devices may invent keys) it starts over empty.
 *
 * Key names come from devices, so the table is core/htab under the keyed hash (core/hash.h):
 * names built to collide cannot turn the writer's per-point lookup into a walk of a chain.
 */
#include "store/store_int.h"

#include "core/hash.h"

#include <stdlib.h>
#include <string.h>

enum { STORE_KEYCACHE_MAX = 65536, KEYCACHE_MIN_SLOTS = 256 };

/* One key: the link, the id and the name in one allocation. */
struct store_keycache_entry {
    htab_link_t link; /* in store_keycache.keys */
    int64_t id;
    size_t len;
    char key[];
};

typedef struct keycache_key {
    const char *s;
    size_t len;
} keycache_key_t;

static bool entry_is(const htab_link_t *link, const void *key)
{
    const store_keycache_entry_t *e = HTAB_ENTRY(link, store_keycache_entry_t, link);
    const keycache_key_t *k = key;
    return e->len == k->len && memcmp(e->key, k->s, k->len) == 0;
}

static store_keycache_entry_t *find(const store_keycache_t *kc, const keycache_key_t *k)
{
    htab_link_t *l = htab_find(&kc->keys, hash_bytes(k->s, k->len), entry_is, k);
    return l ? HTAB_ENTRY(l, store_keycache_entry_t, link) : NULL;
}

void store__keycache_init(store_keycache_t *kc)
{
    memset(kc, 0, sizeof(*kc));
    htab_init(&kc->keys, KEYCACHE_MIN_SLOTS);
}

bool store__keycache_get(const store_keycache_t *kc, const char *key, int64_t *id)
{
    if (!htab_count(&kc->keys))
        return false;
    keycache_key_t k = {key, strlen(key)};
    const store_keycache_entry_t *e = find(kc, &k);
    if (e)
        *id = e->id;
    return e != NULL;
}

void store__keycache_park(store_keycache_t *kc, const char *key, int64_t id)
{
    if (kc->n_pending == kc->cap_pending) {
        kc->cap_pending = kc->cap_pending ? kc->cap_pending * 2 : 16;
        kc->pending = xrealloc(kc->pending, kc->cap_pending * sizeof(*kc->pending));
    }
    size_t len = strlen(key);
    store_keycache_entry_t *e = xmalloc(sizeof(*e) + len + 1);
    e->id = id;
    e->len = len;
    memcpy(e->key, key, len + 1);
    kc->pending[kc->n_pending++] = e;
}

static void clear(store_keycache_t *kc)
{
    htab_iter_t it;
    for (htab_link_t *l = htab_iter_first(&it, &kc->keys); l; l = htab_iter_next(&it))
        free(HTAB_ENTRY(l, store_keycache_entry_t, link));
    htab_fini(&kc->keys);
}

void store__keycache_commit(store_keycache_t *kc)
{
    for (size_t i = 0; i < kc->n_pending; i++) {
        store_keycache_entry_t *e = kc->pending[i];
        keycache_key_t k = {e->key, e->len};
        if (find(kc, &k)) {
            free(e); /* already known (same id: committed ids never change) */
            continue;
        }
        if (htab_count(&kc->keys) >= STORE_KEYCACHE_MAX)
            clear(kc);
        htab_insert(&kc->keys, &e->link, hash_bytes(e->key, e->len));
    }
    kc->n_pending = 0;
}

void store__keycache_rollback(store_keycache_t *kc)
{
    for (size_t i = 0; i < kc->n_pending; i++)
        free(kc->pending[i]);
    kc->n_pending = 0;
}

void store__keycache_free(store_keycache_t *kc)
{
    clear(kc);
    store__keycache_rollback(kc);
    free(kc->pending);
    kc->pending = NULL;
    kc->cap_pending = 0;
}
