/* api.h — ThingsBoard's CoAP device API (spec/thingsboard-coap.md §1–§5) on one shard.
 *
 * An api_shard_t owns the shard's CoAP engine and answers its requests: telemetry, client
 * attributes, attribute requests, shared-attribute and RPC observations, RPC replies,
 * client-side RPC, claiming, OTA downloads and device activity. Transports feed datagrams into
 * api_shard_engine(); the hub delivers REST-side events through api_shard_on_hub_event().
 *
 * Everything runs on the shard's loop thread, except api_cfg_default().
 */
#ifndef COAPHUB_API_API_H
#define COAPHUB_API_API_H

#include "coap/coap.h"
#include "core/loop.h"
#include "core/stats.h"
#include "device/hub.h"
#include "device/provision.h"
#include "device/registry.h"
#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct api_cfg {
    coap_engine_cfg_t engine;
    bool type_cast;             /* JSON_TYPE_CAST_ENABLED: "43" -> LONG (default true) */
    size_t max_string_len;      /* 0 = unlimited; longer string values -> 4.00 */
    size_t max_json_depth;      /* nesting cap for payloads (default 32) */
    int64_t inactivity_timeout_ms; /* device becomes inactive after this (default 600000) */
    int64_t activity_report_ms; /* lastActivityTime written at most this often (default 3000) */
    int64_t client_rpc_timeout_ms; /* not used yet by built-ins; default 10000 */
    /* Power saving (spec §4): what a PSM / eDRX device gets when its settings leave the
     * timer out or set it to 0, as ThingsBoard's transport.coap.psm_activity_timer and
     * paging_transmission_window (default 10000 ms each). */
    int64_t psm_activity_timer_ms;
    int64_t paging_window_ms;
    /* Rate limits (RFC 8516: 4.29 Too Many Requests with Max-Age = seconds until the next
     * token): token buckets per device and per source address (IPv4 address, IPv6 /64),
     * in requests per second and a burst; rate 0 = off. Per shard; each shard keeps at most
     * rate_buckets buckets of each kind (least recently used reused). */
    int rate_device, burst_device;   /* default 10000 / 20000 */
    int rate_address, burst_address; /* default 100000 / 200000 */
    size_t rate_buckets;             /* default 16384 */
} api_cfg_t;

void api_cfg_default(api_cfg_t *cfg);

typedef struct api_shard api_shard_t;

/* Creates the shard's API and its engine. store, registry and hub are shared and must outlive
 * the shard. */
api_shard_t *api_shard_new(loop_t *loop, store_t *store, registry_t *reg, hub_t *hub,
                           const api_cfg_t *cfg);
/* Frees the engine (ending observations) and all state. Pending store completions that arrive
 * later are discarded safely. api_shard_free(NULL) does nothing. */
void api_shard_free(api_shard_t *a);

/* Where OTA images are read from (ota/ota.h); without it every package download is 4.04.
 * Call before the shard's loop runs; files must outlive the shard. */
typedef struct ota_files ota_files_t;
void api_shard_set_ota(api_shard_t *a, const ota_files_t *files);

/* The engine transports feed with coap_engine_input() / coap_engine_peer_closed(). */
coap_engine_t *api_shard_engine(api_shard_t *a);

/* Where POST /api/v1/provision runs its store calls: on w's thread (the daemon), or, with
 * NULL (the default), synchronously on the shard's thread (unit tests). w must outlive the
 * shard's last request. Shard thread, or before the shard runs. */
void api_shard_set_provision_worker(api_shard_t *a, provision_worker_t *w);

/* Counters of a shard's device API (core/stats.h: field, /metrics family, type, labels,
 * help; a NULL family is not exported). */
#define API_STATS(X)                                                                               \
    X(unauthorized, "coap_unauthorized_total", "counter", NULL,                                    \
      "CoAP requests answered 4.01 (unknown token or certificate).")                               \
    X(rate_limited_device, "coap_rate_limited_total", "counter", "{scope=\"device\"}",             \
      "CoAP requests answered 4.29 Too Many Requests.")                                            \
    X(rate_limited_address, "coap_rate_limited_total", "counter", "{scope=\"address\"}", NULL)     \
    X(rate_buckets_evicted, "coap_rate_buckets_evicted_total", "counter", NULL,                    \
      "Rate-limit buckets reused before they were full again (more devices or addresses "          \
      "than --coap-rate-buckets were busy).")                                                      \
    X(bad_payload, NULL, "counter", NULL, "payloads that did not parse")                           \
    X(store_failures, NULL, "counter", NULL, "failed store calls")
typedef struct api_stats {
    API_STATS(STATS_FIELD)
} api_stats_t;
void api_shard_get_stats(const api_shard_t *a, api_stats_t *out);

/* hub_event_cb for hub_add_shard(); ctx is the api_shard_t. */
void api_shard_on_hub_event(void *ctx, const hub_event_t *ev);

#endif
