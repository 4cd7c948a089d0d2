/* api_int.h — private declarations shared by the api module's handler files.
 *
 * One api_shard_t per shard loop. Per-device state (observations, activity) lives in a small
 * hash table of api_dev_t keyed by device id; an entry exists while the device has a live
 * observation on this shard or is marked active, and is freed when neither holds.
 *
 * LIFETIME OF ASYNC WORK. A store commit may finish after the shard is gone. Each request
 * waiting on a commit holds a reference on the shard's api_life_t, a tiny block that outlives
 * the shard; api_shard_free() clears life->a so late completions only answer their exchange
 * (the engine discards answers to orphaned exchanges) and release the block. Everything runs
 * on the shard's loop thread, or after that thread stopped, so plain counters suffice.
 *
 * NO ALLOCATION ON THE STEADY PATH (issue #5). Handlers parse payloads into the shard's
 * arena and reset it before they return, on every path (store_batch_* copy what they keep,
 * and nothing parsed outlives the handler). Waiting requests (api_pending_t) and store
 * batches (store_submit_keep gives them back) are recycled through per-shard free lists;
 * one that completes after the shard is gone (life->a NULL) is simply freed.
 */
#ifndef COAPHUB_API_API_INT_H
#define COAPHUB_API_API_INT_H

#include "api/api.h"
#include "uplink/payload.h"
#include "uplink/uplink.h"
#include "api/route.h"
#include "core/htab.h"
#include "core/ratelimit.h"
#include "device/power.h"

typedef struct api_life {
    int refs;
    api_shard_t *a; /* NULL once the shard is freed */
} api_life_t;

typedef struct api_dev {
    htab_link_t link; /* in api_shard.devs, keyed by id */
    api_shard_t *a;
    int64_t id;
    coap_observer_t *attr_obs; /* shared-attribute subscription, or NULL */
    coap_observer_t *rpc_obs;  /* server-side RPC subscription, or NULL */
    int attr_cf, rpc_cf;       /* Content-Format for notifications (§1.4) */
    /* The registry's change count read before the token lookup that let each relation in
     * (coap_request_t.owner_seq; 0: a certificate's, or restored after a restart): a
     * credentials event older than it does not end the relation (api_shard_on_hub_event). */
    uint64_t attr_seq, rpc_seq;
    bool pumping;              /* inside api__rpc_pump (NON results re-enter it) */
    /* activity (spec §9): the state shared with HTTP's rules (uplink/uplink.h) */
    uplink_activity_t act;
    int64_t last_request_ms; /* monotonic */
    loop_timer_t idle_timer;
    /* power saving (power.c, spec §4); all zero for a device never sent a downlink */
    power_state_t pstate;   /* uplinks: every request, every acknowledged CON notification */
    power_settings_t power; /* resolved settings, valid when power_gen is the cache's */
    uint64_t power_gen;     /* power_cache_gen() when power was resolved; 0 = never */
    int64_t power_retry_ms; /* after a failed lookup: not before this (monotonic) */
    power_held_t *held;     /* attribute updates held while the device sleeps, or NULL */
    bool rpc_held;          /* an RPC was held back: pump when the device wakes */
    bool notifying;         /* inside api__notify: a result now is a NON send, not an ACK */
    /* OTA downloads (ota_download.c): the package firmware [0] / software [1] resolved to,
     * reused for the blocks that follow while the fleet is unchanged; NULL until a download */
    struct api_ota_cache *ota;
} api_dev_t;

/* A device's resolved OTA packages (ota_download.c): valid while hub_change_gen() is gen and
 * for at most API_OTA_CACHE_MS (changes made by another process reach us that way). */
typedef struct api_ota_cache {
    uint64_t gen[2];
    int64_t at_ms[2]; /* monotonic; 0 = not resolved */
    int rc[2];        /* ota_resolve's answer: 0 (o valid) or -ENOENT */
    store_ota_t o[2];
} api_ota_cache_t;

