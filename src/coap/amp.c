/* amp.c — the amplification guard of plain UDP (RFC 7252 §11.3, RFC 9175, RFC 7641 §7).
 *
 * A UDP source address can be forged, so a reply larger than its request turns the server
 * into a reflector against whoever owns that address. Until an address proves that it
 * receives what we send it, a reply is at most cfg.amp_factor (3, QUIC's factor, RFC 9000
 * §8) times the bytes of the request that caused it; response.c shortens what would be
 * larger (Block2 at a small SZX for a body, a trimmed diagnostic for an error, 4.01 + Echo
 * when nothing else fits) and adds an Echo option. An address is verified when
 *   - a request carries an Echo value that we issued to that address and port (RFC 9175
 *     §2.4: the value is stateless, made and checked by the application's provider), or
 *   - it acknowledges (or resets) a CON we sent it: CON MIDs to unverified addresses are
 *     random (coap__amp_con_mid), so an off-path forger cannot answer for its victim except
 *     by guessing one of 65,536 values.
 * DTLS peers are never limited: the handshake cookie already proved the address.
 *
 * The verified addresses are a table of at most cfg.amp_verified_max entries (address and
 * port, about 80 bytes each), least recently verified evicted first, each valid for
 * cfg.amp_verified_ms after its last proof. The table is per engine, i.e. per shard: the
 * kernel's SO_REUSEPORT hash sends one address and port to the same shard for good.
 *
 * Cost on the steady path: a plain-UDP request does one keyed-hash lookup here (its
 * exchange's budget); verified peers' replies are then never rebuilt.
 */
#include "coap/coap_int.h"

#include "core/hash.h"
#include "core/xmalloc.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

typedef struct coap_amp_addr {
    htab_link_t link; /* in coap_engine.amp_addrs */
    coap_link_t lru;  /* in coap_engine.amp_lru */
    int64_t expires_ms;
    uint8_t key_len;
    uint8_t key[20];
} coap_amp_addr_t;

/* family (1) | port (2) | address (4 or 16): what a verification binds to; 0 for an
 * address of another family (never limited: there is nothing to key it by). */
static size_t addr_key(const transport_peer_t *tp, uint8_t out[static 20])
{
    const struct sockaddr_storage *a = &tp->addr;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)(const void *)a;
        out[0] = 4;
        memcpy(out + 1, &s->sin_port, 2);
        memcpy(out + 3, &s->sin_addr, 4);
        return 7;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)(const void *)a;
        out[0] = 6;
        memcpy(out + 1, &s->sin6_port, 2);
        memcpy(out + 3, &s->sin6_addr, 16);
        return 19;
    }
    return 0;
}

static bool addr_eq(const htab_link_t *l, const void *key)
{
    const coap_amp_addr_t *a = HTAB_ENTRY(l, coap_amp_addr_t, link);
    return htab_bytes_equal(key, a->key, a->key_len);
}

static void addr_free(coap_engine_t *e, coap_amp_addr_t *a)
{
    htab_remove(&e->amp_addrs, &a->link);
    coap_list_del(&a->lru);
    free(a);
}

/* The live entry of ps's address, or NULL (an expired one is freed on the way). */
static coap_amp_addr_t *addr_find(coap_engine_t *e, const uint8_t *key, size_t len, uint64_t hash,
                                  int64_t now)
{
    htab_bytes_t k = {key, len};
    htab_link_t *l = htab_find(&e->amp_addrs, hash, addr_eq, &k);
    if (!l)
        return NULL;
    coap_amp_addr_t *a = HTAB_ENTRY(l, coap_amp_addr_t, link);
    if (a->expires_ms <= now) {
        addr_free(e, a);
        return NULL;
    }
    return a;
}

static bool guarded(const coap_peer_t *ps)
{
    return ps->e->cfg.amp_factor > 0 && ps->tp->kind == TRANSPORT_UDP;
}

static bool verified(coap_peer_t *ps)
{
    coap_engine_t *e = ps->e;
    uint8_t key[20];
    size_t len = addr_key(ps->tp, key);
    if (len == 0)
        return true;
    if (!e->amp_addrs.n)
        return false;
    return addr_find(e, key, len, hash_bytes(key, len), loop_now_ms(e->loop)) != NULL;
}

size_t coap__amp_budget(coap_peer_t *ps, size_t req_len)
{
    if (!guarded(ps) || verified(ps))
        return 0;
    return (size_t)ps->e->cfg.amp_factor * req_len;
}

