/* test_rest_data.c — the REST API end to end for device data: attributes, telemetry, RPC
 * (a helper thread plays the device side of the hub), body limits and device deletion. */
#include "rest_fixture.h"
#include "testcert.h"

#include "core/clock.h"
#include "store/sqlite_int.h" /* the writer's connection, to make the database refuse writes */

#include <curl/curl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>

/* Logs in and creates the device the data tests work on. */
static int data_setup(void **state)
{
    rest_setup(state);
    rest_login();
    json_t *d = jreq("POST", "/api/device?accessToken=NEWTOK", "{\"name\":\"Thermostat A\"}",
                     200);
    strcpy(W.dev_uuid, json_string_value(json_object_get(json_object_get(d, "id"), "id")));
    json_decref(d);
    W.dev_id = registry_find_token(W.reg, (const uint8_t *)"NEWTOK", 6);
    assert_true(W.dev_id > 0);
    return 0;
}

static void test_attributes(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "/api/plugins/telemetry/DEVICE/%s/attributes/SHARED_SCOPE",
             W.dev_uuid);
    assert_null(jreq("POST", path, "{\"target\":22,\"mode\":\"eco\",\"cfg\":{\"a\":1}}", 200));
    snprintf(path, sizeof path, "/api/plugins/telemetry/%s/SERVER_SCOPE", W.dev_uuid);
    assert_null(jreq("POST", path, "{\"limit\":1.5}", 200));

    char *out;
    snprintf(path, sizeof path, "/api/plugins/telemetry/DEVICE/%s/CLIENT_SCOPE", W.dev_uuid);
    assert_int_equal(req("POST", path, "{\"a\":1}", W.token, &out), 400);
    assert_string_equal(out, "Invalid scope: CLIENT_SCOPE");
    free(out);
    snprintf(path, sizeof path, "/api/plugins/telemetry/DEVICE/%s/SHARED_SCOPE", W.dev_uuid);
    assert_int_equal(req("POST", path, "{\"a\":null}", W.token, NULL), 400);
    assert_int_equal(req("POST", path, "not json", W.token, &out), 400);
    assert_string_equal(out, "Invalid JSON");
    free(out);

    snprintf(path, sizeof path,
             "/api/plugins/telemetry/DEVICE/%s/values/attributes/SHARED_SCOPE?keys=target,cfg",
             W.dev_uuid);
    json_t *a = jreq("GET", path, NULL, 200);
    assert_int_equal(json_array_size(a), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *e = json_array_get(a, i);
        const char *k = json_string_value(json_object_get(e, "key"));
        assert_true(json_integer_value(json_object_get(e, "lastUpdateTs")) > 0);
        if (!strcmp(k, "target"))
            assert_int_equal(json_integer_value(json_object_get(e, "value")), 22);
        else
            assert_true(json_is_object(json_object_get(e, "value")));
    }
    json_decref(a);
    snprintf(path, sizeof path, "/api/plugins/telemetry/DEVICE/%s/values/attributes", W.dev_uuid);
    a = jreq("GET", path, NULL, 200);
    assert_int_equal(json_array_size(a), 4);
    json_decref(a);
    snprintf(path, sizeof path, "/api/plugins/telemetry/DEVICE/%s/keys/attributes/SHARED_SCOPE",
             W.dev_uuid);
    a = jreq("GET", path, NULL, 200);
    assert_int_equal(json_array_size(a), 3);
    json_decref(a);

    snprintf(path, sizeof path, "/api/plugins/telemetry/DEVICE/%s/SHARED_SCOPE?keys=target,mode",
             W.dev_uuid);
    assert_null(jreq("DELETE", path, NULL, 200));
    snprintf(path, sizeof path, "/api/plugins/telemetry/DEVICE/%s/SHARED_SCOPE", W.dev_uuid);
    assert_int_equal(req("DELETE", path, NULL, W.token, &out), 400);
    assert_string_equal(out, "Empty keys: []");
    free(out);
    snprintf(path, sizeof path, "/api/plugins/telemetry/DEVICE/%s/keys/attributes/SHARED_SCOPE",
             W.dev_uuid);
    a = jreq("GET", path, NULL, 200);
    assert_int_equal(json_array_size(a), 1);
    json_decref(a);
}

