/* test_engine.c — the CoAP engine driven through a fake transport peer on a real loop:
 * piggyback vs separate responses, retransmission and backoff, dedup, ping, bad options,
 * malformed input, MIDs, Uri-Path splitting, the spare lists (reuse and caps), and
 * peer/engine teardown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "coap/coap_int.h"
#include "unit/coap/coap_fake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_request(void *app, coap_exchange_t *x, const coap_request_t *req)
{
    fixture_t *f = app;
    f->n_req++;
    f->n_path = req->n_path;
    for (size_t i = 0; i < req->n_path && i < 8; i++)
        snprintf(f->path[i], sizeof f->path[i], "%.*s", (int)req->path[i].len,
                 (const char *)req->path[i].p);
    if (f->respond_now)
        coap_exchange_respond(x, COAP_CONTENT, COAP_CF_TEXT, (const uint8_t *)"hi", 2);
    else
        f->pending = x;
}

static void on_observe_end(void *app, coap_observer_t *obs, void *data, coap_obs_end_t why)
{
    fixture_t *f = app;
    f->n_end++;
    f->last_end = why;
}

static void on_notify_result(void *app, void *data, void *cookie, bool acked)
{
    fixture_t *f = app;
    f->n_result++;
    f->n_acked += acked;
}

static void test_piggyback_and_dedup(void **state)
{
    (void)state;
    fixture_t *f = fx_new(NULL);
    req(f, COAP_TYPE_CON, COAP_GET, 0x1234, "tk");
    path(f, "a");
    feed(f);
    assert_int_equal(f->n_req, 1);
    assert_int_equal(f->peer.n_sent, 1);
    coap_pdu_t p;
    assert_int_equal(sent_pdu(&f->peer, 0, &p), 0);
    assert_int_equal(p.type, COAP_TYPE_ACK);
    assert_int_equal(p.mid, 0x1234);
    assert_int_equal(p.code, COAP_CONTENT);
    assert_memory_equal(p.token, "tk", 2);
    assert_int_equal(p.payload_len, 2);
    /* The same CON again: the handler does not run, the same bytes go out. */
    feed(f);
    assert_int_equal(f->n_req, 1);
    assert_int_equal(f->peer.n_sent, 2);
    assert_int_equal(f->peer.sent_len[1], f->peer.sent_len[0]);
    assert_memory_equal(f->peer.sent[1], f->peer.sent[0], f->peer.sent_len[0]);
    coap_engine_stats_t st;
    coap_engine_get_stats(f->e, &st);
    assert_int_equal(st.requests, 1);
    assert_int_equal(st.duplicates, 1);
    fx_free(f);
}

static void test_separate_response_retransmit(void **state)
{
    (void)state;
    fixture_t *f = fx_new(NULL);
    f->respond_now = false;
    req(f, COAP_TYPE_CON, COAP_POST, 7, "x");
    path(f, "t");
    feed(f);
    assert_int_equal(f->peer.n_sent, 0);
    /* A retransmission before the deadline gets nothing and does not run the handler. */
    feed(f);
    assert_int_equal(f->peer.n_sent, 0);
    run_for(f->loop, 40);
    assert_int_equal(f->peer.n_sent, 1);
    coap_pdu_t p;
    assert_int_equal(sent_pdu(&f->peer, 0, &p), 0);
    assert_int_equal(p.type, COAP_TYPE_ACK);
    assert_int_equal(p.code, 0);
    assert_int_equal(p.mid, 7);
    /* After the empty ACK, a duplicate gets the empty ACK again. */
    feed(f);
    assert_int_equal(f->peer.n_sent, 2);
    assert_int_equal(f->n_req, 1);
    coap_exchange_respond(f->pending, COAP_CHANGED, COAP_CF_NONE, NULL, 0);
    assert_int_equal(f->peer.n_sent, 3);
    assert_int_equal(sent_pdu(&f->peer, 2, &p), 0);
    assert_int_equal(p.type, COAP_TYPE_CON);
    assert_int_equal(p.code, COAP_CHANGED);
    assert_true(p.mid < 65000);
    assert_memory_equal(p.token, "x", 1);
    /* Never ACKed: 4 retransmissions 10, 20, 40, 80 ms apart, then given up at +160 ms. */
    run_for(f->loop, 340);
    assert_int_equal(f->peer.n_sent, 3 + 4);
    for (size_t i = 3; i < 7; i++)
        assert_memory_equal(f->peer.sent[i], f->peer.sent[2], f->peer.sent_len[2]);
    /* Each gap is about its nominal value, which shows the doubling; 3 ms of slack for the
     * ms-granular loop clock and timer lateness. */
    for (size_t i = 3; i < 7; i++) {
        int64_t gap = f->peer.sent_at[i] - f->peer.sent_at[i - 1];
        assert_true(gap >= (10 << (i - 3)) - 3);
    }
    assert_true(f->peer.sent_at[6] - f->peer.sent_at[2] >= 150 - 3);
    coap_engine_stats_t st;
    coap_engine_get_stats(f->e, &st);
    assert_int_equal(st.retransmissions, 4);
    assert_int_equal(st.con_timeouts, 1);
    fx_free(f);
}

