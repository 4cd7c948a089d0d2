/* test_render.c — stored values to JSON (values/render.h): the one number formatter, both
 * styles, JSON values read back as stored, and the object / series / attribute-list / key-list
 * shapes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "values/render.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void expect(const store_kv_t *kv, values_style_t style, const char *want)
{
    values_buf_t b = {0};
    values_kv_write(&b, kv, style);
    assert_string_equal(b.p, want);
    values_buf_fini(&b);
}

static void test_doubles(void **state)
{
    (void)state;
    static const struct {
        double d;
        const char *typed;
    } cases[] = {
        {42.0, "42.0"},
        {9.2, "9.2"},
        {0.1, "0.1"},
        {0.1 + 0.2, "0.30000000000000004"}, /* jansson's 15 digits said 0.3 */
        {-1.5e-7, "-1.5e-07"},
        {1e300, "1e+300"},
        {-0.0, "-0.0"},
        {1e16, "1e+16"},
        {123456789012345.0, "123456789012345.0"},
        {4.9406564584124654e-324, "5e-324"}, /* subnormal: fewer digits than 15 */
        {2.2250738585072014e-308, "2.2250738585072014e-308"},
        {1.5e-310, "1.5e-310"},
        {-1.7976931348623157e308, "-1.7976931348623157e+308"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        store_kv_t kv = {.key = (char *)"k", .type = STORE_DOUBLE, .d = cases[i].d};
        expect(&kv, VALUES_TYPED, cases[i].typed);
        char quoted[64];
        snprintf(quoted, sizeof quoted, "\"%s\"", cases[i].typed);
        expect(&kv, VALUES_TEXT, quoted);
        /* Every text reads back as the same double. */
        assert_true(strtod(cases[i].typed, NULL) == cases[i].d);
    }
    store_kv_t nan = {.key = (char *)"k", .type = STORE_DOUBLE, .d = NAN};
    expect(&nan, VALUES_TYPED, "null");
}

static void test_scalars(void **state)
{
    (void)state;
    store_kv_t kv = {.key = (char *)"k", .type = STORE_LONG, .l = INT64_MIN};
    expect(&kv, VALUES_TYPED, "-9223372036854775808");
    expect(&kv, VALUES_TEXT, "\"-9223372036854775808\"");
    kv = (store_kv_t){.key = (char *)"k", .type = STORE_BOOL, .b = true};
    expect(&kv, VALUES_TYPED, "true");
    expect(&kv, VALUES_TEXT, "\"true\"");
    kv = (store_kv_t){.key = (char *)"k", .type = STORE_STRING, .s = (char *)"a\"\\\n\x01\xc3\xa9"};
    expect(&kv, VALUES_TYPED, "\"a\\\"\\\\\\n\\u0001\xc3\xa9\"");
    expect(&kv, VALUES_TEXT, "\"a\\\"\\\\\\n\\u0001\xc3\xa9\"");
    kv.s = (char *)"bad \xff utf-8";
    expect(&kv, VALUES_TYPED, "\"\"");
    kv.s = NULL;
    expect(&kv, VALUES_TYPED, "\"\"");
}

static void test_json_values(void **state)
{
    (void)state;
    /* Compact text as the parsers store it comes back byte for byte. */
    const char *stored[] = {"{\"a\":1.50,\"b\":[1e3,-0,\"\\u0000x\"],\"a\":{}}", "[]",
                            "{\"\xc3\xa9\":\"\\\"q\\\"\\n\"}"};
    for (size_t i = 0; i < sizeof stored / sizeof stored[0]; i++) {
        store_kv_t kv = {.key = (char *)"k", .type = STORE_JSON, .s = (char *)stored[i]};
        expect(&kv, VALUES_TYPED, stored[i]);
    }
    /* Text from elsewhere is normalised, or becomes a string when it is no object/array. */
    store_kv_t kv = {.key = (char *)"k", .type = STORE_JSON, .s = (char *)"{ \"a\" : 1 }"};
    expect(&kv, VALUES_TYPED, "{\"a\":1}");
    expect(&kv, VALUES_TEXT, "\"{ \\\"a\\\" : 1 }\"");
    kv.s = (char *)"{\"a\":";
    expect(&kv, VALUES_TYPED, "\"{\\\"a\\\":\"");
    kv.s = (char *)"42";
    expect(&kv, VALUES_TYPED, "\"42\"");
    kv.s = (char *)"";
    expect(&kv, VALUES_TYPED, "\"\"");
}

