/* test_arena.c — the bump allocator: alignment, growth past a chunk, reuse after reset
 * (no new chunk for a small request), huge single allocations, in-place growth; fini frees
 * everything (LeakSanitizer checks). */
#include "core/arena.h"

#include <setjmp.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void test_arena_alignment(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 256);
    for (size_t n = 0; n < 40; n++) {
        unsigned char *p = arena_alloc(&a, n);
        assert_int_equal((uintptr_t)p % alignof(max_align_t), 0);
        memset(p, 0xAB, n);
    }
    char *s = arena_strndup(&a, "hello world", 5);
    assert_string_equal(s, "hello");
    assert_string_equal(arena_strdup(&a, "x"), "x");
    int *z = arena_calloc(&a, 8, sizeof *z);
    for (int i = 0; i < 8; i++)
        assert_int_equal(z[i], 0);
    arena_fini(&a);
    assert_null(a.first);
}

static void test_arena_growth_and_reset(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 128);
    /* Fill several chunks; earlier allocations must keep their contents. */
    unsigned char *ptrs[64];
    for (int i = 0; i < 64; i++) {
        ptrs[i] = arena_alloc(&a, 24);
        memset(ptrs[i], i, 24);
    }
    for (int i = 0; i < 64; i++)
        for (int k = 0; k < 24; k++)
            assert_int_equal(ptrs[i][k], i);
    assert_ptr_not_equal(a.cur, a.first);
    arena_reset(&a);
    assert_ptr_equal(a.cur, a.first);
    assert_non_null(a.spare); /* one standard chunk is kept for the next burst */
    /* After reset a small allocation reuses the first chunk from its start. */
    unsigned char *p = arena_alloc(&a, 16);
    assert_ptr_equal(p, ptrs[0]);
    arena_reset(&a);
    assert_ptr_equal(arena_alloc(&a, 16), ptrs[0]);
    arena_fini(&a);
}

static void test_arena_huge_allocation(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 0);
    assert_int_equal(a.chunk_size, ARENA_DEFAULT_CHUNK);
    unsigned char *small = arena_alloc(&a, 10);
    unsigned char *big = arena_alloc(&a, 1 << 20); /* far beyond a chunk: its own chunk */
    memset(big, 7, 1 << 20);
    assert_int_equal(big[(1 << 20) - 1], 7);
    memset(small, 2, 10);
    assert_int_equal(big[0], 7);
    arena_reset(&a); /* the oversized chunk is freed, not kept as the spare */
    assert_null(a.spare);
    assert_ptr_equal(arena_alloc(&a, 10), small);
    arena_fini(&a);
}

static void test_arena_grow(void **state)
{
    (void)state;
    arena_t a;
    arena_init(&a, 1024);
    int *v = arena_grow(&a, NULL, 0, 4 * sizeof *v);
    for (int i = 0; i < 4; i++)
        v[i] = i;
    int *w = arena_grow(&a, v, 4 * sizeof *v, 8 * sizeof *v);
    assert_ptr_equal(w, v); /* latest allocation: grown in place */
    (void)arena_alloc(&a, 8);
    int *x = arena_grow(&a, w, 8 * sizeof *w, 16 * sizeof *w);
    assert_ptr_not_equal(x, w); /* no longer the latest: copied */
    for (int i = 0; i < 4; i++)
        assert_int_equal(x[i], i);
    /* Growing past the chunk moves to a new chunk and keeps the contents. */
    int *y = arena_grow(&a, x, 16 * sizeof *x, 4096 * sizeof *x);
    for (int i = 0; i < 4; i++)
        assert_int_equal(y[i], i);
    y[4095] = 42;
    arena_fini(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena_alignment),
        cmocka_unit_test(test_arena_growth_and_reset),
        cmocka_unit_test(test_arena_huge_allocation),
        cmocka_unit_test(test_arena_grow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
