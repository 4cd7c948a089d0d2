/* test_strict.c — one tokenizer, two grammars: what VALUES_STRICT (REST bodies, RFC 8259 as
 * jansson enforced it) refuses that VALUES_LENIENT (device payloads, Gson) reads, and the
 * REST body rules of values/body.h beside the device ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "values/body.h"
#include "values/json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static arena_t A;

static const values_cfg_t REST = {.strict = true};
static const values_cfg_t DEVICE = {.type_cast = true, .max_depth = 32};

static values_json_t *parse(values_syntax_t syntax, const char *s)
{
    char err[128] = "";
    values_json_t *v = values_json_parse(&A, (const uint8_t *)s, strlen(s), syntax, 0, err,
                                         sizeof err);
    if (!v)
        assert_true(err[0] != '\0');
    return v;
}

static int tele(const values_cfg_t *cfg, const char *s, values_kvs_t *out, char *err)
{
    memset(out, 0, sizeof *out);
    return values_telemetry(&A, cfg, (const uint8_t *)s, strlen(s), out, err, 160);
}

static int attrs(const values_cfg_t *cfg, const char *s, values_kvs_t *out, char *err)
{
    memset(out, 0, sizeof *out);
    return values_attributes(&A, cfg, (const uint8_t *)s, strlen(s), out, err, 160);
}

static const store_kv_t *find(const values_kvs_t *l, const char *key)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i].key, key) == 0)
            return &l->items[i];
    return NULL;
}

/* Gson lenient reads these, RFC 8259 does not. */
static void test_lenient_only(void **state)
{
    (void)state;
    const char *docs[] = {
        "{a:1}",
        "{'a':1}",
        "{\"a\":'x'}",
        "{\"a\":x}",
        "{\"a\"=1}",
        "{\"a\"=>1}",
        "{\"a\":1;\"b\":2}",
        "[1;2]",
        "{\"a\":TRUE}",
        "{\"a\":Null}",
        "{\"a\":1} // c",
        "# c\n{\"a\":1}",
        "/* c */{\"a\":1}",
        "{\"a\":\"\\'\"}",
        "\f{\"a\":1}",
        "{\"a\":\"x\ty\"}",
        "{\"a\":\"\\ud800\"}",
        "{\"a\":\"\\udc00x\"}",
        "{\"a\":\"\\u0000\"}",
        "{\"a\":1,\"a\":2}",
        "{\"o\":{\"b\":1,\"b\":1}}",
        "[{\"k\":1,\"k\":1}]",
        "{\"big\":99999999999999999999}",
        "[-99999999999999999999]",
        "[1e400]",
        "[-1.0e999]",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        assert_non_null(parse(VALUES_LENIENT, docs[i]));
        if (parse(VALUES_STRICT, docs[i]))
            fail_msg("strict reader accepted %s", docs[i]);
        arena_reset(&A);
    }
}

/* Both read these, to the same tree. */
static void test_both(void **state)
{
    (void)state;
    const char *docs[] = {
        "{\"a\":1}",
        " [ 1 , -0 , 0.5 , 1E+2 , -1e-400 ] ",
        "{\"s\":\"\\u00e9\\ud83d\\ude00\\/\"}",
        "{\"o\":{\"a\":[true,false,null,{}],\"b\":[]}}",
        "{\"a\":\"\x7f \xc3\xa9\"}",
        "[9223372036854775807,-9223372036854775808]",
        "{\"\":1}",
        "{\"a\":{\"a\":{\"a\":1}}}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        values_json_t *l = parse(VALUES_LENIENT, docs[i]), *s = parse(VALUES_STRICT, docs[i]);
        assert_non_null(l);
        if (!s)
            fail_msg("strict reader refused %s", docs[i]);
        char *lc = values_json_compact(l), *sc = values_json_compact(s);
        assert_string_equal(lc, sc);
        free(lc);
        free(sc);
        arena_reset(&A);
    }
    /* Neither reads these. */
    const char *bad[] = {
        "",    " ",       "{",           "[1,]",       "{\"a\":1,}",        "01", "[.5]", "[1.]",
        "[-]", "\"\\x\"", "{\"a\":1} x", "[\"\xff\"]", "[\"\xed\xa0\x80\"]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(parse(VALUES_STRICT, bad[i]));
        arena_reset(&A);
    }
}

