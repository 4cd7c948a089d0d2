/* htab.c — see htab.h for the contract and the grow policy. */
#include "core/htab.h"

#include "core/err.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <stdlib.h>

#define HTAB_DEFAULT_SLOTS 16

void htab_init(htab_t *t, size_t min_slots)
{
    size_t n = HTAB_DEFAULT_SLOTS;
    if (min_slots) {
        n = 1;
        while (n < min_slots)
            n <<= 1;
    }
    *t = (htab_t){.min_slots = n};
}

void htab_fini(htab_t *t)
{
    free(t->slots);
    t->slots = NULL;
    t->mask = 0;
    t->n = 0;
}

static void grow(htab_t *t, size_t n_slots)
{
    htab_link_t **slots = xcalloc(n_slots, sizeof *slots);
    size_t mask = n_slots - 1;
    if (t->slots) {
        for (size_t i = 0; i <= t->mask; i++) {
            htab_link_t *l = t->slots[i];
            while (l) {
                htab_link_t *next = l->next;
                l->next = slots[l->hash & mask];
                slots[l->hash & mask] = l;
                l = next;
            }
        }
        free(t->slots);
    }
    t->slots = slots;
    t->mask = mask;
}

void htab_insert(htab_t *t, htab_link_t *link, uint64_t hash)
{
    if (!t->slots)
        grow(t, t->min_slots ? t->min_slots : HTAB_DEFAULT_SLOTS);
    else if (t->n + 1 > t->mask + 1)
        grow(t, (t->mask + 1) * 2);
    link->hash = hash;
    htab_link_t **slot = &t->slots[hash & t->mask];
    link->next = *slot;
    *slot = link;
    t->n++;
}

void htab_remove(htab_t *t, htab_link_t *link)
{
    for (htab_link_t **pp = &t->slots[link->hash & t->mask]; *pp; pp = &(*pp)->next) {
        if (*pp == link) {
            *pp = link->next;
            link->next = NULL;
            t->n--;
            return;
        }
    }
    ASSERT(!"htab_remove: link not in table");
}

static htab_link_t *advance(htab_iter_t *it)
{
    const htab_t *t = it->t;
    while (!it->next && t->slots && it->slot <= t->mask)
        it->next = t->slots[it->slot++];
    htab_link_t *l = it->next;
    if (l)
        it->next = l->next;
    return l;
}

htab_link_t *htab_iter_first(htab_iter_t *it, const htab_t *t)
{
    *it = (htab_iter_t){.t = t};
    return advance(it);
}

htab_link_t *htab_iter_next(htab_iter_t *it)
{
    return advance(it);
}

int htab_validate(const htab_t *t, htab_stats_t *out)
{
    htab_stats_t st = {.n_slots = t->slots ? t->mask + 1 : 0};
    if (!t->slots) {
        if (t->n != 0)
            return -EINVAL;
    } else {
        if ((t->mask & (t->mask + 1)) != 0)
            return -EINVAL;
        for (size_t i = 0; i <= t->mask; i++) {
            size_t chain = 0;
            for (const htab_link_t *l = t->slots[i]; l; l = l->next) {
                if ((l->hash & t->mask) != i)
                    return -EINVAL;
                if (++chain > t->n)
                    return -EINVAL; /* a loop in the chain */
                st.n++;
                st.steps += chain;
            }
            if (chain > st.max_chain)
                st.max_chain = chain;
        }
        if (st.n != t->n || t->n > t->mask + 1)
            return -EINVAL;
    }
    if (out)
        *out = st;
    return 0;
}
