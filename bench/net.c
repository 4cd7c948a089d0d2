/* net.c — coaphub-bench's devices on the wire: one connect()ed UDP socket per device, an
 * optional DTLS 1.2 client session over a datagram BIO on that socket, CoAP requests in a
 * window of slots, and RFC 7252 §4.2 retransmission (ACK_TIMEOUT 2 s, ACK_RANDOM_FACTOR 1.5,
 * doubled each time, MAX_RETRANSMIT 4).
 *
 * Invariant: a slot is either free or holds exactly one outstanding request whose bytes can be
 * rebuilt from (device, MID, token); nothing is allocated per request. Responses are matched by
 * MID for ACK/RST (piggy-backed) and by token for separate responses and notifications.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "bench.h"
#include "coap/pdu.h"

#define ACK_TIMEOUT_US 2000000LL
#define MAX_RETRANSMIT 4
/* A NON request or an ACKed CON whose separate response never comes is given up after this. */
#define SEPARATE_WAIT_US 10000000LL

static uint64_t rnd(bench_t *b)
{
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    return b->rng;
}

static void ssl_fail_log(bench_t *b, const char *what)
{
    /* Only the first few failures are printed: a thousand identical lines help nobody. */
    static int printed;
    unsigned long e = ERR_get_error();
    if (printed < 3 && !b->cfg.json) {
        char msg[256];
        ERR_error_string_n(e, msg, sizeof msg);
        fprintf(stderr, "coaphub-bench: %s: %s\n", what, e ? msg : "(no OpenSSL error)");
        printed++;
    }
    ERR_clear_error();
}

int bench_net_init(bench_t *b)
{
    b->ep = epoll_create1(EPOLL_CLOEXEC);
    if (b->ep < 0)
        return -errno;
    b->rng = (uint64_t)bench_now_us() | 1u;
    if (!b->cfg.dtls)
        return 0;
    b->ctx = SSL_CTX_new(DTLS_client_method());
    if (!b->ctx)
        return -ENOMEM;
    SSL_CTX_set_min_proto_version(b->ctx, DTLS1_2_VERSION);
    SSL_CTX_set_verify(b->ctx, SSL_VERIFY_NONE, NULL);
    /* Client-side session cache off: --resume keeps one SSL_SESSION per device itself. */
    SSL_CTX_set_session_cache_mode(b->ctx, SSL_SESS_CACHE_OFF);
    const char *ciphers = b->cfg.ciphers ? b->cfg.ciphers : b->cfg.psk ? "PSK-AES128-CCM8" : NULL;
    if (ciphers && SSL_CTX_set_cipher_list(b->ctx, ciphers) != 1) {
        fprintf(stderr, "coaphub-bench: no usable cipher in %s\n", ciphers);
        return -EINVAL;
    }
    if (b->cfg.psk)
        SSL_CTX_set_psk_client_callback(b->ctx, bench_psk_client_cb);
    return 0;
}

void bench_net_fini(bench_t *b)
{
    if (b->ctx)
        SSL_CTX_free(b->ctx);
    b->ctx = NULL;
    if (b->ep >= 0)
        close(b->ep);
    b->ep = -1;
}

static int send_raw(bench_t *b, bench_dev_t *d, const uint8_t *p, size_t len)
{
    if (d->ssl) {
        ERR_clear_error();
        int r = SSL_write(d->ssl, p, (int)len);
        if (r <= 0) {
            b->st.dtls_errors++;
            ssl_fail_log(b, "SSL_write");
            return -EIO;
        }
        return 0;
    }
    if (send(d->fd, p, len, 0) < 0) {
        /* ECONNREFUSED: the kernel got an ICMP port unreachable for an earlier datagram. */
        return -errno;
    }
    return 0;
}

static void put_tok(uint8_t t[4], uint32_t v)
{
    t[0] = (uint8_t)(v >> 24);
    t[1] = (uint8_t)(v >> 16);
    t[2] = (uint8_t)(v >> 8);
    t[3] = (uint8_t)v;
}

