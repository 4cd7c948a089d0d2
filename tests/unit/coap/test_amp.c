/* test_amp.c — the amplification guard (amp.c, response.c): replies to an unverified plain-UDP
 * address within amp_factor x the request (Block2 at a small SZX with Echo, trimmed
 * diagnostics, 4.01 + Echo when nothing fits, no replay of a larger cached reply), verification
 * by an Echo value or by the ACK of a CON (random MID), CON notifications while unverified,
 * the verified table's cap, and the cases it leaves alone (DTLS, factor 0, no address). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "coap/coap_int.h"
#include "unit/coap/coap_fake.h"

#include <arpa/inet.h>
#include <netinet/in.h>

static uint8_t big[3000];

static void on_request(void *app, coap_exchange_t *x, const coap_request_t *req)
{
    fixture_t *f = app;
    f->n_req++;
    if (f->observe && req->has_observe && req->observe == 0)
        f->obs = coap_exchange_observe(x, f);
    if (f->pending == (coap_exchange_t *)1) { /* the block_ext handler */
        uint32_t num;
        size_t size;
        uint64_t off;
        coap_exchange_block2(x, &num, &size, &off);
        size_t n = off >= sizeof big ? 0 : sizeof big - off < size ? sizeof big - off : size;
        coap_exchange_respond_block(x, COAP_CONTENT, COAP_CF_OCTET, big + off, n, sizeof big, NULL,
                                    0);
        return;
    }
    coap_exchange_respond(x, f->resp_code ? f->resp_code : COAP_CONTENT, COAP_CF_JSON, f->body,
                          f->body_len);
}

static void on_observe_end(void *app, coap_observer_t *obs, void *data, coap_obs_end_t why)
{
    fixture_t *f = app;
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
}

/* A fake Echo provider: the value is "E" followed by the peer's port (2 bytes). */
static size_t echo_make(void *ctx, const transport_peer_t *p, int64_t now, uint8_t *out, size_t cap)
{
    (void)ctx;
    (void)now;
    const struct sockaddr_in *s = (const struct sockaddr_in *)(const void *)&p->addr;
    assert_true(cap >= 3);
    out[0] = 'E';
    memcpy(out + 1, &s->sin_port, 2);
    return 3;
}

static bool echo_check(void *ctx, const transport_peer_t *p, int64_t now, const uint8_t *v,
                       size_t len)
{
    uint8_t want[3];
    return len == 3 && echo_make(ctx, p, now, want, sizeof want) == 3 && !memcmp(v, want, 3);
}

static void set_addr(fake_peer_t *p, uint16_t port)
{
    struct sockaddr_in *s = (struct sockaddr_in *)(void *)&p->base.addr;
    s->sin_family = AF_INET;
    s->sin_port = htons(port);
    s->sin_addr.s_addr = htonl(0x7f000001);
    p->base.addr_len = sizeof *s;
}

static fixture_t *amp_fx(void (*tweak)(coap_engine_cfg_t *))
{
    fixture_t *f = fx_new(tweak);
    set_addr(&f->peer, 5000);
    coap_engine_set_echo(f->e, &(coap_echo_ops_t){.make = echo_make, .check = echo_check});
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)('a' + i % 26);
    f->body = big;
    f->body_len = sizeof big;
    return f;
}

/* The request in f->b, fed; returns its size. */
static size_t feed_n(fixture_t *f)
{
    ssize_t n = coap_builder_finish(&f->b);
    assert_true(n > 0);
    coap_engine_input(f->e, &f->peer.base, f->rx, (size_t)n);
    coap__engine_validate(f->e);
    return (size_t)n;
}

static size_t get(fixture_t *f, uint16_t mid, int num, uint8_t szx, const uint8_t *echo,
                  size_t echo_len)
{
    req(f, COAP_TYPE_CON, COAP_GET, mid, "tok4");
    path(f, "api");
    path(f, "attributes");
    if (num >= 0) {
        coap_block_t b = {.num = (uint32_t)num, .szx = szx};
        coap_builder_opt_uint(&f->b, COAP_OPT_BLOCK2, coap_block_encode(&b));
    }
    if (echo_len)
        coap_builder_opt(&f->b, COAP_OPT_ECHO, echo, echo_len);
    return feed_n(f);
}

