/* test_blockwise.c — RFC 7959 through the engine: Block1 reassembly with 2.31 Continue,
 * 4.08 on a gap, 4.13 + Size1 over max_body; Block2 slicing with Size2 and follow-ups served
 * from the cached body without calling the application again; and an application that serves
 * one block per request (coap_exchange_respond_block, as OTA downloads do). */
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

/* When set, on_request serves f->body a block at a time with coap_exchange_respond_block. */
static bool by_block;

static void on_request(void *app, coap_exchange_t *x, const coap_request_t *req)
{
    fixture_t *f = app;
    f->n_req++;
    if (by_block) {
        uint32_t num;
        size_t size;
        uint64_t off;
        coap_exchange_block2(x, &num, &size, &off);
        if (off >= f->body_len) {
            coap_exchange_respond(x, COAP_BAD_OPTION, COAP_CF_NONE, NULL, 0);
            return;
        }
        size_t len = f->body_len - off < size ? f->body_len - (size_t)off : size;
        static const uint8_t etag[4] = {1, 2, 3, 4};
        coap_exchange_respond_block(x, COAP_CONTENT, COAP_CF_OCTET, f->body + off, len, f->body_len,
                                    etag, sizeof etag);
        return;
    }
    f->got_len = req->payload.len < sizeof f->got ? req->payload.len : sizeof f->got;
    memcpy(f->got, req->payload.p, f->got_len);
    coap_exchange_respond(x, f->resp_code ? f->resp_code : COAP_CHANGED, COAP_CF_NONE, f->body,
                          f->body_len);
}

static void on_observe_end(void *app, coap_observer_t *obs, void *data, coap_obs_end_t why) {}
static void on_notify_result(void *app, void *data, void *cookie, bool acked) {}

static void small(coap_engine_cfg_t *c)
{
    c->max_body = 64;
    c->block_size = 16;
}

static uint8_t body[100];

static void block1(fixture_t *f, uint16_t mid, uint32_t num, bool more, size_t len)
{
    req(f, COAP_TYPE_CON, COAP_POST, mid, "b");
    path(f, "up");
    coap_block_t bl = {.num = num, .more = more, .szx = 0};
    coap_builder_opt_uint(&f->b, COAP_OPT_BLOCK1, coap_block_encode(&bl));
    coap_builder_payload(&f->b, body + num * 16, len);
    feed(f);
}

static uint8_t last_code(fixture_t *f, coap_pdu_t *p)
{
    assert_true(f->peer.n_sent > 0);
    assert_int_equal(sent_pdu(&f->peer, f->peer.n_sent - 1, p), 0);
    return p->code;
}

static void test_block1_reassembly(void **state)
{
    (void)state;
    fixture_t *f = fx_new(small);
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (uint8_t)i;
    coap_pdu_t p;
    block1(f, 1, 0, true, 16);
    assert_int_equal(last_code(f, &p), COAP_CODE(2, 31));
    uint32_t v;
    assert_int_equal(coap_pdu_opt_uint(&p, COAP_OPT_BLOCK1, &v), 0);
    assert_int_equal(v, 0x08); /* num 0, M, szx 0 */
    block1(f, 2, 1, true, 16);
    assert_int_equal(last_code(f, &p), COAP_CODE(2, 31));
    block1(f, 2, 1, true, 16); /* duplicate MID: replayed, not appended twice */
    block1(f, 3, 1, true, 16); /* same block under a new MID: accepted again */
    assert_int_equal(last_code(f, &p), COAP_CODE(2, 31));
    assert_int_equal(f->n_req, 0);
    block1(f, 4, 2, false, 8);
    assert_int_equal(f->n_req, 1);
    assert_int_equal(f->got_len, 40);
    assert_memory_equal(f->got, body, 40);
    assert_int_equal(last_code(f, &p), COAP_CHANGED);
    assert_int_equal(coap_pdu_opt_uint(&p, COAP_OPT_BLOCK1, &v), 0);
    assert_int_equal(v, 0x20); /* num 2, no M, szx 0 */
    assert_int_equal(f->e->block_mem, 0);
    fx_free(f);
}