static ssize_t build(bench_t *b, bench_dev_t *d, const bench_slot_t *s, uint8_t *buf, size_t cap,
                     bool observe)
{
    uint8_t tok[4];
    put_tok(tok, s->tok);
    coap_builder_t cb;
    uint8_t type = (b->cfg.con || observe) ? COAP_TYPE_CON : COAP_TYPE_NON;
    coap_builder_init(&cb, buf, cap, type, observe ? 1 : b->cfg.method, s->mid, tok, 4);
    if (observe)
        coap_builder_opt_uint(&cb, COAP_OPT_OBSERVE, 0);
    /* path_buf: [option number][length][bytes]..., path segments before query items.
     * Content-Format (12, application/json = 50) sits between Uri-Path (11) and Uri-Query (15)
     * because options go in ascending order. */
    bool cf = !observe && b->payload_len > 0;
    for (size_t i = 0; i + 2 <= d->path_len;) {
        uint8_t num = d->path_buf[i], len = d->path_buf[i + 1];
        if (cf && num > COAP_OPT_CONTENT_FORMAT) {
            coap_builder_opt_uint(&cb, COAP_OPT_CONTENT_FORMAT, 50);
            cf = false;
        }
        coap_builder_opt(&cb, num, d->path_buf + i + 2, len);
        i += 2u + len;
    }
    if (cf)
        coap_builder_opt_uint(&cb, COAP_OPT_CONTENT_FORMAT, 50);
    if (!observe && b->payload_len > 0)
        coap_builder_payload(&cb, b->payload, b->payload_len);
    return coap_builder_finish(&cb);
}

static bench_slot_t *free_slot(bench_t *b, bench_dev_t *d)
{
    for (int i = 0; i < b->cfg.window; i++)
        if (!d->slots[i].used)
            return &d->slots[i];
    return NULL;
}

static int start(bench_t *b, bench_dev_t *d, bool observe)
{
    if (d->state != DEV_READY)
        return -ENOTCONN;
    bench_slot_t *s = free_slot(b, d);
    if (!s)
        return -EBUSY;
    int64_t now = bench_now_us();
    memset(s, 0, sizeof *s);
    s->used = true;
    s->mid = d->next_mid++;
    s->tok = observe ? d->obs_tok : d->next_tok++;
    if (!observe && d->next_tok == d->obs_tok)
        d->next_tok++;
    s->t0_us = now;
    bool con = b->cfg.con || observe;
    /* RFC 7252 §4.2: the first timeout is random in [ACK_TIMEOUT, ACK_TIMEOUT * 1.5]. */
    s->timeout_us = con ? ACK_TIMEOUT_US + (int64_t)(rnd(b) % (ACK_TIMEOUT_US / 2)) : 0;
    s->next_us = con ? now + s->timeout_us : now + SEPARATE_WAIT_US;
    s->tries = con ? 0 : MAX_RETRANSMIT;
    d->n_out++;
    b->n_out++;
    uint8_t buf[1500];
    ssize_t n = build(b, d, s, buf, sizeof buf, observe);
    if (n < 0)
        return (int)n;
    if (!observe)
        b->st.sent++;
    int r = send_raw(b, d, buf, (size_t)n);
    if (r < 0)
        b->st.sock_errors++; /* the slot stays; retransmission or timeout settles it */
    return 0;
}

int bench_dev_request(bench_t *b, bench_dev_t *d) { return start(b, d, false); }

/* Registrations are not counted as load requests (sent), but their answers are (done). */
int bench_dev_observe(bench_t *b, bench_dev_t *d) { return start(b, d, true); }

/* The slot's request is over (answered, reset or given up): free the slot, let the mode refill. */
static void finish(bench_t *b, bench_dev_t *d, bench_slot_t *s)
{
    s->used = false;
    d->n_out--;
    b->n_out--;
    b->on_done(b, d);
}

static void complete(bench_t *b, bench_dev_t *d, bench_slot_t *s, uint8_t code, int64_t now)
{
    b->st.codes[code]++;
    if (code >= 0x80)
        b->st.errors++;
    bench_hist_add(&b->st.lat, (uint64_t)(now - s->t0_us));
    b->st.done++;
    if (s->tok == d->obs_tok && code == 0x45)
        d->obs_ok = true;
    finish(b, d, s);
}

static void give_up(bench_t *b, bench_dev_t *d, bench_slot_t *s)
{
    b->st.timeouts++;
    b->st.errors++;
    finish(b, d, s);
}

static bench_slot_t *by_mid(bench_t *b, bench_dev_t *d, uint16_t mid)
{
    for (int i = 0; i < b->cfg.window; i++)
        if (d->slots[i].used && d->slots[i].mid == mid)
            return &d->slots[i];
    return NULL;
}

static bench_slot_t *by_tok(bench_t *b, bench_dev_t *d, uint32_t tok)
{
    for (int i = 0; i < b->cfg.window; i++)
        if (d->slots[i].used && d->slots[i].tok == tok)
            return &d->slots[i];
    return NULL;
}

