/* test_peer.c — per-peer limits and timers of the dtls listener (src/dtls/peer.c,
 * listener.c): the handshake cap, half-open handshake timeout, flight retransmission on our
 * own timers within the configured MTU, idle-session sweep, and a fresh handshake from the address of a live session
 * replacing it only once it completes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fixture.h"

#include <openssl/err.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Drives the client through the cookie exchange until the server holds a half-open handshake
 * for it (ClientHello -> HelloVerifyRequest -> ClientHello with cookie -> server flight). */
static void start_half_open(fx_t *f, test_client_t *c)
{
    for (int i = 0; i < 2; i++) {
        ERR_clear_error();
        int rc = SSL_do_handshake(c->ssl);
        assert_int_equal(SSL_get_error(c->ssl, rc), SSL_ERROR_WANT_READ);
        usleep(1000);
        dtls__listener_poll(f->l);
        assert_true(test_client_wait(c, 100) > 0);
    }
}

/* Counts and discards the datagrams waiting on the client's socket; the largest size seen so
 * far is kept in drained_max. */
static ssize_t drained_max;
static int drain(test_client_t *c, int ms)
{
    int n = 0;
    uint8_t buf[4096];
    while (test_client_wait(c, ms) > 0) {
        ssize_t r = recv(c->fd, buf, sizeof buf, 0);
        if (r > drained_max)
            drained_max = r;
        n++;
    }
    return n;
}

static void test_handshake_cap_and_timeout(void **state)
{
    fx_t *f = *state;
    f->cfg.max_handshakes = 1;
    f->cfg.handshake_timeout_ms = 5000;
    fx_listener(f);
    test_client_t c1, c2;
    test_client_open(&c1, dtls_listener_port(f->l), NULL, NULL, NULL);
    start_half_open(f, &c1);
    assert_int_equal(stats(f).handshakes_in_progress, 1);

    /* A second client passes the cookie but finds the handshake table full. */
    test_client_open(&c2, dtls_listener_port(f->l), NULL, NULL, NULL);
    ERR_clear_error();
    SSL_do_handshake(c2.ssl);
    usleep(1000);
    dtls__listener_poll(f->l); /* -> HelloVerifyRequest */
    assert_true(test_client_wait(&c2, 100) > 0);
    SSL_do_handshake(c2.ssl);
    usleep(1000);
    dtls__listener_poll(f->l); /* valid cookie, but refused */
    dtls_stats_t s = stats(f);
    assert_int_equal(s.handshakes_refused, 1);
    assert_int_equal(s.handshakes_in_progress, 1);
    assert_int_equal(test_client_wait(&c2, 20), -1); /* no flight for it */

    /* The half-open one is dropped after handshake_timeout_ms, freeing the slot. */
    int64_t now = loop_now_ms(f->loop);
    dtls__listener_sweep(f->l, now + 4000);
    assert_int_equal(stats(f).handshakes_in_progress, 1);
    dtls__listener_sweep(f->l, now + 5001);
    s = stats(f);
    assert_int_equal(s.handshakes_in_progress, 0);
    assert_int_equal(s.handshake_timeouts, 1);
    assert_int_equal(eng.closed, 0); /* never reached the engine */

    /* Now the second client gets through. */
    test_client_close(&c2);
    test_client_open(&c2, dtls_listener_port(f->l), NULL, NULL, NULL);
    assert_int_equal(handshake(f, &c2), 1);
    test_client_close(&c1);
    test_client_close(&c2);
}

static void stop_loop(loop_t *loop, void *arg)
{
    loop_stop(loop);
}

static void test_flight_retransmitted_on_our_timer(void **state)
{
    fx_t *f = *state;
    f->cfg.retransmission_ms = 40;
    f->cfg.mtu = 300; /* small enough that the certificate flight must be fragmented; a link
                       * MTU: 300 - 28 (IPv4 + UDP headers) = 272 bytes per datagram at most */
    fx_listener(f);
    test_client_t c;
    test_client_open(&c, dtls_listener_port(f->l), &f->a, NULL, NULL);
    start_half_open(f, &c);
    drained_max = 0;
    int first = drain(&c, 5);
    assert_true(first >= 2); /* the server's flight, in several datagrams */
    assert_true(drained_max <= 300 - 28);
    /* The client stays silent; the loop's timer makes the server send the flight again
     * (40 ms, then 80 ms: at least one resend within 100 ms). The loop's clock is brought to
     * now first: it last moved before the handshake began, and a stop timer armed from that
     * stale clock could end the loop before the 40 ms resend (1 run in 10 on a loaded machine). */
    loop_update_time(f->loop);
    loop_timer_t stop;
    loop_timer_init(&stop, stop_loop, NULL);
    loop_timer_arm(f->loop, &stop, 100);
    loop_run(f->loop);
    assert_true(drain(&c, 5) >= first);
    assert_true(drained_max <= 300 - 28);
    assert_int_equal(stats(f).handshakes_in_progress, 1);
    test_client_close(&c);
}

static void test_idle_sessions_swept(void **state)
{
    fx_t *f = *state;
    f->cfg.session_inactivity_ms = 10000;
    fx_listener(f);
    test_client_t c;
    test_client_open(&c, dtls_listener_port(f->l), &f->a, NULL, NULL);
    assert_int_equal(handshake(f, &c), 1);
    int64_t now = loop_now_ms(f->loop);
    dtls__listener_sweep(f->l, now + 9000);
    assert_int_equal(stats(f).sessions, 1);
    dtls__listener_sweep(f->l, now + 10001);
    dtls_stats_t s = stats(f);
    assert_int_equal(s.sessions, 0);
    assert_int_equal(s.idle_closed, 1);
    assert_int_equal(eng.closed, 1);
    char buf[16];
    assert_int_equal(client_read(&c, buf, sizeof buf), 0); /* close_notify */
    test_client_close(&c);
}

static void test_new_handshake_replaces_session_when_done(void **state)
{
    fx_t *f = *state;
    fx_listener(f);
    test_client_t c;
    test_client_open(&c, dtls_listener_port(f->l), &f->a, NULL, NULL);
    assert_int_equal(handshake(f, &c), 1);
    assert_int_equal(send_app(f, &c, "one"), 1);

    /* The device reboots and starts over from the same address and port. */
    SSL *old = c.ssl;
    c.ssl = SSL_new(c.ctx);
    BIO *b = BIO_new_dgram(c.fd, BIO_NOCLOSE);
    struct sockaddr_storage server;
    socklen_t sl = sizeof server;
    getpeername(c.fd, (struct sockaddr *)&server, &sl);
    BIO_ctrl(b, BIO_CTRL_DGRAM_SET_CONNECTED, 0, &server);
    SSL_set_bio(c.ssl, b, b);
    SSL_set_connect_state(c.ssl);
    start_half_open(f, &c);
    /* Mid-handshake the old session still exists ... */
    dtls_stats_t s = stats(f);
    assert_int_equal(s.sessions, 1);
    assert_int_equal(s.handshakes_in_progress, 1);
    assert_int_equal(eng.closed, 0);
    /* ... and is replaced when the new handshake completes. */
    assert_int_equal(handshake(f, &c), 1);
    s = stats(f);
    assert_int_equal(s.sessions, 1);
    assert_int_equal(s.handshakes_in_progress, 0);
    assert_int_equal(eng.closed, 1);
    assert_int_equal(send_app(f, &c, "two"), 1);
    assert_int_equal(eng.last_device, DEVICE_A);
    SSL_free(old);
    test_client_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_handshake_cap_and_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flight_retransmitted_on_our_timer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_sessions_swept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_handshake_replaces_session_when_done, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
