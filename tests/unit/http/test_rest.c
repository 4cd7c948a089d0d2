/* test_rest.c — the REST API end to end (auth, devices, credentials, route protection):
 * real store, registry and hub in one process, driven over loopback with libcurl. */
#include "rest_fixture.h"

#include "testcert.h"

#include "core/clock.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* GET /readyz on the server under test: its status and the parsed body. */
static long readyz(json_t **body)
{
    char *out = NULL;
    long st = req("GET", "/readyz", NULL, NULL, &out);
    *body = out ? json_loads(out, 0, NULL) : NULL;
    free(out);
    return st;
}

static const char *jstr(const json_t *o, const char *k1, const char *k2)
{
    const json_t *v = json_object_get(o, k1);
    return json_string_value(k2 ? json_object_get(v, k2) : v);
}

static void test_health_and_auth(void **state)
{
    (void)state;
    assert_int_equal(req("GET", "/healthz", NULL, NULL, NULL), 503);
    json_t *ready;
    assert_int_equal(readyz(&ready), 503); /* public, and not ready before the listeners */
    assert_string_equal(jstr(ready, "status", NULL), "DOWN");
    assert_string_equal(jstr(ready, "checks", "server"), "DOWN");
    assert_string_equal(jstr(ready, "checks", "database"), "UP");
    json_decref(ready);
    http_server_set_ready(W.srv, true);
    assert_int_equal(req("GET", "/healthz", NULL, NULL, NULL), 200);
    assert_int_equal(readyz(&ready), 200);
    assert_string_equal(jstr(ready, "status", NULL), "UP");
    assert_string_equal(jstr(ready, "checks", "database"), "UP");
    assert_string_equal(jstr(ready, "backend", NULL), "sqlite");
    json_decref(ready);

    char *out;
    assert_int_equal(req("GET", "/api/tenant/devices?pageSize=10&page=0", NULL, NULL, &out), 401);
    assert_error(json_loads(out, 0, NULL), 401, 10, "Authentication failed");
    free(out);
    assert_int_equal(req("GET", "/api/auth/user", NULL, "garbage.x.y", &out), 401);
    free(out);
    assert_int_equal(req("POST", "/api/auth/login",
                         "{\"username\":\"tenant@thingsboard.org\",\"password\":\"nope\"}", NULL,
                         &out), 401);
    assert_error(json_loads(out, 0, NULL), 401, 10, "Invalid username or password");
    free(out);
    assert_int_equal(req("POST", "/api/auth/login",
                         "{\"username\":\"nobody@x\",\"password\":\"tenant\"}", NULL, &out), 401);
    free(out);

    assert_int_equal(req("POST", "/api/auth/login",
                         "{\"username\":\"tenant@thingsboard.org\",\"password\":\"tenant\"}",
                         NULL, &out), 200);
    json_t *j = json_loads(out, 0, NULL);
    free(out);
    W.token = strdup(json_string_value(json_object_get(j, "token")));
    const char *refresh = json_string_value(json_object_get(j, "refreshToken"));
    assert_string_equal(json_string_value(json_object_get(j, "scope")), "TENANT_ADMIN");
    /* A refresh token is not an access token. */
    assert_int_equal(req("GET", "/api/auth/user", NULL, refresh, NULL), 401);
    char body[4096];
    snprintf(body, sizeof body, "{\"refreshToken\":\"%s\"}", refresh);
    assert_int_equal(req("POST", "/api/auth/token", body, NULL, &out), 200);
    /* The refreshed pair continues the login's session (logout below ends both). */
    json_t *fresh = json_loads(out, 0, NULL);
    free(out);
    char *fresh_refresh = strdup(json_string_value(json_object_get(fresh, "refreshToken")));
    json_decref(fresh);
    assert_int_equal(req("POST", "/api/auth/token", "{\"refreshToken\":\"x\"}", NULL, NULL), 401);
    json_decref(j);

    j = jreq("GET", "/api/auth/user", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(j, "email")), "tenant@thingsboard.org");
    assert_string_equal(json_string_value(json_object_get(j, "authority")), "TENANT_ADMIN");
    json_decref(j);
    /* Authorization: Bearer and ?token= work too. */
    CURL *c = curl_easy_init();
    char url[4096], hdr[4096];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/auth/user", W.port);
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s", W.token);
    struct curl_slist *hl = curl_slist_append(NULL, hdr);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, rest_on_data);
    buf_t b = {NULL, 0};
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    long st = 0;
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
    assert_int_equal(st, 200);
    free(b.p);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    snprintf(url, sizeof url, "/api/auth/user?token=%s", W.token);
    assert_int_equal(req("GET", url, NULL, NULL, NULL), 200);

    /* A correctly signed but expired token: errorCode 11. */
    http_claims_t cl = {.iat = 1000, .exp = 2000};
    strcpy(cl.sub, "tenant@thingsboard.org");
    char *old = http__jwt_sign(W.srv->jwt_key, W.srv->jwt_key_len, "coaphub", W.srv->tenant_id,
                               &cl);
    assert_int_equal(req("GET", "/api/auth/user", NULL, old, &out), 401);
    assert_error(json_loads(out, 0, NULL), 401, 11, "Token has expired");
    free(out);
    free(old);
    /* Logout revokes the session: the access token gets TB's answer to an outdated token,
     * and neither the login's refresh token nor the refreshed one works any more. */
    assert_null(jreq("POST", "/api/auth/logout", NULL, 200));
    assert_int_equal(req("GET", "/api/auth/user", NULL, W.token, &out), 401);
    assert_error(json_loads(out, 0, NULL), 401, 11, "Token has expired");
    free(out);
    assert_int_equal(req("POST", "/api/auth/token", body, NULL, NULL), 401);
    snprintf(body, sizeof body, "{\"refreshToken\":\"%s\"}", fresh_refresh);
    assert_int_equal(req("POST", "/api/auth/token", body, NULL, NULL), 401);
    free(fresh_refresh);
    rest_login(); /* a new session works */
    assert_int_equal(req("GET", "/api/auth/user", NULL, W.token, NULL), 200);
    assert_error(jreq("GET", "/api/nothing", NULL, 404), 404, 32, NULL);
    assert_error(jreq("GET", "/api/auth/login", NULL, 405), 405, 31, NULL);
}