static bool opt_bytes(const coap_pdu_t *p, uint16_t num, const uint8_t **v, size_t *len)
{
    int i = coap_pdu_opt_find(p, num, 0);
    if (i < 0)
        return false;
    *v = coap_pdu_opt_value(p, (size_t)i, len);
    return true;
}

/* A large body to an unverified address comes block by block, every reply <= 3x its
 * request, block 0 with an Echo; the blocks put together are the body. */
static void test_block2_within_budget(void **state)
{
    (void)state;
    fixture_t *f = amp_fx(NULL);
    uint8_t got[sizeof big];
    size_t got_len = 0;
    int num = -1;
    uint8_t szx = 6;
    for (int i = 0; i < 400; i++) {
        size_t q = get(f, (uint16_t)(100 + i), num, szx, NULL, 0);
        size_t k = f->peer.n_sent - 1;
        assert_true(f->peer.sent_len[k] <= 3 * q);
        coap_pdu_t p;
        assert_int_equal(sent_pdu(&f->peer, k, &p), 0);
        assert_int_equal(p.code, COAP_CONTENT);
        uint32_t v;
        assert_int_equal(coap_pdu_opt_uint(&p, COAP_OPT_BLOCK2, &v), 0);
        coap_block_t b;
        assert_int_equal(coap_block_decode(v, &b), 0);
        if (i == 0) {
            const uint8_t *e;
            size_t elen;
            assert_true(opt_bytes(&p, COAP_OPT_ECHO, &e, &elen));
            assert_int_equal(elen, 3);
            assert_true(b.szx < 6);
            /* The largest SZX that fits: one size up would not. */
            assert_true(f->peer.sent_len[k] + coap_block_size(b.szx) > 3 * q);
        }
        memcpy(got + got_len, p.payload, p.payload_len);
        got_len += p.payload_len;
        if (!b.more)
            break;
        num = (int)b.num + 1;
        szx = b.szx;
    }
    assert_int_equal(got_len, sizeof big);
    assert_memory_equal(got, big, sizeof big);
    assert_false(coap_engine_addr_verified(f->e, &f->peer.base));
    coap_engine_stats_t st;
    coap_engine_get_stats(f->e, &st);
    /* Only block 0 had to be shortened: the follow-ups ask for its small size themselves. */
    assert_int_equal(st.amp_block2, 1);
    fx_free(f);
}

/* An Echo value we issued verifies the address: the same request then gets the full reply;
 * a wrong value changes nothing. */
static void test_echo_verifies(void **state)
{
    (void)state;
    fixture_t *f = amp_fx(NULL);
    size_t q = get(f, 1, -1, 0, (const uint8_t *)"Exx", 3);
    assert_true(f->peer.sent_len[0] <= 3 * q);
    coap_pdu_t p;
    assert_int_equal(sent_pdu(&f->peer, 0, &p), 0);
    const uint8_t *e;
    size_t elen;
    assert_true(opt_bytes(&p, COAP_OPT_ECHO, &e, &elen));
    uint8_t echo[3];
    memcpy(echo, e, 3);
    q = get(f, 2, -1, 0, echo, 3);
    assert_true(coap_engine_addr_verified(f->e, &f->peer.base));
    assert_true(f->peer.sent_len[1] > 1024); /* block 0 at the configured 1024 bytes */
    assert_int_equal(sent_pdu(&f->peer, 1, &p), 0);
    assert_false(opt_bytes(&p, COAP_OPT_ECHO, &e, &elen));
    /* Another port of the same host is another address. */
    set_addr(&f->peer, 5001);
    assert_false(coap_engine_addr_verified(f->e, &f->peer.base));
    coap_engine_stats_t st;
    coap_engine_get_stats(f->e, &st);
    assert_int_equal(st.amp_verified_echo, 1);
    assert_int_equal(st.amp_verified, 1);
    set_addr(&f->peer, 5000);
    fx_free(f);
}

