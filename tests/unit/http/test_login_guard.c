/* test_login_guard.c — the failed-login throttle's rules (login_guard.c) and the revoked-token
 * set (revoked.c), driven with explicit times; the same calls the login handler makes. */
#include "http/http_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

static const http_login_cfg_t CFG = {.max_fails = 5,
                                     .addr_max_fails = 20,
                                     .lock_ms = 60000,
                                     .max_entries = 1024,
                                     .max_concurrent = 1,
                                     .wait_ms = 50};

static void v4(const char *s, uint8_t out[16])
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, s, &sa.sin_addr), 1);
    http__login_addr_key((const struct sockaddr *)&sa, out);
}

static void v6(const char *s, uint8_t out[16])
{
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
    assert_int_equal(inet_pton(AF_INET6, s, &sa.sin6_addr), 1);
    http__login_addr_key((const struct sockaddr *)&sa, out);
}

/* What the handler does with a wrong password: check first, count only if checked. */
static int attempt(http_login_guard_t *g, const char *user, const uint8_t addr[16], bool ok,
                   int64_t now)
{
    int why = http__login_check(g, user, addr, now, NULL);
    if (why == HTTP_LOGIN_ALLOW)
        http__login_result(g, user, addr, ok, now);
    return why;
}

static void test_addr_keys(void **state)
{
    (void)state;
    uint8_t a[16], b[16];
    v6("2001:db8:1:2::1", a);
    v6("2001:db8:1:2:ffff::9", b);
    assert_memory_equal(a, b, 16); /* one /64 */
    v6("2001:db8:1:3::1", b);
    assert_memory_not_equal(a, b, 16);
    v4("192.0.2.7", a);
    v6("::ffff:192.0.2.7", b);
    assert_memory_equal(a, b, 16); /* IPv4 on a dual-stack socket */
    v4("192.0.2.8", b);
    assert_memory_not_equal(a, b, 16);
}

/* The finding: 5 wrong passwords from the attacker must not lock out the administrator. */
static void test_attacker_never_locks_out_admin(void **state)
{
    (void)state;
    http_login_guard_t *g = http__login_guard_new(&CFG);
    uint8_t atk[16], adm[16];
    v4("127.0.0.2", atk);
    v4("127.0.0.1", adm);
    int64_t t = 1000000;
    int refused = 0;
    for (int i = 0; i < 200; i++, t += 100) {
        refused += attempt(g, "admin@x", atk, false, t) != HTTP_LOGIN_ALLOW;
        if (i % 10 == 0) /* the administrator, with the right password */
            assert_int_equal(attempt(g, "ADMIN@x", adm, true, t), HTTP_LOGIN_ALLOW);
    }
    assert_int_equal(refused, 195); /* 5 reached the password check, 195 refused before */
    http_login_stats_t st;
    http__login_stats(g, &st);
    assert_int_equal(st.failures, 5);
    assert_int_equal(st.throttled, 195);
    assert_int_equal(st.lockouts, 2); /* (admin, attacker) and admin */
    /* The name is case-insensitive: another spelling is the same user. */
    assert_int_equal(http__login_check(g, "Admin@X", atk, t, NULL), HTTP_LOGIN_USER_LOCKED);
    /* The lock ends lock_ms after the last counted failure. */
    assert_int_equal(http__login_check(g, "admin@x", atk, t + 60000, NULL), HTTP_LOGIN_ALLOW);
    http__login_guard_free(g);
}

/* Rule 3: a user with max_fails failures in total refuses the addresses that took part, but
 * an address that never failed for it is let through. */
