/* ratelimit.c — fixed-size table of token buckets with least-recently-used reuse.
 *
 * Tokens are counted in thousandths so the refill is integer arithmetic: a bucket gains
 * `rate` thousandths per elapsed millisecond and holds at most burst * 1000. The buckets are
 * one array allocated at creation, indexed by a core/htab table (keyed hash: the keys are
 * chosen by peers) and chained in use order, least recent first; a lookup that finds its
 * bucket moves it to the back, a new key takes the front one.
 */
#include "core/ratelimit.h"

#include "core/hash.h"
#include "core/htab.h"
#include "core/xmalloc.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct bucket {
    htab_link_t link;           /* in ratelimit.index while used */
    struct bucket *prev, *next; /* use order (ratelimit.lru), or the free chain (next) */
    uint64_t milli;             /* tokens * 1000 at `at_ms` */
    int64_t at_ms;
    uint8_t key_len;
    uint8_t key[RATELIMIT_KEY_MAX];
} bucket_t;

struct ratelimit {
    uint64_t rate;      /* tokens per second = thousandths per ms */
    uint64_t max_milli; /* burst * 1000 */
    size_t cap;
    bucket_t *all;
    size_t n_used; /* all[0..n_used) have been handed out; the rest were never touched */
    bucket_t lru;  /* sentinel: lru.next is the least recently used */
    htab_t index;
    ratelimit_stats_t stats;
};

ratelimit_t *ratelimit_new(size_t cap, uint32_t rate, uint32_t burst)
{
    if (rate == 0)
        return NULL;
    ratelimit_t *rl = xcalloc(1, sizeof *rl);
    rl->rate = rate;
    rl->max_milli = (uint64_t)(burst ? burst : 1) * 1000u;
    rl->cap = cap ? cap : 1;
    /* Zeroed pages the kernel maps on first use: an idle table costs no resident memory,
     * a table in use what its busiest moment needed (~72 bytes a bucket). */
    rl->all = xcalloc(rl->cap, sizeof *rl->all);
    rl->lru.prev = rl->lru.next = &rl->lru;
    /* Slots for the full table up front: the index never grows (load <= 1 at cap). */
    htab_init(&rl->index, rl->cap);
    return rl;
}

void ratelimit_free(ratelimit_t *rl)
{
    if (!rl)
        return;
    htab_fini(&rl->index);
    free(rl->all);
    free(rl);
}

typedef struct key {
    const uint8_t *p;
    size_t len;
} rl_key_t;

static bool bucket_has_key(const htab_link_t *l, const void *k)
{
    const bucket_t *b = HTAB_ENTRY(l, bucket_t, link);
    const rl_key_t *key = k;
    return b->key_len == key->len && memcmp(b->key, key->p, key->len) == 0;
}

static void lru_unlink(bucket_t *b)
{
    b->prev->next = b->next;
    b->next->prev = b->prev;
}

static void lru_push_back(ratelimit_t *rl, bucket_t *b)
{
    b->prev = rl->lru.prev;
    b->next = &rl->lru;
    rl->lru.prev->next = b;
    rl->lru.prev = b;
}

/* The bucket's tokens (thousandths) at now_ms. A clock that went back refills nothing. */
static uint64_t refill(const ratelimit_t *rl, const bucket_t *b, int64_t now_ms)
{
    if (now_ms <= b->at_ms)
        return b->milli;
    uint64_t dt = (uint64_t)(now_ms - b->at_ms);
    uint64_t room = rl->max_milli - b->milli;
    /* dt * rate could overflow only after ~5,800 years at 100k/s; the room test first. */
    if (dt >= room / rl->rate + 1)
        return rl->max_milli;
    uint64_t m = b->milli + dt * rl->rate;
    return m < rl->max_milli ? m : rl->max_milli;
}

static bucket_t *bucket_new(ratelimit_t *rl, const rl_key_t *k, uint64_t h, int64_t now_ms)
{
    bucket_t *b;
    if (rl->n_used < rl->cap) {
        b = &rl->all[rl->n_used++];
    } else {
        b = rl->lru.next; /* least recently used */
        if (refill(rl, b, now_ms) >= rl->max_milli)
            rl->stats.evicted_idle++;
        else
            rl->stats.evicted_active++;
        lru_unlink(b);
        htab_remove(&rl->index, &b->link);
    }
    b->key_len = (uint8_t)k->len;
    memcpy(b->key, k->p, k->len);
    b->milli = rl->max_milli;
    b->at_ms = now_ms;
    htab_insert(&rl->index, &b->link, h);
    lru_push_back(rl, b);
    return b;
}

uint32_t ratelimit_take(ratelimit_t *rl, const void *key, size_t key_len, int64_t now_ms)
{
    if (!rl)
        return 0;
    rl_key_t k = {key, key_len > RATELIMIT_KEY_MAX ? RATELIMIT_KEY_MAX : key_len};
    uint64_t h = hash_bytes(k.p, k.len);
    htab_link_t *l = htab_find(&rl->index, h, bucket_has_key, &k);
    bucket_t *b;
    if (l) {
        b = HTAB_ENTRY(l, bucket_t, link);
        lru_unlink(b);
        lru_push_back(rl, b);
    } else {
        b = bucket_new(rl, &k, h, now_ms);
    }
    uint64_t m = refill(rl, b, now_ms);
    if (now_ms > b->at_ms)
        b->at_ms = now_ms;
    b->milli = m;
    if (m >= 1000u) {
        b->milli = m - 1000u;
        return 0;
    }
    /* ms until 1000 thousandths, rounded up, then whole seconds rounded up (RFC 8516 §4:
     * Max-Age says when the client may try again). */
    uint64_t wait_ms = (1000u - m + rl->rate - 1) / rl->rate;
    uint64_t s = (wait_ms + 999u) / 1000u;
    return s ? (uint32_t)(s > UINT32_MAX ? UINT32_MAX : s) : 1u;
}

void ratelimit_get_stats(const ratelimit_t *rl, ratelimit_stats_t *out)
{
    if (!rl) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = rl->stats;
    out->buckets = htab_count(&rl->index);
}