/* An error's diagnostic payload is cut to the budget; a request too small for anything gets a
 * 4.01 (with Echo when it fits). */
static void test_trim_and_401(void **state)
{
    (void)state;
    fixture_t *f = amp_fx(NULL);
    f->resp_code = COAP_BAD_REQUEST;
    size_t q = get(f, 1, -1, 0, NULL, 0);
    coap_pdu_t p;
    assert_int_equal(sent_pdu(&f->peer, 0, &p), 0);
    assert_int_equal(p.code, COAP_BAD_REQUEST);
    assert_true(p.payload_len > 0);
    assert_true(f->peer.sent_len[0] <= 3 * q);
    assert_memory_equal(p.payload, big, p.payload_len);
    /* A bare 4-byte request (no token, no path): only a 4.01 fits in 12 bytes. */
    f->resp_code = 0;
    req(f, COAP_TYPE_CON, COAP_GET, 2, NULL);
    q = feed_n(f);
    assert_int_equal(q, 4);
    assert_true(f->peer.sent_len[1] <= 12);
    assert_int_equal(sent_pdu(&f->peer, 1, &p), 0);
    assert_int_equal(p.code, COAP_UNAUTHORIZED);
    /* With a 2-byte token there is room for the Echo (4+2+3+3 <= 18). */
    req(f, COAP_TYPE_CON, COAP_GET, 3, "ab");
    q = feed_n(f);
    assert_int_equal(sent_pdu(&f->peer, 2, &p), 0);
    assert_int_equal(p.code, COAP_UNAUTHORIZED);
    const uint8_t *e;
    size_t elen;
    assert_true(opt_bytes(&p, COAP_OPT_ECHO, &e, &elen));
    assert_true(f->peer.sent_len[2] <= 3 * q);
    coap_engine_stats_t st;
    coap_engine_get_stats(f->e, &st);
    assert_int_equal(st.amp_trim, 1);
    assert_int_equal(st.amp_echo, 2);
    fx_free(f);
}

/* A short datagram reusing the MID of a request whose reply was larger is not answered with
 * the cached reply; a true retransmission is. */
static void test_no_replay_to_short_duplicate(void **state)
{
    (void)state;
    fixture_t *f = amp_fx(NULL);
    size_t q = get(f, 9, -1, 0, NULL, 0);
    assert_int_equal(f->peer.n_sent, 1);
    assert_true(f->peer.sent_len[0] > 12);
    get(f, 9, -1, 0, NULL, 0); /* the same bytes again */
    assert_int_equal(f->peer.n_sent, 2);
    assert_int_equal(f->peer.sent_len[1], f->peer.sent_len[0]);
    assert_true(f->peer.sent_len[1] <= 3 * q);
    req(f, COAP_TYPE_CON, COAP_GET, 9, NULL); /* 4 bytes, same MID */
    feed_n(f);
    assert_int_equal(f->peer.n_sent, 2);
    coap_engine_stats_t st;
    coap_engine_get_stats(f->e, &st);
    assert_int_equal(st.amp_drop, 1);
    fx_free(f);
}

/* RFC 7641 §7: notifications to an unverified address are block 0 only, one CON at a time;
 * the ACK verifies the address and the next ones are whole. */
