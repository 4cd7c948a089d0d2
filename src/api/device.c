/* device.c — the shard's per-device state table (api_dev_t by device id).
 *
 * Invariant: an entry exists only while something needs it — a live observation on this
 * shard, or the device being marked active (its inactivity timer armed). Callers that may
 * have caused an entry to be freed (cancelling an observer ends it synchronously) look the
 * device up again instead of keeping the pointer.
 */
#include "api/api_int.h"

#include "core/xmalloc.h"

#include <stdlib.h>

static size_t slot(const api_shard_t *a, int64_t id)
{
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ULL;
    return (size_t)(h >> 32) & (a->n_buckets - 1);
}

api_dev_t *api__dev_find(api_shard_t *a, int64_t id)
{
    if (!a->n_buckets)
        return NULL;
    for (api_dev_t *d = a->buckets[slot(a, id)]; d; d = d->next)
        if (d->id == id)
            return d;
    return NULL;
}

static void grow(api_shard_t *a)
{
    size_t old_n = a->n_buckets;
    api_dev_t **old = a->buckets;
    a->n_buckets = old_n ? old_n * 2 : 64;
    a->buckets = xcalloc(a->n_buckets, sizeof *a->buckets);
    for (size_t i = 0; i < old_n; i++) {
        for (api_dev_t *d = old[i], *next; d; d = next) {
            next = d->next;
            size_t s = slot(a, d->id);
            d->next = a->buckets[s];
            a->buckets[s] = d;
        }
    }
    free(old);
}

api_dev_t *api__dev_get(api_shard_t *a, int64_t id)
{
    api_dev_t *d = api__dev_find(a, id);
    if (d)
        return d;
    if (a->n_devs >= a->n_buckets)
        grow(a);
    d = xcalloc(1, sizeof *d);
    d->a = a;
    d->id = id;
    d->attr_cf = d->rpc_cf = COAP_CF_JSON;
    size_t s = slot(a, id);
    d->next = a->buckets[s];
    a->buckets[s] = d;
    a->n_devs++;
    return d;
}

static void unlink_free(api_shard_t *a, api_dev_t *d)
{
    for (api_dev_t **pp = &a->buckets[slot(a, d->id)]; *pp; pp = &(*pp)->next) {
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    }
    loop_timer_cancel(a->loop, &d->idle_timer);
    a->n_devs--;
    free(d);
}

void api__dev_maybe_free(api_dev_t *d)
{
    if (d->attr_obs || d->rpc_obs || d->active || loop_timer_armed(&d->idle_timer))
        return;
    unlink_free(d->a, d);
}

void api__dev_free_all(api_shard_t *a)
{
    for (size_t i = 0; i < a->n_buckets; i++) {
        while (a->buckets[i])
            unlink_free(a, a->buckets[i]);
    }
    free(a->buckets);
    a->buckets = NULL;
    a->n_buckets = 0;
}
