/* listener.c — one shard's DTLS socket: receive loop, dispatch, peer tables, caps, sweeps.
 *
 * Invariants:
 *  - A datagram from an address with no handshake in progress reaches OpenSSL only as an
 *    epoch-0 ClientHello, through DTLSv1_listen on the one shared "listen" SSL (cookie.c), so
 *    no per-peer memory exists before a valid cookie. Anything else from an unknown address is
 *    dropped (records_dropped) without a reply.
 *  - Each address has at most one handshake (table hs) and one established session (table
 *    est). A new ClientHello from an established address starts a separate handshake; the old
 *    session is replaced only when that handshake completes (peer.c).
 *  - hs_age lists handshakes oldest first; est_age lists sessions stalest first (only a
 *    decrypted record moves a session to the end), so the session sweep and the eviction on
 *    a full table look only at list heads. Sessions of certificates that name no device are
 *    on est_unknown instead, with their own (shorter) idle timeout, evicted first.
 *  - Admission after a valid cookie (the address is then proven, so it can be counted):
 *    at most max_handshakes_per_addr handshakes per source address (admit.c), else the
 *    ClientHello is refused; at most max_handshakes in all, and when that is full the new
 *    one takes the place of a stalled one (pick_victim), so a flood of abandoned handshakes
 *    cannot keep new devices out; a handshake with no progress for handshake_stall_ms is
 *    dropped by the sweep long before handshake_timeout_ms.
 */
#include "dtls/dtls_int.h"

#include "core/sockaddr.h"
#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <linux/filter.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The sweep runs this often; its cost is proportional to what expired, not to the table. */
/* 16 MiB: 10 000 devices with a request each in flight (~1 KiB of kernel memory per queued
 * datagram) overflowed 4 MiB while the shard was busy (bench: 5,823 drops, each a 2 s CON
 * retransmission). Above net.core.rmem_max only with CAP_NET_ADMIN (SO_RCVBUFFORCE). */
enum { SWEEP_MS = 1000, SOCKET_BUFFER = 16 << 20 };
/* Each freed SSL (a session moved to the compact layer, or closed) leaves a ~50-80 KB hole
 * between small blocks that stay live; glibc gives such pages back to the kernel only in
 * malloc_trim. So the sweep trims when SSLs were freed since the last sweep: at most once a
 * second per shard, a few ms on a large heap (under constant handshake load the re-faulted
 * pages cost well under 1 % of a core). */

/* ---- datagram path ------------------------------------------------------------------------ */

static bool ensure_listen_ssl(dtls_listener_t *l)
{
    if (l->listen_ssl && l->listen_gen == dtls__ctx_gen(l->ctx))
        return true;
    SSL_free(l->listen_ssl);
    unsigned gen = 0;
    SSL_CTX *c = dtls__ctx_acquire(l->ctx, &gen);
    l->listen_ssl = SSL_new(c);
    SSL_CTX_free(c); /* the SSL holds its own reference */
    if (!l->listen_ssl) {
        ERR_clear_error();
        return false;
    }
    l->listen_gen = gen;
    unsigned rtx_us = (unsigned)l->cfg.retransmission_ms * 1000u;
    BIO *b = dtls__bio_new(l->fd, &l->cookie, rtx_us, NULL);
    SSL_set_bio(l->listen_ssl, b, b);
    SSL_set_options(l->listen_ssl, SSL_OP_COOKIE_EXCHANGE | SSL_OP_NO_QUERY_MTU);
    DTLS_set_link_mtu(l->listen_ssl, l->cfg.mtu);
    DTLS_set_timer_cb(l->listen_ssl, dtls__timer_cb);
    return true;
}

/* The handshake to drop for a new one when the table is full: among those without progress
 * for a first retransmission period (a live client answers within it unless a flight was
 * lost), one from the address with the most handshakes in progress, the oldest of those. A
 * flood from a few addresses thus pays first, a lone device last. NULL when every handshake
 * is making progress: then the new one is refused (a real burst must not evict itself).
 * Walks the table (at most max_handshakes entries, only when it is full). */
