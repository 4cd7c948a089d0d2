/* bstate.c — the block-wise state a peer holds: Block1 uploads being reassembled and Block2
 * bodies cached for follow-up requests, keyed by method + Uri-Path + Uri-Query.
 *
 * Invariant: every body held here counts in coap_engine.block_mem, which stays under
 * cfg.block_mem_cap; each peer holds at most COAP_MAX_BLOCK_STATES_PER_PEER per list; a
 * Block1 entry also counts in the groups of its source address and its owner (caps
 * cfg.block1_per_addr and cfg.block1_per_owner); each entry expires a block lifetime after
 * it was last active. Every entry sits in the engine's least-recently-active list, so the
 * front is the one that expires first: its remaining life is the Max-Age of a 5.03.
 * The bottom of the engine: plain storage that calls no other engine file (freeing an
 * emptied peer is the caller's job).
 */
#include "coap/coap_int.h"

#include "core/hash.h"
#include "core/sockaddr.h"
#include "core/xmalloc.h"

#include <stdlib.h>
#include <string.h>

int64_t coap__block_lifetime(const coap_engine_t *e)
{
    if (e->cfg.block_lifetime_ms > 0)
        return e->cfg.block_lifetime_ms;
    int64_t l = e->cfg.exchange_lifetime_ms;
    return l < COAP_BLOCKWISE_LIFETIME_MS ? l : COAP_BLOCKWISE_LIFETIME_MS;
}

/* ---- groups (per source address, per owner) ---- */

typedef struct gkey {
    uint8_t b[sizeof((coap_bgroup_t *)0)->key];
    size_t len;
} gkey_t;

static bool group_has_key(const htab_link_t *l, const void *k)
{
    const coap_bgroup_t *g = HTAB_ENTRY(l, coap_bgroup_t, link);
    const gkey_t *key = k;
    return g->key_len == key->len && memcmp(g->key, key->b, key->len) == 0;
}

/* The group key of kind for ps / owner; false when there is none (owner 0, or an address
 * family without a prefix key). */
static bool group_key(const coap_peer_t *ps, int kind, uint64_t owner, gkey_t *k)
{
    k->b[0] = (uint8_t)kind;
    if (kind == COAP_BGROUP_OWNER) {
        if (!owner)
            return false;
        memcpy(k->b + 1, &owner, sizeof owner);
        k->len = 1 + sizeof owner;
        return true;
    }
    size_t n = sockaddr_prefix_key(&ps->tp->addr, k->b + 1);
    k->len = 1 + n;
    return n > 0;
}

static coap_bgroup_t *group_find(const coap_engine_t *e, const gkey_t *k, uint64_t *hash)
{
    *hash = hash_bytes(k->b, k->len);
    htab_link_t *l = htab_find(&e->bgroups, *hash, group_has_key, k);
    return l ? HTAB_ENTRY(l, coap_bgroup_t, link) : NULL;
}

void coap__bstate_join(coap_peer_t *ps, coap_bstate_t *b, uint64_t owner)
{
    coap_engine_t *e = ps->e;
    for (int kind = 0; kind < 2; kind++) {
        gkey_t k;
        if (!group_key(ps, kind, owner, &k))
            continue;
        uint64_t h;
        coap_bgroup_t *g = group_find(e, &k, &h);
        if (!g) {
            g = xcalloc(1, sizeof *g);
            coap_list_init(&g->states);
            memcpy(g->key, k.b, k.len);
            g->key_len = (uint8_t)k.len;
            htab_insert(&e->bgroups, &g->link, h);
        }
        g->n++;
        b->grp[kind] = g;
        coap_list_push(&g->states, &b->grp_link[kind]);
    }
}

static void group_leave(coap_engine_t *e, coap_bstate_t *b)
{
    for (int kind = 0; kind < 2; kind++) {
        coap_bgroup_t *g = b->grp[kind];
        if (!g)
            continue;
        coap_list_del(&b->grp_link[kind]);
        b->grp[kind] = NULL;
        if (--g->n == 0) {
            htab_remove(&e->bgroups, &g->link);
            free(g);
        }
    }
}

/* ---- entries ---- */

void coap__bstate_free(coap_engine_t *e, coap_bstate_t *b)
{
    coap_list_del(&b->link);
    coap_list_del(&b->lru_link);
    group_leave(e, b);
    e->block_mem -= b->len;
    free(b->key);
    free(b->body);
    free(b);
}

