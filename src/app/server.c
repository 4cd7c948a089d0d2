/* server.c — wiring and lifecycle of the daemon.
 *
 * Start order: data dir -> store (migrations) -> first admin -> registry (credentials into
 * memory) -> OTA image dir (orphans swept) -> hub -> shards (loop + device API + UDP listener, bound before any thread runs)
 * -> REST -> shard threads -> ready.
 * Stop order is the reverse, with one rule that keeps "acknowledged means stored" true:
 * the store is closed (its queue drained and committed) after the shard threads stopped but
 * before the shards are freed, and the completions it posts are run by draining each loop, so
 * every device whose data was committed still gets its 2.01.
 */
#include "app/server_int.h"

#include "api/api.h"
#include "coap/coap.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "device/hub.h"
#include "dtls/dtls.h"
#include "device/provision.h"
#include "device/registry.h"
#include "device/watch.h"
#include "http/http.h"
#include "store/store.h"
#include "udp/proof.h"
#include "udp/udp.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* mkdir -p with mode 0700 for every component we create. */
static int make_dirs(const char *path, char err[static ERR_LEN])
{
    char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            snprintf(err, ERR_LEN, "cannot create %s: %s", p, strerror(errno));
            free(p);
            return -errno;
        }
        *s = '/';
    }
    int rc = 0;
    if (mkdir(p, 0700) != 0 && errno != EEXIST) {
        snprintf(err, ERR_LEN, "cannot create data dir %s: %s", p, strerror(errno));
        rc = -errno;
    }
    free(p);
    return rc;
}

/* DTLS asks which device a client's certificates name: the registry answers from memory for
 * a known leaf; an unknown one may be a device that X.509 chain provisioning creates now. */
static int64_t identify_cert(void *server, const uint8_t *const *der, const size_t *len, size_t n)
{
    server_t *s = server;
    int64_t id = n > 0 ? registry_find_cert_der(s->registry, der[0], len[0]) : 0;
    if (!id && n > 0)
        id = provision_chain_identify(s->prov_chain, der, len, n);
    return id;
}

static int64_t identify_psk(void *server, const char *identity, size_t len, uint8_t *key,
                            size_t *key_len)
{
    server_t *s = server;
    _Static_assert(DTLS_PSK_MAX == REGISTRY_PSK_MAX, "one PSK size limit");
    return registry_find_psk(s->registry, identity, len, key, key_len);
}

/* A profile saved or deleted over REST: the chain-provisioning cache reloads before the REST
 * answer goes out, so a CA added is trusted for provisioning as soon as the operator hears
 * back. (A CA removed stops provisioning even earlier: provision.h.) */
/* What follows from a change of the fleet, for the caches and rules outside the REST
 * handlers: chain provisioning's profiles, and a provisioned device's OTA packages (a REST
 * device save applies those itself). */
static void on_fleet_change(void *ctx, hub_change_t what, int64_t id)
{
    server_t *s = ctx;
    int rc = 0;
    switch (what) {
    case HUB_CHANGE_PROFILE_SAVED:
    case HUB_CHANGE_PROFILE_DELETED:
        if ((rc = provision_chain_reload(s->prov_chain)) != 0)
            LOG_W("server", "profile %lld changed, provisioning profiles not reloaded: %s",
                  (long long)id, err_str(rc));
        break;
    case HUB_CHANGE_DEVICE_PROVISIONED:
        /* A new device gets its profile's firmware/software as ThingsBoard's does. */
        if ((rc = ota_device_assignment_changed(s->store, s->hub, id, "", "")) != 0)
            LOG_W("server", "provisioned device %lld: OTA assignment not applied: %s",
                  (long long)id, err_str(rc));
        break;
    default:
        break;
    }
}

/* Sessions a clean stop saved come back before any shard runs; a file that cannot be used
 * costs only handshakes, so it never stops the start. */
static void restore_sessions(server_t *s)
{
    char err[ERR_LEN] = "";
    int n = dtls_ctx_restore_sessions(s->dtls_ctx, s->data_dir, err);
    if (n > 0)
        LOG_I("server", "%d saved DTLS session(s) restored (usable for up to %llds)", n,
              (long long)s->dtls_save_max_age_s);
    else if (n < 0)
        LOG_W("server", "saved DTLS sessions not used (devices will handshake): %s", err);
}

/* At a clean stop, after the last answers went out and before the listeners close: every
 * shard's compact sessions go to one file, and end without close_notify, so their devices
 * go on with the next start (docs/operations.md). */
