/* coap_fake.h — test helpers for the CoAP engine: a fake transport peer that records sent
 * datagrams, a request builder, a bounded loop run and a fixture (engine on a real loop).
 * Header-only for the coap tests; include <cmocka.h> first. */
#ifndef COAPHUB_TESTS_COAP_FAKE_H
#define COAPHUB_TESTS_COAP_FAKE_H

#include "coap/coap.h"
#include "coap/coap_int.h"
#include "coap/pdu.h"
#include "core/clock.h"
#include "core/loop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAKE_MAX_SENT 256

typedef struct fake_peer {
    transport_peer_t base;
    uint8_t sent[FAKE_MAX_SENT][1500];
    size_t sent_len[FAKE_MAX_SENT];
    int64_t sent_at[FAKE_MAX_SENT];
    size_t n_sent;
    int destroyed;
} fake_peer_t;

static int fake_send(transport_peer_t *p, const uint8_t *d, size_t len)
{
    fake_peer_t *f = (fake_peer_t *)p;
    if (f->n_sent < FAKE_MAX_SENT && len <= sizeof f->sent[0]) {
        memcpy(f->sent[f->n_sent], d, len);
        f->sent_len[f->n_sent] = len;
        f->sent_at[f->n_sent] = clock_mono_ms();
        f->n_sent++;
    }
    return 0;
}

static void fake_destroy(transport_peer_t *p)
{
    ((fake_peer_t *)p)->destroyed++;
}

static const transport_ops_t fake_ops = {.send = fake_send, .destroy = fake_destroy};

static inline void fake_peer_init(fake_peer_t *f)
{
    memset(f, 0, sizeof *f);
    f->base.ops = &fake_ops;
    f->base.refcnt = 1; /* the transport's own reference */
}

static void stop_cb(loop_t *loop, void *arg)
{
    (void)arg;
    loop_stop(loop);
}

/* Runs the loop for about ms milliseconds. */
static inline void run_for(loop_t *loop, int64_t ms)
{
    loop_timer_t t;
    loop_timer_init(&t, stop_cb, NULL);
    loop_timer_arm(loop, &t, ms);
    loop_run(loop);
    loop_timer_cancel(loop, &t);
}

/* Parses the i-th datagram the peer was sent. */
static inline int sent_pdu(const fake_peer_t *f, size_t i, coap_pdu_t *pdu)
{
    return coap_pdu_parse(pdu, f->sent[i], f->sent_len[i]);
}

typedef struct fixture {
    loop_t *loop;
    coap_engine_t *e;
    coap_engine_cfg_t cfg;
    fake_peer_t peer;
    int n_req;
    bool respond_now;
    coap_exchange_t *pending;
    char path[8][32];
    size_t n_path;
    uint8_t rx[1500];
    coap_builder_t b;
    /* observe bookkeeping */
    bool observe;
    coap_observer_t *obs;
    int n_end;
    coap_obs_end_t last_end;
    int n_result, n_acked;
    uint8_t resp_code;
    const uint8_t *body;
    size_t body_len;
    uint8_t got[4096];
    size_t got_len;
    bool cancel_in_result; /* on_notify_result cancels the relation */
    bool close_in_request; /* on_request closes the peer before answering */
} fixture_t;

/* Each test file defines these. */
static void on_request(void *app, coap_exchange_t *x, const coap_request_t *req);
static void on_observe_end(void *app, coap_observer_t *obs, void *data, coap_obs_end_t why);
static void on_notify_result(void *app, void *data, void *cookie, bool acked);


static inline fixture_t *fx_new(void (*tweak)(coap_engine_cfg_t *))
{
    fixture_t *f = calloc(1, sizeof *f);
    char err[ERR_LEN];
    f->loop = loop_new(err);
    assert_non_null(f->loop);
    coap_engine_cfg_default(&f->cfg);
    f->cfg.piggyback_ms = 20;
    f->cfg.ack_timeout_ms = 10;
    f->cfg.ack_random_factor = 1.0;
    f->cfg.exchange_lifetime_ms = 1000;
    if (tweak)
        tweak(&f->cfg);
    coap_engine_ops_t ops = {.on_request = on_request,
                             .on_observe_end = on_observe_end,
                             .on_notify_result = on_notify_result};
    f->e = coap_engine_new(f->loop, &f->cfg, &ops, f);
    fake_peer_init(&f->peer);
    f->respond_now = true;
    return f;
}

static inline void fx_free(fixture_t *f)
{
    if (f->e)
        coap__engine_validate(f->e);
    coap_engine_free(f->e);
    assert_int_equal(f->peer.base.refcnt, 1); /* every engine reference released */
    assert_null(f->peer.base.engine_state);
    loop_free(f->loop);
    free(f);
}

static inline void req(fixture_t *f, uint8_t type, uint8_t code, uint16_t mid, const char *tok)
{
    coap_builder_init(&f->b, f->rx, sizeof f->rx, type, code, mid, (const uint8_t *)tok,
                      tok ? strlen(tok) : 0);
}

static inline void path(fixture_t *f, const char *seg)
{
    coap_builder_opt(&f->b, COAP_OPT_URI_PATH, (const uint8_t *)seg, strlen(seg));
}

static inline void feed(fixture_t *f)
{
    ssize_t n = coap_builder_finish(&f->b);
    assert_true(n > 0);
    coap_engine_input(f->e, &f->peer.base, f->rx, (size_t)n);
    coap__engine_validate(f->e);
}

static inline void feed_raw(fixture_t *f, const char *p, size_t len)
{
    coap_engine_input(f->e, &f->peer.base, (const uint8_t *)p, len);
    coap__engine_validate(f->e);
}

#endif
