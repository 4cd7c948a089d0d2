/* test_observe.c — RFC 7641 through the engine: registration with Observe=0, notification
 * sequence numbers and tokens, CON queueing, NON/CON mixing, deregistration, replacement,
 * RST, CON timeout, server cancel, peer close. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "coap/coap_int.h"
#include "unit/coap/coap_fake.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>

static void on_request(void *app, coap_exchange_t *x, const coap_request_t *req)
{
    fixture_t *f = app;
    f->n_req++;
    if (f->close_in_request) {
        coap_engine_peer_closed(f->e, &f->peer.base); /* e.g. the transport failed a send */
        coap_exchange_respond(x, COAP_CONTENT, COAP_CF_NONE, NULL, 0);
        return;
    }
    if (f->observe && req->has_observe && req->observe == 0)
        f->obs = coap_exchange_observe(x, f);
    uint8_t code = req->has_observe && req->observe == 1 ? COAP_DELETED
                   : f->resp_code                         ? f->resp_code
                                                          : COAP_CONTENT;
    coap_exchange_respond(x, code, COAP_CF_JSON, (const uint8_t *)"{}", 2);
}

static void on_observe_end(void *app, coap_observer_t *obs, void *data, coap_obs_end_t why)
{
    fixture_t *f = app;
    assert_ptr_equal(data, f);
    f->n_end++;
    f->last_end = why;
    if (obs == f->obs)
        f->obs = NULL;
}

static void on_notify_result(void *app, void *data, void *cookie, bool acked)
{
    fixture_t *f = app;
    f->n_result++;
    f->n_acked += acked;
    if (f->cancel_in_result && f->obs)
        coap_observer_cancel(f->obs, COAP_DELETED);
}

static void do_register(fixture_t *f, uint8_t type, uint16_t mid, uint32_t obsval)
{
    req(f, type, COAP_GET, mid, "ob");
    coap_builder_opt_uint(&f->b, COAP_OPT_OBSERVE, obsval);
    path(f, "api");
    path(f, "rpc");
    feed(f);
}

static uint32_t observe_of(fixture_t *f, size_t i, coap_pdu_t *p)
{
    assert_int_equal(sent_pdu(&f->peer, i, p), 0);
    uint32_t v = 0xffffffff;
    coap_pdu_opt_uint(p, COAP_OPT_OBSERVE, &v);
    return v;
}

static void ack(fixture_t *f, uint16_t mid, bool reset)
{
    char m[4] = {reset ? 0x70 : 0x60, 0, (char)(mid >> 8), (char)(mid & 0xff)};
    feed_raw(f, m, 4);
}

static void test_register_notify_deregister(void **state)
{
    (void)state;
    fixture_t *f = fx_new(NULL);
    f->observe = true;
    do_register(f, COAP_TYPE_CON, 10, 0);
    assert_non_null(f->obs);
    assert_ptr_equal(coap_observer_peer(f->obs), &f->peer.base);
    coap_pdu_t p;
    assert_int_equal(observe_of(f, 0, &p), 0);
    assert_int_equal(p.type, COAP_TYPE_ACK);
    int cookie;
    assert_int_equal(coap_observer_notify(f->obs, COAP_CONTENT, COAP_CF_JSON,
                                          (const uint8_t *)"1", 1, &cookie), 0);
    assert_int_equal(observe_of(f, 1, &p), 1);
    assert_int_equal(p.type, COAP_TYPE_CON);
    assert_memory_equal(p.token, "ob", 2);
    uint16_t mid1 = p.mid;
    /* Two more while the first is in flight: queued, sent in order after each ACK. */
    assert_int_equal(coap_observer_notify(f->obs, COAP_CONTENT, COAP_CF_JSON,
                                          (const uint8_t *)"2", 1, NULL), 0);
    assert_int_equal(coap_observer_notify(f->obs, COAP_CONTENT, COAP_CF_JSON,
                                          (const uint8_t *)"3", 1, NULL), 0);
    assert_int_equal(f->peer.n_sent, 2);
    ack(f, mid1, false);
    assert_int_equal(f->n_result, 1);
    assert_int_equal(f->n_acked, 1);
    assert_int_equal(f->peer.n_sent, 3);
    assert_int_equal(observe_of(f, 2, &p), 2);
    assert_memory_equal(p.payload, "2", 1);
    ack(f, p.mid, false);
    assert_int_equal(observe_of(f, 3, &p), 3);
    assert_memory_equal(p.payload, "3", 1);
    ack(f, p.mid, false);
    coap_engine_stats_t st;
    coap_engine_get_stats(f->e, &st);
    assert_int_equal(st.observers, 1);
    assert_int_equal(st.notifications, 3);
    /* GET Observe=1 with the same token ends it; the app still answers (2.02). */
    do_register(f, COAP_TYPE_CON, 11, 1);
    assert_int_equal(f->n_end, 1);
    assert_int_equal(f->last_end, COAP_OBS_END_DEREGISTERED);
    assert_int_equal(f->n_req, 2);
    assert_int_equal(observe_of(f, 4, &p), 0xffffffff);
    assert_int_equal(p.code, COAP_DELETED);
    coap_engine_get_stats(f->e, &st);
    assert_int_equal(st.observers, 0);
    fx_free(f);
}

