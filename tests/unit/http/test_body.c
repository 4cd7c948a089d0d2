/* test_body.c — REST body handling: §5 typing, telemetry/attribute shapes, credentials,
 * device and RPC bodies. */
#include "http/http_int.h"
#include "testcert.h"
#include "values/render.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static int parse_ts(const char *body, store_kv_list_t *l, char *msg)
{
    return http__telemetry_parse(body, strlen(body), 5000, l, msg, 200);
}

static void test_typing(void **state)
{
    (void)state;
    store_kv_list_t l = {0};
    char msg[200];
    assert_int_equal(parse_ts("{\"i\":73,\"d\":42.0,\"s\":\"43\",\"b\":true,\"o\":{\"a\":[1]},"
                              "\"n\":null}", &l, msg), 0);
    assert_int_equal(l.n, 5); /* null skipped */
    for (size_t i = 0; i < l.n; i++) {
        store_kv_t *kv = &l.items[i];
        assert_int_equal(kv->ts, 5000);
        if (!strcmp(kv->key, "i")) {
            assert_int_equal(kv->type, STORE_LONG);
            assert_int_equal(kv->l, 73);
        } else if (!strcmp(kv->key, "d")) {
            assert_int_equal(kv->type, STORE_DOUBLE);
            assert_true(kv->d == 42.0);
        } else if (!strcmp(kv->key, "s")) {
            assert_int_equal(kv->type, STORE_STRING);
            assert_string_equal(kv->s, "43");
        } else if (!strcmp(kv->key, "b")) {
            assert_int_equal(kv->type, STORE_BOOL);
            assert_true(kv->b);
        } else {
            assert_string_equal(kv->key, "o");
            assert_int_equal(kv->type, STORE_JSON);
            assert_string_equal(kv->s, "{\"a\":[1]}");
        }
    }
    store_kv_list_fini(&l);
}

static void test_telemetry_shapes(void **state)
{
    (void)state;
    store_kv_list_t l = {0};
    char msg[200];
    assert_int_equal(parse_ts("{\"ts\":1700000000000,\"values\":{\"t\":1,\"h\":2}}", &l, msg), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.items[0].ts, 1700000000000LL);
    store_kv_list_fini(&l);
    assert_int_equal(parse_ts("[{\"ts\":1,\"values\":{\"t\":1}},{\"t\":2}]", &l, msg), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.items[0].ts, 1);
    assert_int_equal(l.items[1].ts, 5000);
    store_kv_list_fini(&l);
    /* An object with "ts" but other keys too is plain telemetry. */
    assert_int_equal(parse_ts("{\"ts\":1,\"values\":{\"a\":1},\"x\":2}", &l, msg), 0);
    assert_int_equal(l.n, 3);
    store_kv_list_fini(&l);

    const char *bad[] = {"", "nope", "{\"a\":1,\"a\":2}", "[1,2]", "{\"ts\":\"x\",\"values\":{}}",
                         "{\"ts\":1,\"values\":[]}", "{}", "[]", "{\"\":1}", "{\"a\":1} x",
                         "{\"a\":\"\\u0000\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_true(parse_ts(bad[i], &l, msg) < 0);
        assert_int_equal(l.n, 0);
        assert_true(strlen(msg) > 0);
    }
}

static void test_attributes(void **state)
{
    (void)state;
    store_kv_list_t l = {0};
    char msg[200];
    const char *ok = "{\"target\":22,\"mode\":\"eco\"}";
    assert_int_equal(http__attributes_parse(ok, strlen(ok), 7, &l, msg, sizeof msg), 0);
    assert_int_equal(l.n, 2);
    store_kv_list_fini(&l);
    const char *null_v = "{\"target\":null}";
    assert_true(http__attributes_parse(null_v, strlen(null_v), 7, &l, msg, sizeof msg) < 0);
    assert_non_null(strstr(msg, "null"));
    assert_true(http__attributes_parse("{}", 2, 7, &l, msg, sizeof msg) < 0);
    assert_string_equal(msg, "No attributes data found in request body!");
    assert_true(http__attributes_parse("[1]", 3, 7, &l, msg, sizeof msg) < 0);
    assert_string_equal(msg, "Invalid JSON");
    assert_true(http__attributes_parse("{\"\":1}", 6, 7, &l, msg, sizeof msg) < 0);
    assert_string_equal(msg, "Key cannot be blank");
}

