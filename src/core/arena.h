/* arena.h — a chunked bump allocator for memory that lives exactly as long as one request.
 *
 * Why: the datagram path parses a payload into a small tree and a key/value list that die
 * when the handler returns; a malloc per node was most of a shard's allocations per request
 * (issue #5). An arena gives them out by moving a pointer and takes them all back at once.
 *
 * Invariant: the first chunk is allocated once by arena_init and kept until arena_fini, and
 * arena_reset keeps it (plus at most one spare chunk of the standard size), so after a reset
 * a request whose allocations fit the first chunk never calls malloc. Bigger requests get
 * further chunks on demand; a single allocation larger than a chunk gets a chunk of its own.
 * Not thread-safe: one arena per thread (per shard), or per call.
 */
#ifndef COAPHUB_CORE_ARENA_H
#define COAPHUB_CORE_ARENA_H

#include <stddef.h>

typedef struct arena_chunk arena_chunk_t;

typedef struct arena {
    arena_chunk_t *first; /* allocated at init, kept by reset */
    arena_chunk_t *cur;   /* the chunk allocations come from; the last of the list */
    arena_chunk_t *spare; /* one standard-size chunk kept by reset, or NULL */
    size_t chunk_size;    /* usable bytes of a standard chunk */
} arena_t;

/* Standard chunk size when arena_init is given 0. */
#define ARENA_DEFAULT_CHUNK 8192

/* Allocates the first chunk (chunk_size usable bytes; 0 = ARENA_DEFAULT_CHUNK). */
void arena_init(arena_t *a, size_t chunk_size);
/* Frees every chunk; the arena must be initialised again before reuse. */
void arena_fini(arena_t *a);
/* Makes every allocation invalid and the memory reusable; see the invariant above. */
void arena_reset(arena_t *a);

/* n bytes aligned for any type (max_align_t); never NULL (aborts on exhaustion, like
 * xmalloc). arena_alloc(a, 0) returns a valid unique-enough pointer that must not be
 * dereferenced. Contents are not initialised. */
void *arena_alloc(arena_t *a, size_t n);
/* As arena_alloc, zero-filled; n * size must not overflow (checked). */
void *arena_calloc(arena_t *a, size_t n, size_t size);
/* A copy of s[0..len) plus a NUL. */
char *arena_strndup(arena_t *a, const char *s, size_t len);
/* A copy of the NUL-terminated s. */
char *arena_strdup(arena_t *a, const char *s);
/* A block of new_size bytes holding the first old_size bytes of p (arena memory or NULL).
 * Grows in place when p is the latest allocation and the chunk has room; p stays valid
 * otherwise (it is simply abandoned until the next reset). */
void *arena_grow(arena_t *a, void *p, size_t old_size, size_t new_size);

#endif
