/* ossl.c — `coaphub-bench openssl`: what OpenSSL alone spends on the server side of one DTLS 1.2
 * handshake, the floor the issue #5 target "server CPU per full X.509 mutual handshake <= 1.25 x
 * OpenSSL's own cost" compares against. Client and server run in this one thread over a pair of
 * UDP sockets on 127.0.0.1 connect()ed to each other (OpenSSL's datagram BIO cannot send on an
 * unnamed AF_UNIX socketpair), stepped alternately, so nothing is lost or retransmitted;
 * the server's share is the thread CPU time spent inside its SSL_new / SSL_do_handshake /
 * SSL_read / SSL_shutdown / SSL_free calls (cookie callbacks included).
 *
 * The server does the same protocol work as coaphub's (src/dtls/endpoint.c), so that the two
 * figures compare: DTLS 1.2 only, coaphub's cipher list and groups, EC P-256 certificates on
 * both sides with the client's requested and checked (mutual), a HelloVerifyRequest cookie
 * round (HMAC-SHA256 of the client address; OpenSSL's in-handshake exchange on the one SSL,
 * where coaphub answers the first ClientHello statelessly with DTLSv1_listen on a separate
 * SSL), no tickets (coaphub resumes by session id), every full handshake's session stored in
 * OpenSSL's own session cache (coaphub keeps its 256 most recent sessions there too and the
 * others as DER in a store of its own, where resuming costs a d2i_SSL_SESSION),
 * and the close that coaphub-bench's handshake mode does: the client's close_notify, read by
 * the server, answered with the server's. With --resume the client offers the session of its
 * first handshake. With --psk the client offers its pre-shared key instead of a certificate
 * (coaphub-bench's default PSK-AES128-CCM8 or --ciphers) and the server adds coaphub's PSK
 * suites and answers the identity with one lookup, as coaphub's PSK callback does.
 * The negotiated cipher and group are printed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "ossl.h"

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int accept_any(int ok, X509_STORE_CTX *x)
{
    /* Self-signed device certificates: coaphub authorizes them by fingerprint after the
     * handshake, so the chain check is skipped here as well. */
    (void)ok;
    (void)x;
    return 1;
}

/* coaphub's server settings (src/dtls/endpoint.c): keep the two in step. */
static const char CIPHERS[] = "ECDHE-ECDSA-AES128-CCM8:ECDHE-ECDSA-AES128-GCM-SHA256:"
                              "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-CCM:"
                              "ECDHE-ECDSA-AES256-CCM:ECDHE-ECDSA-AES256-CCM8:"
                              "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384";
static const char PSK_CIPHERS[] =
    "PSK-AES128-CCM8:PSK-AES128-GCM-SHA256:PSK-AES128-CCM:"
    "PSK-AES256-GCM-SHA384:PSK-AES256-CCM8:"
    "ECDHE-PSK-CHACHA20-POLY1305";
static const char GROUPS[] = "P-256:P-384:X25519";
static const bench_dev_t *psk_dev; /* --psk: the one device the server knows */

static uint8_t cookie_secret[32];
static char negotiated[96]; /* "cipher, group X" of the first handshake */

/* Cookie = HMAC-SHA256(secret, client address), as coaphub's cookie.c binds it. */
static int cookie_of(SSL *ssl, unsigned char out[static 32])
{
    BIO_ADDR *peer = BIO_ADDR_new();
    uint8_t msg[32];
    size_t alen = 0;
    unsigned int outl = 0;
    int ok = peer && BIO_dgram_get_peer(SSL_get_rbio(ssl), peer) > 0 &&
             BIO_ADDR_rawaddress(peer, NULL, &alen) && alen <= sizeof msg - 2 &&
             BIO_ADDR_rawaddress(peer, msg + 2, &alen);
    if (ok) {
        unsigned short port = BIO_ADDR_rawport(peer);
        memcpy(msg, &port, 2);
        ok = HMAC(EVP_sha256(), cookie_secret, sizeof cookie_secret, msg, alen + 2, out,
                  &outl) != NULL && outl == 32;
    }
    BIO_ADDR_free(peer);
    return ok;
}

static int cookie_gen(SSL *ssl, unsigned char *cookie, unsigned int *len)
{
    if (!cookie_of(ssl, cookie))
        return 0;
    *len = 32;
    return 1;
}

static int cookie_ok(SSL *ssl, const unsigned char *cookie, unsigned int len)
{
    unsigned char want[32];
    return len == 32 && cookie_of(ssl, want) && CRYPTO_memcmp(want, cookie, 32) == 0;
}

/* The server's PSK lookup: the identity names the one device (coaphub: a registry lookup). */
static unsigned psk_server(SSL *ssl, const char *identity, unsigned char *psk, unsigned max)
{
    (void)ssl;
    if (!psk_dev || strcmp(identity, psk_dev->token) != 0 || max < sizeof psk_dev->psk_key)
        return 0;
    memcpy(psk, psk_dev->psk_key, sizeof psk_dev->psk_key);
    return sizeof psk_dev->psk_key;
}