struct api_shard {
    loop_t *loop;
    store_t *store;
    registry_t *reg;
    hub_t *hub;
    provision_worker_t *prov; /* NULL: provisioning runs on this thread */
    const ota_files_t *ota;   /* OTA images, or NULL (api_shard_set_ota) */
    api_cfg_t cfg;
    values_cfg_t pcfg;
    coap_engine_t *engine;
    api_life_t *life;
    htab_t devs; /* api_dev_t by device id (device.c) */
    bool freeing;
    arena_t arena;              /* request-scoped parse memory; reset by each handler */
    struct api_pending *pending_free; /* recycled api_pending_t */
    size_t n_pending_free;
    store_batch_t **batch_pool; /* empty batches for reuse (store_batch_reset done) */
    size_t n_batch_pool, cap_batch_pool;
    size_t batch_pool_low, pending_low; /* the pools' low-water marks since the last trim */
    loop_timer_t trim_timer;
    api_stats_t stats;
    ratelimit_t *rl_device;  /* NULL: off */
    ratelimit_t *rl_address; /* NULL: off */
    int64_t fail_log_ms;     /* when a store failure was last logged (monotonic; submit.c) */
    uint64_t fail_unlogged;  /* failures since then, not logged */
};

/* A request waiting for a store commit. */
typedef struct api_pending {
    struct api_pending *next; /* in the shard's free list while unused */
    api_life_t *life;
    coap_exchange_t *x;
    int64_t device_id;
} api_pending_t;

/* Content-Format for a response: the request's, else application/json (§1.4). */
static inline int api__resp_cf(const coap_request_t *req)
{
    return req->content_format != COAP_CF_NONE ? req->content_format : COAP_CF_JSON;
}

/* ---- submit.c: answer after the store commit; the shard's batch and pending pools ---- */
/* Arms the pools' trim timer / frees the pools and disarms it (shard new / free). */
void api__pools_init(api_shard_t *a);
void api__pools_fini(api_shard_t *a);
/* Drops one reference to the shard's life record; the last one frees it. */
void api__life_unref(api_life_t *l);
/* An empty batch, from the shard's pool when it has one (so a request does not allocate);
 * hand it to api__submit_then_answer, which always takes it back. */
store_batch_t *api__batch_get(api_shard_t *a);
/* Gives an unused (or emptied) batch back to the pool, e.g. after a payload did not parse. */
void api__batch_put(api_shard_t *a, store_batch_t *b);
/* Submits b; answers x 2.01 from the store completion once b has committed, or the code of
 * the failure (api__respond_err: 5.03 + Max-Age while the database cannot take it, else
 * 5.00). An empty batch is answered 2.01 at once (nothing to make durable). */
void api__submit_then_answer(api_shard_t *a, coap_exchange_t *x, int64_t device_id,
                             store_batch_t *b);
/* Counts a failed store call made for device_id (what: "store commit", ...) and logs it,
 * at most once per 10 s with the number of failures in between. */
void api__store_failed(api_shard_t *a, int64_t device_id, const char *what, int err);

/* ---- device.c: per-device table ---- */
api_dev_t *api__dev_find(api_shard_t *a, int64_t id);
api_dev_t *api__dev_get(api_shard_t *a, int64_t id);
/* Frees the entry if nothing keeps it (no observers, not active, timer idle). */
void api__dev_maybe_free(api_dev_t *d);
/* Frees every entry (shard shutdown; observers must already be gone). */
void api__dev_free_all(api_shard_t *a);
/* Drops d's held attribute updates (power saving: a fresh subscription carries the current
 * values; a freed entry). */
void api__dev_drop_held(api_dev_t *d);

/* ---- activity.c ---- */
/* A request from the device arrived (after authentication) from peer (may be NULL: plain).
 * Also the device's uplink for power saving. Returns true when downlinks were held back for
 * the device while it slept: the caller delivers them once the request is handled (api.c). */
bool api__activity_request(api_shard_t *a, int64_t device_id, const transport_peer_t *peer);
/* An observation relation of the device opened (+1) or ended (-1): tells the hub. */
void api__activity_observations(api_dev_t *d, int delta);
/* An observation of the device ended with TIMEOUT/RESET. */
void api__activity_lost(api_dev_t *d);

/* ---- power.c: downlink gating for PSM / eDRX devices (spec §4) ---- */
/* Passed as the cookie of an attribute notification to a power-saving device, so its ACK or
 * timeout is reported (on_notify_result) without an allocation. */
extern char api__power_cookie;
/* Resolves d's power settings if they changed since the last time (or were never read). */
void api__power_refresh(api_dev_t *d);
/* An attribute update (deleted: a SHARED_DELETED body) for d, which has an attribute
 * observer. Returns true if it was held, or merged with held ones: then *flush is the merged
 * body the caller sends now (caller frees), or NULL while the device sleeps. Returns false if
 * the caller sends json as usual. */
