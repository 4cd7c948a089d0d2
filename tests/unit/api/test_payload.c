/* test_payload.c — the lenient JSON reader and the §3/§5 typing of device payloads (values/)
 * and the RPC and claim bodies (uplink/payload.c), all parsed into one arena that each test
 * resets as the shard does after a request. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "uplink/payload.h"
#include "values/body.h"
#include "values/json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static arena_t A; /* 8 KiB chunks, as a shard's */

static const values_cfg_t CFG = {.type_cast = true, .max_depth = 32};
static const values_cfg_t NOCAST = {.type_cast = false, .max_depth = 32};

static int tele(const values_cfg_t *cfg, const char *s, values_kvs_t *out)
{
    char err[128];
    memset(out, 0, sizeof *out);
    arena_reset(&A);
    return values_telemetry(&A, cfg, (const uint8_t *)s, strlen(s), out, err, sizeof err);
}

static int attrs(const values_cfg_t *cfg, const char *s, values_kvs_t *out)
{
    char err[128];
    memset(out, 0, sizeof *out);
    arena_reset(&A);
    return values_attributes(&A, cfg, (const uint8_t *)s, strlen(s), out, err, sizeof err);
}

static const store_kv_t *find(const values_kvs_t *l, const char *key)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i].key, key) == 0)
            return &l->items[i];
    return NULL;
}

static char *compact(const char *s)
{
    char err[128];
    values_json_t *v = values_json_parse(&A, (const uint8_t *)s, strlen(s), VALUES_LENIENT, 32, err,
                                         sizeof err);
    char *c = v ? values_json_compact(v) : NULL;
    arena_reset(&A);
    return c;
}

static void test_typing_table(void **state)
{
    (void)state;
    values_kvs_t l;
    assert_int_equal(tele(&CFG,
                          "{\"b\":true,\"f\":false,\"l\":73,\"e\":1e3,\"d\":42.0,\"x\":1.5e-3,"
                          "\"sl\":\"43\",\"sd\":\"-1.5\",\"s\":\"hi\",\"o\":{\"a\": [1, 2.50]},"
                          "\"n\":null,\"big\":99999999999999999999,\"neg\":-5}",
                          &l),
                     0);
    assert_int_equal(l.n, 12); /* null skipped */
    assert_int_equal(find(&l, "b")->type, STORE_BOOL);
    assert_true(find(&l, "b")->b);
    assert_false(find(&l, "f")->b);
    assert_int_equal(find(&l, "l")->type, STORE_LONG);
    assert_int_equal(find(&l, "l")->l, 73);
    assert_int_equal(find(&l, "e")->type, STORE_LONG);
    assert_int_equal(find(&l, "e")->l, 1000);
    assert_int_equal(find(&l, "d")->type, STORE_DOUBLE);
    assert_true(find(&l, "d")->d == 42.0);
    assert_int_equal(find(&l, "x")->type, STORE_DOUBLE);
    assert_true(find(&l, "x")->d == 1.5e-3);
    assert_int_equal(find(&l, "sl")->type, STORE_LONG);
    assert_int_equal(find(&l, "sl")->l, 43);
    assert_int_equal(find(&l, "sd")->type, STORE_DOUBLE);
    assert_true(find(&l, "sd")->d == -1.5);
    assert_int_equal(find(&l, "s")->type, STORE_STRING);
    assert_string_equal(find(&l, "s")->s, "hi");
    assert_int_equal(find(&l, "o")->type, STORE_JSON);
    assert_string_equal(find(&l, "o")->s, "{\"a\":[1,2.50]}");
    assert_null(find(&l, "n"));
    assert_int_equal(find(&l, "big")->type, STORE_STRING);
    assert_string_equal(find(&l, "big")->s, "99999999999999999999");
    assert_int_equal(find(&l, "neg")->l, -5);
    for (size_t i = 0; i < l.n; i++)
        assert_true(l.items[i].ts == VALUES_TS_NONE);
    arena_reset(&A);
}

