/* session.c — per-peer state: the peer's lifetime, deduplication by (peer, MID), outgoing
 * CONs with RFC 7252 §4.2 retransmission, server MIDs, and the housekeeping timer.
 *
 * Invariant: a coap_peer_t exists only while it holds something (see coap_int.h) and holds
 * exactly one transport reference for its whole life. Dedup entries have one lifetime for
 * all, so the engine-wide list in arrival order is also expiry order: expiry and the
 * max_dedup_entries cap both pop from its head, never search.
 *
 * Below observe.c and engine.c: closing a peer here drops only what this layer and bstate.c
 * own. Observers and exchanges are ended first by engine.c (coap__peer_drop), which is the
 * only way a peer closes, and none can be added to a closing peer. A CON's completion goes
 * to its done callback (observe.c sets one on notifications), not to a file above.
 */
#include "coap/coap_int.h"

#include "core/err.h"
#include "core/hash.h"
#include "core/xmalloc.h"

#include <stdlib.h>
#include <string.h>

coap_peer_t *coap__peer_get(coap_engine_t *e, transport_peer_t *tp)
{
    coap_peer_t *ps = tp->engine_state;
    if (ps)
        return ps;
    ps = xcalloc(1, sizeof *ps);
    ps->e = e;
    ps->tp = tp;
    transport_peer_ref(tp);
    tp->engine_state = ps;
    coap_list_init(&ps->dedup);
    coap_list_init(&ps->cons);
    coap_list_init(&ps->observers);
    coap_list_init(&ps->exchanges);
    coap_list_init(&ps->block1);
    coap_list_init(&ps->block2);
    coap_list_push(&e->peers, &ps->link);
    coap__gc_arm(e);
    return ps;
}

static void peer_free(coap_peer_t *ps)
{
    coap_list_del(&ps->link);
    ps->tp->engine_state = NULL;
    transport_peer_t *tp = ps->tp;
    free(ps);
    transport_peer_unref(tp);
}

static void drop_contents(coap_peer_t *ps);

/* While an input or callback holds the peer (hold > 0) it is never freed; a close that
 * happens meanwhile (closing) is completed by the last release. */
void coap__peer_maybe_release(coap_peer_t *ps)
{
    if (ps->hold > 0)
        return;
    if (ps->closing) {
        ps->hold++;
        drop_contents(ps); /* whatever was added while the close waited */
        ps->hold--;
        /* Observers and exchanges went in coap__peer_drop; a closing peer gets no new ones
         * (coap_exchange_observe, activation and exchange creation all check). */
        ASSERT(coap_list_empty(&ps->observers) && coap_list_empty(&ps->exchanges));
        peer_free(ps);
        return;
    }
    if (!coap_list_empty(&ps->dedup) || !coap_list_empty(&ps->cons) ||
        !coap_list_empty(&ps->observers) || !coap_list_empty(&ps->exchanges) ||
        !coap_list_empty(&ps->block1) || !coap_list_empty(&ps->block2))
        return;
    peer_free(ps);
}

/* The MID is the peer's choice: keyed hash (user-space pointers leave the top 16 bits free). */
static uint64_t dedup_hash(const coap_peer_t *ps, uint16_t mid)
{
    return hash_u64((uint64_t)(uintptr_t)ps ^ ((uint64_t)mid << 48));
}

typedef struct dedup_key {
    const coap_peer_t *ps;
    uint16_t mid;
} dedup_key_t;

static bool dedup_is(const htab_link_t *l, const void *key)
{
    const coap_dedup_t *d = HTAB_ENTRY(l, coap_dedup_t, hash_link);
    const dedup_key_t *k = key;
    return d->mid == k->mid && d->ps == k->ps;
}

static void dedup_free(coap_engine_t *e, coap_dedup_t *d)
{
    coap_list_del(&d->peer_link);
    htab_remove(&e->dedup_by_mid, &d->hash_link);
    coap_list_del(&d->engine_link);
    if (d->x)
        d->x->d = NULL;
    if (d->resp != d->resp_inline)
        free(d->resp);
    e->n_dedup--;
    if (e->n_spare_d >= COAP_SPARE_DEDUPS) {
        free(d);
        return;
    }
    d->x = (struct coap_exchange *)(void *)e->spare_d; /* the spare list's link */
    e->spare_d = d;
    e->n_spare_d++;
}