/* REST typing: the token decides (Jackson), strings are not cast, JSON kept as written. */
static void test_rest_typing(void **state)
{
    (void)state;
    values_kvs_t l;
    char err[160];
    assert_int_equal(tele(&REST,
                          "{\"i\":73,\"d\":42.0,\"e\":1e3,\"x\":1.5e-3,\"s\":\"43\",\"b\":true,"
                          "\"o\":{\"a\":[1,2.50]},\"n\":null,\"neg\":-9223372036854775808}",
                          &l, err),
                     0);
    assert_int_equal(l.n, 8); /* null skipped */
    assert_int_equal(find(&l, "i")->type, STORE_LONG);
    assert_int_equal(find(&l, "i")->l, 73);
    assert_int_equal(find(&l, "d")->type, STORE_DOUBLE);
    assert_int_equal(find(&l, "e")->type, STORE_DOUBLE); /* the device reader: LONG 1000 */
    assert_true(find(&l, "e")->d == 1000.0);
    assert_true(find(&l, "x")->d == 1.5e-3);
    assert_int_equal(find(&l, "s")->type, STORE_STRING);
    assert_string_equal(find(&l, "s")->s, "43");
    assert_int_equal(find(&l, "o")->type, STORE_JSON);
    assert_string_equal(find(&l, "o")->s, "{\"a\":[1,2.50]}");
    assert_true(find(&l, "neg")->l == INT64_MIN);
    for (size_t i = 0; i < l.n; i++)
        assert_true(l.items[i].ts == VALUES_TS_NONE);
    arena_reset(&A);
    assert_int_equal(tele(&DEVICE, "{\"e\":1e3,\"s\":\"43\"}", &l, err), 0);
    assert_int_equal(find(&l, "e")->type, STORE_LONG);
    assert_int_equal(find(&l, "s")->type, STORE_LONG);
    arena_reset(&A);
}

/* REST shapes: {ts,values} needs exactly two members and an integer ts >= 0. */
static void test_rest_shapes(void **state)
{
    (void)state;
    values_kvs_t l;
    char err[160];
    assert_int_equal(tele(&REST, "{\"ts\":1,\"values\":{\"a\":1},\"x\":2}", &l, err), 0);
    assert_int_equal(l.n, 3);
    assert_true(find(&l, "ts")->ts == VALUES_TS_NONE);
    assert_int_equal(find(&l, "values")->type, STORE_JSON);
    arena_reset(&A);
    assert_int_equal(tele(&DEVICE, "{\"ts\":1,\"values\":{\"a\":1},\"x\":2}", &l, err), 0);
    assert_int_equal(l.n, 1);
    assert_true(l.items[0].ts == 1);
    arena_reset(&A);
    assert_int_equal(tele(&REST, "[{\"ts\":0,\"values\":{\"a\":1}},{\"b\":2}]", &l, err), 0);
    assert_true(find(&l, "a")->ts == 0);
    assert_true(find(&l, "b")->ts == VALUES_TS_NONE);
    arena_reset(&A);
    const char *bad[] = {"{\"ts\":\"1\",\"values\":{}}",
                         "{\"ts\":-1,\"values\":{}}",
                         "{\"ts\":1.0,\"values\":{}}",
                         "{\"ts\":1e3,\"values\":{}}",
                         "{\"ts\":1,\"values\":[]}",
                         "[{\"a\":1},2]",
                         "7"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(tele(&REST, bad[i], &l, err), -EBADMSG);
        assert_int_equal(l.n, 0);
    }
    assert_int_equal(tele(&DEVICE, "{\"ts\":\"1\",\"values\":{}}", &l, err), 0);
    arena_reset(&A);
}

/* REST refusals that carry ThingsBoard's message (-EINVAL), and their order. */
static void test_rest_refusals(void **state)
{
    (void)state;
    values_kvs_t l;
    char err[160];
    assert_int_equal(tele(&REST, "{\"a\":1,\"\":2}", &l, err), -EINVAL);
    assert_string_equal(err, "Key cannot be blank");
    assert_int_equal(l.n, 0);
    assert_int_equal(tele(&REST, "{\"\":null}", &l, err), -EINVAL); /* blank before null */
    assert_int_equal(attrs(&REST, "{\"a\":1,\"t\":null}", &l, err), -EINVAL);
    assert_string_equal(err, "Attribute value for key 't' must not be null");
    assert_int_equal(attrs(&REST, "{\"\":1,\"t\":null}", &l, err), -EINVAL);
    assert_string_equal(err, "Attribute value for key 't' must not be null"); /* nulls first */
    assert_int_equal(attrs(&REST, "[{\"a\":1}]", &l, err), -EBADMSG);
    assert_int_equal(attrs(&REST, "{}", &l, err), 0);
    assert_int_equal(l.n, 0);
    arena_reset(&A);
    /* The device reader skips nulls and keeps blank keys. */
    assert_int_equal(attrs(&DEVICE, "{\"\":1,\"t\":null}", &l, err), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.items[0].key, "");
    arena_reset(&A);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lenient_only),  cmocka_unit_test(test_both),
        cmocka_unit_test(test_rest_typing),   cmocka_unit_test(test_rest_shapes),
        cmocka_unit_test(test_rest_refusals),
    };
    arena_init(&A, 0); /* one arena for all, reset by each test as a shard resets its own */
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    arena_fini(&A);
    return failed;
}
