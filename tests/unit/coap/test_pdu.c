/* test_pdu.c — the CoAP codec against RFC 7252 / RFC 7959 byte vectors: build, compare bytes,
 * parse back, compare fields; and the format errors the parser must reject. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "coap/coap.h"
#include "coap/pdu.h"

#include <errno.h>
#include <string.h>

/* RFC 7252 Appendix A style: CON GET /temperature, MID 0x7d34, token 0x71 0x22. */
static const uint8_t get_temp[] = {0x42, 0x01, 0x7d, 0x34, 0x71, 0x22, 0xbb, 't', 'e', 'm',
                                   'p',  'e',  'r',  'a',  't',  'u',  'r',  'e'};

static void test_build_get(void **state)
{
    (void)state;
    uint8_t buf[64];
    coap_builder_t b;
    const uint8_t tok[] = {0x71, 0x22};
    coap_builder_init(&b, buf, sizeof buf, COAP_TYPE_CON, COAP_GET, 0x7d34, tok, 2);
    coap_builder_opt(&b, COAP_OPT_URI_PATH, (const uint8_t *)"temperature", 11);
    ssize_t n = coap_builder_finish(&b);
    assert_int_equal(n, sizeof get_temp);
    assert_memory_equal(buf, get_temp, sizeof get_temp);
}

static void test_parse_get(void **state)
{
    (void)state;
    coap_pdu_t p;
    assert_int_equal(coap_pdu_parse(&p, get_temp, sizeof get_temp), 0);
    assert_int_equal(p.type, COAP_TYPE_CON);
    assert_int_equal(p.code, COAP_GET);
    assert_int_equal(p.mid, 0x7d34);
    assert_int_equal(p.tkl, 2);
    assert_memory_equal(p.token, "\x71\x22", 2);
    assert_int_equal(p.n_opts, 1);
    assert_int_equal(p.opts[0].num, COAP_OPT_URI_PATH);
    size_t len;
    const uint8_t *v = coap_pdu_opt_value(&p, 0, &len);
    assert_int_equal(len, 11);
    assert_memory_equal(v, "temperature", 11);
    assert_null(p.payload);
    assert_int_equal(coap_pdu_opt_find(&p, COAP_OPT_URI_QUERY, 0), -ENOENT);
}

/* Piggybacked ACK 2.05 "22.3 C" with Content-Format 0 (RFC 7252 Appendix A, Figure 5). */
static void test_ack_payload(void **state)
{
    (void)state;
    const uint8_t want[] = {0x62, 0x45, 0x7d, 0x34, 0x71, 0x22, 0xc0, 0xff,
                            '2',  '2',  '.',  '3',  ' ',  'C'};
    uint8_t buf[64];
    coap_builder_t b;
    coap_builder_init(&b, buf, sizeof buf, COAP_TYPE_ACK, COAP_CONTENT, 0x7d34,
                      (const uint8_t *)"\x71\x22", 2);
    coap_builder_opt(&b, COAP_OPT_CONTENT_FORMAT, (const uint8_t *)"", 0);
    coap_builder_payload(&b, (const uint8_t *)"22.3 C", 6);
    assert_int_equal(coap_builder_finish(&b), sizeof want);
    assert_memory_equal(buf, want, sizeof want);
    coap_pdu_t p;
    assert_int_equal(coap_pdu_parse(&p, want, sizeof want), 0);
    assert_int_equal(p.payload_len, 6);
    assert_memory_equal(p.payload, "22.3 C", 6);
    uint32_t cf = 99;
    assert_int_equal(coap_pdu_opt_uint(&p, COAP_OPT_CONTENT_FORMAT, &cf), 0);
    assert_int_equal(cf, 0);
}

