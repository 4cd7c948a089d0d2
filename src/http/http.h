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

/* Failed-login throttle (login_guard.c; docs/operations.md "Login throttling"). */
typedef struct http_login_cfg {
    int max_fails;      /* failures for one user from one address, or in total (5) */
    int addr_max_fails; /* failures from one address, any user names (20) */
    int64_t lock_ms;    /* a count lasts this long after its last failure (60000) */
    size_t max_entries; /* throttle table entries, 48 bytes each (16384) */
    int max_concurrent; /* bcrypt checks at once (0 = half the CPU cores, at least 1) */
    int64_t wait_ms;    /* longest wait for a bcrypt slot (1000) */
} http_login_cfg_t;

typedef struct http_login_stats {
    uint64_t failures;   /* wrong password or unknown user */
    uint64_t throttled;  /* refused with 429 before the password check */
    uint64_t lockouts;   /* counts that reached their limit */
    uint64_t busy;       /* refused with 429 because every bcrypt slot was busy */
    uint64_t evicted;    /* entries dropped to make room (never a live lockout) */
    uint64_t table_full; /* failures not recorded: the table held only live lockouts */
    uint64_t entries;    /* entries now */
    uint64_t waiting;    /* clients waiting for a bcrypt slot now */
} http_login_stats_t;

typedef struct http_auth_stats {
    http_login_stats_t login;
    uint64_t tokens_revoked;   /* sessions (and users) revoked by logout */
    uint64_t revoked_entries;  /* held now */
    uint64_t revoke_fallbacks; /* logouts that revoked the whole user: the session set was full */
} http_auth_stats_t;

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
    /* POST /api/coaphub/dtls/sessions/save: writes the DTLS saved-sessions file now (called
     * with metrics_ctx on an HTTP thread). 0, -ENOTSUP (DTLS or saving off) or another
     * negative error, with err filled. NULL: the route answers 404. */
    int (*sessions_save)(void *ctx, size_t *saved, size_t *skipped, char err[static ERR_LEN]);
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
    http_login_cfg_t login;
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

/* Login throttle and token revocation counters for /metrics. Any thread. */
void http_server_auth_stats(http_server_t *h, http_auth_stats_t *out);

/* First start: if the store has no user, creates the tenant administrator `email` with
 * `password`; if password is NULL or empty a random one is generated and printed once to
 * stdout. Returns 0 or a negative error (err filled). */
int http_bootstrap_admin(store_t *store, const char *email, const char *password,
                         char err[static ERR_LEN]);

#endif