/* A stored value as REST answers write it (values/render.h): the text, and read back. */
static char *kv_text(const store_kv_t *kv, bool typed)
{
    values_buf_t b = {0};
    values_kv_write(&b, kv, typed ? VALUES_TYPED : VALUES_TEXT);
    return values_buf_take(&b);
}

static json_t *kv_json(const store_kv_t *kv, bool typed)
{
    char *s = kv_text(kv, typed);
    json_t *j = json_loads(s, JSON_DECODE_ANY, NULL);
    free(s);
    return j;
}

static void test_kv_to_json(void **state)
{
    (void)state;
    store_kv_t kv = {.key = (char *)"k", .type = STORE_DOUBLE, .d = 42.0};
    json_t *j = kv_json(&kv, false);
    assert_string_equal(json_string_value(j), "42.0");
    json_decref(j);
    kv.d = 9.2;
    j = kv_json(&kv, false);
    assert_string_equal(json_string_value(j), "9.2");
    json_decref(j);
    char *s = kv_text(&kv, true);
    assert_string_equal(s, "9.2");
    free(s);
    kv.type = STORE_LONG;
    kv.l = -9007199254740993LL;
    s = kv_text(&kv, true);
    assert_string_equal(s, "-9007199254740993"); /* integers stay exact */
    free(s);
    kv.type = STORE_JSON;
    kv.s = (char *)"{\"a\":1}";
    j = kv_json(&kv, true);
    assert_true(json_is_object(j));
    json_decref(j);
    kv.type = STORE_BOOL;
    kv.b = false;
    j = kv_json(&kv, false);
    assert_string_equal(json_string_value(j), "false");
    json_decref(j);
}

static int cred(const char *body, http_cred_req_t *c, char *msg)
{
    json_t *j = http__json_parse(body, strlen(body));
    int rc = http__cred_from_json(j, c, msg, 300);
    json_decref(j);
    return rc;
}

static void test_credentials(void **state)
{
    (void)state;
    http_cred_req_t c;
    char msg[300];
    assert_int_equal(cred("{\"id\":{\"id\":\"c\"},\"deviceId\":{\"entityType\":\"DEVICE\",\"id\":"
                          "\"d\"},\"credentialsType\":\"ACCESS_TOKEN\",\"credentialsId\":\"tok\"}",
                          &c, msg), 0);
    assert_string_equal(c.id, "c");
    assert_string_equal(c.device_uuid, "d");
    assert_int_equal(c.type, CRED_ACCESS_TOKEN);
    assert_string_equal(c.cred_id, "tok");
    assert_null(c.cred_value);
    http__cred_req_fini(&c);

    assert_true(cred("{\"credentialsId\":\"t\"}", &c, msg) < 0);
    assert_string_equal(msg, "Device credentials type should be specified!");
    assert_true(cred("{\"credentialsType\":\"ACCESS_TOKEN\",\"credentialsId\":\"\"}", &c, msg) < 0);
    assert_string_equal(msg, "Device credentials id should be specified!");
    assert_true(cred("{\"credentialsType\":\"ACCESS_TOKEN\",\"credentialsId\":\"a\\tb\"}", &c,
                     msg) < 0);
    assert_string_equal(msg, "credentialsId must not contain control characters!");
    assert_true(cred("{\"credentialsType\":\"ACCESS_TOKEN\",\"credentialsId\":"
                     "\"123456789012345678901234567890123\"}", &c, msg) < 0);
    assert_true(cred("{\"credentialsType\":\"MQTT_BASIC\",\"credentialsValue\":\"{}\"}", &c,
                     msg) < 0);
    assert_true(cred("{\"credentialsType\":\"X509_CERTIFICATE\","
                     "\"credentialsValue\":\"hello, world\"}", &c, msg) < 0);
    assert_non_null(strstr(msg, "not a PEM certificate"));
    assert_true(cred("[]", &c, msg) < 0);

    char *pem = testcert_new("dev", NULL, NULL);
    json_t *o = json_pack("{s:s, s:s}", "credentialsType", "X509_CERTIFICATE",
                          "credentialsValue", pem);
    assert_int_equal(http__cred_from_json(o, &c, msg, sizeof msg), 0);
    assert_int_equal(c.type, CRED_X509);
    assert_int_equal(strlen(c.cred_id), 64);
    assert_null(strchr(c.cred_value, '\n'));
    http__cred_req_fini(&c);
    json_decref(o);
    free(pem);
}