static void test_shapes(void **state)
{
    (void)state;
    store_kv_t kvs[] = {
        {.key = (char *)"t", .type = STORE_LONG, .l = 1, .ts = 10},
        {.key = (char *)"h", .type = STORE_DOUBLE, .d = 2.5, .ts = 10},
        {.key = (char *)"bad\xff", .type = STORE_LONG, .l = 9, .ts = 10},
        {.key = (char *)"t", .type = STORE_LONG, .l = 3, .ts = 20},
    };
    values_buf_t b = {0};
    assert_int_equal(values_kvs_write_object(&b, kvs, 4, VALUES_TYPED), 2);
    assert_string_equal(b.p, "{\"t\":3,\"h\":2.5}");
    values_buf_fini(&b);
    assert_int_equal(values_kvs_write_series(&b, kvs, 4, VALUES_TEXT), 2);
    assert_string_equal(b.p,
                        "{\"t\":[{\"ts\":10,\"value\":\"1\"},{\"ts\":20,\"value\":\"3\"}],"
                        "\"h\":[{\"ts\":10,\"value\":\"2.5\"}]}");
    values_buf_fini(&b);
    assert_int_equal(values_kvs_write_attributes(&b, kvs, 4), 3);
    assert_string_equal(b.p,
                        "[{\"lastUpdateTs\":10,\"key\":\"t\",\"value\":1},"
                        "{\"lastUpdateTs\":10,\"key\":\"h\",\"value\":2.5},"
                        "{\"lastUpdateTs\":20,\"key\":\"t\",\"value\":3}]");
    values_buf_fini(&b);
    assert_int_equal(values_kvs_write_keys(&b, kvs, 4), 3);
    assert_string_equal(b.p, "[\"t\",\"h\",\"t\"]");
    values_buf_fini(&b);
    values_kvs_write_object(&b, NULL, 0, VALUES_TYPED);
    values_kvs_write_series(&b, NULL, 0, VALUES_TYPED);
    values_kvs_write_attributes(&b, NULL, 0);
    values_kvs_write_keys(&b, NULL, 0);
    assert_string_equal(b.p, "{}{}[][]");
    values_buf_fini(&b);
}

/* JSON values are parsed again while a grouped answer is written: the groups must survive
 * (a fuzzer found the series writer looping when they shared one arena). */
static void test_shapes_of_json_values(void **state)
{
    (void)state;
    store_kv_t kvs[] = {
        {.key = (char *)"j", .type = STORE_JSON, .s = (char *)"{\"a\":[1,2]}", .ts = 1},
        {.key = (char *)"k", .type = STORE_JSON, .s = (char *)"[{\"b\":{}}]", .ts = 1},
        {.key = (char *)"j", .type = STORE_JSON, .s = (char *)"[3]", .ts = 2},
        {.key = (char *)"k", .type = STORE_JSON, .s = (char *)"{}", .ts = 2},
        {.key = (char *)"j", .type = STORE_JSON, .s = (char *)"{\"c\":null}", .ts = 3},
    };
    values_buf_t b = {0};
    assert_int_equal(values_kvs_write_series(&b, kvs, 5, VALUES_TYPED), 2);
    assert_string_equal(b.p,
                        "{\"j\":[{\"ts\":1,\"value\":{\"a\":[1,2]}},{\"ts\":2,\"value\":[3]},"
                        "{\"ts\":3,\"value\":{\"c\":null}}],\"k\":[{\"ts\":1,\"value\":"
                        "[{\"b\":{}}]},{\"ts\":2,\"value\":{}}]}");
    values_buf_fini(&b);
    assert_int_equal(values_kvs_write_object(&b, kvs, 5, VALUES_TYPED), 2);
    assert_string_equal(b.p, "{\"j\":{\"c\":null},\"k\":{}}");
    values_buf_fini(&b);
}

/* Many points of few keys: grouping is linear, every point lands in its key's array. */
static void test_big_series(void **state)
{
    (void)state;
    enum { N = 30000 };
    store_kv_t *kvs = calloc(N, sizeof *kvs);
    static char keys[3][2] = {"a", "b", "c"};
    for (size_t i = 0; i < N; i++)
        kvs[i] = (store_kv_t){
            .key = keys[i % 3], .type = STORE_LONG, .l = (int64_t)i, .ts = (int64_t)i};
    values_buf_t b = {0};
    values_kvs_write_series(&b, kvs, N, VALUES_TYPED);
    assert_memory_equal(b.p, "{\"a\":[{\"ts\":0,\"value\":0},{\"ts\":3,\"value\":3},", 44);
    size_t points = 0;
    for (const char *p = b.p; (p = strstr(p, "\"ts\":")); p++)
        points++;
    assert_int_equal(points, N);
    values_buf_fini(&b);
    free(kvs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doubles),
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_json_values),
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_shapes_of_json_values),
        cmocka_unit_test(test_big_series),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
