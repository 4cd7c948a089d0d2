/* server.c — libmicrohttpd daemon, request bodies, JWT gate and dispatch to handlers.
 *
 * libmicrohttpd runs a thread per connection; handlers run on those threads
 * and may block (store reads, store_submit_wait, RPC waits, event streams) without holding up
 * other connections; the connection limits bound the threads. A request body is collected up to cfg.max_body bytes; beyond
 * that the rest is drained unread and the answer is 413, so memory per connection is capped.
 * Key invariant: every request gets exactly one response built by a handler or by the error
 * table, and nothing a client sends can make dispatch skip the JWT check of a non-public route.
 */
#include "http/http_int.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void http_cfg_default(http_cfg_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->bind_addr = "0.0.0.0";
    cfg->port = 8080;
    cfg->jwt_expiration_s = 9000;
    cfg->jwt_refresh_expiration_s = 604800;
    cfg->jwt_signing_key = NULL;
    cfg->jwt_issuer = "coaphub";
    cfg->rpc_default_timeout_ms = 10000;
    cfg->rpc_min_timeout_ms = 5000;
    cfg->long_poll_max = 256;
    cfg->long_poll_per_device = 4;
    cfg->long_poll_timeout_ms = 60000;      /* ThingsBoard's transport.http.request_timeout */
    cfg->long_poll_max_timeout_ms = 300000; /* and its max_request_timeout */
    cfg->max_body = 1024 * 1024;
    cfg->coap_port = 5683;
    cfg->coaps_port = 5684;
    cfg->device_values = (values_cfg_t){
        .type_cast = true, .max_depth = 32, .max_bytes = cfg->max_body};
    cfg->inactivity_timeout_ms = 600000;
    cfg->activity_report_ms = 3000;
    cfg->login = (http_login_cfg_t){.max_fails = 5,
                                    .addr_max_fails = 20,
                                    .lock_ms = 60000,
                                    .max_entries = 16384,
                                    .max_concurrent = 0,
                                    .wait_ms = 1000};
}

/* Per-connection state between libmicrohttpd's calls for one request. */
typedef struct conn_ctx {
    char *buf;
    size_t len, cap;
    bool too_large;
    bool drain;                /* read the body but keep none of it (refused upload) */
    http_ota_upload_t *upload; /* an OTA image streamed to disk instead of buffered */
} conn_ctx_t;

/* Bearer token from X-Authorization, Authorization or ?token= (TB accepts all three). */
static const char *bearer(const http_req_t *r)
{
    const char *h = http__header(r, "X-Authorization");
    if (!h)
        h = http__header(r, "Authorization");
    if (h) {
        if (strncasecmp(h, "Bearer ", 7) != 0)
            return NULL;
        h += 7;
        while (*h == ' ')
            h++;
        return h;
    }
    return http__query(r, "token");
}

static bool authenticate(http_req_t *rq, http_resp_t *rs)
{
    http_server_t *h = rq->srv;
    /* Bulk clients send one token on every request: verified ones are answered from the
     * cache (same result as the full check, see jwt_cache.c). */
    int64_t now_s = clock_wall_ms() / 1000;
    int rc = h->jwt_cache ? http__jwt_cache_verify(h->jwt_cache, bearer(rq), now_s, &rq->claims)
                          : http__jwt_verify(h->jwt_key, h->jwt_key_len, bearer(rq), now_s,
                                             &rq->claims);
    if (rc == -EKEYEXPIRED) {
        http__resp_error(rs, HTTP_E_JWT_EXPIRED, NULL);
        return false;
    }
    if (rc < 0 || rq->claims.refresh) {
        http__resp_error(rs, HTTP_E_AUTH, NULL);
        return false;
    }
    if (!rq->claims.tenant_admin) {
        http__resp_error(rs, HTTP_E_PERMISSION, NULL);
        return false;
    }
    return true;
}

