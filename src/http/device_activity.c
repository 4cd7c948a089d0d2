/* device_activity.c — activity of devices that talk over the HTTP device API (spec §9).
 *
 * The rules are uplink's (uplink/uplink.h), the same a CoAP shard applies: a request marks
 * the device active (active, lastConnectTime), lastActivityTime is written at most every
 * activity_report_ms, and a device quiet for inactivity_timeout_ms goes inactive
 * (lastDisconnectTime). What differs is the owner: HTTP handlers run on many threads, so the
 * per-device state sits in one table under a mutex, and a sweeper thread wakes once a second
 * to retire the quiet ones (a device is held only while active: the table is bounded by the
 * devices that used HTTP within the timeout). The hub adds this owner's active flag to the
 * shards' (a device is active while any owner holds it so) and shows transport "http".
 * Writes are not waited for: nobody is answered from them.
 */
#include "http/http_int.h"

#include "core/clock.h"
#include "core/hash.h"
#include "core/htab.h"
#include "core/xmalloc.h"
#include "uplink/uplink.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#define SWEEP_MS 1000

typedef struct entry {
    htab_link_t link;
    int64_t id;
    uplink_activity_t act;
    int64_t last_request_ms; /* monotonic */
} entry_t;

struct http_devact {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    htab_t tab; /* entry_t by device id */
    bool stop;
    pthread_t thread;
    store_t *store;
    hub_t *hub;
    int64_t inactivity_ms, report_ms;
};

static bool id_eq(const htab_link_t *l, const void *key)
{
    return HTAB_ENTRY(l, entry_t, link)->id == *(const int64_t *)key;
}

static void ignore_done(void *arg, int status)
{
    (void)arg;
    (void)status;
}

static void report(http_devact_t *t, int64_t id, store_batch_t *b, const hub_status_report_t *rep)
{
    if (b)
        store_submit(t->store, b, NULL, ignore_done, NULL);
    if (rep->transport || rep->active_delta || rep->activity_ms)
        hub_status_report(t->hub, id, rep);
}

void http__devact_request(http_devact_t *t, int64_t device_id)
{
    if (!t) /* a server assembled by unit tests without one */
        return;
    int64_t mono = clock_mono_ms();
    uint64_t hash = hash_u64((uint64_t)device_id);
    pthread_mutex_lock(&t->mu);
    htab_link_t *l = htab_find(&t->tab, hash, id_eq, &device_id);
    entry_t *e;
    if (l) {
        e = HTAB_ENTRY(l, entry_t, link);
    } else {
        e = xcalloc(1, sizeof *e);
        e->id = device_id;
        htab_insert(&t->tab, &e->link, hash);
    }
    e->last_request_ms = mono;
    /* Report the transport on every request: a CoAP shard may have changed what the hub
     * shows since, and an HTTP request is heavy enough that one hub lock does not matter. */
    e->act.transport = HUB_TRANSPORT_NONE;
    hub_status_report_t rep;
    store_batch_t *b = uplink_activity_request(&e->act, device_id, HUB_TRANSPORT_HTTP, mono,
                                               clock_wall_ms(), t->report_ms, &rep);
    pthread_mutex_unlock(&t->mu);
    report(t, device_id, b, &rep);
}

void http__devact_forget(http_devact_t *t, int64_t device_id)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    htab_link_t *l = htab_find(&t->tab, hash_u64((uint64_t)device_id), id_eq, &device_id);
    if (l)
        htab_remove(&t->tab, l);
    pthread_mutex_unlock(&t->mu);
    if (l)
        free(HTAB_ENTRY(l, entry_t, link));
}

/* Retires the devices quiet for the timeout; their writes and reports go out unlocked. */
static void sweep(http_devact_t *t)
{
    enum { MAX_PER_ROUND = 256 };
    entry_t *gone[MAX_PER_ROUND];
    size_t n = 0;
    int64_t mono = clock_mono_ms();
    pthread_mutex_lock(&t->mu);
    htab_iter_t it;
    for (htab_link_t *l = htab_iter_first(&it, &t->tab); l && n < MAX_PER_ROUND;
         l = htab_iter_next(&it)) {
        entry_t *e = HTAB_ENTRY(l, entry_t, link);
        if (mono - e->last_request_ms >= t->inactivity_ms) {
            htab_remove(&t->tab, l);
            gone[n++] = e;
        }
    }
    pthread_mutex_unlock(&t->mu);
    int64_t wall = clock_wall_ms();
    for (size_t i = 0; i < n; i++) {
        hub_status_report_t rep;
        store_batch_t *b = uplink_activity_inactive(&gone[i]->act, gone[i]->id, wall, &rep);
        report(t, gone[i]->id, b, &rep);
        free(gone[i]);
    }
}

static void *sweeper(void *arg)
{
    http_devact_t *t = arg;
    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += SWEEP_MS / 1000;
        (void)pthread_cond_timedwait(&t->cv, &t->mu, &ts);
        if (t->stop)
            break;
        pthread_mutex_unlock(&t->mu);
        sweep(t);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

http_devact_t *http__devact_new(store_t *store, hub_t *hub, int64_t inactivity_ms,
                                int64_t report_ms)
{
    http_devact_t *t = xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    htab_init(&t->tab, 0);
    t->store = store;
    t->hub = hub;
    t->inactivity_ms = inactivity_ms > 0 ? inactivity_ms : 600000;
    t->report_ms = report_ms;
    if (pthread_create(&t->thread, NULL, sweeper, t) != 0) {
        htab_fini(&t->tab);
        pthread_cond_destroy(&t->cv);
        pthread_mutex_destroy(&t->mu);
        free(t);
        return NULL;
    }
    return t;
}

void http__devact_free(http_devact_t *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->stop = true;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    /* Shutdown: the devices stay "active" in the store, as a CoAP shard leaves them (the
     * next start has no record of them either way). */
    htab_iter_t it;
    for (htab_link_t *l = htab_iter_first(&it, &t->tab); l; l = htab_iter_next(&it)) {
        htab_remove(&t->tab, l);
        free(HTAB_ENTRY(l, entry_t, link));
    }
    htab_fini(&t->tab);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
