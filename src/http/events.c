/* events.c — live updates for the web UI: GET /api/events?deviceId=<uuid>&token=<jwt>
 * streams Server-Sent Events (telemetry, attributes, activity) of one device; without
 * deviceId it streams the activity events of every device (the device list).
 *
 * DESIGN. Each stream registers a hub watcher. Watchers run on the publishing thread (the
 * store writer after a commit), so they only append the formatted event to the stream's
 * bounded buffer and wake the stream. The content reader runs on a polling thread that serves
 * many connections, so it never waits: with nothing to send it suspends the connection
 * (MHD_suspend_connection) and returns 0; a watcher resumes it when data arrives, and the
 * front's watchdog tick (http__events_tick, every 250 ms) resumes one that has been quiet for
 * 15 s so it sends a comment line that keeps proxies and the browser from closing it. A slow reader loses events beyond
 * the buffer cap (counted, never blocking the writer); the UI re-reads state on reconnect.
 * The JWT comes in the query because EventSource cannot set headers; it is never logged.
 *
 * ALL-DEVICES STREAM. Hub events carry the internal device id, the UI wants the uuid, and the
 * watcher must not call the store (it runs on a shard or the store writer). So the watcher
 * only queues (id, json) pairs (bounded, like the buffer); the reader resolves each id through a
 * per-stream id->uuid cache, asking the store on a miss (one indexed read, bounded by the
 * store's own timeouts, on the polling thread), and formats the event there. An id
 * the store no longer knows (device deleted) drops its event.
 */
#include "http/http_int.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { SSE_BUF_CAP = 1 << 20, SSE_KEEPALIVE_MS = 15000, SSE_POLL_MS = 500 };
enum { SSE_PENDING_CAP = 4096, SSE_UUID_CACHE = 1024 };

typedef struct pending_ev {
    int64_t device_id;
    char *json;
} pending_ev_t;

typedef struct uuid_slot {
    int64_t device_id;
    char uuid[STORE_UUID_LEN + 1];
} uuid_slot_t;

typedef struct sse {
    struct sse *next; /* in srv->streams (under srv->mu) */
    pthread_mutex_t mu;
    struct MHD_Connection *conn;
    bool suspended;  /* by the reader, waiting for data (under mu) */
    int64_t sent_ms; /* last time the reader handed out bytes */
    char *buf;
    size_t len, off, cap;
    uint64_t dropped;
    int64_t device_id; /* 0: every device (activity only) */
    char uuid[STORE_UUID_LEN + 1];
    http_server_t *srv;
    uint64_t watch;
    /* all-devices stream: events waiting for their uuid (under mu), and the reader's cache */
    pending_ev_t *pending;
    size_t n_pending;
    uuid_slot_t *cache;
    size_t n_cache;
} sse_t;

static const char *event_name(hub_watch_type_t t)
{
    switch (t) {
    case HUB_WATCH_TELEMETRY: return "telemetry";
    case HUB_WATCH_ATTRIBUTES: return "attributes";
    case HUB_WATCH_ACTIVITY: return "activity";
    }
    return "message";
}

/* Under c->mu: a reader that parked the connection for lack of data runs again. */
static void wake(sse_t *c)
{
    if (c->suspended) {
        c->suspended = false;
        MHD_resume_connection(c->conn);
    }
}

/* Appends under c->mu; false if the cap would be exceeded. */
static bool append(sse_t *c, const char *s, size_t n)
{
    if (c->len - c->off + n > SSE_BUF_CAP)
        return false;
    if (c->off && c->off == c->len)
        c->off = c->len = 0;
    if (c->len + n > c->cap) {
        c->cap = (c->len + n) * 2;
        c->buf = xrealloc(c->buf, c->cap);
    }
    memcpy(c->buf + c->len, s, n);
    c->len += n;
    return true;
}

/* Watcher of the all-devices stream: queue only, never touch the store here. */
static void on_watch_all(void *ctx, hub_watch_type_t type, int64_t device_id, const char *json)
{
    sse_t *c = ctx;
    if (type != HUB_WATCH_ACTIVITY)
        return;
    pthread_mutex_lock(&c->mu);
    if (c->n_pending < SSE_PENDING_CAP) {
        if (!c->pending)
            c->pending = xmalloc(SSE_PENDING_CAP * sizeof *c->pending);
        c->pending[c->n_pending++] = (pending_ev_t){.device_id = device_id,
                                                    .json = xstrdup(json)};
    } else {
        c->dropped++;
    }
    wake(c);
    pthread_mutex_unlock(&c->mu);
}

/* uuid of device_id via the stream's cache (reader thread only); false if unknown. */
static bool resolve_uuid(sse_t *c, int64_t device_id, char out[static STORE_UUID_LEN + 1])
{
    for (size_t i = 0; i < c->n_cache; i++) {
        if (c->cache[i].device_id == device_id) {
            memcpy(out, c->cache[i].uuid, STORE_UUID_LEN + 1);
            return true;
        }
    }
    store_device_t d = {0};
    if (store_device_get(c->srv->store, device_id, &d) != 0)
        return false;
    snprintf(out, STORE_UUID_LEN + 1, "%s", d.uuid);
    store_device_fini(&d);
    if (!c->cache)
        c->cache = xmalloc(SSE_UUID_CACHE * sizeof *c->cache);
    if (c->n_cache == SSE_UUID_CACHE) /* more devices than slots: start over, stay bounded */
        c->n_cache = 0;
    c->cache[c->n_cache].device_id = device_id;
    memcpy(c->cache[c->n_cache].uuid, out, STORE_UUID_LEN + 1);
    c->n_cache++;
    return true;
}

