/* provision.c — POST /api/v1/provision over CoAP (spec §3.9): the wire side of
 * device/provision.h.
 *
 * Not authenticated: the profile's key and secret are the credentials. Answers: 2.01 with
 * {"credentialsValue":..,"credentialsType":..,"status":"SUCCESS"}; 4.00 with ThingsBoard's
 * NOT_FOUND or FAILURE body; 4.00 without a body when the request is not a provision request
 * (not JSON, key or secret missing, unknown credentialsType). ThingsBoard falls back to
 * Protobuf for a body that is not JSON; coaphub has no Protobuf profiles, so that is 4.00.
 *
 * The store calls are synchronous on the shard thread, like the attribute reads
 * (attributes.c): provisioning is rare (once per device), a few indexed reads and one small
 * transaction. A database that cannot be reached answers 5.03 with Max-Age as every other
 * device request does.
 */
#include "api/api_int.h"

#include "core/log.h"
#include "device/provision.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

void api__provision(api_shard_t *a, coap_exchange_t *x, const coap_request_t *req)
{
    char err[160];
    provision_req_t pr;
    if (provision_req_parse(&a->arena, &a->pcfg, req->payload.p, req->payload.len, &pr, err,
                            sizeof err) < 0) {
        arena_reset(&a->arena);
        a->stats.bad_payload++;
        LOG_D("api", "bad provision request: %s", err);
        coap_exchange_respond(x, COAP_BAD_REQUEST, COAP_CF_NONE, NULL, 0);
        return;
    }
    provision_result_t r;
    int rc = provision_device(a->store, a->reg, &pr, &r);
    arena_reset(&a->arena); /* the request (and its secret) lived there */
    if (rc < 0) {
        api__store_failed(a, 0, "provisioning", rc);
        api__respond_err(x, rc);
        return;
    }
    if (r.status == PROVISION_SUCCESS)
        LOG_I("api", "device %lld provisioned (%s)", (long long)r.device_id,
              store_cred_type_name(r.cred_type));
    else
        LOG_I("api", "provisioning refused: %s", r.why);
    char *body = provision_result_json(&r);
    size_t len = strlen(body);
    coap_exchange_respond(x, r.status == PROVISION_SUCCESS ? COAP_CREATED : COAP_BAD_REQUEST,
                          api__resp_cf(req), (const uint8_t *)body, len);
    OPENSSL_cleanse(body, len); /* it may hold the device's token */
    free(body);
    provision_result_fini(&r);
}
