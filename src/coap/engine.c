/* engine.c — the stage order for an incoming datagram, the request view, and exchanges.
 *
 * Stages, in this fixed order (Californium's CoapUdpStack is the model): parse -> ACK/RST
 * matching and ping -> dedup by (peer, MID) -> option checks (4.02, 5.05, 4.00) -> Observe
 * deregistration/replacement -> admission (ops.admit) -> Block1 reassembly -> Block2
 * follow-ups from the cache -> ops.on_request. Each stage either answers the request itself
 * or passes it on.
 *
 * Invariant: the handler runs at most once per (peer, MID) within exchange_lifetime_ms (as
 * long as the dedup cap is not exceeded), and every exchange handed out is freed exactly once,
 * by coap_exchange_respond(), whether or not its peer or engine still exists.
 */
#include "coap/coap_int.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/random.h>

void coap_engine_cfg_default(coap_engine_cfg_t *cfg)
{
    *cfg = (coap_engine_cfg_t){
        .piggyback_ms = 500,
        .ack_timeout_ms = 2000,
        .ack_random_factor = 1.5,
        .max_retransmit = 4,
        .exchange_lifetime_ms = 247000,
        .max_body = 262144,
        .block_size = 1024,
        .max_non_notifications = 5,
        .max_dedup_entries = 100000,
        .max_pending_con_per_peer = 64,
        .observers_per_addr = 0, /* off: see docs/operations.md "Limits" */
        .block1_per_addr = 16,
        .block1_per_owner = 4,
        .block_mem_cap = COAP_BLOCK_MEM_CAP,
        .block_lifetime_ms = 0,
        .amp_factor = 3,
        .amp_verified_max = 10000,
        .amp_verified_ms = 600000,
    };
}

coap_engine_t *coap_engine_new(loop_t *loop, const coap_engine_cfg_t *cfg,
                               const coap_engine_ops_t *ops, void *app)
{
    coap_engine_t *e = xcalloc(1, sizeof *e);
    e->loop = loop;
    e->cfg = *cfg;
    /* Clamp values that would break invariants rather than fail: config validation proper
     * belongs to the caller. */
    if (e->cfg.block_size < 16)
        e->cfg.block_size = 16;
    if (e->cfg.block_size > 1024)
        e->cfg.block_size = 1024;
    if (e->cfg.ack_random_factor < 1.0)
        e->cfg.ack_random_factor = 1.0;
    if (e->cfg.max_retransmit < 0)
        e->cfg.max_retransmit = 0;
    if (e->cfg.max_dedup_entries < 1)
        e->cfg.max_dedup_entries = 1;
    if (e->cfg.max_pending_con_per_peer < 1)
        e->cfg.max_pending_con_per_peer = 1;
    if (e->cfg.exchange_lifetime_ms < 1)
        e->cfg.exchange_lifetime_ms = 1;
    e->ops = *ops;
    e->app = app;
    coap_list_init(&e->peers);
    coap_list_init(&e->dedup);
    coap_list_init(&e->block_lru);
    htab_init(&e->bgroups, 0);
    htab_init(&e->amp_addrs, 0);
    coap_list_init(&e->amp_lru);
    htab_init(&e->obs_addrs, 0);
    htab_init(&e->dedup_by_mid, e->cfg.max_dedup_entries < COAP_DEDUP_SLOTS_MAX
                                    ? e->cfg.max_dedup_entries
                                    : COAP_DEDUP_SLOTS_MAX);
    if (getrandom(&e->rng, sizeof e->rng, GRND_NONBLOCK) != (ssize_t)sizeof e->rng)
        e->rng = (uint64_t)clock_mono_ms() * 0x9e3779b97f4a7c15ull;
    if (e->rng == 0)
        e->rng = 0x2545f4914f6cdd1dull;
    e->next_mid = (uint16_t)(e->rng % 65000u);
    loop_timer_init(&e->gc_timer, NULL, NULL);
    return e;
}

