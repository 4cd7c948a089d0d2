/* route.c — spec/thingsboard-coap.md §1.2 path rules and §2 method quirks, as pure functions.
 *
 * The rules look odd on purpose: they are ThingsBoard's getFeatureType()/getRequestId() and
 * clients depend on them. Segment count alone cannot tell /api/v1/rpc/7 (X.509 RPC reply) from
 * /api/v1/$TOKEN/rpc; only the all-digits test on the LAST of four segments does, so an
 * all-digit token with four segments still parses as a token. The token slice is reported
 * whenever there are more than three segments; whether it is used (a certificate identity
 * wins) is the caller's decision.
 */
#include "api/route.h"

#include <strings.h>
#include <string.h>

static bool seg_is(const coap_slice_t *s, const char *lit)
{
    size_t n = strlen(lit);
    return s->len == n && memcmp(s->p, lit, n) == 0;
}

static bool seg_is_nocase(const coap_slice_t *s, const char *lit)
{
    size_t n = strlen(lit);
    return s->len == n && strncasecmp((const char *)s->p, lit, n) == 0;
}

/* StringUtils.isNumeric: non-empty, every character a digit. */
static bool all_digits(const coap_slice_t *s)
{
    if (s->len == 0)
        return false;
    for (size_t i = 0; i < s->len; i++)
        if (s->p[i] < '0' || s->p[i] > '9')
            return false;
    return true;
}

/* Integer.valueOf: optional sign, 1+ digits, 32-bit range. */
static bool java_int(const coap_slice_t *s, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (s->len && (s->p[0] == '-' || s->p[0] == '+')) {
        neg = s->p[0] == '-';
        i = 1;
    }
    if (i >= s->len)
        return false;
    int64_t v = 0;
    for (; i < s->len; i++) {
        if (s->p[i] < '0' || s->p[i] > '9')
            return false;
        v = v * 10 + (s->p[i] - '0');
        if (v > (int64_t)INT32_MAX + 1)
            return false;
    }
    if (neg)
        v = -v;
    if (v > INT32_MAX || v < INT32_MIN)
        return false;
    *out = v;
    return true;
}

static api_feature_t feature_of(const coap_slice_t *s)
{
    static const struct {
        const char *name;
        api_feature_t f;
    } names[] = {
        {"attributes", API_FEAT_ATTRIBUTES},
        {"telemetry", API_FEAT_TELEMETRY},
        {"rpc", API_FEAT_RPC},
        {"claim", API_FEAT_CLAIM},
        {"provision", API_FEAT_PROVISION},
        {"firmware", API_FEAT_FIRMWARE},
        {"software", API_FEAT_SOFTWARE},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (seg_is_nocase(s, names[i].name))
            return names[i].f;
    return API_FEAT_NONE;
}

void api_route_parse(const coap_slice_t *p, size_t n, api_route_t *out)
{
    memset(out, 0, sizeof *out);
    out->resource = API_RES_ERROR;
    out->code = COAP_NOT_FOUND;
    if (n == 0)
        return;
    if (seg_is(&p[0], "fw") || seg_is(&p[0], "sw")) {
        out->resource = seg_is(&p[0], "fw") ? API_RES_FW : API_RES_SW;
        if (n == 2) {
            out->has_token = true;
            out->token = p[1];
        }
        /* ThingsBoard: exactly /fw/$TOKEN. Ours also: /fw alone, for a device identified by
         * its DTLS certificate (ThingsBoard issue #13097). */
        out->ota_shape_ok = n == 1 || n == 2;
        return;
    }
    if (!seg_is(&p[0], "api"))
        return; /* Californium: no such resource -> 4.04 */
    if (n == 1) {
        out->code = COAP_METHOD_NOT_ALLOWED; /* the bare "api" resource has no handlers */
        return;
    }
    if (!seg_is(&p[1], "v1"))
        return;
    out->resource = API_RES_DEVICE;
    /* getFeatureType */
    if (n >= 4) {
        out->feature = (n == 4 && all_digits(&p[3])) ? feature_of(&p[2]) : feature_of(&p[3]);
    } else if (n == 3) {
        out->feature = seg_is(&p[0], "provision") || seg_is(&p[1], "provision") ||
                               seg_is(&p[2], "provision")
                           ? API_FEAT_PROVISION
                           : feature_of(&p[2]);
    }
    /* getRequestId */
    if (n >= 5)
        out->has_request_id = java_int(&p[4], &out->request_id);
    else if (n == 4)
        out->has_request_id = java_int(&p[3], &out->request_id);
    /* Access-token path: the token is p[2] whenever there are more than three segments. */
    if (n > 3) {
        out->has_token = true;
        out->token = p[2];
    }
}

api_action_t api_route_action(const api_route_t *r, uint8_t method, bool has_observe,
                              uint32_t observe, uint8_t *code)
{
    *code = 0;
    if (r->resource == API_RES_ERROR) {
        *code = r->code;
        return API_ACT_ERROR;
    }
    if (method != COAP_GET && method != COAP_POST) {
        *code = COAP_METHOD_NOT_ALLOWED;
        return API_ACT_ERROR;
    }
    if (r->resource == API_RES_FW || r->resource == API_RES_SW) {
        if (method == COAP_POST) {
            *code = COAP_METHOD_NOT_ALLOWED;
            return API_ACT_ERROR;
        }
        *code = COAP_UNAUTHORIZED; /* used if the shape is wrong or the token unknown */
        if (!r->ota_shape_ok)
            return API_ACT_ERROR;
        return API_ACT_OTA;
    }
    *code = COAP_BAD_REQUEST;
    if (r->feature == API_FEAT_NONE)
        return API_ACT_ERROR;
    if (r->feature == API_FEAT_FIRMWARE || r->feature == API_FEAT_SOFTWARE) {
        /* Not a ThingsBoard feature (its code answers 4.00 here, spec §3.10): the download
         * paths its documentation shows, served like /fw and /sw. */
        if (method != COAP_GET) {
            *code = COAP_METHOD_NOT_ALLOWED;
            return API_ACT_ERROR;
        }
        *code = COAP_UNAUTHORIZED;
        return API_ACT_OTA;
    }
    if (method == COAP_GET) {
        if (r->feature == API_FEAT_TELEMETRY)
            return API_ACT_ERROR;
        bool unsub = has_observe && observe == 1;
        if (has_observe && r->feature == API_FEAT_RPC)
            return unsub ? API_ACT_RPC_UNSUB : API_ACT_RPC_SUB;
        if (has_observe)
            return unsub ? API_ACT_ATTR_UNSUB : API_ACT_ATTR_SUB;
        if (r->feature == API_FEAT_ATTRIBUTES)
            return API_ACT_ATTR_GET;
        return API_ACT_ERROR;
    }
    *code = 0;
    switch (r->feature) {
    case API_FEAT_PROVISION: return API_ACT_PROVISION;
    case API_FEAT_ATTRIBUTES: return API_ACT_ATTR_POST;
    case API_FEAT_TELEMETRY: return API_ACT_TELEMETRY;
    case API_FEAT_RPC: return r->has_request_id ? API_ACT_RPC_REPLY : API_ACT_CLIENT_RPC;
    case API_FEAT_CLAIM: return API_ACT_CLAIM;
    case API_FEAT_NONE:
    case API_FEAT_FIRMWARE:
    case API_FEAT_SOFTWARE:
        break;
    }
    *code = COAP_BAD_REQUEST;
    return API_ACT_ERROR;
}
