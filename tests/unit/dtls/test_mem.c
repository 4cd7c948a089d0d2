/* test_mem.c — OpenSSL's slab heap (src/dtls/mem.c): blocks are usable, aligned, distinct and
 * survive realloc; emptied slabs go back to the kernel; malloc blocks pass through. The
 * functions are called directly, so this runs the same under ASan (where the allocator is
 * not installed into OpenSSL). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dtls/dtls_int.h"

#include <stdlib.h>
#include <string.h>

static int setup(void **state)
{
    (void)state;
    return dtls__mem_init() == 0 ? 0 : -1;
}

/* Every size class: blocks are 16-byte aligned, hold their bytes, and do not overlap. */
static void test_mem_sizes(void **state)
{
    (void)state;
    dtls_mem_stats_t s0, s1;
    dtls__mem_stats(&s0);
    enum { N = 300 };
    uint8_t *p[N];
    size_t len[N];
    for (size_t i = 0; i < N; i++) {
        len[i] = i < 100 ? i : (i * 97) % 33000; /* includes 0 and sizes above the slabs */
        p[i] = dtls__mem_malloc(len[i]);
        assert_non_null(p[i]);
        assert_int_equal((uintptr_t)p[i] % 16, 0);
        memset(p[i], (int)(i & 0xff), len[i]);
    }
    dtls__mem_stats(&s1);
    assert_true(s1.blocks > s0.blocks);
    for (size_t i = 0; i < N; i++)
        for (size_t k = 0; k < len[i]; k++)
            if (p[i][k] != (uint8_t)(i & 0xff))
                fail_msg("block %zu byte %zu overwritten", i, k);
    for (size_t i = 0; i < N; i++)
        dtls__mem_free(p[i]);
    dtls__mem_stats(&s1);
    assert_int_equal(s1.blocks, s0.blocks);
    assert_int_equal(s1.bytes, s0.bytes);
    dtls__mem_free(NULL);
}

/* realloc keeps the contents when growing, shrinking, crossing into malloc sizes and back. */
static void test_mem_realloc(void **state)
{
    (void)state;
    uint8_t *p = dtls__mem_realloc(NULL, 10);
    assert_non_null(p);
    memcpy(p, "0123456789", 10);
    size_t sizes[] = {20, 300, 5000, 40000, 100, 7, 16};
    size_t keep = 10;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        p = dtls__mem_realloc(p, sizes[i]);
        assert_non_null(p);
        if (sizes[i] < keep)
            keep = sizes[i];
        assert_memory_equal(p, "0123456789", keep);
    }
    dtls__mem_free(p);
    /* A malloc block handed in is reallocated and freed by malloc. */
    char *m = malloc(8);
    assert_non_null(m);
    memcpy(m, "abcdefg", 8);
    m = dtls__mem_realloc(m, 64);
    assert_non_null(m);
    assert_string_equal(m, "abcdefg");
    dtls__mem_free(m);
}

/* A handshake-like burst fills many slabs; once freed, all but a few spares are released and
 * reused by the next burst (the region does not grow). */
static void test_mem_release(void **state)
{
    (void)state;
    dtls_mem_stats_t s0, s1, s2, s3;
    dtls__mem_trim(); /* no spares left by the tests before */
    dtls__mem_stats(&s0);
    enum { N = 4000 };
    void **p = calloc(N, sizeof *p);
    assert_non_null(p);
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < N; i++) {
            p[i] = dtls__mem_malloc(64 + (i % 7) * 300);
            assert_non_null(p[i]);
            memset(p[i], 0x5a, 64);
        }
        dtls__mem_stats(&s1);
        assert_true(s1.slabs_resident >= s0.slabs_resident + 20);
        for (size_t i = 0; i < N; i++)
            dtls__mem_free(p[i]);
        dtls__mem_stats(&s2);
        assert_int_equal(s2.blocks, s0.blocks);
        assert_true(s2.slabs_released > s0.slabs_released);
        assert_true(s2.slabs_resident <= s0.slabs_resident + 64); /* MEM_SPARES */
        /* After the burst the spares go back too. */
        dtls__mem_trim();
        dtls__mem_stats(&s3);
        assert_int_equal(s3.slabs_resident, s0.slabs_resident);
    }
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mem_sizes),
        cmocka_unit_test(test_mem_realloc),
        cmocka_unit_test(test_mem_release),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
