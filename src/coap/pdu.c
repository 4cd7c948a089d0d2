/* pdu.c — RFC 7252 message parser and builder.
 *
 * Invariant: the parser never reads past buf + len. It carries the remaining byte count and
 * checks it before every advance (libcoap's next_option_safe), instead of moving a pointer
 * and checking afterwards. It allocates nothing; option values stay in the datagram.
 */
#include "coap/pdu.h"

#include <errno.h>
#include <string.h>

/* RFC 7252 §3, message format:
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |Ver| T |  TKL  |      Code     |          Message ID           |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |   Token (if any, TKL bytes) ...
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |   Options (if any) ...
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |1 1 1 1 1 1 1 1|    Payload (if any) ...
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * "Lengths 9-15 are reserved, MUST NOT be sent, and MUST be processed as a message format
 * error." "The presence of a marker followed by a zero-length payload MUST be processed as
 * a message format error."
 *
 * RFC 7252 §3.1, option format:
 *
 *     0   1   2   3   4   5   6   7
 *   +---------------+---------------+
 *   |  Option Delta | Option Length |   1 byte
 *   +---------------+---------------+
 *   /         Option Delta          /   0-2 bytes
 *   \          (extended)           \
 *   +-------------------------------+
 *   /         Option Length         /   0-2 bytes
 *   \          (extended)           \
 *   +-------------------------------+
 *   /         Option Value          /   0 or more bytes
 *   +-------------------------------+
 *
 * Nibble 13: an 8-bit extension follows holding the value minus 13. Nibble 14: a 16-bit
 * extension (network order) holds the value minus 269. Nibble 15 is reserved: as a delta it
 * is only valid as part of the 0xFF payload marker, as a length it "MUST be processed as a
 * message format error".
 */

/* Decodes one delta or length nibble with its extension. *rem is the bytes left after *pos. */
static int decode_ext(unsigned nibble, const uint8_t *buf, size_t *pos, size_t *rem,
                      uint32_t *out)
{
    if (nibble < 13) {
        *out = nibble;
        return 0;
    }
    if (nibble == 13) {
        if (*rem < 1)
            return -EBADMSG;
        *out = 13u + buf[*pos];
        *pos += 1;
        *rem -= 1;
        return 0;
    }
    if (nibble == 14) {
        if (*rem < 2)
            return -EBADMSG;
        *out = 269u + (((uint32_t)buf[*pos] << 8) | buf[*pos + 1]);
        *pos += 2;
        *rem -= 2;
        return 0;
    }
    return -EBADMSG; /* 15: reserved */
}

int coap_pdu_parse(coap_pdu_t *pdu, const uint8_t *buf, size_t len)
{
    memset(pdu, 0, offsetof(coap_pdu_t, opts));
    pdu->payload = NULL;
    pdu->payload_len = 0;
    pdu->buf = buf;
    pdu->len = len;
    if (len < 4)
        return -EBADMSG;
    pdu->type = (uint8_t)((buf[0] >> 4) & 3u);
    pdu->tkl = (uint8_t)(buf[0] & 0x0fu);
    pdu->code = buf[1];
    pdu->mid = (uint16_t)((buf[2] << 8) | buf[3]);
    if ((buf[0] >> 6) != 1)
        return -EBADMSG;
    if (pdu->tkl > COAP_TOKEN_MAX)
        return -EBADMSG;
    size_t pos = 4, rem = len - 4;
    if (rem < pdu->tkl)
        return -EBADMSG;
    pdu->token = buf + pos;
    pos += pdu->tkl;
    rem -= pdu->tkl;

    uint32_t num = 0;
    while (rem > 0) {
        uint8_t b = buf[pos];
        if (b == 0xff) {
            pos++;
            rem--;
            if (rem == 0)
                return -EBADMSG;
            pdu->payload = buf + pos;
            pdu->payload_len = rem;
            return 0;
        }
        pos++;
        rem--;
        uint32_t delta, olen;
        if (decode_ext(b >> 4, buf, &pos, &rem, &delta) < 0)
            return -EBADMSG;
        if (decode_ext(b & 0x0fu, buf, &pos, &rem, &olen) < 0)
            return -EBADMSG;
        /* A value longer than 65535 bytes cannot fit a datagram; rejecting it keeps the
         * 16-bit length in coap_opt_ref_t exact. */
        if (rem < olen || olen > UINT16_MAX || pos > UINT32_MAX)
            return -EBADMSG;
        num += delta;
        /* Option numbers are 16-bit (RFC 7252 §12.2); a sum beyond that is hostile. */
        if (num > UINT16_MAX)
            return -EBADMSG;
        if (pdu->n_opts == COAP_PDU_MAX_OPTS)
            return -E2BIG;
        coap_opt_ref_t *o = &pdu->opts[pdu->n_opts++];
        o->num = (uint16_t)num;
        o->len = (uint16_t)olen;
        o->off = (uint32_t)pos;
        pos += olen;
        rem -= olen;
    }
    return 0;
}