json_t *http__readyz_body(bool server_up, int store_rc, const char *backend, int *status)
{
    bool up = server_up && store_rc == 0;
    *status = up ? 200 : 503;
    return json_pack("{s:s, s:{s:s, s:s}, s:s}", "status", up ? "UP" : "DOWN", "checks", "server",
                     server_up ? "UP" : "DOWN", "database", store_rc == 0 ? "UP" : "DOWN",
                     "backend", backend ? backend : "");
}

static void dispatch(http_server_t *h, struct MHD_Connection *conn, const char *url,
                     const char *method, conn_ctx_t *cc, http_resp_t *rs)
{
    /* Liveness: the process answers and every listener is up; the database is not asked, so
     * an orchestrator does not restart a server that only waits for PostgreSQL. */
    if (strcmp(url, "/healthz") == 0 && strcmp(method, "GET") == 0) {
        bool up = atomic_load(&h->ready);
        http__resp_json(rs, up ? 200 : 503,
                        json_pack("{s:s}", "status", up ? "UP" : "DOWN"));
        return;
    }
    /* Readiness: the same, and the database can take work (store_ready asks it at most once
     * a second, so probes cost nothing); a load balancer sends nobody here meanwhile. */
    if (strcmp(url, "/readyz") == 0 && strcmp(method, "GET") == 0) {
        int status;
        json_t *j = http__readyz_body(atomic_load(&h->ready), store_ready(h->store),
                                      store_backend_name(h->store), &status);
        http__resp_json(rs, status, j);
        return;
    }
    if (cc->too_large) {
        http__resp_error(rs, HTTP_E_TOO_LARGE, NULL);
        return;
    }
    http_req_t rq = {.method = method, .path = url, .conn = conn, .srv = h};
    rq.upload = cc->upload;
    rq.body = cc->buf ? cc->buf : "";
    rq.body_len = cc->len;
    bool known = false;
    const http_route_t *rt =
        http__route_find(http__routes, http__n_routes, method, url, rq.params, &rq.n_params,
                         &known);
    if (!rt) {
        http__resp_error(rs, known ? HTTP_E_METHOD : HTTP_E_NO_ROUTE, NULL);
        return;
    }
    if ((rt->flags & HTTP_ROUTE_PUBLIC) || authenticate(&rq, rs))
        rt->fn(&rq, rs);
    for (size_t i = 0; i < rq.n_params; i++)
        free(rq.params[i]);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    http_server_t *h = cls;
    conn_ctx_t *cc = *con_cls;
    if (!cc) {
        cc = xcalloc(1, sizeof *cc);
        *con_cls = cc;
        if (http__ota_upload_wanted(method, url)) {
            /* An image goes to disk as it arrives (rest_ota.c) and only for a valid JWT, so
             * nobody can make us write a file without logging in. A refused one is drained
             * and answered by dispatch (401/403 from the same check). */
            http_req_t rq = {.method = method, .path = url, .conn = conn, .srv = h};
            http_resp_t no = {0};
            if (authenticate(&rq, &no))
                cc->upload = http__ota_upload_new(&rq);
            else
                cc->drain = true;
            free(no.body);
            return MHD_YES;
        }
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > h->cfg.max_body)
            cc->too_large = true;
        return MHD_YES;
    }
    if (*upload_data_size > 0 && (cc->upload || cc->drain)) {
        if (cc->upload)
            http__ota_upload_feed(cc->upload, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        if (!cc->too_large && cc->len + n <= h->cfg.max_body) {
            if (cc->len + n + 1 > cc->cap) {
                cc->cap = (cc->len + n + 1) * 2;
                if (cc->cap > h->cfg.max_body + 1)
                    cc->cap = h->cfg.max_body + 1;
                cc->buf = xrealloc(cc->buf, cc->cap);
            }
            memcpy(cc->buf + cc->len, upload_data, n);
            cc->len += n;
            cc->buf[cc->len] = '\0';
        } else {
            cc->too_large = true; /* drain the rest unread */
        }
        *upload_data_size = 0;
        return MHD_YES;
    }

    enum MHD_Result sret;
    if (!cc->too_large && http__serve_static(conn, method, url, &sret))
        return sret;
    http_resp_t rs = {.status = 500};
    dispatch(h, conn, url, method, cc, &rs);
    if (rs.stream) {
        enum MHD_Result r = MHD_queue_response(conn, (unsigned)rs.status, rs.stream);
        MHD_destroy_response(rs.stream);
        return r;
    }
    struct MHD_Response *resp;
    if (rs.body)
        resp = MHD_create_response_from_buffer(rs.body_len, rs.body, MHD_RESPMEM_MUST_FREE);
    else
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(rs.body);
        return MHD_NO;
    }
    if (rs.body)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, rs.content_type);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (rs.status == 503) { /* every 503 clears by itself: say when to come back */
        char after[16];
        snprintf(after, sizeof after, "%d", HTTP_RETRY_AFTER_S);
        MHD_add_response_header(resp, "Retry-After", after);
    }
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)rs.status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    conn_ctx_t *cc = *con_cls;
    if (cc) {
        http__ota_upload_free(cc->upload);
        free(cc->buf);
        free(cc);
        *con_cls = NULL;
    }
}

