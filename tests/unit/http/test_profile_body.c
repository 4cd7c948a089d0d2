/* test_profile_body.c — DeviceProfile JSON <-> store_profile_t (src/http/profile_body.c):
 * ThingsBoard's validation messages, the normalised data text, the X.509 chain's hash and
 * canonical PEM, and the answer JSON of stored rows with and without data. */
#include "device/x509.h"
#include "http/http_int.h"
#include "testcert.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static int parse(const char *text, http_profile_req_t *pr, char *msg)
{
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    int rc = http__profile_from_json(j, pr, msg, 300);
    json_decref(j);
    return rc;
}

static void expect_error(const char *text, const char *message)
{
    http_profile_req_t pr;
    char msg[300] = "";
    assert_int_equal(parse(text, &pr, msg), -EINVAL);
    if (message)
        assert_string_equal(msg, message);
    else
        assert_true(msg[0] != '\0');
    assert_null(pr.name); /* nothing left behind */
}

static void test_minimal(void **state)
{
    (void)state;
    http_profile_req_t pr;
    char msg[300];
    assert_int_equal(parse("{\"name\":\"p\"}", &pr, msg), 0);
    assert_string_equal(pr.name, "p");
    assert_null(pr.uuid);
    assert_false(pr.is_default);
    assert_string_equal(pr.provision_type, "DISABLED");
    assert_null(pr.provision_key);
    assert_string_equal(pr.data,
                        "{\"type\":\"DEFAULT\",\"description\":null,\"image\":null,"
                        "\"defaultQueueName\":null,\"defaultRuleChainId\":null,"
                        "\"defaultDashboardId\":null,\"defaultEdgeRuleChainId\":null,"
                        "\"transportType\":\"DEFAULT\",\"profileData\":{\"configuration\":"
                        "{\"type\":\"DEFAULT\"},\"transportConfiguration\":{\"type\":\"DEFAULT\"},"
                        "\"provisionConfiguration\":{\"type\":\"DISABLED\","
                        "\"provisionDeviceSecret\":null},\"alarms\":null}}");
    http__profile_req_fini(&pr);
}

static void test_coap_and_provisioning(void **state)
{
    (void)state;
    http_profile_req_t pr;
    char msg[300];
    /* The key inside provisionConfiguration (TB's UI form), a COAP transport without its
     * device-type part, an update id in upper case, a version. */
    assert_int_equal(
        parse("{\"id\":{\"entityType\":\"DEVICE_PROFILE\",\"id\":"
              "\"784F394C-42B6-435A-983C-B7BEFF2784F9\"},\"name\":\"c\",\"default\":true,"
              "\"version\":3,\"firmwareId\":{\"entityType\":\"OTA_PACKAGE\",\"id\":"
              "\"11111111-2222-3333-4444-555555555555\"},"
              "\"profileData\":{\"transportConfiguration\":{\"type\":\"COAP\",\"clientSettings\":"
              "{\"powerMode\":\"E_DRX\",\"edrxCycle\":81920}},\"provisionConfiguration\":{\"type\":"
              "\"CHECK_PRE_PROVISIONED_DEVICES\",\"provisionDeviceKey\":\"k\","
              "\"provisionDeviceSecret\":\"s\"}}}",
              &pr, msg),
        0);
    assert_string_equal(pr.uuid, "784f394c-42b6-435a-983c-b7beff2784f9");
    assert_true(pr.is_default);
    assert_int_equal(pr.version, 3);
    assert_string_equal(pr.firmware_uuid, "11111111-2222-3333-4444-555555555555");
    assert_null(pr.software_uuid);
    assert_string_equal(pr.provision_type, "CHECK_PRE_PROVISIONED_DEVICES");
    assert_string_equal(pr.provision_key, "k");
    json_t *d = json_loads(pr.data, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(d, "transportType")), "COAP");
    json_t *tc = json_object_get(json_object_get(d, "profileData"), "transportConfiguration");
    char *tcs = http__dumps(tc);
    assert_string_equal(tcs,
                        "{\"type\":\"COAP\",\"coapDeviceTypeConfiguration\":{"
                        "\"coapDeviceType\":\"DEFAULT\",\"transportPayloadTypeConfiguration\":"
                        "{\"transportPayloadType\":\"JSON\"}},\"clientSettings\":{"
                        "\"powerMode\":\"E_DRX\",\"psmActivityTimer\":null,\"edrxCycle\":81920,"
                        "\"pagingTransmissionWindow\":null}}");
    free(tcs);
    json_t *pc = json_object_get(json_object_get(d, "profileData"), "provisionConfiguration");
    assert_string_equal(json_string_value(json_object_get(pc, "provisionDeviceSecret")), "s");
    assert_null(json_object_get(pc, "provisionDeviceKey")); /* the key lives in its column */
    json_decref(d);

    /* Stored and rendered back: ThingsBoard's DeviceProfile JSON. */
    store_profile_t p = {.id = 7,
                         .created_ms = 1700000000000,
                         .name = pr.name,
                         .is_default = true,
                         .provision_type = pr.provision_type,
                         .provision_key = pr.provision_key,
                         .firmware_id = pr.firmware_uuid,
                         .data = pr.data,
                         .version = 4};
    strcpy(p.uuid, "784f394c-42b6-435a-983c-b7beff2784f9");
    json_t *o = http__profile_json("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", &p, false);
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "id"), "entityType")),
                        "DEVICE_PROFILE");
    assert_string_equal(json_string_value(json_object_get(o, "provisionType")),
                        "CHECK_PRE_PROVISIONED_DEVICES");
    assert_string_equal(json_string_value(json_object_get(o, "provisionDeviceKey")), "k");
    assert_true(json_is_true(json_object_get(o, "default")));
    assert_int_equal(json_integer_value(json_object_get(o, "version")), 4);
    assert_int_equal(json_integer_value(json_object_get(o, "createdTime")), 1700000000000);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(o, "firmwareId"), "entityType")),
        "OTA_PACKAGE");
    assert_true(json_is_null(json_object_get(o, "softwareId")));
    assert_string_equal(json_string_value(json_object_get(o, "transportType")), "COAP");
    json_decref(o);
    o = http__profile_json("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", &p, true);
    char *info = http__dumps(o);
    assert_string_equal(info,
                        "{\"id\":{\"entityType\":\"DEVICE_PROFILE\",\"id\":"
                        "\"784f394c-42b6-435a-983c-b7beff2784f9\"},\"tenantId\":{"
                        "\"entityType\":\"TENANT\",\"id\":"
                        "\"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\"},\"name\":\"c\","
                        "\"image\":null,\"defaultDashboardId\":null,\"type\":\"DEFAULT\","
                        "\"transportType\":\"COAP\"}");
    free(info);
    json_decref(o);
    http__profile_req_fini(&pr);
}

