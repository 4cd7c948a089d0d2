/* rest_rpc.c — server-side RPC from REST to a device (§8.6), v1 and v2 status codes.
 *
 * A plain call blocks its HTTP worker (front.c; the connection is parked meanwhile) in
 * hub_rpc_call until the device answers or the timeout passes (bounded by the RPC timeout, at
 * most 24 h by body.c's cap); workers beyond --http-workers queue, /healthz never waits. A persistent
 * call answers {"rpcId"} at once and waits on a detached thread instead; the server counts
 * those threads and http_server_stop waits for them, so they never outlive the store or hub.
 * Every outcome is written to the RPC record so GET /api/rpc/persistent/{id} can report it.
 */
#include "http/http_int.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One RPC call blocked in hub_rpc_call; linked into h->inflight while it waits. */
typedef struct http_inflight {
    struct http_inflight *next;
    int64_t device_id;
} http_inflight_t;

typedef struct rpc_job {
    http_server_t *srv;
    int64_t device_id;
    char uuid[STORE_UUID_LEN + 1];
    http_rpc_req_t req;
    bool oneway;
} rpc_job_t;

static const char *status_of(hub_rpc_result_t r)
{
    switch (r) {
    case HUB_RPC_OK:
        return "SUCCESSFUL";
    case HUB_RPC_NOT_DELIVERED:
        return "EXPIRED";
    case HUB_RPC_NO_REPLY:
        return "TIMEOUT";
    case HUB_RPC_CANCELLED:
    default:
        return "FAILED";
    }
}

/* Runs the call and records the outcome. *reply receives a two-way reply (caller frees). */
static hub_rpc_result_t run(rpc_job_t *j, char **reply)
{
    int64_t request_id = 0;
    *reply = NULL;
    http_server_t *h = j->srv;
    http_inflight_t me = {.device_id = j->device_id};
    hub_rpc_result_t r = HUB_RPC_CANCELLED;
    pthread_mutex_lock(&h->mu);
    bool stopping = h->stopping;
    if (!stopping) {
        me.next = h->inflight;
        h->inflight = &me;
    }
    pthread_mutex_unlock(&h->mu);
    if (!stopping) {
        r = hub_rpc_call(h->hub, j->device_id, j->req.method, j->req.params, j->oneway,
                         j->req.timeout_ms, &request_id, reply);
        pthread_mutex_lock(&h->mu);
        for (http_inflight_t **pp = &h->inflight; *pp; pp = &(*pp)->next) {
            if (*pp == &me) {
                *pp = me.next;
                break;
            }
        }
        pthread_mutex_unlock(&h->mu);
    }
    const char *resp = NULL;
    json_t *parsed = NULL;
    if (r == HUB_RPC_OK && *reply) {
        parsed = json_loads(*reply, JSON_DECODE_ANY, NULL);
        resp = parsed ? *reply : NULL; /* the record's response column holds JSON only */
    }
    int rc = store_rpc_set_status(j->srv->store, j->uuid, status_of(r), resp);
    if (rc < 0 && rc != -ENOENT)
        LOG_W("http", "rpc %s: recording status failed: %s", j->uuid, err_str(rc));
    json_decref(parsed);
    return r;
}

static void *background(void *arg)
{
    rpc_job_t *j = arg;
    char *reply = NULL;
    run(j, &reply);
    free(reply);
    http_server_t *h = j->srv;
    http__rpc_req_fini(&j->req);
    free(j);
    pthread_mutex_lock(&h->mu);
    if (--h->n_background == 0)
        pthread_cond_broadcast(&h->bg_done);
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static void rpc(http_req_t *rq, http_resp_t *rs, bool v2)
{
    const char *kind = rq->params[0];
    bool oneway = strcmp(kind, "oneway") == 0;
    if (!oneway && strcmp(kind, "twoway") != 0) {
        http__resp_error(rs, HTTP_E_NO_ROUTE, NULL);
        return;
    }
    store_device_t d;
    if (!http__device_lookup(rq, rs, rq->params[1], &d))
        return;
    http_server_t *h = rq->srv;
    char msg[160];
    rpc_job_t *j = xcalloc(1, sizeof *j);
    j->srv = h;
    j->device_id = d.id;
    j->oneway = oneway;
    store_device_fini(&d);
    if (http__rpc_parse(rq->body, rq->body_len, h->cfg.rpc_default_timeout_ms,
                        h->cfg.rpc_min_timeout_ms, clock_wall_ms(), &j->req, msg,
                        sizeof msg) < 0) {
        http__resp_error(rs, HTTP_E_BAD_PARAMS, msg);
        free(j);
        return;
    }
    store_rpc_t rec = {.device_id = j->device_id, .expiration_ms = j->req.expiration_ms,
                       .method = j->req.method, .params = j->req.params,
                       .status = (char *)"QUEUED", .oneway = oneway,
                       .persistent = j->req.persistent};
    int rc = store_rpc_create(h->store, &rec);
    if (rc < 0) {
        http__resp_store_error(rs, rc);
        http__rpc_req_fini(&j->req);
        free(j);
        return;
    }
    memcpy(j->uuid, rec.uuid, sizeof j->uuid);

    if (j->req.persistent) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_mutex_lock(&h->mu);
        h->n_background++;
        pthread_mutex_unlock(&h->mu);
        char uuid[STORE_UUID_LEN + 1];
        memcpy(uuid, j->uuid, sizeof uuid);
        if (pthread_create(&t, &attr, background, j) != 0) {
            pthread_mutex_lock(&h->mu);
            h->n_background--;
            pthread_mutex_unlock(&h->mu);
            store_rpc_set_status(h->store, uuid, "FAILED", NULL);
            http__rpc_req_fini(&j->req);
            free(j);
            http__resp_error(rs, HTTP_E_UNAVAILABLE, NULL);
        } else {
            http__resp_json(rs, 200, json_pack("{s:s}", "rpcId", uuid));
        }
        pthread_attr_destroy(&attr);
        return;
    }

    char *reply = NULL;
    hub_rpc_result_t r = run(j, &reply);
    switch (r) {
    case HUB_RPC_OK:
        if (oneway) {
            http__resp_json(rs, 200, NULL);
        } else {
            json_t *p = reply ? json_loads(reply, JSON_DECODE_ANY, NULL) : NULL;
            if (p)
                http__resp_json(rs, 200, p);
            else
                http__resp_error(rs, HTTP_E_RPC_BAD_REPLY, NULL);
        }
        break;
    case HUB_RPC_NOT_DELIVERED:
        http__resp_error(rs, v2 ? HTTP_E_RPC_TIMEOUT_V2 : HTTP_E_RPC_NOT_DELIVERED_V1, NULL);
        break;
    case HUB_RPC_NO_REPLY:
        http__resp_error(rs, v2 ? HTTP_E_RPC_TIMEOUT_V2 : HTTP_E_RPC_NO_REPLY_V1, NULL);
        break;
    case HUB_RPC_CANCELLED:
    default:
        http__resp_error(rs, HTTP_E_NOT_FOUND, NULL);
        break;
    }
    free(reply);
    http__rpc_req_fini(&j->req);
    free(j);
}

