/* option.c — option accessors over a parsed coap_pdu_t and the RFC 7252 §3.2 uint format.
 *
 * Accessors only read the offsets coap_pdu_parse() recorded, which it checked against the
 * datagram length, so none of them can read out of bounds.
 */
#include "coap/pdu.h"

#include <errno.h>

int coap_pdu_opt_find(const coap_pdu_t *pdu, uint16_t num, size_t from)
{
    for (size_t i = from; i < pdu->n_opts; i++) {
        if (pdu->opts[i].num == num)
            return (int)i;
        if (pdu->opts[i].num > num)
            break; /* options are in ascending order */
    }
    return -ENOENT;
}

const uint8_t *coap_pdu_opt_value(const coap_pdu_t *pdu, size_t i, size_t *len)
{
    *len = pdu->opts[i].len;
    return pdu->buf + pdu->opts[i].off;
}

int coap_opt_uint_decode(const uint8_t *p, size_t len, uint32_t *out)
{
    if (len > 4)
        return -EBADMSG;
    uint32_t v = 0;
    for (size_t i = 0; i < len; i++)
        v = (v << 8) | p[i];
    *out = v;
    return 0;
}

int coap_pdu_opt_uint(const coap_pdu_t *pdu, uint16_t num, uint32_t *out)
{
    int i = coap_pdu_opt_find(pdu, num, 0);
    if (i < 0)
        return i;
    size_t len;
    const uint8_t *p = coap_pdu_opt_value(pdu, (size_t)i, &len);
    return coap_opt_uint_decode(p, len, out);
}

bool coap_opt_is_known(uint16_t num)
{
    switch (num) {
    case COAP_OPT_IF_MATCH:
    case COAP_OPT_URI_HOST:
    case COAP_OPT_ETAG:
    case COAP_OPT_IF_NONE_MATCH:
    case COAP_OPT_OBSERVE:
    case COAP_OPT_URI_PORT:
    case COAP_OPT_LOCATION_PATH:
    case COAP_OPT_URI_PATH:
    case COAP_OPT_CONTENT_FORMAT:
    case COAP_OPT_MAX_AGE:
    case COAP_OPT_URI_QUERY:
    case COAP_OPT_ACCEPT:
    case COAP_OPT_LOCATION_QUERY:
    case COAP_OPT_BLOCK2:
    case COAP_OPT_BLOCK1:
    case COAP_OPT_SIZE2:
    case COAP_OPT_PROXY_URI:
    case COAP_OPT_PROXY_SCHEME:
    case COAP_OPT_SIZE1:
    case COAP_OPT_ECHO:
    case COAP_OPT_NO_RESPONSE:
        return true;
    default:
        return false;
    }
}