static void two_non(coap_engine_cfg_t *c)
{
    c->max_non_notifications = 2;
}

static void test_non_relation_mixes_con(void **state)
{
    (void)state;
    fixture_t *f = fx_new(two_non);
    f->observe = true;
    do_register(f, COAP_TYPE_NON, 10, 0);
    coap_pdu_t p;
    assert_int_equal(observe_of(f, 0, &p), 0);
    assert_int_equal(p.type, COAP_TYPE_NON);
    int cookie;
    uint8_t types[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(coap_observer_notify(f->obs, COAP_CONTENT, COAP_CF_NONE, NULL, 0,
                                              &cookie), 0);
        assert_int_equal(observe_of(f, (size_t)i + 1, &p), (uint32_t)i + 1);
        types[i] = p.type;
    }
    assert_int_equal(types[0], COAP_TYPE_NON);
    assert_int_equal(types[1], COAP_TYPE_NON);
    assert_int_equal(types[2], COAP_TYPE_CON);
    assert_int_equal(f->n_result, 2); /* NON ones reported at once */
    assert_int_equal(f->n_acked, 2);
    ack(f, p.mid, false);
    assert_int_equal(f->n_acked, 3);
    fx_free(f);
}

static void test_reset_ends_relation(void **state)
{
    (void)state;
    fixture_t *f = fx_new(NULL);
    f->observe = true;
    do_register(f, COAP_TYPE_CON, 10, 0);
    assert_int_equal(coap_observer_notify(f->obs, COAP_CONTENT, COAP_CF_NONE, NULL, 0, NULL), 0);
    coap_pdu_t p;
    observe_of(f, 1, &p);
    ack(f, (uint16_t)(p.mid + 1), true); /* RST for an unknown MID: ignored */
    assert_int_equal(f->n_end, 0);
    /* Not Empty (a token, a code, an option): format errors, ignored (RFC 7252 §4.1-4.3). */
    char bad_rst_tok[5] = {0x71, 0, (char)(p.mid >> 8), (char)(p.mid & 0xff), 'x'};
    char bad_rst_code[4] = {0x70, 0x45, (char)(p.mid >> 8), (char)(p.mid & 0xff)};
    char bad_ack[5] = {0x60, 0, (char)(p.mid >> 8), (char)(p.mid & 0xff), 0x10};
    feed_raw(f, bad_rst_tok, sizeof bad_rst_tok);
    feed_raw(f, bad_rst_code, sizeof bad_rst_code);
    feed_raw(f, bad_ack, sizeof bad_ack);
    assert_int_equal(f->n_end, 0);
    assert_int_equal(f->n_result, 0);
    assert_int_equal(f->peer.n_sent, 2); /* and no answer to any of them */
    ack(f, p.mid, true);
    assert_int_equal(f->n_end, 1);
    assert_int_equal(f->last_end, COAP_OBS_END_RESET);
    coap_engine_stats_t st;
    coap_engine_get_stats(f->e, &st);
    assert_int_equal(st.resets, 1);
    assert_int_equal(st.malformed, 3);
    fx_free(f);
}

