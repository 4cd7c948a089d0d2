/* server.c — libmicrohttpd daemon, request bodies, JWT gate and dispatch to handlers.
 *
 * libmicrohttpd runs event-driven (an epoll thread pool, --http-threads): an open connection
 * costs a socket, not a thread. Handlers may block (store reads, store_submit_wait, RPC waits,
 * long polls), so a complete request runs on a worker while its connection is suspended
 * (front.c), and the polling threads only parse and send; /healthz and static files never
 * block and are answered in place. A request body is collected up to cfg.max_body bytes;
 * beyond that the rest is drained unread and the answer is 413, so memory per connection is
 * capped. Framing the server cannot trust (two different Content-Lengths, a transfer coding
 * other than chunked) is refused when the headers are complete, before any body is read.
 * Key invariant: every request gets exactly one response built by a handler or by the error
 * table, and nothing a client sends can make dispatch skip the JWT check of a non-public route.
 */
#include "http/http_int.h"

#include "http/front.h"

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
    cfg->max_connections = 1000;
    cfg->max_connections_per_addr = 64;
    cfg->idle_timeout_ms = 60000;
    cfg->header_timeout_ms = 10000;
    cfg->body_min_rate = 1024;
    cfg->threads = 2;
    cfg->max_workers = 512;
}

/* Per-connection state between libmicrohttpd's calls for one request. */
typedef struct conn_ctx {
    char *buf;
    size_t len, cap;
    bool too_large;
    bool drain;                /* read the body but keep none of it (refused upload) */
    http_ota_upload_t *upload; /* an OTA image streamed to disk instead of buffered */
    /* a request handed to a worker (front.c): what it needs, and the answer it leaves */
    http_server_t *h;
    struct MHD_Connection *conn;
    const char *url, *method; /* libmicrohttpd's, valid until the request completes */
    bool answered;
    http_resp_t rs;
    http_poll_t *poll; /* a long poll parked until it has its answer (device_poll.c) */
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

/* What the request's framing headers say, checked once the headers are complete. */
typedef struct framing {
    int n_length;
    bool length_differs;
    const char *length;
    const char *coding;
} framing_t;

static enum MHD_Result framing_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    framing_t *fr = cls;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        if (fr->n_length++ && strcmp(fr->length, value ? value : "") != 0)
            fr->length_differs = true;
        else if (!fr->length)
            fr->length = value ? value : "";
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0 && !fr->coding) {
        fr->coding = value ? value : "";
    }
    return MHD_YES;
}

/* RFC 9112 §6.3: Content-Length fields that disagree make the body's end unknowable (400,
 * then close); §6.1: a transfer coding the server does not understand is 501. libmicrohttpd
 * uses the first Content-Length and, for a Transfer-Encoding other than "chunked", reads the
 * body until the client closes, holding the connection to its timeout. 0 when fine. */
static int framing_error(struct MHD_Connection *conn, http_err_t *e)
{
    framing_t fr = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, framing_header, &fr);
    if (fr.length_differs) {
        *e = HTTP_E_BAD_PARAMS;
        return 400;
    }
    if (fr.coding && strcasecmp(fr.coding, "chunked") != 0) {
        *e = HTTP_E_NOT_IMPLEMENTED;
        return 501;
    }
    return 0;
}

/* Queues a handler's answer (takes rs's body or stream); close: the connection ends after
 * it (refused framing: what follows on the stream cannot be trusted). */
static enum MHD_Result queue_answer(struct MHD_Connection *conn, http_resp_t *rs, bool close)
{
    if (rs->stream) {
        enum MHD_Result r = MHD_queue_response(conn, (unsigned)rs->status, rs->stream);
        MHD_destroy_response(rs->stream);
        rs->stream = NULL;
        return r;
    }
    struct MHD_Response *resp;
    bool has_body = rs->body != NULL;
    if (has_body)
        resp = MHD_create_response_from_buffer(rs->body_len, rs->body, MHD_RESPMEM_MUST_FREE);
    else
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(rs->body);
        rs->body = NULL;
        return MHD_NO;
    }
    rs->body = NULL; /* libmicrohttpd frees it */
    if (has_body)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, rs->content_type);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (rs->status == 503) { /* every 503 clears by itself: say when to come back */
        char after[16];
        snprintf(after, sizeof after, "%d", HTTP_RETRY_AFTER_S);
        MHD_add_response_header(resp, "Retry-After", after);
    }
    if (close)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)rs->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* A worker's job: run the handler, leave the answer for the access handler's next call. */
static void run_dispatch(void *arg)
{
    conn_ctx_t *cc = arg;
    cc->rs = (http_resp_t){.status = 500};
    dispatch(cc->h, cc->conn, cc->url, cc->method, cc, &cc->rs);
    cc->poll = cc->rs.poll; /* then the answer comes from http__poll_step */
    cc->rs.poll = NULL;
    cc->answered = !cc->poll;
}

/* A long poll's turn on the polling thread: its answer, or parked again. */
static enum MHD_Result step_poll(struct MHD_Connection *conn, conn_ctx_t *cc)
{
    if (!http__poll_step(cc->poll, conn, &cc->rs))
        return MHD_YES; /* suspended until the next wake */
    http__poll_free(cc->poll);
    cc->poll = NULL;
    return queue_answer(conn, &cc->rs, false);
}

