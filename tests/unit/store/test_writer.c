/* test_writer.c — group commit: completions exactly once, on the right thread, after the
 * commit; per-batch failure; nothing acknowledged is lost across close + reopen. */
#include "store_test_util.h"

#include "core/err.h"
#include "core/loop.h"
#include "store/pg_int.h" /* pg__err_state: PostgreSQL's SQLSTATEs -> our errors */
#include "store/sqlite_int.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#define N_BATCHES 400

static size_t count_points(store_t *s, int64_t dev, const char *key)
{
    store_kv_list_t l = {0};
    assert_int_equal(
        store_ts_history(s, dev, key, 0, INT64_MAX - 1, 0, STORE_AGG_NONE, 0, true, &l), 0);
    size_t n = l.n;
    store_kv_list_fini(&l);
    return n;
}

/* ---- many submits from one loop thread, completions posted back to it ---- */

typedef struct loop_fx {
    loop_t *loop;
    store_t *s;
    int64_t dev;
    pthread_t loop_thread;
    atomic_int hits[N_BATCHES];
    atomic_int status_bad;
    atomic_int wrong_thread;
    int done;
} loop_fx_t;

typedef struct cb_arg {
    loop_fx_t *fx;
    int i;
} cb_arg_t;

static cb_arg_t args[N_BATCHES];

static void on_done(void *arg, int status)
{
    cb_arg_t *a = arg;
    if (status != 0)
        atomic_fetch_add(&a->fx->status_bad, 1);
    if (!pthread_equal(pthread_self(), a->fx->loop_thread))
        atomic_fetch_add(&a->fx->wrong_thread, 1);
    atomic_fetch_add(&a->fx->hits[a->i], 1);
    if (++a->fx->done == N_BATCHES) /* loop thread only: no race */
        loop_stop(a->fx->loop);
}

/* Runs on the loop thread: submits everything in one go, like a busy shard. */
static void submit_all(void *arg)
{
    loop_fx_t *fx = arg;
    for (int i = 0; i < N_BATCHES; i++) {
        store_batch_t *b = store_batch_new();
        store_kv_t kv = {.key = "p", .type = STORE_LONG, .l = i, .ts = 1000 + i};
        store_batch_ts(b, fx->dev, &kv);
        kv.key = "q";
        store_batch_ts(b, fx->dev, &kv);
        args[i] = (cb_arg_t){fx, i};
        store_submit(fx->s, b, fx->loop, on_done, &args[i]);
    }
    /* Completions are posted to this loop, so none can have run yet. */
    assert_int_equal(fx->done, 0);
}

static void *loop_main(void *arg)
{
    loop_fx_t *fx = arg;
    loop_run(fx->loop);
    return NULL;
}

static void test_group_commit_loop(void **state)
{
    tstore_t *t = *state;
    loop_fx_t *fx = calloc(1, sizeof(*fx));
    char err[ERR_LEN];
    fx->loop = loop_new(err);
    assert_non_null(fx->loop);
    fx->s = t->s;
    fx->dev = tstore_device(t->s, "busy");
    loop_post(fx->loop, submit_all, fx);
    assert_int_equal(pthread_create(&fx->loop_thread, NULL, loop_main, fx), 0);
    pthread_join(fx->loop_thread, NULL);
    loop_free(fx->loop);

    assert_int_equal(fx->done, N_BATCHES);
    for (int i = 0; i < N_BATCHES; i++)
        assert_int_equal(atomic_load(&fx->hits[i]), 1);
    assert_int_equal(atomic_load(&fx->status_bad), 0);
    assert_int_equal(atomic_load(&fx->wrong_thread), 0);
    assert_int_equal(count_points(t->s, fx->dev, "p"), N_BATCHES);
    assert_int_equal(count_points(t->s, fx->dev, "q"), N_BATCHES);

    store_stats_t st;
    store_get_stats(t->s, &st);
    assert_int_equal(st.ops, 2 * N_BATCHES);
    assert_true(st.commits < N_BATCHES); /* grouped */
    assert_true(st.max_group > 1);
    assert_int_equal(st.failed_commits, 0);
    free(fx);
}

/* ---- one batch reused through store_submit_keep ---- */

#define REUSE_ROUNDS 50

typedef struct reuse_fx {
    loop_t *loop;
    store_t *s;
    int64_t dev;
    pthread_t loop_thread;
    store_batch_t *first;
    int rounds, bad;
    char long_text[700]; /* more than the batch's inline text area */
} reuse_fx_t;

