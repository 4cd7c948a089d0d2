/* dtls_compact.c — libFuzzer target for the compact DTLS record layer (src/dtls/record.c,
 * compact.c): hostile datagrams fed into an established compact session of a real listener.
 *
 * Input: [suite:1] then datagrams, each [flags:1][len:2 big-endian][bytes:len] (len is cut to
 * what remains). suite % 6 picks AES-128-GCM, AES-256-GCM, AES-128-CCM, AES-128-CCM_8,
 * AES-256-CCM_8 or ChaCha20-Poly1305 (no explicit nonce: RFC 7905). flags:
 *   bit 0 set: bytes are the plaintext of a record sealed with the client's keys (so the
 *              fuzzer gets past the AEAD tag), content type 20 + (bits 2-3); bits 4-7 move
 *              the client's sequence number first: bit 1 set = back by that much (replays,
 *              reordering), clear = forward (gaps);
 *   bit 0 clear: bytes are sent as they are, from the session's address (bit 1 clear) or
 *              from an unknown one (bit 1 set);
 *   bits 2-3 == 3 with bit 0 clear: the server also sends bytes to the client, and the
 *              client must open exactly them (checks seal/open agree).
 * Each input starts from a listener in its initial state (one per process, reset after each
 * input: dtls_fuzz_env.h); the server certificate and SSL_CTX are made once.
 */
#include "dtls_fuzz_env.h"

#include "core/log.h"

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
        dtls_fuzz_init("compact");
        inited = 1;
    }
    if (size < 1)
        return 0;
    size_t suite = data[0] % (sizeof SUITES / sizeof SUITES[0]);
    data++;
    size--;
    dtls_cfg_t cfg;
    dtls_cfg_default(&cfg);
    dtls_listener_t *l = dtls_fuzz_listener(&cfg, false); /* one for the run: dtls_fuzz_env.h */

    /* The keys of a suite are derived once (same master secret and randoms every time); each
     * input starts from a copy. */
    static dtls_rl_t keys[sizeof SUITES / sizeof SUITES[0]];
    static bool derived[sizeof SUITES / sizeof SUITES[0]];
    if (!derived[suite]) {
        uint8_t ms[48], cr[32], sr[32];
        memset(ms, 0x5a, sizeof ms);
        memset(cr, 0xc1, sizeof cr);
        memset(sr, 0x5e, sizeof sr);
        if (dtls__rl_derive(&keys[suite], SUITES[suite].alg, SUITES[suite].tag, EVP_sha256(), ms,
                            sizeof ms, cr, sr) != 0)
            abort();
        derived[suite] = true;
    }
    dtls_rl_t srv = keys[suite], cl;
    dtls__rl_mirror(&srv, &cl);
    srv.w_seq = 3; /* as if OpenSSL had sent Finished and two records */
    cl.w_seq = 2;
    struct sockaddr_storage peer_addr = addr(0x7f000001u), other = addr(0x7f000002u);
    dtls_peer_t *p = dtls__peer_new_compact(l, &peer_addr, sizeof(struct sockaddr_in), &srv);
    transport_peer_ref(&p->base); /* stays readable after a close */
    dtls_aead_ctx_t *a = dtls_fuzz_aead();

    static uint8_t buf[DTLS_MAX_DGRAM + 64], plain[DTLS_MAX_PLAIN];
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
        uint64_t step = flags >> 4;
        if (flags & 1) {
            if (flags & 2)
                cl.w_seq -= step < cl.w_seq ? step : cl.w_seq;
            else
                cl.w_seq += step;
            uint8_t type = (uint8_t)(20 + ((flags >> 2) & 3));
            ssize_t r = dtls__rl_seal(&cl, a, type, bytes, n, buf, sizeof buf);
            if (r > 0)
                dtls__listener_input(l, &peer_addr, sizeof(struct sockaddr_in), buf, (size_t)r);
        } else if (((flags >> 2) & 3) == 3 && !p->base.closed) {
            /* Server to client: what the client opens must be what was sent. */
            if (n > 0 && dtls__compact_send(p, bytes, n) == 0) {
                dtls_rec_t rec;
                size_t rlen = DTLS_REC_HDR + ((size_t)l->out[11] << 8 | l->out[12]);
                if (dtls__rec_parse(l->out, rlen, &rec) != (ssize_t)rlen)
                    abort();
                ssize_t m = dtls__rl_open(&cl, a, &rec, plain, sizeof plain);
                if (m != (ssize_t)n || memcmp(plain, bytes, n) != 0)
                    abort();
            }
        } else {
            memcpy(buf, bytes, n);
            const struct sockaddr_storage *from = flags & 2 ? &other : &peer_addr;
            dtls__listener_input(l, from, sizeof(struct sockaddr_in), buf, n);
        }
    }
    dtls__rl_wipe(&cl);
    dtls__rl_wipe(&srv);
    dtls__peer_close(p, true); /* close_notify goes nowhere too */
    dtls_fuzz_reset(l);
    transport_peer_unref(&p->base);
    return 0;
}
