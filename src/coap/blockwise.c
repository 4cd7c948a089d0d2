/* blockwise.c — RFC 7959 block-wise transfer and response building.
 *
 * Block1: uploads are reassembled per (peer, method + Uri-Path + Uri-Query) rather than per
 * token, because RFC 7959 §2.5 lets a client change the token between blocks. Blocks must
 * arrive in order; a repeated block already held is accepted again, a gap is 4.08 (§2.9.2).
 * Block2: a body larger than the block size is sent in slices; the body is cached per
 * (peer, key) so follow-up GETs for num > 0 do not run the application again.
 *
 * Invariant: every body held here counts in coap_engine.block_mem, which stays under
 * COAP_BLOCK_MEM_CAP; each peer holds at most COAP_MAX_BLOCK_STATES_PER_PEER per list, and
 * each entry expires after min(300 s, exchange_lifetime_ms).
 */
#include "coap/engine_int.h"

#include "core/err.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int64_t block_lifetime(const coap_engine_t *e)
{
    int64_t l = e->cfg.exchange_lifetime_ms;
    return l < COAP_BLOCKWISE_LIFETIME_MS ? l : COAP_BLOCKWISE_LIFETIME_MS;
}

void coap__bstate_free(coap_engine_t *e, coap_bstate_t *b)
{
    coap_list_del(&b->link);
    e->block_mem -= b->len;
    free(b->key);
    free(b->body);
    free(b);
}

coap_bstate_t *coap__bstate_find(coap_link_t *list, const uint8_t *key, size_t key_len)
{
    for (coap_link_t *l = list->next; l != list; l = l->next) {
        coap_bstate_t *b = COAP_CONTAINER(l, coap_bstate_t, link);
        if (b->key_len == key_len && memcmp(b->key, key, key_len) == 0)
            return b;
    }
    return NULL;
}

/* Takes ownership of body. Replaces an entry with the same key, evicts the peer's oldest when
 * the per-peer count is reached. Returns NULL (and frees body) when the engine cap is hit. */
coap_bstate_t *coap__bstate_put(coap_peer_t *ps, coap_link_t *list, const uint8_t *key,
                                size_t key_len, uint8_t *body, size_t len)
{
    coap_engine_t *e = ps->e;
    coap_bstate_t *old = coap__bstate_find(list, key, key_len);
    if (old)
        coap__bstate_free(e, old);
    size_t n = 0;
    for (coap_link_t *l = list->next; l != list; l = l->next)
        n++;
    if (n >= COAP_MAX_BLOCK_STATES_PER_PEER)
        coap__bstate_free(e, COAP_CONTAINER(list->next, coap_bstate_t, link));
    if (e->block_mem + len > COAP_BLOCK_MEM_CAP) {
        free(body);
        return NULL;
    }
    coap_bstate_t *b = xcalloc(1, sizeof *b);
    b->key = xmalloc(key_len ? key_len : 1);
    memcpy(b->key, key, key_len);
    b->key_len = key_len;
    b->body = body;
    b->len = len;
    b->expires_ms = loop_now_ms(e->loop) + block_lifetime(e);
    e->block_mem += len;
    coap_list_push(list, &b->link);
    return b;
}

void coap__bstate_expire(coap_peer_t *ps, int64_t now)
{
    coap_link_t *lists[2] = {&ps->block1, &ps->block2};
    for (size_t i = 0; i < 2; i++) {
        for (coap_link_t *l = lists[i]->next, *n; l != lists[i]; l = n) {
            n = l->next;
            coap_bstate_t *b = COAP_CONTAINER(l, coap_bstate_t, link);
            if (b->expires_ms <= now)
                coap__bstate_free(ps->e, b);
        }
    }
    coap__peer_maybe_release(ps);
}

static uint8_t cfg_szx(const coap_engine_t *e)
{
    return coap_block_szx_for(e->cfg.block_size);
}