void coap__spares_free(coap_engine_t *e)
{
    while (e->spare_d) {
        coap_dedup_t *d = e->spare_d;
        e->spare_d = (coap_dedup_t *)(void *)d->x;
        free(d);
    }
    while (e->spare_x) {
        coap_exchange_t *x = e->spare_x;
        e->spare_x = x->next_spare;
        free(x);
    }
    e->n_spare_d = e->n_spare_x = 0;
}

/* Drops what this layer and bstate.c hold for the peer. coap__con_free may report an RPC
 * cookie as undelivered (on_notify_result), which may call back into the engine; hold keeps
 * ps alive meanwhile. */
static void drop_contents(coap_peer_t *ps)
{
    coap_engine_t *e = ps->e;
    while (!coap_list_empty(&ps->cons))
        coap__con_free(COAP_CONTAINER(ps->cons.next, coap_con_t, link));
    while (!coap_list_empty(&ps->dedup))
        dedup_free(e, COAP_CONTAINER(ps->dedup.next, coap_dedup_t, peer_link));
    while (!coap_list_empty(&ps->block1))
        coap__bstate_free(e, COAP_CONTAINER(ps->block1.next, coap_bstate_t, link));
    while (!coap_list_empty(&ps->block2))
        coap__bstate_free(e, COAP_CONTAINER(ps->block2.next, coap_bstate_t, link));
}

/* Closing from inside a callback is safe: if the peer is held (an input or a callback is
 * running on it), the free happens at the last release (redis callHandler idea). */
void coap__peer_close(coap_peer_t *ps)
{
    ps->closing = true;
    ps->hold++;
    drop_contents(ps);
    ps->hold--;
    coap__peer_maybe_release(ps);
}

/* RFC 7252 §4.4 wants MIDs that do not repeat within EXCHANGE_LIFETIME per peer; a single
 * engine-wide counter from a random start gives that. Values stay below 65000 because
 * Californium reserves 65000-65535 for multicast and clients built on it drop ACKs there
 * (spec §1.3, ThingsBoard PR #14748). */
uint16_t coap__next_mid(coap_engine_t *e)
{
    uint16_t mid = e->next_mid;
    e->next_mid = (uint16_t)((mid + 1u) % 65000u);
    return mid;
}

/* xorshift64*: the backoff jitter and MID start need spread, not secrecy. */
double coap__rand01(coap_engine_t *e)
{
    e->rng ^= e->rng >> 12;
    e->rng ^= e->rng << 25;
    e->rng ^= e->rng >> 27;
    uint64_t v = e->rng * 2685821657736338717ull;
    return (double)(v >> 11) / 9007199254740992.0;
}

void coap__send(coap_peer_t *ps, const uint8_t *p, size_t len)
{
    (void)transport_peer_send(ps->tp, p, len); /* a failed send is a lost datagram */
}

void coap__send_empty(coap_peer_t *ps, uint8_t type, uint16_t mid)
{
    uint8_t b[4] = {(uint8_t)(0x40u | (unsigned)(type << 4)), 0, (uint8_t)(mid >> 8),
                    (uint8_t)(mid & 0xffu)};
    coap__send(ps, b, sizeof b);
}

coap_dedup_t *coap__dedup_find(coap_peer_t *ps, uint16_t mid, uint64_t *hash)
{
    dedup_key_t k = {ps, mid};
    *hash = dedup_hash(ps, mid);
    htab_link_t *l = htab_find(&ps->e->dedup_by_mid, *hash, dedup_is, &k);
    return l ? HTAB_ENTRY(l, coap_dedup_t, hash_link) : NULL;
}

coap_dedup_t *coap__dedup_add(coap_peer_t *ps, uint16_t mid, bool con, uint64_t hash)
{
    coap_engine_t *e = ps->e;
    /* The cap evicts the oldest entry of any peer; a duplicate of it would run again, which
     * is the price of bounded memory under a flood of fresh MIDs. */
    while (e->n_dedup >= e->cfg.max_dedup_entries && !coap_list_empty(&e->dedup)) {
        coap_dedup_t *old = COAP_CONTAINER(e->dedup.next, coap_dedup_t, engine_link);
        coap_peer_t *ops = old->ps;
        dedup_free(e, old);
        e->stats.dedup_evicted++;
        if (ops != ps)
            coap__peer_maybe_release(ops);
    }
    coap_dedup_t *d = e->spare_d;
    if (d) {
        e->spare_d = (coap_dedup_t *)(void *)d->x;
        e->n_spare_d--;
        memset(d, 0, sizeof *d);
    } else {
        d = xcalloc(1, sizeof *d);
    }
    d->ps = ps;
    d->mid = mid;
    d->con = con;
    d->expires_ms = loop_now_ms(e->loop) + e->cfg.exchange_lifetime_ms;
    coap_list_push(&ps->dedup, &d->peer_link);
    coap_list_push(&e->dedup, &d->engine_link);
    htab_insert(&e->dedup_by_mid, &d->hash_link, hash);
    e->n_dedup++;
    return d;
}

