/* http.h — the ThingsBoard-compatible REST API (spec/thingsboard-coap.md §8) on
 * libmicrohttpd, running on its own threads.
 *
 * REST handlers read and write through the store (synchronous calls, store_submit_wait for
 * device data), keep the credential registry in step, and reach devices through the hub
 * (shared-attribute pushes, RPC, credential changes).
 */
#ifndef COAPHUB_HTTP_HTTP_H
#define COAPHUB_HTTP_HTTP_H

#include "core/err.h"
#include "device/hub.h"
#include "device/registry.h"
#include "store/store.h"
#include "values/body.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct http_cfg {
    const char *bind_addr;          /* "0.0.0.0" */
    int port;                       /* 8080 */
    int64_t jwt_expiration_s;       /* JWT_TOKEN_EXPIRATION_TIME, 9000 */
    int64_t jwt_refresh_expiration_s; /* JWT_REFRESH_TOKEN_EXPIRATION_TIME, 604800 */
    const char *jwt_signing_key;    /* NULL: a random key generated once and kept in the store */
    const char *jwt_issuer;         /* "coaphub" */
    int64_t rpc_default_timeout_ms; /* 10000 */
    int64_t rpc_min_timeout_ms;     /* 5000 */
    /* Long polls of the HTTP device API (device_poll.c): each holds a connection, no thread. */
    int long_poll_max;                /* open at once, all devices (256; 0 = refuse all) -> 503 */
    int long_poll_per_device;         /* open at once per device (4) -> 503 */
    int64_t long_poll_timeout_ms;     /* when ?timeout= is absent or 0 (60000, as TB) */
    int64_t long_poll_max_timeout_ms; /* longer ones are cut to this (300000, as TB) */
    size_t max_body;                /* request body cap in bytes (default 1 MiB) -> 413 */
    int coap_port, coaps_port;      /* shown in the UI's connectivity commands (coaps 0 = off) */
    const char *dtls_cert_path;     /* served at /api/noauth/server-cert.pem (NULL = none) */
    const char *public_host;        /* host name for those commands (NULL: the request's Host) */
    /* GET /metrics: returns a malloc'd Prometheus text body (NULL: no /metrics). Called on
     * HTTP threads. */
    char *(*metrics_text)(void *ctx);
    void *metrics_ctx;
    /* OTA package images (ota/ota.h; its cfg.max_size caps an upload). NULL: uploads and
     * downloads answer 500. */
    const struct ota_files *ota;
    /* The HTTP device API (/api/v1/{token}/...): payloads are read with the CoAP device API's
     * rules and caps (lenient, type cast, string and depth caps), and a device's activity
     * follows its timers. Copied from the api configuration at wiring (app/server.c). */
    values_cfg_t device_values;
    int64_t inactivity_timeout_ms; /* 600000 */
    int64_t activity_report_ms;    /* 3000 */
    /* The front (front.c, docs/operations.md "Limits"): what a slow or hostile client meets. */
    int max_connections;          /* open at once (1000); eviction of idle ones at 90 % */
    int max_connections_per_addr; /* open at once from one IPv4 address or IPv6 /64 (64) */
    int64_t idle_timeout_ms;      /* no byte for this long closes; keep-alive wait (60000) */
    int64_t header_timeout_ms;    /* request headers complete within this of accept (10000) */
    int body_min_rate;            /* bytes/s a request body must average (1024; 0 = off) */
    int threads;                  /* event-loop (epoll) threads (2) */
    int max_workers;              /* threads running handlers at most (512) */
} http_cfg_t;

/* Counters of the front for /metrics. */
typedef struct http_front_stats {
    uint64_t open;             /* connections open now */
    uint64_t accepted;         /* connections accepted so far */
    uint64_t header_timeouts;  /* shut down: headers not complete in time (or idle keep-alive) */
    uint64_t body_timeouts;    /* shut down: body slower than the minimum rate */
    uint64_t evicted;          /* shut down: the pool was 90 % full and they had sent no request */
    uint64_t per_addr_refused; /* refused at accept: their address had its cap of connections */
    uint64_t bad_framing;      /* answered 400/501 for Content-Length/Transfer-Encoding */
    uint64_t offloaded;        /* requests run on a worker */
    uint64_t queued;           /* of those, ones that waited for a free worker */
    uint64_t workers, workers_busy, workers_peak, waiting;
} http_front_stats_t;

void http_cfg_default(http_cfg_t *cfg);

typedef struct http_server http_server_t;

/* Starts listening. Returns NULL and fills err on failure. */
http_server_t *http_server_start(const http_cfg_t *cfg, store_t *store, registry_t *reg,
                                 hub_t *hub, char err[static ERR_LEN]);
/* /healthz answers 200 only after this was called with true (every listener is up); /readyz
 * also needs store_ready() to be 0 (the database can take work). */
void http_server_set_ready(http_server_t *h, bool ready);
/* The front's counters (zeros for NULL). */
void http_server_front_stats(http_server_t *h, http_front_stats_t *out);
/* Stops accepting, waits for running handlers, frees. http_server_stop(NULL) does nothing. */
void http_server_stop(http_server_t *h);

/* First start: if the store has no user, creates the tenant administrator `email` with
 * `password`; if password is NULL or empty a random one is generated and printed once to
 * stdout. Returns 0 or a negative error (err filled). */
int http_bootstrap_admin(store_t *store, const char *email, const char *password,
                         char err[static ERR_LEN]);

#endif
