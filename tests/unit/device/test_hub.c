/* test_hub.c — event broadcast to shard loops and the RPC rendezvous between a waiting REST
 * thread and a shard that delivers and answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/loop.h"
#include "device/hub.h"

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
    char err[256];
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_reaches_every_shard),
        cmocka_unit_test(test_rpc_two_way_round_trip),
        cmocka_unit_test(test_rpc_outcomes_without_device),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
