/* htab.h — the one hash table of the tree: intrusive, chained, caller's hash and equality.
 *
 * An entry embeds an htab_link_t (as timers embed their wheel entry), so inserting never
 * allocates per entry and an owner can sit in several tables at once. The link keeps the
 * entry's full hash: growing needs no callback, and a lookup compares hashes before it
 * calls the equality function. Hashes come from core/hash.h (keyed: every key here can be
 * chosen by a peer); the table itself only uses their low bits.
 *
 * Grow policy, the same for every table: slots are a power of two (at least the min_slots
 * given at init, 16 by default), allocated at the first insert, and doubled when an insert
 * brings the entry count above the slot count (load factor <= 1, so with a keyed hash the
 * expected chain is about one entry). Tables never shrink on their own: a removal keeps
 * iterators valid, and the slot array costs 8 bytes per peak entry.
 *
 * Not thread-safe: the owner serializes access (one shard's loop, or the owner's lock).
 */
#ifndef COAPHUB_CORE_HTAB_H
#define COAPHUB_CORE_HTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct htab_link {
    struct htab_link *next; /* chain in the slot */
    uint64_t hash;          /* set by htab_insert */
} htab_link_t;

typedef struct htab {
    htab_link_t **slots; /* NULL until the first insert */
    size_t mask;         /* number of slots - 1 (slots is a power of two) */
    size_t n;            /* entries */
    size_t min_slots;    /* first allocation */
} htab_t;

/* The entry that embeds link as its member `member`. */
#define HTAB_ENTRY(link, type, member) ((type *)(void *)((char *)(link) - offsetof(type, member)))

/* Does the entry of link have key? key is whatever the caller passes to htab_find. */
typedef bool (*htab_eq_fn)(const htab_link_t *link, const void *key);

/* Prepares an empty table; min_slots is rounded up to a power of two (0 = 16). Allocates
 * nothing. */
void htab_init(htab_t *t, size_t min_slots);
/* Frees the slot array. The entries belong to the caller and are not touched; empty the
 * table first or free them through an iterator. The table may be initialised again. */
void htab_fini(htab_t *t);

/* Adds link with hash. Does not look for an equal entry: callers that need unique keys
 * call htab_find first. May grow the table (the only allocation; aborts on OOM). */
void htab_insert(htab_t *t, htab_link_t *link, uint64_t hash);
/* Removes link, which must be in t. Cost: the length of its chain. */
void htab_remove(htab_t *t, htab_link_t *link);

/* First entry with this hash for which eq(link, key) is true, or NULL. */
static inline htab_link_t *htab_find(const htab_t *t, uint64_t hash, htab_eq_fn eq,
                                     const void *key)
{
    if (!t->slots)
        return NULL;
    for (htab_link_t *l = t->slots[hash & t->mask]; l; l = l->next)
        if (l->hash == hash && eq(l, key))
            return l;
    return NULL;
}

static inline size_t htab_count(const htab_t *t)
{
    return t->n;
}

/* Iteration in no particular order. Removing the entry just returned (and only that one)
 * is allowed before the next call; inserting during an iteration is not. */
typedef struct htab_iter {
    const htab_t *t;
    size_t slot;       /* next slot to look at */
    htab_link_t *next; /* next entry in the current chain */
} htab_iter_t;

/* The first entry, or NULL for an empty table. */
htab_link_t *htab_iter_first(htab_iter_t *it, const htab_t *t);
/* The next entry, or NULL at the end. */
htab_link_t *htab_iter_next(htab_iter_t *it);

typedef struct htab_stats {
    size_t n, n_slots;
    size_t max_chain; /* longest chain: the worst lookup's steps */
    size_t steps;     /* chain steps to find every entry once (sum of 1-based positions):
                       * steps / n is the mean cost of a successful lookup */
} htab_stats_t;

/* Checks the invariants (count matches, each entry in the slot of its hash, slots a power
 * of two, load <= 1 after growth) and fills out (may be NULL). Returns 0, or -EINVAL at
 * the first broken invariant. For tests and debug checks: it visits every entry. */
int htab_validate(const htab_t *t, htab_stats_t *out);

#endif
