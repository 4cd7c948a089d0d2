/* provision.c — POST /api/v1/provision over CoAP (spec §3.9): the wire side of
 * device/provision.h.
 *
 * Not authenticated: the profile's key and secret are the credentials. Answers: 2.01 with
 * {"credentialsValue":..,"credentialsType":..,"status":"SUCCESS"}; 4.00 with ThingsBoard's
 * NOT_FOUND or FAILURE body; 4.00 without a body when the request is not a provision request
 * (not JSON, key or secret missing, unknown credentialsType). ThingsBoard falls back to
 * Protobuf for a body that is not JSON; coaphub has no Protobuf profiles, so that is 4.00.
 *
 * The store calls run on the provision worker's thread (device/provision.h), because anyone
 * can send this request: the shard parses, hands the request over and answers from the
 * completion posted back to its loop, or answers 5.03 with Max-Age at once when the worker's
 * queue is full. The exchange stays valid until it is answered, also if the shard is freed
 * meanwhile (the life record, as in submit.c). A database that cannot be reached answers
 * 5.03 as every other device request does.
 */
#include "api/api_int.h"

#include "core/log.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

typedef struct prov_wait {
    api_life_t *life;
    coap_exchange_t *x;
    int cf;
} prov_wait_t;

static void answer(api_shard_t *a, coap_exchange_t *x, int cf, int rc, const provision_result_t *r)
{
    if (rc < 0) {
        if (a)
            api__store_failed(a, 0, "provisioning", rc);
        api__respond_err(x, rc);
        return;
    }
    if (r->status == PROVISION_SUCCESS)
        LOG_I("api", "device %lld provisioned (%s)", (long long)r->device_id,
              store_cred_type_name(r->cred_type));
    else
        LOG_I("api", "provisioning refused: %s", r->why);
    char *body = provision_result_json(r);
    size_t len = strlen(body);
    coap_exchange_respond(x, r->status == PROVISION_SUCCESS ? COAP_CREATED : COAP_BAD_REQUEST, cf,
                          (const uint8_t *)body, len);
    OPENSSL_cleanse(body, len); /* it may hold the device's token */
    free(body);
}

/* The worker's completion, on the shard's loop (or after it stopped, from loop_drain). */
static void done(void *arg, int rc, const provision_result_t *r)
{
    prov_wait_t *w = arg;
    answer(w->life->a, w->x, w->cf, rc, r);
    api__life_unref(w->life);
    free(w);
}

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
    if (!a->prov) {
        provision_result_t r;
        int rc = provision_device(a->store, a->reg, a->hub, &pr, &r);
        arena_reset(&a->arena); /* the request (and its secret) lived there */
        answer(a, x, api__resp_cf(req), rc, &r);
        provision_result_fini(&r);
        return;
    }
    prov_wait_t *w = xmalloc(sizeof *w);
    *w = (prov_wait_t){.life = a->life, .x = x, .cf = api__resp_cf(req)};
    int rc = provision_worker_submit(a->prov, &pr, a->loop, done, w);
    arena_reset(&a->arena); /* the worker copied what it needs */
    if (rc < 0) {
        free(w);
        LOG_D("api", "provisioning busy: %d requests waiting", PROVISION_QUEUE_MAX);
        api__respond_err(x, rc); /* -EAGAIN: 5.03 with Max-Age */
        return;
    }
    a->life->refs++;
}
