/* udp.h — the plain CoAP listener of one shard (implements core/transport.h over UDP).
 *
 * One socket per shard, bound with SO_REUSEPORT so the kernel hashes each source address
 * to one shard for good. A peer object per source address is kept while the CoAP engine
 * holds state for it or it sent something recently; the table is capped. A datagram larger
 * than UDP_MAX_DGRAM bytes reaches the sink's oversize hook with its first bytes.
 * Runs on the shard's loop thread.
 */
#ifndef COAPHUB_UDP_UDP_H
#define COAPHUB_UDP_UDP_H

#include "core/err.h"
#include "core/loop.h"
#include "core/stats.h"
#include "core/transport.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct udp_listener udp_listener_t;

/* The receive buffer per datagram: 1600 bytes, above the 1280-byte IPv6 minimum MTU and a
 * 1500-byte Ethernet frame, which RFC 7252 §4.6 asks CoAP messages to fit. */
#define UDP_MAX_DGRAM 1600

typedef struct udp_cfg {
    const char *bind_addr; /* IPv4 or IPv6 literal; "::" listens on both families */
    int port;
    size_t max_peers;      /* cap on tracked source addresses (default 200000) */
    int idle_peer_ms;      /* forget a peer without engine state after this (default 60000) */
    int socket_buffer;     /* SO_RCVBUF/SO_SNDBUF bytes (default 16 MiB, as DTLS) */
} udp_cfg_t;

void udp_cfg_default(udp_cfg_t *cfg);

/* Binds and starts delivering datagrams to sink (copied). NULL and err filled on failure. */
udp_listener_t *udp_listener_new(loop_t *loop, const transport_sink_t *sink, const udp_cfg_t *cfg,
                                 char err[static ERR_LEN]);
/* The port actually bound (useful with port 0). */
int udp_listener_port(const udp_listener_t *u);
/* Closes the socket and releases every peer (telling the sink first).
 * udp_listener_free(NULL) does nothing. */
void udp_listener_free(udp_listener_t *u);

/* Counters of a listener (core/stats.h: field, /metrics family, type, labels, help). */
#define UDP_STATS(X)                                                                               \
    X(datagrams_in, "udp_datagrams_received_total", "counter", NULL,                               \
      "Plain CoAP datagrams received.")                                                            \
    X(datagrams_out, "udp_datagrams_sent_total", "counter", NULL, "Plain CoAP datagrams sent.")    \
    X(peers, "udp_peers", "gauge", NULL, "Plain CoAP peer addresses tracked.")                     \
    X(send_errors, NULL, "counter", NULL, "datagrams the kernel refused to send")                  \
    X(dropped_peer_cap, NULL, "counter", NULL, "datagrams dropped because max_peers were tracked") \
    X(oversize, "udp_oversize_datagrams_total", "counter", NULL,                                   \
      "Plain CoAP datagrams larger than the 1600-byte receive buffer.")
typedef struct udp_stats {
    UDP_STATS(STATS_FIELD)
} udp_stats_t;
void udp_listener_get_stats(const udp_listener_t *u, udp_stats_t *out);

#endif
