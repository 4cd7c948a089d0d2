/* hash.c — SipHash under a per-process random key; see hash.h for why.
 *
 * The key comes from getrandom(2) in a constructor, so it is in place before any thread
 * starts and no call pays for a once-check. If the kernel cannot give randomness at start
 * (it always can on Linux >= 3.17 once booted) the process stops: a guessable key would
 * silently bring back the attack this file exists to prevent.
 */
#include "core/hash.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static uint8_t process_key[16];

__attribute__((constructor)) static void hash_key_init(void)
{
    size_t got = 0;
    while (got < sizeof process_key) {
        ssize_t n = getrandom(process_key + got, sizeof process_key - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "coaphub: getrandom for the hash key failed: %s\n", strerror(errno));
            abort();
        }
        got += (size_t)n;
    }
}

static inline uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static inline uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
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

static inline uint64_t siphash(const uint8_t key[static 16], const uint8_t *p, size_t len, int c,
                               int d)
{
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    uint64_t v[4] = {k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL,
                     k0 ^ 0x6c7967656e657261ULL, k1 ^ 0x7465646279746573ULL};
    size_t full = len & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = load_le64(p + i);
        v[3] ^= m;
        for (int r = 0; r < c; r++)
            sipround(v);
        v[0] ^= m;
    }
    /* The last word holds the remaining bytes and the length's low byte in its top byte. */
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)p[full + i] << (8 * i);
    v[3] ^= b;
    for (int r = 0; r < c; r++)
        sipround(v);
    v[0] ^= b;
    v[2] ^= 0xff;
    for (int r = 0; r < d; r++)
        sipround(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

uint64_t hash_siphash(const uint8_t key[static 16], const void *p, size_t len, int c, int d)
{
    return siphash(key, p, len, c, d);
}

uint64_t hash_bytes(const void *p, size_t len)
{
    return siphash(process_key, p, len, 1, 3);
}

uint64_t hash_u64(uint64_t x)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(x >> (8 * i));
    return siphash(process_key, b, sizeof b, 1, 3);
}