/* RFC 7641 §3.6: an RST to a NON notification ends the relation too (a client that forgot
 * it rejects the next notification, whatever its type); an RST that answers none is ignored. */
static void test_reset_of_non_notification(void **state)
{
    (void)state;
    fixture_t *f = fx_new(NULL);
    f->observe = true;
    do_register(f, COAP_TYPE_NON, 10, 0);
    coap_pdu_t p;
    uint16_t mids[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(coap_observer_notify(f->obs, COAP_CONTENT, COAP_CF_NONE, NULL, 0, NULL),
                         0);
        observe_of(f, (size_t)i + 1, &p);
        assert_int_equal(p.type, COAP_TYPE_NON);
        mids[i] = p.mid;
    }
    ack(f, (uint16_t)(mids[1] + 7), true); /* answers nothing we sent */
    assert_int_equal(f->n_end, 0);
    ack(f, mids[0], true); /* the older of the two: still recent */
    assert_int_equal(f->n_end, 1);
    assert_int_equal(f->last_end, COAP_OBS_END_RESET);
    assert_null(f->obs);
    coap_engine_stats_t st;
    coap_engine_get_stats(f->e, &st);
    assert_int_equal(st.resets, 1);
    assert_int_equal(st.observers, 0);
    ack(f, mids[1], true); /* the relation is gone: nothing more happens */
    assert_int_equal(f->n_end, 1);
    fx_free(f);
}

static void fast_ack(coap_engine_cfg_t *c)
{
    c->ack_timeout_ms = 4; /* gives up after 4 + 8 + 16 + 32 + 64 = 124 ms */
}

static void test_con_timeout_ends_relation(void **state)
{
    (void)state;
    fixture_t *f = fx_new(fast_ack);
    f->observe = true;
    do_register(f, COAP_TYPE_CON, 10, 0);
    int cookie;
    assert_int_equal(coap_observer_notify(f->obs, COAP_CONTENT, COAP_CF_NONE, NULL, 0, &cookie),
                     0);
    assert_int_equal(coap_observer_notify(f->obs, COAP_CONTENT, COAP_CF_NONE, NULL, 0, &cookie),
                     0);
    run_for(f->loop, 200);
    assert_int_equal(f->n_end, 1);
    assert_int_equal(f->last_end, COAP_OBS_END_TIMEOUT);
    assert_int_equal(f->n_result, 2); /* in-flight and queued both reported not delivered */
    assert_int_equal(f->n_acked, 0);
    assert_int_equal(f->peer.n_sent, 1 + 1 + 4);
    fx_free(f);
}

static void test_replace_and_cancel(void **state)
{
    (void)state;
    fixture_t *f = fx_new(NULL);
    f->observe = true;
    do_register(f, COAP_TYPE_CON, 10, 0);
    do_register(f, COAP_TYPE_CON, 11, 0); /* same token: replaces */
    assert_int_equal(f->n_end, 1);
    assert_int_equal(f->last_end, COAP_OBS_END_REPLACED);
    assert_non_null(f->obs);
    coap_pdu_t p;
    assert_int_equal(observe_of(f, 1, &p), 0);
    coap_observer_cancel(f->obs, COAP_DELETED);
    assert_int_equal(f->n_end, 2);
    assert_int_equal(f->last_end, COAP_OBS_END_CANCELLED);
    assert_int_equal(observe_of(f, 2, &p), 0xffffffff);
    assert_int_equal(p.code, COAP_DELETED);
    assert_memory_equal(p.token, "ob", 2);
    ack(f, p.mid, false);
    fx_free(f);
}

static void test_error_response_is_not_a_relation(void **state)
{
    (void)state;
    fixture_t *f = fx_new(NULL);
    f->observe = true;
    f->resp_code = COAP_UNAUTHORIZED;
    do_register(f, COAP_TYPE_CON, 10, 0);
    coap_pdu_t p;
    assert_int_equal(observe_of(f, 0, &p), 0xffffffff);
    coap_engine_stats_t st;
    coap_engine_get_stats(f->e, &st);
    assert_int_equal(st.observers, 0);
    assert_int_equal(f->n_end, 0);
    fx_free(f);
}

