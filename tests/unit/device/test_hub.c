/* test_hub.c — event broadcast to shard loops and the RPC rendezvous between a waiting REST
 * thread and a shard that delivers and answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/loop.h"
#include "device/hub.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct seen {
    int n;
    hub_event_type_t last_type;
    int64_t last_device;
    char json[128];
} seen_t;

static void on_event(void *ctx, const hub_event_t *ev)
{
    seen_t *s = ctx;
    s->n++;
    s->last_type = ev->type;
    s->last_device = ev->device_id;
    snprintf(s->json, sizeof s->json, "%s", ev->json ? ev->json : "");
}

static void test_publish_reaches_every_shard(void **state)
{
    char err[ERR_LEN];
    loop_t *a = loop_new(err), *b = loop_new(err);
    hub_t *h = hub_new(NULL);
    seen_t sa = {0}, sb = {0};
    hub_add_shard(h, a, on_event, &sa);
    hub_add_shard(h, b, on_event, &sb);
    hub_publish(h, HUB_EV_SHARED_UPDATED, 42, "{\"target\":22}");
    loop_drain(a);
    loop_drain(b);
    assert_int_equal(sa.n, 1);
    assert_int_equal(sb.n, 1);
    assert_int_equal(sa.last_device, 42);
    assert_int_equal(sa.last_type, HUB_EV_SHARED_UPDATED);
    assert_string_equal(sb.json, "{\"target\":22}");
    hub_free(h);
    loop_free(a);
    loop_free(b);
}

typedef struct device_sim {
    hub_t *hub;
    int64_t device;
    bool answer; /* reply to the RPC, or only acknowledge delivery */
    char body[256];
} device_sim_t;

static void *device_thread(void *arg)
{
    device_sim_t *d = arg;
    hub_rpc_t rpc;
    for (int i = 0; i < 200; i++) { /* bounded: at most ~2 s */
        if (hub_rpc_take(d->hub, d->device, &rpc)) {
            snprintf(d->body, sizeof d->body, "%s", rpc.body);
            hub_rpc_delivered(d->hub, d->device, rpc.request_id);
            if (d->answer)
                hub_rpc_reply(d->hub, d->device, rpc.request_id, (const uint8_t *)"{\"ok\":1}", 8);
            free(rpc.body);
            return NULL;
        }
        usleep(10000);
    }
    return NULL;
}

static void test_rpc_two_way_round_trip(void **state)
{
    hub_t *h = hub_new(NULL);
    device_sim_t d = {.hub = h, .device = 5, .answer = true};
    pthread_t t;
    pthread_create(&t, NULL, device_thread, &d);
    int64_t id = 0;
    char *reply = NULL;
    hub_rpc_result_t r = hub_rpc_call(h, 5, "setGpio", "{\"pin\":23}", false, 3000, &id, &reply);
    pthread_join(t, NULL);
    assert_int_equal(r, HUB_RPC_OK);
    assert_int_equal(id, 1);
    assert_string_equal(reply, "{\"ok\":1}");
    assert_string_equal(d.body, "{\"id\":1,\"method\":\"setGpio\",\"params\":{\"pin\":23}}");
    free(reply);
    /* Ids keep rising per device. */
    device_sim_t d2 = {.hub = h, .device = 5, .answer = false};
    pthread_create(&t, NULL, device_thread, &d2);
    r = hub_rpc_call(h, 5, "reboot", NULL, true, 3000, &id, NULL);
    pthread_join(t, NULL);
    assert_int_equal(r, HUB_RPC_OK);
    assert_int_equal(id, 2);
    assert_string_equal(d2.body, "{\"id\":2,\"method\":\"reboot\",\"params\":null}");
    /* params reach the device as written: 0.1 stays 0.1 (a jansson re-dump said
     * 0.10000000000000001), and a method name is escaped. */
    device_sim_t d3 = {.hub = h, .device = 5, .answer = false};
    pthread_create(&t, NULL, device_thread, &d3);
    r = hub_rpc_call(h, 5, "set\"temp", "{\"v\":0.1,\"w\":[1e3,-0.0]}", true, 3000, &id, NULL);
    pthread_join(t, NULL);
    assert_int_equal(r, HUB_RPC_OK);
    assert_string_equal(
        d3.body, "{\"id\":3,\"method\":\"set\\\"temp\",\"params\":{\"v\":0.1,\"w\":[1e3,-0.0]}}");
    hub_free(h);
}

