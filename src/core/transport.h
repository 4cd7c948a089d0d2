/* transport.h — the datagram peer that the CoAP engine talks through, implemented by
 * src/udp (plain CoAP) and src/dtls (CoAP over DTLS), and the sink they deliver to.
 *
 * Transports sit at the bottom of the module map: they know nothing of CoAP or devices.
 * What they receive goes to a transport_sink_t that src/app wires to the shard's CoAP
 * engine, so src/udp and src/dtls link only core (and OpenSSL) and are tested with a
 * recording sink.
 *
 * A transport_peer_t stands for one remote endpoint as the transport sees it: for UDP one
 * source address, for DTLS one established session. It is owned by its transport and
 * reference-counted: the engine holds a reference while it keeps state for the peer
 * (pending confirmable messages, observations, deduplication entries). The transport keeps
 * its own reference while the peer is live on the wire and drops it when the peer closes
 * (DTLS close_notify, eviction) after telling the engine through its close hook.
 *
 * All calls happen on the owning shard's loop thread.
 */
#ifndef COAPHUB_CORE_TRANSPORT_H
#define COAPHUB_CORE_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct transport_peer transport_peer_t;

typedef struct transport_ops {
    /* Sends one datagram to the peer (encrypting it for DTLS). Returns 0 or -errno; a send
     * that fails is treated by callers like a lost datagram. */
    int (*send)(transport_peer_t *peer, const uint8_t *p, size_t len);
    /* Frees the peer when its last reference is dropped. */
    void (*destroy)(transport_peer_t *peer);
} transport_ops_t;

typedef enum { TRANSPORT_UDP = 0, TRANSPORT_DTLS = 1 } transport_kind_t;

struct transport_peer {
    const transport_ops_t *ops;
    transport_kind_t kind;
    int refcnt;
    bool closed;                  /* the transport has closed it; sends are dropped */
    struct sockaddr_storage addr; /* current remote address */
    socklen_t addr_len;
    /* Device authenticated by the DTLS client certificate; 0 if none (plain UDP, or one-way
     * DTLS). Set by the transport, read by the device API. */
    int64_t cert_device_id;
    /* Owned by the CoAP engine; the transport never touches it. */
    void *engine_state;
};

static inline void transport_peer_ref(transport_peer_t *p) { p->refcnt++; }

static inline void transport_peer_unref(transport_peer_t *p)
{
    if (p && --p->refcnt == 0)
        p->ops->destroy(p);
}

static inline int transport_peer_send(transport_peer_t *p, const uint8_t *data, size_t len)
{
    return p->closed ? -1 : p->ops->send(p, data, len);
}

/* Where a transport delivers. Both calls run on the shard's loop thread, may re-enter the
 * transport (send, close) and must not free peer: they take a reference if they keep it. */
typedef struct transport_sink {
    /* A datagram arrived from peer (for DTLS: the plaintext of an authenticated record). The
     * bytes are valid only during the call. */
    void (*input)(void *ctx, transport_peer_t *peer, const uint8_t *p, size_t len);
    /* The transport closed peer (close_notify, eviction, shutdown): the receiver ends
     * whatever it keeps for it and drops its references. Called once per peer that was
     * handed to input (or might have been). */
    void (*closed)(void *ctx, transport_peer_t *peer);
    /* Optional (NULL: nothing kept across a restart). The transport saves peer's session to
     * resume it after a restart: the receiver describes what it keeps for peer that should
     * come back with it (observations) into out, at most cap bytes, in a format of its own.
     * Returns the bytes written (0: nothing). Shard thread, or after the shard stopped. */
    size_t (*save)(void *ctx, transport_peer_t *peer, uint8_t *out, size_t cap);
    /* Optional. A session saved by a previous run came back as peer (before its first
     * datagram is handed to input): the receiver re-creates what save described. */
    void (*restored)(void *ctx, transport_peer_t *peer, const uint8_t *blob, size_t len);
    /* Optional: a datagram from peer was larger than the transport's buffer. p holds its
     * first len bytes, full_len is its true size (so the receiver can answer "too large",
     * RFC 7252 §5.9.2.9, instead of the datagram vanishing). NULL: such datagrams are
     * dropped. */
    void (*oversize)(void *ctx, transport_peer_t *peer, const uint8_t *p, size_t len,
                     size_t full_len);
    void *ctx;
} transport_sink_t;

/* Formats the peer address as "ip:port" (IPv6 as "[ip]:port") into buf. Returns buf. */
const char *transport_peer_addr_str(const transport_peer_t *p, char *buf, size_t cap);

#endif