static void test_user_total_refuses_only_failed_addresses(void **state)
{
    (void)state;
    http_login_guard_t *g = http__login_guard_new(&CFG);
    int64_t t = 5000000;
    uint8_t a[16];
    char ip[32];
    for (int i = 1; i <= 5; i++) {
        snprintf(ip, sizeof ip, "10.0.0.%d", i);
        v4(ip, a);
        assert_int_equal(attempt(g, "victim", a, false, t), HTTP_LOGIN_ALLOW);
    }
    v4("10.0.0.1", a);
    assert_int_equal(http__login_check(g, "victim", a, t + 1, NULL), HTTP_LOGIN_USER_LOCKED);
    assert_int_equal(http__login_check(g, "other", a, t + 1, NULL), HTTP_LOGIN_ALLOW);
    v4("10.0.0.9", a);
    int prio = -1;
    assert_int_equal(http__login_check(g, "victim", a, t + 1, &prio), HTTP_LOGIN_ALLOW);
    assert_int_equal(prio, HTTP_LOGIN_PRIO_CLEAN);
    /* A success clears that address's count for the user, not the user's total. */
    v4("10.0.0.2", a);
    http__login_result(g, "victim", a, true, t + 2);
    assert_int_equal(http__login_check(g, "victim", a, t + 3, NULL), HTTP_LOGIN_ALLOW);
    v4("10.0.0.3", a);
    assert_int_equal(http__login_check(g, "victim", a, t + 3, &prio), HTTP_LOGIN_USER_LOCKED);
    assert_int_equal(prio, HTTP_LOGIN_PRIO_DIRTY);
    /* 10.0.0.2 logged in: it is served first by the gate from now on. */
    v4("10.0.0.2", a);
    http__login_check(g, "anyone", a, t + 3, &prio);
    assert_int_equal(prio, HTTP_LOGIN_PRIO_GOOD);
    http__login_guard_free(g);
}

/* Rule 1: many names from one address lock that address for every name. */
static void test_address_limit(void **state)
{
    (void)state;
    http_login_guard_t *g = http__login_guard_new(&CFG);
    uint8_t a[16], b[16];
    v6("2001:db8::1", a);
    v6("2001:db8::2", b); /* same /64 */
    int64_t t = 1;
    char name[32];
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "user%d", i);
        assert_int_equal(attempt(g, name, (i % 2) ? a : b, false, t++), HTTP_LOGIN_ALLOW);
    }
    assert_int_equal(http__login_check(g, "fresh", a, t, NULL), HTTP_LOGIN_ADDR_LOCKED);
    v6("2001:db8:0:1::1", b);
    assert_int_equal(http__login_check(g, "fresh", b, t, NULL), HTTP_LOGIN_ALLOW);
    /* Failures 60 s apart never add up. */
    for (int i = 0; i < 30; i++, t += 60000)
        assert_int_equal(attempt(g, "slow", b, false, t), HTTP_LOGIN_ALLOW);
    http__login_guard_free(g);
}

/* The finding: logins under 300 other names must not push a victim's count out. From one
 * address they stop at the address limit; from 300 addresses in a small table, the victim's
 * live lockout is never the one dropped. */
static void test_flood_of_names_keeps_victim_count(void **state)
{
    (void)state;
    http_login_cfg_t cfg = CFG;
    cfg.max_entries = 64;
    http_login_guard_t *g = http__login_guard_new(&cfg);
    uint8_t atk[16], x[16];
    v4("127.0.0.2", atk);
    int64_t t = 1000;
    for (int i = 0; i < 3; i++)
        assert_int_equal(attempt(g, "admin", atk, false, t++), HTTP_LOGIN_ALLOW);
    char name[32], ip[32];
    int allowed = 0;
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "n%d", i);
        allowed += attempt(g, name, atk, false, t++) == HTTP_LOGIN_ALLOW;
    }
    assert_int_equal(allowed, 17); /* 3 + 17 = the address limit of 20 */
    assert_int_equal(http__login_check(g, "admin", atk, t, NULL), HTTP_LOGIN_ADDR_LOCKED);
    /* admin's total survived the flood: 2 failures from elsewhere make 5 and lock the name
     * for every address that failed for it (that one, too). */
    v4("127.0.0.3", x);
    for (int i = 0; i < 2; i++)
        assert_int_equal(attempt(g, "admin", x, false, t++), HTTP_LOGIN_ALLOW);
    assert_int_equal(http__login_check(g, "admin", x, t, NULL), HTTP_LOGIN_USER_LOCKED);
    http_login_stats_t st;
    http__login_stats(g, &st);
    assert_int_equal(st.lockouts, 2); /* the address, then admin */
    assert_int_equal(st.evicted, 0);

    /* Now 300 names from 300 addresses into a 64-entry table. */
    http__login_guard_free(g);
    g = http__login_guard_new(&cfg);
    t = 1000;
    for (int i = 0; i < 5; i++)
        attempt(g, "admin", atk, false, t++);
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "n%d", i);
        snprintf(ip, sizeof ip, "10.1.%d.%d", i / 250, i % 250);
        v4(ip, x);
        attempt(g, name, x, false, t++);
    }
    assert_int_equal(http__login_check(g, "admin", atk, t, NULL), HTTP_LOGIN_USER_LOCKED);
    http__login_stats(g, &st);
    assert_true(st.entries <= 64);
    assert_true(st.evicted > 0);
    http__login_guard_free(g);
}

