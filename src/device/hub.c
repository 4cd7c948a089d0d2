/* hub.c — event broadcast to shards and the server-side RPC rendezvous. See hub.h.
 *
 * DESIGN. Events are copied once per shard and posted to its loop: shards never share event
 * memory, so no reference counting crosses threads. RPCs live in one list under one mutex
 * (RPC traffic is human-scale: REST callers, not device telemetry); each waiting caller has
 * its own condition variable on the monotonic clock so a wall-clock jump cannot stretch or
 * cut a timeout. Per-device request ids continue from the store's highest id after a restart
 * so a device never sees an id reused.
 * Long-poll waiters (HTTP device API) sit in a table of their own under their own mutex,
 * keyed by device: a publish wakes only the device's waiters, and costs one atomic load when
 * nobody polls. The wait is the caller's (its own fd or condition variable), so the hub never
 * holds a thread and nothing polls on a timer.
 */
#include "device/hub.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/hash.h"
#include "core/htab.h"
#include "core/xmalloc.h"
#include "values/buf.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct shard_ref {
    loop_t *loop;
    hub_event_cb cb;
    void *ctx;
} shard_ref_t;

typedef enum { RPC_PENDING, RPC_TAKEN, RPC_DELIVERED, RPC_REPLIED, RPC_CANCELLED } rpc_state_t;

typedef struct rpc_entry {
    struct rpc_entry *next;
    int64_t device_id;
    int64_t request_id;
    char *body;
    bool oneway;
    rpc_state_t state;
    char *reply;
    pthread_cond_t cond;
} rpc_entry_t;

typedef struct dev_seq {
    int64_t device_id;
    int64_t last_id;
} dev_seq_t;

/* A device's live status; active_shards counts shards that hold the device active. */
typedef struct status_entry {
    htab_link_t link; /* in hub.status, keyed by device id */
    int64_t device_id;
    int active_shards;
    int observations;
    hub_transport_t transport;
    int64_t last_activity_ms;
} status_entry_t;

/* The long-poll waiters of one device (hub.waiters, keyed by device id); freed when its last
 * waiter leaves, so the table holds only devices with a request open. */
typedef struct wait_dev {
    htab_link_t link;
    int64_t device_id;
    hub_waiter_t *head;
    int n;
} wait_dev_t;

typedef struct change_listener {
    hub_change_cb cb;
    void *ctx;
} change_listener_t;

typedef struct watcher {
    uint64_t handle;
    hub_watch_cb cb;
    void *ctx;
} watcher_t;

struct hub {
    _Atomic uint64_t change_gen; /* bumped by every hub_change_publish (hub_change_gen) */
    store_t *store;
    pthread_rwlock_t watch_lock;
    watcher_t *watchers;
    size_t n_watchers;
    uint64_t next_watch;
    atomic_size_t n_watching;
    pthread_rwlock_t change_lock; /* guards changes: added at wiring, read per change */
    change_listener_t *changes;
    size_t n_changes;
    shard_ref_t *shards;
    size_t n_shards;
    pthread_mutex_t mu;
    rpc_entry_t *rpcs;
    dev_seq_t *seqs;
    size_t n_seqs, cap_seqs;
    pthread_mutex_t status_mu;
    htab_t status; /* status_entry_t by device id; under status_mu */
    power_cache_t *power;
    pthread_mutex_t wait_mu;
    htab_t waiters;                   /* wait_dev_t by device id; under wait_mu */
    atomic_size_t n_waiting;          /* all waiters: publishers skip wait_mu while it is 0 */
    uint64_t waiting[HUB_WAIT_KINDS]; /* under wait_mu */
    uint64_t wait_refused;            /* under wait_mu */
};

typedef struct delivery {
    shard_ref_t shard;
    hub_event_t ev;
} delivery_t;

/* Profiles and devices saved or deleted (REST) reach the power-saving settings cache. */
static void power_on_change(void *ctx, hub_change_t what, int64_t id)
{
    power_cache_t *c = ctx;
    switch (what) {
    case HUB_CHANGE_PROFILE_SAVED:
    case HUB_CHANGE_PROFILE_DELETED:
        power_cache_invalidate_profile(c, id);
        break;
    case HUB_CHANGE_DEVICE:
    case HUB_CHANGE_DEVICE_DELETED:
    case HUB_CHANGE_DEVICE_PROVISIONED: /* new: nothing cached, but cheap to be sure */
        power_cache_invalidate_device(c, id);
        break;
    }
}