static void save_sessions(server_t *s)
{
    if (!s->dtls_ctx || s->dtls_save_max_age_s <= 0)
        return;
    int rc = dtls_save_begin(s->data_dir);
    if (rc != 0) {
        LOG_E("server", "DTLS sessions not saved: cannot remove the previous file: %s",
              err_str(rc));
        return;
    }
    dtls_save_t *w = dtls_save_new();
    size_t skipped = 0;
    for (int i = 0; i < s->n_shards; i++)
        if (s->shards[i].dtls)
            dtls_listener_save(s->shards[i].dtls, w, true, &skipped);
    dtls_ctx_save_unclaimed(s->dtls_ctx, w); /* several shards: devices not heard since start */
    size_t n = dtls_save_count(w);
    char err[ERR_LEN] = "";
    if (n > 0 && dtls_save_write(w, s->data_dir, s->dtls_save_max_age_s, err) != 0)
        LOG_E("server", "DTLS sessions not saved: %s", err);
    else if (n > 0 || skipped > 0)
        LOG_I("server",
              "%zu DTLS session(s) saved for the next start (%zu on OpenSSL's record layer "
              "cannot be saved)",
              n, skipped);
    dtls_save_free(w);
}

static void *shard_main(void *arg)
{
    shard_t *sh = arg;
    loop_run(sh->loop);
    return NULL;
}

/* Hub events reach the device API first (it cancels observations with 2.02), then the DTLS
 * listener ends the device's sessions, so a changed credential cannot keep talking. */
static void on_hub_event(void *ctx, const hub_event_t *ev)
{
    shard_t *sh = ctx;
    api_shard_on_hub_event(sh->api, ev);
    if (sh->dtls &&
        (ev->type == HUB_EV_CREDENTIALS_CHANGED || ev->type == HUB_EV_DEVICE_DELETED))
        dtls_listener_close_device(sh->dtls, ev->device_id);
}

static int shard_init(server_t *s, shard_t *sh, const config_t *cfg, int port, int dtls_port,
                      char err[static ERR_LEN])
{
    sh->loop = loop_new(err);
    if (!sh->loop)
        return -1;
    sh->api = api_shard_new(sh->loop, s->store, s->registry, s->hub, &cfg->api);
    if (!sh->api) {
        snprintf(err, ERR_LEN, "cannot create the device API of shard %d", sh->index);
        return -1;
    }
    api_shard_set_ota(sh->api, s->ota);
    /* The transports deliver to the shard's CoAP engine; they know nothing of it. */
    transport_sink_t sink = coap_engine_sink(api_shard_engine(sh->api));
    udp_cfg_t ucfg = cfg->udp;
    ucfg.port = port;
    sh->udp = udp_listener_new(sh->loop, &sink, &ucfg, err);
    if (!sh->udp)
        return -1;
    /* Echo values for the engine's amplification guard (plain UDP only). */
    sh->proof = udp_proof_new(loop_now_ms(sh->loop));
    coap_engine_set_echo(api_shard_engine(sh->api),
                         &(coap_echo_ops_t){.make = udp_proof_make_peer,
                                            .check = udp_proof_check_peer,
                                            .ctx = sh->proof});
    if (s->dtls_ctx) {
        dtls_cfg_t dcfg = s->dtls_cfg;
        dcfg.port = dtls_port;
        dcfg.shard_index = sh->index;
        dcfg.shard_count = s->n_shards;
        sh->dtls = dtls_listener_new(sh->loop, &sink, s->dtls_ctx, &dcfg, err);
        if (!sh->dtls)
            return -1;
    }
    api_shard_set_provision_worker(sh->api, s->prov_worker);
    hub_add_shard(s->hub, sh->loop, on_hub_event, sh);
    return 0;
}

static void shard_fini(shard_t *sh)
{
    dtls_listener_free(sh->dtls);
    udp_listener_free(sh->udp);
    api_shard_free(sh->api);
    udp_proof_free(sh->proof); /* after the engine that used it */
    loop_free(sh->loop);
}

/* Which database the store is about to open, said once before it tries (a connection that
 * fails then names what was tried). The URL's password never reaches the log. */
static void log_database(const store_cfg_t *scfg)
{
    bool credentials = (scfg->database_user && *scfg->database_user) ||
                       (scfg->database_password && *scfg->database_password);
    if (!store_cfg_is_postgresql(scfg)) {
        if (credentials)
            LOG_W("server",
                  "--database-user/--database-password are set but --database is "
                  "not: using SQLite, they are ignored");
        return;
    }
    char url[512];
    config_mask_url(scfg->database_url, url, sizeof url);
    char ttl[48] = "telemetry kept forever";
    if (scfg->ts_ttl_s > 0)
        snprintf(ttl, sizeof ttl, "telemetry kept %llds", (long long)scfg->ts_ttl_s);
    LOG_I("server", "database: PostgreSQL %s%s%s%s, ts_kv partitions %s, %s", url,
          scfg->database_user && *scfg->database_user ? ", user " : "",
          scfg->database_user && *scfg->database_user ? scfg->database_user : "",
          scfg->database_password && *scfg->database_password ? ", password ********" : "",
          scfg->ts_partitioning, ttl);
}

