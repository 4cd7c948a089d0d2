/* test_latest.c — latest time-series values while their points are in the telemetry log
 * (held in memory, latest.c) and after the merge wrote them to ts_kv_latest: reads take the
 * newer, late points do not win, deletes with and without deleteLatest, a device delete, and
 * a log left by a crash. */
#include "store_test_util.h"

#include "core/err.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "store/store_int.h"

#include <cmocka.h>

static void wait_merged(tstore_t *f)
{
    assert_int_equal(tstore_wait_merged(f), 0);
}

static void put(store_t *s, int64_t dev, const char *key, int64_t v, int64_t ts)
{
    assert_int_equal(tstore_put(s, dev, key, v, ts), 0);
}

/* The latest value of key as "v@ts", or "-" when there is none. */
static const char *latest(tstore_t *f, int64_t dev, const char *key)
{
    static char buf[64];
    store_kv_list_t l = {0};
    const char *keys[] = {key};
    assert_int_equal(store_ts_latest(f->s, dev, keys, 1, &l), 0);
    assert_true(l.n <= 1);
    if (l.n)
        snprintf(buf, sizeof(buf), "%lld@%lld", (long long)l.items[0].l,
                 (long long)l.items[0].ts);
    else
        snprintf(buf, sizeof(buf), "-");
    store_kv_list_fini(&l);
    return buf;
}

static size_t entries(tstore_t *f, int64_t dev)
{
    store_latest_copy_t *c;
    size_t n = store__latest_copy(f->s, dev, &c);
    store__latest_copy_free(c, n);
    return n;
}

static void test_newest_before_and_after_merge(void **state)
{
    tstore_t *f = *state;
    put(f->s, f->dev, "t", 1, 100);
    put(f->s, f->dev, "t", 2, 200);
    put(f->s, f->dev, "t", 3, 150); /* late: not the latest */
    put(f->s, f->dev, "u", 9, 50);
    assert_string_equal(latest(f, f->dev, "t"), "2@200");
    assert_int_equal(entries(f, f->dev), 2); /* from memory: nothing merged yet */
    wait_merged(f);
    assert_int_equal(entries(f, f->dev), 0); /* the merge wrote them to the table */
    assert_string_equal(latest(f, f->dev, "t"), "2@200");
    put(f->s, f->dev, "t", 4, 120); /* late again, now against the table */
    assert_string_equal(latest(f, f->dev, "t"), "2@200");
    put(f->s, f->dev, "t", 5, 200); /* same ts: the later write wins, as in ThingsBoard */
    assert_string_equal(latest(f, f->dev, "t"), "5@200");
    wait_merged(f);
    assert_string_equal(latest(f, f->dev, "t"), "5@200");

    /* All keys, in key order, and the key list, whichever place each value is in. */
    put(f->s, f->dev, "a", 7, 10);
    store_kv_list_t l = {0};
    assert_int_equal(store_ts_latest(f->s, f->dev, NULL, 0, &l), 0);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.items[0].key, "a");
    assert_int_equal(l.items[0].l, 7);
    assert_string_equal(l.items[1].key, "t");
    assert_int_equal(l.items[1].l, 5);
    assert_string_equal(l.items[2].key, "u");
    store_kv_list_fini(&l);
    assert_int_equal(store_ts_keys(f->s, f->dev, &l), 0);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.items[0].key, "a");
    assert_string_equal(l.items[2].key, "u");
    store_kv_list_fini(&l);
    /* Asked keys come back in the order asked, found in either place. */
    const char *keys[] = {"u", "nope", "a"};
    assert_int_equal(store_ts_latest(f->s, f->dev, keys, 3, &l), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0].key, "u");
    assert_string_equal(l.items[1].key, "a");
    store_kv_list_fini(&l);
}

static void test_string_values(void **state)
{
    tstore_t *f = *state;
    const char *vals[] = {"long enough string", "short", "a longer string than before"};
    for (int i = 0; i < 3; i++) {
        store_batch_t *b = store_batch_new();
        store_kv_t kv = {.key = "s", .type = STORE_STRING, .s = (char *)vals[i], .ts = 10 + i};
        store_batch_ts(b, f->dev, &kv);
        assert_int_equal(store_submit_wait(f->s, b), 0);
        store_kv_list_t l = {0};
        assert_int_equal(store_ts_latest(f->s, f->dev, NULL, 0, &l), 0);
        assert_int_equal(l.n, 1);
        assert_string_equal(l.items[0].s, vals[i]);
        store_kv_list_fini(&l);
    }
}

/* deleteLatest with the latest point in the range: the latest value is gone, and the key's
 * older points still in the log do not bring an older one back when they are merged. */