static dtls_peer_t *pick_victim(dtls_listener_t *l, int64_t now)
{
    dtls_peer_t *best = NULL;
    unsigned best_n = 0;
    for (dtls_peer_t *p = l->hs_age.head; p; p = p->next) {
        if (now - p->progress_ms < l->cfg.retransmission_ms)
            continue;
        unsigned n = dtls__admit_of(p);
        if (!best || n > best_n) {
            best = p;
            best_n = n;
            if (n >= (unsigned)l->cfg.max_handshakes_per_addr)
                break; /* no address has more */
        }
    }
    return best;
}

static void client_hello(dtls_listener_t *l, const struct sockaddr_storage *a, socklen_t alen,
                         const uint8_t *p, size_t len)
{
    if (!ensure_listen_ssl(l))
        return;
    dtls_bio_t *b = dtls__ssl_bio(l->listen_ssl);
    memcpy(&b->addr, a, alen);
    b->addr_len = alen;
    b->in = p;
    b->in_len = len;
    ERR_clear_error();
    int rc = DTLSv1_listen(l->listen_ssl, l->listen_addr);
    b->in = NULL;
    b->in_len = 0;
    if (rc <= 0) {
        /* No cookie or a bad one (a HelloVerifyRequest went out), or junk: no state kept. */
        ERR_clear_error();
        return;
    }
    if (dtls__admit_count(&l->admit, a) >= (unsigned)l->cfg.max_handshakes_per_addr) {
        l->stats.handshakes_refused_addr++;
        SSL_clear(l->listen_ssl); /* the buffered ClientHello must not linger */
        return;
    }
    /* Full of sessions, none stale (D10): refused before any handshake work; a client that
     * already has a session here may redo its handshake (the new session replaces the old). */
    if (htab_count(&l->est) >= (size_t)l->cfg.max_sessions && !dtls__ptab_find(&l->est, a) &&
        !dtls__session_victim(l, loop_now_ms(l->loop))) {
        l->stats.handshakes_refused_full++;
        SSL_clear(l->listen_ssl);
        return;
    }
    if (htab_count(&l->hs) >= (size_t)l->cfg.max_handshakes) {
        dtls_peer_t *victim = pick_victim(l, loop_now_ms(l->loop));
        if (!victim) {
            l->stats.handshakes_refused++;
            SSL_clear(l->listen_ssl);
            return;
        }
        l->stats.handshakes_evicted++;
        l->stats.handshakes_failed++;
        dtls__peer_close(victim, false);
    }
    dtls__peer_start(l);
}

static void input_one(dtls_listener_t *l, const struct sockaddr_storage *a, socklen_t alen,
                      const uint8_t *p, size_t len)
{
    l->stats.datagrams_in++;
    if (alen > (socklen_t)sizeof(struct sockaddr_storage) ||
        (a->ss_family != AF_INET && a->ss_family != AF_INET6)) {
        l->stats.records_dropped++;
        return;
    }
    dtls_dg_kind_t kind = dtls__classify(p, len);
    if (kind == DTLS_DG_DROP) {
        l->stats.records_dropped++;
        return;
    }
    if (kind == DTLS_DG_CID) {
        /* RFC 9146: routed by the CID we chose, whatever the address; the peer moves to a
         * new address only once a record from it authenticates (compact.c, peer.c). */
        size_t cl = (size_t)l->cfg.cid_len;
        dtls_peer_t *c = cl > 0 && len >= DTLS_CID_HDR + cl
                             ? dtls__ptab_find_cid(&l->cids, p + 11, cl)
                             : NULL;
        if (!c) {
            if (cl > 0 && dtls__peer_claim_cid(l, a, alen, p, len, cl))
                return;
            l->stats.cid_unknown++;
            l->stats.records_dropped++;
            return;
        }
        dtls__peer_input(c, a, alen, p, len);
        return;
    }
    uint64_t h = sockaddr_hash(a); /* one keyed hash for both tables */
    dtls_peer_t *hs = dtls__ptab_find_hashed(&l->hs, a, h);
    if (hs) {
        dtls__peer_input(hs, NULL, 0, p, len);
        return;
    }
    if (kind == DTLS_DG_CLIENT_HELLO) {
        client_hello(l, a, alen, p, len);
        return;
    }
    dtls_peer_t *est = dtls__ptab_find_hashed(&l->est, a, h);
    if (est)
        dtls__peer_input(est, NULL, 0, p, len);
    else if (!dtls__peer_claim(l, a, alen, p, len))
        l->stats.records_dropped++;
}

