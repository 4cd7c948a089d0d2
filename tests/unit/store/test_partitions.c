/* test_partitions.c — points at any timestamp are stored and read back on both backends, under
 * every partitioning (PostgreSQL: pg_partition.c): before 1970, at the epoch, at day and year
 * boundaries, at the year 10000 boundary and at the ends of int64; and a change of the
 * partitioning between two starts keeps the old partitions and cuts a new one to the gap
 * between them. On SQLite the same calls must simply work (it has no partitions).
 */
#include "store_test_util.h"

#include "core/err.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define DAY_MS INT64_C(86400000)

static const int64_t edge_ts[] = {
    INT64_MIN + 1,
    -DAY_MS - 1,
    -1,
    0,
    1,
    DAY_MS - 1,
    DAY_MS,
    INT64_C(1704067199999),   /* 2023-12-31T23:59:59.999Z */
    INT64_C(1704067200000),   /* 2024-01-01 */
    INT64_C(253402300799999), /* the last ms of 9999 */
    INT64_C(253402300800000), /* 10000-01-01 */
    INT64_MAX - 1,
};
enum { N_EDGE = sizeof(edge_ts) / sizeof(edge_ts[0]) };

/* The history of key in [lo, hi], ascending: its points' ts in out; the count. */
static size_t history(store_t *s, int64_t dev, const char *key, int64_t lo, int64_t hi,
                      int64_t *out, size_t cap)
{
    store_kv_list_t l = {0};
    assert_int_equal(store_ts_history(s, dev, key, lo, hi, 0, STORE_AGG_NONE, 1000, true, &l), 0);
    size_t n = l.n < cap ? l.n : cap;
    for (size_t i = 0; i < n; i++)
        out[i] = l.items[i].ts;
    store_kv_list_fini(&l);
    return n;
}

static void edges_under(const char *partitioning)
{
    tstore_t t = {.partitioning = partitioning};
    assert_non_null(tstore_open(&t));
    int64_t dev = tstore_device(t.s, "dev");
    assert_true(dev > 0);
    for (size_t i = 0; i < N_EDGE; i++)
        assert_int_equal(tstore_put(t.s, dev, "x", (int64_t)i, edge_ts[i]), 0);
    /* Readable from the log, then from ts_kv once merged (where the partitions matter). */
    int64_t got[N_EDGE + 1];
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            assert_int_equal(tstore_wait_merged(&t), 0);
        size_t n = history(t.s, dev, "x", INT64_MIN + 1, INT64_MAX - 1, got, N_EDGE + 1);
        assert_int_equal(n, N_EDGE);
        for (size_t i = 0; i < N_EDGE; i++)
            assert_int_equal(got[i], edge_ts[i]);
    }
    if (t.pg) {
        char out[256];
        assert_int_equal(tstore_query(&t,
                                      "SELECT count(*) FROM pg_inherits"
                                      " WHERE inhparent = 'ts_kv'::regclass",
                                      out, sizeof(out)),
                         0);
        if (strcmp(partitioning, "INDEFINITE") == 0)
            assert_string_equal(out, "1");
        else
            assert_true(atoi(out) >= 6); /* before 1970, 1970, 2023, 2024, 9999, after */
        assert_int_equal(tstore_query(&t, "SELECT count(*) FROM ts_kv", out, sizeof(out)), 0);
        assert_int_equal(atoi(out), N_EDGE);
    }
    tstore_close(&t);
}

static void test_edges_days(void **state)
{
    (void)state;
    edges_under("DAYS");
}

static void test_edges_months(void **state)
{
    (void)state;
    edges_under("MONTHS");
}

static void test_edges_years(void **state)
{
    (void)state;
    edges_under("YEARS");
}

static void test_edges_indefinite(void **state)
{
    (void)state;
    edges_under("INDEFINITE");
}

/* MONTHS first, then YEARS: a point in a year whose first months already have month partitions
 * goes to a partition cut to start where they end, and every point stays readable. */
static void test_partitioning_changes(void **state)
{
    (void)state;
    tstore_t t = {.partitioning = "MONTHS"};
    assert_non_null(tstore_open(&t));
    int64_t dev = tstore_device(t.s, "dev");
    const int64_t jan_2030 = INT64_C(1893456000000), jun_2030 = INT64_C(1906502400000);
    assert_int_equal(tstore_put(t.s, dev, "x", 1, jan_2030), 0);
    assert_int_equal(tstore_wait_merged(&t), 0);
    store_close(t.s);
    t.partitioning = "YEARS";
    assert_non_null(tstore_reopen(&t));
    assert_int_equal(tstore_put(t.s, dev, "x", 2, jun_2030), 0);
    assert_int_equal(tstore_put(t.s, dev, "x", 3, jan_2030 + 1), 0);
    assert_int_equal(tstore_wait_merged(&t), 0);
    int64_t got[4];
    assert_int_equal(history(t.s, dev, "x", jan_2030, jun_2030, got, 4), 3);
    assert_int_equal(got[0], jan_2030);
    assert_int_equal(got[1], jan_2030 + 1);
    assert_int_equal(got[2], jun_2030);
    if (t.pg) {
        char out[256];
        /* the January 2030 month partition stays; June 2030 went to one cut after it */
        assert_int_equal(tstore_query(&t,
                                      "SELECT count(*) FROM pg_class WHERE relname IN"
                                      " ('ts_kv_2030_01', 'ts_kv_p1896134400000')",
                                      out, sizeof(out)),
                         0);
        assert_string_equal(out, "2");
    }
    tstore_close(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edges_days),           cmocka_unit_test(test_edges_months),
        cmocka_unit_test(test_edges_years),          cmocka_unit_test(test_edges_indefinite),
        cmocka_unit_test(test_partitioning_changes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