static void test_rpc_outcomes_without_device(void **state)
{
    hub_t *h = hub_new(NULL);
    int64_t id;
    /* Nobody takes it: not delivered. */
    assert_int_equal(hub_rpc_call(h, 9, "m", NULL, false, 50, &id, NULL), HUB_RPC_NOT_DELIVERED);
    /* Delivered but never answered: no reply. */
    device_sim_t d = {.hub = h, .device = 9, .answer = false};
    pthread_t t;
    pthread_create(&t, NULL, device_thread, &d);
    assert_int_equal(hub_rpc_call(h, 9, "m", NULL, false, 300, &id, NULL), HUB_RPC_NO_REPLY);
    pthread_join(t, NULL);
    /* A reply for an id nobody waits for is reported as stale. */
    assert_false(hub_rpc_reply(h, 9, 12345, (const uint8_t *)"{}", 2));
    hub_free(h);
}

/* ---- live status table ---- */

typedef struct watch_log {
    int n;
    int64_t last_device;
    char last[256];
} watch_log_t;

static void on_watch(void *ctx, hub_watch_type_t type, int64_t device_id, const char *json)
{
    watch_log_t *w = ctx;
    assert_int_equal(type, HUB_WATCH_ACTIVITY);
    w->n++;
    w->last_device = device_id;
    snprintf(w->last, sizeof w->last, "%s", json);
}

static void test_status_tracks_transport_observations_activity(void **state)
{
    (void)state;
    hub_t *h = hub_new(NULL);
    watch_log_t w = {0};
    uint64_t wh = hub_watch_add(h, on_watch, &w);
    hub_status_t st;
    assert_false(hub_status_get(h, 7, &st));
    assert_false(st.active);
    assert_int_equal(st.transport, HUB_TRANSPORT_NONE);

    /* First request over DTLS: active, coaps, activity time. */
    hub_status_report(h, 7, &(hub_status_report_t){.transport = HUB_TRANSPORT_COAPS,
                                                   .active_delta = 1, .activity_ms = 1000});
    assert_int_equal(w.n, 1);
    assert_int_equal(w.last_device, 7);
    assert_string_equal(w.last, "{\"active\":true,\"transport\":\"coaps\",\"observations\":0,"
                                "\"lastActivityTime\":1000}");
    assert_true(hub_status_get(h, 7, &st));
    assert_true(st.active);
    assert_int_equal(st.transport, HUB_TRANSPORT_COAPS);

    /* Same transport again, nothing new: no event. */
    hub_status_report(h, 7, &(hub_status_report_t){.transport = HUB_TRANSPORT_COAPS});
    assert_int_equal(w.n, 1);

    /* Two observations open, one ends; transport switches to plain CoAP. */
    hub_status_report(h, 7, &(hub_status_report_t){.obs_delta = 1});
    hub_status_report(h, 7, &(hub_status_report_t){.obs_delta = 1});
    hub_status_report(h, 7, &(hub_status_report_t){.obs_delta = -1});
    hub_status_report(h, 7, &(hub_status_report_t){.transport = HUB_TRANSPORT_COAP});
    assert_int_equal(w.n, 5);
    assert_string_equal(w.last, "{\"active\":true,\"transport\":\"coap\",\"observations\":1,"
                                "\"lastActivityTime\":1000}");

    /* Activity time never goes backwards (shards report independently). */
    hub_status_report(h, 7, &(hub_status_report_t){.activity_ms = 900});
    assert_int_equal(w.n, 5);
    hub_status_get(h, 7, &st);
    assert_int_equal(st.last_activity_ms, 1000);

    hub_watch_remove(h, wh);
    hub_free(h);
}

static void test_status_active_while_any_shard_holds_it(void **state)
{
    (void)state;
    hub_t *h = hub_new(NULL);
    hub_status_t st;
    hub_status_report(h, 1, &(hub_status_report_t){.active_delta = 1}); /* shard A */
    hub_status_report(h, 1, &(hub_status_report_t){.active_delta = 1}); /* shard B */
    hub_status_report(h, 1, &(hub_status_report_t){.active_delta = -1});
    hub_status_get(h, 1, &st);
    assert_true(st.active);
    hub_status_report(h, 1, &(hub_status_report_t){.active_delta = -1});
    hub_status_get(h, 1, &st);
    assert_false(st.active);
    /* Extra "ends" never drive counts negative. */
    hub_status_report(h, 1, &(hub_status_report_t){.active_delta = -1, .obs_delta = -3});
    hub_status_get(h, 1, &st);
    assert_false(st.active);
    assert_int_equal(st.observations, 0);
    hub_free(h);
}

