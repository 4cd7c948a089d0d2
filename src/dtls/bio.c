/* bio.c — the datagram BIO between OpenSSL and the shard's one UDP socket.
 *
 * Reads return the datagram the listener is feeding right now (one datagram, once) and
 * otherwise "retry": OpenSSL never blocks and never sees a second peer's bytes. Writes are
 * sent at once with sendto() to the peer's address, one BIO write = one datagram, which is
 * what DTLS expects from a datagram BIO. No buffering, so nothing per peer but this struct.
 * The MTU is set by the caller (DTLS_set_link_mtu with SSL_OP_NO_QUERY_MTU) and is the link's
 * MTU, an IP packet's size, as ThingsBoard's (Californium's) max_transmission_unit: this BIO
 * reports the IP + UDP headers to the peer (28 bytes for IPv4, 48 for IPv6) as the overhead,
 * so a DTLS datagram is at most MTU - 28 (or - 48) bytes and no packet exceeds the link MTU
 * (reliability.md D6: with 576, at most 548 bytes of UDP payload to an IPv4 peer).
 *
 * Packing: OpenSSL 3.0 writes each handshake record as its own datagram (a full handshake's
 * server flight ServerHello..ServerHelloDone is 5 sendto() calls, each ~4-5 us of CPU on
 * loopback). While the listener feeds a datagram (dtls__bio_batch_begin/_end around it),
 * handshake, change_cipher_spec and alert records for one address are collected into one
 * datagram of at most the configured MTU less that overhead (RFC 6347 §4.1.1 allows several records per
 * datagram) and sent when the next record does not fit, goes elsewhere, is application data,
 * OpenSSL flushes (it does at the end of each flight), or the batch ends. Application data is
 * never held back. Outside a batch (timer retransmissions, sends from other callbacks)
 * every write is sent at once, as before. The pending datagram is per thread (one shard is
 * one thread) and holds copies, so freeing an SSL with output pending is safe.
 */
#include "dtls/dtls_int.h"

#include "core/err.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static BIO_METHOD *method;
static int method_type;
static pthread_once_t method_once = PTHREAD_ONCE_INIT;

static _Thread_local struct {
    bool on;    /* inside dtls__bio_batch_begin/_end */
    size_t mtu; /* the link MTU: datagrams built are at most mtu - dtls__bio_overhead() */
    int fd;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    size_t len; /* bytes pending in buf; 0: nothing */
    uint8_t buf[DTLS_MAX_DGRAM];
} tx;

static void send_dgram(int fd, const void *p, size_t len, const struct sockaddr_storage *a,
                       socklen_t alen)
{
    /* A datagram the kernel refuses (full buffer, unreachable) counts as lost on the wire;
     * DTLS retransmission or the CoAP layer deals with loss. Reporting an error here would
     * instead make OpenSSL treat the session as broken. */
    ssize_t n = sendto(fd, p, len, MSG_DONTWAIT, (const struct sockaddr *)a, alen);
    (void)n;
}

size_t dtls__bio_overhead(const struct sockaddr_storage *a)
{
    if (a->ss_family != AF_INET6)
        return 28; /* IPv4 20 + UDP 8 */
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)a;
    return IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr) ? 28 : 48; /* IPv6 40 + UDP 8 */
}

static void tx_flush(void)
{
    if (tx.len > 0)
        send_dgram(tx.fd, tx.buf, tx.len, &tx.addr, tx.addr_len);
    tx.len = 0;
}

void dtls__bio_batch_begin(size_t mtu)
{
    tx_flush();
    tx.on = true;
    tx.mtu = mtu < sizeof tx.buf ? mtu : sizeof tx.buf;
}

void dtls__bio_batch_end(void)
{
    tx_flush();
    tx.on = false;
}

/* Queues one write into the pending datagram if it may wait; false: send it now. type: the
 * content type OpenSSL gave the (first) record: 23 is application data. */
static bool tx_pack(const dtls_bio_t *d, const uint8_t *p, size_t len, uint8_t type)
{
    if (!tx.on || type == 23)
        return false;
    size_t cap = tx.mtu - dtls__bio_overhead(&d->addr);
    if (len > cap)
        return false;
    if (tx.len > 0 && (tx.fd != d->fd || tx.addr_len != d->addr_len ||
                       memcmp(&tx.addr, &d->addr, d->addr_len) != 0 || tx.len + len > cap))
        tx_flush();
    if (tx.len == 0) {
        tx.fd = d->fd;
        memcpy(&tx.addr, &d->addr, d->addr_len);
        tx.addr_len = d->addr_len;
    }
    memcpy(tx.buf + tx.len, p, len);
    tx.len += len;
    return true;
}

