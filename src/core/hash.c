/* hash.c — SipHash under a per-process random key; see hash.h for why.
 *
 * The key comes from getrandom(2) in a constructor, so it is in place before any thread
 * starts and no call pays for a once-check. If the kernel cannot give randomness at start
 * (it always can on Linux >= 3.17 once booted) the process stops: a guessable key would
 * silently bring back the attack this file exists to prevent.
 *
 * COST. Every datagram and every stored point goes through a few of these (peer address,
 * token, (peer, MID), device id, key names: about a dozen calls per telemetry request), so
 * the key's initial state is computed once, words are loaded with one move each, and an
 * 8-byte key (hash_u64) takes a straight-line path: ~80 instructions per call instead of the
 * ~130 of the byte-at-a-time form this replaced, ~110 for a short string (callgrind on the
 * telemetry request path; together ~1,000 instructions of the ~45,000 a request costs).
 */
#include "core/hash.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "hash.c loads SipHash's little-endian words with memcpy: add a byte swap for this target"
#endif

/* v0..v3 after the key was mixed in (SipHash paper §2, "Initialization"). */
static uint64_t init_state[4];

static inline uint64_t load_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void state_for_key(const uint8_t key[static 16], uint64_t v[static 4])
{
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    v[0] = k0 ^ 0x736f6d6570736575ULL;
    v[1] = k1 ^ 0x646f72616e646f6dULL;
    v[2] = k0 ^ 0x6c7967656e657261ULL;
    v[3] = k1 ^ 0x7465646279746573ULL;
}

__attribute__((constructor)) static void hash_key_init(void)
{
    uint8_t key[16];
    size_t got = 0;
    while (got < sizeof key) {
        ssize_t n = getrandom(key + got, sizeof key - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "coaphub: getrandom for the hash key failed: %s\n", strerror(errno));
            abort();
        }
        got += (size_t)n;
    }
    state_for_key(key, init_state);
}

static inline uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

/* One SipRound (paper §2). */
static inline void sipround(uint64_t v[static 4])
{
    v[0] += v[1];
    v[1] = rotl(v[1], 13);
    v[1] ^= v[0];
    v[0] = rotl(v[0], 32);
    v[2] += v[3];
    v[3] = rotl(v[3], 16);
    v[3] ^= v[2];
    v[0] += v[3];
    v[3] = rotl(v[3], 21);
    v[3] ^= v[0];
    v[2] += v[1];
    v[1] = rotl(v[1], 17);
    v[1] ^= v[2];
    v[2] = rotl(v[2], 32);
}

static inline void compress(uint64_t v[static 4], uint64_t m, int c)
{
    v[3] ^= m;
    for (int r = 0; r < c; r++)
        sipround(v);
    v[0] ^= m;
}

static inline uint64_t finish(uint64_t v[static 4], int d)
{
    v[2] ^= 0xff;
    for (int r = 0; r < d; r++)
        sipround(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* SipHash-c-d from an initial state (copied). */
static inline uint64_t siphash(const uint64_t state[static 4], const uint8_t *p, size_t len, int c,
                               int d)
{
    uint64_t v[4] = {state[0], state[1], state[2], state[3]};
    size_t full = len & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8)
        compress(v, load_le64(p + i), c);
    /* The last word holds the remaining bytes and the length's low byte in its top byte. */
    uint64_t tail = 0;
    if (len & 7)
        memcpy(&tail, p + full, len & 7);
    compress(v, tail | (uint64_t)len << 56, c);
    return finish(v, d);
}

uint64_t hash_siphash(const uint8_t key[static 16], const void *p, size_t len, int c, int d)
{
    uint64_t state[4];
    state_for_key(key, state);
    return siphash(state, p, len, c, d);
}

uint64_t hash_bytes(const void *p, size_t len)
{
    return siphash(init_state, p, len, 1, 3);
}

uint64_t hash_u64(uint64_t x)
{
    /* siphash() of the 8 little-endian bytes of x, unrolled: one word, then the length word. */
    uint64_t v[4] = {init_state[0], init_state[1], init_state[2], init_state[3]};
    compress(v, x, 1);
    compress(v, (uint64_t)8 << 56, 1);
    return finish(v, 3);
}
