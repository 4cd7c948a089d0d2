/* api_fixture.h — a whole shard for handler tests: real loop, real CoAP engine (inside the
 * api shard), real SQLite store in a temp dir, real registry and hub, and a fake transport
 * peer that records what the shard sends. Include <cmocka.h> first. */
#ifndef COAPHUB_TESTS_API_FIXTURE_H
#define COAPHUB_TESTS_API_FIXTURE_H

#include "api/api.h"
#include "coap/pdu.h"
#include "core/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FX_MAX_SENT 128

typedef struct fx_peer {
    transport_peer_t base;
    uint8_t sent[FX_MAX_SENT][1500];
    size_t sent_len[FX_MAX_SENT];
    size_t n_sent;
} fx_peer_t;

static int fx_send(transport_peer_t *p, const uint8_t *d, size_t len)
{
    fx_peer_t *f = (fx_peer_t *)p;
    if (f->n_sent < FX_MAX_SENT && len <= sizeof f->sent[0]) {
        memcpy(f->sent[f->n_sent], d, len);
        f->sent_len[f->n_sent++] = len;
    }
    return 0;
}

static void fx_destroy(transport_peer_t *p) { (void)p; }

static const transport_ops_t fx_ops = {.send = fx_send, .destroy = fx_destroy};

typedef struct fx {
    char dir[64], path[96];
    loop_t *loop;
    store_t *store;
    registry_t *reg;
    hub_t *hub;
    api_cfg_t cfg;
    api_shard_t *a;
    fx_peer_t peer;
    int64_t dev1, dev2;
    uint16_t mid;
    uint8_t rx[2048];
} fx_t;

static int64_t fx_device(store_t *s, const char *name)
{
    store_device_t d = {.name = (char *)name, .type = (char *)"default"};
    if (store_device_create(s, &d) != 0)
        return 0;
    int64_t id = d.id;
    d.name = d.type = NULL;
    store_device_fini(&d);
    return id;
}

static fx_t *fx_new(void (*tweak)(api_cfg_t *))
{
    fx_t *f = calloc(1, sizeof *f);
    char err[ERR_LEN];
    snprintf(f->dir, sizeof f->dir, "/tmp/coaphub-api-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/t.db", f->dir);
    store_cfg_t sc;
    store_cfg_default(&sc);
    sc.path = f->path;
    sc.synchronous_full = false;
    sc.disk_reserve_bytes = 0; /* no 64 MiB file per test */
    sc.probe_ms = 20;          /* a storage fault clears within a test's patience */
    f->store = store_open(&sc, err);
    assert_non_null(f->store);
    f->loop = loop_new(err);
    assert_non_null(f->loop);
    f->reg = registry_new();
    f->hub = hub_new(f->store);
    f->dev1 = fx_device(f->store, "dev1");
    f->dev2 = fx_device(f->store, "dev2");
    assert_true(f->dev1 > 0 && f->dev2 > 0);
    registry_set(f->reg, f->dev1, CRED_ACCESS_TOKEN, "TOKEN1");
    registry_set(f->reg, f->dev2, CRED_ACCESS_TOKEN, "12345");
    api_cfg_default(&f->cfg);
    f->cfg.engine.piggyback_ms = 2000; /* answers after the commit still ride in the ACK */
    f->cfg.engine.ack_timeout_ms = 30;
    f->cfg.engine.ack_random_factor = 1.0;
    f->cfg.engine.max_retransmit = 1;
    if (tweak)
        tweak(&f->cfg);
    f->a = api_shard_new(f->loop, f->store, f->reg, f->hub, &f->cfg);
    assert_non_null(f->a);
    hub_add_shard(f->hub, f->loop, api_shard_on_hub_event, f->a);
    memset(&f->peer, 0, sizeof f->peer);
    f->peer.base.ops = &fx_ops;
    f->peer.base.refcnt = 1;
    f->mid = 100;
    return f;
}

