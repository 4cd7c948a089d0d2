/* mem.c — OpenSSL's heap, kept apart from ours (installed with CRYPTO_set_mem_functions).
 *
 * Why: a full DTLS handshake makes ~80 KB of short-lived OpenSSL allocations, thousands of
 * blocks of every size. With them in the same glibc arena as the few long-lived small blocks
 * a session keeps after its SSL is freed (CoAP peer, dedup entry, device cache entry, ...),
 * those blocks land in the holes the handshakes leave and each pins a page: measured with
 * malloc_stats on 1000 idle sessions, 885 KB in use in a 75 MB arena, ~11 KB of RSS per
 * session although its live data is ~1 KB, and the RSS never came back after the sessions
 * closed. Here OpenSSL's blocks up to MEM_MAX_CLASS bytes come from size-class slabs in a
 * region of address space of their own; a slab whose last block is freed goes back to the
 * kernel (MADV_DONTNEED), so the handshake churn neither fragments our heap nor stays
 * resident once the handshakes are done. Larger blocks (rare) still use malloc.
 *
 * Invariants: a pointer is ours iff it lies in [region, region + MEM_REGION); every slab is
 * MEM_SLAB bytes at a MEM_SLAB multiple from the region's start; its header is kept apart in
 * M.meta (headers inside the slabs, 32 KB apart, all fell in one L1 cache set: measured 2x
 * slower); blocks are 16-byte aligned like malloc's. One mutex guards everything (OpenSSL objects are
 * allocated and freed from any thread); glibc takes an arena lock on the same paths anyway.
 * Not installed under AddressSanitizer (ASan must see OpenSSL's blocks) nor when
 * COAPHUB_OPENSSL_HEAP=0; then everything is plain malloc.
 */
#include "dtls/dtls_int.h"

#include <errno.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#define MEM_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEM_UNDER_ASAN 1
#endif
#endif
#ifndef MEM_UNDER_ASAN
#define MEM_UNDER_ASAN 0
#endif

/* Small slabs, so that a long-lived block amid freed ones pins at most 32 KB. */
#define MEM_SLAB ((size_t)32 * 1024)
#define MEM_REGION ((size_t)1 << 30) /* 32768 slabs; past that, malloc */
#define MEM_N_SLABS (MEM_REGION / MEM_SLAB)
#define MEM_MAX_CLASS MEM_SLAB
/* Empty slabs kept resident (not given back) so a block alternately allocated and freed does
 * not cost a madvise and page faults each time; the rest go back to the kernel. */
#define MEM_SPARES 64

typedef struct mem_slab mem_slab_t;
struct mem_slab {
    mem_slab_t *prev, *next; /* the class's list of slabs with a free block */
    void *free;              /* freed blocks, linked through their first word */
    uint32_t used;           /* blocks handed out */
    uint32_t bump;           /* blocks never handed out start at this index */
    uint32_t n_blocks;
    uint16_t cls;
    bool listed;
};

typedef struct mem_class {
    size_t size;
    mem_slab_t *avail; /* slabs with room */
} mem_class_t;

enum { MEM_MAX_CLASSES = 96 };

static struct {
    pthread_mutex_t mu;
    uint8_t *region;
    size_t carved;             /* bytes of the region made into slabs so far */
    /* Released slabs, by index. Kept out of the slabs: a link written into a released slab
     * would fault one of its pages back in (measured: 4 KB per release). */
    uint32_t empty[MEM_N_SLABS];
    mem_slab_t meta[MEM_N_SLABS]; /* slab headers; untouched entries cost no memory */
    size_t n_empty;
    mem_slab_t *spare;         /* empty resident slabs, at most MEM_SPARES */
    size_t n_spare;
    mem_class_t cls[MEM_MAX_CLASSES];
    size_t n_cls;
    uint8_t idx16[MEM_MAX_CLASS / 16 + 1]; /* (size + 15) / 16 -> class */
    dtls_mem_stats_t st;
} M = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Classes: every 16 bytes up to 256, then 8 steps per doubling (waste <= 12.5 %). */
static void classes_init(void)
{
    size_t n = 0;
    for (size_t s = 16; s <= 256; s += 16)
        M.cls[n++].size = s;
    for (size_t base = 256; base < MEM_MAX_CLASS; base *= 2)
        for (size_t k = 1; k <= 8 && base + base / 8 * k < MEM_MAX_CLASS; k++)
            M.cls[n++].size = base + base / 8 * k;
    M.cls[n++].size = MEM_MAX_CLASS;
    M.n_cls = n;
    size_t c = 0;
    for (size_t i = 0; i <= MEM_MAX_CLASS / 16; i++) {
        while (M.cls[c].size < i * 16)
            c++;
        M.idx16[i] = (uint8_t)c;
    }
}

static bool ours(const void *p)
{
    return M.region && (const uint8_t *)p >= M.region &&
           (const uint8_t *)p < M.region + MEM_REGION;
}

static mem_slab_t *slab_of(const void *p)
{
    return &M.meta[(size_t)((const uint8_t *)p - M.region) / MEM_SLAB];
}

static uint8_t *slab_base(const mem_slab_t *s)
{
    return M.region + (size_t)(s - M.meta) * MEM_SLAB;
}

static void list_push(mem_class_t *c, mem_slab_t *s)
{
    s->prev = NULL;
    s->next = c->avail;
    if (c->avail)
        c->avail->prev = s;
    c->avail = s;
    s->listed = true;
}

static void list_unlink(mem_class_t *c, mem_slab_t *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        c->avail = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    s->listed = false;
}

