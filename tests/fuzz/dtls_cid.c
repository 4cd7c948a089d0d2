/* dtls_cid.c — libFuzzer target for RFC 9146 Connection ID records: the listener's routing by
 * CID (listener.c), the parsing and opening of tls12_cid records (record.c), and the move of a
 * session to a new address (compact.c, peer.c, ptab.c), in a real listener with a compact CID
 * session (CID 0xc1d0c1d0) at address 1 and an ordinary compact session at address 2.
 *
 * Input: [suite:1] then datagrams, each [flags:1][len:2 big-endian][bytes:len] (len is cut to
 * what remains). (suite & 0x7f) % 6 picks the AEAD as in dtls_compact.c; suite bit 7 gives the
 * client a CID of its own. flags bits 1-2 pick the source
 * address (1, 2, 3 or 4). flags:
 *   bit 0 set: bytes are the content of a tls12_cid record sealed with the client's keys
 *              (content type 20 + bits 3-4, so the fuzzer gets past the tag), carrying our
 *              CID (bit 5 clear) or a CID with its last byte flipped (bit 5 set); bits 6-7
 *              move the client's sequence number back by that much (replays);
 *   bit 0 clear: bytes are sent as they are; with bit 3 set behind a tls12_cid header with
 *              our CID (so hostile bytes reach the record parser and the tag check); with
 *              bits 3-5 all set, the server sends bytes instead, and the client must open
 *              exactly them (with its CID when suite's bit 7 gave it one).
 * Invariants (abort otherwise): the CID session's address changes only to the address of a
 * datagram that carried an authentic record for it; a conversion for OpenSSL
 * (dtls__rl_cid_to_plain) of each authentic record opens to the same content.
 */
#include "dtls_fuzz_env.h"

#include "core/sockaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct {
    dtls_aead_alg_t alg;
    uint8_t tag;
} SUITES[] = {
    {DTLS_AEAD_AES128_GCM, 16}, {DTLS_AEAD_AES256_GCM, 16}, {DTLS_AEAD_AES128_CCM, 16},
    {DTLS_AEAD_AES128_CCM, 8},  {DTLS_AEAD_AES256_CCM, 8},  {DTLS_AEAD_CHACHA20, 16},
};
static const uint8_t CID[4] = {0xc1, 0xd0, 0xc1, 0xd0};

