/* peer.c — one DTLS peer after its cookie: handshake, identity, records, close.
 *
 * A peer is born from the listener's listen SSL after DTLSv1_listen accepted a cookie, lives
 * in the handshake table until the handshake completes, then in the session table as a
 * transport_peer_t handed to the listener's sink (the CoAP engine, wired by src/app). The
 * listener's table holds one reference; the sink adds its own while it keeps state; the
 * struct is freed with the last one, while the SSL is freed as soon as the peer closes (a
 * sink holding a closed peer costs nothing).
 *
 * Identity (spec §6.1, reliability A5): the leaf certificate only, taken from
 * SSL_get0_peer_certificate after the handshake, so it is the key that signed
 * CertificateVerify and it survives session resumption (the certificate travels in the
 * SSL_SESSION). Certificates the client appended after its leaf never name a device. Which
 * device the leaf names is not ours to decide: its DER goes to cfg.identify (endpoint.c).
 */
#include "dtls/dtls_int.h"

#include "core/err.h"
#include "core/log.h"
#include "core/sockaddr.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>

static int peer_send(transport_peer_t *tp, const uint8_t *p, size_t len)
{
    dtls_peer_t *peer = (dtls_peer_t *)tp;
    if (peer->state != DTLS_PEER_ESTABLISHED)
        return -EPIPE;
    if (len > DTLS_MAX_PLAIN)
        return -EMSGSIZE;
    if (len == 0)
        return 0;
    if (!peer->ssl)
        return dtls__compact_send(peer, p, len);
    ERR_clear_error();
    int n = SSL_write(peer->ssl, p, (int)len);
    if (n <= 0) {
        ERR_clear_error();
        return -EIO;
    }
    return 0;
}

static void peer_destroy(transport_peer_t *tp)
{
    dtls_peer_t *peer = (dtls_peer_t *)tp;
    SSL_free(peer->ssl);
    dtls__compact_release(peer);
    dtls__pool_put(peer);
}

static const transport_ops_t dtls_ops = {.send = peer_send, .destroy = peer_destroy};

/* A handshake waiting for the client's next flight does not need OpenSSL's record buffers
 * (~18 KB each, a page or more of each touched), so they are freed between datagrams and
 * allocated again before OpenSSL runs for it (DTLS writes do not allocate them on demand).
 * Measured on one shard: RSS per 1,000 stalled handshakes 44.8 MB -> 36.8 MB. The rest is
 * OpenSSL's own: the 16 KB handshake message buffer it zeroes at the start, the SSL (~7.5
 * KB), the handshake hash and the flight kept for retransmission. SSL_free_buffers is only
 * trusted from OpenSSL 3.0.14 on (CVE-2024-4741); older libraries keep the buffers. */
static void hs_buffers(dtls_peer_t *p, bool need)
{
    if (!p->ssl || p->state != DTLS_PEER_HANDSHAKE || OpenSSL_version_num() < 0x300000e0L)
        return;
    if (need)
        SSL_alloc_buffers(p->ssl);
    else
        SSL_free_buffers(p->ssl); /* 0 (nothing freed) while a record is still buffered */
}

static void arm_rtx(dtls_peer_t *p)
{
    struct timeval tv;
    dtls_listener_t *l = p->owner;
    if (p->ssl && DTLSv1_get_timeout(p->ssl, &tv) > 0) {
        int64_t ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
        loop_timer_arm(l->loop, &p->rtx, ms > 0 ? ms : 1);
    } else {
        loop_timer_cancel(l->loop, &p->rtx);
    }
}

static void on_rtx(loop_t *loop, void *arg)
{
    dtls_peer_t *p = arg;
    if (!p->ssl)
        return;
    /* RFC 6347 §4.2.4: resend the last flight; OpenSSL gives up after too many tries. */
    hs_buffers(p, true);
    long rc = DTLSv1_handle_timeout(p->ssl);
    hs_buffers(p, false);
    if (rc < 0) {
        ERR_clear_error();
        if (p->state == DTLS_PEER_HANDSHAKE)
            p->owner->stats.handshakes_failed++;
        dtls__peer_close(p, false);
        return;
    }
    arm_rtx(p);
}