static void test_telemetry(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "/api/plugins/telemetry/DEVICE/%s/timeseries/ANY", W.dev_uuid);
    assert_null(jreq("POST", path, "[{\"ts\":1000,\"values\":{\"t\":20,\"h\":1.5}},"
                                   "{\"ts\":2000,\"values\":{\"t\":21}}]", 200));
    snprintf(path, sizeof path, "/api/plugins/telemetry/DEVICE/%s/keys/timeseries", W.dev_uuid);
    json_t *k = jreq("GET", path, NULL, 200);
    assert_int_equal(json_array_size(k), 2);
    json_decref(k);

    snprintf(path, sizeof path, "/api/plugins/telemetry/DEVICE/%s/values/timeseries?keys=t,h",
             W.dev_uuid);
    json_t *v = jreq("GET", path, NULL, 200);
    json_t *t0 = json_array_get(json_object_get(v, "t"), 0);
    assert_int_equal(json_integer_value(json_object_get(t0, "ts")), 2000);
    assert_string_equal(json_string_value(json_object_get(t0, "value")), "21");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(v, "h"), 0), "value")), "1.5");
    json_decref(v);
    snprintf(path, sizeof path, "/api/plugins/telemetry/DEVICE/%s/values/timeseries?key=t"
                                "&useStrictDataTypes=true", W.dev_uuid);
    v = jreq("GET", path, NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(
                         json_array_get(json_object_get(v, "t"), 0), "value")), 21);
    json_decref(v);

    snprintf(path, sizeof path, "/api/plugins/telemetry/DEVICE/%s/values/timeseries?keys=t"
                                "&startTs=0&endTs=5000", W.dev_uuid);
    v = jreq("GET", path, NULL, 200);
    json_t *arr = json_object_get(v, "t");
    assert_int_equal(json_array_size(arr), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(arr, 0), "ts")), 2000);
    json_decref(v);
    snprintf(path, sizeof path, "/api/plugins/telemetry/DEVICE/%s/values/timeseries/history?"
                                "keys=t&startTs=0&endTs=5000&orderBy=ASC&limit=1", W.dev_uuid);
    v = jreq("GET", path, NULL, 200);
    arr = json_object_get(v, "t");
    assert_int_equal(json_array_size(arr), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(arr, 0), "ts")), 1000);
    json_decref(v);

    snprintf(path, sizeof path, "/api/plugins/telemetry/DEVICE/%s/timeseries/delete?keys=h"
                                "&deleteAllDataForKeys=true", W.dev_uuid);
    assert_null(jreq("DELETE", path, NULL, 200));
    snprintf(path, sizeof path, "/api/plugins/telemetry/DEVICE/%s/keys/timeseries", W.dev_uuid);
    k = jreq("GET", path, NULL, 200);
    assert_int_equal(json_array_size(k), 1);
    json_decref(k);
    snprintf(path, sizeof path, "/api/plugins/telemetry/DEVICE/%s/timeseries/ANY", W.dev_uuid);
    assert_int_equal(req("POST", path, "{\"a\":1,\"a\":2}", W.token, NULL), 400);
}

static void set_query_only(bool on)
{
    sqlite3 *db = store__sq(W.store->db)->wconn.db;
    assert_int_equal(
        sqlite3_exec(db, on ? "PRAGMA query_only = 1" : "PRAGMA query_only = 0", NULL, NULL, NULL),
        SQLITE_OK);
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    if (size * n > 12 && strncasecmp(p, "Retry-After:", 12) == 0)
        *(long *)arg = strtol(p + 12, NULL, 10);
    return size * n;
}

/* A database that cannot take device data (the writer's connection read-only here; a full
 * disk and PostgreSQL down take the same path): 503 with ThingsBoard's error JSON and Retry-After, never 200 or 500; reads
 * still work; writes work again without a restart. */