/* Only live lockouts left: a new failure is not recorded (and counted), nothing is dropped. */
static void test_table_full_of_lockouts(void **state)
{
    (void)state;
    http_login_cfg_t cfg = CFG;
    cfg.max_entries = 16;
    cfg.max_fails = 1;
    cfg.addr_max_fails = 1;
    http_login_guard_t *g = http__login_guard_new(&cfg);
    uint8_t a[16];
    char ip[32];
    for (int i = 0; i < 10; i++) {
        snprintf(ip, sizeof ip, "10.2.0.%d", i);
        v4(ip, a);
        attempt(g, "u", a, false, 100 + i);
    }
    http_login_stats_t st;
    http__login_stats(g, &st);
    assert_int_equal(st.entries, 16);
    assert_true(st.table_full > 0);
    assert_int_equal(st.evicted, 0);
    v4("10.2.0.0", a);
    assert_int_equal(http__login_check(g, "u", a, 200, NULL), HTTP_LOGIN_ADDR_LOCKED);
    http__login_guard_free(g);
}

/* The bcrypt gate: one slot; a client with failures is refused at once, a clean one waits. */
static void test_gate(void **state)
{
    (void)state;
    http_login_guard_t *g = http__login_guard_new(&CFG);
    assert_true(http__login_gate_enter(g, HTTP_LOGIN_PRIO_CLEAN));
    assert_false(http__login_gate_enter(g, HTTP_LOGIN_PRIO_DIRTY));
    assert_false(http__login_gate_enter(g, HTTP_LOGIN_PRIO_GOOD)); /* waited wait_ms (50) */
    http__login_gate_leave(g);
    assert_true(http__login_gate_enter(g, HTTP_LOGIN_PRIO_DIRTY));
    http__login_gate_leave(g);
    http_login_stats_t st;
    http__login_stats(g, &st);
    assert_int_equal(st.busy, 2);
    http__login_guard_free(g);
}

typedef struct {
    http_login_guard_t *g;
    int prio;
    bool ok;
    int order; /* 1 = entered first */
} waiter_t;

static atomic_int entered;

static void *waiter(void *arg)
{
    waiter_t *w = arg;
    w->ok = http__login_gate_enter(w->g, w->prio);
    if (w->ok) {
        w->order = atomic_fetch_add(&entered, 1) + 1;
        struct timespec ts = {0, 20 * 1000 * 1000}; /* a bcrypt check's worth */
        nanosleep(&ts, NULL);
        http__login_gate_leave(w->g);
    }
    return NULL;
}

