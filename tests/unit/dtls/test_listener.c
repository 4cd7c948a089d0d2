/* test_listener.c — full DTLS 1.2 handshakes between an OpenSSL client and the listener
 * (src/dtls): identity from the leaf, one-way DTLS, expired certificates, chain injection,
 * HelloVerify without state, records both ways, tampering, close_notify, resumption,
 * eviction and close_device. Both ends run in this thread over loopback sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dtls/dtls_int.h"
#include "pki.h"

#include <ftw.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- a fake CoAP engine that records what the transport hands up ------------------------ */

static struct {
    int inputs, closed;
    transport_peer_t *last_peer;
    int64_t last_device;
    uint8_t last[256];
    size_t last_len;
} eng;

void coap_engine_input(coap_engine_t *e, transport_peer_t *peer, const uint8_t *p, size_t len)
{
    eng.inputs++;
    eng.last_peer = peer;
    eng.last_device = peer->cert_device_id;
    eng.last_len = len < sizeof eng.last ? len : sizeof eng.last;
    memcpy(eng.last, p, eng.last_len);
}

void coap_engine_peer_closed(coap_engine_t *e, transport_peer_t *peer)
{
    eng.closed++;
    if (eng.last_peer == peer)
        eng.last_peer = NULL;
}

/* ---- fixture ------------------------------------------------------------------------------ */

#define DEVICE_A 42

typedef struct fx {
    char dir[64];
    loop_t *loop;
    registry_t *reg;
    dtls_ctx_t *ctx;
    dtls_listener_t *l;
    dtls_cfg_t cfg;
    test_cert_t a;     /* registered as DEVICE_A */
    test_cert_t other; /* unregistered */
} fx_t;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    return remove(p);
}

