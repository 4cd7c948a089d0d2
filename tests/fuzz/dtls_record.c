/* dtls_record.c — libFuzzer target for the DTLS side that is ours: the record pre-filter
 * (dtls__classify), the cookie check, and a whole listener fed hostile datagrams from a few
 * source addresses (cookie exchange, DTLSv1_listen, handshake start, the per-peer path).
 *
 * Input: a sequence of datagrams, each [flags:1][len:2 big-endian][bytes:len] (len is cut to
 * what remains). flags bits 0-1 pick one of four 127.0.0.x sources; bit 2 replaces the cookie
 * of a ClientHello with the valid one for that source, so the fuzzer gets past the HMAC and
 * into OpenSSL's handshake on a per-peer SSL. Each input starts from a listener in its initial
 * state (one listener per process, reset after each input: dtls_fuzz_env.h); the server
 * certificate and SSL_CTX are made once per process.
 */
#include "dtls_fuzz_env.h"

#include "core/log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put24(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 16);
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)v;
}

static size_t get24(const uint8_t *p)
{
    return (size_t)p[0] << 16 | (size_t)p[1] << 8 | p[2];
}

/* Rewrites the ClientHello in buf (len bytes, room for cap) to carry a valid cookie. */
static size_t fix_cookie(dtls_listener_t *l, const struct sockaddr_in *a, uint8_t *buf, size_t len,
                         size_t cap)
{
    if (dtls__classify(buf, len) != DTLS_DG_CLIENT_HELLO)
        return len;
    size_t off = 13 + 12;
    if (len < off + 35)
        return len;
    size_t c_off = off + 35 + buf[off + 34];
    if (c_off >= len)
        return len;
    size_t rest = c_off + 1 + buf[c_off];
    if (rest > len || len - (rest - c_off - 1) + DTLS_COOKIE_LEN > cap)
        return len;
    uint8_t cookie[DTLS_COOKIE_LEN];
    if (dtls__cookie_make(&l->cookie, (const struct sockaddr *)a, sizeof *a, cookie) != 0)
        return len;
    size_t old = buf[c_off];
    memmove(buf + c_off + 1 + DTLS_COOKIE_LEN, buf + rest, len - rest);
    buf[c_off] = DTLS_COOKIE_LEN;
    memcpy(buf + c_off + 1, cookie, DTLS_COOKIE_LEN);
    size_t nlen = len - old + DTLS_COOKIE_LEN;
    size_t rec = (size_t)buf[11] << 8 | buf[12];
    rec = rec - old + DTLS_COOKIE_LEN;
    buf[11] = (uint8_t)(rec >> 8);
    buf[12] = (uint8_t)rec;
    put24(buf + 14, get24(buf + 14) - old + DTLS_COOKIE_LEN);
    put24(buf + 22, get24(buf + 22) - old + DTLS_COOKIE_LEN);
    return nlen;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int inited;
    if (!inited) {
        dtls_fuzz_init("dtls");
        inited = 1;
    }
    dtls_cfg_t cfg;
    dtls_cfg_default(&cfg);
    cfg.max_handshakes = 2;
    cfg.max_sessions = 2;
    dtls_listener_t *l = dtls_fuzz_listener(&cfg, true); /* one for the run: dtls_fuzz_env.h */
    static uint8_t buf[DTLS_MAX_DGRAM + 64];
    while (size >= 3) {
        uint8_t flags = data[0];
        size_t n = (size_t)data[1] << 8 | data[2];
        data += 3;
        size -= 3;
        if (n > size)
            n = size;
        if (n > DTLS_MAX_DGRAM)
            n = DTLS_MAX_DGRAM;
        memcpy(buf, data, n);
        data += n;
        size -= n;
        struct sockaddr_storage ss = {0};
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(40000);
        a->sin_addr.s_addr = htonl(0x7f000001u + (flags & 3u));
        size_t len = n;
        if (flags & 4)
            len = fix_cookie(l, a, buf, n, sizeof buf);
        /* The stateless helpers on their own, then the whole path. */
        (void)dtls__classify(buf, len);
        if (len >= DTLS_COOKIE_LEN)
            (void)dtls__cookie_check(&l->cookie, (const struct sockaddr *)a, sizeof *a, buf,
                                     DTLS_COOKIE_LEN);
        dtls__listener_input(l, &ss, sizeof *a, buf, len);
    }
    dtls_fuzz_reset(l);
    return 0;
}
