/* claim.c — device claiming (§3.8).
 *
 * Claiming stores what ThingsBoard keeps for a later REST claim: the SERVER_SCOPE attribute
 * "claimingData" = {"secretKey":..,"expirationTime":..} (uplink_claim, shared with HTTP), and
 * answers 2.01 after the commit.
 */
#include "api/api_int.h"

#include "core/clock.h"
#include "core/log.h"

void api__claim(api_shard_t *a, coap_exchange_t *x, const coap_request_t *req,
                int64_t device_id)
{
    char err[160];
    store_batch_t *batch = api__batch_get(a);
    int rc = uplink_claim(&a->arena, &a->pcfg, req->payload.p, req->payload.len, device_id,
                          clock_wall_ms(), batch, err, sizeof err);
    arena_reset(&a->arena);
    if (rc < 0) {
        api__batch_put(a, batch);
        a->stats.bad_payload++;
        LOG_D("api", "device %lld: bad claim body: %s", (long long)device_id, err);
        coap_exchange_respond(x, COAP_BAD_REQUEST, COAP_CF_NONE, NULL, 0);
        return;
    }
    api__submit_then_answer(a, x, device_id, batch);
}