static void cap2(coap_engine_cfg_t *c)
{
    c->max_pending_con_per_peer = 2;
}

static void test_pending_cap(void **state)
{
    (void)state;
    fixture_t *f = fx_new(cap2);
    f->observe = true;
    do_register(f, COAP_TYPE_CON, 10, 0);
    assert_int_equal(coap_observer_notify(f->obs, COAP_CONTENT, COAP_CF_NONE, NULL, 0, NULL), 0);
    assert_int_equal(coap_observer_notify(f->obs, COAP_CONTENT, COAP_CF_NONE, NULL, 0, NULL), 0);
    assert_int_equal(coap_observer_notify(f->obs, COAP_CONTENT, COAP_CF_NONE, NULL, 0, NULL),
                     -EAGAIN);
    fx_free(f); /* engine free ends the relation */
}

static void test_peer_closed_and_engine_free(void **state)
{
    (void)state;
    fixture_t *f = fx_new(NULL);
    f->observe = true;
    do_register(f, COAP_TYPE_CON, 10, 0);
    coap_engine_peer_closed(f->e, &f->peer.base);
    assert_int_equal(f->last_end, COAP_OBS_END_PEER_CLOSED);
    assert_int_equal(f->peer.base.refcnt, 1);
    do_register(f, COAP_TYPE_NON, 11, 0);
    assert_non_null(f->obs);
    coap_engine_free(f->e);
    f->e = NULL;
    assert_int_equal(f->n_end, 2);
    assert_int_equal(f->last_end, COAP_OBS_END_PEER_CLOSED);
    fx_free(f);
}

static void test_sequence_wraps(void **state)
{
    (void)state;
    fixture_t *f = fx_new(NULL);
    f->observe = true;
    do_register(f, COAP_TYPE_NON, 10, 0);
    f->obs->seq = 0xfffffe;
    f->obs->non_count = -100; /* keep them NON */
    coap_pdu_t p;
    assert_int_equal(coap_observer_notify(f->obs, COAP_CONTENT, COAP_CF_NONE, NULL, 0, NULL), 0);
    assert_int_equal(observe_of(f, 1, &p), 0xffffff);
    assert_int_equal(coap_observer_notify(f->obs, COAP_CONTENT, COAP_CF_NONE, NULL, 0, NULL), 0);
    assert_int_equal(observe_of(f, 2, &p), 0);
    fx_free(f);
}

/* RFC 7641 §4.5: a NON relation gets a CON at least every 24 hours even when fewer than
 * max_non_notifications NON ones went out. The clock is moved by setting the relation's last
 * CON time back (the engine reads the loop's monotonic clock; 24 h cannot be waited for). */
static void test_con_every_24h(void **state)
{
    (void)state;
    fixture_t *f = fx_new(NULL); /* max_non_notifications 5 */
    f->observe = true;
    do_register(f, COAP_TYPE_NON, 10, 0);
    coap_pdu_t p;
    assert_int_equal(coap_observer_notify(f->obs, COAP_CONTENT, COAP_CF_NONE, NULL, 0, NULL), 0);
    assert_int_equal(observe_of(f, 1, &p), 1);
    assert_int_equal(p.type, COAP_TYPE_NON);
    /* 1 ms short of 24 h since the last CON (the registration counts as one): still NON. */
    f->obs->last_con_ms = loop_now_ms(f->loop) - COAP_OBS_CON_EVERY_MS + 1;
    assert_int_equal(coap_observer_notify(f->obs, COAP_CONTENT, COAP_CF_NONE, NULL, 0, NULL), 0);
    assert_int_equal(observe_of(f, 2, &p), 2);
    assert_int_equal(p.type, COAP_TYPE_NON);
    /* 24 h: the next one is CON although only 2 NON ones went out since. */
    f->obs->last_con_ms = loop_now_ms(f->loop) - COAP_OBS_CON_EVERY_MS;
    assert_int_equal(coap_observer_notify(f->obs, COAP_CONTENT, COAP_CF_NONE, NULL, 0, NULL), 0);
    assert_int_equal(observe_of(f, 3, &p), 3);
    assert_int_equal(p.type, COAP_TYPE_CON);
    ack(f, p.mid, false);
    /* The clock restarts from that CON: NON again, then CON again 24 h later. */
    assert_int_equal(coap_observer_notify(f->obs, COAP_CONTENT, COAP_CF_NONE, NULL, 0, NULL), 0);
    assert_int_equal(observe_of(f, 4, &p), 4);
    assert_int_equal(p.type, COAP_TYPE_NON);
    f->obs->last_con_ms -= COAP_OBS_CON_EVERY_MS;
    assert_int_equal(coap_observer_notify(f->obs, COAP_CONTENT, COAP_CF_NONE, NULL, 0, NULL), 0);
    assert_int_equal(observe_of(f, 5, &p), 5);
    assert_int_equal(p.type, COAP_TYPE_CON);
    ack(f, p.mid, false);
    fx_free(f);
}

