/* cid_device.c — a small CoAP-over-DTLS device for test_dtls_cid.sh, built against mbedTLS 3.6
 * (scripts/mbedtls-cid.sh): the DTLS handshake, the RFC 9146 Connection ID and its records are
 * mbedTLS's, not ours, so coaphub's CID support is tested against an independent peer.
 *
 *   cid_device HOST PORT IDENTITY KEY_HEX CID TRIGGER REHANDSHAKE JSON1 JSON2
 *
 * CID 0: no Connection ID; 1: asks for one with an empty CID of its own (the server sends
 * ordinary records); HEX: asks for one with HEX as its own CID (the server's records carry it).
 * Handshake (PSK-AES128-CCM8), then a CON POST of JSON1 to /api/v1/telemetry, waiting for its
 * 2.01; then creates the file TRIGGER (the relay rebinds its server-facing port when it sees
 * it), and POSTs JSON2 on the same session, without a new handshake. If that gets no 2.01
 * and REHANDSHAKE is 1, it does a new handshake and POSTs JSON2 again (what a device without
 * CID has to do after a NAT rebinding). Prints one line per step; exit status 0 when both
 * points got their 2.01, 2 when the second did not, 1 on a setup or handshake error.
 */
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/timing.h>
#include <psa/crypto.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static mbedtls_ssl_context ssl;
static mbedtls_ssl_config conf;
static mbedtls_net_context net;
static mbedtls_timing_delay_context timer;
static uint16_t next_mid = 0x1234;

static void die(const char *what, int rc)
{
    char e[128];
    mbedtls_strerror(rc, e, sizeof e);
    printf("cid_device: %s: %s (-0x%04x)\n", what, e, (unsigned)-rc);
    exit(1);
}

static int handshake(void)
{
    int rc;
    while ((rc = mbedtls_ssl_handshake(&ssl)) != 0)
        if (rc != MBEDTLS_ERR_SSL_WANT_READ && rc != MBEDTLS_ERR_SSL_WANT_WRITE)
            return rc;
    int enabled = 0;
    unsigned char peer[MBEDTLS_SSL_CID_OUT_LEN_MAX];
    size_t peer_len = 0;
    mbedtls_ssl_get_peer_cid(&ssl, &enabled, peer, &peer_len);
    printf("handshake: %s, connection id %s", mbedtls_ssl_get_ciphersuite(&ssl),
           enabled == MBEDTLS_SSL_CID_ENABLED ? "in use" : "not in use");
    if (enabled == MBEDTLS_SSL_CID_ENABLED) {
        printf(" (server's, %zu bytes: ", peer_len);
        for (size_t i = 0; i < peer_len; i++)
            printf("%02x", peer[i]);
        printf(")");
    }
    printf("\n");
    fflush(stdout);
    return 0;
}

/* CON POST /api/v1/telemetry (Content-Format 50, JSON); 0 once its 2.01 came back. Resent
 * twice (RFC 7252 §4.2, shortened), ~6 s in all. */