static void test_status_dropped_on_device_delete(void **state)
{
    (void)state;
    hub_t *h = hub_new(NULL);
    watch_log_t w = {0};
    uint64_t wh = hub_watch_add(h, on_watch, &w);
    hub_status_t st;
    hub_status_report(h, 3, &(hub_status_report_t){.active_delta = 1, .obs_delta = 1});
    assert_int_equal(w.n, 1);
    hub_publish(h, HUB_EV_DEVICE_DELETED, 3, NULL); /* no shards registered */
    assert_false(hub_status_get(h, 3, &st));
    /* Its observer ending later does not recreate the entry or publish. */
    hub_status_report(h, 3, &(hub_status_report_t){.obs_delta = -1, .active_delta = -1});
    assert_false(hub_status_get(h, 3, &st));
    assert_int_equal(w.n, 1);
    /* Many devices: the table grows and keeps them all. */
    for (int64_t id = 100; id < 400; id++)
        hub_status_report(h, id, &(hub_status_report_t){.transport = HUB_TRANSPORT_COAP});
    for (int64_t id = 100; id < 400; id++) {
        assert_true(hub_status_get(h, id, &st));
        assert_int_equal(st.transport, HUB_TRANSPORT_COAP);
    }
    hub_watch_remove(h, wh);
    hub_free(h);
}

static void test_status_json_never_seen(void **state)
{
    (void)state;
    hub_status_t st = {0};
    char *j = hub_status_json(&st);
    assert_string_equal(j, "{\"active\":false,\"transport\":null,\"observations\":0,"
                           "\"lastActivityTime\":0}");
    free(j);
    assert_null(hub_transport_name(HUB_TRANSPORT_NONE));
    assert_string_equal(hub_transport_name(HUB_TRANSPORT_COAPS), "coaps");
    assert_string_equal(hub_transport_name(HUB_TRANSPORT_HTTP), "http");
}

static void *undeliver_thread(void *arg)
{
    device_sim_t *d = arg;
    hub_rpc_t rpc;
    for (int i = 0; i < 200; i++) { /* bounded: at most ~2 s */
        if (hub_rpc_take(d->hub, d->device, &rpc)) {
            hub_rpc_undelivered(d->hub, d->device, rpc.request_id);
            free(rpc.body);
            return NULL;
        }
        usleep(5000);
    }
    return NULL;
}

/* ---- long-poll waiters ---- */

typedef struct wake_log {
    int n;
    hub_event_type_t last_type;
    char last_json[128];
} wake_log_t;

static void on_wake(void *ctx, hub_event_type_t type, const char *json)
{
    wake_log_t *l = ctx;
    l->n++;
    l->last_type = type;
    snprintf(l->last_json, sizeof l->last_json, "%s", json ? json : "(null)");
}

/* Each kind hears its own events of its own device, both hear the end of the device, and a
 * removed waiter hears nothing. */