static void test_observe_unverified(void **state)
{
    (void)state;
    fixture_t *f = amp_fx(NULL);
    f->observe = true;
    f->body = (const uint8_t *)"{}";
    f->body_len = 2;
    req(f, COAP_TYPE_CON, COAP_GET, 1, "ob");
    coap_builder_opt_uint(&f->b, COAP_OPT_OBSERVE, 0);
    path(f, "api");
    path(f, "attributes");
    size_t q = feed_n(f);
    assert_non_null(f->obs);
    assert_int_equal(f->peer.n_sent, 1);
    assert_int_equal(coap_observer_notify(f->obs, COAP_CONTENT, COAP_CF_JSON, big, 2000, NULL), 0);
    assert_int_equal(coap_observer_notify(f->obs, COAP_CONTENT, COAP_CF_JSON, big, 2000, NULL), 0);
    assert_int_equal(f->peer.n_sent, 2); /* the second waits for the first's ACK */
    coap_pdu_t p;
    assert_int_equal(sent_pdu(&f->peer, 1, &p), 0);
    assert_int_equal(p.type, COAP_TYPE_CON);
    assert_true(f->peer.sent_len[1] <= 3 * q);
    uint32_t v;
    assert_int_equal(coap_pdu_opt_uint(&p, COAP_OPT_BLOCK2, &v), 0);
    assert_true(v & 8); /* more */
    /* The ACK proves the address. */
    uint8_t ack[4] = {0x60, 0, (uint8_t)(p.mid >> 8), (uint8_t)p.mid};
    feed_raw(f, (const char *)ack, 4);
    assert_true(coap_engine_addr_verified(f->e, &f->peer.base));
    assert_int_equal(f->peer.n_sent, 3); /* the queued one, now whole (1024-byte block) */
    assert_true(f->peer.sent_len[2] > 1024);
    coap_engine_stats_t st;
    coap_engine_get_stats(f->e, &st);
    assert_int_equal(st.amp_verified_ack, 1);
    fx_free(f);
}

/* A NON relation stays NON (a power-saving device must not be made to ACK), each notification
 * bounded; the CON that max_non_notifications calls for has a MID nobody could predict from
 * the counter and its ACK verifies. */
static void test_observe_non_unverified(void **state)
{
    (void)state;
    fixture_t *f = amp_fx(NULL);
    f->observe = true;
    f->body = (const uint8_t *)"{}";
    f->body_len = 2;
    req(f, COAP_TYPE_NON, COAP_GET, 1, "ob");
    coap_builder_opt_uint(&f->b, COAP_OPT_OBSERVE, 0);
    path(f, "api");
    path(f, "attributes");
    size_t q = feed_n(f);
    assert_non_null(f->obs);
    int n = f->cfg.max_non_notifications;
    for (int i = 0; i <= n; i++)
        assert_int_equal(coap_observer_notify(f->obs, COAP_CONTENT, COAP_CF_JSON, big, 2000, NULL),
                         0);
    assert_int_equal(f->peer.n_sent, 1 + (size_t)n + 1);
    coap_pdu_t p;
    for (int i = 1; i <= n + 1; i++) {
        assert_int_equal(sent_pdu(&f->peer, (size_t)i, &p), 0);
        assert_int_equal(p.type, i <= n ? COAP_TYPE_NON : COAP_TYPE_CON);
        assert_true(f->peer.sent_len[i] <= 3 * q);
    }
    assert_false(coap_engine_addr_verified(f->e, &f->peer.base));
    uint8_t ack[4] = {0x60, 0, (uint8_t)(p.mid >> 8), (uint8_t)p.mid};
    feed_raw(f, (const char *)ack, 4);
    assert_true(coap_engine_addr_verified(f->e, &f->peer.base));
    fx_free(f);
}

static void cap_two(coap_engine_cfg_t *c)
{
    c->amp_verified_max = 2;
}

/* At the cap the least recently verified address is forgotten. */
static void test_verified_cap(void **state)
{
    (void)state;
    fixture_t *f = amp_fx(cap_two);
    for (uint16_t port = 6000; port < 6003; port++) {
        set_addr(&f->peer, port);
        coap_peer_t *ps = coap__peer_get(f->e, &f->peer.base);
        coap__amp_proven(ps, true);
        coap__peer_maybe_release(ps);
    }
    set_addr(&f->peer, 6000);
    assert_false(coap_engine_addr_verified(f->e, &f->peer.base));
    set_addr(&f->peer, 6002);
    assert_true(coap_engine_addr_verified(f->e, &f->peer.base));
    coap_engine_stats_t st;
    coap_engine_get_stats(f->e, &st);
    assert_int_equal(st.amp_verified, 2);
    fx_free(f);
}

