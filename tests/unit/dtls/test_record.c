/* test_record.c — the compact DTLS record layer (src/dtls/record.c, compact.c) against
 * OpenSSL itself: an OpenSSL DTLS 1.2 client talks to a listener that frees its SSL after the
 * first application record; records go both ways for every AEAD suite; replayed, reordered
 * (inside and beyond the 64-record window), bit-flipped, truncated and wrong-epoch records
 * are dropped without ending the session; alerts, renegotiation attempts, resumption and a
 * restarting client behave as with OpenSSL's own record layer. Authenticated records of any
 * type are forged with the session's keys, taken from the client's SSL (same key block). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fixture.h"

#include "core/sockaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------------------ */

static void server_poll(fx_t *f)
{
    usleep(1000);
    dtls__listener_poll(f->l);
}

/* The client's next application record, built by its SSL but not sent. */
static int capture(test_client_t *c, const char *msg, uint8_t *rec, size_t cap)
{
    BIO *mem = BIO_new(BIO_s_mem());
    BIO *dgram = SSL_get_wbio(c->ssl);
    BIO_up_ref(dgram);
    SSL_set0_wbio(c->ssl, mem);
    assert_int_equal(SSL_write(c->ssl, msg, (int)strlen(msg)), (int)strlen(msg));
    int n = BIO_read(mem, rec, (int)cap);
    assert_true(n > DTLS_REC_HDR);
    SSL_set0_wbio(c->ssl, dgram);
    return n;
}

static uint64_t rec_seq(const uint8_t *rec)
{
    dtls_rec_t r;
    assert_true(dtls__rec_parse(rec, DTLS_REC_HDR + ((size_t)rec[11] << 8 | rec[12]), &r) > 0);
    return r.seq;
}

/* Handshake, then one record through OpenSSL that moves the session to the compact layer. */
static void connect_compact(fx_t *f, test_client_t *c, const char *ciphers)
{
    test_client_open(c, dtls_listener_port(f->l), &f->a, NULL, ciphers);
    assert_int_equal(handshake(f, c), 1);
    uint64_t before = stats(f).sessions_compacted;
    assert_int_equal(send_app(f, c, "first"), 1);
    assert_int_equal(stats(f).sessions_compacted, before + 1);
    assert_int_equal(eng.last_device, DEVICE_A);
}

/* The client's view of the session keys (to forge authenticated records of any type). */
static void client_keys(test_client_t *c, dtls_rl_t *cl, uint64_t next_seq)
{
    dtls_rl_t srv;
    assert_int_equal(dtls__rl_from_ssl(&srv, c->ssl), 0);
    dtls__rl_mirror(&srv, cl);
    cl->w_seq = next_seq;
    dtls__rl_wipe(&srv);
}

static void send_forged(fx_t *f, test_client_t *c, dtls_rl_t *cl, dtls_aead_ctx_t *a,
                        uint8_t type, const uint8_t *p, size_t len)
{
    uint8_t rec[512];
    ssize_t n = dtls__rl_seal(cl, a, type, p, len, rec, sizeof rec);
    assert_true(n > 0);
    test_client_send_raw(c, rec, (size_t)n);
    server_poll(f);
}

/* ---- round trips -------------------------------------------------------------------------- */

static void round_trip(fx_t *f, const char *ciphers)
{
    test_client_t c;
    connect_compact(f, &c, ciphers);
    dtls_stats_t s0 = stats(f);
    assert_string_equal(SSL_get_cipher_name(c.ssl), ciphers);
    transport_peer_t *peer = eng.last_peer;
    char msg[1100], buf[1200];
    for (int i = 0; i < 40; i++) {
        size_t n = (size_t)(1 + i * 27);
        for (size_t k = 0; k < n; k++)
            msg[k] = (char)('a' + (k * 7 + (size_t)i) % 26);
        msg[n] = '\0';
        /* client -> compact server */
        assert_int_equal(send_app(f, &c, msg), 1);
        assert_int_equal(eng.last_len, n < sizeof eng.last ? n : sizeof eng.last);
        assert_memory_equal(eng.last, msg, eng.last_len);
        assert_ptr_equal(eng.last_peer, peer);
        /* compact server -> client (OpenSSL verifies and decrypts it) */
        assert_int_equal(transport_peer_send(peer, (const uint8_t *)msg, n), 0);
        assert_int_equal(client_read(&c, buf, sizeof buf), (int)n);
        assert_memory_equal(buf, msg, n);
    }
    dtls_stats_t s = stats(f);
    assert_int_equal(s.sessions, s0.sessions);
    assert_int_equal(s.sessions_compacted, s0.sessions_compacted);
    assert_int_equal(s.records_dropped, s0.records_dropped);
    test_client_close(&c);
}

static void test_aes128_gcm(void **state)
{
    fx_t *f = *state;
    fx_listener(f);
    round_trip(f, "ECDHE-ECDSA-AES128-GCM-SHA256");
}

static void test_aes256_gcm(void **state)
{
    fx_t *f = *state;
    fx_listener(f);
    round_trip(f, "ECDHE-ECDSA-AES256-GCM-SHA384");
}

static void test_aes128_ccm(void **state)
{
    fx_t *f = *state;
    fx_listener(f);
    round_trip(f, "ECDHE-ECDSA-AES128-CCM");
}

