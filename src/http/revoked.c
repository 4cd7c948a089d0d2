/* revoked.c — tokens refused before their expiry: logged-out sessions and users whose older
 * tokens no longer count.
 *
 * Every login starts a session: its access and refresh tokens (and the pairs refreshed from
 * them) carry the same random "sessionId" claim, as ThingsBoard's do. POST /api/auth/logout
 * puts that id here until every token of the session has expired (now + the refresh token
 * lifetime: none of them was issued later than now). A user entry refuses that user's tokens
 * issued before a second (ThingsBoard's TokenOutdatingService rule, used for tokens without a
 * sessionId and when the session set is full).
 *
 * Bounded: at most max_sessions session entries (24 bytes each) in an open-addressing table
 * at most half full, grown as needed; expired entries are purged when it fills. When it is full of live ones
 * the caller falls back to a user entry (that user's other sessions end too: more revocation,
 * never less). User entries are few (one per user who logged out so) and may use the table's
 * other half. Keys are SipHash of the id (secret per-process key). An empty set is answered
 * without taking the lock, so REST clients pay nothing until somebody logs out.
 */
#include "http/http_int.h"

#include "core/hash.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

typedef struct rentry {
    uint64_t key;    /* 0 = free; low bit: 1 session, and the kind is hashed in */
    int64_t until_s; /* forgotten after this second (all such tokens expired) */
    int64_t nbf_s;   /* user entries: tokens issued before this second are refused */
} rentry_t;

struct http_revoked {
    pthread_mutex_t mu;
    rentry_t *slots;
    size_t mask;
    size_t max_sessions, n_sessions, n_users;
    size_t max_slots;     /* 4 * max_sessions: sessions and users each fill at most half */
    atomic_size_t n_live; /* n_sessions + n_users, read without the lock */
    uint64_t revoked_total, fallbacks;
};

static uint64_t key_of(char kind, const char *id)
{
    char b[80];
    size_t n = strnlen(id, sizeof b - 2);
    b[0] = kind;
    memcpy(b + 1, id, n);
    return hash_bytes(b, n + 1) | 1;
}

http_revoked_t *http__revoked_new(size_t max_sessions)
{
    http_revoked_t *r = xcalloc(1, sizeof *r);
    r->max_sessions = max_sessions < 16 ? 16 : max_sessions;
    r->max_slots = 64;
    while (r->max_slots < 4 * r->max_sessions)
        r->max_slots *= 2;
    r->slots = xcalloc(64, sizeof *r->slots);
    r->mask = 63;
    pthread_mutex_init(&r->mu, NULL);
    atomic_init(&r->n_live, 0);
    return r;
}

void http__revoked_free(http_revoked_t *r)
{
    if (!r)
        return;
    pthread_mutex_destroy(&r->mu);
    free(r->slots);
    free(r);
}

static rentry_t *find(http_revoked_t *r, uint64_t key)
{
    for (size_t i = key & r->mask;; i = (i + 1) & r->mask) {
        if (r->slots[i].key == key)
            return &r->slots[i];
        if (r->slots[i].key == 0)
            return NULL;
    }
}

static void put(http_revoked_t *r, rentry_t e)
{
    size_t i = e.key & r->mask;
    while (r->slots[i].key != 0)
        i = (i + 1) & r->mask;
    r->slots[i] = e;
}

/* Rebuilds the table with n slots, without the entries whose tokens have all expired. */
static void rebuild(http_revoked_t *r, int64_t now_s, size_t n)
{
    size_t old_n = r->mask + 1;
    rentry_t *old = r->slots;
    r->slots = xcalloc(n, sizeof *r->slots);
    r->mask = n - 1;
    r->n_sessions = r->n_users = 0;
    for (size_t i = 0; i < old_n; i++) {
        if (old[i].key == 0 || old[i].until_s <= now_s)
            continue;
        put(r, old[i]);
        if (old[i].nbf_s)
            r->n_users++;
        else
            r->n_sessions++;
    }
    free(old);
}

static void purge(http_revoked_t *r, int64_t now_s)
{
    rebuild(r, now_s, r->mask + 1);
}

/* Grown by doubling up to 4 * max_sessions slots, so an idle server keeps 64 (1.5 KiB). */
static void make_room(http_revoked_t *r, int64_t now_s)
{
    size_t n = r->mask + 1;
    if ((r->n_sessions + r->n_users + 1) * 2 > n && n < r->max_slots)
        rebuild(r, now_s, n * 2);
}

static void publish(http_revoked_t *r)
{
    atomic_store(&r->n_live, r->n_sessions + r->n_users);
}

int http__revoked_add_session(http_revoked_t *r, const char *session_id, int64_t until_s,
                              int64_t now_s)
{
    uint64_t k = key_of('S', session_id);
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    rentry_t *e = find(r, k);
    if (e) {
        if (e->until_s < until_s)
            e->until_s = until_s;
    } else {
        if (r->n_sessions >= r->max_sessions)
            purge(r, now_s);
        if (r->n_sessions >= r->max_sessions) {
            r->fallbacks++;
            rc = -ENOSPC;
        } else {
            make_room(r, now_s);
            put(r, (rentry_t){.key = k, .until_s = until_s});
            r->n_sessions++;
            r->revoked_total++;
        }
    }
    publish(r);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int http__revoked_add_user(http_revoked_t *r, const char *user_id, int64_t nbf_s, int64_t until_s,
                           int64_t now_s)
{
    uint64_t k = key_of('U', user_id);
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    rentry_t *e = find(r, k);
    if (e) {
        if (e->nbf_s < nbf_s)
            e->nbf_s = nbf_s;
        if (e->until_s < until_s)
            e->until_s = until_s;
        r->revoked_total++;
    } else {
        /* Users share the half of the table sessions cannot take (load stays <= 1/2). */
        if (r->n_users >= r->max_sessions)
            purge(r, now_s);
        if (r->n_users >= r->max_sessions) {
            rc = -ENOSPC;
        } else {
            make_room(r, now_s);
            put(r, (rentry_t){.key = k, .until_s = until_s, .nbf_s = nbf_s});
            r->n_users++;
            r->revoked_total++;
        }
    }
    publish(r);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

bool http__revoked_check(http_revoked_t *r, const http_claims_t *c, int64_t now_s)
{
    if (atomic_load(&r->n_live) == 0)
        return false;
    bool out = false;
    pthread_mutex_lock(&r->mu);
    if (c->session_id[0]) {
        const rentry_t *e = find(r, key_of('S', c->session_id));
        out = e && e->until_s > now_s;
    }
    if (!out && c->user_id[0]) {
        const rentry_t *e = find(r, key_of('U', c->user_id));
        out = e && e->until_s > now_s && c->iat < e->nbf_s;
    }
    pthread_mutex_unlock(&r->mu);
    return out;
}

void http__revoked_stats(http_revoked_t *r, uint64_t *revoked_total, uint64_t *entries,
                         uint64_t *fallbacks)
{
    pthread_mutex_lock(&r->mu);
    *revoked_total = r->revoked_total;
    *entries = r->n_sessions + r->n_users;
    *fallbacks = r->fallbacks;
    pthread_mutex_unlock(&r->mu);
}