/* W2: every route except login and refresh answers 401 without a token. */
static void test_every_route_needs_auth(void **state)
{
    (void)state;
    for (size_t i = 0; i < http__n_routes; i++) {
        const http_route_t *r = &http__routes[i];
        if (r->flags & HTTP_ROUTE_PUBLIC)
            continue;
        char path[512] = "";
        const char *p = r->pattern;
        while (*p) {
            if (*p == '{') {
                strcat(path, "784f394c-42b6-435a-983c-b7beff2784f9");
                p = strchr(p, '}') + 1;
            } else {
                strncat(path, p, 1);
                p++;
            }
        }
        char *out;
        long st = req(r->method, path, "{}", NULL, &out);
        if (st != 401)
            fprintf(stderr, "%s %s -> %ld\n", r->method, path, st);
        assert_int_equal(st, 401);
        assert_error(json_loads(out, 0, NULL), 401, 10, "Authentication failed");
        free(out);
    }
}

static void test_devices(void **state)
{
    (void)state;
    json_t *d = jreq("POST", "/api/device?accessToken=A1_TEST_TOKEN",
                     "{\"name\":\"Thermostat A\",\"type\":\"default\",\"label\":\"lab\"}", 200);
    json_t *id = json_object_get(d, "id");
    assert_string_equal(json_string_value(json_object_get(id, "entityType")), "DEVICE");
    strcpy(W.dev_uuid, json_string_value(json_object_get(id, "id")));
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(d, "customerId"), "id")), HTTP_UUID_NULL);
    assert_int_equal(json_integer_value(json_object_get(d, "version")), 1);
    assert_true(json_is_object(json_object_get(d, "deviceData")));
    assert_true(json_is_null(json_object_get(d, "firmwareId")));
    json_decref(d);
    W.dev_id = registry_find_token(W.reg, (const uint8_t *)"A1_TEST_TOKEN", 13);
    assert_true(W.dev_id > 0);

    assert_error(jreq("POST", "/api/device", "{\"name\":\"Thermostat A\"}", 400), 400, 31,
                 "Device with such name already exists!");
    assert_error(jreq("POST", "/api/device", "{\"nam", 400), 400, 31, NULL);

    /* Random token device. */
    d = jreq("POST", "/api/device", "{\"name\":\"B\"}", 200);
    char path[256];
    snprintf(path, sizeof path, "/api/device/%s/credentials",
             json_string_value(json_object_get(json_object_get(d, "id"), "id")));
    json_decref(d);
    json_t *c = jreq("GET", path, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(c, "credentialsType")), "ACCESS_TOKEN");
    assert_int_equal(strlen(json_string_value(json_object_get(c, "credentialsId"))), 20);
    assert_true(json_is_null(json_object_get(c, "credentialsValue")));
    json_decref(c);

    snprintf(path, sizeof path, "/api/device/%s", W.dev_uuid);
    d = jreq("GET", path, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(d, "name")), "Thermostat A");
    assert_string_equal(json_string_value(json_object_get(d, "label")), "lab");
    json_decref(d);
    assert_error(jreq("GET", "/api/device/not-a-uuid", NULL, 400), 400, 31, NULL);
    assert_error(jreq("GET", "/api/device/784f394c-42b6-435a-983c-b7beff2784f9", NULL, 404), 404,
                 32, "Requested item wasn't found!");

    /* Update by id. */
    char body[512];
    snprintf(body, sizeof body, "{\"id\":{\"entityType\":\"DEVICE\",\"id\":\"%s\"},"
                                "\"name\":\"Thermostat A\",\"label\":\"new\"}", W.dev_uuid);
    d = jreq("POST", "/api/device", body, 200);
    assert_string_equal(json_string_value(json_object_get(d, "label")), "new");
    assert_int_equal(json_integer_value(json_object_get(d, "version")), 2);
    json_decref(d);
    assert_error(jreq("POST", "/api/device", "{\"id\":{\"id\":\"784f394c-42b6-435a-983c-"
                                             "b7beff2784f9\"},\"name\":\"Z\"}", 404),
                 404, 32, NULL);

    json_t *page = jreq("GET", "/api/tenant/devices?pageSize=1&page=0&sortProperty=name"
                               "&sortOrder=ASC", NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(page, "totalElements")), 2);
    assert_int_equal(json_integer_value(json_object_get(page, "totalPages")), 2);
    assert_true(json_is_true(json_object_get(page, "hasNext")));
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(page, "data"), 0), "name")), "B");
    json_decref(page);
    page = jreq("GET", "/api/tenant/devices?pageSize=10&page=0&textSearch=therm", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(page, "data")), 1);
    json_decref(page);
    assert_error(jreq("GET", "/api/tenant/devices?page=0", NULL, 400), 400, 31, NULL);
    d = jreq("GET", "/api/tenant/device?deviceName=Thermostat%20A", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(d, "name")), "Thermostat A");
    json_decref(d);
    d = jreq("GET", "/api/tenant/devices?deviceName=Thermostat%20A", NULL, 200);
    json_decref(d);
    assert_error(jreq("GET", "/api/tenant/device?deviceName=none", NULL, 404), 404, 32, NULL);
}

