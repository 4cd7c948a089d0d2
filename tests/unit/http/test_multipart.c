/* test_multipart.c — the streaming multipart/form-data parser: bodies as curl and browsers
 * send them, fed whole and in every split, delimiter look-alikes inside data, and malformed
 * framing. */
#include "http/multipart.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define B "------------------------abc123" /* curl's style: dashes and hex */
#define CT "multipart/form-data; boundary=" B

typedef struct sink {
    char names[4][HTTP_MP_NAME_MAX], files[4][HTTP_MP_NAME_MAX], types[4][HTTP_MP_NAME_MAX];
    char data[4][512];
    size_t len[4];
    int n, ended;
} sink_t;

static int on_begin(void *arg, const http_mp_part_t *p)
{
    sink_t *s = arg;
    if (s->n == 4)
        return -ENOSPC;
    snprintf(s->names[s->n], HTTP_MP_NAME_MAX, "%s", p->name);
    snprintf(s->files[s->n], HTTP_MP_NAME_MAX, "%s", p->has_filename ? p->filename : "(none)");
    snprintf(s->types[s->n], HTTP_MP_NAME_MAX, "%s", p->content_type);
    s->n++;
    return 0;
}

static int on_data(void *arg, const uint8_t *p, size_t n)
{
    sink_t *s = arg;
    int i = s->n - 1;
    assert_true(i >= 0 && s->len[i] + n <= sizeof s->data[i]);
    memcpy(s->data[i] + s->len[i], p, n);
    s->len[i] += n;
    return 0;
}

static int on_end(void *arg)
{
    ((sink_t *)arg)->ended++;
    return 0;
}

static const http_mp_cbs_t cbs = {on_begin, on_data, on_end};

/* Parses body in pieces of `step` bytes (0 = whole). Returns feed/finish's result. */
static int parse(const char *ct, const char *body, size_t len, size_t step, sink_t *s)
{
    memset(s, 0, sizeof *s);
    http_mp_t m;
    int rc = http__mp_init(&m, ct, &cbs, s);
    if (rc < 0)
        return rc;
    if (step == 0)
        step = len ? len : 1;
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;
        if ((rc = http__mp_feed(&m, (const uint8_t *)body + off, n)) < 0)
            return rc;
    }
    return http__mp_finish(&m);
}

static void test_curl_body_every_split(void **state)
{
    (void)state;
    /* What `curl -F file=@fw.bin -F note=x` sends; the file holds CR LF and dashes. */
    static const char body[] = "--" B
                               "\r\n"
                               "Content-Disposition: form-data; name=\"file\"; "
                               "filename=\"fw.bin\"\r\n"
                               "Content-Type: application/octet-stream\r\n"
                               "\r\n"
                               "AB\r\n-\r\n--\r\n--"
                               "-----x\r\r\n\r\n--Z"
                               "\r\n--" B
                               "\r\n"
                               "Content-Disposition: form-data; name=\"note\"\r\n"
                               "\r\n"
                               "x"
                               "\r\n--" B "--\r\n";
    static const char file[] = "AB\r\n-\r\n--\r\n-------x\r\r\n\r\n--Z";
    size_t len = sizeof body - 1;
    for (size_t step = 0; step <= len; step++) {
        sink_t s;
        assert_int_equal(parse(CT, body, len, step, &s), 0);
        assert_int_equal(s.n, 2);
        assert_int_equal(s.ended, 2);
        assert_string_equal(s.names[0], "file");
        assert_string_equal(s.files[0], "fw.bin");
        assert_string_equal(s.types[0], "application/octet-stream");
        assert_int_equal(s.len[0], sizeof file - 1);
        assert_memory_equal(s.data[0], file, sizeof file - 1);
        assert_string_equal(s.names[1], "note");
        assert_string_equal(s.files[1], "(none)");
        assert_int_equal(s.len[1], 1);
        assert_memory_equal(s.data[1], "x", 1);
    }
}

static void test_preamble_padding_epilogue(void **state)
{
    (void)state;
    static const char body[] = "preamble text\r\n--" B
                               "  \t\r\n"
                               "content-disposition: form-data; name=file; filename=\"a\\\"b\"\r\n"
                               "\r\n"
                               "DATA"
                               "\r\n--" B
                               "--"
                               "epilogue ignored --" B "\r\n";
    sink_t s;
    assert_int_equal(parse(CT, body, sizeof body - 1, 3, &s), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.names[0], "file");
    assert_string_equal(s.files[0], "a\"b");
    assert_int_equal(s.len[0], 4);
    /* Quoted boundary and an empty part header block. */
    static const char body2[] = "--q\r\n\r\nv\r\n--q--";
    assert_int_equal(
        parse("multipart/form-data; charset=x; boundary=\"q\"", body2, sizeof body2 - 1, 1, &s), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.names[0], "");
    assert_int_equal(s.len[0], 1);
}

static void test_bad_framing(void **state)
{
    (void)state;
    sink_t s;
    /* Not multipart, no boundary, a boundary with a forbidden character or too long. */
    assert_int_equal(parse("application/json", "", 0, 0, &s), -EINVAL);
    assert_int_equal(parse("multipart/form-data", "", 0, 0, &s), -EINVAL);
    assert_int_equal(parse("multipart/form-data; boundary=a\rb", "", 0, 0, &s), -EINVAL);
    char longb[128] = "multipart/form-data; boundary=";
    memset(longb + strlen(longb), 'x', 71);
    assert_int_equal(parse(longb, "", 0, 0, &s), -EINVAL);
    /* Truncated: no closing delimiter. */
    static const char trunc[] = "--" B
                                "\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n"
                                "abc";
    assert_int_equal(parse(CT, trunc, sizeof trunc - 1, 0, &s), -EBADMSG);
    /* Garbage after a delimiter, a header line without a colon, a non form-data part. */
    static const char after[] = "--" B "x\r\n\r\n";
    assert_int_equal(parse(CT, after, sizeof after - 1, 0, &s), -EBADMSG);
    static const char nocolon[] = "--" B "\r\nbroken header\r\n\r\nx\r\n--" B "--";
    assert_int_equal(parse(CT, nocolon, sizeof nocolon - 1, 0, &s), -EBADMSG);
    static const char attach[] = "--" B "\r\nContent-Disposition: attachment\r\n\r\nx\r\n--" B "--";
    assert_int_equal(parse(CT, attach, sizeof attach - 1, 0, &s), -EBADMSG);
    /* A header block beyond the cap. */
    size_t big = HTTP_MP_HEADER_MAX + 64;
    char *hb = malloc(big + 64);
    int n = snprintf(hb, big + 64, "--" B "\r\nX-Pad: ");
    memset(hb + n, 'p', big - (size_t)n);
    int hrc = parse(CT, hb, big, 7, &s);
    free(hb);
    assert_int_equal(hrc, -EMSGSIZE);
    /* A callback's error stops the parser and stays. */
    static const char five[] =
        "--q\r\n\r\n\r\n--q\r\n\r\n\r\n--q\r\n\r\n\r\n--q\r\n\r\n\r\n--q\r\n"
        "\r\n\r\n--q--";
    assert_int_equal(parse("multipart/form-data; boundary=q", five, sizeof five - 1, 0, &s),
                     -ENOSPC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_curl_body_every_split),
        cmocka_unit_test(test_preamble_padding_epilogue),
        cmocka_unit_test(test_bad_framing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