static void obs_peer_at(fake_peer_t *p, uint8_t host, uint16_t port)
{
    fake_peer_init(p);
    struct sockaddr_in *a = (struct sockaddr_in *)&p->base.addr;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr.s_addr = htonl(0x0a000000u | host);
    p->base.addr_len = sizeof *a;
}

/* GET Observe=0 on /api/rpc from peer p with token tok; returns whether the answer carried
 * Observe (a relation was made). */
static bool register_from(fixture_t *f, fake_peer_t *p, uint16_t mid, const char *tok)
{
    req(f, COAP_TYPE_NON, COAP_GET, mid, tok);
    coap_builder_opt_uint(&f->b, COAP_OPT_OBSERVE, 0);
    path(f, "api");
    path(f, "rpc");
    ssize_t n = coap_builder_finish(&f->b);
    assert_true(n > 0);
    size_t before = p->n_sent;
    coap_engine_input(f->e, &p->base, f->rx, (size_t)n);
    coap__engine_validate(f->e);
    assert_int_equal(p->n_sent, before + 1);
    coap_pdu_t r;
    assert_int_equal(sent_pdu(p, before, &r), 0);
    assert_int_equal(r.code, COAP_CONTENT);
    uint32_t v;
    return coap_pdu_opt_uint(&r, COAP_OPT_OBSERVE, &v) == 0;
}

static void addr3(coap_engine_cfg_t *c)
{
    c->observers_per_addr = 3;
}

/* Relations are capped per source address (all ports) and per peer; a registration beyond
 * a cap is answered without Observe (RFC 7641 §4.1) and counted; ending relations frees room. */
static void test_address_and_peer_caps(void **state)
{
    (void)state;
    fixture_t *f = fx_new(addr3);
    f->observe = true;
    enum { N = 5 };
    fake_peer_t *p = calloc(N, sizeof *p);
    for (int i = 0; i < N; i++)
        obs_peer_at(&p[i], i < 4 ? 1 : 2, (uint16_t)(1000 + i)); /* 0-3 on .1, 4 on .2 */
    assert_true(register_from(f, &p[0], 1, "a"));
    assert_true(register_from(f, &p[1], 2, "b"));
    assert_true(register_from(f, &p[1], 3, "c"));
    assert_false(register_from(f, &p[2], 4, "d")); /* fourth from 10.0.0.1 */
    assert_int_equal(f->e->stats.observe_refused_addr, 1);
    assert_true(register_from(f, &p[4], 5, "e")); /* 10.0.0.2 is not affected */
    assert_int_equal(f->e->stats.observers, 4);
    assert_int_equal(htab_count(&f->e->obs_addrs), 2);
    /* Ending one (the peer closes) makes room for the address again. */
    coap_engine_peer_closed(f->e, &p[0].base);
    assert_true(register_from(f, &p[3], 6, "f"));
    assert_int_equal(f->e->stats.observe_refused_addr, 1);
    /* Per peer (64, fixed): with the address cap off, the 65th of one port is refused. */
    f->e->cfg.observers_per_addr = 0;
    char tok[8];
    int made = 0;
    for (int i = 0; i < 70; i++) {
        snprintf(tok, sizeof tok, "p%d", i);
        made += register_from(f, &p[4], (uint16_t)(100 + i), tok);
    }
    assert_int_equal(made, COAP_MAX_OBSERVERS_PER_PEER - 1); /* it held "e" already */
    assert_int_equal(f->e->stats.observe_refused_peer, 70 - made);
    for (int i = 0; i < N; i++)
        coap_engine_peer_closed(f->e, &p[i].base);
    assert_int_equal(f->e->stats.observers, 0);
    assert_int_equal(htab_count(&f->e->obs_addrs), 0);
    fx_free(f);
    free(p);
}

