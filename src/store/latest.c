/* latest.c — latest time-series values that are in the telemetry log but not yet in
 * ts_kv_latest.
 *
 * Why: the group commit used to upsert ts_kv_latest for every point. With many devices every
 * commit rewrote most of that table's pages (~100 MB/s of WAL at 1000 devices, performance
 * pass 3) and the upsert cost the writer ~2 µs per point. Now the merge (merge.c) writes the
 * latest value of each (device, key) once per run, and until then the newest committed value
 * lives here, in memory; readers (sqlite_kv.c) take the newer of this and ts_kv_latest.
 *
 * Invariant: for every (device, key), the newer (ts, then seq) of its ts_kv_latest row and its
 * entry here is its latest value. Keeping it:
 * - the writer stages the points of a transaction (seq = the log row's rowid) and publishes
 *   them under latest_mu held across its COMMIT, so nobody sees a value before it is durable
 *   or misses one after;
 * - the merge writes a run's newest value per (device, key) into ts_kv_latest with the run,
 *   then drops the entries whose row was in the run (seq <= the run's last);
 * - point and device deletes hold latest_mu from inside their write transaction until they
 *   have fixed the entries, so no commit slips between (sqlite_kv.c, sqlite_devices.c);
 * - at open the entries are rebuilt from the log (a crash loses nothing: the log is durable).
 * The size is bounded by the (device, key) pairs with points in the log. Devices are found
 * through core/htab under the keyed hash of their id (core/hash.h).
 */
#include "store/store_int.h"

#include "core/hash.h"
#include "core/htab.h"

#include <stdlib.h>
#include <string.h>

typedef struct latest_item {
    int64_t key_id, seq;
    store_kv_t kv; /* key unused (NULL), s owned */
} latest_item_t;

/* One device's entries: devices have a few keys, so a small array. */
typedef struct latest_dev {
    htab_link_t link; /* in store_latest.devs, keyed by device_id */
    int64_t device_id;
    latest_item_t *items;
    size_t n, cap;
} latest_dev_t;

struct store_latest {
    htab_t devs; /* latest_dev_t by device_id (core/htab.h) */
    /* Points of the writer's open transaction (writer thread only). kv borrowed from the
     * batches, which outlive the commit. */
    struct {
        int64_t device_id, key_id, seq;
        const store_kv_t *kv;
    } *staged;
    size_t n_staged, cap_staged;
};

enum { LATEST_MIN_SLOTS = 256 };

static uint64_t dev_hash(int64_t device_id)
{
    return hash_u64((uint64_t)device_id);
}

static bool dev_is(const htab_link_t *link, const void *device_id)
{
    return HTAB_ENTRY(link, latest_dev_t, link)->device_id == *(const int64_t *)device_id;
}

void store__latest_init(store_t *s)
{
    store_latest_t *l = xcalloc(1, sizeof(*l));
    htab_init(&l->devs, LATEST_MIN_SLOTS);
    s->latest = l;
    pthread_mutex_init(&s->latest_mu, NULL);
}

static void dev_free(latest_dev_t *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->items[i].kv.s);
    free(d->items);
    free(d);
}

void store__latest_fini(store_t *s)
{
    store_latest_t *l = s->latest;
    if (!l)
        return;
    htab_iter_t it;
    for (htab_link_t *k = htab_iter_first(&it, &l->devs); k; k = htab_iter_next(&it))
        dev_free(HTAB_ENTRY(k, latest_dev_t, link));
    htab_fini(&l->devs);
    free(l->staged);
    free(l);
    s->latest = NULL;
    pthread_mutex_destroy(&s->latest_mu);
}

static latest_dev_t *dev_find(const store_latest_t *l, int64_t device_id)
{
    htab_link_t *k = htab_find(&l->devs, dev_hash(device_id), dev_is, &device_id);
    return k ? HTAB_ENTRY(k, latest_dev_t, link) : NULL;
}

static latest_dev_t *dev_get(store_latest_t *l, int64_t device_id)
{
    latest_dev_t *d = dev_find(l, device_id);
    if (d)
        return d;
    d = xcalloc(1, sizeof(*d));
    d->device_id = device_id;
    htab_insert(&l->devs, &d->link, dev_hash(device_id));
    return d;
}

static void dev_unlink(store_latest_t *l, latest_dev_t *d)
{
    htab_remove(&l->devs, &d->link);
    dev_free(d);
}

static void item_drop(latest_dev_t *d, size_t i)
{
    free(d->items[i].kv.s);
    d->items[i] = d->items[--d->n];
}

/* Makes (key_id, seq, kv) the entry unless the entry is newer. latest_mu held. */
static void put(store_latest_t *l, int64_t device_id, int64_t key_id, int64_t seq,
                const store_kv_t *kv)
{
    latest_dev_t *d = dev_get(l, device_id);
    latest_item_t *it = NULL;
    for (size_t i = 0; i < d->n && !it; i++)
        if (d->items[i].key_id == key_id)
            it = &d->items[i];
    if (it && (kv->ts < it->kv.ts || (kv->ts == it->kv.ts && seq < it->seq)))
        return; /* a late point: the entry stays */
    if (!it) {
        if (d->n == d->cap) {
            d->cap = d->cap ? d->cap * 2 : 4;
            d->items = xrealloc(d->items, d->cap * sizeof(*d->items));
        }
        it = &d->items[d->n++];
        it->kv.s = NULL;
    }
    char *old_s = it->kv.s;
    it->key_id = key_id;
    it->seq = seq;
    it->kv = *kv;
    it->kv.key = NULL;
    /* Reuse the old string's memory when it fits: a device sending the same string key
     * over and over does not allocate. */
    if (kv->s && old_s && strlen(old_s) >= strlen(kv->s)) {
        strcpy(old_s, kv->s);
        it->kv.s = old_s;
    } else {
        free(old_s);
        it->kv.s = kv->s ? xstrdup(kv->s) : NULL;
    }
}