void coap_engine_free(coap_engine_t *e)
{
    if (!e)
        return;
    while (!coap_list_empty(&e->peers))
        coap__peer_drop(COAP_CONTAINER(e->peers.next, coap_peer_t, link));
    loop_timer_cancel(e->loop, &e->gc_timer);
    coap__spares_free(e);
    htab_fini(&e->dedup_by_mid);
    htab_fini(&e->bgroups);   /* empty: every peer's state went with it */
    htab_fini(&e->obs_addrs); /* empty: every observer went with its peer */
    coap__amp_fini(e);
    free(e);
}

/* Ends everything the peer holds, then frees it once no input or callback holds it. The
 * state above session.c goes first (observers: the application hears PEER_CLOSED; exchanges:
 * orphaned, so a later answer goes nowhere), with closing set so that nothing is added
 * meanwhile; then session.c drops the rest. */
void coap__peer_drop(coap_peer_t *ps)
{
    ps->closing = true;
    ps->hold++;
    while (!coap_list_empty(&ps->observers))
        coap__obs_end(COAP_CONTAINER(ps->observers.next, coap_observer_t, link),
                      COAP_OBS_END_PEER_CLOSED);
    while (!coap_list_empty(&ps->exchanges))
        coap__exchange_orphan(COAP_CONTAINER(ps->exchanges.next, coap_exchange_t, link));
    ps->hold--;
    coap__peer_close(ps);
}

void coap_engine_peer_closed(coap_engine_t *e, transport_peer_t *peer)
{
    coap_peer_t *ps = peer->engine_state;
    if (ps && ps->e == e)
        coap__peer_drop(ps);
}

static void sink_input(void *ctx, transport_peer_t *peer, const uint8_t *p, size_t len)
{
    coap_engine_input(ctx, peer, p, len);
}

static void sink_closed(void *ctx, transport_peer_t *peer)
{
    coap_engine_peer_closed(ctx, peer);
}

static size_t sink_save(void *ctx, transport_peer_t *peer, uint8_t *out, size_t cap)
{
    coap_engine_t *e = ctx;
    coap_peer_t *ps = peer->engine_state;
    if (!ps || ps->e != e || !e->ops.on_observer_save)
        return 0;
    return coap__obs_save(ps, out, cap);
}

static void sink_restored(void *ctx, transport_peer_t *peer, const uint8_t *blob, size_t len)
{
    coap_engine_t *e = ctx;
    if (len > 0 && e->ops.on_observer_restore)
        coap__obs_restore(e, peer, blob, len);
}

static void sink_oversize(void *ctx, transport_peer_t *peer, const uint8_t *p, size_t len,
                          size_t full_len)
{
    coap_engine_input_oversize(ctx, peer, p, len, full_len);
}

transport_sink_t coap_engine_sink(coap_engine_t *e)
{
    return (transport_sink_t){.input = sink_input,
                              .closed = sink_closed,
                              .save = sink_save,
                              .restored = sink_restored,
                              .oversize = sink_oversize,
                              .ctx = e};
}

void coap_engine_get_stats(const coap_engine_t *e, coap_engine_stats_t *out)
{
    *out = e->stats;
    out->block_mem = e->block_mem;
    out->amp_verified = htab_count(&e->amp_addrs);
    out->dedup_entries = e->n_dedup;
}

/* ---- exchanges ---- */

static void piggy_cb(loop_t *loop, void *arg)
{
    coap_exchange_t *x = arg;
    /* RFC 7252 §5.2.2: no answer yet, so acknowledge now and respond separately later. */
    x->acked = true;
    if (x->d)
        x->d->acked = true;
    coap__send_empty(x->ps, COAP_TYPE_ACK, x->mid);
}