hub_t *hub_new(store_t *store)
{
    hub_t *h = xcalloc(1, sizeof *h);
    h->store = store;
    pthread_mutex_init(&h->mu, NULL);
    pthread_rwlock_init(&h->watch_lock, NULL);
    pthread_rwlock_init(&h->change_lock, NULL);
    pthread_mutex_init(&h->status_mu, NULL);
    htab_init(&h->status, 64);
    pthread_mutex_init(&h->wait_mu, NULL);
    htab_init(&h->waiters, 16);
    h->power = power_cache_new(store);
    hub_change_listen(h, power_on_change, h->power);
    return h;
}

void hub_free(hub_t *h)
{
    if (!h)
        return;
    rpc_entry_t *e = h->rpcs;
    while (e) {
        rpc_entry_t *next = e->next;
        free(e->body);
        free(e->reply);
        pthread_cond_destroy(&e->cond);
        free(e);
        e = next;
    }
    htab_iter_t it;
    for (htab_link_t *l = htab_iter_first(&it, &h->status); l; l = htab_iter_next(&it))
        free(HTAB_ENTRY(l, status_entry_t, link));
    htab_fini(&h->status);
    pthread_mutex_destroy(&h->status_mu);
    for (htab_link_t *l = htab_iter_first(&it, &h->waiters); l; l = htab_iter_next(&it))
        free(HTAB_ENTRY(l, wait_dev_t, link)); /* waiters left registered: a caller's bug */
    htab_fini(&h->waiters);
    pthread_mutex_destroy(&h->wait_mu);
    power_cache_free(h->power);
    free(h->shards);
    free(h->seqs);
    free(h->watchers);
    free(h->changes);
    pthread_rwlock_destroy(&h->change_lock);
    pthread_rwlock_destroy(&h->watch_lock);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

void hub_add_shard(hub_t *h, loop_t *loop, hub_event_cb cb, void *shard_ctx)
{
    h->shards = xrealloc(h->shards, (h->n_shards + 1) * sizeof *h->shards);
    h->shards[h->n_shards++] = (shard_ref_t){.loop = loop, .cb = cb, .ctx = shard_ctx};
}

static void deliver(void *arg)
{
    delivery_t *d = arg;
    d->shard.cb(d->shard.ctx, &d->ev);
    free(d->ev.json);
    free(d);
}

static void status_forget(hub_t *h, int64_t device_id);
static void wake_waiters(hub_t *h, hub_event_type_t type, int64_t device_id, const char *json);

static void publish(hub_t *h, hub_event_type_t type, int64_t device_id, const char *json,
                    uint64_t cred_seq)
{
    if (type == HUB_EV_DEVICE_DELETED)
        status_forget(h, device_id);
    for (size_t i = 0; i < h->n_shards; i++) {
        delivery_t *d = xmalloc(sizeof *d);
        d->shard = h->shards[i];
        d->ev = (hub_event_t){
            .type = type, .device_id = device_id, .json = xstrdup(json), .cred_seq = cred_seq};
        loop_post(d->shard.loop, deliver, d);
    }
    wake_waiters(h, type, device_id, json);
}

void hub_publish(hub_t *h, hub_event_type_t type, int64_t device_id, const char *json)
{
    publish(h, type, device_id, json, 0);
}

void hub_publish_cred(hub_t *h, hub_event_type_t type, int64_t device_id, uint64_t cred_seq)
{
    publish(h, type, device_id, NULL, cred_seq);
}

/* ---- watchers ---- */

uint64_t hub_watch_add(hub_t *h, hub_watch_cb cb, void *ctx)
{
    pthread_rwlock_wrlock(&h->watch_lock);
    h->watchers = xrealloc(h->watchers, (h->n_watchers + 1) * sizeof *h->watchers);
    uint64_t handle = ++h->next_watch;
    h->watchers[h->n_watchers++] = (watcher_t){.handle = handle, .cb = cb, .ctx = ctx};
    atomic_store(&h->n_watching, h->n_watchers);
    pthread_rwlock_unlock(&h->watch_lock);
    return handle;
}

void hub_watch_remove(hub_t *h, uint64_t handle)
{
    /* Taking the write lock waits for running callbacks (they hold the read lock). */
    pthread_rwlock_wrlock(&h->watch_lock);
    for (size_t i = 0; i < h->n_watchers; i++) {
        if (h->watchers[i].handle == handle) {
            h->watchers[i] = h->watchers[--h->n_watchers];
            break;
        }
    }
    atomic_store(&h->n_watching, h->n_watchers);
    pthread_rwlock_unlock(&h->watch_lock);
}

bool hub_watched(hub_t *h)
{
    return atomic_load(&h->n_watching) > 0;
}

void hub_watch_publish(hub_t *h, hub_watch_type_t type, int64_t device_id, const char *json)
{
    if (!hub_watched(h))
        return;
    pthread_rwlock_rdlock(&h->watch_lock);
    for (size_t i = 0; i < h->n_watchers; i++)
        h->watchers[i].cb(h->watchers[i].ctx, type, device_id, json);
    pthread_rwlock_unlock(&h->watch_lock);
}

/* ---- fleet changes ---- */

void hub_change_listen(hub_t *h, hub_change_cb cb, void *ctx)
{
    pthread_rwlock_wrlock(&h->change_lock);
    h->changes = xrealloc(h->changes, (h->n_changes + 1) * sizeof *h->changes);
    h->changes[h->n_changes++] = (change_listener_t){.cb = cb, .ctx = ctx};
    pthread_rwlock_unlock(&h->change_lock);
}

uint64_t hub_change_gen(hub_t *h)
{
    return atomic_load_explicit(&h->change_gen, memory_order_acquire);
}

void hub_change_publish(hub_t *h, hub_change_t what, int64_t id)
{
    atomic_fetch_add_explicit(&h->change_gen, 1, memory_order_acq_rel);
    pthread_rwlock_rdlock(&h->change_lock);
    for (size_t i = 0; i < h->n_changes; i++)
        h->changes[i].cb(h->changes[i].ctx, what, id);
    pthread_rwlock_unlock(&h->change_lock);
}

/* ---- live device status ---- */

static bool status_is_of(const htab_link_t *l, const void *id)
{
    return HTAB_ENTRY(l, status_entry_t, link)->device_id == *(const int64_t *)id;
}

/* Caller holds status_mu. */
static status_entry_t *status_find(hub_t *h, int64_t id)
{
    htab_link_t *l = htab_find(&h->status, hash_u64((uint64_t)id), status_is_of, &id);
    return l ? HTAB_ENTRY(l, status_entry_t, link) : NULL;
}

/* Caller holds status_mu. */
static status_entry_t *status_add(hub_t *h, int64_t id)
{
    status_entry_t *e = xcalloc(1, sizeof *e);
    e->device_id = id;
    htab_insert(&h->status, &e->link, hash_u64((uint64_t)id));
    return e;
}

static void status_forget(hub_t *h, int64_t device_id)
{
    pthread_mutex_lock(&h->status_mu);
    status_entry_t *e = status_find(h, device_id);
    if (e) {
        htab_remove(&h->status, &e->link);
        free(e);
    }
    pthread_mutex_unlock(&h->status_mu);
}

static hub_status_t status_of_entry(const status_entry_t *e)
{
    return (hub_status_t){.active = e->active_shards > 0,
                          .transport = e->transport,
                          .observations = e->observations,
                          .last_activity_ms = e->last_activity_ms};
}

const char *hub_transport_name(hub_transport_t t)
{
    switch (t) {
    case HUB_TRANSPORT_COAP: return "coap";
    case HUB_TRANSPORT_COAPS: return "coaps";
    case HUB_TRANSPORT_HTTP:
        return "http";
    case HUB_TRANSPORT_NONE:
    default: return NULL;
    }
}

char *hub_status_json(const hub_status_t *st)
{
    const char *t = hub_transport_name(st->transport);
    /* Built by hand: fixed keys, no user strings, and it runs on the shard's hot path. */
    return xasprintf("{\"active\":%s,\"transport\":%s%s%s,\"observations\":%d,"
                     "\"lastActivityTime\":%lld}",
                     st->active ? "true" : "false", t ? "\"" : "", t ? t : "null", t ? "\"" : "",
                     st->observations, (long long)st->last_activity_ms);
}

void hub_status_report(hub_t *h, int64_t device_id, const hub_status_report_t *r)
{
    if (!h)
        return;
    bool grows = r->transport != HUB_TRANSPORT_NONE || r->active_delta > 0 ||
                 r->obs_delta > 0 || r->activity_ms > 0;
    pthread_mutex_lock(&h->status_mu);
    status_entry_t *e = status_find(h, device_id);
    if (!e && !grows) {
        pthread_mutex_unlock(&h->status_mu);
        return;
    }
    if (!e)
        e = status_add(h, device_id);
    hub_status_t before = status_of_entry(e);
    if (r->transport != HUB_TRANSPORT_NONE)
        e->transport = r->transport;
    e->active_shards += r->active_delta;
    if (e->active_shards < 0) /* a report that raced a device deletion */
        e->active_shards = 0;
    e->observations += r->obs_delta;
    if (e->observations < 0)
        e->observations = 0;
    if (r->activity_ms > e->last_activity_ms)
        e->last_activity_ms = r->activity_ms;
    hub_status_t after = status_of_entry(e);
    bool changed = before.active != after.active || before.transport != after.transport ||
                   before.observations != after.observations ||
                   before.last_activity_ms != after.last_activity_ms;
    if (changed && hub_watched(h)) {
        char *json = hub_status_json(&after);
        hub_watch_publish(h, HUB_WATCH_ACTIVITY, device_id, json);
        free(json);
    }
    pthread_mutex_unlock(&h->status_mu);
}

bool hub_status_get(hub_t *h, int64_t device_id, hub_status_t *out)
{
    pthread_mutex_lock(&h->status_mu);
    status_entry_t *e = status_find(h, device_id);
    *out = e ? status_of_entry(e) : (hub_status_t){0};
    pthread_mutex_unlock(&h->status_mu);
    return e != NULL;
}

/* ---- RPC ---- */

/* Next request id for the device. Caller holds h->mu. */
static int64_t next_request_id(hub_t *h, int64_t device_id)
{
    for (size_t i = 0; i < h->n_seqs; i++)
        if (h->seqs[i].device_id == device_id)
            return ++h->seqs[i].last_id;
    int64_t last = 0;
    if (h->store)
        store_rpc_max_request_id(h->store, device_id, &last);
    if (h->n_seqs == h->cap_seqs) {
        h->cap_seqs = h->cap_seqs ? h->cap_seqs * 2 : 16;
        h->seqs = xrealloc(h->seqs, h->cap_seqs * sizeof *h->seqs);
    }
    h->seqs[h->n_seqs++] = (dev_seq_t){.device_id = device_id, .last_id = last + 1};
    return last + 1;
}

/* The text the device receives: {"id":N,"method":"...","params":...}. params goes in as the
 * caller wrote it (ThingsBoard forwards the REST body's params unchanged): a re-dump through
 * jansson printed 0.1 as 0.10000000000000001. Text that is not JSON is sent as null. */
static char *rpc_body(int64_t id, const char *method, const char *params_json)
{
    json_t *params = NULL;
    if (params_json && *params_json)
        params = json_loads(params_json, JSON_DECODE_ANY, NULL);
    values_buf_t b = {0};
    values_buf_printf(&b, "{\"id\":%lld,\"method\":", (long long)id);
    const char *m = method ? method : "";
    values_buf_json_str(&b, m, strlen(m));
    values_buf_puts(&b, ",\"params\":");
    values_buf_puts(&b, params ? params_json : "null");
    values_buf_puts(&b, "}");
    json_decref(params);
    return values_buf_take(&b);
}

static void unlink_entry(hub_t *h, rpc_entry_t *victim)
{
    for (rpc_entry_t **pp = &h->rpcs; *pp; pp = &(*pp)->next) {
        if (*pp == victim) {
            *pp = victim->next;
            return;
        }
    }
}

static bool finished(const rpc_entry_t *e)
{
    if (e->state == RPC_REPLIED || e->state == RPC_CANCELLED)
        return true;
    return e->oneway && e->state == RPC_DELIVERED;
}

hub_rpc_result_t hub_rpc_call(hub_t *h, int64_t device_id, const char *method,
                              const char *params_json, bool oneway, int64_t timeout_ms,
                              int64_t *request_id, char **reply)
{
    rpc_entry_t *e = xcalloc(1, sizeof *e);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->cond, &ca);
    pthread_condattr_destroy(&ca);
    e->device_id = device_id;
    e->oneway = oneway;
    e->state = RPC_PENDING;

    pthread_mutex_lock(&h->mu);
    e->request_id = next_request_id(h, device_id);
    e->body = rpc_body(e->request_id, method, params_json);
    e->next = h->rpcs;
    h->rpcs = e;
    pthread_mutex_unlock(&h->mu);
    if (request_id)
        *request_id = e->request_id;

    hub_publish(h, HUB_EV_RPC_PENDING, device_id, NULL);

    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }

    pthread_mutex_lock(&h->mu);
    while (!finished(e)) {
        if (pthread_cond_timedwait(&e->cond, &h->mu, &deadline) != 0 && !finished(e))
            break;
    }
    hub_rpc_result_t res;
    switch (e->state) {
    case RPC_REPLIED:
        res = HUB_RPC_OK;
        if (reply) {
            *reply = e->reply;
            e->reply = NULL;
        }
        break;
    case RPC_DELIVERED: res = oneway ? HUB_RPC_OK : HUB_RPC_NO_REPLY; break;
    case RPC_CANCELLED: res = HUB_RPC_CANCELLED; break;
    default: res = HUB_RPC_NOT_DELIVERED; break;
    }
    unlink_entry(h, e);
    pthread_mutex_unlock(&h->mu);
    free(e->body);
    free(e->reply);
    pthread_cond_destroy(&e->cond);
    free(e);
    return res;
}