static struct sockaddr_storage addr(uint32_t host)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons(40000);
    a->sin_addr.s_addr = htonl(host);
    return ss;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int inited;
    if (!inited) {
        dtls_fuzz_init("cid");
        inited = 1;
    }
    if (size < 1)
        return 0;
    size_t suite = (data[0] & 0x7f) % (sizeof SUITES / sizeof SUITES[0]);
    bool client_cid = data[0] & 0x80; /* the client has a CID of its own: our records carry it */
    data++;
    size--;
    dtls_cfg_t cfg;
    dtls_cfg_default(&cfg);
    cfg.cid_len = sizeof CID;
    dtls_listener_t *l = dtls_fuzz_listener(&cfg, false); /* one for the run: dtls_fuzz_env.h */

    /* The keys of a suite are derived once (same master secret and randoms every time); each
     * input starts from a copy. */
    static dtls_rl_t keys[sizeof SUITES / sizeof SUITES[0]];
    static bool derived[sizeof SUITES / sizeof SUITES[0]];
    if (!derived[suite]) {
        uint8_t ms[48], cr[32], sr[32];
        memset(ms, 0x3c, sizeof ms);
        memset(cr, 0x1d, sizeof cr);
        memset(sr, 0x9e, sizeof sr);
        if (dtls__rl_derive(&keys[suite], SUITES[suite].alg, SUITES[suite].tag, EVP_sha256(), ms,
                            sizeof ms, cr, sr) != 0)
            abort();
        derived[suite] = true;
    }
    dtls_rl_t srv = keys[suite], cl, conv;
    dtls__rl_mirror(&srv, &cl);
    conv = srv; /* a second server view, for the conversion check */
    cl.w_seq = 2;
    struct sockaddr_storage addrs[4];
    for (int i = 0; i < 4; i++)
        addrs[i] = addr(0x7f000001u + (uint32_t)i);
    socklen_t alen = sizeof(struct sockaddr_in);
    dtls_peer_t *p = dtls__peer_new_compact(l, &addrs[0], alen, &srv);
    memcpy(p->cid, CID, sizeof CID);
    p->cid_len = sizeof CID;
    dtls__ptab_insert_cid(&l->cids, p);
    static const uint8_t PEER_CID[3] = {0x0c, 0x11, 0xe7};
    if (client_cid) {
        memcpy(p->peer_cid, PEER_CID, sizeof PEER_CID);
        p->peer_cid_len = sizeof PEER_CID;
    }
    transport_peer_ref(&p->base); /* stays readable after a close */
    dtls_rl_t other_rl = srv;
    dtls_peer_t *o = dtls__peer_new_compact(l, &addrs[1], alen, &other_rl);
    transport_peer_ref(&o->base);
    dtls_aead_ctx_t *a = dtls_fuzz_aead();

    static uint8_t buf[DTLS_MAX_DGRAM + 64], out[DTLS_MAX_DGRAM + 64], plain[DTLS_MAX_PLAIN];
    while (size >= 3) {
        uint8_t flags = data[0];
        size_t n = (size_t)data[1] << 8 | data[2];
        data += 3;
        size -= 3;
        if (n > size)
            n = size;
        if (n > DTLS_MAX_DGRAM - 64)
            n = DTLS_MAX_DGRAM - 64;
        const uint8_t *bytes = data;
        data += n;
        size -= n;
        const struct sockaddr_storage *from = &addrs[(flags >> 1) & 3];
        struct sockaddr_storage before = p->base.addr;
        bool authentic = false;
        size_t len = 0;
        if (flags & 1) {
            uint64_t back = flags >> 6;
            cl.w_seq -= back < cl.w_seq ? back : cl.w_seq;
            uint8_t cid[sizeof CID];
            memcpy(cid, CID, sizeof cid);
            if (flags & 0x20)
                cid[3] ^= 1;
            uint8_t type = (uint8_t)(20 + ((flags >> 3) & 3));
            ssize_t r = dtls__rl_seal_cid(&cl, a, type, cid, sizeof cid, bytes, n, buf, sizeof buf);
            if (r <= 0)
                continue;
            len = (size_t)r;
            authentic = !(flags & 0x20);
            /* The conversion OpenSSL would get opens to the same content. */
            dtls_rec_t rec, o2;
            uint8_t t = 0;
            if (dtls__rec_parse_cid(buf, len, sizeof CID, &rec) != (ssize_t)len)
                abort();
            ssize_t m = dtls__rl_cid_to_plain(&conv, a, &rec, &t, out, sizeof out);
            if (authentic && m > 0) {
                dtls_rl_t fresh = srv;
                fresh.r_any = false;
                fresh.uid = 0;
                if (t != type || dtls__rec_parse(out, (size_t)m, &o2) != m ||
                    dtls__rl_open(&fresh, a, &o2, plain, sizeof plain) != (ssize_t)n ||
                    memcmp(plain, bytes, n) != 0)
                    abort();
                dtls__rl_wipe(&fresh);
            }
        } else if ((flags & 0x38) == 0x38) {
            /* Server to client: what the client opens (with its CID if it has one) must be
             * what was sent. */
            if (n > 0 && !p->base.closed && dtls__compact_send(p, bytes, n) == 0) {
                dtls_rec_t rec;
                uint8_t t = 0;
                ssize_t rl = dtls__rec_parse_cid(l->out, sizeof l->out, p->peer_cid_len, &rec);
                ssize_t m = rl < 0 ? -1
                            : rec.type == DTLS_CT_CID
                                ? dtls__rl_open_cid(&cl, a, &rec, &t, plain, sizeof plain)
                                : dtls__rl_open(&cl, a, &rec, plain, sizeof plain);
                if ((rec.type == DTLS_CT_CID) != client_cid || m != (ssize_t)n ||
                    memcmp(plain, bytes, n) != 0 ||
                    (client_cid && memcmp(rec.cid, PEER_CID, sizeof PEER_CID) != 0))
                    abort();
            }
            continue;
        } else if (flags & 8) {
            static const uint8_t hdr[11] = {25, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9};
            memcpy(buf, hdr, sizeof hdr);
            memcpy(buf + sizeof hdr, CID, sizeof CID);
            memcpy(buf + sizeof hdr + sizeof CID, bytes, n);
            len = sizeof hdr + sizeof CID + n;
        } else {
            memcpy(buf, bytes, n);
            len = n;
        }
        dtls__listener_input(l, from, alen, buf, len);
        /* The session moves only where an authentic record for it came from. */
        if (!sockaddr_equal(&before, &p->base.addr) &&
            (!authentic || !sockaddr_equal(from, &p->base.addr)))
            abort();
    }
    dtls__rl_wipe(&cl);
    dtls__rl_wipe(&conv);
    dtls__rl_wipe(&srv);
    dtls__rl_wipe(&other_rl);
    dtls__peer_close(p, true);
    dtls__peer_close(o, true);
    dtls_fuzz_reset(l);
    transport_peer_unref(&p->base);
    transport_peer_unref(&o->base);
    return 0;
}