void http__rpc_cancel_all(http_server_t *h)
{
    /* A call may have linked itself in but not yet entered the hub when we cancel, and so
     * would miss it: repeat until the list drains (waiters unlink themselves once woken),
     * bounded at about two seconds. */
    for (int round = 0; round < 200; round++) {
        pthread_mutex_lock(&h->mu);
        h->stopping = true;
        size_t n = 0;
        for (http_inflight_t *f = h->inflight; f; f = f->next)
            n++;
        int64_t *ids = n ? xcalloc(n, sizeof *ids) : NULL;
        n = 0;
        for (http_inflight_t *f = h->inflight; f; f = f->next)
            ids[n++] = f->device_id;
        pthread_mutex_unlock(&h->mu);
        if (n == 0)
            return;
        for (size_t i = 0; i < n; i++)
            hub_rpc_cancel_device(h->hub, ids[i]);
        free(ids);
        usleep(10 * 1000);
    }
    LOG_W("http", "RPC calls still waiting at shutdown");
}

void http__h_rpc_v1(http_req_t *rq, http_resp_t *rs)
{
    rpc(rq, rs, false);
}

void http__h_rpc_v2(http_req_t *rq, http_resp_t *rs)
{
    rpc(rq, rs, true);
}

void http__h_rpc_persistent_get(http_req_t *rq, http_resp_t *rs)
{
    const char *id = rq->params[0];
    if (!http__is_uuid(id)) {
        http__resp_error(rs, HTTP_E_BAD_PARAMS, "Invalid UUID string");
        return;
    }
    store_rpc_t r;
    memset(&r, 0, sizeof r);
    int rc = store_rpc_get(rq->srv->store, id, &r);
    if (rc < 0) {
        http__resp_store_error(rs, rc);
        return;
    }
    store_device_t d;
    memset(&d, 0, sizeof d);
    rc = store_device_get(rq->srv->store, r.device_id, &d);
    if (rc < 0 && rc != -ENOENT) { /* a deleted device leaves "" as TB's would; not a failure */
        http__resp_store_error(rs, rc);
        store_rpc_fini(&r);
        return;
    }
    json_t *params = r.params ? json_loads(r.params, JSON_DECODE_ANY, NULL) : NULL;
    json_t *resp = r.response ? json_loads(r.response, JSON_DECODE_ANY, NULL) : NULL;
    json_t *o = json_pack("{s:{s:s,s:s}, s:I, s:{s:s,s:s}, s:I, s:{s:I,s:b,s:{s:s,s:o}}, "
                          "s:o, s:s, s:b}",
                          "id", "entityType", "RPC", "id", r.uuid, "createdTime",
                          (json_int_t)r.created_ms, "deviceId", "entityType", "DEVICE", "id",
                          rc == 0 ? d.uuid : "", "expirationTime", (json_int_t)r.expiration_ms,
                          "request", "id", (json_int_t)r.request_id, "oneway", r.oneway, "body",
                          "method", r.method ? r.method : "", "params",
                          params ? params : json_null(), "response",
                          resp ? resp : json_null(), "status", r.status ? r.status : "",
                          "persistent", r.persistent);
    if (o)
        http__resp_json(rs, 200, o);
    else
        http__resp_error(rs, HTTP_E_GENERAL, NULL);
    if (rc == 0)
        store_device_fini(&d);
    store_rpc_fini(&r);
}