static void test_waiters_hear_their_device_and_kind(void **state)
{
    (void)state;
    hub_t *h = hub_new(NULL);
    wake_log_t la = {0}, lr = {0}, lo = {0};
    hub_waiter_t attr = {.device_id = 7, .kind = HUB_WAIT_ATTRIBUTES, .cb = on_wake, .ctx = &la};
    hub_waiter_t rpc = {.device_id = 7, .kind = HUB_WAIT_RPC, .cb = on_wake, .ctx = &lr};
    hub_waiter_t other = {.device_id = 8, .kind = HUB_WAIT_ATTRIBUTES, .cb = on_wake, .ctx = &lo};
    assert_int_equal(hub_wait_add(h, &attr, 10, 4), 0);
    assert_int_equal(hub_wait_add(h, &rpc, 10, 4), 0);
    assert_int_equal(hub_wait_add(h, &other, 10, 4), 0);

    hub_publish(h, HUB_EV_SHARED_UPDATED, 7, "{\"fw_title\":\"x\"}");
    assert_int_equal(la.n, 1);
    assert_int_equal(la.last_type, HUB_EV_SHARED_UPDATED);
    assert_string_equal(la.last_json, "{\"fw_title\":\"x\"}");
    assert_int_equal(lr.n, 0);
    assert_int_equal(lo.n, 0);

    hub_publish(h, HUB_EV_SHARED_DELETED, 7, "{\"deleted\":[\"a\"]}");
    assert_int_equal(la.n, 2);
    assert_string_equal(la.last_json, "{\"deleted\":[\"a\"]}");

    hub_publish(h, HUB_EV_RPC_PENDING, 7, NULL);
    assert_int_equal(lr.n, 1);
    assert_int_equal(lr.last_type, HUB_EV_RPC_PENDING);
    assert_int_equal(la.n, 2);

    hub_publish(h, HUB_EV_CREDENTIALS_CHANGED, 7, NULL);
    assert_int_equal(la.n, 3);
    assert_int_equal(lr.n, 2);
    assert_int_equal(lr.last_type, HUB_EV_CREDENTIALS_CHANGED);

    hub_wait_remove(h, &rpc);
    hub_wait_remove(h, &rpc); /* twice: nothing */
    hub_publish(h, HUB_EV_DEVICE_DELETED, 7, NULL);
    assert_int_equal(la.n, 4);
    assert_int_equal(la.last_type, HUB_EV_DEVICE_DELETED);
    assert_int_equal(lr.n, 2);
    assert_int_equal(lo.n, 0);

    hub_wait_stats_t st;
    hub_wait_get_stats(h, &st);
    assert_int_equal(st.waiting[HUB_WAIT_ATTRIBUTES], 2);
    assert_int_equal(st.waiting[HUB_WAIT_RPC], 0);
    hub_wait_remove(h, &attr);
    hub_wait_remove(h, &other);
    hub_wait_get_stats(h, &st);
    assert_int_equal(st.waiting[HUB_WAIT_ATTRIBUTES], 0);
    assert_int_equal(st.refused_total, 0);
    hub_free(h);
}

/* The global cap counts every device and kind, the per-device cap one device; refusals are
 * counted and leave nothing registered; a freed slot can be taken again. */
static void test_waiter_caps(void **state)
{
    (void)state;
    hub_t *h = hub_new(NULL);
    wake_log_t l = {0};
    hub_waiter_t w[4];
    for (int i = 0; i < 4; i++)
        w[i] = (hub_waiter_t){.device_id = i < 2 ? 1 : 2 + i,
                              .kind = i % 2 ? HUB_WAIT_RPC : HUB_WAIT_ATTRIBUTES,
                              .cb = on_wake,
                              .ctx = &l};
    assert_int_equal(hub_wait_add(h, &w[0], 3, 1), 0);
    assert_int_equal(hub_wait_add(h, &w[1], 3, 1), -EBUSY); /* device 1 has its one */
    assert_int_equal(hub_wait_add(h, &w[2], 3, 1), 0);
    assert_int_equal(hub_wait_add(h, &w[3], 3, 1), 0);
    hub_waiter_t extra = {.device_id = 99, .kind = HUB_WAIT_RPC, .cb = on_wake, .ctx = &l};
    assert_int_equal(hub_wait_add(h, &extra, 3, 1), -EAGAIN); /* three in all */
    hub_wait_remove(h, &extra);                               /* refused: nothing to do */
    hub_publish(h, HUB_EV_RPC_PENDING, 99, NULL);
    assert_int_equal(l.n, 0);
    hub_wait_stats_t st;
    hub_wait_get_stats(h, &st);
    assert_int_equal(st.waiting[HUB_WAIT_ATTRIBUTES], 2);
    assert_int_equal(st.waiting[HUB_WAIT_RPC], 1);
    assert_int_equal(st.refused_total, 2);
    hub_wait_remove(h, &w[0]);
    assert_int_equal(hub_wait_add(h, &w[1], 3, 1), 0); /* device 1's slot and a global one */
    hub_waiter_t none = {.device_id = 5, .kind = HUB_WAIT_RPC, .cb = on_wake, .ctx = &l};
    assert_int_equal(hub_wait_add(h, &none, 0, 4), -EAGAIN); /* cap 0: long polls off */
    for (int i = 1; i < 4; i++)
        hub_wait_remove(h, &w[i]);
    hub_wait_get_stats(h, &st);
    assert_int_equal(st.waiting[HUB_WAIT_ATTRIBUTES] + st.waiting[HUB_WAIT_RPC], 0);
    assert_int_equal(st.refused_total, 3);
    hub_free(h);
}

/* An HTTP-style poller: registers, tries to take, and otherwise sleeps on its own condition
 * variable until the hub wakes it (no polling on a timer). */
typedef struct poller {
    hub_t *hub;
    int64_t device;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int wakes;
    bool ready;
    char body[256];
} poller_t;