/* The leaf, then what the client sent above it (on the server side OpenSSL's peer chain
 * leaves the leaf out), as DER. Which device they name, or whether a provisioning profile
 * takes them, is the identify callback's call. */
static int64_t identify(dtls_listener_t *l, SSL *ssl)
{
    /* A PSK session is the device its identity names, exactly as a certificate's would be
     * (looked up again: the callback's answer is not kept in the SSL). */
    const char *psk_id = SSL_get_psk_identity(ssl);
    if (psk_id)
        return dtls__ctx_identify_psk(l->ctx, psk_id);
    X509 *leaf = SSL_get0_peer_certificate(ssl);
    if (!leaf)
        return 0;
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    unsigned char *der[DTLS_IDENTIFY_MAX] = {0};
    size_t len[DTLS_IDENTIFY_MAX];
    size_t n = 0;
    int64_t id = 0;
    for (int i = -1; i < (chain ? sk_X509_num(chain) : 0) && n < DTLS_IDENTIFY_MAX; i++) {
        X509 *x = i < 0 ? leaf : sk_X509_value(chain, i);
        int k = i2d_X509(x, &der[n]);
        if (k <= 0)
            goto out;
        len[n++] = (size_t)k;
    }
    id = dtls__ctx_identify(l->ctx, (const uint8_t *const *)der, len, n);
out:
    for (size_t i = 0; i < DTLS_IDENTIFY_MAX; i++)
        OPENSSL_free(der[i]);
    return id;
}

static bool l_compact(const dtls_peer_t *p)
{
    return p->owner->cfg.compact_records;
}

static void read_records(dtls_peer_t *p)
{
    dtls_listener_t *l = p->owner;
    bool got = false;
    transport_peer_ref(&p->base);
    while (p->state == DTLS_PEER_ESTABLISHED) {
        /* SSL_get_error reads the thread's error queue: it must hold nothing older. */
        ERR_clear_error();
        int n = SSL_read(p->ssl, l->plain, sizeof l->plain);
        if (n > 0) {
            got = true;
            /* Only a record that decrypted and passed the replay check refreshes the peer
             * (Scandium: spoofed junk must not keep a stale session alive). */
            p->last_seen_ms = loop_now_ms(l->loop);
            dtls__plist_remove(dtls__est_list(l, p), p);
            dtls__plist_append(dtls__est_list(l, p), p);
            l->sink.input(l->sink.ctx, &p->base, l->plain, (size_t)n);
            continue;
        }
        int e = SSL_get_error(p->ssl, n);
        char why[128] = "";
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE && log_enabled(LOG_DEBUG))
            ERR_error_string_n(ERR_peek_error(), why, sizeof why);
        ERR_clear_error();
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (!got)
                l->stats.records_dropped++;
            arm_rtx(p);
            /* The first application data proves the client has our last flight. */
            if (got)
                dtls__compact_demote(p);
            break;
        }
        /* close_notify (ZERO_RETURN: answer with ours), a fatal alert or a fatal error. */
        LOG_D("dtls", "session ended (%s)", e == SSL_ERROR_ZERO_RETURN ? "close_notify" : why);
        dtls__peer_close(p, e == SSL_ERROR_ZERO_RETURN);
        break;
    }
    transport_peer_unref(&p->base);
}

dtls_peer_t *dtls__session_victim(dtls_listener_t *l, int64_t now)
{
    if (l->est_unknown.head)
        return l->est_unknown.head;
    dtls_peer_t *p = l->est_age.head;
    if (p && (l->cfg.stale_session_ms == 0 || now - p->last_seen_ms >= l->cfg.stale_session_ms))
        return p;
    return NULL;
}

