/* api.c — the shard's device API: engine callbacks, request dispatch, identity, hub events.
 *
 * Order for every request (spec §1.2, STYLE.md §2.4): route (pure) -> method rules -> identity
 * (DTLS certificate identity wins over a token in the path; unknown/missing -> 4.01) ->
 * activity -> the feature handler, which parses the payload only now: authentication comes
 * before payload parsing, so a bad token with a bad body is 4.01.
 *
 * Tokens are never logged; only device ids are.
 */
#include "api/api_int.h"

#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"

#include <stdlib.h>
#include <string.h>

void api_cfg_default(api_cfg_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    coap_engine_cfg_default(&cfg->engine);
    cfg->type_cast = true;
    cfg->max_string_len = 0;
    cfg->max_json_depth = 32;
    cfg->inactivity_timeout_ms = 600000; /* TB state.defaultInactivityTimeoutInSec = 600 */
    cfg->activity_report_ms = 3000;      /* TB transport.sessions.report_timeout = 3 s */
    cfg->client_rpc_timeout_ms = 10000;
}

int api__resp_cf(const coap_request_t *req)
{
    return req->content_format != COAP_CF_NONE ? req->content_format : COAP_CF_JSON;
}

static void life_unref(api_life_t *l)
{
    if (--l->refs == 0)
        free(l);
}

/* Free pendings kept for reuse: enough for the commits in flight of a busy shard; a burst
 * beyond it gives its extra memory back. */
#define API_PENDING_KEEP 8192

/* Every API_POOL_TRIM_MS the pools give back what the period did not need: the entries
 * below its low-water mark were never taken, so a burst's extra memory returns within two
 * periods of the load dropping (issue #5: RSS back near its start once devices leave). */
#define API_POOL_TRIM_MS 10000

static void pools_trim(loop_t *loop, void *arg)
{
    (void)loop;
    api_shard_t *a = arg;
    for (size_t i = 0; i < a->batch_pool_low && a->n_batch_pool; i++)
        store_batch_free(a->batch_pool[--a->n_batch_pool]);
    if (a->n_batch_pool == 0) {
        free(a->batch_pool);
        a->batch_pool = NULL;
        a->cap_batch_pool = 0;
    }
    for (size_t i = 0; i < a->pending_low && a->pending_free; i++) {
        api_pending_t *p = a->pending_free;
        a->pending_free = p->next;
        a->n_pending_free--;
        free(p);
    }
    a->batch_pool_low = a->n_batch_pool;
    a->pending_low = a->n_pending_free;
    loop_timer_arm(a->loop, &a->trim_timer, API_POOL_TRIM_MS);
}

store_batch_t *api__batch_get(api_shard_t *a)
{
    if (a->n_batch_pool) {
        store_batch_t *b = a->batch_pool[--a->n_batch_pool];
        if (a->n_batch_pool < a->batch_pool_low)
            a->batch_pool_low = a->n_batch_pool;
        return b;
    }
    a->batch_pool_low = 0;
    return store_batch_new();
}

/* Keeps an emptied batch for the next request, or frees it when the pool is full. */
static void batch_put(api_shard_t *a, store_batch_t *b)
{
    if (a->n_batch_pool == API_PENDING_KEEP) {
        store_batch_free(b);
        return;
    }
    if (a->n_batch_pool == a->cap_batch_pool) { /* grows during warm-up only */
        a->cap_batch_pool = a->cap_batch_pool ? a->cap_batch_pool * 2 : 64;
        a->batch_pool = xrealloc(a->batch_pool, a->cap_batch_pool * sizeof *a->batch_pool);
    }
    store_batch_reset(b);
    a->batch_pool[a->n_batch_pool++] = b;
}

/* Store completion: runs on the shard loop (or after it stopped, from loop_free/drain). */
static void submit_done(void *arg, int status, store_batch_t *b)
{
    api_pending_t *p = arg;
    api_shard_t *a = p->life->a;
    if (status == 0) {
        coap_exchange_respond(p->x, COAP_CREATED, COAP_CF_NONE, NULL, 0);
    } else {
        if (a) {
            a->stats.store_failures++;
            LOG_W("api", "store commit for device %lld failed: %s", (long long)p->device_id,
                  err_str(status));
        }
        coap_exchange_respond(p->x, api__code_for_err(status), COAP_CF_NONE, NULL, 0);
    }
    life_unref(p->life);
    if (a && b)
        batch_put(a, b);
    else
        store_batch_free(b);
    if (a && a->n_pending_free < API_PENDING_KEEP) {
        p->next = a->pending_free;
        a->pending_free = p;
        a->n_pending_free++;
    } else {
        free(p); /* the shard is gone (or keeps enough): nobody would reuse it */
    }
}