static void test_cancel_inside_callbacks(void **state)
{
    (void)state;
    fixture_t *f = fx_new(fast_ack);
    f->observe = true;
    f->cancel_in_result = true;
    do_register(f, COAP_TYPE_CON, 10, 0);
    int cookie;
    assert_int_equal(coap_observer_notify(f->obs, COAP_CONTENT, COAP_CF_NONE, NULL, 0, &cookie),
                     0);
    assert_int_equal(coap_observer_notify(f->obs, COAP_CONTENT, COAP_CF_NONE, NULL, 0, &cookie),
                     0);
    coap_pdu_t p;
    observe_of(f, 1, &p);
    ack(f, p.mid, false); /* result callback cancels: the queued one is reported undelivered */
    assert_int_equal(f->n_end, 1);
    assert_int_equal(f->last_end, COAP_OBS_END_CANCELLED);
    assert_int_equal(f->n_acked, 1);
    /* Again, ending by timeout with a cancel attempted inside the result callback. */
    f->obs = NULL;
    do_register(f, COAP_TYPE_CON, 11, 0);
    f->cancel_in_result = true;
    assert_int_equal(coap_observer_notify(f->obs, COAP_CONTENT, COAP_CF_NONE, NULL, 0, &cookie),
                     0);
    run_for(f->loop, 200);
    assert_int_equal(f->n_end, 2);
    assert_int_equal(f->last_end, COAP_OBS_END_TIMEOUT);
    fx_free(f);
}

static void test_close_inside_request(void **state)
{
    (void)state;
    fixture_t *f = fx_new(NULL);
    f->observe = true;
    do_register(f, COAP_TYPE_NON, 10, 0);
    f->close_in_request = true;
    req(f, COAP_TYPE_CON, COAP_POST, 11, "z");
    feed(f);
    assert_int_equal(f->last_end, COAP_OBS_END_PEER_CLOSED);
    assert_null(f->peer.base.engine_state);
    assert_int_equal(f->peer.base.refcnt, 1);
    fx_free(f);
}

/* ---- relations across a restart (the sink's save/restored hooks) ---------------------------- */

static size_t obs_save(void *app, coap_observer_t *obs, void *data, uint8_t *out, size_t cap)
{
    (void)app, (void)obs, (void)data;
    if (cap < 3)
        return 0;
    memcpy(out, "att", 3);
    return 3;
}

static int n_restore_calls;
static void *obs_restore(void *app, coap_observer_t *obs, const uint8_t *d, size_t len)
{
    fixture_t *f = app;
    n_restore_calls++;
    if (len != 3 || memcmp(d, "att", 3) != 0)
        return NULL;
    f->obs = obs;
    return f;
}

static fixture_t *fx_restorable(void)
{
    fixture_t *f = fx_new(NULL);
    f->e->ops.on_observer_save = obs_save;
    f->e->ops.on_observer_restore = obs_restore;
    f->observe = true;
    return f;
}

