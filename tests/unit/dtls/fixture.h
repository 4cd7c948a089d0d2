/* fixture.h — see fixture.c. */
#ifndef COAPHUB_TESTS_DTLS_FIXTURE_H
#define COAPHUB_TESTS_DTLS_FIXTURE_H

#include "dtls/dtls_int.h"
#include "pki.h"

#define DEVICE_A 42

/* What the recording sink saw (reset by setup). */
typedef struct fake_engine {
    int inputs, closed;
    transport_peer_t *last_peer;
    int64_t last_device;
    uint8_t last[256];
    size_t last_len;
} fake_engine_t;
extern fake_engine_t eng;

typedef struct fx {
    char dir[64];
    loop_t *loop;
    dtls_ctx_t *ctx;
    dtls_listener_t *l;
    dtls_cfg_t cfg;
    test_cert_t a;     /* identified as DEVICE_A */
    test_cert_t other; /* unregistered */
} fx_t;

/* cmocka setup/teardown: *state is an fx_t with cfg defaults, no listener yet. */
int setup(void **state);
int teardown(void **state);
/* Creates f->ctx and f->l from f->cfg. */
void fx_listener(fx_t *f);
dtls_stats_t stats(fx_t *f);
/* Runs both ends until the client's handshake finishes (1) or fails (0). */
int handshake(fx_t *f, test_client_t *c);
/* Client writes msg, the server polls; returns how many engine inputs that caused. */
int send_app(fx_t *f, test_client_t *c, const char *msg);
/* Client reads one record: its length, 0 on close_notify, -1 nothing, -2 error. */
int client_read(test_client_t *c, char *buf, int cap);

#endif