void api__submit_then_answer(api_shard_t *a, coap_exchange_t *x, int64_t device_id,
                             store_batch_t *b)
{
    if (store_batch_len(b) == 0) { /* nothing to make durable, e.g. telemetry {} */
        batch_put(a, b);
        coap_exchange_respond(x, COAP_CREATED, COAP_CF_NONE, NULL, 0);
        return;
    }
    api_pending_t *p = a->pending_free;
    if (p) {
        a->pending_free = p->next;
        a->n_pending_free--;
        if (a->n_pending_free < a->pending_low)
            a->pending_low = a->n_pending_free;
    } else {
        p = xmalloc(sizeof *p);
    }
    p->next = NULL;
    p->life = a->life;
    p->life->refs++;
    p->x = x;
    p->device_id = device_id;
    store_submit_keep(a->store, b, a->loop, submit_done, p);
}

/* §1.2 device identification. Returns the device id or 0. */
static int64_t identify(api_shard_t *a, const coap_request_t *req, const api_route_t *r)
{
    if (req->peer && req->peer->cert_device_id != 0)
        return req->peer->cert_device_id; /* the token in the path, if any, is ignored */
    if (!r->has_token)
        return 0;
    return registry_find_token(a->reg, r->token.p, r->token.len);
}

static void on_request(void *app, coap_exchange_t *x, const coap_request_t *req)
{
    api_shard_t *a = app;
    api_route_t r;
    api_route_parse(req->path, req->n_path, &r);
    uint8_t code;
    api_action_t act = api_route_action(&r, req->method, req->has_observe, req->observe, &code);
    if (act == API_ACT_ERROR) {
        coap_exchange_respond(x, code, COAP_CF_NONE, NULL, 0);
        return;
    }
    if (act == API_ACT_PROVISION) {
        api__provision(a, x, req);
        return;
    }
    int64_t dev;
    if (act == API_ACT_OTA) {
        /* §3.10: token only (a certificate identity does not help here, as in TB); no package
         * store exists yet, so a known device gets 4.04 "no package assigned". */
        dev = registry_find_token(a->reg, r.token.p, r.token.len);
        if (dev)
            api__activity_request(a, dev, req->peer);
        else
            a->stats.unauthorized++;
        coap_exchange_respond(x, dev ? COAP_NOT_FOUND : COAP_UNAUTHORIZED, COAP_CF_NONE, NULL, 0);
        return;
    }
    dev = identify(a, req, &r);
    if (!dev) {
        a->stats.unauthorized++;
        coap_exchange_respond(x, COAP_UNAUTHORIZED, COAP_CF_NONE, NULL, 0);
        return;
    }
    api__activity_request(a, dev, req->peer);
    switch (act) {
    case API_ACT_TELEMETRY: api__telemetry_post(a, x, req, dev); break;
    case API_ACT_ATTR_POST: api__attributes_post(a, x, req, dev); break;
    case API_ACT_ATTR_GET: api__attributes_get(a, x, req, dev); break;
    case API_ACT_ATTR_SUB: api__attributes_subscribe(a, x, req, dev); break;
    case API_ACT_RPC_SUB: api__rpc_subscribe(a, x, req, dev); break;
    case API_ACT_ATTR_UNSUB:
    case API_ACT_RPC_UNSUB:
        /* The engine already ended the relation (Observe=1, same token); TB answers 2.02. */
        coap_exchange_respond(x, COAP_DELETED, COAP_CF_NONE, NULL, 0);
        break;
    case API_ACT_RPC_REPLY: api__rpc_reply(a, x, req, dev, r.request_id); break;
    case API_ACT_CLIENT_RPC: api__client_rpc(a, x, req, dev); break;
    case API_ACT_CLAIM: api__claim(a, x, req, dev); break;
    default: coap_exchange_respond(x, COAP_BAD_REQUEST, COAP_CF_NONE, NULL, 0); break;
    }
}