static void established(dtls_peer_t *p)
{
    dtls_listener_t *l = p->owner;
    int64_t now = loop_now_ms(l->loop);
    dtls__ptab_remove(&l->hs, p);
    dtls__plist_remove(&l->hs_age, p);
    dtls__admit_del(&l->admit, p);
    p->base.cert_device_id = identify(l, p->ssl);
    /* A certificate that names no device still makes a session (the client may use a token
     * in the path, as over one-way DTLS), but anyone can make such certificates: these
     * sessions are second class, so they never push out a device's session. */
    p->unknown_cert = p->base.cert_device_id == 0 && SSL_get0_peer_certificate(p->ssl);
    l->stats.handshakes_ok++;
    if (SSL_session_reused(p->ssl))
        l->stats.resumed++;
    /* A fresh handshake from the address of a live session replaces it only now. */
    dtls_peer_t *old = dtls__ptab_find(&l->est, &p->base.addr);
    if (old)
        dtls__peer_close(old, false);
    if (htab_count(&l->est) >= (size_t)l->cfg.max_sessions) {
        /* Full: a newcomer with an unknown certificate only ever replaces another such
         * session; anyone else replaces that or a stale session; otherwise the new session is
         * refused (it was admitted while there was room, or while a session was stale). */
        dtls_peer_t *victim = dtls__session_victim(l, now);
        if (victim && (victim->unknown_cert || !p->unknown_cert)) {
            if (victim->unknown_cert)
                l->stats.evicted_unknown++;
            else
                l->stats.evicted++;
            dtls__peer_close(victim, true);
        } else {
            if (p->unknown_cert)
                l->stats.evicted_unknown++;
            else
                l->stats.handshakes_refused_full++;
            p->state = DTLS_PEER_ESTABLISHED; /* closed as a session: close_notify */
            dtls__ptab_insert(&l->est, p);
            dtls__plist_append(dtls__est_list(l, p), p);
            dtls__peer_close(p, true);
            return;
        }
    }
    p->state = DTLS_PEER_ESTABLISHED;
    p->last_seen_ms = now;
    dtls__compact_prepare(p);
    dtls__ptab_insert(&l->est, p);
    dtls__plist_append(dtls__est_list(l, p), p);
    if (log_enabled(LOG_DEBUG)) {
        char a[64];
        /* On the server side the peer chain excludes the leaf; it is empty after resumption. */
        STACK_OF(X509) *chain = SSL_get_peer_cert_chain(p->ssl);
        int certs = SSL_get0_peer_certificate(p->ssl) ? 1 + (chain ? sk_X509_num(chain) : 0) : 0;
        LOG_D("dtls", "%s: session established (%s, %s, %d client certificate(s), device %lld)",
              transport_peer_addr_str(&p->base, a, sizeof a), SSL_get_cipher_name(p->ssl),
              SSL_session_reused(p->ssl) ? "resumed" : "full handshake", certs,
              (long long)p->base.cert_device_id);
    }
    read_records(p);
}

static void handshake_step(dtls_peer_t *p)
{
    ERR_clear_error();
    hs_buffers(p, true);
    OSSL_HANDSHAKE_STATE before = SSL_get_state(p->ssl);
    int rc = SSL_do_handshake(p->ssl);
    /* Progress for the stall timeout (listener.c): a new handshake message, not a repeated
     * one (OpenSSL answers a retransmitted flight by resending ours, state unchanged). */
    if (SSL_get_state(p->ssl) != before)
        p->progress_ms = loop_now_ms(p->owner->loop);
    if (rc == 1) {
        established(p);
        return;
    }
    int e = SSL_get_error(p->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        hs_buffers(p, false);
        arm_rtx(p);
        return;
    }
    if (log_enabled(LOG_DEBUG)) {
        char a[64], why[160];
        ERR_error_string_n(ERR_peek_error(), why, sizeof why);
        LOG_D("dtls", "%s: handshake failed: %s", transport_peer_addr_str(&p->base, a, sizeof a),
              why);
    }
    ERR_clear_error();
    p->owner->stats.handshakes_failed++;
    dtls__peer_close(p, false);
}

/* A zeroed peer of l with its transport ops, one reference (the table's), no SSL. */
static dtls_peer_t *peer_alloc(dtls_listener_t *l)
{
    dtls_peer_t *p = dtls__pool_get(l->pool);
    p->base.ops = &dtls_ops;
    p->base.kind = TRANSPORT_DTLS;
    p->base.refcnt = 1; /* the listener's table */
    p->owner = l;
    loop_timer_init(&p->rtx, on_rtx, p);
    return p;
}