static void test_exponent_rules(void **state)
{
    (void)state;
    values_kvs_t l;
    assert_int_equal(tele(&CFG, "{a:1.0e3,b:2E+2,c:-3e0,d:1e20,e:1e-20,f:0e5,g:12.5e1}", &l), 0);
    assert_int_equal(find(&l, "a")->type, STORE_LONG);
    assert_int_equal(find(&l, "a")->l, 1000);
    assert_int_equal(find(&l, "b")->l, 200);
    assert_int_equal(find(&l, "c")->l, -3);
    assert_int_equal(find(&l, "d")->type, STORE_STRING); /* beyond int64, type cast on */
    assert_string_equal(find(&l, "d")->s, "100000000000000000000");
    assert_int_equal(find(&l, "e")->type, STORE_STRING); /* scale 20 > 16 */
    assert_string_equal(find(&l, "e")->s, "0.00000000000000000001");
    assert_int_equal(find(&l, "f")->type, STORE_LONG);
    assert_int_equal(find(&l, "f")->l, 0);
    assert_int_equal(find(&l, "g")->type, STORE_LONG);
    assert_int_equal(find(&l, "g")->l, 125);
    arena_reset(&A);
    /* Strings with exponents are not "parsable": they stay strings. */
    assert_int_equal(tele(&CFG, "{\"s\":\"1e3\",\"t\":\"5.\",\"u\":\"007\"}", &l), 0);
    assert_int_equal(find(&l, "s")->type, STORE_STRING);
    assert_int_equal(find(&l, "t")->type, STORE_STRING);
    assert_int_equal(find(&l, "u")->type, STORE_LONG);
    assert_int_equal(find(&l, "u")->l, 7);
    arena_reset(&A);
}

static void test_no_type_cast(void **state)
{
    (void)state;
    values_kvs_t l;
    assert_int_equal(tele(&NOCAST, "{\"sl\":\"43\"}", &l), 0);
    assert_int_equal(find(&l, "sl")->type, STORE_STRING);
    arena_reset(&A);
    assert_int_equal(tele(&NOCAST, "{\"big\":99999999999999999999}", &l), -EBADMSG);
    char huge[420] = "{\"h\":1";
    memset(huge + 7, '0', 400);
    strcpy(huge + 407, ".5}");
    assert_int_equal(tele(&CFG, huge, &l), -EBADMSG); /* 1e400 is not a finite double */
    assert_int_equal(l.n, 0);
    /* A numeric string too big for int64 falls back to STRING even with type cast. */
    assert_int_equal(tele(&CFG, "{\"big\":\"99999999999999999999\"}", &l), 0);
    assert_int_equal(find(&l, "big")->type, STORE_STRING);
    arena_reset(&A);
}

static void test_lenient_syntax(void **state)
{
    (void)state;
    values_kvs_t l;
    assert_int_equal(tele(&CFG, "{temperature:25}", &l), 0);
    assert_int_equal(find(&l, "temperature")->l, 25);
    arena_reset(&A);
    assert_int_equal(tele(&CFG, "{'a':'x y', mode: eco; n => 1, /* c */ t=TRUE # x\n}", &l), 0);
    assert_string_equal(find(&l, "a")->s, "x y");
    assert_string_equal(find(&l, "mode")->s, "eco");
    assert_int_equal(find(&l, "n")->l, 1);
    assert_int_equal(find(&l, "t")->type, STORE_BOOL);
    arena_reset(&A);
    char *c = compact("{ k : [ 'q', x , -0 , 1E5 ] } // end");
    assert_string_equal(c, "{\"k\":[\"q\",\"x\",-0,1E5]}");
    free(c);
    c = compact("\"\\u00e9\\ud83d\\ude00\\ud800 \\n\"");
    assert_string_equal(c, "\"\xc3\xa9\xf0\x9f\x98\x80\xef\xbf\xbd \\n\"");
    free(c);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    const char *bad[] = {
        "", "   ", "{", "{\"a\":}", "{\"a\" 1}", "{\"a\":1,}", "{\"a\":1} x", "[1,2",
        "{\"a\":\"\\x\"}", "{\"a\":\"\xff\"}", "{a:1 /* open", "{\"a\":\"\\ud8\"}", "{,}", "\\",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[128] = "";
        values_json_t *v = values_json_parse(&A, (const uint8_t *)bad[i], strlen(bad[i]),
                                             VALUES_LENIENT, 32, err, sizeof err);
        assert_null(v);
        assert_true(err[0] != '\0');
    }
}

