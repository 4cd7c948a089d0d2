/* activity.c — device connectivity attributes (spec §9): active, lastActivityTime,
 * lastConnectTime, lastDisconnectTime, written as SERVER_SCOPE attributes.
 *
 * Only requests count as activity. Unlike ThingsBoard (issue #12406, which reports activity
 * every 3 s while any subscription exists), an observing device that stops sending requests
 * becomes inactive after inactivity_timeout_ms, and an observation that ends because the
 * device stopped acknowledging (TIMEOUT) or reset a notification (RESET) is taken as a
 * disconnect at once unless the device sent a request within the last ACK_TIMEOUT.
 *
 * What a request or a quiet period writes and reports is uplink's (uplink/uplink.h), shared
 * with the HTTP device API; this file decides when (the shard's idle timer, lost relations).
 * Writes go through ordinary store batches without waiting for the commit: nobody is
 * answered from them, and losing one in a crash only makes lastActivityTime a little older.
 * lastActivityTime is written at most every activity_report_ms per device, so a chatty
 * device does not double its write load.
 *
 * The hub's live status table (hub.h) hears of the same moments — an active flip, the
 * throttled lastActivityTime write — plus a switch of transport (CoAP/CoAPS) and every
 * observation opened or ended; nothing else, so a request normally costs no hub lock.
 */
#include "api/api_int.h"

#include "core/clock.h"

#include <stdlib.h>

static void ignore_done(void *arg, int status)
{
    (void)arg;
    (void)status;
}

static void go_inactive(api_dev_t *d)
{
    api_shard_t *a = d->a;
    loop_timer_cancel(a->loop, &d->idle_timer);
    if (!d->act.active)
        return;
    if (a->freeing) {
        d->act.active = false;
        return;
    }
    hub_status_report_t rep;
    store_batch_t *b = uplink_activity_inactive(&d->act, d->id, clock_wall_ms(), &rep);
    hub_status_report(a->hub, d->id, &rep);
    store_submit(a->store, b, NULL, ignore_done, NULL);
}

static void idle_fired(loop_t *loop, void *arg)
{
    api_dev_t *d = arg;
    int64_t idle = loop_now_ms(loop) - d->last_request_ms;
    if (idle < d->a->cfg.inactivity_timeout_ms) { /* requests came since it was armed */
        loop_timer_arm(loop, &d->idle_timer, d->a->cfg.inactivity_timeout_ms - idle);
        return;
    }
    go_inactive(d);
    api__dev_maybe_free(d);
}

bool api__activity_request(api_shard_t *a, int64_t device_id, const transport_peer_t *peer)
{
    api_dev_t *d = api__dev_get(a, device_id);
    hub_transport_t t = peer && peer->kind == TRANSPORT_DTLS ? HUB_TRANSPORT_COAPS
                                                             : HUB_TRANSPORT_COAP;
    int64_t mono = loop_now_ms(a->loop);
    d->last_request_ms = mono;
    power_uplink(&d->pstate, mono); /* spec §4: every request is an uplink */
    if (!d->idle_timer.cb)
        loop_timer_init(&d->idle_timer, idle_fired, d);
    /* Armed once per quiet period, not moved on every request (a heap operation that showed
     * in profiles at 60k requests/s): when it fires, idle_fired sleeps again for the rest of
     * the timeout if a request came meanwhile. */
    if (!loop_timer_armed(&d->idle_timer))
        loop_timer_arm(a->loop, &d->idle_timer, a->cfg.inactivity_timeout_ms);
    hub_status_report_t rep;
    store_batch_t *b = uplink_activity_request(&d->act, device_id, t, mono, clock_wall_ms(),
                                               a->cfg.activity_report_ms, &rep);
    if (b)
        store_submit(a->store, b, NULL, ignore_done, NULL);
    if (rep.transport || rep.active_delta || rep.activity_ms)
        hub_status_report(a->hub, device_id, &rep);
    return d->held || d->rpc_held;
}

void api__activity_observations(api_dev_t *d, int delta)
{
    hub_status_report(d->a->hub, d->id, &(hub_status_report_t){.obs_delta = delta});
}

void api__activity_lost(api_dev_t *d)
{
    api_shard_t *a = d->a;
    if (a->freeing || !d->act.active)
        return;
    if (loop_now_ms(a->loop) - d->last_request_ms < a->cfg.engine.ack_timeout_ms)
        return; /* it is still talking to us: the relation alone was lost */
    go_inactive(d);
}
