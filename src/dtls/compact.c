/* compact.c — established DTLS sessions without an OpenSSL SSL object (issue #5 part 4).
 *
 * OpenSSL runs the cookie exchange and the handshake. When the handshake completes we derive
 * the record keys (record.c) and, while the SSL still runs, open every epoch-1 record it is
 * given a second time with our own keys ("shadow"), so that our replay window knows every
 * record OpenSSL accepted. When OpenSSL has delivered the first application record, which
 * proves the client received our last flight (RFC 6347 §4.2.4: nothing needs resending), and
 * our keys opened that record too, the SSL is freed and this file carries the session:
 * ~0.2 KB instead of ~50 KB (spec dtls-session-memory.md).
 *
 * Invariants:
 *  - A record reaches the engine only after its tag verified and its sequence number passed
 *    the replay window; every other record is dropped silently and counted.
 *  - The write sequence continues after the highest one OpenSSL wrote (seen in bio.c), so no
 *    sequence number is ever sent twice under the same keys.
 *  - A session whose shadow window could be incomplete (epoch-1 data or alerts arrived while
 *    it was still handshaking), whose suite is not AES-GCM/CCM or ChaCha20-Poly1305, or where our keys
 *    disagree with OpenSSL's, keeps its SSL: correctness first, memory second.
 * Renegotiation is refused by ignoring epoch-1 handshake records (no reply: a reply alert to a
 * replayed record would let anybody who captured one make us talk). A new epoch-0
 * ClientHello never gets here: the listener runs the cookie exchange and a fresh handshake
 * that replaces this session only when it completes (listener.c, peer.c).
 */
#include "dtls/dtls_int.h"

#include "core/err.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/sockaddr.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>

/* RFC 5246 §6.2.1 content types and §7.2 alerts. */
enum { CT_CCS = 20, CT_ALERT = 21, CT_HANDSHAKE = 22, CT_APP = 23 };
enum { ALERT_WARNING = 1, ALERT_FATAL = 2, ALERT_CLOSE_NOTIFY = 0 };

static void refuse(dtls_peer_t *p)
{
    dtls__compact_release(p);
    p->rl_refused = true;
}

void dtls__compact_release(dtls_peer_t *p)
{
    if (!p->rl)
        return;
    dtls__rl_wipe(p->rl);
    p->rl = NULL;
}

bool dtls__compact_early_records(const uint8_t *data, size_t len)
{
    dtls_rec_t r;
    ssize_t n;
    while (len > 0 && (n = dtls__rec_parse(data, len, &r)) > 0) {
        if (r.epoch != 0 && (r.type == CT_APP || r.type == CT_ALERT))
            return true;
        data += n;
        len -= (size_t)n;
    }
    return false;
}

void dtls__compact_shadow(dtls_peer_t *p, const uint8_t *data, size_t len)
{
    if (!p->rl)
        return;
    dtls_listener_t *l = p->owner;
    dtls_rec_t r;
    ssize_t n;
    while (len > 0 && (n = dtls__rec_parse(data, len, &r)) > 0) {
        data += n;
        len -= (size_t)n;
        if (r.epoch != p->rl->epoch)
            continue;
        /* l->plain is free here: OpenSSL has not been given this datagram yet. */
        ssize_t m = dtls__rl_open(p->rl, &l->aead, &r, l->plain, sizeof l->plain);
        if (m >= 0 && r.type == CT_APP)
            p->rl_verified = true;
    }
}

void dtls__compact_prepare(dtls_peer_t *p)
{
    dtls_listener_t *l = p->owner;
    if (!l->cfg.compact_records || p->rl_refused || p->rl)
        return;
    p->rl = &p->rl_store;
    int rc = dtls__rl_from_ssl(p->rl, p->ssl);
    if (rc != 0) {
        if (rc != -ENOTSUP)
            LOG_W("dtls", "cannot derive record keys (%s); session keeps OpenSSL's record layer",
                  err_str(rc));
        refuse(p);
        return;
    }
    p->rl->uid = ++l->next_uid;
    /* The datagram that completed the handshake may carry application data already. */
    if (p->cur)
        dtls__compact_shadow(p, p->cur, p->cur_len);
}