static void piggyback_500(coap_engine_cfg_t *c)
{
    c->piggyback_ms = 500; /* the default */
}

/* Reliability row C2 with its numbers: a handler that takes 300 ms is answered in the ACK; one
 * that takes 800 ms gets an empty ACK at the 500 ms piggyback deadline, then a CON response
 * that is retransmitted until ACKed; the client's retransmissions meanwhile get nothing
 * (before the deadline) or the empty ACK again (after it), never a second handler run. Prints
 * the measured times ("C2 figure"). */
static void test_piggyback_deadline_300_800(void **state)
{
    (void)state;
    fixture_t *f = fx_new(piggyback_500);
    f->respond_now = false;
    coap_pdu_t p;
    /* 300 ms: piggybacked. */
    int64_t t0 = clock_mono_ms();
    req(f, COAP_TYPE_CON, COAP_POST, 0x100, "a");
    path(f, "t");
    feed(f);
    run_for(f->loop, 150);
    feed(f); /* the client's retransmission while the handler works */
    run_for(f->loop, 150);
    assert_int_equal(f->peer.n_sent, 0);
    coap_exchange_respond(f->pending, COAP_CHANGED, COAP_CF_NONE, NULL, 0);
    assert_int_equal(f->peer.n_sent, 1);
    assert_int_equal(sent_pdu(&f->peer, 0, &p), 0);
    assert_int_equal(p.type, COAP_TYPE_ACK);
    assert_int_equal(p.code, COAP_CHANGED);
    int64_t piggy_ms = f->peer.sent_at[0] - t0;
    /* 3 ms of slack, as above: run_for and clock_mono_ms count whole milliseconds. */
    assert_true(piggy_ms >= 300 - 3); /* and no empty ACK went out before it (n_sent above) */
    assert_int_equal(f->n_req, 1);
    /* 800 ms: empty ACK at 500 ms, the same empty ACK for a retransmission at ~600 ms, the
     * response as a CON at 800 ms, once more after ACK_TIMEOUT, then ACKed. */
    t0 = clock_mono_ms();
    req(f, COAP_TYPE_CON, COAP_POST, 0x101, "b");
    path(f, "t");
    feed(f);
    run_for(f->loop, 600);
    assert_int_equal(f->peer.n_sent, 2);
    assert_int_equal(sent_pdu(&f->peer, 1, &p), 0);
    assert_true(p.type == COAP_TYPE_ACK && p.code == 0 && p.mid == 0x101);
    int64_t empty_ms = f->peer.sent_at[1] - t0;
    assert_true(empty_ms >= 500 - 3);
    feed(f);
    assert_int_equal(f->peer.n_sent, 3);
    assert_int_equal(f->peer.sent_len[2], f->peer.sent_len[1]);
    assert_memory_equal(f->peer.sent[2], f->peer.sent[1], f->peer.sent_len[1]);
    int64_t again_ms = f->peer.sent_at[2] - t0;
    run_for(f->loop, 200);
    assert_int_equal(f->peer.n_sent, 3);
    coap_exchange_respond(f->pending, COAP_CHANGED, COAP_CF_NONE, NULL, 0);
    assert_int_equal(f->peer.n_sent, 4);
    assert_int_equal(sent_pdu(&f->peer, 3, &p), 0);
    assert_true(p.type == COAP_TYPE_CON && p.code == COAP_CHANGED);
    int64_t sep_ms = f->peer.sent_at[3] - t0;
    assert_true(sep_ms >= 800 - 3);
    run_for(f->loop, 15); /* ACK_TIMEOUT 10 ms in the fixture: one retransmission */
    assert_int_equal(f->peer.n_sent, 5);
    assert_memory_equal(f->peer.sent[4], f->peer.sent[3], f->peer.sent_len[3]);
    int64_t retx_ms = f->peer.sent_at[4] - t0;
    char ack[4] = {0x60, 0, (char)(p.mid >> 8), (char)(p.mid & 0xff)};
    feed_raw(f, ack, 4);
    run_for(f->loop, 100);
    assert_int_equal(f->peer.n_sent, 5);
    assert_int_equal(f->n_req, 2); /* each handler ran once */
    coap_engine_stats_t st;
    coap_engine_get_stats(f->e, &st);
    assert_int_equal(st.duplicates, 2);
    assert_int_equal(st.retransmissions, 1);
    assert_int_equal(st.con_timeouts, 0);
    print_message(
        "C2 figure: 300 ms handler -> 2.04 in the ACK at %lld ms (its retransmission "
        "at 150 ms: nothing sent); 800 ms handler -> empty ACK at %lld ms, same empty "
        "ACK again for its retransmission at %lld ms, CON 2.04 at %lld ms, "
        "retransmitted at %lld ms, ACKed, no more; handlers run 2 for 4 requests\n",
        (long long)piggy_ms, (long long)empty_ms, (long long)again_ms, (long long)sep_ms,
        (long long)retx_ms);
    fx_free(f);
}

