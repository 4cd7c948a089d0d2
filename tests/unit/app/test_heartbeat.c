/* test_heartbeat.c — the watchdog's liveness rule (server_heartbeat): a keep-alive is due only
 * when every shard loop ran the beat posted by the previous call. Real loops, not run on a
 * thread: a loop that does not turn is a stuck shard, loop_drain is one turn. */
#include "app/server_int.h"
#include "core/loop.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void test_beats(void **state)
{
    (void)state;
    server_t s;
    memset(&s, 0, sizeof s);
    shard_t shards[2];
    memset(shards, 0, sizeof shards);
    char err[ERR_LEN];
    for (int i = 0; i < 2; i++) {
        shards[i].index = i;
        shards[i].loop = loop_new(err);
        assert_non_null(shards[i].loop);
    }
    s.shards = shards;
    s.n_shards = 2;

    assert_true(server_heartbeat(&s));  /* first call: nothing posted before */
    assert_false(server_heartbeat(&s)); /* neither loop turned */
    loop_drain(shards[0].loop);
    assert_false(server_heartbeat(&s)); /* shard 1 still stuck; shard 0 gets a new beat */
    loop_drain(shards[1].loop);
    assert_false(server_heartbeat(&s)); /* shard 0 has not run its second beat */
    loop_drain(shards[0].loop);
    loop_drain(shards[1].loop);
    assert_true(server_heartbeat(&s)); /* both turned: alive again */
    loop_drain(shards[0].loop);
    loop_drain(shards[1].loop);
    assert_true(server_heartbeat(&s));
    /* A beat still posted at the end is run (and its node released) by loop_free. */
    for (int i = 0; i < 2; i++)
        loop_free(shards[i].loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_beats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
