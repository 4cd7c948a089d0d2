/* observe.c — RFC 7641 relations: registration, notifications, deregistration, ending.
 *
 * Invariant: a live relation has at most one CON notification in flight; newer ones wait in
 * its queue and go out in order. RFC 7641 §4.5 allows replacing the in-flight state with the
 * newest, but here every notification may be an RPC that matters, so none is dropped; the
 * per-peer cap (max_pending_con_per_peer) bounds the queue instead.
 */
#include "coap/coap_int.h"

#include "core/err.h"
#include "core/hash.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

coap_observer_t *coap__obs_find(coap_peer_t *ps, const uint8_t *token, size_t tkl)
{
    for (coap_link_t *l = ps->observers.next; l != &ps->observers; l = l->next) {
        coap_observer_t *o = COAP_CONTAINER(l, coap_observer_t, link);
        if (o->tkl == tkl && memcmp(o->token, token, tkl) == 0)
            return o;
    }
    return NULL;
}

/* ---- the per-address cap (cfg.observers_per_addr) ---------------------------------------
 * RFC 7641 §7: every relation costs the server state, and one host can open many source
 * ports, so relations are counted per address (IPv4, IPv6 /64) besides per peer. */

static bool addr_has_key(const htab_link_t *l, const void *k)
{
    const coap_obs_addr_t *a = HTAB_ENTRY(l, coap_obs_addr_t, link);
    const htab_bytes_t *key = k;
    return htab_bytes_equal(key, a->key, a->key_len);
}

/* Counts a new relation of ps in its address's group; false (nothing counted) when the
 * address is at the cap. *out is the group, or NULL when there is no cap or no key. */
static bool addr_join(coap_peer_t *ps, coap_obs_addr_t **out)
{
    coap_engine_t *e = ps->e;
    *out = NULL;
    uint8_t key[SOCKADDR_PREFIX_KEY_MAX];
    size_t n = e->cfg.observers_per_addr ? sockaddr_prefix_key(&ps->tp->addr, key) : 0;
    if (n == 0)
        return true;
    htab_bytes_t k = {key, n};
    uint64_t h = hash_bytes(key, n);
    htab_link_t *l = htab_find(&e->obs_addrs, h, addr_has_key, &k);
    coap_obs_addr_t *a = l ? HTAB_ENTRY(l, coap_obs_addr_t, link) : NULL;
    if (a && a->n >= e->cfg.observers_per_addr)
        return false;
    if (!a) {
        a = xcalloc(1, sizeof *a);
        memcpy(a->key, key, n);
        a->key_len = (uint8_t)n;
        htab_insert(&e->obs_addrs, &a->link, h);
    }
    a->n++;
    *out = a;
    return true;
}

static void addr_leave(coap_engine_t *e, coap_obs_addr_t *a)
{
    if (a && --a->n == 0) {
        htab_remove(&e->obs_addrs, &a->link);
        free(a);
    }
}

/* Room for one more relation on ps: counts it (peer and address) and gives its address
 * group, or counts the refusal and returns false. */
static bool obs_admit(coap_peer_t *ps, coap_obs_addr_t **addr)
{
    coap_engine_t *e = ps->e;
    if (ps->n_observers >= COAP_MAX_OBSERVERS_PER_PEER) {
        e->stats.observe_refused_peer++;
        return false;
    }
    if (!addr_join(ps, addr)) {
        e->stats.observe_refused_addr++;
        return false;
    }
    ps->n_observers++; /* counted from now so the caps also cover pending ones */
    return true;
}

coap_observer_t *coap_exchange_observe(coap_exchange_t *x, void *obs_data)
{
    if (!x->ps || x->ps->closing || x->method != COAP_GET || x->obs)
        return NULL;
    coap_obs_addr_t *addr;
    if (!obs_admit(x->ps, &addr))
        return NULL;
    coap_observer_t *o = xcalloc(1, sizeof *o);
    o->addr = addr;
    o->ps = x->ps;
    memcpy(o->token, x->token, x->tkl);
    o->tkl = x->tkl;
    o->con = x->con;
    o->req_len = x->req_len;
    o->data = obs_data;
    coap_list_init(&o->link);
    coap_list_init(&o->queue);
    if (x->key_len) {
        o->key = xmalloc(x->key_len);
        memcpy(o->key, x->key, x->key_len);
        o->key_len = x->key_len;
    }
    x->obs = o;
    return o;
}