/* Delta 13 (8-bit ext), delta/length 14 (16-bit ext, 269+). */
static void test_extensions(void **state)
{
    (void)state;
    uint8_t val[300];
    memset(val, 'x', sizeof val);
    uint8_t buf[512];
    coap_builder_t b;
    coap_builder_init(&b, buf, sizeof buf, COAP_TYPE_NON, COAP_POST, 1, NULL, 0);
    coap_builder_opt_uint(&b, COAP_OPT_SIZE1, 1024);        /* delta 60 -> 13 + 47 */
    coap_builder_opt(&b, COAP_OPT_NO_RESPONSE, val, 1);     /* delta 198 -> 13 + 185 */
    coap_builder_opt(&b, 2000, val, 300);                   /* delta 1742 -> 14, len 300 -> 14 */
    ssize_t n = coap_builder_finish(&b);
    assert_true(n > 0);
    const uint8_t head[] = {0x50, 0x02, 0x00, 0x01, 0xd2, 47, 0x04, 0x00,
                            0xd1, 185,  'x',  0xee, 0x05, 0xc1, 0x00, 31};
    assert_memory_equal(buf, head, sizeof head);
    assert_int_equal(n, (ssize_t)(sizeof head + 300));
    coap_pdu_t p;
    assert_int_equal(coap_pdu_parse(&p, buf, (size_t)n), 0);
    assert_int_equal(p.n_opts, 3);
    assert_int_equal(p.opts[0].num, 60);
    assert_int_equal(p.opts[1].num, 258);
    assert_int_equal(p.opts[2].num, 2000);
    assert_int_equal(p.opts[2].len, 300);
    uint32_t v;
    assert_int_equal(coap_pdu_opt_uint(&p, COAP_OPT_SIZE1, &v), 0);
    assert_int_equal(v, 1024);
    /* 269 exactly is the first 16-bit extension value. */
    coap_builder_init(&b, buf, sizeof buf, COAP_TYPE_NON, COAP_POST, 1, NULL, 0);
    coap_builder_opt(&b, 269, NULL, 0);
    assert_int_equal(coap_builder_finish(&b), 7);
    assert_memory_equal(buf + 4, "\xe0\x00\x00", 3);
}

static void expect_bad(const uint8_t *p, size_t len, int err)
{
    coap_pdu_t pdu;
    assert_int_equal(coap_pdu_parse(&pdu, p, len), err);
}

static void test_format_errors(void **state)
{
    (void)state;
    expect_bad((const uint8_t *)"\x40\x01\x00", 3, -EBADMSG);                 /* short */
    expect_bad((const uint8_t *)"\x80\x01\x00\x01", 4, -EBADMSG);             /* version 2 */
    expect_bad((const uint8_t *)"\x49\x01\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00", 13,
               -EBADMSG);                                                       /* TKL 9 */
    expect_bad((const uint8_t *)"\x42\x01\x00\x01\x00", 5, -EBADMSG);         /* short token */
    expect_bad((const uint8_t *)"\x40\x01\x00\x01\xff", 5, -EBADMSG);         /* empty payload */
    expect_bad((const uint8_t *)"\x40\x01\x00\x01\xf1\x00", 6, -EBADMSG);     /* delta 15 */
    expect_bad((const uint8_t *)"\x40\x01\x00\x01\x1f\x00", 6, -EBADMSG);     /* length 15 */
    expect_bad((const uint8_t *)"\x40\x01\x00\x01\xd0", 5, -EBADMSG);         /* missing ext */
    expect_bad((const uint8_t *)"\x40\x01\x00\x01\xe0\x01", 6, -EBADMSG);     /* half ext16 */
    expect_bad((const uint8_t *)"\x40\x01\x00\x01\xb5\x61\x62", 7, -EBADMSG); /* value cut */
    /* Option numbers summing past 65535. */
    expect_bad((const uint8_t *)"\x40\x01\x00\x01\xe0\xff\xff\xe0\xff\xff", 10, -EBADMSG);
    /* More options than the view holds. */
    uint8_t many[4 + COAP_PDU_MAX_OPTS + 1] = {0x40, 0x01, 0x00, 0x01};
    memset(many + 4, 0x00, COAP_PDU_MAX_OPTS + 1); /* delta 0, length 0: repeated If-Match 0 */
    many[4] = 0x10;
    expect_bad(many, sizeof many, -E2BIG);
    /* A valid header with payload and no options. */
    coap_pdu_t p;
    assert_int_equal(coap_pdu_parse(&p, (const uint8_t *)"\x50\x02\x00\x01\xff\x41", 6), 0);
    assert_int_equal(p.payload_len, 1);
}

