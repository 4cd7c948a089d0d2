/* test_route.c — every row of spec §1.2 (feature, token, request id) and the §2 quirks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "api/route.h"

#include <stdio.h>
#include <string.h>

/* Splits "a/b/c" into slices pointing into a static copy. */
static size_t split(const char *path, coap_slice_t *seg)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    size_t n = 0;
    if (!*buf)
        return 0;
    char *s = buf;
    for (;;) {
        char *slash = strchr(s, '/');
        seg[n].p = (const uint8_t *)s;
        seg[n].len = slash ? (size_t)(slash - s) : strlen(s);
        n++;
        if (!slash)
            break;
        s = slash + 1;
    }
    return n;
}

static api_route_t route(const char *path)
{
    coap_slice_t seg[COAP_MAX_PATH_SEGS];
    api_route_t r;
    api_route_parse(seg, split(path, seg), &r);
    return r;
}

static bool token_is(const api_route_t *r, const char *tok)
{
    return r->has_token && r->token.len == strlen(tok) && memcmp(r->token.p, tok, r->token.len) == 0;
}

static api_action_t act(const char *path, uint8_t method, bool obs, uint32_t val, uint8_t *code)
{
    api_route_t r = route(path);
    return api_route_action(&r, method, obs, val, code);
}

static void test_token_forms(void **state)
{
    (void)state;
    api_route_t r = route("api/v1/TOKEN/telemetry");
    assert_int_equal(r.resource, API_RES_DEVICE);
    assert_int_equal(r.feature, API_FEAT_TELEMETRY);
    assert_true(token_is(&r, "TOKEN"));
    assert_false(r.has_request_id);

    r = route("api/v1/TOKEN/ATTRIBUTES"); /* case-insensitive feature */
    assert_int_equal(r.feature, API_FEAT_ATTRIBUTES);
    r = route("api/v1/TOKEN/rpc/42");
    assert_int_equal(r.feature, API_FEAT_RPC);
    assert_true(token_is(&r, "TOKEN"));
    assert_true(r.has_request_id);
    assert_int_equal(r.request_id, 42);
    r = route("api/v1/TOKEN/rpc/abc");
    assert_false(r.has_request_id);
    r = route("api/v1/TOKEN/rpc/99999999999"); /* beyond Java int */
    assert_false(r.has_request_id);
    r = route("api/v1/TOKEN/claim/extra/more");
    assert_int_equal(r.feature, API_FEAT_CLAIM);
    /* All-digit token with four segments: the digit test is on the last segment only. */
    r = route("api/v1/12345/rpc");
    assert_int_equal(r.feature, API_FEAT_RPC);
    assert_true(token_is(&r, "12345"));
    assert_false(r.has_request_id);
}

static void test_x509_forms(void **state)
{
    (void)state;
    api_route_t r = route("api/v1/telemetry");
    assert_int_equal(r.feature, API_FEAT_TELEMETRY);
    assert_false(r.has_token);
    assert_false(r.has_request_id);
    r = route("api/v1/Rpc/7"); /* 4 segments, numeric last: X.509 RPC reply */
    assert_int_equal(r.feature, API_FEAT_RPC);
    assert_true(r.has_request_id);
    assert_int_equal(r.request_id, 7);
    assert_true(token_is(&r, "Rpc")); /* token path would look up "Rpc" and fail: 4.01 */
    r = route("api/v1/provision");
    assert_int_equal(r.feature, API_FEAT_PROVISION);
    r = route("api/v1/TOKEN/provision");
    assert_int_equal(r.feature, API_FEAT_PROVISION);
    r = route("api/v1/unknown");
    assert_int_equal(r.resource, API_RES_DEVICE);
    assert_int_equal(r.feature, API_FEAT_NONE);
    r = route("api/v1");
    assert_int_equal(r.feature, API_FEAT_NONE);
    /* The path ThingsBoard documents (its code answers 4.00): ours serves it. */
    r = route("api/v1/TOKEN/firmware");
    assert_int_equal(r.feature, API_FEAT_FIRMWARE);
    assert_true(token_is(&r, "TOKEN"));
    r = route("api/v1/software");
    assert_int_equal(r.feature, API_FEAT_SOFTWARE);
    assert_false(r.has_token);
}

