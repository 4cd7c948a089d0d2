/* login_guard.c — who may try a password now, and how many bcrypt checks run at once.
 *
 * The rules (docs/operations.md "Login throttling"). Failures are counted in three kinds of
 * entry: per source address (IPv4 address, IPv6 /64), per (user, address) and per user. A
 * count grows while each failure comes within lock_ms of the previous one and starts again
 * after a quiet lock_ms. Before any password is hashed an attempt for user U from address A
 * is refused (429) when
 *   1. A has addr_max_fails failures (whatever names it tried), or
 *   2. (U, A) has max_fails failures, or
 *   3. U has max_fails failures in total and A has at least one failure for U.
 * Nothing else is refused: an address that has not failed for U is always let through to the
 * password check, so an attacker failing for the administrator's name from elsewhere never
 * locks the administrator out (rule 3 only stops addresses that took part). A success from A
 * clears (U, A) only; the per-user count decays by time, so nobody resets it by logging in.
 *
 * Bounded: at most max_entries entries in an open-addressing table at most half full (24-byte
 * slots, 48 bytes an entry). When full, the entry that failed least recently among those not
 * locking anything is dropped; a live lockout is never dropped, and a failure that finds the
 * table full of lockouts is not recorded (counted in /metrics). Each address can create at most
 * 1 + 2 * addr_max_fails entries per lock period before rule 1 stops it, so pushing a victim's
 * count out of the table takes hundreds of addresses, not hundreds of names.
 *
 * bcrypt costs ~50-100 ms of CPU per check. Refusals above happen before it; the gate below
 * runs at most max_concurrent checks at once, in three classes: addresses that logged in
 * successfully before (kept as entries too, dropped like unlocked ones) go first, then
 * addresses without failures; both wait up to wait_ms for a slot. Addresses with failures are
 * refused at once while the gate is full. So a flood cannot pin every core, and an
 * administrator who logged in from an address before is served ahead of a flood from fresh
 * addresses (which looks like any newcomer, and is served like one).
 *
 * Keys are SipHash (core/hash.h, secret per-process key) of the lower-cased name and the
 * address prefix: nobody can choose names that share a victim's entry. One mutex: every
 * operation is a few probes, far below the bcrypt it protects.
 */
#include "http/http_int.h"

#include "core/sockaddr.h"
#include "core/hash.h"
#include "core/xmalloc.h"

#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { K_ADDR = 1, K_USER = 2, K_USER_ADDR = 3, K_GOOD = 4 /* an address that logged in */ };

typedef struct entry {
    uint64_t key;         /* 0 = free */
    int64_t last_fail_ms; /* K_GOOD: the last success (eviction order) */
    uint32_t fails;
    uint8_t kind; /* K_* */
} entry_t;

struct http_login_guard {
    http_login_cfg_t cfg;
    pthread_mutex_t mu;
    entry_t *slots;
    size_t mask; /* slots - 1 (a power of two >= 2 * max_entries) */
    size_t count;
    http_login_stats_t st;
    /* the bcrypt gate */
    pthread_cond_t gate_cv;
    int busy, waiting[3]; /* by HTTP_LOGIN_PRIO_* */
};

void http__login_addr_key(const struct sockaddr *sa, uint8_t out[static 16])
{
    memset(out, 0, 16);
    /* Handlers called without a connection (unit tests) share one key. The prefix key is
     * an IPv4 address (also IPv4-mapped) or the IPv6 /64: one host or one customer. */
    _Static_assert(SOCKADDR_PREFIX_KEY_MAX <= 16, "prefix key fits");
    if (sa)
        (void)sockaddr_prefix_key((const struct sockaddr_storage *)(const void *)sa, out);
}

/* kind, then the lower-cased name (NUL-ended) and/or the address prefix, hashed. */
static uint64_t make_key(int kind, const char *user, const uint8_t addr[16])
{
    size_t n = user ? strnlen(user, 512) : 0;
    uint8_t *b = xmalloc(1 + n + 1 + 16);
    size_t o = 0;
    b[o++] = (uint8_t)kind;
    for (size_t i = 0; i < n; i++)
        b[o++] = (uint8_t)((user[i] >= 'A' && user[i] <= 'Z') ? user[i] + 32 : user[i]);
    b[o++] = 0;
    if (addr) {
        memcpy(b + o, addr, 16);
        o += 16;
    }
    uint64_t k = hash_bytes(b, o);
    free(b);
    return k | 1; /* 0 marks a free slot */
}