static void test_separate_response_acked(void **state)
{
    (void)state;
    fixture_t *f = fx_new(NULL);
    f->respond_now = false;
    req(f, COAP_TYPE_CON, COAP_GET, 9, NULL);
    feed(f);
    run_for(f->loop, 30);
    coap_exchange_respond(f->pending, COAP_CONTENT, COAP_CF_NONE, NULL, 0);
    assert_int_equal(f->peer.n_sent, 2);
    coap_pdu_t p;
    assert_int_equal(sent_pdu(&f->peer, 1, &p), 0);
    char ack[4] = {0x60, 0, (char)(p.mid >> 8), (char)(p.mid & 0xff)};
    feed_raw(f, ack, 4);
    run_for(f->loop, 60);
    assert_int_equal(f->peer.n_sent, 2);
    coap_engine_stats_t st;
    coap_engine_get_stats(f->e, &st);
    assert_int_equal(st.retransmissions, 0);
    fx_free(f);
}

/* 5.03 with Max-Age (RFC 7252 §5.9.3.4, §5.10.5), piggybacked and separate; the option is
 * replayed to a duplicate and does not stick to a recycled exchange. */
static void test_max_age(void **state)
{
    (void)state;
    fixture_t *f = fx_new(NULL);
    f->respond_now = false;
    req(f, COAP_TYPE_CON, COAP_POST, 20, "m");
    feed(f);
    coap_exchange_set_max_age(f->pending, 5);
    coap_exchange_respond(f->pending, COAP_SERVICE_UNAVAILABLE, COAP_CF_NONE, NULL, 0);
    assert_int_equal(f->peer.n_sent, 1);
    coap_pdu_t p;
    assert_int_equal(sent_pdu(&f->peer, 0, &p), 0);
    assert_int_equal(p.type, COAP_TYPE_ACK);
    assert_int_equal(p.code, COAP_SERVICE_UNAVAILABLE);
    uint32_t age = 0;
    assert_int_equal(coap_pdu_opt_uint(&p, COAP_OPT_MAX_AGE, &age), 0);
    assert_int_equal(age, 5);
    /* RFC 7252 §3.1: uint 5 is one byte, option 14 = delta 13 -> 0xd1 0x01 0x05. */
    static const uint8_t want[] = {0x61, 0xa3, 0x00, 20, 'm', 0xd1, 0x01, 0x05};
    assert_int_equal(f->peer.sent_len[0], sizeof want);
    assert_memory_equal(f->peer.sent[0], want, sizeof want);
    feed(f); /* the duplicate gets the same bytes */
    assert_int_equal(f->peer.n_sent, 2);
    assert_memory_equal(f->peer.sent[1], want, sizeof want);

    /* Separate response (after the empty ACK): the CON carries it too. */
    req(f, COAP_TYPE_CON, COAP_POST, 21, "n");
    feed(f);
    run_for(f->loop, 40);
    assert_int_equal(f->peer.n_sent, 3);
    coap_exchange_set_max_age(f->pending, 300);
    coap_exchange_respond(f->pending, COAP_SERVICE_UNAVAILABLE, COAP_CF_TEXT, (const uint8_t *)"x",
                          1);
    assert_int_equal(sent_pdu(&f->peer, 3, &p), 0);
    assert_int_equal(p.type, COAP_TYPE_CON);
    assert_int_equal(coap_pdu_opt_uint(&p, COAP_OPT_MAX_AGE, &age), 0);
    assert_int_equal(age, 300);
    assert_int_equal(coap_pdu_opt_uint(&p, COAP_OPT_CONTENT_FORMAT, &age), 0);
    char ack[4] = {0x60, 0, (char)(p.mid >> 8), (char)(p.mid & 0xff)};
    feed_raw(f, ack, 4);

    /* The next request reuses a spare exchange: no Max-Age unless set again. */
    req(f, COAP_TYPE_CON, COAP_POST, 22, "o");
    feed(f);
    coap_exchange_respond(f->pending, COAP_CREATED, COAP_CF_NONE, NULL, 0);
    assert_int_equal(sent_pdu(&f->peer, f->peer.n_sent - 1, &p), 0);
    assert_int_equal(p.code, COAP_CREATED);
    assert_true(coap_pdu_opt_uint(&p, COAP_OPT_MAX_AGE, &age) < 0);
    fx_free(f);
}