static void poller_wake(void *ctx, hub_event_type_t type, const char *json)
{
    (void)type;
    (void)json;
    poller_t *p = ctx;
    pthread_mutex_lock(&p->mu);
    p->wakes++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void *poller_thread(void *arg)
{
    poller_t *p = arg;
    hub_waiter_t w = {.device_id = p->device, .kind = HUB_WAIT_RPC, .cb = poller_wake, .ctx = p};
    assert_int_equal(hub_wait_add(p->hub, &w, 4, 4), 0);
    pthread_mutex_lock(&p->mu);
    p->ready = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    hub_rpc_t rpc;
    int seen = 0;
    for (int round = 0; round < 50; round++) {
        if (hub_rpc_take(p->hub, p->device, &rpc)) {
            snprintf(p->body, sizeof p->body, "%s", rpc.body);
            hub_rpc_delivered(p->hub, p->device, rpc.request_id);
            hub_rpc_reply(p->hub, p->device, rpc.request_id, (const uint8_t *)"{\"r\":2}", 7);
            free(rpc.body);
            break;
        }
        pthread_mutex_lock(&p->mu);
        while (p->wakes == seen)
            pthread_cond_wait(&p->cv, &p->mu); /* the RPC's publish ends this */
        seen = p->wakes;
        pthread_mutex_unlock(&p->mu);
    }
    hub_wait_remove(p->hub, &w);
    return NULL;
}

static void test_waiter_released_by_rpc_call(void **state)
{
    (void)state;
    hub_t *h = hub_new(NULL);
    poller_t p = {.hub = h, .device = 3};
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    pthread_t t;
    pthread_create(&t, NULL, poller_thread, &p);
    pthread_mutex_lock(&p.mu);
    while (!p.ready)
        pthread_cond_wait(&p.cv, &p.mu);
    pthread_mutex_unlock(&p.mu);
    int64_t id = 0;
    char *reply = NULL;
    hub_rpc_result_t r = hub_rpc_call(h, 3, "ping", "{}", false, 3000, &id, &reply);
    pthread_join(t, NULL);
    assert_int_equal(r, HUB_RPC_OK);
    assert_true(p.wakes <= 1); /* 0 if the RPC was there before the poller first looked */
    assert_string_equal(p.body, "{\"id\":1,\"method\":\"ping\",\"params\":{}}");
    assert_string_equal(reply, "{\"r\":2}");
    free(reply);
    pthread_mutex_destroy(&p.mu);
    pthread_cond_destroy(&p.cv);
    hub_free(h);
}

/* An RPC given back by a failed CoAP delivery wakes the device's RPC pollers again. */
static void test_undelivered_wakes_rpc_waiters(void **state)
{
    (void)state;
    hub_t *h = hub_new(NULL);
    device_sim_t d = {.hub = h, .device = 4, .answer = false};
    wake_log_t l = {0};
    hub_waiter_t w = {.device_id = 4, .kind = HUB_WAIT_RPC, .cb = on_wake, .ctx = &l};
    assert_int_equal(hub_wait_add(h, &w, 4, 4), 0);
    /* A one-way call with a short timeout; a thread plays the CoAP shard that takes it and
     * then fails to deliver it. */
    pthread_t t;
    pthread_create(&t, NULL, undeliver_thread, &d);
    int64_t id;
    assert_int_equal(hub_rpc_call(h, 4, "m", NULL, true, 300, &id, NULL), HUB_RPC_NOT_DELIVERED);
    pthread_join(t, NULL);
    assert_int_equal(l.n, 2); /* the call's publish, then the give-back */
    assert_int_equal(l.last_type, HUB_EV_RPC_PENDING);
    hub_wait_remove(h, &w);
    hub_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_reaches_every_shard),
        cmocka_unit_test(test_rpc_two_way_round_trip),
        cmocka_unit_test(test_rpc_outcomes_without_device),
        cmocka_unit_test(test_status_tracks_transport_observations_activity),
        cmocka_unit_test(test_status_active_while_any_shard_holds_it),
        cmocka_unit_test(test_status_dropped_on_device_delete),
        cmocka_unit_test(test_status_json_never_seen),
        cmocka_unit_test(test_waiters_hear_their_device_and_kind),
        cmocka_unit_test(test_waiter_caps),
        cmocka_unit_test(test_waiter_released_by_rpc_call),
        cmocka_unit_test(test_undelivered_wakes_rpc_waiters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
