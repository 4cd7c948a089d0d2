/* test_htab.c — the keyed hash and the one hash table: SipHash against the paper's vector,
 * insert/find/remove/iterate with htab_validate after every step, growth, removal during
 * iteration, and the reason both exist: keys built to collide under the FNV-1a hash the tree
 * used before (four copies of it) fill one chain of a table hashed with FNV, and spread out
 * when hashed with hash_bytes — the cost per insert stays flat. The cost is counted in chain
 * steps (htab_validate's statistics), not timed, so the test says the same on a loaded
 * machine. */
#include "core/hash.h"
#include "core/htab.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

typedef struct item {
    htab_link_t link;
    uint8_t key[8];
    int value;
} item_t;

static bool item_eq(const htab_link_t *l, const void *key)
{
    return memcmp(HTAB_ENTRY(l, item_t, link)->key, key, 8) == 0;
}

static void test_siphash_vectors(void **state)
{
    (void)state;
    uint8_t key[16], msg[64];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    /* SipHash paper, Appendix A: SipHash-2-4, key 00..0f, message 00..0e. */
    assert_true(hash_siphash(key, msg, 15, 2, 4) == 0xa129ca6149be45e5ULL);
    /* Reference vectors.h, first entries (empty message, and 00..07: the full-word path). */
    assert_true(hash_siphash(key, msg, 0, 2, 4) == 0x726fdb47dd0e0e31ULL);
    assert_true(hash_siphash(key, msg, 8, 2, 4) == 0x93f5f5799a932462ULL);
    /* The process key is secret but stable within the process. */
    assert_true(hash_bytes("abc", 3) == hash_bytes("abc", 3));
    assert_true(hash_bytes("abc", 3) != hash_bytes("abd", 3));
    assert_true(hash_u64(7) == hash_u64(7));
    assert_true(hash_u64(7) != hash_u64(8));
    /* hash_u64's unrolled path is hash_bytes of the value's 8 little-endian bytes. */
    for (uint64_t x = 1; x != 0; x <<= 7) {
        uint8_t le[8];
        for (int i = 0; i < 8; i++)
            le[i] = (uint8_t)(x >> (8 * i));
        assert_true(hash_u64(x) == hash_bytes(le, 8));
    }
    /* Every tail length, against the reference vectors of the paper's key (00..0f), 2-4. */
    assert_true(hash_siphash(key, msg, 7, 2, 4) == 0xab0200f58b01d137ULL);
    assert_true(hash_siphash(key, msg, 63, 2, 4) == 0x958a324ceb064572ULL);
}

static void key_of(int i, uint8_t key[8])
{
    memset(key, 0, 8);
    memcpy(key, &i, sizeof i);
}

static void test_htab_basic(void **state)
{
    (void)state;
    enum { N = 1000 };
    htab_t t;
    htab_init(&t, 0);
    assert_int_equal(htab_validate(&t, NULL), 0);
    item_t *items = calloc(N, sizeof *items);
    for (int i = 0; i < N; i++) {
        key_of(i, items[i].key);
        items[i].value = i;
        uint64_t h = hash_bytes(items[i].key, 8);
        assert_null(htab_find(&t, h, item_eq, items[i].key));
        htab_insert(&t, &items[i].link, h);
        if (i % 97 == 0)
            assert_int_equal(htab_validate(&t, NULL), 0);
    }
    htab_stats_t st;
    assert_int_equal(htab_validate(&t, &st), 0);
    assert_int_equal(st.n, N);
    assert_true(st.n_slots >= N && (st.n_slots & (st.n_slots - 1)) == 0);
    for (int i = 0; i < N; i++) {
        uint8_t k[8];
        key_of(i, k);
        htab_link_t *l = htab_find(&t, hash_bytes(k, 8), item_eq, k);
        assert_non_null(l);
        assert_int_equal(HTAB_ENTRY(l, item_t, link)->value, i);
    }
    /* Remove the even ones; the odd ones stay findable. */
    for (int i = 0; i < N; i += 2)
        htab_remove(&t, &items[i].link);
    assert_int_equal(htab_count(&t), N / 2);
    assert_int_equal(htab_validate(&t, NULL), 0);
    for (int i = 0; i < N; i++) {
        uint8_t k[8];
        key_of(i, k);
        htab_link_t *l = htab_find(&t, hash_bytes(k, 8), item_eq, k);
        assert_true((l != NULL) == (i % 2 == 1));
    }
    /* Iterate and remove each entry as it is returned: every odd one is seen once. */
    char *seen = calloc(N, 1);
    htab_iter_t it;
    size_t visits = 0;
    for (htab_link_t *l = htab_iter_first(&it, &t); l; l = htab_iter_next(&it)) {
        item_t *e = HTAB_ENTRY(l, item_t, link);
        assert_int_equal(seen[e->value], 0);
        seen[e->value] = 1;
        visits++;
        htab_remove(&t, l);
    }
    assert_int_equal(visits, N / 2);
    assert_int_equal(htab_count(&t), 0);
    assert_int_equal(htab_validate(&t, NULL), 0);
    htab_iter_t empty;
    assert_null(htab_iter_first(&empty, &t));
    htab_fini(&t);
    free(seen);
    free(items);
}