static SSL *mk(SSL_CTX *ctx, int fd, bool server)
{
    SSL *s = SSL_new(ctx);
    BIO *bio = BIO_new_dgram(fd, BIO_NOCLOSE);
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    getpeername(fd, (struct sockaddr *)&peer, &len);
    BIO_ctrl(bio, BIO_CTRL_DGRAM_SET_CONNECTED, 0, &peer);
    SSL_set_bio(s, bio, bio);
    if (server) {
        /* coaphub's default MTU; SSL_OP_NO_QUERY_MTU (its option, too) needs it set. */
        DTLS_set_link_mtu(s, 1024);
        SSL_set_accept_state(s);
    } else {
        SSL_set_connect_state(s);
    }
    return s;
}

/* One handshake; returns 0 and adds the server's CPU time (ns) to *srv_ns, or -1. */
static int one(bench_t *b, SSL_CTX *sctx, int fds[2], bench_dev_t *dev, SSL_SESSION **sess,
               int64_t *srv_ns, int64_t *cli_ns, bool *resumed)
{
    int64_t t0 = thread_cpu_ns();
    SSL *srv = mk(sctx, fds[1], true);
    int64_t t1 = thread_cpu_ns();
    SSL *cli = mk(b->ctx, fds[0], false);
    SSL_set_app_data(cli, dev);
    if (dev->cert) {
        SSL_use_certificate(cli, dev->cert);
        SSL_use_PrivateKey(cli, dev->key);
    }
    if (*sess)
        SSL_set_session(cli, *sess);
    int64_t t2 = thread_cpu_ns();
    *srv_ns += t1 - t0;
    *cli_ns += t2 - t1;
    int rc = -1;
    bool cdone = false, sdone = false;
    for (int step = 0; step < 64 && !(cdone && sdone); step++) {
        int64_t a = thread_cpu_ns();
        if (!cdone) {
            int r = SSL_do_handshake(cli);
            cdone = r == 1;
            if (r <= 0 && SSL_get_error(cli, r) != SSL_ERROR_WANT_READ)
                goto out;
        }
        int64_t m = thread_cpu_ns();
        if (!sdone) {
            int r = SSL_do_handshake(srv);
            sdone = r == 1;
            if (r <= 0 && SSL_get_error(srv, r) != SSL_ERROR_WANT_READ)
                goto out;
        }
        int64_t z = thread_cpu_ns();
        *cli_ns += m - a;
        *srv_ns += z - m;
    }
    if (cdone && sdone) {
        rc = 0;
        *resumed = SSL_session_reused(cli);
        if (b->cfg.resume && !*sess)
            *sess = SSL_get1_session(cli);
        if (!negotiated[0]) {
            int g = SSL_get_negotiated_group(srv);
            snprintf(negotiated, sizeof negotiated, "%s, group %s", SSL_get_cipher_name(srv),
                     g > 0 ? OBJ_nid2sn(g) : "none");
        }
        /* coaphub-bench's handshake mode closes each session with close_notify, and the
         * server reads it and answers with its own: the same here. */
        int64_t c0 = thread_cpu_ns();
        SSL_shutdown(cli);
        int64_t s0 = thread_cpu_ns();
        uint8_t buf[64];
        int r = SSL_read(srv, buf, sizeof buf);
        if (r <= 0 && SSL_get_error(srv, r) == SSL_ERROR_ZERO_RETURN)
            SSL_shutdown(srv);
        int64_t s1 = thread_cpu_ns();
        *cli_ns += s0 - c0;
        *srv_ns += s1 - s0;
    }
out:
    if (rc < 0) {
        char msg[256];
        ERR_error_string_n(ERR_get_error(), msg, sizeof msg);
        fprintf(stderr, "coaphub-bench: in-process handshake failed: %s\n", msg);
    }
    ERR_clear_error();
    /* Quiet shutdown marks both ends cleanly closed without sending close_notify: OpenSSL
     * drops a session from its cache when an SSL is freed without a shutdown. */
    SSL_set_quiet_shutdown(cli, 1);
    SSL_shutdown(cli);
    SSL_free(cli);
    int64_t f0 = thread_cpu_ns();
    SSL_set_quiet_shutdown(srv, 1);
    SSL_shutdown(srv);
    SSL_free(srv);
    *srv_ns += thread_cpu_ns() - f0;
    /* Drain anything left in flight so the next pair starts clean. */
    uint8_t junk[2048];
    while (recv(fds[0], junk, sizeof junk, MSG_DONTWAIT) > 0 ||
           recv(fds[1], junk, sizeof junk, MSG_DONTWAIT) > 0)
        ;
    return rc;
}

/* Two UDP sockets on 127.0.0.1, each connect()ed to the other. */
static int udp_pair(int fds[2])
{
    struct sockaddr_in a[2];
    for (int i = 0; i < 2; i++) {
        fds[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        a[i] = (struct sockaddr_in){.sin_family = AF_INET,
                                    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof a[i];
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&a[i], sizeof a[i]) < 0 ||
            getsockname(fds[i], (struct sockaddr *)&a[i], &len) < 0)
            return -1;
    }
    for (int i = 0; i < 2; i++)
        if (connect(fds[i], (struct sockaddr *)&a[1 - i], sizeof a[i]) < 0)
            return -1;
    return 0;
}