void dtls__listener_input(dtls_listener_t *l, const struct sockaddr_storage *a, socklen_t alen,
                          const uint8_t *p, size_t len)
{
    /* What OpenSSL answers to this datagram (a flight, an alert) leaves in as few datagrams
     * as the MTU allows (bio.c). */
    dtls__bio_batch_begin((size_t)l->cfg.mtu);
    input_one(l, a, alen, p, len);
    dtls__bio_batch_end();
}

void dtls__listener_poll(dtls_listener_t *l)
{
    struct mmsghdr msgs[DTLS_BATCH];
    struct iovec iov[DTLS_BATCH];
    /* Bounded work per wake-up so timers and the mailbox get their turn under a flood. */
    for (int round = 0; round < 8; round++) {
        for (int i = 0; i < DTLS_BATCH; i++) {
            iov[i] = (struct iovec){.iov_base = l->bufs[i], .iov_len = DTLS_MAX_DGRAM};
            msgs[i].msg_hdr = (struct msghdr){.msg_name = &l->addrs[i],
                                              .msg_namelen = sizeof l->addrs[i],
                                              .msg_iov = &iov[i],
                                              .msg_iovlen = 1};
            msgs[i].msg_len = 0;
        }
        int n = recvmmsg(l->fd, msgs, DTLS_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        for (int i = 0; i < n; i++) {
            if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
                l->stats.datagrams_in++;
                l->stats.records_dropped++;
                continue;
            }
            dtls__listener_input(l, &l->addrs[i], msgs[i].msg_hdr.msg_namelen, l->bufs[i],
                                 msgs[i].msg_len);
        }
        if (n < DTLS_BATCH)
            return;
    }
}

static void on_readable(loop_t *loop, int fd, uint32_t events, void *arg)
{
    dtls__listener_poll(arg);
}

static void on_flush(loop_t *loop, void *arg)
{
    (void)loop;
    dtls_listener_t *l = arg;
    if (l->outq.n)
        dtls__compact_flush(l);
}

static void on_sweep(loop_t *loop, void *arg)
{
    dtls_listener_t *l = arg;
    dtls__listener_sweep(l, loop_now_ms(loop));
    loop_timer_arm(loop, &l->sweep, SWEEP_MS);
}