/* Oldest entry of the device in the given state; list is newest-first. Caller holds h->mu. */
static rpc_entry_t *oldest(hub_t *h, int64_t device_id, rpc_state_t state)
{
    rpc_entry_t *found = NULL;
    for (rpc_entry_t *e = h->rpcs; e; e = e->next)
        if (e->device_id == device_id && e->state == state)
            found = e;
    return found;
}

static rpc_entry_t *find_id(hub_t *h, int64_t device_id, int64_t request_id)
{
    for (rpc_entry_t *e = h->rpcs; e; e = e->next)
        if (e->device_id == device_id && e->request_id == request_id)
            return e;
    return NULL;
}

bool hub_rpc_take(hub_t *h, int64_t device_id, hub_rpc_t *out)
{
    pthread_mutex_lock(&h->mu);
    rpc_entry_t *e = oldest(h, device_id, RPC_PENDING);
    if (e) {
        e->state = RPC_TAKEN;
        *out = (hub_rpc_t){.device_id = device_id, .request_id = e->request_id,
                           .body = xstrdup(e->body)};
    }
    pthread_mutex_unlock(&h->mu);
    return e != NULL;
}

void hub_rpc_delivered(hub_t *h, int64_t device_id, int64_t request_id)
{
    pthread_mutex_lock(&h->mu);
    rpc_entry_t *e = find_id(h, device_id, request_id);
    if (e && (e->state == RPC_TAKEN || e->state == RPC_PENDING)) {
        e->state = RPC_DELIVERED;
        pthread_cond_signal(&e->cond);
    }
    pthread_mutex_unlock(&h->mu);
}