static void drop_queue(coap_observer_t *o)
{
    coap_engine_t *e = o->ps->e;
    while (!coap_list_empty(&o->queue)) {
        coap_notif_t *n = COAP_CONTAINER(o->queue.next, coap_notif_t, link);
        coap_list_del(&n->link);
        o->ps->n_pending--;
        if (n->cookie && e->ops.on_notify_result)
            e->ops.on_notify_result(e->app, o->data, n->cookie, false);
        free(n->payload);
        free(n);
    }
}

/* Frees a relation that never went live (non-2.xx answer, orphaned exchange). */
void coap__obs_free_pending(coap_observer_t *obs)
{
    if (obs->ps) {
        obs->ps->n_observers--;
        addr_leave(obs->ps->e, obs->addr);
    }
    free(obs->key);
    free(obs);
}

void coap__obs_activate(coap_observer_t *obs)
{
    obs->live = true;
    obs->seq = 0;
    obs->last_con_ms = loop_now_ms(obs->ps->e->loop);
    coap_list_push(&obs->ps->observers, &obs->link);
    obs->ps->e->stats.observers++;
}

/* Ends a relation. live is cleared first so that anything the application does from the
 * callbacks below (notify, cancel) on this relation is a harmless no-op. */
void coap__obs_end(coap_observer_t *obs, coap_obs_end_t why)
{
    coap_peer_t *ps = obs->ps;
    coap_engine_t *e = ps->e;
    ps->hold++;
    obs->live = false;
    coap_list_del(&obs->link);
    e->stats.observers--;
    if (obs->inflight)
        coap__con_free(obs->inflight); /* reports its cookie as not acknowledged */
    drop_queue(obs);
    if (e->ops.on_observe_end)
        e->ops.on_observe_end(e->app, obs, obs->data, why);
    coap__obs_free_pending(obs);
    ps->hold--;
    coap__peer_maybe_release(ps);
}

static void pump(coap_observer_t *o);

/* The in-flight CON notification of c->obs was acknowledged, reset or given up (the done
 * callback of the coap_con_t, called by session.c). */
static void con_done(coap_con_t *c, bool acked, bool reset)
{
    coap_observer_t *o = c->obs;
    coap_peer_t *ps = c->ps;
    coap_engine_t *e = ps->e;
    void *cookie = c->cookie;
    void *data = o->data;
    c->cookie = NULL; /* reported here, not by con_free */
    coap__con_free(c);
    ps->hold++;
    if (acked) {
        /* Send the next queued one first: the callback may cancel the relation. */
        pump(o);
        if (cookie && e->ops.on_notify_result)
            e->ops.on_notify_result(e->app, data, cookie, true);
    } else {
        /* RFC 7641 §3.6 (RST) and §4.5 (CON never acknowledged) both end the relation. The
         * result is reported before on_observe_end, while the app's obs_data is still alive;
         * clearing live makes a cancel from inside that callback a no-op. */
        o->live = false;
        if (cookie && e->ops.on_notify_result)
            e->ops.on_notify_result(e->app, data, cookie, false);
        coap__obs_end(o, reset ? COAP_OBS_END_RESET : COAP_OBS_END_TIMEOUT);
    }
    ps->hold--;
    coap__peer_maybe_release(ps);
}

static void send_one(coap_observer_t *o, coap_notif_t *n)
{
    coap_peer_t *ps = o->ps;
    coap_engine_t *e = ps->e;
    int64_t now = loop_now_ms(e->loop);
    /* RFC 7641 §4.5: mostly-NON relations still send a CON now and then to learn whether the
     * client is alive (libcoap COAP_OBS_MAX_NON), and at least every 24 hours. */
    bool con = o->con || o->non_count >= e->cfg.max_non_notifications ||
               now - o->last_con_ms >= COAP_OBS_CON_EVERY_MS;
    o->seq = (o->seq + 1) & 0xffffffu;
    coap_exchange_t fake = {.e = e, .ps = ps, .method = COAP_GET, .tkl = o->tkl};
    memcpy(fake.token, o->token, o->tkl);
    fake.key = o->key;
    fake.key_len = o->key_len;
    /* RFC 7641 §7 to an address that has not proven itself (amp.c): each notification is at
     * most amp_factor times the registration (block 0 only when larger; the client fetches
     * the rest, each block bounded by its own request), a CON every max_non_notifications
     * with at most one unacknowledged (pump waits for it; unanswered, the relation ends), and
     * that CON's random MID makes its ACK a proof. NON relations stay NON in between: a
     * power-saving device registers NON so that ACKs do not count as uplinks that wake it. */
    fake.req_len = o->req_len;
    fake.amp_budget = coap__amp_budget(ps, o->req_len ? o->req_len : 4u + o->tkl);
    uint16_t mid = con ? coap__amp_con_mid(ps) : coap__next_mid(e);
    uint8_t *buf = NULL;
    ssize_t len = coap__build(&fake, &buf, 0, con ? COAP_TYPE_CON : COAP_TYPE_NON, mid, n->code,
                              n->cf, n->payload, n->len, true, o->seq);
    e->stats.notifications++;
    if (len < 0) {
        free(buf);
        ps->n_pending--;
        if (n->cookie && e->ops.on_notify_result)
            e->ops.on_notify_result(e->app, o->data, n->cookie, false);
        return;
    }
    if (con) {
        o->non_count = 0;
        o->last_con_ms = now;
        ps->n_pending--; /* coap__con_send counts it again */
        coap_con_t *c = coap__con_send(ps, mid, buf, (size_t)len);
        c->done = con_done;
        c->obs = o;
        c->cookie = n->cookie;
        o->inflight = c;
    } else {
        o->non_count++;
        o->non_mid[o->non_next] = mid;
        o->non_at[o->non_next] = now ? now : 1;
        o->non_next = (uint8_t)((o->non_next + 1) % COAP_OBS_NON_MIDS);
        ps->n_pending--;
        coap__send(ps, buf, (size_t)len);
        free(buf);
        if (n->cookie && e->ops.on_notify_result)
            e->ops.on_notify_result(e->app, o->data, n->cookie, true);
    }
}

