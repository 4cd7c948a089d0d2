/* test_admit.c — handshake admission (issue #17, reliability D3) and the second class of
 * sessions whose certificate names no device: the per-address key (IPv4 address, IPv6 /64,
 * IPv4-mapped as IPv4), the per-address cap, eviction of a stalled handshake when the table
 * is full (and refusal when none is stalled), the stall timeout, unknown-certificate
 * sessions evicted first and idle-closed sooner, and the RSA key-size check. Real OpenSSL
 * clients over loopback, both ends in this thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fixture.h"

#include "core/sockaddr.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <string.h>
#include <unistd.h>

static size_t key_of(const char *ip, int port, uint8_t key[static SOCKADDR_PREFIX_KEY_MAX])
{
    struct sockaddr_storage ss = {0};
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
    }
    return sockaddr_prefix_key(&ss, key);
}

static bool same_key(const char *x, int xp, const char *y, int yp)
{
    uint8_t a[SOCKADDR_PREFIX_KEY_MAX], b[SOCKADDR_PREFIX_KEY_MAX];
    size_t na = key_of(x, xp, a), nb = key_of(y, yp, b);
    return na == nb && memcmp(a, b, na) == 0;
}

static void test_address_key(void **state)
{
    (void)state;
    assert_true(same_key("192.0.2.7", 1, "192.0.2.7", 40000)); /* ports do not count */
    assert_false(same_key("192.0.2.7", 1, "192.0.2.8", 1));
    assert_true(same_key("2001:db8::1", 1, "2001:db8::ab:cd", 2));  /* one /64 */
    assert_false(same_key("2001:db8::1", 1, "2001:db8:0:1::1", 1)); /* the next /64 */
    assert_true(same_key("::ffff:192.0.2.7", 5, "192.0.2.7", 6));   /* dual-stack socket */
    assert_false(same_key("::ffff:192.0.2.7", 5, "::ffff:192.0.2.8", 5));
}

/* A client that passes the cookie and then stops: ClientHello, HelloVerifyRequest, the
 * ClientHello with the cookie; the server's flight is never answered. Returns whether the
 * server made a handshake for it. */
static bool half_open(fx_t *f, test_client_t *c, const test_cert_t *cert)
{
    size_t before = stats(f).handshakes_in_progress;
    test_client_open(c, dtls_listener_port(f->l), cert, NULL, NULL);
    SSL_do_handshake(c->ssl); /* ClientHello */
    usleep(1000);
    dtls__listener_poll(f->l); /* HelloVerifyRequest */
    assert_true(test_client_wait(c, 200) > 0);
    SSL_do_handshake(c->ssl); /* ClientHello with the cookie */
    usleep(1000);
    dtls__listener_poll(f->l);
    ERR_clear_error();
    return stats(f).handshakes_in_progress > before;
}

/* Lets the loop clock pass ms (the listener reads it for progress and eviction). */
static void pass_ms(fx_t *f, int ms)
{
    usleep((useconds_t)ms * 1000);
    loop_update_time(f->loop);
}

static void test_per_address_cap(void **state)
{
    fx_t *f = *state;
    f->cfg.max_handshakes_per_addr = 2;
    fx_listener(f);
    test_client_t c[3];
    assert_true(half_open(f, &c[0], &f->other));
    assert_true(half_open(f, &c[1], &f->other));
    assert_false(half_open(f, &c[2], &f->other)); /* same address, another port */
    dtls_stats_t s = stats(f);
    assert_int_equal(s.handshakes_in_progress, 2);
    assert_int_equal(s.handshakes_refused_addr, 1);
    assert_int_equal(s.handshakes_refused, 0);
    for (int i = 0; i < 3; i++)
        test_client_close(&c[i]);
}

static void test_full_table_evicts_a_stalled_handshake(void **state)
{
    fx_t *f = *state;
    f->cfg.max_handshakes = 2;
    f->cfg.retransmission_ms = 20; /* stalled = no progress for 20 ms */
    fx_listener(f);
    loop_update_time(f->loop);
    test_client_t h1, h2, dev, late;
    assert_true(half_open(f, &h1, &f->other));
    assert_true(half_open(f, &h2, &f->other));
    /* Both are fresh: a new one is refused rather than evicting a handshake that may be
     * about to finish. */
    assert_false(half_open(f, &late, &f->other));
    assert_int_equal(stats(f).handshakes_refused, 1);
    test_client_close(&late);
    /* Once they stalled, a real device gets in: the oldest stalled one makes room. */
    pass_ms(f, 40);
    test_client_open(&dev, dtls_listener_port(f->l), &f->a, NULL, NULL);
    assert_int_equal(handshake(f, &dev), 1);
    assert_int_equal(send_app(f, &dev, "in"), 1);
    assert_int_equal(eng.last_device, DEVICE_A);
    dtls_stats_t s = stats(f);
    assert_int_equal(s.handshakes_evicted, 1);
    assert_int_equal(s.handshakes_in_progress, 1);
    assert_int_equal(s.sessions, 1);
    test_client_close(&h1);
    test_client_close(&h2);
    test_client_close(&dev);
}

