/* test_retention.c — telemetry retention (retention.c, ts_ttl_s): points older than the TTL
 * leave ts_kv in the background (SQLite: bounded per-series deletes; PostgreSQL: whole DAYS
 * partitions dropped), newer points and every latest value stay, points written while
 * retention runs go the same way once merged, the writer keeps committing meanwhile, and
 * ts_ttl_s 0 keeps everything (no retention run at all).
 *
 * The store is opened here rather than by tstore_open, which takes the default settings: a
 * PostgreSQL store opened once with MONTHS partitions keeps the month partitions it made
 * ahead, and the old points of this month would then wait for the whole month to expire. */
#include "store_test_util.h"

#include "core/err.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#define DAY_MS INT64_C(86400000)
#define TTL_S INT64_C(259200) /* 3 days */
#define INTERVAL_MS 100

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A store on a fresh database of the backend under test with retention set as given (and DAYS
 * partitions on PostgreSQL), with device "dev" in t->dev; NULL on failure. */
static tstore_t *open_ttl(int64_t ttl_s)
{
    tstore_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    snprintf(t->dir, sizeof(t->dir), "/tmp/coaphub-store-XXXXXX");
    if (!mkdtemp(t->dir)) {
        free(t);
        return NULL;
    }
    snprintf(t->path, sizeof(t->path), "%s/test.db", t->dir);
    int want_pg = tstore_want_pg();
    if (want_pg == 1) {
        static unsigned counter;
        char sql[128];
        snprintf(t->pg_db, sizeof(t->pg_db), "coaphub_t_%ld_%u_ttl", (long)getpid(), ++counter);
        snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\"", t->pg_db);
        t->pg = true;
        if (tstore_pg_url(t->pg_db, t->url, sizeof(t->url)) != 0 || tstore_pg_admin(sql) != 0)
            t->pg_db[0] = '\0';
    }
    if (want_pg >= 0 && (!t->pg || t->pg_db[0])) {
        store_cfg_t cfg;
        store_cfg_default(&cfg);
        tstore_cfg_db(t, &cfg);
        cfg.read_pool = 2;
        cfg.ts_ttl_s = ttl_s;
        cfg.ttl_interval_ms = INTERVAL_MS;
        cfg.ts_partitioning = "DAYS";
        char err[ERR_LEN];
        t->s = store_open(&cfg, err);
        if (!t->s)
            fprintf(stderr, "store_open: %s\n", err);
        else if (strcmp(store_backend_name(t->s), t->pg ? "postgresql" : "sqlite") != 0) {
            fprintf(stderr, "store_open: opened %s, not the backend under test\n",
                    store_backend_name(t->s));
            store_close(t->s);
            t->s = NULL;
        }
    }
    if (t->s)
        t->dev = tstore_device(t->s, "dev");
    if (!t->s || t->dev <= 0) {
        tstore_close(t);
        free(t);
        return NULL;
    }
    return t;
}

static int setup_ttl(void **state)
{
    *state = open_ttl(TTL_S);
    return *state ? 0 : -1;
}

static int setup_no_ttl(void **state)
{
    *state = open_ttl(0);
    return *state ? 0 : -1;
}

/* Writes points of key at each ts (value = ts / 1000), in one batch per call. */
static void put_points(tstore_t *t, int64_t dev, const char *key, const int64_t *ts, size_t n)
{
    store_batch_t *b = store_batch_new();
    for (size_t i = 0; i < n; i++) {
        store_kv_t kv = {.key = (char *)key, .type = STORE_LONG, .l = ts[i] / 1000, .ts = ts[i]};
        store_batch_ts(b, dev, &kv);
    }
    assert_int_equal(store_submit_wait(t->s, b), 0);
}

static void put_string(tstore_t *t, int64_t dev, const char *key, const char *v, int64_t ts)
{
    store_batch_t *b = store_batch_new();
    store_kv_t kv = {.key = (char *)key, .type = STORE_STRING, .s = (char *)v, .ts = ts};
    store_batch_ts(b, dev, &kv);
    assert_int_equal(store_submit_wait(t->s, b), 0);
}

