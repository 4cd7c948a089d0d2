/* dtls_record_cost.c — dtls-record-bench: what an RFC 9146 Connection ID costs per record on
 * the compact record layer (issue #16 point 5: "within noise of no CID").
 *
 *   dtls-record-bench [N] [PAYLOAD_BYTES]
 *
 * In one process, no network: for AES-128-CCM_8 (RFC 7252's suites) and AES-128-GCM, a client
 * view seals N application records of PAYLOAD_BYTES (default 64, a small CoAP POST) and the
 * server view opens them, once as ordinary DTLS 1.2 records and once as tls12_cid records with
 * a 6-byte CID (--dtls-cid-length 6), with the listener's cached cipher contexts as in
 * production (compact.c). The two forms alternate in rounds of 10 000 so that frequency drift
 * on a shared machine touches both alike; prints nanoseconds per record (seal + open) and the
 * ratio. N defaults to 1 000 000. Run it from a Release build.
 */
#include "dtls/dtls_int.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { ROUND = 10000, CID_LEN = 6 };

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One round of n records client -> server; returns the ns it took, or -1 on a failure. */
static int64_t round_trip(dtls_rl_t *cl, dtls_rl_t *srv, dtls_aead_ctx_t *ca, dtls_aead_ctx_t *sa,
                          bool cid, const uint8_t *cidv, const uint8_t *payload, size_t len, int n)
{
    static uint8_t rec[DTLS_MAX_DGRAM], plain[DTLS_MAX_PLAIN];
    int64_t t0 = now_ns();
    for (int i = 0; i < n; i++) {
        ssize_t r = cid ? dtls__rl_seal_cid(cl, ca, 23, cidv, CID_LEN, payload, len, rec,
                                            sizeof rec)
                        : dtls__rl_seal(cl, ca, 23, payload, len, rec, sizeof rec);
        if (r < 0)
            return -1;
        dtls_rec_t parsed;
        uint8_t type = 23;
        ssize_t m;
        if (cid) {
            if (dtls__rec_parse_cid(rec, (size_t)r, CID_LEN, &parsed) < 0)
                return -1;
            m = dtls__rl_open_cid(srv, sa, &parsed, &type, plain, sizeof plain);
        } else {
            if (dtls__rec_parse(rec, (size_t)r, &parsed) < 0)
                return -1;
            m = dtls__rl_open(srv, sa, &parsed, plain, sizeof plain);
        }
        if (m != (ssize_t)len || type != 23)
            return -1;
    }
    return now_ns() - t0;
}

static int run(const char *name, dtls_aead_alg_t alg, uint8_t tag_len, long n, size_t len)
{
    uint8_t master[48], cr[32], sr[32], cidv[CID_LEN];
    if (RAND_bytes(master, sizeof master) != 1 || RAND_bytes(cr, sizeof cr) != 1 ||
        RAND_bytes(sr, sizeof sr) != 1 || RAND_bytes(cidv, sizeof cidv) != 1)
        return 1;
    uint8_t *payload = calloc(1, len ? len : 1);
    double ns[2] = {0, 0};
    /* Separate key states per form, so each keeps a clean sequence/replay window. */
    dtls_rl_t srv[2], cl[2];
    dtls_aead_ctx_t ca, sa;
    dtls__aead_init(&ca);
    dtls__aead_init(&sa);
    for (int f = 0; f < 2; f++) {
        if (dtls__rl_derive(&srv[f], alg, tag_len, EVP_sha256(), master, sizeof master, cr, sr)) {
            fprintf(stderr, "dtls-record-bench: key expansion failed for %s\n", name);
            free(payload);
            return 1;
        }
        dtls__rl_mirror(&srv[f], &cl[f]);
        /* Cached cipher contexts, as the listener keeps them (one uid per key set). */
        srv[f].uid = (uint64_t)(10 + f);
        cl[f].uid = (uint64_t)(20 + f);
    }
    for (long done = 0; done < n; done += ROUND) {
        int k = (int)(n - done < ROUND ? n - done : ROUND);
        for (int f = 0; f < 2; f++) {
            int64_t t = round_trip(&cl[f], &srv[f], &ca, &sa, f == 1, cidv, payload, len, k);
            if (t < 0) {
                fprintf(stderr, "dtls-record-bench: a record did not round-trip (%s)\n", name);
                free(payload);
                return 1;
            }
            ns[f] += (double)t;
        }
    }
    printf(
        "%-12s %5zu B payload: no CID %6.0f ns/record, CID (%d B) %6.0f ns/record, ratio "
        "%.3f; record %zu -> %zu bytes\n",
        name, len, ns[0] / (double)n, CID_LEN, ns[1] / (double)n, ns[1] / ns[0],
        DTLS_REC_HDR + (alg == DTLS_AEAD_CHACHA20 ? 0 : DTLS_EXPLICIT_NONCE) + len + tag_len,
        DTLS_REC_HDR + CID_LEN + (alg == DTLS_AEAD_CHACHA20 ? 0 : DTLS_EXPLICIT_NONCE) + len + 1 +
            tag_len);
    for (int f = 0; f < 2; f++) {
        dtls__rl_wipe(&srv[f]);
        dtls__rl_wipe(&cl[f]);
    }
    dtls__aead_fini(&ca);
    dtls__aead_fini(&sa);
    free(payload);
    return 0;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    long len = argc > 2 ? atol(argv[2]) : 64;
    if (n < 1 || len < 0 || len > 16000) {
        fprintf(stderr, "usage: dtls-record-bench [N] [PAYLOAD_BYTES]\n");
        return 2;
    }
    int rc = run("AES-128-CCM8", DTLS_AEAD_AES128_CCM, 8, n, (size_t)len);
    rc |= run("AES-128-GCM", DTLS_AEAD_AES128_GCM, 16, n, (size_t)len);
    return rc;
}