/* The key goes into the exchange's inline buffer when it fits. */
static uint8_t *make_key(const coap_pdu_t *pdu, uint8_t *inline_buf, size_t inline_cap,
                         size_t *key_len)
{
    size_t n = 1;
    for (size_t i = 0; i < pdu->n_opts; i++) {
        uint16_t num = pdu->opts[i].num;
        if (num == COAP_OPT_URI_PATH || num == COAP_OPT_URI_QUERY)
            n += 3u + pdu->opts[i].len;
    }
    uint8_t *k = n <= inline_cap ? inline_buf : xmalloc(n);
    size_t o = 0;
    k[o++] = pdu->code;
    for (size_t i = 0; i < pdu->n_opts; i++) {
        uint16_t num = pdu->opts[i].num;
        if (num != COAP_OPT_URI_PATH && num != COAP_OPT_URI_QUERY)
            continue;
        size_t len;
        const uint8_t *v = coap_pdu_opt_value(pdu, i, &len);
        k[o++] = (uint8_t)num;
        k[o++] = (uint8_t)(len >> 8);
        k[o++] = (uint8_t)(len & 0xffu);
        memcpy(k + o, v, len);
        o += len;
    }
    *key_len = n;
    return k;
}

coap_exchange_t *coap__exchange_new(coap_peer_t *ps, const coap_pdu_t *pdu, coap_dedup_t *d)
{
    coap_engine_t *e = ps->e;
    coap_exchange_t *x = e->spare_x;
    if (x) {
        e->spare_x = x->next_spare;
        e->n_spare_x--;
        /* Everything but the inline key (make_key writes what it uses of it). */
        memset(x, 0, offsetof(coap_exchange_t, key_inline));
    } else {
        x = xcalloc(1, sizeof *x);
    }
    x->e = ps->e;
    x->ps = ps;
    x->d = d;
    d->x = x;
    x->method = pdu->code;
    x->con = pdu->type == COAP_TYPE_CON;
    x->mid = pdu->mid;
    x->tkl = pdu->tkl;
    memcpy(x->token, pdu->token, pdu->tkl);
    x->key = make_key(pdu, x->key_inline, sizeof x->key_inline, &x->key_len);
    coap_list_push(&ps->exchanges, &x->link);
    loop_timer_init(&x->piggy_timer, piggy_cb, x);
    if (x->con)
        loop_timer_arm(ps->e->loop, &x->piggy_timer, ps->e->cfg.piggyback_ms);
    return x;
}

void coap__exchange_free(coap_exchange_t *x)
{
    if (x->ps) {
        loop_timer_cancel(x->e->loop, &x->piggy_timer);
        coap_list_del(&x->link);
    }
    if (x->d)
        x->d->x = NULL;
    if (x->obs)
        coap__obs_free_pending(x->obs);
    if (x->key != x->key_inline)
        free(x->key);
    coap_engine_t *e = x->e; /* NULL when orphaned: the engine may be gone */
    if (!e || e->n_spare_x >= COAP_SPARE_EXCHANGES) {
        free(x);
        return;
    }
    x->next_spare = e->spare_x;
    e->spare_x = x;
    e->n_spare_x++;
}

/* The peer or engine is going away first: keep only what respond() needs to free x. */
void coap__exchange_orphan(coap_exchange_t *x)
{
    loop_timer_cancel(x->e->loop, &x->piggy_timer);
    coap_list_del(&x->link);
    if (x->d)
        x->d->x = NULL;
    x->d = NULL;
    if (x->obs)
        coap__obs_free_pending(x->obs);
    x->obs = NULL;
    x->ps = NULL;
    x->e = NULL;
}

void coap_exchange_respond(coap_exchange_t *x, uint8_t code, int content_format,
                           const uint8_t *payload, size_t len)
{
    coap_peer_t *ps = x->ps;
    if (!ps) {
        coap__exchange_free(x);
        return;
    }
    ps->hold++;
    loop_timer_cancel(x->e->loop, &x->piggy_timer);
    /* A registration becomes a relation with a successful answer (RFC 7641 §3.2). */
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
    coap__respond(x, code, content_format, payload, len, with_observe);
    coap__exchange_free(x);
    ps->hold--;
    coap__peer_maybe_release(ps);
}