void coap_builder_init(coap_builder_t *b, uint8_t *buf, size_t cap, uint8_t type, uint8_t code,
                       uint16_t mid, const uint8_t *token, size_t tkl)
{
    b->buf = buf;
    b->cap = cap;
    b->len = 0;
    b->last_opt = 0;
    b->has_payload = false;
    b->err = 0;
    if (tkl > COAP_TOKEN_MAX || type > 3) {
        b->err = -EINVAL;
        return;
    }
    if (cap < 4 + tkl) {
        b->err = -ENOSPC;
        return;
    }
    buf[0] = (uint8_t)(0x40u | (unsigned)(type << 4) | (unsigned)tkl);
    buf[1] = code;
    buf[2] = (uint8_t)(mid >> 8);
    buf[3] = (uint8_t)(mid & 0xffu);
    if (tkl)
        memcpy(buf + 4, token, tkl);
    b->len = 4 + tkl;
}

/* Splits a delta or length into its nibble and extension bytes (RFC 7252 §3.1). */
static unsigned ext_encode(uint32_t v, uint8_t ext[2], size_t *ext_len)
{
    if (v < 13) {
        *ext_len = 0;
        return v;
    }
    if (v < 269) {
        ext[0] = (uint8_t)(v - 13);
        *ext_len = 1;
        return 13;
    }
    uint32_t x = v - 269;
    ext[0] = (uint8_t)(x >> 8);
    ext[1] = (uint8_t)(x & 0xffu);
    *ext_len = 2;
    return 14;
}

void coap_builder_opt(coap_builder_t *b, uint16_t num, const uint8_t *val, size_t len)
{
    if (b->err)
        return;
    if (b->has_payload || num < b->last_opt || len > 65535u + 269u) {
        b->err = -EINVAL;
        return;
    }
    uint8_t dext[2], lext[2];
    size_t dlen, llen;
    unsigned dn = ext_encode((uint32_t)(num - b->last_opt), dext, &dlen);
    unsigned ln = ext_encode((uint32_t)len, lext, &llen);
    size_t need = 1 + dlen + llen + len;
    if (b->cap - b->len < need) {
        b->err = -ENOSPC;
        return;
    }
    uint8_t *p = b->buf + b->len;
    *p++ = (uint8_t)((dn << 4) | ln);
    memcpy(p, dext, dlen);
    p += dlen;
    memcpy(p, lext, llen);
    p += llen;
    if (len)
        memcpy(p, val, len);
    b->len += need;
    b->last_opt = num;
}

/* RFC 7252 §3.2 uint: big-endian, no leading zero bytes (0 is empty). Beside the builder,
 * its one user here, so the codec needs nothing from option.c. */
size_t coap_opt_uint_encode(uint32_t v, uint8_t out[static 4])
{
    size_t n = 0;
    for (uint32_t t = v; t; t >>= 8)
        n++;
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    return n;
}

void coap_builder_opt_uint(coap_builder_t *b, uint16_t num, uint32_t v)
{
    uint8_t tmp[4];
    size_t n = coap_opt_uint_encode(v, tmp);
    coap_builder_opt(b, num, tmp, n);
}

void coap_builder_payload(coap_builder_t *b, const uint8_t *p, size_t len)
{
    if (b->err || len == 0)
        return;
    if (b->has_payload) {
        b->err = -EINVAL;
        return;
    }
    if (b->cap - b->len < 1 + len) {
        b->err = -ENOSPC;
        return;
    }
    b->buf[b->len++] = 0xff;
    memcpy(b->buf + b->len, p, len);
    b->len += len;
    b->has_payload = true;
}

ssize_t coap_builder_finish(const coap_builder_t *b)
{
    return b->err ? b->err : (ssize_t)b->len;
}