static void test_credentials(void **state)
{
    (void)state;
    char path[256], body[8192];
    snprintf(path, sizeof path, "/api/device/%s/credentials", W.dev_uuid);
    json_t *c = jreq("GET", path, NULL, 200);
    char cred_uuid[64];
    strcpy(cred_uuid, json_string_value(json_object_get(json_object_get(c, "id"), "id")));
    assert_string_equal(json_string_value(json_object_get(c, "credentialsId")), "A1_TEST_TOKEN");
    json_decref(c);

    /* Without id: TB's create-conflict message. */
    snprintf(body, sizeof body, "{\"deviceId\":{\"id\":\"%s\"},\"credentialsType\":"
                                "\"ACCESS_TOKEN\",\"credentialsId\":\"x\"}", W.dev_uuid);
    assert_error(jreq("POST", "/api/device/credentials", body, 400), 400, 31,
                 "Credentials for this device are already specified!");

    snprintf(body, sizeof body, "{\"id\":{\"id\":\"%s\"},\"deviceId\":{\"id\":\"%s\"},"
                                "\"credentialsType\":\"ACCESS_TOKEN\","
                                "\"credentialsId\":\"NEWTOK\"}",
             cred_uuid, W.dev_uuid);
    c = jreq("POST", "/api/device/credentials", body, 200);
    assert_string_equal(json_string_value(json_object_get(c, "credentialsId")), "NEWTOK");
    json_decref(c);
    assert_int_equal(registry_find_token(W.reg, (const uint8_t *)"NEWTOK", 6), W.dev_id);
    assert_int_equal(registry_find_token(W.reg, (const uint8_t *)"A1_TEST_TOKEN", 13), 0);

    /* Token of device B is taken. */
    json_t *page = jreq("GET", "/api/tenant/device?deviceName=B", NULL, 200);
    char bpath[256];
    snprintf(bpath, sizeof bpath, "/api/device/%s/credentials",
             json_string_value(json_object_get(json_object_get(page, "id"), "id")));
    json_decref(page);
    json_t *bc = jreq("GET", bpath, NULL, 200);
    snprintf(body, sizeof body, "{\"id\":{\"id\":\"%s\"},\"deviceId\":{\"id\":\"%s\"},"
                                "\"credentialsType\":\"ACCESS_TOKEN\",\"credentialsId\":\"%s\"}",
             cred_uuid, W.dev_uuid, json_string_value(json_object_get(bc, "credentialsId")));
    json_decref(bc);
    assert_error(jreq("POST", "/api/device/credentials", body, 400), 400, 31,
                 "Device credentials are already assigned to another device!");

    /* X.509 from PEM with CRLF. */
    char *pem = testcert_new("dev-a", NULL, NULL);
    json_t *o = json_pack("{s:{s:s}, s:{s:s}, s:s, s:s}", "id", "id", cred_uuid, "deviceId", "id",
                          W.dev_uuid, "credentialsType", "X509_CERTIFICATE", "credentialsValue",
                          pem);
    char *s = json_dumps(o, 0);
    c = jreq("POST", "/api/device/credentials", s, 200);
    const char *hash = json_string_value(json_object_get(c, "credentialsId"));
    assert_int_equal(strlen(hash), 64);
    assert_null(strchr(json_string_value(json_object_get(c, "credentialsValue")), '\n'));
    assert_int_equal(registry_find_cert(W.reg, hash), W.dev_id);
    json_decref(c);
    free(s);
    json_decref(o);
    free(pem);

    /* Bad PEM: 400 with the readable reason. */
    snprintf(body, sizeof body, "{\"id\":{\"id\":\"%s\"},\"deviceId\":{\"id\":\"%s\"},"
                                "\"credentialsType\":\"X509_CERTIFICATE\",\"credentialsValue\":"
                                "\"-----BEGIN CERTIFICATE-----\\nQUJD\\n"
                                "-----END CERTIFICATE-----\"}",
             cred_uuid, W.dev_uuid);
    json_t *e = jreq("POST", "/api/device/credentials", body, 400);
    assert_non_null(strstr(json_string_value(json_object_get(e, "message")),
                           "not a valid X.509 certificate"));
    assert_error(e, 400, 31, NULL);
}

