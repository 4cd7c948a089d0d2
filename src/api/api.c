/* api.c — the shard's device API: lifecycle, engine callbacks, request dispatch, identity,
 * hub events. The top of src/api: it calls the feature handlers (telemetry.c, attributes.c,
 * rpc.c, claim.c), which answer through submit.c or directly; none of them calls back here.
 *
 * Order for every request (spec §1.2, STYLE.md §2.4), in the engine's admission hook before
 * any state is kept: source-address rate limit -> route (pure) -> method rules -> identity
 * (DTLS certificate identity wins over a token in the path; unknown/missing -> 4.01) ->
 * device rate limit; then, in on_request, activity -> the feature handler, which parses the
 * payload only now: authentication comes before payload parsing, so a bad token with a bad
 * body is 4.01.
 *
 * Tokens are never logged; only device ids are.
 */
#include "api/api_int.h"

#include "core/err.h"
#include "core/log.h"
#include "core/sockaddr.h"
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
    cfg->psm_activity_timer_ms = POWER_DEFAULT_PSM_ACTIVITY_TIMER_MS;
    cfg->paging_window_ms = POWER_DEFAULT_PAGING_WINDOW_MS;
    /* Far above any device: the benchmarks reach ~2,000-9,000 requests/s per device and ~70k
     * per shard from one loopback address, a ThingsBoard device sends a few per minute. The
     * defaults are a safety net that never refuses a working client; an operator sets the
     * fleet's real rates (docs/operations.md, "Limits"). */
    cfg->rate_device = 10000;
    cfg->burst_device = 20000;
    cfg->rate_address = 100000;
    cfg->burst_address = 200000;
    cfg->rate_buckets = 16384;
}

/* Owner of a provisioning request's Block1 transfer: not a device (ids are positive), so
 * all unauthenticated uploads of a shard share one per-owner cap. */
#define API_OWNER_PROVISION (UINT64_C(1) << 63)

/* §1.2 device identification. Returns the device id or 0. req->owner_seq: the registry's
 * change count read before the token lookup (0 for a certificate's device: its DTLS session
 * ends with its credentials), which the observations it registers keep (api_dev_t). */
static int64_t identify(api_shard_t *a, coap_request_t *req, const api_route_t *r)
{
    req->owner_seq = 0;
    if (req->peer && req->peer->cert_device_id != 0)
        return req->peer->cert_device_id; /* the token in the path, if any, is ignored */
    if (!r->has_token)
        return 0;
    req->owner_seq = registry_changes(a->reg);
    return registry_find_token(a->reg, r->token.p, r->token.len);
}

/* The device sent a request (power saving, spec §4): what was held back for it while it slept
 * goes out now — the merged attribute update, then the RPCs left in the hub. */
static void power_wake(api_shard_t *a, int64_t device_id)
{
    api_dev_t *d = api__dev_find(a, device_id);
    if (d)
        api__attributes_flush_held(d);
    d = api__dev_find(a, device_id); /* a failed send may have ended the relation and freed d */
    if (d && d->rpc_held) {
        d->rpc_held = false;
        api__rpc_pump(a, device_id); /* sets rpc_held again if it is still not allowed */
    }
}

/* One token from rl for key, or false with x's Max-Age set to the wait (RFC 8516 §4). */
static bool rate_take(api_shard_t *a, ratelimit_t *rl, coap_exchange_t *x, const void *key,
                      size_t len)
{
    uint32_t wait = ratelimit_take(rl, key, len, loop_now_ms(a->loop));
    if (!wait)
        return true;
    coap_exchange_set_max_age(x, wait);
    return false;
}

/* The engine's admission hook (coap.h ops.admit), before it keeps any state for a request:
 * the source address's rate limit (before the token lookup it protects), then the route and
 * method rules and the device's identity, answered as ThingsBoard would (4.04, 4.05, 4.00,
 * 4.01) — so an upload to an unknown token is refused at block 0 and costs nothing — then
 * the device's rate limit. Admitted device requests carry the device id as req->owner. */
static uint8_t admit(void *app, coap_exchange_t *x, coap_request_t *req)
{
    api_shard_t *a = app;
    if (a->rl_address && req->peer) {
        uint8_t k[SOCKADDR_PREFIX_KEY_MAX];
        size_t n = sockaddr_prefix_key(&req->peer->addr, k);
        if (n && !rate_take(a, a->rl_address, x, k, n)) {
            a->stats.rate_limited_address++;
            return COAP_TOO_MANY_REQUESTS;
        }
    }
    api_route_t r;
    api_route_parse(req->path, req->n_path, &r);
    uint8_t code;
    api_action_t act = api_route_action(&r, req->method, req->has_observe, req->observe, &code);
    if (act == API_ACT_ERROR)
        return code;
    if (act == API_ACT_PROVISION) {
        req->owner = API_OWNER_PROVISION;
        return 0;
    }
    /* OTA downloads identify the device as every other request: a certificate identity on
     * the DTLS session wins, else the token in the path (ThingsBoard: token only, §3.10). */
    int64_t dev = identify(a, req, &r);
    if (dev <= 0) {
        a->stats.unauthorized++;
        return COAP_UNAUTHORIZED;
    }
    if (a->rl_device && !rate_take(a, a->rl_device, x, &dev, sizeof dev)) {
        a->stats.rate_limited_device++;
        return COAP_TOO_MANY_REQUESTS;
    }
    req->owner = (uint64_t)dev;
    return 0;
}

