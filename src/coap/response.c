/* response.c — building and sending an answer: message type and MID (piggybacked ACK,
 * separate CON, NON), the options an exchange calls for (Observe, Content-Format, Max-Age,
 * Block2 slicing with Size2, Block1 echo, Size1), the Block2 cache of a sliced body, and the copy a
 * dedup entry keeps to answer a duplicate CON again.
 *
 * Used by engine.c (answers) and observe.c (notifications, the final cancel); it decides
 * nothing about relations: the caller says whether the answer carries Observe.
 */
#include "coap/coap_int.h"

#include "core/err.h"
#include "core/xmalloc.h"

#include <stdlib.h>
#include <string.h>

static uint8_t cfg_szx(const coap_engine_t *e)
{
    return coap_block_szx_for(e->cfg.block_size);
}

ssize_t coap__build(coap_exchange_t *x, uint8_t **out, size_t out_cap, uint8_t type, uint16_t mid,
                    uint8_t code, int cf, const uint8_t *payload, size_t len, bool with_observe,
                    uint32_t observe)
{
    coap_engine_t *e = x->e;
    uint8_t szx = cfg_szx(e);
    uint32_t num = 0;
    if (x->has_block2) {
        /* RFC 7959 §2.4: the client's SZX is a maximum; we may go smaller, never larger. */
        if (x->block2.szx < szx)
            szx = x->block2.szx;
        num = x->block2.num;
    }
    size_t bsize = coap_block_size(szx);
    bool sliced = len > bsize || num > 0;
    const uint8_t *slice = payload;
    size_t slice_len = len;
    bool more = false;
    uint64_t total = len;
    if (x->block_ext) {
        /* The application handed us one block already (coap_exchange_respond_block). */
        total = x->block_total;
        sliced = x->has_block2 || total > bsize;
        more = (uint64_t)num * bsize + len < total;
    } else if (sliced) {
        size_t off = (size_t)num * bsize;
        if (off >= len) {
            /* RFC 7959 §2.2: a block number beyond the body is a bad Block2 option. */
            code = COAP_BAD_OPTION;
            sliced = false;
            slice = NULL;
            slice_len = 0;
            with_observe = false;
            cf = COAP_CF_NONE;
        } else {
            slice = payload + off;
            slice_len = len - off < bsize ? len - off : bsize;
            more = off + slice_len < len;
        }
    }
    size_t cap = 4 + COAP_TOKEN_MAX + 64 + 9 + slice_len; /* 9: an ETag of up to 8 bytes */
    uint8_t *buf = *out && cap <= out_cap ? *out : xmalloc(cap);
    coap_builder_t b;
    coap_builder_init(&b, buf, cap, type, code, mid, x->token, x->tkl);
    if (x->etag_len)
        coap_builder_opt(&b, COAP_OPT_ETAG, x->etag, x->etag_len);
    if (with_observe)
        coap_builder_opt_uint(&b, COAP_OPT_OBSERVE, observe & 0xffffffu);
    if (cf >= 0)
        coap_builder_opt_uint(&b, COAP_OPT_CONTENT_FORMAT, (uint32_t)cf);
    if (x->has_max_age)
        coap_builder_opt_uint(&b, COAP_OPT_MAX_AGE, x->max_age);
    if (sliced) {
        coap_block_t bl = {.num = num, .more = more, .szx = szx};
        coap_builder_opt_uint(&b, COAP_OPT_BLOCK2, coap_block_encode(&bl));
    }
    if (x->has_block1)
        coap_builder_opt_uint(&b, COAP_OPT_BLOCK1, coap_block_encode(&x->block1));
    if (sliced && num == 0)
        coap_builder_opt_uint(&b, COAP_OPT_SIZE2,
                              total > UINT32_MAX ? UINT32_MAX : (uint32_t)total);
    if (x->size1)
        coap_builder_opt_uint(&b, COAP_OPT_SIZE1, x->size1);
    coap_builder_payload(&b, slice, slice_len);
    ssize_t n = coap_builder_finish(&b);
    ASSERT(n >= 0); /* cap covers the header, token, every option we add and the slice */
    *out = buf;
    /* Keep the whole body for the follow-up GETs (RFC 7959 §2.4); only successful bodies. */
    if (sliced && more && num == 0 && !x->block_ext && x->ps && !x->ps->closing && x->key_len &&
        (code >> 5) == 2) {
        uint8_t *copy = xmalloc(len);
        memcpy(copy, payload, len);
        coap_bstate_t *c = coap__bstate_put(x->ps, &x->ps->block2, x->key, x->key_len, copy, len);
        if (c) {
            c->code = code;
            c->cf = cf;
        }
    }
    return n;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *c = xmalloc(n);
    memcpy(c, p, n);
    return c;
}

void coap__respond(coap_exchange_t *x, uint8_t code, int cf, const uint8_t *payload, size_t len,
                   bool with_observe)
{
    coap_peer_t *ps = x->ps;
    coap_engine_t *e = x->e;
    uint8_t type;
    uint16_t mid;
    if (x->con && !x->acked) {
        type = COAP_TYPE_ACK;
        mid = x->mid;
    } else {
        type = x->con ? COAP_TYPE_CON : COAP_TYPE_NON;
        mid = coap__next_mid(e);
    }
    /* Small responses are built on the stack; coap__build takes the heap for bigger ones. */
    uint8_t stack[512];
    uint8_t *buf = stack;
    ssize_t n = coap__build(x, &buf, sizeof stack, type, mid, code, cf, payload, len, with_observe,
                            0);
    bool on_heap = buf != stack;
    if (type == COAP_TYPE_CON) { /* a separate response: the retransmission keeps it */
        coap__con_send(ps, mid, on_heap ? buf : dup_bytes(buf, (size_t)n), (size_t)n);
        return;
    }
    coap__send(ps, buf, (size_t)n);
    if (type == COAP_TYPE_ACK && x->d) {
        /* RFC 7252 §4.5: a duplicate CON gets the same piggybacked response again. */
        coap_dedup_t *d = x->d;
        if (d->resp != d->resp_inline)
            free(d->resp);
        if ((size_t)n <= sizeof d->resp_inline) {
            memcpy(d->resp_inline, buf, (size_t)n);
            d->resp = d->resp_inline;
        } else {
            d->resp = on_heap ? buf : dup_bytes(buf, (size_t)n);
            on_heap = false; /* the dedup entry owns it now */
        }
        d->resp_len = (size_t)n;
    }
    if (on_heap)
        free(buf);
}

/* Here, below blockwise.c and engine.c, because both answer with a Max-Age (5.03, 4.29). */
void coap_exchange_set_max_age(coap_exchange_t *x, uint32_t seconds)
{
    x->has_max_age = true;
    x->max_age = seconds;
}