bool api__power_attrs(api_dev_t *d, bool deleted, const char *json, char **flush);
/* Whether d has held attribute updates that may go out now. */
bool api__power_held_ready(api_dev_t *d);
/* The held attribute updates as one body to send (caller frees; NULL if none), counted as a
 * downlink sent; d holds nothing afterwards. */
char *api__power_held_take(api_dev_t *d);
/* May an RPC notification go to d now? If not, remembers to pump when the device wakes. */
bool api__power_rpc_may_send(api_dev_t *d);
/* An RPC notification went to d (uses up eDRX's one late downlink). */
void api__power_rpc_sent(api_dev_t *d);
/* coap_observer_notify for d's relation o, marking the call so that a result reported from
 * inside it (a NON notification sent at once) is not taken for the device's ACK. */
int api__notify(api_dev_t *d, coap_observer_t *o, int cf, const char *body, void *cookie);
/* A notification to d was acknowledged or given up (engine on_notify_result): an ACK is an
 * uplink. */
void api__power_notify_result(api_dev_t *d, bool acked);
/* An observation of d ended because a CON notification was never acknowledged: asleep. */
void api__power_timeout(api_dev_t *d);

/* ---- telemetry.c ---- */
void api__telemetry_post(api_shard_t *a, coap_exchange_t *x, const coap_request_t *req,
                         int64_t device_id);
void api__attributes_post(api_shard_t *a, coap_exchange_t *x, const coap_request_t *req,
                          int64_t device_id);

/* ---- attributes.c ---- */
void api__attributes_get(api_shard_t *a, coap_exchange_t *x, const coap_request_t *req,
                         int64_t device_id);
void api__attributes_subscribe(api_shard_t *a, coap_exchange_t *x, const coap_request_t *req,
                               int64_t device_id);
/* Pushes a SHARED_UPDATED (deleted false) / SHARED_DELETED body to the device's
 * subscription, if any; held instead while a power-saving device sleeps. */
void api__attributes_notify(api_shard_t *a, int64_t device_id, bool deleted, const char *json);
/* Sends body to d's attribute observer (cookie for power-saving devices). */
void api__attributes_send(api_dev_t *d, const char *json);
/* Sends what was held for d while it slept, if it may go out now (power saving). */
void api__attributes_flush_held(api_dev_t *d);

/* ---- rpc.c ---- */
void api__rpc_subscribe(api_shard_t *a, coap_exchange_t *x, const coap_request_t *req,
                        int64_t device_id);
/* Delivers pending server-side RPCs to the device's RPC observer, if any. */
void api__rpc_pump(api_shard_t *a, int64_t device_id);
void api__rpc_reply(api_shard_t *a, coap_exchange_t *x, const coap_request_t *req,
                    int64_t device_id, int64_t request_id);
void api__client_rpc(api_shard_t *a, coap_exchange_t *x, const coap_request_t *req,
                     int64_t device_id);
/* engine callback: a cookie-carrying RPC notification was acknowledged or given up. */
void api__rpc_notify_result(api_shard_t *a, void *cookie, bool acked);

/* ---- claim.c ---- */
void api__claim(api_shard_t *a, coap_exchange_t *x, const coap_request_t *req,
                int64_t device_id);

/* ---- provision.c ---- */
/* POST /api/v1/provision (§3.9), not authenticated. */
void api__provision(api_shard_t *a, coap_exchange_t *x, const coap_request_t *req);

/* ---- ota_download.c ---- */
/* GET of the device's firmware (software) image, or a chunk or block of it (§3.10). */
void api__ota_download(api_shard_t *a, coap_exchange_t *x, const coap_request_t *req,
                       int64_t device_id, bool software);

/* ---- codes.c ---- */

/* Max-Age of a 5.03 answer, in seconds: when the device may retry. Long enough that a fleet
 * does not hammer a database that is restarting, short enough that its data gets in soon
 * after the database is back (the store reconnects within 5 s, reliability.md S2). RFC 7252
 * §5.10.5: a client that sees no Max-Age assumes 60. */
#define API_RETRY_AFTER_S 5

/* The one table: a negative error of this module -> CoAP response code (0 -> 2.01). */
uint8_t api__code_for_err(int err);
/* Answers x for error err (< 0) with its code and an empty body; a 5.03 carries Max-Age
 * API_RETRY_AFTER_S. */
void api__respond_err(coap_exchange_t *x, int err);

#endif
