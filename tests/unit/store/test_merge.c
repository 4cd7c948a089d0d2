/* test_merge.c — the telemetry log (ts_kv_log) and its merge into ts_kv: points are readable
 * before and after the merge, the newest write of a (device, key, ts) wins across the two
 * tables, deletes are never undone by a merge, a log left by a stop is read and merged. */
#include "store_test_util.h"

#include "core/err.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include "store/store_int.h"

#include <cmocka.h>

/* Merge runs of this many points (the default is larger; these tests need several runs). */
enum { RUN = 32768 };

static int setup(void **state)
{
    *state = tstore_new(RUN, true); /* the sizes below are chosen around RUN */
    return *state ? 0 : -1;
}

static int64_t rows(tstore_t *f, const char *table)
{
    return tstore_rows(f, table);
}

static void wait_merged(tstore_t *f)
{
    assert_int_equal(tstore_wait_merged(f), 0);
}

static void put(store_t *s, int64_t dev, const char *key, int64_t v, int64_t ts)
{
    assert_int_equal(tstore_put(s, dev, key, v, ts), 0);
}

static int64_t agg(tstore_t *f, int64_t dev, const char *key, store_agg_t a)
{
    store_kv_list_t l = {0};
    assert_int_equal(store_ts_history(f->s, dev, key, 0, INT64_MAX / 2, 0, a, 0, true, &l), 0);
    int64_t v = l.n ? l.items[0].l : -1;
    store_kv_list_fini(&l);
    return v;
}

static void test_points_readable_before_and_after_merge(void **state)
{
    tstore_t *f = *state;
    store_batch_t *b = store_batch_new();
    for (int i = 1; i <= 100; i++) {
        store_kv_t kv = {.key = "t", .type = STORE_LONG, .l = i, .ts = 1000 + i};
        store_batch_ts(b, f->dev, &kv);
    }
    assert_int_equal(store_submit_wait(f->s, b), 0);
    for (int pass = 0; pass < 2; pass++) {
        store_kv_list_t l = {0};
        assert_int_equal(
            store_ts_history(f->s, f->dev, "t", 1001, 1100, 0, STORE_AGG_NONE, 5, false, &l), 0);
        assert_int_equal(l.n, 5);
        assert_int_equal(l.items[0].ts, 1100);
        assert_int_equal(l.items[0].l, 100);
        assert_int_equal(l.items[4].l, 96);
        store_kv_list_fini(&l);
        assert_int_equal(agg(f, f->dev, "t", STORE_AGG_COUNT), 100);
        assert_int_equal(agg(f, f->dev, "t", STORE_AGG_SUM), 5050);
        if (pass == 0) { /* read from the log (merged 200 ms after the writer idles) */
            wait_merged(f);
            assert_int_equal(rows(f, "ts_kv"), 100);
        }
    }
}

static void test_newest_write_wins_across_tables(void **state)
{
    tstore_t *f = *state;
    put(f->s, f->dev, "v", 1, 500);
    wait_merged(f);
    put(f->s, f->dev, "v", 2, 500); /* same ts: in the log, over the merged point */
    put(f->s, f->dev, "v", 3, 500); /* twice in the log: the later counts */
    for (int pass = 0; pass < 2; pass++) {
        store_kv_list_t l = {0};
        assert_int_equal(
            store_ts_history(f->s, f->dev, "v", 0, 1000, 0, STORE_AGG_NONE, 0, true, &l), 0);
        assert_int_equal(l.n, 1);
        assert_int_equal(l.items[0].l, 3);
        store_kv_list_fini(&l);
        assert_int_equal(agg(f, f->dev, "v", STORE_AGG_COUNT), 1);
        assert_int_equal(agg(f, f->dev, "v", STORE_AGG_SUM), 3);
        wait_merged(f);
    }

    /* Many writes of one ts in one multi-row merge statement (sqlite_points.c): the last counts. */
    store_batch_t *b = store_batch_new();
    for (int i = 0; i < 3 * STORE_MULTI; i++) {
        store_kv_t kv = {.key = "w", .type = STORE_LONG, .l = i, .ts = 700 + (i % 2)};
        store_batch_ts(b, f->dev, &kv);
    }
    assert_int_equal(store_submit_wait(f->s, b), 0);
    wait_merged(f);
    assert_int_equal(agg(f, f->dev, "w", STORE_AGG_COUNT), 2);
    assert_int_equal(agg(f, f->dev, "w", STORE_AGG_SUM), 3 * STORE_MULTI - 2 + 3 * STORE_MULTI - 1);
}