static int post(const char *json)
{
    uint8_t m[512], in[512];
    size_t n = 0, jl = strlen(json);
    if (jl > 400)
        return -1;
    uint16_t mid = next_mid++;
    m[n++] = 0x42; /* version 1, CON, token length 2 */
    m[n++] = 0x02; /* POST */
    m[n++] = (uint8_t)(mid >> 8);
    m[n++] = (uint8_t)mid;
    m[n++] = 0xc1;
    m[n++] = (uint8_t)mid;
    m[n++] = 0xb3; /* Uri-Path (11) "api" */
    memcpy(m + n, "api", 3), n += 3;
    m[n++] = 0x02;
    memcpy(m + n, "v1", 2), n += 2;
    m[n++] = 0x09;
    memcpy(m + n, "telemetry", 9), n += 9;
    m[n++] = 0x11; /* Content-Format (12) = 50 */
    m[n++] = 50;
    m[n++] = 0xff;
    memcpy(m + n, json, jl), n += jl;
    for (int attempt = 0; attempt < 3; attempt++) {
        int rc = mbedtls_ssl_write(&ssl, m, n);
        if (rc < 0)
            return rc;
        for (;;) {
            rc = mbedtls_ssl_read(&ssl, in, sizeof in);
            if (rc == MBEDTLS_ERR_SSL_TIMEOUT)
                break;
            if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
                continue;
            if (rc <= 0)
                return rc == 0 ? -1 : rc;
            if (rc < 4)
                continue;
            int type = in[0] >> 4 & 3, tkl = in[0] & 15;
            uint16_t rmid = (uint16_t)(in[2] << 8 | in[3]);
            int tok_ok = tkl == 2 && rc >= 6 && in[4] == 0xc1 && in[5] == (uint8_t)mid;
            if (type == 2 && rmid == mid && in[1] == 0x41 && tok_ok)
                return 0; /* piggybacked 2.01 */
            if (type == 0 && tok_ok && in[1] == 0x41) {
                uint8_t ack[4] = {0x60, 0, in[2], in[3]}; /* separate 2.01: ACK it */
                mbedtls_ssl_write(&ssl, ack, sizeof ack);
                return 0;
            }
        }
    }
    return -2;
}

/* CID_DEVICE_TRACE=FILE: the session's master secret and randoms, and every datagram sent and
 * received, in hex (how tests/unit/dtls/test_record.c got its mbedTLS vector). */
static FILE *trace;

static void trace_hex(const char *tag, const unsigned char *p, size_t n)
{
    fprintf(trace, "%s ", tag);
    for (size_t i = 0; i < n; i++)
        fprintf(trace, "%02x", p[i]);
    fprintf(trace, "\n");
    fflush(trace);
}

static void export_keys(void *arg, mbedtls_ssl_key_export_type type, const unsigned char *secret,
                        size_t secret_len, const unsigned char client_random[32],
                        const unsigned char server_random[32], mbedtls_tls_prf_types prf)
{
    (void)arg, (void)prf;
    if (type != MBEDTLS_SSL_KEY_EXPORT_TLS12_MASTER_SECRET)
        return;
    trace_hex("master", secret, secret_len);
    trace_hex("client_random", client_random, 32);
    trace_hex("server_random", server_random, 32);
}

static int trace_send(void *ctx, const unsigned char *buf, size_t len)
{
    int n = mbedtls_net_send(ctx, buf, len);
    if (n > 0)
        trace_hex("out", buf, (size_t)n);
    return n;
}