static void test_non_request(void **state)
{
    (void)state;
    fixture_t *f = fx_new(NULL);
    req(f, COAP_TYPE_NON, COAP_GET, 100, "n");
    feed(f);
    assert_int_equal(f->peer.n_sent, 1);
    coap_pdu_t p;
    assert_int_equal(sent_pdu(&f->peer, 0, &p), 0);
    assert_int_equal(p.type, COAP_TYPE_NON);
    assert_true(p.mid < 65000);
    /* A duplicate NON is ignored. */
    feed(f);
    assert_int_equal(f->peer.n_sent, 1);
    assert_int_equal(f->n_req, 1);
    fx_free(f);
}

static void test_ping_and_rejects(void **state)
{
    (void)state;
    fixture_t *f = fx_new(NULL);
    feed_raw(f, "\x40\x00\x01\x02", 4); /* empty CON: ping */
    assert_int_equal(f->peer.n_sent, 1);
    assert_memory_equal(f->peer.sent[0], "\x70\x00\x01\x02", 4);
    feed_raw(f, "\x50\x00\x01\x03", 4); /* empty NON: ignored */
    assert_int_equal(f->peer.n_sent, 1);
    feed_raw(f, "\x40\x45\x01\x04", 4); /* CON 2.05: a response we never asked for */
    assert_int_equal(f->peer.n_sent, 2);
    assert_memory_equal(f->peer.sent[1], "\x70\x00\x01\x04", 4);
    feed_raw(f, "\x50\x45\x01\x05", 4); /* NON 2.05: ignored */
    assert_int_equal(f->peer.n_sent, 2);
    feed_raw(f, "\x40\x01\x01\x06\xf1\x00", 6); /* malformed CON: RST */
    assert_int_equal(f->peer.n_sent, 3);
    assert_memory_equal(f->peer.sent[2], "\x70\x00\x01\x06", 4);
    feed_raw(f, "\x50\x01\x01\x07\xf1\x00", 6); /* malformed NON: dropped */
    feed_raw(f, "\x80\x01\x01\x08", 4);         /* not CoAP v1: dropped */
    feed_raw(f, "\x40", 1);
    assert_int_equal(f->peer.n_sent, 3);
    coap_engine_stats_t st;
    coap_engine_get_stats(f->e, &st);
    assert_int_equal(st.malformed, 4);
    assert_int_equal(f->n_req, 0);
    fx_free(f);
}