static void test_block1_gap_and_too_large(void **state)
{
    (void)state;
    fixture_t *f = fx_new(small);
    coap_pdu_t p;
    block1(f, 1, 0, true, 16);
    block1(f, 2, 2, true, 16); /* block 1 missing */
    assert_int_equal(last_code(f, &p), COAP_REQUEST_ENTITY_INCOMPLETE);
    block1(f, 3, 3, false, 4); /* no transfer any more */
    assert_int_equal(last_code(f, &p), COAP_REQUEST_ENTITY_INCOMPLETE);
    for (uint32_t n = 0; n < 4; n++)
        block1(f, (uint16_t)(10 + n), n, true, 16);
    assert_int_equal(last_code(f, &p), COAP_CODE(2, 31));
    block1(f, 20, 4, true, 16); /* bytes 64..79 exceed max_body 64 */
    assert_int_equal(last_code(f, &p), COAP_REQUEST_ENTITY_TOO_LARGE);
    uint32_t v;
    assert_int_equal(coap_pdu_opt_uint(&p, COAP_OPT_SIZE1, &v), 0);
    assert_int_equal(v, 64);
    assert_int_equal(f->n_req, 0);
    assert_int_equal(f->e->block_mem, 0);
    /* Size1 announcing too much is refused at the first block. */
    req(f, COAP_TYPE_CON, COAP_POST, 30, "b");
    path(f, "up");
    coap_block_t bl = {.num = 0, .more = true, .szx = 0};
    coap_builder_opt_uint(&f->b, COAP_OPT_BLOCK1, coap_block_encode(&bl));
    coap_builder_opt_uint(&f->b, COAP_OPT_SIZE1, 1000);
    coap_builder_payload(&f->b, body, 16);
    feed(f);
    assert_int_equal(last_code(f, &p), COAP_REQUEST_ENTITY_TOO_LARGE);
    fx_free(f);
}

static void test_block1_abandoned_expires(void **state)
{
    (void)state;
    fixture_t *f = fx_new(small);
    f->cfg.exchange_lifetime_ms = 30;
    f->e->cfg.exchange_lifetime_ms = 30;
    block1(f, 1, 0, true, 16);
    assert_int_equal(f->e->block_mem, 16);
    run_for(f->loop, 100);
    assert_int_equal(f->e->block_mem, 0);
    assert_null(f->peer.base.engine_state);
    fx_free(f);
}

/* ---- admission and caps (issue 17) ---- */

/* The admission hook of these tests: token "bad" is refused 4.01 like the device API does;
 * any other token names its owner by its first byte; n_admit counts calls. */
static int n_admit;
static uint8_t admit(void *app, coap_exchange_t *x, coap_request_t *req)
{
    (void)app;
    (void)x;
    n_admit++;
    if (req->token.len == 3 && memcmp(req->token.p, "bad", 3) == 0)
        return COAP_UNAUTHORIZED;
    req->owner = req->token.len ? req->token.p[0] : 0;
    return 0;
}

/* A peer at 10.0.0.<host>:<port>. */
static void peer_at(fake_peer_t *p, uint8_t host, uint16_t port)
{
    fake_peer_init(p);
    struct sockaddr_in *a = (struct sockaddr_in *)&p->base.addr;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr.s_addr = htonl(0x0a000000u | host);
    p->base.addr_len = sizeof *a;
}

/* Block 0 (More) of an upload to /up from peer p with token tok; returns the answer's code
 * and its Max-Age (or -1) in *max_age. */
static uint8_t start_upload(fixture_t *f, fake_peer_t *p, uint16_t mid, const char *tok,
                            long *max_age)
{
    req(f, COAP_TYPE_CON, COAP_POST, mid, tok);
    path(f, "up");
    coap_block_t bl = {.num = 0, .more = true, .szx = 0};
    coap_builder_opt_uint(&f->b, COAP_OPT_BLOCK1, coap_block_encode(&bl));
    coap_builder_payload(&f->b, body, 16);
    ssize_t n = coap_builder_finish(&f->b);
    assert_true(n > 0);
    size_t before = p->n_sent;
    coap_engine_input(f->e, &p->base, f->rx, (size_t)n);
    coap__engine_validate(f->e);
    assert_int_equal(p->n_sent, before + 1);
    coap_pdu_t r;
    assert_int_equal(sent_pdu(p, p->n_sent - 1, &r), 0);
    uint32_t v;
    *max_age = coap_pdu_opt_uint(&r, COAP_OPT_MAX_AGE, &v) == 0 ? (long)v : -1;
    return r.code;
}