static void test_aes128_ccm8(void **state)
{
    fx_t *f = *state;
    fx_listener(f);
    round_trip(f, "ECDHE-ECDSA-AES128-CCM8");
}

static void test_aes256_ccm_and_ccm8(void **state)
{
    fx_t *f = *state;
    fx_listener(f);
    round_trip(f, "ECDHE-ECDSA-AES256-CCM");
    round_trip(f, "ECDHE-ECDSA-AES256-CCM8");
}

/* With the switch off, sessions keep OpenSSL's record layer. */
/* RFC 7905: no explicit nonce, the IV XOR the sequence number (what ECDHE-PSK devices get:
 * OpenSSL 3.0's only AEAD ECDHE-PSK suite). Not in the default list for certificates. */
static void test_chacha20_poly1305(void **state)
{
    fx_t *f = *state;
    f->cfg.ciphers = "ECDHE-ECDSA-CHACHA20-POLY1305";
    fx_listener(f);
    round_trip(f, "ECDHE-ECDSA-CHACHA20-POLY1305");
}

static void test_switch_off_keeps_openssl(void **state)
{
    fx_t *f = *state;
    f->cfg.compact_records = false;
    fx_listener(f);
    test_client_t c;
    test_client_open(&c, dtls_listener_port(f->l), &f->a, NULL, NULL);
    assert_int_equal(handshake(f, &c), 1);
    assert_int_equal(send_app(f, &c, "one"), 1);
    assert_int_equal(send_app(f, &c, "two"), 1);
    assert_int_equal(stats(f).sessions_compacted, 0);
    assert_int_equal(transport_peer_send(eng.last_peer, (const uint8_t *)"pong", 4), 0);
    char buf[16];
    assert_int_equal(client_read(&c, buf, sizeof buf), 4);
    test_client_close(&c);
}

/* ---- hostile records ---------------------------------------------------------------------- */

static void test_replay_and_reorder_window(void **state)
{
    fx_t *f = *state;
    fx_listener(f);
    test_client_t c;
    connect_compact(f, &c, "ECDHE-ECDSA-AES128-GCM-SHA256");
    /* 70 records captured in order, sent out of order. */
    enum { N = 70 };
    static uint8_t recs[N][128];
    int lens[N];
    for (int i = 0; i < N; i++) {
        char m[16];
        snprintf(m, sizeof m, "r%d", i);
        lens[i] = capture(&c, m, recs[i], sizeof recs[i]);
        if (i > 0)
            assert_int_equal(rec_seq(recs[i]), rec_seq(recs[i - 1]) + 1);
    }
    int in = eng.inputs;
    test_client_send_raw(&c, recs[5], (size_t)lens[5]);
    server_poll(f);
    assert_int_equal(eng.inputs, in + 1);
    /* Older but inside the window: accepted (reordering). */
    test_client_send_raw(&c, recs[2], (size_t)lens[2]);
    server_poll(f);
    assert_int_equal(eng.inputs, in + 2);
    assert_memory_equal(eng.last, "r2", 2);
    /* Exact replays of both: dropped. */
    test_client_send_raw(&c, recs[5], (size_t)lens[5]);
    test_client_send_raw(&c, recs[2], (size_t)lens[2]);
    server_poll(f);
    assert_int_equal(eng.inputs, in + 2);
    assert_int_equal(stats(f).records_replayed, 2);
    /* Jump ahead by 64: record 3 is now beyond the window, record 6 still inside. */
    test_client_send_raw(&c, recs[69], (size_t)lens[69]);
    server_poll(f);
    assert_int_equal(eng.inputs, in + 3);
    test_client_send_raw(&c, recs[3], (size_t)lens[3]);
    server_poll(f);
    assert_int_equal(eng.inputs, in + 3);
    assert_int_equal(stats(f).records_replayed, 3);
    test_client_send_raw(&c, recs[6], (size_t)lens[6]);
    server_poll(f);
    assert_int_equal(eng.inputs, in + 4);
    assert_memory_equal(eng.last, "r6", 2);
    /* Several records in one datagram: each is judged on its own. */
    uint8_t dg[512];
    size_t dl = 0;
    int pick[] = {7, 7, 8, 69};
    for (size_t i = 0; i < 4; i++) {
        memcpy(dg + dl, recs[pick[i]], (size_t)lens[pick[i]]);
        dl += (size_t)lens[pick[i]];
    }
    test_client_send_raw(&c, dg, dl);
    server_poll(f);
    assert_int_equal(eng.inputs, in + 6); /* 7 and 8 once each */
    assert_int_equal(stats(f).records_replayed, 5);
    assert_int_equal(stats(f).sessions, 1);
    test_client_close(&c);
}