/* Round i: 1 point on even rounds; on odd rounds 9 (more than the inline ops) including a
 * long string (more than the inline text), so the reset's fall-backs are exercised too. */
static void reuse_fill(reuse_fx_t *fx, store_batch_t *b, int i)
{
    store_kv_t kv = {.key = "r", .type = STORE_LONG, .l = i, .ts = 5000 + i};
    store_batch_ts(b, fx->dev, &kv);
    if (i % 2 == 0)
        return;
    char key[16];
    for (int k = 0; k < 7; k++) {
        snprintf(key, sizeof key, "extra%d", k);
        kv = (store_kv_t){.key = key, .type = STORE_LONG, .l = k, .ts = 5000 + i};
        store_batch_ts(b, fx->dev, &kv);
    }
    kv = (store_kv_t){.key = "long", .type = STORE_STRING, .s = fx->long_text, .ts = 5000 + i};
    store_batch_ts(b, fx->dev, &kv);
}

static void reuse_done(void *arg, int status, store_batch_t *b)
{
    reuse_fx_t *fx = arg;
    if (status != 0 || b != fx->first || !pthread_equal(pthread_self(), fx->loop_thread))
        fx->bad++;
    if (++fx->rounds == REUSE_ROUNDS) {
        store_batch_free(b);
        loop_stop(fx->loop);
        return;
    }
    store_batch_reset(b);
    assert_int_equal(store_batch_len(b), 0);
    reuse_fill(fx, b, fx->rounds);
    store_submit_keep(fx->s, b, fx->loop, reuse_done, fx);
}

static void reuse_start(void *arg)
{
    reuse_fx_t *fx = arg;
    fx->first = store_batch_new();
    reuse_fill(fx, fx->first, 0);
    store_submit_keep(fx->s, fx->first, fx->loop, reuse_done, fx);
}

static void *reuse_main(void *arg)
{
    reuse_fx_t *fx = arg;
    loop_run(fx->loop);
    return NULL;
}

static void test_batch_reuse(void **state)
{
    tstore_t *t = *state;
    reuse_fx_t *fx = calloc(1, sizeof(*fx));
    char err[ERR_LEN];
    fx->loop = loop_new(err);
    assert_non_null(fx->loop);
    fx->s = t->s;
    fx->dev = tstore_device(t->s, "reuse");
    memset(fx->long_text, 'x', sizeof fx->long_text - 1);
    loop_post(fx->loop, reuse_start, fx);
    assert_int_equal(pthread_create(&fx->loop_thread, NULL, reuse_main, fx), 0);
    pthread_join(fx->loop_thread, NULL);
    loop_free(fx->loop);

    assert_int_equal(fx->rounds, REUSE_ROUNDS);
    assert_int_equal(fx->bad, 0);
    assert_int_equal(count_points(t->s, fx->dev, "r"), REUSE_ROUNDS);
    assert_int_equal(count_points(t->s, fx->dev, "extra6"), REUSE_ROUNDS / 2);
    store_kv_list_t l = {0};
    const char *k[] = {"long", "r"};
    assert_int_equal(store_ts_latest(t->s, fx->dev, k, 2, &l), 0);
    assert_int_equal(l.n, 2);
    for (size_t i = 0; i < l.n; i++) {
        if (strcmp(l.items[i].key, "long") == 0)
            assert_string_equal(l.items[i].s, fx->long_text);
        else
            assert_int_equal(l.items[i].l, REUSE_ROUNDS - 1);
    }
    store_kv_list_fini(&l);
    free(fx);
}

/* ---- several threads with store_submit_wait ---- */

typedef struct thr {
    store_t *s;
    int64_t dev;
    int id;
    int failures;
} thr_t;

static void *thr_main(void *arg)
{
    thr_t *th = arg;
    for (int i = 0; i < 40; i++) {
        store_batch_t *b = store_batch_new();
        store_kv_t kv = {.key = "w", .type = STORE_LONG, .l = th->id, .ts = th->id * 1000 + i};
        store_batch_ts(b, th->dev, &kv);
        if (store_submit_wait(th->s, b) != 0)
            th->failures++;
        /* read through the pool while other threads write: sees at least our own point */
        store_kv_list_t l = {0};
        const char *k[] = {"w"};
        if (store_ts_latest(th->s, th->dev, k, 1, &l) != 0 || l.n != 1)
            th->failures++;
        store_kv_list_fini(&l);
    }
    return NULL;
}