server_t *server_start(const config_t *cfg, char err[static ERR_LEN])
{
    server_t *s = xcalloc(1, sizeof *s);
    s->data_dir = xstrdup(cfg->data_dir);
    pthread_mutex_init(&s->save_mu, NULL);
    s->dtls_save_max_age_s = cfg->dtls_save_max_age_s;
    if (make_dirs(cfg->data_dir, err) != 0)
        goto fail;

    char *db = xasprintf("%s/coaphub.db", cfg->data_dir);
    store_cfg_t scfg = cfg->store;
    scfg.path = db;
    log_database(&scfg);
    s->store = store_open(&scfg, err);
    free(db);
    if (!s->store)
        goto fail;
    if (http_bootstrap_admin(s->store, cfg->admin_user, cfg->admin_password, err) != 0)
        goto fail;

    s->registry = registry_new();
    int rc = registry_load(s->registry, s->store);
    if (rc != 0) {
        snprintf(err, ERR_LEN, "cannot load device credentials: %s", err_str(rc));
        goto fail;
    }
    s->hub = hub_new(s->store);
    s->prov_worker = provision_worker_new(s->store, s->registry, s->hub);
    s->prov_chain = provision_chain_new(s->store, s->registry, s->hub);
    if ((rc = provision_chain_reload(s->prov_chain)) != 0) {
        snprintf(err, ERR_LEN, "cannot load device profiles: %s", err_str(rc));
        goto fail;
    }
    /* OTA images: files beside the database; ones a crash left without a row go now,
     * before anything can upload. */
    s->ota = ota_files_open(cfg->data_dir, &cfg->ota, err);
    if (!s->ota)
        goto fail;
    size_t swept;
    if ((rc = ota_files_sweep(s->ota, s->store, true, &swept)) < 0)
        LOG_W("server", "OTA image clean-up skipped: %s", err_str(rc));
    hub_change_listen(s->hub, on_fleet_change, s);
    store_set_commit_hook(s->store, device_watch_commit_hook, s->hub);

    if (cfg->dtls_enabled) {
        /* Wiring, not settings: one --bind serves both listeners, and DTLS asks the
         * registry which device a client certificate names. */
        s->dtls_cfg = cfg->dtls;
        s->dtls_cfg.bind_addr = cfg->udp.bind_addr;
        s->dtls_cfg.data_dir = cfg->data_dir;
        s->dtls_cfg.identify = identify_cert;
        s->dtls_cfg.identify_ctx = s;
        s->dtls_cfg.psk_find = identify_psk;
        s->dtls_ctx = dtls_ctx_new(&s->dtls_cfg, err);
        if (!s->dtls_ctx)
            goto fail;
        restore_sessions(s);
    }

    s->n_shards = cfg->shards > 0 ? cfg->shards : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (s->n_shards < 1)
        s->n_shards = 1;
    s->shards = xcalloc((size_t)s->n_shards, sizeof *s->shards);
    int port = cfg->udp.port, dtls_port = cfg->dtls.port;
    for (int i = 0; i < s->n_shards; i++) {
        s->shards[i].index = i;
        if (shard_init(s, &s->shards[i], cfg, port, dtls_port, err) != 0)
            goto fail;
        /* With port 0 the first shard picks a port and the others join it. */
        port = udp_listener_port(s->shards[i].udp);
        if (s->shards[i].dtls)
            dtls_port = dtls_listener_port(s->shards[i].dtls);
    }

    /* Each shard takes the saved sessions whose devices it will hear (the listeners steer
     * datagrams by a function of the address or CID that dtls computes too): live again,
     * with their observations, before any device sends anything. */
    size_t adopted = 0;
    for (int i = 0; i < s->n_shards; i++)
        if (s->shards[i].dtls)
            adopted += dtls_listener_adopt_saved(s->shards[i].dtls);
    if (adopted > 0)
        LOG_I("server", "%zu restored DTLS session(s) live again", adopted);

    http_cfg_t hcfg = cfg->http;
    hcfg.coap_port = port;
    hcfg.coaps_port = s->dtls_ctx ? dtls_port : 0;
    hcfg.dtls_cert_path = s->dtls_ctx ? dtls_ctx_cert_path(s->dtls_ctx) : NULL;
    hcfg.metrics_text = server_metrics_text;
    hcfg.metrics_ctx = s;
    hcfg.sessions_save = server_sessions_save;
    hcfg.ota = s->ota;
    /* The HTTP device API reads payloads and keeps activity as the CoAP one does. */
    hcfg.device_values = (values_cfg_t){.type_cast = cfg->api.type_cast,
                                        .max_string_len = cfg->api.max_string_len,
                                        .max_depth = cfg->api.max_json_depth,
                                        .max_bytes = hcfg.max_body};
    hcfg.inactivity_timeout_ms = cfg->api.inactivity_timeout_ms;
    hcfg.activity_report_ms = cfg->api.activity_report_ms;
    s->http = http_server_start(&hcfg, s->store, s->registry, s->hub, err);
    if (!s->http)
        goto fail;

    for (int i = 0; i < s->n_shards; i++) {
        shard_t *sh = &s->shards[i];
        if (pthread_create(&sh->thread, NULL, shard_main, sh) != 0) {
            snprintf(err, ERR_LEN, "cannot start shard thread %d", i);
            goto fail;
        }
        char name[16]; /* shown by top -H and perf: whose CPU is whose */
        snprintf(name, sizeof name, "coaphub-shard%d", i % 100);
        pthread_setname_np(sh->thread, name);
        sh->running = true;
    }
    http_server_set_ready(s->http, true);
    char coaps[64] = "off";
    if (s->dtls_ctx)
        snprintf(coaps, sizeof coaps, "udp %s:%d", cfg->udp.bind_addr, dtls_port);
    LOG_I("server", "listening: coap udp %s:%d, coaps %s (%d shard%s), http tcp %s:%d, data %s",
          cfg->udp.bind_addr, port, coaps, s->n_shards, s->n_shards == 1 ? "" : "s",
          cfg->http.bind_addr, cfg->http.port, cfg->data_dir);
    return s;
fail:
    server_stop(s);
    return NULL;
}