void coap_exchange_block2(const coap_exchange_t *x, uint32_t *num, size_t *size, uint64_t *offset)
{
    size_t bsize = x->e ? x->e->cfg.block_size : 1024;
    uint8_t szx = coap_block_szx_for(bsize);
    int cap = coap__amp_ext_szx(x); /* an unverified address: blocks within its budget */
    if (cap >= 0 && cap < szx)
        szx = (uint8_t)cap;
    *num = 0;
    if (x->has_block2) {
        if (x->block2.szx < szx)
            szx = x->block2.szx;
        /* RFC 7959 §2.4: at a smaller size than the client asked for, the same offset is a
         * larger block number. */
        *num = x->block2.num << (x->block2.szx - szx);
    }
    *size = coap_block_size(szx);
    *offset = (uint64_t)*num * *size;
}

void coap_exchange_respond_block(coap_exchange_t *x, uint8_t code, int content_format,
                                 const uint8_t *payload, size_t len, uint64_t total,
                                 const uint8_t *etag, size_t etag_len)
{
    if ((code >> 5) == 2) {
        x->block_ext = true;
        x->block_total = total;
        if (etag && etag_len) {
            x->etag_len = (uint8_t)(etag_len > sizeof x->etag ? sizeof x->etag : etag_len);
            memcpy(x->etag, etag, x->etag_len);
        }
    }
    coap_exchange_respond(x, code, content_format, payload, len);
}

transport_peer_t *coap_exchange_peer(const coap_exchange_t *x)
{
    return x->ps ? x->ps->tp : NULL;
}

/* ---- input ---- */

/* A datagram that did not parse. RFC 7252 §4.2/§4.3: a CON with a format error is rejected
 * with RST; anything else is dropped silently. Version != 1 or < 4 bytes is not CoAP at all
 * and gets nothing (RFC 7252 §11.5, cross-protocol). A request that is well formed but has
 * more options than we can index is answered 4.00 instead: it is not a format error. */
static void input_malformed(coap_engine_t *e, transport_peer_t *tp, const coap_pdu_t *pdu,
                            size_t len, int rc)
{
    e->stats.malformed++;
    if (len < 4 || (pdu->buf[0] >> 6) != 1 || pdu->type != COAP_TYPE_CON)
        return;
    if (rc == -E2BIG && pdu->code >= 1 && pdu->code <= 31) {
        uint8_t b[4 + COAP_TOKEN_MAX];
        coap_builder_t bld;
        coap_builder_init(&bld, b, sizeof b, COAP_TYPE_ACK, COAP_BAD_REQUEST, pdu->mid,
                          pdu->token, pdu->tkl);
        ssize_t n = coap_builder_finish(&bld);
        if (n > 0)
            (void)transport_peer_send(tp, b, (size_t)n);
        return;
    }
    uint8_t b[4] = {0x70, 0, (uint8_t)(pdu->mid >> 8), (uint8_t)(pdu->mid & 0xffu)};
    (void)transport_peer_send(tp, b, sizeof b);
}

/* Options: unknown critical -> 4.02 (RFC 7252 §5.4.1), proxying -> 5.05 (§5.7.2). A known
 * critical option with an impossible length is treated like an unrecognized one (§5.4.3).
 * Returns 0 or the response code. */
static uint8_t check_options(const coap_pdu_t *pdu)
{
    for (size_t i = 0; i < pdu->n_opts; i++) {
        uint16_t num = pdu->opts[i].num;
        uint16_t len = pdu->opts[i].len;
        if (!coap_opt_is_known(num)) {
            if (coap_opt_is_critical(num))
                return COAP_BAD_OPTION;
            continue;
        }
        if (num == COAP_OPT_PROXY_URI || num == COAP_OPT_PROXY_SCHEME)
            return COAP_CODE(5, 5);
        if ((num == COAP_OPT_BLOCK1 || num == COAP_OPT_BLOCK2) && len > 3)
            return COAP_BAD_OPTION;
        if (num == COAP_OPT_ACCEPT && len > 2)
            return COAP_BAD_OPTION;
    }
    return 0;
}

static bool add_seg(coap_request_t *r, const uint8_t *p, size_t len)
{
    if (r->n_path == COAP_MAX_PATH_SEGS)
        return false;
    r->path[r->n_path++] = (coap_slice_t){p, len};
    return true;
}

/* Fills the request view. Returns false when the request carries more path segments or
 * query items than the view holds (critical data we cannot represent: 4.00). */
