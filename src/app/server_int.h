/* server_int.h — the daemon's parts, shared by server.c (lifecycle) and metrics.c. */
#ifndef COAPHUB_APP_SERVER_INT_H
#define COAPHUB_APP_SERVER_INT_H

#include "app/server.h"

#include "api/api.h"
#include "device/hub.h"
#include "device/provision.h"
#include "device/registry.h"
#include "dtls/dtls.h"
#include "http/http.h"
#include "ota/ota.h"
#include "store/store.h"
#include "udp/proof.h"
#include "udp/udp.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

typedef struct shard {
    int index;
    loop_t *loop;
    api_shard_t *api;
    udp_listener_t *udp;
    udp_proof_t *proof; /* Echo values of the amplification guard */
    dtls_listener_t *dtls;
    pthread_t thread;
    bool running;
    /* Watchdog beat: the main thread bumps beat_sent and posts beat_node; the shard copies
     * beat_sent to beat_seen when its loop runs it (server_heartbeat). */
    loop_post_node_t beat_node;
    atomic_uint_fast64_t beat_sent, beat_seen;
    bool beat_late; /* main thread: logged once per stuck episode */
} shard_t;

struct server {
    store_t *store;
    registry_t *registry;
    provision_chain_t *prov_chain;   /* X.509 chain provisioning profiles (§6.5) */
    provision_worker_t *prov_worker; /* POST /api/v1/provision off the shard threads */
    hub_t *hub;
    dtls_ctx_t *dtls_ctx;
    dtls_cfg_t dtls_cfg;
    shard_t *shards;
    int n_shards;
    http_server_t *http;
    ota_files_t *ota; /* OTA images under <data-dir>/ota */
    char *data_dir;
    int64_t dtls_save_max_age_s; /* 0: DTLS sessions are not saved at stop */
    pthread_mutex_t save_mu;     /* one `sessions save` at a time (sessions.c) */
};

/* POST /api/coaphub/dtls/sessions/save (sessions.c): every shard's DTLS sessions written to
 * the saved-sessions file while running. 0, or a negative error with err filled; ctx is the
 * server_t. HTTP thread. */
int server_sessions_save(void *ctx, size_t *saved, size_t *skipped, char err[static ERR_LEN]);

/* GET /metrics body (Prometheus text); ctx is the server_t. Called on an HTTP thread. */
char *server_metrics_text(void *ctx);

#endif