/* A fresh slab for class ci, or NULL when the region is used up. */
static mem_slab_t *slab_new(size_t ci)
{
    mem_slab_t *s;
    mem_class_t *c = &M.cls[ci];
    if (M.spare) {
        s = M.spare;
        M.spare = s->next;
        M.n_spare--;
    } else if (M.n_empty > 0) {
        s = &M.meta[M.empty[--M.n_empty]];
        M.st.slabs_resident++;
    } else {
        if (M.carved + MEM_SLAB > MEM_REGION)
            return NULL;
        s = &M.meta[M.carved / MEM_SLAB];
        if (mprotect(M.region + M.carved, MEM_SLAB, PROT_READ | PROT_WRITE) != 0)
            return NULL;
        M.carved += MEM_SLAB;
        M.st.slabs_resident++;
    }
    memset(s, 0, sizeof *s);
    s->cls = (uint16_t)ci;
    s->n_blocks = (uint32_t)(MEM_SLAB / c->size);
    list_push(c, s);
    return s;
}

static void *mem_get(size_t n)
{
    size_t ci = M.idx16[(n + 15) / 16];
    mem_class_t *c = &M.cls[ci];
    mem_slab_t *s = c->avail;
    if (!s && !(s = slab_new(ci)))
        return NULL;
    void *p;
    if (s->free) {
        p = s->free;
        memcpy(&s->free, p, sizeof(void *));
    } else {
        p = slab_base(s) + (size_t)s->bump * c->size;
        s->bump++;
    }
    s->used++;
    if (!s->free && s->bump == s->n_blocks)
        list_unlink(c, s);
    M.st.blocks++;
    M.st.bytes += c->size;
    return p;
}

static void mem_put(void *p)
{
    mem_slab_t *s = slab_of(p);
    mem_class_t *c = &M.cls[s->cls];
    memcpy(p, &s->free, sizeof(void *));
    s->free = p;
    s->used--;
    M.st.blocks--;
    M.st.bytes -= c->size;
    if (!s->listed)
        list_push(c, s);
    if (s->used > 0)
        return;
    /* Empty: keep a few resident, give the others' pages back to the kernel. */
    list_unlink(c, s);
    if (M.n_spare < MEM_SPARES) {
        s->next = M.spare;
        M.spare = s;
        M.n_spare++;
        return;
    }
    (void)madvise(slab_base(s), MEM_SLAB, MADV_DONTNEED);
    M.empty[M.n_empty++] = (uint32_t)(s - M.meta);
    M.st.slabs_resident--;
    M.st.slabs_released++;
}

void dtls__mem_trim(void)
{
    if (!M.region)
        return;
    pthread_mutex_lock(&M.mu);
    while (M.spare) { /* the spares helped a burst; after it they are just resident pages */
        mem_slab_t *s = M.spare;
        M.spare = s->next;
        M.n_spare--;
        (void)madvise(slab_base(s), MEM_SLAB, MADV_DONTNEED);
        M.empty[M.n_empty++] = (uint32_t)(s - M.meta);
        M.st.slabs_resident--;
        M.st.slabs_released++;
    }
    pthread_mutex_unlock(&M.mu);
}

void *dtls__mem_malloc(size_t n)
{
    if (n <= MEM_MAX_CLASS && M.region) {
        pthread_mutex_lock(&M.mu);
        void *p = mem_get(n);
        pthread_mutex_unlock(&M.mu);
        if (p)
            return p;
    }
    return malloc(n);
}

void dtls__mem_free(void *p)
{
    if (!p)
        return;
    if (!ours(p)) {
        free(p);
        return;
    }
    pthread_mutex_lock(&M.mu);
    mem_put(p);
    pthread_mutex_unlock(&M.mu);
}

void *dtls__mem_realloc(void *p, size_t n)
{
    if (!p)
        return dtls__mem_malloc(n);
    if (!ours(p))
        return realloc(p, n); /* a malloc block stays one */
    size_t have = M.cls[slab_of(p)->cls].size; /* stable while p is live */
    if (n <= have && (n > have / 2 || have <= 256))
        return p;
    void *q = dtls__mem_malloc(n);
    if (!q)
        return NULL; /* p stays valid, as realloc promises */
    memcpy(q, p, n < have ? n : have);
    dtls__mem_free(p);
    return q;
}

static void *ossl_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    return dtls__mem_malloc(n);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    if (n == 0) { /* CRYPTO_realloc(p, 0) means free */
        dtls__mem_free(p);
        return NULL;
    }
    return dtls__mem_realloc(p, n);
}

static void ossl_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    dtls__mem_free(p);
}

int dtls__mem_init(void)
{
    if (M.region)
        return 0;
    classes_init();
    /* Address space only: slabs are made writable (and counted as committed) as needed. */
    void *r = mmap(NULL, MEM_REGION, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
                   0);
    if (r == MAP_FAILED)
        return -errno;
    /* slab_of works on offsets from the region's start, so page alignment is enough. */
    M.region = r;
    return 0;
}

/* Runs before main: CRYPTO_set_mem_functions only works before OpenSSL's first allocation. */
__attribute__((constructor)) static void mem_install(void)
{
    if (MEM_UNDER_ASAN)
        return;
    const char *env = getenv("COAPHUB_OPENSSL_HEAP");
    if (env && strcmp(env, "0") == 0)
        return;
    if (dtls__mem_init() != 0)
        return;
    if (CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free) != 1)
        return; /* something allocated already: OpenSSL keeps malloc, our slabs stay unused */
    M.st.installed = true;
}

void dtls__mem_stats(dtls_mem_stats_t *out)
{
    pthread_mutex_lock(&M.mu);
    *out = M.st;
    pthread_mutex_unlock(&M.mu);
}