static bool fill_request(coap_request_t *r, const coap_pdu_t *pdu)
{
    size_t n_uri = 0;
    int single = -1;
    for (size_t i = 0; i < pdu->n_opts; i++) {
        const coap_opt_ref_t *o = &pdu->opts[i];
        size_t len;
        const uint8_t *v = coap_pdu_opt_value(pdu, i, &len);
        uint32_t u;
        switch (o->num) {
        case COAP_OPT_URI_PATH:
            if (n_uri++ == 0)
                single = (int)i;
            if (!add_seg(r, v, len))
                return false;
            break;
        case COAP_OPT_URI_QUERY:
            if (r->n_query == COAP_MAX_QUERY_ITEMS)
                return false;
            r->query[r->n_query++] = (coap_slice_t){v, len};
            break;
        case COAP_OPT_OBSERVE:
            /* An Observe value longer than 3 bytes is invalid; being elective it is ignored. */
            if (len <= 3 && coap_opt_uint_decode(v, len, &u) == 0) {
                r->has_observe = true;
                r->observe = u;
            }
            break;
        case COAP_OPT_CONTENT_FORMAT:
            if (len <= 2 && coap_opt_uint_decode(v, len, &u) == 0)
                r->content_format = (int)u;
            break;
        case COAP_OPT_ACCEPT:
            if (coap_opt_uint_decode(v, len, &u) == 0)
                r->accept = (int)u;
            break;
        default:
            break;
        }
    }
    if (n_uri == 1) {
        /* Spec §1.1: ThingsBoard splits a single Uri-Path on '/', dropping a leading '/'. */
        size_t len;
        const uint8_t *v = coap_pdu_opt_value(pdu, (size_t)single, &len);
        r->n_path = 0;
        if (len && v[0] == '/') {
            v++;
            len--;
        }
        size_t start = 0;
        for (size_t j = 0; j <= len; j++) {
            if (j == len || v[j] == '/') {
                /* Keep inner empty segments (they are what the client sent); drop only the
                 * one after a trailing '/'. */
                if (!(j == len && j == start && r->n_path > 0) &&
                    !add_seg(r, v + start, j - start))
                    return false;
                start = j + 1;
            }
        }
        if (r->n_path == 1 && r->path[0].len == 0)
            r->n_path = 0;
    }
    return true;
}

