/* test_uplink.c — the device API's transport-independent rules (uplink/uplink.h) that CoAP
 * and HTTP share: what a body becomes in a store batch, the client RPC answers, attribute key
 * lists as ThingsBoard splits them, and the activity bookkeeping's writes and hub reports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "uplink/uplink.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const values_cfg_t CFG = {.type_cast = true, .max_depth = 32};

static void test_telemetry_batch(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 0);
    char err[128];
    store_batch_t *b = store_batch_new();
    const char *body = "[{\"t\":\"21\"},{\"ts\":5,\"values\":{\"u\":true}}]";
    assert_int_equal(uplink_telemetry(&a, &CFG, (const uint8_t *)body, strlen(body), 7, 1000, b,
                                      err, sizeof err),
                     0);
    assert_int_equal(store_batch_len(b), 2);
    store_op_view_t v;
    store_batch_op(b, 0, &v);
    assert_int_equal(v.device_id, 7);
    assert_string_equal(v.kv->key, "t");
    assert_int_equal(v.kv->type, STORE_LONG); /* "21" cast, as ThingsBoard */
    assert_int_equal(v.kv->ts, 1000);         /* no ts: the server's */
    store_batch_op(b, 1, &v);
    assert_int_equal(v.kv->ts, 5);
    store_batch_reset(b);
    assert_int_equal(
        uplink_telemetry(&a, &CFG, (const uint8_t *)"{\"x\":", 5, 7, 1000, b, err, sizeof err),
        -EBADMSG);
    assert_int_equal(store_batch_len(b), 0); /* nothing added on an error */
    assert_int_equal(
        uplink_attributes(&a, &CFG, (const uint8_t *)"{\"k\":1}", 7, 7, 1000, b, err, sizeof err),
        0);
    store_batch_op(b, 0, &v);
    assert_int_equal(v.scope, SCOPE_CLIENT);
    assert_int_equal(v.kv->ts, 1000);
    store_batch_reset(b);
    assert_int_equal(uplink_claim(&a, &CFG, NULL, 0, 7, 1000, b, err, sizeof err), 0);
    store_batch_op(b, 0, &v);
    assert_int_equal(v.scope, SCOPE_SERVER);
    assert_string_equal(v.kv->key, "claimingData");
    assert_string_equal(v.kv->s, "{\"secretKey\":\"\",\"expirationTime\":86401000}");
    store_batch_free(b);
    arena_fini(&a);
}

static void test_client_rpc(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 0);
    char err[128];
    values_buf_t out = {0};
    const char *t = "{\"method\":\"getCurrentTime\",\"params\":{}}";
    assert_int_equal(
        uplink_client_rpc(&a, &CFG, (const uint8_t *)t, strlen(t), 42, &out, err, sizeof err), 0);
    assert_string_equal(out.p, "{\"time\":42}");
    values_buf_fini(&out);
    const char *u = "{\"method\":\"a\\\"b\"}";
    assert_int_equal(
        uplink_client_rpc(&a, &CFG, (const uint8_t *)u, strlen(u), 42, &out, err, sizeof err), 1);
    assert_string_equal(out.p, "{\"error\":\"Unsupported client-side RPC method: a\\\"b\"}");
    values_buf_fini(&out);
    assert_int_equal(
        uplink_client_rpc(&a, &CFG, (const uint8_t *)"[]", 2, 42, &out, err, sizeof err), -EBADMSG);
    assert_null(out.p);
    arena_fini(&a);
}

static void test_keys_split(void **state)
{
    (void)state;
    uplink_keys_t k = {0};
    uplink_keys_add_csv(&k, "", 0);
    assert_false(k.present);
    uplink_keys_add_csv(&k, "a,,b,,", 6); /* Java's split: inner empties kept, trailing not */
    assert_true(k.present);
    assert_int_equal(k.n, 3);
    assert_string_equal(k.keys[0], "a");
    assert_string_equal(k.keys[1], "");
    assert_string_equal(k.keys[2], "b");
    uplink_keys_fini(&k);
    assert_int_equal(k.n, 0);
}

static void test_activity(void **state)
{
    (void)state;
    uplink_activity_t st = {0};
    hub_status_report_t rep;
    /* first request: active + lastConnectTime + lastActivityTime, reported */
    store_batch_t *b = uplink_activity_request(&st, 3, HUB_TRANSPORT_HTTP, 100, 5000, 3000, &rep);
    assert_non_null(b);
    assert_int_equal(store_batch_len(b), 3);
    assert_int_equal(rep.active_delta, 1);
    assert_int_equal(rep.transport, HUB_TRANSPORT_HTTP);
    assert_int_equal(rep.activity_ms, 5000);
    store_batch_free(b);
    /* within report_ms: nothing to write or report */
    assert_null(uplink_activity_request(&st, 3, HUB_TRANSPORT_HTTP, 2000, 6900, 3000, &rep));
    assert_int_equal(rep.active_delta + rep.transport + rep.activity_ms, 0);
    /* after it: lastActivityTime only */
    b = uplink_activity_request(&st, 3, HUB_TRANSPORT_HTTP, 3100, 8000, 3000, &rep);
    assert_non_null(b);
    assert_int_equal(store_batch_len(b), 1);
    assert_int_equal(rep.activity_ms, 8000);
    assert_int_equal(rep.active_delta, 0);
    assert_int_equal(rep.transport, HUB_TRANSPORT_HTTP); /* rides along with the write */
    store_batch_free(b);
    /* quiet: active false + lastDisconnectTime, once */
    b = uplink_activity_inactive(&st, 3, 9000, &rep);
    assert_non_null(b);
    assert_int_equal(store_batch_len(b), 2);
    assert_int_equal(rep.active_delta, -1);
    store_batch_free(b);
    assert_null(uplink_activity_inactive(&st, 3, 9500, &rep));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_telemetry_batch),
        cmocka_unit_test(test_client_rpc),
        cmocka_unit_test(test_keys_split),
        cmocka_unit_test(test_activity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