static void test_block1_admission_before_state(void **state)
{
    (void)state;
    fixture_t *f = fx_new(small);
    f->e->ops.admit = admit;
    n_admit = 0;
    long age;
    /* Unknown credentials: answered at block 0, nothing kept, the application not called. */
    assert_int_equal(start_upload(f, &f->peer, 1, "bad", &age), COAP_UNAUTHORIZED);
    assert_int_equal(f->e->block_mem, 0);
    assert_int_equal(f->n_req, 0);
    /* A later block of that transfer finds nothing either. */
    block1(f, 2, 1, true, 16);
    coap_pdu_t p;
    assert_int_equal(last_code(f, &p), COAP_REQUEST_ENTITY_INCOMPLETE);
    /* A duplicate is answered from the dedup cache without asking again. */
    int calls = n_admit;
    start_upload(f, &f->peer, 1, "bad", &age);
    assert_int_equal(n_admit, calls);
    /* An admitted one is kept. */
    assert_int_equal(start_upload(f, &f->peer, 3, "a", &age), COAP_CODE(2, 31));
    assert_int_equal(f->e->block_mem, 16);
    fx_free(f);
}

static void caps(coap_engine_cfg_t *c)
{
    small(c);
    c->block1_per_addr = 3;
    c->block1_per_owner = 2;
}

static void test_block1_caps(void **state)
{
    (void)state;
    fixture_t *f = fx_new(caps);
    f->e->ops.admit = admit;
    enum { N = 8 };
    fake_peer_t *p = calloc(N, sizeof *p);
    for (int i = 0; i < N; i++)
        peer_at(&p[i], i < 5 ? 1 : 2, (uint16_t)(1000 + i)); /* 0-4 on .1, 5-7 on .2 */
    long age;
    /* Per owner (2): owner "a"'s third upload evicts its least recently active one. */
    assert_int_equal(start_upload(f, &p[0], 1, "a", &age), COAP_CODE(2, 31));
    assert_int_equal(start_upload(f, &p[1], 1, "a", &age), COAP_CODE(2, 31));
    assert_int_equal(start_upload(f, &p[2], 1, "a", &age), COAP_CODE(2, 31));
    assert_int_equal(f->e->stats.block1_evicted_owner, 1);
    assert_int_equal(f->e->block_mem, 32);
    assert_true(coap_list_empty(&((coap_peer_t *)p[0].base.engine_state)->block1));
    /* Per address (3): .1 holds 2 ("a") + 1 ("b"); the next from .1 is refused 5.03 with a
     * Max-Age, whatever its port or owner. */
    assert_int_equal(start_upload(f, &p[3], 1, "b", &age), COAP_CODE(2, 31));
    assert_int_equal(start_upload(f, &p[4], 1, "c", &age), COAP_SERVICE_UNAVAILABLE);
    assert_true(age >= 1 && age <= 1); /* lifetime 1000 ms in the fixture */
    assert_int_equal(f->e->stats.block1_refused_addr, 1);
    /* ... and only for that address: .2 is served. */
    assert_int_equal(start_upload(f, &p[5], 1, "c", &age), COAP_CODE(2, 31));
    assert_int_equal(age, -1);
    /* Memory cap: with room for one more 16-byte block only, the second new upload is
     * refused 5.03 with Max-Age, counted. */
    f->e->cfg.block_mem_cap = f->e->block_mem + 16;
    assert_int_equal(start_upload(f, &p[6], 1, "d", &age), COAP_CODE(2, 31));
    assert_int_equal(start_upload(f, &p[7], 1, "e", &age), COAP_SERVICE_UNAVAILABLE);
    assert_true(age >= 1);
    assert_int_equal(f->e->stats.block1_refused_mem, 1);
    /* Abandoned transfers expire (the fixture's lifetime is 1 s; an operator's
     * --coap-block-lifetime-ms sets it) and their groups go with them. */
    f->e->cfg.block_lifetime_ms = 20;
    for (int i = 0; i < N; i++) {
        coap_peer_t *ps = p[i].base.engine_state;
        if (ps)
            for (coap_link_t *l = ps->block1.next; l != &ps->block1; l = l->next)
                COAP_CONTAINER(l, coap_bstate_t, link)->expires_ms = loop_now_ms(f->loop) + 20;
    }
    run_for(f->loop, 400); /* the gc runs every exchange_lifetime / 4 = 250 ms here */
    assert_int_equal(f->e->block_mem, 0);
    assert_int_equal(htab_count(&f->e->bgroups), 0);
    run_for(f->loop, 1000); /* and the dedup entries (1 s) that keep the peers */
    assert_true(f->e->stats.block1_expired >= 5);
    for (int i = 0; i < N; i++)
        assert_null(p[i].base.engine_state);
    fx_free(f);
    free(p);
}