static void handle_request(coap_peer_t *ps, const coap_pdu_t *pdu)
{
    coap_engine_t *e = ps->e;
    bool con = pdu->type == COAP_TYPE_CON;
    if (pdu->code == 0) {
        /* RFC 7252 §4.3: an empty CON is a ping and is answered with RST; an empty NON is
         * meaningless and ignored. */
        if (con)
            coap__send_empty(ps, COAP_TYPE_RST, pdu->mid);
        return;
    }
    if ((pdu->code >> 5) != 0) {
        /* A response (or a reserved class) in a CON or NON: we never sent a request, so
         * reject it (RFC 7252 §4.2, §4.3). */
        if (con)
            coap__send_empty(ps, COAP_TYPE_RST, pdu->mid);
        return;
    }
    /* RFC 9175: an Echo value we gave this address proves it, before anything is answered. */
    coap__amp_echo_input(ps, pdu);
    uint64_t mid_hash;
    coap_dedup_t *d = coap__dedup_find(ps, pdu->mid, &mid_hash);
    if (d) {
        /* RFC 7252 §4.5: the handler never runs twice; a CON gets its ACK again. */
        e->stats.duplicates++;
        size_t budget = d->con && d->resp ? coap__amp_budget(ps, pdu->len) : 0;
        if (budget && d->resp_len > budget) {
            /* A true retransmission has the size of the original; a shorter datagram that
             * reuses its MID would make us replay a reply many times its size (§11.3). */
            e->stats.amp_drop++;
            return;
        }
        if (d->con && d->resp)
            coap__send(ps, d->resp, d->resp_len);
        else if (d->con && d->acked)
            coap__send_empty(ps, COAP_TYPE_ACK, pdu->mid);
        return;
    }
    e->stats.requests++;
    d = coap__dedup_add(ps, pdu->mid, con, mid_hash);
    coap_exchange_t *x = coap__exchange_new(ps, pdu, d);
    x->internal = true;
    x->req_len = pdu->len;
    x->amp_budget = coap__amp_budget(ps, pdu->len);
    uint8_t bad = check_options(pdu);
    if (bad) {
        coap_exchange_respond(x, bad, COAP_CF_NONE, NULL, 0);
        return;
    }
    coap_request_t req;
    memset(&req, 0, sizeof req);
    req.method = pdu->code;
    req.confirmable = con;
    req.peer = ps->tp;
    req.token = (coap_slice_t){pdu->token, pdu->tkl};
    req.content_format = COAP_CF_NONE;
    req.accept = COAP_CF_NONE;
    if (!fill_request(&req, pdu)) {
        coap_exchange_respond(x, COAP_BAD_REQUEST, COAP_CF_NONE, NULL, 0);
        return;
    }
    uint32_t v;
    if (coap_pdu_opt_uint(pdu, COAP_OPT_BLOCK2, &v) == 0) {
        if (coap_block_decode(v, &x->block2) < 0) {
            coap_exchange_respond(x, COAP_BAD_REQUEST, COAP_CF_NONE, NULL, 0);
            return;
        }
        x->has_block2 = true;
    }
    if (req.method == COAP_GET && req.has_observe) {
        /* RFC 7641 §3.1 (re-registration replaces) and §3.6 (Observe=1 deregisters); the
         * request still goes to the application, which answers it (2.02 for Observe=1). */
        coap_observer_t *o = coap__obs_find(ps, pdu->token, pdu->tkl);
        if (o && req.observe == 1)
            coap__obs_end(o, COAP_OBS_END_DEREGISTERED);
        else if (o && req.observe == 0)
            coap__obs_end(o, COAP_OBS_END_REPLACED);
    }
    /* Admission before any state is kept: a refused request (unknown credentials, rate
     * limit) starts no Block1 transfer and no observation. (The Observe stage above only
     * ends relations of this very peer and token, as Californium does before the resource
     * sees the request.) */
    if (e->ops.admit) {
        req.payload = pdu->payload ? (coap_slice_t){pdu->payload, pdu->payload_len}
                                   : (coap_slice_t){pdu->buf + pdu->len, 0};
        uint8_t refused = e->ops.admit(e->app, x, &req);
        if (refused) {
            coap_exchange_respond(x, refused, COAP_CF_NONE, NULL, 0);
            return;
        }
    }
    uint8_t *body = NULL;
    size_t body_len = 0;
    uint8_t answer = coap__block1_input(x, pdu, req.owner, &body, &body_len);
    if (answer) {
        coap_exchange_respond(x, answer, COAP_CF_NONE, NULL, 0);
        return;
    }
    const coap_bstate_t *cached = coap__block2_input(x);
    if (cached) {
        /* The cache stays for the remaining blocks; copied because respond may evict it. */
        uint8_t *copy = xmalloc(cached->len);
        memcpy(copy, cached->body, cached->len);
        coap_exchange_respond(x, cached->code, cached->cf, copy, cached->len);
        free(copy);
        free(body);
        return;
    }
    /* An absent payload is an empty slice with a valid pointer, so memcpy(dst, p, 0) in the
     * application stays defined. */
    if (body)
        req.payload = (coap_slice_t){body, body_len};
    else if (pdu->payload)
        req.payload = (coap_slice_t){pdu->payload, pdu->payload_len};
    else
        req.payload = (coap_slice_t){pdu->buf + pdu->len, 0};
    x->internal = false;
    if (e->ops.on_request)
        e->ops.on_request(e->app, x, &req);
    else
        coap_exchange_respond(x, COAP_NOT_FOUND, COAP_CF_NONE, NULL, 0);
    free(body);
}

/* RFC 7252 §5.9.2.9 / RFC 7959 §2.9.3. Only the fixed header and the token are read (the
 * options may be cut off): version 1, a request code, a token length the bytes hold. The
 * answer carries Size1 (the largest body we take, block-wise) and Block1 0/M=0 at our block
 * size: libcoap and Californium clients retry block-wise at that size. */
