/* test_listener.c — full DTLS 1.2 handshakes between an OpenSSL client and the listener
 * (src/dtls): identity from the leaf, one-way DTLS, expired certificates, chain injection,
 * HelloVerify without state, records both ways, tampering, close_notify, resumption,
 * eviction and close_device. Both ends run in this thread over loopback sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fixture.h"

#include <ftw.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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

/* Full handshake, then resume: from OpenSSL's cache of recent sessions, then — that cache
 * flushed — from the DER store (endpoint.c), with the same identity; a reload empties the
 * store and the old session gets a full handshake. */
static void resume(fx_t *f, SSL_SESSION *sess, int expect_reused)
{
    test_client_t c;
    test_client_open(&c, dtls_listener_port(f->l), &f->a, NULL, NULL);
    SSL_set_session(c.ssl, sess);
    assert_int_equal(handshake(f, &c), 1);
    assert_int_equal(SSL_session_reused(c.ssl), expect_reused);
    assert_int_equal(send_app(f, &c, "resumed?"), 1);
    assert_int_equal(eng.last_device, DEVICE_A);
    SSL_shutdown(c.ssl);
    dtls__listener_poll(f->l);
    test_client_close(&c);
}

static void test_session_store_tiers(void **state)
{
    fx_t *f = *state;
    fx_listener(f);
    test_client_t c;
    test_client_open(&c, dtls_listener_port(f->l), &f->a, NULL, NULL);
    assert_int_equal(handshake(f, &c), 1);
    assert_int_equal(dtls__ctx_sessions_stored(f->ctx), 1);
    SSL_SESSION *sess = SSL_get1_session(c.ssl);
    assert_non_null(sess);
    SSL_shutdown(c.ssl);
    dtls__listener_poll(f->l);
    test_client_close(&c);

    resume(f, sess, 1); /* the hot tier */
    unsigned gen;
    SSL_CTX *sc = dtls__ctx_acquire(f->ctx, &gen);
    SSL_CTX_flush_sessions(sc, (long)time(NULL) + 2 * 86400); /* empties the hot tier only */
    SSL_CTX_free(sc);
    resume(f, sess, 1); /* the DER store */
    assert_int_equal(stats(f).resumed, 2);

    char err[ERR_LEN];
    assert_int_equal(dtls_ctx_reload(f->ctx, err), 0);
    assert_int_equal(dtls__ctx_sessions_stored(f->ctx), 0);
    resume(f, sess, 0); /* a full handshake, the same device */
    assert_int_equal(dtls__ctx_sessions_stored(f->ctx), 1);
    SSL_SESSION_free(sess);
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
    /* f->other names no device: its session is the one to go (test_admit.c has more). */
    assert_int_equal(s.evicted_unknown, 1);
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
    char err[ERR_LEN];
    assert_int_equal(dtls_ctx_reload(f->ctx, err), 0);
    assert_int_equal(send_app(f, &c, "still here"), 1);
    test_client_t d;
    test_client_open(&d, dtls_listener_port(f->l), NULL, NULL, NULL);
    assert_int_equal(handshake(f, &d), 1);
    assert_int_equal(stats(f).sessions, 2);
    test_client_close(&c);
    test_client_close(&d);
}


static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return strdup(buf);
}

static void test_server_certificate_files(void **state)
{
    fx_t *f = *state;
    char err[ERR_LEN];
    /* First start generates; the second start reuses the same certificate. */
    dtls_ctx_t *c1 = dtls_ctx_new(&f->cfg, err);
    assert_non_null(c1);
    char *pem1 = slurp(dtls_ctx_cert_path(c1));
    dtls_ctx_free(c1);
    dtls_ctx_t *c2 = dtls_ctx_new(&f->cfg, err);
    assert_non_null(c2);
    char *pem2 = slurp(dtls_ctx_cert_path(c2));
    assert_string_equal(pem1, pem2);
    assert_non_null(strstr(pem1, "BEGIN CERTIFICATE"));
    dtls_ctx_free(c2);
    free(pem1);
    free(pem2);

    /* Configured files: an encrypted key with its password, and a chain file. */
    test_cert_t ca, srv;
    test_cert_make(&ca, "test-ca", -1, 30, NULL);
    test_cert_make(&srv, "localhost", -1, 30, &ca);
    char cert[128], key[128], chain[128];
    snprintf(cert, sizeof cert, "%s/srv.pem", f->dir);
    snprintf(key, sizeof key, "%s/srv.key", f->dir);
    snprintf(chain, sizeof chain, "%s/chain.pem", f->dir);
    FILE *fp = fopen(cert, "w");
    PEM_write_X509(fp, srv.cert);
    fclose(fp);
    fp = fopen(chain, "w");
    PEM_write_X509(fp, ca.cert);
    fclose(fp);
    fp = fopen(key, "w");
    PEM_write_PrivateKey(fp, srv.key, EVP_aes_256_cbc(), (unsigned char *)"s3cret", 6, NULL,
                         NULL);
    fclose(fp);
    f->cfg.cert_file = cert;
    f->cfg.key_file = key;
    f->cfg.chain_file = chain;
    f->cfg.key_password = "wrong";
    assert_null(dtls_ctx_new(&f->cfg, err));
    assert_non_null(strstr(err, "server key"));
    ERR_clear_error();
    f->cfg.key_password = "s3cret";
    fx_listener(f);
    assert_string_equal(dtls_ctx_cert_path(f->ctx), cert);
    test_client_t c;
    test_client_open(&c, dtls_listener_port(f->l), &f->a, NULL, NULL);
    assert_int_equal(handshake(f, &c), 1);
    /* The client received the chain: leaf + CA. */
    STACK_OF(X509) *sent = SSL_get_peer_cert_chain(c.ssl);
    assert_non_null(sent);
    assert_int_equal(sk_X509_num(sent), 2);
    test_client_close(&c);
    /* A missing file is an error with its name, not a crash. */
    f->cfg.chain_file = "/nonexistent/chain.pem";
    assert_null(dtls_ctx_new(&f->cfg, err));
    assert_non_null(strstr(err, "/nonexistent/chain.pem"));
    ERR_clear_error();
    test_cert_free(&ca);
    test_cert_free(&srv);
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
        cmocka_unit_test_setup_teardown(test_session_store_tiers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eviction_and_close_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_keeps_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_certificate_files, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
