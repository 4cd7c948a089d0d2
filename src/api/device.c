/* device.c — the shard's per-device state table (api_dev_t by device id).
 *
 * Invariant: an entry exists only while something needs it — a live observation on this
 * shard, or the device being marked active (its inactivity timer armed). Callers that may
 * have caused an entry to be freed (cancelling an observer ends it synchronously) look the
 * device up again instead of keeping the pointer.
 */
#include "api/api_int.h"

#include "core/hash.h"
#include "core/xmalloc.h"

#include <stdlib.h>

static bool dev_is(const htab_link_t *l, const void *id)
{
    return HTAB_ENTRY(l, api_dev_t, link)->id == *(const int64_t *)id;
}

api_dev_t *api__dev_find(api_shard_t *a, int64_t id)
{
    htab_link_t *l = htab_find(&a->devs, hash_u64((uint64_t)id), dev_is, &id);
    return l ? HTAB_ENTRY(l, api_dev_t, link) : NULL;
}

api_dev_t *api__dev_get(api_shard_t *a, int64_t id)
{
    api_dev_t *d = api__dev_find(a, id);
    if (d)
        return d;
    d = xcalloc(1, sizeof *d);
    d->a = a;
    d->id = id;
    d->attr_cf = d->rpc_cf = COAP_CF_JSON;
    htab_insert(&a->devs, &d->link, hash_u64((uint64_t)id));
    return d;
}

static void unlink_free(api_shard_t *a, api_dev_t *d)
{
    htab_remove(&a->devs, &d->link);
    loop_timer_cancel(a->loop, &d->idle_timer);
    api__dev_drop_held(d);
    if (d->ota) {
        store_ota_fini(&d->ota->o[0]);
        store_ota_fini(&d->ota->o[1]);
        free(d->ota);
    }
    free(d);
}

void api__dev_maybe_free(api_dev_t *d)
{
    if (d->attr_obs || d->rpc_obs || d->act.active || loop_timer_armed(&d->idle_timer))
        return;
    unlink_free(d->a, d);
}

void api__dev_free_all(api_shard_t *a)
{
    htab_iter_t it;
    for (htab_link_t *l = htab_iter_first(&it, &a->devs); l; l = htab_iter_next(&it))
        unlink_free(a, HTAB_ENTRY(l, api_dev_t, link));
    htab_fini(&a->devs);
}

void api__dev_drop_held(api_dev_t *d)
{
    if (!d->held)
        return;
    power_held_fini(d->held);
    free(d->held);
    d->held = NULL;
}
