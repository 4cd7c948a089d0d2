/* test_kv.c — attributes (typed, 3 scopes), time-series points, latest values, history. */
#include "store_test_util.h"

#include "core/err.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static store_kv_t kv_long(const char *k, int64_t v, int64_t ts)
{
    return (store_kv_t){.key = (char *)k, .type = STORE_LONG, .l = v, .ts = ts};
}

static store_kv_t kv_dbl(const char *k, double v, int64_t ts)
{
    return (store_kv_t){.key = (char *)k, .type = STORE_DOUBLE, .d = v, .ts = ts};
}

static void put_ts(store_t *s, int64_t dev, store_kv_t kv)
{
    store_batch_t *b = store_batch_new();
    store_batch_ts(b, dev, &kv);
    assert_int_equal(store_submit_wait(s, b), 0);
}

static const store_kv_t *find(const store_kv_list_t *l, const char *key)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i].key, key) == 0)
            return &l->items[i];
    return NULL;
}

static void test_attributes_typed(void **state)
{
    tstore_t *f = *state;
    static const store_scope_t scopes[] = {SCOPE_CLIENT, SCOPE_SERVER, SCOPE_SHARED};
    for (size_t i = 0; i < 3; i++) {
        store_batch_t *b = store_batch_new();
        store_kv_t kv = {.key = "flag", .type = STORE_BOOL, .b = true, .ts = 100};
        store_batch_attr(b, f->dev, scopes[i], &kv);
        kv = kv_long("count", -73, 101);
        store_batch_attr(b, f->dev, scopes[i], &kv);
        kv = kv_dbl("temp", 42.0, 102);
        store_batch_attr(b, f->dev, scopes[i], &kv);
        kv = (store_kv_t){.key = "name", .type = STORE_STRING, .s = "x\"y", .ts = 103};
        store_batch_attr(b, f->dev, scopes[i], &kv);
        kv = (store_kv_t){.key = "cfg", .type = STORE_JSON, .s = "{\"a\":[1,2]}", .ts = 104};
        store_batch_attr(b, f->dev, scopes[i], &kv);
        /* scope-specific value to prove scopes are separate */
        kv = kv_long("scope", (int64_t)scopes[i], 105);
        store_batch_attr(b, f->dev, scopes[i], &kv);
        assert_int_equal(store_batch_len(b), 6);
        assert_int_equal(store_submit_wait(f->s, b), 0);
    }
    for (size_t i = 0; i < 3; i++) {
        store_kv_list_t l = {0};
        assert_int_equal(store_attr_get(f->s, f->dev, scopes[i], NULL, 0, &l), 0);
        assert_int_equal(l.n, 6);
        assert_string_equal(l.items[0].key, "cfg"); /* sorted */
        assert_int_equal(l.items[0].type, STORE_JSON);
        assert_string_equal(l.items[0].s, "{\"a\":[1,2]}");
        assert_int_equal(l.items[0].ts, 104);
        const store_kv_t *v = find(&l, "flag");
        assert_int_equal(v->type, STORE_BOOL);
        assert_true(v->b);
        v = find(&l, "count");
        assert_int_equal(v->type, STORE_LONG);
        assert_int_equal(v->l, -73);
        v = find(&l, "temp");
        assert_int_equal(v->type, STORE_DOUBLE); /* 42.0 stays DOUBLE */
        assert_true(v->d == 42.0);
        v = find(&l, "name");
        assert_int_equal(v->type, STORE_STRING);
        assert_string_equal(v->s, "x\"y");
        assert_int_equal(find(&l, "scope")->l, (int64_t)scopes[i]);
        store_kv_list_fini(&l);
    }
    /* selected keys; missing keys are simply absent */
    const char *keys[] = {"temp", "nope", "count"};
    store_kv_list_t l = {0};
    assert_int_equal(store_attr_get(f->s, f->dev, SCOPE_SHARED, keys, 3, &l), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0].key, "count");
    assert_string_equal(l.items[1].key, "temp");
    store_kv_list_fini(&l);

    /* overwrite changes type */
    store_batch_t *b = store_batch_new();
    store_kv_t kv = {.key = "temp", .type = STORE_STRING, .s = "hot", .ts = 200};
    store_batch_attr(b, f->dev, SCOPE_SHARED, &kv);
    assert_int_equal(store_submit_wait(f->s, b), 0);
    assert_int_equal(store_attr_get(f->s, f->dev, SCOPE_SHARED, keys, 1, &l), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.items[0].type, STORE_STRING);
    assert_string_equal(l.items[0].s, "hot");
    assert_int_equal(l.items[0].ts, 200);
    store_kv_list_fini(&l);

    /* keys */
    assert_int_equal(store_attr_keys(f->s, f->dev, 0, &l), 0);
    assert_int_equal(l.n, 6);
    store_kv_list_fini(&l);

    /* deletes: synchronous and batched */
    const char *del[] = {"temp", "count", "nope"};
    size_t n_del = 99;
    assert_int_equal(store_attr_delete(f->s, f->dev, SCOPE_SHARED, del, 3, &n_del), 0);
    assert_int_equal(n_del, 2);
    b = store_batch_new();
    store_batch_attr_delete(b, f->dev, SCOPE_SERVER, "flag");
    store_batch_attr_delete(b, f->dev, SCOPE_SERVER, "never-seen-key");
    assert_int_equal(store_submit_wait(f->s, b), 0);
    assert_int_equal(store_attr_get(f->s, f->dev, SCOPE_SHARED, NULL, 0, &l), 0);
    assert_int_equal(l.n, 4);
    store_kv_list_fini(&l);
    assert_int_equal(store_attr_get(f->s, f->dev, SCOPE_SERVER, NULL, 0, &l), 0);
    assert_int_equal(l.n, 5);
    assert_null(find(&l, "flag"));
    store_kv_list_fini(&l);
    assert_int_equal(store_attr_get(f->s, f->dev, SCOPE_CLIENT, NULL, 0, &l), 0);
    assert_int_equal(l.n, 6);
    store_kv_list_fini(&l);

    store_scope_t sc;
    assert_int_equal(store_scope_parse("SHARED_SCOPE", &sc), 0);
    assert_int_equal(sc, SCOPE_SHARED);
    assert_string_equal(store_scope_name(SCOPE_CLIENT), "CLIENT_SCOPE");
    assert_int_equal(store_scope_parse("ANY", &sc), -EINVAL);
}