http_login_guard_t *http__login_guard_new(const http_login_cfg_t *cfg)
{
    http_login_guard_t *g = xcalloc(1, sizeof *g);
    g->cfg = *cfg;
    if (g->cfg.max_entries < 16)
        g->cfg.max_entries = 16;
    if (g->cfg.max_concurrent < 1) { /* 0: half the cores, so logins never take them all */
        long n = sysconf(_SC_NPROCESSORS_ONLN) / 2;
        g->cfg.max_concurrent = n < 1 ? 1 : (int)n;
    }
    size_t n = 32;
    while (n < 2 * g->cfg.max_entries)
        n *= 2;
    g->slots = xcalloc(n, sizeof *g->slots);
    g->mask = n - 1;
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->gate_cv, &ca);
    pthread_condattr_destroy(&ca);
    return g;
}

void http__login_guard_free(http_login_guard_t *g)
{
    if (!g)
        return;
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->gate_cv);
    free(g->slots);
    free(g);
}

static entry_t *find(http_login_guard_t *g, uint64_t key)
{
    for (size_t i = key & g->mask;; i = (i + 1) & g->mask) {
        if (g->slots[i].key == key)
            return &g->slots[i];
        if (g->slots[i].key == 0)
            return NULL;
    }
}

/* Linear probing without tombstones: later entries of the probe run move back into the hole
 * unless their home slot lies cyclically in (hole, j]. */
static void remove_at(http_login_guard_t *g, size_t i)
{
    size_t j = i;
    for (;;) {
        j = (j + 1) & g->mask;
        if (g->slots[j].key == 0)
            break;
        size_t home = g->slots[j].key & g->mask;
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        g->slots[i] = g->slots[j];
        i = j;
    }
    memset(&g->slots[i], 0, sizeof g->slots[i]);
    g->count--;
}

/* The failures that still count at now: none after a quiet lock_ms. */
static uint32_t live_fails(const http_login_guard_t *g, const entry_t *e, int64_t now)
{
    if (!e || now - e->last_fail_ms >= g->cfg.lock_ms)
        return 0;
    return e->fails;
}

static uint32_t limit_of(const http_login_guard_t *g, int kind)
{
    return kind == K_ADDR ? (uint32_t)g->cfg.addr_max_fails : (uint32_t)g->cfg.max_fails;
}

static bool is_locking(const http_login_guard_t *g, const entry_t *e, int64_t now)
{
    return e && live_fails(g, e, now) >= limit_of(g, e->kind);
}

/* Drops the least recently failed entry that locks nothing (a scan: only failures that find
 * the table full pay for it, and they are throttled per address). */
static bool evict_one(http_login_guard_t *g, int64_t now)
{
    size_t victim = SIZE_MAX;
    for (size_t i = 0; i <= g->mask; i++) {
        const entry_t *e = &g->slots[i];
        if (e->key == 0 || is_locking(g, e, now))
            continue;
        if (victim == SIZE_MAX || e->last_fail_ms < g->slots[victim].last_fail_ms)
            victim = i;
    }
    if (victim == SIZE_MAX)
        return false;
    remove_at(g, victim);
    g->st.evicted++;
    return true;
}

static entry_t *find_or_add(http_login_guard_t *g, uint64_t key, int kind, int64_t now)
{
    entry_t *e = find(g, key);
    if (e)
        return e;
    if (g->count >= g->cfg.max_entries && !evict_one(g, now))
        return NULL;
    size_t i = key & g->mask;
    while (g->slots[i].key != 0)
        i = (i + 1) & g->mask;
    g->slots[i] = (entry_t){.key = key, .kind = (uint8_t)kind};
    g->count++;
    return &g->slots[i];
}

/* Counts one failure; true if this one started a lockout. */
static bool add_fail(http_login_guard_t *g, uint64_t key, int kind, int64_t now)
{
    entry_t *e = find_or_add(g, key, kind, now);
    if (!e) {
        g->st.table_full++;
        return false;
    }
    e->fails = live_fails(g, e, now) + 1;
    e->last_fail_ms = now;
    return e->fails == limit_of(g, kind);
}

