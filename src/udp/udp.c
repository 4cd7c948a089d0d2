/* udp.c — plain UDP transport: socket, recvmmsg batches, sendmmsg batches, per-address peer
 * table.
 *
 * Replies are copied into an output queue and sent with one sendmmsg per OUT_BATCH, or at
 * the end of the loop iteration (loop_flush_add): a group commit acknowledges hundreds of
 * requests in one iteration, and one system call per datagram was measurable.
 *
 * Invariant: a peer in the table holds one reference owned by the table. The engine adds
 * its own while it keeps state. A sweep timer removes peers whose only reference is the
 * table's and that were idle for idle_peer_ms, so a silent address costs nothing for long.
 */
#include "udp/udp.h"

#include "core/htab.h"
#include "core/log.h"
#include "core/outq.h"
#include "core/sockaddr.h"
#include "core/xmalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { BATCH = 32, OUT_BATCH = 64, MAX_DGRAM = UDP_MAX_DGRAM, SWEEP_MS = 5000 };

typedef struct udp_peer {
    transport_peer_t base; /* first member: a transport_peer_t* is a udp_peer_t* */
    udp_listener_t *owner;
    htab_link_t link; /* in udp_listener.peers, keyed by address */
    int64_t last_seen_ms;
} udp_peer_t;

struct udp_listener {
    loop_t *loop;
    transport_sink_t sink;
    udp_cfg_t cfg;
    int fd;
    int port;
    htab_t peers;
    loop_timer_t sweep;
    udp_stats_t stats;
    uint8_t bufs[BATCH][MAX_DGRAM];
    struct sockaddr_storage addrs[BATCH];
    outq_t out; /* replies waiting for the end of the loop iteration */
};

static void flush_out(udp_listener_t *u)
{
    outq_flush(&u->out, u->fd, &u->stats.datagrams_out, &u->stats.send_errors);
}

static void on_flush(loop_t *loop, void *arg)
{
    (void)loop;
    udp_listener_t *u = arg;
    if (u->out.n)
        flush_out(u);
}

void udp_cfg_default(udp_cfg_t *cfg)
{
    *cfg = (udp_cfg_t){.bind_addr = "0.0.0.0", .port = 5683, .max_peers = 200000,
                       .idle_peer_ms = 60000, .socket_buffer = 16 << 20};
}

static int peer_send(transport_peer_t *tp, const uint8_t *p, size_t len)
{
    udp_peer_t *peer = (udp_peer_t *)tp;
    udp_listener_t *u = peer->owner;
    if (!u)
        return -EPIPE;
    if (outq_push(&u->out, u->fd, p, len, (const struct sockaddr *)&tp->addr, tp->addr_len,
                  &u->stats.datagrams_out, &u->stats.send_errors) == 0)
        return 0;
    flush_out(u); /* larger than a queue slot: at once, after what is queued */
    ssize_t n = sendto(u->fd, p, len, MSG_DONTWAIT, (const struct sockaddr *)&tp->addr,
                       tp->addr_len);
    if (n < 0) {
        u->stats.send_errors++;
        return -errno;
    }
    u->stats.datagrams_out++;
    return 0;
}

static void peer_destroy(transport_peer_t *tp)
{
    free(tp);
}

static const transport_ops_t udp_ops = {.send = peer_send, .destroy = peer_destroy};

static bool peer_has_addr(const htab_link_t *l, const void *addr)
{
    return sockaddr_equal(&HTAB_ENTRY(l, udp_peer_t, link)->base.addr, addr);
}

static udp_peer_t *peer_get(udp_listener_t *u, const struct sockaddr_storage *a, socklen_t len)
{
    uint64_t h = sockaddr_hash(a);
    htab_link_t *found = htab_find(&u->peers, h, peer_has_addr, a);
    if (found)
        return HTAB_ENTRY(found, udp_peer_t, link);
    if (htab_count(&u->peers) >= u->cfg.max_peers) {
        u->stats.dropped_peer_cap++;
        return NULL;
    }
    udp_peer_t *p = xcalloc(1, sizeof *p);
    p->base.ops = &udp_ops;
    p->base.kind = TRANSPORT_UDP;
    p->base.refcnt = 1; /* the table's */
    memcpy(&p->base.addr, a, len);
    p->base.addr_len = len;
    p->owner = u;
    htab_insert(&u->peers, &p->link, h);
    return p;
}