static void test_device(void **state)
{
    (void)state;
    http_device_req_t d;
    char msg[200];
    json_t *j = json_loads("{\"name\":\"A\",\"label\":\"L\",\"additionalInfo\":{\"x\":1}}", 0,
                           NULL);
    assert_int_equal(http__device_from_json(j, &d, msg, sizeof msg), 0);
    assert_string_equal(d.name, "A");
    assert_null(d.type); /* no type: the default profile, whatever its name */
    assert_string_equal(d.label, "L");
    assert_string_equal(d.additional_info, "{\"x\":1}");
    assert_null(d.uuid);
    assert_null(d.profile_uuid);
    assert_null(d.device_data);
    http__device_req_fini(&d);
    json_decref(j);

    /* deviceProfileId (lower-cased), OTA ids and deviceData (normalised). */
    j = json_loads(
        "{\"name\":\"A\",\"type\":\"t\",\"deviceProfileId\":{\"entityType\":"
        "\"DEVICE_PROFILE\",\"id\":\"784F394C-42B6-435A-983C-B7BEFF2784F9\"},"
        "\"firmwareId\":{\"entityType\":\"OTA_PACKAGE\",\"id\":"
        "\"11111111-2222-3333-4444-555555555555\"},\"softwareId\":null,"
        "\"deviceData\":{\"transportConfiguration\":{\"type\":\"COAP\","
        "\"powerMode\":\"PSM\",\"psmActivityTimer\":9000}}}",
        0, NULL);
    assert_int_equal(http__device_from_json(j, &d, msg, sizeof msg), 0);
    assert_string_equal(d.type, "t");
    assert_string_equal(d.profile_uuid, "784f394c-42b6-435a-983c-b7beff2784f9");
    assert_string_equal(d.firmware_uuid, "11111111-2222-3333-4444-555555555555");
    assert_null(d.software_uuid);
    assert_string_equal(d.device_data,
                        "{\"configuration\":{\"type\":\"DEFAULT\"},\"transportConfiguration\":"
                        "{\"type\":\"COAP\",\"powerMode\":\"PSM\",\"psmActivityTimer\":9000,"
                        "\"edrxCycle\":null,\"pagingTransmissionWindow\":null}}");
    http__device_req_fini(&d);
    json_decref(j);
    static const char *const bad[] = {
        "{\"name\":\"A\",\"deviceProfileId\":{\"id\":\"nope\"}}",
        "{\"name\":\"A\",\"deviceProfileId\":\"784f394c-42b6-435a-983c-b7beff2784f9\"}",
        "{\"name\":\"A\",\"deviceData\":[]}",
        "{\"name\":\"A\",\"deviceData\":{\"transportConfiguration\":{\"type\":\"X\"}}}",
        "{\"name\":\"A\",\"deviceData\":{\"transportConfiguration\":{\"type\":\"COAP\","
        "\"powerMode\":\"NAP\"}}}",
        "{\"name\":\"A\",\"deviceData\":{\"transportConfiguration\":{\"type\":\"COAP\","
        "\"edrxCycle\":1.5}}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        j = json_loads(bad[i], 0, NULL);
        assert_non_null(j);
        assert_true(http__device_from_json(j, &d, msg, sizeof msg) < 0);
        json_decref(j);
    }

    j = json_loads("{\"id\":{\"entityType\":\"DEVICE\",\"id\":\"not-a-uuid\"},\"name\":\"A\"}", 0,
                   NULL);
    assert_true(http__device_from_json(j, &d, msg, sizeof msg) < 0);
    json_decref(j);
    j = json_loads("{\"type\":\"x\"}", 0, NULL);
    assert_true(http__device_from_json(j, &d, msg, sizeof msg) < 0);
    assert_string_equal(msg, "Device name should be specified!");
    json_decref(j);
    j = json_loads("{\"name\":5}", 0, NULL);
    assert_true(http__device_from_json(j, &d, msg, sizeof msg) < 0);
    json_decref(j);
    assert_true(http__device_from_json(NULL, &d, msg, sizeof msg) < 0);
}

