/* hub.h — the meeting point of the REST side and the shards.
 *
 * Events about a device (shared attributes changed or deleted, credentials changed, device
 * deleted) are broadcast to every shard's loop; each shard acts on the observers it holds.
 * Server-side RPC: the REST thread submits a request and waits; the hub gives it a per-device
 * id, keeps it pending until a shard delivers it to an RPC observer of the device, and wakes
 * the waiter when the device replies (or when the deadline passes).
 *
 * Any thread may call these functions unless noted.
 */
#ifndef COAPHUB_DEVICE_HUB_H
#define COAPHUB_DEVICE_HUB_H

#include "core/loop.h"
#include "device/power_cache.h"
#include "store/store.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct hub hub_t;

typedef enum {
    HUB_EV_SHARED_UPDATED,  /* json: flat object of the changed shared attributes */
    HUB_EV_SHARED_DELETED,  /* json: {"deleted":[keys...]} */
    HUB_EV_CREDENTIALS_CHANGED,
    HUB_EV_DEVICE_DELETED,
    HUB_EV_RPC_PENDING,     /* a new RPC waits for delivery to the device (see hub_rpc_take) */
} hub_event_type_t;

typedef struct hub_event {
    hub_event_type_t type;
    int64_t device_id;
    char *json; /* body for the SHARED_* events, else NULL */
    /* CREDENTIALS_CHANGED, DEVICE_DELETED: registry_changes() just after the change, or 0
     * (unknown). Events reach a shard after the registry changed, so a shard may already
     * have let the device in with its new credentials; what it authenticated from a count
     * read at or after this one is not ended by the event (api.c). */
    uint64_t cred_seq;
} hub_event_t;

/* A shard's handler for events; runs on that shard's loop thread. The event is freed after
 * the handler returns. */
typedef void (*hub_event_cb)(void *shard_ctx, const hub_event_t *ev);

hub_t *hub_new(store_t *store);
/* Frees the hub; waiting RPC callers must have returned. */
void hub_free(hub_t *h);

/* Registers a shard (before the shards start running). */
void hub_add_shard(hub_t *h, loop_t *loop, hub_event_cb cb, void *shard_ctx);

/* Broadcasts an event about device_id to every shard; json is copied (may be NULL).
 * HUB_EV_DEVICE_DELETED also drops the device's status entry. */
void hub_publish(hub_t *h, hub_event_type_t type, int64_t device_id, const char *json);
/* The same for CREDENTIALS_CHANGED and DEVICE_DELETED, with the registry's change count
 * read after the change (hub_event_t.cred_seq). */
void hub_publish_cred(hub_t *h, hub_event_type_t type, int64_t device_id, uint64_t cred_seq);

/* ---- watchers: live updates for the web UI ----
 *
 * A watcher sees what happens to devices as it happens: telemetry and attributes committed,
 * devices becoming active or inactive. It is called on the publishing thread (a shard, the
 * store writer or an HTTP thread) and must only copy and queue — never block. */

typedef enum {
    HUB_WATCH_TELEMETRY,  /* json: {"key":[{"ts":..,"value":..}],...} */
    HUB_WATCH_ATTRIBUTES, /* json: {"scope":"..","values":{..}} or {"scope":"..","deleted":[..]} */
    HUB_WATCH_ACTIVITY,   /* json: {"active":bool,"transport":"coap"|"coaps"|"http"|null,
                           *        "observations":n,"lastActivityTime":ms} — from the
                           *        status table below, its only source */
} hub_watch_type_t;

typedef void (*hub_watch_cb)(void *ctx, hub_watch_type_t type, int64_t device_id,
                             const char *json);

/* Adds a watcher; returns a handle for hub_watch_remove (never 0). */
uint64_t hub_watch_add(hub_t *h, hub_watch_cb cb, void *ctx);
/* Removes it; when this returns the callback is not running and will not run again. */
void hub_watch_remove(hub_t *h, uint64_t handle);
/* True if anyone watches (publishers skip building JSON otherwise). */
bool hub_watched(hub_t *h);
/* Tells every watcher. */
void hub_watch_publish(hub_t *h, hub_watch_type_t type, int64_t device_id, const char *json);

/* ---- fleet changes: what caches of profile-derived settings listen to ----
 *
 * The REST side publishes one of these after the store has committed a change that settings
 * derived from device profiles depend on: provisioning keys and CA certificates (provisioning),
 * power-saving settings (downlink gating), assigned OTA packages. A listener reloads what it
 * needs from the store (store_profile_get, store_device_get); the change itself carries only
 * an id. Listeners run synchronously on the publishing thread (an HTTP thread) after the
 * commit and before the REST answer is sent, so a client that got its 200 can rely on every
 * cache having heard of the change; they must not block for long and must not publish
 * changes themselves (everything else of the hub they may use).
 * Shards that keep per-device state should post to their own loop from the listener. */

