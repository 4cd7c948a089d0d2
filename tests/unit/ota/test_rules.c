/* test_rules.c — the download rules every transport shares (ota/resolve.c): which bytes a
 * size/chunk request means, and whether the title and version a device names are its package's. */
#include "ota/ota.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void test_chunk_range(void **state)
{
    (void)state;
    uint64_t start, len;
    /* size 0: the whole image, whatever chunk says */
    assert_true(ota_chunk_range(1000, 0, 7, &start, &len));
    assert_int_equal(start, 0);
    assert_int_equal(len, 1000);
    /* inner chunk, the short last one, the first one past the end, far past the end */
    assert_true(ota_chunk_range(1000, 300, 1, &start, &len));
    assert_int_equal(start, 300);
    assert_int_equal(len, 300);
    assert_true(ota_chunk_range(1000, 300, 3, &start, &len));
    assert_int_equal(start, 900);
    assert_int_equal(len, 100);
    assert_false(ota_chunk_range(1000, 250, 4, &start, &len));
    assert_int_equal(len, 0);
    assert_false(ota_chunk_range(1000, INT32_MAX, INT32_MAX, &start, &len));
    assert_int_equal(len, 0);
    /* an empty image has no chunk, but is itself the (empty) whole */
    assert_true(ota_chunk_range(0, 0, 0, &start, &len));
    assert_int_equal(len, 0);
    assert_false(ota_chunk_range(0, 10, 0, &start, &len));
}

static void test_names_match(void **state)
{
    (void)state;
    store_ota_t o = {.title = "thermo-fw", .version = "1.1"};
    assert_true(ota_names_match(&o, NULL, 0, NULL, 0)); /* nothing named */
    assert_true(ota_names_match(&o, "thermo-fw", 9, "1.1", 3));
    assert_true(ota_names_match(&o, "thermo-fwXX", 9, NULL, 0)); /* only len bytes count */
    assert_false(ota_names_match(&o, "thermo-f", 8, "1.1", 3));
    assert_false(ota_names_match(&o, "thermo-fw", 9, "1.10", 4));
    assert_false(ota_names_match(&o, "", 0, NULL, 0)); /* named empty is not the title */
    store_ota_t none = {0};
    assert_false(ota_names_match(&none, "x", 1, NULL, 0));
    assert_true(ota_names_match(&none, NULL, 0, NULL, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunk_range),
        cmocka_unit_test(test_names_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