void dtls__listener_sweep(dtls_listener_t *l, int64_t now)
{
    dtls__cookie_tick(&l->cookie, now);
#ifdef __GLIBC__
    if (l->ssl_freed > 0) {
        l->ssl_freed = 0;
        malloc_trim(0);
        dtls__mem_trim();
    }
#endif
    dtls_restore_t *t = dtls__ctx_restore(l->ctx);
    if (dtls__restore_pending(t)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        l->stats.saved_expired += dtls__restore_expire(t, (int64_t)ts.tv_sec * 1000 +
                                                              ts.tv_nsec / 1000000);
    }
    /* Every handshake is looked at (at most max_handshakes): the list is in start order,
     * and a stalled one can sit behind a younger one that is still progressing. */
    for (dtls_peer_t *p = l->hs_age.head, *next; p; p = next) {
        next = p->next;
        if (now - p->started_ms >= l->cfg.handshake_timeout_ms) {
            l->stats.handshakes_failed++;
            l->stats.handshake_timeouts++;
            dtls__peer_close(p, false);
        } else if (now - p->progress_ms >= l->cfg.handshake_stall_ms) {
            l->stats.handshakes_failed++;
            l->stats.handshakes_stalled++;
            dtls__peer_close(p, false);
        }
    }
    while (l->est_age.head &&
           now - l->est_age.head->last_seen_ms >= l->cfg.session_inactivity_ms) {
        l->stats.idle_closed++;
        dtls__peer_close(l->est_age.head, true);
    }
    while (l->est_unknown.head &&
           now - l->est_unknown.head->last_seen_ms >= l->cfg.unknown_cert_inactivity_ms) {
        l->stats.idle_unknown++;
        dtls__peer_close(l->est_unknown.head, true);
    }
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

/* Which shard hears a datagram is decided by us, not by the kernel's SO_REUSEPORT hash
 * (whose secret we cannot know), so that both routes below can be computed in userspace:
 *  - a tls12_cid record (RFC 9146) goes to the shard named by the first byte of its CID
 *    (endpoint.c chooses CIDs so): a device whose NAT rebinds reaches the shard holding its
 *    session whatever its new address;
 *  - anything else goes to dtls_shard_of(source address), so a session saved at a stop can be
 *    made live again at start in the shard that will hear its device (dtls_listener_adopt_
 *    saved), with its observations, before the device sends anything.
 * A classic BPF program on the SO_REUSEPORT group (attached once, by the first shard: the
 * group shares it) computes the same: the listeners bind in shard order, which is their
 * order in the group. It sees the UDP payload at offset 0 (record type at 0, the CID from
 * 11) and the IP header at SKF_NET_OFF; IPv4 options are assumed absent (a datagram with
 * them still reaches a consistent shard, only a restored session would then wait to be
 * claimed). A load past the datagram ends the program with 0 (shard 0). dtls__shard_of (ptab.c) is
 * the same function in C. */
static int steer(int fd, unsigned shards, char err[static ERR_LEN])
{
    struct sock_filter code[] = {
        /* 0 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 0),
        /* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, DTLS_CT_CID, 0, 3),
        /* 2 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 11),
        /* 3 */ BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, shards),
        /* 4 */ BPF_STMT(BPF_RET | BPF_A, 0),
        /* 5 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, (uint32_t)SKF_NET_OFF),
        /* 6 */ BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 4),
        /* 7 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 6, 5, 0),
        /* IPv4: source address ^ source port */
        /* 8 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)SKF_NET_OFF + 12),
        /* 9 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
        /* 10 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, (uint32_t)SKF_NET_OFF + 20),
        /* 11 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        /* 12 */ BPF_JUMP(BPF_JMP | BPF_JA, 13, 0, 0),
        /* IPv6: the four words of the source address ^ source port */
        /* 13 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)SKF_NET_OFF + 8),
        /* 14 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
        /* 15 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)SKF_NET_OFF + 12),
        /* 16 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        /* 17 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
        /* 18 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)SKF_NET_OFF + 16),
        /* 19 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        /* 20 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
        /* 21 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)SKF_NET_OFF + 20),
        /* 22 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        /* 23 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
        /* 24 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, (uint32_t)SKF_NET_OFF + 40),
        /* 25 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        /* mix, as dtls_shard_of does */
        /* 26 */ BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, DTLS_SHARD_MIX),
        /* 27 */ BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 16),
        /* 28 */ BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, shards),
        /* 29 */ BPF_STMT(BPF_RET | BPF_A, 0),
    };
    struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) != 0) {
        snprintf(err, ERR_LEN,
                 "DTLS: cannot steer datagrams to their shard (SO_ATTACH_REUSEPORT_CBPF: %s); "
                 "use --shards 1",
                 strerror(errno));
        return -1;
    }
    return 0;
}

