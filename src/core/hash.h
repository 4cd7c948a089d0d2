/* hash.h — the one hash function for every table keyed by something a peer can choose.
 *
 * Source addresses, access tokens, certificate fingerprints, key names and (peer, MID)
 * pairs all arrive from the network. An unkeyed hash (the tree had four copies of FNV-1a)
 * lets an attacker precompute inputs that land in one bucket and turn every lookup into a
 * walk of a long chain. SipHash with a secret key drawn from the kernel at process start
 * makes that precomputation impossible: the attacker does not know the function.
 *
 * SipHash-1-3 (one compression round per 8-byte word, three finalization rounds) is the
 * variant CPython and Rust use for their tables: the margin that matters here is that the
 * key stays secret, not resistance to cryptanalysis of long outputs, and 1-3 is ~2x cheaper
 * than 2-4 on the short keys we hash (6 to 40 bytes). The implementation follows the
 * SipHash paper (Aumasson and Bernstein, 2012); hash_siphash() with c=2, d=4 reproduces the
 * paper's test vector in tests/unit/core/test_htab.c.
 *
 * Thread-safe: the key is written once, by a constructor before main, and only read after.
 */
#ifndef COAPHUB_CORE_HASH_H
#define COAPHUB_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

/* Keyed hash (SipHash-1-3 under the per-process key) of len bytes at p. */
uint64_t hash_bytes(const void *p, size_t len);

/* Keyed hash of one 64-bit value (a device id, a pointer). */
uint64_t hash_u64(uint64_t x);

/* SipHash-c-d of len bytes at p under key (16 bytes, little-endian words as in the paper).
 * For tests and for callers that need a hash stable across processes (none today). */
uint64_t hash_siphash(const uint8_t key[static 16], const void *p, size_t len, int c, int d);

#endif