static void test_stalled_handshake_swept(void **state)
{
    fx_t *f = *state;
    f->cfg.handshake_stall_ms = 5000;
    fx_listener(f);
    loop_update_time(f->loop);
    int64_t t0 = loop_now_ms(f->loop);
    test_client_t c;
    assert_true(half_open(f, &c, &f->other));
    dtls__listener_sweep(f->l, t0 + 4000);
    assert_int_equal(stats(f).handshakes_in_progress, 1);
    dtls__listener_sweep(f->l, t0 + 5100); /* long before handshake_timeout_ms (30 s) */
    dtls_stats_t s = stats(f);
    assert_int_equal(s.handshakes_in_progress, 0);
    assert_int_equal(s.handshakes_stalled, 1);
    assert_int_equal(s.handshake_timeouts, 0);
    test_client_close(&c);
}

static void stop_loop(loop_t *loop, void *arg)
{
    (void)arg;
    loop_stop(loop);
}

/* Between datagrams a handshake's record buffers are freed (peer.c hs_buffers): the
 * server's retransmission timer and the client's late next flight must find them again. */
static void test_handshake_resumes_after_pause(void **state)
{
    fx_t *f = *state;
    f->cfg.retransmission_ms = 30;
    fx_listener(f);
    loop_update_time(f->loop);
    test_client_t c;
    assert_true(half_open(f, &c, &f->a));
    /* ~150 ms of the loop: the server resends its flight (30, then 60 ms later). */
    loop_timer_t stop;
    loop_timer_init(&stop, stop_loop, NULL);
    loop_timer_arm(f->loop, &stop, 150);
    assert_int_equal(loop_run(f->loop), 0);
    assert_true(test_client_wait(&c, 10) > 0);
    assert_int_equal(handshake(f, &c), 1);
    assert_int_equal(send_app(f, &c, "late"), 1);
    assert_int_equal(eng.last_device, DEVICE_A);
    assert_int_equal(stats(f).handshakes_stalled, 0);
    test_client_close(&c);
}

static void test_unknown_certificate_sessions_second_class(void **state)
{
    fx_t *f = *state;
    f->cfg.max_sessions = 1;
    f->cfg.unknown_cert_inactivity_ms = 60000;
    /* Any session may be evicted (as if stale), so the unknown certificate's handshake is
     * admitted and the second-class rule decides when it completes. With the default
     * threshold it would be refused at its ClientHello (test_full_session_table_...). */
    f->cfg.stale_session_ms = 0;
    fx_listener(f);
    loop_update_time(f->loop);
    int64_t t0 = loop_now_ms(f->loop);
    char buf[32];

    /* The device's session fills the table: an unknown certificate's is refused, not the
     * device's evicted. */
    test_client_t dev, u1, u2, anon;
    test_client_open(&dev, dtls_listener_port(f->l), &f->a, NULL, NULL);
    assert_int_equal(handshake(f, &dev), 1);
    test_client_open(&u1, dtls_listener_port(f->l), &f->other, NULL, NULL);
    handshake(f, &u1);
    assert_int_equal(client_read(&u1, buf, sizeof buf), 0); /* close_notify at once */
    dtls_stats_t s = stats(f);
    assert_int_equal(s.evicted_unknown, 1);
    assert_int_equal(s.evicted, 0);
    assert_int_equal(s.sessions, 1);
    assert_int_equal(send_app(f, &dev, "still"), 1);
    dtls_listener_close_device(f->l, DEVICE_A);
    test_client_close(&dev);
    test_client_close(&u1);

    /* An unknown certificate's session goes first when a one-way session arrives, and it
     * idles out after unknown_cert_inactivity_ms while a device-less one-way session (no
     * certificate) keeps the normal 24 h. */
    f->cfg.max_sessions = 2;
    dtls_listener_free(f->l);
    dtls_ctx_free(f->ctx);
    fx_listener(f);
    test_client_open(&u2, dtls_listener_port(f->l), &f->other, NULL, NULL);
    assert_int_equal(handshake(f, &u2), 1);
    test_client_open(&anon, dtls_listener_port(f->l), NULL, NULL, NULL);
    assert_int_equal(handshake(f, &anon), 1);
    assert_int_equal(stats(f).sessions, 2);
    dtls__listener_sweep(f->l, t0 + 59000);
    assert_int_equal(stats(f).sessions, 2);
    dtls__listener_sweep(f->l, t0 + 61000);
    s = stats(f);
    assert_int_equal(s.idle_unknown, 1);
    assert_int_equal(s.idle_closed, 0);
    assert_int_equal(s.sessions, 1);
    assert_int_equal(client_read(&u2, buf, sizeof buf), 0);
    assert_int_equal(send_app(f, &anon, "token path"), 1);
    test_client_close(&u2);
    test_client_close(&anon);
}