void coap__dedup_expire(coap_engine_t *e, int64_t now)
{
    while (!coap_list_empty(&e->dedup)) {
        coap_dedup_t *d = COAP_CONTAINER(e->dedup.next, coap_dedup_t, engine_link);
        if (d->expires_ms > now)
            break;
        coap_peer_t *ps = d->ps;
        dedup_free(e, d);
        coap__peer_maybe_release(ps);
    }
}

static void con_timer_cb(loop_t *loop, void *arg)
{
    coap_con_t *c = arg;
    coap_peer_t *ps = c->ps;
    coap_engine_t *e = ps->e;
    if (c->retries < e->cfg.max_retransmit) {
        c->retries++;
        c->timeout_ms *= 2;
        e->stats.retransmissions++;
        coap__send(ps, c->buf, c->len);
        loop_timer_arm(loop, &c->timer, c->timeout_ms);
        return;
    }
    e->stats.con_timeouts++;
    ps->hold++;
    if (c->done)
        c->done(c, false, false);
    else
        coap__con_free(c);
    ps->hold--;
    coap__peer_maybe_release(ps);
}

/* Takes ownership of buf. RFC 7252 §4.2: the first timeout is random in
 * [ACK_TIMEOUT, ACK_TIMEOUT * ACK_RANDOM_FACTOR] and doubles with each retransmission. */
coap_con_t *coap__con_send(coap_peer_t *ps, uint16_t mid, uint8_t *buf, size_t len)
{
    coap_engine_t *e = ps->e;
    coap_con_t *c = xcalloc(1, sizeof *c);
    c->ps = ps;
    c->mid = mid;
    c->buf = buf;
    c->len = len;
    double f = 1.0 + coap__rand01(e) * (e->cfg.ack_random_factor - 1.0);
    c->timeout_ms = (int64_t)((double)e->cfg.ack_timeout_ms * f);
    if (c->timeout_ms < 1)
        c->timeout_ms = 1;
    loop_timer_init(&c->timer, con_timer_cb, c);
    coap_list_push(&ps->cons, &c->link);
    ps->n_pending++;
    coap__send(ps, buf, len);
    loop_timer_arm(e->loop, &c->timer, c->timeout_ms);
    return c;
}

void coap__con_free(coap_con_t *c)
{
    loop_timer_cancel(c->ps->e->loop, &c->timer);
    coap_list_del(&c->link);
    c->ps->n_pending--;
    if (c->obs) {
        c->obs->inflight = NULL;
        if (c->cookie && c->ps->e->ops.on_notify_result)
            c->ps->e->ops.on_notify_result(c->ps->e->app, c->obs->data, c->cookie, false);
    }
    free(c->buf);
    free(c);
}

bool coap__con_in_flight(const coap_peer_t *ps, uint16_t mid)
{
    for (const coap_link_t *l = ps->cons.next; l != &ps->cons; l = l->next)
        if (COAP_CONTAINER(l, const coap_con_t, link)->mid == mid)
            return true;
    return false;
}

/* An ACK or RST for one of our CONs (RFC 7252 §4.2, §4.3). Unknown MIDs are ignored: they
 * may be late duplicates, or forged (RFC 7252 §11.4). */
bool coap__con_match(coap_peer_t *ps, uint16_t mid, bool reset)
{
    for (coap_link_t *l = ps->cons.next; l != &ps->cons; l = l->next) {
        coap_con_t *c = COAP_CONTAINER(l, coap_con_t, link);
        if (c->mid != mid)
            continue;
        if (reset)
            ps->e->stats.resets++;
        if (c->done)
            c->done(c, !reset, reset);
        else
            coap__con_free(c);
        return true;
    }
    return false;
}

static void gc_cb(loop_t *loop, void *arg)
{
    coap_engine_t *e = arg;
    int64_t now = loop_now_ms(loop);
    coap__dedup_expire(e, now);
    for (coap_link_t *l = e->peers.next, *n; l != &e->peers; l = n) {
        n = l->next;
        coap_peer_t *ps = COAP_CONTAINER(l, coap_peer_t, link);
        coap__bstate_expire(ps, now);
        coap__peer_maybe_release(ps);
    }
    coap__gc_arm(e);
}