static void test_delete_is_not_undone_by_merge(void **state)
{
    tstore_t *f = *state;
    for (int i = 0; i < 10; i++)
        put(f->s, f->dev, "d", i, 100 + i);
    const char *keys[] = {"d"};
    assert_int_equal(store_ts_delete(f->s, f->dev, keys, 1, 100, 104, false), 0);
    assert_int_equal(agg(f, f->dev, "d", STORE_AGG_COUNT), 5);
    wait_merged(f);
    assert_int_equal(agg(f, f->dev, "d", STORE_AGG_COUNT), 5);
    assert_int_equal(agg(f, f->dev, "d", STORE_AGG_MIN), 5);

    /* A device delete takes its unmerged points too (the log's trigger). */
    int64_t other = tstore_device(f->s, "other");
    put(f->s, other, "d", 1, 1);
    assert_int_equal(rows(f, "ts_kv_log"), 1);
    assert_int_equal(store_device_delete(f->s, other), 0);
    assert_int_equal(rows(f, "ts_kv_log"), 0);
}

/* More points than one merge run, over many devices: the writer merges while commits go on,
 * and nothing is lost or doubled. */
static void test_many_points_merge_in_runs(void **state)
{
    tstore_t *f = *state;
    enum { DEVS = 40, PER = 1200 }; /* 48 000 points: more than one run of 32 768 */
    int64_t dev[DEVS];
    char name[16];
    for (int d = 0; d < DEVS; d++) {
        snprintf(name, sizeof(name), "m%d", d);
        dev[d] = tstore_device(f->s, name);
        assert_true(dev[d] > 0);
    }
    for (int i = 0; i < PER; i += 100) {
        store_batch_t *b = store_batch_new();
        for (int d = 0; d < DEVS; d++)
            for (int k = i; k < i + 100; k++) {
                store_kv_t kv = {.key = "m", .type = STORE_LONG, .l = k, .ts = k};
                store_batch_ts(b, dev[d], &kv);
            }
        assert_int_equal(store_submit_wait(f->s, b), 0);
    }
    wait_merged(f);
    assert_int_equal(rows(f, "ts_kv"), DEVS * PER);
    for (int d = 0; d < DEVS; d++) {
        assert_int_equal(agg(f, dev[d], "m", STORE_AGG_COUNT), PER);
        assert_int_equal(agg(f, dev[d], "m", STORE_AGG_SUM), (int64_t)PER * (PER - 1) / 2);
    }
}

/* The moment a merged run starts leaving the log: devices whose rows are the log's newest are
 * deleted, and a new point takes the seq where their rows were — inside the run's range.
 * Deleting the run's range now would take that unmerged point with it; the merge must see the
 * delete, stop, and merge what is left again. */
static sem_t hook_in, hook_go;
static atomic_bool hook_armed;

static void pause_when_deleting(bool deleting)
{
    if (deleting && atomic_exchange(&hook_armed, false)) {
        sem_post(&hook_in);
        sem_wait(&hook_go);
    }
}

