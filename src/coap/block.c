/* block.c — RFC 7959 §2.2 Block1/Block2 option values.
 *
 *    0
 *    0 1 2 3 4 5 6 7
 *   +-+-+-+-+-+-+-+-+
 *   |  NUM  |M| SZX |          (and 2 or 3 byte forms with a longer NUM)
 *   +-+-+-+-+-+-+-+-+
 *
 * "The value 7 for SZX (which would indicate a block size of 2048) is reserved, i.e. MUST
 * NOT be sent and MUST lead to a 4.00 Bad Request response code upon reception."
 */
#include "coap/pdu.h"

#include "core/err.h"

#include <errno.h>

int coap_block_decode(uint32_t v, coap_block_t *out)
{
    if (v > 0xffffffu)
        return -EBADMSG;
    out->szx = (uint8_t)(v & 7u);
    out->more = (v & 8u) != 0;
    out->num = v >> 4;
    if (out->szx == 7)
        return -EBADMSG;
    return 0;
}

uint32_t coap_block_encode(const coap_block_t *b)
{
    ASSERT(b->szx <= 6);
    return ((b->num & 0xfffffu) << 4) | (b->more ? 8u : 0u) | b->szx;
}

uint8_t coap_block_szx_for(size_t size)
{
    uint8_t szx = 0;
    while (szx < 6 && coap_block_size((uint8_t)(szx + 1)) <= size)
        szx++;
    return szx;
}