static void fx_free(fx_t *f)
{
    loop_drain(f->loop); /* hub events and completions still queued for this shard */
    api_shard_free(f->a);
    hub_free(f->hub);
    store_close(f->store);
    loop_free(f->loop); /* completions posted after the shard was freed run here */
    registry_free(f->reg);
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 4; i++) {
        char p[128];
        snprintf(p, sizeof p, "%s%s", f->path, sfx[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
}

typedef struct fx_req {
    uint8_t type, method;
    const char *token;  /* CoAP token */
    const char *path;   /* "api/v1/TOKEN1/telemetry", one Uri-Path option per segment */
    int obs;            /* 0 = no Observe option; else Observe = obs - 1 (OBS_REG/OBS_DEREG) */
    int cf1;            /* 0 = no Content-Format; else Content-Format = cf1 - 1 */
    const char *query[4];
    const char *payload;
} fx_req_t;

/* Sends a request; returns its MID. */
static uint16_t fx_send_req(fx_t *f, const fx_req_t *r)
{
    coap_builder_t b;
    uint16_t mid = f->mid++;
    coap_builder_init(&b, f->rx, sizeof f->rx, r->type, r->method, mid,
                      (const uint8_t *)r->token, r->token ? strlen(r->token) : 0);
    if (r->obs)
        coap_builder_opt_uint(&b, COAP_OPT_OBSERVE, (uint32_t)(r->obs - 1));
    const char *s = r->path;
    while (s && *s) {
        const char *slash = strchr(s, '/');
        size_t n = slash ? (size_t)(slash - s) : strlen(s);
        coap_builder_opt(&b, COAP_OPT_URI_PATH, (const uint8_t *)s, n);
        s = slash ? slash + 1 : s + n;
    }
    if (r->cf1)
        coap_builder_opt_uint(&b, COAP_OPT_CONTENT_FORMAT, (uint32_t)(r->cf1 - 1));
    for (size_t i = 0; i < 4 && r->query[i]; i++)
        coap_builder_opt(&b, COAP_OPT_URI_QUERY, (const uint8_t *)r->query[i],
                         strlen(r->query[i]));
    if (r->payload)
        coap_builder_payload(&b, (const uint8_t *)r->payload, strlen(r->payload));
    ssize_t n = coap_builder_finish(&b);
    assert_true(n > 0);
    coap_engine_input(api_shard_engine(f->a), &f->peer.base, f->rx, (size_t)n);
    return mid;
}

/* Sends an empty ACK (or RST) for a message the shard sent. */
static void fx_send_empty(fx_t *f, uint8_t type, uint16_t mid)
{
    uint8_t b[4] = {(uint8_t)(0x40 | (type << 4)), 0, (uint8_t)(mid >> 8), (uint8_t)mid};
    coap_engine_input(api_shard_engine(f->a), &f->peer.base, b, sizeof b);
}

static void fx_stop(loop_t *loop, void *arg)
{
    (void)arg;
    loop_stop(loop);
}

static void fx_run(fx_t *f, int64_t ms)
{
    loop_timer_t t;
    loop_timer_init(&t, fx_stop, NULL);
    loop_timer_arm(f->loop, &t, ms);
    loop_run(f->loop);
    loop_timer_cancel(f->loop, &t);
}

/* Runs the loop until the peer has received n datagrams (or ~3 s). */
static bool fx_wait_sent(fx_t *f, size_t n)
{
    for (int i = 0; i < 1500 && f->peer.n_sent < n; i++)
        fx_run(f, 2);
    return f->peer.n_sent >= n;
}

typedef struct fx_msg {
    coap_pdu_t pdu;
    char payload[1024];
    int observe; /* -1 if absent */
    int cf;
} fx_msg_t;

/* Parses the i-th datagram sent. */
static void fx_msg(fx_t *f, size_t i, fx_msg_t *m)
{
    assert_true(i < f->peer.n_sent);
    assert_int_equal(coap_pdu_parse(&m->pdu, f->peer.sent[i], f->peer.sent_len[i]), 0);
    size_t n = m->pdu.payload_len < sizeof m->payload - 1 ? m->pdu.payload_len
                                                           : sizeof m->payload - 1;
    if (n)
        memcpy(m->payload, m->pdu.payload, n);
    m->payload[n] = '\0';
    uint32_t v;
    m->observe = coap_pdu_opt_uint(&m->pdu, COAP_OPT_OBSERVE, &v) == 0 ? (int)v : -1;
    m->cf = coap_pdu_opt_uint(&m->pdu, COAP_OPT_CONTENT_FORMAT, &v) == 0 ? (int)v : COAP_CF_NONE;
}

/* Sends r and waits for one more datagram; returns its parsed form in m. */
static void fx_call(fx_t *f, const fx_req_t *r, fx_msg_t *m)
{
    size_t before = f->peer.n_sent;
    fx_send_req(f, r);
    assert_true(fx_wait_sent(f, before + 1));
    fx_msg(f, f->peer.n_sent - 1, m);
}

/* Polls the store until attribute key of the scope exists (async writes), ~2 s. */
static bool fx_wait_attr(fx_t *f, int64_t dev, store_scope_t scope, const char *key,
                         store_kv_t *out)
{
    for (int i = 0; i < 700; i++) {
        store_kv_list_t l = {0};
        const char *keys[] = {key};
        if (store_attr_get(f->store, dev, scope, keys, 1, &l) == 0 && l.n == 1) {
            *out = l.items[0];
            out->key = NULL;
            out->s = l.items[0].s ? strdup(l.items[0].s) : NULL;
            store_kv_list_fini(&l);
            return true;
        }
        store_kv_list_fini(&l);
        fx_run(f, 3);
    }
    return false;
}

/* A request literal; type defaults to CON (0). */
#define REQ(...) ((fx_req_t){__VA_ARGS__})
#define OBS_REG 1
#define OBS_DEREG 2

#endif
