/* telemetry.c — POST telemetry (§3.1) and POST client attributes (§3.2).
 *
 * Invariant: 2.01 is sent only from the store's completion, after the batch holding the
 * points has committed ("an acknowledged point is never lost"). A payload that does not
 * parse is 4.00 before anything is queued. Client attributes do not notify observers: only
 * SHARED changes do (§3.4), and those come from the REST side through the hub.
 * What a body means (the points, their typing and timestamps) is uplink's, shared with the
 * HTTP device API; this file answers. The parsed items live in the shard's arena: store_batch_* copy them, then the arena is
 * reset before anything else runs (also on the error path).
 */
#include "api/api_int.h"

#include "core/clock.h"
#include "core/log.h"

void api__telemetry_post(api_shard_t *a, coap_exchange_t *x, const coap_request_t *req,
                         int64_t device_id)
{
    char err[160];
    /* Server time is taken once per message, as TB stamps the message when it parses it. */
    store_batch_t *b = api__batch_get(a);
    if (uplink_telemetry(&a->arena, &a->pcfg, req->payload.p, req->payload.len, device_id,
                         clock_wall_ms(), b, err, sizeof err) < 0) {
        arena_reset(&a->arena);
        api__batch_put(a, b);
        a->stats.bad_payload++;
        LOG_D("api", "device %lld: bad telemetry: %s", (long long)device_id, err);
        coap_exchange_respond(x, COAP_BAD_REQUEST, COAP_CF_NONE, NULL, 0);
        return;
    }
    arena_reset(&a->arena);
    api__submit_then_answer(a, x, device_id, b);
}

void api__attributes_post(api_shard_t *a, coap_exchange_t *x, const coap_request_t *req,
                          int64_t device_id)
{
    char err[160];
    store_batch_t *b = api__batch_get(a);
    if (uplink_attributes(&a->arena, &a->pcfg, req->payload.p, req->payload.len, device_id,
                          clock_wall_ms(), b, err, sizeof err) < 0) {
        arena_reset(&a->arena);
        api__batch_put(a, b);
        a->stats.bad_payload++;
        LOG_D("api", "device %lld: bad attributes: %s", (long long)device_id, err);
        coap_exchange_respond(x, COAP_BAD_REQUEST, COAP_CF_NONE, NULL, 0);
        return;
    }
    arena_reset(&a->arena);
    api__submit_then_answer(a, x, device_id, b);
}