int bench_ossl_run(bench_t *b)
{
    bench_dev_t srv_id = {.idx = 1000000}, *dev = &b->devs[0];
    char err[256];
    int fds[2] = {-1, -1};
    SSL_CTX *sctx = NULL;
    SSL_SESSION *sess = NULL;
    int rc = 1;
    if (bench_pki_load_or_gen(b, &srv_id, err, sizeof err) < 0 || (!dev->cert && !b->cfg.psk)) {
        fprintf(stderr, "coaphub-bench: openssl mode needs certificates: %s\n", err);
        goto out;
    }
    if (udp_pair(fds) < 0) {
        fprintf(stderr, "coaphub-bench: cannot make a loopback UDP pair: %s\n", strerror(errno));
        goto out;
    }
    /* coaphub's list with PSK devices configured: the certificate suites, then the PSK ones. */
    char ciphers_psk[sizeof CIPHERS + sizeof PSK_CIPHERS];
    snprintf(ciphers_psk, sizeof ciphers_psk, "%s:%s", CIPHERS, PSK_CIPHERS);
    sctx = SSL_CTX_new(DTLS_server_method());
    if (!sctx || RAND_bytes(cookie_secret, sizeof cookie_secret) != 1 ||
        SSL_CTX_set_min_proto_version(sctx, DTLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(sctx, DTLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(sctx, b->cfg.psk ? ciphers_psk : CIPHERS) != 1 ||
        SSL_CTX_set1_groups_list(sctx, GROUPS) != 1 ||
        SSL_CTX_use_certificate(sctx, srv_id.cert) != 1 ||
        SSL_CTX_use_PrivateKey(sctx, srv_id.key) != 1) {
        fprintf(stderr, "coaphub-bench: cannot set up the in-process server\n");
        goto out;
    }
    SSL_CTX_set_options(sctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_COOKIE_EXCHANGE |
                                  SSL_OP_NO_QUERY_MTU | SSL_OP_NO_TICKET);
    SSL_CTX_set_verify(sctx, SSL_VERIFY_PEER, accept_any);
    if (b->cfg.psk) {
        psk_dev = dev;
        SSL_CTX_set_psk_server_callback(sctx, psk_server);
    }
    SSL_CTX_set_cookie_generate_cb(sctx, cookie_gen);
    SSL_CTX_set_cookie_verify_cb(sctx, cookie_ok);
    SSL_CTX_set_session_id_context(sctx, (const unsigned char *)"bench", 5);
    /* Every full handshake's session is stored (coaphub keeps each one for resumption). */
    SSL_CTX_set_session_cache_mode(sctx, SSL_SESS_CACHE_SERVER);
    int64_t srv_ns = 0, cli_ns = 0;
    bool resumed = false;
    if (b->cfg.resume && one(b, sctx, fds, dev, &sess, &srv_ns, &cli_ns, &resumed) < 0)
        goto out; /* the first, full handshake gives the session to resume */
    srv_ns = cli_ns = 0;
    b->t_start_us = bench_now_us();
    int64_t end = b->t_start_us + (int64_t)(b->cfg.duration_s * 1e6);
    while (bench_now_us() < end &&
           (b->cfg.requests <= 0 || b->st.handshakes < (uint64_t)b->cfg.requests)) {
        int64_t t = bench_now_us();
        if (one(b, sctx, fds, dev, &sess, &srv_ns, &cli_ns, &resumed) < 0) {
            b->st.handshake_errors++;
            b->st.errors++;
            break;
        }
        b->st.handshakes++;
        b->st.handshakes_resumed += resumed;
        bench_hist_add(&b->st.hs_lat, (uint64_t)(bench_now_us() - t));
    }
    b->t_end_us = bench_now_us();
    double n = b->st.handshakes ? (double)b->st.handshakes : 1;
    char js[256], txt[384];
    snprintf(js, sizeof js, ",\"ossl_server_us_per_hs\":%.1f,\"ossl_client_us_per_hs\":%.1f",
             (double)srv_ns / 1000.0 / n, (double)cli_ns / 1000.0 / n);
    snprintf(txt, sizeof txt,
             "  openssl      server %.1f us, client %.1f us of CPU per %s handshake "
             "(in-process, %s; %s)\n",
             (double)srv_ns / 1000.0 / n, (double)cli_ns / 1000.0 / n,
             b->cfg.resume ? "resumed" : "full", OpenSSL_version(OPENSSL_VERSION),
             negotiated);
    bench_report(b, js, txt);
    rc = b->st.handshakes > 0 ? 0 : 1;
out:
    SSL_SESSION_free(sess);
    SSL_CTX_free(sctx);
    X509_free(srv_id.cert);
    EVP_PKEY_free(srv_id.key);
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return rc;
}