/* A row the store made itself (no data at all) answers with ThingsBoard's defaults. */
static void test_row_without_data(void **state)
{
    (void)state;
    store_profile_t p = {.id = 1, .name = (char *)"foo", .version = 1};
    strcpy(p.uuid, "784f394c-42b6-435a-983c-b7beff2784f9");
    json_t *o = http__profile_json("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", &p, false);
    json_t *pd = json_object_get(o, "profileData");
    char *s = http__dumps(pd);
    assert_string_equal(s,
                        "{\"configuration\":{\"type\":\"DEFAULT\"},\"transportConfiguration\":"
                        "{\"type\":\"DEFAULT\"},\"provisionConfiguration\":{\"type\":"
                        "\"DISABLED\",\"provisionDeviceSecret\":null},\"alarms\":null}");
    free(s);
    assert_string_equal(json_string_value(json_object_get(o, "provisionType")), "DISABLED");
    assert_true(json_is_null(json_object_get(o, "provisionDeviceKey")));
    assert_true(json_is_null(json_object_get(o, "description")));
    json_decref(o);
}

static void test_validation(void **state)
{
    (void)state;
    expect_error("{}", "Device profile name should be specified!");
    expect_error("{\"name\":\"\"}", "Device profile name should be specified!");
    expect_error("{\"name\":7}", "Device profile name should be specified!");
    expect_error(
        "{\"name\":\"p\",\"provisionType\":\"ALLOW_CREATE_NEW_DEVICES\","
        "\"profileData\":{\"provisionConfiguration\":{\"type\":"
        "\"ALLOW_CREATE_NEW_DEVICES\",\"provisionDeviceSecret\":\"s\"}}}",
        "Provision device key should be specified!");
    expect_error(
        "{\"name\":\"p\",\"provisionType\":\"ALLOW_CREATE_NEW_DEVICES\","
        "\"provisionDeviceKey\":\"k\"}",
        "Provision device secret should be specified!");
    expect_error("{\"name\":\"p\",\"provisionType\":\"SOMETIMES\"}", NULL);
    expect_error("{\"name\":\"p\",\"type\":\"MQTT\"}", "Device profile type must be DEFAULT");
    expect_error("{\"name\":\"p\",\"transportType\":\"CAN\"}", NULL);
    expect_error(
        "{\"name\":\"p\",\"transportType\":\"COAP\",\"profileData\":"
        "{\"transportConfiguration\":{\"type\":\"MQTT\"}}}",
        NULL);
    expect_error(
        "{\"name\":\"p\",\"transportType\":\"COAP\",\"profileData\":"
        "{\"transportConfiguration\":{\"type\":\"COAP\",\"clientSettings\":"
        "{\"psmActivityTimer\":-5}}}}",
        NULL);
    expect_error(
        "{\"name\":\"p\",\"transportType\":\"COAP\",\"profileData\":"
        "{\"transportConfiguration\":{\"type\":\"COAP\",\"coapDeviceTypeConfiguration\":"
        "{\"coapDeviceType\":\"TOASTER\"}}}}",
        NULL);
    expect_error("{\"name\":\"p\",\"profileData\":[]}", "profileData must be an object");
    expect_error("{\"name\":\"p\",\"firmwareId\":{\"id\":\"x\"}}", NULL);
    expect_error("{\"name\":\"p\",\"default\":\"yes\"}", NULL);
    expect_error(
        "{\"name\":\"p\",\"profileData\":{\"provisionConfiguration\":{\"type\":"
        "\"X509_CERTIFICATE_CHAIN\",\"provisionDeviceSecret\":\"-----BEGIN CERTIFICATE-----"
        "\\nAAAA\\n-----END CERTIFICATE-----\"}}}",
        NULL);
}