void coap_engine_input_oversize(coap_engine_t *e, transport_peer_t *peer, const uint8_t *p,
                                size_t len, size_t full_len)
{
    (void)full_len;
    e->stats.oversize++;
    if (peer->closed || len < 4 || (p[0] >> 6) != 1)
        return;
    uint8_t type = (uint8_t)((p[0] >> 4) & 3u), tkl = (uint8_t)(p[0] & 0x0fu), code = p[1];
    if (tkl > COAP_TOKEN_MAX || len < 4u + tkl || code < 1 || code > 31 ||
        (type != COAP_TYPE_CON && type != COAP_TYPE_NON))
        return;
    uint16_t mid = (uint16_t)((p[2] << 8) | p[3]);
    uint8_t b[4 + COAP_TOKEN_MAX + 16];
    coap_builder_t bld;
    if (type == COAP_TYPE_CON)
        coap_builder_init(&bld, b, sizeof b, COAP_TYPE_ACK, COAP_REQUEST_ENTITY_TOO_LARGE, mid,
                          p + 4, tkl);
    else
        coap_builder_init(&bld, b, sizeof b, COAP_TYPE_NON, COAP_REQUEST_ENTITY_TOO_LARGE,
                          coap__next_mid(e), p + 4, tkl);
    if (code == COAP_POST || code == COAP_PUT || code == COAP_FETCH || code == COAP_PATCH ||
        code == COAP_IPATCH) {
        coap_block_t hint = {.num = 0, .more = false, .szx = coap_block_szx_for(e->cfg.block_size)};
        coap_builder_opt_uint(&bld, COAP_OPT_BLOCK1, coap_block_encode(&hint));
    }
    coap_builder_opt_uint(&bld, COAP_OPT_SIZE1,
                          (uint32_t)(e->cfg.max_body > UINT32_MAX ? UINT32_MAX : e->cfg.max_body));
    ssize_t n = coap_builder_finish(&bld);
    if (n > 0)
        (void)transport_peer_send(peer, b, (size_t)n);
}

void coap_engine_input(coap_engine_t *e, transport_peer_t *peer, const uint8_t *p, size_t len)
{
    if (peer->closed)
        return;
    coap_pdu_t pdu;
    int rc = coap_pdu_parse(&pdu, p, len);
    if (rc < 0) {
        input_malformed(e, peer, &pdu, len, rc);
        return;
    }
    /* RFC 7252 §4.1: an Empty message (0.00) has nothing after its Message ID, and an RST is
     * always Empty (§4.3); anything else is a format error, which in an ACK or RST is
     * ignored (§4.2): it must not confirm or cancel one of our CONs. */
    if ((pdu.type == COAP_TYPE_RST && (pdu.code != 0 || len != 4)) ||
        (pdu.type == COAP_TYPE_ACK && pdu.code == 0 && len != 4)) {
        input_malformed(e, peer, &pdu, len, -EBADMSG);
        return;
    }
    coap_peer_t *ps = coap__peer_get(e, peer);
    ps->hold++;
    /* An ACK or RST of a CON we sent this address proves it receives there (amp.c); proven
     * before the CON's completion runs, so what that sends next is not held to the limit. */
    if ((pdu.type == COAP_TYPE_ACK || pdu.type == COAP_TYPE_RST) &&
        coap__con_in_flight(ps, pdu.mid))
        coap__amp_proven(ps, false);
    switch (pdu.type) {
    case COAP_TYPE_ACK:
        coap__con_match(ps, pdu.mid, false);
        break;
    case COAP_TYPE_RST:
        /* RFC 7641 §3.6: a client that forgot a relation answers its next notification with
         * RST, NON ones too (RFC 7252 §4.3 lets it reject a NON message). */
        if (!coap__con_match(ps, pdu.mid, true) && coap__obs_reset_non(ps, pdu.mid))
            e->stats.resets++;
        break;
    default:
        handle_request(ps, &pdu);
        break;
    }
    ps->hold--;
    coap__peer_maybe_release(ps);
}