static void test_ts_latest(void **state)
{
    tstore_t *f = *state;
    put_ts(f->s, f->dev, kv_long("t", 1, 1000));
    put_ts(f->s, f->dev, kv_long("t", 2, 2000));
    put_ts(f->s, f->dev, kv_long("t", 0, 1500)); /* older: no new latest */
    put_ts(f->s, f->dev, kv_dbl("h", 0.5, 10));
    store_kv_list_t l = {0};
    assert_int_equal(store_ts_latest(f->s, f->dev, NULL, 0, &l), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0].key, "h");
    assert_string_equal(l.items[1].key, "t");
    assert_int_equal(l.items[1].l, 2);
    assert_int_equal(l.items[1].ts, 2000);
    store_kv_list_fini(&l);

    /* same key+ts overwrites the point and the latest value */
    store_kv_t s = {.key = "t", .type = STORE_STRING, .s = "two", .ts = 2000};
    put_ts(f->s, f->dev, s);
    const char *k[] = {"t"};
    assert_int_equal(store_ts_latest(f->s, f->dev, k, 1, &l), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.items[0].type, STORE_STRING);
    assert_string_equal(l.items[0].s, "two");
    store_kv_list_fini(&l);
    assert_int_equal(store_ts_history(f->s, f->dev, "t", 0, 5000, 0, STORE_AGG_NONE, 100, true, &l),
                     0);
    assert_int_equal(l.n, 3); /* 1000, 1500, 2000 — no duplicate row for 2000 */
    assert_int_equal(l.items[2].ts, 2000);
    assert_string_equal(l.items[2].s, "two");
    store_kv_list_fini(&l);

    assert_int_equal(store_ts_keys(f->s, f->dev, &l), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0].key, "h");
    store_kv_list_fini(&l);

    /* delete a range; latest survives when outside the range, goes when inside */
    assert_int_equal(store_ts_delete(f->s, f->dev, k, 1, 0, 1600, true), 0);
    assert_int_equal(store_ts_history(f->s, f->dev, "t", 0, 5000, 0, STORE_AGG_NONE, 100, true, &l),
                     0);
    assert_int_equal(l.n, 1);
    store_kv_list_fini(&l);
    assert_int_equal(store_ts_latest(f->s, f->dev, k, 1, &l), 0);
    assert_int_equal(l.n, 1);
    store_kv_list_fini(&l);
    assert_int_equal(store_ts_delete(f->s, f->dev, k, 1, 0, 5000, true), 0);
    assert_int_equal(store_ts_latest(f->s, f->dev, k, 1, &l), 0);
    assert_int_equal(l.n, 0);
    store_kv_list_fini(&l);

    /* deleting the device drops points, latest and attributes */
    store_batch_t *b = store_batch_new();
    store_kv_t a = kv_long("a", 1, 1);
    store_batch_attr(b, f->dev, SCOPE_SERVER, &a);
    assert_int_equal(store_submit_wait(f->s, b), 0);
    assert_int_equal(store_device_delete(f->s, f->dev), 0);
    assert_int_equal(store_ts_history(f->s, f->dev, "h", 0, 5000, 0, STORE_AGG_NONE, 100, true, &l),
                     0);
    assert_int_equal(l.n, 0);
    assert_int_equal(store_ts_latest(f->s, f->dev, NULL, 0, &l), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(store_attr_keys(f->s, f->dev, 0, &l), 0);
    assert_int_equal(l.n, 0);
    /* writing to a deleted device fails that batch */
    b = store_batch_new();
    store_batch_ts(b, f->dev, &a);
    assert_int_equal(store_submit_wait(f->s, b), -ENOENT);
}

