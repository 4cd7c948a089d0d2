/* transport.h — the datagram peer that the CoAP engine talks through, implemented by
 * src/udp (plain CoAP) and src/dtls (CoAP over DTLS).
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

/* Formats the peer address as "ip:port" (IPv6 as "[ip]:port") into buf. Returns buf. */
const char *transport_peer_addr_str(const transport_peer_t *p, char *buf, size_t cap);

#endif
