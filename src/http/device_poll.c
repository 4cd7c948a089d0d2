/* device_poll.c — the two long polls of ThingsBoard's HTTP device API:
 *   GET /api/v1/{token}/attributes/updates?timeout=MS  (a shared-attribute change)
 *   GET /api/v1/{token}/rpc?timeout=MS                 (a server-side RPC)
 *
 * Answers, as ThingsBoard's DeviceApiController (HttpSessionListener) gives them:
 *   200 {"key":value,...} or {"deleted":["key",...]}  the first change after the request
 *   200 {"id":N,"method":"..","params":..}            an RPC, which counts as delivered
 *   408, empty                                        the timeout passed (ThingsBoard's
 *                                                     session expiry) or the device's
 *                                                     credentials changed (session closed)
 *   403 "Device was deleted!" (text)                  the device was deleted meanwhile
 *   401, empty                                        unknown token (DeviceAuthCallback)
 *   400, empty                                        a timeout that is not a number
 * timeout: absent or 0 is the configured default (ThingsBoard's transport.http.request_timeout,
 * 60 s); more than the configured maximum (its max_request_timeout, 300 s) is cut to it, where
 * ThingsBoard's servlet container would answer 503 instead; negative waits for nothing.
 *
 * DESIGN. A poll holds no thread while it waits. The handler (on a worker, front.c) only checks
 * the token and registers a hub waiter, and hands the poll to server.c (rs->poll); the worker
 * resumes the connection and the access handler runs http__poll_step on a polling thread:
 * it takes a pending RPC or the event that fired, or parks the connection again
 * (MHD_suspend_connection). What wakes a parked poll resumes its connection
 * (MHD_resume_connection), and the step runs again: the hub's wake callback (an RPC, an
 * attribute change, the device deleted or its credentials changed), http_server_stop, or the
 * front's watchdog tick (http__poll_tick, every 250 ms) when the timeout has passed or the
 * client hung up (POLLRDHUP on its socket: libmicrohttpd does not watch a suspended
 * connection), so a client that goes away frees its slot within a tick instead of holding it
 * to the end of its timeout. Polls are still capped (hub_wait_add: a global cap and one per
 * device, 503 with Retry-After beyond) and counted (/metrics): each holds a connection. HTTP
 * devices are not gated by power-saving settings (those are CoAP PSM / eDRX radio states): an
 * RPC or an attribute change reaches a waiting poll at once.
 */
#include "http/http_int.h"

#include "core/clock.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One open long poll, linked into h->polls (under h->mu) from registration to its end. */
struct http_poll {
    struct http_poll *next;
    http_server_t *srv;
    struct MHD_Connection *conn;
    hub_waiter_t w;
    hub_wait_kind_t kind;
    int64_t device_id;
    int64_t deadline_ms;
    int sock;           /* the client's socket (-1 without a connection) */
    pthread_mutex_t mu; /* guards the fields below */
    bool suspended;     /* parked by http__poll_step; the next wake resumes it */
    bool kicked;        /* a wake came while the step was running: look again */
    bool fired;         /* an event that ends the poll arrived (first one wins) */
    hub_event_type_t type;
    char *json;
    bool cancelled; /* the server is stopping */
    bool gone;      /* the client hung up */
};

/* Under p->mu: the step runs again (now if parked, else once the running one looks again). */
static void wake(http_poll_t *p)
{
    if (p->suspended) {
        p->suspended = false;
        MHD_resume_connection(p->conn);
    } else {
        p->kicked = true;
    }
}

/* The hub's wake callback (publishing thread, under the hub's waiter lock): copy and wake. */
static void on_wake(void *ctx, hub_event_type_t type, const char *json)
{
    http_poll_t *p = ctx;
    pthread_mutex_lock(&p->mu);
    if (type != HUB_EV_RPC_PENDING && !p->fired) { /* that one only says "take again" */
        p->fired = true;
        p->type = type;
        p->json = json ? xstrdup(json) : NULL;
    }
    wake(p);
    pthread_mutex_unlock(&p->mu);
}

void http__poll_cancel_all(http_server_t *h)
{
    pthread_mutex_lock(&h->mu);
    h->stopping = true; /* no new polls (checked when one links itself in) */
    for (http_poll_t *p = h->polls; p; p = p->next) {
        pthread_mutex_lock(&p->mu);
        p->cancelled = true;
        wake(p);
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&h->mu);
}

/* Whether the client closed its end (a hang-up, or a half-close, which HTTP/1.1 clients do
 * not send mid-request). */