static void test_bad_options(void **state)
{
    (void)state;
    fixture_t *f = fx_new(NULL);
    coap_pdu_t p;
    req(f, COAP_TYPE_CON, COAP_GET, 1, "a");
    path(f, "x");
    coap_builder_opt(&f->b, 13, (const uint8_t *)"z", 1); /* unknown critical */
    feed(f);
    assert_int_equal(sent_pdu(&f->peer, 0, &p), 0);
    assert_int_equal(p.code, COAP_BAD_OPTION);
    assert_int_equal(p.type, COAP_TYPE_ACK);
    req(f, COAP_TYPE_CON, COAP_GET, 2, "a");
    path(f, "x");
    coap_builder_opt(&f->b, 16, (const uint8_t *)"z", 1); /* unknown elective: ignored */
    feed(f);
    assert_int_equal(sent_pdu(&f->peer, 1, &p), 0);
    assert_int_equal(p.code, COAP_CONTENT);
    req(f, COAP_TYPE_CON, COAP_GET, 3, "a");
    coap_builder_opt(&f->b, COAP_OPT_PROXY_URI, (const uint8_t *)"coap://h/", 9);
    feed(f);
    assert_int_equal(sent_pdu(&f->peer, 2, &p), 0);
    assert_int_equal(p.code, COAP_CODE(5, 5));
    req(f, COAP_TYPE_CON, COAP_GET, 4, "a");
    for (int i = 0; i < COAP_MAX_PATH_SEGS + 1; i++)
        path(f, "s");
    feed(f);
    assert_int_equal(sent_pdu(&f->peer, 3, &p), 0);
    assert_int_equal(p.code, COAP_BAD_REQUEST);
    assert_int_equal(f->n_req, 1);
    fx_free(f);
}

static void test_uri_path_split(void **state)
{
    (void)state;
    fixture_t *f = fx_new(NULL);
    req(f, COAP_TYPE_NON, COAP_POST, 1, NULL);
    path(f, "/api/v1/TOKEN/telemetry");
    feed(f);
    assert_int_equal(f->n_path, 4);
    assert_string_equal(f->path[0], "api");
    assert_string_equal(f->path[2], "TOKEN");
    assert_string_equal(f->path[3], "telemetry");
    req(f, COAP_TYPE_NON, COAP_POST, 2, NULL);
    path(f, "api");
    path(f, "v1/x");
    feed(f); /* two options: not split */
    assert_int_equal(f->n_path, 2);
    assert_string_equal(f->path[1], "v1/x");
    fx_free(f);
}

static void test_mids_below_65000(void **state)
{
    (void)state;
    fixture_t *f = fx_new(NULL);
    f->e->next_mid = 64998;
    assert_int_equal(coap__next_mid(f->e), 64998);
    assert_int_equal(coap__next_mid(f->e), 64999);
    assert_int_equal(coap__next_mid(f->e), 0);
    f->e->next_mid = 64990;
    for (uint16_t i = 0; i < 20; i++) {
        req(f, COAP_TYPE_NON, COAP_GET, (uint16_t)(500 + i), NULL);
        feed(f);
        coap_pdu_t p;
        assert_int_equal(sent_pdu(&f->peer, i, &p), 0);
        assert_true(p.mid < 65000);
    }
    fx_free(f);
}

static void short_life(coap_engine_cfg_t *c)
{
    c->exchange_lifetime_ms = 40;
}

static void test_state_released_after_lifetime(void **state)
{
    (void)state;
    fixture_t *f = fx_new(short_life);
    req(f, COAP_TYPE_CON, COAP_GET, 1, NULL);
    feed(f);
    assert_non_null(f->peer.base.engine_state);
    assert_int_equal(f->peer.base.refcnt, 2);
    run_for(f->loop, 120);
    assert_null(f->peer.base.engine_state);
    assert_int_equal(f->peer.base.refcnt, 1);
    /* After expiry the same MID is a new request. */
    feed(f);
    assert_int_equal(f->n_req, 2);
    fx_free(f);
}

static void tiny_dedup(coap_engine_cfg_t *c)
{
    c->max_dedup_entries = 3;
}

