/* store_test_util.h — the store unit tests' fixture (a store in a fresh temporary directory,
 * optionally with a device "dev"), and what they share: counting a table's rows, waiting for
 * the merge, putting a point, running SQL as another process would. */
#ifndef COAPHUB_TESTS_STORE_TEST_UTIL_H
#define COAPHUB_TESTS_STORE_TEST_UTIL_H

#include "store/store.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct tstore {
    char dir[64];
    char path[128];
    store_t *s;
    int64_t merge_run_rows; /* 0: the store's default */
    int64_t dev;            /* device "dev", when tstore_new made one */
} tstore_t;

static inline store_t *tstore_reopen(tstore_t *t)
{
    store_cfg_t cfg;
    store_cfg_default(&cfg);
    cfg.path = t->path;
    cfg.read_pool = 2;
    if (t->merge_run_rows)
        cfg.merge_run_rows = t->merge_run_rows;
    char err[ERR_LEN];
    t->s = store_open(&cfg, err);
    if (!t->s)
        fprintf(stderr, "store_open: %s\n", err);
    return t->s;
}

static inline store_t *tstore_open(tstore_t *t)
{
    snprintf(t->dir, sizeof(t->dir), "/tmp/coaphub-store-XXXXXX");
    if (!mkdtemp(t->dir))
        return NULL;
    snprintf(t->path, sizeof(t->path), "%s/test.db", t->dir);
    return tstore_reopen(t);
}

/* Closes the store and removes the database with its WAL files and the directory. */
static inline void tstore_close(tstore_t *t)
{
    store_close(t->s);
    t->s = NULL;
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 4; i++) {
        char p[160];
        snprintf(p, sizeof(p), "%s%s", t->path, sfx[i]);
        unlink(p);
    }
    rmdir(t->dir);
}

static inline int64_t tstore_device(store_t *s, const char *name)
{
    store_device_t d = {.name = (char *)name};
    if (store_device_create(s, &d) != 0)
        return -1;
    return d.id;
}

/* A store in a fresh directory (merge_run_rows 0: the default), with device "dev" in t->dev
 * when with_dev; NULL on failure. Free with tstore_teardown's steps. */
static inline tstore_t *tstore_new(int64_t merge_run_rows, bool with_dev)
{
    tstore_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->merge_run_rows = merge_run_rows;
    if (!tstore_open(t)) {
        free(t);
        return NULL;
    }
    if (with_dev && (t->dev = tstore_device(t->s, "dev")) <= 0) {
        tstore_close(t);
        free(t);
        return NULL;
    }
    return t;
}

/* cmocka setup and teardown: *state is a tstore_t (tstore_setup_dev: with device "dev"). */
static inline int tstore_setup(void **state)
{
    *state = tstore_new(0, false);
    return *state ? 0 : -1;
}

static inline int tstore_setup_dev(void **state)
{
    *state = tstore_new(0, true);
    return *state ? 0 : -1;
}

static inline int tstore_teardown(void **state)
{
    tstore_t *t = *state;
    tstore_close(t);
    free(t);
    return 0;
}

/* Runs sql (one statement or several) over a connection of our own, as another process would
 * (a crash's leftovers in the log, a write the store did not make); the rowid it inserted
 * last, or -1 on failure. */
static inline int64_t tstore_exec(const tstore_t *t, const char *sql)
{
    sqlite3 *db = NULL;
    int64_t rowid = -1;
    if (sqlite3_open(t->path, &db) == SQLITE_OK &&
        sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK)
        rowid = sqlite3_last_insert_rowid(db);
    sqlite3_close(db);
    return rowid;
}

/* Rows of table, read over a connection of our own (the store's are its threads'); -1 on
 * error. */
static inline int64_t tstore_rows(const tstore_t *t, const char *table)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char sql[96];
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s", table);
    int64_t n = -1;
    if (sqlite3_open_v2(t->path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* Waits (at most 5 s) until the idle writer has merged the whole telemetry log; returns the
 * rows left in it (0 when merged). */
static inline int64_t tstore_wait_merged(const tstore_t *t)
{
    for (int i = 0; i < 500 && tstore_rows(t, "ts_kv_log") > 0; i++)
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000000}, NULL);
    return tstore_rows(t, "ts_kv_log");
}

/* One LONG point, committed; the batch's status. */
static inline int tstore_put(store_t *s, int64_t dev, const char *key, int64_t v, int64_t ts)
{
    store_batch_t *b = store_batch_new();
    store_kv_t kv = {.key = (char *)key, .type = STORE_LONG, .l = v, .ts = ts};
    store_batch_ts(b, dev, &kv);
    return store_submit_wait(s, b);
}

#endif