/* Answers that never block run on the polling thread: liveness asks nothing but a flag
 * (/readyz asks the database, which may take a connect timeout: it goes to a worker). */
static bool answered_in_place(const char *url)
{
    return strcmp(url, "/healthz") == 0;
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
        http__front_headers_done(h->front, conn);
        http_err_t fe;
        int bad = framing_error(conn, &fe);
        if (bad) {
            http__front_count_bad_framing(h->front);
            http_resp_t rs = {0};
            http__resp_error(&rs, fe, NULL);
            return queue_answer(conn, &rs, true);
        }
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
    if (cc->poll)
        return step_poll(conn, cc);
    if (cc->answered) { /* resumed by the worker that ran the handler */
        cc->answered = false;
        return queue_answer(conn, &cc->rs, false);
    }
    if (*upload_data_size > 0)
        http__front_body_bytes(h->front, conn, *upload_data_size);
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

    http__front_handling(h->front, conn);
    enum MHD_Result sret;
    if (!cc->too_large && http__serve_static(conn, method, url, &sret))
        return sret;
    if (!cc->too_large && !answered_in_place(url)) {
        cc->h = h;
        cc->conn = conn;
        cc->url = url;
        cc->method = method;
        if (http__front_offload(h->front, conn, run_dispatch, cc))
            return MHD_YES; /* suspended; called again once the worker has the answer */
    }
    cc->rs = (http_resp_t){.status = 500};
    dispatch(h, conn, url, method, cc, &cc->rs);
    if (cc->rs.poll) {
        cc->poll = cc->rs.poll;
        cc->rs.poll = NULL;
        return step_poll(conn, cc);
    }
    return queue_answer(conn, &cc->rs, false);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_server_t *h = cls;
    (void)toe;
    http__front_request_done(h->front, conn);
    conn_ctx_t *cc = *con_cls;
    if (cc) {
        http__ota_upload_free(cc->upload);
        free(cc->buf);
        http__poll_free(cc->poll);
        free(cc->rs.body);
        if (cc->rs.stream)
            MHD_destroy_response(cc->rs.stream);
        free(cc);
        *con_cls = NULL;
    }
}

/* The watchdog's pass: parked event streams and long polls that are due. */
static void events_tick(void *ctx)
{
    http__events_tick(ctx, false);
    http__poll_tick(ctx);
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
    pthread_mutex_init(&h->login_mu, NULL);
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
    http_front_cfg_t fc = {.header_timeout_ms = cfg->header_timeout_ms,
                           .idle_timeout_ms = cfg->idle_timeout_ms,
                           .body_min_rate = cfg->body_min_rate,
                           .max_connections = (size_t)cfg->max_connections,
                           .max_per_addr = (size_t)cfg->max_connections_per_addr,
                           .max_workers = cfg->max_workers,
                           .tick = events_tick,
                           .tick_ctx = h};
    h->front = http__front_new(&fc);
    if (!h->front) {
        snprintf(err, ERR_LEN, "http: cannot start the connection watchdog thread");
        goto fail;
    }
    h->daemon = MHD_start_daemon(
        /* Event-driven: idle connections cost a socket, not a thread; handlers that may block
         * run on front.c's workers while their connection is suspended. */
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME,
        (uint16_t)cfg->port, http__front_accept, h->front, on_request, h, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)cfg->threads,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)(256 * 1024), MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, h, MHD_OPTION_NOTIFY_CONNECTION, http__front_on_connection, h->front,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)((cfg->idle_timeout_ms + 999) / 1000),
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->max_connections,
        /* front.c's accept policy enforces and counts the per-address cap; libmicrohttpd's
         * per-IP check runs before it, so it is only a backstop at twice the cap. */
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)cfg->max_connections_per_addr * 2,
        MHD_OPTION_END);
    if (!h->daemon) {
        snprintf(err, ERR_LEN, "http: cannot listen on %s:%d: %s", h->bind_addr, cfg->port,
                 strerror(errno ? errno : EADDRINUSE));
        goto fail;
    }
    LOG_I("http", "REST API listening on %s:%d", h->bind_addr, http__server_port(h));
    return h;
fail:
    http__front_free(h->front);
    http__devact_free(h->devact);
    http__jwt_cache_free(h->jwt_cache);
    http__dev_cache_free(h->dev_cache);
    OPENSSL_cleanse(h->jwt_key, sizeof h->jwt_key);
    pthread_mutex_destroy(&h->mu);
    pthread_mutex_destroy(&h->login_mu);
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

void http_server_front_stats(http_server_t *h, http_front_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (h && h->front)
        http__front_stats(h->front, out);
}

void http_server_stop(http_server_t *h)
{
    if (!h)
        return;
    atomic_store(&h->ready, false); /* event streams end within half a second */
    http__rpc_cancel_all(h);
    http__poll_cancel_all(h);
    /* No suspended connection may remain for MHD_stop_daemon: handlers finish (the cancels
     * above end their waits) and their workers resume them; event streams end. */
    http__front_drain(h->front);
    http__events_stop_all(h);
    MHD_stop_daemon(h->daemon);
    http__front_free(h->front);
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
    pthread_mutex_destroy(&h->login_mu);
    pthread_cond_destroy(&h->bg_done);
    free(h->bind_addr);
    free(h->jwt_issuer);
    free(h);
}