/* Reliability D10, Scandium's model: a full session table takes a newcomer only in place of a
 * stale session; while every session is fresh the newcomer is refused, at its ClientHello or,
 * if it was admitted while there was room, when its handshake completes. */
static void test_full_session_table_refuses_unless_stale(void **state)
{
    fx_t *f = *state;
    f->cfg.max_sessions = 1;
    f->cfg.stale_session_ms = 60000;
    fx_listener(f);
    loop_update_time(f->loop);
    char buf[32];
    test_client_t early, dev, late, anon;

    /* A one-way client passes the cookie while the table is empty; the device then fills it. */
    assert_true(half_open(f, &early, NULL));
    test_client_open(&dev, dtls_listener_port(f->l), &f->a, NULL, NULL);
    assert_int_equal(handshake(f, &dev), 1);
    assert_int_equal(stats(f).sessions, 1);

    /* The device's session is fresh: the early handshake completes but its session is closed
     * at once, and a new ClientHello is refused before any handshake work. */
    assert_int_equal(handshake(f, &early), 1);
    assert_int_equal(client_read(&early, buf, sizeof buf), 0); /* close_notify */
    assert_false(half_open(f, &late, NULL));
    dtls_stats_t s = stats(f);
    assert_int_equal(s.handshakes_refused_full, 2);
    assert_int_equal(s.evicted, 0);
    assert_int_equal(s.sessions, 1);
    assert_int_equal(s.handshakes_in_progress, 0);
    assert_int_equal(send_app(f, &dev, "still"), 1);
    assert_int_equal(eng.last_device, DEVICE_A);

    /* The device may redo its handshake from its port (RFC 6347 §4.2.8, a restarted client):
     * the new session replaces its own. */
    assert_int_equal(SSL_clear(dev.ssl), 1);
    SSL_set_connect_state(dev.ssl);
    assert_int_equal(handshake(f, &dev), 1);
    assert_int_equal(send_app(f, &dev, "again"), 1);
    assert_int_equal(stats(f).sessions, 1);
    assert_int_equal(stats(f).handshakes_refused_full, 2);

    /* Stale (no authenticated record for stale_session_ms): a newcomer takes its place. */
    f->l->est_age.head->last_seen_ms = loop_now_ms(f->l->loop) - 60000;
    test_client_open(&anon, dtls_listener_port(f->l), NULL, NULL, NULL);
    assert_int_equal(handshake(f, &anon), 1);
    s = stats(f);
    assert_int_equal(s.evicted, 1);
    assert_int_equal(s.sessions, 1);
    assert_int_equal(client_read(&dev, buf, sizeof buf), 0); /* evicted with close_notify */
    assert_int_equal(send_app(f, &anon, "token path"), 1);
    test_client_close(&early);
    test_client_close(&dev);
    test_client_close(&late);
    test_client_close(&anon);
}

static void test_rsa_key_size(void **state)
{
    (void)state;
    EVP_PKEY *rsa1024 = EVP_RSA_gen(1024);
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    assert_non_null(rsa1024);
    assert_non_null(ec);
    assert_true(dtls__rsa_key_ok(rsa1024, 0)); /* the default: any size, as ThingsBoard */
    assert_true(dtls__rsa_key_ok(rsa1024, 1024));
    assert_false(dtls__rsa_key_ok(rsa1024, 2048));
    assert_true(dtls__rsa_key_ok(ec, 2048)); /* only RSA keys are measured */
    EVP_PKEY_free(rsa1024);
    EVP_PKEY_free(ec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_address_key),
        cmocka_unit_test_setup_teardown(test_per_address_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_table_evicts_a_stalled_handshake, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stalled_handshake_swept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_resumes_after_pause, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_certificate_sessions_second_class, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_full_session_table_refuses_unless_stale, setup,
                                        teardown),
        cmocka_unit_test(test_rsa_key_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