static void test_device_with_credentials(void **state)
{
    (void)state;
    char *pem = testcert_new("dev-c", NULL, NULL);
    json_t *o = json_pack("{s:{s:s}, s:{s:s, s:s}}", "device", "name", "C", "credentials",
                          "credentialsType", "X509_CERTIFICATE", "credentialsValue", pem);
    char *s = json_dumps(o, 0);
    json_t *d = jreq("POST", "/api/device-with-credentials", s, 200);
    char path[256];
    snprintf(path, sizeof path, "/api/device/%s/credentials",
             json_string_value(json_object_get(json_object_get(d, "id"), "id")));
    json_decref(d);
    json_t *c = jreq("GET", path, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(c, "credentialsType")),
                        "X509_CERTIFICATE");
    assert_true(registry_find_cert(W.reg, json_string_value(json_object_get(c, "credentialsId")))
                > 0);
    json_decref(c);
    /* The same certificate again: refused, and no half-created device is left behind. */
    json_object_set_new(json_object_get(o, "device"), "name", json_string("D"));
    free(s);
    s = json_dumps(o, 0);
    assert_error(jreq("POST", "/api/device-with-credentials", s, 400), 400, 31,
                 "Device credentials are already assigned to another device!");
    assert_error(jreq("GET", "/api/tenant/device?deviceName=D", NULL, 404), 404, 32, NULL);
    free(s);
    json_decref(o);
    free(pem);
}

/* What hub_change_publish told a listener, in order. */
static struct {
    hub_change_t what[16];
    int64_t id[16];
    int n;
} changes;

static void on_change(void *ctx, hub_change_t what, int64_t id)
{
    assert_ptr_equal(ctx, &changes);
    if (changes.n < 16) {
        changes.what[changes.n] = what;
        changes.id[changes.n++] = id;
    }
}