dtls_listener_t *dtls_listener_new(loop_t *loop, const transport_sink_t *sink, dtls_ctx_t *ctx,
                                   const dtls_cfg_t *cfg, char err[static ERR_LEN])
{
    if (cfg->mtu < 256 || cfg->mtu > DTLS_MAX_DGRAM || cfg->retransmission_ms <= 0 ||
        cfg->handshake_timeout_ms <= 0 || cfg->max_handshakes <= 0 || cfg->max_sessions <= 0 ||
        cfg->max_handshakes_per_addr <= 0 || cfg->handshake_stall_ms <= 0 ||
        cfg->unknown_cert_inactivity_ms <= 0 || cfg->stale_session_ms < 0 ||
        cfg->min_rsa_bits < 0 || cfg->max_client_chain_bytes < 1024 || cfg->cid_len < 0 ||
        cfg->cid_len > DTLS_CID_LEN_MAX || !cfg->bind_addr) {
        snprintf(err, ERR_LEN,
                 "invalid DTLS settings (a bind address, mtu 256..%d, positive "
                 "timeouts and caps, a client chain cap of at least 1024 bytes)",
                 DTLS_MAX_DGRAM);
        return NULL;
    }
    if (cfg->shard_count > 256 || cfg->shard_index < 0 ||
        cfg->shard_index >= (cfg->shard_count > 1 ? cfg->shard_count : 1)) {
        snprintf(err, ERR_LEN, "invalid DTLS shard index %d of %d", cfg->shard_index,
                 cfg->shard_count);
        return NULL;
    }
    int fd = sockaddr_udp_bind(cfg->bind_addr, cfg->port, SOCKET_BUFFER, "DTLS", err);
    if (fd < 0)
        return NULL;
    if (cfg->shard_count > 1 && cfg->shard_index == 0 &&
        steer(fd, (unsigned)cfg->shard_count, err) != 0) {
        close(fd);
        return NULL;
    }
    dtls_listener_t *l = xcalloc(1, sizeof *l);
    l->loop = loop;
    outq_init(&l->outq, DTLS_OUT_BATCH, DTLS_MAX_DGRAM);
    l->sink = *sink;
    l->ctx = ctx;
    l->cfg = *cfg;
    l->fd = fd;
    l->port = sockaddr_local_port(fd);
    dtls__cookie_init(&l->cookie, loop_now_ms(loop));
    l->cookie.cookies_sent = &l->stats.cookies_sent;
    l->cookie.cookies_bad = &l->stats.cookies_bad;
    l->listen_addr = BIO_ADDR_new();
    dtls__aead_init(&l->aead);
    l->pool = dtls__pool_new();
    htab_init(&l->hs, 256);
    htab_init(&l->est, 1024);
    htab_init(&l->admit, 256);
    htab_init(&l->cids, 0);
    int rc = loop_fd_add(loop, fd, 0x001 /* EPOLLIN */, on_readable, l);
    if (rc != 0) {
        snprintf(err, ERR_LEN, "loop_fd_add: %s", strerror(-rc));
        l->fd = -1;
        close(fd);
        dtls_listener_free(l);
        return NULL;
    }
    if (loop_flush_add(loop, on_flush, l) != 0) {
        snprintf(err, ERR_LEN, "dtls: too many flush hooks on one loop");
        dtls_listener_free(l);
        return NULL;
    }
    loop_timer_init(&l->sweep, on_sweep, l);
    loop_timer_arm(loop, &l->sweep, SWEEP_MS);
    return l;
}

int dtls_listener_port(const dtls_listener_t *l)
{
    return l->port;
}

void dtls_listener_close_device(dtls_listener_t *l, int64_t device_id)
{
    if (device_id == 0)
        return;
    dtls_peer_t *p = l->est_age.head;
    int n = 0;
    while (p) {
        dtls_peer_t *next = p->next;
        if (p->base.cert_device_id == device_id) {
            l->stats.closed_by_credentials++;
            n++;
            dtls__peer_close(p, true);
        }
        p = next;
    }
    if (n > 0)
        LOG_I("dtls", "closed %d session(s) of device %lld (credentials changed or deleted)", n,
              (long long)device_id);
}

size_t dtls_listener_adopt_saved(dtls_listener_t *l)
{
    return dtls__peer_adopt_all(l, l->cfg.shard_index,
                                l->cfg.shard_count > 1 ? (unsigned)l->cfg.shard_count : 1);
}