static void test_flipped_truncated_wrong_epoch(void **state)
{
    fx_t *f = *state;
    fx_listener(f);
    test_client_t c;
    connect_compact(f, &c, "ECDHE-ECDSA-AES128-CCM8");
    uint8_t rec[128], bad[128];
    int n = capture(&c, "temp=7", rec, sizeof rec);
    int in = eng.inputs;
    dtls_stats_t s0 = stats(f);
    /* One bit flipped anywhere after the version (epoch and version are checked first):
     * in the sequence number, the explicit nonce, the ciphertext, the tag. */
    int at[] = {10, 13, 13 + 8, n - 1};
    for (size_t i = 0; i < 4; i++) {
        memcpy(bad, rec, (size_t)n);
        bad[at[i]] ^= 0x04;
        test_client_send_raw(&c, bad, (size_t)n);
    }
    server_poll(f);
    assert_int_equal(eng.inputs, in);
    dtls_stats_t s = stats(f);
    assert_int_equal(s.records_bad_mac, s0.records_bad_mac + 4);
    /* Wrong epochs (0, 2) with a valid tag for epoch 1 otherwise: dropped. */
    memcpy(bad, rec, (size_t)n);
    bad[4] = 2;
    test_client_send_raw(&c, bad, (size_t)n);
    bad[4] = 0;
    test_client_send_raw(&c, bad, (size_t)n);
    /* Truncated: the length says more than the datagram has; and a bare header. */
    test_client_send_raw(&c, rec, (size_t)n - 1);
    test_client_send_raw(&c, rec, DTLS_REC_HDR);
    /* A length too short for nonce and tag. */
    memcpy(bad, rec, (size_t)n);
    bad[11] = 0;
    bad[12] = 10;
    test_client_send_raw(&c, bad, DTLS_REC_HDR + 10);
    /* Another DTLS version. */
    memcpy(bad, rec, (size_t)n);
    bad[2] = 0xff;
    test_client_send_raw(&c, bad, (size_t)n);
    server_poll(f);
    assert_int_equal(eng.inputs, in);
    s = stats(f);
    assert_true(s.records_dropped >= s0.records_dropped + 4 + 6);
    assert_int_equal(s.sessions, 1);
    /* The untouched record still gets through: nothing above moved the window. */
    test_client_send_raw(&c, rec, (size_t)n);
    server_poll(f);
    assert_int_equal(eng.inputs, in + 1);
    assert_memory_equal(eng.last, "temp=7", 6);
    test_client_close(&c);
}

/* The record that OpenSSL delivered before the hand-over is in our window too. */
static void test_first_record_replay_after_handover(void **state)
{
    fx_t *f = *state;
    fx_listener(f);
    test_client_t c;
    test_client_open(&c, dtls_listener_port(f->l), &f->a, NULL, NULL);
    assert_int_equal(handshake(f, &c), 1);
    uint8_t rec[128];
    int n = capture(&c, "via openssl", rec, sizeof rec);
    test_client_send_raw(&c, rec, (size_t)n);
    server_poll(f);
    assert_int_equal(eng.inputs, 1);
    assert_int_equal(stats(f).sessions_compacted, 1);
    test_client_send_raw(&c, rec, (size_t)n);
    server_poll(f);
    assert_int_equal(eng.inputs, 1);
    assert_int_equal(stats(f).records_replayed, 1);
    assert_int_equal(send_app(f, &c, "via compact"), 1);
    test_client_close(&c);
}

/* Epoch-1 application data arriving while the handshake still runs could be taken in by
 * OpenSSL before our shadow window exists: such a session keeps OpenSSL's record layer. */
