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

#include <errno.h>

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
    ack(f, p.mid, true);
    assert_int_equal(f->n_end, 1);
    assert_int_equal(f->last_end, COAP_OBS_END_RESET);
    coap_engine_stats_t st;
    coap_engine_get_stats(f->e, &st);
    assert_int_equal(st.resets, 1);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_notify_deregister),
        cmocka_unit_test(test_non_relation_mixes_con),
        cmocka_unit_test(test_reset_ends_relation),
        cmocka_unit_test(test_con_timeout_ends_relation),
        cmocka_unit_test(test_replace_and_cancel),
        cmocka_unit_test(test_error_response_is_not_a_relation),
        cmocka_unit_test(test_pending_cap),
        cmocka_unit_test(test_peer_closed_and_engine_free),
        cmocka_unit_test(test_sequence_wraps),
        cmocka_unit_test(test_cancel_inside_callbacks),
        cmocka_unit_test(test_close_inside_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
