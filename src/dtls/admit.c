/* admit.c — handshakes in progress counted by source address, for the per-address cap.
 *
 * A handshake exists only after a valid cookie, so its address is one the client can
 * receive on: counting by address is safe against spoofing (a spoofer cannot charge a
 * victim's address). The unit is what one machine or one site holds cheaply: an IPv4
 * address (ports do not count, any client picks as many as it likes) and an IPv6 /64 (the
 * smallest prefix a site is given; one host can use all of it). An IPv4-mapped IPv6 address
 * (a dual-stack socket) counts as its IPv4 address.
 *
 * A leaf file: peer.c files each handshake here when it enters the handshake table and
 * takes it out when it leaves; listener.c reads the counts. One entry per address with at
 * least one handshake, so the table holds at most max_handshakes entries.
 */
#include "dtls/dtls_int.h"

#include "core/hash.h"
#include "core/sockaddr.h"
#include "core/xmalloc.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

struct dtls_admit_addr {
    htab_link_t hlink;
    uint8_t key[SOCKADDR_PREFIX_KEY_MAX]; /* sockaddr_prefix_key: IPv4 address or IPv6 /64 */
    uint8_t key_len;
    unsigned n; /* handshakes in progress from this address */
};

static bool addr_has_key(const htab_link_t *l, const void *k)
{
    const dtls_admit_addr_t *e = HTAB_ENTRY(l, dtls_admit_addr_t, hlink);
    return htab_bytes_equal(k, e->key, e->key_len);
}

static dtls_admit_addr_t *find(const htab_t *t, const uint8_t *key, size_t len, uint64_t h)
{
    htab_bytes_t k = {key, len};
    htab_link_t *l = htab_find(t, h, addr_has_key, &k);
    return l ? HTAB_ENTRY(l, dtls_admit_addr_t, hlink) : NULL;
}

unsigned dtls__admit_count(const htab_t *t, const struct sockaddr_storage *a)
{
    uint8_t key[SOCKADDR_PREFIX_KEY_MAX];
    size_t len = sockaddr_prefix_key(a, key);
    dtls_admit_addr_t *e = find(t, key, len, hash_bytes(key, len));
    return e ? e->n : 0;
}

unsigned dtls__admit_of(const dtls_peer_t *p)
{
    return p->admit ? p->admit->n : 0;
}

void dtls__admit_add(htab_t *t, dtls_peer_t *p)
{
    uint8_t key[SOCKADDR_PREFIX_KEY_MAX];
    size_t len = sockaddr_prefix_key(&p->base.addr, key);
    uint64_t h = hash_bytes(key, len);
    dtls_admit_addr_t *e = find(t, key, len, h);
    if (!e) {
        e = xcalloc(1, sizeof *e);
        memcpy(e->key, key, len);
        e->key_len = (uint8_t)len;
        htab_insert(t, &e->hlink, h);
    }
    e->n++;
    p->admit = e;
}

void dtls__admit_del(htab_t *t, dtls_peer_t *p)
{
    dtls_admit_addr_t *e = p->admit;
    if (!e)
        return;
    p->admit = NULL;
    if (--e->n == 0) {
        htab_remove(t, &e->hlink);
        free(e);
    }
}