/* Every save and delete of a profile or device is announced to hub_change_listen's listeners
 * with the row's id, before the REST answer (the caches of provisioning keys, CA certificates,
 * power-saving settings and OTA assignments rely on that). */
static void test_change_hook(void **state)
{
    (void)state;
    static bool listening;
    if (!listening) {
        hub_change_listen(W.hub, on_change, &changes);
        listening = true;
    }
    changes.n = 0;
    json_t *p = jreq("POST", "/api/deviceProfile", "{\"name\":\"hooked\"}", 200);
    const char *puuid = json_string_value(json_object_get(json_object_get(p, "id"), "id"));
    store_profile_t sp = {0};
    assert_int_equal(store_profile_get_by_uuid(W.store, puuid, &sp), 0);
    assert_int_equal(changes.n, 1);
    assert_int_equal(changes.what[0], HUB_CHANGE_PROFILE_SAVED);
    assert_int_equal(changes.id[0], sp.id);

    char body[256], path[128];
    snprintf(body, sizeof body,
             "{\"name\":\"hooked-dev\",\"deviceProfileId\":{\"entityType\":\"DEVICE_PROFILE\","
             "\"id\":\"%s\"}}",
             puuid);
    json_t *d = jreq("POST", "/api/device", body, 200);
    const char *duuid = json_string_value(json_object_get(json_object_get(d, "id"), "id"));
    store_device_t sd = {0};
    assert_int_equal(store_device_get_by_uuid(W.store, duuid, &sd), 0);
    assert_int_equal(sd.profile_id, sp.id);
    assert_int_equal(changes.n, 2);
    assert_int_equal(changes.what[1], HUB_CHANGE_DEVICE);
    assert_int_equal(changes.id[1], sd.id);

    /* A type naming no profile makes one: both are announced. */
    json_t *d2 = jreq("POST", "/api/device", "{\"name\":\"hooked-2\",\"type\":\"made\"}", 200);
    assert_int_equal(changes.n, 4);
    assert_int_equal(changes.what[2], HUB_CHANGE_PROFILE_SAVED);
    assert_int_equal(changes.what[3], HUB_CHANGE_DEVICE);
    snprintf(path, sizeof path, "/api/device/%s",
             json_string_value(json_object_get(json_object_get(d2, "id"), "id")));
    json_decref(jreq("DELETE", path, NULL, 200));
    assert_int_equal(changes.what[4], HUB_CHANGE_DEVICE_DELETED);
    assert_int_equal(changes.id[4], changes.id[3]);

    /* A refused delete announces nothing; a done one does. */
    snprintf(path, sizeof path, "/api/deviceProfile/%s", puuid);
    json_decref(jreq("DELETE", path, NULL, 400));
    assert_int_equal(changes.n, 5);
    snprintf(path, sizeof path, "/api/device/%s", duuid);
    json_decref(jreq("DELETE", path, NULL, 200));
    snprintf(path, sizeof path, "/api/deviceProfile/%s", puuid);
    json_decref(jreq("DELETE", path, NULL, 200));
    assert_int_equal(changes.n, 7);
    assert_int_equal(changes.what[6], HUB_CHANGE_PROFILE_DELETED);
    assert_int_equal(changes.id[6], sp.id);
    store_device_fini(&sd);
    store_profile_fini(&sp);
    json_decref(d2);
    json_decref(d);
    json_decref(p);
}

/* firmwareId/softwareId on profiles and devices: ThingsBoard's checks (exists, right type, has
 * data, same profile), then stored and answered. The package rows are made in the store
 * directly: uploading is the OTA REST's business. */
