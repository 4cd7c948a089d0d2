/* device_cache.c — device uuid -> id for the REST telemetry and attribute handlers.
 *
 * Every POST .../DEVICE/{uuid}/SHARED_SCOPE needs only the device's numeric id, and reading it
 * from SQLite was a third of the handler's CPU in a bulk update. The cache is a 4-way
 * set-associative table (a full set replaces its ways in turn; a miss just reads the store),
 * so memory is bounded by HTTP_DEV_CACHE_SLOTS whatever the number of devices; 4 ways keep a
 * bulk update of 10 000 devices from evicting itself (direct-mapped, ~40 % missed). A device's uuid and id never
 * change; the only thing that makes an entry wrong is the device being deleted, which the
 * REST delete handler reports with http__dev_cache_forget.
 * Key invariant: no entry outlives the deletion of its device. Lookups that read the store
 * carry the generation taken before the read; a forget bumps it, so a read that raced a
 * delete is not inserted afterwards.
 */
#include "http/http_int.h"

#include "core/hash.h"
#include "core/xmalloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct dslot {
    int64_t id; /* 0 = free (store ids start at 1) */
    char uuid[STORE_UUID_LEN];
} dslot_t;

#define WAYS 4
#define SETS (HTTP_DEV_CACHE_SLOTS / WAYS)

struct http_dev_cache {
    pthread_mutex_t mu;
    uint64_t gen;
    dslot_t *slots;   /* SETS x WAYS; calloc'd: pages are only touched as devices are used */
    uint8_t *victim;  /* per set: the way the next insert into a full set replaces */
};

http_dev_cache_t *http__dev_cache_new(void)
{
    http_dev_cache_t *c = xcalloc(1, sizeof *c);
    c->slots = xcalloc(HTTP_DEV_CACHE_SLOTS, sizeof *c->slots);
    c->victim = xcalloc(SETS, 1);
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void http__dev_cache_free(http_dev_cache_t *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->mu);
    free(c->slots);
    free(c->victim);
    free(c);
}

/* The set of uuid: its first way. */
static size_t set_of(const char *uuid)
{
    return (size_t)(hash_bytes(uuid, STORE_UUID_LEN) % SETS);
}

/* The way holding uuid in its set, or NULL. Caller holds mu. */
static dslot_t *find(http_dev_cache_t *c, size_t set, const char *uuid)
{
    dslot_t *w = &c->slots[set * WAYS];
    for (int i = 0; i < WAYS; i++)
        if (w[i].id != 0 && memcmp(w[i].uuid, uuid, STORE_UUID_LEN) == 0)
            return &w[i];
    return NULL;
}

static bool valid(const char *uuid)
{
    return uuid && strnlen(uuid, STORE_UUID_LEN + 1) == STORE_UUID_LEN;
}

uint64_t http__dev_cache_gen(http_dev_cache_t *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t g = c->gen;
    pthread_mutex_unlock(&c->mu);
    return g;
}

bool http__dev_cache_get(http_dev_cache_t *c, const char *uuid, int64_t *id)
{
    if (!valid(uuid))
        return false;
    size_t set = set_of(uuid);
    pthread_mutex_lock(&c->mu);
    dslot_t *s = find(c, set, uuid);
    bool hit = s != NULL;
    if (hit)
        *id = s->id;
    pthread_mutex_unlock(&c->mu);
    return hit;
}

void http__dev_cache_put(http_dev_cache_t *c, const char *uuid, int64_t id, uint64_t gen)
{
    if (!valid(uuid) || id <= 0)
        return;
    size_t set = set_of(uuid);
    pthread_mutex_lock(&c->mu);
    if (gen == c->gen) {
        dslot_t *s = find(c, set, uuid);
        for (int i = 0; !s && i < WAYS; i++)
            if (c->slots[set * WAYS + (size_t)i].id == 0)
                s = &c->slots[set * WAYS + (size_t)i];
        if (!s) {
            s = &c->slots[set * WAYS + c->victim[set]];
            c->victim[set] = (uint8_t)((c->victim[set] + 1) % WAYS);
        }
        s->id = id;
        memcpy(s->uuid, uuid, STORE_UUID_LEN);
    }
    pthread_mutex_unlock(&c->mu);
}

void http__dev_cache_forget(http_dev_cache_t *c, const char *uuid)
{
    pthread_mutex_lock(&c->mu);
    c->gen++;
    if (valid(uuid)) {
        dslot_t *s = find(c, set_of(uuid), uuid);
        if (s)
            s->id = 0;
    }
    pthread_mutex_unlock(&c->mu);
}