static void short_ttl(coap_engine_cfg_t *c)
{
    c->amp_verified_ms = 30;
}

/* A verification lasts cfg.amp_verified_ms after the last proof, then replies shrink again. */
static void test_verified_expires(void **state)
{
    (void)state;
    fixture_t *f = amp_fx(short_ttl);
    coap_peer_t *ps = coap__peer_get(f->e, &f->peer.base);
    coap__amp_proven(ps, false);
    coap__peer_maybe_release(ps);
    assert_true(coap_engine_addr_verified(f->e, &f->peer.base));
    get(f, 1, -1, 0, NULL, 0);
    assert_true(f->peer.sent_len[0] > 1024);
    run_for(f->loop, 60);
    assert_false(coap_engine_addr_verified(f->e, &f->peer.base));
    size_t q = get(f, 2, -1, 0, NULL, 0);
    assert_true(f->peer.sent_len[1] <= 3 * q);
    fx_free(f);
}

static void factor_off(coap_engine_cfg_t *c)
{
    c->amp_factor = 0;
}

/* No guard: factor 0, a DTLS peer, a peer without an IP address. */
static void test_not_guarded(void **state)
{
    (void)state;
    fixture_t *f = amp_fx(factor_off);
    get(f, 1, -1, 0, NULL, 0);
    assert_true(f->peer.sent_len[0] > 1024);
    fx_free(f);
    f = amp_fx(NULL);
    f->peer.base.kind = TRANSPORT_DTLS;
    get(f, 1, -1, 0, NULL, 0);
    assert_true(f->peer.sent_len[0] > 1024);
    fx_free(f);
    f = amp_fx(NULL);
    memset(&f->peer.base.addr, 0, sizeof f->peer.base.addr);
    get(f, 1, -1, 0, NULL, 0);
    assert_true(f->peer.sent_len[0] > 1024);
    fx_free(f);
}

/* A handler that slices itself (coap_exchange_respond_block) is handed a block size within
 * the budget, and a client's larger SZX keeps its offset at the smaller size. */
static void test_block_ext_budget(void **state)
{
    (void)state;
    fixture_t *f = amp_fx(NULL);
    f->pending = (coap_exchange_t *)1;
    size_t q = get(f, 1, -1, 0, NULL, 0);
    assert_true(f->peer.sent_len[0] <= 3 * q);
    coap_pdu_t p;
    assert_int_equal(sent_pdu(&f->peer, 0, &p), 0);
    assert_int_equal(p.code, COAP_CONTENT);
    uint32_t v;
    assert_int_equal(coap_pdu_opt_uint(&p, COAP_OPT_BLOCK2, &v), 0);
    coap_block_t b;
    assert_int_equal(coap_block_decode(v, &b), 0);
    assert_true(b.szx < 6 && b.more);
    /* The client asks for block 1 at 64 bytes: offset 64, i.e. block 64 >> szx. */
    q = get(f, 2, 1, 2, NULL, 0);
    assert_true(f->peer.sent_len[1] <= 3 * q);
    assert_int_equal(sent_pdu(&f->peer, 1, &p), 0);
    assert_int_equal(coap_pdu_opt_uint(&p, COAP_OPT_BLOCK2, &v), 0);
    assert_int_equal(coap_block_decode(v, &b), 0);
    assert_int_equal((uint64_t)b.num * coap_block_size(b.szx), 64);
    assert_memory_equal(p.payload, big + 64, p.payload_len);
    f->pending = NULL;
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block2_within_budget),
        cmocka_unit_test(test_echo_verifies),
        cmocka_unit_test(test_trim_and_401),
        cmocka_unit_test(test_no_replay_to_short_duplicate),
        cmocka_unit_test(test_observe_unverified),
        cmocka_unit_test(test_observe_non_unverified),
        cmocka_unit_test(test_verified_cap),
        cmocka_unit_test(test_verified_expires),
        cmocka_unit_test(test_not_guarded),
        cmocka_unit_test(test_block_ext_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
