/* arena.c — chunked bump allocator (see arena.h for the lifetime rules).
 *
 * Layout: each chunk is one malloc block, a header followed by `size` usable bytes; chunks
 * form a singly linked list from `first` to `cur`. Allocation bumps `used` in `cur`; when it
 * does not fit, a new chunk (the spare if it fits, else a fresh one of max(chunk_size, n)
 * bytes) is appended. Reset frees every chunk after the first except one standard-size
 * spare, so a burst of big payloads does not keep its memory but a steady mix of small and
 * slightly-too-big ones does not malloc on every request either.
 */
#include "core/arena.h"

#include "core/err.h"
#include "core/xmalloc.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN alignof(max_align_t)

struct arena_chunk {
    arena_chunk_t *next;
    size_t size, used;
    size_t last; /* offset of the latest allocation (for arena_grow in place) */
    alignas(max_align_t) unsigned char data[];
};

static size_t round_up(size_t n)
{
    return (n + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
}

static arena_chunk_t *chunk_new(size_t size)
{
    if (size > SIZE_MAX - sizeof(arena_chunk_t))
        err_assert_fail("arena chunk size overflow", __FILE__, __LINE__);
    arena_chunk_t *c = xmalloc(sizeof *c + size);
    c->next = NULL;
    c->size = size;
    c->used = c->last = 0;
    return c;
}

void arena_init(arena_t *a, size_t chunk_size)
{
    a->chunk_size = round_up(chunk_size ? chunk_size : ARENA_DEFAULT_CHUNK);
    a->first = a->cur = chunk_new(a->chunk_size);
    a->spare = NULL;
}

void arena_fini(arena_t *a)
{
    for (arena_chunk_t *c = a->first, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(a->spare);
    memset(a, 0, sizeof *a);
}

void arena_reset(arena_t *a)
{
    for (arena_chunk_t *c = a->first->next, *next; c; c = next) {
        next = c->next;
        if (!a->spare && c->size == a->chunk_size) {
            c->next = NULL;
            a->spare = c;
        } else {
            free(c);
        }
    }
    a->first->next = NULL;
    a->first->used = a->first->last = 0;
    a->cur = a->first;
}

void *arena_alloc(arena_t *a, size_t n)
{
    ASSERT(a->cur);
    if (n > SIZE_MAX - ARENA_ALIGN)
        err_assert_fail("arena allocation size overflow", __FILE__, __LINE__);
    size_t need = round_up(n ? n : 1);
    arena_chunk_t *c = a->cur;
    if (c->size - c->used < need) {
        if (a->spare && need <= a->spare->size) {
            c->next = a->spare;
            a->spare = NULL;
        } else {
            c->next = chunk_new(need > a->chunk_size ? need : a->chunk_size);
        }
        c = a->cur = c->next;
        c->used = 0;
    }
    c->last = c->used;
    c->used += need;
    return c->data + c->last;
}

void *arena_calloc(arena_t *a, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        err_assert_fail("arena_calloc size overflow", __FILE__, __LINE__);
    void *p = arena_alloc(a, n * size);
    memset(p, 0, n * size);
    return p;
}

char *arena_strndup(arena_t *a, const char *s, size_t len)
{
    char *p = arena_alloc(a, len + 1);
    if (len)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *arena_strdup(arena_t *a, const char *s) { return arena_strndup(a, s, strlen(s)); }

void *arena_grow(arena_t *a, void *p, size_t old_size, size_t new_size)
{
    if (new_size <= old_size && p)
        return p;
    arena_chunk_t *c = a->cur;
    if (p && (unsigned char *)p == c->data + c->last && new_size <= SIZE_MAX - ARENA_ALIGN) {
        size_t need = round_up(new_size);
        if (need <= c->size - c->last) {
            c->used = c->last + need; /* the latest allocation: extend it where it is */
            return p;
        }
    }
    void *q = arena_alloc(a, new_size);
    if (p && old_size)
        memcpy(q, p, old_size);
    return q;
}