/* The points of key, oldest first, as their timestamps into ts (up to cap); how many. */
static size_t history(tstore_t *t, int64_t dev, const char *key, int64_t *ts, size_t cap)
{
    store_kv_list_t l = {0};
    assert_int_equal(store_ts_history(t->s, dev, key, INT64_MIN / 2, INT64_MAX / 2, 0,
                                      STORE_AGG_NONE, 1000000, true, &l),
                     0);
    size_t n = l.n;
    for (size_t i = 0; i < n && i < cap; i++)
        ts[i] = l.items[i].ts;
    store_kv_list_fini(&l);
    return n;
}

/* The latest value's ts of key, or -1 when it has none. */
static int64_t latest_ts(tstore_t *t, int64_t dev, const char *key)
{
    store_kv_list_t l = {0};
    const char *keys[] = {key};
    assert_int_equal(store_ts_latest(t->s, dev, keys, 1, &l), 0);
    int64_t ts = l.n ? l.items[0].ts : -1;
    store_kv_list_fini(&l);
    return ts;
}

/* Waits (at most 10 s) until the log is merged and then two more retention runs have
 * completed, so one run started after everything was in ts_kv. */
static void wait_retention(tstore_t *t)
{
    assert_int_equal(tstore_wait_merged(t), 0);
    int64_t start = mono_ms(), runs = store_retention_runs(t->s);
    while (store_retention_runs(t->s) < runs + 2 && mono_ms() - start < 10000)
        nanosleep(&(struct timespec){.tv_nsec = 20 * 1000000}, NULL);
    assert_true(store_retention_runs(t->s) >= runs + 2);
}

/* Rows of ts_kv older than the TTL, read under the API. */
static int64_t old_rows(tstore_t *t)
{
    char sql[128], out[32];
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM ts_kv WHERE ts < %lld",
             (long long)(now_ms() - TTL_S * 1000));
    assert_int_equal(tstore_query(t, sql, out, sizeof(out)), 0);
    return strtoll(out, NULL, 10);
}