static void fx_listener(fx_t *f)
{
    char err[256] = "";
    f->ctx = dtls_ctx_new(&f->cfg, f->reg, err);
    assert_non_null(f->ctx);
    f->l = dtls_listener_new(f->loop, (coap_engine_t *)f, f->ctx, &f->cfg, err);
    if (!f->l)
        fail_msg("%s", err);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    memset(&eng, 0, sizeof eng);
    snprintf(f->dir, sizeof f->dir, "/tmp/coaphub-dtls-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char err[256];
    f->loop = loop_new(err);
    assert_non_null(f->loop);
    f->reg = registry_new();
    test_cert_make(&f->a, "thermo-1", -1, 365, NULL);
    test_cert_make(&f->other, "stranger", -1, 365, NULL);
    char hex[65];
    test_cert_hash(&f->a, hex);
    registry_set(f->reg, DEVICE_A, CRED_X509, hex);
    dtls_cfg_default(&f->cfg);
    f->cfg.bind_addr = "127.0.0.1";
    f->cfg.port = 0;
    f->cfg.data_dir = f->dir;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    dtls_listener_free(f->l);
    dtls_ctx_free(f->ctx);
    registry_free(f->reg);
    loop_free(f->loop);
    test_cert_free(&f->a);
    test_cert_free(&f->other);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    ERR_clear_error();
    return 0;
}

static dtls_stats_t stats(fx_t *f)
{
    dtls_stats_t s;
    dtls_listener_get_stats(f->l, &s);
    return s;
}

/* Runs both ends until the client's handshake finishes (1) or fails (0). */
static int handshake(fx_t *f, test_client_t *c)
{
    for (int i = 0; i < 400; i++) {
        int rc = SSL_do_handshake(c->ssl);
        if (rc == 1) {
            dtls__listener_poll(f->l); /* the client's last flight */
            return 1;
        }
        int e = SSL_get_error(c->ssl, rc);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            return 0;
        usleep(1000);
        dtls__listener_poll(f->l);
        test_client_wait(c, 5);
    }
    return 0;
}

/* Client writes msg; the server polls; returns the number of engine inputs it caused. */
static int send_app(fx_t *f, test_client_t *c, const char *msg)
{
    int before = eng.inputs;
    assert_int_equal(SSL_write(c->ssl, msg, (int)strlen(msg)), (int)strlen(msg));
    usleep(2000);
    dtls__listener_poll(f->l);
    return eng.inputs - before;
}

/* Client reads one record; returns its length, 0 on close_notify, -1 on nothing. */
static int client_read(test_client_t *c, char *buf, int cap)
{
    for (int i = 0; i < 100; i++) {
        int n = SSL_read(c->ssl, buf, cap);
        if (n > 0)
            return n;
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_ZERO_RETURN)
            return 0;
        if (e != SSL_ERROR_WANT_READ)
            return -2;
        test_client_wait(c, 5);
    }
    return -1;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_registered_certificate(void **state)
{
    fx_t *f = *state;
    fx_listener(f);
    /* The server certificate was generated into the data dir. */
    char path[128];
    snprintf(path, sizeof path, "%s/dtls-server-key.pem", f->dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_string_equal(dtls_ctx_cert_path(f->ctx) + strlen(f->dir), "/dtls-server-cert.pem");

    test_client_t c;
    test_client_open(&c, dtls_listener_port(f->l), &f->a, NULL, "ECDHE-ECDSA-AES128-CCM8");
    assert_int_equal(handshake(f, &c), 1);
    assert_string_equal(SSL_get_cipher_name(c.ssl), "ECDHE-ECDSA-AES128-CCM8");
    dtls_stats_t s = stats(f);
    assert_true(s.cookies_sent >= 1);
    assert_int_equal(s.handshakes_ok, 1);
    assert_int_equal(s.sessions, 1);
    assert_int_equal(s.handshakes_in_progress, 0);

    assert_int_equal(send_app(f, &c, "hello"), 1);
    assert_int_equal(eng.last_device, DEVICE_A);
    assert_int_equal(eng.last_peer->kind, TRANSPORT_DTLS);
    assert_memory_equal(eng.last, "hello", 5);

    /* And back through the transport interface. */
    assert_int_equal(transport_peer_send(eng.last_peer, (const uint8_t *)"pong", 4), 0);
    char buf[64];
    assert_int_equal(client_read(&c, buf, sizeof buf), 4);
    assert_memory_equal(buf, "pong", 4);

    /* close_notify from the client ends the session and tells the engine. */
    SSL_shutdown(c.ssl);
    usleep(2000);
    dtls__listener_poll(f->l);
    assert_int_equal(eng.closed, 1);
    assert_int_equal(stats(f).sessions, 0);
    test_client_close(&c);
}

static void test_one_way_and_unregistered(void **state)
{
    fx_t *f = *state;
    fx_listener(f);
    test_client_t c;
    test_client_open(&c, dtls_listener_port(f->l), NULL, NULL, "ECDHE-ECDSA-AES128-GCM-SHA256");
    assert_int_equal(handshake(f, &c), 1);
    assert_int_equal(send_app(f, &c, "x"), 1);
    assert_int_equal(eng.last_device, 0);
    test_client_close(&c);

    test_client_open(&c, dtls_listener_port(f->l), &f->other, NULL, NULL);
    assert_int_equal(handshake(f, &c), 1);
    assert_int_equal(send_app(f, &c, "y"), 1);
    assert_int_equal(eng.last_device, 0);
    test_client_close(&c);
}

static void test_expired_rejected_unless_skipped(void **state)
{
    fx_t *f = *state;
    test_cert_t old, future;
    test_cert_make(&old, "old", -30, -1, NULL);
    test_cert_make(&future, "future", 2, 30, NULL);
    fx_listener(f);
    test_client_t c;
    test_client_open(&c, dtls_listener_port(f->l), &old, NULL, NULL);
    assert_int_equal(handshake(f, &c), 0);
    assert_int_equal(ERR_GET_REASON(ERR_peek_last_error()), SSL_R_SSLV3_ALERT_BAD_CERTIFICATE);
    ERR_clear_error();
    test_client_close(&c);
    test_client_open(&c, dtls_listener_port(f->l), &future, NULL, NULL);
    assert_int_equal(handshake(f, &c), 0);
    ERR_clear_error();
    test_client_close(&c);
    dtls_stats_t s = stats(f);
    assert_int_equal(s.handshakes_failed, 2);
    assert_int_equal(s.handshakes_ok, 0);
    assert_int_equal(s.sessions, 0);
    assert_int_equal(s.handshakes_in_progress, 0);
    dtls_listener_free(f->l);
    dtls_ctx_free(f->ctx);

    f->cfg.skip_validity_check = true;
    fx_listener(f);
    test_client_open(&c, dtls_listener_port(f->l), &old, NULL, NULL);
    assert_int_equal(handshake(f, &c), 1);
    test_client_close(&c);
    test_cert_free(&old);
    test_cert_free(&future);
}

static void test_chain_injection_not_the_victim(void **state)
{
    fx_t *f = *state;
    fx_listener(f);
    /* The attacker's own leaf, "issued" by the victim's name, with the victim's registered
     * certificate appended as if it were the intermediate. */
    test_cert_t leaf;
    test_cert_make(&leaf, "attacker", -1, 30, NULL);
    X509_set_issuer_name(leaf.cert, X509_get_subject_name(f->a.cert));
    X509_sign(leaf.cert, leaf.key, EVP_sha256());
    test_client_t c;
    test_client_open(&c, dtls_listener_port(f->l), &leaf, &f->a, NULL);
    assert_int_equal(handshake(f, &c), 1);
    assert_int_equal(send_app(f, &c, "steal"), 1);
    assert_int_equal(eng.last_device, 0);
    test_client_close(&c);
    test_cert_free(&leaf);
}

/* A minimal ClientHello (no cookie) as the very first datagram. */
static size_t bare_client_hello(uint8_t *b)
{
    size_t body = 2 + 32 + 1 + 1 + 2 + 2 + 1 + 1;
    uint8_t hdr[] = {22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, (uint8_t)(12 + body),
                     1, 0, 0, (uint8_t)body, 0, 0, 0, 0, 0, 0, 0, (uint8_t)body};
    memcpy(b, hdr, sizeof hdr);
    uint8_t *p = b + sizeof hdr;
    memset(p, 0, body);
    p[0] = 0xfe;
    p[1] = 0xfd;
    p[36] = 0;                /* cookie length */
    p[37] = 0, p[38] = 2;     /* one suite */
    p[39] = 0xc0, p[40] = 0xae; /* ECDHE-ECDSA-AES128-CCM8 */
    p[41] = 1, p[42] = 0;     /* null compression */
    return sizeof hdr + body;
}

static void test_hello_without_cookie_is_stateless(void **state)
{
    fx_t *f = *state;
    fx_listener(f);
    test_client_t c;
    test_client_open(&c, dtls_listener_port(f->l), NULL, NULL, NULL);
    uint8_t hello[128];
    size_t n = bare_client_hello(hello);
    for (int i = 0; i < 3; i++) {
        test_client_send_raw(&c, hello, n);
        usleep(1000);
        dtls__listener_poll(f->l);
        uint8_t reply[512];
        assert_true(test_client_wait(&c, 50) > 0);
        ssize_t r = recv(c.fd, reply, sizeof reply, 0);
        assert_true(r > 25);
        assert_true((size_t)r <= n); /* never amplifies */
        assert_int_equal(reply[0], 22);
        assert_int_equal(reply[13], 3); /* hello_verify_request */
    }
    dtls_stats_t s = stats(f);
    assert_int_equal(s.cookies_sent, 3);
    assert_int_equal(s.handshakes_in_progress, 0);
    assert_int_equal(s.sessions, 0);
    /* Non-handshake junk from an unknown address: dropped, no reply. */
    hello[0] = 23;
    test_client_send_raw(&c, hello, n);
    usleep(1000);
    dtls__listener_poll(f->l);
    assert_int_equal(test_client_wait(&c, 20), -1);
    assert_int_equal(stats(f).records_dropped, 1);
    test_client_close(&c);
}

static void test_tampered_and_replayed_records_dropped(void **state)
{
    fx_t *f = *state;
    fx_listener(f);
    test_client_t c;
    test_client_open(&c, dtls_listener_port(f->l), &f->a, NULL, NULL);
    assert_int_equal(handshake(f, &c), 1);
    /* Capture the next record instead of sending it. */
    BIO *mem = BIO_new(BIO_s_mem());
    BIO *dgram = SSL_get_wbio(c.ssl);
    BIO_up_ref(dgram);
    SSL_set0_wbio(c.ssl, mem);
    assert_int_equal(SSL_write(c.ssl, "temp=1", 6), 6);
    uint8_t rec[256];
    int n = BIO_read(mem, rec, sizeof rec);
    assert_true(n > 13);
    SSL_set0_wbio(c.ssl, dgram);

    test_client_send_raw(&c, rec, (size_t)n);
    usleep(1000);
    dtls__listener_poll(f->l);
    assert_int_equal(eng.inputs, 1);
    uint64_t dropped = stats(f).records_dropped;
    /* Replay: the DTLS replay window drops it. */
    test_client_send_raw(&c, rec, (size_t)n);
    usleep(1000);
    dtls__listener_poll(f->l);
    assert_int_equal(eng.inputs, 1);
    /* One flipped ciphertext bit (with a fresh sequence number): the AEAD tag fails. */
    rec[10] ^= 0x01;
    rec[n - 1] ^= 0x80;
    test_client_send_raw(&c, rec, (size_t)n);
    usleep(1000);
    dtls__listener_poll(f->l);
    assert_int_equal(eng.inputs, 1);
    assert_int_equal(stats(f).records_dropped, dropped + 2);
    /* The session survived both. */
    assert_int_equal(stats(f).sessions, 1);
    assert_int_equal(send_app(f, &c, "temp=2"), 1);
    test_client_close(&c);
}

static void test_resumption_keeps_identity(void **state)
{
    fx_t *f = *state;
    fx_listener(f);
    test_client_t c;
    test_client_open(&c, dtls_listener_port(f->l), &f->a, NULL, NULL);
    assert_int_equal(handshake(f, &c), 1);
    SSL_SESSION *sess = SSL_get1_session(c.ssl);
    assert_non_null(sess);
    SSL_shutdown(c.ssl);
    dtls__listener_poll(f->l);
    test_client_close(&c);

    /* A new socket (a new source port, as behind a NAT) resumes the session. */
    test_client_open(&c, dtls_listener_port(f->l), &f->a, NULL, NULL);
    SSL_set_session(c.ssl, sess);
    assert_int_equal(handshake(f, &c), 1);
    assert_int_equal(SSL_session_reused(c.ssl), 1);
    assert_int_equal(stats(f).resumed, 1);
    assert_int_equal(send_app(f, &c, "again"), 1);
    assert_int_equal(eng.last_device, DEVICE_A);
    SSL_SESSION_free(sess);
    test_client_close(&c);
}

static void test_eviction_and_close_device(void **state)
{
    fx_t *f = *state;
    f->cfg.max_sessions = 1;
    fx_listener(f);
    test_client_t c1, c2;
    test_client_open(&c1, dtls_listener_port(f->l), &f->other, NULL, NULL);
    assert_int_equal(handshake(f, &c1), 1);
    test_client_open(&c2, dtls_listener_port(f->l), &f->a, NULL, NULL);
    assert_int_equal(handshake(f, &c2), 1);
    dtls_stats_t s = stats(f);
    assert_int_equal(s.evicted, 1);
    assert_int_equal(s.sessions, 1);
    assert_int_equal(eng.closed, 1);
    char buf[32];
    assert_int_equal(client_read(&c1, buf, sizeof buf), 0); /* evicted with close_notify */

    /* The device's credentials changed: its session ends with close_notify. */
    dtls_listener_close_device(f->l, 7); /* some other device: nothing */
    assert_int_equal(stats(f).sessions, 1);
    dtls_listener_close_device(f->l, DEVICE_A);
    assert_int_equal(stats(f).sessions, 0);
    assert_int_equal(stats(f).closed_by_credentials, 1);
    assert_int_equal(eng.closed, 2);
    assert_int_equal(client_read(&c2, buf, sizeof buf), 0);
    test_client_close(&c1);
    test_client_close(&c2);
}

static void test_reload_keeps_sessions(void **state)
{
    fx_t *f = *state;
    fx_listener(f);
    test_client_t c;
    test_client_open(&c, dtls_listener_port(f->l), &f->a, NULL, NULL);
    assert_int_equal(handshake(f, &c), 1);
    char err[256];
    assert_int_equal(dtls_ctx_reload(f->ctx, err), 0);
    assert_int_equal(send_app(f, &c, "still here"), 1);
    test_client_t d;
    test_client_open(&d, dtls_listener_port(f->l), NULL, NULL, NULL);
    assert_int_equal(handshake(f, &d), 1);
    assert_int_equal(stats(f).sessions, 2);
    test_client_close(&c);
    test_client_close(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_registered_certificate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_way_and_unregistered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_rejected_unless_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_injection_not_the_victim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hello_without_cookie_is_stateless, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_and_replayed_records_dropped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_resumption_keeps_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eviction_and_close_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_keeps_sessions, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