void dtls__compact_demote(dtls_peer_t *p)
{
    if (!p->rl || p->rl_refused || !p->ssl || p->state != DTLS_PEER_ESTABLISHED)
        return;
    if (!p->rl_verified || !p->bio->w_epoch1) {
        /* OpenSSL accepted a record that our keys did not open (or we never saw its
         * epoch-1 output): something we do not understand, so do not take over. */
        LOG_W("dtls", "record keys do not match OpenSSL's; session keeps OpenSSL's record layer");
        refuse(p);
        return;
    }
    if (SSL_pending(p->ssl) > 0)
        return; /* unread plaintext inside OpenSSL: try again after the next datagram */
    p->rl->w_seq = p->bio->w_next_seq;
    loop_timer_cancel(p->owner->loop, &p->rtx);
    /* Marked as shut down both ways, SSL_free keeps the session in the SSL_CTX cache
     * (ssl_clear_bad_session removes it otherwise), so the device can still resume; nothing
     * is sent. */
    SSL_set_shutdown(p->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    ERR_clear_error();
    SSL_free(p->ssl);
    p->ssl = NULL;
    p->bio = NULL;
    p->owner->stats.sessions_compacted++;
    p->owner->ssl_freed++;
    if (log_enabled(LOG_DEBUG)) {
        char a[64];
        LOG_D("dtls", "%s: session moved to the compact record layer",
              transport_peer_addr_str(&p->base, a, sizeof a));
    }
}

/* A session saved while the server runs moves on with this record: from now on the saved
 * copy must never be loaded (listed as stale before the record goes out or reaches the
 * engine). */
static void moved_on(dtls_peer_t *p)
{
    if (!p->save_id)
        return;
    dtls__saved_stale_add(p->owner->cfg.data_dir, p->save_id);
    p->save_id = 0;
}

void dtls__compact_flush(dtls_listener_t *l)
{
    /* Like bio.c: a datagram the kernel refuses counts as lost on the wire. */
    uint64_t sent = 0, failed = 0;
    outq_flush(&l->outq, l->fd, &sent, &failed);
}

/* Inside a running loop iteration records wait for one sendmmsg at its end (the listener's
 * flush hook; a group commit acknowledges hundreds of requests in one iteration); outside
 * one (tests, shutdown) and for records larger than a queue slot, they go at once. */
static void send_record(dtls_peer_t *p, const uint8_t *rec, size_t len)
{
    dtls_listener_t *l = p->owner;
    if (l->fd < 0)
        return;
    uint64_t sent = 0, failed = 0;
    if (l->loop && loop_running(l->loop) &&
        outq_push(&l->outq, l->fd, rec, len, (const struct sockaddr *)&p->base.addr,
                  p->base.addr_len, &sent, &failed) == 0)
        return;
    dtls__compact_flush(l); /* keep the order of what is queued */
    (void)sendto(l->fd, rec, len, MSG_DONTWAIT, (const struct sockaddr *)&p->base.addr,
                 p->base.addr_len);
}

/* Our records carry the client's CID: it has one, and we answered its extension (cid_len is
 * set only then: endpoint.c). */
static bool sends_cid(const dtls_peer_t *p)
{
    return p->cid_len > 0 && p->peer_cid_len > 0;
}

int dtls__compact_send(dtls_peer_t *p, const uint8_t *data, size_t len)
{
    dtls_listener_t *l = p->owner;
    moved_on(p);
    ssize_t n = sends_cid(p)
                    ? dtls__rl_seal_cid(p->rl, &l->aead, CT_APP, p->peer_cid, p->peer_cid_len, data,
                                        len, l->out, sizeof l->out)
                    : dtls__rl_seal(p->rl, &l->aead, CT_APP, data, len, l->out, sizeof l->out);
    if (n == -EOVERFLOW)
        return -EPIPE; /* 2^48 records sent: the session idles out; a new handshake follows */
    if (n < 0)
        return n == -ENOSPC ? -EMSGSIZE : -EIO;
    send_record(p, l->out, (size_t)n);
    return 0;
}

void dtls__compact_close_notify(dtls_peer_t *p)
{
    dtls_listener_t *l = p->owner;
    static const uint8_t alert[2] = {ALERT_WARNING, ALERT_CLOSE_NOTIFY};
    moved_on(p);
    ssize_t n = sends_cid(p)
                    ? dtls__rl_seal_cid(p->rl, &l->aead, CT_ALERT, p->peer_cid, p->peer_cid_len,
                                        alert, sizeof alert, l->out, sizeof l->out)
                    : dtls__rl_seal(p->rl, &l->aead, CT_ALERT, alert, sizeof alert, l->out,
                                    sizeof l->out);
    if (n > 0)
        send_record(p, l->out, (size_t)n);
}

/* An authenticated alert (RFC 5246 §7.2): close_notify is answered with ours; a fatal alert
 * ends the session; other warnings are ignored. A malformed one ends it as a decode error. */
static dtls_compact_verdict_t on_alert(const uint8_t *a, size_t len)
{
    if (len != 2)
        return DTLS_COMPACT_CLOSE;
    if (a[1] == ALERT_CLOSE_NOTIFY) {
        LOG_D("dtls", "session ended (close_notify)");
        return DTLS_COMPACT_CLOSE_NOTIFY;
    }
    if (a[0] == ALERT_FATAL) {
        LOG_D("dtls", "session ended (fatal alert %u)", a[1]);
        return DTLS_COMPACT_CLOSE;
    }
    return DTLS_COMPACT_GO_ON;
}

/* ---- RFC 9146 Connection ID -------------------------------------------------------------
 *
 * A client that negotiated our CID sends tls12_cid records from its Finished on. OpenSSL 3.0
 * does not know them: until the SSL is freed, each is opened here with the session's keys
 * (derived as soon as OpenSSL has the master secret) and rewritten in memory as the ordinary
 * record OpenSSL expects, same epoch and sequence number. Opening them is what the shadow
 * does for ordinary records, so the replay window stays complete. After the SSL is freed,
 * dtls__compact_input opens them natively. */

bool dtls__compact_cid_keys(dtls_peer_t *p)
{
    if (p->rl)
        return true;
    if (!p->ssl || p->rl_refused || !p->owner->cfg.compact_records)
        return false;
    dtls_rl_t rl;
    if (dtls__rl_from_ssl(&rl, p->ssl) != 0) {
        dtls__rl_wipe(&rl);
        return false; /* no master secret yet */
    }
    p->rl = &p->rl_store;
    *p->rl = rl;
    dtls__rl_wipe(&rl);
    p->rl->uid = ++p->owner->next_uid;
    return true;
}

size_t dtls__compact_cid_wrap(void *arg, const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    dtls_peer_t *p = arg;
    if (!sends_cid(p) || !dtls__compact_cid_keys(p))
        return 0;
    dtls_listener_t *l = p->owner;
    dtls_rl_t mine, again;
    dtls__rl_mirror(p->rl, &mine); /* reads with our write keys */
    again = *p->rl;
    again.uid = 0; /* a throwaway view: no cipher context cached under it */
    size_t o = 0;
    bool changed = false;
    dtls_rec_t r;
    ssize_t n;
    while (len > 0 && (n = dtls__rec_parse(in, len, &r)) > 0) {
        ssize_t m = -1;
        if (r.epoch == again.epoch && r.type != DTLS_CT_CID) {
            /* l->plain is free: OpenSSL is writing, not reading. */
            ssize_t k = dtls__rl_open(&mine, &l->aead, &r, l->plain, sizeof l->plain);
            again.w_seq = r.seq;
            if (k >= 0)
                m = dtls__rl_seal_cid(&again, &l->aead, r.type, p->peer_cid, p->peer_cid_len,
                                      l->plain, (size_t)k, out + o, cap - o);
            if (m > 0)
                changed = true;
        }
        if (m <= 0) {
            if ((size_t)n > cap - o)
                break;
            memcpy(out + o, in, (size_t)n); /* epoch 0 (or not ours to change) */
            m = n;
        }
        o += (size_t)m;
        in += n;
        len -= (size_t)n;
    }
    dtls__rl_wipe(&mine);
    dtls__rl_wipe(&again);
    return changed ? o : 0;
}

size_t dtls__compact_cid_offset(const dtls_peer_t *p, const uint8_t *data, size_t len)
{
    size_t off = 0;
    dtls_rec_t r;
    ssize_t n;
    while (off < len && data[off] != DTLS_CT_CID &&
           (n = dtls__rec_parse_cid(data + off, len - off, p->cid_len, &r)) > 0)
        off += (size_t)n;
    return off < len && data[off] == DTLS_CT_CID ? off : len;
}

/* A record that did not open (m: dtls__rl_open's error), counted by why. */
static void count_dropped(dtls_listener_t *l, ssize_t m)
{
    l->stats.records_dropped++;
    if (m == -EALREADY)
        l->stats.records_replayed++;
    else if (m == -EBADMSG)
        l->stats.records_bad_mac++;
}

size_t dtls__compact_cid_convert(dtls_peer_t *p, const uint8_t *data, size_t len, size_t *used)
{
    dtls_listener_t *l = p->owner;
    size_t in = 0, out = 0;
    dtls_rec_t r;
    ssize_t n;
    while (in < len && data[in] == DTLS_CT_CID &&
           (n = dtls__rec_parse_cid(data + in, len - in, p->cid_len, &r)) > 0) {
        in += (size_t)n;
        uint8_t type = 0;
        ssize_t m = p->rl ? dtls__rl_cid_to_plain(p->rl, &l->aead, &r, &type, l->conv + out,
                                                  sizeof l->conv - out)
                          : -ENOKEY;
        if (m < 0) {
            count_dropped(l, m);
            continue;
        }
        l->stats.cid_records++;
        if (type == CT_APP)
            p->rl_verified = true;
        out += (size_t)m;
    }
    if (in < len && data[in] == DTLS_CT_CID && out == 0)
        in = len; /* a cut-short CID record ends the datagram */
    *used = in;
    return out;
}

dtls_compact_verdict_t dtls__compact_input(dtls_peer_t *p, const uint8_t *data, size_t len,
                                           const struct sockaddr_storage *from, socklen_t alen,
                                           dtls_peer_t **displaced)
{
    dtls_listener_t *l = p->owner;
    dtls_compact_verdict_t v = DTLS_COMPACT_GO_ON;
    *displaced = NULL;
    while (len > 0 && v == DTLS_COMPACT_GO_ON && p->state == DTLS_PEER_ESTABLISHED) {
        dtls_rec_t r;
        ssize_t n = dtls__rec_parse_cid(data, len, p->cid_len, &r);
        if (n < 0) {
            l->stats.records_dropped++; /* a cut-short record ends the datagram */
            break;
        }
        data += n;
        len -= (size_t)n;
        ssize_t m;
        if (r.type == DTLS_CT_CID) {
            m = dtls__rl_open_cid(p->rl, &l->aead, &r, &r.type, l->plain, sizeof l->plain);
            if (m >= 0) {
                l->stats.cid_records++;
                /* RFC 9146 §6: only a record that authenticated moves the session, and it
                 * moves before anything is answered. */
                if (from && !sockaddr_equal(from, &p->base.addr)) {
                    dtls_peer_t *d = dtls__ptab_move(&l->est, p, from, alen);
                    if (d)
                        *displaced = d;
                    l->stats.cid_address_changes++;
                    from = NULL;
                }
            }
        } else {
            m = dtls__rl_open(p->rl, &l->aead, &r, l->plain, sizeof l->plain);
        }
        if (m < 0) {
            /* Wrong epoch or version, replay, bad tag: silently dropped (RFC 6347 §4.1.2.7),
             * and the session lives on. */
            count_dropped(l, m);
            continue;
        }
        moved_on(p);
        /* Only an authenticated record refreshes the session (Scandium). */
        p->last_seen_ms = loop_now_ms(l->loop);
        dtls__plist_remove(dtls__est_list(l, p), p);
        dtls__plist_append(dtls__est_list(l, p), p);
        switch (r.type) {
        case CT_APP:
            if (m > 0)
                l->sink.input(l->sink.ctx, &p->base, l->plain, (size_t)m);
            break;
        case CT_ALERT:
            v = on_alert(l->plain, (size_t)m);
            break;
        default:
            /* Handshake (renegotiation, or a duplicated Finished) and CCS in epoch 1: our
             * server never renegotiates (RFC 5746 allows refusing silently). */
            l->stats.records_dropped++;
            break;
        }
    }
    return v;
}

bool dtls__compact_authentic(dtls_listener_t *l, const dtls_rl_t *rl, const uint8_t *data,
                             size_t len, size_t cid_len)
{
    dtls_rec_t r;
    if ((cid_len > 0 ? dtls__rec_parse_cid(data, len, cid_len, &r)
                     : dtls__rec_parse(data, len, &r)) < 0)
        return false;
    dtls_rl_t copy = *rl;
    copy.uid = 0; /* not cached in the listener's cipher contexts */
    uint8_t type;
    ssize_t m = cid_len > 0
                    ? dtls__rl_open_cid(&copy, &l->aead, &r, &type, l->plain, sizeof l->plain)
                    : dtls__rl_open(&copy, &l->aead, &r, l->plain, sizeof l->plain);
    dtls__rl_wipe(&copy);
    return m >= 0;
}