size_t dtls_listener_save(dtls_listener_t *l, dtls_save_t *w, bool stopping, size_t *skipped)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_unix = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int64_t now = loop_now_ms(l->loop);
    size_t n = 0;
    dtls_saved_sess_t *s = calloc(1, sizeof *s);
    enum { BLOB_MAX = 4096 };
    uint8_t *blob = malloc(BLOB_MAX);
    if (!s || !blob) {
        free(s);
        free(blob);
        return 0;
    }
    for (dtls_peer_t *p = l->est_age.head; p; p = p->next) {
        if (p->ssl || !p->rl || p->state != DTLS_PEER_ESTABLISHED) {
            if (skipped)
                (*skipped)++;
            continue;
        }
        /* Records sent after this save would reuse sequence numbers under the same keys
         * when the file is loaded: skip ahead. Out of numbers: not worth saving. */
        if (p->rl->w_seq > DTLS_SEQ_MAX - DTLS_SAVED_SEQ_MARGIN) {
            if (skipped)
                (*skipped)++;
            continue;
        }
        if (RAND_bytes((uint8_t *)&s->id, sizeof s->id) != 1 || s->id == 0) {
            if (skipped)
                (*skipped)++;
            continue;
        }
        memcpy(&s->addr, &p->base.addr, p->base.addr_len);
        s->addr_len = p->base.addr_len;
        s->device_id = p->base.cert_device_id;
        s->last_seen_unix_ms = now_unix - (now - p->last_seen_ms);
        s->rl = *p->rl;
        s->rl.uid = 0;
        s->rl.w_seq += DTLS_SAVED_SEQ_MARGIN;
        s->cid_ours_len = p->cid_len;
        memcpy(s->cid_ours, p->cid, p->cid_len);
        s->cid_peer_len = p->cid_asked ? p->peer_cid_len : 0;
        memcpy(s->cid_peer, p->peer_cid, s->cid_peer_len);
        s->blob = blob;
        s->blob_len = l->sink.save ? l->sink.save(l->sink.ctx, &p->base, blob, BLOB_MAX) : 0;
        if (s->blob_len > BLOB_MAX)
            s->blob_len = 0;
        dtls__save_add(w, s);
        dtls__rl_wipe(&s->rl);
        if (stopping)
            p->saved = true;
        else
            p->save_id = s->id;
        n++;
    }
    l->stats.saved_written += n;
    free(blob);
    free(s);
    return n;
}

void dtls__listener_close_all(dtls_listener_t *l)
{
    while (l->hs_age.head)
        dtls__peer_close(l->hs_age.head, false);
    while (l->est_age.head)
        dtls__peer_close(l->est_age.head, true);
    while (l->est_unknown.head)
        dtls__peer_close(l->est_unknown.head, true);
}

void dtls_listener_free(dtls_listener_t *l)
{
    if (!l)
        return;
    loop_timer_cancel(l->loop, &l->sweep);
    loop_flush_del(l->loop, on_flush, l);
    if (l->fd >= 0)
        loop_fd_del(l->loop, l->fd);
    dtls__listener_close_all(l);
    SSL_free(l->listen_ssl);
    BIO_ADDR_free(l->listen_addr);
    dtls__aead_fini(&l->aead);
    dtls__pool_release(l->pool);
    dtls__cookie_fini(&l->cookie);
    dtls__compact_flush(l); /* records queued in the last iteration (close_notify included) */
    outq_fini(&l->outq);
    if (l->fd >= 0)
        close(l->fd);
    htab_fini(&l->hs);
    htab_fini(&l->est);
    htab_fini(&l->admit); /* empty: every handshake took itself out on close */
    htab_fini(&l->cids);
    free(l);
}

void dtls_listener_get_stats(const dtls_listener_t *l, dtls_stats_t *out)
{
    *out = l->stats;
    out->handshakes_in_progress = htab_count(&l->hs);
    out->sessions = htab_count(&l->est);
    out->cid_sessions = htab_count(&l->cids);
}