void store__latest_stage(store_t *s, int64_t device_id, int64_t key_id, int64_t seq,
                         const store_kv_t *kv)
{
    store_latest_t *l = s->latest;
    if (l->n_staged == l->cap_staged) {
        l->cap_staged = l->cap_staged ? l->cap_staged * 2 : 256;
        l->staged = xrealloc(l->staged, l->cap_staged * sizeof(*l->staged));
    }
    l->staged[l->n_staged].device_id = device_id;
    l->staged[l->n_staged].key_id = key_id;
    l->staged[l->n_staged].seq = seq;
    l->staged[l->n_staged].kv = kv;
    l->n_staged++;
}

size_t store__latest_staged(const store_t *s)
{
    return s->latest->n_staged;
}

void store__latest_unstage(store_t *s, size_t mark)
{
    if (mark < s->latest->n_staged)
        s->latest->n_staged = mark;
}

void store__latest_release(store_t *s)
{
    store_latest_t *l = s->latest;
    if (l->n_staged)
        return;
    free(l->staged);
    l->staged = NULL;
    l->cap_staged = 0;
}

void store__latest_publish_locked(store_t *s)
{
    store_latest_t *l = s->latest;
    for (size_t i = 0; i < l->n_staged; i++)
        put(l, l->staged[i].device_id, l->staged[i].key_id, l->staged[i].seq,
            l->staged[i].kv);
    l->n_staged = 0;
}

void store__latest_sweep(store_t *s, int64_t last_seq)
{
    store_latest_t *l = s->latest;
    pthread_mutex_lock(&s->latest_mu);
    htab_iter_t it;
    for (htab_link_t *k = htab_iter_first(&it, &l->devs); k; k = htab_iter_next(&it)) {
        latest_dev_t *d = HTAB_ENTRY(k, latest_dev_t, link);
        for (size_t i = 0; i < d->n;)
            if (d->items[i].seq <= last_seq)
                item_drop(d, i);
            else
                i++;
        if (d->n == 0)
            dev_unlink(l, d); /* the entry just returned: allowed while iterating */
    }
    pthread_mutex_unlock(&s->latest_mu);
}

bool store__latest_find_locked(store_t *s, int64_t device_id, int64_t key_id, store_kv_t *out)
{
    latest_dev_t *d = dev_find(s->latest, device_id);
    for (size_t i = 0; d && i < d->n; i++)
        if (d->items[i].key_id == key_id) {
            *out = d->items[i].kv; /* borrowed: valid while latest_mu is held */
            return true;
        }
    return false;
}

void store__latest_remove_locked(store_t *s, int64_t device_id, int64_t key_id)
{
    store_latest_t *l = s->latest;
    latest_dev_t *d = dev_find(l, device_id);
    for (size_t i = 0; d && i < d->n; i++)
        if (d->items[i].key_id == key_id) {
            item_drop(d, i);
            break;
        }
    if (d && d->n == 0)
        dev_unlink(l, d);
}

void store__latest_forget_device_locked(store_t *s, int64_t device_id)
{
    latest_dev_t *d = dev_find(s->latest, device_id);
    if (d)
        dev_unlink(s->latest, d);
}

size_t store__latest_copy(store_t *s, int64_t device_id, store_latest_copy_t **out)
{
    *out = NULL;
    pthread_mutex_lock(&s->latest_mu);
    latest_dev_t *d = dev_find(s->latest, device_id);
    size_t n = d ? d->n : 0;
    if (n) {
        *out = xmalloc(n * sizeof(**out));
        for (size_t i = 0; i < n; i++) {
            (*out)[i].key_id = d->items[i].key_id;
            (*out)[i].kv = d->items[i].kv;
            (*out)[i].kv.s = d->items[i].kv.s ? xstrdup(d->items[i].kv.s) : NULL;
        }
    }
    pthread_mutex_unlock(&s->latest_mu);
    return n;
}

void store__latest_copy_free(store_latest_copy_t *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(c[i].kv.s);
    free(c);
}

void store__latest_put_locked(store_t *s, int64_t device_id, int64_t key_id, int64_t seq,
                              const store_kv_t *kv)
{
    put(s->latest, device_id, key_id, seq, kv);
}

void store__latest_take_newer(store_kv_list_t *out, ssize_t at, const char *key, store_kv_t *mem)
{
    if (at < 0) {
        char *sv = mem->s;
        mem->s = NULL;
        mem->key = (char *)key;
        store_kv_list_push(out, mem);
        out->items[out->n - 1].s = sv;
        mem->key = NULL;
        return;
    }
    store_kv_t *it = &out->items[at];
    if (mem->ts < it->ts)
        return; /* the table's is newer; on an equal ts the entry is the later write */
    free(it->s);
    char *k = it->key;
    *it = *mem;
    it->key = k;
    mem->s = NULL;
}
