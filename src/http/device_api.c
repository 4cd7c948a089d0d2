/* device_api.c — ThingsBoard's HTTP device API on the web port (its DeviceApiController):
 * POST /api/v1/{token}/telemetry and /attributes, GET /attributes, POST /rpc and /rpc/{id},
 * POST /claim, POST /api/v1/provision, GET /firmware and /software. The long polls
 * (GET /attributes/updates, GET /rpc) live in their own file.
 *
 * One implementation underneath: what a body means is uplink's (uplink/uplink.h), the same
 * functions the CoAP shards call, so typing, timestamps, claim data, client RPC answers and
 * activity cannot differ between the two transports. Only the waiting differs: a CoAP shard
 * answers 2.01 from the commit's completion, an HTTP thread blocks in store_submit_wait, and
 * both only after the store's group commit (an acknowledged point is never lost).
 *
 * Answers are ThingsBoard's: plain status codes with empty bodies (200 on success, 401 for an
 * unknown token, 400 for a body that does not parse, 500/503 when the store fails), JSON only
 * where ThingsBoard sends JSON (attributes, client RPC, provisioning). These routes are
 * public: the token in the path is the credential (HTTP_ROUTE_PUBLIC). Tokens are never
 * logged.
 */
#include "http/http_int.h"

#include "core/arena.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "device/provision.h"
#include "ota/ota.h"
#include "uplink/uplink.h"

#include <errno.h>
#include <stdint.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void status_only(http_resp_t *rs, int status)
{
    free(rs->body);
    rs->body = NULL;
    rs->body_len = 0;
    rs->status = status;
}

/* A failed store call: the status the REST error table gives it (503 while the database
 * cannot take work, with Retry-After from server.c; else 500), body empty as ThingsBoard's
 * transport answers. */
static void store_failed(http_req_t *rq, http_resp_t *rs, int64_t device_id, const char *what,
                         int err)
{
    /* During a storage fault or after corruption the store has logged the episode once
     * (store/health.c): no line per request. */
    if (!store_unready_reason(rq->srv->store))
        LOG_W("http", "device API: %s for device %lld failed: %s", what, (long long)device_id,
              err_str(err));
    status_only(rs, http__err_info(http__err_from_store(err))->status);
}

/* The device named by the {token} path parameter, which counts as its activity; 0 (and rs
 * 401, as ThingsBoard's DeviceAuthCallback) when the token is unknown. */
static int64_t device_of(http_req_t *rq, http_resp_t *rs)
{
    const char *token = rq->params[0];
    int64_t id = registry_find_token(rq->srv->reg, (const uint8_t *)token, strlen(token));
    if (!id) {
        status_only(rs, 401);
        return 0;
    }
    http__devact_request(rq->srv->devact, id);
    return id;
}

typedef int (*to_batch_fn)(arena_t *arena, const values_cfg_t *cfg, const uint8_t *p, size_t len,
                           int64_t device_id, int64_t now_ms, store_batch_t *b, char *err,
                           size_t err_cap);

/* Telemetry, attributes and claim: the body becomes a batch (uplink), answered 200 once it
 * has committed. */
static void post_batch(http_req_t *rq, http_resp_t *rs, to_batch_fn fn, const char *what)
{
    int64_t dev = device_of(rq, rs);
    if (!dev)
        return;
    char err[160];
    arena_t arena;
    arena_init(&arena, 0);
    store_batch_t *b = store_batch_new();
    int rc = fn(&arena, &rq->srv->cfg.device_values, (const uint8_t *)rq->body, rq->body_len, dev,
                clock_wall_ms(), b, err, sizeof err);
    arena_fini(&arena);
    if (rc < 0) {
        store_batch_free(b);
        LOG_D("http", "device %lld: bad %s: %s", (long long)dev, what, err);
        status_only(rs, 400);
        return;
    }
    if (store_batch_len(b) == 0) { /* e.g. telemetry {}: nothing to make durable */
        store_batch_free(b);
        status_only(rs, 200);
        return;
    }
    rc = store_submit_wait(rq->srv->store, b);
    if (rc < 0)
        store_failed(rq, rs, dev, "store commit", rc);
    else
        status_only(rs, 200);
}