static void test_store_refusing_writes(void **state)
{
    (void)state;
    char ts[256], attr[256], keys[256];
    snprintf(ts, sizeof ts, "/api/plugins/telemetry/DEVICE/%s/timeseries/ANY", W.dev_uuid);
    snprintf(attr, sizeof attr, "/api/plugins/telemetry/DEVICE/%s/attributes/SERVER_SCOPE",
             W.dev_uuid);
    snprintf(keys, sizeof keys, "/api/plugins/telemetry/DEVICE/%s/keys/timeseries", W.dev_uuid);
    set_query_only(true);
    assert_error(jreq("POST", ts, "{\"refused\":1}", 503), 503, 2, "Service unavailable");
    assert_error(jreq("POST", attr, "{\"refused\":1}", 503), 503, 2, "Service unavailable");

    CURL *c = curl_easy_init();
    char url[512], hdr[4096];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", W.port, ts);
    snprintf(hdr, sizeof hdr, "X-Authorization: Bearer %s", W.token);
    struct curl_slist *hl = curl_slist_append(NULL, hdr);
    hl = curl_slist_append(hl, "Content-Type: application/json");
    long after = -1;
    buf_t b = {NULL, 0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{\"refused\":2}");
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &after);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, rest_on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    long st = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
    assert_int_equal(st, 503);
    assert_int_equal(after, HTTP_RETRY_AFTER_S);
    free(b.p);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);

    json_t *k = jreq("GET", keys, NULL, 200); /* reads are not refused */
    for (size_t i = 0; i < json_array_size(k); i++)
        assert_string_not_equal(json_string_value(json_array_get(k, i)), "refused");
    json_decref(k);
    /* /readyz's reason (store/health.c), until the probe write sees writes work again. */
    assert_string_equal(store_unready_reason(W.store), "database read-only");
    set_query_only(false);
    for (int i = 0; i < 300 && store_unready_reason(W.store); i++)
        usleep(10000);
    assert_null(store_unready_reason(W.store));
    assert_null(jreq("POST", ts, "{\"refused\":3}", 200));
    snprintf(keys, sizeof keys, "/api/plugins/telemetry/DEVICE/%s/values/timeseries?keys=refused",
             W.dev_uuid);
    json_t *v = jreq("GET", keys, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(v, "refused"), 0), "value")),
                        "3");
    json_decref(v);
}

typedef struct fake_dev {
    int64_t dev;
    volatile bool stop;
} fake_dev_t;

/* Plays a device: takes pending RPCs, marks them delivered and replies. */
static void *fake_device(void *arg)
{
    fake_dev_t *f = arg;
    while (!f->stop) {
        hub_rpc_t r;
        if (hub_rpc_take(W.hub, f->dev, &r)) {
            hub_rpc_delivered(W.hub, f->dev, r.request_id);
            const char *reply = "{\"result\":\"ok\"}";
            hub_rpc_reply(W.hub, f->dev, r.request_id, (const uint8_t *)reply, strlen(reply));
            free(r.body);
            f->stop = true;
        }
        usleep(2000);
    }
    return NULL;
}

static void test_rpc(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "/api/plugins/rpc/twoway/%s", W.dev_uuid);
    assert_error(jreq("POST", path, "{\"timeout\":50}", 400), 400, 31,
                 "Method should be specified!");
    /* Nobody subscribed: v1 409, v2 504. */
    assert_error(jreq("POST", path, "{\"method\":\"m\",\"timeout\":50}", 409), 409, 2, NULL);
    snprintf(path, sizeof path, "/api/rpc/oneway/%s", W.dev_uuid);
    assert_error(jreq("POST", path, "{\"method\":\"m\",\"timeout\":50}", 504), 504, 2, NULL);

    fake_dev_t f = {.dev = W.dev_id};
    pthread_t t;
    pthread_create(&t, NULL, fake_device, &f);
    snprintf(path, sizeof path, "/api/rpc/twoway/%s", W.dev_uuid);
    json_t *r = jreq("POST", path, "{\"method\":\"getX\",\"params\":{},\"timeout\":2000}", 200);
    assert_string_equal(json_string_value(json_object_get(r, "result")), "ok");
    json_decref(r);
    f.stop = true;
    pthread_join(t, NULL);

    r = jreq("POST", path, "{\"method\":\"m\",\"timeout\":50,\"persistent\":true}", 200);
    char rpath[128];
    snprintf(rpath, sizeof rpath, "/api/rpc/persistent/%s",
             json_string_value(json_object_get(r, "rpcId")));
    json_decref(r);
    /* The background call gives up after 50 ms and records EXPIRED (waited for up to 10 s:
     * a loaded CI machine, ASan, may take a while to run the thread that records it). */
    bool expired = false;
    for (int i = 0; i < 1000 && !expired; i++) {
        r = jreq("GET", rpath, NULL, 200);
        expired = strcmp(json_string_value(json_object_get(r, "status")), "EXPIRED") == 0;
        if (!expired)
            assert_string_equal(json_string_value(json_object_get(r, "status")), "QUEUED");
        json_decref(r);
        usleep(10 * 1000);
    }
    assert_true(expired);
    assert_error(jreq("GET", "/api/rpc/persistent/784f394c-42b6-435a-983c-b7beff2784f9", NULL,
                      404), 404, 32, NULL);
}