static void test_ota_assignment(void **state)
{
    (void)state;
    json_t *p = jreq("POST", "/api/deviceProfile", "{\"name\":\"ota-prof\"}", 200);
    const char *puuid = json_string_value(json_object_get(json_object_get(p, "id"), "id"));
    store_profile_t sp = {0};
    assert_int_equal(store_profile_get_by_uuid(W.store, puuid, &sp), 0);
    store_ota_t fw = {.profile_id = sp.id,
                      .type = (char *)"FIRMWARE",
                      .title = (char *)"fw",
                      .version = (char *)"1.0"};
    assert_int_equal(store_ota_create(W.store, &fw), 0);
    char body[512], msg_unknown[] = "00000000-0000-4000-8000-000000000000";
#define PROFILE_WITH_OTA                                                                           \
    "{\"id\":{\"id\":\"%s\"},\"name\":\"ota-prof\",\"%s\":{\"entityType\":\"OTA_PACKAGE\","        \
    "\"id\":\"%s\"}}"
    snprintf(body, sizeof body, PROFILE_WITH_OTA, puuid, "firmwareId", fw.uuid);
    assert_error(jreq("POST", "/api/deviceProfile", body, 400), 400, 31,
                 "Can't assign firmware with empty data!");
    fw.has_data = true;
    assert_int_equal(store_ota_update(W.store, &fw), 0);
    json_t *ok = jreq("POST", "/api/deviceProfile", body, 200);
    assert_string_equal(json_string_value(json_object_get(json_object_get(ok, "firmwareId"), "id")),
                        fw.uuid);
    json_decref(ok);
    snprintf(body, sizeof body, PROFILE_WITH_OTA, puuid, "softwareId", fw.uuid);
    assert_error(jreq("POST", "/api/deviceProfile", body, 400), 400, 31,
                 "Can't assign software with type: FIRMWARE");
    snprintf(body, sizeof body, PROFILE_WITH_OTA, puuid, "firmwareId", msg_unknown);
    assert_error(jreq("POST", "/api/deviceProfile", body, 400), 400, 31,
                 "Can't assign non-existent firmware!");
    /* A device of another profile may not take this profile's package; one of it may. */
    snprintf(body, sizeof body,
             "{\"name\":\"ota-dev\",\"firmwareId\":{\"entityType\":\"OTA_PACKAGE\",\"id\":"
             "\"%s\"}}",
             fw.uuid);
    assert_error(jreq("POST", "/api/device", body, 400), 400, 31,
                 "Can't assign firmware with different deviceProfile!");
    snprintf(body, sizeof body,
             "{\"name\":\"ota-dev\",\"type\":\"ota-prof\",\"firmwareId\":{\"entityType\":"
             "\"OTA_PACKAGE\",\"id\":\"%s\"}}",
             fw.uuid);
    json_t *d = jreq("POST", "/api/device", body, 200);
    assert_string_equal(json_string_value(json_object_get(json_object_get(d, "firmwareId"), "id")),
                        fw.uuid);
    assert_true(json_is_null(json_object_get(d, "softwareId")));
    store_device_t sd = {0};
    assert_int_equal(
        store_device_get_by_uuid(
            W.store, json_string_value(json_object_get(json_object_get(d, "id"), "id")), &sd),
        0);
    assert_string_equal(sd.firmware_id, fw.uuid);
    store_device_fini(&sd);
    json_decref(d);
    store_profile_fini(&sp);
    json_decref(p);
}

/* Through the real server: a name that failed max_fails times from this address gets 429
 * before any password check (the rules themselves: test_http_login_guard). */
static void test_login_lockout(void **state)
{
    (void)state;
    const char *bad = "{\"username\":\"locked@x\",\"password\":\"x\"}";
    assert_int_equal(req("POST", "/api/auth/login", bad, NULL, NULL), 401);
    /* Skip the other bcrypt-slow failures: count them as the handler would for 127.0.0.1. */
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    uint8_t addr[16];
    http__login_addr_key((const struct sockaddr *)&sa, addr);
    for (int i = 0; i < 3; i++)
        http__login_result(W.srv->login_guard, "locked@x", addr, false, clock_mono_ms());
    assert_int_equal(req("POST", "/api/auth/login", bad, NULL, NULL), 401);
    char *out;
    assert_int_equal(req("POST", "/api/auth/login", bad, NULL, &out), 429);
    assert_error(json_loads(out, 0, NULL), 429, 33, NULL);
    free(out);
    /* Another address (a handler call without a connection) still gets its password checked. */
    http_req_t rq = {.method = "POST", .path = "/api/auth/login", .srv = W.srv, .body = bad};
    rq.body_len = strlen(bad);
    http_resp_t rs = {0};
    http__h_login(&rq, &rs);
    assert_int_equal(rs.status, 401);
    free(rs.body);
    http_login_stats_t st;
    http__login_stats(W.srv->login_guard, &st);
    assert_true(st.throttled >= 1);
    assert_true(st.lockouts >= 2); /* (user, address) and user */
}