void coap__bstate_touch(coap_engine_t *e, coap_bstate_t *b)
{
    b->expires_ms = loop_now_ms(e->loop) + coap__block_lifetime(e);
    coap_list_del(&b->lru_link);
    coap_list_push(&e->block_lru, &b->lru_link);
    for (int kind = 0; kind < 2; kind++) {
        if (b->grp[kind]) {
            coap_list_del(&b->grp_link[kind]);
            coap_list_push(&b->grp[kind]->states, &b->grp_link[kind]);
        }
    }
}

static uint32_t retry_s(const coap_engine_t *e, const coap_bstate_t *b)
{
    int64_t left = b->expires_ms - loop_now_ms(e->loop);
    return left <= 1000 ? 1u : (uint32_t)((left + 999) / 1000);
}

uint32_t coap__block_retry_s(const coap_engine_t *e)
{
    if (coap_list_empty(&e->block_lru))
        return 1;
    return retry_s(e, COAP_CONTAINER(e->block_lru.next, coap_bstate_t, lru_link));
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

/* Frees the entry with key (a restarted transfer replaces it) and, when the list is at the
 * per-peer cap, the oldest. Returns how many were evicted for the cap. */
static int make_room(coap_peer_t *ps, coap_link_t *list, const uint8_t *key, size_t key_len)
{
    coap_engine_t *e = ps->e;
    coap_bstate_t *old = coap__bstate_find(list, key, key_len);
    if (old)
        coap__bstate_free(e, old);
    size_t n = 0;
    for (coap_link_t *l = list->next; l != list; l = l->next)
        n++;
    if (n < COAP_MAX_BLOCK_STATES_PER_PEER)
        return 0;
    coap__bstate_free(e, COAP_CONTAINER(list->next, coap_bstate_t, link));
    return 1;
}

uint8_t coap__block1_admit(coap_peer_t *ps, const uint8_t *key, size_t key_len, uint64_t owner,
                           size_t len, uint32_t *retry)
{
    coap_engine_t *e = ps->e;
    if (make_room(ps, &ps->block1, key, key_len))
        e->stats.block1_evicted_peer++;
    gkey_t k;
    uint64_t h;
    coap_bgroup_t *g;
    if (e->cfg.block1_per_owner && group_key(ps, COAP_BGROUP_OWNER, owner, &k) &&
        (g = group_find(e, &k, &h)) && g->n >= e->cfg.block1_per_owner) {
        /* Only the device itself (or whoever holds its credentials) fills its own quota: drop
         * its least recently active transfer, so a device that restarts an upload from a new
         * port after a reboot is not locked out for the block lifetime. */
        e->stats.block1_evicted_owner++;
        coap__bstate_free(
            e, COAP_CONTAINER(g->states.next, coap_bstate_t, grp_link[COAP_BGROUP_OWNER]));
    }
    if (e->cfg.block1_per_addr && group_key(ps, COAP_BGROUP_ADDR, owner, &k) &&
        (g = group_find(e, &k, &h)) && g->n >= e->cfg.block1_per_addr) {
        /* Many ports of one address: refuse the new one rather than evict, so one address
         * cannot push out another's transfers; it may retry when its oldest expires. */
        e->stats.block1_refused_addr++;
        *retry = retry_s(e,
                         COAP_CONTAINER(g->states.next, coap_bstate_t, grp_link[COAP_BGROUP_ADDR]));
        return COAP_SERVICE_UNAVAILABLE;
    }
    if (e->block_mem + len > e->cfg.block_mem_cap) {
        e->stats.block1_refused_mem++;
        *retry = coap__block_retry_s(e);
        return COAP_SERVICE_UNAVAILABLE;
    }
    return 0;
}

coap_bstate_t *coap__bstate_put(coap_peer_t *ps, coap_link_t *list, const uint8_t *key,
                                size_t key_len, uint8_t *body, size_t len)
{
    coap_engine_t *e = ps->e;
    make_room(ps, list, key, key_len);
    if (e->block_mem + len > e->cfg.block_mem_cap) {
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
    coap_list_push(&e->block_lru, &b->lru_link);
    return b;
}

void coap__bstate_expire(coap_peer_t *ps, int64_t now)
{
    coap_link_t *lists[2] = {&ps->block1, &ps->block2};
    for (size_t i = 0; i < 2; i++) {
        for (coap_link_t *l = lists[i]->next, *n; l != lists[i]; l = n) {
            n = l->next;
            coap_bstate_t *b = COAP_CONTAINER(l, coap_bstate_t, link);
            if (b->expires_ms <= now) {
                if (i == 0)
                    ps->e->stats.block1_expired++;
                coap__bstate_free(ps->e, b);
            }
        }
    }
}