bool coap__obs_reset_non(coap_peer_t *ps, uint16_t mid)
{
    coap_engine_t *e = ps->e;
    /* Only recent ones: MIDs are reused after 65536 messages of the engine. */
    int64_t since = loop_now_ms(e->loop) - e->cfg.exchange_lifetime_ms;
    for (coap_link_t *l = ps->observers.next; l != &ps->observers; l = l->next) {
        coap_observer_t *o = COAP_CONTAINER(l, coap_observer_t, link);
        for (int i = 0; i < COAP_OBS_NON_MIDS; i++) {
            if (o->non_at[i] && o->non_at[i] >= since && o->non_mid[i] == mid) {
                coap__obs_end(o, COAP_OBS_END_RESET);
                return true;
            }
        }
    }
    return false;
}

static void pump(coap_observer_t *o)
{
    while (o->live && !o->inflight && !coap_list_empty(&o->queue)) {
        coap_notif_t *n = COAP_CONTAINER(o->queue.next, coap_notif_t, link);
        coap_list_del(&n->link);
        send_one(o, n);
        free(n->payload);
        free(n);
    }
}

int coap_observer_notify(coap_observer_t *obs, uint8_t code, int content_format,
                         const uint8_t *payload, size_t len, void *cookie)
{
    if (!obs->live || obs->ps->closing)
        return -EAGAIN;
    coap_peer_t *ps = obs->ps;
    if (ps->n_pending >= ps->e->cfg.max_pending_con_per_peer)
        return -EAGAIN;
    coap_notif_t *n = xcalloc(1, sizeof *n);
    n->code = code;
    n->cf = content_format;
    if (len) {
        n->payload = xmalloc(len);
        memcpy(n->payload, payload, len);
    }
    n->len = len;
    n->cookie = cookie;
    coap_list_push(&obs->queue, &n->link);
    ps->n_pending++;
    ps->hold++;
    pump(obs);
    ps->hold--;
    coap__peer_maybe_release(ps);
    return 0;
}

void coap_observer_cancel(coap_observer_t *obs, uint8_t code)
{
    coap_peer_t *ps = obs->ps;
    coap_engine_t *e = ps->e;
    if (!obs->live)
        return;
    ps->hold++;
    /* RFC 7641 §3.2: a response without Observe ends the relation at the client. */
    coap_exchange_t fake = {.e = e, .ps = ps, .method = COAP_GET, .tkl = obs->tkl};
    memcpy(fake.token, obs->token, obs->tkl);
    fake.amp_budget = coap__amp_budget(ps, obs->req_len ? obs->req_len : 4u + obs->tkl);
    uint16_t mid = obs->con ? coap__amp_con_mid(ps) : coap__next_mid(e);
    uint8_t *buf = NULL;
    ssize_t len = coap__build(&fake, &buf, 0, obs->con ? COAP_TYPE_CON : COAP_TYPE_NON, mid, code,
                              COAP_CF_NONE, NULL, 0, false, 0);
    if (len >= 0 && obs->con && !ps->closing) {
        coap__con_send(ps, mid, buf, (size_t)len);
    } else {
        if (len >= 0)
            coap__send(ps, buf, (size_t)len);
        free(buf);
    }
    coap__obs_end(obs, COAP_OBS_END_CANCELLED);
    ps->hold--;
    coap__peer_maybe_release(ps);
}