static void test_history(void **state)
{
    tstore_t *f = *state;
    /* x: longs 1..10 at ts 100..1000; plus a double at 1050 and a string at 1060 */
    store_batch_t *b = store_batch_new();
    for (int i = 1; i <= 10; i++) {
        store_kv_t kv = kv_long("x", i, i * 100);
        store_batch_ts(b, f->dev, &kv);
    }
    store_kv_t kd = kv_dbl("x", 0.5, 1050);
    store_batch_ts(b, f->dev, &kd);
    store_kv_t ks = {.key = "x", .type = STORE_STRING, .s = "s", .ts = 1060};
    store_batch_ts(b, f->dev, &ks);
    assert_int_equal(store_submit_wait(f->s, b), 0);
    store_kv_list_t l = {0};

    /* raw, newest first, limit */
    assert_int_equal(
        store_ts_history(f->s, f->dev, "x", 100, 1000, 0, STORE_AGG_NONE, 3, false, &l), 0);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.items[0].ts, 1000);
    assert_int_equal(l.items[2].ts, 800);
    assert_string_equal(l.items[0].key, "x");
    store_kv_list_fini(&l);
    /* raw ascending, inclusive bounds */
    assert_int_equal(
        store_ts_history(f->s, f->dev, "x", 200, 400, 0, STORE_AGG_NONE, 100, true, &l), 0);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.items[0].l, 2);
    store_kv_list_fini(&l);

    /* buckets of 500 over [0, 999]: [0,500) has 1..4, [500,999] has 5..9 */
    assert_int_equal(store_ts_history(f->s, f->dev, "x", 0, 999, 500, STORE_AGG_SUM, 0, true, &l),
                     0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.items[0].type, STORE_LONG);
    assert_int_equal(l.items[0].l, 10);
    assert_int_equal(l.items[0].ts, 250);
    assert_int_equal(l.items[1].l, 35);
    assert_int_equal(l.items[1].ts, 500 + 499 / 2);
    store_kv_list_fini(&l);
    assert_int_equal(store_ts_history(f->s, f->dev, "x", 0, 999, 500, STORE_AGG_MIN, 0, true, &l),
                     0);
    assert_int_equal(l.items[0].l, 1);
    assert_int_equal(l.items[1].l, 5);
    store_kv_list_fini(&l);
    assert_int_equal(store_ts_history(f->s, f->dev, "x", 0, 999, 500, STORE_AGG_MAX, 0, false, &l),
                     0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.items[0].l, 9); /* descending: the later bucket first */
    assert_int_equal(l.items[1].l, 4);
    store_kv_list_fini(&l);
    assert_int_equal(store_ts_history(f->s, f->dev, "x", 0, 999, 500, STORE_AGG_AVG, 0, true, &l),
                     0);
    assert_int_equal(l.items[0].type, STORE_DOUBLE);
    assert_true(l.items[0].d == 2.5);
    assert_true(l.items[1].d == 7.0);
    store_kv_list_fini(&l);

    /* one bucket over everything: doubles mix in, the string only counts */
    assert_int_equal(store_ts_history(f->s, f->dev, "x", 0, 2000, 0, STORE_AGG_COUNT, 0, true, &l),
                     0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.items[0].type, STORE_LONG);
    assert_int_equal(l.items[0].l, 12);
    assert_int_equal(l.items[0].ts, 1000);
    store_kv_list_fini(&l);
    assert_int_equal(store_ts_history(f->s, f->dev, "x", 0, 2000, 0, STORE_AGG_MIN, 0, true, &l),
                     0);
    assert_int_equal(l.items[0].type, STORE_DOUBLE);
    assert_true(l.items[0].d == 0.5);
    store_kv_list_fini(&l);
    assert_int_equal(store_ts_history(f->s, f->dev, "x", 0, 2000, 0, STORE_AGG_MAX, 0, true, &l),
                     0);
    assert_true(l.items[0].d == 10.0);
    store_kv_list_fini(&l);
    assert_int_equal(store_ts_history(f->s, f->dev, "x", 0, 2000, -1, STORE_AGG_SUM, 0, true, &l),
                     0);
    assert_int_equal(l.items[0].type, STORE_DOUBLE);
    assert_true(l.items[0].d == 55.5);
    store_kv_list_fini(&l);
    assert_int_equal(store_ts_history(f->s, f->dev, "x", 0, 2000, 0, STORE_AGG_AVG, 0, true, &l),
                     0);
    assert_true(l.items[0].d == 55.5 / 11);
    store_kv_list_fini(&l);

    /* a bucket that holds only the string: no point except for COUNT */
    assert_int_equal(store_ts_history(f->s, f->dev, "x", 1055, 1070, 0, STORE_AGG_AVG, 0, true, &l),
                     0);
    assert_int_equal(l.n, 0);
    assert_int_equal(
        store_ts_history(f->s, f->dev, "x", 1055, 1070, 0, STORE_AGG_COUNT, 0, true, &l), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.items[0].l, 1);
    store_kv_list_fini(&l);

    /* unknown key, empty range */
    assert_int_equal(
        store_ts_history(f->s, f->dev, "nokey", 0, 2000, 0, STORE_AGG_NONE, 10, true, &l), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(store_ts_history(f->s, f->dev, "x", 2000, 0, 0, STORE_AGG_NONE, 10, true, &l),
                     0);
    assert_int_equal(l.n, 0);
    store_agg_t agg;
    assert_int_equal(store_agg_parse("COUNT", &agg), 0);
    assert_int_equal(agg, STORE_AGG_COUNT);
    assert_int_equal(store_agg_parse("MEDIAN", &agg), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_attributes_typed, tstore_setup_dev, tstore_teardown),
        cmocka_unit_test_setup_teardown(test_ts_latest, tstore_setup_dev, tstore_teardown),
        cmocka_unit_test_setup_teardown(test_history, tstore_setup_dev, tstore_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