static void test_group_commit_threads(void **state)
{
    tstore_t *t = *state;
    int64_t dev = tstore_device(t->s, "threads");
    thr_t th[6];
    pthread_t tid[6];
    for (int i = 0; i < 6; i++) {
        th[i] = (thr_t){t->s, dev, i + 1, 0};
        assert_int_equal(pthread_create(&tid[i], NULL, thr_main, &th[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(tid[i], NULL);
        assert_int_equal(th[i].failures, 0);
    }
    assert_int_equal(count_points(t->s, dev, "w"), 240);
    store_stats_t st;
    store_get_stats(t->s, &st);
    assert_int_equal(st.ops, 240);
    assert_true(st.commits <= 240);
}

/* ---- a bad batch fails alone; full disk reports -ENOSPC and recovers ---- */

typedef struct rec {
    pthread_mutex_t mu;
    int status[64];
    int calls[64];
} rec_t;

typedef struct rec_arg {
    rec_t *r;
    int i;
} rec_arg_t;

static void record(void *arg, int status)
{
    rec_arg_t *a = arg;
    pthread_mutex_lock(&a->r->mu);
    a->r->status[a->i] = status;
    a->r->calls[a->i]++;
    pthread_mutex_unlock(&a->r->mu);
}

/* The writer's own connection, inside the SQLite backend's context (sqlite_int.h). */
static sqlite3 *writer_db(const tstore_t *t)
{
    return store__sq(t->s->db)->wconn.db;
}

#define PG_DISK_FULL_ON                                                                            \
    "CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"                     \
    " RAISE EXCEPTION 'no space left (test)' USING ERRCODE = 'disk_full'; END $$;"                 \
    "CREATE TRIGGER disk_full BEFORE INSERT ON ts_kv_log"                                          \
    " FOR EACH STATEMENT EXECUTE FUNCTION disk_full();"                                            \
    "CREATE TRIGGER disk_full BEFORE INSERT OR UPDATE ON settings" /* the probe write's table */   \
    " FOR EACH STATEMENT EXECUTE FUNCTION disk_full()"
#define PG_DISK_FULL_OFF                                                                           \
    "DROP TRIGGER disk_full ON ts_kv_log; DROP TRIGGER disk_full ON settings;"                     \
    " DROP FUNCTION disk_full()"

static void test_bad_batch_isolated(void **state)
{
    tstore_t *t = *state;
    int64_t dev = tstore_device(t->s, "good");
    rec_t r = {.mu = PTHREAD_MUTEX_INITIALIZER};
    rec_arg_t a[30];
    for (int i = 0; i < 30; i++) {
        store_batch_t *b = store_batch_new();
        /* every 7th batch writes to a device that does not exist */
        store_kv_t kv = {.key = "v", .type = STORE_LONG, .l = i, .ts = i};
        store_batch_ts(b, i % 7 == 3 ? 777777 : dev, &kv);
        /* A second point per batch: 60 points make the group's fast path use its multi-row
         * statements (sqlite_points.c), which must fail as a whole and fall back per batch. */
        store_kv_t kw = {.key = "w", .type = STORE_LONG, .l = i, .ts = i};
        store_batch_ts(b, i % 7 == 3 ? 777777 : dev, &kw);
        if (i == 20) {
            store_kv_t nan = {.key = "v", .type = STORE_DOUBLE, .d = 0.0 / 0.0, .ts = 5000};
            store_batch_ts(b, dev, &nan); /* NaN cannot be stored: whole batch fails */
        }
        a[i] = (rec_arg_t){&r, i};
        store_submit(t->s, b, NULL, record, &a[i]);
    }
    /* a synchronous barrier: the queue is FIFO, so all 30 are done after this */
    assert_int_equal(store_submit_wait(t->s, store_batch_new()), 0);
    size_t good = 0;
    for (int i = 0; i < 30; i++) {
        assert_int_equal(r.calls[i], 1);
        if (i % 7 == 3)
            assert_int_equal(r.status[i], -ENOENT);
        else if (i == 20)
            assert_int_equal(r.status[i], -EINVAL);
        else {
            assert_int_equal(r.status[i], 0);
            good++;
        }
    }
    assert_int_equal(count_points(t->s, dev, "v"), good);
    assert_int_equal(count_points(t->s, dev, "w"), good);

    /* Disk full, while the writer is idle: SQLite's page count capped on the writer's
     * connection; on PostgreSQL, a trigger that fails every insert into the telemetry log as
     * a full disk does (SQLSTATE 53100). */
    if (t->pg)
        assert_true(tstore_exec(t, PG_DISK_FULL_ON) >= 0);
    else
        sqlite3_exec(writer_db(t), "PRAGMA max_page_count = 1", NULL, NULL, NULL);
    store_batch_t *b = store_batch_new();
    char big[4000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    for (int i = 0; i < 50; i++) {
        store_kv_t kv = {.key = "big", .type = STORE_STRING, .s = big, .ts = i};
        store_batch_ts(b, dev, &kv);
    }
    assert_int_equal(store_submit_wait(t->s, b), -ENOSPC);
    /* An episode began (store/health.c): not ready, and the next batch is refused at once
     * with the same error (5.03 for devices), whichever backend said "disk full". */
    assert_string_equal(store_unready_reason(t->s), "disk full");
    assert_int_equal(store_ready(t->s), ERR_UNAVAILABLE);
    b = store_batch_new();
    store_kv_t one = {.key = "big", .type = STORE_LONG, .l = 1, .ts = 2};
    store_batch_ts(b, dev, &one);
    assert_int_equal(store_submit_wait(t->s, b), -ENOSPC);
    store_stats_t st;
    store_get_stats(t->s, &st);
    assert_int_equal(st.write_faults, 1);
    assert_true(st.refused_batches >= 1);
    if (t->pg)
        assert_true(tstore_exec(t, PG_DISK_FULL_OFF) >= 0);
    else
        sqlite3_exec(writer_db(t), "PRAGMA max_page_count = 1073741823", NULL, NULL, NULL);
    /* The probe write (every 20 ms here, then backing off) ends it without a restart. */
    for (int i = 0; i < 300 && store_unready_reason(t->s); i++)
        usleep(10000);
    assert_null(store_unready_reason(t->s));
    b = store_batch_new();
    store_kv_t kv = {.key = "big", .type = STORE_STRING, .s = big, .ts = 1};
    store_batch_ts(b, dev, &kv);
    assert_int_equal(store_submit_wait(t->s, b), 0);
    assert_int_equal(count_points(t->s, dev, "big"), 1);
}

/* ---- nothing acknowledged is lost: close drains, reopen finds every acked point ---- */

typedef struct ack {
    atomic_int calls;
    int status[N_BATCHES];
} ack_t;

typedef struct ack_arg {
    ack_t *a;
    int i;
} ack_arg_t;

static void on_ack(void *arg, int status)
{
    ack_arg_t *x = arg;
    x->a->status[x->i] = status;
    atomic_fetch_add(&x->a->calls, 1);
}

/* PostgreSQL's storage faults take the same path as SQLite's (a storage-fault episode, 5.03
 * for devices): the SQLSTATE table maps them to the same errors. */
static void test_pg_error_states(void **state)
{
    (void)state;
    assert_int_equal(pg__err_state("53100"), -ENOSPC);         /* disk_full */
    assert_int_equal(pg__err_state("58030"), -EIO);            /* io_error */
    assert_int_equal(pg__err_state("25006"), -EROFS);          /* read_only_sql_transaction */
    assert_int_equal(pg__err_state("XX001"), ERR_CORRUPT);     /* data_corrupted */
    assert_int_equal(pg__err_state("XX002"), ERR_CORRUPT);     /* index_corrupted */
    assert_int_equal(pg__err_state("57P01"), ERR_UNAVAILABLE); /* admin_shutdown */
    assert_int_equal(pg__err_state("42P01"), ERR_STORE);       /* undefined_table */
    assert_true(store_err_is_fault(pg__err_state("53100")));
    assert_true(store_err_is_fault(pg__err_state("58030")));
    assert_true(store_err_is_fault(pg__err_state("25006")));
    assert_false(store_err_is_fault(pg__err_state("57P01"))); /* an outage, not a fault */
}

/* SQLite keeps a restarted WAL at its largest size; an idle store gives the space back
 * (sqlite_checkpoint.c truncates a WAL that is copied and quiet for a second). */
static void test_idle_wal_truncated(void **state)
{
    tstore_t *t = *state;
    if (t->pg)
        skip(); /* PostgreSQL manages its own WAL */
    int64_t dev = tstore_device(t->s, "wal");
    for (int i = 0; i < 200; i++)
        assert_int_equal(tstore_put(t->s, dev, "k", i, i + 1), 0);
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", t->path);
    struct stat st;
    assert_int_equal(stat(wal, &st), 0);
    assert_true(st.st_size > 0);
    for (int i = 0; i < 500 && stat(wal, &st) == 0 && st.st_size > 0; i++) /* <= 5 s */
        usleep(10000);
    assert_int_equal(st.st_size, 0);
    assert_int_equal(count_points(t->s, dev, "k"), 200);
}

static void test_acked_survive_reopen(void **state)
{
    tstore_t *t = *state;
    int64_t dev = tstore_device(t->s, "durable");
    ack_t *a = calloc(1, sizeof(*a));
    ack_arg_t *xs = calloc(N_BATCHES, sizeof(*xs));
    for (int i = 0; i < N_BATCHES; i++) {
        store_batch_t *b = store_batch_new();
        store_kv_t kv = {.key = "d", .type = STORE_LONG, .l = i * 3, .ts = 10 * i};
        store_batch_ts(b, dev, &kv);
        store_kv_t at = {.key = "last", .type = STORE_LONG, .l = i, .ts = 10 * i};
        store_batch_attr(b, dev, SCOPE_CLIENT, &at);
        xs[i] = (ack_arg_t){a, i};
        store_submit(t->s, b, NULL, on_ack, &xs[i]);
    }
    store_close(t->s); /* drains: every callback has run when it returns */
    t->s = NULL;
    assert_int_equal(atomic_load(&a->calls), N_BATCHES);
    assert_non_null(tstore_reopen(t));
    store_kv_list_t l = {0};
    assert_int_equal(
        store_ts_history(t->s, dev, "d", 0, INT64_MAX - 1, 0, STORE_AGG_NONE, 0, true, &l), 0);
    size_t acked = 0;
    for (int i = 0; i < N_BATCHES; i++) {
        if (a->status[i] != 0)
            continue;
        acked++;
        bool found = false;
        for (size_t j = 0; j < l.n && !found; j++)
            found = l.items[j].ts == 10 * i && l.items[j].l == i * 3;
        assert_true(found);
    }
    assert_int_equal(acked, N_BATCHES);
    store_kv_list_fini(&l);
    const char *k[] = {"last"};
    assert_int_equal(store_attr_get(t->s, dev, SCOPE_CLIENT, k, 1, &l), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.items[0].l, N_BATCHES - 1);
    store_kv_list_fini(&l);
    free(xs);
    free(a);
}

static void test_normal_sync_and_empty_close(void **state)
{
    (void)state;
    tstore_t t = {0};
    assert_non_null(tstore_open(&t));
    store_close(t.s);
    store_cfg_t cfg;
    store_cfg_default(&cfg);
    tstore_cfg_db(&t, &cfg);
    cfg.synchronous_full = false;
    cfg.batch_max_ops = 1; /* every group holds one batch */
    char err[ERR_LEN];
    t.s = store_open(&cfg, err);
    assert_non_null(t.s);
    int64_t dev = tstore_device(t.s, "n");
    for (int i = 0; i < 5; i++) {
        store_batch_t *b = store_batch_new();
        store_kv_t kv = {.key = "k", .type = STORE_BOOL, .b = i & 1, .ts = i};
        store_batch_ts(b, dev, &kv);
        store_submit(t.s, b, NULL, NULL, NULL); /* fire and forget is allowed */
    }
    assert_int_equal(store_submit_wait(t.s, store_batch_new()), 0);
    store_stats_t st;
    store_get_stats(t.s, &st);
    assert_true(st.commits >= 5); /* the empty barrier batch may share a group */
    assert_true(st.max_group <= 2);
    assert_int_equal(count_points(t.s, dev, "k"), 5);
    tstore_close(&t);

    /* open failure is reported */
    char missing[512];
    cfg.path = "/nonexistent-dir/x/y.db";
    if (t.pg) { /* a database the server does not have */
        assert_int_equal(tstore_pg_url("coaphub_no_such_database", missing, sizeof(missing)), 0);
        cfg.database_url = missing;
    }
    assert_null(store_open(&cfg, err));
    assert_true(strlen(err) > 0);
    store_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_group_commit_loop, tstore_setup, tstore_teardown),
        cmocka_unit_test_setup_teardown(test_group_commit_threads, tstore_setup, tstore_teardown),
        cmocka_unit_test_setup_teardown(test_batch_reuse, tstore_setup, tstore_teardown),
        cmocka_unit_test_setup_teardown(test_bad_batch_isolated, tstore_setup, tstore_teardown),
        cmocka_unit_test_setup_teardown(test_idle_wal_truncated, tstore_setup, tstore_teardown),
        cmocka_unit_test(test_pg_error_states),
        cmocka_unit_test_setup_teardown(test_acked_survive_reopen, tstore_setup, tstore_teardown),
        cmocka_unit_test(test_normal_sync_and_empty_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