static void test_device_delete_while_run_leaves_log(void **state)
{
    tstore_t *f = *state;
    enum { DEVS = 8, PER = 5000 }; /* 40 000 points: the first run (32 768) covers d0..d6 */
    int64_t dev[DEVS];
    char name[16];
    for (int d = 0; d < DEVS; d++) {
        snprintf(name, sizeof(name), "x%d", d);
        dev[d] = tstore_device(f->s, name);
    }
    sem_init(&hook_in, 0, 0);
    sem_init(&hook_go, 0, 0);
    atomic_store(&hook_armed, true);
    store__merge_test_hook = pause_when_deleting;
    store_batch_t *b = store_batch_new();
    for (int d = 0; d < DEVS; d++)
        for (int k = 0; k < PER; k++) {
            store_kv_t kv = {.key = "x", .type = STORE_LONG, .l = k, .ts = k};
            store_batch_ts(b, dev[d], &kv);
        }
    assert_int_equal(store_submit_wait(f->s, b), 0);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    assert_int_equal(sem_timedwait(&hook_in, &dl), 0); /* the writer waits in the hook */

    for (int d = DEVS / 2; d < DEVS; d++)
        assert_int_equal(store_device_delete(f->s, dev[d]), 0);
    /* A commit as the writer would make it (it is paused): the new row's seq is the largest
     * left + 1, which lies inside the run being merged. SQLite gives it that seq by itself;
     * PostgreSQL's sequence would not, so the seq is written out (the same row on both). */
    char sql[320];
    snprintf(sql, sizeof(sql),
             "INSERT INTO ts_kv_log(seq, device_id, key_id, ts, long_v)"
             " SELECT (SELECT MAX(seq) + 1 FROM ts_kv_log), %lld, key_id, %d, %d"
             " FROM key_dictionary WHERE key = 'x' RETURNING seq",
             (long long)dev[0], PER, PER);
    int64_t rowid = tstore_exec(f, sql);
    assert_true(rowid >= 0);
    assert_true(rowid < RUN); /* the case this test is about */
    sem_post(&hook_go);

    /* the writer only counts what it wrote: one more point through it wakes the merge */
    put(f->s, dev[1], "x", PER, PER);
    wait_merged(f);
    store__merge_test_hook = NULL;
    for (int d = 0; d < 2; d++) {
        assert_int_equal(agg(f, dev[d], "x", STORE_AGG_COUNT), PER + 1);
        assert_int_equal(agg(f, dev[d], "x", STORE_AGG_SUM), (int64_t)PER * (PER + 1) / 2);
    }
    for (int d = 2; d < DEVS / 2; d++)
        assert_int_equal(agg(f, dev[d], "x", STORE_AGG_COUNT), PER);
    assert_int_equal(rows(f, "ts_kv"), (DEVS / 2) * PER + 2);
    sem_destroy(&hook_in);
    sem_destroy(&hook_go);
}

/* Points still in the log when the server stopped (or crashed) are read and merged after the
 * restart; a stop merges what it can. */
static void test_log_survives_reopen(void **state)
{
    tstore_t *f = *state;
    put(f->s, f->dev, "r", 7, 70);
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(rows(f, "ts_kv_log"), 0); /* merged at close */
    /* As if a crash had left a point in the log. */
    char sql[160];
    snprintf(sql, sizeof(sql),
             "INSERT INTO ts_kv_log(device_id, key_id, ts, long_v) SELECT %lld, key_id, 80, 8"
             " FROM key_dictionary WHERE key = 'r'",
             (long long)f->dev);
    assert_true(tstore_exec(f, sql) >= 0);
    assert_non_null(tstore_reopen(f));
    assert_int_equal(agg(f, f->dev, "r", STORE_AGG_COUNT), 2);
    wait_merged(f);
    assert_int_equal(agg(f, f->dev, "r", STORE_AGG_SUM), 15);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_points_readable_before_and_after_merge, setup,
                                        tstore_teardown),
        cmocka_unit_test_setup_teardown(test_newest_write_wins_across_tables, setup,
                                        tstore_teardown),
        cmocka_unit_test_setup_teardown(test_delete_is_not_undone_by_merge, setup, tstore_teardown),
        cmocka_unit_test_setup_teardown(test_many_points_merge_in_runs, setup, tstore_teardown),
        cmocka_unit_test_setup_teardown(test_device_delete_while_run_leaves_log, setup,
                                        tstore_teardown),
        cmocka_unit_test_setup_teardown(test_log_survives_reopen, setup, tstore_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