void http__h_dev_telemetry(http_req_t *rq, http_resp_t *rs)
{
    post_batch(rq, rs, uplink_telemetry, "telemetry");
}

void http__h_dev_attributes_post(http_req_t *rq, http_resp_t *rs)
{
    post_batch(rq, rs, uplink_attributes, "attributes");
}

void http__h_dev_claim(http_req_t *rq, http_resp_t *rs)
{
    post_batch(rq, rs, uplink_claim, "claim body");
}

static void add_keys(void *arg, const char *value)
{
    uplink_keys_add_csv(arg, value, strlen(value));
}

void http__h_dev_attributes_get(http_req_t *rq, http_resp_t *rs)
{
    int64_t dev = device_of(rq, rs);
    if (!dev)
        return;
    uplink_keys_t ck = {0}, sk = {0};
    http__query_each(rq, "clientKeys", add_keys, &ck);
    http__query_each(rq, "sharedKeys", add_keys, &sk);
    values_buf_t b = {0};
    int rc = uplink_attributes_read(rq->srv->store, dev, &ck, &sk, &b);
    uplink_keys_fini(&ck);
    uplink_keys_fini(&sk);
    if (rc < 0) {
        store_failed(rq, rs, dev, "attribute read", rc);
    } else if (rc == 1) {
        /* ThingsBoard writes the (empty) GetAttributeResponse as {}; CoAP answers 4.04. */
        http__resp_json_text(rs, 200, xstrdup("{}"));
    } else {
        http__resp_json_text(rs, 200, values_buf_take(&b));
    }
    values_buf_fini(&b);
}

void http__h_dev_rpc_reply(http_req_t *rq, http_resp_t *rs)
{
    int64_t dev = device_of(rq, rs);
    if (!dev)
        return;
    /* requestId is an Integer path variable in ThingsBoard: anything else is 400. */
    char *end;
    errno = 0;
    long long id = strtoll(rq->params[1], &end, 10);
    if (errno || *end || id < INT32_MIN || id > INT32_MAX) {
        status_only(rs, 400);
        return;
    }
    char err[160];
    arena_t arena;
    arena_init(&arena, 0);
    int rc = uplink_rpc_reply(rq->srv->hub, &arena, &rq->srv->cfg.device_values,
                              (const uint8_t *)rq->body, rq->body_len, dev, id, err, sizeof err);
    arena_fini(&arena); /* the hub copied the body */
    if (rc < 0) {
        LOG_D("http", "device %lld: bad RPC reply: %s", (long long)dev, err);
        status_only(rs, 400);
        return;
    }
    status_only(rs, 200); /* unknown or stale ids too, as ThingsBoard */
}

void http__h_dev_client_rpc(http_req_t *rq, http_resp_t *rs)
{
    int64_t dev = device_of(rq, rs);
    if (!dev)
        return;
    char err[160];
    arena_t arena;
    arena_init(&arena, 0);
    values_buf_t b = {0};
    int rc = uplink_client_rpc(&arena, &rq->srv->cfg.device_values, (const uint8_t *)rq->body,
                               rq->body_len, clock_wall_ms(), &b, err, sizeof err);
    arena_fini(&arena);
    if (rc < 0) {
        LOG_D("http", "device %lld: bad client RPC: %s", (long long)dev, err);
        status_only(rs, 400);
    } else {
        http__resp_json_text(rs, rc == 0 ? 200 : 404, values_buf_take(&b));
    }
    values_buf_fini(&b);
}