/* Housekeeping runs while any peer has state; the period follows exchange_lifetime_ms so
 * short lifetimes (tests) expire promptly, bounded to [10 ms, 1 s]. */
void coap__gc_arm(coap_engine_t *e)
{
    if (coap_list_empty(&e->peers)) {
        loop_timer_cancel(e->loop, &e->gc_timer);
        return;
    }
    if (loop_timer_armed(&e->gc_timer))
        return;
    if (e->gc_timer.cb == NULL)
        loop_timer_init(&e->gc_timer, gc_cb, e);
    int64_t period = e->cfg.exchange_lifetime_ms / 4;
    period = period < 10 ? 10 : (period > 1000 ? 1000 : period);
    loop_timer_arm(e->loop, &e->gc_timer, period);
}

void coap__engine_validate(const coap_engine_t *e)
{
    size_t n_dedup = 0, block_mem = 0, n_states = 0, grouped[2] = {0, 0};
    uint64_t observers = 0;
    size_t registered = 0; /* live relations and pending registrations */
    for (const coap_link_t *l = e->dedup.next; l != &e->dedup; l = l->next)
        n_dedup++;
    ASSERT(n_dedup == e->n_dedup);
    for (const coap_link_t *l = e->peers.next; l != &e->peers; l = l->next) {
        const coap_peer_t *ps = COAP_CONTAINER(l, coap_peer_t, link);
        ASSERT(ps->tp->engine_state == ps && ps->tp->refcnt >= 1);
        size_t pending = 0, n_obs = 0;
        for (const coap_link_t *c = ps->cons.next; c != &ps->cons; c = c->next)
            pending++;
        for (const coap_link_t *o = ps->observers.next; o != &ps->observers; o = o->next) {
            const coap_observer_t *obs = COAP_CONTAINER(o, coap_observer_t, link);
            ASSERT(obs->live && obs->ps == ps);
            for (const coap_link_t *q = obs->queue.next; q != &obs->queue; q = q->next)
                pending++;
            n_obs++;
        }
        ASSERT(pending == ps->n_pending);
        ASSERT(n_obs <= ps->n_observers); /* n_observers also counts pending registrations */
        observers += n_obs;
        registered += ps->n_observers;
        const coap_link_t *lists[2] = {&ps->block1, &ps->block2};
        for (size_t i = 0; i < 2; i++) {
            for (const coap_link_t *b = lists[i]->next; b != lists[i]; b = b->next) {
                const coap_bstate_t *st = COAP_CONTAINER(b, coap_bstate_t, link);
                block_mem += st->len;
                n_states++;
                for (int k = 0; k < 2; k++) {
                    ASSERT(i == 0 || !st->grp[k]); /* only Block1 entries are in groups */
                    if (st->grp[k])
                        grouped[k]++;
                }
            }
        }
    }
    ASSERT(block_mem == e->block_mem);
    size_t n_lru = 0, in_groups[2] = {0, 0};
    for (const coap_link_t *l = e->block_lru.next; l != &e->block_lru; l = l->next)
        n_lru++;
    ASSERT(n_lru == n_states);
    htab_iter_t it;
    for (htab_link_t *l = htab_iter_first(&it, &e->bgroups); l; l = htab_iter_next(&it)) {
        const coap_bgroup_t *g = HTAB_ENTRY(l, coap_bgroup_t, link);
        size_t n = 0;
        for (const coap_link_t *s = g->states.next; s != &g->states; s = s->next)
            n++;
        ASSERT(n == g->n && n > 0 && g->key_len > 0 && g->key[0] <= COAP_BGROUP_OWNER);
        in_groups[g->key[0]] += n;
    }
    ASSERT(in_groups[0] == grouped[0] && in_groups[1] == grouped[1]);
    ASSERT(observers == e->stats.observers);
    size_t in_addrs = 0; /* relations counted per address (none when that cap is off) */
    for (htab_link_t *l = htab_iter_first(&it, &e->obs_addrs); l; l = htab_iter_next(&it)) {
        const coap_obs_addr_t *a = HTAB_ENTRY(l, coap_obs_addr_t, link);
        ASSERT(a->n > 0 && a->key_len > 0);
        in_addrs += a->n;
    }
    ASSERT(in_addrs <= registered);
}
