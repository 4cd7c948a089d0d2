/* blockwise.c — the RFC 7959 stages of a request: Block1 reassembly and Block2 follow-ups.
 *
 * Block1: uploads are reassembled per (peer, method + Uri-Path + Uri-Query) rather than per
 * token, because RFC 7959 §2.5 lets a client change the token between blocks. Blocks must
 * arrive in order; a repeated block already held is accepted again, a gap is 4.08 (§2.9.2).
 * Block2: a body larger than the block size is sent in slices (response.c); the body is
 * cached per (peer, key) so follow-up GETs for num > 0 do not run the application again.
 * The stages say what to answer; engine.c answers (this file calls nothing above it).
 *
 * Block1 state exists only for admitted requests: engine.c runs ops.admit (credentials,
 * rate limits) before this stage, so an unknown token is answered at block 0 and keeps
 * nothing. A new transfer then passes the caps of coap__block1_admit (per peer, per owner,
 * per source address, engine memory); a refusal is 5.03 with Max-Age, for that address only.
 */
#include "coap/coap_int.h"

#include "core/err.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

uint8_t coap__block1_input(coap_exchange_t *x, const coap_pdu_t *pdu, uint64_t owner,
                           uint8_t **body, size_t *body_len)
{
    coap_peer_t *ps = x->ps;
    coap_engine_t *e = ps->e;
    *body = NULL;
    *body_len = 0;
    uint32_t v;
    int rc = coap_pdu_opt_uint(pdu, COAP_OPT_BLOCK1, &v);
    if (rc == -ENOENT)
        return 0;
    coap_block_t bl;
    if (rc < 0 || coap_block_decode(v, &bl) < 0)
        return COAP_BAD_REQUEST;
    size_t bsize = coap_block_size(bl.szx);
    size_t plen = pdu->payload_len;
    uint64_t off = (uint64_t)bl.num * bsize;
    uint32_t size1;
    bool too_big = off + plen > e->cfg.max_body ||
                   (coap_pdu_opt_uint(pdu, COAP_OPT_SIZE1, &size1) == 0 &&
                    size1 > e->cfg.max_body);
    coap_bstate_t *st = coap__bstate_find(&ps->block1, x->key, x->key_len);
    if (too_big) {
        /* RFC 7959 §2.9.3: 4.13 with Size1 saying what we would accept. */
        if (st)
            coap__bstate_free(e, st);
        x->size1 = (uint32_t)e->cfg.max_body;
        return COAP_REQUEST_ENTITY_TOO_LARGE;
    }
    if (bl.more && plen != bsize) {
        /* RFC 7959 §2.2: every block but the last carries exactly the block size. */
        if (st)
            coap__bstate_free(e, st);
        return COAP_BAD_REQUEST;
    }
    if (bl.num == 0) {
        if (st)
            coap__bstate_free(e, st);
        st = NULL;
        if (!bl.more) {
            x->has_block1 = true;
            x->block1 = bl;
            if (plen) {
                *body = xmalloc(plen);
                memcpy(*body, pdu->payload, plen);
                *body_len = plen;
            }
            return 0;
        }
        /* The request was admitted (ops.admit) before this stage; the caps decide whether a
         * new transfer may start. */
        uint32_t retry = 0;
        uint8_t refused = coap__block1_admit(ps, x->key, x->key_len, owner, plen, &retry);
        if (refused) {
            coap_exchange_set_max_age(x, retry);
            return refused;
        }
        uint8_t *first = xmalloc(plen);
        memcpy(first, pdu->payload, plen);
        st = coap__bstate_put(ps, &ps->block1, x->key, x->key_len, first, plen);
        if (!st) { /* not reached: coap__block1_admit checked the memory cap */
            coap_exchange_set_max_age(x, coap__block_retry_s(e));
            return COAP_SERVICE_UNAVAILABLE;
        }
        st->szx = bl.szx;
        coap__bstate_join(ps, st, owner);
    } else {
        if (!st)
            return COAP_REQUEST_ENTITY_INCOMPLETE;
        if (off == st->len) {
            if (e->block_mem + plen > e->cfg.block_mem_cap) {
                e->stats.block1_refused_mem++;
                coap__bstate_free(e, st);
                coap_exchange_set_max_age(x, coap__block_retry_s(e));
                return COAP_SERVICE_UNAVAILABLE;
            }
            if (plen) {
                st->body = xrealloc(st->body, st->len + plen);
                memcpy(st->body + st->len, pdu->payload, plen);
            }
            st->len += plen;
            e->block_mem += plen;
        } else if (off + plen > st->len || !bl.more) {
            coap__bstate_free(e, st);
            return COAP_REQUEST_ENTITY_INCOMPLETE;
        } /* else: a block we already hold, sent again under a new MID; accept it again */
        coap__bstate_touch(e, st);
    }
    x->has_block1 = true;
    x->block1 = bl;
    if (bl.more)
        return COAP_CODE(2, 31); /* RFC 7959 §2.3: 2.31 Continue echoes Block1 */
    *body = st->body;
    *body_len = st->len;
    e->block_mem -= st->len;
    st->body = NULL;
    st->len = 0;
    coap__bstate_free(e, st);
    return 0;
}

const coap_bstate_t *coap__block2_input(coap_exchange_t *x)
{
    /* GET, and FETCH and POST whose answer was sliced (RFC 7959 §2.5; the amplification
     * guard slices any large answer to an unverified address): a follow-up for a later block
     * is served from the cache and never runs the handler again. */
    if (!x->has_block2 || x->block2.num == 0 ||
        (x->method != COAP_GET && x->method != COAP_FETCH && x->method != COAP_POST))
        return NULL;
    return coap__bstate_find(&x->ps->block2, x->key, x->key_len);
}