int server_reload(server_t *s, char err[static ERR_LEN])
{
    /* Profiles first: a failed certificate reload must not keep a revoked CA provisioning. */
    int rc = provision_chain_reload(s->prov_chain);
    if (rc != 0) {
        snprintf(err, ERR_LEN, "cannot reload device profiles: %s", err_str(rc));
        return rc;
    }
    if (!s->dtls_ctx)
        return 0;
    return dtls_ctx_reload(s->dtls_ctx, err);
}

static void shard_beat(void *arg)
{
    shard_t *sh = arg;
    atomic_store(&sh->beat_seen, atomic_load(&sh->beat_sent));
}

bool server_heartbeat(server_t *s)
{
    bool all = true;
    for (int i = 0; i < s->n_shards; i++) {
        shard_t *sh = &s->shards[i];
        if (atomic_load(&sh->beat_seen) != atomic_load(&sh->beat_sent)) {
            /* The last beat has not run: its node still belongs to the loop. */
            if (!sh->beat_late)
                LOG_W("server",
                      "shard %d has not run its loop for a watchdog period: "
                      "keep-alive withheld",
                      i);
            sh->beat_late = true;
            all = false;
            continue;
        }
        if (sh->beat_late)
            LOG_I("server", "shard %d runs again", i);
        sh->beat_late = false;
        atomic_fetch_add(&sh->beat_sent, 1);
        loop_post_node(sh->loop, &sh->beat_node, shard_beat, sh);
    }
    return all;
}

void server_stop(server_t *s)
{
    if (!s)
        return;
    /* Each phase's time is logged: a slow stop (a service manager's TimeoutStopSec, S6's
     * 10 s) is then traced to its phase. */
    int64_t t0 = clock_mono_ms();
    http_server_stop(s->http);
    int64_t t_http = clock_mono_ms();
    /* From here the shards read no more datagrams: a request still in a socket buffer gets
     * no answer (the device retries, with the next start). What they took is in the store's
     * queue, or answered. */
    for (int i = 0; i < s->n_shards; i++) {
        if (s->shards[i].running) {
            loop_stop(s->shards[i].loop);
            pthread_join(s->shards[i].thread, NULL);
        }
    }
    int64_t t_shards = clock_mono_ms();
    /* Before the store closes: queued provisioning requests still need it; their answers
     * are posted to the shard loops and go out in the drain below. */
    provision_worker_free(s->prov_worker);
    store_close(s->store);
    for (int i = 0; i < s->n_shards; i++)
        if (s->shards[i].loop)
            loop_drain(s->shards[i].loop);
    int64_t t_store = clock_mono_ms();
    if (s->n_shards > 0)
        LOG_I("server",
              "stop: HTTP closed in %lld ms, shards stopped in %lld ms, last commits "
              "answered in %lld ms",
              (long long)(t_http - t0), (long long)(t_shards - t_http),
              (long long)(t_store - t_shards));
    save_sessions(s);
    for (int i = 0; i < s->n_shards; i++)
        shard_fini(&s->shards[i]);
    free(s->shards);
    dtls_ctx_free(s->dtls_ctx);
    hub_free(s->hub);
    provision_chain_free(s->prov_chain);
    registry_free(s->registry);
    ota_files_free(s->ota);
    free(s->data_dir);
    pthread_mutex_destroy(&s->save_mu);
    free(s);
}