/* PostgreSQL: whether ts_kv has the DAYS partition of ts (ts_kv_YYYY_MM_DD). */
static bool has_partition(tstore_t *t, int64_t ts)
{
    time_t secs = (time_t)(ts / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char sql[256], out[16];
    snprintf(sql, sizeof(sql),
             "SELECT COUNT(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
             " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'ts_kv'"
             " AND c.relname = 'ts_kv_%04d_%02d_%02d'",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    assert_int_equal(tstore_query(t, sql, out, sizeof(out)), 0);
    return strcmp(out, "1") == 0;
}

static void test_old_points_expire(void **state)
{
    tstore_t *t = *state;
    int64_t dev2 = tstore_device(t->s, "dev2");
    assert_true(dev2 > 0);
    int64_t now = now_ms();
    const int64_t old[] = {now - 10 * DAY_MS, now - 5 * DAY_MS, now - 4 * DAY_MS};
    const int64_t recent[] = {now - 2 * DAY_MS, now - 60000};
    int64_t devs[] = {t->dev, dev2};
    for (int d = 0; d < 2; d++) {
        put_points(t, devs[d], "t", old, 3);
        put_points(t, devs[d], "t", recent, 2);
        put_points(t, devs[d], "o", old, 3); /* a key with old points only */
        put_string(t, devs[d], "s", "old", old[1]);
        put_string(t, devs[d], "s", "new", recent[1]);
    }
    wait_retention(t);

    for (int d = 0; d < 2; d++) {
        int64_t ts[8];
        assert_int_equal(history(t, devs[d], "t", ts, 8), 2);
        assert_int_equal(ts[0], recent[0]);
        assert_int_equal(ts[1], recent[1]);
        assert_int_equal(history(t, devs[d], "o", ts, 8), 0);
        assert_int_equal(history(t, devs[d], "s", ts, 8), 1);
        assert_int_equal(ts[0], recent[1]);
        /* Latest values stay, however old (ThingsBoard keeps ts_kv_latest). */
        assert_int_equal(latest_ts(t, devs[d], "t"), recent[1]);
        assert_int_equal(latest_ts(t, devs[d], "o"), old[2]);
        assert_int_equal(latest_ts(t, devs[d], "s"), recent[1]);
    }
    assert_int_equal(old_rows(t), 0);
    assert_int_equal(tstore_rows(t, "ts_kv"), 2 * (2 + 1));
    if (t->pg) {
        for (int i = 0; i < 3; i++)
            assert_false(has_partition(t, old[i]));
        for (int i = 0; i < 2; i++)
            assert_true(has_partition(t, recent[i]));
    }

    /* Old points written while retention runs: merged, then removed by a later run. */
    const int64_t late[] = {now - 9 * DAY_MS, now - 6 * DAY_MS};
    put_points(t, t->dev, "t", late, 2);
    int64_t ts[8];
    assert_int_equal(history(t, t->dev, "t", ts, 8), 4); /* readable once committed */
    wait_retention(t);
    assert_int_equal(history(t, t->dev, "t", ts, 8), 2);
    assert_int_equal(ts[0], recent[0]);
    assert_int_equal(old_rows(t), 0);
    if (t->pg) {
        assert_false(has_partition(t, late[0]));
        assert_false(has_partition(t, late[1]));
    }
}

/* Many expired points (SQLite: several 4096-row steps of one series; PostgreSQL: several
 * day partitions) go while the writer keeps committing: every write succeeds and none waits
 * long behind retention. */
static void test_writer_not_stalled(void **state)
{
    tstore_t *t = *state;
    enum { N_OLD = 20000, BATCH = 1000 };
    int64_t now = now_ms();
    int64_t *ts = malloc(BATCH * sizeof(*ts));
    assert_non_null(ts);
    for (int i = 0; i < N_OLD; i += BATCH) {
        for (int j = 0; j < BATCH; j++) /* spread over 6 .. 10 days ago */
            ts[j] = now - 10 * DAY_MS + (int64_t)(i + j) * (4 * DAY_MS / N_OLD);
        put_points(t, t->dev, "bulk", ts, BATCH);
    }
    free(ts);
    assert_int_equal(tstore_wait_merged(t), 0);

    int64_t start = mono_ms(), runs = store_retention_runs(t->s), worst = 0, n_new = 0;
    while ((store_retention_runs(t->s) < runs + 2 || old_rows(t) > 0) &&
           mono_ms() - start < 15000) {
        int64_t t0 = mono_ms();
        int64_t p = now - 1000 + n_new; /* distinct recent points */
        put_points(t, t->dev, "live", &p, 1);
        n_new++;
        if (mono_ms() - t0 > worst)
            worst = mono_ms() - t0;
    }
    fprintf(stderr, "retention of %d points: %lld writes meanwhile, the slowest %lld ms\n", N_OLD,
            (long long)n_new, (long long)worst);
    assert_int_equal(old_rows(t), 0);
    assert_true(worst < 2000);
    int64_t one;
    assert_int_equal(history(t, t->dev, "bulk", &one, 1), 0);
    assert_int_equal(latest_ts(t, t->dev, "bulk"),
                     now - 10 * DAY_MS + (int64_t)(N_OLD - 1) * (4 * DAY_MS / N_OLD));
    int64_t *live = malloc((size_t)n_new * sizeof(*live));
    assert_non_null(live);
    assert_int_equal(history(t, t->dev, "live", live, (size_t)n_new), n_new);
    free(live);
}

/* ts_ttl_s 0: no retention thread, nothing removed, however old. */
static void test_ttl_zero_keeps_everything(void **state)
{
    tstore_t *t = *state;
    int64_t now = now_ms();
    const int64_t ts[] = {INT64_C(946684800000) /* 2000 */, now - 400 * DAY_MS, now - 10 * DAY_MS,
                          now};
    put_points(t, t->dev, "t", ts, 4);
    assert_int_equal(tstore_wait_merged(t), 0);
    /* Longer than the first run's delay (1 s) and many intervals. */
    nanosleep(&(struct timespec){.tv_sec = 1, .tv_nsec = 500 * 1000000}, NULL);
    assert_int_equal(store_retention_runs(t->s), 0);
    int64_t got[8];
    assert_int_equal(history(t, t->dev, "t", got, 8), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(got[i], ts[i]);
    if (t->pg)
        assert_true(has_partition(t, ts[2]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_old_points_expire, setup_ttl, tstore_teardown),
        cmocka_unit_test_setup_teardown(test_writer_not_stalled, setup_ttl, tstore_teardown),
        cmocka_unit_test_setup_teardown(test_ttl_zero_keeps_everything, setup_no_ttl,
                                        tstore_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