static void on_observe_end(void *app, coap_observer_t *obs, void *obs_data, coap_obs_end_t why)
{
    (void)app;
    api_dev_t *d = obs_data;
    if (d->attr_obs == obs) {
        d->attr_obs = NULL;
        api__activity_observations(d, -1);
    }
    if (d->rpc_obs == obs) {
        d->rpc_obs = NULL;
        api__activity_observations(d, -1);
    }
    if (why == COAP_OBS_END_TIMEOUT || why == COAP_OBS_END_RESET)
        api__activity_lost(d);
    api__dev_maybe_free(d);
}

static void on_notify_result(void *app, void *obs_data, void *cookie, bool acked)
{
    (void)obs_data;
    api__rpc_notify_result(app, cookie, acked);
}

api_shard_t *api_shard_new(loop_t *loop, store_t *store, registry_t *reg, hub_t *hub,
                           const api_cfg_t *cfg)
{
    api_shard_t *a = xcalloc(1, sizeof *a);
    a->loop = loop;
    a->store = store;
    a->reg = reg;
    a->hub = hub;
    if (cfg)
        a->cfg = *cfg;
    else
        api_cfg_default(&a->cfg);
    a->pcfg = (values_cfg_t){.type_cast = a->cfg.type_cast,
                             .max_string_len = a->cfg.max_string_len,
                             .max_depth = a->cfg.max_json_depth,
                             .max_bytes = a->cfg.engine.max_body};
    arena_init(&a->arena, 0);
    loop_timer_init(&a->trim_timer, pools_trim, a);
    loop_timer_arm(loop, &a->trim_timer, API_POOL_TRIM_MS);
    a->life = xcalloc(1, sizeof *a->life);
    a->life->refs = 1;
    a->life->a = a;
    coap_engine_ops_t ops = {.on_request = on_request,
                             .on_observe_end = on_observe_end,
                             .on_notify_result = on_notify_result};
    a->engine = coap_engine_new(loop, &a->cfg.engine, &ops, a);
    if (!a->engine) {
        api_shard_free(a);
        return NULL;
    }
    return a;
}

void api_shard_free(api_shard_t *a)
{
    if (!a)
        return;
    a->freeing = true;
    /* Ends every observation first (RPCs in flight go back to the hub as undelivered) while
     * the device table still exists for the callbacks. */
    coap_engine_free(a->engine);
    a->engine = NULL;
    api__dev_free_all(a);
    a->life->a = NULL;
    life_unref(a->life);
    loop_timer_cancel(a->loop, &a->trim_timer);
    while (a->pending_free) {
        api_pending_t *p = a->pending_free;
        a->pending_free = p->next;
        free(p);
    }
    while (a->n_batch_pool)
        store_batch_free(a->batch_pool[--a->n_batch_pool]);
    free(a->batch_pool);
    arena_fini(&a->arena);
    free(a);
}

coap_engine_t *api_shard_engine(api_shard_t *a) { return a->engine; }

void api_shard_on_hub_event(void *ctx, const hub_event_t *ev)
{
    api_shard_t *a = ctx;
    if (a->freeing)
        return;
    switch (ev->type) {
    case HUB_EV_SHARED_UPDATED:
    case HUB_EV_SHARED_DELETED:
        if (ev->json)
            api__attributes_notify(a, ev->device_id, ev->json);
        break;
    case HUB_EV_CREDENTIALS_CHANGED:
    case HUB_EV_DEVICE_DELETED: {
        /* §3.4: both subscriptions are cancelled with 2.02. Each cancel may free d. */
        api_dev_t *d = api__dev_find(a, ev->device_id);
        if (d && d->attr_obs)
            coap_observer_cancel(d->attr_obs, COAP_DELETED);
        d = api__dev_find(a, ev->device_id);
        if (d && d->rpc_obs)
            coap_observer_cancel(d->rpc_obs, COAP_DELETED);
        d = api__dev_find(a, ev->device_id);
        if (d && ev->type == HUB_EV_DEVICE_DELETED) {
            /* A deleted device gets no more activity attributes written. The hub dropped its
             * status entry when it published the deletion, so nothing is reported. */
            loop_timer_cancel(a->loop, &d->idle_timer);
            d->active = false;
            api__dev_maybe_free(d);
        }
        break;
    }
    case HUB_EV_RPC_PENDING:
        api__rpc_pump(a, ev->device_id);
        break;
    }
}
