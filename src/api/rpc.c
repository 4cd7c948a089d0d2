/* rpc.c — server-side RPC subscription and delivery (§3.5), RPC replies (§3.6) and the
 * built-in client-side RPC (§3.7).
 *
 * Delivery: RPCs wait in the hub until a shard with an RPC observer of the device takes them.
 * Each notification carries a cookie (device, request id); the engine reports it exactly once
 * — acknowledged (or sent as NON) -> hub_rpc_delivered, given up or dropped because the
 * relation ended -> hub_rpc_undelivered, which puts the RPC back in the hub's queue for the
 * next subscription. So "observation ended with RPCs in flight" needs no list of our own.
 *
 * Client-side RPC: ThingsBoard hands it to the rule engine and, with the default rule chain,
 * never answers (issue #1686). We answer getCurrentTime ourselves and reject every other
 * method with 4.04 {"error":"Unsupported client-side RPC method: <m>"} — a documented
 * deviation, better than leaving the device waiting for a response that never comes.
 */
#include "api/api_int.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "values/buf.h"

#include <stdlib.h>
#include <string.h>

static void pump(api_shard_t *a, int64_t device_id);

typedef struct rpc_cookie {
    int64_t device_id;
    int64_t request_id;
} rpc_cookie_t;

void api__rpc_subscribe(api_shard_t *a, coap_exchange_t *x, const coap_request_t *req,
                        int64_t device_id)
{
    api_dev_t *d = api__dev_find(a, device_id);
    if (d && d->rpc_obs)
        coap_observer_cancel(d->rpc_obs, COAP_DELETED); /* one RPC subscription per device */
    d = api__dev_get(a, device_id);
    coap_observer_t *o = coap_exchange_observe(x, d);
    if (o) {
        d->rpc_obs = o;
        d->rpc_seq = req->owner_seq;
        api__activity_observations(d, +1);
        d->rpc_cf = api__resp_cf(req);
    }
    /* §3.5: 2.03 Valid, no payload, Observe=0; the relation is live once this is sent. */
    coap_exchange_respond(x, COAP_VALID, COAP_CF_NONE, NULL, 0);
    if (o)
        api__rpc_pump(a, device_id);
    else
        api__dev_maybe_free(d);
}

void api__rpc_pump(api_shard_t *a, int64_t device_id)
{
    api_dev_t *d0 = api__dev_find(a, device_id);
    if (a->freeing || !d0 || !d0->rpc_obs || d0->pumping)
        return; /* the outer pump keeps taking */
    d0->pumping = true;
    pump(a, device_id);
    /* The entry lives on while its RPC observer does; if the relation ended, it may be gone. */
    api_dev_t *d = api__dev_find(a, device_id);
    if (d)
        d->pumping = false;
}

static void pump(api_shard_t *a, int64_t device_id)
{
    for (;;) {
        /* Re-check every round: a NON notification reports its result synchronously, and a
         * failed send may end the relation. */
        api_dev_t *d = api__dev_find(a, device_id);
        if (!d || !d->rpc_obs)
            return;
        /* A sleeping PSM / eDRX device: the RPC stays pending in the hub until it wakes. */
        if (!api__power_rpc_may_send(d))
            return;
        hub_rpc_t r;
        if (!hub_rpc_take(a->hub, device_id, &r))
            return;
        api__power_rpc_sent(d);
        rpc_cookie_t *c = xmalloc(sizeof *c);
        c->device_id = device_id;
        c->request_id = r.request_id;
        int rc = api__notify(d, d->rpc_obs, d->rpc_cf, r.body, c);
        free(r.body);
        if (rc < 0) {
            /* Queue full: give it back and stop, or we would take the same RPC forever. */
            hub_rpc_undelivered(a->hub, device_id, c->request_id);
            free(c);
            return;
        }
    }
}

void api__rpc_notify_result(api_shard_t *a, void *cookie, bool acked)
{
    rpc_cookie_t *c = cookie;
    if (!c)
        return;
    int64_t dev = c->device_id;
    if (acked)
        hub_rpc_delivered(a->hub, dev, c->request_id);
    else
        hub_rpc_undelivered(a->hub, dev, c->request_id);
    free(c);
    /* Room in the peer's queue again: RPCs left pending by a full queue go out now. */
    if (acked)
        api__rpc_pump(a, dev);
}

void api__rpc_reply(api_shard_t *a, coap_exchange_t *x, const coap_request_t *req,
                    int64_t device_id, int64_t request_id)
{
    char err[160];
    int rc = uplink_rpc_reply(a->hub, &a->arena, &a->pcfg, req->payload.p, req->payload.len,
                              device_id, request_id, err, sizeof err);
    arena_reset(&a->arena); /* the hub copied the body */
    if (rc < 0) {
        /* TB throws and stays silent here; we answer 4.00 (spec §3.6 recommendation). */
        a->stats.bad_payload++;
        LOG_D("api", "device %lld: bad RPC reply: %s", (long long)device_id, err);
        coap_exchange_respond(x, COAP_BAD_REQUEST, COAP_CF_NONE, NULL, 0);
        return;
    }
    /* Unknown or stale ids are still 2.01, as in TB. */
    coap_exchange_respond(x, COAP_CREATED, COAP_CF_NONE, NULL, 0);
}

void api__client_rpc(api_shard_t *a, coap_exchange_t *x, const coap_request_t *req,
                     int64_t device_id)
{
    char err[160];
    values_buf_t b = {0};
    int rc = uplink_client_rpc(&a->arena, &a->pcfg, req->payload.p, req->payload.len,
                               clock_wall_ms(), &b, err, sizeof err);
    arena_reset(&a->arena); /* the method was copied into b */
    if (rc < 0) {
        a->stats.bad_payload++;
        LOG_D("api", "device %lld: bad client RPC: %s", (long long)device_id, err);
        coap_exchange_respond(x, COAP_BAD_REQUEST, COAP_CF_NONE, NULL, 0);
        return;
    }
    coap_exchange_respond(x, rc == 0 ? COAP_CONTENT : COAP_NOT_FOUND, api__resp_cf(req),
                          (const uint8_t *)b.p, b.len);
    values_buf_fini(&b);
}