static void on_readable(loop_t *loop, int fd, uint32_t events, void *arg)
{
    udp_listener_t *u = arg;
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    /* Bounded work per wake-up so timers and the mailbox get their turn under load. */
    for (int round = 0; round < 8; round++) {
        for (int i = 0; i < BATCH; i++) {
            iov[i] = (struct iovec){.iov_base = u->bufs[i], .iov_len = MAX_DGRAM};
            msgs[i].msg_hdr = (struct msghdr){.msg_name = &u->addrs[i],
                                              .msg_namelen = sizeof u->addrs[i],
                                              .msg_iov = &iov[i],
                                              .msg_iovlen = 1};
            msgs[i].msg_len = 0;
        }
        /* MSG_TRUNC: msg_len is the datagram's true size even when it did not fit. */
        int n = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT | MSG_TRUNC, NULL);
        if (n <= 0)
            return;
        int64_t now = loop_now_ms(loop);
        for (int i = 0; i < n; i++) {
            u->stats.datagrams_in++;
            /* A datagram longer than our buffer arrives cut to MAX_DGRAM bytes (RFC 7252 §4.6
             * says messages must fit the path MTU anyway): the sink may answer it from its
             * first bytes (CoAP: 4.13), it never parses it as a whole. */
            size_t full = msgs[i].msg_len;
            bool cut = full > MAX_DGRAM || (msgs[i].msg_hdr.msg_flags & MSG_TRUNC);
            if (cut) {
                u->stats.oversize++;
                if (!u->sink.oversize)
                    continue;
            }
            udp_peer_t *p = peer_get(u, &u->addrs[i], msgs[i].msg_hdr.msg_namelen);
            if (!p)
                continue;
            p->last_seen_ms = now;
            transport_peer_ref(&p->base);
            if (cut)
                u->sink.oversize(u->sink.ctx, &p->base, u->bufs[i], MAX_DGRAM, full);
            else
                u->sink.input(u->sink.ctx, &p->base, u->bufs[i], full);
            transport_peer_unref(&p->base);
        }
        if (n < BATCH)
            return;
    }
}

static void on_sweep(loop_t *loop, void *arg)
{
    udp_listener_t *u = arg;
    int64_t now = loop_now_ms(loop);
    htab_iter_t it;
    for (htab_link_t *l = htab_iter_first(&it, &u->peers); l; l = htab_iter_next(&it)) {
        udp_peer_t *p = HTAB_ENTRY(l, udp_peer_t, link);
        if (p->base.refcnt == 1 && now - p->last_seen_ms >= u->cfg.idle_peer_ms) {
            htab_remove(&u->peers, l);
            transport_peer_unref(&p->base);
        }
    }
    loop_timer_arm(loop, &u->sweep, SWEEP_MS);
}

udp_listener_t *udp_listener_new(loop_t *loop, const transport_sink_t *sink, const udp_cfg_t *cfg,
                                 char err[static ERR_LEN])
{
    int fd = sockaddr_udp_bind(cfg->bind_addr, cfg->port, cfg->socket_buffer, "CoAP", err);
    if (fd < 0)
        return NULL;
    udp_listener_t *u = xcalloc(1, sizeof *u);
    u->loop = loop;
    u->sink = *sink;
    u->cfg = *cfg;
    u->fd = fd;
    u->port = sockaddr_local_port(fd);
    htab_init(&u->peers, 1024);
    outq_init(&u->out, OUT_BATCH, MAX_DGRAM);
    int rc = loop_fd_add(loop, fd, 0x001 /* EPOLLIN */, on_readable, u);
    if (rc != 0) {
        snprintf(err, ERR_LEN, "loop_fd_add: %s", strerror(-rc));
        close(fd);
        outq_fini(&u->out);
        free(u);
        return NULL;
    }
    loop_timer_init(&u->sweep, on_sweep, u);
    loop_timer_arm(loop, &u->sweep, SWEEP_MS);
    if (loop_flush_add(loop, on_flush, u) != 0) {
        snprintf(err, ERR_LEN, "udp: too many flush hooks on one loop");
        udp_listener_free(u);
        return NULL;
    }
    return u;
}

int udp_listener_port(const udp_listener_t *u)
{
    return u->port;
}

void udp_listener_free(udp_listener_t *u)
{
    if (!u)
        return;
    loop_timer_cancel(u->loop, &u->sweep);
    loop_flush_del(u->loop, on_flush, u);
    flush_out(u); /* replies queued in this iteration still go out */
    loop_fd_del(u->loop, u->fd);
    close(u->fd);
    outq_fini(&u->out);
    htab_iter_t it;
    for (htab_link_t *l = htab_iter_first(&it, &u->peers); l; l = htab_iter_next(&it)) {
        udp_peer_t *p = HTAB_ENTRY(l, udp_peer_t, link);
        htab_remove(&u->peers, l);
        p->base.closed = true;
        p->owner = NULL;
        u->sink.closed(u->sink.ctx, &p->base);
        transport_peer_unref(&p->base);
    }
    htab_fini(&u->peers);
    free(u);
}

void udp_listener_get_stats(const udp_listener_t *u, udp_stats_t *out)
{
    *out = u->stats;
    out->peers = htab_count(&u->peers);
}