void http__h_dev_provision(http_req_t *rq, http_resp_t *rs)
{
    char err[160];
    arena_t arena;
    arena_init(&arena, 0);
    provision_req_t pr;
    if (provision_req_parse(&arena, &rq->srv->cfg.device_values, (const uint8_t *)rq->body,
                            rq->body_len, &pr, err, sizeof err) < 0) {
        arena_fini(&arena);
        LOG_D("http", "bad provision request: %s", err);
        status_only(rs, 400);
        return;
    }
    provision_result_t r;
    /* HTTP threads may block: the rules run here, as provision_device allows any thread. */
    int rc = provision_device(rq->srv->store, rq->srv->reg, rq->srv->hub, &pr, &r);
    arena_fini(&arena);
    if (rc < 0) {
        store_failed(rq, rs, 0, "provisioning", rc);
        return;
    }
    if (r.status == PROVISION_SUCCESS)
        LOG_I("http", "device %lld provisioned (%s)", (long long)r.device_id,
              store_cred_type_name(r.cred_type));
    else
        LOG_I("http", "provisioning refused: %s", r.why);
    /* ThingsBoard's DeviceProvisionCallback: 200 with the status in the body, also for
     * NOT_FOUND and FAILURE. */
    http__resp_json_text(rs, 200, provision_result_json(&r));
    provision_result_fini(&r);
}

/* ---- OTA: GET /api/v1/{token}/firmware|software?title=&version=&size=&chunk= ---- */

/* Integer.parseInt of an optional int parameter (default 0); false when malformed. */
static bool int_param(const http_req_t *rq, const char *name, int64_t *out)
{
    *out = 0;
    const char *s = http__query(rq, name);
    if (!s || !*s)
        return true;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < 0 || v > INT32_MAX)
        return false;
    *out = v;
    return true;
}

static void ota_get(http_req_t *rq, http_resp_t *rs, ota_type_t type)
{
    int64_t dev = device_of(rq, rs);
    if (!dev)
        return;
    /* title and version are required parameters in ThingsBoard (a missing one is 400). */
    const char *title = http__query(rq, "title"), *version = http__query(rq, "version");
    int64_t size, chunk;
    if (!title || !version || !int_param(rq, "size", &size) || !int_param(rq, "chunk", &chunk)) {
        status_only(rs, 400);
        return;
    }
    store_ota_t o;
    int rc = ota_resolve(rq->srv->store, dev, type, &o);
    if (rc == -ENOENT || (rc == 0 && (!o.has_data || !rq->srv->cfg.ota))) {
        status_only(rs, 404); /* nothing assigned, or an external URL package */
    } else if (rc < 0) {
        store_failed(rq, rs, dev, "OTA package read", rc);
    } else if (!o.title || !o.version ||
               !ota_names_match(&o, title, strlen(title), version, strlen(version))) {
        status_only(rs, 400); /* ThingsBoard: not the package assigned */
    } else {
        /* The representation: the whole image, or the chunk [chunk*size, +size); a chunk past
         * the end is an empty 200, as ThingsBoard's OTA data cache answers it. */
        uint64_t start, len;
        ota_chunk_range(o.data_size, size, chunk, &start, &len); /* past the end: len 0 */
        int fd = ota_files_open_image(rq->srv->cfg.ota, o.uuid);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0 || st.st_size != o.data_size) {
            LOG_E("http", "OTA package %s: image file missing or of the wrong size", o.uuid);
            if (fd >= 0)
                close(fd);
            status_only(rs, 500);
        } else {
            /* libmicrohttpd sends the range from the descriptor (sendfile/pread) and closes
             * it: an image is never loaded whole. */
            struct MHD_Response *r = MHD_create_response_from_fd_at_offset64(len, fd,
                                                                             len ? start : 0);
            if (!r) {
                close(fd);
                status_only(rs, 500);
            } else {
                const char *fn = o.file_name && *o.file_name ? o.file_name : o.uuid;
                char *cd = xasprintf("attachment;filename=%s", fn);
                MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_DISPOSITION, cd);
                MHD_add_response_header(r, "x-filename", fn);
                MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                        o.content_type && *o.content_type
                                            ? o.content_type
                                            : "application/octet-stream");
                MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
                free(cd);
                rs->stream = r;
                rs->status = 200;
            }
        }
    }
    store_ota_fini(&o);
}

void http__h_dev_firmware(http_req_t *rq, http_resp_t *rs)
{
    ota_get(rq, rs, OTA_FIRMWARE);
}

void http__h_dev_software(http_req_t *rq, http_resp_t *rs)
{
    ota_get(rq, rs, OTA_SOFTWARE);
}