transport_peer_t *coap_observer_peer(const coap_observer_t *obs)
{
    return obs->ps->tp;
}

/* ---- relations across a restart ---------------------------------------------------------
 *
 * Bytes: version u8 (1) | count u8, then per relation: token length u8 | token | flags u8
 * (bit 0: CON registration) | last Observe number u32 | resource key length u16 | key |
 * application description length u8 | description. Written and read by this file only; the
 * transport stores it opaquely.
 */
enum { OBS_SAVE_VERSION = 1, OBS_APP_MAX = 255 };
/* Observe numbers restart this far above the last one sent: a notification that was on its
 * way when the server stopped can never look newer than the first one after the restart. */
enum { OBS_SEQ_SKIP = 16 };

size_t coap__obs_save(coap_peer_t *ps, uint8_t *out, size_t cap)
{
    coap_engine_t *e = ps->e;
    if (cap < 2)
        return 0;
    size_t len = 2;
    unsigned n = 0;
    uint8_t app[OBS_APP_MAX];
    for (coap_link_t *l = ps->observers.next; l != &ps->observers && n < 255; l = l->next) {
        coap_observer_t *o = COAP_CONTAINER(l, coap_observer_t, link);
        if (!o->live)
            continue;
        size_t alen = e->ops.on_observer_save(e->app, o, o->data, app, sizeof app);
        if (alen == 0 || alen > sizeof app)
            continue;
        size_t need = (size_t)o->tkl + 9 + o->key_len + alen;
        if (o->key_len > 0xffff || len + need > cap)
            continue;
        uint8_t *p = out + len;
        *p++ = o->tkl;
        memcpy(p, o->token, o->tkl);
        p += o->tkl;
        *p++ = o->con ? 1 : 0;
        *p++ = (uint8_t)(o->seq >> 24);
        *p++ = (uint8_t)(o->seq >> 16);
        *p++ = (uint8_t)(o->seq >> 8);
        *p++ = (uint8_t)o->seq;
        *p++ = (uint8_t)(o->key_len >> 8);
        *p++ = (uint8_t)o->key_len;
        if (o->key_len)
            memcpy(p, o->key, o->key_len);
        p += o->key_len;
        *p++ = (uint8_t)alen;
        memcpy(p, app, alen);
        len += need;
        n++;
    }
    if (n == 0)
        return 0;
    out[0] = OBS_SAVE_VERSION;
    out[1] = (uint8_t)n;
    return len;
}

void coap__obs_restore(coap_engine_t *e, transport_peer_t *tp, const uint8_t *p, size_t len)
{
    if (len < 2 || p[0] != OBS_SAVE_VERSION)
        return;
    unsigned n = p[1];
    size_t off = 2;
    coap_peer_t *ps = coap__peer_get(e, tp);
    if (!ps)
        return;
    ps->hold++;
    for (unsigned i = 0; i < n; i++) {
        if (off + 1 > len)
            break;
        size_t tkl = p[off];
        if (tkl > COAP_TOKEN_MAX || off + 1 + tkl + 1 + 4 + 2 > len)
            break;
        const uint8_t *token = p + off + 1;
        off += 1 + tkl;
        bool con = p[off] & 1;
        uint32_t seq = (uint32_t)p[off + 1] << 24 | (uint32_t)p[off + 2] << 16 |
                       (uint32_t)p[off + 3] << 8 | p[off + 4];
        size_t klen = (size_t)p[off + 5] << 8 | p[off + 6];
        off += 7;
        if (off + klen + 1 > len)
            break;
        const uint8_t *key = p + off;
        off += klen;
        size_t alen = p[off++];
        if (off + alen > len)
            break;
        const uint8_t *app = p + off;
        off += alen;
        coap_obs_addr_t *addr;
        if (ps->closing || coap__obs_find(ps, token, tkl) || !obs_admit(ps, &addr))
            continue;
        coap_observer_t *o = xcalloc(1, sizeof *o);
        o->ps = ps;
        o->addr = addr;
        memcpy(o->token, token, tkl);
        o->tkl = (uint8_t)tkl;
        o->con = con;
        coap_list_init(&o->link);
        coap_list_init(&o->queue);
        if (klen) {
            o->key = xmalloc(klen);
            memcpy(o->key, key, klen);
            o->key_len = klen;
        }
        o->data = e->ops.on_observer_restore(e->app, o, app, alen);
        if (!o->data) {
            coap__obs_free_pending(o);
            continue;
        }
        coap__obs_activate(o);
        o->seq = (seq + OBS_SEQ_SKIP) & 0xffffff; /* the Observe option holds 24 bits */
    }
    ps->hold--;
    coap__peer_maybe_release(ps);
}