void hub_rpc_undelivered(hub_t *h, int64_t device_id, int64_t request_id)
{
    pthread_mutex_lock(&h->mu);
    rpc_entry_t *e = find_id(h, device_id, request_id);
    bool back = e && e->state == RPC_TAKEN;
    if (back)
        e->state = RPC_PENDING;
    pthread_mutex_unlock(&h->mu);
    /* An HTTP poller of the device may take it now. Shards are not told: the one that gave
     * it back pumps again when its observer can take more. */
    if (back)
        wake_waiters(h, HUB_EV_RPC_PENDING, device_id, NULL);
}

bool hub_rpc_reply(hub_t *h, int64_t device_id, int64_t request_id, const uint8_t *body,
                   size_t len)
{
    pthread_mutex_lock(&h->mu);
    rpc_entry_t *e = find_id(h, device_id, request_id);
    bool waiting = e && e->state != RPC_REPLIED && e->state != RPC_CANCELLED;
    if (waiting) {
        free(e->reply);
        e->reply = xstrndup((const char *)body, len);
        e->state = RPC_REPLIED;
        pthread_cond_signal(&e->cond);
    }
    pthread_mutex_unlock(&h->mu);
    return waiting;
}

void hub_rpc_cancel_device(hub_t *h, int64_t device_id)
{
    pthread_mutex_lock(&h->mu);
    for (rpc_entry_t *e = h->rpcs; e; e = e->next) {
        if (e->device_id == device_id && e->state != RPC_REPLIED) {
            e->state = RPC_CANCELLED;
            pthread_cond_signal(&e->cond);
        }
    }
    pthread_mutex_unlock(&h->mu);
}