static int b_write(BIO *b, const char *p, int len)
{
    dtls_bio_t *d = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    /* CID records are a few bytes longer than OpenSSL's; each record grows by at most
     * DTLS_CID_MAX + 1, and a datagram holds far fewer records than that many bytes. */
    static _Thread_local uint8_t wbuf[2 * DTLS_MAX_DGRAM];
    const uint8_t *out = (const uint8_t *)p;
    size_t out_len = (size_t)len;
    size_t w = d->w_rewrite ? d->w_rewrite(d->w_arg, out, out_len, wbuf, sizeof wbuf) : 0;
    if (w > 0) {
        out = wbuf;
        out_len = w;
    }
    if (d->fd >= 0 && d->addr_len <= sizeof d->addr && !tx_pack(d, out, out_len, (uint8_t)p[0])) {
        tx_flush(); /* what was queued before goes first */
        send_dgram(d->fd, out, out_len, &d->addr, d->addr_len);
    }
    if (d->datagrams_out)
        (*d->datagrams_out)++;
    /* Our own output, so trusted: note where OpenSSL's epoch-1 sequence numbers got to. */
    const uint8_t *q = (const uint8_t *)p;
    size_t left = (size_t)len;
    dtls_rec_t r;
    ssize_t n;
    while (left > 0 && (n = dtls__rec_parse(q, left, &r)) > 0) {
        if (r.epoch == 1 && (!d->w_epoch1 || r.seq >= d->w_next_seq)) {
            d->w_next_seq = r.seq + 1;
            d->w_epoch1 = true;
        }
        q += n;
        left -= (size_t)n;
    }
    return len;
}

static int b_read(BIO *b, char *p, int cap)
{
    dtls_bio_t *d = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!d->in || cap <= 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    /* A datagram larger than OpenSSL's buffer is truncated, like recv() does; the record
     * layer then rejects it. */
    size_t n = d->in_len < (size_t)cap ? d->in_len : (size_t)cap;
    memcpy(p, d->in, n);
    d->in = NULL;
    d->in_len = 0;
    return (int)n;
}

static int b_puts(BIO *b, const char *s)
{
    return b_write(b, s, (int)strlen(s));
}

static long b_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    dtls_bio_t *d = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        tx_flush(); /* OpenSSL ends each flight and each alert with a flush */
        return 1;
    case BIO_CTRL_DGRAM_SET_NEXT_TIMEOUT:
    case BIO_CTRL_DGRAM_SET_PEER:
    case BIO_CTRL_DGRAM_SET_CONNECTED:
        return 1;
    case BIO_CTRL_PENDING:
        return d->in ? (long)d->in_len : 0;
    case BIO_CTRL_WPENDING:
        return 0;
    case BIO_CTRL_DGRAM_GET_PEER:
        /* DTLSv1_listen asks for the client address; ours is in the state already. */
        return 0;
    case BIO_CTRL_DGRAM_GET_MTU_OVERHEAD:
        /* OpenSSL asks when it first sizes a flight, after the peer's address is set. */
        return (long)dtls__bio_overhead(&d->addr);
    case BIO_CTRL_DGRAM_QUERY_MTU:
    case BIO_CTRL_DGRAM_GET_FALLBACK_MTU:
    case BIO_CTRL_DGRAM_MTU_EXCEEDED:
        return 0;
    default:
        (void)num;
        (void)ptr;
        return 0;
    }
}

static int b_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int b_destroy(BIO *b)
{
    dtls_bio_t *d = BIO_get_data(b);
    free(d);
    BIO_set_data(b, NULL);
    return 1;
}

static void make_method(void)
{
    method_type = BIO_get_new_index() | BIO_TYPE_SOURCE_SINK;
    method = BIO_meth_new(method_type, "coaphub-dgram");
    ASSERT(method != NULL);
    BIO_meth_set_write(method, b_write);
    BIO_meth_set_read(method, b_read);
    BIO_meth_set_puts(method, b_puts);
    BIO_meth_set_ctrl(method, b_ctrl);
    BIO_meth_set_create(method, b_create);
    BIO_meth_set_destroy(method, b_destroy);
}

BIO *dtls__bio_new(int fd, dtls_cookie_t *cookie, unsigned initial_timeout_us,
                   uint64_t *datagrams_out)
{
    pthread_once(&method_once, make_method);
    BIO *b = BIO_new(method);
    ASSERT(b != NULL);
    dtls_bio_t *d = xcalloc(1, sizeof *d);
    d->fd = fd;
    d->cookie = cookie;
    d->initial_timeout_us = initial_timeout_us;
    d->datagrams_out = datagrams_out;
    BIO_set_data(b, d);
    return b;
}

dtls_bio_t *dtls__bio_state(BIO *b)
{
    return BIO_get_data(b);
}

dtls_bio_t *dtls__ssl_bio(SSL *ssl)
{
    BIO *b = SSL_get_rbio(ssl);
    if (!b || !method || BIO_method_type(b) != method_type)
        return NULL;
    return BIO_get_data(b);
}

unsigned int dtls__timer_cb(SSL *ssl, unsigned int timer_us)
{
    enum { MAX_US = 60 * 1000 * 1000 };
    if (timer_us == 0) {
        dtls_bio_t *d = dtls__ssl_bio(ssl);
        return d && d->initial_timeout_us ? d->initial_timeout_us : 1000 * 1000;
    }
    /* RFC 6347 §4.2.4.1: double on each retransmission, up to 60 s. */
    return timer_us >= MAX_US / 2 ? MAX_US : timer_us * 2;
}