/* The /readyz answer while the database is down (SQLite never is: the body is built apart
 * from the store so the PostgreSQL case is checked here too). */
static void test_readyz_body(void **state)
{
    (void)state;
    int st = 0;
    json_t *j = http__readyz_body(true, ERR_UNAVAILABLE, NULL, "postgresql", &st);
    assert_int_equal(st, 503);
    assert_string_equal(jstr(j, "status", NULL), "DOWN");
    assert_string_equal(jstr(j, "checks", "server"), "UP");
    assert_string_equal(jstr(j, "checks", "database"), "DOWN");
    assert_string_equal(jstr(j, "backend", NULL), "postgresql");
    assert_string_equal(jstr(j, "reason", NULL), "database unavailable");
    json_decref(j);
    /* A storage fault on SQLite (store/health.c) names itself. */
    j = http__readyz_body(true, ERR_UNAVAILABLE, "disk full", "sqlite", &st);
    assert_int_equal(st, 503);
    assert_string_equal(jstr(j, "checks", "database"), "DOWN");
    assert_string_equal(jstr(j, "reason", NULL), "disk full");
    json_decref(j);
    j = http__readyz_body(true, 0, NULL, "postgresql", &st);
    assert_int_equal(st, 200);
    assert_string_equal(jstr(j, "status", NULL), "UP");
    assert_null(json_object_get(j, "reason"));
    json_decref(j);
    j = http__readyz_body(false, 0, NULL, "sqlite", &st); /* starting or stopping */
    assert_int_equal(st, 503);
    assert_string_equal(jstr(j, "checks", "server"), "DOWN");
    json_decref(j);
}

/* The one mapping from store errors to the REST error table. */
static void test_store_errors(void **state)
{
    (void)state;
    assert_int_equal(http__err_from_store(-ENOENT), HTTP_E_NOT_FOUND);
    assert_int_equal(http__err_from_store(-EINVAL), HTTP_E_BAD_PARAMS);
    assert_int_equal(http__err_from_store(ERR_CONFLICT), HTTP_E_BAD_PARAMS);
    /* Storage faults clear by themselves (store/health.c probes): 503 with Retry-After. */
    static const int retry[] = {ERR_UNAVAILABLE, -ENOSPC, -EROFS,     -EIO,
                                -EBUSY,          -EAGAIN, ERR_TIMEOUT};
    for (size_t i = 0; i < sizeof retry / sizeof retry[0]; i++)
        assert_int_equal(http__err_from_store(retry[i]), HTTP_E_UNAVAILABLE);
    /* A read that met corruption is an error, never a partial 200. */
    assert_int_equal(http__err_from_store(ERR_CORRUPT), HTTP_E_GENERAL);
    assert_int_equal(http__err_from_store(ERR_STORE), HTTP_E_GENERAL);
    http_resp_t r = {0};
    http__resp_store_error(&r, ERR_UNAVAILABLE);
    assert_int_equal(r.status, 503);
    assert_error(json_loads(r.body, 0, NULL), 503, 2, "Service unavailable");
    free(r.body);
}

/* A port already in use, or a bad address: NULL and a readable reason. */
static void test_start_errors(void **state)
{
    (void)state;
    http_cfg_t cfg;
    http_cfg_default(&cfg);
    cfg.bind_addr = "127.0.0.1";
    cfg.port = W.port;
    char err[ERR_LEN];
    assert_null(http_server_start(&cfg, W.store, W.reg, W.hub, err));
    assert_non_null(strstr(err, "cannot listen on 127.0.0.1"));
    cfg.bind_addr = "not-an-address";
    assert_null(http_server_start(&cfg, W.store, W.reg, W.hub, err));
    assert_non_null(strstr(err, "bad bind address"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_and_auth),
        cmocka_unit_test(test_every_route_needs_auth),
        cmocka_unit_test(test_devices),
        cmocka_unit_test(test_credentials),
        cmocka_unit_test(test_device_with_credentials),
        cmocka_unit_test(test_change_hook),
        cmocka_unit_test(test_ota_assignment),
        cmocka_unit_test(test_login_lockout),
        cmocka_unit_test(test_start_errors),
        cmocka_unit_test(test_readyz_body),
        cmocka_unit_test(test_store_errors),
    };
    return cmocka_run_group_tests(tests, rest_setup, rest_teardown);
}
