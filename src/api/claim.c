/* claim.c — device claiming (§3.8).
 *
 * Claiming stores what ThingsBoard keeps for a later REST claim: the SERVER_SCOPE attribute
 * "claimingData" = {"secretKey":..,"expirationTime":..}, and answers 2.01 after the commit.
 */
#include "api/api_int.h"

#include "core/clock.h"
#include "core/log.h"
#include "values/buf.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* TB security.claim.duration default: one day. */
#define API_CLAIM_DEFAULT_MS 86400000LL

void api__claim(api_shard_t *a, coap_exchange_t *x, const coap_request_t *req,
                int64_t device_id)
{
    char err[160];
    const char *secret;
    int64_t duration;
    if (api_payload_claim(&a->arena, &a->pcfg, req->payload.p, req->payload.len, &secret,
                          &duration, err, sizeof err) < 0) {
        arena_reset(&a->arena);
        a->stats.bad_payload++;
        LOG_D("api", "device %lld: bad claim body: %s", (long long)device_id, err);
        coap_exchange_respond(x, COAP_BAD_REQUEST, COAP_CF_NONE, NULL, 0);
        return;
    }
    if (duration <= 0)
        duration = API_CLAIM_DEFAULT_MS;
    int64_t now = clock_wall_ms();
    int64_t expires = duration > INT64_MAX - now ? INT64_MAX : now + duration;
    values_buf_t b = {0};
    values_buf_puts(&b, "{\"secretKey\":");
    values_buf_json_str(&b, secret, strlen(secret));
    values_buf_printf(&b, ",\"expirationTime\":%" PRId64 "}", expires);
    arena_reset(&a->arena); /* secret was copied into b */
    store_kv_t kv = {.key = "claimingData", .type = STORE_JSON, .s = b.p, .ts = now};
    store_batch_t *batch = api__batch_get(a);
    store_batch_attr(batch, device_id, SCOPE_SERVER, &kv);
    values_buf_fini(&b);
    api__submit_then_answer(a, x, device_id, batch);
}