int http__login_check(http_login_guard_t *g, const char *user, const uint8_t addr[static 16],
                      int64_t now, int *prio)
{
    uint64_t ka = make_key(K_ADDR, NULL, addr), ku = make_key(K_USER, user, NULL),
             kua = make_key(K_USER_ADDR, user, addr);
    pthread_mutex_lock(&g->mu);
    const entry_t *ea = find(g, ka), *eu = find(g, ku), *eua = find(g, kua);
    int why = HTTP_LOGIN_ALLOW;
    if (is_locking(g, ea, now))
        why = HTTP_LOGIN_ADDR_LOCKED;
    else if (is_locking(g, eua, now))
        why = HTTP_LOGIN_USER_LOCKED;
    else if (is_locking(g, eu, now) && live_fails(g, eua, now) > 0)
        why = HTTP_LOGIN_USER_LOCKED;
    if (why != HTTP_LOGIN_ALLOW)
        g->st.throttled++;
    if (prio) {
        if (find(g, make_key(K_GOOD, NULL, addr)))
            *prio = HTTP_LOGIN_PRIO_GOOD;
        else
            *prio = live_fails(g, ea, now) == 0 ? HTTP_LOGIN_PRIO_CLEAN : HTTP_LOGIN_PRIO_DIRTY;
    }
    pthread_mutex_unlock(&g->mu);
    return why;
}

void http__login_result(http_login_guard_t *g, const char *user, const uint8_t addr[static 16],
                        bool ok, int64_t now)
{
    uint64_t ka = make_key(K_ADDR, NULL, addr), ku = make_key(K_USER, user, NULL),
             kua = make_key(K_USER_ADDR, user, addr);
    pthread_mutex_lock(&g->mu);
    if (ok) {
        entry_t *e = find(g, kua);
        if (e)
            remove_at(g, (size_t)(e - g->slots));
        e = find_or_add(g, make_key(K_GOOD, NULL, addr), K_GOOD, now);
        if (e)
            e->last_fail_ms = now;
    } else {
        g->st.failures++;
        g->st.lockouts += add_fail(g, ka, K_ADDR, now);
        g->st.lockouts += add_fail(g, kua, K_USER_ADDR, now);
        g->st.lockouts += add_fail(g, ku, K_USER, now);
    }
    pthread_mutex_unlock(&g->mu);
}

/* Whether a client of class prio may take a slot now: one is free and nobody of a higher class
 * waits for it. */
static bool may_enter(const http_login_guard_t *g, int prio)
{
    if (g->busy >= g->cfg.max_concurrent)
        return false;
    for (int p = prio + 1; p <= HTTP_LOGIN_PRIO_GOOD; p++)
        if (g->waiting[p] > 0)
            return false;
    return true;
}

bool http__login_gate_enter(http_login_guard_t *g, int prio)
{
    pthread_mutex_lock(&g->mu);
    bool ok = may_enter(g, prio);
    if (!ok && prio != HTTP_LOGIN_PRIO_DIRTY) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += g->cfg.wait_ms / 1000;
        until.tv_nsec += (long)(g->cfg.wait_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        g->waiting[prio]++;
        while (!(ok = may_enter(g, prio))) {
            if (pthread_cond_timedwait(&g->gate_cv, &g->mu, &until) != 0) {
                ok = may_enter(g, prio);
                break;
            }
        }
        g->waiting[prio]--;
    }
    if (ok)
        g->busy++;
    else
        g->st.busy++;
    /* A waiter of a lower class may be next now that this one stopped waiting. */
    pthread_cond_broadcast(&g->gate_cv);
    pthread_mutex_unlock(&g->mu);
    return ok;
}

void http__login_gate_leave(http_login_guard_t *g)
{
    pthread_mutex_lock(&g->mu);
    g->busy--;
    pthread_cond_broadcast(&g->gate_cv);
    pthread_mutex_unlock(&g->mu);
}

void http__login_stats(http_login_guard_t *g, http_login_stats_t *out)
{
    pthread_mutex_lock(&g->mu);
    *out = g->st;
    out->entries = g->count;
    out->waiting = (uint64_t)(g->waiting[0] + g->waiting[1] + g->waiting[2]);
    pthread_mutex_unlock(&g->mu);
}