static void test_oversize_answer(void **state)
{
    (void)state;
    fixture_t *f = fx_new(small);
    /* The first bytes of a 3000-byte CON POST: header, token, a cut-off option. */
    uint8_t d[40] = {0x42, COAP_POST, 0x12, 0x34, 't', 'k', 0xb2, 'u'};
    coap_engine_input_oversize(f->e, &f->peer.base, d, sizeof d, 3000);
    coap_pdu_t p;
    assert_int_equal(last_code(f, &p), COAP_REQUEST_ENTITY_TOO_LARGE);
    assert_int_equal(p.type, COAP_TYPE_ACK);
    assert_int_equal(p.mid, 0x1234);
    assert_int_equal(p.tkl, 2);
    assert_memory_equal(p.token, "tk", 2);
    uint32_t v;
    assert_int_equal(coap_pdu_opt_uint(&p, COAP_OPT_SIZE1, &v), 0);
    assert_int_equal(v, 64); /* max_body */
    assert_int_equal(coap_pdu_opt_uint(&p, COAP_OPT_BLOCK1, &v), 0);
    assert_int_equal(v, 0); /* block 0, no M, SZX 0 = 16 bytes (block_size) */
    /* Not a request, or too short for its token, or not CoAP: nothing. */
    size_t sent = f->peer.n_sent;
    uint8_t ack[8] = {0x60, 0x45, 0, 1};
    coap_engine_input_oversize(f->e, &f->peer.base, ack, sizeof ack, 2000);
    uint8_t cut[5] = {0x48, COAP_POST, 0, 2, 'x'};
    coap_engine_input_oversize(f->e, &f->peer.base, cut, sizeof cut, 2000);
    uint8_t v2[8] = {0x80, COAP_POST, 0, 3};
    coap_engine_input_oversize(f->e, &f->peer.base, v2, sizeof v2, 2000);
    assert_int_equal(f->peer.n_sent, sent);
    assert_int_equal(f->e->stats.oversize, 4);
    assert_null(f->peer.base.engine_state); /* stateless */
    fx_free(f);
}

static void get(fixture_t *f, uint16_t mid, int num, uint8_t szx)
{
    req(f, COAP_TYPE_CON, COAP_GET, mid, "g");
    path(f, "big");
    if (num >= 0) {
        coap_block_t bl = {.num = (uint32_t)num, .more = false, .szx = szx};
        coap_builder_opt_uint(&f->b, COAP_OPT_BLOCK2, coap_block_encode(&bl));
    }
    feed(f);
}

static void test_block2_slicing(void **state)
{
    (void)state;
    fixture_t *f = fx_new(small);
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (uint8_t)(200 - i);
    f->body = body;
    f->body_len = 40;
    f->resp_code = COAP_CONTENT;
    coap_pdu_t p;
    get(f, 1, -1, 0);
    assert_int_equal(last_code(f, &p), COAP_CONTENT);
    uint32_t v;
    assert_int_equal(coap_pdu_opt_uint(&p, COAP_OPT_BLOCK2, &v), 0);
    assert_int_equal(v, 0x08);
    assert_int_equal(coap_pdu_opt_uint(&p, COAP_OPT_SIZE2, &v), 0);
    assert_int_equal(v, 40);
    assert_int_equal(p.payload_len, 16);
    assert_memory_equal(p.payload, body, 16);
    get(f, 2, 1, 0);
    assert_int_equal(last_code(f, &p), COAP_CONTENT);
    assert_int_equal(coap_pdu_opt_uint(&p, COAP_OPT_BLOCK2, &v), 0);
    assert_int_equal(v, 0x18);
    assert_memory_equal(p.payload, body + 16, 16);
    assert_int_equal(coap_pdu_opt_uint(&p, COAP_OPT_SIZE2, &v), -ENOENT);
    get(f, 3, 2, 0);
    assert_int_equal(coap_pdu_opt_uint(&p, COAP_OPT_BLOCK2, &v), 0);
    last_code(f, &p);
    assert_int_equal(coap_pdu_opt_uint(&p, COAP_OPT_BLOCK2, &v), 0);
    assert_int_equal(v, 0x20);
    assert_int_equal(p.payload_len, 8);
    assert_memory_equal(p.payload, body + 32, 8);
    assert_int_equal(f->n_req, 1); /* follow-ups came from the cache */
    get(f, 4, 5, 0);               /* beyond the body */
    assert_int_equal(last_code(f, &p), COAP_BAD_OPTION);
    fx_free(f);
}