static void test_x509_chain(void **state)
{
    (void)state;
    uint8_t *der = NULL;
    size_t der_len = 0;
    char *ca = testcert_new("fleet-ca", &der, &der_len);
    char *inter = testcert_new("intermediate", NULL, NULL);
    char want[65];
    assert_int_equal(x509_cred_hash_der(der, der_len, want), 0);
    /* Pasted with CRLF line ends and a second certificate: the hash is the first one's. */
    size_t n = strlen(ca) + strlen(inter) + 64;
    char *chain = malloc(2 * n);
    char *w = chain;
    for (const char *r = ca; *r; r++) {
        if (*r == '\n')
            *w++ = '\r';
        *w++ = *r;
    }
    strcpy(w, inter);
    json_t *body = json_pack("{s:s, s:{s:{s:s, s:s, s:s}}}", "name", "chain", "profileData",
                             "provisionConfiguration", "type", "X509_CERTIFICATE_CHAIN",
                             "provisionDeviceSecret", chain, "certificateRegExPattern",
                             "^dev-([0-9]+)$");
    http_profile_req_t pr;
    char msg[300];
    assert_int_equal(http__profile_from_json(body, &pr, msg, sizeof msg), 0);
    assert_string_equal(pr.provision_type, "X509_CERTIFICATE_CHAIN");
    assert_string_equal(pr.provision_key, want);
    json_t *d = json_loads(pr.data, 0, NULL);
    json_t *pc = json_object_get(json_object_get(d, "profileData"), "provisionConfiguration");
    const char *pem = json_string_value(json_object_get(pc, "provisionDeviceSecret"));
    assert_null(strchr(pem, '\r'));
    char *again = NULL, hash2[65];
    int count = 0;
    assert_int_equal(x509_chain_from_pem(pem, strlen(pem), &again, &count, hash2, msg, sizeof msg),
                     0);
    assert_int_equal(count, 2);
    assert_string_equal(again, pem); /* canonical PEM is a fixed point */
    assert_string_equal(hash2, want);
    assert_true(json_is_true(json_object_get(pc, "allowCreateNewDevicesByX509Certificate")));
    assert_string_equal(json_string_value(json_object_get(pc, "certificateRegExPattern")),
                        "^dev-([0-9]+)$");
    free(again);
    json_decref(d);
    http__profile_req_fini(&pr);

    /* A regex that does not compile, and one without a group, are refused. */
    json_object_set_new(
        json_object_get(json_object_get(body, "profileData"), "provisionConfiguration"),
        "certificateRegExPattern", json_string("([a-"));
    assert_int_equal(http__profile_from_json(body, &pr, msg, sizeof msg), -EINVAL);
    assert_memory_equal(msg, "Invalid certificateRegExPattern", 31);
    json_object_set_new(
        json_object_get(json_object_get(body, "profileData"), "provisionConfiguration"),
        "certificateRegExPattern", json_string("dev-.*"));
    assert_int_equal(http__profile_from_json(body, &pr, msg, sizeof msg), -EINVAL);
    /* A private key pasted along is refused, not stored. */
    char *with_key = malloc(strlen(ca) + 200);
    sprintf(with_key, "%s-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", ca);
    char *out = NULL, h[65];
    assert_int_equal(
        x509_chain_from_pem(with_key, strlen(with_key), &out, &count, h, msg, sizeof msg), -EINVAL);
    assert_null(out);
    /* A bare Base64 body (ThingsBoard's own stored form) is one certificate. */
    char *b64 = NULL;
    assert_int_equal(x509_cred_from_pem(ca, strlen(ca), &b64, h, msg, sizeof msg), 0);
    assert_int_equal(x509_chain_from_pem(b64, strlen(b64), &out, &count, hash2, msg, sizeof msg),
                     0);
    assert_int_equal(count, 1);
    assert_string_equal(hash2, want);
    free(out);
    free(b64);
    free(with_key);
    json_decref(body);
    free(chain);
    free(inter);
    free(ca);
    free(der);
}

static void test_device_data_default(void **state)
{
    (void)state;
    json_t *o = http__device_data_json(NULL);
    char *s = http__dumps(o);
    assert_string_equal(s,
                        "{\"configuration\":{\"type\":\"DEFAULT\"},\"transportConfiguration\":"
                        "{\"type\":\"DEFAULT\"}}");
    free(s);
    json_decref(o);
    char *text = NULL, msg[200];
    assert_int_equal(http__device_data_from_json(NULL, &text, msg, sizeof msg), 0);
    assert_null(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal),          cmocka_unit_test(test_coap_and_provisioning),
        cmocka_unit_test(test_row_without_data), cmocka_unit_test(test_validation),
        cmocka_unit_test(test_x509_chain),       cmocka_unit_test(test_device_data_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