typedef enum {
    HUB_CHANGE_PROFILE_SAVED = 1,  /* id = device_profile.id: created, updated, made default */
    HUB_CHANGE_PROFILE_DELETED,    /* id = the deleted profile's id (its row is gone) */
    HUB_CHANGE_DEVICE,             /* id = device id: created, or saved through REST (its
                                   * profile, deviceData, firmwareId or softwareId may differ) */
    HUB_CHANGE_DEVICE_DELETED,     /* id = the deleted device's id */
    HUB_CHANGE_DEVICE_PROVISIONED, /* id = a device that provisioning (device/provision.c)
                                    * just made, in its profile */
} hub_change_t;

typedef void (*hub_change_cb)(void *ctx, hub_change_t what, int64_t id);

/* Adds a listener (wiring time, before the HTTP server starts; never removed). */
void hub_change_listen(hub_t *h, hub_change_cb cb, void *ctx);
/* Calls every listener in the order they were added. Any thread but a listener's. */
void hub_change_publish(hub_t *h, hub_change_t what, int64_t id);
/* A number that every hub_change_publish increases (before its listeners run): a cache of
 * profile- or device-derived settings read while it had value g is current while it still
 * has value g. Starts at 0; any thread, one atomic load. */
uint64_t hub_change_gen(hub_t *h);

/* ---- live device status ----
 *
 * One entry per device that has talked to this server since it started: the transport of
 * its last request, the observations it holds open (attribute + RPC relations, summed over
 * shards), whether it is active, and the last lastActivityTime written for it. Shards report
 * changes only (a transport switch, an observation opened or ended, an active flip, or the
 * throttled lastActivityTime write), so the mutex is taken rarely. Every change is published
 * to the watchers as HUB_WATCH_ACTIVITY, under the table's mutex so events of one device
 * leave in the order the table changed (watchers only copy, so holding it is cheap).
 * Entries are bounded by the number of devices and dropped when a device is deleted. */

typedef enum {
    HUB_TRANSPORT_NONE = 0, /* never seen since start: "transport":null */
    HUB_TRANSPORT_COAP,     /* plain UDP */
    HUB_TRANSPORT_COAPS,    /* DTLS */
    HUB_TRANSPORT_HTTP,     /* the HTTP device API on the web port */
} hub_transport_t;

typedef struct hub_status {
    bool active;
    hub_transport_t transport;
    int observations;
    int64_t last_activity_ms; /* wall-clock ms; 0 = none reported since start */
} hub_status_t;

/* One shard's report; zero fields mean "no change". active_delta is +1 when the shard marks
 * the device active, -1 when it marks it inactive (each shard keeps its own flag; the device
 * is active while any shard holds it so). obs_delta counts relations opened (+) or ended (-). */
typedef struct hub_status_report {
    hub_transport_t transport;
    int active_delta;
    int obs_delta;
    int64_t activity_ms;
} hub_status_report_t;

/* Applies a report; publishes HUB_WATCH_ACTIVITY if the visible status changed. Reports that
 * only end things (negative deltas) for a device without an entry are ignored, so a deleted
 * device is not brought back by its observers ending. */
void hub_status_report(hub_t *h, int64_t device_id, const hub_status_report_t *r);
/* Copies the status of device_id; false (and a zeroed *out) if it has no entry. */
bool hub_status_get(hub_t *h, int64_t device_id, hub_status_t *out);
/* "coap", "coaps", "http" or NULL (JSON null). */
const char *hub_transport_name(hub_transport_t t);
/* {"active":..,"transport":..,"observations":..,"lastActivityTime":..}; caller frees. */
char *hub_status_json(const hub_status_t *st);

/* ---- server-side RPC ---- */

typedef enum {
    HUB_RPC_OK,            /* two-way: reply received; one-way: delivered */
    HUB_RPC_NOT_DELIVERED, /* no RPC observer took it before the deadline */
    HUB_RPC_NO_REPLY,      /* delivered, but no reply before the deadline */
    HUB_RPC_CANCELLED,     /* device deleted or hub shutting down */
} hub_rpc_result_t;

/* Submits an RPC to a device and blocks until it completes or timeout_ms passes.
 * params_json is JSON text sent to the device as written (NULL or not JSON: null). On HUB_RPC_OK for a two-way call *reply receives the
 * device's reply body (caller frees). *request_id receives the id sent to the device.
 * Call from a thread without a loop (HTTP). */
hub_rpc_result_t hub_rpc_call(hub_t *h, int64_t device_id, const char *method,
                              const char *params_json, bool oneway, int64_t timeout_ms,
                              int64_t *request_id, char **reply);