/* Reads a setting, or creates it with make() on first use. */
static int setting_once(store_t *s, const char *key, void (*make)(char *out, size_t cap),
                        char *out, size_t cap)
{
    char *v = NULL;
    int rc = store_setting_get(s, key, &v);
    if (rc == -ENOENT) {
        make(out, cap);
        return store_setting_set(s, key, out);
    }
    if (rc < 0)
        return rc;
    snprintf(out, cap, "%s", v);
    OPENSSL_cleanse(v, strlen(v));
    free(v);
    return 0;
}

static void make_uuid(char *out, size_t cap)
{
    ASSERT(cap > STORE_UUID_LEN);
    store_uuid_v4(out);
}

static void make_key_hex(char *out, size_t cap)
{
    uint8_t k[HTTP_JWT_KEY_LEN];
    ASSERT(cap > 2 * sizeof k && RAND_bytes(k, sizeof k) == 1);
    for (size_t i = 0; i < sizeof k; i++)
        snprintf(out + 2 * i, 3, "%02x", k[i]);
    OPENSSL_cleanse(k, sizeof k);
}

static int load_identity(http_server_t *h, const char *cfg_key, char err[static ERR_LEN])
{
    int rc = setting_once(h->store, "tenant_id", make_uuid, h->tenant_id, sizeof h->tenant_id);
    if (rc < 0) {
        snprintf(err, ERR_LEN, "http: reading settings: %s", err_str(rc));
        return rc;
    }
    if (cfg_key && cfg_key[0]) {
        size_t n = strlen(cfg_key);
        if (n > sizeof h->jwt_key) {
            snprintf(err, ERR_LEN, "http: jwt signing key longer than %zu bytes",
                     sizeof h->jwt_key);
            return -EINVAL;
        }
        memcpy(h->jwt_key, cfg_key, n);
        h->jwt_key_len = n;
        return 0;
    }
    char hexkey[2 * HTTP_JWT_KEY_LEN + 1];
    rc = setting_once(h->store, "jwt_signing_key", make_key_hex, hexkey, sizeof hexkey);
    if (rc < 0) {
        snprintf(err, ERR_LEN, "http: jwt signing key: %s", err_str(rc));
        return rc;
    }
    /* The hex text itself is the HMAC key: any length works and no decoding can fail. */
    h->jwt_key_len = strlen(hexkey);
    memcpy(h->jwt_key, hexkey, h->jwt_key_len);
    OPENSSL_cleanse(hexkey, sizeof hexkey);
    return 0;
}

