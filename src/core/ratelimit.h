/* ratelimit.h — token buckets keyed by a short byte string, in a table of fixed size.
 *
 * Used by the device API to limit CoAP requests per device and per source address
 * (RFC 8516: 4.29 Too Many Requests with Max-Age). A bucket holds up to `burst` tokens and
 * gains `rate` tokens per second; each request takes one. The table never grows: it holds
 * at most `cap` buckets, all allocated at creation; a key not in the table takes the bucket
 * that was used least recently (Californium's LRU connection store is the model). That one
 * is normally idle, so full again, and nothing is lost by forgetting it; under a flood from
 * more distinct keys than `cap` an active bucket can be evicted, which gives its key a fresh
 * burst — the price of bounded memory, counted in ratelimit_stats_t.evicted_active.
 *
 * Not thread-safe: one table per shard loop.
 */
#ifndef COAPHUB_CORE_RATELIMIT_H
#define COAPHUB_CORE_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

/* Longest key: an IPv6 /64 prefix or a device id, with a type byte. */
#define RATELIMIT_KEY_MAX 16

typedef struct ratelimit ratelimit_t;

/* A table of cap buckets (at least 1) of `rate` tokens per second and `burst` tokens (at
 * least 1). rate 0 turns limiting off: ratelimit_new returns NULL, and ratelimit_take(NULL,
 * ...) always grants. */
ratelimit_t *ratelimit_new(size_t cap, uint32_t rate, uint32_t burst);
/* ratelimit_free(NULL) does nothing. */
void ratelimit_free(ratelimit_t *rl);

/* Takes one token from the bucket of key (1..RATELIMIT_KEY_MAX bytes; longer keys are cut)
 * at monotonic time now_ms. Returns 0 when granted; otherwise the whole seconds (>= 1,
 * rounded up) until the bucket holds a token again: the Max-Age of a 4.29 answer. */
uint32_t ratelimit_take(ratelimit_t *rl, const void *key, size_t key_len, int64_t now_ms);

typedef struct ratelimit_stats {
    size_t buckets;          /* in use now (<= cap) */
    uint64_t evicted_idle;   /* reused buckets that were full again (nothing lost) */
    uint64_t evicted_active; /* reused buckets that were not (that key got a fresh burst) */
} ratelimit_stats_t;
void ratelimit_get_stats(const ratelimit_t *rl, ratelimit_stats_t *out);

#endif