static void test_rpc(void **state)
{
    (void)state;
    http_rpc_req_t r;
    char msg[200];
    const char *b = "{\"method\":\"setGpio\",\"params\":{\"pin\":7}}";
    assert_int_equal(http__rpc_parse(b, strlen(b), 10000, 5000, 1000, &r, msg, sizeof msg), 0);
    assert_string_equal(r.method, "setGpio");
    assert_string_equal(r.params, "{\"pin\":7}");
    assert_int_equal(r.timeout_ms, 10000);
    assert_int_equal(r.expiration_ms, 11000);
    assert_false(r.persistent);
    http__rpc_req_fini(&r);
    b = "{\"method\":\"m\",\"timeout\":100,\"persistent\":true}";
    assert_int_equal(http__rpc_parse(b, strlen(b), 10000, 5000, 0, &r, msg, sizeof msg), 0);
    assert_int_equal(r.timeout_ms, 5000); /* raised to the minimum */
    assert_string_equal(r.params, "null");
    assert_true(r.persistent);
    http__rpc_req_fini(&r);
    /* params go to the device as written: no 15-digit rounding of a double. */
    b = "{\"method\":\"m\",\"params\":{\"v\":0.30000000000000004,\"n\":[1,2.5e-3]}}";
    assert_int_equal(http__rpc_parse(b, strlen(b), 10000, 5000, 0, &r, msg, sizeof msg), 0);
    assert_string_equal(r.params, "{\"v\":0.30000000000000004,\"n\":[1,2.5e-3]}");
    http__rpc_req_fini(&r);
    b = "{\"params\":1}";
    assert_true(http__rpc_parse(b, strlen(b), 10000, 5000, 0, &r, msg, sizeof msg) < 0);
    assert_string_equal(msg, "Method should be specified!");
    assert_true(http__rpc_parse("x", 1, 10000, 5000, 0, &r, msg, sizeof msg) < 0);
}

static void test_uuid(void **state)
{
    (void)state;
    assert_true(http__is_uuid("784f394c-42b6-435a-983c-b7beff2784f9"));
    assert_true(http__is_uuid("784F394C-42B6-435A-983C-B7BEFF2784F9"));
    assert_false(http__is_uuid("784f394c-42b6-435a-983c-b7beff2784f"));
    assert_false(http__is_uuid("784f394c042b6-435a-983c-b7beff2784f9"));
    assert_false(http__is_uuid("784f394c-42b6-435a-983c-b7beff2784fg"));
    assert_false(http__is_uuid(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_typing),      cmocka_unit_test(test_telemetry_shapes),
        cmocka_unit_test(test_attributes),  cmocka_unit_test(test_kv_to_json),
        cmocka_unit_test(test_credentials), cmocka_unit_test(test_device),
        cmocka_unit_test(test_rpc),         cmocka_unit_test(test_uuid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