/* Waits (bounded, 2 s) until n clients wait for the gate. */
static void until_waiting(http_login_guard_t *g, uint64_t n)
{
    for (int i = 0; i < 200; i++) {
        http_login_stats_t st;
        http__login_stats(g, &st);
        if (st.waiting >= n)
            return;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fail_msg("nobody waits for the gate");
}

/* A client from an address that logged in before goes ahead of a newcomer that came first. */
static void test_gate_order(void **state)
{
    (void)state;
    http_login_cfg_t cfg = CFG;
    cfg.wait_ms = 3000;
    http_login_guard_t *g = http__login_guard_new(&cfg);
    atomic_store(&entered, 0);
    assert_true(http__login_gate_enter(g, HTTP_LOGIN_PRIO_CLEAN)); /* the slot is busy */
    waiter_t clean = {g, HTTP_LOGIN_PRIO_CLEAN, false, 0};
    waiter_t good = {g, HTTP_LOGIN_PRIO_GOOD, false, 0};
    pthread_t tc, tg;
    assert_int_equal(pthread_create(&tc, NULL, waiter, &clean), 0);
    until_waiting(g, 1);
    assert_int_equal(pthread_create(&tg, NULL, waiter, &good), 0);
    until_waiting(g, 2);
    assert_false(http__login_gate_enter(g, HTTP_LOGIN_PRIO_DIRTY)); /* full: refused at once */
    http__login_gate_leave(g);
    assert_int_equal(pthread_join(tc, NULL), 0);
    assert_int_equal(pthread_join(tg, NULL), 0);
    assert_true(good.ok && clean.ok);
    assert_int_equal(good.order, 1);
    assert_int_equal(clean.order, 2);
    http__login_guard_free(g);
}

static void test_revoked(void **state)
{
    (void)state;
    http_revoked_t *r = http__revoked_new(16);
    http_claims_t a = {.iat = 100, .exp = 200}, b = a;
    strcpy(a.session_id, "11111111-1111-4111-8111-111111111111");
    strcpy(a.user_id, "22222222-2222-4222-8222-222222222222");
    b = a;
    strcpy(b.session_id, "33333333-3333-4333-8333-333333333333");
    assert_false(http__revoked_check(r, &a, 150));
    assert_int_equal(http__revoked_add_session(r, a.session_id, 300, 150), 0);
    assert_true(http__revoked_check(r, &a, 150));
    assert_false(http__revoked_check(r, &b, 150)); /* the user's other session */
    assert_false(http__revoked_check(r, &a, 300)); /* kept until the tokens expired */
    /* The user: tokens issued before 151 are refused, later ones are not. */
    assert_int_equal(http__revoked_add_user(r, a.user_id, 151, 400, 150), 0);
    assert_true(http__revoked_check(r, &b, 160));
    b.iat = 151;
    assert_false(http__revoked_check(r, &b, 160));
    /* Full of live sessions: -ENOSPC (the handler then revokes the user); expired ones are
     * purged to make room. */
    char sid[40];
    int full = 0;
    for (int i = 0; i < 20; i++) {
        snprintf(sid, sizeof sid, "44444444-4444-4444-8444-%012d", i);
        full += http__revoked_add_session(r, sid, i < 16 ? 1000 : 2000, 150) == -ENOSPC;
    }
    assert_int_equal(full, 5); /* a's entry + 15 new fill 16 */
    assert_int_equal(
        http__revoked_add_session(r, "55555555-5555-4555-8555-555555555555", 2000, 1000),
        0); /* at 1000 the first 15 have expired */
    uint64_t total, entries, fallbacks;
    http__revoked_stats(r, &total, &entries, &fallbacks);
    assert_int_equal(fallbacks, 5);
    assert_int_equal(entries, 1); /* everything else had expired by 1000 */
    http__revoked_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_keys),
        cmocka_unit_test(test_attacker_never_locks_out_admin),
        cmocka_unit_test(test_user_total_refuses_only_failed_addresses),
        cmocka_unit_test(test_address_limit),
        cmocka_unit_test(test_flood_of_names_keeps_victim_count),
        cmocka_unit_test(test_table_full_of_lockouts),
        cmocka_unit_test(test_gate),
        cmocka_unit_test(test_gate_order),
        cmocka_unit_test(test_revoked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