static void test_dedup_cap(void **state)
{
    (void)state;
    fixture_t *f = fx_new(tiny_dedup);
    for (uint16_t m = 1; m <= 5; m++) {
        req(f, COAP_TYPE_CON, COAP_GET, m, NULL);
        feed(f);
    }
    assert_int_equal(f->e->n_dedup, 3);
    req(f, COAP_TYPE_CON, COAP_GET, 5, NULL);
    feed(f);
    assert_int_equal(f->n_req, 5); /* still remembered */
    fx_free(f);
}

/* Steady state allocates nothing: at the dedup cap the evicted entry is the next one added,
 * and exchanges come back to the engine's spare list. A request key longer than the inline
 * buffer and a response longer than the inline replay buffer take the heap and still work. */
static void test_spares_reused(void **state)
{
    (void)state;
    fixture_t *f = fx_new(tiny_dedup);
    f->respond_now = true;
    for (uint16_t m = 1; m <= 3; m++) {
        req(f, COAP_TYPE_CON, COAP_GET, m, NULL);
        feed(f);
    }
    assert_int_equal(f->e->n_dedup, 3);
    assert_int_equal(f->e->n_spare_x, 1); /* one exchange, reused for every request */
    assert_int_equal(f->e->n_spare_d, 0);
    coap_exchange_t *spare = f->e->spare_x;
    for (uint16_t m = 4; m <= 40; m++) {
        req(f, COAP_TYPE_CON, COAP_GET, m, NULL);
        feed(f);
        assert_ptr_equal(f->e->spare_x, spare);
        assert_int_equal(f->e->n_dedup, 3);
        assert_int_equal(f->e->n_spare_d, 0); /* the evicted entry was taken at once */
    }
    assert_int_equal(f->n_req, 40);

    /* A 200-byte Uri-Path (key on the heap) answered with a 2-byte payload: the inline
     * replay buffer holds the ACK, and a duplicate gets the same bytes. */
    char seg[201];
    memset(seg, 's', 200);
    seg[200] = '\0';
    req(f, COAP_TYPE_CON, COAP_GET, 100, "tok12345");
    path(f, seg);
    feed(f);
    feed(f);
    size_t n = f->peer.n_sent;
    assert_int_equal(f->n_req, 41);
    assert_int_equal(f->peer.sent_len[n - 1], f->peer.sent_len[n - 2]);
    assert_memory_equal(f->peer.sent[n - 1], f->peer.sent[n - 2], f->peer.sent_len[n - 1]);
    fx_free(f); /* spares freed with the engine (LeakSanitizer checks) */
}

static void short_lifetime(coap_engine_cfg_t *c)
{
    c->exchange_lifetime_ms = 20; /* gc every 10 ms */
}

/* The spare lists are bounded: after a burst of more pending exchanges than
 * COAP_SPARE_EXCHANGES, and more expired dedup entries than COAP_SPARE_DEDUPS, only that many
 * are kept and the rest go back to malloc (LeakSanitizer checks them and the kept ones at
 * teardown). The kept ones are what the next requests use. */
