/* test_params.c — the REST parameter binders (request.c: Spring's number and boolean forms,
 * ThingsBoard's paging errors) and page.c's chunked PageData answers: any page of any size
 * read through chunks of HTTP_PAGE_CHUNK rows gives exactly the rows and totals of that page. */
#include "http/http_int.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void test_parse_i64(void **state)
{
    (void)state;
    int64_t v = -1;
    assert_int_equal(http__parse_i64("42", 0, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(http__parse_i64("  7\t", 0, 100, &v), 0); /* Spring trims */
    assert_int_equal(v, 7);
    assert_int_equal(http__parse_i64("+5", 0, 100, &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(http__parse_i64("-1", -10, 10, &v), 0);
    assert_int_equal(v, -1);
    assert_int_equal(http__parse_i64("2147483647", INT32_MIN, INT32_MAX, &v), 0);
    assert_int_equal(v, INT32_MAX);
    assert_int_equal(http__parse_i64("999999999", 1, INT32_MAX, &v), 0);
    assert_int_equal(v, 999999999);
    assert_int_equal(http__parse_i64("-9223372036854775808", INT64_MIN, INT64_MAX, &v), 0);
    assert_true(v == INT64_MIN);
    v = 3;
    static const char *const bad[] = {"",    " ",    "2147483648", "abc", "1 2",
                                      "12x", "0x10", "1.5",        "--1", "99999999999999999999",
                                      "\v1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(http__parse_i64(bad[i], INT32_MIN, INT32_MAX, &v), -EINVAL);
    assert_int_equal(http__parse_i64(NULL, 0, 1, &v), -EINVAL);
    assert_int_equal(http__parse_i64("0", 1, 10, &v), -EINVAL); /* below lo */
    assert_int_equal(v, 3);                                     /* untouched on errors */
}

static void test_parse_bool(void **state)
{
    (void)state;
    static const char *const yes[] = {"true", "TRUE", "True", "on", "ON", "yes", "Yes", "1"};
    static const char *const no[] = {"false", "FALSE", "off", "Off", "no", "NO", "0"};
    static const char *const bad[] = {"", "maybe", "2", "tru", "truee", " true", "y"};
    bool b;
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        b = false;
        assert_int_equal(http__parse_bool(yes[i], &b), 0);
        assert_true(b);
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        b = true;
        assert_int_equal(http__parse_bool(no[i], &b), 0);
        assert_false(b);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(http__parse_bool(bad[i], &b), -EINVAL);
    assert_int_equal(http__parse_bool(NULL, &b), -EINVAL);
}

/* Without a connection there are no query parameters: what a client sends with none. */
static void test_args_absent(void **state)
{
    (void)state;
    http_req_t rq = {0};
    http_resp_t rs = {0};
    int64_t page, size;
    assert_false(http__page_args(&rq, &rs, &page, &size));
    assert_int_equal(rs.status, 400);
    json_t *j = json_loadb(rs.body, rs.body_len, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "message")),
                        "Required request parameter 'pageSize' for method parameter type int is "
                        "not present");
    assert_int_equal(json_integer_value(json_object_get(j, "errorCode")), 31);
    json_decref(j);
    free(rs.body);

    rs = (http_resp_t){0};
    bool b = false;
    assert_true(http__arg_bool(&rq, &rs, "useStrictDataTypes", true, &b));
    assert_true(b); /* the default */
    int64_t v = 0;
    assert_true(http__arg_int(&rq, &rs, "limit", false, 100, &v));
    assert_int_equal(v, 100);
    assert_false(http__arg_long(&rq, &rs, "startTs", true, 0, &v));
    assert_int_equal(rs.status, 400);
    assert_non_null(strstr(rs.body,
                           "Required request parameter 'startTs' for method parameter "
                           "type Long is not present"));
    free(rs.body);

    rs = (http_resp_t){0};
    static const char *const props[] = {"name"};
    const char *sort = "x";
    bool asc = true;
    assert_true(http__sort_args(&rq, &rs, props, 1, &sort, &asc));
    assert_null(sort);
    assert_false(asc); /* no sortProperty: newest first */
}

/* A table of n rows numbered 0..n-1, read in store pages, counting its reads. */
typedef struct rows_src {
    int64_t n;
    int reads;
    int fail_at; /* read number that fails (1-based), 0 = never */
    bool freed;
} rows_src_t;

static int fetch(void *arg, int64_t chunk, int64_t size, json_t *rows, int64_t *total)
{
    rows_src_t *s = arg;
    assert_int_equal(size, HTTP_PAGE_CHUNK);
    if (++s->reads == s->fail_at)
        return -EAGAIN;
    for (int64_t i = chunk * size; i < (chunk + 1) * size && i < s->n; i++)
        json_array_append_new(rows, json_integer(i));
    *total = s->n;
    return 0;
}

static void src_free(void *arg)
{
    ((rows_src_t *)arg)->freed = true;
}

static json_t *answer(rows_src_t *src, int64_t page, int64_t page_size)
{
    http_req_t rq = {0}; /* no connection: always answered from memory */
    http_resp_t rs = {0};
    src->freed = false;
    src->reads = 0;
    http__page_answer(&rq, &rs, page, page_size, fetch, src, src_free);
    assert_true(src->freed);
    json_t *j = json_loadb(rs.body, rs.body_len, 0, NULL);
    assert_non_null(j);
    json_object_set_new(j, "_status", json_integer(rs.status));
    free(rs.body);
    return j;
}

static void check_page(int64_t n, int64_t page, int64_t page_size)
{
    rows_src_t src = {.n = n};
    json_t *j = answer(&src, page, page_size);
    assert_int_equal(json_integer_value(json_object_get(j, "_status")), 200);
    int64_t first = page * page_size;
    int64_t want = n > first ? n - first : 0;
    if (want > page_size)
        want = page_size;
    json_t *data = json_object_get(j, "data");
    assert_int_equal((int64_t)json_array_size(data), want);
    for (int64_t i = 0; i < want; i++)
        assert_int_equal(json_integer_value(json_array_get(data, (size_t)i)), first + i);
    int64_t pages = (n + page_size - 1) / page_size;
    assert_int_equal(json_integer_value(json_object_get(j, "totalPages")), pages);
    assert_int_equal(json_integer_value(json_object_get(j, "totalElements")), n);
    assert_int_equal(json_is_true(json_object_get(j, "hasNext")), page + 1 < pages);
    json_decref(j);
}

static void test_page_answer(void **state)
{
    (void)state;
    check_page(0, 0, 10);
    check_page(5, 0, 999999999);
    check_page(2500, 0, 999999999);           /* "all": crosses two chunk boundaries */
    check_page(2500, 1, 700);                 /* starts inside chunk 0, ends in chunk 1 */
    check_page(2500, 2, 1000);                /* exactly chunk 2 */
    check_page(2500, 3, 999999999);           /* past the end: empty, totals right */
    check_page(2500, 2147483647, 2147483647); /* the largest offset, no overflow */
    check_page(1000, 0, 1000);
    check_page(1001, 1, 1000);
    check_page(3, 1, 2);
}

static void test_page_answer_store_error(void **state)
{
    (void)state;
    rows_src_t src = {.n = 10, .fail_at = 1};
    json_t *j = answer(&src, 0, 10);
    assert_int_equal(json_integer_value(json_object_get(j, "_status")), 503);
    json_decref(j);
    /* a later chunk failing: over a connection the stream is cut short; here the answer is
     * the store's error, never a complete-looking page */
    src = (rows_src_t){.n = 2500, .fail_at = 2};
    j = answer(&src, 0, 999999999);
    assert_int_equal(json_integer_value(json_object_get(j, "_status")), 503);
    assert_null(json_object_get(j, "data"));
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_i64),
        cmocka_unit_test(test_parse_bool),
        cmocka_unit_test(test_args_absent),
        cmocka_unit_test(test_page_answer),
        cmocka_unit_test(test_page_answer_store_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