static void test_save_restore(void **state)
{
    (void)state;
    fixture_t *f = fx_restorable();
    transport_sink_t sink = coap_engine_sink(f->e);
    uint8_t blob[512];
    /* No state for the peer yet: nothing to save. */
    assert_int_equal(sink.save(sink.ctx, &f->peer.base, blob, sizeof blob), 0);
    do_register(f, COAP_TYPE_CON, 10, 0);
    coap_pdu_t p;
    assert_int_equal(
        coap_observer_notify(f->obs, COAP_CONTENT, COAP_CF_JSON, (const uint8_t *)"1", 1, NULL), 0);
    assert_int_equal(observe_of(f, 1, &p), 1);
    ack(f, p.mid, false);
    size_t n = sink.save(sink.ctx, &f->peer.base, blob, sizeof blob);
    assert_true(n > 0);
    assert_int_equal(sink.save(sink.ctx, &f->peer.base, blob, 8), 0); /* does not fit */

    /* The stop: the relation ends with its peer. The start: it comes back on the peer. */
    coap_engine_peer_closed(f->e, &f->peer.base);
    assert_int_equal(f->n_end, 1);
    assert_null(f->obs);
    f->peer.base.closed = false;
    sink.restored(sink.ctx, &f->peer.base, blob, n);
    assert_non_null(f->obs);
    coap_engine_stats_t st;
    coap_engine_get_stats(f->e, &st);
    assert_int_equal(st.observers, 1);
    /* The next notification: same token, CON, an Observe number above the saved one. */
    size_t before = f->peer.n_sent;
    assert_int_equal(
        coap_observer_notify(f->obs, COAP_CONTENT, COAP_CF_JSON, (const uint8_t *)"2", 1, NULL), 0);
    uint32_t v = observe_of(f, before, &p);
    assert_true(v > 1 && v < 64);
    assert_int_equal(p.type, COAP_TYPE_CON);
    assert_memory_equal(p.token, "ob", 2);
    ack(f, p.mid, false);
    /* Restoring the same relation twice does not duplicate it. */
    sink.restored(sink.ctx, &f->peer.base, blob, n);
    coap_engine_get_stats(f->e, &st);
    assert_int_equal(st.observers, 1);
    /* The device deregisters as usual. */
    do_register(f, COAP_TYPE_CON, 11, 1);
    assert_int_equal(f->last_end, COAP_OBS_END_DEREGISTERED);
    fx_free(f);
}

/* The blob comes from an authenticated file, but is parsed as hostile: every prefix, every
 * single-byte change, and an application that refuses the description. */
static void test_restore_hostile(void **state)
{
    (void)state;
    fixture_t *f = fx_restorable();
    transport_sink_t sink = coap_engine_sink(f->e);
    do_register(f, COAP_TYPE_NON, 10, 0);
    uint8_t blob[512];
    size_t n = sink.save(sink.ctx, &f->peer.base, blob, sizeof blob);
    assert_true(n > 0);
    coap_engine_peer_closed(f->e, &f->peer.base);
    f->peer.base.closed = false;
    for (size_t k = 0; k <= n; k++) {
        sink.restored(sink.ctx, &f->peer.base, blob, k);
        coap_engine_peer_closed(f->e, &f->peer.base);
        f->peer.base.closed = false;
    }
    for (size_t i = 0; i < n; i++) {
        for (unsigned bit = 0; bit < 8; bit++) {
            blob[i] ^= (uint8_t)(1u << bit);
            sink.restored(sink.ctx, &f->peer.base, blob, n);
            coap_engine_peer_closed(f->e, &f->peer.base);
            f->peer.base.closed = false;
            blob[i] ^= (uint8_t)(1u << bit);
        }
    }
    n_restore_calls = 0;
    blob[n - 1] ^= 0xff; /* the application's description changed: refused */
    sink.restored(sink.ctx, &f->peer.base, blob, n);
    assert_int_equal(n_restore_calls, 1);
    coap_engine_stats_t st;
    coap_engine_get_stats(f->e, &st);
    assert_int_equal(st.observers, 0);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_notify_deregister),
        cmocka_unit_test(test_non_relation_mixes_con),
        cmocka_unit_test(test_reset_ends_relation),
        cmocka_unit_test(test_reset_of_non_notification),
        cmocka_unit_test(test_con_timeout_ends_relation),
        cmocka_unit_test(test_replace_and_cancel),
        cmocka_unit_test(test_error_response_is_not_a_relation),
        cmocka_unit_test(test_pending_cap),
        cmocka_unit_test(test_peer_closed_and_engine_free),
        cmocka_unit_test(test_sequence_wraps),
        cmocka_unit_test(test_con_every_24h),
        cmocka_unit_test(test_address_and_peer_caps),
        cmocka_unit_test(test_cancel_inside_callbacks),
        cmocka_unit_test(test_close_inside_request),
        cmocka_unit_test(test_save_restore),
        cmocka_unit_test(test_restore_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
