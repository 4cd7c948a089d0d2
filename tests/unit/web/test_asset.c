/* test_asset.c — the embedded UI table: lookup, path rejection, content types, ETags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "web/web.h"

static void test_index_found(void **state)
{
    (void)state;
    const web_asset_t *a = web_asset_find("index.html");
    assert_non_null(a);
    assert_string_equal(a->path, "index.html");
    assert_string_equal(a->content_type, "text/html; charset=utf-8");
    assert_true(a->len > 100);
    assert_non_null(memmem(a->data, a->len, "<!doctype html>", 15));
    /* "/", "" and "/index.html" are the same asset. */
    assert_ptr_equal(web_asset_find("/index.html"), a);
    assert_ptr_equal(web_asset_find("/"), a);
    assert_ptr_equal(web_asset_find(""), a);
}

static void test_types(void **state)
{
    (void)state;
    const web_asset_t *js = web_asset_find("app.js");
    assert_non_null(js);
    assert_string_equal(js->content_type, "text/javascript; charset=utf-8");
    const web_asset_t *css = web_asset_find("/style.css");
    assert_non_null(css);
    assert_string_equal(css->content_type, "text/css; charset=utf-8");
    const web_asset_t *mod = web_asset_find("js/api.js");
    assert_non_null(mod);
    assert_string_equal(mod->content_type, "text/javascript; charset=utf-8");
}

static void test_unknown_and_bad_paths(void **state)
{
    (void)state;
    assert_null(web_asset_find(NULL));
    assert_null(web_asset_find("nope.html"));
    assert_null(web_asset_find("index.htm"));
    assert_null(web_asset_find("index.html/"));
    const char *bad[] = {
        "..",           "../index.html", "js/../index.html", "./index.html", "js/./api.js",
        "//index.html", "js//api.js",    "js\\api.js",       "index%2ehtml", ".gitignore",
        "index.html\n", "package.json",  "node_modules/uplot/package.json",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (web_asset_find(bad[i]) != NULL)
            fail_msg("path '%s' was accepted", bad[i]);
    }
    char longp[400];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    assert_null(web_asset_find(longp));
}

static void test_table_sorted_and_etags(void **state)
{
    (void)state;
    size_t n = web_asset_count();
    assert_true(n >= 3);
    assert_null(web_asset_at(n));
    for (size_t i = 0; i < n; i++) {
        const web_asset_t *a = web_asset_at(i);
        assert_non_null(a);
        if (i > 0)
            assert_true(strcmp(web_asset_at(i - 1)->path, a->path) < 0);
        assert_ptr_equal(web_asset_find(a->path), a);
        size_t el = strlen(a->etag);
        assert_true(el > 2);
        assert_int_equal(a->etag[0], '"');
        assert_int_equal(a->etag[el - 1], '"');
        assert_non_null(a->content_type);
        assert_true(a->content_type[0] != '\0');
        /* Distinct files carry distinct tags. */
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(web_asset_at(j)->etag, a->etag);
    }
}

static void test_etag_match(void **state)
{
    (void)state;
    const web_asset_t *a = web_asset_find("index.html");
    const web_asset_t *b = web_asset_find("app.js");
    char hdr[256];
    assert_false(web_asset_etag_match(a, NULL));
    assert_false(web_asset_etag_match(a, ""));
    assert_true(web_asset_etag_match(a, "*"));
    assert_true(web_asset_etag_match(a, a->etag));
    assert_false(web_asset_etag_match(a, b->etag));
    snprintf(hdr, sizeof hdr, "%s, W/%s", b->etag, a->etag);
    assert_true(web_asset_etag_match(a, hdr));
    snprintf(hdr, sizeof hdr, "%s,%s", b->etag, b->etag);
    assert_false(web_asset_etag_match(a, hdr));
    assert_false(web_asset_etag_match(a, "\"unterminated"));
    assert_false(web_asset_etag_match(a, "garbage"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_found),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_unknown_and_bad_paths),
        cmocka_unit_test(test_table_sorted_and_etags),
        cmocka_unit_test(test_etag_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