/* Reader side of the all-devices stream: formats the queued events. Called and returns with
 * c->mu held; drops it while asking the store. */
static void drain_pending(sse_t *c)
{
    while (c->n_pending) {
        pending_ev_t ev = c->pending[0];
        memmove(c->pending, c->pending + 1, (c->n_pending - 1) * sizeof *c->pending);
        c->n_pending--;
        pthread_mutex_unlock(&c->mu);
        char uuid[STORE_UUID_LEN + 1];
        char *line = NULL;
        if (resolve_uuid(c, ev.device_id, uuid))
            line = xasprintf("event: activity\ndata: {\"deviceId\":\"%s\",%s\n\n", uuid,
                             ev.json + 1);
        free(ev.json);
        pthread_mutex_lock(&c->mu);
        if (line && !append(c, line, strlen(line)))
            c->dropped++;
        free(line);
    }
}

static void on_watch(void *ctx, hub_watch_type_t type, int64_t device_id, const char *json)
{
    sse_t *c = ctx;
    if (device_id != c->device_id)
        return;
    /* The hub's JSON is an object: telemetry is {"key":[..]}, the others carry their own
     * fields. Wrap it so every event names its device, as the UI expects. */
    char *line;
    if (type == HUB_WATCH_TELEMETRY)
        line = xasprintf("event: %s\ndata: {\"deviceId\":\"%s\",\"values\":%s}\n\n",
                         event_name(type), c->uuid, json);
    else
        line = xasprintf("event: %s\ndata: {\"deviceId\":\"%s\",%s\n\n", event_name(type),
                         c->uuid, json + 1 /* skip '{' and merge the objects */);
    pthread_mutex_lock(&c->mu);
    if (!append(c, line, strlen(line)))
        c->dropped++;
    wake(c);
    pthread_mutex_unlock(&c->mu);
    free(line);
}

static ssize_t reader(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    sse_t *c = cls;
    pthread_mutex_lock(&c->mu);
    drain_pending(c);
    int64_t now = clock_mono_ms();
    if (c->len == c->off) {
        if (atomic_load(&c->srv->ready) == false) {
            pthread_mutex_unlock(&c->mu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (now - c->sent_ms < SSE_KEEPALIVE_MS && c->conn) {
            /* Nothing to send: park until a watcher or the keepalive tick wakes it. */
            c->suspended = true;
            MHD_suspend_connection(c->conn);
            pthread_mutex_unlock(&c->mu);
            return 0;
        }
        append(c, ": keepalive\n\n", 13);
    }
    size_t n = c->len - c->off;
    if (n > max)
        n = max;
    memcpy(out, c->buf + c->off, n);
    c->off += n;
    c->sent_ms = now;
    pthread_mutex_unlock(&c->mu);
    return (ssize_t)n;
}

void http__events_tick(http_server_t *h, bool all)
{
    int64_t now = clock_mono_ms();
    bool up = atomic_load(&h->ready);
    pthread_mutex_lock(&h->mu);
    for (sse_t *c = h->streams; c; c = c->next) {
        pthread_mutex_lock(&c->mu);
        if (all || !up || now - c->sent_ms >= SSE_KEEPALIVE_MS)
            wake(c);
        pthread_mutex_unlock(&c->mu);
    }
    pthread_mutex_unlock(&h->mu);
}

void http__events_stop_all(http_server_t *h)
{
    http__events_tick(h, true); /* ready is false: each reader ends its stream */
}

static void sse_free(void *cls)
{
    sse_t *c = cls;
    hub_watch_remove(c->srv->hub, c->watch);
    pthread_mutex_lock(&c->srv->mu);
    for (sse_t **pp = &c->srv->streams; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    pthread_mutex_unlock(&c->srv->mu);
    if (c->dropped)
        LOG_W("http", "event stream of device %s dropped %llu events (slow reader)",
              c->device_id ? c->uuid : "(all)", (unsigned long long)c->dropped);
    for (size_t i = 0; i < c->n_pending; i++)
        free(c->pending[i].json);
    free(c->pending);
    free(c->cache);
    pthread_mutex_destroy(&c->mu);
    free(c->buf);
    free(c);
}

void http__h_events(http_req_t *rq, http_resp_t *rs)
{
    const char *uuid = http__query(rq, "deviceId");
    store_device_t d = {0};
    if (uuid && *uuid && !http__device_lookup(rq, rs, uuid, &d))
        return;
    sse_t *c = xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->conn = rq->conn;
    c->sent_ms = clock_mono_ms();
    c->device_id = d.id; /* 0 without deviceId: every device */
    snprintf(c->uuid, sizeof c->uuid, "%s", d.uuid);
    c->srv = rq->srv;
    store_device_fini(&d);
    /* A first comment makes the browser fire "open" at once. */
    append(c, ": coaphub live events\nretry: 3000\n\n", 35);
    c->watch = hub_watch_add(rq->srv->hub, c->device_id ? on_watch : on_watch_all, c);
    pthread_mutex_lock(&rq->srv->mu);
    c->next = rq->srv->streams;
    rq->srv->streams = c;
    pthread_mutex_unlock(&rq->srv->mu);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, reader, c, sse_free);
    if (!resp) {
        sse_free(c);
        http__resp_error(rs, HTTP_E_GENERAL, NULL);
        return;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    rs->status = 200;
    rs->stream = resp;
}