void coap__amp_proven(coap_peer_t *ps, bool by_echo)
{
    coap_engine_t *e = ps->e;
    if (!guarded(ps) || e->cfg.amp_verified_max == 0)
        return;
    uint8_t key[20];
    size_t len = addr_key(ps->tp, key);
    if (len == 0)
        return;
    int64_t now = loop_now_ms(e->loop);
    uint64_t hash = hash_bytes(key, len);
    coap_amp_addr_t *a = addr_find(e, key, len, hash, now);
    if (!a) {
        /* At the cap the least recently verified address goes: at worst it gets small
         * replies again until its next proof. */
        while (e->amp_addrs.n >= e->cfg.amp_verified_max)
            addr_free(e, COAP_CONTAINER(e->amp_lru.next, coap_amp_addr_t, lru));
        a = xcalloc(1, sizeof *a);
        a->key_len = (uint8_t)len;
        memcpy(a->key, key, len);
        htab_insert(&e->amp_addrs, &a->link, hash);
        coap_list_init(&a->lru);
    } else {
        coap_list_del(&a->lru);
    }
    coap_list_push(&e->amp_lru, &a->lru);
    a->expires_ms = now + (e->cfg.amp_verified_ms > 0 ? e->cfg.amp_verified_ms : 1);
    if (by_echo)
        e->stats.amp_verified_echo++;
    else
        e->stats.amp_verified_ack++;
}

void coap__amp_echo_input(coap_peer_t *ps, const coap_pdu_t *pdu)
{
    coap_engine_t *e = ps->e;
    if (!e->echo.check || !guarded(ps))
        return;
    int i = coap_pdu_opt_find(pdu, COAP_OPT_ECHO, 0);
    /* A client may repeat the value in every request: once verified, no HMAC is spent on it
     * (the verification is renewed by the next proof after it expires). */
    if (i < 0 || coap__amp_budget(ps, 1) == 0)
        return;
    size_t len;
    const uint8_t *v = coap_pdu_opt_value(pdu, (size_t)i, &len);
    /* RFC 9175 §2.2: 1..40 bytes; anything else is not ours and is ignored (elective). */
    if (len < 1 || len > COAP_ECHO_MAX)
        return;
    if (e->echo.check(e->echo.ctx, ps->tp, loop_now_ms(e->loop), v, len))
        coap__amp_proven(ps, true);
}

size_t coap__amp_echo_make(coap_peer_t *ps, uint8_t *out)
{
    coap_engine_t *e = ps->e;
    if (!e->echo.make)
        return 0;
    size_t n = e->echo.make(e->echo.ctx, ps->tp, loop_now_ms(e->loop), out, COAP_ECHO_MAX);
    return n <= COAP_ECHO_MAX ? n : 0;
}

uint16_t coap__amp_con_mid(coap_peer_t *ps)
{
    if (coap__amp_budget(ps, 1) == 0)
        return coap__next_mid(ps->e);
    for (;;) {
        uint32_t r;
        if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
            r = (uint32_t)(coap__rand01(ps->e) * 4294967296.0);
        uint16_t mid = (uint16_t)(r % 65000u); /* server MIDs stay below 65000, as the counter's */
        if (!coap__con_in_flight(ps, mid))
            return mid;
    }
}

/* Options an answer sliced by the application may carry besides the payload: ETag (9),
 * Observe (4), Content-Format (3), Max-Age (5), Block2 (4), Block1 (4), Size2 (5), Size1
 * (5), the payload marker (1). (Such answers carry no Echo: the block size is fixed before
 * the answer is built.) */
enum { EXT_OVERHEAD = 9 + 4 + 3 + 5 + 4 + 4 + 5 + 5 + 1 };

int coap__amp_ext_szx(const coap_exchange_t *x)
{
    if (!x->amp_budget)
        return -1;
    size_t fixed = 4 + (size_t)x->tkl + EXT_OVERHEAD;
    for (int s = 6; s > 0; s--)
        if (fixed + coap_block_size((uint8_t)s) <= x->amp_budget)
            return s;
    return 0; /* the smallest block; response.c falls back to 4.01 if even that is too big */
}

void coap_engine_set_echo(coap_engine_t *e, const coap_echo_ops_t *echo)
{
    if (echo)
        e->echo = *echo;
    else
        memset(&e->echo, 0, sizeof e->echo);
}

bool coap_engine_addr_verified(coap_engine_t *e, const transport_peer_t *peer)
{
    uint8_t key[20];
    size_t len = addr_key(peer, key);
    return len && addr_find(e, key, len, hash_bytes(key, len), loop_now_ms(e->loop)) != NULL;
}

void coap__amp_fini(coap_engine_t *e)
{
    while (!coap_list_empty(&e->amp_lru))
        addr_free(e, COAP_CONTAINER(e->amp_lru.next, coap_amp_addr_t, lru));
    htab_fini(&e->amp_addrs);
}
