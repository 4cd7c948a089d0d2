/* power_cache.c — the settings cache of power_cache.h.
 *
 * DESIGN. One mutex over two tables (devices, profiles). It is taken only when a shard
 * resolves a device's settings afresh — the first downlink to it, or the first after an
 * invalidation — never per request or per notification, so contention is not a concern. The
 * store is read outside the mutex; a result read while an invalidation happened (generation
 * moved) is returned to its caller but not kept, so a stale row never outlives the
 * invalidation that should have removed it.
 *
 * Size: one small entry per device that was sent a downlink since its last change, one per
 * profile; removed by invalidation, otherwise kept (bounded by the number of devices).
 */
#include "device/power_cache.h"

#include "core/hash.h"
#include "core/htab.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct dev_entry {
    htab_link_t link;
    int64_t id;
    int64_t profile_id;
    power_raw_t raw;
} dev_entry_t;

typedef struct prof_entry {
    htab_link_t link;
    int64_t id;
    power_raw_t raw;
} prof_entry_t;

struct power_cache {
    store_t *store;
    pthread_mutex_t mu;
    htab_t devs;  /* dev_entry_t by id */
    htab_t profs; /* prof_entry_t by id */
    _Atomic uint64_t gen;
};

static bool dev_is(const htab_link_t *l, const void *id)
{
    return HTAB_ENTRY(l, dev_entry_t, link)->id == *(const int64_t *)id;
}

static bool prof_is(const htab_link_t *l, const void *id)
{
    return HTAB_ENTRY(l, prof_entry_t, link)->id == *(const int64_t *)id;
}

static dev_entry_t *dev_find(power_cache_t *c, int64_t id)
{
    htab_link_t *l = htab_find(&c->devs, hash_u64((uint64_t)id), dev_is, &id);
    return l ? HTAB_ENTRY(l, dev_entry_t, link) : NULL;
}

static prof_entry_t *prof_find(power_cache_t *c, int64_t id)
{
    htab_link_t *l = htab_find(&c->profs, hash_u64((uint64_t)id), prof_is, &id);
    return l ? HTAB_ENTRY(l, prof_entry_t, link) : NULL;
}

power_cache_t *power_cache_new(store_t *store)
{
    power_cache_t *c = xcalloc(1, sizeof *c);
    c->store = store;
    pthread_mutex_init(&c->mu, NULL);
    htab_init(&c->devs, 0);
    htab_init(&c->profs, 0);
    atomic_init(&c->gen, 1);
    return c;
}

static void clear_all(power_cache_t *c)
{
    htab_iter_t it;
    for (htab_link_t *l = htab_iter_first(&it, &c->devs); l; l = htab_iter_next(&it)) {
        htab_remove(&c->devs, l);
        free(HTAB_ENTRY(l, dev_entry_t, link));
    }
    for (htab_link_t *l = htab_iter_first(&it, &c->profs); l; l = htab_iter_next(&it)) {
        htab_remove(&c->profs, l);
        free(HTAB_ENTRY(l, prof_entry_t, link));
    }
}

void power_cache_free(power_cache_t *c)
{
    if (!c)
        return;
    clear_all(c);
    htab_fini(&c->devs);
    htab_fini(&c->profs);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

uint64_t power_cache_gen(const power_cache_t *c)
{
    return atomic_load_explicit(&c->gen, memory_order_acquire);
}

/* Reads what is missing from the store (no lock held). */
static int read_device(power_cache_t *c, int64_t id, int64_t *profile_id, power_raw_t *raw)
{
    if (!c->store)
        return -ENOENT;
    store_device_t d = {0};
    int rc = store_device_get(c->store, id, &d);
    if (rc == 0) {
        *profile_id = d.profile_id;
        power_raw_from_device(d.device_data, raw);
    }
    store_device_fini(&d);
    return rc;
}

static int read_profile(power_cache_t *c, int64_t id, power_raw_t *raw)
{
    if (!c->store || id == 0)
        return -ENOENT;
    store_profile_t p = {0};
    int rc = store_profile_get(c->store, id, &p);
    if (rc == 0)
        power_raw_from_profile(p.data, raw);
    store_profile_fini(&p);
    return rc;
}

int power_cache_get(power_cache_t *c, int64_t device_id, power_raw_t *dev, power_raw_t *prof)
{
    memset(dev, 0, sizeof *dev);
    memset(prof, 0, sizeof *prof);
    pthread_mutex_lock(&c->mu);
    uint64_t gen = atomic_load_explicit(&c->gen, memory_order_relaxed);
    dev_entry_t *de = dev_find(c, device_id);
    bool have_dev = de != NULL;
    int64_t profile_id = 0;
    if (de) {
        *dev = de->raw;
        profile_id = de->profile_id;
    }
    prof_entry_t *pe = have_dev ? prof_find(c, profile_id) : NULL;
    if (pe)
        *prof = pe->raw;
    pthread_mutex_unlock(&c->mu);
    if (have_dev && pe)
        return 0;

    if (!have_dev) {
        int rc = read_device(c, device_id, &profile_id, dev);
        if (rc < 0) {
            memset(dev, 0, sizeof *dev);
            return rc;
        }
    }
    /* A profile that cannot be read gives no settings: the device is treated as always
     * reachable, which is what it was before profiles existed. It is not cached, so the next
     * lookup tries again. */
    int prc = read_profile(c, profile_id, prof);
    if (prc < 0)
        memset(prof, 0, sizeof *prof);

    pthread_mutex_lock(&c->mu);
    if (atomic_load_explicit(&c->gen, memory_order_relaxed) == gen) {
        if (!dev_find(c, device_id)) {
            dev_entry_t *n = xcalloc(1, sizeof *n);
            n->id = device_id;
            n->profile_id = profile_id;
            n->raw = *dev;
            htab_insert(&c->devs, &n->link, hash_u64((uint64_t)device_id));
        }
        if (prc == 0 && !prof_find(c, profile_id)) {
            prof_entry_t *n = xcalloc(1, sizeof *n);
            n->id = profile_id;
            n->raw = *prof;
            htab_insert(&c->profs, &n->link, hash_u64((uint64_t)profile_id));
        }
    }
    pthread_mutex_unlock(&c->mu);
    return 0;
}

static void bump(power_cache_t *c)
{
    atomic_fetch_add_explicit(&c->gen, 1, memory_order_release);
}

void power_cache_invalidate_device(power_cache_t *c, int64_t device_id)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    dev_entry_t *e = dev_find(c, device_id);
    if (e) {
        htab_remove(&c->devs, &e->link);
        free(e);
    }
    bump(c);
    pthread_mutex_unlock(&c->mu);
}

void power_cache_invalidate_profile(power_cache_t *c, int64_t profile_id)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    prof_entry_t *e = prof_find(c, profile_id);
    if (e) {
        htab_remove(&c->profs, &e->link);
        free(e);
    }
    bump(c);
    pthread_mutex_unlock(&c->mu);
}

void power_cache_invalidate_all(power_cache_t *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    clear_all(c);
    bump(c);
    pthread_mutex_unlock(&c->mu);
}