/* Only requests admit() let through arrive here: the route is valid and req->owner is the
 * device (or API_OWNER_PROVISION). */
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
    int64_t dev = (int64_t)req->owner;
    if (dev <= 0) {
        coap_exchange_respond(x, COAP_UNAUTHORIZED, COAP_CF_NONE, NULL, 0);
        return;
    }
    bool wake = api__activity_request(a, dev, req->peer);
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
    case API_ACT_OTA:
        api__ota_download(a, x, req, dev, api_route_is_software(&r));
        break;
    default: coap_exchange_respond(x, COAP_BAD_REQUEST, COAP_CF_NONE, NULL, 0); break;
    }
    /* After the handler: a new observation made by this very request gets what was held. */
    if (wake)
        power_wake(a, dev);
}

static void on_observe_end(void *app, coap_observer_t *obs, void *obs_data, coap_obs_end_t why)
{
    (void)app;
    api_dev_t *d = obs_data;
    if (d->attr_obs == obs) {
        d->attr_obs = NULL;
        api__activity_observations(d, -1);
        api__dev_drop_held(d); /* a new subscription starts from the current values */
    }
    if (d->rpc_obs == obs) {
        d->rpc_obs = NULL;
        api__activity_observations(d, -1);
    }
    if (why == COAP_OBS_END_TIMEOUT && power_saving(&d->power))
        api__power_timeout(d); /* spec §4: a CON notification never acknowledged -> asleep */
    if (why == COAP_OBS_END_TIMEOUT || why == COAP_OBS_END_RESET)
        api__activity_lost(d);
    api__dev_maybe_free(d);
}

static void on_notify_result(void *app, void *obs_data, void *cookie, bool acked)
{
    api_dev_t *d = obs_data;
    if (d && power_saving(&d->power))
        api__power_notify_result(d, acked);
    if (cookie != &api__power_cookie)
        api__rpc_notify_result(app, cookie, acked);
}

/* ---- observations across a restart (the engine's on_observer_save/restore) ---------------
 *
 * What a relation observes, as the engine stores it with the DTLS session: kind u8 (1 shared
 * attributes, 2 server-side RPC) | device id i64 | Content-Format i32, big-endian. Both kinds
 * are the device's one subscription of that kind (attributes.c, rpc.c), so restoring one
 * replaces any other exactly as a new GET + Observe would. */
enum { OBS_ATTRS = 1, OBS_RPC = 2, OBS_DESC_LEN = 13 };

static size_t on_observer_save(void *app, coap_observer_t *obs, void *obs_data, uint8_t *out,
                               size_t cap)
{
    (void)app;
    api_dev_t *d = obs_data;
    unsigned kind = d->attr_obs == obs ? OBS_ATTRS : d->rpc_obs == obs ? OBS_RPC : 0;
    if (!kind || cap < OBS_DESC_LEN)
        return 0;
    uint64_t id = (uint64_t)d->id;
    uint32_t cf = (uint32_t)(kind == OBS_ATTRS ? d->attr_cf : d->rpc_cf);
    out[0] = (uint8_t)kind;
    for (int i = 0; i < 8; i++)
        out[1 + i] = (uint8_t)(id >> (56 - 8 * i));
    for (int i = 0; i < 4; i++)
        out[9 + i] = (uint8_t)(cf >> (24 - 8 * i));
    return OBS_DESC_LEN;
}

typedef struct rpc_wake {
    api_life_t *life;
    int64_t device_id;
} rpc_wake_t;

/* RPCs queued in the hub while the server was down go out once the restored relation is
 * live (after the engine activated it, hence a post to our own loop). */
static void rpc_wake(void *arg)
{
    rpc_wake_t *w = arg;
    if (w->life->a)
        api__rpc_pump(w->life->a, w->device_id);
    api__life_unref(w->life);
    free(w);
}

