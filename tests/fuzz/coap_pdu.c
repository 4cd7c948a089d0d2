/* coap_pdu.c — libFuzzer target for the CoAP codec and engine.
 *
 * 1. The whole input is parsed; every option accessor is walked; what parsed is re-encoded
 *    with the builder and must come out byte for byte the same (RFC 7252's option encoding
 *    has exactly one form per value), then parse again to the same view.
 * 2. The input is fed to a real engine with a fake peer, first whole and then split into
 *    datagrams ([len byte][bytes]...), so dedup, Observe and Block1/Block2 sequences are
 *    reached. Every request is answered at once; GET+Observe registers and notifies. An
 *    admission hook refuses some requests and names owners, with small Block1 caps, and
 *    the datagrams go to two peers of one address, so the caps and their groups are hit.
 * 3. The input is also handed over as the first bytes of an oversize datagram (the 4.13
 *    path reads only the header and token of what may be a cut-off message).
 */
#include "coap/coap.h"
#include "coap/coap_int.h"
#include "coap/pdu.h"
#include "core/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_codec(const uint8_t *data, size_t size)
{
    coap_pdu_t p;
    if (coap_pdu_parse(&p, data, size) < 0)
        return;
    uint32_t v;
    for (size_t i = 0; i < p.n_opts; i++) {
        size_t len;
        const uint8_t *val = coap_pdu_opt_value(&p, i, &len);
        ASSERT(val >= data && val + len <= data + size);
        ASSERT(coap_pdu_opt_find(&p, p.opts[i].num, 0) >= 0);
        if (coap_opt_uint_decode(val, len, &v) == 0) {
            coap_block_t b;
            if (coap_block_decode(v, &b) == 0)
                ASSERT(coap_block_encode(&b) == v);
        }
        (void)coap_opt_is_known(p.opts[i].num);
    }
    (void)coap_pdu_opt_uint(&p, COAP_OPT_OBSERVE, &v);
    uint8_t *buf = malloc(size + 16);
    coap_builder_t b;
    coap_builder_init(&b, buf, size + 16, p.type, p.code, p.mid, p.token, p.tkl);
    for (size_t i = 0; i < p.n_opts; i++) {
        size_t len;
        const uint8_t *val = coap_pdu_opt_value(&p, i, &len);
        coap_builder_opt(&b, p.opts[i].num, val, len);
    }
    coap_builder_payload(&b, p.payload, p.payload_len);
    ssize_t n = coap_builder_finish(&b);
    ASSERT(n == (ssize_t)size);
    ASSERT(memcmp(buf, data, size) == 0);
    coap_pdu_t q;
    ASSERT(coap_pdu_parse(&q, buf, (size_t)n) == 0);
    ASSERT(q.n_opts == p.n_opts && q.code == p.code && q.mid == p.mid && q.tkl == p.tkl);
    ASSERT(q.payload_len == p.payload_len);
    for (size_t i = 0; i < p.n_opts; i++)
        ASSERT(q.opts[i].num == p.opts[i].num && q.opts[i].len == p.opts[i].len &&
               q.opts[i].off == p.opts[i].off);
    free(buf);
}

typedef struct fuzz_app {
    coap_observer_t *obs;
    unsigned n;
    coap_exchange_t *deferred[8]; /* answered later: before and after coap_engine_free */
    size_t n_deferred;
} fuzz_app_t;

/* The engine under test and the largest datagram fed to it so far: the amplification guard
 * (amp.c) must keep every reply to an unverified address within 3x some request of it, so
 * certainly within 3x the largest. */
static coap_engine_t *cur_engine;
static size_t max_in;

static int fake_send(transport_peer_t *p, const uint8_t *d, size_t len)
{
    coap_pdu_t pdu;
    /* Everything the engine sends must parse. */
    ASSERT(coap_pdu_parse(&pdu, d, len) == 0);
    if (cur_engine && !coap_engine_addr_verified(cur_engine, p))
        ASSERT(len <= 3 * max_in);
    return 0;
}

/* A toy Echo provider (no crypto here: the real one, src/udp/proof.c, has its unit test):
 * the value is "ok" and the port's low byte, so the fuzzer can find it and verify a peer. */
static size_t echo_make(void *ctx, const transport_peer_t *p, int64_t now, uint8_t *out, size_t cap)
{
    const struct sockaddr_in *s = (const struct sockaddr_in *)(const void *)&p->addr;
    ASSERT(cap >= 3);
    out[0] = 'o';
    out[1] = 'k';
    out[2] = (uint8_t)ntohs(s->sin_port);
    return 3;
}

static bool echo_check(void *ctx, const transport_peer_t *p, int64_t now, const uint8_t *v,
                       size_t len)
{
    uint8_t want[3];
    echo_make(ctx, p, now, want, sizeof want);
    return len == 3 && memcmp(v, want, 3) == 0;
}

static void fake_destroy(transport_peer_t *p) {}

static const transport_ops_t fake_ops = {.send = fake_send, .destroy = fake_destroy};

static const uint8_t big[200];