static void handle_coap(bench_t *b, bench_dev_t *d, const uint8_t *p, size_t len)
{
    coap_pdu_t pdu;
    if (coap_pdu_parse(&pdu, p, len) < 0) {
        b->st.sock_errors++; /* not CoAP: ignored, as a real client would */
        return;
    }
    int64_t now = bench_now_us();
    if (pdu.type == COAP_TYPE_ACK || pdu.type == COAP_TYPE_RST) {
        bench_slot_t *s = by_mid(b, d, pdu.mid);
        if (!s)
            return; /* a duplicate or a late answer to a request we gave up on */
        if (pdu.type == COAP_TYPE_RST) {
            b->st.resets++;
            b->st.errors++;
            finish(b, d, s);
        } else if (pdu.code == 0) {
            /* Empty ACK: the response comes separately (RFC 7252 §5.2.2). */
            s->acked = true;
            s->next_us = now + SEPARATE_WAIT_US;
        } else {
            complete(b, d, s, pdu.code, now);
        }
        return;
    }
    if (pdu.type == COAP_TYPE_CON) {
        uint8_t ack[4] = {0x60, 0, (uint8_t)(pdu.mid >> 8), (uint8_t)pdu.mid};
        (void)send_raw(b, d, ack, sizeof ack);
    }
    if (pdu.tkl != 4 || pdu.code == 0)
        return;
    uint32_t tok = (uint32_t)pdu.token[0] << 24 | (uint32_t)pdu.token[1] << 16 |
                   (uint32_t)pdu.token[2] << 8 | pdu.token[3];
    bench_slot_t *s = by_tok(b, d, tok);
    if (s) {
        complete(b, d, s, pdu.code, now);
        return;
    }
    if (tok == d->obs_tok && d->obs_ok) {
        b->st.notifications++;
        if (b->obs_post_us && b->obs_round > 0 && d->obs_seen_round != b->obs_round) {
            d->obs_seen_round = b->obs_round;
            b->obs_seen++;
            b->obs_last_us = now;
            int64_t t0 = __atomic_load_n(&b->obs_post_us[d->idx], __ATOMIC_ACQUIRE);
            if (t0 > 0)
                bench_hist_add(&b->st.notify_lat, (uint64_t)(now > t0 ? now - t0 : 0));
        }
    }
}

/* The device's handshake failed (an error, or no answer within --connect-timeout). */
static void handshake_failed(bench_t *b, bench_dev_t *d)
{
    b->st.handshake_errors++;
    b->st.errors++;
    b->hs_inflight--;
    d->state = DEV_FAILED;
    b->n_failed++;
    b->on_ready(b, d);
}

