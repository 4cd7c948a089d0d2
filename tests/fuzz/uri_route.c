/* uri_route.c — libFuzzer target: arbitrary bytes split on '/' into Uri-Path segments (the
 * first byte picks method and Observe) -> api_route_parse -> api_route_action. Checks that
 * the token slice lies inside the input and that every result is one the handler knows. */
#include "api/route.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t ctl = data[0];
    const uint8_t *p = data + 1, *end = data + size;
    coap_slice_t seg[COAP_MAX_PATH_SEGS];
    size_t n = 0;
    const uint8_t *s = p;
    while (n < COAP_MAX_PATH_SEGS && p < end) {
        const uint8_t *slash = memchr(s, '/', (size_t)(end - s));
        seg[n].p = s;
        seg[n].len = slash ? (size_t)(slash - s) : (size_t)(end - s);
        n++;
        if (!slash)
            break;
        s = slash + 1;
    }
    api_route_t r;
    api_route_parse(seg, n, &r);
    if (r.has_token && (r.token.p < data || r.token.p + r.token.len > end))
        abort();
    if (r.resource == API_RES_DEVICE && r.has_request_id &&
        (r.request_id > INT32_MAX || r.request_id < INT32_MIN))
        abort();
    uint8_t code;
    api_action_t a = api_route_action(&r, (uint8_t)(ctl & 7), ctl & 8, (ctl >> 4) & 1, &code);
    if (a == API_ACT_ERROR && code == 0)
        abort();
    if (a > API_ACT_OTA)
        abort();
    return 0;
}