static void on_request(void *app, coap_exchange_t *x, const coap_request_t *req)
{
    fuzz_app_t *a = app;
    a->n++;
    if ((a->n % 6) == 0 && a->n_deferred < 8) {
        a->deferred[a->n_deferred++] = x;
        return;
    }
    uint8_t code = (a->n % 5) == 0 ? COAP_BAD_REQUEST : COAP_CONTENT;
    coap_observer_t *o = NULL;
    if (req->method == COAP_GET && req->has_observe && req->observe == 0)
        o = coap_exchange_observe(x, a);
    if (a->obs && (a->n % 3) == 0)
        (void)coap_observer_notify(a->obs, COAP_CONTENT, COAP_CF_JSON, big, a->n % 40, NULL);
    size_t len = (a->n % 4) == 0 ? sizeof big : a->n % 10;
    coap_exchange_respond(x, code, COAP_CF_TEXT, big, len);
    /* Per the contract, a relation answered with a non-2.xx code never went live. */
    if (o && code == COAP_CONTENT)
        a->obs = o;
    if (a->obs && (a->n % 7) == 0)
        coap_observer_cancel(a->obs, COAP_DELETED);
}

static uint8_t admit(void *app, coap_exchange_t *x, coap_request_t *req)
{
    fuzz_app_t *a = app;
    a->n++;
    if ((a->n % 11) == 0) {
        coap_exchange_set_max_age(x, a->n);
        return COAP_CODE(4, 29);
    }
    req->owner = req->token.len ? req->token.p[0] % 3 : 0;
    return 0;
}

static void on_observe_end(void *app, coap_observer_t *obs, void *data, coap_obs_end_t why)
{
    fuzz_app_t *a = app;
    if (a->obs == obs)
        a->obs = NULL;
}

/* One loop for the run: a loop is an epoll instance and an eventfd, whose creation and close
 * were 15 % of this target's CPU time (perf, 2026-12-07); the engine only arms timers on it,
 * and the loop never runs here. */
static loop_t *loop;

static void free_loop(void)
{
    loop_free(loop);
}

/* No timer of the engine (or of an orphaned exchange) is left on the loop once everything is
 * answered and freed: a timer armed far in the future is appended to the binary heap and does
 * not move up, so its slot is the heap's size; 1 means it was alone. */
static void check_no_timers(void)
{
    loop_timer_t t;
    loop_timer_init(&t, NULL, NULL);
    loop_timer_arm(loop, &t, INT64_MAX / 4);
    ASSERT(t.heap_index == 1);
    loop_timer_cancel(loop, &t);
}

static void run_engine(const uint8_t *data, size_t size)
{
    if (!loop) {
        char err[ERR_LEN];
        loop = loop_new(err);
        ASSERT(loop);
        atexit(free_loop);
    }
    coap_engine_cfg_t cfg;
    coap_engine_cfg_default(&cfg);
    cfg.block_size = 16;
    cfg.max_body = 256;
    cfg.max_dedup_entries = 64;
    cfg.block1_per_addr = 3;
    cfg.block1_per_owner = 2;
    cfg.observers_per_addr = 2; /* the per-address Observe cap (off by default) */
    cfg.block_mem_cap = 512;
    fuzz_app_t app = {0};
    coap_engine_ops_t ops = {
        .admit = admit, .on_request = on_request, .on_observe_end = on_observe_end};
    coap_engine_t *e = coap_engine_new(loop, &cfg, &ops, &app);
    coap_engine_set_echo(e, &(coap_echo_ops_t){.make = echo_make, .check = echo_check});
    cur_engine = e;
    max_in = size + 1; /* the oversize call below claims size + 1 bytes */
    transport_peer_t peer = {.ops = &fake_ops, .refcnt = 1};
    transport_peer_t peer2 = {.ops = &fake_ops, .refcnt = 1};
    struct sockaddr_in *a1 = (struct sockaddr_in *)&peer.addr,
                       *a2 = (struct sockaddr_in *)&peer2.addr;
    a1->sin_family = a2->sin_family = AF_INET;
    a1->sin_addr.s_addr = a2->sin_addr.s_addr = htonl(0x7f000001u);
    a1->sin_port = htons(1);
    a2->sin_port = htons(2);
    coap_engine_input(e, &peer, data, size);
    coap__engine_validate(e);
    coap_engine_input_oversize(e, &peer, data, size, size + 1);
    coap__engine_validate(e);
    unsigned k = 0;
    for (size_t i = 0; i < size;) {
        size_t len = data[i++];
        if (len > size - i)
            len = size - i;
        coap_engine_input(e, (k++ % 3) == 2 ? &peer2 : &peer, data + i, len);
        coap__engine_validate(e);
        i += len;
    }
    for (size_t i = 0; i < app.n_deferred / 2; i++)
        coap_exchange_respond(app.deferred[i], COAP_CHANGED, COAP_CF_NONE, big, i * 10);
    cur_engine = NULL;
    coap_engine_free(e);
    ASSERT(peer.refcnt == 1 && peer2.refcnt == 1);
    /* Orphaned exchanges stay valid until answered; the answer is dropped. */
    for (size_t i = app.n_deferred / 2; i < app.n_deferred; i++)
        coap_exchange_respond(app.deferred[i], COAP_CHANGED, COAP_CF_NONE, NULL, 0);
    check_no_timers();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_codec(data, size);
    run_engine(data, size);
    return 0;
}