/* ---- long-poll waiters ---- */

static bool wait_dev_is_of(const htab_link_t *l, const void *id)
{
    return HTAB_ENTRY(l, wait_dev_t, link)->device_id == *(const int64_t *)id;
}

/* Caller holds wait_mu. */
static wait_dev_t *wait_dev_find(hub_t *h, int64_t id)
{
    htab_link_t *l = htab_find(&h->waiters, hash_u64((uint64_t)id), wait_dev_is_of, &id);
    return l ? HTAB_ENTRY(l, wait_dev_t, link) : NULL;
}

static bool hears(hub_wait_kind_t kind, hub_event_type_t type)
{
    switch (type) {
    case HUB_EV_SHARED_UPDATED:
    case HUB_EV_SHARED_DELETED:
        return kind == HUB_WAIT_ATTRIBUTES;
    case HUB_EV_RPC_PENDING:
        return kind == HUB_WAIT_RPC;
    case HUB_EV_CREDENTIALS_CHANGED:
    case HUB_EV_DEVICE_DELETED:
        return true;
    }
    return false;
}

static void wake_waiters(hub_t *h, hub_event_type_t type, int64_t device_id, const char *json)
{
    /* The common case by far: nobody polls over HTTP (a fleet-wide OTA assignment publishes
     * one event per device and must not take a lock for each). A waiter added after this
     * load began its request after the event: it was not waiting for it. */
    if (atomic_load(&h->n_waiting) == 0)
        return;
    pthread_mutex_lock(&h->wait_mu);
    wait_dev_t *d = wait_dev_find(h, device_id);
    for (hub_waiter_t *w = d ? d->head : NULL; w; w = w->next)
        if (hears(w->kind, type))
            w->cb(w->ctx, type, json);
    pthread_mutex_unlock(&h->wait_mu);
}

