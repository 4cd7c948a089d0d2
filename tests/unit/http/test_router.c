/* test_router.c — path pattern matching, the route table, and the error-code table. */
#include "http/http_int.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void free_params(char **p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(p[i]);
}

static void test_match(void **state)
{
    (void)state;
    char *p[HTTP_MAX_PARAMS];
    size_t n;
    assert_true(http__route_match("/api/device", "/api/device", p, &n));
    assert_int_equal(n, 0);
    assert_true(http__route_match("/api/device", "/api/device/", p, &n));
    assert_false(http__route_match("/api/device", "/api/devices", p, &n));
    assert_false(http__route_match("/api/device", "/api/dev", p, &n));
    assert_false(http__route_match("/api/device", "/api/device/x", p, &n));
    assert_false(http__route_match("/api/device", "api/device", p, &n));

    assert_true(
        http__route_match("/api/device/{id}/credentials", "/api/device/abc/credentials", p, &n));
    assert_int_equal(n, 1);
    assert_string_equal(p[0], "abc");
    free_params(p, n);
    /* Empty segment never matches a placeholder; params are freed on failure. */
    assert_false(http__route_match("/api/device/{id}", "/api/device/", p, &n));
    assert_int_equal(n, 0);
    assert_false(http__route_match("/a/{x}/b", "/a/1/c", p, &n));
    assert_int_equal(n, 0);
    assert_false(http__route_match("/a/{x}/{y}", "/a/1", p, &n));
    assert_false(http__route_match("/a/{x}/{y}", "/a/1//", p, &n));

    assert_true(http__route_match("/p/{type}/{id}/values/attributes/{scope}",
                                  "/p/DEVICE/u-1/values/attributes/SHARED_SCOPE", p, &n));
    assert_int_equal(n, 3);
    assert_string_equal(p[0], "DEVICE");
    assert_string_equal(p[1], "u-1");
    assert_string_equal(p[2], "SHARED_SCOPE");
    free_params(p, n);
}

static void test_find(void **state)
{
    (void)state;
    char *p[HTTP_MAX_PARAMS];
    size_t n;
    bool known;
    const http_route_t *r = http__route_find(http__routes, http__n_routes, "POST",
                                             "/api/auth/login", p, &n, &known);
    assert_non_null(r);
    assert_ptr_equal(r->fn, http__h_login);
    assert_true(r->flags & HTTP_ROUTE_PUBLIC);

    r = http__route_find(http__routes, http__n_routes, "GET", "/api/auth/login", p, &n, &known);
    assert_null(r);
    assert_true(known); /* 405, not 404 */

    r = http__route_find(http__routes, http__n_routes, "GET", "/api/nothing", p, &n, &known);
    assert_null(r);
    assert_false(known);

    /* Literal "credentials" wins over {id}. */
    r = http__route_find(http__routes, http__n_routes, "POST", "/api/device/credentials", p, &n,
                         &known);
    assert_ptr_equal(r->fn, http__h_cred_save);
    r = http__route_find(http__routes, http__n_routes, "GET", "/api/device/xyz/credentials", p, &n,
                         &known);
    assert_ptr_equal(r->fn, http__h_cred_get);
    assert_string_equal(p[0], "xyz");
    free_params(p, n);

    r = http__route_find(http__routes, http__n_routes, "DELETE",
                         "/api/plugins/telemetry/DEVICE/u/timeseries/delete", p, &n, &known);
    assert_ptr_equal(r->fn, http__h_ts_delete);
    free_params(p, n);
    r = http__route_find(http__routes, http__n_routes, "DELETE",
                         "/api/plugins/telemetry/DEVICE/u/SHARED_SCOPE", p, &n, &known);
    assert_ptr_equal(r->fn, http__h_attr_delete);
    assert_int_equal(n, 3);
    free_params(p, n);
    r = http__route_find(http__routes, http__n_routes, "POST",
                         "/api/plugins/telemetry/u/SERVER_SCOPE", p, &n, &known);
    assert_ptr_equal(r->fn, http__h_attr_save);
    assert_int_equal(n, 2);
    free_params(p, n);
    r = http__route_find(http__routes, http__n_routes, "POST", "/api/rpc/twoway/u", p, &n, &known);
    assert_ptr_equal(r->fn, http__h_rpc_v2);
    free_params(p, n);
}

/* Only login, token refresh and the /api/noauth/ routes (connectivity hints, the server's
 * public certificate) and /metrics are reachable without a JWT, and ThingsBoard's HTTP device
 * API under /api/v1/, where the access token in the path is the credential. */
static void test_public_routes(void **state)
{
    (void)state;
    size_t n_public = 0, n_device = 0;
    for (size_t i = 0; i < http__n_routes; i++) {
        if (strncmp(http__routes[i].pattern, "/api/v1/", 8) == 0) {
            assert_true(http__routes[i].flags & HTTP_ROUTE_PUBLIC);
            n_device++;
        } else if (http__routes[i].flags & HTTP_ROUTE_PUBLIC) {
            n_public++;
            assert_true(strncmp(http__routes[i].pattern, "/api/auth/", 10) == 0 ||
                        strncmp(http__routes[i].pattern, "/api/noauth/", 12) == 0 ||
                        strcmp(http__routes[i].pattern, "/metrics") == 0);
        }
        assert_non_null(http__routes[i].fn);
        assert_int_equal(http__routes[i].pattern[0], '/');
    }
    assert_int_equal(n_public, 5);
    assert_int_equal(n_device, 11); /* device_api.c's 9 and device_poll.c's 2 long polls */
}