void dtls__peer_start(dtls_listener_t *l)
{
    dtls_peer_t *p = peer_alloc(l);
    p->ssl = l->listen_ssl;
    l->listen_ssl = NULL; /* a new one is made for the next ClientHello */
    p->bio = dtls__ssl_bio(p->ssl);
    p->bio->datagrams_out = NULL;
    p->bio->w_next_seq = 0;
    p->bio->w_epoch1 = false;
    memcpy(&p->base.addr, &p->bio->addr, p->bio->addr_len);
    p->base.addr_len = p->bio->addr_len;
    p->state = DTLS_PEER_HANDSHAKE;
    p->started_ms = loop_now_ms(l->loop);
    p->progress_ms = p->started_ms;
    DTLS_set_timer_cb(p->ssl, dtls__timer_cb);
    SSL_set_app_data(p->ssl, p); /* the connection_id extension's callbacks (endpoint.c) */
    if (l->cfg.cid_len > 0) {
        /* Our epoch-1 records carry the client's CID if it has one (compact.c decides). */
        p->bio->w_rewrite = dtls__compact_cid_wrap;
        p->bio->w_arg = p;
    }
    dtls__ptab_insert(&l->hs, p);
    dtls__plist_append(&l->hs_age, p);
    dtls__admit_add(&l->admit, p);
    handshake_step(p);
}

/* Gives OpenSSL (part of) a datagram of a peer that still has its SSL. shadow: the bytes
 * came from the wire, so the compact layer's window must see their epoch-1 records too;
 * false for CID records rewritten by compact.c, which opened them already. */
static void feed(dtls_peer_t *p, const uint8_t *data, size_t len, bool shadow)
{
    p->bio->in = data;
    p->bio->in_len = len;
    if (p->state == DTLS_PEER_HANDSHAKE) {
        /* Only a CID session has record keys this early (compact.c). */
        if (shadow && p->rl)
            dtls__compact_shadow(p, data, len);
        p->cur = shadow ? data : NULL;
        p->cur_len = shadow ? len : 0;
        handshake_step(p);
        p->cur = NULL;
        p->cur_len = 0;
        /* Epoch-1 data or alerts before the handshake completed: OpenSSL may have taken
         * them in before our shadow window existed, so this session keeps its SSL. */
        if (shadow && !p->rl && p->state == DTLS_PEER_HANDSHAKE && l_compact(p) &&
            dtls__compact_early_records(data, len))
            p->rl_refused = true;
    } else {
        if (shadow)
            dtls__compact_shadow(p, data, len);
        read_records(p);
    }
    /* The peer may have closed or moved to the compact layer meanwhile: then its SSL (and
     * BIO) are gone. */
    if (p->bio) {
        p->bio->in = NULL;
        p->bio->in_len = 0;
    }
}

/* RFC 9146 §6: a session whose CID record from another address authenticated now answers
 * there. The peer that was filed under that address: a CID session keeps running without
 * an address (its CID still finds it), an ordinary one is stale (its NAT mapping went to
 * this device) and ends. */
static void moved(dtls_peer_t *p, dtls_peer_t *displaced)
{
    if (log_enabled(LOG_DEBUG)) {
        char a[64];
        LOG_D("dtls", "%s: session moved there (connection id)",
              transport_peer_addr_str(&p->base, a, sizeof a));
    }
    if (displaced && displaced->cid_len == 0)
        dtls__peer_close(displaced, false);
}