static int trace_recv(void *ctx, unsigned char *buf, size_t len, uint32_t timeout)
{
    int n = mbedtls_net_recv_timeout(ctx, buf, len, timeout);
    if (n > 0)
        trace_hex("in", buf, (size_t)n);
    return n;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int main(int argc, char **argv)
{
    if (argc != 10) {
        fprintf(stderr,
                "usage: cid_device HOST PORT IDENTITY KEY_HEX CID TRIGGER REHANDSHAKE "
                "JSON1 JSON2\n");
        return 1;
    }
    const char *host = argv[1], *port = argv[2], *id = argv[3], *khex = argv[4];
    int want_cid = strcmp(argv[5], "0") != 0, rehandshake = atoi(argv[7]);
    unsigned char own[16];
    size_t own_len = 0;
    if (want_cid && strcmp(argv[5], "1") != 0) {
        own_len = strlen(argv[5]) / 2;
        if (own_len > sizeof own)
            return 1;
        for (size_t i = 0; i < own_len; i++) {
            int hi = hexval(argv[5][2 * i]), lo = hexval(argv[5][2 * i + 1]);
            if (hi < 0 || lo < 0)
                return 1;
            own[i] = (unsigned char)(hi << 4 | lo);
        }
    }
    unsigned char key[64];
    size_t kl = strlen(khex) / 2;
    if (kl == 0 || kl > sizeof key)
        return 1;
    for (size_t i = 0; i < kl; i++) {
        int hi = hexval(khex[2 * i]), lo = hexval(khex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return 1;
        key[i] = (unsigned char)(hi << 4 | lo);
    }
    if (psa_crypto_init() != PSA_SUCCESS)
        return 1;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    int rc = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, NULL, 0);
    if (rc)
        die("drbg", rc);
    mbedtls_net_init(&net);
    mbedtls_ssl_init(&ssl);
    mbedtls_ssl_config_init(&conf);
    if ((rc = mbedtls_net_connect(&net, host, port, MBEDTLS_NET_PROTO_UDP)) != 0)
        die("connect", rc);
    if ((rc = mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_CLIENT,
                                          MBEDTLS_SSL_TRANSPORT_DATAGRAM,
                                          MBEDTLS_SSL_PRESET_DEFAULT)) != 0)
        die("config", rc);
    static const int suites[] = {MBEDTLS_TLS_PSK_WITH_AES_128_CCM_8, 0};
    mbedtls_ssl_conf_ciphersuites(&conf, suites);
    mbedtls_ssl_conf_max_tls_version(&conf, MBEDTLS_SSL_VERSION_TLS1_2);
    mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &drbg);
    mbedtls_ssl_conf_read_timeout(&conf, 2000);
    if ((rc = mbedtls_ssl_conf_psk(&conf, key, kl, (const unsigned char *)id, strlen(id))) != 0)
        die("psk", rc);
    /* Our own CID (what the server's records must carry; empty: ordinary records). */
    if ((rc = mbedtls_ssl_conf_cid(&conf, own_len, MBEDTLS_SSL_UNEXPECTED_CID_IGNORE)) != 0)
        die("conf_cid", rc);
    if ((rc = mbedtls_ssl_setup(&ssl, &conf)) != 0)
        die("setup", rc);
    if (want_cid && (rc = mbedtls_ssl_set_cid(&ssl, MBEDTLS_SSL_CID_ENABLED, own_len ? own : NULL,
                                              own_len)) != 0)
        die("set_cid", rc);
    const char *tf = getenv("CID_DEVICE_TRACE");
    if (tf && (trace = fopen(tf, "w")) != NULL) {
        mbedtls_ssl_set_export_keys_cb(&ssl, export_keys, NULL);
        mbedtls_ssl_set_bio(&ssl, &net, trace_send, NULL, trace_recv);
    } else {
        mbedtls_ssl_set_bio(&ssl, &net, mbedtls_net_send, mbedtls_net_recv,
                            mbedtls_net_recv_timeout);
    }
    mbedtls_ssl_set_timer_cb(&ssl, &timer, mbedtls_timing_set_delay, mbedtls_timing_get_delay);
    if ((rc = handshake()) != 0)
        die("handshake", rc);
    rc = post(argv[8]);
    printf("post 1: %s\n", rc == 0 ? "2.01" : "no 2.01");
    fflush(stdout);
    if (rc != 0)
        return 2;
    FILE *t = fopen(argv[6], "w");
    if (t)
        fclose(t);
    usleep(1500 * 1000); /* the relay rebinds before our next datagram */
    rc = post(argv[9]);
    printf("post 2 (same session, after the rebinding): %s\n", rc == 0 ? "2.01" : "no 2.01");
    fflush(stdout);
    if (rc != 0 && rehandshake) {
        /* Without CID: the server does not know the new address. A new handshake, then. */
        mbedtls_ssl_session_reset(&ssl);
        if ((rc = handshake()) != 0)
            die("second handshake", rc);
        rc = post(argv[9]);
        printf("post 2 (new handshake): %s\n", rc == 0 ? "2.01" : "no 2.01");
    }
    mbedtls_ssl_close_notify(&ssl);
    mbedtls_ssl_free(&ssl);
    mbedtls_ssl_config_free(&conf);
    mbedtls_net_free(&net);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
    mbedtls_psa_crypto_free();
    if (trace)
        fclose(trace);
    return rc == 0 ? 0 : 2;
}