static void test_spares_capped(void **state)
{
    (void)state;
    enum { N = COAP_SPARE_EXCHANGES + 100 };
    _Static_assert(N > COAP_SPARE_DEDUPS, "the burst must overflow both lists");
    fixture_t *f = fx_new(short_lifetime);
    f->respond_now = false;
    coap_exchange_t **xs = calloc(N, sizeof *xs);
    for (size_t i = 0; i < N; i++) {
        req(f, COAP_TYPE_NON, COAP_POST, (uint16_t)(i + 1), NULL);
        path(f, "t");
        feed(f);
        xs[i] = f->pending;
        assert_non_null(xs[i]);
        if (i > 0)
            assert_ptr_not_equal(xs[i], xs[i - 1]);
    }
    assert_int_equal(f->e->n_dedup, N);
    assert_int_equal(f->e->n_spare_x, 0);
    for (size_t i = 0; i < N; i++)
        coap_exchange_respond(xs[i], COAP_CHANGED, COAP_CF_NONE, NULL, 0);
    assert_int_equal(f->e->n_spare_x, COAP_SPARE_EXCHANGES);
    assert_int_equal(f->e->n_spare_d, 0);

    /* Every dedup entry expires; only COAP_SPARE_DEDUPS are kept. */
    for (int i = 0; i < 50 && f->e->n_dedup > 0; i++)
        run_for(f->loop, 10);
    assert_int_equal(f->e->n_dedup, 0);
    assert_int_equal(f->e->n_spare_d, COAP_SPARE_DEDUPS);
    assert_null(f->peer.base.engine_state); /* the idle peer was released */

    /* The next request takes one of each from the lists. */
    coap_exchange_t *sx = f->e->spare_x;
    coap_dedup_t *sd = f->e->spare_d;
    f->peer.n_sent = 0; /* the fake peer records only its first FAKE_MAX_SENT datagrams */
    req(f, COAP_TYPE_CON, COAP_GET, 0x7777, "ab");
    path(f, "u");
    feed(f);
    assert_ptr_equal(f->pending, sx);
    assert_ptr_equal(sx->d, sd);
    assert_int_equal(sd->mid, 0x7777);
    assert_int_equal(f->e->n_spare_x, COAP_SPARE_EXCHANGES - 1);
    assert_int_equal(f->e->n_spare_d, COAP_SPARE_DEDUPS - 1);
    /* The reused exchange starts clean: the answer is a piggybacked ACK with its token. */
    coap_exchange_respond(f->pending, COAP_CONTENT, COAP_CF_TEXT, (const uint8_t *)"ok", 2);
    assert_int_equal(f->peer.n_sent, 1);
    coap_pdu_t p;
    assert_int_equal(sent_pdu(&f->peer, 0, &p), 0);
    assert_int_equal(p.type, COAP_TYPE_ACK);
    assert_int_equal(p.mid, 0x7777);
    assert_int_equal(p.tkl, 2);
    assert_memory_equal(p.token, "ab", 2);
    assert_int_equal(p.payload_len, 2);
    assert_int_equal(f->e->n_spare_x, COAP_SPARE_EXCHANGES);
    free(xs);
    fx_free(f);
}

static void test_engine_free_with_pending_exchange(void **state)
{
    (void)state;
    fixture_t *f = fx_new(NULL);
    f->respond_now = false;
    req(f, COAP_TYPE_CON, COAP_GET, 1, NULL);
    feed(f);
    coap_exchange_t *x = f->pending;
    assert_ptr_equal(coap_exchange_peer(x), &f->peer.base);
    coap_engine_free(f->e);
    f->e = NULL;
    assert_int_equal(f->peer.base.refcnt, 1);
    coap_exchange_respond(x, COAP_CONTENT, COAP_CF_NONE, NULL, 0); /* dropped, freed */
    assert_int_equal(f->peer.n_sent, 0);
    fx_free(f);
}

static void test_peer_closed_with_pending_exchange(void **state)
{
    (void)state;
    fixture_t *f = fx_new(NULL);
    f->respond_now = false;
    req(f, COAP_TYPE_CON, COAP_GET, 1, NULL);
    feed(f);
    coap_engine_peer_closed(f->e, &f->peer.base);
    assert_null(f->peer.base.engine_state);
    assert_int_equal(f->peer.base.refcnt, 1);
    assert_null(coap_exchange_peer(f->pending));
    coap_exchange_respond(f->pending, COAP_CONTENT, COAP_CF_NONE, NULL, 0);
    run_for(f->loop, 40);
    assert_int_equal(f->peer.n_sent, 0);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_piggyback_and_dedup),
        cmocka_unit_test(test_separate_response_retransmit),
        cmocka_unit_test(test_separate_response_acked),
        cmocka_unit_test(test_piggyback_deadline_300_800),
        cmocka_unit_test(test_non_request),
        cmocka_unit_test(test_max_age),
        cmocka_unit_test(test_ping_and_rejects),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_uri_path_split),
        cmocka_unit_test(test_mids_below_65000),
        cmocka_unit_test(test_state_released_after_lifetime),
        cmocka_unit_test(test_dedup_cap),
        cmocka_unit_test(test_spares_reused),
        cmocka_unit_test(test_spares_capped),
        cmocka_unit_test(test_engine_free_with_pending_exchange),
        cmocka_unit_test(test_peer_closed_with_pending_exchange),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
