/* fixture.c — shared fixture of the dtls listener tests: a transport sink that records what
 * the transport hands up (no CoAP engine: dtls links core and OpenSSL only), an identify
 * callback that knows one device certificate, a listener on 127.0.0.1 with a generated
 * server certificate in a temporary data dir, and helpers that drive both ends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fixture.h"

#include <ftw.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- a sink that records what the transport hands up -------------------------------------- */

fake_engine_t eng;

static void sink_input(void *ctx, transport_peer_t *peer, const uint8_t *p, size_t len)
{
    (void)ctx;
    eng.inputs++;
    eng.last_peer = peer;
    eng.last_device = peer->cert_device_id;
    eng.last_len = len < sizeof eng.last ? len : sizeof eng.last;
    memcpy(eng.last, p, eng.last_len);
}

static void sink_closed(void *ctx, transport_peer_t *peer)
{
    (void)ctx;
    eng.closed++;
    if (eng.last_peer == peer)
        eng.last_peer = NULL;
}

/* ---- fixture ------------------------------------------------------------------------------ */

/* The device side's answer, reduced to one registered certificate: f->a is DEVICE_A. */
static int64_t identify(void *ctx, const uint8_t *const *der, const size_t *len, size_t n)
{
    fx_t *f = ctx;
    return n > 0 && test_cert_is(&f->a, der[0], len[0]) ? DEVICE_A : 0;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    return remove(p);
}

void fx_listener(fx_t *f)
{
    char err[ERR_LEN] = "";
    f->ctx = dtls_ctx_new(&f->cfg, err);
    assert_non_null(f->ctx);
    transport_sink_t sink = {.input = sink_input, .closed = sink_closed, .ctx = f};
    f->l = dtls_listener_new(f->loop, &sink, f->ctx, &f->cfg, err);
    if (!f->l)
        fail_msg("%s", err);
}

int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    memset(&eng, 0, sizeof eng);
    snprintf(f->dir, sizeof f->dir, "/tmp/coaphub-dtls-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char err[ERR_LEN];
    f->loop = loop_new(err);
    assert_non_null(f->loop);
    test_cert_make(&f->a, "thermo-1", -1, 365, NULL);
    test_cert_make(&f->other, "stranger", -1, 365, NULL);
    dtls_cfg_default(&f->cfg);
    f->cfg.identify = identify;
    f->cfg.identify_ctx = f;
    f->cfg.bind_addr = "127.0.0.1";
    f->cfg.port = 0;
    f->cfg.data_dir = f->dir;
    *state = f;
    return 0;
}

int teardown(void **state)
{
    fx_t *f = *state;
    dtls_listener_free(f->l);
    dtls_ctx_free(f->ctx);
    loop_free(f->loop);
    test_cert_free(&f->a);
    test_cert_free(&f->other);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    ERR_clear_error();
    return 0;
}

dtls_stats_t stats(fx_t *f)
{
    dtls_stats_t s;
    dtls_listener_get_stats(f->l, &s);
    return s;
}

/* Runs both ends until the client's handshake finishes (1) or fails (0). */
int handshake(fx_t *f, test_client_t *c)
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
int send_app(fx_t *f, test_client_t *c, const char *msg)
{
    int before = eng.inputs;
    assert_int_equal(SSL_write(c->ssl, msg, (int)strlen(msg)), (int)strlen(msg));
    usleep(2000);
    dtls__listener_poll(f->l);
    return eng.inputs - before;
}

/* Client reads one record; returns its length, 0 on close_notify, -1 on nothing. */
int client_read(test_client_t *c, char *buf, int cap)
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

