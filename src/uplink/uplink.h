/* uplink.h — what a device's request means, whatever carried it (CoAP or HTTP).
 *
 * ThingsBoard's device API has one set of rules behind two transports: a telemetry body
 * becomes the same points, a claim the same claimingData attribute, getCurrentTime the same
 * answer, an attribute read the same {"client":..,"shared":..} object, and every request
 * the same activity bookkeeping (spec/thingsboard-coap.md §3, §5, §9). The CoAP shard
 * (src/api) and the HTTP device API (src/http) call these functions and differ only in how
 * they wait for the store and how they answer.
 *
 * Parse functions read the body with values' device rules (cfg: lenient, the configured
 * caps), add what it means to the caller's batch and return 0, or -EBADMSG with a reason in
 * err for the log (the answer is 4.00 / 400 with an empty body, as ThingsBoard). Parse memory
 * lives in the caller's arena; store_batch_* copied what they keep, so the caller may reset
 * the arena as soon as the call returns.
 */
#ifndef COAPHUB_UPLINK_UPLINK_H
#define COAPHUB_UPLINK_UPLINK_H

#include "core/arena.h"
#include "device/hub.h"
#include "store/store.h"
#include "values/body.h"
#include "values/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* POST telemetry (§3.1): the body's points for device_id, stamped now_ms where the device
 * gave no ts (ThingsBoard stamps a message once, when it parses it). */
int uplink_telemetry(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p, size_t len,
                     int64_t device_id, int64_t now_ms, store_batch_t *b, char *err,
                     size_t err_cap);
/* POST attributes (§3.2): CLIENT_SCOPE attributes at now_ms. Client attributes notify nobody
 * (only SHARED changes do, and those come from REST through the hub). */
int uplink_attributes(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p, size_t len,
                      int64_t device_id, int64_t now_ms, store_batch_t *b, char *err,
                      size_t err_cap);
/* POST claim (§3.8): the SERVER_SCOPE attribute claimingData = {"secretKey","expirationTime"}
 * a later REST claim checks (empty body: secret "", ThingsBoard's one-day default). */
int uplink_claim(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p, size_t len,
                 int64_t device_id, int64_t now_ms, store_batch_t *b, char *err, size_t err_cap);

/* Client-side RPC (§3.7). 0: *out holds the answer ({"time":now_ms} for getCurrentTime);
 * 1: the method is not one we answer, *out holds {"error":"Unsupported client-side RPC
 * method: m"} (4.04 / 404, a documented deviation: ThingsBoard would leave the device
 * waiting); -EBADMSG: not a {"method":..} body (*out untouched). out starts as {0}; the
 * caller frees it. */
int uplink_client_rpc(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p, size_t len,
                      int64_t now_ms, values_buf_t *out, char *err, size_t err_cap);
/* Reply to server-side RPC request_id (§3.6): must be a JSON object; handed to the hub,
 * which wakes the REST caller. Unknown or stale ids are accepted silently, as ThingsBoard. */
int uplink_rpc_reply(hub_t *hub, arena_t *arena, const values_cfg_t *cfg, const uint8_t *p,
                     size_t len, int64_t device_id, int64_t request_id, char *err, size_t err_cap);

/* Requested attribute keys of one scope (§3.3): present once the parameter was given. */
typedef struct uplink_keys {
    bool present;
    char **keys;
    size_t n, cap;
} uplink_keys_t;

/* Adds the keys of one parameter value "k1,k2" as ThingsBoard splits it (String.split(","):
 * trailing empty parts dropped, inner ones kept). An empty value adds nothing and leaves
 * present unchanged. */
void uplink_keys_add_csv(uplink_keys_t *k, const char *v, size_t len);
void uplink_keys_fini(uplink_keys_t *k);
/* GET attributes (§3.3): the requested client and shared attributes (both scopes, all keys,
 * when neither set is present) written into out as {"client":{..},"shared":{..}}, a scope
 * left out when it has none. 0, 1 when nothing was found (out untouched), or a store error. */
int uplink_attributes_read(store_t *s, int64_t device_id, const uplink_keys_t *client,
                           const uplink_keys_t *shared, values_buf_t *out);

/* ---- activity (spec §9; activity.c) ----
 *
 * One device's activity as one owner sees it (a CoAP shard, or the HTTP server): whether the
 * owner holds it active and when it last wrote lastActivityTime. The owner decides when a
 * device goes quiet (its own timer); these functions say what that means: the store batch
 * of SERVER_SCOPE attributes to submit (never waited for: nobody is answered from it) and
 * the report for the hub's live status table. */
typedef struct uplink_activity {
    bool active;
    hub_transport_t transport; /* of the last request, as last reported */
    int64_t last_report_ms;    /* monotonic ms lastActivityTime was last written; 0 = never */
} uplink_activity_t;

/* A request from the device at mono/wall ms over transport t. Returns the batch to submit
 * (active + lastConnectTime when it was inactive; lastActivityTime at most every report_ms)
 * or NULL; fills *rep with what changed (all zero: nothing to report). The transport is
 * reported when it changed for this owner, and with every lastActivityTime report, so the
 * hub shows the latest transport within report_ms when a device uses two. */
store_batch_t *uplink_activity_request(uplink_activity_t *st, int64_t device_id, hub_transport_t t,
                                       int64_t mono, int64_t wall, int64_t report_ms,
                                       hub_status_report_t *rep);
/* The owner decided the device went quiet: the batch (active false + lastDisconnectTime)
 * and the report, or NULL when it was not active. */
store_batch_t *uplink_activity_inactive(uplink_activity_t *st, int64_t device_id, int64_t wall,
                                        hub_status_report_t *rep);

#endif