static void test_early_epoch1_data_keeps_openssl(void **state)
{
    fx_t *f = *state;
    fx_listener(f);
    test_client_t c;
    test_client_open(&c, dtls_listener_port(f->l), &f->a, NULL, NULL);
    for (int i = 0; i < 2; i++) { /* ClientHello, cookie, server flight */
        ERR_clear_error();
        SSL_do_handshake(c.ssl);
        server_poll(f);
        assert_true(test_client_wait(&c, 100) > 0);
    }
    static const uint8_t early[] = {23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 24,
                                    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                                    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    test_client_send_raw(&c, early, sizeof early);
    server_poll(f);
    assert_int_equal(handshake(f, &c), 1);
    assert_int_equal(send_app(f, &c, "one"), 1);
    assert_int_equal(send_app(f, &c, "two"), 1);
    assert_int_equal(stats(f).sessions_compacted, 0);
    assert_int_equal(transport_peer_send(eng.last_peer, (const uint8_t *)"pong", 4), 0);
    char buf[16];
    assert_int_equal(client_read(&c, buf, sizeof buf), 4);
    test_client_close(&c);
}

/* ---- alerts, renegotiation, restart, resumption ------------------------------------------- */

static void test_close_notify_both_ways(void **state)
{
    fx_t *f = *state;
    fx_listener(f);
    test_client_t c;
    connect_compact(f, &c, "ECDHE-ECDSA-AES128-GCM-SHA256");
    /* The client closes: the session ends and our close_notify answers it. */
    SSL_shutdown(c.ssl);
    server_poll(f);
    assert_int_equal(eng.closed, 1);
    assert_int_equal(stats(f).sessions, 0);
    char buf[16];
    assert_int_equal(client_read(&c, buf, sizeof buf), 0);
    test_client_close(&c);

    /* We close (credentials changed): the client reads our close_notify. */
    connect_compact(f, &c, "ECDHE-ECDSA-AES128-CCM");
    dtls_listener_close_device(f->l, DEVICE_A);
    assert_int_equal(eng.closed, 2);
    assert_int_equal(client_read(&c, buf, sizeof buf), 0);
    /* Records of the closed session are dropped as unknown. */
    uint64_t dropped = stats(f).records_dropped;
    test_client_send_raw(&c, (const uint8_t *)"\x17\xfe\xfd\0\1\0\0\0\0\0\x30\0\0", 13);
    server_poll(f);
    assert_int_equal(stats(f).records_dropped, dropped + 1);
    test_client_close(&c);
}

static void test_alerts_and_renegotiation(void **state)
{
    fx_t *f = *state;
    fx_listener(f);
    test_client_t c;
    connect_compact(f, &c, "ECDHE-ECDSA-AES128-GCM-SHA256");
    dtls_aead_ctx_t a;
    dtls__aead_init(&a);
    dtls_rl_t cl;
    client_keys(&c, &cl, 1000);
    int in = eng.inputs;
    /* The forged-key check: an authenticated application record is accepted. */
    send_forged(f, &c, &cl, &a, 23, (const uint8_t *)"forged", 6);
    assert_int_equal(eng.inputs, in + 1);
    assert_memory_equal(eng.last, "forged", 6);
    /* An empty application record: authenticated, nothing for the engine. */
    send_forged(f, &c, &cl, &a, 23, (const uint8_t *)"", 0);
    assert_int_equal(eng.inputs, in + 1);
    /* A renegotiation ClientHello in epoch 1: ignored, no reply, session intact. */
    uint8_t hello[40] = {1, 0, 0, 28, 0, 0, 0, 0, 0, 0, 0, 28, 0xfe, 0xfd};
    send_forged(f, &c, &cl, &a, 22, hello, sizeof hello);
    assert_int_equal(test_client_wait(&c, 20), -1);
    /* A warning alert other than close_notify (user_canceled): ignored. */
    send_forged(f, &c, &cl, &a, 21, (const uint8_t *)"\x01\x5a", 2);
    assert_int_equal(stats(f).sessions, 1);
    assert_int_equal(eng.closed, 0);
    send_forged(f, &c, &cl, &a, 23, (const uint8_t *)"still", 5);
    assert_int_equal(eng.inputs, in + 2);
    /* A fatal alert ends the session, without a close_notify. */
    send_forged(f, &c, &cl, &a, 21, (const uint8_t *)"\x02\x28", 2);
    assert_int_equal(stats(f).sessions, 0);
    assert_int_equal(eng.closed, 1);
    assert_int_equal(test_client_wait(&c, 20), -1);
    dtls__rl_wipe(&cl);
    dtls__aead_fini(&a);
    test_client_close(&c);
}

static void test_restart_and_resumption(void **state)
{
    fx_t *f = *state;
    fx_listener(f);
    test_client_t c;
    connect_compact(f, &c, NULL);
    SSL_SESSION *sess = SSL_get1_session(c.ssl);
    /* The device restarts on the same address: cookie exchange and a fresh (resumed)
     * handshake; the compact session is replaced only when it completes. */
    SSL *old = c.ssl;
    c.ssl = SSL_new(c.ctx);
    BIO *b = BIO_new_dgram(c.fd, BIO_NOCLOSE);
    struct sockaddr_storage server;
    socklen_t sl = sizeof server;
    getpeername(c.fd, (struct sockaddr *)&server, &sl);
    BIO_ctrl(b, BIO_CTRL_DGRAM_SET_CONNECTED, 0, &server);
    SSL_set_bio(c.ssl, b, b);
    SSL_set_connect_state(c.ssl);
    SSL_set_session(c.ssl, sess);
    ERR_clear_error();
    assert_int_equal(SSL_get_error(c.ssl, SSL_do_handshake(c.ssl)), SSL_ERROR_WANT_READ);
    server_poll(f); /* HelloVerifyRequest */
    assert_int_equal(stats(f).sessions, 1);
    assert_int_equal(eng.closed, 0);
    assert_int_equal(handshake(f, &c), 1);
    assert_int_equal(SSL_session_reused(c.ssl), 1); /* the demoted SSL left its session cached */
    dtls_stats_t s = stats(f);
    assert_int_equal(s.resumed, 1);
    assert_int_equal(s.sessions, 1);
    assert_int_equal(eng.closed, 1);
    assert_int_equal(send_app(f, &c, "after restart"), 1);
    assert_int_equal(eng.last_device, DEVICE_A); /* identity kept through resumption */
    assert_int_equal(stats(f).sessions_compacted, 2);
    assert_int_equal(transport_peer_send(eng.last_peer, (const uint8_t *)"ok", 2), 0);
    char buf[8];
    assert_int_equal(client_read(&c, buf, sizeof buf), 2);
    SSL_free(old);
    SSL_SESSION_free(sess);
    test_client_close(&c);
}

/* ---- the record layer alone --------------------------------------------------------------- */

static void test_window_and_sequence_limits(void **state)
{
    (void)state;
    dtls_rl_t rl = {0};
    assert_true(dtls__rl_replay_check(&rl, 0));
    dtls__rl_replay_mark(&rl, 10);
    assert_false(dtls__rl_replay_check(&rl, 10));
    assert_true(dtls__rl_replay_check(&rl, 9));
    assert_true(dtls__rl_replay_check(&rl, DTLS_SEQ_MAX));
    dtls__rl_replay_mark(&rl, 73); /* 10 is now 63 behind: still inside */
    assert_false(dtls__rl_replay_check(&rl, 10));
    assert_true(dtls__rl_replay_check(&rl, 11));
    assert_false(dtls__rl_replay_check(&rl, 9)); /* 64 behind: too old */
    dtls__rl_replay_mark(&rl, 74);
    assert_false(dtls__rl_replay_check(&rl, 10)); /* fell out of the window: refused */
    dtls__rl_replay_mark(&rl, 74 + 1000);
    assert_false(dtls__rl_replay_check(&rl, 74));
    assert_true(dtls__rl_replay_check(&rl, 1073));
    dtls__rl_replay_mark(&rl, 5); /* far below: no effect */
    assert_int_equal(rl.r_top, 1074);
    assert_int_equal(rl.r_map, 1);

    /* Keys from a fixed master secret; seal as the server, open as the client. */
    uint8_t ms[48], cr[32], sr[32];
    memset(ms, 0x11, sizeof ms);
    memset(cr, 0x22, sizeof cr);
    memset(sr, 0x33, sizeof sr);
    dtls_rl_t srv, cl;
    assert_int_equal(dtls__rl_derive(&srv, DTLS_AEAD_AES128_GCM, 8, EVP_sha256(), ms, 48, cr, sr),
                     -EINVAL); /* GCM has 16-byte tags only */
    assert_int_equal(
        dtls__rl_derive(&srv, DTLS_AEAD_AES128_CCM, 8, EVP_sha256(), ms, 48, cr, sr), 0);
    assert_memory_not_equal(srv.rkey, srv.wkey, 16);
    dtls__rl_mirror(&srv, &cl);
    dtls_aead_ctx_t a;
    dtls__aead_init(&a);
    uint8_t rec[64], out[64];
    srv.w_seq = DTLS_SEQ_MAX;
    ssize_t n = dtls__rl_seal(&srv, &a, 23, (const uint8_t *)"last", 4, rec, sizeof rec);
    assert_int_equal(n, DTLS_REC_HDR + 8 + 4 + 8);
    assert_int_equal(dtls__rl_seal(&srv, &a, 23, (const uint8_t *)"x", 1, rec + 32, 32),
                     -EOVERFLOW);
    assert_int_equal(dtls__rl_seal(&srv, &a, 23, (const uint8_t *)"x", 1, out, 20), -ENOSPC);
    dtls_rec_t r;
    assert_int_equal(dtls__rec_parse(rec, (size_t)n, &r), n);
    assert_true(r.seq == DTLS_SEQ_MAX);
    assert_int_equal(dtls__rl_open(&cl, &a, &r, out, sizeof out), 4);
    assert_memory_equal(out, "last", 4);
    assert_int_equal(dtls__rl_open(&cl, &a, &r, out, sizeof out), -EALREADY);
    assert_int_equal(dtls__rec_parse(rec, (size_t)n - 1, &r), -EBADMSG);
    assert_int_equal(dtls__rec_parse(rec, 12, &r), -EBADMSG);
    /* Too little room for the plaintext: refused before anything is written. */
    srv.w_seq = 5;
    dtls__rl_mirror(&srv, &cl); /* a fresh window */
    n = dtls__rl_seal(&srv, &a, 23, (const uint8_t *)"abcdef", 6, rec, sizeof rec);
    assert_int_equal(dtls__rec_parse(rec, (size_t)n, &r), n);
    assert_int_equal(dtls__rl_open(&cl, &a, &r, out, 5), -EBADMSG);
    assert_int_equal(dtls__rl_open(&cl, &a, &r, out, 6), 6);
    dtls__rl_wipe(&srv);
    dtls__rl_wipe(&cl);
    dtls__aead_fini(&a);
}

/* RFC 9146 records for every AEAD algorithm: round trip with a 4-byte CID, a padded inner
 * plaintext, tampering with the CID, the type, the length and the tag, replay, the
 * conversion to an ordinary record for OpenSSL, and parsing limits. */
static void cid_one(dtls_aead_ctx_t *a, dtls_aead_alg_t alg, uint8_t tag_len)
{
    uint8_t ms[48], cr[32], sr[32];
    memset(ms, 0x44, sizeof ms);
    memset(cr, 0x55, sizeof cr);
    memset(sr, 0x66, sizeof sr);
    dtls_rl_t srv, cl, srv2;
    assert_int_equal(dtls__rl_derive(&srv, alg, tag_len, EVP_sha256(), ms, 48, cr, sr), 0);
    srv.uid = 1000 + alg * 2 + (tag_len == 8);
    dtls__rl_mirror(&srv, &cl);
    srv2 = srv;
    static const uint8_t cid[4] = {0xde, 0xad, 0xbe, 0xef};
    uint8_t rec[256], out[256], conv[256], type = 0;
    cl.w_seq = 7;
    ssize_t n = dtls__rl_seal_cid(&cl, a, 23, cid, 4, (const uint8_t *)"hello", 5, rec, sizeof rec);
    size_t expl = alg == DTLS_AEAD_CHACHA20 ? 0 : 8;
    assert_int_equal(n, DTLS_CID_HDR + 4 + expl + 5 + 1 + tag_len);
    assert_int_equal(rec[0], DTLS_CT_CID);
    assert_memory_equal(rec + 11, cid, 4);
    dtls_rec_t r;
    /* An ordinary parse reads the CID as the length: the CID length is the receiver's. */
    assert_int_equal(dtls__rec_parse_cid(rec, (size_t)n, 4, &r), n);
    assert_int_equal(r.cid_len, 4);
    assert_true(r.seq == 7 && r.epoch == 1);
    assert_int_equal(dtls__rec_parse_cid(rec, (size_t)n - 1, 4, &r), -EBADMSG);
    assert_int_equal(dtls__rec_parse_cid(rec, 16, 4, &r), -EBADMSG);
    assert_int_equal(dtls__rec_parse_cid(rec, (size_t)n, DTLS_CID_MAX + 1, &r), -EBADMSG);
    assert_int_equal(dtls__rec_parse_cid(rec, (size_t)n, 4, &r), n);
    /* The ordinary open refuses a CID record (other additional data). */
    assert_int_equal(dtls__rl_open(&srv, a, &r, out, sizeof out), -EPROTO);
    /* Tampered CID, then tampered real type (inside the ciphertext): tag fails. */
    rec[12] ^= 1;
    assert_int_equal(dtls__rl_open_cid(&srv, a, &r, &type, out, sizeof out), -EBADMSG);
    rec[12] ^= 1;
    rec[DTLS_CID_HDR + 4 + expl + 5] ^= 0x40;
    assert_int_equal(dtls__rl_open_cid(&srv, a, &r, &type, out, sizeof out), -EBADMSG);
    rec[DTLS_CID_HDR + 4 + expl + 5] ^= 0x40;
    /* The same record read with a 3-byte CID: other additional data, other length. */
    dtls_rec_t r3;
    if (dtls__rec_parse_cid(rec, (size_t)n, 3, &r3) > 0)
        assert_int_equal(dtls__rl_open_cid(&srv, a, &r3, &type, out, sizeof out), -EBADMSG);
    assert_int_equal(dtls__rl_open_cid(&srv, a, &r, &type, out, sizeof out), 5);
    assert_int_equal(type, 23);
    assert_memory_equal(out, "hello", 5);
    assert_int_equal(dtls__rl_open_cid(&srv, a, &r, &type, out, sizeof out), -EALREADY);

    /* Padding: the real type is the last non-zero byte (content "hi", type 21). */
    static const uint8_t padded[] = {'h', 'i', 21, 0, 0, 0};
    n = dtls__rl_seal_cid(&cl, a, 0, cid, 4, padded, sizeof padded, rec, sizeof rec);
    assert_int_equal(dtls__rec_parse_cid(rec, (size_t)n, 4, &r), n);
    assert_int_equal(dtls__rl_open_cid(&srv, a, &r, &type, out, sizeof out), 2);
    assert_int_equal(type, 21);
    /* All zeros: authentic but malformed, and not marked in the window. */
    static const uint8_t zeros[3] = {0};
    n = dtls__rl_seal_cid(&cl, a, 0, cid, 4, zeros, 2, rec, sizeof rec);
    assert_int_equal(dtls__rec_parse_cid(rec, (size_t)n, 4, &r), n);
    assert_int_equal(dtls__rl_open_cid(&srv, a, &r, &type, out, sizeof out), -EBADMSG);
    assert_true(dtls__rl_replay_check(&srv, r.seq));

    /* Conversion for OpenSSL: the ordinary record opens with the ordinary code path. */
    n = dtls__rl_seal_cid(&cl, a, 22, cid, 4, (const uint8_t *)"finished", 8, rec, sizeof rec);
    assert_int_equal(dtls__rec_parse_cid(rec, (size_t)n, 4, &r), n);
    ssize_t m = dtls__rl_cid_to_plain(&srv2, a, &r, &type, conv, sizeof conv);
    assert_int_equal(m, DTLS_REC_HDR + expl + 8 + tag_len);
    assert_int_equal(type, 22);
    assert_int_equal(conv[0], 22);
    assert_false(dtls__rl_replay_check(&srv2, r.seq)); /* the shadow window has it */
    dtls_rl_t fresh = srv;
    fresh.r_any = false;
    dtls_rec_t o;
    assert_int_equal(dtls__rec_parse(conv, (size_t)m, &o), m);
    assert_true(o.seq == r.seq);
    assert_int_equal(dtls__rl_open(&fresh, a, &o, out, sizeof out), 8);
    assert_memory_equal(out, "finished", 8);
    /* Server to client with a CID (the client's), and no room. */
    n = dtls__rl_seal_cid(&srv, a, 23, cid, 2, (const uint8_t *)"ack", 3, rec, sizeof rec);
    assert_int_equal(dtls__rec_parse_cid(rec, (size_t)n, 2, &r), n);
    assert_int_equal(dtls__rl_open_cid(&cl, a, &r, &type, out, sizeof out), 3);
    assert_int_equal(dtls__rl_seal_cid(&srv, a, 23, cid, 4, (const uint8_t *)"ack", 3, rec, 20),
                     -ENOSPC);
    dtls__rl_wipe(&srv);
    dtls__rl_wipe(&srv2);
    dtls__rl_wipe(&fresh);
    dtls__rl_wipe(&cl);
}

/* A fixed vector from an implementation that is not ours: mbedTLS 3.6.6 (RFC 9146 CID, Debian
 * 13's source, scripts/mbedtls-cid.sh) as tests/integration/cid_device.c with CID_DEVICE_TRACE
 * set, PSK-AES128-CCM8, our CID 853a07e2, its CID c0ffee01. mbedTLS pads the inner plaintext to
 * 16 bytes. From the master secret and randoms it exported: its Finished and its CoAP POST
 * (tls12_cid, to us) open; our 2.01 to it (tls12_cid, its CID) opens, and sealing the same
 * content again gives the same bytes (CCM is deterministic). */
static size_t unhex(const char *h, uint8_t *out, size_t cap)
{
    size_t n = strlen(h) / 2;
    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

static void test_cid_mbedtls_vector(void **state)
{
    (void)state;
    uint8_t ms[48], cr[32], sr[32], rec[256], out[256], again[256], type = 0;
    unhex(
        "2995b16bbbfcfaa1c2b5c8ec84dbaf4d5d2739869d5e26b9483174e3655154d6491a019cfbb5185751439e"
        "23b6e19c1a",
        ms, sizeof ms);
    unhex("6b171b71963c2cc0554afa5b4823683a467cda8c5e6a6405be599f11d130bf94", cr, sizeof cr);
    unhex("be071ab8bc108fb746961bdd7f704031ad93606cda55e08213c791d46b306a9f", sr, sizeof sr);
    dtls_rl_t srv, cl;
    assert_int_equal(
        dtls__rl_derive(&srv, DTLS_AEAD_AES128_CCM, 8, EVP_sha256(), ms, sizeof ms, cr, sr), 0);
    dtls__rl_mirror(&srv, &cl);
    dtls_aead_ctx_t a;
    dtls__aead_init(&a);
    static const uint8_t our_cid[4] = {0x85, 0x3a, 0x07, 0xe2};
    dtls_rec_t r;

    /* Its Finished: handshake type 20 (finished), 12 bytes of verify_data. */
    size_t n = unhex(
        "19fefd0001000000000000853a07e2003000010000000000000f1d2cf1dccd53fd187c93927b"
        "da9865610b2dcbe0f81276f16a0407950b78c2c99b8e79996874f1",
        rec, sizeof rec);
    assert_int_equal(dtls__rec_parse_cid(rec, n, 4, &r), (ssize_t)n);
    assert_memory_equal(r.cid, our_cid, 4);
    ssize_t m = dtls__rl_open_cid(&srv, &a, &r, &type, out, sizeof out);
    assert_int_equal(m, 12 + 12);
    assert_int_equal(type, 22);
    assert_int_equal(out[0], 20);

    /* Its CON POST /api/v1/telemetry {"v":1}. */
    n = unhex(
        "19fefd0001000000000001853a07e2004000010000000000016996c3ebb4c250517f84626d6adaad2dc9"
        "16a516cb6dd1f0533dcd13e56d8fe037c72963c2d7ecb28f7de5bc88551b9e1dd8fb71ce97ede0",
        rec, sizeof rec);
    assert_int_equal(dtls__rec_parse_cid(rec, n, 4, &r), (ssize_t)n);
    m = dtls__rl_open_cid(&srv, &a, &r, &type, out, sizeof out);
    assert_int_equal(type, 23);
    assert_true(m > 8);
    assert_int_equal(out[0], 0x42); /* CoAP: version 1, CON, token length 2 */
    assert_int_equal(out[1], 0x02); /* POST */
    assert_memory_equal(out + m - 7, "{\"v\":1}", 7);
    /* The same record converted for OpenSSL opens on the ordinary path too. */
    dtls_rl_t conv = srv;
    conv.r_any = false;
    m = dtls__rl_cid_to_plain(&conv, &a, &r, &type, again, sizeof again);
    assert_true(m > 0);
    dtls__rl_wipe(&conv);

    /* Our piggybacked 2.01 to it, carrying its CID. */
    static const uint8_t its_cid[4] = {0xc0, 0xff, 0xee, 0x01};
    n = unhex("19fefd0001000000000001c0ffee0100170001000000000001975dc8178000472ab7b55f6aed1b24",
              rec, sizeof rec);
    assert_int_equal(dtls__rec_parse_cid(rec, n, 4, &r), (ssize_t)n);
    m = dtls__rl_open_cid(&cl, &a, &r, &type, out, sizeof out);
    assert_int_equal(m, 6);
    assert_int_equal(type, 23);
    assert_int_equal(out[0] >> 4, 0x6); /* ACK, token length 2 */
    assert_int_equal(out[1], 0x41);     /* 2.01 Created */
    srv.w_seq = 1;
    assert_int_equal(
        dtls__rl_seal_cid(&srv, &a, 23, its_cid, 4, out, (size_t)m, again, sizeof again),
        (ssize_t)n);
    assert_memory_equal(again, rec, n);
    dtls__rl_wipe(&srv);
    dtls__rl_wipe(&cl);
    dtls__aead_fini(&a);
}

static void test_cid_records(void **state)
{
    (void)state;
    dtls_aead_ctx_t a;
    dtls__aead_init(&a);
    cid_one(&a, DTLS_AEAD_AES128_GCM, 16);
    cid_one(&a, DTLS_AEAD_AES256_GCM, 16);
    cid_one(&a, DTLS_AEAD_AES128_CCM, 16);
    cid_one(&a, DTLS_AEAD_AES128_CCM, 8);
    cid_one(&a, DTLS_AEAD_AES256_CCM, 8);
    cid_one(&a, DTLS_AEAD_CHACHA20, 16);
    dtls__aead_fini(&a);
}

/* RFC 9146 §6 in a real listener: a CID session at address A and an ordinary session at B.
 * An unauthenticated CID record from C moves nothing; an authentic one from B moves the CID
 * session there (re-keyed in the address table, the request delivered after the move, the
 * stale ordinary session at B closed); an unknown CID is dropped unread. */
static struct sockaddr_storage v4(uint32_t host, uint16_t port)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr.s_addr = htonl(host);
    return ss;
}

static void test_cid_address_change(void **state)
{
    fx_t *f = *state;
    f->cfg.cid_len = 4;
    fx_listener(f);
    int fd = f->l->fd;
    f->l->fd = -1; /* nothing is sent anywhere */
    uint8_t ms[48], cr[32], sr[32];
    memset(ms, 0x71, sizeof ms);
    memset(cr, 0x72, sizeof cr);
    memset(sr, 0x73, sizeof sr);
    dtls_rl_t srv, cl;
    assert_int_equal(dtls__rl_derive(&srv, DTLS_AEAD_AES128_GCM, 16, EVP_sha256(), ms, 48, cr, sr),
                     0);
    dtls__rl_mirror(&srv, &cl);
    socklen_t alen = sizeof(struct sockaddr_in);
    struct sockaddr_storage A = v4(0x7f000001, 5001), B = v4(0x7f000001, 5002),
                            C = v4(0x7f000003, 5003);
    dtls_peer_t *p = dtls__peer_new_compact(f->l, &A, alen, &srv);
    static const uint8_t cid[4] = {1, 2, 3, 4};
    memcpy(p->cid, cid, 4);
    p->cid_len = 4;
    dtls__ptab_insert_cid(&f->l->cids, p);
    transport_peer_ref(&p->base);
    dtls_peer_t *o = dtls__peer_new_compact(f->l, &B, alen, &srv);
    transport_peer_ref(&o->base);
    assert_int_equal(stats(f).sessions, 2);
    assert_int_equal(stats(f).cid_sessions, 1);
    dtls_aead_ctx_t a;
    dtls__aead_init(&a);
    uint8_t rec[128];

    /* A forged record (right CID, wrong tag) from C: dropped, nothing moves. */
    ssize_t n = dtls__rl_seal_cid(&cl, &a, 23, cid, 4, (const uint8_t *)"forged", 6, rec,
                                  sizeof rec);
    rec[n - 1] ^= 1;
    int inputs = eng.inputs;
    dtls__listener_input(f->l, &C, alen, rec, (size_t)n);
    assert_true(sockaddr_equal(&p->base.addr, &A));
    assert_int_equal(stats(f).cid_address_changes, 0);
    assert_int_equal(stats(f).records_bad_mac, 1);
    assert_int_equal(eng.inputs, inputs);

    /* An authentic one from B: the session moves before the request is delivered. */
    n = dtls__rl_seal_cid(&cl, &a, 23, cid, 4, (const uint8_t *)"moved", 5, rec, sizeof rec);
    dtls__listener_input(f->l, &B, alen, rec, (size_t)n);
    assert_int_equal(eng.inputs, inputs + 1);
    assert_ptr_equal(eng.last_peer, &p->base);
    assert_memory_equal(eng.last, "moved", 5);
    assert_true(sockaddr_equal(&p->base.addr, &B));
    assert_int_equal(stats(f).cid_address_changes, 1);
    assert_int_equal(stats(f).cid_records, 1);
    assert_true(o->base.closed); /* the stale session at B */
    assert_false(p->base.closed);
    assert_int_equal(stats(f).sessions, 1);
    assert_ptr_equal(dtls__ptab_find(&f->l->est, &B), p);
    assert_null(dtls__ptab_find(&f->l->est, &A));
    /* A replay of it from A moves nothing back. */
    dtls__listener_input(f->l, &A, alen, rec, (size_t)n);
    assert_true(sockaddr_equal(&p->base.addr, &B));
    assert_int_equal(stats(f).records_replayed, 1);

    /* An unknown CID: dropped before any decryption. */
    static const uint8_t other_cid[4] = {9, 9, 9, 9};
    n = dtls__rl_seal_cid(&cl, &a, 23, other_cid, 4, (const uint8_t *)"x", 1, rec, sizeof rec);
    dtls__listener_input(f->l, &C, alen, rec, (size_t)n);
    assert_int_equal(stats(f).cid_unknown, 1);
    /* A CID record cut short before its CID ends: dropped too. */
    dtls__listener_input(f->l, &C, alen, rec, 14);
    assert_int_equal(stats(f).cid_unknown, 2);

    dtls__aead_fini(&a);
    dtls__rl_wipe(&srv);
    dtls__rl_wipe(&cl);
    dtls__peer_close(p, false);
    assert_int_equal(stats(f).cid_sessions, 0);
    f->l->fd = fd;
    transport_peer_unref(&p->base);
    transport_peer_unref(&o->base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_aes128_gcm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chacha20_poly1305, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aes256_gcm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aes128_ccm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aes128_ccm8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aes256_ccm_and_ccm8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_switch_off_keeps_openssl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_and_reorder_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_truncated_wrong_epoch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_record_replay_after_handover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_early_epoch1_data_keeps_openssl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_notify_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alerts_and_renegotiation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_and_resumption, setup, teardown),
        cmocka_unit_test(test_window_and_sequence_limits),
        cmocka_unit_test(test_cid_records),
        cmocka_unit_test(test_cid_mbedtls_vector),
        cmocka_unit_test_setup_teardown(test_cid_address_change, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