void dtls__peer_input(dtls_peer_t *p, const struct sockaddr_storage *from, socklen_t alen,
                      const uint8_t *data, size_t len)
{
    if (p->state == DTLS_PEER_CLOSED)
        return;
    dtls_listener_t *l = p->owner;
    transport_peer_ref(&p->base); /* it may close (and lose the table's ref) in here */
    while (len > 0 && p->state != DTLS_PEER_CLOSED) {
        if (!p->ssl) {
            dtls_peer_t *displaced = NULL;
            bool away = from && !sockaddr_equal(from, &p->base.addr);
            dtls_compact_verdict_t v = dtls__compact_input(p, data, len, from, alen, &displaced);
            if (away && sockaddr_equal(from, &p->base.addr))
                moved(p, displaced);
            if (v != DTLS_COMPACT_GO_ON)
                dtls__peer_close(p, v == DTLS_COMPACT_CLOSE_NOTIFY);
            break;
        }
        /* OpenSSL's layer: ordinary records go to it as they are; the tls12_cid records of
         * a CID session are opened and rewritten first (compact.c), which needs the keys,
         * so what comes before them (ClientKeyExchange, CCS) goes to OpenSSL first. */
        size_t k = p->cid_len ? dtls__compact_cid_offset(p, data, len) : len;
        if (k > 0) {
            feed(p, data, k, true);
            data += k;
            len -= k;
            continue;
        }
        dtls__compact_cid_keys(p);
        size_t used = 0;
        size_t m = dtls__compact_cid_convert(p, data, len, &used);
        data += used;
        len -= used;
        if (m == 0)
            continue;
        if (from && p->state == DTLS_PEER_ESTABLISHED && !sockaddr_equal(from, &p->base.addr)) {
            dtls_peer_t *displaced = dtls__ptab_move(&l->est, p, from, alen);
            memcpy(&p->bio->addr, &p->base.addr, sizeof p->bio->addr);
            p->bio->addr_len = p->base.addr_len;
            l->stats.cid_address_changes++;
            moved(p, displaced);
        }
        feed(p, l->conv, m, false);
    }
    transport_peer_unref(&p->base);
}

void dtls__peer_close(dtls_peer_t *p, bool notify)
{
    dtls_listener_t *l = p->owner;
    if (p->state == DTLS_PEER_CLOSED)
        return;
    loop_timer_cancel(l->loop, &p->rtx);
    bool was_session = p->state == DTLS_PEER_ESTABLISHED;
    if (was_session) {
        dtls__ptab_remove(&l->est, p);
        dtls__plist_remove(dtls__est_list(l, p), p);
    } else {
        dtls__ptab_remove(&l->hs, p);
        dtls__plist_remove(&l->hs_age, p);
        dtls__admit_del(&l->admit, p);
    }
    dtls__ptab_remove_cid(&l->cids, p);
    p->state = DTLS_PEER_CLOSED;
    p->base.closed = true;
    if (p->ssl) {
        /* The BIO must not hand OpenSSL a datagram while it writes the alert. */
        p->bio->in = NULL;
        p->bio->in_len = 0;
        if (notify && was_session)
            SSL_shutdown(p->ssl);
        ERR_clear_error();
        SSL_free(p->ssl);
        p->ssl = NULL;
        p->bio = NULL;
        l->ssl_freed++;
    } else if (p->rl) {
        if (notify && was_session && !p->saved)
            dtls__compact_close_notify(p);
        /* No SSL freed, but the session's CoAP state goes now: its pages (amid the blocks
         * of the requests it made) come back only through the sweep's malloc_trim. */
        l->ssl_freed++;
    }
    dtls__compact_release(p);
    if (was_session)
        l->sink.closed(l->sink.ctx, &p->base);
    transport_peer_unref(&p->base); /* the table's reference */
}

/* An established compact session of l for address a (replacing one there) with a copy of rl
 * and a fresh uid. */
static dtls_peer_t *compact_session(dtls_listener_t *l, const struct sockaddr_storage *a,
                                    socklen_t alen, const dtls_rl_t *rl)
{
    dtls_peer_t *p = peer_alloc(l);
    memcpy(&p->base.addr, a, alen);
    p->base.addr_len = alen;
    p->rl = &p->rl_store;
    *p->rl = *rl;
    p->rl->uid = ++l->next_uid;
    p->state = DTLS_PEER_ESTABLISHED;
    p->last_seen_ms = loop_now_ms(l->loop);
    dtls_peer_t *old = dtls__ptab_find(&l->est, a);
    if (old)
        dtls__peer_close(old, false);
    dtls__ptab_insert(&l->est, p);
    dtls__plist_append(&l->est_age, p);
    return p;
}

