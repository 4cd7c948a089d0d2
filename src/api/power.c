/* power.c — downlinks to devices in PSM or eDRX (spec §4), on the shard that holds them.
 *
 * The rules are device/power.h's; this file applies them to the shard's device entries.
 * A device's settings are resolved at its first downlink (power_cache: one store read per
 * device and profile, then memory) and again only when the cache's generation moves. A
 * device that is never sent anything never costs a lookup; a request costs only the uplink
 * stamp activity.c writes into d->pstate, and a branch on d->held / d->rpc_held.
 *
 * Held back while a device sleeps: attribute notifications, merged into one per key (later
 * wins; a deletion drops a held update) and sent after the next uplink; RPCs, which simply
 * stay in the hub (hub_rpc_take is not called) until the device wakes — ThingsBoard's device
 * actor keeps them the same way and re-sends on "awake".
 *
 * Awake / asleep (DefaultCoapClientContext.awake/asleep): every request is an uplink, and so
 * is the ACK of a CON notification; a CON notification never acknowledged marks the device
 * asleep until its next uplink (that also ends the relation, RFC 7641 §4.5).
 */
#include "api/api_int.h"

#include "core/log.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

char api__power_cookie;

/* How long a device's settings are not looked up again after the store failed to answer:
 * the database is down or restarting; meanwhile the device is treated as always reachable. */
#define API_POWER_RETRY_MS 5000

void api__power_refresh(api_dev_t *d)
{
    api_shard_t *a = d->a;
    power_cache_t *c = hub_power(a->hub);
    uint64_t gen = power_cache_gen(c);
    if (d->power_gen == gen)
        return;
    int64_t now = loop_now_ms(a->loop);
    if (d->power_retry_ms && now < d->power_retry_ms)
        return;
    power_raw_t dev, prof;
    int rc = power_cache_get(c, d->id, &dev, &prof);
    if (rc < 0 && rc != -ENOENT) {
        api__store_failed(a, d->id, "power settings read", rc);
        d->power_retry_ms = now + API_POWER_RETRY_MS;
        memset(&d->power, 0, sizeof d->power);
        return;
    }
    d->power_retry_ms = 0;
    power_resolve(&dev, &prof, a->cfg.psm_activity_timer_ms, a->cfg.paging_window_ms, &d->power);
    d->power_gen = gen;
}

static bool may_send(api_dev_t *d)
{
    return power_may_send(&d->power, &d->pstate, loop_now_ms(d->a->loop));
}

static void sent(api_dev_t *d)
{
    power_sent(&d->power, &d->pstate, loop_now_ms(d->a->loop));
}

char *api__power_held_take(api_dev_t *d)
{
    char *body = d->held ? power_held_take(d->held) : NULL;
    api__dev_drop_held(d); /* back to the plain path until the device sleeps again */
    if (body)
        sent(d);
    return body;
}

bool api__power_attrs(api_dev_t *d, bool deleted, const char *json, char **flush)
{
    *flush = NULL;
    api__power_refresh(d);
    if (!power_saving(&d->power) && !d->held)
        return false;
    if (!d->held && may_send(d)) {
        sent(d);
        return false;
    }
    /* Asleep, or earlier updates are still held: merge, so the device sees one notification
     * with the newest values and no update overtakes an older one. */
    if (!d->held)
        d->held = xcalloc(1, sizeof *d->held);
    size_t len = strlen(json);
    int rc = deleted ? power_held_delete(d->held, json, len)
                     : power_held_update(d->held, json, len);
    if (rc < 0)
        LOG_W("api", "device %lld: attribute update not held (not a JSON object)",
              (long long)d->id);
    if (!power_saving(&d->power) || may_send(d))
        *flush = api__power_held_take(d);
    else
        LOG_D("api", "device %lld: asleep, attribute update held", (long long)d->id);
    return true;
}

bool api__power_rpc_may_send(api_dev_t *d)
{
    api__power_refresh(d);
    if (!power_saving(&d->power) || may_send(d))
        return true;
    d->rpc_held = true;
    LOG_D("api", "device %lld: asleep, RPC held", (long long)d->id);
    return false;
}

void api__power_rpc_sent(api_dev_t *d)
{
    sent(d);
}

bool api__power_held_ready(api_dev_t *d)
{
    api__power_refresh(d);
    return d->held && !power_held_empty(d->held) && d->attr_obs && may_send(d);
}

int api__notify(api_dev_t *d, coap_observer_t *o, int cf, const char *body, void *cookie)
{
    api_shard_t *a = d->a;
    int64_t id = d->id;
    d->notifying = true;
    int rc = coap_observer_notify(o, COAP_CONTENT, cf, (const uint8_t *)body, strlen(body), cookie);
    d = api__dev_find(a, id); /* a failed send may have ended the relation and freed d */
    if (d)
        d->notifying = false;
    return rc;
}

void api__power_notify_result(api_dev_t *d, bool acked)
{
    /* Only a real ACK is an uplink: the engine also reports "acked" for a NON notification
     * as it sends it (inside api__notify), and "not acked" for notifications dropped because
     * the relation ended for any reason (a re-registration, too) — the device's silence is
     * told by api__power_timeout instead. */
    if (acked && !d->notifying)
        power_uplink(&d->pstate, loop_now_ms(d->a->loop));
}

void api__power_timeout(api_dev_t *d)
{
    power_asleep(&d->pstate);
}
