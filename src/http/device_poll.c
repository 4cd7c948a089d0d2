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
 * DESIGN. libmicrohttpd runs a thread per connection here, and its suspend/resume does not
 * apply to that mode (microhttpd.h: "not applicable to thread-per-connection"), so a poll
 * holds its thread for its whole wait. That is why polls are capped (hub_wait_add: a global
 * cap and one per device, 503 with Retry-After beyond) and counted (/metrics). The thread
 * sleeps in poll(2) on two descriptors: an eventfd the hub's wake callback writes to, and the
 * client's socket for POLLRDHUP, so a client that hangs up frees its slot at once instead of
 * holding it to the end of its timeout. Nothing wakes on a timer. HTTP devices are not gated
 * by power-saving settings (those are CoAP PSM / eDRX radio states): an RPC or an attribute
 * change reaches a waiting poll at once.
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
#include <sys/eventfd.h>
#include <unistd.h>

/* One open long poll; lives on its request thread's stack, linked into h->polls (under h->mu)
 * so that http_server_stop can end it. */
typedef struct http_poll {
    struct http_poll *next;
    int efd;            /* written by the wake callback and by the stop path */
    pthread_mutex_t mu; /* guards the fields below */
    bool fired;         /* an event that ends the poll arrived (first one wins) */
    hub_event_type_t type;
    char *json;
    bool cancelled; /* the server is stopping */
} http_poll_t;

static void kick(int efd)
{
    uint64_t one = 1;
    ssize_t n = write(efd, &one, sizeof one);
    (void)n; /* only fails if the counter would overflow: it is set already */
}

/* The hub's wake callback (publishing thread, under the hub's waiter lock): copy and signal. */
static void on_wake(void *ctx, hub_event_type_t type, const char *json)
{
    http_poll_t *p = ctx;
    if (type != HUB_EV_RPC_PENDING) { /* that one only says "try hub_rpc_take again" */
        pthread_mutex_lock(&p->mu);
        if (!p->fired) {
            p->fired = true;
            p->type = type;
            p->json = json ? xstrdup(json) : NULL;
        }
        pthread_mutex_unlock(&p->mu);
    }
    kick(p->efd);
}

void http__poll_cancel_all(http_server_t *h)
{
    pthread_mutex_lock(&h->mu);
    h->stopping = true; /* no new polls (checked when one links itself in) */
    for (http_poll_t *p = h->polls; p; p = p->next) {
        pthread_mutex_lock(&p->mu);
        p->cancelled = true;
        pthread_mutex_unlock(&p->mu);
        kick(p->efd);
    }
    pthread_mutex_unlock(&h->mu);
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

/* Sleeps until the eventfd is written, the client hangs up or remaining_ms pass. Returns
 * false if the client is gone. */
static bool sleep_on(int efd, int sock, int64_t remaining_ms)
{
    struct pollfd fds[2] = {{.fd = efd, .events = POLLIN}, {.fd = sock, .events = POLLRDHUP}};
    int n = sock >= 0 ? 2 : 1;
    int ms = remaining_ms > INT_MAX ? INT_MAX : (int)remaining_ms;
    int r = poll(fds, (nfds_t)n, ms);
    if (r <= 0)
        return true; /* timeout (the caller checks the deadline) or EINTR */
    /* A hang-up (or a half-close, which HTTP/1.1 clients do not send mid-request). */
    if (n == 2 && (fds[1].revents & (POLLRDHUP | POLLHUP | POLLERR)))
        return false;
    if (fds[0].revents & POLLIN) {
        uint64_t v;
        ssize_t got = read(efd, &v, sizeof v);
        (void)got; /* resets the counter; EAGAIN cannot happen after POLLIN */
    }
    return true;
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

/* The poll itself, once the device is known and the waiter registered. */
static void wait_for(http_server_t *h, http_req_t *rq, http_resp_t *rs, http_poll_t *p,
                     hub_wait_kind_t kind, int64_t device_id, int64_t timeout_ms)
{
    int sock = client_fd(rq);
    int64_t deadline = clock_mono_ms() + timeout_ms;
    for (;;) {
        /* Taken before the wait and after every wake-up: an RPC may have been pending before
         * the request came (ThingsBoard sends pending RPCs on subscription too). */
        hub_rpc_t rpc;
        if (kind == HUB_WAIT_RPC && hub_rpc_take(h->hub, device_id, &rpc)) {
            http__resp_json_text(rs, 200, rpc.body);
            /* As ThingsBoard: handed to the HTTP response = DELIVERED (a one-way call
             * returns now; a two-way one waits for POST /api/v1/{token}/rpc/{id}). */
            hub_rpc_delivered(h->hub, device_id, rpc.request_id);
            return;
        }
        pthread_mutex_lock(&p->mu);
        bool fired = p->fired, cancelled = p->cancelled;
        hub_event_type_t type = p->type;
        char *json = p->json;
        p->json = NULL;
        pthread_mutex_unlock(&p->mu);
        if (fired) {
            answer_event(rs, type, json);
            return;
        }
        if (cancelled) {
            http__resp_error(rs, HTTP_E_UNAVAILABLE, "Server is shutting down");
            return;
        }
        int64_t remaining = deadline - clock_mono_ms();
        if (remaining <= 0) {
            rs->status = 408;
            return;
        }
        if (!sleep_on(p->efd, sock, remaining)) {
            rs->status = 408; /* nobody reads it: the client is gone */
            return;
        }
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

    http_poll_t p = {.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
    if (p.efd < 0) { /* out of descriptors: the same answer as a full cap */
        http__resp_error(rs, HTTP_E_UNAVAILABLE, "Too many open long polls");
        return;
    }
    pthread_mutex_init(&p.mu, NULL);
    pthread_mutex_lock(&h->mu);
    bool stopping = h->stopping;
    if (!stopping) {
        p.next = h->polls;
        h->polls = &p;
    }
    pthread_mutex_unlock(&h->mu);

    hub_waiter_t w = {.device_id = device_id, .kind = kind, .cb = on_wake, .ctx = &p};
    int rc = stopping ? -ECANCELED
                      : hub_wait_add(h->hub, &w, h->cfg.long_poll_max, h->cfg.long_poll_per_device);
    if (rc == -EAGAIN)
        http__resp_error(rs, HTTP_E_UNAVAILABLE, "Too many open long polls");
    else if (rc == -EBUSY)
        http__resp_error(rs, HTTP_E_UNAVAILABLE, "Too many open long polls for this device");
    else if (rc < 0)
        http__resp_error(rs, HTTP_E_UNAVAILABLE, "Server is shutting down");
    else
        wait_for(h, rq, rs, &p, kind, device_id, timeout_ms);

    hub_wait_remove(h->hub, &w); /* the callback is done with p after this */
    if (!stopping) {
        pthread_mutex_lock(&h->mu);
        for (http_poll_t **pp = &h->polls; *pp; pp = &(*pp)->next) {
            if (*pp == &p) {
                *pp = p.next;
                break;
            }
        }
        pthread_mutex_unlock(&h->mu);
    }
    free(p.json);
    pthread_mutex_destroy(&p.mu);
    close(p.efd);
}

void http__h_dev_attr_updates(http_req_t *rq, http_resp_t *rs)
{
    long_poll(rq, rs, HUB_WAIT_ATTRIBUTES);
}

void http__h_dev_rpc_poll(http_req_t *rq, http_resp_t *rs)
{
    long_poll(rq, rs, HUB_WAIT_RPC);
}