static void test_limits_and_delete(void **state)
{
    (void)state;
    size_t n = 20 * 1024;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    big[n] = '\0';
    big[0] = '{';
    big[n - 1] = '}';
    char *out;
    assert_int_equal(req("POST", "/api/device", big, W.token, &out), 413);
    assert_error(json_loads(out, 0, NULL), 413, 31, NULL);
    free(out);
    free(big);

    char path[256];
    snprintf(path, sizeof path, "/api/device/%s", W.dev_uuid);
    assert_null(jreq("DELETE", path, NULL, 200));
    assert_error(jreq("GET", path, NULL, 404), 404, 32, NULL);
    assert_int_equal(registry_find_token(W.reg, (const uint8_t *)"NEWTOK", 6), 0);
}

static void *slow_rpc(void *arg)
{
    (void)arg;
    char path[256];
    snprintf(path, sizeof path, "/api/plugins/rpc/twoway/%s", W.dev_uuid);
    char *out = NULL;
    req("POST", path, "{\"method\":\"slow\",\"timeout\":30000}", W.token, &out);
    free(out);
    return NULL;
}

/* Stopping the server cancels RPC calls still waiting (a blocked handler and a persistent
 * call) instead of waiting out their 30 s timeouts. Must run last: it stops the server. */
static void test_stop_cancels_rpc(void **state)
{
    (void)state;
    json_t *d = jreq("POST", "/api/device", "{\"name\":\"E\"}", 200);
    strcpy(W.dev_uuid, json_string_value(json_object_get(json_object_get(d, "id"), "id")));
    json_decref(d);
    char path[256];
    snprintf(path, sizeof path, "/api/rpc/twoway/%s", W.dev_uuid);
    json_t *r = jreq("POST", path, "{\"method\":\"m\",\"timeout\":30000,\"persistent\":true}",
                     200);
    json_decref(r);
    pthread_t t;
    pthread_create(&t, NULL, slow_rpc, NULL);
    usleep(100 * 1000);
    int64_t t0 = clock_mono_ms();
    http_server_stop(W.srv);
    W.srv = NULL;
    assert_true(clock_mono_ms() - t0 < 3000);
    pthread_join(t, NULL);
}

/* GET /api/coaphub/devices/status: live status from the hub for known devices, defaults for
 * devices never seen, 400 for malformed ids, 401 without a token. */
static void test_device_status(void **state)
{
    (void)state;
    hub_status_report_t r = {.transport = HUB_TRANSPORT_COAPS, .active_delta = 1, .obs_delta = 2,
                             .activity_ms = 1700000000000};
    hub_status_report(W.hub, W.dev_id, &r);
    char path[256];
    snprintf(path, sizeof path, "/api/coaphub/devices/status?ids=%s,%s", W.dev_uuid,
             "00000000-0000-4000-8000-000000000000");
    json_t *j = jreq("GET", path, NULL, 200);
    json_t *mine = json_object_get(j, W.dev_uuid);
    assert_true(json_is_true(json_object_get(mine, "active")));
    assert_string_equal(json_string_value(json_object_get(mine, "transport")), "coaps");
    assert_int_equal(json_integer_value(json_object_get(mine, "observations")), 2);
    assert_int_equal(json_integer_value(json_object_get(mine, "lastActivityTime")),
                     1700000000000);
    json_t *other = json_object_get(j, "00000000-0000-4000-8000-000000000000");
    assert_non_null(other);
    assert_true(json_is_false(json_object_get(other, "active")));
    assert_true(json_is_null(json_object_get(other, "transport")));
    assert_int_equal(json_integer_value(json_object_get(other, "observations")), 0);
    json_decref(j);
    assert_int_equal(req("GET", "/api/coaphub/devices/status?ids=not-a-uuid", NULL, W.token,
                         NULL), 400);
    assert_int_equal(req("GET", path, NULL, NULL, NULL), 401);
    /* The device's observers end: the count follows. */
    hub_status_report_t end = {.obs_delta = -2};
    hub_status_report(W.hub, W.dev_id, &end);
    j = jreq("GET", path, NULL, 200);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, W.dev_uuid), "observations")), 0);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attributes),
        cmocka_unit_test(test_telemetry),
        cmocka_unit_test(test_rpc),
        cmocka_unit_test(test_device_status),
        cmocka_unit_test(test_store_refusing_writes),
        cmocka_unit_test(test_limits_and_delete),
        cmocka_unit_test(test_stop_cancels_rpc),
    };
    return cmocka_run_group_tests(tests, data_setup, rest_teardown);
}