static void test_delete_latest_stays_deleted(void **state)
{
    tstore_t *f = *state;
    put(f->s, f->dev, "d", 1, 100);
    put(f->s, f->dev, "d", 2, 200);
    const char *keys[] = {"d"};
    assert_int_equal(store_ts_delete(f->s, f->dev, keys, 1, 150, 250, true), 0);
    assert_string_equal(latest(f, f->dev, "d"), "-");
    wait_merged(f);
    assert_string_equal(latest(f, f->dev, "d"), "-");
    store_kv_list_t l = {0};
    assert_int_equal(store_ts_history(f->s, f->dev, "d", 0, 1000, 0, STORE_AGG_NONE, 0, true, &l),
                     0);
    assert_int_equal(l.n, 1); /* the older point stays */
    assert_int_equal(l.items[0].ts, 100);
    store_kv_list_fini(&l);

    /* The range misses the latest point: it stays, in memory and after the merge. */
    put(f->s, f->dev, "e", 1, 100);
    put(f->s, f->dev, "e", 2, 200);
    const char *ekeys[] = {"e"};
    assert_int_equal(store_ts_delete(f->s, f->dev, ekeys, 1, 50, 150, true), 0);
    assert_string_equal(latest(f, f->dev, "e"), "2@200");
    wait_merged(f);
    assert_string_equal(latest(f, f->dev, "e"), "2@200");
}

/* Without deleteLatest the latest value outlives its point, also when the point was only in
 * the log (the merge would never see it). */
static void test_delete_keeps_latest(void **state)
{
    tstore_t *f = *state;
    put(f->s, f->dev, "k", 1, 100);
    put(f->s, f->dev, "k", 2, 200);
    const char *keys[] = {"k"};
    assert_int_equal(store_ts_delete(f->s, f->dev, keys, 1, 150, 250, false), 0);
    assert_string_equal(latest(f, f->dev, "k"), "2@200");
    assert_int_equal(entries(f, f->dev), 0); /* moved to the table */
    wait_merged(f);
    assert_string_equal(latest(f, f->dev, "k"), "2@200");
}

/* A deleted device's latest values are gone with it, also for a new device that is given
 * the same id (SQLite reuses the largest rowid; PostgreSQL's sequence would not, so there the
 * test sets it back, as a restored or copied database may). */
static void test_device_delete_forgets(void **state)
{
    tstore_t *f = *state;
    int64_t other = tstore_device(f->s, "other");
    put(f->s, other, "x", 1, 100);
    assert_string_equal(latest(f, other, "x"), "1@100");
    assert_int_equal(store_device_delete(f->s, other), 0);
    assert_int_equal(entries(f, other), 0);
    if (f->pg) {
        char sql[128];
        snprintf(sql, sizeof(sql),
                 "SELECT setval(pg_get_serial_sequence('device', 'id'), %lld, false)",
                 (long long)other);
        assert_true(tstore_exec(f, sql) >= 0);
    }
    int64_t again = tstore_device(f->s, "again");
    assert_int_equal(again, other);
    assert_string_equal(latest(f, again, "x"), "-");
    /* and points of a deleted device are refused, also right after the writer has seen the
     * device exist (it remembers that until a delete) */
    put(f->s, again, "x", 2, 200);
    assert_int_equal(store_device_delete(f->s, again), 0);
    store_batch_t *b = store_batch_new();
    store_kv_t kv = {.key = "x", .type = STORE_LONG, .l = 1, .ts = 1};
    store_batch_ts(b, again, &kv);
    assert_int_equal(store_submit_wait(f->s, b), -ENOENT);
    assert_int_equal(entries(f, again), 0);
}

/* Points a crash left in the log: their latest values are back after the restart, before
 * and after the merge; an older one does not replace the stored latest value. */
static void test_rebuilt_from_log_at_open(void **state)
{
    tstore_t *f = *state;
    put(f->s, f->dev, "r", 7, 70);
    store_close(f->s);
    f->s = NULL;
    char sql[256];
    snprintf(sql, sizeof(sql),
             "INSERT INTO ts_kv_log(device_id, key_id, ts, long_v) SELECT %lld, key_id, 80, 8"
             " FROM key_dictionary WHERE key = 'r';"
             "INSERT INTO ts_kv_log(device_id, key_id, ts, long_v) SELECT %lld, key_id, 60, 6"
             " FROM key_dictionary WHERE key = 'r'",
             (long long)f->dev, (long long)f->dev);
    assert_true(tstore_exec(f, sql) >= 0);
    assert_non_null(tstore_reopen(f));
    assert_string_equal(latest(f, f->dev, "r"), "8@80");
    wait_merged(f);
    assert_string_equal(latest(f, f->dev, "r"), "8@80");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_newest_before_and_after_merge, tstore_setup_dev,
                                        tstore_teardown),
        cmocka_unit_test_setup_teardown(test_string_values, tstore_setup_dev, tstore_teardown),
        cmocka_unit_test_setup_teardown(test_delete_latest_stays_deleted, tstore_setup_dev,
                                        tstore_teardown),
        cmocka_unit_test_setup_teardown(test_delete_keeps_latest, tstore_setup_dev,
                                        tstore_teardown),
        cmocka_unit_test_setup_teardown(test_device_delete_forgets, tstore_setup_dev,
                                        tstore_teardown),
        cmocka_unit_test_setup_teardown(test_rebuilt_from_log_at_open, tstore_setup_dev,
                                        tstore_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
