/* ptab.c — the listener's peer tables: by remote address (one core/htab each for handshakes
 * and sessions) and by age (intrusive lists, oldest first).
 *
 * The bottom of the peer bookkeeping: listener.c, peer.c and compact.c all file peers here,
 * and this file calls none of them. Addresses are chosen by whoever sends a datagram, so the
 * table uses the keyed sockaddr_hash; entries exist only after a valid cookie, and the
 * tables are capped by the listener (max_handshakes, max_sessions).
 */
#include "dtls/dtls_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "core/hash.h"
#include "core/sockaddr.h"

#include <string.h>

static bool peer_has_addr(const htab_link_t *l, const void *addr)
{
    return sockaddr_equal(&HTAB_ENTRY(l, dtls_peer_t, hlink)->base.addr, addr);
}

dtls_peer_t *dtls__ptab_find_hashed(const htab_t *t, const struct sockaddr_storage *a,
                                    uint64_t hash)
{
    htab_link_t *l = htab_find(t, hash, peer_has_addr, a);
    return l ? HTAB_ENTRY(l, dtls_peer_t, hlink) : NULL;
}

dtls_peer_t *dtls__ptab_find(const htab_t *t, const struct sockaddr_storage *a)
{
    return dtls__ptab_find_hashed(t, a, sockaddr_hash(a));
}

void dtls__ptab_insert(htab_t *t, dtls_peer_t *p)
{
    htab_insert(t, &p->hlink, sockaddr_hash(&p->base.addr));
    p->indexed = true;
}

void dtls__ptab_remove(htab_t *t, dtls_peer_t *p)
{
    if (p->indexed)
        htab_remove(t, &p->hlink);
    p->indexed = false;
}

dtls_peer_t *dtls__ptab_move(htab_t *est, dtls_peer_t *p, const struct sockaddr_storage *a,
                             socklen_t alen)
{
    dtls_peer_t *other = dtls__ptab_find(est, a);
    if (other == p)
        return NULL;
    if (other)
        dtls__ptab_remove(est, other);
    dtls__ptab_remove(est, p);
    memset(&p->base.addr, 0, sizeof p->base.addr);
    memcpy(&p->base.addr, a, alen);
    p->base.addr_len = alen;
    dtls__ptab_insert(est, p);
    return other;
}

/* CIDs are chosen at random by us, but a client can still send any bytes: keyed hash. */
static bool peer_has_cid(const htab_link_t *l, const void *key)
{
    const dtls_peer_t *p = HTAB_ENTRY(l, dtls_peer_t, clink);
    return htab_bytes_equal(key, p->cid, p->cid_len);
}

dtls_peer_t *dtls__ptab_find_cid(const htab_t *t, const uint8_t *cid, size_t len)
{
    htab_bytes_t k = {cid, len};
    htab_link_t *l = htab_find(t, hash_bytes(cid, len), peer_has_cid, &k);
    return l ? HTAB_ENTRY(l, dtls_peer_t, clink) : NULL;
}

void dtls__ptab_insert_cid(htab_t *t, dtls_peer_t *p)
{
    htab_insert(t, &p->clink, hash_bytes(p->cid, p->cid_len));
}

void dtls__ptab_remove_cid(htab_t *t, dtls_peer_t *p)
{
    if (p->cid_len == 0)
        return;
    htab_remove(t, &p->clink);
    p->cid_len = 0;
}

void dtls__plist_append(dtls_plist_t *l, dtls_peer_t *p)
{
    p->next = NULL;
    p->prev = l->tail;
    if (l->tail)
        l->tail->next = p;
    else
        l->head = p;
    l->tail = p;
}

void dtls__plist_remove(dtls_plist_t *l, dtls_peer_t *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        l->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        l->tail = p->prev;
    p->prev = p->next = NULL;
}

unsigned dtls__shard_of(const struct sockaddr_storage *a, unsigned shards)
{
    if (shards <= 1)
        return 0;
    uint32_t h = 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)a;
        h = ntohl(v4->sin_addr.s_addr) ^ ntohs(v4->sin_port);
    } else if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)a;
        const uint8_t *b = v6->sin6_addr.s6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
            /* The datagram itself is IPv4: the program reads an IPv4 header. */
            h = ((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15]) ^
                ntohs(v6->sin6_port);
        } else {
            for (int i = 0; i < 16; i += 4)
                h ^= (uint32_t)b[i] << 24 | (uint32_t)b[i + 1] << 16 | (uint32_t)b[i + 2] << 8 |
                     b[i + 3];
            h ^= ntohs(v6->sin6_port);
        }
    }
    return ((uint32_t)(h * DTLS_SHARD_MIX) >> 16) % shards;
}
