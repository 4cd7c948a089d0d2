/* route.h — which ThingsBoard device-API action a request asks for (module-internal).
 *
 * Two pure functions: api_route_parse() applies spec/thingsboard-coap.md §1.1/§1.2 to the
 * Uri-Path segments (resource tree, feature, token slice, request id), api_route_action()
 * applies the method/Observe rules of §2 (CoapTransportResource handleGET/handlePOST).
 * No allocation, no device lookup; the slices point into the caller's segments.
 */
#ifndef COAPHUB_API_ROUTE_H
#define COAPHUB_API_ROUTE_H

#include "coap/coap.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    API_FEAT_NONE = 0, /* missing or unknown feature: 4.00 */
    API_FEAT_ATTRIBUTES,
    API_FEAT_TELEMETRY,
    API_FEAT_RPC,
    API_FEAT_CLAIM,
    API_FEAT_PROVISION,
    API_FEAT_FIRMWARE, /* ours: GET /api/v1/firmware, /api/v1/$TOKEN/firmware (TB's docs) */
    API_FEAT_SOFTWARE,
} api_feature_t;

typedef enum {
    API_RES_ERROR, /* answer `code` (4.04 unknown resource, 4.05 bare /api) */
    API_RES_DEVICE, /* /api/v1/... */
    API_RES_FW,     /* /fw/... */
    API_RES_SW,     /* /sw/... */
} api_resource_t;

typedef struct api_route {
    api_resource_t resource;
    uint8_t code;          /* API_RES_ERROR only */
    api_feature_t feature; /* API_RES_DEVICE */
    bool has_token;        /* DEVICE: > 3 segments -> p[2]; FW/SW: exactly 2 -> p[1] */
    bool ota_shape_ok;     /* FW/SW: 1 segment (X.509: /fw) or 2 (/fw/$TOKEN) */
    coap_slice_t token;
    bool has_request_id;   /* Integer.valueOf(p[4] or p[3]) succeeded */
    int64_t request_id;
} api_route_t;

/* Resolves segments seg[0..n) (seg[0] = "api" for the device API). */
void api_route_parse(const coap_slice_t *seg, size_t n, api_route_t *out);

typedef enum {
    API_ACT_ERROR = 0,  /* answer code, no authentication needed */
    API_ACT_TELEMETRY,  /* POST telemetry */
    API_ACT_ATTR_POST,  /* POST client attributes */
    API_ACT_ATTR_GET,   /* GET attributes, no Observe */
    API_ACT_ATTR_SUB,   /* GET + Observe != 1 on anything but rpc/telemetry */
    API_ACT_ATTR_UNSUB, /* GET + Observe = 1 */
    API_ACT_RPC_SUB,    /* GET + Observe != 1 on rpc */
    API_ACT_RPC_UNSUB,  /* GET + Observe = 1 on rpc */
    API_ACT_RPC_REPLY,  /* POST rpc with a request id */
    API_ACT_CLIENT_RPC, /* POST rpc without a request id */
    API_ACT_CLAIM,      /* POST claim */
    API_ACT_PROVISION,  /* POST provision (not authenticated) */
    API_ACT_OTA,        /* GET /fw[/$TOKEN], /sw[/$TOKEN], /api/v1/[$TOKEN/]firmware|software */
} api_action_t;

/* The action for a parsed route and method; *code is set for API_ACT_ERROR (and also for
 * OTA shape errors: 4.01). */
/* For API_ACT_OTA: whether the route asks for software (else firmware). */
static inline bool api_route_is_software(const api_route_t *r)
{
    return r->resource == API_RES_SW ||
           (r->resource == API_RES_DEVICE && r->feature == API_FEAT_SOFTWARE);
}
api_action_t api_route_action(const api_route_t *r, uint8_t method, bool has_observe,
                              uint32_t observe, uint8_t *code);

#endif