static bool hung_up(int sock)
{
    if (sock < 0)
        return false;
    struct pollfd pf = {.fd = sock, .events = POLLRDHUP};
    return poll(&pf, 1, 0) == 1 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

void http__poll_tick(http_server_t *h)
{
    int64_t now = clock_mono_ms();
    pthread_mutex_lock(&h->mu);
    for (http_poll_t *p = h->polls; p; p = p->next) {
        pthread_mutex_lock(&p->mu);
        if (p->suspended) {
            if (hung_up(p->sock))
                p->gone = true;
            if (p->gone || now >= p->deadline_ms)
                wake(p);
        }
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&h->mu);
}

void http__poll_free(http_poll_t *p)
{
    if (!p)
        return;
    http_server_t *h = p->srv;
    hub_wait_remove(h->hub, &p->w); /* the callback is done with p after this */
    pthread_mutex_lock(&h->mu);
    for (http_poll_t **pp = &h->polls; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    pthread_mutex_unlock(&h->mu);
    free(p->json);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* ?timeout= in ms: the default for absent or 0, cut to the maximum; false (400 set, empty as
 * the rest of the device API answers) if it is not an integer. */
static bool timeout_arg(const http_req_t *rq, http_resp_t *rs, int64_t *out)
{
    const http_cfg_t *c = &rq->srv->cfg;
    const char *t = http__query(rq, "timeout");
    long long v = 0;
    if (t && *t) {
        char *end;
        errno = 0;
        v = strtoll(t, &end, 10);
        if (errno || *end) {
            rs->status = 400;
            return false;
        }
    }
    if (v == 0)
        v = c->long_poll_timeout_ms;
    if (v > c->long_poll_max_timeout_ms)
        v = c->long_poll_max_timeout_ms;
    *out = v;
    return true;
}

/* The client's socket, or -1 (handlers called without a connection, in tests). */
static int client_fd(const http_req_t *rq)
{
    if (!rq->conn)
        return -1;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(rq->conn,
                                                                 MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

/* What ended the poll, turned into the answer. */
static void answer_event(http_resp_t *rs, hub_event_type_t type, char *json)
{
    switch (type) {
    case HUB_EV_SHARED_UPDATED:
    case HUB_EV_SHARED_DELETED:
        http__resp_json_text(rs, 200, json ? json : xstrdup("{}"));
        return;
    case HUB_EV_DEVICE_DELETED:
        http__resp_text(rs, 403, "Device was deleted!");
        break;
    case HUB_EV_CREDENTIALS_CHANGED:
    case HUB_EV_RPC_PENDING:
    default:
        rs->status = 408; /* ThingsBoard closes the session: REQUEST_TIMEOUT, no body */
        break;
    }
    free(json);
}

bool http__poll_step(http_poll_t *p, struct MHD_Connection *conn, http_resp_t *rs)
{
    http_server_t *h = p->srv;
    for (;;) {
        /* Taken first and after every wake-up: an RPC may have been pending before the
         * request came (ThingsBoard sends pending RPCs on subscription too). */
        hub_rpc_t rpc;
        if (p->kind == HUB_WAIT_RPC && hub_rpc_take(h->hub, p->device_id, &rpc)) {
            http__resp_json_text(rs, 200, rpc.body);
            /* As ThingsBoard: handed to the HTTP response = DELIVERED (a one-way call
             * returns now; a two-way one waits for POST /api/v1/{token}/rpc/{id}). */
            hub_rpc_delivered(h->hub, p->device_id, rpc.request_id);
            return true;
        }
        pthread_mutex_lock(&p->mu);
        p->kicked = false;
        bool fired = p->fired, cancelled = p->cancelled, gone = p->gone;
        hub_event_type_t type = p->type;
        char *json = p->json;
        p->json = NULL;
        pthread_mutex_unlock(&p->mu);
        if (fired) {
            answer_event(rs, type, json);
            return true;
        }
        if (cancelled) {
            http__resp_error(rs, HTTP_E_UNAVAILABLE, "Server is shutting down");
            return true;
        }
        if (gone || clock_mono_ms() >= p->deadline_ms) {
            rs->status = 408; /* ThingsBoard's session expiry; nobody reads it if gone */
            return true;
        }
        pthread_mutex_lock(&p->mu);
        if (!p->kicked) {
            p->suspended = true;
            MHD_suspend_connection(conn);
            pthread_mutex_unlock(&p->mu);
            return false;
        }
        pthread_mutex_unlock(&p->mu);
    }
}

static void long_poll(http_req_t *rq, http_resp_t *rs, hub_wait_kind_t kind)
{
    http_server_t *h = rq->srv;
    const char *token = rq->params[0];
    size_t len = strlen(token);
    int64_t device_id = len <= HTTP_TOKEN_MAX
                            ? registry_find_token(h->reg, (const uint8_t *)token, len)
                            : 0;
    if (device_id == 0) {
        rs->status = 401; /* no body, as ThingsBoard's transport */
        return;
    }
    /* ThingsBoard records activity when a poll subscribes (DefaultTransportService): the
     * HTTP device API's bookkeeping (device_activity.c), as for its other requests. */
    http__devact_request(h->devact, device_id);
    int64_t timeout_ms;
    if (!timeout_arg(rq, rs, &timeout_ms))
        return;

    http_poll_t *p = xcalloc(1, sizeof *p);
    p->srv = h;
    p->conn = rq->conn;
    p->kind = kind;
    p->device_id = device_id;
    p->deadline_ms = clock_mono_ms() + timeout_ms;
    p->sock = client_fd(rq);
    p->w = (hub_waiter_t){.device_id = device_id, .kind = kind, .cb = on_wake, .ctx = p};
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_lock(&h->mu);
    bool stopping = h->stopping;
    if (!stopping) {
        p->next = h->polls;
        h->polls = p;
    }
    pthread_mutex_unlock(&h->mu);

    int rc = stopping
                 ? -ECANCELED
                 : hub_wait_add(h->hub, &p->w, h->cfg.long_poll_max, h->cfg.long_poll_per_device);
    if (rc == 0 && rq->conn) {
        rs->poll = p; /* answered by http__poll_step once the worker resumes the connection */
        return;
    }
    if (rc == -EAGAIN)
        http__resp_error(rs, HTTP_E_UNAVAILABLE, "Too many open long polls");
    else if (rc == -EBUSY)
        http__resp_error(rs, HTTP_E_UNAVAILABLE, "Too many open long polls for this device");
    else if (rc < 0)
        http__resp_error(rs, HTTP_E_UNAVAILABLE, "Server is shutting down");
    else
        rs->status = 408; /* no connection to park (a handler called directly) */
    http__poll_free(p);
}

void http__h_dev_attr_updates(http_req_t *rq, http_resp_t *rs)
{
    long_poll(rq, rs, HUB_WAIT_ATTRIBUTES);
}

void http__h_dev_rpc_poll(http_req_t *rq, http_resp_t *rs)
{
    long_poll(rq, rs, HUB_WAIT_RPC);
}