int hub_wait_add(hub_t *h, hub_waiter_t *w, int max_total, int max_per_device)
{
    pthread_mutex_lock(&h->wait_mu);
    int rc = 0;
    wait_dev_t *d = wait_dev_find(h, w->device_id);
    if (atomic_load(&h->n_waiting) >= (size_t)(max_total > 0 ? max_total : 0))
        rc = -EAGAIN;
    else if (d && d->n >= max_per_device)
        rc = -EBUSY;
    if (rc < 0) {
        h->wait_refused++;
        pthread_mutex_unlock(&h->wait_mu);
        return rc;
    }
    if (!d) {
        d = xcalloc(1, sizeof *d);
        d->device_id = w->device_id;
        htab_insert(&h->waiters, &d->link, hash_u64((uint64_t)w->device_id));
    }
    w->prev = NULL;
    w->next = d->head;
    if (d->head)
        d->head->prev = w;
    d->head = w;
    d->n++;
    w->added = true;
    h->waiting[w->kind]++;
    atomic_fetch_add(&h->n_waiting, 1);
    pthread_mutex_unlock(&h->wait_mu);
    return 0;
}

void hub_wait_remove(hub_t *h, hub_waiter_t *w)
{
    pthread_mutex_lock(&h->wait_mu);
    wait_dev_t *d = w->added ? wait_dev_find(h, w->device_id) : NULL;
    if (d) {
        if (w->prev)
            w->prev->next = w->next;
        else
            d->head = w->next;
        if (w->next)
            w->next->prev = w->prev;
        w->prev = w->next = NULL;
        w->added = false;
        h->waiting[w->kind]--;
        atomic_fetch_sub(&h->n_waiting, 1);
        if (--d->n == 0) {
            htab_remove(&h->waiters, &d->link);
            free(d);
        }
    }
    pthread_mutex_unlock(&h->wait_mu);
}

void hub_wait_get_stats(hub_t *h, hub_wait_stats_t *out)
{
    pthread_mutex_lock(&h->wait_mu);
    for (int k = 0; k < HUB_WAIT_KINDS; k++)
        out->waiting[k] = h->waiting[k];
    out->refused_total = h->wait_refused;
    pthread_mutex_unlock(&h->wait_mu);
}

power_cache_t *hub_power(hub_t *h)
{
    return h->power;
}
