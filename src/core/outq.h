/* outq.h — datagrams waiting to leave one socket together, with one sendmmsg.
 *
 * Why: a group commit acknowledges hundreds of requests in one loop iteration, and a system
 * call per datagram was measurable (performance pass 2). The transports queue their
 * datagrams while the loop runs and flush at the end of the iteration (loop_flush_add).
 * Datagrams are copied in; the queue never holds pointers to peers.
 */
#ifndef COAPHUB_CORE_OUTQ_H
#define COAPHUB_CORE_OUTQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct outq {
    size_t n, cap, slot; /* queued, slots, bytes per slot */
    uint8_t *data;       /* cap * slot bytes */
    size_t *len;
    socklen_t *addr_len;
    struct sockaddr_storage *addr;
} outq_t;

/* cap datagrams of at most slot bytes each. */
void outq_init(outq_t *q, size_t cap, size_t slot);
void outq_fini(outq_t *q);
/* Queues a copy (sending the queue first when it is full): 0, or -EMSGSIZE when len does not
 * fit a slot — then the caller sends it itself, after outq_flush to keep the order. */
int outq_push(outq_t *q, int fd, const uint8_t *p, size_t len, const struct sockaddr *a,
              socklen_t alen, uint64_t *sent, uint64_t *failed);
/* Sends everything queued with sendmmsg (MSG_DONTWAIT). A datagram the kernel refuses is
 * skipped and counted in *failed, like a lost one: CoAP retransmits. */
void outq_flush(outq_t *q, int fd, uint64_t *sent, uint64_t *failed);

#endif