/* An RPC taken for delivery. */
typedef struct hub_rpc {
    int64_t device_id;
    int64_t request_id;
    char *body; /* the notification body {"id":..,"method":..,"params":..} */
} hub_rpc_t;

/* Takes the next undelivered RPC of the device (shard side, on an RPC observer's behalf).
 * Returns true and fills out (free out->body) or false if none is pending. */
bool hub_rpc_take(hub_t *h, int64_t device_id, hub_rpc_t *out);
/* The notification carrying request_id was sent (NON) or acknowledged (CON): one-way callers
 * return now. */
void hub_rpc_delivered(hub_t *h, int64_t device_id, int64_t request_id);
/* Delivery failed (observer gone, CON not acknowledged): the RPC goes back to pending. */
void hub_rpc_undelivered(hub_t *h, int64_t device_id, int64_t request_id);
/* The device replied to request_id with body (any bytes; copied). Returns true if a caller
 * was waiting for it, false for an unknown or stale id (still answered 2.01, as TB does). */
bool hub_rpc_reply(hub_t *h, int64_t device_id, int64_t request_id, const uint8_t *body,
                   size_t len);
/* Cancels every waiting RPC of the device (device deleted). */
void hub_rpc_cancel_device(hub_t *h, int64_t device_id);

/* ---- long-poll waiters: devices waiting on an HTTP request ----
 *
 * ThingsBoard's HTTP device API has two long polls: GET attributes/updates (released by a
 * shared-attribute change) and GET rpc (released by a server-side RPC). The HTTP thread that
 * holds such a request registers a waiter for the device; the hub calls its wake callback for
 * every event of that device the waiter's kind listens to, on the thread that publishes it:
 *   HUB_WAIT_ATTRIBUTES: HUB_EV_SHARED_UPDATED and HUB_EV_SHARED_DELETED (with their json);
 *   HUB_WAIT_RPC:        HUB_EV_RPC_PENDING (json NULL; the waiter then calls hub_rpc_take,
 *                        which may find nothing if a CoAP observer or another poller was
 *                        first), also when hub_rpc_undelivered puts an RPC back;
 *   both:                HUB_EV_CREDENTIALS_CHANGED and HUB_EV_DEVICE_DELETED.
 * The callback runs under the hub's waiter lock: it must only copy what it needs and signal
 * its thread (never block, never call back into the hub's waiter functions).
 *
 * The hub also enforces the caps, because it is the one place that counts the waiters of
 * every device: hub_wait_add refuses a waiter beyond max_total (all devices, all kinds) or
 * beyond max_per_device, and counts the refusal. */

typedef enum {
    HUB_WAIT_ATTRIBUTES = 0,
    HUB_WAIT_RPC = 1,
} hub_wait_kind_t;
enum { HUB_WAIT_KINDS = 2 };

/* Called for an event of the waiter's device; json as in hub_event_t (may be NULL). */
typedef void (*hub_wake_cb)(void *ctx, hub_event_type_t type, const char *json);

/* Caller-allocated; the caller fills the first four fields and leaves the rest zeroed. Must
 * stay in place from hub_wait_add to hub_wait_remove. */
typedef struct hub_waiter {
    int64_t device_id;
    hub_wait_kind_t kind;
    hub_wake_cb cb;
    void *ctx;
    struct hub_waiter *prev, *next; /* the hub's: the device's waiter list */
    bool added;
} hub_waiter_t;

typedef struct hub_wait_stats {
    uint64_t waiting[HUB_WAIT_KINDS]; /* waiters registered now, by kind */
    uint64_t refused_total;           /* hub_wait_add calls refused by a cap since start */
} hub_wait_stats_t;

/* Registers w. Returns 0; -EAGAIN if max_total waiters are already registered (0 refuses
 * every waiter); -EBUSY if w->device_id already has max_per_device. A refused w is not
 * registered (hub_wait_remove on it does nothing). Any thread. */
int hub_wait_add(hub_t *h, hub_waiter_t *w, int max_total, int max_per_device);
/* Unregisters w (nothing if it is not registered). When this returns, w's callback is not
 * running and will not run again. Any thread but a wake callback. */
void hub_wait_remove(hub_t *h, hub_waiter_t *w);
/* Copies the counters. Any thread. */
void hub_wait_get_stats(hub_t *h, hub_wait_stats_t *out);

/* ---- power-saving settings ----
 *
 * The hub owns the power-saving settings cache (power_cache.h) because both of its sides need
 * it: shards read it before a downlink, and the hub's own change listener (hub_change_listen,
 * registered by hub_new) invalidates it for every profile or device saved or deleted. Lives as
 * long as the hub. */
power_cache_t *hub_power(hub_t *h);

#endif