static void test_resources(void **state)
{
    (void)state;
    uint8_t code;
    assert_int_equal(act("foo", COAP_GET, false, 0, &code), API_ACT_ERROR);
    assert_int_equal(code, COAP_NOT_FOUND);
    assert_int_equal(act("", COAP_GET, false, 0, &code), API_ACT_ERROR);
    assert_int_equal(code, COAP_NOT_FOUND);
    assert_int_equal(act("api", COAP_GET, false, 0, &code), API_ACT_ERROR);
    assert_int_equal(code, COAP_METHOD_NOT_ALLOWED);
    assert_int_equal(act("api/v2/T/telemetry", COAP_POST, false, 0, &code), API_ACT_ERROR);
    assert_int_equal(code, COAP_NOT_FOUND);
    assert_int_equal(act("api/v1", COAP_GET, false, 0, &code), API_ACT_ERROR);
    assert_int_equal(code, COAP_BAD_REQUEST);
    assert_int_equal(act("api/v1/T/nope", COAP_POST, false, 0, &code), API_ACT_ERROR);
    assert_int_equal(code, COAP_BAD_REQUEST);
    /* OTA */
    api_route_t r = route("fw/TOKEN");
    assert_int_equal(r.resource, API_RES_FW);
    assert_true(token_is(&r, "TOKEN"));
    assert_int_equal(api_route_action(&r, COAP_GET, false, 0, &code), API_ACT_OTA);
    assert_int_equal(api_route_action(&r, COAP_POST, false, 0, &code), API_ACT_ERROR);
    assert_int_equal(code, COAP_METHOD_NOT_ALLOWED);
    assert_int_equal(act("sw/TOKEN", COAP_GET, false, 0, &code), API_ACT_OTA);
    /* /fw without a token: the X.509 form (identity from the DTLS session). */
    r = route("fw");
    assert_int_equal(api_route_action(&r, COAP_GET, false, 0, &code), API_ACT_OTA);
    assert_false(r.has_token);
    assert_false(api_route_is_software(&r));
    r = route("sw");
    assert_true(api_route_is_software(&r));
    assert_int_equal(act("fw/a/b", COAP_GET, false, 0, &code), API_ACT_ERROR);
    assert_int_equal(code, COAP_UNAUTHORIZED);
    r = route("api/v1/T/software");
    assert_int_equal(api_route_action(&r, COAP_GET, false, 0, &code), API_ACT_OTA);
    assert_true(api_route_is_software(&r));
    assert_int_equal(act("api/v1/firmware", COAP_POST, false, 0, &code), API_ACT_ERROR);
    assert_int_equal(code, COAP_METHOD_NOT_ALLOWED);
}

static void test_methods(void **state)
{
    (void)state;
    uint8_t code;
    const uint8_t others[] = {COAP_PUT, COAP_DELETE, COAP_FETCH, COAP_PATCH, COAP_IPATCH};
    for (size_t i = 0; i < sizeof others; i++) {
        assert_int_equal(act("api/v1/T/telemetry", others[i], false, 0, &code), API_ACT_ERROR);
        assert_int_equal(code, COAP_METHOD_NOT_ALLOWED);
    }
    assert_int_equal(act("api/v1/T/telemetry", COAP_POST, false, 0, &code), API_ACT_TELEMETRY);
    assert_int_equal(act("api/v1/T/attributes", COAP_POST, false, 0, &code), API_ACT_ATTR_POST);
    assert_int_equal(act("api/v1/T/claim", COAP_POST, false, 0, &code), API_ACT_CLAIM);
    assert_int_equal(act("api/v1/T/rpc", COAP_POST, false, 0, &code), API_ACT_CLIENT_RPC);
    assert_int_equal(act("api/v1/T/rpc/3", COAP_POST, false, 0, &code), API_ACT_RPC_REPLY);
    assert_int_equal(act("api/v1/rpc/3", COAP_POST, false, 0, &code), API_ACT_RPC_REPLY);
    assert_int_equal(act("api/v1/provision", COAP_POST, false, 0, &code), API_ACT_PROVISION);
    assert_int_equal(act("api/v1/T/provision", COAP_POST, false, 0, &code), API_ACT_PROVISION);
}

static void test_get_and_observe_quirks(void **state)
{
    (void)state;
    uint8_t code;
    assert_int_equal(act("api/v1/T/attributes", COAP_GET, false, 0, &code), API_ACT_ATTR_GET);
    assert_int_equal(act("api/v1/T/attributes", COAP_GET, true, 0, &code), API_ACT_ATTR_SUB);
    assert_int_equal(act("api/v1/T/attributes", COAP_GET, true, 7, &code), API_ACT_ATTR_SUB);
    assert_int_equal(act("api/v1/T/attributes", COAP_GET, true, 1, &code), API_ACT_ATTR_UNSUB);
    /* Observe on claim (anything but rpc/telemetry) subscribes to attributes. */
    assert_int_equal(act("api/v1/T/claim", COAP_GET, true, 0, &code), API_ACT_ATTR_SUB);
    assert_int_equal(act("api/v1/T/claim", COAP_GET, false, 0, &code), API_ACT_ERROR);
    assert_int_equal(code, COAP_BAD_REQUEST);
    assert_int_equal(act("api/v1/T/rpc", COAP_GET, true, 0, &code), API_ACT_RPC_SUB);
    assert_int_equal(act("api/v1/rpc", COAP_GET, true, 0, &code), API_ACT_RPC_SUB);
    assert_int_equal(act("api/v1/T/rpc", COAP_GET, true, 1, &code), API_ACT_RPC_UNSUB);
    assert_int_equal(act("api/v1/T/rpc", COAP_GET, false, 0, &code), API_ACT_ERROR);
    assert_int_equal(code, COAP_BAD_REQUEST);
    assert_int_equal(act("api/v1/T/telemetry", COAP_GET, false, 0, &code), API_ACT_ERROR);
    assert_int_equal(code, COAP_BAD_REQUEST);
    assert_int_equal(act("api/v1/T/telemetry", COAP_GET, true, 0, &code), API_ACT_ERROR);
    assert_int_equal(code, COAP_BAD_REQUEST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_forms),  cmocka_unit_test(test_x509_forms),
        cmocka_unit_test(test_resources),    cmocka_unit_test(test_methods),
        cmocka_unit_test(test_get_and_observe_quirks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