ssize_t coap__build(coap_exchange_t *x, uint8_t **out, size_t out_cap, uint8_t type,
                    uint16_t mid, uint8_t code, int cf, const uint8_t *payload, size_t len,
                    bool with_observe, uint32_t observe)
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
    if (sliced) {
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
    size_t cap = 4 + COAP_TOKEN_MAX + 64 + slice_len;
    uint8_t *buf = *out && cap <= out_cap ? *out : xmalloc(cap);
    coap_builder_t b;
    coap_builder_init(&b, buf, cap, type, code, mid, x->token, x->tkl);
    if (with_observe)
        coap_builder_opt_uint(&b, COAP_OPT_OBSERVE, observe & 0xffffffu);
    if (cf >= 0)
        coap_builder_opt_uint(&b, COAP_OPT_CONTENT_FORMAT, (uint32_t)cf);
    if (sliced) {
        coap_block_t bl = {.num = num, .more = more, .szx = szx};
        coap_builder_opt_uint(&b, COAP_OPT_BLOCK2, coap_block_encode(&bl));
    }
    if (x->has_block1)
        coap_builder_opt_uint(&b, COAP_OPT_BLOCK1, coap_block_encode(&x->block1));
    if (sliced && num == 0)
        coap_builder_opt_uint(&b, COAP_OPT_SIZE2, (uint32_t)len);
    if (x->size1)
        coap_builder_opt_uint(&b, COAP_OPT_SIZE1, x->size1);
    coap_builder_payload(&b, slice, slice_len);
    ssize_t n = coap_builder_finish(&b);
    ASSERT(n >= 0); /* cap covers the header, token, every option we add and the slice */
    *out = buf;
    /* Keep the whole body for the follow-up GETs (RFC 7959 §2.4); only successful bodies. */
    if (sliced && more && num == 0 && x->ps && !x->ps->closing && x->key_len &&
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

void coap__respond(coap_exchange_t *x, uint8_t code, int cf, const uint8_t *payload,
                   size_t len)
{
    coap_peer_t *ps = x->ps;
    coap_engine_t *e = x->e;
    bool with_observe = false;
    if (x->obs) {
        if ((code >> 5) == 2 && !ps->closing) {
            coap__obs_activate(x->obs);
            with_observe = true;
        } else {
            coap__obs_free_pending(x->obs);
        }
        x->obs = NULL;
    }
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
    ssize_t n = coap__build(x, &buf, sizeof stack, type, mid, code, cf, payload, len,
                            with_observe, 0);
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

static void reply(coap_exchange_t *x, uint8_t code)
{
    coap_exchange_respond(x, code, COAP_CF_NONE, NULL, 0);
}

bool coap__block1_input(coap_exchange_t *x, const coap_pdu_t *pdu, uint8_t **body,
                        size_t *body_len)
{
    coap_peer_t *ps = x->ps;
    coap_engine_t *e = ps->e;
    *body = NULL;
    *body_len = 0;
    uint32_t v;
    int rc = coap_pdu_opt_uint(pdu, COAP_OPT_BLOCK1, &v);
    if (rc == -ENOENT)
        return false;
    coap_block_t bl;
    if (rc < 0 || coap_block_decode(v, &bl) < 0) {
        reply(x, COAP_BAD_REQUEST);
        return true;
    }
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
        reply(x, COAP_REQUEST_ENTITY_TOO_LARGE);
        return true;
    }
    if (bl.more && plen != bsize) {
        /* RFC 7959 §2.2: every block but the last carries exactly the block size. */
        if (st)
            coap__bstate_free(e, st);
        reply(x, COAP_BAD_REQUEST);
        return true;
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
            return false;
        }
        uint8_t *first = xmalloc(plen);
        memcpy(first, pdu->payload, plen);
        st = coap__bstate_put(ps, &ps->block1, x->key, x->key_len, first, plen);
        if (!st) {
            reply(x, COAP_SERVICE_UNAVAILABLE);
            return true;
        }
        st->szx = bl.szx;
    } else {
        if (!st) {
            reply(x, COAP_REQUEST_ENTITY_INCOMPLETE);
            return true;
        }
        if (off == st->len) {
            if (e->block_mem + plen > COAP_BLOCK_MEM_CAP) {
                coap__bstate_free(e, st);
                reply(x, COAP_SERVICE_UNAVAILABLE);
                return true;
            }
            if (plen) {
                st->body = xrealloc(st->body, st->len + plen);
                memcpy(st->body + st->len, pdu->payload, plen);
            }
            st->len += plen;
            e->block_mem += plen;
        } else if (off + plen > st->len || !bl.more) {
            coap__bstate_free(e, st);
            reply(x, COAP_REQUEST_ENTITY_INCOMPLETE);
            return true;
        } /* else: a block we already hold, sent again under a new MID; accept it again */
        st->expires_ms = loop_now_ms(e->loop) + block_lifetime(e);
    }
    x->has_block1 = true;
    x->block1 = bl;
    if (bl.more) {
        reply(x, COAP_CODE(2, 31)); /* RFC 7959 §2.3: 2.31 Continue echoes Block1 */
        return true;
    }
    *body = st->body;
    *body_len = st->len;
    e->block_mem -= st->len;
    st->body = NULL;
    st->len = 0;
    coap__bstate_free(e, st);
    return false;
}

bool coap__block2_input(coap_exchange_t *x)
{
    if (!x->has_block2 || x->block2.num == 0 || x->method != COAP_GET)
        return false;
    coap_bstate_t *c = coap__bstate_find(&x->ps->block2, x->key, x->key_len);
    if (!c)
        return false;
    x->internal = true;
    /* The cache stays in place for the remaining blocks; copy because respond may evict. */
    uint8_t *copy = xmalloc(c->len);
    memcpy(copy, c->body, c->len);
    size_t len = c->len;
    coap_exchange_respond(x, c->code, c->cf, copy, len);
    free(copy);
    return true;
}
