/* pool.c — where dtls_peer_t structs live: chunks of DTLS_POOL_CHUNK peers, reused through a
 * free list, owned by the listener and by every peer still allocated.
 *
 * Why not malloc: a peer is allocated while its handshake runs, between the ~80 KB of small
 * blocks of the SSL objects of all handshakes in flight. When those SSLs are freed (the
 * session moved to the compact record layer), a peer struct left in the middle pins a page
 * of each hole, and idle sessions cost several pages each although their live data is ~1 KB
 * (measured with malloc_stats: 1.3 MB in use, 75 MB of arena). Peers taken from chunks keep
 * long-lived session memory out of the handshake heap.
 *
 * Invariant: refs = peers handed out + 1 while the listener lives; the pool and its chunks
 * are freed when refs drops to zero (peers may outlive their listener: the CoAP engine
 * holds references). One shard thread only. Memory is returned to the free list, not to
 * malloc, so the pool's size is the peak number of peers (bounded by max_sessions +
 * max_handshakes).
 */
#include "dtls/dtls_int.h"

#include "core/err.h"
#include "core/xmalloc.h"

#include <stdlib.h>
#include <string.h>

enum { DTLS_POOL_CHUNK = 64 };

struct dtls_pool {
    int refs;
    dtls_peer_t *free; /* linked through next (the age-list link, unused here) */
    void **chunks;
    size_t n_chunks, cap_chunks;
};

dtls_pool_t *dtls__pool_new(void)
{
    dtls_pool_t *pool = xcalloc(1, sizeof *pool);
    pool->refs = 1;
    return pool;
}

static void pool_destroy(dtls_pool_t *pool)
{
    for (size_t i = 0; i < pool->n_chunks; i++)
        free(pool->chunks[i]);
    free(pool->chunks);
    free(pool);
}

dtls_peer_t *dtls__pool_get(dtls_pool_t *pool)
{
    if (!pool->free) {
        if (pool->n_chunks == pool->cap_chunks) {
            pool->cap_chunks = pool->cap_chunks ? 2 * pool->cap_chunks : 16;
            pool->chunks = xrealloc(pool->chunks, pool->cap_chunks * sizeof *pool->chunks);
        }
        dtls_peer_t *c = xcalloc(DTLS_POOL_CHUNK, sizeof *c);
        pool->chunks[pool->n_chunks++] = c;
        for (size_t i = DTLS_POOL_CHUNK; i-- > 0;) {
            c[i].next = pool->free;
            pool->free = &c[i];
        }
    }
    dtls_peer_t *p = pool->free;
    pool->free = p->next;
    memset(p, 0, sizeof *p);
    p->pool = pool;
    pool->refs++;
    return p;
}

void dtls__pool_put(dtls_peer_t *p)
{
    dtls_pool_t *pool = p->pool;
    ASSERT(pool && pool->refs > 0);
    memset(p, 0, sizeof *p);
    p->next = pool->free;
    pool->free = p;
    if (--pool->refs == 0)
        pool_destroy(pool);
}

void dtls__pool_release(dtls_pool_t *pool)
{
    if (pool && --pool->refs == 0)
        pool_destroy(pool);
}
