/* telemetry.c — POST telemetry (§3.1) and POST client attributes (§3.2).
 *
 * Invariant: 2.01 is sent only from the store's completion, after the batch holding the
 * points has committed ("an acknowledged point is never lost"). A payload that does not
 * parse is 4.00 before anything is queued. Client attributes do not notify observers: only
 * SHARED changes do (§3.4), and those come from the REST side through the hub.
 * The parsed items live in the shard's arena: store_batch_* copy them, then the arena is
 * reset before anything else runs (also on the error path).
 */
#include "api/api_int.h"

#include "core/clock.h"
#include "core/log.h"

void api__telemetry_post(api_shard_t *a, coap_exchange_t *x, const coap_request_t *req,
                         int64_t device_id)
{
    char err[160];
    values_kvs_t kvs = {0};
    if (values_telemetry(&a->arena, &a->pcfg, req->payload.p, req->payload.len, &kvs, err,
                         sizeof err) < 0) {
        arena_reset(&a->arena);
        a->stats.bad_payload++;
        LOG_D("api", "device %lld: bad telemetry: %s", (long long)device_id, err);
        coap_exchange_respond(x, COAP_BAD_REQUEST, COAP_CF_NONE, NULL, 0);
        return;
    }
    /* Server time is taken once per message, as TB stamps the message when it parses it. */
    int64_t now = clock_wall_ms();
    store_batch_t *b = api__batch_get(a);
    for (size_t i = 0; i < kvs.n; i++) {
        store_kv_t *kv = &kvs.items[i];
        if (kv->ts == VALUES_TS_NONE)
            kv->ts = now;
        store_batch_ts(b, device_id, kv);
    }
    arena_reset(&a->arena);
    api__submit_then_answer(a, x, device_id, b);
}

void api__attributes_post(api_shard_t *a, coap_exchange_t *x, const coap_request_t *req,
                          int64_t device_id)
{
    char err[160];
    values_kvs_t kvs = {0};
    if (values_attributes(&a->arena, &a->pcfg, req->payload.p, req->payload.len, &kvs, err,
                          sizeof err) < 0) {
        arena_reset(&a->arena);
        a->stats.bad_payload++;
        LOG_D("api", "device %lld: bad attributes: %s", (long long)device_id, err);
        coap_exchange_respond(x, COAP_BAD_REQUEST, COAP_CF_NONE, NULL, 0);
        return;
    }
    int64_t now = clock_wall_ms();
    store_batch_t *b = api__batch_get(a);
    for (size_t i = 0; i < kvs.n; i++) {
        kvs.items[i].ts = now;
        store_batch_attr(b, device_id, SCOPE_CLIENT, &kvs.items[i]);
    }
    arena_reset(&a->arena);
    api__submit_then_answer(a, x, device_id, b);
}