static void test_htab_min_slots(void **state)
{
    (void)state;
    htab_t t;
    htab_init(&t, 1000);
    item_t a = {.key = {1}};
    htab_insert(&t, &a.link, 5);
    htab_stats_t st;
    assert_int_equal(htab_validate(&t, &st), 0);
    assert_int_equal(st.n_slots, 1024);
    htab_remove(&t, &a.link);
    htab_fini(&t);
}

/* FNV-1a 64, exactly as the four removed copies computed it. */
static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Builds n distinct 8-byte keys whose FNV-1a hashes agree in their low `bits` bits. The low
 * bits of FNV's state after a byte depend only on the low bits before it, so for each
 * 2-byte block we pick, among all 65536, a large group that maps the (common) incoming low
 * state to one outgoing low state; any choice per block then collides. */
static void make_fnv_collisions(uint8_t (*keys)[8], size_t n, unsigned bits)
{
    const uint64_t P = 1099511628211ULL, mask = (1ULL << bits) - 1;
    uint16_t choices[4][64];
    size_t n_choices[4];
    uint64_t s = 1469598103934665603ULL & mask;
    size_t *count = calloc(mask + 1, sizeof *count);
    for (int blk = 0; blk < 4; blk++) {
        memset(count, 0, (mask + 1) * sizeof *count);
        for (uint32_t b = 0; b < 65536; b++) {
            uint64_t x = (((s ^ (b & 0xff)) * P) & mask);
            x = (((x ^ (b >> 8)) * P) & mask);
            count[x]++;
        }
        uint64_t best = 0;
        for (uint64_t x = 0; x <= mask; x++)
            if (count[x] > count[best])
                best = x;
        n_choices[blk] = 0;
        for (uint32_t b = 0; b < 65536 && n_choices[blk] < 64; b++) {
            uint64_t x = (((s ^ (b & 0xff)) * P) & mask);
            x = (((x ^ (b >> 8)) * P) & mask);
            if (x == best)
                choices[blk][n_choices[blk]++] = (uint16_t)b;
        }
        s = best;
    }
    free(count);
    for (size_t i = 0; i < n; i++) {
        size_t r = i;
        for (int blk = 0; blk < 4; blk++) {
            uint16_t b = choices[blk][r % n_choices[blk]];
            r /= n_choices[blk];
            keys[i][2 * blk] = (uint8_t)(b & 0xff);
            keys[i][2 * blk + 1] = (uint8_t)(b >> 8);
        }
        assert_int_equal(r, 0); /* enough combinations for n distinct keys */
    }
}

/* Inserts every key after a lookup (as the peer tables do: find, then add) into a table
 * pre-sized to n slots; returns the mean chain steps of a lookup and fills the statistics. */
static double insert_all(uint8_t (*keys)[8], size_t n, bool keyed, htab_stats_t *st)
{
    htab_t t;
    htab_init(&t, n);
    item_t *items = calloc(n, sizeof *items);
    for (size_t i = 0; i < n; i++) {
        memcpy(items[i].key, keys[i], 8);
        uint64_t h = keyed ? hash_bytes(keys[i], 8) : fnv1a(keys[i], 8);
        assert_null(htab_find(&t, h, item_eq, keys[i]));
        htab_insert(&t, &items[i].link, h);
    }
    assert_int_equal(htab_validate(&t, st), 0);
    htab_fini(&t);
    free(items);
    return (double)st->steps / (double)n;
}

static void test_htab_fnv_collisions_stay_flat(void **state)
{
    (void)state;
    enum { N = 4096, BITS = 12 }; /* a table pre-sized to N slots indexes by the low 12 bits */
    uint8_t(*keys)[8] = calloc(N, sizeof *keys);
    make_fnv_collisions(keys, N, BITS);
    for (size_t i = 1; i < N; i++) /* the inputs really collide under the old hash */
        assert_true((fnv1a(keys[i], 8) & ((1u << BITS) - 1)) ==
                    (fnv1a(keys[0], 8) & ((1u << BITS) - 1)));
    htab_stats_t old_st, new_st;
    double old_cost = insert_all(keys, N, false, &old_st);
    double new_cost = insert_all(keys, N, true, &new_st);
    print_message(
        "FNV-1a: longest chain %zu, %.1f steps per lookup; "
        "keyed: longest chain %zu, %.2f steps per lookup\n",
        old_st.max_chain, old_cost, new_st.max_chain, new_cost);
    /* The old hash: one chain holds every key, and a lookup (each insert makes one) walks
     * half of it on average: the cost of an insert grows with the table. */
    assert_int_equal(old_st.max_chain, N);
    assert_true(old_cost > N / 4);
    /* The keyed hash: chains of a handful, about 1.5 steps per lookup at load 1, whatever
     * the number of entries. */
    assert_true(new_st.max_chain <= 12);
    assert_true(new_cost < 2.0);
    free(keys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_siphash_vectors),
        cmocka_unit_test(test_htab_basic),
        cmocka_unit_test(test_htab_min_slots),
        cmocka_unit_test(test_htab_fnv_collisions_stay_flat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