static void test_block2_client_szx(void **state)
{
    (void)state;
    fixture_t *f = fx_new(NULL); /* block size 1024, but the client asks for 32 */
    f->body = body;
    f->body_len = 100;
    f->resp_code = COAP_CONTENT;
    coap_pdu_t p;
    get(f, 1, 0, 1);
    last_code(f, &p);
    uint32_t v;
    assert_int_equal(coap_pdu_opt_uint(&p, COAP_OPT_BLOCK2, &v), 0);
    assert_int_equal(v, 0x09);
    assert_int_equal(p.payload_len, 32);
    fx_free(f);
}

static void test_block2_by_application(void **state)
{
    (void)state;
    by_block = true;
    fixture_t *f = fx_new(small); /* block size 16 */
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (uint8_t)(7 * i);
    f->body = body;
    f->body_len = 40;
    coap_pdu_t p;
    uint32_t v;
    get(f, 1, -1, 0); /* no Block2 asked: block 0 of the engine's size, Size2, ETag */
    assert_int_equal(last_code(f, &p), COAP_CONTENT);
    assert_int_equal(coap_pdu_opt_uint(&p, COAP_OPT_BLOCK2, &v), 0);
    assert_int_equal(v, 0x08);
    assert_int_equal(coap_pdu_opt_uint(&p, COAP_OPT_SIZE2, &v), 0);
    assert_int_equal(v, 40);
    int ei = coap_pdu_opt_find(&p, COAP_OPT_ETAG, 0);
    assert_true(ei >= 0);
    size_t etag_len;
    const uint8_t *etag = coap_pdu_opt_value(&p, (size_t)ei, &etag_len);
    assert_int_equal(etag_len, 4);
    assert_memory_equal(etag, "\x01\x02\x03\x04", 4);
    assert_int_equal(p.payload_len, 16);
    assert_memory_equal(p.payload, body, 16);
    get(f, 2, 2, 0); /* the last block: no M, no Size2, straight from the application */
    assert_int_equal(last_code(f, &p), COAP_CONTENT);
    assert_int_equal(coap_pdu_opt_uint(&p, COAP_OPT_BLOCK2, &v), 0);
    assert_int_equal(v, 0x20);
    assert_int_equal(coap_pdu_opt_uint(&p, COAP_OPT_SIZE2, &v), -ENOENT);
    assert_int_equal(p.payload_len, 8);
    assert_memory_equal(p.payload, body + 32, 8);
    assert_int_equal(f->n_req, 2); /* nothing cached: each block asked the application */
    assert_true(coap_list_empty(&f->e->peers) ||
                coap_list_empty(&COAP_CONTAINER(f->e->peers.next, coap_peer_t, link)->block2));
    get(f, 3, 5, 0);
    assert_int_equal(last_code(f, &p), COAP_BAD_OPTION);
    /* A representation that fits one block, no Block2 asked: no Block2 option at all. */
    f->body_len = 10;
    get(f, 4, -1, 0);
    assert_int_equal(last_code(f, &p), COAP_CONTENT);
    assert_int_equal(coap_pdu_opt_uint(&p, COAP_OPT_BLOCK2, &v), -ENOENT);
    assert_int_equal(p.payload_len, 10);
    fx_free(f);
    by_block = false;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block1_reassembly),
        cmocka_unit_test(test_block1_gap_and_too_large),
        cmocka_unit_test(test_block1_abandoned_expires),
        cmocka_unit_test(test_block1_admission_before_state),
        cmocka_unit_test(test_block1_caps),
        cmocka_unit_test(test_oversize_answer),
        cmocka_unit_test(test_block2_slicing),
        cmocka_unit_test(test_block2_client_szx),
        cmocka_unit_test(test_block2_by_application),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