static void test_builder_errors(void **state)
{
    (void)state;
    uint8_t buf[8];
    coap_builder_t b;
    coap_builder_init(&b, buf, sizeof buf, COAP_TYPE_CON, COAP_GET, 1, NULL, 0);
    coap_builder_opt(&b, 11, NULL, 0);
    coap_builder_opt(&b, 6, NULL, 0);
    assert_int_equal(coap_builder_finish(&b), -EINVAL);
    coap_builder_init(&b, buf, sizeof buf, COAP_TYPE_CON, COAP_GET, 1, NULL, 0);
    coap_builder_opt(&b, 11, (const uint8_t *)"abcdefgh", 8);
    assert_int_equal(coap_builder_finish(&b), -ENOSPC);
    coap_builder_init(&b, buf, sizeof buf, COAP_TYPE_CON, COAP_GET, 1, buf, 9);
    assert_int_equal(coap_builder_finish(&b), -EINVAL);
}

static void test_uint(void **state)
{
    (void)state;
    uint8_t o[4];
    assert_int_equal(coap_opt_uint_encode(0, o), 0);
    assert_int_equal(coap_opt_uint_encode(255, o), 1);
    assert_int_equal(coap_opt_uint_encode(256, o), 2);
    assert_memory_equal(o, "\x01\x00", 2);
    assert_int_equal(coap_opt_uint_encode(0x01020304, o), 4);
    uint32_t v;
    assert_int_equal(coap_opt_uint_decode(o, 4, &v), 0);
    assert_int_equal(v, 0x01020304);
    assert_int_equal(coap_opt_uint_decode((const uint8_t *)"12345", 5, &v), -EBADMSG);
    assert_true(coap_opt_is_known(COAP_OPT_NO_RESPONSE));
    assert_false(coap_opt_is_known(9));
    assert_true(coap_opt_is_critical(9));
    assert_false(coap_opt_is_critical(COAP_OPT_OBSERVE));
}

static void test_block(void **state)
{
    (void)state;
    coap_block_t b;
    assert_int_equal(coap_block_decode(0x1a, &b), 0); /* NUM 1, M, SZX 2 (64 bytes) */
    assert_int_equal(b.num, 1);
    assert_true(b.more);
    assert_int_equal(b.szx, 2);
    assert_int_equal(coap_block_size(b.szx), 64);
    assert_int_equal(coap_block_encode(&b), 0x1a);
    assert_int_equal(coap_block_decode(0x07, &b), -EBADMSG); /* SZX 7 reserved */
    assert_int_equal(coap_block_decode(0x1000000, &b), -EBADMSG);
    assert_int_equal(coap_block_decode(0xfffff6, &b), 0);
    assert_int_equal(b.num, 0xfffff);
    assert_false(b.more);
    assert_int_equal(b.szx, 6);
    coap_block_t big = {.num = 0x12345, .more = true, .szx = 6};
    assert_int_equal(coap_block_encode(&big), 0x12345e);
    assert_int_equal(coap_block_szx_for(1024), 6);
    assert_int_equal(coap_block_szx_for(4096), 6);
    assert_int_equal(coap_block_szx_for(100), 2);
    assert_int_equal(coap_block_szx_for(16), 0);
    assert_int_equal(coap_block_szx_for(1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_get),     cmocka_unit_test(test_parse_get),
        cmocka_unit_test(test_ack_payload),   cmocka_unit_test(test_extensions),
        cmocka_unit_test(test_format_errors), cmocka_unit_test(test_builder_errors),
        cmocka_unit_test(test_uint),          cmocka_unit_test(test_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