static void test_telemetry_shapes(void **state)
{
    (void)state;
    values_kvs_t l;
    assert_int_equal(tele(&CFG, "{\"ts\":1451649600512,\"values\":{\"t\":43}}", &l), 0);
    assert_int_equal(l.n, 1);
    assert_true(l.items[0].ts == 1451649600512LL);
    arena_reset(&A);
    /* ts alone is an ordinary key. */
    assert_int_equal(tele(&CFG, "{\"ts\":5,\"x\":1}", &l), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(find(&l, "ts")->l, 5);
    arena_reset(&A);
    assert_int_equal(tele(&CFG, "[{\"k1\":\"v1\"},{\"ts\":\"7\",\"values\":{\"k2\":true}}]", &l),
                     0);
    assert_int_equal(l.n, 2);
    assert_true(find(&l, "k1")->ts == VALUES_TS_NONE);
    assert_true(find(&l, "k2")->ts == 7);
    arena_reset(&A);
    assert_int_equal(tele(&CFG, "{}", &l), 0);
    assert_int_equal(l.n, 0);
    arena_reset(&A);
    const char *bad[] = {"[1,2]", "42", "\"s\"", "null", "{\"ts\":1,\"values\":5}",
                         "{\"ts\":true,\"values\":{}}", "[{\"a\":1},3]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(tele(&CFG, bad[i], &l), -EBADMSG);
        assert_int_equal(l.n, 0);
    }
}

static void test_attributes_shape_and_duplicates(void **state)
{
    (void)state;
    values_kvs_t l;
    assert_int_equal(attrs(&CFG, "{\"a\":1,\"b\":2,\"a\":3}", &l), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(find(&l, "a")->l, 3);
    arena_reset(&A);
    /* ts/values have no special meaning for attributes. */
    assert_int_equal(attrs(&CFG, "{\"ts\":1,\"values\":{\"x\":1}}", &l), 0);
    assert_int_equal(find(&l, "values")->type, STORE_JSON);
    arena_reset(&A);
    assert_int_equal(attrs(&CFG, "[{\"a\":1}]", &l), -EBADMSG);
    assert_int_equal(attrs(&CFG, "{\"a\\u0000b\":1}", &l), -EBADMSG);
    assert_int_equal(attrs(&CFG, "{\"a\":\"x\\u0000\"}", &l), -EBADMSG);
}

static void test_caps(void **state)
{
    (void)state;
    values_cfg_t cfg = {.type_cast = true, .max_string_len = 3, .max_depth = 2};
    values_kvs_t l;
    assert_int_equal(attrs(&cfg, "{\"s\":\"abc\",\"u\":\"\xc3\xa9\xc3\xa9\xc3\xa9\"}", &l), 0);
    arena_reset(&A);
    assert_int_equal(attrs(&cfg, "{\"s\":\"abcd\"}", &l), -EBADMSG);
    assert_int_equal(attrs(&cfg, "{\"n\":\"12345\"}", &l), 0); /* numeric: not a string */
    arena_reset(&A);
    assert_int_equal(attrs(&cfg, "{\"o\":{\"p\":1}}", &l), 0);
    arena_reset(&A);
    assert_int_equal(attrs(&cfg, "{\"o\":{\"p\":[1]}}", &l), -EBADMSG);
    cfg.max_bytes = 4;
    assert_int_equal(attrs(&cfg, "{\"a\":1}", &l), -EBADMSG);
    /* Deep nesting beyond the hard limit is refused without exhausting the stack. */
    char deep[2001];
    memset(deep, '[', 2000);
    deep[2000] = '\0';
    char err[64];
    assert_null(
        values_json_parse(&A, (const uint8_t *)deep, 2000, VALUES_LENIENT, 0, err, sizeof err));
}

static void test_rpc_and_claim_bodies(void **state)
{
    (void)state;
    char err[128];
    const char *m, *p, *c, *sec;
    const char *req = "{\"method\":\"getCurrentTime\",\"params\":{ }}";
    assert_int_equal(uplink_payload_client_rpc(&A, &CFG, (const uint8_t *)req, strlen(req), &m, &p,
                                               err, sizeof err),
                     0);
    assert_string_equal(m, "getCurrentTime");
    assert_string_equal(p, "{}");
    req = "{method:ping}";
    assert_int_equal(uplink_payload_client_rpc(&A, &CFG, (const uint8_t *)req, strlen(req), &m, &p,
                                               err, sizeof err),
                     0);
    assert_string_equal(p, "null");
    const char *bad[] = {"{\"params\":1}", "[1]", "{\"method\":{}}", "{\"method\":null}", "x y"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(uplink_payload_client_rpc(&A, &CFG, (const uint8_t *)bad[i],
                                                   strlen(bad[i]), &m, &p, err, sizeof err),
                         -EBADMSG);
        assert_null(m);
        assert_null(p);
    }
    const char *rep = "{ \"result\" : 'ok' }";
    assert_int_equal(
        uplink_payload_rpc_reply(&A, &CFG, (const uint8_t *)rep, strlen(rep), &c, err, sizeof err),
        0);
    assert_string_equal(c, "{\"result\":\"ok\"}");
    assert_int_equal(
        uplink_payload_rpc_reply(&A, &CFG, (const uint8_t *)"42", 2, &c, err, sizeof err),
        -EBADMSG);
    assert_int_equal(uplink_payload_rpc_reply(&A, &CFG, NULL, 0, &c, err, sizeof err), -EBADMSG);

    int64_t dur;
    assert_int_equal(uplink_payload_claim(&A, &CFG, NULL, 0, &sec, &dur, err, sizeof err), 0);
    assert_string_equal(sec, "");
    assert_int_equal(dur, 0);
    const char *cl = "{\"secretKey\":\"value\",\"durationMs\":60000}";
    assert_int_equal(uplink_payload_claim(&A, &CFG, (const uint8_t *)cl, strlen(cl), &sec, &dur,
                                          err, sizeof err),
                     0);
    assert_string_equal(sec, "value");
    assert_int_equal(dur, 60000);
    cl = "{\"secretKey\":{}}";
    assert_int_equal(uplink_payload_claim(&A, &CFG, (const uint8_t *)cl, strlen(cl), &sec, &dur,
                                          err, sizeof err),
                     -EBADMSG);
    assert_null(sec);
    cl = "{\"durationMs\":\"x\"}";
    assert_int_equal(uplink_payload_claim(&A, &CFG, (const uint8_t *)cl, strlen(cl), &sec, &dur,
                                          err, sizeof err),
                     -EBADMSG);
}

/* The steady-state shape: a small telemetry object stays in the first chunk (so a shard
 * that resets its arena never mallocs for it), and keys/values point into the arena. */
static void test_small_payload_stays_in_first_chunk(void **state)
{
    (void)state;
    values_kvs_t l;
    for (int round = 0; round < 3; round++) {
        assert_int_equal(tele(&CFG, "{\"temperature\":42.5,\"humidity\":71}", &l), 0);
        assert_int_equal(l.n, 2);
        assert_ptr_equal(A.cur, A.first);
        assert_string_equal(find(&l, "temperature")->key, "temperature");
        assert_true(find(&l, "temperature")->d == 42.5);
        assert_int_equal(find(&l, "humidity")->l, 71);
    }
    arena_reset(&A);
}

/* Payloads bigger than a chunk: many members (item arrays regrown across chunks), a string
 * longer than a chunk, escapes decoded into a block sized from the raw text, and the
 * duplicate-key check over hundreds of keys. */
static void test_big_payload_spans_chunks(void **state)
{
    (void)state;
    values_buf_t b = {0};
    values_buf_puts(&b, "{");
    for (int i = 0; i < 600; i++)
        values_buf_printf(&b, "\"key%d\":%d,", i, i);
    values_buf_puts(&b, "\"dup\":1,\"long\":\"");
    for (int i = 0; i < 3000; i++)
        values_buf_puts(&b, "ab\\u00e9\\n");
    values_buf_puts(&b, "\",\"dup\":2,\"key7\":\"last\"}");
    values_kvs_t l;
    assert_int_equal(tele(&CFG, b.p, &l), 0);
    assert_ptr_not_equal(A.cur, A.first);
    assert_int_equal(l.n, 602); /* 600 keys + dup + long; key7 and dup repeated */
    for (int i = 0; i < 600; i += 37) {
        char k[16];
        snprintf(k, sizeof k, "key%d", i);
        if (i != 7)
            assert_int_equal(find(&l, k)->l, i);
    }
    assert_string_equal(find(&l, "key7")->s, "last");
    assert_int_equal(find(&l, "dup")->l, 2);
    const char *s = find(&l, "long")->s;
    assert_int_equal(strlen(s), 3000 * 5);
    assert_memory_equal(s, "ab\xc3\xa9\n", 5);
    assert_memory_equal(s + 5 * 2999, "ab\xc3\xa9\n", 5);
    values_buf_fini(&b);
    arena_reset(&A);
    assert_ptr_equal(A.cur, A.first);
}

static void test_double_writer(void **state)
{
    (void)state;
    values_buf_t b = {0};
    values_buf_double(&b, 42.0);
    values_buf_puts(&b, " ");
    values_buf_double(&b, 0.1);
    values_buf_puts(&b, " ");
    values_buf_double(&b, -1.5e-7);
    values_buf_puts(&b, " ");
    values_buf_double(&b, 1e300);
    assert_string_equal(b.p, "42.0 0.1 -1.5e-07 1e+300");
    values_buf_fini(&b);
}

static int setup(void **state)
{
    (void)state;
    arena_init(&A, 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    arena_fini(&A);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_typing_table),
        cmocka_unit_test(test_exponent_rules),
        cmocka_unit_test(test_no_type_cast),
        cmocka_unit_test(test_lenient_syntax),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_telemetry_shapes),
        cmocka_unit_test(test_attributes_shape_and_duplicates),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_rpc_and_claim_bodies),
        cmocka_unit_test(test_small_payload_stays_in_first_chunk),
        cmocka_unit_test(test_big_payload_spans_chunks),
        cmocka_unit_test(test_double_writer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