/* The device API's paths: {token} first, provision without one, rpc/{id} apart from rpc. */
static void test_device_routes(void **state)
{
    (void)state;
    char *p[HTTP_MAX_PARAMS];
    size_t n;
    bool known;
    const http_route_t *r = http__route_find(http__routes, http__n_routes, "POST",
                                             "/api/v1/tok/telemetry", p, &n, &known);
    assert_ptr_equal(r->fn, http__h_dev_telemetry);
    assert_string_equal(p[0], "tok");
    free_params(p, n);
    r = http__route_find(http__routes, http__n_routes, "POST", "/api/v1/provision", p, &n, &known);
    assert_ptr_equal(r->fn, http__h_dev_provision);
    free_params(p, n);
    r = http__route_find(http__routes, http__n_routes, "POST", "/api/v1/tok/rpc/17", p, &n, &known);
    assert_ptr_equal(r->fn, http__h_dev_rpc_reply);
    assert_string_equal(p[1], "17");
    free_params(p, n);
    r = http__route_find(http__routes, http__n_routes, "POST", "/api/v1/tok/rpc", p, &n, &known);
    assert_ptr_equal(r->fn, http__h_dev_client_rpc);
    free_params(p, n);
    r = http__route_find(http__routes, http__n_routes, "GET", "/api/v1/tok/attributes", p, &n,
                         &known);
    assert_ptr_equal(r->fn, http__h_dev_attributes_get);
    free_params(p, n);
    r = http__route_find(http__routes, http__n_routes, "GET", "/api/v1/tok/telemetry", p, &n,
                         &known);
    assert_null(r);
    assert_true(known); /* 405, not 404 */
}

/* The long polls of the HTTP device API: token in the path, GET only. */
static void test_device_api_long_polls(void **state)
{
    (void)state;
    char *p[HTTP_MAX_PARAMS];
    size_t n;
    bool known;
    const http_route_t *r = http__route_find(http__routes, http__n_routes, "GET",
                                             "/api/v1/tok-1/attributes/updates", p, &n, &known);
    assert_non_null(r);
    assert_ptr_equal(r->fn, http__h_dev_attr_updates);
    assert_int_equal(n, 1);
    assert_string_equal(p[0], "tok-1");
    free_params(p, n);
    r = http__route_find(http__routes, http__n_routes, "GET", "/api/v1/tok-1/rpc", p, &n, &known);
    assert_non_null(r);
    assert_ptr_equal(r->fn, http__h_dev_rpc_poll);
    free_params(p, n);
    r = http__route_find(http__routes, http__n_routes, "DELETE", "/api/v1/tok-1/attributes/updates",
                         p, &n, &known);
    assert_null(r);
    assert_true(known); /* 405, not 404 */
}

static void test_codes(void **state)
{
    (void)state;
    for (int e = 0; e < HTTP_E_COUNT; e++) {
        const http_err_info_t *i = http__err_info((http_err_t)e);
        assert_true(i->status >= 400 && i->status < 600);
        assert_non_null(i->message);
    }
    assert_int_equal(http__err_info(HTTP_E_AUTH)->error_code, 10);
    assert_int_equal(http__err_info(HTTP_E_JWT_EXPIRED)->error_code, 11);
    assert_int_equal(http__err_info(HTTP_E_NOT_FOUND)->status, 404);
    assert_int_equal(http__err_info(HTTP_E_NOT_FOUND)->error_code, 32);
    assert_string_equal(http__err_info(HTTP_E_NOT_FOUND)->message, "Requested item wasn't found!");
    assert_int_equal(http__err_info(HTTP_E_BAD_PARAMS)->error_code, 31);
    assert_int_equal(http__err_info(HTTP_E_RPC_NO_REPLY_V1)->status, 408);
    assert_int_equal(http__err_info(HTTP_E_RPC_NOT_DELIVERED_V1)->status, 409);
    assert_int_equal(http__err_info(HTTP_E_RPC_TIMEOUT_V2)->status, 504);
    assert_int_equal(http__err_info(HTTP_E_TOO_LARGE)->status, 413);

    http_resp_t r = {0};
    http__resp_error(&r, HTTP_E_JWT_EXPIRED, NULL);
    assert_int_equal(r.status, 401);
    json_t *j = json_loads(r.body, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 401);
    assert_int_equal(json_integer_value(json_object_get(j, "errorCode")), 11);
    assert_string_equal(json_string_value(json_object_get(j, "message")), "Token has expired");
    assert_true(json_integer_value(json_object_get(j, "timestamp")) > 1600000000000LL);
    assert_int_equal(json_object_size(j), 4);
    json_decref(j);
    /* A message that is not UTF-8 is replaced, never echoed. */
    http__resp_error(&r, HTTP_E_BAD_PARAMS, "bad \xff");
    j = json_loads(r.body, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "message")), "Invalid request");
    json_decref(j);
    free(r.body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_public_routes),
        cmocka_unit_test(test_device_routes),
        cmocka_unit_test(test_device_api_long_polls),
        cmocka_unit_test(test_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
