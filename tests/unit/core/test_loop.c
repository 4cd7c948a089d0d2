/* test_loop.c — timers fire in deadline order, cancel works (also inside callbacks), work
 * posted from another thread runs on the loop, loop_stop from another thread returns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/loop.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct rec {
    loop_t *loop;
    int order[16];
    int n;
} rec_t;

typedef struct tctx {
    rec_t *rec;
    int id;
    loop_timer_t t;
} tctx_t;

static void fired(loop_t *loop, void *arg)
{
    tctx_t *c = arg;
    c->rec->order[c->rec->n++] = c->id;
}

static void stop_cb(loop_t *loop, void *arg)
{
    loop_stop(loop);
}

static void test_timers_fire_in_order(void **state)
{
    char err[ERR_LEN];
    loop_t *loop = loop_new(err);
    assert_non_null(loop);
    rec_t rec = {.loop = loop};
    tctx_t c[5];
    int delays[5] = {30, 10, 20, 5, 25};
    for (int i = 0; i < 5; i++) {
        c[i] = (tctx_t){.rec = &rec, .id = i};
        loop_timer_init(&c[i].t, fired, &c[i]);
        loop_timer_arm(loop, &c[i].t, delays[i]);
    }
    loop_timer_cancel(loop, &c[2].t); /* 20 ms: never fires */
    assert_false(loop_timer_armed(&c[2].t));
    loop_timer_t stop;
    loop_timer_init(&stop, stop_cb, NULL);
    loop_timer_arm(loop, &stop, 60);
    loop_run(loop);
    assert_int_equal(rec.n, 4);
    assert_int_equal(rec.order[0], 3);
    assert_int_equal(rec.order[1], 1);
    assert_int_equal(rec.order[2], 4);
    assert_int_equal(rec.order[3], 0);
    loop_free(loop);
}

static int posted_runs;
static void posted(void *arg)
{
    posted_runs++;
    if (posted_runs == 100)
        loop_stop(arg);
}

static void *poster(void *arg)
{
    for (int i = 0; i < 100; i++)
        loop_post(arg, posted, arg);
    return NULL;
}

static void test_post_from_other_thread(void **state)
{
    char err[ERR_LEN];
    loop_t *loop = loop_new(err);
    posted_runs = 0;
    pthread_t t;
    pthread_create(&t, NULL, poster, loop);
    loop_timer_t guard; /* bounded: the test can never hang */
    loop_timer_init(&guard, stop_cb, NULL);
    loop_timer_arm(loop, &guard, 5000);
    loop_run(loop);
    pthread_join(t, NULL);
    loop_drain(loop);
    assert_int_equal(posted_runs, 100);
    loop_free(loop);
}

static void test_free_runs_pending_posts(void **state)
{
    char err[ERR_LEN];
    loop_t *loop = loop_new(err);
    posted_runs = 0;
    loop_post(loop, posted, loop);
    loop_free(loop);
    assert_int_equal(posted_runs, 1);
}

/* Nodes the caller provides run in order and may be freed by their own callback. */
typedef struct owned {
    loop_post_node_t node;
    int id;
    int *order;
    int *n;
} owned_t;

static void owned_run(void *arg)
{
    owned_t *o = arg;
    o->order[(*o->n)++] = o->id;
    free(o); /* allowed: the loop no longer touches the node once its callback starts */
}

static void test_post_node_caller_storage(void **state)
{
    (void)state;
    char err[ERR_LEN];
    loop_t *loop = loop_new(err);
    int order[3] = {0}, n = 0;
    for (int i = 1; i <= 3; i++) {
        owned_t *o = calloc(1, sizeof *o);
        *o = (owned_t){.id = i, .order = order, .n = &n};
        loop_post_node(loop, &o->node, owned_run, o);
    }
    loop_post(loop, posted, loop); /* heap nodes mix with caller nodes */
    posted_runs = 0;
    loop_drain(loop);
    assert_int_equal(n, 3);
    assert_int_equal(order[0], 1);
    assert_int_equal(order[1], 2);
    assert_int_equal(order[2], 3);
    assert_int_equal(posted_runs, 1);
    loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers_fire_in_order),
        cmocka_unit_test(test_post_from_other_thread),
        cmocka_unit_test(test_free_runs_pending_posts),
        cmocka_unit_test(test_post_node_caller_storage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