static void *on_observer_restore(void *app, coap_observer_t *obs, const uint8_t *desc, size_t len)
{
    api_shard_t *a = app;
    if (len != OBS_DESC_LEN || (desc[0] != OBS_ATTRS && desc[0] != OBS_RPC))
        return NULL;
    uint64_t id = 0;
    uint32_t cf = 0;
    for (int i = 0; i < 8; i++)
        id = id << 8 | desc[1 + i];
    for (int i = 0; i < 4; i++)
        cf = cf << 8 | desc[9 + i];
    int64_t device_id = (int64_t)id;
    if (device_id <= 0)
        return NULL;
    api_dev_t *d = api__dev_find(a, device_id);
    coap_observer_t *old = d ? (desc[0] == OBS_ATTRS ? d->attr_obs : d->rpc_obs) : NULL;
    if (old)
        coap_observer_cancel(old, COAP_DELETED); /* may free d */
    d = api__dev_get(a, device_id);
    api__activity_observations(d, +1);
    if (desc[0] == OBS_ATTRS) {
        d->attr_obs = obs;
        d->attr_seq = 0;
        d->attr_cf = (int)(int32_t)cf;
    } else {
        d->rpc_obs = obs;
        d->rpc_seq = 0;
        d->rpc_cf = (int)(int32_t)cf;
        rpc_wake_t *w = xmalloc(sizeof *w);
        *w = (rpc_wake_t){.life = a->life, .device_id = device_id};
        a->life->refs++;
        loop_post(a->loop, rpc_wake, w);
    }
    LOG_D("api", "device %lld: %s observation restored after a restart", (long long)device_id,
          desc[0] == OBS_ATTRS ? "attribute" : "RPC");
    return d;
}

api_shard_t *api_shard_new(loop_t *loop, store_t *store, registry_t *reg, hub_t *hub,
                           const api_cfg_t *cfg)
{
    api_shard_t *a = xcalloc(1, sizeof *a);
    htab_init(&a->devs, 64);
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
    api__pools_init(a);
    a->life = xcalloc(1, sizeof *a->life);
    a->life->refs = 1;
    a->life->a = a;
    a->rl_device = ratelimit_new(a->cfg.rate_buckets, (uint32_t)a->cfg.rate_device,
                                 (uint32_t)a->cfg.burst_device);
    a->rl_address = ratelimit_new(a->cfg.rate_buckets, (uint32_t)a->cfg.rate_address,
                                  (uint32_t)a->cfg.burst_address);
    coap_engine_ops_t ops = {.admit = admit,
                             .on_request = on_request,
                             .on_observe_end = on_observe_end,
                             .on_notify_result = on_notify_result,
                             .on_observer_save = on_observer_save,
                             .on_observer_restore = on_observer_restore};
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
    api__life_unref(a->life);
    api__pools_fini(a);
    arena_fini(&a->arena);
    ratelimit_free(a->rl_device);
    ratelimit_free(a->rl_address);
    free(a);
}

void api_shard_get_stats(const api_shard_t *a, api_stats_t *out)
{
    *out = a->stats;
    ratelimit_stats_t d, s;
    ratelimit_get_stats(a->rl_device, &d);
    ratelimit_get_stats(a->rl_address, &s);
    out->rate_buckets_evicted = d.evicted_active + s.evicted_active;
}

coap_engine_t *api_shard_engine(api_shard_t *a) { return a->engine; }

void api_shard_set_provision_worker(api_shard_t *a, provision_worker_t *w)
{
    a->prov = w;
}

void api_shard_set_ota(api_shard_t *a, const ota_files_t *files)
{
    a->ota = files;
}

void api_shard_on_hub_event(void *ctx, const hub_event_t *ev)
{
    api_shard_t *a = ctx;
    if (a->freeing)
        return;
    switch (ev->type) {
    case HUB_EV_SHARED_UPDATED:
    case HUB_EV_SHARED_DELETED:
        if (ev->json)
            api__attributes_notify(a, ev->device_id, ev->type == HUB_EV_SHARED_DELETED, ev->json);
        break;
    case HUB_EV_CREDENTIALS_CHANGED:
    case HUB_EV_DEVICE_DELETED: {
        /* §3.4: both subscriptions are cancelled with 2.02. Each cancel may free d. Not one
         * the device registered with its new token before this event reached the shard (its
         * lookup followed the change: seq >= cred_seq): the device is already using its new
         * credentials, and ending that relation would leave it without notifications (seen:
         * a registration right after a token change got 2.02 a moment later). */
        api_dev_t *d = api__dev_find(a, ev->device_id);
        if (d && d->attr_obs && (ev->cred_seq == 0 || d->attr_seq < ev->cred_seq))
            coap_observer_cancel(d->attr_obs, COAP_DELETED);
        d = api__dev_find(a, ev->device_id);
        if (d && d->rpc_obs && (ev->cred_seq == 0 || d->rpc_seq < ev->cred_seq))
            coap_observer_cancel(d->rpc_obs, COAP_DELETED);
        d = api__dev_find(a, ev->device_id);
        if (d && ev->type == HUB_EV_DEVICE_DELETED) {
            /* A deleted device gets no more activity attributes written. The hub dropped its
             * status entry when it published the deletion, so nothing is reported. */
            loop_timer_cancel(a->loop, &d->idle_timer);
            d->act.active = false;
            api__dev_maybe_free(d);
        }
        break;
    }
    case HUB_EV_RPC_PENDING:
        api__rpc_pump(a, ev->device_id);
        break;
    }
}
