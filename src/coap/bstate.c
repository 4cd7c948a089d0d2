/* bstate.c — the block-wise state a peer holds: Block1 uploads being reassembled and Block2
 * bodies cached for follow-up requests, keyed by method + Uri-Path + Uri-Query.
 *
 * Invariant: every body held here counts in coap_engine.block_mem, which stays under
 * COAP_BLOCK_MEM_CAP; each peer holds at most COAP_MAX_BLOCK_STATES_PER_PEER per list, and
 * each entry expires after min(300 s, exchange_lifetime_ms). The bottom of the engine: plain
 * storage that calls no other engine file (freeing an emptied peer is the caller's job).
 */
#include "coap/coap_int.h"

#include "core/xmalloc.h"

#include <stdlib.h>
#include <string.h>

int64_t coap__block_lifetime(const coap_engine_t *e)
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
    b->expires_ms = loop_now_ms(e->loop) + coap__block_lifetime(e);
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
}