static void handshake(bench_t *b, bench_dev_t *d)
{
    ERR_clear_error();
    int r = SSL_do_handshake(d->ssl);
    if (r == 1) {
        int64_t now = bench_now_us();
        b->hs_inflight--;
        d->state = DEV_READY;
        b->n_ready++;
        b->st.handshakes++;
        if (SSL_session_reused(d->ssl))
            b->st.handshakes_resumed++;
        bench_hist_add(&b->st.hs_lat, (uint64_t)(now - d->hs_t0_us));
        if (b->cfg.resume && !d->sess)
            d->sess = SSL_get1_session(d->ssl);
        b->on_ready(b, d);
        return;
    }
    int e = SSL_get_error(d->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return;
    ssl_fail_log(b, "DTLS handshake");
    handshake_failed(b, d);
}

static void on_readable(bench_t *b, bench_dev_t *d)
{
    uint8_t buf[2048];
    /* One datagram per readiness event: epoll is level-triggered, so a socket with more to
     * read is reported again, and a closed-loop device (one reply, then nothing) does not pay
     * a second recv that only says EAGAIN — the load generator shares the server's cores, so
     * every syscall it saves is CPU the server under test gets. */
    if (!d->ssl) {
        ssize_t n = recv(d->fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                b->st.sock_errors++; /* ECONNREFUSED: nobody listens there */
            return;
        }
        handle_coap(b, d, buf, (size_t)n);
        return;
    }
    if (d->state == DEV_HANDSHAKE) {
        handshake(b, d);
        if (d->state != DEV_READY || !d->ssl)
            return;
    }
    for (int i = 0; i < 64 && d->ssl && d->state == DEV_READY; i++) {
        ERR_clear_error();
        int n = SSL_read(d->ssl, buf, sizeof buf);
        if (n > 0) {
            handle_coap(b, d, buf, (size_t)n);
            /* More records of the same datagram wait inside OpenSSL, where epoll cannot see
             * them; otherwise stop here, as for plain CoAP. */
            if (!d->ssl || !SSL_has_pending(d->ssl))
                return;
            continue;
        }
        int e = SSL_get_error(d->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return;
        /* close_notify or a fatal alert from the server: the session is gone. */
        if (e != SSL_ERROR_ZERO_RETURN)
            ssl_fail_log(b, "SSL_read");
        b->st.dtls_errors++;
        b->st.errors++;
        d->state = DEV_FAILED;
        b->n_ready--;
        b->n_failed++;
        return;
    }
}

int bench_dev_open(bench_t *b, bench_dev_t *d)
{
    d->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (d->fd < 0)
        return -errno;
    if (connect(d->fd, (struct sockaddr *)&b->addr, sizeof b->addr) < 0)
        goto fail;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = d};
    if (epoll_ctl(b->ep, EPOLL_CTL_ADD, d->fd, &ev) < 0)
        goto fail;
    d->n_out = 0;
    for (int i = 0; i < b->cfg.window; i++)
        d->slots[i].used = false;
    if (!b->cfg.dtls) {
        d->state = DEV_READY;
        b->n_ready++;
        return 0;
    }
    d->ssl = SSL_new(b->ctx);
    if (!d->ssl) {
        errno = ENOMEM;
        goto fail;
    }
    BIO *bio = BIO_new_dgram(d->fd, BIO_NOCLOSE);
    if (!bio) {
        errno = ENOMEM;
        goto fail;
    }
    BIO_ctrl(bio, BIO_CTRL_DGRAM_SET_CONNECTED, 0, &b->addr);
    SSL_set_bio(d->ssl, bio, bio);
    if (d->cert && d->key &&
        (SSL_use_certificate(d->ssl, d->cert) != 1 || SSL_use_PrivateKey(d->ssl, d->key) != 1)) {
        ssl_fail_log(b, "client certificate");
        errno = EINVAL;
        goto fail;
    }
    if (d->sess)
        SSL_set_session(d->ssl, d->sess);
    SSL_set_app_data(d->ssl, d); /* bench_psk_client_cb finds the device here */
    SSL_set_connect_state(d->ssl);
    d->state = DEV_HANDSHAKE;
    b->hs_inflight++;
    d->hs_t0_us = bench_now_us();
    handshake(b, d);
    return 0;
fail:;
    int err = -errno;
    if (d->ssl)
        SSL_free(d->ssl);
    d->ssl = NULL;
    close(d->fd);
    d->fd = -1;
    d->state = DEV_FAILED;
    return err;
}

void bench_dev_close(bench_t *b, bench_dev_t *d, bool notify)
{
    if (d->fd < 0)
        return;
    if (d->ssl) {
        /* close_notify lets the server drop the session now instead of at its idle timeout. */
        if (notify && d->state == DEV_READY) {
            ERR_clear_error();
            SSL_shutdown(d->ssl);
        }
        ERR_clear_error();
        SSL_free(d->ssl);
        d->ssl = NULL;
    }
    if (d->state == DEV_READY)
        b->n_ready--;
    else if (d->state == DEV_HANDSHAKE)
        b->hs_inflight--;
    epoll_ctl(b->ep, EPOLL_CTL_DEL, d->fd, NULL);
    close(d->fd);
    d->fd = -1;
    d->state = DEV_IDLE;
    b->n_out -= d->n_out;
    d->n_out = 0;
}

void bench_net_poll(bench_t *b, int timeout_ms)
{
    struct epoll_event evs[256];
    int n = epoll_wait(b->ep, evs, 256, timeout_ms);
    for (int i = 0; i < n; i++) {
        bench_dev_t *d = evs[i].data.ptr;
        if (d->fd >= 0)
            on_readable(b, d);
    }
}

static void resend(bench_t *b, bench_dev_t *d, bench_slot_t *s, int64_t now)
{
    uint8_t buf[1500];
    bool observe = s->tok == d->obs_tok;
    ssize_t n = build(b, d, s, buf, sizeof buf, observe);
    s->tries++;
    s->timeout_us *= 2;
    s->next_us = now + s->timeout_us;
    b->st.retrans++;
    if (n > 0)
        (void)send_raw(b, d, buf, (size_t)n);
}

void bench_net_sweep(bench_t *b)
{
    int64_t now = bench_now_us();
    for (int i = 0; i < b->cfg.devices; i++) {
        bench_dev_t *d = &b->devs[i];
        if (d->fd < 0)
            continue;
        if (d->state == DEV_HANDSHAKE) {
            if (now - d->hs_t0_us > (int64_t)(b->cfg.connect_s * 1e6))
                handshake_failed(b, d);
            else if (DTLSv1_handle_timeout(d->ssl) < 0)
                ssl_fail_log(b, "DTLS retransmission");
            continue;
        }
        if (d->n_out == 0 || d->state != DEV_READY)
            continue;
        for (int k = 0; k < b->cfg.window; k++) {
            bench_slot_t *s = &d->slots[k];
            if (!s->used || now < s->next_us)
                continue;
            if (s->acked || s->tries >= MAX_RETRANSMIT)
                give_up(b, d, s);
            else
                resend(b, d, s, now);
            if (d->fd < 0)
                break;
        }
    }
}
