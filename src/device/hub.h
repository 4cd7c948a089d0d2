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
} hub_event_t;

/* A shard's handler for events; runs on that shard's loop thread. The event is freed after
 * the handler returns. */
typedef void (*hub_event_cb)(void *shard_ctx, const hub_event_t *ev);

hub_t *hub_new(store_t *store);
/* Frees the hub; waiting RPC callers must have returned. */
void hub_free(hub_t *h);

/* Registers a shard (before the shards start running). */
void hub_add_shard(hub_t *h, loop_t *loop, hub_event_cb cb, void *shard_ctx);

/* Broadcasts an event about device_id to every shard; json is copied (may be NULL). */
void hub_publish(hub_t *h, hub_event_type_t type, int64_t device_id, const char *json);

/* ---- watchers: live updates for the web UI ----
 *
 * A watcher sees what happens to devices as it happens: telemetry and attributes committed,
 * devices becoming active or inactive. It is called on the publishing thread (a shard, the
 * store writer or an HTTP thread) and must only copy and queue — never block. */

typedef enum {
    HUB_WATCH_TELEMETRY,  /* json: {"key":[{"ts":..,"value":..}],...} */
    HUB_WATCH_ATTRIBUTES, /* json: {"scope":"..","values":{..}} or {"scope":"..","deleted":[..]} */
    HUB_WATCH_ACTIVITY,   /* json: {"active":bool,"transport":"coap"|"coaps","observations":n} */
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

/* ---- server-side RPC ---- */

typedef enum {
    HUB_RPC_OK,            /* two-way: reply received; one-way: delivered */
    HUB_RPC_NOT_DELIVERED, /* no RPC observer took it before the deadline */
    HUB_RPC_NO_REPLY,      /* delivered, but no reply before the deadline */
    HUB_RPC_CANCELLED,     /* device deleted or hub shutting down */
} hub_rpc_result_t;

/* Submits an RPC to a device and blocks until it completes or timeout_ms passes.
 * params_json may be NULL (sent as null). On HUB_RPC_OK for a two-way call *reply receives the
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

#endif