dtls_peer_t *dtls__peer_new_compact(dtls_listener_t *l, const struct sockaddr_storage *a,
                                    socklen_t alen, const dtls_rl_t *rl)
{
    dtls_peer_t *p = compact_session(l, a, alen, rl);
    l->stats.sessions_compacted++;
    return p;
}

/* s becomes an established compact session of l; the sink gets its blob back. */
static dtls_peer_t *restore(dtls_listener_t *l, dtls_saved_sess_t *s)
{
    if (htab_count(&l->est) >= (size_t)l->cfg.max_sessions && l->est_age.head) {
        l->stats.evicted++;
        dtls__peer_close(l->est_age.head, true);
    }
    dtls_peer_t *p = compact_session(l, &s->addr, s->addr_len, &s->rl);
    p->base.cert_device_id = s->device_id;
    /* Its CIDs (RFC 9146), if it had them and they still fit this build and listener. */
    if (s->cid_ours_len > 0 && s->cid_ours_len <= DTLS_CID_MAX && s->cid_peer_len <= DTLS_CID_MAX &&
        !dtls__ptab_find_cid(&l->cids, s->cid_ours, s->cid_ours_len)) {
        memcpy(p->cid, s->cid_ours, s->cid_ours_len);
        p->cid_len = s->cid_ours_len;
        p->cid_asked = true;
        memcpy(p->peer_cid, s->cid_peer, s->cid_peer_len);
        p->peer_cid_len = s->cid_peer_len;
        dtls__ptab_insert_cid(&l->cids, p);
    }
    l->stats.saved_claimed++;
    if (log_enabled(LOG_DEBUG)) {
        char as[64];
        LOG_D("dtls", "%s: saved session restored (device %lld), no handshake",
              transport_peer_addr_str(&p->base, as, sizeof as), (long long)s->device_id);
    }
    if (l->sink.restored)
        l->sink.restored(l->sink.ctx, &p->base, s->blob, s->blob_len);
    dtls__saved_sess_free(s);
    return p;
}

bool dtls__peer_claim(dtls_listener_t *l, const struct sockaddr_storage *a, socklen_t alen,
                      const uint8_t *data, size_t len)
{
    dtls_restore_t *t = dtls__ctx_restore(l->ctx);
    if (!l->cfg.compact_records || !dtls__restore_pending(t))
        return false;
    dtls_saved_sess_t *s = dtls__restore_take(t, a);
    if (!s)
        return false;
    /* Spoofed junk from a saved address must not use up the device's session. */
    if (s->addr_len != alen || !dtls__compact_authentic(l, &s->rl, data, len, 0)) {
        dtls__restore_put_back(t, s);
        return false;
    }
    dtls_peer_t *p = restore(l, s);
    transport_peer_ref(&p->base);
    dtls__peer_input(p, NULL, 0, data, len);
    transport_peer_unref(&p->base);
    return true;
}

bool dtls__peer_claim_cid(dtls_listener_t *l, const struct sockaddr_storage *a, socklen_t alen,
                          const uint8_t *data, size_t len, size_t cid_len)
{
    dtls_restore_t *t = dtls__ctx_restore(l->ctx);
    if (!l->cfg.compact_records || !dtls__restore_pending(t) || len < DTLS_CID_HDR + cid_len)
        return false;
    dtls_saved_sess_t *s = dtls__restore_take_cid(t, data + 11, cid_len);
    if (!s)
        return false;
    if (!dtls__compact_authentic(l, &s->rl, data, len, cid_len)) {
        dtls__restore_put_back(t, s);
        return false;
    }
    dtls_peer_t *p = restore(l, s);
    transport_peer_ref(&p->base);
    /* From a (maybe new) address: the CID path moves the session there once it opens. */
    dtls__peer_input(p, a, alen, data, len);
    transport_peer_unref(&p->base);
    return true;
}

size_t dtls__peer_adopt_all(dtls_listener_t *l, int shard, unsigned shards)
{
    if (!l->cfg.compact_records)
        return 0;
    size_t n = 0;
    dtls_saved_sess_t **v = dtls__restore_take_shard(dtls__ctx_restore(l->ctx), shard, shards, &n);
    for (size_t i = 0; i < n; i++)
        restore(l, v[i]);
    free(v);
    return n;
}