http_server_t *http_server_start(const http_cfg_t *cfg, store_t *store, registry_t *reg,
                                 hub_t *hub, char err[static ERR_LEN])
{
    err[0] = '\0';
    if (!cfg->bind_addr || !cfg->jwt_issuer || cfg->max_body == 0) {
        snprintf(err, ERR_LEN,
                 "http: bind address, JWT issuer and body cap are required "
                 "(start from http_cfg_default)");
        return NULL;
    }
    http_server_t *h = xcalloc(1, sizeof *h);
    h->cfg = *cfg;
    h->bind_addr = xstrdup(cfg->bind_addr);
    h->jwt_issuer = xstrdup(cfg->jwt_issuer);
    h->cfg.bind_addr = h->bind_addr;
    h->cfg.jwt_issuer = h->jwt_issuer;
    h->cfg.jwt_signing_key = NULL; /* copied into jwt_key below; never kept as a string */
    h->store = store;
    h->reg = reg;
    h->hub = hub;
    pthread_mutex_init(&h->mu, NULL);
    h->login_guard = http__login_guard_new(&cfg->login);
    pthread_cond_init(&h->bg_done, NULL);
    atomic_init(&h->ready, false);
    int rc = load_identity(h, cfg->jwt_signing_key, err);
    if (rc < 0)
        goto fail;
    if ((rc = http__profile_ensure_default(h)) < 0) {
        snprintf(err, ERR_LEN, "http: creating the default device profile: %s", err_str(rc));
        goto fail;
    }
    h->jwt_cache = http__jwt_cache_new(h->jwt_key, h->jwt_key_len);
    h->dev_cache = http__dev_cache_new();
    h->devact = http__devact_new(store, hub, cfg->inactivity_timeout_ms, cfg->activity_report_ms);
    if (!h->devact) {
        snprintf(err, ERR_LEN, "http: cannot start the device activity thread");
        goto fail;
    }

    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg->port)};
    if (inet_pton(AF_INET, h->bind_addr, &sa.sin_addr) != 1) {
        snprintf(err, ERR_LEN, "http: bad bind address \"%s\" (IPv4 expected)", h->bind_addr);
        goto fail;
    }
    h->daemon = MHD_start_daemon(
        /* A thread per connection: two-way RPC calls and event streams wait for devices, and
         * must not starve other requests of a small pool's threads. */
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL,
        (uint16_t)cfg->port, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&sa, MHD_OPTION_THREAD_STACK_SIZE, (size_t)(256 * 1024),
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)60,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)1000,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)200, MHD_OPTION_END);
    if (!h->daemon) {
        snprintf(err, ERR_LEN, "http: cannot listen on %s:%d: %s", h->bind_addr, cfg->port,
                 strerror(errno ? errno : EADDRINUSE));
        goto fail;
    }
    LOG_I("http", "REST API listening on %s:%d", h->bind_addr, http__server_port(h));
    return h;
fail:
    http__devact_free(h->devact);
    http__jwt_cache_free(h->jwt_cache);
    http__dev_cache_free(h->dev_cache);
    OPENSSL_cleanse(h->jwt_key, sizeof h->jwt_key);
    pthread_mutex_destroy(&h->mu);
    http__login_guard_free(h->login_guard);
    pthread_cond_destroy(&h->bg_done);
    free(h->bind_addr);
    free(h->jwt_issuer);
    free(h);
    return NULL;
}

int http__server_port(const http_server_t *h)
{
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return i ? (int)i->port : -1;
}

void http_server_set_ready(http_server_t *h, bool ready)
{
    atomic_store(&h->ready, ready);
}

void http_server_stop(http_server_t *h)
{
    if (!h)
        return;
    atomic_store(&h->ready, false); /* event streams end within half a second */
    http__rpc_cancel_all(h);
    http__poll_cancel_all(h); /* MHD_stop_daemon waits for every connection thread */
    MHD_stop_daemon(h->daemon);
    /* Persistent RPCs run on detached threads that use the store and hub: wait for them
     * (each is bounded by its own timeout) before the caller frees those. */
    pthread_mutex_lock(&h->mu);
    while (h->n_background > 0)
        pthread_cond_wait(&h->bg_done, &h->mu);
    pthread_mutex_unlock(&h->mu);
    http__devact_free(h->devact);
    http__jwt_cache_free(h->jwt_cache);
    http__dev_cache_free(h->dev_cache);
    OPENSSL_cleanse(h->jwt_key, sizeof h->jwt_key);
    pthread_mutex_destroy(&h->mu);
    http__login_guard_free(h->login_guard);
    pthread_cond_destroy(&h->bg_done);
    free(h->bind_addr);
    free(h->jwt_issuer);
    free(h);
}
